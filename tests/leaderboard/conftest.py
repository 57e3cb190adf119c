"""Fixtures for the leaderboard tests: a tiny synthetic track and submission builders.

The track ``synthetic-32k`` is served from a small generated dataset (2 personas)
installed in the validator's per-process dataset cache, so no test depends on
the user's data cache and every test stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leaderboard import validate as V


@pytest.fixture(scope="session")
def small_ds():
    from comam_env.data.synthetic import load_synthetic

    # one question per boundary; the validation split is one of the two personas (34 questions)
    return load_synthetic("32k", seed=0, cache=False, n_personas=2, question_repeats=1)


@pytest.fixture(autouse=True)
def _track_data(small_ds, monkeypatch):
    monkeypatch.setitem(V._DATASETS, "synthetic-32k", small_ds)
    monkeypatch.delenv("COMAM_HIDDEN_SEED", raising=False)


def base_meta(**over) -> dict:
    meta = {
        "name": "test system", "authors": ["A. Tester"], "url": "https://example.org/sys",
        "description": "a test system", "models": [], "training_method": "none",
        "track": "synthetic-32k", "split": "validation", "date": "2026-11-24", "seeds": [0],
        "open_source": True,
    }
    meta.update(over)
    return meta


def write_entry(folder: Path, meta: dict | None, lines: list | None, raw_predictions: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if meta is not None:
        (folder / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    if raw_predictions is not None:
        (folder / "predictions.jsonl").write_text(raw_predictions, encoding="utf-8")
    elif lines is not None:
        (folder / "predictions.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines), encoding="utf-8")
    return folder


def validation_ids(ds) -> list[str]:
    return V.split_ids("synthetic-32k", ds, "validation", 0)


def gold_lines(ds, ids=None, wrong=(), empty=()) -> list[dict]:
    """One line per id: the gold letter, a wrong letter for ids in ``wrong``, '' for ``empty``."""
    out = []
    for i, qid in enumerate(ids if ids is not None else validation_ids(ds)):
        q = ds.question(qid)
        ans = q.answer
        if qid in wrong:
            ans = next(l for l in q.option_labels if l != q.answer)
        if qid in empty:
            ans = ""
        out.append({"question_id": qid, "answer": ans, "retrieved_memory": "m", "tokens_in": 10 + i,
                    "tokens_out": i % 3, "latency_ms": 1.5 * i})
    return out
