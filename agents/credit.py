"""Credit assignment over one group of trajectories (docs/design.md §4).

For one query the learner samples a *group* of G full trajectories through the
extractor → profiler → retriever pipeline. Each role n has local rewards
``R_n = local[n]`` (shape ``(G,)``) and all roles share the global rewards
``R_g = global_`` (shape ``(G,)``, the answer reward ``r_ans``). A credit strategy
turns these into one *integrated reward* per role and trajectory; GRPO then
normalises those within the group (:func:`agents.grpo.group_advantages`).

Strategies (registry :data:`CREDIT_STRATEGIES`, entry point :func:`assign_credit`):

``local``
    ``r_n`` — independent optimisation on the local task only.
``global``
    ``r_ans`` for every role — the shared team reward only.
``equal``
    ``r_n + (1/N)·r_ans`` — a fixed equal share of the global reward.
``adaptive`` (CoMAM, eq. 13–15)
    ``v_n = NDCG(R_n, R_g)`` (:func:`rank_consistency`), ``w = softmax(v)`` over the
    roles (eq. 14), ``r_n + w_n·r_ans`` (eq. 15).
``adaptive-alg1``
    ``r_ans + w_n·r_n`` — the paper's Algorithm 1 reading, same ``w``.
``adaptive-decoupled``
    Per-agent component normalisation (beyond the paper): ``z(r_n) + w_n·z(r_ans)``
    where ``z`` standardises within the group (population std, ``eps`` added), so
    neither component dominates an agent's advantage by its scale alone.
``leave-one-out`` (beyond the paper)
    ``r_n + (r_ans − r_ans_cf,n)`` where ``r_ans_cf,n`` is the global reward of the
    same trajectory re-scored after replacing agent n's output with a frozen reference
    policy's output. The caller computes those counterfactual rewards and passes them
    as ``counterfactual_global={role: (G,)}``.

Undefined local rewards. A question without gold evidence has no coverage reward;
the rollout stores it as ``NaN``. Here a NaN local reward

* counts as ``0`` wherever rewards are fused (every strategy's integrated reward),
  so the trajectory is driven by its global share only, and
* is *excluded* from the NDCG of :func:`rank_consistency` (the NDCG is computed over
  the trajectories whose local reward is defined). If no trajectory is defined,
  ``v_n`` takes the degenerate value (see below).

Global rewards must be finite and (for the NDCG) non-negative: they are graded
relevances (0/1 accuracy or token F1).

NDCG conventions (:func:`rank_consistency`), identical to
``sklearn.metrics.ndcg_score(ignore_ties=False)`` wherever that is defined:

* gains are the global rewards themselves (linear gain, ``g = r_ans``), the discount
  of 1-based rank ``i`` is ``1 / log2(i + 1)``;
* the ideal DCG orders the trajectories by ``R_g`` (ties there do not matter);
* ties in ``R_n`` are *tie-averaged*: the DCG is the expectation over all orderings
  of the tied trajectories, i.e. a tied block gets its mean gain times the sum of the
  discounts of the ranks it occupies (McSherry & Najork, 2008) — a local reward that
  cannot tell two trajectories apart gets neither credit nor blame for their order;
* degenerate groups: when every ordering achieves the ideal DCG — all global rewards
  equal (including all zero, IDCG = 0) or fewer than two defined local rewards —
  ``v_n = 1.0`` (``DEGENERATE_CONSISTENCY``). Justification: there is no global
  ranking for the local reward to disagree with, so the local reward is trivially
  consistent; all roles then get the same ``v`` and uniform weights ``1/N`` — the
  ``equal`` strategy — which is the neutral choice. (sklearn returns 0.0 when IDCG =
  0; that convention would also give uniform weights when every role is degenerate,
  but would penalise a role whose local reward is undefined relative to the others.)
  In such a group the global term ``w_n·r_ans`` is constant across the group anyway,
  so the choice changes only logged weights, never the group-normalised advantages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

__all__ = [
    "CREDIT_OPTIONS",
    "CREDIT_STRATEGIES",
    "DEGENERATE_CONSISTENCY",
    "BatchCredit",
    "CreditResult",
    "adaptive_weights",
    "assign_credit",
    "assign_credit_batch",
    "dcg",
    "rank_consistency",
]

#: ``v_n`` for a group where every ordering is ideal (see the module docstring).
DEGENERATE_CONSISTENCY: float = 1.0


@dataclass(frozen=True)
class CreditResult:
    """Credit for one group.

    Attributes:
        strategy: the strategy name.
        rewards: role → integrated rewards, shape ``(G,)``, float64, finite.
        global_credit: role → the part of ``rewards`` that comes from the global
            reward (``w_n·r_ans``, ``r_ans``, ``r_ans − r_ans_cf`` …), shape ``(G,)``.
        consistency: role → ``v_n`` (NDCG rank consistency) for the adaptive
            strategies, else ``None``.
        weights: role → ``w_n``, the global share of each role (``1/N`` for ``equal``,
            ``1`` for ``global``, ``0`` for ``local``, softmax for adaptive, ``None``
            for ``leave-one-out`` whose share is per trajectory).
    """

    strategy: str
    rewards: dict[str, np.ndarray]
    global_credit: dict[str, np.ndarray]
    consistency: dict[str, float] | None = None
    weights: dict[str, float] | None = None


@dataclass(frozen=True)
class BatchCredit:
    """Credit for B groups (see :func:`assign_credit_batch`).

    Attributes:
        strategy: the strategy name.
        roles: role order used for the ``(B, N)`` arrays.
        rewards: role → integrated rewards ``(B, G)``.
        global_credit: role → global part ``(B, G)``.
        consistency: ``(B, N)`` array of ``v_n`` or ``None``.
        weights: ``(B, N)`` array of ``w_n`` or ``None``.
    """

    strategy: str
    roles: tuple[str, ...]
    rewards: dict[str, np.ndarray]
    global_credit: dict[str, np.ndarray]
    consistency: np.ndarray | None = None
    weights: np.ndarray | None = None


# --------------------------------------------------------------------------- NDCG


def _discounts(n: int) -> np.ndarray:
    # 1-based rank i → 1/log2(i+1); rank 1 has discount 1.
    return 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)


def dcg(gains: np.ndarray, scores: np.ndarray) -> float:
    """Tie-averaged DCG of ``gains`` ranked by ``scores`` (descending).

    Trajectories with equal scores form a block; the block contributes its mean gain
    times the sum of the discounts of the ranks it occupies, which equals the
    expected DCG over every ordering of the block.
    """
    gains = np.asarray(gains, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if gains.shape != scores.shape or gains.ndim != 1:
        raise ValueError(f"dcg: gains {gains.shape} and scores {scores.shape} must be equal 1-D shapes")
    n = gains.shape[0]
    if n == 0:
        return 0.0
    # Unique values of -score in ascending order = scores descending; inv maps each
    # trajectory to its tie block.
    _, inv, counts = np.unique(-scores, return_inverse=True, return_counts=True)
    block_gain = np.zeros(len(counts))
    np.add.at(block_gain, inv, gains)
    block_gain /= counts
    cum = np.concatenate([[0.0], np.cumsum(_discounts(n))])
    ends = np.cumsum(counts)
    starts = ends - counts
    return float(np.sum(block_gain * (cum[ends] - cum[starts])))


def rank_consistency(
    local: np.ndarray,
    global_: np.ndarray,
    *,
    degenerate: float = DEGENERATE_CONSISTENCY,
) -> float:
    """CoMAM eq. 13: NDCG of the ordering induced by ``local`` with ``global_`` as gains.

    Args:
        local: ``(G,)`` local rewards of one role; NaN entries are excluded.
        global_: ``(G,)`` global rewards (finite, ≥ 0).
        degenerate: value returned when every ordering is ideal (all defined global
            rewards equal, including all zero, or fewer than two defined local
            rewards). See the module docstring for why 1.0 is the default.

    Returns:
        ``v ∈ [0, 1]``: 1 when sorting by the local reward sorts the global rewards
        perfectly.
    """
    local = np.asarray(local, dtype=np.float64)
    global_ = np.asarray(global_, dtype=np.float64)
    if local.shape != global_.shape or local.ndim != 1:
        raise ValueError(
            f"rank_consistency: local {local.shape} and global {global_.shape} must be equal 1-D shapes"
        )
    if not np.all(np.isfinite(global_)):
        raise ValueError("rank_consistency: global rewards must be finite")
    if np.any(global_ < 0):
        raise ValueError("rank_consistency: global rewards are NDCG gains and must be >= 0")
    if np.any(np.isinf(local)):
        raise ValueError("rank_consistency: local rewards must be finite or NaN (undefined)")
    defined = ~np.isnan(local)
    loc, gl = local[defined], global_[defined]
    if loc.size < 2 or np.all(gl == gl[0]):
        return float(degenerate)
    ideal = dcg(gl, gl)  # > 0 here: gains are >= 0 and not all equal
    return float(dcg(gl, loc) / ideal)


def adaptive_weights(consistency: Mapping[str, float], temperature: float = 1.0) -> dict[str, float]:
    """CoMAM eq. 14: ``w_n = exp(v_n/T) / Σ_m exp(v_m/T)`` (the paper uses ``T = 1``)."""
    if temperature <= 0:
        raise ValueError(f"adaptive_weights: temperature must be > 0, got {temperature}")
    roles = list(consistency)
    v = np.array([consistency[r] for r in roles], dtype=np.float64) / temperature
    e = np.exp(v - v.max())  # shift for numerical stability; softmax is shift-invariant
    w = e / e.sum()
    return {r: float(x) for r, x in zip(roles, w)}


# ---------------------------------------------------------------------- helpers


def _validate(local: Mapping[str, np.ndarray], global_: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if not local:
        raise ValueError("assign_credit: `local` must hold at least one role")
    g = np.asarray(global_, dtype=np.float64)
    if g.ndim != 1:
        raise ValueError(f"assign_credit: global rewards must have shape (G,), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("assign_credit: global rewards must be finite (no NaN/inf)")
    out: dict[str, np.ndarray] = {}
    for role, r in local.items():
        arr = np.asarray(r, dtype=np.float64)
        if arr.shape != g.shape:
            raise ValueError(
                f"assign_credit: local rewards of role {role!r} have shape {arr.shape}, "
                f"expected {g.shape} like the global rewards"
            )
        if np.any(np.isinf(arr)):
            raise ValueError(f"assign_credit: local rewards of role {role!r} contain inf")
        out[role] = arr
    return out, g


def _fill(r: np.ndarray) -> np.ndarray:
    """Undefined (NaN) local rewards count as 0 when fused."""
    return np.where(np.isnan(r), 0.0, r)


def _zscore(x: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean()
    std = x.std()
    if std == 0.0:
        return np.zeros_like(centred)  # a constant component carries no signal (even with eps = 0)
    return centred / (std + eps)


# ------------------------------------------------------------------- strategies


def credit_local(local, global_, **_):
    """``r_n``: local reward only (NaN → 0); global share 0."""
    loc, g = _validate(local, global_)
    return CreditResult(
        "local",
        rewards={r: _fill(x) for r, x in loc.items()},
        global_credit={r: np.zeros_like(g) for r in loc},
        weights={r: 0.0 for r in loc},
    )


def credit_global(local, global_, **_):
    """``r_ans`` for every role; local rewards are ignored."""
    loc, g = _validate(local, global_)
    return CreditResult(
        "global",
        rewards={r: g.copy() for r in loc},
        global_credit={r: g.copy() for r in loc},
        weights={r: 1.0 for r in loc},
    )


def credit_equal(local, global_, **_):
    """``r_n + (1/N)·r_ans``."""
    loc, g = _validate(local, global_)
    w = 1.0 / len(loc)
    return CreditResult(
        "equal",
        rewards={r: _fill(x) + w * g for r, x in loc.items()},
        global_credit={r: w * g for r in loc},
        weights={r: w for r in loc},
    )


def _adaptive_parts(loc, g, temperature, degenerate):
    v = {r: rank_consistency(x, g, degenerate=degenerate) for r, x in loc.items()}
    return v, adaptive_weights(v, temperature)


def credit_adaptive(local, global_, *, temperature: float = 1.0, degenerate: float = DEGENERATE_CONSISTENCY, **_):
    """CoMAM eq. 13–15: ``r_n + w_n·r_ans`` with ``w = softmax(NDCG(R_n, R_g))``."""
    loc, g = _validate(local, global_)
    v, w = _adaptive_parts(loc, g, temperature, degenerate)
    return CreditResult(
        "adaptive",
        rewards={r: _fill(x) + w[r] * g for r, x in loc.items()},
        global_credit={r: w[r] * g for r in loc},
        consistency=v,
        weights=w,
    )


def credit_adaptive_alg1(
    local, global_, *, temperature: float = 1.0, degenerate: float = DEGENERATE_CONSISTENCY, **_
):
    """Algorithm 1 reading: ``r_ans + w_n·r_n`` (same ``w`` as ``adaptive``)."""
    loc, g = _validate(local, global_)
    v, w = _adaptive_parts(loc, g, temperature, degenerate)
    return CreditResult(
        "adaptive-alg1",
        rewards={r: g + w[r] * _fill(x) for r, x in loc.items()},
        global_credit={r: g.copy() for r in loc},
        consistency=v,
        weights=w,
    )


def credit_adaptive_decoupled(
    local,
    global_,
    *,
    temperature: float = 1.0,
    degenerate: float = DEGENERATE_CONSISTENCY,
    eps: float = 1e-6,
    **_,
):
    """Per-agent component normalisation: ``z(r_n) + w_n·z(r_ans)``, z = group z-score.

    Undefined local rewards are filled with 0 *before* standardising. A constant
    component standardises to 0 (its std is 0 and ``eps`` keeps the division finite).
    """
    loc, g = _validate(local, global_)
    v, w = _adaptive_parts(loc, g, temperature, degenerate)
    zg = _zscore(g, eps)
    return CreditResult(
        "adaptive-decoupled",
        rewards={r: _zscore(_fill(x), eps) + w[r] * zg for r, x in loc.items()},
        global_credit={r: w[r] * zg for r in loc},
        consistency=v,
        weights=w,
    )


def credit_leave_one_out(local, global_, *, counterfactual_global: Mapping[str, np.ndarray] | None = None, **_):
    """``r_n + (r_ans − r_ans_cf,n)``: each agent's global credit is its marginal effect.

    Args:
        counterfactual_global: role → ``(G,)`` global rewards of the same trajectories
            with that role's output replaced by a frozen reference policy's output
            (computed by the caller, e.g. the rollout collector). Required for every
            role in ``local``.
    """
    loc, g = _validate(local, global_)
    if counterfactual_global is None:
        raise ValueError("leave-one-out credit needs counterfactual_global={role: (G,) rewards}")
    credit = {}
    for r in loc:
        if r not in counterfactual_global:
            raise ValueError(f"leave-one-out credit: counterfactual_global lacks role {r!r}")
        cf = np.asarray(counterfactual_global[r], dtype=np.float64)
        if cf.shape != g.shape or not np.all(np.isfinite(cf)):
            raise ValueError(
                f"leave-one-out credit: counterfactual rewards of role {r!r} must be finite with shape {g.shape}, "
                f"got {cf.shape}"
            )
        credit[r] = g - cf
    return CreditResult(
        "leave-one-out",
        rewards={r: _fill(x) + credit[r] for r, x in loc.items()},
        global_credit=credit,
    )


CreditFn = Callable[..., CreditResult]

#: Strategy name → function ``(local, global_, **extra) -> CreditResult``.
#: Keyword options of the strategies that a configuration may set (``assign_credit``'s ``**extra``
#: minus the per-batch ``counterfactual_global``): adaptive family ``temperature``/``degenerate``,
#: adaptive-decoupled ``eps``.
CREDIT_OPTIONS = frozenset({"temperature", "degenerate", "eps"})

CREDIT_STRATEGIES: dict[str, CreditFn] = {
    "local": credit_local,
    "global": credit_global,
    "equal": credit_equal,
    "adaptive": credit_adaptive,
    "adaptive-alg1": credit_adaptive_alg1,
    "adaptive-decoupled": credit_adaptive_decoupled,
    "leave-one-out": credit_leave_one_out,
}


def assign_credit(
    name: str, local: Mapping[str, np.ndarray], global_: np.ndarray, **extra
) -> CreditResult:
    """Apply the credit strategy ``name`` to one group.

    Args:
        name: a key of :data:`CREDIT_STRATEGIES`.
        local: role → ``(G,)`` local rewards (NaN = undefined).
        global_: ``(G,)`` global rewards.
        **extra: strategy options — ``temperature``/``degenerate`` (adaptive family),
            ``eps`` (adaptive-decoupled), ``counterfactual_global`` (leave-one-out).
            Options a strategy does not use are ignored, so one call site can serve
            every strategy.
    """
    try:
        fn = CREDIT_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown credit strategy {name!r}; choose from {sorted(CREDIT_STRATEGIES)}") from None
    return fn(local, global_, **extra)


def assign_credit_batch(
    name: str,
    local: Mapping[str, np.ndarray],
    global_: np.ndarray,
    *,
    counterfactual_global: Mapping[str, np.ndarray] | None = None,
    **extra,
) -> BatchCredit:
    """:func:`assign_credit` over B groups at once.

    Args:
        local: role → ``(B, G)`` local rewards.
        global_: ``(B, G)`` global rewards.
        counterfactual_global: role → ``(B, G)`` (leave-one-out only).

    Returns:
        :class:`BatchCredit` with ``(B, G)`` rewards per role and ``(B, N)`` ``v``/``w``
        arrays (columns in ``roles`` order) when the strategy defines them.
    """
    g = np.asarray(global_, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"assign_credit_batch: global rewards must have shape (B, G), got {g.shape}")
    roles = tuple(local)
    loc = {r: np.asarray(local[r], dtype=np.float64) for r in roles}
    for r, x in loc.items():
        if x.shape != g.shape:
            raise ValueError(f"assign_credit_batch: local rewards of role {r!r} have shape {x.shape}, expected {g.shape}")
    results = []
    for b in range(g.shape[0]):
        kw = dict(extra)
        if counterfactual_global is not None:
            kw["counterfactual_global"] = {r: np.asarray(x)[b] for r, x in counterfactual_global.items()}
        try:
            results.append(assign_credit(name, {r: loc[r][b] for r in roles}, g[b], **kw))
        except ValueError as e:
            raise ValueError(f"group {b}: {e}") from None
    if not results:
        empty = {r: np.zeros(g.shape) for r in roles}
        return BatchCredit(name, roles, empty, dict(empty))
    rewards = {r: np.stack([res.rewards[r] for res in results]) for r in roles}
    gcredit = {r: np.stack([res.global_credit[r] for res in results]) for r in roles}
    v = w = None
    if results[0].consistency is not None:
        v = np.array([[res.consistency[r] for r in roles] for res in results])
    if results[0].weights is not None:
        w = np.array([[res.weights[r] for r in roles] for res in results])
    return BatchCredit(name, roles, rewards, gcredit, v, w)
