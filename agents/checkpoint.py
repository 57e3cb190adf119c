"""Training checkpoints: write one atomically, read it back, resume a run from it.

A run directory's ``checkpoint/`` holds

* ``policy/`` — the policy's own save format (``policy.json`` + weights);
* ``optimizer.safetensors`` — every optimizer tensor, flattened by :func:`flatten_optimizer`
  (absent for runs that do not train, ``mode="none"``);
* ``state.json`` — the iteration, every RNG state (:func:`rng_state`), the best-so-far
  metrics and the optimizer's non-tensor structure (``optimizer_meta``).

:func:`save_checkpoint` builds the folder as ``checkpoint.tmp`` (every file fsynced,
``state.json`` written last, so its presence marks a complete folder), moves the previous
``checkpoint/`` to ``checkpoint.old``, renames the new one into place and deletes the old one.
A process killed at any point leaves at least one complete checkpoint on disk, and
:func:`recover_checkpoint` (run before every resume) finishes or undoes the interrupted save:

=====================================  ==============================================
left on disk by the kill               recovery
=====================================  ==============================================
``checkpoint/`` + partial ``.tmp``     delete ``.tmp`` (resume from ``checkpoint/``)
``checkpoint/`` + complete ``.tmp``    finish the save (``.tmp`` is newer)
complete ``.tmp`` + ``.old`` only      finish the save (``.tmp`` → ``checkpoint/``)
``checkpoint/`` + ``.old``             delete ``.old``
=====================================  ==============================================

:func:`load_checkpoint` reads it back (``state.json`` validated: a negative or non-integer
iteration is an error naming the file) and :func:`keep_metrics_upto` trims ``metrics.jsonl``
to the records the checkpoint had seen, so a resumed run continues the same curve (a torn
last record from a killed write is dropped; a corrupt record elsewhere is an error naming
the file and line).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from comam_env.data.paths import atomic_write_text

from .base import Policy, load_policy

#: Folder names inside a run directory.
CHECKPOINT_DIR = "checkpoint"
TMP_DIR = "checkpoint.tmp"
OLD_DIR = "checkpoint.old"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def atomic_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically (fsynced temp file + ``os.replace``)."""
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
    """Write ``run_dir/checkpoint`` atomically (see the module docstring for the protocol).

    ``updater`` is the :class:`agents.grpo.PerAgentGRPO` (or ``None`` when nothing trains);
    ``state`` is the JSON-able trainer state (iteration, RNG states, best metrics).
    """
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    tmp = run_dir / TMP_DIR
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    policy.save(tmp / "policy")
    if updater is not None:
        opt = updater.state_dict()
        tensors, meta = flatten_optimizer(opt)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = dict(state, optimizer_meta=meta)
    _fsync_tree(tmp)
    atomic_json(tmp / STATE_FILE, state)  # last: its presence marks the folder complete
    _fsync_dir(tmp)
    _commit(run_dir)


def _commit(run_dir: Path) -> None:
    """Move a complete ``checkpoint.tmp`` into place (keeping the previous one until it is)."""
    tmp, final, old = run_dir / TMP_DIR, run_dir / CHECKPOINT_DIR, run_dir / OLD_DIR
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(run_dir)
    if old.exists():
        shutil.rmtree(old)


def _complete(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file()


def recover_checkpoint(run_dir: Path) -> None:
    """Finish or undo a save that a kill interrupted, so ``checkpoint/`` is the newest complete one.

    A no-op on a run directory without leftovers. See the table in the module docstring.
    """
    run_dir = Path(run_dir)
    tmp, final, old = run_dir / TMP_DIR, run_dir / CHECKPOINT_DIR, run_dir / OLD_DIR
    if _complete(tmp):
        _commit(run_dir)
    elif tmp.exists():
        shutil.rmtree(tmp)
    if not final.exists() and _complete(old):
        os.replace(old, final)
    if old.exists() and final.exists():
        shutil.rmtree(old)


def _fsync_dir(folder: Path) -> None:
    # a rename is durable only once its directory is synced (POSIX; a no-op where unsupported)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` (policy savers write plain files), then the folders."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(root))


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


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The folder holding the newest complete checkpoint of ``run_dir``, without changing anything.

    ``checkpoint/`` normally; after a kill inside :func:`save_checkpoint` (before
    :func:`recover_checkpoint` ran) a complete ``checkpoint.tmp`` or ``checkpoint.old``. Readers
    that must not modify a run (``evaluate --run`` on a received run) use this.
    """
    run_dir = Path(run_dir)
    for name in (TMP_DIR, CHECKPOINT_DIR, OLD_DIR):  # newest first, as save_checkpoint makes them
        if _complete(run_dir / name):
            return run_dir / name
    return None


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume (call :func:`recover_checkpoint` first)."""
    return (Path(run_dir) / CHECKPOINT_DIR).exists()


def read_state(path: Path) -> dict:
    """Read and validate a checkpoint's ``state.json``; errors name the file and the field."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(state).__name__}")
    it = state.get("iteration")
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ValueError(f"{path}: field 'iteration' must be an integer >= 0, got {it!r}")
    rng = state.get("rng")
    if not isinstance(rng, dict) or not isinstance(rng.get("numpy"), dict) or not isinstance(rng.get("torch"), list):
        raise ValueError(f"{path}: field 'rng' must hold the 'numpy' and 'torch' generator states")
    if not isinstance(state.get("best", {}), dict):
        raise ValueError(f"{path}: field 'best' must be an object")
    return state


def load_checkpoint(run_dir: Path, *, with_optimizer: bool = True, policy_overrides: dict | None = None
                    ) -> Checkpoint | None:
    """Read ``run_dir/checkpoint`` (``None`` when there is none).

    ``policy_overrides`` go to :func:`agents.base.load_policy` — the caller's explicit options
    such as ``trust_remote_code``, which a saved policy never enables by itself.
    """
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    if not ckpt.exists():
        return None
    if not _complete(ckpt):
        raise ValueError(f"{ckpt}: no {STATE_FILE}; not a complete checkpoint (it is never written "
                         "like this: was the folder edited by hand?)")
    from safetensors.torch import load_file

    state = read_state(ckpt / STATE_FILE)
    policy = load_policy(ckpt / "policy", **(policy_overrides or {}))
    optimizer = None
    if with_optimizer:
        if "optimizer_meta" not in state or not (ckpt / OPTIMIZER_FILE).is_file():
            raise ValueError(f"{ckpt}: no optimizer state ({OPTIMIZER_FILE} + field 'optimizer_meta' of "
                             f"{STATE_FILE}); was it written by a run with mode='none'?")
        tensors = load_file(str(ckpt / OPTIMIZER_FILE))
        try:
            optimizer = unflatten_optimizer(state["optimizer_meta"], tensors)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{ckpt / STATE_FILE}: field 'optimizer_meta' does not match "
                             f"{OPTIMIZER_FILE} ({type(exc).__name__}: {exc})") from None
    return Checkpoint(state=state, policy=policy, optimizer=optimizer)


def _metric_lines(metrics_path: Path) -> list[tuple[str, dict]]:
    text = Path(metrics_path).read_text(encoding="utf-8")
    lines = text.split("\n")
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines):  # no newline after it: the write was cut off
                warnings.warn(f"{metrics_path}: line {n}: dropped a torn record (the run was killed while "
                              "writing it)", stacklevel=3)
                continue
            raise ValueError(f"{metrics_path}: line {n}: invalid JSON ({exc.msg})") from None
        it = rec.get("iteration") if isinstance(rec, dict) else None
        if isinstance(it, bool) or not isinstance(it, int) or it < 0:
            raise ValueError(f"{metrics_path}: line {n}: field 'iteration' must be an integer >= 0, got {it!r}")
        out.append((line, rec))
    return out


def read_metrics(metrics_path: Path) -> list[dict]:
    """The records of ``metrics.jsonl``, dropping a torn last line (a kill during its write).

    Any other unreadable line is an error naming the file and the line.
    """
    return [rec for _, rec in _metric_lines(metrics_path)]


def keep_metrics_upto(metrics_path: Path, iteration: int) -> None:
    """Keep exactly the metrics records a checkpoint at ``iteration`` had seen (atomically)."""
    if not metrics_path.exists():
        return
    kept = [line for line, rec in _metric_lines(metrics_path) if rec["iteration"] <= iteration]
    atomic_write_text(metrics_path, "".join(line + "\n" for line in kept))
