"""``simulate``: a click stream straight through the model and the drift monitor (no Kafka).

The stream goes through :class:`stream.processing.core.ClickProcessor` with the monitor attached and the
lifecycle of retraining due (:class:`monitoring.drift.lifecycle.Lifecycle`) subscribed, exactly as
in the worker; the optional baselines observe the same clicks in the same pass.
:func:`compare_policies` runs one processor per ``--on-drift`` policy over the same clicks in one
pass, and reports each one's accuracy before and after the drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from time import perf_counter
from typing import Any

from monitoring.drift.baselines import Baselines, Tee, score_detections
from monitoring.drift.lifecycle import Lifecycle
from monitoring.drift.monitor import DriftMonitor
from monitoring.drift.policy import POLICIES
from stream.events import Event
from stream.models.base import DEFAULT_K, BackgroundTrained, SessionModel
from stream.processing.core import BATCH_EVENTS, ClickProcessor, chunked
from stream.processing.prequential import DEFAULT_WINDOW
from stream.state.items import DEFAULT_MAX_ITEMS, ItemIndex
from stream.state.sessions import SessionStore

#: Post-drift segments of :func:`compare_policies`: the first 10,000 clicks, the next 40,000, the rest.
SEGMENTS = (10_000, 40_000)


def replayed(model: SessionModel) -> SessionModel:
    """``model`` set up for a replay: a batch model trains synchronously, so its new tables serve
    from the click at which the training was asked for. In a background thread they would arrive
    a training's wall-clock time later, which a replay running far faster than a live stream turns
    into tens of thousands of clicks, and a different number on every run."""
    if isinstance(model, BackgroundTrained):
        model.background = False
    return model


def simulate(
    events: Iterable[Event],
    model: SessionModel,
    monitor: DriftMonitor,
    baselines: Baselines | None = None,
    k: int = DEFAULT_K,
    drift_at: int | None = None,
    drift_end: int | None = None,
    sessions: SessionStore | None = None,
    items: ItemIndex | None = None,
    event_weights: dict[str, float] | None = None,
    lifecycle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``events`` through ``model`` and ``monitor``; returns the JSON-ready summary.

    ``lifecycle`` holds the :class:`~monitoring.drift.lifecycle.Lifecycle` parameters
    (``on_drift``, ``promote``, ``budget``, ``alpha``, ``share``; default: a challenger).

    ``event_weights``: learning weight per event type (``ClickProcessor``'s).

    Examples
    --------
    >>> from stream.models import make_model
    >>> from stream.evaluation.synthetic import SyntheticStream
    >>> m = DriftMonitor(reference_events=8_000, warmup=1_000, buffer_events=5_000)
    >>> out = simulate(SyntheticStream(events=20_000, seed=2, scenario="popularity-shift", drift_at=12_000),
    ...                make_model("sr"), m, drift_at=12_000, lifecycle={"on_drift": "retrain"})
    >>> out["events"], 12_000 < out["retraining_due_at"] <= 16_000, out["retrains"] >= 1
    (20000, True, True)
    """
    processor = ClickProcessor(replayed(model), k=k, sessions=sessions, items=items,
                               monitor=monitor if baselines is None else Tee(monitor, baselines),
                               event_weights=event_weights)
    monitor.attach(processor)
    life = Lifecycle(monitor, processor, **(lifecycle or {}))
    monitor.subscribe(life.on_due)
    processor.split_queries()  # a kNN model's queries on two cores, as in the worker (same lists)
    t0 = perf_counter()
    for chunk in chunked(events, BATCH_EVENTS):  # as a worker's polls: a run of clicks at a time
        processor.process_batch(chunk)
    seconds = perf_counter() - t0
    out: dict[str, Any] = monitor.summary()
    out.update({
        "events": processor.events,
        "hit_rate_at_20" if k == 20 else f"hit_rate_at_{k}": round(processor.preq.hit_rate, 5),
        "mrr": round(processor.preq.mrr, 5),
        "seconds": round(seconds, 2),
        "events_per_s": round(processor.events / seconds) if seconds else None,
        "promotions": [p["event"] for p in life.promotions],
        "lifecycle": _lifecycle_summary(life),
    })
    if drift_at is not None:
        out["drift_at"] = drift_at
        out["drift_end"] = drift_end
        out["score"] = score_detections(monitor.due_events, drift_at)
    if baselines is not None:
        out["baselines"] = {
            name: {"detections": idx, **score_detections(idx, drift_at)} for name, idx in baselines.detections.items()
        }
    return out


def _lifecycle_summary(life: Lifecycle) -> dict[str, Any]:
    return {"on_drift": life.on_drift, "promotions": list(life.promotions), "clears": list(life.clears),
            "dropped": life.dropped, "acknowledgements": life.acknowledgements, "state": life.state}


class _Track:
    """One policy's processor, with its cumulative (clicks, predictions, hits, reciprocal ranks)
    after every run of clicks: segments and windowed curves are differences of these."""

    def __init__(self, name: str, processor: ClickProcessor, monitor: DriftMonitor, life: Lifecycle) -> None:
        self.name, self.processor, self.monitor, self.life = name, processor, monitor, life
        self.marks: list[tuple[int, int, int, float]] = [(0, 0, 0, 0.0)]
        self.seconds = 0.0

    def feed(self, chunk: Sequence[Event]) -> None:
        t0 = perf_counter()
        self.processor.process_batch(chunk)
        self.seconds += perf_counter() - t0
        p = self.processor
        self.marks.append((p.events, p.preq.predictions, p.preq.hits, p.preq.rr_sum))

    def at(self, click: int) -> tuple[int, int, int, float]:
        """The cumulative counters at the first mark at or after ``click``."""
        for m in self.marks:
            if m[0] >= click:
                return m
        return self.marks[-1]

    def between(self, lo: int, hi: int | None) -> dict[str, Any]:
        a = self.at(lo)
        b = self.marks[-1] if hi is None else self.at(hi)
        n = b[1] - a[1]
        return {"clicks": b[0] - a[0], "hit_rate_at_20": round((b[2] - a[2]) / n, 5) if n else None,
                "mrr_at_20": round((b[3] - a[3]) / n, 5) if n else None}

    def windowed(self, window: int) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        last = self.marks[0]
        for m in self.marks[1:]:
            if m[0] - last[0] >= window or m is self.marks[-1]:
                if m[1] > last[1]:
                    xs.append(m[0])
                    ys.append((m[2] - last[2]) / (m[1] - last[1]))
                last = m
        return xs, ys


def compare_policies(
    events: Iterable[Event],
    make: Any,
    monitor_params: dict[str, Any],
    lifecycle: dict[str, Any] | None = None,
    k: int = DEFAULT_K,
    drift_at: int | None = None,
    session_params: dict[str, Any] | None = None,
    max_items: int = DEFAULT_MAX_ITEMS,
    policies: Sequence[str] = POLICIES,
    window: int = DEFAULT_WINDOW,
    event_weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every policy of ``policies`` on the same clicks, in one pass: one model (``make()``), monitor
    and lifecycle each, fed the same runs of clicks in turn.

    Per policy: HR@k / MRR@k overall, over the first 10,000 and the next 40,000 clicks after the
    drift start and over the rest, promotions and their click indices. The drift start is
    ``drift_at`` or, on a dataset, the first click at which any policy's monitor raised retraining
    due (they see the same clicks, so the first detection is common to all).

    >>> from stream.models import make_model
    >>> from stream.evaluation.synthetic import SyntheticStream
    >>> out = compare_policies(SyntheticStream(events=12_000, seed=1, scenario="new-catalog", drift_at=6_000),
    ...                        lambda: make_model("sr"), {"reference_events": 2_000, "warmup": 500,
    ...                        "buffer_events": 2_000}, drift_at=6_000)
    >>> sorted(out["policies"]), {"hit_rate_at_20", "first_10000", "promotions"} <= set(out["policies"]["alert"])
    (['alert', 'challenger', 'retrain'], True)
    """
    tracks: list[_Track] = []
    for name in policies:
        monitor = DriftMonitor(**monitor_params)
        processor = ClickProcessor(replayed(make()), k=k, sessions=SessionStore(**(session_params or {})),
                                   items=ItemIndex(max_items), monitor=monitor, event_weights=event_weights)
        monitor.attach(processor)
        params = dict(lifecycle or {})
        params["on_drift"] = name
        life = Lifecycle(monitor, processor, **params)
        monitor.subscribe(life.on_due)
        tracks.append(_Track(name, processor, monitor, life))
    runs: Iterable[list[Event]] = chunked(events, BATCH_EVENTS)
    if drift_at is not None:
        runs = split_at(events, [drift_at, drift_at + SEGMENTS[0], drift_at + SEGMENTS[0] + SEGMENTS[1]])
    for chunk in runs:
        for tr in tracks:
            tr.feed(chunk)
    start = drift_at
    if start is None:
        dues = [tr.monitor.due_events[0] for tr in tracks if tr.monitor.due_events]
        start = min(dues) if dues else None
    out: dict[str, Any] = {"drift_start": start, "policies": {}}
    for tr in tracks:
        p = tr.processor
        row: dict[str, Any] = {
            "hit_rate_at_20": round(p.preq.hit_rate, 5),
            "mrr_at_20": round(p.preq.mrr, 5),
            "post_drift_hit_rate_at_20": None,
            "promotions": [pr["event"] for pr in tr.life.promotions],
            "promotion_details": list(tr.life.promotions),
            "clears": list(tr.life.clears),
            "due_events": list(tr.monitor.due_events),
            "due_timestamps": list(tr.monitor.due_timestamps),
            "retrains": tr.monitor.retrains,
            "events_per_s": round(p.events / tr.seconds) if tr.seconds else None,
        }
        if start is not None:
            post = tr.between(start, None)
            row["post_drift_hit_rate_at_20"] = post["hit_rate_at_20"]
            row["post_drift_mrr_at_20"] = post["mrr_at_20"]
            row["before_drift"] = tr.between(0, start)
            row["first_10000"] = tr.between(start, start + SEGMENTS[0])
            row["next_40000"] = tr.between(start + SEGMENTS[0], start + SEGMENTS[0] + SEGMENTS[1])
            row["rest"] = tr.between(start + SEGMENTS[0] + SEGMENTS[1], None)
        xs, ys = tr.windowed(window)
        row["windowed"] = {"events": xs, "hit_rate": [round(y, 5) for y in ys]}
        out["policies"][tr.name] = row
    return out


def split_at(events: Iterable[Event], cuts: Sequence[int]) -> Iterable[list[Event]]:
    """Runs of at most :data:`BATCH_EVENTS` clicks that also end at each click index of ``cuts``
    (so segment figures are exact)."""
    cuts = sorted(c for c in cuts if c > 0)
    run: list[Event] = []
    ci = 0
    for n, ev in enumerate(events, 1):
        run.append(ev)
        while ci < len(cuts) and cuts[ci] < n:
            ci += 1
        if len(run) >= BATCH_EVENTS or (ci < len(cuts) and cuts[ci] == n):
            yield run
            run = []
    if run:
        yield run
