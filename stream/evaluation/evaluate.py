"""Offline evaluation: session-rec's static protocol and the streaming (prequential) protocol.

Why one long module: both protocols and the statistics they share (coverage, popularity,
latency) are kept together so the two are computed the same way.

Both return a flat result dict with the same metric keys (``K`` is the cutoff, 20 by default):

``hit_rate_at_K``, ``mrr_at_K``, ``coverage_at_K``, ``popularity_at_K``, ``predictions``,
``ms_per_prediction`` (mean), ``ms_per_prediction_p50``, ``ms_per_prediction_p99``, ``fit_s``,
plus ``model``, ``params``, ``protocol`` and ``events``.

Static (:func:`evaluate_static`, session-rec ``evaluation/evaluation.py:evaluate_sessions``)
    Fit on TRAIN with ``learn_one`` on every event in session-rec's order (by session, then time;
    session-rec's prepared rsc15 files are already in that order and are read in file order).
    A model trained in batch (:class:`~stream.models.base.BackgroundTrained`: item2vec) is
    trained once after the fit.
    Then for every test session and every position t >= 2, recommend from the prefix of clicks
    1..t-1 and score click t. Test clicks on items unknown to training are dropped first (as
    session-rec's preprocessing does), so the candidates are the training items. Test sessions
    never enter the model: ``recommend(..., session=None)`` and no ``learn_one`` on test events.

Streaming (:func:`evaluate_stream`)
    Prequential replay, test-then-train on every click, through
    :meth:`stream.processing.core.ClickProcessor.process` — the same per-click core the worker runs.
    ``warmup`` events are learned but not scored.

Metrics follow session-rec's evaluation. HR@K and MRR@K are averaged over
prediction events and computed by :class:`stream.processing.prequential.Prequential` in both protocols;
latency is :class:`stream.processing.core.LatencyRecorder` around ``model.recommend`` (the ranked top K as a
caller gets it). Coverage@K = distinct items in the scored top-K lists / distinct training items
(streaming: distinct items seen in the stream). Popularity@K = mean over scored lists of the mean
of ``count(i) / max count`` over the list's distinct items (session-rec's ``popularity.py``
divides by the maximum); counts are training counts (streaming: counts of the stream so far,
before the scored click). An empty list adds 0 to Popularity@K.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from time import perf_counter
from typing import Any

from stream.evaluation.datasets import DEFAULT_FORMAT, read_events
from stream.events import Event
from stream.models import make_model
from stream.models.base import DEFAULT_K, BackgroundTrained, SessionModel
from stream.processing.core import BATCH_EVENTS, ClickProcessor, LatencyRecorder, chunked
from stream.processing.prequential import Prequential
from stream.progress import progress
from stream.state.items import OVERFLOW, ItemIndex
from stream.state.sessions import DEFAULT_MAX_SESSION_ITEMS, DEFAULT_TTL_S, SessionStore

PROTOCOLS = ("static", "stream", "ff19")
#: The list length K of HR@K, MRR@K, ... in the static and stream protocols.
CUTOFF = DEFAULT_K


def metric_keys(k: int = CUTOFF) -> list[str]:
    """The accuracy/diversity keys for cutoff ``k``.

    >>> metric_keys(20)
    ['hit_rate_at_20', 'mrr_at_20', 'coverage_at_20', 'popularity_at_20']
    """
    return [f"hit_rate_at_{k}", f"mrr_at_{k}", f"coverage_at_{k}", f"popularity_at_{k}"]


#: Keys every static/stream result has (with ``K`` = 20).
RESULT_KEYS = (*metric_keys(CUTOFF), "predictions", "ms_per_prediction", "ms_per_prediction_p50",
               "ms_per_prediction_p99", "fit_s", "model", "params", "protocol", "events")


class ListStats:
    """Coverage@K and Popularity@K over the scored lists.

    Examples
    --------
    >>> s = ListStats(k=2)
    >>> counts = {1: 4.0, 2: 2.0, 3: 1.0}
    >>> s.add([1, 2, 3], counts, 4.0); s.add([3], counts, 4.0)
    >>> sorted(s.covered), s.popularity  # ((1 + .5) / 2 + .25) / 2
    ([1, 2, 3], 0.5)
    >>> s.coverage(n_items=6)
    0.5
    """

    __slots__ = ("k", "covered", "pop_sum", "lists")

    def __init__(self, k: int = CUTOFF) -> None:
        self.k = k
        self.covered: set[int] = set()
        self.pop_sum = 0.0
        self.lists = 0

    def add(self, recs: Sequence[int], counts: dict[int, float], max_count: float) -> None:
        self.lists += 1
        top = set(recs[: self.k])
        if not top:
            return
        self.covered.update(top)
        if max_count > 0:
            get = counts.get
            self.pop_sum += sum(get(i, 0.0) for i in top) / (len(top) * max_count)

    @property
    def popularity(self) -> float:
        return self.pop_sum / self.lists if self.lists else 0.0

    def coverage(self, n_items: int) -> float:
        return len(self.covered - {OVERFLOW}) / n_items if n_items else 0.0


def _build(model: str | SessionModel, params: dict[str, Any] | None) -> tuple[SessionModel, str]:
    if isinstance(model, SessionModel):
        if params:
            raise ValueError("params are only used when model is given by name")
        return model, model.name or type(model).__name__
    return make_model(model, **(params or {})), model


def _metrics(k: int, preq: Prequential, lat: LatencyRecorder, stats: ListStats, n_items: int) -> dict:
    hr, mrr, cov, pop = metric_keys(k)
    return {
        hr: preq.hit_rate,
        mrr: preq.mrr,
        cov: stats.coverage(n_items),
        pop: stats.popularity,
        "predictions": preq.predictions,
        "ms_per_prediction": 1000.0 * lat.total / lat.count if lat.count else 0.0,
        "ms_per_prediction_p50": 1000.0 * lat.percentile(50),
        "ms_per_prediction_p99": 1000.0 * lat.percentile(99),
    }


def _by_session(events: Iterable[Event]) -> list[list[Event]]:
    """Group events by session id (sessions in order of first appearance), each sorted by time
    (stable, so equal timestamps keep their file order)."""
    groups: dict[str, list[Event]] = {}
    for ev in events:
        g = groups.get(ev.session_id)
        if g is None:
            g = groups[ev.session_id] = []
        g.append(ev)
    out = list(groups.values())
    for g in out:
        g.sort(key=lambda e: e.timestamp)
    return out


def _train_events(path: str | Path, fmt: str, order: str) -> Iterator[Event]:
    if order == "session":
        for group in _by_session(read_events(path, fmt, order="file")):
            yield from group
    elif order in ("file", "time"):
        yield from read_events(path, fmt, order=order)
    else:
        raise ValueError("train_order must be 'session', 'file' or 'time'")


def fit(
    model: SessionModel,
    events: Iterable[Event],
    items: ItemIndex,
    max_session_items: int = DEFAULT_MAX_SESSION_ITEMS,
    event_weights: dict[str, float] | None = None,
) -> tuple[int, dict[int, float]]:
    """``learn_one`` on every event, in the given order; returns (events, training counts).

    ``event_weights`` (per event type) are passed to a model that weights clicks.

    Each session id gets its own int key and history (its clicks so far, capped at
    ``max_session_items`` like the live session store). Sessions are not cut by inactivity:
    session-rec's training keeps the dataset's session ids as they are.
    """
    keys: dict[str, int] = {}
    hist: dict[str, list[int]] = {}
    counts: dict[int, float] = {}
    weights = event_weights if model.weights_clicks else None
    n = 0
    last_sid: str | None = None
    last_h: list[int] = []
    for ev in events:
        sid = ev.session_id
        if sid == last_sid:
            h = last_h
        else:
            h = hist.get(sid)
            if h is None:
                h = hist[sid] = []
                keys[sid] = len(keys)
            last_sid, last_h = sid, h
        item = items.intern(ev.item_id)
        n += 1
        if item == OVERFLOW:
            continue
        if weights is not None:
            model.learn_one(keys[sid], item, ev.timestamp, h, weights[ev.event_type])  # type: ignore[call-arg]
        else:
            model.learn_one(keys[sid], item, ev.timestamp, h)
        h.append(item)
        if len(h) > max_session_items:
            del h[0]
        counts[item] = counts.get(item, 0.0) + 1.0
    return n, counts


def evaluate_static(
    train: str | Path, test: str | Path, fmt: str = DEFAULT_FORMAT,  # the data
    model: str | SessionModel = "sr", params: dict[str, Any] | None = None, k: int = CUTOFF,  # the model
    train_order: str | None = None, max_session_items: int = DEFAULT_MAX_SESSION_ITEMS,
    max_predictions: int | None = None,  # the protocol
    show_progress: bool | None = None, event_weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """session-rec's static next-item protocol (all positions); see the module docstring.

    Parameters
    ----------
    train, test
        Dataset files of format ``fmt`` (see :mod:`stream.evaluation.datasets`).
    model, params
        Registry name and parameters, or a ready :class:`SessionModel` (then ``params`` is None).
    k
        Cutoff of HR/MRR/Coverage/Popularity and length of the recommended list.
    train_order
        ``"file"`` (default for ``rsc15``: session-rec's prepared files are sorted by session, then
        time), ``"session"`` (default otherwise: group by session id in order of first
        appearance, each session sorted by time) or ``"time"``.
    max_session_items
        History length given to the model (the live session store's cap).
    max_predictions
        Stop after this many predictions (quick checks).
    event_weights
        Learning weight per event type in training (:func:`stream.events.parse_event_weights`).
    """
    order = train_order or ("file" if fmt == "rsc15" else "session")
    m, name = _build(model, params)
    items = ItemIndex()
    t0 = perf_counter()
    n_train, counts = fit(m, _train_events(train, fmt, order), items, max_session_items, event_weights)
    if isinstance(m, BackgroundTrained):  # trained in batch on what learn_one buffered
        m.retrain()
    fit_s = perf_counter() - t0
    max_count = max(counts.values(), default=0.0)

    preq = Prequential(k=k, window=1)
    lat = LatencyRecorder()
    stats = ListStats(k)
    n_test = dropped = 0
    sessions = _by_session(read_events(test, fmt, order="file"))
    t1 = perf_counter()
    done = False
    for group in progress(sessions, desc=f"static {name}", enabled=show_progress):
        n_test += len(group)
        h: list[int] = []
        h_ts = 0.0  # time of the last click of the prefix: when a live caller would ask
        for ev in group:
            item = items.get(ev.item_id)
            if item is None:
                dropped += 1
                continue
            if h:
                t = perf_counter()
                recs = m.recommend(h, h_ts, k, None)
                lat.record(perf_counter() - t)
                preq.update(recs, item)
                stats.add(recs, counts, max_count)
                if max_predictions is not None and preq.predictions >= max_predictions:
                    done = True
                    break
            h.append(item)
            if len(h) > max_session_items:
                del h[0]
            h_ts = ev.timestamp
        if done:
            break
    out: dict[str, Any] = {
        "protocol": "static",
        "model": name,
        "params": m.params(),
        "k": k,
        **_metrics(k, preq, lat, stats, len(items)),
        "fit_s": fit_s,
        "eval_s": perf_counter() - t1,
        "events": n_train + n_test,
        "train_events": n_train,
        "test_events": n_test,
        "test_dropped_unknown": dropped,
        "items": len(items),
        "train_order": order,
        "truncated": done,
        "event_weights": event_weights,
    }
    return out


def _stream_events(paths: Sequence[str | Path], fmt: str, order: str) -> Iterator[Event]:
    for p in paths:
        yield from read_events(p, fmt, order=order)


def evaluate_stream(
    paths: str | Path | Sequence[str | Path] | None = None,
    fmt: str = DEFAULT_FORMAT,
    model: str | SessionModel = "sr",
    params: dict[str, Any] | None = None,
    k: int = CUTOFF,
    warmup: int = 0,
    order: str = "time",
    limit: int | None = None,
    events: Iterable[Event] | None = None,
    session_ttl: float = DEFAULT_TTL_S,
    max_session_items: int = DEFAULT_MAX_SESSION_ITEMS,
    show_progress: bool | None = None,
    total: int | None = None,
    event_weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Prequential replay through :meth:`ClickProcessor.process` (test-then-train on every click).

    Parameters
    ----------
    paths
        One file or several, replayed one after the other in the order given (e.g. ``train_full``
        then ``test`` as one stream). Each file is read in ``order`` (``"time"``: event-time
        order, as a live stream arrives; ``"file"``: as stored).
    events
        Instead of ``paths``: any iterable of :class:`~stream.events.Event` (e.g. the synthetic
        generator).
    warmup
        The first ``warmup`` events are learned (and recommended for) but not scored: every
        figure, latency included, covers the events after it.
    limit
        Replay at most this many events (warm-up included).
    session_ttl, max_session_items
        The live session store's settings (a session ends after ``session_ttl`` s idle).
    event_weights
        Learning weight per event type (:func:`stream.events.parse_event_weights`); the result's
        ``hit_rate_at_K_by_event_type`` splits HR@K by the event type of the scored click.

    ``fit_s`` is the time spent in ``process`` outside ``recommend`` (learning and the core's
    bookkeeping) after the warm-up; ``replay_s`` the whole replay, reading included.
    """
    if events is None:
        if paths is None:
            raise ValueError("give paths or events")
        if isinstance(paths, (str, Path)):
            paths = [paths]
        events = _stream_events(list(paths), fmt, order)
        sources = [str(p) for p in paths]
    else:
        sources = ["<events>"]
    if limit is not None:
        events = islice(events, limit)
        total = limit if total is None else min(total, limit)
    m, name = _build(model, params)
    proc = ClickProcessor(m, k=k, sessions=SessionStore(ttl_s=session_ttl,
                                                        max_session_items=max_session_items),
                          event_weights=event_weights)
    proc.split_queries()  # a kNN model's queries on two cores, as in the worker (same lists)
    stats = ListStats(k)
    counts: dict[int, float] = {}
    max_count = 0.0
    n = 0
    busy = 0.0
    t_start = perf_counter()
    sessions = proc.sessions
    chunk: list[Event] = []
    outside = 0.0

    by_type: dict[str, list[int]] = {}  # event type -> [scored clicks, hits]

    def on_click(t: int, scored: list[int] | None) -> None:  # in click order, after each click
        nonlocal max_count, outside
        t0 = perf_counter()
        item = proc.items.get(chunk[t].item_id)
        if scoring and scored is not None:
            stats.add(scored, counts, max_count)
            tally = by_type.get(chunk[t].event_type)
            if tally is None:
                tally = by_type[chunk[t].event_type] = [0, 0]
            tally[0] += 1
            tally[1] += item is not None and item in scored[:k]
        if item is not None:
            c = counts[item] = counts.get(item, 0.0) + 1.0
            if c > max_count:
                max_count = c
        outside += perf_counter() - t0

    stream = iter(progress(events, total=total, desc=f"stream {name}", enabled=show_progress))
    for scoring, part in ((False, islice(stream, max(warmup, 0))), (True, stream)):
        if scoring and n > 0:  # the warm-up is over: figures from here
            proc.preq = Prequential(k=k, window=proc.preq.window)
            proc.latency = LatencyRecorder()
        for chunk in chunked(part, BATCH_EVENTS):  # as a worker's polls: a run of clicks at a time
            outside = 0.0
            t0 = perf_counter()
            proc.process_batch(chunk, on_click)
            if scoring:
                busy += perf_counter() - t0 - outside  # the core's time, not these statistics'
            n += len(chunk)
    replay_s = perf_counter() - t_start
    lat = proc.latency
    return {
        "protocol": "stream",
        "model": name,
        "params": m.params(),
        "k": k,
        **_metrics(k, proc.preq, lat, stats, len(proc.items)),
        "fit_s": max(busy - lat.total, 0.0),
        "replay_s": replay_s,
        "events": n,
        "warmup": min(warmup, n) if warmup > 0 else 0,
        "items": len(proc.items),
        "sessions": sessions.started,
        "sources": sources,
        "order": order,
        "event_weights": event_weights,
        f"hit_rate_at_{k}_by_event_type": {et: round(h / n_et, 5) for et, (n_et, h) in sorted(by_type.items())},
        "predictions_by_event_type": {et: n_et for et, (n_et, _) in sorted(by_type.items())},
    }


def evaluate_ff19(**kwargs: Any) -> dict[str, Any]:
    """The FF19 protocol lives in :mod:`stream.evaluation.ff19` (``evaluate_ff19(dataset=..., model=...,
    params=..., k=..., ...)``); this forwards to it, or says clearly that it is missing."""
    if importlib.util.find_spec("stream.evaluation.ff19") is None:
        raise RuntimeError("--protocol ff19 needs stream/evaluation/ff19.py (evaluate_ff19), which is not "
                           "in this installation yet")
    mod = importlib.import_module("stream.evaluation.ff19")
    fn = getattr(mod, "evaluate_ff19", None)
    if fn is None:
        raise RuntimeError("stream.evaluation.ff19 has no evaluate_ff19 function")
    result = fn(**kwargs)
    result.setdefault("protocol", "ff19")
    return result


def format_table(result: dict[str, Any]) -> str:
    """A readable two-column table of a result dict.

    >>> print(format_table({"protocol": "static", "model": "sr", "hit_rate_at_20": 0.61234,
    ...                     "predictions": 12}))
    protocol        static
    model           sr
    hit_rate_at_20  0.6123
    predictions     12
    """
    width = max((len(key) for key in result), default=0) + 2
    lines = []
    for key, v in result.items():
        if isinstance(v, float):
            s = f"{v:.4f}"
        elif isinstance(v, dict):
            s = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        elif isinstance(v, list):
            s = " ".join(str(x) for x in v)
        else:
            s = str(v)
        lines.append(f"{key:<{width}}{s}")
    return "\n".join(lines)


__all__ = ["CUTOFF", "PROTOCOLS", "RESULT_KEYS", "ListStats", "evaluate_ff19", "evaluate_static",
           "evaluate_stream", "fit", "format_table", "metric_keys"]
