"""The weighted hybrid: contract, hand-computed mixes, parameters, and the online (bandit) mix."""

from __future__ import annotations

import pytest

from stream.evaluation.evaluate import evaluate_stream
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.models import make_model, parse_params
from stream.models.hybrid import Hybrid
from stream.processing.core import ClickProcessor
from tests.feed import feed

SEQ = [1, 2, 3, 1, 2, 4]


def test_contract_and_fallbacks() -> None:
    h = Hybrid(models="sr,markov")
    assert h.recommend([], 0.0) == [] and h.recommend([7], 0.0) == []
    feed(h, [SEQ])
    assert h.recommend([], 9.0, k=3) == [1, 2, 3]  # popular items for an empty session
    recs = h.recommend([99], 9.0, k=3)  # unknown item: popular fill, no error
    assert recs and all(isinstance(i, int) for i in recs)
    assert len(h.recommend([2], 9.0, k=20)) <= 20
    assert h.recommend([2], 9.0, k=0) == []


def test_weighted_scores_by_hand() -> None:
    # SR(steps=2) row of 2: {3: 1, 1: .5, 4: 1} (max-normalised); Markov row of 2: {3: 1, 4: 1}.
    h = Hybrid(models="sr,markov", weights=[0.2, 0.8], model_params={"sr": {"steps": 2}},
               )
    feed(h, [SEQ])
    sr, mk = h.parts
    assert sr.scores(2) == {3: 1.0, 1: 0.5, 4: 1.0}
    assert mk.scores(2) == {3: 1.0, 4: 1.0}
    # totals: 3 -> .2 + .8 = 1, 4 -> 1, 1 -> .2 * .5 = .1
    assert h.recommend([2], 9.0, k=3)[2] == 1


def test_single_part_weight_reproduces_the_part() -> None:
    events = list(SyntheticStream(events=3000, seed=3))
    alone = evaluate_stream(events=events, model="sr", params={"fallback": False})
    mixed = evaluate_stream(events=events, model="hybrid",
                            params={"models": "sr,markov", "weights": "1,0", "fallback": False})
    # SR's rule partners in SR's order (the popular fill is each model's own, so it is off)
    for key in ("predictions", "hit_rate_at_20", "mrr_at_20", "coverage_at_20"):
        assert mixed[key] == alone[key], key


def test_rank_combine() -> None:
    h = Hybrid(models="markov,ar", combine="rank", weights=[1.0, 0.0])
    feed(h, [SEQ])
    assert h.recommend([2], 9.0, k=2) == h.parts[0].recommend([2], 9.0, k=2)


def test_params_from_the_cli_and_clone() -> None:
    p = parse_params(["models=sr,markov", "weights=0.7,0.3", "sr.steps=3", "markov__pruning=5"])
    h = make_model("hybrid", **p)
    assert isinstance(h, Hybrid)
    assert h.weights == [0.7, 0.3] and h.parts[0].steps == 3 and h.parts[1].pruning == 5
    assert h.model_params == {"sr": {"steps": 3}, "markov": {"pruning": 5}}
    feed(h, [SEQ])
    c = h.clone()
    assert c.params() == h.params() and c.recommend([2], 0.0) == []
    assert Hybrid(models=["sr", "ar"], weights=0.25).weights == [0.25, 0.75]


@pytest.mark.parametrize("bad", [
    {"models": "sr"}, {"models": "sr,hybrid"}, {"models": "sr,ar", "weights": "1,2,3"},
    {"models": "sr,ar", "combine": "x"}, {"models": "sr,ar", "mix": "x"},
    {"models": "sr,ar", "vstan.k": 5}, {"models": "sr,ar", "steps": 5},
])
def test_bad_params(bad: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        Hybrid(**bad)


def test_bandit_learns_the_better_part() -> None:
    # Sessions follow 1 -> 2 -> 3 -> 4 exactly, while item 9 is by far the most clicked:
    # Markov ranks the true successor first, popularity ranks 9 first.
    h = Hybrid(models="markov,pop", mix="bandit", feedback="full", grid=3,
               model_params={"pop": {"half_life": None}})
    t = 0.0
    for s in range(200):
        for i, item in enumerate([1, 2, 3, 4]):
            h.learn_one(s, item, t, [1, 2, 3, 4][:i])
            t += 1
        for _ in range(5):
            h.learn_one(10_000 + s, 9, t, [])
            t += 1
    assert h.rounds == 600
    assert h.current_weights[0] >= 0.5  # Markov weighs at least as much as popularity
    assert h.recommend([1], t)[0] == 2


def test_bandit_in_the_stream_uses_the_memo() -> None:
    # Through the per-click core, recommend memoises the parts' scores so the next click's
    # reward needs no second query; the memo is bounded.
    h = Hybrid(models="sr,markov", mix="bandit", policy="epsilon", cache_sessions=300)
    p = ClickProcessor(h)
    calls = {"n": 0}
    sr = h.parts[0]
    orig = sr.scores

    def counting(a: int) -> dict[int, float]:
        calls["n"] += 1
        return orig(a)

    sr.scores = counting  # type: ignore[method-assign]
    for ev in SyntheticStream(events=2000, seed=5):
        p.process(ev)
    assert h.rounds == p.preq.predictions
    assert len(h._memo) <= 300
    # one query per recommend (2000) plus a few for sessions evicted from the memo
    assert calls["n"] < 2000 + 0.1 * p.preq.predictions


def test_bandit_reward_every_thins_self_queries() -> None:
    h = Hybrid(models="sr,markov", mix="bandit", reward_every=4)
    feed(h, [SEQ] * 8)  # no recommend calls: learn_one queries the parts itself
    assert h.rounds == (8 * 5) // 4


def test_hybrid_through_click_processor() -> None:
    p = ClickProcessor(make_model("hybrid", models="sr,ar"))
    for sid, item, ts in [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4)]:
        p.process(Event(sid, item, float(ts)))
    assert p.preq.predictions == 2 and p.preq.hits == 1


def test_top_and_fuse_keep_heapq_nlargest_order_with_ties() -> None:
    """The parts' top lists and the fused list rank exactly as ``heapq.nlargest`` (ties included)."""
    import heapq
    import random

    from stream.models.hybrid import Hybrid, _top

    rng = random.Random(0)
    for _ in range(2000):
        d = {rng.randint(0, 400): rng.choice([0.5, 1.0, 0.25, rng.random()]) for _ in range(rng.randint(1, 250))}
        depth = rng.randint(1, 120)
        want = dict(heapq.nlargest(depth, d.items(), key=lambda kv: kv[1]))
        top = max(want.values())
        assert _top(d, depth) == {i: s / top for i, s in want.items()}
        e = {rng.randint(0, 400): rng.choice([0.5, 1.0, rng.random()]) for _ in range(rng.randint(0, 150))}
        total: dict[int, float] = {}
        for part, w in ((d, 0.9), (e, 0.1)):
            for i, s in part.items():
                total[i] = total.get(i, 0.0) + w * s
        k = rng.randint(1, 40)
        assert Hybrid._fuse([d, e], (0.9, 0.1), k) == heapq.nlargest(k, total, key=total.__getitem__)
