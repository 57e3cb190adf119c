"""Heuristic evidence annotator and evidence JSONL import/export."""

from __future__ import annotations

import os

import pytest

from comam_env.data.errors import DataFormatError
from comam_env.data.evidence import (
    AnnotatorConfig, HistoryIndex, annotate_evidence, read_evidence_jsonl, write_evidence_jsonl,
)
from comam_env.data.schema import History
from comam_env.text import estimate_tokens

FILLER = "We talked about the weather and the news of the day for a while today."


def _history(n_filler: int, fact_at: int, decoy_at: int) -> History:
    roles, contents = [], []
    for i in range(n_filler):
        roles.append("user" if i % 2 else "assistant")
        contents.append(FILLER)
    contents[fact_at] = "I recently adopted a golden retriever puppy named Biscuit."
    roles[fact_at] = "user"
    contents[decoy_at] = "My neighbour adopted a golden retriever puppy, not me."
    roles[decoy_at] = "user"
    return History("h", tuple(roles), tuple(contents), (0,))


def test_reference_window_picks_the_fact_not_the_far_decoy():
    h = _history(600, fact_at=301, decoy_at=41)
    end = 560
    distance = sum(estimate_tokens(c) for c in h.contents[301:end])
    query, gold = "What kind of dog should I buy food for?", "Food for your golden retriever puppy Biscuit."
    ev = annotate_evidence(h, end, query, gold, distance, AnnotatorConfig(k=1, window_min_tokens=300))
    assert ev == (301,)
    # without the distance the whole history is searched; both candidates compete, and the
    # window is what removed the decoy above
    ev_all = annotate_evidence(h, end, query, gold, None, AnnotatorConfig(k=2))
    assert set(ev_all) == {41, 301}


def test_only_user_messages_before_end_index_and_sorted():
    h = _history(100, fact_at=51, decoy_at=11)
    idx = HistoryIndex(h)
    ev = annotate_evidence(idx, 40, "golden retriever puppy", "golden retriever", None, AnnotatorConfig(k=3))
    assert ev and all(i < 40 and h.roles[i] == "user" for i in ev)
    assert list(ev) == sorted(ev)
    assert 11 in ev
    # no user message before the end: unknown, not invented
    assert annotate_evidence(h, 1, "x", "y", None) is None


def test_no_overlap_falls_back_to_nearest_user_message():
    h = _history(50, fact_at=21, decoy_at=3)
    end = 50
    distance = sum(estimate_tokens(c) for c in h.contents[30:end])
    ev = annotate_evidence(h, end, "zzz", "qqq", distance, AnnotatorConfig(k=3, window_min_tokens=10, window_rel=0))
    assert ev is not None and len(ev) == 1 and h.roles[ev[0]] == "user" and abs(ev[0] - 30) <= 1


def test_jsonl_round_trip(tmp_path):
    p = tmp_path / "ev.jsonl"
    write_evidence_jsonl(p, {"q1": [5, 2], "q2": [], "q3": None})
    assert read_evidence_jsonl(p) == {"q1": (2, 5), "q2": ()}
    assert [n for n in os.listdir(tmp_path)] == ["ev.jsonl"]  # no temp file left behind


def test_write_is_atomic_on_bad_input(tmp_path):
    p = tmp_path / "ev.jsonl"
    write_evidence_jsonl(p, {"q1": [1]})
    with pytest.raises(ValueError):
        write_evidence_jsonl(p, {"q1": [1], "q2": [-3]})
    assert read_evidence_jsonl(p) == {"q1": (1,)}
    assert os.listdir(tmp_path) == ["ev.jsonl"]


@pytest.mark.parametrize("line,field,msg", [
    ('{"question_id": "q9", "evidence": [1, 2', None, "invalid JSON"),
    ('[1, 2]', None, "expected a JSON object"),
    ('{"evidence": [1]}', "question_id", "missing or non-string"),
    ('{"question_id": 7, "evidence": [1]}', "question_id", "missing or non-string"),
    ('{"question_id": "q9", "evidence": 3}', "evidence", "list of message indices"),
    ('{"question_id": "q9", "evidence": [1, -2]}', "evidence", "integers >= 0"),
    ('{"question_id": "q9", "evidence": [1.5]}', "evidence", "integers >= 0"),
    ('{"question_id": "q9", "evidence": [true]}', "evidence", "integers >= 0"),
    ('{"question_id": "q1", "evidence": [1]}', "question_id", "duplicate"),
])
def test_malformed_evidence_lines(tmp_path, line, field, msg):
    p = tmp_path / "ev.jsonl"
    p.write_text('{"question_id": "q1", "evidence": [0]}\n\n' + line + "\n")
    with pytest.raises(DataFormatError, match=msg) as exc:
        read_evidence_jsonl(p)
    assert exc.value.line == 3 and exc.value.field == field
    assert str(p) in str(exc.value) and "line 3" in str(exc.value)


def test_zero_width_window_holds_exactly_the_reference_message():
    roles = ("user",) * 6
    contents = ("golden retriever one", "golden retriever two", "golden retriever three",
                "golden retriever four", "filler words here", "filler words here")
    h = History("h", roles, contents, (0,))
    cfg = AnnotatorConfig(k=3, window_min_tokens=0, window_rel=0.0)
    # distance from the end (6) back to the start of message 2
    distance = sum(estimate_tokens(c) for c in contents[2:6])
    assert annotate_evidence(h, 6, "golden retriever", "golden retriever", distance, cfg) == (2,)
    # one token further back lands inside message 1
    assert annotate_evidence(h, 6, "golden retriever", "golden retriever", distance + 1, cfg) == (1,)
