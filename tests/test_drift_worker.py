"""The worker runs the drift monitor on the live stream: a new catalogue raises retraining due."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest

from stream.evaluation.synthetic import SyntheticStream
from stream.kafka import clients as kafka_io
from stream.kafka.broker import free_port
from stream.kafka.producer import produce_events

pytestmark = pytest.mark.broker


def scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("streamrec_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def start_worker(broker, topic: str, group: str, *flags: str) -> tuple[subprocess.Popen[bytes], int]:
    """A ``streamrec worker`` subprocess (model sr) on a fresh one-partition ``topic``, and its metrics port."""
    kafka_io.ensure_topic({"bootstrap_servers": broker.bootstrap}, topic, 1)
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker", "--bootstrap-servers", broker.bootstrap,
         "--topic", topic, "--group", group, "--model", "sr", "--metrics-port", str(port), *flags,
         "--session-timeout-ms", "6000", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return worker, port


def metrics_after(worker: subprocess.Popen[bytes], port: int, events: int, timeout_s: float = 90) -> dict[str, float]:
    """The worker's metrics once it has processed ``events`` clicks (or when ``timeout_s`` runs out)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"worker exited: {worker.stderr.read().decode()[-3000:]}")
        seen = scrape(port)
        if seen.get("streamrec_events_processed_total", 0) >= events:
            break
        time.sleep(0.5)
    return seen


def test_new_catalog_sets_retraining_due_on_metrics(broker, unique) -> None:
    topic = f"drift-{unique}"
    worker, port = start_worker(broker, topic, f"g-{unique}", "--on-drift", "alert", "--reference-events", "5000",
                                "--check-every", "250", "--drift-warmup", "500")
    try:
        events = SyntheticStream(events=12_000, seed=1, scenario="new-catalog", drift_at=8_000)
        produce_events({"bootstrap_servers": broker.bootstrap}, topic, events, show_progress=False)
        seen = metrics_after(worker, port, 12_000)
        assert seen.get("streamrec_events_processed_total") == 12_000
        assert seen["streamrec_retraining_due"] == 1.0
        assert seen['streamrec_drift_detected{signal="new_items"}'] == 1.0
        assert seen['streamrec_drift_score{signal="new_items"}'] > seen['streamrec_drift_threshold{signal="new_items"}']
        assert seen["streamrec_reference_events"] == 5000
    finally:
        worker.terminate()
        worker.wait(30)


def test_the_worker_promotes_a_better_challenger_by_default(broker, unique) -> None:
    """The default --on-drift challenger in a worker on the embedded broker: the stream's entry items
    switch to new successors; a challenger built from the clicks since the switch wins its paired
    test, is promoted, and retraining due clears; the lifecycle's metrics say so."""
    from tests.test_lifecycle import _switch

    topic = f"challenger-{unique}"
    worker, port = start_worker(broker, topic, f"g-{unique}", "--reference-events", "5000", "--check-every", "500",
                                "--persistence", "3", "--buffer-events", "5000", "--drift-warmup", "500",
                                "--challenger-share", "1.0")
    try:
        events = _switch(n=20_000, at=12_000)
        produce_events({"bootstrap_servers": broker.bootstrap}, topic, events, show_progress=False)
        seen = metrics_after(worker, port, len(events))
        assert seen.get("streamrec_events_processed_total") == len(events)
        assert seen["streamrec_model_promotions_total"] >= 1
        assert seen["streamrec_drift_acknowledgements_total"] == 0
        assert 'streamrec_prequential_hit_rate{k="20",model="sr",role="champion"}' in seen
        if seen["streamrec_challenger_active"]:  # a later challenger: its own series beside the champion's
            assert 'streamrec_prequential_hit_rate{k="20",model="sr",role="challenger"}' in seen
    finally:
        worker.terminate()
        worker.wait(30)
    assert b"challenger promoted" in worker.stderr.read()
