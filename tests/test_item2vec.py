"""item2vec: batch word2vec behind the streaming model contract (tiny corpora, few epochs)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from stream.models import make_model  # noqa: E402
from stream.models.item2vec import FF19_TUNED, Item2Vec, NeighbourTable  # noqa: E402
from tests.kafka_read import read_topic  # noqa: E402

CLUSTERS = [[1, 2, 3, 4], [10, 11, 12, 13]]


def tiny(**kw: object) -> Item2Vec:
    params = dict(vector_size=8, window=2, negative=3, epochs=40, sample=0.0, topk=5, workers=1, seed=3)
    params.update(kw)
    return Item2Vec(**params)  # type: ignore[arg-type]


def feed(m: Item2Vec, sessions: list[list[int]], start_key: int = 0, ts: float = 0.0) -> None:
    for key, s in enumerate(sessions, start_key):
        for pos, item in enumerate(s):
            m.learn_one(key, item, ts, s[:pos])


def test_registry_and_params():
    m = make_model("item2vec", preset="ff19", epochs=3)
    assert isinstance(m, Item2Vec)
    p = m.word2vec_params()
    assert (p["window"], p["negative"], p["ns_exponent"], p["epochs"]) == (13, 16, 0.6, 3)
    assert p["sg"] == 1 and p["min_count"] == 1
    d = Item2Vec().word2vec_params()  # the "stream" preset: gensim's defaults with 20 epochs
    assert (d["vector_size"], d["window"], d["negative"], d["ns_exponent"], d["epochs"]) == (100, 5, 5, 0.75, 20)
    g = Item2Vec(preset="gensim").word2vec_params()
    assert (g["vector_size"], g["window"], g["negative"], g["ns_exponent"], g["epochs"]) == (100, 5, 5, 0.75, 5)
    assert FF19_TUNED["epochs"] == 100
    c = m.clone()
    assert c.params() == m.params() and not c.trained
    for bad in ({"preset": "x"}, {"query": "x"}, {"topk": 0}, {"retrain_every": -1}):
        with pytest.raises(ValueError):
            Item2Vec(**bad)  # type: ignore[arg-type]


def test_learn_one_buffers_without_training_and_falls_back_to_popularity():
    m = tiny()
    feed(m, [[1, 2, 2], [2, 3]])
    assert not m.trained and m.trainings == 0
    assert m.buffered_sessions() == [[1, 2, 2], [2, 3]]
    assert m.recommend([1], 0.0, k=2) == [2, 1]  # popularity: 2 clicked three times
    assert m.recommend([], 0.0, k=5) == [2, 1, 3]
    assert m.model_age() is None


def test_training_buffer_is_bounded_oldest_sessions_first():
    m = tiny(max_events=5)
    feed(m, [[1, 2], [3, 4], [5, 6]])
    assert m.buffered_sessions() == [[3, 4], [5, 6]]


def test_fit_learns_clusters_and_neighbours_exclude_the_item_itself():
    m = tiny().fit(CLUSTERS * 30)
    assert m.trained and m.vocabulary == 8 and m.trained_events == 240
    assert m.training_seconds > 0 and m.model_age() is not None and m.model_age() >= 0
    for cluster in CLUSTERS:
        for item in cluster:
            recs = m.recommend([99, item], 0.0, k=3)
            assert item not in recs
            assert set(recs) == set(cluster) - {item}


def test_new_items_fall_back_to_the_last_item_with_a_vector_then_popularity():
    m = tiny(topk=3).fit(CLUSTERS * 30)
    feed(m, [[50, 50, 50, 51]], start_key=100)  # new items after training: popular, no vector
    assert not m.has_vector(50) and m.has_vector(1)
    assert set(m.recommend([1, 50], 0.0, k=3)) == {2, 3, 4}  # 50 has no vector: use 1
    recs = m.recommend([50, 51], 0.0, k=3)  # no item of the session has a vector
    assert recs[0] == 50
    recs = m.recommend([1], 0.0, k=5)  # topk=3 neighbours, then popularity fill
    assert set(recs[:3]) == {2, 3, 4} and recs[3] == 50 and len(recs) == 5


def test_query_mean_averages_recent_items_and_leaves_them_out():
    m = tiny(query="mean", recent=2).fit(CLUSTERS * 30)
    recs = m.recommend([10, 1, 2], 0.0, k=2)
    assert set(recs) == {3, 4}


def test_neighbour_table_blocks_agree_with_brute_force(monkeypatch):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(57, 6))
    items = np.arange(100, 157)
    monkeypatch.setattr(NeighbourTable, "BLOCK_FLOATS", 57 * 5)  # blocks of 5 rows
    t = NeighbourTable(items, vecs, topk=7)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    for r in range(57):
        expect = (items[np.argsort(-sims[r], kind="stable")[:7]]).tolist()
        assert t.neighbours(int(items[r])) == expect
    assert NeighbourTable(np.array([1]), np.ones((1, 3)), topk=5).neighbours(1) == []


def test_background_retrain_swaps_atomically_and_serves_meanwhile():
    m = tiny()
    feed(m, CLUSTERS * 30)
    m.fit([[1, 10], [2, 11]] * 5)  # an old table that mixes the clusters
    old = m._table
    assert m.start_retrain()  # snapshot of the buffer
    assert m.start_retrain()  # queued behind the running one, never lost
    served = 0
    while m.training:
        assert len(m.recommend([1], 0.0, k=3)) == 3  # never raises, never empty
        served += 1
        time.sleep(0.001)
    assert m.wait(10)
    assert m._table is not old and m.last_error is None and m.trainings == 3
    assert m.trained_events == 240
    assert set(m.recommend([1], 0.0, k=3)) == {2, 3, 4}
    assert served >= 1


def test_warmup_and_retrain_every_schedule_trainings():
    m = tiny(warmup=40, retrain_every=80, background=False)
    feed(m, CLUSTERS * 5)  # 40 clicks: the first training
    assert m.trainings == 1 and m.trained_events == 40
    feed(m, CLUSTERS * 5, start_key=10)  # 40 more: not yet due
    assert m.trainings == 1
    feed(m, CLUSTERS * 5, start_key=20)
    assert m.trainings == 2 and m.trained_events == 120
    bg = tiny(warmup=40)  # background, never again after the first
    feed(bg, CLUSTERS * 10)
    assert bg.wait(10) and bg.trainings == 1
    assert tiny().warmup == 10_000 and tiny().retrain_every == 0


def test_retrain_from_the_policy_buffer_groups_clicks_into_sessions():
    m = tiny()
    clicks = [(key, item, float(t)) for t, (key, s) in enumerate(enumerate(CLUSTERS * 30)) for item in s]
    assert m.retrain_from(clicks + [(0, -1, 0.0)]) == 240  # overflow items (-1) are skipped
    assert m.wait(10) and m.trained_events == 240
    assert set(m.recommend([10], 0.0, k=3)) == {11, 12, 13}
    assert not m._buffer  # the policy's clicks train the model, they are not its own learning


def test_retrain_from_trains_in_this_thread_when_not_in_background():
    m = tiny(background=False)
    clicks = [(key, item, float(t)) for t, (key, s) in enumerate(enumerate(CLUSTERS * 30)) for item in s]
    assert m.retrain_from(clicks) == 240
    assert m.trained and not m.training and m._thread is None  # served from the next click on
    assert set(m.recommend([10], 0.0, k=3)) == {11, 12, 13}


def test_replays_train_batch_models_synchronously():
    from stream.evaluation.simulate import replayed

    m = replayed(tiny())
    assert m.background is False and m.clone().background is False  # a challenger's clone too
    sr = make_model("sr")
    assert replayed(sr) is sr


def test_a_stale_training_never_replaces_a_newer_table():
    m = tiny()
    m._started = 2
    m._swap(None, 1.0, 10, generation=2)
    m._swap(NeighbourTable(np.array([1, 2]), np.eye(2)), 1.0, 10, generation=1)
    assert m._table is None and m.trainings == 1


def test_pickles_for_checkpoints_even_while_training():
    import pickle

    m = tiny(epochs=100)
    feed(m, CLUSTERS * 30)
    m.retrain()
    assert m.start_retrain()
    copy = pickle.loads(pickle.dumps(m))
    m.wait(10)
    assert copy.trained and copy.vocabulary == 8 and len(copy.recommend([1], 0.0, k=3)) == 3
    assert not copy.training and copy.buffered_sessions() == m.buffered_sessions()
    assert copy.start_retrain() and copy.wait(10) and copy.trainings == 2


def test_training_error_keeps_the_old_table(monkeypatch):
    m = tiny().fit(CLUSTERS * 10)
    old = m._table

    def boom(self, sessions):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Item2Vec, "build_table", boom)
    assert m.start_retrain() and m.wait(10)
    assert m._table is old and isinstance(m.last_error, RuntimeError)


def test_without_gensim_streamrec_imports_and_item2vec_says_what_to_install():
    code = (
        "import sys; sys.modules['gensim'] = None; sys.modules['gensim.models'] = None\n"
        "import stream.cli, stream.processing.core, stream.evaluation.ff19, stream.models.item2vec\n"
        "from stream.models import make_model\n"
        "m = make_model('sr'); m.learn_one(0, 1, 0.0, []); m.learn_one(0, 2, 0.0, [1])\n"
        "print(m.recommend([1], 0.0, k=2))\n"
        "try:\n    make_model('item2vec')\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[2, 1]" in out.stdout and "ERR" in out.stdout and "streamrec[item2vec]" in out.stdout


@pytest.mark.broker
@pytest.mark.slow
def test_worker_retrains_item2vec_on_new_catalog_drift_and_recovers(broker, unique):
    """Embedded broker, real consumer-group worker, drift monitor with the retrain policy:
    item2vec trains at start (warm-up), the new-catalog drift makes retraining due, the model
    retrains in the background and swaps its table while every click is still processed and
    published, and the prequential hit rate recovers."""
    import threading as th

    import orjson

    from monitoring.drift.lifecycle import Lifecycle
    from monitoring.drift.monitor import DriftMonitor
    from stream.evaluation.synthetic import SyntheticStream
    from stream.kafka.producer import produce_events
    from stream.kafka.worker import Worker, WorkerSettings
    from stream.processing.core import ClickProcessor

    n, drift_at = 30_000, 15_000
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, recs_topic, group = f"clicks-{unique}", f"recs-{unique}", f"g-{unique}"
    events = list(SyntheticStream(events=n, seed=5, scenario="new-catalog", drift_at=drift_at,
                                  n_items=500, new_item_share=0.5))
    produce_events(cfg, topic, events, partitions=1, show_progress=False)

    # the warm-up training runs in line, so the drift reference (clicks 4,000..9,000) is captured
    # with the model the stream will be served by; the drift policy's retrain runs in the background
    model = Item2Vec(warmup=3_000, epochs=10, vector_size=32, workers=1, background=False)
    monitor = DriftMonitor(reference_events=5_000, warmup=4_000, buffer_events=6_000)
    processor = ClickProcessor(model, k=20, monitor=monitor)
    monitor.attach(processor)
    monitor.subscribe(Lifecycle(monitor, processor, on_drift="retrain").on_due)
    worker = Worker(WorkerSettings(client=cfg, topic=topic, group=group, model_name="item2vec",
                                   recommendations_topic=recs_topic, max_events=n), processor)
    runner = th.Thread(target=worker.run, daemon=True)
    runner.start()
    swaps: list[tuple[int, int]] = []  # (events processed, trainings) whenever a table was swapped in
    seen = 0
    deadline = time.monotonic() + 240
    while (runner.is_alive() or model.training) and time.monotonic() < deadline:
        if model.trainings != seen:
            seen = model.trainings
            swaps.append((processor.events, seen))
        time.sleep(0.01)
    assert not runner.is_alive(), "the worker did not finish in time"
    model.wait(30)

    # nothing dropped: every click processed once and one list published per click
    assert processor.events == n and worker.invalid == 0
    published = read_topic(cfg, recs_topic, n, timeout=60.0)
    assert len(published) == n
    # the warm-up training, then the retrain the drift policy asked for once it was due
    assert monitor.retrains >= 1 and monitor.due_events and monitor.due_events[0] > drift_at
    assert model.trainings >= 2 and model.last_error is None
    due = monitor.due_events[0]
    retrained_at = next(e for e, t in swaps if t >= 2 and e >= due)

    # prequential hit rate from what was published: the list after a session's click vs its next click
    last: dict[str, list[str]] = {}
    hits: list[tuple[int, int]] = []
    for i, (event, msg) in enumerate(zip(events, published, strict=True)):
        rec = orjson.loads(msg.value)
        assert rec["session_id"] == event.session_id
        prev = last.get(event.session_id)
        if prev is not None:
            hits.append((i, event.item_id in prev))
        last[event.session_id] = rec["items"]

    def hr(a: int, b: int) -> float:
        sel = [h for i, h in hits if a <= i < b]
        return sum(sel) / max(len(sel), 1)

    before, during, after = hr(drift_at - 5_000, drift_at), hr(drift_at, retrained_at), hr(retrained_at + 1_000, n)
    print(f"item2vec HR@20 before drift {before:.3f}, drifted on the old table {during:.3f}, after the "
          f"retrain (swapped at event {retrained_at}, due at {due}) {after:.3f}; swaps {swaps}")
    assert retrained_at + 3_000 < n, "the retrain came too late to measure a recovery"
    assert after > during + 0.03
