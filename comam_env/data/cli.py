"""``comam-env data``: generate, inspect and download datasets.

* ``comam-env data generate --size 128k --seed 0 --out DIR [--knob key=value ...]``
  writes a synthetic PersonaMem-format folder (:func:`comam_env.data.synthetic.generate`).
  Knobs are passed through as keyword arguments; values are parsed as JSON
  when possible (``--knob filler_ratio=0.5``), else kept as strings.
* ``comam-env data stats DIR_OR_DATASET [--size S] [--json]`` — histories,
  questions per type, token lengths, evidence coverage and the longest-option
  probe accuracy, for a folder (PersonaMem files, a questions-only folder, or
  a LoCoMo folder) or a dataset/env id (``personamem-32k``, ``synthetic-1m``, …).
* ``comam-env data download personamem --split 32k`` / ``comam-env data download locomo``
  fetch the real files into the cache (sha256-verified where known).

Exit codes: 0 success, 1 failure (:class:`comam_env.cli.CommandError`),
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any


def _size(value: str) -> str:
    v = value.strip().lower()
    if v not in ("32k", "128k", "1m"):
        raise argparse.ArgumentTypeError(f"invalid size {value!r} (choose from 32k, 128k, 1m)")
    return v


def _url(value: str) -> str:
    """argparse type of ``--url`` / ``--endpoint``: an http(s) URL (or file:// for local copies)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise argparse.ArgumentTypeError(f"expected an http(s):// or file:// URL, got {value!r}")
    return value.strip()


def _knob(value: str) -> tuple[str, Any]:
    """``--knob key=value``: :func:`comam_env.cli.parse_key_value` plus a valid field name."""
    from comam_env.cli import parse_key_value

    key, parsed = parse_key_value(value)
    key = key.strip().replace("-", "_")
    if not key.isidentifier():
        raise argparse.ArgumentTypeError(f"invalid knob name {key!r}")
    return key, parsed


def _add_knob_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`SyntheticConfig` field besides size/seed (dest ``knob__<field>``)."""
    from comam_env.dataclass_args import add_dataclass_arguments

    from .synthetic import SyntheticConfig

    group = parser.add_argument_group("generator knobs (SyntheticConfig; omitted flags keep their defaults)")
    add_dataclass_arguments(group, SyntheticConfig, exclude=("size", "seed"), dest_prefix="knob__")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")

    g = sub.add_parser("generate", help="write a synthetic PersonaMem-format dataset folder",
                       description="Write questions_<size>.csv, shared_contexts_<size>.jsonl, evidence.jsonl "
                                   "and profiles.json for a synthetic dataset.")
    g.add_argument("--size", type=_size, required=True, help="target history length: 32k, 128k or 1m")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same files; default 0)")
    g.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    g.add_argument("--knob", type=_knob, action="append", default=[], metavar="KEY=VALUE",
                   help="generator knob as key=value, repeatable (any SyntheticConfig field; "
                        "values parsed as JSON when possible)")
    _add_knob_flags(g)
    g.add_argument("--json", action="store_true", help="print the result as JSON")

    s = sub.add_parser("stats", help="summarise a dataset folder, file or dataset id",
                       description="Histories, questions per type, token lengths, evidence coverage and "
                                   "the longest-option probe accuracy.")
    s.add_argument("target", help="a folder (PersonaMem files, questions-only, or locomo10.json), a file "
                                  "(a LoCoMo .json or a PersonaMem questions_<size>.csv) or a "
                                  "dataset id such as personamem-32k or synthetic-128k")
    s.add_argument("--size", type=_size, default=None,
                   help="which PersonaMem split to read when a folder holds several")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")

    d = sub.add_parser("download", help="download real benchmark files into the cache",
                       description="Download PersonaMem (Hugging Face dataset bowen-upenn/PersonaMem) or "
                                   "LoCoMo (snap-research/locomo) into the cache; sha256-verified where known.")
    d.add_argument("dataset", choices=["personamem", "locomo"], help="which benchmark")
    d.add_argument("--split", type=_size, default="32k", help="PersonaMem split: 32k, 128k or 1m (default 32k)")
    d.add_argument("--dest", type=Path, default=None, help="target folder (default: the cache)")
    d.add_argument("--endpoint", type=_url, default=None, help="hub endpoint (default $HF_ENDPOINT or huggingface.co)")
    d.add_argument("--revision", default="main", help="dataset revision (default main)")
    d.add_argument("--backend", choices=["auto", "hub", "urllib"], default="auto",
                   help="download with huggingface_hub, urllib, or whichever is available (default)")
    d.add_argument("--url", type=_url, default=None, help="LoCoMo: URL of locomo10.json (default: the GitHub raw URL)")
    d.add_argument("--force", action="store_true", help="download even if verified files are present")
    d.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)  # old name of --quiet
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(_data_parser=parser)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "data_command", None)
    if action is None:
        args._data_parser.print_help()
        return 2
    return {"generate": _generate, "stats": _stats, "download": _download}[action](args)


# ------------------------------------------------------------------ generate


def _generate(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError

    from .synthetic import generate

    knobs = {k[len("knob__"):]: v for k, v in vars(args).items() if k.startswith("knob__")}
    knobs.update(dict(args.knob))
    try:
        generate(args.size, args.seed, args.out, **knobs)
    except TypeError as exc:
        raise CommandError(f"invalid generator knob(s) {sorted(knobs)}: {exc}") from None
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    files = sorted(p for p in Path(args.out).iterdir() if p.is_file() and not p.name.startswith("."))
    if args.json:
        print(json.dumps({"out": str(args.out), "size": args.size, "seed": args.seed, "knobs": knobs,
                          "files": {p.name: p.stat().st_size for p in files}}, indent=2, default=str))
    else:
        print(f"wrote synthetic-{args.size} (seed {args.seed}) to {args.out}:")
        for p in files:
            print(f"  {p.name:<32} {p.stat().st_size:>12,d} bytes")
    return 0


# ------------------------------------------------------------------ stats


def _folder_stats(folder: Path, size: str | None, progress: bool = True) -> list[dict]:
    from comam_env.cli import CommandError
    from .evidence import read_evidence_jsonl
    from .personamem import canonical_size, file_names, load_personamem_dir, read_questions_csv
    from .stats import dataset_stats, questions_stats

    if (folder / "locomo10.json").is_file():
        from .locomo import load_locomo

        return [dataset_stats(load_locomo(folder))]
    present = []
    for p in sorted(folder.glob("questions_*.csv")):
        m = re.fullmatch(r"questions_(32k|128k|1m)\.csv", p.name, re.IGNORECASE)
        if m:
            present.append(canonical_size(m.group(1)))
    if size is not None:
        if canonical_size(size) not in present:
            raise CommandError(f"{folder}: no {file_names(size)[0]}")
        present = [canonical_size(size)]
    if not present:
        raise CommandError(f"{folder}: no PersonaMem questions_<size>.csv or locomo10.json here")
    out = []
    for s in present:
        qname, cname = file_names(s)
        if (folder / cname).is_file():
            out.append(dataset_stats(load_personamem_dir(folder, s, name=_folder_name(folder, s), progress=progress)))
        else:
            skipped: dict[str, int] = {}
            qs = read_questions_csv(folder / qname, size=s, skipped=skipped)
            ev = read_evidence_jsonl(folder / "evidence.jsonl") if (folder / "evidence.jsonl").is_file() else None
            out.append(questions_stats(qs, name=f"personamem-{s.lower()} (questions only)", source=str(folder),
                                       skipped=skipped, evidence=ev))
    return out


def _file_stats(path: Path, size: str | None, progress: bool = True) -> list[dict]:
    """Stats of one data file: a LoCoMo ``.json`` file (any name) or a PersonaMem ``questions_<size>.csv``."""
    from comam_env.cli import CommandError
    from .stats import dataset_stats

    if path.suffix.lower() == ".json":
        from .locomo import read_locomo

        return [dataset_stats(read_locomo(path))]
    m = re.fullmatch(r"questions_(32k|128k|1m)\.csv", path.name, re.IGNORECASE)
    if m:
        return _folder_stats(path.parent, size or m.group(1), progress=progress)
    raise CommandError(f"{path}: not a LoCoMo .json file or a PersonaMem questions_<size>.csv")


def _folder_name(folder: Path, size: str) -> str:
    """``synthetic-<size>`` for a folder the generator wrote (its meta.json has a config), else personamem."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if isinstance(meta, dict) and isinstance(meta.get("config"), dict):
            return f"synthetic-{size.lower()}"
    except (OSError, ValueError, RecursionError):  # a name guess only: an unreadable or absurd meta.json means "not ours"
        pass
    return f"personamem-{size.lower()}"


def _dataset_name(target: str) -> str | None:
    """The dataset behind a dataset name or an environment id/alias (``comam/synthetic-32k-v0``)."""
    from comam_env.registry import resolve_id

    from . import DATASET_NAMES

    if target.strip().lower() in DATASET_NAMES:
        return target.strip().lower()
    try:
        return resolve_id(target).dataset
    except (ValueError, TypeError):
        return None


def _stats(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError
    from . import DATASET_NAMES, load_dataset
    from .errors import DataFormatError, DataNotFoundError
    from .stats import dataset_stats, format_stats

    target = Path(args.target)
    try:
        if target.is_dir():
            results = _folder_stats(target, args.size, progress=not args.quiet)
        elif target.is_file():
            results = _file_stats(target, args.size, progress=not args.quiet)
        else:
            name = _dataset_name(args.target)
            if name is None:
                raise CommandError(f"{args.target!r} is neither a folder nor a dataset id "
                                   f"({', '.join(DATASET_NAMES)})")
            results = [dataset_stats(load_dataset(name))]
    except (DataFormatError, DataNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        print("\n\n".join(format_stats(r) for r in results))
    return 0


# ------------------------------------------------------------------ download


def _download(args: argparse.Namespace) -> int:
    from comam_env.cli import CommandError
    from .download import download_locomo, download_personamem
    from .errors import DownloadError

    try:
        if args.dataset == "personamem":
            paths = download_personamem(args.split, args.dest, endpoint=args.endpoint, revision=args.revision,
                                        backend=args.backend, force=args.force, progress=not args.quiet)
        else:
            paths = {"locomo10.json": download_locomo(args.dest, url=args.url, force=args.force,
                                                      progress=not args.quiet)}
    except (DownloadError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps({name: str(p) for name, p in paths.items()}, indent=2))
    else:
        for name, p in paths.items():
            print(f"{name}: {p}")
    return 0
