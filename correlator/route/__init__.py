"""Alertmanager-compatible routing: the route tree, grouping and notification timing."""
