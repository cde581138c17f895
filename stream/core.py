"""The per-click core: score the previous list, learn, recommend, monitor.

Every path that produces a figure calls :meth:`ClickProcessor.process`: the Kafka worker, the
streaming protocol of ``evaluate``, ``simulate`` and ``bench``. What is measured is what runs.
"""

from __future__ import annotations

from time import perf_counter
from typing import Protocol

import numpy as np

from stream.events import Event
from stream.items import OVERFLOW, ItemIndex
from stream.models.base import SessionModel
from stream.prequential import Prequential
from stream.sessions import Session, SessionStore

#: Buckets of the ``streamrec_recommend_seconds`` histogram: 10 us .. 100 ms.
LATENCY_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1,
)


class Monitor(Protocol):
    """What the core tells a drift monitor (see :mod:`monitoring.drift`)."""

    def observe(self, event: Event, item: int, new_item: bool, session: Session, rr: float | None) -> None:
        """One click: its item int, whether the model had never seen it, the session after the
        click, and the reciprocal rank the previous list earned (``None`` if there was none)."""

    def session_ended(self, session: Session) -> None:
        """A session expired or was evicted."""


class LatencyRecorder:
    """Recommendation latencies: a fixed-bucket histogram plus a ring of recent samples.

    >>> r = LatencyRecorder(ring=4)
    >>> for s in (1e-5, 2e-4, 3e-4, 4e-3, 5e-4): r.record(s)
    >>> r.count, r.percentile(50) <= 5e-4
    (5, True)
    """

    __slots__ = ("buckets", "_ring", "_mv", "_size", "_pos", "count", "total", "_n", "_drained")

    def __init__(self, ring: int = 100_000, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._ring = np.zeros(ring, dtype=np.float64)
        self._mv = memoryview(self._ring)  # element writes through it cost a third of numpy's
        self._size = ring
        self._pos = 0
        self._n = 0
        self.count = 0
        self.total = 0.0
        self._drained = 0

    def record(self, seconds: float) -> None:
        pos = self._pos
        self._mv[pos] = seconds
        pos += 1
        size = self._size
        self._pos = 0 if pos == size else pos
        if self._n < size:
            self._n += 1
        self.count += 1
        self.total += seconds

    def samples(self) -> np.ndarray:
        return self._ring[: self._n]

    def percentile(self, q: float) -> float:
        return float(np.percentile(self._ring[: self._n], q)) if self._n else 0.0

    def drain(self) -> np.ndarray:
        """The samples recorded since the last call (at most the ring's size), oldest first."""
        new = min(self.count - self._drained, self._n)
        self._drained = self.count
        if new <= 0:
            return self._ring[:0]
        pos, ring = self._pos, self._ring
        if new <= pos:
            return ring[pos - new : pos].copy()
        return np.concatenate((ring[len(ring) - (new - pos) :], ring[:pos]))


class ClickProcessor:
    """Runs one click through the recommender and its self-measurement.

    Parameters
    ----------
    model
        Any :class:`~stream.models.base.SessionModel`.
    k
        Length of the recommended list (HR@k / MRR@k).
    sessions, items
        Session store and item index; fresh defaults when omitted.
    monitor
        Optional drift monitor (:class:`Monitor`).
    learn
        ``False`` scores and recommends without learning (session-rec's static test phase).
    window
        Sliding window of the prequential hit rate / MRR gauges.

    Examples
    --------
    >>> from stream.models import make_model
    >>> p = ClickProcessor(make_model("sr"))
    >>> for sid, item, ts in [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4)]:
    ...     recs = p.process(Event(sid, item, float(ts)))
    >>> p.preq.predictions, p.preq.hits, p.items.names(recs)
    (2, 1, ['x', 'y'])
    """

    def __init__(
        self,
        model: SessionModel,
        k: int = 20,
        sessions: SessionStore | None = None,
        items: ItemIndex | None = None,
        monitor: Monitor | None = None,
        learn: bool = True,
        window: int = 10_000,
    ) -> None:
        self.model = model
        self.k = k
        self.sessions = sessions if sessions is not None else SessionStore()
        self.items = items if items is not None else ItemIndex()
        self.monitor = monitor
        if monitor is not None:
            self.sessions.on_end = monitor.session_ended
        self.learn = learn
        self.preq = Prequential(k=k, window=window)
        self.latency = LatencyRecorder()
        self.events = 0  # valid events applied to the state
        self._known = 0  # items the model has seen (the index only grows)

    def process(self, event: Event) -> list[int]:
        """Score, learn, recommend and monitor one click; returns the new top-k (item ints)."""
        session = self.sessions.touch(event.session_id, event.timestamp)
        items = self.items
        n_before = len(items)
        item = items.intern(event.item_id)
        new_item = item == OVERFLOW or item >= n_before

        rr: float | None = None
        if session.clicks:
            rr = self.preq.update(session.last_recs, item)

        model = self.model
        if self.learn and item != OVERFLOW:
            model.learn_one(session.key, item, event.timestamp, session.items)
        if item != OVERFLOW:
            self.sessions.append(session, item)
        else:
            session.clicks += 1

        t0 = perf_counter()
        recs = model.recommend(session.items, event.timestamp, self.k, session.key)
        self.latency.record(perf_counter() - t0)
        session.last_recs = recs

        self.events += 1
        if self.monitor is not None:
            self.monitor.observe(event, item, new_item, session, rr)
        return recs

    def recommendations(self, session_id: str) -> list[str] | None:
        """The current list of a live session as item ids, or ``None`` if unknown."""
        s = self.sessions.get(session_id)
        if s is None:
            return None
        recs = s.last_recs
        return self.items.names(recs)
