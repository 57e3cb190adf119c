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


def test_evaluate_scores_the_questions_the_trainer_held_out(tmp_path, capsys):
    """The validation questions are the env's (synthetic: split by persona), never a training persona's:
    a by-question split put 438 of 543 synthetic-32k validation questions on training personas."""
    import comam_env
    from comam_env.registry import split_ids

    out = tmp_path / "p.jsonl"
    assert main(["evaluate", "--env", "synthetic-32k", "--system", "longest-option", "--limit", "40", "--json",
                 "--out", str(out), "--resamples", "50", "--no-probes"]) == 0
    assert _json(capsys)["n_questions"] == 40
    got = [json.loads(line)["question_id"] for line in out.read_text().splitlines()]
    envs = {s: comam_env.make("synthetic-32k", split=s).unwrapped for s in ("train", "validation")}
    ds = envs["train"].dataset
    assert got == list(envs["validation"].question_ids)[:40] == split_ids("synthetic-32k", ds, "validation")[:40]
    train_personas = {ds.question(q).persona_id for q in envs["train"].question_ids}
    assert not {ds.question(q).persona_id for q in got} & train_personas


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


def test_default_output_is_keyed_and_resume_is_loud(tmp_path, capsys, monkeypatch):
    """Issue 16 item 9: the default file is keyed by options, run files and code; a resume says
    so on stderr; --fresh recomputes."""
    import baselines.cli as bcli

    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "--env", "synthetic-32k", "--system", "longest-option", "--limit", "3", "--json",
            "--no-probes", "--resamples", "50"]
    assert main(args) == 0
    first = _json(capsys)
    path = tmp_path / first["predictions_file"]
    assert path.parent.name == "predictions" and path.exists()
    assert path.name.startswith("synthetic-32k__longest-option__validation__s0__")
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["n_resumed"] == 3
    assert "resumed 3 of 3 predictions" in err and "--fresh" in err
    assert main([*args, "--fresh"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["n_resumed"] == 0 and "resumed" not in err
    # other options or other code -> another file, never a refusal or a silent resume
    assert main([*args, "--split-seed", "1"]) == 0
    assert _json(capsys)["predictions_file"] != first["predictions_file"]
    monkeypatch.setattr(bcli, "code_fingerprint", lambda: "edited code")
    assert main(args) == 0
    changed = _json(capsys)
    assert changed["predictions_file"] != first["predictions_file"] and changed["n_resumed"] == 0


def test_run_files_digest_tells_runs_and_their_progress_apart(tmp_path):
    from baselines.cli import _run_files_digest

    runs = []
    for name, seed in (("a", 0), ("b", 1)):
        run = tmp_path / name
        (run / "checkpoint").mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"seed": seed}))
        (run / "checkpoint" / "state.json").write_text('{"iteration": 5}')
        runs.append(run)
    a, b = (_run_files_digest(str(r)) for r in runs)
    assert a != b and _run_files_digest(None) is None
    (runs[0] / "checkpoint" / "state.json").write_text('{"iteration": 10}')  # trained further
    assert _run_files_digest(str(runs[0])) != a
