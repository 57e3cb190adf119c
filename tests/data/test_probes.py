"""Answer-only probes."""

from __future__ import annotations

import numpy as np
import pytest

from comam_env.data.schema import Question
from comam_env.probes import longest_option, probe_accuracy, question_similarity_option, random_option


def q(options, answer="a", query="Which snack fits my diet?", qid="q"):
    return Question(qid, "h", "suggest_new_ideas", "suggest_new_ideas", query, tuple(options), answer, None, 1)


def test_longest_option_counts_characters_and_first_wins_ties():
    assert longest_option(q(["ab", "abcd", "abc"])) == "b"
    assert longest_option(q(["abcd", "dcba", "ab"])) == "a"  # tie -> earliest
    # characters, not words: 3 long words beat 5 short ones
    assert longest_option(q(["a b c d e", "elephant giraffe rhinoceros"])) == "b"
    assert longest_option(q(["  ab  ", "abc"])) == "b"  # surrounding white space ignored


def test_random_option_is_seeded_and_uniform():
    question = q(["w", "x", "y", "z"])
    a = [random_option(question, np.random.default_rng(3)) for _ in range(5)]
    assert len(set(a)) == 1  # same seed, same draw
    rng = np.random.default_rng(0)
    draws = [random_option(question, rng) for _ in range(4000)]
    for letter in "abcd":
        assert 0.2 < draws.count(letter) / 4000 < 0.3


def test_question_similarity_option():
    question = q(["Try a chocolate cake.", "Low-carb almond snack bars fit your keto diet.", "Nothing."],
                 query="Which low-carb snack fits my keto diet?")
    assert question_similarity_option(question) == "b"


def test_probe_accuracy():
    qs = [q(["a", "bbb"], "b", qid="1"), q(["ccc", "d"], "b", qid="2"), q(["x", "yy"], "b", qid="3")]
    assert probe_accuracy(qs, longest_option) == pytest.approx(2 / 3)
    open_q = Question("o", "h", "locomo_1", "1", "When?", (), "May 2023", None, 1)
    assert probe_accuracy(qs + [open_q], longest_option) == pytest.approx(2 / 3)  # open questions ignored
    assert np.isnan(probe_accuracy([open_q], longest_option))
    with pytest.raises(ValueError):
        longest_option(open_q)
