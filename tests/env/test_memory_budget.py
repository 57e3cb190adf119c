"""The text view's retriever memory budget (``EnvConfig.memory_budget``): the rule of
:mod:`comam_env.memory_budget`, the same units as the selection view, the paper's setting
(``None``) unchanged, validation, determinism and the caches around the prompt."""

from __future__ import annotations

import numpy as np
import pytest

import comam_env
from comam_env import prompts
from comam_env.config import EnvConfig
from comam_env.embed import HashingEmbedder
from comam_env.env import env as make_env
from comam_env.memory_budget import MemoryBudget, memory_units, top_in_order
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode
from comam_env.text import split_units
from comam_env.views.selection import wrap

PROFILE = "\n".join([
    "The user enjoys cooking quick vegetable stir fry.",
    "The user prefers swimming laps at the pool this weekend.",
    "The user loves espresso coffee.",
    "The user suggests an activity for every weekend.",
    "The user produces music with Ableton.",
])


def _env(ds, **kw):
    kw.setdefault("judge", "gold")
    kw.setdefault("episode", "full-history")
    kw.setdefault("chunk_tokens", 40)
    return make_env(ds, **kw)


def _to_retriever(e, qid="q_sport", profile=None, **reset):
    """Reset on ``qid``; the extractor copies every chunk, the profiler writes ``profile``
    (default: copies M_f). Returns the retriever's observation."""
    e.reset(options={"question_id": qid, **reset})
    copy = CopyAllPolicy()
    while e.agent_selection != "retriever_0":
        a = e.agent_selection
        obs = e.observe(a)
        e.step(profile if a == "profiler_0" and profile is not None else copy(a, obs, e))
    return e.observe("retriever_0")


def _sections(memory: str) -> tuple[list[str], list[str]]:
    """(profile lines, fine lines) of a budgeted memory block."""
    head, _, fine = memory.partition("\n\n" + prompts.RETRIEVED_HEADING + "\n")
    assert head.startswith("## User profile\n") and fine, memory
    strip = lambda lines: [] if lines == [prompts.EMPTY] else lines  # noqa: E731
    return strip(head.split("\n")[1:]), strip(fine.split("\n"))


def test_no_budget_is_the_old_prompt(tiny_dataset):
    for kw in ({}, {"memory_budget": None}):
        e = _env(tiny_dataset, **kw)
        obs = _to_retriever(e, profile=PROFILE)
        raw = e.unwrapped
        assert obs["memory"] == prompts.render_memory(raw.fine_memory, raw.coarse_memory)
        q = raw.current_question
        assert obs["prompt"] == prompts.build_prompt("retriever", memory=obs["memory"], query=q.query,
                                                     options=prompts.render_options(q))


def test_budget_keeps_the_profile_then_the_most_query_similar_fine_units(tiny_dataset):
    e = _env(tiny_dataset, memory_budget=4)
    obs = _to_retriever(e, profile="The user produces music with Ableton.")
    raw = e.unwrapped
    profile, fine = _sections(obs["memory"])
    assert profile == ["The user produces music with Ableton."]
    # by hand: the 3 M_f units most like the query (hashing cosine), in chronological order
    units = split_units(raw.fine_memory)
    emb, q = HashingEmbedder(), HashingEmbedder().encode_one(raw.current_question.query)
    expected = [units[i] for i in top_in_order(emb.encode(units), q, 3)]
    assert fine == expected and len(units) > 3
    assert obs["memory"] != prompts.render_memory(raw.fine_memory, raw.coarse_memory)


def test_a_profile_longer_than_the_budget_leaves_no_fine_memory(tiny_dataset):
    e = _env(tiny_dataset, memory_budget=3)
    obs = _to_retriever(e, profile=PROFILE)
    profile, fine = _sections(obs["memory"])
    assert fine == []
    lines = PROFILE.split("\n")
    q = HashingEmbedder().encode_one(e.unwrapped.current_question.query)
    assert profile == [lines[i] for i in top_in_order(HashingEmbedder().encode(lines), q, 3)]
    assert profile != lines[:3]  # the ranking, not the first lines
    assert profile == [p for p in lines if p in profile]  # profile order


@pytest.mark.parametrize("budget", [1, 3, 5, 8, 100])
def test_the_text_prompt_holds_exactly_the_selection_views_units(tiny_dataset, budget, tmp_path):
    """Both views under the same budget and the hashing embedder show the same units, in the same
    order (the selection view: profile units then fine units; K large enough not to pre-rank)."""
    inner = _env(tiny_dataset, memory_budget=budget, queries_per_episode=2)
    view = wrap(inner, K=64, embedder="hashing", memory_budget=budget, persist_embeddings=False, progress=False)
    seen = 0
    for profile_rows in ((), (0, 2), (1, 3, 4, 5)):
        view.reset(options={"question_ids": ["q_sport", "q_studio"]})
        while view.agent_selection.startswith("extractor"):
            view.step(np.ones(view.K, np.int8))
        bits = np.zeros(view.K, np.int8)
        bits[list(profile_rows)] = 1
        view.step(bits)
        for _ in range(2):  # two questions on one memory: the fine units follow the query
            st = view.state_of("retriever_0")
            profile, fine = _sections(inner.observe("retriever_0")["memory"])
            assert profile + fine == st.texts
            assert st.from_profile == [True] * len(profile) + [False] * len(fine)
            n_units = sum(map(len, memory_units(split_units(inner.coarse_memory), split_units(inner.fine_memory))))
            assert len(st.texts) == min(budget, n_units) and st.dropped == 0
            seen += len(fine)
            view.step(view.gold_action("retriever_0"))
    assert seen > 0


def test_the_budget_follows_the_query_and_the_cached_observation_is_refreshed(tiny_dataset):
    e = _env(tiny_dataset, memory_budget=2, queries_per_episode=2)
    first = _to_retriever(e, profile="", question_ids=["q_sport", "q_studio"])
    assert e.observe("retriever_0") is first  # cached while nothing changed
    e.step(prompts.retriever_action("", "(b)"))
    second = e.observe("retriever_0")
    assert _sections(first["memory"])[1] != _sections(second["memory"])[1]
    budget = MemoryBudget(2)
    raw = e.unwrapped
    for obs, q in zip((first, second), raw.current_questions):
        assert _sections(obs["memory"]) == budget.select(raw.fine_memory, raw.coarse_memory, q.query)


def _play(e, observe: bool):
    """One episode with fixed text actions; ``observe=False`` never builds an observation."""
    e.reset(options={"question_ids": ["q_sport", "q_studio"]})
    h = e.unwrapped.current_history
    actions = {"extractor_0": None, "profiler_0": PROFILE,
               "retriever_0": prompts.retriever_action(h.render([6, 8]), "(b)")}
    while not e.unwrapped.episode.done:
        a = e.agent_selection
        if observe:
            e.observe(a)
        if a == "extractor_0":
            start, stop = e.unwrapped.current_chunk
            e.step(h.render(range(start, stop)))
        else:
            e.step(actions[a])
    return e.unwrapped.trajectory()


def test_deterministic_and_lazy_trajectory_prompts_match_observed_ones(tiny_dataset):
    kw = {"memory_budget": 3, "queries_per_episode": 2}
    observed = _play(_env(tiny_dataset, **kw), observe=True)
    lazy = _play(_env(tiny_dataset, **kw), observe=False)
    again = _play(_env(tiny_dataset, **kw), observe=True)
    prompts_of = lambda t: [s["prompt"] for s in t["steps"]]  # noqa: E731
    assert prompts_of(observed) == prompts_of(lazy) == prompts_of(again)
    retriever = [s["prompt"] for s in observed["steps"] if s["role"] == "retriever"]
    assert len(retriever) == 2 and all(prompts.RETRIEVED_HEADING in p for p in retriever)
    assert observed["config"]["memory_budget"] == 3 and observed["config"]["memory_embedder"] == "hashing"
    assert [s["local_reward"] for s in observed["steps"]] == [s["local_reward"] for s in lazy["steps"]]


def test_the_retrievers_local_reward_still_scores_what_it_copies(tiny_dataset):
    """The budget changes what the retriever is shown, not how its copy is scored (eq. 11)."""
    locals_ = []
    for budget in (None, 1):
        t = run_episode(_env(tiny_dataset, memory_budget=budget), OraclePolicy(tiny_dataset),
                        options={"question_id": "q_sport"})
        step = t["steps"][-1]
        locals_.append((step["local_reward"], step["local_parts"]["matched_messages"], t["global_reward"]))
    assert locals_[0] == locals_[1] and locals_[0][0] >= 0.9


def test_the_observation_size_bound_covers_the_budgeted_prompt(tiny_dataset):
    """``step`` skips building an unread observation only when it cannot be capped: the bound
    must still be an upper bound of the budgeted prompt's length."""
    n = len(_to_retriever(_env(tiny_dataset, memory_budget=2), profile=PROFILE)["prompt"])
    e = _env(tiny_dataset, memory_budget=2, max_observation_chars=n - 1)
    e.reset(options={"question_id": "q_sport"})
    while e.agent_selection != "retriever_0":  # nothing observed: the bound alone decides
        if e.agent_selection == "profiler_0":
            e.step(PROFILE)
        else:
            start, stop = e.unwrapped.current_chunk
            e.step(e.unwrapped.current_history.render(range(start, stop)))
    assert e.unwrapped._may_be_capped("retriever_0")
    assert len(e.observe("retriever_0")["prompt"]) == n - 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "16"])
def test_invalid_budgets_are_refused(tiny_dataset, bad):
    with pytest.raises(ValueError, match="memory_budget"):
        EnvConfig(memory_budget=bad)
    with pytest.raises(ValueError, match="memory_budget"):
        _env(tiny_dataset, memory_budget=bad)
    with pytest.raises(ValueError, match="memory_budget"):
        comam_env.make("synthetic-32k", memory_budget=bad)


def test_embedder_is_validated_and_the_selection_view_keeps_its_own_budget(tiny_dataset):
    with pytest.raises(ValueError, match="memory_embedder"):
        EnvConfig(memory_embedder="no-such-embedder")
    with pytest.raises(ValueError, match="memory_embedder"):
        EnvConfig(memory_embedder=object())
    assert EnvConfig().memory_budget is None and EnvConfig(memory_budget=np.int64(4)).memory_budget == 4
    with pytest.raises(ValueError, match="view_kwargs"):
        comam_env.make("synthetic-32k", view="selection", memory_budget=8)


def test_memory_units_and_select_without_room_to_spare():
    profile, fine = memory_units(["p", "p", "a"], ["a", "b", "", "b", "c"])
    assert profile == ["p", "a"] and fine == ["b", "c"]  # de-duplicated, the profile's line once
    b = MemoryBudget(10)
    assert b.select("b\nc", "p\na", "query") == (["p", "a"], ["b", "c"])  # within budget: everything
    assert MemoryBudget(None).select("x\ny", "", "q") == ([], ["x", "y"])
    # an empty query ties every unit: the earliest are kept
    assert MemoryBudget(2).select("one fact\ntwo facts\nthree facts", "", "") == ([], ["one fact", "two facts"])


def test_one_rule_for_both_views():
    from comam_env import memory_budget
    from comam_env.views import selection

    assert selection.budgeted_memory is memory_budget.budgeted_memory
    assert selection.DEFAULT_MEMORY_BUDGET == memory_budget.SELECTION_DEFAULT_BUDGET == 16
