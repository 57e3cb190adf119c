"""The ``comam-env`` command line.

Commands are *registered*, not hard-coded. ``comam_env`` knows only its own commands
(:data:`COMMANDS`: ``envs``, ``data``); the packages above it add theirs through the
``comam_env.commands`` entry-point group of their distribution (pyproject.toml)::

    [project.entry-points."comam_env.commands"]
    agents = "agents.cli:COMMANDS"        # train
    baselines = "baselines.cli:COMMANDS"  # evaluate, demo

An entry point names a sequence of :class:`Command` s in a *light* module of that package (no
torch at import). A command's ``module`` is imported only when that command runs and exposes
``configure(parser)`` (adds its arguments) and ``run(args) -> int``. So ``comam_env`` never
imports ``agents``, ``baselines`` or ``leaderboard`` (tests/test_layering.py checks it), a
third-party package can add a command the same way, and ``comam-env data stats`` never
imports torch. :func:`register` adds a command at run time (tests, notebooks).

Every command also takes ``--quiet`` (no progress bars; each ``run`` honours ``args.quiet``) and
``--threads N`` (CPU threads of torch / BLAS, applied around ``run``; default
:func:`comam_env.threads.default_threads`).

Exit codes (also printed by ``--help``):

* 0 success;
* 1 the command ran but failed: invalid data or submission, a missing file or run, a failed
  validation (:class:`CommandError`);
* 2 invalid command line: unknown flag, missing or out-of-range value — checked before any
  work (argparse's convention; :class:`UsageError`);
* 3 internal error: a bug in comam-env (the traceback is printed; please report it);
* 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Iterable, Sequence

#: entry-point group through which packages register subcommands
ENTRY_POINT_GROUP = "comam_env.commands"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "exit codes: 0 success; 1 the command ran but failed (invalid data, missing files, failed "
    "validation); 2 invalid command line (checked before any work); 3 internal error (a bug: "
    "please report the printed traceback); 130 interrupted."
)


@dataclass(frozen=True)
class Command:
    """One ``comam-env`` subcommand: its name, one-line help, and the module implementing it
    (imported only when the command runs; it defines ``configure(parser)`` and ``run(args)``)."""

    name: str
    help: str
    module: str


#: the commands of the comam_env package itself
COMMANDS: tuple[Command, ...] = (
    Command("envs", "list the registered environment ids", "comam_env.registry"),
    Command("data", "generate, inspect and download datasets", "comam_env.data.cli"),
    Command("serve", "serve an env over HTTP/WebSocket per the OpenEnv spec (integrations extra)",
            "comam_env.integrations.openenv"),
)

_registered: dict[str, Command] = {}


def register(command: Command) -> None:
    """Add (or replace) a subcommand for this process, e.g. from a notebook or a test."""
    _registered[command.name] = command


def command_entry_points() -> list:
    """The entry points of :data:`ENTRY_POINT_GROUP` in every installed distribution.

    Unlike ``importlib.metadata.entry_points(group=...)``, which keeps only the first
    distribution of each name on ``sys.path``, this takes the union: a stale
    ``comam_env.egg-info`` left in a checkout (found first when Python runs from there) must
    not hide the installed metadata's commands."""
    from importlib.metadata import distributions

    found = {}
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.setdefault((ep.name, ep.value), ep)
    return sorted(found.values(), key=lambda e: (e.name, e.value))


def _entry_point_commands() -> tuple[list[Command], list[str]]:
    """Commands registered through the entry-point group, and a warning per broken entry."""
    commands, problems = [], []
    for ep in command_entry_points():
        try:
            loaded = ep.load()
            items = list(loaded)
            if not all(isinstance(c, Command) for c in items):
                raise TypeError("expected a sequence of comam_env.cli.Command")
        except Exception as exc:  # a broken plugin must not take the other commands down
            problems.append(f"entry point {ep.name} = {ep.value}: {type(exc).__name__}: {exc}")
            continue
        commands.extend(items)
    return commands, problems


def available_commands() -> dict[str, Command]:
    """Every subcommand: comam_env's own, the entry points', then :func:`register` ed ones
    (later ones win). Warns on stderr about entry points that cannot be loaded."""
    found, problems = _entry_point_commands()
    for problem in problems:
        print(f"comam-env: warning: ignoring {problem}", file=sys.stderr)
    table: dict[str, Command] = {}
    for command in (*COMMANDS, *found, *_registered.values()):
        table[command.name] = command
    return table


def parse_key_value(text: str) -> tuple[str, object]:
    """argparse ``type`` for ``KEY=VALUE`` flags: the value is parsed as JSON when it can be
    (``lr=0.01`` → float, ``K=32`` → int, ``x='{"a": 1}'`` → dict), else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    if not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a non-empty KEY, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
    except RecursionError:
        raise argparse.ArgumentTypeError(f"value of {key!r} is nested too deeply") from None


def _number(text: str, kind: type, minimum: float | None, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type``: an integer >= 1."""
    return _number(text, int, 1, "an integer >= 1")


def nonnegative_int(text: str) -> int:
    """argparse ``type``: an integer >= 0 (seeds, counts that may be zero)."""
    return _number(text, int, 0, "an integer >= 0")


def finite_float(text: str) -> float:
    """argparse ``type``: a finite float (no nan / inf)."""
    return _number(text, float, None, "a number")


class CommandError(Exception):
    """Raised by a subcommand for an expected failure: printed without a traceback, exit 1."""


class UsageError(CommandError):
    """Raised by a subcommand for an invalid command line found after parsing (e.g. a
    combination of flags, or a config value out of range): printed without a traceback, exit 2.
    Raise it before doing any work."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from comam_env import __version__

    try:
        installed = version("comam-env")
    except PackageNotFoundError:
        installed = None
    where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return f"comam-env {__version__} ({where})" + (
        f" [installed metadata: {installed}]" if installed and installed != __version__ else "")


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterable[argparse.ArgumentParser]:
    """``parser`` itself, or the parsers at the bottom of its sub-command tree."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
            yield from _leaf_parsers(child)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--threads`` on every leaf of ``parser`` (the flags every command takes)."""
    from .threads import threads_type

    for leaf in _leaf_parsers(parser):
        if "--quiet" not in leaf._option_string_actions:
            leaf.add_argument("-q", "--quiet", action="store_true",
                              help="no progress bars (results and errors are still printed)")
        if "--threads" not in leaf._option_string_actions:
            leaf.add_argument("--threads", type=threads_type, default=None, metavar="N",
                              help="CPU threads for torch/BLAS (default: $OMP_NUM_THREADS, else the CPUs "
                                   "this process may use that are not busy, capped at 8)")
        leaf.epilog = leaf.epilog or EXIT_CODES_HELP
    parser.set_defaults(quiet=False, threads=None)  # also there when no leaf was chosen


def build_parser(chosen: str | None = None,
                 commands: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``chosen`` command's module is imported (to add its arguments)."""
    commands = available_commands() if commands is None else commands
    parser = argparse.ArgumentParser(
        prog="comam-env",
        description="comam-env: multi-agent LLM memory systems as an RL benchmark (CoMAM).",
        epilog=EXIT_CODES_HELP + ("" if {"train", "evaluate"} <= set(commands) else
                                  " (train/evaluate/demo/leaderboard are registered by the installed "
                                  "package's entry points: pip install -e . in the checkout)"),
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(commands):
        command = commands[name]
        sp = sub.add_parser(name, help=command.help, description=command.help)
        if name == chosen:  # only import what will run
            importlib.import_module(command.module).configure(sp)
            add_common_arguments(sp)
    return parser


def _internal_error(command: str) -> int:
    traceback.print_exc()
    print(f"comam-env {command}: internal error (a bug in comam-env, not in your input; "
          f"please report it with the traceback above). Exit code {EXIT_INTERNAL}.", file=sys.stderr)
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = available_commands()
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(chosen if chosen in commands else None, commands)
    except Exception:  # a command module that cannot configure itself is our bug
        return _internal_error(chosen or "")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .threads import using_threads

    module = importlib.import_module(commands[args.command].module)
    try:
        with using_threads(args.threads):
            return int(module.run(args) or 0)
    except UsageError as exc:
        print(f"comam-env {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"comam-env {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"comam-env {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `comam-env data stats ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except SystemExit:
        raise
    except Exception:
        return _internal_error(args.command)


if __name__ == "__main__":  # pragma: no cover
    # Under `python -m comam_env.cli` this file runs as __main__; dispatch through the imported
    # module so subcommands raise the same CommandError class that main() catches.
    from comam_env.cli import main as _main

    sys.exit(_main())
