"""The drift signals' bins and scores, and the calibration of their thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.drift.calibration import calibrate, calibrate_long
from monitoring.drift.reference import Reference
from monitoring.drift.signals import GAP_BINS, POSITION_BINS, drop, excess, gap_bin, ks, linf, position_bin


def test_position_bins_are_monotone_and_bounded():
    bins = [position_bin(c) for c in range(1, 500)]
    assert bins == sorted(bins)
    assert bins[0] == 0 and bins[-1] == POSITION_BINS - 1


def test_gap_bins_are_monotone_and_bounded():
    gaps = [0.0, 1e-4, 0.01, 0.1, 1.0, 10.0, 100.0, 1e4, 1e8]
    bins = [gap_bin(g) for g in gaps]
    assert bins == sorted(bins)
    assert bins[0] == 0 and bins[-1] == GAP_BINS - 1 and all(0 <= b < GAP_BINS for b in bins)


def test_scores_are_vectorised_and_zero_on_identical_shares():
    ref = np.array([10.0, 30.0, 60.0])
    live = np.array([[1.0, 3.0, 6.0], [60.0, 30.0, 10.0]])
    assert linf(ref, live).shape == (2,)
    assert linf(ref, live)[0] == pytest.approx(0.0) and linf(ref, live)[1] == pytest.approx(0.5)
    assert ks(ref, live)[0] == pytest.approx(0.0) and ks(ref, live)[1] == pytest.approx(0.5)
    assert excess(np.array([90, 10]), np.array([70, 30])) == pytest.approx(0.2)
    assert drop(np.array([70, 30]), np.array([90, 10])) == pytest.approx(0.2)
    assert np.isnan(linf(ref, np.zeros(3)))  # an empty window has no score


def test_calibrated_threshold_meets_the_target_false_alarm_rate():
    rng = np.random.default_rng(1)
    p = np.r_[1.0 / np.arange(1, 51) ** 1.1]
    p /= p.sum()
    blocks = rng.multinomial(100, p, size=500)  # a 50k-event reference in sub-blocks of 100
    cal = calibrate(blocks, linf, window_blocks=10, alpha=0.01)
    assert cal is not None
    fresh = rng.multinomial(1000, p, size=4000)  # live windows from the same distribution
    rate = float((linf(blocks.sum(axis=0), fresh) > cal.threshold).mean())
    assert 0.001 <= rate <= 0.03
    shifted = rng.multinomial(1000, p[::-1], size=50)
    assert (linf(blocks.sum(axis=0), shifted) > cal.threshold).all()


def test_calibration_floor_and_too_few_blocks():
    blocks = np.tile([[5, 5]], (40, 1))  # no noise at all
    assert calibrate(blocks, linf, 4, floor=0.02).threshold == 0.02
    assert calibrate(blocks[:5], linf, 4) is None


def test_reference_is_bounded_and_new_items_calibrate_on_the_second_half():
    r = Reference(size=1000)
    for i in range(1000):
        item = i % 10 if i < 500 else (i % 10 if i % 5 else 100 + i)  # 20% unseen later
        r.capture(item, 0, 1, -1, i % 2)
    assert r.full and r.items.nbytes == 4000
    f = r.freeze(block=100, top_items=5)
    unseen = f.blocks["new_items"]
    assert unseen.shape == (5, 2) and unseen[:, 1].sum() / unseen.sum() == pytest.approx(0.2)
    assert f.blocks["popularity"].shape == (10, 6)
    assert f.vocab == 100 + 995 + 1 and "category" not in f.blocks


def test_p_values_past_the_noisiest_pseudo_window_come_from_the_fitted_tail():
    rng = np.random.default_rng(3)
    c = calibrate(rng.multinomial(100, [0.5, 0.3, 0.2], size=1_000), linf, window_blocks=10)
    top = float(c.null[-1])
    ps = [c.p_value(top + d) for d in (1e-9, 0.02, 0.05, 0.1, 0.3)]
    assert ps == sorted(ps, reverse=True) and ps[0] <= 1 / (c.replicates + 1)
    assert ps[-1] < 1e-12
    assert c.tail_u < top and c.tail_beta > 0 and 0 < c.tail_share <= 0.11


def test_long_window_threshold_lies_between_the_noise_and_the_check_window_threshold():
    rng = np.random.default_rng(4)
    blocks = rng.multinomial(25, [0.5, 0.3, 0.2], size=2_000)
    short = calibrate(blocks, linf, window_blocks=10).threshold
    long = calibrate_long(blocks, linf, 10, 8, persistence=5, rate=1e-7)
    assert long is not None and 0.01 < long < short
    assert calibrate_long(blocks[:100], linf, 10, 8, persistence=5, rate=1e-7) is None  # too short


def test_against_is_the_score_with_the_reference_side_cached() -> None:
    """The monitor's checks score with :class:`Against`; it must give the score functions' numbers,
    NaN included (an empty live window), and survive a checkpoint (pickle)."""
    import pickle

    from monitoring.drift.signals import Against, drop, excess, ks, linf

    rng = np.random.default_rng(7)
    for f in (linf, ks, excess, drop):
        for bins in (2, 16, 101):
            ref = rng.integers(0, 50, size=bins).astype(np.float64)
            scorer = pickle.loads(pickle.dumps(Against(ref, f)))
            for _ in range(20):
                live = rng.integers(0, 5, size=bins).astype(np.float64) * (rng.random(bins) < 0.5)
                want = float(f(ref, live))
                got = scorer(live)
                assert got == want or (np.isnan(got) and np.isnan(want))
            assert np.isnan(scorer(np.zeros(bins)))
