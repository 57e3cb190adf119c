"""Per-agent GRPO (docs/design.md §4, CoMAM eq. 16).

Three layers, each usable on its own:

* :func:`group_advantages` — rewards ``(B, G)`` (B queries × G trajectories) →
  advantages ``(B, G)``: ``A = (r − mean_group) / (std_group + eps)``. The std is the
  **population** std (``ddof = 0``): the advantages of a group then have unit variance
  exactly (up to ``eps``), and a group of two gets ±1 rather than ±0.71. Pass ``ddof=1``
  for the sample std used by some GRPO implementations.
* :func:`grpo_loss` — the clipped-ratio objective ``min(ρA, clip(ρ, 1±ε)A)`` with an
  optional k3 KL penalty to a reference policy, averaged over the agent's decisions
  (generated tokens for LLMs; per-candidate choices + the option for selection
  policies), plus diagnostics.
* :class:`PerAgentGRPO` — one optimizer per role (one shared optimizer when roles share
  parameters, i.e. a single shared policy), several inner epochs over minibatches, every
  non-frozen role updated from the same rollouts in the same optimisation steps.
  ``frozen_roles`` gives independent optimisation (the paper's baseline: one agent
  trains, the others stay fixed).

Shapes accepted by :func:`grpo_loss`: per-decision log-probs ``(B, T)`` with a mask
``(B, T)`` (token level), or per-sample log-probs ``(B,)`` (one "token" per sample: the
ratio of whole-action probabilities). Advantages are ``(B,)`` and broadcast over ``T``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from agents.base import ROLE_NAMES, Policy, role_id
from agents.config import AGGREGATIONS, GRPOConfig  # GRPOConfig lives in the torch-free agents.config

__all__ = [
    "GRPOConfig",
    "PerAgentGRPO",
    "RoleBatch",
    "group_advantages",
    "grpo_loss",
    "zero_variance_groups",
    "k3_kl",
]

NORMALIZE_MODES = ("group", "batch", "none")


# ---------------------------------------------------------------------- advantages


def group_advantages(
    rewards: np.ndarray,
    eps: float = 1e-6,
    normalize: str = "group",
    ddof: int = 0,
) -> np.ndarray:
    """GRPO advantages for B groups of G trajectories of one role.

    Args:
        rewards: ``(B, G)`` integrated rewards (finite). A 1-D ``(G,)`` input is one group.
        eps: added to the std (keeps groups with constant reward at advantage 0).
        normalize:
            ``"group"`` — ``(r − mean_group) / (std_group + eps)`` (GRPO, CoMAM eq. 16);
            ``"batch"`` — per-agent advantage normalisation: centre per group, then divide
            by the std of this role's centred rewards over the whole batch, so every
            agent's advantages have unit scale without amplifying near-constant groups;
            ``"none"`` — centre per group only (Dr. GRPO style).
        ddof: 0 = population std (default), 1 = sample std.

    Returns:
        ``(B, G)`` (or ``(G,)``) float64 advantages.
    """
    r = np.asarray(rewards, dtype=np.float64)
    squeeze = r.ndim == 1
    if squeeze:
        r = r[None, :]
    if r.ndim != 2:
        raise ValueError(f"group_advantages: rewards must have shape (B, G), got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("group_advantages: rewards must be finite (fill undefined rewards before)")
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"group_advantages: normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
    if r.shape[1] - ddof <= 0:
        raise ValueError(f"group_advantages: group size {r.shape[1]} too small for ddof={ddof}")
    centred = r - r.mean(axis=1, keepdims=True)
    if normalize == "group":
        std = r.std(axis=1, ddof=ddof, keepdims=True)
        # A constant group carries no preference: advantage 0 even when eps = 0.
        adv = np.divide(centred, std + eps, out=np.zeros_like(centred), where=(std + eps) > 0)
    elif normalize == "batch":
        n = centred.size
        scale = math.sqrt(float(np.sum(centred**2)) / max(n - ddof, 1))
        adv = centred / (scale + eps) if scale + eps > 0 else np.zeros_like(centred)
    else:
        adv = centred
    return adv[0] if squeeze else adv


def zero_variance_groups(rewards: np.ndarray, atol: float = 1e-9) -> np.ndarray:
    """``(B,)`` bool: groups whose G rewards are all equal (within ``atol``).

    Such a group has advantage 0 for every member under any normalisation, so it carries no
    policy gradient; DAPO's "dynamic sampling" drops (or replaces) it so that the batch mean is
    taken over the groups that do carry signal. :class:`agents.comam.Trainer` skips them when
    ``TrainConfig.zero_variance`` is ``"skip"`` and logs their fraction per role.
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"zero_variance_groups: rewards must have shape (B, G), got {r.shape}")
    return (r.max(axis=1) - r.min(axis=1)) <= atol


# ---------------------------------------------------------------------------- loss


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-decision k3 estimator of KL(π‖π_ref): ``exp(ref − new) − (ref − new) − 1`` (≥ 0)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def _aggregate(values: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean of ``values`` over valid decisions: per sample then over samples, or over all tokens."""
    if how == "token":
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    per_sample_n = mask.sum(dim=1)
    has = per_sample_n > 0
    per_sample = (values * mask).sum(dim=1) / per_sample_n.clamp(min=1.0)
    return per_sample[has].sum() / has.sum().clamp(min=1)


def grpo_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    aggregation: str = "sequence",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped GRPO loss (to minimise) and diagnostics.

    Per decision t of sample i: ``ρ = exp(new − old)``,
    ``ℓ = −min(ρ·A_i, clip(ρ, 1−ε, 1+ε)·A_i) + kl_coef·k3(new, ref)``.

    Args:
        new_logp: ``(B, T)`` per-decision or ``(B,)`` per-sample log-probs, with gradients.
        old_logp: same shape, log-probs of the behaviour policy (no gradient needed).
        advantages: ``(B,)``.
        mask: ``(B, T)`` 0/1 valid decisions (default: all valid).
        clip_eps: ε of the trust region.
        ref_logp: reference-policy log-probs (same shape) for the k3 KL; required when
            ``kl_coef > 0``.
        kl_coef: weight of the KL penalty (0 = off, the paper's default).
        aggregation: ``"sequence"`` — mean over each sample's decisions, then over
            samples (GRPO eq., ``1/G Σ_i 1/|o_i| Σ_t``); ``"token"`` — mean over all valid
            decisions of the batch (long outputs weigh more).

    Returns:
        ``(loss, stats)`` with stats ``loss``, ``pg_loss``, ``kl_ref`` (mean k3 to the
        reference, 0 without one), ``approx_kl`` (``(ρ − 1) − log ρ``: KL(old‖new) on the behaviour samples),
        ``clip_frac`` (fraction of decisions whose clipped term is active, i.e. whose
        gradient is zero), ``ratio_mean``, ``ratio_max``, ``n_decisions``.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"grpo_loss: aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    # Compute in float32 whatever the policy's dtype (bf16 LLMs): ratios of nearby log-probs.
    new_logp = new_logp.float()
    old_logp = torch.as_tensor(old_logp).float()
    ref_logp = None if ref_logp is None else torch.as_tensor(ref_logp).float()
    if new_logp.shape != old_logp.shape:
        raise ValueError(f"grpo_loss: new_logp {tuple(new_logp.shape)} vs old_logp {tuple(old_logp.shape)}")
    if new_logp.dim() == 1:
        new_logp, old_logp = new_logp[:, None], old_logp[:, None]
        ref_logp = None if ref_logp is None else ref_logp[:, None]
        mask = None if mask is None else mask.reshape(-1, 1)
    if new_logp.dim() != 2:
        raise ValueError(f"grpo_loss: log-probs must be (B,) or (B, T), got {tuple(new_logp.shape)}")
    B = new_logp.shape[0]
    adv = torch.as_tensor(advantages, dtype=new_logp.dtype, device=new_logp.device)
    if adv.shape != (B,):
        raise ValueError(f"grpo_loss: advantages must have shape ({B},), got {tuple(adv.shape)}")
    if mask is None:
        mask = torch.ones_like(new_logp)
    mask = mask.to(new_logp.dtype)
    if mask.shape != new_logp.shape:
        raise ValueError(f"grpo_loss: mask {tuple(mask.shape)} vs log-probs {tuple(new_logp.shape)}")
    if kl_coef > 0 and ref_logp is None:
        raise ValueError("grpo_loss: kl_coef > 0 needs ref_logp")

    old_logp = old_logp.detach()
    # Masked positions may hold arbitrary values; zero the log-ratio there so exp stays finite.
    log_ratio = torch.where(mask > 0, new_logp - old_logp, torch.zeros_like(new_logp))
    ratio = torch.exp(log_ratio)
    a = adv[:, None]
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * a
    pg_tok = -torch.minimum(unclipped, clipped)
    pg_loss = _aggregate(pg_tok, mask, aggregation)
    loss = pg_loss
    kl_ref = torch.zeros((), dtype=new_logp.dtype)
    if ref_logp is not None:
        ref = torch.where(mask > 0, ref_logp.detach(), new_logp.detach())
        kl_tok = k3_kl(new_logp, ref)
        kl_ref = _aggregate(kl_tok, mask, aggregation)
        if kl_coef > 0:
            loss = loss + kl_coef * kl_ref

    with torch.no_grad():
        valid = mask > 0
        n = int(valid.sum())
        clip_active = ((ratio > 1 + clip_eps) & (a > 0)) | ((ratio < 1 - clip_eps) & (a < 0))
        r_valid = ratio[valid]
        stats = {
            "loss": float(loss.detach()),
            "pg_loss": float(pg_loss.detach()),
            "kl_ref": float(kl_ref.detach()),
            # KL(old‖new) estimated on the behaviour samples: (ρ − 1) − log ρ ≥ 0.
            "approx_kl": float(((ratio - 1.0) - log_ratio)[valid].mean()) if n else 0.0,
            "clip_frac": float(clip_active[valid].float().mean()) if n else 0.0,
            "ratio_mean": float(r_valid.mean()) if n else 1.0,
            "ratio_max": float(r_valid.max()) if n else 1.0,
            "n_decisions": float(n),
        }
    return loss, stats


# -------------------------------------------------------------------------- config


# --------------------------------------------------------------------------- batch


@dataclass
class RoleBatch:
    """One role's share of a rollout batch.

    Attributes:
        samples: N opaque sample records from ``policy.act(...).samples`` (list).
        advantages: ``(N,)`` advantages (e.g. ``group_advantages(...)`` flattened in the
            same order as ``samples``).
        old_logprobs: optional behaviour log-probs. ``None`` (recommended for on-policy
            updates) → recomputed with ``logprobs_of`` under ``no_grad`` at the start of
            :meth:`PerAgentGRPO.update`, which equals the acting policy's log-probs when
            the update directly follows the rollouts — or, when the update is a single
            optimisation step over the whole batch (``inner_epochs=1``, no smaller
            ``minibatch_size``), taken from that step's own forward pass (``new.detach()``:
            the same values, parameters have not moved yet, without the extra pass). Otherwise ``(N,)`` summed
            log-probs (``ActOutput.logprobs``; level ``"sample"`` only) or a list of N
            1-D tensors of the valid per-decision log-probs (level ``"token"``).
        ref_logprobs: optional reference log-probs in the same formats; when ``None``
            and the updater has a reference policy and ``kl_coef > 0``, they are
            computed at the start of the update.
    """

    samples: Sequence[Any]
    advantages: Any
    old_logprobs: Any = None
    ref_logprobs: Any = None

    def __post_init__(self) -> None:
        self.samples = list(self.samples)
        adv = torch.as_tensor(np.asarray(self.advantages, dtype=np.float32)).reshape(-1)
        if adv.shape[0] != len(self.samples):
            raise ValueError(f"RoleBatch: {len(self.samples)} samples but {adv.shape[0]} advantages")
        if not torch.all(torch.isfinite(adv)):
            raise ValueError("RoleBatch: advantages must be finite")
        self.advantages = adv

    def __len__(self) -> int:
        return len(self.samples)


#: ``old`` log-probs taken from the (single) optimisation step's own forward pass
_CURRENT = object()


def _prompt_order(samples: Sequence[Any], idx: list[int]) -> list[int]:
    """``idx`` ordered by prompt (length, then tokens) when the samples carry ``prompt_ids`` (LLM
    policies), else unchanged. Micro-batches are then cut from samples that repeat one prompt
    (a group's G extractor steps on one chunk) or have similar lengths, so the policy's shared
    prompt pass (:meth:`agents.llm.LLMPolicy.logprobs_of`) still runs each prompt once and little
    padding is computed. The summed gradient does not depend on the order."""
    try:
        keys = {i: tuple(int(t) for t in samples[i]["prompt_ids"]) for i in idx}
    except (TypeError, KeyError, IndexError):
        return idx
    return sorted(idx, key=lambda i: (len(keys[i]), keys[i]))


def _valid_rows(token: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Per sample, the 1-D tensor of log-probs at valid positions (padding-side agnostic)."""
    m = mask > 0
    return [token[i][m[i]].detach().clone() for i in range(token.shape[0])]


def _scatter_rows(rows: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_valid_rows` for a minibatch whose padding ``mask`` gives."""
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    m = mask > 0
    counts = m.sum(dim=1).tolist()
    for i, (row, c) in enumerate(zip(rows, counts)):
        if row.numel() != c:
            raise ValueError(
                f"stored per-decision log-probs of sample {i} have {row.numel()} entries but the policy "
                f"now reports {c} valid decisions; the sample records changed between act and update"
            )
    if rows:
        out[m] = torch.cat([r.to(out.device, out.dtype) for r in rows])
    return out


# ------------------------------------------------------------------------ updater


class PerAgentGRPO:
    """Updates every (non-frozen) role from the same rollouts, one optimizer per role.

    Args:
        policies: one :class:`~agents.base.Policy` serving all ``roles`` (e.g. a
            ``SelectionPolicy`` with per-role networks, or with ``shared=True``), or a
            mapping role → policy (one model per agent).
        config: :class:`GRPOConfig`.
        roles: roles to train (default: the mapping's keys, or the policy's ``roles``).
            Roles may be ints (0..2) or names (``"extractor"`` …).
        frozen_roles: roles that get no update (independent optimisation trains one
            role with the others frozen). Can be changed later via
            :meth:`set_frozen_roles`.
        ref_policy: optional frozen reference (same forms as ``policies``) for the k3 KL.
        generator: ``torch.Generator`` for minibatch shuffling (default: seeded with 0).

    Roles whose ``trainable_parameters`` overlap (a single shared network) share one
    optimizer; in each optimisation step the losses of all roles on their minibatches
    are back-propagated (gradients accumulate) before every optimizer steps once, so the
    agents move simultaneously. A frozen role that shares parameters with a trained role
    is rejected: it could not stay fixed.
    """

    def __init__(
        self,
        policies: Policy | Mapping[Any, Policy],
        config: GRPOConfig | None = None,
        *,
        roles: Sequence[Any] | None = None,
        frozen_roles: Sequence[Any] = (),
        ref_policy: Policy | Mapping[Any, Policy] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.config = config or GRPOConfig()
        if isinstance(policies, Mapping):
            self.policies = {role_id(r): p for r, p in policies.items()}
            default_roles = tuple(self.policies)
        else:
            default_roles = tuple(policies.roles)
            self.policies = {r: policies for r in default_roles}
        self.roles = tuple(role_id(r) for r in (roles if roles is not None else default_roles))
        for r in self.roles:
            if r not in self.policies:
                raise ValueError(f"PerAgentGRPO: no policy for role {ROLE_NAMES[r]}")
            self.policies[r].check_role(r)
        if ref_policy is None:
            self.ref_policies = None
        elif isinstance(ref_policy, Mapping):
            self.ref_policies = {role_id(r): p for r, p in ref_policy.items()}
        else:
            self.ref_policies = {r: ref_policy for r in self.roles}
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

        # Group roles that share parameters into one optimizer.
        params = {r: list(self.policies[r].trainable_parameters(r)) for r in self.roles}
        groups: list[tuple[set[int], set[int]]] = []  # (roles, parameter ids)
        for r in self.roles:
            roles_r, ids_r = {r}, {id(p) for p in params[r]}
            keep = []
            for g_roles, g_ids in groups:
                if g_ids & ids_r:  # shared parameters → same optimizer
                    roles_r |= g_roles
                    ids_r |= g_ids
                else:
                    keep.append((g_roles, g_ids))
            groups = keep + [(roles_r, ids_r)]
        self.groups: list[tuple[int, ...]] = sorted(tuple(sorted(g)) for g, _ in groups)
        self.optimizers: list[torch.optim.Optimizer] = []
        self._group_params: list[list[torch.nn.Parameter]] = []
        for g in self.groups:
            seen: dict[int, torch.nn.Parameter] = {}
            for r in g:
                for p in params[r]:
                    seen.setdefault(id(p), p)
            plist = list(seen.values())
            if not plist:
                raise ValueError(f"PerAgentGRPO: roles {[ROLE_NAMES[r] for r in g]} have no trainable parameters")
            self._group_params.append(plist)
            self.optimizers.append(
                torch.optim.AdamW(plist, lr=self.config.lr, weight_decay=self.config.weight_decay)
            )
        self.frozen_roles: frozenset[int] = frozenset()
        self.set_frozen_roles(frozen_roles)
        self._seconds = {"prepare": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}  # of the last update

    # ---------------------------------------------------------------- frozen roles

    def set_frozen_roles(self, roles: Sequence[Any]) -> None:
        """Freeze ``roles`` (no update) and unfreeze every other role."""
        frozen = frozenset(role_id(r) for r in roles)
        unknown = frozen - set(self.roles)
        if unknown:
            raise ValueError(f"PerAgentGRPO: frozen roles {sorted(unknown)} are not among the trained roles {self.roles}")
        for g in self.groups:
            if len(g) > 1 and (set(g) & frozen) and (set(g) - frozen):
                raise ValueError(
                    "PerAgentGRPO: roles "
                    f"{[ROLE_NAMES[r] for r in g]} share parameters (shared policy); freezing only "
                    f"{[ROLE_NAMES[r] for r in sorted(set(g) & frozen)]} is impossible"
                )
        self.frozen_roles = frozen

    @property
    def active_roles(self) -> tuple[int, ...]:
        return tuple(r for r in self.roles if r not in self.frozen_roles)

    # ------------------------------------------------------------------ update

    def _prepare(self, role: int, batch: RoleBatch) -> dict:
        """Fix old/ref log-probs for the whole update (before any parameter changes)."""
        cfg = self.config
        pol = self.policies[role]
        prep: dict[str, Any] = {"old": batch.old_logprobs, "ref": batch.ref_logprobs}
        need_old = prep["old"] is None
        if need_old and cfg.inner_epochs == 1 and (cfg.minibatch_size is None or cfg.minibatch_size >= len(batch)):
            prep["old"], need_old = _CURRENT, False  # one step over every sample: old = that step's new
        need_ref = prep["ref"] is None and cfg.kl_coef > 0 and self.ref_policies is not None
        if cfg.kl_coef > 0 and prep["ref"] is None and self.ref_policies is None:
            raise ValueError("PerAgentGRPO: kl_coef > 0 needs a ref_policy or RoleBatch.ref_logprobs")
        if need_old:
            with torch.no_grad():
                lp = pol.logprobs_of(role, batch.samples)
            prep["old"] = lp.sum.detach().float() if cfg.level == "sample" else _valid_rows(lp.token, lp.mask)
        if need_ref:
            with torch.no_grad():
                lp = self.ref_policies[role].logprobs_of(role, batch.samples)
            prep["ref"] = lp.sum.detach().float() if cfg.level == "sample" else _valid_rows(lp.token, lp.mask)
        for key in ("old", "ref"):
            val = prep[key]
            if val is None or val is _CURRENT:
                continue
            if cfg.level == "sample":
                t = torch.as_tensor(val, dtype=torch.float32).reshape(-1)
                if t.shape[0] != len(batch):
                    raise ValueError(f"RoleBatch of {ROLE_NAMES[role]}: {key}_logprobs has {t.shape[0]} entries, expected {len(batch)}")
                prep[key] = t
            else:
                if isinstance(val, torch.Tensor) or not isinstance(val, (list, tuple)) or len(val) != len(batch):
                    raise ValueError(
                        f"RoleBatch of {ROLE_NAMES[role]}: at level 'token' {key}_logprobs must be a list of "
                        f"{len(batch)} 1-D tensors (valid per-decision log-probs) or None"
                    )
        return prep

    def _role_loss(self, role: int, batch: RoleBatch, prep: dict, idx: list[int]):
        cfg = self.config
        lp = self.policies[role].logprobs_of(role, [batch.samples[i] for i in idx])
        adv = batch.advantages[idx].to(lp.token.device)
        if cfg.level == "sample":
            new, mask = lp.sum, None
            pick = lambda rows: rows[idx].to(new.device)  # noqa: E731
        else:
            new, mask = lp.token, lp.mask
            pick = lambda rows: _scatter_rows([rows[i] for i in idx], lp.mask)  # noqa: E731
        old = new.detach() if prep["old"] is _CURRENT else pick(prep["old"])
        ref = None if prep["ref"] is None else pick(prep["ref"])
        return grpo_loss(new, old, adv, mask, cfg.clip_eps, ref, cfg.kl_coef, cfg.aggregation)

    def _timed_loss(self, role: int, batch: RoleBatch, prep: dict, idx: list[int]):
        t = time.perf_counter()
        out = self._role_loss(role, batch, prep, idx)
        self._seconds["forward"] += time.perf_counter() - t
        return out

    def _timed_backward(self, loss: torch.Tensor) -> None:
        t = time.perf_counter()
        loss.backward()
        self._seconds["backward"] += time.perf_counter() - t

    def _role_backward(self, role: int, batch: RoleBatch, prep: dict, idx: list[int]) -> dict[str, float]:
        """Back-propagate the role's loss on minibatch ``idx``, in micro-batches of
        ``micro_batch_size`` samples when set (gradient accumulation: each micro-batch's loss is
        weighted by its share of the minibatch's samples — or of its decisions for
        ``aggregation="token"`` — so the summed gradient equals the whole minibatch's)."""
        cfg = self.config
        mb = cfg.micro_batch_size or len(idx)
        if mb < len(idx):
            idx = _prompt_order(batch.samples, idx)
        parts = [idx[i:i + mb] for i in range(0, len(idx), mb)]
        if len(parts) == 1:
            loss, st = self._timed_loss(role, batch, prep, idx)
            self._timed_backward(loss)
            return st
        if cfg.aggregation == "token" and cfg.level == "token":
            try:
                sizes = [float(sum(len(batch.samples[i]["completion_ids"]) for i in p)) for p in parts]
            except (TypeError, KeyError):
                raise ValueError("GRPOConfig.micro_batch_size with aggregation='token' needs samples that "
                                 "carry 'completion_ids' (LLM policies)") from None
        else:
            sizes = [float(len(p)) for p in parts]
        total = sum(sizes) or 1.0
        acc: dict[str, float] = {}
        for p, size in zip(parts, sizes):
            loss, st = self._timed_loss(role, batch, prep, p)
            self._timed_backward(loss * (size / total))
            for key, val in st.items():
                if key == "ratio_max":
                    acc[key] = max(acc.get(key, val), val)
                elif key == "n_decisions":
                    acc[key] = acc.get(key, 0.0) + val
                else:
                    acc[key] = acc.get(key, 0.0) + val * size / total
        return acc

    def update(self, batch_by_role: Mapping[Any, RoleBatch]) -> dict[str, float]:
        """Run ``inner_epochs`` passes of minibatch GRPO steps over every active role.

        Args:
            batch_by_role: role → :class:`RoleBatch`. Frozen roles and roles not trained
                by this updater are ignored; every active role must be present.

        Returns:
            Flat stats ``"<role>/<name>"`` averaged over the optimisation steps
            (``loss``, ``pg_loss``, ``kl_ref``, ``approx_kl``, ``clip_frac``,
            ``ratio_mean``, ``ratio_max``, ``grad_norm``, ``nonfinite_step_frac`` — the share of
            steps skipped because the gradient was NaN or infinite —, ``n_samples``,
            ``adv_mean``, ``adv_std``), plus ``steps`` and the wall seconds of the update's parts:
            ``seconds_prepare`` (old/ref log-probs not supplied by the batch),
            ``seconds_forward`` (re-scoring the samples with gradients, and the loss),
            ``seconds_backward`` and ``seconds_optimizer`` (clipping + optimizer steps).
        """
        cfg = self.config
        batches = {role_id(r): b for r, b in batch_by_role.items()}
        active = [r for r in self.active_roles if r in batches and len(batches[r]) > 0]
        missing = [ROLE_NAMES[r] for r in self.active_roles if r not in batches]
        if missing:
            raise ValueError(f"PerAgentGRPO.update: no RoleBatch for active roles {missing}")
        self._seconds = {"prepare": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        t = time.perf_counter()
        preps = {r: self._prepare(r, batches[r]) for r in active}
        self._seconds["prepare"] = time.perf_counter() - t
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(role: int, key: str, value: float) -> None:
            k = f"{ROLE_NAMES[role]}/{key}"
            sums[k] = sums.get(k, 0.0) + value
            counts[k] = counts.get(k, 0) + 1

        steps = 0
        for _ in range(cfg.inner_epochs):
            chunks: dict[int, list[list[int]]] = {}
            for r in active:
                n = len(batches[r])
                mb = cfg.minibatch_size or n
                perm = torch.randperm(n, generator=self.generator).tolist()
                chunks[r] = [perm[i : i + mb] for i in range(0, n, mb)]
            n_steps = max((len(c) for c in chunks.values()), default=0)
            for k in range(n_steps):
                for opt in self.optimizers:
                    opt.zero_grad(set_to_none=True)
                stepped_roles = []
                for r in active:
                    if k >= len(chunks[r]):
                        continue
                    st = self._role_backward(r, batches[r], preps[r], chunks[r][k])
                    stepped_roles.append(r)
                    for key, val in st.items():
                        if key != "n_decisions":
                            add(r, key, val)
                t = time.perf_counter()
                for gi, g in enumerate(self.groups):
                    roles_here = [r for r in g if r in stepped_roles]
                    if not roles_here:
                        continue
                    params = [p for p in self._group_params[gi] if p.grad is not None]
                    if not params:
                        continue
                    if cfg.max_grad_norm is not None:
                        gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    else:
                        gn = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params))
                    # A NaN/inf gradient (an overflowing ratio, a log of zero) would poison the
                    # weights and Adam's moments for good; skip the step and count it instead.
                    finite = bool(torch.isfinite(gn))
                    for r in roles_here:
                        add(r, "grad_norm", float(gn))
                        add(r, "nonfinite_step_frac", 0.0 if finite else 1.0)
                    if finite:
                        self.optimizers[gi].step()
                self._seconds["optimizer"] += time.perf_counter() - t
                steps += 1
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        out = {k: sums[k] / counts[k] for k in sums}
        for r in active:
            a = batches[r].advantages
            out[f"{ROLE_NAMES[r]}/n_samples"] = float(len(batches[r]))
            out[f"{ROLE_NAMES[r]}/adv_mean"] = float(a.mean())
            out[f"{ROLE_NAMES[r]}/adv_std"] = float(a.std(unbiased=False))
        out["steps"] = float(steps)
        out.update({f"seconds_{k}": v for k, v in self._seconds.items()})
        return out

    # -------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Optimizer states, frozen roles and the shuffling generator state (for resume)."""
        return {
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "groups": [list(g) for g in self.groups],
            "frozen_roles": sorted(self.frozen_roles),
            "generator": self.generator.get_state(),
            "config": self.config.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the role/parameter grouping must match."""
        groups = [tuple(g) for g in state["groups"]]
        if groups != self.groups:
            raise ValueError(f"PerAgentGRPO.load_state_dict: optimizer groups {groups} != {self.groups}")
        for opt, st in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(st)
        self.set_frozen_roles(state.get("frozen_roles", ()))
        if "generator" in state:
            self.generator.set_state(state["generator"])
