"""Hidden tracks: secret-seeded question sets, refusal without a secret, redaction, no leak of the secret."""

from __future__ import annotations

import json
import os

import pytest

from comam_env.cli import main
from leaderboard import hidden as H
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
        H.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "o")
    monkeypatch.setenv(H.SECRET_ENV, "1234")
    with pytest.raises(H.HiddenTrackError, match="too short"):
        H.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(H.HiddenTrackError, match="unknown hidden track"):
        H.run_agent(f"{__name__}:make_longest_agent", "synthetic-9k-hidden", tmp_path / "o", secret=SECRET_A)


def test_run_agent_writes_a_scored_entry_without_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv(H.SECRET_ENV, SECRET_A)
    out = tmp_path / "entry"
    score = H.run_agent(f"{__name__}:make_longest_agent", "synthetic-32k-hidden", out, knobs=KNOBS, progress=False)
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
    score = H.run_agent(f"{__name__}:make_cheater", "synthetic-32k-hidden", tmp_path / "c", secret=SECRET_B,
                        knobs=KNOBS, progress=False)
    split = H.hidden_split("synthetic-32k-hidden", SECRET_B, **KNOBS)
    share_a = sum(split.gold.question(q).answer == "a" for q in split.question_ids) / len(split.question_ids)
    assert score["accuracy"] == pytest.approx(share_a) and score["accuracy"] < 1.0


def test_agent_submission_folder_and_bad_entry_points(tmp_path, capsys):
    meta = base_meta(kind="agent", track="synthetic-32k-hidden", entry_point=f"{__name__}:make_longest_agent",
                     name="folder agent")
    folder = write_entry(tmp_path / "agent", meta, None)
    assert validate_submission(folder).ok
    score = H.run_agent(str(folder), "synthetic-32k-hidden", tmp_path / "out", secret=SECRET_A, knobs=KNOBS,
                        progress=False, limit=3)
    assert score["n_questions"] == 3 and score["name"] == "folder agent"
    with pytest.raises(H.HiddenTrackError, match="returned int: expected a System"):
        H.run_agent(f"{__name__}:make_nothing", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A,
                    knobs=KNOBS, progress=False)
    with pytest.raises(H.HiddenTrackError, match="cannot import"):
        H.run_agent("no_such_module_xyz:make", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A, knobs=KNOBS)
    with pytest.raises(H.HiddenTrackError, match="neither a submission"):
        H.run_agent("not an entry", "synthetic-32k-hidden", tmp_path / "x", secret=SECRET_A)
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
