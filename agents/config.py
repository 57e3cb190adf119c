"""The configuration of a training run, importable without torch.

:class:`TrainConfig` (every hyper-parameter of a CoMAM run) and :class:`GRPOConfig` (the
per-agent GRPO update) are plain dataclasses whose fields carry their help text. They live
here, apart from :mod:`agents.comam` and :mod:`agents.grpo` (which import torch at the top),
so that ``comam-env train --help``, config validation and tools that only read a run's
``config.json`` stay light. Both classes are re-exported by their old modules.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields

from .credit import CREDIT_OPTIONS, CREDIT_STRATEGIES

#: how :func:`agents.grpo.grpo_loss` averages per-decision terms
AGGREGATIONS = ("sequence", "token")


def _matches(value, kind: str) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "dict": dict}.get(kind, object))


def check_field_types(config) -> None:
    """Raise ``TypeError`` naming the field when a value does not have its annotated type
    (``int | None`` …; an int is a valid float, a bool is not a number), and ``ValueError``
    for a non-finite float. Values from JSON configs or ``KEY=VALUE`` flags reach the
    dataclasses unchecked; without this, ``lr="abc"`` fails deep inside a comparison."""
    name = type(config).__name__
    for f in fields(config):
        value = getattr(config, f.name)
        kinds = [k.strip() for k in str(f.type).split("|")]
        if not any(_matches(value, k) for k in kinds):
            raise TypeError(f"{name}.{f.name} must be {' or '.join(kinds)}, got {value!r}")
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
            raise ValueError(f"{name}.{f.name} must be a finite number, got {value!r}")


@dataclass
class GRPOConfig:
    """Hyper-parameters of :class:`PerAgentGRPO` (the paper does not report lr, ε, KL)."""

    clip_eps: float = field(default=0.2, metadata={"help": "trust-region ε of the clipped ratio min(ρA, clip(ρ,1±ε)A)"})
    kl_coef: float = field(default=0.0, metadata={"help": "weight of the k3 KL to a frozen reference policy (0 = off, DESIGN §4)"})
    inner_epochs: int = field(default=2, metadata={"help": "passes over each role's batch per update (PPO-style reuse of one rollout batch)"})
    minibatch_size: int | None = field(default=None, metadata={"help": "samples per role per optimisation step; None = the whole role batch (one step per epoch)"})
    micro_batch_size: int | None = field(default=None, metadata={"help": "samples per forward/backward pass inside an optimisation step (gradient accumulation: same gradient, less activation memory); None = the whole minibatch at once"})
    lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate (selection policies: ~1e-2, measured faster than 1e-3 on synthetic-32k; LoRA on LLMs: ~1e-5..5e-5)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "clip each optimizer's gradient norm to this (None = no clipping)"})
    aggregation: str = field(default="sequence", metadata={"help": "'sequence': mean over each sample's decisions then samples (GRPO eq.); 'token': mean over all decisions"})
    level: str = field(default="token", metadata={"help": "'token': one ratio per decision (generated token / candidate choice); 'sample': one ratio per whole action"})

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.clip_eps <= 0:
            raise ValueError(f"GRPOConfig.clip_eps must be > 0, got {self.clip_eps}")
        if self.kl_coef < 0:
            raise ValueError(f"GRPOConfig.kl_coef must be >= 0, got {self.kl_coef}")
        if self.inner_epochs < 1:
            raise ValueError(f"GRPOConfig.inner_epochs must be >= 1, got {self.inner_epochs}")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ValueError(f"GRPOConfig.micro_batch_size must be >= 1 or None, got {self.micro_batch_size}")
        if self.minibatch_size is not None and self.minibatch_size < 1:
            raise ValueError(f"GRPOConfig.minibatch_size must be >= 1 or None, got {self.minibatch_size}")
        if self.lr <= 0:
            raise ValueError(f"GRPOConfig.lr must be > 0, got {self.lr}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"GRPOConfig.aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.level not in ("token", "sample"):
            raise ValueError(f"GRPOConfig.level must be 'token' or 'sample', got {self.level!r}")

    def to_dict(self) -> dict:
        return asdict(self)


MODES = ("joint", "independent", "none")
#: ``comam_env.make`` arguments that TrainConfig sets from its own fields (see env_kwargs_for)
ENV_KEYS_SET_BY_CONFIG = frozenset({"split", "episode", "alpha", "beta", "view"})
#: GRPO learning rate per policy kind when ``TrainConfig.grpo`` gives none.
DEFAULT_LR = {"selection": 1e-2, "llm": 1e-5}


@dataclass
class SFTConfig:
    """Hyper-parameters of the supervised warm start (:mod:`agents.sft`)."""

    questions: int = field(default=32, metadata={"help": "training questions whose oracle episodes make the data (all when larger than the split)"})
    epochs: int = field(default=3, metadata={"help": "passes over the examples"})
    lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate of the LoRA adapters"})
    batch_size: int = field(default=8, metadata={"help": "examples (of one role) per optimisation step"})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "clip each adapter's gradient norm (None = off)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seeds the question draw, episode resets and shuffling (the trainer passes its seed)"})

    def __post_init__(self) -> None:
        for name in ("questions", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SFTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"SFTConfig.lr must be > 0, got {self.lr}")

    @classmethod
    def from_dict(cls, data: dict) -> SFTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SFT options {unknown}; choose from {sorted(known)}")
        return cls(**data)


@dataclass
class TrainConfig:
    """Every hyper-parameter of a CoMAM training run (paper defaults where the paper gives one)."""

    env: str = field(default="synthetic-32k", metadata={"help": "environment id (see `comam-env envs`)"})
    policy: str = field(default="selection", metadata={"help": "policy kind: 'selection' (CPU, selection view) or 'llm' (text view)"})
    credit: str = field(default="adaptive", metadata={"help": f"credit strategy: one of {sorted(CREDIT_STRATEGIES)}"})
    mode: str = field(default="joint", metadata={"help": "'joint' (all agents at once), 'independent' (one agent at a time, others frozen) or 'none' (no training)"})
    credit_kwargs: dict = field(default_factory=dict, metadata={"help": "options of the credit strategy: temperature (softmax temperature of the adaptive weights w_n, paper: 1.0), degenerate (rank consistency when all answer rewards in a group are equal), eps (adaptive-decoupled)"})
    shared_policy: bool = field(default=False, metadata={"help": "one network for all roles (ablation) instead of one per role"})
    seed: int = field(default=0, metadata={"help": "seeds question draws, env resets, action sampling and initialisation"})
    iterations: int = field(default=30, metadata={"help": "number of rollout + update iterations"})
    batch_queries: int = field(default=16, metadata={"help": "queries per iteration (paper: 128)"})
    group_size: int = field(default=8, metadata={"help": "G trajectories per query (paper: 8)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature for training rollouts (paper: 1.0)"})
    eval_temperature: float = field(default=0.8, metadata={"help": "sampling temperature for sampled evaluation (paper: 0.8); evaluation is greedy unless eval_greedy=False"})
    eval_greedy: bool = field(default=True, metadata={"help": "greedy evaluation (deterministic) instead of sampling at eval_temperature"})
    alpha: float = field(default=0.8, metadata={"help": "extractor coverage weight α of eq. 9 (paper: 0.8)"})
    beta: float = field(default=0.2, metadata={"help": "retriever coverage weight β of eq. 11 (paper: 0.2)"})
    train_episode: str = field(default="evidence-session", metadata={"help": "training episodes: 'evidence-session' (paper), 'full-history' or 'evidence+context' (curriculum: evidence sessions plus earlier same-topic sessions)"})
    eval_episode: str = field(default="full-history", metadata={"help": "evaluation episodes: 'full-history' (paper) or 'evidence-session'"})
    eval_split: str = field(default="validation", metadata={"help": "split evaluated every eval_every iterations"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate on at most this many questions (None = the whole split)"})
    eval_every: int = field(default=5, metadata={"help": "evaluate every N iterations (and at the start and end)"})
    checkpoint_every: int = field(default=5, metadata={"help": "write a checkpoint every N iterations (and at the end)"})
    env_pool: int = field(default=64, metadata={"help": "environments stepped in lockstep (rollouts are batched across them); LLM policies: rounded down to whole groups (at least one)"})
    env_kwargs: dict = field(default_factory=dict, metadata={"help": "extra keyword arguments for comam_env.make (e.g. K, embedder, chunk_tokens)"})
    policy_kwargs: dict = field(default_factory=dict, metadata={"help": "extra keyword arguments for the policy constructor"})
    grpo: dict = field(default_factory=lambda: {"inner_epochs": 2}, metadata={"help": "GRPOConfig fields (clip_eps, kl_coef, inner_epochs, lr, ...); lr defaults to 1e-2 for selection policies and 1e-5 for LLM (LoRA) policies"})
    leave_one_out_reference: str = field(default="initial", metadata={"help": "frozen reference for leave-one-out credit: 'initial' (the untrained policy)"})
    target_accuracy: float | None = field(default=None, metadata={"help": "record the first iteration whose validation accuracy reaches this (convergence steps)"})
    warm_start: str | None = field(default=None, metadata={"help": "start RL from 'sft' (supervised fine-tune on the env's oracle trajectories, agents/sft.py; options in sft) or from a saved policy folder; None = the untrained policy"})
    sft: dict = field(default_factory=dict, metadata={"help": "SFTConfig fields for warm_start='sft' (questions, epochs, lr, batch_size, max_grad_norm, weight_decay, seed)"})
    zero_variance: str | None = field(default=None, metadata={"help": "groups whose integrated rewards are all equal (zero advantage, no gradient): 'skip' drops them from the update (DAPO-style dynamic sampling; default for LLM policies) or 'keep' (plain GRPO; default for selection policies). The fraction is logged either way"})
    format_reward: float = field(default=0.0, metadata={"help": "weight of the optional format reward added to each role's integrated reward (agents/format_reward.py); 0 = off, as in the paper"})
    rollout_workers: int = field(default=0, metadata={"help": "Ray actors for the training rollouts (agents/ray_rollout.py): they step the envs, and for LLM policies also generate (the adapters are shipped each iteration); 0 = in process. Same seed, same metrics for any value (LLM policies: bit-identical at one torch thread, docs/multiagent.md)"})
    ray_address: str | None = field(default=None, metadata={"help": "existing Ray cluster for the rollout workers ('auto' or host:port); None starts a local Ray instance"})
    rollout_batching: str = field(default="group", metadata={"help": "LLM rollouts (per-episode streams): 'group' = one generate call per group and role, an episode's tokens bit-identical for any pool or rollout_workers; 'batch' = one call over all groups (B*G rows per decode loop: SmolLM2 generation 21-31 s instead of 48-60 s per iteration on 2 cores, docs/llm.md), each episode still drawing from its own stream but equal across pool sizes only up to float rounding; in-process rollouts only"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.credit not in CREDIT_STRATEGIES:
            raise ValueError(f"unknown credit strategy {self.credit!r}; choose from {sorted(CREDIT_STRATEGIES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {MODES}")
        if self.policy not in ("selection", "llm"):
            raise ValueError(f"unknown policy kind {self.policy!r}; choose 'selection' or 'llm'")
        for name in ("iterations", "batch_queries", "group_size", "eval_every", "checkpoint_every", "env_pool"):
            if getattr(self, name) < (0 if name == "iterations" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("temperature", "eval_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.rollout_workers < 0:
            raise ValueError(f"rollout_workers must be >= 0, got {self.rollout_workers}")
        if self.rollout_batching not in ("group", "batch"):
            raise ValueError(f"rollout_batching must be 'group' or 'batch', got {self.rollout_batching!r}")
        if self.rollout_batching == "batch" and self.rollout_workers:
            raise ValueError("rollout_batching='batch' batches the groups of one process; with rollout_workers "
                             "each actor generates its own groups (use rollout_batching='group')")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"eval_limit must be >= 1 or None, got {self.eval_limit}")
        if self.target_accuracy is not None and not 0.0 <= self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in [0, 1] or None, got {self.target_accuracy}")
        clash = set(self.env_kwargs) & ENV_KEYS_SET_BY_CONFIG
        if clash:
            raise ValueError(f"env_kwargs {sorted(clash)} are set by TrainConfig itself; use its fields "
                             "(alpha, beta, policy → view, train_episode / eval_episode, eval_split) instead")
        if self.policy == "llm" and not (self.policy_kwargs.get("model") or self.policy_kwargs.get("per_role_models")):
            raise ValueError("policy='llm' needs policy_kwargs['model'] (a local folder or hub id) "
                             "or policy_kwargs['per_role_models'] (e.g. --policy-kw model=Qwen/Qwen2.5-3B-Instruct)")
        if self.zero_variance not in (None, "skip", "keep"):
            raise ValueError(f"zero_variance must be 'skip', 'keep' or None, got {self.zero_variance!r}")
        if self.format_reward < 0:
            raise ValueError(f"format_reward must be >= 0, got {self.format_reward}")
        if self.warm_start == "sft":
            if self.policy != "llm":
                raise ValueError("warm_start='sft' needs policy='llm' (the oracle demonstrations are text)")
            SFTConfig.from_dict(self.sft)  # validate early
        elif self.warm_start is not None and not os.path.exists(os.path.join(self.warm_start, "policy.json")):
            raise ValueError(f"warm_start: {self.warm_start!r} is neither 'sft' nor a saved policy folder "
                             "(no policy.json in it)")
        unknown = set(self.credit_kwargs) - CREDIT_OPTIONS
        if unknown:
            raise ValueError(f"unknown credit_kwargs {sorted(unknown)}; choose from {sorted(CREDIT_OPTIONS)}")
        temp = self.credit_kwargs.get("temperature", 1.0)
        if isinstance(temp, bool) or not isinstance(temp, numbers.Real) or not math.isfinite(temp) or temp <= 0:
            raise ValueError(f"credit_kwargs temperature must be > 0 and finite, got {temp!r}")
        self.grpo_config()  # validate early

    def grpo_config(self) -> GRPOConfig:
        """The GRPOConfig of this run; ``lr`` defaults by policy kind when ``grpo`` does not set it
        (1e-2 for selection policies — measured clearly faster than 1e-3 on synthetic-32k, see
        docs/training.md — and 1e-5 for LoRA on LLMs)."""
        kw = dict(self.grpo)
        kw.setdefault("lr", DEFAULT_LR[self.policy])
        unknown = set(kw) - {f.name for f in fields(GRPOConfig)}
        if unknown:
            raise ValueError(f"unknown grpo options {sorted(unknown)}; choose from "
                             f"{sorted(f.name for f in fields(GRPOConfig))}")
        return GRPOConfig(**kw)

    def env_kwargs_for(self, split: str, episode: str) -> dict:
        """Keyword arguments of ``comam_env.make(self.env, ...)`` for one split's environments."""
        return dict(split=split, episode=episode, alpha=self.alpha, beta=self.beta, view=self.view,
                    **self.env_kwargs)

    @property
    def zero_variance_mode(self) -> str:
        """``zero_variance`` with its per-policy default ('skip' for LLMs, 'keep' for selection)."""
        return self.zero_variance or ("skip" if self.policy == "llm" else "keep")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**data)

    @property
    def view(self) -> str:
        return "selection" if self.policy == "selection" else "text"


__all__ = ["AGGREGATIONS", "DEFAULT_LR", "MODES", "GRPOConfig", "SFTConfig", "TrainConfig"]
