"""Session-kNN family: hand-computed scores (with the session-rec quirks kept), memory caps,
session exclusion, fallback, and a real-data replay of yoochoose-100k."""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

import numpy as np
import pytest

from stream.models import make_model
from stream.models.knn.index import SessionIndex
from stream.models.knn.sknn import SKNN
from stream.models.knn.stan import STAN
from stream.models.knn.vsknn import VSKNN
from stream.models.knn.vstan import VSTAN

DAY = 86_400.0
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoochoose-100k"


def feed(model, clicks):
    for s, i, t in clicks:
        model.learn_one(s, i, t, [])
    return model


def approx(d: dict[int, float]) -> dict[int, float]:
    return {k: pytest.approx(v, rel=1e-9) for k, v in d.items()}


# The session-rec configurations replayed on yoochoose-100k, each with the hit rate it must reach.
YOOCHOOSE = [
    ("sknn", {"k": 100, "sample_size": 500, "similarity": "cosine"}, 0.60),
    ("vsknn", {"k": 100, "sample_size": 500, "weighting": "quadratic", "weighting_score": "quadratic",
               "idf_weighting": 1}, 0.63),
    ("stan", {"k": 100, "sample_size": 5000}, 0.63),
    ("vstan", {"k": 100, "sample_size": 5000}, 0.63),
]

# Two past sessions: 1 = [10, 11, 12], 2 = [11, 13]; the query session is [11] or [12, 11].
PAST = [(1, 10, 0.0), (1, 11, 1.0), (1, 12, 2.0), (2, 11, 3.0), (2, 13, 4.0)]


# -- SKNN ------------------------------------------------------------------------------------


def test_sknn_jaccard_scores():
    m = feed(SKNN(k=10), PAST)
    # s = {12, 11}: n1 = {10, 11, 12}: 2 / 3; n2 = {11, 13}: 1 / 3
    assert m.scores([12, 11], 9.0) == approx({10: 2 / 3, 11: 1.0, 12: 2 / 3, 13: 1 / 3})
    assert m.recommend([12, 11], 9.0, k=2) == [11, 10]  # tie 10 / 12 -> smaller int first


def test_sknn_cosine_is_true_cosine_times_session_length_q1():
    m = feed(SKNN(k=10, similarity="cosine"), PAST)
    s = {12, 11}
    true_cos = {1: 2 / math.sqrt(3 * 2), 2: 1 / math.sqrt(2 * 2)}
    q1 = {n: c * len(s) for n, c in true_cos.items()}  # session-rec: li / sqrt(la) * sqrt(lb)
    assert dict(m.neighbours([12, 11], 9.0)) == approx(q1)
    assert m.scores([12, 11], 9.0)[13] == pytest.approx(q1[2])


def test_sknn_remind_boosts_last_three_clicks():
    m = feed(SKNN(k=10, remind=True), PAST)
    plain = feed(SKNN(k=10), PAST).scores([12, 11], 9.0)
    got = m.scores([12, 11], 9.0)
    assert got[12] == pytest.approx((plain[12] + 5) * 5 + 1 / 100)
    assert got[11] == pytest.approx((plain[11] + 5) * 5 + 2 / 100)
    assert got[10] == pytest.approx(plain[10])


# -- V-SKNN ----------------------------------------------------------------------------------


def test_vsknn_vec_div_scores():
    m = feed(VSKNN(k=10), PAST)
    # s = [12, 11]: w(12) = 1/2, w(11) = 2/2; vec divides by |set(s)| = 2
    # n1 shares {11, 12}: sim 0.75, last match = 11 (step 1); n2 shares {11}: sim 0.5, step 1
    assert m.scores([12, 11], 9.0) == approx({10: 0.75, 11: 1.25, 12: 0.75, 13: 0.5})


def test_vsknn_step_decay_and_remind_false():
    m = feed(VSKNN(k=10, remind=False, weighting_score="quadratic"), PAST)
    # s = [13, 10]: n1 shares {10} at step 1 (sim 1/2); n2 shares {13} at step 2 (sim 1/4, decay 1/4)
    assert m.scores([13, 10], 9.0) == approx({11: 0.5 + 1 / 16, 12: 0.5})
    assert m.recommend([13, 10], 9.0, k=3)[:2] == [11, 12]


def test_vsknn_idf_counts_events_q3():
    clicks = PAST + [(3, 13, 5.0), (3, 13, 6.0)]  # 13 clicked 3 times in 2 sessions
    m = feed(VSKNN(k=10, idf_weighting=2), clicks)
    idf13 = math.log(3 / 3)  # 3 sessions / 3 events (not / 2 sessions)
    idf10 = math.log(3 / 1)
    assert m.index.idf(np.array([13, 10])).tolist() == pytest.approx([idf13, idf10])
    plain = feed(VSKNN(k=10), clicks).scores([11], 9.0)
    got = m.scores([11], 9.0)
    assert got[10] == pytest.approx(plain[10] * (1 + 2 * idf10))


def test_vsknn_linear_weighting_quirk_uses_position():
    from stream.models.knn.vsknn import position_weight

    # session-rec: 1 - 0.1 (L - p) if p <= 10 else 0 -- the last click of a long session weighs 0
    w = position_weight("linear", np.arange(1.0, 13.0), 12)
    assert w[-1] == 0.0 and w[9] == pytest.approx(0.8)


# -- STAN / VSTAN ----------------------------------------------------------------------------


def test_stan_scores_by_hand():
    m = feed(STAN(k=10, lambda_snh=None), PAST)
    # s = [11]: w1 = 1, norm 1; sim(n1) = 1/sqrt(3), sim(n2) = 1/sqrt(2)
    s1, s2 = 1 / math.sqrt(3), 1 / math.sqrt(2)
    e = math.exp(-1 / 2.05)
    # n1 = [10, 11, 12], i* = 11 at 2: 10 and 12 are 1 away; n2 = [11, 13]: 13 is 1 away
    assert m.scores([11], 9.0) == approx({10: s1 * e, 11: s1 + s2, 12: s1 * e, 13: s2 * e})


def test_stan_snh_is_in_days_q4():
    m = feed(STAN(k=10, lambda_snh=1, lambda_inh=None), [(1, 10, 0.0), (1, 11, 0.0), (2, 11, DAY)])
    nb = dict(m.neighbours([11], 2 * DAY))
    # neighbour 1 ended 2 days before "now", neighbour 2 one day: factors e^-2 and e^-1
    assert nb[1] / (1 / math.sqrt(2)) == pytest.approx(math.exp(-2))
    assert nb[2] == pytest.approx(math.exp(-1))


def test_stan_repeated_click_takes_last_position():
    m = feed(STAN(k=10, lambda_snh=None, lambda_inh=None), PAST)
    # s = [11, 12, 11], L = 3: w1(11) = exp(0) (last position 3), w1(12) = exp(-1/1.02)
    w11, w12 = 1.0, math.exp(-1 / 1.02)
    norm = math.sqrt(w11**2 + w12**2)
    assert dict(m.neighbours([11, 12, 11], 9.0))[1] == pytest.approx((w11 + w12) / (norm * math.sqrt(3)))


def test_vstan_ipw_idf_and_similarity_ignored_q2():
    m = feed(VSTAN(k=10, lambda_snh=None, lambda_inh=None), PAST)
    # s = [13, 10]: n1 matches 10 at position 2 (ipw 1), n2 matches 13 at position 1
    w13, w10 = math.exp(-1 / 1.02), 1.0
    norm = math.sqrt(w13**2 + w10**2)
    s1, s2 = w10 / (norm * math.sqrt(3)), w13 / (norm * math.sqrt(2))
    ipw2 = math.exp((1 - 2) / 1.02)
    idf = {i: math.log(2 / 1) for i in (10, 12, 13)} | {11: math.log(2 / 2)}
    want = {10: s1, 11: s1 + s2 * ipw2, 12: s1, 13: s2 * ipw2}
    want[11] = s1 * (1 + 5 * idf[11]) + s2 * ipw2 * (1 + 5 * idf[11])
    want = {i: (v if i == 11 else v * (1 + 5 * idf[i])) for i, v in want.items()}
    assert m.scores([13, 10], 9.0) == approx(want)
    other = feed(VSTAN(k=10, lambda_snh=None, lambda_inh=None, similarity="vec"), PAST)
    assert other.scores([13, 10], 9.0) == approx(want)


# -- shared behaviour ------------------------------------------------------------------------

ALL = [SKNN, VSKNN, STAN, VSTAN]


@pytest.mark.parametrize("cls", ALL)
def test_session_excluded_from_its_own_neighbours(cls):
    m = feed(cls(k=10), PAST + [(7, 11, 5.0), (7, 12, 6.0)])
    assert 7 in dict(m.neighbours([11, 12], 9.0))
    assert 7 not in dict(m.neighbours([11, 12], 9.0, session=7))
    assert set(dict(m.neighbours([11, 12], 9.0, session=7))) == {1, 2}


@pytest.mark.parametrize("cls", ALL)
def test_k_and_sample_size_limit_neighbours(cls):
    clicks = [(s, 1, float(s)) for s in range(20)] + [(s, 100 + s, float(s)) for s in range(20)]
    m = feed(cls(k=3, sample_size=5), clicks)
    nb = dict(m.neighbours([1], 99.0))
    assert len(nb) == 3 and set(nb) <= set(range(15, 20))  # the 5 most recent, then top 3


@pytest.mark.parametrize("cls", ALL)
def test_fallback_to_popular_items_after_knn_items(cls):
    m = feed(cls(k=10), PAST + [(5, 50, 7.0), (6, 50, 8.0), (6, 51, 8.5)])
    recs = m.recommend([999], 9.0, k=3)  # unknown item: no neighbours
    assert recs == [11, 50, 10]  # popularity order (11 and 50 twice; ties by first seen)
    recs = m.recommend([12], 9.0, k=6)
    knn = set(m.scores([12], 9.0))
    assert set(recs[: len(knn)]) == knn and recs[len(knn)] == 50
    assert m.recommend([], 9.0, k=2) == [11, 50]


def test_remind_false_fallback_skips_session_items():
    m = feed(VSKNN(k=10, remind=False), PAST)
    assert 11 not in m.recommend([999, 11], 9.0, k=5)


@pytest.mark.parametrize("name", ["sknn", "vsknn", "stan", "vstan"])
def test_registry_params_and_clone(name):
    m = make_model(name, k=50, sample_size=200)
    assert m.params()["k"] == 50 and m.clone().params() == m.params()
    with pytest.raises(ValueError):
        make_model(name, sampling="random")


# -- bounded memory --------------------------------------------------------------------------


def test_max_sessions_evicts_least_recent_and_its_postings():
    ix = SessionIndex(max_sessions=2)
    for s, i, t in [(1, 10, 0.0), (2, 10, 1.0), (1, 11, 2.0), (3, 10, 3.0)]:
        ix.add(s, i, t)
    assert len(ix) == 2 and ix.slot_of(2) == -1  # 2 was least recently active
    slots, _ = ix.overlap(np.array([10, 11]), None, -1)
    assert sorted(ix.key(s) for s in slots.tolist()) == [1, 3]


def test_a_full_index_evicts_the_least_recent_twentieth_at_once():
    """Evictions are amortised: a new session beyond ``max_sessions`` evicts the least recently
    active 5% (so a batch of clicks runs on for that many new sessions)."""
    ix = SessionIndex(max_sessions=60)
    for s in range(60):
        ix.add(s, s % 7, float(s))
    ix.add(0, 1, 60.0)  # session 0 becomes the most recent
    ix.add(1000, 3, 61.0)
    assert len(ix) == 58 and [ix.slot_of(s) for s in (1, 2, 3)] == [-1, -1, -1] and ix.slot_of(0) >= 0
    for s in (1001, 1002):
        ix.add(s, 3, 62.0)
    assert len(ix) == 60 and all(int(s) not in (1, 2, 3) for s in map(ix.key, ix.postings(3).tolist()))


def test_max_session_items_and_max_item_sessions():
    ix = SessionIndex(max_session_items=3, max_item_sessions=4)
    for t, i in enumerate([1, 2, 1, 3, 4, 5, 2]):
        ix.add(0, i, float(t))
    assert ix.session_items(0) == {1: 3, 2: 7, 3: 4}  # 4 and 5 ignored, positions count clicks
    for s in range(1, 50):
        ix.add(s, 9, float(s))
    assert ix._plen[9] <= 8  # posting list at most 2 * max_item_sessions
    slots, _ = ix.overlap(np.array([9]), None, -1)
    assert {ix.key(s) for s in slots.tolist()} >= {46, 47, 48, 49}  # the most recent are kept


def test_index_stays_consistent_under_random_stream():
    """Eviction, slot reuse, segment relocation and compaction against a brute-force model."""
    rng = random.Random(1)
    ix = SessionIndex(max_sessions=30, max_session_items=6, max_item_sessions=1000)
    truth: dict[int, dict[int, int]] = {}
    clicks: dict[int, int] = {}
    order: list[int] = []
    for t in range(5000):
        s = rng.randrange(200) if rng.random() < 0.3 else (order[-1] if order else 0)
        i = rng.randrange(40)
        ix.add(s, i, float(t))
        if s in order:
            order.remove(s)
        order.append(s)
        if s not in truth:
            truth[s], clicks[s] = {}, 0
        clicks[s] += 1
        if i in truth[s] or len(truth[s]) < 6:
            truth[s][i] = clicks[s]
        while len(order) > 30:
            gone = order.pop(0)
            del truth[gone], clicks[gone]
    assert len(ix) == len(truth)
    for s, items in truth.items():
        assert ix.session_items(s) == items
    for i in range(40):
        slots, cnt = ix.overlap(np.array([i]), None, -1)
        assert sorted(ix.key(x) for x in slots.tolist()) == sorted(s for s in truth if i in truth[s])


# -- real data -------------------------------------------------------------------------------


def _read(path: Path):
    with path.open() as f:
        next(f)
        for line in f:
            s, i, t = line.split("\t")
            yield int(s), int(i), float(t)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")
@pytest.mark.parametrize("name,params,floor", YOOCHOOSE)
def test_yoochoose_replay_hit_rate(name, params, floor):
    """Static protocol on a slice: fit on train_full, score the first 2000 test positions;
    then keep learning the test clicks (streaming) and check the session's own entry is excluded."""
    ids: dict[int, int] = {}
    m = make_model(name, **params)
    for s, i, t in _read(DATA / "yoochoose-clicks-100k_train_full.txt"):
        m.learn_one(s, ids.setdefault(i, len(ids)), t, [])
    hits = n = 0
    prev, hist = None, []
    stream_hits = 0
    for s, i, t in _read(DATA / "yoochoose-clicks-100k_test.txt"):
        it = ids.setdefault(i, len(ids))
        if s != prev:
            prev, hist = s, []
        elif n < 2000:
            n += 1
            hits += it in m.recommend(hist, t, 20)
        else:
            break
        hist.append(it)
    assert hits / n >= floor
    # streaming: learn the test clicks; a live session must not be its own neighbour
    for s, i, t in list(_read(DATA / "yoochoose-clicks-100k_test.txt"))[:3000]:
        it = ids[i]
        sk = 1_000_000 + s
        m.learn_one(sk, it, t, [])
        if m.index.session_items(sk) and sk in dict(m.neighbours([it], t, session=sk)):
            stream_hits += 1
    assert stream_hits == 0


# -- compiled kernel == numpy path -----------------------------------------------------------

KERNEL_CASES = [
    ("sknn", {"k": 10, "sample_size": 50}),
    ("sknn", {"k": 20, "sample_size": 100, "similarity": "cosine", "remind": True}),
    ("sknn", {"k": 20, "sample_size": 0, "similarity": "binary", "pop_boost": 0.5}),
    ("vsknn", {"k": 10, "sample_size": 50}),
    (
        "vsknn",
        {
            "k": 20,
            "sample_size": 200,
            "similarity": "cosine",
            "weighting": "log",
            "weighting_score": "linear",
            "idf_weighting": 1,
            "remind": False,
        },
    ),
    (
        "vsknn",
        {
            "k": 20,
            "sample_size": 200,
            "weighting": "quadratic",
            "weighting_score": "quadratic",
            "push_reminders": True,
        },
    ),
    ("stan", {"k": 10, "sample_size": 50}),
    ("stan", {"k": 20, "sample_size": 200, "lambda_spw": None, "lambda_snh": None, "remind": False}),
    ("vstan", {"k": 10, "sample_size": 50}),
    ("vstan", {"k": 100, "sample_size": 500, "lambda_inh": None, "lambda_idf": None}),
    ("vstan", {"k": 10, "sample_size": 50, "lambda_snh": 0.0005}),  # a strong recency decay (43 s)
]


def _same(m, queries) -> int:
    """Replay ``queries`` through the kernel and the numpy path of ``m``; returns queries checked."""
    for j, (hist, t, sess) in enumerate(queries):
        out = []
        full = j % 3 == 0  # neighbours and all scores on every third query, rankings on all
        for path in (True, False):
            m._use_kernel = path
            nb = m.neighbours(hist, t, sess) if full else []
            out.append((nb, m.scores(hist, t, sess) if full else {}, m.recommend(hist, t, 20, sess)))
        m._use_kernel = True
        (nk, sk, rk), (nn, sn, rn) = out
        assert [s for s, _ in nk] == [s for s, _ in nn]
        assert [v for _, v in nk] == pytest.approx([v for _, v in nn], rel=1e-12)
        assert sorted(sk) == sorted(sn)
        assert [sk[i] for i in sorted(sk)] == pytest.approx([sn[i] for i in sorted(sn)], rel=1e-12)
        assert rk == rn, (hist, rk, rn)
    return len(queries)


@pytest.mark.parametrize("timing", ["exact", "coarse", "late"])
@pytest.mark.parametrize("name,params", KERNEL_CASES)
def test_kernel_matches_numpy_on_synthetic_stream(name, params, timing):
    """Same neighbours, scores and rankings (incl. ties: coarse timestamps make many sessions
    equally recent, SKNN's set similarities and small samples make many equal scores; late
    queries are timed before some of their candidates, so the recency decay exceeds 1)."""
    from stream.evaluation.synthetic import SyntheticStream

    m = make_model(name, **params)
    assert m._kernel is not None, "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"
    items: dict[str, int] = {}
    sessions: dict[str, int] = {}
    hist: dict[int, list[int]] = {}
    queries = []
    for j, e in enumerate(SyntheticStream(events=5500, seed=3, n_items=300)):
        s = sessions.setdefault(e.session_id, len(sessions))
        i = items.setdefault(e.item_id, len(items))
        t = float(int(e.timestamp) // 20) if timing == "coarse" else e.timestamp
        h = hist.setdefault(s, [])
        h.append(i)
        if j >= 3000 and j % 10 == 0:
            tq = t - 60.0 if timing == "late" else t
            queries.append((list(h), tq, s if j % 20 else None))
        m.learn_one(s, i, t, h)
        if j >= 3000 and j % 10 == 0:
            assert _same(m, [queries[-1]])
    assert len(queries) >= 250


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")
@pytest.mark.parametrize("name,params", [(name, params) for name, params, _ in YOOCHOOSE])
def test_kernel_matches_numpy_on_yoochoose(name, params):
    m = make_model(name, **params)
    assert m._kernel is not None, "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"
    train, queries = _yoochoose_queries(300)
    for s, i, t in train:
        m.learn_one(s, i, t, [])
    assert _same(m, queries) == 300


@functools.cache
def _yoochoose_queries(n: int) -> tuple[list[tuple[int, int, float]], list]:
    """Training clicks (item ints) and the first ``n`` test queries (history, timestamp, None)."""
    ids: dict[int, int] = {}
    train = [
        (s, ids.setdefault(i, len(ids)), t)
        for s, i, t in _read(DATA / "yoochoose-clicks-100k_train_full.txt")
    ]
    queries = []
    prev, hist = None, []
    for s, i, t in _read(DATA / "yoochoose-clicks-100k_test.txt"):
        it = ids.setdefault(i, len(ids))
        if s != prev:
            prev, hist = s, []
        elif len(queries) < n:
            queries.append((list(hist), t, None))
        else:
            break
        hist.append(it)
    return train, queries


def test_posting_store_relocation_compaction_and_cap():
    """Flat posting store: segments grow, move, are compacted and capped like per-item lists."""
    rng = random.Random(2)
    ix = SessionIndex(max_sessions=100, max_session_items=6, max_item_sessions=20)
    truth: dict[int, list[int]] = {}
    order: list[int] = []
    items_of: dict[int, set[int]] = {}
    ix._pflat = np.zeros(64, dtype=np.int32)  # small store: the first relocations compact it
    for t in range(20_000):
        s = t // 4
        i = min(int(rng.paretovariate(0.8)), 400)
        ix.add(s, i, float(t))
        if s not in items_of:
            items_of[s] = set()
            order.append(s)
            if len(order) > 100:
                gone = order.pop(0)
                for j in items_of.pop(gone):
                    truth[j].remove(gone)
        if i not in items_of[s] and len(items_of[s]) < 6:
            items_of[s].add(i)
            truth.setdefault(i, []).append(s)
    assert ix._pflat.size > 64  # compacted (and grown) at least once
    for i, sess in truth.items():
        got = [ix.key(x) for x in ix.postings(i).tolist()]
        assert got == sess[-len(got) :] and len(got) >= min(len(sess), 20)  # most recent kept, in order
        assert len(got) <= 40


def test_kernel_failure_falls_back_to_numpy(monkeypatch):
    from stream.models.knn import index as knn_index

    kern = knn_index.load_kernel()
    assert kern is not None, "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"

    def broken() -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(knn_index, "_KERNEL", [kern])  # restored after the test
    monkeypatch.setattr(kern, "warm_up", broken)
    m = feed(VSTAN(k=10), PAST)
    assert m._kernel is None and knn_index.load_kernel() is None
    assert m.recommend([12, 11], 9.0, k=2) == feed(VSTAN(k=10), PAST).recommend([12, 11], 9.0, k=2)


def test_histogram_threshold_equals_quickselect() -> None:
    """The "recent" sampling's bucketed selection returns quickselect's order statistic and counts,
    with ties, a constant array and an infinite time (which falls back to quickselect)."""
    from stream.models.knn.index import load_kernel

    k = load_kernel()
    assert k is not None, "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"
    rng = np.random.default_rng(0)
    cases = [rng.random(5000) * 1e6, np.round(rng.random(3000) * 50.0), np.full(700, 3.0),
             np.concatenate([rng.random(900), [-np.inf]]), np.array([0.0, 5e-324, 5e-324, 0.0])]
    for x in cases:
        for r in (0, 1, x.size // 3, x.size - 1):
            lo, hi = float(x.min()), float(x.max())
            assert k._threshold_hist(x, x.size, r, lo, hi) == k._threshold(x, r)


def test_similarity_buckets_are_monotone_and_bound_their_values() -> None:
    """The neighbours' bound buckets similarities by their top 16 bits: in value order, and each
    bucket's lower edge at most its values (so the k-th best's edge is a lower bound)."""
    from stream.models.knn.index import load_kernel

    k = load_kernel()
    assert k is not None, "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"
    rng = np.random.default_rng(1)
    x = np.sort(np.concatenate([
        np.exp(rng.uniform(-50, 16, 5000)), -rng.random(50), [0.0, 5e-324, 2.0**-60, 2.0**20, 1e30, np.inf],
    ]))  # fmt: skip
    b = np.array([k._bucket(v) for v in x])
    assert (np.diff(b) >= 0).all() and b.min() == 0 and b.max() == k._NB - 1
    for v, bv in zip(x, b, strict=True):
        if bv > 0:
            assert k._bucket_edge(bv) <= v and k._bucket(k._bucket_edge(bv)) == bv


@pytest.mark.parametrize(
    "name,params",
    [
        ("sknn", {}),
        ("sknn", {"similarity": "cosine"}),
        ("stan", {}),
        ("stan", {"lambda_spw": None}),
        ("vstan", {}),
        ("vsknn", {}),
        ("vsknn", {"similarity": "cosine", "weighting": "quadratic"}),
        ("vsknn", {"similarity": "cosine", "weighting": "linear"}),
        ("vsknn", {"similarity": "cosine", "weighting": "log"}),
        ("vsknn", {"similarity": "cosine", "weighting": None}),
    ],
)
def test_kernel_query_preparation_matches_python(name, params) -> None:
    """``query_history`` prepares the query in the kernel: the same distinct items (first-click
    order), last positions, position weights and norm as :class:`_Query` and ``_kernel_spec``."""
    from stream.models.knn.index import _Query

    m = make_model(name, **params)
    assert m._kernel is not None, "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"
    spec = m._fused
    assert spec is not None
    rng = np.random.default_rng(1)
    lp = np.zeros(64)
    for _ in range(200):
        hist = rng.integers(0, 12, size=int(rng.integers(1, 25))).tolist()
        q = _Query(m, hist, 0.0, None)
        items, pos, w, sa = m._kernel._query(np.array(hist, dtype=np.int64), lp, spec[0], spec[1], spec[2])
        assert items.tolist() == q.items.tolist() and pos.tolist() == q.pos.tolist()
        want_w = q.weights if q.weights is not None else np.ones(q.items.size)
        assert w == pytest.approx(want_w, rel=1e-14, abs=0.0)
        assert sa == pytest.approx(m._kernel_spec(q)[1], rel=1e-14)
        assert not lp.any()  # the scratch is left clean


def test_index_from_an_int64_checkpoint_is_converted() -> None:
    """Checkpoints written while the session store was ``int64`` load as ``int32``, same lists."""
    import pickle

    m = make_model("vstan", k=10, sample_size=50)
    for j in range(400):
        m.learn_one(j // 4, (j * 7) % 23, float(j), [])
    want = m.recommend([3, 10], 500.0, 20)
    m.index._flat = m.index._flat.astype(np.int64)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.index._flat.dtype == np.int32
    assert m2.recommend([3, 10], 500.0, 20) == want


@pytest.mark.parametrize("name", ["sknn", "vsknn", "stan", "vstan"])
def test_query_prepared_in_the_kernel_gives_the_same_lists_and_scores(name) -> None:
    """``recommend`` and ``top_scores`` (what the hybrid mixes) from one kernel call that prepares
    the query equal the kernel path with the query prepared in Python."""
    from stream.evaluation.synthetic import SyntheticStream

    m = make_model(name)
    assert m._kernel is not None and m._fused is not None, \
        "no compiled kernel: numba is a dependency (STREAMREC_KNN_KERNEL=0 turns it off)"
    items: dict[str, int] = {}
    sessions: dict[str, int] = {}
    hist: dict[int, list[int]] = {}
    checked = 0
    for j, e in enumerate(SyntheticStream(events=4000, seed=5, n_items=400)):
        s = sessions.setdefault(e.session_id, len(sessions))
        h = hist.setdefault(s, [])
        h.append(items.setdefault(e.item_id, len(items)))
        m.learn_one(s, h[-1], e.timestamp, h)
        if j >= 2000 and j % 7 == 0:
            got = (m.recommend(h, e.timestamp, 20, s), m.top_scores(h, e.timestamp, 50, s))
            m._fused_cache = None  # the query prepared in Python (_Query), same kernel
            want = (m.recommend(h, e.timestamp, 20, s), m.top_scores(h, e.timestamp, 50, s))
            del m._fused_cache
            assert got[0] == want[0]
            assert got[1].keys() == want[1].keys()
            assert [got[1][i] for i in got[1]] == pytest.approx([want[1][i] for i in got[1]], rel=1e-13)
            checked += 1
    assert checked > 250
