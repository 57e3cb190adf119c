"""Figures for training runs: per-agent local rewards, accuracy and the adaptive weights w_n.

Uses matplotlib's non-interactive Agg backend so it works on headless machines and in CI.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import ROLE_NAMES


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl`` (one per iteration, plus the iteration-0 evaluation)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics (has the run started?)")
    from comam_env.data.jsonl import iter_jsonl

    return [record for _, record in iter_jsonl(path)]


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get(key) is not None:
            xs.append(r["iteration"])
            ys.append(r[key])
    return xs, ys


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``training.png`` (3 panels: local rewards, accuracy, w_n) for one run; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    cfg_path = Path(run_dir) / "config.json"
    episode = json.loads(cfg_path.read_text()).get("eval_episode") if cfg_path.exists() else None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for role in ROLE_NAMES:
        axes[0].plot(*_series(records, f"local_{role}"), label=role)
    axes[0].set(title="local reward per agent (train rollouts)", xlabel="iteration", ylabel="mean local reward")
    axes[1].plot(*_series(records, "train_accuracy"), label="train rollouts (T=1.0)", alpha=0.6)
    axes[1].plot(*_series(records, "val_accuracy"), marker="o",
                 label=f"validation ({episode} episodes)" if episode else "validation")
    axes[1].set(title="answer accuracy (global reward)", xlabel="iteration", ylabel="accuracy")
    for role in ROLE_NAMES:
        xs, ys = _series(records, f"w_{role}")
        if xs:
            axes[2].plot(xs, ys, label=role)
    axes[2].set(title="adaptive weight w_n (eq. 14)", xlabel="iteration", ylabel="mean w_n")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    path = Path(out) if out else Path(run_dir) / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
