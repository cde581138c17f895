"""Reading a whole topic back in integration tests (a group-less consumer from the beginning)."""

from __future__ import annotations

import time
from typing import Any

from kafka import TopicPartition

from stream.kafka import clients as kafka_io


def read_topic(cfg: dict[str, Any], topic: str, expect: int, timeout: float = 30.0,
               extra_s: float = 0.0) -> list[Any]:
    """Every record of ``topic`` (all partitions) from the beginning, until ``expect`` are read or
    ``timeout`` passes; then ``extra_s`` more seconds for anything beyond what was expected."""
    consumer = kafka_io.make_consumer(cfg, group_id=None)
    parts = consumer.partitions_for_topic(topic) or {0}
    consumer.assign([TopicPartition(topic, p) for p in parts])
    consumer.seek_to_beginning()
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500).values():
            out.extend(recs)
    if extra_s > 0:
        time.sleep(extra_s)
        for recs in consumer.poll(timeout_ms=500).values():
            out.extend(recs)
    consumer.close()
    return out
