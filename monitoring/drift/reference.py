"""The reference ("training distribution"): the first events after the model was (re)trained.

It is captured in fixed-size numpy arrays (one small int per event and feature), so its memory is
bounded by ``size`` whatever the catalogue; then :meth:`Reference.freeze` turns it into per-signal
histograms cut into sub-blocks (for calibration) and the bin maps the live window uses.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from monitoring.drift.signals import GAP_BINS, POSITION_BINS


class Frozen(NamedTuple):
    """A captured reference, ready to compare live windows with."""

    blocks: dict[str, np.ndarray]  # signal -> (n_blocks, n_bins) counts
    item_bucket: list[int]  # item int -> popularity bin (len(item_bucket) = "other" for the rest)
    top_items: list[int]  # item int of each popularity bin but "other"
    vocab: int  # items with an int below this were seen by the reference (or before it)
    cat_bucket: list[int]  # category id -> category bin
    top_cats: list[int]  # category id of each category bin but "other"
    events: int


def _blocked(values: np.ndarray, n_bins: int, block: int) -> np.ndarray:
    """``(n_blocks, n_bins)`` counts of ``values`` per consecutive block; negative values ignored."""
    n_blocks = len(values) // block
    v = values[: n_blocks * block].astype(np.int64)
    rows = np.repeat(np.arange(n_blocks), block)
    keep = v >= 0
    flat = np.bincount(rows[keep] * n_bins + v[keep], minlength=n_blocks * n_bins)
    return flat.reshape(n_blocks, n_bins)


def _top(values: np.ndarray, k: int) -> tuple[list[int], list[int]]:
    """The ``k`` most frequent non-negative values and a value -> bin map (``k`` = other)."""
    v = values[values >= 0]
    if len(v) == 0:
        return [], []
    counts = np.bincount(v)
    top = np.argsort(-counts, kind="stable")[:k]
    top = top[counts[top] > 0]
    bucket = np.full(len(counts), len(top), dtype=np.int64)
    bucket[top] = np.arange(len(top))
    return top.tolist(), bucket.tolist()


class Reference:
    """Per-event features of the reference, in bounded arrays.

    Parameters
    ----------
    size
        Events in the reference.
    vocab_before
        Items with an int below this were known before the capture started (e.g. a retrain's
        training buffer), so they never count as unseen.

    Examples
    --------
    >>> r = Reference(size=8)
    >>> for i in range(8): r.capture(i % 3, 0, -1, -1, i % 2)
    >>> r.full
    True
    >>> f = r.freeze(block=2, top_items=2, top_categories=5)
    >>> f.blocks["popularity"].shape, f.top_items, f.vocab, "category" in f.blocks
    ((4, 3), [0, 1], 3, False)
    """

    def __init__(self, size: int, vocab_before: int = 0) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.vocab_before = vocab_before
        self.items = np.empty(size, dtype=np.int32)
        self.positions = np.empty(size, dtype=np.int8)
        self.gaps = np.empty(size, dtype=np.int8)
        self.cats = np.empty(size, dtype=np.int32)
        self.hits = np.empty(size, dtype=np.int8)
        self.n = 0

    @property
    def full(self) -> bool:
        return self.n >= self.size

    def capture(self, item: int, position: int, gap: int, cat: int, hit: int) -> None:
        """One event's bins (``-1``: not applicable, e.g. no gap on a session's first click)."""
        n = self.n
        self.items[n] = item
        self.positions[n] = position
        self.gaps[n] = gap
        self.cats[n] = cat
        self.hits[n] = hit
        self.n = n + 1

    def freeze(self, block: int, top_items: int = 100, top_categories: int = 50,
               min_category_share: float = 0.5) -> Frozen:
        """Histograms per sub-block of ``block`` events, and the live bin maps.

        ``new_items`` is calibrated on the second half only, against the vocabulary of the first
        half: the same statistic as live, with a smaller (so noisier, so conservative) vocabulary.
        ``category`` is left out when fewer than ``min_category_share`` of events carry one.
        """
        n = self.n
        items = self.items[:n]
        top, bucket = _top(items, top_items)
        mapped = np.where(items >= 0, np.take(np.asarray(bucket + [len(top)]), np.where(items >= 0, items, -1)), -1)
        blocks = {
            "popularity": _blocked(mapped, len(top) + 1, block),
            "session_length": _blocked(self.positions[:n], POSITION_BINS, block),
            "inter_click_gap": _blocked(self.gaps[:n], GAP_BINS, block),
            "performance": _blocked(self.hits[:n], 2, block),
        }
        half = n // 2
        seen = items[:half]
        vocab_mid = max(self.vocab_before, int(seen.max()) + 1 if half else 0)
        later = items[half:]
        unseen = ((later < 0) | (later >= vocab_mid)).astype(np.int8)
        blocks["new_items"] = _blocked(unseen, 2, block)
        vocab = max(self.vocab_before, int(items.max()) + 1 if n else 0)
        cats = self.cats[:n]
        top_c: list[int] = []
        cat_bucket: list[int] = []
        if n and (cats >= 0).mean() >= min_category_share:
            top_c, cat_bucket = _top(cats, top_categories)
            cmapped = np.where(cats >= 0, np.take(np.asarray(cat_bucket + [len(top_c)]), np.where(cats >= 0, cats, -1)), -1)
            blocks["category"] = _blocked(cmapped, len(top_c) + 1, block)
        return Frozen(blocks, bucket, top, vocab, cat_bucket, top_c, n)


class Ring:
    """The bins of the last ``size`` clicks, in the order of :meth:`Reference.capture`: a new
    reference can be frozen from clicks already seen (:meth:`last`), with no capture gap.

    Writes go through memoryviews (an element write costs a third of numpy's).

    Examples
    --------
    >>> ring = Ring(size=4)
    >>> for i in range(6): ring.capture(i, 0, -1, -1, 1)
    >>> ring.filled, ring.last(3).items[:3].tolist()
    (4, [3, 4, 5])
    >>> ring.last(2, hits=False).hits[:2].tolist()
    [-1, -1]
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.items = np.zeros(size, dtype=np.int32)
        self.positions = np.zeros(size, dtype=np.int8)
        self.gaps = np.zeros(size, dtype=np.int8)
        self.cats = np.zeros(size, dtype=np.int32)
        self.hits = np.zeros(size, dtype=np.int8)
        self._views()
        self.pos = 0
        self.filled = 0

    def _views(self) -> None:
        self._mv = (memoryview(self.items), memoryview(self.positions), memoryview(self.gaps),
                    memoryview(self.cats), memoryview(self.hits))

    def capture(self, item: int, position: int, gap: int, cat: int, hit: int) -> None:
        i = self.pos
        mi, mp, mg, mc, mh = self._mv
        mi[i] = item
        mp[i] = position
        mg[i] = gap
        mc[i] = cat
        mh[i] = hit
        i += 1
        self.pos = 0 if i == self.size else i
        if self.filled < self.size:
            self.filled += 1

    def last(self, n: int, vocab_before: int = 0, hits: bool = True, size: int | None = None) -> Reference:
        """A :class:`Reference` of the last ``n`` clicks (at most :attr:`filled`), oldest first,
        with room for ``size`` (default: full at ``n``)."""
        n = min(n, self.filled)
        ref = Reference(max(n, size or 1, 1), vocab_before)
        idx = (np.arange(self.pos - n, self.pos) % self.size) if n else np.zeros(0, dtype=np.int64)
        ref.items[:n] = self.items[idx]
        ref.positions[:n] = self.positions[idx]
        ref.gaps[:n] = self.gaps[idx]
        ref.cats[:n] = self.cats[idx]
        ref.hits[:n] = self.hits[idx] if hits else -1
        ref.n = n
        return ref

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_mv"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._views()
