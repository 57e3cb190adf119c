"""Selection view: the text AEC environment as numeric subset choices (docs/design.md §7).

Third-party RL libraries cannot write free text, so this PettingZoo AEC wrapper
presents every step of the *same* episode as a choice among at most ``K``
embedded candidates and turns the choice back into the text action the inner
(text) environment expects. Rewards therefore come from exactly the same code
as in the text view.

Candidates (per role)
---------------------
* ``extractor``: the turns of the current chunk, one ``Role: text`` line each.
* ``profiler``: the units of the fine-grained memory M_f (``split_units``).
* ``retriever``: the profile M_c first, then M_f, under a memory budget (below).
Exact duplicate texts are shown once (first occurrence): selecting the same
line twice could only add an unmatched unit.

Retriever memory budget
-----------------------
The retriever sees M under the memory budget of :mod:`comam_env.memory_budget` — one rule,
shared with the text view (``EnvConfig.memory_budget``). Its candidates are

1. the units of M_c (the profile), in profile order, flagged ``source = 1``;
2. the units of M_f not already in the profile, flagged ``source = 0``: with
   ``memory_budget = B`` only the ``B − |M_c|`` most similar to the query (cosine of the
   embeddings; ties: the earlier unit), shown in chronological order.

A profile longer than ``B`` keeps its ``B`` units most similar to the query (in profile
order) and leaves no room for M_f (why this makes every role matter: :mod:`comam_env.memory_budget`).
The selection view's default is :data:`DEFAULT_MEMORY_BUDGET` = 16 units (the text view's is
``None``); ``memory_budget=None`` shows everything (the paper's setting: M = M_f followed by M_c,
then the ``K`` pre-ranking below). The profile's units are shown even when M_f holds the same line
(the line is then flagged 1 and not repeated), so the profile always changes what the retriever sees.

Observation (one space for every role, so one network can serve all roles)
--------------------------------------------------------------------------
``Dict`` with

* ``role`` — ``Discrete(3)``: 0 extractor, 1 profiler, 2 retriever;
* ``candidates`` — ``Box(-inf, inf, (K, d), float32)``: candidate embeddings in
  candidate order, rows beyond the valid ones are 0;
* ``mask`` — ``Box(0, 1, (K,), int8)``: 1 for a valid candidate;
* ``query`` — ``Box(-inf, inf, (d,), float32)``: the query embedding
  (retriever only; zeros for the extractor and profiler);
* ``options`` — ``Box(-inf, inf, (4, d), float32)``: option embeddings in
  letter order (retriever only; zeros otherwise, and zero rows for missing options);
* ``source`` — ``Box(0, 1, (K,), int8)``: 1 for a retriever candidate that is a
  profile (M_c) unit, 0 otherwise (always 0 for the extractor and profiler).

Actions (one encoding, documented)
----------------------------------
* extractor, profiler: ``MultiBinary(K)`` — 1 keeps candidate ``i``.
* retriever: ``MultiDiscrete([2]*K + [4])`` — the first ``K`` entries are the
  subset, the last the option index (0 → ``(a)``). An option index beyond the
  question's options is rendered as-is (``(d)`` for a 3-option question) and
  scored wrong by the answer parser, like an invalid text answer.

Actions outside the space raise ``ValueError`` naming the entry: a subset bit that is not
exactly 0 or 1 (NaN, -1, 0.3), an option that is not an integer in ``0..3`` (inf, 2.5), a
non-numeric array (the string ``"0"``) or a wrong length. Bits on masked-out candidates
(which must still be 0 or 1) are ignored. The text action is the chosen
candidates, in candidate order, joined by ``"\\n"``; the retriever's is
``<information>\\nlines\\n</information>\\n<final_answer>(x)</final_answer>``.
For an open-ended question (no options, e.g. LoCoMo) the final answer is the
extractive short answer of the selected lines
(:func:`comam_env.extractive.extractive_answer`: the best-supported line cut to the
span that answers the query — answers are scored by token F1 against short gold
answers, so whole lines scored 0.03–0.20 even when they were the gold evidence);
selecting no line abstains ("Not mentioned in the conversation."), the right
answer to an unanswerable question. The option entry is ignored.

Candidates beyond K (pre-ranking rule)
--------------------------------------
When a role has more than ``K`` candidates, each is scored by the cosine of
its embedding with a reference vector — the query embedding for the
retriever, the centroid of all the role's candidates for the extractor and
profiler (whose inputs do not include the query in the MDP) — and the ``K``
best are kept (ties: earlier candidate first), then shown in their original
order. ``prerank="first"`` keeps the first ``K`` instead (chronological),
``prerank="last"`` the last ``K``. The number dropped is reported in
``infos[agent]["candidates_dropped"]`` (0 when nothing was dropped), with
``n_candidates`` (before dropping) and ``candidate_texts`` (the texts shown, in
row order, so a policy can be inspected).

Embeddings
----------
All lookups go through one :class:`comam_env.embed.EmbeddingCache`; by default
the dataset's cache from :func:`comam_env.embed.embed_dataset` (computed once,
persisted). Extractor outputs are exact copies of turns, so memory units are
cache hits; other texts (e.g. an LLM profiler's lines) are embedded on first use.

An agent that is terminated or truncated observes all zeros (mask 0) with its role.

Construction
------------
``wrap(env, K=64, embedder="hashing", ...)`` — ``env`` is a text-view AEC env
of :mod:`comam_env.env`; ``comam_env.make(env_id, view="selection", **kw)``
calls it with the view keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from comam_env.embed import EmbeddingCache, embed_dataset, get_embedder, message_text
from comam_env.memory_budget import SELECTION_DEFAULT_BUDGET, budgeted_memory, check_budget, memory_units
from comam_env.memory_budget import dedupe as _dedupe
from comam_env.prompts import retriever_action
from comam_env.roles import Role, role_index, role_of
from comam_env.text import split_units

__all__ = ["SelectionView", "SelectionState", "wrap", "N_OPTIONS", "DEFAULT_MEMORY_BUDGET", "render_selection",
           "budgeted_memory"]

#: Size of the option axis of the observation and of the retriever's option action.
N_OPTIONS = 4
PRERANK_RULES = ("similarity", "first", "last")
#: Units of memory the retriever sees by default (profile first; :mod:`comam_env.memory_budget`).
DEFAULT_MEMORY_BUDGET = SELECTION_DEFAULT_BUDGET

# Extractor states by chunk, shared by every view of the process:
# (id(embedding cache), K, prerank, id(history), span) -> (history, cache, state). A chunk's
# candidates depend only on its messages and on how they are encoded, and episodes replay the
# same chunks — every full-history episode of a history re-reads its sessions, every rollout of
# a group its evidence session — so each chunk is encoded once. The objects kept beside the state
# guard against a reused id(); states are never mutated (observe() hands out copies).
_CHUNK_STATES: dict[tuple, tuple[Any, EmbeddingCache, SelectionState]] = {}



@dataclass
class SelectionState:
    """What one agent sees at one step, before and after encoding.

    Attributes:
        role: role name.
        texts: candidate texts shown, in row order (at most K).
        n_candidates: candidates before pre-ranking.
        dropped: ``n_candidates - len(texts)``.
        query: query text ('' for extractor/profiler).
        options: option texts in letter order ('' list for extractor/profiler).
        obs: the encoded observation dict.
        from_profile: per shown text, whether it is a profile (M_c) unit (retriever).
        over_budget: retriever memory units left out by the memory budget.
    """

    role: str
    texts: list[str]
    n_candidates: int
    dropped: int
    query: str
    options: list[str]
    obs: dict[str, Any] = field(repr=False)
    from_profile: list[bool] = field(default_factory=list)
    over_budget: int = 0


def render_selection(role: str, texts: Sequence[str], selected: Sequence[bool], option: int | None, n_options: int,
                     query: str | None = None) -> str:
    """The text action for a selection (see the module docstring).

    ``query`` is the open question the retriever answers: its final answer is the
    extractive span of the selected lines (``None``: the selected lines themselves).
    """
    chosen = [t for t, s in zip(texts, selected) if s]
    lines = "\n".join(chosen)
    if role != "retriever":
        return lines
    if n_options > 0:
        letter = "abcdefgh"[int(option or 0)]
        answer = f"({letter})"
    elif query is not None:
        from comam_env.extractive import extractive_answer

        answer = extractive_answer(query, chosen)
    else:
        answer = lines.replace("\n", " ")
    return retriever_action(lines, answer)


class SelectionView(AECEnv):
    """PettingZoo AEC wrapper: numeric selection view over a text-view env (see module doc)."""

    metadata = {"name": "comam_selection_v0", "render_modes": [], "is_parallelizable": False}

    def __init__(
        self,
        env: AECEnv,
        K: int = 64,
        embedder: Any = "hashing",
        *,
        cache: EmbeddingCache | None = None,
        prerank: str = "similarity",
        persist_embeddings: bool = True,
        cache_dir: str | None = None,
        progress: bool = True,
        infos: str = "full",
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        """Args:
        env: the inner text-view AEC env.
        K: maximum number of candidates per step (rows of the candidate matrix).
        embedder: ``"hashing"``, ``"minilm"`` or an embedder object (``name``, ``dim``, ``encode``).
        cache: an existing :class:`EmbeddingCache` to use (its embedder wins over ``embedder``).
        prerank: rule for more than ``K`` candidates: ``"similarity"``, ``"first"``, ``"last"``.
        persist_embeddings: embed the inner env's dataset once up front and keep it on disk.
        cache_dir: cache root (default: the package cache folder).
        progress: show a progress bar while embedding the dataset.
        infos: ``"full"`` (the inner env's infos plus the selection entries) or
            ``"numeric"`` (only ``candidates_dropped`` and ``n_candidates``, ints, for every
            agent — what libraries that turn infos into tensors, e.g. TorchRL, need).
        """
        super().__init__()
        from comam_env.config import check_int

        check_int("selection view: K", K, 1)  # K=2.5 used to become 2, K=True 1
        if prerank not in PRERANK_RULES:
            raise ValueError(f"selection view: prerank must be one of {PRERANK_RULES}, got {prerank!r}")
        if infos not in ("full", "numeric"):
            raise ValueError(f"selection view: infos must be 'full' or 'numeric', got {infos!r}")
        self.memory_budget = check_budget("selection view: memory_budget", memory_budget)
        self.info_mode = infos
        self.env = env
        self._inner = env.unwrapped  # the raw env: skips the order-enforcing wrapper's __getattr__ per lookup
        self.K = int(K)
        self.prerank = prerank
        if cache is None:
            emb = get_embedder(embedder)
            dataset = getattr(env.unwrapped, "dataset", None)
            if dataset is not None and persist_embeddings:
                cache = embed_dataset(dataset, emb, cache_dir=cache_dir, progress=progress)
            else:
                cache = EmbeddingCache(emb)
        self.cache = cache
        self.dim = int(cache.embedder.dim)
        self.possible_agents = list(env.possible_agents)
        self.metadata = dict(self.metadata)
        self.render_mode = None

        d, K = self.dim, self.K
        self._obs_space = spaces.Dict(
            {
                "role": spaces.Discrete(len(Role)),
                "candidates": spaces.Box(-np.inf, np.inf, (K, d), np.float32),
                "mask": spaces.Box(0, 1, (K,), np.int8),
                "query": spaces.Box(-np.inf, np.inf, (d,), np.float32),
                "options": spaces.Box(-np.inf, np.inf, (N_OPTIONS, d), np.float32),
                "source": spaces.Box(0, 1, (K,), np.int8),
            }
        )
        self._obs_spaces = {a: self._obs_space for a in self.possible_agents}
        self._act_spaces: dict[str, gymnasium.Space] = {}
        for a in self.possible_agents:
            if role_of(a) == "retriever":
                self._act_spaces[a] = spaces.MultiDiscrete([2] * K + [N_OPTIONS])
            else:
                self._act_spaces[a] = spaces.MultiBinary(K)
        self._states: dict[str, SelectionState] = {}
        self._units_memo: dict[str, list[str]] = {}
        self._state_version = -1
        self._version = 0
        self.infos: dict[str, dict] = {}

    # -- delegation ------------------------------------------------------------------------------
    @property
    def unwrapped(self) -> AECEnv:
        return self.env.unwrapped

    @property
    def agents(self) -> list[str]:  # type: ignore[override]
        return self.env.agents

    @agents.setter
    def agents(self, value: list[str]) -> None:  # AECEnv.__init__ never sets it; keep the inner env authoritative
        self.env.agents = value

    @property
    def agent_selection(self) -> str:  # type: ignore[override]
        return self.env.agent_selection

    @agent_selection.setter
    def agent_selection(self, value: str) -> None:
        self.env.agent_selection = value

    @property
    def rewards(self) -> dict[str, float]:  # type: ignore[override]
        return self.env.rewards

    @property
    def terminations(self) -> dict[str, bool]:  # type: ignore[override]
        return self.env.terminations

    @property
    def truncations(self) -> dict[str, bool]:  # type: ignore[override]
        return self.env.truncations

    @property
    def _cumulative_rewards(self) -> dict[str, float]:  # type: ignore[override]
        return self.env._cumulative_rewards

    def observation_space(self, agent: str) -> gymnasium.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.Space:
        return self._act_spaces[agent]

    def trajectory(self) -> dict:
        return self.env.unwrapped.trajectory()

    def __str__(self) -> str:
        return f"SelectionView<{self.env}>"

    def close(self) -> None:
        self.env.close()

    def render(self) -> None:
        return None

    # -- candidates ------------------------------------------------------------------------------
    def _inputs(self, agent: str) -> tuple[str, list[str], str, list[str], int]:
        """(role, candidate texts, query, options, number of leading profile units) for ``agent``.

        Read from the text env's public episode state (``current_history``,
        ``current_chunk``, ``fine_memory``, ``coarse_memory``, ``current_question``)
        rather than re-parsed from the rendered prompt.
        """
        role = role_of(agent)
        inner = self._inner
        if role == "extractor":
            history = inner.current_history
            start, stop = inner.current_chunk
            cands = [message_text(history.roles[i], history.contents[i]) for i in range(start, stop)]
            return role, _dedupe(cands), "", [], 0
        if role == "profiler":
            return role, _dedupe(self._units(inner.fine_memory)), "", [], 0
        q = inner.current_question
        profile, fine = memory_units(self._units(inner.coarse_memory), self._units(inner.fine_memory))
        if self.memory_budget is None:  # the paper's M = M_f followed by M_c (the profile's lines not repeated)
            return role, fine + profile, q.query, list(q.options), -len(profile)
        return role, profile + fine, q.query, list(q.options), len(profile)

    def _units(self, text: str) -> list[str]:
        """``split_units`` with a small memo: M_f is split for the profiler and again for the retriever."""
        hit = self._units_memo.get(text)
        if hit is None:
            if len(self._units_memo) >= 8:
                self._units_memo.clear()
            hit = self._units_memo[text] = split_units(text)
        return hit

    def _build(self, agent: str) -> SelectionState:
        if role_of(agent) != "extractor":
            return self._encode(agent)
        history, span = self._inner.current_history, self._inner.current_chunk
        key = (id(self.cache), self.K, self.prerank, id(history), span)
        hit = _CHUNK_STATES.get(key)
        if hit is not None and hit[0] is history and hit[1] is self.cache:
            return hit[2]
        if len(_CHUNK_STATES) >= 8192:
            _CHUNK_STATES.clear()
        st = self._encode(agent)
        _CHUNK_STATES[key] = (history, self.cache, st)
        return st

    def _encode(self, agent: str) -> SelectionState:
        role, texts, query, options, n_profile = self._inputs(agent)
        n = len(texts)
        K, d = self.K, self.dim
        emb = self.cache.lookup(texts) if texts else np.zeros((0, d), np.float32)
        q_vec = self.cache.lookup([query])[0] if (role == "retriever" and query) else np.zeros(d, np.float32)
        # from_profile: profile units lead under a budget (n_profile > 0) and trail without one (< 0)
        src = np.zeros(n, dtype=bool)
        if n_profile > 0:
            src[:n_profile] = True
        elif n_profile < 0:
            src[n + n_profile:] = True
        over_budget = 0
        if role == "retriever" and self.memory_budget is not None and n > self.memory_budget:
            keep_p, keep_f = budgeted_memory(texts[:n_profile], texts[n_profile:], emb[:n_profile], emb[n_profile:],
                                             q_vec, self.memory_budget)
            keep = np.concatenate([keep_p, n_profile + keep_f]).astype(np.int64)
            over_budget = n - len(keep)
            texts, emb, src = [texts[i] for i in keep], emb[keep], src[keep]
            n = len(texts)
        if n > K:
            if self.prerank == "first":
                keep = np.arange(K)
            elif self.prerank == "last":
                keep = np.arange(n - K, n)
            else:
                ref = q_vec if role == "retriever" and q_vec.any() else emb.mean(axis=0)
                scores = emb @ ref
                # Stable sort on -score: equal scores keep the earlier candidate.
                keep = np.sort(np.argsort(-scores, kind="stable")[:K])
            texts = [texts[i] for i in keep]
            emb = emb[keep]
            src = src[keep]
        cand = np.zeros((K, d), np.float32)
        cand[: len(texts)] = emb
        mask = np.zeros(K, np.int8)
        mask[: len(texts)] = 1
        opt = np.zeros((N_OPTIONS, d), np.float32)
        if role == "retriever" and options:
            shown = options[:N_OPTIONS]
            opt[: len(shown)] = self.cache.lookup(shown)
        source = np.zeros(K, np.int8)
        source[: len(texts)] = src
        obs = {"role": role_index(role), "candidates": cand, "mask": mask, "query": q_vec.astype(np.float32, copy=True),
               "options": opt, "source": source}
        return SelectionState(role, texts, n, n - len(texts), query, options, obs, src.tolist(), over_budget)

    def state_of(self, agent: str) -> SelectionState:
        """The (cached) selection state of ``agent`` at the current step."""
        if self._state_version != self._version:
            self._states = {}
            self._state_version = self._version
        st = self._states.get(agent)
        if st is None:
            st = self._states[agent] = self._build(agent)
        return st

    def _refresh_infos(self) -> None:
        self._version += 1
        if self.info_mode == "numeric":
            infos = {a: {"candidates_dropped": 0, "n_candidates": 0} for a in self.env.infos}
        else:
            infos = {a: dict(i) for a, i in self.env.infos.items()}
        cur = self.env.agent_selection if self.env.agents else None
        if cur is not None and cur in infos and not (self.env.terminations.get(cur) or self.env.truncations.get(cur)):
            st = self.state_of(cur)
            infos[cur].update(candidates_dropped=st.dropped, n_candidates=st.n_candidates)
            if self.info_mode == "full":
                infos[cur]["candidate_texts"] = list(st.texts)
                if st.role == "retriever":
                    infos[cur]["over_budget"] = st.over_budget
        self.infos = infos

    # -- AEC API ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.env.reset(seed=seed, options=options)
        self._refresh_infos()

    def _final_obs(self, agent: str) -> dict[str, Any]:
        """Observation of a terminated/truncated agent: all zeros (no candidates) with its role."""
        space = self._obs_spaces[agent]
        obs = {k: np.zeros(sp.shape, sp.dtype) for k, sp in space.spaces.items() if k != "role"}
        return {"role": role_index(agent), **obs}

    def observe(self, agent: str) -> dict[str, Any]:
        if self.env.terminations.get(agent) or self.env.truncations.get(agent):
            # The episode is over for this agent: nothing to choose from, and building
            # candidates of the final memory would only cost time.
            return self._final_obs(agent)
        obs = self.state_of(agent).obs
        # Copies: a caller mutating an observation must not corrupt the cached state.
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in obs.items()}

    def decode(self, agent: str, action: Any) -> str:
        """The text action a selection ``action`` of ``agent`` stands for at the current step."""
        st = self.state_of(agent)
        a = np.asarray(action).reshape(-1)
        K = self.K
        if a.dtype.kind not in "biuf":  # strings ("0" is not 0), objects, complex: outside the space
            raise ValueError(f"{agent}: action must be numeric (an array of 0/1 bits), got dtype {a.dtype}")
        if st.role == "retriever":
            if a.shape[0] != K + 1:
                raise ValueError(f"{agent}: action must have {K + 1} entries (K subset bits + option), got {a.shape[0]}")
            option = a[K]
            if not (np.isfinite(option) and option == int(option) and 0 <= option < N_OPTIONS):
                raise ValueError(f"{agent}: option index {option.item()!r} is not an integer in 0..{N_OPTIONS - 1}")
            option = int(option)
        else:
            if a.shape[0] != K:
                raise ValueError(f"{agent}: action must have {K} subset bits, got {a.shape[0]}")
            option = None
        subset = a[:K]
        if a.dtype.kind != "b" and not ((subset == 0) | (subset == 1)).all():
            # NaN, -1 or 0.3 used to count as "keep": every bit must be exactly 0 or 1
            bad = int(np.flatnonzero((subset != 0) & (subset != 1))[0])
            raise ValueError(f"{agent}: subset bit {bad} is {subset[bad].item()!r}; every bit must be 0 or 1")
        bits = subset[: len(st.texts)] != 0
        return render_selection(st.role, st.texts, bits, option, len(st.options),
                                query=st.query if st.role == "retriever" and not st.options else None)

    def gold_action(self, agent: str) -> np.ndarray:
        """The action selecting exactly the gold-evidence candidates (and the gold option).

        A candidate is gold when its text is an evidence message of the episode's
        question(s) rendered as a memory line (:func:`comam_env.embed.message_text`):
        for the extractor the evidence of every question of the episode, for the
        retriever that of the question it answers. The profiler has no evidence:
        its gold action keeps every candidate (M_c = M_f). Uses gold data — for
        tests, oracle upper bounds and ``others={"extractor": "oracle"}``, never
        for a learner's observation.
        """
        st = self.state_of(agent)
        inner = self._inner
        keep = np.zeros(self.K, dtype=np.int64)
        if st.role == "profiler":
            keep[: len(st.texts)] = 1
            return keep.astype(np.int8)
        questions = inner.current_questions if st.role == "extractor" else (inner.current_question,)
        history = inner.current_history
        gold = {
            message_text(history.roles[i], history.contents[i])
            for q in questions
            for i in (q.evidence or ())
            if 0 <= i < len(history)
        }
        for j, t in enumerate(st.texts):
            keep[j] = t in gold
        if st.role == "extractor":
            return keep.astype(np.int8)
        q = inner.current_question
        option = "abcdefgh".index(q.answer) if q.is_multiple_choice and q.answer in "abcdefgh"[:N_OPTIONS] else 0
        return np.concatenate([keep, [option]])

    def step(self, action: Any) -> None:
        agent = self.env.agent_selection
        if self.env.terminations.get(agent) or self.env.truncations.get(agent):
            self.env.step(None)
        else:
            self.env.step(self.decode(agent, action))
        self._refresh_infos()


def wrap(env: AECEnv, K: int = 64, embedder: Any = "hashing", **kwargs: Any) -> SelectionView:
    """Wrap a text-view env into the selection view (see :class:`SelectionView`)."""
    return SelectionView(env, K=K, embedder=embedder, **kwargs)
