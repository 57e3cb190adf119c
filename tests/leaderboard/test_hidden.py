"""Hidden tracks: secret-seeded question sets, refusal without a secret, redaction, no leak of the secret."""

from __future__ import annotations

import json
import os

import pytest

from comam_env.cli import main
from leaderboard import hidden as H
from leaderboard import run_agent as R
from leaderboard.validate import validate_submission
from tests.leaderboard.conftest import base_meta, write_entry

SECRET_A = "alpha-secret-0123456789"
SECRET_B = "bravo-secret-9876543210"
KNOBS = {"n_personas": 2}
SEEN: dict = {}


class _LongestAgent:
    """A System: the longest option. Records what it could see of the secret and the gold."""

    name = "longest-agent"

    def prepare(self, dataset) -> None:
        SEEN["env"] = os.environ.get(H.SECRET_ENV)
        SEEN["meta"] = dict(dataset.meta)
        SEEN["evidence"] = [q.evidence for q in dataset.questions]

    def answer(self, question, history):
        from baselines.base import Prediction
        from comam_env.probes import longest_option

        return Prediction(answer=longest_option(question), tokens_in=7, latency_ms=1.0)


class _Cheater(_LongestAgent):
    """Answers with the question's gold field — which the hidden track redacts."""

    def answer(self, question, history):
        from baselines.base import Prediction

        return Prediction(answer=question.answer, tokens_in=1, latency_ms=1.0)


def make_longest_agent():
    return _LongestAgent()


def make_cheater():
    return _Cheater()


def make_nothing():
    return 42


def _questions(split) -> set:
    return {(split.gold.question(q).query, split.gold.question(q).options) for q in split.question_ids}


def test_two_secrets_give_two_question_sets_and_one_secret_is_reproducible():
    a = H.hidden_split("synthetic-32k-hidden", SECRET_A, **KNOBS)
    a2 = H.hidden_split("synthetic-32k-hidden", SECRET_A, **KNOBS)
    b = H.hidden_split("synthetic-32k-hidden", SECRET_B, **KNOBS)
    assert a.question_ids == a2.question_ids and _questions(a) == _questions(a2)
    assert set(a.question_ids).isdisjoint(b.question_ids)
    assert _questions(a) != _questions(b)
    assert all(q.startswith("h-") and len(q) == 18 for q in a.question_ids)
    # the agent-facing copy hides gold answers, evidence, profiles and generator metadata
    assert {q.answer for q in a.redacted.questions} == {"a"} and {q.evidence for q in a.redacted.questions} == {None}
    assert dict(a.redacted.profiles) == {} and dict(a.redacted.meta) == {"track": "synthetic-32k-hidden"}
    assert any(q.answer != "a" for q in a.gold.questions)


def test_refuses_without_or_with_a_short_secret(tmp_path, monkeypatch):
    with pytest.raises(H.HiddenTrackError, match="set the environment variable COMAM_HIDDEN_SEED"):
        R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "o")
    monkeypatch.setenv(H.SECRET_ENV, "1234")
    with pytest.raises(H.HiddenTrackError, match="too short"):
        R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(H.HiddenTrackError, match="unknown hidden track"):
        R.run_agent(f"{__name__}:make_longest_agent", "synthetic-9k-hidden", tmp_path / "o", secret=SECRET_A)


def test_run_agent_writes_a_scored_entry_without_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv(H.SECRET_ENV, SECRET_A)
    out = tmp_path / "entry"
    score = R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", out, knobs=KNOBS, progress=False)
    split = H.hidden_split("synthetic-32k-hidden", SECRET_A, **KNOBS)
    qs = [split.gold.question(q) for q in split.question_ids]
    from comam_env.probes import longest_option

    assert score["n_questions"] == len(qs)
    assert score["accuracy"] == pytest.approx(sum(longest_option(q) == q.answer for q in qs) / len(qs))
    assert SEEN["env"] is None and os.environ[H.SECRET_ENV] == SECRET_A  # hidden from the agent, restored after
    assert set(SEEN["evidence"]) == {None}
    for f in out.iterdir():
        text = f.read_text()
        assert SECRET_A not in text and str(split.generator_seed) not in text, f.name
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["kind"] == "hidden-run" and meta["track"] == "synthetic-32k-hidden"
    ids = [json.loads(l)["question_id"] for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert ids == list(split.question_ids)
    # validates (format only without the secret; ids are checked when it is set and matches)
    monkeypatch.delenv(H.SECRET_ENV)
    rep = validate_submission(out)
    assert rep.ok and any("COMAM_HIDDEN_SEED" in w for w in rep.warnings)
    from leaderboard.score import score_entry

    assert score_entry(out)["accuracy"] == score["accuracy"]


def test_redaction_defeats_reading_the_gold_field(tmp_path):
    score = R.run_agent(f"{__name__}:make_cheater", "synthetic-32k-hidden", tmp_path / "c", secret=SECRET_B,
                        knobs=KNOBS, progress=False)
    split = H.hidden_split("synthetic-32k-hidden", SECRET_B, **KNOBS)
    share_a = sum(split.gold.question(q).answer == "a" for q in split.question_ids) / len(split.question_ids)
    assert score["accuracy"] == pytest.approx(share_a) and score["accuracy"] < 1.0


def test_agent_submission_folder_and_bad_entry_points(tmp_path, capsys):
    meta = base_meta(kind="agent", track="synthetic-32k-hidden", entry_point=f"{__name__}:make_longest_agent",
                     name="folder agent")
    folder = write_entry(tmp_path / "agent", meta, None)
    assert validate_submission(folder).ok
    score = R.run_agent(str(folder), "synthetic-32k-hidden", tmp_path / "out", secret=SECRET_A, knobs=KNOBS,
                        progress=False, limit=3)
    assert score["n_questions"] == 3 and score["name"] == "folder agent"
    with pytest.raises(H.HiddenTrackError, match="returned int: expected a System"):
        R.run_agent(f"{__name__}:make_nothing", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A,
                    knobs=KNOBS, progress=False)
    with pytest.raises(H.HiddenTrackError, match="cannot import"):
        R.run_agent("no_such_module_xyz:make", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A, knobs=KNOBS)
    with pytest.raises(H.HiddenTrackError, match="neither a submission"):
        R.run_agent("not an entry", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A)
    # CLI: refuses without the secret (exit 1), runs with it
    assert main(["leaderboard", "run-agent", f"{__name__}:make_longest_agent", "--track", "synthetic-32k-hidden",
                 "--out", str(tmp_path / "cli")]) == 1
    assert "COMAM_HIDDEN_SEED" in capsys.readouterr().err
    os.environ[H.SECRET_ENV] = SECRET_B
    try:
        assert main(["leaderboard", "run-agent", f"{__name__}:make_longest_agent", "--track",
                     "synthetic-32k-hidden", "--out", str(tmp_path / "cli"), "--knob", "n_personas=2",
                     "--limit", "4", "--json"]) == 0
    finally:
        del os.environ[H.SECRET_ENV]
    assert json.loads(capsys.readouterr().out)["n_questions"] == 4


# --------------------------------------------------------------------------- verification (issue 16, item 2)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _edit_json(path, **changes):
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_a_genuine_run_validates_with_the_secret_and_its_score_is_recomputed(tmp_path, monkeypatch):
    from leaderboard.score import score_entry
    from leaderboard.validate import VERIFIED

    full = R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "full", secret=SECRET_A,
                       knobs=KNOBS, progress=False, seed=3)
    R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "five", secret=SECRET_A,
                knobs=KNOBS, progress=False, limit=5)
    meta = json.loads((tmp_path / "full" / "metadata.json").read_text())
    assert meta["generator_knobs"] == KNOBS and "split_seed" not in meta  # the split seed is the secret's
    assert json.loads((tmp_path / "five" / "metadata.json").read_text())["question_limit"] == 5
    monkeypatch.setenv(H.SECRET_ENV, SECRET_A)
    for name in ("full", "five"):
        rep = validate_submission(tmp_path / name)
        assert rep.ok, rep.format()  # before: 95 errors (split redrawn with seed 0 and default knobs)
        assert rep.submission.verification == VERIFIED and not rep.warnings
    again = score_entry(tmp_path / "full", seed=3)
    assert again["verified"] is True and again["verification"] == VERIFIED
    for key in ("accuracy", "accuracy_ci95", "n_correct", "per_type", "probes"):
        assert again[key] == full[key], key
    assert score_entry(tmp_path / "five")["n_questions"] == 5


def test_forged_or_altered_hidden_runs_fail_with_the_secret_and_are_unverified_without(tmp_path, monkeypatch):
    from leaderboard.score import score_entry

    R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "real", secret=SECRET_A,
                knobs=KNOBS, progress=False)
    claimed = _copy(tmp_path / "real", tmp_path / "claimed")
    _edit_json(claimed / "score.json", accuracy=0.99)
    unsigned = _copy(claimed, tmp_path / "unsigned")
    doc = json.loads((unsigned / "score.json").read_text())
    del doc["signature"]
    (unsigned / "score.json").write_text(json.dumps(doc))
    renamed = _copy(tmp_path / "real", tmp_path / "renamed")
    _edit_json(renamed / "metadata.json", name="someone else's system")
    answers = _copy(tmp_path / "real", tmp_path / "answers")
    lines = (answers / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["answer"] = "b" if first["answer"] != "b" else "c"
    (answers / "predictions.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    # without the secret nothing can be checked: valid format, but unverified (and unranked on the page)
    rep = validate_submission(claimed)
    assert rep.ok and any("not verified" in w for w in rep.warnings)
    forged = score_entry(claimed)
    assert forged["accuracy"] == 0.99 and forged["verified"] is False and forged["verification"].startswith("unverified")
    # with the secret: one clear error each, not one per question
    monkeypatch.setenv(H.SECRET_ENV, SECRET_A)
    expected = {"claimed": "signature does not match", "renamed": "signature does not match",
                "answers": "predictions.jsonl is not the file that was signed"}
    for name, message in expected.items():
        rep = validate_submission(tmp_path / name)
        assert [(i.file, i.field) for i in rep.issues] == [("score.json", "signature")], rep.format()
        assert message in rep.issues[0].message
    # without a signature (hand-made, or older than signatures) nothing is claimed: listed unverified, not an error
    rep = validate_submission(unsigned)
    assert rep.ok and any("no signature" in w for w in rep.warnings)
    assert score_entry(unsigned)["verified"] is False and score_entry(unsigned)["accuracy"] == 0.99
    monkeypatch.setenv(H.SECRET_ENV, SECRET_B)  # another operator's secret cannot vouch for it
    rep = validate_submission(tmp_path / "real")
    assert rep.n_errors == 1 and "another secret" in rep.issues[0].message


def test_recorded_knobs_are_bounded(tmp_path, monkeypatch):
    R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "r", secret=SECRET_A,
                knobs=KNOBS, progress=False, limit=2)
    _edit_json(tmp_path / "r" / "metadata.json", generator_knobs={"n_personas": 10 ** 6, "size": "1m"})
    monkeypatch.setenv(H.SECRET_ENV, SECRET_A)
    msgs = [i.message for i in validate_submission(tmp_path / "r").issues if i.field == "generator_knobs"]
    from comam_env.data.synthetic import DEFAULT_PERSONAS

    assert any(f"'n_personas' must be an integer in [1, {DEFAULT_PERSONAS['32k']}]" in m for m in msgs)
    assert any("unknown generator knob 'size'" in m for m in msgs)
    with pytest.raises(H.HiddenTrackError, match="unknown generator knob 'seed'"):
        R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A,
                    knobs={"seed": 1})


def test_unverified_hidden_runs_are_listed_but_never_ranked(tmp_path, monkeypatch):
    from leaderboard.render import END_MARK, START_MARK, render

    subs = tmp_path / "subs"
    R.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", subs / "real", secret=SECRET_A,
                knobs=KNOBS, progress=False, name="Genuine")
    forged = _copy(subs / "real", subs / "forged")
    _edit_json(forged / "metadata.json", name="Forged")
    _edit_json(forged / "score.json", accuracy=0.99)
    readme, page = tmp_path / "README.md", tmp_path / "index.html"
    readme.write_text(f"{START_MARK}\n{END_MARK}\n")
    render(subs, readme, page)
    rows = [line for line in readme.read_text().splitlines() if "| Forged |" in line or "| Genuine |" in line]
    assert [r.split(" | ")[:3] for r in rows] == [["| –", "Forged", "hidden run, unverified"],
                                                  ["| –", "Genuine", "hidden run, unverified"]]
    monkeypatch.setenv(H.SECRET_ENV, SECRET_A)
    result = render(subs, readme, page, skip_invalid=True)
    assert result["entries"] == ["real"] and result["skipped"][0].startswith("forged: invalid")
    rows = [line for line in readme.read_text().splitlines() if "| Genuine |" in line]
    assert rows and rows[0].startswith("| 1 | Genuine | hidden run |")
