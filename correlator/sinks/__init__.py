"""Sinks: where every alert change is published (Kafka, MQTT), at least once."""
