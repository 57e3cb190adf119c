"""Breaking the zero-signal plateau (issue 14 item 1) with the tiny random Llama: the SFT warm
start from oracle trajectories, zero-variance groups, the optional format reward, behaviour
log-probs reused by the update, and no "best iteration" when nothing was learned."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from agents.comam import TrainConfig, Trainer, _behaviour_logprobs  # noqa: E402
from agents.format_reward import format_score  # noqa: E402
from agents.grpo import zero_variance_groups  # noqa: E402
from agents.llm import LLMPolicy  # noqa: E402
from agents.sft import SFTConfig, fit_target, oracle_examples, run_sft  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
              pytest.mark.usefixtures("torch_single_thread")]

#: a few short synthetic histories (the CPU track's scale) so episodes are quick
MINI = {"target_tokens": 2000, "n_personas": 4, "topics_per_persona": 2, "updates_per_topic": 1,
        "decoys_per_fact": 1, "session_turns": (6, 10), "mid_history_questions": 0.0}
ENV_KW = {"chunk_tokens": 400, "data_kwargs": MINI}


@pytest.fixture(scope="module")
def env():
    import comam_env

    return comam_env.make("synthetic-32k", split="train", **ENV_KW)


def _policy(tiny_path, **kw):
    return LLMPolicy(model=tiny_path, max_new_tokens={"extractor": 48, "profiler": 24, "retriever": 40},
                     lora_r=4, lora_alpha=8, **kw)


# ------------------------------------------------------------------------------ SFT data


def test_fit_target_drops_whole_lines_and_keeps_the_retriever_answer(tiny_path):
    tok = _policy(tiny_path).tokenizer(2)
    stop = tok.eos_token_id
    text = "<information>\n" + "\n".join(f"User: I like jazz number {i}" for i in range(12)) + \
        "\n</information>\n<final_answer>(c)</final_answer>"
    ids, short = fit_target(2, text, tok, 40, stop)
    out = tok.decode(ids[:-1])
    assert short and len(ids) <= 40 and ids[-1] == stop
    assert out.startswith("<information>") and out.endswith("</information>\n<final_answer>(c)</final_answer>")
    assert "number 0" in out and "number 11" not in out  # content dropped from the end
    ids, short = fit_target(0, "one line\ntwo", tok, 200, stop)
    assert not short and tok.decode(ids[:-1]) == "one line\ntwo"
    ids, short = fit_target(0, "x" * 400, tok, 10, stop)  # one line too long: cut, stop kept
    assert short and len(ids) == 10 and ids[-1] == stop
    with pytest.raises(ValueError, match="budget"):
        fit_target(0, "x", tok, 1, stop)


def test_oracle_examples_use_the_act_time_prompts(tiny_path, env):
    pol = _policy(tiny_path)
    qids = list(env.unwrapped.question_ids)[:2]
    examples = oracle_examples(pol, env, qids, seed=3)
    assert {e.role for e in examples} == {0, 1, 2}
    assert sum(e.role == 2 for e in examples) == 2  # one retriever decision per question
    for e in examples:
        assert len(e.target_ids) <= pol.max_new_tokens(e.role) and e.target_ids[-1] == pol.tokenizer().eos_token_id
    # the retriever example of the first question is the oracle's action on the observation the policy sees
    env.reset(seed=3, options={"question_id": qids[0]})
    from comam_env.policies import OraclePolicy
    oracle = OraclePolicy()
    for agent in env.agent_iter():
        obs, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        if agent.startswith("retriever"):
            ret = [e for e in examples if e.role == 2][0]
            assert ret.prompt_ids == pol.encode_prompt(2, obs)[0]
            assert "<final_answer>" in pol.tokenizer().decode(ret.target_ids)
        env.step(oracle(agent, obs, env))
    assert examples == oracle_examples(pol, env, qids, seed=3)  # a pure function of the arguments


def test_run_sft_lowers_the_loss_and_moves_only_the_adapters(tiny_path, env, tmp_path):
    pol = _policy(tiny_path)
    base = {n: p.detach().clone() for n, p in pol.model(2).named_parameters() if "lora_" not in n}
    lora = [p.detach().clone() for p in pol.trainable_parameters()]
    info = run_sft(pol, env, list(env.unwrapped.question_ids), SFTConfig(questions=3, epochs=4, lr=1e-2),
                   log_path=tmp_path / "sft.jsonl")
    for role in ("extractor", "profiler", "retriever"):
        assert info[f"sft_loss_{role}_last"] < info[f"sft_loss_{role}_first"]
    lines = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
    assert all(torch.equal(p, base[n]) for n, p in pol.model(2).named_parameters() if "lora_" not in n)
    assert any(not torch.equal(a, b) for a, b in zip(lora, pol.trainable_parameters()))
    with pytest.raises(ValueError, match=r"unknown SFT options \['epoch'\]"):
        SFTConfig.from_dict({"epoch": 2})


# ------------------------------------------------------------------- rewards and groups


def test_zero_variance_groups_and_format_score():
    r = np.array([[1.0, 1.0, 1.0], [0.0, 0.5, 0.0], [0.2, 0.2, 0.2 + 1e-12]])
    assert zero_variance_groups(r).tolist() == [True, False, True]
    good = "<information>\nUser: jazz\n</information>\n<final_answer>(b)</final_answer>"
    assert format_score("retriever", good) == 1.0
    assert format_score("retriever", "<final_answer>(b)</final_answer>") == 0.0
    assert format_score("retriever", "<information>x</information><final_answer></final_answer>") == 0.0
    assert format_score("extractor", "User: jazz", {"finished": True}) == 1.0
    assert format_score("extractor", "User: jazz", {"finished": False}) == 0.0
    assert format_score("profiler", "  ", {"finished": True}) == 0.0


def test_config_checks_for_the_new_options(tiny_path):
    llm = {"policy": "llm", "policy_kwargs": {"model": str(tiny_path)}}
    with pytest.raises(ValueError, match="zero_variance must be"):
        TrainConfig(zero_variance="drop")
    with pytest.raises(ValueError, match="warm_start='sft' needs policy='llm'"):
        TrainConfig(warm_start="sft")
    with pytest.raises(ValueError, match="neither 'sft' nor a saved policy folder"):
        TrainConfig(warm_start="/nonexistent", **llm)
    with pytest.raises(ValueError, match="unknown SFT options"):
        TrainConfig(warm_start="sft", sft={"lr": 1e-3, "nope": 1}, **llm)
    assert TrainConfig(**llm).zero_variance_mode == "skip"
    assert TrainConfig().zero_variance_mode == "keep"


def test_trainer_sft_warm_start_skips_flat_groups_and_reuses_behaviour_logprobs(tiny_path, tmp_path):
    cfg = TrainConfig(policy="llm", iterations=1, batch_queries=2, group_size=2, eval_limit=2, eval_every=1,
                      checkpoint_every=1, env_pool=4, progress=False, env_kwargs=ENV_KW,
                      policy_kwargs={"model": str(tiny_path), "max_new_tokens": 12, "lora_r": 4, "lora_alpha": 8},
                      grpo={"lr": 1e-3, "inner_epochs": 1}, warm_start="sft",
                      sft={"questions": 2, "epochs": 1}, format_reward=0.5)
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert recs[0]["sft_examples"] > 0 and (tmp_path / "run" / "sft.jsonl").exists()
    assert (tmp_path / "run" / "warm_start" / "policy.json").exists()
    rec = recs[1]
    for role in ("extractor", "profiler", "retriever"):
        assert 0.0 <= rec[f"zero_var_frac_{role}"] <= 1.0 and f"format_{role}" in rec
        assert rec[f"gen_tokens_{role}"] > 0 and rec[f"tokens_per_s_{role}"] > 0
        assert rec[f"tokens_per_s_{role}"] == pytest.approx(rec[f"gen_tokens_{role}"] / rec[f"gen_seconds_{role}"])
        # skipped groups leave the update: only the groups with signal are in it
        kept = round((1 - rec[f"zero_var_frac_{role}"]) * cfg.batch_queries)
        if kept == 0:
            assert f"grpo_{role}/n_samples" not in rec
        elif role == "retriever":
            assert rec[f"grpo_{role}/n_samples"] == kept * cfg.group_size
    # a random tiny model learns nothing: no best iteration is named
    assert summary["improved"] is False and "best_iteration" not in summary
    # behaviour log-probs recorded while sampling equal the update's recomputation
    batch, _ = trainer._rollouts()
    acts = batch.actions_of("retriever")
    rows = _behaviour_logprobs(acts, "token")
    with torch.no_grad():
        lp = trainer.policy.logprobs_of(2, [a.sample for a in acts])
    for row, tok, m in zip(rows, lp.token, lp.mask):
        assert torch.allclose(row, tok[m > 0], atol=1e-4)
    assert _behaviour_logprobs(acts, "sample") is None
    assert trainer.policy.behaviour_logprobs_exact  # float32: the recorded values are used


def test_llm_kl_penalty_references_the_warm_started_policy(tiny_path, tmp_path):
    """``grpo.kl_coef > 0`` on an LLM run: the KL reference is the SFT policy (a frozen copy loaded
    from ``warm_start``, its adapters unchanged by the update) and the update logs ``kl_ref``."""
    cfg = TrainConfig(policy="llm", iterations=1, batch_queries=2, group_size=2, eval_limit=2, eval_every=1,
                      checkpoint_every=1, env_pool=4, progress=False, env_kwargs=ENV_KW,
                      policy_kwargs={"model": str(tiny_path), "max_new_tokens": 12, "lora_r": 4, "lora_alpha": 8},
                      grpo={"lr": 1e-2, "inner_epochs": 2, "kl_coef": 0.5}, warm_start="sft",
                      sft={"questions": 2, "epochs": 1}, format_reward=0.5, zero_variance="keep")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.warm_start()
    assert trainer.updater.ref_policies is not None
    ref = [p.detach().clone() for p in trainer.reference.trainable_parameters()]
    start = [p.detach().clone() for p in trainer.policy.trainable_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ref, start))  # the reference is the SFT policy
    rec = trainer.step()
    assert any(f"grpo_{r}/kl_ref" in rec for r in ("extractor", "profiler", "retriever"))
    assert all(rec[k] >= 0 for k in rec if k.endswith("/kl_ref"))
    assert all(torch.equal(a, b) for a, b in zip(ref, trainer.reference.trainable_parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(start, trainer.policy.trainable_parameters()))


def test_low_precision_sampling_leaves_old_logprobs_to_the_update(tiny_path):
    """bf16 KV-cached sampling records log-probs that differ from the update's full pass, so the
    trainer hands the update no "old" log-probs (it takes them from its own pass)."""
    from agents.llm import LLMPolicy

    bf16 = LLMPolicy(model=str(tiny_path), roles=(2,), max_new_tokens=4, dtype="bfloat16")
    fp32 = LLMPolicy(model=str(tiny_path), roles=(2,), max_new_tokens=4)
    assert not bf16.behaviour_logprobs_exact and fp32.behaviour_logprobs_exact
    obs = [{"role": 2, "prompt": "Which option? (a) tea (b) coffee", "chunk": "", "memory": ""}]
    for pol in (bf16, fp32):
        out = pol.act(2, obs, generator=torch.Generator().manual_seed(0))
        acts = [type("A", (), {"sample": s})() for s in out.samples]
        rows = _behaviour_logprobs(acts, "token", pol)
        assert (rows is None) == (pol is bf16)


def test_best_iteration_only_when_validation_accuracy_rose(tmp_path):
    trainer = Trainer(TrainConfig(iterations=0, progress=False, eval_limit=4, env_pool=4), tmp_path / "r")
    trainer.best = {"start_val_accuracy": 0.25, "best_val_accuracy": 0.25, "best_iteration": 5}
    assert trainer._best_summary() == {"start_val_accuracy": 0.25, "improved": False}
    trainer.best = {"start_val_accuracy": 0.25, "best_val_accuracy": 0.5, "best_iteration": 5}
    assert trainer._best_summary()["best_iteration"] == 5 and trainer._best_summary()["improved"] is True
