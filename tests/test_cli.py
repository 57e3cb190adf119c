"""The ``comam-env`` dispatcher: registered commands, --version, envs --json, the flags every
command takes, and exit codes for nonsense invocations (no traceback, ever)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from comam_env import cli
from comam_env.cli import Command, main

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_entry_points() -> dict[str, str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["entry-points"][cli.ENTRY_POINT_GROUP]


def test_installed_entry_points_match_pyproject():
    """The upper packages' commands reach comam-env only through the installed metadata: when
    pyproject.toml changes, the install must be refreshed (`pip install -e .`)."""
    declared = _pyproject_entry_points()
    installed = {ep.name: ep.value for ep in cli.command_entry_points()}
    assert installed == declared, "stale install: run `pip install -e .` (or `bash scripts/setup.sh`)"


def test_every_command_is_registered_from_its_own_package():
    commands = cli.available_commands()
    assert {"envs", "data", "train", "evaluate", "demo", "leaderboard"} <= set(commands)
    assert commands["train"].module == "agents.cli" and commands["demo"].module == "baselines.demo"
    assert all(c.module.startswith("comam_env.") for c in cli.COMMANDS)
    for ep in cli.command_entry_points():  # a package registers only its own modules
        package = ep.value.split(".")[0]
        assert all(c.module.split(".")[0] == package for c in ep.load()), ep


def test_register_adds_a_command_and_internal_errors_exit_3(monkeypatch, capsys):
    module = type(sys)("fake_cmd")
    module.configure = lambda parser: parser.add_argument("--boom", action="store_true")
    module.run = lambda args: (_ for _ in ()).throw(RuntimeError("kaboom")) if args.boom else 0
    monkeypatch.setitem(sys.modules, "fake_cmd", module)
    monkeypatch.setattr(cli, "_registered", {})
    cli.register(Command("fake", "a test command", "fake_cmd"))
    assert main(["fake"]) == 0
    assert main(["fake", "--boom"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "RuntimeError: kaboom" in err and "internal error" in err


def test_broken_entry_point_is_skipped_with_a_warning(monkeypatch, capsys):
    class Broken:
        name, value = "broken", "nowhere:COMMANDS"

        def load(self):
            raise ImportError("no module named nowhere")

    original = cli.command_entry_points
    monkeypatch.setattr(cli, "command_entry_points", lambda: [*original(), Broken()])
    commands = cli.available_commands()
    assert "train" in commands and "broken" not in commands
    assert "ignoring entry point broken = nowhere:COMMANDS" in capsys.readouterr().err


def test_version_and_envs_json(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    import comam_env

    assert capsys.readouterr().out.startswith(f"comam-env {comam_env.__version__}")
    assert main(["envs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == comam_env.list_envs()
    assert all(set(e) == {"id", "versioned_id", "dataset", "description"} for e in listed)


def _leaves(parser: argparse.ArgumentParser):
    return list(cli._leaf_parsers(parser))


@pytest.mark.parametrize("name", ["envs", "data", "train", "evaluate", "demo", "leaderboard"])
def test_quiet_and_threads_on_every_leaf(name):
    parser = cli.build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    for leaf in _leaves(sub):
        assert "--quiet" in leaf._option_string_actions, leaf.prog
        assert "--threads" in leaf._option_string_actions, leaf.prog
        assert "exit codes" in (leaf.epilog or "") or leaf.epilog, leaf.prog


def test_threads_flag_sets_torch_threads_for_the_run_only(monkeypatch):
    torch = pytest.importorskip("torch")
    seen = {}
    module = type(sys)("threads_cmd")
    module.configure = lambda parser: None
    module.run = lambda args: seen.setdefault("n", torch.get_num_threads()) and 0
    monkeypatch.setitem(sys.modules, "threads_cmd", module)
    monkeypatch.setattr(cli, "_registered", {"t": Command("t", "threads probe", "threads_cmd")})
    before = torch.get_num_threads()
    assert main(["t", "--threads", "2"]) == 0
    assert seen["n"] == 2 and torch.get_num_threads() == before


# ------------------------------------------------------------------ nonsense invocations


@pytest.fixture
def paths(tmp_path):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a directory\n")
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{oops")
    return {"FILE": str(a_file), "DIR": str(tmp_path / "out"), "TMP": str(tmp_path),
            "LIST_JSON": str(not_object), "BAD_JSON": str(bad_json), "MISSING": str(tmp_path / "missing")}


EV = ["evaluate", "--env", "synthetic-32k", "--system", "random"]
TR = ["train", "--out", "DIR"]

#: argv (placeholders from the `paths` fixture) -> expected exit code
NONSENSE = [
    ([], 2),
    (["bogus-command"], 2),
    (["--threads", "2"], 2),
    ([*TR, "--grpo", "lr=abc"], 2),
    ([*TR, "--grpo", "bogus=1"], 2),
    ([*TR, "--grpo", "novalue"], 2),
    ([*TR, "--grpo", "=1"], 2),
    ([*TR, "--env-kw", "bogus=1"], 2),
    ([*TR, "--env-kw", "alpha=0.5"], 2),
    ([*TR, "--env-kw", 'view_kwargs={"nope": 1}'], 2),
    ([*TR, "--temperature", "nan"], 2),
    ([*TR, "--temperature", "0"], 2),
    ([*TR, "--eval-temperature", "inf"], 2),
    ([*TR, "--iterations", "-1"], 2),
    ([*TR, "--iterations", "two"], 2),
    ([*TR, "--batch-queries", "0"], 2),
    ([*TR, "--eval-limit", "0"], 2),
    ([*TR, "--target-accuracy", "2"], 2),
    ([*TR, "--alpha", "1.5"], 2),
    ([*TR, "--env", "nope"], 2),
    ([*TR, "--credit", "bogus"], 2),
    ([*TR, "--mode", "bogus"], 2),
    ([*TR, "--policy", "llm"], 2),
    ([*TR, "--credit-kw", "temprature=0.1"], 2),
    ([*TR, "--credit-kw", "temperature=nan"], 2),
    ([*TR, "--threads", "0"], 2),
    ([*TR, "--threads", "many"], 2),
    ([*TR, "--config", "LIST_JSON"], 1),
    ([*TR, "--config", "BAD_JSON"], 1),
    ([*TR, "--config", "MISSING"], 1),
    (["train", "--out", "FILE"], 2),
    (["train"], 2),
    ([*EV, "--resamples", "0"], 2),
    ([*EV, "--split-seed", "-1"], 2),
    ([*EV, "--seed", "-3"], 2),
    ([*EV, "--limit", "0"], 2),
    ([*EV, "--split", "bogus"], 2),
    ([*EV, "--out", "TMP"], 2),
    (["evaluate", "--env", "bogus", "--system", "random"], 2),
    (["evaluate", "--env", "synthetic-32k", "--system", "nope"], 2),
    (["evaluate", "--env", "synthetic-32k"], 1),
    (["evaluate", "--run", "MISSING"], 1),
    (["evaluate", "--run", "FILE"], 1),
    (["demo", "--env", "bogus"], 2),
    (["demo", "--env", "personamem-32k"], 2),
    (["demo", "--questions", "0"], 2),
    (["demo", "--iterations", "-2"], 2),
    (["demo", "--out", "FILE"], 2),
    (["demo", "--skip", "nothing"], 2),
    (["data", "download", "locomo", "--url", "not a url"], 2),
    (["data", "download", "locomo", "--url", "ftp://example.org/x.json"], 2),
    (["data", "download", "personamem", "--endpoint", "nowhere"], 2),
    (["data", "download", "personamem", "--split", "7k"], 2),
    (["data", "generate", "--size", "2k", "--out", "DIR"], 2),
    (["data", "generate", "--size", "32k", "--out", "DIR", "--paraphrase", "nan"], 2),
    (["data", "generate", "--size", "32k", "--out", "DIR", "--session-turns", "a,b"], 2),
    (["data", "generate", "--size", "32k", "--out", "DIR", "--knob", "nope=1"], 1),
    (["data", "stats", "MISSING"], 1),
    (["data", "stats", "FILE"], 1),
    (["envs", "--bogus"], 2),
    (["serve", "--port", "-5"], 2),
    (["serve", "--port", "70000"], 2),
    (["serve", "--max-sessions", "0"], 2),
    (["serve", "--env", "bogus"], 2),
    (["serve", "--env-kw", "bogus=1"], 2),
    (["leaderboard", "submit"], 2),
    (["leaderboard", "submit", "--predictions", "MISSING"], 1),
    ([*TR, "--warm-start", "bogus"], 2),
    ([*TR, "--zero-variance", "nope"], 2),
    ([*TR, "--format-reward", "nan"], 2),
    (["leaderboard"], 2),
    (["leaderboard", "score", "MISSING", "--resamples", "0"], 2),
    (["leaderboard", "score", "MISSING"], 1),
    (["leaderboard", "validate", "MISSING"], 1),
    (["leaderboard", "render", "--submissions", "MISSING", "--seed", "-1"], 2),
    (["leaderboard", "run-agent", "x:y", "--track", "t", "--limit", "0"], 2),
]


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else 1


@pytest.mark.parametrize("argv,expected", NONSENSE, ids=[" ".join(a) or "(none)" for a, _ in NONSENSE])
def test_nonsense_invocations_exit_cleanly(argv, expected, paths, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository
    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    argv = [paths.get(a, a) for a in argv]
    code = _exit_code(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out, err
    assert code == expected, err
    if code != 0:  # a one-line message naming the problem (or the usage, for no command at all)
        assert any(line.startswith(("comam-env", "usage:")) and "error" in line for line in err.splitlines()) \
            or argv in ([], ["leaderboard"]) and "usage:" in out + err, err
    assert not Path(paths["DIR"]).exists() or code == 1  # invalid input did no work
