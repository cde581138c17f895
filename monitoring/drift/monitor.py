"""The drift monitor the click core calls on every click (:class:`stream.processing.core.Monitor`).

This module stays above 400 lines because the per-click binning, the reference's life (capture,
freeze, rebaseline with no blind spot) and the bookkeeping of detections share one state, touched
on one thread per click; what is separable lives beside it: the signals
(:mod:`~monitoring.drift.signals`), the reference (:mod:`~monitoring.drift.reference`), the
thresholds (:mod:`~monitoring.drift.calibration`) and the rules of a detection
(:mod:`~monitoring.drift.detector`).

Per click it only bins the event into a ring of the recent clicks (O(1), a handful of writes).
Every ``check_every`` clicks each signal counts its live window from the ring's last
``check_every`` clicks, and its :class:`~monitoring.drift.detector.Detector` scores it against
the reference and compares the score with its calibrated threshold; the monitor raises
``retraining_due`` once any signal has exceeded its threshold for long enough. Two time scales
per signal: the check window itself (abrupt changes: a score far beyond the reference's noise is
a detection on the first check after it, by the fitted tail of :mod:`monitoring.drift.calibration`)
and a sliding window of the last ``long_checks`` check windows (slow drifts: about
``sqrt(long_checks)`` times less noise). Both are calibrated for the same target rate of false
alarms (``false_alarm_events``); the long window adds ``long_checks`` small histograms per
signal, pushed once per check, and a bootstrap of 20,000 windows per signal at each (re)capture
of the reference. Life cycle::

    warm-up (sessions fill) -> capture the reference -> calibrate -> live checks
                                        ^                                   |
                 rebaseline(): a new reference <--- the lifecycle <---------+ retraining due
                                                (monitoring.drift.lifecycle)

The monitor only raises "retraining due": it calls each callback of :attr:`DriftMonitor.subscribers`
(:meth:`DriftMonitor.subscribe`) and knows nothing of who listens. What follows (a challenger, a
retrain, an operator) lives in :mod:`monitoring.drift.lifecycle`, which the wiring subscribes
(:mod:`monitoring.drift.config`) and which clears it with :meth:`DriftMonitor.rebaseline`; the Prometheus collectors are built on the exporter's side
(:mod:`monitoring.drift.exporter`). No blind spot across a reference change: the monitor keeps
the last ``reference_events`` clicks already binned (a ring), so a new reference is frozen from
clicks it has seen and checks go on at once; when that interim reference is shorter than
``reference_events`` (or has no hits), a full one is captured live meanwhile and replaces it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from monitoring.drift import defaults as D
from monitoring.drift.calibration import Calibration
from monitoring.drift.detector import Check, Detector, Rules, detectors
from monitoring.drift.reference import Frozen, Reference, Ring
from monitoring.drift.signals import _GAP_OFFSET, _GAP_SCALE, GAP_BINS, POSITION_BIN, REGISTRY, SIGNALS, Names
from stream.config import log_event
from stream.events import Event
from stream.state.sessions import Session

log = logging.getLogger("streamrec.drift")

_MAX_POS = len(POSITION_BIN) - 1
_GAP_LAST = GAP_BINS - 1
_log = math.log
_NAN = float("nan")


class DriftMonitor:
    """Live traffic against the training distribution, with calibrated thresholds and persistence.

    Parameters
    ----------
    reference_events
        Clicks in the reference, captured right after (re)training.
    check_every
        Clicks per live window; windows are tumbling, one check per window.
    subblocks
        Calibration cuts the reference into sub-blocks of ``check_every / subblocks`` clicks and
        scores every run of ``subblocks`` consecutive ones as a pseudo-window.
    alpha
        Target share of checks over the threshold under no drift (per signal).
    persistence, long_checks, long_tail, false_alarm_events
        The rules of a detection (:mod:`monitoring.drift.detector`): ``persistence`` checks over
        the threshold in a row, or as much evidence in fewer (never fewer than 2); one check alone
        far beyond the noise (about one false alarm per ``false_alarm_events`` clicks); or the
        sliding long window of the last ``long_checks`` check windows (``0``: none) over its own
        threshold, fitted to the top ``long_tail`` of a bootstrap of the reference.
    warmup
        Clicks ignored at start-up, while the session store fills (not after a retrain).
    top_items, top_categories
        Bins of ``popularity`` and ``category`` (+ one "other" bin).
    min_count
        A window with fewer counts in a signal's bins is not scored.
    buffer_events
        Recent ``(session key, item, timestamp)`` clicks kept to retrain from (bounded; 0: none).
    signals
        Signals to run (default: all of :data:`~monitoring.drift.signals.SIGNALS`).
    history
        Checks kept for plots and reports (bounded).

    Examples
    --------
    >>> from stream.evaluation.synthetic import SyntheticStream
    >>> from stream.processing.core import ClickProcessor
    >>> from stream.models import make_model
    >>> m = DriftMonitor(reference_events=10_000, check_every=500, warmup=1_000)
    >>> p = ClickProcessor(make_model("pop"), monitor=m)
    >>> m.attach(p)
    >>> for e in SyntheticStream(events=20_000, seed=1, scenario="new-catalog", drift_at=12_000):
    ...     _ = p.process(e)
    >>> m.retraining_due, 12_000 < m.due_events[0] <= 16_000, m.detections["new_items"][0] > 12_000
    (True, True, True)
    """

    def __init__(
        self,
        reference_events: int = D.REFERENCE_EVENTS,
        check_every: int = D.CHECK_EVERY,
        subblocks: int = 10,
        alpha: float = D.DRIFT_ALPHA,
        persistence: int = D.PERSISTENCE,
        warmup: int = D.DRIFT_WARMUP,
        top_items: int = 100,
        top_categories: int = 50,
        min_count: int = 100,
        buffer_events: int = D.BUFFER_EVENTS,
        signals: tuple[str, ...] = SIGNALS,
        history: int = 100_000,
        false_alarm_events: float = D.FALSE_ALARM_EVENTS,
        long_checks: int = D.LONG_CHECKS,
        long_tail: float = D.LONG_TAIL,
    ) -> None:
        if check_every < subblocks or check_every % subblocks:
            raise ValueError("check_every must be a positive multiple of subblocks")
        if reference_events < 4 * check_every:
            raise ValueError("reference_events must hold at least 4 windows of check_every clicks")
        if not 0 < alpha < 1 or persistence < 1 or warmup < 0 or false_alarm_events < check_every:
            raise ValueError("0 < alpha < 1, persistence >= 1, warmup >= 0, false_alarm_events >= check_every")
        unknown = set(signals) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; choose from {', '.join(SIGNALS)}")
        self.reference_events = reference_events
        self.check_every = check_every
        self.subblocks = subblocks
        self.alpha = alpha
        self.persistence = persistence
        self.warmup = warmup
        self.top_items = top_items
        self.top_categories = top_categories
        self.min_count = min_count
        self.buffer_events = buffer_events
        self.signals = tuple(signals)
        self.history = history
        self.false_alarm_events = false_alarm_events
        self.long_checks = long_checks
        self.long_tail = long_tail
        per_signal = self.signals
        self.long_threshold: dict[str, float] = {}
        self.long_raw_detections: dict[str, int] = dict.fromkeys(per_signal, 0)  # long window over threshold
        self.long_max_streak: dict[str, int] = dict.fromkeys(per_signal, 0)  # longest run of those
        self.max_surprise: dict[str, float] = dict.fromkeys(per_signal, 0.0)  # largest -log p of one check

        #: Called with the monitor when retraining becomes due (the wiring subscribes the lifecycle).
        self.subscribers: list[Callable[[DriftMonitor], None]] = []
        #: The most recent clicks as ``(session key, item, timestamp)``, to retrain from.
        self.recent: deque[tuple[int, int, float]] | None = (
            deque(maxlen=buffer_events) if buffer_events > 0 else None)
        self._buffer = self.recent
        self.binned = Ring(reference_events)  # the same clicks' bins: live windows, references without a gap
        self._bin = self.binned.capture
        self.drift_since: int | None = None  # first click of the earliest window over threshold
        self.items: Any = None  # names item ints in reasons (the processor's ItemIndex; see attach)
        self.n = 0  # clicks observed
        self.retrains = 0
        self.retraining_due = False
        self.due_events: list[int] = []
        self.due_timestamps: list[float] = []  # event time of each due_events entry
        self.last_ts = _NAN  # event time of the latest click
        self.detections: dict[str, list[int]] = {s: [] for s in per_signal}
        self.raw_detections: dict[str, int] = dict.fromkeys(per_signal, 0)
        self.raw_events: dict[str, deque[int]] = {s: deque(maxlen=history) for s in per_signal}
        self.reasons: dict[str, str] = {}  # the latest reason per signal
        self.alarms: deque[dict[str, Any]] = deque(maxlen=1_000)  # every persisted detection, with why
        self.due_reason = ""
        self.checks: deque[tuple[int, tuple[float, ...], tuple[float, ...], float]] = deque(maxlen=history)
        self.score: dict[str, float] = dict.fromkeys(per_signal, _NAN)
        self.threshold: dict[str, float] = dict.fromkeys(per_signal, _NAN)
        self.detected: dict[str, bool] = dict.fromkeys(per_signal, False)
        self.calibration: dict[str, Calibration] = {}
        self._detectors: dict[str, Detector] = {}  # the calibrated signals' checks, per reference
        self._single = math.inf  # evidence of one check alone that is a detection (set at calibration)
        self._last_ts: dict[int, float] = {}
        self._cat_ids: dict[str, int] = {}
        self._max_cats = 10_000
        self._frozen: Frozen | None = None
        self._ref: Reference | None = None
        self._ref_started = 0
        self._live = False
        self._next_check = 0
        self._start_capture_at = warmup
        self._vocab_before = 0
        self._interim_at = 0  # clicks of the growing reference at which it takes over (0: when full)
        self._growing_since = 0
        self._quiet = False  # due is not raised until then (the operator said: the new normal)

    # -- wiring --------------------------------------------------------------------------------

    def attach(self, processor: Any) -> None:
        """Name items in reasons by ``processor``'s :class:`~stream.state.items.ItemIndex` (again
        after a checkpoint restore)."""
        self.items = processor.items

    def subscribe(self, callback: Callable[[DriftMonitor], None]) -> None:
        """Have ``callback(monitor)`` called when retraining becomes due."""
        if callback not in self.subscribers:
            self.subscribers.append(callback)

    @property
    def reference_size(self) -> int:
        """Clicks in the current reference (growing while it is captured)."""
        if self._frozen is not None:
            return self._frozen.events
        return self._ref.n if self._ref is not None else 0

    @property
    def active(self) -> tuple[str, ...]:
        """Signals with a calibrated threshold (``category`` needs events that carry one)."""
        return tuple(s for s in self.signals if s in self.calibration)

    # -- the per-click path -------------------------------------------------------------------

    def observe(self, event: Event, item: int, new_item: bool, session: Session, rr: float | None) -> None:
        n = self.n = self.n + 1
        key = session.key
        ts = self.last_ts = event.timestamp
        last_ts = self._last_ts
        last = last_ts.get(key)
        last_ts[key] = ts
        if last is None:
            g = -1
        else:  # gap_bin, inlined
            gap = ts - last
            if gap <= 0.0:
                g = 0
            else:
                g = 1 + int(_log(gap) * _GAP_SCALE + _GAP_OFFSET)
                g = 1 if g < 1 else (_GAP_LAST if g > _GAP_LAST else g)
        c = session.clicks
        pos = POSITION_BIN[c if c < _MAX_POS else _MAX_POS]
        cat = event.category
        cid = -1
        if cat is not None:
            cid = self._cat_ids.get(cat, -1)
            if cid < 0:
                cid = len(self._cat_ids)
                if cid < self._max_cats:
                    self._cat_ids[cat] = cid
                else:
                    cid = self._max_cats  # one shared id past the cap
        hit = -1 if rr is None else (1 if rr > 0.0 else 0)
        buf = self._buffer
        if buf is not None:
            buf.append((key, item, ts))
        self._bin(item, pos, g, cid, hit)
        ref = self._ref
        if self._live:
            if ref is not None:  # a new reference captured while the current one checks
                ref.capture(item, pos, g, cid, hit)
                if ref.n >= ref.size:
                    self._freeze()
                    return
                if ref.n == self._interim_at:  # enough to check against: it takes over, and grows
                    self._freeze(keep=True)
                    return
            if n >= self._next_check:
                self._check()
        else:
            if ref is None:
                if n <= self._start_capture_at:
                    return
                ref = self._ref = Reference(self.reference_events, self._vocab_before)
                self._ref_started = n
            ref.capture(item, pos, g, cid, hit)
            if ref.n >= ref.size:
                self._freeze()

    def session_ended(self, session: Session) -> None:
        self._last_ts.pop(session.key, None)

    # -- reference and calibration ------------------------------------------------------------

    def _freeze(self, keep: bool = False) -> None:
        """Check against the reference captured so far from now on (``keep``: it goes on
        growing towards ``reference_events``, to replace this one when full). The live window
        starts after this click; what the old reference detected is no longer news."""
        ref = self._ref
        assert ref is not None
        signals = tuple(REGISTRY[s] for s in self.signals)
        frozen = ref.freeze(self.check_every // self.subblocks, self.top_items, self.top_categories,
                            signals=signals)
        self._frozen = frozen
        self._ref = ref if keep else None
        self._interim_at = 0
        self._quiet = False
        if self._live:
            for s in self.signals:
                self.detected[s] = False
        self._detectors, single = detectors(frozen, signals, self._rules())
        if self._detectors:
            self._single = single
        self.calibration = {s: d.calibration for s, d in self._detectors.items()}
        self.long_threshold = {s: d.long_threshold for s, d in self._detectors.items()
                               if d.long_threshold is not None}
        for s, cal in self.calibration.items():
            self.threshold[s] = cal.threshold
        self._live = True
        self._next_check = self.n + self.check_every
        log_event(log, "drift reference captured", event=self.n, reference_events=frozen.events,
                  thresholds={s: round(c.threshold, 4) for s, c in self.calibration.items()})

    def rebaseline(self, since: int | None = None, hits: bool = True, quiet: bool = False,
                   min_events: int | None = None) -> int:
        """Clear ``retraining_due`` and check against a new reference of the clicks from click
        ``since`` on (default: the last ``reference_events``), with no blind spot.

        If the binned ring holds at least ``min_events`` of those clicks (default: a fifth of
        ``reference_events``, at least 4 check windows: fewer make noisy thresholds) they are
        frozen at once. Otherwise the current reference keeps checking while the new one grows
        from them live, and takes over at ``min_events`` (``quiet``: without raising retraining due
        again meanwhile; detections are still counted and exported). A new reference shorter than
        ``reference_events`` goes on growing and replaces itself when full. ``hits=False`` leaves
        the ``performance`` signal out of the clicks already seen (their hits were another
        model's). Returns the clicks in the reference checking now.
        """
        self.retraining_due = False
        self.drift_since = None
        for d in self._detectors.values():
            d.reset()
        for s in self.signals:
            self.detected[s] = False
            self.score[s] = _NAN
        if not self._live:
            return 0
        if min_events is None:
            min_events = max(4 * self.check_every, self.reference_events // 5)
        want = self.reference_events if since is None else self.n - since
        want = max(0, min(want, self.binned.filled, self.reference_events))
        vocab = self._vocab_before
        if want >= min_events:
            self._ref = self.binned.last(want, vocab, hits)
            self._freeze()
            if want < self.reference_events or not hits:  # a full one grows live meanwhile
                self._ref = (self.binned.last(want, vocab, hits, size=self.reference_events) if hits
                             else Reference(self.reference_events, vocab))
                self._ref_started = self.n
            return want
        self._ref = (self.binned.last(want, vocab, hits, size=self.reference_events) if hits and want
                     else Reference(self.reference_events, vocab))
        self._ref_started = self.n
        self._interim_at = max(min_events, self._ref.n + 1)
        self._growing_since = self.n - self._ref.n  # its first click
        self._quiet = quiet
        return self._frozen.events if self._frozen is not None else 0

    @property
    def settling(self) -> bool:
        """Whether a re-baselined reference is still growing from the clicks since the drift while
        the one from before checks (:meth:`rebaseline` with too few of them to freeze at once)."""
        return bool(self._interim_at)

    def retrained(self) -> None:
        """Count a retrain (the lifecycle swapped in a rebuilt model) and rebaseline from the
        clicks since the drift began (the part of its training window that is the present)."""
        self.retrains += 1
        self.rebaseline(self.drift_since, hits=False, quiet=True)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (checkpoints): subscribers and the item names are left out; the restore
        attaches the processor again and the wiring subscribes the lifecycle again."""
        state = self.__dict__.copy()
        state["subscribers"] = []
        state["items"] = None
        state["_bin"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bin = self.binned.capture

    # -- checks --------------------------------------------------------------------------------

    def _check(self) -> None:
        n = self.n
        self._next_check = n + self.check_every
        window = self.binned.tail(self.check_every)  # the clicks since the last check (or freeze)
        frozen = self._frozen
        assert frozen is not None
        fired: list[str] = []
        for s, d in self._detectors.items():
            live = d.signal.window(window, frozen.state[s])
            c = d.check(live, n, self.check_every)
            self.score[s] = c.score
            if c.long_over:
                self.long_raw_detections[s] += 1
                self.long_max_streak[s] = max(self.long_max_streak[s], d.lstreak)
            if not (c.over or c.held_long):
                self.detected[s] = False
                continue
            if c.over:
                self.raw_detections[s] += 1
                self.raw_events[s].append(n)
                self.max_surprise[s] = max(self.max_surprise[s], c.surprise)
            if c.held and not self.detected[s]:
                self.detected[s] = True
                self.detections[s].append(n)
                self._detected(s, d, live, c)
                fired.append(s)
        hits = window.hits
        hit, miss = int((hits == 1).sum()), int((hits == 0).sum())
        hr = hit / (hit + miss) if hit + miss else _NAN
        self.checks.append((n, tuple(self.score[s] for s in self.signals),
                            tuple(self.threshold[s] for s in self.signals), hr))
        if fired and not self.retraining_due and not self._quiet:
            self.retraining_due = True
            self.due_events.append(n)
            self.due_timestamps.append(self.last_ts)
            self.due_reason = "; ".join(self.reasons[s] for s in fired)
            log_event(log, "retraining due", logging.WARNING, event=n, signals=",".join(fired),
                      since=self.drift_since, reason=self.due_reason)
            for callback in list(self.subscribers):
                callback(self)

    def _detected(self, s: str, d: Detector, live: np.ndarray, c: Check) -> None:
        """Record why signal ``s`` is detected now, and since when the drift runs."""
        n, threshold = self.n, d.calibration.threshold
        if c.held_long:  # the long window's figures
            since = n - (self.long_checks + self.persistence) * self.check_every
            total = d.long_sum
            assert total is not None
            self.reasons[s] = (self._why(d, total, d.against(total), self.long_threshold[s])
                               + f" (window of the last {self.long_checks * self.check_every} clicks)")
        else:
            since = d.streak_since
            self.reasons[s] = self._why(d, live, c.score, threshold)
        if self._interim_at and self._growing_since < since:
            since = self._growing_since  # the same drift, still without a usable reference
        if self.drift_since is None or since < self.drift_since:
            self.drift_since = max(since, 0)
        self.alarms.append({"event": n, "timestamp": self.last_ts, "signal": s, "reason": self.reasons[s]})
        log_event(log, f"drift detected on {s}", logging.WARNING, event=n, signal=s,
                  score=round(c.score, 4), threshold=round(threshold, 4), reason=self.reasons[s])

    def _why(self, d: Detector, live: np.ndarray, score: float, threshold: float) -> str:
        frozen = self._frozen
        assert frozen is not None
        return d.why(live, score, threshold, frozen.state[d.signal.name], self._names())

    def _rules(self) -> Rules:
        return Rules(self.check_every, self.subblocks, self.alpha, self.persistence, self.false_alarm_events,
                     self.long_checks, self.long_tail, self.min_count)

    def _names(self) -> Names:
        items = self.items
        cats = {v: k for k, v in self._cat_ids.items()}
        return Names(items.name if items is not None else None, lambda c: cats.get(c, c))

    # -- export --------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What the monitor concluded, JSON-ready."""
        return {
            "retraining_due_at": self.due_events[0] if self.due_events else None,
            "retraining_due_events": list(self.due_events),
            "retraining_due_timestamps": list(self.due_timestamps),
            "detections": {s: list(v) for s, v in self.detections.items()},
            "raw_detections": dict(self.raw_detections),
            "raw_detection_events": {s: list(v) for s, v in self.raw_events.items()},
            "retrains": self.retrains,
            "alarms": list(self.alarms),
            "thresholds": {s: round(c.threshold, 5) for s, c in self.calibration.items()},
            "long_thresholds": {s: round(t, 5) for s, t in self.long_threshold.items()},
            "long_raw_detections": dict(self.long_raw_detections),
            "long_max_streak": dict(self.long_max_streak),
            "max_surprise": {s: round(v, 2) for s, v in self.max_surprise.items()},
            "single_check_surprise": round(self._single, 2),
        }
