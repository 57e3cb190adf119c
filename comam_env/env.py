"""The CoMAM memory-system MDP as a PettingZoo AEC environment.

Description
-----------
Three cooperating LLM agents build and use a memory of a long user
conversation (docs/design.md §1–§2):

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
* ``"evidence+context"`` (a training curriculum): the evidence session(s) plus up
  to ``context_sessions`` (4) earlier sessions holding other questions' evidence
  on the same history, same topic first — the stale preferences and decoys a
  full history holds, at a fraction of its length
  (:func:`comam_env.episode.history_ranges`).

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
``memory`` = M_f + M_c (under a ``memory_budget``: the units the budget keeps, below),
``query`` and ``options`` (``(a) …`` lines; empty for open questions). Any agent can be observed at any time (the parallel
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
Computed by :mod:`comam_env.rewards` and :mod:`comam_env.judges` (docs/design.md §3):

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

``trajectory()["local"]`` states each role's episode-level local reward once (extractor: its
final value; profiler: its value; retriever: the mean over its answered questions with evidence;
``None`` when undefined). ``infos[agent]`` (after each of the agent's steps) carries ``local_reward``
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
``raw_env(dataset, question_ids=None, *, episode, context_sessions, queries_per_episode,
chunk_tokens, alpha, beta, matcher, tau, judge, reward_mode, max_action_chars,
max_observation_chars, record_trajectory, memory_budget, memory_embedder, render_mode)`` — see
:class:`comam_env.config.EnvConfig` for every field.

``memory_budget`` (default ``None``, the paper's setting: the retriever reads all of M_f and
M_c) — the retriever's memory budget in units, the one rule of :mod:`comam_env.memory_budget`
that the selection view applies too (its default there is 16). Under ``memory_budget = B`` the
retriever's ``memory`` shows the profile's units (the ``B`` most similar to the query when
there are more, in profile order) under ``## User profile``, then the ``B − |M_c|`` units of
M_f not in the profile most similar to the query, in chronological order, under
``## Fine-grained memory (retrieved for the query below)`` (:func:`comam_env.prompts.render_budgeted_memory`).
So an over-inclusive M_f crowds the evidence out of the retriever's prompt and a verbose
profile leaves no room for fine memory. Similarity is the cosine of ``memory_embedder``
embeddings (default ``"hashing"``: deterministic, no model; ``"minilm"`` or an embedder
object). The budget changes only what the retriever is shown: its local reward (eq. 11) still
scores the units it copies inside ``<information>`` against the evidence. ``comam_env.make(env_id, …)`` loads the
dataset and the split and then calls :func:`env`.

``reset(seed=None, options=None)``: without options the first question is drawn
uniformly from ``question_ids`` with ``self.np_random`` (seeded by ``seed``);
``options={"question_id": qid}`` replays that question (any question of the
dataset), ``options={"question_ids": [...]}`` an explicit group (same history
and ``end_index``). Other option keys are ignored.

Structure
---------
This class is a thin AEC adapter. The episode's state and the three role transitions
(``write_chunk``, ``write_profile``, ``answer``) live in :mod:`comam_env.episode`; the reward
equations in :mod:`comam_env.rewards` (eq. 9–11) and :mod:`comam_env.scoring` (eq. 12); roles and
agent ids in :mod:`comam_env.roles`; settings in :mod:`comam_env.config`; spaces in
:mod:`comam_env.spaces`; chunk plans and the per-history caches in :mod:`comam_env.chunks`.

Performance
-----------
Results never depend on caching; ``docs/performance.md`` has the numbers. Rendered and
normalised history lines, token counts and chunk plans are cached per History object and shared by
every env of the process (:func:`comam_env.chunks.clear_caches`). Observations are cached by what they depend on.
A step's prompt is rendered only when it is observed, or when :meth:`raw_env.trajectory` is read.
The gold-profile judge is not given a rendered history, because it does not read it.

Version history
---------------
* v0: initial release (text view; CoMAM eq. 9–12 rewards).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import logger, spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv
from pettingzoo.utils import wrappers

from comam_env import prompts
from comam_env.charset import normalize_text
from comam_env.chunks import plan_chunks
from comam_env.config import EnvConfig
from comam_env.data.schema import Dataset, History, Question
from comam_env.episode import Episode, EpisodeScorer, Transition
from comam_env.memory_budget import MemoryBudget
from comam_env.roles import AGENTS, ROLE_OF, Role
from comam_env.spaces import UnicodeText, observation_space, text_space

__all__ = ["EnvConfig", "raw_env", "env", "plan_chunks", "text_space", "UnicodeText", "AGENTS", "ROLE_OF", "ENV_VERSION",
           "coerce_action"]

#: Environment version (the ``-v0`` of the registered ids).
ENV_VERSION = 0

# Bounds for raw_env._may_be_capped: slack over the longest prompt around empty fields
# (prompts.prompt_overhead, longer on a two-speaker dialogue), and the memory block's
# headings and placeholders.
_PROMPT_SLACK = 64
_MEMORY_OVERHEAD = max(len(prompts.render_memory("", "")), len(prompts.render_budgeted_memory((), ()))) + 16


def coerce_action(action: Any, max_chars: int) -> tuple[str, dict[str, Any]]:
    """Any action as text plus its flags (see *Robustness* in the module docstring)."""
    flags: dict[str, Any] = {"non_text": False, "empty": False, "truncated": False, "replaced_chars": 0, "malformed": False}
    if not isinstance(action, str):
        flags["non_text"] = True
        flags["action_type"] = type(action).__name__
        flags["empty"] = True
        return "", flags
    text = str(action)
    if len(text) > max_chars:
        text = text[:max_chars]
        flags["truncated"] = True
    text, n = normalize_text(text)
    flags["replaced_chars"] = n
    if not text.strip():
        flags["empty"] = True
    return text, flags


class _LazyPrompt:
    """A trajectory step's prompt, rendered only when ``trajectory()`` is read.

    The state a prompt depends on is final when the step is taken (chunk k is
    fixed; M_f is complete before the profiler acts, M_c before the retriever),
    so the role, chunk index and query index identify it.
    """

    __slots__ = ("agent", "chunk", "query")

    def __init__(self, agent: str, chunk: int, query: int) -> None:
        self.agent, self.chunk, self.query = agent, chunk, query


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

        self._scorer = EpisodeScorer(dataset, config)  # resolves matcher and judge: fails early on a bad name
        # the retriever's memory budget (None: the paper's setting, all of M_f and M_c)
        self._budget = None if config.memory_budget is None else MemoryBudget(config.memory_budget,
                                                                                config.memory_embedder)

        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.observation_spaces = {a: observation_space(config.max_observation_chars) for a in AGENTS}
        self.action_spaces = {a: text_space(config.max_action_chars) for a in AGENTS}

        self.np_random, self.np_random_seed = seeding.np_random(None)
        self._episode: Episode | None = None
        self._qtexts: dict[str, tuple[Question, str, str]] = {}  # bounded by the dataset's questions

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

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

    def _questions_for(self, options: dict[str, Any]) -> list[Question]:
        """The episode's questions: an explicit group, a replayed question's group, or a drawn one."""
        if options.get("question_ids") is not None:
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
            return questions
        if options.get("question_id") is not None:
            return self._group_for(self.dataset.question(options["question_id"]))
        qid = self.question_ids[int(self.np_random.integers(len(self.question_ids)))]
        return self._group_for(self.dataset.question(qid))

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        questions = self._questions_for(options or {})
        self._episode = ep = Episode.start(self.dataset, questions, self.config)
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
        self.infos[AGENTS[0]]["num_chunks"] = len(ep.spans)
        self.agent_selection = AGENTS[0]

    # ------------------------------------------------------------- rendering

    def _cap(self, text: str) -> tuple[str, bool]:
        n = self.config.max_observation_chars
        if len(text) > n:
            return text[:n], True
        return text, False

    def _fields(self, agent: str, chunk_index: int, query_index: int) -> tuple[str, dict[str, str]]:
        """(role, uncapped observation fields) of ``agent`` for the given chunk/query index."""
        ep = self._episode
        role = ROLE_OF[agent]
        chunk = memory = query = options = ""
        if role == "extractor":
            chunk = ep.chunk_text(min(chunk_index, len(ep.spans) - 1))
        elif role == "profiler":
            memory = prompts.render_memory(ep.fine_memory)
        else:
            q = ep.questions[min(query_index, len(ep.questions) - 1)]
            query, options = self._question_texts(q)
            if self._budget is None:
                memory = prompts.render_memory(ep.fine_memory, ep.coarse)
            else:  # ranked by the dataset's query text, as the selection view ranks it
                memory = prompts.render_budgeted_memory(*self._budget.select(ep.fine_memory, ep.coarse, q.query))
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
        # a conversation between two people (LoCoMo) gets speaker-neutral instructions naming both
        speakers = prompts.dialogue_speakers(self._episode.history)
        prompt, c = self._cap(prompts.build_prompt(role, speakers=speakers, **parts))
        return parts, prompt, capped | c

    def _may_be_capped(self, agent: str) -> bool:
        """Whether the current observation of ``agent`` could exceed ``max_observation_chars``.

        An upper bound from lengths alone (rendering folds white space and
        normalisation never lengthens text), so ``step`` need not build an
        observation nobody reads just to know whether it would be truncated.
        """
        ep = self._episode
        role = ROLE_OF[agent]
        if role == "extractor":
            a, b = ep.spans[min(ep.chunk, len(ep.spans) - 1)]
            h: History = ep.history
            n = sum(map(len, h.contents[a:b])) + sum(map(len, h.roles[a:b])) + 3 * (b - a)
        else:
            n = ep.fine_len + 2 * _MEMORY_OVERHEAD
            if role == "retriever":
                q = ep.current_question
                n += len(ep.coarse) + len(q.query) + sum(map(len, q.options)) + 6 * len(q.options)
        overhead = prompts.prompt_overhead(prompts.dialogue_speakers(ep.history)) + _PROMPT_SLACK
        return n + overhead > self.config.max_observation_chars

    def _obs_key(self, agent: str) -> Any:
        """What ``agent``'s observation depends on: an observation is rebuilt only when
        it changes (an agent observed again after its turn, or after the episode
        ended, gets the same dict)."""
        ep = self._episode
        role = ROLE_OF[agent]
        if role == "extractor":
            return min(ep.chunk, len(ep.spans) - 1)
        if role == "profiler":
            return ep.memory_version
        return ep.memory_version, min(ep.query, len(ep.questions) - 1)

    def _cached_obs(self, agent: str) -> dict[str, Any] | None:
        hit = self._episode.obs_cache.get(agent)
        if hit is not None and hit[0] == self._obs_key(agent):
            return hit[1]
        return None

    def observe(self, agent: str) -> dict[str, Any]:
        if self._episode is None:
            raise RuntimeError("observe() before reset()")
        obs = self._cached_obs(agent)
        if obs is None:
            obs = self._build_obs(agent)
            self._episode.obs_cache[agent] = (self._obs_key(agent), obs)
        return obs

    def _build_obs(self, agent: str) -> dict[str, Any]:
        ep = self._episode
        parts, prompt, capped = self._render(agent, ep.chunk, ep.query)
        ep.observation_truncated |= capped
        return {"role": np.int64(Role.of(agent)), "prompt": prompt, **parts}

    # ------------------------------------------------------------------ step

    def step(self, action: Any) -> None:
        if self._episode is None:
            raise RuntimeError("step() before reset()")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        ep = self._episode
        prompt = self._step_prompt(agent)
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        text, flags = coerce_action(action, self.config.max_action_chars)
        move = ep.act(ROLE_OF[agent], text, flags, self._scorer)
        self._publish(agent, prompt, text, flags, move)
        if ep.done:
            self._end_episode()
        else:
            self.agent_selection = move.next_agent
        self._accumulate_rewards()

    def _step_prompt(self, agent: str) -> Any:
        """The prompt to record for this step: the observed one, else rendered lazily by
        ``trajectory()``. An observation nobody read is built only when it might be capped, so
        the ``observation_truncated`` flag is set as observing would set it."""
        ep = self._episode
        obs = self._cached_obs(agent)
        if obs is None and self._may_be_capped(agent):
            obs = self.observe(agent)
        if not self.config.record_trajectory:
            return None
        return obs["prompt"] if obs is not None else _LazyPrompt(agent, ep.chunk, ep.query)

    def _publish(self, agent: str, prompt: Any, text: str, flags: dict[str, Any], move: Transition) -> None:
        """The step's ``infos``, local scalar reward and trajectory record."""
        ep = self._episode
        role = ROLE_OF[agent]
        if ep.observation_truncated:
            flags["observation_truncated"] = True
        self.infos[agent] = {
            "role": role,
            "question_ids": [q.question_id for q in ep.questions],
            "local_reward": move.local,
            "local_reward_defined": move.local is not None,
            "global_reward": None,
            "parts": move.parts,
            "flags": flags,
            **move.extra,
        }
        if self.config.reward_mode in ("local", "local+global") and move.local is not None:
            self.rewards[agent] += move.local  # an undefined local reward contributes 0
        if ep.steps is not None:
            ep.steps.append({"agent": agent, "role": role, "prompt": prompt, "action": text,
                             "local_reward": move.local, "local_parts": move.parts, "flags": flags, **move.extra})

    def _end_episode(self) -> None:
        """After the last answer: every agent sees the global reward and terminates."""
        ep = self._episode
        g = ep.global_reward
        gparts = {"reward": g, "answers": list(ep.answers)}
        mode = self.config.reward_mode
        for a in self.agents:
            self.infos[a]["global_reward"] = g
            self.infos[a]["global_parts"] = gparts
            if mode == "global":
                self.rewards[a] += g
            elif mode == "local+global":
                self.rewards[a] += g / len(AGENTS)
            self.terminations[a] = True

    # -------------------------------------------------------------- learners

    def _require_episode(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("no episode: call reset() first")
        return self._episode

    @property
    def episode(self) -> Episode:
        """The current :class:`~comam_env.episode.Episode` (after ``reset``)."""
        return self._require_episode()

    @property
    def current_questions(self) -> tuple[Question, ...]:
        """The questions of the current episode (after ``reset``)."""
        return tuple(self._require_episode().questions)

    @property
    def current_question(self) -> Question:
        """The question the retriever answers next (the last one once done)."""
        return self._require_episode().current_question

    @property
    def current_history(self) -> History:
        return self._require_episode().history

    @property
    def chunk_spans(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` message spans of the extractor's chunks."""
        return tuple(self._require_episode().spans)

    @property
    def current_chunk(self) -> tuple[int, int]:
        """The span of the chunk the extractor acts on next (the last one once done)."""
        ep = self._require_episode()
        return ep.spans[min(ep.chunk, len(ep.spans) - 1)]

    @property
    def fine_memory(self) -> str:
        return self._episode.fine_memory if self._episode else ""

    @property
    def coarse_memory(self) -> str:
        return self._episode.coarse if self._episode else ""

    def trajectory(self) -> dict[str, Any]:
        """The episode so far as plain data (docs/architecture.md contract); ``"local"`` holds each
        role's episode-level local reward (:meth:`comam_env.episode.Episode.local_rewards`)."""
        ep = self._require_episode()
        qs = ep.questions
        for s in ep.steps or ():
            p = s["prompt"]
            if type(p) is _LazyPrompt:
                s["prompt"] = self._render(p.agent, p.chunk, p.query)[1]
        return {
            "question_id": qs[0].question_id,
            "question_ids": [q.question_id for q in qs],
            "history_id": ep.history.history_id,
            "history": dict(ep.history_info),
            "chunks": [list(s) for s in ep.spans],
            "steps": [dict(s) for s in ep.steps or ()],
            "local": ep.local_rewards(),
            "global_reward": ep.global_reward,
            "parsed_answer": ep.answers[0]["parsed"] if ep.answers else None,
            "answers": list(ep.answers),
            "memory": {"fine": ep.fine_memory, "coarse": ep.coarse},
            "retrieved": ep.retrieved[0] if len(ep.retrieved) == 1 else list(ep.retrieved),
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
        qs = ep.questions
        lines = [
            f"comam memory env | history {ep.history.history_id} | question(s) {', '.join(q.question_id for q in qs)}",
            f"  chunks {ep.chunk}/{len(ep.spans)} | queries answered {ep.query}/{len(qs)} | "
            f"next: {self.agent_selection if self.agents else '-'}",
            f"  M_f: {len(ep.fine_memory.splitlines())} lines | M_c: {len(ep.coarse.splitlines())} lines",
        ]
        for s in (ep.steps or [])[-3:]:
            act = " ".join(s["action"].split())
            act = act[:97] + "..." if len(act) > 100 else act
            r = "undefined" if s["local_reward"] is None else f"{s['local_reward']:.3f}"
            lines.append(f"  {s['agent']}: local {r} | {act!r}")
        if ep.global_reward is not None:
            lines.append(f"  global (answer) reward {ep.global_reward:.3f}")
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
