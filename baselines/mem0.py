"""``mem0-style``: an extractor that *maintains* a fact memory with ADD / UPDATE / DELETE / NOOP.

The paper lists memory that replaces stale preferences as future work; this
baseline shows what a Mem0-like update rule buys. It knows nothing about how
any dataset phrases things: candidate facts, duplicates and updates are found
with generic rules and sentence embeddings, as Mem0 does with its extraction
model (an earlier version matched the synthetic generator's own sentence
templates and was retired for it — an oracle of the data, not a baseline).

The extractor reads the visible history message by message. A user message is a
*candidate fact* when it is a first-person self-disclosure: it has a first-person
word (I, I'm, I've, my, me, …), at least :data:`MIN_FACT_WORDS` words and is not a
question (:func:`is_self_disclosure`). Each candidate applies one operation to a
list of facts (each fact the user message, verbatim, so it can match evidence),
comparing its embedding with every stored fact's (cosine ``s``):

* **DELETE** — an explicit retraction ("forget what I said about X", "ignore
  what I told you about X", "scratch that", "that's no longer true") removes the
  facts about X (cosine to X ≥ :data:`SAME_TOPIC_COSINE`), or the most recent fact
  when no object is named. The retraction itself is not stored.
* **NOOP** — the message duplicates a stored fact (``s ≥`` :data:`DUPLICATE_COSINE`).
* **UPDATE** — the message is about the same topic as stored facts
  (``s ≥`` :data:`SAME_TOPIC_COSINE`): recency wins, the newest message replaces
  them (at the position of the first one).
* **ADD** — anything else.

The maintained facts are the profile (Mem0 keeps one memory); the retriever copies
the ``top_k`` facts most similar to the query (:class:`baselines.pipeline.HeuristicRetriever`)
and answers with the option most similar to one of them
(:class:`baselines.answerers.SimilarityAnswerer`, max over units). The memory of a
history prefix is built incrementally and snapshotted, so questions asked later on
the same history continue from the nearest earlier snapshot. Local rewards are
computed with the same code the environment uses (``comam_env.rewards``:
extractor eq. 9 on the fact memory, retriever eq. 11 on the retrieved units;
profiler eq. 10 with ``comam_env.judges`` when a judge is available, against the
gold the visible history supports).
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass, field
from typing import Any

from comam_env.data.schema import Dataset, History, Question
from comam_env.text import content_tokens, estimate_tokens

import numpy as np

from .answerers import CachedEmbedder, SimilarityAnswerer
from .base import Prediction
from .pipeline import HeuristicRetriever

_RETRACT_RE = re.compile(
    r"\b(?:forget|ignore|disregard)\s+(?:that|what|everything)\s+I\s+(?:said|told you|mentioned|wrote)"
    r"(?:\s+(?:about|regarding|on)\s+(.+))?"
    r"|\b(?:scratch|strike)\s+that\b|\bthat(?:'s| is)\s+(?:no longer|not)\s+true\b",
    re.IGNORECASE,
)
_FIRST_PERSON_RE = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|me|my|mine|myself)\b", re.IGNORECASE)
#: A candidate fact has at least this many words.
MIN_FACT_WORDS = 5
#: Cosine at or above which a candidate duplicates a stored fact (NOOP).
DUPLICATE_COSINE = 0.9
#: Cosine at or above which a candidate speaks about the same topic as a stored fact (UPDATE).
SAME_TOPIC_COSINE = 0.6


def is_self_disclosure(text: str) -> bool:
    """A first-person statement of at least :data:`MIN_FACT_WORDS` words that is not a question."""
    text = text.strip()
    return (len(text.split()) >= MIN_FACT_WORDS and not text.endswith("?")
            and _FIRST_PERSON_RE.search(text) is not None)


@dataclass
class Fact:
    """One stored fact: the user message (verbatim), where it was said, its unit embedding."""

    text: str
    index: int
    vector: np.ndarray = field(repr=False)


@dataclass
class Operation:
    """A memory operation, for inspection and tests."""

    op: str  # "ADD" | "UPDATE" | "DELETE" | "NOOP"
    index: int  # message index that caused it
    text: str  # the new message
    replaced: tuple[str, ...] = ()  # texts of facts removed/replaced


@dataclass
class FactMemory:
    """The fact list plus the log of operations applied to it.

    Args:
        encode: texts → unit-norm embeddings (rows); the system passes its cached embedder.
    """

    encode: Any = field(repr=False, default=None)
    facts: list[Fact] = field(default_factory=list)
    log: list[Operation] = field(default_factory=list)
    position: int = 0  # messages [0, position) have been read

    def __post_init__(self) -> None:
        if self.encode is None:
            from comam_env.embed import get_embedder

            self.encode = get_embedder("hashing").encode

    def copy(self) -> "FactMemory":
        return FactMemory(self.encode, list(self.facts), list(self.log), self.position)

    def texts(self) -> list[str]:
        return [f"User: {f.text}" for f in self.facts]

    def _similar(self, vector: np.ndarray, threshold: float) -> list[int]:
        if not self.facts:
            return []
        sims = np.stack([f.vector for f in self.facts]) @ vector
        return [i for i, v in enumerate(sims.tolist()) if v >= threshold]

    def apply(self, text: str, index: int) -> Operation | None:
        """Apply one user message; returns the operation (``None`` if nothing memorable)."""
        text = " ".join(text.split())
        r = _RETRACT_RE.search(text)
        if r:
            target = r.group(1)
            if target:
                obj = re.split(r"[.;!?,]", target)[0]
                hit = set(self._similar(np.asarray(self.encode([obj])[0]), SAME_TOPIC_COSINE))
                hit |= {i for i, f in enumerate(self.facts) if content_tokens(obj) <= content_tokens(f.text)}
                gone = [f for i, f in enumerate(self.facts) if i in hit]
            else:
                gone = self.facts[-1:]
            if not gone:
                return self._log(Operation("NOOP", index, text))
            self.facts = [f for f in self.facts if f not in gone]
            return self._log(Operation("DELETE", index, text, tuple(f.text for f in gone)))
        if not is_self_disclosure(text):
            return None
        vector = np.asarray(self.encode([text])[0], dtype=np.float32)
        if self._similar(vector, DUPLICATE_COSINE):
            return self._log(Operation("NOOP", index, text))
        new = Fact(text, index, vector)
        clash = self._similar(vector, SAME_TOPIC_COSINE)
        if not clash:
            self.facts.append(new)
            return self._log(Operation("ADD", index, text))
        replaced = tuple(self.facts[i].text for i in clash)
        keep = [f for i, f in enumerate(self.facts) if i not in clash]
        keep.insert(clash[0], new)  # the newest statement takes the stale one's place
        self.facts = keep
        return self._log(Operation("UPDATE", index, text, replaced))

    def _log(self, op: Operation) -> Operation:
        self.log.append(op)
        return op

    def read(self, history: History, end: int) -> None:
        """Apply the user messages of ``history[position:end]``."""
        for i in range(self.position, min(end, len(history))):
            if history.roles[i] == "user":
                self.apply(history.contents[i], i)
        self.position = max(self.position, min(end, len(history)))


class Mem0StyleSystem:
    """Fact memory with ADD/UPDATE/DELETE/NOOP (generic, embedding-based), then retrieval and answer."""

    name = "mem0-style"

    def __init__(self, embedder: Any = "minilm", top_k: int = 5, judge: Any = "auto") -> None:
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.retriever = HeuristicRetriever(self.embedder, top_k=top_k)
        self.answerer = SimilarityAnswerer(self.embedder)
        self.judge_spec = judge
        self._judge = None
        self._dataset: Dataset | None = None
        self._snapshots: dict[str, tuple[list[int], list[FactMemory]]] = {}

    def prepare(self, dataset: Dataset) -> None:
        if dataset is not self._dataset:
            self.embedder.attach(dataset)
            self._dataset = dataset
            self._snapshots = {}
            self._judge = self._resolve_judge(dataset)

    def _resolve_judge(self, dataset: Dataset):
        spec = self.judge_spec
        if spec is None:
            return None
        if not isinstance(spec, str):
            return spec
        if spec == "auto":
            spec = "gold" if len(dataset.profiles) else "embedding"
        from comam_env.judges import get_judge

        return get_judge(spec)

    def memory_for(self, history: History, end: int) -> FactMemory:
        """The fact memory after reading ``history[:end]`` (continuing from the nearest snapshot)."""
        ends, mems = self._snapshots.setdefault(history.history_id, ([], []))
        k = bisect.bisect_right(ends, end)
        mem = mems[k - 1].copy() if k else FactMemory(self.embedder.encode)
        mem.read(history, end)
        if k == 0 or ends[k - 1] != end:
            ends.insert(k, end)
            mems.insert(k, mem.copy())
        return mem

    def answer(self, question: Question, history: History) -> Prediction:
        from comam_env.rewards import extractor_reward, retriever_reward

        start = time.perf_counter()
        mem = self.memory_for(history, question.end_index)
        fine = mem.texts()
        coarse = fine  # Mem0 keeps one memory: the maintained facts are the user profile
        units = fine
        retrieved = self.retriever.retrieve(units, question.query)
        if question.options:
            letter = self.answerer.choose(question, retrieved).answer
        else:  # open question (LoCoMo): the extractive span of the retrieved facts
            letter = self.retriever.answer_open(question.query, retrieved)
        evidence = self._dataset.evidence_texts(question) if self._dataset is not None else None
        local: dict[str, float | None] = {}
        ext = extractor_reward(fine, evidence) if evidence else None
        ret = retriever_reward(retrieved, evidence) if evidence else None
        local["extractor"] = None if ext is None else float(ext.reward)
        local["retriever"] = None if ret is None else float(ret.reward)
        if self._judge is not None:
            visible = history.render(range(min(question.end_index, len(history))))
            gold = (self._dataset.profile_for(question, [range(0, min(question.end_index, len(history)))])
                    if self._dataset is not None else None)
            local["profiler"] = float(self._judge.score("\n".join(coarse), history=visible, gold_profile=gold).score)
        return Prediction(
            answer=letter,
            retrieved_memory="\n".join(retrieved),
            tokens_in=sum(estimate_tokens(u) for u in units) + estimate_tokens(question.query),
            tokens_out=sum(estimate_tokens(u) for u in retrieved),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            local_rewards=local,
            memory_units=len(units),
            memory_tokens=sum(estimate_tokens(u) for u in units),
        )
