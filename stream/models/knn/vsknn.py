"""V-SKNN — vector multiplication session kNN (session-rec ``VMContextKNN``).

For the current session s (clicks 1..L, repeated clicks counted) and a neighbour n:

* position weight of an item of s by ``weighting`` (p = its last position): ``div`` p/L,
  ``quadratic`` (p/L)^2, ``linear`` 1 - 0.1 (L - p) if p <= 10 else 0 (session-rec's test is on the
  position, not the distance — kept), ``log`` 1/log10(L - p + 1.7), ``same``/``None`` 1;
* ``similarity="vec"``: sim = sum_{i in s & n} w(i) / |set(s)|; ``"cosine"``: the weighted cosine
  sum w(i) / (sqrt(sum_{i in s} w(i)^2) * sqrt(|n|));
* score(i) = sum over the top-``k`` neighbours containing i of sim * d(step_n) * (1 + idf(i) *
  idf_weighting), step_n = distance from the end of s to its last click that is in n (1 = last
  click), d = ``weighting_score``: ``div`` 1/step, ``quadratic`` 1/step^2, ``linear`` 1 - 0.1 step
  (0 beyond 100), ``log`` 1/log10(step + 1.7), ``same`` 1;
* idf(i) = ln(#sessions / #events with i), maintained from counts (quirk Q3).

Options kept: ``weighting_time`` ((7/8)^round(days since n ended)), ``push_reminders`` (scores of
session items times their click count + 1). Not implemented: ``dwelling_time``, ``add_reminders``,
``last_n_days``, ``last_n_clicks``, ``idf_weighting_session``, ``sampling="random"``; ``normalize``
(dividing by the maximum) does not change a ranking.

Implementation: :class:`stream.models.knn.index.KNNModel`: the compiled kernel
:mod:`stream.models.knn.kernel` when numba is available, else (numpy; step_n for all neighbours at once
with ``np.maximum.reduceat`` of the session positions of their items).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from stream.models.knn.index import MAX_SESSION_ITEMS, MAX_SESSIONS, WEIGHT_KINDS, KNNModel, _Query

DECAY = {"div": 0, "quadratic": 1, "linear": 2, "log": 3, "same": 4}  # knn_kernel's decay codes

WEIGHTINGS = ("div", "quadratic", "linear", "log", "same")
SIMILARITIES = ("vec", "cosine")


def position_weight(weighting: str | None, pos: np.ndarray, length: int) -> np.ndarray:
    """session-rec's weight of the click at 1-based position ``pos`` of ``length`` clicks.

    >>> position_weight("quadratic", np.array([1.0, 2.0]), 2).tolist()
    [0.25, 1.0]
    >>> position_weight("linear", np.array([3.0, 11.0]), 12).tolist()   # position > 10 -> 0
    [0.09999999999999998, 0.0]
    """
    if weighting is None or weighting == "same":
        return np.ones_like(pos)
    if weighting == "div":
        return pos / length
    if weighting == "quadratic":
        return (pos / length) ** 2
    if weighting == "linear":
        return np.where(pos <= 10, 1.0 - 0.1 * (length - pos), 0.0)
    if weighting == "log":
        return 1.0 / np.log10(length - pos + 1.7)
    raise ValueError(f"weighting must be one of {WEIGHTINGS} or None, got {weighting!r}")


def score_decay(weighting_score: str, step: np.ndarray) -> np.ndarray:
    """session-rec's ``<weighting_score>_score(step)``; step 1 = the last click.

    >>> score_decay("div", np.array([1.0, 2.0, 4.0])).tolist()
    [1.0, 0.5, 0.25]
    """
    if weighting_score == "div":
        return 1.0 / step
    if weighting_score == "quadratic":
        return 1.0 / (step * step)
    if weighting_score == "linear":
        return np.where(step <= 100, 1.0 - 0.1 * step, 0.0)
    if weighting_score == "log":
        return 1.0 / np.log10(step + 1.7)
    if weighting_score == "same":
        return np.ones_like(step)
    raise ValueError(f"weighting_score must be one of {WEIGHTINGS}, got {weighting_score!r}")


class VSKNN(KNNModel):
    """Vector-multiplication session kNN with position and match decays.

    Later clicks weigh more, and so does a neighbour whose match is a late click of the session.

    Parameters
    ----------
    k, sample_size, sampling, remind, max_sessions, max_session_items, max_item_sessions
        As in :class:`~stream.models.knn.index.KNNModel` (``remind=False`` drops the session's items).
    similarity
        ``"vec"`` (weighted overlap / distinct session items) or ``"cosine"`` (weighted cosine).
    weighting
        Position weight of the session's clicks: div, quadratic, linear, log, same (or None).
    weighting_score
        Decay by how far back the click matching a neighbour is: div, quadratic, linear, log, same.
    weighting_time
        Multiply a neighbour's similarity by (7/8)^(days since it ended, rounded).
    push_reminders
        Multiply the score of session items by their click count + 1.
    idf_weighting
        IDF boost weight (``False``/0 = off): score * (1 + idf(i) * idf_weighting).

    Examples
    --------
    >>> m = VSKNN(k=10)
    >>> for s, i, t in [(1, 10, 0.0), (1, 11, 60.0), (2, 11, 120.0), (2, 12, 180.0), (3, 13, 240.0)]:
    ...     m.learn_one(s, i, t, [])
    >>> m.recommend([13, 11], 300.0, k=3)
    [11, 10, 12]
    >>> m.scores([13, 11], 300.0)   # sessions 1, 2: sim w(11)/2 = 0.5, step 1; session 3: 0.25, step 2
    {10: 0.5, 11: 1.0, 12: 0.5, 13: 0.125}

    References
    ----------
    Ludewig, M., Jannach, D. (2018). Evaluation of session-based recommendation algorithms.
    User Modeling and User-Adapted Interaction 28, 331-390.
    """

    name = "vsknn"

    def __init__(self, k: int = 100, sample_size: int = 1000, sampling: str = "recent", similarity: str = "vec",
                 weighting: str | None = "div", weighting_score: str = "div", weighting_time: bool = False,
                 remind: bool = True, push_reminders: bool = False, idf_weighting: float = False,
                 max_sessions: int = MAX_SESSIONS, max_session_items: int = MAX_SESSION_ITEMS,
                 max_item_sessions: int | None = None) -> None:
        for name, value, valid in (("similarity", similarity, SIMILARITIES),
                                   ("weighting", weighting, (*WEIGHTINGS, None)),
                                   ("weighting_score", weighting_score, WEIGHTINGS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}")
        self.similarity = similarity
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.weighting_time = weighting_time
        self.push_reminders = push_reminders
        self.idf_weighting = idf_weighting
        super().__init__(k, sample_size, sampling, remind, max_sessions, max_session_items, max_item_sessions)

    def _weights(self, pos: np.ndarray, length: int) -> np.ndarray:
        return position_weight(self.weighting, pos, length)

    def _similarity(self, q: _Query, slots: np.ndarray, overlap: np.ndarray) -> np.ndarray:
        if self.similarity == "vec":
            sims = overlap / q.items.size
        else:
            w = q.weights
            sims = overlap / (np.sqrt(float(w @ w)) * np.sqrt(self.index.n_unique[slots]))
        if self.weighting_time:
            days = np.round((q.timestamp - self.index.time[slots]) / 86_400.0)
            sims = sims * (7.0 / 8.0) ** days
        return sims

    def _kernel_params(self) -> tuple[int, float, int, float, int, float, float, float] | None:
        if self.weighting_time:
            return None  # numpy path
        sim = 3 if self.similarity == "vec" else 4
        idf = float(self.idf_weighting) if self.idf_weighting else 0.0
        return (WEIGHT_KINDS[self.weighting], 0.0, sim, 0.0, 1, float(DECAY[self.weighting_score]), 0.0, idf)

    def _kernel_adjust(self, q: _Query, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.push_reminders:
            counts = Counter(q.history)
            scores = scores * np.fromiter(
                (counts.get(i, 0) + 1 for i in items.tolist()), dtype=np.float64, count=items.size
            )
        return scores

    @property
    def _one_call(self) -> bool:
        return not self.push_reminders

    def _contributions(self, q: _Query, sims: np.ndarray, items: np.ndarray, pos: np.ndarray, lens: np.ndarray,
                       offsets: np.ndarray) -> np.ndarray:
        p_star = np.maximum.reduceat(q.last_pos(items), offsets)
        decay = score_decay(self.weighting_score, q.length - p_star + 1.0)
        return np.repeat(sims * decay, lens)

    def _adjust(self, q: _Query, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.idf_weighting:
            scores = scores + scores * self.index.idf(items) * float(self.idf_weighting)
        if self.push_reminders:
            counts = Counter(q.history)
            scores = scores * np.fromiter(
                (counts.get(i, 0) + 1 for i in items.tolist()), dtype=np.float64, count=items.size
            )
        return scores
