"""Scale-out: W workers split the partitions, serve each event once, and learn from all clicks."""

from __future__ import annotations

import tempfile

import pytest
from kafka.partitioner.default import murmur2

from stream import kafka_io
from stream.bench import run_pipeline
from stream.broker import EmbeddedBroker
from stream.core import ClickProcessor
from stream.models import make_model
from stream.producer import produce_events
from stream.replica import SHADOW_KEY_BASE, Replica
from stream.synthetic import SyntheticStream


def partition_of(session_id: str, partitions: int) -> int:
    """kafka-python's default partitioner for a key (murmur2, positive, modulo)."""
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize("model", ["sr", "vstan"])
def test_two_replicas_learn_what_one_worker_learns(model: str) -> None:
    """In process, no Kafka: two workers each serve half the partitions and learn the rest in
    event-time order; their accuracy matches one worker's, and SR's counts are identical."""
    events = list(SyntheticStream(events=12_000, seed=5))
    single = ClickProcessor(make_model(model))
    for ev in events:
        single.process(ev)
    workers = [ClickProcessor(make_model(model)) for _ in range(2)]
    replicas = [Replica(p, {}, "clicks", consumer=False) for p in workers]
    for ev in events:  # each click goes to its owner; the other worker holds it for learning
        owner = partition_of(ev.session_id, 4) % 2
        replicas[1 - owner].offer(ev)
        r = replicas[owner]
        if ev.timestamp >= r.next_ts:
            r.drain(ev.timestamp)
        workers[owner].process(ev)
    for r in replicas:
        r.drain(float("inf"))
    assert sum(p.events for p in workers) == len(events)
    assert all(r.learned == len(events) - p.events for r, p in zip(replicas, workers))
    assert all(s.key >= SHADOW_KEY_BASE for r in replicas for s in r.shadow.sessions())
    hits = sum(p.preq.hits for p in workers)
    preds = sum(p.preq.predictions for p in workers)
    assert preds == single.preq.predictions
    assert abs(hits / preds - single.preq.hit_rate) <= 0.01
    if model == "sr":
        for p in workers:
            assert p.model.rules == single.model.rules


def test_two_worker_processes_serve_every_event_exactly_once() -> None:
    n, partitions = 6000, 4
    with EmbeddedBroker() as b, tempfile.TemporaryDirectory() as tmp:
        client = {"bootstrap_servers": b.bootstrap}

        def produce(topic: str):
            return lambda: produce_events(client, topic, SyntheticStream(events=n, seed=3),
                                          partitions=partitions, show_progress=False)

        runs = {}
        for w in (1, 2):
            topic = f"scaleout-{w}"
            kafka_io.ensure_topic(client, topic, partitions)
            runs[w] = run_pipeline(b.bootstrap, topic, n, "sr", w, partitions, [], tmp,
                                   produce=produce(topic), timeout_s=240)
    one, two = runs[1], runs[2]
    assert one.events_processed == two.events_processed == n
    counts = [s["events_processed"] for s in two.per_worker]
    assert len(counts) == 2 and all(c > 0 for c in counts) and sum(counts) == n
    # each worker learned the clicks the other one served, but not necessarily the last ones: its
    # learner may lag, and foreign clicks wait for the event time of a served click that never
    # comes once the bench stops the workers (all served). HR parity below is the real check.
    for s, other in zip(two.per_worker, counts[::-1]):
        assert 0.5 * other <= s["foreign_learned"] <= other
    # 6,000 clicks is a small, noisy sample (the acceptance run, `streamrec bench --events 100000
    # --workers 1|2`, holds |delta HR@20| <= 0.01); here a learner that starts late costs a little more
    assert abs(two.hit_rate - one.hit_rate) <= 0.02


def test_a_foreign_session_is_adopted_with_its_history_when_its_partition_moves_here() -> None:
    from stream.events import Event

    p = ClickProcessor(make_model("sr"))
    r = Replica(p, {}, "clicks", consumer=False)
    for i, item in enumerate(["a", "b", "c"]):
        r.learn(Event("moving", item, float(i)))
    key = r.shadow.get("moving").key
    r.adopting = True  # set by assign() when partitions come to this worker
    ev = Event("moving", "d", 3.0)
    r.adopt(ev)
    p.process(ev)
    s = p.sessions.get("moving")
    assert s is not None and s.key == key and r.shadow.get("moving") is None
    assert p.items.names(s.items) == ["a", "b", "c", "d"] and r.adopted == 1
