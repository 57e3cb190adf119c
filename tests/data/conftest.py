"""Fixtures writing small data folders in the exact real PersonaMem format.

The format (and its quirks) mirror the real files: options as a Python list
literal with mixed quotes inside a csv cell, ``(c)`` answers, ``92.67%``
proportions, ``User:``/``Assistant:`` prefixes, ``Current user persona:`` system
messages opening every session, a negative end index row, and the 32k label
spellings (``recall_user_shared_facts`` meaning acknowledge-latest,
``recalling_facts_mentioned_by_the_user`` meaning recall, ``-ing`` variants).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from comam_env.text import estimate_tokens

COLUMNS = [
    "persona_id", "question_id", "question_type", "topic", "context_length_in_tokens",
    "context_length_in_letters", "distance_to_ref_in_blocks", "distance_to_ref_in_tokens",
    "num_irrelevant_tokens", "distance_to_ref_proportion_in_context", "user_question_or_message",
    "correct_answer", "all_options", "shared_context_id", "end_index_in_shared_context",
]

CTX_A = "a1" * 32  # looks like the real 64-hex ids
CTX_B = "b2" * 32

PERSONA_A = ("Current user persona: Name: Kanoa Manu   \nGender Identity: Male  \n\n"
             "Kanoa Manu is a 32-year-old software engineer with a passion for music and technology.")
PERSONA_B = "Current user persona: Name: Ruth Okafor\nRuth is a retired teacher who loves gardening."


def context_a() -> list[dict]:
    return [
        {"role": "system", "content": PERSONA_A},                                       # 0 session 0
        {"role": "user", "content": "User: Hi there! I love hiking on mountain trails every weekend."},  # 1
        {"role": "assistant", "content": "Assistant: Hiking is a wonderful way to unwind."},              # 2
        {"role": "user", "content": "User: Lately I started producing music with Ableton software at home."},  # 3
        {"role": "assistant", "content": "Assistant: Producing music with software opens many doors."},   # 4
        {"role": "user", "content": "User: What should I cook tonight? Something quick please."},         # 5
        {"role": "assistant", "content": "Assistant: A stir fry takes fifteen minutes."},                  # 6
        {"role": "system", "content": PERSONA_A},                                       # 7 session 1
        {"role": "user", "content": "User: I no longer enjoy hiking because my knee hurts after long trails."},  # 8
        {"role": "assistant", "content": "Assistant: Sorry to hear about your knee; swimming is gentler."},  # 9
        {"role": "user", "content": "User: Thanks, I will try swimming at the local pool."},              # 10
        {"role": "assistant", "content": "Assistant: Great plan. User: is not a prefix here."},            # 11
    ]


def context_b() -> list[dict]:
    return [
        {"role": "system", "content": PERSONA_B},
        {"role": "user", "content": "User: My tomatoes are finally ripening in the garden."},
        {"role": "assistant", "content": "Assistant: Congratulations on the harvest!"},
        {"role": "user", "content": "User: I prefer heirloom varieties over hybrids."},
        {"role": "assistant", "content": "Assistant: Heirlooms have great flavour."},
    ]


def _tokens_between(ctx: list[dict], start: int, end: int) -> int:
    return sum(estimate_tokens(m["content"]) for m in ctx[start:end])


def _row(**kw) -> dict:
    row = {
        "persona_id": "0", "topic": "musicRecommendation", "context_length_in_tokens": "300",
        "context_length_in_letters": "1500", "distance_to_ref_in_blocks": "1",
        "distance_to_ref_in_tokens": "", "num_irrelevant_tokens": "0",
        "distance_to_ref_proportion_in_context": "92.67%",
    }
    row.update(kw)
    return row


def question_rows() -> list[dict]:
    a = context_a()
    return [
        _row(question_id="q-music", question_type="recall_user_shared_facts",
             user_question_or_message="I recently attended an event blending modern beats with Pacific sounds.",
             correct_answer="(c)",
             all_options=str([
                 "(a) Since you dislike anything involving music production, this must have been odd.",
                 "(b) I imagine it must have been quite an experience for anyone who loves unique blends.",
                 "(c) Since you like producing music with software, this must have been quite interesting.",
                 "(d) Since you like painting, this must have been a great art exhibition.",
             ]),
             shared_context_id=CTX_A, end_index_in_shared_context="7",
             distance_to_ref_in_tokens=str(_tokens_between(a, 3, 7))),
        _row(question_id="q-hike", question_type="recalling_facts_mentioned_by_the_user", topic="travelPlanning",
             user_question_or_message="Can you suggest an activity for my weekend?",
             correct_answer="(b)",
             all_options=str([
                 "(a) A long mountain hiking trail, since you love hiking.",
                 "(b) Swimming at the pool — it's gentle on your knee, which hurts after trails.",
                 "(c) A marathon.",
                 "(d) Rock climbing for the thrill.",
             ]),
             shared_context_id=CTX_A, end_index_in_shared_context="12",
             distance_to_ref_in_tokens=str(_tokens_between(a, 8, 12))),
        _row(question_id="q-reason", question_type="recalling_the_reasons_behind_previous_updates",
             user_question_or_message="Why did I stop hiking again?", correct_answer="(a)",
             all_options=str(["(a) Your knee hurts after long trails.", "(b) You moved to a city.",
                              "(c) You got bored of it.", "(d) You don't have time."]),
             shared_context_id=CTX_A, end_index_in_shared_context="12",
             distance_to_ref_in_tokens="", distance_to_ref_proportion_in_context=""),
        _row(question_id="q-general", question_type="generalizing_to_new_scenarios", persona_id="1",
             topic="homeDecoration", user_question_or_message="Which seeds should I buy for next spring?",
             correct_answer="(d)",
             all_options=str(["(a) Hybrid seeds.", "(b) Plastic plants.", "(c) Nothing.",
                              "(d) Heirloom tomato seeds, since you prefer heirloom varieties."]),
             shared_context_id=CTX_B, end_index_in_shared_context="5",
             distance_to_ref_in_tokens=str(_tokens_between(context_b(), 3, 5))),
        _row(question_id="q-negative", question_type="suggest_new_ideas", persona_id="1",
             user_question_or_message="Any ideas?", correct_answer="(a)",
             all_options=str(["(a) x", "(b) y", "(c) z", "(d) w"]),
             shared_context_id=CTX_B, end_index_in_shared_context="-1"),
        _row(question_id="q-track", question_type="track_full_preference_evolution",
             user_question_or_message="How have my hobbies changed?", correct_answer="(a)",
             all_options=str(["(a) From hiking to swimming.", "(b) From swimming to hiking.",
                              "(c) Never changed.", "(d) From music to art."]),
             shared_context_id=CTX_A, end_index_in_shared_context="11", distance_to_ref_in_tokens="40"),
    ]


def write_questions(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def write_contexts(path: Path, contexts: dict[str, list[dict]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for cid, msgs in contexts.items():
            f.write(json.dumps({cid: msgs}) + "\n")
    return path


def write_personamem(folder: Path, size: str = "32k", rows: list[dict] | None = None,
                     contexts: dict[str, list[dict]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_questions(folder / f"questions_{size}.csv", question_rows() if rows is None else rows)
    write_contexts(folder / f"shared_contexts_{size}.jsonl",
                   {CTX_A: context_a(), CTX_B: context_b()} if contexts is None else contexts)
    return folder


@pytest.fixture
def personamem_dir(tmp_path: Path) -> Path:
    """A folder with questions_32k.csv + shared_contexts_32k.jsonl in the real format."""
    return write_personamem(tmp_path / "pm")


@pytest.fixture
def isolated_data_env(tmp_path, monkeypatch) -> Path:
    """Point the cache and COMAM_DATA_DIR at empty temp folders; returns the cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COMAM_CACHE_DIR", str(cache))
    monkeypatch.delenv("COMAM_DATA_DIR", raising=False)
    return cache


def shared_dir() -> Path | None:
    """The project's shared folder, if present: ``$COMAM_SHARED_DIR``, then ``shared/`` beside the
    repository (CI copies it there next to a fresh clone), then ``/work/shared``. Tests that
    need its files skip with a reason when it is absent."""
    import os

    candidates = [os.environ.get("COMAM_SHARED_DIR"), Path(__file__).resolve().parents[2].parent / "shared",
                  "/work/shared"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


_SHARED = shared_dir()
#: The real PersonaMem 32k questions file (tests using it skip when it is absent).
REAL_QUESTIONS_32K = (_SHARED if _SHARED is not None else Path("shared-folder-not-found")) / \
    "data" / "personamem" / "questions_32k.csv"
