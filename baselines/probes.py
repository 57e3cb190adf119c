"""Answer-only bias probes as systems: ``random``, ``longest-option``, ``question-only``
for multiple choice, ``always-abstain`` and ``question-echo`` for open tracks (LoCoMo).

They never read the history. On the real PersonaMem 32k question file always
choosing the longest option scores 0.516 (docs/design.md §5), as high as most published
memory systems, so every result table reports these probes next to the systems.
On the synthetic data the generator balances option lengths, so all three should
sit near chance (0.25 for four options).

The option-picking rules themselves live in :mod:`comam_env.probes` (shared with
the leaderboard); this module adapts them to the :class:`~baselines.base.System`
protocol. The random probe draws from a generator seeded by ``(seed, question id)``
rather than one stream for the whole run, so a question's answer does not depend
on which questions came before it — a resumed or ``--limit``-ed run gives the same
answer for the same question.

The open-track probes show what an answer scores without reading any memory:
``always-abstain`` always says "Not mentioned in the conversation." (on LoCoMo it
is right on every category-5 question, about 22% of the real file), and
``question-echo`` answers with the question's own content words (token F1 rewards
an answer that repeats the question's words found in the gold answer). Each
probe answers only its kind of question (``kinds``); the harness refuses the
others with a one-line error.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from comam_env.data.schema import OPTION_LETTERS, Dataset, History, Question
from comam_env.text import estimate_tokens

from .base import Prediction


def _as_letter(choice, question: Question) -> str:
    """Normalise a probe's choice (letter, ``(a)`` label or index) to a letter."""
    if isinstance(choice, (int, np.integer)):
        return OPTION_LETTERS[int(choice)]
    text = str(choice).strip().strip("()").lower()
    if text not in question.option_labels:
        raise ValueError(f"probe returned {choice!r} for question {question.question_id!r}, not an option label")
    return text


def question_rng(seed: int, question_id: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the question id (stable across processes)."""
    digest = hashlib.sha256(question_id.encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


class _Probe:
    name = "probe"
    kinds: tuple[str, ...] = ("mcq",)

    def prepare(self, dataset: Dataset) -> None:  # probes need nothing
        return None

    def _choose(self, question: Question) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def answer(self, question: Question, history: History) -> Prediction:
        start = time.perf_counter()
        if not question.options:
            raise ValueError(f"system {self.name!r} answers multiple-choice questions only; "
                             f"{question.question_id!r} is open-ended")
        letter = self._choose(question)
        tokens_in = estimate_tokens(question.query) + sum(estimate_tokens(o) for o in question.options)
        return Prediction(
            answer=letter,
            tokens_in=tokens_in,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            memory_units=0,
            memory_tokens=0,
        )


class RandomProbe(_Probe):
    """A uniformly random option, seeded per question from ``seed`` and the question id."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def _choose(self, question: Question) -> str:
        from comam_env.probes import random_option

        return _as_letter(random_option(question, question_rng(self.seed, question.question_id)), question)


class LongestOptionProbe(_Probe):
    """Always the longest option (ties: the first)."""

    name = "longest-option"

    def _choose(self, question: Question) -> str:
        from comam_env.probes import longest_option

        return _as_letter(longest_option(question), question)


class QuestionOnlyProbe(_Probe):
    """The option most similar to the question text, without any memory."""

    name = "question-only"

    def _choose(self, question: Question) -> str:
        from comam_env.probes import question_similarity_option

        return _as_letter(question_similarity_option(question), question)


class _OpenProbe:
    """A probe of open tracks: an answer computed from the question alone."""

    name = "open-probe"
    kinds: tuple[str, ...] = ("open",)

    def prepare(self, dataset: Dataset) -> None:
        return None

    def _text(self, question: Question) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def answer(self, question: Question, history: History) -> Prediction:
        start = time.perf_counter()
        if question.options:
            raise ValueError(f"system {self.name!r} answers open questions only; "
                             f"{question.question_id!r} is multiple choice")
        text = self._text(question)
        return Prediction(answer=text, tokens_in=estimate_tokens(question.query), tokens_out=estimate_tokens(text),
                          latency_ms=(time.perf_counter() - start) * 1000.0, memory_units=0, memory_tokens=0)


class AlwaysAbstainProbe(_OpenProbe):
    """Always "Not mentioned in the conversation." (:data:`comam_env.extractive.ABSTAIN_ANSWER`)."""

    name = "always-abstain"

    def _text(self, question: Question) -> str:
        from comam_env.extractive import ABSTAIN_ANSWER

        return ABSTAIN_ANSWER


class QuestionEchoProbe(_OpenProbe):
    """The question's content words (question words such as "what"/"when" and stop words removed)."""

    name = "question-echo"

    def _text(self, question: Question) -> str:
        from comam_env.extractive import content_words

        return " ".join(content_words(question.query))
