"""Sources: Kafka, MQTT, HTTP and files, each acknowledging only what is durable."""
