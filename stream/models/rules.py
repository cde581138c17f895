"""Rule models: sequential rules (SR), association rules (AR) and first-order Markov.

All three keep ``rules[a][b]``, a weight for "b follows (or co-occurs with) a", and recommend the
partners of the session's last item by weight. They differ only in which pairs a click adds:

* Markov: the immediately preceding item, weight 1;
* SR (Kamehkhosh et al. 2017): each of the ``steps`` preceding items at distance x, weight w(x);
* AR: every earlier item of the session, both directions, weight 1.

session-rec prunes each row to its ``pruning`` heaviest partners after fitting. In a stream a row
keeps up to ``max_row`` partners (dropping the lightest half of the surplus when it overflows),
so memory is bounded and the top ``pruning`` are those a batch prune would keep unless a partner
was dropped early and later grew heavy (``max_row`` >> ``pruning`` makes that rare).

A click's learning weight (:class:`~stream.models.base.WeightsClicks`, ``--event-weights``)
multiplies every increment that click adds (the pairs where it is the later item, and for AR the
reverse pairs too) and its popularity count: a purchase at weight 5 adds what five views of it
would. At weight 1 the rows are session-rec's.

Quirk kept: scores are max-normalised per row (session-rec divides by the maximum). Quirk fixed:
an item with no rules gets popular items instead of NaN (session-rec Q5); those fill slots after
the rule partners, so rule rankings are unchanged.

The rows live in C (``_rules.c``: per item, its partners and weights in two flat arrays, a
click's look-back loop in one call, rankings computed when asked) when the extension was built,
else in Python dicts (:class:`_DictRows`, the reference the C rows are tested against on every
click). Both give the same weights, rankings and lists, and pickle to the same bytes.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Sequence
from operator import itemgetter

from stream.models.base import DEFAULT_K, WeightsClicks
from stream.models.pop import PopularityCounts, fill

WEIGHTINGS = ("div", "linear", "quadratic", "log", "same")


def step_weight(weighting: str, x: int) -> float:
    """session-rec's SR weight of a predecessor ``x`` steps back.

    >>> [round(step_weight(w, 2), 4) for w in WEIGHTINGS]
    [0.5, 0.8, 0.25, 1.7599, 1.0]
    """
    if weighting == "div":
        return 1.0 / x
    if weighting == "linear":
        return 1.0 - 0.1 * x if x <= 100 else 0.0
    if weighting == "quadratic":
        return 1.0 / (x * x)
    if weighting == "log":
        return 1.0 / math.log10(x + 1.7)
    if weighting == "same":
        return 1.0
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


_WEIGHT = itemgetter(1)


class _DictRows:
    """Rule rows in Python dicts: the reference the compiled rows (``_rules.c``) reproduce.

    ``rows[a]`` maps partner -> weight in insertion order; a row longer than ``2 * max_row`` keeps
    its ``max_row`` heaviest partners, heaviest first (ties in their previous order). A ranking
    (weight descending, ties by row order, cut to ``pruning``; 0 keeps all) is cached per row and
    kept exact in place as the row's weights grow.

    >>> r = _DictRows(pruning=2, max_row=50, weights=[0.0, 1.0, 0.5])
    >>> r.learn_steps([1, 2], 3); r.learn_steps([1], 2); r.learn_steps([1], 4); r.learn_steps([1], 4)
    >>> r.to_dict(), r.ranked(1), r.top(1, 1)
    ({1: {3: 0.5, 2: 1.0, 4: 2.0}, 2: {3: 1.0}}, [4, 2], [4])
    """

    def __init__(self, pruning: int, max_row: int, weights: Sequence[float] | None = None) -> None:
        self.pruning = pruning
        self.max_row = max_row
        self._w = list(weights) if weights is not None else [0.0]
        self.rows: dict[int, dict[int, float]] = {}
        self._ranked: dict[int, list[int]] = {}  # cached ranking per source item

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, a: int, b: int, w: float) -> None:
        rules = self.rows
        row = rules.get(a)
        if row is None:
            row = rules[a] = {}
        old = row.get(b)
        v = row[b] = (old or 0.0) + w
        r = self._ranked.get(a)
        if r is not None:
            if w > 0.0:
                # fast paths: ``b`` keeps its place, or stays below a full list (a new partner is
                # the row's newest: it follows equal weights)
                n = self.pruning
                if old is None:
                    if len(r) < n or n <= 0 or v > row[r[-1]]:
                        self._rerank(a, r, row, b, v, -1)
                elif b in r:
                    i = r.index(b)
                    if i and row[r[i - 1]] <= v:
                        self._rerank(a, r, row, b, v, i)
                elif len(r) < n or n <= 0 or v >= row[r[-1]]:
                    self._rerank(a, r, row, b, v, -1)
            else:  # weights only grow in the incremental update (SR "linear" can add <= 0)
                del self._ranked[a]
        if len(row) > 2 * self.max_row:
            self._prune(a, row)

    def learn_steps(self, history: Sequence[int], item: int, scale: float = 1.0) -> None:
        """``add(history[-x], item, weights[x] * scale)`` for x = 1 .. steps (SR's look-back)."""
        w = self._w
        n = len(history)
        for x in range(1, min(len(w) - 1, n) + 1):
            self.add(history[n - x], item, w[x] * scale)

    def learn_pairs(self, history: Sequence[int], item: int, scale: float = 1.0) -> None:
        """``add(prev, item, scale)`` and ``add(item, prev, scale)`` for every earlier click (AR)."""
        for prev in history:
            self.add(prev, item, scale)
            self.add(item, prev, scale)

    def _prune(self, a: int, row: dict[int, float]) -> None:
        """Keep ``a``'s ``max_row`` heaviest partners (ties: earliest inserted)."""
        # sorted() is stable with reverse=True (equal weights keep insertion order): heapq.nlargest's
        # result, computed in C
        self.rows[a] = dict(sorted(row.items(), key=_WEIGHT, reverse=True)[: self.max_row])
        if not 0 < self.pruning <= self.max_row:  # else the top ``pruning`` keep their order
            self._ranked.pop(a, None)

    def _rerank(self, a: int, r: list[int], row: dict[int, float], b: int, v: float, i: int) -> None:
        """Update the cached ranking ``r`` of ``a`` in place after ``row[b]`` grew to ``v``
        (``i``: ``b``'s index in ``r``, -1 if not listed).

        Only ``b`` moved (up), so the new ranking is ``r`` with ``b`` re-inserted: after partners
        heavier than ``v``, among those of equal weight by insertion into the row (``sorted`` is
        stable), before lighter ones; a partner it displaces from a full list drops out.
        """
        listed = i >= 0
        if listed:
            del r[i]
            j = i
        else:
            j = len(r)
        while j > 0 and row[r[j - 1]] < v:
            j -= 1
        # a tie: order by insertion into the row (nothing to move if b is the newest partner)
        if j > 0 and row[r[j - 1]] == v and next(reversed(row)) != b:
            keys = list(row)
            ib = keys.index(b)
            while j > 0 and row[r[j - 1]] == v and keys.index(r[j - 1]) > ib:
                j -= 1
        n = self.pruning
        if not listed and 0 < n <= len(r):
            if j >= len(r):
                return
            r.pop()
        r.insert(j, b)

    def ranked(self, a: int) -> list[int]:
        """Partners of ``a``, heaviest first, pruned to ``pruning`` (a cache: do not modify)."""
        r = self._ranked.get(a)
        if r is None:
            row = self.rows.get(a)
            if not row:
                return []
            n = self.pruning if self.pruning > 0 else len(row)
            # stable: ties keep insertion order, as Counter.most_common does
            r = sorted(row, key=row.__getitem__, reverse=True)[:n]
            self._ranked[a] = r
        return r

    def top(self, a: int, k: int) -> list[int]:
        return self.ranked(a)[:k]

    def scores(self, a: int) -> dict[int, float]:
        """``{partner: weight / the top weight}`` over ``a``'s pruned ranking (session-rec's)."""
        r = self.ranked(a)
        if not r:
            return {}
        row = self.rows[a]
        top = row[r[0]]
        return {b: row[b] / top for b in r}

    def to_dict(self) -> dict[int, dict[int, float]]:
        return {a: dict(self.rows[a]) for a in sorted(self.rows)}  # as the compiled rows: by item int

    def export(self) -> tuple[bytes, bytes, bytes, bytes]:
        """(sources, lengths, partners, weights) as int32, int32, int32, float64 bytes."""
        rows = sorted(self.rows.items())
        src, lens, part, wts = array("i"), array("i"), array("i"), array("d")
        for a, row in rows:
            src.append(a)
            lens.append(len(row))
            part.extend(row)
            wts.extend(row.values())
        return src.tobytes(), lens.tobytes(), part.tobytes(), wts.tobytes()

    def load(self, sources: bytes, lengths: bytes, partners: bytes, weights: bytes) -> None:
        src, lens, part, wts = array("i"), array("i"), array("i"), array("d")
        for arr, raw in ((src, sources), (lens, lengths), (part, partners), (wts, weights)):
            arr.frombytes(raw)
        e = 0
        for a, n in zip(src, lens):
            for b, w in zip(part[e: e + n], wts[e: e + n]):
                self.add(a, b, w)
            e += n


try:
    from stream.models._rules import RuleRows as _CompiledRows
except ImportError:  # built without a C compiler: the same rows in Python
    _CompiledRows = None

#: The rows the rule models use: compiled when the extension was built (``setup.py``), unless
#: ``STREAMREC_RULES_COMPILED=0``.
ROWS: type = (_CompiledRows if _CompiledRows is not None
              and os.environ.get("STREAMREC_RULES_COMPILED", "1") not in ("0", "false", "no", "off")
              else _DictRows)


class _RuleModel(WeightsClicks):
    """Shared storage, pruning and ranking of the rule models."""

    _w: list[float] | None = None  # SR's step weights (w[x] for x steps back)

    def __init__(self, pruning: int = 20, max_row: int = 50, fallback: bool = True) -> None:
        if pruning < 0:
            raise ValueError("pruning must be >= 0 (0 keeps every partner)")
        if max_row < 1:
            raise ValueError("max_row must be >= 1")
        self.pruning = pruning
        self.max_row = max_row
        self.fallback = fallback
        self._rows = ROWS(pruning, max_row, self._w)
        self._pop = PopularityCounts(half_life=None)

    @property
    def rules(self) -> dict[int, dict[int, float]]:
        """Every row as ``{item: {partner: weight}}`` (a copy; items ascending, partners in row order)."""
        return self._rows.to_dict()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_rows"] = self._rows.export()  # the same bytes from either kind of rows
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        rows = state.pop("_rows")
        self.__dict__.update(state)
        self._rows = ROWS(self.pruning, self.max_row, self._w)
        self._rows.load(*rows)  # type: ignore[misc]

    def ranked(self, a: int) -> list[int]:
        """Partners of ``a``, heaviest first (ties: first added), pruned to ``pruning``."""
        return self._rows.ranked(a)

    def scores(self, a: int) -> dict[int, float]:
        """Max-normalised scores of ``a``'s pruned partners (session-rec's output)."""
        return self._rows.scores(a)

    def recommend(
        self, history: Sequence[int], timestamp: float, k: int = DEFAULT_K, session: int | None = None
    ) -> list[int]:
        if not history:
            return self._pop.top(k) if self.fallback else []
        recs = self._rows.top(history[-1], k)
        if self.fallback and len(recs) < k:
            recs = fill(recs, self._pop.top(k + len(recs)), k)  # top() made a new list
        return recs


class SequentialRules(_RuleModel):
    """SR: sequential rules with a step-weighted look-back (session-rec's ``sr.py``).

    Parameters
    ----------
    steps
        How many preceding items each click is paired with.
    weighting
        Weight of a predecessor x steps back: ``div`` 1/x, ``linear`` 1-0.1x, ``quadratic`` 1/x²,
        ``log`` 1/log10(x+1.7), ``same`` 1.
    pruning
        Partners kept per item when ranking (0 keeps all).
    max_row
        Partners stored per item in the stream (memory bound).
    fallback
        Fill short lists with popular items.

    A click's learning weight multiplies the step weights it adds, w(x) * weight, and its
    popularity count.

    Examples
    --------
    >>> m = SequentialRules(steps=2)
    >>> for i, item in enumerate([1, 2, 3]): m.learn_one(0, item, float(i), [1, 2, 3][:i])
    >>> m.rules
    {1: {2: 1.0, 3: 0.5}, 2: {3: 1.0}}
    >>> m.scores(1), m.recommend([9, 1], 3.0, k=2)
    ({2: 1.0, 3: 0.5}, [2, 3])
    >>> m.learn_one(1, 4, 4.0, [1], weight=5.0)  # a purchase of 4 after 1, at weight 5
    >>> m.rules[1], m.recommend([1], 5.0, k=1)
    ({2: 1.0, 3: 0.5, 4: 5.0}, [4])

    References
    ----------
    Kamehkhosh, Jannach & Ludewig, "A comparison of frequent pattern techniques and a deep
    learning method for session-based recommendation", TempRec@RecSys 2017.
    """

    name = "sr"

    def __init__(
        self,
        steps: int = 10,
        weighting: str = "div",
        pruning: int = 20,
        max_row: int = 50,
        fallback: bool = True,
    ) -> None:
        step_weight(weighting, 1)  # validates
        if steps < 1:
            raise ValueError("steps must be >= 1")
        self.steps = steps
        self.weighting = weighting
        self._w = [0.0] + [step_weight(weighting, x) for x in range(1, steps + 1)]
        super().__init__(pruning=pruning, max_row=max_row, fallback=fallback)

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        self._rows.learn_steps(history, item, weight)
        self._pop.add(item, timestamp, weight)


class AssociationRules(_RuleModel):
    """AR: symmetric co-occurrence of every pair of clicks in a session (session-rec ``ar.py``).

    A click's learning weight is what each of its pairs adds (both directions), and its
    popularity count.

    Examples
    --------
    >>> m = AssociationRules()
    >>> for i, item in enumerate([1, 2, 1]): m.learn_one(0, item, float(i), [1, 2, 1][:i])
    >>> m.rules
    {1: {2: 2.0, 1: 2.0}, 2: {1: 2.0}}
    """

    name = "ar"

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        self._rows.learn_pairs(history, item, weight)
        self._pop.add(item, timestamp, weight)


class MarkovChain(_RuleModel):
    """First-order Markov: counts of immediate successors (session-rec ``markov.py``).

    A click's learning weight is what it adds to its predecessor's count, and to its popularity.

    Examples
    --------
    >>> m = MarkovChain()
    >>> for i, item in enumerate([1, 2, 1, 3]): m.learn_one(0, item, float(i), [1, 2, 1, 3][:i])
    >>> m.rules
    {1: {2: 1.0, 3: 1.0}, 2: {1: 1.0}}
    """

    name = "markov"

    def learn_one(self, session: int, item: int, timestamp: float, history: Sequence[int],
                  weight: float = 1.0) -> None:
        if history:
            self._rows.add(history[-1], item, weight)
        self._pop.add(item, timestamp, weight)
