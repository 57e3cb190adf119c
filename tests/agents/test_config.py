"""agents.config: the training configuration imports without torch (``train --help`` stays light)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agents.config import GRPOConfig, TrainConfig


def test_config_modules_do_not_import_torch():
    code = ("import sys, agents.config, agents.cli; "
            "heavy = sorted(m for m in ('torch', 'transformers', 'agents.comam', 'agents.grpo') if m in sys.modules); "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_old_import_paths_are_the_same_classes():
    from agents.comam import TrainConfig as from_comam
    from agents.grpo import GRPOConfig as from_grpo

    assert from_comam is TrainConfig and from_grpo is GRPOConfig


def test_train_config_still_validates():
    with pytest.raises(ValueError, match="unknown credit strategy"):
        TrainConfig(credit="bogus")
    assert TrainConfig(policy="selection").grpo_config().lr == 1e-2


def test_rollout_batching_choices():
    from agents.config import TrainConfig

    assert TrainConfig().rollout_batching == "group"
    assert TrainConfig(rollout_batching="batch").rollout_batching == "batch"
    with pytest.raises(ValueError, match="rollout_batching must be 'group' or 'batch'"):
        TrainConfig(rollout_batching="wide")
    with pytest.raises(ValueError, match="with rollout_workers"):
        TrainConfig(rollout_batching="batch", rollout_workers=2)
