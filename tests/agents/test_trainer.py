"""The CoMAM trainer (agents/comam.py): every credit strategy and mode, determinism, resume,
config checks on resume, Ctrl-C, and a seeded improvement test on synthetic-32k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.base import ROLE_NAMES, load_policy
from agents.comam import TrainConfig, Trainer, is_timing_key, train
from agents.credit import CREDIT_STRATEGIES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def small(**kw) -> TrainConfig:
    base = dict(batch_queries=4, group_size=4, iterations=2, eval_limit=8, eval_every=2,
                checkpoint_every=2, env_pool=16, progress=False, grpo={"lr": 1e-2, "inner_epochs": 2})
    base.update(kw)
    return TrainConfig(**base)


def metrics(run_dir) -> list[dict]:
    """metrics.jsonl without timing fields (the only fields allowed to differ between equal runs)."""
    out = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if not is_timing_key(k)})
    return out


def params(policy, role=None) -> list[torch.Tensor]:
    return [p.detach().clone() for p in policy.trainable_parameters(role)]


def changed(before, after) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, after))


# ----------------------------------------------------------------------- config


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="unknown credit strategy 'bogus'"):
        TrainConfig(credit="bogus")
    with pytest.raises(ValueError, match="unknown mode"):
        TrainConfig(mode="sideways")
    with pytest.raises(ValueError, match="group_size must be positive"):
        TrainConfig(group_size=0)
    with pytest.raises(ValueError, match="GRPOConfig.lr"):
        TrainConfig(grpo={"lr": -1})
    with pytest.raises(ValueError, match="unknown TrainConfig fields: \\['nope'\\]"):
        TrainConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match=r"unknown credit_kwargs \['temp'\]"):
        TrainConfig(credit_kwargs={"temp": 0.1})
    with pytest.raises(ValueError, match="credit_kwargs temperature must be > 0"):
        TrainConfig(credit_kwargs={"temperature": 0})


# ------------------------------------------------------------- determinism, layout


def test_same_seed_same_metrics_and_run_layout(tmp_path):
    a = train(small(seed=3), tmp_path / "a")
    b = train(small(seed=3), tmp_path / "b")
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert a == b
    recs = metrics(tmp_path / "a")
    assert [r["iteration"] for r in recs] == [0, 1, 2]
    assert "val_accuracy" in recs[0] and "val_accuracy" in recs[2] and "val_accuracy" not in recs[1]
    for r in recs[1:]:
        for role in ROLE_NAMES:
            assert f"local_{role}" in r and f"w_{role}" in r and f"adv_std_{role}" in r
        assert sum(r[f"w_{role}"] for role in ROLE_NAMES) == pytest.approx(1.0)
        assert r["trained_roles"] == list(ROLE_NAMES)
        assert 0.0 <= r["train_accuracy"] <= 1.0
    # timing lives only in seconds* keys
    raw = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[1])
    assert {"seconds", "seconds_rollout"} <= set(raw)
    # run directory layout (what `comam-env evaluate --run` reads)
    run = tmp_path / "a"
    assert json.loads((run / "config.json").read_text())["seed"] == 3
    assert (run / "checkpoint" / "policy" / "policy.json").exists()
    assert (run / "checkpoint" / "optimizer.safetensors").exists()
    assert json.loads((run / "checkpoint" / "state.json").read_text())["iteration"] == 2
    assert (run / "training.png").stat().st_size > 1000
    assert json.loads((run / "summary.json").read_text())["iteration"] == 2
    # a different seed gives a different run
    train(small(seed=4), tmp_path / "c")
    assert metrics(tmp_path / "c") != metrics(tmp_path / "a")


# --------------------------------------------------------------- credit and modes


@pytest.mark.parametrize("credit", sorted(CREDIT_STRATEGIES))
def test_every_credit_strategy_trains_one_iteration(tmp_path, credit):
    trainer = Trainer(small(credit=credit, iterations=1, batch_queries=2, eval_limit=4), tmp_path)
    before = params(trainer.policy)
    rec = trainer.step()
    assert rec["iteration"] == 1 and rec["trained_roles"] == list(ROLE_NAMES)
    assert changed(before, params(trainer.policy)), f"{credit}: no parameter moved"
    for role in ROLE_NAMES:
        assert np.isfinite(rec[f"adv_std_{role}"])
    if credit.startswith("adaptive"):  # rank-consistency weights w_n are logged and sum to 1
        assert sum(rec[f"w_{r}"] for r in ROLE_NAMES) == pytest.approx(1.0)


def test_credit_temperature_reaches_the_adaptive_weights(tmp_path):
    """A colder softmax spreads the logged weights w_n further from 1/3 on the same rollouts."""
    recs = {}
    for t in (1.0, 0.05):
        trainer = Trainer(small(credit="adaptive", iterations=1, batch_queries=4, eval_limit=4,
                                credit_kwargs={"temperature": t}), tmp_path / str(t))
        recs[t] = trainer.step()
    assert recs[1.0]["train_accuracy"] == recs[0.05]["train_accuracy"]  # the same rollouts
    spread = {t: max(r[f"w_{x}"] for x in ROLE_NAMES) - min(r[f"w_{x}"] for x in ROLE_NAMES) for t, r in recs.items()}
    assert spread[0.05] > spread[1.0] + 0.05, spread


def test_leave_one_out_uses_a_frozen_initial_reference(tmp_path):
    trainer = Trainer(small(credit="leave-one-out", iterations=2, batch_queries=2, eval_limit=4), tmp_path)
    ref_before = params(trainer.reference)
    assert not changed(ref_before, params(trainer.policy))  # the initial policy
    trainer.step()
    trainer.step()
    assert not changed(ref_before, params(trainer.reference))
    assert changed(ref_before, params(trainer.policy))


def test_independent_mode_trains_one_role_per_phase(tmp_path):
    trainer = Trainer(small(mode="independent", credit="equal", iterations=3, batch_queries=2, eval_limit=4), tmp_path)
    for active in ROLE_NAMES:
        before = {r: params(trainer.policy, ROLE_NAMES.index(r)) for r in ROLE_NAMES}
        rec = trainer.step()
        assert rec["trained_roles"] == [active]
        for r in ROLE_NAMES:
            assert changed(before[r], params(trainer.policy, ROLE_NAMES.index(r))) == (r == active), (active, r)


def test_mode_none_only_evaluates(tmp_path):
    summary = train(small(mode="none", iterations=3), tmp_path)
    recs = metrics(tmp_path)
    assert [r["iteration"] for r in recs] == [0]
    assert summary["iteration"] == 0 and summary["val_accuracy"] == recs[0]["val_accuracy"]
    assert not (tmp_path / "checkpoint" / "optimizer.safetensors").exists()


def test_shared_policy_uses_one_network(tmp_path):
    trainer = Trainer(small(shared_policy=True, iterations=1, batch_queries=2, eval_limit=4), tmp_path)
    ids = [{id(p) for p in trainer.policy.trainable_parameters(r)} for r in range(3)]
    assert ids[0] == ids[1] == ids[2]
    before = params(trainer.policy)
    trainer.step()
    assert changed(before, params(trainer.policy))
    separate = Trainer(small(iterations=1, batch_queries=2, eval_limit=4), tmp_path / "sep")
    sets = [{id(p) for p in separate.policy.trainable_parameters(r)} for r in range(3)]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2])


# ------------------------------------------------------------------------ resume


def test_resume_continues_the_same_curve(tmp_path):
    cfg = dict(iterations=4, eval_every=2, checkpoint_every=2, seed=1)
    train(small(**cfg), tmp_path / "full")
    train(small(**{**cfg, "iterations": 2}), tmp_path / "split")  # "killed" after the checkpoint at 2
    assert [r["iteration"] for r in metrics(tmp_path / "split")] == [0, 1, 2]
    summary = train(small(**cfg), tmp_path / "split")  # the same command, resumed
    assert metrics(tmp_path / "split") == metrics(tmp_path / "full")
    assert summary == json.loads((tmp_path / "full" / "summary.json").read_text())


def test_resume_with_a_different_config_is_a_clear_error(tmp_path):
    train(small(iterations=2), tmp_path)
    with pytest.raises(ValueError, match=r"config\.json: the run directory holds a checkpoint of a different "
                                         r"configuration \(fields \['credit'\] differ\)"):
        train(small(iterations=4, credit="equal"), tmp_path)
    # the refused resume left the run untouched
    assert json.loads((tmp_path / "config.json").read_text())["credit"] == "adaptive"


def test_a_run_saved_before_a_config_field_existed_still_resumes(tmp_path):
    cfg = dict(iterations=4, eval_every=2, checkpoint_every=2, seed=1)
    train(small(**{**cfg, "iterations": 2}), tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["credit_kwargs"]  # as written by an older version of the trainer
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert train(small(**cfg), tmp_path)["iteration"] == 4
    with pytest.raises(ValueError, match=r"fields \['credit_kwargs'\] differ"):
        train(small(**{**cfg, "iterations": 6, "credit_kwargs": {"temperature": 0.5}}), tmp_path)


def test_ctrl_c_keeps_the_last_checkpoint_and_resumes_to_the_same_curve(tmp_path, monkeypatch):
    cfg = dict(iterations=4, eval_every=2, checkpoint_every=2, seed=2)
    train(small(**cfg), tmp_path / "full")

    real_step = Trainer.step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(small(**cfg), tmp_path / "cut")
    monkeypatch.setattr(Trainer, "step", real_step)
    ckpt = tmp_path / "cut" / "checkpoint"
    assert json.loads((ckpt / "state.json").read_text())["iteration"] == 2
    assert load_policy(ckpt / "policy").kind == "selection"
    assert not (tmp_path / "cut" / "checkpoint.tmp").exists()
    # iteration 3 ran but was never checkpointed: resuming drops it and redoes it identically
    assert [r["iteration"] for r in metrics(tmp_path / "cut")] == [0, 1, 2, 3]
    train(small(**cfg), tmp_path / "cut")
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")


def test_evaluate_policy_reproduces_the_trainers_evaluation_on_any_episode_kind(tmp_path):
    """evaluate_policy with the run's own episode kind gives exactly the trainer's logged evaluation
    (untrained start and final policy); another kind plays other episodes."""
    from agents.comam import evaluate_policy

    cfg = small(eval_episode="evidence-session")
    summary = train(cfg, tmp_path)
    start = metrics(tmp_path)[0]
    untrained = evaluate_policy(cfg)
    assert (untrained["episode"], untrained["split"], untrained["n_questions"]) == ("evidence-session", "validation", 8)
    assert untrained["accuracy"] == start["val_accuracy"]
    assert untrained["local_retriever"] == pytest.approx(start["val_local_retriever"])
    final = evaluate_policy(cfg, load_policy(tmp_path / "checkpoint" / "policy"))
    assert final["accuracy"] == summary["val_accuracy"]
    assert final["local_extractor"] == pytest.approx(summary["val_local_extractor"])
    full = evaluate_policy(cfg, episode="full-history", limit=3)
    assert (full["episode"], full["n_questions"]) == ("full-history", 3)


# -------------------------------------------------------------------- improvement


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_short_training_raises_validation_accuracy(tmp_path, seed):
    """Seeded CoMAM training of selection policies on synthetic-32k beats its untrained start
    on held-out validation questions, on every seed.

    Budget: 30 iterations × 8 queries × G = 8 at the default lr 1e-2, greedy evaluation of all
    544 validation questions through evidence-session episodes (the training episodes' kind).
    Measured on synthetic generator v4 (deterministic): 0.211 → 0.346 (seed 0), 0.224 → 0.355
    (seed 1), 0.200 → 0.342 (seed 2); the retriever's local reward rises by 0.15–0.24. The
    margins asserted are about half of those gains. (The 20-iteration budget fitted to the
    previous generator gave 0.224 → 0.278 on seed 1: v4's habit questions and persona split are
    harder, so the budget grew; the asserted margins did not shrink.)
    """
    cfg = TrainConfig(seed=seed, iterations=30, batch_queries=8, group_size=8, eval_every=30,
                      checkpoint_every=30, eval_episode="evidence-session", progress=False)
    summary = train(cfg, tmp_path)
    start = metrics(tmp_path)[0]
    assert summary["val_n_questions"] == 544  # 8 validation personas (split by persona)
    assert summary["val_accuracy"] >= start["val_accuracy"] + 0.07, (start["val_accuracy"], summary["val_accuracy"])
    assert summary["val_local_retriever"] >= start["val_local_retriever"] + 0.1


def test_replaying_recorded_actions_reproduces_the_trajectories(tmp_path):
    """Leave-one-out keeps the roles upstream of the replaced one by replaying their actions;
    replaying every role must give back exactly the same rewards."""
    from agents.comam import _Replay
    from agents.rollout import collect_rollouts

    trainer = Trainer(small(batch_queries=2, eval_limit=4), tmp_path)
    pol = {r: trainer.policy for r in ROLE_NAMES}
    seeds = np.arange(8) + 11
    qids = trainer.train_ids[:2]
    batch = collect_rollouts(trainer.train_envs, pol, qids, 4, rng=trainer.rng, generator=trainer.gen, reset_seeds=seeds)
    rec: dict = {}
    for a in batch.actions:
        rec.setdefault((a.trajectory, a.role), []).append(a.action)
    overrides = {t: {r: _Replay(rec[(t, r)]) for r in ROLE_NAMES} for t in range(8)}
    again = collect_rollouts(trainer.train_envs, pol, qids, 4, rng=trainer.rng, generator=trainer.gen,
                             reset_seeds=seeds, overrides=overrides)
    np.testing.assert_array_equal(again.global_matrix(), batch.global_matrix())
    for r in ROLE_NAMES:
        np.testing.assert_array_equal(again.local_matrix(r), batch.local_matrix(r))
    with pytest.raises(RuntimeError, match="ran out of recorded actions"):
        _Replay([]).act(0, [{}])


# ----------------------------------------------------------------------- LLM path


@pytest.mark.slow  # model load + text-view episodes: ~1–4 min wall on the shared CPU
def test_llm_policies_train_one_iteration_end_to_end(tmp_path):
    """The same trainer with LLMPolicy (tiny random Llama, LoRA per role) on the text view."""
    from agents.tiny import build_tiny_llm

    model = build_tiny_llm(tmp_path / "tiny")
    cfg = TrainConfig(policy="llm", iterations=1, batch_queries=2, group_size=2, eval_limit=2, eval_every=1,
                      checkpoint_every=1, env_pool=4, progress=False, env_kwargs={"chunk_tokens": 400},
                      policy_kwargs={"model": model, "max_new_tokens": 8, "lora_r": 4, "lora_alpha": 8},
                      grpo={"lr": 1e-3, "inner_epochs": 1}, zero_variance="keep")  # every sample updated
    trainer = Trainer(cfg, tmp_path / "run")
    assert type(trainer.policy).__name__ == "LLMPolicy" and trainer.policy.config.model == model
    assert trainer.cfg.grpo_config().lr == 1e-3
    before = params(trainer.policy)
    summary = trainer.run()
    recs = metrics(tmp_path / "run")
    # A random tiny model often earns identical rewards across a group → zero advantages → no
    # gradient; the adapters must move exactly when some role had a non-zero advantage.
    moved = any(recs[1][f"adv_std_{r}"] > 0 for r in ROLE_NAMES)
    assert changed(before, params(trainer.policy)) == moved
    assert [r["iteration"] for r in recs] == [0, 1]
    assert recs[1]["trained_roles"] == list(ROLE_NAMES)
    assert all(recs[1][f"grpo_{r}/n_samples"] > 0 for r in ROLE_NAMES)
    assert summary["val_n_questions"] == 2
    loaded = load_policy(tmp_path / "run" / "checkpoint" / "policy")
    assert type(loaded).__name__ == "LLMPolicy"
    with pytest.raises(ValueError, match="policy='llm' needs policy_kwargs\\['model'\\]"):
        TrainConfig(policy="llm")
    assert TrainConfig(policy="llm", policy_kwargs={"model": model}).grpo_config().lr == 1e-5


def test_kl_coef_trains_against_the_frozen_start_policy(tmp_path):
    """``grpo.kl_coef > 0`` gives the updater the frozen start policy as the KL reference (it was a
    ValueError before): the k3 KL is logged, 0 on the first inner epoch's policy and positive once
    the policy has moved; the reference itself does not move."""
    trainer = Trainer(small(iterations=2, grpo={"inner_epochs": 2, "kl_coef": 0.5}), tmp_path)
    ref_before = params(trainer.reference)
    assert trainer.updater.ref_policies is not None
    records = [trainer.step() for _ in range(2)]
    kls = [r[f"grpo_{role}/kl_ref"] for r in records for role in ROLE_NAMES if f"grpo_{role}/kl_ref" in r]
    assert kls and all(k >= 0 for k in kls) and max(kls) > 0
    assert not changed(ref_before, params(trainer.reference))
    assert changed(ref_before, params(trainer.policy))
    # without the KL no reference is built (selection policies: the same run as before)
    assert Trainer(small(iterations=1), tmp_path / "plain").reference is None
