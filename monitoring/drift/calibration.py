"""Thresholds from the reference's own noise.

The reference is cut into consecutive sub-blocks. A pseudo live window is ``window_blocks``
sub-blocks drawn at random without replacement; it is scored against the rest of the reference
(leave-out, so the window is not compared with itself). The threshold is the ``1 - alpha`` quantile
of those scores, never below the signal's floor: with no drift, one check in ``1/alpha`` exceeds it,
and persistence (``k`` consecutive checks) takes the false-alarm rate of ``retraining_due`` to about
``alpha ** k`` per check.
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
    replicates: int


def calibrate(
    blocks: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    window_blocks: int,
    alpha: float = 0.01,
    floor: float = 0.0,
    replicates: int = 1000,
    seed: int = 0,
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

    Returns ``None`` when the reference has too few blocks to calibrate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> blocks = rng.multinomial(250, [0.5, 0.3, 0.2], size=200)
    >>> from monitoring.drift.signals import linf
    >>> c = calibrate(blocks, linf, window_blocks=4, alpha=0.01)
    >>> 0.02 < c.threshold < 0.08, c.replicates
    (True, 1000)
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    n = len(blocks)
    if n < 2 * window_blocks or blocks.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((replicates, n)), axis=1)[:, :window_blocks]
    windows = blocks[idx].sum(axis=1)
    rest = blocks.sum(axis=0) - windows
    scores = score(rest, windows)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        return None
    q = float(np.quantile(scores, 1.0 - alpha))
    return Calibration(max(q, floor), float(scores.mean()), float(scores.std()), q, len(scores))
