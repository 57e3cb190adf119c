"""The policy protocol shared by every learnable agent in `agents/`.

A *policy* acts for one role of the memory pipeline (0 extractor, 1 profiler, 2 retriever) on a
batch of observations and returns, besides the actions, everything a policy-gradient learner needs:

* `act(role, observations, ...) -> ActOutput` — samples (or greedily picks) one action per
  observation. `observations` are the env's text-view observation dicts for text policies
  (`LLMPolicy`) and the selection view's array dicts for selection policies.
* `logprobs_of(role, samples) -> LogProbs` — re-scores *given* actions under the current
  parameters, with gradients, so the learner can form ratios `exp(new - old)`.
* `trainable_parameters(role=None)`, `save(dir)`, `load(dir)` (classmethod), `train()`, `eval()`,
  `device`, `roles`.

Contract details that both LLM and selection policies follow (the learner relies on them):

* `ActOutput.samples` is a **list with one opaque record per sample** (length B). Records from
  different `act` calls of the same policy and role may be concatenated, re-ordered or sliced into
  minibatches freely and handed back to `logprobs_of`; the policy pads/stacks them itself. A record
  must be picklable and must not hold the autograd graph (detached tensors / plain numbers).
* `ActOutput.logprobs` (B,) is the summed log-probability of each sampled action, detached, and it
  equals `logprobs_of(role, samples).sum` computed with the same parameters (to float tolerance);
  this is what makes importance ratios exactly 1 on the first GRPO epoch.
* `LogProbs.token` / `LogProbs.mask` are (B, T): per-decision log-probs (generated tokens for LLMs,
  per-candidate choices for selection policies) and a 0/1 float mask of the valid decisions, so
  losses can be averaged "over the agent's generated tokens" (docs/design.md §4).
* `ActOutput.info` is a list of B dicts with diagnostics (e.g. `truncated`, `prompt_tokens`,
  `completion_tokens`, `finished`).
* Greedy acting (`greedy=True`) still returns log-probs, computed at temperature 1.
* Randomness only from the `generator` argument: one `torch.Generator` for the batch, or a
  sequence of one generator per observation (per-episode streams, `row_generators`), in which case
  observation i's action is drawn from its own generator only. With the same generator states,
  parameters and inputs a policy returns the same actions.

`save(dir)` writes a `policy.json` holding at least `{"kind": <registered kind>}`; `load_policy(dir)`
dispatches on it. `make_policy(kind, **kw)` builds a registered kind; kinds register themselves with
`@register_policy("name")`, and an unknown kind is looked up by importing `agents.<kind>` once.
"""
from __future__ import annotations

import abc
import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import torch

from comam_env.roles import ROLE_NAMES, Role

EXTRACTOR, PROFILER, RETRIEVER = (int(r) for r in Role)
ALL_ROLES = (EXTRACTOR, PROFILER, RETRIEVER)
POLICY_FILE = "policy.json"


def role_id(role: int | str) -> int:
    """Normalise a role given as an int (0..2), a name ("retriever") or an agent id
    ("retriever_0") to its integer id (:meth:`comam_env.roles.Role.of`)."""
    if isinstance(role, bool):
        raise TypeError(f"role must be an int or a role name, got {role!r}")
    return int(Role.of(role))


@dataclass
class ActOutput:
    """What `Policy.act` returns for a batch of B observations."""

    actions: list
    """B actions: strings for text policies, numpy arrays for selection policies."""
    logprobs: torch.Tensor
    """(B,) float32, detached: summed log-probability of each action under the acting policy."""
    samples: list
    """B opaque records from which `logprobs_of` recomputes the log-probs (see module doc)."""
    info: list = field(default_factory=list)
    """B dicts of diagnostics (e.g. `truncated`, `prompt_tokens`, `completion_tokens`)."""

    def __post_init__(self) -> None:
        n = len(self.actions)
        if len(self.samples) != n:
            raise ValueError(f"ActOutput: {n} actions but {len(self.samples)} samples")
        if self.logprobs.shape != (n,):
            raise ValueError(f"ActOutput: logprobs shape {tuple(self.logprobs.shape)}, expected ({n},)")
        if not self.info:
            self.info = [{} for _ in range(n)]
        elif len(self.info) != n:
            raise ValueError(f"ActOutput: {n} actions but {len(self.info)} info dicts")

    def __len__(self) -> int:
        return len(self.actions)


def row_generators(generator: Any, n: int) -> list | None:
    """``generator`` as a list of ``n`` per-observation generators, or ``None`` for one shared
    stream (a single ``torch.Generator`` or ``None``)."""
    if generator is None or isinstance(generator, torch.Generator):
        return None
    gens = list(generator)
    if len(gens) != n:
        raise ValueError(f"{len(gens)} generators for {n} observations: give one per observation or a single one")
    if not all(isinstance(g, torch.Generator) for g in gens):
        raise TypeError("generator: expected a torch.Generator or a sequence of torch.Generator")
    return gens


class LogProbs(NamedTuple):
    """What `Policy.logprobs_of` returns; unpacks as `(sum, token, mask)`."""

    sum: torch.Tensor
    """(B,) summed log-probs of each sample's decisions (masked), with gradients."""
    token: torch.Tensor
    """(B, T) per-decision log-probs (0 where masked), with gradients."""
    mask: torch.Tensor
    """(B, T) float 0/1: which decisions are real (not padding)."""


class Policy(abc.ABC):
    """Abstract base of every policy (LLM or selection). See the module docstring for the contract."""

    #: registered kind, written into `policy.json` by `save`.
    kind: str = "abstract"
    #: roles this policy can act for (subset of (0, 1, 2)).
    roles: tuple = ALL_ROLES
    #: rollouts batch this policy's roles in pipeline order (:func:`agents.rollout.collect_rollouts`):
    #: episodes waiting for a later role wait until no episode needs an earlier one, so each role
    #: runs in as few, as wide ``act`` calls as the episodes allow. For policies whose cost is per
    #: call (an LLM's decode loop), not per observation.
    batch_roles_in_order: bool = False

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device the parameters live on."""

    @abc.abstractmethod
    def act(
        self,
        role: int,
        observations: Sequence[Any],
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> ActOutput:
        """Choose one action per observation for `role` (`generator`: one, or one per observation)."""

    @abc.abstractmethod
    def logprobs_of(self, role: int, samples: Sequence[Any]) -> LogProbs:
        """Log-probs of the actions recorded in `samples` under the current parameters (with grad)."""

    @abc.abstractmethod
    def trainable_parameters(self, role: int | None = None) -> list:
        """Parameters an optimizer should update: those used for `role`, or all when None."""

    @abc.abstractmethod
    def save(self, directory: str | os.PathLike) -> None:
        """Write the policy (trainable state + config + `policy.json`) to `directory`."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: str | os.PathLike, **overrides) -> "Policy":
        """Rebuild a policy written by `save`; `overrides` may change e.g. `device`."""

    def train(self) -> "Policy":
        """Switch to training mode (dropout on). Subclasses with modules override."""
        return self

    def eval(self) -> "Policy":
        """Switch to evaluation mode. Subclasses with modules override."""
        return self

    def check_role(self, role: int | str) -> int:
        r = role_id(role)
        if r not in self.roles:
            raise ValueError(f"{type(self).__name__} does not act for role {r} "
                             f"({ROLE_NAMES[r]}); its roles are {tuple(self.roles)}")
        return r


# ---------------------------------------------------------------------------------------------
# registry

_REGISTRY: dict[str, Callable[..., Policy]] = {}


def register_policy(kind: str):
    """Class decorator: make `cls` buildable by `make_policy(kind, ...)` and loadable by `load_policy`."""

    def deco(cls):
        _REGISTRY[kind] = cls
        cls.kind = kind
        return cls

    return deco


def _lookup(kind: str):
    if kind not in _REGISTRY:
        try:  # kinds register themselves on import of agents.<kind>
            importlib.import_module(f"agents.{kind}")
        except ImportError as exc:
            raise ValueError(f"unknown policy kind {kind!r} (registered: {sorted(_REGISTRY)}): {exc}") from exc
    if kind not in _REGISTRY:
        raise ValueError(f"unknown policy kind {kind!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[kind]


def make_policy(kind: str, **kw) -> Policy:
    """Build a policy of a registered kind (e.g. "llm", "selection")."""
    return _lookup(kind)(**kw)


def write_policy_json(directory: str | os.PathLike, payload: dict) -> None:
    """Atomically write `policy.json` (must contain "kind") into `directory`."""
    if "kind" not in payload:
        raise ValueError("policy.json payload needs a 'kind'")
    from comam_env.data.paths import atomic_write_text

    atomic_write_text(os.path.join(directory, POLICY_FILE), json.dumps(payload, indent=2, sort_keys=True))


def read_policy_json(directory: str | os.PathLike) -> dict:
    path = os.path.join(directory, POLICY_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no {POLICY_FILE}; not a saved policy directory")
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError(f"{path}: field 'kind' missing")
    return data


def load_policy(directory: str | os.PathLike, **overrides) -> Policy:
    """Load any saved policy by dispatching on `policy.json`'s kind."""
    return _lookup(read_policy_json(directory)["kind"]).load(directory, **overrides)
