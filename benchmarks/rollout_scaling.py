"""Rollout throughput in process (N = 0) or on N Ray actors (N = 1, 2).

Each measurement plays one training iteration's episodes (``--queries`` × ``--group-size``) over
the envs ``comam-env train`` builds (``TrainConfig`` defaults otherwise) and reports trajectories/s
(wall time, best of ``--repeats``; pools, actors and models are built and warmed up before timing).
It checks that every N gives the same rollouts as the first N measured. Ray runs a local instance
with max(N) CPUs (``--address`` for an existing cluster).

* ``--policy selection`` (default): the selection view with an untrained selection policy acting in
  this process; N > 0 steps the envs on the actors (:class:`agents.ray_rollout.RayEnvPool`).
* ``--policy llm``: the text view with an LLM policy (default: the tiny random Llama of
  :mod:`agents.tiny`, ``--model`` for another); N = 0 generates here, N > 0 generates *and* steps
  on the actors (:class:`agents.ray_rollout.RayRolloutWorkers`, the adapters shipped per
  collection as in training), with per-episode sampling streams. Also reports generated tokens/s.

Run: ``python benchmarks/rollout_scaling.py [--policy llm] [--workers 0 1 2] [--queries 16] [--group-size 8]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.comam import TrainConfig, _build_policy, _make_envs  # noqa: E402
from agents.rollout import collect_rollouts, episode_seeds  # noqa: E402

ROLES = ("extractor", "profiler", "retriever")


def _fingerprint(batch, llm: bool) -> list:
    """What must not change with N: rewards, and for LLM policies every generated token and its
    behaviour log-prob."""
    out = [batch.global_matrix().tolist()]
    if llm:
        out += [(a.trajectory, a.role, a.sample["completion_ids"].tolist(), a.sample["token_logprobs"].tolist())
                for a in batch.actions]
    return out


def measure(play, repeats) -> tuple[float, object]:
    best, batch = float("inf"), None
    for rep in range(repeats + 1):  # the first run warms caches (embeddings, history lines, actors) up
        t0 = time.perf_counter()
        batch = play()
        if rep:
            best = min(best, time.perf_counter() - t0)
    return best, batch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--policy", choices=("selection", "llm"), default="selection", help="policy kind")
    p.add_argument("--model", help="--policy llm: model folder or hub id (default: the tiny random Llama)")
    p.add_argument("--max-new-tokens", type=int, default=16, help="--policy llm: generated tokens per action bound")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="Ray actor counts to measure (0 = in process)")
    p.add_argument("--queries", type=int, default=16, help="questions per iteration (B)")
    p.add_argument("--group-size", type=int, default=8, help="trajectories per question (G)")
    p.add_argument("--env-pool", type=int, default=64, help="envs stepped in lockstep (per N; LLM: whole groups)")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is reported)")
    p.add_argument("--address", help="existing Ray cluster (default: a local instance)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of this process (what N = 0 generates with; the actors use 1 each)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    llm = args.policy == "llm"

    kw = {}
    if llm:
        from agents.tiny import build_tiny_llm

        model = args.model or build_tiny_llm(Path(tempfile.mkdtemp(prefix="rollout-scaling-")) / "tiny")
        kw = dict(policy="llm", policy_kwargs={"model": model, "max_new_tokens": args.max_new_tokens})
    cfg = TrainConfig(env=args.env, env_pool=args.env_pool, group_size=args.group_size, progress=False, **kw)
    make = partial(_make_envs, cfg, split="train", episode=cfg.train_episode)
    probe = make(1)[0]
    policy = _build_policy(cfg, probe)
    if llm:
        policy.train()  # the trainer's mode during rollouts (generation itself runs in eval mode)
    else:
        policy.eval()
    policies = {r: policy for r in ROLES}
    ids = list(probe.unwrapped.question_ids[: args.queries])
    G = args.group_size
    n = len(ids) * G
    reset = np.random.default_rng(0).integers(0, 2**31 - 1, size=n)
    streams = episode_seeds(0, 0, ids, G)
    res, tokens, reference = {}, {}, None
    for workers in args.workers:
        if workers:
            from agents.ray_rollout import init_ray

            init_ray(args.address, num_cpus=None if args.address else max(args.workers))
        if llm and workers:
            from agents.ray_rollout import RayRolloutWorkers

            pool = RayRolloutWorkers(make, args.env_pool, workers, partial(type(policy), policy.config),
                                     group_size=G, groups=len(ids), address=args.address)
            play = partial(pool.collect, policy, ids, reset_seeds=reset, sample_seeds=streams)
        else:
            if workers:
                from agents.ray_rollout import RayEnvPool

                pool = RayEnvPool(make, args.env_pool, workers, address=args.address)
            else:
                pool = make(max(G, args.env_pool // G * G) if llm else args.env_pool)

            def play(pool=pool):
                # selection: a fresh shared stream per run, so every repeat plays the same episodes
                seeds = {"sample_seeds": streams} if llm else {"generator": torch.Generator().manual_seed(0)}
                with torch.no_grad():
                    return collect_rollouts(pool, policies, ids, G, rng=np.random.default_rng(0), reset_seeds=reset,
                                            **seeds)
        seconds, batch = measure(play, args.repeats)
        if hasattr(pool, "close"):
            pool.close()
        result = _fingerprint(batch, llm)
        reference = result if reference is None else reference
        if result != reference:
            raise SystemExit(f"N={workers}: rollouts differ from N={args.workers[0]}")
        res[workers] = n / seconds
        line = f"N={workers}: {n} trajectories in {seconds:.3f} s = {res[workers]:.1f} trajectories/s"
        if llm:
            tokens[workers] = sum(len(a.sample["completion_ids"]) for a in batch.actions) / seconds
            line += f", {tokens[workers]:.0f} generated tokens/s"
        if workers != args.workers[0]:
            line += f" ({res[workers] / res[args.workers[0]]:.2f}x N={args.workers[0]})"
        print(line, flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        print(json.dumps({"policy": args.policy, "trajectories_per_s": res, "trajectories": n,
                          **({"tokens_per_s": tokens} if llm else {})}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
