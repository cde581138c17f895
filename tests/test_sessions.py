"""Session store bounds: TTL in event time, LRU cap, per-session item cap."""

from __future__ import annotations

from stream.state.items import OVERFLOW, ItemIndex
from stream.state.sessions import SessionStore


def test_ttl_ends_idle_sessions_in_event_time() -> None:
    ended = []
    store = SessionStore(ttl_s=100, on_end=ended.append)
    a = store.touch("a", 0.0)
    store.touch("b", 50.0)
    assert store.touch("a", 99.0) is a  # within the TTL of its last click
    store.touch("c", 250.0)  # advancing event time sweeps idle sessions
    assert sorted(store.ids()) == ["c"]
    assert [s.session_id for s in ended] == ["b", "a"]
    assert store.expired == 2 and store.evicted == 0
    a2 = store.touch("a", 260.0)
    assert a2 is not a and a2.key != a.key  # a new session with a new key


def test_cap_evicts_least_recently_active() -> None:
    store = SessionStore(ttl_s=1e9, max_sessions=3)
    for i in range(10):
        store.touch(f"s{i}", float(i))
    store.touch("s7", 10.0)
    store.touch("x", 11.0)
    assert len(store) == 3
    assert set(store.ids()) == {"s9", "s7", "x"}
    assert store.evicted == 8


def test_session_item_cap_keeps_recent_clicks() -> None:
    store = SessionStore(max_session_items=3)
    s = store.touch("a", 0.0)
    for item in range(5):
        store.append(s, item)
    assert s.items == [2, 3, 4] and s.clicks == 5


def test_hostile_session_ids_stay_bounded() -> None:
    store = SessionStore(ttl_s=1e9, max_sessions=1000)
    for i in range(50_000):
        store.touch(f"attacker-{i}", float(i))
    assert len(store) == 1000


def test_item_index_cap() -> None:
    idx = ItemIndex(max_items=100)
    ids = [idx.intern(f"i{n}") for n in range(150)]
    assert ids[:100] == list(range(100))
    assert set(ids[100:]) == {OVERFLOW}
    assert len(idx) == 100 and idx.overflowed == 50
