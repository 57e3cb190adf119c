"""Views of the comam-env episode for third-party RL libraries (docs/design.md §7).

* :mod:`comam_env.views.selection` — ``view="selection"``: the AEC episode as
  subset choices over embedded candidates (``wrap(env, K=..., embedder=...)``).
* :mod:`comam_env.views.single_agent` — one role as a ``gymnasium.Env`` while the
  others follow fixed policies (``single_agent(env_id, role=..., others=...)``).
* :mod:`comam_env.views.heuristics` — those fixed policies (similarity ranking).

Submodules are imported on first attribute access so ``import comam_env`` stays light.
(``single_agent`` is the submodule's name; the function is ``comam_env.single_agent`` or
``comam_env.views.single_agent.single_agent``.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SelectionView": "selection",
    "wrap": "selection",
    "SingleAgentEnv": "single_agent",
    "SimilarityPolicy": "heuristics",
    "KeepAllPolicy": "heuristics",
    "RandomPolicy": "heuristics",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
