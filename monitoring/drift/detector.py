"""One signal's checks against one reference: the persistence rule and the sliding long window.

A :class:`Detector` is built for each calibrated signal whenever the monitor freezes a reference
(:func:`detectors`, from :class:`~monitoring.drift.monitor.DriftMonitor`), and is dropped with that
reference. Per check it scores the live window and applies the rules; the monitor turns what it
returns into detections, counters and reasons. The rules (the monitor's parameters of the same
names):

``persistence``
    A signal counts as detected after ``persistence`` consecutive checks over its threshold, or
    sooner when the evidence of the run of checks, the sum of ``log(1/p)`` with ``p`` each check's
    p-value against the calibration windows, reaches ``persistence * log(1/alpha)`` — what
    ``persistence`` checks right at the threshold give (never in fewer than 2). A check under the
    threshold resets both.
``false_alarm_events``
    Target clicks between false alarms of a single check: one check alone is a detection when its
    p-value is at most ``check_every / (false_alarm_events * signals)`` (Bonferroni over the
    calibrated signals). Beyond the reference's noisiest pseudo-window the p-value comes from the
    tail fitted to the pseudo-window scores (:mod:`monitoring.drift.calibration`), so a shift far
    outside the reference's noise is detected on the first check after it.
``long_checks``
    A second, longer window per signal: the last ``long_checks`` check windows, scored at every
    check (sliding). It is detected after ``persistence`` consecutive checks over its own
    threshold, calibrated by a moving-block bootstrap of the reference
    (:func:`~monitoring.drift.calibration.calibrate_long`) for the same per-check false-alarm rate
    as a single check. Its noise is about ``sqrt(long_checks)`` times smaller, so a slow drift
    crosses its threshold much earlier. ``0`` disables it. Memory: ``long_checks`` small
    histograms per signal.
``long_tail``
    Share of the bootstrap's run minima the long window's exponential tail is fitted to: the top
    1% by default (200 of 20,000); a larger share fits lower down the tail, where an exponential
    overstates a near-Gaussian tail more, so the threshold is higher: quieter, and slower to
    detect a gradual drift.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

import numpy as np

from monitoring.drift.calibration import Calibration, calibrate, calibrate_long
from monitoring.drift.reference import Frozen
from monitoring.drift.signals import Against, Names, Signal

_NAN = float("nan")


class Check(NamedTuple):
    """What one check of one signal found."""

    score: float  # NaN: too few counts in the window
    over: bool  # the check window is over its threshold
    surprise: float  # -log p of the check (0 when not over)
    held: bool  # a detection by the persistence rule or the long window
    held_long: bool  # the long window alone has been over its threshold for ``persistence`` checks
    long_over: bool  # the long window is over its threshold on this check


class Rules(NamedTuple):
    """The monitor's settings the checks follow (:class:`~monitoring.drift.monitor.DriftMonitor`)."""

    check_every: int
    subblocks: int
    alpha: float
    persistence: int
    false_alarm_events: float
    long_checks: int
    long_tail: float
    min_count: int

    @property
    def needed(self) -> float:
        """Evidence of a run of checks that is a detection: ``persistence`` checks at the threshold."""
        return self.persistence * math.log(1.0 / self.alpha)


def detectors(frozen: Frozen, signals: tuple[Signal, ...], rules: Rules) -> tuple[dict[str, Detector], float]:
    """A :class:`Detector` for each of ``signals`` that calibrates on ``frozen``, and the surprise
    of one check alone that is a detection (``inf`` when none calibrates): its p-value is
    ``check_every / (false_alarm_events * signals)``, Bonferroni over the calibrated signals."""
    calibration: dict[str, Calibration] = {}
    for sig in signals:
        blocks = frozen.blocks.get(sig.name)
        if blocks is None:
            continue
        cal = calibrate(blocks, sig.score, rules.subblocks, rules.alpha, sig.floor, rules.persistence)
        if cal is not None:
            calibration[sig.name] = cal
    if not calibration:
        return {}, math.inf
    rate = rules.check_every / (rules.false_alarm_events * len(calibration))
    single = -math.log(rate)
    out: dict[str, Detector] = {}
    for sig in signals:
        cal = calibration.get(sig.name)
        if cal is None:
            continue
        blocks = frozen.blocks[sig.name]
        long = None
        if rules.long_checks > 1:
            long = calibrate_long(blocks, sig.score, rules.subblocks, rules.long_checks, rules.persistence,
                                  rate, sig.floor, tail=rules.long_tail)
        out[sig.name] = Detector(sig, blocks, cal, long, rules.persistence, rules.needed, single,
                                 rules.long_checks, rules.min_count)
    return out, single


class Detector:
    """The checks of ``signal`` against a reference's sub-block counts ``blocks``.

    Parameters
    ----------
    calibration
        The check window's threshold and null scores (:func:`~monitoring.drift.calibration.calibrate`).
    long_threshold
        The long window's threshold (``None``: no long window).
    persistence, needed, single
        A run of ``persistence`` checks over the threshold is a detection, or one of at least 2
        whose evidence reaches ``needed``, or one check alone whose surprise reaches ``single``.
    long_checks, min_count
        Check windows in the long window; a window with fewer counts is not scored.

    Examples
    --------
    >>> from monitoring.drift.calibration import calibrate
    >>> from monitoring.drift.signals import REGISTRY
    >>> rng = np.random.default_rng(0)
    >>> blocks = rng.multinomial(25, [0.5, 0.5], size=400)
    >>> sig = REGISTRY["performance"]
    >>> d = Detector(sig, blocks, calibrate(blocks, sig.score, 10), None, 3, 13.8, 30.0, 0, 100)
    >>> [d.check(np.array([125.0, 125.0])).held for _ in range(3)]
    [False, False, False]
    >>> [d.check(np.array([200.0, 50.0])).held for _ in range(2)]  # hit rate 0.2: the evidence of two
    [False, True]
    """

    def __init__(self, signal: Signal, blocks: np.ndarray, calibration: Calibration,
                 long_threshold: float | None, persistence: int, needed: float, single: float,
                 long_checks: int, min_count: int) -> None:
        self.signal = signal
        self.calibration = calibration
        self.ref = blocks.sum(axis=0)
        self.against = Against(self.ref, signal.score)
        self.long_threshold = long_threshold
        self.persistence = persistence
        self.needed = needed
        self.single = single
        self.long_checks = long_checks
        self.min_count = min_count
        self.streak = 0  # consecutive checks over the threshold
        self.evidence = 0.0  # their sum of -log p
        self.streak_since = 0  # first click of the first of them
        self.lstreak = 0  # consecutive checks of the long window over its threshold
        self.ring: deque[np.ndarray] = deque()  # the long window's check windows
        self.long_sum: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the runs over the threshold (a rebaseline); the long window keeps its clicks."""
        self.streak = 0
        self.evidence = 0.0
        self.lstreak = 0

    def check(self, live: np.ndarray, n: int = 0, check_every: int = 0) -> Check:
        """Score the live window that ends at click ``n`` and apply the rules."""
        cal = self.calibration
        score = self.against(live) if live.sum() >= self.min_count else _NAN
        held_long, long_over = self._long(live)
        over = score > cal.threshold
        surprise = 0.0
        held = held_long
        if over:
            if not self.streak:
                self.streak_since = n - check_every
            self.streak += 1
            p = cal.p_value(score)
            surprise = -math.log(p) if p > 0.0 else math.inf
            self.evidence += surprise
            streak = self.streak
            held = held or (streak >= self.persistence or surprise >= self.single
                            or (streak >= 2 and self.evidence >= self.needed))
        else:
            self.streak = 0
            self.evidence = 0.0
        return Check(score, over, surprise, held, held_long, long_over)

    def why(self, live: np.ndarray, score: float, threshold: float, state: Any, names: Names) -> str:
        """The reason of a detection on ``live``: the score, the run and what changed most."""
        sig = self.signal
        head = (f"{sig.name}: {sig.description} {score:.4f} > threshold {threshold:.4f} for {self.streak} checks "
                f"(evidence {self.evidence:.1f}/{self.needed:.1f})")
        ref = self.ref
        detail = sig.reason(ref / ref.sum(), live / live.sum(), state, names)
        return f"{head}; {detail}" if detail else head

    def _long(self, live: np.ndarray) -> tuple[bool, bool]:
        """Push this check's window into the long window; whether the long one is held, and over."""
        threshold = self.long_threshold
        if threshold is None:
            return False, False
        if self.long_sum is None:
            self.long_sum = np.zeros_like(live)
        ring, total = self.ring, self.long_sum
        ring.append(live)
        total += live
        if len(ring) > self.long_checks:
            total -= ring.popleft()
        if len(ring) < self.long_checks or total.sum() < self.min_count:
            return False, False
        if self.against(total) <= threshold:
            self.lstreak = 0
            return False, False
        self.lstreak += 1
        return self.lstreak >= self.persistence, True
