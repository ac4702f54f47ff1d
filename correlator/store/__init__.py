"""Durable state: the input journal, engine snapshots, source offsets, sink progress, history."""
