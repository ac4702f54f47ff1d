"""Real brokers for the sink tests, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.brokers import mosquitto, tansu


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def mqtt_port() -> Iterator[int]:
    with mosquitto() as port:
        yield port
