"""One episode of the text env, stepped turn by turn: the driver every adapter shares.

:class:`RoleEpisode` wraps an env (any ``comam_env.make`` result, text view) and exposes an
episode as a sequence of *turns* — ``(agent, role, index, observation)`` where ``index`` counts the
role's own steps (the extractor acts once per chunk, the retriever once per query). Adapters ask
for the next turn, answer it with text, and read the per-agent returns and the env's trajectory at
the end. Agents that are done are stepped with ``None`` on the way (AEC protocol), and the scalar
rewards of every step are summed per agent, so :attr:`RoleEpisode.returns` equals the returns
:func:`comam_env.policies.run_episode` reports.

Fixed policies are the callables of :mod:`comam_env.policies`: ``policy(agent, observation, env)
-> str``. :meth:`RoleEpisode.play` answers every turn it does not stop at with them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from comam_env.roles import ROLE_NAMES as ROLES
from comam_env.roles import role_of

__all__ = ["ROLES", "Turn", "RoleEpisode", "role_of", "check_role", "local_rewards", "fixed_policies", "make_env_factory"]

#: Role names in pipeline order (the env's agents are ``<role>_0``).
TextPolicy = Callable[[str, Any, Any], str]


def check_role(role: str) -> str:
    """``role`` if it names a role, else a ``ValueError`` listing the roles."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {list(ROLES)}")
    return role


def fixed_policies(fixed: TextPolicy | Mapping[str, TextPolicy] | None) -> dict[str, TextPolicy]:
    """role → fixed text policy. ``None`` = :class:`comam_env.policies.CopyAllPolicy` for every role
    (no gold data: a fixed upstream that keeps everything); one callable serves every role; a
    mapping may name some roles, the others get the copy-all policy."""
    from comam_env.policies import CopyAllPolicy

    default = CopyAllPolicy()
    if fixed is None:
        return {r: default for r in ROLES}
    if callable(fixed):
        return {r: fixed for r in ROLES}
    unknown = sorted(set(fixed) - set(ROLES))
    if unknown:
        raise ValueError(f"fixed policies for unknown roles {unknown}; roles are {list(ROLES)}")
    return {r: fixed.get(r, default) for r in ROLES}


def make_env_factory(env: str | Callable[[], Any], env_kwargs: Mapping[str, Any] | None = None) -> Callable[[], Any]:
    """A zero-argument env constructor from an env id (+ ``comam_env.make`` keyword arguments) or a
    callable. Envs built from one id share the loaded dataset (it is loaded once)."""
    if callable(env):
        if env_kwargs:
            raise ValueError("env_kwargs are only used with an env id; pass them to your factory instead")
        return env
    if not isinstance(env, str):
        raise TypeError(f"env must be an env id or a zero-argument callable, got {type(env).__name__}")
    import comam_env

    kwargs = dict(env_kwargs or {})
    if kwargs.get("view", "text") != "text":
        raise ValueError("the LLM adapters need the text view (view='text')")
    cache: dict[str, Any] = {}

    def factory() -> Any:
        if "dataset" in cache:
            return comam_env.make(env, **{**kwargs, "dataset": cache["dataset"]})
        made = comam_env.make(env, **kwargs)
        cache["dataset"] = made.unwrapped.dataset
        return made

    return factory


def local_rewards(record: Mapping[str, Any]) -> dict[str, float | None]:
    """Each role's episode-level local reward, ``env.trajectory()["local"]`` (``None`` when
    undefined, e.g. no gold evidence)."""
    return dict(record["local"])


@dataclass(frozen=True)
class Turn:
    """The agent to act now and what it sees."""

    agent: str
    role: str
    index: int
    """How many steps this role has taken before this one in the episode (0-based)."""
    observation: Any


class RoleEpisode:
    """Turn-by-turn driver of one episode at a time on ``env`` (see the module docstring)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.returns: dict[str, float] = {}
        self.counts: Counter = Counter()
        self._turn: Turn | None = None
        self.last_info: dict[str, Any] = {}
        """The acting agent's ``infos`` entry right after the last :meth:`act`."""
        self.last_rewards: dict[str, float] = {}
        """Every agent's scalar reward collected by the last :meth:`act` (its step and the
        end-of-episode steps it triggered)."""

    def reset(self, question_id: str | None = None, seed: int | None = None) -> Turn:
        """Start an episode (on ``question_id`` when given) and return its first turn."""
        options = {"question_id": question_id} if question_id is not None else None
        self.env.reset(seed=seed, options=options)
        self.returns = {a: 0.0 for a in self.env.possible_agents}
        self.counts = Counter()
        self._turn = None
        self.last_info, self.last_rewards = {}, {}
        turn = self.turn()
        if turn is None:  # every episode has at least the three agents' steps
            raise RuntimeError("the env ended its episode at reset")
        return turn

    @property
    def done(self) -> bool:
        return not self.env.agents

    def _add_rewards(self) -> None:
        for agent, reward in self.env.rewards.items():
            self.returns[agent] = self.returns.get(agent, 0.0) + float(reward)

    def turn(self) -> Turn | None:
        """The current turn (``None`` once the episode is over); finished agents are stepped past."""
        if self._turn is not None:
            return self._turn
        env = self.env
        while env.agents:
            agent = env.agent_selection
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                self._add_rewards()
                continue
            role = role_of(agent)
            self._turn = Turn(agent, role, self.counts[role], obs)
            return self._turn
        return None

    def act(self, action: Any) -> Turn | None:
        """Answer the current turn with ``action`` (text) and return the next turn."""
        turn = self.turn()
        if turn is None:
            raise RuntimeError("the episode is over; reset first")
        before = dict(self.returns)
        self.env.step(action)
        self._add_rewards()
        self.last_info = dict(self.env.infos.get(turn.agent, {}))  # before finished agents are stepped past
        self.counts[turn.role] += 1
        self._turn = None
        nxt = self.turn()
        self.last_rewards = {a: self.returns[a] - before.get(a, 0.0) for a in self.returns}
        return nxt

    def play(self, fixed: Mapping[str, TextPolicy], until: tuple[str, int] | None = None) -> Turn | None:
        """Answer turns with the ``fixed`` policies until the turn ``until = (role, index)`` comes up
        (returned, unanswered) or the episode ends (``None``)."""
        turn = self.turn()
        while turn is not None:
            if until is not None and (turn.role, turn.index) == until:
                return turn
            turn = self.act(fixed[turn.role](turn.agent, turn.observation, self.env))
        return None

    def trajectory(self) -> dict[str, Any]:
        """The env's record of the episode (``env.unwrapped.trajectory()``)."""
        return self.env.unwrapped.trajectory()

    def local_rewards(self) -> dict[str, float | None]:
        """:func:`local_rewards` of this episode's trajectory."""
        return local_rewards(self.trajectory())

    def role_return(self, role: str) -> float:
        """The summed scalar reward of ``role``'s agent (the env's ``reward_mode`` decides the mix)."""
        return self.returns[f"{check_role(role)}_0"]
