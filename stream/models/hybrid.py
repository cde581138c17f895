"""Weighted hybrid of session models, with an optional online mix learned by a bandit.

Each part scores the candidates for the current session; the hybrid ranks items by the weighted
sum of the parts' scores (session-rec's ``algorithms/hybrid/weighted.py`` does the same with
its dense score vectors). Two ways to turn a part's output into a score:

* ``combine="score"`` — the part's own scores, max-normalised (1 for its best item): rule models
  (SR/AR/Markov) use the rule weights of the last item, kNN models their neighbourhood scores;
  any other model falls back to its rank.
* ``combine="rank"`` — 1 / rank in the part's top ``depth`` list (any model).

With ``mix="bandit"`` the weights are not fixed: a River bandit policy (``river.bandit.UCB`` or
``EpsilonGreedy``) chooses among ``arms`` weight vectors: ``weights`` (served until the first
reward) and, for two parts, the grid w, 1 - w with w = 0, 1/(grid-1), ..., 1. It learns from prequential reward: on every click of a session the
hybrid first scores the click against the list the pulled arm would have recommended for the
session's history (reciprocal rank, 0 for a miss), updates the policy, then lets the parts learn
the click (test-then-train). ``feedback="full"`` rewards every arm on every click instead of one
(affordable: the parts' scores are computed once and shared by the arms). ``recommend`` serves
with the arm of highest mean reward so far and never changes the policy.

The parts' scores for a session's last query are memoised (bounded LRU of ``cache_sessions``
sessions) so that, in a stream, the reward of the next click costs no second query. When no
memo matches (e.g. session-rec's static fit, where ``recommend`` is never called during
training), ``learn_one`` queries the parts itself; ``reward_every`` thins those extra queries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from stream.models.base import DEFAULT_K, ScoringModel, SessionModel, WeightsClicks
from stream.models.pop import PopularityCounts, fill

COMBINES = ("score", "rank")
MIXES = ("fixed", "bandit")
POLICIES = ("ucb", "epsilon")
#: The reward of an arm is the reciprocal rank of the next click in its top REWARD_K (MRR@20).
REWARD_K = 20


def _names(models: str | Sequence[str]) -> list[str]:
    if isinstance(models, str):
        return [m.strip() for m in models.replace("+", ",").split(",") if m.strip()]
    return list(models)


def _floats(weights: str | float | Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if isinstance(weights, (int, float)):
        if n != 2:
            raise ValueError("a single weight is only meaningful for two models (w, 1 - w)")
        return [float(weights), 1.0 - float(weights)]
    if isinstance(weights, str):
        weights = [float(w) for w in weights.replace("+", ",").split(",") if w.strip()]
    out = [float(w) for w in weights]
    if len(out) != n:
        raise ValueError(f"{len(out)} weights for {n} models")
    return out


def _top(scores: dict[int, float], depth: int) -> dict[int, float]:
    """The ``depth`` best of ``scores``, max-normalised."""
    if not scores:
        return {}
    if len(scores) > depth:
        # = heapq.nlargest(depth, ...) by its documented equivalence (ties included), in C
        scores = dict(sorted(scores.items(), key=itemgetter(1), reverse=True)[:depth])
    top = max(scores.values())
    if top <= 0:
        return {}
    return {i: s / top for i, s in scores.items() if s > 0}


class Hybrid(WeightsClicks):
    """Weighted sum of two or more session models' (normalised) scores.

    Parameters
    ----------
    models
        Registry names of the parts, a list or a comma-separated string. The default, VSTAN
        (k=100, sample_size=5000) with SR, is the most accurate model measured on yoochoose-100k
        (see the README) and streamrec's default model.
    weights
        One weight per part (list or ``"0.7,0.3"``); a single float w means (w, 1 - w) for two
        parts; ``None`` weighs the parts equally. The default 0.9 / 0.1 is for the default pair;
        with another number of parts the default is equal weights.
    combine
        ``"score"`` (max-normalised part scores) or ``"rank"`` (1 / rank).
    depth
        How many of each part's best items enter the mix.
    mix
        ``"fixed"`` weights or ``"bandit"`` (learned online; see the module docstring).
    policy
        ``"ucb"`` (``river.bandit.UCB(delta)``) or ``"epsilon"``
        (``river.bandit.EpsilonGreedy(epsilon)``).
    grid
        Arms: ``weights``, and for two parts (w, 1 - w) for ``grid`` evenly spaced w in [0, 1];
        with more parts, each part alone and the uniform mix.
    delta, epsilon, seed
        Policy parameters.
    feedback
        ``"bandit"`` (reward the pulled arm only) or ``"full"`` (reward every arm).
    reward_every
        When ``learn_one`` has to query the parts itself, do it on every n-th click only.
    cache_sessions
        Sessions whose last query is memoised for the reward.
    fallback
        Fill short lists (and answer empty sessions) with popular items.
    model_params
        Parameters of the parts, ``{"sr": {"steps": 10}}``. Keyword arguments ``sr__steps=10``
        or ``**{"sr.steps": 10}`` (what ``--param sr.steps=10`` gives) are folded into it.

    A click's learning weight goes to the parts that weight clicks (SR, AR, Markov, POP,
    item2vec; the kNN parts learn it once) and to the hybrid's own popularity fallback; the
    bandit's reward is not weighted.

    Examples
    --------
    >>> h = Hybrid(models="sr,markov", weights=[0.5, 0.5], model_params={"sr": {"steps": 2}})
    >>> for i, item in enumerate([1, 2, 3, 1, 2, 4]):
    ...     h.learn_one(0, item, float(i), [1, 2, 3, 1, 2, 4][:i])
    >>> h.recommend([2], 6.0, k=2)
    [3, 4]
    >>> h.parts[0].name, h.parts[0].steps
    ('sr', 2)
    >>> b = Hybrid(models="sr,markov", mix="bandit", grid=3, feedback="full")
    >>> for i, item in enumerate([1, 2, 3, 1, 2, 3]):
    ...     b.learn_one(0, item, float(i), [1, 2, 3, 1, 2, 3][:i])
    >>> len(b.arms), b.rounds
    (4, 5)
    """

    name = "hybrid"

    def __init__(
        self,
        models: str | Sequence[str] = "vstan,sr",
        weights: str | float | Sequence[float] | None = "0.9,0.1",
        combine: str = "score",
        depth: int = 100,
        mix: str = "fixed",
        policy: str = "ucb",
        grid: int = 5,
        delta: float = 0.1,
        epsilon: float = 0.1,
        seed: int = 42,
        feedback: str = "bandit",
        reward_every: int = 1,
        cache_sessions: int = 10_000,
        fallback: bool = True,
        model_params: dict[str, dict[str, Any]] | None = None,
        **part_params: Any,
    ) -> None:
        from stream.models import make_model

        names = _names(models)
        if weights == "0.9,0.1" and len(names) != 2:
            weights = None  # the default weights are for the default pair; other mixes start equal
        if len(names) < 2:
            raise ValueError("a hybrid needs at least two models")
        if "hybrid" in names:
            raise ValueError("a hybrid cannot contain a hybrid")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}")
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {MIXES}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}")
        if feedback not in ("bandit", "full"):
            raise ValueError("feedback must be 'bandit' or 'full'")
        if depth < 1 or reward_every < 1 or cache_sessions < 1 or grid < 2:
            raise ValueError("depth, reward_every, cache_sessions must be >= 1 and grid >= 2")
        mp: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (model_params or {}).items()}
        for key, value in part_params.items():
            sep = "." if "." in key else "__"
            if sep not in key:
                raise TypeError(f"unexpected parameter {key!r} (part parameters look like sr.steps=10)")
            part, param = key.split(sep, 1)
            if part not in names:
                raise ValueError(f"parameter {key!r} is for {part!r}, which is not one of {names}")
            mp.setdefault(part, {})[param] = value
        self.models = ",".join(names)
        self.weights = _floats(weights, len(names))
        self.combine = combine
        self.depth = depth
        self.mix = mix
        self.policy = policy
        self.grid = grid
        self.delta = delta
        self.epsilon = epsilon
        self.seed = seed
        self.feedback = feedback
        self.reward_every = reward_every
        self.cache_sessions = cache_sessions
        self.fallback = fallback
        self.model_params = mp
        self.parts: list[SessionModel] = [make_model(n, **mp.get(n, {})) for n in names]
        self.arms: list[tuple[float, ...]] = self._arms() if mix == "bandit" else [tuple(self.weights)]
        self._policy: Any = None
        if mix == "bandit":
            from river import bandit

            self._policy = (bandit.UCB(delta=delta, seed=seed) if policy == "ucb"
                            else bandit.EpsilonGreedy(epsilon=epsilon, seed=seed))
        self._best = 0  # index of the arm served by recommend
        self.rounds = 0  # rewards observed
        self._memo: OrderedDict[int, tuple[int, int, list[dict[int, float]]]] = OrderedDict()
        self._since = 0
        self._pop = PopularityCounts(half_life=None)

    def _arms(self) -> list[tuple[float, ...]]:
        n = len(self.weights)
        if n == 2:
            g = self.grid - 1
            arms = [(i / g, 1.0 - i / g) for i in range(self.grid)]
        else:
            arms = [tuple(1.0 if j == i else 0.0 for j in range(n)) for i in range(n)]
            arms.append(tuple([1.0 / n] * n))
        out: list[tuple[float, ...]] = [tuple(self.weights)]  # arm 0: served until rewards come
        for a in arms:
            if a not in out:
                out.append(a)
        return out

    # -- scoring ------------------------------------------------------------------------------

    def _part_scores(self, m: SessionModel, history: Sequence[int], ts: float,
                     session: int | None) -> dict[int, float]:
        depth = self.depth
        if self.combine == "score":
            from stream.models.rules import _RuleModel

            if isinstance(m, _RuleModel):
                return _top(m.scores(history[-1]), depth)
            if isinstance(m, ScoringModel):  # kNN models: only the best `depth` candidates
                return _top(m.top_scores(history, ts, depth, session), depth)
        recs = m.recommend(history, ts, depth, session)
        return {i: 1.0 / r for r, i in enumerate(recs, 1)}

    def _all_scores(self, history: Sequence[int], ts: float, session: int | None) -> list[dict[int, float]]:
        return [self._part_scores(m, history, ts, session) for m in self.parts]

    @staticmethod
    def _fuse(subs: list[dict[int, float]], w: Sequence[float], k: int) -> list[int]:
        total: dict[int, float] = {}
        get = total.get
        for d, wm in zip(subs, w, strict=True):
            if wm == 0.0:
                continue
            for i, s in d.items():
                total[i] = get(i, 0.0) + wm * s
        if not total:
            return []
        return sorted(total, key=total.__getitem__, reverse=True)[:k]  # = heapq.nlargest(k, ...)

    def recommend(
        self, history: Sequence[int], timestamp: float, k: int = DEFAULT_K, session: int | None = None
    ) -> list[int]:
        if k <= 0:
            return []
        if not history:
            return self._pop.top(k) if self.fallback else []
        subs = self._all_scores(history, timestamp, session)
        if session is not None and self._policy is not None:
            memo = self._memo
            memo[session] = (len(history), history[-1], subs)
            memo.move_to_end(session)
            if len(memo) > self.cache_sessions:
                memo.popitem(last=False)
        recs = self._fuse(subs, self.arms[self._best], k)
        if self.fallback and len(recs) < k:
            recs = fill(recs, self._pop.top(k), k)
        return recs

    @property
    def current_weights(self) -> tuple[float, ...]:
        """The weights ``recommend`` uses now."""
        return self.arms[self._best]

    # -- learning -----------------------------------------------------------------------------

    def _reward(self, session: int, item: int, timestamp: float, history: Sequence[int]) -> None:
        hit = self._memo.pop(session, None)
        if hit is not None and hit[0] == len(history) and hit[1] == history[-1]:
            subs = hit[2]
        else:
            self._since += 1
            if self._since < self.reward_every:
                return
            self._since = 0
            subs = self._all_scores(history, timestamp, session)
        pol = self._policy
        arms = range(len(self.arms)) if self.feedback == "full" else [pol.pull(list(range(len(self.arms))))]
        for a in arms:
            recs = self._fuse(subs, self.arms[a], REWARD_K)
            try:
                rr = 1.0 / (recs.index(item) + 1)
            except ValueError:
                rr = 0.0
            pol.update(a, rr)
        self.rounds += 1
        ranking = pol.ranking
        if ranking:
            self._best = ranking[0]

    def warm_up(self) -> None:
        for m in self.parts:
            m.warm_up()

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        if self._policy is not None and history:
            self._reward(session, item, timestamp, history)
        for m in self.parts:
            if weight != 1.0 and m.weights_clicks:
                m.learn_one(session, item, timestamp, history, weight)  # type: ignore[call-arg]
            else:
                m.learn_one(session, item, timestamp, history)
        self._pop.add(item, timestamp, weight)

    def forget_session(self, session: int) -> None:
        self._memo.pop(session, None)
        for m in self.parts:
            m.forget_session(session)

    def clone(self) -> Hybrid:
        p = self.params()
        return Hybrid(**p)
