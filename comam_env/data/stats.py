"""Summary statistics of a dataset (what ``comam-env data stats`` prints).

:func:`dataset_stats` works on a loaded :class:`Dataset`;
:func:`questions_stats` on questions alone (a folder holding only a PersonaMem
questions csv, like the shared real 32k file): history counts and token
lengths then come from the csv's ``shared_context_id`` and
``context_length_in_tokens`` columns instead of the histories themselves.

Token lengths use :func:`comam_env.text.estimate_tokens` (the project's one
size measure). *Evidence coverage* is the fraction of questions whose evidence
is known and non-empty. The longest-option probe accuracy (docs/design.md §5) is over
multiple-choice questions only (``None`` when there are none).
"""

from __future__ import annotations

import statistics
from collections import Counter
from itertools import accumulate
from typing import Any, Mapping, Sequence

from ..probes import longest_option, probe_accuracy
from ..text import estimate_tokens
from .schema import Dataset, Question


def _summary(values: Sequence[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "mean": round(statistics.fmean(values), 1),
            "median": statistics.median(values), "max": max(values)}


def _question_part(questions: Sequence[Question], evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    mcq = [q for q in questions if q.options]
    acc = probe_accuracy(mcq, longest_option) if mcq else None

    def has_ev(q: Question) -> bool:
        ev = q.evidence if evidence is None else evidence.get(q.question_id)
        return bool(ev)

    return {
        "questions": len(questions),
        "questions_per_type": dict(sorted(Counter(q.qtype for q in questions).items())),
        "options_per_question": dict(sorted(Counter(len(q.options) for q in questions).items())),
        "personas": len({q.persona_id for q in questions if q.persona_id is not None}),
        "evidence_coverage": (sum(has_ev(q) for q in questions) / len(questions)) if questions else None,
        "longest_option_accuracy": None if acc is None else round(acc, 4),
    }


def dataset_stats(dataset: Dataset) -> dict[str, Any]:
    """Statistics of a loaded dataset as a JSON-serialisable dict."""
    # prefix sums per history, so each question's visible length is one lookup
    prefix = {hid: [0, *accumulate(estimate_tokens(c) for c in h.contents)] for hid, h in dataset.histories.items()}
    hist_tokens = {hid: p[-1] for hid, p in prefix.items()}
    visible = [prefix[q.history_id][min(q.end_index, len(prefix[q.history_id]) - 1)] for q in dataset.questions]
    out = {
        "name": dataset.name,
        "source": dataset.source,
        "histories": len(dataset.histories),
        "messages": sum(len(h) for h in dataset.histories.values()),
        "sessions": sum(h.num_sessions for h in dataset.histories.values()),
        "history_tokens": _summary(list(hist_tokens.values())),
        "visible_context_tokens": _summary(visible),
        "token_source": "estimate_tokens",
        **_question_part(dataset.questions),
        "evidence_source": dataset.meta.get("evidence"),
        "profiles": len(dataset.profiles),
        "skipped": dict(dataset.skipped),
    }
    return out


def questions_stats(questions: Sequence[Question], *, name: str, source: str,
                    skipped: Mapping[str, int] | None = None,
                    evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Statistics from questions alone (no context file)."""
    per_hist: dict[str, int] = {}
    for q in questions:
        n = q.meta.get("context_length_in_tokens")
        if isinstance(n, int):
            per_hist[q.history_id] = max(per_hist.get(q.history_id, 0), n)
    return {
        "name": name,
        "source": source,
        "histories": len({q.history_id for q in questions}),
        "messages": None,
        "sessions": None,
        "history_tokens": _summary(list(per_hist.values())),
        "visible_context_tokens": _summary([q.meta["context_length_in_tokens"] for q in questions
                                            if isinstance(q.meta.get("context_length_in_tokens"), int)]),
        "token_source": "csv column context_length_in_tokens (no context file)",
        **_question_part(questions, evidence if evidence is not None else {}),
        "evidence_source": "file" if evidence is not None else None,
        "profiles": 0,
        "skipped": dict(skipped or {}),
    }


def format_stats(stats: Mapping[str, Any]) -> str:
    """Human-readable rendering of :func:`dataset_stats` / :func:`questions_stats` output."""
    def tok(s: Any) -> str:
        return "n/a" if not s else f"min {s['min']}, median {s['median']}, mean {s['mean']}, max {s['max']}"

    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"dataset:               {stats['name']}",
        f"source:                {stats['source']}",
        f"histories:             {stats['histories']}"
        + (f" ({stats['messages']} messages, {stats['sessions']} sessions)" if stats.get("messages") is not None else ""),
        f"history tokens:        {tok(stats['history_tokens'])}",
        f"visible context:       {tok(stats['visible_context_tokens'])}",
        f"  (tokens from {stats['token_source']})",
        f"questions:             {stats['questions']} ({stats['personas']} personas)",
    ]
    for t, n in stats["questions_per_type"].items():
        lines.append(f"  {t:<44} {n}")
    lines += [
        f"evidence coverage:     {pct(stats['evidence_coverage'])}"
        + (f" (source: {stats['evidence_source']})" if stats.get("evidence_source") else ""),
        f"longest-option probe:  {pct(stats['longest_option_accuracy'])}",
    ]
    if stats.get("profiles"):
        lines.append(f"gold profiles:         {stats['profiles']}")
    if stats.get("skipped"):
        lines.append("skipped rows:          " + ", ".join(f"{k}: {v}" for k, v in stats["skipped"].items()))
    return "\n".join(lines)
