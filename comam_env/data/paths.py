"""Where data lives, and how files are written safely.

* :func:`cache_dir` — the per-user cache: ``$COMAM_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/comam-env``, else ``~/.cache/comam-env``.
* :func:`search_dirs` / :func:`resolve_files` — find a set of data files. The
  folders are tried in this order and the first folder holding *all* the files
  wins (files of one split must come from one place):

  1. the explicit ``data_dir`` argument, then ``data_dir/<subdir>``;
  2. ``$COMAM_DATA_DIR/<subdir>``, then ``$COMAM_DATA_DIR``;
  3. ``<cache_dir()>/<subdir>`` (where downloads go).

  When no folder holds them all, :class:`DataNotFoundError` names the missing
  files, every folder searched, the download command and the synthetic ids.
* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_writer`
  — write to a temporary file in the destination folder, flush and fsync, then
  ``os.replace`` it over the target. A crash or an exception mid-write never
  leaves a truncated file under the final name (the temp file is removed).
* :func:`remove_stale_temps` — a process killed mid-write (SIGKILL, power loss) cannot
  remove its temp file; the next write into the same folder removes such leftovers
  once nobody has touched them for :data:`STALE_TEMP_SECONDS` (a live writer keeps
  touching its file, so only dead writers' files are that old).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator, Sequence

from .errors import DataNotFoundError

#: Environment variable naming a folder with user-provided data files.
DATA_DIR_ENV = "COMAM_DATA_DIR"
#: Environment variable overriding the cache folder.
CACHE_DIR_ENV = "COMAM_CACHE_DIR"

# The process umask, read once at import (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def cache_dir() -> Path:
    """The per-user cache folder (not created here)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "comam-env"
    return Path.home() / ".cache" / "comam-env"


def search_dirs(data_dir: str | os.PathLike | None = None, subdir: str = "personamem") -> list[Path]:
    """Folders searched for data files, in order, without duplicates."""
    dirs: list[Path] = []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        dirs += [base, base / subdir]
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        base = Path(env).expanduser()
        dirs += [base / subdir, base]
    dirs.append(cache_dir() / subdir)
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def resolve_files(names: Sequence[str], data_dir: str | os.PathLike | None = None, *,
                  subdir: str = "personamem", download_command: str | None = None,
                  alternatives: Sequence[str] = ("synthetic-32k", "synthetic-128k", "synthetic-1m"),
                  ) -> dict[str, Path]:
    """Paths of ``names`` from the first searched folder that holds all of them.

    Raises:
        DataNotFoundError: no folder holds every file. ``missing`` lists the
            files absent from the folder that held the most of them.
    """
    dirs = search_dirs(data_dir, subdir)
    best_missing = list(names)
    for d in dirs:
        missing = [n for n in names if not (d / n).is_file()]
        if not missing:
            return {n: d / n for n in names}
        if len(missing) < len(best_missing):
            best_missing = missing
    raise DataNotFoundError(best_missing, dirs, download_command=download_command, alternatives=alternatives)


#: A temp file or folder of a writer untouched for this long belongs to a killed process.
STALE_TEMP_SECONDS = 3600
# atomic_writer's temp names: "." + target name + "." + mkstemp's 8 random characters + ".tmp"
_TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_cleaned: set[tuple[str, str | None]] = set()


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def remove_stale_temps(folder: str | os.PathLike, *, dir_pattern: str | None = None,
                       max_age: float = STALE_TEMP_SECONDS, once: bool = True) -> list[Path]:
    """Delete leftovers of killed writes in ``folder`` (not recursive); returns what was removed.

    Files named like :func:`atomic_writer`'s temp files (``.<name>.<8 chars>.tmp``) and, when
    ``dir_pattern`` (a regular expression) is given, folders whose names match it fully —
    only when nothing in them was modified for ``max_age`` seconds. With ``once`` a folder is
    scanned at most once per process (writers call this on every write).
    """
    key = (os.path.abspath(folder), dir_pattern)
    if once and key in _cleaned:
        return []
    _cleaned.add(key)
    removed: list[Path] = []
    now = time.time()
    dir_re = re.compile(dir_pattern) if dir_pattern else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        is_dir = entry.is_dir(follow_symlinks=False)
        if not (_TEMP_FILE.match(entry.name) and not is_dir) and not (is_dir and dir_re and dir_re.fullmatch(entry.name)):
            continue
        path = Path(entry.path)
        try:
            if now - _newest_mtime(path) < max_age:
                continue  # maybe a live writer
            if is_dir:
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue  # raced with another cleaner or the writer: leave it
    return removed


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                  newline: str | None = None) -> Iterator[IO]:
    """Context manager yielding a file object whose content replaces ``path`` on success.

    The temp file sits in the same folder (``os.replace`` is only atomic within
    a file system); on an exception it is deleted and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)  # temp files of writers killed earlier
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        # (or keep the replaced file's), so shared data folders stay readable
        try:
            mode_bits = target.stat().st_mode & 0o777
        except FileNotFoundError:
            mode_bits = 0o666 & ~_UMASK
        os.chmod(tmp, mode_bits)
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_writer(path, "wb", encoding=None) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); returns the path."""
    with atomic_writer(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)
