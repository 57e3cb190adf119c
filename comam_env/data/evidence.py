"""Gold evidence for PersonaMem-style questions: a heuristic annotator and JSONL import/export.

Real PersonaMem publishes no gold evidence (the CoMAM paper had an LLM extract
it), so local coverage rewards need an annotation. Two sources are supported:

* **Evidence JSONL** (any annotator, e.g. an LLM; the synthetic generator
  writes one): one JSON object per line,
  ``{"question_id": "...", "evidence": [message indices into the shared context]}``.
  :func:`read_evidence_jsonl` validates every line (bad JSON, missing or
  non-string ``question_id``, indices that are not integers ≥ 0, duplicate ids)
  and :func:`write_evidence_jsonl` writes atomically.
* **Heuristic annotator** (:func:`annotate_evidence`), docs/design.md §6:

  1. *Reference point.* Walk back from ``end_index`` summing
     :func:`comam_env.text.estimate_tokens` of the messages; the reference point
     is the first message at which the sum reaches ``distance_to_ref_in_tokens``
     (clamped to the start of the history). Without a distance the whole
     visible history is the window.
  2. *Window.* The messages whose token distance from ``end_index`` lies within
     ``distance ± max(window_min_tokens, window_rel * distance)``
     (defaults 1,500 tokens / 15 %): the file's distances come from a real
     tokenizer while ours is an estimate, so the window absorbs that error.
  3. *Ranking.* Every *user* message in the window is scored by content-token
     overlap with the question plus the correct option,
     ``|A ∩ B| / sqrt(|A|·|B|)`` (a set cosine, so long messages do not win by
     size); ties go to the message nearer the reference point.
  4. *Keep* the top ``k`` (default 3) with a positive score, returned in
     history order. If no user message overlaps at all, the user message
     nearest the reference point is returned (the reference region is still the
     best guess); a history with no user message before ``end_index`` gives
     ``None`` (evidence unknown — rewards then report "undefined").
"""

from __future__ import annotations

import bisect
import json
import math
import os
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Mapping, Sequence

from ..text import content_tokens, estimate_tokens
from .errors import DataFormatError
from .paths import atomic_writer
from .schema import History


@dataclass(frozen=True)
class AnnotatorConfig:
    """Knobs of the heuristic evidence annotator."""

    k: int = 3
    """number of user messages kept (the top-k by similarity)"""
    window_min_tokens: int = 1500
    """half-width of the search window around the reference point, at least this many tokens"""
    window_rel: float = 0.15
    """half-width of the window as a fraction of the distance to the reference point"""


class HistoryIndex:
    """Per-history caches the annotator needs (token prefix sums, content-token sets).

    Built once per history and reused for every question asked on it, which
    keeps annotating a 1M-token split linear in the history length.
    """

    def __init__(self, history: History) -> None:
        self.history = history
        # prefix[i] = estimated tokens of messages[:i]
        self.prefix = [0, *accumulate(estimate_tokens(c) for c in history.contents)]
        self.user_indices = [i for i, r in enumerate(history.roles) if r == "user"]
        self._tokens: dict[int, frozenset[str]] = {}

    def tokens(self, i: int) -> frozenset[str]:
        t = self._tokens.get(i)
        if t is None:
            t = self._tokens[i] = content_tokens(self.history.contents[i])
        return t


def _set_cosine(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))


def annotate_evidence(history: History | HistoryIndex, end_index: int, query: str, gold_text: str,
                      distance_tokens: int | None = None,
                      config: AnnotatorConfig = AnnotatorConfig()) -> tuple[int, ...] | None:
    """Heuristic evidence message indices for one question (see the module docstring)."""
    index = history if isinstance(history, HistoryIndex) else HistoryIndex(history)
    end = max(0, min(end_index, len(index.history)))
    users = index.user_indices[: bisect.bisect_left(index.user_indices, end)]
    if not users:
        return None
    prefix = index.prefix
    total = prefix[end]
    if distance_tokens is None or distance_tokens < 0:
        ref_tokens = 0  # reference point = start of the history; window covers everything
        lo_tok, hi_tok = 0, total
    else:
        half = max(config.window_min_tokens, config.window_rel * distance_tokens)
        ref_tokens = max(0, total - distance_tokens)
        lo_tok, hi_tok = max(0, ref_tokens - half), min(total, ref_tokens + half)
    # message j spans tokens [prefix[j], prefix[j+1]); keep those overlapping [lo_tok, hi_tok]:
    # first = the message holding lo_tok, stop = the first message starting at or after hi_tok
    first = max(0, bisect.bisect_right(prefix, lo_tok) - 1)
    stop = max(first + 1, bisect.bisect_left(prefix, hi_tok))
    lo_u = bisect.bisect_left(users, first)
    hi_u = bisect.bisect_left(users, stop)
    window = users[lo_u:hi_u]
    ref_msg = max(0, bisect.bisect_right(prefix, ref_tokens) - 1)
    target = content_tokens(f"{query} {gold_text}")
    scored = [(_set_cosine(index.tokens(i), target), -abs(i - ref_msg), i) for i in window]
    scored = [s for s in scored if s[0] > 0]
    if scored:
        scored.sort(reverse=True)
        return tuple(sorted(i for _, _, i in scored[: config.k]))
    nearest = min(users, key=lambda i: (abs(i - ref_msg), i))
    return (nearest,)


def read_evidence_jsonl(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Read an evidence JSONL file into ``{question_id: (message indices, …)}``.

    Blank lines are ignored. Raises :class:`DataFormatError` naming the file,
    line and field for any malformed line.
    """
    from .jsonl import iter_jsonl

    path = Path(path)
    out: dict[str, tuple[int, ...]] = {}
    error = lambda p, message, lineno: DataFormatError(p, message, line=lineno)  # noqa: E731
    for lineno, obj in iter_jsonl(path, error):
        if not isinstance(obj, dict):
            raise DataFormatError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
        qid = obj.get("question_id")
        if not isinstance(qid, str) or not qid:
            raise DataFormatError(path, f"missing or non-string question id: {qid!r}", line=lineno,
                                  field="question_id")
        ev = obj.get("evidence")
        if not isinstance(ev, list):
            raise DataFormatError(path, f"expected a list of message indices, got {ev!r}", line=lineno,
                                  field="evidence")
        for v in ev:
            # bool is an int subclass; True is not a message index
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise DataFormatError(path, f"message indices must be integers >= 0, got {v!r}",
                                      line=lineno, field="evidence")
        if qid in out:
            raise DataFormatError(path, f"duplicate question id {qid!r}", line=lineno, field="question_id")
        out[qid] = tuple(sorted(set(ev)))
    return out


def write_evidence_jsonl(path: str | os.PathLike, mapping: Mapping[str, Sequence[int] | None]) -> Path:
    """Write ``{question_id: indices}`` as evidence JSONL, atomically (``None`` entries are skipped)."""
    with atomic_writer(path, "w", newline="\n") as f:
        for qid, ev in mapping.items():
            if ev is None:
                continue
            indices = [int(i) for i in ev]
            if any(i < 0 for i in indices):
                raise ValueError(f"question {qid!r}: evidence indices must be >= 0, got {indices}")
            f.write(json.dumps({"question_id": qid, "evidence": indices}) + "\n")
    return Path(path)
