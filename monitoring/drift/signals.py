"""The drift signals: their names, how each event is binned, and each score as a distance.

Every signal is a histogram over a fixed, small set of bins (never raw item ids), compared between
the reference (the training distribution) and a live window. Scores are vectorised over rows, so
calibration can score a thousand pseudo-windows in one call.

========================  ==========================================  ==============================
signal                    bins                                        score
========================  ==========================================  ==============================
``popularity``            the reference's top-K items + "other"       L-infinity of the shares
``new_items``             [known item, item unseen by the reference]  excess share of unseen items
``session_length``        position of the click in its session        KS distance of the binned CDFs
``inter_click_gap``       log-spaced gap since the session's last     KS distance of the binned CDFs
                          click
``category``              the reference's top-K categories + "other"  L-infinity of the shares
``performance``           [miss, hit] of the prequential HR@k         drop of the hit rate
========================  ==========================================  ==============================

``session_length`` bins the position of each click in its session (the session's click count so
far), not the length of ended sessions: a session only ends after the store's idle TTL (30 min of
event time by default), far too late to alarm within a few thousand events. Under a stationary
stream the position histogram is a fixed function of the session-length distribution (the
length-biased one), so it moves as soon as session lengths move.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: Signal names: the ``signal`` label values of the drift metrics (a contract for dashboards).
SIGNALS = ("popularity", "new_items", "session_length", "inter_click_gap", "category", "performance")

#: Upper edges (inclusive) of the click-position bins; the last bin is open-ended.
POSITION_EDGES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 30, 50)
_MAX_POS = POSITION_EDGES[-1] + 1
#: position (1.._MAX_POS) -> bin; positions above _MAX_POS use the last bin.
POSITION_BIN: list[int] = [0] + [
    next((b for b, e in enumerate(POSITION_EDGES) if p <= e), len(POSITION_EDGES)) for p in range(1, _MAX_POS + 1)
]
POSITION_BINS = len(POSITION_EDGES) + 1

#: Inter-click gaps: bin 0 is "no gap yet / zero gap"; then log-spaced bins from 10 ms to ~1 day.
GAP_MIN_S = 0.01
GAP_PER_DECADE = 4
GAP_BINS = 2 + 7 * GAP_PER_DECADE
_GAP_SCALE = GAP_PER_DECADE / math.log(10.0)
_GAP_OFFSET = -math.log(GAP_MIN_S) * _GAP_SCALE + 1e-9


def position_bin(clicks: int) -> int:
    """Bin of the ``clicks``-th click of a session.

    >>> [position_bin(c) for c in (1, 5, 11, 12, 13, 1000)]
    [0, 4, 10, 10, 11, 15]
    """
    return POSITION_BIN[clicks if clicks < _MAX_POS else _MAX_POS]


def gap_bin(gap: float) -> int:
    """Bin of an inter-click gap in seconds (0 for a zero or negative gap).

    >>> gap_bin(0.0), gap_bin(0.001), gap_bin(1.0), gap_bin(1e9) == GAP_BINS - 1
    (0, 1, 9, True)
    """
    if gap <= 0.0:
        return 0
    b = 1 + int(math.log(gap) * _GAP_SCALE + _GAP_OFFSET)
    return 1 if b < 1 else (GAP_BINS - 1 if b >= GAP_BINS else b)


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim == 1:  # the monitor's checks: no errstate context (it costs more than the rest)
        total = counts.sum()
        return counts / total if total > 0.0 else np.full(counts.shape, np.nan)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / total


def linf(ref: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Largest change of any bin's share (NaN where a side is empty).

    >>> float(linf(np.array([50, 50]), np.array([30, 70])))
    0.2
    """
    return np.abs(_shares(ref) - _shares(live)).max(axis=-1)


def ks(ref: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Kolmogorov-Smirnov distance between two binned distributions (ordered bins).

    >>> float(ks(np.array([1, 1, 0, 0]), np.array([0, 0, 1, 1])))
    1.0
    """
    return np.abs(np.cumsum(_shares(ref), axis=-1) - np.cumsum(_shares(live), axis=-1)).max(axis=-1)


def excess(ref: np.ndarray, live: np.ndarray) -> np.ndarray:
    """How much the share of bin 1 rose (``new_items``: clicks on unseen items).

    >>> round(float(excess(np.array([99, 1]), np.array([80, 20]))), 2)
    0.19
    """
    return _shares(live)[..., 1] - _shares(ref)[..., 1]


def drop(ref: np.ndarray, live: np.ndarray) -> np.ndarray:
    """How much the share of bin 1 fell (``performance``: the hit rate).

    >>> round(float(drop(np.array([60, 40]), np.array([75, 25]))), 2)
    0.15
    """
    return _shares(ref)[..., 1] - _shares(live)[..., 1]


class Against:
    """``score(ref, live)`` of one live window at a time, the reference's side computed once
    (the monitor's checks: the reference is fixed between captures). The same numbers.

    >>> ref, live = np.array([50, 30, 20]), np.array([20, 30, 50])
    >>> [Against(ref, f)(live) == float(f(ref, live)) for f in (linf, ks, excess, drop)]
    [True, True, True, True]
    """

    __slots__ = ("score", "ref", "_r")

    def __init__(self, ref: np.ndarray, score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.score = score
        self.ref = ref
        r = _shares(ref)
        self._r = np.cumsum(r) if score is ks else (r[1] if score is excess or score is drop else r)

    def __call__(self, live: np.ndarray) -> float:
        score, r = self.score, self._r
        if score is linf:
            return float(np.abs(r - _shares(live)).max())
        if score is ks:
            return float(np.abs(r - np.cumsum(_shares(live))).max())
        if score is excess:
            return float(_shares(live)[1] - r)
        if score is drop:
            return float(r - _shares(live)[1])
        return float(score(self.ref, live))


#: signal -> (score function, what the score means, floor of its threshold).
SCORES = {
    "popularity": (linf, "L-inf of top-K item shares", 0.005),
    "new_items": (excess, "excess share of clicks on items unseen by the reference", 0.01),
    "session_length": (ks, "KS distance of click positions in sessions", 0.02),
    "inter_click_gap": (ks, "KS distance of inter-click gaps", 0.02),
    "category": (linf, "L-inf of top-K category shares", 0.01),
    "performance": (drop, "drop of the prequential hit rate", 0.02),
}
