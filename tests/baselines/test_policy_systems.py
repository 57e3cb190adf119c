"""prompt-only (tiny LLM) and trained systems (run directory with a saved selection policy)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from baselines.base import get_system
from baselines.harness import evaluate
from baselines.trained import read_run_config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from agents.tiny import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def small_synthetic():
    """A small synthetic dataset (2 personas, ~4k-token histories): every prompt-only step stays cheap."""
    from comam_env.data.synthetic import load_synthetic

    return load_synthetic("32k", seed=3, cache=False, n_personas=2, target_tokens=4000, topics_per_persona=2,
                          updates_per_topic=1)


@pytest.mark.slow
def test_prompt_only_with_tiny_model(small_synthetic, tiny_model, tmp_path):
    ds = small_synthetic
    system = get_system("prompt-only", model=tiny_model, max_new_tokens=8)
    ids = [ds.questions[0].question_id, ds.questions[-1].question_id]
    report = evaluate(system, ds, ids, out=tmp_path / "p.jsonl", progress=False, probes=None)
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["question_id"] for x in lines] == ids  # a prediction for every question
    assert all(x["tokens_in"] > 0 and x["tokens_out"] >= 0 for x in lines)
    assert all(x["answer"] in ("", "a", "b", "c", "d") for x in lines)
    # a random tiny model rarely emits a valid tag: answers may be empty, but every channel is reported
    assert set(report["local_rewards"]) == {"extractor", "profiler", "retriever"}
    assert report["local_rewards"]["profiler"]["n_defined"] == 2  # gold-profile judge on synthetic data


def _make_run(tmp_path, toy, mode="joint"):
    import comam_env
    from agents.base import make_policy
    from agents.comam import TrainConfig

    env_kwargs = {"view_kwargs": {"K": 16, "embedder": "hashing"}, "judge": "gold"}
    env = comam_env.make("synthetic-32k", dataset=toy, split="all", view="selection", **env_kwargs)
    dim = int(env.observation_space(env.possible_agents[0])["candidates"].shape[-1])
    run = tmp_path / f"run-{mode}"
    policy = make_policy("selection", dim=dim, seed=0)
    policy.save(run / "checkpoint" / "policy")
    cfg = TrainConfig(env="synthetic-32k", policy="selection", mode=mode, env_kwargs=env_kwargs)
    (run / "config.json").write_text(json.dumps(asdict(cfg)))
    return run


def test_trained_system_from_run_dir(toy, tmp_path):
    run = _make_run(tmp_path, toy)
    cfg = read_run_config(run)
    assert (cfg.system, cfg.view, cfg.env) == ("comam", "selection", "synthetic-32k")
    system = get_system("comam", run=str(run))
    report = evaluate(system, toy, out=tmp_path / "p.jsonl", progress=False, probes=None)
    assert report["n_questions"] == len(toy.questions)
    assert set(report["local_rewards"]) == {"extractor", "profiler", "retriever"}
    # greedy: evaluating again gives the same answers
    again = evaluate(get_system("comam", run=str(run)), toy, out=tmp_path / "q.jsonl", progress=False, probes=None)
    a = [json.loads(x)["answer"] for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    b = [json.loads(x)["answer"] for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert a == b and again["accuracy"] == report["accuracy"]


def test_trained_system_checks_mode_and_files(toy, tmp_path):
    run = _make_run(tmp_path, toy, mode="independent")
    assert read_run_config(run).system == "independent"
    with pytest.raises(ValueError, match="is a 'independent' run"):
        get_system("comam", run=str(run))
    with pytest.raises(ValueError, match="needs --run"):
        get_system("independent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_run_config(tmp_path / "empty")


@pytest.mark.slow
def test_llm_answerer_with_tiny_model(toy, tiny_model, tmp_path):
    """The LLM answerer reads context + question + options; its reply is parsed with parse_option."""
    from baselines.answerers import LLMAnswerer

    system = get_system("full-context", answerer="llm", model=tiny_model)
    system.prepare(toy)
    q = toy.question("q5")
    pred = system.answer(q, toy.history_for(q))
    assert pred.answer in ("", "a", "b", "c", "d") and pred.raw_output is not None
    assert pred.tokens_in > 0
    # the window is capped by the tiny model's 1,024 positions
    assert system.answerer.context_budget(q) < 1024
    ans = LLMAnswerer(model=tiny_model, max_new_tokens=4)
    assert ans.choose(q, "User: I prefer heirloom tomatoes.").answer in ("", "a", "b", "c", "d")


@pytest.mark.slow
def test_evaluate_cli_infers_system_from_run(toy, tmp_path, capsys):
    from comam_env.cli import main

    run = _make_run(tmp_path, toy)
    assert main(["evaluate", "--run", str(run), "--limit", "2", "--json", "--no-probes",
                 "--out", str(tmp_path / "r.jsonl")]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["system"] == "comam" and rep["env"] == "synthetic-32k" and rep["n_questions"] == 2


def test_answer_batch_equals_answering_one_by_one(toy, tmp_path):
    """The batched path (grouped episodes, memoised extractor, env pool) gives every field of
    every prediction that the one-question path gives, except the amortised latency."""
    run = _make_run(tmp_path, toy)
    qs = list(toy.questions)
    one = get_system("comam", run=str(run))
    one.prepare(toy)
    singles = [one.answer(q, toy.history_for(q)) for q in qs]
    many = get_system("comam", run=str(run))
    many.prepare(toy)
    many.pool_size = 2  # fewer envs than episodes: several lockstep waves
    batched = many.answer_batch(qs)
    assert len({(q.history_id, q.end_index) for q in qs}) < len(qs)  # some questions share a history
    for a, b in zip(singles, batched):
        a.latency_ms = b.latency_ms = 0.0
        assert asdict(a) == asdict(b)
    assert many._memo.hits > 0  # the extractor saw repeated chunks
