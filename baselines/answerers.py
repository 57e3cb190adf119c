"""Answerers: how a classic memory system turns its context into an option.

A classic system (full context, RAG, BM25, the heuristic pipelines) only decides
*which text* the answering step reads; the answerer decides the option:

* :class:`SimilarityAnswerer` (``--answerer similarity``, the CPU default) embeds
  the options and the context units (``comam_env.text.split_units``) and picks the
  option with the highest maximum cosine similarity to any unit — "which option
  does the memory support most directly". With no context it falls back to the
  option most similar to the question. Ties go to the earlier option.
  An **open** question (LoCoMo) gets the extractive answer of
  :func:`comam_env.extractive.extractive_answer`: among the units sharing a word
  with the question, the one most similar to it, cut to the short span that
  answers it ("Not mentioned in the conversation." when no unit shares a word).
* :class:`LLMAnswerer` (``--answerer llm --model PATH_OR_ID``) lets a causal LM read
  context + question + options with the retriever prompt and parses its reply with
  ``comam_env.rewards.parse_option`` (PersonaMem's rule); on an open question the
  prompt asks for a short answer and the reply's ``<final_answer>`` text is the
  answer (``comam_env.scoring.answer_text``). Default model:
  SmolLM2-135M-Instruct via ``agents.models.load_smollm2_bf16()``.

Both have a context *window* in estimated tokens (``comam_env.text.estimate_tokens``),
default :data:`DEFAULT_WINDOW_TOKENS` = 32,768 (the paper's 32k context). The LLM
answerer additionally caps the window at 75% of the model's position limit minus
the generation budget, because the estimate can undercount real tokens by ~15%.
:func:`fit_recent` keeps the most recent units that fit a budget — the rule the
``full-context`` baseline uses, and what an answerer does to an oversized context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from comam_env.data.schema import Question
from comam_env.text import estimate_tokens, split_units

#: Default answering window in estimated tokens (the paper's 32k context).
DEFAULT_WINDOW_TOKENS = 32_768


@dataclass
class Answer:
    """What an answerer returns: the letter (``""`` if none parsed) and its cost."""

    answer: str
    tokens_in: int
    tokens_out: int
    raw_output: str | None = None


def fit_recent(units: Sequence[str], budget_tokens: int) -> list[str]:
    """The longest suffix of ``units`` whose estimated tokens fit ``budget_tokens``.

    Order is preserved. A single unit larger than the budget is dropped (not
    cut), so the result never contains partial units.
    """
    kept: list[str] = []
    used = 0
    for unit in reversed(units):
        cost = estimate_tokens(unit)
        if used + cost > budget_tokens:
            break
        kept.append(unit)
        used += cost
    kept.reverse()
    return kept


def _options_block(question: Question) -> str:
    return "\n".join(question.labelled_options())


class CachedEmbedder:
    """A ``comam_env.embed`` embedder behind a text → vector cache (:class:`comam_env.embed.EmbeddingCache`).

    Histories are read by many questions; caching by text makes the second
    question on a history nearly free. :meth:`attach` loads (or computes once and
    persists) the dataset-wide embedding file that the selection view also uses
    (``comam_env.embed.embed_dataset``: every message in its one-line
    ``Role: text`` form — exactly the units these baselines embed — plus every
    query and option) when it exists, so a benchmark run pays for MiniLM once
    per dataset (``benchmarks/make_results.py`` precomputes it).
    """

    def __init__(self, embedder: Any = "minilm") -> None:
        from comam_env.embed import EmbeddingCache, get_embedder

        self.embedder = get_embedder(embedder) if isinstance(embedder, str) else embedder
        self.name = getattr(self.embedder, "name", type(self.embedder).__name__)
        self.cache = EmbeddingCache(self.embedder)
        self._attached: set[int] = set()

    def attach(self, dataset: Any, precompute: bool = False, progress: bool = True) -> None:
        """Use the persisted embeddings of ``dataset`` when they exist.

        With ``precompute`` they are computed and saved first (``embed_dataset``);
        otherwise, when no file exists, texts are embedded lazily in memory — a
        ``--limit 5`` run never embeds a whole 128k dataset.
        """
        if id(dataset) in self._attached:
            return
        from comam_env.embed import EmbeddingCache, embed_dataset, embedding_cache_path

        if precompute:
            self.cache = embed_dataset(dataset, self.embedder, progress=progress)
        else:
            path = embedding_cache_path(dataset, self.embedder)
            if path.exists():
                # replacing the in-memory cache only drops vectors that get recomputed on demand
                self.cache = EmbeddingCache(self.embedder, path)
        self._attached.add(id(dataset))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.lookup(list(texts))


class SimilarityAnswerer:
    """Pick the option whose embedding is most similar to some context unit (max over units)."""

    kind = "similarity"

    def __init__(self, embedder: Any = "minilm", window_tokens: int = DEFAULT_WINDOW_TOKENS) -> None:
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.window_tokens = int(window_tokens)

    def prepare(self, dataset: Any) -> None:
        """Load/compute the dataset's message embeddings once (see :meth:`CachedEmbedder.attach`)."""
        self.embedder.attach(dataset)

    def context_budget(self, question: Question) -> int:
        """Estimated tokens left for context once question and options are read."""
        overhead = estimate_tokens(question.query) + estimate_tokens(_options_block(question))
        return max(0, self.window_tokens - overhead)

    def choose(self, question: Question, context: str | Sequence[str], speakers: Sequence[str] | None = None) -> Answer:
        """The option (or open answer) the context supports best; ``speakers`` is unused here."""
        units = split_units(context) if isinstance(context, str) else [u for c in context for u in split_units(c)]
        units = fit_recent(units, self.context_budget(question))
        if not question.options:
            return self.answer_open(question, units)
        opt = self.embedder.encode(list(question.options))
        if units:
            mem = self.embedder.encode(units)
            scores = (opt @ mem.T).max(axis=1)
        else:
            scores = opt @ self.embedder.encode([question.query])[0]
        letter = question.option_labels[int(np.argmax(scores))]
        tokens_in = sum(estimate_tokens(u) for u in units) + estimate_tokens(question.query) + estimate_tokens(
            _options_block(question)
        )
        return Answer(letter, tokens_in, 0)

    def answer_open(self, question: Question, units: Sequence[str]) -> Answer:
        """The extractive answer to an open question (:func:`comam_env.extractive.extractive_answer`),
        units ranked by embedding similarity to the question."""
        from comam_env.extractive import extractive_answer

        units = list(units)
        scores = (self.embedder.encode(units) @ self.embedder.encode([question.query])[0]) if units else None
        text = extractive_answer(question.query, units, scores)
        tokens_in = sum(estimate_tokens(u) for u in units) + estimate_tokens(question.query)
        return Answer(text, tokens_in, 0)


def retriever_prompt(context: str, question: Question, speakers: Sequence[str] | None = None) -> str:
    """The retriever/answer prompt: the env's own (``comam_env.prompts.build_prompt``), so the
    LLM answerer reads exactly what a retriever agent reads; ``speakers`` names the two people
    of a two-speaker dialogue (``comam_env.prompts.dialogue_speakers``)."""
    from comam_env.prompts import build_prompt

    return build_prompt("retriever", memory=context, query=question.query, options=_options_block(question),
                        speakers=speakers)


def load_causal_lm(model: Any = None):
    """(model, tokenizer) from ``None`` (SmolLM2-135M bf16), a local path / hub id, or a pair."""
    if isinstance(model, tuple) and len(model) == 2:
        return model
    if model is None:
        from agents.models import load_smollm2_bf16

        loaded = load_smollm2_bf16()
        if isinstance(loaded, tuple):
            return loaded
        model = loaded  # a folder path
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model))
    lm = AutoModelForCausalLM.from_pretrained(str(model))
    lm.eval()
    return lm, tok


class LLMAnswerer:
    """A causal LM reads context + question + options (retriever prompt); reply parsed with ``parse_option``."""

    kind = "llm"

    def __init__(
        self,
        model: Any = None,
        window_tokens: int = DEFAULT_WINDOW_TOKENS,
        max_new_tokens: int = 64,
    ) -> None:
        self.model_spec = model
        self.window_tokens = int(window_tokens)
        self.max_new_tokens = int(max_new_tokens)
        self._lm = None
        self._tok = None

    def prepare(self, dataset: Any) -> None:
        self._load()

    def _load(self) -> None:
        if self._lm is None:
            self._lm, self._tok = load_causal_lm(self.model_spec)
            if self._tok.pad_token is None:
                self._tok.pad_token = self._tok.eos_token

    def context_budget(self, question: Question) -> int:
        self._load()
        max_pos = int(getattr(self._lm.config, "max_position_embeddings", 0) or 0)
        window = self.window_tokens
        if max_pos:
            window = min(window, int(0.75 * (max_pos - self.max_new_tokens)))
        overhead = estimate_tokens(retriever_prompt("", question))
        return max(0, window - overhead)

    def choose(self, question: Question, context: str | Sequence[str], speakers: Sequence[str] | None = None) -> Answer:
        """Generate with the retriever prompt and parse the option (or the open ``<final_answer>``)."""
        import torch

        from comam_env.rewards import parse_option

        self._load()
        units = split_units(context) if isinstance(context, str) else [u for c in context for u in split_units(c)]
        units = fit_recent(units, self.context_budget(question))
        prompt = retriever_prompt("\n".join(units), question, speakers)
        tok = self._tok
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        else:
            text = prompt
        enc = tok(text, return_tensors="pt")
        max_pos = int(getattr(self._lm.config, "max_position_embeddings", 0) or 0)
        if max_pos and enc["input_ids"].shape[1] > max_pos - self.max_new_tokens:
            keep = max_pos - self.max_new_tokens  # estimate undercounted: keep the end (question + options)
            enc = {k: v[:, -keep:] for k, v in enc.items()}
        with torch.no_grad():
            out = self._lm.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        if question.options:
            parsed = parse_option(reply, n_options=len(question.options))
        else:  # a short generated answer: the <final_answer> text (the whole reply when untagged)
            from comam_env.scoring import answer_text

            parsed = answer_text(reply)
        return Answer(parsed or "", estimate_tokens(prompt), estimate_tokens(reply), raw_output=reply)


def make_answerer(kind: str = "similarity", model: Any = None, window_tokens: int | None = None, embedder: Any = "minilm"):
    """Answerer by flag: ``similarity`` (embedder, CPU default) or ``llm`` (``model`` path/hub id)."""
    window = DEFAULT_WINDOW_TOKENS if window_tokens is None else int(window_tokens)
    if kind == "similarity":
        if model is not None:
            raise ValueError("--model applies to --answerer llm; the similarity answerer takes no model")
        return SimilarityAnswerer(embedder=embedder, window_tokens=window)
    if kind == "llm":
        return LLMAnswerer(model=model, window_tokens=window)
    raise ValueError(f"unknown answerer {kind!r}; choose 'similarity' or 'llm'")
