"""Play comam-env episodes through OpenEnv: start `comam-env serve` on 127.0.0.1, connect with
OpenEnv's own client (`EnvClient` over the WebSocket session), play full episodes with the
copy-all text policy and print every agent's rewards — next to the same episodes stepped in
process, which must match.

    python examples/openenv_client.py --episodes 2
    python examples/openenv_client.py --url http://127.0.0.1:8000 --episodes 5   # a running server
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import comam_env  # noqa: E402
from comam_env.integrations.openenv import ComamAction, ComamEnvClient, ServerProcess  # noqa: E402
from comam_env.policies import CopyAllPolicy, run_episode  # noqa: E402
from comam_env.threads import add_threads_argument, set_threads  # noqa: E402


def play(url: str, question_ids: list[str], seed: int) -> list[dict]:
    """One episode per question through the server; returns each episode's returns and answer reward."""
    policy = CopyAllPolicy()
    results = []
    with ComamEnvClient(base_url=url).sync() as client:
        for i, qid in enumerate(question_ids):
            result = client.reset(question_id=qid, seed=seed + i)
            while not result.done:
                obs = result.observation
                result = client.step(ComamAction(text=policy(obs.agent, obs.env_observation(), None), agent=obs.agent))
            results.append({"question_id": qid, "returns": result.observation.returns,
                            "global_reward": result.observation.global_reward})
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--split", default="train", help="question split")
    p.add_argument("--episodes", type=int, default=2, help="episodes to play")
    p.add_argument("--seed", type=int, default=0, help="reset seed of the first episode")
    p.add_argument("--url", help="connect to this running server instead of starting one")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_threads_argument(p)  # also passed on to the server it starts (the environment side)
    args = p.parse_args(argv)
    set_threads(args.threads)
    local = comam_env.make(args.env, split=args.split)
    qids = list(local.unwrapped.question_ids[: args.episodes])
    if args.url:
        served = play(args.url, qids, args.seed)
    else:
        with ServerProcess(args.env, env_kwargs={"split": args.split}) as server:
            print(f"server: {server.url}")
            served = play(server.url, qids, args.seed)
    ok = True
    for i, r in enumerate(served):
        ref = run_episode(local, CopyAllPolicy(), seed=args.seed + i, options={"question_id": r["question_id"]})["returns"]
        same = all(abs(ref[a] - r["returns"][a]) < 1e-12 for a in ref)
        ok &= same
        print(f"{r['question_id']}: " + "  ".join(f"{a} {v:.3f}" for a, v in r["returns"].items())
              + f"  answer {r['global_reward']:.0f}  {'= in-process' if same else '!= in-process ' + str(ref)}")
    if args.json:
        print(json.dumps(served, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
