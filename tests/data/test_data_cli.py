"""``comam-env data generate|stats|download`` through ``comam_env.cli.main``."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from comam_env.data import clear_dataset_cache

from comam_env.cli import main
from comam_env.data import DATASET_NAMES, load_dataset
from comam_env.data.errors import DataNotFoundError
from comam_env.data.schema import Dataset, History, Question

from .conftest import REAL_QUESTIONS_32K, question_rows, write_personamem
from .test_download import FakeHub


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("argv", [["data", "--help"], ["data", "stats", "--help"], ["data", "generate", "--help"],
                                  ["data", "download", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys, tmp_path):
    assert main(["data"]) == 2
    for argv in (["data", "stats", str(tmp_path), "--size", "64k"], ["data", "generate", "--size", "32k"],
                 ["data", "download", "nosuchbenchmark"], ["data", "generate", "--size", "32k", "--out", "x",
                                                           "--knob", "novalue"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv


@pytest.mark.skipif(not REAL_QUESTIONS_32K.is_file(), reason="real PersonaMem 32k question file not available")
def test_stats_on_questions_only_real_folder(capsys):
    rc, out, _ = run(capsys, "data", "stats", str(REAL_QUESTIONS_32K.parent), "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["questions"] == 589 and s["histories"] == 37 and s["personas"] == 20
    assert s["longest_option_accuracy"] == pytest.approx(0.516, abs=5e-4)
    assert s["questions_per_type"]["acknowledge_latest_user_preferences"] == 129
    assert s["evidence_coverage"] == 0.0
    rc, text, _ = run(capsys, "data", "stats", str(REAL_QUESTIONS_32K.parent))
    assert rc == 0 and "longest-option probe:  0.516" in text and "questions:             589" in text


def test_stats_on_full_folder(capsys, personamem_dir):
    rc, out, _ = run(capsys, "data", "stats", str(personamem_dir), "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["histories"] == 2 and s["messages"] == 17 and s["sessions"] == 3
    assert s["questions"] == 5 and s["skipped"] == {"negative_end_index": 1}
    assert s["evidence_coverage"] == 1.0 and s["evidence_source"] == "heuristic"
    assert s["questions_per_type"]["generalize_to_new_scenarios"] == 1
    assert s["history_tokens"]["max"] > s["history_tokens"]["min"] > 0
    # the fixture's gold options all happen to be the longest (like much of real PersonaMem)
    assert s["longest_option_accuracy"] == 1.0


def test_stats_on_a_folder_with_an_absurdly_nested_meta_json(capsys, tmp_path, personamem_dir):
    """meta.json only names the folder (synthetic or personamem): a 100k-deep one is "not ours",
    never a RecursionError traceback."""
    import shutil

    folder = tmp_path / "deep"
    shutil.copytree(personamem_dir, folder)
    (folder / "meta.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    rc, out, err = run(capsys, "data", "stats", str(folder), "--json")
    assert rc == 0 and "Traceback" not in err
    assert json.loads(out)["name"].startswith("personamem-")


def test_stats_failures_exit_1(capsys, tmp_path):
    rc, _, err = run(capsys, "data", "stats", "no-such-thing")
    assert rc == 1 and "neither a folder nor a dataset id" in err
    rows = question_rows()
    rows[2]["all_options"] = "not a list"
    write_personamem(tmp_path / "bad", rows=rows)
    rc, _, err = run(capsys, "data", "stats", str(tmp_path / "bad"))
    assert rc == 1 and "questions_32k.csv, row 3, line 4, field 'all_options'" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run(capsys, "data", "stats", str(tmp_path / "empty"))
    assert rc == 1 and "no PersonaMem" in err


def test_download_command(capsys, tmp_path):
    hub = FakeHub()
    try:
        src = write_personamem(tmp_path / "src", "128k")
        for p in src.iterdir():
            hub.put_dataset_file(p.name, p.read_bytes())
        dest = tmp_path / "dest"
        rc, out, _ = run(capsys, "data", "download", "personamem", "--split", "128k", "--endpoint", hub.url,
                         "--dest", str(dest), "--backend", "urllib", "--no-progress", "--json")
        assert rc == 0
        assert json.loads(out) == {n: str(dest / n) for n in ("questions_128k.csv", "shared_contexts_128k.jsonl")}
        # 32k has published digests; fixture bytes must be rejected with exit 1 and nothing written
        for p in write_personamem(tmp_path / "src32", "32k").iterdir():
            hub.put_dataset_file(p.name, p.read_bytes())
        rc, _, err = run(capsys, "data", "download", "personamem", "--split", "32k", "--endpoint", hub.url,
                         "--dest", str(tmp_path / "d32"), "--backend", "urllib", "--no-progress")
        assert rc == 1 and "sha256 mismatch" in err
        assert list((tmp_path / "d32").iterdir()) == []
    finally:
        hub.close()


@pytest.fixture
def fake_synthetic(monkeypatch):
    """A stand-in synthetic module that records calls (the real generator is tested separately)."""
    import comam_env.data.synthetic as real_synthetic

    calls = []
    mod = types.ModuleType("comam_env.data.synthetic")

    def generate(size, seed, out_dir, **knobs):
        calls.append(("generate", size, seed, Path(out_dir), knobs))
        write_personamem(Path(out_dir), "1M" if size == "1m" else size)

    def load_synthetic(size, seed=0, **knobs):
        calls.append(("load", size, seed, knobs))
        h = History("h", ("user",), ("I like tea.",), (0,))
        return Dataset(f"synthetic-{size}", {"h": h},
                       (Question("q", "h", "suggest_new_ideas", "suggest_new_ideas", "?", ("tea", "coffee!"),
                                 "a", (0,), 1),))

    mod.generate, mod.load_synthetic = generate, load_synthetic
    mod.SyntheticConfig = real_synthetic.SyntheticConfig  # the knob flags are built from the real config
    monkeypatch.setitem(sys.modules, "comam_env.data.synthetic", mod)
    # load_dataset memoises datasets per process: keep the stand-in's datasets out of later tests.
    clear_dataset_cache()
    yield calls
    clear_dataset_cache()


def test_generate_passes_size_seed_and_knobs(capsys, tmp_path, fake_synthetic):
    out_dir = tmp_path / "gen"
    rc, out, _ = run(capsys, "data", "generate", "--size", "32K", "--seed", "7", "--out", str(out_dir),
                     "--knob", "filler_ratio=0.5", "--knob", "n-updates=3", "--knob", "style=plain", "--json")
    assert rc == 0
    assert fake_synthetic == [("generate", "32k", 7, out_dir,
                               {"filler_ratio": 0.5, "n_updates": 3, "style": "plain"})]
    assert set(json.loads(out)["files"]) == {"questions_32k.csv", "shared_contexts_32k.jsonl"}


def test_generate_bad_knob_exit_1(capsys, tmp_path, monkeypatch):
    import comam_env.data.synthetic as real_synthetic

    mod = types.ModuleType("comam_env.data.synthetic")

    def generate(size, seed, out_dir, *, filler_ratio=0.3):
        raise AssertionError("not reached")

    mod.generate = generate
    mod.SyntheticConfig = real_synthetic.SyntheticConfig  # the knob flags are built from the real config
    monkeypatch.setitem(sys.modules, "comam_env.data.synthetic", mod)
    rc, _, err = run(capsys, "data", "generate", "--size", "32k", "--out", str(tmp_path / "g"), "--knob", "nope=1")
    assert rc == 1 and "nope" in err


def test_stats_on_dataset_id(capsys, fake_synthetic):
    rc, out, _ = run(capsys, "data", "stats", "synthetic-128k", "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["name"] == "synthetic-128k" and s["evidence_coverage"] == 1.0 and s["longest_option_accuracy"] == 0.0
    assert fake_synthetic == [("load", "128k", 0, {})]
    pytest.importorskip("comam_env.registry")
    rc, out, _ = run(capsys, "data", "stats", "comam/synthetic-32k-v0", "--json")  # an env id alias
    assert rc == 0 and json.loads(out)["name"] == "synthetic-32k"


def test_load_dataset_dispatch(tmp_path, isolated_data_env, fake_synthetic):
    folder = write_personamem(tmp_path / "pm")
    assert load_dataset("PersonaMem-32K", data_dir=folder).name == "personamem-32k"
    assert load_dataset("synthetic-1m", seed=3, filler_ratio=0.2).name == "synthetic-1m"
    assert fake_synthetic[-1] == ("load", "1m", 3, {"filler_ratio": 0.2})
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("personamem-64k")
    with pytest.raises(DataNotFoundError):
        load_dataset("personamem-128k")
    assert set(DATASET_NAMES) >= {"locomo", "synthetic-32k", "personamem-1m"}


def test_generate_and_stats_with_the_real_generator(capsys, tmp_path):
    synthetic = pytest.importorskip("comam_env.data.synthetic")
    if not hasattr(synthetic, "SyntheticConfig"):
        pytest.skip("synthetic generator without SyntheticConfig")
    out_dir = tmp_path / "gen"
    rc, _, err = run(capsys, "data", "generate", "--size", "32k", "--seed", "3", "--out", str(out_dir),
                     "--updates-per-topic", "1", "--session-turns", "15,20", "--filler-ratio", "none",
                     "--knob", "n_personas=3")
    assert rc == 0, err
    cfg = json.loads((out_dir / "meta.json").read_text())["config"]
    assert (cfg["updates_per_topic"], list(cfg["session_turns"]), cfg["filler_ratio"], cfg["n_personas"]) == (
        1, [15, 20], None, 3)
    rc, out, _ = run(capsys, "data", "stats", str(out_dir), "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["name"] == "synthetic-32k" and s["histories"] == 3 and s["profiles"] == 3
    assert s["evidence_coverage"] == 1.0 and s["evidence_source"].endswith("evidence.jsonl")
    with pytest.raises(SystemExit) as exc:
        main(["data", "generate", "--size", "32k", "--out", str(out_dir), "--updates-per-topic", "two"])
    assert exc.value.code == 2


def test_stats_takes_a_file_as_well_as_a_folder(capsys, tmp_path, personamem_dir):
    from comam_env.data.locomo_fixture import write_locomo_fixture

    path = write_locomo_fixture(tmp_path / "lc", n_samples=2)
    renamed = path.rename(tmp_path / "lc" / "my_locomo.json")  # any file name
    rc, out, _ = run(capsys, "data", "stats", str(renamed), "--json")
    assert rc == 0 and json.loads(out)["questions"] == 28 and json.loads(out)["histories"] == 2
    rc, out, _ = run(capsys, "data", "stats", str(personamem_dir / "questions_32k.csv"), "--json")
    assert rc == 0 and json.loads(out)["questions"] == 5
    (tmp_path / "notes.txt").write_text("hello")
    rc, _, err = run(capsys, "data", "stats", str(tmp_path / "notes.txt"))
    assert rc == 1 and "not a LoCoMo .json file" in err


def test_stats_on_a_malformed_locomo_file_names_file_and_field(capsys, tmp_path):
    from comam_env.data.locomo_fixture import make_locomo_samples

    data = make_locomo_samples(n_samples=1)
    data[0]["qa"][2]["category"] = 9
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    rc, _, err = run(capsys, "data", "stats", str(path))
    assert rc == 1 and str(path) in err and "qa[2].category" in err and "Traceback" not in err
