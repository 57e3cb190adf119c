"""The paper's ablations as a CPU benchmark: every credit strategy, no training, independent
optimisation and a shared policy, on synthetic-32k with selection policies.

Every variant gets the same rollout budget (iterations × batch_queries × group_size
trajectories) and is run for several seeds. The script prints, per variant, validation
accuracy (mean ± 95% t-interval over seeds), per-agent local rewards, the iteration at which
validation accuracy first reaches ``--target`` (the paper's convergence-steps table) and wall
time; it writes ``docs/credit_ablation.md`` and ``docs/credit_ablation.png`` (validation
accuracy curves, mean over seeds).

    python benchmarks/credit_ablation.py --seeds 0 1 2 --iterations 20 --batch-queries 8 --group-size 8 \
        --eval-every 5 --target 0.3 --out runs/credit_ablation          # what docs/credit_ablation.md used

Runs are resumable: an interrupted sweep continues from each run's checkpoint. The sweep may be
split over processes with ``--variants`` / ``--seeds`` (never two processes on the same run);
``--report-only`` then tabulates the finished runs without training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: name -> TrainConfig overrides
VARIANTS: dict[str, dict] = {
    "no-training": {"mode": "none", "credit": "local"},
    "independent": {"mode": "independent", "credit": "equal"},
    "local": {"credit": "local"},
    "global": {"credit": "global"},
    "equal": {"credit": "equal"},
    "adaptive (CoMAM)": {"credit": "adaptive"},
    "adaptive-alg1": {"credit": "adaptive-alg1"},
    "adaptive-decoupled": {"credit": "adaptive-decoupled"},
    "leave-one-out": {"credit": "leave-one-out"},
    "shared policy (adaptive)": {"credit": "adaptive", "shared_policy": True},
}


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (0 half-width for one value)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="synthetic-32k")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--batch-queries", type=int, default=16)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--target", type=float, default=None, help="accuracy for the convergence-steps column")
    p.add_argument("--lr", type=float, default=1e-2, help="GRPO learning rate (selection policies: 1e-2, see docs/training.md)")
    p.add_argument("--inner-epochs", type=int, default=2, help="GRPO inner epochs per batch")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="subset of variants to run")
    p.add_argument("--out", default="runs/credit_ablation")
    p.add_argument("--docs", default="docs", help="where the markdown table and the figure go")
    p.add_argument("--report-only", action="store_true",
                   help="do not train: tabulate the finished runs under --out (runs without summary.json are skipped and listed)")
    p.add_argument("--env-kw", action="append", default=[], metavar="KEY=VALUE", help="extra comam_env.make kwargs (JSON values)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from agents.comam import TrainConfig, train
    from agents.plots import read_metrics
    from comam_env.cli import parse_key_value

    env_kwargs = {}
    for kv in args.env_kw:
        k, v = parse_key_value(kv)
        env_kwargs[k] = v
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")

    rows = []
    curves: dict[str, list[list[tuple[int, float]]]] = {}
    train_curves: dict[str, list[list[tuple[int, float]]]] = {}
    args.missing = []
    for name in args.variants:
        per_seed = []
        for seed in args.seeds:
            cfg = TrainConfig(
                env=args.env, seed=seed, iterations=args.iterations, batch_queries=args.batch_queries,
                group_size=args.group_size, eval_every=args.eval_every, checkpoint_every=args.eval_every,
                eval_limit=args.eval_limit, target_accuracy=args.target, progress=False,
                env_kwargs=env_kwargs, grpo={"lr": args.lr, "inner_epochs": args.inner_epochs}, **VARIANTS[name],
            )
            run_dir = Path(args.out) / name.split(" ")[0] / f"seed{seed}"
            if name.startswith("shared"):
                run_dir = Path(args.out) / "shared" / f"seed{seed}"
            # Wall time is measured when a run actually trains and kept next to it, so re-running
            # the sweep (which resumes finished runs instantly) still reports the real cost.
            wall_file = run_dir / "wall_seconds.json"
            if args.report_only:
                if not (run_dir / "summary.json").exists() or not wall_file.exists():
                    args.missing.append(f"{name} seed {seed}")
                    continue
                summary = json.loads((run_dir / "summary.json").read_text())
                records = read_metrics(run_dir)
                curves.setdefault(name, []).append(
                    [(r["iteration"], r["val_accuracy"]) for r in records if r.get("val_accuracy") is not None])
                train_curves.setdefault(name, []).append(
                    [(r["iteration"], r["train_accuracy"]) for r in records if r.get("train_accuracy") is not None])
                per_seed.append({**summary, "wall_seconds": json.loads(wall_file.read_text())["wall_seconds"],
                                 "seed": seed, "train_last5": _train_last(records)})
                continue
            t0 = time.perf_counter()
            summary = train(cfg, run_dir)
            wall = time.perf_counter() - t0
            if wall_file.exists():
                wall = json.loads(wall_file.read_text())["wall_seconds"]
            else:
                wall_file.write_text(json.dumps({"wall_seconds": wall}))
            records = read_metrics(run_dir)
            curve = [(r["iteration"], r["val_accuracy"]) for r in records if r.get("val_accuracy") is not None]
            curves.setdefault(name, []).append(curve)
            train_curves.setdefault(name, []).append(
                [(r["iteration"], r["train_accuracy"]) for r in records if r.get("train_accuracy") is not None])
            per_seed.append({**summary, "wall_seconds": wall, "seed": seed, "train_last5": _train_last(records)})
            print(f"{name:28s} seed {seed}: val acc {summary['val_accuracy']:.3f}  ({wall:.0f} s)", flush=True)
        if not per_seed:
            continue
        acc = t_interval([s["val_accuracy"] for s in per_seed])
        row = {"variant": name, "acc_mean": acc[0], "acc_ci": acc[1], "n_seeds": len(per_seed),
               "per_seed": {s["seed"]: s["val_accuracy"] for s in per_seed},
               "wall_seconds": float(np.mean([s["wall_seconds"] for s in per_seed]))}
        for role in ("extractor", "profiler", "retriever"):
            vals = [s.get(f"val_local_{role}") for s in per_seed if s.get(f"val_local_{role}") is not None]
            row[f"local_{role}"] = float(np.mean(vals)) if vals else None
        last = [s["train_last5"] for s in per_seed if s["train_last5"] is not None]
        row["train_last5"] = float(np.mean(last)) if last else None
        steps = [s.get("steps_to_target") for s in per_seed]
        row["steps_to_target"] = steps
        rows.append(row)

    _write_docs(args, rows, curves, train_curves)
    print()
    print((Path(args.docs) / "credit_ablation.md").read_text())
    return 0


def _train_last(records, n=5):
    """Mean training-rollout accuracy (T = 1.0, evidence-session episodes) of the last ``n`` iterations."""
    vals = [r["train_accuracy"] for r in records if r.get("iteration", 0) > 0 and "train_accuracy" in r]
    return float(np.mean(vals[-n:])) if vals else None


def _fmt(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def _write_docs(args, rows, curves, train_curves=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    budget = args.iterations * args.batch_queries * args.group_size
    cmd = "python benchmarks/credit_ablation.py " + " ".join(sys.argv[1:])
    lines = [
        "# Credit-assignment ablation (selection policies, CPU)",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Environment `{args.env}`, seeds {args.seeds}, {args.iterations} iterations × {args.batch_queries} "
        f"queries × G = {args.group_size} = {budget} training trajectories per run (the same budget for every "
        "variant). Validation accuracy: greedy evaluation on the validation split (full-history episodes), "
        "mean ± 95% t-interval over seeds. Train acc: mean answer accuracy of the sampled training rollouts (T = 1.0, evidence-session episodes) over the last 5 iterations, mean over seeds. Local rewards: validation means. Steps to target: first "
        f"iteration whose validation accuracy ≥ {args.target} (per seed; – = never).",
        "",
        "| variant | seeds | val accuracy | per seed | train acc (last 5 it) | extractor r_ext | profiler r_prof | retriever r_ret | steps to target | wall s/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = ", ".join("–" if s is None else str(s) for s in r["steps_to_target"]) if args.target else "n/a"
        seeds = ", ".join(f"{v:.3f}" for _, v in sorted(r["per_seed"].items()))
        lines.append(
            f"| {r['variant']} | {r['n_seeds']} | {r['acc_mean']:.3f} ± {r['acc_ci']:.3f} | {seeds} | {_fmt(r['train_last5'])} | {_fmt(r['local_extractor'])} | "
            f"{_fmt(r['local_profiler'])} | {_fmt(r['local_retriever'])} | {steps} | {r['wall_seconds']:.0f} |"
        )
    if args.missing:
        lines += ["", "Runs not finished when this table was made (left out): " + "; ".join(args.missing) + "."]
    lines += ["", "![validation accuracy per variant](credit_ablation.png)", ""]
    tmp = docs / "credit_ablation.md.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, docs / "credit_ablation.md")

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5))
    for k, (name, runs) in enumerate(curves.items()):
        color = f"C{k}"
        its = sorted({i for run in runs for i, _ in run})
        mean = [np.mean([dict(run).get(i, np.nan) for run in runs]) for i in its]
        if len(its) == 1:  # no training: the untrained level as a reference line
            ax.axhline(mean[0], color=color, ls="--", label=name)
        else:
            ax.plot(its, mean, marker="o", color=color, label=name)
        tr = (train_curves or {}).get(name)
        if tr and any(tr):
            its = sorted({i for run in tr for i, _ in run})
            m = np.array([np.mean([dict(run).get(i, np.nan) for run in tr]) for i in its])
            smooth = np.convolve(m, np.ones(5) / 5, mode="valid") if len(m) >= 5 else m
            ax2.plot(its[len(its) - len(smooth):], smooth, color=color, label=name)
    ax.set(xlabel="iteration", ylabel="validation accuracy (greedy, full history)",
           title=f"{args.env}: validation accuracy (mean over seeds)")
    ax2.set(xlabel="iteration", ylabel="training-rollout accuracy (T=1, evidence session)",
            title="training rollouts (mean over seeds, 5-iteration moving average)")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(docs / "credit_ablation.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
