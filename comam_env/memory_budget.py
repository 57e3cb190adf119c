"""The retriever's memory budget: which memory units a retriever is shown (docs/design.md §7).

One rule, used by both views: the text view (``EnvConfig.memory_budget``, default ``None``) and
the selection view (``memory_budget``, default 16 units, :mod:`comam_env.views.selection`).

Rule
----
Memory texts are split into units (:func:`comam_env.text.split_units`); exact duplicates are
shown once (first occurrence), and a fine-memory unit that is also a profile unit is shown once,
as a profile unit (:func:`memory_units`). Real memory systems prepend the user profile to every
prompt and retrieve from the fine-grained store under a budget, so under ``budget = B`` units the
retriever sees

1. the units of M_c (the profile), in profile order — all of them when there are at most ``B``,
   else the ``B`` most similar to the query;
2. then the ``B − (profile units shown)`` units of M_f (not already in the profile) most similar
   to the query, in chronological order.

Similarity is the cosine of the embeddings (rows are L2-normalised, so the dot product); ties go
to the earlier unit; a query that embeds to zero ties every unit, so the earliest are kept.

The budget counts units of both memories: a profile longer than ``B`` leaves no room for M_f, so
a verbose profile (e.g. the profiler keeping all of M_f) costs the answer the query-relevant fine
memory, and an over-inclusive M_f crowds the evidence out of the ``B − |M_c|`` slots with
query-similar stale statements and decoys. Facts no query resembles (the synthetic habits) reach
the retriever only through the profile.

``budget=None`` is the paper's setting: no budget, the retriever sees all of M = M_f followed by
M_c. Defaults: the text view ``None``; the selection view :data:`SELECTION_DEFAULT_BUDGET` = 16.

Contents
--------
* :func:`check_budget` — validation (a positive integer or ``None``; a ``ValueError`` naming it).
* :func:`dedupe`, :func:`memory_units` — the de-duplicated profile and fine-memory units.
* :func:`top_in_order`, :func:`budgeted_memory` — the rule on embeddings (indices kept).
* :class:`MemoryBudget` — the rule on texts, with its own embedder and in-memory cache (what the
  text view uses; the selection view applies :func:`budgeted_memory` to its candidate embeddings).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from comam_env.embed import EmbeddingCache, get_embedder
from comam_env.text import split_units

__all__ = ["SELECTION_DEFAULT_BUDGET", "check_budget", "dedupe", "memory_units", "top_in_order", "budgeted_memory",
           "MemoryBudget"]

#: Units of memory the selection view's retriever sees by default (the text view's default is ``None``).
SELECTION_DEFAULT_BUDGET = 16

# Texts a MemoryBudget keeps embedded before it starts a fresh cache (an LLM writes new lines every
# episode; 32,768 hashing vectors are 32 MB).
_CACHE_LIMIT = 1 << 15


def check_budget(name: str, value: Any) -> int | None:
    """``value`` as an int when it is an integer >= 1, ``None`` when it is ``None``; else a
    ``ValueError`` naming ``name`` (booleans, floats such as 2.5 and strings such as "16" are refused)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer (memory units) or None (no budget, the paper's "
                         f"setting), got {value!r}")
    return int(value)


def dedupe(texts: Sequence[str]) -> list[str]:
    """``texts`` without empty strings and repeats (first occurrence kept, order kept)."""
    seen: set[str] = set()
    out = []
    for t in texts:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def memory_units(profile_units: Sequence[str], fine_units: Sequence[str]) -> tuple[list[str], list[str]]:
    """The profile's units and the fine memory's units not in the profile, each de-duplicated."""
    profile = dedupe(profile_units)
    seen = set(profile)
    return profile, [t for t in dedupe(fine_units) if t not in seen]


def top_in_order(emb: np.ndarray, ref: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` rows of ``emb`` most similar to ``ref`` (ties: earlier row), ascending."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n >= len(emb):
        return np.arange(len(emb))
    return np.sort(np.argsort(-(emb @ ref), kind="stable")[:n])


def budgeted_memory(profile: Sequence[str], fine: Sequence[str], profile_emb: np.ndarray, fine_emb: np.ndarray,
                    query_emb: np.ndarray, budget: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Which profile and fine-memory units a retriever sees under ``budget`` (module docstring).

    ``profile`` and ``fine`` are de-duplicated unit texts (``fine`` without the profile's,
    :func:`memory_units`); returns the kept indices of each, ascending. ``budget=None`` keeps
    everything.
    """
    if budget is None:
        return np.arange(len(profile)), np.arange(len(fine))
    keep_p = top_in_order(profile_emb, query_emb, budget)
    return keep_p, top_in_order(fine_emb, query_emb, budget - len(keep_p))


class MemoryBudget:
    """The budget rule on memory texts: :meth:`select` returns the units a retriever is shown.

    Args:
        budget: units shown (:func:`check_budget`); ``None`` shows everything.
        embedder: ``"hashing"`` (default: deterministic, no model), ``"minilm"`` or an embedder
            object (``name``, ``dim``, ``encode``), :func:`comam_env.embed.get_embedder`.

    Embeddings are kept in an in-memory :class:`~comam_env.embed.EmbeddingCache` (started afresh
    past 32,768 texts); the result depends only on the texts, never on what was cached.
    """

    def __init__(self, budget: int | None, embedder: Any = "hashing") -> None:
        self.budget = check_budget("memory_budget", budget)
        self.embedder = get_embedder(embedder)
        self.cache = EmbeddingCache(self.embedder)
        self._units: tuple[str, str, list[str], list[str], np.ndarray] | None = None

    def _memory(self, fine_text: str, coarse_text: str) -> tuple[list[str], list[str], np.ndarray]:
        """(profile units, fine units, their embeddings stacked) — the last memory is remembered,
        since a retriever answering Q questions reads the same memory Q times."""
        hit = self._units
        if hit is not None and hit[0] == fine_text and hit[1] == coarse_text:
            return hit[2], hit[3], hit[4]
        profile, fine = memory_units(split_units(coarse_text), split_units(fine_text))
        if len(self.cache) > _CACHE_LIMIT:
            self.cache = EmbeddingCache(self.embedder)
        texts = profile + fine
        emb = self.cache.lookup(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)
        self._units = (fine_text, coarse_text, profile, fine, emb)
        return profile, fine, emb

    def select(self, fine_text: str, coarse_text: str, query: str) -> tuple[list[str], list[str]]:
        """(profile units shown, in profile order; fine-memory units shown, in chronological order)
        for a retriever answering ``query`` from M_f = ``fine_text`` and M_c = ``coarse_text``."""
        profile, fine, emb = self._memory(fine_text, coarse_text)
        if self.budget is None or len(profile) + len(fine) <= self.budget:
            return list(profile), list(fine)
        q_vec = self.cache.lookup([query])[0] if query else np.zeros(self.embedder.dim, np.float32)
        n = len(profile)
        keep_p, keep_f = budgeted_memory(profile, fine, emb[:n], emb[n:], q_vec, self.budget)
        return [profile[i] for i in keep_p], [fine[i] for i in keep_f]
