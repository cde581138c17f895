"""What happens when retraining becomes due: ``alert`` (raise and keep) or ``retrain``.

``retrain`` keeps a bounded buffer of the most recent clicks; when the monitor says retraining is
due it trains ``model.clone()`` on that buffer, swaps it into the click processor in one attribute
assignment (the processor reads ``self.model`` once per click, so a click sees either the old or the
new model, never a mix), counts it, and has the monitor capture a new reference.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from stream.config import log_event
from stream.models.base import SessionModel
from stream.state.sessions import DEFAULT_MAX_SESSION_ITEMS

if TYPE_CHECKING:  # pragma: no cover
    from monitoring.drift.monitor import DriftMonitor

log = logging.getLogger("streamrec.drift")

POLICIES = ("alert", "retrain")


def train_on(model: SessionModel, events: Iterable[tuple[int, int, float]],
             max_session_items: int = DEFAULT_MAX_SESSION_ITEMS) -> int:
    """Replay ``(session key, item, timestamp)`` clicks into ``model``; returns clicks learned.

    >>> from stream.models import make_model
    >>> m = make_model("sr")
    >>> train_on(m, [(1, 10, 0.0), (1, 11, 1.0), (2, 10, 2.0)])
    3
    >>> m.recommend([10], 3.0, k=1)
    [11]
    """
    histories: dict[int, list[int]] = {}
    n = 0
    for key, item, ts in events:
        if item < 0:
            continue
        h = histories.get(key)
        if h is None:
            h = histories[key] = []
        model.learn_one(key, item, ts, h)
        h.append(item)
        if len(h) > max_session_items:
            del h[0]
        n += 1
    return n


class AlertPolicy:
    """Raise ``retraining_due`` and keep it raised; the model is left alone."""

    name = "alert"
    buffer: deque | None = None

    def on_due(self, monitor: DriftMonitor) -> bool:
        """Returns whether the model was replaced."""
        return False


class RetrainPolicy:
    """Rebuild the model from the last ``buffer_events`` clicks and swap it in.

    Parameters
    ----------
    buffer_events
        Clicks kept for retraining (bounded: a deque of ``(session key, item, timestamp)``).
    """

    name = "retrain"

    def __init__(self, buffer_events: int = 50_000) -> None:
        if buffer_events < 1:
            raise ValueError("buffer_events must be >= 1")
        self.buffer_events = buffer_events
        self.buffer: deque[tuple[int, int, float]] = deque(maxlen=buffer_events)
        self.last_seconds = 0.0

    def on_due(self, monitor: DriftMonitor) -> bool:
        processor: Any = monitor.processor
        if processor is None:
            log_event(log, "retrain skipped: no click processor attached", logging.WARNING)
            return False
        t0 = perf_counter()
        hook = getattr(processor.model, "retrain_from", None)
        if callable(hook):  # batch models (item2vec) train in the background and swap their own table
            learned = hook(self.buffer)
        else:
            model = processor.model.clone()
            learned = train_on(model, self.buffer, processor.sessions.max_session_items)
            processor.model = model  # the atomic swap
        self.last_seconds = perf_counter() - t0
        vocab = max((item for _, item, _ in self.buffer), default=-1) + 1
        monitor.retrained(vocab_before=vocab)
        log_event(log, "model retrained and swapped in", event=monitor.n, clicks=learned,
                  seconds=round(self.last_seconds, 3), retrains=monitor.retrains)
        return True


def make_policy(name: str, buffer_events: int = 50_000) -> AlertPolicy | RetrainPolicy:
    """``"alert"`` or ``"retrain"``.

    >>> make_policy("retrain", buffer_events=10).buffer.maxlen
    10
    """
    if name == "alert":
        return AlertPolicy()
    if name == "retrain":
        return RetrainPolicy(buffer_events)
    raise ValueError(f"on-drift policy must be one of {', '.join(POLICIES)}, got {name!r}")
