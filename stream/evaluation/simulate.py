"""``simulate``: a click stream straight through the model and the drift monitor (no Kafka).

The stream goes through :class:`stream.processing.core.ClickProcessor` with the monitor attached, exactly as
in the worker; the optional baselines observe the same clicks in the same pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter
from typing import Any

from monitoring.drift.baselines import Baselines, Tee, score_detections
from monitoring.drift.monitor import DriftMonitor
from stream.events import Event
from stream.models.base import SessionModel
from stream.processing.core import BATCH_EVENTS, ClickProcessor, chunked
from stream.state.items import ItemIndex
from stream.state.sessions import SessionStore


def simulate(
    events: Iterable[Event],
    model: SessionModel,
    monitor: DriftMonitor,
    baselines: Baselines | None = None,
    k: int = 20,
    drift_at: int | None = None,
    drift_end: int | None = None,
    sessions: SessionStore | None = None,
    items: ItemIndex | None = None,
    event_weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run ``events`` through ``model`` and ``monitor``; returns the JSON-ready summary.

    ``event_weights``: learning weight per event type (``ClickProcessor``'s).

    Examples
    --------
    >>> from stream.models import make_model
    >>> from stream.evaluation.synthetic import SyntheticStream
    >>> m = DriftMonitor(reference_events=8_000, warmup=1_000, on_drift="retrain", buffer_events=5_000)
    >>> out = simulate(SyntheticStream(events=20_000, seed=2, scenario="popularity-shift", drift_at=12_000),
    ...                make_model("sr"), m, drift_at=12_000)
    >>> out["events"], 12_000 < out["retraining_due_at"] <= 16_000, out["retrains"]
    (20000, True, 1)
    """
    processor = ClickProcessor(model, k=k, sessions=sessions, items=items,
                               monitor=monitor if baselines is None else Tee(monitor, baselines),
                               event_weights=event_weights)
    monitor.attach(processor)
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
