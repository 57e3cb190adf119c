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
from dataclasses import MISSING, fields

from comam_env.cli import parse_key_value

#: dict-valued TrainConfig fields → their repeatable KEY=VALUE flag
NESTED = {"env_kwargs": "--env-kw", "policy_kwargs": "--policy-kw", "credit_kwargs": "--credit-kw", "grpo": "--grpo"}


def configure(parser: argparse.ArgumentParser) -> None:
    from .config import TrainConfig  # torch-free: `train --help` does not import torch

    parser.add_argument("--out", required=True, help="run directory (created; an existing checkpoint is resumed)")
    parser.add_argument("--config", help="JSON file with TrainConfig fields (flags given explicitly override it)")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.name in NESTED:
            short = NESTED[f.name]
            parser.add_argument(short, dest=f.name, type=parse_key_value, action="append", default=None,
                                metavar="KEY=VALUE", help=help_text)
        elif f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], None)
            if kind is None:  # Optional[...] fields
                kind = float if "float" in str(f.type) else int if "int" in str(f.type) else str
            default = f.default if f.default is not MISSING else None
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=f"{help_text} (default: {default})")


def run(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError

    from .comam import TrainConfig, train

    data: dict = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"{args.config}: cannot read config ({exc})") from None
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name in NESTED:
            merged = dict(data.get(f.name, TrainConfig().__dict__[f.name] if f.name == "grpo" else {}))
            merged.update(dict(value))
            value = merged
        data[f.name] = value
    try:
        config = TrainConfig.from_dict(data)
        summary = train(config, args.out)
    except (ValueError, FileNotFoundError) as exc:
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
