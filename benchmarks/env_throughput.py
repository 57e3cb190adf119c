"""Throughput of the memory-system environment (one CPU core).

Prints:

1. episodes/s and steps/s of the oracle policy on synthetic-32k and synthetic-128k,
   for both episode modes (``evidence-session``, ``full-history``);
2. the environment's overhead: the same episodes replayed through the env (actions
   fixed in advance, so no policy time) against a bare loop that only builds the
   same prompts from the same chunks and actions (``comam_env.prompts``). The env
   additionally normalises text into the charset, plans chunks, computes every
   reward, builds observation dicts and records the trajectory. Reported cold (the
   env's chunk cache cleared before every episode — the conservative number) and
   warm (the cache as a learner sees it when it samples a group of rollouts per
   question). Target: env / bare < 1.10;
3. µs per reward call (extractor and retriever coverage, answer parsing, the gold
   profile judge) on oracle-sized and copy-everything-sized inputs;
4. synthetic-1m: dataset load time, reset time (first reset of a history counts its
   tokens; later resets reuse the counts), and peak memory (tracemalloc peak of the
   reset itself, and process max RSS).

Run: ``python benchmarks/env_throughput.py [--quick]`` (``--quick``: fewer episodes).
Threads are pinned to one (OMP/MKL/OpenBLAS) before numpy is imported; the env
and its default rewards never import torch.
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

from comam_env import prompts, rewards  # noqa: E402
from comam_env.data.synthetic import load_synthetic  # noqa: E402
from comam_env.env import clear_caches  # noqa: E402
from comam_env.env import env as make_env  # noqa: E402
from comam_env.judges import get_judge  # noqa: E402
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode  # noqa: E402


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
    t0 = time.perf_counter()
    for qid in qids:
        e.reset(options={"question_id": qid})
        for agent in e.agent_iter():
            obs, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else oracle(agent, obs, e))
            steps += 0 if term or trunc else 1
    dt = time.perf_counter() - t0
    return len(qids) / dt, steps / dt


def recorded_actions(ds, episode, qids):
    e = make_env(ds, episode=episode)
    out = []
    for qid in qids:
        t = run_episode(e, OraclePolicy(ds), options={"question_id": qid})
        out.append((qid, [tuple(c) for c in t["chunks"]], [s["action"] for s in t["steps"]]))
    return out


def instrument_rewards(raw):
    """Time the env's reward computations (coverage, judge, answer parsing) on this instance."""
    acc = [0.0]
    for name in ("_extractor_reward", "_profiler_reward", "_retriever_step"):
        f = getattr(raw, name)

        def timed(*a, _f=f, **k):
            t = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                acc[0] += time.perf_counter() - t

        setattr(raw, name, timed)
    return acc


def replay_env(ds, episode, plays, cold, reward_clock=None):
    e = make_env(ds, episode=episode)
    raw = e.unwrapped
    if reward_clock is not None:
        reward_clock.append(instrument_rewards(raw))
    t0 = time.perf_counter()
    for qid, _, actions in plays:
        if cold:  # every cache dropped: history lines rendered/normalised, tokens counted, content sets built again
            clear_caches()
            rewards.clear_caches()
        e.reset(options={"question_id": qid})
        it = iter(actions)
        for agent in e.agent_iter():
            obs, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else next(it))
    return time.perf_counter() - t0


def bare_prompts(ds, plays):
    """Only the prompts: render each chunk, the memory and the query/options, build the prompt."""
    t0 = time.perf_counter()
    for qid, spans, actions in plays:
        q = ds.question(qid)
        h = ds.history_for(q)
        k = len(spans)
        for (a, b) in spans:
            prompts.build_prompt("extractor", chunk=prompts.render_chunk(h, range(a, b)))
        fine = "\n".join(x.strip() for x in actions[:k] if x.strip())
        prompts.build_prompt("profiler", memory=prompts.render_memory(fine))
        coarse = actions[k].strip()
        prompts.build_prompt("retriever", memory=prompts.render_memory(fine, coarse), query=q.query,
                             options=prompts.render_options(q))
    return time.perf_counter() - t0


def time_call(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def reward_micro(ds):
    q = next(q for q in ds.questions if q.evidence and len(q.evidence) >= 2)
    h = ds.history_for(q)
    ev = ds.evidence_texts(q)
    oracle_mem = h.render(q.evidence)
    session = h.session_ranges(q.end_index)[h.session_of(q.evidence[-1])]
    copy_mem = h.render(session)
    resp = f"<information>\n{oracle_mem}\n</information>\n<final_answer>({q.answer})</final_answer>"
    judge = get_judge("gold")
    gold = ds.profile_for(q)
    profile = "\n".join(gold)
    n_units = len(copy_mem.splitlines())
    print(f"\nreward calls (µs/call; evidence |E|={len(ev)}, copy-everything memory = {n_units} units):")
    rows = [
        ("extractor_reward, oracle memory", lambda: rewards.extractor_reward(oracle_mem, ev)),
        ("extractor_reward, copy-everything memory", lambda: rewards.extractor_reward(copy_mem, ev)),
        ("retriever_reward, oracle retrieval", lambda: rewards.retriever_reward(oracle_mem, ev)),
        ("answer_reward", lambda: rewards.answer_reward(resp, q)),
        ("gold profile judge, gold profile", lambda: judge.score(profile, history=None, gold_profile=gold)),
    ]
    for name, fn in rows:
        print(f"  {name:42s} {time_call(fn, 2000):9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer episodes")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0

    for size, n_ev, n_full in (("32k", 400, 60), ("128k", 200, 16)):
        t0 = time.perf_counter()
        ds = load_synthetic(size, seed=0)
        print(f"\nsynthetic-{size}: {len(ds.questions)} questions, {len(ds.histories)} histories "
              f"(load {time.perf_counter() - t0:.2f} s)")
        for episode, n in (("evidence-session", n_ev), ("full-history", n_full)):
            qids = pick_questions(ds, max(4, int(n * scale)))
            eps, sps = oracle_rate(ds, episode, qids)
            plays = recorded_actions(ds, episode, qids)
            bare = min(bare_prompts(ds, plays) for _ in range(3))
            cold = min(replay_env(ds, episode, plays, cold=True) for _ in range(3))
            clocks: list = []
            warm = min(replay_env(ds, episode, plays, cold=False, reward_clock=clocks) for _ in range(3))
            rew = min(c[0] for c in clocks)
            steps = sum(len(p[2]) for p in plays)
            per = 1e3 / len(plays)
            print(f"  {episode:16s} oracle {eps:8.1f} episodes/s {sps:9.0f} steps/s ({steps / len(plays):.1f} steps/episode)")
            print(f"  {'':16s} per episode: bare prompts {bare * per:.2f} ms | env cold {cold * per:.2f} ms, "
                  f"warm {warm * per:.2f} ms, of which rewards {rew * per:.2f} ms ({rew / warm:.0%})")
            print(f"  {'':16s} env/bare: cold {cold / bare:.2f}x, warm {warm / bare:.2f}x; "
                  f"excluding rewards: cold {(cold - rew) / bare:.2f}x, warm {(warm - rew) / bare:.2f}x")
        if size == "32k":
            reward_micro(ds)

    print("\nsynthetic-1m:")
    rss0 = rss_mb()
    t0 = time.perf_counter()
    ds = load_synthetic("1m", seed=0)
    print(f"  load {time.perf_counter() - t0:.2f} s, {len(ds.histories)} histories, "
          f"max RSS {rss_mb():.0f} MB (before load {rss0:.0f} MB)")
    e = make_env(ds, episode="full-history")
    by_hist = {}
    for q in ds.questions:
        by_hist.setdefault(q.history_id, q.question_id)
    clear_caches()
    first = []
    for qid in by_hist.values():
        t0 = time.perf_counter()
        e.reset(options={"question_id": qid})
        first.append(time.perf_counter() - t0)
    warm = []
    for qid in list(by_hist.values()) * 3:
        t0 = time.perf_counter()
        e.reset(options={"question_id": qid})
        warm.append(time.perf_counter() - t0)
    clear_caches()
    tracemalloc.start()
    e.reset(options={"question_id": qid})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_chunks = len(e.unwrapped.chunk_spans)
    t0 = time.perf_counter()
    t = run_episode(e, OraclePolicy(ds), options={"question_id": qid})
    ep = time.perf_counter() - t0
    print(f"  reset: first per history {np.mean(first) * 1e3:.0f} ms (max {max(first) * 1e3:.0f}; counts tokens), "
          f"later {np.median(warm) * 1e3:.1f} ms median; tracemalloc peak of a cold reset "
          f"{peak / 2**20:.1f} MB; max RSS {rss_mb():.0f} MB")
    print(f"  one full-history oracle episode: {len(t['steps'])} steps ({n_chunks} chunks), {ep:.2f} s, "
          f"global reward {t['global_reward']}")
    e2 = make_env(ds, episode="full-history")
    t0 = time.perf_counter()
    run_episode(e2, CopyAllPolicy(), options={"question_id": qid})
    print(f"  one full-history copy-everything episode (memory grows to the whole history): "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
