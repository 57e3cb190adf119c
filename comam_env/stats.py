"""Small statistics helpers shared by the evaluation harness and the leaderboard."""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Bootstrap resamples used for every reported 95% interval.
DEFAULT_RESAMPLES = 2000


def bootstrap_ci(values: Sequence[float], seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                 confidence: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean; deterministic for a seed. ``None`` when empty.

    A constant sample returns ``(x, x)`` without resampling (every resample has the same mean).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
