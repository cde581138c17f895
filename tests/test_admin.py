"""The admin routes (stream/serving/admin.py) and ``streamrec admin``: token, status codes, the hand-over to
the main loop, the token kept out of logs and errors.

The routes run on a real :class:`stream.serving.http.HttpServer`; the lifecycle they act on is a stand-in
(pure logic), and a thread plays the worker's main loop. The real worker is in
tests/test_admin_worker.py.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from stream import cli
from stream.serving.admin import AdminHandler, MainLoopCalls, check_token
from stream.serving.http import HttpServer, Routes

TOKEN = "s3cr3t-admin-token-0123456789"


class StandIn:
    """The lifecycle's contract (monitoring/drift/lifecycle.py), recording the thread of each call."""

    def __init__(self) -> None:
        self.state = "due"
        self.actions: list[dict[str, Any]] = []
        self.threads: list[str] = []

    def _act(self, action: str, by: str, reason: str) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        self.actions.append({"action": action, "by": by, "reason": reason})
        return self.status()

    def request_retrain(self, reason: str, by: str = "operator") -> dict[str, Any]:
        self.state = "challenging"
        return self._act("retrain", by, reason)

    def promote(self, by: str = "operator") -> dict[str, Any]:
        if self.state != "waiting":
            raise ValueError("no challenger is waiting for promotion")
        self.state = "watching"
        return self._act("promote", by, "")

    def acknowledge(self, by: str = "operator", reason: str = "") -> dict[str, Any]:
        self.state = "watching"
        return self._act("acknowledge", by, reason)

    def status(self) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        return {"state": self.state, "retraining_due": self.state == "due", "actions": self.actions[-5:]}


class MainLoop:
    """A thread draining the calls the way the worker's poll loop does."""

    def __init__(self, calls: MainLoopCalls) -> None:
        self.calls = calls
        self.saves = 0
        self.paused = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="main-loop", daemon=True)
        self.thread.start()

    def _save(self) -> None:
        self.saves += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.paused.is_set() and self.calls.pending:
                self.calls.run_pending(after=self._save)
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


@pytest.fixture
def admin() -> Iterator[tuple[HttpServer, StandIn, MainLoop, AdminHandler]]:
    life = StandIn()
    calls = MainLoopCalls()
    handler = AdminHandler(TOKEN, lambda: life, calls, timeout_s=5.0)
    loop = MainLoop(calls)
    srv = HttpServer(Routes(lambda: b"streamrec_up 1\n", lambda: (True, {}), lambda s: None, admin=handler), 0).start()
    try:
        yield srv, life, loop, handler
    finally:
        srv.stop()
        loop.stop()


def req(srv: HttpServer, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    h = dict(headers or {})
    if token is not None:
        h.setdefault("Authorization", f"Bearer {token}")
    if body is not None:
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        raw = r.read()
        return r.status, orjson.loads(raw), {k: v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_admin_off_answers_404() -> None:
    srv = HttpServer(Routes(lambda: b"", lambda: (True, {}), lambda s: None), 0).start()
    try:
        for method, path in (("GET", "/admin/status"), ("POST", "/admin/retrain"), ("POST", "/admin/acknowledge")):
            code, out, _ = req(srv, method, path, b"{}" if method == "POST" else None)
            assert code == 404 and out["field"] == "path", out
    finally:
        srv.stop()


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
                                  f"Bearer {TOKEN[:-1]}", "Bearer", f"Bearer  {TOKEN} extra", "Bearer \u00e9"])
def test_no_or_wrong_token_is_401_without_echo(admin, auth) -> None:
    srv, life, _, _ = admin
    headers = {"Authorization": auth} if auth is not None else {}
    for method, path in (("GET", "/admin/status"), ("POST", "/admin/acknowledge"), ("GET", "/admin/nope")):
        code, out, h = req(srv, method, path, b"{}" if method == "POST" else None, token=None, headers=headers)
        assert code == 401 and out["field"] == "Authorization", out
        assert h.get("WWW-Authenticate", "").startswith("Bearer")
        text = orjson.dumps(out).decode() + str(h)
        assert TOKEN[:10] not in text and "wrong-token" not in text
    assert life.actions == [] and life.state == "due"


def test_actions_run_on_the_main_loop_and_are_checkpointed(admin, caplog) -> None:
    srv, life, loop, _ = admin
    caplog.set_level(logging.INFO, "streamrec.admin")
    code, out, _ = req(srv, "GET", "/admin/status")
    assert code == 200 and out["state"] == "due" and loop.saves == 0  # status changes nothing
    code, out, _ = req(srv, "POST", "/admin/retrain", b'{"reason": "new catalogue", "by": "alice"}')
    assert code == 200 and out["state"] == "challenging"
    assert life.actions[-1] == {"action": "retrain", "by": "alice", "reason": "new catalogue"}
    code, out, _ = req(srv, "POST", "/admin/acknowledge")  # no body: defaults
    assert code == 200 and out["state"] == "watching" and out["actions"][-1]["by"] == "operator"
    assert set(life.threads) == {"main-loop"}
    assert loop.saves == 2  # one checkpoint after each action, before it is answered
    logged = [r for r in caplog.records if r.getMessage() == "admin action"]
    assert [r.fields["action"] for r in logged] == ["retrain", "acknowledge"]  # type: ignore[attr-defined]
    assert logged[0].fields["by"] == "alice" and logged[0].fields["reason"] == "new catalogue"  # type: ignore[attr-defined]


def test_promote_with_nothing_to_promote_is_409(admin) -> None:
    srv, life, loop, _ = admin
    code, out, _ = req(srv, "POST", "/admin/promote", b"{}")
    assert code == 409 and out["field"] == "challenger" and "no challenger" in out["error"]
    life.state = "waiting"
    code, out, _ = req(srv, "POST", "/admin/promote", b'{"by": "bob"}')
    assert code == 200 and out["state"] == "watching" and life.actions[-1]["by"] == "bob"


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/admin/status", b"{}"),
    ("GET", "/admin/retrain", None),
    ("GET", "/admin/promote", None),
    ("DELETE", "/admin/acknowledge", None),
])
def test_a_wrong_method_is_405_and_names_the_allowed_one(admin, method, path, body) -> None:
    srv, life, _, _ = admin
    code, out, h = req(srv, method, path, body)
    assert code == 405 and out["field"] == "method" and "Allow" in h, out
    assert life.actions == []


def test_an_unknown_admin_path_is_404(admin) -> None:
    srv, life, _, _ = admin
    code, out, _ = req(srv, "GET", "/admin/nope")
    assert code == 404 and out["field"] == "path", out
    assert life.actions == []


@pytest.mark.parametrize("path,body,field", [
    ("/admin/retrain", b"{nope", "body"),
    ("/admin/retrain", b"[1]", "body"),
    ("/admin/retrain", b'{"reason": 3}', "reason"),
    ("/admin/retrain", b'{"reason": "x", "force": true}', "force"),
    ("/admin/promote", b'{"reason": "x"}', "reason"),
    ("/admin/acknowledge", b'{"by": ""}', "by"),
    ("/admin/acknowledge", orjson.dumps({"reason": "x" * 201}), "reason"),
])
def test_a_bad_admin_body_is_400_and_names_the_field(admin, path, body, field) -> None:
    srv, life, _, _ = admin
    code, out, _ = req(srv, "POST", path, body)
    assert code == 400 and out["field"] == field, out
    assert life.actions == []


def test_wrong_content_type_is_400(admin) -> None:
    srv, _, _, _ = admin
    code, out, _ = req(srv, "POST", "/admin/acknowledge", b"reason=x", headers={"Content-Type": "text/plain"})
    assert code == 400 and out["field"] == "Content-Type"


def test_a_main_loop_that_does_not_answer_is_503(admin) -> None:
    srv, life, loop, handler = admin
    handler.timeout_s = 0.3
    loop.paused.set()
    code, out, _ = req(srv, "POST", "/admin/acknowledge", b"{}")
    assert code == 503 and out["field"] == "worker"
    loop.paused.clear()
    time.sleep(0.1)
    assert life.actions == []  # withdrawn, never run late
    handler.timeout_s = 5.0
    assert req(srv, "POST", "/admin/acknowledge", b"{}")[0] == 200


def test_no_lifecycle_is_409() -> None:
    calls = MainLoopCalls()
    handler = AdminHandler(TOKEN, lambda: None, calls)
    code, _, body = handler.handle("GET", "/admin/status", {"Authorization": f"Bearer {TOKEN}"}, b"")
    assert code == 409 and orjson.loads(body)["field"] == "path"


def test_calls_after_close_fail_fast() -> None:
    calls = MainLoopCalls()
    calls.close()
    handler = AdminHandler(TOKEN, StandIn, calls)
    code, _, body = handler.handle("GET", "/admin/status", {"Authorization": f"Bearer {TOKEN}"}, b"")
    assert code == 503 and "stopping" in orjson.loads(body)["error"]


def test_exceptions_reach_the_caller_and_a_failed_checkpoint_is_logged(caplog) -> None:
    calls = MainLoopCalls()
    out: list[Any] = []

    def caller() -> None:
        try:
            calls.call(lambda: 1 / 0)
        except ZeroDivisionError as e:
            out.append(e)
        out.append(calls.call(lambda: "ok"))

    t = threading.Thread(target=caller)
    t.start()
    for _ in range(2):
        while not calls.pending:
            time.sleep(0.001)
        calls.run_pending(after=lambda: 1 / 0)
    t.join(5)
    assert isinstance(out[0], ZeroDivisionError) and out[1] == "ok"
    assert any("checkpoint after an admin action failed" in r.getMessage() for r in caplog.records)


def test_token_checks() -> None:
    assert check_token(TOKEN) == TOKEN
    for bad in ("short", " " + TOKEN, TOKEN + " ", "a b" * 8, "\u00e9" * 20):
        with pytest.raises(ValueError) as e:
            check_token(bad)
        assert bad.strip() not in str(e.value)


def test_token_never_in_logs_or_errors(admin, caplog, capfd) -> None:
    """Every route, right and wrong tokens, bad bodies: no log record or answer shows the token,
    even a library logging the headers it saw (stream.kafka.redact masks it)."""
    srv, life, _, _ = admin
    caplog.set_level(logging.DEBUG)
    answers = []
    for tok in (TOKEN, TOKEN + "x", TOKEN[:8], None):
        for method, path, body in (("GET", "/admin/status", None), ("POST", "/admin/retrain", b'{"reason": "r"}'),
                                   ("POST", "/admin/acknowledge", b"{bad"), ("POST", "/admin/promote", b"{}"),
                                   ("GET", "/admin/x", None), ("GET", "/metrics", None)):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            h = {"Authorization": f"Bearer {tok}"} if tok else {}
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            answers.append(r.read().decode() + str(r.getheaders()))
            conn.close()
    logging.getLogger("some.library").debug("request headers %s", {"Authorization": f"Bearer {TOKEN}"})
    text = "\n".join(answers) + "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert TOKEN not in text and TOKEN[:12] not in text
    assert "***" in caplog.records[-1].getMessage()
    err = capfd.readouterr()
    assert TOKEN not in err.out + err.err


# -- streamrec admin ------------------------------------------------------------------------------


def test_cli_prints_the_status_and_exits_non_zero_on_errors(admin, capsys, monkeypatch) -> None:
    srv, life, _, _ = admin
    url = f"http://127.0.0.1:{srv.port}"
    monkeypatch.setenv("STREAMREC_ADMIN_TOKEN", TOKEN)
    assert cli.main(["admin", "--url", url, "status"]) == 0
    assert orjson.loads(capsys.readouterr().out)["state"] == "due"
    assert cli.main(["admin", "--url", url, "retrain", "--reason", "campaign over", "--by", "carol"]) == 0
    assert orjson.loads(capsys.readouterr().out)["state"] == "challenging"
    assert life.actions[-1] == {"action": "retrain", "by": "carol", "reason": "campaign over"}
    assert cli.main(["admin", "--url", url, "promote"]) == 1  # nothing waits: 409
    err = capsys.readouterr().err
    assert "409" in err and "no challenger" in err
    assert cli.main(["admin", "--url", url, "acknowledge"]) == 0
    assert orjson.loads(capsys.readouterr().out)["state"] == "watching"
    assert cli.main(["admin", "--url", url, "--token", "wrong-token-0123456789", "status"]) == 2
    err = capsys.readouterr().err
    assert "401" in err and TOKEN not in err
    monkeypatch.delenv("STREAMREC_ADMIN_TOKEN")
    assert cli.main(["admin", "--url", url, "status"]) == 2
    assert "no admin token" in capsys.readouterr().err


def test_cli_unreachable_worker_exits_2(capsys) -> None:
    from stream.kafka.broker import free_port

    rc = cli.main(["admin", "--url", f"http://127.0.0.1:{free_port()}", "--token", TOKEN, "--timeout", "3", "status"])
    assert rc == 2 and "cannot reach" in capsys.readouterr().err


def test_worker_refuses_a_short_token_and_help_never_shows_one(monkeypatch, capsys) -> None:
    from stream.cli import build_parser

    monkeypatch.setenv("STREAMREC_ADMIN_TOKEN", TOKEN)
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("worker", "admin"):
        text = sub.choices[name].format_help()  # type: ignore[union-attr]
        assert "STREAMREC_ADMIN_TOKEN" in text and TOKEN not in text
    assert parser.parse_args(["worker"]).admin_token == TOKEN  # the environment turns admin on
    with pytest.raises(SystemExit) as e:
        cli.main(["worker", "--bootstrap-servers", "127.0.0.1:1", "--admin-token", "tooshort-123"])
    assert "at least 16 characters" in str(e.value) and "tooshort" not in str(e.value)
    with pytest.raises(SystemExit) as e:
        cli.main(["worker", "--bootstrap-servers", "127.0.0.1:1", "--metrics-port", "8123", "--admin-port", "8123"])
    assert "--admin-port must differ" in str(e.value)


def test_answers_are_counted_by_action_and_code(admin) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    srv, _, _, handler = admin
    reg = CollectorRegistry()
    reg.register(handler.collector())
    req(srv, "GET", "/admin/status", token=None)
    req(srv, "GET", "/admin/status", token="wrong-token-0123456789")
    req(srv, "GET", "/admin/status")
    req(srv, "POST", "/admin/promote", b"{}")
    req(srv, "GET", "/admin/../../etc", token=None)
    text = generate_latest(reg).decode()
    assert 'streamrec_admin_requests_total{action="status",code="401"} 2.0' in text
    assert 'streamrec_admin_requests_total{action="status",code="200"} 1.0' in text
    assert 'streamrec_admin_requests_total{action="promote",code="409"} 1.0' in text
    assert 'streamrec_admin_requests_total{action="unknown",code="401"} 1.0' in text
    assert TOKEN not in text and "etc" not in text
