"""End to end, no mocks: embedded broker -> workers -> a real Prometheus -> a real Alertmanager -> a webhook.

A change of catalogue brings ``StreamrecRetrainingDue`` to the retraining receiver of the
project's ``monitoring/alertmanager/alertmanager.yml``, and its resolved notification follows, for
each way retraining due clears. Three workers (three consumer groups) run side by side, so the
stack starts once:

* ``ack`` (``--on-drift alert``) reads the synthetic new-catalogue stream; an operator runs
  ``streamrec admin acknowledge``;
* ``absorb`` (``--on-drift challenger --promote auto``) reads the same stream: its challenger, built
  from the clicks since the drift, cannot beat an online model that learns the new items as they
  come, spends its ``--challenger-budget`` and is dropped ("drift absorbed: the live model kept
  up");
* ``promote`` (``--on-drift challenger --promote auto``) reads a stream whose entry items lead to
  new items from the drift on (tests/test_lifecycle.py ``_switch``): the online model's counts keep
  the old successors on top, the challenger knows only the new ones, wins its paired test and is
  promoted. Its clicks after the drift come at 100/s and the challenger is paired on 1% of the
  sessions (``--challenger-share``): it wins after ~2,700 clicks since the drift, ~25 s, well
  after Prometheus saw the alert firing.

What the test changes in the project's files, and nothing else:

* ``alerts.yml``: every ``for`` 2 s and 1 s group intervals (as tests/test_prometheus_e2e.py does);
* ``prometheus.yml``: 1 s scrapes, loopback targets, the test's Alertmanager;
* ``alertmanager.yml``: each webhook URL points at the test's server (``/<receiver name>``, so the
  route is checked too) and ``group_wait`` / ``group_interval`` are 1 s (they are 30 s and 5 min:
  a resolved notification waits for the next group interval).

Prometheus and Alertmanager are Debian's packages (``make test`` installs them as root); without
them the test fails where ``make test`` could have installed them and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_prometheus_e2e import (
    DASHBOARD,
    DRIFT_FLAGS,
    PROM_DIR,
    ProcessDied,
    Procs,
    fast_rules,
    http_json,
    http_text,
    query,
    resolve_variables,
    streamrec,
    substitute,
    wait_until,
    write_test_config,
)
from tests.test_reliability import metric

pytestmark = [pytest.mark.prometheus, pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
AM_CONFIG = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"
ALERT = "StreamrecRetrainingDue"
RECEIVER = "retrain"
TOKEN = "alertmanager-e2e-token-7c41d0"
#: New catalogue at click 12,000 of 60,000 at 1,000 clicks/s: the alert fires ~15 s after the drift.
STREAM = ["--events", "60000", "--seed", "1", "--scenario", "new-catalog", "--drift-at", "12000",
          "--drift-length", "1000", "--rate", "1000"]
#: The ``promote`` worker's stream: 12,000 clicks at once, then the switch at 100 clicks/s.
SWITCH_AT, SWITCH_EVENTS, SWITCH_RATE = 12_000, 30_000, 100.0
FIRE_TIMEOUT_S = 120.0
RESOLVE_TIMEOUT_S = 150.0


def binary(*names: str) -> str:
    """The first of ``names`` on PATH; else fail where ``make test`` would have installed it (root
    with apt-get), skip elsewhere (as tests/test_prometheus_e2e.py does)."""
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    why = f"no {' or '.join(names)} on PATH (Debian: apt-get install prometheus prometheus-alertmanager)"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail(f"{why}; `make test` installs it here: run `make prometheus`")
    pytest.skip(f"{why}; `make test` installs it when run as root")


class Webhook:
    """An HTTP server on loopback recording every Alertmanager notification, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                with outer.lock:
                    outer.received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, path: str, alertname: str, instance: str, status: str) -> list[dict[str, Any]]:
        """The alerts of notifications to ``path`` with that name, worker and status."""
        with self.lock:
            got = list(self.received)
        return [a for p, body in got if p == path for a in body.get("alerts", [])
                if a["labels"].get("alertname") == alertname and a["labels"].get("instance") == instance
                and a["status"] == status]

    def summary(self) -> str:
        with self.lock:
            return "\n".join(f"{p} {b.get('status')} " + ", ".join(
                f"{a['labels'].get('alertname')}@{a['labels'].get('instance')}:{a['status']}" for a in b.get("alerts", []))
                for p, b in self.received) or "(no notifications)"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_alertmanager_config(src: Path, dst: Path, hook_port: int) -> set[str]:
    """The project's routes and receivers with webhook URLs on the test's server and 1 s group
    timings; returns the receivers' names."""
    cfg = yaml.safe_load(src.read_text())
    names = set()
    for r in cfg["receivers"]:
        names.add(r["name"])
        for w in r.get("webhook_configs", []):
            w["url"] = f"http://127.0.0.1:{hook_port}/{r['name']}"

    def fast(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for sub in route.get("routes", []):
            fast(sub)

    fast(cfg["route"])
    dst.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return names


def test_retraining_due_reaches_the_receiver_and_resolves_each_way(tmp_path: Path, procs: Procs) -> None:
    prometheus = binary("prometheus")
    alertmanager = binary("prometheus-alertmanager", "alertmanager")
    from stream.kafka import broker as broker_mod

    free = broker_mod.free_port
    prom_port, am_port, admin_port = free(), free(), free()
    ports = {name: free() for name in WORKERS}
    hook = Webhook()
    try:
        receivers = write_alertmanager_config(AM_CONFIG, tmp_path / "alertmanager.yml", hook.port)
        assert RECEIVER in receivers
        amtool = shutil.which("amtool")
        if amtool:
            r = subprocess.run([amtool, "check-config", str(tmp_path / "alertmanager.yml")],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
        assert ALERT in fast_rules(PROM_DIR / "alerts.yml", tmp_path / "alerts-fast.yml")
        write_test_config(PROM_DIR / "prometheus.yml", tmp_path / "prometheus.yml", "alerts-fast.yml",
                          prom_port, ports["ack"])
        cfg = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
        for job in cfg["scrape_configs"]:
            if job["job_name"] == "streamrec-worker":
                job["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in ports.values()]}]
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))

        try:
            broker = broker_mod.EmbeddedBroker().start()
        except broker_mod.BrokerError as exc:
            pytest.fail(f"the embedded broker could not start: {exc}")
        try:
            _run(tmp_path, procs, hook, broker.bootstrap, prometheus, alertmanager, prom_port, am_port,
                 ports, admin_port)
        finally:
            procs.stop()
            broker.stop()
    finally:
        hook.stop()


#: worker -> its flags besides the common ones
WORKERS = {
    "ack": ["--on-drift", "alert"],
    "absorb": ["--on-drift", "challenger", "--promote", "auto", "--challenger-budget", "15000"],
    "promote": ["--on-drift", "challenger", "--promote", "auto", "--challenger-share", "0.01"],
}


def _produce_switch(bootstrap: str, topic: str, stop: threading.Event, errors: list[BaseException]) -> None:
    """The switch stream, its part after the drift paced, until ``stop``."""
    from stream.kafka.producer import produce_events
    from tests.test_lifecycle import _switch

    try:
        events = _switch(n=SWITCH_EVENTS, at=SWITCH_AT)
        cfg = {"bootstrap_servers": bootstrap}
        produce_events(cfg, topic, events[:SWITCH_AT], show_progress=False)
        produce_events(cfg, topic, (e for e in events[SWITCH_AT:] if not stop.is_set()), rate=SWITCH_RATE,
                       show_progress=False)
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def _run(tmp_path: Path, procs: Procs, hook: Webhook, bootstrap: str, prometheus: str, alertmanager: str,
         prom_port: int, am_port: int, ports: dict[str, int], admin_port: int) -> None:
    topic, switch_topic = "am-e2e-clicks", "am-e2e-switch"
    procs.start("alertmanager", [
        alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn"])
    procs.start("prometheus", [
        prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s", "--log.level=warn"])
    from stream.kafka.clients import ensure_topic

    # the topics exist before the workers subscribe: each group's first join then assigns them
    ensure_topic({"bootstrap_servers": bootstrap}, topic, 2)
    ensure_topic({"bootstrap_servers": bootstrap}, switch_topic, 1)
    os.environ["STREAMREC_ADMIN_TOKEN"] = TOKEN  # the ack worker inherits it; never on a command line
    try:
        for name, flags in WORKERS.items():
            extra = ["--admin-port", str(admin_port)] if name == "ack" else []
            procs.start(f"worker-{name}", streamrec(
                "worker", "--bootstrap-servers", bootstrap, "--topic", switch_topic if name == "promote" else topic,
                "--group", f"am-e2e-{name}", "--model", "sr", "--metrics-port", str(ports[name]), *DRIFT_FLAGS,
                "--session-timeout-ms", "6000", *flags, *extra))
            os.environ.pop("STREAMREC_ADMIN_TOKEN", None)
    finally:
        os.environ.pop("STREAMREC_ADMIN_TOKEN", None)
    procs.start("producer", streamrec(
        "produce", "--bootstrap-servers", bootstrap, "--topic", topic, "--partitions", "2", "--synthetic",
        *STREAM, "--no-progress"))
    errors: list[BaseException] = []
    stop = threading.Event()
    switch = threading.Thread(target=_produce_switch, args=(bootstrap, switch_topic, stop, errors), daemon=True)
    switch.start()
    try:
        _check(procs, hook, prom_port, am_port, ports, admin_port, errors)
    finally:
        stop.set()
        switch.join(30)


def _check(procs: Procs, hook: Webhook, prom_port: int, am_port: int, ports: dict[str, int], admin_port: int,
           errors: list[BaseException]) -> None:
    prom = f"http://127.0.0.1:{prom_port}"
    api = f"{prom}/api/v1"
    inst = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    path = f"/{RECEIVER}"
    alive = ("alertmanager", "prometheus", *(f"worker-{n}" for n in WORKERS))
    t0 = time.monotonic()
    times: dict[str, float] = {}
    try:
        wait_until(lambda: http_text(f"{prom}/-/ready"), 60, "Prometheus ready")
        wait_until(lambda: http_text(f"http://127.0.0.1:{am_port}/-/ready"), 60, "Alertmanager ready")

        def notified(name: str, status: str) -> list[dict[str, Any]]:
            procs.check_alive(*alive)
            if errors:
                raise ProcessDied(f"producing the switch stream failed: {errors[0]!r}")
            return hook.alerts(path, ALERT, inst[name], status)

        def fired(name: str) -> None:
            (alert, *_) = wait_until(lambda: notified(name, "firing"), FIRE_TIMEOUT_S,
                                     f"{ALERT} of worker {name} at the {RECEIVER} receiver", step=0.5)
            assert alert["labels"]["severity"] == "ticket" and "should be retrained" in alert["annotations"]["summary"]
            times[f"{name} fired"] = time.monotonic() - t0

        def resolved(name: str) -> None:
            wait_until(lambda: notified(name, "resolved"), RESOLVE_TIMEOUT_S,
                       f"the resolved {ALERT} of worker {name}", step=0.5)
            times[f"{name} resolved"] = time.monotonic() - t0

        fired("ack")
        # the operator: "this is the new normal", with the real CLI
        env = {**os.environ, "STREAMREC_ADMIN_TOKEN": TOKEN}
        r = subprocess.run(streamrec("admin", "--url", f"http://127.0.0.1:{admin_port}", "acknowledge",
                                     "--reason", "new catalogue is the new normal", "--by", "e2e"),
                           capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
        assert r.returncode == 0, r.stdout + r.stderr
        status = json.loads(r.stdout)
        assert status["retraining_due"] is False and status["actions"][-1]["action"] == "acknowledge", status
        assert TOKEN not in r.stdout + r.stderr
        resolved("ack")
        for name in ("promote", "absorb"):
            fired(name)
            resolved(name)

        def counter(name: str, metric_name: str) -> float:
            return metric(http_text(f"http://{inst[name]}/metrics"), metric_name) or 0.0

        assert counter("promote", "streamrec_model_promotions_total") >= 1, "resolved without a promotion"
        assert counter("absorb", "streamrec_model_promotions_total") == 0
        assert counter("ack", "streamrec_drift_acknowledgements_total") >= 1
        assert counter("absorb", "streamrec_drift_acknowledgements_total") == 0

        # the dashboard's event annotations now have their events
        dash = json.loads(DASHBOARD.read_text())
        values = resolve_variables(dash, api)
        notes = {a["name"]: a["expr"] for a in dash["annotations"]["list"] if "expr" in a}
        for name in ("Promotions", "Acknowledgements"):
            expr = substitute(notes[name].replace("[1m]", "[10m]"), values)  # the event may be older than 1m
            assert query(api, expr), f"annotation {name}: no data ({expr})"
        print("\n" + ", ".join(f"{k} after {v:.0f} s" for k, v in times.items()))
    except (AssertionError, ProcessDied) as exc:
        alerts = ""
        try:
            alerts = str([(a["labels"]["alertname"], a["labels"].get("instance"), a["state"])
                          for a in http_json(f"{api}/alerts")["data"]["alerts"]])
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        raise AssertionError(f"{exc}\nworkers: {inst}\nPrometheus alerts: {alerts}\nwebhook:\n{hook.summary()}\n"
                             f"{procs.logs()}") from None
