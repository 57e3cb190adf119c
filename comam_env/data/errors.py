"""Errors raised by the data layer.

Both are :class:`ValueError` subclasses so callers that only care about "bad
input" can catch one type; the messages always name the file and, where it
applies, the line/row and field, so a user can fix the file without a debugger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


class DataFormatError(ValueError):
    """A data file exists but is malformed (bad JSON line, missing column, bad value, …).

    Attributes:
        path: the offending file.
        line: 1-based line (JSONL) or row (CSV) number, when known.
        field: the column/key at fault, when known.
    """

    def __init__(self, path: str | Path, message: str, *, line: int | None = None,
                 field: str | None = None, row: int | None = None) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.row = row
        self.field = field
        where = [self.path]
        if row is not None:
            where.append(f"row {row}")
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


class DataNotFoundError(FileNotFoundError, ValueError):
    """Required data files are missing and were not downloaded.

    The message names every missing file, every folder searched, how to
    download the files and the offline synthetic alternative.

    Attributes:
        missing: the missing file names.
        searched: the folders searched, in order.
    """

    def __init__(self, missing: Sequence[str], searched: Sequence[str | Path], *,
                 download_command: str | None = None,
                 alternatives: Sequence[str] = ("synthetic-32k", "synthetic-128k", "synthetic-1m"),
                 env_var: str = "COMAM_DATA_DIR") -> None:
        self.missing = tuple(missing)
        self.searched = tuple(str(p) for p in searched)
        lines = [f"missing data file(s): {', '.join(self.missing)}", "searched (in order):"]
        lines += [f"  - {p}" for p in self.searched] or ["  (no folder)"]
        lines.append(f"put the files in one of these folders, pass data_dir=..., or set ${env_var}")
        if download_command:
            lines.append(f"to download them: {download_command}")
        if alternatives:
            lines.append(
                "offline alternative (built-in synthetic data, no download): "
                + ", ".join(alternatives)
            )
        super().__init__("\n".join(lines))

    def __str__(self) -> str:  # FileNotFoundError would otherwise format (errno, strerror)
        return self.args[0]


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, unexpected content)."""


class ChecksumError(DownloadError, ValueError):
    """A downloaded file's sha256 differs from the known value; the file was discarded.

    Attributes:
        name: file name; expected / actual: hex digests.
    """

    def __init__(self, name: str, expected: str, actual: str, source: str = "") -> None:
        self.name, self.expected, self.actual = name, expected, actual
        src = f" from {source}" if source else ""
        super().__init__(
            f"{name}{src}: sha256 mismatch (expected {expected}, got {actual}); "
            "the download was discarded and nothing was written"
        )
