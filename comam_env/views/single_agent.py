"""Single-agent Gymnasium view: one role learns, the others follow fixed policies.

What Stable-Baselines3 (and any single-agent library) needs. One
``gymnasium.Env`` episode is one episode of the multi-agent environment (one
question). Steps of the roles that do not learn are played inside
:meth:`SingleAgentEnv.step` / :meth:`SingleAgentEnv.reset` by fixed policies
(:mod:`comam_env.views.heuristics`; default: the similarity heuristic), so the
learner only sees its own turns:

* ``role="extractor"``: one gym step per chunk of the history (several steps
  per episode on long histories);
* ``role="profiler"`` / ``role="retriever"``: one gym step per episode (more if
  the environment asks the same question set several times).

Spaces
------
The learner's selection-view spaces (:mod:`comam_env.views.selection`):
observation ``Dict`` with ``candidates`` ``(K, d)``, ``mask`` ``(K,)`` and, for
the retriever, ``query`` ``(d,)`` and ``options`` ``(4, d)`` — ``role`` is
constant and left out, as are the all-zero ``query``/``options`` of the
extractor and profiler. Action: ``MultiBinary(K)`` (extractor, profiler) or
``MultiDiscrete([2]*K + [4])`` (retriever).

``features="similarity"`` adds compact, precomputed cosine features that a
small MLP learns from much faster than from raw embeddings:
``sim_ref`` ``(K,)`` — cosine of each candidate with the reference of the
pre-ranking rule (query for the retriever, candidate centroid otherwise);
retriever only: ``sim_options`` ``(K, 4)`` — candidate × option cosines,
``query_options`` ``(4,)`` — query × option cosines, and ``option_support``
``(4,)`` — cosine of each option with the centroid of the valid candidates
(how much the whole memory supports it). ``features="similarity-only"``
keeps ``mask`` plus these features and drops the raw embeddings.

Reward
------
The learner's reward as the inner environment defines it under its
``reward_mode`` (local, global or combined — passed through unchanged): the
sum of everything credited to the learner's agent between two of its turns,
i.e. PettingZoo's accumulated reward returned by ``last()``. Rewards that
arrive after the learner's last action (e.g. the global answer reward for the
extractor) are paid on the step that ends the episode. ``info`` holds the
inner env's info for the learner plus ``candidates_dropped`` and, at the end,
``trajectory_global_reward`` (the answer reward of the episode).

Seeding
-------
``reset(seed=s)`` seeds ``self.np_random`` (gymnasium) and the inner env with
``s``. With ``question_ids`` the question is drawn uniformly from that list with
``self.np_random``; ``options={"question_id": ...}`` picks one explicitly.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from comam_env.views.heuristics import get_fixed_policy
from comam_env.roles import ROLE_NAMES, role_of
from comam_env.views.selection import N_OPTIONS, SelectionView

__all__ = ["SingleAgentEnv", "single_agent", "FEATURES"]

FEATURES = ("embeddings", "similarity", "similarity-only")


class SingleAgentEnv(gymnasium.Env):
    """One role of a :class:`SelectionView` as a Gymnasium env (see module doc)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        view: SelectionView,
        role: str = "retriever",
        others: Mapping[str, Any] | None = None,
        *,
        question_ids: Sequence[str] | None = None,
        features: str = "embeddings",
    ) -> None:
        """Args:
        view: the multi-agent selection view.
        role: the learning role (``extractor``, ``profiler``, ``retriever``).
        others: fixed policy per other role: ``"similarity"`` (default), ``"all"``,
            ``"random"``, ``"oracle"`` (gold-evidence selection, :meth:`SelectionView.gold_action`)
            or a callable ``obs -> action`` on selection-view observations.
        question_ids: draw each episode's question from these (e.g. a training split).
        features: ``"embeddings"`` (contract spaces), ``"similarity"`` (plus cosine
            features) or ``"similarity-only"`` (mask + cosine features).
        """
        super().__init__()
        if role not in ROLE_NAMES:
            raise ValueError(f"single_agent: role must be one of {ROLE_NAMES}, got {role!r}")
        if features not in FEATURES:
            raise ValueError(f"single_agent: features must be one of {FEATURES}, got {features!r}")
        others = dict(others or {})
        unknown = set(others) - set(ROLE_NAMES)
        if unknown or role in others:
            raise ValueError(f"single_agent: 'others' keys must be roles other than {role!r}, got {sorted(others)}")
        self.view = view
        self.role = role
        self.features = features
        self.question_ids = list(question_ids) if question_ids is not None else None
        agents = [a for a in view.possible_agents if role_of(a) == role]
        if len(agents) != 1:
            raise ValueError(f"single_agent: expected exactly one {role} agent, found {agents}")
        self.agent = agents[0]
        self._policies: dict[str, Callable] = {}
        for r in ROLE_NAMES:
            if r == role:
                continue
            if others.get(r) == "oracle":  # gold selection, read from the episode (upper reference)
                agent_r = next(a for a in view.possible_agents if role_of(a) == r)
                self._policies[r] = (lambda _obs, _a=agent_r: view.gold_action(_a))
            else:
                self._policies[r] = get_fixed_policy(others.get(r), r)
        K = view.K
        full = view.observation_space(self.agent)
        keys: dict[str, spaces.Space] = {}
        if features != "similarity-only":
            keys["candidates"] = full["candidates"]
        keys["mask"] = full["mask"]
        if role == "retriever" and features != "similarity-only":
            keys["query"] = full["query"]
            keys["options"] = full["options"]
        if features != "embeddings":
            keys["sim_ref"] = spaces.Box(-1.0, 1.0, (K,), np.float32)
            if role == "retriever":
                keys["sim_options"] = spaces.Box(-1.0, 1.0, (K, N_OPTIONS), np.float32)
                keys["query_options"] = spaces.Box(-1.0, 1.0, (N_OPTIONS,), np.float32)
                keys["option_support"] = spaces.Box(-1.0, 1.0, (N_OPTIONS,), np.float32)
        self.observation_space = spaces.Dict(keys)
        self.action_space = view.action_space(self.agent)
        self._last_obs: dict[str, np.ndarray] | None = None

    # -- observation encoding --------------------------------------------------------------------
    def _encode(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k in self.observation_space.spaces:
            if k in obs:
                out[k] = np.asarray(obs[k]).copy()
        if self.features != "embeddings":
            cands = np.asarray(obs["candidates"], np.float32)
            mask = np.asarray(obs["mask"]).astype(bool)
            query = np.asarray(obs["query"], np.float32)
            ref = query if self.role == "retriever" and query.any() else (cands[mask].mean(axis=0) if mask.any() else query)
            # Clip: float32 rounding can push a cosine of unit vectors a hair past 1.
            out["sim_ref"] = np.clip(np.where(mask, cands @ ref, 0.0), -1, 1).astype(np.float32)
            if self.role == "retriever":
                opts = np.asarray(obs["options"], np.float32)
                out["sim_options"] = np.clip((cands @ opts.T) * mask[:, None], -1, 1).astype(np.float32)
                out["query_options"] = np.clip(opts @ query, -1, 1).astype(np.float32)
                centre = cands[mask].mean(axis=0) if mask.any() else np.zeros(cands.shape[1], np.float32)
                norm = float(np.linalg.norm(centre))
                support = opts @ (centre / norm) if norm > 0 else np.zeros(N_OPTIONS, np.float32)
                out["option_support"] = np.clip(support, -1, 1).astype(np.float32)
        return out

    def _zero_obs(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(s.shape, s.dtype) for k, s in self.observation_space.spaces.items()}

    # -- episode driving -------------------------------------------------------------------------
    def _advance(self) -> tuple[dict[str, np.ndarray] | None, float, bool, bool]:
        """Play the other roles until the learner must act; (obs, reward, terminated, truncated)."""
        view = self.view
        reward = 0.0
        truncated = False
        while view.agents:
            agent = view.agent_selection
            done = bool(view.terminations.get(agent) or view.truncations.get(agent))
            if agent == self.agent:
                reward += float(view._cumulative_rewards.get(agent, 0.0))
                if done:
                    truncated = truncated or bool(view.truncations.get(agent))
                    view.step(None)
                    continue
                return self._encode(view.observe(agent)), reward, False, False
            if done:
                view.step(None)
                continue
            view.step(self._policies[role_of(agent)](view.observe(agent)))
        return None, reward, not truncated, truncated

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        opts = dict(options or {})
        if "question_id" not in opts and self.question_ids:
            opts["question_id"] = self.question_ids[int(self.np_random.integers(len(self.question_ids)))]
        inner_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.view.reset(seed=inner_seed, options=opts or None)
        obs, _, terminated, truncated = self._advance()
        if obs is None:  # the learner never acts in this episode (e.g. an empty history)
            raise RuntimeError(
                f"single_agent: the {self.role} never acts in the episode of question {opts.get('question_id')!r}"
            )
        self._last_obs = obs
        return obs, self._info()

    def _info(self) -> dict[str, Any]:
        # Deep copy: callers keep infos, and nested dicts must not alias the env's.
        info = {k: copy.deepcopy(v) for k, v in self.view.infos.get(self.agent, {}).items() if k != "candidate_texts"}
        return info

    def step(self, action):
        if self._last_obs is None:
            raise RuntimeError("single_agent: call reset() before step()")
        info_before = self._info()
        self.view.step(np.asarray(action))
        obs, reward, terminated, truncated = self._advance()
        if obs is None:
            obs = self._zero_obs()
            info = info_before
            traj = self.view.trajectory()
            info["trajectory_global_reward"] = traj.get("global_reward")
            info["question_id"] = traj.get("question_id")
            self._last_obs = None
        else:
            info = self._info()
            self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.view.close()


def single_agent(
    env_id: str,
    role: str = "retriever",
    others: Mapping[str, Any] | None = None,
    *,
    K: int = 64,
    embedder: Any = "hashing",
    view_kwargs: Mapping[str, Any] | None = None,
    question_ids: Sequence[str] | None = None,
    features: str = "embeddings",
    **make_kwargs: Any,
) -> SingleAgentEnv:
    """``comam_env.make(env_id, **make_kwargs)`` wrapped as a single-agent Gymnasium env.

    ``K``, ``embedder`` and ``view_kwargs`` configure the selection view
    (:func:`comam_env.views.selection.wrap`); the rest of the arguments are
    those of :class:`SingleAgentEnv`.
    """
    import comam_env
    from comam_env.views.selection import wrap

    text_env = comam_env.make(env_id, **make_kwargs)
    view = wrap(text_env, K=K, embedder=embedder, **dict(view_kwargs or {}))
    return SingleAgentEnv(view, role=role, others=others, question_ids=question_ids, features=features)
