"""The incremental neighbour index shared by the session-kNN models (SKNN, V-SKNN, STAN, VSTAN).

Why one long module: the index, the model skeleton and the batch plan share private array
layouts that the compiled kernel reads positionally; split apart, each part would export them.

State, updated exactly on every click (``SessionIndex.add``, O(1) amortised):

* per session: an ``item -> last click position`` dict (the session's distinct items in first-seen
  order; positions count repeated clicks, as session-rec's item lists do), its click count, its last
  event timestamp and its number of distinct items (numpy arrays, grown geometrically);
* per item: a posting list of the sessions that contain it (a segment of one flat ``int32`` store),
  appended in place, grown geometrically and cut back to its ``max_item_sessions`` most recent
  entries when it reaches twice that length (only the most recent sessions can win "recent"
  sampling, so a cap >= ``sample_size`` loses nothing when sessions arrive in time order);
* per item: its event count, and the number of sessions seen, for IDF computed on demand as
  ``ln(#sessions / #events with i)`` (session-rec quirk Q3: the denominator counts events).

Memory is bounded: at most ``max_sessions`` sessions (when a new one would exceed it, the least
recently active 5% are evicted at once, their entries removed from the posting lists: amortised,
and a batch of clicks then runs on for thousands of new sessions before the next eviction), at most ``max_session_items`` distinct items per session
(later new items of a full session are ignored) and at most ``2 * max_item_sessions`` entries per
posting list.

Learning weights per event type (``--event-weights``, :class:`~stream.models.base.WeightsClicks`)
are not applied here: a session's items are a set with last positions, and its neighbours' votes
are session-rec's similarity formulas, with no click count for a weight to multiply short of
changing the formulas (and the compiled batch path). A purchase therefore enters the index as a
view does.

Two query paths, same results. With numba importable (and ``STREAMREC_KNN_KERNEL`` not ``0``),
the query runs in one call of the compiled kernel :mod:`stream.models.knn.kernel`: one pass over
the session items' posting lists with a per-slot marker (candidates and weighted overlaps), "recent"
sampling, the similarity, a heap for the top-``k`` neighbours, per-item sums in a dense reusable
accumulator with a touched list, and a heap for the top items. Otherwise (and as the reference in
the tests) every step is a handful of whole-array numpy calls: candidates are the concatenated
posting lists, the overlap one ``np.bincount`` with weights, sampling a ``np.partition`` on the
candidates' timestamps, item scores another ``bincount``, the top list ``partition`` + ``lexsort``.
Both use one total order for every selection (neighbours by similarity, then session time, then
slot; sampling by time, then slot; items by score, then the smaller item int) and keep candidates in
first-appearance order (so the item scores add up in the same order), so they return the same
neighbours, scores (to the last bits of ``exp``/``log``) and rankings. The kernel answers a query
several times faster than the numpy path (``streamrec evaluate`` prints both). It compiles once,
cached on disk next to the module, on the model's first ``learn_one``.

Posting lists live in one flat ``int32`` store (per item: start, length, capacity): a full list
moves to the tail with twice the room, and is cut back to its ``max_item_sessions`` most recent
entries when it reaches twice that; the store is compacted when its tail fills.

Each session owns a segment of one flat ``(2, n)`` ``int32`` array (items, last positions): a full segment
moves to the tail with twice the room and the store is compacted when it fills, so gathering the
top-``k`` neighbours' items is a single fancy index. Candidate sessions are deduplicated through a
persistent slot scratch array in O(#candidates), never O(#sessions).

:class:`KNNModel` is the common skeleton of the four models; each model only supplies its position
weights, its similarity and its per-neighbour item contributions.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from time import monotonic as _monotonic
from time import perf_counter
from types import ModuleType

import numpy as np

from stream.models.base import DEFAULT_K, BatchModel, ScoringModel
from stream.models.pop import PopularityCounts, fill

_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F = np.empty(0, dtype=np.float64)
_EMPTY_I32 = np.empty(0, dtype=np.int32)
_UNSET = object()
#: Query position weights of :func:`stream.models.knn.kernel.query_history` (``W_*`` there):
#: none, STAN's exponential, V-SKNN's ``position_weight`` by name.
WEIGHT_KINDS = {None: 0, "exp": 1, "div": 2, "quadratic": 3, "linear": 4, "log": 5, "same": 0}
#: The family's default memory caps: indexed sessions, and clicks kept per indexed session.
MAX_SESSIONS = 50_000
MAX_SESSION_ITEMS = 100


class SessionIndex:
    """Item -> recent sessions index with session timestamps and IDF counts.

    Parameters
    ----------
    max_sessions
        Sessions kept; when a new one would exceed it, the least recently active
        ``max(1, max_sessions // 20)`` (5%) are evicted.
    max_session_items
        Distinct items stored per session; new items of a full session are ignored.
    max_item_sessions
        Posting-list length kept per item (the most recent sessions; a list is compacted back to
        this length when it reaches twice it).

    Examples
    --------
    >>> ix = SessionIndex()
    >>> for s, i, t in [(1, 10, 0.0), (1, 11, 1.0), (2, 11, 2.0), (2, 12, 3.0), (2, 11, 4.0)]:
    ...     ix.add(s, i, t)
    >>> slots, overlap = ix.overlap(np.array([11, 12]), None, -1)
    >>> [ix.key(s) for s in slots.tolist()], overlap.tolist()
    ([1, 2], [1.0, 2.0])
    >>> ix.session_items(2)
    {11: 3, 12: 2}
    >>> round(float(ix.idf(np.array([11]))[0]), 4)   # ln(2 sessions / 3 events)
    -0.4055
    """

    def __init__(
        self, max_sessions: int = MAX_SESSIONS, max_session_items: int = MAX_SESSION_ITEMS, max_item_sessions: int = 5_000
    ) -> None:
        if max_sessions < 1 or max_session_items < 1 or max_item_sessions < 1:
            raise ValueError("max_sessions, max_session_items and max_item_sessions must be >= 1")
        self.max_sessions = max_sessions
        self.max_session_items = max_session_items
        self.max_item_sessions = max_item_sessions
        # sessions
        self._slot: dict[int, int] = {}
        self._keys: list[int] = []
        self._items: list[dict[int, int]] = []  # item -> index in the session's segment
        self._clicks: list[int] = []
        self._free: list[int] = []
        self._lru: OrderedDict[int, None] = OrderedDict()
        self.time = np.zeros(1024, dtype=np.float64)
        self.n_unique = np.zeros(1024, dtype=np.int64)
        self._scratch = np.zeros(1024, dtype=np.int64)  # slot -> compact candidate id
        self.mark = np.zeros(1024, dtype=np.int64)  # the compiled kernel's marker, 0 between queries
        # segmented store: slot s owns flat[:, start[s] : start[s] + capa[s]], n_unique[s] used
        self._start = np.zeros(1024, dtype=np.int64)
        self._capa = np.zeros(1024, dtype=np.int64)
        self._flat = np.zeros((2, 4096), dtype=np.int32)  # rows: item, last click position
        self._tail = 0
        self._garbage = 0
        # items: posting list of item i = pflat[pstart[i] : pstart[i] + plen[i]] (capacity pcap[i])
        self._n_items = 0
        self._pstart = np.zeros(1024, dtype=np.int64)
        self._plen = np.zeros(1024, dtype=np.int64)
        self._pcap = np.zeros(1024, dtype=np.int64)
        self._pflat = np.zeros(8192, dtype=np.int32)
        self._ptail = 0
        self.events = np.zeros(1024, dtype=np.float64)
        self.n_sessions_seen = 0
        self.n_events = 0

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._flat.dtype != np.int32:  # a checkpoint written while the store was int64
            self._flat = self._flat.astype(np.int32)

    # -- updates -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot)

    def add(self, session: int, item: int, timestamp: float) -> None:
        """Record that ``session`` clicked ``item`` at ``timestamp`` (event time)."""
        slot, j, c, new = self._book(session, item)
        if timestamp > self.time[slot]:
            self.time[slot] = timestamp
        if new:
            at = self._start[slot] + j
            self._flat[0, at] = item
            self._flat[1, at] = c
            self.n_unique[slot] = j + 1
            self._post_append(item, slot)
        elif j >= 0:
            self._flat[1, self._start[slot] + j] = c
        if item >= len(self.events):
            self.events = _grow(self.events, item + 1)
        self.events[item] += 1.0
        self.n_events += 1

    def _book(self, session: int, item: int) -> tuple[int, int, int, bool]:
        """The Python side of :meth:`add` (shared with :meth:`plan_batch`): the session's slot
        (a new one if needed, LRU order kept), its click count after this click, the item's index
        in its segment (-1 when the segment is full) and whether the item is new to it (the
        segment then has room for it)."""
        slot = self._slot.get(session)
        if slot is None:
            slot = self._new_slot(session)
            self.n_sessions_seen += 1
        else:
            self._lru.move_to_end(slot)
        c = self._clicks[slot] + 1
        self._clicks[slot] = c
        d = self._items[slot]
        j = d.get(item)
        if j is not None:
            return slot, j, c, False
        j = len(d)
        if j >= self.max_session_items:
            return slot, -1, c, False
        d[item] = j
        if j == self._capa[slot]:
            self._relocate(slot, j)
        return slot, j, c, True

    def plan_batch(
        self, keys: Sequence[int], items: Sequence[int], learn: Sequence[bool], lo: int, hi: int
    ) -> tuple[int, tuple[np.ndarray, ...]]:
        """:meth:`add`'s bookkeeping for clicks ``lo ..`` (those with ``learn[t]``), their array
        writes left to :func:`~stream.models.knn.kernel.learn_query_batch`; every capacity those
        writes need is grown here. Stops before a click that would evict a session (after ``lo``
        only: the eviction rewrites posting lists, so it runs between two batch calls, at the
        click where :meth:`add` would do it). Returns the end of the planned run and, per click,
        the kernel's slot, segment index, click count, new-item and learn flags, the query's
        excluded slot and the sessions seen (IDF)."""
        slot_of, full = self._slot, self.max_sessions
        slots: list[int] = []
        js: list[int] = []
        cs: list[int] = []
        news: list[bool] = []
        learns: list[bool] = []
        exclude: list[int] = []
        nss: list[int] = []
        adds: dict[int, int] = {}
        top = -1
        t = lo
        while t < hi:
            key = keys[t]
            if learn[t]:
                if t > lo and key not in slot_of and len(slot_of) >= full:
                    break
                it = items[t]
                slot, j, c, new = self._book(key, it)
                if new:
                    adds[it] = adds.get(it, 0) + 1
                if it > top:
                    top = it
                slots.append(slot)
                js.append(j)
                cs.append(c)
                news.append(new)
                learns.append(True)
                exclude.append(slot)
            else:
                slots.append(0)
                js.append(0)
                cs.append(0)
                news.append(False)
                learns.append(False)
                exclude.append(slot_of.get(key, -1))
            nss.append(self.n_sessions_seen)
            t += 1
        self.n_events += sum(learns)
        self._reserve_postings(adds, top)
        i64 = np.int64
        return t, (np.array(slots, dtype=i64), np.array(js, dtype=i64), np.array(cs, dtype=i64),
                   np.array(news, dtype=np.bool_), np.array(learns, dtype=np.bool_),
                   np.array(exclude, dtype=i64), np.array(nss, dtype=np.float64))

    def _reserve_postings(self, adds: dict[int, int], top: int) -> None:
        """Room for ``adds[item]`` more entries in each posting list (a list at twice the cap is
        cut back in place by the kernel) and per-item arrays up to item ``top``."""
        if top < 0:
            return
        self._grow_postings(top)
        if top >= self.events.size:
            self.events = _grow(self.events, top + 1)
        two_cap = 2 * self.max_item_sessions
        n_items = self._n_items
        self._n_items = max(n_items, top + 1)  # so a compaction keeps this run's new lists too
        for it, a in adds.items():
            n = int(self._plen[it])
            need = min(n + a, two_cap)
            if self._pcap[it] < need:
                self._move_postings(it, n, min(max(8, 2 * need), two_cap))
        self._n_items = n_items  # the kernel raises it as the first entries land

    def _new_slot(self, session: int) -> int:
        if len(self._slot) >= self.max_sessions:  # the least recently active
            self._evict([self._lru.popitem(last=False)[0] for _ in range(max(1, self.max_sessions // 20))])  # 5%
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = session
            self._items[slot] = {}
            self._clicks[slot] = 0
        else:
            slot = len(self._keys)
            self._keys.append(session)
            self._items.append({})
            self._clicks.append(0)
            if slot >= len(self.time):
                self.time = _grow(self.time, slot + 1)
                self.n_unique = _grow(self.n_unique, slot + 1)
                self._scratch = _grow(self._scratch, slot + 1)
                self.mark = _grow(self.mark, slot + 1)
                self._start = _grow(self._start, slot + 1)
                self._capa = _grow(self._capa, slot + 1)
        self.time[slot] = -np.inf
        self.n_unique[slot] = 0
        self._capa[slot] = 0
        self._slot[session] = slot
        self._lru[slot] = None
        return slot

    def _evict(self, slots: list[int]) -> None:
        """Forget the sessions in ``slots``: their posting entries (each list filtered once),
        then their slots (freed for reuse)."""
        pflat, pstart, plen = self._pflat, self._pstart, self._plen
        gone = np.zeros(len(self._keys), dtype=np.bool_)
        gone[slots] = True
        items = set().union(*(self._items[slot] for slot in slots))
        for item in items:
            a = int(pstart[item])
            n = int(plen[item])
            live = pflat[a : a + n]
            keep = live[~gone[live]]
            if keep.size != n:
                pflat[a : a + keep.size] = keep
                plen[item] = keep.size
        for slot in slots:
            del self._slot[self._keys[slot]]
            self._keys[slot] = -1
            self._items[slot] = {}
            self._clicks[slot] = 0
            self._garbage += int(self._capa[slot])
            self._capa[slot] = 0
            self.n_unique[slot] = 0
            self.time[slot] = -np.inf
            self._free.append(slot)

    def _relocate(self, slot: int, n: int) -> None:
        """Move a full segment to the tail with twice the room (compacting the store if needed)."""
        new_capa = min(max(4, 2 * n), self.max_session_items)
        if self._tail + new_capa > self._flat.shape[1]:
            self._compact(new_capa)
        start, tail = int(self._start[slot]), self._tail
        if n:
            self._flat[:, tail : tail + n] = self._flat[:, start : start + n]
        self._garbage += int(self._capa[slot])
        self._start[slot] = tail
        self._capa[slot] = new_capa
        self._tail = tail + new_capa

    def _compact(self, extra: int) -> None:
        """Drop dead segments (amortised O(1) per click: runs when the store is full)."""
        live = np.flatnonzero(self._capa[: len(self._keys)])
        used = int(self._capa[live].sum())
        flat = np.zeros((2, max(2 * (used + extra), 4096)), dtype=np.int32)
        if live.size:
            new_start, src, dst = _compaction(self._start[live], self._capa[live], self.n_unique[live])
            flat[:, dst] = self._flat[:, src]
            self._start[live] = new_start
        self._flat = flat
        self._tail = used
        self._garbage = 0

    def _post_append(self, item: int, slot: int) -> None:
        if item >= self._n_items:
            self._grow_postings(item)
            self._n_items = item + 1
        n = int(self._plen[item])
        if n == self._pcap[item]:
            cap = self.max_item_sessions
            if n >= 2 * cap:  # keep the `cap` most recent entries
                a = int(self._pstart[item])
                self._pflat[a : a + cap] = self._pflat[a + n - cap : a + n].copy()
                n = cap
            else:  # move to the tail with twice the room
                self._move_postings(item, n, min(max(8, 2 * n), 2 * cap))
        self._pflat[self._pstart[item] + n] = slot
        self._plen[item] = n + 1

    def _grow_postings(self, item: int) -> None:
        """Per-item posting arrays long enough for ``item``."""
        if item >= self._plen.size:
            self._pstart = _grow(self._pstart, item + 1)
            self._plen = _grow(self._plen, item + 1)
            self._pcap = _grow(self._pcap, item + 1)

    def _move_postings(self, item: int, n: int, new_cap: int) -> None:
        """Move ``item``'s posting list (``n`` entries) to the tail with room for ``new_cap``
        (compacting the posting store first if the tail is full)."""
        if self._ptail + new_cap > self._pflat.size:
            self._pcompact(new_cap)
        a, t = int(self._pstart[item]), self._ptail
        self._pflat[t : t + n] = self._pflat[a : a + n]
        self._pstart[item] = t
        self._pcap[item] = new_cap
        self._ptail = t + new_cap

    def _pcompact(self, extra: int) -> None:
        """Drop the posting store's dead segments (amortised O(1) per click)."""
        live = np.flatnonzero(self._pcap[: self._n_items])
        used = int(self._pcap[live].sum())
        flat = np.zeros(max(2 * (used + extra), 8192), dtype=np.int32)
        if live.size:
            new_start, src, dst = _compaction(self._pstart[live], self._pcap[live], self._plen[live])
            flat[dst] = self._pflat[src]
            self._pstart[live] = new_start
        self._pflat = flat
        self._ptail = used

    # -- queries -------------------------------------------------------------------------------

    def slot_of(self, session: int | None) -> int:
        """The slot of ``session``, or -1 if it is not in the index."""
        if session is None:
            return -1
        return self._slot.get(session, -1)

    def key(self, slot: int) -> int:
        return self._keys[slot]

    def session_items(self, session: int) -> dict[int, int]:
        """``item -> last click position`` of ``session`` (a copy; empty if unknown)."""
        slot = self._slot.get(session)
        if slot is None:
            return {}
        start = self._start[slot]
        return {i: int(self._flat[1, start + j]) for i, j in self._items[slot].items()}

    def n_items(self) -> int:
        """One more than the largest item int seen (the size of per-item arrays)."""
        return self._n_items

    def postings(self, item: int) -> np.ndarray:
        """The slots of the sessions holding ``item`` (a view, oldest first)."""
        if item >= self._n_items:
            return _EMPTY_I32
        a = int(self._pstart[item])
        return self._pflat[a : a + int(self._plen[item])]

    def overlap(
        self, items: np.ndarray, weights: np.ndarray | None, exclude: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sessions sharing an item with ``items`` and their (weighted) overlap.

        Returns ``(slots, overlap)``, ``overlap[j] = sum of weights of the
        items shared with slot j`` (the number of shared items if ``weights`` is None); slot
        ``exclude`` is left out.
        """
        parts: list[np.ndarray] = []
        lens: list[int] = []
        for j, it in enumerate(items.tolist()):
            post = self.postings(it)
            if post.size:
                parts.append(post)
                lens.append(j)
        if not parts:
            return _EMPTY_I, _EMPTY_F
        if len(parts) == 1:  # one posting list holds each session once: no dedupe needed
            slots = parts[0]
            if exclude >= 0:
                slots = slots[slots != exclude]
            w = 1.0 if weights is None else float(weights[lens[0]])
            return slots.astype(np.int64), np.full(slots.size, w)
        cand = np.concatenate(parts)
        # distinct candidates in first-appearance order, in O(len(cand)): the last write of a
        # repeated index wins, so writing in reverse leaves each slot's first position
        scratch = self._scratch
        ar = np.arange(cand.size)
        scratch[cand[::-1]] = ar[::-1]
        slots = cand[scratch[cand] == ar]
        scratch[slots] = np.arange(slots.size)
        inv = scratch[cand]
        if weights is None:
            ov = np.bincount(inv, minlength=slots.size).astype(np.float64)
        else:
            w = np.repeat(weights[lens], [p.size for p in parts])
            ov = np.bincount(inv, weights=w, minlength=slots.size)
        if exclude >= 0:
            keep = slots != exclude
            return slots[keep], ov[keep]
        return slots, ov

    def recent(self, slots: np.ndarray, values: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``m`` most recently active of ``slots`` (with their ``values``); all if fewer."""
        if m <= 0 or slots.size <= m:
            return slots, values
        t = self.time[slots]
        thr = np.partition(t, slots.size - m)[slots.size - m]
        keep = t > thr
        eq = np.flatnonzero(t == thr)
        need = m - int(np.count_nonzero(keep))
        if eq.size > need:  # at the threshold time, the larger slots (deterministic)
            eq = eq[np.argsort(-slots[eq], kind="stable")[:need]]
        keep[eq] = True
        return slots[keep], values[keep]

    def gather(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flatten the sessions ``slots``: ``(items, last_positions, lengths)``."""
        lens = self.n_unique[slots]
        ends = np.cumsum(lens)
        idx = np.arange(int(ends[-1])) + np.repeat(self._start[slots] + lens - ends, lens)
        flat = self._flat[:, idx]
        return flat[0], flat[1], lens

    def idf(self, items: np.ndarray) -> np.ndarray:
        """``ln(#sessions seen / #events of item)`` (session-rec quirk Q3), 0 for unseen items."""
        ev = self.events[items]
        out = np.zeros(items.size, dtype=np.float64)
        ok = ev > 0
        out[ok] = np.log(self.n_sessions_seen / ev[ok])
        return out


_KERNEL: list[ModuleType | None] = []


def load_kernel() -> ModuleType | None:
    """The compiled kernel module :mod:`stream.models.knn.kernel`, or ``None`` (numpy path).

    ``None`` when numba is not importable or ``STREAMREC_KNN_KERNEL=0``; imported once per process
    (the kernels themselves compile on first call, or load from numba's on-disk cache).
    """
    if not _KERNEL:
        mod: ModuleType | None = None
        if os.environ.get("STREAMREC_KNN_KERNEL", "1") not in ("0", "false", "no", "off"):
            try:
                from stream.models.knn import kernel as mod
            except Exception as e:  # noqa: BLE001 -- no numba, or a broken one: numpy path
                logging.getLogger(__name__).warning("kNN kernel unavailable, numpy path used: %r", e)
                mod = None
        _KERNEL.append(mod)
    return _KERNEL[0]


def _compaction(
    start: np.ndarray, capa: np.ndarray, used: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compacting a segmented store: the live segments (``start``, capacity ``capa``, ``used``
    entries each, in order) packed from 0. Returns their new starts and the source and
    destination index of every used entry (``new[dst] = old[src]``).

    >>> [a.tolist() for a in _compaction(np.array([8, 2]), np.array([4, 2]), np.array([3, 1]))]
    [[0, 4], [8, 9, 10, 2], [0, 1, 2, 4]]
    """
    new_start = np.zeros(start.size, dtype=np.int64)
    np.cumsum(capa[:-1], out=new_start[1:])
    offs = np.zeros(start.size, dtype=np.int64)
    np.cumsum(used[:-1], out=offs[1:])
    ar = np.arange(int(used.sum()))
    src = np.repeat(start - offs, used) + ar
    dst = np.repeat(new_start - offs, used) + ar
    return new_start, src, dst


def _grow(a: np.ndarray, need: int) -> np.ndarray:
    new = np.zeros(max(need, 2 * a.size), dtype=a.dtype)
    new[: a.size] = a
    return new


def top_items(items: np.ndarray, scores: np.ndarray, k: int) -> list[int]:
    """The ``k`` best ``items`` by ``scores`` (> 0 only), ties broken by the smaller item int.

    >>> top_items(np.array([5, 3, 9, 4]), np.array([1.0, 2.0, 1.0, 0.0]), 3)
    [3, 5, 9]
    """
    pos = scores > 0
    if not pos.all():
        items, scores = items[pos], scores[pos]
    if items.size > k:
        thr = np.partition(scores, items.size - k)[items.size - k]
        sel = scores >= thr
        items, scores = items[sel], scores[sel]
    order = np.lexsort((items, -scores))[:k]
    return items[order].tolist()


def sum_by_item(items: np.ndarray, contrib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``contrib`` per distinct item: ``(distinct items, sums)``.

    A dense ``bincount`` when the item ints are small relative to the number of entries, else a
    sort-based ``unique``, so the cost never scales with the whole catalogue.

    >>> sum_by_item(np.array([4, 2, 4]), np.array([1.0, 0.5, 2.0]))
    (array([2, 4]), array([0.5, 3. ]))
    """
    if items.size == 0:
        return _EMPTY_I, _EMPTY_F
    top = int(items.max())
    if top < 64 * items.size + 8192:
        sums = np.bincount(items, weights=contrib)
        uniq = np.flatnonzero(np.bincount(items))
        return uniq, sums[uniq]
    uniq, inv = np.unique(items, return_inverse=True)
    return uniq, np.bincount(inv, weights=contrib)


class KNNModel(BatchModel, ScoringModel):
    """Shared skeleton: index every click; recommend from the top-``k`` recent neighbours.

    Subclasses store their own parameters, then call this constructor with the ones every model
    of the family has; they implement :meth:`_weights` (position weights of the session's
    distinct items, or ``None`` for plain counts), :meth:`_similarity` and :meth:`_contributions`.

    No model of the family weights clicks by event type (``--event-weights``): a purchase enters
    the index as a view does, keeping session-rec's formulas (see the module docstring).

    Parameters
    ----------
    k
        Neighbours used for scoring (session-rec requires it; its docstring says 100).
    sample_size
        Candidate sessions: the most recent ones sharing an item with the session (0 = all).
    sampling
        Only ``"recent"``.
    remind
        The model's reminder option (SKNN: boost the last clicks; the others: ``False`` leaves
        items already in the session out).
    max_sessions, max_session_items, max_item_sessions
        Memory caps of the index (:class:`SessionIndex`); ``max_item_sessions=None`` means
        ``max(sample_size, 1000)``.
    """

    def __init__(self, k: int, sample_size: int, sampling: str, remind: bool, max_sessions: int,
                 max_session_items: int, max_item_sessions: int | None) -> None:
        self.k = k
        self.sample_size = sample_size
        self.sampling = sampling
        self.remind = remind
        self.max_sessions = max_sessions
        self.max_session_items = max_session_items
        self.max_item_sessions = max_item_sessions
        self._setup(max_sessions, max_session_items, max_item_sessions)

    def _setup(self, max_sessions: int, max_session_items: int, max_item_sessions: int | None) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")
        if self.sample_size < 0:
            raise ValueError("sample_size must be >= 0 (0 uses every candidate session)")
        if self.sampling != "recent":
            raise ValueError("sampling must be 'recent' (the only strategy implemented)")
        cap = max_item_sessions if max_item_sessions is not None else max(self.sample_size, 1000)
        self.index = SessionIndex(max_sessions, max_session_items, cap)
        self._pop = PopularityCounts(half_life=None)
        self._use_kernel = load_kernel() is not None
        self._cold = True
        # dense per-item scratch of the kernel path (grown with the catalogue, zero between queries)
        self._lp = np.zeros(1024, dtype=np.float64)
        self._acc = np.zeros(1024, dtype=np.float64)
        self._imark = np.zeros(1024, dtype=np.int8)

    @property
    def _kernel(self) -> ModuleType | None:
        """The compiled kernel module if it is used (a module is not stored: models pickle)."""
        return load_kernel() if self._use_kernel else None

    def __getstate__(self) -> dict:
        """The state without :meth:`split_batch`'s shadows (copies of the index, rebuilt on use)."""
        state = self.__dict__.copy()
        state.pop("_shadow", None)
        state.pop("_spare", None)
        return state

    @property
    def _one_call(self) -> bool:
        """Whether the kernel's scores need no Python adjustment before ranking (one call)."""
        return type(self)._kernel_adjust is KNNModel._kernel_adjust and type(self)._scores is KNNModel._scores

    def warm_up(self) -> None:
        """Compile (or load from the on-disk cache) the kernels; at the latest on the first click."""
        if self._cold:
            self._cold = False
            if self._kernel is not None:
                try:
                    self._kernel.warm_up()
                except Exception as e:  # noqa: BLE001 -- a kernel that does not compile: numpy path
                    logging.getLogger(__name__).warning("kNN kernel failed, numpy path used: %r", e)
                    _KERNEL[:] = [None]
                    self._use_kernel = False

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int]) -> None:
        if self._cold:  # compile / load the kernels on first use, before the first query
            self.warm_up()
        self.index.add(session, item, timestamp)
        self._pop.add(item, timestamp)

    # -- hooks ---------------------------------------------------------------------------------

    def _weights(self, pos: np.ndarray, length: int) -> np.ndarray | None:
        return None

    def _drop_seen(self) -> bool:
        """Whether items of the current session are left out (``remind=False``)."""
        return not self.remind

    def _similarity(self, q: _Query, slots: np.ndarray, overlap: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _contributions(self, q: _Query, sims: np.ndarray, items: np.ndarray, pos: np.ndarray, lens: np.ndarray,
                       offsets: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _adjust(self, q: _Query, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Last change to the summed item scores (reminders, IDF); identity by default."""
        return scores

    def _kernel_params(self) -> tuple[int, float, int, float, int, float, float, float] | None:
        """How the compiled kernel computes this model, or ``None`` to use the numpy path.

        ``(wkind, wparam, sim_kind, sb, contrib_kind, c1, c2, idf_w)``: the query's position
        weights (:data:`WEIGHT_KINDS`, ``knn_kernel.W_*``), the similarity and its recency scale,
        the neighbours' item contributions and the IDF weight (:mod:`stream.models.knn.kernel`).
        Fixed by the parameters.
        """
        return None

    def _kernel_spec(self, q: _Query) -> tuple[int, float, float, int, float, float, float] | None:
        """:meth:`_kernel_params` for a query prepared in Python: ``(sim_kind, sa, sb,
        contrib_kind, c1, c2, idf_w)`` with ``sa`` the session's norm (as the kernel's ``_query``)."""
        p = self._kernel_params()
        if p is None:
            return None
        if p[2] == 4:  # weighted cosine: sqrt(sum w^2); math.sqrt and np.sqrt both round correctly
            w = q.weights
            sa = math.sqrt(float(w @ w)) if w is not None else math.sqrt(float(q.items.size))
        else:
            sa = float(q.items.size)
        return (p[2], sa, *p[3:])

    def _kernel_adjust(self, q: _Query, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """What :meth:`_adjust` does beyond the kernel's IDF boost; identity by default."""
        return scores

    @property
    def _fused(self) -> tuple[int, float, int, float, int, float, float, float] | None:
        """:meth:`_kernel_params` if :func:`~stream.models.knn.kernel.query_history` runs the whole
        query, its preparation included (models without Python adjustments), else ``None``;
        computed once."""
        spec = self.__dict__.get("_fused_cache", _UNSET)
        if spec is _UNSET:
            spec = self._kernel_params() if self._one_call else None
            self._fused_cache = spec
        return spec  # type: ignore[return-value]

    # -- the query -----------------------------------------------------------------------------

    def neighbours(
        self, history: Sequence[int], timestamp: float, session: int | None = None
    ) -> list[tuple[int, float]]:
        """The top-``k`` neighbour sessions ``(session key, similarity)``, most similar first."""
        q = _Query(self, history, timestamp, session)
        slots, sims = self._neighbours(q)
        order = np.lexsort((slots, -sims))
        return [
            (self.index.key(s), float(sims[j]))
            for j, s in zip(order.tolist(), slots[order].tolist(), strict=True)
        ]

    def _neighbours(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        if q.spec is not None:
            return self._neighbours_kernel(q, q.spec)
        ix = self.index
        slots, ov = ix.overlap(q.items, q.weights, q.exclude)
        if slots.size == 0:
            return slots, ov
        slots, ov = ix.recent(slots, ov, self.sample_size)
        sims = self._similarity(q, slots, ov)
        pos = sims > 0
        if not pos.all():
            slots, sims = slots[pos], sims[pos]
        k = self.k
        if slots.size > k:  # top k; ties at the k-th similarity go to the more recent sessions
            thr = np.partition(sims, slots.size - k)[slots.size - k]
            above = sims > thr
            need = k - int(np.count_nonzero(above))
            eq = np.flatnonzero(sims == thr)
            if eq.size > need:  # the more recent, then the larger slot (deterministic)
                t = self.index.time[slots[eq]]
                eq = eq[np.lexsort((-slots[eq], -t))[:need]]
            above[eq] = True
            slots, sims = slots[above], sims[above]
        return slots, sims  # candidate order, as the kernel: item sums add up in this order

    def _neighbours_kernel(self, q: _Query, spec: tuple) -> tuple[np.ndarray, np.ndarray]:
        ix = self.index
        w = q.weights if q.weights is not None else np.ones(q.items.size)
        return self._kernel.neighbours(  # type: ignore[union-attr]
            q.items, w, ix._pstart, ix._plen, ix._pflat, ix._n_items, q.exclude, ix.time, ix.n_unique,
            ix.mark, self.sample_size, self.k, spec[0], spec[1], spec[2], float(q.timestamp),
        )  # fmt: skip

    def _item_buffers(self, need: int) -> np.ndarray:
        """The dense per-item scratch arrays, grown to ``need`` items (the catalogue and the
        session's largest item int); returns the first."""
        if need > self._lp.size:
            self._lp = _grow(self._lp, need)
            self._acc = _grow(self._acc, need)
            self._imark = _grow(self._imark, need)
        return self._lp

    def _scores_kernel(self, q: _Query, spec: tuple) -> tuple[np.ndarray, np.ndarray]:
        slots, sims = self._neighbours_kernel(q, spec)
        if slots.size == 0:
            return _EMPTY_I, _EMPTY_F
        ix = self.index
        items, sc = self._kernel.item_scores(  # type: ignore[union-attr]
            slots, sims, ix._start, ix.n_unique, ix._flat, self._item_buffers(max(q.n_known, q.top)), q.items, q.pos,
            q.length, spec[3], spec[4], spec[5], self._drop_seen(), self._acc, self._imark, ix.events,
            float(ix.n_sessions_seen), spec[6],
        )  # fmt: skip
        return items, self._kernel_adjust(q, items, sc)

    def scores(
        self, history: Sequence[int], timestamp: float, session: int | None = None
    ) -> dict[int, float]:
        """kNN score of every candidate item (for inspection and tests; ``recommend`` ranks these)."""
        items, sc = self._scores(_Query(self, history, timestamp, session))
        order = np.argsort(items)  # by item int, whichever path computed them
        return dict(zip(items[order].tolist(), sc[order].tolist(), strict=True))

    def top_scores(
        self, history: Sequence[int], timestamp: float, k: int, session: int | None = None
    ) -> dict[int, float]:
        """The (about) ``k`` best candidate items with their kNN scores: what a hybrid mixes.

        Cheaper than :meth:`scores` (no dict of every candidate); the ``k``-th place is cut by
        ``argpartition``, so ties there fall either way.
        """
        if not history:
            return {}
        fused = self._fused if self._use_kernel else None
        if fused is not None:  # prepared and scored in one kernel call
            args = self._fused_args(history, timestamp, session, fused)
            items, sc = self._kernel.query_history(*args, 0)  # type: ignore[union-attr]
        else:
            items, sc = self._scores(_Query(self, history, timestamp, session))
        if items.size > k > 0:
            keep = np.argpartition(-sc, k - 1)[:k]
            items, sc = items[keep], sc[keep]
        return dict(zip(items.tolist(), sc.tolist(), strict=True))

    def _scores(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        if q.spec is not None:
            return self._scores_kernel(q, q.spec)
        slots, sims = self._neighbours(q)
        if slots.size == 0:
            return _EMPTY_I, _EMPTY_F
        items, pos, lens = self.index.gather(slots)
        offsets = np.zeros(lens.size, dtype=np.int64)
        np.cumsum(lens[:-1], out=offsets[1:])
        contrib = self._contributions(q, sims, items, pos, lens, offsets)
        if self._drop_seen():
            keep = q.last_pos(items) == 0
            items, contrib = items[keep], contrib[keep]
        uniq, sc = sum_by_item(items, contrib)
        return uniq, self._adjust(q, uniq, sc)

    def recommend(self, history: Sequence[int], timestamp: float, k: int = DEFAULT_K,
                  session: int | None = None) -> list[int]:
        if k <= 0:
            return []
        if not history:
            return self._pop.top(k)
        fused = self._fused if self._use_kernel else None
        if fused is not None:
            recs = self._recommend_fused(history, timestamp, k, session, fused)
            if len(recs) < k:
                recs = self._fill(recs, k, set(history))
            return recs
        q = _Query(self, history, timestamp, session)
        items, sc = self._scores(q)
        if not items.size:
            recs = []
        elif q.spec is not None:
            recs = self._kernel.top_items(items, sc, k).tolist()  # type: ignore[union-attr]
        else:
            recs = top_items(items, sc, k)
        if len(recs) < k:
            recs = self._fill(recs, k, q.seen)
        return recs

    @property
    def batches(self) -> bool:
        """Whether :meth:`plan_batch` / :meth:`run_batch` run compiled (the fused kernel is in use)."""
        return self._use_kernel and self._fused is not None

    def plan_batch(
        self,
        keys: Sequence[int],
        items: Sequence[int],
        timestamps: Sequence[float],
        learn: Sequence[bool],
        hist: np.ndarray,
        hoff: np.ndarray,
        hlen: np.ndarray,
        k: int,
    ) -> BatchPlan:
        """For each click in order, :meth:`learn_one` (where ``learn[t]``) and then
        :meth:`recommend` with the history ``hist[hoff[t] : hoff[t] + hlen[t]]``, in two halves:
        this one, in Python, does the index's bookkeeping of the clicks up to the first that
        evicts a session (:meth:`SessionIndex.plan_batch`) and grows every capacity their writes
        need; :meth:`run_batch` then does the index's array work and the queries of whole runs of
        clicks in one compiled call without the GIL (a caller may run it on another thread while
        it finishes the previous answers; nothing else may touch the model meanwhile). The
        popularity counts and the fill of short lists are left to :meth:`BatchAnswers.take`,
        called once per click in order: then the lists and the state are those of the per-click
        calls. Needs :attr:`batches`.

        >>> from stream.models import make_model
        >>> m = make_model("vstan")
        >>> clicks = [(1, 10), (1, 11), (2, 10), (2, 11), (3, 10)]
        >>> answers = m.run_batch(m.plan_batch(
        ...     [s for s, _ in clicks], [i for _, i in clicks], [1.0, 2.0, 3.0, 4.0, 5.0], [True] * 5,
        ...     np.array([10, 10, 11, 10, 10, 11, 10]), np.array([0, 1, 3, 4, 6]), np.array([1, 2, 1, 2, 1]), 20))
        >>> [answers.take()[0][:1] for _ in clicks][-1]
        [11]
        """
        if self._cold:
            self.warm_up()
        if self._fused is None or self._kernel is None:
            raise RuntimeError("plan_batch needs the fused kNN kernel (see .batches)")
        plan = BatchPlan(keys, items, timestamps, learn, hist, hoff, hlen, k)
        self._plan_part(plan)
        return plan

    def _plan_part(self, plan: BatchPlan) -> None:
        ix = self.index
        plan.hi, plan.part = ix.plan_batch(plan.keys, plan.items, plan.learn, plan.lo, len(plan.keys))
        self._item_buffers(max(ix._n_items, plan.need))

    def run_batch(self, plan: BatchPlan) -> BatchAnswers:
        """The compiled half of :meth:`plan_batch`'s clicks (and the planning of any run after an
        eviction), but the queries :meth:`split_batch` handed to another caller."""
        ix, kern = self.index, self._kernel
        assert kern is not None
        n = len(plan.keys)
        while True:
            rec = plan.rec[plan.lo : plan.hi] if plan.rec_first is None else plan.rec_first
            plan.rec_first = None
            ix._n_items = self._learn_query(plan, rec, self._batch_arrays(), plan.lo, plan.hi, plan.part, ix._n_items)
            if plan.hi >= n:
                break
            plan.lo = plan.hi
            self._plan_part(plan)
        return BatchAnswers(self, plan, kern.tick_seconds())

    def split_batch(
        self, plan: BatchPlan, share: float, shadow: IndexShadow | None = None, min_clicks: int = 64
    ) -> Callable[[], None] | None:
        """Hand the last ``share`` of the plan's queries to a second caller, to compute while
        :meth:`run_batch` (on another thread) does the rest: returns the call that computes them,
        or ``None`` if too few of them fall in the first run (a plan is cut into runs before each
        click that evicts sessions).

        The call learns the first run's clicks on ``shadow`` (the model's own by default), a copy
        of the index's arrays taken now (before :meth:`run_batch` starts), and answers the queries
        handed over from it in the same compiled call: its lists are those :meth:`run_batch` would
        have given. Both must be done before the answers are taken.

        >>> from stream.models import make_model
        >>> clicks = [(s % 7, (s * s) % 11) for s in range(100)]
        >>> def plan(m):
        ...     items = [i for _, i in clicks]
        ...     return m.plan_batch([s for s, _ in clicks], items, list(map(float, range(100))), [True] * 100,
        ...                         np.array(items), np.arange(100), np.ones(100, dtype=np.int64), 20)
        >>> m = make_model("vstan")
        >>> p = plan(m)
        >>> rest = m.split_batch(p, 0.4, IndexShadow(), min_clicks=8)
        >>> answers = m.run_batch(p)  # (on another thread, in a worker)
        >>> rest()
        >>> lists = [answers.take()[0] for _ in clicks]
        >>> m2 = make_model("vstan")
        >>> answers2 = m2.run_batch(plan(m2))
        >>> lists == [answers2.take()[0] for _ in clicks]
        True
        """
        lo, hi = plan.lo, plan.hi
        cut = max(lo, hi - int(share * (len(plan.keys) - lo)))
        if lo != 0 or hi - cut < min_clicks:
            return None
        rec = plan.rec[lo:hi]
        plan.rec_first = rec.copy()
        plan.rec_first[cut - lo :] = False
        theirs = rec.copy()
        theirs[: cut - lo] = False
        if shadow is None:  # the spare of the model's two: the other is read meanwhile
            shadow = self.__dict__.get("_spare")
            if shadow is None:
                shadow = self._spare = IndexShadow()
        part, n_items = plan.part, self.index._n_items
        with shadow.lock:
            arrays = shadow.arrays = shadow.of(self._batch_arrays())
            shadow.n_items, shadow.n_sessions = n_items, float(self.index.n_sessions_seen)
            shadow.taken = _monotonic()

        def rest() -> None:
            with shadow.lock:
                shadow.n_items = self._learn_query(plan, theirs, arrays, lo, hi, part, n_items)
            read = self.__dict__.get("_shadow")
            self._shadow = shadow  # recommend_concurrent reads this one now
            self._spare = read if read is not shadow else None

        return rest

    def recommend_concurrent(self, history: Sequence[int], timestamp: float, k: int,
                             wait: bool = True) -> list[int] | None:
        """The list for ``history`` from the copy of the index the last finished split-off part
        of a run (:meth:`split_batch`) left: the model as of a recent run's start plus the
        clicks that part learned. It is safe beside a run computing on another thread: the next
        split copies into the model's other shadow, so a read waits only for the rare copy into
        the one it reads. ``None`` when there is no copy from the last
        :data:`CONCURRENT_MAX_AGE_S` (or, with ``wait=False``, when that copy is being written).
        Nothing is learned; a short list is filled with the popular
        items as they were at their last refresh.

        >>> from stream.models import make_model
        >>> m = make_model("vstan")
        >>> m.recommend_concurrent([1, 2], 0.0, 5) is None  # no run has been split yet
        True
        """
        shadow = self.__dict__.get("_shadow")
        spec = self._fused if self._use_kernel else None
        if shadow is None or spec is None or not history or k <= 0:
            return None
        hist = np.fromiter(history, dtype=np.int64, count=len(history))
        if not shadow.lock.acquire(timeout=CONCURRENT_WAIT_S if wait else 0.0):
            return None
        try:
            if _monotonic() - shadow.taken > CONCURRENT_MAX_AGE_S or not shadow.arrays:
                return None
            pstart, plen, pflat, times, n_unique, mark, start, flat, lp, acc, imark, events = shadow.arrays
            top = max(history) + 1  # builtin max: ndarray.max costs more on a short history
            if top > lp.size:  # an item newer than the copy: a private zeroed scratch
                lp = np.zeros(top, dtype=np.float64)
            recs: list[int] = self._kernel.query_history(  # type: ignore[union-attr]
                hist, spec[0], spec[1], pstart, plen, pflat, shadow.n_items, -1, times, n_unique, mark,
                self.sample_size, self.k, spec[2], spec[3], float(timestamp), start, flat, lp, spec[4],
                spec[5], spec[6], self._drop_seen(), acc, imark, events, shadow.n_sessions, spec[7], k,
            )[0].tolist()  # fmt: skip
        finally:
            shadow.lock.release()
        if len(recs) < k:
            popular = self._pop.cached()  # no refresh here: the counts are the run's to change
            if self._drop_seen():
                seen = set(history)
                popular = [i for i in popular if i not in seen]
            recs = fill(recs, popular, k)
        return recs

    def _batch_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays of a compiled batch call, in its order: the index's (posting starts and
        lengths, postings, times, sizes, marker, segment starts, segments), the per-item scratch
        (last positions, sums, marks) and the per-item event counts; :meth:`IndexShadow.of`
        copies them."""
        ix = self.index
        return (ix._pstart, ix._plen, ix._pflat, ix.time, ix.n_unique, ix.mark, ix._start, ix._flat, self._lp,
                self._acc, self._imark, ix.events)  # fmt: skip

    def _learn_query(self, plan: BatchPlan, rec: np.ndarray, arrays: tuple[np.ndarray, ...], lo: int, hi: int,
                     part: tuple[np.ndarray, ...], n_items: int) -> int:
        """One compiled call over the clicks ``lo .. hi`` of ``plan`` (its run ``part``), the
        queries where ``rec``, on ``arrays`` (:meth:`_batch_arrays`); returns the new ``n_items``."""
        kern, spec = self._kernel, self._fused
        assert kern is not None and spec is not None
        pstart, plen, pflat, time, n_unique, mark, start, flat, lp, acc, imark, events = arrays
        slots, js, cs, new, lrn, exclude, nss = part
        return kern.learn_query_batch(  # type: ignore[no-any-return]
            slots, plan.its[lo:hi], plan.tss[lo:hi], js, cs, new, lrn, rec, exclude, nss, plan.hist,
            plan.hoff[lo:hi], plan.hlen[lo:hi], spec[0], spec[1], pstart, plen, pflat, n_items, time, n_unique,
            mark, self.sample_size, self.k, spec[2], spec[3], start, flat, lp, spec[4], spec[5], spec[6],
            self._drop_seen(), acc, imark, events, spec[7], self.index.max_item_sessions, plan.out[lo:hi],
            plan.out_n[lo:hi], plan.ticks[lo:hi],
        )  # fmt: skip

    def _fill(self, recs: list[int], k: int, seen: Collection[int]) -> list[int]:
        """``recs`` completed to ``k`` items with the most popular ones (not ``seen`` if the model
        leaves session items out)."""
        if not self._drop_seen():
            return fill(recs, self._pop.top(k), k)
        fb = [i for i in self._pop.top(k + len(seen)) if i not in seen]
        return fill(recs, fb, k)

    def _fused_args(self, history: Sequence[int], timestamp: float, session: int | None, spec: tuple) -> tuple:
        """The arguments of :func:`~stream.models.knn.kernel.query_history` but its last
        (``top_k``): the clicks as an array, the index and the model's constants."""
        ix = self.index
        hist = np.fromiter(history, dtype=np.int64, count=len(history))
        lp = self._item_buffers(max(ix._n_items, max(history) + 1))  # builtin max: ndarray.max ~3 us
        return (
            hist, spec[0], spec[1], ix._pstart, ix._plen, ix._pflat, ix._n_items, ix.slot_of(session),
            ix.time, ix.n_unique, ix.mark, self.sample_size, self.k, spec[2], spec[3], float(timestamp),
            ix._start, ix._flat, lp, spec[4], spec[5], spec[6], self._drop_seen(), self._acc,
            self._imark, ix.events, float(ix.n_sessions_seen), spec[7],
        )  # fmt: skip

    def _recommend_fused(
        self, history: Sequence[int], timestamp: float, k: int, session: int | None, spec: tuple
    ) -> list[int]:
        """The whole query, its preparation included, in one kernel call (:attr:`_fused`)."""
        args = self._fused_args(history, timestamp, session, spec)
        return self._kernel.query_history(*args, k)[0].tolist()  # type: ignore[union-attr]


class _Query:
    """The current session, prepared once per query."""

    __slots__ = (
        "history",
        "length",
        "seen",
        "items",
        "pos",
        "weights",
        "exclude",
        "timestamp",
        "n_known",
        "top",
        "spec",
        "_lp",
    )

    def __init__(self, model: KNNModel, history: Sequence[int], timestamp: float, session: int | None):
        last: dict[int, int] = {}
        for p, i in enumerate(history, 1):
            last[i] = p
        self.history = history
        self.length = len(history)
        self.seen = last
        self.items = np.fromiter(last.keys(), dtype=np.int64, count=len(last))
        self.pos = np.fromiter(last.values(), dtype=np.float64, count=len(last))
        self.weights = model._weights(self.pos, self.length)
        self.exclude = model.index.slot_of(session)
        self.timestamp = timestamp
        self.n_known = model.index.n_items()
        self.top = max(last) + 1 if last else 0  # one more than the session's largest item int
        self._lp: np.ndarray | None = None
        self.spec = model._kernel_spec(self) if model._use_kernel and last else None

    def last_pos(self, items: np.ndarray) -> np.ndarray:
        """Last 1-based position in the session of each of ``items`` (0 if absent)."""
        lp = self._lp
        if lp is None or (items.size and int(items.max()) >= lp.size):
            n = max(self.n_known, self.top, int(items.max()) + 1 if items.size else 0)
            lp = self._lp = np.zeros(n, dtype=np.float64)  # calloc: untouched pages stay free
            lp[self.items] = self.pos
        return lp[items]


_SCRATCH = (5, 8, 9, 10)  # KNNModel._batch_arrays' marker and per-item scratch
#: :meth:`KNNModel.recommend_concurrent` answers from a copy at most this old (a run is milliseconds) ...
CONCURRENT_MAX_AGE_S = 1.0
#: ... and waits at most this long (``wait=True``) for the split-off part that is learning on it.
CONCURRENT_WAIT_S = 0.02


class IndexShadow:
    """Reusable copies of a batch call's arrays, and zeroed scratch, for a second caller
    computing part of a run's queries (:meth:`KNNModel.split_batch`).

    Between that caller's uses the copies are a consistent state of the index (the one the run
    started from, plus the clicks the caller learned), which :meth:`KNNModel.recommend_concurrent`
    reads from another thread. ``lock`` serialises the copy, the caller's part and those reads;
    ``n_items`` and ``n_sessions`` are the copy's, ``taken`` the ``time.monotonic()`` of the copy.
    """

    def __init__(self) -> None:
        self._bufs: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()
        self.arrays: tuple[np.ndarray, ...] = ()
        self.n_items = 0
        self.n_sessions = 0.0
        self.taken = -math.inf

    def of(self, arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """:meth:`KNNModel._batch_arrays`' arrays for the second caller: the marker and the per-item
        scratch (zero between calls) as zeros of their shapes, the others copied now."""
        out = []
        for i, a in enumerate(arrays):
            zero = i in _SCRATCH
            b = self._bufs.get(i)
            if b is None or b.shape != a.shape or b.dtype != a.dtype:
                b = self._bufs[i] = np.zeros_like(a) if zero else np.empty_like(a)
            if not zero:
                np.copyto(b, a)
            out.append(b)
        return tuple(out)


class BatchPlan:
    """One :meth:`KNNModel.plan_batch` / :meth:`KNNModel.run_batch` pair's inputs, arrays and outputs."""

    __slots__ = ("keys", "items", "timestamps", "learn", "hist", "hoff", "hlen", "k", "its", "tss", "rec",
                 "need", "out", "out_n", "ticks", "lo", "hi", "part", "rec_first")

    def __init__(self, keys: Sequence[int], items: Sequence[int], timestamps: Sequence[float],
                 learn: Sequence[bool], hist: np.ndarray, hoff: np.ndarray, hlen: np.ndarray, k: int) -> None:
        n = len(keys)
        self.keys, self.items, self.timestamps, self.learn, self.k = keys, items, timestamps, learn, k
        self.hist, self.hoff, self.hlen = hist, hoff, hlen
        self.its = np.array(items, dtype=np.int64)
        self.tss = np.array(timestamps, dtype=np.float64)
        self.rec = hlen > 0
        self.need = max(int(self.its.max()) + 1 if n else 0, int(hist.max()) + 1 if hist.size else 0)
        self.out = np.zeros((n, max(k, 1)), dtype=np.int64)
        self.out_n = np.zeros(n, dtype=np.int64)
        self.ticks = np.zeros(n, dtype=np.int64)
        self.lo = self.hi = 0
        self.part: tuple[np.ndarray, ...] = ()
        self.rec_first: np.ndarray | None = None  # the first part's queries, if some were split off


class BatchAnswers:
    """The answers of :meth:`KNNModel.run_batch`, completed click by click.

    :meth:`take`, called once per click in click order, does what the compiled call left out of
    :meth:`~KNNModel.learn_one` and :meth:`~KNNModel.recommend`: the popularity counts learn the
    click, and a list shorter than ``k`` is filled with popular items (a click without history
    gets the popular list). Returns the list and the seconds spent producing it (the query's,
    measured inside the compiled call, plus the fill's).
    """

    __slots__ = ("model", "k", "items", "timestamps", "learn", "hist", "out", "_plan", "_tick", "hoff", "hlen",
                 "out_n", "seconds", "_t")

    def __init__(self, model: KNNModel, plan: BatchPlan, tick: float) -> None:
        self.model = model
        self.k = plan.k
        self.items = plan.items
        self.timestamps = plan.timestamps
        self.learn = plan.learn
        self.hist = plan.hist
        self.out = plan.out
        self._plan = plan
        self._tick = tick
        self._t = 0

    def _read(self) -> None:
        """The plan's outputs as lists, at the first :meth:`take` (a split run's other half is
        written by then)."""
        plan = self._plan
        self.hoff = plan.hoff.tolist()
        self.hlen = plan.hlen.tolist()
        self.out_n = plan.out_n.tolist()
        self.seconds = (plan.ticks * self._tick).tolist()

    def take(self) -> tuple[list[int], float]:
        t = self._t
        if t == 0:
            self._read()
        self._t = t + 1
        m, k = self.model, self.k
        pop = m._pop
        if self.learn[t]:
            pop.add(self.items[t], self.timestamps[t])
        t0 = perf_counter()
        if k <= 0:
            recs: list[int] = []
        elif self.hlen[t] == 0:
            recs = pop.top(k)
        else:
            recs = self.out[t, : self.out_n[t]].tolist()
            if len(recs) < k:
                a = self.hoff[t]
                recs = m._fill(recs, k, set(self.hist[a : a + self.hlen[t]].tolist()))
        return recs, self.seconds[t] + (perf_counter() - t0)
