"""The consumer group's side of the worker loop: commits, resuming a newly assigned partition at
its checkpointed offset, forgetting the sessions of revoked partitions, the last contact with the
broker (read from kafka-python's coordinator), and the metrics' rebase after a restore.

:mod:`stream.kafka.worker` calls these from its main loop only (kafka-python commits from it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from stream.config import log_event
from stream.state.checkpoint import Checkpointer

log = logging.getLogger("streamrec.checkpoint")


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as the Java client).

    >>> partition_of(b"s1", 4) == partition_of(b"s1", 4)
    True
    """
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def sessions_of(store: Any, partitions: set[int], n_partitions: int) -> Iterator[str]:
    """Session ids in ``store`` whose key maps to one of ``partitions`` (copied before yielding)."""
    for sid in list(store.ids()):
        if partition_of(sid.encode(), n_partitions) in partitions:
            yield sid


def commit(consumer: Any, offsets: dict[tuple[str, int], int], committed: dict[tuple[str, int], int],
           timeout_ms: int = 5_000) -> bool:
    """Commit ``offsets`` that moved since the last commit; False (logged) if the broker did not
    take them (a stall, a rebalance) — they are retried at the next checkpoint."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    todo = {k: v for k, v in offsets.items() if committed.get(k) != v}
    if not todo or consumer is None:
        return False
    try:
        consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in todo.items()},
                        timeout_ms=timeout_ms)
    except (KafkaError, RuntimeError, ValueError) as exc:
        log_event(log, "commit failed; will retry", level=logging.WARNING, error=type(exc).__name__,
                  detail=str(exc)[:200])
        return False
    committed.update(todo)
    return True


def seek_to_state(consumer: Any, tp: Any, c: Checkpointer) -> None:
    """Resume a newly assigned partition at max(state's next offset, group's committed offset).

    Below the state's offset, events are already in the state (they are also filtered by
    :meth:`Checkpointer.fresh`); a committed offset beyond it means another worker's state took
    those events (each worker has its own state dir). Called from the main loop after the poll
    that delivered the assignment, whose records are not processed yet: the consumer's
    *position* is then already past them, so it must not be taken as progress.
    """
    floor = c.floor(tp)
    if floor < 0:
        return
    try:
        done = consumer.committed(tp, timeout_ms=10_000)
        if done is not None and done > floor:
            c.advance(tp, done)
            log_event(log, "another worker went further", partition=tp.partition, state=floor, committed=done)
            return
        pos = consumer.position(tp, timeout_ms=10_000)
    except Exception as exc:  # noqa: BLE001 - e.g. the partition moved again; dedupe still holds
        log_event(log, "could not read offsets", level=logging.WARNING, partition=tp.partition,
                  error=type(exc).__name__)
        return
    if pos is not None and pos < floor:
        consumer.seek(tp, floor)
        log_event(log, "seeking to the checkpointed offset", partition=tp.partition, position=pos,
                  offset=floor)


def drop_sessions(processor: Any, consumer: Any, topic: str, partitions: set[int]) -> int:
    """Forget the live sessions of ``partitions`` (they moved to another worker, whose own state
    serves them from now on). Sessions are mapped to partitions by their key, as the producer's
    default partitioner does; the global model keeps what it learned."""
    try:
        n_parts = len(consumer.partitions_for_topic(topic) or ())
    except Exception:  # noqa: BLE001
        n_parts = 0
    if not n_parts or not partitions:
        return 0
    store = processor.sessions
    gone = list(sessions_of(store, partitions, n_parts))
    for sid in gone:
        store.discard(sid)
    if gone:
        log_event(log, "dropped sessions of revoked partitions", partitions=sorted(partitions),
                  sessions=len(gone))
    return len(gone)


def broker_contact(consumer: Any, fallback: float) -> float:
    """Monotonic time of the last answer from the broker: the group coordinator's last heartbeat
    response (kafka-python keeps it; heartbeats run every second even when idle), or
    ``fallback`` (last records or commit) when that is not available."""
    try:
        last = consumer._coordinator.heartbeat.last_receive
    except AttributeError:
        return fallback
    return max(fallback, last) if isinstance(last, float) else fallback


def rebase_metrics(metrics: Any, processor: Any) -> None:
    """After a restore, make the Prometheus counters count this process's work only (the
    restored totals live on in ``streamrec_state_events_applied``)."""
    seen = getattr(metrics, "_seen", None)
    if isinstance(seen, dict):
        seen.update(events=processor.events, predictions=processor.preq.predictions,
                    expired=processor.sessions.expired, evicted=processor.sessions.evicted,
                    overflow=processor.items.overflowed)
