"""The CoMAM memory-system MDP as a PettingZoo AEC environment.

Description
-----------
Three cooperating LLM agents build and use a memory of a long user
conversation (DESIGN §1–§2):

==========  ==============  ==================================================
step        agent           action (text)
==========  ==============  ==================================================
0 … K−1     ``extractor_0`` key facts/turns of chunk k, one per line; the
                            concatenation over the K chunks is M_f
K           ``profiler_0``  the user profile M_c, from M_f
K+1 … K+Q   ``retriever_0`` for query j: ``<information>`` memory lines
                            ``</information>`` + ``<final_answer>(x)</final_answer>``
==========  ==============  ==================================================

The history H of an episode depends on ``episode``:

* ``"evidence-session"`` (the paper's training setting): the session(s) that
  hold the gold evidence of the episode's questions, in history order. A
  question without evidence falls back to the last session before its
  ``end_index`` (``info["history"]["fallback"]`` says so).
* ``"full-history"`` (evaluation): every session of ``messages[:end_index]``.

The extractor acts once per session, or once per chunk when a session is longer
than ``chunk_tokens`` (estimated with :func:`comam_env.text.estimate_tokens`,
counting each message as its text plus two tokens for the ``Role:`` prefix).
Chunks are runs of whole consecutive messages of one session; a message is
never split — a single message longer than ``chunk_tokens`` becomes a chunk on
its own, over budget (splitting it would break the one-message-one-line
alignment the evidence matching relies on). An empty H still gives the
extractor one (empty) chunk so every agent acts.

With ``queries_per_episode = Q > 1`` the memory is built once and the
retriever answers Q questions on the same visible history in turn: questions
are grouped by (history id, ``end_index``); an episode holds the drawn
question and the next Q−1 of its group (fewer when the group is smaller).

Spaces
------
Observation (every agent; one cached ``Dict`` per agent)::

    Dict(role=Discrete(3),            # 0 extractor, 1 profiler, 2 retriever
         prompt=Text, chunk=Text, memory=Text, query=Text, options=Text)

``prompt`` is the full rendered prompt (:mod:`comam_env.prompts`); the other
fields are its parts (empty when the role does not read them): the extractor
gets ``chunk``; the profiler gets ``memory`` = M_f; the retriever gets
``memory`` = M_f + M_c, ``query`` and ``options`` (``(a) …`` lines; empty for
open questions). Any agent can be observed at any time (the parallel
conversion observes all three): it sees its own view of the current state.

Action: ``Text(0, max_action_chars)``. All ``Text`` spaces share one wide
charset (:mod:`comam_env.charset`: all assigned Unicode except controls other
than newline/tab, surrogates and private use). Text that enters an observation
— history and actions alike — is normalised into it: ``\\r\\n`` → ``\\n``,
other characters outside the charset → U+FFFD (counted in
``flags["replaced_chars"]`` for actions). Observation fields are capped at
``max_observation_chars`` (flagged in ``info["flags"]["observation_truncated"]``).

Robustness: any action is accepted. Non-text actions (``None`` from a live
agent, ``bytes``, numbers, …) count as an empty text, get local reward 0 and
``flags["non_text"]``; an empty text gets ``flags["empty"]``; a text longer
than ``max_action_chars`` is cut to that length (``flags["truncated"]``); a
retriever output without ``<information>`` or ``<final_answer>`` gets
``flags["malformed"]`` (no tag → no retrieved units; the answer parser falls
back to the whole response, as PersonaMem's rule says).

Rewards
-------
Computed by :mod:`comam_env.rewards` and :mod:`comam_env.judges` (DESIGN §3):

* extractor — coverage of M_f against the gold evidence E_q (eq. 9, α),
  given at its **last** chunk step on the complete M_f; earlier chunk steps
  get 0 (``parts["deferred"] = True``). With Q > 1 it is the mean over the
  episode's questions whose evidence is defined (per-question parts in
  ``parts["queries"]``).
* profiler — the judge's score of M_c (eq. 10); ``parts["judge"]`` names the judge that
  scored (``gold`` or ``embedding`` under ``auto``), ``parts["judge_spec"]`` the configured one.
* retriever — coverage of the units inside ``<information>`` against E_q of
  the query it answers (eq. 11, β), at each of its steps.
* global — the answer reward (eq. 12: exact option match, or token F1 for open
  questions), averaged over the episode's Q questions, known at the last step.

``infos[agent]`` (after each of the agent's steps) carries ``local_reward``
(``None`` when undefined: a question without evidence), ``local_reward_defined``,
``parts`` (recall, jaccard, matched evidence positions and message indices,
parsed option, …), ``flags``, and — for every agent once the episode ends —
``global_reward`` and ``global_parts``. The scalar ``rewards`` follow
``reward_mode``: ``"local"`` (local only), ``"global"`` (every agent gets the
global reward at the end), ``"local+global"`` (default: local + global/3 — an
equal 1/N share for N = 3 agents), ``"none"`` (always 0; use the infos).
An undefined local reward contributes 0 to the scalar.

Episode End
-----------
All agents terminate after the retriever's last answer; there is no
truncation. Step count = K + 1 + Q.

Arguments
---------
``raw_env(dataset, question_ids=None, *, episode, queries_per_episode,
chunk_tokens, alpha, beta, matcher, tau, judge, reward_mode, max_action_chars,
max_observation_chars, record_trajectory, render_mode)`` — see
:class:`EnvConfig` for every field. ``comam_env.make(env_id, …)`` loads the
dataset and the split and then calls :func:`env`.

``reset(seed=None, options=None)``: without options the first question is drawn
uniformly from ``question_ids`` with ``self.np_random`` (seeded by ``seed``);
``options={"question_id": qid}`` replays that question (any question of the
dataset), ``options={"question_ids": [...]}`` an explicit group (same history
and ``end_index``). Other option keys are ignored.

Performance
-----------
Results never depend on caching; ``docs/performance.md`` has the numbers. Rendered and
normalised history lines, token counts and chunk plans are cached per History object and shared by
every env of the process (:func:`clear_caches`). Observations are cached by what they depend on.
A step's prompt is rendered only when it is observed, or when :meth:`raw_env.trajectory` is read.
The gold-profile judge is not given a rendered history, because it does not read it.

Version history
---------------
* v0: initial release (text view; CoMAM eq. 9–12 rewards).
"""

from __future__ import annotations

import copy
import functools
import weakref
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
from gymnasium import logger, spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv
from pettingzoo.utils import wrappers

from comam_env import prompts
from comam_env.charset import charset, normalize_text
from comam_env.data.schema import Dataset, History, Question
from comam_env.text import estimate_tokens

__all__ = ["EnvConfig", "raw_env", "env", "plan_chunks", "text_space", "UnicodeText", "AGENTS", "ROLE_OF", "ENV_VERSION"]

#: Environment version (the ``-v0`` of the registered ids).
ENV_VERSION = 0

AGENTS: tuple[str, ...] = ("extractor_0", "profiler_0", "retriever_0")
ROLE_OF: dict[str, str] = {a: r for a, r in zip(AGENTS, prompts.ROLES)}
EPISODES = ("evidence-session", "full-history")
REWARD_MODES = ("local", "global", "local+global", "none")
OBS_FIELDS = ("prompt", "chunk", "memory", "query", "options")

#: Extra tokens a message costs in a chunk for its ``Role:`` prefix.
ROLE_PREFIX_TOKENS = 2

_COVERAGE_FIELDS = ("reward", "recall", "jaccard", "weight", "count", "matched_evidence", "matched_units",
                    "n_units", "n_evidence")


@dataclass(frozen=True)
class EnvConfig:
    """Every setting of the environment (``make``/``env`` keyword arguments)."""

    episode: str = field(default="evidence-session", metadata={
        "help": "'evidence-session': H = the session(s) holding the evidence (training, as in the paper); "
                "'full-history': H = messages[:end_index] (evaluation)"})
    queries_per_episode: int = field(default=1, metadata={
        "help": "questions answered on one memory (grouped by history id and end_index)"})
    chunk_tokens: int | None = field(default=4096, metadata={
        "help": "a session longer than this (estimated tokens) is cut into chunks of whole messages; None = one chunk per session"})
    alpha: float = field(default=0.8, metadata={"help": "extractor recall weight (eq. 9)"})
    beta: float = field(default=0.2, metadata={"help": "retriever recall weight (eq. 11)"})
    matcher: Any = field(default="token-recall", metadata={
        "help": "unit/evidence matcher: 'token-recall', 'embedding', 'embedding:<name>' or an object (rewards.resolve_matcher)"})
    tau: float | None = field(default=None, metadata={"help": "match threshold; None = the matcher's default"})
    judge: Any = field(default="auto", metadata={
        "help": "profile judge name or object (comam_env.judges.get_judge): 'auto' = gold-profile judge for questions "
                "whose persona has a gold profile, else the embedding judge; 'gold', 'embedding[:<embedder>]', 'llm[:<model>]'"})
    reward_mode: str = field(default="local+global", metadata={
        "help": "scalar rewards: 'local', 'global', 'local+global' (local + global/3) or 'none'"})
    max_action_chars: int = field(default=16384, metadata={
        "help": "longer actions are cut to this many characters (flagged); also the action space's max_length"})
    max_observation_chars: int = field(default=1 << 25, metadata={
        "help": "cap on every observation text field (flagged when hit); the observation spaces' max_length"})
    record_trajectory: bool = field(default=True, metadata={
        "help": "keep every prompt and action for env.trajectory() (disable to save memory on long runs)"})

    def __post_init__(self) -> None:
        if self.episode not in EPISODES:
            raise ValueError(f"episode must be one of {EPISODES}, got {self.episode!r}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if not isinstance(self.queries_per_episode, (int, np.integer)) or self.queries_per_episode < 1:
            raise ValueError(f"queries_per_episode must be an integer >= 1, got {self.queries_per_episode!r}")
        if self.chunk_tokens is not None and (not isinstance(self.chunk_tokens, (int, np.integer)) or self.chunk_tokens < 1):
            raise ValueError(f"chunk_tokens must be a positive integer or None, got {self.chunk_tokens!r}")
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
        for name in ("max_action_chars", "max_observation_chars"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# ----------------------------------------------------------------------- spaces


class UnicodeText(spaces.Text):
    """``gymnasium.spaces.Text`` over the wide charset, with a fast uniform ``sample``.

    ``Text.sample`` turns its 145k-character tuple into an array on every call
    (~50 ms); here the array is built once and shared, and unmasked sampling
    draws character indices directly (~0.2 ms for 2k characters). Masked or
    probability-weighted sampling falls back to ``Text.sample``. Everything else
    (``contains``, equality, flattening) is ``Text``'s own.
    """

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        chars = _charset_array()
        return "".join(chars[self.np_random.integers(0, len(chars), size=length)])


@functools.lru_cache(maxsize=1)
def _charset_array() -> np.ndarray:
    return np.array(list(charset()))


@functools.lru_cache(maxsize=8)
def _text_prototype(max_length: int) -> UnicodeText:
    # Building a Text over ~145k characters takes ~0.25 s and ~20 MB (gymnasium
    # indexes the charset); build it once per length and hand out shallow copies
    # that share the immutable tables but own their random generator.
    return UnicodeText(max_length, min_length=0, charset=charset())


def text_space(max_length: int) -> UnicodeText:
    """A fresh ``Text(0, max_length)`` space over :func:`comam_env.charset.charset`."""
    space = copy.copy(_text_prototype(int(max_length)))
    space._np_random = None  # own, unseeded generator (seed_test seeds each agent's space)
    return space


# ---------------------------------------------------------------------- chunking


def plan_chunks(token_counts: Sequence[int], ranges: Sequence[range], chunk_tokens: int | None) -> list[tuple[int, int]]:
    """Cut sessions into chunks of whole messages.

    Args:
        token_counts: estimated tokens of every message of the history (indexable by message index).
        ranges: the message ranges of the sessions of H, in order.
        chunk_tokens: budget per chunk; ``None`` = one chunk per session.

    Returns:
        ``(start, stop)`` message spans. A session within budget is one chunk; a
        longer one is packed greedily into consecutive runs within budget; a
        message alone over budget is a chunk by itself.
    """
    ranges = [r for r in ranges if len(r)]
    if chunk_tokens is None:
        return [(r.start, r.stop) for r in ranges]
    if not ranges:
        return []
    counts = np.asarray(token_counts, dtype=np.int64)
    if len(ranges) <= 8:
        # Few sessions (evidence-session episodes): a sum per session; a cumulative sum
        # over the whole history would cost more than the sessions themselves.
        totals = [int(counts[r.start:r.stop].sum()) for r in ranges]
    else:
        # Session totals from one cumulative sum over the span the sessions cover:
        # only sessions over budget are walked message by message.
        lo = ranges[0].start if all(a.start <= b.start for a, b in zip(ranges, ranges[1:])) else min(r.start for r in ranges)
        hi = max(r.stop for r in ranges)
        csum = np.concatenate(([0], np.cumsum(counts[lo:hi])))
        starts = np.fromiter((r.start - lo for r in ranges), dtype=np.int64, count=len(ranges))
        stops = np.fromiter((r.stop - lo for r in ranges), dtype=np.int64, count=len(ranges))
        totals = (csum[stops] - csum[starts]).tolist()
    spans: list[tuple[int, int]] = []
    for r, total in zip(ranges, totals):
        if total <= chunk_tokens:
            spans.append((r.start, r.stop))
            continue
        start, run = r.start, 0
        for i, t in zip(r, counts[r.start:r.stop].tolist()):
            if i > start and run + t > chunk_tokens:
                spans.append((start, i))
                start, run = i, 0
            run += t
        spans.append((start, r.stop))
    return spans


def _message_tokens(text: str) -> int:
    return estimate_tokens(text) + ROLE_PREFIX_TOKENS


# Token counts are shared by every env over the same (immutable) History object:
# counting a 1M-token history takes a second, so it is done once per process, not
# once per env or per reset. Keyed by id() with a weak reference to detect reuse of
# an id after the history is gone (hashing a History would hash all its messages).
# The third element memoises chunk plans of the history: (session spans, chunk_tokens) -> spans.
_TOKEN_COUNTS: dict[int, tuple[weakref.ref, np.ndarray, dict]] = {}


def _token_entry(history: History) -> tuple[weakref.ref, np.ndarray, dict]:
    entry = _TOKEN_COUNTS.get(id(history))
    if entry is None or entry[0]() is not history:
        for key in [k for k, e in _TOKEN_COUNTS.items() if e[0]() is None]:
            del _TOKEN_COUNTS[key]
        entry = (weakref.ref(history), np.full(len(history), -1, dtype=np.int64), {})
        _TOKEN_COUNTS[id(history)] = entry
    return entry


def history_chunk_plan(history: History, ranges: Sequence[range], chunk_tokens: int | None) -> tuple[tuple[int, int], ...]:
    """:func:`plan_chunks` of ``ranges`` with the history's token counts, memoised per
    history and (ranges, ``chunk_tokens``): episodes on one history and question group
    replay the same plan (every rollout of a group, every epoch)."""
    plans = _token_entry(history)[2]
    key = (tuple((r.start, r.stop) for r in ranges), chunk_tokens)
    spans = plans.get(key)
    if spans is None:
        spans = plans[key] = tuple(plan_chunks(history_token_counts(history, ranges), ranges, chunk_tokens))
    return spans


def history_token_counts(history: History, ranges: Sequence[range] | None = None) -> np.ndarray:
    """Estimated tokens of every message (text + :data:`ROLE_PREFIX_TOKENS`), cached per
    history; only the messages in ``ranges`` (default: all) are guaranteed counted,
    the others may be ``-1``."""
    counts = _token_entry(history)[1]
    contents = history.contents
    ranges = [r for r in (ranges if ranges is not None else [range(len(history))]) if len(r)]
    if ranges:
        lo, hi = min(r.start for r in ranges), max(r.stop for r in ranges)
        if counts[lo:hi].min() >= 0:  # everything in the span already counted (the usual case)
            return counts
    for r in ranges:
        if len(r) and (counts[r.start:r.stop] < 0).any():
            for i in r:
                if counts[i] < 0:
                    counts[i] = _message_tokens(contents[i])
    return counts


# Normalised ``Role: text`` lines of every message, per History object (same keying
# as the token counts): history messages are rendered and normalised once per
# process, lazily for the messages an episode shows, and shared by every env
# (pools of envs over one dataset hold one copy, not one per env).
_LINES: dict[int, tuple[weakref.ref, list]] = {}


def history_lines(history: History, start: int, stop: int) -> list:
    """The list of normalised rendered lines of ``history`` (cached per history), with
    at least ``[start:stop]`` filled; other entries may be ``None``.

    A line is ``normalize_text(history.render([i]))[0]``. Joining lines with
    ``"\n"`` gives exactly ``normalize_text(history.render(range(start, stop)))[0]``
    because a rendered message holds no line break (``History.render`` folds white
    space) — except when a role holds ``"\r"``, which :meth:`raw_env._chunk_text`
    detects (the entry is then ``False``) and renders as a whole.
    """
    entry = _LINES.get(id(history))
    if entry is None or entry[0]() is not history:
        for key in [k for k, (ref, _) in _LINES.items() if ref() is None]:
            del _LINES[key]
        entry = (weakref.ref(history), [None] * len(history))
        _LINES[id(history)] = entry
    lines = entry[1]
    if stop > start and (lines[start] is None or lines[stop - 1] is None or None in lines[start:stop]):
        if all(x is None for x in lines[start:stop]):
            # One render and one normalisation of the whole run, cut at its line breaks
            # (one per message unless a role holds a line break: then message by message).
            raw = history.render(range(start, stop))
            if "\r" not in raw:
                cut = normalize_text(raw)[0].split("\n")
                if len(cut) == stop - start:
                    lines[start:stop] = cut
                    return lines
        render = history.render
        for i in range(start, stop):
            if lines[i] is None:
                raw = render((i,))
                lines[i] = False if "\r" in raw else normalize_text(raw)[0]
    return lines


def clear_caches() -> None:
    """Drop the process-wide caches: token counts, chunk plans and normalised history lines
    (benchmarks measure cold episodes with it)."""
    _TOKEN_COUNTS.clear()
    _LINES.clear()


# Bounds for raw_env._may_be_capped: the longest prompt around empty fields, and the
# memory block's headings and placeholders.
_PROMPT_OVERHEAD = max(len(prompts.build_prompt(r, chunk="", memory="", query="", options=o))
                       for r in prompts.ROLES for o in ("", "x")) + 64
_MEMORY_OVERHEAD = len(prompts.render_memory("", "")) + 16


class _LazyPrompt:
    """A trajectory step's prompt, rendered only when ``trajectory()`` is read.

    The state a prompt depends on is final when the step is taken (chunk k is
    fixed; M_f is complete before the profiler acts, M_c before the retriever),
    so the role, chunk index and query index identify it.
    """

    __slots__ = ("agent", "chunk", "query")

    def __init__(self, agent: str, chunk: int, query: int) -> None:
        self.agent, self.chunk, self.query = agent, chunk, query


# ----------------------------------------------------------------- environment


class raw_env(AECEnv):
    """The extractor → profiler → retriever MDP (see the module docstring)."""

    metadata = {
        "name": "comam_memory_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": False,
    }

    def __init__(
        self,
        dataset: Dataset,
        question_ids: Sequence[str] | None = None,
        *,
        render_mode: str | None = None,
        config: EnvConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset must be a comam_env.data.schema.Dataset, got {type(dataset).__name__}")
        unknown = set(kwargs) - set(EnvConfig.field_names())
        if unknown:
            raise TypeError(f"unknown environment argument(s) {sorted(unknown)}; valid: {list(EnvConfig.field_names())}")
        if config is None:
            config = EnvConfig(**kwargs)
        elif kwargs:
            config = EnvConfig(**{**{f: getattr(config, f) for f in EnvConfig.field_names()}, **kwargs})
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.config = config
        self.render_mode = render_mode
        self.dataset = dataset

        if question_ids is None:
            pool = [q.question_id for q in dataset.questions]
        else:
            pool = list(question_ids)
            for qid in pool:
                dataset.question(qid)  # clear KeyError naming the dataset and id
        if not pool:
            raise ValueError(f"dataset {dataset.name!r}: no questions to draw episodes from")
        self.question_ids: tuple[str, ...] = tuple(pool)
        # Episode groups: questions on the same visible history (history id, end_index).
        self._groups: dict[tuple[str, int], list[str]] = {}
        for qid in self.question_ids:
            q = dataset.question(qid)
            self._groups.setdefault((q.history_id, q.end_index), []).append(qid)

        from comam_env import rewards  # noqa: F401  (fail early if the reward module is missing)

        self._rewards = rewards
        self._matcher = rewards.resolve_matcher(config.matcher)
        self._judge = self._resolve_judge(config.judge)

        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._role_index = {a: i for i, a in enumerate(AGENTS)}
        self.observation_spaces = {a: self._make_obs_space() for a in AGENTS}
        self.action_spaces = {a: text_space(config.max_action_chars) for a in AGENTS}

        self.np_random, self.np_random_seed = seeding.np_random(None)
        self._episode: dict[str, Any] | None = None
        self._qtexts: dict[str, tuple[Question, str, str]] = {}  # bounded by the dataset's questions

    # ------------------------------------------------------------------ spaces

    def _make_obs_space(self) -> spaces.Dict:
        n = self.config.max_observation_chars
        return spaces.Dict({"role": spaces.Discrete(3), **{k: text_space(n) for k in OBS_FIELDS}})

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    # ------------------------------------------------------------------ judge

    def _resolve_judge(self, judge: Any) -> Any:
        from comam_env.judges import get_judge, judge_reads_history

        self._judge_reads_history = judge_reads_history

        if isinstance(judge, str) and judge.strip().lower() in ("auto", "gold"):
            # The gold-profile judge matches statements with the env's own matcher.
            return get_judge(judge, matcher=self.config.matcher, tau=self.config.tau)
        return get_judge(judge)

    # ------------------------------------------------------------- episodes

    def _group_for(self, first: Question) -> list[Question]:
        group = self._groups.get((first.history_id, first.end_index), [])
        k = self.config.queries_per_episode
        if first.question_id in group:
            i = group.index(first.question_id)
            order = group[i:] + group[:i]
        else:  # a replayed question outside the pool: its companions come from the pool
            order = [first.question_id] + group
        return [self.dataset.question(q) for q in order[:k]]

    @staticmethod
    def _session_range(history: History, s: int, end: int) -> range:
        starts = history.session_starts
        stop = starts[s + 1] if s + 1 < len(starts) else len(history)
        return range(starts[s], min(stop, end))

    def _history_ranges(self, history: History, questions: list[Question]) -> tuple[list[range], dict[str, Any]]:
        end = min(questions[0].end_index, len(history))
        info: dict[str, Any] = {"episode": self.config.episode, "end_index": questions[0].end_index, "fallback": False}
        if self.config.episode == "full-history":
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
            sessions = sorted(wanted)
            ranges = [self._session_range(history, s, end) for s in sessions]
        info["sessions"] = [s for s, r in zip(sessions, ranges) if len(r)]
        info["num_messages"] = int(sum(len(r) for r in ranges))
        return ranges, info

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        options = options or {}
        if "question_ids" in options and options["question_ids"] is not None:
            qids = list(options["question_ids"])
            if not qids:
                raise ValueError("options['question_ids'] is empty")
            questions = [self.dataset.question(q) for q in qids]
            key = (questions[0].history_id, questions[0].end_index)
            for q in questions[1:]:
                if (q.history_id, q.end_index) != key:
                    raise ValueError(
                        f"options['question_ids']: question {q.question_id!r} is on ({q.history_id!r}, end {q.end_index}), "
                        f"not on ({key[0]!r}, end {key[1]}) like {questions[0].question_id!r}"
                    )
        elif options.get("question_id") is not None:
            questions = self._group_for(self.dataset.question(options["question_id"]))
        else:
            qid = self.question_ids[int(self.np_random.integers(len(self.question_ids)))]
            questions = self._group_for(self.dataset.question(qid))

        history = self.dataset.history_for(questions[0])
        ranges, hinfo = self._history_ranges(history, questions)
        spans = list(history_chunk_plan(history, ranges, self.config.chunk_tokens))
        hinfo["empty"] = not spans
        if not spans:
            spans = [(0, 0)]  # the extractor still acts once, on an empty chunk
        evidence = [self.dataset.evidence_texts(q) for q in questions]

        self._episode = {
            "questions": questions,
            "history": history,
            "spans": spans,
            "history_info": hinfo,
            "evidence": evidence,
            "chunk": 0,  # next chunk the extractor acts on
            "query": 0,  # next query the retriever answers
            "fine_parts": [],  # normalised extractor outputs
            "fine_text": "",  # "\n".join of the non-empty fine_parts; None = to be joined again
            "fine_len": 0,  # its length, kept up to date without joining
            "coarse": "",
            "retrieved": [],
            "answers": [],
            "global": None,
            "steps": [] if self.config.record_trajectory else None,
            "version": 0,  # steps taken
            "memory_version": 0,  # bumped when M_f or M_c changes (extractor/profiler steps)
            "obs_cache": {},  # agent -> (inputs key, observation)
        }
        self.agents = list(AGENTS)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        qids = [q.question_id for q in questions]
        self.infos = {
            a: {"role": ROLE_OF[a], "question_ids": qids, "local_reward": None, "local_reward_defined": False,
                "global_reward": None, "parts": {}, "flags": {}}
            for a in self.agents
        }
        self.infos[AGENTS[0]]["num_chunks"] = len(spans)
        self.agent_selection = AGENTS[0]

    # ------------------------------------------------------------- rendering

    def _cap(self, text: str) -> tuple[str, bool]:
        n = self.config.max_observation_chars
        if len(text) > n:
            return text[:n], True
        return text, False

    def _chunk_text(self, k: int) -> str:
        ep = self._episode
        history: History = ep["history"]
        start, stop = ep["spans"][k]
        if stop <= start:
            return ""
        lines = history_lines(history, start, stop)
        part = lines[start:stop]
        if False in part:  # a role with "\r": normalise the chunk as a whole ("\r\n" spans lines)
            return normalize_text(prompts.render_chunk(history, range(start, stop)))[0]
        return "\n".join(part)

    def _fine_text(self) -> str:
        ep = self._episode
        if ep["fine_text"] is None:  # joined once per extractor step at most, when read
            ep["fine_text"] = "\n".join(p for p in ep["fine_parts"] if p)
        return ep["fine_text"]

    def _fields(self, agent: str, chunk_index: int, query_index: int) -> tuple[str, dict[str, str]]:
        """(role, uncapped observation fields) of ``agent`` for the given chunk/query index."""
        ep = self._episode
        role = ROLE_OF[agent]
        chunk = memory = query = options = ""
        if role == "extractor":
            chunk = self._chunk_text(min(chunk_index, len(ep["spans"]) - 1))
        elif role == "profiler":
            memory = prompts.render_memory(self._fine_text())
        else:
            memory = prompts.render_memory(self._fine_text(), ep["coarse"])
            q: Question = ep["questions"][min(query_index, len(ep["questions"]) - 1)]
            query, options = self._question_texts(q)
        return role, {"chunk": chunk, "memory": memory, "query": query, "options": options}

    def _question_texts(self, q: Question) -> tuple[str, str]:
        """Normalised query and rendered options of ``q``, memoised per question id."""
        hit = self._qtexts.get(q.question_id)
        if hit is None or hit[0] is not q:
            hit = self._qtexts[q.question_id] = (q, normalize_text(q.query)[0],
                                                 normalize_text(prompts.render_options(q))[0])
        return hit[1], hit[2]

    def _render(self, agent: str, chunk_index: int, query_index: int) -> tuple[dict[str, str], str, bool]:
        """(capped fields, capped prompt, whether anything was capped)."""
        role, raw = self._fields(agent, chunk_index, query_index)
        capped = False
        parts = {}
        for name, value in raw.items():
            parts[name], c = self._cap(value)
            capped |= c
        prompt, c = self._cap(prompts.build_prompt(role, **parts))
        return parts, prompt, capped | c

    def _may_be_capped(self, agent: str) -> bool:
        """Whether the current observation of ``agent`` could exceed ``max_observation_chars``.

        An upper bound from lengths alone (rendering folds white space and
        normalisation never lengthens text), so ``step`` need not build an
        observation nobody reads just to know whether it would be truncated.
        """
        ep = self._episode
        role = ROLE_OF[agent]
        n = 0
        if role == "extractor":
            a, b = ep["spans"][min(ep["chunk"], len(ep["spans"]) - 1)]
            h: History = ep["history"]
            n = sum(map(len, h.contents[a:b])) + sum(map(len, h.roles[a:b])) + 3 * (b - a)
        else:
            n = ep["fine_len"] + 2 * _MEMORY_OVERHEAD
            if role == "retriever":
                q: Question = ep["questions"][min(ep["query"], len(ep["questions"]) - 1)]
                n += len(ep["coarse"]) + len(q.query) + sum(map(len, q.options)) + 6 * len(q.options)
        return n + _PROMPT_OVERHEAD > self.config.max_observation_chars

    def _build_obs(self, agent: str) -> dict[str, Any]:
        ep = self._episode
        parts, prompt, capped = self._render(agent, ep["chunk"], ep["query"])
        if capped:
            ep["observation_truncated"] = True
        return {"role": np.int64(self._role_index[agent]), "prompt": prompt, **parts}

    def _cached_obs(self, agent: str) -> dict[str, Any] | None:
        hit = self._episode["obs_cache"].get(agent)
        if hit is not None and hit[0] == self._obs_key(agent):
            return hit[1]
        return None

    def _obs_key(self, agent: str) -> Any:
        """What ``agent``'s observation depends on: an observation is rebuilt only when
        it changes (an agent observed again after its turn, or after the episode
        ended, gets the same dict)."""
        ep = self._episode
        role = ROLE_OF[agent]
        if role == "extractor":
            return min(ep["chunk"], len(ep["spans"]) - 1)
        if role == "profiler":
            return ep["memory_version"]
        return ep["memory_version"], min(ep["query"], len(ep["questions"]) - 1)

    def observe(self, agent: str) -> dict[str, Any]:
        if self._episode is None:
            raise RuntimeError("observe() before reset()")
        obs = self._cached_obs(agent)
        if obs is None:
            obs = self._build_obs(agent)
            self._episode["obs_cache"][agent] = (self._obs_key(agent), obs)
        return obs

    # ------------------------------------------------------------------ step

    def _coerce_action(self, action: Any) -> tuple[str, dict[str, Any]]:
        flags: dict[str, Any] = {"non_text": False, "empty": False, "truncated": False, "replaced_chars": 0, "malformed": False}
        if not isinstance(action, str):
            flags["non_text"] = True
            flags["action_type"] = type(action).__name__
            flags["empty"] = True
            return "", flags
        text = str(action)
        if len(text) > self.config.max_action_chars:
            text = text[: self.config.max_action_chars]
            flags["truncated"] = True
        text, n = normalize_text(text)
        flags["replaced_chars"] = n
        if not text.strip():
            flags["empty"] = True
        return text, flags

    def _coverage(self, memory: str, evidence: Sequence[str] | None, weight: float) -> Any:
        return self._rewards.coverage_reward(memory, evidence, weight, matcher=self._matcher, tau=self.config.tau)

    @staticmethod
    def _coverage_dict(parts: Any, question: Question) -> dict[str, Any]:
        # CoverageParts is flat: a shallow dict is enough (dataclasses.asdict deep-copies, 10x slower).
        d = {k: getattr(parts, k) for k in _COVERAGE_FIELDS}
        d["matched_evidence"] = list(d["matched_evidence"])
        d["matched_units"] = list(d["matched_units"])
        ev = question.evidence or ()
        d["matched_messages"] = [int(ev[i]) for i in d["matched_evidence"] if i < len(ev)]
        d["question_id"] = question.question_id
        return d

    def _extractor_reward(self) -> tuple[float | None, dict[str, Any]]:
        ep = self._episode
        units = self._rewards.to_units(self._fine_text())  # split once for every question
        per = []
        for q, ev in zip(ep["questions"], ep["evidence"]):
            parts = self._coverage(units, ev, self.config.alpha)
            per.append(None if parts is None else self._coverage_dict(parts, q))
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

    def _profiler_reward(self, profile: str) -> tuple[float, dict[str, Any]]:
        ep = self._episode
        q = ep["questions"][0]
        gold = self.dataset.profile_for(q)
        history_text = None
        if self._judge_reads_history(self._judge, gold):  # the gold judge never reads it: skip rendering H
            history_text = "\n".join(self._chunk_text(k) for k in range(len(ep["spans"])))
        result = self._judge.score(profile, history=history_text, gold_profile=gold)
        score = float(result.score)
        parts = dict(getattr(result, "parts", {}) or {})
        # "judge" names the judge that scored (the auto judge's inner gold/embedding judge
        # reports itself); "judge_spec" the judge the env was configured with.
        spec = getattr(self._judge, "name", type(self._judge).__name__)
        parts.setdefault("judge", spec)
        parts["judge_spec"] = self.config.judge if isinstance(self.config.judge, str) else spec
        parts["score"] = score
        return score, parts

    def _retriever_step(self, text: str, flags: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
        ep = self._episode
        j = ep["query"]
        q: Question = ep["questions"][j]
        retrieved = self._rewards.extract_tag(text, "information")
        has_answer = "<final_answer>" in text.lower()
        missing = [t for t, ok in (("information", retrieved is not None), ("final_answer", has_answer)) if not ok]
        if missing:
            flags["malformed"] = True
            flags["missing_tags"] = missing
        retrieved = retrieved or ""
        ep["retrieved"].append(retrieved)
        ans = self._rewards.answer_reward(text, q)
        ans_d = {"reward": float(ans.reward), "parsed": ans.parsed, "kind": ans.kind}
        ep["answers"].append({"question_id": q.question_id, **ans_d})
        parts_obj = self._coverage(retrieved, ep["evidence"][j], self.config.beta)
        if parts_obj is None:
            parts = {"question_id": q.question_id, "undefined": "question has no evidence"}
            local = None
        else:
            parts = self._coverage_dict(parts_obj, q)
            local = float(parts_obj.reward)
        parts["parsed_option"] = ans.parsed if ans.kind == "mcq" else None
        parts["answer"] = ans_d
        parts["query_index"] = j
        return local, parts

    def step(self, action: Any) -> None:
        if self._episode is None:
            raise RuntimeError("step() before reset()")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        ep = self._episode
        role = ROLE_OF[agent]
        obs = self._cached_obs(agent)
        if obs is None and self._may_be_capped(agent):
            obs = self.observe(agent)  # builds it: sets the observation_truncated flag as observing would
        prompt: Any = None
        if self.config.record_trajectory:
            # The prompt is rendered when trajectory() is read, unless it was already observed.
            prompt = obs["prompt"] if obs is not None else _LazyPrompt(agent, ep["chunk"], ep["query"])
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        text, flags = self._coerce_action(action)

        local: float | None
        defined = True
        extra: dict[str, Any] = {}
        if role == "extractor":
            k = ep["chunk"]
            part = text.strip()
            ep["fine_parts"].append(part)
            ep["memory_version"] += 1
            if part:
                ep["fine_len"] += len(part) + 1
                ep["fine_text"] = None
            ep["chunk"] += 1
            extra = {"chunk_index": k, "num_chunks": len(ep["spans"])}
            if ep["chunk"] < len(ep["spans"]):
                local, parts = 0.0, {"deferred": True,
                                     "note": "the extractor's coverage reward is given on the complete M_f at its last chunk"}
                nxt = agent
            else:
                local, parts = self._extractor_reward()
                defined = local is not None
                nxt = AGENTS[1]
        elif role == "profiler":
            ep["coarse"] = text.strip()
            ep["memory_version"] += 1
            local, parts = self._profiler_reward(ep["coarse"])
            nxt = AGENTS[2]
        else:
            local, parts = self._retriever_step(text, flags)
            defined = local is not None
            ep["query"] += 1
            extra = {"query_index": ep["query"] - 1, "num_queries": len(ep["questions"])}
            nxt = agent
        if flags["non_text"] and local is not None:
            # Invalid actions never earn a local reward (the parts still show the formula's value).
            parts = {**parts, "forced_zero": "non-text action"}
            local = 0.0
        scalar_local = local if local is not None else 0.0

        info = {
            "role": role,
            "question_ids": [q.question_id for q in ep["questions"]],
            "local_reward": local,
            "local_reward_defined": defined,
            "global_reward": None,
            "parts": parts,
            "flags": flags,
            **extra,
        }
        if ep.get("observation_truncated"):
            flags["observation_truncated"] = True
        self.infos[agent] = info
        mode = self.config.reward_mode
        if mode in ("local", "local+global"):
            self.rewards[agent] += scalar_local
        if ep["steps"] is not None:
            ep["steps"].append({
                "agent": agent, "role": role, "prompt": prompt, "action": text,
                "local_reward": local, "local_parts": parts, "flags": flags, **extra,
            })

        done = role == "retriever" and ep["query"] >= len(ep["questions"])
        if done:
            g = float(sum(a["reward"] for a in ep["answers"]) / len(ep["answers"]))
            ep["global"] = g
            gparts = {"reward": g, "answers": list(ep["answers"])}
            for a in self.agents:
                self.infos[a]["global_reward"] = g
                self.infos[a]["global_parts"] = gparts
                if mode == "global":
                    self.rewards[a] += g
                elif mode == "local+global":
                    self.rewards[a] += g / len(AGENTS)
                self.terminations[a] = True
        else:
            self.agent_selection = nxt
        ep["version"] += 1
        self._accumulate_rewards()

    # -------------------------------------------------------------- learners

    @property
    def current_questions(self) -> tuple[Question, ...]:
        """The questions of the current episode (after ``reset``)."""
        self._require_episode()
        return tuple(self._episode["questions"])

    @property
    def current_question(self) -> Question:
        """The question the retriever answers next (the last one once done)."""
        ep = self._require_episode()
        return ep["questions"][min(ep["query"], len(ep["questions"]) - 1)]

    @property
    def current_history(self) -> History:
        return self._require_episode()["history"]

    @property
    def chunk_spans(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` message spans of the extractor's chunks."""
        return tuple(self._require_episode()["spans"])

    @property
    def current_chunk(self) -> tuple[int, int]:
        """The span of the chunk the extractor acts on next (the last one once done)."""
        ep = self._require_episode()
        return ep["spans"][min(ep["chunk"], len(ep["spans"]) - 1)]

    @property
    def fine_memory(self) -> str:
        return self._fine_text() if self._episode else ""

    @property
    def coarse_memory(self) -> str:
        return self._episode["coarse"] if self._episode else ""

    def _require_episode(self) -> dict[str, Any]:
        if self._episode is None:
            raise RuntimeError("no episode: call reset() first")
        return self._episode

    def trajectory(self) -> dict[str, Any]:
        """The episode so far as plain data (docs/architecture.md contract)."""
        ep = self._require_episode()
        qs = ep["questions"]
        for s in ep["steps"] or ():
            p = s["prompt"]
            if type(p) is _LazyPrompt:
                s["prompt"] = self._render(p.agent, p.chunk, p.query)[1]
        return {
            "question_id": qs[0].question_id,
            "question_ids": [q.question_id for q in qs],
            "history_id": ep["history"].history_id,
            "history": dict(ep["history_info"]),
            "chunks": [list(s) for s in ep["spans"]],
            "steps": [dict(s) for s in ep["steps"] or ()],
            "global_reward": ep["global"],
            "parsed_answer": ep["answers"][0]["parsed"] if ep["answers"] else None,
            "answers": list(ep["answers"]),
            "memory": {"fine": self._fine_text(), "coarse": ep["coarse"]},
            "retrieved": ep["retrieved"][0] if len(ep["retrieved"]) == 1 else list(ep["retrieved"]),
            "config": {k: (v if isinstance(v, (str, int, float, bool, type(None))) else repr(v))
                       for k, v in ((f, getattr(self.config, f)) for f in EnvConfig.field_names())},
        }

    # ---------------------------------------------------------- render/close

    def render(self) -> str | None:
        if self.render_mode is None:
            logger.warn("You are calling render() without specifying a render_mode (use render_mode='ansi').")
            return None
        if self._episode is None:
            return "comam memory env: not reset"
        ep = self._episode
        qs = ep["questions"]
        lines = [
            f"comam memory env | history {ep['history'].history_id} | question(s) {', '.join(q.question_id for q in qs)}",
            f"  chunks {ep['chunk']}/{len(ep['spans'])} | queries answered {ep['query']}/{len(qs)} | "
            f"next: {self.agent_selection if self.agents else '-'}",
            f"  M_f: {len(self._fine_text().splitlines())} lines | M_c: {len(ep['coarse'].splitlines())} lines",
        ]
        for s in (ep["steps"] or [])[-3:]:
            act = " ".join(s["action"].split())
            act = act[:97] + "..." if len(act) > 100 else act
            r = "undefined" if s["local_reward"] is None else f"{s['local_reward']:.3f}"
            lines.append(f"  {s['agent']}: local {r} | {act!r}")
        if ep["global"] is not None:
            lines.append(f"  global (answer) reward {ep['global']:.3f}")
        return "\n".join(lines)

    def close(self) -> None:
        self._episode = None

    def __str__(self) -> str:
        return f"comam_memory_v0({self.dataset.name})"


def env(dataset: Dataset, question_ids: Sequence[str] | None = None, **kwargs: Any) -> AECEnv:
    """The environment wrapped for safe use (``OrderEnforcingWrapper``).

    ``AssertOutOfBoundsWrapper`` is not added on purpose: the environment accepts
    *any* action (non-text, too long, outside the charset) and flags it, which the
    robustness contract requires and that wrapper would turn into an assertion.
    """
    e = raw_env(dataset, question_ids, **kwargs)
    return wrappers.OrderEnforcingWrapper(e)
