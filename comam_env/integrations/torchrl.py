"""TorchRL on the multi-agent selection view: :func:`wrap` checks what TorchRL needs first.

TorchRL's ``PettingZooWrapper`` turns every info entry into a tensor spec at reset, so the infos
must be numbers with the same keys at every step: the selection view's ``infos="numeric"``.
With the default ``infos="full"`` (texts, reward parts) TorchRL fails deep inside its spec code
with ``TypeError: new(): invalid data type 'str'``; :func:`wrap` refuses such a view up front
with an error that says what to change. See docs/multiagent.md.

    from comam_env.integrations.torchrl import make_torchrl_env
    env = make_torchrl_env("synthetic-32k", K=32, seed=0)     # a torchrl EnvBase
    td = env.rollout(200, break_when_any_done=True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["wrap", "make_torchrl_env"]


def wrap(view: Any, *, seed: int | None = None, **wrapper_kwargs: Any):
    """``torchrl.envs.libs.pettingzoo.PettingZooWrapper`` around a selection view, after checking
    that the view reports numeric infos (``use_mask=True`` and ``categorical_actions=True`` by
    default: one agent acts per AEC step; the retriever's option is an index)."""
    mode = getattr(view, "info_mode", None)
    if mode is None:
        raise ValueError("TorchRL needs the selection view (comam_env.make(..., view='selection')); "
                         "the text view's observations and actions are strings, which TorchRL cannot hold")
    if mode != "numeric":
        raise ValueError(
            f"TorchRL needs numeric infos, but this selection view reports infos={mode!r} (texts, reward "
            "parts); TorchRL would fail with \"TypeError: new(): invalid data type 'str'\". Build it with "
            "view_kwargs={'infos': 'numeric'}; the full infos stay in view.unwrapped.trajectory()")
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    kwargs = {"use_mask": True, "categorical_actions": True, **wrapper_kwargs}
    return PettingZooWrapper(env=view, seed=seed, **kwargs)


def make_torchrl_env(env_id: str = "synthetic-32k", *, K: int = 32, seed: int | None = 0,
                     view_kwargs: dict | None = None, wrapper_kwargs: dict | None = None, **make_kwargs: Any):
    """``comam_env.make(env_id, view="selection", view_kwargs={"K": K, "infos": "numeric", ...})``
    wrapped by :func:`wrap`."""
    import comam_env

    vk = {"K": K, "infos": "numeric", **(view_kwargs or {})}
    view = comam_env.make(env_id, view="selection", view_kwargs=vk, **make_kwargs)
    return wrap(view, seed=seed, **(wrapper_kwargs or {}))
