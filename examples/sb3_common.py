"""Shared logic of the Stable-Baselines3 examples (PPO on one role of the selection view).

``examples/sb3_ppo_retriever.py`` and ``examples/sb3_ppo_extractor.py`` call
:func:`main` with their role. For every seed it

1. builds the single-agent view of the role on the training questions
   (``comam_env.single_agent``; the other roles follow the similarity
   heuristics), with a Monitor;
2. evaluates the *untrained* PPO policy (deterministic actions) on the
   validation questions: accuracy (global answer reward) and the role's local
   reward (retrieval reward eq. 11 / extraction reward eq. 9);
3. trains PPO (``MultiInputPolicy``) for ``--timesteps`` steps, evaluating on a
   validation subset every ``--eval-every`` steps (the learning curve);
4. evaluates the trained policy on all validation questions.

It prints a table (mean ± std over seeds, plus the similarity heuristic as a
reference), writes ``results.json`` and a learning-curve PNG (matplotlib, Agg)
into ``--out``. Every number comes from the run; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROLE_METRIC = {"retriever": "retrieval_reward", "extractor": "extraction_reward", "profiler": "profile_reward"}


@dataclass
class Config:
    """Settings of one example run (all exposed as command-line flags)."""

    role: str = field(default="retriever", metadata={"help": "learning role"})
    env_id: str = field(default="synthetic-32k", metadata={"help": "environment id"})
    seeds: Sequence[int] = field(default=(0, 1, 2), metadata={"help": "training seeds (results are averaged)"})
    timesteps: int = field(default=20000, metadata={"help": "PPO environment steps per seed"})
    K: int = field(default=16, metadata={"help": "candidates per step (selection view K)"})
    embedder: str = field(default="hashing", metadata={"help": "'hashing' or 'minilm'"})
    features: str = field(default="similarity", metadata={"help": "single-agent observation features"})
    reward_mode: str = field(default="local+global", metadata={"help": "env reward_mode used for training"})
    episode: str = field(default="evidence-session", metadata={"help": "episode kind for training and evaluation"})
    n_eval: int | None = field(default=None, metadata={"help": "validation questions for the before/after table (None: all)"})
    n_curve: int = field(default=60, metadata={"help": "validation questions evaluated at each learning-curve point"})
    eval_every: int = field(default=4000, metadata={"help": "steps between learning-curve evaluations"})
    n_steps: int = field(default=512, metadata={"help": "PPO rollout length"})
    batch_size: int = field(default=128, metadata={"help": "PPO minibatch size"})
    n_epochs: int = field(default=10, metadata={"help": "PPO epochs per rollout"})
    learning_rate: float = field(default=1e-3, metadata={"help": "PPO learning rate"})
    ent_coef: float = field(default=0.01, metadata={"help": "PPO entropy bonus"})
    gamma: float = field(default=0.99, metadata={"help": "discount (episodes are 1-3 steps)"})
    net_arch: Sequence[int] = field(default=(64, 64), metadata={"help": "MLP hidden sizes (policy and value)"})
    others: Sequence[str] = field(default=(), metadata={
        "help": "fixed policies of the other roles as role=policy (similarity|all|random|oracle); default similarity"})
    out: str = field(default="", metadata={"help": "output folder (default runs/sb3-<role>)"})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads for torch (None: $OMP_NUM_THREADS, else the idle CPUs this process may use, capped at 8)"})
    references_only: bool = field(default=False, metadata={
        "help": "only evaluate the fixed reference policies (heuristic, keep all, oracle) and exit"})


def _load(cfg: Config, dataset: Any = None) -> tuple[Any, list[str], list[str], Any]:
    """Dataset, train ids, validation ids and the shared embedding cache."""
    from comam_env.data import load_dataset
    from comam_env.data.splits import split_question_ids
    from comam_env.embed import embed_dataset
    from comam_env.registry import resolve_id

    if dataset is None:
        dataset = load_dataset(resolve_id(cfg.env_id).dataset)
    train = split_question_ids(dataset, "train")
    val = split_question_ids(dataset, "validation")
    cache = embed_dataset(dataset, cfg.embedder)
    return dataset, train, val, cache


def make_env(cfg: Config, dataset: Any, cache: Any, question_ids: Sequence[str] | None, **make_kw: Any) -> Any:
    """The role's single-agent view over ``dataset`` (all questions reachable, drawn from ``question_ids``)."""
    from comam_env.views.single_agent import single_agent

    return single_agent(
        cfg.env_id,
        role=cfg.role,
        K=cfg.K,
        view_kwargs={"cache": cache},
        question_ids=question_ids,
        features=cfg.features,
        others=parse_others(cfg.others),
        dataset=dataset,
        split="all",
        episode=cfg.episode,
        reward_mode=cfg.reward_mode,
        record_trajectory=True,
        **make_kw,
    )


def parse_others(items: Sequence[str]) -> dict[str, str]:
    """``["extractor=all", ...]`` → ``{"extractor": "all", ...}``."""
    out = {}
    for item in items:
        role, sep, policy = item.partition("=")
        if not sep:
            raise ValueError(f"--others: expected role=policy, got {item!r}")
        out[role.strip()] = policy.strip()
    return out


def evaluate(act: Callable[[dict], np.ndarray], env: Any, question_ids: Sequence[str], role: str) -> dict[str, float]:
    """Mean accuracy, the role's local reward and the scalar return over ``question_ids``.

    ``act(obs) -> action``. Question ``i`` is replayed with seed ``i`` so every
    policy sees the same episodes.
    """
    acc, local, ret = [], [], []
    for i, qid in enumerate(question_ids):
        obs, _ = env.reset(seed=i, options={"question_id": qid})
        total = 0.0
        while True:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += r
            if term or trunc:
                break
        traj = env.view.trajectory()
        acc.append(float(traj["global_reward"]))
        lr = traj["local"][role]
        if lr is not None:
            local.append(float(lr))
        ret.append(total)
    return {
        "accuracy": float(np.mean(acc)),
        ROLE_METRIC[role]: float(np.mean(local)) if local else float("nan"),
        "return": float(np.mean(ret)),
        "n": len(question_ids),
    }


def _model_act(model: Any) -> Callable[[dict], np.ndarray]:
    return lambda obs: model.predict(obs, deterministic=True)[0]


def train_seed(cfg: Config, seed: int, dataset: Any, train: list[str], val: list[str], cache: Any,
               progress: bool = True) -> dict[str, Any]:
    """Untrained eval → PPO training with a validation learning curve → trained eval, for one seed."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    from comam_env.threads import set_threads

    set_threads(cfg.threads)
    from comam_env.views.heuristics import SimilarityPolicy

    train_env = Monitor(make_env(cfg, dataset, cache, train))
    eval_env = make_env(cfg, dataset, cache, val)
    n_eval = val if cfg.n_eval is None else val[: cfg.n_eval]
    curve_ids = val[: cfg.n_curve]
    model = PPO(
        "MultiInputPolicy",
        train_env,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        ent_coef=cfg.ent_coef,
        gamma=cfg.gamma,
        policy_kwargs={"net_arch": list(cfg.net_arch)},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.time()
    before = evaluate(_model_act(model), eval_env, n_eval, cfg.role)
    sim = SimilarityPolicy(role=cfg.role)  # acts on the view's full observation, not the learner's features
    heuristic = evaluate(lambda _obs: sim(eval_env.view.observe(eval_env.agent)), eval_env, n_eval, cfg.role)
    metric = ROLE_METRIC[cfg.role]
    curve: list[dict[str, float]] = []

    class CurveCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = 0
            self.bar = None
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=cfg.timesteps, desc=f"PPO {cfg.role} seed {seed}", unit="step", leave=False, mininterval=10)

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.update(1)
            if self.num_timesteps >= self.next_eval:
                m = evaluate(_model_act(self.model), eval_env, curve_ids, cfg.role)
                curve.append({"timesteps": int(self.num_timesteps), "accuracy": m["accuracy"], metric: m[metric]})
                self.next_eval += cfg.eval_every
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    model.learn(total_timesteps=cfg.timesteps, callback=CurveCallback())
    m = evaluate(_model_act(model), eval_env, curve_ids, cfg.role)
    curve.append({"timesteps": int(model.num_timesteps), "accuracy": m["accuracy"], metric: m[metric]})
    after = evaluate(_model_act(model), eval_env, n_eval, cfg.role)
    episodes = train_env.get_episode_rewards()
    return {
        "seed": seed,
        "untrained": before,
        "trained": after,
        "heuristic": heuristic,
        "curve": curve,
        "train_episode_rewards": [float(x) for x in episodes],
        "seconds": time.time() - t0,
    }


def references(cfg: Config, dataset: Any, val: list[str], cache: Any) -> dict[str, dict[str, float]]:
    """Fixed reference policies for the learning role on the same validation episodes:
    the similarity heuristic, keep-every-candidate (retriever: + the similarity answer) and the
    gold-evidence oracle (reads gold data; an upper reference, not a baseline to beat)."""
    from comam_env.views.heuristics import KeepAllPolicy, SimilarityPolicy

    env = make_env(cfg, dataset, cache, val)
    ids = val if cfg.n_eval is None else val[: cfg.n_eval]
    full = lambda pol: (lambda _obs: pol(env.view.observe(env.agent)))  # noqa: E731
    return {
        "similarity heuristic": evaluate(full(SimilarityPolicy(role=cfg.role)), env, ids, cfg.role),
        "keep all": evaluate(full(KeepAllPolicy(role=cfg.role)), env, ids, cfg.role),
        "oracle (gold evidence)": evaluate(lambda _obs: env.view.gold_action(env.agent), env, ids, cfg.role),
    }


def summarize(results: list[dict[str, Any]], role: str) -> str:
    """The before/after table (mean ± std over seeds)."""
    metric = ROLE_METRIC[role]
    rows = []
    header = f"{'policy':<22} {'accuracy':>17} {metric:>22}"
    rows.append(header)
    rows.append("-" * len(header))
    for key, label in (("heuristic", "similarity heuristic"), ("untrained", "PPO untrained"), ("trained", "PPO trained")):
        acc = np.array([r[key]["accuracy"] for r in results])
        loc = np.array([r[key][metric] for r in results])
        rows.append(f"{label:<22} {acc.mean():>9.3f} ± {acc.std():.3f} {loc.mean():>14.3f} ± {loc.std():.3f}")
    n = results[0]["trained"]["n"]
    rows.append(f"(validation questions: {n}; seeds: {[r['seed'] for r in results]})")
    return "\n".join(rows)


def plot(results: list[dict[str, Any]], role: str, path: Path) -> None:
    """Validation accuracy and local reward vs training steps, one line per seed plus the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = ROLE_METRIC[role]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("accuracy", metric)):
        steps = [c["timesteps"] for c in results[0]["curve"]]
        vals = []
        for r in results:
            xs = [c["timesteps"] for c in r["curve"]]
            ys = [c[key] for c in r["curve"]]
            ax.plot(xs, ys, alpha=0.35, lw=1, label=f"seed {r['seed']}")
            vals.append(ys)
        k = min(len(v) for v in vals)
        ax.plot(steps[:k], np.mean([v[:k] for v in vals], axis=0), color="black", lw=2, label="mean")
        h = np.mean([r["heuristic"][key] for r in results])
        ax.axhline(h, color="gray", ls="--", lw=1, label="similarity heuristic")
        ax.set_xlabel("PPO steps")
        ax.set_ylabel(f"validation {key}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"PPO on the {role} selection view")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


#: Per-role defaults of the examples (what docs/selection_view.md reports).
#: Retriever: compact cosine features, and an extractor that keeps every turn so
#: the evidence is in memory for the retriever to find (with the similarity
#: extractor it rarely is, and nothing can be learnt). Extractor: embeddings plus
#: the centroid cosine, the profiler/retriever follow the similarity heuristic.
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "retriever": {"K": 32, "features": "similarity-only", "others": ("extractor=all",), "timesteps": 8000,
                  "eval_every": 2000},
    "extractor": {"K": 32, "features": "similarity", "others": (), "timesteps": 8000, "eval_every": 2000},
}


def parse_args(role: str, argv: Sequence[str] | None = None) -> Config:
    cfg = Config(role=role, **ROLE_DEFAULTS.get(role, {}))
    from comam_env.dataclass_args import add_dataclass_arguments, dataclass_values

    p = argparse.ArgumentParser(description=f"PPO (Stable-Baselines3) on the {role} single-agent selection view")
    add_dataclass_arguments(p, Config, exclude=("role",), defaults=cfg)
    return Config(role=role, **dataclass_values(p.parse_args(argv), Config))


def main(role: str, argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(role, argv)
    out = Path(cfg.out or f"runs/sb3-{role}")
    dataset, train, val, cache = _load(cfg)
    print(f"{cfg.env_id}: {len(train)} training / {len(val)} validation questions; K={cfg.K}, "
          f"embedder={cfg.embedder}, features={cfg.features}, episode={cfg.episode}", flush=True)
    refs = references(cfg, dataset, val, cache)
    metric = ROLE_METRIC[role]
    print("reference policies on the validation questions (no training):")
    for name, m in refs.items():
        print(f"  {name:<24} accuracy {m['accuracy']:.3f}  {metric} {m[metric]:.3f}")
    if cfg.references_only:
        return 0
    results = []
    for seed in cfg.seeds:
        r = train_seed(cfg, seed, dataset, train, val, cache)
        metric = ROLE_METRIC[role]
        print(f"seed {seed}: accuracy {r['untrained']['accuracy']:.3f} -> {r['trained']['accuracy']:.3f}, "
              f"{metric} {r['untrained'][metric]:.3f} -> {r['trained'][metric]:.3f} ({r['seconds']:.0f} s)", flush=True)
        results.append(r)
    table = summarize(results, role)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    plot(results, role, out / "learning_curve.png")
    payload = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
               "table": table, "references": refs, "results": results}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, out / "results.json")
    print(f"wrote {out / 'learning_curve.png'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "retriever", sys.argv[2:]))
