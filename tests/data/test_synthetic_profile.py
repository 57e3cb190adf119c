"""Synthetic data: attainable gold profiles (eq. 10 target = what H supports), habit questions
that only a profile carries under a memory budget, the mini size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from comam_env.data import synthetic as S
from comam_env.data.schema import ProfileStatement, resolve_profile
from comam_env.judges import GoldProfileJudge
from comam_env.text import content_tokens, estimate_tokens


@pytest.fixture(scope="module")
def small_ds():
    return S.load_synthetic("32k", seed=4, cache=False, n_personas=4)


def _evidence_session_ranges(ds, q) -> list[range]:
    """The sessions holding q's evidence (the env's evidence-session H), message ranges."""
    h = ds.history_for(q)
    sessions = sorted({h.session_of(i) for i in q.evidence})
    starts = list(h.session_starts) + [len(h)]
    return [range(starts[s], min(starts[s + 1], q.end_index)) for s in sessions]


def test_resolve_profile_keeps_supported_statements_and_the_latest_of_a_group():
    st = (ProfileStatement("who", None), ProfileStatement("jazz", (3,), "pref:music", 0),
          ProfileStatement("blues", (9,), "pref:music", 1), ProfileStatement("fact", (5,)),
          ProfileStatement("habit", (12, 20)))
    assert resolve_profile(st, [range(0, 6)]) == ("who", "jazz", "fact")
    assert resolve_profile(st, [range(0, 6), range(8, 13)]) == ("who", "blues", "fact", "habit")
    assert resolve_profile(st, [range(19, 21)]) == ("who", "habit")
    assert resolve_profile(st, [range(7, 7)]) == ()  # an empty H supports nothing


def test_gold_profile_is_what_the_episode_history_supports(small_ds):
    """Every statement of the H-resolved gold has evidence inside H, and the profile made of the
    evidence lines scores 1 with the gold judge: the profiler's reward is attainable."""
    ds = small_ds
    judge = GoldProfileJudge()
    by_text = {}
    for pid, statements in ds.profile_statements.items():
        for s in statements:
            by_text[(pid, s.text)] = s
    checked = 0
    for q in ds.questions[::7]:
        h = ds.history_for(q)
        ranges = _evidence_session_ranges(ds, q)
        gold = ds.profile_for(q, ranges)
        assert gold and len(gold) < len(ds.profiles[q.persona_id]) + 1
        inside = set().union(*[set(r) for r in ranges])
        lines = []
        for text in gold:
            s = by_text[(q.persona_id, text)]
            if s.evidence is None:
                lines.append(" ".join(h.contents[ranges[0].start].split()))  # the persona message, one line
            else:
                ev = [i for i in s.evidence if i in inside]
                assert ev, f"{q.question_id}: gold statement {text!r} has no evidence in H"
                lines.append(h.contents[ev[-1]])
        assert judge.score("\n".join(lines), gold_profile=gold).score == pytest.approx(1.0), q.question_id
        checked += 1
    assert checked > 10
    # an evidence session holds far fewer statements than the persona's final profile
    sizes = [len(ds.profile_for(q, _evidence_session_ranges(ds, q))) for q in ds.questions]
    assert np.mean(sizes) < 0.6 * np.mean([len(p) for p in ds.profiles.values()])


def test_preference_updates_are_resolved_as_of_the_history(small_ds):
    """With the sessions of two states of a topic in H, only the later state is gold."""
    ds = small_ds
    pid = "0"
    st = [s for s in ds.profile_statements[pid] if s.group is not None]
    group = st[0].group
    states = sorted((s for s in st if s.group == group), key=lambda s: s.order)
    assert len(states) == 3  # updates_per_topic = 2
    first, second = states[0].evidence[0], states[1].evidence[0]
    h = next(h for h in ds.histories.values()
             if any(q.persona_id == pid and q.history_id == h.history_id for q in ds.questions))
    ranges = [range(h.session_starts[h.session_of(first)], first + 1),
              range(h.session_starts[h.session_of(second)], second + 1)]
    resolved = resolve_profile(ds.profile_statements[pid], ranges)
    assert states[1].text in resolved and states[0].text not in resolved


def test_profiles_json_is_the_whole_context_resolution(tmp_path):
    folder = S.generate("32k", 2, tmp_path, n_personas=2)
    profiles = json.loads((folder / "profiles.json").read_text())
    statements = S.read_profile_statements(folder / "profile_statements.json")
    for pid, texts in profiles.items():
        assert tuple(texts) == resolve_profile(statements[pid], [range(0, 10**9)])


def test_bad_profile_statements_file_names_the_statement(tmp_path):
    path = tmp_path / "profile_statements.json"
    path.write_text(json.dumps({"0": [{"text": "ok", "evidence": [1]}, {"text": 3}]}))
    with pytest.raises(ValueError, match=r"persona '0', statement 1"):
        S.read_profile_statements(path)


def test_habit_questions_are_spread_and_not_query_similar(small_ds):
    ds = small_ds
    habit_qs = [q for q in ds.questions if q.topic == S.HABIT_TOPIC]
    assert len(habit_qs) == 4 * 2 * 2  # habits_per_persona = 2, question_repeats = 2 (32k)
    for q in habit_qs:
        h = ds.history_for(q)
        assert q.qtype == S.HABIT_QUESTION_TYPE and all(h.roles[i] == "user" for i in q.evidence)
        query = content_tokens(q.query)
        for i in q.evidence:
            assert not query & content_tokens(h.contents[i]), (q.query, h.contents[i])
    # the mentions of one habit lie in distinct sessions (up to habit_mentions of them)
    full = [q for q in habit_qs if q.end_index == len(ds.history_for(q))]
    assert full
    for q in full:
        h = ds.history_for(q)
        assert len({h.session_of(i) for i in q.evidence}) == len(q.evidence) == 3


def test_mini_size_is_short_and_few_sessions():
    ds = S.load_synthetic("mini", seed=0, cache=False, n_personas=6)
    assert ds.name == "synthetic-mini"
    for h in ds.histories.values():
        assert h.num_sessions <= 14
        assert sum(estimate_tokens(c) for c in h.contents) <= S.TARGET_TOKENS["mini"]
    assert len(ds.questions) == 6 * (2 * 7 + 1)  # 2 topics x 7 questions + 1 habit question
    assert {q.qtype for q in ds.questions} >= {"recall_user_shared_facts", S.HABIT_QUESTION_TYPE}


def test_question_repeats_ask_at_distinct_boundaries():
    """Each question is built question_repeats times in a row (consecutive ids), at distinct ends."""
    ds = S.load_synthetic("32k", seed=1, cache=False, n_personas=2, question_repeats=3)
    assert len(ds.questions) == 2 * 34 * 3  # no question ran out of boundaries here
    qs = sorted(ds.questions, key=lambda q: q.question_id)
    for j in range(0, len(qs), 3):
        group = qs[j:j + 3]
        assert len({(q.history_id, q.qtype, q.topic) for q in group}) == 1
        assert len({q.end_index for q in group}) == 3
        assert all(max(q.evidence) < q.end_index for q in group)
