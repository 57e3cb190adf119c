"""benchmarks/compare_sweeps.py and benchmarks/ndcg_chance.py: the numbers the ablation report
quotes beside them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script

def _sweep(root: Path, per_seed: list[list[float]]) -> Path:
    for s, answers in enumerate(per_seed):
        run = root / "adaptive" / "it60" / f"seed{s}"
        run.mkdir(parents=True)
        correct = {f"q{i}": a for i, a in enumerate(answers)}
        episodes = {e: {"accuracy": float(np.mean(answers)), "correct": correct} for e in ("evidence-session", "full-history")}
        (run / "final_eval.json").write_text(json.dumps({"iteration": 60, "episodes": episodes}))
    return root


def test_compare_sweeps_pairs_seeds_and_questions(tmp_path, capsys):
    a = _sweep(tmp_path / "a", [[1, 1, 0, 1], [1, 0, 1, 1]])
    b = _sweep(tmp_path / "b", [[0, 1, 0, 0], [1, 0, 0, 1]])
    load_script("benchmarks/compare_sweeps.py").main([str(a), str(b), "--seeds", "0", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    r = out["full-history"]
    assert r["accuracy_a"] == pytest.approx(0.75) and r["accuracy_b"] == pytest.approx(0.375)
    assert r["mean"] == pytest.approx(0.375) and r["n_seeds"] == 2 and r["n_questions"] == 4
    assert r["per_seed_a"] == [0.75, 0.75]


def test_compare_sweeps_names_a_missing_run(tmp_path):
    a = _sweep(tmp_path / "a", [[1, 0]])
    with pytest.raises(SystemExit, match="seed1/final_eval.json is missing"):
        load_script("benchmarks/compare_sweeps.py").main([str(a), str(a), "--seeds", "0", "1"])


def test_ndcg_chance_rises_with_the_share_of_correct_answers(capsys):
    load_script("benchmarks/ndcg_chance.py").main(["--draws", "300"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == list(range(1, 8))
    means = [float(r[1]) for r in rows]
    assert means == sorted(means) and 0.4 < means[0] < 0.6 and means[-1] > 0.9
    # a perfectly consistent role gets more than the equal share, never more than e / (e + 2)
    assert all(1 / 3 < float(r[3]) < np.e / (np.e + 2) for r in rows)
