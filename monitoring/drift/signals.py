"""The drift signals: how each click is binned, each score as a distance, and what each says.

Every signal is a histogram over a fixed, small set of bins (never raw item ids), compared between
the reference (the training distribution) and a live window. Scores are vectorised over rows, so
calibration can score a thousand pseudo-windows in one call. Each signal is one :class:`Signal`
subclass (its bins, score, threshold floor and reason), registered in :data:`REGISTRY` as it is
defined; the reference, the calibration, the monitor and the exporter iterate over them. The
signals share one module (just over 400 lines) so that they read side by side.

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
from typing import Any, ClassVar, NamedTuple

import numpy as np

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


# -- the signals ---------------------------------------------------------------------------------


class Columns(NamedTuple):
    """The bins of a run of clicks, one array per feature (``-1``: not applicable, e.g. no gap on
    a session's first click). The monitor fills them per click (:meth:`Reference.capture
    <monitoring.drift.reference.Reference.capture>`); every signal bins one of them."""

    items: np.ndarray  # the item int (-1: none)
    positions: np.ndarray  # position_bin of the click in its session
    gaps: np.ndarray  # gap_bin since the session's last click (-1: its first click)
    cats: np.ndarray  # the category's id (-1: none)
    hits: np.ndarray  # 1: the list before the click held it, 0: it did not, -1: no list


class Binning(NamedTuple):
    """How a reference is cut and binned (the monitor's settings)."""

    block: int  # clicks per calibration sub-block
    vocab_before: int = 0  # items with an int below this count as seen
    top_items: int = 100
    top_categories: int = 50
    min_category_share: float = 0.5  # ``category`` needs at least this share of clicks with one


class Names(NamedTuple):
    """How a reason names an item int and a category id (``None``: by its number)."""

    item: Callable[[int], object] | None = None
    category: Callable[[int], object] | None = None


class Top(NamedTuple):
    """The reference's most frequent values and the value -> bin map (``len(values)``: "other")."""

    values: list[int]
    bucket: np.ndarray

    @property
    def other(self) -> int:
        return len(self.values)


def _blocked(values: np.ndarray, n_bins: int, block: int) -> np.ndarray:
    """``(n_blocks, n_bins)`` counts of ``values`` per consecutive block; negative values ignored."""
    n_blocks = len(values) // block
    v = values[: n_blocks * block].astype(np.int64)
    rows = np.repeat(np.arange(n_blocks), block)
    keep = v >= 0
    flat = np.bincount(rows[keep] * n_bins + v[keep], minlength=n_blocks * n_bins)
    return flat.reshape(n_blocks, n_bins)


def _counts(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Counts of the non-negative ``values`` in ``n_bins`` bins, as floats (one live window)."""
    v = values[values >= 0].astype(np.int64)
    return np.bincount(v, minlength=n_bins).astype(np.float64)


def _top(values: np.ndarray, k: int) -> Top:
    """The ``k`` most frequent non-negative values and their bin map."""
    v = values[values >= 0]
    if len(v) == 0:
        return Top([], np.zeros(0, dtype=np.int64))
    counts = np.bincount(v)
    top = np.argsort(-counts, kind="stable")[:k]
    top = top[counts[top] > 0]
    bucket = np.full(len(counts), len(top), dtype=np.int64)
    bucket[top] = np.arange(len(top))
    return Top(top.tolist(), bucket)


def _bucketed(values: np.ndarray, top: Top, negative: int) -> np.ndarray:
    """Each value's bin in ``top`` ("other" past its map), ``negative`` for a negative value."""
    values = values.astype(np.int64)
    out = np.full(len(values), top.other, dtype=np.int64)
    known = (values >= 0) & (values < len(top.bucket))
    out[known] = top.bucket[values[known]]
    out[values < 0] = negative
    return out


def vocab_of(items: np.ndarray, vocab_before: int = 0) -> int:
    """Items with an int below this were seen by ``items`` (or before them)."""
    return max(vocab_before, int(items.max()) + 1 if len(items) else 0)


#: name -> the signal; filled as each :class:`Signal` subclass is defined, in that order.
REGISTRY: dict[str, Signal] = {}


class Signal:
    """One drift signal: how a click is binned, how a live window is scored against the reference,
    and how it describes itself. Subclasses register themselves in :data:`REGISTRY`, so a new
    signal is one new class here (over one of the :class:`Columns`).

    The default bins are the column's own values (``n_bins`` of them, negative ones ignored), with
    nothing learnt from the reference; signals with a reference-dependent bin map override
    :meth:`reference` and :meth:`window`.
    """

    #: The ``signal`` label of the drift metrics (a contract for dashboards).
    name: ClassVar[str] = ""
    #: The :class:`Columns` field it bins.
    column: ClassVar[str] = ""
    n_bins: ClassVar[int] = 0
    #: What the score means (in alarm reasons).
    description: ClassVar[str] = ""
    #: Smallest threshold (guards a degenerate, noise-free reference).
    floor: ClassVar[float] = 0.0
    #: ``score(ref_counts, live_counts)``, vectorised over rows.
    score: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls()

    def reference(self, cols: Columns, binning: Binning) -> tuple[np.ndarray, Any] | None:
        """``(n_blocks, n_bins)`` counts of the reference per sub-block and the state its live
        windows are binned with; ``None``: the signal sits this reference out."""
        return _blocked(getattr(cols, self.column), self.n_bins, binning.block), None

    def window(self, cols: Columns, state: Any) -> np.ndarray:
        """The counts of one live window (floats), binned as the reference was."""
        return _counts(getattr(cols, self.column), self.n_bins)

    def reason(self, p: np.ndarray, q: np.ndarray, state: Any, names: Names) -> str:
        """What changed most, from the reference's shares ``p`` to the window's ``q`` ("": nothing
        beyond the score)."""
        return ""


class _TopShares(Signal):
    """The reference's top-K values of a column + "other"; the largest change of a share."""

    score = staticmethod(linf)
    #: The :class:`Binning` field that says how many top values get a bin of their own.
    top: ClassVar[str] = ""

    def reference(self, cols: Columns, binning: Binning) -> tuple[np.ndarray, Any] | None:
        values = getattr(cols, self.column)
        top = _top(values, getattr(binning, self.top))
        return _blocked(_bucketed(values, top, -1), top.other + 1, binning.block), top

    def window(self, cols: Columns, state: Top) -> np.ndarray:
        return _counts(_bucketed(getattr(cols, self.column), state, -1), state.other + 1)

    def name_of(self, value: int, names: Names) -> str:
        raise NotImplementedError

    def reason(self, p: np.ndarray, q: np.ndarray, state: Top, names: Names) -> str:
        b = int(np.argmax(np.abs(p - q)))
        what = "'other'" if b >= len(state.values) else self.name_of(state.values[b], names)
        return f"largest change {what} {p[b]:.2%} -> {q[b]:.2%}"


class Popularity(_TopShares):
    name = "popularity"
    column = "items"
    top = "top_items"
    description = "L-inf of top-K item shares"
    floor = 0.005

    def window(self, cols: Columns, state: Top) -> np.ndarray:
        # live, an item with no int (-1) counts as "other"
        return _counts(_bucketed(cols.items, state, state.other), state.other + 1)

    def name_of(self, value: int, names: Names) -> str:
        return f"item {names.item(value)!r}" if names.item is not None else f"item #{value}"


class NewItems(Signal):
    name = "new_items"
    column = "items"
    description = "excess share of clicks on items unseen by the reference"
    floor = 0.01
    score = staticmethod(excess)

    def reference(self, cols: Columns, binning: Binning) -> tuple[np.ndarray, Any] | None:
        """Calibrated on the second half only, against the vocabulary of the first half: the same
        statistic as live, with a smaller (so noisier, so conservative) vocabulary."""
        items = cols.items
        half = len(items) // 2
        vocab_mid = vocab_of(items[:half], binning.vocab_before)
        later = items[half:]
        unseen = ((later < 0) | (later >= vocab_mid)).astype(np.int8)
        return _blocked(unseen, 2, binning.block), vocab_of(items, binning.vocab_before)

    def window(self, cols: Columns, state: int) -> np.ndarray:
        items = cols.items
        return _counts(((items < 0) | (items >= state)).astype(np.int8), 2)

    def reason(self, p: np.ndarray, q: np.ndarray, state: Any, names: Names) -> str:
        return f"unseen-item share {q[1]:.2%} (reference {p[1]:.2%})"


class _Cdf(Signal):
    """Ordered bins of a column; the KS distance of the binned CDFs."""

    score = staticmethod(ks)
    floor = 0.02

    def where(self, b: int) -> str:
        """The CDF at bin ``b``, in words."""
        raise NotImplementedError

    def reason(self, p: np.ndarray, q: np.ndarray, state: Any, names: Names) -> str:
        cp, cq = np.cumsum(p), np.cumsum(q)
        b = int(np.argmax(np.abs(cp - cq)))
        return f"{self.where(b)}: {cp[b]:.2%} -> {cq[b]:.2%}"


class SessionLength(_Cdf):
    name = "session_length"
    column = "positions"
    n_bins = POSITION_BINS
    description = "KS distance of click positions in sessions"

    def where(self, b: int) -> str:
        edge = POSITION_EDGES[b] if b < len(POSITION_EDGES) else math.inf
        return f"share of clicks at position <= {edge}"


class InterClickGap(_Cdf):
    name = "inter_click_gap"
    column = "gaps"
    n_bins = GAP_BINS
    description = "KS distance of inter-click gaps"

    def where(self, b: int) -> str:
        return f"CDF differs most at gap bin {b}"


class Category(_TopShares):
    name = "category"
    column = "cats"
    top = "top_categories"
    description = "L-inf of top-K category shares"
    floor = 0.01

    def reference(self, cols: Columns, binning: Binning) -> tuple[np.ndarray, Any] | None:
        """Left out when fewer than ``min_category_share`` of the clicks carry a category."""
        cats = cols.cats
        if not len(cats) or (cats >= 0).mean() < binning.min_category_share:
            return None
        return super().reference(cols, binning)

    def name_of(self, value: int, names: Names) -> str:
        label = names.category(value) if names.category is not None else value
        return f"category {label!r}"


class Performance(Signal):
    name = "performance"
    column = "hits"
    n_bins = 2
    description = "drop of the prequential hit rate"
    floor = 0.02
    score = staticmethod(drop)

    def reason(self, p: np.ndarray, q: np.ndarray, state: Any, names: Names) -> str:
        return f"hit rate {q[1]:.3f} (reference {p[1]:.3f})"


#: Signal names: the ``signal`` label values of the drift metrics (a contract for dashboards).
SIGNALS: tuple[str, ...] = tuple(REGISTRY)
