"""`comam-env evaluate`: JSON output, table output, resume through the CLI, clear errors."""

from __future__ import annotations

import json

import pytest

from comam_env.cli import main


def _json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_evaluate_json_and_resume(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    args = ["evaluate", "--env", "synthetic-32k", "--system", "longest-option", "--limit", "5", "--json",
            "--out", str(out), "--resamples", "200"]
    assert main(args) == 0
    rep = _json(capsys)
    assert rep["n_questions"] == 5 and 0.0 <= rep["accuracy"] <= 1.0
    assert rep["split"] == "validation" and rep["env"] == "synthetic-32k"
    assert set(rep["probes"]) == {"random", "longest-option", "question-only"}
    # the system *is* the longest-option probe: both must agree exactly
    assert rep["accuracy"] == rep["probes"]["longest-option"]["accuracy"]
    assert len(out.read_text().splitlines()) == 5
    assert main(args) == 0
    again = _json(capsys)
    assert again["n_resumed"] == 5 and again["accuracy"] == rep["accuracy"]
    assert len(out.read_text().splitlines()) == 5
    # a different system on the same file is refused
    bad = list(args)
    bad[bad.index("longest-option")] = "random"
    assert main(bad) == 1
    assert "different configuration" in capsys.readouterr().err


def test_evaluate_table_output(tmp_path, capsys):
    assert main(["evaluate", "--env", "synthetic-32k", "--system", "mem0-style", "--embedder", "hashing",
                 "--limit", "3", "--out", str(tmp_path / "m.jsonl"), "--quiet", "--resamples", "100"]) == 0
    text = capsys.readouterr().out
    assert "overall" in text and "answer-only probes" in text and "mean local reward per channel" in text


def test_evaluate_errors(tmp_path, capsys):
    assert main(["evaluate", "--env", "synthetic-32k"]) == 1
    assert "--system" in capsys.readouterr().err
    assert main(["evaluate", "--env", "synthetic-32k", "--system", "random", "--answerer", "llm",
                 "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "does not take the option 'answerer'" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "missing")]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # unknown system name: argparse usage error
        main(["evaluate", "--env", "synthetic-32k", "--system", "nope"])
