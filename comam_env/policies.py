"""Scripted text policies for the text view: an oracle and a naive copy-everything policy.

Both are callables ``policy(agent, observation, env) -> str`` usable by tests,
examples, benchmarks and baselines:

* :class:`OraclePolicy` reads the gold data of the env's current episode
  (``env.unwrapped.current_questions`` / ``current_chunk``): the extractor copies
  the gold evidence messages of the chunk it is shown (rendered exactly as in the
  chunk, ``Role: text``), the profiler writes the gold profile (or, when the data
  has none, copies M_f), the retriever copies the evidence lines of the query it
  answers and gives the gold option (or the gold text for open questions; on an
  unanswerable LoCoMo category-5 question, whose ``answer`` is the trap, it abstains
  with :data:`ABSTAIN_ANSWER`). Its rewards are the upper reference the benchmark's reward design should reach.
* :class:`CopyAllPolicy` copies its whole input: the extractor the chunk, the
  profiler M_f, the retriever all of M inside ``<information>`` — and answers a
  fixed option (``(a)``). Perfect recall, poor precision: the Jaccard terms of the
  rewards show the difference.

Neither uses randomness, so an episode under them is a pure function of the
env's seed and options.
"""

from __future__ import annotations

from typing import Any

from comam_env.charset import normalize_text
from comam_env.prompts import RETRIEVED_HEADING, retriever_action
from comam_env.roles import role_of
from comam_env.text import split_units

__all__ = ["OraclePolicy", "CopyAllPolicy", "run_episode", "ABSTAIN_ANSWER", "gold_answer_text"]

#: What the oracle answers to a question the conversation cannot answer (LoCoMo category 5).
ABSTAIN_ANSWER = "Not mentioned in the conversation."

_HEADINGS = ("## Fine-grained memory", "## User profile", "(empty)", RETRIEVED_HEADING)


def _unwrap(env: Any) -> Any:
    return getattr(env, "unwrapped", env)


def _render(history: Any, indices: Any) -> str:
    return normalize_text(history.render(indices))[0]


def _memory_lines(memory: str) -> list[str]:
    return [u for u in split_units(memory) if u not in _HEADINGS]


def gold_answer_text(question: Any) -> str:
    """The best answer text to ``question``: ``(x)`` for multiple choice, :data:`ABSTAIN_ANSWER`
    for an unanswerable question (LoCoMo category 5, ``answer`` is the trap), else the gold text."""
    if question.is_multiple_choice:
        return f"({question.answer})"
    if str(question.meta.get("category")) == "5":
        return ABSTAIN_ANSWER
    return question.answer


class OraclePolicy:
    """Gold-data policy (see the module docstring).

    Args:
        dataset: the env's dataset (gold profiles and evidence come from it). ``None``
            uses ``env.unwrapped.dataset``.
    """

    def __init__(self, dataset: Any = None) -> None:
        self.dataset = dataset

    def _dataset(self, env: Any) -> Any:
        return self.dataset if self.dataset is not None else env.dataset

    def __call__(self, agent: str, observation: Any, env: Any) -> str:
        env = _unwrap(env)
        role = role_of(agent)
        if role == "extractor":
            start, stop = env.current_chunk
            wanted = sorted({i for q in env.current_questions for i in (q.evidence or ()) if start <= i < stop})
            return _render(env.current_history, wanted)
        if role == "profiler":
            q = env.current_questions[0]
            gold = self._dataset(env).profile_for(q, [range(a, b) for a, b in env.chunk_spans])  # what H supports
            if gold:
                return "\n".join(gold)
            return env.fine_memory
        q = env.current_question
        ev = [i for i in (q.evidence or ()) if i < len(env.current_history)]
        info = _render(env.current_history, ev)
        return retriever_action(info, gold_answer_text(q))


class CopyAllPolicy:
    """Copy-everything policy (see the module docstring).

    Args:
        answer: the option letter the retriever always gives (default ``"a"``).
    """

    def __init__(self, answer: str = "a") -> None:
        self.answer = answer

    def __call__(self, agent: str, observation: Any, env: Any) -> str:
        role = role_of(agent)
        if role == "extractor":
            return str(observation["chunk"])
        if role == "profiler":
            return "\n".join(_memory_lines(str(observation["memory"])))
        lines = "\n".join(_memory_lines(str(observation["memory"])))
        return retriever_action(lines, f"({self.answer})")


def run_episode(env: Any, policy: Any, seed: int | None = None, options: dict | None = None) -> dict[str, Any]:
    """Reset ``env`` and play one episode with ``policy``; returns ``env.trajectory()``
    plus ``"returns"`` (the summed scalar reward of every agent) and ``"final_infos"``
    (each agent's info at its final ``last()``)."""
    env.reset(seed=seed, options=options)
    returns = {a: 0.0 for a in env.possible_agents}
    final_infos: dict[str, Any] = {}
    for agent in env.agent_iter():
        obs, reward, term, trunc, info = env.last()
        returns[agent] += float(reward)
        if term or trunc:
            final_infos[agent] = info
        env.step(None if term or trunc else policy(agent, obs, env))
    traj = env.unwrapped.trajectory()
    traj["returns"] = returns
    traj["final_infos"] = final_infos
    return traj
