"""A challenger model in shadow and the sequential test that decides whether it replaces the champion.

The challenger learns every click the champion learns, with the same session histories. On a
deterministic hash-sampled share of sessions (``share``) it is also asked for a list after each
click; that list is scored against the session's next click exactly like the champion's, and the
pair (challenger hit, champion hit) on the same click feeds :class:`EProcess`. Its lists are never
served. Cost: one ``learn_one`` per click plus ``share`` of a ``recommend``; memory: one list per
sampled live session (bounded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitoring.drift import defaults as D
from stream.models.base import SessionModel
from stream.processing.prequential import Prequential

_HASH = 2654435761  # Knuth's multiplicative hash: session keys are consecutive ints
_MASK = 0xFFFFFFFF


class EProcess:
    """A betting e-process for "the challenger is better": ``H0: E[d_t | past] <= 0``.

    ``d_t`` in ``[-1, 1]`` is the challenger's minus the champion's per-click score (hit or
    reciprocal rank) on the same click. The wealth ``K_t = prod(1 + lambda_t d_t)`` with a bet
    ``lambda_t`` in ``[0, 1/2]`` chosen from the past only (predictable: ``mean / (var + mean^2)`` of
    the previous differences, shrunk towards 0 by ``prior`` pseudo-observations) is a non-negative
    supermartingale under ``H0``, so by Ville's inequality ``P(sup_t K_t >= 1/alpha) <= alpha``: the
    challenger is promoted when ``K_t >= 1/alpha``, and the false-promotion rate is at most ``alpha``
    whenever the test is stopped (budget, operator). Ties (``d_t = 0``, both hit or both miss)
    leave the wealth unchanged.

    >>> e = EProcess(alpha=0.05)
    >>> for _ in range(200): e.update(1.0); e.update(0.0); e.update(-1.0); e.update(1.0)
    >>> e.rejected, e.e_value > 20
    (True, True)
    >>> e = EProcess(alpha=0.05)
    >>> for _ in range(500): e.update(1.0); e.update(-1.0)
    >>> e.rejected
    False
    """

    __slots__ = ("alpha", "prior", "log_wealth", "n", "total", "squares", "max_log_wealth")

    def __init__(self, alpha: float = D.PROMOTION_ALPHA, prior: float = 20.0) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        self.alpha = alpha
        self.prior = prior
        self.log_wealth = self.max_log_wealth = 0.0  # log K_t and its running maximum
        self.n, self.total, self.squares = 0, 0.0, 0.0  # the past differences: count, sum, sum of squares

    def bet(self) -> float:
        """The next bet, from the past differences only."""
        c = self.prior
        m = self.total / (self.n + c)
        if m <= 0.0:
            return 0.0
        v = (self.squares + 0.25 * c) / (self.n + c) - m * m
        lam = m / (max(v, 1e-12) + m * m)
        return 0.5 if lam > 0.5 else lam

    def update(self, d: float) -> None:
        if d:
            lam = self.bet()
            if lam:
                self.log_wealth += math.log1p(lam * d)
                if self.log_wealth > self.max_log_wealth:
                    self.max_log_wealth = self.log_wealth
        self.n += 1
        self.total += d
        self.squares += d * d

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_wealth, 700.0))

    @property
    def rejected(self) -> bool:
        """Whether the wealth has reached ``1/alpha`` (the challenger is better)."""
        return self.log_wealth >= -math.log(self.alpha)


def _hit(recs: Sequence[int], item: int, k: int) -> tuple[int, float]:
    if item in recs:
        rank = recs.index(item) + 1
        if rank <= k:
            return 1, 1.0 / rank
    return 0, 0.0


class Challenger:
    """``model`` in shadow beside the champion, with its paired test.

    Parameters
    ----------
    model
        The challenger, already trained on its window.
    k
        List length scored (HR@k).
    share
        Share of sessions (hash-sampled on the session key, so deterministic) whose clicks the
        challenger is asked for a list and paired on.
    alpha
        False-promotion rate of the test (:class:`EProcess`).
    since, started
        Click indices: the first click of its training window, and the click it started at.
    max_sessions
        Bound on the sampled sessions whose last challenger list is kept (oldest dropped).

    Examples
    --------
    >>> from stream.models import make_model
    >>> c = Challenger(make_model("sr"), k=2, share=1.0)
    >>> c.learn(0, 5, 0.0, []); c.recommend(0, [5], 0.0)
    >>> c.learn(1, 5, 1.0, []); c.recommend(1, [5], 1.0)
    >>> c.score(2, 6, 0.0)  # a session it has no list for: nothing paired
    >>> c.score(1, 6, 0.0)  # its list after [5] against the next click, the champion missed
    >>> c.clicks, c.pairs, c.hit_rate_gain
    (2, 1, 0.0)
    """

    #: Batch models: a fit ahead of the champion is kept at a refit point (the lifecycle sets it;
    #: a class attribute, so a pickled challenger without it reads it as off).
    keep_ahead = False

    def __init__(self, model: SessionModel, k: int = 20, share: float = D.CHALLENGER_SHARE,
                 alpha: float = D.PROMOTION_ALPHA, since: int = 0, started: int = 0, window: int = 10_000,
                 max_sessions: int = 100_000) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError("share must be in (0, 1]")
        self.model = model
        self.k = k
        self.share = share
        self._cut = min(int(share * (_MASK + 1)), _MASK + 1)
        self.test = EProcess(alpha)
        self.since = since
        self.started = started
        self.max_sessions = max_sessions
        self.last: dict[int, list[int]] = {}
        self.preq = Prequential(k=k, window=window)  # the challenger on the paired clicks
        self.champion_hits = 0  # the champion's hits on the same clicks
        self.champion_rr = 0.0
        self.clicks = 0  # clicks learned in shadow
        self.waiting = False  # won, manual promotion: waits for an operator
        self.refit_at = 0  # batch models: clicks in shadow at which it fits again (0: never)
        self.refits = 0

    # -- the per-click path -------------------------------------------------------------------

    def sampled(self, key: int) -> bool:
        return (key * _HASH) & _MASK < self._cut

    def learn(self, key: int, item: int, ts: float, history: Sequence[int], weight: float = 1.0) -> None:
        if weight != 1.0 and self.model.weights_clicks:
            self.model.learn_one(key, item, ts, history, weight)  # type: ignore[call-arg]
        else:
            self.model.learn_one(key, item, ts, history)
        self.clicks += 1

    def score(self, key: int, item: int, champion_rr: float) -> None:
        """Pair the challenger's last list for session ``key`` with the champion's on ``item``."""
        recs = self.last.get(key)
        if recs is not None:
            self._pair(recs, item, champion_rr)

    def _pair(self, recs: list[int], item: int, champion_rr: float) -> None:
        self.preq.update(recs, item)
        hit, _ = _hit(recs, item, self.k)
        champion_hit = 1 if champion_rr > 0.0 else 0
        self.champion_hits += champion_hit
        self.champion_rr += champion_rr
        if not self.test.rejected:
            self.test.update(float(hit - champion_hit))

    def recommend(self, key: int, history: Sequence[int], ts: float) -> None:
        if (key * _HASH) & _MASK < self._cut:
            self.keep(key, self.model.recommend(history, ts, self.k, key))

    def keep(self, key: int, recs: list[int]) -> None:
        last = self.last
        last.pop(key, None)
        last[key] = recs
        if len(last) > self.max_sessions:
            del last[next(iter(last))]

    # -- the batch path (session-kNN family: the champion and the challenger batch alike) -------

    def answers(self, run: Any) -> Any:
        """The challenger learns a planned run (:class:`stream.processing.core.Run`) and answers its sampled
        clicks, in one compiled call; :meth:`take` then walks the answers click by click."""
        plan = run.plan_model(self.model)
        keys = np.asarray(run.keys, dtype=np.uint64)
        plan.rec &= ((keys * np.uint64(_HASH)) & np.uint64(_MASK)) < np.uint64(self._cut)  # queries: sampled only
        self.clicks += sum(run.learn)
        return self.model.run_batch(plan)  # type: ignore[attr-defined]

    def take(self, answers: Any, key: int, item: int, champion_rr: float | None) -> None:
        recs, _ = answers.take()
        if (key * _HASH) & _MASK < self._cut:
            if champion_rr is not None:
                self.score(key, item, champion_rr)
            self.keep(key, recs[: self.k])

    # -- figures -----------------------------------------------------------------------------

    @property
    def pairs(self) -> int:
        return self.preq.predictions

    @property
    def won(self) -> bool:
        return self.test.rejected

    @property
    def hit_rate_gain(self) -> float:
        """Challenger minus champion HR@k over the same (paired) predictions."""
        n = self.preq.predictions
        return (self.preq.hits - self.champion_hits) / n if n else 0.0
