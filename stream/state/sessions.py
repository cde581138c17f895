"""Live session state, bounded in time (event-time TTL) and in count (LRU cap)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

#: Sessions end after this much inactivity in event time (session-rec / T4R convention).
DEFAULT_TTL_S = 30 * 60.0
DEFAULT_MAX_SESSIONS = 200_000
DEFAULT_MAX_SESSION_ITEMS = 50


class Session:
    """One live session: its key, recent clicks and the list recommended after the last one."""

    __slots__ = ("key", "session_id", "items", "last_ts", "clicks", "last_recs", "started_ts")

    def __init__(self, key: int, session_id: str, ts: float) -> None:
        self.key = key
        self.session_id = session_id
        self.items: list[int] = []
        self.last_ts = ts
        self.started_ts = ts
        self.clicks = 0
        self.last_recs: list[int] = []

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, key={self.key}, items={self.items}, last_ts={self.last_ts})"


class SessionStore:
    """Maps session ids to :class:`Session`, evicting by inactivity and by count.

    Parameters
    ----------
    ttl_s
        A session that has been idle this long (event time) is over; its next click starts a
        new session. Expired sessions are swept lazily, oldest first.
    max_sessions
        Hard cap on live sessions; beyond it the least recently active one is evicted.
    max_session_items
        Only the most recent clicks of a session are kept (models look back a few steps).
    on_end
        Called with each session that ends (expired or evicted), e.g. to update drift stats.

    Examples
    --------
    >>> store = SessionStore(ttl_s=60, max_sessions=2)
    >>> a = store.touch("a", 0.0); b = store.touch("b", 10.0); a2 = store.touch("a", 20.0)
    >>> a2 is a, len(store)
    (True, 2)
    >>> c = store.touch("c", 30.0)  # over the cap: "b" was least recently active
    >>> sorted(store.ids())
    ['a', 'c']
    >>> store.touch("a", 200.0) is a  # idle 180 s > ttl: a new session
    False
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_session_items: int = DEFAULT_MAX_SESSION_ITEMS,
        on_end: Callable[[Session], None] | None = None,
    ) -> None:
        if ttl_s <= 0 or max_sessions < 1 or max_session_items < 1:
            raise ValueError("ttl_s, max_sessions and max_session_items must be positive")
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self.max_session_items = max_session_items
        self.on_end = on_end
        self._live: OrderedDict[str, Session] = OrderedDict()  # least recently active first
        self._next_key = 0
        self.watermark = 0.0  # the latest event time seen
        self.expired = 0
        self.evicted = 0
        self.started = 0

    def touch(self, session_id: str, ts: float) -> Session:
        """The live session for ``session_id`` at event time ``ts``, started if needed."""
        live = self._live
        if ts > self.watermark:
            self.watermark = ts
            if live and next(iter(live.values())).last_ts < ts - self.ttl_s:  # the oldest expired
                self._expire(ts)
        s = live.get(session_id)
        if s is not None:
            if ts - s.last_ts <= self.ttl_s:
                live.move_to_end(session_id)
                if ts > s.last_ts:
                    s.last_ts = ts
                return s
            self._end(live.pop(session_id), expired=True)
        s = Session(self._next_key, session_id, ts)
        self._next_key += 1
        self.started += 1
        live[session_id] = s
        if len(live) > self.max_sessions:
            self._end(live.popitem(last=False)[1], expired=False)
        return s

    def append(self, session: Session, item: int) -> None:
        """Record a click of ``item`` in ``session``, keeping the most recent clicks only."""
        items = session.items
        items.append(item)
        if len(items) > self.max_session_items:
            del items[0]
        session.clicks += 1

    def get(self, session_id: str) -> Session | None:
        return self._live.get(session_id)

    def discard(self, session_id: str) -> bool:
        """Forget a session without ending it (its partition moved to another worker)."""
        return self._live.pop(session_id, None) is not None

    def _expire(self, now: float) -> None:
        live = self._live
        horizon = now - self.ttl_s
        while live:
            s = next(iter(live.values()))
            if s.last_ts >= horizon:
                break
            live.popitem(last=False)
            self._end(s, expired=True)

    def _end(self, s: Session, expired: bool) -> None:
        if expired:
            self.expired += 1
        else:
            self.evicted += 1
        if self.on_end is not None:
            self.on_end(s)

    def ids(self) -> Iterator[str]:
        return iter(self._live)

    def sessions(self) -> Iterator[Session]:
        return iter(self._live.values())

    def __len__(self) -> int:
        return len(self._live)
