"""Speaker-neutral prompts and extraction on a two-person dialogue (LoCoMo), issue 15."""

from __future__ import annotations

import re

import pytest

from baselines.pipeline import HeuristicExtractor
from comam_env import prompts
from comam_env.data.locomo import read_locomo
from comam_env.data.locomo_fixture import write_locomo_fixture
from comam_env.roles import ROLE_NAMES


@pytest.fixture(scope="module")
def locomo(tmp_path_factory):
    return read_locomo(write_locomo_fixture(tmp_path_factory.mktemp("locomo"), n_samples=2))


def test_dialogue_speakers_come_from_the_data(locomo, toy):
    assert prompts.dialogue_speakers(locomo.histories["conv-1"]) == ("Caroline", "Melanie")
    assert prompts.dialogue_speakers(locomo.histories["conv-2"]) == ("Jon", "Gina")
    assert all(prompts.dialogue_speakers(h) is None for h in toy.histories.values())  # user + assistant


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_two_speaker_prompts_name_both_and_drop_neither(locomo, role):
    a, b = prompts.dialogue_speakers(locomo.histories["conv-2"])
    text = prompts.build_prompt(role, chunk="User: Jon: hi\nAssistant: Gina: hello", memory="m", query="q?",
                                options="", speakers=(a, b))
    assert "Jon" in text and "Gina" in text
    low = text.lower()
    # nothing tells an agent to leave out one speaker or that the other speaker is an assistant
    assert "assistant's" not in low and "the user" not in low
    assert not re.search(r"(leave out|drop|ignore)[^.]*\b(assistant|jon|gina)\b", low)
    if role == "extractor":
        assert "both of them" in low
    # the single-user prompt is unchanged when no speakers are given
    plain = prompts.build_prompt(role, chunk="User: hi", memory="m", query="q?", options="")
    assert "Jon" not in plain and ("user" in plain.lower())


def test_speakers_must_be_two_names():
    with pytest.raises(ValueError, match="two names"):
        prompts.build_prompt("extractor", chunk="x", speakers=("only one",))


def test_heuristic_extractor_keeps_both_speakers_on_a_dialogue(locomo):
    h = locomo.histories["conv-1"]
    chunk = h.render(range(len(h)))
    both = HeuristicExtractor(both_speakers=True)(chunk).splitlines()
    user_only = HeuristicExtractor()(chunk).splitlines()
    assert any(line.startswith("Assistant: Melanie:") for line in both)
    assert any(line.startswith("User: Caroline:") for line in both)
    assert not any(line.startswith("Assistant:") for line in user_only)
    # the second speaker's evidence is reachable: the turn answering "What new job did Melanie start?"
    job = next(q for q in locomo.questions if q.query == "What new job did Melanie start?")
    assert h.render(job.evidence) in set(both)


def test_env_prompts_on_a_dialogue_name_both_speakers(locomo, toy):
    from comam_env.env import env as make_env

    env = make_env(locomo, episode="full-history", judge=None)
    env.reset(options={"question_id": "conv-2:0"})
    seen = {}
    for agent in env.agent_iter():
        obs, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        seen.setdefault(agent.rsplit("_", 1)[0], obs["prompt"])
        # the length bound that decides whether to render covers the longer dialogue instructions
        assert env.unwrapped._may_be_capped(agent) or len(obs["prompt"]) <= env.unwrapped.config.max_observation_chars
        assert len(obs["prompt"]) <= len(obs["chunk"]) + len(obs["memory"]) + len(obs["query"]) + len(
            obs["options"]) + prompts.prompt_overhead(("Jon", "Gina"))
        env.step("User: Jon: I lost my job" if agent.startswith("extractor") else "x")
    assert "between two people, Jon and Gina" in seen["extractor"]
    assert "Jon and Gina" in seen["profiler"] and "Jon and Gina" in seen["retriever"]
    # a user/assistant history keeps the single-user instructions
    env = make_env(toy, episode="full-history", judge=None)
    env.reset(options={"question_id": toy.questions[0].question_id})
    obs, *_ = env.last()
    assert obs["prompt"].startswith(prompts.EXTRACTOR_INSTRUCTIONS)
