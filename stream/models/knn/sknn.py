"""SKNN — session-based kNN (session-rec ``ContextKNN``).

score(i) = sum over the top-``k`` neighbours n containing i of sim(s, n), where the neighbours are
the most similar of the ``sample_size`` most recently active sessions sharing an item with s, and
sim is computed on item sets (li = |s & n|, la = |n|, lb = |s|):

* ``jaccard`` / ``tanimoto``: li / (la + lb - li);
* ``cosine``: session-rec computes ``li / sqrt(la) * sqrt(lb)`` = the true cosine times |s|
  (quirk Q1, kept: |s| is the same for every neighbour, so rankings are unchanged, scores are not);
* ``binary``: 2 li / (2 li + la + lb).

``remind=True`` is session-rec's reminder boost (not a filter): each of the last three clicks e
(oldest first, cnt = 1..3) gets score(e) = (score(e) + 5) * 5 + cnt / 100. Items already in the
session are never filtered out. ``pop_boost`` adds pop_boost * (neighbours containing i / max over
items). ``normalize`` (divide by the maximum) does not change a ranking and is not offered.

Implementation: :class:`stream.models.knn.index.KNNModel`: the compiled kernel
:mod:`stream.models.knn.kernel` when numba is available, else (numpy; the overlap of every candidate is
one ``bincount`` over the concatenated posting lists, the item scores another).
"""

from __future__ import annotations

import numpy as np

from stream.models.knn.index import (
    MAX_SESSION_ITEMS,
    MAX_SESSIONS,
    WEIGHT_KINDS,
    KNNModel,
    _Query,
    sum_by_item,
)

SIMILARITIES = ("jaccard", "cosine", "tanimoto", "binary")


class SKNN(KNNModel):
    """Session kNN on item sets.

    Neighbours are compared on their sets of items; an item's score sums the similarities of the
    neighbours that hold it.

    Parameters
    ----------
    k, sample_size, sampling, max_sessions, max_session_items, max_item_sessions
        As in :class:`~stream.models.knn.index.KNNModel` (neighbours, candidates, memory caps).
    similarity
        jaccard, cosine (session-rec's, times |s|), tanimoto or binary.
    remind
        session-rec's reminder boost of the last three clicks.
    pop_boost
        Weight of the neighbourhood popularity added to each score (0 = off).

    Examples
    --------
    >>> m = SKNN(k=10, similarity="cosine")
    >>> for s, i, t in [(1, 10, 0.0), (1, 11, 60.0), (2, 11, 120.0), (2, 12, 180.0), (3, 13, 240.0)]:
    ...     m.learn_one(s, i, t, [])
    >>> m.recommend([13, 11], 300.0, k=3)
    [11, 13, 10]
    >>> {i: round(v, 4) for i, v in m.scores([13, 11], 300.0).items()}   # sim = li/sqrt(la)*sqrt(2)
    {10: 1.0, 11: 2.0, 12: 1.0, 13: 1.4142}

    References
    ----------
    Jannach, D., Ludewig, M. (2017). When Recurrent Neural Networks meet the Neighborhood for
    Session-Based Recommendation. RecSys 2017, 306-310.
    """

    name = "sknn"

    def __init__(self, k: int = 100, sample_size: int = 1000, sampling: str = "recent",
                 similarity: str = "jaccard", remind: bool = False, pop_boost: float = 0,
                 max_sessions: int = MAX_SESSIONS, max_session_items: int = MAX_SESSION_ITEMS,
                 max_item_sessions: int | None = None) -> None:
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.similarity = similarity
        self.pop_boost = pop_boost
        super().__init__(k, sample_size, sampling, remind, max_sessions, max_session_items, max_item_sessions)

    def _drop_seen(self) -> bool:
        return False  # SKNN's `remind` boosts, it never filters

    def _similarity(self, q: _Query, slots: np.ndarray, overlap: np.ndarray) -> np.ndarray:
        li = overlap
        la = self.index.n_unique[slots].astype(np.float64)
        lb = float(q.items.size)
        if self.similarity == "cosine":
            return li / np.sqrt(la) * np.sqrt(lb)
        if self.similarity == "binary":
            return 2.0 * li / (2.0 * li + la + lb)
        return li / (la + lb - li)

    def _kernel_params(self) -> tuple[int, float, int, float, int, float, float, float] | None:
        kind = {"cosine": 1, "binary": 2}.get(self.similarity, 0)
        return (WEIGHT_KINDS[None], 0.0, kind, 0.0, 0, 0.0, 0.0, 0.0)

    @property
    def _one_call(self) -> bool:
        return not self.remind and not self.pop_boost > 0

    def _contributions(self, q: _Query, sims: np.ndarray, items: np.ndarray, pos: np.ndarray, lens: np.ndarray,
                       offsets: np.ndarray) -> np.ndarray:
        return np.repeat(sims, lens)

    def _scores(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        items, sc = super()._scores(q)
        if self.pop_boost > 0 and items.size:
            slots, _ = self._neighbours(q)
            nb_items, _, _ = self.index.gather(slots)
            pi, pc = sum_by_item(nb_items, np.ones(nb_items.size))
            sc = sc + self.pop_boost * pc[np.searchsorted(pi, items)] / pc.max()
        if self.remind:
            scores = dict(zip(items.tolist(), sc.tolist(), strict=True))
            for cnt, e in enumerate(q.history[-3:], 1):
                scores[e] = (scores.get(e, 0.0) + 5.0) * 5.0 + cnt / 100.0
            items = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
            sc = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        return items, sc
