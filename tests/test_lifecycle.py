"""The life of retraining due: the challenger's sequential test (false-promotion rate, power), the
lifecycle's transitions and clearing reasons, no blind spot across a reference change, the
checkpoint round-trip, and the lifecycle's metrics."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.drift.challenger import Challenger, EProcess
from monitoring.drift.exporter import LifecycleCollector
from monitoring.drift.lifecycle import ABSORBED, ACKNOWLEDGED, PROMOTED, REFIT_FIRST, Lifecycle
from monitoring.drift.monitor import DriftMonitor
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.models import make_model
from stream.processing.core import ClickProcessor
from stream.state.checkpoint import Snapshot, decode, encode

SMALL = {"reference_events": 5_000, "check_every": 500, "warmup": 500, "persistence": 3, "buffer_events": 5_000}


def _paired(rng: random.Random, p_champion: float, p_challenger: float, n: int, alpha: float) -> bool:
    """One run of ``n`` paired clicks with independent hits; whether the test promoted."""
    e = EProcess(alpha)
    for _ in range(n):
        d = (rng.random() < p_challenger) - (rng.random() < p_champion)
        e.update(float(d))
        if e.rejected:
            return True
    return False


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_false_promotion_rate_is_at_most_alpha_under_equal_means(p):
    """Equal hit rates (H0 at its boundary), 400 runs of 5,000 pairs each, stopped at the first
    crossing: the share of runs that promote stays within alpha (plus binomial slack)."""
    rng = random.Random(7)
    alpha, runs = 0.05, 400
    promoted = sum(_paired(rng, p, p, 5_000, alpha) for _ in range(runs))
    assert promoted / runs <= alpha + 2 * (alpha * (1 - alpha) / runs) ** 0.5, promoted


def test_a_worse_challenger_is_almost_never_promoted():
    rng = random.Random(3)
    assert sum(_paired(rng, 0.5, 0.45, 5_000, 0.05) for _ in range(100)) <= 1


def test_power_a_better_challenger_is_promoted():
    """Independent hits (the hardest case: paired hits are correlated in practice): a +0.02 gain at
    0.5 is found within 40,000 pairs in nearly every run (within 20,000 in about 4 of 5); +0.10 fast."""
    rng = random.Random(5)
    assert sum(_paired(rng, 0.5, 0.52, 40_000, 0.05) for _ in range(50)) >= 47
    e, n = EProcess(0.05), 0
    while not e.rejected:
        e.update(float((rng.random() < 0.6) - (rng.random() < 0.5)))
        n += 1
    assert n < 3_000


def test_bets_are_predictable_and_bounded():
    e = EProcess(0.05)
    assert e.bet() == 0.0  # nothing seen: no bet
    for _ in range(100):
        e.update(1.0)
    assert e.bet() == 0.5  # capped at 1/2: the wealth can never reach 0
    before = e.bet()
    e.update(-1.0)
    assert e.bet() <= before


def _processor(on_drift: str = "challenger", model: str = "sr", monitor: dict | None = None,
               **life) -> tuple[ClickProcessor, Lifecycle]:
    m = DriftMonitor(**{**SMALL, **(monitor or {})})
    p = ClickProcessor(make_model(model), monitor=m)
    m.attach(p)
    lifecycle = Lifecycle(m, p, on_drift=on_drift, **life)
    m.subscribe(lifecycle.on_due)  # the wiring's part
    return p, lifecycle


def _feed(p: ClickProcessor, events) -> None:
    for e in events:
        p.process(e)


def _switch(n: int = 40_000, at: int = 12_000, seed: int = 0) -> list[Event]:
    """Two-click sessions: from each of 3 entry items to one of 30 others (fewer items than the
    monitor's popularity bins); at click ``at`` every entry item leads to 30 new items instead. An online model's counts keep the old items on top
    long after; a model built from the clicks since the switch knows only the new ones."""
    rng = random.Random(seed)
    out: list[Event] = []
    for i in range(n // 2):
        a = rng.randrange(3)
        later = 2 * i >= at
        b = 1000 + 100 * a + rng.randrange(30) + (50 if later else 0)
        out.append(Event(f"s{i}", f"a{a}", float(2 * i)))
        out.append(Event(f"s{i}", f"i{b}", float(2 * i + 1)))
    return out


def test_drift_starts_a_challenger_trained_on_the_clicks_since_the_drift():
    p, life = _processor(budget=1_000_000)
    _feed(p, SyntheticStream(events=14_000, seed=1, scenario="new-catalog", drift_at=10_000))
    m = p.monitor
    assert m.retraining_due and life.challenger is not None and p.shadow is life.challenger
    ch = life.challenger
    assert 9_000 <= ch.since <= m.due_events[0] and ch.started == m.due_events[0]
    assert ch.clicks == m.n - ch.started  # it learned every click in shadow
    assert 0 < ch.pairs < ch.clicks  # scored on a sample of sessions only
    assert life.state == "challenging" and life.status()["challenger"]["active"]
    assert [a["action"] for a in life.actions] == ["due"]


def test_a_challenger_that_cannot_win_is_dropped_at_its_budget_and_due_clears():
    """Under a drift the online model absorbs: a challenger with a budget spends it, is dropped,
    and retraining due clears with "drift absorbed", the reference re-baselined from recent clicks."""
    p, life = _processor(budget=3_000, alpha=1e-9)  # alpha so small it cannot win in 3,000 clicks
    _feed(p, SyntheticStream(events=18_000, seed=1, scenario="new-catalog", drift_at=10_000))
    m = p.monitor
    assert life.dropped >= 1 and life.challenger is None and p.shadow is None
    assert life.clears and life.clears[0]["reason"] == ABSORBED
    assert life.clears[0]["event"] >= m.due_events[0] + 3_000
    assert not life.promotions and p.model.name == "sr"


def test_a_winning_challenger_is_promoted_in_one_swap_and_its_window_becomes_the_reference():
    p, life = _processor(share=1.0)
    champion = p.model
    _feed(p, _switch())
    assert life.promotions, life.status()
    pr = life.promotions[0]
    assert pr["hit_rate_gain"] > 0.1 and pr["e_value"] >= 20
    assert p.model is not champion and pr["event"] > pr["since"]
    assert life.clears[0]["reason"] == PROMOTED and life.clears[0]["event"] == pr["event"]
    assert life.state in ("watching", "due", "challenging")


def test_manual_promotion_waits_then_the_operator_promotes():
    p, life = _processor(share=1.0, promote="manual")
    champion = p.model
    for e in _switch():
        p.process(e)
        if life.state == "waiting":
            break
    assert life.state == "waiting", life.status()
    assert p.model is champion and life.status()["challenger"]["waiting"]
    reg = CollectorRegistry()
    reg.register(LifecycleCollector(life))
    assert "streamrec_challenger_waiting 1.0" in generate_latest(reg).decode()
    out = life.promote(by="alice")
    assert p.model is not champion and out["state"] in ("watching", "due")
    assert out["promotions"][-1]["by"] == "alice" and not out["retraining_due"]
    assert [a["action"] for a in out["actions"]][-2:] == ["waiting", "promote"]


def test_operator_actions_request_promote_acknowledge():
    p, life = _processor(on_drift="alert")
    _feed(p, SyntheticStream(events=13_000, seed=1, scenario="new-catalog", drift_at=10_000))
    assert life.state == "due" and life.challenger is None  # alert: raise and keep
    with pytest.raises(ValueError):
        life.promote()
    out = life.request_retrain("try the recent clicks", by="bob")
    assert out["state"] == "challenging" and out["challenger"]["active"]
    _feed(p, SyntheticStream(events=1_000, seed=2, start_ts=1e9))
    out = life.promote(by="bob")  # an operator may promote a challenger that has not won yet
    assert out["promotions"][-1]["by"] == "bob" and not out["challenger"]["active"]
    _feed(p, SyntheticStream(events=3_000, seed=3, scenario="new-catalog", drift_at=0, start_ts=2e9))
    if life.monitor.retraining_due:
        out = life.acknowledge(by="carol", reason="new season")
        assert out["state"] == "watching" and out["acknowledgements"] == 1
        assert life.clears[-1]["reason"] == ACKNOWLEDGED
    for a in life.actions:
        assert set(a) == {"action", "by", "reason", "event", "timestamp"}


def test_no_blind_spot_checks_go_on_right_after_a_reference_change():
    p, life = _processor(on_drift="alert")
    _feed(p, SyntheticStream(events=20_000, seed=1, scenario="new-catalog", drift_at=10_000))
    m = p.monitor
    assert m.retraining_due
    at = m.n
    life.acknowledge()
    assert not m.retraining_due and m.reference_size >= SMALL["reference_events"] // 5
    _feed(p, SyntheticStream(events=2_000, seed=1, scenario="new-catalog", drift_at=0, start_ts=1e9))
    assert [c for c in m.checks if c[0] > at][:1], "no check in the 2,000 clicks after the change"
    # and a second drift after it is detected without waiting for a new 5,000-click capture
    _feed(p, SyntheticStream(events=4_000, seed=9, scenario="new-catalog", drift_at=0, start_ts=2e9))
    assert m.retraining_due and m.due_events[-1] < at + 6_500


def test_checkpoint_round_trip_restores_the_lifecycle_and_its_challenger():
    p, life = _processor(budget=1_000_000)
    _feed(p, SyntheticStream(events=14_000, seed=1, scenario="new-catalog", drift_at=10_000))
    life.request_retrain("again", by="dave")
    snap = decode(encode(Snapshot({"monitor": p.monitor}, {}, p.events, extras={"lifecycle": life.state_dict()})))
    state = {"monitor": snap.state["monitor"], "lifecycle": snap.extras["lifecycle"]}
    q = ClickProcessor(make_model("sr"), monitor=state["monitor"])
    state["monitor"].attach(q)
    fresh = Lifecycle(DriftMonitor(**SMALL), q)
    fresh.attach(q)
    fresh.load_state_dict(state["lifecycle"])
    assert fresh.monitor is q.monitor and q.monitor.subscribers == []  # it binds; the wiring subscribes
    q.monitor.subscribe(fresh.on_due)
    assert fresh.state == life.state == "challenging" and q.shadow is fresh.challenger
    assert fresh.challenger.clicks == life.challenger.clicks
    assert [a["action"] for a in fresh.actions] == [a["action"] for a in life.actions]
    assert fresh.status()["challenger"]["e_value"] == life.status()["challenger"]["e_value"]


def test_the_challenger_batch_path_pairs_like_the_click_path():
    """kNN models: the challenger learns a whole run in one compiled call and answers the sampled
    sessions only; the lists it pairs are those of the click-by-click path."""
    from stream.processing.core import chunked

    events = list(SyntheticStream(events=6_000, seed=4))
    made = []
    for batched in (False, True):
        p = ClickProcessor(make_model("vstan"))
        ch = Challenger(make_model("vstan"), k=20, share=0.5, alpha=0.05)
        p.shadow = ch
        if batched:
            for chunk in chunked(events, 500):
                p.process_batch(chunk)
        else:
            _feed(p, events)
        made.append((ch.clicks, ch.pairs, ch.preq.hits, ch.champion_hits, p.preq.hits))
    assert made[0] == made[1]
    assert 0 < made[0][1] < 6_000


def test_lifecycle_metrics_names():
    _, life = _processor()
    reg = CollectorRegistry()
    reg.register(LifecycleCollector(life))
    text = generate_latest(reg).decode()
    for name in ("streamrec_challenger_active 0.0", "streamrec_challenger_waiting 0.0",
                 "streamrec_challenger_hit_rate_gain 0.0", "streamrec_model_promotions_total 0.0",
                 "streamrec_drift_acknowledgements_total 0.0"):
        assert name in text


def test_acknowledged_right_after_the_drift_the_old_reference_checks_until_the_new_one_is_usable():
    """Too few clicks since the drift for a reference: the current one goes on checking (quietly:
    the operator said this is the new normal) while the new one grows from the clicks since the
    drift; it takes over at a fifth of --reference-events and raises nothing on the same drift."""
    size = 10_000
    p, life = _processor(on_drift="alert", monitor={"reference_events": size, "buffer_events": size})
    events = list(SyntheticStream(events=40_000, seed=1, scenario="new-catalog", drift_at=15_000))
    it = iter(events)
    m = p.monitor
    while not m.retraining_due:
        p.process(next(it))
    since, at = m.drift_since, m.n
    assert at - since < size // 5  # too few for a reference
    old = m._frozen
    life.acknowledge(by="erin")
    assert m._frozen is old and m._ref is not None and m._ref.n == at - since  # seeded from the ring
    for _ in range(size // 5 - (at - since) - 1):
        p.process(next(it))
    assert m._frozen is old and [c for c in m.checks if c[0] > at]  # it kept checking meanwhile
    p.process(next(it))
    assert m._frozen is not old and m._frozen.events == size // 5  # took over
    for e in it:
        p.process(e)
    assert m.due_events == [m.due_events[0]] and not m.retraining_due
    assert m._frozen.events == size  # and grew to full size


def _batch_challenger(settling: bool) -> tuple[Lifecycle, Challenger]:
    """A synchronous item2vec champion and its challenger, started from a settled reference or
    while a re-baselined one grows (``settling``)."""
    m = DriftMonitor(**SMALL)
    p = ClickProcessor(make_model("item2vec", background=False, warmup=2_000), monitor=m)
    m.attach(p)
    life = Lifecycle(m, p, on_drift="challenger", budget=1_000_000)
    _feed(p, SyntheticStream(events=8_000, seed=1))
    if settling:
        m.rebaseline(m.n - 100, hits=False)  # too few clicks to freeze a reference at once
    assert m.settling is settling
    life.request_retrain("test", by="test")
    ch = life.challenger
    assert ch is not None and ch.refit_at == REFIT_FIRST and ch.refits == 0
    return life, ch


def _at_refit_point(life: Lifecycle, ch: Challenger, challenger_hit: bool, champion_rr: float) -> None:
    for _ in range(3):
        ch._pair([7], 7 if challenger_hit else 8, champion_rr)
    ch.clicks = ch.refit_at
    life.settle()
    assert life.challenger is ch and not ch.won


def test_a_batch_challenger_ahead_keeps_its_first_fit_at_a_refit_point():
    """Its first fit is on the window a retrain fits on at the due: ahead of the champion on the
    paired clicks, it skips the refit point (to the next doubling); tied or behind, it fits again."""
    life, ch = _batch_challenger(settling=False)
    assert ch.keep_ahead
    _at_refit_point(life, ch, challenger_hit=True, champion_rr=0.0)  # ahead
    assert ch.refits == 0 and ch.refit_at == 2 * REFIT_FIRST
    _at_refit_point(life, ch, challenger_hit=False, champion_rr=1.0)  # now behind
    assert ch.refits == 1 and ch.refit_at == 4 * REFIT_FIRST


def test_a_batch_challenger_started_while_the_monitor_settles_fits_again_at_every_point():
    """Started while a re-baselined reference grows (a due right after a promotion), its window is
    nearly the promoted model's: it fits again at each point even when ahead."""
    life, ch = _batch_challenger(settling=True)
    assert not ch.keep_ahead
    _at_refit_point(life, ch, challenger_hit=True, champion_rr=0.0)
    assert ch.refits == 1 and ch.refit_at == 2 * REFIT_FIRST
