"""Per-episode sampling streams (agents/rollout.py ``sample_seeds``): an episode's actions depend on
its group and seeds only — not on the pool size, the other groups of the batch or where it runs —
which is what lets the Ray rollout actors generate (agents/ray_rollout.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import comam_env
from agents.base import ROLE_NAMES, make_policy
from agents.rollout import collect_rollouts, episode_seeds

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
              pytest.mark.usefixtures("torch_single_thread")]


def test_episode_seeds_are_a_function_of_the_episode_only():
    qids = ["q1", "q2", ("q3", "q4")]
    a = episode_seeds(5, 2, qids, 3)
    assert a == episode_seeds(5, 2, qids, 3) and len(a) == 9 and len(set(a)) == 9
    assert all(0 <= s < 2**63 for s in a)
    # trajectory (b, g) keeps its seed when the batch around it changes size
    assert episode_seeds(5, 2, qids[:2], 3) == a[:6]
    # every coordinate matters: run seed, iteration, stream (counterfactual re-runs), the query
    assert not set(a) & set(episode_seeds(6, 2, qids, 3))
    assert not set(a) & set(episode_seeds(5, 3, qids, 3))
    assert not set(a) & set(episode_seeds(5, 2, qids, 3, stream=1))
    assert episode_seeds(5, 2, ["q9", "q2", ("q3", "q4")], 3)[:3] != a[:3]
    assert episode_seeds(-1, 0, ["q"], 1) != episode_seeds(1, 0, ["q"], 1)  # negative run seeds work


@pytest.fixture(scope="module")
def text_envs():
    return [comam_env.make("synthetic-32k", split="train", chunk_tokens=400) for _ in range(4)]


@pytest.fixture(scope="module")
def llm(tiny_path):
    from agents.llm import LLMPolicy

    pol = LLMPolicy(model=tiny_path, max_new_tokens=6, lora_r=4, lora_alpha=8)
    for unit in pol._units.values():  # stops become likely: completions of different lengths (padding)
        unit.model.generation_config.eos_token_id = list(range(40, 80))
    return pol


def _tokens(batch):
    return [(a.trajectory, a.role, a.sample["completion_ids"].tolist(), a.sample["token_logprobs"].tolist())
            for a in batch.actions]


def test_llm_rollouts_do_not_depend_on_pool_or_other_groups(text_envs, llm):
    """The same episodes over 4 envs (both groups in one wave), over 2 envs (one group per wave)
    and group 1 played alone: bit-identical tokens, behaviour log-probs and rewards."""
    qids = list(text_envs[0].unwrapped.question_ids[:2])
    G = 2
    reset = np.array([11, 12, 13, 14])
    streams = episode_seeds(0, 0, qids, G)
    roles = {r: llm for r in ROLE_NAMES}
    run = lambda envs, q, r, s: collect_rollouts(envs, roles, q, G, rng=np.random.default_rng(0),  # noqa: E731
                                                 reset_seeds=r, sample_seeds=s)
    with torch.no_grad():
        wide = run(text_envs, qids, reset, streams)
        narrow = run(text_envs[:2], qids, reset, streams)
        alone = run(text_envs[:2], qids[1:], reset[2:], streams[2:])
    assert _tokens(wide) == _tokens(narrow)
    assert wide.global_matrix().tolist() == narrow.global_matrix().tolist()
    lengths = {len(a.sample["completion_ids"]) for a in wide.actions}
    assert len(lengths) > 1, "test needs completions of different lengths"
    # actions come back ordered by trajectory, each trajectory's in step order
    assert [a.trajectory for a in wide.actions] == sorted(a.trajectory for a in wide.actions)
    assert [a.role for a in wide.actions if a.trajectory == 0][-2:] == ["profiler", "retriever"]
    # group 1 of the batch == group 1 played on its own (its tokens ignore group 0)
    shift = [(t - G, r, c, lp) for t, r, c, lp in _tokens(wide) if t >= G]
    assert shift == _tokens(alone)
    for role in ROLE_NAMES:
        assert np.array_equal(wide.local_matrix(role)[1:], alone.local_matrix(role), equal_nan=True)
    # two members with the same episode (reset seed) draw from their own streams, in one batch:
    # swapping their stream seeds swaps their tokens
    same = np.array([11, 11, 13, 14])
    with torch.no_grad():
        a = _tokens(run(text_envs, qids, same, streams))
        b = _tokens(run(text_envs, qids, same, [streams[1], streams[0], *streams[2:]]))
    member = lambda toks, t: [x[1:] for x in toks if x[0] == t]  # noqa: E731
    assert member(a, 0) == member(b, 1) and member(a, 1) == member(b, 0) and member(a, 0) != member(a, 1)
    with pytest.raises(ValueError, match="fewer than group_size=2"):
        run(text_envs[:1], qids, reset, streams)
    with pytest.raises(ValueError, match="either generator"):
        collect_rollouts(text_envs, roles, qids, G, rng=np.random.default_rng(0), reset_seeds=reset,
                         sample_seeds=streams, generator=torch.Generator())
    with pytest.raises(ValueError, match="sample_seeds has 3 entries, expected 4"):
        run(text_envs, qids, reset, streams[:3])


def test_selection_policy_draws_each_row_from_its_own_generator():
    env = comam_env.make("synthetic-32k", split="train", view="selection")
    env.reset(seed=0)
    obs = env.observe(env.agent_selection)
    dim = int(obs["candidates"].shape[-1])
    pol = make_policy("selection", dim=dim, seed=0)
    gens = lambda *seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    a = pol.act(0, [obs, obs, obs], generator=gens(1, 2, 1))
    # rows 0 and 2 see the same observation and the same stream: the same action
    assert np.array_equal(a.actions[0], a.actions[2]) and a.logprobs[0] == a.logprobs[2]
    # a row's action does not depend on its neighbours' streams
    b = pol.act(0, [obs, obs], generator=gens(1, 7))
    assert np.array_equal(a.actions[0], b.actions[0])
    with pytest.raises(ValueError, match="2 generators for 3 observations"):
        pol.act(0, [obs, obs, obs], generator=gens(1, 2))


def test_batch_groups_runs_one_generate_call_per_role_over_all_groups(text_envs, llm):
    """``batch_groups``: per-episode streams still, but one act call over every group waiting for
    a role (B·G rows per decode loop) instead of one per group; the recorded log-probs are the
    policy's (re-scoring gives them back)."""
    qids = list(text_envs[0].unwrapped.question_ids[:2])
    G = 2
    streams = episode_seeds(0, 0, qids, G)
    calls = {}
    real = llm.act
    for batch_groups in (False, True):
        log = calls[batch_groups] = []
        llm.act = lambda role, obs, **kw: log.append((role, len(obs))) or real(role, obs, **kw)
        try:
            with torch.no_grad():
                batch = collect_rollouts(text_envs, {r: llm for r in ROLE_NAMES}, qids, G, rng=np.random.default_rng(0),
                                         reset_seeds=np.array([11, 12, 13, 14]), sample_seeds=streams,
                                         batch_groups=batch_groups)
        finally:
            llm.act = real
        assert len(batch.trajectories) == 4 and all(t is not None for t in batch.trajectories)
    per_role = lambda log, r: [n for role, n in log if role == r]  # noqa: E731
    assert per_role(calls[False], 1) == [2, 2] and per_role(calls[False], 2) == [2, 2]  # one call per group
    assert per_role(calls[True], 1) == [4] and per_role(calls[True], 2) == [4]  # one call over both groups
    assert sum(per_role(calls[True], 0)) == sum(per_role(calls[False], 0))
    acts = batch.actions_of("retriever")
    with torch.no_grad():
        lp = llm.logprobs_of(2, [a.sample for a in acts])
    for a, tok, m in zip(acts, lp.token, lp.mask):
        assert torch.allclose(a.sample["token_logprobs"], tok[m > 0], atol=1e-4)
