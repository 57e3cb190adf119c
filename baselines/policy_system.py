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

import functools
import hashlib
import time
from typing import Any, Mapping

import numpy as np

from comam_env.data.schema import Dataset, History, Question
from comam_env.text import estimate_tokens, split_units

from .base import Prediction


@functools.lru_cache(maxsize=65536)
def _line_tokens(line: str) -> int:
    return estimate_tokens(line)


def _prompt_tokens(text: str) -> int:
    """``estimate_tokens(text)``, line by line with a cache: a token never spans a line break, and
    the memory lines of one history recur in the prompts of every question on it."""
    return sum(_line_tokens(line) for line in text.split("\n"))


def _qseed(seed: int, question_id: str) -> int:
    return (int(seed) * 1_000_003 + int.from_bytes(hashlib.sha256(question_id.encode()).digest()[:6], "little")) % (2**31 - 1)


class PolicySystem:
    """A role → policy mapping evaluated through the env (full-history episodes)."""

    name = "policies"
    #: questions answered per :meth:`answer_batch` call by the harness, and envs stepped in lockstep
    batch_size = 256
    pool_size = 32

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
        self._pool: list = []
        self._memo = None
        self._dataset: Dataset | None = None

    def _make_env(self, dataset: Dataset):
        import comam_env

        kwargs = {k: v for k, v in self.env_kwargs.items() if k not in ("split", "episode", "dataset")}
        return comam_env.make(self.env_id, dataset=dataset, split="all", episode="full-history",
                              view=self.view, **kwargs)

    def prepare(self, dataset: Dataset) -> None:
        if dataset is self._dataset:
            return
        self._env = self._make_env(dataset)
        self._pool = [self._env]
        self._dataset = dataset
        for p in {id(p): p for p in self.policies.values()}.values():
            if hasattr(p, "eval"):
                p.eval()
        from agents.memo import GreedyMemo

        # The parameters are fixed from here on: the extractor's greedy chunk decisions are memoised.
        self._memo = GreedyMemo(self.policies["extractor"]) if self.greedy else None

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
        pred = self._predictions(batch.trajectories[0].record)[question.question_id]
        pred.latency_ms = (time.perf_counter() - start) * 1000.0
        return pred

    def answer_batch(self, questions: list[Question]) -> list[Prediction]:
        """Answer several questions at once; the same predictions as :meth:`answer` one by one.

        Greedy evaluation runs :func:`agents.rollout.evaluate`'s plan: one episode per visible
        history (questions with the same history and ``end_index`` share the memory-building
        steps), ``pool_size`` episodes in lockstep, the extractor memoised. Each prediction's
        cost counters are those of its own one-question episode (the shared memory-building
        steps counted for each question) and ``latency_ms`` is the batch's wall time divided
        by its questions. Sampled evaluation answers one question at a time (each question's
        seed must not depend on which others are in the batch).
        """
        import torch

        from agents.rollout import collect_rollouts, history_groups

        if self._env is None or self._dataset is None:
            raise RuntimeError("call prepare(dataset) before answer_batch()")
        if not self.greedy:
            return [self.answer(q, self._dataset.history_for(q)) for q in questions]
        start = time.perf_counter()
        while len(self._pool) < min(self.pool_size, len(questions)):
            self._pool.append(self._make_env(self._dataset))
        groups = history_groups(self._dataset, [q.question_id for q in questions])
        acting = {**self.policies, "extractor": self._memo}
        with torch.no_grad():
            batch = collect_rollouts(self._pool, acting, groups, 1, rng=np.random.default_rng(self.seed),
                                     generator=torch.Generator().manual_seed(self.seed), greedy=True)
        preds: dict[str, Prediction] = {}
        for traj in batch.trajectories:
            preds.update(self._predictions(traj.record))
        per_question_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(questions))
        for p in preds.values():
            p.latency_ms = per_question_ms
        return [preds[q.question_id] for q in questions]

    def _predictions(self, record: Mapping[str, Any]) -> dict[str, Prediction]:
        """One prediction per question of an episode record (``env.trajectory()``)."""
        from agents.rollout import question_results

        steps = record.get("steps", [])
        building = [st for st in steps if st.get("role") != "retriever"]
        shared_in = sum(_prompt_tokens(st.get("prompt") or "") for st in building)
        shared_out = sum(_prompt_tokens(st.get("action") or "") for st in building)
        memory = record.get("memory") or {}
        units = split_units(memory.get("fine", "")) + split_units(memory.get("coarse", ""))
        memory_tokens = sum(_line_tokens(u) for u in units)
        answering = {(st.get("local_parts") or {}).get("question_id"): st for st in steps if st.get("role") == "retriever"}
        answers = {a["question_id"]: a for a in record.get("answers") or []}
        from comam_env.rewards import extract_tag

        out = {}
        for qid, res in question_results(record).items():
            step = answering.get(qid) or {}
            action = step.get("action") or ""
            question = self._dataset.question(qid) if self._dataset is not None else None
            answer = res["parsed"] or ""
            if question is not None and not question.options:  # open question: the free-text answer
                answer = str((answers.get(qid) or {}).get("parsed") or "")
            out[qid] = Prediction(
                answer=answer,
                retrieved_memory=(extract_tag(action, "information") or "").strip(),
                tokens_in=shared_in + _prompt_tokens(step.get("prompt") or ""),
                tokens_out=shared_out + _prompt_tokens(action),
                latency_ms=0.0,
                local_rewards=dict(res["local"]),
                memory_units=len(units),
                memory_tokens=memory_tokens,
                raw_output=action or None,
            )
        return out
