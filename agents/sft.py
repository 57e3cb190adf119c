"""Supervised warm start of LLM policies from the env's own oracle trajectories.

Why: an untrained small instruct model (SmolLM2-135M) never writes ``<information>`` /
``<final_answer>``, so every GRPO group earns identical (zero) rewards and the policy gradient is
exactly zero — the "zero-signal plateau". LLM-RL practice starts RL from a supervised fine-tune;
here the demonstrations come from :class:`comam_env.policies.OraclePolicy`, which plays each
role from the gold data of the episode.

Data (:func:`oracle_examples`)
------------------------------
For each training question, one episode of the env (the trainer's training episodes, text view)
is played by the oracle. Every decision becomes one example ``(role, prompt ids, target ids)``:

* prompt: the observation exactly as :class:`agents.llm.LLMPolicy` renders and truncates it at
  act time (``LLMPolicy.encode_prompt``), so SFT and RL see the same token sequences;
* target: the oracle's action — extractor: the gold evidence messages of the chunk it is shown;
  profiler: the gold profile statements (or M_f when the data has none); retriever:
  ``<information>`` + the gold evidence lines + ``</information>`` + ``<final_answer>(x)</final_answer>``
  — followed by the tokenizer's end-of-turn token so the model learns to stop. A target longer
  than the role's ``max_new_tokens`` is shortened by whole lines (dropping the last content
  lines; the retriever keeps its tags and its answer line) so that it always ends with the stop
  token inside the generation budget (:func:`fit_target`).

Loss (:func:`sft_loss`)
-----------------------
Token-level negative log-likelihood of the target under the role's adapter at temperature 1,
``−Σ_t log π(y_t | x, y_<t) / Σ_t 1`` over the batch's target tokens (prompt tokens carry no
loss). It is computed by ``LLMPolicy.logprobs_of`` — the same forward pass the GRPO update uses —
so there is no second code path. One AdamW optimiser per adapter (roles sharing an adapter share
it), ``epochs`` shuffled passes, mini-batches of ``batch_size`` examples of one role, gradient
norm clipped to ``max_grad_norm``. Only the LoRA parameters move (the base model is shared and
frozen).

Entry points: ``comam-env train --warm-start sft`` (:class:`agents.comam.Trainer` runs
:func:`run_sft` before the first evaluation and logs it to ``sft.jsonl``), or call
:func:`run_sft` on any :class:`~agents.llm.LLMPolicy`.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from agents.base import ROLE_NAMES, role_id
from agents.config import SFTConfig  # torch-free; re-exported here

__all__ = ["SFTConfig", "SFTExample", "fit_target", "oracle_examples", "run_sft", "sft_loss"]


@dataclass
class SFTExample:
    """One supervised decision: the prompt a role saw and the oracle's completion (+ stop token)."""

    role: int
    prompt_ids: list
    target_ids: list
    question_id: str = ""
    shortened: bool = False
    """True when :func:`fit_target` dropped lines to fit the generation budget."""

    def sample(self) -> dict:
        """The record ``LLMPolicy.logprobs_of`` scores (temperature 1, no top-p)."""
        return {"prompt_ids": torch.tensor(self.prompt_ids, dtype=torch.long),
                "completion_ids": torch.tensor(self.target_ids, dtype=torch.long),
                "temperature": 1.0, "top_p": 1.0}


def fit_target(role: int, text: str, tokenizer, budget: int, stop_id: int) -> tuple[list[int], bool]:
    """Token ids of ``text`` + ``stop_id`` in at most ``budget`` tokens, shortened by whole lines.

    Lines are dropped from the end of the droppable part: for the retriever the lines between
    ``<information>`` and ``</information>`` (its tags and answer line stay), for the other roles
    every line but the first. If nothing droppable is left and it still does not fit, the tokens
    are cut (the stop token is kept last). Returns ``(ids, shortened)``.
    """
    if budget < 2:
        raise ValueError(f"fit_target: budget {budget} leaves no room for a target and its stop token")

    def encode(lines: list[str]) -> list[int]:
        return list(tokenizer("\n".join(lines), add_special_tokens=False)["input_ids"]) + [stop_id]

    lines = text.split("\n")
    ids = encode(lines)
    if len(ids) <= budget:
        return ids, False
    if role == 2 and len(lines) >= 3 and lines[0].strip().lower() == "<information>":
        close = next((i for i, l in enumerate(lines) if l.strip().lower() == "</information>"), None)
        head, body, tail = (lines[:1], lines[1:close], lines[close:]) if close else (lines[:1], [], lines[1:])
    else:
        head, body, tail = lines[:1], lines[1:], []
    while body and len(ids) > budget:
        body = body[:-1]
        ids = encode(head + body + tail)
    if len(ids) > budget:
        ids = ids[: budget - 1] + [stop_id]
    return ids, True


def _stop_id(policy, role: int) -> int:
    tok = policy.tokenizer(role)
    stop = policy._stop_ids(policy._units[policy._role_unit[role]])
    # the chat model's end-of-turn token (the first stop id the tokenizer itself names)
    return int(tok.eos_token_id) if tok.eos_token_id is not None else int(stop[0])


def oracle_examples(policy, env, question_ids: Sequence[str], *, seed: int = 0) -> list[SFTExample]:
    """Play one oracle episode per question in ``env`` and record every decision (module docstring).

    ``env`` is a text-view AEC env (e.g. one of the trainer's training envs); ``policy`` an
    :class:`~agents.llm.LLMPolicy` (its tokenizer, prompt rendering and generation budgets).
    Episode ``k`` is reset with seed ``seed + k``: the data are a pure function of the arguments.
    """
    from comam_env.policies import OraclePolicy

    oracle = OraclePolicy()
    examples: list[SFTExample] = []
    for k, qid in enumerate(question_ids):
        env.reset(seed=int(seed) + k, options={"question_id": qid})
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            role = role_id(agent)
            action = oracle(agent, obs, env)
            if role in policy.roles:
                mnt = policy.max_new_tokens(role)
                prompt_ids, _ = policy.encode_prompt(role, obs, mnt)
                target, short = fit_target(role, action, policy.tokenizer(role), mnt, _stop_id(policy, role))
                examples.append(SFTExample(role, prompt_ids, target, str(qid), short))
            env.step(action)
    return examples


def sft_loss(policy, role: int, examples: Sequence[SFTExample]) -> tuple[torch.Tensor, int]:
    """Mean token NLL of the targets (with gradients) and the number of target tokens."""
    lp = policy.logprobs_of(role, [e.sample() for e in examples])
    n = lp.mask.sum()
    return -(lp.token * lp.mask).sum() / n.clamp(min=1.0), int(n)


def _adapter_groups(policy, roles: Sequence[int]) -> list[tuple[tuple[int, ...], list]]:
    """Roles grouped by shared trainable parameters (one optimiser per adapter)."""
    groups: list[tuple[list[int], dict[int, Any]]] = []
    for r in roles:
        params = {id(p): p for p in policy.trainable_parameters(r)}
        for g_roles, g_params in groups:
            if set(g_params) & set(params):
                g_roles.append(r)
                g_params.update(params)
                break
        else:
            groups.append(([r], params))
    return [(tuple(rs), list(ps.values())) for rs, ps in groups]


def run_sft(policy, env, question_ids: Sequence[str], config: SFTConfig | None = None, *,
            log_path: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """Collect oracle examples for ``question_ids`` in ``env`` and fine-tune ``policy`` on them.

    The first ``config.questions`` ids of a seeded permutation of ``question_ids`` are used.
    Returns a summary (examples per role, shortened targets, first/last-epoch loss per role,
    seconds); with ``log_path`` one JSON line per epoch is written there (atomically).
    """
    cfg = config or SFTConfig()
    t0 = time.perf_counter()
    rng = np.random.default_rng([int(cfg.seed), 1717])
    ids = list(question_ids)
    order = rng.permutation(len(ids))[: min(cfg.questions, len(ids))]
    examples = oracle_examples(policy, env, [ids[i] for i in order], seed=cfg.seed)
    by_role: dict[int, list[SFTExample]] = {}
    for e in examples:
        by_role.setdefault(e.role, []).append(e)
    roles = sorted(by_role)
    if not roles:
        raise ValueError("run_sft: the oracle episodes produced no examples for the policy's roles")
    groups = _adapter_groups(policy, roles)
    optims = [torch.optim.AdamW(ps, lr=cfg.lr, weight_decay=cfg.weight_decay) for _, ps in groups]
    group_of = {r: gi for gi, (rs, _) in enumerate(groups) for r in rs}
    gen = torch.Generator().manual_seed(int(cfg.seed))
    history = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        n_batches = sum(-(-len(v) // cfg.batch_size) for v in by_role.values())
        bar = tqdm(total=cfg.epochs * n_batches, desc="sft warm start", unit="batch")
    policy.train()
    try:
        for epoch in range(cfg.epochs):
            sums = {r: [0.0, 0] for r in roles}
            batches = []
            for r in roles:
                perm = torch.randperm(len(by_role[r]), generator=gen).tolist()
                batches += [(r, [by_role[r][i] for i in perm[s:s + cfg.batch_size]])
                            for s in range(0, len(perm), cfg.batch_size)]
            # interleave roles: every adapter moves through the whole epoch
            for j in torch.randperm(len(batches), generator=gen).tolist():
                r, chunk = batches[j]
                opt = optims[group_of[r]]
                opt.zero_grad(set_to_none=True)
                loss, n = sft_loss(policy, r, chunk)
                loss.backward()
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(groups[group_of[r]][1], cfg.max_grad_norm)
                opt.step()
                sums[r][0] += float(loss.detach()) * n
                sums[r][1] += n
                if bar is not None:
                    bar.update(1)
            rec = {"epoch": epoch + 1, **{f"loss_{ROLE_NAMES[r]}": s / max(c, 1) for r, (s, c) in sums.items()}}
            history.append(rec)
    finally:
        if bar is not None:
            bar.close()
        for opt in optims:
            opt.zero_grad(set_to_none=True)
        policy.eval()
    if log_path is not None:
        from comam_env.data.paths import atomic_write_text

        atomic_write_text(log_path, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))
    summary: dict[str, Any] = {"sft_examples": len(examples), "sft_questions": len(order),
                               "sft_seconds": time.perf_counter() - t0, "sft_config": asdict(cfg)}
    for r in roles:
        name = ROLE_NAMES[r]
        summary[f"sft_examples_{name}"] = len(by_role[r])
        summary[f"sft_shortened_{name}"] = sum(e.shortened for e in by_role[r])
        summary[f"sft_loss_{name}_first"] = history[0][f"loss_{name}"]
        summary[f"sft_loss_{name}_last"] = history[-1][f"loss_{name}"]
    return summary
