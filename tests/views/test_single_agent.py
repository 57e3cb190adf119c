"""The single-agent Gymnasium view (comam_env/views/single_agent.py)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from comam_env.views.single_agent import SingleAgentEnv, single_agent

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture()
def make_single(tiny_dataset, tmp_path):
    from .conftest import OverlapJudge

    def factory(role, **kw):
        make_kw = {"dataset": tiny_dataset, "split": "all", "judge": OverlapJudge(), "chunk_tokens": 60}
        make_kw.update({k: kw.pop(k) for k in list(kw) if k in ("reward_mode", "episode", "chunk_tokens")})
        view_kwargs = {"cache_dir": str(tmp_path), "progress": False}
        return single_agent("synthetic-32k", role=role, K=8, view_kwargs=view_kwargs, **kw, **make_kw)

    return factory


@pytest.mark.parametrize("role", ["extractor", "profiler", "retriever"])
@pytest.mark.parametrize("features", ["embeddings", "similarity-only"])
def test_check_env_passes(make_single, role, features):
    env = make_single(role, features=features)
    assert isinstance(env, SingleAgentEnv)
    check_env(env, skip_render_check=True)
    assert "role" not in env.observation_space.spaces
    if role == "retriever":
        assert env.action_space.nvec.tolist() == [2] * 8 + [4]
    else:
        assert env.action_space.n == 8


def _run(env, seed, action_fn):
    obs, info = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step(action_fn(env, obs))
        total += r
        steps += 1
        if term or trunc:
            return total, steps, info


def test_retriever_reward_is_its_local_plus_global_share(make_single):
    env = make_single("retriever", others={"extractor": "oracle", "profiler": "all"}, reward_mode="local+global")
    gold = lambda e, obs: e.view.gold_action(e.agent)
    for seed in range(4):
        total, steps, info = _run(env, seed, gold)
        traj = env.view.trajectory()
        local = traj["steps"][-1]["local_reward"]
        assert steps == 1
        assert info["trajectory_global_reward"] == traj["global_reward"] == 1.0
        assert total == pytest.approx(local + 1.0 / 3)
        assert local > 0.99


def test_extractor_acts_once_per_chunk_and_gets_the_deferred_reward(make_single):
    env = make_single("extractor", reward_mode="local")
    gold = lambda e, obs: e.view.gold_action(e.agent)
    total, steps, _ = _run(env, 0, gold)
    traj = env.view.trajectory()
    assert steps == len(traj["chunks"]) > 1
    ext = [s for s in traj["steps"] if s["role"] == "extractor"]
    assert total == pytest.approx(ext[-1]["local_reward"]) and total > 0.5


def test_seeding_is_reproducible_and_question_ids_restrict(make_single, tiny_dataset):
    ids = [tiny_dataset.questions[3].question_id]
    env = make_single("retriever", question_ids=ids)
    o1, _ = env.reset(seed=5)
    o2, _ = env.reset(seed=5)
    for k in o1:
        np.testing.assert_array_equal(o1[k], o2[k])
    for s in range(3):
        env.reset(seed=s)
        assert env.view.unwrapped.current_question.question_id == ids[0]
    free = make_single("retriever")
    seen = set()
    for s in range(12):
        free.reset(seed=s)
        seen.add(free.view.unwrapped.current_question.question_id)
    assert len(seen) > 3


def test_similarity_features(make_single):
    env = make_single("retriever", features="similarity")
    obs, _ = env.reset(seed=0)
    m = obs["mask"].astype(bool)
    np.testing.assert_allclose(obs["sim_ref"][m], obs["candidates"][m] @ obs["query"], atol=1e-5)
    np.testing.assert_allclose(obs["sim_options"], (obs["candidates"] @ obs["options"].T) * m[:, None], atol=1e-5)
    np.testing.assert_allclose(obs["query_options"], obs["options"] @ obs["query"], atol=1e-5)
    centre = obs["candidates"][m].mean(axis=0)
    np.testing.assert_allclose(obs["option_support"], obs["options"] @ centre / np.linalg.norm(centre), atol=1e-5)


def test_bad_arguments(make_single):
    with pytest.raises(ValueError, match="role"):
        make_single("judge")
    with pytest.raises(ValueError, match="others"):
        make_single("retriever", others={"retriever": "all"})
    with pytest.raises(ValueError, match="fixed policy"):
        make_single("retriever", others={"profiler": "nonsense"})


def test_top_level_export(tiny_dataset, tmp_path):
    import sys

    import comam_env

    from .conftest import OverlapJudge

    env = comam_env.single_agent(
        "synthetic-32k", role="profiler", others={"extractor": "all"}, K=8, dataset=tiny_dataset, split="all",
        judge=OverlapJudge(), view_kwargs={"cache_dir": str(tmp_path), "progress": False},
    )
    assert isinstance(env, SingleAgentEnv) and env.role == "profiler"
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"candidates", "mask"}
    # Importing the package must not pull in torch / sentence-transformers.
    code = "import sys, comam_env; print(any(m in sys.modules for m in ('torch', 'sentence_transformers')))"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
