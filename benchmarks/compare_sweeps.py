"""Paired comparison of one variant between two credit-ablation sweeps (e.g. two training curricula).

Each sweep folder is a ``benchmarks/credit_ablation.py --out`` folder; the runs compared are
``<variant key>/it<iterations>/seed<s>/final_eval.json`` of both, over the seeds both have. Prints,
per episode kind, each sweep's mean accuracy over seeds and the paired difference (A − B) over
seeds × questions with a two-way bootstrap 95% interval and p-value
(:func:`comam_env.stats.two_way_bootstrap`), as the ablation report does.

    python benchmarks/compare_sweeps.py runs/credit_ablation_curriculum runs/credit_ablation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _episodes(run: Path) -> dict:
    """The per-question evaluation of one run's final policy, by episode kind."""
    path = run / "final_eval.json"
    if not path.exists():
        raise SystemExit(f"compare_sweeps: {path} is missing (run the sweep first)")
    return json.loads(path.read_text())["episodes"]


def _correct(evaluation: dict, run: Path, episode: str) -> dict[str, float]:
    if episode not in evaluation:
        raise SystemExit(f"compare_sweeps: {run / 'final_eval.json'} has no {episode!r} evaluation")
    return evaluation[episode]["correct"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_a", type=Path, help="first sweep folder (A)")
    p.add_argument("sweep_b", type=Path, help="second sweep folder (B)")
    p.add_argument("--variant", default="adaptive", help="run-folder name of the variant (e.g. adaptive, equal)")
    p.add_argument("--iterations", type=int, default=60, help="iterations of the compared runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    from comam_env.stats import two_way_bootstrap

    runs = {side: [sweep / args.variant / f"it{args.iterations}" / f"seed{s}" for s in args.seeds]
            for side, sweep in (("a", args.sweep_a), ("b", args.sweep_b))}
    evaluations = {side: [_episodes(run) for run in rs] for side, rs in runs.items()}  # each file read once
    out = {}
    for episode in ("evidence-session", "full-history"):
        a, b = ([_correct(e, run, episode) for e, run in zip(evaluations[side], runs[side])] for side in ("a", "b"))
        questions = sorted(a[0])
        if any(sorted(x) != questions for x in a + b):
            raise SystemExit(f"compare_sweeps: the runs were evaluated on different {episode} questions")
        A = np.array([[x[q] for q in questions] for x in a])
        B = np.array([[x[q] for q in questions] for x in b])
        test = two_way_bootstrap(A - B, seed=0)
        out[episode] = {"accuracy_a": float(A.mean()), "accuracy_b": float(B.mean()),
                        "per_seed_a": A.mean(1).round(4).tolist(), "per_seed_b": B.mean(1).round(4).tolist(), **test}
    if args.json:
        print(json.dumps(out))
        return
    print("| episodes | A | B | Δ (A − B) [95% CI] | p |")
    print("|---|---|---|---|---|")
    for episode, r in out.items():
        lo, hi = r["ci95"]
        print(f"| {episode} | {r['accuracy_a']:.3f} | {r['accuracy_b']:.3f} | {r['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r['p_value']:.3f} |")


if __name__ == "__main__":
    main()
