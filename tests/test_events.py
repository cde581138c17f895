"""The event contract: every way an event can be wrong has its reason code."""

from __future__ import annotations

import orjson
import pytest

from stream.events import MAX_PAYLOAD_BYTES, REASONS, Event, Invalid, decode, parse_timestamp

GOOD = {"session_id": "s1", "item_id": "i1", "timestamp": 1396860669.277}


def enc(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_valid_minimal_and_full() -> None:
    assert decode(enc(GOOD)) == Event("s1", "i1", 1396860669.277)
    full = {**GOOD, "event_type": "purchase", "user_id": "u9", "category": "shoes", "price": 19.5}
    ev = decode(enc(full))
    assert ev == Event("s1", "i1", 1396860669.277, "purchase", "u9", "shoes", 19.5)
    assert decode(ev.to_json()) == ev  # round trip


def test_iso_timestamps() -> None:
    assert decode(enc({**GOOD, "timestamp": "2014-04-07T08:51:09.277Z"})).timestamp == pytest.approx(1396860669.277)
    assert decode(enc({**GOOD, "timestamp": "2014-04-07T10:51:09+02:00"})).timestamp == 1396860669.0
    assert parse_timestamp("2014-04-07 08:51:09") == 1396860669.0  # naive = UTC


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "too_large"),
        (b"\xff\xfe\x00", "not_utf8"),
        (b'{"session_id": "s1", "item_id"', "bad_json"),
        (b"NaN", "bad_json"),
        (b'{"session_id": "s", "item_id": "i", "timestamp": NaN}', "bad_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (enc({"item_id": "i", "timestamp": 1}), "missing_session_id"),
        (enc({"session_id": "s", "timestamp": 1}), "missing_item_id"),
        (enc({"session_id": "s", "item_id": "i"}), "missing_timestamp"),
        (enc({**GOOD, "session_id": 12}), "bad_session_id"),
        (enc({**GOOD, "session_id": ""}), "bad_session_id"),
        (enc({**GOOD, "session_id": "x" * 300}), "bad_session_id"),
        (enc({**GOOD, "session_id": "a\nb"}), "bad_session_id"),
        (enc({**GOOD, "item_id": ["i"]}), "bad_item_id"),
        (enc({**GOOD, "timestamp": "yesterday"}), "bad_timestamp"),
        (enc({**GOOD, "timestamp": -5}), "bad_timestamp"),
        (enc({**GOOD, "timestamp": 1e300}), "bad_timestamp"),
        (enc({**GOOD, "timestamp": True}), "bad_timestamp"),
        (enc({**GOOD, "event_type": "like"}), "bad_event_type"),
        (enc({**GOOD, "price": "cheap"}), "bad_field"),
        (enc({**GOOD, "price": -1}), "bad_field"),
        (enc({**GOOD, "user_id": 5}), "bad_field"),
        (enc({**GOOD, "category": ""}), "bad_field"),
    ],
)
def test_reason_codes(payload: bytes, reason: str) -> None:
    got = decode(payload)
    assert isinstance(got, Invalid)
    assert got.reason == reason
    assert got.reason in REASONS


def test_key_must_match_session() -> None:
    assert isinstance(decode(enc(GOOD), key=b"s1"), Event)
    assert decode(enc(GOOD), key=b"other").reason == "key_mismatch"


def test_every_reason_is_reachable() -> None:
    """No dead reason codes: each one above is produced by some input."""
    import inspect

    src = inspect.getsource(test_reason_codes) + inspect.getsource(test_key_must_match_session)
    params = str(test_reason_codes.pytestmark[0].args[1])  # type: ignore[attr-defined]
    for reason in REASONS:
        assert f"'{reason}'" in params or f'"{reason}"' in src, reason
