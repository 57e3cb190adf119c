"""Where does the persona's habit go? Trace it through the memory on the synthetic habit questions.

Habit questions (topic ``lifestyle``, :mod:`comam_env.data.synthetic`, "Habits") are meant to be
answerable only through the profile under the selection view's memory budget. For a trained
selection-policy run and the validation questions of one episode kind this script plays every
question once per profile condition, with the run's extractor and retriever (greedy):

* ``policy`` — the run's own profiler;
* ``empty`` — M_c empty (the profiler intervention of ``benchmarks/role_interventions.py``);
* ``gold-lines`` — the profiler keeps the M_f units the gold-profile judge matches to a gold
  statement (:func:`comam_env.matching.match_units`, token recall): the best a selection
  profiler, which can only keep M_f units, can do;
* ``gold`` — M_c is the gold profile of the history H the episode shows
  (:meth:`comam_env.data.schema.Dataset.profile_for`), written to the text env directly,

and reports, as shares of the questions (``--questions habit``, the default), whether the
persona's habit (either wording of the habit the right option names) is in M_f, in M_c, among the
retriever's budgeted candidates (and as a profile unit), among the lines it keeps, and whether
the answer is right; for the three distractor habits the mean number per question in M_f, shown
and kept (other people's habit decoys are mentioned in the history); and the mean sizes of M_f,
M_c and of the candidates, the units left out by the budget and how often M_c alone exceeds it.
``--questions other`` reports the sizes and accuracy on the other questions.

    python benchmarks/habit_path.py --run runs/NAME --episode full-history --json
    python benchmarks/habit_path.py --run runs/NAME --memory-budget 24   # what-if: another budget

``--json`` prints ``{"conditions": {condition: {...}}, "right": {condition: {question id: 0/1}}, "run", "episode", "questions", "n_questions",
"memory_budget", "wall_seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONDITIONS = ("policy", "empty", "gold-lines", "gold")
# the view's default budget, without importing the package at module load
_DEFAULT = "view default"


def habit_of(text: str) -> int | None:
    """Index into ``synthetic_vocab.HABITS`` of the habit ``text`` names (either wording), or ``None``."""
    from comam_env.data import synthetic_vocab as V

    for h, wordings in enumerate(V.HABITS):
        if any(w in text for w in wordings):
            return h
    return None


def lines_naming(lines, habit: int) -> list[str]:
    """The lines naming ``habit`` in either wording."""
    from comam_env.data import synthetic_vocab as V

    return [t for t in lines if any(w in t for w in V.HABITS[habit])]


def selection_view(env):
    """The :class:`~comam_env.views.selection.SelectionView` under ``env``'s wrappers."""
    view = env
    while not hasattr(view, "state_of"):
        view = view.env
    return view


def play(view, policy, qid: str, condition: str) -> dict[str, Any]:
    """One greedy episode of question ``qid`` with the profiler replaced per ``condition``;
    what the retriever was shown, kept and answered."""
    from comam_env.roles import role_index, role_of
    from comam_env.text import split_units

    inner = view._inner
    ds = inner.dataset
    q = ds.question(qid)
    view.reset(options={"question_id": qid})
    rec: dict[str, Any] = {}
    for agent in view.agent_iter():
        obs, _, term, trunc, _ = view.last()
        if term or trunc:
            view.step(None)
            continue
        role = role_of(agent)
        if role == "profiler" and condition == "gold-lines":
            from comam_env.matching import match_units

            st = view.state_of(agent)
            gold = ds.profile_for(q, [range(a, b) for a, b in inner.chunk_spans]) or ()
            action = np.zeros(len(obs["mask"]), np.int8)
            if st.texts and gold:
                action[list(match_units(st.texts, list(gold)).matched_units)] = 1
            view.step(action)
            continue
        if role == "profiler" and condition != "policy":
            text = ""
            if condition == "gold":
                text = "\n".join(ds.profile_for(q, [range(a, b) for a, b in inner.chunk_spans]) or ())
            view.env.step(text)  # the text env takes the profile as written
            view._refresh_infos()
            continue
        if role == "retriever":
            st = view.state_of(agent)
            rec.update(fine=split_units(inner.fine_memory), coarse=split_units(inner.coarse_memory),
                       shown=list(st.texts), from_profile=list(st.from_profile), over_budget=st.over_budget)
        action = policy.act(role_index(role), [obs], greedy=True).actions[0]
        if role == "retriever":
            rec["kept"] = [t for t, b in zip(rec["shown"], action[: len(rec["shown"])]) if b]
            rec["option"] = int(action[-1])
        view.step(action)
    rec["correct"] = "abcdefgh".index(q.answer)
    rec["right"] = rec["option"] == rec["correct"]
    rec["habits"] = [habit_of(o) for o in q.options]
    return rec


def summarize(records: list[dict[str, Any]], budget: int | None, habits: bool) -> dict[str, float]:
    """Shares (per question) and means over ``records`` (see the module docstring)."""
    c: Counter = Counter()
    for r in records:
        c["accuracy"] += r["right"]
        c["fine_units"] += len(r["fine"])
        c["profile_units"] += len(r["coarse"])
        c["shown_units"] += len(r["shown"])
        c["left_out_by_budget"] += r["over_budget"]
        c["profile_over_budget"] += budget is not None and len(r["coarse"]) > budget
        if not habits:
            continue
        h = r["habits"][r["correct"]]
        profile_shown = [t for t, s in zip(r["shown"], r["from_profile"]) if s]
        kept = bool(lines_naming(r["kept"], h))
        c["habit_in_fine"] += bool(lines_naming(r["fine"], h))
        c["habit_in_profile"] += bool(lines_naming(r["coarse"], h))
        c["habit_shown"] += bool(lines_naming(r["shown"], h))
        c["habit_shown_as_profile"] += bool(lines_naming(profile_shown, h))
        c["habit_kept"] += kept
        c["right_and_habit_kept"] += r["right"] and kept
        others = [x for i, x in enumerate(r["habits"]) if i != r["correct"] and x is not None]
        c["distractors_in_fine"] += sum(bool(lines_naming(r["fine"], x)) for x in others)
        c["distractors_shown"] += sum(bool(lines_naming(r["shown"], x)) for x in others)
        c["distractors_kept"] += sum(bool(lines_naming(r["kept"], x)) for x in others)
        chosen = r["habits"][r["option"]] if r["option"] < len(r["habits"]) else None
        c["wrong_on_a_shown_distractor"] += (not r["right"]) and chosen is not None and bool(
            lines_naming(r["shown"], chosen))
    n = max(1, len(records))
    return {k: round(v / n, 4) for k, v in sorted(c.items())}


def trace(view, policy, ids, conditions, habits: bool) -> tuple[dict, dict]:
    """``({condition: summary}, {condition: {question id: 1.0 right / 0.0}})`` of ``policy`` on
    the selection view ``view`` (:func:`play`, :func:`summarize`)."""
    import torch

    out, right = {}, {}
    with torch.no_grad():
        for condition in conditions:
            records = [play(view, policy, q, condition) for q in ids]
            out[condition] = summarize(records, view.memory_budget, habits)
            right[condition] = {q: float(r["right"]) for q, r in zip(ids, records)}
    return out, right


def measure(args) -> dict:
    import torch

    import comam_env
    from agents.base import load_policy
    from agents.config import TrainConfig
    from baselines.trained import policy_dir, read_run_config

    torch.set_num_threads(1)
    raw = read_run_config(args.run).raw
    cfg = TrainConfig.from_dict({k: v for k, v in raw.items() if k in TrainConfig.__dataclass_fields__})
    if cfg.policy != "selection":
        raise ValueError(f"{args.run}: habit_path traces selection-policy runs, this one is policy={cfg.policy!r}")
    policy = load_policy(policy_dir(args.run))
    policy.eval()
    kwargs = cfg.env_kwargs_for("validation", args.episode)
    if args.memory_budget != _DEFAULT:
        budget = None if args.memory_budget == "none" else int(args.memory_budget)
        kwargs["view_kwargs"] = {**kwargs.get("view_kwargs", {}), "memory_budget": budget}
    view = selection_view(comam_env.make(cfg.env, **kwargs))
    ds = view._inner.dataset
    habits = args.questions == "habit"
    ids = [q for q in view._inner.question_ids if (ds.question(q).topic == "lifestyle") == habits]
    ids = ids[: args.limit] if args.limit else ids
    if not ids:
        raise ValueError(f"{cfg.env}: no {args.questions} questions in the validation split")
    out, right = trace(view, policy, ids, args.conditions, habits)
    return {"conditions": out, "right": right, "run": str(args.run), "env": cfg.env, "episode": args.episode,
            "questions": args.questions, "n_questions": len(ids), "memory_budget": view.memory_budget}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="selection-policy training run")
    p.add_argument("--episode", default="full-history", choices=("evidence-session", "full-history", "evidence+context"),
                   help="episode kind")
    p.add_argument("--questions", default="habit", choices=("habit", "other"), help="habit questions or the others")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS, help="profile conditions")
    p.add_argument("--memory-budget", default=_DEFAULT, help="override the view's memory budget (an integer or 'none')")
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    report = measure(args)
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    keys = sorted({k for v in report["conditions"].values() for k in v})
    print(f"{report['n_questions']} {args.questions} questions, {args.episode}, budget {report['memory_budget']}")
    print("| measure | " + " | ".join(report["conditions"]) + " |")
    print("|---|" + "---|" * len(report["conditions"]))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{v.get(k, float('nan')):.3f}" for v in report["conditions"].values()) + " |")
    print(f"({report['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
