"""The paper's ablations as a CPU benchmark: every credit strategy, no training, independent
optimisation and a shared policy, on synthetic-32k with selection policies.

Every variant gets the same rollout budget (iterations × batch_queries × group_size
trajectories) and is run for several seeds. The script prints, per variant, validation
accuracy (mean ± 95% t-interval over seeds), per-agent local rewards, the iteration at which
validation accuracy first reaches ``--target`` (the paper's convergence-steps table) and wall
time; it writes the table into ``docs/credit_ablation.md`` (between two marker comments, so the
hand-written reading around it survives a re-run) and the figure ``docs/credit_ablation.png``
(validation accuracy curves, mean over seeds; ``--name`` changes the file stem).

Validation runs through ``--eval-episode`` episodes (default ``evidence-session``: held-out
questions, episodes of the training kind); the final policy is also evaluated once on the other
kind (``full-history``), which the selection view caps near chance — see docs/credit_ablation.md.

    python benchmarks/credit_ablation.py --seeds 0 1 2 3 4 --iterations 60 --batch-queries 8 --group-size 8 \
        --eval-every 5 --target 0.45 --out runs/credit_ablation_v3       # what docs/credit_ablation.md used

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

#: variant name -> (run directory name, TrainConfig overrides)
VARIANTS: dict[str, tuple[str, dict]] = {
    "no-training": ("no-training", {"mode": "none", "credit": "local"}),
    "independent": ("independent", {"mode": "independent", "credit": "equal"}),
    "local": ("local", {"credit": "local"}),
    "global": ("global", {"credit": "global"}),
    "equal": ("equal", {"credit": "equal"}),
    "adaptive (CoMAM)": ("adaptive", {"credit": "adaptive"}),
    "adaptive, w temperature 0.1": ("adaptive-t0.1", {"credit": "adaptive", "credit_kwargs": {"temperature": 0.1}}),
    "adaptive-alg1": ("adaptive-alg1", {"credit": "adaptive-alg1"}),
    "adaptive-decoupled": ("adaptive-decoupled", {"credit": "adaptive-decoupled"}),
    "leave-one-out": ("leave-one-out", {"credit": "leave-one-out"}),
    "shared policy (adaptive)": ("shared", {"credit": "adaptive", "shared_policy": True}),
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
    p.add_argument("--train-episode", choices=("evidence-session", "full-history"), default="evidence-session",
                   help="training episodes (the paper trains on evidence sessions)")
    p.add_argument("--eval-episode", choices=("evidence-session", "full-history"), default="evidence-session",
                   help="episodes of the periodic validation (the curves, the headline column and steps to target); "
                        "the final policy is also evaluated once on the other kind (see docs/credit_ablation.md)")
    p.add_argument("--target", type=float, default=None, help="accuracy for the convergence-steps column")
    p.add_argument("--lr", type=float, default=1e-2, help="GRPO learning rate (selection policies: 1e-2, see docs/training.md)")
    p.add_argument("--inner-epochs", type=int, default=2, help="GRPO inner epochs per batch")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="subset of variants to run")
    p.add_argument("--out", default="runs/credit_ablation")
    p.add_argument("--docs", default="docs", help="where the markdown table and the figure go")
    p.add_argument("--name", default="credit_ablation",
                   help="file stem of the report: DOCS/NAME.md and DOCS/NAME.png")
    p.add_argument("--report-only", action="store_true",
                   help="do not train: tabulate the finished runs under --out (runs without summary.json are skipped and listed)")
    p.add_argument("--env-kw", action="append", default=[], metavar="KEY=VALUE", help="extra comam_env.make kwargs (JSON values)")
    p.add_argument("--policy-kw", action="append", default=[], metavar="KEY=VALUE",
                   help="extra SelectionPolicy fields (JSON values), e.g. position_features=true")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from agents.comam import TrainConfig, train
    from agents.plots import read_metrics
    from comam_env.cli import parse_key_value

    env_kwargs = dict(parse_key_value(kv) for kv in args.env_kw)
    policy_kwargs = dict(parse_key_value(kv) for kv in args.policy_kw)
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
                eval_limit=args.eval_limit, train_episode=args.train_episode, eval_episode=args.eval_episode,
                target_accuracy=args.target, progress=False, env_kwargs=env_kwargs, policy_kwargs=policy_kwargs,
                grpo={"lr": args.lr, "inner_epochs": args.inner_epochs}, **VARIANTS[name][1],
            )
            run_dir = Path(args.out) / VARIANTS[name][0] / f"seed{seed}"
            # Wall time is measured when a run actually trains and kept next to it, so re-running
            # the sweep (which resumes finished runs instantly) still reports the real cost.
            wall_file = run_dir / "wall_seconds.json"
            if args.report_only:
                if not (run_dir / "summary.json").exists() or not wall_file.exists():
                    args.missing.append(f"{name} seed {seed}")
                    continue
                summary = json.loads((run_dir / "summary.json").read_text())
            else:
                t0 = time.perf_counter()
                summary = train(cfg, run_dir)
                if not wall_file.exists():
                    wall_file.write_text(json.dumps({"wall_seconds": time.perf_counter() - t0}))
            wall = json.loads(wall_file.read_text())["wall_seconds"]
            records = read_metrics(run_dir)
            curves.setdefault(name, []).append(
                [(r["iteration"], r["val_accuracy"]) for r in records if r.get("val_accuracy") is not None])
            train_curves.setdefault(name, []).append(
                [(r["iteration"], r["train_accuracy"]) for r in records if r.get("train_accuracy") is not None])
            other = _other_episode_eval(cfg, run_dir, summary["iteration"])
            per_seed.append({**summary, "wall_seconds": wall, "seed": seed, "train_last5": _train_last(records),
                             "other": other})
            if not args.report_only:
                print(f"{name:28s} seed {seed}: val acc {summary['val_accuracy']:.3f} ({args.eval_episode}), "
                      f"{other['accuracy']:.3f} ({other['episode']})  ({wall:.0f} s)", flush=True)
        if not per_seed:
            continue
        acc = t_interval([s["val_accuracy"] for s in per_seed])
        row = {"variant": name, "acc_mean": acc[0], "acc_ci": acc[1], "n_seeds": len(per_seed),
               "per_seed": {s["seed"]: s["val_accuracy"] for s in per_seed},
               "wall_seconds": float(np.mean([s["wall_seconds"] for s in per_seed]))}
        for role in ("extractor", "profiler", "retriever"):
            vals = [s.get(f"val_local_{role}") for s in per_seed if s.get(f"val_local_{role}") is not None]
            row[f"local_{role}"] = float(np.mean(vals)) if vals else None
        other = t_interval([s["other"]["accuracy"] for s in per_seed])
        row["other_mean"], row["other_ci"] = other
        last = [s["train_last5"] for s in per_seed if s["train_last5"] is not None]
        row["train_last5"] = float(np.mean(last)) if last else None
        steps = [s.get("steps_to_target") for s in per_seed]
        row["steps_to_target"] = steps
        rows.append(row)

    _write_docs(args, rows, curves, train_curves)
    print()
    print(_generated_section(args))
    return 0


OTHER_EPISODE = {"evidence-session": "full-history", "full-history": "evidence-session"}


def _other_episode_eval(cfg, run_dir: Path, iteration: int) -> dict:
    """Greedy validation accuracy of the run's final policy (at ``iteration``) on the episode kind
    the periodic evaluation did not use; computed once and kept in ``run_dir/other_episode_eval.json``
    (recomputed when the run has trained further since)."""
    episode = OTHER_EPISODE[cfg.eval_episode]
    path = run_dir / "other_episode_eval.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("episode") == episode and cached.get("iteration") == iteration:
            return cached
    from agents.base import load_policy
    from agents.comam import evaluate_policy
    from baselines.trained import policy_dir

    res = evaluate_policy(cfg, load_policy(policy_dir(run_dir)), episode=episode)
    out = {"iteration": iteration, **res}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)
    return out


def _train_last(records, n=5):
    """Mean training-rollout accuracy (T = 1.0, evidence-session episodes) of the last ``n`` iterations."""
    vals = [r["train_accuracy"] for r in records if r.get("iteration", 0) > 0 and "train_accuracy" in r]
    return float(np.mean(vals[-n:])) if vals else None


GENERATED_START = "<!-- credit_ablation.py: generated table (start) -->"
GENERATED_END = "<!-- credit_ablation.py: generated table (end) -->"


def _write_report(path: Path, table: str) -> None:
    """Write the generated table into ``path`` between the two markers, keeping any hand-written
    text around them (the reading of the results); a new file holds just the table."""
    block = f"{GENERATED_START}\n{table}\n{GENERATED_END}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if GENERATED_START in text and GENERATED_END in text:
        head, rest = text.split(GENERATED_START, 1)
        tail = rest.split(GENERATED_END, 1)[1]
        text = head + block + tail
    else:
        text = block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _generated_section(args) -> str:
    text = (Path(args.docs) / f"{args.name}.md").read_text(encoding="utf-8")
    return text.split(GENERATED_START, 1)[1].split(GENERATED_END, 1)[0].strip()


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
    other_episode = OTHER_EPISODE[args.eval_episode]
    lines = [
        "# Credit-assignment ablation (selection policies, CPU)",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        f"Environment `{args.env}`, seeds {args.seeds}, {args.iterations} iterations × {args.batch_queries} "
        f"queries × G = {args.group_size} = {budget} training trajectories per run (the same budget for every "
        f"variant). Val accuracy: greedy evaluation on the validation split ({args.eval_episode} episodes; the curves, "
        "the headline column and steps to target), mean ± 95% t-interval over seeds. "
        f"Other episodes: the final policy evaluated once, greedily, on {other_episode} validation episodes. "
        "Train acc: mean answer accuracy of the sampled training rollouts (T = 1.0, evidence-session episodes) over "
        "the last 5 iterations, mean over seeds. Local rewards: validation means. Steps to target: first "
        f"iteration whose validation accuracy ≥ {args.target} (per seed; – = never).",
        "",
        f"| variant | seeds | val accuracy ({args.eval_episode}) | per seed | val accuracy ({other_episode}) | "
        "train acc (last 5 it) | extractor r_ext | profiler r_prof | retriever r_ret | steps to target | wall s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = ", ".join("–" if s is None else str(s) for s in r["steps_to_target"]) if args.target else "n/a"
        seeds = ", ".join(f"{v:.3f}" for _, v in sorted(r["per_seed"].items()))
        lines.append(
            f"| {r['variant']} | {r['n_seeds']} | {r['acc_mean']:.3f} ± {r['acc_ci']:.3f} | {seeds} | "
            f"{r['other_mean']:.3f} ± {r['other_ci']:.3f} | {_fmt(r['train_last5'])} | {_fmt(r['local_extractor'])} | "
            f"{_fmt(r['local_profiler'])} | {_fmt(r['local_retriever'])} | {steps} | {r['wall_seconds']:.0f} |"
        )
    if args.missing:
        lines += ["", "Runs not finished when this table was made (left out): " + "; ".join(args.missing) + "."]
    lines += ["", f"![validation accuracy per variant]({args.name}.png)"]
    _write_report(docs / f"{args.name}.md", "\n".join(lines))

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5))
    for k, (name, runs) in enumerate(curves.items()):
        color = f"C{k}" if k < 10 else "black"  # matplotlib cycles 10 colours
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
    ax.set(xlabel="iteration", ylabel=f"validation accuracy (greedy, {args.eval_episode})",
           title=f"{args.env}: validation accuracy (mean over seeds)")
    ax2.set(xlabel="iteration", ylabel="training-rollout accuracy (T=1, evidence session)",
            title="training rollouts (mean over seeds, 5-iteration moving average)")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(docs / f"{args.name}.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
