"""The admin routes on the real worker (a ``streamrec worker`` subprocess on the embedded broker):
their own loopback listener, 404 on the public port, 401 without the token, the token in no log
line and not in ``/metrics``, and an answered action that survives SIGKILL and a restart.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stream.evaluation.synthetic import SyntheticStream
from stream.kafka import clients as kafka_io
from stream.kafka.broker import free_port
from stream.kafka.producer import produce_events
from tests.test_reliability import WorkerProc, _no_leftover_workers  # noqa: F401 - the fixture

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TOKEN = "e2e-admin-token-4f1c9a7d2b"


def call(url: str, method: str = "GET", token: str | None = TOKEN, body: dict[str, Any] | None = None,
         timeout: float = 20.0) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait(pred: Any, timeout: float, what: str, proc: WorkerProc) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, f"worker exited ({proc.proc.returncode}):\n{proc.tail()}"
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{proc.tail()}")


def outside_address() -> str | None:
    """A non-loopback address of this host, if it has one (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_admin_listener_loopback_token_and_secrecy(broker, unique, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STREAMREC_ADMIN_TOKEN", TOKEN)
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic = f"clicks-{unique}"
    kafka_io.ensure_topic(cfg, topic, 1)
    produce_events(cfg, topic, list(SyntheticStream(events=3000, seed=3)), partitions=1, show_progress=False)
    admin_port = free_port()
    w = WorkerProc(broker.bootstrap, topic, f"g-{unique}", None, tmp_path / "worker.log",
                   "--metrics-host", "0.0.0.0", "--admin-port", str(admin_port), "--log-level", "DEBUG",
                   "--on-drift", "alert")
    admin = f"http://127.0.0.1:{admin_port}"
    wait(lambda: w.gauge("streamrec_events_processed_total") == 3000, 120, "3000 events", w)
    log = w.log.read_text()
    assert f"admin server listening host=127.0.0.1 port={admin_port}" in log
    # the public listener has no admin routes, whatever the token
    code, out = call(w.url("/admin/status"))
    assert code == 404 and out["field"] == "path"
    # the admin listener: 401 without the token or with a wrong one, the status with it
    assert call(f"{admin}/admin/status", token=None)[0] == 401
    assert call(f"{admin}/admin/status", token=TOKEN[:-1] + "x")[0] == 401
    assert call(f"{admin}/admin/acknowledge", "POST", token="nope-nope-nope-nope")[0] == 401
    code, status = call(f"{admin}/admin/status")
    assert code == 200 and status["retraining_due"] is False, status
    code, out = call(f"{admin}/admin/promote", "POST")
    assert code == 409 and out["field"] == "challenger", out
    code, out = call(f"{admin}/admin/acknowledge", "POST", body={"reason": "test", "by": "ci"})
    assert code == 409 and out["field"] == "state" and "not due" in out["error"], out  # nothing is due
    code, status = call(f"{admin}/admin/retrain", "POST", body={"reason": "test", "by": "ci"})
    assert code == 200 and status["actions"][-1]["action"] == "retrain", status
    assert status["challenger"]["active"] and status["state"] == "challenging", status
    addr = outside_address()
    if addr is not None:  # the admin port is not reachable from outside the host; the public one is
        with pytest.raises(OSError):
            socket.create_connection((addr, admin_port), timeout=3).close()
        socket.create_connection((addr, w.port), timeout=3).close()
    metrics = w.metrics()
    assert "streamrec_events_processed_total" in metrics and TOKEN not in metrics
    assert 'streamrec_admin_requests_total{action="status",code="401"} 2.0' in metrics
    assert 'streamrec_admin_requests_total{action="acknowledge",code="409"} 1.0' in metrics
    rc, _ = w.terminate()
    assert rc == 0
    log = w.log.read_text()
    assert "admin action" in log and "action=retrain" in log and "by=ci" in log
    assert TOKEN not in log and TOKEN[:12] not in log


def test_an_answered_action_survives_sigkill_and_restart(broker, unique, tmp_path, monkeypatch) -> None:
    """The action is answered after a checkpoint: a SIGKILL right after the answer loses nothing."""
    monkeypatch.setenv("STREAMREC_ADMIN_TOKEN", TOKEN)
    cfg = {"bootstrap_servers": broker.bootstrap}
    topic, group, state = f"clicks-{unique}", f"g-{unique}", tmp_path / "state"
    kafka_io.ensure_topic(cfg, topic, 1)
    produce_events(cfg, topic, list(SyntheticStream(events=3000, seed=4)), partitions=1, show_progress=False)
    admin_port = free_port()
    extra = ("--admin-port", str(admin_port), "--checkpoint-every-seconds", "3600",
             "--checkpoint-every-events", "1000000", "--on-drift", "alert")
    w = WorkerProc(broker.bootstrap, topic, group, state, tmp_path / "w1.log", *extra)
    admin = f"http://127.0.0.1:{admin_port}"
    wait(lambda: w.gauge("streamrec_events_processed_total") == 3000, 120, "3000 events", w)
    code, status = call(f"{admin}/admin/retrain", "POST", body={"reason": "try one", "by": "dana"})
    assert code == 200 and status["challenger"]["active"], status
    w.kill()  # at once: no clean-stop checkpoint
    w2 = WorkerProc(broker.bootstrap, topic, group, state, tmp_path / "w2.log", *extra)
    wait(lambda: w2.gauge("streamrec_state_events_applied") == 3000, 120, "the restored state", w2)
    def answered() -> tuple[int, dict[str, Any]] | None:
        try:
            r = call(f"{admin}/admin/status")
        except OSError:  # the admin listener opens just after the public one
            return None
        return r if r[0] == 200 else None

    code, status = wait(answered, 60, "status", w2)
    assert w2.gauge("streamrec_events_processed_total") == 0  # nothing applied twice
    mine = [a for a in status["actions"] if a.get("by") == "dana"]
    assert mine and mine[-1]["action"] == "retrain" and mine[-1]["reason"] == "try one", status
    assert status["challenger"]["active"], status  # the challenger it started, restored with it
    assert w2.terminate()[0] == 0
    assert "admin server listening" in Path(w2.log).read_text()
