"""Extractive open answers: the best-supported memory span for a question (LoCoMo-style tracks).

A system without a generator (the similarity answerer, the heuristic pipelines,
the selection view's retriever) answers an open question with a *short span*
copied from its memory, because the answer score is token F1 against a short
gold answer (:mod:`comam_env.scoring`): a whole memory line scores low even
when it holds the answer.

Rule (:func:`extractive_answer`):

1. **Support.** A unit's support is the number of distinct question words it
   contains (stop words removed, a light suffix stem so "named" meets "name").
   With ``scores`` (e.g. embedding similarities to the question) the unit with the
   highest score among the units with support > 0 is chosen; without, the unit
   with the most support. Ties go to the later unit (the more recent memory).
2. **Abstention.** When no unit shares a word with the question, the answer is
   :data:`ABSTAIN_ANSWER` ("Not mentioned in the conversation.").
3. **Span** (:func:`answer_span`). The unit's leading ``Role:`` / ``Name:``
   labels are removed and the text is cut into clauses at punctuation. In the
   clause with the most question words, the answer is the words *after* the
   last question word, up to the clause end (the part the question asks for:
   "…started a new job **as a nurse**"); when nothing follows, the words before
   the first question word ("**Luna** is my puppy's name"); with no question
   word in the text, its first clause. Leading and trailing stop words are
   dropped and at most ``max_words`` words are kept.

Examples (question → memory unit → answer):

* "What is the name of Caroline's puppy?" → ``User: Caroline: We adopted a puppy and named it Luna.`` → ``Luna``
* "What new job did Jon start?" → ``User: Jon: I just started a new job as a pastry chef!`` → ``pastry chef``
* "What did Melanie paint?" with no unit sharing a word → ``Not mentioned in the conversation.``

Deterministic and dependency-free (plain string processing).
"""

from __future__ import annotations

import re
from typing import Sequence

from comam_env.text import STOP_WORDS

__all__ = ["ABSTAIN_ANSWER", "DEFAULT_MAX_WORDS", "content_words", "question_stems", "support", "best_unit", "answer_span",
           "extractive_answer"]

#: The abstention an extractive answerer gives when nothing in memory supports the question.
ABSTAIN_ANSWER = "Not mentioned in the conversation."
#: Longest span returned (LoCoMo gold answers are short: a median of about 3 words).
DEFAULT_MAX_WORDS = 6

_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
_CLAUSE_RE = re.compile(r"[.,;:!?()\[\]—–]+|\s-\s|\bbut\b|\bbecause\b|\bso\b", re.IGNORECASE)
_LABEL_RE = re.compile(r"^\s*(?:\[\d+\]\s*)?(?:[A-Z][\w'’.-]*(?: [A-Z][\w'’.-]*)?:\s+){1,2}")
#: Question words that say what is asked, not what the answer is about.
_QUESTION_WORDS = frozenset("what when where who whom whose which why how would could did does do is are was were "
                            "has have had will can should".split())


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'")
    word = word.removesuffix("'s").removesuffix("'")
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _is_stop(word: str) -> bool:
    w = word.lower().replace("’", "'")
    return w in STOP_WORDS or w in _QUESTION_WORDS


def content_words(text: str) -> list[str]:
    """The words of ``text`` in order, without stop words and question words ("what", "did", …)."""
    return [w for w in _WORD_RE.findall(text) if not _is_stop(w)]


def question_stems(query: str) -> frozenset[str]:
    """The stems of the question's content words (what a supporting unit should contain)."""
    return frozenset(_stem(w) for w in content_words(query))


def support(unit: str, stems: frozenset[str]) -> int:
    """How many distinct question stems ``unit`` contains."""
    return len(stems & {_stem(w) for w in _WORD_RE.findall(unit)})


def best_unit(query: str, units: Sequence[str], scores: Sequence[float] | None = None) -> int | None:
    """Index of the best-supported unit (see the module docstring), ``None`` when none shares a word."""
    stems = question_stems(query)
    sup = [support(u, stems) for u in units]
    cands = [i for i, s in enumerate(sup) if s > 0]
    if not cands:
        return None
    if scores is not None:
        return max(cands, key=lambda i: (float(scores[i]), i))
    return max(cands, key=lambda i: (sup[i], i))


def _trim(words: list[str], max_words: int) -> list[str]:
    while words and _is_stop(words[0]):
        words = words[1:]
    words = words[:max_words]
    while words and _is_stop(words[-1]):
        words = words[:-1]
    return words


def answer_span(query: str, unit: str, max_words: int = DEFAULT_MAX_WORDS) -> str:
    """The short span of ``unit`` that answers ``query`` (rule 3 of the module docstring)."""
    text = _LABEL_RE.sub("", unit.strip(), count=1)
    stems = question_stems(query)
    clauses = [c for c in (_WORD_RE.findall(part) for part in _CLAUSE_RE.split(text)) if c]
    if not clauses:
        return ""
    hits = [[k for k, w in enumerate(c) if _stem(w) in stems] for c in clauses]
    best = max(range(len(clauses)), key=lambda j: (len(set(map(_stem, (clauses[j][k] for k in hits[j])))), -j))
    words, marks = clauses[best], hits[best]
    if marks:
        after = _trim(words[marks[-1] + 1:], max_words)
        if after:
            return " ".join(after)
        before = _trim(words[: marks[0]], max_words)
        if before:
            return " ".join(before)
        # every word is a question word: the next clause, if any, may hold the answer
        if best + 1 < len(clauses):
            return " ".join(_trim(clauses[best + 1], max_words))
        return ""
    return " ".join(_trim(clauses[0], max_words))


def extractive_answer(query: str, units: Sequence[str], scores: Sequence[float] | None = None,
                      max_words: int = DEFAULT_MAX_WORDS) -> str:
    """The best-supported span of ``units`` for ``query``, or :data:`ABSTAIN_ANSWER` (module docstring)."""
    i = best_unit(query, units, scores)
    if i is None:
        return ABSTAIN_ANSWER
    return answer_span(query, units[i], max_words) or ABSTAIN_ANSWER
