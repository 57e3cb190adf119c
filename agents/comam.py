"""The reference CoMAM learner (docs/design.md §4): group rollouts → credit → per-agent GRPO.

One iteration reads top to bottom:

1. draw ``batch_queries`` training questions;
2. :func:`agents.rollout.collect_rollouts` samples ``group_size`` full trajectories per
   question through the environment (extractor chunk steps → profiler → retriever);
3. for every group, :func:`agents.credit.assign_credit_batch` turns each role's local
   rewards and the shared answer reward into integrated rewards (``adaptive`` = CoMAM:
   NDCG rank consistency → softmax weights → ``r_n + w_n·r_ans``);
4. :func:`agents.grpo.group_advantages` normalises them within each group, every action
   of a role in a trajectory inherits that trajectory's advantage, and
   :class:`agents.grpo.PerAgentGRPO` updates all (non-frozen) roles simultaneously;
5. metrics go to ``metrics.jsonl``; every ``eval_every`` iterations the policies are
   evaluated on the validation questions; every ``checkpoint_every`` iterations a
   checkpoint (safetensors + JSON state including every RNG) is written atomically.

Ablations run through the same loop (``TrainConfig.mode``): ``joint`` (all agents from the
same rollouts, the paper's method when ``credit="adaptive"``), ``independent`` (one agent at
a time, others frozen, rotating in equal phases — the paper's independent-RL baseline) and
``none`` (no training: evaluation of the initial policies). ``shared_policy=True`` runs one
network for all roles.

A run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoint/`` (``policy/``,
``optimizer.safetensors``, ``state.json``) and the figures. ``train(config)`` on a directory
that already has a checkpoint resumes it and continues the same curve.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import ROLE_NAMES, Policy, load_policy, make_policy
from .checkpoint import (atomic_json, has_checkpoint, jsonable, keep_metrics_upto, load_checkpoint,
                         recover_checkpoint, restore_rng, rng_state, save_checkpoint)
from .config import TrainConfig  # defined torch-free in agents.config; agents.comam.TrainConfig still works
from .credit import assign_credit_batch
from .format_reward import format_matrix
from .grpo import PerAgentGRPO, RoleBatch, group_advantages, zero_variance_groups
from .rollout import RolloutBatch, collect_rollouts, episode_seeds, evaluate

#: fields a checkpointed run may change on resume: the length, and where its envs run (results do
#: not depend on it)
RESUME_MAY_CHANGE = frozenset({"iterations", "rollout_workers", "ray_address"})

# ----------------------------------------------------------------------------- helpers


def is_timing_key(key: str) -> bool:
    """Whether a ``metrics.jsonl`` field measures wall time (``seconds``, ``seconds_rollout``,
    ``tokens_per_s_<role>``, any ``*seconds*`` key): the only fields that differ between two runs
    with the same configuration and seed — for any number of rollout workers."""
    return "seconds" in key or key.startswith("tokens_per_s")


def _make_envs(cfg: TrainConfig, n: int, split: str, episode: str):
    import comam_env

    kwargs = cfg.env_kwargs_for(split, episode)
    return [comam_env.make(cfg.env, **kwargs) for _ in range(n)]


def _make_eval_envs(cfg: TrainConfig, split: str, episode: str):
    # Evaluation is one greedy episode per question: a smaller pool than training suffices.
    return _make_envs(cfg, min(cfg.env_pool, 32), split, episode)


def _split_ids(env) -> list[str]:
    return list(env.unwrapped.question_ids)


def _build_policy(cfg: TrainConfig, env) -> Policy:
    kw = dict(cfg.policy_kwargs)
    if cfg.policy == "selection":
        space = env.observation_space(env.possible_agents[0])
        kw.setdefault("dim", int(space["candidates"].shape[-1]))
        kw.setdefault("shared", cfg.shared_policy)
        kw.setdefault("seed", cfg.seed)
        return make_policy("selection", **kw)
    # LLMPolicy(**LLMPolicyConfig fields): the model path comes from policy_kwargs; the shared
    # policy ablation is one LoRA adapter for all roles on the shared base model.
    kw.setdefault("seed", cfg.seed)
    kw.setdefault("share_adapter", cfg.shared_policy)
    try:
        return make_policy("llm", **kw)
    except TypeError as exc:
        raise ValueError(f"policy_kwargs for the LLM policy: {exc} (fields of agents.llm.LLMPolicyConfig)") from None


def _policies_for_roles(policy: Policy) -> dict[str, Policy]:
    return {name: policy for name in ROLE_NAMES}


def _evaluate(cfg: TrainConfig, envs, policy: Policy, ids, per_question: bool = False) -> dict:
    """The run's evaluation protocol (seed, greedy or sampled at eval_temperature); answers dropped,
    and the per-question results unless ``per_question``."""
    res = evaluate(envs, _policies_for_roles(policy), ids, seed=cfg.seed,
                   temperature=cfg.eval_temperature, greedy=cfg.eval_greedy)
    res.pop("answers", None)
    if not per_question:
        res.pop("per_question", None)
    return res


def _behaviour_logprobs(actions: list, level: str, policy: Any = None):
    """The per-token log-probs the policy recorded while sampling (``sample["token_logprobs"]``,
    :class:`agents.llm.LLMPolicy`), so the update needs no extra forward pass for its "old"
    log-probs; ``None`` (recompute) when a sample lacks them, the update is at sample level, or
    the policy says its recorded values are not what its update pass computes
    (``behaviour_logprobs_exact = False``: a bf16 KV-cached decode differs from the full pass by
    0.04 per token on SmolLM2, which would clip first-step ratios that are really 1)."""
    if level != "token" or not actions or not getattr(policy, "behaviour_logprobs_exact", True):
        return None
    rows = [a.sample.get("token_logprobs") if isinstance(a.sample, dict) else None for a in actions]
    return None if any(r is None for r in rows) else rows


class _Replay:
    """Acts by replaying one trajectory's recorded actions of one role, in order (leave-one-out)."""

    def __init__(self, actions: list) -> None:
        self._actions = list(actions)
        self._next = 0

    def act(self, role, observations, **_):
        from .base import ActOutput

        if self._next + len(observations) > len(self._actions):
            raise RuntimeError("leave-one-out replay ran out of recorded actions: the counterfactual "
                               "episode diverged before the replaced role (non-deterministic env?)")
        acts = self._actions[self._next: self._next + len(observations)]
        self._next += len(observations)
        return ActOutput(actions=acts, logprobs=torch.zeros(len(acts)), samples=[None] * len(acts))


# ------------------------------------------------------------------------ the loop


class Trainer:
    """Runs one training configuration into ``run_dir`` (see the module docstring)."""

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike):
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        recover_checkpoint(self.run_dir)  # finish or undo a save a kill interrupted
        cfg_path = self.run_dir / "config.json"
        if cfg_path.exists() and has_checkpoint(self.run_dir):
            # A checkpointed run resumes only under its own configuration (--iterations may grow);
            # a run that never checkpointed may be restarted with a new one.
            try:
                saved = json.loads(cfg_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{cfg_path}: not a readable run configuration ({exc})") from None
            if not isinstance(saved, dict):
                raise ValueError(f"{cfg_path}: expected a JSON object")
            current = json.loads(json.dumps(asdict(config), default=jsonable))
            # Fields added to TrainConfig after the run was made count as their defaults.
            defaults = json.loads(json.dumps(asdict(TrainConfig()), default=jsonable))
            saved = {**{k: defaults[k] for k in current if k not in saved}, **saved}
            differ = sorted(k for k in set(saved) | set(current)
                            if k not in RESUME_MAY_CHANGE and saved.get(k) != current.get(k))
            if differ:
                raise ValueError(
                    f"{cfg_path}: the run directory holds a checkpoint of a different configuration "
                    f"(fields {differ} differ); use a new --out directory (only {', '.join(sorted(RESUME_MAY_CHANGE))} "
                    "may change on resume)"
                )
        atomic_json(cfg_path, asdict(config))

        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        n_train = min(config.env_pool, config.batch_queries * config.group_size)
        # LLM policies sample from per-episode streams, one group per generation call, whole groups
        # per wave (agents.rollout): the rollouts do not depend on the pool or on where they run
        self.episode_streams = config.policy == "llm"
        if self.episode_streams:
            n_train = max(1, n_train // config.group_size) * config.group_size
        self.n_train = n_train
        self.rollout_workers = None  # agents.ray_rollout.RayRolloutWorkers, started at the first rollout
        if config.rollout_workers and self.episode_streams:  # generation and envs on Ray actors
            from .ray_rollout import init_ray

            init_ray(config.ray_address, num_cpus=None if config.ray_address else config.rollout_workers)
            self.probe_env = _make_envs(config, 1, "train", config.train_episode)[0]
            # the learner plays only the leave-one-out counterfactuals
            self.train_envs = (_make_envs(config, n_train, "train", config.train_episode)
                               if config.credit == "leave-one-out" else None)
        elif config.rollout_workers:  # envs on Ray actors; the policies still act here (same results)
            from .ray_rollout import RayEnvPool

            make = functools.partial(_make_envs, config, split="train", episode=config.train_episode)
            self.train_envs = RayEnvPool(make, n_train, config.rollout_workers, address=config.ray_address)
            self.probe_env = _make_envs(config, 1, "train", config.train_episode)[0]
        else:
            self.train_envs = _make_envs(config, n_train, "train", config.train_episode)
            self.probe_env = self.train_envs[0]
        self.eval_envs = _make_eval_envs(config, config.eval_split, config.eval_episode)
        self.train_ids = _split_ids(self.probe_env)
        eval_ids = _split_ids(self.eval_envs[0])
        self.eval_ids = eval_ids[: config.eval_limit] if config.eval_limit else eval_ids
        if not self.train_ids:
            raise ValueError(f"{config.env}: the training split has no questions")

        self.policy = _build_policy(config, self.probe_env)
        # The frozen start policy: leave-one-out's counterfactual actor and the KL penalty's reference
        # (after a warm start both become the warm-started policy).
        self.reference = None
        if config.credit == "leave-one-out" or config.grpo_config().kl_coef > 0:
            self.reference = _build_policy(config, self.probe_env)  # same seed → the initial policy
            self.reference.eval()
        self.updater = self._make_updater()
        self.iteration = 0
        self.resumed = False  # True once a checkpoint was restored (iteration 0 is then already logged)
        self.best: dict[str, Any] = {}
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self._maybe_resume()

    # ------------------------------------------------------------------ resume

    def _maybe_resume(self) -> None:
        # trust_remote_code comes from this run's explicit configuration, never from the saved policy.json
        explicit = {"trust_remote_code": True} if self.cfg.policy == "llm" and self.cfg.policy_kwargs.get(
            "trust_remote_code") else {}
        ckpt = load_checkpoint(self.run_dir, with_optimizer=self.updater is not None, policy_overrides=explicit)
        if ckpt is None:
            if self.metrics_path.exists():
                self.metrics_path.unlink()  # metrics of a run that never checkpointed
            return
        self.policy = ckpt.policy
        if self.cfg.warm_start is not None and self.reference is not None:
            self.reference = self._load_warm_start_reference()
        self.updater = self._make_updater()
        if self.updater is not None:
            self.updater.load_state_dict(ckpt.optimizer)
        restore_rng(ckpt.state["rng"], self.rng, self.gen)
        self.iteration = ckpt.iteration
        self.resumed = True
        self.best = ckpt.state.get("best", {})
        # Keep exactly the metrics the checkpoint had seen, so the curve continues seamlessly.
        keep_metrics_upto(self.metrics_path, self.iteration)

    def _make_updater(self) -> PerAgentGRPO | None:
        if self.cfg.mode == "none":
            return None
        grpo = self.cfg.grpo_config()
        return PerAgentGRPO(self.policy, grpo, ref_policy=self.reference if grpo.kl_coef > 0 else None,
                            generator=torch.Generator().manual_seed(self.cfg.seed + 1))

    def warm_start(self) -> dict:
        """Apply ``warm_start`` to a fresh run: SFT on oracle trajectories or a saved policy.

        The warm-started policy is saved to ``run_dir/warm_start`` (the leave-one-out
        reference is that policy); SFT writes its per-epoch losses to ``sft.jsonl``. Returns
        the summary merged into the iteration-0 metrics record.
        """
        ws = self.cfg.warm_start
        if ws is None:
            return {}
        if ws == "sft":
            from .sft import SFTConfig, run_sft

            sft_cfg = SFTConfig.from_dict({"seed": self.cfg.seed, **self.cfg.sft})
            info = run_sft(self.policy, self.probe_env, self.train_ids, sft_cfg,
                           log_path=self.run_dir / "sft.jsonl", progress=self.cfg.progress)
            info.pop("sft_config")
        else:
            # Free the fresh policy (and the updater that holds it) before loading the saved one:
            # an LLM policy is a whole model, and peak memory would otherwise hold both.
            self.updater, self.policy = None, None
            gc.collect()
            self.policy = load_policy(ws)
            info = {"warm_start_from": os.path.abspath(ws)}
        self.policy.save(self.run_dir / "warm_start")
        if self.reference is not None:
            self.reference = None  # likewise: the old reference goes before the new one loads
            gc.collect()
            self.reference = self._load_warm_start_reference()
        self.updater = self._make_updater()
        return info

    def _load_warm_start_reference(self) -> Policy:
        ref = load_policy(self.run_dir / "warm_start")
        ref.eval()
        return ref

    def _checkpoint(self) -> None:
        state = {"iteration": self.iteration, "rng": rng_state(self.rng, self.gen), "best": self.best}
        save_checkpoint(self.run_dir, self.policy, self.updater, state)

    def _log(self, record: dict) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=jsonable) + "\n")

    # -------------------------------------------------------------- one iteration

    def _frozen_roles(self) -> tuple[str, ...]:
        """Independent optimisation: the iterations are split into N equal phases, one role each."""
        if self.cfg.mode != "independent":
            return ()
        phase_len = max(1, math.ceil(self.cfg.iterations / len(ROLE_NAMES)))
        active = ROLE_NAMES[min(self.iteration // phase_len, len(ROLE_NAMES) - 1)]
        return tuple(r for r in ROLE_NAMES if r != active)

    def _counterfactual_global(self, batch: RolloutBatch, seeds: np.ndarray) -> dict[str, np.ndarray]:
        """Leave-one-out: re-run every trajectory with one role replaced by the frozen reference.

        The counterfactual changes *only* role n: each trajectory is reset with its own seed,
        the roles before n replay exactly the actions they took (the env is deterministic given
        seed and actions, so they see the same inputs), role n is played by the reference, and
        the roles after n act with the current policy on what the reference produced (they
        must: their inputs changed).
        """
        out = {}
        n = len(batch.trajectories)
        by_traj: dict[tuple[int, str], list] = {}
        for a in batch.actions:
            by_traj.setdefault((a.trajectory, a.role), []).append(a.action)
        for k, role in enumerate(ROLE_NAMES):
            upstream = ROLE_NAMES[:k]
            overrides = {t: {role: self.reference, **{u: _Replay(by_traj.get((t, u), [])) for u in upstream}}
                         for t in range(n)}
            streams = {"generator": self.gen}
            if self.episode_streams:  # counterfactual k samples from its own per-episode streams
                streams = {"sample_seeds": episode_seeds(self.cfg.seed, self.iteration, batch.question_ids,
                                                         batch.group_size, stream=k + 1),
                           "batch_groups": self.cfg.rollout_batching == "batch"}
            with torch.no_grad():
                cf = collect_rollouts(
                    self.train_envs, _policies_for_roles(self.policy), batch.question_ids, batch.group_size,
                    rng=self.rng, temperature=self.cfg.temperature, overrides=overrides, reset_seeds=seeds,
                    **streams,
                )
            out[role] = cf.global_matrix()
        return out

    def step(self) -> dict:
        """One iteration, in the order of the method: rollouts → credit → advantages → updates."""
        t0 = time.perf_counter()
        batch, seeds = self._rollouts()
        t_roll = time.perf_counter() - t0
        record: dict[str, Any] = {"iteration": self.iteration + 1}
        record.update(self._generation_record())
        credit = self._credit(batch, seeds, record)
        role_batches = self._advantages(batch, credit, record)
        record.update(self._update(role_batches))
        record["seconds_rollout"] = t_roll
        record["seconds"] = time.perf_counter() - t0
        self.iteration += 1
        return record

    def _rollouts(self) -> tuple[RolloutBatch, np.ndarray]:
        """Draw ``batch_queries`` training questions and sample ``group_size`` trajectories each."""
        cfg = self.cfg
        qids = [self.train_ids[i] for i in self.rng.choice(len(self.train_ids), size=cfg.batch_queries,
                                                            replace=len(self.train_ids) < cfg.batch_queries)]
        seeds = self.rng.integers(0, 2**31 - 1, size=len(qids) * cfg.group_size)
        self._generation_record()  # drop what evaluations generated since the last iteration
        self.policy.train()
        if not self.episode_streams:
            with torch.no_grad():
                batch = collect_rollouts(
                    self.train_envs, _policies_for_roles(self.policy), qids, cfg.group_size,
                    rng=self.rng, generator=self.gen, temperature=cfg.temperature, reset_seeds=seeds,
                )
            return batch, seeds
        streams = episode_seeds(cfg.seed, self.iteration, qids, cfg.group_size)
        if cfg.rollout_workers:
            batch = self._rollout_workers().collect(self.policy, qids, reset_seeds=seeds, sample_seeds=streams,
                                                    temperature=cfg.temperature)
        else:
            with torch.no_grad():
                batch = collect_rollouts(
                    self.train_envs, _policies_for_roles(self.policy), qids, cfg.group_size,
                    rng=self.rng, temperature=cfg.temperature, reset_seeds=seeds, sample_seeds=streams,
                    batch_groups=cfg.rollout_batching == "batch",
                )
        return batch, seeds

    def _rollout_workers(self):
        """The Ray actors generating this run's rollouts, started once from the policy of the first
        rollout (after a warm start or resume): its config builds each actor's replica."""
        if self.rollout_workers is None:
            from .ray_rollout import RayRolloutWorkers

            cfg = self.cfg
            make = functools.partial(_make_envs, cfg, split="train", episode=cfg.train_episode)
            replica = functools.partial(type(self.policy), self.policy.config)
            self.rollout_workers = RayRolloutWorkers(make, self.n_train, cfg.rollout_workers, replica,
                                                     group_size=cfg.group_size, groups=cfg.batch_queries,
                                                     address=cfg.ray_address)
        return self.rollout_workers

    def _generation_record(self) -> dict:
        """Generated tokens, generation seconds and tokens/s per role since the last call (LLM
        policies only; with generation on Ray actors, the actors' tokens and their summed
        generation seconds)."""
        pop = getattr(self.policy, "pop_generation_stats", None)
        stats = pop() if pop is not None else {}
        if self.rollout_workers is not None:
            for role, st in self.rollout_workers.pop_generation_stats().items():
                acc = stats.setdefault(role, {"tokens": 0, "seconds": 0.0, "calls": 0})
                for key in acc:
                    acc[key] += st.get(key, 0)
        out = {}
        for role, st in stats.items():
            out[f"gen_tokens_{role}"] = int(st["tokens"])
            out[f"tokens_per_s_{role}"] = st["tokens"] / st["seconds"] if st["seconds"] > 0 else None
            out[f"gen_seconds_{role}"] = float(st["seconds"])
        return out

    def _credit(self, batch: RolloutBatch, seeds: np.ndarray, record: dict):
        """Integrated rewards per role (the credit strategy), logged with local rewards, v and w."""
        cfg = self.cfg
        local = {r: batch.local_matrix(r) for r in ROLE_NAMES}
        glob = batch.global_matrix()
        extra = dict(cfg.credit_kwargs)
        if cfg.credit == "leave-one-out":
            extra["counterfactual_global"] = self._counterfactual_global(batch, seeds)
        credit = assign_credit_batch(cfg.credit, local, glob, **extra)
        record["train_accuracy"] = float(glob.mean())
        for i, r in enumerate(ROLE_NAMES):
            vals = local[r]
            record[f"local_{r}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else None
            if credit.weights is not None:
                record[f"w_{r}"] = float(credit.weights[:, i].mean())
                record[f"w_std_{r}"] = float(credit.weights[:, i].std())  # spread of w_n over the batch's groups
            if credit.consistency is not None:
                record[f"v_{r}"] = float(credit.consistency[:, i].mean())
        return credit

    def _advantages(self, batch: RolloutBatch, credit, record: dict) -> dict[str, RoleBatch]:
        """Group advantages of the integrated rewards (+ the optional format reward); every
        action of a role inherits its trajectory's advantage. Zero-variance groups (no signal)
        are dropped when ``zero_variance`` is 'skip'; their share is logged either way."""
        cfg = self.cfg
        frozen = self._frozen_roles()
        record["trained_roles"] = [r for r in ROLE_NAMES if r not in frozen] if self.updater else []
        role_batches = {}
        for r in record["trained_roles"]:
            rewards = credit.rewards[r]
            if cfg.format_reward > 0:
                fmt = format_matrix(batch, r)
                record[f"format_{r}"] = float(fmt.mean())
                rewards = rewards + cfg.format_reward * fmt
            record[f"reward_{r}"] = float(rewards.mean())
            adv = group_advantages(rewards)  # (B, G)
            record[f"adv_std_{r}"] = float(adv.std())
            flat_groups = zero_variance_groups(rewards)
            record[f"zero_var_frac_{r}"] = float(flat_groups.mean())
            acts = batch.actions_of(r)
            if cfg.zero_variance_mode == "skip":
                acts = [a for a in acts if not flat_groups[batch.trajectories[a.trajectory].group]]
            traj = [batch.trajectories[a.trajectory] for a in acts]
            role_batches[r] = RoleBatch(samples=[a.sample for a in acts],
                                        advantages=np.asarray([adv[t.group, t.member] for t in traj], dtype=np.float64),
                                        old_logprobs=_behaviour_logprobs(acts, cfg.grpo_config().level, self.policy))
        if role_batches:
            record["zero_var_frac"] = float(np.mean([record[f"zero_var_frac_{r}"] for r in role_batches]))
        return role_batches

    def _update(self, role_batches: dict[str, RoleBatch]) -> dict:
        """Per-agent GRPO on every trained role (roles without samples left are skipped)."""
        if self.updater is None:
            return {}
        self.updater.set_frozen_roles(self._frozen_roles())
        if not any(len(b) for b in role_batches.values()):
            return {}
        return {f"grpo_{k}": v for k, v in self.updater.update(role_batches).items()}

    def evaluate(self, split_envs=None, ids=None) -> dict:
        res = _evaluate(self.cfg, split_envs or self.eval_envs, self.policy, ids or self.eval_ids)
        self.policy.train()
        return res

    # -------------------------------------------------------------------- run

    def run(self) -> dict:
        """Train until ``iterations``; returns the last evaluation. Ctrl-C keeps the last checkpoint."""
        cfg = self.cfg
        bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.iterations, initial=self.iteration, desc=f"train {cfg.credit}", unit="it")
        last_eval = None
        try:
            if not self.resumed:  # a run resumed from its iteration-0 checkpoint has logged iteration 0
                warm = self.warm_start()
                last_eval = self.evaluate()
                self.best["start_val_accuracy"] = last_eval["accuracy"]
                self._log({"iteration": 0, **warm, **{f"val_{k}": v for k, v in last_eval.items()}})
                self._checkpoint()
            while self.iteration < cfg.iterations and cfg.mode != "none":
                record = self.step()
                if self.iteration % cfg.eval_every == 0 or self.iteration == cfg.iterations:
                    last_eval = self.evaluate()
                    record.update({f"val_{k}": v for k, v in last_eval.items()})
                    self._track_target(record)
                self._log(record)
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                    self._checkpoint()
                if bar is not None:
                    bar.update(1)
                    # the latest validation accuracy (it is only measured every eval_every iterations)
                    val = last_eval["accuracy"] if last_eval is not None else float("nan")
                    bar.set_postfix(acc=f"{record['train_accuracy']:.2f}", val=f"{val:.2f}")
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            print(f"\ninterrupted at iteration {self.iteration}; last checkpoint kept in {self.run_dir / 'checkpoint'}")
            raise
        finally:
            if bar is not None:
                bar.close()
            if hasattr(self.train_envs, "close"):  # Ray actors give their CPUs back
                self.train_envs.close()
            if self.rollout_workers is not None:
                self.rollout_workers.close()
        if last_eval is None:
            last_eval = self.evaluate()
        try:
            from .plots import plot_run

            plot_run(self.run_dir)
        except Exception as exc:  # a plot must never lose a finished run
            print(f"note: could not plot {self.run_dir}: {exc}")
        summary = {"iteration": self.iteration, **{f"val_{k}": v for k, v in last_eval.items()},
                   **self._best_summary()}
        atomic_json(self.run_dir / "summary.json", summary)
        return summary

    def _best_summary(self) -> dict:
        """``best_iteration`` / ``best_val_accuracy`` only when validation accuracy rose above its
        value at iteration 0 — a run that learned nothing has no best iteration to name
        (``improved: false``)."""
        out = dict(self.best)
        start = out.get("start_val_accuracy")
        best = out.get("best_val_accuracy")
        improved = start is not None and best is not None and best > start
        if start is not None:  # runs resumed from before start_val_accuracy existed keep the old keys
            out["improved"] = bool(improved)
            if not improved:
                out.pop("best_val_accuracy", None)
                out.pop("best_iteration", None)
        return out

    def _track_target(self, record: dict) -> None:
        target = self.cfg.target_accuracy
        acc = record.get("val_accuracy")
        if target is not None and acc is not None and acc >= target and "steps_to_target" not in self.best:
            self.best["steps_to_target"] = self.iteration
        if acc is not None and acc > self.best.get("best_val_accuracy", -1):
            self.best["best_val_accuracy"] = acc
            self.best["best_iteration"] = self.iteration


def train(config: TrainConfig, run_dir: str | os.PathLike) -> dict:
    """Train (or resume) ``config`` into ``run_dir`` and return the final summary."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # e.g. under nohup: make Ctrl-C stop cleanly anyway
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return Trainer(config, run_dir).run()


def evaluate_policy(config: TrainConfig, policy: Policy | None = None, *, episode: str | None = None,
                    split: str | None = None, limit: int | None = None, per_question: bool = False,
                    envs=None) -> dict:
    """Evaluate ``policy`` (default: the untrained policy of ``config``) like the trainer does,
    but on any episode kind and split — e.g. a run trained and validated on evidence-session
    episodes, evaluated once through full-history episodes.

    ``episode``, ``split`` and ``limit`` default to the config's ``eval_episode``, ``eval_split``
    and ``eval_limit``. Returns :func:`agents.rollout.evaluate`'s dict without the answers (and
    without ``per_question`` unless asked), plus ``episode`` and ``split``. ``envs``: evaluation
    environments of that episode kind and split to reuse (default: built here).
    """
    episode = episode or config.eval_episode
    split = split or config.eval_split
    limit = limit if limit is not None else config.eval_limit
    if envs is None:
        envs = _make_eval_envs(config, split, episode)
    if policy is None:
        policy = _build_policy(config, envs[0])
    ids = _split_ids(envs[0])
    ids = ids[:limit] if limit else ids
    return {**_evaluate(config, envs, policy, ids, per_question), "episode": episode, "split": split}
