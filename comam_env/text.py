"""Dependency-free text helpers shared by the data layer, rewards and baselines.

* :func:`estimate_tokens` — the token count used everywhere a size is quoted
  (synthetic sizes, ``chunk_tokens``, memory size). It counts words and
  punctuation marks, the pieces a BPE tokenizer almost never merges across,
  so it tracks LLM token counts of English chat text within roughly ±15%
  without needing a tokenizer. It is documented, deterministic and cheap.
* :func:`word_tokens` / :func:`content_tokens` — lower-cased word tokens, and the
  same with stop words removed (docs/design.md §3 matching).
* :func:`split_units` — a memory text split into units: non-empty lines, with a
  line of more than :data:`MAX_UNIT_WORDS` words split into sentences.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")

#: A line with more words than this is split into sentences (docs/design.md §3: "~60 words").
MAX_UNIT_WORDS = 60

#: English stop words removed before matching. Kept small and explicit on purpose:
#: negations ("not", "no", "never") and preference verbs stay, because they carry
#: the difference between a preference and its update.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a an the and or but if then so of to in on at by for with from as into onto about over under
    is are was were be been being am do does did doing have has had having will would shall should
    can could may might must i me my mine myself we us our ours you your yours he him his she her
    hers it its they them their theirs this that these those there here what which who whom whose
    when where why how all any both each few more most other some such only own same than too very
    just also s t d ll m re ve y up down out off again further once user assistant i'm it's that's
    """.split()
)


def estimate_tokens(text: str) -> int:
    """Approximate LLM token count: number of words plus punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, keeping inner apostrophes)."""
    return [w.lower() for w in _WORD_RE.findall(text)]


def content_tokens(text: str) -> frozenset[str]:
    """Set of lower-cased word tokens with stop words removed."""
    return frozenset(w for w in word_tokens(text) if w not in STOP_WORDS)


def split_units(text: str, max_words: int = MAX_UNIT_WORDS) -> list[str]:
    """Split a memory text into units (docs/design.md §3).

    Units are the non-empty lines of ``text`` (stripped). A line longer than
    ``max_words`` words is split into sentences at ``.``, ``!`` or ``?``
    followed by white space; sentences are never merged back.
    """
    units: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if len(line.split()) > max_words:
            units.extend(s.strip() for s in _SENTENCE_RE.split(line) if s.strip())
        else:
            units.append(line)
    return units
