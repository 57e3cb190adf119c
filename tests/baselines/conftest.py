"""Hand-built datasets for the baseline tests (no generator, no files, milliseconds).

``toy_dataset()`` holds two users. Each history has a preference and its later
update, facts, small talk and a filler session, and questions of several types
whose gold option paraphrases the *latest* statement while a distractor repeats
the stale one — the situation memory systems must get right.
"""

from __future__ import annotations

import pytest

from comam_env.data.schema import Dataset, History, Question


def _history(hid: str, persona: str, sessions: list[list[tuple[str, str]]]) -> History:
    roles, contents, starts = [], [], []
    for sess in sessions:
        starts.append(len(roles))
        roles.append("system")
        contents.append(f"Current user persona: {persona}")
        for role, text in sess:
            roles.append(role)
            contents.append(text)
    return History(hid, tuple(roles), tuple(contents), tuple(starts), persona=persona)


def toy_dataset() -> Dataset:
    h1 = _history("h1", "Kanoa, 32, software engineer", [
        [("user", "I really love jazz music, especially late night saxophone records."),
         ("assistant", "Jazz is wonderful for unwinding."),
         ("user", "What is the weather like for a walk tomorrow?"),
         ("assistant", "It should be sunny."),
         ("user", "I enjoy hiking on mountain trails every weekend."),
         ("assistant", "Hiking is great exercise.")],
        [("user", "Can you recommend a quick pasta recipe?"),
         ("assistant", "Try aglio e olio."),
         ("user", "My sister Leilani moved to Seattle last spring."),
         ("assistant", "Seattle is lovely.")],
        [("user", "I no longer like jazz music; I switched to classical piano because it helps me focus."),
         ("assistant", "Classical piano is great for focus."),
         ("user", "I can't stand crowded concerts anymore."),
         ("assistant", "Smaller venues can be calmer.")],
    ])
    h2 = _history("h2", "Ruth, 67, retired teacher", [
        [("user", "I prefer heirloom tomatoes over hybrid varieties in my garden."),
         ("assistant", "Heirlooms have great flavour."),
         ("user", "The news today was quite boring."),
         ("assistant", "Some days are quiet.")],
        [("user", "I started knitting scarves for my grandchildren this winter."),
         ("assistant", "What a thoughtful gift."),
         ("user", "I dislike cold mornings in the garden."),
         ("assistant", "Gloves help.")],
    ])
    q = []

    def add(qid, hid, qtype, query, options, answer, evidence, end):
        q.append(Question(qid, hid, qtype, qtype, query, tuple(options), answer, evidence, end,
                          persona_id=hid, topic="music"))

    add("q1", "h1", "acknowledge_latest_user_preferences", "Can you suggest some music for studying tonight?",
        ["Some late night saxophone jazz records.", "A playlist of classical piano pieces to help you focus.",
         "Loud heavy metal albums.", "A podcast about gardening tips."], "b", (13,), 17)
    add("q2", "h1", "recall_user_shared_facts", "Where did my sister move to?",
        ["Leilani moved to Portland.", "Your brother moved to Seattle.", "Leilani moved to Seattle last spring.",
         "Your sister stayed at home."], "c", (10,), 17)
    add("q3", "h1", "track_full_preference_evolution", "How has my taste in music changed?",
        ["You always loved heavy metal.", "You never listened to music.",
         "You moved from jazz music to classical piano.", "You moved from piano to jazz."], "c", (1, 13), 17)
    add("q4", "h1", "provide_preference_aligned_recommendations", "Any weekend activity ideas?",
        ["Spend the weekend hiking mountain trails.", "Go to a crowded stadium concert.",
         "Stay inside and watch television.", "Try competitive eating."], "a", (5,), 7)
    add("q5", "h2", "acknowledge_latest_user_preferences", "Which tomatoes should I plant next year?",
        ["Hybrid varieties bred for yield.", "No tomatoes at all.", "Plastic decorative tomatoes.",
         "Heirloom tomatoes, which you prefer over hybrids."], "d", (1,), 10)
    add("q6", "h2", "suggest_new_ideas", "What craft project could I try next?",
        ["Knitting matching hats to go with the scarves for your grandchildren.", "Welding metal sculptures.",
         "Skydiving lessons.", "Building a racing car."], "a", (6,), 10)
    add("q7", "h2", "generalize_to_new_scenarios", "What time should I do garden work?",
        ["Early cold mornings in the garden.", "Late at night in the dark.",
         "Warmer afternoons, since you dislike cold mornings in the garden.", "Never garden again."], "c", None, 10)
    add("q8", "h1", "revisit_reasons_behind_preference_updates", "Why did I change the music I listen to?",
        ["Because jazz became too expensive.", "Because classical piano helps you focus.",
         "Because your sister asked you to.", "Because of the weather."], "b", (13,), 17)
    return Dataset("toy", {"h1": h1, "h2": h2}, tuple(q), profiles={
        "h1": ("prefers classical piano over jazz music", "enjoys hiking"),
        "h2": ("prefers heirloom tomatoes", "knits scarves", "dislikes cold mornings")})


@pytest.fixture
def toy() -> Dataset:
    return toy_dataset()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Embedding caches and generated data go to a temporary folder, never the user's cache."""
    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
