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
"""

from __future__ import annotations

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

    def p_value(self, score: float) -> float:
        """Share of pseudo-windows scoring at least ``score`` (with the +1 of a permutation test)."""
        n = len(self.null)
        return (1 + n - int(np.searchsorted(self.null, score, side="left"))) / (n + 1)


def calibrate(
    blocks: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    window_blocks: int,
    alpha: float = 0.01,
    floor: float = 0.0,
    persistence: int = 1,
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

    Returns ``None`` when the reference has too few blocks to calibrate (fewer than four windows).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> blocks = rng.multinomial(100, [0.5, 0.3, 0.2], size=500)
    >>> from monitoring.drift.signals import linf
    >>> c = calibrate(blocks, linf, window_blocks=10, alpha=0.01)
    >>> 0.02 < c.threshold < 0.08, c.replicates
    (True, 491)
    >>> c.p_value(0.0), round(c.p_value(1.0), 5)  # 1 / (491 + 1)
    (1.0, 0.00203)
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
    return Calibration(threshold, float(scores.mean()), float(scores.std()), q, run_max, len(scores),
                       np.sort(scores))
