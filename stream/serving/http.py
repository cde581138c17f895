"""The worker's HTTP surface: ``/metrics``, ``/healthz``, the request API, ``/admin/``.

A small HTTP/1.1 server on an asyncio event loop in one daemon thread. Each response is built
whole and written with one ``send`` (status line, headers and body together) on a socket with
``TCP_NODELAY``, so a keep-alive client never waits for a delayed ACK between pieces of a
response; connections stay open (HTTP/1.1 keep-alive) until the client closes them, asks for
``Connection: close`` or idles for :data:`REQUEST_TIMEOUT_S`.

Limits: request line, path, header count and header bytes are bounded; a request body is
accepted only by routes that take one (``POST``), with a ``Content-Length`` of at most
:data:`MAX_BODY_BYTES` (chunked bodies are refused); concurrent connections are capped. Every
refusal is a 4xx with a JSON ``{"error": ...}``. Binds to 127.0.0.1 unless told otherwise (the
container sets 0.0.0.0).

One module, just over 400 lines, because the parser, its limits and the hand-over of a request
that must wait to the pool (in order, per connection) are correct only together.

Routes: ``/metrics``, ``/healthz``, ``/recommendations/<session_id>`` (the session's list, as
``Routes.recommendations`` returns it), everything else the request API answers
(:class:`Routes.api`, see :mod:`stream.serving.api`), and every path under ``/admin/`` goes to
``Routes.admin`` (404 when it is ``None``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from stream.events import valid_id

log = logging.getLogger("streamrec.http")

MAX_PATH = 4096  # the request target, query string included
MAX_REQUEST_LINE = 4200  # bytes, "GET <path> HTTP/1.1"
MAX_HEADERS = 32
MAX_HEADER_BYTES = 8192
MAX_BODY_BYTES = 65_536  # a POST body beyond this is refused (413)
REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing for this long is dropped
MAX_CONNECTIONS = 32  # concurrent; further connections are closed at once
POOL_THREADS = 4  # requests that may wait (model queries, admin) are answered on these
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_JSON = "application/json"

#: status, extra headers, body (JSON unless the headers say otherwise)
Response = tuple[int, Mapping[str, str], bytes]


class Handler(Protocol):
    """What the request API and the admin routes implement."""

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request; ``path`` includes the query string."""


class ApiHandler(Handler, Protocol):
    """The request API: a :class:`Handler` that also says which requests may wait."""

    def blocking(self, method: str, path: str) -> bool:
        """Whether answering may wait (the server then answers it on a thread of its pool)."""

    def handle_now(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        """For a request that may wait: its response if it needs no waiting after all, else ``None``."""


def json_response(code: int, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
    return code, headers or {}, orjson.dumps(obj) + b"\n"


def error(code: int, why: str, **fields: Any) -> Response:
    """A JSON error body ``{"error": why, ...}`` (``field`` names the bad part of a request)."""
    return json_response(code, {"error": why, **fields})


class Routes:
    """What the server asks the worker for; plain callables so tests can pass their own.

    ``recommendations(session_id)`` answers ``GET /recommendations/<id>`` when there is no
    ``api``; with an ``api`` (:class:`stream.serving.api.Api`) that route and the rest of the request
    API are its. ``admin`` handles every path under ``/admin/``.
    """

    def __init__(
        self,
        metrics: Callable[[], bytes],
        health: Callable[[], tuple[bool, dict[str, Any]]],
        recommendations: Callable[[str], list[str] | None],
        api: ApiHandler | None = None,
        admin: Handler | None = None,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.recommendations = recommendations
        self.api = api
        self.admin = admin

    def blocking(self, method: str, target: str) -> bool:
        """Whether a request may wait (for the model, for admin work): answered off the event loop."""
        if target.startswith("/admin/"):
            return self.admin is not None
        return self.api is not None and self.api.blocking(method, target)


def dispatch_now(routes: Routes, method: str, target: str, headers: Mapping[str, str],
                 body: bytes) -> Response | None:
    """For a request that may wait (:meth:`Routes.blocking`): its response if the request API can
    give it without waiting (the model free or its copy readable, or a refusal), else ``None``
    (admin routes always: they are answered on the pool). Never raises."""
    if routes.api is None or target.startswith("/admin/"):
        return None
    if len(target) > MAX_PATH:
        return dispatch(routes, method, target, headers, body)  # refused without waiting
    try:
        return routes.api.handle_now(method, target, headers, body)
    except Exception:  # noqa: BLE001 - answered (and logged) by dispatch on the pool
        return None


def dispatch(routes: Routes, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
    """The response to one parsed request (never raises)."""
    if len(target) > MAX_PATH:
        return error(414, "path too long", field="path")
    path = target.split("?", 1)[0]
    try:
        if path.startswith("/admin/"):
            if routes.admin is None:
                return error(404, "not found (admin routes are off)", field="path")
            if method not in ("GET", "POST"):
                return _not_allowed("GET, POST")
            return routes.admin.handle(method, target, headers, body)
        if path == "/metrics":
            if method != "GET":
                return _not_allowed("GET")
            return 200, {"Content-Type": CONTENT_TYPE_METRICS}, routes.metrics()
        if path in ("/healthz", "/health"):
            if method != "GET":
                return _not_allowed("GET")
            ok, detail = routes.health()
            return json_response(200 if ok else 503, detail)
        if routes.api is not None and path != "/":
            return routes.api.handle(method, target, headers, body)
        if path.startswith("/recommendations/"):
            if method != "GET":
                return _not_allowed("GET")
            sid = unquote(path[len("/recommendations/"):])
            if not valid_id(sid):
                return error(400, "invalid session id", field="session_id")
            recs = routes.recommendations(sid)
            if recs is None:
                return json_response(404, {"error": "unknown session", "session_id": sid})
            return json_response(200, recs)
        if path == "/":
            if method != "GET":
                return _not_allowed("GET")
            return json_response(200, {"routes": [
                "/metrics", "/healthz", "/recommendations/<session_id>", "/recommendations",
                "/items/<item_id>/similar", "/openapi.json"]})
        return error(404, "not found", field="path")
    except Exception:  # noqa: BLE001 - a bad request must not kill the server
        log.exception("error serving %s", path[:80])
        return error(500, "internal error")


def _not_allowed(allow: str) -> Response:
    return 405, {"Allow": allow}, orjson.dumps({"error": "method not allowed", "field": "method"}) + b"\n"


def _head(code: int, headers: Mapping[str, str], length: int, close: bool) -> bytes:
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {code} {reason}\r\nServer: streamrec\r\nContent-Length: {length}\r\n"]
    if "Content-Type" not in headers:
        lines.append("Content-Type: application/json\r\n")
    for k, v in headers.items():
        lines.append(f"{k}: {v}\r\n")
    lines.append("Connection: close\r\n\r\n" if close else "\r\n")
    return "".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One client connection: parse requests from the buffer, answer each with one write."""

    __slots__ = ("server", "transport", "buf", "timer", "closing", "counted", "waiting")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False
        self.counted = False
        self.waiting = False  # a response is being computed off the loop: later requests wait

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        srv = self.server
        if srv.open_connections >= srv.max_connections:
            transport.close()
            self.closing = True
            return
        srv.open_connections += 1
        self.counted = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.server.open_connections -= 1
            self.counted = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.server.loop.call_later(REQUEST_TIMEOUT_S, self._timeout)

    def _timeout(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self._arm()
        self.buf += data
        self._drain()

    def _drain(self) -> None:
        while self.buf and not self.closing and not self.waiting:
            if not self._one():
                return

    def _fail(self, code: int, why: str, field: str | None = None) -> None:
        extra = {"field": field} if field else {}
        _, headers, body = error(code, why, **extra)
        self._write(code, headers, body, close=True)

    def _write(self, code: int, headers: Mapping[str, str], body: bytes, close: bool) -> None:
        t = self.transport
        if t is None:
            return
        t.write(_head(code, headers, len(body), close) + body)  # one write per response
        if close:
            self.closing = True
            self.buf = b""
            t.close()

    def _one(self) -> bool:
        """Answer the first complete request in the buffer; ``False`` if it is not complete yet."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            nl = buf.find(b"\n")
            if nl < 0 and len(buf) > MAX_REQUEST_LINE or nl > MAX_REQUEST_LINE:
                self._fail(414, "request line too long", "path")
            elif len(buf) > MAX_REQUEST_LINE + MAX_HEADER_BYTES:
                self._fail(431, "request headers too large", "headers")
            elif buf.startswith(b"\r\n") or b"\n\n" in buf:
                self._fail(400, "malformed request")
            return False
        nl = buf.find(b"\r\n")
        if nl > MAX_REQUEST_LINE:
            self._fail(414, "request line too long", "path")
            return False
        head = buf[:end]
        if end - nl > MAX_HEADER_BYTES + 2:
            self._fail(431, "request headers too large", "headers")
            return False
        lines = head.split(b"\r\n")
        if len(lines) - 1 > MAX_HEADERS:
            self._fail(431, "request headers too large", "headers")
            return False
        try:
            method, target, version = lines[0].decode("ascii").split(" ")
        except (UnicodeDecodeError, ValueError):
            self._fail(400, "malformed request line")
            return False
        if version not in ("HTTP/1.1", "HTTP/1.0") or not target.startswith("/") or not method.isalpha():
            self._fail(400 if version.startswith("HTTP/") and version[5:6] in "01" else 505
                       if version.startswith("HTTP/") else 400, "unsupported request")
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if not sep or not k or k != k.strip():
                self._fail(400, "malformed header", "headers")
                return False
            try:
                headers[k.decode("ascii").title()] = v.strip().decode("latin-1")
            except UnicodeDecodeError:
                self._fail(400, "malformed header", "headers")
                return False
        if "Transfer-Encoding" in headers:
            self._fail(411 if method == "POST" else 413, "chunked bodies are not accepted; send Content-Length",
                       "Transfer-Encoding")
            return False
        cl = headers.get("Content-Length", "0")
        if not cl.isdigit() or len(cl) > 12:
            self._fail(400, "bad Content-Length", "Content-Length")
            return False
        length = int(cl)
        if length and method == "GET":  # 405 where GET is not allowed at all, else 413
            code, rheaders, rbody = dispatch(self.server.routes, method, target, headers, b"")
            if code == 405:
                self._write(code, rheaders, rbody, close=True)
            else:
                self._fail(413, "request bodies are not accepted here", "body")
            return False
        if length > MAX_BODY_BYTES:
            self._fail(413, f"request body over {MAX_BODY_BYTES} bytes", "body")
            return False
        start = end + 4
        if len(buf) < start + length:
            return False
        body = buf[start:start + length]
        self.buf = buf[start + length:]
        conn = headers.get("Connection", "").lower()
        close = conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive")
        routes = self.server.routes
        if routes.blocking(method, target):
            answer = dispatch_now(routes, method, target, headers, body)
            if answer is None:  # it must wait (for the model, for admin work): off the loop, in order
                self.waiting = True
                fut = self.server.pool.submit(dispatch, routes, method, target, headers, body)
                loop = self.server.loop
                fut.add_done_callback(lambda f: loop.call_soon_threadsafe(self._answered, f, close))
                return False
        else:
            answer = dispatch(routes, method, target, headers, body)
        code, rheaders, rbody = answer
        self._write(code, rheaders, rbody, close)
        return not close

    def _answered(self, fut: Any, close: bool) -> None:
        self.waiting = False
        code, rheaders, rbody = fut.result()  # dispatch never raises
        self._write(code, rheaders, rbody, close)
        if not close:
            self._drain()


class HttpServer:
    """The server's event loop in a daemon thread; ``port`` 0 takes a free one."""

    def __init__(self, routes: Routes, port: int, host: str = "127.0.0.1",
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.routes = routes
        self.max_connections = max_connections
        self.open_connections = 0
        self.loop = asyncio.new_event_loop()
        self.sock = socket.create_server((host, port), backlog=128, reuse_port=False)
        self.sock.setblocking(False)
        self._address: tuple[str, int] = self.sock.getsockname()[:2]
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="streamrec-http-pool")
        self.thread = threading.Thread(target=self._serve, name="streamrec-http", daemon=True)

    @property
    def server_address(self) -> tuple[str, int]:
        return self._address

    @property
    def server(self) -> HttpServer:  # the stdlib server's attribute name, kept for callers
        return self

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self._server = await self.loop.create_server(lambda: _Connection(self), sock=self.sock)

        self.loop.run_until_complete(start())
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def start(self) -> HttpServer:
        self.thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if not self.thread.is_alive():
            self.sock.close()
            return

        def _stop() -> None:
            if self._server is not None:
                self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(_stop)
        self.thread.join(10)
        self.sock.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
