"""Does a real pretrained LLM learn through the env on a CPU? (issue 14, item 5)

Five systems on the CPU track (``synthetic-mini``) with SmolLM2-135M-Instruct, one shared base
model with a LoRA adapter per role, every system evaluated by the trainer's own protocol
(greedy, validation split, the same ``--eval-limit`` questions; ``--eval-episode`` evidence-session by
default — the paper's full-history episodes give the extractor one 2.5k-token prompt per question,
too slow for this CPU benchmark):

* ``prompt-only``      the untrained model (instructions only);
* ``sft``              supervised warm start on the env's oracle trajectories (agents/sft.py);
* ``sft+comam``        SFT, then CoMAM: joint per-agent GRPO with adaptive credit;
* ``sft+independent``  SFT, then independent optimisation (one role at a time, equal credit —
                       the paper's independent-RL baseline, as in benchmarks/credit_ablation.py);
* ``sft+equal``        SFT, then joint GRPO with equal (1/N) global credit.

The three RL systems start from the *same* SFT adapters of their seed and get the same budget
(``--iterations`` iterations of B queries × G trajectories); zero-variance groups are skipped
(DAPO-style, ``TrainConfig.zero_variance="skip"``), no format reward (paper configuration).

Seed ``k`` evaluates the ``k``-th block of ``--eval-limit`` validation questions (the same block
for all five systems of the seed, so they are compared on the same questions; distinct questions
across seeds). Reported per system: held-out accuracy (mean over seeds × questions) with a 95 % percentile
bootstrap interval over those question outcomes (``comam_env.stats.bootstrap_ci``), and the local
reward (mean of the three roles' validation local rewards) of the starting policy
(``local_reward_start``: the untrained model for prompt-only and sft, the SFT policy for the RL
systems) and of the final one (``local_reward_end``); wall time per system and the process's peak
RSS. ``--png`` draws the training curves (mean local reward and training accuracy per iteration)
and the accuracies with their intervals.

Each (seed, system) result is cached as JSON under ``--out`` so seeds can be run as separate
processes (``--seeds 1 --seed-offset 1``) and aggregated later (``--aggregate``).

    python benchmarks/llm_learning.py --quick --json            # 1 seed, 2 iterations
    python benchmarks/llm_learning.py --seeds 3 --png docs/figures/llm_learning.png
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from comam_env.process_memory import resident_mb  # noqa: E402

SYSTEMS = ("prompt-only", "sft", "sft+comam", "sft+independent", "sft+equal")
#: (credit, mode) of the RL systems; all start from the seed's SFT adapters
RL_SYSTEMS = {"sft+comam": ("adaptive", "joint"), "sft+independent": ("equal", "independent"),
              "sft+equal": ("equal", "joint")}
ROLES = ("extractor", "profiler", "retriever")
#: --quick: the settings that fit the 12-minute budget on 2 idle cores
QUICK = {"seeds": 1, "iterations": 2, "eval_limit": 12, "sft_questions": 16, "sft_epochs": 2}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 iterations, 12 validation questions, "
                    "SFT on 16 questions for 2 epochs (unless given explicitly)")
    ap.add_argument("--json", action="store_true", help="print one JSON object (see docs/llm.md)")
    ap.add_argument("--env", default="synthetic-mini", help="environment id")
    ap.add_argument("--model", default="smollm2", help="'smollm2', 'tiny' (tests) or a model folder / hub id")
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds")
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed")
    # Flags left unset (None) take the smollm2-cpu preset's value (agents/presets.py); given ones override it.
    ap.add_argument("--iterations", type=int, help="RL iterations per system (preset: 20)")
    ap.add_argument("--batch-queries", type=int, help="B (preset: 4)")
    ap.add_argument("--group-size", type=int, help="G (preset: 4)")
    ap.add_argument("--new-tokens", type=int, help="max new tokens per role (preset: 64)")
    ap.add_argument("--eval-limit", type=int, help="validation questions per evaluation (preset: 24)")
    ap.add_argument("--eval-episode", default="evidence-session", choices=["evidence-session", "full-history"],
                    help="validation episodes (full-history is the paper's protocol; on synthetic-mini its one "
                         "2.5k-token extractor prompt per question is out of CPU reach for a batch of LLM runs)")
    ap.add_argument("--lora-layers", type=int,
                    help="LoRA in the last N decoder layers only (LLMPolicyConfig.lora_layers; preset: 8 of SmolLM2's 30)")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], help="model dtype (preset: bfloat16)")
    ap.add_argument("--lr", type=float, help="GRPO learning rate of the LoRA adapters (preset: 2e-5)")
    ap.add_argument("--kl-coef", type=float,
                    help="weight of the k3 KL to the frozen start policy (the SFT policy after the warm start; preset: 0)")
    ap.add_argument("--temperature", type=float, help="sampling temperature of the training rollouts (preset: 1.0)")
    ap.add_argument("--sft-questions", type=int, help="training questions for the SFT data (preset: 32)")
    ap.add_argument("--sft-epochs", type=int, help="SFT epochs (preset: 8)")
    ap.add_argument("--sft-lr", type=float, help="SFT learning rate (preset: 5e-4)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (set explicitly on shared machines)")
    ap.add_argument("--out", default="runs/llm_learning", help="cache folder of per-(seed, system) results")
    ap.add_argument("--fresh", action="store_true", help="ignore cached results")
    ap.add_argument("--aggregate", action="store_true", help="only aggregate the cached results")
    ap.add_argument("--png", help="write the figure here")
    ap.add_argument("--save-policy", action="store_true",
                    help="checkpoint each RL system's final policy in OUT/seed<k>/<system>/checkpoint (a training run "
                         "directory: comam-env evaluate --run OUT/seed<k>/<system>)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of the systems")
    args = ap.parse_args(argv)
    if args.quick:  # smaller settings; flags given explicitly still win
        for name, value in QUICK.items():
            if getattr(args, name) is None or (name == "seeds" and args.seeds == ap.get_default("seeds")):
                setattr(args, name, value)
    bad = sorted(set(args.systems.split(",")) - set(SYSTEMS))
    if bad:
        ap.error(f"--systems: unknown {bad}; choose from {list(SYSTEMS)}")
    return args


def _model_path(name: str) -> str:
    if name == "smollm2":
        from agents.models import load_smollm2_bf16
        return load_smollm2_bf16()
    if name == "tiny":
        from agents.tiny import build_tiny_llm
        from agents.models import models_cache_dir
        return build_tiny_llm(os.path.join(models_cache_dir(), "tiny-llm-benchmark"))
    return name


#: the preset the benchmark runs (the measured CPU configuration, docs/llm.md "CPU cost of one iteration")
PRESET = "smollm2-cpu"

#: (flag, TrainConfig section or None for a top-level field, key): the flags that override the preset
FLAG_FIELDS = (
    ("iterations", None, "iterations"), ("batch_queries", None, "batch_queries"),
    ("group_size", None, "group_size"), ("eval_limit", None, "eval_limit"),
    ("new_tokens", "policy_kwargs", "max_new_tokens"), ("lora_layers", "policy_kwargs", "lora_layers"),
    ("dtype", "policy_kwargs", "dtype"), ("lr", "grpo", "lr"), ("kl_coef", "grpo", "kl_coef"),
    ("temperature", None, "temperature"),
    ("sft_questions", "sft", "questions"), ("sft_epochs", "sft", "epochs"), ("sft_lr", "sft", "lr"),
)


def preset_config(args) -> dict:
    """The benchmark's TrainConfig fields before the per-system ones: the ``smollm2-cpu`` preset
    (bf16, LoRA in the top 8 layers on recorded frozen-layer states, update micro-batches of 4,
    one generate call per role over all groups, its lr / SFT settings / B / G / token budget),
    with every flag that was given on top of it (:data:`FLAG_FIELDS`, ``agents.presets.merge_preset``)."""
    from agents.presets import merge_preset, preset_fields

    preset = preset_fields(PRESET)
    over: dict = {"progress": False, "eval_episode": args.eval_episode, "env": args.env,
                  "policy_kwargs": {"model": _model_path(args.model)}, "grpo": {}, "sft": {}}
    for flag, section, key in FLAG_FIELDS:
        if getattr(args, flag) is not None:
            (over if section is None else over[section])[key] = getattr(args, flag)
    if args.model == "tiny":
        # the 2-layer test model: LoRA in its top layer (still on recorded frozen-layer states)
        over["policy_kwargs"].setdefault("lora_layers", 1)
    fields = merge_preset(preset, over)
    # one group of G per query, whole groups only (as the trainer draws them)
    fields["env_pool"] = fields["batch_queries"] * fields["group_size"]
    if fields["policy_kwargs"].get("generation_batch_size", 0) < fields["env_pool"]:
        fields["policy_kwargs"]["generation_batch_size"] = fields["env_pool"]  # one decode loop per role
    return fields


def resolve(args) -> None:
    """Fill the flags left unset with the preset's values (so the report names what ran)."""
    f = preset_config(args)
    for flag, section, key in FLAG_FIELDS:
        if getattr(args, flag) is None:
            setattr(args, flag, (f if section is None else f[section]).get(key))


def base_config(args, seed: int, **kw):
    """The TrainConfig of one system: :func:`preset_config` plus the seed and ``kw``."""
    from agents.config import TrainConfig

    fields = preset_config(args)
    fields.update(seed=seed, **kw)
    return TrainConfig(**fields)


def held_out(trainer) -> dict:
    """The trainer's evaluation protocol, keeping each question's outcome (for the intervals)."""
    import torch

    from agents.comam import _policies_for_roles
    from agents.rollout import collect_rollouts

    cfg = trainer.cfg
    trainer.policy.eval()
    with torch.no_grad():
        batch = collect_rollouts(trainer.eval_envs, _policies_for_roles(trainer.policy), trainer.eval_ids, 1,
                                 rng=np.random.default_rng(cfg.seed), generator=torch.Generator().manual_seed(cfg.seed),
                                 temperature=cfg.eval_temperature, greedy=cfg.eval_greedy)
    from agents.format_reward import format_matrix

    correct = [float(x) for x in batch.global_matrix()[:, 0]]
    local = {}
    for r in ROLES:
        vals = batch.local_matrix(r)
        local[r] = float(np.nanmean(vals)) if np.isfinite(vals).any() else 0.0
    # format-valid share per role (agents/format_reward.py: retriever tags + answer; others: non-empty, stopped)
    fmt = {r: float(format_matrix(batch, r).mean()) for r in ROLES}
    return {"accuracy": float(np.mean(correct)), "correct": correct, "local": local,
            "local_mean": float(np.mean(list(local.values()))), "format": fmt,
            "question_ids": [str(q) for q in trainer.eval_ids]}


def seed_eval_ids(trainer, seed: int) -> list[str]:
    """Seed ``k``'s validation questions: the ``k``-th block of ``eval_limit`` questions of the
    validation split (wrapping around), the same for every system of the seed. Distinct blocks
    per seed keep the pooled outcomes distinct questions: a greedy untrained model on one shared
    block would repeat the same outcomes in every seed and make the interval look tighter than
    the data are."""
    from agents.comam import _split_ids

    ids = _split_ids(trainer.eval_envs[0])
    limit = trainer.cfg.eval_limit or len(ids)
    if limit >= len(ids):
        return ids
    start = (seed * limit) % len(ids)
    return [ids[(start + i) % len(ids)] for i in range(limit)]


def run_system(args, seed: int, system: str, out: Path) -> dict:
    """Train/evaluate one system for one seed (cached as ``out/seed<k>/<system>.json``)."""
    from agents.comam import Trainer
    from comam_env.data.paths import atomic_write_text

    path = out / f"seed{seed}" / f"{system.replace('+', '_')}.json"
    if path.exists() and not args.fresh:
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    run_dir = out / f"seed{seed}" / system.replace("+", "_")
    curve = []
    if system == "prompt-only":
        trainer = Trainer(base_config(args, seed, mode="none", warm_start=None), run_dir)
    elif system == "sft":
        trainer = Trainer(base_config(args, seed, mode="none", warm_start="sft"), run_dir)
        warm = trainer.warm_start()
        curve = [json.loads(x) for x in (run_dir / "sft.jsonl").read_text().splitlines()]
    else:
        credit, mode = RL_SYSTEMS[system]
        sft_dir = out / f"seed{seed}" / "sft" / "warm_start"
        if not (sft_dir / "policy.json").exists():
            run_system(args, seed, "sft", out)
        trainer = Trainer(base_config(args, seed, credit=credit, mode=mode, warm_start=str(sft_dir)), run_dir)
        if not trainer.resumed:
            trainer.warm_start()
        while trainer.iteration < args.iterations:  # a checkpointed run resumes where it stopped
            rec = trainer.step()
            curve.append({k: rec.get(k) for k in ("iteration", "train_accuracy", "zero_var_frac", "seconds",
                                                  "seconds_rollout", *(f"zero_var_frac_{r}" for r in ROLES),
                                                  *(f"local_{r}" for r in ROLES), *(f"w_{r}" for r in ROLES),
                                                  *(f"gen_tokens_{r}" for r in ROLES),
                                                  *(f"tokens_per_s_{r}" for r in ROLES),
                                                  *(f"grpo_{r}/approx_kl" for r in ROLES),
                                                  *(f"grpo_{r}/clip_frac" for r in ROLES))})
            print(f"  seed {seed} {system} iteration {rec['iteration']}: {rec['seconds']:.0f} s, train acc "
                  f"{rec['train_accuracy']:.2f}, zero-variance {rec.get('zero_var_frac', float('nan')):.2f}",
                  file=sys.stderr, flush=True)
        if args.save_policy:  # a trainer checkpoint (LoRA adapters + optimizer, a few MB): evaluate --run DIR
            trainer._checkpoint()
    trainer.eval_ids = seed_eval_ids(trainer, seed)
    result = {"system": system, "seed": seed, **held_out(trainer), "curve": curve,
              "seconds": time.perf_counter() - t0}
    if system == "sft":
        result["sft"] = warm
    del trainer
    # Free this system's models before the next one is built: peft modules and hooks can hold
    # reference cycles that only the cycle collector reclaims. The 3-seed run before this change
    # peaked at 6.2 GB over 15 systems; with it, --quick's resident set after each RL system stays
    # at 2.21-2.22 GB (docs/llm.md, session 9).
    gc.collect()
    # Both read after the collection and from the same source, so the recorded peak (which
    # --aggregate reports as the runs' peak) always covers the resident set recorded beside it.
    result["rss_mb_after"], result["peak_rss_mb"] = resident_mb()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True))
    return result


def aggregate(results: list[dict], systems, model: str, peak_rss_mb: float) -> dict:
    from comam_env.stats import bootstrap_ci

    by = {s: [r for r in results if r["system"] == s] for s in systems}
    start_of = {"prompt-only": "prompt-only", "sft": "prompt-only"}
    out = {"model": model, "peak_rss_mb": round(peak_rss_mb, 1) if np.isfinite(peak_rss_mb) else None,
           "systems": {}}
    for s, rs in by.items():
        if not rs:
            continue
        pooled = [c for r in rs for c in r["correct"]]
        lo, hi = bootstrap_ci(pooled, seed=0)
        start_sys = start_of.get(s, "sft")
        starts = {r["seed"]: r["local_mean"] for r in by.get(start_sys, [])}
        out["systems"][s] = {
            "accuracy": float(np.mean(pooled)), "ci95": [lo, hi],
            "local_reward_start": float(np.mean([starts[r["seed"]] for r in rs if r["seed"] in starts]))
            if any(r["seed"] in starts for r in rs) else None,
            "local_reward_end": float(np.mean([r["local_mean"] for r in rs])),
            "seeds": sorted(r["seed"] for r in rs), "n_questions": len(pooled),
            "seconds": float(np.mean([r["seconds"] for r in rs])),
            "local_end": {role: float(np.mean([r["local"][role] for r in rs])) for role in ROLES},
        }
    return out


def plot(results: list[dict], summary: dict, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.6))
    for s in RL_SYSTEMS:
        rs = [r for r in results if r["system"] == s and r["curve"]]
        if not rs:
            continue
        n = min(len(r["curve"]) for r in rs)
        it = np.arange(1, n + 1)
        loc = np.mean([[np.nanmean([c[f"local_{x}"] if c[f"local_{x}"] is not None else np.nan for x in ROLES])
                        for c in r["curve"][:n]] for r in rs], axis=0)
        acc = np.mean([[c["train_accuracy"] for c in r["curve"][:n]] for r in rs], axis=0)
        a1.plot(it, loc, marker="o", label=s)
        a2.plot(it, acc, marker="o", label=s)
    a1.set(title="training local reward (mean of roles)", xlabel="iteration")
    a2.set(title="training accuracy", xlabel="iteration")
    a1.legend(fontsize=8)
    names = list(summary["systems"])
    acc = [summary["systems"][s]["accuracy"] for s in names]
    err = np.array([[a - summary["systems"][s]["ci95"][0], summary["systems"][s]["ci95"][1] - a]
                    for s, a in zip(names, acc)]).T
    a3.bar(range(len(names)), acc, yerr=err, capsize=4, color="#4C72B0")
    a3.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
    a3.set(title="held-out accuracy (95% bootstrap CI)", ylim=(0, 1))
    a3.axhline(0.25, color="grey", lw=0.8, ls="--")
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"{Path(summary['model']).name} on the CPU track, seeds {seeds}", fontsize=10)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    resolve(args)
    import torch

    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    systems = [s for s in SYSTEMS if s in args.systems.split(",")]
    seeds = range(args.seed_offset, args.seed_offset + args.seeds)
    t0 = time.perf_counter()
    results = []
    if args.aggregate:
        for p in sorted(out.glob("seed*/*.json")):
            r = json.loads(p.read_text())
            if r["system"] in systems:
                results.append(r)
    else:
        from tqdm.auto import tqdm

        with tqdm(total=len(systems) * len(seeds), desc="llm_learning", unit="system", disable=args.json) as bar:
            for seed in seeds:
                for s in systems:
                    results.append(run_system(args, seed, s, out))
                    bar.update(1)
    rss = resident_mb()[1]
    if args.aggregate:  # this process only read files: the peak of the processes that made the results
        recorded = [r["peak_rss_mb"] for r in results if r.get("peak_rss_mb") is not None]
        rss = max(recorded) if recorded else float("nan")
    summary = aggregate(results, systems, _model_path(args.model) if args.model != "smollm2" else
                        "SmolLM2-135M-Instruct", rss)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    summary["threads"] = torch.get_num_threads()
    summary["preset"] = PRESET
    summary["config"] = {k: getattr(args, k) for k in ("env", "iterations", "batch_queries", "group_size",
                                                       "new_tokens", "eval_limit", "eval_episode", "lora_layers",
                                                       "dtype", "lr", "sft_questions",
                                                       "sft_epochs", "sft_lr")}
    if args.png:
        plot(results, summary, args.png)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(f"model: {summary['model']}  env: {args.env}  threads: {summary['threads']}  wall: "
          f"{summary['wall_seconds']:.0f} s  peak RSS: {rss:.0f} MB  load average (1 min): {os.getloadavg()[0]:.2f}")
    print("| system | accuracy | 95% CI | local reward start → end | seeds | questions | seconds/seed |")
    print("|---|---|---|---|---|---|---|")
    for s, v in summary["systems"].items():
        st = "-" if v["local_reward_start"] is None else f"{v['local_reward_start']:.3f}"
        print(f"| {s} | {v['accuracy']:.3f} | [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] | {st} → "
              f"{v['local_reward_end']:.3f} | {len(v['seeds'])} | {v['n_questions']} | {v['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
