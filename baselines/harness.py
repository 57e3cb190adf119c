"""The evaluation loop shared by every system (``comam-env evaluate``).

For each question of a split, in the given order, the harness calls
``system.answer(question, history)`` and appends one line to the predictions file
in the leaderboard format (docs/architecture.md ``## Predictions``): ``question_id``,
``answer``, ``retrieved_memory``, ``tokens_in``, ``tokens_out``, ``latency_ms``.
Extra per-question data that the leaderboard does not need (local reward per
channel, memory size) goes to a sidecar ``<predictions>.details.jsonl``.

**Resume.** Lines are appended and flushed one at a time. When the predictions
file already exists, its lines are validated (file and line named on error); a
torn last line (no trailing newline or not parseable, the mark of a killed
process) is dropped by rewriting the file atomically; questions already present
are not recomputed and the remaining ones are appended. The result is the same
file an uninterrupted run writes (except ``latency_ms``), with no duplicates.
A line for a question outside the evaluated set is an error (a different split
or dataset was probably meant).

**Report.** Accuracy overall and per question type with 95% percentile
bootstrap intervals (``comam_env.stats.bootstrap_ci``: scipy, ``n_resamples`` resamples seeded by
``seed``: deterministic), mean local reward per channel (questions where it is
undefined are left out and counted), memory size (units, tokens), tokens in/out
and latency per query, and the answer-only probes' accuracy on the same questions
(docs/design.md §5: the longest-option probe alone scores 0.516 on real PersonaMem 32k).

Answers are scored by :func:`comam_env.score_answer`, the one rule the env's global
reward and the leaderboard use too: eq. 12 for multiple choice (``"(c)"`` and ``"C"``
count as ``"c"``), token F1 for open questions, and the abstention rule for LoCoMo
category 5 (see :mod:`comam_env.scoring`).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Iterable, Sequence


from comam_env.data.schema import Dataset, Question
from comam_env.scoring import score_answer
from comam_env.stats import DEFAULT_RESAMPLES, bootstrap_ci

from .base import OPEN_PROBES, PROBES, Prediction, System, check_kinds, get_system, question_kind, system_kinds

#: Bootstrap resamples for the confidence intervals.
#: The fields of a leaderboard prediction line.
PREDICTION_FIELDS = ("question_id", "answer", "retrieved_memory", "tokens_in", "tokens_out", "latency_ms")


class PredictionFileError(ValueError):
    """An existing predictions/details file is invalid (message names file and line)."""


# --------------------------------------------------------------------------- scoring


def normalise_letter(answer: str) -> str:
    """``"(C)"`` / ``" c "`` → ``"c"``; other text is returned lower-cased and stripped."""
    return str(answer).strip().strip("()").strip().lower()


# --------------------------------------------------------------------------- files


def _atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    from comam_env.data.paths import atomic_writer

    with atomic_writer(path, "w", newline="") as fh:
        for line in lines:
            fh.write(line + "\n")


def validate_prediction(obj: Any, where: str, valid_ids: set[str] | None = None) -> dict:
    """Check one prediction object; raise :class:`PredictionFileError` naming ``where`` and the field."""
    if not isinstance(obj, dict):
        raise PredictionFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    qid = obj.get("question_id")
    if not isinstance(qid, str) or not qid:
        raise PredictionFileError(f"{where}: field 'question_id' must be a non-empty string, got {qid!r}")
    if valid_ids is not None and qid not in valid_ids:
        raise PredictionFileError(f"{where}: question_id {qid!r} is not among the questions being evaluated")
    if not isinstance(obj.get("answer"), str):
        raise PredictionFileError(f"{where}: field 'answer' must be a string, got {obj.get('answer')!r}")
    if "retrieved_memory" in obj and not isinstance(obj["retrieved_memory"], str):
        raise PredictionFileError(f"{where}: field 'retrieved_memory' must be a string")
    for key in ("tokens_in", "tokens_out"):
        v = obj.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise PredictionFileError(f"{where}: field {key!r} must be an integer >= 0, got {v!r}")
    v = obj.get("latency_ms")
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise PredictionFileError(f"{where}: field 'latency_ms' must be a number >= 0, got {v!r}")
    return obj


def read_jsonl_resumable(path: Path, validate) -> tuple[list[dict], bool]:
    """Read a JSONL file written line by line; returns (objects, torn_last_line_dropped).

    Only the *last* line may be torn (missing newline or unparseable) — it is
    dropped and the file rewritten atomically without it. Any other bad line
    raises :class:`PredictionFileError` with the file and line number.
    """
    if not path.exists():
        return [], False
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    complete, tail = lines[:-1], lines[-1]  # tail is "" when the file ends with a newline
    objs: list[dict] = []
    torn = False
    for n, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(complete) and not tail:
                torn = True  # a torn write that happened to end with a newline fragment
                break
            raise PredictionFileError(f"{path}: line {n}: invalid JSON ({exc.msg})") from None
        objs.append(validate(obj, f"{path}: line {n}"))
    if tail.strip():
        torn = True  # last line without newline: the process died mid-write
    if torn:
        _atomic_write_lines(path, [json.dumps(o, ensure_ascii=False) for o in objs])
    return objs, torn


def _details_path(out: Path) -> Path:
    return out.with_name(out.name + ".details.jsonl")


def _validate_details(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("question_id"), str):
        raise PredictionFileError(f"{where}: expected an object with a string 'question_id'")
    return obj


# --------------------------------------------------------------------------- loop


def prediction_line(question: Question, pred: Prediction) -> dict:
    """The leaderboard line for one prediction."""
    return {
        "question_id": question.question_id,
        "answer": normalise_letter(pred.answer) if question.options else str(pred.answer),
        "retrieved_memory": pred.retrieved_memory or "",
        "tokens_in": int(pred.tokens_in),
        "tokens_out": int(pred.tokens_out),
        "latency_ms": round(float(pred.latency_ms), 3),
    }


def details_line(question: Question, pred: Prediction) -> dict:
    return {
        "question_id": question.question_id,
        "local_rewards": dict(pred.local_rewards),
        "memory_units": pred.memory_units,
        "memory_tokens": pred.memory_tokens,
    }


def _meta_path(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


def prediction_files(out: str | Path) -> list[Path]:
    """The files an evaluation writes for predictions file ``out``: it, its details and its meta."""
    out = Path(out)
    return [out, _details_path(out), _meta_path(out)]


def check_run_config(out: Path, config: dict) -> None:
    """Record ``config`` next to ``out``; refuse to resume a file made with a different one.

    Resuming silently with another system/answerer/seed would mix two runs in one
    file, so a mismatch is an error naming the differing keys.
    """
    meta = _meta_path(out)
    if meta.exists():
        try:
            old = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PredictionFileError(f"{meta}: invalid JSON ({exc.msg})") from None
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        if diff and out.exists() and out.stat().st_size > 0:
            detail = ", ".join(f"{k}: {old.get(k)!r} there vs {config.get(k)!r} now" for k in diff)
            raise PredictionFileError(
                f"{out} was written by a different configuration ({detail}); use another --out or delete it"
            )
    _atomic_write_lines(meta, [json.dumps(config, sort_keys=True)])


def run_predictions(system: System, dataset: Dataset, question_ids: Sequence[str], out: str | Path | None = None,
                    progress: bool = True, config: dict | None = None) -> tuple[list[dict], list[dict], int]:
    """Answer every question (resuming from ``out``); returns (predictions, details, n_resumed).

    Predictions come back in ``question_ids`` order. ``config`` (JSON-able) is
    recorded in ``<out>.meta.json`` and must match on resume.
    """
    ids = list(question_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("question_ids contains duplicates")
    questions = [dataset.question(q) for q in ids]
    check_kinds(system, questions, f"{dataset.name!r}")  # before any file is touched
    valid = set(ids)
    done: dict[str, dict] = {}
    details: dict[str, dict] = {}
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if config is not None:
            check_run_config(out_path, config)
        existing, _ = read_jsonl_resumable(out_path, lambda o, w: validate_prediction(o, w, valid))
        for obj in existing:
            if obj["question_id"] in done:
                raise PredictionFileError(f"{out_path}: question_id {obj['question_id']!r} appears more than once")
            done[obj["question_id"]] = obj
        dpath = _details_path(out_path)
        old_details, _ = read_jsonl_resumable(dpath, _validate_details)
        details = {d["question_id"]: d for d in old_details if d["question_id"] in done}
        if len(details) != len(old_details):  # keep the sidecar aligned with the predictions of record
            _atomic_write_lines(dpath, [json.dumps(details[q], ensure_ascii=False) for q in ids if q in details])
    n_resumed = len(done)
    todo = [q for q in questions if q.question_id not in done]
    if todo:
        system.prepare(dataset)
        from tqdm.auto import tqdm

        pfh = dfh = None
        if out_path is not None:
            pfh = open(out_path, "a", encoding="utf-8")
            dfh = open(_details_path(out_path), "a", encoding="utf-8")
        bar = tqdm(total=len(todo), desc=f"evaluate {getattr(system, 'name', '?')}", disable=not progress, unit="q")
        try:
            for q, pred in _answers(system, dataset, todo):
                bar.update(1)
                line, det = prediction_line(q, pred), details_line(q, pred)
                # details first: the predictions file is the record of what is done
                if dfh is not None:
                    dfh.write(json.dumps(det, ensure_ascii=False) + "\n")
                    dfh.flush()
                if pfh is not None:
                    pfh.write(json.dumps(line, ensure_ascii=False) + "\n")
                    pfh.flush()
                done[q.question_id] = line
                details[q.question_id] = det
        finally:
            bar.close()
            for fh in (pfh, dfh):
                if fh is not None:
                    fh.close()
    return [done[q] for q in ids], [details.get(q, {"question_id": q}) for q in ids], n_resumed


def _answers(system: System, dataset: Dataset, questions: Sequence[Question]):
    """Yield ``(question, prediction)`` in order: through ``system.answer_batch`` in slices of
    ``system.batch_size`` when the system has it (e.g. policy systems, which share work between
    questions of one history), else one ``answer`` call per question. Latency is filled in when
    the system leaves it at 0."""
    batch = getattr(system, "answer_batch", None)
    size = int(getattr(system, "batch_size", 1)) if batch is not None else 1
    for i in range(0, len(questions), size):
        part = list(questions[i:i + size])
        start = time.perf_counter()
        preds = batch(part) if batch is not None else [system.answer(part[0], dataset.history_for(part[0]))]
        ms = (time.perf_counter() - start) * 1000.0 / len(part)
        for q, pred in zip(part, preds):
            if not pred.latency_ms:
                pred.latency_ms = ms
            yield q, pred


def _mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def summarise(dataset: Dataset, predictions: Sequence[dict], details: Sequence[dict], seed: int = 0,
              n_resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Accuracy (+CIs, per type), local rewards, memory size and cost from predictions."""
    scores = [score_answer(dataset.question(p["question_id"]), p["answer"]) for p in predictions]
    ci = bootstrap_ci(scores, seed=seed, n_resamples=n_resamples)
    per_type: dict[str, dict] = {}
    by_type: dict[str, list[float]] = {}
    for p, s in zip(predictions, scores):
        by_type.setdefault(dataset.question(p["question_id"]).qtype, []).append(s)
    for k, t in enumerate(sorted(by_type)):
        vals = by_type[t]
        tci = bootstrap_ci(vals, seed=seed + 1 + k, n_resamples=n_resamples)
        per_type[t] = {"n": len(vals), "accuracy": _mean(vals), "ci95": list(tci) if tci else None}
    channels: dict[str, list[float]] = {}
    undefined: dict[str, int] = {}
    for d in details:
        for ch, r in (d.get("local_rewards") or {}).items():
            if r is None:
                undefined[ch] = undefined.get(ch, 0) + 1
            else:
                channels.setdefault(ch, []).append(float(r))
    local = {
        ch: {"mean": _mean(channels.get(ch, [])), "n_defined": len(channels.get(ch, [])), "n_undefined": undefined.get(ch, 0)}
        for ch in sorted(set(channels) | set(undefined))
    }
    units = [d["memory_units"] for d in details if d.get("memory_units") is not None]
    toks = [d["memory_tokens"] for d in details if d.get("memory_tokens") is not None]
    lat = [float(p["latency_ms"]) for p in predictions]
    kinds = {question_kind(dataset.question(p["question_id"])) for p in predictions}
    return {
        "n_questions": len(predictions),
        # the leaderboard's name: a mean of 0/1 on multiple choice, of token F1 / abstention otherwise
        "metric": "accuracy" if kinds <= {"mcq"} else "token_f1",
        "accuracy": _mean(scores),
        "accuracy_ci95": list(ci) if ci else None,
        "n_unanswered": sum(1 for p in predictions if not p["answer"]),
        "per_type": per_type,
        "local_rewards": local,
        "memory": {"units_mean": _mean(units), "tokens_mean": _mean(toks)},
        "cost": {
            "tokens_in_mean": _mean([p["tokens_in"] for p in predictions]),
            "tokens_out_mean": _mean([p["tokens_out"] for p in predictions]),
            "latency_ms_mean": _mean(lat),
            "latency_ms_median": float(statistics.median(lat)) if lat else None,
        },
    }


def probe_accuracies(dataset: Dataset, question_ids: Sequence[str], seed: int = 0,
                     n_resamples: int = DEFAULT_RESAMPLES, probes: Sequence[str] = PROBES + OPEN_PROBES) -> dict:
    """Accuracy (+CI) of the answer-only probes on the same questions (no files written).

    Each probe is scored on the questions of its kind (``kinds``: the option probes on
    multiple-choice questions, ``always-abstain``/``question-echo`` on open ones); a probe
    with no such question is left out.
    """
    out = {}
    for name in probes:
        probe = get_system(name, context={"seed": seed})
        kinds = system_kinds(probe)
        qs = [dataset.question(q) for q in question_ids]
        qs = [q for q in qs if question_kind(q) in kinds]
        if not qs:
            continue
        probe.prepare(dataset)
        scores = [score_answer(q, probe.answer(q, dataset.history_for(q)).answer) for q in qs]
        ci = bootstrap_ci(scores, seed=seed, n_resamples=n_resamples)
        out[name] = {"n": len(scores), "accuracy": _mean(scores), "ci95": list(ci) if ci else None}
    return out


def evaluate(system: System, dataset: Dataset, question_ids: Sequence[str] | None = None, *,
             out: str | Path | None = None, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
             probes: Sequence[str] | None = PROBES + OPEN_PROBES, progress: bool = True, split: str | None = None,
             config: dict | None = None) -> dict:
    """Run ``system`` on ``question_ids`` (default: all), write/resume ``out``, return the report dict.

    ``config`` describes the run (system options, env, split, seed) and guards resumption.
    """
    ids = [q.question_id for q in dataset.questions] if question_ids is None else list(question_ids)
    start = time.perf_counter()
    preds, details, n_resumed = run_predictions(system, dataset, ids, out=out, progress=progress, config=config)
    report = {
        "system": getattr(system, "name", type(system).__name__),
        "dataset": dataset.name,
        "split": split,
        "seed": seed,
        **summarise(dataset, preds, details, seed=seed, n_resamples=n_resamples),
        "n_resumed": n_resumed,
        "predictions": str(out) if out is not None else None,
    }
    if probes:
        report["probes"] = probe_accuracies(dataset, ids, seed=seed, n_resamples=n_resamples, probes=probes)
    report["wall_seconds"] = round(time.perf_counter() - start, 3)
    return report


# --------------------------------------------------------------------------- text output


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _fmt_ci(ci) -> str:
    return "-" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_report(report: dict) -> str:
    """A readable plain-text table of a report."""
    lines = [
        f"system {report['system']}  dataset {report['dataset']}  split {report.get('split') or '-'}  "
        f"seed {report['seed']}  questions {report['n_questions']}"
        + (f"  (resumed {report['n_resumed']})" if report.get("n_resumed") else ""),
        "",
        f"{'':44s} {'n':>5s} {'acc':>6s}  95% CI",
        f"{'overall':44s} {report['n_questions']:5d} {_fmt(report['accuracy']):>6s}  {_fmt_ci(report['accuracy_ci95'])}",
    ]
    for t, r in report["per_type"].items():
        lines.append(f"  {t:42s} {r['n']:5d} {_fmt(r['accuracy']):>6s}  {_fmt_ci(r['ci95'])}")
    if report.get("metric") == "token_f1":
        lines.append("score: mean of comam_env.score_answer (token F1; LoCoMo category 5: 1 when the answer "
                     "only abstains)")
    if report.get("probes"):
        lines.append("answer-only probes (same questions):")
        for name, r in report["probes"].items():
            lines.append(f"  {name:42s} {r['n']:5d} {_fmt(r['accuracy']):>6s}  {_fmt_ci(r['ci95'])}")
    if report["local_rewards"]:
        lines.append("")
        lines.append("mean local reward per channel: " + ", ".join(
            f"{ch} {_fmt(r['mean'])} (n={r['n_defined']}, undefined {r['n_undefined']})"
            for ch, r in report["local_rewards"].items()))
    mem, cost = report["memory"], report["cost"]
    lines.append(f"memory per question: {_fmt(mem['units_mean'], 1)} units, {_fmt(mem['tokens_mean'], 0)} tokens")
    lines.append(
        f"per query: tokens in {_fmt(cost['tokens_in_mean'], 0)}, tokens out {_fmt(cost['tokens_out_mean'], 0)}, "
        f"latency {_fmt(cost['latency_ms_mean'], 1)} ms (median {_fmt(cost['latency_ms_median'], 1)} ms)"
    )
    if report.get("n_unanswered"):
        lines.append(f"unanswered (no option parsed): {report['n_unanswered']}")
    if report.get("predictions"):
        lines.append(f"predictions: {report['predictions']}")
    return "\n".join(lines)
