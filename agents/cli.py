"""``comam-env train``: train policies with the CoMAM learner or one of its ablations.

    comam-env train --env synthetic-32k --policy selection --credit adaptive --seed 0 \\
        --iterations 30 --out runs/comam-s0

Every :class:`agents.comam.TrainConfig` field is a flag (``--batch-queries``,
``--group-size``, ``--mode independent``, ``--shared-policy`` …); ``--grpo KEY=VALUE``,
``--credit-kw KEY=VALUE`` and ``--env-kw KEY=VALUE`` / ``--policy-kw KEY=VALUE`` set nested options (values are
parsed as JSON when they can be). Re-running the same command on the same ``--out``
resumes from its checkpoint and continues the same curve; Ctrl-C keeps the last
checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from comam_env.cli import Command

#: registered with ``comam-env`` through the ``comam_env.commands`` entry point (pyproject.toml)
COMMANDS = (
    Command("train", "train policies with the CoMAM learner or an ablation", "agents.cli"),
)

#: dict-valued TrainConfig fields → their repeatable KEY=VALUE flag
NESTED = {"env_kwargs": "--env-kw", "policy_kwargs": "--policy-kw", "credit_kwargs": "--credit-kw", "grpo": "--grpo",
          "sft": "--sft-kw"}
#: names of agents.presets.PRESETS (listed here so `train --help` stays free of the presets' imports)
PRESET_NAMES = ("paper-1gpu", "smollm2-cpu", "smollm2-gpu")


def configure(parser: argparse.ArgumentParser) -> None:
    from comam_env.dataclass_args import add_dataclass_arguments

    from .config import TrainConfig  # torch-free: `train --help` does not import torch

    parser.add_argument("--out", required=True, help="run directory (created; an existing checkpoint is resumed)")
    parser.add_argument("--config", help="JSON file with TrainConfig fields (flags given explicitly override it)")
    parser.add_argument("--preset", choices=sorted(PRESET_NAMES),
                        help="named LLM configuration (agents/presets.py): smollm2-cpu (the CPU track), "
                             "smollm2-gpu (one GPU, vLLM, offline), paper-1gpu (the paper's Qwen2.5-3B/3B/7B "
                             "roles on one 80 GB GPU); --config and flags override it")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    add_dataclass_arguments(parser, TrainConfig, key_value=NESTED)


def _read_config_file(path: str) -> dict:
    from comam_env.cli import CommandError

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
        raise CommandError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(data, dict):
        raise CommandError(f"{path}: a config must be a JSON object of TrainConfig fields, got {type(data).__name__}")
    return data


def config_from_args(args: argparse.Namespace):
    """The run's :class:`TrainConfig` from ``--config`` and the flags, validated before any work:
    every field value, the env id and its ``make`` arguments, and ``--out``. Invalid values raise
    :class:`comam_env.cli.UsageError` (exit 2)."""
    from comam_env.cli import UsageError
    from comam_env.dataclass_args import dataclass_values
    from comam_env.registry import check_make_arguments

    from .config import TrainConfig

    data = _read_config_file(args.config) if args.config else {}
    if getattr(args, "preset", None):
        from .presets import merge_preset, preset_fields

        data = merge_preset(preset_fields(args.preset), data)
    for name, value in dataclass_values(args, TrainConfig).items():
        if name in NESTED:  # KEY=VALUE flags add to (and override keys of) the config file's dict
            base = data.get(name, TrainConfig().__dict__[name] if name == "grpo" else {})
            if not isinstance(base, dict):
                raise UsageError(f"{args.config}: field {name!r} must be an object, got {base!r}")
            value = {**base, **value}
        data[name] = value
    if args.quiet:
        data["progress"] = False
    try:
        config = TrainConfig.from_dict(data)
        for split, episode in (("train", config.train_episode), (config.eval_split, config.eval_episode)):
            check_make_arguments(config.env, **config.env_kwargs_for(split, episode))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    return config


def run(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError

    config = config_from_args(args)  # before importing torch: bad input fails in milliseconds
    from .comam import train

    try:
        summary = train(config, args.out)
    except (ValueError, FileNotFoundError, ConnectionError) as exc:  # ConnectionError: --ray-address
        raise CommandError(str(exc)) from None
    except ImportError as exc:
        if exc.name != "ray":  # --rollout-workers without Ray installed (agents.ray_rollout.init_ray)
            raise
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(f"run {args.out}: iteration {summary['iteration']}, validation accuracy "
              f"{summary.get('val_accuracy', float('nan')):.3f} on {summary.get('val_n_questions')} questions")
        for role in ("extractor", "profiler", "retriever"):
            v = summary.get(f"val_local_{role}")
            if v is not None:
                print(f"  {role:9s} local reward {v:.3f}")
    return 0
