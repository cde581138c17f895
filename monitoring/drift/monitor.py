"""The drift monitor the click core calls on every click (:class:`stream.processing.core.Monitor`).

Per click it only bins the event and bumps counters (O(1), a handful of list operations). Every
``check_every`` clicks it scores each signal's live window against the reference, compares the
score with its calibrated threshold, and raises ``retraining_due`` once any signal has exceeded its
threshold for long enough (persistence, below). Two time scales per signal: the check window itself
(abrupt changes: a score far beyond the reference's noise is a detection on the first check after
it, by the fitted tail of :mod:`monitoring.drift.calibration`) and a sliding window of the last
``long_checks`` check windows (slow drifts: about ``sqrt(long_checks)`` times less noise). Both are
calibrated for the same target rate of false alarms (``false_alarm_events``); the per-click cost is
unchanged and the long window adds ``long_checks`` small histograms per signal, pushed once per
check. Calibrating the long window (a bootstrap of 20,000 windows per signal) takes ~0.2 s per
signal at each (re)capture of the reference. Life cycle::

    warm-up (sessions fill) -> capture the reference -> calibrate -> live checks
                                        ^                                   |
                 rebaseline(): a new reference <--- the lifecycle <---------+ retraining due
                                                (monitoring.drift.lifecycle)

The monitor only raises "retraining due" (it calls its :attr:`DriftMonitor.subscribers`); what
follows (a challenger, a retrain, an operator) lives in :mod:`monitoring.drift.lifecycle`, which
clears it with :meth:`DriftMonitor.rebaseline`. No blind spot across a reference change: the
monitor keeps the last ``reference_events`` clicks already binned (a ring), so a new reference is
frozen from clicks it has seen and checks go on at once; when that interim reference is shorter
than ``reference_events`` (or has no hits), a full one is captured live meanwhile and replaces it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from monitoring.drift.calibration import Calibration, calibrate, calibrate_long
from monitoring.drift.reference import Frozen, Reference, Ring
from monitoring.drift.signals import (
    _GAP_OFFSET,
    _GAP_SCALE,
    GAP_BINS,
    POSITION_BIN,
    POSITION_BINS,
    POSITION_EDGES,
    SCORES,
    SIGNALS,
    Against,
)
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
    persistence
        A signal counts as detected after ``persistence`` consecutive checks over its threshold,
        or sooner when the evidence of the run of checks, the sum of ``log(1/p)`` with ``p`` each
        check's p-value against the calibration windows, reaches ``persistence * log(1/alpha)`` —
        what ``persistence`` checks right at the threshold give (never in fewer than 2). A check
        under the threshold resets both.
    long_checks
        A second, longer window per signal: the last ``long_checks`` check windows, scored at every
        check (sliding). It is detected after ``persistence`` consecutive checks over its own
        threshold, calibrated by a moving-block bootstrap of the reference
        (:func:`~monitoring.drift.calibration.calibrate_long`) for the same per-check false-alarm
        rate as a single check (``false_alarm_events``). Its noise is about
        ``sqrt(long_checks)`` times smaller, so a slow drift crosses its threshold much earlier.
        ``0`` disables it. Memory: ``long_checks`` small histograms per signal.
    long_tail
        Share of the bootstrap's run minima the long window's exponential tail is fitted to: the
        top 1% by default (200 of 20,000); a larger share fits lower down the tail, where an
        exponential overstates a near-Gaussian tail more, so the threshold is higher: quieter, and
        slower to detect a gradual drift.
    false_alarm_events
        Target clicks between false alarms of a single check: one check alone is a detection when
        its p-value is at most ``check_every / (false_alarm_events * signals)`` (Bonferroni over
        the active signals). Beyond the reference's noisiest pseudo-window the p-value comes from
        the tail fitted to the pseudo-window scores (:mod:`monitoring.drift.calibration`), so a
        shift far outside the reference's noise is detected on the first check after it.
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
        reference_events: int = 50_000,
        check_every: int = 250,
        subblocks: int = 10,
        alpha: float = 0.01,
        persistence: int = 5,
        warmup: int = 2_000,
        top_items: int = 100,
        top_categories: int = 50,
        min_count: int = 100,
        buffer_events: int = 50_000,
        signals: tuple[str, ...] = SIGNALS,
        history: int = 100_000,
        false_alarm_events: float = 1e8,
        long_checks: int = 8,
        long_tail: float = 0.01,
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
        self.long_threshold: dict[str, float] = {}
        self._ring: dict[str, deque[np.ndarray]] = {}
        self._long_sum: dict[str, np.ndarray] = {}
        self._lstreak: dict[str, int] = dict.fromkeys(self.signals, 0)
        self.long_raw_detections: dict[str, int] = dict.fromkeys(self.signals, 0)  # long window over threshold
        self.long_max_streak: dict[str, int] = dict.fromkeys(self.signals, 0)  # longest run of those
        self.max_surprise: dict[str, float] = dict.fromkeys(self.signals, 0.0)  # largest -log p of one check

        #: Called with the monitor when retraining becomes due (the lifecycle subscribes).
        self.subscribers: list[Callable[[DriftMonitor], None]] = []
        #: The most recent clicks as ``(session key, item, timestamp)``, to retrain from.
        self.recent: deque[tuple[int, int, float]] | None = (
            deque(maxlen=buffer_events) if buffer_events > 0 else None)
        self._buffer = self.recent
        self.binned = Ring(reference_events)  # the same clicks' bins, for a reference without a gap
        self._bin = self.binned.capture
        self.drift_since: int | None = None  # first click of the earliest window over threshold
        self._streak_since: dict[str, int] = dict.fromkeys(self.signals, 0)
        self.processor: Any = None
        self.n = 0  # clicks observed
        self.retrains = 0
        self.retraining_due = False
        self.due_events: list[int] = []
        self.due_timestamps: list[float] = []  # event time of each due_events entry
        self.last_ts = _NAN  # event time of the latest click
        self.detections: dict[str, list[int]] = {s: [] for s in self.signals}
        self.raw_detections: dict[str, int] = dict.fromkeys(self.signals, 0)
        self.raw_events: dict[str, deque[int]] = {s: deque(maxlen=history) for s in self.signals}
        self.reasons: dict[str, str] = {}  # the latest reason per signal
        self.alarms: deque[dict[str, Any]] = deque(maxlen=1_000)  # every persisted detection, with why
        self.due_reason = ""
        self.checks: deque[tuple[int, tuple[float, ...], tuple[float, ...], float]] = deque(maxlen=history)
        self.score: dict[str, float] = dict.fromkeys(self.signals, _NAN)
        self.threshold: dict[str, float] = dict.fromkeys(self.signals, _NAN)
        self.detected: dict[str, bool] = dict.fromkeys(self.signals, False)
        self.calibration: dict[str, Calibration] = {}
        self._streak: dict[str, int] = dict.fromkeys(self.signals, 0)
        self._evidence: dict[str, float] = dict.fromkeys(self.signals, 0.0)
        self._needed = persistence * math.log(1.0 / alpha)
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
        """Give the monitor the :class:`~stream.processing.core.ClickProcessor` (for retrains and item names)."""
        self.processor = processor

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
        if self._live:
            self._pop[self._item_bucket[item] if 0 <= item < self._n_item_bucket else self._pop_other] += 1
            self._unseen[1 if item < 0 or item >= self._vocab else 0] += 1
            self._pos[pos] += 1
            if g >= 0:
                self._gap[g] += 1
            if cid >= 0:
                self._cat[self._cat_bucket[cid] if cid < self._n_cat_bucket else self._cat_other] += 1
            if hit >= 0:
                self._perf[hit] += 1
            ref = self._ref
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
            ref = self._ref
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
        growing towards ``reference_events``, to replace this one when full)."""
        ref = self._ref
        assert ref is not None
        block = self.check_every // self.subblocks
        frozen = ref.freeze(block, self.top_items, self.top_categories)
        self._frozen = frozen
        self._ref = ref if keep else None
        self._interim_at = 0
        self._quiet = False
        if self._live:  # a new reference: what the old one detected is no longer news
            for s in self.signals:
                self._streak[s] = 0
                self._evidence[s] = 0.0
                self._lstreak[s] = 0
                self.detected[s] = False
        self.calibration = {}
        self.long_threshold = {}
        self._ring = {}
        self._long_sum = {}
        self._ref_totals: dict[str, np.ndarray] = {}
        self._scorers: dict[str, Against] = {}  # the score against the reference
        for s in self.signals:
            blocks = frozen.blocks.get(s)
            if blocks is None:
                continue
            fn, _, floor = SCORES[s]
            cal = calibrate(blocks, fn, self.subblocks, self.alpha, floor, self.persistence)
            if cal is None:
                continue
            self.calibration[s] = cal
            self.threshold[s] = cal.threshold
            self._ref_totals[s] = blocks.sum(axis=0)
            self._scorers[s] = Against(self._ref_totals[s], fn)
        if self.calibration:
            rate = self.check_every / (self.false_alarm_events * len(self.calibration))
            self._single = -math.log(rate)
            if self.long_checks > 1:
                for s in self.calibration:
                    t = calibrate_long(frozen.blocks[s], SCORES[s][0], self.subblocks, self.long_checks,
                                       self.persistence, rate, SCORES[s][2], tail=self.long_tail)
                    if t is not None:
                        self.long_threshold[s] = t
        self._item_bucket = frozen.item_bucket
        self._n_item_bucket = len(frozen.item_bucket)
        self._pop_other = len(frozen.top_items)
        self._vocab = frozen.vocab
        self._cat_bucket = frozen.cat_bucket
        self._n_cat_bucket = len(frozen.cat_bucket)
        self._cat_other = len(frozen.top_cats)
        self._reset_window()
        self._live = True
        self._next_check = self.n + self.check_every
        log_event(log, "drift reference captured", event=self.n, reference_events=frozen.events,
                  thresholds={s: round(c.threshold, 4) for s, c in self.calibration.items()})

    def _reset_window(self) -> None:
        self._pop = [0] * (self._pop_other + 1)
        self._unseen = [0, 0]
        self._pos = [0] * POSITION_BINS
        self._gap = [0] * GAP_BINS
        self._cat = [0] * (self._cat_other + 1)
        self._perf = [0, 0]

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
        for s in self.signals:
            self._streak[s] = 0
            self._evidence[s] = 0.0
            self._lstreak[s] = 0
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

    def retrained(self) -> None:
        """Count a retrain (the lifecycle swapped in a rebuilt model) and rebaseline from the
        clicks since the drift began (the part of its training window that is the present)."""
        self.retrains += 1
        self.rebaseline(self.drift_since, hits=False, quiet=True)

    def subscribe(self, callback: Callable[[DriftMonitor], None]) -> None:
        """Have ``callback(monitor)`` called when retraining becomes due."""
        if callback not in self.subscribers:
            self.subscribers.append(callback)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (checkpoints): subscribers are left out, they subscribe again on restore."""
        state = self.__dict__.copy()
        state["subscribers"] = []
        state["_bin"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bin = self.binned.capture

    # -- checks --------------------------------------------------------------------------------

    def _window(self, s: str) -> list[int]:
        return {"popularity": self._pop, "new_items": self._unseen, "session_length": self._pos,
                "inter_click_gap": self._gap, "category": self._cat, "performance": self._perf}[s]

    def _check(self) -> None:
        n = self.n
        self._next_check = n + self.check_every
        fired: list[str] = []
        for s in self.signals:
            cal = self.calibration.get(s)
            if cal is None:
                continue
            live = np.asarray(self._window(s), dtype=np.float64)
            ref = self._ref_totals[s]
            score = self._scorers[s](live) if live.sum() >= self.min_count else _NAN
            self.score[s] = score
            held_long = self._long_check(s, live)
            if score > cal.threshold or held_long:
                held = held_long
                if score > cal.threshold:
                    self.raw_detections[s] += 1
                    self.raw_events[s].append(n)
                    if not self._streak[s]:
                        self._streak_since[s] = n - self.check_every
                    self._streak[s] += 1
                    p = cal.p_value(score)
                    surprise = -math.log(p) if p > 0.0 else math.inf
                    self._evidence[s] += surprise
                    if surprise > self.max_surprise[s]:
                        self.max_surprise[s] = surprise
                    streak = self._streak[s]
                    held = held or (streak >= self.persistence or surprise >= self._single
                                    or (streak >= 2 and self._evidence[s] >= self._needed))
                else:
                    self._streak[s] = 0
                    self._evidence[s] = 0.0
                if held and not self.detected[s]:
                    self.detected[s] = True
                    self.detections[s].append(n)
                    if held_long:  # the long window's figures
                        since = n - (self.long_checks + self.persistence) * self.check_every
                        total = self._long_sum[s]
                        lscore = self._scorers[s](total)
                        self.reasons[s] = (self._why(s, ref, total, lscore, self.long_threshold[s])
                                           + f" (window of the last {self.long_checks * self.check_every} clicks)")
                    else:
                        since = self._streak_since[s]
                        self.reasons[s] = self._why(s, ref, live, score, cal.threshold)
                    if self._interim_at and self._growing_since < since:
                        since = self._growing_since  # the same drift, still without a usable reference
                    if self.drift_since is None or since < self.drift_since:
                        self.drift_since = max(since, 0)
                    self.alarms.append({"event": n, "timestamp": self.last_ts, "signal": s,
                                        "reason": self.reasons[s]})
                    log_event(log, f"drift detected on {s}", logging.WARNING, event=n, signal=s,
                              score=round(score, 4), threshold=round(cal.threshold, 4), reason=self.reasons[s])
                    fired.append(s)
            else:
                self._streak[s] = 0
                self._evidence[s] = 0.0
                self.detected[s] = False
        hits = self._perf
        hr = hits[1] / (hits[0] + hits[1]) if hits[0] + hits[1] else _NAN
        self.checks.append((n, tuple(self.score[s] for s in self.signals),
                            tuple(self.threshold[s] for s in self.signals), hr))
        self._reset_window()
        if fired and not self.retraining_due and not self._quiet:
            self.retraining_due = True
            self.due_events.append(n)
            self.due_timestamps.append(self.last_ts)
            self.due_reason = "; ".join(self.reasons[s] for s in fired)
            log_event(log, "retraining due", logging.WARNING, event=n, signals=",".join(fired),
                      since=self.drift_since, reason=self.due_reason)
            for callback in list(self.subscribers):
                callback(self)

    def _long_check(self, s: str, live: np.ndarray) -> bool:
        """Push this check's window into the signal's long window; whether the long one is held."""
        threshold = self.long_threshold.get(s)
        if threshold is None:
            return False
        ring = self._ring.get(s)
        if ring is None:
            ring = self._ring[s] = deque()
            self._long_sum[s] = np.zeros_like(live)
        total = self._long_sum[s]
        ring.append(live)
        total += live
        if len(ring) > self.long_checks:
            total -= ring.popleft()
        if len(ring) < self.long_checks or total.sum() < self.min_count:
            return False
        if self._scorers[s](total) <= threshold:
            self._lstreak[s] = 0
            return False
        self._lstreak[s] += 1
        self.long_raw_detections[s] += 1
        if self._lstreak[s] > self.long_max_streak[s]:
            self.long_max_streak[s] = self._lstreak[s]
        return self._lstreak[s] >= self.persistence

    def _why(self, s: str, ref: np.ndarray, live: np.ndarray, score: float, threshold: float) -> str:
        desc = SCORES[s][1]
        head = (f"{s}: {desc} {score:.4f} > threshold {threshold:.4f} for {self._streak[s]} checks "
                f"(evidence {self._evidence[s]:.1f}/{self._needed:.1f})")
        p = ref / ref.sum()
        q = live / live.sum()
        if s in ("popularity", "category"):
            b = int(np.argmax(np.abs(p - q)))
            tops = self._frozen.top_items if s == "popularity" else self._frozen.top_cats  # type: ignore[union-attr]
            if b >= len(tops):
                what = "'other'"
            elif s == "popularity" and self.processor is not None:
                what = f"item {self.processor.items.name(tops[b])!r}"
            elif s == "category":
                names = {v: k for k, v in self._cat_ids.items()}
                what = f"category {names.get(tops[b], tops[b])!r}"
            else:
                what = f"item #{tops[b]}"
            return f"{head}; largest change {what} {p[b]:.2%} -> {q[b]:.2%}"
        if s == "new_items":
            return f"{head}; unseen-item share {q[1]:.2%} (reference {p[1]:.2%})"
        if s == "performance":
            return f"{head}; hit rate {q[1]:.3f} (reference {p[1]:.3f})"
        b = int(np.argmax(np.abs(np.cumsum(p) - np.cumsum(q))))
        if s == "session_length":
            edge = POSITION_EDGES[b] if b < len(POSITION_EDGES) else math.inf
            return f"{head}; share of clicks at position <= {edge}: {np.cumsum(p)[b]:.2%} -> {np.cumsum(q)[b]:.2%}"
        return f"{head}; CDF differs most at gap bin {b}: {np.cumsum(p)[b]:.2%} -> {np.cumsum(q)[b]:.2%}"

    # -- export --------------------------------------------------------------------------------

    def collector(self) -> Any:
        """A ``prometheus_client`` collector of this monitor (register it on a registry)."""
        from monitoring.drift.exporter import DriftCollector

        return DriftCollector(self)

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
