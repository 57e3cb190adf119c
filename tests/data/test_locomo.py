"""LoCoMo loader on fixtures written in the exact ``locomo10.json`` format."""

from __future__ import annotations

import copy
import json

import pytest

from comam_env.data.errors import DataFormatError, DataNotFoundError
from comam_env.data.locomo import CATEGORY_NAMES, load_locomo, read_locomo
from comam_env.rewards import answer_reward, extractor_reward

SAMPLES = [
    {
        "qa": [
            {"question": "When did Caroline go to the LGBTQ support group?", "answer": "7 May 2023",
             "evidence": ["D1:3"], "category": 2},
            {"question": "When did Melanie paint a sunrise?", "answer": 2022,
             "evidence": ["D1:4; D10:1"], "category": 4},
            {"question": "What did Caroline research?", "answer": "Adoption agencies",
             "evidence": ["D2:01", "D7:7", "D", "D:10:2"], "category": 1},
            {"question": "Would Melanie be considered a member of the LGBTQ community?",
             "answer": "Likely no", "evidence": [], "category": 3},
            {"question": "What did Melanie realize after the charity race?",
             "evidence": ["D2:2"], "category": 5, "adversarial_answer": "self-care is important"},
        ],
        "conversation": {
            "speaker_a": "Caroline",
            "speaker_b": "Melanie",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Caroline", "dia_id": "D1:1", "text": "Hey Mel! Good to see you!"},
                {"speaker": "Melanie", "dia_id": "D1:2", "text": "Hey Caroline! How are you?"},
                {"speaker": "Caroline", "dia_id": "D1:3",
                 "text": "I went to a LGBTQ support group yesterday and it was so powerful."},
                {"speaker": "Melanie", "dia_id": "D1:4", "text": "I painted that lake sunrise last year!",
                 "img_url": ["https://example.invalid/sunrise.jpg"], "query": "painting sunrise",
                 "blip_caption": "a photo of a painting of a sunrise over a lake"},
            ],
            "session_2_date_time": "1:14 pm on 25 May, 2023",
            "session_2": [
                {"speaker": "Melanie", "dia_id": "D2:1", "text": "I ran a charity race for mental health."},
                {"speaker": "Caroline", "dia_id": "D2:2", "text": "Researching adoption agencies now."},
            ],
            "session_3_date_time": "7:55 pm on 9 June, 2023",
            "session_3": [],
            # a date stamp without a session: ignored
            "session_9_date_time": "9:00 am on 1 June, 2023",
            "session_10_date_time": "10:00 am on 2 July, 2023",
            "session_10": [
                {"speaker": "Melanie", "dia_id": "D10:1", "img_url": ["https://example.invalid/x.jpg"],
                 "blip_caption": "a photo of a pottery bowl"},
                {"speaker": "Caroline", "dia_id": "D10:2", "text": "Love it!",
                 "img_url": ["https://example.invalid/y.jpg"]},
            ],
        },
        "event_summary": {"events_session_1": {"Caroline": [], "Melanie": [], "date": "8 May, 2023"}},
        "observation": {
            "session_2_observation": {
                "Melanie": [["Melanie ran a charity race for mental health.", "D2:1"]],
                "Caroline": [["Caroline is researching adoption agencies.", "D2:2"]],
            },
            "session_1_observation": {
                "Caroline": [["Caroline attended an LGBTQ support group.", "D1:3"]],
                "Melanie": [["Melanie painted a lake sunrise.", "D1:4"]],
            },
        },
        "session_summary": {"session_1_summary": "Caroline and Melanie catch up."},
        "sample_id": "conv-26",
    },
    {
        "qa": [
            {"question": "What is Jon's job?", "answer": "dancer", "evidence": ["D1:1"], "category": 4},
        ],
        "conversation": {
            "speaker_a": "Jon",
            "speaker_b": "Gina",
            "session_1_date_time": "4:04 pm on 20 January, 2023",
            "session_1": [
                {"speaker": "Jon", "dia_id": "D1:1", "text": "I lost my job, so I'll open a dance studio."},
                {"speaker": "Gina", "dia_id": "D1:2", "text": "Go for it!"},
            ],
        },
        "observation": {
            "session_1_observation": {"Jon": [["Jon plans to open a dance studio.", "D1:1"]], "Gina": []},
        },
        "session_summary": {"session_1_summary": "Jon lost his job."},
        "sample_id": "conv-30",
    },
]


@pytest.fixture
def locomo_file(tmp_path):
    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps(SAMPLES, indent=2), encoding="utf-8")
    return path


def write(tmp_path, data, name="locomo10.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_histories_sessions_roles_and_captions(locomo_file):
    ds = load_locomo(path=locomo_file)
    assert ds.name == "locomo" and set(ds.histories) == {"conv-26", "conv-30"}
    h = ds.histories["conv-26"]
    # sessions 1, 2, 10 kept in numeric order; the empty session 3 is skipped
    assert len(h) == 8 and h.session_starts == (0, 4, 6)
    assert h.meta["session_numbers"] == (1, 2, 10)
    assert h.meta["session_dates"] == ("1:56 pm on 8 May, 2023", "1:14 pm on 25 May, 2023",
                                       "10:00 am on 2 July, 2023")
    assert ds.skipped["empty_session"] == 1
    assert h.roles[:4] == ("user", "assistant", "user", "assistant")
    assert h.meta["speakers"] == {"user": "Caroline", "assistant": "Melanie"}
    assert h.contents[0] == "Caroline: Hey Mel! Good to see you!"
    assert h.contents[3] == ("Melanie: I painted that lake sunrise last year! "
                             "[shares a photo: a photo of a painting of a sunrise over a lake]")
    assert h.contents[6] == "Melanie: [shares a photo: a photo of a pottery bowl]"  # image-only turn
    assert h.contents[7] == "Caroline: Love it! [shares a photo]"  # image without caption
    assert h.meta["dia_index"]["D10:1"] == 6 and h.meta["dia_index"]["D1:3"] == 2
    assert h.session_of(6) == 2


def test_questions_answers_categories_and_evidence(locomo_file):
    ds = load_locomo(path=locomo_file)
    assert len(ds.questions) == 6
    q0, q1, q2, q3, q4 = (ds.question(f"conv-26:{j}") for j in range(5))
    assert q0.options == () and q0.answer == "7 May 2023" and q0.evidence == (2,)
    assert q0.qtype == "locomo_temporal" and q0.raw_type == "2" and q0.meta["category"] == 2
    assert q0.end_index == 8 and q0.persona_id == "conv-26" and q0.history_id == "conv-26"
    assert ds.evidence_texts(q0) == ("Caroline: I went to a LGBTQ support group yesterday and it was so powerful.",)
    # numeric answer becomes text; one entry holding two ids maps to two messages
    assert q1.answer == "2022" and q1.evidence == (3, 6) and q1.qtype == "locomo_single_hop"
    # zero-padded id and the stray-colon "D:10:2" resolve; unknown "D7:7" and unparsable "D"
    # are dropped and reported
    assert q2.evidence == (4, 7) and q2.qtype == "locomo_multi_hop"
    assert ds.skipped["unknown_evidence_id"] == 2
    assert {"question_id": "conv-26:2", "dia_id": "D7:7"} in ds.meta["unknown_evidence"]
    assert {"question_id": "conv-26:2", "dia_id": "D"} in ds.meta["unknown_evidence"]
    # empty evidence list -> undefined evidence, not an empty tuple
    assert q3.evidence is None and q3.qtype == "locomo_open_domain"
    assert extractor_reward("anything", ds.evidence_texts(q3)) is None
    # category 5: adversarial answer kept, scored by abstention
    assert q4.qtype == "locomo_adversarial" and q4.meta["category"] == 5
    assert q4.answer == "self-care is important" == q4.meta["adversarial_answer"]
    assert answer_reward("<final_answer>Not mentioned in the conversation</final_answer>", q4).reward == 1.0
    assert answer_reward("self-care is important", q4).reward == 0.0
    assert answer_reward("7 May 2023", q0).reward == 1.0
    assert q0.meta["evidence_dia_ids"] == ("D1:3",)
    assert CATEGORY_NAMES == {1: "multi_hop", 2: "temporal", 3: "open_domain", 4: "single_hop", 5: "adversarial"}


def test_observations_are_gold_profiles(locomo_file):
    ds = load_locomo(path=locomo_file)
    # conversation order: session 1 before 2 (the file lists session 2 first), and within a
    # session by the turn of the dia_id (D2:1 Melanie before D2:2 Caroline), not grouped by speaker
    assert ds.profiles["conv-26"] == (
        "Caroline attended an LGBTQ support group.",
        "Melanie painted a lake sunrise.",
        "Melanie ran a charity race for mental health.",
        "Caroline is researching adoption agencies.",
    )
    assert ds.histories["conv-26"].meta["observations"]["Melanie"] == (
        "Melanie painted a lake sunrise.", "Melanie ran a charity race for mental health.")
    assert ds.profile_for(ds.question("conv-30:0")) == ("Jon plans to open a dance studio.",)


def test_oracle_evidence_scores_one(locomo_file):
    ds = load_locomo(path=locomo_file)
    for q in ds.questions:
        ev = ds.evidence_texts(q)
        if ev:
            assert extractor_reward("\n".join(ev), ev).reward == 1.0


def test_resolves_from_data_dir_and_env(tmp_path, monkeypatch, locomo_file):
    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COMAM_DATA_DIR", raising=False)
    assert len(load_locomo(data_dir=tmp_path).questions) == 6
    sub = tmp_path / "other" / "locomo"
    sub.mkdir(parents=True)
    (sub / "locomo10.json").write_text(locomo_file.read_text())
    monkeypatch.setenv("COMAM_DATA_DIR", str(tmp_path / "other"))
    assert load_locomo().source == str(sub / "locomo10.json")


def test_missing_file_error_names_paths_and_download(tmp_path, monkeypatch):
    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COMAM_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError) as exc:
        load_locomo(data_dir=tmp_path / "nowhere")
    msg = str(exc.value)
    assert "locomo10.json" in msg and str(tmp_path / "nowhere") in msg and "snap-research" in msg
    with pytest.raises(DataNotFoundError):
        load_locomo(path=tmp_path / "missing.json")


def _broken(mutate):
    data = copy.deepcopy(SAMPLES)
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, fragments",
    [
        (lambda d: d[1].pop("sample_id"), ["[1]", "sample_id", "missing"]),
        (lambda d: d[0]["conversation"].pop("speaker_b"), ["conv-26", "speaker_b"]),
        (lambda d: d[0]["conversation"]["session_2"][1].update(speaker="Bob"), ["conv-26", "session_2[1].speaker", "Bob"]),
        (lambda d: d[0]["conversation"]["session_1"][0].pop("dia_id"), ["session_1[0].dia_id"]),
        (lambda d: d[0]["qa"][1].update(category=9), ["conv-26", "qa[1].category", "unknown category 9"]),
        (lambda d: d[0]["qa"][0].pop("answer"), ["qa[0].answer"]),
        (lambda d: d[0]["qa"][0].update(evidence=[3]), ["qa[0].evidence"]),
        (lambda d: d[0]["conversation"].update(session_2="oops"), ["conversation.session_2"]),
        (lambda d: d[1].update(sample_id="conv-26"), ["duplicate sample id"]),
        (lambda d: d[1]["conversation"].update(session_1=[]), ["conv-30", "no conversation turns"]),
        (lambda d: d[0]["observation"]["session_1_observation"].update(Caroline=[[3, "D1:1"]]), ["observation"]),
    ],
)
def test_malformed_structure_names_file_sample_and_field(tmp_path, mutate, fragments):
    path = write(tmp_path, _broken(mutate))
    with pytest.raises(DataFormatError) as exc:
        read_locomo(path)
    msg = str(exc.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_bad_json_and_wrong_top_level(tmp_path):
    path = tmp_path / "locomo10.json"
    path.write_text('[\n {"sample_id": "x",\n  oops}\n]')
    with pytest.raises(DataFormatError, match="line 3"):
        read_locomo(path)
    with pytest.raises(DataFormatError, match="JSON list"):
        read_locomo(write(tmp_path, {"sample_id": "x"}))


def test_loading_is_deterministic(locomo_file):
    a, b = load_locomo(path=locomo_file), load_locomo(path=locomo_file)
    assert a.questions == b.questions
    assert a.histories["conv-26"].contents == b.histories["conv-26"].contents
