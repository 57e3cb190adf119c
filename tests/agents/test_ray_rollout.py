"""Rollouts on Ray actors: the same seed gives the same rollouts and metrics for any number of
workers — env stepping for selection policies, generation and env stepping for LLM policies (a
real local Ray instance with 2 CPUs) — and clear errors when Ray is missing or unreachable."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from agents.comam import TrainConfig, Trainer, _make_envs, is_timing_key  # noqa: E402
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
    """The run's metrics without its wall-time fields (``seconds*``, ``tokens_per_s_*``)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not is_timing_key(k)} for line in lines]


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


@pytest.fixture(scope="module")
def stopping_tiny(tmp_path_factory):
    """The tiny LLM with 40 stop tokens (a random model almost never emits its one eos): the
    extractor and profiler finish at different lengths, so the format reward varies within groups,
    advantages are non-zero and the adapters move after iteration 1."""
    from agents.tiny import build_tiny_llm

    path = Path(build_tiny_llm(tmp_path_factory.mktemp("tiny") / "llm"))
    gen = json.loads((path / "generation_config.json").read_text())
    (path / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": list(range(40, 80))}))
    return str(path)


def llm_config(model, **kw) -> TrainConfig:
    base = dict(policy="llm", iterations=2, batch_queries=2, group_size=2, eval_limit=2, eval_every=2,
                checkpoint_every=2, env_pool=4, progress=False, seed=3, env_kwargs={"chunk_tokens": 400},
                eval_episode="evidence-session", format_reward=1.0, zero_variance="keep",
                policy_kwargs={"model": model, "max_new_tokens": 8, "lora_r": 4, "lora_alpha": 8},
                grpo={"lr": 1e-2, "inner_epochs": 1})
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow  # three tiny-LLM runs, two of them starting Ray actors (~70 s on the loaded 2-core box)
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_llm_same_seed_identical_metrics_with_0_1_2_rollout_workers(tmp_path, local_ray, stopping_tiny):
    torch.set_num_threads(1)
    runs = {}
    for n in (0, 1, 2):
        trainer = Trainer(llm_config(stopping_tiny, rollout_workers=n), tmp_path / f"n{n}")
        trainer.run()
        if n:  # generation ran on n actors, which the run gave back
            assert trainer.rollout_workers.workers == n and trainer.rollout_workers._actors == []
            assert trainer.train_envs is None  # no rollout envs in the learner
        else:
            assert trainer.rollout_workers is None
        runs[n] = metrics(tmp_path / f"n{n}")
    assert runs[0] == runs[1] == runs[2]
    recs = runs[0]
    assert [r["iteration"] for r in recs] == [0, 1, 2]
    # iteration 1 updated the adapters, so iteration 2's rollouts and behaviour log-probs (the
    # GRPO ratios) would differ had an actor not received the new weights
    assert recs[1]["adv_std_profiler"] > 0 and recs[1]["grpo_profiler/grad_norm"] > 0
    assert all(recs[2][f"gen_tokens_{r}"] > 0 for r in ("extractor", "profiler", "retriever"))
    assert recs[2]["grpo_profiler/ratio_mean"] == pytest.approx(1.0, abs=1e-5)


def test_is_timing_key():
    assert all(is_timing_key(k) for k in ("seconds", "seconds_rollout", "tokens_per_s_extractor",
                                          "gen_seconds_profiler", "grpo_seconds_forward"))
    assert not any(is_timing_key(k) for k in ("gen_tokens_extractor", "iteration", "grpo_extractor/loss"))


def test_clear_error_when_ray_is_missing(tmp_path, monkeypatch, capsys):
    from comam_env.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match="pip install 'comam-env\\[integrations\\]'") as err:
        init_ray()
    assert err.value.name == "ray"
    with pytest.raises(ImportError, match="not installed"):
        Trainer(small(rollout_workers=1), tmp_path / "run")
    code = main(["train", "--rollout-workers", "1", "--iterations", "1", "--no-progress", "--out", str(tmp_path / "cli")])
    assert code != 0 and "--rollout-workers 0 runs in process without it" in capsys.readouterr().err


def test_clear_error_when_the_ray_address_is_unreachable(tmp_path, monkeypatch, capsys):
    from comam_env.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # even inside a session with local Ray
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init must not be reached"))
    with pytest.raises(ConnectionError, match=f"--ray-address 127.0.0.1:{port}: no Ray cluster reachable"):
        init_ray(f"127.0.0.1:{port}")
    with pytest.raises(ConnectionError, match="no Ray cluster reachable"):
        init_ray(f"ray://127.0.0.1:{port}")
    with pytest.raises(ValueError, match="expected 'auto', host:port"):
        init_ray("nohost")
    code = main(["train", "--rollout-workers", "1", "--ray-address", f"127.0.0.1:{port}", "--iterations", "1",
                 "--no-progress", "--out", str(tmp_path / "cli")])
    assert code != 0 and "ray start --head" in capsys.readouterr().err
