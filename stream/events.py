"""The click event contract: decoding and validation with a reason code for every failure.

A click on the wire is a JSON object::

    {"session_id": "s1", "item_id": "i9", "timestamp": 1396860669.277,
     "event_type": "view", "user_id": "u1", "category": "shoes", "price": 19.9}

``session_id``, ``item_id`` (strings) and ``timestamp`` (epoch seconds as a number, or an ISO-8601
string) are required; ``event_type`` (``view`` by default, ``cart``, ``purchase``), ``user_id``,
``category`` and ``price`` are optional. The Kafka key is the session id.

:func:`decode` never raises: it returns an :class:`Event` or an :class:`Invalid` carrying one of
the :data:`REASONS` codes, which become the ``reason`` label of
``streamrec_events_invalid_total`` and the ``error`` header of the dead-letter record.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, NamedTuple

import orjson

#: Explicit limits, so oversized input is refused by rule, not by running out of memory.
MAX_PAYLOAD_BYTES = 8192
MAX_ID_CHARS = 256
MAX_CATEGORY_CHARS = 256
#: Timestamps outside [1970, 2200) are refused.
MAX_TIMESTAMP = 7_258_118_400.0

EVENT_TYPES = ("view", "cart", "purchase")

#: Bound on a learning weight (``--event-weights``): a weight multiplies count increments.
MAX_EVENT_WEIGHT = 1000.0

#: Every way an event can be wrong.
REASONS = (
    "empty",  # zero-length message
    "too_large",  # payload over MAX_PAYLOAD_BYTES
    "not_utf8",  # bytes that are not UTF-8
    "bad_json",  # not parseable as JSON
    "not_object",  # JSON, but not an object
    "missing_session_id",
    "missing_item_id",
    "missing_timestamp",
    "bad_session_id",  # not a non-empty string (or is too long / has control characters)
    "bad_item_id",
    "bad_timestamp",  # wrong type, unparseable, NaN/inf, or out of range
    "bad_event_type",
    "bad_field",  # an optional field of the wrong type or size
    "key_mismatch",  # Kafka key present and different from session_id
)


class Event(NamedTuple):
    """One valid click."""

    session_id: str
    item_id: str
    timestamp: float
    event_type: str = "view"
    user_id: str | None = None
    category: str | None = None
    price: float | None = None

    def to_json(self) -> bytes:
        d: dict[str, Any] = {
            "session_id": self.session_id,
            "item_id": self.item_id,
            "timestamp": self.timestamp,
        }
        if self.event_type != "view":
            d["event_type"] = self.event_type
        if self.user_id is not None:
            d["user_id"] = self.user_id
        if self.category is not None:
            d["category"] = self.category
        if self.price is not None:
            d["price"] = self.price
        return orjson.dumps(d)


class Invalid(NamedTuple):
    """Why a message was refused; ``reason`` is one of :data:`REASONS`."""

    reason: str
    detail: str = ""


def valid_id(value: object, max_chars: int = MAX_ID_CHARS) -> bool:
    """A non-empty string of at most ``max_chars`` printable characters.

    >>> valid_id("s-1"), valid_id(""), valid_id("a\\nb"), valid_id(7), valid_id("x" * 300)
    (True, False, False, False, False)
    """
    return (
        type(value) is str
        and 0 < len(value) <= max_chars
        and value.isprintable()
    )


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds from a number or an ISO-8601 string; ``None`` if unusable.

    >>> parse_timestamp(1396860669.277)
    1396860669.277
    >>> parse_timestamp("2014-04-07T08:51:09Z")
    1396860669.0
    >>> parse_timestamp(float("nan")) is None, parse_timestamp(True) is None
    (True, True)
    """
    if type(value) is int or type(value) is float:
        ts = float(value)
    elif type(value) is str and 0 < len(value) <= 64:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            return None
        if dt.tzinfo is None:  # naive times are taken as UTC
            from datetime import timezone

            dt = dt.replace(tzinfo=timezone.utc)
        try:
            ts = dt.timestamp()
        except (OverflowError, OSError, ValueError):
            return None
    else:
        return None
    if not math.isfinite(ts) or ts < 0.0 or ts >= MAX_TIMESTAMP:
        return None
    return ts


def validate(obj: object, key: bytes | None = None) -> Event | Invalid:
    """Check a decoded JSON value against the contract."""
    if type(obj) is not dict:
        return Invalid("not_object", type(obj).__name__)
    sid = obj.get("session_id")
    if sid is None:
        return Invalid("missing_session_id")
    if not valid_id(sid):
        return Invalid("bad_session_id")
    iid = obj.get("item_id")
    if iid is None:
        return Invalid("missing_item_id")
    if not valid_id(iid):
        return Invalid("bad_item_id")
    raw_ts = obj.get("timestamp")
    if raw_ts is None:
        return Invalid("missing_timestamp")
    ts = parse_timestamp(raw_ts)
    if ts is None:
        return Invalid("bad_timestamp", repr(raw_ts)[:80])
    etype = obj.get("event_type", "view")
    if etype not in EVENT_TYPES:
        return Invalid("bad_event_type", repr(etype)[:80])
    uid = obj.get("user_id")
    if uid is not None and not valid_id(uid):
        return Invalid("bad_field", "user_id")
    cat = obj.get("category")
    if cat is not None:
        if type(cat) is int:
            cat = str(cat)
        if not valid_id(cat, MAX_CATEGORY_CHARS):
            return Invalid("bad_field", "category")
    price = obj.get("price")
    if price is not None:
        if type(price) not in (int, float) or not math.isfinite(price) or price < 0:
            return Invalid("bad_field", "price")
        price = float(price)
    if key is not None and key != sid.encode():
        return Invalid("key_mismatch")
    return Event(sid, iid, ts, etype, uid, cat, price)


def parse_event_weights(text: str | None) -> dict[str, float] | None:
    """``--event-weights``: ``"view=1,cart=3,purchase=5"`` -> a weight per event type.

    Types left out weigh 1. ``None`` when every weight is 1 (nothing to weight: the models learn
    as without the flag). A bad entry raises ``ValueError`` naming it.

    >>> parse_event_weights("view=1,purchase=5")
    {'view': 1.0, 'cart': 1.0, 'purchase': 5.0}
    >>> parse_event_weights("view=1") is None, parse_event_weights("") is None
    (True, True)
    >>> parse_event_weights("buy=2")
    Traceback (most recent call last):
    ...
    ValueError: --event-weights: unknown event type 'buy' (choose from view, cart, purchase)
    """
    weights = dict.fromkeys(EVENT_TYPES, 1.0)
    seen: set[str] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, raw = part.partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"--event-weights: {part!r} is not TYPE=WEIGHT (e.g. purchase=5)")
        if name not in EVENT_TYPES:
            raise ValueError(f"--event-weights: unknown event type {name!r} "
                             f"(choose from {', '.join(EVENT_TYPES)})")
        if name in seen:
            raise ValueError(f"--event-weights: {name}: given twice")
        seen.add(name)
        try:
            w = float(raw)
        except ValueError:
            w = math.nan
        if not (0.0 < w <= MAX_EVENT_WEIGHT):
            raise ValueError(f"--event-weights: {name}: weight must be a number in "
                             f"(0, {MAX_EVENT_WEIGHT:g}], got {raw.strip()!r}")
        weights[name] = w
    if all(w == 1.0 for w in weights.values()):
        return None
    return weights


def decode(value: bytes | None, key: bytes | None = None) -> Event | Invalid:
    """Decode and validate one Kafka message value. Never raises.

    >>> decode(b'{"session_id": "s1", "item_id": "i1", "timestamp": 10}')
    Event(session_id='s1', item_id='i1', timestamp=10.0, event_type='view', user_id=None, category=None, price=None)
    >>> decode(b'{"session_id": "s1"}').reason
    'missing_item_id'
    >>> decode(b'\\xff\\xfe').reason, decode(b"").reason, decode(b"[1]").reason
    ('not_utf8', 'empty', 'not_object')
    """
    if not value:
        return Invalid("empty")
    if len(value) > MAX_PAYLOAD_BYTES:
        return Invalid("too_large", str(len(value)))
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return Invalid("not_utf8")
        return Invalid("bad_json", str(exc)[:80])
    except Exception as exc:  # pragma: no cover - defensive: never let a payload kill the worker
        return Invalid("bad_json", type(exc).__name__)
    return validate(obj, key)
