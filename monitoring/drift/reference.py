"""The reference ("training distribution"): the first events after the model was (re)trained.

It is captured in fixed-size numpy arrays (one small int per event and feature), so its memory is
bounded by ``size`` whatever the catalogue; then :meth:`Reference.freeze` turns it into per-signal
histograms cut into sub-blocks (for calibration) and the bin maps the live window uses.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from monitoring.drift.signals import REGISTRY, Binning, Columns, Signal, vocab_of

#: The dtype of each :class:`~monitoring.drift.signals.Columns` field (small ints, bounded memory).
DTYPES = {"items": np.int32, "positions": np.int8, "gaps": np.int8, "cats": np.int32, "hits": np.int8}


def columns(size: int, fill: Any = np.empty) -> Columns:
    """One array of ``size`` per feature (``fill``: ``np.empty`` or ``np.zeros``)."""
    return Columns(*(fill(size, dtype=DTYPES[f]) for f in Columns._fields))


class Frozen(NamedTuple):
    """A captured reference, ready to compare live windows with."""

    blocks: dict[str, np.ndarray]  # signal -> (n_blocks, n_bins) counts
    state: dict[str, Any]  # signal -> what its live windows are binned with (Signal.reference)
    vocab: int  # items with an int below this were seen by the reference (or before it)
    events: int


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
    >>> f.blocks["popularity"].shape, f.state["popularity"].values, f.vocab, "category" in f.blocks
    ((4, 3), [0, 1], 3, False)
    """

    def __init__(self, size: int, vocab_before: int = 0) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.vocab_before = vocab_before
        self.cols = columns(size)
        self.items, self.positions, self.gaps, self.cats, self.hits = self.cols
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
               min_category_share: float = 0.5, signals: tuple[Signal, ...] | None = None) -> Frozen:
        """Histograms per sub-block of ``block`` events and the live bin maps, of each of
        ``signals`` (default: all) that takes part (:meth:`Signal.reference
        <monitoring.drift.signals.Signal.reference>`)."""
        n = self.n
        cols = Columns(*(c[:n] for c in self.cols))
        binning = Binning(block, self.vocab_before, top_items, top_categories, min_category_share)
        blocks: dict[str, np.ndarray] = {}
        state: dict[str, Any] = {}
        for sig in REGISTRY.values() if signals is None else signals:
            out = sig.reference(cols, binning)
            if out is not None:
                blocks[sig.name], state[sig.name] = out
        return Frozen(blocks, state, vocab_of(cols.items, self.vocab_before), n)


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
        self.cols = columns(size, np.zeros)
        self.items, self.positions, self.gaps, self.cats, self.hits = self.cols
        self._views()
        self.pos = 0
        self.filled = 0

    def _views(self) -> None:
        self._mv = tuple(memoryview(c) for c in self.cols)

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

    def _index(self, n: int) -> np.ndarray:
        """Positions of the last ``n`` clicks (at most :attr:`filled`), oldest first."""
        return (np.arange(self.pos - n, self.pos) % self.size) if n else np.zeros(0, dtype=np.int64)

    def tail(self, n: int) -> Columns:
        """The bins of the last ``n`` clicks (at most :attr:`filled`), oldest first: a live window."""
        idx = self._index(min(n, self.filled))
        return Columns(*(c[idx] for c in self.cols))

    def last(self, n: int, vocab_before: int = 0, hits: bool = True, size: int | None = None) -> Reference:
        """A :class:`Reference` of the last ``n`` clicks (at most :attr:`filled`), oldest first,
        with room for ``size`` (default: full at ``n``); ``hits=False``: without their hits."""
        n = min(n, self.filled)
        ref = Reference(max(n, size or 1, 1), vocab_before)
        idx = self._index(n)
        for mine, theirs in zip(self.cols, ref.cols):
            theirs[:n] = mine[idx]
        if not hits:
            ref.hits[:n] = -1
        ref.n = n
        return ref

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_mv"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._views()
