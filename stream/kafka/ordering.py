"""The clicks of several partitions in one event-time order.

A consumer hands a worker each partition's records in turn: from a backlog, kafka-python returns
everything it fetched of one partition (thousands of clicks) before the next partition's, although
their event times interleave. A model that learns in that order learns some sessions' futures
before it is scored on other sessions' pasts, so a replayed backlog would not score like live
traffic, and W scale-out workers (each merging the partitions it learns by event time) would not
score like one.

:class:`EventTimeMerge` buffers the records of every partition a worker reads, served or only
learned, and releases them in event-time order. A record is released once no partition that may
still deliver an older one lags behind it: each such partition either holds a buffered record at
least as late, or has nothing left to fetch (its position is at its high-water mark). This is
Kafka Streams' rule for a task's input partitions. The order within a partition never changes:
a record's merge key is the latest event time its partition has shown so far, and ties go to the
lower partition number. So one worker and W workers learn the same clicks in the same order.

A partition that waits for data longer than ``max_wait_s`` (its fetches fail, say) stops holding
the others back until it delivers again. Memory is bounded by ``max_buffered`` records in all:
beyond it the earliest are released without waiting. A backlog stays well inside the bound, since
the consumer fetches every partition in each request and the merge only holds what one fetch of
the other partitions returns before the lagging one's. Partitions are never paused to make room:
kafka-python can strand the parsed records of a partition paused in the middle of a poll.
"""

from __future__ import annotations

import heapq
import logging
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, islice, repeat
from typing import Any

from kafka import TopicPartition

log = logging.getLogger("streamrec.ordering")

_INF = float("inf")

#: ``event-time``: the partitions' clicks merged by event time; ``fetch``: as the consumer returns
#: them, one partition's records after another's.
ORDERS = ("event-time", "fetch")
#: The order a worker reads in unless ``--click-order`` says otherwise.
DEFAULT_ORDER = "event-time"
#: Seconds a lagging partition that delivers nothing may hold the other partitions' clicks back.
DEFAULT_MAX_WAIT_S = 5.0
#: Records an :class:`EventTimeMerge` holds in all (a few tens of MB of records and events).
MAX_BUFFERED = 100_000


class _Partition:
    """One partition's buffered records (``head`` onwards are not released yet)."""

    __slots__ = ("tp", "consumer", "foreign", "recs", "values", "keys", "head", "end", "latest",
                 "empty_since", "idle_since", "gave_up")

    def __init__(self, tp: TopicPartition, consumer: Any, foreign: bool) -> None:
        self.tp = tp
        self.consumer = consumer
        self.foreign = foreign
        self.recs: list[Any] = []
        self.values: list[Any] = []
        self.keys: list[float] = []
        self.head = 0
        self.end: int | None = None  # next offset after the last record received
        self.latest = -_INF  # latest event time received (the merge key of later records)
        self.empty_since: float | None = None
        self.idle_since: float | None = None  # records wait for it, caught up and empty, since
        self.gave_up = False

    @property
    def buffered(self) -> int:
        return len(self.recs) - self.head

    def lagging(self) -> bool:
        """Whether the broker holds records of this partition the merge has not received."""
        c = self.consumer
        hw = c.highwater(self.tp)
        if hw is None:
            return True  # no fetch answered yet
        end = self.end
        if end is None:
            try:
                end = c.position(self.tp, timeout_ms=0)
            except Exception:  # noqa: BLE001 - e.g. mid-rebalance: wait for the next look
                return True
            if end is None:
                return True
        return end < hw


class Released:
    """What one :meth:`EventTimeMerge.take` released, in event-time order.

    ``entries`` holds ``(foreign, record, value)``; ``offsets`` the partitions of served records
    it advanced, as ``(tp, next offset, records)``."""

    __slots__ = ("entries", "offsets")

    def __init__(self) -> None:
        self.entries: list[tuple[bool, Any, Any]] = []
        self.offsets: list[tuple[TopicPartition, int, int]] = []

    def __len__(self) -> int:
        return len(self.entries)


class EventTimeMerge:
    """Buffers the records of several partitions and releases them in event-time order.

    Parameters
    ----------
    time_of
        A decoded value's event time, or ``None`` (a malformed record: it is released with its
        neighbours and never holds anything back).
    max_buffered
        Records held in all; beyond it the earliest are released without waiting.
    max_wait_s
        How long an empty partition that still lags may hold the others back.
    order
        ``"event-time"``, or ``"fetch"`` to release every record at once in the order received.
    idle_wait_s
        With two consumers (scale-out), how long a caught-up partition with nothing buffered
        holds back later records: its consumer's next fetch may bring older ones; a partition
        with no traffic is then let go.

    Examples
    --------
    Partition 0 arrives first, whole; its clicks wait until partition 1 has shown a later one.

    >>> class Consumer:  # the consumer's view: its high-water marks
    ...     hw = {}
    ...     def highwater(self, tp): return self.hw.get(tp.partition)
    >>> class Rec:
    ...     def __init__(self, offset): self.offset = offset
    >>> c = Consumer(); c.hw = {0: 3, 1: 2}
    >>> m = EventTimeMerge(time_of=lambda v: v)
    >>> p0, p1 = TopicPartition("t", 0), TopicPartition("t", 1)
    >>> m.assign(c, [p0, p1])
    >>> m.add(p0, [Rec(0), Rec(1), Rec(2)], [1.0, 3.0, 5.0])
    >>> len(m.take())                      # partition 1 may still deliver older clicks
    0
    >>> m.add(p1, [Rec(0), Rec(1)], [2.0, 4.0])
    >>> [v for _, _, v in m.take().entries]  # both caught up: all of it, in event time
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """

    def __init__(self, time_of: Callable[[Any], float | None], max_buffered: int = MAX_BUFFERED,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, order: str = DEFAULT_ORDER, idle_wait_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_buffered < 1 or max_wait_s < 0:
            raise ValueError("max_buffered must be >= 1 and max_wait_s >= 0")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.order = order
        self._fetch = order == "fetch"
        self.time_of = time_of
        self.max_buffered = max_buffered
        self.max_wait_s = max_wait_s
        self.idle_wait_s = idle_wait_s
        self.clock = clock
        self._parts: dict[TopicPartition, _Partition] = {}
        self._order: list[_Partition] = []  # by (topic, partition): the tie-break
        self._held = 0  # records received and not released
        self._consumers = 0
        self._overflowed = False

    # -- partitions ---------------------------------------------------------------------------

    def assign(self, consumer: Any, tps: Iterable[TopicPartition], foreign: bool = False) -> None:
        """Read ``tps`` from ``consumer`` from now on, with empty buffers (after a (re)assignment
        or a seek); ``foreign``: learned only, served by another worker."""
        for tp in tps:
            self._parts[tp] = _Partition(tp, consumer, foreign)
        self._sort()

    def drop(self, tps: Iterable[TopicPartition], consumer: Any = None) -> None:
        """Forget ``tps`` (those read from ``consumer``, if given) and their unreleased records:
        they moved away, or are read again from where the state stands."""
        for tp in tps:
            part = self._parts.get(tp)
            if part is None or (consumer is not None and part.consumer is not consumer):
                continue
            del self._parts[tp]
            self._held -= part.buffered
        self._sort()

    def _sort(self) -> None:
        self._order = [self._parts[tp] for tp in sorted(self._parts)]
        self._consumers = len({id(p.consumer) for p in self._order})

    @property
    def partitions(self) -> set[TopicPartition]:
        return set(self._parts)

    @property
    def buffered(self) -> int:
        """Records received and not released yet."""
        return self._held

    def held(self) -> bool:
        """Whether records wait for a lagging partition (poll soon, without blocking long)."""
        return self._held > 0

    # -- records ------------------------------------------------------------------------------

    def add(self, tp: TopicPartition, records: Sequence[Any], values: Sequence[Any]) -> None:
        """Buffer ``records`` of ``tp`` (in offset order, the consumer's next ones) with their
        decoded ``values``. Empty ``records`` (a poll's records all dropped, say after a seek): the
        consumer's position tells where the partition stands."""
        part = self._parts.get(tp)
        if part is None:
            return  # not (or no longer) ours
        if records:
            keys, latest, time_of = part.keys, part.latest, self.time_of
            for v in values:
                ts = time_of(v)
                if ts is not None and ts > latest:
                    latest = ts
                keys.append(latest)
            part.latest = latest
            part.recs.extend(records)
            part.values.extend(values)
            part.empty_since = part.idle_since = None
            part.gave_up = False
            self._held += len(records)
        part.end = records[-1].offset + 1 if records else None

    def take(self, limit: int | None = None) -> Released:
        """Release, in event-time order, every buffered record no lagging partition can precede
        (at most ``limit``, the earliest)."""
        out = Released()
        if not self._held:  # nothing waits: no partition's wait starts
            return out
        bound = _INF if self._fetch else self._bound()
        over = self._held - self.max_buffered
        if over > 0 and bound != _INF:  # full: the earliest go without waiting
            if not self._overflowed:
                self._overflowed = True
                log.warning("%d records wait for a lagging partition: releasing the earliest "
                            "without waiting", self._held)
            bound = _INF
            limit = over if limit is None else min(limit, over)
        if bound == -_INF:
            return out
        ready: list[tuple[_Partition, int]] = []
        for part in self._order:
            n = (len(part.keys) if bound == _INF else bisect_right(part.keys, bound, part.head)) - part.head
            if n > 0:
                ready.append((part, n))
        if not ready:
            return out
        entries = out.entries
        if len(ready) == 1:
            part, n = ready[0]
            if limit is not None and n > limit:
                n = limit
            f, h = part.foreign, part.head
            entries.extend(zip([f] * n, part.recs[h:h + n], part.values[h:h + n]))
            taken = {id(part): n}
        else:  # a k-way merge of runs each in key order; (key, run, index) ties to the lower partition
            parts = [part for part, _ in ready]
            runs = []
            for r, (part, n) in enumerate(ready):
                if limit is not None and n > limit:
                    n = limit  # no run gives more than the whole release
                h = part.head
                runs.append(zip(part.keys[h:h + n], repeat(r), range(h, h + n)))
            merged: Iterable[tuple[float, int, int]] = chain(*runs) if self._fetch else heapq.merge(*runs)
            if limit is not None:
                merged = islice(merged, limit)
            counts = [0] * len(parts)
            append = entries.append
            for _, r, i in merged:
                part = parts[r]
                append((part.foreign, part.recs[i], part.values[i]))
                counts[r] += 1
            taken = {id(part): c for part, c in zip(parts, counts)}
        for part, _ in ready:
            n = taken.get(id(part), 0)
            if not n:
                continue
            part.head += n
            self._held -= n
            if not part.foreign:
                nxt = part.recs[part.head].offset if part.head < len(part.recs) else part.end
                out.offsets.append((part.tp, nxt, n))
            self._compact(part)
        return out

    def _bound(self) -> float:
        """The latest merge key that may be released: the earliest last buffered key among the
        partitions that may still deliver older records (-inf: wait; inf: no one lags)."""
        bound = _INF
        now = self.clock()
        for part in self._order:
            if not part.lagging():
                if self._consumers > 1:  # another consumer's high-water mark may be a fetch behind
                    bound = self._idle_bound(part, bound, now)
                continue
            if part.head < len(part.keys):
                part.empty_since = None
                last = part.keys[-1]
                if last < bound:
                    bound = last
                continue
            if part.empty_since is None:
                part.empty_since = now
            if now - part.empty_since <= self.max_wait_s:
                return -_INF
            if not part.gave_up:
                part.gave_up = True
                log.warning("partition %s lags but delivered nothing for %.1f s: not waiting for it",
                            part.tp.partition, now - part.empty_since)
        return bound

    def _idle_bound(self, part: _Partition, bound: float, now: float) -> float:
        """A caught-up partition's hold when the merge reads two consumers: the last fetch of one
        may predate the records of the other being released, so records later than the partition's
        own latest click wait for its next fetch, for at most ``idle_wait_s`` from when records
        began to wait while it stays empty."""
        if part.head < len(part.keys):
            part.idle_since = None
            return min(bound, part.keys[-1])
        if part.idle_since is None:
            part.idle_since = now
        if now - part.idle_since <= self.idle_wait_s:
            return min(bound, part.latest)
        return bound

    def _compact(self, part: _Partition) -> None:
        h = part.head
        if h >= len(part.recs):
            part.recs.clear()
            part.values.clear()
            part.keys.clear()
            part.head = 0
        elif h >= 4096:
            del part.recs[:h], part.values[:h], part.keys[:h]
            part.head = 0

