"""``comam-env evaluate``: run one system (or a training run) on an env's questions.

Usage::

    comam-env evaluate --env synthetic-32k --system rag [--split validation] [--limit N]
                       [--json] [--out predictions.jsonl] [--seed S]
                       [--answerer similarity|llm] [--model PATH_OR_ID] [--run DIR] [--embedder minilm|hashing]
    comam-env evaluate --run runs/NAME [--split validation] [--json]

``--env`` names an environment id (``comam-env envs``) or a dataset name
(``synthetic-32k``, ``personamem-32k``, …); the questions are the chosen split
(``comam_env.data.splits.split_question_ids``, seeded by ``--split-seed``),
cut to the first ``--limit``. With ``--run`` the system and env default to the
ones recorded in the run's ``config.json`` (see :mod:`baselines.trained`).

Predictions go to ``--out`` (default ``predictions/<env>__<system>__<split>__s<seed>.jsonl``)
and a rerun with the same ``--out`` resumes. Output: a readable table, or with
``--json`` one JSON object (at least ``accuracy`` and ``n_questions``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    from .base import SYSTEMS

    parser.add_argument("--env", help="environment id or dataset name (e.g. synthetic-32k); inferred from --run")
    parser.add_argument("--system", choices=sorted(SYSTEMS), help="system to evaluate; inferred from --run")
    parser.add_argument("--split", default="validation", choices=["train", "validation", "all"],
                        help="question split (default validation)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the question split (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N questions of the split")
    parser.add_argument("--seed", type=int, default=0, help="seed for stochastic systems and the bootstrap (default 0)")
    parser.add_argument("--out", default=None, help="predictions JSONL, resumed if it exists "
                        "(default predictions/<env>__<system>__<split>__s<seed>.jsonl)")
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
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load_env_dataset(env_id: str):
    """The dataset behind an env id (``comam_env.registry.resolve_id``), else a dataset name."""
    from comam_env.data import load_dataset

    try:
        from comam_env.registry import resolve_id

        name = resolve_id(env_id).dataset
    except ValueError:
        name = env_id  # not a registered env id: maybe a dataset name load_dataset knows
    return load_dataset(name)


def default_out(env_id: str, system: str, split: str, seed: int, answerer: str | None) -> Path:
    safe = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s)  # noqa: E731
    parts = [env_id, system] + ([answerer] if answerer and answerer != "similarity" else []) + [split, f"s{seed}"]
    return Path("predictions") / ("__".join(safe(p) for p in parts) + ".jsonl")


def run(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError

    from .base import OPEN_PROBES, PROBES, UnsupportedQuestionsError, get_system
    from .harness import PredictionFileError, evaluate, format_report

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
    if args.limit is not None and args.limit < 1:
        raise CommandError(f"--limit must be >= 1, got {args.limit}")
    try:
        dataset = load_env_dataset(env_id)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise CommandError(f"cannot load env {env_id!r}: {exc}") from None
    from comam_env.data.splits import split_question_ids

    ids = list(split_question_ids(dataset, args.split, seed=args.split_seed))
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
    out = Path(args.out) if args.out else default_out(env_id, system_name, args.split, args.seed, args.answerer)
    config = {"env": env_id, "system": system_name, "split": args.split, "split_seed": args.split_seed,
              "seed": args.seed, "answerer": args.answerer, "model": args.model, "run": args.run,
              "embedder": args.embedder, "retrieval_embedder": args.retrieval_embedder}
    try:
        report = evaluate(system, dataset, ids, out=out, seed=args.seed, n_resamples=args.resamples,
                          probes=None if args.no_probes else PROBES + OPEN_PROBES,
                          progress=not args.quiet and not args.json, split=args.split, config=config)
    except (PredictionFileError, UnsupportedQuestionsError) as exc:
        raise CommandError(str(exc)) from None
    report["env"] = env_id
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_report(report))
    return 0
