"""`LLMPolicy`: causal-LM policies for the three memory roles (transformers + peft LoRA).

What it does
------------
* Loads any causal LM by local folder or hub id through the same `from_pretrained` code path
  (`LLMPolicyConfig.model`; `per_role_models={role: path}` gives roles their own base models as in
  the paper — roles naming the same path share one loaded base model).
* LoRA through `peft`: one adapter per role on a shared base model (peft multi-adapter,
  `set_adapter` before each forward), or one shared adapter for all roles (`share_adapter=True`,
  the "single shared policy" ablation), or full fine-tuning (`lora=False`).
* Observation → prompt: the env's text observation dict; the model reads its `prompt` field
  (a plain string is accepted too) as the user message of the tokenizer's chat template (an
  optional `system_prompt` goes first). Without a chat template the raw prompt is used.
* Sampling: temperature / top-p / greedy, a `max_new_tokens` bound (per role if a dict), batched
  left-padded generation through a `GenerationBackend` (`agents/generation.py`; transformers by
  default, vLLM on GPUs). The action is the decoded completion without the stop token.
  `generator` is one `torch.Generator` or one per observation (per-episode streams).
* Replicas: `trainable_state()` is what a copy of the policy built from the same `config` needs to
  act like this one (the LoRA adapter tensors of every role; the whole models when `lora=False`),
  `load_trainable_state(state)` installs it — how `agents.ray_rollout` ships the current weights to
  its rollout actors every iteration.
* Log-probs: `act` returns the summed log-prob of each completion; `logprobs_of` re-scores the
  stored (prompt ids, completion ids, temperature, top-p) records with gradients and returns
  per-token log-probs and masks. Both use `generation.token_logprobs` (definition in
  `agents/generation.py`: temperature-scaled, top-p not renormalised unless
  `logprobs_apply_top_p=True`), so they agree to float precision.

Context-window rule (truncation)
--------------------------------
Budget = context window − max_new_tokens, where the context window is `max_context_tokens` if set,
else the model's `max_position_embeddings` (capped by a sane `tokenizer.model_max_length`). When the
rendered prompt has more tokens than the budget, tokens are removed **from the middle of the
longest body field** (`chunk` or `memory` of the observation, located in the prompt text by
character offsets) and replaced by the marker `TRUNCATION_MARKER`; if that field alone is not
enough, the other body field is cut the same way; if it still does not fit (or no field is found),
the middle of the whole prompt is cut, keeping the first half of the budget (the instruction head)
and the last half (the question / options / generation prompt tail). The result always has at
most `budget` tokens, so prompt + max_new_tokens ≤ context window. `info[i]` then carries
`truncated=True`, `truncated_tokens` (net reduction of the prompt length in tokens) and `truncated_fields`.

Modes: generation always runs in eval mode (no LoRA dropout while sampling). `logprobs_of` uses the
current mode; with `lora_dropout=0` (the default) train/eval give identical log-probs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from agents.base import (ALL_ROLES, ROLE_NAMES, ActOutput, LogProbs, Policy, read_policy_json,
                         register_policy, role_id, row_generators, write_policy_json)
from agents.generation import (GenerationBackend, TransformersBackend, common_prefix_length, positions_from_mask,
                               prefill, token_logprobs)

TRUNCATION_MARKER = "\n[... truncated ...]\n"
BODY_FIELDS = ("chunk", "memory")
_HUGE = 10**8  # tokenizers report model_max_length = 1e30 when unknown


@dataclass
class LLMPolicyConfig:
    """Configuration of an `LLMPolicy` (all fields JSON-serialisable; saved with the policy)."""

    model: str = ""
    """Base model for every role: a local transformers folder or a hub id."""
    per_role_models: dict = field(default_factory=dict)
    """Optional {role (int or name): model path/id}; roles not listed use `model`."""
    roles: tuple = ALL_ROLES
    """Roles this policy acts for."""
    lora: bool = True
    """Train LoRA adapters (True) or the full model (False)."""
    share_adapter: bool = False
    """One adapter shared by all roles on the same base model (single shared policy ablation)."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling alpha (effective scale alpha / r)."""
    lora_dropout: float = 0.0
    """LoRA dropout; 0 keeps act-time and learn-time log-probs identical."""
    lora_target_modules: Any = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Module names (or peft's "all-linear") that receive LoRA adapters."""
    lora_layers: int | None = None
    """LoRA only in the last N decoder layers (None = every layer). The layers below hold no
    trainable parameter, so autograd records nothing there: the update's backward pass and its
    activation memory shrink to the top N layers (the forward pass is unchanged) — what makes
    GRPO on a CPU affordable."""
    device: str = "auto"
    """"auto" (cuda > mps > cpu) or any torch device string."""
    dtype: str = "auto"
    """"auto" (bfloat16 on CUDA, float32 elsewhere), "bfloat16", "float16" or "float32"."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30 % slower)."""
    max_new_tokens: Any = 256
    """Bound on generated tokens: an int, or {role: int}."""
    max_context_tokens: int | None = None
    """Context window used for truncation; None = the model's max_position_embeddings."""
    system_prompt: str | None = None
    """Optional system message placed before the observation prompt."""
    use_chat_template: bool = True
    """Render prompts with the tokenizer's chat template when it has one."""
    logprobs_apply_top_p: bool = False
    """Record/recompute log-probs under the top-p-renormalised distribution (see generation.py)."""
    generation_batch_size: int = 8
    """Prompts per generation micro-batch."""
    reuse_frozen_hidden: bool = False
    """With ``lora_layers=N`` on a Llama-architecture model: ``act`` in training mode records the
    input of the first adapted layer at every position (the layers below hold no trainable
    parameter, so it never changes), and ``logprobs_of`` runs only the top N layers on it instead
    of the whole model — the update's forward shrinks like its backward. Costs host memory of
    (prompt + completion tokens) x hidden size x 2-4 bytes per sample (0.5 MB for SmolLM2 on
    synthetic-mini; far more for long prompts on big models, hence off by default). Other
    architectures, and samples without the record, take the full pass."""
    share_prompt_forward: bool = True
    """`logprobs_of` runs each distinct prompt once and shares its KV cache with every sample that
    repeats it (a GRPO group's G extractor steps on one chunk): same log-probs and gradients,
    less prompt compute. Off under activation checkpointing (no KV cache there)."""
    backend: str = "transformers"
    """"transformers" or "vllm" (GPU only; see docs/llm.md)."""
    backend_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for the backend constructor (e.g. vLLM gpu_memory_utilization)."""
    seed: int = 0
    """Seed of the LoRA initialisation (adapter of role r uses seed + r)."""
    trust_remote_code: bool = False
    """Passed to from_pretrained for hub models with custom code (runs that code). Never read
    back from a saved ``policy.json``: :meth:`LLMPolicy.load` takes it only as an explicit override."""


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
             "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}
    if name not in table:
        raise ValueError(f"LLMPolicyConfig.dtype: unknown dtype {name!r}; use one of {sorted(table)} or 'auto'")
    return table[name]


def _obs_prompt(obs: Any, index: int) -> str:
    if isinstance(obs, str):
        return obs
    if isinstance(obs, dict) and isinstance(obs.get("prompt"), str):
        return obs["prompt"]
    raise TypeError(f"observation {index}: expected a text-view dict with a 'prompt' string or a str, "
                    f"got {type(obs).__name__}")


def context_window(model_config, tokenizer, override: int | None = None) -> int:
    """The context window the truncation rule budgets against: ``override`` if given, else the
    model's ``max_position_embeddings`` capped by a sane ``tokenizer.model_max_length``."""
    if override is not None:
        return int(override)
    ctx = getattr(model_config, "max_position_embeddings", None) or _HUGE
    tml = getattr(tokenizer, "model_max_length", None)
    if tml and tml < _HUGE:
        ctx = min(ctx, int(tml))
    if ctx >= _HUGE:
        raise ValueError("cannot infer the context window; set LLMPolicyConfig.max_context_tokens")
    return int(ctx)


def render_prompt(tokenizer, prompt: str, *, system_prompt: str | None = None,
                  use_chat_template: bool = True) -> str:
    """The text a model reads for one observation prompt: the tokenizer's chat template (an
    optional system message, the prompt as the user message, the generation prompt), or the raw
    prompt when there is no template."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        msgs = []
        if system_prompt:
            msgs.append({"role": "system", "content": system_prompt})
        msgs.append({"role": "user", "content": prompt})
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    head = (system_prompt + "\n\n") if system_prompt else ""
    return head + prompt + "\n"


def truncate_prompt(tokenizer, text: str, obs: Any, budget: int, *, context: int | None = None,
                    max_new_tokens: int | None = None) -> tuple[list[int], dict]:
    """Token ids of the rendered prompt ``text`` cut to at most ``budget`` tokens by the module's
    context-window rule (middle of the longest body field of ``obs`` first, then the other one,
    then the middle of the whole prompt), and the info dict ``act`` reports.

    ``text`` is the full rendered prompt (chat template applied); ``obs`` the observation it was
    rendered from (its ``chunk`` / ``memory`` fields are located in ``text``). ``context`` and
    ``max_new_tokens`` only name the window in the error raised when ``budget`` is too small.
    Used by :class:`LLMPolicy` and by adapters that hand prompts to other trainers
    (:mod:`agents.integrations.trl`), so every path truncates the same way.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    marker = tokenizer(TRUNCATION_MARKER, add_special_tokens=False)["input_ids"]
    if budget < 2 * len(marker) + 8:
        raise ValueError(f"context window {context if context is not None else budget} leaves no room for a "
                         f"prompt with max_new_tokens={max_new_tokens}; lower max_new_tokens")
    info = {"prompt_tokens": len(ids), "truncated": False}
    if len(ids) <= budget:
        return ids, info
    offsets = list(enc["offset_mapping"])
    n0 = len(ids)
    # token spans of the body fields inside the rendered text, longest first
    spans = []
    if isinstance(obs, dict):
        for f in BODY_FIELDS:
            val = obs.get(f)
            val = val.strip() if isinstance(val, str) else ""  # prompts strip their fields
            if val:
                cs = text.find(val)
                if cs >= 0:
                    ce = cs + len(val)
                    toks = [i for i, (a, b) in enumerate(offsets) if a >= cs and b <= ce and b > a]
                    if toks:
                        spans.append((len(toks), f, toks[0], toks[-1] + 1))
    spans.sort(key=lambda s: (-s[0], s[1]))
    fields_cut = []
    # cut spans from the back of the sequence first so earlier token indices stay valid
    plan = []
    excess = len(ids) - budget
    for n, f, a, b in spans:
        if excess <= 0:
            break
        excess += len(marker)
        r = min(excess, b - a)
        start = a + (b - a - r) // 2
        plan.append((start, start + r))
        fields_cut.append(f)
        excess -= r
    for start, end in sorted(plan, reverse=True):
        ids = ids[:start] + list(marker) + ids[end:]
    if len(ids) > budget:
        keep = budget - len(marker)
        head = keep // 2
        tail = keep - head
        ids = ids[:head] + list(marker) + ids[len(ids) - tail:]
        fields_cut.append("prompt")
    assert len(ids) <= budget
    info.update(truncated=True, truncated_tokens=n0 - len(ids),
                truncated_fields=fields_cut, prompt_tokens=len(ids))
    return ids, info


#: Loader options that make transformers / vLLM import and run Python files shipped with a
#: model. A saved policy is data: these are never taken from its ``policy.json`` (a received
#: run directory could otherwise run its own code on ``evaluate --run``), only from the
#: caller's explicit ``load(..., trust_remote_code=True)`` (the CLI's ``--trust-remote-code``).
CODE_EXECUTING_OPTIONS = ("trust_remote_code",)


def _drop_code_options(raw: dict, source: str) -> None:
    """Reset code-executing loader options read from ``source`` (in place), with a warning."""
    import warnings

    found = [k for k in CODE_EXECUTING_OPTIONS if raw.get(k)]
    raw.update({k: False for k in CODE_EXECUTING_OPTIONS if k in raw})
    backend_kwargs = raw.get("backend_kwargs")
    if isinstance(backend_kwargs, dict):
        found += [f"backend_kwargs.{k}" for k in CODE_EXECUTING_OPTIONS if backend_kwargs.get(k)]
        raw["backend_kwargs"] = {k: v for k, v in backend_kwargs.items() if k not in CODE_EXECUTING_OPTIONS}
    if found:
        warnings.warn(f"{source}: ignored {', '.join(found)} = true (a saved policy never enables code "
                      "execution; pass trust_remote_code=True / --trust-remote-code explicitly if you trust "
                      "the model's code)", stacklevel=3)


def _contiguous_input(module, args):
    return (args[0].contiguous(),) + tuple(args[1:])


def _contiguous_lm_head_input(model) -> None:
    """Make the output head read a contiguous copy of its input.

    transformers slices the last positions (``logits_to_keep``) out of the hidden states before
    the head; that slice is a strided view, and ``torch.matmul`` then cannot fold it into one 2-D
    product: it broadcasts the (vocab x hidden) weight over the batch and, in bfloat16 on CPU,
    materialises that copy — B x 49,152 x 576 values (57 MB per row for SmolLM2) per forward pass,
    measured as most of a prefill's non-matmul time. Copying the small slice instead costs
    B x kept x hidden values. Same numbers either way.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, torch.nn.Module):
        head.register_forward_pre_hook(_contiguous_input)


class _Unit:
    """One loaded base model (possibly wrapped by peft) with its tokenizer and backend."""

    def __init__(self, path: str, model, tokenizer, backend: GenerationBackend, context: int):
        self.path, self.model, self.tokenizer, self.backend, self.context = path, model, tokenizer, backend, context


@register_policy("llm")
class LLMPolicy(Policy):
    """Causal-LM policy for the memory roles. See the module docstring."""

    #: a generate call costs its decode steps whatever its width: batch each role's steps widely
    batch_roles_in_order = True

    def __init__(self, config: LLMPolicyConfig | None = None, *, _adapter_dir: str | None = None,
                 _model_overrides: dict | None = None, **kw):
        if config is None:
            config = LLMPolicyConfig(**kw)
        elif kw:
            config = dataclasses.replace(config, **kw)
        if not config.model and not config.per_role_models:
            raise ValueError("LLMPolicyConfig.model: give a model path or hub id")
        self.config = config
        self.roles = tuple(sorted(role_id(r) for r in config.roles))
        self._device = resolve_device(config.device)
        self._dtype = resolve_dtype(config.dtype, self._device)
        role_paths = {r: config.model for r in self.roles}
        for r, p in (config.per_role_models or {}).items():
            if role_id(r) in role_paths:
                role_paths[role_id(r)] = p
        for r, p in role_paths.items():
            if not p:
                raise ValueError(f"LLMPolicyConfig: no model for role {ROLE_NAMES[r]}")
        self._role_paths = role_paths
        overrides = _model_overrides or {}
        self._units: dict[str, _Unit] = {}
        self._role_unit: dict[int, str] = {}
        self._role_adapter: dict[int, str | None] = {}
        for path in sorted(set(role_paths.values())):
            roles_here = [r for r in self.roles if role_paths[r] == path]
            self._units[path] = self._load_unit(path, overrides.get(path, path), roles_here, _adapter_dir)
            for r in roles_here:
                self._role_unit[r] = path
        self._generation_stats: dict[str, dict] = {}
        self.eval()

    # ------------------------------------------------------------------ loading
    def _adapter_name(self, role: int) -> str | None:
        if not self.config.lora:
            return None
        return "shared" if self.config.share_adapter else ROLE_NAMES[role]

    def _load_unit(self, key: str, load_from: str, roles: list, adapter_dir: str | None) -> _Unit:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.config
        tok = AutoTokenizer.from_pretrained(load_from, trust_remote_code=cfg.trust_remote_code)
        if tok.pad_token_id is None:  # many base models have no pad token: pad with eos (masked anyway)
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(load_from, dtype=self._dtype,
                                                     trust_remote_code=cfg.trust_remote_code)
        model.to(self._device)
        model.config.use_cache = True
        _contiguous_lm_head_input(model)
        context = self._context_window(model, tok)
        if cfg.lora:
            from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

            for p in model.parameters():
                p.requires_grad_(False)
            targets = cfg.lora_target_modules
            targets = targets if isinstance(targets, str) else list(targets)
            names = []
            for r in roles:
                n = self._adapter_name(r)
                if n not in names:
                    names.append(n)
            for i, name in enumerate(names):
                lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                  target_modules=targets, bias="none", task_type="CAUSAL_LM",
                                  **self._layer_selection(model))
                seed = cfg.seed + (ROLE_NAMES.index(name) if name in ROLE_NAMES else 0)
                with torch.random.fork_rng(devices=[]):  # deterministic A init, global RNG untouched
                    torch.manual_seed(seed)
                    if i == 0:
                        model = get_peft_model(model, lcfg, adapter_name=name)
                    else:
                        model.add_adapter(name, lcfg)
            if adapter_dir is not None:
                from safetensors.torch import load_file
                for name in names:
                    f = os.path.join(adapter_dir, "adapters", name, "adapter_model.safetensors")
                    if not os.path.exists(f):
                        raise FileNotFoundError(f"{f}: adapter {name!r} missing from saved policy")
                    res = set_peft_model_state_dict(model, load_file(f, device=str(self._device)), adapter_name=name)
                    unexpected = getattr(res, "unexpected_keys", [])
                    if unexpected:
                        raise ValueError(f"{f}: unexpected keys {unexpected[:3]}")
            model.to(self._device)
            # adapters of every role stay trainable (peft's set_adapter freezes inactive ones)
            self._unfreeze_lora(model)
        if cfg.gradient_checkpointing:
            # non-reentrant: works with frozen embeddings (LoRA) without enable_input_require_grads
            kw = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        backend = self._make_backend(load_from, model)
        return _Unit(key, model, tok, backend, context)

    def _layer_selection(self, model) -> dict:
        """peft's ``layers_to_transform`` for ``lora_layers`` (the last N decoder layers)."""
        n = self.config.lora_layers
        if n is None:
            return {}
        total = int(getattr(model.config, "num_hidden_layers", 0) or 0)
        if not 1 <= int(n) <= total:
            raise ValueError(f"LLMPolicyConfig.lora_layers must be in 1..{total} (the model's decoder layers), got {n}")
        return {"layers_to_transform": list(range(total - int(n), total)), "layers_pattern": "layers"}

    def _make_backend(self, path: str, model) -> GenerationBackend:
        if self.config.backend == "transformers":
            return TransformersBackend(model)
        if self.config.backend == "vllm":
            from agents.generation import VLLMBackend
            kw = dict(self.config.backend_kwargs)
            kw.setdefault("enable_lora", self.config.lora)
            kw.setdefault("max_lora_rank", max(8, self.config.lora_r))
            return VLLMBackend(path, **kw)
        raise ValueError(f"LLMPolicyConfig.backend: unknown backend {self.config.backend!r}; "
                         "use 'transformers' or 'vllm'")

    def _context_window(self, model, tok) -> int:
        return context_window(model.config, tok, self.config.max_context_tokens)

    @staticmethod
    def _unfreeze_lora(model) -> None:
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.requires_grad_(True)

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self._device

    def tokenizer(self, role: int = 2):
        return self._units[self._role_unit[self.check_role(role)]].tokenizer

    def model(self, role: int = 2):
        """The (peft-wrapped) model serving `role`, with that role's adapter active."""
        return self._activate(self.check_role(role)).model

    def context_window(self, role: int = 2) -> int:
        return self._units[self._role_unit[self.check_role(role)]].context

    def max_new_tokens(self, role: int) -> int:
        m = self.config.max_new_tokens
        if isinstance(m, dict):
            for k, v in m.items():
                if role_id(k) == role:
                    return int(v)
            raise ValueError(f"LLMPolicyConfig.max_new_tokens: no entry for role {ROLE_NAMES[role]}")
        return int(m)

    def _activate(self, role: int) -> _Unit:
        unit = self._units[self._role_unit[role]]
        name = self._adapter_name(role)
        if name is not None and unit.model.active_adapter != name:
            unit.model.set_adapter(name)
            self._unfreeze_lora(unit.model)
        return unit

    def _stop_ids(self, unit: _Unit) -> list[int]:
        ids = set()
        tok = unit.tokenizer
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gen_eos = getattr(getattr(unit.model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, (list, tuple)):
            ids.update(int(x) for x in gen_eos)
        return sorted(ids)

    # ------------------------------------------------------------------ prompts
    def render(self, role: int, obs: Any) -> str:
        """The full text the model reads for one observation (chat template applied)."""
        unit = self._units[self._role_unit[self.check_role(role)]]
        return self._render(unit, _obs_prompt(obs, 0))

    def _render(self, unit: _Unit, prompt: str) -> str:
        return render_prompt(unit.tokenizer, prompt, system_prompt=self.config.system_prompt,
                             use_chat_template=self.config.use_chat_template)

    def encode_prompt(self, role: int, obs: Any, max_new_tokens: int | None = None) -> tuple[list[int], dict]:
        """Token ids of the rendered prompt, truncated by the documented rule, and an info dict."""
        role = self.check_role(role)
        unit = self._units[self._role_unit[role]]
        mnt = self.max_new_tokens(role) if max_new_tokens is None else int(max_new_tokens)
        return self._encode(unit, obs, 0, mnt)

    def _encode(self, unit: _Unit, obs: Any, index: int, max_new_tokens: int) -> tuple[list[int], dict]:
        text = self._render(unit, _obs_prompt(obs, index))
        return truncate_prompt(unit.tokenizer, text, obs, unit.context - max_new_tokens,
                               context=unit.context, max_new_tokens=max_new_tokens)

    # ------------------------------------------------------------------ acting
    def act(self, role, observations, *, temperature=1.0, top_p=1.0, greedy=False, generator=None,
            max_new_tokens: int | None = None) -> ActOutput:
        role = self.check_role(role)
        observations = list(observations)
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        unit = self._activate(role)
        mnt = self.max_new_tokens(role) if max_new_tokens is None else int(max_new_tokens)
        encoded = [self._encode(unit, o, i, mnt) for i, o in enumerate(observations)]
        stop = self._stop_ids(unit)
        pad = unit.tokenizer.pad_token_id if unit.tokenizer.pad_token_id is not None else 0
        rec_t = 1.0 if greedy else float(temperature)
        rec_p = 1.0 if greedy else float(top_p)
        gen_kw = {}
        if not isinstance(unit.backend, TransformersBackend) and self.config.lora:
            gen_kw["lora_path"] = self._export_adapter_for_backend(role)
        completions, lps, finished = [], [], []
        t_gen = time.perf_counter()
        bs = max(1, int(self.config.generation_batch_size))
        gens = row_generators(generator, len(encoded))  # None: one shared stream
        boundary = self._frozen_boundary(unit)
        if boundary is not None and isinstance(unit.backend, TransformersBackend) and unit.model.training:
            gen_kw["capture_layer"] = boundary[1]
        hidden = []
        for s in range(0, len(encoded), bs):
            gen = generator if gens is None else gens[s:s + bs]
            with self._low_precision(unit):
                res = unit.backend.generate([e[0] for e in encoded[s:s + bs]], mnt, temperature, top_p, gen,
                                            greedy=greedy, apply_top_p=self.config.logprobs_apply_top_p,
                                            stop_token_ids=stop, pad_token_id=pad, **gen_kw)
            completions += res.completion_ids
            lps += res.token_logprobs
            finished += res.finished
            hidden += res.hidden or []
        samples = [{"prompt_ids": torch.tensor(e[0], dtype=torch.long),
                    "completion_ids": torch.tensor(c, dtype=torch.long),
                    "temperature": rec_t, "top_p": rec_p}
                   for e, c in zip(encoded, completions)]
        if hidden:
            for smp, h in zip(samples, hidden):
                smp["hidden"], smp["hidden_layer"] = h, boundary[0]
        if unit.backend.exact_logprobs:
            summed = torch.stack([lp.sum() for lp in lps]) if lps else torch.zeros(0)
        else:  # re-score with the training model so ratios start at exactly 1
            with torch.no_grad():
                lp = self.logprobs_of(role, samples)
            summed = lp.sum.detach().cpu()
            for smp, own in zip(samples, lps):  # the engine's own values, for measuring the gap
                smp["backend_token_logprobs"] = torch.as_tensor(own, dtype=torch.float32).cpu()
            lps = [row[m > 0].cpu() for row, m in zip(lp.token.detach(), lp.mask)]
        # the behaviour log-probs of every generated token: the GRPO update's "old" log-probs
        # without a second forward pass (agents.comam.Trainer passes them on)
        for smp, lp_row in zip(samples, lps):
            smp["token_logprobs"] = lp_row.detach().float().cpu()
        stats = self._generation_stats.setdefault(ROLE_NAMES[role], {"tokens": 0, "seconds": 0.0, "calls": 0})
        stats["tokens"] += sum(len(c) for c in completions)
        stats["seconds"] += time.perf_counter() - t_gen
        stats["calls"] += 1
        actions, infos = [], []
        stop_set = set(stop)
        for (ids, inf), c, fin in zip(encoded, completions, finished):
            body = c[:-1] if c and c[-1] in stop_set else c
            actions.append(unit.tokenizer.decode(body, skip_special_tokens=True))
            infos.append(dict(inf, completion_tokens=len(c), finished=bool(fin)))
        return ActOutput(actions=actions, logprobs=summed.float(), samples=samples, info=infos)

    @property
    def behaviour_logprobs_exact(self) -> bool:
        """Whether ``sample["token_logprobs"]`` recorded by ``act`` equal what ``logprobs_of``
        computes (to 1e-4): true in float32, or when an inexact backend's samples were re-scored
        by the training model; false for KV-cached sampling in bf16/fp16 (measured mean |Δ| 0.04,
        max 0.22 per token on SmolLM2, docs/llm.md), where the trainer lets the update compute
        its own "old" log-probs (free for a single-step update, :class:`agents.grpo.PerAgentGRPO`)."""
        if self._dtype == torch.float32:
            return True
        return not any(isinstance(u.backend, TransformersBackend) for u in self._units.values())

    def pop_generation_stats(self) -> dict[str, dict]:
        """Generated tokens, seconds and `act` calls per role name since the last call (then reset).

        Seconds are wall time of generation (and of the re-scoring an inexact backend needs);
        the trainer logs ``tokens / seconds`` per role as its tokens/s.
        """
        out, self._generation_stats = self._generation_stats, {}
        return out

    def _export_adapter_for_backend(self, role: int) -> str:
        """Save the role's current adapter where an external backend (vLLM) can load it."""
        unit = self._units[self._role_unit[role]]
        name = self._adapter_name(role)
        if not hasattr(self, "_export_root"):
            self._export_root = tempfile.mkdtemp(prefix="comam-lora-")
            self._export_version = 0
        self._export_version += 1
        out = os.path.join(self._export_root, f"{name}-{self._export_version}")
        unit.model.save_pretrained(out, selected_adapters=[name], safe_serialization=True)
        sub = os.path.join(out, name)
        return sub if os.path.isdir(sub) else out

    # ------------------------------------------------------------------ learning
    def logprobs_of(self, role, samples: Sequence[dict]) -> LogProbs:
        role = self.check_role(role)
        samples = list(samples)
        if not samples:
            raise ValueError("logprobs_of: empty samples")
        unit = self._activate(role)
        dev = self._device
        pad = unit.tokenizer.pad_token_id if unit.tokenizer.pad_token_id is not None else 0
        P = max(len(s["prompt_ids"]) for s in samples)
        T = max(len(s["completion_ids"]) for s in samples)
        B = len(samples)
        if T == 0:
            z = torch.zeros(B, 0, device=dev)
            return LogProbs(torch.zeros(B, device=dev), z, z)
        # layout: [left pad | prompt] [completion | right pad]; completions all start at column P
        ids = torch.full((B, P + T), pad, dtype=torch.long)
        attn = torch.zeros((B, P + T), dtype=torch.long)
        tmask = torch.zeros((B, T), dtype=torch.float32)
        for i, s in enumerate(samples):
            p, c = s["prompt_ids"], s["completion_ids"]
            ids[i, P - len(p):P] = p
            attn[i, P - len(p):P] = 1
            ids[i, P:P + len(c)] = c
            attn[i, P:P + len(c)] = 1
            tmask[i, :len(c)] = 1.0
        ids, attn, tmask = ids.to(dev), attn.to(dev), tmask.to(dev)
        with self._low_precision(unit):
            logits = self._top_layer_logits(unit, samples, attn, P, T)
            if logits is None:
                logits = self._shared_prompt_logits(unit, samples, ids, attn, P, T, pad)
            if logits is None:
                out = unit.model(input_ids=ids, attention_mask=attn, position_ids=positions_from_mask(attn),
                                 use_cache=False, logits_to_keep=T + 1)
                logits = out.logits[:, :-1, :]  # positions P-1 .. P+T-2 predict completion tokens 0..T-1
        temps = torch.tensor([float(s["temperature"]) for s in samples], device=dev).view(B, 1, 1)
        tops = torch.tensor([float(s["top_p"]) for s in samples], device=dev).view(B, 1, 1)
        tok_lp = token_logprobs(logits, ids[:, P:], temps, tops, self.config.logprobs_apply_top_p)
        tok_lp = tok_lp * tmask
        return LogProbs(tok_lp.sum(-1), tok_lp, tmask)

    @contextlib.contextmanager
    def _low_precision(self, unit: _Unit):
        """LoRA in the base model's low precision, from float32 adapter weights.

        With a bfloat16/float16 base, peft keeps the adapters in float32 (so AdamW's small steps
        are not rounded away) and casts each LoRA layer's *input* to float32: one float32 copy of
        the hidden states per adapted module, kept for the backward pass — measured as a quarter
        of a SmolLM2 prefill and most of the update's activation memory. Here the cast is turned
        the other way: peft's input cast is off and ``torch.autocast`` runs the LoRA matmuls in
        the base dtype with the (tiny) adapter weights cast on the fly; gradients still reach the
        float32 weights (mixed-precision training, as autocast does on GPUs). The adapter's delta
        is rounded to the base dtype — which peft does to the layer's output anyway. No-op for a
        float32 model or without LoRA.
        """
        if not (self.config.lora and self._dtype in (torch.bfloat16, torch.float16)
                and isinstance(unit.backend, TransformersBackend) and self._device.type in ("cpu", "cuda")):
            yield
            return
        from peft.helpers import disable_input_dtype_casting

        with disable_input_dtype_casting(unit.model), torch.autocast(self._device.type, dtype=self._dtype):
            yield

    #: model types whose decoder stack is ``model.layers`` run in order on ``inputs_embeds`` as
    #: given (no embedding scaling, one attention type), so the top layers can run on their own
    _TOP_LAYER_TYPES = ("llama",)

    def _frozen_boundary(self, unit: _Unit):
        """(index, module) of the first adapted decoder layer when the layers below it are frozen
        and their output can be reused (``reuse_frozen_hidden``), else None."""
        cfg = self.config
        if not (cfg.lora and cfg.reuse_frozen_hidden and cfg.lora_layers is not None):
            return None
        base = unit.model.get_base_model() if hasattr(unit.model, "get_base_model") else unit.model
        inner = getattr(base, "model", None)
        layers = getattr(inner, "layers", None)
        if getattr(base.config, "model_type", None) not in self._TOP_LAYER_TYPES or layers is None:
            return None
        first = len(layers) - int(cfg.lora_layers)
        return (first, layers[first]) if first > 0 else None

    def _top_layer_logits(self, unit: _Unit, samples, attn, P: int, T: int):
        """Logits (B, T, V) from the top ``lora_layers`` decoder layers only, run on the frozen
        layers' output recorded at act time (``sample["hidden"]``, see ``reuse_frozen_hidden``):
        the same function of the trainable parameters as the full pass (tested), without the
        forward through the frozen layers. Shared prompt tokens run once here too
        (:func:`agents.generation.prefill` on the recorded states, then the completions on top of
        its cache) unless ``share_prompt_forward`` is off. None when not applicable."""
        boundary = self._frozen_boundary(unit)
        if boundary is None or T < 1 or not all(s.get("hidden_layer") == boundary[0] for s in samples):
            return None
        dev = attn.device
        hidden = []
        for i, s in enumerate(samples):
            h, n_p, n_c = s["hidden"], len(s["prompt_ids"]), len(s["completion_ids"])
            if h.shape[0] != n_p + max(n_c - 1, 0):
                raise ValueError(f"logprobs_of: sample {i} records {h.shape[0]} hidden states for "
                                 f"{n_p} prompt + {n_c} completion tokens")
            hidden.append(h.to(dev, self._dtype))
        width = P + T - 1  # the last completion token is never read
        with self._top_layers_only(unit, boundary[0]):
            prompts = [[int(t) for t in s["prompt_ids"]] for s in samples]
            if self._shares_prompts(prompts):
                past, head, p_mask, _ = prefill(unit.model, prompts, 0, dev, embeds=[h[:len(p)] for h, p in zip(hidden, prompts)],
                                                min_shared_prefix=TransformersBackend.min_shared_prefix)
                head = head.unsqueeze(1)
                if T == 1:
                    return head
                x = hidden[0].new_zeros((len(samples), T - 1, hidden[0].shape[1]))
                c_mask = torch.zeros((len(samples), T - 1), dtype=attn.dtype, device=dev)
                for i, (h, p) in enumerate(zip(hidden, prompts)):
                    x[i, :h.shape[0] - len(p)] = h[len(p):]
                    c_mask[i, :h.shape[0] - len(p)] = 1
                mask = torch.cat([p_mask, c_mask], dim=1)
                W = p_mask.shape[1]
                out = unit.model(inputs_embeds=x, attention_mask=mask, position_ids=positions_from_mask(mask)[:, W:],
                                 past_key_values=past, use_cache=True)
                return torch.cat([head, out.logits], dim=1)
            x = hidden[0].new_zeros((len(samples), width, hidden[0].shape[1]))
            mask = torch.zeros((len(samples), width), dtype=attn.dtype, device=dev)
            for i, (h, p) in enumerate(zip(hidden, prompts)):
                x[i, P - len(p):P - len(p) + h.shape[0]] = h
                mask[i, P - len(p):P - len(p) + h.shape[0]] = 1
            out = unit.model(inputs_embeds=x, attention_mask=mask, position_ids=positions_from_mask(mask),
                             use_cache=False, logits_to_keep=T)
            return out.logits

    @contextlib.contextmanager
    def _top_layers_only(self, unit: _Unit, first: int):
        """The model as its decoder layers ``first:`` alone (renumbered from 0 for the KV cache),
        fed ``inputs_embeds``; the full stack is back on exit."""
        inner = unit.model.get_base_model().model
        layers = inner.layers
        top = list(layers)[first:]
        old_idx = [layer.self_attn.layer_idx for layer in top]
        inner.layers = torch.nn.ModuleList(top)
        for k, layer in enumerate(top):
            layer.self_attn.layer_idx = k
        try:
            yield
        finally:
            for layer, k in zip(top, old_idx):
                layer.self_attn.layer_idx = k
            inner.layers = layers

    def _shares_prompts(self, prompts) -> bool:
        """Whether the shared prompt pass saves anything for these prompts (repeats, or a common
        head of at least ``TransformersBackend.min_shared_prefix`` tokens) and may be used."""
        if not self.config.share_prompt_forward or self.config.gradient_checkpointing:
            return False
        distinct = list(dict.fromkeys(tuple(p) for p in prompts))
        shared = common_prefix_length(distinct) if len(distinct) > 1 else 0
        return len(distinct) < len(prompts) or shared >= TransformersBackend.min_shared_prefix

    def _shared_prompt_logits(self, unit: _Unit, samples, ids, attn, P: int, T: int, pad: int):
        """Logits (B, T, V) predicting the completion tokens, with shared prompt tokens run once.

        The prompt pass is :func:`agents.generation.prefill` — the one generation uses: repeated
        prompts (a GRPO group's G extractor steps on one chunk) run once and their KV-cache rows
        are copied (an ``index_select``: the backward pass sums the copies' gradients into the
        one pass), and the head all distinct prompts share (chat template + role instructions)
        runs once. A second pass runs the completions on top of that cache. Same values and
        gradients as one full pass (tested). Returns None (the caller does the full pass) when
        nothing is shared, when disabled (``share_prompt_forward=False``) or under activation
        checkpointing (which runs without a KV cache).
        """
        prompts = [[int(t) for t in s["prompt_ids"]] for s in samples]
        if T < 1 or not self._shares_prompts(prompts):
            return None
        past, head, p_mask, _ = prefill(unit.model, prompts, pad, ids.device,
                                        min_shared_prefix=TransformersBackend.min_shared_prefix)
        head = head.unsqueeze(1)  # each prompt's last position predicts completion token 0
        if T == 1:
            return head
        mask = torch.cat([p_mask, attn[:, P:P + T - 1]], dim=1)
        W = p_mask.shape[1]
        out = unit.model(input_ids=ids[:, P:P + T - 1], attention_mask=mask,
                         position_ids=positions_from_mask(mask)[:, W:], past_key_values=past, use_cache=True)
        return torch.cat([head, out.logits], dim=1)

    def trainable_parameters(self, role=None) -> list:
        roles = self.roles if role is None else (self.check_role(role),)
        seen, params = set(), []
        for r in roles:
            unit = self._units[self._role_unit[r]]
            name = self._adapter_name(r)
            for n, p in unit.model.named_parameters():
                if name is not None and not (("lora_" in n) and f".{name}." in n):
                    continue
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def trainable_state(self) -> dict:
        """The trainable tensors (detached CPU copies): ``{"lora": True, "units": {base model:
        {adapter name: peft adapter state dict}}}`` — every role's LoRA adapter, the base weights
        excluded — or, with ``lora=False``, ``{"lora": False, "units": {base model: full state
        dict}}``. A policy built from the same ``config`` acts exactly like this one after
        :meth:`load_trainable_state` (what the Ray rollout actors receive every iteration)."""
        units: dict[str, dict] = {}
        for path, unit in self._units.items():
            if self.config.lora:
                from peft import get_peft_model_state_dict

                names = dict.fromkeys(self._adapter_name(r) for r in self.roles if self._role_unit[r] == path)
                units[path] = {n: {k: v.detach().cpu().clone()
                                   for k, v in get_peft_model_state_dict(unit.model, adapter_name=n).items()}
                               for n in names}
            else:
                units[path] = {k: v.detach().cpu().clone() for k, v in unit.model.state_dict().items()}
        return {"lora": bool(self.config.lora), "units": units}

    def load_trainable_state(self, state: dict) -> None:
        """Install a :meth:`trainable_state` of a policy with the same config (raises on a mismatch)."""
        if bool(state.get("lora")) != bool(self.config.lora) or set(state.get("units", {})) != set(self._units):
            raise ValueError(f"load_trainable_state: state of base models {sorted(state.get('units', {}))} "
                             f"(lora={state.get('lora')}) does not fit this policy ({sorted(self._units)}, "
                             f"lora={self.config.lora})")
        for path, unit in self._units.items():
            if self.config.lora:
                from peft import set_peft_model_state_dict

                for name, sd in state["units"][path].items():
                    if name not in unit.model.peft_config:
                        raise ValueError(f"load_trainable_state: adapter {name!r} not in this policy's {path}")
                    res = set_peft_model_state_dict(unit.model, {k: v.to(self._device) for k, v in sd.items()},
                                                    adapter_name=name)
                    unexpected = getattr(res, "unexpected_keys", [])
                    if unexpected:
                        raise ValueError(f"load_trainable_state: unexpected keys {unexpected[:3]} for adapter {name!r}")
            else:
                unit.model.load_state_dict(state["units"][path])

    def train(self) -> "LLMPolicy":
        for u in self._units.values():
            u.model.train()
        return self

    def eval(self) -> "LLMPolicy":
        for u in self._units.values():
            u.model.eval()
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, directory) -> None:
        """Write `policy.json` (config), adapters as safetensors (+ their peft config JSON), or the
        full models when `lora=False`. Written into a temporary sibling folder, then renamed."""
        from safetensors.torch import save_file

        directory = os.fspath(directory)
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".policy-", dir=parent)
        try:
            cfg = dataclasses.asdict(self.config)
            cfg["roles"] = list(self.roles)
            cfg["per_role_models"] = {ROLE_NAMES[role_id(k)]: v for k, v in (self.config.per_role_models or {}).items()}
            if isinstance(cfg["max_new_tokens"], dict):
                cfg["max_new_tokens"] = {ROLE_NAMES[role_id(k)]: int(v) for k, v in cfg["max_new_tokens"].items()}
            if not isinstance(cfg["lora_target_modules"], str):
                cfg["lora_target_modules"] = list(cfg["lora_target_modules"])
            payload = {"kind": "llm", "format": 1, "config": cfg}
            if self.config.lora:
                from peft import get_peft_model_state_dict
                for path, unit in self._units.items():
                    for r in self.roles:
                        if self._role_unit[r] != path:
                            continue
                        name = self._adapter_name(r)
                        sub = os.path.join(tmp, "adapters", name)
                        if os.path.exists(sub):
                            continue
                        os.makedirs(sub)
                        sd = get_peft_model_state_dict(unit.model, adapter_name=name)
                        save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()},
                                  os.path.join(sub, "adapter_model.safetensors"))
                        unit.model.peft_config[name].save_pretrained(sub)
            else:
                payload["full_models"] = {}
                for i, (path, unit) in enumerate(sorted(self._units.items())):
                    sub = os.path.join("models", str(i))
                    unit.model.save_pretrained(os.path.join(tmp, sub), safe_serialization=True)
                    unit.tokenizer.save_pretrained(os.path.join(tmp, sub))
                    payload["full_models"][path] = sub
            write_policy_json(tmp, payload)
            os.chmod(tmp, 0o755)
            if os.path.exists(directory):
                old = directory + ".old-" + os.path.basename(tmp)
                os.replace(directory, old)
                os.replace(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory, **overrides) -> "LLMPolicy":
        """Rebuild a saved policy; `overrides` replace config fields (e.g. device="cpu")."""
        directory = os.fspath(directory)
        data = read_policy_json(directory)
        if data.get("kind") != "llm":
            raise ValueError(f"{directory}/policy.json: kind is {data.get('kind')!r}, expected 'llm'")
        raw = dict(data.get("config") or {})
        known = {f.name for f in dataclasses.fields(LLMPolicyConfig)}
        bad = sorted(set(raw) - known)
        if bad:
            raise ValueError(f"{directory}/policy.json: unknown config fields {bad}")
        raw["roles"] = tuple(raw.get("roles", ALL_ROLES))
        if isinstance(raw.get("lora_target_modules"), list):
            raw["lora_target_modules"] = tuple(raw["lora_target_modules"])
        _drop_code_options(raw, f"{directory}/policy.json")
        raw.update(overrides)
        config = LLMPolicyConfig(**raw)
        model_overrides = None
        if not config.lora:
            model_overrides = {p: os.path.join(directory, sub) for p, sub in data.get("full_models", {}).items()}
        return cls(config, _adapter_dir=directory if config.lora else None, _model_overrides=model_overrides)
