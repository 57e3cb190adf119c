"""Load a repository script (``benchmarks/*.py``, ``examples/*.py``) as a module, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str | None = None) -> ModuleType:
    """Execute ``ROOT / relative_path`` as module ``name`` (default: the file's stem) and return it.

    The module is registered in ``sys.modules`` before it runs, since dataclasses look their
    module up there."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
