"""benchmarks/llm_learning.py: its TrainConfig is the smollm2-cpu preset with the given flags on
top, and one tiny-model run produces the documented JSON object (the SmolLM2 runs live in the
benchmark itself)."""

from __future__ import annotations

import json

import pytest

from agents import presets
from tests.scripts import load_script


@pytest.fixture
def bench(monkeypatch, tmp_path):
    """The script, with the preset's SmolLM2 folder replaced by a stand-in (no conversion here)."""
    monkeypatch.setattr(presets, "_smollm2", lambda: str(tmp_path / "smollm2"))
    return load_script("benchmarks/llm_learning.py")


def _has_mini() -> bool:
    from comam_env.registry import ENV_IDS

    return "synthetic-mini" in ENV_IDS


pytestmark = pytest.mark.skipif(not _has_mini(), reason="the synthetic-mini track is not registered")


def test_config_is_the_cpu_preset(bench):
    cfg = bench.base_config(bench.parse_args(["--model", "tiny"]), seed=3, mode="joint")
    pk = cfg.policy_kwargs
    # the measured fast CPU configuration (docs/llm.md "CPU cost of one iteration")
    assert (pk["dtype"], pk["reuse_frozen_hidden"], cfg.grpo["micro_batch_size"], cfg.rollout_batching) == (
        "bfloat16", True, 4, "batch")
    assert pk["lora_layers"] == 1  # the 2-layer tiny model: its top layer (SmolLM2: the preset's 8)
    assert (cfg.iterations, cfg.batch_queries, cfg.group_size, cfg.eval_limit, pk["max_new_tokens"]) == (20, 4, 4, 24, 64)
    assert (cfg.grpo["lr"], cfg.sft, cfg.zero_variance_mode, cfg.format_reward) == (
        2e-5, {"questions": 32, "epochs": 8, "lr": 5e-4}, "skip", 0.0)
    assert cfg.seed == 3 and cfg.env_pool == 16 and pk["generation_batch_size"] >= 16
    assert pk["model"].endswith("tiny-llm-benchmark") and cfg.progress is False


def test_smollm2_gets_the_presets_lora_layers(bench):
    cfg = bench.base_config(bench.parse_args([]), seed=0)
    assert cfg.policy_kwargs["lora_layers"] == 8 and cfg.policy_kwargs["dtype"] == "bfloat16"


def test_flags_override_the_preset_and_quick_only_fills_unset_flags(bench):
    args = bench.parse_args(["--model", "tiny", "--quick", "--lr", "1e-4", "--dtype", "float32", "--iterations", "3",
                             "--lora-layers", "2", "--batch-queries", "2", "--group-size", "3"])
    bench.resolve(args)
    cfg = bench.base_config(args, seed=0)
    assert (cfg.grpo["lr"], cfg.policy_kwargs["dtype"], cfg.iterations, cfg.policy_kwargs["lora_layers"]) == (
        1e-4, "float32", 3, 2)
    assert (cfg.batch_queries, cfg.group_size, cfg.env_pool) == (2, 3, 6)
    assert cfg.grpo["micro_batch_size"] == 4 and cfg.policy_kwargs["reuse_frozen_hidden"] is True  # preset kept
    # --quick's smaller settings where no flag was given
    assert (args.seeds, args.eval_limit, args.sft_questions, args.sft_epochs) == (1, 12, 16, 2)
    assert cfg.eval_limit == 12 and cfg.sft["questions"] == 16 and cfg.sft["lr"] == 5e-4
    assert (cfg.grpo.get("kl_coef", 0.0), cfg.temperature) == (0.0, 1.0)  # the preset's (GRPOConfig default), without the flags


def test_kl_and_temperature_flags_reach_the_trainer_config(bench):
    args = bench.parse_args(["--model", "tiny", "--kl-coef", "0.05", "--temperature", "0.7"])
    bench.resolve(args)
    cfg = bench.base_config(args, seed=0)
    assert (cfg.grpo["kl_coef"], cfg.temperature, args.kl_coef, args.temperature) == (0.05, 0.7, 0.05, 0.7)
    assert cfg.grpo["lr"] == 2e-5  # the rest of the preset's grpo section kept


def test_a_changed_preset_changes_the_benchmark(bench, monkeypatch):
    base = presets.PRESETS["smollm2-cpu"]

    def changed():
        f = base()
        f["grpo"] = {**f["grpo"], "lr": 7e-5, "micro_batch_size": 2}
        f["policy_kwargs"] = {**f["policy_kwargs"], "lora_r": 4}
        return {**f, "rollout_batching": "group"}

    monkeypatch.setitem(presets.PRESETS, "smollm2-cpu", changed)
    cfg = bench.base_config(bench.parse_args(["--model", "tiny"]), seed=0)
    assert (cfg.grpo["lr"], cfg.grpo["micro_batch_size"], cfg.policy_kwargs["lora_r"], cfg.rollout_batching) == (
        7e-5, 2, 4, "group")


def test_tiny_run_prints_the_documented_object(bench, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "out"
    argv = ["--model", "tiny", "--seeds", "1", "--iterations", "1", "--batch-queries", "2", "--group-size", "2",
            "--new-tokens", "8", "--eval-limit", "2", "--sft-questions", "2", "--sft-epochs", "1", "--threads", "1",
            "--systems", "prompt-only,sft+comam", "--out", str(out), "--json", "--save-policy"]
    assert bench.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["systems"]) == {"prompt-only", "sft+comam"} and summary["preset"] == "smollm2-cpu"
    assert summary["config"]["dtype"] == "bfloat16" and summary["peak_rss_mb"] > 0
    for v in summary["systems"].values():
        assert set(v) >= {"accuracy", "ci95", "local_reward_start", "local_reward_end"}
        assert 0.0 <= v["ci95"][0] <= v["accuracy"] <= v["ci95"][1] <= 1.0
    rl = json.loads((out / "seed0" / "sft_comam.json").read_text())
    assert len(rl["curve"]) == 1 and set(rl["format"]) == {"extractor", "profiler", "retriever"}
    assert len(rl["question_ids"]) == 2
    # the resident set after the system's models were freed: recorded, and never above the peak
    assert 0 < rl["rss_mb_after"] <= rl["peak_rss_mb"] + 0.1
    from baselines.trained import policy_dir, read_run_config

    run = out / "seed0" / "sft_comam"  # a training run directory, as `comam-env evaluate --run` reads it
    assert read_run_config(run).system == "comam" and (policy_dir(run) / "policy.json").exists()
    saved = json.loads((out / "seed0" / "sft_comam" / "config.json").read_text())
    assert saved["policy_kwargs"]["dtype"] == "bfloat16" and saved["grpo"]["micro_batch_size"] == 4
    # cached: a second call reads the per-(seed, system) results instead of training again
    assert bench.main(argv[:-1] + ["--aggregate"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["systems"]["sft+comam"] == summary["systems"]["sft+comam"]
    assert 0 < again["peak_rss_mb"] <= summary["peak_rss_mb"] + 0.1  # the training process's peak, not the reader's


def test_each_seed_evaluates_its_own_block_of_validation_questions(bench):
    from types import SimpleNamespace

    env = SimpleNamespace(unwrapped=SimpleNamespace(question_ids=[f"q{i}" for i in range(10)]))
    trainer = SimpleNamespace(eval_envs=[env], cfg=SimpleNamespace(eval_limit=4))
    blocks = [bench.seed_eval_ids(trainer, s) for s in range(3)]
    assert blocks[0] == ["q0", "q1", "q2", "q3"] and blocks[1] == ["q4", "q5", "q6", "q7"]
    assert blocks[2] == ["q8", "q9", "q0", "q1"]  # wraps around the split
    trainer.cfg.eval_limit = 20
    assert bench.seed_eval_ids(trainer, 2) == env.unwrapped.question_ids
