"""episode="evidence+context": the evidence sessions plus earlier sessions holding the same
topic's other evidence (stale preferences), a training curriculum toward full histories."""

from __future__ import annotations

import pytest

import comam_env
from comam_env.data.synthetic import load_synthetic
from comam_env.policies import OraclePolicy, run_episode


@pytest.fixture(scope="module")
def ds():
    return load_synthetic("32k", seed=2, cache=False, n_personas=3)


def _sessions(e, qid):
    e.reset(options={"question_id": qid})
    return e.unwrapped.trajectory()["history"]


def test_context_sessions_hold_the_stale_preferences_of_the_topic(ds):
    ctx = comam_env.make("synthetic-32k", dataset=ds, split="all", episode="evidence+context")
    ev = comam_env.make("synthetic-32k", dataset=ds, split="all", episode="evidence-session")
    checked = 0
    for q in ds.questions:
        if q.qtype != "acknowledge_latest_user_preferences":
            continue
        h = ds.history_for(q)
        info, base = _sessions(ctx, q.question_id), _sessions(ev, q.question_id)
        assert set(base["sessions"]) <= set(info["sessions"])
        extra = info["context_sessions"]
        assert set(extra) == set(info["sessions"]) - set(base["sessions"]) and len(extra) <= 4
        assert all(h.session_starts[s] < q.end_index for s in extra)
        # an earlier preference statement of the same topic (evidence of another question) is in H
        same_topic = {h.session_of(i) for o in ds.questions if o.history_id == q.history_id and o.topic == q.topic
                      for i in o.evidence if i < q.end_index} - set(base["sessions"])
        if same_topic:
            assert set(extra) & same_topic
            checked += 1
    assert checked > 5


def test_no_context_sessions_is_the_evidence_session_episode(ds):
    ctx = comam_env.make("synthetic-32k", dataset=ds, split="all", episode="evidence+context", context_sessions=0)
    ev = comam_env.make("synthetic-32k", dataset=ds, split="all", episode="evidence-session")
    for q in ds.questions[::5]:
        assert _sessions(ctx, q.question_id)["sessions"] == _sessions(ev, q.question_id)["sessions"]


def test_oracle_scores_one_on_context_episodes(ds):
    e = comam_env.make("synthetic-32k", dataset=ds, split="all", episode="evidence+context")
    for q in ds.questions[::9]:
        t = run_episode(e, OraclePolicy(), options={"question_id": q.question_id})
        assert t["global_reward"] == 1.0


def test_context_sessions_is_validated():
    with pytest.raises(ValueError, match="context_sessions"):
        comam_env.make("synthetic-32k", episode="evidence+context", context_sessions=-1)


def test_gold_judge_beta_knob_raises_a_verbose_profiles_reward(ds):
    """judge='gold:<beta>': a larger recall weight scores a keep-everything profile higher, while a
    profile of exactly the supported statements scores 1 under any beta."""
    q = ds.questions[0]
    scores = {}
    for beta in (1, 2, 8):
        e = comam_env.make("synthetic-32k", dataset=ds, split="all", judge=f"gold:{beta}")
        e.reset(options={"question_id": q.question_id})
        while e.agent_selection.startswith("extractor"):
            start, stop = e.unwrapped.current_chunk
            h = e.unwrapped.current_history
            e.step(h.render(range(start, stop)))
        e.step(e.unwrapped.fine_memory)  # the verbose profile: all of M_f
        scores[beta] = e.unwrapped.infos["profiler_0"]["local_reward"]
    assert 0 < scores[1] < scores[2] < scores[8] < 1
    with pytest.raises(ValueError, match="gold:<beta>"):
        comam_env.make("synthetic-32k", dataset=ds, split="all", judge="gold:x")
