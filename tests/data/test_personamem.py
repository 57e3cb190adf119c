"""PersonaMem loader: the real 32k question file, the exact-format fixture and malformed files."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from comam_env.data.errors import DataFormatError, DataNotFoundError
from comam_env.data.evidence import write_evidence_jsonl
from comam_env.data.personamem import (
    load_personamem, load_personamem_dir, normalize_question_type, read_questions_csv, read_shared_contexts,
)
from comam_env.data.schema import QUESTION_TYPES
from comam_env.probes import longest_option, probe_accuracy

from .conftest import (
    COLUMNS, CTX_A, CTX_B, PERSONA_A, context_a, context_b, question_rows, write_contexts, write_personamem,
    write_questions, REAL_QUESTIONS_32K,
)


@pytest.mark.skipif(not REAL_QUESTIONS_32K.is_file(), reason="real PersonaMem 32k question file not available")
def test_real_32k_question_file():
    skipped: dict[str, int] = {}
    qs = read_questions_csv(REAL_QUESTIONS_32K, skipped=skipped)
    assert len(qs) == 589
    assert skipped == {}
    assert all(len(q.options) == 4 for q in qs)
    assert all(not o.startswith("(") or not o[1:2].isalpha() or o[2:3] != ")" for q in qs for o in q.options)
    assert len({q.persona_id for q in qs}) == 20
    assert len({q.history_id for q in qs}) == 37
    assert all(q.qtype in QUESTION_TYPES for q in qs)
    counts = Counter(q.qtype for q in qs)
    # the 32k label shift: 129 "recall_user_shared_facts" rows are acknowledge-latest questions,
    # the 17 "recalling_facts_mentioned_by_the_user" rows are the real recall questions
    assert counts["acknowledge_latest_user_preferences"] == 129
    assert counts["recall_user_shared_facts"] == 17
    assert counts["revisit_reasons_behind_preference_updates"] == 99
    assert counts["generalize_to_new_scenarios"] == 57
    assert len(counts) == 7
    assert round(probe_accuracy(qs, longest_option), 3) == 0.516
    q0 = qs[0]
    assert q0.answer == "c" and q0.end_index == 182
    assert q0.meta["distance_to_ref_proportion_in_context"] == pytest.approx(0.9267)
    assert q0.meta["distance_to_ref_in_tokens"] == 25010


def test_fixture_loads_with_quirks(personamem_dir):
    ds = load_personamem_dir(personamem_dir, "32k")
    assert ds.name == "personamem-32k"
    assert [q.question_id for q in ds.questions] == ["q-music", "q-hike", "q-reason", "q-general", "q-track"]
    assert ds.skipped == {"negative_end_index": 1}
    by = {q.question_id: q for q in ds.questions}
    assert by["q-music"].qtype == "acknowledge_latest_user_preferences"  # 32k label shift
    assert by["q-music"].raw_type == "recall_user_shared_facts"
    assert by["q-hike"].qtype == "recall_user_shared_facts"
    assert by["q-reason"].qtype == "revisit_reasons_behind_preference_updates"
    assert by["q-general"].qtype == "generalize_to_new_scenarios"
    # options: labels stripped, mixed quotes survived
    assert by["q-hike"].options[1] == "Swimming at the pool — it's gentle on your knee, which hurts after trails."
    assert by["q-music"].answer == "c" and by["q-general"].answer == "d"
    assert by["q-music"].meta["distance_to_ref_proportion_in_context"] == pytest.approx(0.9267)
    assert by["q-reason"].meta["distance_to_ref_in_tokens"] is None
    assert by["q-general"].persona_id == "1" and by["q-general"].topic == "homeDecoration"

    h = ds.histories[CTX_A]
    assert len(h) == 12
    assert h.roles[0] == "system" and h.roles[7] == "system"
    assert h.contents[0] == PERSONA_A  # persona message kept verbatim in the history
    assert h.persona.startswith("Name: Kanoa Manu") and "Current user persona" not in h.persona
    assert h.session_starts == (0, 7)
    assert h.contents[1] == "Hi there! I love hiking on mountain trails every weekend."
    assert h.contents[2] == "Hiking is a wonderful way to unwind."
    assert h.contents[11] == "Great plan. User: is not a prefix here."  # only a leading prefix is stripped
    assert h.session_of(8) == 1
    # heuristic evidence: before the end index, user messages only, the right one found
    for q in ds.questions:
        assert q.evidence, q.question_id
        assert all(i < q.end_index and h_role == "user"
                   for i in q.evidence for h_role in [ds.history_for(q).roles[i]])
    assert 3 in by["q-music"].evidence
    assert 3 in by["q-general"].evidence
    assert ds.meta["evidence"] == "heuristic"


def test_size_spellings_and_type_normalisation(tmp_path):
    write_personamem(tmp_path, "1M")
    ds = load_personamem_dir(tmp_path, "1m")
    assert ds.name == "personamem-1m"
    # outside 32k the canonical label keeps its meaning
    assert ds.question("q-music").qtype == "recall_user_shared_facts"
    assert normalize_question_type("track_full_preference_updates", "1M") == "track_full_preference_evolution"
    assert normalize_question_type("no_such_type") is None
    with pytest.raises(ValueError, match="unknown PersonaMem size"):
        load_personamem_dir(tmp_path, "64k")


def test_evidence_and_profiles_files_next_to_data(personamem_dir):
    write_evidence_jsonl(personamem_dir / "evidence.jsonl", {"q-music": [3], "q-hike": [8, 10]})
    (personamem_dir / "profiles.json").write_text(json.dumps({"0": ["likes music software"], "1": ["gardens"]}))
    ds = load_personamem_dir(personamem_dir, "32k")
    assert ds.question("q-music").evidence == (3,)
    assert ds.question("q-hike").evidence == (8, 10)
    assert ds.question("q-reason").evidence is None  # not in the file: unknown, never invented
    assert ds.evidence_texts(ds.question("q-music")) == ("Lately I started producing music with Ableton software at home.",)
    assert ds.profile_for(ds.question("q-general")) == ("gardens",)
    assert ds.meta["evidence"].startswith("file:")
    # explicit choices override the file
    assert load_personamem_dir(personamem_dir, "32k", evidence="none").question("q-music").evidence is None
    assert load_personamem_dir(personamem_dir, "32k", evidence={"q-music": [1]}).question("q-music").evidence == (1,)


def test_evidence_after_end_index_rejected(personamem_dir):
    write_evidence_jsonl(personamem_dir / "evidence.jsonl", {"q-music": [9]})  # q-music ends at 7
    with pytest.raises(DataFormatError, match=r"evidence.jsonl.*q-music.*not before its end index 7"):
        load_personamem_dir(personamem_dir, "32k")


def test_read_shared_contexts_filters_ids(personamem_dir):
    hs = read_shared_contexts(personamem_dir / "shared_contexts_32k.jsonl", ids=[CTX_B])
    assert list(hs) == [CTX_B]
    assert hs[CTX_B].contents[1] == "My tomatoes are finally ripening in the garden."


# ---------------------------------------------------------------- malformed files


def test_bad_json_line(tmp_path):
    write_personamem(tmp_path)
    p = tmp_path / "shared_contexts_32k.jsonl"
    lines = p.read_text().splitlines()
    lines.insert(1, "not json at all")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as exc:
        load_personamem_dir(tmp_path, "32k")
    assert "shared_contexts_32k.jsonl" in str(exc.value) and "line 2" in str(exc.value)
    assert exc.value.line == 2


def test_truncated_json_line_of_a_used_context(tmp_path):
    write_personamem(tmp_path)
    p = tmp_path / "shared_contexts_32k.jsonl"
    lines = p.read_text().splitlines()
    lines[1] = lines[1][:-40]  # CTX_B's line cut short, as by an interrupted copy
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"shared_contexts_32k.jsonl, line 2: invalid JSON"):
        load_personamem_dir(tmp_path, "32k")


def test_bad_message_role(tmp_path):
    ctx = context_a()
    ctx[4]["role"] = "bot"
    write_personamem(tmp_path, contexts={CTX_A: ctx, CTX_B: context_b()})
    with pytest.raises(DataFormatError, match=r"line 1, field '" + CTX_A + r"\[4\]\.role'"):
        load_personamem_dir(tmp_path, "32k")


def test_missing_column(tmp_path):
    write_personamem(tmp_path)
    write_questions(tmp_path / "questions_32k.csv", question_rows(), [c for c in COLUMNS if c != "all_options"])
    with pytest.raises(DataFormatError, match=r"questions_32k.csv, line 1, field 'all_options': missing column"):
        load_personamem_dir(tmp_path, "32k")


def test_unparsable_options(tmp_path):
    rows = question_rows()
    rows[2]["all_options"] = "['(a) one', '(b) two'"  # unclosed list
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError, match=r"questions_32k.csv, row 3, line 4, field 'all_options'"):
        load_personamem_dir(tmp_path, "32k")


def test_line_numbers_follow_multiline_cells(tmp_path):
    rows = question_rows()
    rows[0]["user_question_or_message"] = "first line\nsecond line\nthird line"  # a quoted multi-line cell
    rows[1]["correct_answer"] = "(z)"
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError) as exc:
        read_questions_csv(tmp_path / "questions_32k.csv")
    assert (exc.value.row, exc.value.line, exc.value.field) == (2, 5, "correct_answer")


def test_options_never_evaluated(tmp_path):
    rows = question_rows()
    rows[0]["all_options"] = "__import__('os').system('echo pwned')"
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError, match=r"row 1, line 2, field 'all_options'"):
        read_questions_csv(tmp_path / "questions_32k.csv")


def test_unknown_context_id(tmp_path):
    rows = question_rows()
    rows[3]["shared_context_id"] = "ffff"
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError, match=r"questions_32k.csv, row 4, line 5, field 'shared_context_id'.*'ffff'"):
        load_personamem_dir(tmp_path, "32k")


def test_unknown_type_label(tmp_path):
    rows = question_rows()
    rows[1]["question_type"] = "guess_the_weather"
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError, match=r"row 2, line 3, field 'question_type'.*'guess_the_weather'"):
        read_questions_csv(tmp_path / "questions_32k.csv")


@pytest.mark.parametrize("field,value,pattern", [
    ("correct_answer", "(e)", "correct_answer"),
    ("end_index_in_shared_context", "twelve", "end_index_in_shared_context"),
    ("distance_to_ref_proportion_in_context", "lots", "distance_to_ref_proportion_in_context"),
    ("question_id", "q-music", "duplicate question id"),
])
def test_bad_values(tmp_path, field, value, pattern):
    rows = question_rows()
    rows[1][field] = value
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError, match=rf"row 2.*{pattern}"):
        read_questions_csv(tmp_path / "questions_32k.csv")


def test_end_index_beyond_context(tmp_path):
    rows = question_rows()
    rows[0]["end_index_in_shared_context"] = "99"
    write_personamem(tmp_path, rows=rows)
    with pytest.raises(DataFormatError, match=r"row 1, line 2, field 'end_index_in_shared_context'.*beyond"):
        load_personamem_dir(tmp_path, "32k")


# ---------------------------------------------------------------- file resolution


def test_missing_files_error_names_everything(tmp_path, isolated_data_env, monkeypatch):
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (explicit / "questions_32k.csv").write_text("x")  # only one of the two files
    env_dir = tmp_path / "envdir"
    monkeypatch.setenv("COMAM_DATA_DIR", str(env_dir))
    with pytest.raises(DataNotFoundError) as exc:
        load_personamem("32k", data_dir=explicit)
    msg = str(exc.value)
    assert "shared_contexts_32k.jsonl" in msg
    for d in (explicit, explicit / "personamem", env_dir / "personamem", env_dir, isolated_data_env / "personamem"):
        assert f"- {d}\n" in msg + "\n"
    assert "comam-env data download personamem --split 32k" in msg
    assert all(s in msg for s in ("synthetic-32k", "synthetic-128k", "synthetic-1m"))
    assert isinstance(exc.value, FileNotFoundError)


def test_resolution_order(tmp_path, isolated_data_env, monkeypatch):
    env_root = tmp_path / "envroot"
    write_personamem(env_root / "personamem")
    monkeypatch.setenv("COMAM_DATA_DIR", str(env_root))
    assert load_personamem("32k").source == str(env_root / "personamem")
    explicit = write_personamem(tmp_path / "explicit")
    assert load_personamem("32k", data_dir=explicit).source == str(explicit)
    monkeypatch.delenv("COMAM_DATA_DIR")
    write_personamem(isolated_data_env / "personamem")
    assert load_personamem("32k").source == str(isolated_data_env / "personamem")


REAL_EXCERPT = REAL_QUESTIONS_32K.parent / "context_excerpt_32k.json"


@pytest.mark.skipif(not REAL_EXCERPT.is_file(), reason="real PersonaMem context excerpt not available")
def test_real_context_excerpt_loads(tmp_path):
    """Real question row + the first real messages of its context, written back in the file format."""
    import csv

    excerpt = json.loads(REAL_EXCERPT.read_text(encoding="utf-8"))
    (cid, messages), = excerpt["shared_contexts"].items()
    row = {k: str(v) for k, v in excerpt["questions"][0].items()}
    row["end_index_in_shared_context"] = str(len(messages))  # the excerpt is cut short
    with open(tmp_path / "questions_32k.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    write_contexts(tmp_path / "shared_contexts_32k.jsonl", {cid: messages})
    ds = load_personamem_dir(tmp_path, "32k")
    h = ds.histories[cid]
    q = ds.questions[0]
    assert q.qtype == "acknowledge_latest_user_preferences" and q.answer == "c"
    assert h.roles[0] == "system" and h.persona.startswith("Name: Kanoa Manu")
    assert h.session_starts == (0,)
    assert all(not c.startswith(("User:", "Assistant:")) for c in h.contents)
    assert h.contents[1].startswith("Hi there! I've recently been diving deeper")
    assert q.evidence and all(h.roles[i] == "user" for i in q.evidence)
