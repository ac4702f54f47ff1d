"""Correlation operators, one module per `kind:` (DESIGN.md §4 correlate)."""
