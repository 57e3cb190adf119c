"""Units, similarity and one-to-one matching of memory against evidence (what eq. 9 and 11 count).

The reward equations themselves are in :mod:`comam_env.rewards`; this module is the machinery
beside them: splitting memory into units, the matchers, the greedy matching and its caches.
Everything is deterministic: the same inputs give the same matches, bit for bit.

Units and matching
------------------
A memory text is split into *units* with :func:`comam_env.text.split_units`
(non-empty lines; a line over 60 words is split into sentences). A list of
strings is taken as the units themselves (stripped, empty ones dropped).

A unit ``u`` matches an evidence item ``e`` when ``sim(u, e) >= tau``:

* ``"token-recall"`` (default, ``tau = 0.5``):
  ``sim(u, e) = |content(u) ∩ content(e)| / |content(e)|`` with
  :func:`comam_env.text.content_tokens` (lower-cased words, stop words removed);
  ``sim = 0`` when ``e`` has no content tokens (such an item can never be matched).
  Content-token sets are memoised per distinct text and the evidence indexed
  once per evidence list, so matching walks only the tokens a unit shares with
  the evidence (:class:`TokenRecallMatcher`).
* ``"embedding"`` / ``"embedding:<name>"`` or any embedder object with
  ``encode(texts) -> np.ndarray``: cosine of the embeddings
  (default ``tau = 0.6``, :data:`EMBEDDING_TAU`; ``"embedding"`` uses the
  ``minilm`` embedder of :mod:`comam_env.embed`, imported lazily).
* any object with ``similarity_matrix(units, evidence) -> np.ndarray`` of shape
  ``(len(units), len(evidence))``; its default threshold is its ``default_tau``
  attribute when it has one, else 0.5.

Matching is one-to-one and greedy by similarity (:func:`match_units`): all
pairs with ``sim >= tau`` are sorted by similarity, descending, ties broken by
(unit index, evidence index) ascending, and a pair is taken when neither its
unit nor its evidence item is taken yet. ``c`` is the number of pairs taken, so
``|M ∩ E| = c`` and ``|M ∪ E| = |M| + |E| − c``.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from comam_env.config import check_real
from comam_env.text import MAX_UNIT_WORDS, STOP_WORDS, split_units

__all__ = [
    "TOKEN_RECALL_TAU",
    "EMBEDDING_TAU",
    "clear_caches",
    "Matcher",
    "TokenRecallMatcher",
    "EmbeddingMatcher",
    "resolve_matcher",
    "MatchResult",
    "match_units",
    "greedy_match",
    "to_units",
]

#: Default threshold of the token-recall matcher (docs/design.md §3).
TOKEN_RECALL_TAU = 0.5
#: Default threshold of the embedding matcher: MiniLM cosines of a paraphrase of the
#: same fact sit around 0.65–0.85, of unrelated chat lines below 0.4.
EMBEDDING_TAU = 0.6


# --------------------------------------------------------------------------- units


def to_units(memory: str | Sequence[str] | None) -> list[str]:
    """Memory as a list of units: a text is split with :func:`split_units`; a list is
    taken as units (stripped, empty ones dropped); ``None`` is an empty memory."""
    if memory is None:
        return []
    if isinstance(memory, str):
        return _split_units(memory)
    units = []
    for i, u in enumerate(memory):
        if not isinstance(u, str):
            raise TypeError(f"memory unit {i} is {type(u).__name__}, expected str")
        u = u.strip()
        if u:
            units.append(u)
    return units


def _split_units(text: str) -> list[str]:
    """Exactly :func:`comam_env.text.split_units` (default ``max_words``), faster.

    A line of at most ``2·MAX_UNIT_WORDS`` characters cannot hold more than
    ``MAX_UNIT_WORDS`` words (k words need at least 2k−1 characters), so only
    longer lines are counted and possibly split.
    """
    short = 2 * MAX_UNIT_WORDS
    units: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if len(line) > short and len(line.split()) > MAX_UNIT_WORDS:
            units.extend(split_units(line))  # the sentence split of text.split_units, for this line
        else:
            units.append(line)
    return units


def _evidence_list(evidence: Sequence[str]) -> list[str]:
    if isinstance(evidence, str):
        # A bare string would silently iterate characters.
        raise TypeError("evidence must be a sequence of texts, not a single str")
    if isinstance(evidence, (tuple, list)) and set(map(type, evidence)) <= {str}:
        return list(evidence)  # the common case, checked at C speed
    out = []
    for i, e in enumerate(evidence):
        if not isinstance(e, str):
            raise TypeError(f"evidence item {i} is {type(e).__name__}, expected str")
        out.append(e)
    return out


# Texts repeat a lot: evidence is the same for every rollout of a question, and
# memory units are mostly copies of history messages (the same few thousand lines
# for every episode on a history). So the content-token set of a text is memoised
# per distinct string (an LRU keyed by the string itself). Long strings are not
# cached to keep the cache's memory bounded. ``tests/env/test_rewards.py`` checks
# that every cached path equals the uncached definition (hypothesis).
_CACHE_MAX_CHARS = 4096
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_EDGE_PUNCT = ".,!?;:\"'()[]{}<>*-’‘“”"


def _content_uncached(text: str) -> frozenset[str]:
    # == comam_env.text.content_tokens(text), through the faster tokenizer.
    return frozenset(_fast_words(text)).difference(STOP_WORDS)


@lru_cache(maxsize=1 << 16)
def _cached_content_tokens(text: str) -> frozenset[str]:
    return _content_uncached(text)


def _content(text: str) -> frozenset[str]:
    """:func:`comam_env.text.content_tokens`, memoised per distinct (short) text."""
    if len(text) > _CACHE_MAX_CHARS:
        return _content_uncached(text)
    return _cached_content_tokens(text)


#: Units whose similarity row is memoised per evidence list (see :class:`_EvidenceIndex`).
_ROWS_PER_EVIDENCE = 512


class _EvidenceIndex:
    """An evidence list indexed for token-recall matching (memoised per evidence tuple).

    Attributes:
        vocab: union of the items' content tokens.
        postings: ``tok`` → ascending indices of the items holding it.
        sizes: ``|content(evidence[j])|``.
        rows: memo ``unit text`` → the unit's non-zero similarities as ``(-sim, j)``,
            sorted ascending (similarity descending, then ``j`` ascending; negation is
            exact, so ``-sim <= -tau`` is exactly ``sim >= tau``). Memory units are
            mostly copied history lines, so the same (unit, evidence) rows recur across
            the rollouts of a question and the episodes of a persona (gold profile);
            at most :data:`_ROWS_PER_EVIDENCE` short units are kept per evidence list.
    """

    __slots__ = ("vocab", "postings", "sizes", "rows")

    def __init__(self, evidence: tuple[str, ...]) -> None:
        postings: dict[str, list[int]] = {}
        sizes = []
        for j, e in enumerate(evidence):
            toks = _content(e)
            sizes.append(len(toks))
            for tok in toks:
                postings.setdefault(tok, []).append(j)
        self.vocab = frozenset(postings)
        self.postings = {t: tuple(js) for t, js in postings.items()}
        self.sizes = tuple(sizes)
        self.rows: dict[str, tuple[tuple[float, int], ...]] = {}

    def row(self, unit: str) -> tuple[tuple[float, int], ...]:
        """Non-zero ``(-|content(u) ∩ content(e_j)| / |content(e_j)|, j)``, best first."""
        r = self.rows.get(unit)
        if r is not None:
            return r
        hits = self.vocab.intersection(_content(unit))
        if not hits:
            r = ()
        elif len(self.sizes) == 1:
            r = ((-(len(hits) / self.sizes[0]), 0),)
        else:
            cnt: dict[int, int] = {}
            postings = self.postings
            for tok in hits:
                for j in postings[tok]:
                    cnt[j] = cnt.get(j, 0) + 1
            sizes = self.sizes
            # Python int / int is the correctly rounded float64 quotient, as np.divide.
            r = tuple(sorted([(-(c / sizes[j]), j) for j, c in cnt.items()]))
        if len(unit) <= _CACHE_MAX_CHARS and len(self.rows) < _ROWS_PER_EVIDENCE:
            self.rows[unit] = r
        return r


@lru_cache(maxsize=2048)
def _evidence_index(evidence: tuple[str, ...]) -> _EvidenceIndex:
    """The :class:`_EvidenceIndex` of an evidence list, memoised per evidence tuple: the
    same evidence is scored for every step and rollout of a question, and a gold
    profile for every episode of its persona."""
    return _EvidenceIndex(evidence)


def clear_caches() -> None:
    """Drop the memoised content-token sets and evidence indices (benchmarks measure
    cold calls with it; results never depend on the caches)."""
    _cached_content_tokens.cache_clear()
    _evidence_index.cache_clear()


def _fast_words(text: str) -> list[str]:
    """Exactly :func:`comam_env.text.word_tokens`, faster on ordinary chat text.

    The word regex never spans white space, so the text can be cut at white space
    first; a piece that is alphanumeric once edge punctuation (never part of a
    word) is stripped is one whole match, and only other pieces go through the
    regex. ``tests/env/test_rewards.py`` checks the equivalence with hypothesis.
    """
    out: list[str] = []
    for piece in text.split():
        core = piece.strip(_EDGE_PUNCT)
        if core.isalnum():
            out.append(core.lower())
        elif core:
            out.extend(w.lower() for w in _WORD_RE.findall(core))
    return out


# ------------------------------------------------------------------------ matchers


@runtime_checkable
class Matcher(Protocol):
    """Anything that scores units against evidence items."""

    def similarity_matrix(self, units: Sequence[str], evidence: Sequence[str]) -> np.ndarray:
        """``(len(units), len(evidence))`` similarities."""
        ...


class TokenRecallMatcher:
    """Evidence-token recall ``|content(u) ∩ content(e)| / |content(e)|`` (docs/design.md §3).

    Content-token sets are memoised per distinct text and the evidence list is
    indexed once (token → evidence items holding it, memoised per evidence
    tuple), so a unit costs one set intersection with the evidence vocabulary;
    only the (few) shared tokens are walked, and a unit's similarity row is
    memoised per evidence list (:class:`_EvidenceIndex`). Integer counts divided
    in Python float give exactly the numbers ``np.divide`` gives in float64.
    :meth:`match_pairs` runs the greedy matching on the sparse non-zero pairs
    without building the matrix (:func:`match_units` uses it); the result is
    identical to :func:`greedy_match` on :meth:`similarity_matrix`.
    """

    name = "token-recall"
    default_tau = TOKEN_RECALL_TAU

    def similarity_matrix(self, units: Sequence[str], evidence: Sequence[str]) -> np.ndarray:
        sim = np.zeros((len(units), len(evidence)), dtype=np.float64)
        if len(units) == 0 or len(evidence) == 0:
            return sim
        idx = _evidence_index(tuple(evidence))
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, u in enumerate(units):
            for nv, j in idx.row(u):
                rows.append(i)
                cols.append(j)
                vals.append(-nv)
        if rows:
            sim[rows, cols] = vals
        return sim

    def match_pairs(self, units: Sequence[str], evidence: Sequence[str], tau: float) -> tuple[tuple[int, int, float], ...]:
        """``greedy_match(self.similarity_matrix(units, evidence), tau)``, computed sparsely.

        Only valid for ``tau > 0`` (a pair with similarity 0 never matches then);
        :func:`match_units` falls back to the dense path otherwise.
        """
        if not tau > 0:
            raise ValueError(f"match_pairs needs tau > 0, got {tau!r}")
        # (-sim, unit, evidence) ascending == similarity descending, ties by (unit, evidence)
        # ascending: the order of greedy_match's stable argsort over row-major pairs.
        idx = _evidence_index(tuple(evidence))
        neg_tau = -tau
        cands = []
        for i, u in enumerate(units):
            for nv, j in idx.row(u):
                if not nv <= neg_tau:
                    break  # the row is sorted best first
                cands.append((nv, i, j))
        if not cands:
            return ()
        cands.sort()
        used_u: set[int] = set()
        used_e: set[int] = set()
        pairs = []
        for ns, i, j in cands:
            if i in used_u or j in used_e:
                continue
            used_u.add(i)
            used_e.add(j)
            pairs.append((i, j, -ns))
        return tuple(pairs)


def _utf8_safe(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced by ``?``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class EmbeddingMatcher:
    """Cosine similarity of sentence embeddings.

    Args:
        embedder: an object with ``encode(texts) -> np.ndarray`` (e.g. from
            :func:`comam_env.embed.get_embedder`) or an embedder name, resolved
            lazily through :mod:`comam_env.embed` on first use.
        cache_size: number of text embeddings kept in memory (evidence and
            memory units recur across the rollouts of a group).
    """

    default_tau = EMBEDDING_TAU

    def __init__(self, embedder: Any = "minilm", cache_size: int = 20_000) -> None:
        self._spec = embedder
        self._embedder = None if isinstance(embedder, str) else embedder
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = int(cache_size)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        if isinstance(self._spec, str):
            return f"embedding:{self._spec}"
        return f"embedding:{getattr(self._spec, 'name', type(self._spec).__name__)}"

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from comam_env.embed import get_embedder  # lazy: may load torch

            self._embedder = get_embedder(self._spec)
        return self._embedder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float64 rows for ``texts`` (cached per text)."""
        texts = list(texts)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in texts:
                v = self._cache.get(t)
                if v is not None:
                    found[t] = v
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            # Lone surrogates (non-UTF-8-safe text from a policy) would crash tokenizers.
            safe = [_utf8_safe(t) for t in missing]
            vecs = np.asarray(self.embedder.encode(safe), dtype=np.float64)
            if vecs.ndim != 2 or vecs.shape[0] != len(missing):
                raise ValueError(f"{self.name}: encode() returned shape {vecs.shape} for {len(missing)} texts")
            # Normalise again: custom embedders need not return unit rows.
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
            found.update(zip(missing, vecs))
            with self._lock:
                for t, v in zip(missing, vecs):
                    self._cache[t] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, 0), dtype=np.float64)
        return np.stack([found[t] for t in texts])

    def similarity_matrix(self, units: Sequence[str], evidence: Sequence[str]) -> np.ndarray:
        if not units or not evidence:
            return np.zeros((len(units), len(evidence)), dtype=np.float64)
        u = self.encode(list(units))
        e = self.encode(list(evidence))
        return u @ e.T


_TOKEN_RECALL = TokenRecallMatcher()
_NAMED_MATCHERS: dict[str, EmbeddingMatcher] = {}
_NAMED_LOCK = threading.Lock()


def resolve_matcher(matcher: Any = "token-recall") -> Any:
    """Turn a matcher spec into an object with ``similarity_matrix``.

    ``None``/``"token-recall"`` → :class:`TokenRecallMatcher`; ``"embedding"`` →
    :class:`EmbeddingMatcher` over ``minilm``; ``"embedding:<name>"`` → over the
    named embedder (one shared instance per name, so models load once); an object
    with ``similarity_matrix`` is used as is; an object with ``encode`` is wrapped
    in an :class:`EmbeddingMatcher`.
    """
    if matcher is None or matcher == "token-recall":
        return _TOKEN_RECALL
    if isinstance(matcher, str):
        if matcher == "embedding" or matcher.startswith("embedding:"):
            name = matcher.partition(":")[2] or "minilm"
            with _NAMED_LOCK:
                if name not in _NAMED_MATCHERS:
                    _NAMED_MATCHERS[name] = EmbeddingMatcher(name)
                return _NAMED_MATCHERS[name]
        raise ValueError(
            f"unknown matcher {matcher!r}; use 'token-recall', 'embedding', 'embedding:<embedder name>', "
            "an object with similarity_matrix(units, evidence), or an embedder with encode(texts)"
        )
    if hasattr(matcher, "similarity_matrix"):
        return matcher
    if hasattr(matcher, "encode"):
        return EmbeddingMatcher(matcher)
    raise TypeError(f"matcher {matcher!r} has neither similarity_matrix() nor encode()")


def _default_tau(matcher: Any) -> float:
    return float(getattr(matcher, "default_tau", TOKEN_RECALL_TAU))


# ------------------------------------------------------------------------ matching


@dataclass(frozen=True)
class MatchResult:
    """Result of :func:`match_units`.

    Attributes:
        count: number of matched pairs ``c``.
        pairs: ``(unit_idx, evidence_idx, sim)`` in the order they were taken.
        n_units: number of units.
        n_evidence: number of evidence items.
        tau: the threshold used.
    """

    count: int
    pairs: tuple[tuple[int, int, float], ...]
    n_units: int
    n_evidence: int
    tau: float

    @property
    def matched_units(self) -> tuple[int, ...]:
        return tuple(sorted(p[0] for p in self.pairs))

    @property
    def matched_evidence(self) -> tuple[int, ...]:
        return tuple(sorted(p[1] for p in self.pairs))


def greedy_match(sim: np.ndarray, tau: float) -> tuple[tuple[int, int, float], ...]:
    """One-to-one greedy matching on a similarity matrix (see module docstring)."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.size == 0:
        return ()
    # NaN never matches (NaN >= tau is False).
    rows, cols = np.nonzero(sim >= tau)  # row-major: already ordered by (unit, evidence)
    if rows.size == 0:
        return ()
    vals = sim[rows, cols]
    order = np.argsort(-vals, kind="stable")  # stable keeps the (unit, evidence) tie order
    used_u: set[int] = set()
    used_e: set[int] = set()
    pairs = []
    limit = min(sim.shape)
    for k in order:
        u, e = int(rows[k]), int(cols[k])
        if u in used_u or e in used_e:
            continue
        used_u.add(u)
        used_e.add(e)
        pairs.append((u, e, float(vals[k])))
        if len(pairs) == limit:
            break
    return tuple(pairs)


def match_units(
    units: str | Sequence[str],
    evidence: Sequence[str],
    matcher: Any = "token-recall",
    tau: float | None = None,
) -> MatchResult:
    """Match memory units to evidence items one-to-one (greedy by similarity).

    Args:
        units: a memory text (split into units) or a list of units.
        evidence: evidence texts.
        matcher: see :func:`resolve_matcher`.
        tau: match threshold; ``None`` uses the matcher's default (0.5 token
            recall, 0.6 embedding).
    """
    units = to_units(units)
    evidence = _evidence_list(evidence)
    m = resolve_matcher(matcher)
    # any real threshold is a well-defined matching here (the reward functions and EnvConfig
    # restrict it to (0, 1]); NaN, booleans and strings are refused instead of matching nothing
    tau = _default_tau(m) if tau is None else check_real("tau", tau, -np.inf, np.inf)
    if units and evidence and type(m) is TokenRecallMatcher and tau > 0:
        pairs = m.match_pairs(units, evidence, tau)  # sparse path, same result as the dense one
    elif units and evidence:
        sim = np.asarray(m.similarity_matrix(units, evidence), dtype=np.float64)
        if sim.shape != (len(units), len(evidence)):
            raise ValueError(
                f"matcher {m!r} returned a {sim.shape} similarity matrix for "
                f"{len(units)} units x {len(evidence)} evidence items"
            )
        pairs = greedy_match(sim, tau)
    else:
        pairs = ()
    return MatchResult(len(pairs), pairs, len(units), len(evidence), tau)
