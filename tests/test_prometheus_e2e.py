"""End to end with a real Prometheus: broker -> producer (new-catalogue drift) -> worker -> Prometheus.

Prometheus (Debian's package, or any ``prometheus`` on PATH) runs with a config derived from
``monitoring/prometheus/prometheus.yml`` (same jobs, 1 s scrapes, loopback targets) and evaluates
the real ``alerts.yml`` rewritten only in its ``for`` durations (2 s) and group intervals (1 s).
The test waits until ``/api/v1/alerts`` shows ``StreamrecRetrainingDue`` firing, then runs every
query of the Grafana dashboard, its variables resolved against that Prometheus, and asserts each
returns data.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml  # noqa: E402 - a test dependency

pytestmark = [pytest.mark.prometheus, pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PROM_DIR = ROOT / "monitoring" / "prometheus"
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "streamrec.json"
WORKER_JOB = "streamrec-worker"
ALERT = "StreamrecRetrainingDue"
TEST_FOR = "2s"
#: Grafana's built-in interval variables, as Grafana would set them for 1 s scrapes.
BUILTINS = {"$__rate_interval": "10s", "$__interval": "1s", "$__range": "5m"}
#: Small drift-monitor settings so the new catalogue is detected within ~20k clicks.
DRIFT_FLAGS = ["--reference-events", "8000", "--check-every", "1000", "--drift-warmup", "1000"]
ALERT_TIMEOUT_S = 75.0
#: Annotations that mark an event (a query answering only at its moments): no data until it happens.
#: tests/test_alertmanager_e2e.py runs them after a promotion and an acknowledgement.
EVENT_ANNOTATIONS = {"Promotions", "Acknowledgements"}


# --------------------------------------------------------------------------- helpers


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def http_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class ProcessDied(AssertionError):
    """A process the test depends on has exited: stop waiting."""


def wait_until(check: Any, timeout: float, what: str, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except ProcessDied:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_exc = exc
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_exc})")


def fast_rules(src: Path, dst: Path) -> list[str]:
    """The same rules with every ``for`` set to :data:`TEST_FOR` and 1 s group intervals."""
    doc = yaml.safe_load(src.read_text())
    names = []
    for group in doc["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = TEST_FOR
            names.append(rule.get("alert") or rule.get("record"))
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return names


def write_test_config(src: Path, dst: Path, rules: str, prom_port: int, worker_port: int) -> None:
    """prometheus.yml with 1 s scrapes and evaluation, loopback targets, no Alertmanager."""
    cfg = yaml.safe_load(src.read_text())
    cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    cfg["rule_files"] = [rules]
    cfg.pop("alerting", None)
    targets = {"prometheus": f"127.0.0.1:{prom_port}", WORKER_JOB: f"127.0.0.1:{worker_port}"}
    jobs = {j["job_name"] for j in cfg["scrape_configs"]}
    assert set(targets) <= jobs, f"prometheus.yml lost a job: {jobs}"
    for job in cfg["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    dst.write_text(yaml.safe_dump(cfg, sort_keys=False))


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


class Procs:
    """Subprocesses started by the test, stopped in reverse order."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.logdir / f"{name}.log"
        with log.open("wb") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append((name, p, log))
        return p

    def check_alive(self, *names: str) -> None:
        for name, p, log in self.procs:
            if name in names and p.poll() is not None:
                raise ProcessDied(f"{name} exited with {p.returncode}:\n{tail(log)}")

    def logs(self) -> str:
        return "\n".join(f"--- {name} (rc={p.poll()}) ---\n{tail(log)}" for name, p, log in self.procs)

    def stop(self) -> None:
        for _name, p, _log in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)


def streamrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", *args]


# --------------------------------------------------------------------------- dashboard queries


def dashboard_queries(dash: dict[str, Any], events: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and annotation, but the annotations named in ``events``."""
    out = [(f"panel {p['title']!r} {t['refId']}", t["expr"])
           for p in dash["panels"] for t in p.get("targets", [])]
    out += [(f"annotation {a['name']!r}", a["expr"])
            for a in dash.get("annotations", {}).get("list", []) if "expr" in a and a["name"] not in events]
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    table = {**BUILTINS, **{f"${k}": v for k, v in values.items()}}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: table.get(f"${m.group(1)}", m.group(0)), expr)


def promql_regex_escape(value: str) -> str:
    r"""Escape regex metacharacters for a PromQL string literal (``.`` -> ``\\.``), as Grafana does.

    >>> promql_regex_escape("127.0.0.1:8000")
    '127\\\\.0\\\\.0\\\\.1:8000'
    """
    return re.sub(r"([.+*?^$()\[\]{}|\\])", r"\\\\\1", value)


def resolve_variables(dash: dict[str, Any], api: str) -> dict[str, str]:
    """Each query variable's values from Prometheus, as Grafana formats a multi-value (``(a|b)``)."""
    values: dict[str, str] = {}
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"].strip())
        assert m, f"variable {var['name']}: unsupported query {var['query']}"
        selector, label = substitute(m.group(1), values), m.group(2)
        series = http_json(f"{api}/series?" + urllib.parse.urlencode({"match[]": selector}))["data"]
        found = sorted({s[label] for s in series if label in s})
        assert found, f"variable {var['name']}: {var['query']['query']} has no values"
        values[var["name"]] = "(" + "|".join(promql_regex_escape(v) for v in found) + ")"
    return values


def query(api: str, expr: str) -> list[dict[str, Any]]:
    body = http_json(f"{api}/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", body
    return body["data"]["result"]


# --------------------------------------------------------------------------- the test


def test_retraining_alert_fires_and_every_dashboard_query_has_data(tmp_path: Path, procs: Procs) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("no prometheus binary on PATH (Debian: apt-get install prometheus; `make test` does it as root)")
    from stream.kafka import broker as broker_mod

    prom_port, worker_port = broker_mod.free_port(), broker_mod.free_port()
    rule_names = fast_rules(PROM_DIR / "alerts.yml", tmp_path / "alerts-fast.yml")
    assert ALERT in rule_names
    write_test_config(PROM_DIR / "prometheus.yml", tmp_path / "prometheus.yml", "alerts-fast.yml", prom_port, worker_port)
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    from stream.kafka.clients import ensure_topic

    broker = broker_mod.EmbeddedBroker().start()  # the project's own: a failure to start fails the test
    try:
        topic, group = "e2e-clicks", "e2e-group"
        ensure_topic({"bootstrap_servers": broker.bootstrap}, topic, 2)  # before the worker subscribes
        procs.start("worker", streamrec(
            "worker", "--bootstrap-servers", broker.bootstrap, "--topic", topic, "--group", group,
            "--model", "sr", "--metrics-port", str(worker_port), "--on-drift", "alert", *DRIFT_FLAGS,
            "--session-timeout-ms", "6000"))
        procs.start("producer", streamrec(
            "produce", "--bootstrap-servers", broker.bootstrap, "--topic", topic, "--partitions", "2",
            "--synthetic", "--events", "60000", "--seed", "1", "--scenario", "new-catalog",
            "--drift-at", "12000", "--drift-length", "1000", "--rate", "1000", "--no-progress"))
        procs.start("prometheus", [
            prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn"])
        base = f"http://127.0.0.1:{prom_port}"
        api = f"{base}/api/v1"
        try:
            wait_until(lambda: http_text(f"{base}/-/ready"), 30, "Prometheus ready")
            metrics = wait_until(lambda: http_text(f"http://127.0.0.1:{worker_port}/metrics"), 30,
                                 "the worker's /metrics")
            for name in ("streamrec_retraining_due", "streamrec_drift_score", "streamrec_events_processed_total"):
                assert name in metrics, f"the worker does not export {name}"

            def firing() -> list[dict[str, Any]]:
                procs.check_alive("worker", "prometheus")
                alerts = http_json(f"{api}/alerts")["data"]["alerts"]
                return [a for a in alerts if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]

            alerts = wait_until(firing, ALERT_TIMEOUT_S, f"{ALERT} firing in Prometheus", step=1.0)
            (alert,) = alerts
            assert alert["labels"]["job"] == WORKER_JOB and alert["labels"]["severity"] == "ticket"
            assert "should be retrained" in alert["annotations"]["summary"]
            assert query(api, f'up{{job="{WORKER_JOB}"}} == 1'), "worker target not up"

            dash = json.loads(DASHBOARD.read_text())
            values = resolve_variables(dash, api)
            empty = []
            for where, expr in dashboard_queries(dash, EVENT_ANNOTATIONS):
                result = query(api, substitute(expr, values))
                finite = [s for s in result if math.isfinite(float(s["value"][1]))]
                if not finite:
                    empty.append((where, substitute(expr, values), result))
            assert not empty, "dashboard queries without data:\n" + "\n".join(map(str, empty))
        except AssertionError as exc:
            due = ""
            try:
                due = str(query(api, "streamrec_retraining_due or streamrec_drift_detected == 1"))
            except Exception:  # noqa: BLE001 - diagnostics only
                pass
            raise AssertionError(f"{exc}\nPrometheus: {due}\n{procs.logs()}") from None
    finally:
        procs.stop()
        broker.stop()
