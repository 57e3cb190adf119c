"""The numeric selection view (comam_env/views/selection.py) over the real text env."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import api_test, seed_test

from comam_env.embed import message_text
from comam_env.policies import CopyAllPolicy, OraclePolicy
from comam_env.views.heuristics import SimilarityPolicy
from comam_env.views.selection import SelectionView, render_selection

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_api_test_passes(view_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(view_factory(), num_cycles=30)


def test_seed_test_passes(view_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seed_test(lambda: view_factory(), num_cycles=30)


def test_spaces_follow_the_contract(view_factory):
    env = view_factory(K=8)
    assert isinstance(env, SelectionView)
    d = env.dim
    obs_space = env.observation_space("extractor_0")
    assert obs_space is env.observation_space("extractor_0")
    assert obs_space == env.observation_space("retriever_0")  # one space for every role
    assert obs_space["role"] == spaces.Discrete(3)
    assert obs_space["candidates"].shape == (8, d) and obs_space["candidates"].dtype == np.float32
    assert obs_space["mask"].shape == (8,) and obs_space["mask"].dtype == np.int8
    assert obs_space["query"].shape == (d,) and obs_space["options"].shape == (4, d)
    assert env.action_space("extractor_0") == spaces.MultiBinary(8)
    assert env.action_space("profiler_0") == spaces.MultiBinary(8)
    assert env.action_space("retriever_0") == spaces.MultiDiscrete([2] * 8 + [4])
    assert env.action_space("retriever_0") is env.action_space("retriever_0")

    env.reset(seed=3)
    obs = env.observe("extractor_0")
    n = int(obs["mask"].sum())
    assert n > 0 and obs["mask"][:n].all() and not obs["mask"][n:].any()
    assert not obs["candidates"][n:].any() and np.allclose(np.linalg.norm(obs["candidates"][:n], axis=1), 1, atol=1e-5)
    assert not obs["query"].any() and not obs["options"].any()
    assert obs["role"] == 0
    # The candidates are the chunk's turns, in order.
    inner = env.unwrapped
    start, stop = inner.current_chunk
    h = inner.current_history
    assert env.infos["extractor_0"]["candidate_texts"] == [message_text(h.roles[i], h.contents[i]) for i in range(start, stop)]


def _play_text(env, seed, qid, policies):
    env.reset(seed=seed, options={"question_id": qid})
    for agent in env.agent_iter():
        obs, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else policies[agent](agent, obs, env))
    return env.unwrapped.trajectory()


def _play_selection(env, seed, qid):
    env.reset(seed=seed, options={"question_id": qid})
    for agent in env.agent_iter():
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else env.gold_action(agent))
    return env.unwrapped.trajectory()


def test_gold_selection_matches_oracle_text_policy(view_factory, text_env_factory, tiny_dataset):
    """Selecting exactly the gold-evidence candidates = the oracle text policy's rewards.

    The profiler cannot write the gold profile in the selection view; its gold
    action keeps all of M_f, which is what CopyAllPolicy's profiler writes.
    """
    view = view_factory(K=32, prerank="first")
    text = text_env_factory()
    oracle, copy_all = OraclePolicy(), CopyAllPolicy()
    policies = {"extractor_0": oracle, "profiler_0": copy_all, "retriever_0": oracle}
    for k, q in enumerate(tiny_dataset.questions[:6]):
        t = _play_text(text, k, q.question_id, policies)
        s = _play_selection(view, k, q.question_id)
        assert [st["local_reward"] for st in s["steps"]] == [st["local_reward"] for st in t["steps"]]
        assert [st["action"] for st in s["steps"]] == [st["action"] for st in t["steps"]]
        assert s["global_reward"] == t["global_reward"] == 1.0
        assert s["steps"][-1]["local_reward"] > 0.99  # retriever: exactly the evidence


def test_prerank_keeps_k_and_counts_dropped(view_factory):
    env = view_factory(K=3, chunk_tokens=None)  # one chunk per session: more turns than K
    env.reset(seed=0)
    inner = env.unwrapped
    start, stop = inner.current_chunk
    h = inner.current_history
    texts = [message_text(h.roles[i], h.contents[i]) for i in range(start, stop)]
    info = env.infos["extractor_0"]
    assert info["n_candidates"] == len(texts) > 3
    assert info["candidates_dropped"] == len(texts) - 3
    emb = env.cache.lookup(texts)
    scores = emb @ emb.mean(axis=0)
    expected = [texts[i] for i in sorted(np.argsort(-scores, kind="stable")[:3])]
    assert info["candidate_texts"] == expected
    first = view_factory(K=3, chunk_tokens=None, prerank="first")
    first.reset(seed=0)
    assert first.infos["extractor_0"]["candidate_texts"] == texts[:3]
    with pytest.raises(ValueError, match="prerank"):
        view_factory(prerank="bogus")


def test_decode_renders_text_actions_and_ignores_masked_bits(view_factory):
    env = view_factory(K=16)
    env.reset(seed=1)
    texts = env.infos["extractor_0"]["candidate_texts"]
    n = len(texts)
    act = np.ones(16, dtype=np.int8)
    assert env.decode("extractor_0", act) == "\n".join(texts)  # bits beyond n ignored
    act[:] = 0
    act[n - 1] = 1
    assert env.decode("extractor_0", act) == texts[-1]
    with pytest.raises(ValueError, match="16"):
        env.decode("extractor_0", np.ones(5))
    out = render_selection("retriever", ["A", "B"], [True, False], 2, 4)
    assert out == "<information>\nA\n</information>\n<final_answer>(c)</final_answer>"
    assert render_selection("retriever", ["A", "B"], [True, True], 0, 0).endswith("<final_answer>A B</final_answer>")


def test_episode_embeddings_are_cache_hits(view_factory):
    env = view_factory(K=16)
    cache = env.cache
    assert cache.loaded_from_disk is False and len(cache) > 0
    policy = SimilarityPolicy()
    for seed in range(4):
        env.reset(seed=seed)
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            env.step(None if term or trunc else policy(obs))
    assert cache.misses == 0 and cache.hits > 0
    again = view_factory(K=16)  # a second view over the same dataset object shares the cache
    assert again.cache is cache
    from comam_env.embed import embed_dataset

    fresh = embed_dataset(env.unwrapped.dataset, "hashing", cache_dir=cache.path.parents[2], progress=False, reuse=False)
    assert fresh.loaded_from_disk and len(fresh) >= len(env.unwrapped.dataset.questions)


def test_observations_are_copies(view_factory):
    env = view_factory()
    env.reset(seed=0)
    o = env.observe("extractor_0")
    o["candidates"][:] = 7
    assert not (env.observe("extractor_0")["candidates"] == 7).any()
