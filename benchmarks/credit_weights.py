"""Why adaptive credit ≈ equal share here: the rank-consistency weights w_n during training.

Trains selection policies with adaptive credit (`agents.comam.Trainer`) and, every ``--every``
iterations, samples a fixed probe batch (the first ``--questions`` training questions, G
trajectories each, the same seeds every time) with the current policies. On that batch it prints

* the share of *degenerate* groups, where all G answers agree: every agent gets v = 1 and
  w = 1/3 there, and the answer reward adds nothing to the group-normalised advantage;
* over the other groups: the mean rank consistency v_n per role, the mean spread
  max_n v_n − min_n v_n within a group, and the range of the weights w_n;
* per role: the mean and standard deviation of w_n over those groups (how far adaptive credit
  moves away from the equal 1/3 share, role by role).

The difficulty knobs of issue 13 item 4 are arguments here: ``--alpha`` (the extractor's recall
weight, eq. 9: keeping everything raises its coverage while the retriever's memory budget makes
an over-inclusive M_f crowd out the evidence), ``--judge gold:<beta>`` (the profiler's recall
weight, eq. 10: a verbose profile scores higher and eats the budget), ``--view-kw
memory_budget=...`` (the budget itself; ``null`` = the paper's setting) and ``--train-episode``.
``--json`` prints one object with every probe row.

    python benchmarks/credit_weights.py                 # what docs/credit_ablation.md quotes (~30 s)
    python benchmarks/credit_weights.py --view-kw memory_budget=null --json   # the paper's setting
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--alpha", type=float, default=0.8, help="extractor recall weight of eq. 9 (difficulty knob)")
    p.add_argument("--judge", default="auto", help="profile judge, e.g. gold:4 (recall weight 4: difficulty knob)")
    p.add_argument("--train-episode", default="evidence-session",
                   help="training (and probe) episodes: evidence-session, evidence+context, full-history")
    p.add_argument("--view-kw", action="append", default=[], metavar="KEY=JSON",
                   help="selection-view keyword, e.g. memory_budget=16 or memory_budget=null (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    view_kwargs = {}
    for item in args.view_kw:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--view-kw needs KEY=JSON, got {item!r}")
        try:
            view_kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            p.error(f"--view-kw {key}: {value!r} is not JSON")

    import torch

    torch.set_num_threads(1)
    from agents.base import ROLE_NAMES
    from agents.comam import TrainConfig, Trainer, _policies_for_roles
    from agents.credit import assign_credit_batch
    from agents.rollout import collect_rollouts

    env_kwargs = {"judge": args.judge}
    if view_kwargs:
        env_kwargs["view_kwargs"] = view_kwargs
    cfg = TrainConfig(env=args.env, seed=args.seed, credit="adaptive", iterations=args.iterations,
                      batch_queries=args.batch_queries, group_size=args.group_size, alpha=args.alpha,
                      train_episode=args.train_episode, env_kwargs=env_kwargs,
                      eval_every=10**9, checkpoint_every=10**9, progress=False)
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix="credit-weights-"))
    probe_ids = trainer.train_ids[: args.questions]
    rows = []
    say = (lambda *a, **k: None) if args.json else print
    say(f"{args.env}, adaptive credit, seed {args.seed}, alpha {args.alpha}, judge {args.judge}, "
        f"{args.train_episode} episodes, view {view_kwargs or 'defaults'}; "
        f"probe: {len(probe_ids)} training questions × G = {args.group_size}")
    say(f"{'iteration':>9s} {'degenerate':>10s}  {'mean v_n (' + ', '.join(ROLE_NAMES) + ')':44s} {'v spread':>8s}  "
        f"{'w_n range':16s}  mean ± sd w_n per role")
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
            row = {"iteration": it, "degenerate": float(degenerate.mean()), "groups": int(len(v)),
                   "answer_accuracy": float(answers.mean())}
            if len(v):
                row.update(v_mean=dict(zip(ROLE_NAMES, v.mean(0).tolist())), v_spread=float(np.mean(v.max(1) - v.min(1))),
                           w_range=[float(w.min()), float(w.max())], w_mean=dict(zip(ROLE_NAMES, w.mean(0).tolist())),
                           w_sd=dict(zip(ROLE_NAMES, w.std(0).tolist())))
                means = ", ".join(f"{x:.3f}" for x in v.mean(0))
                per_role = ", ".join(f"{m:.3f}±{sd:.3f}" for m, sd in zip(w.mean(0), w.std(0)))
                say(f"{it:9d} {degenerate.mean():10.2f}  {means:44s} {row['v_spread']:8.3f}  "
                    f"[{w.min():.3f}, {w.max():.3f}]    {per_role}", flush=True)
            else:
                say(f"{it:9d} {degenerate.mean():10.2f}  (every group degenerate)", flush=True)
            rows.append(row)
        if it < args.iterations:
            trainer.step()
    if args.json:
        print(json.dumps({"env": args.env, "seed": args.seed, "alpha": args.alpha, "judge": args.judge,
                          "train_episode": args.train_episode, "view_kwargs": view_kwargs,
                          "probe_questions": len(probe_ids), "group_size": args.group_size, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
