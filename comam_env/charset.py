"""The character set of the text spaces, and normalisation of text into it.

``gymnasium.spaces.Text.contains`` rejects any character outside the space's
charset, and PettingZoo's ``api_test`` checks every observation with it. Chat
text contains curly quotes, accents, emojis (with zero-width joiners) and, in
model outputs, anything at all — including lone surrogates, which cannot even
be encoded as UTF-8. So the charset is *wide* and text is *normalised* into it:

* :data:`charset` (built once, on first use) holds every code point whose
  Unicode general category is not ``Cc`` (control), ``Cs`` (surrogate),
  ``Cn`` (unassigned) or ``Co`` (private use), plus ``"\\n"`` and ``"\\t"`` —
  about 145k characters with Python's Unicode database. Letters of every
  script, punctuation, symbols, emojis, combining marks, format characters
  (ZWJ), and all space separators are in it.
* :func:`normalize_text` turns ``"\\r\\n"`` and lone ``"\\r"`` into ``"\\n"``
  and replaces every other character outside the charset with
  :data:`REPLACEMENT` (U+FFFD), returning the number of replacements so the
  caller can flag it. Text already inside the charset is returned unchanged
  (same object), which is the common case and costs one regex scan.

The charset depends on the Python's ``unicodedata`` version (a new Unicode
version assigns new characters); it is identical for every process of one
Python build, which is what determinism needs.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

#: Replacement for characters outside the charset.
REPLACEMENT = "\ufffd"

#: Categories left out of the charset.
EXCLUDED_CATEGORIES = frozenset({"Cc", "Cs", "Cn", "Co"})

#: Control characters kept (they structure text: lines, columns).
KEPT_CONTROLS = "\n\t"


def _allowed(ch: str) -> bool:
    return ch in KEPT_CONTROLS or unicodedata.category(ch) not in EXCLUDED_CATEGORIES


@lru_cache(maxsize=1)
def _tables() -> tuple[str, "re.Pattern[str]"]:
    allowed = "".join(ch for ch in map(chr, range(sys.maxunicode + 1)) if _allowed(ch))
    # The scan pattern matches the excluded BMP characters exactly and *every*
    # astral character (checked one by one in :func:`normalize_text`). One class of BMP
    # ranges compiles to a bitmap in ``re`` (a few ns per character); adding the
    # ~400 astral ranges would make ``re`` test them linearly for every
    # character, 80x slower on long histories.
    bad_ranges: list[tuple[int, int]] = []
    start = None
    for cp in range(0x10000):
        if _allowed(chr(cp)):
            if start is not None:
                bad_ranges.append((start, cp - 1))
                start = None
        elif start is None:
            start = cp
    if start is not None:
        bad_ranges.append((start, 0xFFFF))
    # \u escapes keep surrogates and controls out of the pattern source.
    parts = [f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in bad_ranges]
    pattern = re.compile("[" + "".join(parts) + "\\U00010000-\\U0010ffff]")
    return allowed, pattern


@lru_cache(maxsize=1 << 16)
def _astral_ok(ch: str) -> bool:
    return _allowed(ch)


def charset() -> str:
    """All characters of the text spaces, as one string (built once per process)."""
    return _tables()[0]


def normalize_text(text: str) -> tuple[str, int]:
    """``text`` mapped into :func:`charset`; returns ``(text, n_replaced)``.

    ``"\\r\\n"``/``"\\r"`` become ``"\\n"`` (not counted); any other character
    outside the charset becomes :data:`REPLACEMENT` (counted).
    """
    scan = _tables()[1]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = scan.search(text)
    if m is None:
        return text, 0
    pieces: list[str] = []
    pos = 0
    n = 0
    for m in scan.finditer(text, m.start()):
        ch = m.group()
        if ord(ch) > 0xFFFF and _astral_ok(ch):
            continue
        pieces.append(text[pos : m.start()])
        pieces.append(REPLACEMENT)
        pos = m.end()
        n += 1
    if n == 0:
        return text, 0
    pieces.append(text[pos:])
    return "".join(pieces), n


def in_charset(text: str) -> bool:
    """Whether every character of ``text`` is in the charset."""
    return normalize_text(text)[1] == 0 and "\r" not in text
