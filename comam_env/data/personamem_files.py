"""The names of the PersonaMem files: split sizes and ``questions_<size>.csv`` /
``shared_contexts_<size>.jsonl``. Shared by the loader (:mod:`.personamem`) and the
downloader (:mod:`.download`) without either importing the other at module level."""

from __future__ import annotations

#: Canonical split names as used in the file names.
SIZES: tuple[str, ...] = ("32k", "128k", "1M")


def canonical_size(size: str) -> str:
    """``"32k"|"128k"|"1M"`` from any capitalisation (``"1m"`` → ``"1M"``)."""
    s = str(size).strip()
    for canon in SIZES:
        if s.lower() == canon.lower():
            return canon
    raise ValueError(f"unknown PersonaMem size {size!r}; expected one of {', '.join(SIZES)}")


def file_names(size: str) -> tuple[str, str]:
    """``(questions csv, shared contexts jsonl)`` file names for a split."""
    s = canonical_size(size)
    return f"questions_{s}.csv", f"shared_contexts_{s}.jsonl"
