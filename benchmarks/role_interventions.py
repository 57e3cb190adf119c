"""Is every role causally necessary? Replace one role's output by an empty one and measure the answer.

For each memory system (the scripted heuristic pipeline and a trained selection-policy run), each
episode kind (evidence-session and full-history) and each role, the validation questions are
answered twice — by the intact system and by the system with that role's output emptied:

* extractor: M_f is empty (the profiler then sees nothing either — the extractor's causal effect
  includes what it feeds downstream);
* profiler: M_c is empty;
* retriever: it answers with an empty memory (it still picks an option, from the question and
  the options alone, but sees no memory unit and retrieves none).

The drop is ``accuracy_full − accuracy_ablated`` over the same questions, with a paired bootstrap
95% interval over questions (:func:`comam_env.stats.paired_difference_ci`, which calls
``scipy.stats.bootstrap`` with ``paired=True``). A role whose interval lies above 0 is causally
necessary for that system on that episode kind.

Several ``--run`` directories (seeds of one configuration) are measured as one test: the drop is
the mean over runs × questions, with a two-way bootstrap interval and p-value that resamples runs
and questions, questions clustered by the history they are asked on
(:func:`comam_env.stats.two_way_bootstrap`); each run's own result is kept under ``per_run`` and
``necessary_runs`` counts the runs whose own interval lies above 0.

    python benchmarks/role_interventions.py                  # trains a selection run first (resumable)
    python benchmarks/role_interventions.py --run runs/NAME --json
    python benchmarks/role_interventions.py --run runs/credit_ablation/adaptive/it60/seed{0,1,2,3,4}
    python benchmarks/role_interventions.py --systems heuristic --split train --embedder hashing

``--json`` prints one object: ``{"roles": {role: {"accuracy_full", "accuracy_ablated", "drop",
"drop_ci95"}}, "headline": {...}, "results": {system: {episode: {...}}}, ...}`` where ``roles`` is
the headline system and episode kind (``--headline-system``, ``--headline-episode``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROLES = ("extractor", "profiler", "retriever")
EPISODES = ("evidence-session", "full-history")
SYSTEMS = ("heuristic", "selection")


# ---------------------------------------------------------------- selection policies


class EmptyOutput:
    """Acts for one role of a selection policy with an empty output.

    Extractor and profiler keep no candidate. The retriever answers with an empty memory: the
    wrapped policy chooses the option from an observation whose candidates are all masked out,
    and no unit is retrieved.
    """

    def __init__(self, policy: Any, role: str) -> None:
        self.policy, self.role = policy, role

    def eval(self):
        self.policy.eval()
        return self

    def act(self, role, observations, **kwargs):
        import torch

        from agents.base import ActOutput

        obs = [dict(o) for o in observations]
        if self.role == "retriever":
            for o in obs:
                o["mask"] = np.zeros_like(o["mask"])
                o["candidates"] = np.zeros_like(o["candidates"])
            out = self.policy.act(role, obs, **kwargs)
            actions = [np.concatenate([np.zeros(len(a) - 1, a.dtype), a[-1:]]) for a in out.actions]
            return ActOutput(actions=actions, logprobs=out.logprobs, samples=out.samples, info=out.info)
        actions = [np.zeros(np.asarray(o["mask"]).shape[0], np.int8) for o in obs]
        return ActOutput(actions=actions, logprobs=torch.zeros(len(obs)), samples=[None] * len(obs))


def selection_accuracies(cfg, policy, episode: str, limit: int | None) -> dict[str | None, dict[str, float]]:
    """Per-question answer rewards of ``policy`` intact (key ``None``) and with each role emptied."""
    from agents.base import ROLE_NAMES
    from agents.comam import _make_eval_envs, _split_ids
    from agents.rollout import evaluate

    envs = _make_eval_envs(cfg, "validation", episode)
    ids = _split_ids(envs[0])
    ids = ids[:limit] if limit else ids
    out = {}
    for ablated in (None, *ROLES):
        policies = {r: (EmptyOutput(policy, r) if r == ablated else policy) for r in ROLE_NAMES}
        res = evaluate(envs, policies, ids, seed=cfg.seed)
        out[ablated] = {q: r["reward"] for q, r in res["per_question"].items()}
    return out


def load_run(run: str):
    """``(config, policy)`` of a finished selection-policy training run."""
    from agents.base import load_policy
    from agents.config import TrainConfig
    from baselines.trained import policy_dir, read_run_config

    raw = read_run_config(run).raw
    cfg = TrainConfig.from_dict({k: v for k, v in raw.items() if k in TrainConfig.__dataclass_fields__})
    return cfg, load_policy(policy_dir(run))


def trained_policy(args):
    """The selection-policy run to intervene on: ``--run``, or one trained here (resumable)."""
    from agents.base import load_policy
    from agents.config import TrainConfig
    from baselines.trained import policy_dir

    if args.run:
        return (*load_run(args.run[0]), args.run[0])
    from agents.comam import train

    cfg = TrainConfig(env=args.env, seed=args.seed, iterations=args.train_iterations, batch_queries=8, group_size=8,
                      eval_episode="evidence-session", eval_every=max(1, args.train_iterations), progress=False)
    run = Path(args.out) / "selection-run"
    train(cfg, run)
    return cfg, load_policy(policy_dir(run)), str(run)


# ---------------------------------------------------------------- the heuristic pipeline


def heuristic_accuracies(env_id: str, episode: str, limit: int | None, embedder: str,
                         split: str = "validation") -> dict[str | None, dict[str, float]]:
    """Per-question answer rewards of the heuristic pipeline intact and with each role emptied,
    played through the env's text view on ``episode`` episodes of ``split``'s questions."""
    import comam_env
    from baselines.pipeline import HeuristicExtractor, HeuristicPipeline, play_episode
    from comam_env import score_answer
    from comam_env.prompts import render_memory

    env = comam_env.make(env_id, split=split, episode=episode, reward_mode="none", record_trajectory=False)
    ds = env.unwrapped.dataset
    ids = list(env.unwrapped.question_ids)
    ids = ids[:limit] if limit else ids
    system = HeuristicPipeline(embedder=embedder)
    system.embedder.attach(ds)

    def acting(ablated):
        def act(role, obs, extractor):
            if role == ablated and role in ("extractor", "profiler"):
                return ""
            if role == ablated:  # the retriever, with an empty memory
                obs = {**obs, "memory": render_memory("", "")}
            return system.act(role, obs, extractor)
        return act

    out = {}
    for ablated in (None, *ROLES):
        act = acting(ablated)
        scores = {}
        for qid in ids:
            q = ds.question(qid)
            pred = play_episode(env, q, act, HeuristicExtractor(), time.perf_counter())
            scores[qid] = score_answer(q, pred.answer)
        out[ablated] = scores
    return out


# ---------------------------------------------------------------- report


def drops(per_question: dict[str | None, dict[str, float]], seed: int) -> dict:
    """Accuracy intact vs each role emptied, with the paired bootstrap interval of the drop."""
    from comam_env.stats import paired_difference_ci

    full = per_question[None]
    ids = list(full)
    a = np.array([full[q] for q in ids])
    roles = {}
    for role in ROLES:
        b = np.array([per_question[role][q] for q in ids])
        d = paired_difference_ci(a, b, seed=seed)
        roles[role] = {"accuracy_full": float(a.mean()), "accuracy_ablated": float(b.mean()), "drop": d["mean"],
                       "drop_ci95": d["ci95"], "necessary": bool(d["ci95"][0] > 0)}
    return {"n_questions": len(ids), "accuracy_full": float(a.mean()), "roles": roles}


def pooled_drops(per_run: list[dict[str | None, dict[str, float]]], groups: dict[str, str], seed: int) -> dict:
    """The drops of several training runs (seeds) of one system, as one test: the mean over seeds ×
    questions with a two-way bootstrap interval and p-value (seeds and questions both resampled,
    questions clustered by the history they are asked on, :func:`comam_env.stats.two_way_bootstrap`)."""
    from comam_env.stats import two_way_bootstrap

    ids = sorted(per_run[0][None])
    if any(sorted(r[None]) != ids for r in per_run):
        raise ValueError("role_interventions: the runs were measured on different questions (same --env and --limit?)")
    full = np.array([[r[None][q] for q in ids] for r in per_run])
    roles = {}
    for role in ROLES:
        ablated = np.array([[r[role][q] for q in ids] for r in per_run])
        t = two_way_bootstrap(full - ablated, seed=seed, groups=[groups[q] for q in ids])
        roles[role] = {"accuracy_full": float(full.mean()), "accuracy_ablated": float(ablated.mean()), "drop": t["mean"],
                       "drop_ci95": t["ci95"], "p_value": t["p_value"], "necessary": bool(t["ci95"][0] > 0),
                       "necessary_runs": int(sum(drops(r, seed)["roles"][role]["necessary"] for r in per_run))}
    return {"n_questions": len(ids), "n_runs": len(per_run), "accuracy_full": float(full.mean()), "roles": roles,
            "per_run": [drops(r, seed) for r in per_run]}


def measure(args) -> dict:
    import torch

    torch.set_num_threads(1)
    results: dict[str, dict] = {}
    meta: dict[str, Any] = {"env": args.env, "split": args.split, "limit": args.limit, "heuristic_embedder": args.embedder}
    if args.split != "validation" and "selection" in args.systems:
        raise SystemExit("--split train applies to the heuristic pipeline only (--systems heuristic); a selection "
                         "run is measured on the questions it was held out from")
    if "selection" in args.systems and args.run and len(args.run) > 1:
        import comam_env

        ds = comam_env.make(args.env).unwrapped.dataset
        groups = {q.question_id: q.history_id for q in ds.questions}
        loaded = [load_run(r) for r in args.run]
        meta["runs"] = list(args.run)
        results["selection"] = {e: pooled_drops([selection_accuracies(cfg, pol, e, args.limit) for cfg, pol in loaded],
                                                groups, args.seed)
                                for e in args.episodes}
    elif "selection" in args.systems:
        cfg, policy, run = trained_policy(args)
        meta["run"] = run
        results["selection"] = {e: drops(selection_accuracies(cfg, policy, e, args.limit), args.seed) for e in args.episodes}
    if "heuristic" in args.systems:
        results["heuristic"] = {e: drops(heuristic_accuracies(args.env, e, args.limit, args.embedder, args.split),
                                         args.seed)
                                for e in args.episodes}
    head = results.get(args.headline_system, {}).get(args.headline_episode)
    return {"roles": head["roles"] if head else None,
            "headline": {"system": args.headline_system, "episode": args.headline_episode},
            "results": results, **meta}


def format_table(report: dict) -> str:
    lines = ["| system | episodes | questions | role | accuracy intact | accuracy with the role emptied | drop [95% CI] | necessary |",
             "|---|---|---|---|---|---|---|---|"]
    for system, by_episode in report["results"].items():
        for episode, r in by_episode.items():
            for role, x in r["roles"].items():
                runs = f" (p = {x['p_value']:.3f}; {x['necessary_runs']} of {r['n_runs']} runs)" if "n_runs" in r else ""
                lines.append(f"| {system} | {episode} | {r['n_questions']} | {role} | {x['accuracy_full']:.3f} | "
                             f"{x['accuracy_ablated']:.3f} | {x['drop']:+.3f} [{x['drop_ci95'][0]:+.3f}, "
                             f"{x['drop_ci95'][1]:+.3f}] | {'yes' if x['necessary'] else 'no'}{runs} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="synthetic-32k", help="environment id")
    p.add_argument("--run", nargs="+", default=None,
                   help="selection-policy training run (default: train one into --out); several runs (seeds of one "
                        "configuration) are pooled into one two-way bootstrap test per role")
    p.add_argument("--train-iterations", type=int, default=60, help="iterations of the run trained when --run is not given")
    p.add_argument("--out", default="runs/role_interventions", help="where the trained run goes")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="systems to intervene on")
    p.add_argument("--episodes", nargs="+", choices=EPISODES, default=list(EPISODES), help="episode kinds")
    p.add_argument("--split", choices=("validation", "train"), default="validation",
                   help="questions to measure on (train: the heuristic pipeline only, e.g. to choose between rules "
                        "without looking at validation)")
    p.add_argument("--limit", type=int, default=None, help="first N questions of the split only")
    p.add_argument("--embedder", default="minilm", help="the heuristic pipeline's embedder (minilm, its default, or hashing)")
    p.add_argument("--headline-system", choices=SYSTEMS, default="selection", help="system of the top-level 'roles'")
    p.add_argument("--headline-episode", choices=EPISODES, default="full-history", help="episode kind of the top-level 'roles'")
    p.add_argument("--seed", type=int, default=0, help="seed of the trained run and of the bootstrap")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    report = measure(args)
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
        print(f"({report['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
