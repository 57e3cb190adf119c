"""benchmarks/habit_path.py: the habit line traced through M_f, M_c and the retriever's candidates."""

from __future__ import annotations

from tests.scripts import load_script


def _load():
    return load_script("benchmarks/habit_path.py")


def test_profile_conditions_put_the_habit_where_they_say():
    import comam_env
    from agents.base import make_policy

    bench = _load()
    env = comam_env.make("synthetic-mini", split="validation", episode="evidence-session", view="selection")
    view = bench.selection_view(env)
    ds = view._inner.dataset
    ids = [q for q in view._inner.question_ids if ds.question(q).topic == "lifestyle"][:4]
    assert ids
    dim = int(env.observation_space(env.possible_agents[0])["candidates"].shape[-1])
    policy = make_policy("selection", dim=dim, seed=0)
    out, right = bench.trace(view, policy, ids, bench.CONDITIONS, habits=True)
    gold, empty, lines = out["gold"], out["empty"], out["gold-lines"]
    # the gold profile of H always states the habit (a mention precedes the question); empty has none
    assert gold["habit_in_profile"] == 1.0 and gold["profile_units"] > 0
    assert empty["profile_units"] == 0 and empty["habit_in_profile"] == 0 and empty["habit_shown_as_profile"] == 0
    # a selection profile keeps M_f units only: the habit is in it only when it is in M_f
    assert lines["habit_in_profile"] <= lines["habit_in_fine"] and lines["profile_units"] <= lines["fine_units"]
    for name, s in out.items():
        assert s["habit_shown_as_profile"] <= s["habit_shown"]
        assert s["right_and_habit_kept"] <= min(s["habit_kept"], s["accuracy"])
        assert s["accuracy"] == round(sum(right[name].values()) / len(ids), 4)
    # the extractor and retriever are the same in every condition: M_f is too
    assert len({s["fine_units"] for s in out.values()}) == 1


def test_habit_of_reads_either_wording():
    from comam_env.data import synthetic_vocab as V

    bench = _load()
    for h, (a, b) in enumerate(V.HABITS):
        assert bench.habit_of(f"Shape it around the fact that you're {a}.") == h
        assert bench.habit_of(f"Funny enough, my cousin is {b}.") == h
    assert bench.habit_of("Build everything around rowing.") is None
    assert bench.lines_naming(["x", f"I'm {V.HABITS[2][1]}."], 2) == [f"I'm {V.HABITS[2][1]}."]
