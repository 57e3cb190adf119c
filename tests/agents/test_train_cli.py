"""`comam-env train` and `comam-env evaluate --run` on the trainer's run directory, and the
GPU example's --help / --dry-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from comam_env.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


def _train_args(out, *extra):
    return ["train", "--env", "synthetic-32k", "--policy", "selection", "--credit", "adaptive", "--seed", "0",
            "--iterations", "2", "--batch-queries", "4", "--group-size", "4", "--eval-limit", "8",
            "--eval-every", "2", "--env-pool", "16", "--no-progress", "--grpo", "lr=0.01", "--out", str(out), *extra]


def test_train_json_then_evaluate_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run, "--json")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["iteration"] == 2 and summary["val_n_questions"] == 8
    assert 0.0 <= summary["val_accuracy"] <= 1.0
    cfg = json.loads((run / "config.json").read_text())
    # flags land in the config; nested --grpo merges into the defaults
    assert cfg["batch_queries"] == 4 and cfg["grpo"] == {"inner_epochs": 2, "lr": 0.01} and cfg["progress"] is False

    # the evaluator reads the same run directory (config.json + checkpoint/policy/)
    preds = tmp_path / "preds.jsonl"
    assert main(["evaluate", "--run", str(run), "--limit", "8", "--json", "--no-probes", "--resamples", "50",
                 "--out", str(preds)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n_questions"] == 8 and report["system"] == "comam"
    # same policy, same 8 validation questions, greedy full-history episodes → same accuracy
    assert report["accuracy"] == pytest.approx(summary["val_accuracy"])

    # re-running the same command resumes (nothing left to do) and reports the same result
    assert main(_train_args(run, "--json")) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again == summary


def test_train_cli_errors_are_clear(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run)) == 0
    capsys.readouterr()
    code = main(_train_args(run, "--credit", "equal"))
    assert code != 0
    assert "different configuration" in capsys.readouterr().err
    code = main(_train_args(tmp_path / "other", "--credit", "nonsense"))
    assert code != 0
    assert "unknown credit strategy 'nonsense'" in capsys.readouterr().err
    code = main(_train_args(tmp_path / "other", "--credit-kw", "temprature=0.1"))
    assert code != 0
    assert "unknown credit_kwargs ['temprature']" in capsys.readouterr().err


def test_credit_kw_flag_lands_in_the_run_config(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(run, "--iterations", "1", "--credit-kw", "temperature=0.25")) == 0
    assert json.loads((run / "config.json").read_text())["credit_kwargs"] == {"temperature": 0.25}


def test_gpu_example_help_and_dry_run():
    script = str(ROOT / "examples" / "train_llm_gpu.py")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--dry-run" in out.stdout
    out = subprocess.run([sys.executable, script, "--dry-run", "--out", "runs/x"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["policy"] == "llm" and cfg["batch_queries"] == 128 and cfg["group_size"] == 8
    assert cfg["temperature"] == 1.0 and cfg["eval_temperature"] == 0.8
    models = cfg["policy_kwargs"]["per_role_models"]
    assert models["extractor"] == models["profiler"] == "Qwen/Qwen2.5-3B-Instruct"
    assert models["retriever"] == "Qwen/Qwen2.5-7B-Instruct"
    assert cfg["policy_kwargs"]["lora"] is True
