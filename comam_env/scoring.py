"""The answer rule (eq. 12): one function, :func:`score_answer`, for the environment's
global reward, the evaluation harness and the leaderboard scorer.

Answer reward (eq. 12)
----------------------
Multiple choice follows PersonaMem's published rule (see :func:`option_sets`):
the text after the last ``<final_answer>`` is searched for ``(a)``…``(d)``
letters, falling back to *bare* letters when there are none; the answer is
correct when exactly one distinct letter is found and it is the gold one;
otherwise the same rule is applied to the whole response.
A **bare letter** is one of the option letters (any case) standing alone as a
word: not preceded or followed by a letter, digit, underscore or apostrophe
(so ``"b"``, ``"b."``, ``"B)"`` and ``"is c,"`` count; the ``d`` of ``"I'd"``
and letters inside words do not). Note that the English article "a" is a bare
letter too — that is PersonaMem's rule, kept on purpose so results compare.
Compared with PersonaMem's ``\\b([a-d])\\b`` the only difference is the apostrophe.

Open questions (LoCoMo)
-----------------------
The *answer text* is the content of the last ``<final_answer>`` tag when there is
one, else the whole response.

* Categories 1–4 (and open questions without a category) score token F1 (SQuAD
  normalisation: lower case, punctuation and the articles a/an/the removed, white
  space collapsed) of the answer text against ``question.answer``. An abstention
  phrase is scored like any other words: it can only lower precision, so adding
  "(unknown)" to a content answer never raises its score.
* Category 5 (adversarial, ``question.meta["category"] == 5``: the question asks
  about something the conversation never says; ``question.answer`` holds the trap
  answer) scores 1.0 only when the answer text **abstains and asserts nothing
  else** (:func:`abstains_only`): it contains an abstention phrase
  (:data:`ABSTENTION_PHRASES`, whole words, case-insensitive) and, once those
  phrases are removed, every remaining word is a stop word, a word about the
  missing information (:data:`ABSTENTION_WORDS`: "conversation", "information",
  "available", …) or a word of the question restated — never a word of the trap
  answer. Otherwise 0.0.

Examples (question "What did Melanie realize after the charity race?", trap
answer "self-care is important", category 5):

* ``Not mentioned in the conversation.`` → 1.0
* ``The conversation does not say what Melanie realized`` → 1.0
* ``unknown`` → 1.0
* ``self-care is important`` → 0.0 (the trap answer)
* ``Self-care is important (unknown)`` → 0.0 (the trap answer plus an abstention)
* ``I don't know, maybe that running helps`` → 0.0 (asserts "running helps")

and for a category 1–4 question with gold answer "7 May 2023": ``7 May 2023`` →
1.0, ``7 May 2023 (unknown)`` → 0.857 (F1, one extra token), ``unknown`` → 0.0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from comam_env.data.schema import OPTION_LETTERS, Question
from comam_env.text import STOP_WORDS

__all__ = [
    "ABSTENTION_PHRASES",
    "extract_tag",
    "option_sets",
    "parse_option",
    "is_option_correct",
    "normalize_answer",
    "token_f1",
    "is_abstention",
    "ABSTENTION_WORDS",
    "abstains_only",
    "answer_text",
    "AnswerParts",
    "answer_reward",
    "score_answer",
]

#: Phrases that count as "the information is not available" for LoCoMo category 5.
ABSTENTION_PHRASES: tuple[str, ...] = (
    "not mentioned",
    "never mentioned",
    "no mention",
    "not mention",
    "no information",
    "not enough information",
    "insufficient information",
    "not available",
    "unavailable",
    "unknown",
    "not known",
    "cannot be determined",
    "can't be determined",
    "cannot determine",
    "can't determine",
    "cannot be answered",
    "can't be answered",
    "unanswerable",
    "not answerable",
    "not specified",
    "not stated",
    "not provided",
    "not discussed",
    "no record",
    "does not say",
    "doesn't say",
    "do not know",
    "don't know",
)



# ------------------------------------------------------------------ answer parsing


def extract_tag(text: str, tag: str) -> str | None:
    """Content of the last ``<tag>…</tag>`` in ``text`` (stripped), or ``None``.

    The tag name is matched case-insensitively. When the last opening tag has no
    closing tag after it, the content runs to the end of the text (models often
    stop before closing). A closing tag without an opening tag gives ``None``.
    """
    if not text:
        return None
    low = text.lower()
    open_tag = f"<{tag.lower()}>"
    start = low.rfind(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = low.find(f"</{tag.lower()}>", start)
    return (text[start:] if end < 0 else text[start:end]).strip()


@lru_cache(maxsize=16)
def _option_patterns(n_options: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    if not 1 <= n_options <= len(OPTION_LETTERS):
        raise ValueError(f"n_options must be in 1..{len(OPTION_LETTERS)}, got {n_options}")
    cls = "".join(OPTION_LETTERS[:n_options])
    paren = re.compile(rf"\(([{cls}])\)")
    bare = re.compile(rf"(?<![\w'’])([{cls}])(?![\w'’])")
    return paren, bare


def _letters(text: str, n_options: int) -> frozenset[str]:
    paren, bare = _option_patterns(n_options)
    low = text.lower()
    found = paren.findall(low)
    if not found:
        found = bare.findall(low)
    return frozenset(found)


def _final_answer_tail(response: str) -> str:
    """PersonaMem's "after the last <final_answer>" text (one trailing close tag removed)."""
    tail = response.strip()
    low = tail.lower()
    k = low.rfind("<final_answer>")
    if k >= 0:
        tail = tail[k + len("<final_answer>"):].strip()
    if tail.lower().endswith("</final_answer>"):
        tail = tail[: -len("</final_answer>")].strip()
    return tail


def option_sets(response: str, n_options: int = 4) -> tuple[frozenset[str], frozenset[str]]:
    """The two letter sets PersonaMem's rule looks at.

    Returns ``(tail, whole)``: the distinct option letters in the text after the
    last ``<final_answer>`` (the whole response when there is no tag) and in the
    whole response. In each text, parenthesised letters ``(x)`` are collected;
    bare letters only when there are no parenthesised ones.
    """
    return _letters(_final_answer_tail(response), n_options), _letters(response, n_options)


def parse_option(response: str, n_options: int = 4) -> str | None:
    """The option letter a response chooses (PersonaMem's rule), or ``None``.

    The tail (text after the last ``<final_answer>``) decides when it holds
    exactly one distinct letter; otherwise the whole response decides when it
    holds exactly one; otherwise the response is ambiguous or empty → ``None``.
    """
    for letters in option_sets(response or "", n_options):
        if len(letters) == 1:
            return next(iter(letters))
    return None


def is_option_correct(response: str, gold: str, n_options: int = 4) -> bool:
    """PersonaMem's correctness test exactly: tail letters == {gold} or whole-response
    letters == {gold}.

    This differs from ``parse_option(response) == gold`` in one corner: a tail
    with one *bare* letter and a body with one different *parenthesised* letter
    is correct for either letter, as in PersonaMem's code.
    """
    g = gold.strip().strip("()").strip().lower()
    tail, whole = option_sets(response or "", n_options)
    return tail == {g} or whole == {g}


# ---------------------------------------------------------------- open questions

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse spaces."""
    text = str(text).lower().translate(_PUNCT_TABLE)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style token F1 of two answers. When either side normalises to no
    tokens, F1 is 1.0 if both are empty and 0.0 otherwise."""
    p = normalize_answer(prediction).split()
    g = normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision = common / len(p)
    recall = common / len(g)
    return 2 * precision * recall / (precision + recall)


def _norm_phrase_text(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").lower()
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


_ABSTENTION_RE = re.compile(
    r"(?<![\w'])(?:" + "|".join(re.escape(_norm_phrase_text(p)) for p in ABSTENTION_PHRASES) + r")(?![\w'])"
)


def is_abstention(text: str) -> bool:
    """Whether ``text`` says the information is not available (:data:`ABSTENTION_PHRASES`,
    matched as whole words after lower-casing and folding punctuation to spaces).

    This only detects the phrase; whether an answer *only* abstains is
    :func:`abstains_only` (the category-5 rule)."""
    return bool(_ABSTENTION_RE.search(_norm_phrase_text(text or "")))


#: Words an abstention may use besides its phrase without asserting anything: they
#: talk about the missing information, not about the question's subject.
ABSTENTION_WORDS: frozenset[str] = frozenset(
    """
    information info conversation conversations chat chats dialogue dialog history memory memories record records
    context text transcript data detail details evidence answer answers question questions topic
    available mentioned mention mentions stated state specified provided given said say says told tell shared
    discussed discuss talked talk known know knows clear unclear sure unsure certain determine determined
    found find anywhere nothing anything none neither nor not no never nobody cannot can't don't doesn't didn't
    isn't aren't wasn't weren't won't there's unfortunately sorry afraid unable able enough insufficient seem seems
    appear appears exist exists based far whether either one any called named name exactly specific specifically
    really actually happened
    """.split()
)


def _stem(word: str) -> str:
    """A light stem so that a restated question word still matches ("realized"/"realize")."""
    word = word.removesuffix("'s").removesuffix("'")
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in _norm_phrase_text(text).split() if w not in STOP_WORDS}


def abstains_only(text: str, question: Question | None = None) -> bool:
    """Whether ``text`` abstains *and asserts nothing else* (the category-5 rule).

    True when ``text`` contains an abstention phrase (:func:`is_abstention`) and,
    after removing every such phrase, each remaining non-stop word is in
    :data:`ABSTENTION_WORDS` or (when ``question`` is given) restates a word of
    ``question.query`` that is not a word of the trap answer ``question.answer``.
    Words are compared after lower-casing, punctuation folding and a light
    suffix stem (``-ing``, ``-ed``, ``-es``, ``-s``, ``-e``, ``'s``).
    """
    norm = _norm_phrase_text(text or "")
    if not _ABSTENTION_RE.search(norm):
        return False
    allowed = {_stem(w) for w in ABSTENTION_WORDS}
    if question is not None:
        allowed |= _stems(question.query) - _stems(question.answer)
    return _stems(_ABSTENTION_RE.sub(" ", norm)) <= allowed


@dataclass(frozen=True)
class AnswerParts:
    """The global (answer) reward and how it was obtained.

    Attributes:
        reward: 1.0/0.0 for multiple choice and adversarial questions, token F1 in
            [0, 1] for open questions.
        parsed: the parsed option letter (multiple choice; ``None`` when no single
            letter was found) or the answer text that was scored (open questions).
        kind: ``"mcq"``, ``"open"`` or ``"adversarial"``.
    """

    reward: float
    parsed: str | None
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _category(question: Question) -> int | None:
    cat = question.meta.get("category")
    try:
        return int(cat) if cat is not None else None
    except (TypeError, ValueError):
        return None


def answer_text(response: str) -> str:
    """The answer part of a response: the last ``<final_answer>`` content, else all of it."""
    tagged = extract_tag(response, "final_answer")
    return (tagged if tagged is not None else response).strip()


def answer_reward(response: str | bytes | None, question: Question) -> AnswerParts:
    """Global reward of a response to ``question`` (eq. 12, see module docstring)."""
    if response is None:
        response = ""
    elif isinstance(response, (bytes, bytearray)):
        response = bytes(response).decode("utf-8", errors="replace")
    elif not isinstance(response, str):
        raise TypeError(f"response must be str, got {type(response).__name__}")
    if question.is_multiple_choice:
        n = len(question.options)
        # is_option_correct and parse_option on one scan of the response.
        tail, whole = option_sets(response, n)
        g = question.answer.strip().strip("()").strip().lower()
        correct = tail == {g} or whole == {g}
        parsed = next((next(iter(s)) for s in (tail, whole) if len(s) == 1), None)
        return AnswerParts(1.0 if correct else 0.0, parsed, "mcq")
    text = answer_text(response)
    if _category(question) == 5:
        return AnswerParts(1.0 if abstains_only(text, question) else 0.0, text, "adversarial")
    return AnswerParts(token_f1(text, question.answer), text, "open")


def score_answer(question: Question, response: str | bytes | None) -> float:
    """The answer score of ``response`` to ``question`` in [0, 1] (eq. 12; see the module docstring).

    The one public answer rule: the environment's global reward, ``baselines`` evaluation
    and the leaderboard scorer all call it (``answer_reward(response, question).reward``).
    """
    return float(answer_reward(response, question).reward)
