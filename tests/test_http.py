"""The worker's HTTP surface: GET only, bounded requests, validated session ids, loopback by default."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from stream.serving import http as shttp
from stream.serving.http import HttpServer, Routes


def _recs(sid: str) -> list[str] | None:
    return ["i1", "i2"] if sid == "known" else None


@pytest.fixture
def server() -> Iterator[HttpServer]:
    health = {"ok": True}
    routes = Routes(lambda: b"streamrec_up 1\n", lambda: (health["ok"], {"status": "ok" if health["ok"] else
                                                                          "degraded"}), _recs)
    srv = HttpServer(routes, 0).start()
    srv.health = health  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


def request(srv: HttpServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read(), r
    finally:
        conn.close()


def raw(srv: HttpServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_binds_loopback_by_default(server: HttpServer) -> None:
    assert server.server.server_address[0] == "127.0.0.1"


def test_routes(server: HttpServer) -> None:
    code, body, r = request(server, "GET", "/metrics")
    assert code == 200 and body == b"streamrec_up 1\n"
    assert r.getheader("Content-Type").startswith("text/plain")
    assert request(server, "GET", "/healthz")[0] == 200
    server.health["ok"] = False  # type: ignore[attr-defined]
    code, body, _ = request(server, "GET", "/healthz")
    assert code == 503 and orjson.loads(body)["status"] == "degraded"
    code, body, _ = request(server, "GET", "/recommendations/known")
    assert code == 200 and orjson.loads(body) == ["i1", "i2"]
    assert request(server, "GET", "/recommendations/unknown")[0] == 404
    assert request(server, "GET", "/nope")[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW"])
def test_only_get(server: HttpServer, method: str) -> None:
    code, _, r = request(server, method, "/metrics")
    assert code == 405
    assert r.getheader("Allow") == "GET"


@pytest.mark.parametrize("sid", ["a%0Ab", "%00", "x" * 300, "tab%09tab", "%E2%80%8Bzero-width"])
def test_session_ids_validated_like_event_ids(server: HttpServer, sid: str) -> None:
    code, body, _ = request(server, "GET", f"/recommendations/{sid}")
    assert code in (400, 414), (sid, code, body)


def test_long_path_and_request_line(server: HttpServer) -> None:
    assert request(server, "GET", "/recommendations/" + "a" * (shttp.MAX_PATH + 10))[0] == 414
    reply = raw(server, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414")


def test_header_flood_refused(server: HttpServer) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    assert raw(server, b"GET /metrics HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431")
    big = b"X-Big: " + b"v" * 50_000 + b"\r\n"
    assert raw(server, b"GET /metrics HTTP/1.1\r\n" + big + b"\r\n").startswith(b"HTTP/1.1 431")


def test_request_body_refused(server: HttpServer) -> None:
    code, _, _ = request(server, "GET", "/metrics", body=b"x" * 1000)
    assert code == 413


def test_garbage_does_not_kill_the_server(server: HttpServer) -> None:
    for junk in (b"\x00\xff\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\r\n"):
        raw(server, junk)
    assert request(server, "GET", "/healthz")[0] == 200


def test_connections_are_capped(server: HttpServer) -> None:
    """Idle connections hold at most MAX_CONNECTIONS threads; beyond, connections are closed."""
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
             for _ in range(shttp.MAX_CONNECTIONS + 5)]
    try:
        time.sleep(0.3)
        closed = 0
        for s in socks[shttp.MAX_CONNECTIONS:]:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == 5
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the slots come back once the idle clients leave
        try:
            if request(server, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    assert request(server, "GET", "/healthz")[0] == 200


def test_wrk_pacing_holds_the_asked_rate(server: HttpServer, tmp_path: Any) -> None:
    """``bench --http-load`` paces the requests against a consuming worker with ``wrk``'s
    ``delay()`` hook: the rate asked is a ceiling the run keeps to."""
    from stream.evaluation.httpload import _get_script, _pace, finish_wrk, start_wrk

    run = finish_wrk(start_wrk(server.port, _get_script(["known"], _pace(200.0, 1)), str(tmp_path), "paced",
                               2.0, 1, 4))
    assert run.errors == 0
    assert 100 <= run.requests_per_s <= 230
    fast = finish_wrk(start_wrk(server.port, _get_script(["known"]), str(tmp_path), "unpaced", 1.0, 1, 4))
    assert fast.requests_per_s > 1000
