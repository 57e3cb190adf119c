"""The CoMAM training loop written out, with your own credit assignment plugged in (CPU, ~30 s).

`agents.comam.Trainer` runs this loop for you. This script spells it out top to bottom, so you
can see where to swap in your own credit rule, advantage normalisation or optimiser:

1. sample ``batch_queries`` training questions and run ``group_size`` trajectories per question
   through a pool of selection-view environments (evidence-session episodes, temperature 1);
2. turn each role's local rewards and the shared answer reward into one reward per trajectory and
   role — here :func:`answer_gated_credit`, a rule that is *not* in the package: an agent gets
   its local reward only on trajectories whose answer was right, plus the answer reward;
3. normalise within each group (GRPO) and update all three agents at once with
   :class:`agents.grpo.PerAgentGRPO`;
4. every ``eval_every`` iterations, greedy accuracy on held-out validation questions.

    python examples/custom_credit_loop.py --iterations 30
    python examples/custom_credit_loop.py --credit adaptive     # a built-in strategy instead

It prints one line per evaluation and, with ``--json``, a final JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import comam_env  # noqa: E402
from comam_env.dataclass_args import add_dataclass_arguments, dataclass_values  # noqa: E402
from comam_env.threads import set_threads  # noqa: E402
from agents.base import ROLE_NAMES, make_policy  # noqa: E402
from agents.credit import assign_credit_batch  # noqa: E402
from agents.grpo import GRPOConfig, PerAgentGRPO, RoleBatch, group_advantages  # noqa: E402
from agents.rollout import collect_rollouts, evaluate  # noqa: E402


@dataclass
class Args:
    env: str = field(default="synthetic-32k", metadata={"help": "environment id"})
    credit: str = field(default="answer-gated", metadata={"help": "'answer-gated' (this file) or a built-in strategy (agents.credit)"})
    seed: int = field(default=0, metadata={"help": "seeds question draws, env resets, sampling and initialisation"})
    iterations: int = field(default=30, metadata={"help": "rollout + update iterations"})
    batch_queries: int = field(default=8, metadata={"help": "questions per iteration"})
    group_size: int = field(default=8, metadata={"help": "trajectories per question (G)"})
    lr: float = field(default=1e-2, metadata={"help": "AdamW learning rate of every agent"})
    inner_epochs: int = field(default=2, metadata={"help": "GRPO passes over each batch"})
    eval_every: int = field(default=10, metadata={"help": "evaluate every N iterations"})
    eval_limit: int = field(default=128, metadata={"help": "validation questions per evaluation"})
    env_pool: int = field(default=64, metadata={"help": "environments stepped in lockstep"})
    json: bool = field(default=False, metadata={"help": "print the final summary as JSON"})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads for torch (None: $OMP_NUM_THREADS, else the idle CPUs this process may use, capped at 8)"})


def answer_gated_credit(local: dict[str, np.ndarray], answer: np.ndarray) -> dict[str, np.ndarray]:
    """Per role: ``r_ans + r_local · r_ans`` over ``(B, G)`` arrays. A role's local reward counts
    only where the system answered right; undefined local rewards (NaN) count as 0."""
    return {role: answer + np.nan_to_num(r, nan=0.0) * answer for role, r in local.items()}


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_dataclass_arguments(p, Args, defaults=Args())
    return Args(**dataclass_values(p.parse_args(argv), Args))


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)  # torch's default (one per machine core) oversubscribes shared CPUs
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    # Environments: evidence-session episodes for training, held-out questions for validation.
    make = lambda split, n: [comam_env.make(args.env, split=split, episode="evidence-session", view="selection")  # noqa: E731
                             for _ in range(n)]
    train_envs = make("train", min(args.env_pool, args.batch_queries * args.group_size))
    eval_envs = make("validation", min(args.env_pool, 32))
    train_ids = list(train_envs[0].unwrapped.question_ids)
    eval_ids = list(eval_envs[0].unwrapped.question_ids)[: args.eval_limit]

    # One selection policy with a network per role; all roles use it.
    dim = int(train_envs[0].observation_space(train_envs[0].possible_agents[0])["candidates"].shape[-1])
    policy = make_policy("selection", dim=dim, seed=args.seed)
    roles = {r: policy for r in ROLE_NAMES}
    updater = PerAgentGRPO(policy, GRPOConfig(lr=args.lr, inner_epochs=args.inner_epochs), generator=gen)

    def validate() -> float:
        acc = evaluate(eval_envs, roles, eval_ids, seed=args.seed)["accuracy"]
        policy.train()
        return acc

    curve = [(0, validate())]
    print(f"iteration   0  validation accuracy {curve[-1][1]:.3f}", flush=True)
    for it in range(1, args.iterations + 1):
        # 1. group rollouts
        qids = [train_ids[i] for i in rng.choice(len(train_ids), size=args.batch_queries, replace=False)]
        with torch.no_grad():
            batch = collect_rollouts(train_envs, roles, qids, args.group_size, rng=rng, generator=gen)
        local = {r: batch.local_matrix(r) for r in ROLE_NAMES}
        answer = batch.global_matrix()

        # 2. credit: one reward per (question, trajectory) and role
        if args.credit == "answer-gated":
            rewards = answer_gated_credit(local, answer)
        else:
            rewards = assign_credit_batch(args.credit, local, answer).rewards

        # 3. group-normalised advantages; every action of a role in a trajectory shares its advantage
        role_batches = {}
        for r in ROLE_NAMES:
            adv = group_advantages(rewards[r])
            acts = batch.actions_of(r)
            where = [batch.trajectories[a.trajectory] for a in acts]
            role_batches[r] = RoleBatch(samples=[a.sample for a in acts],
                                        advantages=np.asarray([adv[t.group, t.member] for t in where]))
        updater.update(role_batches)

        # 4. validation
        if it % args.eval_every == 0 or it == args.iterations:
            curve.append((it, validate()))
            print(f"iteration {it:3d}  validation accuracy {curve[-1][1]:.3f}  "
                  f"(training rollouts {answer.mean():.3f})", flush=True)

    summary = {"credit": args.credit, "seed": args.seed, "iterations": args.iterations,
               "start_accuracy": curve[0][1], "final_accuracy": curve[-1][1], "curve": curve}
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
