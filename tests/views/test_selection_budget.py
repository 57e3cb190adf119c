"""The retriever's memory budget in the selection view: the profile first and flagged, fine
memory under the budget, so the profiler's output changes what the retriever sees."""

from __future__ import annotations

import numpy as np
import pytest

from comam_env.views.selection import budgeted_memory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _to_profiler(view, qid="h0-q0"):
    """Reset on ``qid`` and run the extractor (keep all); the profiler's state."""
    view.reset(options={"question_id": qid})
    while view.agent_selection.startswith("extractor"):
        view.step(np.ones(view.K, np.int8))
    return view.state_of("profiler_0")


def _to_retriever(view, profile_rows=()):
    """Step the profiler (keep ``profile_rows``); the retriever's state."""
    bits = np.zeros(view.K, np.int8)
    bits[list(profile_rows)] = 1
    view.step(bits)
    assert view.agent_selection == "retriever_0"
    return view.state_of("retriever_0")


def test_budgeted_memory_profile_first_then_query_similar_fine_units():
    q = np.array([1.0, 0.0])
    fine_emb = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [0.9, 0.1]])
    prof_emb = np.array([[0.0, 1.0]])
    kp, kf = budgeted_memory(["p"], list("abcd"), prof_emb, fine_emb, q, 3)
    assert kp.tolist() == [0] and kf.tolist() == [1, 3]  # the 2 fine units most like the query, in order
    kp, kf = budgeted_memory(["p", "r", "s"], list("abcd"), np.array([[0, 1.0], [1, 0], [0.5, 0.5]]), fine_emb, q, 2)
    assert kp.tolist() == [1, 2] and kf.tolist() == []  # a profile over budget leaves no room for M_f
    kp, kf = budgeted_memory(["p"], list("abcd"), prof_emb, fine_emb, q, None)
    assert kp.tolist() == [0] and kf.tolist() == [0, 1, 2, 3]


def test_profile_units_reach_the_retriever_flagged_and_outside_the_fine_budget(view_factory):
    view = view_factory(K=32, memory_budget=3, episode="full-history")
    prof = _to_profiler(view)
    assert len(prof.texts) > 4
    without = _to_retriever(view, profile_rows=())
    assert len(without.texts) == 3 and not any(without.from_profile)
    assert view.observe("retriever_0")["source"].sum() == 0
    assert view.infos["retriever_0"]["over_budget"] == len(prof.texts) - 3

    # the profile keeps a unit that is not among the 3 most query-like units
    j = next(i for i, t in enumerate(prof.texts) if t not in without.texts)
    first = prof.texts[j]
    _to_profiler(view)
    with_profile = _to_retriever(view, profile_rows=(j,))
    assert with_profile.texts[0] == first and with_profile.from_profile == [True, False, False]
    obs = view.observe("retriever_0")
    assert obs["source"].tolist()[:3] == [1, 0, 0] and obs["mask"].sum() == 3
    assert len(with_profile.texts) == 3 and set(with_profile.texts[1:]) < set(without.texts)  # it took a slot


def test_no_budget_is_the_papers_setting(view_factory):
    view = view_factory(K=64, memory_budget=None, episode="full-history")
    n_fine = len(_to_profiler(view).texts)
    st = _to_retriever(view, profile_rows=(0, 1))
    # everything is shown: M_f (the profile's lines not repeated) followed by the profile, flagged
    assert len(st.texts) == n_fine and st.from_profile == [False] * (n_fine - 2) + [True, True]
    assert st.over_budget == 0


def test_memory_budget_is_validated(view_factory):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="memory_budget"):
            view_factory(memory_budget=bad)
