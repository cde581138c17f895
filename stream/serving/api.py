"""The request API a shop calls, over :class:`stream.serving.rules.Serving`.

* ``GET /recommendations/<session_id>?k=&category=&exclude=`` — the session's current list after
  the business rules; the body is the JSON list of item ids, the ``Streamrec-Fallback-Items``
  header says how many of them came from the popular fallback. 404 for an unknown session.
* ``POST /recommendations`` with ``{"items": [...], "k": 10, "category": ..., "exclude": [...]}``
  — the live model's list for a context it has not seen (a product page, a basket from another
  channel), without learning it: ``{"items": [...], "fallback": n}``.
* ``GET /items/<item_id>/similar?k=`` — items to show beside one item: the model's list for a
  one-click context. 404 for an item the worker has never seen.
* ``GET /openapi.json`` — the OpenAPI 3 document of all routes (:data:`OPENAPI`).

``exclude`` in a query string is a comma-separated list. Every bad request gets a 4xx with
``{"error": ..., "field": ...}`` naming the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from stream.events import MAX_CATEGORY_CHARS, valid_id
from stream.serving.http import Response, error, json_response
from stream.serving.rules import Serving, WouldWait

MAX_K = 200
MAX_ITEMS = 200  # items and exclude entries in one request
FALLBACK_HEADER = "Streamrec-Fallback-Items"


class BadRequest(Exception):
    def __init__(self, field: str, why: str, code: int = 400) -> None:
        super().__init__(why)
        self.field = field
        self.why = why
        self.code = code


def _k(value: Any, default: int) -> int:
    if value is None:
        return default
    if type(value) is str:
        if not value.isdigit() or len(value) > 6:
            raise BadRequest("k", f"k must be an integer from 1 to {MAX_K}")
        value = int(value)
    if type(value) is not int or not 1 <= value <= MAX_K:
        raise BadRequest("k", f"k must be an integer from 1 to {MAX_K}")
    return value


def _category(value: Any) -> str | None:
    if value is None:
        return None
    if not valid_id(value, MAX_CATEGORY_CHARS):
        raise BadRequest("category", "category must be a non-empty printable string")
    return value


def _ids(value: Any, field: str, required: bool = False) -> list[str]:
    if value is None:
        if required:
            raise BadRequest(field, f"{field} is required")
        return []
    if type(value) is not list:
        raise BadRequest(field, f"{field} must be a list of item ids")
    if len(value) > MAX_ITEMS:
        raise BadRequest(field, f"{field} holds more than {MAX_ITEMS} ids")
    for v in value:
        if not valid_id(v):
            raise BadRequest(field, f"{field} must hold non-empty printable strings of at most 256 characters")
    return value


def _query(qs: str) -> dict[str, str]:
    try:
        q = parse_qs(qs, keep_blank_values=True, strict_parsing=False, max_num_fields=16, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("query", "malformed query string") from None
    out = {}
    for name, vals in q.items():
        if name not in ("k", "category", "exclude"):
            raise BadRequest(name, f"unknown query parameter {name!r}"[:120])
        if len(vals) > 1:
            raise BadRequest(name, f"{name} given more than once")
        out[name] = vals[0]
    return out


class Api:
    """:class:`stream.serving.http.Handler` for the request API."""

    def __init__(self, serving: Serving) -> None:
        self.serving = serving
        self.k = serving.k

    @staticmethod
    def blocking(method: str, path: str) -> bool:
        """POST /recommendations and similar ask the live model, which may have to wait for a
        quiet moment."""
        route = path.partition("?")[0]
        return (method == "POST" and route == "/recommendations") or (
            route.startswith("/items/") and route.endswith("/similar"))

    def handle_now(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        """:meth:`handle` if it needs no waiting (the model is free, or its copy can be read at
        once, or the request is refused), else ``None``: the server then calls :meth:`handle` on
        a thread that may wait."""
        try:
            return self._route(method, path, headers, body, False)
        except WouldWait:
            return None

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        return self._route(method, path, headers, body, True)

    def _route(self, method: str, path: str, headers: Mapping[str, str], body: bytes, wait: bool) -> Response:
        route, _, qs = path.partition("?")
        try:
            if route == "/openapi.json":
                return self._only(method, "GET") or (200, {}, OPENAPI_BYTES)
            if route == "/recommendations":
                return self._only(method, "POST") or self._post(headers, body, qs, wait)
            if route.startswith("/recommendations/"):
                return self._only(method, "GET") or self._session(route[len("/recommendations/"):], qs)
            if route.startswith("/items/") and route.endswith("/similar"):
                return self._only(method, "GET") or self._similar(route[len("/items/"):-len("/similar")], qs, wait)
            return error(404, "not found", field="path")
        except BadRequest as e:
            return error(e.code, e.why, field=e.field)
        except TimeoutError:
            return error(503, "the model is busy; retry")

    @staticmethod
    def _only(method: str, allowed: str) -> Response | None:
        if method == allowed:
            return None
        return 405, {"Allow": allowed}, orjson.dumps({"error": "method not allowed", "field": "method"}) + b"\n"

    def _session(self, raw: str, qs: str) -> Response:
        sid = unquote(raw, errors="strict") if "%" in raw else raw
        if not valid_id(sid):
            raise BadRequest("session_id", "invalid session id")
        q = _query(qs)
        k = _k(q.get("k"), self.k)
        category = _category(q.get("category"))
        exclude = _exclude(q.get("exclude"))
        got = self.serving.session_list(sid, k, category, exclude)
        if got is None:
            return json_response(404, {"error": "unknown session", "field": "session_id", "session_id": sid})
        items, fb = got
        return json_response(200, items, {FALLBACK_HEADER: str(fb)})

    def _post(self, headers: Mapping[str, str], body: bytes, qs: str, wait: bool) -> Response:
        if qs:
            raise BadRequest("query", "POST /recommendations takes its parameters in the body")
        ctype = headers.get("Content-Type", "application/json").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise BadRequest("Content-Type", "the body must be application/json", 415)
        try:
            d = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("body", "the body is not valid JSON") from None
        if type(d) is not dict:
            raise BadRequest("body", "the body must be a JSON object")
        for name in d:
            if name not in ("items", "k", "category", "exclude"):
                raise BadRequest(str(name)[:64], f"unknown field {str(name)[:64]!r}")
        for name in ("k", "category", "exclude", "items"):
            if name in d and d[name] is None:
                raise BadRequest(name, f"{name} must not be null")
        items = _ids(d.get("items"), "items", required=True)
        k = _k(d.get("k"), self.k)
        category = _category(d.get("category"))
        exclude = set(_ids(d.get("exclude"), "exclude"))
        out, fb = self.serving.basket_list(items, k, category, exclude, wait)
        return json_response(200, {"items": out, "fallback": fb})

    def _similar(self, raw: str, qs: str, wait: bool) -> Response:
        item = unquote(raw, errors="strict") if "%" in raw else raw
        if not valid_id(item) or "/" in raw:
            raise BadRequest("item_id", "invalid item id")
        q = _query(qs)
        if "category" in q or "exclude" in q:
            raise BadRequest("category" if "category" in q else "exclude", "similar takes only k")
        k = _k(q.get("k"), self.k)
        got = self.serving.similar(item, k, wait)
        if got is None:
            return json_response(404, {"error": "unknown item", "field": "item_id", "item_id": item})
        items, fb = got
        return json_response(200, {"items": items, "fallback": fb})


def _exclude(value: str | None) -> set[str]:
    if value is None or value == "":
        return set()
    ids = value.split(",")
    return set(_ids(ids, "exclude"))


#: What the schema promises is accepted as an id (the server takes any printable string).
_ID = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[\\x20-\\x7e]+$"}
_CATEGORY = {"type": "string", "minLength": 1, "maxLength": MAX_CATEGORY_CHARS, "pattern": "^[\\x20-\\x7e]+$"}
_EXCLUDE = {"type": "string", "maxLength": 256, "pattern": "^([\\x20-\\x2b\\x2d-\\x7e]+(,[\\x20-\\x2b\\x2d-\\x7e]+)*)?$"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_ITEMS = {"type": "array", "items": {"type": "string"}}
_K = {"name": "k", "in": "query", "required": False,
      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K},
      "description": "list length (default: the worker's --k)"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


#: The OpenAPI 3 document served at ``/openapi.json``.
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "streamrec", "version": "1",
             "description": "Session-based recommendations with business rules, from a streamrec worker."},
    "paths": {
        "/recommendations/{session_id}": {"get": {
            "summary": "The session's current list after the business rules",
            "parameters": [
                {"name": "session_id", "in": "path", "required": True, "schema": _ID},
                _K,
                {"name": "category", "in": "query", "required": False, "schema": _CATEGORY},
                {"name": "exclude", "in": "query", "required": False, "schema": _EXCLUDE,
                 "description": "comma-separated item ids to leave out"},
            ],
            "responses": {
                "200": {"description": "item ids, best first",
                        "headers": {FALLBACK_HEADER: {"schema": {"type": "integer", "minimum": 0},
                                                      "description": "how many items came from the fallback"}},
                        "content": {"application/json": {"schema": _ITEMS}}},
                **_errors(400, 404, 405, 414),
            }}},
        "/recommendations": {"post": {
            "summary": "The live model's list for a context it has not learned (nothing is learned)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["items"],
                "properties": {
                    "items": {"type": "array", "maxItems": MAX_ITEMS, "items": _ID},
                    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                    "category": _CATEGORY,
                    "exclude": {"type": "array", "maxItems": MAX_ITEMS, "items": _ID},
                }}}}},
            "responses": {"200": {"description": "the list", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/List"}}}},
                **_errors(400, 405, 411, 413, 415, 503)}}},
        "/items/{item_id}/similar": {"get": {
            "summary": "Items to show beside one item",
            "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": _ID}, _K],
            "responses": {"200": {"description": "the list", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/List"}}}},
                **_errors(400, 404, 405, 414, 503)}}},
        "/healthz": {"get": {"summary": "Liveness and broker contact", "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
            "503": {"description": "degraded", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
    "components": {"schemas": {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}, "field": {"type": "string"}}},
        "List": {"type": "object", "required": ["items", "fallback"],
                 "properties": {"items": _ITEMS, "fallback": {"type": "integer", "minimum": 0}}},
    }},
}
OPENAPI_BYTES = orjson.dumps(OPENAPI)
