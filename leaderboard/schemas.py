"""The submission JSON Schemas (``leaderboard/schema/*.schema.json``), checked with :mod:`jsonschema`.

The schema files are the single source of truth for the fields of ``metadata.json``,
each line of ``predictions.jsonl`` and a hidden run's ``score.json``. This module
runs them through ``jsonschema`` (Draft 2020-12, with the ``date`` format
checked) and turns each error into ``(field path, message)`` with a message a
submitter can act on (``seeds[1]: duplicates an earlier item 1``, ``colour:
unknown field (allowed: ...)``) instead of jsonschema's generic text.

One deliberate difference from plain Draft 2020-12: ``integer`` means a JSON
integer literal (``3``), not any number with a zero fraction (``3.0``), and
booleans are never numbers — token counts are counts.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import jsonschema
    from jsonschema import Draft202012Validator, FormatChecker
except ImportError as _exc:  # pragma: no cover - a declared dependency; say how to install it
    raise ImportError("the leaderboard needs jsonschema: pip install 'comam-env[leaderboard]'") from _exc

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
#: schema names shipped in ``leaderboard/schema/`` (``<name>.schema.json``).
SCHEMA_NAMES = ("metadata", "predictions", "score")


def _is_integer(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(_checker: Any, value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_Validator = jsonschema.validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number}))


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """``"metadata"``, ``"predictions"`` or ``"score"``: the JSON Schema shipped in ``leaderboard/schema/``."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"unknown schema {name!r}; shipped: {', '.join(SCHEMA_NAMES)}")
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(name: str):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)  # a broken schema file is a bug: fail loudly
    return _Validator(schema, format_checker=FormatChecker())


def _jtype(v: Any) -> str:
    for name, test in (("null", lambda x: x is None), ("boolean", lambda x: isinstance(x, bool)),
                       ("integer", lambda x: _is_integer(None, x)), ("number", lambda x: _is_number(None, x)),
                       ("string", lambda x: isinstance(x, str)), ("array", lambda x: isinstance(x, list)),
                       ("object", lambda x: isinstance(x, dict))):
        if test(v):
            return name
    return type(v).__name__


def short(v: Any, n: int = 60) -> str:
    """A value as short JSON text for a message."""
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _walk(doc: Any, path) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _messages(err, root_value: Any, root_schema: dict) -> list[tuple[str, str]]:
    """(field, message) pairs for one jsonschema error."""
    path = ""
    for key in err.absolute_path:
        path = _join(path, key)
    kw, want, value = err.validator, err.validator_value, err.instance
    if kw == "required":
        return [(_join(path, k), "is required but missing") for k in want
                if isinstance(value, dict) and k not in value]
    if kw == "additionalProperties":
        props = sorted(err.schema.get("properties", {}))
        return [(_join(path, k), f"unknown field (allowed: {', '.join(props)})")
                for k in value if k not in err.schema.get("properties", {})]
    if kw is None:  # a `false` sub-schema under "properties": jsonschema reports the parent's path
        parent = _walk(root_value, err.absolute_path)
        props = _walk(root_schema, err.absolute_schema_path)
        keys = [k for k, sub in props.items() if sub is False and isinstance(parent, dict) and k in parent]
        return [(_join(path, k), "is not allowed here") for k in keys] or [(path, "is not allowed here")]
    if kw == "type":
        types = want if isinstance(want, list) else [want]
        return [(path, f"must be of type {' or '.join(types)}, got {_jtype(value)} {short(value)}")]
    if kw == "const":
        return [(path, f"must be {short(want)}, got {short(value)}")]
    if kw == "enum":
        return [(path, f"must be one of {', '.join(short(e) for e in want)}; got {short(value)}")]
    if kw == "minLength":
        return [(path, "must not be empty" if want == 1 else f"must have at least {want} characters")]
    if kw == "maxLength":
        return [(path, f"is too long ({len(value)} characters; limit {want})")]
    if kw == "pattern":
        return [(path, f"has an invalid format: {short(value)} does not match {want}")]
    if kw == "format":
        return [(path, f"{value!r} is not a real calendar date" if want == "date" else f"is not a valid {want}")]
    if kw == "minimum":
        return [(path, f"must be >= {want}, got {short(value)}")]
    if kw == "maximum":
        return [(path, f"must be <= {want}, got {short(value)}")]
    if kw == "minItems":
        return [(path, f"must have at least {want} item(s)")]
    if kw == "maxItems":
        return [(path, f"must have at most {want} items, got {len(value)}")]
    if kw == "minProperties":
        return [(path, f"must have at least {want} field(s)")]
    if kw == "uniqueItems":
        seen: list = []
        out = []
        for i, v in enumerate(value):
            if v in seen:
                out.append((_join(path, i), f"duplicates an earlier item {short(v)}"))
            seen.append(v)
        return out
    return [(path, err.message)]


def check_schema(value: Any, name: str) -> list[tuple[str, str]]:
    """Check ``value`` against the shipped schema ``name``; ``[(field path, message), ...]``, ``[]`` if valid.

    Every error is reported (not only the first), each once, in a stable order.
    """
    schema = load_schema(name)
    errs: list[tuple[str, str]] = []
    for err in sorted(_validator(name).iter_errors(value), key=lambda e: (list(map(str, e.absolute_path)),
                                                                           list(map(str, e.absolute_schema_path)))):
        errs += _messages(err, value, schema)
    return list(dict.fromkeys(errs))
