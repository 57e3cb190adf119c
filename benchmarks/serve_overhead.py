"""Per-step cost of the served env (``comam-env serve``, OpenEnv WebSocket session on localhost)
over in-process stepping, on the same episodes and actions.

* **in-process**: :class:`comam_env.integrations.episodes.RoleEpisode` on the text env — reset,
  observe, step (the copy-all policy's actions, computed once beforehand so no policy time is
  timed);
* **served**: the same resets and actions through OpenEnv's client
  (:class:`comam_env.integrations.openenv.ComamEnvClient`; its sync wrapper, and the async client
  on one event loop) to a server process on
  127.0.0.1 — each step's reply carries the next agent's whole observation (prompt and fields),
  every agent's rewards and the acting agent's info as JSON.

Reported per step (an episode's reset counts as one step): wall time (best of ``--repeats``) and
CPU time (client process + server process, read from ``/proc``; a loaded shared machine disturbs
it less than wall time). The overhead is served − in-process; the target is ≤ 2 ms per step.

Run: ``python benchmarks/serve_overhead.py [--episodes 50] [--repeats 3]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import comam_env  # noqa: E402
from comam_env.integrations.episodes import RoleEpisode  # noqa: E402
from comam_env.policies import CopyAllPolicy  # noqa: E402


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record_actions(env, qids: list[str]) -> list[list[str]]:
    """The copy-all policy's actions of every episode (replayed by both paths)."""
    policy, out = CopyAllPolicy(), []
    episode = RoleEpisode(env)
    for i, qid in enumerate(qids):
        turn, actions = episode.reset(qid, i), []
        while turn is not None:
            actions.append(policy(turn.agent, turn.observation, env))
            turn = episode.act(actions[-1])
        out.append(actions)
    return out


def in_process(env, qids, actions) -> tuple[float, float, int, list]:
    episode = RoleEpisode(env)
    steps, returns = 0, []
    w0, c0 = time.perf_counter(), time.process_time()
    for i, (qid, acts) in enumerate(zip(qids, actions, strict=True)):
        episode.reset(qid, i)
        steps += 1
        for a in acts:
            turn = episode.act(a)
            if turn is not None:
                _ = turn.observation["prompt"]  # the observation a client would read
            steps += 1
        returns.append(dict(episode.returns))
    return time.perf_counter() - w0, time.process_time() - c0, steps, returns


def served(client, server_pid, qids, actions) -> tuple[float, float, int, list]:
    from comam_env.integrations.openenv import ComamAction

    steps, returns = 0, []
    s0 = _proc_cpu(server_pid)
    w0, c0 = time.perf_counter(), time.process_time()
    for i, (qid, acts) in enumerate(zip(qids, actions, strict=True)):
        result = client.reset(question_id=qid, seed=i)
        steps += 1
        for a in acts:
            result = client.step(ComamAction(text=a))
            steps += 1
        returns.append(result.observation.returns)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    server_cpu = _proc_cpu(server_pid) - s0
    return wall, cpu + server_cpu, steps, returns, cpu, server_cpu


def served_async(url, server_pid, qids, actions, repeats) -> list[tuple[float, float, int, list]]:
    """:func:`served` with OpenEnv's async client on one event loop (no sync-wrapper thread)."""
    import asyncio

    from comam_env.integrations.openenv import ComamAction, ComamEnvClient

    async def run() -> list:
        out = []
        async with ComamEnvClient(base_url=url) as client:
            for rep in range(repeats + 1):
                steps, returns = 0, []
                s0 = _proc_cpu(server_pid)
                w0, c0 = time.perf_counter(), time.process_time()
                for i, (qid, acts) in enumerate(zip(qids, actions, strict=True)):
                    result = await client.reset(question_id=qid, seed=i)
                    steps += 1
                    for a in acts:
                        result = await client.step(ComamAction(text=a))
                        steps += 1
                    returns.append(result.observation.returns)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                server_cpu = _proc_cpu(server_pid) - s0
                if rep:  # the first pass warms the connection up
                    out.append((wall, cpu + server_cpu, steps, returns, cpu, server_cpu))
        return out

    return asyncio.run(run())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--episodes", type=int, default=50, help="episodes per repetition")
    p.add_argument("--repeats", type=int, default=3, help="repetitions (best is reported)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)

    from comam_env.integrations.openenv import ComamEnvClient, ServerProcess

    env = comam_env.make(args.env, split="train")
    qids = list(env.unwrapped.question_ids[: args.episodes])
    actions = record_actions(env, qids)
    with ServerProcess(args.env, env_kwargs={"split": "train"}) as server:
        with ComamEnvClient(base_url=server.url).sync() as client:
            served(client, server.process.pid, qids[:2], actions[:2])  # warm-up: connection, caches
            local_runs, served_runs = [], []
            for _ in range(args.repeats):
                local_runs.append(in_process(env, qids, actions))
                served_runs.append(served(client, server.process.pid, qids, actions))
        async_runs = served_async(server.url, server.process.pid, qids, actions, args.repeats)
    if local_runs[0][3] != served_runs[0][3] or local_runs[0][3] != async_runs[0][3]:
        raise SystemExit("served returns differ from in-process returns")
    steps = local_runs[0][2]
    res = {
        "episodes": len(qids), "steps": steps,
        "in_process_wall_ms_per_step": 1e3 * min(r[0] for r in local_runs) / steps,
        "in_process_cpu_ms_per_step": 1e3 * min(r[1] for r in local_runs) / steps,
        "served_wall_ms_per_step": 1e3 * min(r[0] for r in served_runs) / steps,
        "served_cpu_ms_per_step": 1e3 * min(r[1] for r in served_runs) / steps,
    }
    best = min(served_runs, key=lambda r: r[1])
    res["served_client_cpu_ms_per_step"] = 1e3 * best[4] / steps
    res["served_server_cpu_ms_per_step"] = 1e3 * best[5] / steps
    best_async = min(async_runs, key=lambda r: r[1])
    res["served_async_wall_ms_per_step"] = 1e3 * min(r[0] for r in async_runs) / steps
    res["served_async_cpu_ms_per_step"] = 1e3 * best_async[1] / steps
    res["served_async_client_cpu_ms_per_step"] = 1e3 * best_async[4] / steps
    res["served_async_server_cpu_ms_per_step"] = 1e3 * best_async[5] / steps
    res["overhead_async_cpu_ms_per_step"] = res["served_async_cpu_ms_per_step"] - res["in_process_cpu_ms_per_step"]
    res["overhead_async_wall_ms_per_step"] = res["served_async_wall_ms_per_step"] - res["in_process_wall_ms_per_step"]
    res["overhead_wall_ms_per_step"] = res["served_wall_ms_per_step"] - res["in_process_wall_ms_per_step"]
    res["overhead_cpu_ms_per_step"] = res["served_cpu_ms_per_step"] - res["in_process_cpu_ms_per_step"]
    print(f"{args.env}: {len(qids)} episodes, {steps} steps (resets included), best of {args.repeats}")
    for kind in ("wall", "cpu"):
        print(f"  {kind:4s}: in-process {res[f'in_process_{kind}_ms_per_step']:.3f} ms/step, served "
              f"{res[f'served_{kind}_ms_per_step']:.3f} ms/step, overhead {res[f'overhead_{kind}_ms_per_step']:.3f} ms/step "
              f"(target <= 2 ms)")
    print(f"  served CPU split: client {res['served_client_cpu_ms_per_step']:.3f} ms/step, server "
          f"{res['served_server_cpu_ms_per_step']:.3f} ms/step")
    print(f"  async client: served {res['served_async_cpu_ms_per_step']:.3f} ms/step CPU (client "
          f"{res['served_async_client_cpu_ms_per_step']:.3f}, server {res['served_async_server_cpu_ms_per_step']:.3f}), "
          f"overhead {res['overhead_async_cpu_ms_per_step']:.3f} ms/step CPU, {res['overhead_async_wall_ms_per_step']:.3f} "
          "ms/step wall")
    print(f"  load average {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
