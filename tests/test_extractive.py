"""The extractive open answerer (comam_env.extractive): the docstring's examples and its rules."""

from __future__ import annotations

import pytest

from comam_env.extractive import ABSTAIN_ANSWER, answer_span, best_unit, content_words, extractive_answer


@pytest.mark.parametrize("query, units, answer", [
    ("What is the name of Caroline's puppy?",
     ["User: Caroline: We adopted a puppy and named it Luna.", "Assistant: Melanie: Great!"], "Luna"),
    ("What new job did Jon start?", ["User: Jon: Guess what, I just started a new job as a pastry chef!"],
     "pastry chef"),
    ("What did Melanie paint?", ["User: Jon: hello there"], ABSTAIN_ANSWER),  # no shared word: abstain
    ("What is the puppy called?", ["User: Ann: Luna is my puppy."], "Luna"),  # nothing after: the words before
    ("Where?", [], ABSTAIN_ANSWER),
])
def test_extractive_answer_examples(query, units, answer):
    assert extractive_answer(query, units) == answer


def test_support_ranking_scores_and_ties():
    units = ["User: A: I like tea.", "User: A: I like green tea a lot.", "User: A: unrelated"]
    assert best_unit("Which tea does A like?", units) == 1  # ties on support go to the later unit
    assert best_unit("Which tea does A like?", units, scores=[0.9, 0.1, 5.0]) == 0  # score, among supported
    assert best_unit("What about kayaks?", units) is None


def test_span_is_short_and_trimmed():
    long = "User: Bo: I started " + " ".join(f"word{i}" for i in range(20))
    span = answer_span("What did Bo start?", long, max_words=4)
    assert span == "word0 word1 word2 word3"
    assert content_words("What did the dog eat?") == ["dog", "eat"]
