"""``independent`` and ``comam``: policies loaded from a training run directory.

Expected run layout (written by ``comam-env train``, :mod:`agents.comam`)::

    runs/NAME/config.json            the TrainConfig as JSON: at least "env" (env id) and
                                     "policy" ("selection" | "llm"); "mode" ("joint" |
                                     "independent" | "none"), "credit", "seed",
                                     "env_kwargs" are used when present
    runs/NAME/checkpoint/policy/     a saved policy (policy.json + weights) loadable by
                                     agents.base.load_policy(dir) — i.e. the policy class's
                                     load(dir); a checkpoint/ that itself holds policy.json
                                     is accepted too

One policy object acts for all three roles (the trainer keeps per-role
networks/adapters inside it). The view follows the policy kind: ``selection``
policies act on the selection view (``comam_env.make(..., view="selection")``
with the run's ``env_kwargs``, e.g. its ``view_kwargs``), LLM policies on the text
view. Evaluation is greedy through full-history episodes
(:class:`baselines.policy_system.PolicySystem`).

System inference: ``mode == "independent"`` → ``independent``; otherwise ``comam``
(joint training; the credit strategy — ``adaptive`` is CoMAM proper, others are
the paper's ablations — is kept in :attr:`TrainedSystem.run_config`). Asking for
``--system comam`` on an independent run (or the reverse) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .policy_system import PolicySystem


@dataclass(frozen=True)
class RunConfig:
    """What the evaluator needs from a run's ``config.json``."""

    run_dir: str
    env: str
    system: str
    policy: str
    view: str
    mode: str
    credit: str | None
    seed: int
    env_kwargs: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """Parse ``run_dir/config.json``; errors name the file and the field."""
    run = Path(run_dir)
    path = run / "config.json"
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: training run directory not found")
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; a run directory needs config.json and checkpoint/")
    from comam_env.data.textfiles import read_json

    raw = read_json(path)  # errors name the file and line (bad bytes, bad JSON, absurd nesting)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")
    env = raw.get("env")
    if not isinstance(env, str) or not env:
        raise ValueError(f"{path}: field 'env' (environment id) missing or not a string")
    policy = raw.get("policy", "selection")
    if policy not in ("selection", "llm"):
        raise ValueError(f"{path}: field 'policy' must be 'selection' or 'llm', got {policy!r}")
    mode = raw.get("mode", "joint")
    env_kwargs = raw.get("env_kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise ValueError(f"{path}: field 'env_kwargs' must be an object")
    return RunConfig(
        run_dir=str(run), env=env, system="independent" if mode == "independent" else "comam",
        policy=policy, view="selection" if policy == "selection" else "text", mode=str(mode),
        credit=raw.get("credit"), seed=int(raw.get("seed", 0)), env_kwargs=dict(env_kwargs), raw=raw,
    )


def policy_dir(run_dir: str | Path) -> Path:
    """The saved policy folder of a run (``checkpoint/policy/`` or ``checkpoint/``)."""
    from agents.checkpoint import newest_checkpoint

    ckpt = Path(run_dir) / "checkpoint"
    # a run killed inside a checkpoint save keeps its newest complete one under another name
    newest = newest_checkpoint(run_dir)
    for cand in ([newest / "policy"] if newest is not None else []) + [ckpt / "policy", ckpt]:
        if (cand / "policy.json").exists():
            return cand
    raise FileNotFoundError(f"{ckpt}: no saved policy (expected {ckpt / 'policy'}/policy.json)")


class TrainedSystem(PolicySystem):
    """The policies of a training run, evaluated greedily through full-history episodes."""

    name = "comam"

    def __init__(self, run: str | None = None, system_name: str = "comam", seed: int | None = None,
                 env_id: str | None = None, trust_remote_code: bool = False, **overrides: Any) -> None:
        if run is None:
            raise ValueError(f"system {system_name!r} needs --run runs/NAME (a training run directory)")
        cfg = read_run_config(run)
        if system_name in ("independent", "comam") and system_name != cfg.system:
            raise ValueError(f"{run} is a {cfg.system!r} run (mode={cfg.mode!r}), not {system_name!r}")
        from agents.base import ROLE_NAMES, load_policy, read_policy_json

        folder = policy_dir(run)
        if trust_remote_code:
            # only ever from the caller (the CLI's --trust-remote-code), never from the run's files
            import warnings

            warnings.warn(f"{run}: trust_remote_code=True lets transformers import and run Python files "
                          "that come with the run's models; use it only for runs you trust", stacklevel=2)
            if read_policy_json(folder).get("kind") == "llm":
                overrides["trust_remote_code"] = True
        policy = load_policy(folder, **overrides)
        self.name = cfg.system
        self.run_config = cfg
        super().__init__({r: policy for r in ROLE_NAMES}, env_id=env_id or cfg.env, view=cfg.view,
                         env_kwargs=cfg.env_kwargs, seed=cfg.seed if seed is None else seed, greedy=True)
