"""Probe rules: a raw event becomes the canonical fields of an alert."""
