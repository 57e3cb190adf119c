"""Evaluate a model on comam-env through verifiers 0.4: the three roles as a verifiers multi-agent
env, run in process (no uv, no subprocess, no network; comam_env/integrations/verifiers.py).

    python examples/verifiers_env.py --tiny --steps 2                  # tiny random Llama served here
    python examples/verifiers_env.py --model path/to/model --steps 8   # any local transformers model
    python examples/verifiers_env.py --base-url http://127.0.0.1:8001/v1 --model-id my-model --steps 8

``--tiny`` builds the tiny random Llama of ``agents/tiny.py``; with ``--tiny`` or ``--model`` the
example starts an OpenAI-compatible chat server for it on 127.0.0.1 (``agents/chat_server.py``,
any free port) and points verifiers at it; ``--base-url`` uses an endpoint you run yourself. One
step is one verifiers episode (one question: every extractor chunk, the profile, the answer). For
each episode it prints the env's local reward of every role, each role trace's weighted verifiers
reward and the global answer reward, then the means. A random model earns (almost) nothing: the
tiny run only shows the wiring. With ``--json`` the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comam_env.threads import add_threads_argument, set_threads  # noqa: E402


def _fmt(value) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--split", default="train", help="dataset split")
    p.add_argument("--tiny", action="store_true", help="serve the tiny random Llama (agents/tiny.py)")
    p.add_argument("--model", help="local transformers model folder to serve (or --tiny / --base-url)")
    p.add_argument("--base-url", help="an OpenAI-compatible endpoint you run (instead of serving a model here)")
    p.add_argument("--model-id", default=None, help="model id sent to --base-url")
    p.add_argument("--steps", type=int, default=2, help="episodes to play (one question each)")
    p.add_argument("--rollouts", type=int, default=1, help="episodes per question")
    p.add_argument("--max-tokens", type=int, default=32, help="generated tokens per decision")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes and of the served model's sampling")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    add_threads_argument(p)
    args = p.parse_args(argv)
    if sum(bool(x) for x in (args.tiny, args.model, args.base_url)) != 1:
        p.error("give exactly one of --tiny, --model, --base-url")
    if args.base_url and not args.model_id:
        p.error("--base-url needs --model-id")
    if args.steps < 1 or args.rollouts < 1:
        p.error("--steps and --rollouts must be positive")
    set_threads(args.threads)

    from comam_env.integrations import verifiers as cv
    from comam_env.integrations.episodes import ROLES

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.base_url:
            base_url, model_id = args.base_url, args.model_id
        else:
            from agents.chat_server import ChatServer

            path = args.model
            if args.tiny:
                from agents.tiny import build_tiny_llm

                path = build_tiny_llm(os.path.join(tmp, "tiny-llm"))
            model_id = args.model_id or ("tiny-random-llama" if args.tiny else Path(path).name)
            server = ChatServer(path, max_new_tokens=args.max_tokens, seed=args.seed, model_id=model_id).start()
            base_url = server.base_url
            print(f"model server: {model_id} on {base_url}")
        try:
            start = time.perf_counter()
            results = cv.evaluate(args.env, model=model_id, base_url=base_url, limit=args.steps, seed=args.seed,
                                  rollouts=args.rollouts, env_kwargs={"split": args.split},
                                  temperature=args.temperature, max_tokens=args.max_tokens)
            wall = time.perf_counter() - start
        finally:
            if server is not None:
                server.stop()

    for i, r in enumerate(results):
        if not r.ok:
            print(f"episode {i} ({r.question_id}): FAILED: {'; '.join(r.errors)}")
            continue
        turns = {t.agent.name: t.num_turns for t in r.episode.traces}
        roles = "  ".join(f"{role} local {_fmt(r.local[role])} (trace reward {r.role_rewards[role]:.3f}, "
                          f"{turns[role]} turn{'s' * (turns[role] != 1)})" for role in ROLES)
        print(f"episode {i} ({r.question_id}): {roles}  global {_fmt(r.global_reward)}")
    done = [r for r in results if r.ok]
    means = {role: cv.mean(r.local[role] for r in done) for role in ROLES}
    mean_global = cv.mean(r.global_reward for r in done)
    print(f"{len(done)}/{len(results)} episodes in {wall:.1f} s; mean local: "
          + ", ".join(f"{role} {_fmt(v)}" for role, v in means.items()) + f"; mean global {_fmt(mean_global)}")
    if server is not None:
        print(f"model calls: {server.stats['requests']} ({server.stats['truncated']} prompts cut to the "
              f"{server.context}-token window)")
    if args.json:
        summary = {"episodes": len(results), "ok": len(done), "wall_s": round(wall, 2),
                   "local": [r.local for r in results], "global": [r.global_reward for r in results],
                   "role_rewards": [r.role_rewards for r in results], "mean_local": means, "mean_global": mean_global,
                   "model_calls": server.stats["requests"] if server else None,
                   "truncated_prompts": server.stats["truncated"] if server else None}
        print(json.dumps(summary, sort_keys=True))
    return 0 if len(done) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
