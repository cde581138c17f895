"""VSTAN — STAN with V-SKNN's item-position decay and IDF boost (Ludewig et al., UMUAI 2021).

Everything of :mod:`stream.models.knn.stan`, then for each neighbour n and item i of n:

* times exp((p* - L) / lambda_ipw), p* = last position in the current session of an item also in n
  (V-SKNN's "which of my clicks matched this neighbour" decay, exponential);
* plus an IDF boost: score += score * idf(i) * lambda_idf, idf(i) = ln(#sessions / #events with i),
  maintained incrementally from event counts (session-rec quirk Q3: the denominator counts events).

Quirk kept: session-rec's ``VSKNN_STAN`` stores ``similarity`` but always computes the
position-weighted cosine (Q2); the parameter is accepted and ignored here too. ``lambda_snh`` is in
days (Q4); event time only (Q7).

Implementation: :class:`stream.models.knn.index.KNNModel`: the compiled kernel
:mod:`stream.models.knn.kernel` when numba is available, else (numpy; ``np.maximum.reduceat`` over the
flattened neighbours gives both pos_n(i*) and p*; the IDF factor is applied once per distinct item
after summing, which equals session-rec's per-neighbour product).
"""

from __future__ import annotations

import numpy as np

from stream.models.knn.index import MAX_SESSION_ITEMS, MAX_SESSIONS, _Query
from stream.models.knn.stan import STAN


class VSTAN(STAN):
    """STAN + item-position weighting + IDF.

    STAN's three decays, then V-SKNN's decay by the position of the session's matching click, and
    a boost of rare items.

    Parameters
    ----------
    k, sample_size, sampling, max_sessions, max_session_items, max_item_sessions
        As in :class:`~stream.models.knn.index.KNNModel` (neighbours, candidates, memory caps).
    similarity
        Accepted for compatibility and ignored: always the weighted cosine (quirk Q2).
    remind, lambda_spw, lambda_snh, lambda_inh
        As in :class:`stream.models.knn.stan.STAN` (``lambda_snh`` in days).
    lambda_ipw
        Length scale (clicks) of the decay by the position of the matching session item; ``None`` = off.
    lambda_idf
        IDF boost weight; ``None`` = off.

    Examples
    --------
    >>> m = VSTAN(k=10)
    >>> m.lambda_ipw, m.lambda_idf   # STAN's parameters, and these two
    (1.02, 5)
    >>> for s, i, t in [(1, 10, 0.0), (1, 11, 60.0), (2, 11, 120.0), (2, 12, 180.0), (3, 13, 240.0)]:
    ...     m.learn_one(s, i, t, [])
    >>> m.recommend([13, 11], 300.0, k=3)
    [11, 12, 10]
    >>> {i: round(v, 4) for i, v in m.scores([13, 11], 300.0).items()}
    {10: 2.6378, 11: 4.0068, 12: 2.6386, 13: 0.8555}

    References
    ----------
    Ludewig, M., Latifi, S., Mauro, N., Jannach, D. (2021). Empirical analysis of session-based
    recommendation algorithms. User Modeling and User-Adapted Interaction 31, 149-181.
    Garg, D. et al. (2019). Sequence and Time Aware Neighborhood for Session-based Recommendations:
    STAN. SIGIR 2019.
    """

    name = "vstan"

    def __init__(self, k: int = 100, sample_size: int = 5000, sampling: str = "recent", remind: bool = True,
                 similarity: str = "cosine", lambda_spw: float | None = 1.02, lambda_snh: float | None = 5,
                 lambda_inh: float | None = 2.05, lambda_ipw: float | None = 1.02, lambda_idf: float | None = 5,
                 max_sessions: int = MAX_SESSIONS, max_session_items: int = MAX_SESSION_ITEMS,
                 max_item_sessions: int | None = None) -> None:
        super().__init__(k, sample_size, sampling, remind, lambda_spw, lambda_snh, lambda_inh, max_sessions,
                         max_session_items, max_item_sessions)
        self.similarity = similarity
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = lambda_idf

    def _kernel_params(self) -> tuple[int, float, int, float, int, float, float, float] | None:
        spec = super()._kernel_params()
        ipw = self.lambda_ipw
        if spec is None or (ipw is not None and ipw <= 0):
            return None
        idf = float(self.lambda_idf) if self.lambda_idf is not None else 0.0
        return spec[:6] + (float(ipw or 0.0), idf)

    def _contributions(self, q: _Query, sims: np.ndarray, items: np.ndarray, pos: np.ndarray, lens: np.ndarray,
                       offsets: np.ndarray) -> np.ndarray:
        lp = q.last_pos(items)
        contrib = np.repeat(sims, lens)
        if self.lambda_inh is not None:
            i_star = np.maximum.reduceat(np.where(lp > 0, pos, 0.0), offsets)
            contrib *= np.exp(-np.abs(pos - np.repeat(i_star, lens)) / self.lambda_inh)
        if self.lambda_ipw is not None:
            p_star = np.maximum.reduceat(lp, offsets)
            contrib *= np.repeat(np.exp((p_star - q.length) / self.lambda_ipw), lens)
        return contrib

    def _adjust(self, q: _Query, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.lambda_idf is None:
            return scores
        return scores + scores * self.index.idf(items) * self.lambda_idf
