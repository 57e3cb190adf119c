"""verifiers 0.4 adapter: real verifiers episodes (its Env / Agent / interception server) against
local OpenAI-compatible endpoints on 127.0.0.1 — the tiny random Llama (agents.chat_server) and a
scripted stdlib server whose answers earn non-zero rewards — with network and subprocesses off."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("verifiers")
pytest.importorskip("torch")

from comam_env.integrations import verifiers as cv  # noqa: E402
from comam_env.integrations.episodes import ROLES, RoleEpisode, make_env_factory  # noqa: E402
from comam_env.prompts import retriever_action  # noqa: E402
from comam_env.scoring import score_answer  # noqa: E402

ENV = "synthetic-32k"
ENV_KW = {"split": "train", "chunk_tokens": 300}  # several extractor chunks per episode

pytestmark = [pytest.mark.usefixtures("torch_single_thread"), pytest.mark.slow]  # ~20 s: verifiers import, tiny model


@pytest.fixture(scope="module")
def tiny_server(tiny_path):
    from agents.chat_server import ChatServer

    with ChatServer(tiny_path, max_new_tokens=12, seed=0) as server:
        yield server


@pytest.fixture(scope="module")
def question_ids():
    env = make_env_factory(ENV, ENV_KW)()
    return list(env.unwrapped.question_ids[:2])


class ScriptedServer:
    """A stdlib OpenAI-compatible endpoint answering with ``reply(user_text) -> str``."""

    def __init__(self, reply):
        self.reply, self.requests = reply, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                text = outer.reply(body["messages"][-1]["content"])
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _replay(result):
    """Play the same episode on a fresh env with the actions the verifiers traces recorded."""
    actions = {t.agent.name: [(m.content or "").strip() for m in t.assistant_messages] for t in result.episode.traces}
    episode = RoleEpisode(make_env_factory(ENV, ENV_KW)())
    turn = episode.reset(result.question_id, result.seed)
    used = dict.fromkeys(ROLES, 0)
    while turn is not None:
        action = actions[turn.role][used[turn.role]]
        used[turn.role] += 1
        turn = episode.act(action)
    assert used == {r: len(a) for r, a in actions.items()}  # every recorded turn was one env decision
    return episode, actions


def _check_against_env(result, global_weight=1 / 3):
    assert result.ok, result.errors
    episode, actions = _replay(result)
    env_local = episode.local_rewards()
    record = episode.trajectory()
    assert result.local == env_local
    assert result.global_reward == pytest.approx(record["global_reward"])
    question = episode.env.unwrapped.current_question
    assert result.global_reward == pytest.approx(score_answer(question, actions["retriever"][-1]))
    for trace in result.episode.traces:
        role = trace.agent.name
        assert trace.rewards["local"].score == pytest.approx(env_local[role])
        assert trace.rewards["global"].score == pytest.approx(record["global_reward"])
        assert trace.reward == pytest.approx(env_local[role] + global_weight * record["global_reward"])
        assert trace.metrics["env_return"] == pytest.approx(episode.role_return(role))
        assert trace.metrics["decisions"] == len(actions[role]) == trace.num_turns
    return episode, actions


def test_tiny_model_episodes_carry_the_envs_own_rewards(tiny_server, question_ids):
    before = tiny_server.stats["requests"]
    results = cv.evaluate(ENV, model="tiny", base_url=tiny_server.base_url, question_ids=question_ids,
                          env_kwargs=ENV_KW, max_tokens=12)
    assert [r.question_id for r in results] == question_ids
    decisions = 0
    for result in results:
        assert sorted(t.agent.name for t in result.episode.traces) == sorted(ROLES)  # one trace per role
        _, actions = _check_against_env(result)
        assert len(actions["extractor"]) >= 2  # the extractor took several chunk turns in one interaction
        decisions += sum(len(a) for a in actions.values())
    # every env decision was one real model call on the tiny model's endpoint
    assert tiny_server.stats["requests"] - before == decisions


def test_scripted_answers_earn_the_local_and_global_rewards_the_env_computes(question_ids):
    env = make_env_factory(ENV, ENV_KW)()
    qid = question_ids[0]
    gold = env.unwrapped.dataset.question(qid).answer

    def reply(prompt):  # copy the prompt's text as memory; the retriever answers the gold letter
        if prompt.startswith("You are the retrieval"):
            memory = [line for line in prompt.splitlines() if "<" not in line]  # not the instructions' tags
            return retriever_action(memory, f"({gold})")
        return prompt

    server = ScriptedServer(reply)
    try:
        (result,) = cv.evaluate(ENV, model="scripted", base_url=server.base_url, question_ids=[qid],
                                env_kwargs=ENV_KW, global_weight=0.5)
    finally:
        server.close()
    _check_against_env(result, global_weight=0.5)
    assert result.global_reward == 1.0
    assert all(v is not None and v > 0 for v in result.local.values()), result.local
    # the in-process harness sends each decision's prompt alone (no replayed conversation)
    assert all(len(b["messages"]) == 1 and b["model"] == "scripted" for b in server.requests)


def test_episodes_run_with_network_and_subprocesses_forbidden(tiny_server, question_ids, monkeypatch):
    connections = []

    def guarded(original):
        def connect(sock, address, *args):
            host = address[0] if isinstance(address, tuple) else address
            if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
                raise AssertionError(f"network access attempted: {address!r}")
            connections.append(address)
            return original(sock, address, *args)
        return connect

    def forbidden(*args, **kwargs):
        raise AssertionError(f"subprocess attempted: {args[:2]!r}")

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "::1", "localhost", None):
            raise AssertionError(f"DNS lookup attempted: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", forbidden)
    monkeypatch.setattr(asyncio, "create_subprocess_shell", forbidden)
    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "subprocess_exec", forbidden)
    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "subprocess_shell", forbidden)
    import os
    monkeypatch.setattr(os, "fork", forbidden)
    monkeypatch.setattr(os, "posix_spawn", forbidden)
    # the guards are live: a remote connection and a process are refused
    with pytest.raises(AssertionError, match="network access"), socket.socket() as probe:
        probe.connect(("203.0.113.1", 80))
    with pytest.raises(AssertionError, match="DNS lookup"):
        socket.getaddrinfo("pypi.org", 443)
    with pytest.raises(AssertionError, match="subprocess"):
        subprocess.run(["true"])

    (result,) = cv.evaluate(ENV, model="tiny", base_url=tiny_server.base_url, question_ids=question_ids[:1],
                            env_kwargs=ENV_KW, max_tokens=8)
    _check_against_env(result)
    # model calls went harness -> interception -> model server, all over loopback
    assert len(connections) >= 2 * result.episode.num_turns


def test_bad_input_is_refused_with_a_clear_error(tiny_server):
    with pytest.raises(ValueError, match=r"\['nope'\] are not questions of env 'synthetic-32k'"):
        cv.make_env(ENV, question_ids=["nope"], env_kwargs=ENV_KW)
    with pytest.raises(ValueError, match="base_url must be an http"):
        cv.model_context("tiny", "127.0.0.1:8000")
    with pytest.raises(ValueError, match="model must be a non-empty"):
        cv.model_context("", tiny_server.base_url)
    with pytest.raises(ValueError, match="retriever.harness: only 'comam-memory'.*'null'"):
        cv.make_env(ENV, env_kwargs=ENV_KW, limit=1, retriever={"harness": {"id": "null"}})
    with pytest.raises(ValueError, match="extractor.runtime: .*'docker'"):
        cv.make_env(ENV, env_kwargs=ENV_KW, limit=1, extractor={"runtime": {"type": "docker"}})
    with pytest.raises(ValueError, match="text view"):
        cv.make_env(ENV, env_kwargs={**ENV_KW, "view": "selection"})
    with pytest.raises(ValueError, match="rollouts must be a positive integer"):
        asyncio.run(cv.run_episodes(cv.make_env(ENV, env_kwargs=ENV_KW, limit=1),
                                    cv.model_context("tiny", tiny_server.base_url), rollouts=0))


def test_an_unreachable_model_fails_the_episode_and_says_which_role(question_ids):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (result,) = cv.evaluate(ENV, model="tiny", base_url=f"http://127.0.0.1:{port}/v1", question_ids=question_ids[:1],
                            env_kwargs=ENV_KW)
    assert not result.ok and result.global_reward is None
    text = "\n".join(result.errors)
    assert "the extractor agent's run ended at its decision 0" in text and question_ids[0] in text


def _post(url, body):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{url}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_chat_server_is_seeded_and_refuses_bad_requests(tiny_server):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "The user likes jazz."}], "max_tokens": 6,
            "seed": 7}
    status, a = _post(tiny_server.base_url, body)
    assert status == 200 and a["object"] == "chat.completion" and a["choices"][0]["message"]["role"] == "assistant"
    assert 1 <= a["usage"]["completion_tokens"] <= 6
    assert _post(tiny_server.base_url, body)[1]["choices"] == a["choices"]  # same seed, same completion
    for bad, message in [({**body, "stream": True}, "'stream': true is not supported"),
                         ({**body, "messages": []}, "'messages' must be a non-empty list"),
                         ({**body, "messages": [{"role": "robot", "content": "x"}]}, "messages\\[0\\]"),
                         ({**body, "max_tokens": 0}, "'max_tokens' must be >= 1"),
                         ({**body, "temperature": "hot"}, "'temperature' must be a number")]:
        status, err = _post(tiny_server.base_url, bad)
        assert status == 400 and re.search(message, err["error"]["message"]), err
    assert _post(tiny_server.base_url, body)[0] == 200  # still serving


def test_example_runs_two_tiny_steps(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "verifiers_env.py"
    spec = importlib.util.spec_from_file_location("verifiers_env_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--tiny", "--steps", "2", "--max-tokens", "8", "--threads", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["episodes"] == summary["ok"] == 2 and len(summary["local"]) == 2
    assert all(set(local) == set(ROLES) for local in summary["local"])
    assert summary["model_calls"] >= 6  # at least one call per role per episode, all answered
    assert any(line.startswith("episode 1 (") and "global" in line for line in out)
