"""Metrics and logs: read from the pipeline's counters at the stage boundaries."""
