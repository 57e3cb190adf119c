"""The registered synthetic tracks: >= 500 validation questions, split by persona, and no
answer-only probe beats chance on any split (binomial 95% band around 1/4)."""

from __future__ import annotations

import collections
import math

import pytest

import comam_env
from comam_env.probes import length_rank_option, longest_option, probe_accuracy, question_similarity_option, shortest_option

SIZES = [("mini", 100), ("32k", 500), pytest.param("128k", 500, marks=pytest.mark.slow),
         pytest.param("1m", 500, marks=pytest.mark.slow)]


def _within_chance(acc: float, n: int) -> bool:
    half = 1.96 * math.sqrt(0.25 * 0.75 / n)
    return 0.25 - half <= acc <= 0.25 + half


@pytest.mark.parametrize("size,min_validation", SIZES)
def test_track_splits_by_persona_and_probes_stay_at_chance(size, min_validation):
    splits = {s: comam_env.make(f"synthetic-{size}", split=s).unwrapped for s in ("train", "validation")}
    ds = splits["train"].dataset
    qs = {s: [ds.question(i) for i in e.question_ids] for s, e in splits.items()}
    assert len(qs["validation"]) >= min_validation
    personas = {s: {q.persona_id for q in v} for s, v in qs.items()}
    assert not personas["train"] & personas["validation"]  # by persona: no shared history
    assert len(qs["train"]) + len(qs["validation"]) == len(ds.questions)

    probes = {"longest option": longest_option, "shortest option": shortest_option,
              "question only": question_similarity_option}
    # a length rule per question type, fitted on train (the best length rank of each type)
    by_type = collections.defaultdict(list)
    for q in qs["train"]:
        by_type[q.qtype].append(q)
    rank = {t: max(range(4), key=lambda k: probe_accuracy(v, lambda q: length_rank_option(q, k)))
            for t, v in by_type.items()}
    probes["per-type length rule (fitted on train)"] = lambda q: length_rank_option(q, rank[q.qtype])
    for split, questions in qs.items():
        for name, probe in probes.items():
            if split == "train" and name.startswith("per-type"):
                continue  # fitted there: only its held-out score is a probe
            acc = probe_accuracy(questions, probe)
            assert _within_chance(acc, len(questions)), (size, split, name, acc, len(questions))
