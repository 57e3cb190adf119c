"""Rollout throughput with the training envs in process (N = 0) or on N Ray actors (N = 1, 2).

Each measurement runs :func:`agents.rollout.collect_rollouts` for one training iteration's
episodes (``--queries`` × ``--group-size``) over a pool of ``--env-pool`` envs built exactly as
``comam-env train`` builds them (``TrainConfig`` defaults: selection view, the env's default
embedder), with an untrained selection policy acting in this process. It reports trajectories/s
(wall time, best of ``--repeats``; the pool is built and warmed up before timing) and checks that
every N gives the same rollouts as N = 0. Ray runs a local instance with N CPUs (``--address``
for an existing cluster).

Run: ``python benchmarks/rollout_scaling.py [--workers 0 1 2] [--queries 16] [--group-size 8]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.comam import TrainConfig, _build_policy, _make_envs  # noqa: E402
from agents.rollout import collect_rollouts  # noqa: E402


def measure(pool, policy, ids, group, repeats) -> tuple[float, list]:
    policies = {r: policy for r in ("extractor", "profiler", "retriever")}
    best, result = float("inf"), None
    for rep in range(repeats + 1):  # the first run warms caches (embeddings, history lines) up
        t0 = time.perf_counter()
        with torch.no_grad():
            batch = collect_rollouts(pool, policies, ids, group, rng=np.random.default_rng(0),
                                     generator=torch.Generator().manual_seed(0))
        if rep:
            best = min(best, time.perf_counter() - t0)
        result = batch.global_matrix().tolist()
    return best, result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="Ray actor counts to measure (0 = in process)")
    p.add_argument("--queries", type=int, default=16, help="questions per iteration (B)")
    p.add_argument("--group-size", type=int, default=8, help="trajectories per question (G)")
    p.add_argument("--env-pool", type=int, default=64, help="envs stepped in lockstep")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is reported)")
    p.add_argument("--address", help="existing Ray cluster (default: a local instance)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    cfg = TrainConfig(env=args.env, env_pool=args.env_pool, progress=False)
    make = partial(_make_envs, cfg, split="train", episode=cfg.train_episode)
    probe = make(1)[0]
    policy = _build_policy(cfg, probe)
    policy.eval()
    ids = list(probe.unwrapped.question_ids[: args.queries])
    n = len(ids) * args.group_size
    res, reference = {}, None
    for workers in args.workers:
        if workers == 0:
            pool = make(args.env_pool)
        else:
            from agents.ray_rollout import RayEnvPool, init_ray

            init_ray(args.address, num_cpus=None if args.address else max(args.workers))
            pool = RayEnvPool(make, args.env_pool, workers, address=args.address)
        seconds, result = measure(pool, policy, ids, args.group_size, args.repeats)
        if hasattr(pool, "close"):
            pool.close()
        reference = result if reference is None else reference
        if result != reference:
            raise SystemExit(f"N={workers}: rollouts differ from N={args.workers[0]}")
        res[workers] = n / seconds
        print(f"N={workers}: {n} trajectories in {seconds:.3f} s = {res[workers]:.1f} trajectories/s"
              + (f" ({res[workers] / res[args.workers[0]]:.2f}x N={args.workers[0]})" if workers != args.workers[0] else ""))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        print(json.dumps({"trajectories_per_s": res, "trajectories": n}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
