"""``comam-env leaderboard run-agent``: evaluate an agent on a hidden track and write a signed entry.

This is the one leaderboard module that imports policies (``agents``) and the
evaluation harness (``baselines``); everything else in ``leaderboard`` imports
only ``comam_env``.

``run_agent(ENTRY, track, out_dir)`` generates the hidden split from the secret
in ``COMAM_HIDDEN_SEED`` (:mod:`leaderboard.hidden`), evaluates the agent
through :func:`baselines.harness.run_predictions` on the redacted dataset, and
writes an entry of kind ``hidden-run``: ``metadata.json`` (recording the
generator knobs and question limit, so the split can be regenerated),
``predictions.jsonl`` with opaque ``h-…`` ids, and ``score.json`` carrying an
HMAC signature (:func:`leaderboard.hidden.sign_entry`) that ``validate`` checks
when the secret is set.

ENTRY is either ``module:callable`` or a submission folder/archive of kind
``agent`` whose ``metadata.json`` names ``entry_point``. The callable is
called with no arguments and must return one of:

* a ``baselines`` System (``prepare(dataset)`` and ``answer(question, history)``),
* a policy implementing ``agents.base.Policy`` (one object acting for all three
  roles; ``kind == "selection"`` runs on the selection view, others on the text
  view) — evaluated greedily through full-history env episodes by
  :class:`baselines.policy_system.PolicySystem`,
* a mapping ``{"extractor": policy, "profiler": policy, "retriever": policy}``.

Trust model: ``run-agent`` **imports and runs the agent's code** with the
operator's privileges. Run it only for submissions the operator has chosen to
run (after reading the code, ideally inside a container or VM without
credentials or network). ``validate``, ``score`` and ``render`` never execute
submission content; ``run-agent`` is the single exception and must be invoked
explicitly. Mitigations, not a sandbox: the secret is removed from
``os.environ`` while the agent is imported and runs (and restored after), the
agent sees only the redacted dataset, and outputs are scanned for the secret.
In-process code could still inspect the interpreter's memory; for untrusted
code use an isolated machine and rotate the secret afterwards.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from .hidden import (
    SECRET_ENV,
    SIGNATURE_FIELD,
    HiddenTrackError,
    check_knobs,
    entry_question_ids,
    hidden_split,
    read_secret,
    sign_entry,
    track_spec,
)

ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@contextmanager
def _without_env(name: str) -> Iterator[None]:
    """Remove ``name`` from ``os.environ`` for the duration (the agent must not read the secret)."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def load_entry_point(spec: str) -> Any:
    """Import ``module:callable`` and call it (this runs the submission's code)."""
    if not ENTRY_POINT_RE.match(spec):
        raise HiddenTrackError(f"entry point {spec!r} must look like 'package.module:callable'")
    module_name, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HiddenTrackError(f"cannot import {module_name!r} for entry point {spec!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise HiddenTrackError(f"entry point {spec!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise HiddenTrackError(f"entry point {spec!r} is not callable")
    return obj()


def as_system(obj: Any, env_id: str) -> Any:
    """Adapt what an entry point returned to the harness's System protocol."""
    if hasattr(obj, "answer") and hasattr(obj, "prepare"):
        return obj
    from agents.base import ROLE_NAMES, Policy
    from baselines.policy_system import PolicySystem

    if isinstance(obj, Policy):
        policies = {r: obj for r in ROLE_NAMES}
    elif isinstance(obj, Mapping) and set(obj) == set(ROLE_NAMES) and all(isinstance(p, Policy) for p in obj.values()):
        policies = dict(obj)
    else:
        raise HiddenTrackError(
            f"the entry point returned {type(obj).__name__}: expected a System (prepare/answer), an "
            f"agents.base.Policy or a mapping {{{', '.join(ROLE_NAMES)}}} -> Policy")
    kinds = {getattr(p, "kind", "llm") for p in policies.values()}
    view = "selection" if kinds == {"selection"} else "text"
    system = PolicySystem(policies, env_id=env_id, view=view, greedy=True)
    system.name = "policy:" + "+".join(sorted(kinds))
    return system


def _resolve_entry(entry: str) -> tuple[str, dict]:
    """(entry point, metadata of the agent submission or {}) for ENTRY."""
    path = Path(entry)
    from .validate import is_archive, validate_submission

    if path.is_dir() or is_archive(path):
        report = validate_submission(path, check_ids=False)
        if not report.ok or report.submission is None:
            raise HiddenTrackError("the agent submission is invalid:\n" + report.format())
        meta = report.submission.metadata
        if meta.get("kind") != "agent":
            raise HiddenTrackError(f"{entry}: metadata.json kind is {meta.get('kind', 'predictions')!r}, not 'agent'")
        return meta["entry_point"], meta
    if ENTRY_POINT_RE.match(entry):
        return entry, {}
    raise HiddenTrackError(f"ENTRY {entry!r} is neither a submission folder/archive nor 'module:callable'")


def run_agent(entry: str, track: str, out_dir: str | os.PathLike, *, secret: str | None = None,
              env_var: str = SECRET_ENV, limit: int | None = None, knobs: Mapping[str, Any] | None = None,
              progress: bool = True, seed: int = 0, n_resamples: int = 2000, name: str | None = None) -> dict:
    """Evaluate an agent on a hidden track and write a signed ``hidden-run`` entry to ``out_dir``.

    Returns the score dict (also written, with its signature, as ``out_dir/score.json``).
    ``seed`` seeds the bootstrap only; ``limit`` evaluates the first N hidden questions
    (smoke runs); ``knobs`` are generator knobs (:data:`leaderboard.hidden.KNOB_BOUNDS`).
    Both are recorded in the metadata (``question_limit``, ``generator_knobs``) so that
    ``validate`` can regenerate the same questions.
    """
    from comam_env.data.paths import atomic_write_text

    from .score import dumps, score_predictions

    spec = track_spec(track)
    value = read_secret(env_var, secret)  # refuse before doing anything else
    knobs = dict(knobs or {})
    problems = check_knobs(track, knobs)
    if problems:
        raise HiddenTrackError("; ".join(problems))
    entry_point, agent_meta = _resolve_entry(entry)
    if agent_meta and agent_meta.get("track") != track:
        raise HiddenTrackError(f"the submission is for track {agent_meta.get('track')!r}, not {track!r}")
    split = hidden_split(track, value, **knobs)
    ids = entry_question_ids(split, limit)
    from baselines.harness import run_predictions

    with _without_env(env_var):
        system = as_system(load_entry_point(entry_point), spec["env"])
        predictions, _, _ = run_predictions(system, split.redacted, ids, out=None, progress=progress)
    today = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    meta = {
        "kind": "hidden-run",
        "name": name or agent_meta.get("name") or entry_point,
        "authors": agent_meta.get("authors") or ["unknown"],
        "url": agent_meta.get("url"),
        "description": agent_meta.get("description") or f"agent {entry_point} run on a hidden track",
        "models": agent_meta.get("models") or [],
        "training_method": agent_meta.get("training_method") or "unknown",
        "track": track,
        "split": spec["split"],
        "date": today,
        "seeds": agent_meta.get("seeds") or [0],
        "open_source": bool(agent_meta.get("open_source", False)),
        "entry_point": entry_point,
        "command": f"comam-env leaderboard run-agent {entry} --track {track}" + (f" --limit {limit}" if limit else ""),
        "notes": f"evaluated by `comam-env leaderboard run-agent` on {len(ids)} hidden questions"
                 + (f" (first {limit} only)" if limit else ""),
    }
    if knobs:
        meta["generator_knobs"] = knobs
    if limit:
        meta["question_limit"] = limit
    out = Path(out_dir)
    score = score_predictions(meta, predictions, split.gold, question_ids=ids, seed=seed, n_resamples=n_resamples,
                              entry=out.name)
    predictions_text = "".join(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n" for p in predictions)
    signed = dict(score)
    signed[SIGNATURE_FIELD] = sign_entry(value, meta, predictions_text.encode("utf-8"), score)
    files = {
        "metadata.json": json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        "predictions.jsonl": predictions_text,
        "score.json": dumps(signed),
    }
    secrets_ = (value, str(split.generator_seed), f"syn{split.generator_seed}")
    for fname, text in files.items():
        if any(s in text for s in secrets_):
            raise HiddenTrackError(f"refusing to write {fname}: it would contain the hidden-track secret")
    out.mkdir(parents=True, exist_ok=True)
    for fname in ("predictions.jsonl", "score.json", "metadata.json"):  # metadata last marks completion
        atomic_write_text(out / fname, files[fname])
    return signed
