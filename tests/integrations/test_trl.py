"""TRL adapters: real GRPOTrainer runs with the tiny random Llama (one torch thread)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from agents.credit import assign_credit_batch  # noqa: E402
from agents.llm import TRUNCATION_MARKER, LLMPolicy  # noqa: E402
from comam_env.charset import normalize_text  # noqa: E402
from agents.integrations import trl as comam_trl  # noqa: E402
from comam_env.integrations.episodes import ROLES, RoleEpisode, make_env_factory  # noqa: E402
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode  # noqa: E402

ENV = "synthetic-32k"
ENV_KW = {"split": "train"}
MAX_NEW = 12


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def tok(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


def _config(tmp_path, **kw):
    from trl import GRPOConfig

    base = {"output_dir": str(tmp_path / "trl"), "max_steps": 2, "learning_rate": 1e-3, "num_generations": 2,
            "per_device_train_batch_size": 2, "max_completion_length": MAX_NEW, "logging_steps": 1,
            "report_to": "none", "save_strategy": "no", "use_cpu": True, "bf16": False, "seed": 0}
    return GRPOConfig(**{**base, **kw})


def test_role_dataset_prompts_are_the_llm_policys_truncated_prompts(tiny_path, tok):
    data = comam_trl.role_dataset(ENV, "retriever", tok, max_completion_length=MAX_NEW, limit=3, env_kwargs=ENV_KW)
    assert data.column_names == ["prompt", "question_id", "seed", "role", "step", "prompt_tokens", "truncated"]
    assert len(data) == 3 and set(data["role"]) == {"retriever"} and data["step"] == [0, 0, 0]
    # the env's prompts overflow the 1,024-token window: every row was cut by the env's rule
    assert all(data["truncated"]) and all(TRUNCATION_MARKER.strip() in p for p in data["prompt"])
    assert all(len(tok(p)["input_ids"]) <= 1024 - MAX_NEW for p in data["prompt"])
    # same cut as LLMPolicy makes when it acts: replay the fixed episode to the retriever's turn
    policy = LLMPolicy(model=tiny_path, lora=False, max_new_tokens=MAX_NEW, device="cpu")
    episode = RoleEpisode(make_env_factory(ENV, ENV_KW)())
    episode.reset(data["question_id"][0], data["seed"][0])
    turn = episode.play({r: CopyAllPolicy() for r in ROLES}, until=("retriever", 0))
    ids, info = policy.encode_prompt(2, turn.observation)
    assert info["truncated"] and tok.decode(ids, skip_special_tokens=False) == data["prompt"][0]


def test_role_dataset_has_one_row_per_decision_of_a_multi_step_role(tok):
    kw = {**ENV_KW, "chunk_tokens": 300}
    data = comam_trl.role_dataset(ENV, "extractor", tok, max_completion_length=MAX_NEW, limit=2, env_kwargs=kw)
    env = make_env_factory(ENV, kw)()
    for qid in dict.fromkeys(data["question_id"]):
        traj = run_episode(env, CopyAllPolicy(), seed=0, options={"question_id": qid})
        n_chunks = sum(s["agent"] == "extractor_0" for s in traj["steps"])
        assert [s for q, s in zip(data["question_id"], data["step"], strict=True) if q == qid] == list(range(n_chunks))
    assert max(data["step"]) >= 1  # the test exercises several chunks


def test_role_reward_replays_the_episode_and_scores_the_completion():
    env = make_env_factory(ENV, ENV_KW)()
    qid = env.unwrapped.question_ids[0]
    reference = run_episode(env, CopyAllPolicy(), seed=3, options={"question_id": qid})
    reward = comam_trl.RoleReward(ENV, "retriever", env_kwargs=ENV_KW)
    fixed_action = reference["steps"][-1]["action"]
    # the fixed policy's own action reproduces the fixed episode's return
    assert reward.score(qid, 3, 0, fixed_action) == pytest.approx(reference["returns"]["retriever_0"])
    # the oracle's answer, substituted for the retriever's decision, earns more
    oracle_env = make_env_factory(ENV, ENV_KW)()
    ep = RoleEpisode(oracle_env)
    ep.reset(qid, 3)
    turn = ep.play({r: CopyAllPolicy() for r in ROLES}, until=("retriever", 0))
    oracle_text = OraclePolicy()(turn.agent, turn.observation, oracle_env)
    assert reward.score(qid, 3, 0, oracle_text) > reward.score(qid, 3, 0, "no idea")
    glob = comam_trl.RoleReward(ENV, "retriever", channel="global", env_kwargs=ENV_KW)
    assert glob.score(qid, 3, 0, oracle_text) == 1.0
    # TRL's calling convention: columns as keyword lists
    out = reward(prompts=["p", "p"], completions=[fixed_action, "x"], question_id=[qid, qid], seed=[3, 3], step=[0, 0])
    assert out[0] == pytest.approx(reference["returns"]["retriever_0"]) and len(out) == 2
    with pytest.raises(ValueError, match="no step 5"):
        reward.score(qid, 3, 5, "x")
    with pytest.raises(ValueError, match="unknown channel"):
        comam_trl.RoleReward(ENV, "retriever", channel="bonus")
    with pytest.raises(ValueError, match="unknown role"):
        comam_trl.RoleReward(ENV, "critic")


@pytest.mark.slow  # real GRPOTrainer steps with the tiny model: ~20-40 s on the shared CPU
def test_grpo_trainer_trains_one_role_for_two_steps(tiny_path, tok, tmp_path):
    from trl import GRPOTrainer

    data = comam_trl.role_dataset(ENV, "retriever", tok, max_completion_length=MAX_NEW, limit=4, env_kwargs=ENV_KW)
    reward = comam_trl.RoleReward(ENV, "retriever", env_kwargs=ENV_KW)
    trainer = GRPOTrainer(model=tiny_path, processing_class=tok, reward_funcs=reward, train_dataset=data,
                          args=_config(tmp_path))
    trainer.train()
    logs = [r for r in trainer.state.log_history if "reward" in r]
    assert trainer.state.global_step == 2 and len(logs) == 2
    assert all(f"rewards/{reward.__name__}/mean" in r for r in logs)


def test_episode_keys_round_trip_and_reject_other_prompts():
    key = comam_trl.episode_key("syn-q1", "profiler")
    assert comam_trl.parse_episode_key(key) == ("syn-q1", "profiler")
    with pytest.raises(ValueError, match="not an episode key"):
        comam_trl.parse_episode_key("What does the user like?")
    with pytest.raises(ValueError, match="unknown role"):
        comam_trl.parse_episode_key("comam-episode question_id=q role=critic")


@pytest.mark.slow  # real GRPOTrainer steps with the tiny model: ~20-40 s on the shared CPU
def test_shared_model_rollout_credits_every_role_of_the_same_episodes(tiny_path, tok, tmp_path):
    from trl import GRPOTrainer

    data = comam_trl.episode_dataset(ENV, limit=2, env_kwargs=ENV_KW)
    assert data["prompt"][:3] == [comam_trl.episode_key(data["prompt"][0].split("=")[1].split(" ")[0], r) for r in ROLES]
    rollout = comam_trl.make_rollout_func(ENV, credit="adaptive", env_kwargs=ENV_KW)
    trainer = GRPOTrainer(model=tiny_path, processing_class=tok, reward_funcs=comam_trl.credited_reward,
                          train_dataset=data, rollout_func=rollout,
                          args=_config(tmp_path, per_device_train_batch_size=6, shuffle_dataset=False))
    trainer.train()
    assert trainer.state.global_step == 2

    # one call by hand: rows = 3 roles × G=2 of one question, as the sampler lays them out
    qid = comam_trl.parse_episode_key(data["prompt"][0])[0]
    prompts = [comam_trl.episode_key(qid, r) for r in ROLES for _ in range(2)]
    out = rollout(prompts, trainer)
    assert len(out["completion_ids"]) == 6 and rollout.last_questions == [qid]
    for i, role in enumerate(r for r in ROLES for _ in range(2)):
        traj = rollout.last_trajectories[i % 2]
        step = next(s for s in traj["steps"] if s["agent"] == f"{role}_0")
        # the row's completion is what the role did in that episode (as the env normalises text)
        assert normalize_text(tok.decode(out["completion_ids"][i], skip_special_tokens=True))[0] == step["action"]
        assert out["comam_global"][i] == traj["global_reward"]
    local = {r: np.array([[out["comam_local"][2 * k], out["comam_local"][2 * k + 1]]]) for k, r in enumerate(ROLES)}
    credit = assign_credit_batch("adaptive", local, np.array([out["comam_global"][:2]]))
    for k, r in enumerate(ROLES):
        assert out["comam_reward"][2 * k: 2 * k + 2] == pytest.approx(list(credit.rewards[r][0]))
    # a batch that splits an episode group across calls is refused, not silently mis-credited
    with pytest.raises(ValueError, match="shuffle_dataset=False"):
        rollout(prompts[:4], trainer)
