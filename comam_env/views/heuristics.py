"""Fixed policies over the selection view's arrays (no learning, numpy only).

They act on one selection-view observation (the ``Dict`` of
:mod:`comam_env.views.selection`) and return an action of that role's space.
The single-agent view uses them for the roles that do not learn; they are also
the "similarity heuristic" reference points of the examples.

* :class:`SimilarityPolicy` — keep the ``top_k`` valid candidates most similar
  (cosine; rows are L2-normalised) to a reference: the query embedding for the
  retriever, the centroid of the valid candidates for the extractor and the
  profiler (their MDP inputs do not include the query). Ties: earlier
  candidate first. The retriever then picks the option most similar to the
  mean embedding of the kept candidates (the retrieved memory); with nothing
  kept, or no options, the option most similar to the query.
* :class:`KeepAllPolicy` — keep every valid candidate (option: as above).
* :class:`RandomPolicy` — each valid candidate kept with probability ``p``,
  a uniform option; from an explicit seeded generator.

Every policy is a callable ``policy(obs) -> action``; ``obs`` may also be a
single-agent observation (no ``role``: pass ``role=``; the extractor's and
profiler's have no ``query``/``options``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from comam_env.roles import role_of
from comam_env.views.selection import N_OPTIONS

__all__ = ["SimilarityPolicy", "KeepAllPolicy", "RandomPolicy", "get_fixed_policy", "DEFAULT_TOP_K", "pick_option"]

#: Default ``top_k`` per role of the similarity heuristic.
DEFAULT_TOP_K: Mapping[str, int] = {"extractor": 8, "profiler": 8, "retriever": 3}


def _role(obs: Mapping[str, Any], role: str | None) -> str:
    if role is not None:
        return role
    if "role" not in obs:
        raise ValueError("observation has no 'role' entry: pass role= to the policy")
    return role_of(int(obs["role"]))


def pick_option(obs: Mapping[str, Any], keep: np.ndarray) -> int:
    """Option index most similar to the kept candidates' mean (or to the query)."""
    opts = np.asarray(obs["options"], dtype=np.float32)
    valid = np.abs(opts).sum(axis=1) > 0
    if not valid.any():
        return 0
    cands = np.asarray(obs["candidates"], dtype=np.float32)
    ref = cands[keep.astype(bool)].mean(axis=0) if keep.any() else np.asarray(obs["query"], dtype=np.float32)
    scores = np.where(valid, opts @ ref, -np.inf)
    return int(np.argmax(scores))


def _action(role: str, keep: np.ndarray, option: int) -> np.ndarray:
    if role == "retriever":
        return np.concatenate([keep.astype(np.int64), [option]])
    return keep.astype(np.int8)


@dataclass
class SimilarityPolicy:
    """Keep the ``top_k`` candidates most similar to the query (retriever) or centroid.

    Attributes:
        top_k: candidates kept (None: :data:`DEFAULT_TOP_K` of the role).
        role: role name when observations carry no ``role`` entry.
    """

    top_k: int | None = None
    role: str | None = None

    def __call__(self, obs: Mapping[str, Any]) -> np.ndarray:
        role = _role(obs, self.role)
        mask = np.asarray(obs["mask"]).astype(bool)
        cands = np.asarray(obs["candidates"], dtype=np.float32)
        k = self.top_k if self.top_k is not None else DEFAULT_TOP_K[role]
        query = np.asarray(obs["query"], dtype=np.float32) if "query" in obs else np.zeros(cands.shape[1], np.float32)
        ref = query if role == "retriever" and query.any() else (cands[mask].mean(axis=0) if mask.any() else query)
        scores = np.where(mask, cands @ ref, -np.inf)
        order = np.argsort(-scores, kind="stable")[: min(k, int(mask.sum()))]
        keep = np.zeros(mask.shape[0], dtype=bool)
        keep[order] = True
        return _action(role, keep, pick_option(obs, keep) if role == "retriever" else 0)


@dataclass
class KeepAllPolicy:
    """Keep every valid candidate; the retriever answers like :class:`SimilarityPolicy`."""

    role: str | None = None

    def __call__(self, obs: Mapping[str, Any]) -> np.ndarray:
        role = _role(obs, self.role)
        keep = np.asarray(obs["mask"]).astype(bool)
        return _action(role, keep, pick_option(obs, keep) if role == "retriever" else 0)


@dataclass
class RandomPolicy:
    """Keep each valid candidate with probability ``p``; uniform option."""

    p: float = 0.5
    seed: int = 0
    role: str | None = None
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, obs: Mapping[str, Any]) -> np.ndarray:
        role = _role(obs, self.role)
        mask = np.asarray(obs["mask"]).astype(bool)
        keep = mask & (self.rng.random(mask.shape[0]) < self.p)
        return _action(role, keep, int(self.rng.integers(N_OPTIONS)))


def get_fixed_policy(spec: Any, role: str, seed: int = 0) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """A fixed policy from a name (``"similarity"``, ``"all"``, ``"random"``) or a callable."""
    if callable(spec):
        return spec
    if spec in (None, "similarity"):
        return SimilarityPolicy(role=role)
    if spec == "all":
        return KeepAllPolicy(role=role)
    if spec == "random":
        return RandomPolicy(seed=seed, role=role)
    raise ValueError(f"unknown fixed policy {spec!r} for role {role!r}; expected 'similarity', 'all', 'random' or a callable")
