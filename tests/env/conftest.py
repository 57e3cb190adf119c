"""Fixtures for the environment tests: a hand-built dataset, a PersonaMem-format folder,
and small synthetic data.

``tiny_dataset`` is built directly from :mod:`comam_env.data.schema` so the
numbers in the tests can be checked by hand (message indices, sessions and
evidence are listed below). ``personamem_dir`` writes two small contexts in the
exact real PersonaMem file format (options as a Python list literal with mixed
quotes, ``(c)`` answers, ``User:``/``Assistant:`` prefixes, ``Current user
persona:`` system messages opening every session, curly quotes and emojis) and
is loaded through the real loader with the heuristic evidence annotator.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from comam_env.data.schema import Dataset, History, Question

PERSONA_1 = "Current user persona: Kanoa is a 32-year-old software engineer from Hawaii."
PERSONA_2 = "Current user persona: Ruth is a retired teacher who loves gardening."

# History h1 — three sessions.
H1 = [
    ("system", PERSONA_1),                                                                   # 0  session 0
    ("user", "I love hiking on mountain trails every weekend with my dog."),                  # 1
    ("assistant", "Hiking is a wonderful way to unwind and stay fit."),                       # 2
    ("user", "I started producing music with Ableton software in my home studio."),          # 3
    ("assistant", "Producing music with software opens many creative doors."),                # 4
    ("system", PERSONA_1),                                                                   # 5  session 1
    ("user", "I no longer enjoy hiking because my knee hurts after long trails."),           # 6
    ("assistant", "Sorry to hear about your knee; swimming is much gentler on joints."),     # 7
    ("user", "I will try swimming laps at the local pool twice a week instead."),             # 8
    ("assistant", "That sounds like a great plan for staying active."),                      # 9
    ("system", PERSONA_1),                                                                   # 10 session 2
    ("user", "What should I cook tonight? Something quick please."),                         # 11
    ("assistant", "A vegetable stir fry takes about fifteen minutes."),                      # 12
    ("user", "My favourite café’s espresso is the best ☕😀 — honestly."),                    # 13
    ("assistant", "Good coffee makes any morning better."),                                  # 14
]
# History h2 — one session.
H2 = [
    ("system", PERSONA_2),                                                                   # 0 session 0
    ("user", "My heirloom tomatoes are finally ripening in the backyard garden."),            # 1
    ("assistant", "Congratulations on the harvest!"),                                        # 2
    ("user", "I prefer organic compost over chemical fertilizers for my vegetables."),       # 3
    ("assistant", "Compost builds healthy soil."),                                           # 4
]

PROFILES = {
    "p1": (
        "Kanoa produces music with Ableton software in a home studio.",
        "Kanoa no longer enjoys hiking because of knee pain after long trails.",
        "Kanoa now prefers swimming laps at the local pool twice a week.",
    ),
    "p2": (
        "Ruth grows heirloom tomatoes in a backyard garden.",
        "Ruth prefers organic compost over chemical fertilizers.",
    ),
}

OPTS_SPORT = (
    "Since you love hiking on mountain trails, try a new summit trail this weekend.",
    "Since hiking hurts your knee, how about swimming laps at the pool this weekend?",
    "Since you dislike water, try a spinning class at the gym.",
    "Since you love crowds, go to a stadium concert.",
)
OPTS_STUDIO = (
    "Buy a guitar amplifier for live gigs.",
    "Try a new painting easel for your art room.",
    "Add an audio interface and monitors to your Ableton home studio.",
    "Get a bigger oven for baking.",
)


def _history(hid: str, rows: list[tuple[str, str]], persona: str) -> History:
    starts = tuple(i for i, (r, _) in enumerate(rows) if r == "system")
    return History(hid, tuple(r for r, _ in rows), tuple(c for _, c in rows), starts, persona=persona)


def make_tiny_dataset() -> Dataset:
    questions = (
        # q_sport: evidence in session 1 only; answer b.
        Question("q_sport", "h1", "provide_preference_aligned_recommendations", "x",
                 "Can you suggest an activity for this weekend?", OPTS_SPORT, "b", (6, 8), 15, "p1", "sports"),
        # q_studio: same visible history as q_sport (same group); evidence in session 0.
        Question("q_studio", "h1", "recall_user_shared_facts", "x",
                 "Any tips for upgrading my setup?", OPTS_STUDIO, "c", (3,), 15, "p1", "music"),
        # q_noev: no evidence (local rewards undefined); earlier end index → its own group.
        Question("q_noev", "h1", "suggest_new_ideas", "x",
                 "What should I do next?", OPTS_STUDIO, "a", None, 10, "p1", "misc"),
        # q_garden on h2.
        Question("q_garden", "h2", "acknowledge_latest_user_preferences", "x",
                 "Which fertilizer should I buy?", (
                     "A strong chemical fertilizer for fast growth.",
                     "Organic compost, which you prefer for your vegetables.",
                     "No fertilizer at all.",
                 ), "b", (3,), 5, "p2", "garden"),
    )
    return Dataset(
        name="tiny",
        histories={"h1": _history("h1", H1, PERSONA_1), "h2": _history("h2", H2, PERSONA_2)},
        questions=questions,
        profiles=PROFILES,
        source="tests/env/conftest.py",
    )


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return make_tiny_dataset()


# ----------------------------------------------------------------- PersonaMem format

COLUMNS = [
    "persona_id", "question_id", "question_type", "topic", "context_length_in_tokens",
    "context_length_in_letters", "distance_to_ref_in_blocks", "distance_to_ref_in_tokens",
    "num_irrelevant_tokens", "distance_to_ref_proportion_in_context", "user_question_or_message",
    "correct_answer", "all_options", "shared_context_id", "end_index_in_shared_context",
]
CTX_A = "c3" * 32
CTX_B = "d4" * 32


def _ctx_a() -> list[dict]:
    sys_msg = {"role": "system", "content": "Current user persona: Name: Kanoa Manu\nKanoa is a software engineer."}
    return [
        sys_msg,
        {"role": "user", "content": "User: I’m producing music with software at home — it’s my passion 🎶."},
        {"role": "assistant", "content": "Assistant: That's a fantastic creative outlet!"},
        {"role": "user", "content": "User: I dislike crowded concerts; small venues feel better."},
        {"role": "assistant", "content": "Assistant: Intimate venues have great acoustics."},
        sys_msg,
        {"role": "user", "content": "User: I recently started exploring Pacific island rhythms in my tracks."},
        {"role": "assistant", "content": "Assistant: Blending traditions can be very rewarding."},
        {"role": "user", "content": "User: Honestly, I now prefer acoustic sets to electronic ones."},
        {"role": "assistant", "content": "Assistant: Acoustic sets feel very personal."},
    ]


def _ctx_b() -> list[dict]:
    sys_msg = {"role": "system", "content": "Current user persona: Name: Ruth Okafor\nRuth loves gardening."}
    return [
        sys_msg,
        {"role": "user", "content": "User: My heirloom tomatoes are ripening early this year."},
        {"role": "assistant", "content": "Assistant: Congratulations on the harvest!"},
        {"role": "user", "content": "User: I prefer organic compost over chemical fertilizers."},
        {"role": "assistant", "content": "Assistant: Compost keeps soil healthy."},
    ]


def _opts(texts: list[str]) -> str:
    # Python list literal with mixed quotes, like the real all_options column.
    labelled = [f"({l}) {t}" for l, t in zip("abcd", texts)]
    return "[" + ", ".join(repr(x) for x in labelled) + "]"


def write_personamem_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        ("0", "pm-q1", "recall_user_shared_facts", "music",
         "I went to an event blending modern beats with Pacific sounds.", "(c)",
         ["Since you dislike music production, that must have been odd.",
          "That sounds like an experience for anyone who loves eclectic sounds.",
          "Since you like producing music with software, that must have inspired you.",
          "Since you like painting, that must have been colourful."], CTX_A, 10),
        ("0", "pm-q2", "acknowledge_latest_user_preferences", "music",
         "Can you recommend a show for this weekend?", "(a)",
         ["An acoustic set in a small venue, since you now prefer acoustic music.",
          "A huge electronic festival with a big crowd.",
          "A stadium rock concert.",
          "A DJ night at a packed club."], CTX_A, 10),
        ("1", "pm-q3", "provide_preference_aligned_recommendations", "gardening",
         "What should I feed my tomato plants?", "(b)",
         ["A chemical fertilizer.", "Organic compost, as you prefer.", "Nothing.", "Coffee grounds only."],
         CTX_B, 5),
    ]
    with open(folder / "questions_32k.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for pid, qid, qtype, topic, query, ans, opts, ctx, end in rows:
            w.writerow({
                "persona_id": pid, "question_id": qid, "question_type": qtype, "topic": topic,
                "context_length_in_tokens": "120", "context_length_in_letters": "600",
                "distance_to_ref_in_blocks": "1", "distance_to_ref_in_tokens": "60",
                "num_irrelevant_tokens": "0", "distance_to_ref_proportion_in_context": "50.00%",
                "user_question_or_message": query, "correct_answer": ans, "all_options": _opts(opts),
                "shared_context_id": ctx, "end_index_in_shared_context": str(end),
            })
    with open(folder / "shared_contexts_32k.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({CTX_A: _ctx_a()}) + "\n")
        f.write(json.dumps({CTX_B: _ctx_b()}) + "\n")
    return folder


@pytest.fixture(scope="session")
def personamem_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_personamem_dir(tmp_path_factory.mktemp("personamem"))


# --------------------------------------------------------------------- synthetic data

#: Small synthetic data: generated into a temporary folder (never the user cache).
SYNTHETIC_KW = {"cache": False, "n_personas": 3}


@pytest.fixture(scope="session")
def synthetic_32k() -> Dataset:
    from comam_env.data.synthetic import load_synthetic

    return load_synthetic("32k", seed=0, **SYNTHETIC_KW)
