"""Learning weights per event type (``--event-weights``) on hand-computed cases."""

from __future__ import annotations

import json

import pytest

from stream.cli import main
from stream.evaluation.evaluate import evaluate_static, evaluate_stream, fit
from stream.events import Event, parse_event_weights
from stream.models import make_model
from stream.models.base import WeightsClicks
from stream.models.pop import Popularity, PopularityCounts
from stream.models.rules import ROWS, AssociationRules, MarkovChain, SequentialRules, _DictRows
from stream.processing.core import ClickProcessor
from stream.state.items import ItemIndex

W = {"view": 1.0, "cart": 3.0, "purchase": 5.0}


# -- the flag ---------------------------------------------------------------------------------


def test_parse_fills_missing_types_with_one_and_all_ones_is_none() -> None:
    assert parse_event_weights("view=1,cart=3,purchase=5") == W
    assert parse_event_weights(" purchase = 2.5 ") == {"view": 1.0, "cart": 1.0, "purchase": 2.5}
    assert parse_event_weights(None) is None
    assert parse_event_weights("view=1,cart=1") is None


@pytest.mark.parametrize("text, named", [
    ("buy=5", "'buy'"),
    ("purchase=x", "purchase"),
    ("purchase=0", "purchase"),
    ("cart=-1", "cart"),
    ("view=nan", "view"),
    ("purchase=1e9", "purchase"),
    ("purchase", "'purchase'"),
    ("cart=2,cart=3", "cart"),
])
def test_parse_errors_name_the_entry(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="--event-weights") as err:
        parse_event_weights(text)
    assert named in str(err.value)


def test_capability_is_declared_by_the_base_class() -> None:
    weighted = {"sr", "ar", "markov", "pop", "hybrid"}
    for name in ("sr", "ar", "markov", "pop", "hybrid", "sknn", "vsknn", "stan", "vstan"):
        m = make_model(name)
        assert m.weights_clicks == (name in weighted) == isinstance(m, WeightsClicks), name


# -- the models -------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", sorted({ROWS, _DictRows}, key=lambda c: c.__name__))
def test_sr_weight_multiplies_each_step_weight(rows: type) -> None:
    # view 1, view 2, purchase 3 at weight 5 (steps=2, div): 3<-2 adds 1*5, 3<-1 adds 1/2*5
    r = rows(0, 50, [0.0, 1.0, 0.5])
    r.learn_steps([], 1)
    r.learn_steps([1], 2)
    r.learn_steps([1, 2], 3, 5.0)
    assert r.to_dict() == {1: {2: 1.0, 3: 2.5}, 2: {3: 5.0}}
    assert r.ranked(1) == [3, 2]


@pytest.mark.parametrize("rows", sorted({ROWS, _DictRows}, key=lambda c: c.__name__))
def test_ar_weight_is_each_pairs_increment_both_ways(rows: type) -> None:
    r = rows(0, 50)
    r.learn_pairs([], 1)
    r.learn_pairs([1], 2, 3.0)  # a cart of 2 after 1
    r.learn_pairs([1, 2], 1)  # 1 viewed again
    assert r.to_dict() == {1: {2: 4.0, 1: 2.0}, 2: {1: 4.0}}


def test_rule_models_and_their_popularity() -> None:
    sr = SequentialRules(steps=2, pruning=0)
    for t, (item, w) in enumerate([(1, 1.0), (2, 1.0), (3, 5.0)]):
        sr.learn_one(0, item, float(t), [1, 2, 3][:t], w)
    assert sr.rules == {1: {2: 1.0, 3: 2.5}, 2: {3: 5.0}}
    assert sr._pop.counts == {1: 1.0, 2: 1.0, 3: 5.0}
    assert sr.recommend([], 3.0, k=3) == [3, 1, 2]  # the empty session's fallback: weighted counts
    ar = AssociationRules(pruning=0)
    ar.learn_one(0, 1, 0.0, [])
    ar.learn_one(0, 2, 1.0, [1], weight=3.0)
    assert ar.rules == {1: {2: 3.0}, 2: {1: 3.0}}
    mc = MarkovChain(pruning=0)
    for t, (item, w) in enumerate([(1, 1.0), (2, 5.0), (1, 1.0), (3, 1.0)]):
        mc.learn_one(0, item, float(t), [1, 2, 1, 3][:t], w)
    assert mc.rules == {1: {2: 5.0, 3: 1.0}, 2: {1: 1.0}}
    assert mc.recommend([1], 4.0, k=1) == [2]


def test_popularity_counts_weighted_and_decayed() -> None:
    c = PopularityCounts(half_life=10.0)
    c.add(1, 0.0, 4.0)  # 4 clicks' worth at t=0
    c.add(2, 10.0)  # one click a half-life later: worth 2 of t=0's
    assert c.counts == {1: 4.0, 2: 2.0}
    m = Popularity(half_life=None)
    for item, w in ((1, 1.0), (2, 1.0), (2, 1.0), (1, 5.0)):
        m.learn_one(0, item, 0.0, [], weight=w)
    assert m.recommend([], 0.0, k=2) == [1, 2]


def test_hybrid_weights_its_rule_part_and_leaves_its_knn_part_unweighted() -> None:
    h = make_model("hybrid", models="vstan,sr", model_params={"sr": {"steps": 2, "pruning": 0}})
    plain = make_model("hybrid", models="vstan,sr", model_params={"sr": {"steps": 2, "pruning": 0}})
    for t, (item, w) in enumerate([(1, 1.0), (2, 1.0), (3, 5.0)]):
        h.learn_one(0, item, float(t), [1, 2, 3][:t], w)
        plain.learn_one(0, item, float(t), [1, 2, 3][:t])
    sr, vstan = h.parts[1], h.parts[0]
    assert sr.rules == {1: {2: 1.0, 3: 2.5}, 2: {3: 5.0}}
    assert vstan.recommend([1], 3.0, 5, None) == plain.parts[0].recommend([1], 3.0, 5, None)
    assert h._pop.counts == {1: 1.0, 2: 1.0, 3: 5.0}


def test_item2vec_repeats_the_token_round_weight_times() -> None:
    pytest.importorskip("gensim")
    m = make_model("item2vec", warmup=0, half_life=None)
    for t, (item, w) in enumerate([(1, 1.0), (2, 3.0), (3, 2.4), (4, 0.5)]):
        m.learn_one(7, item, float(t), [1, 2, 3, 4][:t], w)
    assert m.buffered_sessions() == [[1, 2, 2, 2, 3, 3, 4]]
    assert m._pop.count(2) == 3.0 and m._pop.count(4) == 0.5


# -- the core and the commands ----------------------------------------------------------------


def clicks() -> list[Event]:
    """Two sessions: 1, 2, purchase 3, and 1, 2, 4, 4 (all views)."""
    evs = [("a", "1", "view"), ("a", "2", "view"), ("a", "3", "purchase"),
           ("b", "1", "view"), ("b", "2", "view"), ("b", "4", "view"), ("b", "4", "view")]
    return [Event(s, i, float(t), e) for t, (s, i, e) in enumerate(evs)]


def test_the_core_passes_the_event_types_weight() -> None:
    p = ClickProcessor(make_model("sr", steps=1, pruning=0), event_weights=W)
    p.process_batch(clicks())
    name = p.items.get
    assert p.model.rules[name("2")] == {name("3"): 5.0, name("4"): 1.0}  # the purchase outweighs
    assert p.items.names(p.model.recommend([name("2")], 9.0, 1)) == ["3"]
    q = ClickProcessor(make_model("sr", steps=1, pruning=0))
    q.process_batch(clicks())
    assert q.model.rules[name("2")] == {name("3"): 1.0, name("4"): 1.0}


def test_knn_keeps_its_batch_path_and_rule_models_go_click_by_click() -> None:
    assert ClickProcessor(make_model("vstan"), event_weights=W).batched(make_model("vstan"))
    sr = make_model("sr")
    assert not ClickProcessor(sr, event_weights=W).batched(sr)


def test_static_fit_and_stream_replay_take_weights(tmp_path) -> None:
    items = ItemIndex()
    m = SequentialRules(steps=1, pruning=0)
    fit(m, clicks(), items, event_weights=W)
    assert m.rules[items.get("2")] == {items.get("3"): 5.0, items.get("4"): 1.0}
    out = evaluate_stream(events=clicks(), model="sr", event_weights=W)
    assert out["event_weights"] == W
    assert out["predictions_by_event_type"] == {"purchase": 1, "view": 4}
    assert set(out["hit_rate_at_20_by_event_type"]) == {"purchase", "view"}
    path = tmp_path / "c.csv"
    path.write_text("session_id,item_id,timestamp,event_type\n" + "".join(
        f"{e.session_id},{e.item_id},{e.timestamp},{e.event_type}\n" for e in clicks()))
    res = evaluate_static(path, path, fmt="csv", model="sr", event_weights=W)
    assert res["event_weights"] == W


def test_evaluate_compares_settings_in_one_run(tmp_path, capsys) -> None:
    path = tmp_path / "c.csv"
    path.write_text("session_id,item_id,timestamp,event_type\n" + "".join(
        f"{e.session_id},{e.item_id},{e.timestamp},{e.event_type}\n" for e in clicks() * 3))
    rc = main(["evaluate", "--stream", str(path), "--format", "csv", "--model", "sr",
               "--event-weights", "off", "purchase=5", "--json", "--no-progress"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["event_weights"] for r in out["runs"]] == [None, W | {"cart": 1.0}]
    assert main(["evaluate", "--stream", str(path), "--format", "csv", "--model", "sr",
                 "--event-weights", "off", "purchase=5", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "purchase=5" in table and "HR@20 by event type" in table
    assert main(["evaluate", "--stream", str(path), "--format", "csv", "--event-weights", "buy=2"]) == 2
    assert "'buy'" in capsys.readouterr().err


def test_simulate_flag_errors_name_the_field(capsys) -> None:
    with pytest.raises(SystemExit, match="purchase"):
        main(["simulate", "--scenario", "none", "--events", "2000", "--model", "sr",
              "--event-weights", "purchase=zero"])
