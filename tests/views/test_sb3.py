"""Stable-Baselines3 end to end: a short PPO run on the single-agent selection view.

Uses the examples' shared module (examples/sb3_common.py) on the tiny dataset,
so the example code path itself is what is tested.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import sb3_common  # noqa: E402


@pytest.mark.slow  # ~10-20 s: a real (short) PPO run per role
@pytest.mark.parametrize("role,features", [("retriever", "similarity-only"), ("extractor", "similarity")])
def test_short_ppo_training_end_to_end(tiny_dataset, tmp_path, monkeypatch, role, features):
    from comam_env.embed import embed_dataset

    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = sb3_common.Config(
        role=role, K=8, features=features, timesteps=256, n_steps=64, batch_size=32, n_epochs=2,
        eval_every=128, n_curve=4, net_arch=(16,), others=("extractor=all",) if role == "retriever" else (),
    )
    ids = [q.question_id for q in tiny_dataset.questions]
    train, val = ids[:8], ids[8:]
    cache = embed_dataset(tiny_dataset, cfg.embedder, progress=False)
    r = sb3_common.train_seed(cfg, 0, tiny_dataset, train, val, cache, progress=False)
    metric = sb3_common.ROLE_METRIC[role]
    for key in ("untrained", "trained", "heuristic"):
        assert r[key]["n"] == len(val)
        assert 0.0 <= r[key]["accuracy"] <= 1.0 and 0.0 <= r[key][metric] <= 1.0
    assert [c["timesteps"] for c in r["curve"]][0] >= 1 and r["curve"][-1]["timesteps"] >= 256
    assert len(r["curve"]) >= 3
    assert len(r["train_episode_rewards"]) > 0 and np.isfinite(r["train_episode_rewards"]).all()
    table = sb3_common.summarize([r], role)
    assert "PPO trained" in table and metric in table
    png = tmp_path / "curve.png"
    sb3_common.plot([r], role, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_is_deterministic_and_uses_the_policy(tiny_dataset, tmp_path, monkeypatch):
    from comam_env.embed import embed_dataset

    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    cfg = sb3_common.Config(role="retriever", K=8, features="embeddings", others=("extractor=oracle", "profiler=all"))
    cache = embed_dataset(tiny_dataset, cfg.embedder, progress=False)
    ids = [q.question_id for q in tiny_dataset.questions]
    env = sb3_common.make_env(cfg, tiny_dataset, cache, ids)
    gold = lambda obs: env.view.gold_action(env.agent)
    nothing = lambda obs: np.zeros(9, dtype=np.int64)
    a = sb3_common.evaluate(gold, env, ids, "retriever")
    assert a == sb3_common.evaluate(gold, env, ids, "retriever")
    assert a["accuracy"] == 1.0 and a["retrieval_reward"] > 0.99
    b = sb3_common.evaluate(nothing, env, ids, "retriever")
    assert b["retrieval_reward"] == 0.0
    with pytest.raises(ValueError, match="role=policy"):
        sb3_common.parse_others(["extractor"])
