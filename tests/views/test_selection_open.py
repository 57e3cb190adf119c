"""The selection view on an open track (LoCoMo format): the retriever's final answer is the
extractive span of its selected lines, so the gold selection reaches a useful F1 (issue 15)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

import comam_env
from comam_env.data.locomo import read_locomo
from comam_env.data.locomo_fixture import write_locomo_fixture
from comam_env.scoring import answer_text, score_answer
from comam_env.views.selection import render_selection


def _gold_scores(tmp_path):
    ds = read_locomo(write_locomo_fixture(tmp_path, n_samples=2))
    env = comam_env.make("locomo", dataset=ds, split="all", view="selection", judge=None,
                         view_kwargs={"K": 64, "embedder": "hashing", "cache_dir": str(tmp_path), "progress": False})
    new, whole, rewards = {}, {}, {}
    for q in ds.questions:
        env.reset(options={"question_id": q.question_id})
        for agent in env.agent_iter():
            _, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            action = env.gold_action(agent)
            if agent.startswith("retriever"):
                st = env.state_of(agent)
                bits = np.asarray(action)[: len(st.texts)] != 0
                if q.meta["category"] == 5:
                    bits[:] = False  # nothing in memory answers it: select nothing = abstain
                    action = np.zeros_like(action)
                cat = q.meta["category"]
                whole.setdefault(cat, []).append(score_answer(q, answer_text(
                    render_selection("retriever", st.texts, bits, 0, 0))))  # the old answer: the lines
                new.setdefault(cat, []).append(score_answer(q, env.decode(agent, action)))
            env.step(action)
        rewards[q.question_id] = env.unwrapped.trajectory()["global_reward"]
    return ds, new, whole, rewards


def test_gold_selection_gives_extractive_answers(tmp_path):
    _, new, whole, rewards = _gold_scores(tmp_path)
    mean = statistics.fmean
    assert mean(new[4]) == 1.0 and mean(whole[4]) < 0.4  # single hop: the span, not the whole line
    assert mean(new[5]) == 1.0 and mean(whole[5]) == 0.0  # an empty selection abstains
    content = [x for c in (1, 2, 3, 4) for x in new[c]]
    assert mean(content) > 2 * mean([x for c in (1, 2, 3, 4) for x in whole[c]])
    # the env's global reward is exactly that score
    flat = [x for c in sorted(new) for x in new[c]]
    assert sorted(rewards.values()) == pytest.approx(sorted(flat))


def test_render_selection_open_answer_uses_the_query():
    texts = ["User: Jon: Guess what, I just started a new job as a pastry chef!", "Assistant: Gina: Wow!"]
    out = render_selection("retriever", texts, [True, True], 0, 0, query="What new job did Jon start?")
    assert out.endswith("<final_answer>pastry chef</final_answer>") and texts[0] in out
    empty = render_selection("retriever", texts, [False, False], 0, 0, query="What new job did Jon start?")
    assert empty.endswith("<final_answer>Not mentioned in the conversation.</final_answer>")
