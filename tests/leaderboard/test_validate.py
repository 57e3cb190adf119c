"""Strict validation: each class of malformed submission is rejected with a located message."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import zipfile

import pytest

from leaderboard import validate as V
from tests.leaderboard.conftest import base_meta, gold_lines, validation_ids, write_entry


def _errors(report) -> list[str]:
    return [str(i) for i in report.issues]


def _one(report, *needles) -> V.Issue:
    hits = [i for i in report.issues if all(n in str(i) for n in needles)]
    assert hits, f"no issue with {needles!r} in:\n" + "\n".join(_errors(report))
    return hits[0]


def test_valid_submission_passes(tmp_path, small_ds):
    sub = write_entry(tmp_path / "ok", base_meta(), gold_lines(small_ds))
    report = V.validate_submission(sub)
    assert report.ok, report.format()
    assert len(report.submission.predictions) == len(validation_ids(small_ds))
    assert "valid" in report.format()


def test_missing_duplicate_unknown_and_wrong_split_ids(tmp_path, small_ds):
    ids = validation_ids(small_ds)
    train_id = V.split_ids("synthetic-32k", small_ds, "train", 0)[0]
    lines = gold_lines(small_ds, ids[2:])  # ids[0], ids[1] missing
    lines.append(dict(lines[0]))  # duplicate
    lines.append({"question_id": "no-such-question", "answer": "a"})
    lines.append({"question_id": train_id, "answer": "a"})
    report = V.validate_submission(write_entry(tmp_path / "e", base_meta(), lines))
    assert not report.ok
    dup = _one(report, "duplicate question id", ids[2])
    assert dup.file == "predictions.jsonl" and dup.field == "question_id" and dup.line == len(lines) - 2
    assert "first on line 1" in dup.message
    unk = _one(report, "unknown question id", "no-such-question")
    assert unk.line == len(lines) - 1 and unk.field == "question_id"
    wrong = _one(report, train_id, "belongs to the 'train' split, not the declared split 'validation'")
    assert wrong.line == len(lines)
    missing = _one(report, "have no prediction")
    assert f"2 of the {len(ids)} questions" in missing.message and ids[0] in missing.message


def test_synthetic_validation_is_the_envs_split_by_persona(tmp_path, small_ds):
    """The track's validation questions are the ones its env holds out (whole personas); predictions
    for a question split (the rule before, which put training personas in validation) are refused."""
    from comam_env.data.splits import split_question_ids

    ids = validation_ids(small_ds)
    train = V.split_ids("synthetic-32k", small_ds, "train", 0)
    persona = {q.question_id: q.persona_id for q in small_ds.questions}
    assert len({persona[q] for q in ids}) == 1 and not {persona[q] for q in ids} & {persona[q] for q in train}
    by_question = split_question_ids(small_ds, "validation", seed=0, by="question")
    assert set(by_question) - set(ids)
    report = V.validate_submission(write_entry(tmp_path / "q", base_meta(), gold_lines(small_ds, by_question)))
    assert not report.ok
    stray = next(q for q in by_question if q in set(train))
    _one(report, stray, "belongs to the 'train' split, not the declared split 'validation'")


def test_malformed_options_rejected(tmp_path, small_ds):
    lines = gold_lines(small_ds)
    lines[0]["answer"] = "e"
    lines[1]["answer"] = "(b)"
    lines[2]["answer"] = "B"
    lines[3]["answer"] = ""  # explicit no-answer is allowed
    report = V.validate_submission(write_entry(tmp_path / "o", base_meta(), lines))
    for n, bad in ((1, "'e'"), (2, "'(b)'"), (3, "'B'")):
        issue = _one(report, bad, "is not an option of question")
        assert issue.line == n and issue.field == "answer" and issue.file == "predictions.jsonl"
        assert "expected one of a, b, c, d" in issue.message
    assert not any(i.line == 4 for i in report.issues)


def test_nan_infinite_and_negative_numbers(tmp_path, small_ds):
    lines = [json.dumps(l) for l in gold_lines(small_ds)]
    lines[0] = lines[0].replace('"latency_ms": 0.0', '"latency_ms": NaN')
    lines[1] = lines[1].replace('"latency_ms": 1.5', '"latency_ms": 1e999')
    obj = json.loads(lines[2]); obj["tokens_in"] = -5; lines[2] = json.dumps(obj)
    obj = json.loads(lines[3]); obj["latency_ms"] = -0.5; lines[3] = json.dumps(obj)
    obj = json.loads(lines[4]); obj["tokens_out"] = 2.5; lines[4] = json.dumps(obj)
    obj = json.loads(lines[5]); obj["tokens_in"] = True; lines[5] = json.dumps(obj)
    report = V.validate_submission(write_entry(tmp_path / "n", base_meta(), None, "\n".join(lines) + "\n"))
    assert _one(report, "NaN is not valid JSON").line == 1
    assert _one(report, "1e999 overflows to infinity").line == 2
    neg = _one(report, "must be >= 0, got -5")
    assert neg.line == 3 and neg.field == "tokens_in"
    assert _one(report, "must be >= 0, got -0.5").field == "latency_ms"
    assert _one(report, "must be of type integer, got number 2.5").line == 5
    assert _one(report, "must be of type integer, got boolean").line == 6


def test_unknown_fields_and_bad_json_lines(tmp_path, small_ds):
    lines = [json.dumps(l) for l in gold_lines(small_ds)]
    obj = json.loads(lines[0]); obj["confidence"] = 0.9; lines[0] = json.dumps(obj)
    lines[1] = lines[1][:-1]  # truncated JSON
    lines[2] = '{"question_id": "x", "question_id": "y", "answer": "a"}'
    lines.insert(3, "")
    report = V.validate_submission(write_entry(tmp_path / "u", base_meta(), None, "\n".join(lines) + "\n"))
    unk = _one(report, "unknown field")
    assert unk.line == 1 and unk.field == "confidence"
    assert _one(report, "invalid JSON").line == 2
    assert _one(report, "duplicate key 'question_id'").line == 3
    assert _one(report, "empty line").line == 4


def test_metadata_errors_name_the_field(tmp_path, small_ds):
    meta = base_meta(date="2026-02-30", seeds=[1, 1], colour="blue", url="ftp://x", split="test",
                     track="synthetic-64k")
    del meta["authors"]
    report = V.validate_submission(write_entry(tmp_path / "m", meta, gold_lines(small_ds)))
    fields = {i.field: i.message for i in report.issues if i.file == "metadata.json"}
    assert "not a real calendar date" in fields["date"]
    assert "duplicates an earlier item" in fields["seeds[1]"]
    assert "unknown field" in fields["colour"]
    assert "invalid format" in fields["url"]
    assert "must be one of" in fields["split"]
    assert "is required but missing" in fields["authors"]
    assert "unknown track 'synthetic-64k'" in fields["track"]
    assert len(report.issues) >= 7  # all collected, not only the first


def test_missing_metadata_and_unknown_files(tmp_path, small_ds):
    sub = write_entry(tmp_path / "f", None, gold_lines(small_ds))
    (sub / "model.pkl").write_bytes(b"\x80\x04not unpickled")
    (sub / "extra").mkdir()
    report = V.validate_submission(sub)
    assert _one(report, "metadata.json", "missing")
    assert _one(report, "model.pkl", "unknown file")
    assert _one(report, "extra", "sub-folders are not allowed")


def test_wrong_kind_files_and_reported_entry(tmp_path, small_ds):
    rep = base_meta(kind="reported", reported_accuracy=0.64, reported_source="paper, Table 2", verified=False)
    ok = V.validate_submission(write_entry(tmp_path / "r", rep, None))
    assert ok.ok, ok.format()
    assert ok.submission.kind == "reported" and ok.submission.predictions is None
    bad = V.validate_submission(write_entry(tmp_path / "r2", dict(rep, verified=True), gold_lines(small_ds)))
    assert _one(bad, "predictions.jsonl", "a reported number has no predictions")
    assert _one(bad, "field 'verified'", "must be false")
    no_kind = V.validate_submission(write_entry(tmp_path / "r3", base_meta(reported_accuracy=0.5), gold_lines(small_ds)))
    assert _one(no_kind, "field 'reported_accuracy'", "not allowed")
    no_preds = V.validate_submission(write_entry(tmp_path / "r4", base_meta(), None))
    assert _one(no_preds, "predictions.jsonl", "missing (required for a 'predictions' entry)")


def test_oversize_files_rejected(tmp_path, small_ds, monkeypatch):
    sub = write_entry(tmp_path / "big", base_meta(), gold_lines(small_ds))
    monkeypatch.setitem(V.LIMITS, "predictions.jsonl", 100)
    report = V.validate_submission(sub)
    issue = _one(report, "predictions.jsonl", "limit 100")
    assert "bytes" in issue.message


def test_symlink_in_folder_rejected(tmp_path, small_ds):
    sub = write_entry(tmp_path / "s", base_meta(), None)
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("".join(json.dumps(l) + "\n" for l in gold_lines(small_ds)))
    os.symlink(target, sub / "predictions.jsonl")
    report = V.validate_submission(sub)
    assert _one(report, "predictions.jsonl", "symlinks are not allowed")


def test_questions_fingerprint_detects_changed_data(tmp_path, small_ds):
    ids = validation_ids(small_ds)
    good = V.questions_fingerprint(small_ds, ids)
    assert V.validate_submission(write_entry(tmp_path / "fp", base_meta(questions_sha256=good), gold_lines(small_ds))).ok
    report = V.validate_submission(write_entry(tmp_path / "fp2", base_meta(questions_sha256="0" * 64), gold_lines(small_ds)))
    assert "are not the ones these predictions were made on" in _one(report, "questions_sha256").message


def test_error_cap_counts_the_rest(tmp_path, small_ds):
    lines = [{"question_id": f"bogus-{i}", "answer": "a"} for i in range(50)]
    report = V.validate_submission(write_entry(tmp_path / "cap", base_meta(), lines), cap=10)
    assert len(report.issues) == 10 and report.dropped > 0
    assert f"... and {report.dropped} more errors not shown" in report.format()


# --------------------------------------------------------------------------- archives


def _files(small_ds) -> dict[str, bytes]:
    return {"metadata.json": json.dumps(base_meta()).encode(),
            "predictions.jsonl": "".join(json.dumps(l) + "\n" for l in gold_lines(small_ds)).encode()}


def test_valid_archives(tmp_path, small_ds):
    zpath = tmp_path / "entry.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in _files(small_ds).items():
            zf.writestr(f"entry/{name}", data)
    report = V.validate_submission(zpath)
    assert report.ok, report.format()
    assert report.submission.name == "entry"
    tpath = tmp_path / "entry.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        for name, data in _files(small_ds).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert V.validate_submission(tpath).ok


def test_zip_traversal_and_symlink_members(tmp_path, small_ds):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in _files(small_ds).items():
            zf.writestr(name, data)
        zf.writestr("../escape.txt", b"x")
        zf.writestr("/etc/abs.txt", b"x")
        link = zipfile.ZipInfo("link.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    report = V.validate_submission(zpath)
    assert _one(report, "evil.zip", "'../escape.txt'", "path traversal")
    assert _one(report, "evil.zip", "/etc/abs.txt", "absolute path")
    assert _one(report, "evil.zip", "link.json", "symlinks are not allowed")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "escape.txt").exists()


def test_tar_symlink_hardlink_device_and_traversal(tmp_path, small_ds):
    tpath = tmp_path / "evil.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        for name, data in _files(small_ds).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, kind in (("sym", tarfile.SYMTYPE), ("hard", tarfile.LNKTYPE), ("dev", tarfile.CHRTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info)
        info = tarfile.TarInfo("../../up.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    report = V.validate_submission(tpath)
    assert _one(report, "'sym'", "symlinks are not allowed")
    assert _one(report, "'hard'", "hard links are not allowed")
    assert _one(report, "'dev'", "not a regular file")
    assert _one(report, "'../../up.txt'", "path traversal")


def test_archive_member_too_large(tmp_path, small_ds, monkeypatch):
    zpath = tmp_path / "big.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in _files(small_ds).items():
            zf.writestr(name, data)
    monkeypatch.setitem(V.LIMITS, "predictions.jsonl", 200)
    assert _one(V.validate_submission(zpath), "big.zip", "predictions.jsonl", "limit for predictions.jsonl is 200")


def test_not_an_archive(tmp_path):
    bad = tmp_path / "junk.zip"
    bad.write_bytes(b"not a zip")
    assert _one(V.validate_submission(bad), "junk.zip", "not a readable zip archive")
    assert _one(V.validate_submission(tmp_path / "absent"), "not found")


def test_validation_never_imports_submission_code(tmp_path, small_ds, monkeypatch):
    canary = tmp_path / "lb_canary_mod.py"
    canary.write_text("import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('x')\n"
                      "def make():\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    meta = base_meta(entry_point="lb_canary_mod:make")
    sub = write_entry(tmp_path / "c", meta, gold_lines(small_ds))
    (sub / "README.md").write_text("import os; os.system('touch PWNED')")
    assert V.validate_submission(sub).ok
    from leaderboard.score import score_entry

    score_entry(sub)
    assert "lb_canary_mod" not in sys.modules and not (tmp_path / "IMPORTED").exists()


def test_shipped_schemas_are_valid_draft_2020_12_and_accept_what_the_code_writes(small_ds):
    import jsonschema

    from leaderboard.schemas import SCHEMA_NAMES

    for name in SCHEMA_NAMES:
        jsonschema.Draft202012Validator.check_schema(V.load_schema(name))
    assert V.check_schema(base_meta(), "metadata") == []
    assert all(V.check_schema(line, "predictions") == [] for line in gold_lines(small_ds)[:3])
    with pytest.raises(ValueError, match="unknown schema 'nope'"):
        V.check_schema({}, "nope")


def test_integers_are_json_integers_not_floats_with_zero_fraction(tmp_path, small_ds):
    """Plain Draft 2020-12 calls 3.0 an integer; token counts must be integer literals (kept strict)."""
    line = gold_lines(small_ds)[0]
    assert V.check_schema(dict(line, tokens_in=3.0), "predictions") == [
        ("tokens_in", "must be of type integer, got number 3.0")]


def test_leaderboard_imports_only_comam_env():
    import subprocess

    code = ("import sys, leaderboard.validate, leaderboard.score, leaderboard.render, leaderboard.hidden, "
            "leaderboard.cli; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'baselines', 'agents', 'torch', 'transformers', 'sentence_transformers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_archive_with_too_many_members(tmp_path):
    zpath = tmp_path / "many.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(V.LIMITS["archive_members"] + 5):
            zf.writestr(f"f{i}.txt", b"x")
    assert _one(V.validate_submission(zpath), "many.zip", f"more than {V.LIMITS['archive_members']} members")
    tpath = tmp_path / "many.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        for i in range(V.LIMITS["archive_members"] + 5):
            info = tarfile.TarInfo(f"f{i}.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    assert _one(V.validate_submission(tpath), "many.tar.gz", "stopped reading")


def test_committed_reference_entries_are_well_formed():
    """Every entry under leaderboard/submissions passes the format checks (ids need the track data)."""
    from leaderboard import SUBMISSIONS_DIR

    entries = sorted(p for p in SUBMISSIONS_DIR.iterdir() if p.is_dir())
    complete = [p for p in entries if (p / "metadata.json").exists()]
    assert complete, "no reference entries"
    kinds = set()
    for folder in complete:
        report = V.validate_submission(folder, check_ids=False)
        assert report.ok, report.format()
        kinds.add(report.submission.kind)
        if report.submission.kind == "reported":
            assert report.submission.metadata["verified"] is False
        if report.submission.predictions is not None:
            assert (folder / "predictions.jsonl").stat().st_size < 500_000  # reference entries stay small
    assert "reported" in kinds and "predictions" in kinds
