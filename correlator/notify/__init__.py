"""Delivering notifications: the outbox's deliverer and the receivers' integrations."""
