"""The cloud's HTTP API: the FastAPI app, its routes, response models and server."""
