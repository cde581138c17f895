"""``ClickProcessor.process_batch`` (one compiled learn + recommend call per run of clicks for the
session-kNN family) against ``process`` click by click: the same lists, prequential figures,
drift monitor, retraining swaps, session store and model state, under every cap."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.drift.lifecycle import Lifecycle
from monitoring.drift.monitor import DriftMonitor
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.models import make_model
from stream.processing.core import ClickProcessor, chunked
from stream.state.items import ItemIndex
from stream.state.sessions import SessionStore


def _processor(model: str, tight: bool, learn: bool = True, monitor: bool = True) -> ClickProcessor:
    if tight:  # every cap hit: store TTL and LRU, history length, index sessions / items, item cap
        m = make_model(model, max_sessions=300, max_session_items=4, max_item_sessions=40)  # evicts 15 at once
        store = SessionStore(ttl_s=10.0, max_sessions=250, max_session_items=3)
        items = ItemIndex(max_items=300)
        mon = DriftMonitor(reference_events=1500, warmup=300, buffer_events=1000)
    else:
        m = make_model(model)
        store, items = SessionStore(), ItemIndex()
        mon = DriftMonitor(reference_events=2000, warmup=500, buffer_events=2000)
    p = ClickProcessor(m, sessions=store, items=items, monitor=mon if monitor else None, learn=learn)
    if monitor:
        mon.attach(p)
        mon.subscribe(Lifecycle(mon, p, on_drift="retrain").on_due)
    return p


def _state(p: ClickProcessor) -> tuple:
    store = {s.session_id: (s.key, tuple(s.items), s.clicks, tuple(s.last_recs), s.last_ts, s.started_ts)
             for s in p.sessions.sessions()}
    m = p.model
    ix = m.index
    index = (len(ix), ix.n_events, ix.n_sessions_seen, ix.n_items(),
             {ix.key(s): ix.session_items(ix.key(s)) for s in ix._slot.values()},
             {i: ix.postings(i).tolist() for i in range(ix.n_items())})
    mon = p.monitor
    drift = None
    if mon is not None:
        drift = (mon.n, mon.retrains, mon.retraining_due,
                 {k: (None if v != v else v) for k, v in mon.score.items()})
    return (store, p.sessions.expired, p.sessions.evicted, p.events, p.preq.predictions, p.preq.hits,
            p.preq.rr_sum, p.latency.count, len(p.items), index, drift, m._pop.top(20))


def _events(n: int, seed: int = 5) -> list[Event]:
    return list(SyntheticStream(events=n, seed=seed, scenario="new-catalog", drift_at=n // 2))


@pytest.mark.parametrize("model", ["vstan", "stan", "sknn", "vsknn"])
@pytest.mark.parametrize("tight", [False, True], ids=["defaults", "tight-caps"])
@pytest.mark.parametrize("threads", [1, 2], ids=["one-thread", "split-queries"])
def test_batch_equals_click_by_click(model: str, tight: bool, threads: int) -> None:
    """``split-queries``: ``process_batch`` answers half of each run's queries on a second thread
    (``split_queries``, as ``evaluate`` and ``simulate`` do)."""
    events = _events(6_000)
    a, b = _processor(model, tight), _processor(model, tight)
    assert b.model.batches
    if threads == 2:
        b.split_queries()
    one = [a.process(e) for e in events]
    many: list[list[int]] = []
    for chunk in chunked(events, 700):
        many.extend(b.process_batch(chunk))
    assert many == one
    assert _state(b) == _state(a)
    if tight:  # the caps were hit and the monitor swapped the model mid-stream
        assert a.sessions.evicted and a.sessions.expired and a.monitor.retrains
        # the index evicted sessions: the served model's, or one it replaced (a retrain's model starts fresh)
        assert a.model.index.n_sessions_seen > a.model.index.max_sessions or a.monitor.retrains > 1


@pytest.mark.parametrize("model", ["vstan", "stan", "sknn", "vsknn"])
@pytest.mark.parametrize("caps", ["defaults", "item-cap", "evictions"])
def test_split_run_equals_whole(model: str, caps: str) -> None:
    """A run whose last queries another caller computes on a copy of the index
    (``split_batch``, the pipelined worker's main thread) gives the lists and state of
    ``process``, whatever the share; with a small item cap, posting lists are cut within runs;
    with a small index, plans are cut into runs at evictions (the first one is split, the second
    thread plans and runs the others meanwhile)."""
    from stream.models.knn.index import IndexShadow

    events = _events(6_000, seed=11)
    kw = {"item-cap": {"max_item_sessions": 40}, "evictions": {"max_sessions": 200}}.get(caps, {})

    def proc() -> ClickProcessor:
        mon = DriftMonitor(reference_events=2000, warmup=500, buffer_events=2000)
        p = ClickProcessor(make_model(model, **kw), monitor=mon)
        mon.attach(p)
        mon.subscribe(Lifecycle(mon, p, on_drift="retrain").on_due)
        return p

    a, b = proc(), proc()
    one = [a.process(e) for e in events]
    many: list[list[int]] = []
    shadow, rng, splits = IndexShadow(), np.random.default_rng(0), 0
    for chunk in chunked(events, 500):
        run = b.plan(chunk)
        m = b.model
        plan = run.plan_model(m)
        rest = m.split_batch(plan, float(rng.uniform(0.1, 0.9)), shadow, min_clicks=1)
        answers = m.run_batch(plan)
        if rest is not None:
            rest()
            splits += 1
        many.extend(b.finish(run, m, answers))
    assert splits == 12
    if caps == "evictions":
        assert a.model.index.n_sessions_seen > 3 * a.model.index.max_sessions
    assert many == one
    assert _state(b) == _state(a)
    assert a.monitor.retrains >= 1


def test_batch_without_learning_and_without_monitor() -> None:
    events = _events(3_000, seed=9)
    warm = events[:1_500]
    a, b = _processor("vstan", False, monitor=False), _processor("vstan", False, monitor=False)
    for p in (a, b):
        for e in warm:
            p.process(e)
        p.learn = False  # session-rec's static test phase: score and recommend only
    assert [a.process(e) for e in events[1_500:]] == b.process_batch(events[1_500:])
    assert _state(b) == _state(a)


def test_on_click_sees_the_list_each_click_was_scored_against() -> None:
    events = _events(2_000, seed=11)
    for model in ("vstan", "sr"):  # the compiled runs and the click-by-click fallback
        p = _processor(model, False)
        ref = _processor(model, False)
        expected = []
        for e in events:
            s = ref.sessions.get(e.session_id)
            prev = s.last_recs if s is not None else None
            before = ref.preq.predictions
            ref.process(e)
            expected.append(prev if ref.preq.predictions > before else None)
        got: list[list[int] | None] = [None] * len(events)
        p.process_batch(events, got.__setitem__)
        assert got == expected
        assert sum(x is not None for x in got) == p.preq.predictions


def test_models_without_a_batch_kernel_go_click_by_click() -> None:
    events = _events(2_000, seed=4)
    makers = (lambda: make_model("sr"), lambda: make_model("vsknn", push_reminders=True))  # rules;
    for make in makers:  # V-SKNN's reminders are applied in Python
        a, b = _processor("sr", False), _processor("sr", False)
        a.model, b.model = make(), make()
        assert not getattr(b.model, "batches", False)
        assert [a.process(e) for e in events] == b.process_batch(events)
        assert a.preq.hits == b.preq.hits and a.monitor.n == b.monitor.n


def test_batch_latency_is_per_click() -> None:
    p = _processor("vstan", False, monitor=False)
    p.process_batch(_events(3_000, seed=6))
    lat = p.latency.samples()
    assert p.latency.count == 3_000 and (lat > 0).all()
    assert len(np.unique(lat)) > 1_000  # each query timed, not a run's average
    assert lat.max() < 0.1


@pytest.mark.broker
def test_pipelined_worker_equals_click_by_click(broker, unique, monkeypatch) -> None:
    """The real worker on the embedded broker (second thread on, its main thread computing a
    share of each run's queries, small polls, a retraining swap mid-stream, malformed messages in
    between) publishes exactly the lists of ``process``."""
    import orjson

    from stream.kafka import clients as kafka_io
    from stream.kafka.producer import produce_events
    from stream.kafka.worker import Worker, WorkerSettings
    from tests.kafka_read import read_topic

    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, recs = f"clicks-{unique}", f"recs-{unique}"
    events = _events(6_000, seed=8)
    produce_events(cfg, topic, events[:3_000], show_progress=False)
    prod = kafka_io.make_producer(cfg)
    for value in (b"{not json", b"[]"):
        prod.send(topic, key=b"bad", value=value)
    prod.flush()
    prod.close()
    produce_events(cfg, topic, events[3_000:], show_progress=False)

    from stream.models.knn.index import KNNModel

    splits = []
    split_batch = KNNModel.split_batch

    def counted(self, *a, **kw):  # type: ignore[no-untyped-def]
        rest = split_batch(self, *a, **kw)
        splits.append(rest is not None)
        return rest

    monkeypatch.setattr(KNNModel, "split_batch", counted)
    served = _processor("vstan", False)
    worker = Worker(WorkerSettings(
        client=cfg, topic=topic, group=f"g-{unique}", recommendations_topic=recs, max_events=len(events) + 2,
        consumer_overrides={"session_timeout_ms": 6000, "max_poll_records": 400}), served)
    summary = worker.run()
    assert worker._thread is not None  # the pipelined path ran
    assert any(splits)  # and the main thread computed some of the queries
    assert (summary.events_processed, summary.events_invalid) == (len(events), 2)

    ref = _processor("vstan", False)
    expected = [ref.items.names(ref.process(e)) for e in events]
    published = read_topic(cfg, recs, len(events))
    assert [orjson.loads(r.value)["items"] for r in published] == expected
    assert served.monitor.retrains == ref.monitor.retrains >= 1
    assert _state(served) == _state(ref)


@pytest.mark.parametrize("model", ["vstan", "sknn"])
def test_concurrent_reads_answer_from_the_last_split_runs_state(model: str) -> None:
    """``recommend_concurrent`` (the request API's queries while a pipelined run computes) gives,
    from the copy the last split-off part left, the lists of the model that learned that run
    (one run per plan here: no evictions), also while the next run is split and computing; and
    ``None`` until a run has been split."""
    events = _events(4_000, seed=3)
    a, b = _processor(model, False, monitor=False), _processor(model, False, monitor=False)
    assert b.model.recommend_concurrent([0], 0.0, 5) is None
    probes = [[e.item_id for e in events[j:j + 3]] for j in range(0, 90, 3)]
    checked = 0
    expected: list[list[int]] | None = None
    at = 0.0
    for chunk in chunked(events, 500):
        run = b.plan(chunk)
        m = b.model
        plan = run.plan_model(m)
        rest = m.split_batch(plan, 0.5, min_clicks=1)
        assert rest is not None
        known = [[b.items.get(i) for i in h] for h in probes]
        if expected is not None:  # the next run is split: the view is still the last run's
            assert [m.recommend_concurrent(h, at, 5) for h in known] == expected
            checked += len(known)
        answers = m.run_batch(plan)
        rest()
        b.finish(run, m, answers)
        for e in chunk:
            a.process(e)
        at = chunk[-1].timestamp
        expected = [a.model.recommend(h, at, 5) for h in known]
        assert [m.recommend_concurrent(h, at, 5) for h in known] == expected
    assert checked >= 200
