"""benchmarks/credit_ablation.py end to end on a tiny budget: budgets, paired tests, claims,
report between markers, report-only."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


def _load():
    return load_script("benchmarks/credit_ablation.py")


def test_budgets_give_each_variant_its_iterations():
    bench = _load()
    v = bench.VARIANTS
    assert bench.iterations_for(v["equal"], "rollouts", 60) == bench.iterations_for(v["equal"], "updates", 60) == 60
    # leave-one-out spends 4 env episodes per trajectory; independent updates one agent per iteration
    assert bench.iterations_for(v["leave-one-out"], "rollouts", 60) == 15
    assert bench.iterations_for(v["leave-one-out"], "updates", 60) == 60
    assert bench.iterations_for(v["independent"], "rollouts", 60) == 60
    assert bench.iterations_for(v["independent"], "updates", 60) == 180
    assert bench.iterations_for(v["no training"], "updates", 60) == 0


@pytest.mark.slow  # 8 tiny runs + per-question evaluations on both episode kinds: ~30 s
def test_sweep_reports_budgets_paired_tests_and_claims(tmp_path, capsys):
    bench = _load()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "abl.md").write_text(f"# Hand-written intro\n\n{bench.GENERATED_START}\nold\n{bench.GENERATED_END}\n\nReading.\n")
    args = ["--seeds", "0", "1", "--iterations", "2", "--batch-queries", "2", "--group-size", "2", "--eval-every", "1",
            "--eval-limit", "6", "--target", "0.3", "--variants", "no training", "independent",
            "--out", str(tmp_path / "runs"), "--docs", str(docs), "--name", "abl"]
    assert bench.main(args) == 0
    text = (docs / "abl.md").read_text()
    assert text.startswith("# Hand-written intro") and text.rstrip().endswith("Reading.")
    assert "\nold\n" not in text
    assert "### Equal environment rollouts" in text and "### Equal updates per agent" in text
    report = json.loads((docs / "abl.json").read_text())
    # the reference is added to every sweep; independent trains 2 and 6 iterations under the two budgets
    assert report["budgets"]["rollouts"]["independent"]["iterations"] == 2
    assert report["budgets"]["updates"]["independent"]["iterations"] == 6
    assert report["budgets"]["updates"]["independent"]["updates_per_agent"] == 2
    for budget in ("rollouts", "updates"):
        test = report["budgets"][budget]["no training"]["vs_reference"]["full-history"]
        assert test["n_seeds"] == 2 and test["n_questions"] == 6 and 0 < test["p_value"] <= 1
        # the clustered test draws whole histories: fewer clusters than questions
        clustered = test["by_history"]
        assert clustered["n_questions"] == 6 and 1 <= clustered["n_groups"] < 6 and 0 < clustered["p_value"] <= 1
    claims = {(c["claim"], c["budget"]) for c in report["claims"]}
    for c in report["claims"]:  # a claim holds only when the clustered test agrees
        x = c["full-history"]
        assert not x["holds"] or max(x["p_value"], x["p_value_by_history"]) < 0.05
    assert ("training > none", "rollouts") in claims and ("joint > independent", "updates") in claims
    w = report["weights"]["adaptive (CoMAM)"]["profiler"]
    assert 0 <= w["w_min"] <= w["w_mean"] <= w["w_max"] <= 1 and 0 <= w["v_mean"] <= 1
    run = tmp_path / "runs" / "independent" / "it6" / "seed1"
    final = json.loads((run / "final_eval.json").read_text())
    assert set(final["episodes"]) == {"evidence-session", "full-history"}
    assert len(final["episodes"]["full-history"]["correct"]) == 6
    assert (docs / "abl.png").stat().st_size > 0

    capsys.readouterr()
    assert bench.main(args + ["--report-only"]) == 0
    again = (docs / "abl.md").read_text()
    # the same rows (metrics and the wall time measured when the runs trained), without training again
    assert [line for line in again.splitlines() if line.startswith("| ")] == [
        line for line in text.splitlines() if line.startswith("| ")]


def test_sweep_wall_sums_the_invocations_that_trained(tmp_path):
    """A sweep extended by more seeds (or resumed) reports the sum of the invocations that trained
    runs; an invocation that only re-read finished runs, or --report-only, adds nothing."""
    bench = _load()
    path = tmp_path / "sweep_wall_seconds.json"
    assert bench.sweep_wall(path, 600.0, runs_trained=55, jobs=2, complete=True) == 600.0
    assert bench.sweep_wall(path, 5.0, runs_trained=0, jobs=2, complete=True) == 600.0  # all runs cached
    assert bench.sweep_wall(path, 700.0, runs_trained=55, jobs=2, complete=True) == 1300.0  # seeds 5-9 added
    assert bench.sweep_wall(path, None, runs_trained=0, jobs=2, complete=True) == 1300.0  # --report-only
    assert bench.sweep_wall(path, None, runs_trained=0, jobs=2, complete=False) is None  # runs missing
    assert [p["runs_trained"] for p in json.loads(path.read_text())["invocations"]] == [55, 55]
    old = tmp_path / "old.json"  # the file an earlier version wrote: one invocation
    old.write_text(json.dumps({"wall_seconds": 100.0, "jobs": 2}))
    assert bench.sweep_wall(old, 50.0, runs_trained=3, jobs=2, complete=True) == 150.0
