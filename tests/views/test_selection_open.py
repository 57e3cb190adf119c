"""The selection view on an open track (LoCoMo format): the retriever's final answer is the
extractive span of its selected lines, so the gold selection reaches a useful F1 (issue 15)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from comam_env.data.locomo import read_locomo
from comam_env.data.locomo_fixture import write_locomo_fixture
from comam_env.views.selection import render_selection

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_gold_selection_gives_extractive_answers(tmp_path):
    from locomo_results import selection_ceiling  # the measurement docs/results.md reports

    ds = read_locomo(write_locomo_fixture(tmp_path, n_samples=2))
    c = selection_ceiling(ds, tmp_path)
    new, whole, mean = c["span"], c["lines"], statistics.fmean
    assert mean(new[4]) == 1.0 and mean(whole[4]) < 0.4  # single hop: the span, not the whole line
    assert mean(new[5]) == 1.0 and mean(whole[5]) == 0.0  # an empty selection abstains
    content = [x for cat in (1, 2, 3, 4) for x in new[cat]]
    assert mean(content) > 2 * mean([x for cat in (1, 2, 3, 4) for x in whole[cat]])
    assert c["reward"] == new  # the env's global reward is exactly that score


def test_render_selection_open_answer_uses_the_query():
    texts = ["User: Jon: Guess what, I just started a new job as a pastry chef!", "Assistant: Gina: Wow!"]
    out = render_selection("retriever", texts, [True, True], 0, 0, query="What new job did Jon start?")
    assert out.endswith("<final_answer>pastry chef</final_answer>") and texts[0] in out
    empty = render_selection("retriever", texts, [False, False], 0, 0, query="What new job did Jon start?")
    assert empty.endswith("<final_answer>Not mentioned in the conversation.</final_answer>")
