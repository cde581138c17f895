"""Compiled (numba) hot path of the session-kNN query, over :class:`SessionIndex`'s flat arrays.

Why one long module: numba compiles these functions together and they call each other; each
mirrors one numpy step of :mod:`stream.models.knn.index`, so they are read side by side.

Three kernels, each one pass over plain int64/int32/float64 arrays with reusable dense scratch
arrays (per-slot candidate marker, per-item score accumulator + touched list), so a query does no
``concatenate``/``bincount``/``argpartition`` round trips:

* :func:`neighbours` — candidate sessions from the posting lists with their (weighted) overlap,
  "recent" sampling (the ``m`` latest by timestamp), the similarity and the top-``k`` neighbours;
* :func:`item_scores` — per-item sums of the neighbours' contributions (plain, V-SKNN step decay,
  STAN/VSTAN position factors), optional IDF boost;
* :func:`top_items` — the final top-``k`` (score descending, ties by the smaller item int);
* :func:`query_history` — the three in one call, the query prepared from the session's clicks
  (:func:`_query`): the top list, or every candidate item's score.

They reproduce the numpy path of :mod:`stream.models.knn.index` operation by operation (same
formulas, same summation order, same tie rules); only ``exp``/``log`` may differ from numpy's SIMD
versions in the last bit. Compiled lazily on first call and cached on disk (``cache=True``, next to
this module); when no cache location is writable the functions are compiled per process instead.

Tie rules (shared with the numpy path): "recent" sampling keeps, among sessions with the threshold
timestamp, the larger slots; the top-``k`` neighbours keep, among sessions with the threshold
similarity, the more recent then the larger slot; neighbours keep the candidates' order (first
appearance in the posting lists of the session's items, in first-click order), in which their items
are summed.

Examples
--------
>>> import numpy as np
>>> top_items(np.array([5, 3, 9, 4]), np.array([1.0, 2.0, 1.0, 0.0]), 3).tolist()
[3, 5, 9]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from time import perf_counter, sleep
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

SIM_JACCARD, SIM_COSINE_SET, SIM_BINARY, SIM_VEC, SIM_COSINE = 0, 1, 2, 3, 4
CONTRIB_PLAIN, CONTRIB_VSKNN, CONTRIB_STAN = 0, 1, 2
DECAY = {"div": 0, "quadratic": 1, "linear": 2, "log": 3, "same": 4}  # vsknn.DECAY mirrors this


def _jit(fn: Callable[..., Any], nogil: bool = False) -> Any:
    """``njit(cache=True)``, or without the disk cache when no cache location is usable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)
            return numba.njit(cache=True, nogil=nogil)(fn)
    except Exception:  # noqa: BLE001 -- e.g. "no locator available" in a read-only install
        return numba.njit(cache=False, nogil=nogil)(fn)


@intrinsic
def _cycles(typingctx: Any) -> Any:
    """The CPU's time-stamp counter (``llvm.readcyclecounter``), for per-click timing inside a
    batch call; :func:`tick_seconds` converts."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


_KEY_LO = 0x3C30  # the top 16 bits of 2.0**-60: sign, exponent and 4 bits of mantissa
_NB = 0x4130 - _KEY_LO  # buckets from 2**-60 to 2**20, sixteen per binade
_DEN = 128  # session sizes whose similarity denominator is looked up


@_jit
def _bucket(v: float) -> int:
    """A bucket of ``v`` that is monotone in ``v``: the top 16 bits of its IEEE 754 form (sign,
    exponent, 4 mantissa bits) from :data:`_KEY_LO`; below 2**-60 (and <= 0) in bucket 0, from
    2**20 up in the last."""
    b = (_f2i(v) >> 48) - _KEY_LO
    if b < 0:
        return 0
    if b >= _NB:
        return _NB - 1
    return b


@_jit
def _bucket_edge(b: int) -> float:
    """The smallest value of bucket ``b`` > 0 (:func:`_bucket`)."""
    return _i2f((b + _KEY_LO) << 48)


@intrinsic
def _f2i(typingctx: Any, x: Any) -> Any:
    """The bits of a float64 as an int64."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _i2f(typingctx: Any, x: Any) -> Any:
    """The float64 of an int64's bits."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@_jit
def _worse(a1: float, b1: float, c1: int, a2: float, b2: float, c2: int) -> bool:
    """Key 1 < key 2 in the order (a, b, c), all descending-is-better."""
    if a1 != a2:
        return a1 < a2
    if b1 != b2:
        return b1 < b2
    return c1 < c2


@_jit
def _kth(x: np.ndarray, r: int) -> float:
    """``np.partition(x, r)[r]`` (the value of rank ``r``, 0 = smallest) by quickselect on a copy."""
    a = x.copy()
    lo = 0
    hi = a.size - 1
    while lo < hi:
        mid = (lo + hi) // 2  # median of three as the pivot
        p0, p1, p2 = a[lo], a[mid], a[hi]
        if p0 > p1:
            p0, p1 = p1, p0
        if p1 > p2:
            p1 = p2
            if p0 > p1:
                p1 = p0
        pivot = p1
        i = lo
        j = hi
        while i <= j:  # Hoare partition
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if r <= j:
            hi = j
        elif r >= i:
            lo = i
        else:
            return a[r]
    return a[r]


@_jit
def _threshold(x: np.ndarray, r: int) -> tuple[float, int, int]:
    """The value of rank ``r`` in ``x`` (:func:`_kth`) and how many entries are above / equal to it."""
    thr = _kth(x, r)
    n_above, n_eq = _above_equal(x, x.size, thr)
    return thr, n_above, n_eq


@_jit
def _above_equal(x: np.ndarray, n: int, thr: float) -> tuple[int, int]:
    """How many of ``x[:n]`` are above ``thr``, and how many equal it."""
    n_above = 0
    n_eq = 0
    for j in range(n):
        if x[j] > thr:
            n_above += 1
        elif x[j] == thr:
            n_eq += 1
    return n_above, n_eq


@_jit
def _threshold_hist(x: np.ndarray, n: int, r: int, lo: float, hi: float) -> tuple[float, int, int]:
    """:func:`_threshold` of ``x[:n]`` (all within [lo, hi]) by a 256-bucket histogram: the
    bucket holding rank ``r`` is found by counting, then only its entries are selected (the
    bucket index is monotone in x, so the result is exactly the order statistic)."""
    if not hi > lo:
        return lo, 0, n
    nb = 256
    scale = nb / (hi - lo)
    if not (hi - lo < np.inf and scale < np.inf):  # an infinite time, or a denormal span
        return _threshold(x[:n], r)
    counts = np.zeros(nb, dtype=np.int64)
    bk = np.empty(n, dtype=np.int32)
    for j in range(n):
        b = int((x[j] - lo) * scale)
        if b >= nb:
            b = nb - 1
        bk[j] = b
        counts[b] += 1
    cum = 0
    k = 0
    while cum + counts[k] <= r:
        cum += counts[k]
        k += 1
    inb = np.empty(counts[k], dtype=np.float64)
    e = 0
    for j in range(n):
        if bk[j] == k:
            inb[e] = x[j]
            e += 1
    thr = _kth(inb, r - cum)
    n_above, n_eq = _above_equal(inb, e, thr)
    return thr, n - cum - counts[k] + n_above, n_eq


@_jit
def _heap_select(a: np.ndarray, b: np.ndarray, c: np.ndarray, n: int, k: int) -> np.ndarray:
    """Indices of the best ``k`` of ``n`` entries with ``a > 0`` by the key ``(a, b, c)``, best
    first (a min-heap of size k, worst at the root, then a heap sort)."""
    heap = np.empty(min(k, n), dtype=np.int64)
    h = 0
    for j in range(n):
        if not a[j] > 0.0:
            continue
        if h < heap.size:
            _sift_up(heap, h, j, a, b, c)
            h += 1
        else:
            q = heap[0]
            if _worse(a[q], b[q], c[q], a[j], b[j], c[j]):
                _sift_down(heap, h, j, a, b, c)
    for e in range(h - 1, 0, -1):  # heap sort: worst to the back
        last = heap[e]
        heap[e] = heap[0]
        _sift_down(heap, e, last, a, b, c)
    return heap[:h]


@_jit
def _sift_up(heap: np.ndarray, pos: int, j: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """Put entry ``j`` at the new leaf ``heap[pos]`` and move it up past every parent it is worse
    than (worst at the root)."""
    a1, b1, c1 = (a[j], b[j], c[j])
    while pos > 0:
        par = (pos - 1) // 2
        q = heap[par]
        if not _worse(a1, b1, c1, a[q], b[q], c[q]):
            break
        heap[pos] = q
        pos = par
    heap[pos] = j


@_jit
def _sift_down(heap: np.ndarray, h: int, j: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """Put entry ``j`` at the root of ``heap[:h]`` and restore the (worst at the root) order."""
    a1, b1, c1 = (a[j], b[j], c[j])
    pos = 0
    while True:
        ch = 2 * pos + 1
        if ch >= h:
            break
        ac, bc, cc = (a[heap[ch]], b[heap[ch]], c[heap[ch]])
        if ch + 1 < h:
            ar, br, cr = (a[heap[ch + 1]], b[heap[ch + 1]], c[heap[ch + 1]])
            if _worse(ar, br, cr, ac, bc, cc):
                ch += 1
                ac, bc, cc = ar, br, cr
        if _worse(ac, bc, cc, a1, b1, c1):
            heap[pos] = heap[ch]
            pos = ch
        else:
            break
    heap[pos] = j


def _neighbours(
    q_items: np.ndarray,  # int64, the session's distinct items
    q_w: np.ndarray,  # float64, their weights (1.0 for plain counts)
    pstart: np.ndarray,  # int64 per item: posting list start in `pflat`
    plen: np.ndarray,  # int64 per item: posting list length
    pflat: np.ndarray,  # int32: the posting lists (session slots, oldest first)
    n_items: int,
    exclude: int,
    time: np.ndarray,  # float64 per slot
    n_unique: np.ndarray,  # int64 per slot
    mark: np.ndarray,  # int64 per slot, all 0 between calls
    m: int,
    k: int,
    sim_kind: int,
    sa: float,
    sb: float,
    ts: float,
) -> tuple[np.ndarray, np.ndarray]:
    n_cand = 0
    for j in range(q_items.size):
        if q_items[j] < n_items:
            n_cand += plen[q_items[j]]
    slots = np.empty(n_cand, dtype=np.int64)
    ov = np.empty(n_cand, dtype=np.float64)
    tc = np.empty(n_cand, dtype=np.float64)  # the candidates' times, read once
    t_lo = np.inf
    t_hi = -np.inf
    n = 0
    if exclude >= 0:
        mark[exclude] = -1  # the session itself: skipped while gathering
    for j in range(q_items.size):
        it = q_items[j]
        if it >= n_items:
            continue
        w = q_w[j]
        a = pstart[it]
        for p in range(a, a + plen[it]):
            s = np.int64(pflat[p])
            c = mark[s]
            if c == 0:
                slots[n] = s
                ov[n] = 0.0 + w
                t = time[s]
                tc[n] = t
                if t < t_lo:
                    t_lo = t
                if t > t_hi:
                    t_hi = t
                n += 1
                mark[s] = n
            elif c > 0:
                ov[c - 1] += w
    for j in range(n):
        mark[slots[j]] = 0
    if exclude >= 0:
        mark[exclude] = 0
    # "recent" sampling: the m latest; at the threshold time, the larger slots
    if m > 0 and n > m:
        thr, n_above, n_eq = _threshold_hist(tc, n, n - m, t_lo, t_hi)
        need = m - n_above
        s_min = -1
        if n_eq > need:
            eq = np.empty(n_eq, dtype=np.int64)
            e = 0
            for j in range(n):
                if tc[j] == thr:
                    eq[e] = slots[j]
                    e += 1
            eq.sort()
            s_min = eq[n_eq - need]
        o = 0
        for j in range(n):
            if tc[j] > thr or (tc[j] == thr and slots[j] >= s_min):
                slots[o] = slots[j]
                ov[o] = ov[j]
                tc[o] = tc[j]
                o += 1
        n = o
        t_lo = thr  # the kept candidates' earliest time
    # similarity (formulas and operation order of the numpy models), then the top-k by
    # (similarity, time, slot) with a min-heap of size k, scanned from the most recently posted
    # candidates (which tend to be the most similar, so it rarely changes). With STAN's recency
    # decay (a factor <= 1 for a time not after the query's, at most `late` for one after it), k
    # candidates keep at least (k-th best similarity before the decay) * (the smallest decay), and
    # so at least (the lower edge of its bucket) * (the smallest decay): a candidate whose
    # similarity before its decay, times its largest possible decay, is below that cannot be among
    # the k, and neither can one below the heap's root once it is full; their decay is not
    # computed. Later candidates are common in a worker: a poll returns each
    # partition's records in turn, so the clicks of one partition are learnt before earlier ones
    # of the next
    sims = np.empty(n, dtype=np.float64)
    decay = sim_kind == 4 and sb > 0.0
    counts = np.zeros(_NB if decay else 1, dtype=np.int32)
    if sim_kind == 4:  # weighted cosine (STAN, VSTAN, V-SKNN cosine), before the recency decay
        # the denominators sa * sqrt(|s|) looked up for the usual session sizes (same expression,
        # same bits), and with the decay the similarities counted by binade sixteenths
        # (:func:`_bucket`) for the bound below
        den = np.empty(_DEN, dtype=np.float64)
        for x in range(_DEN):
            den[x] = sa * math.sqrt(float(x))
        for j in range(n):
            x = n_unique[slots[j]]
            v = ov[j] / (den[x] if x < _DEN else sa * math.sqrt(float(x)))
            sims[j] = v
            if decay:
                counts[_bucket(v)] += 1
    else:
        for j in range(n):
            li = ov[j]
            la = float(n_unique[slots[j]])
            if sim_kind == 0:  # SKNN jaccard / tanimoto
                v = li / (la + sa - li)
            elif sim_kind == 1:  # SKNN cosine (session-rec's, times |s|)
                v = li / math.sqrt(la) * math.sqrt(sa)
            elif sim_kind == 2:  # SKNN binary
                v = 2.0 * li / (2.0 * li + la + sa)
            else:  # V-SKNN vec
                v = li / sa
            sims[j] = v
    bound = -np.inf
    late = 1.0  # the largest decay of a candidate later than the query (> 1), with a margin
    if decay and t_hi > ts:
        late = math.exp((t_hi - ts) / sb) * (1.0 + 1e-9)
    if decay and n > k:  # the k-th best similarity is at least its bucket's lower edge
        cum = 0
        b = _NB - 1
        while cum + counts[b] < k:
            cum += counts[b]
            b -= 1
        if b > 0:
            kth = _bucket_edge(b)
            bound = kth * math.exp(-(ts - t_lo) / sb) * (1.0 - 1e-9) / late  # margin for exp's rounding
    heap = np.empty(min(k, n), dtype=np.int64)
    hs = heap.size
    h = 0
    for jj in range(n):
        j = n - 1 - jj
        v = sims[j]
        if v < bound:
            continue
        if decay:
            if h == hs and (v < sims[heap[0]] if tc[j] <= ts else v * late < sims[heap[0]]):
                continue
            v = v * math.exp(-(ts - tc[j]) / sb)
            sims[j] = v
        if not v > 0.0:
            continue
        t1 = tc[j]
        s1 = slots[j]
        if h < hs:
            pos = h
            h += 1
            while pos > 0:  # sift up inline (not _sift_up): the query's hottest heap, values in registers
                par = (pos - 1) // 2
                q = heap[par]
                if _worse(v, t1, s1, sims[q], tc[q], slots[q]):
                    heap[pos] = q
                    pos = par
                else:
                    break
            heap[pos] = j
        else:
            q = heap[0]
            if _worse(sims[q], tc[q], slots[q], v, t1, s1):
                _sift_down(heap, h, j, sims, tc, slots)
    # the neighbours in candidate order
    sel = heap[:h].copy()
    sel.sort()
    out_s = np.empty(h, dtype=np.int64)
    out_v = np.empty(h, dtype=np.float64)
    for e in range(h):
        out_s[e] = slots[sel[e]]
        out_v[e] = sims[sel[e]]
    return out_s, out_v


def _item_scores(
    slots: np.ndarray,  # int64, sorted
    sims: np.ndarray,
    start: np.ndarray,  # int64 per slot
    n_unique: np.ndarray,  # int64 per slot
    flat: np.ndarray,  # int32 (2, n): items, last click positions
    lp: np.ndarray,  # float64 per item (>= every item int), all 0 between calls
    q_items: np.ndarray,  # int64, the session's distinct items
    q_pos: np.ndarray,  # float64, their last 1-based positions
    q_len: int,
    contrib_kind: int,
    c1: float,  # V-SKNN: decay kind; STAN: lambda_inh (<= 0: off)
    c2: float,  # STAN: lambda_ipw (<= 0: off)
    drop_seen: bool,
    acc: np.ndarray,  # float64 per item, all 0 between calls
    imark: np.ndarray,  # int8 per item, all 0 between calls
    events: np.ndarray,  # float64 per item
    n_sessions: float,
    idf_w: float,  # 0: no IDF boost
) -> tuple[np.ndarray, np.ndarray]:
    for j in range(q_items.size):
        lp[q_items[j]] = q_pos[j]
    total = 0
    ns = slots.size
    st = np.empty(ns, dtype=np.int64)
    nu = np.empty(ns, dtype=np.int64)
    for j in range(ns):  # independent loads first: the memory system overlaps the misses
        st[j] = start[slots[j]]
        nu[j] = n_unique[slots[j]]
        total += nu[j]
    touch = 0
    for j in range(ns):  # each segment's first and last entries, summed so the loads are kept
        e = st[j] + nu[j] - 1
        touch += flat[0, st[j]] + flat[1, st[j]] + flat[0, e] + flat[1, e]
    if touch == -1:  # (never: item ints and positions are >= 0)
        total += 1
    touched = np.empty(total, dtype=np.int64)
    nt = 0
    L = float(q_len)
    # STAN's exp(-|pos - i*| / lambda_inh) looked up for the small (integer) distances: the same
    # expression as below, so the same bits, without one exp per neighbour item
    n_tab = 32 if contrib_kind == 2 and c1 > 0.0 else 0
    inh = np.empty(n_tab, dtype=np.float64)
    for d in range(n_tab):
        inh[d] = math.exp(-abs(float(d)) / c1)
    for j in range(slots.size):
        a = st[j]
        b = a + nu[j]
        sim = sims[j]
        i_star = 0.0
        p_star = 0.0
        for x in range(a, b):
            lpi = lp[flat[0, x]]
            if lpi > p_star:
                p_star = lpi
            if lpi > 0.0:
                px = float(flat[1, x])
                if px > i_star:
                    i_star = px
        base = sim
        if contrib_kind == 1:
            step = L - p_star + 1.0
            dk = int(c1)
            if dk == 0:
                d = 1.0 / step
            elif dk == 1:
                d = 1.0 / (step * step)
            elif dk == 2:
                d = 1.0 - 0.1 * step if step <= 100 else 0.0
            elif dk == 3:
                d = 1.0 / math.log10(step + 1.7)
            else:
                d = 1.0
            base = sim * d
        e_ipw = 1.0
        if contrib_kind == 2 and c2 > 0.0:
            e_ipw = math.exp((p_star - L) / c2)
        for x in range(a, b):
            it = flat[0, x]
            if drop_seen and lp[it] > 0.0:
                continue
            v = base
            if contrib_kind == 2:
                if c1 > 0.0:
                    dd = abs(float(flat[1, x]) - i_star)
                    v = v * (inh[int(dd)] if dd < n_tab else math.exp(-dd / c1))
                if c2 > 0.0:
                    v = v * e_ipw
            if imark[it] == 0:
                imark[it] = 1
                touched[nt] = it
                nt += 1
                acc[it] = 0.0 + v
            else:
                acc[it] += v
    items = touched[:nt].copy()
    scores = np.empty(nt, dtype=np.float64)
    for j in range(nt):
        it = items[j]
        sc = acc[it]
        if idf_w != 0.0:
            ev = events[it]
            idf = math.log(n_sessions / ev) if ev > 0 else 0.0
            sc = sc + sc * idf * idf_w
        scores[j] = sc
        acc[it] = 0.0
        imark[it] = 0
    for j in range(q_items.size):
        lp[q_items[j]] = 0.0
    return items, scores


def _top_items(items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    hj = _heap_select(scores, np.zeros(items.size), -items, items.size, k)  # ties: smaller item
    out = np.empty(hj.size, dtype=np.int64)
    for e in range(hj.size):
        out[e] = items[hj[e]]
    return out


neighbours = _jit(_neighbours)
item_scores = _jit(_item_scores)
top_items = _jit(_top_items)


W_NONE, W_EXP, W_DIV, W_QUADRATIC, W_LINEAR, W_LOG = 0, 1, 2, 3, 4, 5  # query position weights


@_jit
def _query(
    hist: np.ndarray, lp: np.ndarray, wkind: int, wparam: float, sim_kind: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The session's distinct items (first-click order), their last 1-based positions, their
    position weights and the similarity's session norm, from its clicks ``hist``.

    ``lp`` (per item, all 0 between calls) marks the items seen. The weights are the models'
    ``_weights`` (``W_EXP``: STAN's ``exp((p - L) / wparam)``; ``W_DIV`` .. ``W_LOG``: V-SKNN's
    ``position_weight``); the norm is ``sqrt(sum w^2)`` for the weighted cosine, else the number
    of distinct items.
    """
    n = hist.size
    buf = np.empty(n, dtype=np.int64)
    nd = 0
    for p in range(n):
        it = hist[p]
        if lp[it] == 0.0:
            buf[nd] = it
            nd += 1
        lp[it] = float(p + 1)
    items = buf[:nd]
    pos = np.empty(nd, dtype=np.float64)
    w = np.empty(nd, dtype=np.float64)
    L = float(n)
    ss = 0.0
    for j in range(nd):
        it = items[j]
        p = lp[it]
        lp[it] = 0.0
        pos[j] = p
        if wkind == W_EXP:
            x = math.exp((p - L) / wparam)
        elif wkind == W_DIV:
            x = p / L
        elif wkind == W_QUADRATIC:
            x = p / L
            x = x * x
        elif wkind == W_LINEAR:
            x = 1.0 - 0.1 * (L - p) if p <= 10 else 0.0
        elif wkind == W_LOG:
            x = 1.0 / math.log10(L - p + 1.7)
        else:
            x = 1.0
        w[j] = x
        ss += x * x
    sa = math.sqrt(ss) if sim_kind == 4 else float(nd)
    return items, pos, w, sa




def _query_history(
    # the session's clicks and how its positions weigh
    hist: np.ndarray, wkind: int, wparam: float,
    # the index: posting lists, per-session times, sizes and marks
    pstart: np.ndarray, plen: np.ndarray, pflat: np.ndarray, n_items: int, exclude: int, time: np.ndarray,
    n_unique: np.ndarray, mark: np.ndarray,
    # the neighbourhood: sample, k, similarity, recency scale, now
    m: int, k: int, sim_kind: int, sb: float, ts: float,
    # the item scores: segments, scratch, contribution kind and constants, IDF
    start: np.ndarray, flat: np.ndarray, lp: np.ndarray, contrib_kind: int, c1: float, c2: float,
    drop_seen: bool, acc: np.ndarray, imark: np.ndarray, events: np.ndarray, n_sessions: float, idf_w: float,
    # the answer: a top-k list (> 0) or every scored item (0)
    top_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole query from the session's clicks, prepared in the kernel (:func:`_query`: no
    per-click Python dict, numpy weights or norm), then :func:`neighbours` and :func:`item_scores`.

    ``top_k > 0``: the :func:`top_items` list (and no scores); otherwise every candidate item with
    its score, for a caller that mixes scores (the hybrid).
    """
    q_items, q_pos, q_w, sa = _query(hist, lp, wkind, wparam, sim_kind)
    slots, sims = neighbours(
        q_items, q_w, pstart, plen, pflat, n_items, exclude, time, n_unique, mark, m, k, sim_kind, sa, sb, ts
    )
    no_scores = np.empty(0, dtype=np.float64)
    if slots.size == 0:
        return np.empty(0, dtype=np.int64), no_scores
    items, scores = item_scores(
        slots, sims, start, n_unique, flat, lp, q_items, q_pos, hist.size, contrib_kind, c1, c2, drop_seen,
        acc, imark, events, n_sessions, idf_w,
    )  # fmt: skip
    if top_k > 0:
        return top_items(items, scores, top_k), no_scores
    return items, scores


query_history = _jit(_query_history)


def _learn_query_batch(
    slots: np.ndarray,  # int64 per click: the session's slot (learnt clicks)
    items: np.ndarray,  # int64 per click
    tss: np.ndarray,  # float64 per click
    js: np.ndarray,  # int64 per click: the item's index in the session's segment (-1: segment full)
    cs: np.ndarray,  # int64 per click: the session's click count after it
    new: np.ndarray,  # bool per click: the item is new to the session (a posting entry)
    learn: np.ndarray,  # bool per click
    rec: np.ndarray,  # bool per click: query (the history is not empty)
    exclude: np.ndarray,  # int64 per click: the session's slot at its query (-1: none)
    nss: np.ndarray,  # float64 per click: sessions seen at its query (IDF)
    hist: np.ndarray,  # int64: the clicks' histories, one after the other
    hoff: np.ndarray,  # int64 per click: its history's start in `hist`
    hlen: np.ndarray,  # int64 per click: its history's length
    # how the history's positions weigh; the index (as in query_history)
    wkind: int, wparam: float, pstart: np.ndarray, plen: np.ndarray, pflat: np.ndarray, n_items: int,
    time: np.ndarray, n_unique: np.ndarray, mark: np.ndarray,
    # the neighbourhood and the item scores (as in query_history)
    m: int, k: int, sim_kind: int, sb: float, start: np.ndarray, flat: np.ndarray, lp: np.ndarray,
    contrib_kind: int, c1: float, c2: float, drop_seen: bool, acc: np.ndarray, imark: np.ndarray,
    events: np.ndarray, idf_w: float,
    cap: int,  # max_item_sessions: a posting list at twice it is cut back to the `cap` latest
    out: np.ndarray,  # int64 (clicks, top_k): the lists
    out_n: np.ndarray,  # int64 per click: each list's length
    ticks: np.ndarray,  # int64 per click: its query's time-stamp-counter ticks
) -> int:
    """:meth:`SessionIndex.add`'s array updates and then :func:`query_history` for each click in
    order, in one call without the GIL. Everything that may move or grow an array (new slots,
    segment and posting-list capacities, per-item arrays) was done by the caller before, so the
    clicks' writes land where the per-click path would put them. Returns the new ``n_items``."""
    top_k = out.shape[1]
    for t in range(slots.size):
        if learn[t]:
            s = slots[t]
            it = items[t]
            if tss[t] > time[s]:
                time[s] = tss[t]
            j = js[t]
            if new[t]:
                at = start[s] + j
                flat[0, at] = it
                flat[1, at] = cs[t]
                n_unique[s] = j + 1
                if it >= n_items:
                    n_items = it + 1
                n = plen[it]
                a = pstart[it]
                if n == 2 * cap:  # keep the `cap` most recent entries
                    for x in range(cap):
                        pflat[a + x] = pflat[a + cap + x]
                    n = cap
                pflat[a + n] = s
                plen[it] = n + 1
            elif j >= 0:
                flat[1, start[s] + j] = cs[t]
            events[it] += 1.0
        if rec[t]:
            t0 = _cycles()
            h = hist[hoff[t] : hoff[t] + hlen[t]]
            r, _ = query_history(
                h, wkind, wparam, pstart, plen, pflat, n_items, exclude[t], time, n_unique, mark, m, k,
                sim_kind, sb, tss[t], start, flat, lp, contrib_kind, c1, c2, drop_seen, acc, imark,
                events, nss[t], idf_w, top_k,
            )  # fmt: skip
            out_n[t] = r.size
            for e in range(r.size):
                out[t, e] = r[e]
            ticks[t] = _cycles() - t0
    return n_items


learn_query_batch = _jit(_learn_query_batch, nogil=True)


@numba.njit(cache=True)
def _now_ticks() -> int:
    return _cycles()


_TICK_SECONDS: list[float] = []


def tick_seconds() -> float:
    """Seconds per tick of :func:`_cycles`, measured once against ``perf_counter`` (20 ms)."""
    if not _TICK_SECONDS:
        c0, t0 = _now_ticks(), perf_counter()
        sleep(0.02)
        c1, t1 = _now_ticks(), perf_counter()
        _TICK_SECONDS.append((t1 - t0) / (c1 - c0) if c1 > c0 else 0.0)
    return _TICK_SECONDS[0]


def warm_up() -> None:
    """Compile (or load from the disk cache) the kernels with the types the models use."""
    i64, f64 = np.int64, np.float64
    one_i, one_f = np.ones(1, dtype=i64), np.ones(1, dtype=f64)
    zero_i = np.zeros(1, dtype=i64)
    slots, sims = neighbours(
        zero_i, one_f, zero_i, one_i, np.zeros(1, dtype=np.int32), 1, -1, one_f, one_i,
        np.zeros(1, dtype=i64), 0, 1, 0, 1.0, 0.0, 0.0,
    )  # fmt: skip
    args = (
        np.zeros(1, dtype=i64), one_i, np.zeros((2, 1), dtype=np.int32), np.zeros(1, dtype=f64), zero_i,
        one_f, 1, 0, 0.0, 0.0, False, np.zeros(1, dtype=f64), np.zeros(1, dtype=np.int8), one_f,
        1.0, 0.0,
    )  # fmt: skip
    items, scores = item_scores(slots, sims, *args)
    top_items(items, scores, 1)
    query_history(
        zero_i, 0, 0.0, zero_i, one_i, np.zeros(1, dtype=np.int32), 1, -1, one_f, one_i,
        np.zeros(1, dtype=i64), 0, 1, 0, 0.0, 0.0, args[0], args[2], args[3], 0, 0.0, 0.0, False,
        args[11], args[12], one_f, 1.0, 0.0, 1,
    )  # fmt: skip
    no = np.zeros(1, dtype=np.bool_)
    learn_query_batch(
        zero_i, zero_i, one_f, zero_i, one_i, no, no, no, zero_i, one_f, zero_i, zero_i, one_i, 0, 0.0,
        zero_i, one_i, np.zeros(1, dtype=np.int32), 1, one_f, one_i, np.zeros(1, dtype=i64), 0, 1, 0,
        0.0, args[0], args[2], args[3], 0, 0.0, 0.0, False, args[11], args[12], one_f, 0.0, 1,
        np.zeros((1, 1), dtype=i64), np.zeros(1, dtype=i64), np.zeros(1, dtype=i64),
    )  # fmt: skip
    tick_seconds()
