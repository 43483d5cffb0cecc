"""The cloud service: ingest, the facility state estimator, its flows and identities, and the HTTP API."""
