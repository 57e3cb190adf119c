"""Classic memory baselines: ``full-context``, ``rag`` and ``bm25``.

* ``full-context`` (the paper's *Base* / truncated full context): the answerer
  reads the most recent part of the visible history that fits its window
  (estimated tokens; default 32,768, see :mod:`baselines.answerers`). The same
  rule applies to the similarity answerer, so both answerers see the same text.
* ``rag`` (the paper's RAG): the visible history is cut into chunks of at most
  ``chunk_tokens`` = 2,048 estimated tokens, embedded with MiniLM
  (``comam_env.embed.get_embedder("minilm")``, ``retrieval_embedder``; MiniLM
  reads the first 256 word pieces of a chunk, as in the paper's setup); the
  ``top_k`` = 3 chunks most similar to the question go to the answerer, in
  chronological order.
* ``bm25``: the same chunks ranked by BM25 (``bm25s``, English stop words) against
  the question.

Chunking packs whole rendered messages (``Role: text`` lines) into a chunk until
the next one would exceed ``chunk_tokens``; a single message longer than a chunk
is cut into word windows. Chunks are computed once per history in ``prepare``;
a question sees every chunk that ends before its ``end_index`` plus the chunk in
progress cut at ``end_index``, so nothing after the question leaks in.
Ranking ties go to the more recent chunk.

All three answer open questions (LoCoMo) too: the similarity answerer with the
extractive span of the context (:mod:`comam_env.extractive`), the LLM answerer
with a short generated answer (its ``<final_answer>``), prompted speaker-neutrally
on a two-person dialogue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from comam_env.data.schema import Dataset, History, Question
from comam_env.prompts import dialogue_speakers
from comam_env.text import estimate_tokens

from .answerers import fit_recent, make_answerer
from .base import Prediction

#: The paper's RAG chunk size (estimated tokens).
DEFAULT_CHUNK_TOKENS = 2048
#: Chunks handed to the answerer.
DEFAULT_TOP_K = 3


@dataclass(frozen=True)
class Chunk:
    """Messages ``[start, end)`` of a history rendered as text (``end`` exclusive)."""

    start: int
    end: int
    text: str
    tokens: int


def render_message(history: History, index: int) -> str:
    """One message as a single ``Role: text`` line (the format memory units use)."""
    return history.render([index])


def chunk_history(history: History, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, end: int | None = None) -> list[Chunk]:
    """Pack messages ``[:end]`` into chunks of at most ``chunk_tokens`` estimated tokens."""
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    stop = len(history) if end is None else max(0, min(end, len(history)))
    chunks: list[Chunk] = []
    lines: list[str] = []
    used = 0
    start = 0
    for i in range(stop):
        line = render_message(history, i)
        cost = estimate_tokens(line)
        if cost > chunk_tokens:  # oversized message: flush, then cut it into word windows
            if lines:
                chunks.append(Chunk(start, i, "\n".join(lines), used))
                lines, used = [], 0
            words = line.split()
            piece: list[str] = []
            piece_cost = 0
            for w in words:
                c = estimate_tokens(w)
                if piece and piece_cost + c > chunk_tokens:
                    chunks.append(Chunk(i, i + 1, " ".join(piece), piece_cost))
                    piece, piece_cost = [], 0
                piece.append(w)
                piece_cost += c
            if piece:
                chunks.append(Chunk(i, i + 1, " ".join(piece), piece_cost))
            start = i + 1
            continue
        if lines and used + cost > chunk_tokens:
            chunks.append(Chunk(start, i, "\n".join(lines), used))
            lines, used = [], 0
        if not lines:
            start = i
        lines.append(line)
        used += cost
    if lines:
        chunks.append(Chunk(start, stop, "\n".join(lines), used))
    return chunks


class _ChunkIndex:
    """Chunks of every history, and the visible chunk list for a question."""

    def __init__(self, chunk_tokens: int) -> None:
        self.chunk_tokens = chunk_tokens
        self._chunks: dict[str, list[Chunk]] = {}

    def build(self, dataset: Dataset) -> None:
        for hid, history in dataset.histories.items():
            if hid not in self._chunks:
                self._chunks[hid] = chunk_history(history, self.chunk_tokens)

    def visible(self, question: Question, history: History) -> list[Chunk]:
        chunks = self._chunks.get(history.history_id)
        if chunks is None:
            chunks = self._chunks[history.history_id] = chunk_history(history, self.chunk_tokens)
        e = question.end_index
        out = [c for c in chunks if c.end <= e]
        pending = [c for c in chunks if c.start < e < c.end]
        if pending:  # the chunk in progress at end_index, re-packed from its start up to end_index
            first = min(c.start for c in pending)
            partial = History(
                history.history_id,
                history.roles[first:e],
                history.contents[first:e],
                (0,),
            )
            for c in chunk_history(partial, self.chunk_tokens):
                out.append(Chunk(c.start + first, c.end + first, c.text, c.tokens))
        return out


class FullContextSystem:
    """The most recent visible history that fits the answerer's window (paper: Base)."""

    name = "full-context"

    def __init__(self, answerer: str = "similarity", model: Any = None, window_tokens: int | None = None,
                 embedder: Any = "minilm") -> None:
        self.answerer = make_answerer(answerer, model=model, window_tokens=window_tokens, embedder=embedder)

    def prepare(self, dataset: Dataset) -> None:
        self.answerer.prepare(dataset)

    def answer(self, question: Question, history: History) -> Prediction:
        start = time.perf_counter()
        lines = [render_message(history, i) for i in range(min(question.end_index, len(history)))]
        kept = fit_recent(lines, self.answerer.context_budget(question))
        result = self.answerer.choose(question, kept, speakers=dialogue_speakers(history))
        return Prediction(
            answer=result.answer,
            retrieved_memory="",  # the whole window is the context; not repeated in predictions
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            memory_units=len(kept),
            memory_tokens=sum(estimate_tokens(line) for line in kept),
            raw_output=result.raw_output,
        )


class _ChunkRetrievalSystem:
    name = "chunks"

    def __init__(self, answerer: str = "similarity", model: Any = None, window_tokens: int | None = None,
                 chunk_tokens: int = DEFAULT_CHUNK_TOKENS, top_k: int = DEFAULT_TOP_K,
                 embedder: Any = "minilm") -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.answerer = make_answerer(answerer, model=model, window_tokens=window_tokens, embedder=embedder)
        self.top_k = int(top_k)
        self.index = _ChunkIndex(int(chunk_tokens))

    def prepare(self, dataset: Dataset) -> None:
        self.index.build(dataset)
        self.answerer.prepare(dataset)

    def _scores(self, question: Question, chunks: list[Chunk]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def answer(self, question: Question, history: History) -> Prediction:
        start = time.perf_counter()
        chunks = self.index.visible(question, history)
        if chunks:
            scores = np.asarray(self._scores(question, chunks), dtype=np.float64)
            # highest score first; among equal scores the more recent chunk wins
            order = sorted(range(len(chunks)), key=lambda i: (-scores[i], -i))[: self.top_k]
            picked = [chunks[i] for i in sorted(order)]  # chronological for the answerer
        else:
            picked = []
        result = self.answerer.choose(question, [c.text for c in picked], speakers=dialogue_speakers(history))
        return Prediction(
            answer=result.answer,
            retrieved_memory="\n".join(c.text for c in picked),
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            memory_units=len(chunks),
            memory_tokens=sum(c.tokens for c in chunks),
            raw_output=result.raw_output,
        )


class RAGSystem(_ChunkRetrievalSystem):
    """MiniLM embeddings over fixed 2,048-token chunks, top-k to the answerer (paper: RAG).

    ``retrieval_embedder`` (default ``"minilm"``, the paper's choice) ranks the
    chunks; ``embedder`` is the similarity answerer's. Both share one cache when
    they are the same model.
    """

    name = "rag"

    def __init__(self, answerer: str = "similarity", model: Any = None, window_tokens: int | None = None,
                 chunk_tokens: int = DEFAULT_CHUNK_TOKENS, top_k: int = DEFAULT_TOP_K,
                 embedder: Any = "minilm", retrieval_embedder: Any = "minilm") -> None:
        super().__init__(answerer, model, window_tokens, chunk_tokens, top_k, embedder)
        from .answerers import CachedEmbedder

        shared = getattr(self.answerer, "embedder", None)
        if isinstance(shared, CachedEmbedder) and retrieval_embedder == embedder:
            self.retrieval = shared
        else:
            self.retrieval = CachedEmbedder(retrieval_embedder)

    def prepare(self, dataset: Dataset) -> None:
        super().prepare(dataset)
        if self.retrieval is not getattr(self.answerer, "embedder", None):
            self.retrieval.attach(dataset)

    def _scores(self, question: Question, chunks: list[Chunk]) -> np.ndarray:
        q = self.retrieval.encode([question.query])[0]
        return self.retrieval.encode([c.text for c in chunks]) @ q


class BM25System(_ChunkRetrievalSystem):
    """The same chunks ranked with BM25 (``bm25s``) against the question."""

    name = "bm25"

    def _scores(self, question: Question, chunks: list[Chunk]) -> np.ndarray:
        import bm25s

        corpus = bm25s.tokenize([c.text for c in chunks], stopwords="en", show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=False)
        query = bm25s.tokenize([question.query], stopwords="en", show_progress=False, return_ids=False)[0]
        if not query:
            return np.zeros(len(chunks))
        return retriever.get_scores(query)
