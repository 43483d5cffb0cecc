"""The edge node: capture, inference, thumbnails, store-and-forward publishing and health, per camera."""
