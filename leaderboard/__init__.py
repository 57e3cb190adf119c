"""comam-env leaderboard: submission format, strict validation, scoring, rendering, hidden tracks.

* :mod:`leaderboard.validate` — ``validate_submission(path) -> ValidationReport`` (folders and
  ``.zip``/``.tar.gz`` archives; never executes submission content); :mod:`leaderboard.schemas`
  checks the JSON Schemas of ``schema/`` with ``jsonschema``.
* :mod:`leaderboard.score` — ``score_entry(path) -> dict`` (accuracy, 95% bootstrap CI, per type,
  efficiency, margin over the answer-only probes); ``dumps`` for deterministic JSON.
* :mod:`leaderboard.render` — ``render(submissions_dir, readme, html)``: the README table and a
  self-contained ``index.html`` from the jinja2 templates in ``templates/``.
* :mod:`leaderboard.hidden` — secret-seeded hidden splits and the HMAC signatures of hidden runs.
* :mod:`leaderboard.run_agent` — ``run_agent(entry, track, out_dir)``: agents on hidden tracks.
* :mod:`leaderboard.submit` — a validated entry folder from an evaluation's predictions or a run.
* :mod:`leaderboard.cli` — ``comam-env leaderboard validate|score|render|run-agent|submit``.

This package imports only ``comam_env``, except :mod:`leaderboard.run_agent`, which runs the
agent's entry point through the evaluation harness (``tests/test_layering.py`` checks it).
Format documentation: ``leaderboard/README.md``.
"""

from pathlib import Path

#: Folder holding this package (the default home of ``submissions/``, README.md and index.html).
LEADERBOARD_DIR = Path(__file__).resolve().parent
SUBMISSIONS_DIR = LEADERBOARD_DIR / "submissions"
