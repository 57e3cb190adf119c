"""Hostile submissions: every malformed entry becomes a located validation error, never a traceback,
and one bad entry never blocks the rest of the leaderboard (issue 16, item 3)."""

from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from leaderboard import validate as V
from leaderboard.render import END_MARK, START_MARK, RenderError, render
from tests.leaderboard.conftest import base_meta, gold_lines, write_entry


def _messages(report) -> str:
    return "\n".join(str(i) for i in report.issues)


def _zip_of(folder: Path, out: Path, method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    return out


def test_lone_surrogate_in_metadata_or_predictions_is_an_error(tmp_path, small_ds):
    entry = write_entry(tmp_path / "s", None, gold_lines(small_ds))
    (entry / "metadata.json").write_text(json.dumps(base_meta(name="bad \ud800 name")), encoding="utf-8")
    report = V.validate_submission(entry)
    assert not report.ok and "lone surrogate \\ud800" in _messages(report)
    # a proper pair (an emoji written as an escape) is fine
    (entry / "metadata.json").write_text(json.dumps(base_meta(name="ok \U0001F600")), encoding="utf-8")
    assert V.validate_submission(entry).ok
    lines = [json.dumps(line) for line in gold_lines(small_ds)]
    lines[1] = lines[1].replace('"retrieved_memory": "m"', '"retrieved_memory": "m\\udfff"')
    (entry / "predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    issue = next(i for i in V.validate_submission(entry).issues if "lone surrogate" in i.message)
    assert issue.file == "predictions.jsonl" and issue.line == 2


def test_huge_integers_are_errors_not_overflows(tmp_path, small_ds):
    lines = [json.dumps(line) for line in gold_lines(small_ds)]
    lines[0] = lines[0].replace('"tokens_in": 10', '"tokens_in": 1' + "0" * 400)
    lines[1] = lines[1].replace('"tokens_in": 11', '"tokens_in": 9007199254740993')  # 2**53 + 1
    entry = write_entry(tmp_path / "big", base_meta(), None, "\n".join(lines) + "\n")
    report = V.validate_submission(entry)
    first = next(i for i in report.issues if i.line == 1)
    assert "too large" in first.message and "401 digits" in first.message
    assert any(i.line == 2 and "too large" in i.message for i in report.issues)
    huge = [dict(line, latency_ms=1e308) for line in gold_lines(small_ds)]  # finite, but the sum is not
    report = V.validate_submission(write_entry(tmp_path / "slow", base_meta(), huge))
    assert any(i.field == "latency_ms" and "must be <= " in i.message for i in report.issues)
    meta = base_meta(seeds=[10 ** 400])
    report = V.validate_submission(write_entry(tmp_path / "bigmeta", meta, gold_lines(small_ds)))
    assert any(i.file == "metadata.json" and "too large" in i.message for i in report.issues)


def test_zip_whose_size_header_lies_is_an_error(tmp_path, small_ds):
    entry = write_entry(tmp_path / "e", base_meta(), gold_lines(small_ds))
    data = bytearray(_zip_of(entry, tmp_path / "lie.zip", zipfile.ZIP_STORED).read_bytes())
    # shrink the declared size of metadata.json in its local header and the central directory
    size = (entry / "metadata.json").stat().st_size
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        while pos >= 0:
            name_off = 30 if sig == b"PK\x03\x04" else 46
            name_len = struct.unpack_from("<H", data, pos + (26 if sig == b"PK\x03\x04" else 28))[0]
            if bytes(data[pos + name_off:pos + name_off + name_len]) == b"metadata.json":
                struct.pack_into("<I", data, pos + off, size // 2)
            pos = data.find(sig, pos + 4)
    (tmp_path / "lie.zip").write_bytes(bytes(data))
    report = V.validate_submission(tmp_path / "lie.zip")
    assert not report.ok and "corrupt archive data" in _messages(report), _messages(report)


def test_corrupt_deflate_stream_and_truncated_gzip_are_errors(tmp_path, small_ds):
    entry = write_entry(tmp_path / "e", base_meta(), gold_lines(small_ds))
    data = bytearray(_zip_of(entry, tmp_path / "bad.zip").read_bytes())
    pos = data.find(b"PK\x03\x04")
    name_len, extra_len = struct.unpack_from("<HH", data, pos + 26)
    start = pos + 30 + name_len + extra_len
    for k in range(start, start + 40):
        data[k] ^= 0xFF  # garble the compressed bytes of the first member
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    report = V.validate_submission(tmp_path / "bad.zip")
    assert not report.ok and "corrupt archive data" in _messages(report), _messages(report)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for f in sorted(entry.iterdir()):
            tf.add(f, f.name)
    (tmp_path / "cut.tar.gz").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    report = V.validate_submission(tmp_path / "cut.tar.gz")
    assert not report.ok and ("corrupt archive data" in _messages(report) or "not a readable tar" in _messages(report))


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://x.org)[y](javascript:alert(1)",
                                 "https://x.org/\nevil", "data:text/html,<script>", "https://user@x.org/"])
def test_only_plain_http_urls_are_accepted(tmp_path, small_ds, url):
    report = V.validate_submission(write_entry(tmp_path / "u", base_meta(url=url), gold_lines(small_ds)))
    assert any(i.field == "url" for i in report.issues), _messages(report)


def test_safe_url():
    assert V.safe_url("https://arxiv.org/abs/2603.12631") == "https://arxiv.org/abs/2603.12631"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:x", "//x.org", "https://", "http://a b", None, 5):
        assert V.safe_url(bad) is None, bad


def _hidden_run(folder: Path, score: dict) -> Path:
    meta = base_meta(kind="hidden-run", track="synthetic-32k-hidden", name="forged")
    write_entry(folder, meta, [{"question_id": "h-0000000000000000", "answer": "a"}])
    (folder / "score.json").write_text(json.dumps(score), encoding="utf-8")
    return folder


GOOD_SCORE = {"kind": "hidden-run", "metric": "accuracy", "n_questions": 1, "accuracy": 0.5,
              "accuracy_ci95": [0.1, 0.9], "per_type": {}, "probes": {}, "margin_over_best_probe": None,
              "efficiency": {k: {"n": 0, "mean": None, "median": None} for k in ("tokens_in", "tokens_out", "latency_ms")}}


@pytest.mark.parametrize("field,junk", [("accuracy_ci95", "oops"), ("accuracy_ci95", [0.1]),
                                        ("per_type", {"t": {"n": 1, "accuracy": "high", "ci95": None}}),
                                        ("efficiency", {"tokens_in": 5}), ("probes", {"p": 3}), ("accuracy", 1.5),
                                        ("colour", "blue")])
def test_junk_in_a_hidden_runs_score_json_is_a_validation_error(tmp_path, field, junk):
    assert V.validate_submission(_hidden_run(tmp_path / "ok", GOOD_SCORE)).ok
    report = V.validate_submission(_hidden_run(tmp_path / "junk", dict(GOOD_SCORE, **{field: junk})))
    assert not report.ok and any(i.file == "score.json" and (i.field or "").startswith(field)
                                 for i in report.issues), _messages(report)


def _readme(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n{START_MARK}\n{END_MARK}\n", encoding="utf-8")
    return readme


def test_one_bad_entry_never_blocks_the_leaderboard(tmp_path, small_ds, monkeypatch):
    subs = tmp_path / "subs"
    write_entry(subs / "good", base_meta(name="Good system"), gold_lines(small_ds))
    write_entry(subs / "surrogate", None, gold_lines(small_ds))
    (subs / "surrogate" / "metadata.json").write_text(json.dumps(base_meta(name="x\udc00")), encoding="utf-8")
    _hidden_run(subs / "junk-score", dict(GOOD_SCORE, accuracy_ci95="oops"))
    write_entry(subs / "explodes", base_meta(name="Explodes"), gold_lines(small_ds))
    import leaderboard.score as S

    real = S.score_entry

    def flaky(path, **kw):  # an unexpected scorer failure on one entry
        if Path(path).name == "explodes":
            raise ArithmeticError("boom")
        return real(path, **kw)

    monkeypatch.setattr(S, "score_entry", flaky)
    readme, page = _readme(tmp_path), tmp_path / "index.html"
    with pytest.raises(RenderError) as err:
        render(subs, readme, page)
    for name in ("surrogate", "junk-score", "explodes: cannot be scored (ArithmeticError: boom)"):
        assert name in str(err.value)
    result = render(subs, readme, page, skip_invalid=True)
    assert result["entries"] == ["good"] and len(result["skipped"]) == 3
    assert "Good system" in readme.read_text() and "Good system" in page.read_text()


def test_markup_in_metadata_is_escaped_in_the_readme_and_the_page(tmp_path, small_ds):
    subs = tmp_path / "subs"
    meta = base_meta(name="<script>alert(1)</script> *bold* [x](javascript:y)",
                     training_method="<img src=x onerror=alert(1)>", models=["m|pipe", "`tick`"],
                     url="https://example.org/a_(b)")
    write_entry(subs / "evil", meta, gold_lines(small_ds))
    readme, page = _readme(tmp_path), tmp_path / "index.html"
    render(subs, readme, page)
    text = readme.read_text()
    assert "<script>" not in text and "<img" not in text
    assert not re.search(r"(?<!\\)\]\(javascript:", text)  # the only "](" left is escaped: "\](" is text
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\\*bold\\*" in text and "m\\|pipe" in text and "\\`tick\\`" in text
    assert "(https://example.org/a_%28b%29)" in text  # parentheses cannot end the link early
    html = page.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and 'href="javascript:' not in html
    assert 'href="https://example.org/a_(b)"' in html


def test_a_non_utf8_folder_name_and_forged_probe_figures_do_not_reach_the_page(tmp_path, small_ds):
    import os

    subs = tmp_path / "subs"
    write_entry(subs / "good", base_meta(name="Good system"), gold_lines(small_ds))
    bad = os.fsencode(str(subs)) + b"/bad\xff-name"
    os.makedirs(bad)
    readme, page = _readme(tmp_path), tmp_path / "index.html"
    result = render(subs, readme, page, skip_invalid=True)  # used to raise UnicodeEncodeError writing README.md
    assert result["entries"] == ["good"] and "bad\\xff-name: folder name is not valid UTF-8" in result["skipped"][0]
    # a hidden run's self-written probe figures: names are restricted, and never shown as the track's probes
    junk = dict(GOOD_SCORE, probes={"<img src=x onerror=alert(1)>": {"accuracy": 0.1, "margin": 0.4}})
    assert any(i.field == "probes" for i in V.validate_submission(_hidden_run(tmp_path / "p1", junk)).issues)
    forged = dict(GOOD_SCORE, probes={"longest-option": {"accuracy": 0.01, "margin": 0.49}})
    _hidden_run(subs / "forged", forged)
    assert render(subs, readme, page, skip_invalid=True)["entries"] == ["forged", "good"]
    assert "0.010" not in readme.read_text() and "longest-option 0.010" not in page.read_text()


HOSTILE_VALUES = [None, True, -1, 0, 2 ** 60, 1e308, -0.0, "", " ", "x" * 6000, "<script>alert(1)</script>",
                  "\u202e\u0000", [], [None], {}, {"a": {"b": [1]}}, "2026-02-30", "javascript:x"]


def _never_crashes(folder: Path) -> None:
    """Validation never raises; when it passes, scoring and both renderings never raise either."""
    from leaderboard.render import group_by_track, html_page, markdown_tables
    from leaderboard.score import dumps, score_entry

    report = V.validate_submission(folder)
    report.format(), json.dumps(report.to_dict())
    if report.ok and report.submission.kind != "agent":
        score = score_entry(folder)
        dumps(score)
        groups = group_by_track([score])
        markdown_tables(groups).encode("utf-8")
        html_page(groups).encode("utf-8")


def test_every_metadata_field_with_hostile_values(tmp_path, small_ds):
    fields = list(base_meta(kind="reported", reported_accuracy=0.5, reported_source="x", verified=False)) + [
        "kind", "split_seed", "questions_sha256", "command", "system", "notes", "entry_point", "generator_knobs"]
    n = 0
    for field in dict.fromkeys(fields):
        for k, value in enumerate(HOSTILE_VALUES):
            for kind in ("predictions", "reported"):
                extra = {} if kind == "predictions" else {"kind": "reported", "reported_accuracy": 0.5,
                                                          "reported_source": "x", "verified": False}
                meta = dict(base_meta(**extra), **{field: value})
                folder = write_entry(tmp_path / f"{field}-{k}-{kind}", meta,
                                     gold_lines(small_ds) if kind == "predictions" else None)
                _never_crashes(folder)
                n += 1
    assert n > 500


def test_every_prediction_and_score_field_with_hostile_values(tmp_path, small_ds):
    for field in ("question_id", "answer", "retrieved_memory", "tokens_in", "tokens_out", "latency_ms", "extra"):
        for k, value in enumerate(HOSTILE_VALUES):
            lines = gold_lines(small_ds)
            lines[0][field] = value
            _never_crashes(write_entry(tmp_path / f"p-{field}-{k}", base_meta(), lines))
    for field in list(GOOD_SCORE) + ["n_correct", "bootstrap", "signature", "info"]:
        for k, value in enumerate(HOSTILE_VALUES):
            _never_crashes(_hidden_run(tmp_path / f"s-{field}-{k}", dict(GOOD_SCORE, **{field: value})))


def test_damaged_archives_of_every_format_are_errors_never_tracebacks(tmp_path, small_ds):
    """Random byte flips and truncations of valid gzip/xz/bz2/plain tars and deflate/stored/bzip2/lzma
    zips: validation reports a problem or passes, and never raises (it used to raise
    NotImplementedError, UnicodeDecodeError and LZMAError from zipfile's internals)."""
    import random

    entry = write_entry(tmp_path / "e", base_meta(), gold_lines(small_ds))
    blobs = []
    for mode, suffix in (("w:gz", ".tar.gz"), ("w:xz", ".tgz"), ("w:bz2", ".tar.gz"), ("w", ".tgz")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tf:
            for f in sorted(entry.iterdir()):
                tf.add(f, f.name)
        blobs.append((suffix, buf.getvalue()))
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        blobs.append((".zip", _zip_of(entry, tmp_path / f"m{method}.zip", method).read_bytes()))
    rng = random.Random(0)
    n_invalid = 0
    for k, (suffix, data) in enumerate(blobs):
        assert V.validate_submission(_write(tmp_path / f"ok{k}{suffix}", data)).ok
        for trial in range(25):
            damaged = bytearray(data)
            for _ in range(rng.choice((1, 4, 16))):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            if trial % 8 == 0:
                damaged = damaged[: rng.randrange(len(damaged))]
            report = V.validate_submission(_write(tmp_path / f"d{k}-{trial}{suffix}", bytes(damaged)))
            report.format()
            n_invalid += not report.ok
    assert n_invalid > 120  # most damage is detected (a flipped byte in a stored zip's text may stay valid JSON)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
