"""The tested part of the verl recipe: per-role advantages instead of one broadcast reward."""

import numpy as np
import pytest

from agents.credit import assign_credit_batch
from agents.grpo import group_advantages
from agents.integrations.verl import per_role_advantages

ROLES = ("extractor", "profiler", "retriever")


def _batch(seed=0, questions=("q1", "q2"), G=4):
    rng = np.random.default_rng(seed)
    rows = []
    for q in questions:
        for m in range(G):
            glob = float(rng.integers(0, 2))
            for r in ROLES:
                rows.append((q, r, m, float(rng.random()), glob))
    rng.shuffle(rows)  # verl batches are not ordered for us
    return [list(c) for c in zip(*rows, strict=True)]


def test_per_role_advantages_match_credit_then_group_normalisation():
    q, r, m, loc, glob = _batch()
    adv = per_role_advantages(q, r, m, loc, glob, credit="adaptive")
    for question in ("q1", "q2"):
        local = {role: np.array([[next(loc[i] for i in range(len(q)) if (q[i], r[i], m[i]) == (question, role, k))
                                  for k in range(4)]]) for role in ROLES}
        g = np.array([[next(glob[i] for i in range(len(q)) if (q[i], m[i]) == (question, k)) for k in range(4)]])
        expected = {role: group_advantages(assign_credit_batch("adaptive", local, g).rewards[role])[0] for role in ROLES}
        for i in range(len(q)):
            if q[i] == question:
                assert adv[i] == pytest.approx(expected[r[i]][m[i]])
    # roles of one episode get different advantages (not one broadcast value)
    first = [adv[i] for i in range(len(q)) if (q[i], m[i]) == ("q1", 0)]
    assert len(set(np.round(first, 9))) > 1


def test_per_role_advantages_reject_incomplete_or_inconsistent_episodes():
    q, r, m, loc, glob = _batch()
    with pytest.raises(ValueError, match="expected one row per role"):
        per_role_advantages(q[1:], r[1:], m[1:], loc[1:], glob[1:])
    j = next(i for i in range(len(q)) if r[i] == "profiler")
    bad = list(glob)
    bad[j] = 1.0 - bad[j]
    with pytest.raises(ValueError, match="disagree on the answer reward"):
        per_role_advantages(q, r, m, loc, bad)
    with pytest.raises(ValueError, match="appears twice"):
        per_role_advantages(q + q[:1], r + r[:1], m + m[:1], loc + loc[:1], glob + glob[:1])
