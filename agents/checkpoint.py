"""Training checkpoints: write one atomically, read it back, resume a run from it.

A run directory's ``checkpoint/`` holds

* ``policy/`` — the policy's own save format (``policy.json`` + weights);
* ``optimizer.safetensors`` — every optimizer tensor, flattened by :func:`flatten_optimizer`
  (absent for runs that do not train, ``mode="none"``);
* ``state.json`` — the iteration, every RNG state (:func:`rng_state`), the best-so-far
  metrics and the optimizer's non-tensor structure (``optimizer_meta``).

:func:`save_checkpoint` builds the folder as ``checkpoint.tmp`` and renames it into place;
:func:`load_checkpoint` reads it back and :func:`keep_metrics_upto` trims ``metrics.jsonl``
to the records the checkpoint had seen, so a resumed run continues the same curve.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from comam_env.data.paths import atomic_write_text

from .base import Policy, load_policy

#: Folder names inside a run directory.
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def atomic_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically (:mod:`comam_env.data.paths`)."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=jsonable))


def jsonable(x):
    """``json.dumps`` default for numpy scalars and arrays."""
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


# --------------------------------------------------------------------------- writing


def save_checkpoint(run_dir: Path, policy: Policy, updater, state: dict) -> None:
    """Write ``run_dir/checkpoint`` atomically (a temp folder renamed into place).

    ``updater`` is the :class:`agents.grpo.PerAgentGRPO` (or ``None`` when nothing trains);
    ``state`` is the JSON-able trainer state (iteration, RNG states, best metrics).
    """
    from safetensors.torch import save_file

    tmp = run_dir / "checkpoint.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    policy.save(tmp / "policy")
    if updater is not None:
        opt = updater.state_dict()
        tensors, meta = flatten_optimizer(opt)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = dict(state, optimizer_meta=meta)
    atomic_json(tmp / STATE_FILE, state)
    final = run_dir / CHECKPOINT_DIR
    old = run_dir / "checkpoint.old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a (nested) optimizer state into safetensors tensors + JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(x, path):
        if isinstance(x, torch.Tensor):
            key = "/".join(path)
            tensors[key] = x.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(x, dict):
            return {"__dict__": [[_key(k), walk(v, path + [str(k)])] for k, v in x.items()]}
        if isinstance(x, (list, tuple)):
            return {"__list__": [walk(v, path + [str(i)]) for i, v in enumerate(x)]}
        return x

    return tensors, walk(state, [])


def _key(k):
    # JSON object keys are strings: integer keys (torch's param ids) are tagged to survive.
    return {"__int__": k} if isinstance(k, int) else k


def unflatten_optimizer(meta: Any, tensors: dict[str, torch.Tensor]):
    """Inverse of :func:`flatten_optimizer`."""
    if isinstance(meta, dict) and "__tensor__" in meta:
        return tensors[meta["__tensor__"]]
    if isinstance(meta, dict) and "__dict__" in meta:
        return {(k["__int__"] if isinstance(k, dict) else k): unflatten_optimizer(v, tensors) for k, v in meta["__dict__"]}
    if isinstance(meta, dict) and "__list__" in meta:
        return [unflatten_optimizer(v, tensors) for v in meta["__list__"]]
    return meta


def rng_state(rng: np.random.Generator, gen: torch.Generator) -> dict:
    """The JSON-able state of the trainer's numpy and torch generators."""
    return {"numpy": rng.bit_generator.state, "torch": gen.get_state().tolist()}


def restore_rng(state: dict, rng: np.random.Generator, gen: torch.Generator) -> None:
    """Set both generators back to :func:`rng_state`'s ``state``."""
    rng.bit_generator.state = state["numpy"]
    gen.set_state(torch.tensor(state["torch"], dtype=torch.uint8))


# --------------------------------------------------------------------------- reading


@dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    state: dict
    policy: Policy
    #: the unflattened optimizer state (``None`` when the run saved none)
    optimizer: Any = None

    @property
    def iteration(self) -> int:
        return int(self.state["iteration"])


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume."""
    return (Path(run_dir) / CHECKPOINT_DIR).exists()


def load_checkpoint(run_dir: Path, *, with_optimizer: bool = True, policy_overrides: dict | None = None
                    ) -> Checkpoint | None:
    """Read ``run_dir/checkpoint`` (``None`` when there is none).

    ``policy_overrides`` go to :func:`agents.base.load_policy` — the caller's explicit options
    such as ``trust_remote_code``, which a saved policy never enables by itself.
    """
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    if not (ckpt / STATE_FILE).exists():
        return None
    from safetensors.torch import load_file

    state = json.loads((ckpt / STATE_FILE).read_text())
    policy = load_policy(ckpt / "policy", **(policy_overrides or {}))
    optimizer = None
    if with_optimizer:
        tensors = load_file(str(ckpt / OPTIMIZER_FILE))
        optimizer = unflatten_optimizer(state["optimizer_meta"], tensors)
    return Checkpoint(state=state, policy=policy, optimizer=optimizer)


def keep_metrics_upto(metrics_path: Path, iteration: int) -> None:
    """Keep exactly the metrics records a checkpoint at ``iteration`` had seen."""
    if not metrics_path.exists():
        return
    lines = [l for l in metrics_path.read_text().splitlines() if l.strip()]
    kept = [l for l in lines if json.loads(l).get("iteration", 0) <= iteration]
    atomic_write_text(metrics_path, "".join(l + "\n" for l in kept))
