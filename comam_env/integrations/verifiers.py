"""The memory pipeline as a verifiers 0.4 multi-agent environment, run fully in process.

    from comam_env.integrations.verifiers import evaluate
    results = evaluate("synthetic-32k", model="tiny", base_url="http://127.0.0.1:8001/v1", limit=2)
    results[0].local, results[0].global_reward     # per-role local rewards, the answer reward

What it is (verifiers' own v1 API, ``import verifiers.v1 as vf``):

* :class:`ComamEnv` (``vf.Env[ComamEnvConfig]``): one episode of the comam text env per task. The
  three roles are the config's three ``vf.AgentConfig`` seats ``extractor``, ``profiler`` and
  ``retriever``; ``run()`` opens one ``agent.interaction()`` per seat and relays the env's turns
  (:class:`comam_env.integrations.episodes.RoleEpisode`): each env decision — an extractor chunk,
  the profile, a retriever answer — is one user turn of its role's interaction, the model's reply
  is the action. So an episode is three traces, one per role, the extractor's with one turn per
  chunk.
* Rewards, in ``finalize()`` (verifiers' cross-agent judgement hook), from the env's own channels
  of that episode: each role's trace gets reward ``local`` = ``env.trajectory()["local"][role]``
  (eq. 9–11; not recorded when the env says it is undefined, e.g. no gold evidence — metric
  ``local_reward_defined`` = 0) and reward ``global`` = the answer reward
  ``trajectory()["global_reward"]`` (eq. 12), weighted ``local_weight`` / ``global_weight``
  (defaults 1 and 1/3: ``trace.reward`` = local + global/3, the env's default ``local+global``
  equal share). Unweighted metrics ``local_reward``, ``global_reward``, ``env_return`` (the role's
  summed scalar reward under the env's ``reward_mode``) and ``decisions`` ride along;
  ``trace.info["comam"]`` keeps the question, the role's per-decision rewards and the episode's
  local rewards. :func:`run_episodes` / :func:`evaluate` return one :class:`EpisodeResult` per
  episode: the per-role local rewards, the global reward and the verifiers ``Episode``.
* :class:`ComamTaskset`: one task per question of a ``comam_env.make`` env id
  (``question_ids`` / ``limit`` select), ``seed`` for the env's reset.

Offline by construction — why there is a harness here. verifiers runs every seat through a
*harness* program in a *runtime*. Its built-in tool-less ``null`` harness prepares a PEP 723 chat
script in ``setup()`` with ``runtime.prepare_uv_script`` (``verifiers/v1/harnesses/null/harness.py``),
which runs ``uv sync --script`` with ``UV_OFFLINE=false`` forced and installs ``uv`` itself from
astral.sh when missing (``verifiers/v1/runtimes/base.py``, ``Runtime.prepare_uv_script`` and
``_ENSURE_UV``): network at run time, and no ``uv`` on this machine. ``Harness.launch``'s contract
allows a loop "in-process instead of launching a program, as long as every model call goes through
``endpoint`` + ``secret``" (``verifiers/v1/harness.py``). :class:`InProcessHarness` is that loop:
``setup()`` prepares nothing, ``launch``/``resume`` post the turn to verifiers' interception server
on 127.0.0.1 (which records it on the trace and forwards it to the configured OpenAI-compatible
endpoint) and return the reply as a synthetic ``ProgramResult``. Each env decision's prompt is
self-contained, so ``resume`` sends only the new turn (plus the task's system prompt), not the
replayed conversation — the one prompt :class:`agents.llm.LLMPolicy` would be given. The seats use
verifiers' ``subprocess`` runtime, whose ``start()`` only creates a scratch folder under
``~/.cache/verifiers`` (``verifiers/v1/runtimes/subprocess.py``); the harness never calls
``runtime.run``, so no process is spawned (tests/integrations/test_verifiers.py runs episodes with
every subprocess and every non-loopback connection made to raise). The seats refuse any other
runtime (``AgentConfig``'s default is the remote ``prime`` sandbox) and any other harness.
Each decision's action is the model's reply stripped of surrounding whitespace (verifiers'
``Segment.last_reply``).

Plugin ids: verifiers resolves tasksets and harnesses by top-level module name
(``verifiers/v1/utils/loaders.py``, ``_import_plugin``: a dotted id cannot resolve), so importing
this module registers itself as ``verifiers.v1.tasksets.comam_memory`` and
``verifiers.v1.harnesses.comam_memory`` (:data:`TASKSET_ID` = ``"comam-memory"``), exporting
exactly one ``Taskset``, ``Harness`` and ``Env`` as verifiers requires. verifiers' ``vf eval`` CLI
is not wired in: a fresh CLI process looks the id up before anything imports this module.

Needs ``verifiers>=0.4,<0.5`` (``pip install "comam-env[integrations]"``); ``import comam_env``
never imports this module.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import httpx
import verifiers.v1 as vf
from pydantic import Field, model_validator
from verifiers.v1.clients import EvalClientConfig, ModelContext
from verifiers.v1.errors import HarnessError
from verifiers.v1.interception import InterceptionServerConfig
from verifiers.v1.runtimes import ProgramResult, SubprocessConfig
from verifiers.v1.types import SamplingConfig

from comam_env.integrations.episodes import ROLES, RoleEpisode, make_env_factory
from comam_env.roles import role_of

__all__ = ["TASKSET_ID", "ComamTaskData", "ComamTask", "ComamTasksetConfig", "ComamTaskset",
           "InProcessHarnessConfig", "InProcessHarness", "ComamEnvConfig", "ComamEnv", "EpisodeResult",
           "make_env", "model_context", "run_episodes", "evaluate", "mean"]

#: The verifiers plugin id of the taskset (and of its bundled harness).
TASKSET_ID = "comam-memory"
_MODULE = TASKSET_ID.replace("-", "_")
#: Where the interception reads the model endpoint's API key (unset = "EMPTY"; a local server needs none).
API_KEY_VAR = "COMAM_VERIFIERS_API_KEY"


# ---------------------------------------------------------------------------------------- tasks


class ComamTaskData(vf.TaskData):
    """One episode: the question it answers and the env's reset seed. ``prompt`` stays ``None``:
    the env opens every role's conversation with its own prompts."""

    question_id: str
    seed: int | None = None


class ComamTask(vf.Task[ComamTaskData, vf.State, vf.TaskConfig]):
    """A memory-pipeline episode (no tools, no container, scored in ``ComamEnv.finalize``)."""

    @property
    def key(self) -> str:
        return f"{self.data.question_id}@{self.data.seed}"


class ComamTasksetConfig(vf.TasksetConfig):
    id: str = TASKSET_ID
    env: str = Field("synthetic-32k", description="comam env id (`comam-env envs`), text view")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for comam_env.make")
    question_ids: list[str] | None = Field(None, description="questions to play (default: all, in the env's order)")
    limit: int | None = Field(None, ge=1, description="at most this many questions")
    seed: int | None = Field(0, description="reset seed of every episode (None: the env's own)")


class ComamTaskset(vf.Taskset[ComamTask, ComamTasksetConfig]):
    """One :class:`ComamTask` per question of the configured comam env."""

    def __init__(self, config: ComamTasksetConfig) -> None:
        super().__init__(config)
        self.env_factory = make_env_factory(config.env, config.env_kwargs)
        env = self.env_factory()  # load the dataset now: a missing one fails here, not in an episode
        known = list(env.unwrapped.question_ids)
        if config.question_ids is not None:
            have = set(known)
            unknown = [q for q in config.question_ids if q not in have]
            if unknown:
                raise ValueError(f"ComamTasksetConfig.question_ids: {unknown[:5]} are not questions of env "
                                 f"{config.env!r} (kwargs {config.env_kwargs}); it has {len(known)}, e.g. {known[:3]}")
            known = list(config.question_ids)
        self.question_ids = known[: config.limit] if config.limit else known
        env.close()

    def load(self) -> Iterable[ComamTask]:
        for qid in self.question_ids:
            yield ComamTask(ComamTaskData(id=qid, name=qid, question_id=qid, seed=self.config.seed), self.config.task)


# ---------------------------------------------------------------------------------------- harness


class InProcessHarnessConfig(vf.HarnessConfig):
    id: str = TASKSET_ID
    request_timeout: float = Field(600.0, gt=0, description="seconds one model call may take")


class InProcessHarness(vf.Harness[InProcessHarnessConfig]):
    """A chat loop run inside the env's process (see the module docstring): one model call per
    segment through the interception endpoint, nothing installed, no process, no tools."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True
    SUPPORTS_MCP = False
    SUPPORTS_TOOL_INTERCEPTION = False
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def setup(self, runtime) -> None:
        """Nothing to prepare (the built-in harnesses install a uv script here)."""

    async def launch(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, tool_interception_url=None):
        system, prompt = self.resolve_prompt(data)
        if prompt is None:
            raise HarnessError(f"harness {self.config.id!r}: the task has no prompt to answer")
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else \
            [m.model_dump(exclude_none=True) for m in prompt]
        return await self._call(ctx, endpoint, secret, system, messages)

    async def resume(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, messages,
                     tool_interception_url=None):
        # every env decision's prompt is self-contained: send the new turn only (no replayed history)
        return await self._call(ctx, endpoint, secret, data.system_prompt,
                                [m.model_dump(exclude_none=True) for m in messages])

    async def _call(self, ctx, endpoint: str, secret: str, system: str | None, messages: list[dict]) -> ProgramResult:
        body = {"model": ctx.model, "messages": ([{"role": "system", "content": system}] if system else []) + messages}
        # trust_env=False: the interception is on loopback; proxy variables must not reroute it
        async with httpx.AsyncClient(trust_env=False, timeout=self.config.request_timeout) as client:
            try:
                resp = await client.post(f"{endpoint.rstrip('/')}/chat/completions", json=body,
                                         headers={"Authorization": f"Bearer {secret}"})
            except httpx.HTTPError as exc:
                raise HarnessError(f"harness {self.config.id!r}: the interception at {endpoint} is unreachable: "
                                   f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise HarnessError(f"harness {self.config.id!r}: model call failed with HTTP {resp.status_code}: "
                               f"{resp.text[-1000:]}")
        try:
            reply = resp.json()["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise HarnessError(f"harness {self.config.id!r}: malformed chat completion: {resp.text[:500]}") from exc
        return ProgramResult(exit_code=0, stdout=str(reply), stderr="")


def _register_plugin() -> None:
    """Make this module resolvable as verifiers' ``comam-memory`` taskset and harness."""
    module = sys.modules[__name__]
    for group in ("verifiers.v1.tasksets", "verifiers.v1.harnesses"):
        sys.modules.setdefault(f"{group}.{_MODULE}", module)


_register_plugin()

# ---------------------------------------------------------------------------------------- env


def _seat() -> vf.AgentConfig:
    return vf.AgentConfig(harness={"id": TASKSET_ID}, runtime=SubprocessConfig())


class ComamEnvConfig(vf.EnvConfig):
    """The run's env block: the three seats (each an in-process harness on the local runtime) and
    the reward weights. Seats accept verifiers' per-seat overrides (``model``, ``client``,
    ``sampling``)."""

    taskset: ComamTasksetConfig = ComamTasksetConfig()
    extractor: vf.AgentConfig = _seat()
    profiler: vf.AgentConfig = _seat()
    retriever: vf.AgentConfig = _seat()
    local_weight: float = Field(1.0, ge=0, description="weight of each trace's `local` reward")
    global_weight: float = Field(1.0 / 3.0, ge=0, description="weight of each trace's `global` reward "
                                                              "(1/3: the env's equal share)")
    interception: InterceptionServerConfig = InterceptionServerConfig()

    @model_validator(mode="after")
    def _offline_seats(self) -> ComamEnvConfig:
        if self.taskset.id != TASKSET_ID:
            raise ValueError(f"ComamEnvConfig.taskset.id: ComamEnv plays the {TASKSET_ID!r} taskset, "
                             f"got {self.taskset.id!r}")
        for role in ROLES:
            seat = getattr(self, role)
            if not isinstance(seat.runtime, SubprocessConfig):
                raise ValueError(f"ComamEnvConfig.{role}.runtime: the in-process harness runs on the local "
                                 f"'subprocess' runtime, got {seat.runtime.type!r}")
            if seat.harness is not None and seat.harness.id != TASKSET_ID:
                raise ValueError(f"ComamEnvConfig.{role}.harness: only {TASKSET_ID!r} (in process) runs offline; "
                                 f"got {seat.harness.id!r}, whose setup installs a uv script from the network")
        return self


class ComamEnv(vf.Env[ComamEnvConfig]):
    """The memory pipeline as a verifiers multi-agent env (see the module docstring)."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        if not isinstance(task, ComamTask):
            raise TypeError(f"ComamEnv plays ComamTask episodes, got {type(task).__name__}")
        data = task.data
        env = self.taskset.env_factory()
        try:
            episode = RoleEpisode(env)
            turn = episode.reset(data.question_id, data.seed)
            steps: dict[str, list[dict]] = {r: [] for r in ROLES}
            seat_task = ComamTask(data, task.config)  # prompt-less: the env opens every conversation
            async with (agents.extractor.interaction(seat_task) as extractor,
                        agents.profiler.interaction(seat_task) as profiler,
                        agents.retriever.interaction(seat_task) as retriever):
                seats = {"extractor": extractor, "profiler": profiler, "retriever": retriever}
                while turn is not None:
                    seat = seats[turn.role]
                    segment = await seat.turn(str(turn.observation["prompt"]))
                    if segment.terminated:
                        error = seat.trace.last_error
                        why = f"{error.type}: {error.message}" if error else f"stop: {seat.trace.stop_condition}"
                        raise RuntimeError(f"question {data.question_id}: the {turn.role} agent's run ended at its "
                                           f"decision {turn.index} before the episode did ({why})")
                    agent = turn.agent
                    turn = episode.act(segment.last_reply)
                    steps[role_of(agent)].append({"reward": episode.last_rewards.get(agent, 0.0),
                                                        "local_reward": episode.last_info.get("local_reward")})
                record = episode.trajectory()
                local = {r: (None if v is None else float(v)) for r, v in record["local"].items()}
                summary = {"question_id": data.question_id, "seed": data.seed, "local": local,
                           "global_reward": float(record["global_reward"])}
                for role, seat in seats.items():
                    seat.trace.info["comam"] = {**summary, "role": role, "steps": steps[role],
                                                "env_return": float(episode.role_return(role))}
        finally:
            env.close()

    async def finalize(self, task: vf.Task, episode: vf.Episode) -> None:
        by_agent = episode.by_agent
        for role in ROLES:
            traces = by_agent.get(role, [])
            if len(traces) != 1 or "comam" not in traces[0].info:
                raise ValueError(f"episode {episode.id}: expected one finished {role} trace carrying the env's "
                                 f"record, found {len(traces)}")
            trace = traces[0]
            info = trace.info["comam"]
            local, glob = info["local"][role], info["global_reward"]
            if local is not None:
                trace.record_reward("local", local, self.config.local_weight)
                trace.record_metric("local_reward", local)
            trace.record_metric("local_reward_defined", float(local is not None))
            trace.record_reward("global", glob, self.config.global_weight)
            trace.record_metric("global_reward", glob)
            trace.record_metric("env_return", info["env_return"])
            trace.record_metric("decisions", float(len(info["steps"])))


# ---------------------------------------------------------------------------------------- running


@dataclass
class EpisodeResult:
    """One played episode: the env's per-role local rewards and answer reward, each role trace's
    weighted verifiers reward, and the verifiers ``Episode`` itself."""

    question_id: str
    seed: int | None
    ok: bool
    local: dict[str, float | None] = field(default_factory=dict)
    global_reward: float | None = None
    role_rewards: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    episode: Any = None

    @classmethod
    def from_episode(cls, episode: Any) -> EpisodeResult:
        data = episode.task.data
        info = next((t.info["comam"] for t in episode.traces if "comam" in t.info), None)
        return cls(question_id=data.question_id, seed=data.seed, ok=bool(episode.ok),
                   local=dict(info["local"]) if info else {},
                   global_reward=info["global_reward"] if info else None,
                   role_rewards={t.agent.name: float(t.reward) for t in episode.traces},
                   errors=[f"{e.type}: {e.message}" for e in episode.errors]
                   + [f"{t.agent.name}: {e.type}: {e.message}" for t in episode.traces for e in t.errors],
                   episode=episode)


def _check_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL of an OpenAI-compatible endpoint "
                         f"(e.g. http://127.0.0.1:8001/v1), got {base_url!r}")
    return base_url.rstrip("/")


def make_env(env: str = "synthetic-32k", *, env_kwargs: Mapping[str, Any] | None = None,
             question_ids: list[str] | None = None, limit: int | None = None, seed: int | None = 0,
             **config: Any) -> ComamEnv:
    """A :class:`ComamEnv` over a comam env id; ``config`` sets other :class:`ComamEnvConfig` fields
    (``global_weight``, per-seat ``extractor={"sampling": {...}}``, ...)."""
    taskset = ComamTasksetConfig(env=env, env_kwargs=dict(env_kwargs or {}), question_ids=question_ids,
                                 limit=limit, seed=seed)
    return ComamEnv(ComamEnvConfig(taskset=taskset, **config))


def model_context(model: str, base_url: str, *, temperature: float | None = None, max_tokens: int | None = None,
                  top_p: float | None = None) -> ModelContext:
    """The run's model: ``model`` served at ``base_url`` (OpenAI chat completions)."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty model id, got {model!r}")
    sampling = {k: v for k, v in {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}.items()
                if v is not None}
    client = EvalClientConfig(base_url=_check_url(base_url), api_key_var=API_KEY_VAR)
    return ModelContext(model=model, client=client, sampling=SamplingConfig(**sampling))


async def run_episodes(env: ComamEnv, ctx: ModelContext, *, rollouts: int = 1,
                       max_concurrent: int | None = 1) -> list[EpisodeResult]:
    """Play ``rollouts`` episodes of every task of ``env``'s taskset under verifiers' own episode
    machinery (``Env.serving`` + ``Env.run_slot``), at most ``max_concurrent`` at once."""
    if not isinstance(env, ComamEnv):
        raise TypeError(f"run_episodes needs a ComamEnv, got {type(env).__name__}")
    if isinstance(rollouts, bool) or not isinstance(rollouts, int) or rollouts < 1:
        raise ValueError(f"rollouts must be a positive integer, got {rollouts!r}")
    semaphore = asyncio.Semaphore(max_concurrent) if max_concurrent else None
    async with env.serving():
        slots = [slot for task in env.taskset for slot in env.slots(task, rollouts)]
        episodes = await asyncio.gather(*(env.run_slot(slot, ctx, semaphore) for slot in slots))
    return [EpisodeResult.from_episode(e) for e in episodes]


def evaluate(env: str = "synthetic-32k", *, model: str, base_url: str, rollouts: int = 1,
             max_concurrent: int | None = 1, temperature: float | None = None, max_tokens: int | None = None,
             **make_kwargs: Any) -> list[EpisodeResult]:
    """Build the env (:func:`make_env`), play its tasks (:func:`run_episodes`) and return the results."""
    ctx = model_context(model, base_url, temperature=temperature, max_tokens=max_tokens)
    return asyncio.run(run_episodes(make_env(env, **make_kwargs), ctx, rollouts=rollouts,
                                    max_concurrent=max_concurrent))


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (``None`` if none)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else None
