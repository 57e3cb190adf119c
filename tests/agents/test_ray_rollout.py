"""Rollout envs on Ray actors: the same seed gives the same rollouts and metrics for any number
of workers (a real local Ray instance with 2 CPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from agents.comam import TrainConfig, Trainer, _make_envs  # noqa: E402
from agents.ray_rollout import RayEnvPool, init_ray  # noqa: E402
from agents.rollout import collect_rollouts  # noqa: E402
from agents.selection import SelectionPolicy  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def small(**kw) -> TrainConfig:
    base = dict(batch_queries=2, group_size=3, iterations=2, eval_limit=4, eval_every=1, checkpoint_every=2,
                env_pool=5, progress=False, seed=11, grpo={"lr": 1e-2, "inner_epochs": 1})
    return TrainConfig(**{**base, **kw})


def metrics(run_dir) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("seconds")} for line in lines]


@pytest.mark.slow  # a real local Ray instance and its actors
def test_same_seed_identical_metrics_with_0_and_2_rollout_workers(tmp_path, local_ray):
    torch.set_num_threads(1)
    local = Trainer(small(rollout_workers=0), tmp_path / "local")
    local.run()
    remote = Trainer(small(rollout_workers=2), tmp_path / "ray")
    assert type(remote.train_envs).__name__ == "RayEnvPool" and remote.train_envs.workers == 2
    remote.run()
    assert metrics(tmp_path / "local") == metrics(tmp_path / "ray")
    assert [r["iteration"] for r in metrics(tmp_path / "ray")] == [0, 1, 2]
    # the run gave its actors back (a second pool can be scheduled on the 2 CPUs)
    assert remote.train_envs._actors == []


@pytest.mark.slow  # a real local Ray instance and its actors
def test_ray_pool_rollouts_equal_in_process_rollouts_across_waves(local_ray):
    cfg = small()
    envs = _make_envs(cfg, 3, "train", cfg.train_episode)
    pool = RayEnvPool(lambda n: _make_envs(cfg, n, "train", cfg.train_episode), 3, 2)
    try:
        assert len(pool) == 3 and pool.workers == 2
        ids = list(envs[0].unwrapped.question_ids[:2])
        space = envs[0].observation_space(envs[0].possible_agents[0])
        batches = []
        for where in (envs, pool):  # 2 questions x 4 = 8 episodes in 3 waves over 3 envs
            policy = SelectionPolicy(dim=int(space["candidates"].shape[-1]), seed=0)
            batches.append(collect_rollouts(where, {r: policy for r in ("extractor", "profiler", "retriever")}, ids, 4,
                                            rng=np.random.default_rng(5), generator=torch.Generator().manual_seed(5)))
        a, b = batches
        assert a.global_matrix().tolist() == b.global_matrix().tolist()
        for role in ("extractor", "profiler", "retriever"):
            assert np.array_equal(a.local_matrix(role), b.local_matrix(role), equal_nan=True)
        assert [(x.trajectory, x.role, x.logprob) for x in a.actions] == [(x.trajectory, x.role, x.logprob) for x in b.actions]
        assert [t.record["steps"][-1]["action"] for t in a.trajectories] == [t.record["steps"][-1]["action"] for t in b.trajectories]
        with pytest.raises(IndexError, match="slot 7 outside the pool of 3"):
            pool.step({7: None})
    finally:
        pool.close()
    with pytest.raises(ValueError, match="at least one worker"):
        RayEnvPool(lambda n: [], 3, 0)


def test_rollout_workers_must_be_non_negative():
    with pytest.raises(ValueError, match="rollout_workers must be >= 0"):
        TrainConfig(rollout_workers=-1)
