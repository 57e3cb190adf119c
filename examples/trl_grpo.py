"""TRL's GRPOTrainer on comam-env: one role trained against fixed others, or all roles with one
shared model under CoMAM credit (the paper's shared-policy ablation).

    python examples/trl_grpo.py --tiny --steps 2                      # retriever, tiny random Llama
    python examples/trl_grpo.py --tiny --steps 2 --mode shared        # whole episodes, CoMAM credit
    python examples/trl_grpo.py --model Qwen/Qwen2.5-0.5B-Instruct --role extractor --steps 100

``--tiny`` builds the tiny random Llama of ``agents/tiny.py`` (1,024-token window: the env's
prompts are cut by its middle-truncation rule) so the run takes seconds on a CPU; it only
shows the wiring, the model learns nothing useful. With ``--json`` the last line is a JSON
summary (steps done, rewards logged by TRL, how many prompts were truncated).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comam_env.threads import add_threads_argument, set_threads  # noqa: E402


def build_trainer(args, out_dir: str):
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from agents.integrations import trl as comam_trl

    model = args.model
    if args.tiny:
        from agents.tiny import build_tiny_llm

        model = build_tiny_llm(os.path.join(out_dir, "tiny-llm"))
    tok = AutoTokenizer.from_pretrained(model)
    env_kwargs = {"split": "train"}
    common = dict(output_dir=os.path.join(out_dir, "trl"), max_steps=args.steps, learning_rate=args.lr,
                  num_generations=args.group_size, max_completion_length=args.max_completion_length,
                  logging_steps=1, report_to="none", save_strategy="no", seed=args.seed,
                  use_cpu=not args.gpu, bf16=False, dataloader_num_workers=0)
    if args.mode == "role":
        data = comam_trl.role_dataset(args.env, args.role, tok, max_completion_length=args.max_completion_length,
                                      limit=args.questions, seed=args.seed, env_kwargs=env_kwargs)
        reward = comam_trl.RoleReward(args.env, args.role, env_kwargs=env_kwargs)
        config = GRPOConfig(per_device_train_batch_size=args.group_size, **common)
        trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=reward, train_dataset=data, args=config)
        info = {"rows": len(data), "truncated_prompts": int(sum(data["truncated"]))}
    else:
        data = comam_trl.episode_dataset(args.env, limit=args.questions, env_kwargs=env_kwargs)
        rollout = comam_trl.make_rollout_func(args.env, credit=args.credit, seed=args.seed, env_kwargs=env_kwargs)
        # one generation batch = the three roles of one question × group_size episodes
        config = GRPOConfig(per_device_train_batch_size=3 * args.group_size, shuffle_dataset=False, **common)
        trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=comam_trl.credited_reward,
                              train_dataset=data, args=config, rollout_func=rollout)
        info = {"rows": len(data)}
    return trainer, info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--mode", choices=("role", "shared"), default="role",
                   help="'role': train --role against fixed copy-all policies; 'shared': one model plays every role, CoMAM credit")
    p.add_argument("--role", default="retriever", help="trained role in --mode role")
    p.add_argument("--credit", default="adaptive", help="credit strategy in --mode shared (agents.credit)")
    p.add_argument("--model", help="model folder or hub id (or --tiny)")
    p.add_argument("--tiny", action="store_true", help="use the tiny random Llama (agents/tiny.py)")
    p.add_argument("--steps", type=int, default=2, help="GRPO optimiser steps")
    p.add_argument("--group-size", type=int, default=2, help="GRPO num_generations (G)")
    p.add_argument("--questions", type=int, default=8, help="training questions used")
    p.add_argument("--max-completion-length", type=int, default=16, help="generated tokens per completion")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of TRL and of the episodes")
    p.add_argument("--gpu", action="store_true", help="let TRL use a GPU (default: CPU)")
    p.add_argument("--out", help="output folder (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    add_threads_argument(p)
    args = p.parse_args(argv)
    if not args.tiny and not args.model:
        p.error("give --model or --tiny")
    set_threads(args.threads)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.16
    with tempfile.TemporaryDirectory() as tmp:
        trainer, info = build_trainer(args, args.out or tmp)
        result = trainer.train()
        logs = [r for r in trainer.state.log_history if "reward" in r]
        summary = {"steps": trainer.state.global_step, "train_loss": result.training_loss,
                   "rewards": [r["reward"] for r in logs], **info}
    for r in logs:
        print(f"step {r['step']}: reward {r['reward']:.3f} ± {r['reward_std']:.3f}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
