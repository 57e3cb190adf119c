"""Optional format reward for LLM policies (reward shaping; **off** in the paper configuration).

A common LLM-RL device (DeepSeek-R1's format reward, TRL's ``format_reward`` examples): a small
bonus for outputs the environment can parse, so that a model that has not yet learned the output
format still gets a non-zero, varying reward. CoMAM's rewards (eq. 9–12) have no such term, so
``TrainConfig.format_reward`` defaults to 0 and the paper presets leave it there.

Definition (per action, 1 = well formed, 0 otherwise):

* retriever: the action has an ``<information>`` … ``</information>`` block **and** a non-empty
  ``<final_answer>`` … content (what ``comam_env``'s retriever step parses; the answer's
  correctness is not looked at);
* extractor and profiler: the completion is non-empty and ended with the model's stop token
  (``info["finished"]``) rather than at the token budget — i.e. the model wrote a complete memory
  or profile instead of rambling until it was cut.

The trainer adds ``format_reward × (mean format score of the role's actions in the trajectory)``
to that role's *integrated* reward r̃_n after credit assignment (so the adaptive weights of the
global reward are unchanged), before the group advantages; the score's mean per role is logged
as ``format_<role>`` whenever the bonus is on.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from comam_env.scoring import extract_tag

__all__ = ["format_matrix", "format_score"]


def format_score(role: str, action: Any, info: Mapping[str, Any] | None = None) -> float:
    """1.0 when ``action`` of ``role`` is well formed (module docstring), else 0.0."""
    text = action if isinstance(action, str) else ""
    if role == "retriever":
        low = text.lower()
        answer = extract_tag(text, "final_answer")
        ok = extract_tag(text, "information") is not None and "</information>" in low and bool(answer)
        return 1.0 if ok else 0.0
    finished = bool((info or {}).get("finished", True))
    return 1.0 if text.strip() and finished else 0.0


def format_matrix(batch, role: str) -> np.ndarray:
    """``(B, G)`` mean format score of ``role``'s actions in each trajectory of a
    :class:`agents.rollout.RolloutBatch` (0 for a trajectory where the role never acted)."""
    total = np.zeros((len(batch.question_ids), batch.group_size))
    count = np.zeros_like(total)
    for a in batch.actions_of(role):
        t = batch.trajectories[a.trajectory]
        total[t.group, t.member] += format_score(role, a.action, a.info)
        count[t.group, t.member] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
