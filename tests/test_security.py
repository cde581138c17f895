"""Kafka security settings reach every client; secrets stay out of logs and /metrics.

The embedded Tansu broker speaks PLAINTEXT only (a SASL client just times out bootstrapping), so
the SASL/TLS plumbing is tested on the configuration each client is built from, and redaction on
real log output: a worker run against the broker with a password in the environment, and a
SASL worker at DEBUG level (kafka-python's own logging included) that cannot connect.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from stream.cli import build_parser
from stream.kafka import clients as kafka_io
from stream.kafka.broker import free_port

SECRET = "s3cr3t-Pa55word-do-not-log"

FLAGS = ["--bootstrap-servers", "b1:9093,b2:9093", "--security-protocol", "SASL_SSL",
         "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "svc-streamrec", "--sasl-password", SECRET,
         "--ssl-cafile", "/etc/ca.pem", "--ssl-certfile", "/etc/client.pem", "--ssl-keyfile", "/etc/client.key"]
ENV = {"STREAMREC_BOOTSTRAP_SERVERS": "b1:9093,b2:9093", "STREAMREC_SECURITY_PROTOCOL": "SASL_SSL",
       "STREAMREC_SASL_MECHANISM": "SCRAM-SHA-512", "STREAMREC_SASL_USERNAME": "svc-streamrec",
       "STREAMREC_SASL_PASSWORD": SECRET, "STREAMREC_SSL_CAFILE": "/etc/ca.pem",
       "STREAMREC_SSL_CERTFILE": "/etc/client.pem", "STREAMREC_SSL_KEYFILE": "/etc/client.key"}
EXPECTED = {"bootstrap_servers": "b1:9093,b2:9093", "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc-streamrec",
            "sasl_plain_password": SECRET, "ssl_cafile": "/etc/ca.pem", "ssl_certfile": "/etc/client.pem",
            "ssl_keyfile": "/etc/client.key"}
COMMANDS = {"worker": [], "produce": ["--synthetic", "--events", "10"], "demo": []}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_flags_reach_client_config(command: str) -> None:
    args = build_parser().parse_args([command, *FLAGS, *COMMANDS[command]])
    assert kafka_io.client_config(args) == EXPECTED


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_env_vars_reach_client_config(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    args = build_parser().parse_args([command, *COMMANDS[command]])  # defaults read at parser build
    assert kafka_io.client_config(args) == EXPECTED


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_SASL_USERNAME", "from-env")
    args = build_parser().parse_args(["worker", "--security-protocol", "SASL_PLAINTEXT",
                                      "--sasl-username", "from-flag"])
    cfg = kafka_io.client_config(args)
    assert cfg["sasl_plain_username"] == "from-flag" and cfg["sasl_mechanism"] == "PLAIN"


def test_every_client_gets_the_security_settings() -> None:
    """make_producer / make_consumer / ensure_topic (admin) all build their keyword arguments with
    ``client_kwargs`` from the same config (pure logic: a SASL broker is not available here)."""
    for kind, extra in (("producer", {}), ("consumer", {"group_id": "g"}), ("admin", {})):
        kw = kafka_io.client_kwargs(kind, EXPECTED, **extra)
        for k, v in EXPECTED.items():
            assert kw[k] == v, (kind, k)
    # overrides win over the kind's defaults, which win over nothing else
    assert kafka_io.client_kwargs("consumer", EXPECTED, max_poll_records=7)["max_poll_records"] == 7


def test_worker_command_passes_config_to_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.cli import worker as worker_cmd
    from stream.kafka import worker as worker_mod

    got: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_run(self: Any) -> Any:
        got.update(self.s.client)
        raise Stop

    monkeypatch.setattr(worker_mod.Worker, "run", fake_run)
    monkeypatch.setattr(worker_mod.Worker, "install_signal_handlers", lambda self: None)
    args = build_parser().parse_args(["worker", *FLAGS, "--metrics-port", "-1"])
    with pytest.raises(Stop):
        worker_cmd.run(args)
    assert got == EXPECTED


def test_redacted_masks_secrets() -> None:
    shown = kafka_io.redacted(EXPECTED)
    assert SECRET not in repr(shown) and shown["sasl_plain_password"] == "***"
    assert shown["sasl_plain_username"] == "svc-streamrec"


@pytest.mark.broker
def test_secret_absent_from_worker_logs_and_metrics(broker, unique, tmp_path) -> None:
    """A PLAINTEXT worker with the password in its environment, at DEBUG: not in logs, /metrics
    or /healthz."""
    topic = f"clicks-{unique}"
    kafka_io.ensure_topic({"bootstrap_servers": broker.bootstrap}, topic, 1)
    port = free_port()
    env = {**os.environ, "STREAMREC_SASL_PASSWORD": SECRET, "STREAMREC_SASL_USERNAME": "svc"}
    log = tmp_path / "w.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--bootstrap-servers", broker.bootstrap,
             "--topic", topic, "--group", f"g-{unique}", "--metrics-port", str(port), "--log-level", "DEBUG",
             "--session-timeout-ms", "6000"], stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            bodies = b""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not bodies:
                try:
                    for path in ("/metrics", "/healthz"):
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                            bodies += r.read()
                except OSError:
                    time.sleep(0.3)
            assert b"streamrec_events_processed_total" in bodies
            assert SECRET.encode() not in bodies
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    text = log.read_text(errors="replace")
    assert "worker started" in text
    assert SECRET not in text


@pytest.mark.broker
@pytest.mark.slow
def test_secret_absent_from_sasl_client_debug_logs(broker, tmp_path) -> None:
    """A SASL worker that cannot authenticate (Tansu has no SASL) logs its failures at DEBUG,
    kafka-python's included, without the password."""
    env = {**os.environ, **ENV, "STREAMREC_BOOTSTRAP_SERVERS": broker.bootstrap,
           "STREAMREC_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "STREAMREC_SASL_MECHANISM": "PLAIN"}
    for k in ("STREAMREC_SSL_CAFILE", "STREAMREC_SSL_CERTFILE", "STREAMREC_SSL_KEYFILE"):
        env.pop(k)
    log = tmp_path / "sasl.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker", "--topic", "t",
                                 "--metrics-port", "-1", "--log-level", "DEBUG"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60  # until it has tried SASL (a loaded machine is slow)
        while time.monotonic() < deadline and "sasl" not in log.read_text(errors="replace").lower():
            time.sleep(0.2)
        time.sleep(1.0)  # and logged what follows the attempt
        proc.kill()
        proc.wait(10)
    text = log.read_text(errors="replace")
    assert "svc-streamrec" in text or "SASL" in text or "sasl" in text.lower(), text[-2000:]
    assert SECRET not in text
