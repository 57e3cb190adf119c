"""Generation backends: the seam between `LLMPolicy` and whatever produces completions.

A backend turns a batch of prompt token-id lists into sampled completions plus the log-probability
of every generated token (`GenerationBackend.generate`). Two implementations:

* `TransformersBackend` — the default, device-agnostic (CPU / CUDA / MPS): batched, left-padded
  autoregressive sampling with a KV cache, written here (not `model.generate`) so that the
  log-probs it returns are computed by exactly the same function (`token_logprobs`) that
  `LLMPolicy.logprobs_of` uses when it re-scores the tokens; `exact_logprobs = True`.
* `VLLMBackend` — GPU rollouts through vLLM (the `vllm` extra). Import-guarded; it raises a clear
  "needs a GPU" error on machines without CUDA (like the CPU machine this project is tested on, so
  it is implemented against vLLM's documented API — `LLM`, `SamplingParams(logprobs=0, seed=...)`,
  `TokensPrompt`, `LoRARequest` — but has not been run here). vLLM computes log-probs with its own
  kernels, so `exact_logprobs = False`: `LLMPolicy` then re-scores the sampled tokens with the
  training model to get the "old" log-probs, the usual practice with vLLM rollouts.

Which log-probs (the definition every part of `agents/` uses)
------------------------------------------------------------
With temperature T and nucleus top-p, a token is *sampled* from softmax(logits / T) restricted to
the smallest set of tokens whose probability mass reaches top-p, renormalised. The log-prob we
record and re-compute is, by default, `log_softmax(logits / T)[token]` — the temperature-scaled
distribution **without** the top-p renormalisation. Reason: with top-p renormalisation, a token
that falls outside the nucleus after a parameter update gets log-prob −inf and the importance
ratio becomes 0 (or NaN gradients); TRL and verl make the same choice. With top_p = 1 (the paper's
training setting) both definitions coincide and equal the exact sampling distribution.
`apply_top_p=True` switches to the exact sampling distribution (top-p-renormalised); tokens outside
the nucleus then get a large negative finite value (`OUT_OF_NUCLEUS_LOGPROB`) instead of −inf.
Greedy decoding records T = 1 log-probs.

Randomness (one stream, or one per prompt)
------------------------------------------
``generator`` is one ``torch.Generator`` for the whole batch, or a sequence of one generator per
prompt (*per-episode streams*, what :func:`agents.rollout.collect_rollouts` passes with
``sample_seeds``). With one generator per prompt, prompt i's tokens are drawn from its own
generator only, one draw per token it generates (never for a finished row), so which other
prompts share the batch does not change how prompt i consumes its stream.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from agents.base import row_generators

OUT_OF_NUCLEUS_LOGPROB = -1e4


def process_logits(logits: torch.Tensor, temperature: torch.Tensor | float, top_p: torch.Tensor | float,
                   apply_top_p: bool) -> torch.Tensor:
    """Log-probs (float32, same shape as `logits` (..., V)) under the recorded distribution.

    `temperature` / `top_p` are scalars or tensors broadcastable to `logits[..., :1]` (per-row values).
    """
    logits = logits.float()
    if not torch.is_tensor(temperature):
        temperature = torch.tensor(float(temperature), device=logits.device)
    logp = torch.log_softmax(logits / temperature, dim=-1)
    if not apply_top_p:
        return logp
    if not torch.is_tensor(top_p):
        top_p = torch.tensor(float(top_p), device=logits.device)
    keep = nucleus_mask(logp, top_p)
    # renormalise over the nucleus; outside it a large negative finite value keeps ratios finite
    masked = logp.masked_fill(~keep, float("-inf"))
    renorm = masked - torch.logsumexp(masked, dim=-1, keepdim=True)
    return torch.where(keep, renorm, torch.full_like(renorm, OUT_OF_NUCLEUS_LOGPROB))


def nucleus_mask(logp: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the top-p nucleus of each row of log-probs (always keeps the top token).

    A token is kept when the probability mass of the tokens ranked strictly above it is < top_p.
    Ties are broken by `torch.sort` (stable, by index) so the mask is deterministic.
    """
    sorted_logp, order = torch.sort(logp, dim=-1, descending=True, stable=True)
    probs = sorted_logp.exp()
    mass_before = torch.cumsum(probs, dim=-1) - probs
    keep_sorted = mass_before < top_p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted)
    keep.scatter_(-1, order, keep_sorted)
    return keep


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature, top_p, apply_top_p: bool) -> torch.Tensor:
    """Log-prob of `tokens` (...,) given `logits` (..., V) under the recorded distribution."""
    logp = process_logits(logits, temperature, top_p, apply_top_p)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@dataclass
class GenerationResult:
    """Completions for a batch of prompts (one entry per prompt, no padding)."""

    completion_ids: list = field(default_factory=list)
    """list of B lists of generated token ids (the stop token, when generated, is included)."""
    token_logprobs: list = field(default_factory=list)
    """list of B float32 tensors (len = completion length): log-prob of each generated token."""
    finished: list = field(default_factory=list)
    """list of B bools: True when the completion ended with a stop token (not the length bound)."""
    hidden: list | None = None
    """With ``capture_layer``: B tensors (prompt + completion − 1, hidden) — the input of that
    decoder layer at every position the model read (prompt tokens, then each generated token but
    the last), in the model's dtype."""


class GenerationBackend(abc.ABC):
    """Produces completions + per-token log-probs for token-id prompts."""

    #: True when the returned log-probs are computed exactly like `LLMPolicy.logprobs_of`.
    exact_logprobs: bool = False

    @abc.abstractmethod
    def generate(
        self,
        prompts_token_ids: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        *,
        greedy: bool = False,
        apply_top_p: bool = False,
        stop_token_ids: Sequence[int] = (),
        pad_token_id: int = 0,
    ) -> GenerationResult:
        """Sample one completion per prompt (see the module docstring for the log-prob definition and
        for ``generator``: one stream, or one per prompt)."""


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``probs`` (B, V) (non-negative, not necessarily normalised), by
    inverse-transform sampling: a uniform ``u`` in ``[0, row sum)`` from ``generator``, then the
    first token whose cumulative mass exceeds it. Zero-probability tokens are never drawn.

    The same distribution as ``torch.multinomial(probs, 1)``, which on CPU draws an exponential
    variate for every vocabulary entry: 16 ms per decode step for 16 rows of SmolLM2's 49,152
    tokens against 0.8 ms here (measured, one thread).
    """
    cdf = probs.float().cumsum(-1)
    u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into (ids, attention_mask) LongTensors of shape (B, max_len)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each row's first real token (pads get 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


class TransformersBackend(GenerationBackend):
    """Batched sampling with a transformers causal LM (any `PreTrainedModel`/`PeftModel`).

    The model is used as is (its active adapter, its device); it is put in eval mode while
    generating (so LoRA dropout never affects sampling) and restored afterwards.
    """

    exact_logprobs = True

    def __init__(self, model):
        self.model = model
        self.counters = {"prefill_calls": 0, "prefill_seconds": 0.0, "decode_steps": 0, "decode_rows": 0,
                         "decode_seconds": 0.0}
        """Running totals (wall seconds, each with its token choice) of the prompt passes and the
        one-token decode steps (``decode_rows`` sums the batch rows over the steps); benchmarks
        read and reset them."""

    @torch.inference_mode()
    def generate(self, prompts_token_ids, max_new_tokens, temperature=1.0, top_p=1.0, generator=None, *,
                 greedy=False, apply_top_p=False, stop_token_ids=(), pad_token_id=0,
                 capture_layer: torch.nn.Module | None = None) -> GenerationResult:
        """``capture_layer``: a decoder layer of the model whose input hidden states are returned
        per row in :attr:`GenerationResult.hidden` (see :func:`prefill`)."""
        if not prompts_token_ids:
            return GenerationResult()
        if any(len(p) == 0 for p in prompts_token_ids):
            raise ValueError("TransformersBackend.generate: empty prompt")
        if not greedy and temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
        gens = row_generators(generator, len(prompts_token_ids))
        model = self.model
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            ids, mask = left_pad(prompts_token_ids, pad_token_id, device)
            B = ids.shape[0]
            stop = torch.tensor(sorted(set(int(t) for t in stop_token_ids)) or [-1], device=device)
            rec_t = 1.0 if greedy else float(temperature)
            rec_p = 1.0 if greedy else float(top_p)
            done = torch.zeros(B, dtype=torch.bool, device=device)
            out_tokens, out_logps, alive = [], [], []
            past = step_ids = step_pos = None
            counters = self.counters
            prompt_hidden, step_hidden = None, []
            for step in range(int(max_new_tokens)):
                t_step = time.perf_counter()
                if step == 0:
                    past, logits, mask, prompt_hidden = prefill(
                        model, prompts_token_ids, pad_token_id, device, min_shared_prefix=self.min_shared_prefix,
                        capture_layer=capture_layer)
                    logits = logits.float()
                else:
                    with _Capture(capture_layer) as cap:
                        res = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                                    past_key_values=past, use_cache=True, logits_to_keep=1)
                    if capture_layer is not None:
                        step_hidden.append(cap.inputs[0][:, 0])
                    past = res.past_key_values
                    logits = res.logits[:, -1, :].float()
                logp = process_logits(logits, rec_t, rec_p, apply_top_p)
                if greedy:
                    nxt = torch.argmax(logits, dim=-1)
                else:
                    sample_logp = process_logits(logits, temperature, top_p, True) if top_p < 1.0 \
                        else logp
                    probs = sample_logp.exp()
                    if top_p < 1.0:  # out-of-nucleus tokens carry the finite floor value: zero them
                        probs = torch.where(sample_logp <= OUT_OF_NUCLEUS_LOGPROB, torch.zeros_like(probs), probs)
                    if gens is None:
                        nxt = sample_categorical(probs, generator)
                    else:  # per-prompt streams: one draw per live row, from that row's generator
                        nxt = torch.full((B,), pad_token_id, dtype=torch.long, device=device)
                        for i in (~done).nonzero().flatten().tolist():
                            nxt[i] = sample_categorical(probs[i:i + 1].cpu(), gens[i])[0]
                nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
                out_tokens.append(nxt)
                out_logps.append(logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1))
                alive.append(~done)
                done = done | torch.isin(nxt, stop)
                if step == 0:
                    counters["prefill_calls"] += 1
                    counters["prefill_seconds"] += time.perf_counter() - t_step
                else:
                    counters["decode_steps"] += 1
                    counters["decode_rows"] += B
                    counters["decode_seconds"] += time.perf_counter() - t_step
                if bool(done.all()):
                    break
                # the token just emitted is real for rows alive before this step (a stop token too);
                # rows finished earlier emitted a pad that must stay invisible
                mask = torch.cat([mask, alive[-1].long().unsqueeze(-1)], dim=1)
                step_ids = nxt.unsqueeze(-1)
                step_pos = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
            toks = torch.stack(out_tokens, 1).cpu()
            lps = torch.stack(out_logps, 1).cpu()
            live = torch.stack(alive, 1).cpu()
            result = GenerationResult()
            stop_set = set(int(t) for t in stop_token_ids)
            steps_h = torch.stack(step_hidden, 1) if step_hidden else None  # (B, steps, H)
            if capture_layer is not None:
                result.hidden = []
            for i in range(B):
                n = int(live[i].sum())
                seq = toks[i, :n].tolist()
                result.completion_ids.append(seq)
                result.token_logprobs.append(lps[i, :n].clone())
                result.finished.append(bool(seq) and seq[-1] in stop_set)
                if capture_layer is not None:
                    parts = [prompt_hidden[i]] + ([steps_h[i, :n - 1]] if steps_h is not None and n > 1 else [])
                    result.hidden.append(torch.cat(parts, 0).cpu())
            return result
        finally:
            model.train(was_training)

    #: shortest common prompt head run once for the whole batch (see :func:`prefill`)
    min_shared_prefix = 16


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token lists (0 for an empty list)."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


class _Capture:
    """Context manager recording the input hidden states of ``layer`` (a decoder layer) on every
    call while it is open (no-op for ``layer=None``)."""

    def __init__(self, layer: torch.nn.Module | None):
        self.layer, self.inputs, self._hook = layer, [], None

    def _record(self, module, args, kwargs):
        self.inputs.append((args[0] if args else kwargs["hidden_states"]).detach())

    def __enter__(self):
        if self.layer is not None:
            self._hook = self.layer.register_forward_pre_hook(self._record, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        if self._hook is not None:
            self._hook.remove()
        return False


def prefill(model, prompts: Sequence[Sequence[int]], pad_token_id: int, device, *,
            min_shared_prefix: int = 16, capture_layer: torch.nn.Module | None = None,
            embeds: Sequence[torch.Tensor] | None = None):
    """Run ``prompts`` through ``model`` with a KV cache, computing shared tokens once.

    Returns ``(past, logits, mask, hidden)``: the cache of every prompt (B rows), the logits at
    each prompt's last position (B, V) in the model's dtype, the (B, W) attention mask of the
    cache (1 = real token), and — with ``capture_layer`` (a decoder layer of ``model``) — B
    tensors (prompt length, hidden) holding that layer's input at each prompt token (else None). Positions restart at 0 on each row's first real token, so the rows
    are what B separate forward passes give. Two savings, both exact:

    * **repeated prompts** (a GRPO group repeats each prompt G times — every trajectory's
      extractor step on the same chunk) run once; their cache rows are copied to the rows that
      repeat them (``Cache.reorder_cache``, an ``index_select``, as beam search does);
    * **a common head** of all distinct prompts (the chat template's system turn and the role's
      instructions: 114–136 SmolLM2 tokens on ``synthetic-mini``, a third to a half of a profiler
      or retriever prompt) of at least ``min_shared_prefix`` tokens runs once on one row, is
      copied to every distinct prompt, and the remaining tails run on top of it. Tails are
      left-padded *after* the head (layout ``[head | pads | tail]``); the mask hides the pads
      and the position ids skip them.

    Differentiable: under autograd (``LLMPolicy.logprobs_of``) the copies' gradients sum into
    the one shared pass. ``embeds`` (one (prompt length, hidden) tensor per prompt) feeds the
    model ``inputs_embeds`` instead of the token ids (which still decide what is shared): how
    ``LLMPolicy`` runs only its adapted top layers on the frozen layers' recorded output.
    """
    first: dict[tuple, int] = {}
    index = [first.setdefault(tuple(int(t) for t in p), len(first)) for p in prompts]
    distinct = [list(k) for k in first]
    head = min(common_prefix_length(distinct), min(len(p) for p in distinct) - 1)
    rep = [index.index(u) for u in range(len(distinct))]  # a row holding each distinct prompt

    def inputs(us: list, start: int, stop: int | None = None):
        """Model inputs (and mask) for tokens ``start:stop`` of distinct prompts ``us``, left-padded."""
        if embeds is None:
            ids, mask = left_pad([distinct[u][start:stop] for u in us], pad_token_id, device)
            return {"input_ids": ids}, mask
        parts = [embeds[rep[u]][start:stop] for u in us]
        _, mask = left_pad([[1] * len(x) for x in parts], 0, device)
        x = parts[0].new_zeros((len(parts), mask.shape[1], parts[0].shape[-1]))
        for i, part in enumerate(parts):
            x[i, mask.shape[1] - len(part):] = part
        return {"inputs_embeds": x.to(device)}, mask

    with _Capture(capture_layer) as cap:
        if len(distinct) > 1 and head >= max(1, int(min_shared_prefix)):
            kw, h_mask = inputs([0], 0, head)
            res = model(**kw, attention_mask=h_mask, use_cache=True, logits_to_keep=1)
            past = res.past_key_values
            past.reorder_cache(torch.zeros(len(distinct), dtype=torch.long, device=device))
            kw, t_mask = inputs(list(range(len(distinct))), head)
            mask = torch.cat([torch.ones((len(distinct), head), dtype=t_mask.dtype, device=device), t_mask], dim=1)
            res = model(**kw, attention_mask=mask, position_ids=positions_from_mask(mask)[:, head:],
                        past_key_values=past, use_cache=True, logits_to_keep=1)
        else:
            kw, mask = inputs(list(range(len(distinct))), 0)
            res = model(**kw, attention_mask=mask, position_ids=positions_from_mask(mask),
                        use_cache=True, logits_to_keep=1)
    hidden = None
    if capture_layer is not None:  # the layer's input at each real prompt token, per distinct prompt
        if len(cap.inputs) == 2:
            h_head, h_tail = cap.inputs[0][0], cap.inputs[1]
            lengths = [len(p) - head for p in distinct]
            hidden = [torch.cat([h_head, h_tail[u, h_tail.shape[1] - n:]], 0) for u, n in enumerate(lengths)]
        else:
            h = cap.inputs[0]
            hidden = [h[u, h.shape[1] - len(p):] for u, p in enumerate(distinct)]
        hidden = [hidden[u] for u in index]
    past, logits = res.past_key_values, res.logits[:, -1, :]
    if len(distinct) < len(index):
        sel = torch.tensor(index, dtype=torch.long, device=device)
        past.reorder_cache(sel)
        logits, mask = logits.index_select(0, sel), mask.index_select(0, sel)
    return past, logits, mask, hidden


class VLLMBackend(GenerationBackend):
    """vLLM generation for GPU rollouts (optional `vllm` extra; needs CUDA).

    `lora_path` in `generate` names a saved peft adapter folder to apply (vLLM `LoRARequest`);
    `LLMPolicy` saves the current adapter there before each rollout. Log-probs come from vLLM
    (`logprobs_mode="processed_logprobs"`, i.e. after temperature), and `LLMPolicy` re-scores them
    with the training model anyway because `exact_logprobs` is False.
    """

    exact_logprobs = False

    def __init__(self, model_path: str, *, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.5,
                 max_model_len: int | None = None, enable_lora: bool = True, max_lora_rank: int = 64,
                 seed: int = 0, **engine_kwargs):
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise ImportError("VLLMBackend needs the optional vLLM extra: pip install 'comam-env[vllm]' "
                              "(GPU machines only)") from exc
        if not torch.cuda.is_available():
            raise RuntimeError("VLLMBackend needs a GPU: torch.cuda.is_available() is False on this machine. "
                               "Use the default TransformersBackend (backend='transformers') on CPU/MPS.")
        from vllm import LLM

        kw = dict(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                  enable_lora=enable_lora, seed=seed, logprobs_mode="processed_logprobs")
        if enable_lora:
            kw["max_lora_rank"] = max_lora_rank
        if max_model_len is not None:
            kw["max_model_len"] = max_model_len
        kw.update(engine_kwargs)
        self.llm = LLM(**kw)
        self._lora_ids: dict[str, int] = {}

    def generate(self, prompts_token_ids, max_new_tokens, temperature=1.0, top_p=1.0, generator=None, *,
                 greedy=False, apply_top_p=False, stop_token_ids=(), pad_token_id=0,
                 lora_path: str | None = None) -> GenerationResult:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # one seed per request drawn from the caller's generator (or from each prompt's own
        # generator): reproducible rollouts
        gens = row_generators(generator, len(prompts_token_ids))
        if gens is not None:
            seeds = [int(torch.randint(0, 2**31 - 1, (1,), generator=g)) for g in gens]
        elif generator is not None:
            seeds = torch.randint(0, 2**31 - 1, (len(prompts_token_ids),), generator=generator).tolist()
        else:
            seeds = [None] * len(prompts_token_ids)
        params = [SamplingParams(n=1, temperature=0.0 if greedy else float(temperature),
                                 top_p=1.0 if greedy else float(top_p), max_tokens=int(max_new_tokens),
                                 logprobs=0, seed=s, stop_token_ids=list(stop_token_ids),
                                 skip_special_tokens=False)
                  for s in seeds]
        lora = None
        if lora_path is not None:
            from vllm.lora.request import LoRARequest
            lid = self._lora_ids.setdefault(lora_path, len(self._lora_ids) + 1)
            lora = LoRARequest(f"adapter-{lid}", lid, lora_path)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts_token_ids],
                                 params, lora_request=lora, use_tqdm=False)
        result = GenerationResult()
        stop_set = set(int(t) for t in stop_token_ids)
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = [c.logprobs[j][t].logprob for j, t in enumerate(ids)] if c.logprobs else [0.0] * len(ids)
            result.completion_ids.append(ids)
            result.token_logprobs.append(torch.tensor(lps, dtype=torch.float32))
            result.finished.append(bool(ids) and ids[-1] in stop_set)
        return result
