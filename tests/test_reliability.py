"""Reliability on the real embedded broker: SIGKILL/SIGTERM recovery, broker stalls, hostile traffic.

Workers run as subprocesses (``python -m stream.cli worker``) so kills are real. Every test uses a
fresh topic and group; ``--session-timeout-ms 6000`` keeps Tansu's join delay (session/2) and the
eviction of a SIGKILLed member (after the session timeout) short.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition

from stream.cli import build_parser
from stream.cli.common import build_processor
from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.kafka import clients as kafka_io
from stream.kafka.broker import EmbeddedBroker, free_port
from stream.state.checkpoint import SnapshotFiles
from tests.kafka_read import read_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]


# -- helpers ----------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


_started: list[WorkerProc] = []


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Any:
    """A failed assertion must not leave a worker running (it would outlive its broker)."""
    yield
    while _started:
        w = _started.pop()
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(10)
        if not w.fh.closed:
            w.fh.close()


class WorkerProc:
    """A ``streamrec worker`` subprocess with its HTTP port and log file."""

    def __init__(self, bootstrap: str, topic: str, group: str, state_dir: Path | None, log: Path,
                 *extra: str) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "stream.cli", "worker", "--bootstrap-servers", bootstrap,
               "--topic", topic, "--group", group, "--model", "sr", "--metrics-port", str(self.port),
               "--session-timeout-ms", "6000", "--log-level", "INFO", *extra]
        if state_dir is not None:
            cmd += ["--state-dir", str(state_dir)]
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT)
        _started.append(self)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self) -> str:
        code, body = http_get(self.url("/metrics"), timeout=2.0)
        return body.decode() if code == 200 else ""

    def gauge(self, name: str) -> float | None:
        return metric(self.metrics(), name)

    def wait_for(self, name: str, at_least: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited early ({self.proc.returncode}):\n{self.tail()}"
            value = self.gauge(name)
            if value is not None and value >= at_least:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{name} stayed at {value} < {at_least} for {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.fh.close()

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self.fh.close()
        return rc, time.monotonic() - t0

    def tail(self, n: int = 40) -> str:
        self.fh.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


MALFORMED_KINDS = ("empty", "truncated", "wrong_types", "nan", "huge_id", "random")


def malformed(i: int, rnd: random.Random) -> bytes:
    kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
    if kind == "empty":
        return b""
    if kind == "truncated":
        full = orjson.dumps({"session_id": f"s{i}", "item_id": "i1", "timestamp": 1.5e9 + i})
        return full[: rnd.randrange(1, len(full) - 1)]
    if kind == "wrong_types":
        return orjson.dumps({"session_id": i, "item_id": ["x"], "timestamp": "soon"})
    if kind == "nan":
        return b'{"session_id": "s%d", "item_id": "i1", "timestamp": NaN}' % i
    if kind == "huge_id":
        return orjson.dumps({"session_id": "s" * 100_000, "item_id": "i1", "timestamp": 1.5e9})
    b = rnd.randbytes(rnd.randrange(1, 200))
    return b if not b.startswith(b"{") else b"\x00" + b


ENDS: dict[str, dict[tuple[str, int], int]] = {}  # topic -> next offset per partition, as produced


def produce_mixed(cfg: dict[str, Any], topic: str, events: list[Event], n_bad: int,
                  seed: int = 0) -> set[tuple[int, int]]:
    """Send ``events`` (keyed by session) with ``n_bad`` malformed messages at random positions;
    returns the (partition, offset) of every malformed one; records the end offsets in ENDS."""
    rnd = random.Random(seed)
    bad_at = set(rnd.sample(range(len(events) + n_bad), n_bad))
    prod = kafka_io.make_producer(cfg)
    futures = []
    it = iter(events)
    j = 0
    for pos in range(len(events) + n_bad):
        if pos in bad_at:
            futures.append((True, prod.send(topic, key=f"bad-{j}".encode(), value=malformed(j, rnd))))
            j += 1
        else:
            ev = next(it)
            futures.append((False, prod.send(topic, key=ev.session_id.encode(), value=ev.to_json())))
    prod.flush(60)
    prod.close()
    out = set()
    ends = ENDS.setdefault(topic, {})
    for is_bad, f in futures:
        md = f.get(timeout=30)
        if is_bad:
            out.add((md.partition, md.offset))
        key = (topic, md.partition)
        ends[key] = max(ends.get(key, 0), md.offset + 1)
    return out


def reference_rules(events: list[Event]) -> dict[str, dict[str, float]]:
    """SR rule table of an uninterrupted in-process run, keyed by item *names*."""
    args = build_parser().parse_args(["worker", "--model", "sr"])
    p = build_processor(args)
    for ev in events:
        p.process(ev)
    return named_rules(p)


def named_rules(p: Any) -> dict[str, dict[str, float]]:
    name = p.items.name
    return {name(a): {name(b): w for b, w in row.items()} for a, row in p.model.rules.items()}


def end_offsets(topic: str) -> dict[tuple[str, int], int]:
    """Next offset per partition after everything produced (from the producer's metadata:
    Tansu's ListOffsets(latest) lagged behind in our runs)."""
    return dict(ENDS[topic])


def committed(cfg: dict[str, Any], topic: str, group: str) -> dict[tuple[str, int], int | None]:
    consumer = kafka_io.make_consumer(cfg, group_id=group)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    out = {(tp.topic, tp.partition): consumer.committed(tp) for tp in tps}
    consumer.close(autocommit=False)
    return out


def load_state(state_dir: Path, model: str = "sr") -> Any:
    """The worker's last snapshot, restored into a fresh processor."""
    args = build_parser().parse_args(["worker", "--model", model])
    p = build_processor(args)
    snap = SnapshotFiles(state_dir).load()
    assert snap is not None
    from stream.state.checkpoint import restore

    restore(p, snap.state)
    return p, snap


# -- tests ------------------------------------------------------------------------------------


def test_sigkill_three_times_no_loss_no_double_count(broker, unique, tmp_path) -> None:
    """60,000 valid + 1,200 malformed; SIGKILL x3 at random moments; the state ends exact.

    One partition, so the stream order is fixed and the SR rule table must equal the
    uninterrupted run's bit for bit. (With several partitions the interleaving, and so event-time
    session expiry and row pruning, legitimately differ between any two runs; the SIGTERM test
    covers several partitions' offsets.)"""
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, group = f"clicks-{unique}", f"g-{unique}"
    n_valid, n_bad = 60_000, 1_200
    kafka_io.ensure_topic(cfg, topic, 1)
    events = list(SyntheticStream(events=n_valid, seed=11, n_items=3_000))
    bad = produce_mixed(cfg, topic, events, n_bad, seed=5)
    assert len(bad) == n_bad

    state = tmp_path / "state"
    log = tmp_path / "worker.log"
    flags = ("--checkpoint-every-events", "4000", "--checkpoint-every-seconds", "1")
    rnd = random.Random(int.from_bytes(os.urandom(4), "big"))
    seen = 0.0
    for _ in range(3):
        w = WorkerProc(broker.bootstrap, topic, group, state, log, *flags)
        # kill at a random moment after this incarnation has made some progress of its own
        target = seen + rnd.uniform(3_000, 12_000)
        seen = w.wait_for("streamrec_state_events_applied", target, timeout=90)
        time.sleep(rnd.uniform(0.0, 0.5))
        w.kill()
        seen = min(seen, n_valid - 1)
    w = WorkerProc(broker.bootstrap, topic, group, state, log, *flags)
    got = w.wait_for("streamrec_state_events_applied", n_valid, timeout=120)
    time.sleep(1.5)  # nothing more may arrive: no double count
    assert w.gauge("streamrec_state_events_applied") == n_valid
    rc, _ = w.terminate()
    assert rc == 0, w.tail()
    assert got == n_valid

    p, snap = load_state(state)
    assert snap.events_applied == n_valid == p.events
    assert snap.offsets == end_offsets(topic)
    assert named_rules(p) == reference_rules(events)

    dlq = read_topic(cfg, f"{topic}.dlq", n_bad, timeout=30, extra_s=0.5)
    sources = set()
    for rec in dlq:
        h = dict(rec.headers)
        assert h["source_topic"] == topic.encode()
        assert h["error"].decode()
        sources.add((int(h["source_partition"]), int(h["source_offset"])))
    assert sources == bad, "every malformed message is dead-lettered (duplicates after a kill allowed)"
    assert len(dlq) >= n_bad


def named_index(p: Any) -> tuple:
    """A kNN model's index by session key and item *name*: each session's items with their last
    positions, each item's posting list (as session keys), each item's click count."""
    ix, name = p.model.index, p.items.name
    sessions = {ix.key(s): {name(i): c for i, c in ix.session_items(ix.key(s)).items()}
                for s in ix._slot.values()}
    postings = {name(i): [ix.key(s) for s in ix.postings(i).tolist()] for i in range(ix.n_items())}
    return sessions, postings, {name(i): c for i, c in enumerate(ix.events[: ix.n_items()].tolist()) if c}


def test_sigkill_pipelined_knn_worker_state_is_exact(broker, unique, tmp_path) -> None:
    """VSTAN's worker (its learning and queries on a second thread, one poll behind the main
    thread) killed twice at random moments: the snapshot it ends with equals an uninterrupted
    in-process run click by click (index, sessions, prequential figures), with no gap and no
    double count."""
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, group = f"clicks-{unique}", f"g-{unique}"
    n_valid, n_bad = 20_000, 300
    kafka_io.ensure_topic(cfg, topic, 1)
    events = list(SyntheticStream(events=n_valid, seed=13, n_items=2_000))
    produce_mixed(cfg, topic, events, n_bad, seed=7)
    state, log = tmp_path / "state", tmp_path / "worker.log"
    flags = ("--model", "vstan", "--checkpoint-every-events", "3000", "--checkpoint-every-seconds", "1")
    rnd = random.Random(int.from_bytes(os.urandom(4), "big"))
    seen = 0.0
    for _ in range(2):
        w = WorkerProc(broker.bootstrap, topic, group, state, log, *flags)
        seen = w.wait_for("streamrec_state_events_applied", seen + rnd.uniform(2_000, 6_000), timeout=90)
        time.sleep(rnd.uniform(0.0, 0.3))
        w.kill()
        seen = min(seen, n_valid - 1)
    w = WorkerProc(broker.bootstrap, topic, group, state, log, *flags)
    assert w.wait_for("streamrec_state_events_applied", n_valid, timeout=120) == n_valid
    time.sleep(1.0)
    assert w.gauge("streamrec_state_events_applied") == n_valid
    rc, _ = w.terminate()
    assert rc == 0, w.tail()

    p, snap = load_state(state, "vstan")
    assert snap.events_applied == n_valid == p.events
    assert snap.offsets == end_offsets(topic)
    ref = build_processor(build_parser().parse_args(["worker", "--model", "vstan"]))
    for ev in events:
        ref.process(ev)
    assert named_index(p) == named_index(ref)
    assert (p.preq.predictions, p.preq.hits) == (ref.preq.predictions, ref.preq.hits)


def test_sigterm_during_replay_resumes_without_gap_or_double_count(broker, unique, tmp_path) -> None:
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, group = f"clicks-{unique}", f"g-{unique}"
    n_valid = 20_000
    kafka_io.ensure_topic(cfg, topic, 2)
    events = list(SyntheticStream(events=n_valid, seed=12, n_items=1_000))
    produce_mixed(cfg, topic, events, 40, seed=6)
    state, log = tmp_path / "state", tmp_path / "worker.log"
    flags = ("--checkpoint-every-events", "100000", "--checkpoint-every-seconds", "100")

    w = WorkerProc(broker.bootstrap, topic, group, state, log, *flags)
    w.wait_for("streamrec_state_events_applied", 5_000, timeout=60)
    rc, took = w.terminate()
    assert rc == 0, w.tail()
    # a clean stop must fit Kubernetes' default grace period (30 s) on a loaded machine too
    assert took < 30.0, f"shutdown took {took:.1f} s"
    p, snap = load_state(state)
    assert 5_000 <= snap.events_applied < n_valid  # the shutdown checkpoint, mid-replay
    done = {k: v for k, v in committed(cfg, topic, group).items() if v is not None}
    assert done == snap.offsets  # committed exactly what the snapshot holds, no further

    w = WorkerProc(broker.bootstrap, topic, group, state, log, *flags)
    w.wait_for("streamrec_state_events_applied", n_valid, timeout=60)
    time.sleep(1.0)
    assert w.gauge("streamrec_state_events_applied") == n_valid
    rc, _ = w.terminate()
    assert rc == 0, w.tail()
    p, snap = load_state(state)
    assert snap.events_applied == n_valid
    assert snap.offsets == end_offsets(topic)
    assert committed(cfg, topic, group) == snap.offsets


def test_broker_stall_degrades_health_keeps_serving_and_resumes(unique, tmp_path) -> None:
    """SIGSTOP the broker for 20 s: /healthz says degraded (503), /recommendations still answers;
    after SIGCONT the worker reconnects and nothing is lost."""
    with EmbeddedBroker() as b:
        cfg = {"bootstrap_servers": b.bootstrap}
        topic, group = f"clicks-{unique}", f"g-{unique}"
        kafka_io.ensure_topic(cfg, topic, 2)
        events = list(SyntheticStream(events=10_000, seed=13, n_items=500))
        first, second = events[:5_000], events[5_000:]
        produce_mixed(cfg, topic, first, 0)
        w = WorkerProc(b.bootstrap, topic, group, tmp_path / "state", tmp_path / "worker.log",
                       "--health-timeout", "5", "--checkpoint-every-seconds", "2")
        try:
            w.wait_for("streamrec_state_events_applied", len(first), timeout=60)
            assert http_get(w.url("/healthz"))[0] == 200
            sid = first[-1].session_id
            assert http_get(w.url(f"/recommendations/{sid}"))[0] == 200

            b.pause()
            t0 = time.monotonic()
            degraded = False
            try:
                # generous timeouts: on a shared machine a stalled worker still answers, but slowly
                while time.monotonic() - t0 < 20.0:
                    code, body = http_get(w.url("/healthz"), timeout=10.0)
                    assert code in (200, 503), code
                    if code == 503:
                        assert orjson.loads(body)["status"] == "degraded"
                        degraded = True
                    code, body = http_get(w.url(f"/recommendations/{sid}"), timeout=10.0)
                    assert code == 200, "recommendations are served during the stall"
                    assert http_get(w.url("/metrics"), timeout=10.0)[0] == 200
                    time.sleep(1.0)
            finally:
                b.resume()
            assert degraded, "/healthz never reported the stall"

            produce_mixed(cfg, topic, second, 0)
            w.wait_for("streamrec_state_events_applied", len(events), timeout=90)
            deadline = time.monotonic() + 30
            while http_get(w.url("/healthz"))[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert http_get(w.url("/healthz"))[0] == 200
            time.sleep(1.0)
            assert w.gauge("streamrec_state_events_applied") == len(events)
            rc, _ = w.terminate()
            assert rc == 0, w.tail()
        finally:
            if w.proc.poll() is None:
                w.kill()


def test_hostile_ids_stay_within_caps(broker, unique, tmp_path) -> None:
    """A flood of distinct session and item ids cannot grow the worker past its caps."""
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, group = f"clicks-{unique}", f"g-{unique}"
    kafka_io.ensure_topic(cfg, topic, 2)
    n = 120_000
    hostile = [Event(f"attacker-session-{i:07d}-" + "x" * 40, f"attacker-item-{i:07d}", 1.6e9 + i * 0.01)
               for i in range(n)]
    half = n // 2
    w = WorkerProc(broker.bootstrap, topic, group, None, tmp_path / "worker.log",
                   "--max-sessions", "1000", "--max-items", "5000")
    try:
        produce_mixed(cfg, topic, hostile[:half], 0)
        w.wait_for("streamrec_state_events_applied", half, timeout=120)
        text = w.metrics()
        rss_half = metric(text, "process_resident_memory_bytes")
        produce_mixed(cfg, topic, hostile[half:], 0)
        w.wait_for("streamrec_state_events_applied", n, timeout=120)
        text = w.metrics()
        rss_end = metric(text, "process_resident_memory_bytes")
        assert metric(text, "streamrec_active_sessions") <= 1000
        assert metric(text, "streamrec_items_known") <= 5000
        assert metric(text, "streamrec_items_overflow_total") >= n - 5000
        assert rss_half and rss_end
        # the second half brings 60k new sessions and items: memory must not follow them
        assert rss_end - rss_half < 32 * 2**20, (rss_half, rss_end)
        rc, _ = w.terminate()
        assert rc == 0, w.tail()
    finally:
        if w.proc.poll() is None:
            w.kill()


def test_bad_snapshots_are_refused_with_a_reason(tmp_path, caplog) -> None:
    """Corrupt, truncated and other-version snapshots are refused, the previous good one used."""
    import struct

    from stream.state import checkpoint as ck

    files = SnapshotFiles(tmp_path)
    files.write(ck.Snapshot({"events": 1}, {("t", 0): 1}, 1))
    files.write(ck.Snapshot({"events": 2}, {("t", 0): 2}, 2))
    good = files.current.read_bytes()
    head = len(ck.MAGIC)
    other_version = good[:head] + struct.pack(">H", ck.FORMAT_VERSION + 1) + good[head + 2:]
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    for bad, why in ((good[:-10], "truncated"), (flipped, "checksum"), (other_version, "version"),
                     (b"", "magic")):
        files.current.write_bytes(bad)
        caplog.clear()
        snap = files.load()
        assert snap is not None and snap.events_applied == 1  # the previous good one
        assert any(why in str(getattr(r, "fields", {}).get("error", "")) for r in caplog.records), why
    files.previous.write_bytes(b"junk")
    assert files.load() is None  # nothing usable: a fresh start (from committed offsets)
