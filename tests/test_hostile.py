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
from pathlib import Path

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


# ----------------------------------------------------------------------------- checkpoints


def _tiny_train_config(**kw):
    from agents.comam import TrainConfig

    base = dict(batch_queries=2, group_size=2, iterations=4, eval_limit=4, eval_every=2, checkpoint_every=2,
                env_pool=4, progress=False, seed=3, grpo={"lr": 1e-2, "inner_epochs": 1})
    base.update(kw)
    return TrainConfig(**base)


def _iterations(run_dir) -> list[int]:
    return [json.loads(line)["iteration"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _curve(run_dir) -> list[dict]:
    from agents.comam import is_timing_key

    out = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        out.append({k: v for k, v in json.loads(line).items() if not is_timing_key(k)})
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted reference run every crash-and-resume run must reproduce."""
    from agents.comam import train

    run = tmp_path_factory.mktemp("full") / "run"
    train(_tiny_train_config(), run)
    return run


class _Killed(BaseException):
    """Stands for a kill: not an Exception, so no `except Exception` handler swallows it."""


def _tiny_policy(seed=0):
    from agents.base import make_policy

    return make_policy("selection", dim=8, seed=seed)


def _state(iteration: int) -> dict:
    import numpy as np
    import torch

    from agents.checkpoint import rng_state

    return {"iteration": iteration, "rng": rng_state(np.random.default_rng(iteration), torch.Generator()), "best": {}}


def test_a_kill_at_any_rename_of_a_save_leaves_a_complete_checkpoint(tmp_path, monkeypatch):
    """Kill the second save at its 1st, 2nd, ... os.replace: recovery always yields a complete
    checkpoint — the new one once its folder was complete, else the previous one."""
    import os

    from agents.checkpoint import load_checkpoint, read_state, recover_checkpoint, save_checkpoint

    real_replace = os.replace
    n_replaces = None
    for kill_at in range(1, 20):
        run = tmp_path / f"k{kill_at}"
        run.mkdir()
        save_checkpoint(run, _tiny_policy(0), None, _state(1))
        calls = {"n": 0}

        def replace(src, dst, *a, _kill_at=kill_at, _calls=calls, **k):
            _calls["n"] += 1
            if _calls["n"] == _kill_at:
                raise _Killed
            return real_replace(src, dst, *a, **k)

        monkeypatch.setattr(os, "replace", replace)
        try:
            save_checkpoint(run, _tiny_policy(1), None, _state(2))
            killed = False
        except _Killed:
            killed = True
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
        if not killed:  # kill_at is beyond the last rename: the save completed
            n_replaces = kill_at - 1
            break
        recover_checkpoint(run)
        assert sorted(p.name for p in run.iterdir()) == ["checkpoint"], f"kill at replace #{kill_at}"
        it = read_state(run / "checkpoint" / "state.json")["iteration"]
        assert it in (1, 2)
        assert load_checkpoint(run, with_optimizer=False).iteration == it
    assert n_replaces is not None and n_replaces >= 2  # the two renames (plus the atomic file writes)


def test_a_kill_between_the_two_renames_resumes_from_the_new_checkpoint(tmp_path, full_run):
    """A real SIGKILL after `checkpoint` -> `checkpoint.old` and before `checkpoint.tmp` -> `checkpoint`
    (the second checkpoint, iteration 2). The resume used to restart at 0 and delete metrics.jsonl."""
    import dataclasses
    import os
    import subprocess
    import sys

    from agents.comam import Trainer, train

    run = tmp_path / "run"
    child = (
        "import json, os, signal, sys\n"
        "from pathlib import Path\n"
        "real = os.replace\n"
        "def replace(src, dst, *a, **k):\n"
        "    if Path(src).name == 'checkpoint.tmp' and (Path(dst).parent / 'checkpoint.old').exists():\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(src, dst, *a, **k)\n"
        "os.replace = replace\n"
        "from agents.comam import TrainConfig, train\n"
        "train(TrainConfig(**json.loads(sys.argv[1])), sys.argv[2])\n"
    )
    cfg = _tiny_train_config()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", child, json.dumps(dataclasses.asdict(cfg)), str(run)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (run / "checkpoint").exists() and (run / "checkpoint.old").exists()
    assert _iterations(run) == [0, 1, 2]

    trainer = Trainer(cfg, run)
    assert trainer.iteration == 2  # the complete new checkpoint, not a restart
    assert _iterations(run) == [0, 1, 2]
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint"]
    train(cfg, run)
    assert _curve(run) == _curve(full_run)


def test_resuming_from_the_iteration_0_checkpoint_logs_iteration_0_once(tmp_path, full_run, monkeypatch):
    from agents.comam import Trainer, train

    real_step = Trainer.step

    def killed(self):
        raise _Killed  # the run dies right after its iteration-0 checkpoint

    monkeypatch.setattr(Trainer, "step", killed)
    with pytest.raises(_Killed):
        train(_tiny_train_config(), tmp_path / "run")
    monkeypatch.setattr(Trainer, "step", real_step)
    assert _iterations(tmp_path / "run") == [0]
    train(_tiny_train_config(), tmp_path / "run")
    assert _iterations(tmp_path / "run") == [0, 1, 2, 3, 4]  # used to be [0, 0, 1, 2, 3, 4]
    assert _curve(tmp_path / "run") == _curve(full_run)


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, full_run):
    from agents.comam import train

    run = tmp_path / "run"
    train(_tiny_train_config(iterations=2), run)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"iteration": 3, "train_acc')  # the kill hit in the middle of a write
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: line 4: dropped a torn record"):
        train(_tiny_train_config(), run)
    assert _curve(run) == _curve(full_run)


def test_a_corrupt_metrics_line_or_state_is_an_error_naming_the_file(tmp_path):
    from agents.comam import Trainer, train

    run = tmp_path / "run"
    train(_tiny_train_config(iterations=2), run)
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([metrics[0], "{oops", *metrics[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2: invalid JSON"):
        Trainer(_tiny_train_config(), run)

    state_path = run / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    for bad in (-1, True, 2.5, "2", None):
        state_path.write_text(json.dumps({**state, "iteration": bad}))
        with pytest.raises(ValueError, match=r"state\.json: field 'iteration' must be an integer >= 0"):
            Trainer(_tiny_train_config(), run)
    state_path.write_text("{")
    with pytest.raises(ValueError, match=r"state\.json: line 1: invalid JSON"):
        Trainer(_tiny_train_config(), run)


# ----------------------------------------------------------------------------- data files


def _pm_folder(tmp_path):
    from tests.data.conftest import write_personamem

    return write_personamem(tmp_path / "pm")


def _load(folder):
    from comam_env.data.personamem import load_personamem_dir

    return load_personamem_dir(folder, "32k")


@pytest.mark.parametrize("name", ["questions_32k.csv", "shared_contexts_32k.jsonl", "profiles.json"])
def test_a_non_utf8_byte_names_the_file_and_line(tmp_path, name):
    from comam_env.data.errors import DataFormatError

    folder = _pm_folder(tmp_path)
    if name == "profiles.json":
        (folder / name).write_text('{"0": ["likes tea"],\n "1": ["x"]}')
    raw = (folder / name).read_bytes()
    second_line = raw.index(b"\n") + 1
    (folder / name).write_bytes(raw[:second_line + 3] + b"\xff" + raw[second_line + 3:])
    with pytest.raises(DataFormatError, match=rf"{name}, line 2: not UTF-8 text: byte 0xff at column 4"):
        _load(folder)


def test_deeply_nested_json_is_a_format_error(tmp_path):
    from comam_env.data.errors import DataFormatError

    from tests.data.conftest import CTX_B

    folder = _pm_folder(tmp_path)
    path = folder / "shared_contexts_32k.jsonl"
    original = path.read_text(encoding="utf-8")
    first = original.splitlines()[0]
    path.write_text(first + "\n" + json.dumps(CTX_B)[:-1].join(['{', '": ']) + "[" * 100_000 + "]" * 100_000
                    + "}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"shared_contexts_32k\.jsonl, line 2: JSON nested too deeply"):
        _load(folder)
    path.write_text(original, encoding="utf-8")
    (folder / "profiles.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match=r"profiles\.json: JSON nested too deeply"):
        _load(folder)


def test_a_utf8_bom_keeps_every_persona_id(tmp_path):
    plain = _load(_pm_folder(tmp_path / "plain"))
    folder = _pm_folder(tmp_path / "bom")
    for name in ("questions_32k.csv", "shared_contexts_32k.jsonl"):
        (folder / name).write_bytes(b"\xef\xbb\xbf" + (folder / name).read_bytes())
    bom = _load(folder)
    assert [q.persona_id for q in bom.questions] == [q.persona_id for q in plain.questions]
    assert any(q.persona_id for q in bom.questions)  # (the BOM used to drop all of them)
    assert bom.questions == plain.questions and bom.histories == plain.histories


def test_a_lone_surrogate_is_replaced_at_load_and_the_selection_view_runs(tmp_path):
    import comam_env

    folder = _pm_folder(tmp_path)
    path = folder / "shared_contexts_32k.jsonl"
    text = path.read_text(encoding="utf-8").replace("I love hiking", "I love \\ud800 hiking \\udfff", 1)
    text = text.replace("heirloom varieties", "heirloom \\ud83d\\ude00 varieties", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.warns(UserWarning, match=r"shared_contexts_32k\.jsonl, line 1: replaced 2 lone surrogate"):
        ds = _load(folder)
    contents = [c for h in ds.histories.values() for c in h.contents]
    assert any("I love \ufffd hiking \ufffd" in c for c in contents)
    assert any("heirloom \U0001F600 varieties" in c for c in contents)  # a valid pair: one character, untouched
    for c in contents:
        c.encode("utf-8")  # every text is encodable (a lone surrogate raised here, in the view)
    from tests.views.conftest import OverlapJudge

    env = comam_env.make("synthetic-32k", dataset=ds, split="all", view="selection", judge=OverlapJudge(),
                         view_kwargs={"K": 8, "cache_dir": str(tmp_path / "emb"), "progress": False})
    env.reset(seed=0)
    while env.agents:
        agent = env.agent_selection
        env.step(None if env.terminations[agent] or env.truncations[agent] else env.gold_action(agent))


def test_data_stats_on_a_broken_folder_is_a_one_line_error(tmp_path):
    import os
    import subprocess
    import sys

    folder = _pm_folder(tmp_path)
    (folder / "shared_contexts_32k.jsonl").write_bytes(b"\xff\xfe{}\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "comam_env.cli", "data", "stats", str(folder)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "shared_contexts_32k.jsonl, line 1: not UTF-8 text: byte 0xff" in proc.stderr


def test_locomo_files_share_the_same_reader_rules(tmp_path):
    from comam_env.data.errors import DataFormatError
    from comam_env.data.locomo import read_locomo
    from comam_env.data.locomo_fixture import make_locomo_samples

    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps(make_locomo_samples(n_samples=1, n_sessions=2)), encoding="utf-8")
    plain = read_locomo(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_locomo(path).questions == plain.questions  # a BOM used to be an invalid-JSON error
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match=r"locomo10\.json: JSON nested too deeply"):
        read_locomo(path)
    path.write_bytes(b'[{"x":\n "\xc3"}]')
    with pytest.raises(DataFormatError, match=r"locomo10\.json, line 2: not UTF-8 text: byte 0xc3 at column 3"):
        read_locomo(path)


# ----------------------------------------------------------------------------- reward parameters


@pytest.mark.parametrize("field, value", [
    ("tau", -5), ("tau", float("nan")), ("tau", "x"), ("tau", 0), ("tau", 1.5), ("tau", True),
    ("alpha", True), ("alpha", float("nan")), ("alpha", "0.8"), ("beta", -0.1), ("beta", None),
    ("chunk_tokens", 2.5), ("chunk_tokens", True), ("queries_per_episode", True), ("max_action_chars", 10.0),
    ("record_trajectory", "yes"),
])
def test_env_config_rejects_out_of_range_and_mistyped_values(field, value):
    from comam_env.config import EnvConfig

    with pytest.raises(ValueError, match=rf"^{field} must be"):
        EnvConfig(**{field: value})


def test_env_config_keeps_accepting_in_range_values():
    import numpy as np

    from comam_env.config import EnvConfig

    cfg = EnvConfig(tau=1, alpha=np.float32(0.5), beta=0, chunk_tokens=np.int64(100), queries_per_episode=2)
    assert (cfg.tau, cfg.alpha, cfg.beta, cfg.chunk_tokens) == (1, np.float32(0.5), 0, 100)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": True}, r"weight must be a number in \[0, 1\], got True"),
    ({"alpha": float("nan")}, r"weight must be a number in \[0, 1\], got nan"),
    ({"tau": -5}, r"tau must be a number in \(0, 1\], got -5"),
    ({"tau": float("nan")}, r"tau must be a number in \(0, 1\], got nan"),
    ({"tau": "x"}, r"tau must be a number in \(0, 1\], got 'x'"),
])
def test_reward_functions_validate_their_parameters(kwargs, match):
    from comam_env.rewards import extractor_reward, retriever_reward

    memory, evidence = "I love green tea", ["I love green tea every morning"]
    with pytest.raises(ValueError, match=match):
        extractor_reward(memory, evidence, **kwargs)
    if "alpha" in kwargs:
        kwargs = {"beta": kwargs["alpha"]}
    with pytest.raises(ValueError, match=match):
        retriever_reward(memory, evidence, **kwargs)
    assert extractor_reward(memory, evidence, alpha=0.8, tau=0.5).reward > 0  # in range: a number


def test_match_units_refuses_nan_and_non_numbers():
    from comam_env.matching import match_units

    for bad in (float("nan"), "x", True):
        with pytest.raises(ValueError, match="tau must be a number"):
            match_units("green tea", ["green tea"], tau=bad)


@pytest.mark.parametrize("K", [2.5, True, 0, "8"])
def test_selection_view_K_must_be_a_positive_integer(tmp_path, K):
    from tests.views.conftest import make_tiny_dataset, make_view

    with pytest.raises(ValueError, match=r"selection view: K must be an integer >= 1"):
        make_view(make_tiny_dataset(), tmp_path, K=K)


def test_temp_files_of_killed_writes_are_cleaned_by_the_next_write(tmp_path, monkeypatch):
    """A SIGKILL mid-write leaves `.name.XXXXXXXX.tmp` behind (no handler runs); the next atomic
    write into the folder removes leftovers untouched for an hour, never fresh ones or user files."""
    import os
    import time

    from comam_env.data import paths

    monkeypatch.setattr(paths, "_cleaned", set())
    old = time.time() - 2 * paths.STALE_TEMP_SECONDS
    stale = tmp_path / ".cache.npz.k3j9x_2a.tmp"
    fresh = tmp_path / ".cache.npz.b7b7b7b7.tmp"  # maybe a live writer in another process
    user = tmp_path / ".bashrc.original"  # a user's file that merely looks similar
    stale_dir = tmp_path / ".32k-seed0-abc.q1w2e3r4"
    for p in (stale, fresh, user):
        p.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "questions_32k.csv").write_text("half")
    for p in (stale, user, stale_dir / "questions_32k.csv", stale_dir):
        os.utime(p, (old, old))
    paths.atomic_write_text(tmp_path / "meta.json", "{}")
    assert not stale.exists() and fresh.exists() and user.exists()
    assert stale_dir.exists()  # folders only where a caller names its pattern (the synthetic cache)
    removed = paths.remove_stale_temps(tmp_path, dir_pattern=r"\..+\.[a-z0-9_]{8}")
    assert removed == [stale_dir] and not stale_dir.exists()


# ----------------------------------------------------------------------------- submissions and the CLI


def _cli(*args, cwd=None):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "comam_env.cli", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_hostile_submission_archives_are_rejected_end_to_end(tmp_path):
    """Traversal, symlinks and a compression bomb: `leaderboard validate` rejects each with a
    message, extracts nothing outside its temp folder and prints no traceback."""
    import re
    import tarfile
    import zipfile

    traversal = tmp_path / "traversal.zip"
    with zipfile.ZipFile(traversal, "w") as z:
        z.writestr("../../escaped.txt", "owned")
        z.writestr("metadata.json", "{}")
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as t:
        info = tarfile.TarInfo("predictions.jsonl")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", b" " * (50 * 1024 * 1024))  # 50 MB of spaces, ~50 kB compressed
    assert bomb.stat().st_size < 1024 * 1024
    work = tmp_path / "cwd"
    work.mkdir()
    expected = {traversal: r"'\.\.' component \(path traversal\)", link: "symlinks", bomb: r"more than|limit"}
    for archive, message in expected.items():
        proc = _cli("leaderboard", "validate", archive, cwd=work)
        assert proc.returncode == 1, (archive.name, proc.stdout, proc.stderr)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out
        assert re.search(message, out), (archive.name, out)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_cli_on_hostile_run_directories_is_a_one_line_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(b'{"env": "synthetic-32k", \xff}')
    proc = _cli("evaluate", "--run", run, "--limit", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "config.json" in proc.stderr
    proc = _cli("evaluate", "--run", tmp_path / "missing", "--limit", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "not found" in proc.stderr


def test_evaluate_finds_the_policy_of_a_run_killed_inside_a_checkpoint_save(tmp_path):
    """`evaluate --run` must not modify a received run, yet must find its newest complete checkpoint."""
    import os

    from agents.checkpoint import save_checkpoint
    from baselines.trained import policy_dir

    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run, _tiny_policy(0), None, _state(1))
    save_checkpoint(run, _tiny_policy(1), None, _state(2))
    os.replace(run / "checkpoint", run / "checkpoint.tmp")  # as left by a kill between the renames
    assert policy_dir(run) == run / "checkpoint.tmp" / "policy"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.tmp"]  # read-only
