"""The operations files: Prometheus rules and config (promtool), Alertmanager, the Grafana dashboard
and provisioning, and docker-compose.yml / Dockerfile consistency.

promtool / amtool checks skip with a reason when the binaries are absent (``make test`` installs
Debian's ``prometheus`` package when it can).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # noqa: E402 - a test dependency

ROOT = Path(__file__).resolve().parents[1]
MON = ROOT / "monitoring"
PROM = MON / "prometheus"
ALERTS = PROM / "alerts.yml"
DASHBOARD = MON / "grafana" / "dashboards" / "streamrec.json"
COMPOSE = ROOT / "docker-compose.yml"

SEVERITIES = {"page", "ticket", "info"}
#: What the issue asks the alerts to cover: alert name -> a metric its expression must use.
REQUIRED_ALERTS = {
    "StreamrecRetrainingDue": "streamrec_retraining_due",
    "StreamrecDriftDetected": "streamrec_drift_detected",
    "StreamrecHitRateDropped": "streamrec_prequential_hit_rate",
    "StreamrecConsumerLagHigh": "streamrec_consumer_lag",
    "StreamrecInvalidEventsHigh": "streamrec_events_invalid_total",
    "StreamrecWorkerDown": "up",
    "StreamrecNoEventsProcessed": "streamrec_topic_end_offset",
    "StreamrecChallengerWaiting": "streamrec_challenger_waiting",
}
#: What the issue asks the dashboard to show: a metric (or function) each must appear in some query.
REQUIRED_PANEL_METRICS = [
    "streamrec_events_processed_total", "streamrec_consumer_lag", "streamrec_prequential_hit_rate",
    "streamrec_prequential_mrr", "streamrec_recommend_seconds_bucket", "streamrec_drift_score",
    "streamrec_drift_threshold", "streamrec_retraining_due", "streamrec_retrains_total",
    "streamrec_events_invalid_total", "streamrec_active_sessions", "process_resident_memory_bytes",
]
METRIC_RE = re.compile(r"\b(streamrec_[a-z0-9_]+)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run_tool(tool: str, *args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} not on PATH (Debian: apt-get install prometheus / prometheus-alertmanager)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"] if "alert" in r]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every Prometheus query in the dashboard: panel targets and annotations."""
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    for a in dash.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append((f"annotation {a['name']!r}", a["expr"]))
    return out


#: Values that stand in for Grafana's variables when a query is checked or run outside Grafana.
GRAFANA_BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted({**GRAFANA_BUILTINS, **values}, key=len, reverse=True):
        expr = expr.replace(name, {**GRAFANA_BUILTINS, **values}[name])
    return expr


def code_text() -> str:
    files = list((ROOT / "stream").rglob("*.py")) + list(MON.rglob("*.py"))
    return "\n".join(f.read_text() for f in files)


# --------------------------------------------------------------------------- promtool


def test_promtool_check_rules() -> None:
    r = run_tool("promtool", "check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules() -> None:
    r = run_tool("promtool", "test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_check_config() -> None:
    r = run_tool("promtool", "check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_queries_parse_with_promtool(tmp_path: Path) -> None:
    """Each dashboard query, variables substituted, is valid PromQL (as a recording rule)."""
    values = {"$job": "streamrec-worker", "$instance": ".+", "$model": ".+", "$signal": ".+"}
    rules = [{"record": f"dashboard:query{i}:check", "expr": substitute(expr, values)}
             for i, (_, expr) in enumerate(dashboard_queries(dashboard()))]
    (tmp_path / "q.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run_tool("promtool", "check", "rules", "q.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- alert rules


def test_every_alert_has_severity_summary_description_runbook() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for r in rules:
        assert r.get("labels", {}).get("severity") in SEVERITIES, r["alert"]
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert ann.get(key, "").strip(), f"{r['alert']}: no {key}"
        assert "{{" in ann["description"], f"{r['alert']}: description shows no values"


def test_alerts_cover_the_issue() -> None:
    by_name = {r["alert"]: r["expr"] for r in alert_rules()}
    for name, metric in REQUIRED_ALERTS.items():
        assert name in by_name, f"missing alert {name}"
        assert re.search(rf"\b{metric}\b", by_name[name]), f"{name} does not use {metric}"
    assert "streamrec_events_processed_total" in by_name["StreamrecNoEventsProcessed"]
    assert "for" in next(r for r in alert_rules() if r["alert"] == "StreamrecRetrainingDue")


def test_alerts_test_covers_every_alert_firing_and_not_firing() -> None:
    tests = load_yaml(PROM / "alerts_test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for t in tests["tests"]:
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested not firing"


def test_metric_names_used_by_alerts_and_dashboard_are_defined_in_code() -> None:
    used = set(METRIC_RE.findall(ALERTS.read_text()))
    used |= {m for _, e in dashboard_queries(dashboard()) for m in METRIC_RE.findall(e)}
    code = code_text()
    missing = []
    for name in sorted(used):
        base = re.sub(r"_(bucket|sum|count)$", "", name) if "recommend_seconds" in name else name
        candidates = {base, re.sub(r"_total$", "", base)}
        if not any(f'"{c}"' in code or f"'{c}'" in code for c in candidates):
            missing.append(name)
    assert not missing, f"used in alerts/dashboard but not defined in stream/ or monitoring/: {missing}"


# --------------------------------------------------------------------------- alertmanager


def test_alertmanager_routes_receivers_and_inhibition() -> None:
    cfg = load_yaml(MON / "alertmanager" / "alertmanager.yml")
    receivers = {r["name"]: r for r in cfg["receivers"]}

    def walk(route: dict[str, Any]) -> None:
        assert route["receiver"] in receivers if "receiver" in route else True
        for sub in route.get("routes", []):
            walk(sub)

    walk(cfg["route"])
    assert cfg["route"]["receiver"] in receivers
    assert "alertname" in cfg["route"]["group_by"]
    assert any(r.get("webhook_configs") for r in receivers.values()), "no webhook receiver"
    retrain = receivers["retrain"]["webhook_configs"]
    assert retrain and all(w["send_resolved"] for w in retrain), "the retraining receiver must hear the resolution"
    down = [i for i in cfg["inhibit_rules"]
            if i["source_matchers"] == ['alertname="StreamrecWorkerDown"']]
    assert down, "StreamrecWorkerDown does not inhibit the other alerts"
    # severities routed are those the rules use
    text = (MON / "alertmanager" / "alertmanager.yml").read_text()
    for sev in re.findall(r'severity="(\w+)"', text):
        assert sev in SEVERITIES


def test_amtool_check_config_and_routes() -> None:
    path = str(MON / "alertmanager" / "alertmanager.yml")
    r = run_tool("amtool", "check-config", path)
    assert r.returncode == 0, r.stdout + r.stderr
    expect = {("StreamrecWorkerDown", "page"): "oncall", ("StreamrecRetrainingDue", "ticket"): "retrain",
              ("StreamrecChallengerWaiting", "ticket"): "retrain",
              ("StreamrecDriftDetected", "info"): "null", ("StreamrecConsumerLagHigh", "ticket"): "tickets"}
    for (name, sev), receiver in expect.items():
        r = run_tool("amtool", "config", "routes", "test", f"--config.file={path}",
                     f"alertname={name}", f"severity={sev}")
        assert r.stdout.strip() == receiver, (name, r.stdout, r.stderr)


# --------------------------------------------------------------------------- grafana


def test_dashboard_structure() -> None:
    d = dashboard()
    assert d["id"] is None and 8 <= len(d["uid"]) <= 40
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}", v["name"]
    for p in d["panels"]:
        g = p["gridPos"]
        assert 1 <= g["w"] <= 24 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", (p["title"], t["refId"])
            assert t["expr"].strip()
        if "repeat" in p:
            assert p["repeat"] in variables and variables[p["repeat"]]["multi"]


def test_dashboard_uses_no_hard_coded_datasource_uid() -> None:
    ds = load_yaml(MON / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = ds["datasources"][0]["uid"]
    assert uid not in DASHBOARD.read_text()


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = " ".join(e for _, e in dashboard_queries(dashboard()))
    for metric in REQUIRED_PANEL_METRICS:
        assert re.search(rf"\b{metric}\b", exprs), f"no panel uses {metric}"
    assert "histogram_quantile" in exprs
    assert "by (partition)" in exprs and "by (reason)" in exprs
    assert 'k="20"' in exprs


def test_dashboard_shows_champion_vs_challenger_and_promotions() -> None:
    d = dashboard()
    by_role = [p for p in d["panels"] for t in p.get("targets", [])
               if "streamrec_prequential_hit_rate" in t["expr"] and 'role=~"champion|challenger"' in t["expr"]
               and "{{role}}" in t["legendFormat"]]
    assert by_role, "no panel shows HR@20 of champion and challenger by role"
    exprs = " ".join(e for _, e in dashboard_queries(d))
    for metric in ("streamrec_challenger_hit_rate_gain", "streamrec_challenger_active",
                   "streamrec_challenger_waiting", "streamrec_drift_acknowledgements_total"):
        assert metric in exprs, f"no panel uses {metric}"
    notes = {a["name"]: a for a in d["annotations"]["list"]}
    promo = notes["Promotions"]
    # Grafana makes an annotation of every point a query returns: only the moments of a change
    assert re.search(r"changes\(streamrec_model_promotions_total\{.*\}\[\w+\]\) > 0", promo["expr"]), promo
    assert promo["datasource"]["uid"] == "${datasource}" and promo["enable"]


def test_dashboard_variables_are_all_defined() -> None:
    d = dashboard()
    names = {v["name"] for v in d["templating"]["list"]}
    for where, expr in dashboard_queries(d):
        for var in re.findall(r"\$(\w+)", expr):
            assert var in names or f"${var}" in GRAFANA_BUILTINS, (where, var)


def test_grafana_provisioning() -> None:
    ds = load_yaml(MON / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert ds["apiVersion"] == 1
    (src,) = ds["datasources"]
    assert src["type"] == "prometheus" and src["isDefault"] is True
    prov = load_yaml(MON / "grafana" / "provisioning" / "dashboards" / "streamrec.yml")
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# --------------------------------------------------------------------------- docker compose

_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the variables unset (what a clean clone gets)."""
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def flags(command: list[str]) -> dict[str, str]:
    """``--name=value`` and ``--name value`` pairs of a compose command list."""
    out: dict[str, str] = {}
    i = 0
    while i < len(command):
        arg = command[i]
        if arg.startswith("--") and "=" in arg:
            k, v = arg.split("=", 1)
            out[k] = v
        elif arg.startswith("--"):
            nxt = command[i + 1] if i + 1 < len(command) else ""
            out[arg] = "" if nxt.startswith("--") or not nxt else nxt
            i += 0 if out[arg] == "" else 1
        i += 1
    return out


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume; the source may be ``${VAR:-default}``."""
    out = []
    for v in service.get("volumes", []):
        m = re.match(r"^(\$\{[^}]*\}|[^:]+):([^:]+)", v)
        assert m, f"unparsed volume {v!r}"
        out.append((m.group(1), m.group(2)))
    return out


def port_map(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    out = {}
    for p in service.get("ports", []):
        host, container = str(p).split(":")[-2:]
        out[int(container)] = int(host)
    return out


def test_compose_services_have_images_and_mounted_files_exist() -> None:
    c = compose()
    services = c["services"]
    assert {"kafka", "streamrec-worker", "streamrec-producer", "prometheus", "alertmanager",
            "grafana"} <= set(services)
    for name, s in services.items():
        assert "image" in s or "build" in s, f"{name}: neither image nor build"
        if "build" in s:
            ctx = s["build"] if isinstance(s["build"], str) else s["build"].get("context", ".")
            assert (ROOT / ctx / "Dockerfile").is_file(), name
        else:
            image = s["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
        for src, _dst in mounts(s):
            if "${" in src:  # user-supplied path: only in opt-in services
                assert s.get("profiles"), f"{name}: a mount from {src} must be opt-in (profiles)"
                continue
            assert (ROOT / src).exists(), f"{name} mounts missing {src}"


def test_compose_ports_and_addresses_agree() -> None:
    services = compose()["services"]
    kafka = services["kafka"]["environment"]
    listeners = dict(x.split("://") for x in kafka["KAFKA_LISTENERS"].split(","))
    listener_port = {k: int(v.rsplit(":", 1)[1]) for k, v in listeners.items()}
    advertised = dict(x.split("://") for x in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    # in-network listener: service name and listener port; host listener: published on the same port
    in_net = advertised["PLAINTEXT"]
    host, port = in_net.split(":")
    assert host in ("kafka", services["kafka"].get("hostname")) and int(port) == listener_port["PLAINTEXT"]
    h_host, h_port = advertised["PLAINTEXT_HOST"].split(":")
    assert h_host == "localhost" and port_map(services["kafka"]).get(listener_port["PLAINTEXT_HOST"]) == int(h_port)
    voter = kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")[1]
    assert int(voter.split(":")[1]) == listener_port["CONTROLLER"]

    apps = {n: s for n, s in services.items() if n.startswith("streamrec-")}
    topics = set()
    for name, s in apps.items():
        f = flags([interpolate(a) for a in s["command"]])
        assert f["--bootstrap-servers"] == in_net, name
        if "--catalog" in f:  # the catalogue producer: checked below
            continue
        topics.add(f["--topic"])
        if "--partitions" in f:
            assert int(f["--partitions"]) == int(kafka["KAFKA_NUM_PARTITIONS"]), name
        if "--dataset" in f:
            assert f["--dataset"].startswith(mounts(s)[0][1] + "/"), f"{name}: dataset not under its mount"
    assert len(topics) == 1, f"producers and worker disagree on the topic: {topics}"

    # worker metrics port = Prometheus scrape target = healthcheck = published port
    worker = services["streamrec-worker"]
    wflags = flags(worker["command"])
    wport = int(wflags["--metrics-port"])
    assert wflags["--metrics-host"] == "0.0.0.0", "the worker must listen beyond its container's loopback"
    assert f"localhost:{wport}/healthz" in " ".join(worker["healthcheck"]["test"])
    assert wport in port_map(worker)
    prom_cfg = load_yaml(PROM / "prometheus.yml")
    jobs = {j["job_name"]: j for j in prom_cfg["scrape_configs"]}
    targets = jobs["streamrec-worker"]["static_configs"][0]["targets"]
    assert targets == [f"streamrec-worker:{wport}"]
    am_targets = prom_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_targets == ["alertmanager:9093"] and 9093 in port_map(services["alertmanager"])

    # Prometheus and Alertmanager read their config from the mounted folders
    for svc, cfg_dir in (("prometheus", "monitoring/prometheus"), ("alertmanager", "monitoring/alertmanager")):
        s = services[svc]
        (src, dst), = mounts(s)
        assert src == f"./{cfg_dir}"
        cfg_flag = next(a for a in s["command"] if a.startswith("--config.file="))
        cfg_file = cfg_flag.split("=", 1)[1]
        assert cfg_file.startswith(dst + "/") and (ROOT / cfg_dir / cfg_file[len(dst) + 1:]).is_file()

    # Grafana: datasource URL is the prometheus service; dashboards folder and home dashboard mounted
    ds = load_yaml(MON / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert ds["url"] == "http://prometheus:9090" and 9090 in port_map(services["prometheus"])
    grafana = services["grafana"]
    gm = dict((dst, src) for src, dst in mounts(grafana))
    assert gm["/etc/grafana/provisioning"] == "./monitoring/grafana/provisioning"
    prov = load_yaml(MON / "grafana" / "provisioning" / "dashboards" / "streamrec.yml")["providers"][0]
    dash_dir = prov["options"]["path"]
    assert gm[dash_dir] == "./monitoring/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/")
    assert (ROOT / gm[dash_dir] / home[len(dash_dir) + 1:]).is_file()


def test_compose_catalogue_producer_loads_a_sample_the_worker_follows() -> None:
    """A one-shot ``produce --catalog`` of a small file shipped in the repo, into the topic the
    worker follows, done before the worker starts."""
    from stream.events import Invalid
    from stream.serving.catalog import read_file

    services = compose()["services"]
    loaders = {n: s for n, s in services.items()
               if n.startswith("streamrec-") and "--catalog" in flags(s["command"])}
    assert len(loaders) == 1, loaders
    (name, svc), = loaders.items()
    f = flags(svc["command"])
    assert svc["command"][0] == "produce" and svc.get("restart") == "no" and not svc.get("profiles")
    (src, dst), = mounts(svc)
    assert f["--catalog"].startswith(dst + "/"), "the catalogue file is not under its mount"
    sample = ROOT / src / f["--catalog"][len(dst) + 1:]
    assert sample.is_file() and sample.stat().st_size < 16_384, "ship a small sample, not a dataset"
    records = list(read_file(sample))
    assert records and not [r for r in records if isinstance(r, Invalid)]
    assert any(not info.available for _, info in records)  # something for the rules to filter
    worker = services["streamrec-worker"]
    assert flags(worker["command"])["--catalog-topic"] == f["--catalog-topic"]
    assert worker["depends_on"][name] == {"condition": "service_completed_successfully"}
    assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_dockerfile_copies_existing_files() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+\s*$", text, re.M)  # from the context, not a stage
    assert copies
    for srcs in copies:
        for src in srcs.split():
            assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for src in (s for srcs in copies for s in srcs.split()):
        assert src not in ignored, f".dockerignore drops {src}, which the Dockerfile copies"
    assert 'ENTRYPOINT ["streamrec"]' in text
