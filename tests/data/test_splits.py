"""Train / validation splits."""

from __future__ import annotations

import pytest

from comam_env.data.schema import Dataset, History, Question
from comam_env.data.splits import PAPER_SIZES, split_question_ids


def make_dataset(name: str, n_questions: int, n_histories: int = 7) -> Dataset:
    hs = {f"h{i}": History(f"h{i}", ("user",), ("hi",), (0,)) for i in range(n_histories)}
    qs = tuple(Question(f"q{i}", f"h{i % n_histories}", "suggest_new_ideas", "suggest_new_ideas", "?",
                        ("x", "y"), "a", None, 1) for i in range(n_questions))
    return Dataset(name, hs, qs)


@pytest.mark.parametrize("name,n", [("personamem-32k", 589), ("personamem-128k", 2700), ("personamem-1m", 2674)])
def test_paper_sizes(name, n):
    ds = make_dataset(name, n)
    train = split_question_ids(ds, "train")
    val = split_question_ids(ds, "validation")
    assert (len(train), len(val)) == PAPER_SIZES[name.split("-")[1]]
    assert not set(train) & set(val)


def test_reproducible_and_seed_dependent_and_ordered():
    ds = make_dataset("personamem-32k", 589)
    a = split_question_ids(ds, "train", seed=1)
    assert a == split_question_ids(ds, "train", seed=1)
    assert a != split_question_ids(ds, "train", seed=2)
    order = {q.question_id: i for i, q in enumerate(ds.questions)}
    assert [order[x] for x in a] == sorted(order[x] for x in a)
    assert split_question_ids(ds, "all") == [q.question_id for q in ds.questions]


def test_default_80_20_and_explicit_sizes():
    ds = make_dataset("synthetic-32k", 50)
    train, val = split_question_ids(ds, "train"), split_question_ids(ds, "validation")
    assert (len(train), len(val)) == (40, 10)
    assert set(train) | set(val) == {q.question_id for q in ds.questions}
    assert len(split_question_ids(ds, "validation", sizes=(20, 5))) == 5
    with pytest.raises(ValueError, match="cannot draw"):
        split_question_ids(ds, "train", sizes=(45, 10))
    with pytest.raises(ValueError, match="unknown split"):
        split_question_ids(ds, "test")


def test_group_by_history_keeps_histories_on_one_side():
    ds = make_dataset("locomo", 70, n_histories=10)
    train = split_question_ids(ds, "train", by="history", seed=3)
    val = split_question_ids(ds, "validation", by="history", seed=3)
    assert set(train) | set(val) == {q.question_id for q in ds.questions} and not set(train) & set(val)
    th = {ds.question(q).history_id for q in train}
    vh = {ds.question(q).history_id for q in val}
    assert th and vh and not th & vh
    assert len(val) >= 0.2 * 70
