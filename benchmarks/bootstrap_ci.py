"""``comam_env.stats.bootstrap_ci`` (scipy.stats.bootstrap) against the numpy loop it replaced.

Both draw ``n_resamples`` index vectors with ``numpy.random.default_rng(seed).integers(0, n, (R, n))``
and take the 2.5 / 97.5 percentiles (linear interpolation) of the resampled means, so the
intervals agree up to floating-point rounding (``max_abs_diff``: the largest difference of an
interval end over the seeds; rendered numbers have 3 decimals); ``ratio`` is scipy's time over
the plain numpy version, measured in the same run after one warm-up call (scipy's import). 0/1 score vectors like the leaderboard's, 2,000
resamples (the project default), 20 seeds per size.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bootstrap_ci.py [--sizes 13 128 589 2000] [--seeds 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def numpy_bootstrap(values, seed: int = 0, n_resamples: int = 2000, confidence: float = 0.95):
    """The hand-written percentile bootstrap that ``comam_env.stats`` used before scipy."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def main() -> None:
    from comam_env.stats import bootstrap_ci

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[13, 128, 589, 2000], help="sample sizes")
    ap.add_argument("--seeds", type=int, default=20, help="seeds (intervals) per size")
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    args = ap.parse_args()
    bootstrap_ci([0.0, 1.0], seed=0, n_resamples=10)  # warm-up: import scipy.stats outside the timing
    print(f"{'n':>6} {'max_abs_diff':>12} {'numpy ms':>9} {'scipy ms':>9} {'ratio':>6}")
    for n in args.sizes:
        data = [(np.random.default_rng(1000 + s).random(n) < 0.4).astype(float) for s in range(args.seeds)]
        t0 = time.perf_counter()
        old = [numpy_bootstrap(x, seed=s, n_resamples=args.resamples) for s, x in enumerate(data)]
        t1 = time.perf_counter()
        new = [bootstrap_ci(x, seed=s, n_resamples=args.resamples) for s, x in enumerate(data)]
        t2 = time.perf_counter()
        diff = max(abs(u - v) for o, w in zip(old, new) for u, v in zip(o, w))
        a, b = (t1 - t0) / args.seeds * 1e3, (t2 - t1) / args.seeds * 1e3
        print(f"{n:>6} {diff:>12.1e} {a:>9.2f} {b:>9.2f} {b / a:>6.2f}")


if __name__ == "__main__":
    main()
