"""The ``comam-env`` command line.

Each subcommand lives in the module that owns it and exposes two functions:
``configure(parser)`` adds its arguments, ``run(args) -> int`` does the work.
Only the chosen subcommand's module is imported, so ``comam-env data stats``
never imports torch, and ``comam_env`` itself never imports ``agents``,
``baselines`` or ``leaderboard`` outside a subcommand (docs/design.md §8).

Exit codes: 0 success, 1 the command ran but failed (invalid data, failed
validation, missing files), 2 usage error (argparse's own convention).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

#: subcommand -> (module, one-line help). Modules are imported lazily.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("comam_env.demo", "run the offline demo on built-in synthetic data"),
    "envs": ("comam_env.registry", "list the registered environment ids"),
    "data": ("comam_env.data.cli", "generate, inspect and download datasets"),
    "train": ("agents.cli", "train policies with the CoMAM learner or an ablation"),
    "evaluate": ("baselines.cli", "evaluate a system or a training run on an env's questions"),
    "leaderboard": ("leaderboard.cli", "validate, score and render leaderboard submissions"),
}


def parse_key_value(text: str) -> tuple[str, object]:
    """argparse ``type`` for ``KEY=VALUE`` flags: the value is parsed as JSON when it can be
    (``lr=0.01`` → float, ``K=32`` → int, ``x='{"a": 1}'`` → dict), else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


class CommandError(Exception):
    """Raised by a subcommand for an expected failure: printed without a traceback, exit 1."""


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comam-env",
        description="comam-env: multi-agent LLM memory systems as an RL benchmark (CoMAM).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only import what will run
            importlib.import_module(module).configure(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except CommandError as exc:
        print(f"comam-env {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"comam-env {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `comam-env data stats ... | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    # Under `python -m comam_env.cli` this file runs as __main__; dispatch through the imported
    # module so subcommands raise the same CommandError class that main() catches.
    from comam_env.cli import main as _main

    sys.exit(_main())
