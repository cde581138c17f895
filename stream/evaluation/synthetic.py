"""A realistic synthetic click stream, with drift scenarios to test the monitor against.

The shop has ``n_items`` items in ``n_categories`` categories. Item popularity is Zipf-like
(exponent ``zipf``); each item has a few "next items" in its own category (weighted Zipf-like
too), and a click follows one of them with probability ``follow``, otherwise it jumps to a popular
item. So sequence models have real structure to learn and popularity alone is a weaker baseline.
Session lengths are geometric with mean ``mean_session_length``; ``concurrency`` sessions are live
at once and interleave; the shop's clock advances by exponential gaps at ``rate`` clicks/s.

Scenarios (``scenario``; the change starts at event ``drift_at``):

* ``none`` — stationary;
* ``popularity-shift`` — abrupt: a new popularity ranking of the same catalogue;
* ``new-catalog`` — abrupt: a share ``new_item_share`` of traffic moves to items never seen before;
* ``session-length`` — abrupt: mean session length times ``length_factor``;
* ``gradual-popularity`` — the new ranking takes over linearly over ``drift_length`` events.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from math import log

import numpy as np

from stream.events import Event

SCENARIOS = ("none", "popularity-shift", "new-catalog", "session-length", "gradual-popularity")


class _Block:
    """Uniform random numbers drawn in blocks (per-event numpy calls are slow)."""

    __slots__ = ("rng", "buf", "pos")

    def __init__(self, rng: np.random.Generator, size: int = 1 << 16) -> None:
        self.rng = rng
        self.buf: list[float] = rng.random(size).tolist()
        self.pos = 0

    def next(self) -> float:
        pos = self.pos
        if pos == len(self.buf):
            self.buf = self.rng.random(len(self.buf)).tolist()
            pos = 0
        self.pos = pos + 1
        return self.buf[pos]


class _Catalogue:
    """Items with Zipf popularity and per-item successor lists within a category."""

    def __init__(self, rng: np.random.Generator, n_items: int, n_categories: int, zipf: float,
                 successors: int, prefix: str) -> None:
        self.names = [f"{prefix}{i}" for i in range(n_items)]
        self.category = [f"c{i % n_categories}" for i in range(n_items)]
        weights = 1.0 / np.arange(1, n_items + 1) ** zipf
        self.cdf = (np.cumsum(weights) / weights.sum()).tolist()
        self.rank_to_item = rng.permutation(n_items).tolist()
        self.shifted = rng.permutation(n_items).tolist()  # the ranking after a popularity shift
        by_cat: list[list[int]] = [[] for _ in range(n_categories)]
        for i in range(n_items):
            by_cat[i % n_categories].append(i)
        sw = 1.0 / np.arange(1, successors + 1) ** 1.2
        self.succ_cdf = (np.cumsum(sw) / sw.sum()).tolist()
        self.succ: list[list[int]] = []
        for i in range(n_items):
            pool = by_cat[i % n_categories]
            self.succ.append([pool[j] for j in rng.choice(len(pool), size=successors, replace=True)])

    def popular(self, u: float, shifted: bool) -> int:
        r = bisect_right(self.cdf, u)
        if r >= len(self.cdf):
            r = len(self.cdf) - 1
        return (self.shifted if shifted else self.rank_to_item)[r]

    def successor(self, item: int, u: float) -> int:
        j = bisect_right(self.succ_cdf, u)
        return self.succ[item][min(j, len(self.succ_cdf) - 1)]


class SyntheticStream:
    """An iterable of :class:`~stream.events.Event`, reproducible from ``seed``.

    Examples
    --------
    >>> events = list(SyntheticStream(events=1000, seed=1))
    >>> len(events), events[0].session_id, events[0].item_id.startswith("i")
    (1000, 's1-0', True)
    >>> all(a.timestamp <= b.timestamp for a, b in zip(events, events[1:]))
    True
    >>> drifted = list(SyntheticStream(events=2000, seed=1, scenario="new-catalog", drift_at=1000))
    >>> any(e.item_id.startswith("n") for e in drifted[:1000]), any(e.item_id.startswith("n") for e in drifted[1000:])
    (False, True)
    """

    def __init__(
        self,
        events: int = 100_000, seed: int = 0,  # the stream
        scenario: str = "none", drift_at: int | None = None, drift_length: int = 100_000,  # its drift
        n_items: int = 5_000, n_categories: int = 50, zipf: float = 1.1, follow: float = 0.7,
        successors: int = 8,  # the catalogue and its successor lists
        mean_session_length: float = 5.0, concurrency: int = 200, rate: float = 50.0,  # the sessions
        new_item_share: float = 0.3, length_factor: float = 3.0,  # the scenarios' sizes
        start_ts: float = 1_700_000_000.0,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
        if events < 0 or n_items < 2 or concurrency < 1 or rate <= 0 or mean_session_length < 1 or not zipf >= 0:
            raise ValueError(
                "events >= 0, n_items >= 2, concurrency >= 1, rate > 0, mean_session_length >= 1, zipf >= 0"
            )
        self.events = events
        self.seed = seed
        self.scenario = scenario
        self.drift_at = (events // 2 if drift_at is None else drift_at) if scenario != "none" else None
        self.drift_length = max(1, drift_length)
        self.n_items = n_items
        self.n_categories = n_categories
        self.zipf = zipf
        self.follow = follow
        self.successors = successors
        self.mean_session_length = mean_session_length
        self.concurrency = concurrency
        self.rate = rate
        self.new_item_share = new_item_share
        self.length_factor = length_factor
        self.start_ts = start_ts

    def __len__(self) -> int:
        return self.events

    def __iter__(self) -> Iterator[Event]:
        rng = np.random.default_rng(self.seed)
        u = _Block(rng)
        gaps = _Block(np.random.default_rng(self.seed + 1_000_003))
        old = _Catalogue(rng, self.n_items, self.n_categories, self.zipf, self.successors, "i")
        new = _Catalogue(rng, max(2, self.n_items // 2), self.n_categories, self.zipf,
                         self.successors, "n")
        scenario, drift_at = self.scenario, self.drift_at
        follow = self.follow
        mean_gap = 1.0 / self.rate
        ts = self.start_ts
        # live sessions: slot -> [session name, clicks left, last item, catalogue]
        slots: list[list | None] = [None] * self.concurrency
        n_sessions = 0
        seed = self.seed
        for n in range(self.events):
            drifted = drift_at is not None and n >= drift_at
            j = int(u.next() * self.concurrency)
            s = slots[j]
            if s is None or s[1] <= 0:
                mean_len = self.mean_session_length
                if drifted and scenario == "session-length":
                    mean_len *= self.length_factor
                p = 1.0 / mean_len
                length = 1 + int(log(1.0 - u.next()) / log(1.0 - p)) if p < 1.0 else 1
                cat = old
                if drifted and scenario == "new-catalog" and u.next() < self.new_item_share:
                    cat = new
                s = slots[j] = [f"s{seed}-{n_sessions}", length, -1, cat]
                n_sessions += 1
            cat = s[3]
            shifted = False
            if drifted:
                if scenario == "popularity-shift":
                    shifted = True
                elif scenario == "gradual-popularity":
                    shifted = u.next() < (n - drift_at) / self.drift_length
            last = s[2]
            if last >= 0 and u.next() < follow:
                item = cat.successor(last, u.next())
            else:
                item = cat.popular(u.next(), shifted)
            s[1] -= 1
            s[2] = item
            ts += -mean_gap * log(1.0 - gaps.next())
            yield Event(s[0], cat.names[item], round(ts, 3), "view", None, cat.category[item])
