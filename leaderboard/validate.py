"""Strict validation of leaderboard submissions (``comam-env leaderboard validate``).

A submission is a folder — or a ``.zip`` / ``.tar.gz`` / ``.tgz`` archive of one —
holding ``metadata.json`` and, depending on its kind, ``predictions.jsonl``
(format: ``leaderboard/README.md`` and the JSON Schemas in ``leaderboard/schema/``).

What is checked, with every problem collected (up to :data:`MAX_ERRORS`) rather
than stopping at the first, each naming the file, the line and the field:

* files: only :data:`ALLOWED_FILES`; no sub-folders, no symlinks; size limits
  (:data:`LIMITS`); UTF-8; strict JSON (duplicate keys, ``NaN``/``Infinity`` and
  non-finite numbers are errors);
* ``metadata.json`` against ``schema/metadata.schema.json`` (unknown fields are
  errors), a known track (an env id of ``comam-env envs`` or a hidden track), a
  real calendar date, and the files its kind requires;
* ``predictions.jsonl`` line by line against ``schema/predictions.schema.json``;
  every question id must belong to the track, appear once and belong to the
  declared split as the track's env draws it (``comam_env.registry.split_ids``
  with ``split_seed``: synthetic tracks by persona); every question of the split must be answered; for
  multiple-choice questions the answer must be one of the question's option
  letters (or ``""`` for no answer);
* archives are inspected member by member *before* anything is extracted:
  absolute paths, ``..`` components, symlinks, hard links, devices and other
  non-regular members are rejected, as are too many members or too many bytes;
  only regular files are then copied (streamed, with a byte cap) into a fresh
  temporary folder.

Nothing in a submission is ever executed, imported or unpickled: files are read
as bytes and parsed with :mod:`json`. (Agent submissions name a Python entry
point; validation only checks its syntax. Running it is ``run-agent``'s job,
on the operator's explicit request.)

The JSON Schema files are the single source of truth for the fields; they are
checked with ``jsonschema`` (:mod:`leaderboard.schemas`, which also words the
messages).

Hidden tracks (``*-hidden``): without ``COMAM_HIDDEN_SEED`` only the format of a
``hidden-run`` entry can be checked (a warning says so, and its score is shown
as unverified). With the secret set, the signature in ``score.json`` must
verify (:func:`leaderboard.hidden.check_signature`) and the question ids must be
those of the hidden split regenerated from the secret with the generator knobs
and question limit the entry records.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import math
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from .hidden import (
    HIDDEN_TRACKS,
    SIGNATURE_FIELD,
    HiddenTrackError,
    check_knobs,
    check_signature,
    entry_question_ids,
    secret_from_env,
    split_for_entry,
)
from .schemas import SCHEMA_DIR, _jtype, check_schema, load_schema  # noqa: F401  (re-exported)
from .schemas import short as _short

#: Files a submission folder may contain.
ALLOWED_FILES = ("metadata.json", "predictions.jsonl", "trajectories.jsonl", "score.json", "COMMAND", "README.md")

#: Size limits in bytes (documented in leaderboard/README.md).
LIMITS: dict[str, int] = {
    "metadata.json": 64 * 1024,
    "predictions.jsonl": 32 * 1024 * 1024,
    "trajectories.jsonl": 128 * 1024 * 1024,
    "score.json": 1024 * 1024,
    "COMMAND": 64 * 1024,
    "README.md": 256 * 1024,
    "line": 1024 * 1024,           # one line of a JSONL file
    "archive": 64 * 1024 * 1024,   # the archive file itself (compressed)
    "archive_members": 32,         # entries in an archive (files and folders)
}
LIMITS["archive_total"] = sum(LIMITS[f] for f in ALLOWED_FILES)  # bytes extracted from an archive

#: Most errors reported for one submission; the rest are counted.
MAX_ERRORS = 200

ENTRY_KINDS = ("predictions", "reported", "agent", "hidden-run")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")


# --------------------------------------------------------------------------- issues


@dataclass(frozen=True)
class Issue:
    """One validation problem, located by file, line (1-based, or ``None``) and field."""

    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        return f"{where}: " + (f"field '{self.field}': " if self.field else "") + self.message

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class _Issues:
    """Collects issues up to a cap and counts the ones left out."""

    def __init__(self, cap: int = MAX_ERRORS) -> None:
        self.items: list[Issue] = []
        self.cap = cap
        self.dropped = 0

    def add(self, file: str, message: str, line: int | None = None, field: str | None = None) -> None:
        if len(self.items) < self.cap:
            self.items.append(Issue(file, message, line, field))
        else:
            self.dropped += 1

    def __len__(self) -> int:
        return len(self.items) + self.dropped


@dataclass
class Submission:
    """The parsed content of a valid (or partly valid) submission, held in memory."""

    name: str
    metadata: dict
    predictions: list[dict] | None = None
    score: dict | None = None
    n_trajectories: int = 0
    #: hidden runs: :data:`VERIFIED` or :data:`UNVERIFIED` (``None`` for other kinds).
    verification: str | None = None
    files: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "predictions")


@dataclass
class ValidationReport:
    """Result of :func:`validate_submission`."""

    source: str
    issues: list[Issue] = field(default_factory=list)
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    submission: Submission | None = None

    @property
    def ok(self) -> bool:
        return not self.issues and not self.dropped

    @property
    def n_errors(self) -> int:
        return len(self.issues) + self.dropped

    def to_dict(self) -> dict:
        sub = self.submission
        return {
            "source": self.source,
            "valid": self.ok,
            "n_errors": self.n_errors,
            "errors": [i.to_dict() for i in self.issues],
            "errors_not_shown": self.dropped,
            "warnings": list(self.warnings),
            "kind": sub.kind if sub else None,
            "track": sub.metadata.get("track") if sub else None,
            "n_predictions": len(sub.predictions) if sub and sub.predictions is not None else None,
        }

    def format(self) -> str:
        if self.ok:
            sub = self.submission
            extra = f", {len(sub.predictions)} predictions" if sub and sub.predictions is not None else ""
            head = f"{self.source}: valid ({sub.kind if sub else '?'} entry{extra})"
            return "\n".join([head] + [f"warning: {w}" for w in self.warnings])
        name = Path(self.source).name
        lines = [str(i) if i.file == name else f"{self.source}: {i}" for i in self.issues]
        if self.dropped:
            lines.append(f"... and {self.dropped} more errors not shown")
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"{self.source}: INVALID ({self.n_errors} errors)")
        return "\n".join(lines)


class SubmissionError(ValueError):
    """A submission failed validation; ``report`` holds every issue."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.format())


# --------------------------------------------------------------------------- strict JSON


class _JSONError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _JSONError(f"{name} is not valid JSON (numbers must be finite)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _JSONError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _JSONError(f"number {text} overflows to infinity (numbers must be finite)")
    return v


#: Largest integer accepted anywhere in a submission (``2**53``, the largest a JSON reader in any
#: language represents exactly); bigger ones (``tokens_in: 10**400``) would overflow the scorer.
MAX_INT = 2 ** 53


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 16 or int(text) > MAX_INT or int(text) < -MAX_INT:
        shown = text if len(text) <= 24 else f"{text[:12]}...({len(digits)} digits)"
        raise _JSONError(f"integer {shown} is too large (limit {MAX_INT})")
    return int(text)


def _encodable(obj: Any) -> None:
    """Reject strings that cannot be written as UTF-8 (a lone surrogate escape such as ``"\\ud800"``)."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise _JSONError(f"string holds a lone surrogate {bad.encode('unicode_escape').decode()} "
                         "(not a character; cannot be written as UTF-8)") from None


def loads_strict(text: str) -> Any:
    """``json.loads`` that rejects NaN/Infinity, overflowing numbers, huge integers, duplicate keys and
    lone surrogates."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates,
                         parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise _JSONError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _JSONError("invalid JSON (nested too deeply)") from None
    if "\\u" in text:  # a surrogate can only come from an escape: the text itself is valid UTF-8
        _encodable(obj)
    return obj


# --------------------------------------------------------------------------- tracks


def hidden_tracks() -> dict:
    return HIDDEN_TRACKS


def known_tracks() -> list[str]:
    """Env ids (``comam-env envs``) plus the hidden tracks."""
    from comam_env.registry import list_envs

    return sorted(set(list_envs()) | set(hidden_tracks()))


_DATASETS: dict[str, Any] = {}


def track_dataset(track: str):
    """The dataset behind a public track (an env id), loaded once per process."""
    key = track.lower()
    if key not in _DATASETS:
        from comam_env.data import load_dataset
        from comam_env.registry import resolve_id

        _DATASETS[key] = load_dataset(resolve_id(key).dataset)
    return _DATASETS[key]


def questions_fingerprint(dataset, question_ids) -> str:
    """sha256 of the questions (id, type, query, options, gold answer) in the given order.

    Recorded as ``questions_sha256`` in an entry's metadata, it detects predictions made
    on another version of a track's data (e.g. a changed synthetic generator) even when
    the question ids coincide.
    """
    import hashlib

    h = hashlib.sha256()
    for qid in question_ids:
        q = dataset.question(qid)
        h.update(json.dumps([q.question_id, q.qtype, q.query, list(q.options), q.answer],
                            ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()


def split_ids(track: str, dataset, split: str, split_seed: int = 0) -> list[str]:
    """The questions of ``split`` of a public track as its env draws them (``comam_env.registry.split_ids``:
    synthetic tracks by persona, so a trained run is scored on the personas its trainer held out)."""
    from comam_env.registry import split_ids as env_split_ids

    return env_split_ids(track, dataset, split, seed=split_seed)


# --------------------------------------------------------------------------- archives


def is_archive(path: str | os.PathLike) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in ARCHIVE_SUFFIXES)


def _member_problem(name: str) -> str | None:
    """Why an archive member name is unsafe, or ``None``."""
    if not name or "\x00" in name:
        return "empty or NUL in member name"
    if "\\" in name:
        return "backslash in member name (path separators must be '/')"
    p = PurePosixPath(name)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "absolute path (path traversal)"
    if ".." in p.parts:
        return "'..' component (path traversal)"
    return None


#: archive handles opened by the readers below; closed when ``open_submission`` exits.
_OPEN: list = []


@dataclass
class _Member:
    name: str          # path inside the archive (normalised, no trailing '/')
    is_dir: bool
    size: int
    read: Callable[[], Any]  # returns a binary file object (regular files only)


def _zip_members(path: Path, issues: _Issues, label: str) -> list[_Member] | None:
    try:
        zf = zipfile.ZipFile(path)
        _OPEN.append(zf)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
        # a damaged central directory: unknown "zip file version", a non-UTF-8 name flagged UTF-8, ...
        issues.add(label, f"not a readable zip archive ({exc})")
        return None
    out = []
    for info in zf.infolist():
        mode = (info.external_attr >> 16) & 0xFFFF
        name = info.filename
        problem = _member_problem(name)
        if problem:
            issues.add(label, f"member {name!r}: {problem}")
            continue
        if mode and stat.S_ISLNK(mode):
            issues.add(label, f"member {name!r}: symlinks are not allowed")
            continue
        if info.is_dir():
            out.append(_Member(name.rstrip("/"), True, 0, lambda: None))
            continue
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            issues.add(label, f"member {name!r}: not a regular file")
            continue
        if info.flag_bits & 0x1:
            issues.add(label, f"member {name!r}: encrypted members are not allowed")
            continue
        out.append(_Member(name, False, info.file_size, lambda info=info: zf.open(info)))
    return out


def _tar_members(path: Path, issues: _Issues, label: str) -> list[_Member] | None:
    try:
        tf = tarfile.open(path, mode="r:*")
        _OPEN.append(tf)
        members = []
        declared = 0
        for m in tf:  # iterate: stop reading (and decompressing) once a cap is exceeded
            members.append(m)
            declared += max(0, m.size)
            if len(members) > LIMITS["archive_members"] or declared > LIMITS["archive_total"]:
                issues.add(label, f"more than {LIMITS['archive_members']} members or {LIMITS['archive_total']} "
                           "bytes once extracted; stopped reading")
                return None
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        issues.add(label, f"not a readable tar archive ({exc})")
        return None
    out = []
    for m in members:
        name = m.name
        problem = _member_problem(name)
        if problem:
            issues.add(label, f"member {name!r}: {problem}")
            continue
        if m.issym() or m.islnk():
            issues.add(label, f"member {name!r}: {'symlinks' if m.issym() else 'hard links'} are not allowed")
            continue
        if m.isdir():
            out.append(_Member(name.rstrip("/"), True, 0, lambda: None))
            continue
        if not m.isreg():
            issues.add(label, f"member {name!r}: not a regular file (device, fifo or other special member)")
            continue
        out.append(_Member(name, False, m.size, lambda m=m: tf.extractfile(m)))
    return out


@contextlib.contextmanager
def open_submission(path: str | os.PathLike, issues: _Issues | None = None) -> Iterator[Path | None]:
    """Yield a folder holding the submission: ``path`` itself, or a temp copy of an archive's files.

    Archive members are inspected before extraction; problems go to ``issues``
    and yield ``None`` when nothing safe can be extracted. The temp folder is
    removed on exit.
    """
    issues = issues if issues is not None else _Issues()
    src = Path(path)
    label = src.name
    if not is_archive(src):
        yield src
        return
    if src.is_symlink():
        issues.add(label, "the archive is a symlink; pass the real file")
        yield None
        return
    if not src.is_file():
        issues.add(label, "archive not found")
        yield None
        return
    if src.stat().st_size > LIMITS["archive"]:
        issues.add(label, f"archive is {src.stat().st_size} bytes; limit {LIMITS['archive']}")
        yield None
        return
    reader = _zip_members if src.name.lower().endswith(".zip") else _tar_members
    opened = len(_OPEN)
    try:
        members = reader(src, issues, label)
        if members is None:
            yield None
            return
        with _extracted(members, issues, label) as folder:
            yield folder
    finally:
        while len(_OPEN) > opened:
            _OPEN.pop().close()


#: what reading a damaged member raises (zipfile: BadZipFile for a bad CRC or a size header that
#: lies, zlib.error for a corrupt deflate stream, EOFError when the data ends early; tarfile and
#: gzip: ReadError, BadGzipFile (an OSError) or EOFError; LZMAError for damaged xz/lzma data;
#: NotImplementedError: an unknown compression method; UnicodeDecodeError, a ValueError: a damaged name).
_CORRUPT_MEMBER = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, tarfile.TarError,
                   NotImplementedError, ValueError)


@contextlib.contextmanager
def _extracted(members: list, issues: _Issues, label: str) -> Iterator[Path | None]:
    """Check the member list, then stream the allowed regular files into a temp folder."""
    if len(members) > LIMITS["archive_members"]:
        issues.add(label, f"more than {LIMITS['archive_members']} members")
        yield None
        return
    files = [m for m in members if not m.is_dir]
    # a single top-level folder (``entry/metadata.json``) is stripped
    tops = {PurePosixPath(m.name).parts[0] for m in members}
    strip = len(tops) == 1 and all(len(PurePosixPath(m.name).parts) > 1 for m in files)
    plan: list[tuple[_Member, str]] = []
    total = 0
    for m in files:
        parts = PurePosixPath(m.name).parts[1 if strip else 0:]
        rel = "/".join(parts)
        if len(parts) != 1:
            issues.add(label, f"member {m.name!r}: sub-folders are not allowed (expected {', '.join(ALLOWED_FILES)})")
            continue
        if rel not in ALLOWED_FILES:
            issues.add(label, f"member {m.name!r}: unknown file (allowed: {', '.join(ALLOWED_FILES)})")
            continue
        if any(r == rel for _, r in plan):
            issues.add(label, f"member {m.name!r}: file appears twice in the archive")
            continue
        if m.size > LIMITS[rel]:
            issues.add(label, f"member {m.name!r}: {m.size} bytes; limit for {rel} is {LIMITS[rel]}")
            continue
        total += m.size
        plan.append((m, rel))
    if total > LIMITS["archive_total"]:
        issues.add(label, f"archive expands to {total} bytes; limit {LIMITS['archive_total']}")
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="comam-submission-"))
    try:
        for m, rel in plan:
            cap = LIMITS[rel]
            written = 0
            try:
                with m.read() as fin, open(tmp / rel, "xb") as fout:
                    while True:
                        chunk = fin.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > cap:  # the header lied about the size (zip bomb): stop
                            break
                        fout.write(chunk)
            except _CORRUPT_MEMBER as exc:  # lying size header, bad CRC, corrupt deflate/gzip stream
                (tmp / rel).unlink(missing_ok=True)
                issues.add(label, f"member {m.name!r}: corrupt archive data ({type(exc).__name__}: {exc})")
                continue
            if written > cap:
                (tmp / rel).unlink()
                issues.add(label, f"member {m.name!r}: expands beyond the {cap}-byte limit for {rel}")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- files


def _read_text(folder: Path, name: str, issues: _Issues) -> str | None:
    path = folder / name
    size = path.stat().st_size
    if size > LIMITS[name]:
        issues.add(name, f"file is {size} bytes; limit {LIMITS[name]}")
        return None
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issues.add(name, f"not valid UTF-8 (byte {exc.start})", line=line)
        return None


def _jsonl(text: str, name: str, issues: _Issues) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each line; problems go to ``issues``."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if not lines:
        issues.add(name, "file is empty")
    for n, line in enumerate(lines, start=1):
        if len(line.encode("utf-8")) > LIMITS["line"]:
            issues.add(name, f"line is longer than {LIMITS['line']} bytes", line=n)
            continue
        if not line.strip():
            issues.add(name, "empty line", line=n)
            continue
        try:
            obj = loads_strict(line.rstrip("\r"))
        except _JSONError as exc:
            issues.add(name, str(exc), line=n)
            continue
        yield n, obj


def _list_folder(folder: Path, issues: _Issues) -> list[str]:
    names = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_symlink():
            issues.add(entry.name, "symlinks are not allowed in a submission")
        elif entry.is_dir(follow_symlinks=False):
            issues.add(entry.name, "sub-folders are not allowed in a submission")
        elif not entry.is_file(follow_symlinks=False):
            issues.add(entry.name, "not a regular file")
        elif entry.name not in ALLOWED_FILES:
            issues.add(entry.name, f"unknown file (allowed: {', '.join(ALLOWED_FILES)})")
        else:
            names.append(entry.name)
    return names


# --------------------------------------------------------------------------- main


def validate_submission(path: str | os.PathLike, *, dataset: Any = None, check_ids: bool = True,
                        cap: int = MAX_ERRORS) -> ValidationReport:
    """Validate a submission folder or archive; never raises for bad content.

    Args:
        path: folder, ``.zip``, ``.tar.gz`` or ``.tgz``.
        dataset: the track's :class:`~comam_env.data.schema.Dataset` (default: loaded
            from the track id; hidden tracks need ``COMAM_HIDDEN_SEED``).
        check_ids: check question ids, split coverage and option letters against
            the dataset (``False``: format only).
        cap: most errors listed (the rest are counted).
    """
    issues = _Issues(cap)
    report = ValidationReport(source=str(path))
    src = Path(path)
    if not is_archive(src):
        if src.is_symlink():
            issues.add(src.name, "the submission folder is a symlink; pass the real folder")
        elif not src.is_dir():
            issues.add(src.name, "not a folder or a .zip/.tar.gz/.tgz archive" if src.exists() else "not found")
    if not len(issues):
        with open_submission(src, issues) as folder:
            if folder is not None:
                report.submission = _validate_folder(folder, src, issues, report.warnings, dataset, check_ids)
    report.issues, report.dropped = issues.items, issues.dropped
    return report


def _entry_name(src: Path) -> str:
    name = src.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


#: what :func:`_read_json` returns when the file is missing, unreadable or not JSON (the issue is
#: already recorded); distinct from a file that holds JSON ``null``.
_UNREADABLE = object()


def _read_json(folder: Path, name: str, issues: _Issues) -> Any:
    """The parsed JSON document ``folder/name``, or :data:`_UNREADABLE` after recording why not."""
    text = _read_text(folder, name, issues)
    if text is None:
        return _UNREADABLE
    try:
        return loads_strict(text)
    except _JSONError as exc:
        issues.add(name, str(exc))
        return _UNREADABLE


def _validate_folder(folder: Path, src: Path, issues: _Issues, warnings: list[str], dataset: Any,
                     check_ids: bool) -> Submission | None:
    files = _list_folder(folder, issues)
    if "metadata.json" not in files:
        issues.add("metadata.json", "missing (every submission needs metadata.json)")
        return None
    meta = _read_json(folder, "metadata.json", issues)
    if meta is _UNREADABLE:
        return None
    schema_errors = check_schema(meta, "metadata")
    for fld, msg in schema_errors:
        issues.add("metadata.json", msg, field=fld or None)
    if not isinstance(meta, dict):
        return None
    url_ok = not any(fld == "url" for fld, _ in schema_errors)
    if url_ok and isinstance(meta.get("url"), str) and safe_url(meta["url"]) is None:
        issues.add("metadata.json", f"must be a plain http:// or https:// address, got {_short(meta['url'])}",
                   field="url")
    sub = Submission(name=_entry_name(src), metadata=meta, files=tuple(files))
    kind = meta.get("kind", "predictions")
    kind = kind if isinstance(kind, str) else "?"  # a non-string kind is a schema error already
    track = meta.get("track") if isinstance(meta.get("track"), str) else None  # else a schema error
    hidden = isinstance(track, str) and track in hidden_tracks()
    if isinstance(track, str) and track not in known_tracks():
        issues.add("metadata.json", f"unknown track {track!r}; known: {', '.join(known_tracks())}", field="track")
        track = None
    # which files each kind needs / forbids
    needs = {"predictions": ("predictions.jsonl",), "reported": (), "agent": (),
             "hidden-run": ("predictions.jsonl", "score.json")}.get(kind, ())
    forbids = {"predictions": ("score.json",), "reported": ("predictions.jsonl", "trajectories.jsonl", "score.json"),
               "agent": ("predictions.jsonl", "trajectories.jsonl", "score.json"), "hidden-run": ()}.get(kind, ())
    for f in needs:
        if f not in files:
            issues.add(f, f"missing (required for a {kind!r} entry)")
    for f in forbids:
        if f in files:
            why = "a reported number has no predictions" if kind == "reported" else f"not part of a {kind!r} entry"
            issues.add(f, f"not allowed here: {why}")
    if hidden and kind == "predictions":
        issues.add("metadata.json", "hidden tracks take agent submissions (kind 'agent'); their predictions "
                   "are produced by `comam-env leaderboard run-agent`", field="kind")
    if not hidden and kind in ("agent", "hidden-run") and track is not None:
        issues.add("metadata.json", f"kind {kind!r} needs a hidden track ({', '.join(hidden_tracks())})", field="track")
    for name in ("COMMAND", "README.md"):
        if name in files:
            _read_text(folder, name, issues)
    hidden_ids = None
    if kind == "hidden-run" and hidden:
        hidden_ids, check_ids = _check_hidden_run(folder, meta, files, issues, warnings, sub, check_ids)
    elif "score.json" in files and kind == "hidden-run":
        sub.score = _read_score(folder, issues)
    if "predictions.jsonl" in files and kind in ("predictions", "hidden-run"):
        sub.predictions = _validate_predictions(folder, meta, track, issues, warnings, dataset, check_ids,
                                                hidden_ids)
    if "trajectories.jsonl" in files and sub.predictions is not None:
        sub.n_trajectories = _validate_trajectories(folder, {p["question_id"] for p in sub.predictions}, issues)
    return sub


def safe_url(url: Any) -> str | None:
    """``url`` when it is a plain ``http(s)://host/...`` address (no whitespace or control
    characters, a host), else ``None`` — so no ``javascript:`` or ``data:`` link is ever rendered."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return url


def _read_score(folder: Path, issues: _Issues) -> dict | None:
    """``score.json`` of a hidden run, checked against ``schema/score.schema.json`` (``None`` if invalid)."""
    score = _read_json(folder, "score.json", issues)
    if score is _UNREADABLE:
        return None
    errs = check_schema(score, "score")
    for fld, msg in errs:
        issues.add("score.json", msg, field=fld or None)
    return score if not errs else None


#: :attr:`Submission.verification` of a hidden run whose signature verified with the secret.
VERIFIED = "verified: signature checked and score recomputable with the hidden-track secret"
#: ... of one checked without the secret.
UNVERIFIED = "unverified: COMAM_HIDDEN_SEED is not set, so the signature and the questions cannot be checked"
#: ... and of one without a signature (checked with the secret).
UNSIGNED = "unverified: score.json carries no signature"


def _check_hidden_run(folder: Path, meta: dict, files: list[str], issues: _Issues, warnings: list[str],
                      sub: Submission, check_ids: bool) -> tuple[list[str] | None, bool]:
    """Knobs, ``score.json`` and — with the secret — the signature of a ``hidden-run`` entry.

    Returns (the question ids the run must cover, whether to check ids): ids only when the
    secret is set and the signature verified (a forged or re-signed entry gets one clear
    error instead of one per question).
    """
    track = meta["track"]
    knobs = meta.get("generator_knobs", {})
    knob_problems = check_knobs(track, knobs)
    for problem in knob_problems:
        issues.add("metadata.json", problem, field="generator_knobs")
    if "score.json" in files:
        sub.score = _read_score(folder, issues)
    try:
        secret = secret_from_env()
    except HiddenTrackError as exc:
        issues.add("metadata.json", f"cannot check this hidden run: {exc}", field="track")
        return None, False
    if secret is None:
        sub.verification = UNVERIFIED
        warnings.append("hidden run not verified: its signature and question ids are checked only when "
                        "COMAM_HIDDEN_SEED is set; until then its score is shown as unverified and not ranked")
        return None, False
    if sub.score is None or knob_problems or "predictions.jsonl" not in files:
        return None, False
    path = folder / "predictions.jsonl"
    if path.stat().st_size > LIMITS["predictions.jsonl"]:
        return None, check_ids  # reported by the predictions check
    if SIGNATURE_FIELD not in sub.score:  # made by hand or before signatures: claims nothing, proves nothing
        sub.verification = UNSIGNED
        warnings.append("hidden run not verified: score.json has no signature (not written by `comam-env "
                        "leaderboard run-agent` with a signing version); its score is shown as unverified and not ranked")
        return None, False
    problem = check_signature(secret, meta, path.read_bytes(), sub.score)
    if problem:  # a signature that does not verify: altered after signing, or another operator's secret
        issues.add("score.json", problem, field="signature")
        return None, False
    sub.verification = VERIFIED
    if not check_ids:
        return None, False
    split = split_for_entry(meta, secret)
    return entry_question_ids(split, meta.get("question_limit")), True


def _validate_predictions(folder: Path, meta: dict, track: str | None, issues: _Issues, warnings: list[str],
                          dataset: Any, check_ids: bool, hidden_ids: list[str] | None = None) -> list[dict] | None:
    name = "predictions.jsonl"
    text = _read_text(folder, name, issues)
    if text is None:
        return None
    rows: list[tuple[int, dict]] = []
    for n, obj in _jsonl(text, name, issues):
        errs = check_schema(obj, "predictions")
        for fld, msg in errs:
            issues.add(name, msg, line=n, field=fld or None)
        if not errs:
            rows.append((n, obj))
    # duplicates are a format error, independent of the dataset
    first: dict[str, int] = {}
    for n, obj in rows:
        qid = obj["question_id"]
        if qid in first:
            issues.add(name, f"duplicate question id {qid!r} (first on line {first[qid]})", line=n, field="question_id")
        else:
            first[qid] = n
    if hidden_ids is not None:  # a hidden run whose signature verified: the regenerated split
        _check_ids(split_for_entry(meta, secret_from_env()).gold, meta, rows, first, name, issues, hidden_ids)
    elif check_ids and track is not None and track not in hidden_tracks():
        ds = dataset
        if ds is None:
            try:
                ds = track_dataset(track)
            except Exception as exc:  # noqa: BLE001 - any loader failure becomes a located error
                issues.add("metadata.json", f"cannot load the track's questions to check ids: {exc}", field="track")
                ds = None
        if ds is not None:
            _check_ids(ds, meta, rows, first, name, issues)
    return [obj for _, obj in rows]


def _check_ids(ds, meta: dict, rows: list[tuple[int, dict]], first: dict[str, int], name: str,
               issues: _Issues, hidden_ids: list[str] | None = None) -> None:
    """Ids against the declared split of ``ds`` (or, for a hidden run, against ``hidden_ids``)."""
    split = meta.get("split")
    seed = meta.get("split_seed", 0)
    if split not in ("train", "validation", "all") or not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        return  # already reported by the schema
    try:
        wanted = hidden_ids if hidden_ids is not None else split_ids(meta["track"], ds, split, seed)
    except ValueError as exc:
        issues.add("metadata.json", f"cannot draw the {split!r} split of this track: {exc}", field="split")
        return
    wanted_set = set(wanted)
    expected = meta.get("questions_sha256")
    if isinstance(expected, str) and re.fullmatch(r"[0-9a-f]{64}", expected):
        actual = questions_fingerprint(ds, wanted)
        if actual != expected:
            issues.add("metadata.json", f"the {split!r} questions of track {meta.get('track')!r} are not the ones "
                       f"these predictions were made on (data or generator version changed): fingerprint here "
                       f"{actual}, recorded {expected}", field="questions_sha256")
    all_ids = {q.question_id for q in ds.questions}
    other = {}
    if split != "all" and hidden_ids is None:
        for s in ("train", "validation"):
            if s != split:
                other.update({q: s for q in split_ids(meta["track"], ds, s, seed)})
    for n, obj in rows:
        qid = obj["question_id"]
        if first.get(qid) != n:
            continue  # duplicate, already reported
        if qid not in all_ids:
            issues.add(name, f"unknown question id {qid!r} (not a question of track {meta.get('track')!r})",
                       line=n, field="question_id")
            continue
        if qid not in wanted_set:
            where = f"the {other[qid]!r} split" if qid in other else "no split"
            seed_text = "the secret's split seed" if hidden_ids is not None else f"split_seed {seed}"
            issues.add(name, f"question id {qid!r} belongs to {where}, not the declared split {split!r} "
                       f"({seed_text})", line=n, field="question_id")
            continue
        q = ds.question(qid)
        if q.options:
            ans = obj["answer"]
            if ans != "" and ans not in q.option_labels:
                issues.add(name, f"{ans!r} is not an option of question {qid!r}: expected one of "
                           f"{', '.join(q.option_labels)} (lower-case letter) or '' for no answer",
                           line=n, field="answer")
    missing = [q for q in wanted if q not in first]
    if missing:
        shown = ", ".join(repr(q) for q in missing[:10]) + (", ..." if len(missing) > 10 else "")
        issues.add(name, f"{len(missing)} of the {len(wanted)} questions of the {split!r} split have no "
                   f"prediction: {shown}", field="question_id")


def _validate_trajectories(folder: Path, predicted: set[str], issues: _Issues) -> int:
    name = "trajectories.jsonl"
    text = _read_text(folder, name, issues)
    if text is None:
        return 0
    count = 0
    for n, obj in _jsonl(text, name, issues):
        if not isinstance(obj, dict):
            issues.add(name, f"must be a JSON object, got {_jtype(obj)}", line=n)
            continue
        qid = obj.get("question_id")
        if not isinstance(qid, str):
            issues.add(name, f"must be a string, got {_short(qid)}", line=n, field="question_id")
        elif qid not in predicted:
            issues.add(name, f"question id {qid!r} has no line in predictions.jsonl", line=n, field="question_id")
        else:
            count += 1
    return count


def load_valid(path: str | os.PathLike, **kw: Any) -> Submission:
    """Validate and return the submission; raise :class:`SubmissionError` listing every issue."""
    report = validate_submission(path, **kw)
    if not report.ok or report.submission is None:
        raise SubmissionError(report)
    return report.submission
