"""The contract every registered model passes, with no real data (River's ``check_estimator`` way).

Each entry of :data:`stream.models.MODELS` is built with its defaults and run over the same
synthetic stream; a model added to the registry is checked without editing this file.
"""

from __future__ import annotations

import pickle

import pytest

from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.models import MODELS, SessionModel, make_model
from stream.processing.core import ClickProcessor

EVENTS = list(SyntheticStream(events=3_000, seed=11))


def learned(name: str) -> ClickProcessor:
    p = ClickProcessor(make_model(name))
    p.process_batch(EVENTS)
    return p


def probes(p: ClickProcessor) -> list[list[int]]:
    """Histories to ask for: the live sessions' clicks, an unknown item, an empty history."""
    hist = [list(s.items) for s in list(p.sessions.sessions())[:50] if s.items]
    return hist + [[10**6], []]


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request: pytest.FixtureRequest) -> tuple[str, ClickProcessor]:
    return request.param, learned(request.param)


def test_learn_and_recommend_types_and_k(model: tuple[str, ClickProcessor]) -> None:
    name, p = model
    m = p.model
    assert isinstance(m, SessionModel) and m.name == name
    t = EVENTS[-1].timestamp
    for history in probes(p):
        for k in (1, 5, 20):
            recs = m.recommend(history, t, k)
            assert isinstance(recs, list) and len(recs) <= k
            assert all(type(r) is int and r >= 0 for r in recs)
            assert len(set(recs)) == len(recs), "an item twice in one list"
    assert any(m.recommend(h, t, 20) for h in probes(p)[:-2]) or name == "item2vec"


def test_params_rebuild_the_same_model(model: tuple[str, ClickProcessor]) -> None:
    _, p = model
    m = p.model
    again = type(m)(**m.params())
    assert again.params() == m.params()


def test_a_clone_is_fresh_and_independent(model: tuple[str, ClickProcessor]) -> None:
    name, p = model
    t = EVENTS[-1].timestamp
    before = [p.model.recommend(h, t, 20) for h in probes(p)]
    clone = p.model.clone()
    assert type(clone) is type(p.model) and clone.params() == p.model.params()
    fresh = make_model(name)
    assert [clone.recommend(h, t, 20) for h in probes(p)] == [fresh.recommend(h, t, 20) for h in probes(p)]
    q = ClickProcessor(clone)
    q.process_batch(EVENTS[:500])  # learning in the clone leaves the original as it was
    assert [p.model.recommend(h, t, 20) for h in probes(p)] == before


def test_pickling_round_trip_keeps_every_list(model: tuple[str, ClickProcessor]) -> None:
    _, p = model
    t = EVENTS[-1].timestamp
    copy = pickle.loads(pickle.dumps(p.model))
    assert [copy.recommend(h, t, 20) for h in probes(p)] == [p.model.recommend(h, t, 20) for h in probes(p)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_batch_equals_click_by_click(name: str) -> None:
    one, batch = ClickProcessor(make_model(name)), ClickProcessor(make_model(name))
    lists = [one.process(ev) for ev in EVENTS[:1500]]
    assert batch.process_batch(EVENTS[:1500]) == lists
    assert (batch.preq.hits, batch.preq.predictions) == (one.preq.hits, one.preq.predictions)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_items_and_empty_histories_never_raise(name: str) -> None:
    m = make_model(name)
    assert isinstance(m.recommend([], 0.0, 20), list)
    assert isinstance(m.recommend([123], 0.0, 20), list)
    p = ClickProcessor(m)
    p.process(Event("s", "x", 1.0))
    assert isinstance(m.recommend([0, 99_999], 2.0, 20, session=None), list)


WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
#: The same stream with carts and purchases among the views.
TYPED = [ev._replace(event_type=("view", "view", "cart", "view", "purchase")[t % 5])
         for t, ev in enumerate(EVENTS[:1500])]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_event_weights_a_batch_equals_click_by_click(name: str) -> None:
    one = ClickProcessor(make_model(name), event_weights=WEIGHTS)
    batch = ClickProcessor(make_model(name), event_weights=WEIGHTS)
    lists = [one.process(ev) for ev in TYPED]
    assert batch.process_batch(TYPED) == lists
    assert (batch.preq.hits, batch.preq.predictions) == (one.preq.hits, one.preq.predictions)
    plain = ClickProcessor(make_model(name)).process_batch(TYPED)
    if not make_model(name).weights_clicks:  # learns every click once, whatever its type
        assert lists == plain


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weight_one_everywhere_is_the_unweighted_model(name: str) -> None:
    ones = ClickProcessor(make_model(name), event_weights=dict.fromkeys(WEIGHTS, 1.0))
    assert ones.process_batch(TYPED) == ClickProcessor(make_model(name)).process_batch(TYPED)
