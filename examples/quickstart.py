"""Quickstart: make a comam-env environment and compare two scripted memory systems.

Runs offline on the built-in synthetic PersonaMem-style data (generated into the
cache on first use, about a second). For a few questions it plays one episode with

* the **oracle** — copies the gold evidence, writes the gold profile, answers correctly;
* the **naive** policy — copies everything it reads and always answers (a);

and prints every reward channel side by side: the extractor's coverage reward
(eq. 9) with its recall and Jaccard parts, the profiler's judge score (eq. 10), the
retriever's retrieval reward (eq. 11) with its parts, the parsed answer and the
global answer reward (eq. 12), and the scalar return each agent collected under the
default ``reward_mode="local+global"`` (local + global/3).

    python examples/quickstart.py [--env synthetic-32k] [--episodes 5] [--episode full-history]
"""

from __future__ import annotations

import argparse

import comam_env
from comam_env.threads import add_threads_argument, set_threads
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode


def channels(traj: dict) -> dict:
    last = {}
    for s in traj["steps"]:
        last[s["agent"]] = s  # the extractor's reward comes at its last chunk
    ext, prof, ret = last["extractor_0"], last["profiler_0"], last["retriever_0"]

    def num(x):
        return "undef" if x is None else f"{x:.3f}"

    return {
        "ext r": num(ext["local_reward"]),
        "ext rec": num(ext["local_parts"].get("recall")),
        "ext jac": num(ext["local_parts"].get("jaccard")),
        "prof r": num(prof["local_reward"]),
        "ret r": num(ret["local_reward"]),
        "ret rec": num(ret["local_parts"].get("recall")),
        "ret jac": num(ret["local_parts"].get("jaccard")),
        "answer": str(traj["parsed_answer"]),
        "global": num(traj["global_reward"]),
        "R ext": num(traj["returns"]["extractor_0"]),
        "R prof": num(traj["returns"]["profiler_0"]),
        "R ret": num(traj["returns"]["retriever_0"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="synthetic-32k", help="environment id (see `comam-env envs`)")
    parser.add_argument("--episodes", type=int, default=5, help="questions to play")
    parser.add_argument("--episode", default="auto", help="evidence-session | full-history | auto")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)
    args = parser.parse_args()
    set_threads(args.threads)

    env = comam_env.make(args.env, split="train", episode=args.episode)
    print(f"{args.env}: {len(env.unwrapped.question_ids)} training questions, "
          f"episode={env.unwrapped.config.episode}, reward_mode={env.unwrapped.config.reward_mode}")

    policies = {"oracle": OraclePolicy(env.unwrapped.dataset), "naive": CopyAllPolicy(answer="a")}
    env.reset(seed=args.seed)  # draw the questions from the env's seeded generator
    qids = []
    for _ in range(args.episodes):
        qids.append(env.unwrapped.current_questions[0].question_id)
        env.reset()

    rows = []
    for qid in qids:
        q = env.unwrapped.dataset.question(qid)
        for name, policy in policies.items():
            traj = run_episode(env, policy, options={"question_id": qid})  # same (history, question) for both
            rows.append({"question": qid, "type": q.qtype[:24], "gold": q.answer, "policy": name, **channels(traj)})

    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(width[c]) for c in cols))
    for name in policies:
        mine = [r for r in rows if r["policy"] == name]
        acc = sum(float(r["global"]) for r in mine) / len(mine)
        print(f"{name}: accuracy {acc:.2f} over {len(mine)} questions")


if __name__ == "__main__":
    main()
