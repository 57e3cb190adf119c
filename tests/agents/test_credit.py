"""Credit strategies on hand-computed groups (docs/design.md §4).

Discounts used in the comments (rank i → 1/log2(i+1)):
  d1 = 1, d2 = 1/log2 3 = 0.630930, d3 = 1/log2 4 = 0.5, d4 = 1/log2 5 = 0.430677.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.credit import (
    CREDIT_STRATEGIES,
    adaptive_weights,
    assign_credit,
    assign_credit_batch,
    dcg,
    rank_consistency,
)

D1, D2, D3, D4 = 1.0, 1 / math.log2(3), 0.5, 1 / math.log2(5)

# The running example: G = 4 trajectories, global = answer correctness.
G_REW = np.array([1.0, 0.0, 1.0, 0.0])
LOCAL = {
    # Ranks trajectories 0 (g=1), 2 (g=1), 3 (g=0), 1 (g=0): ideal order → v = 1.
    "extractor": np.array([0.9, 0.1, 0.5, 0.3]),
    # Ranks 1 (0), 2 (1), 3 (0), 0 (1): DCG = d2 + d4 = 1.061607; IDCG = d1 + d2 = 1.630930
    # → v = 0.650921.
    "profiler": np.array([0.2, 0.8, 0.6, 0.4]),
    # All tied: one block with mean gain 0.5 over all four ranks:
    # DCG = 0.5·(d1+d2+d3+d4) = 0.5·2.561607 = 1.280804 → v = 0.785321.
    "retriever": np.array([0.5, 0.5, 0.5, 0.5]),
}
IDCG = D1 + D2
V = {"extractor": 1.0, "profiler": (D2 + D4) / IDCG, "retriever": 0.5 * (D1 + D2 + D3 + D4) / IDCG}
# softmax(1, 0.650921, 0.785321): exp = 2.718282, 1.917312, 2.193322; sum = 6.828916
# → w = 0.398067, 0.280772, 0.321161.
W = {"extractor": 0.398067, "profiler": 0.280772, "retriever": 0.321161}


def test_hand_computed_ndcg_values():
    assert V["profiler"] == pytest.approx(0.650921, abs=1e-6)
    assert V["retriever"] == pytest.approx(0.785321, abs=1e-6)
    for role, x in LOCAL.items():
        assert rank_consistency(x, G_REW) == pytest.approx(V[role], abs=1e-9)


def test_partial_ties_are_tie_averaged():
    # local = [1, 1, 0, 0]: block {0, 1} (gains 1, 0 → mean 0.5) at ranks 1-2,
    # block {2, 3} (gains 1, 0 → mean 0.5) at ranks 3-4:
    # DCG = 0.5(d1+d2) + 0.5(d3+d4) = 1.280804, same as all-tied → v = 0.785321.
    assert rank_consistency(np.array([1.0, 1.0, 0.0, 0.0]), G_REW) == pytest.approx(0.785321, abs=1e-6)
    # local = [1, 0, 1, 1]: block {0, 2, 3} (gains 1, 1, 0 → mean 2/3) at ranks 1-3,
    # then {1} (gain 0) at rank 4: DCG = (2/3)(d1+d2+d3) = 1.420620 → v = 0.871049.
    v = rank_consistency(np.array([1.0, 0.0, 1.0, 1.0]), G_REW)
    assert v == pytest.approx((2 / 3) * (D1 + D2 + D3) / IDCG, abs=1e-12)
    assert v == pytest.approx(0.871049, abs=1e-6)
    # Tie-averaging equals the mean DCG over all orderings of the tied items.
    orders = [[0, 2, 3, 1], [0, 3, 2, 1], [2, 0, 3, 1], [2, 3, 0, 1], [3, 0, 2, 1], [3, 2, 0, 1]]
    disc = np.array([D1, D2, D3, D4])
    mean_dcg = np.mean([np.sum(G_REW[o] * disc) for o in orders])
    assert dcg(G_REW, np.array([1.0, 0.0, 1.0, 1.0])) == pytest.approx(mean_dcg, abs=1e-12)


def test_graded_relevance():
    # F1-style global rewards: g = [0.2, 0.9, 0.5], local orders 2 (0.5), 1 (0.9), 0 (0.2):
    # DCG = 0.5 + 0.9 d2 + 0.2 d3 = 1.167837; IDCG = 0.9 + 0.5 d2 + 0.2 d3 = 1.315465 → 0.887775.
    g = np.array([0.2, 0.9, 0.5])
    v = rank_consistency(np.array([0.0, 0.5, 1.0]), g)
    assert v == pytest.approx((0.5 + 0.9 * D2 + 0.2 * D3) / (0.9 + 0.5 * D2 + 0.2 * D3), abs=1e-12)
    assert v == pytest.approx(0.887775, abs=1e-6)


def test_degenerate_groups():
    x = np.array([0.3, 0.1, 0.7, 0.2])
    # All global rewards 0: IDCG = 0, every ordering is ideal → 1.0 (documented convention).
    assert rank_consistency(x, np.zeros(4)) == 1.0
    # All equal non-zero: IDCG > 0 but any ordering is ideal → 1.0.
    assert rank_consistency(x, np.ones(4)) == 1.0
    assert rank_consistency(x, np.full(4, 0.4)) == 1.0
    # The value is configurable.
    assert rank_consistency(x, np.zeros(4), degenerate=0.0) == 0.0
    # Single trajectory: trivially ideal.
    assert rank_consistency(np.array([0.2]), np.array([1.0])) == 1.0
    # Degenerate group → uniform weights, so adaptive == equal there.
    res = assign_credit("adaptive", {"a": x, "b": x[::-1].copy(), "c": x * 0}, np.zeros(4))
    assert res.weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_nan_local_rewards_excluded_from_ndcg_and_zero_in_fusion():
    g = np.array([1.0, 1.0, 0.0, 0.0])
    # Defined: trajectory 1 (g=1, local 0.9) and 2 (g=0, local 0.1) → ideal order → 1.
    assert rank_consistency(np.array([np.nan, 0.9, 0.1, np.nan]), g) == 1.0
    # Defined: 1 (g=1, local 0.1) and 2 (g=0, local 0.9) → order 2, 1 → DCG = d2, IDCG = 1 → 0.630930.
    assert rank_consistency(np.array([np.nan, 0.1, 0.9, np.nan]), g) == pytest.approx(D2, abs=1e-12)
    # Nothing defined → degenerate value.
    assert rank_consistency(np.full(4, np.nan), g) == 1.0
    # Fusion: NaN counts as 0 (equal share w = 1/2 with two roles).
    res = assign_credit("equal", {"a": np.array([np.nan, 0.5, np.nan, 0.2]), "b": np.zeros(4)}, g)
    np.testing.assert_allclose(res.rewards["a"], [0.5, 1.0, 0.0, 0.2])
    assert all(np.all(np.isfinite(r)) for r in res.rewards.values())


def test_adaptive_weights_softmax():
    w = adaptive_weights(V)
    assert w == pytest.approx(W, abs=1e-6)
    assert sum(w.values()) == pytest.approx(1.0)
    # Temperature: T → small concentrates on the most consistent role.
    w_cold = adaptive_weights(V, temperature=0.01)
    assert w_cold["extractor"] > 0.99
    with pytest.raises(ValueError):
        adaptive_weights(V, temperature=0)


def test_integrated_rewards_every_strategy():
    g = G_REW
    # local: r_n (extractor [0.9, 0.1, 0.5, 0.3]).
    res = assign_credit("local", LOCAL, g)
    np.testing.assert_allclose(res.rewards["extractor"], [0.9, 0.1, 0.5, 0.3])
    assert res.weights == {"extractor": 0.0, "profiler": 0.0, "retriever": 0.0}
    # global: r_ans for everyone.
    res = assign_credit("global", LOCAL, g)
    for r in LOCAL:
        np.testing.assert_allclose(res.rewards[r], [1, 0, 1, 0])
    # equal: r_n + g/3; profiler [0.2 + 1/3, 0.8, 0.6 + 1/3, 0.4] = [0.533333, 0.8, 0.933333, 0.4].
    res = assign_credit("equal", LOCAL, g)
    np.testing.assert_allclose(res.rewards["profiler"], [0.533333, 0.8, 0.933333, 0.4], atol=1e-6)
    assert res.weights["retriever"] == pytest.approx(1 / 3)
    # adaptive: r_n + w_n g; extractor [0.9 + 0.398067, 0.1, 0.5 + 0.398067, 0.3].
    res = assign_credit("adaptive", LOCAL, g)
    np.testing.assert_allclose(res.rewards["extractor"], [1.298067, 0.1, 0.898067, 0.3], atol=1e-6)
    # retriever [0.5 + 0.321161, 0.5, 0.821161, 0.5].
    np.testing.assert_allclose(res.rewards["retriever"], [0.821161, 0.5, 0.821161, 0.5], atol=1e-6)
    assert res.consistency == pytest.approx(V, abs=1e-9)
    assert res.weights == pytest.approx(W, abs=1e-6)
    np.testing.assert_allclose(res.global_credit["profiler"], [0.280772, 0, 0.280772, 0], atol=1e-6)
    # adaptive-alg1: g + w_n r_n; profiler [1 + 0.280772·0.2, 0.280772·0.8, 1 + 0.280772·0.6, 0.280772·0.4]
    # = [1.056154, 0.224618, 1.168463, 0.112309].
    res = assign_credit("adaptive-alg1", LOCAL, g)
    np.testing.assert_allclose(res.rewards["profiler"], [1.056154, 0.224618, 1.168463, 0.112309], atol=1e-6)
    # adaptive-decoupled: z(r_n) + w_n z(g). z(g) = [1, -1, 1, -1] (mean 0.5, pop. std 0.5);
    # extractor: mean 0.45, pop. std sqrt((0.2025+0.1225+0.0025+0.0225)/4) = 0.295804
    # → z = [1.521278, -1.183216, 0.169031, -0.507093]; + 0.398067·[1, -1, 1, -1]
    # = [1.919345, -1.581283, 0.567098, -0.905160].
    res = assign_credit("adaptive-decoupled", LOCAL, g, eps=0.0)
    np.testing.assert_allclose(res.rewards["extractor"], [1.919345, -1.581283, 0.567098, -0.905160], atol=1e-5)
    # Constant retriever local → z = 0, only the global part remains.
    np.testing.assert_allclose(res.rewards["retriever"], 0.321161 * np.array([1, -1, 1, -1]), atol=1e-5)
    # leave-one-out: r_n + (g − g_cf_n). Extractor counterfactual [0, 0, 1, 0] → credit [1, 0, 0, 0]
    # → [1.9, 0.1, 0.5, 0.3]; profiler cf = g → credit 0 → local; retriever cf [1, 1, 1, 1]
    # → credit [0, -1, 0, -1] → [0.5, -0.5, 0.5, -0.5].
    cf = {"extractor": np.array([0.0, 0, 1, 0]), "profiler": g.copy(), "retriever": np.ones(4)}
    res = assign_credit("leave-one-out", LOCAL, g, counterfactual_global=cf)
    np.testing.assert_allclose(res.rewards["extractor"], [1.9, 0.1, 0.5, 0.3])
    np.testing.assert_allclose(res.rewards["profiler"], LOCAL["profiler"])
    np.testing.assert_allclose(res.rewards["retriever"], [0.5, -0.5, 0.5, -0.5])
    assert res.weights is None and res.consistency is None


def test_registry_and_errors():
    assert set(CREDIT_STRATEGIES) >= {"local", "global", "equal", "adaptive", "adaptive-alg1", "leave-one-out"}
    with pytest.raises(ValueError, match="unknown credit strategy"):
        assign_credit("nope", LOCAL, G_REW)
    with pytest.raises(ValueError, match="profiler"):
        assign_credit("adaptive", {"profiler": np.zeros(3)}, G_REW)
    with pytest.raises(ValueError, match="finite"):
        assign_credit("adaptive", LOCAL, np.array([1.0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="counterfactual"):
        assign_credit("leave-one-out", LOCAL, G_REW)
    with pytest.raises(ValueError, match="retriever"):
        assign_credit("leave-one-out", LOCAL, G_REW, counterfactual_global={"extractor": G_REW, "profiler": G_REW})
    with pytest.raises(ValueError, match=">= 0"):
        rank_consistency(np.zeros(2), np.array([-1.0, 1.0]))


def test_batch_matches_per_group():
    rng = np.random.default_rng(0)
    B, G = 5, 8
    local = {r: rng.random((B, G)) for r in ("extractor", "profiler", "retriever")}
    local["extractor"][1, :3] = np.nan
    glob = (rng.random((B, G)) < 0.5).astype(float)
    for name in ("local", "global", "equal", "adaptive", "adaptive-alg1", "adaptive-decoupled"):
        bc = assign_credit_batch(name, local, glob)
        assert bc.roles == ("extractor", "profiler", "retriever")
        for b in range(B):
            one = assign_credit(name, {r: x[b] for r, x in local.items()}, glob[b])
            for j, r in enumerate(bc.roles):
                np.testing.assert_allclose(bc.rewards[r][b], one.rewards[r])
                if one.consistency is not None:
                    assert bc.consistency[b, j] == pytest.approx(one.consistency[r])
                assert bc.weights[b, j] == pytest.approx(one.weights[r])
    cf = {r: rng.random((B, G)) for r in local}
    bc = assign_credit_batch("leave-one-out", local, glob, counterfactual_global=cf)
    np.testing.assert_allclose(bc.global_credit["profiler"], glob - cf["profiler"])
    with pytest.raises(ValueError, match="group 0"):
        assign_credit_batch("leave-one-out", local, glob, counterfactual_global={"extractor": cf["extractor"]})


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=2, max_value=10).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n, max_size=n),
            st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), min_size=n, max_size=n),
        )
    )
)
def test_matches_sklearn_ndcg(pair):
    from sklearn.metrics import ndcg_score

    g, loc = map(np.array, pair)
    if np.all(g == g[0]):
        return  # degenerate: our documented convention (1.0), not sklearn's
    ours = rank_consistency(loc, g)
    ref = ndcg_score(g[None, :], loc[None, :], ignore_ties=False)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0.0 <= ours <= 1.0 + 1e-12


def test_credit_options_are_exactly_the_strategies_keyword_options():
    """TrainConfig validates credit_kwargs against CREDIT_OPTIONS: it must not drift from the code."""
    import inspect

    from agents.credit import CREDIT_OPTIONS

    found = set()
    for fn in CREDIT_STRATEGIES.values():
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                found.add(name)
    assert found - {"counterfactual_global"} == CREDIT_OPTIONS
