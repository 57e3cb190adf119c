"""Rollout envs on Ray actors: :class:`RayEnvPool`, the pool behind ``comam-env train --rollout-workers N``.

Design
------
:func:`agents.rollout.collect_rollouts` runs B·G episodes in lockstep over a pool of envs: each
tick it batches the envs waiting for the same role into one ``policy.act`` call, then steps them.
A pool (:class:`agents.rollout.EnvPool`) is addressed by slot; :class:`RayEnvPool` spreads the
slots over ``N`` Ray actors (slot ``k`` lives on actor ``k mod N``), each an
:class:`EnvWorker` holding its share of the envs in a :class:`agents.rollout.LocalEnvPool`. Per
tick the learner sends every actor its slots' actions in one call, the actors step their envs in
parallel and answer with the next observations (or finished trajectories). The policies stay in
the learner's process and act on the same batches in the same order as with in-process envs, so
**the same seed gives identical rollouts, rewards and metrics for any N** (the envs are pure
functions of their seed, question and actions). ``N = 0`` keeps everything in process.

What runs where: env stepping — text rendering, reward computation, and for the selection view
candidate embedding (MiniLM or the hashing embedder) — runs on the actors; sampling (the policy's
forward pass, for LLM policies its generation) runs in the learner, batched across all N actors'
envs. Generation on actors (weights broadcast each iteration, per-episode RNG streams so results
stay N-invariant, vLLM engines as actors on GPU nodes) is the next step and is not implemented.

Multi-node: start a cluster (``ray start --head`` on one node, ``ray start --address=HEAD:6379``
on the others, comam-env installed on every node with the same pins and the data in each node's
cache) and pass ``--ray-address HEAD:6379`` (or ``auto``): the actors are placed on the cluster's
CPUs, one per worker. A tick costs one round trip per actor, so actors pay off when a tick's env
work per actor (embedding, long-history rendering) exceeds the network latency — many envs per
actor (``--env-pool``) amortise it. Without an address a local Ray instance is started with one
CPU per worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .rollout import EnvPool, LocalEnvPool, SlotStatus

__all__ = ["EnvWorker", "RayEnvPool", "init_ray"]


class EnvWorker:
    """A Ray actor's share of the pool (wrapped with ``ray.remote`` by :class:`RayEnvPool`)."""

    def __init__(self, make_envs: Callable[[int], list], n: int, threads: int = 1) -> None:
        try:
            import torch

            torch.set_num_threads(threads)  # one core per actor: the envs are single-threaded work
        except ImportError:  # pragma: no cover - torch is a core dependency
            pass
        self.pool = LocalEnvPool(make_envs(n))

    def reset(self, assignments: Mapping[int, tuple[int, dict]]) -> dict[int, SlotStatus]:
        return self.pool.reset(assignments)

    def step(self, actions: Mapping[int, Any]) -> dict[int, SlotStatus]:
        return self.pool.step(actions)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """``ray.init`` once: on the cluster at ``address`` (``"auto"`` or ``host:port``), else a local
    instance with ``num_cpus`` CPUs whose workers import this checkout (``PYTHONPATH``)."""
    import ray

    if ray.is_initialized():
        return ray
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    return ray


class RayEnvPool(EnvPool):
    """``n_envs`` envs built by ``make_envs(count)`` on ``workers`` Ray actors (see the module docstring).

    Args:
        make_envs: picklable ``count -> list of envs`` (each actor builds its own share).
        n_envs: pool size (slots).
        workers: Ray actors (capped at ``n_envs``).
        address: an existing cluster (``"auto"``, ``"host:6379"``); ``None`` starts a local one
            with ``workers`` CPUs.
    """

    def __init__(self, make_envs: Callable[[int], list], n_envs: int, workers: int, *,
                 address: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"RayEnvPool needs at least one worker, got {workers}")
        if n_envs < 1:
            raise ValueError(f"RayEnvPool needs at least one env, got {n_envs}")
        self._ray = ray = init_ray(address, num_cpus=None if address else workers)
        self.workers = min(int(workers), int(n_envs))
        self.n_envs = int(n_envs)
        actor = ray.remote(num_cpus=1)(EnvWorker)
        shares = [len(range(w, self.n_envs, self.workers)) for w in range(self.workers)]
        self._actors = [actor.remote(make_envs, n) for n in shares]

    def __len__(self) -> int:
        return self.n_envs

    def _route(self, items: Mapping[int, Any]) -> list[dict[int, Any]]:
        parts: list[dict[int, Any]] = [{} for _ in self._actors]
        for k, value in items.items():
            if not 0 <= k < self.n_envs:
                raise IndexError(f"slot {k} outside the pool of {self.n_envs} envs")
            parts[k % self.workers][k // self.workers] = value
        return parts

    def _call(self, method: str, items: Mapping[int, Any]) -> dict[int, SlotStatus]:
        parts = self._route(items)
        pending = [(w, getattr(self._actors[w], method).remote(part)) for w, part in enumerate(parts) if part]
        out: dict[int, SlotStatus] = {}
        for (w, _), result in zip(pending, self._ray.get([ref for _, ref in pending]), strict=True):
            for local, status in result.items():
                out[local * self.workers + w] = status
        return out

    def reset(self, assignments: Mapping[int, tuple[int, dict]]) -> dict[int, SlotStatus]:
        return self._call("reset", assignments)

    def step(self, actions: Mapping[int, Any]) -> dict[int, SlotStatus]:
        return self._call("step", actions)

    def close(self) -> None:
        """Stop the actors (their CPUs return to the cluster)."""
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
