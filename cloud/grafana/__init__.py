"""Grafana dashboards as code, and their upload to a Grafana or export for provisioning."""
