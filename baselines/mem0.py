"""``mem0-style``: an extractor that *maintains* a fact memory with ADD / UPDATE / DELETE / NOOP.

The paper lists memory that replaces stale preferences as future work; this
baseline shows what a Mem0-like update rule buys. The extractor reads the
visible history message by message and, for every user message that states a
preference or a personal fact (the patterns of :mod:`baselines.pipeline`),
applies one operation to a list of facts (each fact is a user message, kept
verbatim so it can match evidence):

* **DELETE** — an explicit retraction ("forget what I said about X", "ignore
  what I told you about X", "scratch that", "that's no longer true") removes the
  facts about X (all facts whose preference object shares ≥ half its words with
  X), or the most recent fact when no object is named. The retraction itself
  is not stored.
* **NOOP** — the message duplicates a stored fact (content-token Jaccard ≥ 0.8).
* **UPDATE** — the message states a preference about the same topic/object as a
  stored fact (changed polarity, e.g. "I no longer like jazz" after "I love
  jazz", or a changed preference on that object): the stale fact is *replaced* by
  the new message (further facts on the same object are merged into it, i.e.
  deleted).
* **ADD** — anything else memorable.

Then the profiler (latest preference per topic) and the retriever/answerer of
``heuristic-pipeline`` run on the maintained memory. The memory of a history
prefix is built incrementally and snapshotted, so questions asked later on the
same history continue from the nearest earlier snapshot. Local rewards are
computed with the same code the environment uses (``comam_env.rewards``:
extractor eq. 9 on the fact memory, retriever eq. 11 on the retrieved units;
profiler eq. 10 with ``comam_env.judges`` when a judge is available).
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass, field
from typing import Any

from comam_env.data.schema import Dataset, History, Question
from comam_env.text import content_tokens, estimate_tokens

from .answerers import CachedEmbedder
from .base import Prediction
from .pipeline import DUPLICATE, HeuristicRetriever, is_fact, jaccard, parse_statements, profile_lines, same_topic

_RETRACT_RE = re.compile(
    r"\b(?:forget|ignore|disregard)\s+(?:that|what|everything)\s+I\s+(?:said|told you|mentioned|wrote)"
    r"(?:\s+(?:about|regarding|on)\s+(.+))?"
    r"|\b(?:scratch|strike)\s+that\b|\bthat(?:'s| is)\s+(?:no longer|not)\s+true\b",
    re.IGNORECASE,
)


@dataclass
class Fact:
    """One stored fact: the user message (verbatim) and the preference objects it speaks about."""

    text: str
    index: int
    objects: tuple[frozenset[str], ...]
    tokens: frozenset[str]


@dataclass
class Operation:
    """A memory operation, for inspection and tests."""

    op: str  # "ADD" | "UPDATE" | "DELETE" | "NOOP"
    index: int  # message index that caused it
    text: str  # the new message
    replaced: tuple[str, ...] = ()  # texts of facts removed/replaced


@dataclass
class FactMemory:
    """The fact list plus the log of operations applied to it."""

    facts: list[Fact] = field(default_factory=list)
    log: list[Operation] = field(default_factory=list)
    position: int = 0  # messages [0, position) have been read

    def copy(self) -> "FactMemory":
        return FactMemory(list(self.facts), list(self.log), self.position)

    def texts(self) -> list[str]:
        return [f"User: {f.text}" for f in self.facts]

    def apply(self, text: str, index: int) -> Operation | None:
        """Apply one user message; returns the operation (``None`` if nothing memorable)."""
        text = " ".join(text.split())
        r = _RETRACT_RE.search(text)
        if r:
            target = r.group(1)
            if target:
                obj = frozenset(content_tokens(re.split(r"[.;!?,]", target)[0]))
                gone = [f for f in self.facts if any(same_topic(o, obj) for o in f.objects)
                        or same_topic(f.tokens, obj)]
            else:
                gone = self.facts[-1:]
            if not gone:
                return self._log(Operation("NOOP", index, text))
            self.facts = [f for f in self.facts if f not in gone]
            return self._log(Operation("DELETE", index, text, tuple(f.text for f in gone)))
        statements = parse_statements(text)
        if not statements and not is_fact(text):
            return None
        toks = content_tokens(text)
        if any(jaccard(toks, f.tokens) >= DUPLICATE for f in self.facts):
            return self._log(Operation("NOOP", index, text))
        objects = tuple(s.obj for s in statements)
        new = Fact(text, index, objects, toks)
        clash = [i for i, f in enumerate(self.facts) if any(same_topic(a, b) for a in f.objects for b in objects)]
        if not clash:
            self.facts.append(new)
            return self._log(Operation("ADD", index, text))
        replaced = tuple(self.facts[i].text for i in clash)
        keep = [f for i, f in enumerate(self.facts) if i not in clash]
        keep.insert(clash[0], new)  # the updated fact takes the stale one's place
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
    """Fact memory with ADD/UPDATE/DELETE/NOOP, then the heuristic profiler, retriever and answerer."""

    name = "mem0-style"

    def __init__(self, embedder: Any = "minilm", top_k: int = 5, judge: Any = "auto") -> None:
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.retriever = HeuristicRetriever(self.embedder, top_k=top_k)
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
        mem = mems[k - 1].copy() if k else FactMemory()
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
        coarse = profile_lines(fine)
        units = fine + coarse
        retrieved = self.retriever.retrieve(units, question.query)
        if question.options:
            letter = self.retriever.choose(question, retrieved)
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
            gold = self._dataset.profile_for(question) if self._dataset is not None else None
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
