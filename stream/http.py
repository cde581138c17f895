"""The worker's small HTTP surface: ``/metrics``, ``/healthz``, ``/recommendations/<session_id>``.

GET only; request line and path length are bounded; session ids are validated like event ids.
Binds to 127.0.0.1 unless told otherwise (the container sets 0.0.0.0).
"""

from __future__ import annotations

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

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
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

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def _refuse(self) -> None:
            self.send_response(405)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    return Handler


class HttpServer:
    """A threaded HTTP server in a daemon thread."""

    def __init__(self, routes: Routes, port: int, host: str = "127.0.0.1") -> None:
        self.server = ThreadingHTTPServer((host, port), _handler(routes))
        self.server.daemon_threads = True
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
