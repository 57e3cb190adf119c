"""Environment ids, ``comam_env.make`` / ``list_envs``, and the ``comam-env envs`` command.

Ids (one per benchmark, see :data:`ENV_IDS`): ``personamem-32k``,
``personamem-128k``, ``personamem-1m``, ``synthetic-mini``, ``synthetic-32k``,
``synthetic-128k``, ``synthetic-1m``, ``locomo``. Each also answers to its versioned alias
``comam/<id>-v0`` (and ``comam/<id>``, the latest version); ids are matched
case-insensitively (``personamem-1M`` works). An unknown id raises a
``ValueError`` listing the valid ids and the closest match (``difflib``).

PettingZoo registry: PettingZoo ≥ 1.27 has one
(``pettingzoo.env_registry``). Importing :mod:`comam_env` registers every
versioned alias there as an AEC environment, so
``pettingzoo.make("aec", "comam/synthetic-32k-v0", split="train")`` is the same
as ``comam_env.make("synthetic-32k", split="train")``. With an older PettingZoo
(no ``env_registry``) registration is skipped silently; ``comam_env.make``
always works. No parallel entry is registered: wrap with
``pettingzoo.utils.conversions.turn_based_aec_to_parallel`` (the MDP is
sequential, one agent acts at a time).

``make(env_id, **kwargs)`` keyword arguments:

* data: ``data_dir`` (folder with the benchmark files; default: the loader's
  search path), ``data_kwargs`` (dict passed on to the loader, e.g.
  ``{"evidence": path}``), ``dataset`` (an already loaded
  :class:`~comam_env.data.schema.Dataset` — skips loading).
* questions: ``split`` (``"train"`` default, ``"validation"``, ``"all"``;
  PersonaMem uses the paper's sizes drawn reproducibly by
  :func:`comam_env.data.splits.split_question_ids`), ``split_sizes``,
  ``split_seed`` (default 0). Synthetic tracks split *by persona* (every
  history on one side, validation >= 20 % of the questions: >= 500 questions at
  the default sizes), so validation personas are never seen in training; with
  ``split_sizes`` they split by question like the other datasets.
* episode: ``episode`` (``"auto"`` default = ``"evidence-session"`` for the
  train split, ``"full-history"`` otherwise), ``queries_per_episode``,
  ``chunk_tokens``.
* rewards: ``alpha``, ``beta``, ``matcher``, ``tau``, ``judge``, ``reward_mode``.
* other: ``max_action_chars``, ``max_observation_chars``,
  ``record_trajectory``, ``render_mode`` (``"ansi"``), ``view`` (``"text"``
  default; ``"selection"`` wraps the env with
  :func:`comam_env.views.selection.wrap`, passing ``view_kwargs``).

Missing data is never replaced by synthetic data: the loader's error (naming
the files it looked for and how to get them) propagates unchanged.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any

__all__ = ["EnvSpec", "ENV_IDS", "make", "split_ids", "list_envs", "resolve_id", "configure", "run"]

VERSION = 0
NAMESPACE = "comam"


@dataclass(frozen=True)
class EnvSpec:
    """One registered environment."""

    env_id: str
    dataset: str  # the name comam_env.data.load_dataset understands
    description: str
    split_by: str = "question"  # comam_env.data.splits.split_question_ids(by=...) without split_sizes

    @property
    def versioned_id(self) -> str:
        return f"{NAMESPACE}/{self.env_id}-v{VERSION}"


ENV_IDS: dict[str, EnvSpec] = {
    s.env_id: s
    for s in (
        EnvSpec("personamem-32k", "personamem-32k", "PersonaMem, 32k-token histories (589 questions; train/val 313/100)"),
        EnvSpec("personamem-128k", "personamem-128k", "PersonaMem, 128k-token histories (train/val 1,744/200)"),
        EnvSpec("personamem-1m", "personamem-1m", "PersonaMem, 1M-token histories (train/val 1,830/200)"),
        EnvSpec("synthetic-mini", "synthetic-mini",
                "offline PersonaMem-style synthetic data, 2.5k-token histories of ~9 sessions (CPU LLM runs)", "history"),
        EnvSpec("synthetic-32k", "synthetic-32k", "offline PersonaMem-style synthetic data, 32k-token histories",
                "history"),
        EnvSpec("synthetic-128k", "synthetic-128k", "offline PersonaMem-style synthetic data, 128k-token histories",
                "history"),
        EnvSpec("synthetic-1m", "synthetic-1m", "offline PersonaMem-style synthetic data, 1M-token histories",
                "history"),
        EnvSpec("locomo", "locomo", "LoCoMo (10 long conversations, open-ended QA scored by token F1)"),
    )
}

_ALIASES: dict[str, str] = {}
for _spec in ENV_IDS.values():
    _ALIASES[_spec.env_id] = _spec.env_id
    _ALIASES[_spec.versioned_id] = _spec.env_id
    _ALIASES[f"{NAMESPACE}/{_spec.env_id}"] = _spec.env_id
    _ALIASES[f"{_spec.env_id}-v{VERSION}"] = _spec.env_id

_DATA_KEYS = ("data_dir", "data_kwargs", "dataset")
_SPLIT_KEYS = ("split", "split_sizes", "split_seed")
_VIEW_KEYS = ("view", "view_kwargs")


def list_envs(versioned: bool = False) -> list[str]:
    """The registered ids (``versioned=True``: the ``comam/<id>-v0`` aliases)."""
    return [s.versioned_id if versioned else s.env_id for s in ENV_IDS.values()]


def resolve_id(env_id: str) -> EnvSpec:
    """The spec of ``env_id`` (an id or alias, any case); unknown ids raise ``ValueError``."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, got {type(env_id).__name__}")
    key = env_id.strip().lower().replace("_v", "-v")
    if key in _ALIASES:
        return ENV_IDS[_ALIASES[key]]
    close = difflib.get_close_matches(key, list(_ALIASES), n=1, cutoff=0.0)
    hint = f" Did you mean {_ALIASES[close[0]]!r}?" if close else ""
    raise ValueError(
        f"unknown environment id {env_id!r}.{hint} Valid ids: {', '.join(list_envs())} "
        f"(or their versioned aliases {NAMESPACE}/<id>-v{VERSION})."
    )


def check_make_arguments(env_id: str, **kwargs: Any) -> EnvSpec:
    """Validate :func:`make`'s arguments without loading any data (a 1M dataset takes a while):
    the id, ``split``, ``view``, unknown keywords, the :class:`~comam_env.config.EnvConfig` values
    and the selection view's keyword names. Raises the ``ValueError`` / ``TypeError`` that
    ``make`` would; returns the env's spec."""
    spec = resolve_id(env_id)
    kwargs = {k: v for k, v in kwargs.items() if k not in _DATA_KEYS and k not in ("split_sizes", "split_seed")}
    split = kwargs.pop("split", "train")
    view = kwargs.pop("view", "text")
    view_kwargs = kwargs.pop("view_kwargs", None) or {}
    kwargs.pop("render_mode", None)
    if split not in ("train", "validation", "all"):
        raise ValueError(f"split must be 'train', 'validation' or 'all', got {split!r}")
    if view not in ("text", "selection"):
        raise ValueError(f"view must be 'text' or 'selection', got {view!r}")
    if not isinstance(view_kwargs, dict):
        raise TypeError(f"view_kwargs must be a dict, got {view_kwargs!r}")
    if kwargs.get("episode", "auto") == "auto":
        kwargs["episode"] = "evidence-session" if split == "train" else "full-history"

    from comam_env.config import EnvConfig

    unknown = set(kwargs) - set(EnvConfig.field_names())
    if unknown:
        valid = sorted(set(EnvConfig.field_names()) | {"render_mode", *_DATA_KEYS, *_SPLIT_KEYS, *_VIEW_KEYS})
        raise TypeError(f"make({spec.env_id!r}): unknown argument(s) {sorted(unknown)}; valid: {valid}")
    EnvConfig(**kwargs)
    if view == "selection" and kwargs.get("memory_budget") is not None:
        # the selection view builds its candidates from M_f and M_c, not from the text prompt
        raise ValueError(f"make({spec.env_id!r}): memory_budget is the text view's budget; the selection view "
                         f"takes its own: view_kwargs={{'memory_budget': {kwargs['memory_budget']!r}}}")
    if view == "selection" and view_kwargs:
        import inspect

        from comam_env.views.selection import SelectionView

        params = inspect.signature(SelectionView.__init__).parameters
        accepted = set(params) - {"self", "env"}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = set() if takes_any else set(view_kwargs) - accepted
        if unknown:
            raise TypeError(f"make({spec.env_id!r}): unknown view_kwargs {sorted(unknown)}; valid: {sorted(accepted)}")
    return spec


def split_ids(env_id: str, dataset: Any, split: str, *, seed: int = 0, sizes: Any = None) -> list[str]:
    """Question ids of ``split`` of ``dataset`` as ``make(env_id, split=split)`` draws them.

    The env's own split rule (:attr:`EnvSpec.split_by`): synthetic tracks split by
    persona, so a policy trained on ``split="train"`` never saw a validation persona;
    other datasets (and any call with ``sizes``) split by question. Every evaluation
    of an env's split (``comam-env evaluate``, the leaderboard) draws its questions
    here, so they are the questions the trainer held out.
    """
    from comam_env.data.splits import split_question_ids

    spec = resolve_id(env_id)
    by = spec.split_by if sizes is None else "question"
    return list(split_question_ids(dataset, split, sizes=sizes, seed=seed, by=by))


def make(env_id: str, **kwargs: Any) -> Any:
    """Build the environment ``env_id`` (see the module docstring for the arguments).

    Returns the ``OrderEnforcingWrapper``-wrapped AEC env (text view), or the
    selection-view wrapper when ``view="selection"``.
    """
    spec = check_make_arguments(env_id, **kwargs)  # before loading: cheap errors first
    kwargs = dict(kwargs)
    data_dir = kwargs.pop("data_dir", None)
    data_kwargs = dict(kwargs.pop("data_kwargs", None) or {})
    dataset = kwargs.pop("dataset", None)
    split = kwargs.pop("split", "train")
    split_sizes = kwargs.pop("split_sizes", None)
    split_seed = kwargs.pop("split_seed", 0)
    view = kwargs.pop("view", "text")
    view_kwargs = dict(kwargs.pop("view_kwargs", None) or {})
    if kwargs.get("episode", "auto") == "auto":
        kwargs["episode"] = "evidence-session" if split == "train" else "full-history"

    from comam_env.env import env as make_env  # lazy: keeps `import comam_env` light

    if dataset is None:
        from comam_env.data import load_dataset

        dataset = load_dataset(spec.dataset, data_dir=data_dir, **data_kwargs)
    question_ids = None if split == "all" else split_ids(spec.env_id, dataset, split, seed=split_seed,
                                                         sizes=split_sizes)
    e = make_env(dataset, question_ids, **kwargs)
    e.unwrapped.env_id = spec.env_id
    e.unwrapped.split = split
    if view == "selection":
        from comam_env.views.selection import wrap

        return wrap(e, **view_kwargs)
    return e


def _register_pettingzoo() -> bool:
    """Register the versioned aliases in PettingZoo's AEC registry (when it has one)."""
    try:
        from pettingzoo.env_registry.registration import aec_registry, register
    except ImportError:  # PettingZoo without a registry (< 1.27)
        return False
    for spec in ENV_IDS.values():
        if spec.versioned_id not in aec_registry:
            register("aec", spec.versioned_id, entry_point=functools.partial(make, spec.env_id))
    return True


PETTINGZOO_REGISTERED = _register_pettingzoo()


# ------------------------------------------------------------------------- CLI


def configure(parser: Any) -> None:
    """``comam-env envs``: list the environment ids."""
    parser.add_argument("--versioned", action="store_true", help="print the comam/<id>-v0 aliases")
    parser.add_argument("--describe", action="store_true", help="add a one-line description of each")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {id, versioned_id, dataset, description}")


def run(args: Any) -> int:
    if getattr(args, "json", False):
        import json

        print(json.dumps([{"id": s.env_id, "versioned_id": s.versioned_id, "dataset": s.dataset,
                           "description": s.description} for s in ENV_IDS.values()], indent=2))
        return 0
    for spec in ENV_IDS.values():
        name = spec.versioned_id if getattr(args, "versioned", False) else spec.env_id
        print(f"{name:28s} {spec.description}" if getattr(args, "describe", False) else name)
    return 0
