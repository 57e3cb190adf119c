"""comam_env.stats: the paired tests every report relies on."""

import numpy as np
import pytest

from comam_env.stats import two_way_bootstrap


def test_two_way_bootstrap_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, size=(5, 200))
    flat = two_way_bootstrap(noise - noise.mean(), seed=1)
    assert flat["ci95"][0] < 0.0 < flat["ci95"][1] and flat["p_value"] > 0.5
    shifted = two_way_bootstrap(noise - noise.mean() + 0.5, seed=1)
    assert shifted["ci95"][0] > 0.0 and shifted["p_value"] < 0.001
    assert shifted["mean"] == pytest.approx(0.5)


def test_grouped_bootstrap_counts_a_cluster_once():
    """Questions that share a persona move together: 20 personas x 10 identical questions carry
    the information of 20 questions, so the persona bootstrap matches the de-duplicated matrix and
    is wider than the bootstrap that treats the 200 questions as independent."""
    rng = np.random.default_rng(3)
    per_persona = rng.normal(0.1, 1.0, size=(5, 20))
    d = np.repeat(per_persona, 10, axis=1)
    groups = np.repeat([f"p{i}" for i in range(20)], 10)
    grouped = two_way_bootstrap(d, seed=0, groups=groups)
    independent = two_way_bootstrap(d, seed=0)
    dedup = two_way_bootstrap(per_persona, seed=0)
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert grouped["n_groups"] == 20 and grouped["mean"] == pytest.approx(d.mean())
    assert width(grouped) == pytest.approx(width(dedup), rel=0.1)
    assert width(grouped) > 1.5 * width(independent)  # the seed factor is common to both


def test_grouped_bootstrap_weights_unequal_groups_by_their_questions():
    d = np.array([[1.0, 1.0, 1.0, 0.0]])  # group a has 3 questions at 1, group b one at 0
    r = two_way_bootstrap(np.repeat(d, 3, axis=0), seed=0, groups=["a", "a", "a", "b"], n_resamples=4000)
    assert r["mean"] == pytest.approx(0.75)
    assert r["ci95"] == [0.0, 1.0]  # the resamples draw {a,a}, {a,b} or {b,b}: means 1, 0.75, 0


def test_grouped_bootstrap_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="3 group labels for 4 questions"):
        two_way_bootstrap(np.ones((2, 4)), groups=["a", "b", "c"])
