"""Rollouts on Ray actors, behind ``comam-env train --rollout-workers N``: :class:`RayEnvPool` (envs on
actors, selection policies) and :class:`RayRolloutWorkers` (envs and generation on actors, LLM policies).

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

What runs where (selection policies): env stepping — text rendering, reward computation and the
selection view's candidate embedding (MiniLM or the hashing embedder) — runs on the actors; the
policy's forward pass runs in the learner, batched across all N actors' envs.

LLM policies: :class:`RayRolloutWorkers`. Each actor (:class:`RolloutWorker`) holds its envs *and*
a replica of the policy (the base model loaded from the same path, built from the learner's
``LLMPolicyConfig``) and plays whole episodes: generation and env stepping both run there. Per
iteration the learner ships the policy's trainable state only — the LoRA adapter tensors of every
role (:meth:`agents.llm.LLMPolicy.trainable_state`; the whole models when ``lora=False``), put once
into Ray's object store — together with each actor's share of the batch (whole groups, group b on
actor b mod N, with their reset and sampling seeds). The actors answer with their trajectories and
actions (prompt and completion token ids, per-token behaviour log-probs: what the GRPO update
needs), which the learner merges back into the batch order; the update, the evaluation and the
leave-one-out counterfactuals stay in the learner. Sampling uses per-episode streams
(:func:`agents.rollout.episode_seeds`) and each generation call covers one group
(:func:`agents.rollout.collect_rollouts` with ``sample_seeds``), so an episode's tokens do not
depend on which actor plays it or on what else that actor plays: N = 0, 1, 2, … give bit-identical
rollouts and metrics at equal torch thread counts (the actors run one thread each). vLLM engines as
GPU actors are not implemented (the actors request CPUs only).

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
import socket
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .rollout import Action, EnvPool, LocalEnvPool, RolloutBatch, SlotStatus, Trajectory, collect_rollouts

__all__ = ["EnvWorker", "RayEnvPool", "RayRolloutWorkers", "RolloutWorker", "init_ray"]

RAY_MISSING = ("--rollout-workers N > 0 runs on Ray, which is not installed: pip install 'comam-env[integrations]' "
               "(or pip install ray==2.60.0); --rollout-workers 0 runs in process without it")


class EnvWorker:
    """A Ray actor's share of the pool (wrapped with ``ray.remote`` by :class:`RayEnvPool`)."""

    def __init__(self, make_envs: Callable[[int], list], n: int, threads: int = 1) -> None:
        torch.set_num_threads(threads)  # one core per actor: the envs are single-threaded work
        self.pool = LocalEnvPool(make_envs(n))

    def reset(self, assignments: Mapping[int, tuple[int, dict]]) -> dict[int, SlotStatus]:
        return self.pool.reset(assignments)

    def step(self, actions: Mapping[int, Any]) -> dict[int, SlotStatus]:
        return self.pool.step(actions)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nobody listens on: ``ray.init`` itself
    retries such an address for minutes."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--ray-address {address!r}: expected 'auto', host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"--ray-address {address}: no Ray cluster reachable there ({exc}); start one with "
                              "`ray start --head` (workers: `ray start --address=HEAD:6379`) or leave "
                              "--ray-address out to start a local instance") from None


def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """``ray.init`` once: on the cluster at ``address`` (``"auto"`` or ``host:port``), else a local
    instance with ``num_cpus`` CPUs whose workers import this checkout (``PYTHONPATH``). Raises
    ``ImportError`` when Ray is not installed and ``ConnectionError`` when no cluster answers at
    ``address``, both saying what to do."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(RAY_MISSING, name="ray") from exc

    if ray.is_initialized():
        return ray
    if address:
        if address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise ConnectionError(f"--ray-address {address}: {exc} (start a cluster with `ray start --head`, "
                                  "or leave --ray-address out to start a local instance)") from None
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


class RolloutWorker:
    """A Ray actor playing whole episodes: its envs plus a replica of the policy (wrapped with
    ``ray.remote`` by :class:`RayRolloutWorkers`; see the module docstring)."""

    def __init__(self, make_envs: Callable[[int], list], n: int, make_policy: Callable[[], Any],
                 threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self.envs = make_envs(n)
        self.policy = make_policy()

    def rollouts(self, state: dict | None, queries: Sequence[Any], group_size: int, reset_seeds: Sequence[int],
                 sample_seeds: Sequence[int], temperature: float, greedy: bool) -> tuple[RolloutBatch, dict]:
        """Install ``state`` (the learner's :meth:`trainable_state`; ``None`` keeps the current one),
        play ``len(queries) × group_size`` episodes with per-episode streams, and return the batch
        (in this share's own indices) and the generation stats."""
        if state is not None:
            self.policy.load_trainable_state(state)
        self.policy.train()  # the learner's mode during rollouts (generation itself runs in eval mode)
        pop = getattr(self.policy, "pop_generation_stats", None)
        if pop is not None:
            pop()
        with torch.no_grad():
            batch = collect_rollouts(self.envs, {r: self.policy for r in ("extractor", "profiler", "retriever")},
                                     list(queries), group_size, rng=np.random.default_rng(0),
                                     temperature=temperature, greedy=greedy,
                                     reset_seeds=np.asarray(reset_seeds), sample_seeds=list(sample_seeds))
        return batch, (pop() if pop is not None else {})


class RayRolloutWorkers:
    """Rollouts of a policy that generates on ``workers`` Ray actors (see the module docstring).

    Args:
        make_envs: picklable ``count -> list of envs`` (each actor builds its own).
        n_envs: the learner's env pool size; each actor gets ``ceil(n_envs / workers)`` envs,
            rounded down to whole groups (at least one group).
        workers: Ray actors (capped at ``groups``: an actor plays whole groups).
        make_policy: picklable ``() -> policy`` building the replica (same config as the learner's
            policy, which must offer ``trainable_state`` / ``load_trainable_state``).
        group_size: G, trajectories per query.
        groups: queries per batch (B), caps ``workers``.
        address: an existing cluster; ``None`` starts a local one with ``workers`` CPUs.
    """

    def __init__(self, make_envs: Callable[[int], list], n_envs: int, workers: int, make_policy: Callable[[], Any],
                 *, group_size: int, groups: int, address: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"RayRolloutWorkers needs at least one worker, got {workers}")
        self.group_size = int(group_size)
        self.workers = max(1, min(int(workers), int(groups)))
        self._ray = ray = init_ray(address, num_cpus=None if address else self.workers)
        per_actor = max(1, -(-int(n_envs) // self.workers) // self.group_size) * self.group_size
        actor = ray.remote(num_cpus=1)(RolloutWorker)
        self._actors = [actor.remote(make_envs, per_actor, make_policy) for _ in range(self.workers)]
        self._stats: dict[str, dict] = {}

    def collect(self, policy, question_ids: Sequence[Any], *, reset_seeds: Sequence[int], sample_seeds: Sequence[int],
                temperature: float = 1.0, greedy: bool = False) -> RolloutBatch:
        """The :class:`RolloutBatch` that :func:`agents.rollout.collect_rollouts` with the same
        ``reset_seeds`` / ``sample_seeds`` gives in process, generated by the actors with
        ``policy``'s current trainable state."""
        if not self._actors:
            raise RuntimeError("RayRolloutWorkers.collect: the workers were closed")
        G = self.group_size
        n = len(question_ids) * G
        if len(reset_seeds) != n or len(sample_seeds) != n:
            raise ValueError(f"need {n} reset and sample seeds, got {len(reset_seeds)} and {len(sample_seeds)}")
        state = self._ray.put(policy.trainable_state())  # stored once, read by every actor
        shares = [list(range(w, len(question_ids), self.workers)) for w in range(self.workers)]
        pending = []
        for w, groups in enumerate(shares):
            if not groups:
                continue
            ts = [b * G + g for b in groups for g in range(G)]
            ref = self._actors[w].rollouts.remote(state, [question_ids[b] for b in groups], G,
                                                  [int(reset_seeds[t]) for t in ts],
                                                  [int(sample_seeds[t]) for t in ts], float(temperature), bool(greedy))
            pending.append((groups, ref))
        trajectories: list[Trajectory | None] = [None] * n
        actions: list[Action] = []
        for (groups, _), (part, stats) in zip(pending, self._ray.get([ref for _, ref in pending]), strict=True):
            for t in part.trajectories:  # share-local (group j, member g) -> batch (groups[j], g)
                t.group = groups[t.group]
                trajectories[t.group * G + t.member] = t
            for a in part.actions:
                a.trajectory = groups[a.trajectory // G] * G + a.trajectory % G
                actions.append(a)
            for role, st in stats.items():
                acc = self._stats.setdefault(role, {"tokens": 0, "seconds": 0.0, "calls": 0})
                for k in acc:
                    acc[k] += st.get(k, 0)
        actions.sort(key=lambda a: a.trajectory)  # stable: each trajectory's actions stay in step order
        return RolloutBatch(list(question_ids), G, trajectories, actions)  # type: ignore[arg-type]

    def pop_generation_stats(self) -> dict[str, dict]:
        """Generated tokens, generation seconds (summed over the actors) and ``act`` calls per role
        since the last call (then reset)."""
        out, self._stats = self._stats, {}
        return out

    def close(self) -> None:
        """Stop the actors (their CPUs return to the cluster)."""
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
