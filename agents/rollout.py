"""Group rollouts through the memory-pipeline environment.

For a batch of B queries the CoMAM learner samples G full trajectories per query
(docs/design.md §4). :func:`collect_rollouts` runs all B·G episodes *in lockstep* over a pool
of environments: at every tick the environments waiting for the same role are
batched into one ``policy.act`` call. That is what keeps LLM rollouts efficient
(one batched ``generate`` per role and tick) and costs nothing for the small
selection policies. When every policy sets ``batch_roles_in_order``
(:class:`agents.llm.LLMPolicy`), a tick runs only the earliest role of the pipeline
that any episode of a batch (a group, with per-episode streams) waits for: episodes
with fewer extractor chunks wait at the profiler until the others catch up, so the
profiler and the retriever each run once per batch instead of once per chunk count (a
generate call's decode loop costs about the same for 4 rows as for 16). It works with any
policy implementing :mod:`agents.base` and any view of the environment (text or selection) —
the policy only sees the observations the view produces.

Every episode is reset with an explicit seed drawn from the caller's
``numpy.random.Generator`` and the question id, and every action is sampled with
the caller's ``torch.Generator``, so the same seeds give the same rollouts.

Per-episode streams (``sample_seeds``, what the trainer uses for LLM policies): every episode
samples from its own ``torch.Generator`` (seeded by :func:`episode_seeds` from the run seed, the
iteration, the query and the group member), each ``policy.act`` call covers the members of *one*
group waiting for the same role at the same tick, waves hold whole groups, and the actions come
back ordered by trajectory. Then an episode's actions depend only on the parameters, its group
and its seeds — not on the pool size, the other groups of the batch, or the process (or Ray actor,
:mod:`agents.ray_rollout`) that plays it.

The result is plain data: per trajectory the question id, group and member index,
each role's local reward (``NaN`` when undefined, e.g. no gold evidence), the
global reward, and the per-action records (role, policy sample, log-prob) that the
GRPO update needs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from comam_env.roles import role_of

from .base import ROLE_NAMES, Policy, role_id


@dataclass
class Action:
    """One action taken by one role inside one trajectory."""

    trajectory: int
    """Index of the trajectory in :attr:`RolloutBatch.trajectories`."""
    role: str
    sample: Any
    """The policy's opaque record (see :mod:`agents.base`)."""
    logprob: float
    info: dict = field(default_factory=dict)
    action: Any = None
    """The env action that was stepped (lets a counterfactual re-run replay it)."""


@dataclass
class Trajectory:
    """One full episode (extractor chunk steps → profiler → retriever)."""

    question_id: str
    group: int
    member: int
    local: dict[str, float]
    """role name → local reward (``NaN`` when undefined)."""
    global_reward: float
    parsed_answer: str | None = None
    record: dict = field(default_factory=dict)
    """``env.trajectory()`` as plain data (prompts, actions, reward parts)."""


@dataclass
class RolloutBatch:
    """B groups of G trajectories plus every action taken."""

    question_ids: list[str]
    group_size: int
    trajectories: list[Trajectory]
    actions: list[Action]

    def local_matrix(self, role: str) -> np.ndarray:
        """``(B, G)`` local rewards of ``role`` (NaN = undefined)."""
        out = np.full((len(self.question_ids), self.group_size), np.nan)
        for t in self.trajectories:
            out[t.group, t.member] = t.local.get(role, np.nan)
        return out

    def global_matrix(self) -> np.ndarray:
        """``(B, G)`` global (answer) rewards."""
        out = np.zeros((len(self.question_ids), self.group_size))
        for t in self.trajectories:
            out[t.group, t.member] = t.global_reward
        return out

    def actions_of(self, role: str) -> list[Action]:
        return [a for a in self.actions if a.role == role]


def _local_rewards(record: Mapping[str, Any]) -> dict[str, float]:
    """Each role's episode-level local reward, ``env.trajectory()["local"]``, with ``NaN`` for undefined."""
    return {r: (np.nan if v is None else float(v)) for r, v in record["local"].items()}


def _unwrapped(env):
    return getattr(env, "unwrapped", env)


def collect_rollouts(
    envs: Sequence[Any],
    policies: Mapping[str, Policy],
    question_ids: Sequence[str],
    group_size: int,
    *,
    rng: np.random.Generator,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    greedy: bool = False,
    overrides: Mapping[int, Mapping[str, Policy]] | None = None,
    reset_seeds: np.ndarray | None = None,
    sample_seeds: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
    batch_groups: bool = False,
) -> RolloutBatch:
    """Run ``len(question_ids) × group_size`` episodes in lockstep.

    Args:
        envs: a pool of AEC environments (any view): a sequence of envs, or an
            :class:`EnvPool` (e.g. :class:`agents.ray_rollout.RayEnvPool`, envs on Ray actors);
            episodes are spread over the pool in waves when there are more episodes than envs.
        policies: role name → policy acting for that role (one object may serve
            several roles).
        question_ids: the B queries; trajectory ``(b, g)`` answers ``question_ids[b]``. An
            entry may also be a tuple of question ids on one visible history (same history
            and ``end_index``): that episode builds the memory once and the retriever answers
            each of them in turn (``reset(options={"question_ids": ...})``); its
            :attr:`Trajectory.question_id` is the first.
        group_size: G trajectories per query.
        rng: draws each episode's reset seed (unless ``reset_seeds`` is given).
        generator: torch generator for sampling actions.
        temperature, greedy: passed to ``policy.act``.
        overrides: trajectory index → {role: policy} replacing ``policies`` for that
            trajectory (leave-one-out counterfactuals use a frozen reference).
        reset_seeds: explicit ``(B·G,)`` reset seeds (counterfactual re-runs reuse the
            seeds of the runs they mirror).
        sample_seeds: ``(B·G,)`` seeds of per-episode sampling streams (module docstring;
            :func:`episode_seeds`) instead of the shared ``generator``: ``policy.act`` then gets
            one ``torch.Generator`` per observation, and the pool must hold a whole group.
        progress: called with the number of episodes finished at each completion.
        batch_groups: with ``sample_seeds``, one ``act`` call over every group waiting for a role
            instead of one per group: B·G rows per LLM decode loop instead of G. Each episode still
            draws only from its own stream, but its floats now depend on its batch-mates (padding
            width, batched matmuls), so results equal those of the same pool at rounding level only
            (not bit-identical across pool sizes or Ray workers).
    """
    pool = envs if isinstance(envs, EnvPool) else LocalEnvPool(envs)
    if not len(pool):
        raise ValueError("collect_rollouts needs at least one environment")
    n = len(question_ids) * group_size
    seeds = rng.integers(0, 2**31 - 1, size=n) if reset_seeds is None else np.asarray(reset_seeds)
    if len(seeds) != n:
        raise ValueError(f"reset_seeds has {len(seeds)} entries, expected {n}")
    streams: list[torch.Generator] | None = None
    wave_size = len(pool)
    if sample_seeds is not None:
        if generator is not None:
            raise ValueError("collect_rollouts: pass either generator (one shared stream) or sample_seeds, not both")
        if len(sample_seeds) != n:
            raise ValueError(f"sample_seeds has {len(sample_seeds)} entries, expected {n}")
        if len(pool) < group_size:
            raise ValueError(f"per-episode sampling plays whole groups per wave: the pool has {len(pool)} envs, "
                             f"fewer than group_size={group_size}")
        streams = [torch.Generator().manual_seed(int(s)) for s in sample_seeds]
        wave_size = len(pool) // group_size * group_size
    trajectories: list[Trajectory | None] = [None] * n
    actions: list[Action] = []
    overrides = overrides or {}
    in_order = all(getattr(p, "batch_roles_in_order", False) for p in policies.values())

    for wave_start in range(0, n, wave_size):
        wave = list(range(wave_start, min(n, wave_start + wave_size)))
        slot = {t: k for k, t in enumerate(wave)}  # trajectory index -> env slot of the pool
        status = pool.reset({slot[t]: (int(seeds[t]), _reset_options(question_ids[t // group_size])) for t in wave})
        active = set(wave)
        while active:
            waiting: dict[tuple[int, str], list[int]] = {}
            for t in sorted(active):
                st = status[slot[t]]
                if st.record is not None:
                    active.discard(t)
                    trajectories[t] = _finish(st.record, question_ids, t, group_size)
                    if progress:
                        progress(1)
                    continue
                role = role_of(st.agent)
                policy = overrides.get(t, {}).get(role, policies[role])
                # per-episode streams: one act call per group, so a call's inputs are one group's
                group = t // group_size if streams is not None and not batch_groups else -1
                waiting.setdefault((id(policy), role, group), []).append(t)
            stepped: dict[int, Any] = {}
            if waiting and in_order:  # per group (or batch): only the earliest pipeline role waiting acts
                first: dict[int, int] = {}
                for k in waiting:
                    first[k[2]] = min(first.get(k[2], len(ROLE_NAMES)), ROLE_NAMES.index(k[1]))
                waiting = {k: ts for k, ts in waiting.items() if ROLE_NAMES.index(k[1]) == first[k[2]]}
            for (_, role, _), ts in waiting.items():
                policy = overrides.get(ts[0], {}).get(role, policies[role])
                obs = [status[slot[t]].observation for t in ts]
                gen = generator if streams is None else [streams[t] for t in ts]
                out = policy.act(role_id(role), obs, temperature=temperature, greedy=greedy, generator=gen)
                for i, t in enumerate(ts):
                    actions.append(Action(t, role, out.samples[i], float(out.logprobs[i]), dict(out.info[i]), out.actions[i]))
                    stepped[slot[t]] = out.actions[i]
            if stepped:
                status.update(pool.step(stepped))
    if streams is not None:  # the order of a run that played one episode at a time (stable: tick order)
        actions.sort(key=lambda a: a.trajectory)
    return RolloutBatch(list(question_ids), group_size, trajectories, actions)  # type: ignore[arg-type]


def episode_seeds(seed: int, iteration: int, question_ids: Sequence[Any], group_size: int,
                  stream: int = 0) -> list[int]:
    """Seeds of the per-episode sampling streams of one batch: trajectory ``(b, g)`` gets a seed
    that is a function of ``(seed, iteration, stream, b, g, question_ids[b])`` alone
    (``numpy.random.SeedSequence``; the query enters as the CRC-32 of its id, or of its ids joined).
    ``stream`` separates re-runs of the same batch (the trainer's leave-one-out counterfactuals)."""
    out = []
    for b, query in enumerate(question_ids):
        key = "\x1f".join(query) if isinstance(query, (tuple, list)) else str(query)
        crc = zlib.crc32(key.encode("utf-8"))
        for g in range(group_size):
            words = [int(x) % 2**64 for x in (seed, iteration, stream, b, g, crc)]
            out.append(int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0]) >> 1)
    return out


@dataclass
class SlotStatus:
    """What one env of a pool is waiting for: the agent to act and its observation, or — once the
    episode is over — its ``trajectory()`` record."""

    agent: str | None = None
    observation: Any = None
    record: dict | None = None


def advance(env) -> SlotStatus:
    """Step finished agents past (``step(None)``, AEC protocol) and report what ``env`` waits for.
    Agents only finish at the end of an episode, so this never changes who acts next."""
    while env.agents:
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
            continue
        return SlotStatus(agent=agent, observation=env.observe(agent))
    return SlotStatus(record=_unwrapped(env).trajectory())


class EnvPool:
    """A pool of envs that :func:`collect_rollouts` steps in lockstep, addressed by slot index.

    ``reset({slot: (seed, options)})`` and ``step({slot: action})`` return the new
    :class:`SlotStatus` of those slots. :class:`LocalEnvPool` steps them in this process;
    :class:`agents.ray_rollout.RayEnvPool` on Ray actors. The rollouts do not depend on where the
    envs run: the policies act in the caller's process, on the same batches, in the same order.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def reset(self, assignments: Mapping[int, tuple[int, dict]]) -> dict[int, SlotStatus]:
        raise NotImplementedError

    def step(self, actions: Mapping[int, Any]) -> dict[int, SlotStatus]:
        raise NotImplementedError


class LocalEnvPool(EnvPool):
    """Envs stepped in this process (what a plain list of envs means to :func:`collect_rollouts`)."""

    def __init__(self, envs: Sequence[Any]) -> None:
        self.envs = list(envs)

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, assignments: Mapping[int, tuple[int, dict]]) -> dict[int, SlotStatus]:
        out = {}
        for k, (seed, options) in assignments.items():
            self.envs[k].reset(seed=int(seed), options=options)
            out[k] = advance(self.envs[k])
        return out

    def step(self, actions: Mapping[int, Any]) -> dict[int, SlotStatus]:
        out = {}
        for k, action in actions.items():
            self.envs[k].step(action)
            out[k] = advance(self.envs[k])
        return out


def _reset_options(query) -> dict:
    """Reset options for one query: a question id, or a tuple of ids answered in one episode."""
    if isinstance(query, (tuple, list)):
        return {"question_ids": list(query)}
    return {"question_id": query}


def _finish(record: dict, question_ids, t: int, group_size: int) -> Trajectory:
    query = question_ids[t // group_size]
    return Trajectory(
        question_id=query[0] if isinstance(query, (tuple, list)) else query,
        group=t // group_size,
        member=t % group_size,
        local=_local_rewards(record),
        global_reward=float(record.get("global_reward") or 0.0),
        parsed_answer=record.get("parsed_answer"),
        record=record,
    )


def evaluate(
    envs: Sequence[Any],
    policies: Mapping[str, Policy],
    question_ids: Sequence[str],
    *,
    seed: int = 0,
    temperature: float = 0.8,
    greedy: bool = True,
) -> dict[str, Any]:
    """Accuracy and mean local rewards of ``policies`` on ``question_ids``.

    Greedy by default, so an evaluation is a deterministic function of the
    parameters; pass ``greedy=False`` for the paper's sampled evaluation at
    temperature 0.8 (one episode per question).

    Greedy evaluation makes two savings that leave every number unchanged
    (``docs/performance.md``): questions on the same visible history (history id and
    ``end_index``, and outside full-history episodes the same sessions, :func:`history_groups`)
    share one episode — the memory is built once and the retriever
    answers each in turn; the per-question rewards are read from the episode's
    per-question parts, which are what a one-question episode computes — and the
    extractor's action on a chunk is memoised by its observation
    (:class:`agents.memo.GreedyMemo`: full-history episodes of one history replay the
    same sessions).

    Returns ``accuracy``, ``n_questions``, ``local_<role>`` (means over the questions
    where defined), ``answers`` (question id → parsed answer) and ``per_question``
    (question id → ``{"reward": answer reward, "local": {role: local reward or None}}``).
    """
    if not question_ids:
        raise ValueError("evaluate: no questions to evaluate on")
    for policy in {id(p): p for p in policies.values()}.values():  # each distinct policy once
        policy.eval()
    acting: dict[str, Any] = dict(policies)
    queries: list[Any] = list(question_ids)
    if greedy:
        from .memo import GreedyMemo

        acting["extractor"] = GreedyMemo(policies["extractor"])
        base = _unwrapped(envs[0])
        queries = history_groups(base.dataset, question_ids, getattr(base, "config", None))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        batch = collect_rollouts(
            envs, acting, queries, 1, rng=np.random.default_rng(seed), generator=gen,
            temperature=temperature, greedy=greedy,
        )
    per_question: dict[str, dict] = {}
    answers: dict[str, Any] = {}
    for t in batch.trajectories:
        for qid, res in question_results(t.record).items():
            per_question[qid] = {"reward": res["reward"], "local": res["local"]}
            answers[qid] = res["parsed"]
    per_question = {q: per_question[q] for q in question_ids}
    result: dict[str, Any] = {
        "accuracy": float(np.mean([per_question[q]["reward"] for q in question_ids])),
        "n_questions": len(question_ids),
    }
    for role in ROLE_NAMES:
        vals = [r["local"][role] for r in per_question.values() if r["local"][role] is not None]
        result[f"local_{role}"] = float(np.mean(vals)) if vals else None
    result["answers"] = {q: answers[q] for q in question_ids}
    result["per_question"] = per_question
    return result


def history_groups(dataset: Any, question_ids: Sequence[str], config: Any = None) -> list[tuple[str, ...]]:
    """``question_ids`` grouped by visible history (history id, ``end_index``), each group in
    the given order; groups with the longest history first, so that lockstep waves hold
    episodes of similar length.

    ``config`` is the env's :class:`comam_env.config.EnvConfig` (``None``: full-history
    episodes). For any other episode kind, questions also share an episode only when their
    one-question episodes show the same history H: an episode of several questions shows the
    union of their evidence sessions (:func:`comam_env.episode.history_ranges`), so grouping
    by (history id, ``end_index``) alone answered a question from a larger H than its own
    episode's — 6.3 sessions instead of 1.5 on the synthetic-32k validation split.
    """
    episode = getattr(config, "episode", "full-history")
    groups: dict[tuple, list[str]] = {}
    for qid in dict.fromkeys(question_ids):  # a repeated id is one question
        q = dataset.question(qid)
        key: tuple = (q.history_id, q.end_index)
        if episode != "full-history":
            from comam_env.episode import evidence_index, history_ranges

            history = dataset.history_for(q)
            context = evidence_index(dataset).get(history.history_id, ()) if episode == "evidence+context" else ()
            ranges, _ = history_ranges(history, [q], episode, context=context,
                                       context_sessions=config.context_sessions)
            key += tuple((r.start, r.stop) for r in ranges)
        groups.setdefault(key, []).append(qid)
    order = sorted(groups, key=lambda k: -k[1])  # stable: ties keep first-appearance order
    return [tuple(groups[k]) for k in order]


def question_results(record: Mapping[str, Any]) -> dict[str, dict]:
    """Per question of one episode (``env.trajectory()``): ``reward`` (answer reward),
    ``parsed`` (parsed answer) and ``local`` (role → local reward for that question, ``None``
    when undefined).

    The extractor's reward of a several-question episode is a mean over the questions; each
    question's own value is in its last step's ``parts["queries"]`` (the coverage of the same
    M_f against that question's evidence — what a one-question episode gives). The profiler's
    reward is the same for every question; the retriever's is per answering step.
    """
    qids = list(record.get("question_ids") or [record.get("question_id")])
    steps = record.get("steps") or []
    ext = next((s for s in reversed(steps) if role_of(s["agent"]) == "extractor"), None)
    prof = next((s for s in reversed(steps) if role_of(s["agent"]) == "profiler"), None)
    retr = {(s.get("local_parts") or {}).get("question_id"): s for s in steps if role_of(s["agent"]) == "retriever"}
    answers = {a["question_id"]: a for a in record.get("answers") or []}
    out = {}
    for i, qid in enumerate(qids):
        ext_r = None
        if ext is not None:
            if len(qids) == 1 or ext.get("local_reward") is None:
                ext_r = ext.get("local_reward")
            elif "forced_zero" in (ext.get("local_parts") or {}):
                ext_r = 0.0
            else:
                per = ((ext.get("local_parts") or {}).get("queries") or [None] * len(qids))[i]
                ext_r = None if per is None else float(per["reward"])
        local = {
            "extractor": ext_r,
            "profiler": None if prof is None else prof.get("local_reward"),
            "retriever": None if qid not in retr else retr[qid].get("local_reward"),
        }
        ans = answers.get(qid) or {}
        out[qid] = {"reward": float(ans.get("reward") or 0.0), "parsed": ans.get("parsed"),
                    "local": {r: (None if v is None else float(v)) for r, v in local.items()}}
    return out
