"""Scoring of validated submissions (``comam-env leaderboard score``).

For an entry with predictions (kind ``predictions``) on the questions of its
declared split:

* **accuracy** — the mean of :func:`comam_env.score_answer` (the env's and the
  harness's rule): multiple-choice tracks, the answer letter is the gold letter
  (``""`` = no answer, wrong); open tracks (LoCoMo), token F1, and category-5
  questions are correct when the answer only abstains; reported under
  ``metric: "token_f1"``;
* **95% confidence interval** — percentile bootstrap of the mean over
  questions, ``n_resamples`` resamples drawn by ``numpy.random.default_rng(seed)``
  (same algorithm and seeds as the evaluation harness's report, so the numbers
  agree); the same for each question type, with seed ``seed + 1 + k`` for the
  k-th type in sorted order. A constant score vector has the degenerate interval
  ``[x, x]``;
* **efficiency** — mean / median / total of ``tokens_in`` and ``tokens_out`` and
  mean / median / 90th percentile of ``latency_ms`` over the predictions that
  report them (``n`` says how many);
* **margin over the answer-only probes** (docs/design.md §5) on the same questions:
  ``longest-option`` and ``question-only`` (:mod:`comam_env.probes`) and the
  *expected* accuracy of a uniformly random choice (mean of ``1/#options``, no
  sampling noise); ``margin`` = accuracy − probe accuracy, and
  ``margin_over_best_probe`` against the strongest of the three. Open tracks
  (LoCoMo) get the open-track probes instead: ``always-abstain`` and
  ``question-echo`` (the question's own content words).

Kind ``reported`` (published numbers nobody re-ran here) keeps its
``reported_accuracy`` with ``accuracy_ci95: null``, ``verified: false`` and no
per-type or probe figures — nothing is invented. Kind ``hidden-run``: with
``COMAM_HIDDEN_SEED`` set (and the entry's signature verified by validation) the
score is recomputed from the predictions on the regenerated hidden split
(``verified: true``); without it the stored ``score.json`` is returned with
``verified: false`` and a ``verification`` note — the page lists it as
unverified and does not rank it. Kind ``agent`` has nothing to score until an
operator runs it.

Output is a plain dict; :func:`dumps` renders it as deterministic JSON (sorted
keys, fixed indentation), so the same input scores byte-identically twice.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from typing import Any, Mapping, Sequence

import numpy as np

from comam_env.stats import DEFAULT_RESAMPLES
from comam_env.stats import bootstrap_ci as _bootstrap_ci

from .hidden import (
    SIGNATURE_FIELD,
    entry_question_ids,
    secret_from_env,
    split_for_entry,
)
from .validate import VERIFIED, SubmissionError, load_valid, split_ids, track_dataset

CONFIDENCE = 0.95
#: metadata fields copied into the score (for the rendered table).
INFO_FIELDS = ("authors", "url", "description", "models", "training_method", "open_source", "date", "seeds",
               "command", "system", "reported_source", "entry_point", "notes")


class ScoreError(ValueError):
    """An entry cannot be scored (e.g. an agent entry that has not been run)."""


def bootstrap_ci(values: Sequence[float], seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                 confidence: float = CONFIDENCE) -> list[float] | None:
    """:func:`comam_env.stats.bootstrap_ci` as a JSON-ready list (``None`` when empty)."""
    ci = _bootstrap_ci(values, seed=seed, n_resamples=n_resamples, confidence=confidence)
    return None if ci is None else list(ci)


def question_score(answer: str, question) -> float:
    """:func:`comam_env.score_answer`: the env's and the harness's answer rule (eq. 12 for
    multiple choice, token F1 / abstention for open questions)."""
    from comam_env.scoring import score_answer

    return score_answer(question, answer)


def _mean(xs: Sequence[float]) -> float | None:
    return float(math.fsum(xs) / len(xs)) if xs else None


def _summary(values: Sequence[float], *, p90: bool = False, total: bool = False) -> dict:
    out: dict[str, Any] = {"n": len(values), "mean": _mean(values),
                           "median": float(statistics.median(values)) if values else None}
    if total:
        out["total"] = float(math.fsum(values)) if values else None
    if p90:
        out["p90"] = float(np.quantile(np.asarray(values, dtype=np.float64), 0.9)) if values else None
    return out


def probe_scores(questions: Sequence[Any]) -> dict[str, float | None]:
    """Scores of the answer-only probes: the option probes on multiple-choice ``questions``,
    the open-track probes (``always-abstain``, ``question-echo``, as in ``comam-env evaluate``)
    on open ones."""
    from comam_env.probes import longest_option, question_similarity_option

    mcq = [q for q in questions if q.options]
    out: dict[str, float | None] = {}
    if mcq:
        out.update({
            "longest-option": _mean([1.0 if longest_option(q) == q.answer else 0.0 for q in mcq]),
            "question-only": _mean([1.0 if question_similarity_option(q) == q.answer else 0.0 for q in mcq]),
            "random-expectation": _mean([1.0 / len(q.options) for q in mcq]),
        })
    open_qs = [q for q in questions if not q.options]
    if open_qs:
        from comam_env.extractive import ABSTAIN_ANSWER, content_words
        from comam_env.scoring import score_answer

        out["always-abstain"] = _mean([score_answer(q, ABSTAIN_ANSWER) for q in open_qs])
        out["question-echo"] = _mean([score_answer(q, " ".join(content_words(q.query))) for q in open_qs])
    return out


def _info(meta: Mapping[str, Any]) -> dict:
    return {k: meta[k] for k in INFO_FIELDS if k in meta}


def score_predictions(meta: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]], dataset,
                      question_ids: Sequence[str] | None = None, *, seed: int = 0,
                      n_resamples: int = DEFAULT_RESAMPLES, entry: str | None = None) -> dict:
    """Score validated ``predictions`` against ``dataset`` (see the module docstring).

    ``question_ids`` fixes the order of the scored questions (default: the order of
    ``predictions``); every id must have a prediction.
    """
    by_id = {p["question_id"]: p for p in predictions}
    ids = list(question_ids) if question_ids is not None else [p["question_id"] for p in predictions]
    missing = [q for q in ids if q not in by_id]
    if missing:
        raise ScoreError(f"{len(missing)} questions have no prediction (e.g. {missing[0]!r})")
    questions = [dataset.question(q) for q in ids]
    scores = [question_score(by_id[q.question_id]["answer"], q) for q in questions]
    mcq = all(q.options for q in questions)
    acc = _mean(scores)
    by_type: dict[str, list[float]] = {}
    for q, s in zip(questions, scores):
        by_type.setdefault(q.qtype, []).append(s)
    per_type = {}
    for k, t in enumerate(sorted(by_type)):
        vals = by_type[t]
        per_type[t] = {"n": len(vals), "accuracy": _mean(vals),
                       "ci95": bootstrap_ci(vals, seed=seed + 1 + k, n_resamples=n_resamples)}
    preds = [by_id[q] for q in ids]

    def field(name: str) -> list[float]:
        return [float(p[name]) for p in preds if name in p]

    probes = probe_scores(questions)
    probe_block = {name: {"accuracy": v, "margin": (acc - v) if acc is not None and v is not None else None}
                   for name, v in probes.items()}
    best = max(probes.values()) if probes else None
    return {
        "entry": entry,
        "name": meta.get("name"),
        "kind": meta.get("kind", "predictions"),
        "track": meta.get("track"),
        "split": meta.get("split"),
        "split_seed": meta.get("split_seed", 0),
        "verified": True,
        "metric": "accuracy" if mcq else "token_f1",
        "n_questions": len(ids),
        "n_correct": int(sum(1 for s in scores if s == 1.0)) if mcq else None,
        "n_unanswered": sum(1 for p in preds if p["answer"] == ""),
        "accuracy": acc,
        "accuracy_ci95": bootstrap_ci(scores, seed=seed, n_resamples=n_resamples),
        "per_type": per_type,
        "efficiency": {
            "tokens_in": _summary(field("tokens_in"), total=True),
            "tokens_out": _summary(field("tokens_out"), total=True),
            "latency_ms": _summary(field("latency_ms"), p90=True),
        },
        "probes": probe_block,
        "margin_over_best_probe": (acc - best) if acc is not None and best is not None else None,
        "bootstrap": {"seed": seed, "n_resamples": n_resamples, "confidence": CONFIDENCE},
        "info": _info(meta),
    }


def score_reported(meta: Mapping[str, Any], entry: str | None = None) -> dict:
    """A published number: kept as is, no interval, no per-type or probe figures."""
    return {
        "entry": entry,
        "name": meta.get("name"),
        "kind": "reported",
        "track": meta.get("track"),
        "split": meta.get("split"),
        "split_seed": meta.get("split_seed", 0),
        "verified": False,
        "metric": "accuracy",
        "n_questions": None,
        "n_correct": None,
        "n_unanswered": None,
        "accuracy": float(meta["reported_accuracy"]),
        "accuracy_ci95": None,
        "per_type": {},
        "efficiency": None,
        "probes": {},
        "margin_over_best_probe": None,
        "bootstrap": None,
        "info": _info(meta),
    }


def score_entry(path: str | os.PathLike, *, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                dataset=None) -> dict:
    """Validate and score one submission folder/archive.

    Raises :class:`~leaderboard.validate.SubmissionError` (invalid) or
    :class:`ScoreError` (nothing to score).
    """
    sub = load_valid(path, dataset=dataset)
    meta = sub.metadata
    kind = sub.kind
    if kind == "reported":
        return score_reported(meta, entry=sub.name)
    if kind == "agent":
        raise ScoreError(f"{path}: an 'agent' entry has no predictions; an operator runs it with "
                         f"`comam-env leaderboard run-agent {path} --track {meta.get('track')}`")
    if kind == "hidden-run":
        return _score_hidden_run(sub, seed=seed, n_resamples=n_resamples)
    ds = dataset if dataset is not None else track_dataset(meta["track"])
    ids = split_ids(meta["track"], ds, meta["split"], meta.get("split_seed", 0))
    return score_predictions(meta, sub.predictions or [], ds, ids, seed=seed, n_resamples=n_resamples,
                             entry=sub.name)


def _score_hidden_run(sub, *, seed: int, n_resamples: int) -> dict:
    """Recomputed from the predictions when validation verified the signature, else the stored score."""
    meta = sub.metadata
    if sub.verification == VERIFIED:
        split = split_for_entry(meta, secret_from_env())
        ids = entry_question_ids(split, meta.get("question_limit"))
        score = score_predictions(meta, sub.predictions or [], split.gold, ids, seed=seed, n_resamples=n_resamples,
                                  entry=sub.name)
    else:
        score = {k: v for k, v in (sub.score or {}).items() if k != SIGNATURE_FIELD}
        score.update({"entry": sub.name, "kind": "hidden-run", "name": meta.get("name"), "track": meta.get("track"),
                      "split": meta.get("split"), "verified": False, "info": _info(meta)})
    score["verification"] = sub.verification
    return score


def dumps(score: Any) -> str:
    """Deterministic JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(score, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


__all__ = ["bootstrap_ci", "question_score", "probe_scores", "score_predictions", "score_reported", "score_entry",
           "dumps", "ScoreError", "SubmissionError", "DEFAULT_RESAMPLES"]
