"""Memoised greedy acting: a policy wrapper that answers a repeated observation from a cache.

Greedy acting is a deterministic function of the parameters and the observation (the policy
contract in :mod:`agents.base`), so during an evaluation — parameters fixed — an observation seen
before can be answered with the action chosen then. Full-history evaluation repeats observations
a lot: every question of a history replays the extractor over the same sessions (a history with
12 validation questions shows its first session's chunk 12 times), so
:func:`agents.rollout.evaluate` wraps the extractor's policy in :class:`GreedyMemo` for greedy
evaluation. Sampled acting is never memoised (the wrapper refuses it).

An observation is looked up by a cheap key (text as is, arrays by a fixed random projection) and a
hit is confirmed by exact comparison, so selection-view and text-view observations are both
covered and a hit is always the same observation. A cache lives as long as its wrapper: make a
new one whenever the parameters change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .base import ActOutput

__all__ = ["GreedyMemo", "observation_key"]


_PROJECTIONS: dict[int, np.ndarray] = {}


def _fingerprint(value: Any) -> Any:
    """A cheap hashable summary of one observation field; equal fields, equal summaries.

    Text is its own key. A small array is its bytes; a large one (a ``(K, d)`` candidate matrix)
    is summarised by a fixed random projection of its rows, which costs one matrix-vector
    product instead of hashing every byte — equal arrays project equally, and a lookup still
    compares the arrays exactly (:func:`_same`), so a projection collision cannot return a
    wrong action.
    """
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.size <= 1024 or arr.ndim == 0:
        return (arr.dtype.str, arr.shape, arr.tobytes())
    width = arr.shape[-1]
    proj = _PROJECTIONS.get(width)
    if proj is None:
        proj = _PROJECTIONS[width] = np.random.default_rng(0).standard_normal(width)
    return (arr.dtype.str, arr.shape, (arr.reshape(-1, width) @ proj).tobytes())


def observation_key(role: int, observation: Any) -> tuple:
    """A hashable key of ``observation`` of ``role`` (equal observations, equal keys; unequal
    ones almost always differ, and :class:`GreedyMemo` checks equality on a hit)."""
    if isinstance(observation, Mapping):
        return (int(role),) + tuple((k, _fingerprint(v)) for k, v in sorted(observation.items()))
    return (int(role), _fingerprint(observation))


def _same(a: Any, b: Any) -> bool:
    """Exact equality of two observations (dicts of arrays/strings, or one array/string)."""
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b))


class GreedyMemo:
    """Wraps a policy for greedy acting; each distinct observation reaches the policy once.

    Only ``act`` is provided (and ``eval``/``train`` forwarded): the wrapper is for evaluation
    loops, never for collecting training samples. ``hits`` and ``misses`` count observations.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.batch_roles_in_order = bool(getattr(policy, "batch_roles_in_order", False))
        # key -> [(observation, (action, logprob, sample, info)), ...] (a list: keys may collide)
        self._cache: dict[tuple, list[tuple[Any, tuple]]] = {}
        self.hits = 0
        self.misses = 0

    def eval(self) -> GreedyMemo:
        self.policy.eval()
        return self

    def train(self) -> GreedyMemo:
        self.policy.train()
        return self

    def act(self, role: int, observations: Sequence[Any], *, greedy: bool = True,
            generator: torch.Generator | None = None, **kwargs: Any) -> ActOutput:
        if not greedy:
            raise ValueError("GreedyMemo only memoises greedy acting (sampled actions must not be reused)")
        results: list[Any] = [None] * len(observations)  # a result, or the index of an equal queued observation
        todo: list[int] = []
        queued: dict[tuple, list[int]] = {}
        keys = [observation_key(role, o) for o in observations]
        for i, (o, key) in enumerate(zip(observations, keys)):
            hit = next((res for seen, res in self._cache.get(key, ()) if _same(seen, o)), None)
            if hit is not None:
                results[i] = hit
                continue
            # a repeat of an observation already queued in this batch is answered by it
            dup = next((j for j in queued.get(key, ()) if _same(observations[j], o)), None)
            if dup is None:
                todo.append(i)
                queued.setdefault(key, []).append(i)
            results[i] = dup
        self.misses += len(todo)
        self.hits += len(observations) - len(todo)
        if todo:
            out = self.policy.act(role, [observations[i] for i in todo], greedy=True, generator=generator, **kwargs)
            for j, i in enumerate(todo):
                res = (out.actions[j], float(out.logprobs[j]), out.samples[j], dict(out.info[j]))
                self._cache.setdefault(keys[i], []).append((observations[i], res))
                results[i] = res
        done = [results[r] if isinstance(r, int) else r for r in results]
        # Copies: an env or caller mutating an action must not corrupt the cache.
        actions = [a.copy() if isinstance(a, np.ndarray) else a for a, _, _, _ in done]
        return ActOutput(actions=actions, logprobs=torch.tensor([lp for _, lp, _, _ in done], dtype=torch.float32),
                         samples=[s for _, _, s, _ in done], info=[dict(i) for _, _, _, i in done])
