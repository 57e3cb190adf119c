"""`comam-env demo --quick`: every step runs on the synthetic data and prints its result."""

from __future__ import annotations

import re

import pytest

from comam_env.cli import main


@pytest.mark.slow  # four steps, each shrunk: ~7 s
def test_quick_demo_runs_every_step_and_reports_before_and_after(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    for step in ("1/4 synthetic data", "2/4 environment", "3/4 baselines", "4/4 CoMAM training"):
        assert f"=== {step}" in out, step
    rows = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(untrained|trained)\s+([01]\.\d{3})", out, re.M)}
    assert set(rows) == {"untrained", "trained"}
    full = re.search(r"full-history episodes .*accuracy ([01]\.\d{3}) → ([01]\.\d{3})", out)
    assert full is not None, out[-800:]
    assert (tmp_path / "run" / "checkpoint" / "policy" / "policy.json").exists()
    assert (tmp_path / "run" / "training.png").exists()
