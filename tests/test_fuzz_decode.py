"""Fuzz the decode/validate path: no byte sequence crashes it, and what it accepts obeys the limits."""

from __future__ import annotations

import math

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.events import (
    EVENT_TYPES,
    MAX_CATEGORY_CHARS,
    MAX_ID_CHARS,
    MAX_PAYLOAD_BYTES,
    MAX_TIMESTAMP,
    REASONS,
    Event,
    Invalid,
    decode,
    valid_id,
)

FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(result: object) -> None:
    assert type(result) in (Event, Invalid)
    if type(result) is Invalid:
        assert result.reason in REASONS
        return
    ev: Event = result  # type: ignore[assignment]
    assert valid_id(ev.session_id) and valid_id(ev.item_id)
    assert len(ev.session_id) <= MAX_ID_CHARS and len(ev.item_id) <= MAX_ID_CHARS
    assert math.isfinite(ev.timestamp) and 0 <= ev.timestamp < MAX_TIMESTAMP
    assert ev.event_type in EVENT_TYPES
    assert ev.category is None or len(ev.category) <= MAX_CATEGORY_CHARS
    assert ev.price is None or (math.isfinite(ev.price) and ev.price >= 0)


@FUZZ
@given(st.binary(max_size=512), st.one_of(st.none(), st.binary(max_size=64)))
def test_arbitrary_bytes_never_crash(value: bytes, key: bytes | None) -> None:
    check(decode(value, key))


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
json_values = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                              st.dictionaries(st.text(max_size=8), c, max_size=4)),
                           max_leaves=12)
field_values = st.one_of(json_values, st.text(max_size=300), st.floats(0, 8e9), st.sampled_from(EVENT_TYPES))


@FUZZ
@given(st.dictionaries(st.sampled_from(["session_id", "item_id", "timestamp", "event_type", "user_id",
                                        "category", "price", "extra"]), field_values, max_size=8))
def test_event_shaped_objects(obj: dict) -> None:
    """Objects with the contract's field names and hostile values: valid or a reason, never a crash."""
    try:
        raw = orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        raw = repr(obj).encode()
    check(decode(raw))
    check(decode(raw, b"some-key"))


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, 200))
def test_mutated_valid_messages(noise: bytes, at: int) -> None:
    """A valid message with bytes spliced in (truncation, corruption)."""
    good = Event("s1", "i1", 1.5e9, "cart", "u1", "shoes", 9.5).to_json()
    at = min(at, len(good))
    check(decode(good[:at] + noise + good[at:]))
    check(decode(good[:at]))


def test_explicit_limits_refuse_oversized_input() -> None:
    big = orjson.dumps({"session_id": "s" * 100_000, "item_id": "i", "timestamp": 1})
    assert decode(big) == Invalid("too_large", str(len(big)))
    long_id = orjson.dumps({"session_id": "s" * (MAX_ID_CHARS + 1), "item_id": "i", "timestamp": 1})
    assert len(long_id) <= MAX_PAYLOAD_BYTES
    assert decode(long_id).reason == "bad_session_id"
    assert decode(b"[" * 4000 + b"]" * 4000).reason in ("bad_json", "not_object")  # deep nesting
    assert decode(b'{"session_id": "s", "item_id": "i", "timestamp": 1e999}').reason in ("bad_json",
                                                                                        "bad_timestamp")
