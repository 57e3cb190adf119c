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


def test_torchrl_needs_numeric_infos_and_wrap_says_so(view_factory):
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    from comam_env.integrations.torchrl import wrap

    # what a user meets without the check: TorchRL's own spec code fails on the text infos
    with pytest.raises(TypeError, match="invalid data type 'str'"):
        PettingZooWrapper(env=view_factory(K=8), use_mask=True, seed=0, categorical_actions=True)
    with pytest.raises(ValueError, match=r"view_kwargs=\{'infos': 'numeric'\}"):
        wrap(view_factory(K=8))
    env = wrap(view_factory(K=8, infos="numeric"), seed=0)
    td = env.rollout(200, break_when_any_done=True)
    assert td["next", "done"][-1].all()


def test_torchrl_wrap_refuses_the_text_view(text_env_factory):
    from comam_env.integrations.torchrl import wrap

    with pytest.raises(ValueError, match="needs the selection view"):
        wrap(text_env_factory())


def test_turn_based_aec_to_parallel_works_and_aec_to_parallel_is_refused(view_factory):
    from pettingzoo.utils.conversions import aec_to_parallel, turn_based_aec_to_parallel

    par = turn_based_aec_to_parallel(view_factory(K=8, infos="numeric"))
    obs, infos = par.reset(seed=0)
    assert set(obs) == {"extractor_0", "profiler_0", "retriever_0"}
    for _ in range(200):
        if not par.agents:
            break
        obs, rewards, terms, truncs, infos = par.step({a: par.action_space(a).sample() for a in par.agents})
    assert not par.agents  # the episode ended through the parallel API
    with pytest.raises(Exception, match="(?i)parallel"):
        aec_to_parallel(view_factory(K=8, infos="numeric"))
