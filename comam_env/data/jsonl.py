"""Reading JSON Lines files: one value per non-blank line, errors naming the file and line.

Used by the readers of ``metrics.jsonl`` (:func:`agents.plots.read_metrics`; checkpoint
trimming in :mod:`agents.checkpoint` keeps its own loop: it drops a torn last line) and
``evidence.jsonl`` (:func:`comam_env.data.evidence.read_evidence_jsonl`). A
bad line — invalid JSON, bytes that are not UTF-8, nesting too deep for the parser — raises
the caller's error type instead of a bare ``JSONDecodeError`` / ``UnicodeDecodeError`` /
``RecursionError`` (decoding rules, BOM and lone surrogates: :mod:`comam_env.data.textfiles`).
(The prediction-file reader of :mod:`baselines.harness` keeps its own loop: it drops a torn
last line and rewrites the file.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import DataFormatError
from .textfiles import decode, load_json_text


def _value_error(path: Path, message: str, line: int) -> Exception:
    return ValueError(f"{path}: line {line}: {message}")


def iter_jsonl(path: str | os.PathLike,
               error: Callable[[Path, str, int], Exception] = _value_error) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, value)`` for every non-blank line of ``path`` (1-based numbers).

    ``error(path, message, line)`` builds the exception raised for a bad line (default
    ``ValueError("<path>: line <n>: <message>")``).
    """
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = decode(raw, path, line=lineno, first=lineno == 1)  # a BOM may open the file
                if not line.strip():
                    continue
                value = load_json_text(line, path, line=lineno)
            except DataFormatError as exc:
                raise error(path, exc.message, lineno) from None
            yield lineno, value
