"""`comam-env serve` (OpenEnv spec) against OpenEnv's own client: a real server process on
127.0.0.1, concurrent isolated sessions, malformed requests, shutdown."""

from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("openenv")
httpx = pytest.importorskip("httpx")
ws_sync = pytest.importorskip("websockets.sync.client")

import comam_env  # noqa: E402
from comam_env.integrations.openenv import ComamAction, ComamEnvClient, ServerProcess  # noqa: E402
from comam_env.policies import CopyAllPolicy, run_episode  # noqa: E402

ENV = "synthetic-32k"

# a real server process: OpenEnv's import alone (gradio, fastmcp) takes 20-30 s on the shared CPU
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local():
    return comam_env.make(ENV, split="train")


@pytest.fixture(scope="module")
def server():
    with ServerProcess(ENV, env_kwargs={"split": "train"}, max_sessions=16) as s:
        yield s


def _expected(local, qid, seed, policy=None):
    return run_episode(local, policy or CopyAllPolicy(), seed=seed, options={"question_id": qid})["returns"]


def test_eight_concurrent_sessions_play_isolated_episodes(server, local):
    qids = list(local.unwrapped.question_ids[:8])
    barrier = threading.Barrier(8, timeout=60)
    results, errors = {}, []

    def worker(i: int) -> None:
        policy = CopyAllPolicy(answer="abcd"[i % 4])  # different actions per session
        try:
            with ComamEnvClient(base_url=server.url).sync() as client:
                result = client.reset(question_id=qids[i], seed=i)
                barrier.wait()  # all eight sessions open before anyone steps
                steps = 0
                while not result.done:
                    obs = result.observation
                    result = client.step(ComamAction(text=policy(obs.agent, obs.env_observation(), None)))
                    steps += 1
                    if steps == 1:
                        barrier.wait()  # every session is mid-episode at the same time
                state = client.state()
                assert state.step_count == steps
                results[i] = (result.observation.returns, state)
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    for i in range(8):
        returns, state = results[i]
        assert returns == pytest.approx(_expected(local, qids[i], i, CopyAllPolicy(answer="abcd"[i % 4])))
        assert state.question_id == qids[i] and state.done


def _ws(server):
    return ws_sync.connect(server.url.replace("http://", "ws://") + "/ws", open_timeout=30)


def _ask(conn, message) -> dict:
    conn.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(conn.recv(timeout=60))


def test_malformed_requests_get_clear_errors_and_no_episode_is_lost(server, local):
    qid = local.unwrapped.question_ids[1]
    with ComamEnvClient(base_url=server.url).sync() as playing:
        result = playing.reset(question_id=qid, seed=7)
        result = playing.step(ComamAction(text="I keep this"))  # the extractor's step, then the attack

        with _ws(server) as bad:
            cases = [
                ("{not json", "Invalid JSON"),
                ({"type": "teleport"}, "Unknown message type"),
                ({"type": "step", "data": {"text": "x"}}, "reset first"),
                ({"type": "reset", "data": {"question_id": "no-such-question"}}, "no question 'no-such-question'"),
                ({"type": "reset", "data": {"question_id": qid, "speed": 3}}, "unknown reset options ['speed']"),
            ]
            for message, expected in cases:
                reply = _ask(bad, message)
                assert reply["type"] == "error" and expected in reply["data"]["message"], (message, reply)
            # the same connection still works, and its own episode survives bad steps
            assert _ask(bad, {"type": "reset", "data": {"question_id": qid, "seed": 1}})["type"] == "observation"
            for data, expected in (({"txt": "x"}, "Invalid message"), ({"text": 5}, "Invalid message"),
                                   ({"text": "x", "agent": "retriever_0"}, "it is extractor_0's turn")):
                reply = _ask(bad, {"type": "step", "data": data})
                assert reply["type"] == "error" and expected in reply["data"]["message"], (data, reply)
            state = _ask(bad, {"type": "state"})["data"]
            assert state["agent"] == "extractor_0" and state["step_count"] == 0  # nothing was stepped

        # HTTP: clear 4xx answers
        with httpx.Client(base_url=server.url, timeout=60) as http:
            r = http.post("/step", json={"action": {"text": "x"}})
            assert r.status_code == 409 and "WebSocket" in r.json()["detail"]
            assert http.post("/step", json={"action": {"text": 3}}).status_code == 422
            assert http.post("/step", content=b"{oops", headers={"content-type": "application/json"}).status_code == 422
            r = http.post("/reset", json={"question_id": "nope"})
            assert r.status_code == 409 and "no question 'nope'" in r.json()["detail"]
            assert http.get("/health").status_code == 200

        # the first client's episode went on untouched: finish it and compare with in-process
        policy = CopyAllPolicy()
        while not result.done:
            obs = result.observation
            result = playing.step(ComamAction(text=policy(obs.agent, obs.env_observation(), None), agent=obs.agent))
    reference = comam_env.make(ENV, split="train")
    reference.reset(seed=7, options={"question_id": qid})
    returns = {a: 0.0 for a in reference.possible_agents}
    first = True
    for agent in reference.agent_iter():
        obs, reward, term, trunc, _ = reference.last()
        returns[agent] += reward
        action = "I keep this" if first else policy(agent, obs, reference)
        first = False
        reference.step(None if term or trunc else action)
    assert result.observation.returns == pytest.approx(returns)


def test_server_shuts_down_cleanly_and_clients_see_it(server):
    client = ComamEnvClient(base_url=server.url).sync()
    client.connect()
    client.reset()
    assert server.stop() == 0  # graceful: exit code 0
    from websockets.exceptions import ConnectionClosed

    with pytest.raises((ConnectionClosed, ConnectionError, OSError)):  # the server said 1012 (service restart)
        client.step(ComamAction(text="anyone there?"))
    client.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/health", timeout=5)
