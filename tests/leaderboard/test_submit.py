"""``comam-env leaderboard submit``: metadata from what the evaluation knows, questions only for the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comam_env.cli import main
from leaderboard import submit as SUB
from leaderboard.validate import questions_fingerprint, validate_submission
from tests.leaderboard.conftest import gold_lines, validation_ids

PEOPLE = ["--name", "My system", "--authors", "A. One, B. Two", "--description", "does things"]


def _evaluation(folder: Path, small_ds, *, run: Path | None = None, **config) -> Path:
    """A predictions file with the ``.meta.json`` that ``comam-env evaluate --out`` writes beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    pred = folder / "preds.jsonl"
    pred.write_text("".join(json.dumps(line) + "\n" for line in gold_lines(small_ds)), encoding="utf-8")
    cfg = {"env": "synthetic-32k", "system": "longest-option", "split": "validation", "split_seed": 0, "seed": 0,
           "answerer": None, "model": None, "run": str(run) if run else None, "embedder": None,
           "retrieval_embedder": None}
    cfg.update(config)
    (folder / "preds.jsonl.meta.json").write_text(json.dumps(cfg), encoding="utf-8")
    return pred


def test_submit_from_predictions_infers_everything_the_evaluation_knows(tmp_path, small_ds, capsys):
    pred = _evaluation(tmp_path / "ev", small_ds, embedder="minilm")
    out = tmp_path / "entry"
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out), "--no-input", *PEOPLE]) == 0
    assert "valid (predictions entry" in capsys.readouterr().out
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["track"] == "synthetic-32k" and meta["split"] == "validation" and meta["split_seed"] == 0
    assert meta["seeds"] == [0] and meta["system"] == "longest-option" and meta["training_method"] == "none"
    assert meta["models"] == [SUB.EMBEDDER_MODELS["minilm"]] and meta["open_source"] is True
    assert meta["authors"] == ["A. One", "B. Two"] and meta["url"] is None
    assert meta["questions_sha256"] == questions_fingerprint(small_ds, validation_ids(small_ds))
    assert meta["command"].startswith("comam-env evaluate --env synthetic-32k --system longest-option --split "
                                      "validation --split-seed 0 --seed 0 --embedder minilm --out ")
    assert (out / "COMMAND").read_text().strip() == meta["command"]
    assert (out / "predictions.jsonl").read_text() == pred.read_text()
    assert validate_submission(out).ok
    # --force is needed to replace it; --drop-retrieved-memory makes the entry smaller
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out), "--no-input", *PEOPLE]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out), "--no-input", "--force",
                 "--drop-retrieved-memory", *PEOPLE]) == 0
    assert "retrieved_memory" not in (out / "predictions.jsonl").read_text()


def test_without_a_terminal_nothing_is_asked_and_missing_fields_are_named(tmp_path, small_ds, capsys, monkeypatch):
    pred = _evaluation(tmp_path / "ev", small_ds)

    def no_input(*_):
        raise AssertionError("asked on a non-interactive stdin")

    monkeypatch.setattr("builtins.input", no_input)
    out = tmp_path / "entry"
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out)]) == 1  # stdin: not a TTY
    err = capsys.readouterr().err
    assert "cannot know name, authors, description, models" in err
    assert "pass --name, --authors, --description, --models" in err and "not a terminal" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".entry")]
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out), *PEOPLE,
                 "--models", "none"]) == 0
    assert json.loads((out / "metadata.json").read_text())["models"] == []


def test_on_a_terminal_only_the_unknown_fields_are_asked(tmp_path, small_ds, monkeypatch, capsys):
    pred = _evaluation(tmp_path / "ev", small_ds, model="HuggingFaceTB/SmolLM2-135M-Instruct", answerer="llm")
    asked = []
    answers = iter(["Prompted SmolLM2", "C. Three", "an LLM picks the option", "https://example.org/x"])

    def fake_input(prompt):
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr(SUB, "interactive", lambda: True)
    monkeypatch.setattr("builtins.input", fake_input)
    out = tmp_path / "entry"
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out)]) == 0
    assert [a.split(" (")[0].split(" [")[0].rstrip(": ") for a in asked] == [
        "system name shown in the table", "authors", "what the system does", "paper or code URL"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["name"] == "Prompted SmolLM2" and meta["authors"] == ["C. Three"]
    assert meta["url"] == "https://example.org/x" and meta["models"] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert "--answerer llm --model HuggingFaceTB/SmolLM2-135M-Instruct" in meta["command"]
    # an empty answer to a required question is an error, asked once (never a loop)
    answers = iter([""])
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(tmp_path / "e2")]) == 1
    assert "name is required (or pass --name)" in capsys.readouterr().err


def test_submit_a_training_run_finds_its_predictions_and_training_method(tmp_path, small_ds, monkeypatch):
    run = tmp_path / "runs" / "comam-s3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "env": "synthetic-32k", "policy": "selection", "mode": "joint", "credit": "adaptive", "iterations": 60,
        "seed": 3, "policy_kwargs": {}, "env_kwargs": {"view_kwargs": {"embedder": "minilm"}}}))
    _evaluation(run, small_ds, run=run, system="comam")
    monkeypatch.chdir(tmp_path)  # ./predictions does not exist: the run folder is searched
    out = tmp_path / "entry"
    assert main(["leaderboard", "submit", "--run", str(run), "--out", str(out), "--no-input", *PEOPLE]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training_method"] == "CoMAM (adaptive credit, per-agent GRPO), 60 iterations"
    assert meta["seeds"] == [3] and meta["system"] == "comam" and meta["models"] == [SUB.EMBEDDER_MODELS["minilm"]]
    assert meta["command"].startswith(f"comam-env evaluate --run {run} --env synthetic-32k --split validation")
    cfg = {"mode": "independent", "iterations": 5}
    assert SUB.training_method(cfg) == "independent RL, one agent at a time, 5 iterations"
    assert SUB.training_method({"mode": "joint", "credit": "equal"}) == "joint GRPO, equal credit"
    with pytest.raises(SUB.SubmitError, match="no predictions of run"):
        SUB.find_run_predictions(tmp_path / "runs")


def test_an_invalid_entry_is_never_written(tmp_path, small_ds, capsys):
    pred = _evaluation(tmp_path / "ev", small_ds, split="train")  # validation-split ids declared as train
    out = tmp_path / "entry"
    assert main(["leaderboard", "submit", "--predictions", str(pred), "--out", str(out), "--no-input", *PEOPLE,
                 "--models", "none"]) == 1
    err = capsys.readouterr().err
    assert "the entry would be invalid, nothing written" in err and "not the declared split 'train'" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ev"]
