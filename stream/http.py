"""The worker's small HTTP surface: ``/metrics``, ``/healthz``, ``/recommendations/<session_id>``.

GET only (anything else: 405); request line, path, header count and header bytes are bounded,
request bodies refused (413), slow clients time out, concurrent connections are capped; session
ids are validated like event ids. Binds to 127.0.0.1 unless told otherwise (the container sets
0.0.0.0).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import orjson

from stream.events import valid_id

log = logging.getLogger("streamrec.http")

MAX_PATH = 512
MAX_REQUEST_LINE = 1024  # bytes, "GET <path> HTTP/1.1"
MAX_HEADERS = 32
MAX_HEADER_BYTES = 8192
REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing for this long is dropped
MAX_CONNECTIONS = 32  # concurrent; further connections are closed at once
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


class Routes:
    """What the server asks the worker for; plain callables so tests can pass their own."""

    def __init__(
        self,
        metrics: Callable[[], bytes],
        health: Callable[[], tuple[bool, dict[str, Any]]],
        recommendations: Callable[[str], list[str] | None],
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.recommendations = recommendations


def _handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "streamrec"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        timeout = REQUEST_TIMEOUT_S

        def handle_one_request(self) -> None:
            """The stdlib's, with tight bounds on the request line and headers."""
            try:
                self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                if len(self.raw_requestline) > MAX_REQUEST_LINE:
                    self._fail(414, "request line too long")
                    return
                lines: list[bytes] = []
                total = 0
                while True:
                    line = self.rfile.readline(MAX_HEADER_BYTES + 1)
                    total += len(line)
                    if total > MAX_HEADER_BYTES or len(lines) > MAX_HEADERS:
                        self._fail(431, "request headers too large")
                        return
                    lines.append(line)
                    if line in (b"\r\n", b"\n", b""):
                        break
                sock_file, self.rfile = self.rfile, io.BytesIO(b"".join(lines))
                try:
                    ok = self.parse_request()
                finally:
                    self.rfile = sock_file
                if not ok:
                    return
                if self.headers.get("Transfer-Encoding") or (self.headers.get("Content-Length") or "0") != "0":
                    self._fail(413, "request bodies are not accepted")
                    return
                if self.command != "GET":
                    self._refuse()
                    return
                self.do_GET()
                self.wfile.flush()
            except TimeoutError:
                self.close_connection = True

        def _fail(self, code: int, why: str) -> None:
            self.requestline = self.request_version = self.command = ""
            self.close_connection = True
            self.send_response(code)
            body = orjson.dumps({"error": why}) + b"\n"
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, orjson.dumps(obj) + b"\n")

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = self.path
            if len(path) > MAX_PATH:
                self._json(414, {"error": "path too long"})
                return
            path = path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._send(200, routes.metrics(), CONTENT_TYPE_METRICS)
                elif path in ("/healthz", "/health"):
                    ok, detail = routes.health()
                    self._json(200 if ok else 503, detail)
                elif path.startswith("/recommendations/"):
                    sid = unquote(path[len("/recommendations/"):])
                    if not valid_id(sid):
                        self._json(400, {"error": "invalid session id"})
                        return
                    recs = routes.recommendations(sid)
                    if recs is None:
                        self._json(404, {"error": "unknown session", "session_id": sid})
                    else:
                        self._json(200, recs)
                elif path == "/":
                    self._json(200, {"routes": ["/metrics", "/healthz", "/recommendations/<session_id>"]})
                else:
                    self._json(404, {"error": "not found"})
            except Exception:  # noqa: BLE001 - a bad request must not kill the server thread
                log.exception("error serving %s", path[:80])
                self._json(500, {"error": "internal error"})

        def _refuse(self) -> None:
            self.send_response(405)
            self.send_header("Allow", "GET")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

    return Handler


class _BoundedServer(ThreadingHTTPServer):
    """One thread per connection, at most ``MAX_CONNECTIONS`` at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class HttpServer:
    """A threaded HTTP server in a daemon thread."""

    def __init__(self, routes: Routes, port: int, host: str = "127.0.0.1") -> None:
        self.server = _BoundedServer((host, port), _handler(routes))
        self.server.request_queue_size = 64
        self.thread = threading.Thread(target=self.server.serve_forever, name="streamrec-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HttpServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
