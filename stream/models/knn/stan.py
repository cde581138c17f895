"""STAN — Session-based kNN with sequence and time awareness (Garg et al., SIGIR 2019).

For the current session s (clicks 1..L) and a candidate neighbour n:

* position weight of an item of s: w1(i) = exp((p_i - L) / lambda_spw), p_i its last position;
* sim(s, n) = sum_{i in s & n} w1(i) / (sqrt(sum_{i in s} w1(i)^2) * sqrt(|n|)) * exp(-(t - t_n) /
  lambda_snh), |n| = distinct items of n, t_n = n's last click time, t = the query timestamp;
* score(i) = sum over the top-``k`` neighbours containing i of sim(s, n) * exp(-|pos_n(i) -
  pos_n(i*)| / lambda_inh), pos_n = last position in n, i* = the last item of n that is also in s.

Neighbours come from "recent" sampling: the ``sample_size`` most recently active sessions sharing
an item with s. session-rec quirks kept: ``lambda_snh`` is in **days** (Q4); positions count
repeated clicks and a repeated item takes its last position; a falsy ``lambda_spw`` switches to the
unweighted cosine; ``lambda_inh=None`` / ``lambda_snh=None`` switch those factors off. Event time is
used throughout (session-rec's ``extend`` mode stamps sessions with the wall clock, Q7).

Implementation: :class:`stream.models.knn.index.KNNModel`: the compiled kernel
:mod:`stream.models.knn.kernel` when numba is available, else (numpy-vectorised; see that module for
why and how). The weighted overlap of every candidate is one ``bincount``; the item-position factor
uses ``np.maximum.reduceat`` over the flattened neighbours to find pos_n(i*).
"""

from __future__ import annotations

import numpy as np

from stream.models.knn.index import MAX_SESSION_ITEMS, MAX_SESSIONS, WEIGHT_KINDS, KNNModel, _Query

DAY = 86_400.0


class STAN(KNNModel):
    """Sequence- and time-aware session kNN.

    Later clicks of the session, recently active neighbours, and a neighbour's items near its
    match with the session weigh more.

    Parameters
    ----------
    k, sample_size, sampling, remind, max_sessions, max_session_items, max_item_sessions
        As in :class:`~stream.models.knn.index.KNNModel` (``remind=False`` drops the session's items).
    lambda_spw
        Session position weight length scale (clicks); falsy = unweighted cosine.
    lambda_snh
        Neighbour recency length scale in **days**; ``None`` = off.
    lambda_inh
        Neighbour item-position length scale (clicks); ``None`` = off.

    Examples
    --------
    >>> m = STAN(k=10)
    >>> for s, i, t in [(1, 10, 0.0), (1, 11, 60.0), (2, 11, 120.0), (2, 12, 180.0), (3, 13, 240.0)]:
    ...     m.learn_one(s, i, t, [])
    >>> m.recommend([11], 300.0, k=3)   # session 2 is more recent, so 12 beats 10
    [11, 12, 10]
    >>> {i: round(v, 4) for i, v in m.scores([11], 300.0).items()}
    {10: 0.4339, 11: 1.4136, 12: 0.434}

    References
    ----------
    Garg, D., Gupta, P., Malhotra, P., Vig, L., Shroff, G. (2019). Sequence and Time Aware
    Neighborhood for Session-based Recommendations: STAN. SIGIR 2019, 1069-1072.
    """

    name = "stan"

    def __init__(self, k: int = 100, sample_size: int = 5000, sampling: str = "recent", remind: bool = True,
                 lambda_spw: float | None = 1.02, lambda_snh: float | None = 5, lambda_inh: float | None = 2.05,
                 max_sessions: int = MAX_SESSIONS, max_session_items: int = MAX_SESSION_ITEMS,
                 max_item_sessions: int | None = None) -> None:
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        super().__init__(k, sample_size, sampling, remind, max_sessions, max_session_items, max_item_sessions)

    def _weights(self, pos: np.ndarray, length: int) -> np.ndarray | None:
        if not self.lambda_spw:
            return None
        return np.exp((pos - length) / self.lambda_spw)

    def _similarity(self, q: _Query, slots: np.ndarray, overlap: np.ndarray) -> np.ndarray:
        w = q.weights
        norm = np.sqrt(float(w @ w)) if w is not None else np.sqrt(float(q.items.size))
        sims = overlap / (norm * np.sqrt(self.index.n_unique[slots]))
        if self.lambda_snh is not None:
            sims *= np.exp(-(q.timestamp - self.index.time[slots]) / (self.lambda_snh * DAY))
        return sims

    def _kernel_params(self) -> tuple[int, float, int, float, int, float, float, float] | None:
        snh, inh, spw = self.lambda_snh, self.lambda_inh, self.lambda_spw
        if (snh is not None and snh <= 0) or (inh is not None and inh <= 0):
            return None  # numpy path (divisions by zero)
        weights = (WEIGHT_KINDS["exp"], float(spw)) if spw else (WEIGHT_KINDS[None], 0.0)
        sb = snh * DAY if snh is not None else 0.0
        return (*weights, 4, float(sb), 2, float(inh or 0.0), 0.0, 0.0)

    def _contributions(self, q: _Query, sims: np.ndarray, items: np.ndarray, pos: np.ndarray, lens: np.ndarray,
                       offsets: np.ndarray) -> np.ndarray:
        contrib = np.repeat(sims, lens)
        if self.lambda_inh is not None:
            shared = q.last_pos(items) > 0
            i_star = np.maximum.reduceat(np.where(shared, pos, 0.0), offsets)
            contrib *= np.exp(-np.abs(pos - np.repeat(i_star, lens)) / self.lambda_inh)
        return contrib
