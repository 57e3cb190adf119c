"""Command-line flags from a configuration dataclass: one ``--flag`` per field.

The package's configs (``TrainConfig``, ``SyntheticConfig``, the examples' settings) are
dataclasses whose fields carry their help text in ``metadata["help"]``. The commands that
expose them all use :func:`add_dataclass_arguments` and read the values back with
:func:`dataclass_values`, so a field added to a config is a flag everywhere, with the same
parsing rules:

* ``bool`` → ``--flag`` / ``--no-flag``;
* ``int``, ``float`` (finite), ``str``; ``X | None`` also accepts ``none``;
* ``tuple[...]`` / ``Sequence[...]`` / ``list[...]`` → one or more values, space- or
  comma-separated (``--seeds 0 1 2``, ``--session-turns 15,30``);
* ``dict`` fields named in ``key_value`` → a repeatable ``KEY=VALUE`` flag (values parsed as
  JSON when they can be); other dict fields → a JSON object;
* anything else → the value parsed as JSON, else kept as a string.

A bad value is an argparse usage error (exit 2, before any work), naming the flag.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import MISSING, fields
from typing import Any, Callable, Mapping

_SEQUENCE = re.compile(r"^(?:tuple|list|Sequence|typing\.Sequence|collections\.abc\.Sequence)\[(.*)\]$")


def _split_union(type_text: str) -> tuple[str, bool]:
    parts = [p.strip() for p in type_text.split("|")]
    optional = "None" in parts
    return " | ".join(p for p in parts if p != "None") or "None", optional


def scalar_converter(type_text: str) -> Callable[[str], Any]:
    """argparse ``type`` for one value of annotation ``type_text`` (``"int"``, ``"float | None"`` …)."""
    from comam_env.cli import finite_float

    base, optional = _split_union(type_text)
    parse = {"int": int, "float": finite_float, "str": str}.get(base)

    def convert(value: str):
        if optional and value.strip().lower() == "none":
            return None
        if parse is None:  # dict, Any, unions of several types: JSON, else the string itself
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        try:
            return parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base}{' or none' if optional else ''}, got {value!r}") from None

    convert.__name__ = base  # argparse names the type in its error messages
    return convert


class _ExtendSplit(argparse.Action):
    """nargs='+'/'*' action that also splits each token on commas (``15,30`` == ``15 30``)."""

    def __init__(self, *args, item_type: Callable[[str], Any] = str, **kwargs) -> None:
        self.item_type = item_type
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        items = []
        for token in values:
            for piece in (p for p in str(token).split(",") if p.strip()):
                try:
                    items.append(self.item_type(piece.strip()))
                except argparse.ArgumentTypeError as exc:
                    raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, tuple(items))


def _type_text(f) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                            exclude: tuple[str, ...] = (), dest_prefix: str = "",
                            key_value: Mapping[str, str] | None = None,
                            defaults: Any = None) -> None:
    """Add one flag per field of dataclass ``cls`` (see the module docstring for the rules).

    Args:
        exclude: field names without a flag.
        dest_prefix: prefix of each flag's ``dest`` (``"knob__"`` keeps them apart from other flags).
        key_value: dict field name → its repeatable ``KEY=VALUE`` flag (e.g. ``{"grpo": "--grpo"}``).
        defaults: an instance of ``cls`` whose values become the flags' defaults; without it an
            omitted flag leaves no attribute, and :func:`dataclass_values` returns only given flags.
    """
    from comam_env.cli import parse_key_value

    key_value = dict(key_value or {})
    for f in fields(cls):
        if f.name in exclude:
            continue
        dest = dest_prefix + f.name
        type_text = _type_text(f)
        shown = getattr(defaults, f.name) if defaults is not None else _default(f)
        default = shown if defaults is not None else argparse.SUPPRESS
        help_text = f.metadata.get("help", "")
        if f.name in key_value:
            parser.add_argument(key_value[f.name], dest=dest, type=parse_key_value, action="append",
                                default=argparse.SUPPRESS, metavar="KEY=VALUE",
                                help=(help_text + " (repeatable)").replace("%", "%%"))
            continue
        flag = "--" + f.name.replace("_", "-")
        base, _ = _split_union(type_text)
        match = _SEQUENCE.match(base)
        if base == "bool":
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default: {shown})".replace("%", "%%"))
        elif match:
            item = match.group(1).split(",")[0].strip()
            shown_text = " ".join(map(str, shown)) if shown else "none"
            parser.add_argument(flag, dest=dest, action=_ExtendSplit, item_type=scalar_converter(item),
                                nargs="*" if not shown else "+", default=default, metavar=item.upper(),
                                help=f"{help_text} (space- or comma-separated; default: {shown_text})".replace("%", "%%"))
        else:
            parser.add_argument(flag, dest=dest, type=scalar_converter(type_text), default=default,
                                metavar=f.name.split("_")[-1].upper(),
                                help=f"{help_text} (default: {shown})".replace("%", "%%"))


def dataclass_values(args: argparse.Namespace, cls: type, *, dest_prefix: str = "") -> dict[str, Any]:
    """The values of ``cls``'s fields present on ``args`` (given flags, or all with ``defaults``);
    ``KEY=VALUE`` flags come back as a dict."""
    values = {}
    for f in fields(cls):
        if not hasattr(args, dest_prefix + f.name):
            continue
        value = getattr(args, dest_prefix + f.name)
        if isinstance(value, list) and all(isinstance(x, tuple) and len(x) == 2 for x in value) \
                and _type_text(f).startswith("dict"):
            value = dict(value)
        values[f.name] = value
    return values
