"""Lockstep group rollouts (agents/rollout.py): shapes, determinism, overrides, evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import comam_env
from agents.base import ROLE_NAMES, make_policy
from agents.rollout import collect_rollouts, evaluate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def envs():
    return [comam_env.make("synthetic-32k", split="train", view="selection") for _ in range(5)]


@pytest.fixture(scope="module")
def qids(envs):
    return list(envs[0].unwrapped.question_ids[:3])


def _policy(envs, seed=0):
    dim = int(envs[0].observation_space(envs[0].possible_agents[0])["candidates"].shape[-1])
    return make_policy("selection", dim=dim, seed=seed)


def _roll(envs, policy, qids, G, seed, **kw):
    return collect_rollouts(envs, {r: policy for r in ROLE_NAMES}, qids, G,
                            rng=np.random.default_rng(seed), generator=torch.Generator().manual_seed(seed), **kw)


def test_shapes_groups_and_actions(envs, qids):
    policy = _policy(envs)
    # 3 queries × G=4 = 12 episodes over a pool of 5 envs: three waves, the last one partial.
    batch = _roll(envs, policy, qids, 4, seed=1)
    assert len(batch.trajectories) == 12
    for t_index, t in enumerate(batch.trajectories):
        assert (t.group, t.member) == divmod(t_index, 4)
        assert t.question_id == qids[t.group]
        assert t.global_reward in (0.0, 1.0)
    assert batch.global_matrix().shape == (3, 4)
    for role in ROLE_NAMES:
        m = batch.local_matrix(role)
        assert m.shape == (3, 4)
        acts = batch.actions_of(role)
        # every trajectory has at least one action for every role; profiler/retriever act exactly once
        per_traj = np.bincount([a.trajectory for a in acts], minlength=12)
        assert (per_traj >= 1).all()
        if role != "extractor":
            assert (per_traj == 1).all()
        assert all(np.isfinite(a.logprob) and a.logprob <= 1e-6 for a in acts)
    # the extractor acts once per chunk: at least one trajectory has several chunk steps
    assert len(batch.actions_of("extractor")) >= 12
    # global rewards equal what the env recorded for each trajectory
    for t in batch.trajectories:
        assert t.global_reward == float(t.record.get("global_reward") or 0.0)


def test_same_seed_same_rollouts_and_different_seed_differs(envs, qids):
    policy = _policy(envs)
    a = _roll(envs, policy, qids, 4, seed=7)
    b = _roll(envs, policy, qids, 4, seed=7)
    c = _roll(envs, policy, qids, 4, seed=8)
    la = [x.logprob for x in a.actions]
    assert la == [x.logprob for x in b.actions]
    np.testing.assert_array_equal(a.global_matrix(), b.global_matrix())
    for role in ROLE_NAMES:
        np.testing.assert_array_equal(a.local_matrix(role), b.local_matrix(role))
    assert la != [x.logprob for x in c.actions]


def test_reset_seeds_length_checked(envs, qids):
    with pytest.raises(ValueError, match="reset_seeds has 2 entries, expected 12"):
        _roll(envs, _policy(envs), qids, 4, seed=0, reset_seeds=np.arange(2))
    with pytest.raises(ValueError, match="at least one environment"):
        _roll([], _policy(envs), qids, 4, seed=0)


def test_override_policy_acts_only_for_its_trajectory_and_role(envs, qids):
    main, other = _policy(envs, seed=0), _policy(envs, seed=123)
    calls = []
    real_act = other.act

    def spy(role, obs, **kw):
        calls.append((role, len(obs)))
        return real_act(role, obs, **kw)

    other.act = spy
    batch = _roll(envs, main, qids, 2, seed=3, overrides={1: {"retriever": other}})
    assert calls == [(2, 1)]  # only the retriever of trajectory 1, once
    assert len(batch.actions_of("retriever")) == 6


def test_evaluate_is_deterministic_and_reports_rewards(envs, qids):
    policy = _policy(envs)
    r1 = evaluate(envs, {r: policy for r in ROLE_NAMES}, qids, seed=0)
    r2 = evaluate(envs, {r: policy for r in ROLE_NAMES}, qids, seed=0)
    assert r1 == r2
    assert r1["n_questions"] == 3 and 0.0 <= r1["accuracy"] <= 1.0
    assert set(r1["answers"]) == set(qids)
    assert r1["accuracy"] * 3 == pytest.approx(round(r1["accuracy"] * 3))
    with pytest.raises(ValueError, match="no questions"):
        evaluate(envs, {r: policy for r in ROLE_NAMES}, [])
