"""Hostile inputs: every file, action and argument a user or a submitter can hand us.

The guarantees tested here are listed in docs/threat_model.md. Sections:

* code execution — a received run directory never makes us run its code;
* checkpoints — a kill at any point of a save loses nothing; corrupt state gets a clear error;
* data files — malformed PersonaMem / JSON files get an error naming file, row and field;
* reward parameters and actions — out-of-range values are rejected, never silently coerced;
* submissions and the CLI — end-to-end: clear one-line errors, no tracebacks.
"""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

# ----------------------------------------------------------------------------- code execution


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory):
    """A run directory whose LLM policy asks for ``trust_remote_code`` and whose model folder
    ships Python code (``auto_map``) that leaves a marker file when imported."""
    from agents.llm import LLMPolicy
    from agents.tiny import build_tiny_llm

    root = tmp_path_factory.mktemp("evil")
    model = root / "evil-model"
    shutil.copytree(build_tiny_llm(root / "tiny"), model)
    marker = root / "CODE_RAN"
    (model / "evil_code.py").write_text(
        f"open({str(marker)!r}, 'w').write('the run executed its own code')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'llama'\n"
        "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n")
    cfg = json.loads((model / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil_code.EvilConfig", "AutoModelForCausalLM": "evil_code.EvilModel"}
    (model / "config.json").write_text(json.dumps(cfg))

    run = root / "run"
    LLMPolicy(model=str(model), max_new_tokens=4, device="cpu").save(run / "checkpoint" / "policy")
    policy_json = run / "checkpoint" / "policy" / "policy.json"
    payload = json.loads(policy_json.read_text())
    payload["config"]["trust_remote_code"] = True
    payload["config"]["backend_kwargs"] = {"trust_remote_code": True}
    policy_json.write_text(json.dumps(payload))
    (run / "config.json").write_text(json.dumps({"env": "synthetic-32k", "policy": "llm", "mode": "joint"}))
    assert not marker.exists()
    return run, marker


def test_a_received_run_never_enables_trust_remote_code(evil_run):
    from baselines.trained import TrainedSystem

    run, marker = evil_run
    with pytest.warns(UserWarning, match=r"policy\.json: ignored trust_remote_code, backend_kwargs\.trust_remote_code"):
        system = TrainedSystem(run=str(run))
    assert not marker.exists(), "loading a received run imported the Python file it ships"
    policy = system.policies["extractor"]
    assert policy.config.trust_remote_code is False
    assert "trust_remote_code" not in policy.config.backend_kwargs


def test_trust_remote_code_only_from_the_explicit_flag(evil_run):
    import argparse

    from baselines.cli import configure
    from baselines.trained import TrainedSystem

    parser = argparse.ArgumentParser()
    configure(parser)
    assert parser.parse_args(["--run", "x"]).trust_remote_code is False
    assert parser.parse_args(["--run", "x", "--trust-remote-code"]).trust_remote_code is True

    run, marker = evil_run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TrainedSystem(run=str(run), trust_remote_code=True)
    assert any("lets transformers import and run Python files" in str(w.message) for w in caught)
    assert marker.exists()  # the explicit flag is what turns it on (and it does work)
    marker.unlink()


# ----------------------------------------------------------------------------- actions


@pytest.fixture()
def selection_env(tmp_path):
    from tests.views.conftest import make_tiny_dataset, make_view

    env = make_view(make_tiny_dataset(), tmp_path, K=8)
    env.reset(seed=0)
    return env


def _advance_to_retriever(env):
    while env.agent_selection != "retriever_0":
        env.step(env.gold_action(env.agent_selection))


@pytest.mark.parametrize("bad, match", [
    (float("nan"), r"subset bit 0 is .*nan.*every bit must be 0 or 1"),
    (-1, r"subset bit 0 is -1"),
    (0.3, r"subset bit 0 is 0\.3"),
    (2, r"subset bit 0 is 2"),
    (float("inf"), r"subset bit 0 is .*inf"),
])
def test_selection_subset_bits_outside_the_space_are_rejected(selection_env, bad, match):
    import numpy as np

    act = np.zeros(8, dtype=float)
    act[0] = bad
    with pytest.raises(ValueError, match=match):
        selection_env.step(act)


def test_selection_string_and_object_actions_are_rejected(selection_env):
    with pytest.raises(ValueError, match="must be numeric"):
        selection_env.step(["0"] * 8)  # the string "0" used to mean "keep"
    with pytest.raises(ValueError, match="must be numeric"):
        selection_env.step([None] * 8)


@pytest.mark.parametrize("option", [float("inf"), float("nan"), 2.5, -1, 4])
def test_selection_retriever_option_outside_the_space_is_rejected(selection_env, option):
    import numpy as np

    _advance_to_retriever(selection_env)
    act = np.zeros(9, dtype=float)
    act[8] = option
    with pytest.raises(ValueError, match=r"option index .* is not an integer in 0\.\.3"):
        selection_env.step(act)  # inf used to raise OverflowError


def test_selection_in_space_actions_of_any_numeric_dtype_agree(selection_env):
    """Bools, ints and floats 0/1 are the same action: one rule, not dtype-dependent."""
    import numpy as np

    bits = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    texts = {selection_env.decode("extractor_0", bits.astype(t)) for t in (bool, np.int8, np.int64, np.float32)}
    assert len(texts) == 1
    # a rejected action leaves the episode where it was
    before = selection_env.agent_selection
    with pytest.raises(ValueError):
        selection_env.step(np.full(8, 0.5))
    assert selection_env.agent_selection == before
    selection_env.step(bits)


def test_text_view_actions_never_crash():
    """The text view takes any string (an unparsable answer is simply wrong): hostile text never crashes."""
    import math
    import random

    import comam_env
    from tests.views.conftest import OverlapJudge, make_tiny_dataset

    env = comam_env.make("synthetic-32k", dataset=make_tiny_dataset(), split="all", judge=OverlapJudge(),
                         chunk_tokens=60)
    rng = random.Random(0)
    junk = ["", "\x00", "\ud800", "<final_answer>", "<final_answer>(z)</final_answer>", "<information>" * 500,
            "(a)" * 50, "\u202e(b)", "<final_answer>(a)(b)</final_answer>", "x" * 20000, "\n" * 1000]
    steps = 0
    for episode in range(3):
        env.reset(seed=episode)
        while env.agents:
            agent = env.agent_selection
            done = env.terminations[agent] or env.truncations[agent]
            env.step(None if done else rng.choice(junk))
            steps += 1
            assert all(math.isfinite(r) and -1e-9 <= r <= 1 + 1e-9 for r in env.rewards.values())
    assert steps > 10
