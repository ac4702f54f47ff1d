"""The daemon's sources, sinks and dead-letter sink, each built from its config section.

Apart from the app so that which class serves which configured kind (Kafka,
MQTT, a file) is decided in one place, and the app only wires the results.
"""

from __future__ import annotations

from pathlib import Path

from correlator.config import DeadLetterConfig, SinkConfig, SourceConfig
from correlator.sinks.base import Sink
from correlator.sinks.dead_letter import (
    DeadLetterFile,
    DeadLetterKafka,
    DeadLetterMqtt,
    DeadLetterSink,
)
from correlator.sinks.kafka import KafkaSink
from correlator.sinks.mqtt import MqttSink
from correlator.sources.base import Source
from correlator.sources.file import FileSource
from correlator.sources.kafka import KafkaSource
from correlator.sources.mqtt import MqttSource


def make_source(name: str, spec: SourceConfig) -> Source:
    if spec.kafka is not None:
        return KafkaSource(name, spec.kafka)
    if spec.mqtt is not None:
        return MqttSource(name, spec.mqtt)
    assert spec.file is not None  # exactly one kind: validated
    return FileSource(name, spec.file)


def make_dead_letter(spec: DeadLetterConfig) -> DeadLetterSink:
    if spec.kafka is not None:
        return DeadLetterKafka(spec.kafka.bootstrap_servers, spec.kafka.topic)
    if spec.mqtt is not None:
        return DeadLetterMqtt(spec.mqtt.url, spec.mqtt.topic)
    return DeadLetterFile(Path(spec.file or "var/dead-letter.jsonl"))


def make_sink(name: str, spec: SinkConfig) -> Sink:
    if spec.kafka is not None:
        return KafkaSink(name, spec.kafka)
    assert spec.mqtt is not None  # exactly one kind: validated
    return MqttSink(name, spec.mqtt)
