"""Answer-only bias probes: pick an option without looking at any memory.

docs/design.md §5: on the real 32k question file always picking the *longest option*
scores 0.516 — as high as most published memory systems — so every result
table shows these probes next to the memory systems.

Rules (deterministic, documented because they decide the reported numbers):

* :func:`longest_option` — the option with the most *characters* (option text
  without its ``(a)`` label, surrounding white space stripped); ties go to the
  earliest option. On the real 32k file this gives 0.516 (304/589).
* :func:`shortest_option` / :func:`length_rank_option` — the option with the fewest
  characters / of a given length rank (ties: the earlier option).
* :func:`random_option` — uniform over the options with the given
  :class:`numpy.random.Generator`.
* :func:`question_similarity_option` — the option sharing the most content
  tokens with the query (set cosine ``|A∩B|/sqrt(|A||B|)``); ties go to the
  earliest option.
* :func:`probe_accuracy` — fraction of multiple-choice questions a probe
  answers correctly (open questions are ignored).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

from .data.schema import OPTION_LETTERS, Question
from .text import content_tokens

Probe = Callable[[Question], str]


def _argmax_first(values: list[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def longest_option(q: Question) -> str:
    """Letter of the option with the most characters (earliest wins ties)."""
    if not q.options:
        raise ValueError(f"question {q.question_id!r} has no options")
    return OPTION_LETTERS[_argmax_first([len(o.strip()) for o in q.options])]


def length_rank_option(q: Question, k: int) -> str:
    """Letter of the option of length rank ``k`` (characters; 0 = shortest; ties: the earlier option).

    With a rank per question type fitted on training questions this is the per-type length rule
    the synthetic splits are tested against (``tests/data/test_synthetic_splits.py``)."""
    if not q.options:
        raise ValueError(f"question {q.question_id!r} has no options")
    order = sorted(range(len(q.options)), key=lambda i: (len(q.options[i].strip()), i))
    return OPTION_LETTERS[order[k]]


def shortest_option(q: Question) -> str:
    """Letter of the option with the fewest characters (earliest wins ties)."""
    return length_rank_option(q, 0)


def random_option(q: Question, rng) -> str:
    """A uniformly random option letter drawn from ``rng`` (a ``numpy.random.Generator``)."""
    if not q.options:
        raise ValueError(f"question {q.question_id!r} has no options")
    return OPTION_LETTERS[int(rng.integers(len(q.options)))]


def question_similarity_option(q: Question) -> str:
    """Letter of the option with the highest content-token overlap with the query."""
    if not q.options:
        raise ValueError(f"question {q.question_id!r} has no options")
    query = content_tokens(q.query)

    def sim(option: str) -> float:
        o = content_tokens(option)
        return len(query & o) / math.sqrt(len(query) * len(o)) if query and o else 0.0

    return OPTION_LETTERS[_argmax_first([sim(o) for o in q.options])]


def probe_accuracy(questions: Iterable[Question], probe: Probe) -> float:
    """Accuracy of ``probe`` over the multiple-choice questions (NaN when there are none)."""
    n = correct = 0
    for q in questions:
        if not q.options:
            continue
        n += 1
        correct += probe(q) == q.answer
    return correct / n if n else float("nan")
