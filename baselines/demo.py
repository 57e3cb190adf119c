"""``comam-env demo``: the whole package on built-in synthetic data, offline, on a CPU.

Four steps, each printing a short readable result:

1. **data** — generate the synthetic PersonaMem-style benchmark (same file format as the
   real PersonaMem) and print its statistics, including the longest-option probe;
2. **environment** — play the same questions with an oracle memory system and a naive
   one (copies everything, always answers (a)) and show every reward channel;
3. **baselines** — evaluate the answer-only probes and CPU memory baselines on the
   validation questions through the evaluation harness;
4. **CoMAM** — train small selection policies for the three agents jointly with the
   adaptive credit assignment and compare validation accuracy before and after (held-out
   questions, evidence-session episodes; then once through full-history episodes).

Everything is seeded: two runs print the same numbers. ``--quick`` shrinks every step
(used by the test suite).

The demo lives in :mod:`baselines`, the top of the import order (``comam_env`` ← ``agents`` ←
``baselines``), because it uses all three; ``comam-env demo`` is registered from here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    from comam_env.cli import nonnegative_int, positive_int

    parser.add_argument("--env", default="synthetic-32k", help="synthetic environment id to demo")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of every step")
    parser.add_argument("--questions", type=positive_int, default=128, help="validation questions for the baselines step")
    parser.add_argument("--iterations", type=positive_int, default=30, help="CoMAM training iterations")
    parser.add_argument("--embedder", default="hashing", choices=["hashing", "minilm"],
                        help="embedder of the baselines (minilm is the paper's, slower on a CPU the first time)")
    parser.add_argument("--out", default=None, help="where the training run goes (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes everywhere (seconds, for tests)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["data", "env", "baselines", "train"],
                        help="steps to skip")


def _header(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def _step_data(args) -> None:
    from comam_env.data import load_dataset
    from comam_env.data.stats import dataset_stats, format_stats

    ds = load_dataset(args.env)
    print(format_stats(dataset_stats(ds)))


def _step_env(args) -> None:
    import numpy as np

    import comam_env
    from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode

    env = comam_env.make(args.env, split="validation", episode="evidence-session")
    qids = list(env.unwrapped.question_ids)[: 3 if args.quick else 20]
    policies = {"oracle": OraclePolicy(env.unwrapped.dataset), "naive (copy all, answer a)": CopyAllPolicy(answer="a")}
    print(f"{len(qids)} validation questions, one evidence-session episode each; mean per channel:")
    print(f"{'policy':28s} {'extractor':>9s} {'profiler':>9s} {'retriever':>9s} {'answer':>7s}")
    for name, policy in policies.items():
        sums = {"extractor": [], "profiler": [], "retriever": [], "answer": []}
        for qid in qids:
            traj = run_episode(env, policy, options={"question_id": qid})
            for role, value in traj["local"].items():
                if value is not None:
                    sums[role].append(value)
            sums["answer"].append(traj["global_reward"])
        print(f"{name:28s} " + " ".join(f"{np.mean(v) if v else float('nan'):9.3f}" for v in list(sums.values())[:3])
              + f" {np.mean(sums['answer']):7.3f}")


def _step_baselines(args) -> dict:
    from baselines.base import PROBES, get_system
    from baselines.harness import evaluate
    from comam_env.data import load_dataset
    from comam_env.registry import split_ids

    ds = load_dataset(args.env)
    ids = split_ids(args.env, ds, "validation", seed=args.seed)[: args.questions]
    systems = ["random", "longest-option", "question-only", "bm25", "heuristic-pipeline", "mem0-style"]
    if args.quick:
        systems = ["longest-option", "heuristic-pipeline"]
    print(f"{len(ids)} validation questions of {args.env}")
    print(f"{'system':22s} {'accuracy':>8s}  {'95% CI':17s} {'s/question':>10s}")
    results = {}
    for name in systems:
        t0 = time.perf_counter()
        options = {} if name in PROBES else {"embedder": args.embedder}  # probes take no embedder
        report = evaluate(get_system(name, context={"env_id": args.env, "seed": args.seed}, **options), ds, ids,
                          seed=args.seed, probes=None, progress=False)
        dt = (time.perf_counter() - t0) / max(1, len(ids))
        ci = report["accuracy_ci95"]
        ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
        print(f"{name:22s} {report['accuracy']:8.3f}  {ci_text:17s} {dt:10.4f}", flush=True)
        results[name] = report["accuracy"]
    return results


def _step_train(args) -> None:
    from agents.base import load_policy
    from agents.comam import TrainConfig, evaluate_policy, train
    from agents.plots import read_metrics

    # Validation follows the training episodes (held-out questions, evidence-session episodes);
    # full-history episodes are evaluated once at the end: selection policies trained on evidence
    # sessions stay near chance there (docs/credit_ablation.md explains why).
    cfg = TrainConfig(
        env=args.env, seed=args.seed, credit="adaptive",
        iterations=2 if args.quick else args.iterations,
        batch_queries=4 if args.quick else 16, group_size=4 if args.quick else 8,
        eval_every=1 if args.quick else 4, checkpoint_every=4, eval_episode="evidence-session",
        eval_limit=10 if args.quick else args.questions, progress=not (args.quick or args.quiet),
    )
    out = args.out or tempfile.mkdtemp(prefix="comam-demo-")
    print(f"CoMAM (adaptive credit), selection policies, {cfg.iterations} iterations × {cfg.batch_queries} "
          f"queries × G={cfg.group_size}; run dir {out}")
    try:
        summary = train(cfg, out)
    except ValueError as exc:  # e.g. --out holds a run of another configuration
        from comam_env.cli import CommandError

        raise CommandError(str(exc)) from None
    start = next(r for r in read_metrics(out) if r["iteration"] == 0)
    print(f"validation ({summary['val_n_questions']} held-out questions, evidence-session episodes):")
    print(f"{'':12s} {'accuracy':>8s} {'extractor':>9s} {'profiler':>9s} {'retriever':>9s}")
    for label, r in (("untrained", start), ("trained", summary)):
        print(f"{label:12s} {r['val_accuracy']:8.3f} " + " ".join(
            f"{(r.get(f'val_local_{k}') or 0):9.3f}" for k in ("extractor", "profiler", "retriever")))
    full = [evaluate_policy(cfg, policy, episode="full-history")["accuracy"]
            for policy in (None, load_policy(Path(out) / "checkpoint" / "policy"))]
    print(f"full-history episodes (the paper's evaluation): accuracy {full[0]:.3f} → {full[1]:.3f} "
          "(near chance for selection policies: see docs/credit_ablation.md)")
    print(f"curves: {out}/training.png")


def _check_args(args: argparse.Namespace) -> None:
    """Invalid flags fail here, before the first step runs."""
    from comam_env.cli import UsageError
    from comam_env.registry import resolve_id

    try:
        spec = resolve_id(args.env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not spec.dataset.startswith("synthetic"):
        raise UsageError(f"--env {args.env}: the demo runs offline on synthetic data; choose one of "
                         "synthetic-32k, synthetic-128k, synthetic-1m")
    args.env = spec.env_id
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    t0 = time.perf_counter()
    steps = [("data", "1/4 synthetic data", _step_data), ("env", "2/4 environment: oracle vs naive", _step_env),
             ("baselines", "3/4 baselines (evaluation harness)", _step_baselines),
             ("train", "4/4 CoMAM training (CPU selection policies)", _step_train)]
    for key, title, fn in steps:
        if key in args.skip:
            continue
        _header(title)
        fn(args)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s")
    return 0
