"""benchmarks/role_interventions.py: the empty-output interventions and the drop report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.scripts import load_script


def _load():
    return load_script("benchmarks/role_interventions.py")


def test_empty_output_keeps_nothing_and_the_retriever_answers_from_the_question_alone():
    import comam_env
    from agents.base import make_policy

    bench = _load()
    env = comam_env.make("synthetic-32k", split="validation", view="selection")
    env.reset(seed=0)
    dim = int(env.observation_space(env.possible_agents[0])["candidates"].shape[-1])
    policy = make_policy("selection", dim=dim, seed=0)
    while env.unwrapped.agent_selection != "retriever_0":
        env.step(np.ones(env.action_space(env.agent_selection).shape, np.int64))
    obs = env.observe("retriever_0")
    assert obs["mask"].sum() > 0
    out = bench.EmptyOutput(policy, "retriever").act(2, [obs], greedy=True)
    blind = policy.act(2, [{**obs, "mask": np.zeros_like(obs["mask"]), "candidates": np.zeros_like(obs["candidates"])}],
                       greedy=True)
    assert out.actions[0][:-1].sum() == 0  # nothing retrieved
    assert out.actions[0][-1] == blind.actions[0][-1]  # the option chosen without memory
    ext = bench.EmptyOutput(policy, "extractor").act(0, [obs], greedy=True)
    assert ext.actions[0].sum() == 0 and ext.actions[0].shape == obs["mask"].shape


def test_drops_report_shape_and_paired_interval():
    bench = _load()
    per_q = {None: {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0},
             "extractor": {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0},
             "profiler": {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0},
             "retriever": {"a": 0.0, "b": 1.0, "c": 1.0, "d": 0.0}}
    r = bench.drops(per_q, seed=0)
    assert r["n_questions"] == 4 and r["accuracy_full"] == 0.75
    assert r["roles"]["extractor"]["drop"] == pytest.approx(0.75)
    assert r["roles"]["profiler"] == {"accuracy_full": 0.75, "accuracy_ablated": 0.75, "drop": 0.0,
                                      "drop_ci95": [0.0, 0.0], "necessary": False}
    lo, hi = r["roles"]["retriever"]["drop_ci95"]
    assert r["roles"]["retriever"]["drop"] == pytest.approx(0.25)
    assert lo < 0.25 < hi and not r["roles"]["retriever"]["necessary"]


def test_pooled_drops_test_runs_times_questions_with_clustered_questions():
    """Several runs of one configuration: one mean over runs × questions, a two-way bootstrap
    interval, each run's own result kept and the runs whose own interval is above 0 counted."""
    bench = _load()
    rng = np.random.default_rng(0)
    ids = [f"q{i}" for i in range(60)]
    groups = {q: f"h{i // 6}" for i, q in enumerate(ids)}
    runs = []
    for _ in range(3):
        full = {q: float(rng.random() < 0.7) for q in ids}
        runs.append({None: full,
                     "extractor": {q: 0.0 for q in ids},  # always costs the answer
                     "profiler": dict(full),  # never matters
                     "retriever": {q: float(rng.random() < 0.7) for q in ids}})  # noise
    r = bench.pooled_drops(runs, groups, seed=0)
    full_mean = np.mean([[run[None][q] for q in ids] for run in runs])
    assert r["n_runs"] == 3 and r["n_questions"] == 60 and len(r["per_run"]) == 3
    ext, prof = r["roles"]["extractor"], r["roles"]["profiler"]
    assert ext["drop"] == pytest.approx(full_mean) and ext["necessary"] and ext["necessary_runs"] == 3
    assert ext["p_value"] < 0.05 and ext["drop_ci95"][0] > 0
    assert prof["drop"] == 0.0 and not prof["necessary"] and prof["necessary_runs"] == 0
    assert r["per_run"][1] == bench.drops(runs[1], seed=0)
    runs[2] = {k: {q: v for q, v in d.items() if q != "q0"} for k, d in runs[2].items()}
    with pytest.raises(ValueError, match="different questions"):
        bench.pooled_drops(runs, groups, seed=0)


@pytest.mark.slow  # 48 evidence-session questions × 4 conditions through the heuristic pipeline
def test_heuristic_pipeline_needs_extractor_and_retriever(capsys):
    bench = _load()
    assert bench.main(["--systems", "heuristic", "--episodes", "evidence-session", "--limit", "48",
                       "--embedder", "hashing", "--headline-system", "heuristic",
                       "--headline-episode", "evidence-session", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["roles"]) == {"extractor", "profiler", "retriever"}
    for role in ("extractor", "retriever"):
        assert report["roles"][role]["drop_ci95"][0] > 0, (role, report["roles"][role])


@pytest.mark.slow  # 96 full-history questions × 4 conditions through the heuristic pipeline
def test_heuristic_pipeline_needs_every_role_on_full_histories(capsys):
    """The profile is in every prompt and supersedes stale fine memory (baselines/pipeline.py), so
    emptying M_c costs the answer on full histories (on 544 questions: +0.13, docs/credit_ablation.md)."""
    bench = _load()
    assert bench.main(["--systems", "heuristic", "--episodes", "full-history", "--limit", "96",
                       "--embedder", "hashing", "--headline-system", "heuristic",
                       "--headline-episode", "full-history", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for role in ("extractor", "profiler", "retriever"):
        assert report["roles"][role]["drop_ci95"][0] > 0, (role, report["roles"][role])


@pytest.mark.slow  # trains 30 iterations of selection policies (~15 s), then 200 questions × 4 conditions
def test_trained_selection_policies_need_every_role_on_evidence_sessions(tmp_path, capsys, torch_single_thread):
    """The trained (size-aware, default) profiler's output is read by the retriever: emptying M_c
    costs the answer (pooled over the sweep's 10 adaptive runs, 544 questions, 60 iterations:
    +0.037 [+0.015, +0.060], docs/credit_ablation.md "Role interventions"; here one run of 30
    iterations on the first 200 questions)."""
    bench = _load()
    assert bench.main(["--systems", "selection", "--train-iterations", "30", "--out", str(tmp_path),
                       "--episodes", "evidence-session", "--limit", "200",
                       "--headline-episode", "evidence-session", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for role in ("extractor", "profiler", "retriever"):
        assert report["roles"][role]["drop_ci95"][0] > 0, (role, report["roles"][role])


def test_several_runs_are_pooled_from_the_command_line(tmp_path, capsys, torch_single_thread):
    """``--run A B``: both runs are loaded and measured on the same questions, one pooled test."""
    from agents.comam import train
    from agents.config import TrainConfig

    bench = _load()
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"seed{seed}"
        train(TrainConfig(env="synthetic-32k", seed=seed, iterations=1, batch_queries=2, group_size=2,
                          eval_episode="evidence-session", eval_every=1, eval_limit=4, progress=False), run)
        runs.append(str(run))
    assert bench.main(["--systems", "selection", "--run", *runs, "--episodes", "evidence-session", "--limit", "12",
                       "--headline-episode", "evidence-session", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    r = report["results"]["selection"]["evidence-session"]
    assert report["runs"] == runs and r["n_runs"] == 2 and r["n_questions"] == 12
    assert report["roles"]["extractor"]["accuracy_full"] == pytest.approx(
        np.mean([x["accuracy_full"] for x in r["per_run"]]))
    assert {"p_value", "necessary_runs"} <= set(report["roles"]["profiler"])
