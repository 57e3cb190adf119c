"""Run ``agents`` policies (LLM or selection) as an evaluated system, one env episode per question.

Shared by ``prompt-only`` (untrained LLM policies) and the trained systems
(``independent``, ``comam``). ``prepare(dataset)`` builds one evaluation env
with ``comam_env.make(env_id, dataset=dataset, split="all",
episode="full-history", view=...)`` — the same env the trainer evaluates on;
``answer`` replays the question (``reset(options={"question_id": ...})``) and
steps it with :func:`agents.rollout.collect_rollouts`, greedy by default, so an
evaluation is a deterministic function of the parameters. With sampling
(``greedy=False``) each question's episode is seeded from ``(seed, question id)``
so the answer does not depend on the order questions are evaluated in.

The prediction carries the parsed option, the ``<information>`` text, every
channel's local reward from the env (``None`` when undefined), memory size
(units of M_f + M_c) and estimated tokens read (every prompt) and written
(every action) over the episode.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Mapping

import numpy as np

from comam_env.data.schema import Dataset, History, Question
from comam_env.text import estimate_tokens, split_units

from .base import Prediction


def _qseed(seed: int, question_id: str) -> int:
    return (int(seed) * 1_000_003 + int.from_bytes(hashlib.sha256(question_id.encode()).digest()[:6], "little")) % (2**31 - 1)


class PolicySystem:
    """A role → policy mapping evaluated through the env (full-history episodes)."""

    name = "policies"

    def __init__(self, policies: Mapping[str, Any], *, env_id: str = "synthetic-32k", view: str = "text",
                 env_kwargs: Mapping[str, Any] | None = None, seed: int = 0, greedy: bool = True,
                 temperature: float = 0.8) -> None:
        self.policies = dict(policies)
        self.env_id = env_id
        self.view = view
        self.env_kwargs = dict(env_kwargs or {})
        self.seed = int(seed)
        self.greedy = bool(greedy)
        self.temperature = float(temperature)
        self._env = None
        self._dataset: Dataset | None = None

    def prepare(self, dataset: Dataset) -> None:
        import comam_env

        if dataset is self._dataset:
            return
        kwargs = {k: v for k, v in self.env_kwargs.items() if k not in ("split", "episode", "dataset")}
        self._env = comam_env.make(self.env_id, dataset=dataset, split="all", episode="full-history",
                                   view=self.view, **kwargs)
        self._dataset = dataset
        for p in {id(p): p for p in self.policies.values()}.values():
            if hasattr(p, "eval"):
                p.eval()

    def answer(self, question: Question, history: History) -> Prediction:
        import torch

        from agents.rollout import collect_rollouts

        if self._env is None:
            raise RuntimeError("call prepare(dataset) before answer()")
        start = time.perf_counter()
        s = _qseed(self.seed, question.question_id)
        with torch.no_grad():
            batch = collect_rollouts([self._env], self.policies, [question.question_id], 1,
                                     rng=np.random.default_rng(s), generator=torch.Generator().manual_seed(s),
                                     temperature=self.temperature, greedy=self.greedy)
        traj = batch.trajectories[0]
        record = traj.record
        steps = record.get("steps", [])
        retrieved = record.get("retrieved") or ""
        if isinstance(retrieved, list):
            retrieved = retrieved[0] if retrieved else ""
        memory = record.get("memory") or {}
        units = split_units(memory.get("fine", "")) + split_units(memory.get("coarse", ""))
        local = {r: (None if v is None or not np.isfinite(v) else float(v)) for r, v in traj.local.items()}
        answer = traj.parsed_answer or ""
        if not question.options:  # open question: the free-text answer
            answers = record.get("answers") or []
            answer = str((answers[0] if answers else {}).get("parsed") or "")
        return Prediction(
            answer=answer,
            retrieved_memory=retrieved.strip(),
            tokens_in=sum(estimate_tokens(st.get("prompt") or "") for st in steps),
            tokens_out=sum(estimate_tokens(st.get("action") or "") for st in steps),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            local_rewards=local,
            memory_units=len(units),
            memory_tokens=sum(estimate_tokens(u) for u in units),
            raw_output=next((st.get("action") for st in reversed(steps) if st.get("role") == "retriever"), None),
        )
