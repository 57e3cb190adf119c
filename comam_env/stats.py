"""Small statistics helpers shared by the evaluation harness and the leaderboard."""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Bootstrap resamples used for every reported 95% interval.
DEFAULT_RESAMPLES = 2000


def bootstrap_ci(values: Sequence[float], seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                 confidence: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (:func:`scipy.stats.bootstrap`); deterministic for a seed.

    ``None`` when empty. A constant sample returns ``(x, x)`` without resampling (every
    resample has the same mean; scipy would warn about degenerate data). scipy draws the
    resample indices with ``numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))``
    and interpolates percentiles linearly — what the hand-written numpy version did, so the
    intervals agree with it to ~1e-14 (rounding in the interpolation) and the reported
    3-decimal numbers are unchanged; ``benchmarks/bootstrap_ci.py`` measures both.
    """
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                    vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
