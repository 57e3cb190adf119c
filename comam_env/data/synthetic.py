"""Synthetic PersonaMem-style benchmark generator (docs/design.md §6), the offline default data.

:func:`generate` writes a folder in the *real* PersonaMem format, so it goes
through the same loader as the real benchmark:

* ``questions_<S>.csv`` — the 15 real columns (``all_options`` a Python list
  literal of ``"(a) ..."`` strings, ``correct_answer`` like ``(c)``, the
  proportion column like ``92.67%``), CRLF line ends like the real file;
* ``shared_contexts_<S>.jsonl`` — one ``{shared_context_id: [{"role",
  "content"}, ...]}`` per line; every session starts with a
  ``Current user persona: ...`` system message and contents carry literal
  ``User: `` / ``Assistant: `` prefixes;
* ``evidence.jsonl`` — one line per question ``{"question_id", "evidence":
  [message indices], "fact_words": [...]}`` (``fact_words``: the content words
  of the fact the gold option states, which the evidence messages contain);
* ``profiles.json`` — ``{persona_id: [gold profile statements]}`` (what the whole
  context supports: the final state);
* ``profile_statements.json`` — ``{persona_id: [{"text", "evidence", "group",
  "order"}]}``: every gold statement with the message indices that support it
  (:func:`read_profile_statements`; see *Gold profiles* below);
* ``meta.json`` — generator version, the full config, counts and token totals.

``<S>`` is ``32k``, ``128k`` or ``1M`` (size ``"1m"``; size ``"mini"`` writes 32k-format
files). :func:`load_synthetic`
generates once into ``<cache_dir>/synthetic/<size>-seed<seed>-<knobhash>/`` and
loads it through :func:`comam_env.data.personamem.load_personamem_dir`.

What is generated
-----------------
Each persona (name, age, occupation, home city, two traits) gets one shared
context. For each of its topics (music, movies, books, travel, food, fitness,
investing, home decor) the persona has a *preference timeline*: an initial
preference, then ``updates_per_topic`` updates, each stating the new
preference in one user turn and, later in the same session, dropping the old
one, immediately followed by a turn that gives the reason; plus one shared
fact (e.g. "I visited Kyoto last year") and ``decoys_per_fact`` decoy mentions
of the same kind of fact about other people ("my coworker just got back from
Prague"). Preferences of one
timeline come from distinct *clusters* of the topic (each cluster has a
*quality*, e.g. jazz and blues share "improvised, laid-back grooves"), so a
stale and a current preference never share what the user likes about them.
These statements sit in persona sessions of ``session_turns`` messages among
small talk and assistant replies (which sometimes mention other items of the
topic). Unrelated filler sessions (general-knowledge Q&A) are interleaved at
random until the context holds ``target_tokens`` tokens, counted with
:func:`comam_env.text.estimate_tokens` over the message contents as written
(prefixes and persona messages included) — within ±1 % of the target; the
loader strips the ``User:``/``Assistant:`` prefixes, which removes about 6 %.

Questions (four options, one correct, shuffled; the seven types): every
question is asked at a session boundary after its evidence (the end of the
context, or with probability ``mid_history_questions`` an earlier boundary)
and is answered from the state visible at that point.

=========================================  ==============================================  =====================================
type                                       gold option                                     evidence
=========================================  ==============================================  =====================================
acknowledge_latest_user_preferences        the latest visible preference                   the latest preference statement
provide_preference_aligned_recommendations a recommendation built on it                    the latest preference statement
suggest_new_ideas                          the untried sibling item with the same quality  the latest preference statement
generalize_to_new_scenarios                the quality of the latest preference            the latest preference statement
track_full_preference_evolution            the visible preferences in order                every visible statement and drop turn
revisit_reasons_behind_preference_updates  the reason given for one update                 old and new statement, drop, reason
recall_user_shared_facts                   the user's own fact                             the fact statement
=========================================  ==============================================  =====================================

Distractors come from the same persona's stale (or later) preferences, from
preferences other personas hold, from decoy facts and other reasons the
persona gave, then random items — so every distractor is usually *mentioned in
the history*, which is what defeats whole-history word matching. All four
options of a question share one frame and differ only in the slot (item,
quality, reason, fact value, ordering); the slot values are exchangeable
draws from the same pools, which keeps the longest-option probe at chance.
With ``updates_per_topic=0`` there are no evolution or reason questions.

Habits (``habits_per_persona``, default 2): lasting facts about the user's life
("working night shifts at the hospital", "on a very tight budget"), each stated
in ``habit_mentions`` (3) distinct persona sessions in one wording, plus
``habit_decoys`` mentions of other people's habits. Each habit gets one
``generalize_to_new_scenarios`` question (topic ``lifestyle``): a generic planning
request ("I have a free Saturday coming up. What would you suggest?") whose options
name four habits. The query shares no content word with the mentions, so a
retriever that sees only the fine-memory units most similar to the query (the
selection view's memory budget) misses them; a profile that kept them carries
them. These are the questions that make the profiler causally necessary.

Gold profiles (the profiler's target, eq. 10)
---------------------------------------------
A gold statement is worded like its evidence, so a profile made of the right memory
lines matches it: the identity (from the persona message opening every session),
per preference state ``"<noun>: <item>, <quality>"``, per update the reason as
stated, per topic the fact as stated, per habit its wording. The profiler's gold for
an episode is what the history H it saw supports
(:func:`comam_env.data.schema.resolve_profile`): the statements with an evidence
message in H, and of a topic's preference states only the latest one in H
(preference updates resolved as of that point). An evidence session thus asks for
the few statements it holds, not the persona's final state.

Sizes and splits
----------------
Default personas and repeats per size (``question_repeats``: each question asked at
that many distinct session boundaries, answered from the state at each):
``mini`` 40 personas x 15 questions (2.5k-token histories, ~9 sessions; the CPU
track for LLM policies), ``32k`` 40 x 34 x 2, ``128k`` 25 x 34 x 3, ``1m`` 10 x 34 x 8.
The registered ``synthetic-*`` environments split by persona (20 % of the
personas' questions for validation: >= 500 questions at every size; see
:mod:`comam_env.registry`).

Difficulty at the defaults (seed 0, 32k; ``tests/data/test_synthetic.py``):
longest option 0.25, question-option word overlap 0.27, the option sharing the
most content words with the whole visible history 0.27–0.31 — all at chance —
while an agent holding the gold evidence picks the option nearest to it in
MiniLM space for about 0.9 of the non-evolution questions (evolution options
differ only in order), and at ``paraphrase=0`` plain word overlap with the
evidence answers more than 0.9 of them.

Knobs (:class:`SyntheticConfig`)
--------------------------------
* ``paraphrase`` (default 0.5) — wording distance between evidence and options.
  Every item, quality and reason has two wordings with different content words;
  each option slot reuses the wording of its own evidence statement with
  probability ``1 - paraphrase`` and uses the other wording otherwise. Option
  frames never share content words with statement frames, so at 0 options
  reuse the evidence's slot words and at 1 they share almost none (only fact
  values such as a city name, and a fact's own noun such as "film festival").
* ``distractor_closeness`` (default 1.0) — probability that a question's
  distractor slots are filled closest-first (stale preferences of the same
  persona → other personas' preferences → random); otherwise in random order
  over the same candidates (more random items, easier).
* ``updates_per_topic`` (0–3), ``topics_per_persona`` (1–8), ``decoys_per_fact``,
  ``n_personas``, ``target_tokens``, ``filler_ratio``, ``session_turns``,
  ``assistant_mentions``, ``mid_history_questions`` — see the field docs.

Everything is deterministic from ``seed``: all randomness comes from
:class:`numpy.random.Generator` objects seeded by ``SeedSequence([seed, ...])``
(one stream per persona and purpose; persona ``i``'s timeline is the same
for every size), no global random state, no set ordering or ``hash()``.
Generating ``1m`` (10 contexts of 1M tokens) takes about 5 s on one core
(``benchmarks/data_scale.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..text import estimate_tokens
from . import synthetic_vocab as V
from .paths import atomic_write_text, cache_dir, remove_stale_temps
from .schema import OPTION_LETTERS, QUESTION_TYPES, ProfileStatement, resolve_profile

__all__ = [
    "GENERATOR_VERSION", "SIZES", "TARGET_TOKENS", "FILE_SUFFIX", "DEFAULT_PERSONAS", "CSV_COLUMNS",
    "SIZE_DEFAULTS", "KNOB_DEFAULTS", "SyntheticConfig", "build", "generate", "load_synthetic", "file_names",
    "raw_type_label", "default_cache_folder", "read_profile_statements",
]

#: Bump whenever generated output changes for the same config (it keys the cache).
GENERATOR_VERSION = "4"

#: Size names accepted by :func:`generate` and the token target of each.
SIZES: tuple[str, ...] = ("mini", "32k", "128k", "1m")
TARGET_TOKENS: dict[str, int] = {"mini": 2_500, "32k": 32_000, "128k": 128_000, "1m": 1_000_000}
#: Split suffix used in the PersonaMem file names (``mini`` writes 32k-format files).
FILE_SUFFIX: dict[str, str] = {"mini": "32k", "32k": "32k", "128k": "128k", "1m": "1M"}
#: Default number of personas (one shared context each) per size. With the per-size
#: ``question_repeats`` every size has >= 500 validation questions under the by-persona split.
DEFAULT_PERSONAS: dict[str, int] = {"mini": 40, "32k": 40, "128k": 25, "1m": 10}
#: Knob defaults per size (a knob left at ``None`` takes its size's value, else :data:`KNOB_DEFAULTS`).
#: ``mini`` is the small CPU track for LLM policies: two topics, one update, short sessions.
SIZE_DEFAULTS: dict[str, dict[str, Any]] = {
    "mini": dict(topics_per_persona=2, updates_per_topic=1, session_turns=(6, 10), habits_per_persona=1,
                 habit_mentions=2, decoys_per_fact=1, habit_decoys=1, question_repeats=1),
    "32k": dict(question_repeats=2),
    "128k": dict(question_repeats=3),
    "1m": dict(question_repeats=8),
}
#: Defaults of the size-dependent knobs for sizes that do not set them.
KNOB_DEFAULTS: dict[str, Any] = dict(topics_per_persona=4, updates_per_topic=2, session_turns=(15, 30),
                                     habits_per_persona=2, habit_mentions=3, decoys_per_fact=3, habit_decoys=2,
                                     question_repeats=1)

#: The 15 columns of a real PersonaMem questions file, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "persona_id", "question_id", "question_type", "topic", "context_length_in_tokens",
    "context_length_in_letters", "distance_to_ref_in_blocks", "distance_to_ref_in_tokens",
    "num_irrelevant_tokens", "distance_to_ref_proportion_in_context", "user_question_or_message",
    "correct_answer", "all_options", "shared_context_id", "end_index_in_shared_context",
)

# Type labels as the real files spell them: the 32k file uses its own (shifted) labels,
# 128k/1M the canonical names. Writing the split's own labels keeps the loader's 32k
# label-shift logic valid for synthetic files too.
_LABELS_32K: dict[str, str] = {
    "recall_user_shared_facts": "recalling_facts_mentioned_by_the_user",
    "acknowledge_latest_user_preferences": "recall_user_shared_facts",
    "track_full_preference_evolution": "track_full_preference_evolution",
    "revisit_reasons_behind_preference_updates": "recalling_the_reasons_behind_previous_updates",
    "provide_preference_aligned_recommendations": "provide_preference_aligned_recommendations",
    "suggest_new_ideas": "suggest_new_ideas",
    "generalize_to_new_scenarios": "generalizing_to_new_scenarios",
}

_TOPIC_KEYS: tuple[str, ...] = tuple(V.TOPICS)  # dict order is the literal's order: deterministic
_N_CLUSTERS = 5
#: Habit questions apply a lasting fact about the user to a new request: PersonaMem's
#: "generalizing to new scenarios". Their topic column reads ``lifestyle``.
HABIT_QUESTION_TYPE = "generalize_to_new_scenarios"
HABIT_TOPIC = "lifestyle"


def raw_type_label(qtype: str, size: str) -> str:
    """The label a real PersonaMem file of ``size`` uses for normalised type ``qtype``."""
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"unknown question type {qtype!r}")
    return _LABELS_32K[qtype] if FILE_SUFFIX[_canon_size(size)] == "32k" else qtype


def _canon_size(size: str) -> str:
    s = str(size).strip().lower()
    if s not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; expected one of {', '.join(SIZES)}")
    return s


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the synthetic generator (see the module docstring for the model)."""

    size: str = field(default="32k", metadata={"help": "history length: 32k, 128k or 1m tokens per shared context"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice; same seed → byte-identical files"})
    n_personas: int | None = field(default=None, metadata={
        "help": "personas = shared contexts (default 20 for 32k, 10 for 128k, 4 for 1m)"})
    topics_per_persona: int | None = field(default=None, metadata={
        "help": "topics (of 8) each persona talks about; each gets a preference timeline and a fact "
                "(default 4; mini 2)"})
    updates_per_topic: int | None = field(default=None, metadata={
        "help": "preference updates per topic (0-3): more updates = more stale preferences to confuse "
                "(default 2; mini 1)"})
    decoys_per_fact: int | None = field(default=None, metadata={
        "help": "mentions of the same kind of fact about other people (recall distractors present in the history; "
                "default 3; mini 1)"})
    habits_per_persona: int | None = field(default=None, metadata={
        "help": "lasting habits per persona (e.g. 'working night shifts'), each mentioned in several sessions and "
                "asked about by a generic planning question that shares no words with the mentions: the "
                "questions a query-similarity retriever under a memory budget misses and a profile carries "
                "(0-4; default 2; mini 1)"})
    habit_mentions: int | None = field(default=None, metadata={
        "help": "sessions in which the persona mentions each of its habits (1-6; default 3; mini 2)"})
    habit_decoys: int | None = field(default=None, metadata={
        "help": "mentions of other people's habits (distractors present in the history; default 2; mini 1)"})
    question_repeats: int | None = field(default=None, metadata={
        "help": "each question is asked at this many distinct session boundaries after its evidence (answered "
                "from the state at that point), when the history has that many (default 1; 32k 2; 128k 3; 1m 8)"})
    target_tokens: int | None = field(default=None, metadata={
        "help": "tokens per shared context (default from size: 32,000 / 128,000 / 1,000,000)"})
    filler_ratio: float | None = field(default=None, metadata={
        "help": "share of the target given to unrelated filler sessions; the rest is persona sessions, padded "
                "with statement-free small-talk sessions. None: persona sessions only as the timeline needs"})
    session_turns: tuple[int, int] | None = field(default=None, metadata={
        "help": "min and max messages per session (after its persona system message; default 15,30; mini 6,10)"})
    paraphrase: float = field(default=0.5, metadata={
        "help": "wording distance evidence→options: 0 options reuse the evidence's words, 1 they share "
                "almost no content words (probability each option slot uses the other wording)"})
    distractor_closeness: float = field(default=1.0, metadata={
        "help": "probability distractors are taken closest-first (same persona's stale preferences, other "
                "personas', then random) rather than in random order"})
    assistant_mentions: float = field(default=0.35, metadata={
        "help": "probability an assistant reply in a topic session names another item or quality of the topic"})
    mid_history_questions: float = field(default=0.4, metadata={
        "help": "probability a question is asked at an earlier session boundary instead of the end of the context"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _canon_size(self.size))
        for name, default in KNOB_DEFAULTS.items():  # size-dependent knobs left at None
            if getattr(self, name) is None:
                object.__setattr__(self, name, SIZE_DEFAULTS[self.size].get(name, default))
        object.__setattr__(self, "session_turns", tuple(int(x) for x in self.session_turns))
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.n_personas is not None and not 1 <= self.n_personas <= 10_000:
            raise ValueError(f"n_personas must be in 1..10000, got {self.n_personas}")
        if not 1 <= self.topics_per_persona <= len(_TOPIC_KEYS):
            raise ValueError(f"topics_per_persona must be in 1..{len(_TOPIC_KEYS)}, got {self.topics_per_persona}")
        if not 0 <= self.updates_per_topic <= _N_CLUSTERS - 2:
            raise ValueError(f"updates_per_topic must be in 0..{_N_CLUSTERS - 2}, got {self.updates_per_topic}")
        if self.topics_per_persona * self.updates_per_topic > len(V.REASONS):
            raise ValueError(f"topics_per_persona * updates_per_topic must be <= {len(V.REASONS)} (distinct reasons)")
        if not 0 <= self.decoys_per_fact <= 5:
            raise ValueError(f"decoys_per_fact must be in 0..5, got {self.decoys_per_fact}")
        if not 0 <= self.habits_per_persona <= 4:
            raise ValueError(f"habits_per_persona must be in 0..4, got {self.habits_per_persona}")
        if not 1 <= self.habit_mentions <= 6:
            raise ValueError(f"habit_mentions must be in 1..6, got {self.habit_mentions}")
        if not 0 <= self.habit_decoys <= 4:
            raise ValueError(f"habit_decoys must be in 0..4, got {self.habit_decoys}")
        if not 1 <= self.question_repeats <= 20:
            raise ValueError(f"question_repeats must be in 1..20, got {self.question_repeats}")
        lo, hi = self.session_turns if len(self.session_turns) == 2 else (0, -1)
        if not 6 <= lo <= hi <= 200:
            raise ValueError(f"session_turns must be (min, max) with 6 <= min <= max <= 200, got {self.session_turns}")
        for name in ("paraphrase", "distractor_closeness", "assistant_mentions", "mid_history_questions"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        if self.filler_ratio is not None and not 0.0 <= self.filler_ratio < 1.0:
            raise ValueError(f"filler_ratio must be in [0, 1) or None, got {self.filler_ratio!r}")
        if self.target_tokens is not None and self.target_tokens < 2_000:
            raise ValueError(f"target_tokens must be >= 2000, got {self.target_tokens}")

    @property
    def personas(self) -> int:
        return self.n_personas if self.n_personas is not None else DEFAULT_PERSONAS[self.size]

    @property
    def tokens(self) -> int:
        return self.target_tokens if self.target_tokens is not None else TARGET_TOKENS[self.size]

    @property
    def file_suffix(self) -> str:
        return FILE_SUFFIX[self.size]

    def knobs(self) -> dict[str, Any]:
        """All fields except size and seed, as JSON-able values."""
        d = dataclasses.asdict(self)
        d.pop("size")
        d.pop("seed")
        d["session_turns"] = list(d["session_turns"])
        return d

    def knob_hash(self) -> str:
        """Short stable hash of the knobs and the generator version (keys the cache folder)."""
        blob = json.dumps({"v": GENERATOR_VERSION, **self.knobs()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


# ============================================================================================
# Randomness helpers
# ============================================================================================

def _rng(seed: int, *path: int) -> np.random.Generator:
    """An independent stream for (seed, path...) — e.g. (seed, persona, purpose)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *map(int, path)])))


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


# ============================================================================================
# Persona plans (timelines, facts) — independent of size
# ============================================================================================

@dataclass
class _State:
    cluster: int
    item: int
    wording: int          # item wording used in the statement
    qwording: int         # quality wording used in the statement
    reason: int | None    # index into V.REASONS (None for the initial preference)
    rwording: int         # reason wording used in the statement


@dataclass
class _TopicPlan:
    topic: str
    states: list[_State]
    fact_value: int
    fact_wording: int
    decoys: list[tuple[int, int]]  # (value index, decoy template index)


@dataclass
class _HabitPlan:
    habit: int                 # index into V.HABITS
    wording: int               # the wording every mention of this persona uses
    sessions: list[int] = field(default_factory=list)  # filled when the sessions are laid out


@dataclass
class _Persona:
    pid: int
    name: str
    first: str
    gender: str
    age: int
    occupation: str
    city: str
    traits: tuple[str, str]
    topics: list[_TopicPlan]
    habits: list[_HabitPlan] = field(default_factory=list)
    habit_decoys: list[tuple[int, int, int]] = field(default_factory=list)  # (habit, wording, person)

    @property
    def system_message(self) -> str:
        return (f"Current user persona: Name: {self.name}\nGender Identity: {self.gender}\nAge: {self.age}\n\n"
                f"{self.name} is a {self.age}-year-old {self.occupation} living in {self.city}. "
                f"Friends describe {self.first} as {self.traits[0]} and {self.traits[1]}. "
                f"{self.first} enjoys chatting about everyday life and likes to share personal updates.")


def _plan_persona(cfg: SyntheticConfig, pid: int) -> _Persona:
    rng = _rng(cfg.seed, pid, 1)
    first = _pick(rng, V.FIRST_NAMES)
    last = _pick(rng, V.LAST_NAMES)
    t_idx = rng.choice(len(V.TRAITS), size=2, replace=False)
    topic_idx = sorted(int(i) for i in rng.choice(len(_TOPIC_KEYS), size=cfg.topics_per_persona, replace=False))
    reasons = [int(r) for r in rng.choice(len(V.REASONS), size=cfg.topics_per_persona * max(cfg.updates_per_topic, 1),
                                          replace=False)]
    topics = []
    for k, ti in enumerate(topic_idx):
        tkey = _TOPIC_KEYS[ti]
        clusters = [int(c) for c in rng.choice(_N_CLUSTERS, size=cfg.updates_per_topic + 1, replace=False)]
        states = []
        for s, c in enumerate(clusters):
            states.append(_State(
                cluster=c, item=int(rng.integers(2)), wording=int(rng.integers(2)), qwording=int(rng.integers(2)),
                reason=None if s == 0 else reasons[k * cfg.updates_per_topic + s - 1], rwording=int(rng.integers(2))))
        fact = V.TOPICS[tkey]["fact"]
        vals = [int(v) for v in rng.choice(len(fact["values"]), size=1 + cfg.decoys_per_fact, replace=False)]
        decoys = [(v, int(rng.integers(len(fact["decoy"])))) for v in vals[1:]]
        topics.append(_TopicPlan(tkey, states, vals[0], int(rng.integers(2)), decoys))
    # habits from their own stream, so adding them left every other draw of a persona unchanged
    hrng = _rng(cfg.seed, pid, 6)
    picked = [int(h) for h in hrng.choice(len(V.HABITS), size=cfg.habits_per_persona + cfg.habit_decoys, replace=False)]
    habits = [_HabitPlan(h, int(hrng.integers(2))) for h in picked[:cfg.habits_per_persona]]
    hdecoys = [(h, int(hrng.integers(2)), int(hrng.integers(len(V.HABIT_PEOPLE)))) for h in picked[cfg.habits_per_persona:]]
    return _Persona(pid=pid, name=f"{first} {last}", first=first, gender=_pick(rng, V.GENDERS),
                    age=int(rng.integers(22, 68)), occupation=_pick(rng, V.OCCUPATIONS), city=_pick(rng, V.HOME_CITIES),
                    traits=(V.TRAITS[int(t_idx[0])], V.TRAITS[int(t_idx[1])]), topics=topics,
                    habits=habits, habit_decoys=hdecoys)


_PRONOUNS = {
    "second": {"i": "you", "my": "your", "me": "you", "i've": "you've", "i'm": "you're", "myself": "yourself"},
    "third": {"i": "they", "my": "their", "me": "them", "i've": "they've", "i'm": "they're", "myself": "themselves",
              "you": "they", "your": "their", "you've": "they've", "you're": "they're", "yourself": "themselves"},
}
_PRONOUN_RE = re.compile(r"\b(?:I've|I'm|I|my|me|myself|you've|you're|you|your|yourself)\b", re.IGNORECASE)


def _person(text: str, person: str) -> str:
    """Rewrite first-person (and, for ``"third"``, second-person) pronouns of a user sentence."""
    table = _PRONOUNS[person]

    def sub(m: re.Match) -> str:
        # the rewritten text is always inserted mid-sentence, so the result stays lower case
        return table.get(m.group(0).lower(), m.group(0))

    return _PRONOUN_RE.sub(sub, text)


def _item_text(topic: str, cluster: int, item: int, wording: int) -> str:
    return V.TOPICS[topic]["clusters"][cluster]["items"][item][wording]


def _quality_text(topic: str, cluster: int, wording: int) -> str:
    return V.TOPICS[topic]["clusters"][cluster]["quality"][wording]


def _profile_statements(p: _Persona, ctx: "_Context") -> list[dict[str, Any]]:
    """Gold profile statements with the messages that support them (``profile_statements.json``).

    Each statement is worded like its evidence (the wordings the persona used), so a profile made
    of the right memory lines matches it under the token-recall matcher:

    * identity — name, age, occupation, city and traits, as the persona system message that opens
      every session states them (``evidence`` null: supported by any non-empty history);
    * per topic and preference state ``k`` — ``"<noun>: <item>, <quality>"``; evidence the state's
      statement; ``group`` ``pref:<topic>`` with ``order`` ``k``, so a history holding several
      states of a topic supports only its latest one (the update resolved as of that point);
    * per update — the reason as stated; evidence the drop and reason turns;
    * per topic — the shared fact as stated; evidence the fact turn;
    * per habit — the habit wording; evidence every mention.
    """
    out: list[dict[str, Any]] = [{
        "text": f"{p.name} is a {p.age}-year-old {p.occupation} living in {p.city}, {p.traits[0]} and {p.traits[1]}.",
        "evidence": None, "group": None, "order": 0}]
    for ti, tp in enumerate(p.topics):
        t = V.TOPICS[tp.topic]
        for k, st in enumerate(tp.states):
            out.append({"text": f"{t['noun']}: {_item_text(tp.topic, st.cluster, st.item, st.wording)}, "
                                f"{_quality_text(tp.topic, st.cluster, st.qwording)}",
                        "evidence": [ctx.tags[("state", ti, k)]], "group": f"pref:{tp.topic}", "order": k})
            if k > 0:
                out.append({"text": V.REASONS[st.reason][st.rwording],
                            "evidence": [ctx.tags[("drop", ti, k)], ctx.tags[("reason", ti, k)]],
                            "group": None, "order": 0})
        fact = t["fact"]
        out.append({"text": fact["evidence"][tp.fact_wording].format(v=fact["values"][tp.fact_value]),
                    "evidence": [ctx.tags[("fact", ti)]], "group": None, "order": 0})
    for hi, hp in enumerate(p.habits):
        out.append({"text": V.HABITS[hp.habit][hp.wording],
                    "evidence": sorted(ctx.tags[("habit", hi, j)] for j in range(len(hp.sessions))),
                    "group": None, "order": 0})
    return out


# ============================================================================================
# Context assembly
# ============================================================================================

@lru_cache(maxsize=None)
def _filler_tables() -> tuple[list[str], list[int], list[str], list[int], list[str], list[int]]:
    """Pre-rendered filler pieces with token counts (token counts add up over space-joined pieces)."""
    questions = [q.format(s=s) for q in V.FILLER_QUESTIONS for s in V.FILLER_SUBJECTS]
    sentences = list(V.FILLER_SENTENCES)
    followups = list(V.FILLER_FOLLOWUPS)
    return (questions, [estimate_tokens(x) for x in questions], sentences, [estimate_tokens(x) for x in sentences],
            followups, [estimate_tokens(x) for x in followups])


_PREFIX_TOKENS = 2  # "User:" / "Assistant:" → word + colon


class _Session:
    """One session: (role, content, tokens) rows, plus payload tags → offset in the session."""

    __slots__ = ("roles", "contents", "tokens", "tags", "filler")

    def __init__(self, filler: bool) -> None:
        self.roles: list[str] = []
        self.contents: list[str] = []
        self.tokens: list[int] = []
        self.tags: dict[tuple, int] = {}
        self.filler = filler

    def add(self, role: str, content: str, tokens: int, tag: tuple | None = None) -> None:
        if tag is not None:
            self.tags[tag] = len(self.roles)
        self.roles.append(role)
        self.contents.append(content)
        self.tokens.append(tokens)

    @property
    def n_tokens(self) -> int:
        return sum(self.tokens)


def _msg(role: str, text: str) -> tuple[str, int]:
    prefix = "User: " if role == "user" else "Assistant: "
    return prefix + text, _PREFIX_TOKENS + estimate_tokens(text)


def _persona_sessions(cfg: SyntheticConfig, p: _Persona, others: dict[str, list[tuple[int, int]]],
                      rng: np.random.Generator, sys_msg: str, sys_tokens: int) -> list[_Session]:
    """The persona's own sessions in time order, with payload statements tagged."""
    # payload groups per topic, in timeline order. A group is one session's payload: a list of
    # units, each unit a run of user turns that must be consecutive (drop turn + reason turn).
    queues: list[list[list[list[tuple[tuple, str]]]]] = []
    for ti, tp in enumerate(p.topics):
        t = V.TOPICS[tp.topic]
        groups: list[list[list[tuple[tuple, str]]]] = []
        for k, st in enumerate(tp.states):
            x = _item_text(tp.topic, st.cluster, st.item, st.wording)
            q = _quality_text(tp.topic, st.cluster, st.qwording)
            if k == 0:
                text = _pick(rng, V.INITIAL_FRAMES).format(x=x, q=q, n=t["noun"])
                groups.append([[(("state", ti, 0), text)]])
            else:
                prev = tp.states[k - 1]
                r = V.REASONS[st.reason][st.rwording]
                text = _pick(rng, V.UPDATE_FRAMES).format(x=x, q=q, n=t["noun"])
                o = _item_text(tp.topic, prev.cluster, prev.item, prev.wording)
                drop = _pick(rng, V.DROP_FRAMES).format(o=o, x=x)
                # the reason gets a turn of its own right after the drop: a short message whose
                # meaning is the reason, so embedding matchers can find it
                why = _pick(rng, V.REASON_STATEMENT_FRAMES).format(r=r)
                groups.append([[(("state", ti, k), text)], [(("drop", ti, k), drop), (("reason", ti, k), why)]])
        fact = t["fact"]
        ftext = _pick(rng, V.FACT_FRAMES).format(f=fact["evidence"][tp.fact_wording].format(v=fact["values"][tp.fact_value]))
        groups[int(rng.integers(len(groups)))].append([(("fact", ti), ftext)])
        queues.append(groups)
    # interleave topics preserving each topic's order (weighted by what remains)
    order: list[tuple[int, list]] = []
    heads = [0] * len(queues)
    while True:
        remaining = np.array([len(q) - h for q, h in zip(queues, heads)], dtype=float)
        if remaining.sum() == 0:
            break
        ti = int(rng.choice(len(queues), p=remaining / remaining.sum()))
        order.append((ti, queues[ti][heads[ti]]))
        heads[ti] += 1
    # decoy mentions go into random persona sessions (any topic)
    extra: list[list[list[tuple[tuple, str]]]] = [[] for _ in order]
    for ti, tp in enumerate(p.topics):
        fact = V.TOPICS[tp.topic]["fact"]
        for j, (v, d) in enumerate(tp.decoys):
            text = _pick(rng, V.DECOY_FRAMES).format(d=fact["decoy"][d].format(v=fact["values"][v]))
            extra[int(rng.integers(len(order)))].append([(("decoy", ti, j), text)])
    # habits: each mentioned in habit_mentions distinct sessions (spread over the timeline), in
    # the persona's one wording; other people's habits once each (their own stream: see _plan_persona)
    hrng = _rng(cfg.seed, p.pid, 7)
    for hi, hp in enumerate(p.habits):
        n = min(cfg.habit_mentions, len(order))
        hp.sessions = sorted(int(x) for x in hrng.choice(len(order), size=n, replace=False))
        for j, si in enumerate(hp.sessions):
            text = _pick(hrng, V.HABIT_MENTION_FRAMES).format(h=V.HABITS[hp.habit][hp.wording])
            extra[si].append([(("habit", hi, j), text)])
    for j, (h, w, person) in enumerate(p.habit_decoys):
        text = _pick(hrng, V.HABIT_DECOY_FRAMES).format(p=V.HABIT_PEOPLE[person], h=V.HABITS[h][w])
        extra[int(hrng.integers(len(order)))].append([(("hdecoy", j), text)])
    sessions = []
    for (ti, group), ex in zip(order, extra):
        payload = group + ex
        sessions.append(_build_persona_session(cfg, p, p.topics[ti], payload, others, rng, sys_msg, sys_tokens))
    return sessions


def _mention(topic: str, tp: _TopicPlan | None, others: dict[str, list[tuple[int, int]]],
             rng: np.random.Generator) -> str:
    """An assistant reply naming another item (or quality) of the topic, never the persona's own."""
    own_clusters = {s.cluster for s in tp.states} if tp is not None else set()
    frame = _pick(rng, V.ASSISTANT_MENTIONS)
    pool = [c for c in range(_N_CLUSTERS) if c not in own_clusters] or list(range(_N_CLUSTERS))
    if "{q}" in frame:
        c = pool[int(rng.integers(len(pool)))]
        return frame.format(q=_quality_text(topic, c, int(rng.integers(2))))
    held = [ci for ci in others.get(topic, []) if ci[0] not in own_clusters]
    if held and rng.random() < 0.6:  # prefer what other personas actually like
        c, i = held[int(rng.integers(len(held)))]
    else:
        c, i = pool[int(rng.integers(len(pool)))], int(rng.integers(2))
    x = _item_text(topic, c, i, int(rng.integers(2)))
    return frame.format(x=x, X=x[0].upper() + x[1:])


def _build_persona_session(cfg: SyntheticConfig, p: _Persona, tp: _TopicPlan | None,
                           payload: list[list[tuple[tuple, str]]], others: dict[str, list[tuple[int, int]]],
                           rng: np.random.Generator, sys_msg: str, sys_tokens: int) -> _Session:
    lo, hi = cfg.session_turns
    n = int(rng.integers(lo, hi + 1))
    n_user = (n + 1) // 2
    turns = sum(len(u) for u in payload)
    while n_user < turns + 1:  # room for every payload turn plus an opener
        n += 2
        n_user = (n + 1) // 2
    # units at distinct user slots (not the first: the session opens with small talk), in order, the
    # turns of one unit on consecutive user slots: choose unit starts in a compressed range, then expand
    compressed = n_user - (turns - len(payload))
    starts = sorted(int(x) for x in rng.choice(np.arange(1, compressed), size=len(payload), replace=False))
    by_slot: dict[int, tuple[tuple, str]] = {}
    shift = 0
    for start, unit in zip(starts, payload):
        for j, entry in enumerate(unit):
            by_slot[start + shift + j] = entry
        shift += len(unit) - 1
    sess = _Session(filler=False)
    sess.add("system", sys_msg, sys_tokens)
    shared = False  # did the user just share a payload statement?
    for m in range(n):
        if m % 2 == 0:
            slot = m // 2
            if slot in by_slot:
                tag, text = by_slot[slot]
            else:
                tag, text = None, _pick(rng, V.USER_OPENERS if slot == 0 else V.USER_SMALL_TALK)
            shared = tag is not None
            content, tok = _msg("user", text)
            sess.add("user", content, tok, tag)
        else:
            if shared:
                text = _pick(rng, V.ASSISTANT_ACKS)
            elif tp is not None and rng.random() < cfg.assistant_mentions:
                text = _mention(tp.topic, tp, others, rng) + " " + _pick(rng, V.ASSISTANT_REPLIES)
            else:
                text = _pick(rng, V.ASSISTANT_REPLIES)
            content, tok = _msg("assistant", text)
            sess.add("assistant", content, tok)
    return sess


def _filler_sessions(cfg: SyntheticConfig, budget: int, rng: np.random.Generator, sys_msg: str,
                     sys_tokens: int) -> list[_Session]:
    """Unrelated Q&A sessions totalling ``budget`` tokens (the last one is cut to fit)."""
    questions, q_tok, sentences, s_tok, followups, f_tok = _filler_tables()
    lo, hi = cfg.session_turns
    sessions: list[_Session] = []
    remaining = budget
    # draw random numbers in batches (a numpy call per message would dominate the 1m time)
    batch = 4096

    def draws():
        while True:
            ns = rng.integers(lo, hi + 1, size=batch).tolist()
            qs = rng.integers(len(questions), size=batch).tolist()
            fs = rng.integers(len(followups), size=batch).tolist()
            ks = rng.integers(3, 8, size=batch).tolist()
            ss = rng.integers(len(sentences), size=batch * 7).tolist()
            yield ns, qs, fs, ks, ss

    stream = draws()
    ns, qs, fs, ks, ss = next(stream)
    ni = qi = fi = ki = si = 0
    while remaining > sys_tokens + 20:
        if ni >= batch or qi >= batch or fi + hi >= batch or ki + hi >= batch or si + 7 * hi >= 7 * batch:
            ns, qs, fs, ks, ss = next(stream)
            ni = qi = fi = ki = si = 0
        n = ns[ni]; ni += 1
        sess = _Session(filler=True)
        sess.add("system", sys_msg, sys_tokens)
        remaining -= sys_tokens
        for m in range(n):
            if m == 0:
                q = qs[qi]; qi += 1
                text, tok = questions[q], q_tok[q]
                role = "user"
            elif m % 2 == 0:
                f = fs[fi]; fi += 1
                text, tok = followups[f], f_tok[f]
                role = "user"
            else:
                k = ks[ki]; ki += 1
                idx = ss[si:si + k]; si += k
                text = " ".join([sentences[i] for i in idx])
                tok = sum([s_tok[i] for i in idx])
                role = "assistant"
            tok += _PREFIX_TOKENS
            if tok > remaining and m >= 2:
                break
            sess.add(role, ("User: " if role == "user" else "Assistant: ") + text, tok)
            remaining -= tok
            if remaining <= 0:
                break
        sessions.append(sess)
    return sessions


@dataclass
class _Context:
    cid: str
    line: str                 # the JSONL line (without newline)
    roles: list[str]
    contents: list[str]
    tokens: list[int]
    cum_tokens: np.ndarray    # cum_tokens[i] = tokens of messages[:i]
    cum_letters: np.ndarray
    cum_filler: np.ndarray    # filler tokens of messages[:i]
    session_starts: list[int]
    tags: dict[tuple, int]    # payload tag → message index


def _assemble(cfg: SyntheticConfig, p: _Persona, others: dict[str, list[tuple[int, int]]]) -> _Context:
    rng = _rng(cfg.seed, p.pid, 2)
    sys_msg = p.system_message
    sys_tokens = estimate_tokens(sys_msg)
    core = _persona_sessions(cfg, p, others, rng, sys_msg, sys_tokens)
    target = cfg.tokens
    core_tokens = sum(s.n_tokens for s in core)
    if cfg.filler_ratio is not None:
        want_core = (1.0 - cfg.filler_ratio) * target
        while core_tokens < want_core:
            # statement-free persona small talk, placed at a random point of the timeline
            tp = p.topics[int(rng.integers(len(p.topics)))]
            s = _build_persona_session(cfg, p, tp, [], others, rng, sys_msg, sys_tokens)
            core.insert(int(rng.integers(len(core) + 1)), s)
            core_tokens += s.n_tokens
    if core_tokens > 0.98 * target:
        raise ValueError(
            f"persona {p.pid}: its own sessions need {core_tokens} tokens, more than the target {target} "
            f"(size {cfg.size}); lower topics_per_persona/updates_per_topic/session_turns or raise target_tokens")
    filler = _filler_sessions(cfg, target - core_tokens, _rng(cfg.seed, p.pid, 3, TARGET_TOKENS[cfg.size]),
                              sys_msg, sys_tokens)
    # interleave: every filler session goes into a random gap of the persona timeline
    slots = rng.integers(0, len(core) + 1, size=len(filler)).tolist()
    buckets: list[list[_Session]] = [[] for _ in range(len(core) + 1)]
    for s, slot in zip(filler, slots):
        buckets[slot].append(s)
    ordered: list[_Session] = []
    for i in range(len(core) + 1):
        ordered.extend(buckets[i])
        if i < len(core):
            ordered.append(core[i])

    roles: list[str] = []
    contents: list[str] = []
    tokens: list[int] = []
    is_filler: list[int] = []
    starts: list[int] = []
    tags: dict[tuple, int] = {}
    for s in ordered:
        base = len(roles)
        starts.append(base)
        for tag, off in s.tags.items():
            tags[tag] = base + off
        roles.extend(s.roles)
        contents.extend(s.contents)
        tokens.extend(s.tokens)
        is_filler.extend([int(s.filler)] * len(s.roles))
    body = json.dumps([{"role": r, "content": c} for r, c in zip(roles, contents)])
    cid = hashlib.sha256(body.encode()).hexdigest()
    tok = np.asarray(tokens, dtype=np.int64)
    return _Context(
        cid=cid, line='{"' + cid + '": ' + body + "}", roles=roles, contents=contents, tokens=tokens,
        cum_tokens=np.concatenate([[0], np.cumsum(tok)]),
        cum_letters=np.concatenate([[0], np.cumsum([len(c) for c in contents])]),
        cum_filler=np.concatenate([[0], np.cumsum(tok * np.asarray(is_filler, dtype=np.int64))]),
        session_starts=starts, tags=tags)


# ============================================================================================
# Questions
# ============================================================================================

@dataclass
class _Q:
    qtype: str
    topic: str
    query: str
    options: list[str]      # gold first; shuffled when written
    evidence: list[int]
    fact_words: list[str]   # content words of the stated fact, found in the evidence text
    end: int                # end_index_in_shared_context


class _QuestionMaker:
    """Builds the questions of one persona's context."""

    def __init__(self, cfg: SyntheticConfig, p: _Persona, ctx: _Context,
                 others: dict[str, list[tuple[int, int]]], other_reasons: list[int],
                 other_facts: dict[str, list[int]], other_habits: list[int] = ()) -> None:
        self.cfg, self.p, self.ctx = cfg, p, ctx
        self.others, self.other_reasons, self.other_facts = others, other_reasons, other_facts
        self.other_habits = list(other_habits)
        self.rng = _rng(cfg.seed, p.pid, 4, TARGET_TOKENS[cfg.size])
        self.boundaries = ctx.session_starts[1:] + [len(ctx.roles)]
        self._used_ends: set[int] | None = None  # ends taken by earlier repeats of the question being built
        self._exhausted = False

    # -- helpers ------------------------------------------------------------------------------
    def _end_after(self, index: int) -> int:
        """A session boundary after message ``index``: the context end, or an earlier boundary.

        For a repeat (``question_repeats``) a uniformly drawn boundary after ``index`` that no
        earlier repeat of the question used; ``_exhausted`` is set when none is left.
        """
        cands = [b for b in self.boundaries if b > index]
        used = self._used_ends
        if used:
            free = [b for b in cands if b not in used]
            if not free:
                self._exhausted = True
                return cands[-1]
            end = free[int(self.rng.integers(len(free)))]
        elif len(cands) > 1 and self.rng.random() < self.cfg.mid_history_questions:
            end = cands[int(self.rng.integers(len(cands) - 1))]
        else:
            end = cands[-1]
        if used is not None:
            used.add(end)
        return end

    def _wording(self, ev_wording: int | None) -> int:
        """Option wording: the evidence's with prob 1 - paraphrase, else the other one."""
        if ev_wording is None:
            return int(self.rng.integers(2))
        return ev_wording if self.rng.random() >= self.cfg.paraphrase else 1 - ev_wording

    def _order(self, cands: list[tuple[int, Any]], k: int) -> list[Any]:
        """``k`` candidates (closeness rank, value): closest-first w.p. closeness, else random."""
        noise = self.rng.random(len(cands))
        if self.rng.random() < self.cfg.distractor_closeness:
            idx = sorted(range(len(cands)), key=lambda i: (cands[i][0], noise[i]))
        else:
            idx = sorted(range(len(cands)), key=lambda i: noise[i])
        return [cands[i][1] for i in idx[:k]]

    def _visible(self, ti: int, end: int) -> list[int]:
        return [k for k in range(len(self.p.topics[ti].states)) if self.ctx.tags[("state", ti, k)] < end]

    def _cluster_candidates(self, ti: int, gold_cluster: int, end: int) -> list[tuple[int, tuple[int, int, int | None, int | None]]]:
        """For every other cluster: (closeness, (cluster, item, ev item wording, ev quality wording))."""
        tp = self.p.topics[ti]
        own = {st.cluster: (k, st) for k, st in enumerate(tp.states)}
        held = self.others.get(tp.topic, [])
        out = []
        for c in range(_N_CLUSTERS):
            if c == gold_cluster:
                continue
            if c in own:
                k, st = own[c]
                rank = 0 if self.ctx.tags[("state", ti, k)] < end else 1  # stale, then later preferences
                out.append((rank, (c, st.item, st.wording, st.qwording)))
                continue
            items = [i for (cc, i) in held if cc == c]
            if items:
                out.append((2, (c, items[int(self.rng.integers(len(items)))], None, None)))
            else:
                out.append((3, (c, int(self.rng.integers(2)), None, None)))
        return out

    # -- question types ---------------------------------------------------------------------
    def item_question(self, ti: int, qtype: str) -> _Q:
        tp = self.p.topics[ti]
        t = V.TOPICS[tp.topic]
        first = self.ctx.tags[("state", ti, 0)]
        end = self._end_after(first)
        k = self._visible(ti, end)[-1]
        st = tp.states[k]
        ev = [self.ctx.tags[("state", ti, k)]]
        distract = self._order(self._cluster_candidates(ti, st.cluster, end), 3)
        slots = [(st.cluster, st.item, st.wording, st.qwording)] + distract
        ev_item = _item_text(tp.topic, st.cluster, st.item, st.wording)
        ev_quality = _quality_text(tp.topic, st.cluster, st.qwording)
        if qtype == "acknowledge_latest_user_preferences":
            frame = _pick(self.rng, V.ACK_FRAMES)
            opts = [frame.format(x=_item_text(tp.topic, c, i, self._wording(w))) for c, i, w, _ in slots]
            query, keys = t["ack_query"], [ev_item]
        elif qtype == "provide_preference_aligned_recommendations":
            opts = [t["rec_frame"].format(x=_item_text(tp.topic, c, i, self._wording(w))) for c, i, w, _ in slots]
            query, keys = t["rec_query"], [ev_item]
        elif qtype == "suggest_new_ideas":
            frame = _pick(self.rng, V.SUGGEST_FRAMES)
            # the untried sibling of each slot's item, with that cluster's quality
            opts = [frame.format(x=_item_text(tp.topic, c, 1 - i, int(self.rng.integers(2))),
                                 q=_quality_text(tp.topic, c, self._wording(qw))) for c, i, _, qw in slots]
            query = _pick(self.rng, V.SUGGEST_QUERIES).format(n=t["noun"])
            keys = [ev_quality]
        elif qtype == "generalize_to_new_scenarios":
            frame = _pick(self.rng, V.GENERALIZE_FRAMES)
            opts = [frame.format(q=_quality_text(tp.topic, c, self._wording(qw))) for c, _, _, qw in slots]
            query, keys = t["scenario"], [ev_quality]
        else:  # pragma: no cover - internal misuse
            raise ValueError(qtype)
        return _Q(qtype, tp.topic, query, opts, ev, keys, end)

    def evolution_question(self, ti: int) -> _Q:
        tp = self.p.topics[ti]
        t = V.TOPICS[tp.topic]
        end = self._end_after(self.ctx.tags[("drop", ti, 1)])
        vis = self._visible(ti, end)
        m = len(vis)
        words = {k: _item_text(tp.topic, tp.states[k].cluster, tp.states[k].item, self._wording(tp.states[k].wording))
                 for k in vis}
        gold = tuple(vis)
        cands: list[tuple[int, tuple]] = [(0, perm) for perm in itertools.permutations(vis) if perm != gold]
        # substitutions: one step replaced by a preference the persona never had at that point
        subs_pool = self._cluster_candidates(ti, -1, end)
        subs_pool = [(r, s) for r, s in subs_pool if s[0] not in {tp.states[k].cluster for k in vis}]
        for pos in range(m):
            for rank, (c, i, w, _) in subs_pool:
                seq = list(gold)
                seq[pos] = ("x", c, i, w)
                cands.append((1 + rank, tuple(seq)))
        distract = self._order(cands, 3)
        frame = _pick(self.rng, V.EVOLUTION_FRAMES[m])

        def render(seq: tuple) -> str:
            parts = []
            for s in seq:
                if isinstance(s, tuple):
                    _, c, i, w = s
                    key = ("x", c, i)
                    if key not in words:
                        words[key] = _item_text(tp.topic, c, i, self._wording(w))
                    parts.append(words[key])
                else:
                    parts.append(words[s])
            return frame.format(*parts)

        opts = [render(gold)] + [render(d) for d in distract]
        ev = []
        for k in vis:
            ev.append(self.ctx.tags[("state", ti, k)])
            if k > 0:
                ev.append(self.ctx.tags[("drop", ti, k)])
        keys = [_item_text(tp.topic, tp.states[k].cluster, tp.states[k].item, tp.states[k].wording) for k in vis]
        query = _pick(self.rng, V.EVOLUTION_QUERIES).format(n=t["noun"])
        return _Q("track_full_preference_evolution", tp.topic, query, opts, sorted(ev), keys, end)

    def reason_question(self, ti: int, k: int) -> _Q:
        tp = self.p.topics[ti]
        st, prev = tp.states[k], tp.states[k - 1]
        end = self._end_after(self.ctx.tags[("reason", ti, k)])
        own = [(ti2, k2) for ti2, tp2 in enumerate(self.p.topics) for k2 in range(1, len(tp2.states))
               if (ti2, k2) != (ti, k)]
        cands: list[tuple[int, tuple[int, int | None]]] = []
        for ti2, k2 in own:
            s2 = self.p.topics[ti2].states[k2]
            rank = 0 if self.ctx.tags[("state", ti2, k2)] < end else 1
            cands.append((rank, (s2.reason, s2.rwording)))
        used = {st.reason} | {c[1][0] for c in cands}
        for r in self.other_reasons:
            if r not in used:
                used.add(r)
                cands.append((2, (r, None)))
        for r in range(len(V.REASONS)):
            if r not in used:
                cands.append((3, (r, None)))
        distract = self._order(cands, 3)
        frame = _pick(self.rng, V.REASON_FRAMES)
        opts = [frame.format(r=_person(V.REASONS[r][self._wording(w)], "second")) for r, w in [(st.reason, st.rwording)] + distract]
        old = _item_text(tp.topic, prev.cluster, prev.item, self._wording(prev.wording))
        query = _pick(self.rng, V.REASON_QUERIES).format(o=old)
        ev = sorted([self.ctx.tags[("state", ti, k - 1)], self.ctx.tags[("state", ti, k)],
                     self.ctx.tags[("drop", ti, k)], self.ctx.tags[("reason", ti, k)]])
        return _Q("revisit_reasons_behind_preference_updates", tp.topic, query, opts, ev,
                  [V.REASONS[st.reason][st.rwording]], end)  # fact words: the reason as stated

    def recall_question(self, ti: int) -> _Q:
        tp = self.p.topics[ti]
        t = V.TOPICS[tp.topic]
        fact = t["fact"]
        idx = self.ctx.tags[("fact", ti)]
        end = self._end_after(idx)
        cands: list[tuple[int, int]] = []
        used = {tp.fact_value}
        for j, (v, _) in enumerate(tp.decoys):
            cands.append((0 if self.ctx.tags[("decoy", ti, j)] < end else 1, v))
            used.add(v)
        for v in self.other_facts.get(tp.topic, []):
            if v not in used:
                used.add(v)
                cands.append((2, v))
        for v in range(len(fact["values"])):
            if v not in used:
                cands.append((3, v))
        distract = self._order(cands, 3)
        tmpl = fact["option"][self._wording(tp.fact_wording)]
        frame = _pick(self.rng, V.RECALL_FRAMES)
        opts = [frame.format(f=tmpl.format(v=fact["values"][v])) for v in [tp.fact_value] + distract]
        return _Q("recall_user_shared_facts", tp.topic, t["recall_query"], opts, [idx],
                  [fact["values"][tp.fact_value]], end)

    def habit_question(self, hi: int) -> _Q:
        """A generic planning request answered by the persona's habit ``hi`` (see ``habits_per_persona``)."""
        hp = self.p.habits[hi]
        mentions = [self.ctx.tags[("habit", hi, j)] for j in range(len(hp.sessions))]
        end = self._end_after(min(mentions))
        cands: list[tuple[int, int]] = []
        used = {hp.habit}
        for j, (h, _, _) in enumerate(self.p.habit_decoys):
            cands.append((0 if self.ctx.tags[("hdecoy", j)] < end else 1, h))
            used.add(h)
        for h in self.other_habits:
            if h not in used:
                used.add(h)
                cands.append((2, h))
        for h in range(len(V.HABITS)):
            if h not in used:
                cands.append((3, h))
        distract = self._order(cands, 3)
        frame = _pick(self.rng, V.HABIT_OPTION_FRAMES)
        wordings = [self._wording(hp.wording)] + [int(self.rng.integers(2)) for _ in distract]
        opts = [frame.format(h=V.HABITS[h][w]) for h, w in zip([hp.habit] + distract, wordings)]
        query = _pick(self.rng, V.HABIT_QUERIES)
        ev = sorted(m for m in mentions if m < end)
        return _Q(HABIT_QUESTION_TYPE, HABIT_TOPIC, query, opts, ev, [V.HABITS[hp.habit][hp.wording]], end)

    def _builders(self) -> list[tuple[Any, tuple]]:
        """Every question of the persona as (builder, arguments), in a fixed order."""
        out: list[tuple[Any, tuple]] = []
        for ti, tp in enumerate(self.p.topics):
            for qtype in ("acknowledge_latest_user_preferences", "provide_preference_aligned_recommendations",
                          "suggest_new_ideas", "generalize_to_new_scenarios"):
                out.append((self.item_question, (ti, qtype)))
            if len(tp.states) > 1:
                out.append((self.evolution_question, (ti,)))
                for k in range(1, len(tp.states)):
                    out.append((self.reason_question, (ti, k)))
            out.append((self.recall_question, (ti,)))
        for hi in range(len(self.p.habits)):
            out.append((self.habit_question, (hi,)))
        return out

    def all(self) -> list[_Q]:
        out: list[_Q] = []
        for build, args in self._builders():
            self._used_ends, self._exhausted = set(), False
            for r in range(self.cfg.question_repeats):
                q = build(*args)
                if self._exhausted:
                    break  # every boundary after the evidence is taken
                out.append(q)
        self._used_ends = None
        return out


# ============================================================================================
# Writing
# ============================================================================================

#: How many other personas (the next ones, cyclically) feed a persona's "other personas" pools.
_NEIGHBOURS = 8


def _neighbour_pools(personas: list[_Persona]) -> list[tuple[dict, list[int], dict, list[int]]]:
    """Per persona: items other personas hold by topic, their reasons, their fact values by topic,
    their habits."""
    n = len(personas)
    out = []
    for p in personas:
        items: dict[str, list[tuple[int, int]]] = {}
        reasons: list[int] = []
        facts: dict[str, list[int]] = {}
        habits: list[int] = []
        for d in range(1, min(n, _NEIGHBOURS + 1)):
            o = personas[(p.pid + d) % n]
            for tp in o.topics:
                items.setdefault(tp.topic, []).extend((s.cluster, s.item) for s in tp.states)
                reasons.extend(s.reason for s in tp.states[1:])
                facts.setdefault(tp.topic, []).append(tp.fact_value)
            habits.extend(h.habit for h in o.habits)
        out.append((items, reasons, facts, habits))
    return out


def _statement_objects(rows: Sequence[dict[str, Any]]) -> tuple[ProfileStatement, ...]:
    return tuple(ProfileStatement(r["text"], None if r["evidence"] is None else tuple(r["evidence"]),
                                  r["group"], r["order"]) for r in rows)


def read_profile_statements(path: str | os.PathLike) -> dict[str, tuple[ProfileStatement, ...]]:
    """Parse ``profile_statements.json`` (``{persona id: [{"text", "evidence", "group", "order"}]}``).

    Raises ``ValueError`` naming the file, persona and statement for a malformed entry.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read profile statements: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of persona id -> statements, got {type(data).__name__}")
    out: dict[str, tuple[ProfileStatement, ...]] = {}
    for pid, rows in data.items():
        if not isinstance(rows, list):
            raise ValueError(f"{path}: persona {pid!r}: expected a list of statements")
        for i, r in enumerate(rows):
            ok = (isinstance(r, dict) and isinstance(r.get("text"), str) and isinstance(r.get("order", 0), int)
                  and (r.get("evidence") is None or (isinstance(r["evidence"], list)
                                                     and all(isinstance(x, int) for x in r["evidence"])))
                  and (r.get("group") is None or isinstance(r["group"], str)))
            if not ok:
                raise ValueError(f"{path}: persona {pid!r}, statement {i}: expected "
                                 '{"text": str, "evidence": [int] | null, "group": str | null, "order": int}')
        out[str(pid)] = _statement_objects([{"evidence": None, "group": None, "order": 0, **r} for r in rows])
    return out


def _topic_label(topic: str) -> str:
    return V.TOPICS[topic]["label"] if topic in V.TOPICS else topic


def _csv_rows(cfg: SyntheticConfig, p: _Persona, ctx: _Context, qs: list[_Q],
              rng: np.random.Generator) -> tuple[list[list[Any]], list[dict]]:
    rows, ev_lines = [], []
    starts = np.asarray(ctx.session_starts)
    for n, q in enumerate(qs):
        qid = f"syn{cfg.seed}-{cfg.size}-p{p.pid:03d}-q{n:03d}"
        perm = rng.permutation(len(q.options)).tolist()  # perm[j] = which built option is shown at position j
        shown = [q.options[j] for j in perm]
        gold = OPTION_LETTERS[perm.index(0)]
        end, ref = q.end, min(q.evidence)
        assert max(q.evidence) < end, "evidence must precede the question"
        length = int(ctx.cum_tokens[end])
        dist = length - int(ctx.cum_tokens[ref])
        blocks = int(np.searchsorted(starts, end, "left")) - (int(np.searchsorted(starts, ref, "right")) - 1)
        rows.append([
            p.pid, qid, raw_type_label(q.qtype, cfg.size), _topic_label(q.topic), length,
            int(ctx.cum_letters[end]), blocks, dist, int(ctx.cum_filler[end]), f"{100.0 * dist / length:.2f}%",
            q.query, f"({gold})", repr([f"({OPTION_LETTERS[j]}) {o}" for j, o in enumerate(shown)]), ctx.cid, end,
        ])
        ev_lines.append({"question_id": qid, "evidence": q.evidence, "fact_words": q.fact_words})
    return rows, ev_lines


def default_cache_folder(cfg: SyntheticConfig, root: str | os.PathLike | None = None) -> Path:
    """``<root or cache_dir()>/synthetic/<size>-seed<seed>-<knobhash>``."""
    if root is None:
        root = cache_dir()
    return Path(root).expanduser() / "synthetic" / f"{cfg.size}-seed{cfg.seed}-{cfg.knob_hash()}"


def file_names(size: str) -> tuple[str, str]:
    """``(questions csv, shared contexts jsonl)`` names for a synthetic size (``1m`` → ``_1M``)."""
    suffix = FILE_SUFFIX[_canon_size(size)]
    return f"questions_{suffix}.csv", f"shared_contexts_{suffix}.jsonl"


def build(cfg: SyntheticConfig, progress: bool = False) -> dict[str, str]:
    """Generate every file's content in memory: ``{file name: text}`` (what :func:`generate` writes)."""
    personas = [_plan_persona(cfg, i) for i in range(cfg.personas)]
    pools = _neighbour_pools(personas)
    qname, cname = file_names(cfg.size)
    buf = io.StringIO()
    writer = csv.writer(buf)  # default dialect: minimal quoting, CRLF line ends — like the real file
    writer.writerow(CSV_COLUMNS)
    lines: list[str] = []
    evidence: list[str] = []
    profiles: dict[str, list[str]] = {}
    statements: dict[str, list[dict[str, Any]]] = {}
    type_counts = {t: 0 for t in QUESTION_TYPES}
    total_tokens: list[int] = []
    it: Iterable[_Persona] = personas
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(personas, desc=f"synthetic-{cfg.size}", unit="context")
    for p, (items, reasons, facts, habits) in zip(it, pools):
        ctx = _assemble(cfg, p, items)
        qs = _QuestionMaker(cfg, p, ctx, items, reasons, facts, habits).all()
        rows, ev = _csv_rows(cfg, p, ctx, qs, _rng(cfg.seed, p.pid, 5, TARGET_TOKENS[cfg.size]))
        writer.writerows(rows)
        evidence.extend(json.dumps(e) for e in ev)
        lines.append(ctx.line)
        statements[str(p.pid)] = _profile_statements(p, ctx)
        everything = [range(len(ctx.roles))]
        profiles[str(p.pid)] = list(resolve_profile(_statement_objects(statements[str(p.pid)]), everything))
        for q in qs:
            type_counts[q.qtype] += 1
        total_tokens.append(int(ctx.cum_tokens[-1]))
    meta = {
        "generator": "comam_env.data.synthetic",
        "version": GENERATOR_VERSION,
        "config": {"size": cfg.size, "seed": int(cfg.seed), **cfg.knobs()},
        "knob_hash": cfg.knob_hash(),
        "files": [qname, cname, "evidence.jsonl", "profiles.json", "profile_statements.json"],
        "n_contexts": len(lines),
        "n_questions": sum(type_counts.values()),
        "questions_per_type": type_counts,
        "target_tokens": cfg.tokens,
        "context_tokens": total_tokens,
        "token_estimate": "comam_env.text.estimate_tokens over message contents",
    }
    return {
        qname: buf.getvalue(),
        cname: "\n".join(lines) + "\n",
        "evidence.jsonl": "\n".join(evidence) + "\n",
        "profiles.json": json.dumps(profiles, indent=1) + "\n",
        "profile_statements.json": json.dumps(statements, indent=1) + "\n",
        "meta.json": json.dumps(meta, indent=1) + "\n",
    }


def generate(size: str = "32k", seed: int = 0, out_dir: str | os.PathLike | None = None, *,
             progress: bool = False, **knobs: Any) -> Path:
    """Write a synthetic PersonaMem-format folder and return its path.

    Args:
        size: ``"32k"``, ``"128k"`` or ``"1m"``.
        seed: every random choice derives from it (same seed → byte-identical files).
        out_dir: folder to write into (created; existing files of the same names are
            replaced atomically, one by one). Default: the cache folder
            :func:`load_synthetic` uses.
        progress: show a progress bar over contexts.
        **knobs: any other :class:`SyntheticConfig` field.
    """
    cfg = SyntheticConfig(size=size, seed=seed, **knobs)
    folder = Path(out_dir) if out_dir is not None else default_cache_folder(cfg)
    files = build(cfg, progress=progress)  # everything validated and built before touching the disk
    folder.mkdir(parents=True, exist_ok=True)
    # meta.json last: its presence marks a complete folder
    for name in sorted(files, key=lambda n: n == "meta.json"):
        atomic_write_text(folder / name, files[name])
    return folder


def _folder_matches(folder: Path, cfg: SyntheticConfig) -> bool:
    meta_path = folder / "meta.json"
    needed = (*file_names(cfg.size), "profile_statements.json")
    if not meta_path.is_file() or not all((folder / n).is_file() for n in needed):
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("version") == GENERATOR_VERSION and meta.get("config") == {
        "size": cfg.size, "seed": int(cfg.seed), **cfg.knobs()}


def load_synthetic(size: str = "32k", seed: int = 0, cache: bool = True,
                   data_dir: str | os.PathLike | None = None, *, progress: bool = False, **knobs: Any):
    """Generate (once) and load a synthetic dataset named ``synthetic-<size>``.

    Args:
        size, seed, **knobs: as :func:`generate` / :class:`SyntheticConfig`.
        cache: reuse ``<root>/synthetic/<size>-seed<seed>-<knobhash>/`` when it holds a
            complete folder made by this generator version with the same config;
            with ``False`` the files are generated into a temporary folder that is
            deleted after loading.
        data_dir: root folder used instead of the per-user cache directory
            (:func:`comam_env.data.paths.cache_dir`).
        progress: progress bar while generating.

    The folder is generated into a temporary sibling and renamed into place, so a
    crash never leaves a half-written cache entry and concurrent callers agree.
    """
    from .personamem import load_personamem_dir

    cfg = SyntheticConfig(size=size, seed=seed, **knobs)
    name = f"synthetic-{cfg.size}"
    qsize = cfg.file_suffix
    if not cache:
        with tempfile.TemporaryDirectory(prefix="comam-synthetic-") as tmp:
            generate(cfg.size, cfg.seed, tmp, progress=progress, **cfg.knobs())
            return _with_meta(load_personamem_dir(tmp, qsize, name=name), cfg, None,
                              read_profile_statements(Path(tmp) / "profile_statements.json"))
    folder = default_cache_folder(cfg, data_dir)
    if not _folder_matches(folder, cfg):
        folder.parent.mkdir(parents=True, exist_ok=True)
        # build folders of generators killed earlier (".<entry>.<8 random chars>")
        remove_stale_temps(folder.parent, dir_pattern=r"\..+\.[a-z0-9_]{8}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            generate(cfg.size, cfg.seed, tmp, progress=progress, **cfg.knobs())
            if not _folder_matches(folder, cfg):  # re-check: another process may have just finished it
                if folder.exists():  # stale or incomplete entry: replace it
                    shutil.rmtree(folder, ignore_errors=True)
                try:
                    os.replace(tmp, folder)
                except OSError:
                    if not _folder_matches(folder, cfg):  # a concurrent caller won with a valid folder; else fail
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _with_meta(load_personamem_dir(folder, qsize, name=name), cfg, folder,
                      read_profile_statements(folder / "profile_statements.json"))


def _with_meta(ds, cfg: SyntheticConfig, folder: Path | None, statements: dict | None = None):
    return dataclasses.replace(ds, profile_statements=statements or {}, meta={**ds.meta, "synthetic": {
        "version": GENERATOR_VERSION, "config": {"size": cfg.size, "seed": int(cfg.seed), **cfg.knobs()},
        "folder": str(folder) if folder is not None else None}})
