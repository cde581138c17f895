"""End to end on the real embedded broker: producer -> worker -> recommendations topic + HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest

from stream.evaluation.synthetic import SyntheticStream
from stream.kafka import clients as kafka_io
from stream.kafka.broker import free_port
from stream.kafka.producer import produce_events
from tests.kafka_read import read_topic

pytestmark = pytest.mark.broker


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def invalid_total(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("streamrec_events_invalid_total{"))


def test_producer_worker_recommendations_and_http(broker, unique) -> None:
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, recs_topic, group = f"clicks-{unique}", f"recs-{unique}", f"g-{unique}"
    n_valid, n_bad = 3000, 7
    kafka_io.ensure_topic(cfg, topic, 2)
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker", "--bootstrap-servers", broker.bootstrap,
         "--topic", topic, "--group", group, "--model", "sr", "--recommendations-topic", recs_topic,
         "--metrics-port", str(port), "--idle-exit", "20", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        events = list(SyntheticStream(events=n_valid, seed=3, n_items=200))
        produce_events(cfg, topic, events, show_progress=False)
        prod = kafka_io.make_producer(cfg)
        bad = [b"", b"{not json", b'{"session_id": 5, "item_id": "i", "timestamp": 1}', b"\xff\x00\x01",
               orjson.dumps({"session_id": "s", "item_id": "x" * 100_000, "timestamp": 1}),
               b'{"session_id": "s", "item_id": "i", "timestamp": NaN}', b"[]"]
        for value in bad:
            prod.send(topic, key=b"bad", value=value)
        prod.flush()
        prod.close()
        assert len(bad) == n_bad

        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"the worker exited early ({worker.returncode}): {worker.stderr.read().decode()[-3000:]}")
            code, body = http_get(f"http://127.0.0.1:{port}/metrics") if _up(port) else (0, b"")
            if code == 200:
                text = body.decode()
                if metric(text, "streamrec_events_processed_total") >= n_valid and invalid_total(text) >= n_bad:
                    break
            time.sleep(0.5)
        assert metric(text, "streamrec_events_processed_total") == n_valid
        assert invalid_total(text) == n_bad
        assert 0.0 < metric(text, 'streamrec_prequential_hit_rate{k="20",model="sr",role="champion"}') <= 1.0
        assert metric(text, "streamrec_recommend_seconds_count") == n_valid
        assert metric(text, "streamrec_active_sessions") > 0

        # a live session's current list over HTTP, as item ids
        last = events[-1]
        code, body = http_get(f"http://127.0.0.1:{port}/recommendations/{last.session_id}")
        assert code == 200
        items = json.loads(body)
        assert isinstance(items, list) and 0 < len(items) <= 20 and all(isinstance(i, str) for i in items)
        assert http_get(f"http://127.0.0.1:{port}/recommendations/nobody-{unique}")[0] == 404
        assert http_get(f"http://127.0.0.1:{port}/recommendations/%0Abad")[0] == 400
        code, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"

        # every valid click produced one published list, keyed by session id
        published = read_topic(cfg, recs_topic, n_valid)
        assert len(published) == n_valid
        first = orjson.loads(published[0].value)
        assert set(first) == {"session_id", "timestamp", "items"}
        assert published[0].key == first["session_id"].encode()

        # every malformed message is in the dead-letter topic with its provenance
        dlq = read_topic(cfg, f"{topic}.dlq", n_bad)
        assert len(dlq) == n_bad
        headers = dict(dlq[0].headers)
        assert set(headers) == {"source_topic", "source_partition", "source_offset", "error"}
        assert headers["source_topic"] == topic.encode()
        assert {dict(r.headers)["error"] for r in dlq} >= {b"empty", b"bad_json", b"bad_session_id",
                                                            b"not_utf8", b"too_large", b"not_object"}
        assert {r.value for r in dlq} == set(bad)
    finally:
        worker.terminate()
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()[-2000:]


def _up(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_demo_json_contract(broker) -> None:
    """`streamrec demo --json` on an existing broker: counts agree and the summary keys are there."""
    from stream.cli import main

    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--bootstrap-servers", broker.bootstrap,
         "--events", "2000", "--json", "--topic", f"demo-{time.time_ns()}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("events_produced", "events_processed", "hit_rate_at_20", "mrr_at_20", "model", "elapsed_s"):
        assert key in d
    assert d["events_produced"] == d["events_processed"] == 2000
    assert main is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_renice_thread_changes_only_the_calling_thread() -> None:
    """The pipelined worker's compute threads run nicer than its HTTP thread (``--compute-nice``)."""
    import os
    import threading

    from stream.kafka.worker import renice_thread

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = nice()
    seen: list[int] = []

    def compute() -> None:
        before = nice()
        assert renice_thread(3) == 3
        seen.append(nice() - before)

    t = threading.Thread(target=compute)
    t.start()
    t.join(5)
    assert seen == [3] and nice() == mine
    assert renice_thread(0) == 0 and nice() == mine
