"""Business rules: what a shop may be shown, applied to every list the worker serves or publishes.

The model ranks more items than a list holds (``ClickProcessor(fetch=...)``, ``--overfetch``);
:meth:`Rules.apply` drops, in this order (one module, about 400 lines, so the order is read in one
place):

1. items the catalogue marks unavailable or has deleted (:class:`stream.serving.catalog.Catalog`);
2. items outside the request's category (when it asks for one);
3. items the session has purchased (``event_type=purchase``), or every item it has clicked
   (``--exclude-seen``);
4. the denylist (``--denylist``);
5. the request's own ``exclude`` ids;

then keeps the first ``k`` and, if fewer are left, fills the list from the most clicked items
that pass the same rules (:class:`Popular`), counting how many came from that fallback. The
prequential metrics keep scoring the model's own (unfiltered) list; ``streamrec_served_hit_rate``
scores what the rules let through.

:class:`Serving` holds the per-session marks (purchases, the last served list), popularity and
the catalogue, and answers the request API (:mod:`stream.serving.api`); :class:`ModelGate` lets the HTTP
thread ask the live model without racing the worker's learning.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import numpy as np

from stream.events import EVENT_TYPES, Event
from stream.models.base import BatchModel
from stream.serving.catalog import Catalog, CatalogFollower

#: Sessions whose marks (purchases, last served list) are kept; the oldest are forgotten first.
MAX_MARKED_SESSIONS = 200_000
#: Fallback candidates kept ranked (refreshed at most every POPULAR_REFRESH_S).
POPULAR_TOP = 1_000
POPULAR_REFRESH_S = 2.0


class Popular:
    """Click counts per item int and the most clicked ones, for the fallback fill.

    >>> p = Popular()
    >>> p.add([3, 3, 1, 3, 1, 0]); p.top(refresh=True)[:3]
    [3, 1, 0]
    """

    def __init__(self, top: int = POPULAR_TOP) -> None:
        self.counts = np.zeros(1024, dtype=np.float64)
        self.n_top = top
        self._top: list[int] = []
        self._at = 0.0

    def add(self, items: Sequence[int]) -> None:
        if not items:
            return
        a = np.fromiter(items, dtype=np.int64, count=len(items))
        a = a[a >= 0]
        if a.size == 0:
            return
        need = int(a.max()) + 1
        if need > self.counts.size:
            grown = np.zeros(max(need, 2 * self.counts.size), dtype=np.float64)
            grown[: self.counts.size] = self.counts
            self.counts = grown
        np.add.at(self.counts, a, 1.0)

    def top(self, refresh: bool = False) -> list[int]:
        now = time.monotonic()
        if refresh or now - self._at > POPULAR_REFRESH_S or not self._top:
            c = self.counts
            m = min(self.n_top, int(np.count_nonzero(c)))
            if m:
                idx = np.argpartition(-c, m - 1)[:m]
                self._top = idx[np.lexsort((idx, -c[idx]))].tolist()
            self._at = now
        return self._top


class Rules:
    """The rules and their order (see the module docstring); pure, for any list of item ids.

    >>> from stream.serving.catalog import Catalog, ItemInfo
    >>> cat = Catalog(); cat.apply("b", ItemInfo(False)); cat.apply("c", ItemInfo(True, "shoes"))
    >>> r = Rules(cat, denylist={"d"})
    >>> r.apply(["a", "b", "c", "d", "e"], k=2, fallback=["f", "a", "g"])
    (['a', 'c'], 0)
    >>> r.apply(["a", "b", "c", "d", "e"], k=3, category="shoes", fallback=["f", "c", "g"])
    (['c'], 0)
    >>> r.apply(["a", "b"], k=3, purchased={"a"}, exclude={"f"}, fallback=["f", "g", "h"])
    (['g', 'h'], 2)
    """

    def __init__(self, catalog: Catalog | None = None, denylist: Collection[str] = (),
                 exclude_seen: bool = False) -> None:
        self.catalog = catalog
        self.denylist = frozenset(denylist)
        self.exclude_seen = exclude_seen

    def allowed(self, item: str, category: str | None, drop: Collection[str], exclude: Collection[str]) -> bool:
        cat = self.catalog
        if cat is not None:
            info = cat.items.get(item)
            if info is not None and not info.available:  # 1. unavailable or deleted
                return False
            if category is not None and (info is None or info.category != category):  # 2.
                return False
        elif category is not None:
            return False  # no catalogue: no item has a known category
        if item in drop:  # 3. purchased (or seen)
            return False
        if item in self.denylist:  # 4.
            return False
        return item not in exclude  # 5.

    def apply(self, items: Iterable[str], k: int, category: str | None = None,
              purchased: Collection[str] = (), seen: Collection[str] = (), exclude: Collection[str] = (),
              fallback: Iterable[str] = ()) -> tuple[list[str], int]:
        """The first ``k`` of ``items`` the rules allow, filled from ``fallback`` (same rules, no
        repeats); returns the list and how many came from ``fallback``."""
        drop: Collection[str] = purchased
        if self.exclude_seen and seen:
            drop = set(purchased) | set(seen) if purchased else seen
        ok = self.allowed
        out: list[str] = []
        for it in items:
            if ok(it, category, drop, exclude):
                out.append(it)
                if len(out) >= k:
                    return out, 0
        n = len(out)
        have = set(out)
        for it in fallback:
            if it not in have and ok(it, category, drop, exclude):
                out.append(it)
                have.add(it)
                if len(out) >= k:
                    break
        return out, len(out) - n


class WouldWait(Exception):
    """A query asked not to wait (``wait=False``) found the model busy and no copy to read."""


class ModelGate:
    """Serialises the HTTP thread's model queries with the worker's use of the model.

    The worker :meth:`hold` s the gate while the model (or its second thread) may be working and
    :meth:`release` s it once idle; at each point in between where the model is quiet it calls
    :meth:`serve`, which answers the queries queued meanwhile. :meth:`call` runs a query at once
    when the gate is free, else answers it ``meanwhile`` (a query that is safe beside the busy
    model, such as :meth:`~stream.models.base.BatchModel.recommend_concurrent`) if that can, else
    queues it and waits (at most ``timeout_s``); ``waited_at`` is when a query last had to queue,
    which the worker reads to open the gate more often meanwhile.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[list[Any]] = deque()
        self._qlock = threading.Lock()
        self.waited_at = -math.inf  # time.monotonic() of the last queued query

    def hold(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self.serve()
        self._lock.release()

    def serve(self) -> None:
        """Answer the queued queries (the caller holds the gate and the model is quiet)."""
        while self._queue:
            with self._qlock:
                if not self._queue:
                    return
                job = self._queue.popleft()
            self._run(job)

    @staticmethod
    def _run(job: list[Any]) -> None:
        fn, done = job[0], job[2]
        try:
            job[1] = (True, fn())
        except Exception as e:  # noqa: BLE001 - handed to the waiting caller
            job[1] = (False, e)
        done.set()

    def now(self, fn: Callable[[], Any], meanwhile: Callable[[], Any] | None = None) -> Any:
        """``fn()`` if the gate is free, else ``meanwhile()`` if given; ``None`` when neither
        answers without waiting (the caller then uses :meth:`call` where it may wait)."""
        if self._lock.acquire(blocking=False):
            try:
                return fn()
            finally:
                self._lock.release()
        return meanwhile() if meanwhile is not None else None

    def call(self, fn: Callable[[], Any], timeout_s: float = 5.0,
             meanwhile: Callable[[], Any] | None = None) -> Any:
        if self._lock.acquire(blocking=False):
            try:
                return fn()
            finally:
                self._lock.release()
        if meanwhile is not None:
            got = meanwhile()
            if got is not None:
                return got
        job: list[Any] = [fn, None, threading.Event()]
        with self._qlock:
            self._queue.append(job)
        self.waited_at = now = time.monotonic()
        deadline = now + timeout_s
        while not job[2].wait(0.002):
            if self._lock.acquire(blocking=False):  # freed meanwhile: run it here if still queued
                try:
                    with self._qlock:
                        mine = job in self._queue
                        if mine:
                            self._queue.remove(job)
                    if mine:
                        self._run(job)
                finally:
                    self._lock.release()
                break
            if time.monotonic() > deadline:
                with self._qlock:
                    if job in self._queue:
                        self._queue.remove(job)
                        raise TimeoutError("the model stayed busy")
        job[2].wait()
        ok, value = job[1]
        if not ok:
            raise value
        return value


class _Marks:
    """Per-session purchases and last served list, for at most ``cap`` sessions."""

    def __init__(self, cap: int = MAX_MARKED_SESSIONS) -> None:
        self.cap = cap
        self.purchased: dict[str, set[str]] = {}
        self.served: dict[str, list[str]] = {}
        self.ranked: dict[str, list[int]] = {}  # the model's own last list (shared with the session)

    def purchase(self, sid: str, item: str) -> None:
        s = self.purchased.get(sid)
        if s is None:
            if len(self.purchased) >= self.cap:
                del self.purchased[next(iter(self.purchased))]
            s = self.purchased[sid] = set()
        s.add(item)

    def serve(self, sid: str, items: list[str]) -> list[str] | None:
        """Record the list served to ``sid``; returns the one before."""
        return self._swap(self.served, sid, items)

    def rank(self, sid: str, recs: list[int]) -> list[int] | None:
        """Record the model's list for ``sid``; returns the one before."""
        return self._swap(self.ranked, sid, recs)

    def _swap(self, d: dict[str, Any], sid: str, value: Any) -> Any:
        prev = d.pop(sid, None)
        if prev is None and len(d) >= self.cap:
            del d[next(iter(d))]
        d[sid] = value
        return prev


class Serving:
    """The rules applied to a worker's lists, with what they need: catalogue, per-session marks,
    popularity, served hit rate.

    ``k`` is the length of a served or published list (the processor's ``k``); the processor's
    ``fetch`` (>= k) is how many the model ranks for the rules to filter.
    """

    def __init__(self, processor: Any, catalog: Catalog | None = None, denylist: Collection[str] = (),
                 exclude_seen: bool = False, follower: CatalogFollower | None = None,
                 max_sessions: int = MAX_MARKED_SESSIONS) -> None:
        self.processor = processor
        self.k = processor.k
        self.catalog = catalog
        self.rules = Rules(catalog, denylist, exclude_seen)
        self.follower = follower
        self.marks = _Marks(max_sessions)
        self.popular = Popular()
        self.gate = ModelGate()
        self.served_predictions = 0
        self.served_hits = 0
        self.type_predictions = dict.fromkeys(EVENT_TYPES, 0)
        self.type_hits = dict.fromkeys(EVENT_TYPES, 0)

    # -- the worker's side ----------------------------------------------------------------------

    def poll_catalog(self) -> int:
        return self.follower.poll() if self.follower is not None else 0

    def fallback(self) -> list[str]:
        return self.processor.items.names(self.popular.top())

    def publish(self, events: Sequence[Event], lists: Sequence[list[int]]) -> list[list[str]]:
        """The served list of each click of a processed run (in order), with the session marks,
        popularity and ``streamrec_served_hit_rate`` updated."""
        proc = self.processor
        names, get = proc.items.names, proc.items.get
        ints = [get(e.item_id) for e in events]
        self.popular.add([i for i in ints if i is not None])
        marks, apply, k = self.marks, self.rules.apply, self.k
        fb = self.fallback()
        out = []
        tp, th = self.type_predictions, self.type_hits
        for ev, item, recs in zip(events, ints, lists, strict=True):
            sid = ev.session_id
            before = marks.rank(sid, recs)
            if before is not None:  # HR@k of the model's list by the event type of the scored click
                et = ev.event_type
                tp[et] += 1
                th[et] += item is not None and item in before[:k]
            if ev.event_type == "purchase":
                marks.purchase(sid, ev.item_id)
            seen = None
            if self.rules.exclude_seen:
                s = proc.sessions.get(sid)
                seen = names([i for i in s.items if i >= 0]) if s is not None else ()
            served, _ = apply(names(recs), k, purchased=marks.purchased.get(sid, ()), seen=seen or (),
                              fallback=fb)
            prev = marks.serve(sid, served)
            if prev is not None:
                self.served_predictions += 1
                self.served_hits += ev.item_id in prev
            out.append(served)
        return out

    # -- the request API's side -----------------------------------------------------------------

    def session_list(self, sid: str, k: int, category: str | None = None,
                     exclude: Collection[str] = ()) -> tuple[list[str], int] | None:
        """The rules over the session's last ranked list, or ``None`` for an unknown session."""
        proc = self.processor
        s = proc.sessions.get(sid)
        if s is None:
            return None
        recs = s.last_recs
        seen = proc.items.names([i for i in s.items if i >= 0]) if self.rules.exclude_seen else ()
        return self.rules.apply(proc.items.names(recs or []), k, category,
                                self.marks.purchased.get(sid, ()), seen, exclude, self.fallback())

    def basket_list(self, items: Sequence[str], k: int, category: str | None = None,
                    exclude: Collection[str] = (), wait: bool = True) -> tuple[list[str], int]:
        """The live model's list for a context it has not learned (``items``, oldest first),
        without learning it; the clicked items count as seen. With ``wait=False``, raises
        :class:`WouldWait` if the answer would have to wait for the model."""
        proc = self.processor
        ints = [i for i in (proc.items.get(x) for x in items) if i is not None and i >= 0]
        fetch = max(proc.fetch, k + proc.fetch - proc.k)
        ts = time.time()

        def ask() -> list[int]:
            model = proc.model
            return model.recommend(ints, ts, fetch, None) if ints else []

        model = proc.model
        meanwhile = None
        if ints and isinstance(model, BatchModel):  # while a run computes, from its copy of the index
            def meanwhile() -> list[int] | None:
                return model.recommend_concurrent(ints, ts, fetch, wait)

        if wait:
            recs = self.gate.call(ask, meanwhile=meanwhile)
        else:
            recs = self.gate.now(ask, meanwhile)
            if recs is None:
                raise WouldWait
        seen = items if self.rules.exclude_seen else ()
        return self.rules.apply(proc.items.names(recs), k, category, (), seen, exclude, self.fallback())

    def similar(self, item: str, k: int, wait: bool = True) -> tuple[list[str], int] | None:
        """Items to show beside ``item``: the model's list for a one-click context (``wait`` as
        in :meth:`basket_list`), or ``None`` for an item never seen."""
        if self.processor.items.get(item) is None:
            return None
        return self.basket_list([item], k, exclude={item}, wait=wait)


def load_denylist(path: str | None) -> frozenset[str]:
    """One item id a line (blank lines and ``#`` comments skipped)."""
    if not path:
        return frozenset()
    with open(path, encoding="utf-8") as f:
        return frozenset(ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#"))


class ServingCollector:
    """``streamrec_catalog_*``, ``streamrec_served_hit_rate`` and the prequential hit rate by event
    type, read at scrape time (nothing on the per-click path)."""

    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.serving
        g = GaugeMetricFamily("streamrec_served_hit_rate",
                              "Share of served lists (after the business rules) holding the session's "
                              "next click.", labels=["k"])
        g.add_metric([str(s.k)], s.served_hits / s.served_predictions if s.served_predictions else 0.0)
        yield g
        t = GaugeMetricFamily("streamrec_prequential_hit_rate_by_event_type",
                              "Prequential HR@k of the model's list by the event type of the scored click.",
                              labels=["k", "event_type"])
        for et in EVENT_TYPES:
            n = s.type_predictions[et]
            t.add_metric([str(s.k), et], s.type_hits[et] / n if n else 0.0)
        yield t
        if s.catalog is not None:
            avail, unavail = s.catalog.counts()
            c = GaugeMetricFamily("streamrec_catalog_items", "Items in the catalogue by state.", labels=["state"])
            c.add_metric(["available"], avail)
            c.add_metric(["unavailable"], unavail)
            yield c
            u = CounterMetricFamily("streamrec_catalog_updates", "Catalogue records applied.")
            u.add_metric([], s.catalog.updates)
            yield u
            if s.follower is not None:
                b = CounterMetricFamily("streamrec_catalog_invalid", "Catalogue records refused (dead-lettered).",
                                        labels=["reason"])
                for why, n in sorted(s.follower.bad.items()):
                    b.add_metric([why], n)
                yield b
