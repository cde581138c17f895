"""The per-click core: score the previous list, learn, recommend, monitor.

Every path that produces a figure runs its clicks through :class:`ClickProcessor`: the Kafka
worker (each poll's clicks), the streaming protocol of ``evaluate``, ``simulate`` and ``bench``.
:meth:`ClickProcessor.process` is one click; :meth:`ClickProcessor.process_batch` is the same for
a run of clicks, with the session-kNN family's learning and queries in one compiled call
(:meth:`~ClickProcessor.plan`, the model's ``plan_batch`` / ``run_batch``, :meth:`~ClickProcessor.finish`:
the halves the worker overlaps on two threads). What is measured is what runs. It is one module
of about 450 lines because the click path and the run path must stay the same step for step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from itertools import islice
from time import perf_counter
from typing import Any, Protocol

import numpy as np

from stream.events import Event
from stream.models.base import DEFAULT_K, BatchModel, SessionModel, batch_path
from stream.processing.prequential import DEFAULT_WINDOW, Prequential
from stream.state.items import OVERFLOW, ItemIndex
from stream.state.sessions import Session, SessionStore

#: Buckets of the ``streamrec_recommend_seconds`` histogram: 10 us .. 100 ms.
LATENCY_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1,
)


#: Clicks per :meth:`ClickProcessor.process_batch` call in the replays (``simulate``, ``evaluate``);
#: a worker passes each poll's clicks.
BATCH_EVENTS = 1024


def chunked(events: Iterable[Event], n: int) -> Iterator[list[Event]]:
    """``events`` in lists of ``n`` (the last may be shorter).

    >>> [len(c) for c in chunked(iter(range(5)), 2)]
    [2, 2, 1]
    """
    it = iter(events)
    while chunk := list(islice(it, n)):
        yield chunk


class Monitor(Protocol):
    """What the core tells a drift monitor (see :mod:`monitoring.drift`)."""

    def observe(self, event: Event, item: int, new_item: bool, session: Session, rr: float | None) -> None:
        """One click: its item int, whether the model had never seen it, the session after the
        click, and the reciprocal rank the previous list earned (``None`` if there was none)."""

    def session_ended(self, session: Session) -> None:
        """A session expired or was evicted."""


class Shadow(Protocol):
    """A model learning in shadow beside the served one (a challenger, :mod:`monitoring.drift.challenger`):
    it learns every click with the same session history, is asked for lists on the sessions it
    samples and scores them against the next click, paired with the served model's score."""

    #: Its own prequential HR@k / MRR@k on the clicks it was paired on.
    preq: Prequential

    def learn(self, key: int, item: int, ts: float, history: Sequence[int], weight: float = 1.0) -> None:
        """Learn one click (before the session's history gains it), with its event type's weight."""

    def score(self, key: int, item: int, champion_rr: float) -> None:
        """Score its last list for session ``key`` against ``item``, paired with the served model's."""

    def recommend(self, key: int, history: Sequence[int], ts: float) -> None:
        """After the click: its list for the session, if sampled (never served)."""

    def answers(self, run: Run) -> Any:
        """Batch path: learn a planned run and answer its sampled clicks."""

    def take(self, answers: Any, key: int, item: int, champion_rr: float | None) -> None:
        """Batch path, per click in order: the next answer, scored and kept as :meth:`score` and
        :meth:`recommend` would."""


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


OnClick = Callable[[int, "list[int] | None"], None]


class Run:
    """A run of clicks planned by :meth:`ClickProcessor.plan`: per click, what the model learns
    and is asked (session key, item int, time, whether it learns, the session's history after
    the click as a slice of ``hist``) and what :meth:`ClickProcessor.finish` replays (the
    session, whether it had clicks, whether the item was new, its click count, the sessions the
    store ended on the way)."""

    __slots__ = ("events", "k", "keys", "items", "timestamps", "learn", "new", "had", "clicks",
                 "sessions", "hist", "hoff", "hlen", "ended")

    def __init__(self, events: Sequence[Event], k: int) -> None:
        n = len(events)
        self.events = events
        self.k = k
        self.keys: list[int] = [0] * n
        self.items: list[int] = [0] * n
        self.timestamps: list[float] = [0.0] * n
        self.learn: list[bool] = [False] * n
        self.new: list[bool] = [False] * n
        self.had: list[bool] = [False] * n
        self.clicks: list[int] = [0] * n
        self.sessions: list[Session] = []
        self.hist = self.hoff = self.hlen = np.zeros(0, dtype=np.int64)  # set by plan()
        self.ended: list[tuple[int, Session]] = []

    def learn_recommend(self, model: BatchModel, lo: int = 0) -> Any:
        """The model learns and recommends clicks ``lo ..`` (its answers, taken in order)."""
        return model.run_batch(self.plan_model(model, lo))

    def plan_model(self, model: BatchModel, lo: int = 0) -> Any:
        """``model.plan_batch`` over clicks ``lo ..``: the model's Python half, for ``run_batch``."""
        return model.plan_batch(
            self.keys[lo:], self.items[lo:], self.timestamps[lo:], self.learn[lo:], self.hist,
            self.hoff[lo:], self.hlen[lo:], self.k)


def start_split(pool: Executor, model: BatchModel, run: Run, share: float,
                call: Callable[[Any], Any] | None = None) -> tuple[Future[Any], Callable[[], None] | None, float]:
    """Split a run's queries over two threads: ``share`` of them (the last) are cut off for the
    calling thread to answer from a copy of the index (``split_batch``), the rest of the compiled
    run goes to ``pool`` (``call(plan)``, by default ``model.run_batch``). Returns the future, the
    calling thread's part (``None`` when nothing was cut off) and the ``perf_counter`` time of the
    hand-over; the lists are those of one ``run_batch``. :meth:`ClickProcessor.process_batch` and the worker's pipelined loop share it."""
    plan = run.plan_model(model)
    rest = model.split_batch(plan, share) if share > 0.0 else None
    submitted = perf_counter()
    return pool.submit(call or model.run_batch, plan), rest, submitted


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
    fetch
        How many items the model ranks per click (at least ``k``): the worker's business rules
        (:mod:`stream.serving.rules`) filter them down to ``k``; prequential scoring reads the first ``k``.
    event_weights
        Learning weight per event type (:func:`stream.events.parse_event_weights`), given to
        models that weight clicks (:class:`~stream.models.base.WeightsClicks`); ``None``: every
        click is learned once.

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
        k: int = DEFAULT_K,
        sessions: SessionStore | None = None,
        items: ItemIndex | None = None,
        monitor: Monitor | None = None,
        learn: bool = True,
        window: int = DEFAULT_WINDOW,
        fetch: int | None = None,
        event_weights: dict[str, float] | None = None,
    ) -> None:
        self.model = model
        self.event_weights = event_weights
        self.k = k
        self.fetch = max(k, fetch or k)  # the model ranks this many; the rules cut to k (stream/serving/rules.py)
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
        self._helper: tuple[ThreadPoolExecutor, float] | None = None
        #: A challenger in shadow (set by :class:`monitoring.drift.lifecycle.Lifecycle`), or ``None``.
        self.shadow: Shadow | None = None
        #: Called after each click (:meth:`process`) and each run (:meth:`finish`) while set: the
        #: lifecycle's moment to build, promote or drop a challenger between clicks.
        self.settle: Callable[[], None] | None = None

    def split_queries(self, share: float = 0.5) -> None:
        """Let :meth:`process_batch` answer ``share`` of a run's queries on this thread (from a
        copy of the index, ``split_batch``) while a second thread answers the rest, for models
        that batch (the session-kNN family): the same lists and state, on two cores. Only on a
        machine with more than one."""
        if self._helper is None and (os.cpu_count() or 1) > 1:
            self._helper = (ThreadPoolExecutor(1, thread_name_prefix="streamrec-queries"), share)

    def process(self, event: Event) -> list[int]:
        """Score, learn, recommend and monitor one click; returns the new top-k (item ints)."""
        session = self.sessions.touch(event.session_id, event.timestamp)
        items = self.items
        n_before = len(items)
        item = items.intern(event.item_id)
        new_item = item == OVERFLOW or item >= n_before

        rr: float | None = None
        shadow = self.shadow
        if session.clicks:
            rr = self.preq.update(session.last_recs, item)
            if shadow is not None:
                shadow.score(session.key, item, rr)

        model = self.model
        if self.learn and item != OVERFLOW:
            weights = self.event_weights
            weight = 1.0 if weights is None else weights[event.event_type]
            if weight != 1.0 and model.weights_clicks:
                model.learn_one(session.key, item, event.timestamp, session.items, weight)  # type: ignore[call-arg]
            else:
                model.learn_one(session.key, item, event.timestamp, session.items)
            if shadow is not None:
                shadow.learn(session.key, item, event.timestamp, session.items, weight)
        if item != OVERFLOW:
            self.sessions.append(session, item)
        else:
            session.clicks += 1

        t0 = perf_counter()
        recs = model.recommend(session.items, event.timestamp, self.fetch, session.key)
        self.latency.record(perf_counter() - t0)
        session.last_recs = recs
        if shadow is not None:
            shadow.recommend(session.key, session.items, event.timestamp)

        self.events += 1
        if self.monitor is not None:
            self.monitor.observe(event, item, new_item, session, rr)
        if self.settle is not None:
            self.settle()
        return recs

    def process_batch(self, events: Sequence[Event], on_click: OnClick | None = None) -> list[list[int]]:
        """:meth:`process` for each event in order: the same lists, the same state after.

        Models with a compiled batch path (``batches``: the session-kNN family) learn and
        recommend the whole run in one call (:meth:`plan`, the model's ``plan_batch`` / ``run_batch``,
        :meth:`finish`); other models go click by click. ``on_click(t, scored)``, if given, is
        called after each click with the list that click was scored against (``None`` if it was
        not scored), in order (``evaluate``'s list statistics).

        >>> from stream.models import make_model
        >>> a, b = ClickProcessor(make_model("vstan")), ClickProcessor(make_model("vstan"))
        >>> evs = [Event(s, i, float(t)) for t, (s, i) in enumerate(
        ...     [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "z")])]
        >>> [a.process(e) for e in evs] == b.process_batch(evs), a.preq.hits == b.preq.hits
        (True, True)
        """
        model = self.batched(self.model)
        if model is None:
            if on_click is None:
                return [self.process(e) for e in events]
            return [self._one(e, t, on_click) for t, e in enumerate(events)]
        run = self.plan(events)
        if self._helper is None:
            return self.finish(run, model, run.learn_recommend(model), on_click)
        pool, share = self._helper
        answers, rest, _ = start_split(pool, model, run, share)
        if rest is not None:
            rest()
        return self.finish(run, model, answers.result(), on_click)

    def batched(self, model: SessionModel) -> BatchModel | None:
        """``model`` if :meth:`process_batch` runs it on its compiled batch path (the session-kNN
        family, which learns every click once), else ``None``: also when ``model`` weights clicks
        and ``event_weights`` are set (those go click by click)."""
        if self.k <= 0 or (self.event_weights is not None and model.weights_clicks):
            return None
        return batch_path(model)

    def _one(self, event: Event, t: int, on_click: OnClick) -> list[int]:
        s = self.sessions.get(event.session_id)
        prev = s.last_recs if s is not None else None
        before = self.preq.predictions
        recs = self.process(event)
        on_click(t, prev if self.preq.predictions > before else None)
        return recs

    def plan(self, events: Sequence[Event]) -> Run:
        """The session store's and item index's half of :meth:`process` for every click of the
        run, in order: what the model needs and what :meth:`finish` replays per click."""
        run = Run(events, self.fetch)
        sessions, items, learn = self.sessions, self.items, self.learn
        keys, ints, tss, learns, news, had = run.keys, run.items, run.timestamps, run.learn, run.new, run.had
        clicks, sess, ended = run.clicks, run.sessions, run.ended
        hist: list[int] = []
        hoff: list[int] = []
        hlen: list[int] = []
        on_end = sessions.on_end
        t_now = 0
        if on_end is not None:  # replayed by finish() at the click that ended them
            sessions.on_end = lambda s: ended.append((t_now, s))
        try:
            for t, ev in enumerate(events):
                t_now = t
                session = sessions.touch(ev.session_id, ev.timestamp)
                n_before = len(items)
                item = items.intern(ev.item_id)
                news[t] = item == OVERFLOW or item >= n_before
                had[t] = session.clicks > 0
                if item != OVERFLOW:
                    learns[t] = learn
                    sessions.append(session, item)
                else:
                    session.clicks += 1
                keys[t] = session.key
                ints[t] = item
                tss[t] = ev.timestamp
                clicks[t] = session.clicks
                sess.append(session)
                hoff.append(len(hist))
                hlen.append(len(session.items))
                hist.extend(session.items)
        finally:
            sessions.on_end = on_end
        run.hist = np.array(hist, dtype=np.int64)
        run.hoff = np.array(hoff, dtype=np.int64)
        run.hlen = np.array(hlen, dtype=np.int64)
        return run

    def finish(self, run: Run, model: SessionModel, answers: Any,
               on_click: OnClick | None = None) -> list[list[int]]:
        """The rest of :meth:`process` for each click of a planned run, in order: the model's
        answer (``answers``: ``model``'s ``run_batch`` of the run), prequential
        scoring, latency, the session's list, the drift monitor; a challenger in shadow
        (:attr:`shadow`) learns the whole run in one call first and its answers are walked
        alongside. If the monitor swaps the model
        at a click (the retrain policy), the clicks after it are learnt and recommended again by
        the new one."""
        lists: list[list[int]] = []
        events, ints, had, news, clicks, ended = run.events, run.items, run.had, run.new, run.clicks, run.ended
        preq, monitor, record, on_end = self.preq, self.monitor, self.latency.record, self.sessions.on_end
        shadow = self.shadow
        shadowed = shadow.answers(run) if shadow is not None else None  # it learns the run too
        keys = run.keys
        e = 0
        n = len(events)
        for t in range(n):
            while e < len(ended) and ended[e][0] == t:
                if on_end is not None:
                    on_end(ended[e][1])
                e += 1
            session = run.sessions[t]
            prev = session.last_recs
            rr = preq.update(prev, ints[t]) if had[t] else None
            recs, seconds = answers.take()
            record(seconds)
            session.last_recs = recs
            lists.append(recs)
            if shadowed is not None:
                shadow.take(shadowed, keys[t], ints[t], rr)  # type: ignore[union-attr]
            self.events += 1
            if monitor is not None:
                now = session.clicks
                session.clicks = clicks[t]  # as this click left it (the store may be ahead)
                monitor.observe(events[t], ints[t], news[t], session, rr)
                session.clicks = now
                if self.model is not model and t + 1 < n:  # swapped: the rest by the new model
                    model = self.model
                    answers = run.learn_recommend(model, t + 1)
            if on_click is not None:
                on_click(t, prev if had[t] else None)
        if self.settle is not None:
            self.settle()
        return lists

    def recommendations(self, session_id: str) -> list[str] | None:
        """The current list of a live session as item ids, or ``None`` if unknown."""
        s = self.sessions.get(session_id)
        if s is None:
            return None
        recs = s.last_recs
        return self.items.names(recs)
