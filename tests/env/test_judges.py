"""Profile judges (eq. 10): gold, embedding, LLM (stubbed and a tiny real model), factory."""

from __future__ import annotations

import pytest

from comam_env.data.schema import History
from comam_env.judges import (
    AutoJudge,
    EmbeddingJudge,
    GoldProfileJudge,
    JudgeResult,
    LLMJudge,
    ProfileJudge,
    build_rubric_prompt,
    get_judge,
    history_user_messages,
    parse_rubric_scores,
)

GOLD = (
    "The user switched from running to swimming because of a knee injury.",
    "The user's sister Clara works as a nurse in Boston.",
    "The user is learning to play the cello.",
    "The user prefers vegetarian recipes since last spring.",
)

HISTORY = "\n".join([
    "User: Hi! I switched from running to swimming because of my knee injury.",
    "Assistant: Swimming is gentle on the joints.",
    "User: My sister Clara works as a nurse in Boston.",
    "Assistant: That is demanding work.",
    "User: I started learning the cello last month, it is hard but fun.",
    "Assistant: String instruments take patience.",
    "User: Since last spring I only cook vegetarian recipes.",
    "Assistant: Great, I can suggest some.",
    "User: The weather has been rainy all week here.",
    "User: I watched a documentary about whales yesterday.",
])


# ------------------------------------------------------------------ gold judge


def test_gold_judge_oracle_empty_and_by_hand():
    judge = GoldProfileJudge()
    oracle = judge.score("\n".join(GOLD), history=HISTORY, gold_profile=GOLD)
    assert oracle.score == 1.0 and oracle.parts["recall"] == 1.0 and oracle.parts["precision"] == 1.0
    assert judge.score("", history=HISTORY, gold_profile=GOLD).score == 0.0
    # 2 of 4 gold statements + 2 unrelated lines: c = 2, P = 2/4, R = 2/4
    # F1 (the default) = 2*.5*.5 / (.5 + .5) = 0.5
    profile = "\n".join([GOLD[0], GOLD[2], "Likes whales", "Rainy weather"])
    r = judge.score(profile, history=HISTORY, gold_profile=GOLD)
    assert r.parts["count"] == 2 and r.score == pytest.approx(0.5)
    # 2 of 4 gold, no padding: P = 1, R = .5 -> F1 = 2*.5 / 1.5 = 0.6667; F2 = 5*.5 / (4 + .5) = 0.5556
    r = judge.score("\n".join(GOLD[:2]), history=None, gold_profile=GOLD)
    assert r.score == pytest.approx(1.0 / 1.5) and r.parts["beta"] == 1.0
    assert r.parts["matched_gold"] == [0, 1]
    assert GoldProfileJudge(beta=2).score("\n".join(GOLD[:2]), gold_profile=GOLD).score == pytest.approx(2.5 / 4.5)


def test_gold_judge_paraphrase_and_recall_weighting():
    judge = GoldProfileJudge()
    # paraphrases sharing >= half of each gold statement's content words still match
    paraphrased = "\n".join([
        "Swims now instead of running - knee injury",
        "Sister Clara: nurse in Boston",
        "Learning the cello",
        "Cooks vegetarian recipes since last spring",
    ])
    r = judge.score(paraphrased, gold_profile=GOLD)
    assert r.score >= 0.9, r.parts
    # copying the whole history covers the gold but is padded: below the oracle, above empty
    copy = judge.score(HISTORY, gold_profile=GOLD)
    assert 0.5 < copy.score < 1.0


def test_gold_judge_requires_gold():
    with pytest.raises(ValueError, match="gold_profile"):
        GoldProfileJudge().score("x", history=HISTORY, gold_profile=None)


# ------------------------------------------------------------------ embedding judge


def test_history_user_messages_forms():
    assert history_user_messages(HISTORY)[:2] == [
        "Hi! I switched from running to swimming because of my knee injury.",
        "My sister Clara works as a nurse in Boston.",
    ]
    assert len(history_user_messages(HISTORY)) == 6
    assert history_user_messages("[3] User: hello\n[4] Assistant: hi") == ["hello"]
    assert history_user_messages("plain line one\nplain line two") == ["plain line one", "plain line two"]
    h = History("h", ("system", "user", "assistant"), ("persona", "I like tea", "ok"), (0,))
    assert history_user_messages(h) == ["I like tea"]
    assert history_user_messages(["a", " ", "b"]) == ["a", "b"]
    assert history_user_messages(None) == []


def test_embedding_judge_prefers_concise_grounded_profile_over_copying():
    judge = EmbeddingJudge("hashing")
    good = judge.score("\n".join(GOLD), history=HISTORY, gold_profile=None)
    copy = judge.score(HISTORY, history=HISTORY, gold_profile=None)
    unrelated = judge.score("Enjoys motorbikes and heavy metal concerts", history=HISTORY, gold_profile=None)
    empty = judge.score("", history=HISTORY, gold_profile=None)
    assert empty.score == 0.0 and empty.parts["empty_profile"]
    assert 0.0 <= unrelated.score < good.score <= 1.0
    assert copy.score < good.score
    # copying everything: every user message is covered (coverage = 1; the copied assistant
    # lines lower grounding) but concision = 0.2 / ratio and ratio > 1, so the score is <= 0.2
    assert copy.parts["coverage"] == pytest.approx(1.0) and copy.parts["grounding"] < 1.0
    assert copy.parts["length_ratio"] > 1.0 and copy.score <= 0.2 + 1e-9
    # score = concision * (grounding + coverage) / 2, exactly
    p = good.parts
    assert good.score == pytest.approx(p["concision"] * (p["grounding"] + p["coverage"]) / 2)
    # deterministic
    assert judge.score("\n".join(GOLD), history=HISTORY, gold_profile=None) == good


def test_embedding_judge_subsamples_long_history_and_handles_empty():
    judge = EmbeddingJudge("hashing", max_history_messages=5)
    long_history = "\n".join(f"User: message number {i} about jazz and tea" for i in range(100))
    r = judge.score("Likes jazz and tea", history=long_history, gold_profile=None)
    assert r.parts["n_messages"] == 100 and r.parts["n_messages_embedded"] == 5
    assert judge.score("Likes jazz", history="", gold_profile=None).score == 0.0


# ------------------------------------------------------------------ LLM judge


@pytest.mark.parametrize(
    "reply, scores, flags",
    [
        ("scenario: 8\npreference: 6\nprofile: 10", {"scenario": 8, "preference": 6, "profile": 10}, {}),
        ("**Scenario**: 7/10\nPreferences - 5.5\nUser profile = 9", {"scenario": 7, "preference": 5.5, "profile": 9}, {}),
        ("scenario: 3 ... on reflection scenario: 4\npreference: 12\nprofile: 2",
         {"scenario": 4, "preference": 10, "profile": 2}, {}),  # last mention wins; clipped to 10
        ("scenario: 9", {"scenario": 9, "preference": 0, "profile": 0}, {"missing": ["preference", "profile"]}),
        ("8, 6 and 10", {"scenario": 8, "preference": 6, "profile": 10}, {"positional": True}),
    ],
)
def test_parse_rubric_scores(reply, scores, flags):
    got, f = parse_rubric_scores(reply)
    assert got == pytest.approx(scores)
    assert not f["parse_failed"]
    for k, v in flags.items():
        assert f[k] == v


@pytest.mark.parametrize("reply", ["", "asdf qwer <final_answer>", "1 2 3 4 5", "scores 40 50 60"])
def test_parse_rubric_scores_failures(reply):
    got, f = parse_rubric_scores(reply)
    assert f["parse_failed"] and got == {}


def test_llm_judge_with_stubbed_generate():
    prompts = []

    def fake(prompt):
        prompts.append(prompt)
        return "scenario: 8\npreference: 6\nprofile: 10"

    judge = LLMJudge(generate_fn=fake)
    r = judge.score("Swims because of a knee injury.", history=HISTORY, gold_profile=None)
    # (8 + 6 + 10) / 30 = 0.8
    assert r.score == pytest.approx(0.8)
    assert r.parts["rubric_scores"] == {"scenario": 8.0, "preference": 6.0, "profile": 10.0}
    assert not r.parts["parse_failed"]
    # the prompt covers the three rubrics, the user's messages (not the assistant's) and the profile
    p = prompts[0]
    for word in ("scenario", "preference", "profile", "0 (missing or wrong) to 10"):
        assert word in p
    assert "sister Clara works as a nurse" in p and "Swimming is gentle" not in p
    assert "Swims because of a knee injury." in p


def test_llm_judge_unparsable_reply_and_empty_profile():
    judge = LLMJudge(generate_fn=lambda prompt: "I cannot rate this.")
    r = judge.score("Likes tea", history=HISTORY, gold_profile=None)
    assert r.score == 0.0 and r.parts["parse_failed"] is True
    assert LLMJudge(generate_fn=lambda p: "x", fallback_score=0.25).score("Likes tea", history=HISTORY).score == 0.25
    never = LLMJudge(generate_fn=lambda p: pytest.fail("must not be called"))
    assert never.score("  \n ", history=HISTORY).score == 0.0


def test_llm_judge_truncates_history_to_budget():
    seen = []
    judge = LLMJudge(generate_fn=lambda p: seen.append(p) or "scenario: 5\npreference: 5\nprofile: 5",
                     max_history_tokens=30)
    history = "\n".join(f"User: message {i} with some words in it" for i in range(50))
    r = judge.score("Likes words", history=history)
    assert r.parts["history_truncated"] and r.score == pytest.approx(0.5)
    assert "message 49 " in seen[0] and "message 0 " not in seen[0]  # most recent kept


def test_llm_judge_requires_model_or_generate_fn():
    with pytest.raises(ValueError, match="model"):
        LLMJudge()


@pytest.mark.slow  # imports transformers and runs a (tiny) model: ~5 s idle, more on a loaded machine
def test_llm_judge_with_tiny_random_model(tmp_path):
    tiny = pytest.importorskip("agents.tiny")
    pytest.importorskip("transformers")
    path = tiny.build_tiny_llm(str(tmp_path / "tiny"))
    judge = get_judge("llm", model=path, device="auto", max_new_tokens=12)
    history = "\n".join(f"User: I really enjoy hiking and jazz, session {i}." for i in range(120))
    r1 = judge.score("The user likes hiking.\nThe user prefers jazz.", history=history, gold_profile=None)
    r2 = judge.score("The user likes hiking.\nThe user prefers jazz.", history=history, gold_profile=None)
    assert 0.0 <= r1.score <= 1.0
    assert isinstance(r1.parts["reply"], str)
    # a random model writes garbage: whatever it wrote, the score follows the documented parse rule
    scores, flags = parse_rubric_scores(r1.parts["reply"])
    assert r1.parts["parse_failed"] == flags["parse_failed"]
    if flags["parse_failed"]:
        assert r1.score == 0.0
    else:
        assert r1.score == pytest.approx(sum(scores.values()) / 30)
    # the long history was cut to the tiny model's context window
    assert r1.parts.get("history_truncated")
    assert r1 == r2  # greedy decoding is deterministic


# ------------------------------------------------------------------ factory


def test_get_judge_by_name_and_object():
    assert isinstance(get_judge("gold"), GoldProfileJudge)
    assert isinstance(get_judge("embedding", embedder="hashing"), EmbeddingJudge)
    assert isinstance(get_judge("embedding:hashing"), EmbeddingJudge)
    assert isinstance(get_judge("llm", generate_fn=lambda p: ""), LLMJudge)
    assert isinstance(get_judge(None), AutoJudge)
    obj = GoldProfileJudge()
    assert get_judge(obj) is obj
    assert isinstance(obj, ProfileJudge)
    with pytest.raises(ValueError, match="gold, embedding, llm, auto"):
        get_judge("gpt-judge")
    with pytest.raises(TypeError):
        get_judge(42)


def test_auto_judge_picks_gold_when_available():
    judge = get_judge("auto", embedder="hashing")
    with_gold = judge.score("\n".join(GOLD), history=HISTORY, gold_profile=GOLD)
    without = judge.score("\n".join(GOLD), history=HISTORY, gold_profile=None)
    assert with_gold.parts["judge"] == "gold" and with_gold.score == 1.0
    assert without.parts["judge"] == "embedding"
    assert without == EmbeddingJudge("hashing").score("\n".join(GOLD), history=HISTORY, gold_profile=None)


def test_judge_result_to_dict():
    r = JudgeResult(0.5, {"judge": "x", "a": 1})
    assert r.to_dict() == {"score": 0.5, "judge": "x", "a": 1}


def test_rubric_prompt_lists_messages():
    p = build_rubric_prompt("P", ["m1", "m2"])
    assert "- m1\n- m2" in p and "scenario: <0-10>" in p


def test_llm_judge_prompt_is_utf8_safe():
    seen = []
    judge = LLMJudge(generate_fn=lambda p: seen.append(p.encode("utf-8")) or "scenario: 10\npreference: 10\nprofile: 10")
    assert judge.score("Likes jazz \udcff", history="User: jazz \udcfe").score == 1.0
    assert b"Likes jazz ?" in seen[0]
