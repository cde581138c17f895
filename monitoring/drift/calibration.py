"""Thresholds from the reference's own noise.

The reference is cut into consecutive sub-blocks. Every run of ``window_blocks`` consecutive
sub-blocks (a moving block, stride one sub-block) is a pseudo live window of the live window's size;
it is scored against the rest of the reference (leave-out, so the window is not compared with
itself). Consecutive sub-blocks keep the within-session correlation of real windows (a session's
clicks share items, categories and positions), which random sub-blocks would break up, understating
the noise. The threshold is the ``1 - alpha`` quantile of those scores, never below the signal's
floor (and, with persistence, never below what the persistence rule would have needed to fire
inside the reference): with no drift about one check in ``1/alpha`` exceeds it. The sorted pseudo-window scores are
kept, so a live score also gets a p-value, which the monitor's persistence rule accumulates.

Beyond the largest pseudo-window score the empirical p-value stops at ``1/(n+1)`` (about 1/2,000
for a 50,000-click reference), which would make a massive shift look no more surprising than the
noisiest reference window. There the p-value comes from a peaks-over-threshold fit instead: the
exceedances of the pseudo-window scores over their ``1 - tail`` quantile ``u`` are modelled as
exponential (a generalised Pareto tail of shape 0) with the mean excess ``beta`` as scale, so
``p(s) = tail * exp(-(s - u) / beta)``. The scores are maxima/sums of many small binned shares, so
their true tails are close to Gaussian, lighter than exponential: the fitted tail overstates p far
out, i.e. it errs on the quiet side.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

#: Long windows scored per numpy pass in :func:`calibrate_long`.
CHUNK = 512


class Calibration(NamedTuple):
    threshold: float
    null_mean: float
    null_std: float
    null_quantile: float  # the 1 - alpha quantile before the floor
    run_max: float  # the largest run minimum over ``persistence`` consecutive windows of the reference
    replicates: int
    null: np.ndarray  # the sorted pseudo-window scores (for p-values)
    tail_u: float = math.inf  # where the fitted exponential tail starts (the 1 - tail quantile)
    tail_beta: float = 0.0  # its scale: mean excess of the pseudo-window scores over tail_u
    tail_share: float = 0.0  # share of pseudo-windows above tail_u

    def p_value(self, score: float) -> float:
        """Share of pseudo-windows scoring at least ``score`` (with the +1 of a permutation test);
        beyond the largest one, the fitted exponential tail (never above the empirical floor)."""
        null = self.null
        n = len(null)
        if n and score > null[-1] and self.tail_share > 0.0:
            if self.tail_beta <= 0.0:
                return 0.0
            return min(1.0 / (n + 1), self.tail_share * math.exp(-(score - self.tail_u) / self.tail_beta))
        return (1 + n - int(np.searchsorted(null, score, side="left"))) / (n + 1)


def _window_sums(blocks: np.ndarray, window_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's total counts and those of every run of ``window_blocks`` consecutive
    sub-blocks (stride one sub-block)."""
    csum = np.vstack([np.zeros((1, blocks.shape[1])), np.cumsum(blocks, axis=0)])
    return csum[-1], csum[window_blocks:] - csum[:-window_blocks]


def _run_minima(scores: np.ndarray, persistence: int, step: int) -> np.ndarray:
    """The minimum over each run of ``persistence`` checks ``step`` scores apart: what the
    persistence rule sees (a run is over the threshold when its minimum is)."""
    span = (persistence - 1) * step
    m = len(scores) - span
    runs = scores[:m].copy()
    for i in range(1, persistence):
        runs = np.minimum(runs, scores[i * step: m + i * step])
    return runs


def _tail(ordered: np.ndarray, tail: float) -> tuple[float, float, float]:
    """The exponential tail fitted to the top ``tail`` of the sorted ``ordered``: where it starts
    ``u``, its scale ``beta`` (the mean excess over ``u``) and the share of values above ``u``."""
    u = float(np.quantile(ordered, 1.0 - tail))
    above = ordered[ordered > u]
    beta = float((above - u).mean()) if len(above) else 0.0
    return u, beta, len(above) / len(ordered)


def calibrate(
    blocks: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    window_blocks: int,
    alpha: float = 0.01,
    floor: float = 0.0,
    persistence: int = 1,
    tail: float = 0.1,
    stride: int | None = None,
) -> Calibration | None:
    """Threshold of ``score`` at false-alarm rate ``alpha`` from reference sub-blocks.

    Parameters
    ----------
    blocks
        ``(n_blocks, n_bins)`` counts of the reference, one row per consecutive sub-block.
    score
        Vectorised ``score(ref_counts, live_counts)`` from :mod:`monitoring.drift.signals`.
    window_blocks
        Sub-blocks per live window.
    alpha
        Target share of checks over the threshold under no drift.
    floor
        Smallest threshold allowed (guards a degenerate, noise-free reference).
    persistence
        Consecutive checks the monitor needs. Scores of adjacent windows are correlated when a
        signal has long memory (a long session spans many windows), so the threshold is also at
        least the largest minimum score over ``persistence`` consecutive (tumbling) pseudo-windows:
        the persistence rule would not have fired anywhere inside the reference itself.
    stride
        Sub-blocks between consecutive checks (default ``window_blocks``: tumbling windows; fewer
        for a sliding window checked more often than it turns over), for the run minimum above.
    tail
        Share of the pseudo-window scores that the exponential tail is fitted to (the top ones).

    Returns ``None`` when the reference has too few blocks to calibrate (fewer than four windows).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> blocks = rng.multinomial(100, [0.5, 0.3, 0.2], size=500)
    >>> from monitoring.drift.signals import linf
    >>> c = calibrate(blocks, linf, window_blocks=10, alpha=0.01)
    >>> 0.02 < c.threshold < 0.08, c.replicates
    (True, 491)
    >>> c.p_value(0.0), c.p_value(c.null[-1] + 1e-6) <= 1 / (491 + 1)  # past the largest: the tail
    (1.0, True)
    >>> c.p_value(0.2) < 1e-10  # far beyond the reference's noise: the fitted tail
    True
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    n = len(blocks)
    if n < 4 * window_blocks or blocks.sum() == 0:
        return None
    total, windows = _window_sums(blocks, window_blocks)
    rest = total - windows
    all_scores = score(rest, windows)
    scores = all_scores[np.isfinite(all_scores)]
    if len(scores) == 0:
        return None
    q = float(np.quantile(scores, 1.0 - alpha))
    run_max = 0.0
    step = window_blocks if stride is None else stride
    span = (persistence - 1) * step
    if persistence > 1 and len(all_scores) > span:
        runs = _run_minima(all_scores, persistence, step)
        if np.isfinite(runs).any():
            run_max = float(np.nanmax(runs))
    threshold = max(q, run_max, floor)
    null = np.sort(scores)
    return Calibration(threshold, float(scores.mean()), float(scores.std()), q, run_max, len(scores),
                       null, *_tail(null, tail))


def calibrate_long(
    blocks: np.ndarray, score: Callable[[np.ndarray, np.ndarray], np.ndarray], window_blocks: int,
    long_windows: int, persistence: int, rate: float, floor: float = 0.0,  # the long window's rule
    windows: int = 20_000, tail: float = 0.1, seed: int = 0, block_windows: int | None = None,  # the bootstrap
) -> float | None:
    """Threshold of a sliding window of ``long_windows`` check windows, checked every window.

    A 50,000-click reference holds only ~25 disjoint 2,000-click windows, too few for a quantile,
    and sliding windows overlap, so the reference's own long windows cannot calibrate it. Instead a
    moving-block bootstrap: a stream of ``windows`` check windows made of runs of
    ``block_windows`` (default ``long_windows``) consecutive check windows of the reference, each
    run starting at a random sub-block (so correlation within sessions, and between neighbouring
    windows up to the long window's length, is kept), its sliding long windows scored against the rest of the reference, and
    the minimum over ``persistence`` consecutive checks taken (what the persistence rule sees). The
    threshold is where an exponential tail fitted to the top ``tail`` of those run minima is
    crossed at ``rate`` per check (e.g. ``check_every / (false_alarm_events * signals)``), never
    below the largest run minimum of the bootstrap stream nor ``floor``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> blocks = rng.multinomial(25, [0.5, 0.3, 0.2], size=2_000)  # 50,000 clicks
    >>> from monitoring.drift.signals import linf
    >>> t = calibrate_long(blocks, linf, 10, 8, 5, rate=1e-7, windows=4_000)
    >>> short = calibrate(blocks, linf, window_blocks=10, alpha=0.01).threshold
    >>> 0.0 < t < short
    True
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    n = len(blocks)
    if n < 4 * window_blocks * long_windows or blocks.sum() == 0:
        return None
    total, short = _window_sums(blocks, window_blocks)
    rng = np.random.default_rng(seed)
    bw = long_windows if block_windows is None else block_windows
    span = bw * window_blocks
    starts = rng.integers(0, n - span + 1, size=-(-windows // bw))
    rows = (starts[:, None] + np.arange(0, span, window_blocks)[None, :]).ravel()
    n_long = len(rows) - long_windows + 1
    scores = np.empty(n_long)
    # in chunks of CHUNK long windows, so each chunk's temporaries stay in cache (rows are scored
    # independently: the same numbers as one pass over all of them, and faster)
    for c0 in range(0, n_long, CHUNK):
        c1 = min(c0 + CHUNK, n_long)
        seq = short[rows[c0: c1 + long_windows - 1]]
        # sliding sums of long_windows rows, added directly: the counts are whole numbers, so this
        # is exactly the cumsum difference, without numpy's slow cumsum down the rows
        long = seq[: c1 - c0].copy()
        for i in range(1, long_windows):
            long += seq[i: c1 - c0 + i]
        rest = total - long
        np.maximum(rest, 0.0, out=rest)  # never negative for exact counts; a guard, as clip was
        scores[c0:c1] = score(rest, long)
    scores = np.nan_to_num(scores, nan=-np.inf)
    runs = _run_minima(scores, persistence, 1)
    runs = np.sort(runs[np.isfinite(runs)])
    if len(runs) == 0:
        return None
    u, beta, share = _tail(runs, tail)
    t = u + beta * math.log(share / rate) if share > rate else float(runs[-1])
    return max(t, float(runs[-1]), floor)
