"""Throughput of the memory-system environment (one CPU core).

Prints:

1. episodes/s and steps/s of the oracle policy on synthetic-32k and synthetic-128k,
   for both episode modes (``evidence-session``, ``full-history``);
2. the environment's overhead against a bare loop, on the same episodes (actions
   recorded from the oracle and replayed, so no policy time):

   * **bare** = the minimal loop that builds exactly the prompts the env builds
     for those episodes: the chunk text (``History.render`` + ``normalize_text``),
     the normalised actions joined into M_f / M_c, the memory block, the
     normalised query and options, and ``prompts.build_prompt`` for every step.
     The benchmark checks that its prompts equal the env's recorded prompts.
     Cold: every chunk rendered and normalised again in every episode. Warm: the
     rendered chunk texts memoised per (history, span), as the env's caches are.
   * **env** = the same episodes through ``env()`` with PettingZoo's
     ``agent_iter``/``last``/``step`` loop (``record_trajectory=False``): text
     normalisation, chunk planning, every reward, observation dicts, infos.
     Cold: every cache (history lines, token counts, content-token sets,
     evidence indices) dropped before each episode; warm: the caches as a learner
     sees them when it samples a group of rollouts per question (the same
     episodes replayed, so the reward row memo hits).
   * the breakdown of an env episode: rewards (timed inside the env), the
     PettingZoo protocol floor (a do-nothing AEC env behind the same
     ``OrderEnforcingWrapper``, same loop and step count), prompts (≈ bare) and
     the rest (env bookkeeping: reset, chunk planning, infos, action checks).
     Target of the issue: env / bare < 1.10 — out of reach by construction for
     short episodes, since the PettingZoo floor alone costs more than building
     the prompts (see docs/performance.md);
   * steps without observing (the selection view's pattern: it reads episode
     state, never the text prompts), ``record_trajectory=False``;
3. µs per reward call (extractor and retriever coverage, answer parsing, the gold
   profile judge) on oracle-sized and copy-everything-sized inputs, warm (the
   same call repeated: memoised content tokens, evidence index and rows) and cold
   (``rewards.clear_caches()`` before every call);
4. synthetic-1m: dataset load time, reset time (first reset of a history counts its
   tokens; later resets reuse the counts), and peak memory (tracemalloc peak of the
   reset itself, and process max RSS).

Run: ``python benchmarks/env_throughput.py [--quick]`` (``--quick``: fewer episodes).
Threads are pinned to one (OMP/MKL/OpenBLAS) before numpy is imported; the env
and its default rewards never import torch. Durations are CPU time of the process
(``time.process_time``), which a loaded shared machine disturbs far less than wall
time; every figure is the best of a few repetitions.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from gymnasium import spaces as gym_spaces  # noqa: E402
from pettingzoo import AECEnv  # noqa: E402
from pettingzoo.utils.wrappers import OrderEnforcingWrapper  # noqa: E402

from comam_env import prompts, rewards  # noqa: E402
from comam_env.charset import normalize_text  # noqa: E402
from comam_env.data.synthetic import load_synthetic  # noqa: E402
from comam_env.chunks import clear_caches  # noqa: E402
from comam_env.env import env as make_env  # noqa: E402
from comam_env.judges import get_judge  # noqa: E402
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode  # noqa: E402
from comam_env.prompts import retriever_action  # noqa: E402


#: Every duration is CPU time of this (single-threaded) process: on a shared, loaded
#: machine wall time mostly measures the other processes; CPU time is what one core
#: spends on the work.
clock = time.process_time


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pick_questions(ds, n, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds.questions), size=min(n, len(ds.questions)), replace=False)
    return [ds.questions[int(i)].question_id for i in idx]


def oracle_rate(ds, episode, qids):
    e = make_env(ds, episode=episode, record_trajectory=False)
    oracle = OraclePolicy(ds)
    steps = 0
    t0 = clock()
    for qid in qids:
        e.reset(options={"question_id": qid})
        for agent in e.agent_iter():
            obs, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else oracle(agent, obs, e))
            steps += 0 if term or trunc else 1
    dt = clock() - t0
    return len(qids) / dt, steps / dt


def recorded_actions(ds, episode, qids):
    """(question id, chunk spans, actions, the env's prompts) of oracle episodes."""
    e = make_env(ds, episode=episode)
    out = []
    for qid in qids:
        t = run_episode(e, OraclePolicy(ds), options={"question_id": qid})
        out.append((qid, [tuple(c) for c in t["chunks"]], [s["action"] for s in t["steps"]],
                    [s["prompt"] for s in t["steps"]]))
    return out


def instrument_rewards(raw):
    """Time the env's reward computations (coverage, judge, answer parsing) on this instance."""
    acc = [0.0]
    for name in ("_extractor_reward", "_profiler_reward", "_retriever_step"):
        f = getattr(raw, name)

        def timed(*a, _f=f, **k):
            t = clock()
            try:
                return _f(*a, **k)
            finally:
                acc[0] += clock() - t

        setattr(raw, name, timed)
    return acc


def replay_env(ds, episode, plays, cold, reward_clock=None):
    e = make_env(ds, episode=episode, record_trajectory=False)
    raw = e.unwrapped
    if reward_clock is not None:
        reward_clock.append(instrument_rewards(raw))
    t0 = clock()
    for qid, _, actions, _ in plays:
        if cold:  # every cache dropped: history lines rendered/normalised, tokens counted, content sets built again
            clear_caches()
            rewards.clear_caches()
            raw._qtexts.clear()
        e.reset(options={"question_id": qid})
        it = iter(actions)
        for agent in e.agent_iter():
            obs, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else next(it))
    return clock() - t0


def replay_unobserved(ds, episode, plays):
    """Steps without observing (the selection view's pattern), record_trajectory=False."""
    e = make_env(ds, episode=episode, record_trajectory=False)
    t0 = clock()
    for qid, _, actions, _ in plays:
        e.reset(options={"question_id": qid})
        for a in actions:
            e.step(a)
    return clock() - t0


def bare_prompts(ds, plays, memo=None, collect=None):
    """Build exactly the env's prompts for the recorded episodes (module docstring, 2.)."""
    norm = normalize_text
    t0 = clock()
    for qid, spans, actions, _ in plays:
        q = ds.question(qid)
        h = ds.history_for(q)
        out = []
        for (a, b) in spans:
            chunk = memo.get((h.history_id, a, b)) if memo is not None else None
            if chunk is None:
                chunk = norm(prompts.render_chunk(h, range(a, b)))[0]
                if memo is not None:
                    memo[(h.history_id, a, b)] = chunk
            out.append(prompts.build_prompt("extractor", chunk=chunk))
        k = len(spans)
        fine = "\n".join(x for x in (norm(x)[0].strip() for x in actions[:k]) if x)
        out.append(prompts.build_prompt("profiler", memory=prompts.render_memory(fine)))
        coarse = norm(actions[k])[0].strip()
        out.append(prompts.build_prompt("retriever", memory=prompts.render_memory(fine, coarse),
                                        query=norm(q.query)[0], options=norm(prompts.render_options(q))[0]))
        if collect is not None:
            collect.append(out)
    return clock() - t0


class _NullEnv(AECEnv):
    """A do-nothing AEC env: the PettingZoo protocol floor (agent_iter/last/step + wrapper)."""

    metadata = {"name": "null_v0", "render_modes": []}

    def __init__(self):
        super().__init__()
        self.possible_agents = ["extractor_0", "profiler_0", "retriever_0"]
        self._n = 0

    def observation_space(self, agent):
        return gym_spaces.Discrete(1)

    def action_space(self, agent):
        return gym_spaces.Discrete(1)

    def reset(self, seed=None, options=None):
        self._n = int(options["steps"])
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self.agent_selection = self.agents[0]
        self._k = 0

    def observe(self, agent):
        return 0

    def step(self, action):
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        self.infos[agent] = {}
        self._k += 1
        if self._k >= self._n:
            for a in self.agents:
                self.terminations[a] = True
        else:
            self.agent_selection = self.possible_agents[min(self._k, 2)]
        self._accumulate_rewards()


def null_floor(plays):
    e = OrderEnforcingWrapper(_NullEnv())
    t0 = clock()
    for _, _, actions, _ in plays:
        e.reset(options={"steps": len(actions)})
        for agent in e.agent_iter():
            obs, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else 0)
    return clock() - t0


def time_call(fn, n):
    fn()
    t0 = clock()
    for _ in range(n):
        fn()
    return (clock() - t0) / n * 1e6


def reward_micro(ds):
    q = next(q for q in ds.questions if q.evidence and len(q.evidence) >= 2)
    h = ds.history_for(q)
    ev = ds.evidence_texts(q)
    oracle_mem = h.render(q.evidence)
    session = h.session_ranges(q.end_index)[h.session_of(q.evidence[-1])]
    copy_mem = h.render(session)
    resp = retriever_action(oracle_mem, f"({q.answer})")
    judge = get_judge("gold")
    gold = ds.profile_for(q)
    profile = "\n".join(gold)
    n_units = len(copy_mem.splitlines())
    print(f"\nreward calls (µs/call; evidence |E|={len(ev)}, copy-everything memory = {n_units} units, "
          f"gold profile {len(gold)} statements):")
    print(f"  {'':42s} {'warm':>9s} {'cold':>9s}")
    rows = [
        ("extractor_reward, oracle memory", lambda: rewards.extractor_reward(oracle_mem, ev)),
        ("extractor_reward, copy-everything memory", lambda: rewards.extractor_reward(copy_mem, ev)),
        ("retriever_reward, oracle retrieval", lambda: rewards.retriever_reward(oracle_mem, ev)),
        ("answer_reward", lambda: rewards.answer_reward(resp, q)),
        ("gold profile judge, gold profile", lambda: judge.score(profile, history=None, gold_profile=gold)),
    ]
    for name, fn in rows:
        def cold(fn=fn):
            rewards.clear_caches()
            fn()
        print(f"  {name:42s} {time_call(fn, 2000):9.1f} {time_call(cold, 300):9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer episodes")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0

    for size, n_ev, n_full in (("32k", 400, 60), ("128k", 200, 16)):
        t0 = clock()
        ds = load_synthetic(size, seed=0)
        print(f"\nsynthetic-{size}: {len(ds.questions)} questions, {len(ds.histories)} histories "
              f"(load {clock() - t0:.2f} s)")
        for episode, n in (("evidence-session", n_ev), ("full-history", n_full)):
            qids = pick_questions(ds, max(4, int(n * scale)))
            eps, sps = oracle_rate(ds, episode, qids)
            plays = recorded_actions(ds, episode, qids)
            built: list = []
            bare_prompts(ds, plays, collect=built)
            assert built == [p[3] for p in plays], "bare loop prompts differ from the env's"
            bare_cold = min(bare_prompts(ds, plays) for _ in range(3))
            memo: dict = {}
            bare_warm = min(bare_prompts(ds, plays, memo) for _ in range(4))
            cold = min(replay_env(ds, episode, plays, cold=True) for _ in range(3))
            clocks: list = []
            warm = min(replay_env(ds, episode, plays, cold=False, reward_clock=clocks) for _ in range(4))
            rew = min(c[0] for c in clocks[1:])  # the first replay warms the caches
            floor = min(null_floor(plays) for _ in range(3))
            unobs = min(replay_unobserved(ds, episode, plays) for _ in range(3))
            steps = sum(len(p[2]) for p in plays)
            per = 1e3 / len(plays)
            rest = warm - rew - floor - bare_warm
            print(f"  {episode:16s} oracle {eps:8.1f} episodes/s {sps:9.0f} steps/s ({steps / len(plays):.1f} live steps/episode)")
            print(f"  {'':16s} ms/episode: bare prompts cold {bare_cold * per:.3f}, warm {bare_warm * per:.3f} | "
                  f"env cold {cold * per:.3f}, warm {warm * per:.3f}")
            print(f"  {'':16s} env/bare: cold {cold / bare_cold:.2f}x, warm {warm / bare_warm:.2f}x; "
                  f"excluding rewards: warm {(warm - rew) / bare_warm:.2f}x; excluding rewards and the "
                  f"PettingZoo floor: warm {(warm - rew - floor) / bare_warm:.2f}x")
            print(f"  {'':16s} warm env episode = rewards {rew * per:.3f} ({rew / warm:.0%}) + PettingZoo floor "
                  f"{floor * per:.3f} ({floor / warm:.0%}) + prompts ~{bare_warm * per:.3f} ({bare_warm / warm:.0%}) + "
                  f"bookkeeping {rest * per:.3f} ({rest / warm:.0%})")
            print(f"  {'':16s} steps without observing (selection-view pattern): {unobs * per:.3f} ms/episode")
        if size == "32k":
            reward_micro(ds)

    print("\nsynthetic-1m:")
    rss0 = rss_mb()
    t0 = clock()
    ds = load_synthetic("1m", seed=0)
    print(f"  load {clock() - t0:.2f} s, {len(ds.histories)} histories, "
          f"max RSS {rss_mb():.0f} MB (before load {rss0:.0f} MB)")
    e = make_env(ds, episode="full-history")
    by_hist = {}
    for q in ds.questions:
        by_hist.setdefault(q.history_id, q.question_id)
    clear_caches()
    first = []
    for qid in by_hist.values():
        t0 = clock()
        e.reset(options={"question_id": qid})
        first.append(clock() - t0)
    warm = []
    for qid in list(by_hist.values()) * 3:
        t0 = clock()
        e.reset(options={"question_id": qid})
        warm.append(clock() - t0)
    clear_caches()
    tracemalloc.start()
    e.reset(options={"question_id": qid})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_chunks = len(e.unwrapped.chunk_spans)
    t0 = clock()
    t = run_episode(e, OraclePolicy(ds), options={"question_id": qid})
    ep = clock() - t0
    print(f"  reset: first per history {np.mean(first) * 1e3:.0f} ms (max {max(first) * 1e3:.0f}; counts tokens), "
          f"later {np.median(warm) * 1e3:.1f} ms median; tracemalloc peak of a cold reset "
          f"{peak / 2**20:.1f} MB; max RSS {rss_mb():.0f} MB")
    print(f"  one full-history oracle episode: {len(t['steps'])} steps ({n_chunks} chunks), {ep:.2f} s, "
          f"global reward {t['global_reward']}")
    e2 = make_env(ds, episode="full-history")
    t0 = clock()
    run_episode(e2, CopyAllPolicy(), options={"question_id": qid})
    print(f"  one full-history copy-everything episode (memory grows to the whole history): "
          f"{clock() - t0:.2f} s")


if __name__ == "__main__":
    main()
