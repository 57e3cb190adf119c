"""Throughput of SelectionPolicy acting / re-scoring and of one PerAgentGRPO update on CPU.

Synthetic selection-view observations (random unit vectors) of the sizes the trainer uses;
prints milliseconds per call and samples per second. No assertions: numbers only.

    .venv/bin/python benchmarks/selection_grpo_speed.py [--batch 256] [--K 64] [--dim 384] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from agents.base import ALL_ROLES, RETRIEVER
from agents.credit import assign_credit_batch
from agents.grpo import GRPOConfig, PerAgentGRPO, RoleBatch, group_advantages
from agents.selection import SelectionPolicy


def _obs(rng, role, n, K, d):
    out = []
    for _ in range(n):
        v = int(rng.integers(K // 4, K + 1))
        c = np.zeros((K, d), np.float32)
        c[:v] = rng.normal(size=(v, d))
        c[:v] /= np.linalg.norm(c[:v], axis=1, keepdims=True)
        m = np.zeros(K, np.int8)
        m[:v] = 1
        ret = role == RETRIEVER
        out.append({"role": role, "candidates": c, "mask": m,
                    "query": rng.normal(size=d).astype(np.float32) if ret else np.zeros(d, np.float32),
                    "options": rng.normal(size=(4, d)).astype(np.float32) if ret else np.zeros((4, d), np.float32)})
    return out


def _time(fn, reps):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256, help="samples per role (B·G)")
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    policy = SelectionPolicy(dim=args.dim)
    gen = torch.Generator().manual_seed(0)
    obs = {r: _obs(rng, r, args.batch, args.K, args.dim) for r in ALL_ROLES}
    print(f"B={args.batch} K={args.K} d={args.dim} threads={args.threads}")
    outs = {}
    for r in ALL_ROLES:
        dt = _time(lambda: outs.__setitem__(r, policy.act(r, obs[r], generator=gen)), args.reps)
        dl = _time(lambda: policy.logprobs_of(r, outs[r].samples), args.reps)
        print(f"role {r}: act {dt * 1e3:8.1f} ms ({args.batch / dt:8.0f} samples/s)   "
              f"logprobs_of {dl * 1e3:8.1f} ms ({args.batch / dl:8.0f} samples/s)")
    G = 8
    B = args.batch // G
    local = {r: rng.random((B, G)) for r in ALL_ROLES}
    glob = (rng.random((B, G)) < 0.5).astype(float)
    dc = _time(lambda: assign_credit_batch("adaptive", local, glob), args.reps)
    print(f"assign_credit_batch adaptive (B={B}, G={G}, 3 roles): {dc * 1e3:.2f} ms")
    credit = assign_credit_batch("adaptive", local, glob)
    batches = {r: RoleBatch(outs[r].samples[: B * G], group_advantages(credit.rewards[r]).reshape(-1)) for r in ALL_ROLES}
    updater = PerAgentGRPO(policy, GRPOConfig(lr=1e-3, inner_epochs=2, minibatch_size=64))
    du = _time(lambda: updater.update(batches), args.reps)
    print(f"PerAgentGRPO.update (3 roles × {B * G} samples, 2 epochs, minibatch 64): {du * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
