"""Scoring: hand counts, deterministic output, probe margins, reported entries, CLI exit codes."""

from __future__ import annotations

import json

import pytest

from comam_env.cli import main
from comam_env.probes import longest_option, question_similarity_option
from leaderboard.score import ScoreError, bootstrap_ci, dumps, score_entry
from tests.leaderboard.conftest import base_meta, gold_lines, validation_ids, write_entry


def _entry(tmp_path, small_ds, name="e"):
    ids = validation_ids(small_ds)
    wrong = set(ids[::3])          # every third wrong
    empty = {ids[1]}               # one unanswered
    return write_entry(tmp_path / name, base_meta(), gold_lines(small_ds, wrong=wrong, empty=empty)), ids, wrong | empty


def test_score_equals_hand_count(tmp_path, small_ds):
    sub, ids, bad = _entry(tmp_path, small_ds)
    s = score_entry(sub)
    n_right = sum(1 for q in ids if q not in bad)
    assert s["n_questions"] == len(ids)
    assert s["n_correct"] == n_right
    assert s["accuracy"] == pytest.approx(n_right / len(ids))
    assert s["n_unanswered"] == 1
    # per type, by hand
    for t, r in s["per_type"].items():
        tids = [q for q in ids if small_ds.question(q).qtype == t]
        assert r["n"] == len(tids)
        assert r["accuracy"] == pytest.approx(sum(q not in bad for q in tids) / len(tids))
    assert sum(r["n"] for r in s["per_type"].values()) == len(ids)
    # probes, by hand, on the same questions
    qs = [small_ds.question(q) for q in ids]
    lo = sum(longest_option(q) == q.answer for q in qs) / len(qs)
    qo = sum(question_similarity_option(q) == q.answer for q in qs) / len(qs)
    assert s["probes"]["longest-option"]["accuracy"] == pytest.approx(lo)
    assert s["probes"]["longest-option"]["margin"] == pytest.approx(n_right / len(ids) - lo)
    assert s["probes"]["question-only"]["accuracy"] == pytest.approx(qo)
    assert s["probes"]["random-expectation"]["accuracy"] == pytest.approx(0.25)
    assert s["margin_over_best_probe"] == pytest.approx(n_right / len(ids) - max(lo, qo, 0.25))
    # efficiency, by hand (conftest: tokens_in = 10 + i, tokens_out = i % 3, latency = 1.5 i)
    n = len(ids)
    assert s["efficiency"]["tokens_in"]["total"] == sum(10 + i for i in range(n))
    assert s["efficiency"]["tokens_out"]["mean"] == pytest.approx(sum(i % 3 for i in range(n)) / n)
    assert s["efficiency"]["latency_ms"]["mean"] == pytest.approx(1.5 * (n - 1) / 2)
    lo_ci, hi_ci = s["accuracy_ci95"]
    assert 0 <= lo_ci <= s["accuracy"] <= hi_ci <= 1 and hi_ci > lo_ci


def test_bootstrap_matches_the_harness_and_is_seeded(tmp_path, small_ds):
    from baselines.harness import bootstrap_ci as harness_ci

    sub, ids, bad = _entry(tmp_path, small_ds)
    s = score_entry(sub, seed=7, n_resamples=500)
    values = [0.0 if q in bad else 1.0 for q in ids]
    assert s["accuracy_ci95"] == list(harness_ci(values, seed=7, n_resamples=500))
    assert bootstrap_ci([1.0, 1.0]) == [1.0, 1.0]
    assert bootstrap_ci([]) is None
    many = [float(i % 3 == 0) for i in range(101)]
    assert bootstrap_ci(many, seed=1, n_resamples=101) == bootstrap_ci(many, seed=1, n_resamples=101)
    assert bootstrap_ci(many, seed=1, n_resamples=101) != bootstrap_ci(many, seed=2, n_resamples=101)


def test_same_input_scores_identically_twice(tmp_path, small_ds):
    sub, _, _ = _entry(tmp_path, small_ds)
    a, b = dumps(score_entry(sub)), dumps(score_entry(sub))
    assert a == b
    parsed = json.loads(a)
    assert list(parsed) == sorted(parsed)  # sorted keys


def test_reported_entry_has_no_invented_interval(tmp_path):
    meta = base_meta(kind="reported", reported_accuracy=0.64, reported_source="paper Table 2", verified=False)
    s = score_entry(write_entry(tmp_path / "r", meta, None))
    assert s["accuracy"] == 0.64 and s["accuracy_ci95"] is None and s["verified"] is False
    assert s["per_type"] == {} and s["probes"] == {} and s["n_questions"] is None


def test_agent_entry_is_not_scorable(tmp_path):
    meta = base_meta(kind="agent", track="synthetic-32k-hidden", entry_point="pkg.mod:make")
    with pytest.raises(ScoreError, match="run-agent"):
        score_entry(write_entry(tmp_path / "a", meta, None))


def test_cli_exit_codes_and_json(tmp_path, small_ds, capsys):
    sub, ids, bad = _entry(tmp_path, small_ds)
    assert main(["leaderboard", "validate", str(sub)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["leaderboard", "score", str(sub), "--json", "--out", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["n_correct"] == len(ids) - len(bad)
    assert (tmp_path / "s.json").read_text() == out
    assert main(["leaderboard", "score", str(sub)]) == 0
    assert "95% CI" in capsys.readouterr().out
    broken = write_entry(tmp_path / "b", base_meta(split="train"), gold_lines(small_ds))
    assert main(["leaderboard", "validate", str(broken), "--json"]) == 1
    captured = capsys.readouterr()
    rep = json.loads(captured.out.splitlines()[0])
    assert rep["valid"] is False and rep["errors"][0]["file"] == "predictions.jsonl"
    assert "1 of 1 submission(s) invalid" in captured.err
    assert main(["leaderboard", "score", str(broken)]) == 1
    assert "not the declared split 'train'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard"])
    assert exc.value.code == 2


def test_open_track_scores_token_f1_with_the_open_probes(tmp_path):
    from comam_env.data.schema import Dataset, History, Question

    h = History(history_id="h0", roles=("user",), contents=("I moved to Lisbon.",), session_starts=(0,))
    qs = tuple(Question(question_id=f"s:{i}", history_id="h0", qtype="locomo_single_hop", raw_type="1",
                        query="Where did I move?", options=(), answer="Lisbon", evidence=(0,), end_index=1)
               for i in range(2))
    ds = Dataset(name="locomo", histories={"h0": h}, questions=qs)
    lines = [{"question_id": "s:0", "answer": "Lisbon"}, {"question_id": "s:1", "answer": "Paris"}]
    sub = write_entry(tmp_path / "open", base_meta(track="locomo", split="all"), lines)
    s = score_entry(sub, dataset=ds)
    assert s["metric"] == "token_f1" and s["accuracy"] == pytest.approx(0.5)
    # the open-track probes (as in comam-env evaluate) instead of the option probes
    assert set(s["probes"]) == {"always-abstain", "question-echo"}
    assert s["probes"]["always-abstain"]["accuracy"] == 0.0  # no category-5 question here
    assert s["n_correct"] is None and s["margin_over_best_probe"] == pytest.approx(0.5)
    assert s["efficiency"]["tokens_in"]["n"] == 0 and s["efficiency"]["tokens_in"]["mean"] is None


def test_bootstrap_ci_is_the_percentile_bootstrap_computed_by_hand():
    """scipy.stats.bootstrap (comam_env.stats) gives the interval of the explicit numpy recipe."""
    import numpy as np

    x = (np.random.default_rng(7).random(97) < 0.45).astype(float)
    rng = np.random.default_rng(3)
    means = x[rng.integers(0, x.size, size=(500, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert bootstrap_ci(x, seed=3, n_resamples=500) == pytest.approx([lo, hi], abs=1e-12)
    assert bootstrap_ci(x, seed=3, n_resamples=500) == bootstrap_ci(x, seed=3, n_resamples=500)
    assert bootstrap_ci([1.0] * 5) == [1.0, 1.0] and bootstrap_ci([]) is None
