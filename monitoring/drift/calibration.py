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


def calibrate(
    blocks: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    window_blocks: int,
    alpha: float = 0.01,
    floor: float = 0.0,
    persistence: int = 1,
    tail: float = 0.1,
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
    csum = np.vstack([np.zeros((1, blocks.shape[1])), np.cumsum(blocks, axis=0)])
    windows = csum[window_blocks:] - csum[:-window_blocks]
    rest = csum[-1] - windows
    all_scores = score(rest, windows)
    scores = all_scores[np.isfinite(all_scores)]
    if len(scores) == 0:
        return None
    q = float(np.quantile(scores, 1.0 - alpha))
    run_max = 0.0
    span = (persistence - 1) * window_blocks
    if persistence > 1 and len(all_scores) > span:
        runs = all_scores[: len(all_scores) - span].copy()
        for i in range(1, persistence):
            runs = np.minimum(runs, all_scores[i * window_blocks: len(all_scores) - span + i * window_blocks])
        if np.isfinite(runs).any():
            run_max = float(np.nanmax(runs))
    threshold = max(q, run_max, floor)
    null = np.sort(scores)
    u = float(np.quantile(null, 1.0 - tail))
    above = null[null > u]
    beta = float((above - u).mean()) if len(above) else 0.0
    return Calibration(threshold, float(scores.mean()), float(scores.std()), q, run_max, len(scores),
                       null, u, beta, len(above) / len(null))
