"""``comam-env leaderboard``: validate, score and render submissions; run agents on hidden tracks.

Usage::

    comam-env leaderboard validate DIR_OR_ARCHIVE [...] [--json] [--format-only]
    comam-env leaderboard score DIR_OR_ARCHIVE [--json] [--seed 0] [--resamples 2000] [--out score.json]
    comam-env leaderboard render [--submissions leaderboard/submissions] [--readme leaderboard/README.md]
                                 [--html leaderboard/index.html] [--skip-invalid]
    COMAM_HIDDEN_SEED=... comam-env leaderboard run-agent ENTRY --track synthetic-32k-hidden --out DIR
                                 [--limit N] [--knob key=value ...]
    comam-env leaderboard submit --predictions FILE | --run DIR [--name ... --authors ... --description ...]
                                 [--out DIR] [--no-input]

Exit codes: 0 success; 1 the command ran but the input is invalid or the run
failed (every validation error is printed, naming file, line and field); 2 usage
errors; 3 internal errors (``comam_env.cli``). ``validate``, ``score`` and ``render`` never execute submission content;
``run-agent`` imports and runs the agent's code (see :mod:`leaderboard.run_agent`).
"""

from __future__ import annotations

import argparse
import json
import sys

from comam_env.cli import Command, nonnegative_int, parse_key_value, positive_int

#: registered with ``comam-env`` through the ``comam_env.commands`` entry point (pyproject.toml)
COMMANDS = (
    Command("leaderboard", "validate, score and render leaderboard submissions", "leaderboard.cli"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    from . import LEADERBOARD_DIR, SUBMISSIONS_DIR

    sub = parser.add_subparsers(dest="lb_command", metavar="ACTION")
    sub.required = True
    v = sub.add_parser("validate", help="strictly validate submission folders or .zip/.tar.gz archives")
    v.add_argument("paths", nargs="+", metavar="DIR_OR_ARCHIVE")
    v.add_argument("--json", action="store_true", help="print one JSON object per submission")
    v.add_argument("--format-only", action="store_true",
                   help="check files and fields only, not question ids against the track's data")
    s = sub.add_parser("score", help="score one submission (accuracy, 95%% CI, per type, cost, probe margins)")
    s.add_argument("path", metavar="DIR_OR_ARCHIVE")
    s.add_argument("--json", action="store_true", help="print deterministic JSON (sorted keys)")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")
    s.add_argument("--out", default=None, help="also write the JSON score to this file")
    r = sub.add_parser("render", help="write the README table and the static index.html from the submissions")
    r.add_argument("--submissions", default=str(SUBMISSIONS_DIR), help="folder of submission folders")
    r.add_argument("--readme", default=str(LEADERBOARD_DIR / "README.md"), help="README to update between markers")
    r.add_argument("--html", default=str(LEADERBOARD_DIR / "index.html"), help="static page to write")
    r.add_argument("--skip-invalid", action="store_true", help="leave invalid entries out instead of failing")
    r.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")
    r.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")
    a = sub.add_parser("run-agent", help="evaluate an agent entry point on a hidden track (runs its code!)")
    a.add_argument("entry", metavar="ENTRY", help="module:callable, or an 'agent' submission folder/archive")
    a.add_argument("--track", required=True, help="hidden track, e.g. synthetic-32k-hidden")
    a.add_argument("--out", default=None, help="entry folder to write (default leaderboard/submissions/<track>--<name>)")
    a.add_argument("--secret-env", default="COMAM_HIDDEN_SEED", help="environment variable holding the secret")
    a.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N hidden questions (smoke run)")
    a.add_argument("--knob", type=parse_key_value, action="append", default=None, metavar="KEY=VALUE",
                   help="synthetic generator knob (leaderboard.hidden.KNOB_BOUNDS; recorded as generator_knobs)")
    a.add_argument("--name", default=None, help="name shown in the table (default: the submission's)")
    a.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")
    a.add_argument("--json", action="store_true", help="print the score as JSON")
    m = sub.add_parser("submit", help="write a submission folder (metadata.json, predictions, COMMAND) from an "
                       "evaluation's predictions or a training run, asking only for what they cannot know")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictions", metavar="FILE", help="predictions JSONL written by `comam-env evaluate --out`")
    src.add_argument("--run", metavar="DIR", help="training run whose predictions `comam-env evaluate --run DIR` wrote "
                     "(found in DIR or ./predictions through their .meta.json)")
    m.add_argument("--out", default=None, help="entry folder to write (default leaderboard/submissions/<track>--<name>)")
    m.add_argument("--name", default=None, help="system name shown in the table")
    m.add_argument("--authors", type=_comma_list, default=None, help="comma-separated authors")
    m.add_argument("--description", default=None, help="what the system does")
    m.add_argument("--url", default=None, help="paper or code URL (http/https)")
    m.add_argument("--models", type=_comma_list, default=None,
                   help="comma-separated models used, 'none' for a model-free system (default: inferred)")
    m.add_argument("--training-method", default=None, help="training column (default: inferred from the run)")
    m.add_argument("--track", default=None, help="track (default: the evaluation's env)")
    m.add_argument("--split", choices=["train", "validation", "all"], default=None,
                   help="question split (default: the evaluation's)")
    m.add_argument("--split-seed", type=nonnegative_int, default=None, help="split seed (default: the evaluation's)")
    m.add_argument("--seeds", type=_int_list, default=None, help="comma-separated seeds (default: inferred)")
    m.add_argument("--open-source", action=argparse.BooleanOptionalAction, default=None,
                   help="whether the system is open source (default yes: comam-env's systems are)")
    m.add_argument("--drop-retrieved-memory", action="store_true",
                   help="leave the optional retrieved_memory field out of the copied predictions (smaller entry)")
    m.add_argument("--no-input", action="store_true", help="never ask (also implied when stdin is not a terminal)")
    m.add_argument("--force", action="store_true", help="replace an existing --out folder")


def _comma_list(text: str) -> list[str]:
    return [] if text.strip().lower() in ("", "none") else [p.strip() for p in text.split(",") if p.strip()]


def _int_list(text: str) -> list[int]:
    try:
        return [int(p) for p in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _validate(args) -> int:
    from comam_env.cli import CommandError

    from .validate import validate_submission

    bad = 0
    for path in args.paths:
        report = validate_submission(path, check_ids=not args.format_only)
        bad += not report.ok
        if args.json:
            print(json.dumps(report.to_dict(), sort_keys=True))
        else:
            print(report.format())
    if bad:
        raise CommandError(f"{bad} of {len(args.paths)} submission(s) invalid")
    return 0


def _score(args) -> int:
    from comam_env.cli import CommandError
    from comam_env.data.paths import atomic_write_text

    from .score import ScoreError, dumps, score_entry
    from .validate import SubmissionError

    try:
        score = score_entry(args.path, seed=args.seed, n_resamples=args.resamples)
    except SubmissionError as exc:
        print(exc.report.format(), file=sys.stderr)
        raise CommandError(f"{args.path} is invalid ({exc.report.n_errors} errors)") from None
    except ScoreError as exc:
        raise CommandError(str(exc)) from None
    text = dumps(score)
    if args.out:
        atomic_write_text(args.out, text)
    if args.json:
        sys.stdout.write(text)
    else:
        from .render import format_score

        print(format_score(score))
    return 0


def _render(args) -> int:
    from comam_env.cli import CommandError

    from .render import RenderError, render

    try:
        result = render(args.submissions, args.readme, args.html, skip_invalid=args.skip_invalid,
                        seed=args.seed, n_resamples=args.resamples)
    except RenderError as exc:
        raise CommandError(str(exc)) from None
    for problem in result["skipped"]:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"rendered {result['n_entries']} entries on {result['n_tracks']} track(s): {args.readme}, {args.html}")
    return 0


def _run_agent(args) -> int:
    from comam_env.cli import CommandError

    from . import SUBMISSIONS_DIR
    from .hidden import HiddenTrackError
    from .run_agent import run_agent

    out = args.out
    if out is None:
        import re

        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.name or args.entry.rstrip("/").split("/")[-1])
        out = str(SUBMISSIONS_DIR / f"{args.track}--{stem}")
    try:
        score = run_agent(args.entry, args.track, out, env_var=args.secret_env, limit=args.limit,
                          knobs=dict(args.knob or []), progress=not args.quiet and not args.json,
                          seed=args.seed, name=args.name)
    except HiddenTrackError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        from .score import dumps

        sys.stdout.write(dumps(score))
    else:
        from .render import format_score

        print(format_score(score))
        print(f"entry written to {out}")
    return 0


def _submit(args) -> int:
    import re

    from comam_env.cli import CommandError

    from . import SUBMISSIONS_DIR
    from .submit import SubmitError, build_metadata, find_run_predictions, interactive, known_from_predictions, \
        known_from_run, terminal_ask, write_entry

    given = {"name": args.name, "authors": args.authors, "description": args.description, "url": args.url,
             "models": args.models, "training_method": args.training_method, "track": args.track,
             "split": args.split, "split_seed": args.split_seed, "seeds": args.seeds, "open_source": args.open_source}
    try:
        predictions = args.predictions or find_run_predictions(args.run, args.split)
        known = known_from_predictions(predictions)
        if args.run and known.run is None:
            known_from_run(args.run, known)
        ask = terminal_ask if interactive() and not args.no_input else None
        meta = build_metadata(known, given, ask=ask)
        out = args.out or str(SUBMISSIONS_DIR / (f"{meta['track']}--"
                                                 + (re.sub(r"[^a-z0-9]+", "-", meta["name"].lower()).strip("-") or "entry")))
        report = write_entry(known, meta, out, drop_retrieved_memory=args.drop_retrieved_memory, force=args.force)
    except SubmitError as exc:
        raise CommandError(str(exc)) from None
    print(report.format())
    print(f"entry written to {out}; check it with `comam-env leaderboard score {out}`")
    return 0


def run(args: argparse.Namespace) -> int:
    handlers = {"validate": _validate, "score": _score, "render": _render, "run-agent": _run_agent,
                "submit": _submit}
    return handlers[args.lb_command](args)
