"""Small torch policies over the selection view (docs/design.md §7; docs/architecture.md `## Selection view`).

Observation (one per sample, a dict of numpy arrays): ``role`` (int 0..2),
``candidates`` ``(K, d)``, ``mask`` ``(K,)`` (1 = valid), ``query`` ``(d,)`` and
``options`` ``(4, d)`` (zeros for extractor/profiler). ``act`` accepts a list of such
dicts or one dict of stacked arrays with a leading batch axis.

Model. Every valid candidate ``c`` gets an independent Bernoulli *keep* logit from an
MLP over

    [c, q, c⊙q, m, c⊙m, c·q, c·m, role embedding, max_j c·o_j]

where ``q`` is the query (zeros for the extractor/profiler), ``m`` is the mean of
the valid candidates (the context, so the extractor and profiler can judge a candidate
against the rest of its chunk) and ``max_j c·o_j`` is the candidate's best match with an
option (0 without options). For the retriever each of the 4 options ``o`` gets a
logit from a second MLP over

    [o, q, o⊙q, s, o⊙s, o·q, o·s, role embedding, max_{k kept} o·c_k]

where ``s`` is the mean of the candidates *kept* in this sample (zeros if none) and the
last entry is the option's best match with a kept candidate (0 if none), so the option
is chosen conditionally on the retrieved memory; the option is a categorical over the
options whose embedding is non-zero (all 4 for MCQ data).

Default architecture ("size-aware profiler"). New policies default to ``position_features=True``,
``supersede_features=True`` and ``profile_capacity=8``; policies saved before a field existed load
with it off, so every saved run keeps the network it was trained with. Together the three make
the profiler causally necessary on full-history episodes as well as on evidence sessions: over the
10-seed sweep its intervention drop there is above 0 (docs/credit_ablation.md "Role
interventions"), while with all three off it is not. ``SelectionPolicy(dim, position_features=False,
supersede_features=False, profile_capacity=None)`` is the earlier default.

With ``position_features=True`` both feature vectors get one more entry:
the candidate's relative position among the valid rows (0 = first, 1 = last; the view keeps
candidates in chronological order), and for an option the position of its best-matching
kept candidate (0 if nothing is kept). On its own it was measured without gain at the CPU
budget of docs/credit_ablation_minilm.md.

With ``source_features=True`` (the default for new policies; policies saved before it existed
load with it off) both get one more entry after the position: the candidate's ``source`` flag
from the observation (1 = a profile unit, which the selection view shows the retriever first
and outside the fine-memory budget; 0 when the observation has no ``source``), and for an
option the flag of its best-matching kept candidate — so a retriever can learn to trust the
profile, and the profiler's output is an input the policy reads.

With ``supersede_features=True`` both get one more entry after the source flag:
the candidate's best similarity to a *later* valid candidate (rows are chronological, so a high
value marks a line a later line restates or updates — a stale preference), and for an option that
value of its best-matching kept candidate. It is the consolidation step of memory systems such as
mem0 (a new statement updates an old one), computed from the observation alone. On its own
(adaptive, seed 0) it did not make the profiler necessary on full-history episodes; with the
profile capacity and position features it does (see above).

Profile capacity. With ``profile_capacity=P`` (8 by default; ``None`` = no cap) the profiler
keeps at most ``P`` units: its keep-bits are the per-unit Bernoulli product *conditioned* on
keeping at most ``P``,

    p(S) = Π_{i∈S} p_i Π_{i∉S} (1 − p_i) / Pr(|S| ≤ P)   for |S| ≤ P,

sampled exactly (a suffix Poisson-binomial table gives each bit's conditional probability given
the capacity left) and scored exactly (the normaliser ``−log Pr(|S| ≤ P)`` is one more decision, in
the option slot the profiler does not otherwise use). Greedy acting returns the mode: the ``P``
highest-scoring units among those with ``p > 0.5``. On inputs of at most ``P`` units the normaliser
is 1 and the policy is the uncapped one, bit for bit — so it changes nothing on evidence-session
episodes (4–6 profiler units) and keeps a profiler trained there from copying a fifth of a
100-unit full history into a profile longer than the retriever's budget (docs/credit_ablation.md
"Role interventions").

Decisions and log-probs. A sample's decisions are its valid candidates' keep bits plus,
for the retriever, the option: ``logprobs_of`` returns ``(B, K + 1)`` per-decision
log-probs with a mask (candidate slots masked by the observation mask; the last slot is
the option, masked for extractor/profiler). Masked candidates are never kept and do not
enter the log-prob.

Temperature. Sampling at temperature ``T`` divides every logit by ``T``; the sample
record stores ``T`` and ``logprobs_of`` re-scores under the same tempered distribution
(the behaviour distribution, so GRPO ratios start at exactly 1). Greedy acting (keep iff
``p > 0.5``, argmax option) records ``T = 1`` and reports temperature-1 log-probs.

Actions follow the view's encoding: extractor/profiler ``MultiBinary(K)`` (int8 array),
retriever ``MultiDiscrete([2]*K + [4])`` (int64 array of K bits then the option index).

``shared=True`` uses one network for every role (the paper's shared-policy ablation; the
role embedding tells roles apart); otherwise each role has its own network. The final
keep layer starts with small weights and a bias of ``logit(keep_prob)``, so an untrained
policy keeps about ``keep_prob`` of the candidates.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from agents.base import (
    ALL_ROLES,
    PROFILER,
    ROLE_NAMES,
    RETRIEVER,
    ActOutput,
    LogProbs,
    Policy,
    read_policy_json,
    register_policy,
    role_id,
    row_generators,
    write_policy_json,
)

__all__ = ["SelectionPolicy", "SelectionPolicyConfig", "stack_observations"]

N_OPTIONS = 4
WEIGHTS_FILE = "model.safetensors"


@dataclass
class SelectionPolicyConfig:
    """Architecture and initialisation of a :class:`SelectionPolicy`."""

    dim: int = field(metadata={"help": "embedding dimension d of candidates/query/options (the view's d)"})
    hidden: int = field(default=64, metadata={"help": "hidden width of the candidate and option MLPs"})
    role_dim: int = field(default=8, metadata={"help": "size of the learned role embedding"})
    keep_prob: float = field(default=0.5, metadata={"help": "initial probability of keeping a candidate (sets the keep-bias)"})
    shared: bool = field(default=False, metadata={"help": "one network for all roles (shared-policy ablation) instead of one per role"})
    position_features: bool = field(default=True, metadata={"help": "recency features: each candidate's relative position among the valid rows (the view keeps them in chronological order), and for each option the position of its best-matching kept candidate"})
    source_features: bool = field(default=True, metadata={"help": "profile features: each candidate's 'source' flag (1 = a profile unit) and, for each option, the flag of its best-matching kept candidate (policies saved without this field load with it off)"})
    supersede_features: bool = field(default=True, metadata={"help": "consolidation features: each candidate's best similarity to a later valid candidate (a later line on the same subject supersedes it: a stale preference), and for each option that value of its best-matching kept candidate"})
    profile_capacity: int | None = field(default=8, metadata={"help": "most units the profiler keeps: its keep-bits are the Bernoulli product conditioned on keeping at most this many (exact sampling and log-probs; greedy keeps the highest-scoring ones); None = no cap (policies saved before it existed load with None)"})
    roles: tuple = field(default=ALL_ROLES, metadata={"help": "roles this policy acts for (ints 0..2)"})
    seed: int = field(default=0, metadata={"help": "seed of the parameter initialisation and of the fallback sampling generator"})
    device: str = field(default="cpu", metadata={"help": "torch device of the parameters"})

    def __post_init__(self) -> None:
        self.roles = tuple(sorted({role_id(r) for r in self.roles}))
        if not self.roles:
            raise ValueError("SelectionPolicyConfig.roles must not be empty")
        if self.dim < 1 or self.hidden < 1 or self.role_dim < 1:
            raise ValueError("SelectionPolicyConfig: dim, hidden and role_dim must be >= 1")
        cap = self.profile_capacity
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"SelectionPolicyConfig.profile_capacity must be a positive integer or None, got {cap!r}")
        if not 0.0 < self.keep_prob < 1.0:
            raise ValueError(f"SelectionPolicyConfig.keep_prob must be in (0, 1), got {self.keep_prob}")


class _SelectionNet(nn.Module):
    """Keep-logit scorer for candidates (+ option scorer when it serves the retriever)."""

    def __init__(self, dim: int, hidden: int, role_dim: int, with_option: bool, position: bool = False,
                 source: bool = False, supersede: bool = False) -> None:
        super().__init__()
        # + one "best match" similarity (see keep/option_logits) and, optionally, one position,
        # one source flag and one "superseded" similarity (in that order, after the match)
        feat = 5 * dim + 2 + role_dim + 1 + int(position) + int(source) + int(supersede)
        self.position = position
        self.source = source
        self.supersede = supersede
        self.role_emb = nn.Embedding(len(ALL_ROLES), role_dim)
        self.keep = nn.Sequential(nn.Linear(feat, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.option = (
            nn.Sequential(nn.Linear(feat, hidden), nn.Tanh(), nn.Linear(hidden, 1)) if with_option else None
        )

    def reset(self, generator: torch.Generator, keep_prob: float) -> None:
        with torch.no_grad():
            for mod in self.modules():
                if isinstance(mod, nn.Linear):
                    bound = 1.0 / math.sqrt(mod.in_features)
                    mod.weight.uniform_(-bound, bound, generator=generator)
                    mod.bias.uniform_(-bound, bound, generator=generator)
                elif isinstance(mod, nn.Embedding):
                    mod.weight.normal_(0.0, 0.1, generator=generator)
            # Small output weights: the initial keep probability is ~keep_prob everywhere.
            last = self.keep[-1]
            last.weight.mul_(0.01)
            last.bias.fill_(math.log(keep_prob / (1.0 - keep_prob)))
            if self.option is not None:
                self.option[-1].weight.mul_(0.01)
                self.option[-1].bias.zero_()

    @staticmethod
    def _score(mlp: nn.Sequential, x, ctx1, ctx2, role, match, pos=None, src=None, sup=None) -> torch.Tensor:
        """``mlp`` applied to ``[x, c1, x⊙c1, c2, x⊙c2, x·c1, x·c2, role, match(, pos)(, src)(, sup)]`` per row of ``x``.

        The first layer is linear in that feature vector, so instead of materialising the
        ``(B, N, 5d + 2 + r)`` features it is folded into one per-sample matrix
        ``M_b = W_x + diag(c1)(W_{x⊙c1} + w_{x·c1}) + diag(c2)(W_{x⊙c2} + w_{x·c2})``
        plus a per-sample bias from ``c1``, ``c2`` and the role: ``B·N·d·h`` work instead of
        ``5·B·N·d·h``. The parameters are those of the plain concatenated layer.
        """
        lin: nn.Linear = mlp[0]
        d = x.shape[-1]
        W = lin.weight  # (h, 5d + 2 + r)
        Wx, Wc1, Wxc1, Wc2, Wxc2 = (W[:, i * d : (i + 1) * d] for i in range(5))
        r = role.shape[-1]
        w_dot1, w_dot2, Wr = W[:, 5 * d], W[:, 5 * d + 1], W[:, 5 * d + 2 : 5 * d + 2 + r]
        w_match = W[:, 5 * d + 2 + r]
        M = (
            Wx.t()[None]
            + ctx1[:, :, None] * (Wxc1.t() + w_dot1[None, :])[None]
            + ctx2[:, :, None] * (Wxc2.t() + w_dot2[None, :])[None]
        )  # (B, d, h)
        bias = ctx1 @ Wc1.t() + ctx2 @ Wc2.t() + role @ Wr.t() + lin.bias  # (B, h)
        h = torch.bmm(x, M) + bias[:, None, :] + match[..., None] * w_match
        col = 5 * d + 3 + r
        if pos is not None:
            h = h + pos[..., None] * W[:, col]
            col += 1
        if src is not None:
            h = h + src[..., None] * W[:, col]
            col += 1
        if sup is not None:
            h = h + sup[..., None] * W[:, col]
        for layer in list(mlp)[1:]:
            h = layer(h)
        return h.squeeze(-1)

    @staticmethod
    def _features(x, ctx1, ctx2, role, match, pos=None, src=None, sup=None) -> torch.Tensor:
        """The explicit feature vector (reference for :meth:`_score`; used in tests)."""
        c1 = ctx1[:, None, :].expand_as(x)
        c2 = ctx2[:, None, :].expand_as(x)
        dot1 = (x * c1).sum(-1, keepdim=True)
        dot2 = (x * c2).sum(-1, keepdim=True)
        r = role[:, None, :].expand(x.shape[0], x.shape[1], role.shape[-1])
        extra = [t[..., None] for t in (pos, src, sup) if t is not None]
        return torch.cat([x, c1, x * c1, c2, x * c2, dot1, dot2, r, match[..., None], *extra], dim=-1)

    @staticmethod
    def _best_match(x, others, valid) -> torch.Tensor:
        """Per row of ``x`` (B, N, d): max dot product with the valid rows of ``others``; 0 if none."""
        sims = torch.bmm(x, others.transpose(1, 2))  # (B, N, M)
        sims = sims.masked_fill(~valid[:, None, :], float("-inf"))
        best = sims.max(dim=-1).values
        return torch.where(valid.any(-1, keepdim=True), best, torch.zeros_like(best))

    @staticmethod
    def _superseded(cand, mask) -> torch.Tensor:
        """Per valid row: its best dot product with a *later* valid row (0 for the last row and masked ones).

        Rows are in chronological order, so a high value means a later line says something close
        to this one — the later statement of the same preference supersedes it (memory
        consolidation, as in mem0's update step). Computed from the observation, not the data."""
        sims = torch.bmm(cand, cand.transpose(1, 2))  # (B, N, N)
        n = cand.shape[1]
        later = torch.ones(n, n, dtype=torch.bool, device=cand.device).triu(diagonal=1)
        ok = later[None] & mask[:, None, :] & mask[:, :, None]
        best = sims.masked_fill(~ok, float("-inf")).max(dim=-1).values
        return torch.where(ok.any(-1), best, torch.zeros_like(best))

    @staticmethod
    def _positions(mask) -> torch.Tensor:
        """Relative position of each valid row among the valid rows (0 = first, 1 = last; 0 if masked).
        Rows are in the view's candidate order, which is chronological (docs/design.md §7)."""
        m = mask.to(torch.float32)
        idx = torch.cumsum(m, dim=1) - 1.0
        return torch.where(mask, idx / (m.sum(1, keepdim=True) - 1.0).clamp(min=1.0), torch.zeros_like(m))

    def keep_logits(self, cand, mask, query, role_ids, options, source=None) -> torch.Tensor:
        m = mask.to(cand.dtype)
        ctx = (cand * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
        # How well the candidate supports its best option (0 without options).
        match = self._best_match(cand, options, options.abs().sum(-1) > 0)
        pos = self._positions(mask).to(cand.dtype) if self.position else None
        src = self._source(source, mask, cand.dtype) if self.source else None
        sup = self._superseded(cand, mask) if self.supersede else None
        return self._score(self.keep, cand, query, ctx, self.role_emb(role_ids), match, pos, src, sup)

    @staticmethod
    def _source(source, mask, dtype) -> torch.Tensor:
        """The per-candidate profile flag (0 where masked, or everywhere without a ``source``)."""
        if source is None:
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return (source.to(dtype) * mask.to(dtype))

    def option_logits(self, options, query, cand, kept, role_ids, mask=None, source=None) -> torch.Tensor:
        k = kept.to(cand.dtype)
        sel = (cand * k[..., None]).sum(1) / k.sum(1, keepdim=True).clamp(min=1.0)
        # How well the option is supported by its best kept candidate (0 if nothing kept).
        match = self._best_match(options, cand, kept)
        rows = mask if mask is not None else kept
        best = None  # index of each option's best-matching kept candidate, computed once if a feature needs it

        def at_best(values):
            """``values`` (one per candidate) read at each option's best-matching kept candidate (0 if none kept)."""
            nonlocal best
            if best is None:
                sims = torch.bmm(options, cand.transpose(1, 2)).masked_fill(~kept[:, None, :], float("-inf"))
                best = sims.argmax(dim=-1)  # (B, 4)
            return torch.where(kept.any(-1, keepdim=True), values.gather(1, best), torch.zeros_like(match))

        # How recent that candidate is: among an old and an updated preference, the option backed
        # by the later one is usually right.
        pos = at_best(self._positions(rows).to(cand.dtype)) if self.position else None
        # Whether it is a profile unit.
        src = at_best(self._source(source, kept, cand.dtype)) if self.source else None
        # Whether it is superseded by a later candidate (stale).
        sup = at_best(self._superseded(cand, rows)) if self.supersede else None
        return self._score(self.option, options, query, sel, self.role_emb(role_ids), match, pos, src, sup)


# A finite "log 0": logaddexp of two -inf has a NaN gradient.
_LOG_ZERO = -1e30


def _over_capacity(mask: torch.Tensor, cap: int) -> torch.Tensor:
    """Rows with more than ``cap`` valid candidates (the only rows a capacity changes)."""
    return mask.sum(1) > cap


def _count_step(table: torch.Tensor, lp: torch.Tensor, lq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """One entry of a Poisson-binomial table: ``table[:, c]`` is a log-probability indexed by a count
    ``c = 0..cap`` of kept entries; entry ``i`` (log keep-prob ``lp``, log drop-prob ``lq``, each
    ``(R, 1)``) either leaves the count or moves it by one. Rows where it is not ``valid`` are unchanged."""
    shifted = torch.cat([torch.full_like(table[:, :1], _LOG_ZERO), table[:, :-1]], 1)
    return torch.where(valid, torch.logaddexp(table + lq, shifted + lp), table)


def capacity_log_normaliser(logits: torch.Tensor, mask: torch.Tensor, cap: int) -> torch.Tensor:
    """``log Pr(|S| <= cap)`` per row, S kept with independent ``sigmoid(logits)`` over the valid
    entries (a Poisson-binomial table over the count kept so far, truncated at ``cap``;
    differentiable). Exactly 0 on rows with at most ``cap`` valid entries."""
    B, K = logits.shape
    over = _over_capacity(mask, cap)
    out = torch.zeros(B, dtype=logits.dtype, device=logits.device)
    if not bool(over.any()):
        return out
    lp, lq = nn.functional.logsigmoid(logits), nn.functional.logsigmoid(-logits)
    table = torch.full((B, cap + 1), _LOG_ZERO, dtype=logits.dtype, device=logits.device)
    table[:, 0] = 0.0
    for i in range(K):  # table[:, j] = log Pr(j of the valid entries < i kept), j <= cap
        table = _count_step(table, lp[:, i : i + 1], lq[:, i : i + 1], mask[:, i : i + 1])
    return torch.where(over, torch.logsumexp(table, 1), out)


def _capped_bits(logits: torch.Tensor, mask: torch.Tensor, u: torch.Tensor, cap: int) -> torch.Tensor:
    """Keep-bits drawn from the Bernoulli product conditioned on at most ``cap`` kept, from the
    uniforms ``u`` (rows with at most ``cap`` valid entries: plain ``u < sigmoid(logits)``)."""
    bits = (u < torch.sigmoid(logits)) & mask
    over = _over_capacity(mask, cap).nonzero().flatten().tolist()
    if not over:
        return bits
    # the over-capacity rows, on the CPU in float64 (a small sequential loop)
    lg, m, uu = logits[over].double().cpu(), mask[over].cpu(), u[over].double().cpu()
    lp, lq = nn.functional.logsigmoid(lg), nn.functional.logsigmoid(-lg)
    R, K = lg.shape
    # suffix[i][:, c] = log Pr(at most c kept among the valid entries >= i), c = 0..cap
    suffix = [torch.zeros((R, cap + 1), dtype=lg.dtype)] * (K + 1)
    for i in range(K - 1, -1, -1):
        suffix[i] = _count_step(suffix[i + 1], lp[:, i : i + 1], lq[:, i : i + 1], m[:, i : i + 1])
    left = torch.full((R,), cap, dtype=torch.long)
    rows = torch.arange(R)
    out = torch.zeros((R, K), dtype=torch.bool)
    for i in range(K):
        # Pr(keep i | capacity `left`) = p_i · Pr(at most left−1 of the rest) / Pr(at most left of i..)
        rest = torch.where(left > 0, suffix[i + 1][rows, (left - 1).clamp(min=0)], torch.full_like(lp[:, i], _LOG_ZERO))
        take = m[:, i] & (uu[:, i] < torch.exp(lp[:, i] + rest - suffix[i][rows, left]))
        out[:, i] = take
        left = left - take.long()
    bits[over] = out.to(bits.device)
    return bits


def _capped_greedy(logits: torch.Tensor, mask: torch.Tensor, cap: int) -> torch.Tensor:
    """The conditioned distribution's mode: the ``cap`` highest logits among the positive valid ones
    (ties: the earlier entry)."""
    bits = (logits > 0) & mask
    over = (bits.sum(1) > cap).nonzero().flatten().tolist()
    for r in over:
        idx = bits[r].nonzero().flatten()
        order = torch.sort(-logits[r, idx], stable=True).indices[:cap]
        bits[r] = False
        bits[r, idx[order]] = True
    return bits


def _as_batch(observations: Any) -> dict[str, np.ndarray]:
    """A list of observation dicts or a stacked dict → stacked numpy arrays (B leading)."""
    if isinstance(observations, Mapping):
        cand = np.asarray(observations["candidates"])
        if cand.ndim == 2:  # a single observation dict
            return stack_observations([observations])
        mask = np.asarray(observations["mask"])
        source = observations.get("source")
        return {
            "role": np.asarray(observations["role"]).reshape(-1),
            "candidates": cand,
            "mask": mask,
            "query": np.asarray(observations["query"]),
            "options": np.asarray(observations["options"]),
            "source": np.zeros(mask.shape, np.int8) if source is None else np.asarray(source, np.int8),
        }
    return stack_observations(list(observations))


def stack_observations(observations: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stack selection-view observation dicts; K may differ (padded with masked rows)."""
    if not observations:
        raise ValueError("stack_observations: empty batch")
    for i, o in enumerate(observations):
        for key in ("candidates", "mask", "query", "options"):
            if key not in o:
                raise ValueError(f"selection observation {i}: field {key!r} missing")
    dims = {np.asarray(o["candidates"]).shape[-1] for o in observations}
    if len(dims) != 1:
        raise ValueError(f"selection observations: inconsistent embedding dims {sorted(dims)}")
    d = dims.pop()
    K = max(np.asarray(o["candidates"]).shape[0] for o in observations)
    B = len(observations)
    cand = np.zeros((B, K, d), np.float32)
    mask = np.zeros((B, K), np.int8)
    source = np.zeros((B, K), np.int8)  # 0 for observations without a "source" (older views)
    for i, o in enumerate(observations):
        c = np.asarray(o["candidates"], np.float32)
        m = np.asarray(o["mask"]).reshape(-1)
        if c.ndim != 2 or m.shape[0] != c.shape[0]:
            raise ValueError(
                f"selection observation {i}: candidates {c.shape} and mask {m.shape} disagree (want (K, d), (K,))"
            )
        cand[i, : c.shape[0]] = c
        mask[i, : c.shape[0]] = m
        if o.get("source") is not None:
            src = np.asarray(o["source"]).reshape(-1)
            if src.shape[0] != c.shape[0]:
                raise ValueError(f"selection observation {i}: source {src.shape} and candidates {c.shape} disagree")
            source[i, : c.shape[0]] = src
    return {
        "role": np.array([int(np.asarray(o.get("role", -1))) for o in observations]),
        "candidates": cand,
        "mask": mask,
        "query": np.stack([np.asarray(o["query"], np.float32).reshape(d) for o in observations]),
        "options": np.stack([np.asarray(o["options"], np.float32).reshape(-1, d) for o in observations]),
        "source": source,
    }


@register_policy("selection")
class SelectionPolicy(Policy):
    """Bernoulli keep-bits per candidate (+ categorical option for the retriever).

    Args:
        config: a :class:`SelectionPolicyConfig`, or pass its fields as keyword
            arguments (``SelectionPolicy(dim=384, shared=True)``).

    Sample records (``ActOutput.samples``) are dicts of numpy arrays — ``candidates``,
    ``mask``, ``query``, ``options``, ``bits`` (K,), ``option`` (int, -1 if none) and
    ``temperature`` — picklable and free of autograd state.
    """

    def __init__(self, config: SelectionPolicyConfig | None = None, **kwargs) -> None:
        if config is None:
            config = SelectionPolicyConfig(**kwargs)
        elif kwargs:
            raise TypeError("SelectionPolicy: pass either a config or keyword fields, not both")
        self.config = config
        self.roles = config.roles
        self._device = torch.device(config.device)
        gen = torch.Generator().manual_seed(config.seed)
        nets: dict[str, _SelectionNet] = {}
        if config.shared:
            nets["shared"] = _SelectionNet(config.dim, config.hidden, config.role_dim, RETRIEVER in self.roles,
                                           config.position_features, config.source_features,
                                           config.supersede_features)
        else:
            for r in self.roles:
                nets[ROLE_NAMES[r]] = _SelectionNet(config.dim, config.hidden, config.role_dim, r == RETRIEVER,
                                                    config.position_features, config.source_features,
                                                    config.supersede_features)
        self.nets = nn.ModuleDict(nets)
        for key in self.nets:  # deterministic, insertion order
            self.nets[key].reset(gen, config.keep_prob)
        self.nets.to(self._device)
        self._fallback_gen = torch.Generator().manual_seed(config.seed + 1)

    # ------------------------------------------------------------------ protocol

    @property
    def device(self) -> torch.device:
        return self._device

    def net(self, role: int) -> _SelectionNet:
        r = self.check_role(role)
        return self.nets["shared"] if self.config.shared else self.nets[ROLE_NAMES[r]]

    def trainable_parameters(self, role: int | None = None) -> list:
        if role is None:
            return list(self.nets.parameters())
        return list(self.net(role).parameters())

    def train(self) -> "SelectionPolicy":
        self.nets.train()
        return self

    def eval(self) -> "SelectionPolicy":
        self.nets.eval()
        return self

    def _tensors(self, batch: Mapping[str, np.ndarray]):
        dev = self._device
        cand = torch.as_tensor(np.asarray(batch["candidates"], np.float32), device=dev)
        if cand.shape[-1] != self.config.dim:
            raise ValueError(f"SelectionPolicy: candidates have dim {cand.shape[-1]}, policy expects {self.config.dim}")
        mask = torch.as_tensor(np.asarray(batch["mask"]) > 0, device=dev)
        query = torch.as_tensor(np.asarray(batch["query"], np.float32), device=dev)
        options = torch.as_tensor(np.asarray(batch["options"], np.float32), device=dev)
        src = batch.get("source")
        source = torch.as_tensor(np.asarray(src if src is not None else np.zeros(mask.shape, np.int8)) > 0, device=dev)
        return cand, mask, query, options, source

    def _capacity(self, role: int) -> int | None:
        """Most units ``role`` keeps (``profile_capacity`` for the profiler), ``None`` without a cap."""
        return self.config.profile_capacity if role == PROFILER else None

    def _decision_logprobs(self, role, cand, mask, query, options, bits, option, temperature, logits=None, source=None):
        """Per-decision log-probs ``(B, K+1)`` and mask for given bits/options (differentiable).

        ``logits``: already computed tempered keep-logits (``act`` passes them to avoid a
        second forward pass); recomputed when ``None``.
        """
        net = self.net(role)
        B, K = mask.shape
        role_ids = torch.full((B,), role, dtype=torch.long, device=cand.device)
        if logits is None:
            logits = net.keep_logits(cand, mask, query, role_ids, options, source) / temperature[:, None]
        b = bits.to(logits.dtype)
        lp_bits = b * nn.functional.logsigmoid(logits) + (1 - b) * nn.functional.logsigmoid(-logits)
        maskf = mask.to(logits.dtype)
        lp_bits = lp_bits * maskf
        lp_opt = torch.zeros((B, 1), dtype=logits.dtype, device=cand.device)
        m_opt = torch.zeros((B, 1), dtype=logits.dtype, device=cand.device)
        if role == RETRIEVER:
            opt_valid = options.abs().sum(-1) > 0  # (B, 4)
            has = opt_valid.any(-1)
            ol = net.option_logits(options, query, cand, bits.bool() & mask, role_ids, mask, source) / temperature[:, None]
            ol = ol.masked_fill(~opt_valid, -1e9)
            logp_all = torch.log_softmax(ol, dim=-1)
            idx = option.clamp(min=0)[:, None]
            lp_opt = torch.where(has[:, None], logp_all.gather(1, idx), lp_opt)
            m_opt = has[:, None].to(logits.dtype)
        elif self._capacity(role) is not None:
            # the capacity's normaliser, as one more decision in the (otherwise unused) option slot
            lp_opt = -capacity_log_normaliser(logits, mask, self._capacity(role))[:, None]
            m_opt = _over_capacity(mask, self._capacity(role))[:, None].to(logits.dtype)
        token = torch.cat([lp_bits, lp_opt], dim=1)
        dmask = torch.cat([maskf, m_opt], dim=1)
        return token, dmask

    def act(
        self,
        role: int,
        observations: Any,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> ActOutput:
        """Sample (or greedily pick) a subset — and for the retriever an option — per observation.

        ``top_p`` is accepted for protocol compatibility; selection decisions are binary /
        4-way, so nucleus truncation is not applied (values other than 1.0 are rejected).
        """
        r = self.check_role(role)
        if top_p != 1.0:
            raise ValueError("SelectionPolicy.act: top_p is not supported (use temperature)")
        if not greedy and temperature <= 0:
            raise ValueError(f"SelectionPolicy.act: temperature must be > 0, got {temperature}")
        gen = generator if generator is not None else self._fallback_gen
        batch = _as_batch(observations)
        gens = row_generators(generator, len(batch["role"]))  # one generator per observation, or None
        roles_in = batch["role"]
        if np.any((roles_in >= 0) & (roles_in != r)):
            raise ValueError(f"SelectionPolicy.act: observations carry role ids {sorted(set(roles_in.tolist()))}, act called for {r}")
        cand, mask, query, options, source = self._tensors(batch)
        B, K = mask.shape
        T = 1.0 if greedy else float(temperature)
        temp = torch.full((B,), T, dtype=torch.float32, device=self._device)
        net = self.net(r)
        role_ids = torch.full((B,), r, dtype=torch.long, device=self._device)
        with torch.no_grad():
            logits = net.keep_logits(cand, mask, query, role_ids, options, source) / temp[:, None]
            cap = self._capacity(r)
            if greedy:
                bits = (logits > 0) & mask if cap is None else _capped_greedy(logits, mask, cap)
            else:
                if gens is None:
                    u = torch.rand((B, K), generator=gen)
                else:  # per-observation streams: row i's draws come from gens[i] only
                    u = torch.stack([torch.rand(K, generator=g) for g in gens]) if gens else torch.zeros(0, K)
                u = u.to(self._device)
                bits = (u < torch.sigmoid(logits)) & mask if cap is None else _capped_bits(logits, mask, u, cap)
            option = torch.full((B,), -1, dtype=torch.long, device=self._device)
            if r == RETRIEVER:
                opt_valid = options.abs().sum(-1) > 0
                has = opt_valid.any(-1)
                ol = net.option_logits(options, query, cand, bits, role_ids, mask, source) / temp[:, None]
                ol = ol.masked_fill(~opt_valid, -1e9)
                if greedy:
                    chosen = ol.argmax(-1)
                else:
                    probs = torch.softmax(ol, dim=-1)
                    if gens is None:
                        chosen = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1).to(self._device)
                    else:
                        chosen = torch.tensor([int(torch.multinomial(probs[i].cpu(), 1, generator=g)[0])
                                               for i, g in enumerate(gens)], dtype=torch.long, device=self._device)
                option = torch.where(has, chosen, option)
            token, dmask = self._decision_logprobs(r, cand, mask, query, options, bits, option, temp, logits, source)
            logprobs = (token * dmask).sum(1).float().cpu()
        bits_np = bits.cpu().numpy().astype(np.int8)
        opt_np = option.cpu().numpy()
        actions, samples, info = [], [], []
        for i in range(B):
            if r == RETRIEVER:
                actions.append(np.concatenate([bits_np[i].astype(np.int64), [max(int(opt_np[i]), 0)]]))
            else:
                actions.append(bits_np[i].copy())
            samples.append(
                {
                    "candidates": np.array(batch["candidates"][i], np.float32),
                    "mask": np.array(batch["mask"][i], np.int8),
                    "query": np.array(batch["query"][i], np.float32),
                    "options": np.array(batch["options"][i], np.float32),
                    "source": np.array(batch["source"][i], np.int8),
                    "bits": bits_np[i].copy(),
                    "option": int(opt_np[i]),
                    "temperature": T,
                }
            )
            info.append({"n_kept": int(bits_np[i].sum()), "n_candidates": int(batch["mask"][i].sum())})
        return ActOutput(actions=actions, logprobs=logprobs, samples=samples, info=info)

    def logprobs_of(self, role: int, samples: Sequence[Mapping[str, Any]]) -> LogProbs:
        """Re-score recorded decisions with gradients: ``(sum (B,), token (B, K+1), mask (B, K+1))``."""
        r = self.check_role(role)
        if len(samples) == 0:
            raise ValueError("SelectionPolicy.logprobs_of: empty samples")
        batch = stack_observations(samples)
        K = batch["mask"].shape[1]
        bits = np.zeros((len(samples), K), np.int8)
        for i, s in enumerate(samples):
            bb = np.asarray(s["bits"]).reshape(-1)
            bits[i, : bb.shape[0]] = bb
        cand, mask, query, options, source = self._tensors(batch)
        bits_t = torch.as_tensor(bits, device=self._device).bool() & mask
        option = torch.as_tensor([int(s["option"]) for s in samples], dtype=torch.long, device=self._device)
        temp = torch.as_tensor([float(s.get("temperature", 1.0)) for s in samples], dtype=torch.float32, device=self._device)
        token, dmask = self._decision_logprobs(r, cand, mask, query, options, bits_t, option, temp, source=source)
        return LogProbs(sum=(token * dmask).sum(1), token=token * dmask, mask=dmask)

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``model.safetensors`` (atomically) and ``policy.json`` (kind + config)."""
        from safetensors.torch import save

        from comam_env.data.paths import atomic_write_bytes

        state = {k: v.detach().cpu().contiguous() for k, v in self.nets.state_dict().items()}
        atomic_write_bytes(os.path.join(directory, WEIGHTS_FILE), save(state))
        cfg = asdict(self.config)
        cfg["roles"] = list(cfg["roles"])
        write_policy_json(directory, {"kind": "selection", "config": cfg})

    @classmethod
    def load(cls, directory: str | os.PathLike, **overrides) -> "SelectionPolicy":
        """Rebuild from :meth:`save` output; ``overrides`` replace config fields (e.g. ``device``)."""
        from safetensors.torch import load_file

        meta = read_policy_json(directory)
        path = os.path.join(directory, "policy.json")
        if meta.get("kind") != "selection":
            raise ValueError(f"{path}: field 'kind' is {meta.get('kind')!r}, expected 'selection'")
        if not isinstance(meta.get("config"), dict):
            raise ValueError(f"{path}: field 'config' missing or not an object")
        cfg = dict(meta["config"])
        # Policies saved before a field existed were trained without it: load them with it off.
        for name, off in (("position_features", False), ("source_features", False),
                          ("supersede_features", False), ("profile_capacity", None)):
            cfg.setdefault(name, off)
        cfg.update(overrides)
        try:
            config = SelectionPolicyConfig(**cfg)
        except TypeError as exc:
            raise ValueError(f"{path}: field 'config': {exc}") from exc
        policy = cls(config)
        weights = os.path.join(directory, WEIGHTS_FILE)
        state = load_file(weights, device=str(policy.device))
        try:
            policy.nets.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{weights}: weights do not match the config in {path}: {exc}") from exc
        return policy
