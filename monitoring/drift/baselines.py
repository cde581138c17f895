"""The baselines our detector is compared with, run on the same stream in the same pass.

* ``adwin``: River's ADWIN (defaults, ``delta=0.002``) on the prequential hit stream alone
  (1 = the clicked item was in the previous top-k). It compares the stream with its own past, so
  any change, up or down, is a detection.
* ``evidently``: an Evidently-style rule: Jensen-Shannon distance (natural log, as Evidently and
  scipy) of item shares over the reference's top-100 items + "other", reference = the first
  ``reference_events`` clicks after ``warmup``, tumbling windows of ``window`` clicks, drift when
  the distance is ``>= 0.1`` (Evidently's default for categorical columns).

Neither has persistence nor retrains: every window/alarm is a detection.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from river.drift import ADWIN

from stream.events import Event
from stream.state.sessions import Session


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, natural log (range 0 .. sqrt(ln 2)).

    >>> round(js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) ** 2, 4) == round(math.log(2), 4)
    True
    >>> js_distance(np.array([3.0, 1.0]), np.array([6.0, 2.0]))
    0.0
    """
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return math.sqrt(max(0.5 * (kl_p + kl_q), 0.0))


class Baselines:
    """A :class:`stream.processing.core.Monitor` running both baselines; detections are event indices.

    Examples
    --------
    >>> from stream.evaluation.synthetic import SyntheticStream
    >>> from stream.processing.core import ClickProcessor
    >>> from stream.models import make_model
    >>> b = Baselines(reference_events=5_000, window=1_000, warmup=500, top_items=20)
    >>> p = ClickProcessor(make_model("pop"), monitor=b)
    >>> for e in SyntheticStream(events=12_000, seed=1, scenario="popularity-shift", drift_at=8_000):
    ...     _ = p.process(e)
    >>> b.detections["evidently"][0] >= 8_000
    True
    """

    def __init__(self, reference_events: int = 50_000, window: int = 5_000, warmup: int = 2_000,
                 top_items: int = 100, js_threshold: float = 0.1, adwin_delta: float = 0.002) -> None:
        self.reference_events = reference_events
        self.window = window
        self.warmup = warmup
        self.top_items = top_items
        self.js_threshold = js_threshold
        self.adwin_delta = adwin_delta
        self.adwin = ADWIN(delta=adwin_delta)
        self.detections: dict[str, list[int]] = {"adwin": [], "evidently": []}
        self.js_scores: list[tuple[int, float]] = []
        self.n = 0
        self._ref: dict[int, int] | None = {}
        self._ref_counts: np.ndarray | None = None
        self._bucket: dict[int, int] = {}
        self._live: list[int] = []

    def observe(self, event: Event, item: int, new_item: bool, session: Session, rr: float | None) -> None:
        n = self.n = self.n + 1
        if rr is not None:
            self.adwin.update(1 if rr > 0.0 else 0)
            if self.adwin.drift_detected:
                self.detections["adwin"].append(n)
        if n <= self.warmup:
            return
        ref = self._ref
        if ref is not None:
            ref[item] = ref.get(item, 0) + 1
            if n - self.warmup >= self.reference_events:
                top = sorted(ref, key=ref.__getitem__, reverse=True)[: self.top_items]
                self._bucket = {it: b for b, it in enumerate(top)}
                counts = np.zeros(len(top) + 1)
                for it, c in ref.items():
                    counts[self._bucket.get(it, len(top))] += c
                self._ref_counts = counts
                self._live = [0] * (len(top) + 1)
                self._ref = None
            return
        other = len(self._live) - 1
        self._live[self._bucket.get(item, other)] += 1
        if (n - self.warmup - self.reference_events) % self.window == 0:
            assert self._ref_counts is not None
            d = js_distance(self._ref_counts, np.asarray(self._live, dtype=np.float64))
            self.js_scores.append((n, d))
            if d >= self.js_threshold:
                self.detections["evidently"].append(n)
            self._live = [0] * (other + 1)

    def session_ended(self, session: Session) -> None:
        pass


class Tee:
    """Several monitors behind one (the core takes one)."""

    def __init__(self, *monitors: Any) -> None:
        self.monitors = monitors

    def observe(self, event: Event, item: int, new_item: bool, session: Session, rr: float | None) -> None:
        for m in self.monitors:
            m.observe(event, item, new_item, session, rr)

    def session_ended(self, session: Session) -> None:
        for m in self.monitors:
            m.session_ended(session)


def score_detections(indices: list[int], drift_at: int | None, drift_end: int | None = None) -> dict[str, Any]:
    """False alarms (detections before the drift) and delay (first detection at or after it).

    >>> score_detections([50, 1200, 1500], drift_at=1000)
    {'false_alarms': 1, 'delay': 200, 'detected': True}
    >>> score_detections([50], drift_at=None)
    {'false_alarms': 1, 'delay': None, 'detected': False}
    """
    if drift_at is None:
        return {"false_alarms": len(indices), "delay": None, "detected": False}
    before = [i for i in indices if i < drift_at]
    after = [i for i in indices if i >= drift_at]
    return {"false_alarms": len(before), "delay": after[0] - drift_at if after else None, "detected": bool(after)}
