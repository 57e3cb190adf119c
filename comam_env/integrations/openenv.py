"""The text env served per the OpenEnv spec (``openenv-core`` 0.3), and its typed client.

    comam-env serve --env synthetic-32k --host 127.0.0.1 --port 8000      # server
    python examples/openenv_client.py --episodes 2                        # starts one, plays, prints rewards

Protocol (OpenEnv's own server, :func:`openenv.core.env_server.http_server.create_app`):

* **WebSocket** ``/ws`` — one isolated session per connection, each with its own env instance
  (``ComamEnvironment.SUPPORTS_CONCURRENT_SESSIONS``; at most ``--max-sessions`` at once).
  Messages ``reset`` / ``step`` / ``state`` / ``close``; :class:`ComamEnvClient` (an OpenEnv
  ``EnvClient``) speaks it: ``client.reset(question_id=..., seed=...)``, ``client.step(ComamAction(text=...))``,
  ``client.state()``. This is how episodes are played.
* **HTTP** ``POST /reset`` / ``POST /step`` / ``GET /state``, ``/health``, ``/schema``: OpenEnv builds a
  fresh env for every HTTP request, so HTTP ``/reset`` returns a first observation and HTTP
  ``/step`` answers 409 with an explanation (a multi-step episode needs a session: use ``/ws``).

Observation (:class:`ComamObservation`): the agent to act next (``agent``, ``role``, ``role_step``) and
what it sees (``prompt``, ``chunk``, ``memory``, ``query``, ``options``), the question, every agent's
scalar reward of the last step (``rewards``; ``reward`` is the acting agent's) and their running
``returns``, the acting agent's ``info`` (local reward, reward parts, flags) and, once ``done``, the
``global_reward``. The scalars follow the env's ``reward_mode`` (default local + global/3).

Bad input never costs an episode: a malformed message, an unknown field, a non-text action, a
step for the wrong agent (``ComamAction.agent`` names who the client thinks acts), a step after
the end or an unknown ``question_id`` is refused with a clear error *before* anything changes —
over the WebSocket the session stays open with its episode where it was; other sessions never
notice. Env calls of all sessions run on one worker thread (``REQUIRES_SINGLE_THREAD_EXECUTOR``:
the env's history caches are shared by every env of the process, and the env is pure Python, so a
second thread would add no throughput under the GIL).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from openenv.core import EnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from comam_env.integrations.episodes import RoleEpisode, Turn, make_env_factory

__all__ = ["ComamAction", "ComamObservation", "ComamState", "ComamEnvironment", "ComamEnvClient",
           "RequestError", "ServerProcess", "create_server_app", "configure", "run"]

OBS_FIELDS = ("prompt", "chunk", "memory", "query", "options")


class RequestError(ValueError):
    """A request the episode cannot take (nothing was changed); HTTP answers it with 4xx."""

    status_code = 409


class ComamAction(Action):
    """One agent's text action."""

    text: str = Field(..., description="the acting agent's output (extraction, profile, or retrieval + answer)")
    agent: str | None = Field(default=None, description="optional guard: the agent the client thinks is acting; "
                                                        "a mismatch is refused without stepping")


class ComamObservation(Observation):
    """What the next agent sees, plus the rewards of the last step (see the module docstring)."""

    agent: str = Field(default="", description="the agent to act next ('' once the episode is over)")
    role: str = Field(default="", description="its role: extractor, profiler or retriever")
    role_step: int = Field(default=0, description="how many steps this role took before this one")
    prompt: str = Field(default="", description="the full rendered prompt")
    chunk: str = Field(default="", description="the extractor's chunk")
    memory: str = Field(default="", description="M_f (profiler) or M_f + M_c (retriever)")
    query: str = Field(default="", description="the retriever's question")
    options: str = Field(default="", description="the retriever's answer options")
    question_id: str = Field(default="", description="the episode's (first) question")
    rewards: dict[str, float] = Field(default_factory=dict, description="every agent's scalar reward of the last step")
    returns: dict[str, float] = Field(default_factory=dict, description="every agent's summed reward so far")
    info: dict[str, Any] = Field(default_factory=dict, description="the acting agent's info after its step")
    global_reward: float | None = Field(default=None, description="the answer reward, once done")

    def env_observation(self) -> dict[str, str]:
        """The env's observation dict (``prompt``, ``chunk``, ``memory``, ``query``, ``options``),
        as the text policies of :mod:`comam_env.policies` and ``LLMPolicy`` read it."""
        return {f: getattr(self, f) for f in OBS_FIELDS}


class ComamState(State):
    """The session's episode: id, steps, question, whose turn, returns."""

    question_id: str | None = None
    agent: str | None = None
    done: bool = True
    returns: dict[str, float] = Field(default_factory=dict)
    global_reward: float | None = None


def _jsonable(value: Any) -> Any:
    """Plain JSON data (numpy scalars and arrays, tuples) for the env's info dicts."""
    def default(x):
        if hasattr(x, "tolist"):
            return x.tolist()
        if hasattr(x, "item"):
            return x.item()
        return str(x)

    return json.loads(json.dumps(value, default=default))


class ComamEnvironment(Environment[ComamAction, ComamObservation, ComamState]):
    """One OpenEnv session: a comam text env played turn by turn through :class:`RoleEpisode`."""

    SUPPORTS_CONCURRENT_SESSIONS = True
    REQUIRES_SINGLE_THREAD_EXECUTOR = True

    def __init__(self, env_factory: Callable[[], Any]) -> None:
        super().__init__()
        self._env = env_factory()
        self._episode = RoleEpisode(self._env)
        self._state = ComamState()
        self._question_id: str | None = None

    # ------------------------------------------------------------------ OpenEnv API
    def reset(self, seed: int | None = None, episode_id: str | None = None, question_id: str | None = None,
              **kwargs: Any) -> ComamObservation:
        if kwargs:
            raise RequestError(f"unknown reset options {sorted(kwargs)}; accepted: seed, episode_id, question_id")
        if question_id is not None:
            if not isinstance(question_id, str):
                raise RequestError(f"question_id must be a string, got {type(question_id).__name__}")
            try:
                self._env.unwrapped.dataset.question(question_id)
            except KeyError as exc:
                raise RequestError(str(exc).strip('"')) from None
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise RequestError(f"seed must be a non-negative integer, got {seed!r}")
        turn = self._episode.reset(question_id, seed)
        self._question_id = self._env.unwrapped.current_question.question_id
        self._state = ComamState(episode_id=episode_id or str(uuid.uuid4()), step_count=0,
                                 question_id=self._question_id)
        return self._observe(turn, rewards={}, info={}, reward=None)

    def step(self, action: ComamAction, timeout_s: float | None = None, **kwargs: Any) -> ComamObservation:
        turn = self._episode.turn() if self._question_id is not None else None
        if turn is None:
            raise RequestError("no episode is running in this session: reset first (over HTTP every request gets a "
                               "fresh env, so play episodes over the WebSocket session /ws)")
        if action.agent is not None and action.agent != turn.agent:
            raise RequestError(f"it is {turn.agent}'s turn, not {action.agent}'s; the episode was not stepped")
        acting = turn.agent
        nxt = self._episode.act(action.text)
        self._state.step_count += 1
        rewards = dict(self._episode.last_rewards)
        info = _jsonable(self._episode.last_info)
        return self._observe(nxt, rewards=rewards, info=info, reward=rewards.get(acting, 0.0))

    # OpenEnv runs sync reset/step on an executor thread; a step costs ~0.3 ms of pure Python, less
    # than the thread hand-off, so the async versions run it inline on the event loop (which also
    # keeps every env call of every session on one thread).
    async def reset_async(self, seed: int | None = None, episode_id: str | None = None,
                          question_id: str | None = None, **kwargs: Any) -> ComamObservation:
        return self.reset(seed=seed, episode_id=episode_id, question_id=question_id, **kwargs)

    async def step_async(self, action: ComamAction, timeout_s: float | None = None, **kwargs: Any) -> ComamObservation:
        return self.step(action, timeout_s=timeout_s, **kwargs)

    @property
    def state(self) -> ComamState:
        turn = self._episode.turn() if self._question_id is not None else None
        self._state.agent = turn.agent if turn else None
        self._state.done = turn is None
        self._state.returns = dict(self._episode.returns)
        self._state.global_reward = self._global_reward() if turn is None and self._question_id else None
        return self._state

    def close(self) -> None:
        self._env.close()

    # ------------------------------------------------------------------ helpers
    def _global_reward(self) -> float | None:
        value = self._episode.trajectory().get("global_reward")
        return None if value is None else float(value)

    def _observe(self, turn: Turn | None, *, rewards: dict, info: dict, reward: float | None) -> ComamObservation:
        fields: dict[str, Any] = {}
        if turn is not None:
            obs = turn.observation
            fields = {f: str(obs.get(f, "")) for f in OBS_FIELDS}
            fields.update(agent=turn.agent, role=turn.role, role_step=turn.index)
        done = turn is None
        return ComamObservation(done=done, reward=reward, question_id=self._question_id or "", rewards=rewards,
                                returns=dict(self._episode.returns), info=info,
                                global_reward=self._global_reward() if done else None, **fields)


class ComamEnvClient(EnvClient[ComamAction, ComamObservation, ComamState]):
    """OpenEnv client of a ``comam-env serve`` server (one WebSocket session per client)::

        with ComamEnvClient(base_url="http://127.0.0.1:8000").sync() as client:
            result = client.reset(question_id="syn0-32k-p000-q000", seed=0)
            while not result.done:
                result = client.step(ComamAction(text=my_policy(result.observation)))
    """

    def _step_payload(self, action: ComamAction) -> dict[str, Any]:
        return action.model_dump(exclude_none=True, exclude_defaults=False)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[ComamObservation]:
        obs = ComamObservation(**payload.get("observation", {}), reward=payload.get("reward"),
                               done=payload.get("done", False))
        return StepResult(observation=obs, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> ComamState:
        return ComamState(**payload)


def create_server_app(env: str | Callable[[], Any] = "synthetic-32k", *, max_sessions: int = 64,
                      env_kwargs: dict[str, Any] | None = None):
    """The FastAPI app serving ``env`` (an id with ``comam_env.make`` keyword arguments, or a
    factory): OpenEnv's app plus a handler that turns :class:`RequestError` into a 4xx answer."""
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from openenv.core.env_server.http_server import create_fastapi_app

    factory = make_env_factory(env, env_kwargs)
    factory()  # load the dataset once, now: a missing dataset fails at start-up, not in a session
    app = create_fastapi_app(lambda: ComamEnvironment(factory), ComamAction, ComamObservation,
                             max_concurrent_envs=int(max_sessions))

    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc)})

    app.add_exception_handler(RequestError, request_error)
    app.add_middleware(_QuietClientClose)
    return app


class _QuietClientClose:
    """ASGI middleware: openenv-core 0.3's ``/ws`` handler closes the socket again after the client
    closed it and lets starlette's ``WebSocketDisconnect`` escape, which uvicorn logs as an
    "Exception in ASGI application" traceback on every normal client exit. The session is already
    cleaned up by then; drop that one exception for WebSocket scopes only."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            if scope.get("type") != "websocket":
                raise


# ------------------------------------------------------------------ `comam-env serve`


def _port(text: str) -> int:
    """argparse type of ``--port``: 0 (any free port) … 65535."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port in 0..65535, got {port}")
    return port


def configure(parser) -> None:
    from comam_env.cli import parse_key_value, positive_int

    parser.add_argument("--env", default="synthetic-32k", help="environment id served (see `comam-env envs`)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port (0 = any free port)")
    parser.add_argument("--max-sessions", type=positive_int, default=64, help="concurrent WebSocket sessions allowed")
    parser.add_argument("--env-kw", dest="env_kwargs", type=parse_key_value, action="append", default=None,
                        metavar="KEY=VALUE", help="keyword argument for comam_env.make (repeatable), e.g. split=validation")
    parser.add_argument("--compress", action="store_true",
                        help="offer WebSocket permessage-deflate (off by default: it costs more CPU than it saves on localhost)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")


def run(args) -> int:
    import signal
    import sys

    import uvicorn

    from comam_env.cli import CommandError, UsageError
    from comam_env.registry import check_make_arguments

    try:  # bad flags fail here, before anything is loaded or bound
        check_make_arguments(args.env, **dict(args.env_kwargs or []))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    try:
        app = create_server_app(args.env, max_sessions=args.max_sessions, env_kwargs=dict(args.env_kwargs or []))
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise CommandError(str(exc)) from None
    # no permessage-deflate: compressing each ~10 kB observation costs more CPU (both ends) than
    # sending it uncompressed over localhost or a LAN (benchmarks/serve_overhead.py)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            ws_per_message_deflate=args.compress)
    server = uvicorn.Server(config)
    # print the bound address (with --port 0 the OS picks it) so scripts can connect
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets)
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                print(f"comam-env serve: {args.env} on http://{host}:{port} (WebSocket /ws)", flush=True)

    server.startup = startup
    # Ctrl-C / SIGTERM: uvicorn closes the sessions and shuts down gracefully, then re-raises the
    # signal; a stop on request is a clean exit (0), not an interruption.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"comam-env serve: {args.env} stopped", flush=True)
    return 0


class ServerProcess:
    """``comam-env serve`` in a child process on 127.0.0.1 (any free port), for examples, tests
    and benchmarks: ``with ServerProcess("synthetic-32k") as server: ComamEnvClient(server.url)``.
    Stopping sends SIGTERM (uvicorn's graceful shutdown; exit code 0) and waits for the exit."""

    def __init__(self, env: str = "synthetic-32k", *, env_kwargs: dict[str, Any] | None = None,
                 max_sessions: int = 64, startup_timeout: float = 120.0) -> None:
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "comam_env.cli", "serve", "--env", env, "--host", "127.0.0.1", "--port", "0",
               "--max-sessions", str(max_sessions)]
        for key, value in (env_kwargs or {}).items():
            cmd += ["--env-kw", f"{key}={json.dumps(value)}"]
        self.command = cmd
        self._timeout = startup_timeout
        self._subprocess = subprocess
        self.process: Any = None
        self.url = ""

    def start(self) -> ServerProcess:
        import os
        import select
        import time

        self.process = self._subprocess.Popen(self.command, stdout=self._subprocess.PIPE, text=True,
                                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"comam-env serve exited with code {self.process.returncode} before serving")
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if " on http://" in line:
                    self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
                    return self
        self.stop()
        raise TimeoutError(f"comam-env serve did not start within {self._timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> int | None:
        import signal

        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except self._subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            if self.process.stdout:
                self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
