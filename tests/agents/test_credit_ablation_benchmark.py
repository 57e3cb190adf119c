"""benchmarks/credit_ablation.py end to end on a tiny budget: runs, table, figure, report-only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("credit_ablation", ROOT / "benchmarks" / "credit_ablation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # two tiny runs + evaluations: ~15 s
def test_sweep_writes_the_table_between_markers_and_report_only_reproduces_it(tmp_path, capsys):
    bench = _load()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "abl.md").write_text(f"# Hand-written intro\n\n{bench.GENERATED_START}\nold\n{bench.GENERATED_END}\n\nReading.\n")
    args = ["--seeds", "0", "--iterations", "1", "--batch-queries", "2", "--group-size", "2", "--eval-every", "1",
            "--eval-limit", "4", "--target", "0.5", "--variants", "no-training", "adaptive, w temperature 0.1",
            "--out", str(tmp_path / "runs"), "--docs", str(docs), "--name", "abl"]
    assert bench.main(args) == 0
    text = (docs / "abl.md").read_text()
    assert text.startswith("# Hand-written intro") and text.rstrip().endswith("Reading.")
    assert "\nold\n" not in text
    rows = [line for line in text.splitlines() if line.startswith("| no-training") or line.startswith("| adaptive, w")]
    assert len(rows) == 2
    assert "val accuracy (evidence-session)" in text and "val accuracy (full-history)" in text
    assert (docs / "abl.png").stat().st_size > 0
    # the run's config carries the variant's credit options; the other-episode evaluation is cached
    run = tmp_path / "runs" / "adaptive-t0.1" / "seed0"
    assert '"temperature": 0.1' in (run / "config.json").read_text()
    assert '"episode": "full-history"' in (run / "other_episode_eval.json").read_text()

    capsys.readouterr()
    assert bench.main(args + ["--report-only"]) == 0
    again = (docs / "abl.md").read_text()
    # the same rows (metrics and the wall time measured when the run trained), without training again
    assert [line for line in again.splitlines() if line.startswith("| ")] == [
        line for line in text.splitlines() if line.startswith("| ")]
