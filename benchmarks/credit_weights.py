"""Why adaptive credit ≈ equal share here: the rank-consistency weights w_n during training.

Trains selection policies with adaptive credit (`agents.comam.Trainer`) and, every ``--every``
iterations, samples a fixed probe batch (the first ``--questions`` training questions, G
trajectories each, the same seeds every time) with the current policies. On that batch it prints

* the share of *degenerate* groups, where all G answers agree: every agent gets v = 1 and
  w = 1/3 there, and the answer reward adds nothing to the group-normalised advantage;
* over the other groups: the mean rank consistency v_n per role, the mean spread
  max_n v_n − min_n v_n within a group, and the range of the weights w_n.

    python benchmarks/credit_weights.py                 # what docs/credit_ablation.md quotes (~30 s)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="synthetic-32k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--batch-queries", type=int, default=8)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--every", type=int, default=10, help="probe every N iterations (and after the last)")
    p.add_argument("--questions", type=int, default=64, help="probe questions (the first N training questions)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from agents.base import ROLE_NAMES
    from agents.comam import TrainConfig, Trainer, _policies_for_roles
    from agents.credit import assign_credit_batch
    from agents.rollout import collect_rollouts

    cfg = TrainConfig(env=args.env, seed=args.seed, credit="adaptive", iterations=args.iterations,
                      batch_queries=args.batch_queries, group_size=args.group_size,
                      eval_every=10**9, checkpoint_every=10**9, progress=False)
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix="credit-weights-"))
    probe_ids = trainer.train_ids[: args.questions]
    print(f"{args.env}, adaptive credit, seed {args.seed}; probe: {len(probe_ids)} training questions × G = {args.group_size}")
    print(f"{'iteration':>9s} {'degenerate':>10s}  {'mean v_n (' + ', '.join(ROLE_NAMES) + ')':44s} {'v spread':>8s}  w_n range")
    for it in range(args.iterations + 1):
        if it % args.every == 0 or it == args.iterations:
            with torch.no_grad():
                batch = collect_rollouts(trainer.train_envs, _policies_for_roles(trainer.policy), probe_ids,
                                         args.group_size, rng=np.random.default_rng(12345),
                                         generator=torch.Generator().manual_seed(12345))
            answers = batch.global_matrix()
            credit = assign_credit_batch("adaptive", {r: batch.local_matrix(r) for r in ROLE_NAMES}, answers)
            degenerate = np.all(answers == answers[:, :1], axis=1)
            v, w = credit.consistency[~degenerate], credit.weights[~degenerate]
            if len(v):
                means = ", ".join(f"{x:.3f}" for x in v.mean(0))
                print(f"{it:9d} {degenerate.mean():10.2f}  {means:44s} {np.mean(v.max(1) - v.min(1)):8.3f}  "
                      f"[{w.min():.3f}, {w.max():.3f}]", flush=True)
            else:
                print(f"{it:9d} {degenerate.mean():10.2f}  (every group degenerate)", flush=True)
        if it < args.iterations:
            trainer.step()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
