"""Operator actions over HTTP: ``/admin/status``, ``/admin/retrain``, ``/admin/promote``,
``/admin/acknowledge``.

Off unless the worker has an admin token (``--admin-token`` / ``STREAMREC_ADMIN_TOKEN``). Then
the worker opens a second listener for these routes only, on ``--admin-host`` (127.0.0.1 unless
told otherwise) and ``--admin-port``, so publishing the metrics and request API on 0.0.0.0
(containers) never publishes the admin routes with them; the public port answers 404 under
``/admin/`` either way.

Every request carries ``Authorization: Bearer <token>``, compared in constant time
(:func:`hmac.compare_digest`); none or a wrong one gets 401 before anything else is looked at.
The token is registered with :mod:`stream.kafka.redact`, so no log line shows it, and no response or
error quotes a header.

The actions belong to the drift monitor's lifecycle (:class:`Operator`, implemented by
``monitoring.drift.lifecycle.Lifecycle``), whose state only the worker's main loop may touch:
the handler, on an HTTP pool thread, hands each call to :class:`MainLoopCalls`, which the loop
drains between polls, and waits at most ``timeout_s`` for the answer (503 if it does not come).
An action is answered once the worker has run it and written a checkpoint (with ``--state-dir``),
so an acknowledged action survives a crash.

Bodies (``POST``, optional): a JSON object with ``reason`` (retrain, acknowledge) and ``by`` (who
acts, default ``operator``); unknown fields are refused. Answers are the lifecycle's status JSON;
errors are ``{"error": ..., "field": ...}`` (400 bad body, 401 token, 404 unknown route, 405 wrong
method, 409 nothing to promote or acknowledge, 503 the worker did not answer in time). Every answer
is counted in ``streamrec_admin_requests_total{action,code}``.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from stream.config import log_event
from stream.kafka import redact
from stream.serving.http import Response, error, json_response

log = logging.getLogger("streamrec.admin")

#: The admin listener's port unless ``--admin-port`` says otherwise (the metrics port + 1).
DEFAULT_ADMIN_PORT = 8001
#: How long a request waits for the main loop to run its action.
DEFAULT_TIMEOUT_S = 10.0
#: Shortest token accepted (e.g. ``openssl rand -hex 16`` gives 32 characters).
MIN_TOKEN_CHARS = 16
MAX_TEXT_CHARS = 200  # ``reason`` and ``by``

#: route -> (method, action name the log and the lifecycle use, fields its body may carry)
ROUTES: dict[str, tuple[str, str, frozenset[str]]] = {
    "/admin/status": ("GET", "status", frozenset()),
    "/admin/retrain": ("POST", "retrain", frozenset({"reason", "by"})),
    "/admin/promote": ("POST", "promote", frozenset({"by"})),
    "/admin/acknowledge": ("POST", "acknowledge", frozenset({"reason", "by"})),
}


class Operator(Protocol):
    """What the admin routes act on (``monitoring.drift.lifecycle.Lifecycle``); each method returns
    the new :meth:`status`. ``promote`` raises ``ValueError`` when there is nothing to promote."""

    def request_retrain(self, reason: str, by: str = "operator") -> dict[str, Any]: ...

    def promote(self, by: str = "operator") -> dict[str, Any]: ...

    def acknowledge(self, by: str = "operator", reason: str = "") -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


def check_token(token: str) -> str:
    """``token`` if it is usable as an admin token, else ``ValueError`` (the message never quotes it).

    >>> check_token("0123456789abcdef")
    '0123456789abcdef'
    >>> check_token("short")
    Traceback (most recent call last):
    ...
    ValueError: the admin token must be at least 16 characters (e.g. `openssl rand -hex 16`)
    """
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the admin token must be at least {MIN_TOKEN_CHARS} characters "
                         "(e.g. `openssl rand -hex 16`)")
    if not token.isascii() or not token.isprintable() or token != token.strip() or " " in token:
        raise ValueError("the admin token must be printable ASCII without spaces")
    return token


class WorkerStopped(RuntimeError):
    """The main loop has stopped and will not run the call."""


class MainLoopCalls:
    """Calls from other threads, run on the worker's main loop between polls.

    :meth:`call` queues a function and waits for the loop to run it (:meth:`run_pending`), at most
    ``timeout_s``; a call still queued then is withdrawn (``TimeoutError``), one already running is
    waited for. ``after`` (given to :meth:`run_pending`) runs once after a batch that changed
    something (a checkpoint), before the callers are answered.

    >>> calls = MainLoopCalls()
    >>> t = threading.Thread(target=lambda: print(calls.call(lambda: 6 * 7, mutates=False)))
    >>> t.start()
    >>> while not calls.pending: time.sleep(0.001)
    >>> calls.run_pending()
    1
    >>> t.join()
    42
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[list[Any]] = deque()
        self._closed = False

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    def call(self, fn: Callable[[], Any], timeout_s: float = DEFAULT_TIMEOUT_S, mutates: bool = True) -> Any:
        job: list[Any] = [fn, mutates, None, threading.Event()]
        with self._lock:
            if self._closed:
                raise WorkerStopped("the worker is stopping")
            self._queue.append(job)
        if not job[3].wait(timeout_s):
            with self._lock:
                if job in self._queue:
                    self._queue.remove(job)
                    raise TimeoutError(f"the worker did not run the call within {timeout_s:g} s")
            job[3].wait()  # taken meanwhile: it is running now
        ok, value = job[2]
        if not ok:
            raise value
        return value

    def run_pending(self, after: Callable[[], Any] | None = None) -> int:
        """Run the queued calls (on the main loop); returns how many ran."""
        with self._lock:
            jobs = list(self._queue)
            self._queue.clear()
        changed = False
        for job in jobs:
            try:
                job[2] = (True, job[0]())
                changed |= job[1]
            except Exception as e:  # noqa: BLE001 - handed to the waiting caller
                job[2] = (False, e)
        if changed and after is not None:
            try:
                after()
            except Exception as e:  # noqa: BLE001 - the action ran; say it may not be durable
                log_event(log, "checkpoint after an admin action failed", level=logging.ERROR, error=repr(e))
        for job in jobs:
            job[3].set()
        return len(jobs)

    def close(self) -> None:
        """Refuse further calls and fail the queued ones (the loop is stopping)."""
        with self._lock:
            self._closed = True
            jobs = list(self._queue)
            self._queue.clear()
        for job in jobs:
            job[2] = (False, WorkerStopped("the worker is stopping"))
            job[3].set()


class AdminHandler:
    """The ``/admin/`` routes (a :class:`stream.serving.http.Handler`), acting on ``operator()`` through
    ``calls``; ``operator`` returns ``None`` while there is no lifecycle (no drift monitor)."""

    def __init__(self, token: str, operator: Callable[[], Operator | None], calls: MainLoopCalls,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._token = check_token(token).encode("ascii")
        redact.register(token)
        self.operator = operator
        self.calls = calls
        self.timeout_s = timeout_s
        self.answered: dict[tuple[str, int], int] = {}  # (action, status code) -> requests
        self._count_lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        route = ROUTES.get(path.split("?", 1)[0])
        out = self._handle(route, method, headers, body)
        key = (route[1] if route is not None else "unknown", out[0])
        with self._count_lock:
            self.answered[key] = self.answered.get(key, 0) + 1
        return out

    def authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, presented = headers.get("Authorization", "").partition(" ")
        try:
            given = presented.strip().encode("ascii")
        except UnicodeEncodeError:
            given = b""
        ok = hmac.compare_digest(given, self._token)  # constant time in the token's content
        return ok and scheme.lower() == "bearer"

    def _handle(self, route: tuple[str, str, frozenset[str]] | None, method: str, headers: Mapping[str, str],
                body: bytes) -> Response:
        if not self.authorized(headers):
            code, h, b = error(401, "missing or wrong bearer token", field="Authorization")
            return code, {**h, "WWW-Authenticate": 'Bearer realm="streamrec-admin"'}, b
        if route is None:
            return error(404, "not found", field="path", routes=sorted(ROUTES))
        want, action, fields = route
        if method != want:
            return 405, {"Allow": want}, orjson.dumps({"error": "method not allowed", "field": "method"}) + b"\n"
        try:
            args = _body(body, fields, headers) if method == "POST" else {}
        except _Bad as bad:
            return error(400, bad.why, field=bad.field)
        op = self.operator()
        if op is None:
            return error(409, "drift monitoring is off (--on-drift off): there is no lifecycle to act on",
                         field="path")
        by = args.get("by", "operator")
        reason = args.get("reason", "")
        fn: Callable[[], dict[str, Any]]
        if action == "status":
            fn = op.status
        elif action == "retrain":
            fn = lambda: op.request_retrain(reason or "operator request", by=by)  # noqa: E731
        elif action == "promote":
            fn = lambda: op.promote(by=by)  # noqa: E731
        else:
            fn = lambda: op.acknowledge(by=by, reason=reason)  # noqa: E731
        t0 = time.monotonic()
        try:
            status = self.calls.call(fn, self.timeout_s, mutates=action != "status")
        except ValueError as e:  # the lifecycle's "not now" (e.g. nothing to promote)
            if action != "status":
                log_event(log, "admin action refused", level=logging.WARNING, action=action, by=by,
                          reason=reason, why=str(e))
            return error(409, str(e), field="challenger" if action == "promote" else "state")
        except (TimeoutError, WorkerStopped) as e:
            return error(503, str(e), field="worker")
        if action != "status":
            log_event(log, "admin action", action=action, by=by, reason=reason,
                      state=status.get("state"), retraining_due=status.get("retraining_due"),
                      ms=round((time.monotonic() - t0) * 1e3, 1))
        return json_response(200, status)


    def collector(self) -> Any:
        """``streamrec_admin_requests_total{action,code}``: the admin routes' answers (401s included),
        read at scrape time."""
        return _AdminCollector(self)


class _AdminCollector:
    def __init__(self, handler: AdminHandler) -> None:
        self.handler = handler

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        c = CounterMetricFamily("streamrec_admin_requests", "Admin route answers by action and status code "
                                "(401: no or a wrong token).", labels=["action", "code"])
        with self.handler._count_lock:
            items = sorted(self.handler.answered.items())
        for (action, code), n in items:
            c.add_metric([action, str(code)], n)
        yield c


class _Bad(Exception):
    def __init__(self, field: str, why: str) -> None:
        super().__init__(why)
        self.field = field
        self.why = why


def _body(body: bytes, fields: frozenset[str], headers: Mapping[str, str]) -> dict[str, str]:
    """The POST body's fields (empty body: none), each a short printable string."""
    if not body.strip():
        return {}
    ctype = headers.get("Content-Type", "application/json").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise _Bad("Content-Type", "send application/json")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Bad("body", "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise _Bad("body", "the body must be a JSON object")
    for k, v in doc.items():
        if k not in fields:
            raise _Bad(k, f"unknown field {k[:40]!r}; this route takes {sorted(fields) or 'no fields'}")
        if not isinstance(v, str) or not v.isprintable() or len(v) > MAX_TEXT_CHARS or (k == "by" and not v):
            raise _Bad(k, f"{k} must be a printable string of at most {MAX_TEXT_CHARS} characters")
    return doc
