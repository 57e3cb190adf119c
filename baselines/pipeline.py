"""``heuristic-pipeline``: a scripted extractor → profiler → retriever, no LLM.

The CPU reference memory system that runs everywhere. It is played *through the
environment's text view* (``comam_env.env.env(dataset, episode="full-history")``,
``reset(options={"question_id": ...})``), so the env computes the local reward
of every channel exactly as for any other policy, and the answer reward too.

* **Extractor** (one step per chunk): keeps the user turns (on a dialogue
  between two people, e.g. LoCoMo, the turns of both speakers,
  :func:`comam_env.prompts.dialogue_speakers`) that state a preference, a
  personal fact or a self-description, verbatim (one message per line, so kept lines
  match evidence messages), dropping a line whose content tokens are ≥ 80%
  the same (Jaccard) as a line already kept — redundancy removal by similarity.
  Preferences are recognised by first-person patterns such as
  "I (really )?(love|like|prefer|enjoy|hate|dislike|can't stand|switched|started|
  stopped|no longer)…" (:data:`PREFERENCE_RE`), facts by "my <noun> …" /
  "I (work|live|moved|…)…" patterns (:data:`FACT_RES`), self-descriptions by a
  generic rule: a clause with "I" as its subject, not a question, not a mental act,
  attempt, intention or mood of the moment ("I'm thinking of …", "I'm not sure …")
  and not dated to the moment ("today", "last night") (:func:`self_descriptions`).
* **Profiler**: the user's present state, short (:func:`profile_lines`). Per
  preference topic (the statement's *object*: the content words after the verb;
  two objects are the same topic when they share at least half of the smaller
  one's words) the messages that state the present stance, as
  ``Current preference: …`` — a message goes once a later statement on its topic
  takes the other stance; plus, per self-description topic, the latest message
  describing the user, as ``About the user: …`` (lasting facts such as an allergy
  or a job, told once however often they were repeated).
* **Retriever** (:meth:`HeuristicRetriever.retrieve_memory`): what mem0- and
  MemGPT-style systems do — the user profile is always in the prompt, fine-grained
  memory is retrieved for the query under a budget. It copies every profile unit,
  then the ``top_k`` (default 5) fine-memory units most similar to the query among
  those the profile does not supersede (:func:`superseded`: a stale or repeated
  statement on a topic the profile states the present of) — the rule of
  :func:`comam_env.memory_budget.budgeted_memory` with a budget of
  ``|profile| + top_k`` units — into ``<information>``, and answers
  in ``<final_answer>`` with the option most similar to those units, stance-aware:
  similarity to a unit that only states a *negative* preference ("I don't bother
  with X anymore") counts against an option (:meth:`HeuristicRetriever.choose`).
  With an empty profile it is plain top-k retrieval over M_f, so the profile is what
  resolves stale preferences and carries facts no query resembles
  (``benchmarks/role_interventions.py`` measures that: docs/credit_ablation.md).
  An open question (no options) is answered with the extractive span of the
  retrieved units (:meth:`HeuristicRetriever.answer_open`,
  :func:`comam_env.extractive.extractive_answer`).

None of these rules copies a dataset's sentence templates (issue 13): they are
generic first-person and stance patterns, tested on wordings of their own
(``tests/baselines/test_pipelines.py``).

The statement parser (:func:`parse_statements`) is shared with ``mem0-style``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from comam_env.data.schema import Dataset, History, Question
from comam_env.prompts import retriever_action
from comam_env.text import content_tokens, estimate_tokens, split_units

from .answerers import CachedEmbedder, SimilarityAnswerer
from .base import Prediction

_POSITIVE = (
    r"love|loved|loving|like|liked|liking|prefer|preferred|preferring|enjoy|enjoyed|enjoying|adore|adoring|"
    r"am into|'m into|got into|getting into|"
    r"fell in love with|started|began|switched|took up|picked up|am a (?:big |huge )?fan of|"
    r"all about|obsessed with|been loving|into|a (?:big |huge )?fan of|can't get enough of|hooked on|keen on"
)
_NEGATIVE = (
    r"hate|hated|dislike|disliked|can't stand|cannot stand|can not stand|detest|stopped|quit|gave up|"
    r"no longer|don't like|do not like|don't enjoy|do not enjoy|don't love|am not into|'m not into|avoid|"
    r"tired of|lost interest in|done with|don't (?:really )?bother with|"
    r"do not (?:really )?bother with|used to (?:be (?:keen on|into|a fan of)|like|love|enjoy|prefer)|"
    r"not a fan of|not into|grew tired of|grown tired of|moved on from"
)
_ADVERBS = (r"(?:(?:really|absolutely|now|also|just|actually|recently|totally|truly|still|always|never|kind of|"
            r"sort of|have|had|'ve|been|begun|lately|do|definitely|genuinely|honestly|mostly|even|personally|completely|"
            r"pretty much|simply|basically|slowly|gradually|finally|kinda|started)\s+)*")
#: A first-person preference statement; group 1 is the verb phrase, group 2 the rest.
PREFERENCE_RE = re.compile(
    rf"\bI(?:'ve|'m|\s+am|\s+have)?\s+{_ADVERBS}({_NEGATIVE}|{_POSITIVE})\b(.*)", re.IGNORECASE)
_FAVOURITE_RE = re.compile(r"\bmy\s+(?:all[- ]time\s+)?favou?rite\s+(.*)", re.IGNORECASE)
#: Object-first preference phrasings: "X is my favorite …", "nothing beats X …".
_OBJECT_FIRST_RES = (
    re.compile(r"^(?:\s*\w+,\s*)?(.+?)\s+(?:is|are)\s+(?:still\s+)?my\s+(?:absolute\s+|all[- ]time\s+)?"
               r"(?:favou?rite|go-to|thing|jam)\b", re.IGNORECASE),
    re.compile(r"\bnothing\s+beats\s+(.+)", re.IGNORECASE),
    # "…; X won me over", "X took its place", "… and X replaced it"
    re.compile(r"^(?:\s*(?:and|then|so)\s+)?(.+?)\s+(?:won me over|took (?:its|their|the) place|"
               r"replaced (?:it|them)|is my new (?:favou?rite|thing))\b", re.IGNORECASE),
)
_NEGATIVE_RE = re.compile(rf"^(?:{_NEGATIVE})$", re.IGNORECASE)
#: Personal facts worth remembering even without a preference verb.
FACT_RES = (
    re.compile(r"\bmy\s+(?:\w+\s+){0,2}?(?:sister|brother|mother|mom|father|dad|parents|wife|husband|partner|son|"
               r"daughter|kids|children|friend|boss|family|dog|cat|job|work|house|home|birthday|name|goal|plan|"
               r"doctor|team|colleague|grand\w*)\b", re.IGNORECASE),
    re.compile(r"\bI(?:'m|'ve| am| was| have| had)?\s+(?:\w+\s+)?(?:work|worked|live|lived|moved|grew up|studied|"
               r"graduated|bought|visited|adopted|volunteer|volunteered|joined|signed up|learned|was born|"
               r"am a|am an|'m a|'m an|plan to|am planning|'m planning|decided|have been|recently)\b",
               re.IGNORECASE),
)
#: A first-person statement: "I" as the subject of a verb (group ``pred``: what follows "I",
#: after an optional auxiliary).
_SELF_RE = re.compile(r"(?<![\w'])I(?:'m|'ve|'d|\s+am|\s+have|\s+was|\s+had)?\s+(?P<pred>[\w'][^.;:!?]*)",
                      re.IGNORECASE)
#: Predicates that are about the moment of speaking, not the speaker: mental acts, attempts,
#: intentions, moods, speech acts and reported knowledge about others ("I'm thinking of…",
#: "I'm not sure…", "I just heard that…"), in the present, past or negated.
_TRANSIENT_PRED_RE = re.compile(
    r"^(?:(?:just|really|still|also|ever|even|never|actually|honestly|kind of|sort of|so|been)\s+)*"
    r"(?:think|thought|thinking|wonder|wondered|wondering|guess|suppose|curious|not sure|sure|unsure|"
    r"try|tried|trying|mean|meant|meaning|hope|hoped|hoping|want|wanted|wanting|need|needed|wish|"
    r"would|could|should|will|shall|can|can't|cannot|may|might|must|going to|gonna|about to|"
    r"feel|felt|feeling|being|glad|happy|sorry|afraid that|afraid I|excited|bored|tired|here|back|"
    r"(?:doing\s+)?(?:well|fine|good|great|okay|ok|alright)(?=\s*(?:,|$))|"
    r"(?:learned|learnt|heard|read|saw|noticed|found out|realized|realised)\s+(?:that|about)|heard|"
    r"forgot|forget|remember|told|tell|said|say|asked|ask|agree|see|know|understand|looking forward|"
    r"(?:hadn't|haven't|didn't|don't|do not|did not|never)\s+(?:considered|consider|thought|think|known|know|"
    r"realized|realised|noticed))\b",
    re.IGNORECASE)
#: Clauses about the present moment or a single recent occasion are not lasting facts.
_MOMENT_RE = re.compile(r"\b(?:today|tonight|yesterday|right now|at the moment|this (?:morning|afternoon|evening)|"
                        r"last night)\b", re.IGNORECASE)
#: A self-description has at least this many words after "I" (and its auxiliary).
MIN_SELF_WORDS = 3


def self_descriptions(text: str) -> list[str]:
    """The predicates of the first-person self-descriptions in a user message.

    A self-description is a clause with "I" as its subject ("I'm allergic to …", "I've been
    running every weekend", "I grew up by the sea") whose predicate has at least
    :data:`MIN_SELF_WORDS` words, is not a mental act, attempt, intention, mood or speech act of
    the moment (:data:`_TRANSIENT_PRED_RE`: "I'm thinking of …", "I just heard that …") and is not
    dated to the present moment (:data:`_MOMENT_RE`: "today", "last night"). A message that asks
    something (holds a "?") is a request, not a self-description, and holds none.
    """
    if "?" in text:
        return []
    out = []
    for clause in _CLAUSE_SPLIT_RE.split(text):
        if not clause or _MOMENT_RE.search(clause) or re.search(r"\b(?:if|when|whether)\s+I\b", clause, re.I):
            continue
        for m in _SELF_RE.finditer(clause):
            pred = m.group("pred").strip()
            if len(pred.split()) >= MIN_SELF_WORDS and not _TRANSIENT_PRED_RE.match(pred) and content_tokens(pred):
                out.append(pred)
                break
    return out


def is_self_description(text: str) -> bool:
    """Whether a user message holds a first-person self-description (:func:`self_descriptions`)."""
    return bool(self_descriptions(text))


_CLAUSE_END_RE = re.compile(r"[.;!?,]|\b(?:because|since|but|although|though|as it|so that|which)\b", re.IGNORECASE)
_CLAUSE_SPLIT_RE = re.compile(r"(?<=[.;!?])\s+|;\s*|\bbut\b|\band then\b|\band(?=\s+[\w' -]+\s+replaced\b)",
                              re.IGNORECASE)
#: Words that describe the stance rather than the object of a preference.
STANCE_WORDS = frozenset(
    "love loved like liked prefer preferred enjoy enjoyed adore hate hated dislike disliked stand detest stopped "
    "quit gave give longer don't not no started began switched took picked fan big huge really anymore more "
    "much lot lately now into tired lost interest done avoid never always still getting recently currently "
    "these days honestly completely bother keen obsessed hooked fan".split()
)
_ANYMORE_RE = re.compile(r"\b(?:any ?more|these days no)\b", re.IGNORECASE)
_SWITCH_RE = re.compile(r"\bswitched\s+(?:over\s+)?(?:from\s+(.*?)\s+)?to\s+(.*)", re.IGNORECASE)
#: Minimum overlap coefficient |A∩B| / min(|A|,|B|) for two objects to be the same topic.
SAME_TOPIC = 0.5
#: Content-token Jaccard above which two memory lines are duplicates.
DUPLICATE = 0.8


@dataclass(frozen=True)
class Statement:
    """A parsed first-person statement: ``polarity`` +1 (likes) / −1 (dislikes), ``obj`` its topic words."""

    text: str
    polarity: int
    obj: frozenset[str]
    phrase: str = ""  # the words naming the object ("detective paperbacks"), for stance-aware scoring


def _object_head(text: str) -> str:
    m = _CLAUSE_END_RE.search(text)
    return (text[: m.start()] if m else text).strip()


def _object_tokens(text: str) -> frozenset[str]:
    return frozenset(t for t in content_tokens(_object_head(text)) if t not in STANCE_WORDS)


def _stmt(clause: str, polarity: int, span: str) -> Statement | None:
    obj = _object_tokens(span)
    return Statement(clause.strip(), polarity, obj, _object_head(span)) if obj else None


def parse_statements(text: str) -> list[Statement]:
    """Preference statements in a user message, one per clause (possibly several per message)."""
    out: list[Statement | None] = []
    for clause in _CLAUSE_SPLIT_RE.split(text):
        if not clause or not clause.strip():
            continue
        sw = _SWITCH_RE.search(clause)
        if sw and re.search(r"\bI(?:'ve| have)?\s+(?:\w+\s+)?switched\b", clause, re.IGNORECASE):
            if sw.group(1):
                out.append(_stmt(clause, -1, sw.group(1)))
            out.append(_stmt(clause, 1, sw.group(2)))
            continue
        first = next((m for m in (r.search(clause) for r in _OBJECT_FIRST_RES) if m), None)
        if first:
            st = _stmt(clause, 1, re.sub(r"\bfor me\b", "", first.group(1), flags=re.IGNORECASE))
            if st:
                out.append(st)
                continue
        m = PREFERENCE_RE.search(clause)
        if m:
            verb, rest = m.group(1), m.group(2)
            polarity = -1 if _NEGATIVE_RE.match(verb.strip()) else 1
            if polarity > 0 and _ANYMORE_RE.search(clause):
                polarity = -1
            if verb.lower() == "no longer":  # "I no longer like X" / "I no longer go hiking"
                rest = re.sub(r"^\s*(?:like|enjoy|love|want|care for|go|play|listen to|eat|watch)\b", "", rest)
            out.append(_stmt(clause, polarity, rest))
            continue
        f = _FAVOURITE_RE.search(clause)
        if f:
            out.append(_stmt(clause, 1, f.group(1).replace(" is ", " ").replace(" are ", " ")))
    return [st for st in out if st is not None]


def is_fact(text: str) -> bool:
    """Whether a user message states a personal fact (:data:`FACT_RES`)."""
    return any(r.search(text) for r in FACT_RES)


def same_topic(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a and b) and len(a & b) / min(len(a), len(b)) >= SAME_TOPIC


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


_USER_LINE_RE = re.compile(r"^\s*(?:\[\d+\]\s*)?User:\s*(.*)$", re.IGNORECASE)
_SPEAKER_LINE_RE = re.compile(r"^\s*(?:\[\d+\]\s*)?(?:User|Assistant):\s*(.*)$", re.IGNORECASE)
_OPTION_RE = re.compile(r"^\s*\(([a-h])\)\s?(.*)$")


def user_lines(chunk: str, both_speakers: bool = False) -> list[tuple[str, str]]:
    """(full line, message text) of every ``User:`` line of a rendered chunk (with
    ``both_speakers``, of the ``Assistant:`` lines too: a dialogue between two people)."""
    out = []
    pattern = _SPEAKER_LINE_RE if both_speakers else _USER_LINE_RE
    for line in chunk.splitlines():
        m = pattern.match(line)
        if m and m.group(1).strip():
            out.append((line.strip(), m.group(1).strip()))
    return out


def memory_units(memory: str) -> list[str]:
    """Units of a rendered memory block, without the ``##`` headings and ``(empty)`` markers."""
    return [u for u in split_units(memory) if not u.startswith("## ") and u != "(empty)"]


def memory_sections(memory: str) -> tuple[list[str], list[str]]:
    """(profile units, fine-memory units) of a rendered retriever memory block: the units under a
    ``## User profile`` heading and those under a ``## Fine-grained memory…`` heading (either
    order; the text view renders both, :func:`comam_env.prompts.render_memory`). A block without
    headings is all fine memory."""
    profile: list[str] = []
    fine: list[str] = []
    target = fine
    for unit in split_units(memory):
        if unit.startswith("## "):
            target = profile if unit[3:].lower().startswith("user profile") else fine
        elif unit != "(empty)":
            target.append(unit)
    return profile, fine


class HeuristicExtractor:
    """Keep user turns (both speakers' with ``both_speakers``) stating preferences or facts;
    drop near-duplicates of kept lines."""

    def __init__(self, duplicate: float = DUPLICATE, both_speakers: bool = False) -> None:
        self.duplicate = duplicate
        self.both_speakers = both_speakers
        self._kept: list[frozenset[str]] = []

    def reset(self) -> None:
        self._kept = []

    def __call__(self, chunk: str) -> str:
        lines = []
        for line, text in user_lines(chunk, self.both_speakers):
            if not (parse_statements(text) or is_fact(text) or is_self_description(text)):
                continue
            toks = content_tokens(text)
            if any(jaccard(toks, k) >= self.duplicate for k in self._kept):
                continue
            self._kept.append(toks)
            lines.append(line)
        return "\n".join(lines)


#: Prefix of a profile line holding the latest preference statement of a topic.
PREFERENCE_PREFIX = "Current preference: "
#: Prefix of a profile line holding a lasting self-description of the user.
FACT_PREFIX = "About the user: "


def _strip_profile_prefix(unit: str) -> str:
    """``unit`` without a ``Current preference: `` / ``About the user: `` profile prefix."""
    for prefix in (PREFERENCE_PREFIX, FACT_PREFIX):
        if unit.startswith(prefix):
            return unit[len(prefix):]
    return unit


def _message(unit: str) -> str:
    """The message text of a memory unit (without a ``User:``/``[i]`` prefix or a profile prefix)."""
    unit = _strip_profile_prefix(unit)
    m = _USER_LINE_RE.match(unit) or _SPEAKER_LINE_RE.match(unit)
    return m.group(1) if m else unit


def _self_topics(text: str) -> list[frozenset[str]]:
    """The topics (content words of the predicate) of a message's self-descriptions."""
    return [t for t in (content_tokens(p) for p in self_descriptions(text)) if t]


def _group_latest(items: Sequence[tuple[frozenset[str], str]]) -> list[str]:
    """Per topic (object words, :func:`same_topic` merges) the latest text, in first-seen order."""
    topics: list[tuple[frozenset[str], str]] = []
    for obj, text in items:
        for i, (seen, _) in enumerate(topics):
            if same_topic(seen, obj):
                topics[i] = (seen | obj, text)
                break
        else:
            topics.append((obj, text))
    return list(dict.fromkeys(text for _, text in topics))


def profile_lines(units: Sequence[str]) -> list[str]:
    """The user profile of memory ``units``: the user's present state, short.

    * the messages stating the *present* preference on a topic (the object of a statement,
      :func:`parse_statements`), as ``Current preference: <message>``: a message is kept unless a
      later statement on the topic of its first statement takes the other stance (so "I love X"
      goes once "I've lost interest in X" follows, and "I'm all about Y; I like its Q" stays when a
      later "Y won me over" confirms it);
    * per self-description topic (the content words of its predicate, :func:`self_descriptions`)
      of a message that states no preference, the latest such message, as
      ``About the user: <message>`` — lasting facts the user states about themself ("I'm allergic
      to …", "I volunteer at …"), told once however often they were repeated.

    Messages are kept whole (the reasons and qualities around a statement stay with it) and appear
    once; a message is judged by its first statement (a stale message is not kept for a side
    clause no later message contradicts).
    """
    prefs: list[tuple[frozenset[str], int, str]] = []  # (object, polarity, message), in order
    primary: list[int] = []  # index in prefs of each message's first statement
    facts: list[tuple[frozenset[str], str]] = []
    for unit in units:
        text = _message(unit)
        stmts = parse_statements(text)
        if stmts:
            primary.append(len(prefs))
            prefs.extend((st.obj, st.polarity, text) for st in stmts)
        else:
            facts.extend((obj, text) for obj in _self_topics(text))
    # a message states the present when no later statement on the topic of its first statement
    # takes the other stance (later statements of the same stance confirm it and keep it)
    latest_prefs = list(dict.fromkeys(
        prefs[i][2] for i in primary
        if not any(same_topic(o, prefs[i][0]) and pol != prefs[i][1] for o, pol, _ in prefs[i + 1:])))
    shown = set(latest_prefs)
    return ([PREFERENCE_PREFIX + t for t in latest_prefs]
            + [FACT_PREFIX + t for t in _group_latest(facts) if t not in shown])


def _profile_topics(profile: Sequence[str]) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
    """(preference topics, self-description topics) the profile states the present of."""
    pref_topics = [st.obj for line in profile if line.startswith(PREFERENCE_PREFIX)
                   for st in parse_statements(_message(line))]
    fact_topics = [t for line in profile if line.startswith(FACT_PREFIX) for t in _self_topics(_message(line))]
    return pref_topics, fact_topics


def superseded(unit: str, profile: Sequence[str], topics=None) -> bool:
    """Whether the profile already states the user's present state on everything ``unit`` says.

    A fine-memory unit stating preferences is superseded when every topic it speaks about has a
    ``Current preference`` line in the profile (the profile holds the latest statement: the unit
    is that statement or a stale one); a self-description is superseded when the profile has an
    ``About the user`` line on the same topic. Other units (facts with no "I", anything the
    profile does not cover) are never superseded. ``topics`` is ``_profile_topics(profile)`` when
    the caller tests many units against one profile.
    """
    pref_topics, fact_topics = _profile_topics(profile) if topics is None else topics
    text = _message(unit)
    stmts = parse_statements(text)
    if stmts:
        return all(any(same_topic(st.obj, t) for t in pref_topics) for st in stmts)
    selves = _self_topics(text)
    if not selves:
        return False
    return all(any(same_topic(s, t) for t in fact_topics) for s in selves)


class HeuristicRetriever:
    """The ``top_k`` memory units most similar to the query, and the option most similar to them."""

    def __init__(self, embedder: Any = "minilm", top_k: int = 5) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.top_k = int(top_k)
        self.answerer = SimilarityAnswerer(self.embedder)

    def retrieve_memory(self, profile: Sequence[str], fine: Sequence[str], query: str) -> list[str]:
        """The units copied into ``<information>``: the profile first, then fine memory.

        The rule of :func:`comam_env.memory_budget.budgeted_memory` (what real memory systems do:
        the user profile is in every prompt, fine-grained memory is retrieved for the query) with a
        budget of ``len(profile) + top_k`` units: every profile unit (de-duplicated, in profile
        order), then the ``top_k`` fine-memory units most similar to the query, in chronological
        order, among those the profile does not supersede (:func:`superseded`: stale or repeated
        statements on a topic the profile states the present of). With an empty profile this is
        :meth:`retrieve` on the fine memory.
        """
        from comam_env.memory_budget import budgeted_memory, memory_units as split_profile_fine

        profile, fine = split_profile_fine(profile, fine)
        if profile:
            topics = _profile_topics(profile)
            fine = [u for u in fine if not superseded(u, profile, topics)]
        if not profile and not fine:
            return []
        q = self.embedder.encode([query])[0]
        p_emb = self.embedder.encode(profile) if profile else np.zeros((0, len(q)), np.float32)
        f_emb = self.embedder.encode(fine) if fine else np.zeros((0, len(q)), np.float32)
        keep_p, keep_f = budgeted_memory(profile, fine, p_emb, f_emb, q, len(profile) + self.top_k)
        return [profile[i] for i in keep_p] + [fine[i] for i in keep_f]

    def retrieve(self, units: Sequence[str], query: str) -> list[str]:
        units = list(dict.fromkeys(units))
        if not units:
            return []
        sims = self.embedder.encode(units) @ self.embedder.encode([query])[0]
        order = sorted(range(len(units)), key=lambda i: (-float(sims[i]), -i))[: self.top_k]  # ties: most recent
        return [units[i] for i in sorted(order)]

    def choose(self, question: Question, retrieved: Sequence[str]) -> str:
        """Stance-aware option–memory similarity.

        score(option) = max similarity to a retrieved unit that states a positive
        (or no) preference − max similarity to a unit that only states negative
        ones ("I don't bother with X anymore"), so an option naming a dropped
        preference is not chosen just because the memory mentions it. Ties go to
        the earlier option; with nothing retrieved, the option most similar to
        the query.
        """
        units = list(retrieved)
        if not units:
            return self.answerer.choose(question, []).answer
        # scoring elements: every unit as a whole (reasons, facts), stated as positive unless it only
        # states negative preferences, plus the object phrase of every statement with its polarity
        texts, signs = [], []
        for u in units:
            stmts = parse_statements(_message(u))
            texts.append(u)
            signs.append(-1 if stmts and all(st.polarity < 0 for st in stmts) else 1)
            for st in stmts:
                texts.append(st.phrase)
                signs.append(st.polarity)
        sims = self.embedder.encode(list(question.options)) @ self.embedder.encode(texts).T
        stance = np.array(signs)
        pos = np.where(stance > 0, sims, -np.inf).max(axis=1)
        neg = np.where(stance < 0, sims, -np.inf).max(axis=1)
        score = np.where(np.isfinite(pos), pos, 0.0) - np.where(np.isfinite(neg), np.maximum(neg, 0.0), 0.0)
        return question.option_labels[int(np.argmax(score))]

    def answer_open(self, query: str, retrieved: Sequence[str]) -> str:
        """The extractive answer to an open question from the retrieved units
        (:meth:`baselines.answerers.SimilarityAnswerer.answer_open`)."""
        q = Question("_", "_", "_", "_", query, (), "", None, 0)
        # profile lines without their "Current preference: " / "About the user: " prefix, so the
        # span rule sees the message (and its speaker label) as in a fine-memory line
        return self.answerer.answer_open(q, [_strip_profile_prefix(u) for u in retrieved]).answer



def parse_options(options: str) -> list[str]:
    """Option texts from ``(a) text`` lines (the env's ``options`` field)."""
    return [m.group(2) for m in (_OPTION_RE.match(line) for line in options.splitlines()) if m]


class HeuristicPipeline:
    """Scripted extractor/profiler/retriever played through the env's text view (no LLM)."""

    name = "heuristic-pipeline"

    def __init__(self, embedder: Any = "minilm", top_k: int = 5, chunk_tokens: int | None = 4096,
                 judge: Any = "auto") -> None:
        self.embedder = CachedEmbedder(embedder) if not isinstance(embedder, CachedEmbedder) else embedder
        self.retriever = HeuristicRetriever(self.embedder, top_k=top_k)
        self.chunk_tokens = chunk_tokens
        self.judge = judge
        self._env = None
        self._dataset: Dataset | None = None
        self._both_speakers = False

    def prepare(self, dataset: Dataset) -> None:
        from comam_env.env import env as make_env
        from comam_env.prompts import dialogue_speakers

        if self._dataset is not dataset:
            self._both_speakers = any(dialogue_speakers(h) for h in dataset.histories.values())
            self.embedder.attach(dataset)
            self._env = make_env(dataset, episode="full-history", chunk_tokens=self.chunk_tokens, judge=self.judge,
                                 reward_mode="none", record_trajectory=False)
            self._dataset = dataset

    # -- the three scripted policies, each reading only its own observation
    def act(self, role: str, obs: dict, extractor: HeuristicExtractor) -> str:
        if role == "extractor":
            return extractor(obs["chunk"])
        if role == "profiler":
            return "\n".join(profile_lines(memory_units(obs["memory"])))
        profile, fine = memory_sections(obs["memory"])
        retrieved = self.retriever.retrieve_memory(profile, fine, obs["query"])
        options = parse_options(obs["options"])
        if not options:
            return retriever_action(retrieved, self.retriever.answer_open(obs["query"], retrieved))
        q = Question("_", "_", "_", "_", obs["query"], tuple(options), "a", None, 0)
        return retriever_action(retrieved, f"({self.retriever.choose(q, retrieved)})")

    def answer(self, question: Question, history: History) -> Prediction:
        if self._env is None or self._dataset is None:
            raise RuntimeError("call prepare(dataset) before answer()")
        start = time.perf_counter()
        return play_episode(self._env, question, lambda role, obs, ex: self.act(role, obs, ex),
                            HeuristicExtractor(both_speakers=self._both_speakers), start)


def play_episode(env, question: Question, act, extractor_state, start: float) -> Prediction:
    """Run one full-history episode of ``question`` with ``act(role, obs, state) -> text``.

    Collects each channel's episode-level local reward (``episode.local_rewards()``, what
    ``trajectory()["local"]`` states), the retriever's output and the parsed answer.
    """
    from comam_env.roles import role_of
    from comam_env.rewards import extract_tag

    env.reset(options={"question_id": question.question_id})
    tokens_in = tokens_out = 0
    retrieved = ""
    parsed = ""
    fine = coarse = ""
    for agent in env.agent_iter():
        obs, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        role = role_of(int(obs["role"]))
        action = act(role, obs, extractor_state)
        tokens_in += estimate_tokens(obs["prompt"])
        tokens_out += estimate_tokens(action)
        env.step(action)
        if role == "retriever":
            info = env.unwrapped.infos[agent]
            retrieved = extract_tag(action, "information") or ""
            parsed = (info.get("parts") or {}).get("parsed_option") or ""
            if not question.options:
                parsed = (extract_tag(action, "final_answer") or "").strip()
    base = env.unwrapped
    local = base.episode.local_rewards()
    fine, coarse = base.fine_memory, base.coarse_memory
    units = memory_units(fine) + memory_units(coarse)
    return Prediction(
        answer=parsed,
        retrieved_memory=retrieved.strip(),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        latency_ms=(time.perf_counter() - start) * 1000.0,
        local_rewards=local,
        memory_units=len(units),
        memory_tokens=sum(estimate_tokens(u) for u in units),
    )
