"""Datasets for comam-env: real PersonaMem and LoCoMo, and the offline synthetic generator.

:func:`load_dataset` is the one entry point the environment uses:

==========================  ==========================================================
name                        source
==========================  ==========================================================
``personamem-32k|128k|1m``  real PersonaMem files (``data_dir`` → ``$COMAM_DATA_DIR`` →
                            ``<cache>/personamem``; see :mod:`.personamem`)
``synthetic-mini|32k|``     the built-in generator (:mod:`.synthetic`); keyword
``128k|1m``                 arguments ``seed`` and the generator knobs pass through
                            (``mini``: 2.5k-token histories for CPU LLM runs)
``locomo``                  ``locomo10.json`` (:mod:`.locomo`)
==========================  ==========================================================

Names are case-insensitive. The schema types and the data errors are
re-exported here.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ChecksumError, DataFormatError, DataNotFoundError, DownloadError
from .schema import OPTION_LETTERS, QUESTION_TYPES, Dataset, History, Message, Question

#: Every dataset name :func:`load_dataset` accepts.
DATASET_NAMES: tuple[str, ...] = (
    "personamem-32k", "personamem-128k", "personamem-1m",
    "synthetic-mini", "synthetic-32k", "synthetic-128k", "synthetic-1m",
    "locomo",
)

__all__ = [
    "DATASET_NAMES", "load_dataset", "Dataset", "History", "Message", "Question", "QUESTION_TYPES",
    "OPTION_LETTERS", "DataFormatError", "DataNotFoundError", "DownloadError", "ChecksumError",
]


#: Datasets loaded in this process, keyed by everything that selects the files. Datasets are
#: immutable, so environments made from the same arguments share one copy (a pool of 64
#: environments for batched rollouts must not parse the same files 64 times).
_LOADED: dict[tuple, Dataset] = {}


def _cache_key(name: str, data_dir: Any, kw: dict) -> tuple | None:
    simple = (str, int, float, bool, type(None), os.PathLike)
    if not all(isinstance(v, simple) for v in kw.values()):
        return None  # e.g. an evidence mapping: load afresh rather than guess equality
    env = tuple(os.environ.get(v) for v in ("COMAM_DATA_DIR", "COMAM_CACHE_DIR", "XDG_CACHE_HOME"))
    return (name, str(data_dir), env, tuple(sorted((k, str(v)) for k, v in kw.items())))


def clear_dataset_cache() -> None:
    """Forget the datasets memoised by :func:`load_dataset` (e.g. after files changed on disk)."""
    _LOADED.clear()


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, reuse: bool = True,
                 **kw: Any) -> Dataset:
    """Load a dataset by name (see the module docstring).

    ``data_dir`` is where the real datasets are searched first; for the
    synthetic datasets it replaces the cache as the root their generated
    folders are kept under. Other keyword arguments go to the underlying loader
    (``load_personamem(size, data_dir, evidence=..., download=...)``,
    ``load_synthetic(size, seed=..., **knobs)``, ``load_locomo(data_dir)``).
    With ``reuse=True`` (default) a dataset already loaded in this process with
    the same arguments is returned as is (:func:`clear_dataset_cache` forgets them).
    """
    key = name.strip().lower()
    memo = _cache_key(key, data_dir, kw) if reuse else None
    if memo is not None and memo in _LOADED:
        return _LOADED[memo]
    dataset = _load(key, name, data_dir, kw)
    if memo is not None:
        _LOADED[memo] = dataset
    return dataset


def _load(key: str, name: str, data_dir: Any, kw: dict) -> Dataset:
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    if key.startswith("personamem-"):
        from .personamem import load_personamem

        return load_personamem(key.split("-", 1)[1], data_dir=data_dir, **kw)
    if key.startswith("synthetic-"):
        from .synthetic import load_synthetic  # written in parallel; imported only when used

        if data_dir is not None:
            kw["data_dir"] = data_dir  # root of the generated-data cache
        return load_synthetic(key.split("-", 1)[1], **kw)
    from .locomo import load_locomo

    return load_locomo(data_dir, **kw)
