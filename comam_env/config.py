"""Every setting of the environment: :class:`EnvConfig`, validated on construction.

``comam_env.make(env_id, **kwargs)`` and ``comam_env.env.env(dataset, **kwargs)`` take these
fields as keyword arguments; a wrong value fails here, before any episode is built, with an
error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from comam_env.embed import get_embedder
from comam_env.memory_budget import check_budget

__all__ = ["EnvConfig", "EPISODES", "REWARD_MODES", "check_int", "check_real"]


def check_real(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float when it is a real number in ``[low, high]`` (``(low, high]`` with
    ``low_open``), else a ``ValueError`` naming ``name``. Booleans, strings and NaN are refused
    (``alpha=True`` used to pass as 1.0, ``tau=nan`` silently zeroed every coverage reward)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else float("nan")
    if not (ok and (low < v if low_open else low <= v) and v <= high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return v


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int when it is an integer >= ``low`` (not a bool, not 2.5), else a ``ValueError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)

#: ``episode`` kinds: the paper's training setting, the evaluation setting, and the training
#: curriculum between them (the evidence sessions plus earlier sessions with stale and decoy content).
EPISODES = ("evidence-session", "full-history", "evidence+context")
#: ``reward_mode`` values (what the scalar ``rewards`` carry).
REWARD_MODES = ("local", "global", "local+global", "none")


@dataclass(frozen=True)
class EnvConfig:
    """Every setting of the environment (``make``/``env`` keyword arguments)."""

    episode: str = field(default="evidence-session", metadata={
        "help": "'evidence-session': H = the session(s) holding the evidence (training, as in the paper); "
                "'full-history': H = messages[:end_index] (evaluation); 'evidence+context': the evidence "
                "session(s) plus up to context_sessions earlier sessions holding other questions' evidence on "
                "the same history, same topic first (stale preferences and decoys; a training curriculum that "
                "reaches the evaluation protocol)"})
    context_sessions: int = field(default=4, metadata={
        "help": "episode='evidence+context': how many context sessions join the evidence session(s)"})
    queries_per_episode: int = field(default=1, metadata={
        "help": "questions answered on one memory (grouped by history id and end_index)"})
    chunk_tokens: int | None = field(default=4096, metadata={
        "help": "a session longer than this (estimated tokens) is cut into chunks of whole messages; None = one chunk per session"})
    alpha: float = field(default=0.8, metadata={"help": "extractor recall weight (eq. 9)"})
    beta: float = field(default=0.2, metadata={"help": "retriever recall weight (eq. 11)"})
    matcher: Any = field(default="token-recall", metadata={
        "help": "unit/evidence matcher: 'token-recall', 'embedding', 'embedding:<name>' or an object (rewards.resolve_matcher)"})
    tau: float | None = field(default=None, metadata={"help": "match threshold in (0, 1]; None = the matcher's default"})
    judge: Any = field(default="auto", metadata={
        "help": "profile judge name or object (comam_env.judges.get_judge): 'auto' = gold-profile judge for questions "
                "whose persona has a gold profile, else the embedding judge; 'gold', 'embedding[:<embedder>]', 'llm[:<model>]'"})
    reward_mode: str = field(default="local+global", metadata={
        "help": "scalar rewards: 'local', 'global', 'local+global' (local + global/3) or 'none'"})
    max_action_chars: int = field(default=16384, metadata={
        "help": "longer actions are cut to this many characters (flagged); also the action space's max_length"})
    max_observation_chars: int = field(default=1 << 25, metadata={
        "help": "cap on every observation text field (flagged when hit); the observation spaces' max_length"})
    record_trajectory: bool = field(default=True, metadata={
        "help": "keep every prompt and action for env.trajectory() (disable to save memory on long runs)"})
    memory_budget: int | None = field(default=None, metadata={
        "help": "retriever memory budget in units (comam_env.memory_budget): the profile's units, then the "
                "budget minus those of M_f most similar to the query, in chronological order; None = the paper's "
                "setting (all of M_f and M_c). The selection view has its own (view_kwargs memory_budget, default 16)"})
    memory_embedder: Any = field(default="hashing", metadata={
        "help": "embedder ranking memory units by query similarity under memory_budget: 'hashing' "
                "(deterministic, no model), 'minilm' or an object with name/dim/encode"})

    def __post_init__(self) -> None:
        if self.episode not in EPISODES:
            raise ValueError(f"episode must be one of {EPISODES}, got {self.episode!r}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        check_int("context_sessions", self.context_sessions, 0)
        check_int("queries_per_episode", self.queries_per_episode, 1)
        if self.chunk_tokens is not None:
            check_int("chunk_tokens", self.chunk_tokens, 1)
        for name in ("alpha", "beta"):
            check_real(name, getattr(self, name), 0.0, 1.0)
        if self.tau is not None:
            # similarities are <= 1; tau <= 0 would match every unit with every evidence item
            check_real("tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("max_action_chars", "max_observation_chars"):
            check_int(name, getattr(self, name), 1)
        if not isinstance(self.record_trajectory, (bool, np.bool_)):
            raise ValueError(f"record_trajectory must be True or False, got {self.record_trajectory!r}")
        check_budget("memory_budget", self.memory_budget)
        try:
            get_embedder(self.memory_embedder)  # lazy: a model is loaded on first use, never here
        except (TypeError, ValueError) as exc:
            raise ValueError(f"memory_embedder: {exc}") from None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
