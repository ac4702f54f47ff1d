"""The floor of `bench/e2e.py`'s latency: a bare Kafka relay through the same broker.

Consumes `IN` and produces each event to `OUT` as a one-alert change record,
with the daemon's client settings (its fetch wait, acks=all, each fetched batch
sent at once, the next fetch not waiting for it) but no journal, no engine and
no store: what a produce → consume → produce → consume path costs on this
broker and machine before the daemon does anything.

Run: `python bench/relay.py BOOTSTRAP IN OUT` (bench/e2e.py starts it).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from correlator.sources.kafka import FETCH_MAX_WAIT_MS


async def relay(bootstrap: str, source: str, sink: str) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id="relay",
                                auto_offset_reset="earliest",
                                fetch_max_wait_ms=FETCH_MAX_WAIT_MS)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    while True:
        for messages in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
            batch = producer.create_batch()
            for m in messages:
                event = orjson.loads(m.value)
                alert = {"identifier": f"{m.partition}:{m.offset}", "tally": 1,
                         "annotations": event["annotations"]}  # fmt: skip
                value = orjson.dumps({"alert": alert})
                if batch.append(key=None, value=value, timestamp=None) is None:  # full
                    batch.close()
                    await producer.send_batch(batch, sink, partition=0)
                    batch = producer.create_batch()
                    batch.append(key=None, value=value, timestamp=None)
            batch.close()
            await producer.send_batch(batch, sink, partition=0)  # delivered in the background


if __name__ == "__main__":
    asyncio.run(relay(*sys.argv[1:4]))
