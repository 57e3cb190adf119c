"""`comam-env train --preset`: every named LLM configuration resolves to a valid TrainConfig, flags
override it, and the paper preset carries the paper's models and settings (the GPU presets are
resolved here only — they cannot run on this CPU machine)."""

from __future__ import annotations

import argparse

import pytest

from agents import presets
from agents.cli import PRESET_NAMES, config_from_args, configure


def _config(*argv):
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(list(argv))
    args.quiet = False
    return config_from_args(args)


@pytest.fixture
def fake_smollm2(monkeypatch, tmp_path):
    """The SmolLM2 presets resolve the converted model folder; a stand-in keeps this test light."""
    monkeypatch.setattr(presets, "_smollm2", lambda: str(tmp_path / "smollm2"))
    return str(tmp_path / "smollm2")


def test_preset_names_match_the_cli_choices():
    assert sorted(presets.PRESETS) == sorted(PRESET_NAMES)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        presets.preset_fields("nope")


def test_paper_preset_is_the_papers_configuration(tmp_path):
    cfg = _config("--preset", "paper-1gpu", "--out", str(tmp_path / "r"))
    models = cfg.policy_kwargs["per_role_models"]
    assert models == {"extractor": "Qwen/Qwen2.5-3B-Instruct", "profiler": "Qwen/Qwen2.5-3B-Instruct",
                      "retriever": "Qwen/Qwen2.5-7B-Instruct"}
    assert (cfg.env, cfg.batch_queries, cfg.group_size, cfg.credit, cfg.mode) == ("personamem-32k", 128, 8, "adaptive", "joint")
    assert (cfg.temperature, cfg.eval_temperature, cfg.eval_greedy, cfg.alpha, cfg.beta) == (1.0, 0.8, False, 0.8, 0.2)
    assert cfg.policy_kwargs["backend"] == "vllm" and cfg.policy_kwargs["lora"] is True
    assert cfg.format_reward == 0.0 and cfg.zero_variance_mode == "keep" and cfg.warm_start is None


def _has_mini() -> bool:
    from comam_env.registry import ENV_IDS

    return "synthetic-mini" in ENV_IDS


@pytest.mark.skipif(not _has_mini(), reason="the synthetic-mini track is not registered in this checkout")
def test_smollm2_presets_resolve_offline_and_flags_override(tmp_path, fake_smollm2):
    cpu = _config("--preset", "smollm2-cpu", "--out", str(tmp_path / "a"))
    gpu = _config("--preset", "smollm2-gpu", "--out", str(tmp_path / "b"))
    assert cpu.policy_kwargs["model"] == gpu.policy_kwargs["model"] == fake_smollm2
    assert (cpu.env, cpu.batch_queries, cpu.group_size, cpu.policy_kwargs["max_new_tokens"]) == ("synthetic-mini", 4, 4, 64)
    assert cpu.warm_start == "sft" and cpu.zero_variance_mode == "skip"
    # the measured CPU configuration (docs/llm.md): bf16, LoRA in the top 8 layers on recorded states
    assert (cpu.policy_kwargs["dtype"], cpu.policy_kwargs["lora_layers"], cpu.policy_kwargs["reuse_frozen_hidden"],
            cpu.grpo["micro_batch_size"], cpu.rollout_batching) == ("bfloat16", 8, True, 4, "batch")
    assert cpu.policy_kwargs.get("backend", "transformers") == "transformers" and cpu.format_reward == 0.0
    assert gpu.policy_kwargs["backend"] == "vllm" and gpu.policy_kwargs["device"] == "cuda"
    over = _config("--preset", "smollm2-cpu", "--out", str(tmp_path / "c"), "--iterations", "3",
                   "--policy-kw", "max_new_tokens=32", "--sft-kw", "epochs=1")
    assert over.iterations == 3 and over.policy_kwargs["max_new_tokens"] == 32
    assert over.policy_kwargs["model"] == fake_smollm2 and over.sft["epochs"] == 1 and over.sft["questions"] == 32
