"""Decoding data files safely: UTF-8 (a leading BOM allowed), JSON, and lone surrogates.

Every reader of a user-provided data file (PersonaMem CSV/JSONL/JSON, LoCoMo JSON,
evidence JSONL) goes through these helpers, so malformed bytes end in a
:class:`~comam_env.data.errors.DataFormatError` naming the file and line instead of a bare
``UnicodeDecodeError`` or ``RecursionError``:

* :func:`decode` — strict UTF-8; a UTF-8 byte-order mark at the start of the file is
  dropped (a BOM once glued itself to the first CSV column name, so ``persona_id`` was not
  found and every persona id silently vanished). A non-UTF-8 byte names its line and byte.
* :func:`parse_json` — ``json.loads`` whose syntax errors name the line, and whose
  ``RecursionError`` on absurdly nested input (100k ``[``) becomes a format error.
* :func:`replace_lone_surrogates` — a JSON escape such as ``"\\ud800"`` decodes to a lone
  surrogate, which is not a character: it cannot be encoded (tokenizers, embedders, the
  selection view and every file writer fail on it later). At load time each one is replaced
  by U+FFFD (the Unicode replacement character), with a warning naming the file and line —
  the one normalisation the readers apply; valid surrogate *pairs* decode to one character
  and are untouched.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from .errors import DataFormatError

BOM = "\ufeff"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A \\uD800-\\uDFFF escape in raw JSON text: only then can a parsed value hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def decode(raw: bytes, path: str | Path, *, line: int | None = None, first: bool = True) -> str:
    """``raw`` as text (strict UTF-8). ``first``: ``raw`` starts the file, so a BOM is dropped.

    ``line`` is the line number of ``raw`` in the file when it is one line; otherwise the line
    of a bad byte is computed from its offset.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = line if line is not None else raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataFormatError(path, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column} "
                              f"({exc.reason}); save the file as UTF-8", line=where) from None
    if first and text.startswith(BOM):
        text = text[1:]
    return text


def read_text(path: str | Path) -> str:
    """The whole file as text (see :func:`decode`)."""
    return decode(Path(path).read_bytes(), path)


def parse_json(text: str, path: str | Path, *, line: int | None = None) -> Any:
    """``json.loads(text)`` with errors naming ``path`` and the line (``line`` for one JSONL line)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"invalid JSON ({exc.msg} at column {exc.colno})",
                              line=line if line is not None else exc.lineno) from None
    except RecursionError:
        raise DataFormatError(path, "JSON nested too deeply to parse", line=line) from None


def has_surrogate_escape(text: str) -> bool:
    """Whether raw JSON ``text`` contains a ``\\uD800``–``\\uDFFF`` escape (cheap pre-check)."""
    return _SURROGATE_ESCAPE.search(text) is not None


def replace_lone_surrogates(value: Any, path: str | Path, *, line: int | None = None) -> Any:
    """``value`` (parsed JSON) with every lone surrogate replaced by U+FFFD; warns when it replaced any."""
    count = 0

    def fix(x):
        nonlocal count
        if isinstance(x, str):
            fixed, n = _LONE_SURROGATE.subn("\ufffd", x)
            count += n
            return fixed
        if isinstance(x, list):
            return [fix(v) for v in x]
        if isinstance(x, dict):
            return {fix(k): fix(v) for k, v in x.items()}
        return x

    out = fix(value)
    if count:
        where = f"{path}, line {line}" if line is not None else str(path)
        warnings.warn(f"{where}: replaced {count} lone surrogate escape(s) (not a character, e.g. \\ud800) "
                      "with U+FFFD", stacklevel=3)
    return out


def load_json_text(text: str, path: str | Path, *, line: int | None = None) -> Any:
    """:func:`parse_json` followed, when the text has surrogate escapes, by :func:`replace_lone_surrogates`."""
    value = parse_json(text, path, line=line)
    if has_surrogate_escape(text):
        try:
            value = replace_lone_surrogates(value, path, line=line)
        except RecursionError:
            raise DataFormatError(path, "JSON nested too deeply to parse", line=line) from None
    return value


def read_json(path: str | Path) -> Any:
    """Read a JSON file: UTF-8 (BOM allowed), clear errors, lone surrogates replaced."""
    return load_json_text(read_text(path), path)
