"""Popularity with exponential time decay: the baseline and every model's fallback."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from stream.models.base import DEFAULT_K, WeightsClicks


class PopularityCounts:
    """Event-time-decayed click counts with a cached top list.

    A click at time t adds ``2 ** ((t - t_ref) / half_life)``; dividing by the same factor at
    query time gives counts decayed to "now" without touching every item. ``t_ref`` is moved
    forward (rescaling all weights) before the factor can overflow. ``half_life=None`` counts
    plainly, as session-rec's POP does.

    Examples
    --------
    >>> c = PopularityCounts(half_life=None, refresh=1)
    >>> for i in (1, 2, 2, 3, 2, 3): c.add(i, 0.0)
    >>> c.top(2)
    [2, 3]
    """

    __slots__ = ("half_life", "refresh", "counts", "_t_ref", "_since", "_top", "_top_k")

    def __init__(self, half_life: float | None = None, refresh: int = 1000) -> None:
        self.half_life = half_life
        self.refresh = refresh
        self.counts: dict[int, float] = {}
        self._t_ref: float | None = None
        self._since = 0
        self._top: list[int] = []
        self._top_k = 0

    def add(self, item: int, ts: float, weight: float = 1.0) -> None:
        """Count a click on ``item`` at ``ts`` as ``weight`` clicks."""
        hl = self.half_life
        if hl is None:
            w = weight
        else:
            if self._t_ref is None:
                self._t_ref = ts
            e = (ts - self._t_ref) / hl
            if e > 60.0:  # rescale before weights overflow
                f = 2.0 ** -e
                self.counts = {i: v * f for i, v in self.counts.items()}
                self._t_ref = ts
                e = 0.0
            w = weight * 2.0**e
        counts = self.counts
        counts[item] = counts.get(item, 0.0) + w
        self._since += 1

    def count(self, item: int) -> float:
        return self.counts.get(item, 0.0)

    def top(self, k: int) -> list[int]:
        """The ``k`` most clicked items, refreshed every ``refresh`` clicks."""
        top = self._top
        if k > self._top_k or self._since >= self.refresh or len(top) < min(k, len(self.counts)):
            self._top_k = max(k, 100)
            self._top = _largest(self.counts, self._top_k)
            self._since = 0
        return self._top[:k]

    def cached(self) -> list[int]:
        """The top list as of its last refresh (at least 100 items once :meth:`top` ran), read
        without refreshing it: safe from a thread other than the one that adds clicks."""
        return self._top


def _largest(counts: dict[int, float], k: int) -> list[int]:
    """``heapq.nlargest(k, counts, key=counts.__getitem__)`` (ties in insertion order) in numpy:
    a partition keeps every item tied at the k-th count, a stable sort orders them (2x faster
    at 5,000 items).

    >>> _largest({5: 1.0, 7: 3.0, 9: 1.0, 4: 2.0}, 3)
    [7, 4, 5]
    """
    n = len(counts)
    if n <= 4 * k:
        return heapq.nlargest(k, counts, key=counts.__getitem__)
    neg = -np.fromiter(counts.values(), dtype=np.float64, count=n)
    kth = np.partition(neg, k - 1)[k - 1]
    cand = np.flatnonzero(neg <= kth)
    keys = list(counts)
    return [keys[j] for j in cand[np.argsort(neg[cand], kind="stable")[:k]].tolist()]


class Popularity(WeightsClicks):
    """Decayed item popularity, ignoring the session (POP, with a half-life).

    Parameters
    ----------
    half_life
        Half-life of a click's weight in seconds of event time; ``None`` counts all clicks
        equally (session-rec's POP).
    remind
        If ``False``, items already in the session are left out.

    A click's learning weight is what it adds to its item's count (a purchase at weight 5
    counts as five views).

    Examples
    --------
    >>> m = Popularity(half_life=None)
    >>> for t, i in enumerate([1, 2, 2, 3, 2, 3]): m.learn_one(0, i, float(t), [])
    >>> m.recommend([1], 6.0, k=2)
    [2, 3]
    >>> w = Popularity(half_life=None)
    >>> for i, weight in ((1, 3.0), (2, 1.0), (2, 1.0)): w.learn_one(0, i, 0.0, [], weight=weight)
    >>> w.recommend([], 1.0, k=2)
    [1, 2]
    """

    name = "pop"

    def __init__(self, half_life: float | None = 86_400.0, remind: bool = True) -> None:
        self.half_life = half_life
        self.remind = remind
        self._pop = PopularityCounts(half_life=half_life)

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        self._pop.add(item, timestamp, weight)

    def recommend(
        self, history: Sequence[int], timestamp: float, k: int = DEFAULT_K, session: int | None = None
    ) -> list[int]:
        if self.remind or not history:
            return self._pop.top(k)
        seen = set(history)
        return [i for i in self._pop.top(k + len(seen)) if i not in seen][:k]


def fill(recs: list[int], fallback: list[int], k: int) -> list[int]:
    """Extend ``recs`` up to ``k`` with ``fallback`` items not already in it.

    >>> fill([3, 1], [1, 2, 3, 4], 3)
    [3, 1, 2]
    """
    if len(recs) >= k:
        return recs
    have = set(recs)
    for i in fallback:
        if i not in have:
            recs.append(i)
            if len(recs) >= k:
                break
    return recs

