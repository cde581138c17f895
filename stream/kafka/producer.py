"""Replaying clicks into Kafka: a real dataset or the synthetic generator, paced or flat out."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stream.events import Event
from stream.kafka import clients as kafka_io
from stream.progress import progress

log = logging.getLogger("streamrec.produce")


@dataclass
class ProduceSummary:
    events_produced: int
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.events_produced / self.elapsed_s if self.elapsed_s > 0 else 0.0


def paced(events: Iterable[Event], rate: float | None = None, speedup: float | None = None) -> Iterator[Event]:
    """Yield events no faster than ``rate`` events/s, or at ``speedup`` x their event-time pace."""
    if not rate and not speedup:
        yield from events
        return
    start = time.monotonic()
    first_ts: float | None = None
    for n, ev in enumerate(events):
        if rate:
            due = start + n / rate
        else:
            if first_ts is None:
                first_ts = ev.timestamp
            due = start + (ev.timestamp - first_ts) / speedup  # type: ignore[operator]
        wait = due - time.monotonic()
        if wait > 0.002:
            time.sleep(wait)
        yield ev


def produce_events(
    client: dict,
    topic: str,
    events: Iterable[Event],
    partitions: int = 1,
    total: int | None = None,
    rate: float | None = None,
    speedup: float | None = None,
    limit: int | None = None,
    show_progress: bool | None = None,
) -> ProduceSummary:
    """Create ``topic`` if absent and send ``events`` keyed by session id; flushes before returning."""
    kafka_io.ensure_topic(client, topic, partitions)
    producer = kafka_io.make_producer(client)
    n = 0
    t0 = time.monotonic()
    if limit is not None:
        total = min(total, limit) if total is not None else limit
    try:
        stream = paced(events, rate, speedup)
        for ev in progress(stream, total=total, desc=f"produce {topic}", enabled=show_progress):
            if limit is not None and n >= limit:
                break
            producer.send(topic, key=ev.session_id.encode(), value=ev.to_json())
            n += 1
        producer.flush()
    finally:
        producer.close(10)
    elapsed = time.monotonic() - t0
    log.info("produced %d events to %s in %.1f s", n, topic, elapsed)
    return ProduceSummary(n, elapsed)


@dataclass
class CatalogSummary:
    """What :func:`produce_catalog` did: records sent, and those refused by reason, with the
    first few as ``(record number, reason, detail)``."""

    sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


#: Refused records logged one by one; the rest only counted.
MAX_REPORTED = 20


def produce_catalog(client: dict, topic: str, path: str | Path, partitions: int = 1) -> CatalogSummary:
    """Send a catalogue file's records (:func:`stream.serving.catalog.read_file`: jsonl or csv) to
    ``topic`` keyed by item id, values as the topic carries them; create ``topic`` compacted if
    absent. Bad records are counted and logged, not sent. Flushes before returning."""
    from stream.events import Invalid
    from stream.serving.catalog import TOPIC_CONFIGS, read_file

    path = Path(path)
    if not path.is_file():  # before the broker is asked
        raise FileNotFoundError(f"{path}: no such catalogue file")
    summary = CatalogSummary()
    records = read_file(path)
    kafka_io.ensure_topic(client, topic, partitions, configs=TOPIC_CONFIGS)
    producer = kafka_io.make_producer(client)
    try:
        for n, rec in enumerate(records, 1):
            if isinstance(rec, Invalid):
                summary.refused[rec.reason] = summary.refused.get(rec.reason, 0) + 1
                if len(summary.examples) < MAX_REPORTED:
                    summary.examples.append((n, rec.reason, rec.detail))
                    log.warning("catalogue record %d refused: %s %s", n, rec.reason, rec.detail)
                continue
            item_id, info = rec
            producer.send(topic, key=item_id.encode(), value=info.to_json())
            summary.sent += 1
        producer.flush()
    finally:
        producer.close(10)
    log.info("produced %d catalogue records to %s (%d refused)", summary.sent, topic, summary.refused_total)
    return summary
