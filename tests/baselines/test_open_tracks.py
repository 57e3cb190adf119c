"""Every system on an open track (LoCoMo format): extractive answers, open-track probes,
MCQ-only systems refused with one line (issue 15)."""

from __future__ import annotations

import json

import pytest

from baselines.base import SYSTEMS, UnsupportedQuestionsError, get_system
from baselines.harness import evaluate, format_report
from comam_env.data.locomo import read_locomo
from comam_env.data.locomo_fixture import write_locomo_fixture
from comam_env.scoring import answer_text, score_answer

#: systems that run on CPU without a model or a run directory
CPU_OPEN = ["full-context", "rag", "bm25", "heuristic-pipeline", "mem0-style"]


@pytest.fixture(scope="module")
def locomo(tmp_path_factory):
    return read_locomo(write_locomo_fixture(tmp_path_factory.mktemp("locomo"), n_samples=2))


@pytest.mark.parametrize("name", CPU_OPEN)
def test_every_cpu_system_answers_open_questions_and_scores_above_zero(locomo, name, tmp_path):
    kw = {"embedder": "hashing"}
    if name == "rag":
        kw["retrieval_embedder"] = "hashing"
    system = get_system(name, **kw)
    report = evaluate(system, locomo, out=tmp_path / "p.jsonl", progress=False, n_resamples=50)
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == len(locomo.questions) == report["n_questions"]
    assert all(x["answer"].strip() and x["answer"] not in ("()", "") for x in lines)  # never "()" or ""
    assert report["metric"] == "token_f1" and report["accuracy"] > 0
    single_hop = report["per_type"]["locomo_single_hop"]["accuracy"]
    assert single_hop > 0.2  # the extractive span finds short answers ("Luna", "pastry chef")
    # the open-track probes sit beside the result; the option probes have nothing to answer
    assert set(report["probes"]) == {"always-abstain", "question-echo"}
    abstain = report["probes"]["always-abstain"]
    n5 = sum(q.meta["category"] == 5 for q in locomo.questions)
    assert abstain["accuracy"] == pytest.approx(n5 / len(locomo.questions))
    assert "always-abstain" in format_report(report) and "token F1" in format_report(report)


@pytest.mark.parametrize("name", ["random", "longest-option", "question-only"])
def test_mcq_only_systems_refuse_open_tracks_before_writing(locomo, name, tmp_path):
    with pytest.raises(UnsupportedQuestionsError, match="multiple-choice questions only") as exc:
        evaluate(get_system(name), locomo, out=tmp_path / "p.jsonl", progress=False)
    assert "\n" not in str(exc.value) and "always-abstain" in str(exc.value)
    assert not (tmp_path / "p.jsonl").exists()


def test_open_probes_refuse_multiple_choice(toy):
    with pytest.raises(UnsupportedQuestionsError, match="open questions only"):
        evaluate(get_system("always-abstain"), toy, progress=False, probes=None)
    # and the option probes still report on multiple-choice data, without the open ones
    report = evaluate(get_system("random"), toy, progress=False, n_resamples=20)
    assert set(report["probes"]) == {"random", "longest-option", "question-only"} and report["metric"] == "accuracy"


def test_open_probe_answers(locomo):
    q = next(q for q in locomo.questions if q.meta["category"] == 4)
    echo = get_system("question-echo").answer(q, locomo.history_for(q)).answer
    assert echo and "what" not in echo.lower().split() and set(echo.split()) <= set(q.query.replace("?", "").split())
    abstain = get_system("always-abstain").answer(q, locomo.history_for(q)).answer
    adv = next(q for q in locomo.questions if q.meta["category"] == 5)
    assert score_answer(adv, abstain) == 1.0 and score_answer(q, abstain) == 0.0
    assert {"always-abstain", "question-echo"} <= set(SYSTEMS)


def test_cli_refuses_mcq_only_system_on_locomo_with_one_line(tmp_path, monkeypatch, capsys, locomo):
    from comam_env.cli import main

    write_locomo_fixture(tmp_path / "data" / "locomo", n_samples=1)
    monkeypatch.setenv("COMAM_DATA_DIR", str(tmp_path / "data"))
    rc = main(["evaluate", "--env", "locomo", "--system", "random", "--split", "all", "--quiet",
               "--out", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "multiple-choice questions only" in err


def test_prompt_only_rejects_embedder_with_a_clear_error():
    # used to be a TypeError from LLMPolicyConfig; now a ValueError naming the option (before any model loads)
    with pytest.raises(ValueError, match="'embedder'"):
        get_system("prompt-only", embedder="hashing")


def test_llm_answerer_parses_final_answer_on_open_questions(locomo, tmp_path):
    from agents.tiny import build_tiny_llm

    system = get_system("full-context", answerer="llm", model=build_tiny_llm(tmp_path / "tiny"))
    system.answerer.max_new_tokens = 6
    q = locomo.questions[0]
    system.prepare(locomo)
    pred = system.answer(q, locomo.history_for(q))
    assert pred.raw_output is not None and pred.answer == answer_text(pred.raw_output)


@pytest.mark.slow
def test_prompt_only_runs_on_open_questions_and_parses_final_answer(locomo, tmp_path):
    from agents.tiny import build_tiny_llm

    system = get_system("prompt-only", model=build_tiny_llm(tmp_path / "tiny"), max_new_tokens=8, env_id="locomo")
    q = locomo.questions[0]
    report = evaluate(system, locomo, [q.question_id], out=tmp_path / "p.jsonl", progress=False, n_resamples=10)
    line = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert report["n_questions"] == 1 and report["metric"] == "token_f1"
    assert set(report["probes"]) == {"always-abstain", "question-echo"}
    assert isinstance(line["answer"], str) and line["tokens_in"] > 0
