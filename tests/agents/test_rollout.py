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


def _one_question_sessions(ds, qid, episode):
    from comam_env.episode import history_ranges

    q = ds.question(qid)
    return tuple(history_ranges(ds.history_for(q), [q], episode)[0])


@pytest.mark.parametrize("episode", ["full-history", "evidence-session"])
def test_grouped_greedy_evaluation_equals_one_episode_per_question(episode):
    """Greedy evaluate() shares one episode between questions on the same visible history and
    memoises the extractor: every per-question reward and answer is what a one-question episode
    gives — on evidence-session episodes too, where questions on one visible history can hold
    their evidence in different sessions (one shared episode would show the union)."""
    from agents.rollout import history_groups, question_results

    envs = [comam_env.make("synthetic-32k", split="validation", episode=episode, view="selection")
            for _ in range(3)]
    ds = envs[0].unwrapped.dataset
    ids = list(envs[0].unwrapped.question_ids)
    by_history: dict = {}
    for q in ids:
        by_history.setdefault((ds.question(q).history_id, ds.question(q).end_index), []).append(q)
    if episode == "full-history":
        shared = next(g for g in by_history.values() if len(g) > 1)
    else:  # a visible history whose questions' evidence sessions differ
        shared = next(g for g in by_history.values()
                      if len({_one_question_sessions(ds, q, episode) for q in g}) > 1)
        groups = history_groups(ds, shared, envs[0].unwrapped.config)
        assert len(groups) > 1  # split by the sessions each question's own episode shows
        for g in groups:
            assert len({_one_question_sessions(ds, q, episode) for q in g}) == 1
    others = [g[0] for g in by_history.values() if ds.question(g[0]).history_id == ds.question(shared[0]).history_id]
    qids = list(dict.fromkeys(shared + others[:3]))
    policy = _policy(envs)
    policies = {r: policy for r in ROLE_NAMES}
    grouped = evaluate(envs, policies, qids, seed=0)
    with torch.no_grad():
        batch = collect_rollouts(envs, policies, qids, 1, rng=np.random.default_rng(0),
                                 generator=torch.Generator().manual_seed(0), greedy=True)
    single = {}
    for t in batch.trajectories:
        single.update(question_results(t.record))
    assert list(grouped["per_question"]) == qids
    for q in qids:
        assert grouped["per_question"][q] == {"reward": single[q]["reward"], "local": single[q]["local"]}
        assert grouped["answers"][q] == single[q]["parsed"]
    assert grouped["accuracy"] == pytest.approx(np.mean([single[q]["reward"] for q in qids]))
    assert grouped["local_extractor"] == pytest.approx(np.mean([single[q]["local"]["extractor"] for q in qids]))


def test_greedy_memo_answers_repeats_from_cache_and_refuses_sampling(envs, qids):
    from agents.memo import GreedyMemo

    policy = _policy(envs)
    env = envs[0]
    env.reset(seed=0, options={"question_id": qids[0]})
    obs = env.observe(env.agent_selection)
    other = {**obs, "mask": np.zeros_like(obs["mask"])}
    memo = GreedyMemo(policy)
    out = memo.act(0, [obs, other, obs], greedy=True)
    direct = policy.act(0, [obs, other], greedy=True)
    for got, want in zip(out.actions, [direct.actions[0], direct.actions[1], direct.actions[0]]):
        np.testing.assert_array_equal(got, want)
    assert (memo.misses, memo.hits) == (2, 1)
    out.actions[0][:] = 1 - out.actions[0]  # mutating a returned action leaves the cache intact
    again = memo.act(0, [obs], greedy=True)
    np.testing.assert_array_equal(again.actions[0], direct.actions[0])
    assert memo.hits == 2
    with pytest.raises(ValueError, match="only memoises greedy"):
        memo.act(0, [obs], greedy=False)


def test_roles_in_order_batches_each_later_role_once_per_wave():
    """With ``batch_roles_in_order`` (LLM policies), episodes with fewer extractor chunks wait:
    the profiler and the retriever each act once over the whole wave; the episodes are the same
    complete episodes, with every action recorded."""
    pool = [comam_env.make("synthetic-mini", split="train", view="selection") for _ in range(8)]
    qids = list(pool[0].unwrapped.question_ids[:8])  # one wave: 8 evidence-session episodes
    calls = {}
    for in_order in (False, True):
        policy = _policy(pool)
        policy.batch_roles_in_order = in_order
        real, log = policy.act, []
        policy.act = lambda role, obs, **kw: log.append((role, len(obs))) or real(role, obs, **kw)
        batch = _roll(pool, policy, qids, 1, seed=2)
        calls[in_order] = log
        chunks = np.bincount([a.trajectory for a in batch.actions_of("extractor")], minlength=8)
        assert all(t is not None for t in batch.trajectories) and (chunks >= 1).all()
        assert len(batch.actions_of("profiler")) == len(batch.actions_of("retriever")) == 8
    assert len(set(chunks.tolist())) > 1  # ragged chunk counts: the case that matters
    assert [n for r, n in calls[True] if r == 0] == [int((chunks > k).sum()) for k in range(chunks.max())]
    assert [c for c in calls[True] if c[0] != 0] == [(1, 8), (2, 8)]
    assert len([c for c in calls[False] if c[0] == 1]) > 1  # without it the profiler runs per chunk count
