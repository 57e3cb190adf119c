"""The selection view under a multi-agent RL library: TorchRL's PettingZoo wrapper.

TorchRL (``torchrl`` + ``tensordict``, installable with the pinned torch) wraps
AEC environments whose agents have *different* action spaces: each agent is its
own group (``extractor_0``, ``profiler_0``, ``retriever_0``). See docs/multiagent.md.
"""

from __future__ import annotations

import pytest

torchrl = pytest.importorskip("torchrl", reason="torchrl is optional (pip install torchrl -c constraints-cpu.txt)")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def test_random_rollout_through_torchrl(view_factory):
    import torch
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    view = view_factory(K=8, infos="numeric")
    env = PettingZooWrapper(env=view, use_mask=True, seed=0, categorical_actions=True)
    assert set(env.group_map) == {"extractor_0", "profiler_0", "retriever_0"}
    # Different action specs per group: K bits vs K bits + option index.
    assert env.full_action_spec["extractor_0", "action"].shape[-1] == 8
    assert env.full_action_spec["retriever_0", "action"].shape[-1] == 9
    td = env.rollout(200, break_when_any_done=True)
    n = td.batch_size[0]
    assert td["next", "done"][-1].all() and not td["next", "done"][:-1].any()
    # Exactly one agent acts per AEC step (the mask), and each role acts at least once.
    acted = torch.stack([td[g, "mask"].squeeze(-1) for g in ("extractor_0", "profiler_0", "retriever_0")], -1)
    assert (acted.sum(-1) == 1).all()
    assert acted[:, 1].sum() == 1 and acted[:, 2].sum() == 1 and acted[:, 0].sum() == n - 2
    # The episode's last step is the retriever's, with its reward from the text env.
    traj = view.unwrapped.trajectory()
    assert len(traj["steps"]) == n
    r = float(td["next", "retriever_0", "reward"][-1].sum())
    step = traj["steps"][-1]
    expected = (step["local_reward"] or 0.0) + traj["global_reward"] / 3
    assert r == pytest.approx(expected, abs=1e-6)
    obs = td["extractor_0", "observation", "candidates"]
    assert obs.shape[-2:] == (8, view.dim) and obs.dtype == torch.float32
