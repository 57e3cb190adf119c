"""Behaviour of the memory-system environment: rewards per channel, episodes, determinism,
robustness, registry.

Numbers in the copy-all tests are computed by hand from the fixture in conftest.py:
the evidence of ``q_sport`` is messages 6 and 8, both in session 1 (messages 5–9).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import comam_env
from comam_env.charset import REPLACEMENT
from comam_env.env import AGENTS, EnvConfig, plan_chunks, raw_env
from comam_env.env import env as make_env
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode

from .conftest import SYNTHETIC_KW


def _tiny_env(ds, **kw):
    kw.setdefault("judge", "gold")
    return make_env(ds, **kw)


def _steps_by_agent(traj):
    out = {}
    for s in traj["steps"]:
        out.setdefault(s["agent"], []).append(s)
    return out


# ------------------------------------------------------------------ reward channels


def test_oracle_gets_full_rewards(tiny_dataset):
    e = _tiny_env(tiny_dataset)
    for qid in ("q_sport", "q_studio", "q_garden"):
        t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": qid})
        by = _steps_by_agent(t)
        assert by["extractor_0"][-1]["local_reward"] >= 0.9
        assert by["profiler_0"][0]["local_reward"] >= 0.9
        assert by["retriever_0"][0]["local_reward"] >= 0.9
        assert t["global_reward"] == 1.0
        q = tiny_dataset.question(qid)
        assert t["parsed_answer"] == q.answer
        # every agent's info carries the global reward once the episode ends
        assert t["final_infos"].keys() == set(AGENTS)
        for a in AGENTS:
            assert t["final_infos"][a]["global_reward"] == 1.0
            assert t["final_infos"][a]["global_parts"]["answers"][0]["parsed"] == q.answer


def test_copy_all_hand_checked(tiny_dataset):
    """Copying the whole history: recall 1, Jaccard exactly c/(|M|+|E|-c)."""
    e = _tiny_env(tiny_dataset)
    t = run_episode(e, CopyAllPolicy(), options={"question_id": "q_sport"})
    by = _steps_by_agent(t)
    ext = by["extractor_0"][-1]
    # H = session 1 = 5 messages (system + 4 turns) → |M_f| = 5, |E| = 2, c = 2
    assert ext["local_parts"]["recall"] == 1.0
    assert ext["local_parts"]["jaccard"] == pytest.approx(2 / 5)
    assert ext["local_reward"] == pytest.approx(0.8 * 1 + 0.2 * 2 / 5)  # 0.88
    assert ext["local_parts"]["matched_messages"] == [6, 8]
    ret = by["retriever_0"][0]
    # retrieved = M_f (5 lines) + M_c (the copy-all profiler repeats them: 5 lines) = 10 units
    assert ret["local_parts"]["n_units"] == 10
    assert ret["local_parts"]["recall"] == 1.0
    assert ret["local_parts"]["jaccard"] == pytest.approx(2 / 10)
    assert ret["local_reward"] == pytest.approx(0.2 * 1 + 0.8 * 2 / 10)  # 0.36
    assert ret["local_parts"]["parsed_option"] == "a"
    assert t["global_reward"] == 0.0  # gold is (b)
    # local+global: local + global/3, global is 0 here
    assert t["returns"]["extractor_0"] == pytest.approx(0.88)
    assert t["returns"]["retriever_0"] == pytest.approx(0.36)


def test_empty_memory_gets_zero_coverage(tiny_dataset):
    e = _tiny_env(tiny_dataset)
    t = run_episode(e, lambda agent, obs, env: "", options={"question_id": "q_sport"})
    by = _steps_by_agent(t)
    ext, ret = by["extractor_0"][-1], by["retriever_0"][0]
    assert ext["local_reward"] == 0.0 and ext["local_parts"]["recall"] == 0.0
    assert ret["local_reward"] == 0.0 and ret["local_parts"]["n_units"] == 0
    assert ext["flags"]["empty"] and ret["flags"]["malformed"]
    assert t["global_reward"] == 0.0


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("local", lambda l, g: l),
        ("global", lambda l, g: {a: g for a in l}),
        ("local+global", lambda l, g: {a: l[a] + g / 3 for a in l}),
        ("none", lambda l, g: {a: 0.0 for a in l}),
    ],
)
def test_reward_modes(tiny_dataset, mode, expected):
    e = _tiny_env(tiny_dataset, reward_mode=mode)
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_garden"})
    by = _steps_by_agent(t)
    local = {a: sum(s["local_reward"] or 0.0 for s in by[a]) for a in AGENTS}
    want = expected(local, t["global_reward"])
    for a in AGENTS:
        assert t["returns"][a] == pytest.approx(want[a])


def test_undefined_evidence_is_reported_not_invented(tiny_dataset):
    e = _tiny_env(tiny_dataset, reward_mode="local")
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_noev"})
    by = _steps_by_agent(t)
    assert t["history"]["fallback"] is True  # no evidence session: last session before end_index
    infos = t["final_infos"]
    for a in ("extractor_0", "retriever_0"):
        assert by[a][-1]["local_reward"] is None
        assert infos[a]["local_reward"] is None
        assert infos[a]["local_reward_defined"] is False
        assert t["returns"][a] == 0.0
    assert infos["profiler_0"]["local_reward_defined"] is True
    assert t["global_reward"] == 1.0


def test_extractor_reward_deferred_to_last_chunk(tiny_dataset):
    e = _tiny_env(tiny_dataset, episode="full-history", chunk_tokens=None)
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    ext = _steps_by_agent(t)["extractor_0"]
    assert len(ext) == 3  # one step per session of the full history
    assert [s["local_reward"] for s in ext[:-1]] == [0.0, 0.0]
    assert all(s["local_parts"]["deferred"] for s in ext[:-1])
    assert ext[-1]["local_reward"] >= 0.9
    assert [s["chunk_index"] for s in ext] == [0, 1, 2]


# ------------------------------------------------------------------------ episodes


def test_episode_modes_select_history(tiny_dataset):
    e = _tiny_env(tiny_dataset, episode="evidence-session")
    e.reset(options={"question_id": "q_studio"})
    assert e.unwrapped.chunk_spans == ((0, 5),)  # evidence (3) lives in session 0
    e = _tiny_env(tiny_dataset, episode="full-history", chunk_tokens=None)
    e.reset(options={"question_id": "q_studio"})
    assert e.unwrapped.chunk_spans == ((0, 5), (5, 10), (10, 15))
    e.reset(options={"question_id": "q_noev"})  # end_index 10
    assert e.unwrapped.chunk_spans == ((0, 5), (5, 10))


def test_plan_chunks_never_splits_a_message():
    counts = [5, 5, 5, 50, 5, 5]
    spans = plan_chunks(counts, [range(0, 6)], 12)
    assert spans == [(0, 2), (2, 3), (3, 4), (4, 6)]  # the 50-token message is alone, over budget
    assert plan_chunks(counts, [range(0, 3), range(3, 6)], None) == [(0, 3), (3, 6)]
    assert plan_chunks(counts, [range(0, 0)], 12) == []


def test_plan_chunks_properties():
    """Random sessions: chunks tile every session in order, stay within budget unless a
    single message is over it, and are maximal (the next message would not have fit)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        counts = rng.integers(1, 40, size=int(rng.integers(1, 60)))
        cuts = sorted(set(rng.integers(0, len(counts), size=int(rng.integers(0, 6))).tolist()) | {0})
        ranges = [range(a, b) for a, b in zip(cuts, cuts[1:] + [len(counts)])]
        budget = int(rng.integers(1, 120))
        spans = plan_chunks(counts, ranges, budget)
        assert [i for a, b in spans for i in range(a, b)] == list(range(len(counts)))
        for a, b in spans:
            assert any(a >= r.start and b <= r.stop for r in ranges)  # never crosses a session
            total = int(counts[a:b].sum())
            assert total <= budget or b - a == 1
        for (a, b), (c, d) in zip(spans, spans[1:]):
            same_session = any(r.start <= a and d <= r.stop for r in ranges)
            if same_session:
                assert counts[a:b].sum() + counts[c] > budget


def test_chunk_tokens_drives_extractor_steps(tiny_dataset):
    e = _tiny_env(tiny_dataset, episode="full-history", chunk_tokens=20)
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    spans = [tuple(c) for c in t["chunks"]]
    assert len(spans) > 3
    # chunks tile the history without gaps, inside sessions
    assert spans[0][0] == 0 and spans[-1][1] == 15
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert len(_steps_by_agent(t)["extractor_0"]) == len(spans)
    assert _steps_by_agent(t)["extractor_0"][-1]["local_reward"] >= 0.9


def test_queries_per_episode_reuses_memory(tiny_dataset):
    e = _tiny_env(tiny_dataset, queries_per_episode=2)
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    by = _steps_by_agent(t)
    assert t["question_ids"] == ["q_sport", "q_studio"]
    assert len(by["profiler_0"]) == 1 and len(by["retriever_0"]) == 2
    # H = union of the evidence sessions of the group: sessions 0 and 1
    assert [tuple(c) for c in t["chunks"]] == [(0, 5), (5, 10)]
    assert [s["local_parts"]["question_id"] for s in by["retriever_0"]] == ["q_sport", "q_studio"]
    assert len(by["extractor_0"][-1]["local_parts"]["queries"]) == 2
    assert t["global_reward"] == 1.0 and len(t["answers"]) == 2
    # the retriever saw the same memory for both queries
    mem = [s["prompt"].split("# User message")[0] for s in by["retriever_0"]]
    assert mem[0] == mem[1]


def test_reset_replays_same_question(tiny_dataset):
    e = _tiny_env(tiny_dataset)
    a = run_episode(e, CopyAllPolicy(), seed=1, options={"question_id": "q_garden"})
    b = run_episode(e, CopyAllPolicy(), seed=2, options={"question_id": "q_garden"})
    assert a == b


def test_explicit_question_group_must_share_history(tiny_dataset):
    e = _tiny_env(tiny_dataset, queries_per_episode=2)
    e.reset(options={"question_ids": ["q_studio", "q_sport"]})
    assert [q.question_id for q in e.unwrapped.current_questions] == ["q_studio", "q_sport"]
    with pytest.raises(ValueError, match="not on"):
        e.reset(options={"question_ids": ["q_sport", "q_garden"]})
    with pytest.raises(KeyError, match="nope"):
        e.reset(options={"question_id": "nope"})


def _record(env, policy, seed, episodes=4):
    out = []
    env.reset(seed=seed)
    for ep in range(episodes):
        if ep:
            env.reset()
        for agent in env.agent_iter():
            obs, rew, term, trunc, info = env.last()
            out.append((agent, obs, rew, term, trunc, repr(info)))
            env.step(None if term or trunc else policy(agent, obs, env))
    return out


def test_same_seed_same_everything(tiny_dataset):
    a = _record(_tiny_env(tiny_dataset), CopyAllPolicy(), seed=7)
    b = _record(_tiny_env(tiny_dataset), CopyAllPolicy(), seed=7)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[0] == y[0] and x[2:] == y[2:]
        assert x[1].keys() == y[1].keys() and all(str(x[1][k]) == str(y[1][k]) for k in x[1])
    # different seeds draw different questions somewhere in 12 episodes
    drawn = set()
    for s in range(6):
        e = _tiny_env(tiny_dataset)
        e.reset(seed=s)
        drawn.add(e.unwrapped.current_questions[0].question_id)
    assert len(drawn) > 1


# -------------------------------------------------------------- observations/spaces


def test_observations_in_space_with_unicode(tiny_dataset):
    e = _tiny_env(tiny_dataset, episode="full-history", chunk_tokens=None)
    e.reset(options={"question_id": "q_sport"})
    seen_unicode = False
    for agent in e.agent_iter():
        obs, _, term, trunc, _ = e.last()
        assert e.observation_space(agent).contains(obs), agent
        assert obs["role"] == AGENTS.index(agent)
        seen_unicode |= "😀" in obs["prompt"] and "’" in obs["prompt"]
        act = "café ’ 😀 👨‍👩‍👧 \ud800 \x00 ok"  # lone surrogate and NUL get replaced
        e.step(None if term or trunc else act)
        if not term and e.infos[agent]["flags"]:
            assert e.infos[agent]["flags"]["replaced_chars"] == 2
    assert seen_unicode
    fine = e.unwrapped.fine_memory
    assert REPLACEMENT in fine and "\ud800" not in fine and "👨‍👩‍👧" in fine


def test_spaces_are_cached_and_per_agent(tiny_dataset):
    e = _tiny_env(tiny_dataset)
    for a in AGENTS:
        assert e.observation_space(a) is e.observation_space(a)
        assert e.action_space(a) is e.action_space(a)
    assert e.action_space("extractor_0") is not e.action_space("profiler_0")
    assert e.action_space("extractor_0").max_length == EnvConfig().max_action_chars


def test_prompts_hold_the_fields(tiny_dataset):
    e = _tiny_env(tiny_dataset)
    e.reset(options={"question_id": "q_sport"})
    obs = e.observe("extractor_0")
    assert obs["chunk"] in obs["prompt"] and "I no longer enjoy hiking" in obs["chunk"]
    assert obs["memory"] == obs["query"] == obs["options"] == ""
    e.step("User: I no longer enjoy hiking because my knee hurts after long trails.")
    obs = e.observe("profiler_0")
    assert "## Fine-grained memory" in obs["memory"] and "knee hurts" in obs["memory"]
    e.step("Kanoa has knee pain.")
    obs = e.observe("retriever_0")
    assert "## User profile\nKanoa has knee pain." in obs["memory"]
    assert obs["query"] == "Can you suggest an activity for this weekend?"
    assert obs["options"].splitlines()[1].startswith("(b) Since hiking hurts")
    assert "<final_answer>" in obs["prompt"]


# ------------------------------------------------------------------------ robustness


BAD_ACTIONS = [None, b"bytes \xff", 12, 3.5, object(), ["list"], "", " \n ", "x" * (1 << 20),
               "\ud800\udfff lone surrogates", "<final_answer>(a)(b)</final_answer>", "\x00\x01\x02"]


@pytest.mark.parametrize("action", BAD_ACTIONS, ids=lambda a: type(a).__name__ + str(len(a) if hasattr(a, "__len__") else ""))
def test_bad_actions_never_crash(tiny_dataset, action):
    e = _tiny_env(tiny_dataset)
    e.reset(options={"question_id": "q_sport"})
    for agent in e.agent_iter():
        obs, _, term, trunc, _ = e.last()
        assert e.observation_space(agent).contains(obs)
        e.step(None if term or trunc else action)
        if term or trunc:
            continue
        info = e.unwrapped.infos[agent] if agent in e.unwrapped.infos else None
        if info is None:
            continue
        flags = info["flags"]
        if not isinstance(action, str):
            assert flags["non_text"] and info["local_reward"] == 0.0
        elif len(action) > EnvConfig().max_action_chars:
            assert flags["truncated"]
        elif not action.strip():
            assert flags["empty"]
    t = e.unwrapped.trajectory()
    assert len(t["steps"]) == 3
    assert all(len(s["action"]) <= EnvConfig().max_action_chars for s in t["steps"])
    if not isinstance(action, str):
        assert t["global_reward"] == 0.0


def test_max_action_chars(tiny_dataset):
    e = _tiny_env(tiny_dataset, max_action_chars=50)
    e.reset(options={"question_id": "q_sport"})
    e.step("y" * 80)
    assert e.infos["extractor_0"]["flags"]["truncated"]
    assert len(e.unwrapped.fine_memory) == 50
    assert e.action_space("retriever_0").max_length == 50


def test_invalid_config_is_rejected(tiny_dataset):
    with pytest.raises(ValueError, match="reward_mode"):
        _tiny_env(tiny_dataset, reward_mode="both")
    with pytest.raises(ValueError, match="episode"):
        _tiny_env(tiny_dataset, episode="whole")
    with pytest.raises(TypeError, match="unknown environment argument"):
        _tiny_env(tiny_dataset, alhpa=0.5)
    with pytest.raises(ValueError, match="queries_per_episode"):
        _tiny_env(tiny_dataset, queries_per_episode=0)


# ------------------------------------------------------------------- learner access


def test_trajectory_contract(tiny_dataset):
    e = _tiny_env(tiny_dataset)
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_studio"})
    for key in ("question_id", "history_id", "steps", "global_reward", "parsed_answer", "memory", "retrieved"):
        assert key in t
    assert t["question_id"] == "q_studio" and t["history_id"] == "h1"
    assert set(t["memory"]) == {"fine", "coarse"}
    for s in t["steps"]:
        assert {"agent", "role", "prompt", "action", "local_reward", "local_parts", "flags"} <= set(s)
        assert isinstance(s["prompt"], str) and s["prompt"]
    assert "Ableton" in t["retrieved"]
    assert t["parsed_answer"] == "c"


def test_record_trajectory_off(tiny_dataset):
    e = _tiny_env(tiny_dataset, record_trajectory=False)
    t = run_episode(e, OraclePolicy(tiny_dataset), options={"question_id": "q_studio"})
    assert t["steps"] == [] and t["global_reward"] == 1.0


def test_render_and_close(tiny_dataset):
    e = _tiny_env(tiny_dataset, render_mode="ansi")
    run_episode(e, CopyAllPolicy(), options={"question_id": "q_sport"})
    text = e.render()
    assert "q_sport" in text and "global (answer) reward 0.000" in text
    e.close()
    with pytest.raises(ValueError, match="render_mode"):
        _tiny_env(tiny_dataset, render_mode="human")


# --------------------------------------------------------------------------- registry


def test_list_envs_and_aliases():
    ids = comam_env.list_envs()
    assert ids == ["personamem-32k", "personamem-128k", "personamem-1m", "synthetic-mini", "synthetic-32k",
                   "synthetic-128k", "synthetic-1m", "locomo"]
    assert "comam/personamem-128k-v0" in comam_env.list_envs(versioned=True)
    from comam_env.registry import resolve_id

    assert resolve_id("comam/personamem-128k-v0").env_id == "personamem-128k"
    assert resolve_id("PersonaMem-1M").env_id == "personamem-1m"
    assert resolve_id("comam/locomo").env_id == "locomo"


def test_unknown_id_lists_valid_ids_and_closest():
    with pytest.raises(ValueError) as exc:
        comam_env.make("personamem-12k")
    msg = str(exc.value)
    assert "Did you mean 'personamem-128k'" in msg and "synthetic-1m" in msg


def test_make_without_data_raises_loader_error(tmp_path, monkeypatch):
    from comam_env.data.errors import DataNotFoundError

    monkeypatch.setenv("COMAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COMAM_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataNotFoundError) as exc:
        comam_env.make("personamem-128k")
    assert "128k" in str(exc.value)


def test_make_personamem_fixture_and_pettingzoo_registry(personamem_dir):
    import pettingzoo

    e = comam_env.make("personamem-32k", data_dir=personamem_dir, split="all", judge="embedding:hashing")
    assert e.unwrapped.config.episode == "full-history"  # auto: not the train split
    e.reset(options={"question_id": "pm-q1"})
    assert e.observation_space("extractor_0").contains(e.observe("extractor_0"))
    assert "🎶" in e.observe("extractor_0")["chunk"]
    pz = pettingzoo.make("aec", "comam/personamem-32k-v0", data_dir=personamem_dir, split="all",
                         judge="embedding:hashing")
    assert type(pz.unwrapped) is raw_env


def test_envs_cli_lists_ids(capsys):
    from comam_env.cli import main

    assert main(["envs"]) == 0
    assert capsys.readouterr().out.split() == comam_env.list_envs()


def test_import_is_light():
    code = "import sys, comam_env; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


# ------------------------------------------------------------------- synthetic data


def _sample_by_type(ds, per_type=4):
    seen: dict[str, int] = {}
    out = []
    for q in ds.questions:
        if seen.get(q.qtype, 0) < per_type:
            seen[q.qtype] = seen.get(q.qtype, 0) + 1
            out.append(q.question_id)
    return out


@pytest.mark.parametrize("episode", ["evidence-session", "full-history"])
def test_oracle_on_synthetic(synthetic_32k, episode):
    ids = _sample_by_type(synthetic_32k, per_type=4 if episode == "evidence-session" else 1)
    assert len({synthetic_32k.question(i).qtype for i in ids}) == 7
    e = make_env(synthetic_32k, episode=episode)  # judge "auto" → gold profiles
    for qid in ids:
        t = run_episode(e, OraclePolicy(synthetic_32k), options={"question_id": qid})
        by = _steps_by_agent(t)
        assert by["extractor_0"][-1]["local_reward"] >= 0.9, qid
        assert by["profiler_0"][0]["local_reward"] >= 0.9, qid
        assert by["profiler_0"][0]["local_parts"]["judge"] == "gold"  # the judge that scored
        assert by["profiler_0"][0]["local_parts"]["judge_spec"] == "auto"  # the one requested
        assert by["retriever_0"][0]["local_reward"] >= 0.9, qid
        assert t["global_reward"] == 1.0, qid


def test_copy_all_on_synthetic_follows_formula(synthetic_32k):
    e = make_env(synthetic_32k, episode="evidence-session")
    for qid in _sample_by_type(synthetic_32k, per_type=1):
        t = run_episode(e, CopyAllPolicy(), options={"question_id": qid})
        ext = _steps_by_agent(t)["extractor_0"][-1]["local_parts"]
        n_h = sum(b - a for a, b in t["chunks"])  # copy-all: one unit per message of H
        n_e = len(synthetic_32k.question(qid).evidence)
        assert ext["n_units"] == n_h and ext["recall"] == 1.0
        assert ext["jaccard"] == pytest.approx(n_e / n_h)  # c = |E|: |M ∪ E| = |M|
        assert ext["jaccard"] < 0.35


def test_make_synthetic_id_split_and_episode_default():
    e = comam_env.make("synthetic-32k", data_kwargs=SYNTHETIC_KW)
    assert e.unwrapped.config.episode == "evidence-session"  # auto for split="train"
    n_train = len(e.unwrapped.question_ids)
    v = comam_env.make("synthetic-32k", split="validation", data_kwargs=SYNTHETIC_KW)
    assert v.unwrapped.config.episode == "full-history"
    assert not set(e.unwrapped.question_ids) & set(v.unwrapped.question_ids)
    a = comam_env.make("synthetic-32k", split="all", data_kwargs=SYNTHETIC_KW)
    assert n_train + len(v.unwrapped.question_ids) <= len(a.unwrapped.question_ids)


def test_synthetic_1m_reset_and_episode():
    """Reset + one full-history oracle episode on a 1M-token history completes (≈3 s with
    generation; timed in benchmarks/env_throughput.py)."""
    e = comam_env.make("synthetic-1m", split="all", episode="full-history",
                       data_kwargs={"cache": False, "n_personas": 1})
    e.reset(seed=0)
    assert len(e.unwrapped.chunk_spans) > 100
    t = run_episode(e, OraclePolicy(), seed=0)
    assert t["global_reward"] == 1.0
    assert len(t["steps"]) == len(t["chunks"]) + 2


def test_open_question_scored_by_token_f1(tiny_dataset):
    """LoCoMo-style open question: no options, the retriever prompt asks for free text,
    the global reward is token F1 against the gold answer."""
    from dataclasses import replace

    from comam_env.data.schema import Dataset

    q = tiny_dataset.question("q_sport")
    open_q = replace(q, question_id="q_open", options=(), answer="swimming laps at the local pool",
                     query="What exercise does Kanoa do now?")
    ds = Dataset("tiny-open", tiny_dataset.histories, (open_q,), tiny_dataset.profiles)
    e = make_env(ds, judge="gold")
    t = run_episode(e, OraclePolicy(ds), options={"question_id": "q_open"})
    ret = _steps_by_agent(t)["retriever_0"][0]
    assert "# Candidate responses" not in ret["prompt"] and "# Question" in ret["prompt"]
    assert t["answers"][0]["kind"] == "open" and t["global_reward"] == 1.0
    assert ret["local_parts"]["parsed_option"] is None
    t = run_episode(e, lambda a, o, env: "<information>x</information><final_answer>the pool</final_answer>",
                    options={"question_id": "q_open"})
    # F1 of "pool" vs "swimming laps at local pool" (articles dropped): P = 1, R = 1/5
    assert t["global_reward"] == pytest.approx(2 * 1 * 0.2 / 1.2)


def test_make_selection_view_hook():
    e = comam_env.make("synthetic-32k", view="selection", view_kwargs={"K": 16}, data_kwargs=SYNTHETIC_KW)
    assert type(e).__name__ == "SelectionView"
    assert type(e.unwrapped).__name__ == "raw_env"
    with pytest.raises(ValueError, match="view"):
        comam_env.make("synthetic-32k", view="pixels", data_kwargs=SYNTHETIC_KW)


# ------------------------------------------------- caches and lazy paths = eager definition

from comam_env import chunks as _envmod  # noqa: E402
from comam_env import prompts as _prompts  # noqa: E402
from comam_env.charset import normalize_text as _normalize  # noqa: E402
from comam_env.data.schema import Dataset as _Dataset  # noqa: E402
from comam_env.data.schema import History as _History  # noqa: E402
from comam_env.data.schema import Question as _Question  # noqa: E402


def _reference_plan(counts, ranges, budget):
    spans = []
    for r in ranges:
        if not len(r):
            continue
        start, run = r.start, 0
        for i in r:
            if i > start and run + counts[i] > budget:
                spans.append((start, i))
                start, run = i, 0
            run += counts[i]
        spans.append((start, r.stop))
    return spans


def test_plan_chunks_equals_reference_walk_for_few_and_many_sessions():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 200))
        counts = rng.integers(1, 40, size=n)
        cuts = sorted(set(rng.integers(0, n, size=int(rng.integers(0, 25))).tolist()) | {0, n})
        ranges = [range(a, b) for a, b in zip(cuts, cuts[1:])]
        keep = rng.random(len(ranges)) < 0.7  # evidence sessions: a subset, not starting at 0
        ranges = [r for r, k in zip(ranges, keep) if k]
        budget = int(rng.integers(1, 300))
        assert plan_chunks(counts, ranges, budget) == _reference_plan(counts.tolist(), ranges, budget)


def test_cached_chunk_text_equals_normalised_render():
    odd = [("system", "Session\r\nstart"), ("user", "I love  jazz\r\nand \x00 rock \ud800!"),
           ("assistant", "Nice \U0001F3B7 \u200d ok"), ("user\r", "role with a CR"), ("user", "tail\rline"),
           ("system", "second session"), ("bot\nx", "role with a line break"), ("user", "last \u2028 one")]
    h = _History("odd", tuple(r for r, _ in odd), tuple(c for _, c in odd), (0, 5))
    q = _Question("q", "odd", "recall_user_shared_facts", "x", "Which music?", ("a", "b"), "a", (1, 7), 8, "p", "t")
    ds = _Dataset(name="odd", histories={"odd": h}, questions=(q,))
    for clear in (True, False, False):
        if clear:
            _envmod.clear_caches()
        e = raw_env(ds, judge="embedding:hashing", chunk_tokens=5)
        e.reset(options={"question_id": "q"})
        for k, (a, b) in enumerate(e.chunk_spans):
            want = _normalize(_prompts.render_chunk(h, range(a, b)))[0]
            assert e.unwrapped.episode.chunk_text(k) == want
            e.unwrapped.episode.chunk = k
            assert e.observe("extractor_0")["chunk"] == want


def _run(e, ds, qid, observe):
    """Oracle episode; ``observe=False`` steps without ever observing (like the selection view)."""
    pol = OraclePolicy(ds)
    e.reset(options={"question_id": qid})
    while e.agents:
        a = e.agent_selection
        if e.terminations[a] or e.truncations[a]:
            e.step(None)
            continue
        obs = e.observe(a) if observe else None
        e.step(pol(a, obs, e))
    return e.unwrapped.trajectory(), {a: dict(i) for a, i in e.infos.items()}


@pytest.mark.parametrize("qpe", [1, 2])
def test_lazy_trajectory_prompts_equal_observed_prompts(tiny_dataset, qpe):
    for qid in ("q_sport", "q_studio", "q_garden", "q_noev"):
        t_obs, i_obs = _run(_tiny_env(tiny_dataset, queries_per_episode=qpe), tiny_dataset, qid, True)
        t_lazy, i_lazy = _run(_tiny_env(tiny_dataset, queries_per_episode=qpe), tiny_dataset, qid, False)
        assert all(isinstance(s["prompt"], str) and s["prompt"] for s in t_lazy["steps"])
        assert t_lazy == t_obs and i_lazy == i_obs
        # The observed prompts are the prompts the agents saw at their steps.
        assert [s["role"] for s in t_obs["steps"]][0] == "extractor"
        assert t_obs["steps"][0]["prompt"].startswith(_prompts.EXTRACTOR_INSTRUCTIONS)


def test_observation_truncated_flag_does_not_depend_on_observing(tiny_dataset):
    t = run_episode(_tiny_env(tiny_dataset), OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    lengths = [len(s["prompt"]) for s in t["steps"]]
    cap = lengths[0]  # the first prompt fits exactly; a later, longer one does not
    assert max(lengths) > cap
    for record in (True, False):
        flags = []
        for observe in (True, False):
            e = _tiny_env(tiny_dataset, max_observation_chars=cap, record_trajectory=record)
            seen = []
            pol = OraclePolicy(tiny_dataset)
            e.reset(options={"question_id": "q_sport"})
            for a in e.agent_iter():
                if e.terminations[a]:
                    e.step(None)
                    continue
                e.step(pol(a, e.observe(a) if observe else None, e))
                seen.append(e.infos[a]["flags"].get("observation_truncated", False))
            flags.append(seen)
        assert flags[0] == flags[1]
        assert any(flags[0]) and not flags[0][0]


class _SpyJudge:
    name = "spy"

    def __init__(self):
        self.histories = []

    def score(self, profile, *, history=None, gold_profile=None):
        from comam_env.judges import JudgeResult

        self.histories.append(history)
        return JudgeResult(0.5, {})


def test_profiler_judge_parts_and_history_only_when_read(tiny_dataset):
    spy = _SpyJudge()
    t = run_episode(make_env(tiny_dataset, judge=spy), OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    prof = _steps_by_agent(t)["profiler_0"][0]["local_parts"]
    assert prof["judge"] == "spy" and prof["judge_spec"] == "spy" and prof["score"] == 0.5
    # An unknown judge gets the rendered history of the episode.
    assert spy.histories == ["\n".join(_normalize(_prompts.render_chunk(
        tiny_dataset.histories["h1"], range(a, b)))[0] for a, b in t["chunks"])]
    from comam_env.judges import AutoJudge, GoldProfileJudge, judge_reads_history
    gold = ("likes jazz",)
    assert not judge_reads_history(GoldProfileJudge(), gold)
    assert not judge_reads_history(AutoJudge(), gold)
    assert judge_reads_history(AutoJudge(), None)
    assert judge_reads_history(spy, gold)
    t = run_episode(make_env(tiny_dataset, judge="gold"), OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    prof = _steps_by_agent(t)["profiler_0"][0]["local_parts"]
    assert prof["judge"] == "gold" and prof["judge_spec"] == "gold"


@pytest.mark.parametrize("qpe", [1, 2])
def test_cached_observations_equal_fresh_ones_at_every_point(tiny_dataset, qpe):
    e = _tiny_env(tiny_dataset, queries_per_episode=qpe, chunk_tokens=40)
    raw = e.unwrapped
    pol = OraclePolicy(tiny_dataset)
    for qid in ("q_sport", "q_garden"):
        e.reset(options={"question_id": qid})
        for agent in e.agent_iter():
            for a in AGENTS:  # every agent, at every point, including after the episode ended
                cached = e.observe(a)
                fresh = raw._build_obs(a)
                assert cached.keys() == fresh.keys()
                assert all(cached[k] == fresh[k] for k in fresh), (agent, a)
            _, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else pol(agent, e.observe(agent), e))


def test_memoised_chunk_plan_equals_plan_chunks(synthetic_32k):
    h = next(iter(synthetic_32k.histories.values()))
    rs = h.session_ranges()
    for ranges in (rs, rs[1:4], [rs[2]], rs[::3]):
        for budget in (None, 50, 300, 4096, 50):
            want = plan_chunks(_envmod.history_token_counts(h, ranges), ranges, budget)
            for _ in range(2):  # computed, then memoised
                assert list(_envmod.history_chunk_plan(h, ranges, budget)) == want
    _envmod.clear_caches()
    assert list(_envmod.history_chunk_plan(h, rs[1:4], 50)) == plan_chunks(
        _envmod.history_token_counts(h, rs[1:4]), rs[1:4], 50)
