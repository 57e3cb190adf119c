"""One episode of the memory-system MDP as a typed board with the three role transitions.

The AEC environment (:mod:`comam_env.env`) is a thin adapter around this module: it draws
the questions, builds an :class:`Episode`, renders observations from it and, at each step,
calls the transition of the acting role:

=====================  ======================================================  ==============
transition             what changes                                            local reward
=====================  ======================================================  ==============
:meth:`write_chunk`    chunk k of H is done; its lines join M_f                eq. 9 at the last chunk
:meth:`write_profile`  M_c is set                                              eq. 10
:meth:`answer`         query j is answered (``<information>`` + answer)        eq. 11
=====================  ======================================================  ==============

After the last answer the episode is :attr:`~Episode.done` and :attr:`~Episode.global_reward`
(eq. 12, the mean over the episode's questions) is known. :class:`EpisodeScorer` holds what the
rewards need (the dataset's evidence and gold profiles, the matcher, the judge, α, β, τ) and
computes them with :mod:`comam_env.rewards`.

Everything here is deterministic: the same questions and actions give the same state, rewards
and parts, bit for bit.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from comam_env import prompts, rewards
from comam_env.charset import normalize_text
from comam_env.chunks import history_chunk_plan, history_lines
from comam_env.config import EnvConfig
from comam_env.data.schema import Dataset, History, Question
from comam_env.roles import ROLE_NAMES, Role

__all__ = ["Episode", "EpisodeScorer", "Transition", "history_ranges", "evidence_index"]

_COVERAGE_FIELDS = ("reward", "recall", "jaccard", "weight", "count", "matched_evidence", "matched_units",
                    "n_units", "n_evidence")

#: ``parts`` of an extractor step before the last chunk (its reward comes on the complete M_f).
_DEFERRED = {"deferred": True, "note": "the extractor's coverage reward is given on the complete M_f at its last chunk"}


@dataclass(frozen=True)
class Transition:
    """What one role's action did.

    Attributes:
        local: the local reward (``None`` when undefined: a question without evidence).
        parts: how it was obtained (what ``infos[agent]["parts"]`` carries).
        extra: step indices for ``infos`` (``chunk_index``/``num_chunks``, ``query_index``/``num_queries``).
        next_agent: the agent that acts next (meaningless once the episode is done).
    """

    local: float | None
    parts: dict[str, Any]
    extra: dict[str, Any]
    next_agent: str


def _session_range(history: History, s: int, end: int) -> range:
    starts = history.session_starts
    stop = starts[s + 1] if s + 1 < len(starts) else len(history)
    return range(starts[s], min(stop, end))


# Per dataset object: history id -> [(evidence message index, question topic)] of every question,
# for the context sessions of "evidence+context" episodes (built once; datasets are immutable).
_EVIDENCE_INDEX: dict[int, tuple[Any, dict[str, list[tuple[int, str | None]]]]] = {}


def evidence_index(dataset: Dataset) -> dict[str, list[tuple[int, str | None]]]:
    """History id → ``(message index, topic)`` of every question's evidence (cached per dataset)."""
    hit = _EVIDENCE_INDEX.get(id(dataset))
    if hit is not None and hit[0]() is dataset:
        return hit[1]
    out: dict[str, list[tuple[int, str | None]]] = {}
    for q in dataset.questions:
        for i in q.evidence or ():
            out.setdefault(q.history_id, []).append((int(i), q.topic))
    for v in out.values():
        v.sort(key=lambda x: x[0])
    for key in [k for k, (ref, _) in _EVIDENCE_INDEX.items() if ref() is None]:
        del _EVIDENCE_INDEX[key]
    _EVIDENCE_INDEX[id(dataset)] = (weakref.ref(dataset), out)
    return out


def history_ranges(history: History, questions: Sequence[Question], episode: str, *,
                   context: Sequence[tuple[int, str | None]] = (), context_sessions: int = 0,
                   ) -> tuple[list[range], dict[str, Any]]:
    """The message ranges (one per session) that make up H, and ``info["history"]``.

    ``"full-history"``: every session of ``messages[:end_index]``. ``"evidence-session"``: the
    sessions holding the questions' evidence, in history order; with no evidence, the last
    session before ``end_index`` (``fallback = True``). ``"evidence+context"``: those sessions
    plus up to ``context_sessions`` other sessions before ``end_index`` that hold evidence of
    another question on the same history (``context``: ``(message index, topic)`` pairs, see
    :func:`evidence_index`) — sessions of the questions' own topic first, then the others, the
    latest first — so H holds stale preferences and decoys of the topic, as full histories do;
    ``info["context_sessions"]`` lists them.
    """
    end = min(questions[0].end_index, len(history))
    info: dict[str, Any] = {"episode": episode, "end_index": questions[0].end_index, "fallback": False}
    if episode == "full-history":
        ranges = history.session_ranges(end)
        sessions = list(range(len(ranges)))  # session_ranges lists sessions 0, 1, … in order
    else:
        # Only the sessions holding evidence are needed: look them up by bisection instead
        # of listing every session of a long history.
        wanted: set[int] = set()
        for q in questions:
            for i in q.evidence or ():
                if 0 <= i < end:
                    wanted.add(history.session_of(i))
        if not wanted and end > 0:
            wanted = {history.session_of(end - 1)}  # no evidence: the last session before end_index
            info["fallback"] = True
        if episode == "evidence+context" and context_sessions > 0:
            topics = {q.topic for q in questions}
            ranked: dict[int, int] = {}  # session -> 0 same topic, 1 other topic
            for i, topic in context:
                if i >= end:
                    break
                s = history.session_of(i)
                if s not in wanted:
                    ranked[s] = min(ranked.get(s, 1), 0 if topic in topics else 1)
            extra = sorted(ranked, key=lambda s: (ranked[s], -s))[:context_sessions]
            info["context_sessions"] = sorted(extra)
            wanted |= set(extra)
        sessions = sorted(wanted)
        ranges = [_session_range(history, s, end) for s in sessions]
    info["sessions"] = [s for s, r in zip(sessions, ranges) if len(r)]
    info["num_messages"] = int(sum(len(r) for r in ranges))
    return ranges, info


class EpisodeScorer:
    """The local rewards of an episode's transitions (eq. 9–11; eq. 12 is :func:`comam_env.score_answer`).

    Built once per environment from its :class:`~comam_env.config.EnvConfig`: the matcher and
    the judge are resolved here, so a wrong name fails when the environment is made.
    """

    def __init__(self, dataset: Dataset, config: EnvConfig) -> None:
        from comam_env.judges import get_judge, judge_reads_history

        self.dataset = dataset
        self.config = config
        self.matcher = rewards.resolve_matcher(config.matcher)
        judge = config.judge
        spec = judge.strip().lower() if isinstance(judge, str) else ""
        if spec == "auto" or spec.partition(":")[0] == "gold":  # "gold:<beta>" too
            # The gold-profile judge matches statements with the env's own matcher.
            self.judge = get_judge(judge, matcher=config.matcher, tau=config.tau)
        else:
            self.judge = get_judge(judge)
        self._judge_reads_history = judge_reads_history

    def coverage(self, memory: Any, evidence: Sequence[str] | None, weight: float, question: Question) -> dict[str, Any] | None:
        """Eq. 9/11 parts as a dict (``None`` when undefined), with the matched message indices."""
        parts = rewards.coverage_reward(memory, evidence, weight, matcher=self.matcher, tau=self.config.tau)
        if parts is None:
            return None
        # CoverageParts is flat: a shallow dict is enough (dataclasses.asdict deep-copies, 10x slower).
        d = {k: getattr(parts, k) for k in _COVERAGE_FIELDS}
        d["matched_evidence"] = list(d["matched_evidence"])
        d["matched_units"] = list(d["matched_units"])
        ev = question.evidence or ()
        d["matched_messages"] = [int(ev[i]) for i in d["matched_evidence"] if i < len(ev)]
        d["question_id"] = question.question_id
        return d

    def extractor(self, ep: "Episode") -> tuple[float | None, dict[str, Any]]:
        """Eq. 9 on the complete M_f: the mean over the episode's questions whose evidence is defined."""
        units = rewards.to_units(ep.fine_memory)  # split once for every question
        per = [self.coverage(units, ev, self.config.alpha, q) for q, ev in zip(ep.questions, ep.evidence)]
        defined = [p for p in per if p is not None]
        if not defined:
            return None, {"queries": per, "undefined": "no evidence for the episode's question(s)"}
        n = len(defined)
        reward = sum(p["reward"] for p in defined) / n
        out: dict[str, Any] = {
            "reward": reward,
            "recall": sum(p["recall"] for p in defined) / n,
            "jaccard": sum(p["jaccard"] for p in defined) / n,
            "n_units": defined[0]["n_units"],
            "queries": per,
        }
        if len(per) == 1:
            out.update({k: per[0][k] for k in ("matched_evidence", "matched_messages", "n_evidence", "count")})
        return reward, out

    def profiler(self, ep: "Episode") -> tuple[float, dict[str, Any]]:
        """Eq. 10: the judge's score of M_c (against the gold profile or the history it saw).

        The gold profile is what H supports (:meth:`~comam_env.data.schema.Dataset.profile_for`
        with H's message spans: statements whose evidence lies in H, preference updates resolved
        as of the end of H); data without per-statement evidence gives the persona's profile.
        """
        gold = self.dataset.profile_for(ep.questions[0], [range(a, b) for a, b in ep.spans])
        history_text = None
        if self._judge_reads_history(self.judge, gold):  # the gold judge never reads it: skip rendering H
            history_text = "\n".join(ep.chunk_text(k) for k in range(len(ep.spans)))
        result = rewards.profiler_reward(ep.coarse, self.judge, history=history_text, gold_profile=gold)
        score = float(result.score)
        parts = dict(getattr(result, "parts", {}) or {})
        # "judge" names the judge that scored (the auto judge's inner gold/embedding judge
        # reports itself); "judge_spec" the judge the env was configured with.
        spec = getattr(self.judge, "name", type(self.judge).__name__)
        parts.setdefault("judge", spec)
        parts["judge_spec"] = self.config.judge if isinstance(self.config.judge, str) else spec
        parts["score"] = score
        return score, parts

    def retriever(self, question: Question, evidence: Sequence[str] | None, retrieved: str,
                  answer: rewards.AnswerParts) -> tuple[float | None, dict[str, Any]]:
        """Eq. 11 on the retrieved units of one answer, with the answer's eq. 12 parts beside it."""
        parts = self.coverage(retrieved, evidence, self.config.beta, question)
        local = None if parts is None else float(parts["reward"])
        if parts is None:
            parts = {"question_id": question.question_id, "undefined": "question has no evidence"}
        parts["parsed_option"] = answer.parsed if answer.kind == "mcq" else None
        parts["answer"] = {"reward": float(answer.reward), "parsed": answer.parsed, "kind": answer.kind}
        return local, parts


@dataclass(eq=False)
class Episode:
    """The state of one episode (the "board"): H, the memory built so far and the answers.

    Build it with :meth:`start`; advance it with :meth:`act` (or the role transitions).
    """

    questions: list[Question]
    history: History
    spans: list[tuple[int, int]]
    """``(start, stop)`` message spans of the extractor's chunks (one empty span for an empty H)."""
    history_info: dict[str, Any]
    evidence: list[tuple[str, ...] | None]
    """Gold evidence texts E_q of each question (``None``: undefined)."""
    steps: list[dict[str, Any]] | None
    """Every step (``trajectory()["steps"]``); ``None`` when not recorded."""
    chunk: int = 0
    """The next chunk the extractor acts on."""
    query: int = 0
    """The next question the retriever answers."""
    fine_parts: list[str] = field(default_factory=list)
    coarse: str = ""
    local: dict[str, float | None] = field(default_factory=dict)
    """Each role's episode-level local reward once it is known (``trajectory()["local"]``)."""
    retriever_locals: list[float | None] = field(default_factory=list)
    """The retriever's local reward of each answered question."""
    retrieved: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    global_reward: float | None = None
    memory_version: int = 0
    """Bumped when M_f or M_c changes: observations of the profiler and retriever depend on it."""
    fine_len: int = 0
    """Length of :attr:`fine_memory`, kept up to date without joining (observation-size bound)."""
    observation_truncated: bool = False
    obs_cache: dict[str, Any] = field(default_factory=dict)
    _fine_text: str | None = ""

    @classmethod
    def start(cls, dataset: Dataset, questions: list[Question], config: EnvConfig) -> "Episode":
        """A fresh episode on ``questions`` (one history and ``end_index``)."""
        history = dataset.history_for(questions[0])
        context = evidence_index(dataset).get(history.history_id, ()) if config.episode == "evidence+context" else ()
        ranges, info = history_ranges(history, questions, config.episode, context=context,
                                      context_sessions=config.context_sessions)
        spans = list(history_chunk_plan(history, ranges, config.chunk_tokens))
        info["empty"] = not spans
        return cls(
            questions=questions,
            history=history,
            spans=spans or [(0, 0)],  # the extractor still acts once, on an empty chunk
            history_info=info,
            evidence=[dataset.evidence_texts(q) for q in questions],
            steps=[] if config.record_trajectory else None,
        )

    # ----------------------------------------------------------------- state

    @property
    def done(self) -> bool:
        """Whether every question has been answered."""
        return self.query >= len(self.questions)

    @property
    def fine_memory(self) -> str:
        """M_f: the non-empty extractor outputs joined by newlines."""
        if self._fine_text is None:  # joined once per extractor step at most, when read
            self._fine_text = "\n".join(p for p in self.fine_parts if p)
        return self._fine_text

    @property
    def current_question(self) -> Question:
        """The question the retriever answers next (the last one once done)."""
        return self.questions[min(self.query, len(self.questions) - 1)]

    def chunk_text(self, k: int) -> str:
        """Chunk ``k`` of H rendered one normalised ``Role: text`` message per line."""
        start, stop = self.spans[k]
        if stop <= start:
            return ""
        part = history_lines(self.history, start, stop)[start:stop]
        if False in part:  # a role with "\r": normalise the chunk as a whole ("\r\n" spans lines)
            return normalize_text(prompts.render_chunk(self.history, range(start, stop)))[0]
        return "\n".join(part)

    # ----------------------------------------------------------- transitions

    def act(self, role: str, text: str, flags: dict[str, Any], scorer: EpisodeScorer) -> Transition:
        """The transition of ``role`` with its (normalised) action ``text``.

        A non-text action (``flags["non_text"]``) never earns a local reward: it is forced to 0
        and the parts keep the formula's value.
        """
        if role == Role.EXTRACTOR.label:
            move = self.write_chunk(text, scorer)
        elif role == Role.PROFILER.label:
            move = self.write_profile(text, scorer)
        else:
            move = self.answer(text, flags, scorer)
        if flags.get("non_text") and move.local is not None:
            move = replace(move, local=0.0, parts={**move.parts, "forced_zero": "non-text action"})
            if role == Role.RETRIEVER.label:
                self.retriever_locals[-1] = 0.0
                self.local[role] = self._retriever_local()
            elif role in self.local:  # the extractor's value is final only after its last chunk
                self.local[role] = 0.0
        return move

    def write_chunk(self, text: str, scorer: EpisodeScorer) -> Transition:
        """The extractor's output for the current chunk joins M_f; eq. 9 after the last chunk."""
        k = self.chunk
        part = text.strip()
        self.fine_parts.append(part)
        self.memory_version += 1
        if part:
            self.fine_len += len(part) + 1
            self._fine_text = None
        self.chunk += 1
        extra = {"chunk_index": k, "num_chunks": len(self.spans)}
        if self.chunk < len(self.spans):
            return Transition(0.0, dict(_DEFERRED), extra, Role.EXTRACTOR.agent)
        local, parts = scorer.extractor(self)
        self.local[Role.EXTRACTOR.label] = local
        return Transition(local, parts, extra, Role.PROFILER.agent)

    def write_profile(self, text: str, scorer: EpisodeScorer) -> Transition:
        """M_c is set to the profiler's output; eq. 10."""
        self.coarse = text.strip()
        self.memory_version += 1
        local, parts = scorer.profiler(self)
        self.local[Role.PROFILER.label] = local
        return Transition(local, parts, {}, Role.RETRIEVER.agent)

    def answer(self, text: str, flags: dict[str, Any], scorer: EpisodeScorer) -> Transition:
        """The retriever answers the current question: eq. 11 on its ``<information>``, eq. 12 on
        its answer; after the last question the global reward is set.

        A missing ``<information>`` or ``<final_answer>`` sets ``flags["malformed"]`` (no tag → no
        retrieved units; the answer parser falls back to the whole response)."""
        j = self.query
        q = self.questions[j]
        retrieved = rewards.extract_tag(text, "information")
        has_answer = "<final_answer>" in text.lower()
        missing = [t for t, ok in (("information", retrieved is not None), ("final_answer", has_answer)) if not ok]
        if missing:
            flags["malformed"] = True
            flags["missing_tags"] = missing
        retrieved = retrieved or ""
        self.retrieved.append(retrieved)
        ans = rewards.answer_reward(text, q)
        self.answers.append({"question_id": q.question_id, "reward": float(ans.reward), "parsed": ans.parsed,
                             "kind": ans.kind})
        local, parts = scorer.retriever(q, self.evidence[j], retrieved, ans)
        parts["query_index"] = j
        self.retriever_locals.append(local)
        self.query += 1
        self.local[Role.RETRIEVER.label] = self._retriever_local()
        if self.done:
            self.global_reward = float(sum(a["reward"] for a in self.answers) / len(self.answers))
        return Transition(local, parts, {"query_index": j, "num_queries": len(self.questions)}, Role.RETRIEVER.agent)

    # ---------------------------------------------------------------- helpers

    def _retriever_local(self) -> float | None:
        """The retriever's episode-level local reward: the mean of its defined per-question rewards."""
        vals = [v for v in self.retriever_locals if v is not None]
        return sum(vals) / len(vals) if vals else None

    def local_rewards(self) -> dict[str, float | None]:
        """Each role's episode-level local reward, stated once (``None``: undefined or not yet known).

        extractor: eq. 9 on the complete M_f (mean over the questions with evidence); profiler:
        eq. 10; retriever: the mean of eq. 11 over the answered questions with evidence. A
        non-text action counts as 0.
        """
        return {name: self.local.get(name) for name in ROLE_NAMES}
