"""Full-history evaluation speed of a selection policy: the per-question paths against the
grouped, memoised paths, measured in one run (docs/performance.md, "Evaluation").

Four ways to evaluate the same greedy policy on the same full-history validation questions:

* ``harness, one question at a time`` — ``PolicySystem.answer`` per question, one env, batch 1
  (what ``comam-env evaluate --run`` did before ``answer_batch``);
* ``harness, answer_batch`` — what ``comam-env evaluate --run`` does now;
* ``lockstep, one episode per question`` — ``agents.rollout.collect_rollouts`` over a pool of 32
  envs, one full-history episode per question, no memo (the trainer's evaluation before);
* ``evaluate (grouped + memo)`` — :func:`agents.rollout.evaluate` now: one episode per visible
  history, the extractor's chunk decisions memoised, the view's chunk encodings shared.

Prints questions/s by wall clock and by process CPU time (the box is shared: CPU time is the
steadier number), the speed-up of each path over the slowest, and checks that every path gives
the same answers (and the same per-question rewards where both report them).

    python benchmarks/eval_speed.py --run runs/NAME        # a trained run (config.json + checkpoint/)
    python benchmarks/eval_speed.py                        # an untrained policy on synthetic-32k
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


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="training run directory (default: an untrained policy)")
    p.add_argument("--env", default="synthetic-32k", help="environment id when no --run is given")
    p.add_argument("--split", default="validation")
    p.add_argument("--limit", type=int, default=None, help="questions for the fast paths (default: the whole split)")
    p.add_argument("--slow-limit", type=int, default=32,
                   help="questions for the one-question-at-a-time harness path (about 0.3-1 s each)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from agents.base import ROLE_NAMES, load_policy
    from agents.comam import TrainConfig, _build_policy, _make_eval_envs, _split_ids
    from agents.rollout import collect_rollouts, evaluate, question_results
    from baselines.policy_system import PolicySystem
    from comam_env.views import selection as selection_view

    if args.run:
        from baselines.trained import policy_dir, read_run_config

        rc = read_run_config(args.run)
        cfg = TrainConfig.from_dict({k: v for k, v in rc.raw.items() if k in {f for f in TrainConfig.__dataclass_fields__}})
        cfg.progress = False
        policy = load_policy(policy_dir(args.run))
    else:
        cfg = TrainConfig(env=args.env, progress=False)
        policy = None
    (envs, build_s, _) = _timed(lambda: _make_eval_envs(cfg, args.split, "full-history"))
    if policy is None:
        policy = _build_policy(cfg, envs[0])
    policy.eval()
    policies = {r: policy for r in ROLE_NAMES}
    ids = _split_ids(envs[0])
    ids = ids[: args.limit] if args.limit else ids
    slow_ids = ids[: args.slow_limit]
    dataset = envs[0].unwrapped.dataset

    def cold():  # every path starts without the view's shared chunk encodings
        selection_view._CHUNK_STATES.clear()

    rows = {}

    cold()
    system = PolicySystem(policies, env_id=cfg.env, view=cfg.view, env_kwargs=cfg.env_kwargs, seed=cfg.seed)
    system.prepare(dataset)
    one, w, c = _timed(lambda: [system.answer(dataset.question(q), None) for q in slow_ids])
    rows["harness, one question at a time"] = (len(slow_ids), w, c)
    slow_answers = {q: pr.answer for q, pr in zip(slow_ids, one)}

    cold()
    system = PolicySystem(policies, env_id=cfg.env, view=cfg.view, env_kwargs=cfg.env_kwargs, seed=cfg.seed)
    system.prepare(dataset)
    batched, w, c = _timed(lambda: system.answer_batch([dataset.question(q) for q in ids]))
    rows["harness, answer_batch"] = (len(ids), w, c)
    batch_answers = {q: pr.answer for q, pr in zip(ids, batched)}

    cold()

    def lockstep():
        with torch.no_grad():
            b = collect_rollouts(envs, policies, ids, 1, rng=np.random.default_rng(cfg.seed),
                                 generator=torch.Generator().manual_seed(cfg.seed), greedy=True)
        res = {}
        for t in b.trajectories:
            res.update(question_results(t.record))
        return res

    per_episode, w, c = _timed(lockstep)
    rows["lockstep, one episode per question"] = (len(ids), w, c)

    cold()
    grouped, w, c = _timed(lambda: evaluate(envs, policies, ids, seed=cfg.seed))
    rows["evaluate (grouped + memo)"] = (len(ids), w, c)

    mismatches = {
        "answer_batch vs one at a time": sum(batch_answers[q] != slow_answers[q] for q in slow_ids),
        "evaluate vs one episode per question (answers)": sum(
            grouped["answers"][q] != per_episode[q]["parsed"] for q in ids),
        "evaluate vs one episode per question (rewards)": sum(
            grouped["per_question"][q] != {"reward": per_episode[q]["reward"], "local": per_episode[q]["local"]}
            for q in ids),
    }
    slowest = min(n / cp for n, _, cp in rows.values())
    out = {
        "env": cfg.env, "split": args.split, "run": args.run, "n_questions": len(ids),
        "env_build_seconds": round(build_s, 2), "load_average": os.getloadavg()[0],
        "accuracy": grouped["accuracy"],
        "paths": {name: {"questions": n, "wall_s": round(w, 3), "cpu_s": round(c, 3), "q_per_s_wall": round(n / w, 1),
                         "q_per_s_cpu": round(n / c, 1), "speedup_cpu": round(n / c / slowest, 1)}
                  for name, (n, w, c) in rows.items()},
        "mismatches": mismatches,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{cfg.env} {args.split}, full-history, {len(ids)} questions (run {args.run or 'untrained'}); "
              f"load average {out['load_average']:.1f}; accuracy {grouped['accuracy']:.3f}")
        print(f"{'path':40s} {'questions':>9s} {'wall s':>8s} {'cpu s':>8s} {'q/s wall':>9s} {'q/s cpu':>9s} {'× (cpu)':>8s}")
        for name, r in out["paths"].items():
            print(f"{name:40s} {r['questions']:9d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['q_per_s_wall']:9.1f} "
                  f"{r['q_per_s_cpu']:9.1f} {r['speedup_cpu']:8.1f}")
        print("mismatches:", mismatches)
    return 1 if any(mismatches.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
