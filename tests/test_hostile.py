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
