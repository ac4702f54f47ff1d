"""The HTTP service: ingest, Alertmanager's API, the alert API, probes and metrics."""
