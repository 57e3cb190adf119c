"""Small statistics helpers shared by the evaluation harness and the leaderboard."""

from __future__ import annotations

from collections.abc import Sequence

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


def paired_difference_ci(a: Sequence[float], b: Sequence[float], seed: int = 0,
                         n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95) -> dict:
    """Mean of ``a - b`` over paired observations (e.g. the same questions answered by a system
    and by an ablated copy) with a paired percentile bootstrap interval.

    Uses ``scipy.stats.bootstrap`` with ``paired=True`` (resampling the pairs); a constant
    difference returns ``(d, d)`` without resampling. Returns ``{"mean", "ci95", "n"}``.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired_difference_ci: a and b must be 1-D of equal length, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("paired_difference_ci: no pairs")
    d = x - y
    if np.all(d == d[0]):
        return {"mean": float(d[0]), "ci95": [float(d[0]), float(d[0])], "n": int(x.size)}
    res = stats.bootstrap((x, y), lambda u, v, axis=-1: np.mean(u - v, axis=axis), paired=True,
                          vectorized=True, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return {"mean": float(d.mean()), "ci95": [float(ci.low), float(ci.high)], "n": int(x.size)}


def two_way_bootstrap(diff: np.ndarray, seed: int = 0, n_resamples: int = 10_000,
                      confidence: float = 0.95, groups: Sequence | None = None) -> dict:
    """Paired test of a mean difference measured on seeds × questions (``diff[s, q]`` = score of
    system A minus system B, trained with seed ``s``, on question ``q``).

    Seeds and questions are both random factors: a training seed gives a different policy, a
    question a different test item. Each resample draws seeds and questions independently with
    replacement (a two-way, crossed bootstrap) and takes the mean of the selected cells, so the
    interval covers both training variance and question sampling. ``scipy.stats.bootstrap``
    resamples along one axis only, hence this numpy version. The two-sided p-value is twice the
    smaller share of resampled means on either side of 0 (at least ``1 / n_resamples``).

    ``groups`` (one label per question, e.g. its persona) makes the question factor a cluster
    bootstrap: whole groups are drawn with replacement, so questions that share a history (and
    hence their errors) move together; the resampled mean is the weighted mean of the selected
    cells. Without it questions are treated as independent, which understates the interval when
    they are not.

    Returns ``{"mean", "ci95", "p_value", "n_seeds", "n_questions"}`` (+ ``"n_groups"``).
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2 or 0 in d.shape:
        raise ValueError(f"two_way_bootstrap: expected a non-empty (seeds, questions) matrix, got shape {d.shape}")
    S, Q = d.shape
    mean = float(d.mean())
    out = {"mean": mean, "n_seeds": S, "n_questions": Q}
    if groups is not None:
        if len(groups) != Q:
            raise ValueError(f"two_way_bootstrap: {len(groups)} group labels for {Q} questions")
        labels, group_of = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        out["n_groups"] = int(len(labels))
    if np.all(d == d.flat[0]):
        return {**out, "ci95": [mean, mean], "p_value": 1.0 if mean == 0 else 1.0 / n_resamples}
    rng = np.random.default_rng(seed)
    # Resampling with replacement = multinomial counts per seed and per question (or per group,
    # each question weighted by its group's count); the mean of the selected cells is
    # w_s^T D w_q / (S · sum(w_q)).
    ws = rng.multinomial(S, np.full(S, 1.0 / S), size=n_resamples).astype(np.float64)
    if groups is None:
        wq = rng.multinomial(Q, np.full(Q, 1.0 / Q), size=n_resamples).astype(np.float64)
    else:
        G = len(labels)
        wq = rng.multinomial(G, np.full(G, 1.0 / G), size=n_resamples).astype(np.float64)[:, group_of]
    means = np.einsum("ns,sq,nq->n", ws, d, wq) / (S * wq.sum(axis=1))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    p = 2.0 * min(float(np.mean(means <= 0.0)), float(np.mean(means >= 0.0)))
    return {**out, "ci95": [float(lo), float(hi)], "p_value": float(min(1.0, max(p, 1.0 / n_resamples)))}
