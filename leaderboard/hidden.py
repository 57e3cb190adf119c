"""Hidden tracks: agents evaluated on synthetic questions nobody has seen.

``comam-env leaderboard run-agent ENTRY --track synthetic-32k-hidden`` generates a
synthetic PersonaMem-style dataset from a **secret** taken from the environment
variable ``COMAM_HIDDEN_SEED`` (it refuses to run without one, or with one
shorter than :data:`MIN_SECRET_CHARS` characters), evaluates the agent through the
evaluation harness (:func:`baselines.harness.run_predictions`) and writes a
scored entry (``metadata.json`` of kind ``hidden-run``, ``predictions.jsonl``,
``score.json``).

Derivation (HMAC-SHA256 keyed by the secret, so nothing about the secret can
be recovered from the outputs without brute-forcing it — hence the minimum
length): the generator seed (63 bits), the validation split seed and a key
that turns every question id into an opaque ``h-<16 hex>`` id. Generated ids
(``syn<seed>-…``), the dataset's generator metadata and its temporary folder
would reveal the seed, so they never leave this module: the agent receives a
*redacted* copy of the dataset (opaque ids, gold answers replaced by the
placeholder ``"a"``, no gold evidence, no gold profiles, empty metadata) and the
written files are checked not to contain the secret or the derived seed.

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

import dataclasses
import datetime as _dt
import hashlib
import hmac
import importlib
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

#: Environment variable holding the secret.
SECRET_ENV = "COMAM_HIDDEN_SEED"
#: Shortest secret accepted (short secrets can be brute-forced from the opaque ids).
MIN_SECRET_CHARS = 16

#: hidden track id -> generator size, public env id the policies run on, evaluated split.
HIDDEN_TRACKS: dict[str, dict[str, str]] = {
    "synthetic-32k-hidden": {"size": "32k", "env": "synthetic-32k", "split": "validation"},
    "synthetic-128k-hidden": {"size": "128k", "env": "synthetic-128k", "split": "validation"},
}

ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class HiddenTrackError(ValueError):
    """A hidden-track run cannot proceed (missing secret, bad entry, unknown track)."""


@dataclasses.dataclass(frozen=True)
class HiddenSplit:
    """A generated hidden split: the scoring dataset (gold) and the redacted copy agents see."""

    track: str
    gold: Any            # Dataset with opaque ids and gold answers (never given to the agent)
    redacted: Any        # Dataset with opaque ids, placeholder answers, no evidence/profiles
    question_ids: tuple[str, ...]
    generator_seed: int  # secret-derived; never written anywhere


def _derive(secret: str, purpose: str, bits: int) -> int:
    digest = hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def read_secret(env_var: str = SECRET_ENV, secret: str | None = None) -> str:
    """The secret (argument, else the environment variable); refuses missing or short ones."""
    value = secret if secret is not None else os.environ.get(env_var)
    if not value:
        raise HiddenTrackError(
            f"refusing to run a hidden track: set the environment variable {env_var} to a secret of at least "
            f"{MIN_SECRET_CHARS} characters (e.g. `export {env_var}=$(python -c "
            f"'import secrets; print(secrets.token_hex(16))')`)")
    if len(value) < MIN_SECRET_CHARS:
        raise HiddenTrackError(f"{env_var} is too short ({len(value)} characters; at least {MIN_SECRET_CHARS}): "
                               "a short secret can be recovered from the opaque question ids")
    return value


def _track(track: str) -> dict[str, str]:
    try:
        return HIDDEN_TRACKS[track]
    except KeyError:
        raise HiddenTrackError(f"unknown hidden track {track!r}; known: {', '.join(HIDDEN_TRACKS)}") from None


def hidden_split(track: str, secret: str, **knobs: Any) -> HiddenSplit:
    """Generate the hidden dataset of ``track`` from ``secret`` (deterministic for a secret).

    ``knobs`` are :class:`comam_env.data.synthetic.SyntheticConfig` fields (tests use
    ``n_personas=2`` to stay small). Nothing is cached on disk (the cache folder name
    would hold the seed).
    """
    from comam_env.data.schema import Dataset
    from comam_env.data.splits import split_question_ids
    from comam_env.data.synthetic import load_synthetic

    spec = _track(track)
    gen_seed = _derive(secret, f"generator:{track}", 63)
    split_seed = _derive(secret, f"split:{track}", 32)
    id_key = hmac.new(secret.encode("utf-8"), f"ids:{track}".encode("utf-8"), hashlib.sha256).digest()
    raw = load_synthetic(spec["size"], seed=gen_seed, cache=False, **knobs)

    def opaque(qid: str) -> str:
        return "h-" + hmac.new(id_key, qid.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    gold_qs = tuple(dataclasses.replace(q, question_id=opaque(q.question_id)) for q in raw.questions)
    gold = Dataset(name=track, histories=raw.histories, questions=gold_qs, profiles=raw.profiles,
                   source=f"hidden:{track}", meta={"track": track})
    hidden_qs = tuple(dataclasses.replace(q, answer="a" if q.options else "", evidence=None) for q in gold_qs)
    redacted = Dataset(name=track, histories=raw.histories, questions=hidden_qs, profiles={},
                       source=f"hidden:{track}", meta={"track": track})
    ids = tuple(split_question_ids(gold, spec["split"], seed=split_seed))
    return HiddenSplit(track=track, gold=gold, redacted=redacted, question_ids=ids, generator_seed=gen_seed)


def hidden_dataset_from_env(track: str, env_var: str = SECRET_ENV):
    """The gold dataset of a hidden track when the secret is set, else ``None`` (used by validate)."""
    if not os.environ.get(env_var):
        return None
    return hidden_split(track, read_secret(env_var)).gold


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
    """Evaluate an agent on a hidden track and write a scored ``hidden-run`` entry to ``out_dir``.

    Returns the score dict (also written as ``out_dir/score.json``). ``seed`` seeds the
    bootstrap only; ``limit`` evaluates the first N hidden questions (smoke runs).
    """
    from comam_env.data.paths import atomic_write_text

    from .score import score_predictions

    spec = _track(track)
    value = read_secret(env_var, secret)  # refuse before doing anything else
    entry_point, agent_meta = _resolve_entry(entry)
    if agent_meta and agent_meta.get("track") != track:
        raise HiddenTrackError(f"the submission is for track {agent_meta.get('track')!r}, not {track!r}")
    split = hidden_split(track, value, **dict(knobs or {}))
    ids = list(split.question_ids[:limit] if limit else split.question_ids)
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
                 + (f" (first {limit} only)" if limit else "")
                 + (f"; generator knobs {json.dumps(dict(knobs), sort_keys=True)}" if knobs else ""),
    }
    out = Path(out_dir)
    score = score_predictions(meta, predictions, split.gold, question_ids=ids, seed=seed, n_resamples=n_resamples,
                              entry=out.name)
    files = {
        "metadata.json": json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        "predictions.jsonl": "".join(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n" for p in predictions),
        "score.json": json.dumps(score, indent=2, sort_keys=True) + "\n",
    }
    secrets_ = (value, str(split.generator_seed), f"syn{split.generator_seed}")
    for fname, text in files.items():
        if any(s in text for s in secrets_):
            raise HiddenTrackError(f"refusing to write {fname}: it would contain the hidden-track secret")
    out.mkdir(parents=True, exist_ok=True)
    for fname in ("predictions.jsonl", "score.json", "metadata.json"):  # metadata last marks completion
        atomic_write_text(out / fname, files[fname])
    return score
