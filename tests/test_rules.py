"""SR / AR / Markov counts against hand-computed examples (session-rec's definitions)."""

from __future__ import annotations

import pytest

from stream.models import make_model
from stream.models.rules import AssociationRules, MarkovChain, SequentialRules
from tests.feed import feed


def test_sr_div_weights_by_hand() -> None:
    # session A B C A, steps=10, div: C<-B 1, C<-A 1/2; A<-C 1, A<-B 1/2, A<-A 1/3
    m = SequentialRules(steps=10, weighting="div", pruning=0)
    feed(m, [[1, 2, 3, 1]])
    assert m.rules == {
        1: {2: 1.0, 3: 0.5, 1: pytest.approx(1 / 3)},
        2: {3: 1.0, 1: 0.5},
        3: {1: 1.0},
    }
    # max-normalised scores of the last item's partners (session-rec divides by the max)
    assert m.scores(1) == {2: 1.0, 3: 0.5, 1: pytest.approx(1 / 3)}


def test_sr_steps_limit_and_weightings() -> None:
    m = SequentialRules(steps=2, weighting="quadratic")
    feed(m, [[1, 2, 3, 4]])
    assert m.rules[1] == {2: 1.0, 3: 0.25}  # 4 is three steps after 1: not counted
    lin = SequentialRules(steps=3, weighting="linear")
    feed(lin, [[1, 2, 3, 4]])
    assert lin.rules[1] == {2: pytest.approx(0.9), 3: pytest.approx(0.8), 4: pytest.approx(0.7)}


def test_sr_accumulates_over_sessions_and_prunes() -> None:
    m = SequentialRules(steps=1, pruning=2, fallback=False)
    feed(m, [[1, 2], [1, 2], [1, 3], [1, 4], [1, 4], [1, 4]])
    assert m.rules[1] == {2: 2.0, 3: 1.0, 4: 3.0}
    assert m.ranked(1) == [4, 2]  # pruned to the 2 heaviest
    assert m.recommend([1], 0.0, k=20) == [4, 2]


def test_ar_counts_pairs_both_ways() -> None:
    m = AssociationRules(pruning=0)
    feed(m, [[1, 2, 3]])
    assert m.rules == {1: {2: 1.0, 3: 1.0}, 2: {1: 1.0, 3: 1.0}, 3: {1: 1.0, 2: 1.0}}


def test_markov_counts_successors() -> None:
    m = MarkovChain(pruning=0)
    feed(m, [[1, 2, 1, 2], [2, 3]])
    assert m.rules == {1: {2: 2.0}, 2: {1: 1.0, 3: 1.0}}


def test_unknown_last_item_falls_back_to_popularity() -> None:
    m = make_model("sr")
    feed(m, [[1, 2], [2, 3], [2]])
    assert m.recommend([99], 0.0, k=3) == [2, 1, 3]  # no rules for 99: most popular first
    nofb = make_model("sr", fallback=False)
    assert nofb.recommend([99], 0.0) == []


def test_bounded_rows() -> None:
    m = SequentialRules(steps=1, max_row=10)
    for j in range(1000):
        m.learn_one(j, 1000 + j, float(j), [1])
    assert len(m.rules[1]) <= 20


def test_bad_params_raise() -> None:
    with pytest.raises(ValueError, match="weighting"):
        SequentialRules(weighting="cubic")
    with pytest.raises(ValueError):
        SequentialRules(steps=0)


def test_popularity_top_list_matches_nlargest_including_ties() -> None:
    """The fallback's top list (numpy partition + stable sort) is ``heapq.nlargest``'s, ties in
    insertion order, for plain (many ties) and decayed counts."""
    import heapq
    import random

    from stream.models.pop import _largest

    rng = random.Random(4)
    for n in (0, 3, 60, 399, 401, 3_000):
        for plain in (True, False):
            counts: dict[int, float] = {}
            for _ in range(3 * n):
                i = rng.randrange(2 * n + 1)
                counts[i] = counts.get(i, 0.0) + (1.0 if plain else rng.random())
            for k in (1, 20, 100):
                assert _largest(counts, k) == heapq.nlargest(k, counts, key=counts.__getitem__)


def _both_rows(monkeypatch: pytest.MonkeyPatch):
    from stream.models import rules

    if rules._CompiledRows is None:
        pytest.skip("stream/models/_rules.c was not built (no C compiler at install)")
    return rules, rules._DictRows, rules._CompiledRows


@pytest.mark.parametrize("make", [
    lambda: SequentialRules(),
    lambda: SequentialRules(steps=14, weighting="linear", pruning=3, max_row=4),
    lambda: SequentialRules(steps=3, weighting="same", pruning=0, max_row=3),
    lambda: AssociationRules(pruning=5, max_row=8),
    lambda: MarkovChain(pruning=0, max_row=2),
], ids=["sr", "sr-linear-tiny-rows", "sr-same-unpruned", "ar", "markov"])
def test_compiled_rows_equal_the_python_rows(make, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C rows (stream/models/_rules.c) give the Python rows' weights, rankings and lists on
    every click, and a pickled model restores into either kind."""
    import pickle

    from stream.evaluation.synthetic import SyntheticStream

    rules, py_rows, c_rows = _both_rows(monkeypatch)
    monkeypatch.setattr(rules, "ROWS", py_rows)
    ref = make()
    monkeypatch.setattr(rules, "ROWS", c_rows)
    fast = make()
    assert type(ref._rows) is py_rows and type(fast._rows) is c_rows
    history: dict[str, list[int]] = {}
    names: dict[str, int] = {}
    for n, ev in enumerate(SyntheticStream(events=5000, seed=3, n_items=120)):
        item = names.setdefault(ev.item_id, len(names))
        h = history.setdefault(ev.session_id, [])
        ref.learn_one(0, item, ev.timestamp, h)
        fast.learn_one(0, item, ev.timestamp, h)
        h.append(item)
        assert fast.recommend(h, ev.timestamp, 20) == ref.recommend(h, ev.timestamp, 20)
        if n % 1000 == 999:
            assert fast.rules == ref.rules  # exact floats: the same additions in the same order
            assert len(fast._rows) == len(ref._rows)
            for a in ref.rules:
                assert fast.ranked(a) == ref.ranked(a)
                assert fast.scores(a) == ref.scores(a)
    for to in (py_rows, c_rows):  # checkpoints: the rows' bytes are the same from either kind
        monkeypatch.setattr(rules, "ROWS", to)
        for src in (ref, fast):
            back = pickle.loads(pickle.dumps(src))
            assert type(back._rows) is to
            assert back.rules == ref.rules
            assert back.recommend([5, 7], 0.0, 20) == ref.recommend([5, 7], 0.0, 20)


def test_compiled_rows_reject_bad_item_ints(monkeypatch: pytest.MonkeyPatch) -> None:
    rules, _, c_rows = _both_rows(monkeypatch)
    r = c_rows(20, 50, [0.0, 1.0])
    with pytest.raises(ValueError, match="item ints"):
        r.learn_steps([-1], 2)
    with pytest.raises(ValueError, match="item ints"):
        r.add(1, 2**40, 1.0)
    with pytest.raises(TypeError):
        r.learn_steps(["a"], 2)
    assert r.to_dict() == {} and r.top(5, 20) == [] and r.ranked(-3) == []
    with pytest.raises(ValueError, match="max_row"):
        SequentialRules(max_row=0)


def test_compiled_rows_hand_out_the_items_own_int_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session keeps its last list: the lists share the item ints' objects instead of making 20
    new ones per click (that doubled the memory of a live session)."""
    import numpy as np

    rules, _, c_rows = _both_rows(monkeypatch)
    r = c_rows(20, 50, [0.0, 1.0])
    item = int("123456")  # a fresh int object, not a cached small int
    r.learn_steps([1], item)
    assert r.top(1, 20)[0] is item
    r.learn_steps([1], np.int64(777))  # not an exact int: a Python int is made for the lists
    assert type(r.top(1, 20)[1]) is int and r.top(1, 20) == [123456, 777]
