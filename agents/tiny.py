"""A tiny random Llama + byte-level BPE tokenizer for fast, offline unit tests.

`build_tiny_llm(out_dir)` writes a normal transformers folder (config, safetensors weights,
`tokenizer.json` + tokenizer config with a chat template) that `AutoModelForCausalLM` /
`AutoTokenizer.from_pretrained(out_dir)` — and therefore `LLMPolicy` — load like any hub model.

* Model: `LlamaConfig` with hidden size 64, 2 layers, 4 heads (2 KV heads), intermediate 128,
  tied embeddings, context window `max_position_embeddings` (1024 by default). Weights are random,
  drawn from `torch` seeded with `seed` inside `torch.random.fork_rng` (the caller's global RNG is
  untouched).
* Tokenizer: byte-level BPE trained by `tokenizers` in milliseconds on a few hundred built-in
  strings that cover the role-prompt vocabulary and tags (`<information>`, `<final_answer>`,
  `(a)`…`(d)`, "memory", "profile", ...). Byte-level means every string is encodable.
  Special tokens: `<|pad|>` (pad), `<|bos|>` (bos), `<|im_end|>` (eos, ends an assistant turn),
  `<|im_start|>`. Chat template: ChatML-like `<|im_start|>{role}\\n{content}<|im_end|>\\n`.
* Cached by path: if `out_dir` already holds a build with the same parameters it is returned
  as is; a build with other parameters raises. Built in a temporary sibling folder and renamed,
  so a crash never leaves a half-written model behind. Same arguments → bit-identical files.
"""
from __future__ import annotations

import json
import os

BUILD_FILE = "tiny_build.json"
_BUILD_VERSION = 1

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Vocabulary of the role prompts, tags and typical conversation text; the tokenizer is trained on
# combinations of these so common prompt words become single tokens (shorter sequences, faster tests).
_PHRASES = [
    "You are the memory extractor of a personal assistant.",
    "You are the user profiler of a personal assistant.",
    "You are the memory retriever of a personal assistant.",
    "Read the conversation and keep the key facts and preferences the user shared.",
    "Write one fact per line. Remove small talk and redundant text.",
    "Summarise the user's profile: scenarios, behaviour patterns, preferences.",
    "Given the memory, the question and the options, copy the relevant memory inside",
    "<information> and </information>, then answer with the option letter inside",
    "<final_answer> and </final_answer>.",
    "<information>", "</information>", "<final_answer>", "</final_answer>",
    "(a)", "(b)", "(c)", "(d)", "<final_answer>(a)</final_answer>", "<final_answer>(b)</final_answer>",
    "<final_answer>(c)</final_answer>", "<final_answer>(d)</final_answer>",
    "Conversation:", "Memory:", "Fine-grained memory:", "Profile:", "Question:", "Options:",
    "Answer:", "User:", "Assistant:", "system", "user", "assistant",
    "Current user persona:", "The user likes", "The user prefers", "The user used to",
    "The user no longer", "because", "recently", "changed their mind about", "favourite",
    "hiking", "cooking", "music", "travel", "reading", "movies", "fitness", "coffee", "tea",
    "gardening", "painting", "photography", "running", "yoga", "jazz", "podcasts", "board games",
    "I really enjoy", "I have been trying", "Lately I prefer", "I stopped", "I started",
    "What would you recommend", "Can you suggest", "Thanks, that sounds great!",
    "Sure, here are a few ideas.", "Which option fits the user best?",
    "recommendation", "preference", "scenario", "behaviour", "pattern", "update", "reason",
    "memory", "profile", "evidence", "session", "history", "question", "option", "answer",
]


def _corpus() -> list[str]:
    """A few hundred deterministic training strings built from `_PHRASES`."""
    out = list(_PHRASES)
    n = len(_PHRASES)
    for i in range(n):
        for step in (1, 7, 13):
            out.append(_PHRASES[i] + " " + _PHRASES[(i + step) % n])
    for letter in "abcd":
        out.append(f"<information>The user prefers jazz.</information>\n<final_answer>({letter})</final_answer>")
    for i in range(60):
        out.append(f"User: message {i} about topic {i % 7}, session {i // 10}.")
    return out


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|im_end|>",
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llm(
    out_dir: str | os.PathLike,
    vocab_size: int = 512,
    seed: int = 0,
    max_position_embeddings: int = 1024,
) -> str:
    """Build (once) a tiny random Llama + tokenizer folder at `out_dir` and return its path."""
    out_dir = os.fspath(out_dir)
    params = {"version": _BUILD_VERSION, "vocab_size": int(vocab_size), "seed": int(seed),
              "max_position_embeddings": int(max_position_embeddings)}
    marker = os.path.join(out_dir, BUILD_FILE)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as fh:
            have = json.load(fh)
        if have != params:
            raise ValueError(f"{out_dir}: holds a tiny LLM built with {have}, requested {params}; "
                             "use another folder")
        return out_dir
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir}: exists, is not empty and has no {BUILD_FILE}")
    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + specials + merges), got {vocab_size}")

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _train_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        torch_dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id

    from .models import save_model_folder

    return save_model_folder(model, tokenizer, out_dir, marker=(BUILD_FILE, json.dumps(params, sort_keys=True)),
                             prefix=".tiny-llm-")
