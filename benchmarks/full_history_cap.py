"""Why full-history validation sits near chance for selection policies (docs/credit_ablation.md).

Plays fixed heuristic memory systems through the selection view on the validation questions,
once with evidence-session episodes (the training kind) and once with full-history episodes
(the paper's evaluation kind), and prints per setting:

* answer accuracy;
* the retriever's evidence recall (share of the gold evidence among the units it kept, from the
  env's reward parts — with a keep-all retriever, the share of the evidence that survived the
  view's pre-ranking to ``K`` candidates);
* the retriever's candidates before and after pre-ranking.

Systems (extractor / profiler / retriever; :mod:`comam_env.views.heuristics`): ``all/all/all``
keeps everything and answers with the option nearest to the kept units' mean; ``all/all/sim3``
keeps everything upstream and retrieves the 3 units most similar to the query; ``sim/sim/sim``
keeps the top few units per role. ``--prerank`` and ``--K`` change the view's pre-ranking,
``--embedder`` its embeddings.

    python benchmarks/full_history_cap.py                       # what docs/credit_ablation.md quotes
    python benchmarks/full_history_cap.py --prerank last --K 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def play(env, question_ids, policies) -> dict:
    """One episode per question; answer accuracy, retriever recall and candidate counts."""
    acc, recall, shown, total = [], [], [], []
    for qid in question_ids:
        env.reset(seed=0, options={"question_id": qid})
        answer = None
        for agent in env.agent_iter():
            obs, _, term, trunc, info = env.last()
            if info.get("global_reward") is not None:
                answer = info["global_reward"]
            if term or trunc:
                env.step(None)
                continue
            role = agent.rsplit("_", 1)[0]
            if role == "retriever":
                total.append(info["n_candidates"])
                shown.append(info["n_candidates"] - info["candidates_dropped"])
            env.step(policies[role](obs))
            if role == "retriever":
                r = env.infos[agent].get("parts", {}).get("recall")
                if r is not None:
                    recall.append(r)
        acc.append(answer)
    return {"accuracy": float(np.mean(acc)), "recall": float(np.mean(recall)) if recall else float("nan"),
            "shown": float(np.mean(shown)), "candidates": float(np.mean(total))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="synthetic-32k")
    p.add_argument("--questions", type=int, default=128, help="validation questions (default: 128, the whole split)")
    p.add_argument("--K", type=int, default=64, help="the selection view's candidate cap")
    p.add_argument("--prerank", default="similarity", choices=["similarity", "first", "last"])
    p.add_argument("--embedder", default="hashing", choices=["hashing", "minilm"],
                   help="the view's embedder (minilm embeds the dataset once, then reads its disk cache)")
    args = p.parse_args(argv)

    import comam_env
    from comam_env.views.heuristics import KeepAllPolicy, SimilarityPolicy

    keep, sim = KeepAllPolicy(), SimilarityPolicy()
    systems = {
        "all/all/all": {"extractor": keep, "profiler": keep, "retriever": keep},
        "all/all/sim3": {"extractor": keep, "profiler": keep, "retriever": sim},
        "sim/sim/sim": {"extractor": sim, "profiler": sim, "retriever": sim},
    }
    print(f"{args.env}, validation, K = {args.K}, prerank = {args.prerank!r}, {args.embedder} embedder")
    print(f"{'episodes':17s} {'system':13s} {'accuracy':>8s} {'ret. recall':>11s} {'shown/candidates':>17s} {'s':>5s}")
    for episode in ("evidence-session", "full-history"):
        env = comam_env.make(args.env, split="validation", episode=episode, view="selection",
                             view_kwargs={"K": args.K, "prerank": args.prerank, "embedder": args.embedder})
        ids = list(env.unwrapped.question_ids)[: args.questions]
        for name, policies in systems.items():
            t0 = time.perf_counter()
            res = play(env, ids, policies)
            print(f"{episode:17s} {name:13s} {res['accuracy']:8.3f} {res['recall']:11.3f} "
                  f"{res['shown']:8.1f}/{res['candidates']:<8.1f} {time.perf_counter() - t0:5.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
