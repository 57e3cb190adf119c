"""comam-env leaderboard: submission format, strict validation, scoring, rendering, hidden tracks.

* :mod:`leaderboard.validate` — ``validate_submission(path) -> ValidationReport`` (folders and
  ``.zip``/``.tar.gz`` archives; never executes submission content).
* :mod:`leaderboard.score` — ``score_entry(path) -> dict`` (accuracy, 95% bootstrap CI, per type,
  efficiency, margin over the answer-only probes); ``dumps`` for deterministic JSON.
* :mod:`leaderboard.render` — ``render(submissions_dir, readme, html)``: the README table and a
  self-contained ``index.html``.
* :mod:`leaderboard.hidden` — ``run_agent(entry, track, out_dir)``: agents on secret synthetic splits.
* :mod:`leaderboard.cli` — ``comam-env leaderboard validate|score|render|run-agent``.

This package imports only ``comam_env`` (plus, inside ``run-agent``, the harness and the
agent's entry point). Format documentation: ``leaderboard/README.md``.
"""

from pathlib import Path

#: Folder holding this package (the default home of ``submissions/``, README.md and index.html).
LEADERBOARD_DIR = Path(__file__).resolve().parent
SUBMISSIONS_DIR = LEADERBOARD_DIR / "submissions"
