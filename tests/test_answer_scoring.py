"""One answer rule everywhere: the env's global reward, the evaluation harness and the
leaderboard scorer give identical scores on one table of cases (issue 15), and the
LoCoMo abstention rule cannot be gamed."""

from __future__ import annotations

import pytest

import comam_env
from baselines.base import Prediction
from baselines.harness import run_predictions, summarise
from comam_env.data.locomo import read_locomo
from comam_env.data.locomo_fixture import write_locomo_fixture
from comam_env.data.schema import Dataset, History, Question
from comam_env.env import env as make_env
from comam_env.policies import ABSTAIN_ANSWER, OraclePolicy, run_episode
from comam_env.scoring import abstains_only
from leaderboard.score import question_score

H = History("h", ("user", "assistant", "user"),
            ("Caroline: I went to the support group on 7 May 2023.", "Melanie: Great!",
             "Caroline: We adopted a puppy named Luna."), (0,),
            meta={"speakers": {"user": "Caroline", "assistant": "Melanie"}})


def _q(qid, query, answer, category=None, options=()):
    meta = {} if category is None else {"category": category}
    return Question(qid, "h", "locomo" if category else "recall_user_shared_facts", str(category), query,
                    tuple(options), answer, (0,), 3, meta=meta)


QUESTIONS = [
    _q("mcq", "Which pet?", "b", options=("a kitten", "a puppy", "a parrot", "a rabbit")),
    _q("temporal", "When did Caroline go to the support group?", "7 May 2023", 2),
    _q("single", "What is the name of Caroline's puppy?", "Luna", 4),
    _q("adv", "What is the name of Melanie's puppy?", "Luna", 5),
]
#: (question id, response) — what a system answers; scored by all three paths.
CASES = [
    ("mcq", "b"), ("mcq", "(b)"), ("mcq", "(a)"), ("mcq", ""), ("mcq", "<final_answer>(b)</final_answer>"),
    ("temporal", "7 May 2023"), ("temporal", "on 7 May 2023"), ("temporal", "7 May 2023 (unknown)"),
    ("temporal", "Not mentioned in the conversation."), ("temporal", "<final_answer>May 2023</final_answer>"),
    ("single", "Luna"), ("single", "Luna (unknown)"), ("single", "a puppy named Luna"), ("single", ""),
    ("adv", "Luna"), ("adv", "Luna (unknown)"), ("adv", "Not mentioned in the conversation."),
    ("adv", "The conversation does not say what Melanie's puppy is called"), ("adv", "unknown"),
    ("adv", "I don't know, maybe Max"), ("adv", "<final_answer>No information available.</final_answer>"),
]


@pytest.fixture(scope="module")
def dataset():
    return Dataset("scoring", {"h": H}, tuple(QUESTIONS))


def _env_scores(dataset) -> list[float]:
    env = make_env(dataset, episode="full-history", reward_mode="local+global", judge=None)
    scores = []
    for qid, response in CASES:
        q = dataset.question(qid)
        action = response if "<final_answer>" in response else f"<final_answer>{response}</final_answer>"
        if q.options and "<final_answer>" not in response and response and not response.startswith("("):
            action = f"<final_answer>({response})</final_answer>"  # a bare letter, as the harness stores it

        def policy(agent, obs, e, action=action):
            return action if agent.startswith("retriever") else ""

        traj = run_episode(env, policy, options={"question_id": qid})
        infos = traj["final_infos"]
        scores.append(next(i["global_reward"] for a, i in infos.items() if a.startswith("retriever")))
    return scores


class TableSystem:
    name = "table"

    def __init__(self, answers):
        self.answers = answers

    def prepare(self, dataset):
        pass

    def answer(self, question, history):
        return Prediction(answer=self.answers.pop(0))


def test_env_harness_and_leaderboard_give_identical_scores(dataset):
    expected = [comam_env.score_answer(dataset.question(qid), r) for qid, r in CASES]
    # harness: one prediction line per case (cases of the same question evaluated one by one)
    harness = []
    for qid, response in CASES:
        preds, details, _ = run_predictions(TableSystem([response]), dataset, [qid], progress=False)
        harness.append(summarise(dataset, preds, details, n_resamples=10)["accuracy"])
        # the leaderboard scores the prediction line exactly as written
        assert question_score(preds[0]["answer"], dataset.question(qid)) == expected[len(harness) - 1]
    assert harness == expected
    assert _env_scores(dataset) == expected
    # the table is not trivial: full, partial and zero scores on every kind
    assert expected[:4] == [1.0, 1.0, 0.0, 0.0]
    assert expected[CASES.index(("adv", "Luna (unknown)"))] == 0.0
    assert expected[CASES.index(("adv", "Not mentioned in the conversation."))] == 1.0
    assert 0 < expected[CASES.index(("temporal", "on 7 May 2023"))] < 1


@pytest.mark.parametrize("text, ok", [
    ("Not mentioned in the conversation.", True),
    ("The conversation does not say what Melanie's puppy is called", True),
    ("unknown", True),
    ("It CAN'T be determined", True),
    ("Luna", False),                       # the trap answer
    ("Luna (unknown)", False),             # the trap answer followed by an abstention
    ("unknown, probably Luna", False),
    ("I don't know, maybe Max", False),    # asserts another answer
    ("Melanie never mentioned a puppy, but Caroline's is Luna", False),
    ("", False),
])
def test_category_5_needs_an_abstention_that_asserts_nothing_else(text, ok):
    q = QUESTIONS[3]
    assert abstains_only(text, q) is ok
    assert comam_env.score_answer(q, f"<final_answer>{text}</final_answer>") == float(ok)


def test_an_abstention_phrase_never_raises_a_content_answer(tmp_path):
    """Appending "(unknown)" to every content answer used to score 0.879; now it gains nothing."""
    ds = read_locomo(write_locomo_fixture(tmp_path, n_samples=3))
    gamed, honest = [], []
    for q in ds.questions:
        gold = ABSTAIN_ANSWER if q.meta["category"] == 5 else q.answer
        content = q.answer  # the content answer (for category 5: the trap)
        gamed.append(comam_env.score_answer(q, f"{content} (unknown)"))
        honest.append(comam_env.score_answer(q, gold))
        if q.meta["category"] != 5:
            assert gamed[-1] <= comam_env.score_answer(q, content)
    assert sum(honest) / len(honest) == 1.0
    assert sum(gamed) / len(gamed) < 0.75  # every category-5 answer scores 0, the rest lose precision
    assert all(g == 0.0 for g, q in zip(gamed, ds.questions) if q.meta["category"] == 5)


def test_oracle_abstains_on_category_5_and_scores_one(tmp_path):
    ds = read_locomo(write_locomo_fixture(tmp_path, n_samples=1))
    env = make_env(ds, episode="full-history", reward_mode="local+global", judge=None)
    adversarial = [q for q in ds.questions if q.meta["category"] == 5]
    assert adversarial
    for q in adversarial + [q for q in ds.questions if q.meta["category"] == 4]:
        traj = run_episode(env, OraclePolicy(), options={"question_id": q.question_id})
        g = next(i["global_reward"] for a, i in traj["final_infos"].items() if a.startswith("retriever"))
        assert g == 1.0, q.question_id
