"""``comam-env evaluate``: run one system (or a training run) on an env's questions.

Usage::

    comam-env evaluate --env synthetic-32k --system rag [--split validation] [--limit N]
                       [--json] [--out predictions.jsonl] [--seed S]
                       [--answerer similarity|llm] [--model PATH_OR_ID] [--run DIR] [--embedder minilm|hashing]
    comam-env evaluate --run runs/NAME [--split validation] [--json]

``--env`` names an environment id (``comam-env envs``) or a dataset name
(``synthetic-32k``, ``personamem-32k``, …); the questions are the chosen split
as the env draws it (``comam_env.registry.split_ids``, seeded by ``--split-seed``:
synthetic tracks by persona, so a trained run is scored on personas it never
saw; other datasets by question), cut to the first ``--limit``. With ``--run`` the system and env default to the
ones recorded in the run's ``config.json`` (see :mod:`baselines.trained`).

Predictions go to ``--out`` and a rerun with the same ``--out`` resumes (and says so on
stderr: "resumed N of M predictions"); ``--fresh`` deletes the file first. The default
``predictions/<env>__<system>__<split>__s<seed>__<key>.jsonl`` carries a hash of everything
that decides the predictions — the evaluation's options, the ``--run`` directory's path,
``config.json`` and ``checkpoint/state.json``, and the package's source code — so two runs
evaluated in one folder, a run trained further, or edited code never resume each other's
file. Output: a readable table, or with ``--json`` one JSON object (at least ``accuracy``,
``n_questions`` and ``predictions_file``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from comam_env.cli import Command

#: registered with ``comam-env`` through the ``comam_env.commands`` entry point (pyproject.toml)
COMMANDS = (
    Command("evaluate", "evaluate a system or a training run on an env's questions", "baselines.cli"),
    Command("demo", "run the offline demo on built-in synthetic data", "baselines.demo"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    from comam_env.cli import nonnegative_int, positive_int

    from .base import SYSTEMS

    parser.add_argument("--env", help="environment id or dataset name (e.g. synthetic-32k); inferred from --run")
    parser.add_argument("--system", choices=sorted(SYSTEMS), help="system to evaluate; inferred from --run")
    parser.add_argument("--split", default="validation", choices=["train", "validation", "all"],
                        help="question split (default validation)")
    parser.add_argument("--split-seed", type=nonnegative_int, default=0, help="seed of the question split (default 0)")
    parser.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N questions of the split")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed for stochastic systems and the bootstrap (default 0)")
    parser.add_argument("--out", default=None, help="predictions JSONL, resumed if it exists (default "
                        "predictions/<env>__<system>__<split>__s<seed>__<key>.jsonl, <key> a hash of the "
                        "evaluation's configuration, the run's files and the code)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the predictions file (and its sidecars) first instead of resuming it")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--answerer", choices=["similarity", "llm"], default=None,
                        help="how classic systems pick an option (default similarity)")
    parser.add_argument("--model", default=None, help="local path or hub id of the LLM (llm answerer, prompt-only)")
    parser.add_argument("--embedder", default=None,
                        help="embedder of similarity-based systems: minilm (default) or hashing (fast, for smoke tests)")
    parser.add_argument("--retrieval-embedder", default=None,
                        help="rag only: embedder ranking the chunks (default minilm, the paper's choice)")
    parser.add_argument("--run", default=None, help="training run directory (runs/NAME) for independent/comam")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let transformers run Python code shipped with the --run's models (never taken "
                             "from the run's files; only for runs you trust)")
    parser.add_argument("--no-probes", action="store_true",
                        help="skip the answer-only probes (random, longest-option, question-only; on open "
                             "questions always-abstain, question-echo)")
    parser.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")


def load_env_dataset(env_id: str):
    """The dataset behind an env id (``comam_env.registry.resolve_id``), else a dataset name."""
    from comam_env.data import load_dataset

    return load_dataset(env_dataset_name(env_id))


def env_dataset_name(env_id: str) -> str:
    """The dataset name behind an env id or dataset name; ``ValueError`` for neither."""
    from comam_env.data import DATASET_NAMES
    from comam_env.registry import resolve_id

    try:
        return resolve_id(env_id).dataset
    except ValueError:
        if env_id.strip().lower() in DATASET_NAMES:  # not a registered env id but a dataset name
            return env_id.strip().lower()
        raise


def env_split_ids(env_id: str, dataset, split: str, seed: int = 0) -> list[str]:
    """The questions of ``split`` as ``comam_env.make(env_id, split=split)`` draws them
    (``comam_env.registry.split_ids``); a bare dataset name that is no env id splits by question."""
    from comam_env.data.splits import split_question_ids
    from comam_env.registry import resolve_id, split_ids

    try:
        resolve_id(env_id)
    except ValueError:
        return list(split_question_ids(dataset, split, seed=seed))
    return split_ids(env_id, dataset, split, seed=seed)


def code_fingerprint() -> str:
    """sha256 of the Python sources of comam_env, agents and baselines (what computes a prediction)."""
    import hashlib
    import importlib.util

    h = hashlib.sha256()
    for package in ("comam_env", "agents", "baselines"):
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(root).rglob("*.py")):
                h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _run_files_digest(run: str | None) -> str | None:
    """sha256 of a run's config.json and checkpoint/state.json (changes when it trains on)."""
    if not run:
        return None
    import hashlib

    h = hashlib.sha256(str(Path(run).resolve()).encode())
    for name in ("config.json", "checkpoint/state.json"):
        path = Path(run) / name
        h.update(path.read_bytes() if path.is_file() else b"-")
    return h.hexdigest()


def default_out(env_id: str, system: str, split: str, seed: int, answerer: str | None,
                key: dict | None = None) -> Path:
    """``predictions/<env>__<system>[__<answerer>]__<split>__s<seed>[__<hash>].jsonl``; the hash of
    ``key`` (the evaluation's configuration, run files and code) keeps different runs, options and
    code versions from resuming each other's files."""
    import hashlib

    safe = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s)  # noqa: E731
    parts = [env_id, system] + ([answerer] if answerer and answerer != "similarity" else []) + [split, f"s{seed}"]
    if key is not None:
        parts.append(hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10])
    return Path("predictions") / ("__".join(safe(p) for p in parts) + ".jsonl")


def run(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError, UsageError

    from .base import OPEN_PROBES, PROBES, UnsupportedQuestionsError, get_system
    from .harness import PredictionFileError, evaluate, format_report, prediction_files

    env_id, system_name = args.env, args.system
    if args.run:
        from .trained import read_run_config

        try:
            cfg = read_run_config(args.run)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        env_id = env_id or cfg.env
        system_name = system_name or cfg.system
    if not env_id or not system_name:
        raise CommandError("give --env and --system, or --run with a training run directory")
    try:
        env_dataset_name(env_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a directory; give a .jsonl file")
    try:
        dataset = load_env_dataset(env_id)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise CommandError(f"cannot load env {env_id!r}: {exc}") from None
    ids = env_split_ids(env_id, dataset, args.split, seed=args.split_seed)
    if args.limit is not None:
        ids = ids[: args.limit]
    if not ids:
        raise CommandError(f"env {env_id!r} has no questions in split {args.split!r}")
    try:
        system = get_system(system_name, context={"seed": args.seed, "env_id": env_id},
                            answerer=args.answerer, model=args.model, run=args.run,
                            trust_remote_code=True if args.trust_remote_code else None,
                            embedder=args.embedder, retrieval_embedder=args.retrieval_embedder)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    config = {"env": env_id, "system": system_name, "split": args.split, "split_seed": args.split_seed,
              "seed": args.seed, "answerer": args.answerer, "model": args.model, "run": args.run,
              "embedder": args.embedder, "retrieval_embedder": args.retrieval_embedder}
    if args.out:
        out = Path(args.out)
    else:
        key = {**config, "run_files": _run_files_digest(args.run), "code": code_fingerprint()}
        out = default_out(env_id, system_name, args.split, args.seed, args.answerer, key=key)
    if args.fresh:
        for path in prediction_files(out):
            path.unlink(missing_ok=True)
    try:
        report = evaluate(system, dataset, ids, out=out, seed=args.seed, n_resamples=args.resamples,
                          probes=None if args.no_probes else PROBES + OPEN_PROBES,
                          progress=not args.quiet and not args.json, split=args.split, config=config)
    except (PredictionFileError, UnsupportedQuestionsError) as exc:
        raise CommandError(str(exc)) from None
    report["env"] = env_id
    report["predictions_file"] = str(out)
    if report.get("n_resumed"):
        print(f"comam-env evaluate: resumed {report['n_resumed']} of {report['n_questions']} predictions from "
              f"{out} (computed earlier, not now); pass --fresh to recompute them", file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_report(report))
        print(f"predictions: {out}")
    return 0
