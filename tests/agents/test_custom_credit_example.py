"""examples/custom_credit_loop.py: the spelled-out loop runs, and its credit rule is what it says."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scripts import load_script


def _load():
    return load_script("examples/custom_credit_loop.py")


def test_answer_gated_credit_by_hand():
    ex = _load()
    answer = np.array([[1.0, 0.0, 1.0]])
    local = {"extractor": np.array([[0.5, 0.9, np.nan]]), "retriever": np.array([[0.2, 0.2, 0.4]])}
    out = ex.answer_gated_credit(local, answer)
    np.testing.assert_allclose(out["extractor"], [[1.5, 0.0, 1.0]])  # NaN local reward counts as 0
    np.testing.assert_allclose(out["retriever"], [[1.2, 0.0, 1.4]])


@pytest.mark.slow  # two tiny iterations + three evaluations: ~5 s
def test_the_loop_runs_and_is_deterministic(capsys):
    ex = _load()
    argv = ["--iterations", "2", "--batch-queries", "2", "--group-size", "2", "--eval-every", "1",
            "--eval-limit", "4", "--env-pool", "4"]
    a = ex.main(argv)
    assert [it for it, _ in a["curve"]] == [0, 1, 2]
    assert all(0.0 <= acc <= 1.0 for _, acc in a["curve"])
    assert "iteration   2  validation accuracy" in capsys.readouterr().out
    assert ex.main(argv) == a  # same seed, same curve
    assert ex.main(argv + ["--credit", "adaptive"])["credit"] == "adaptive"
