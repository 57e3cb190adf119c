"""The episode board (comam_env.episode) and the roles module, on the hand-built tiny dataset.

The AEC env drives :class:`~comam_env.episode.Episode`; these tests drive the board directly and
check it against the numbers the env reports, so the adapter adds nothing of its own.
"""

from __future__ import annotations

import pytest

from comam_env.config import EnvConfig
from comam_env.env import raw_env
from comam_env.episode import Episode, EpisodeScorer, history_ranges
from comam_env.policies import CopyAllPolicy, OraclePolicy, run_episode
from comam_env.prompts import retriever_action
from comam_env.roles import AGENTS, ROLE_NAMES, ROLE_OF, Role, role_index, role_of

JUDGE = "gold"


def test_roles_are_one_table():
    assert ROLE_NAMES == ("extractor", "profiler", "retriever")
    assert AGENTS == ("extractor_0", "profiler_0", "retriever_0")
    assert ROLE_OF == dict(zip(AGENTS, ROLE_NAMES))
    for i, (name, agent) in enumerate(zip(ROLE_NAMES, AGENTS)):
        assert Role.of(i) is Role.of(name) is Role.of(agent) is Role.of(str(i)) is Role(i)
        assert role_of(agent) == name and role_index(name) == i and Role(i).agent == agent
    for bad in (3, -1, "critic", "critic_0", True, 1.5, None):
        with pytest.raises(ValueError, match="role"):
            Role.of(bad)


def test_retriever_action_renders_the_tagged_format():
    assert retriever_action(["a", "b"], "(c)") == "<information>\na\nb\n</information>\n<final_answer>(c)</final_answer>"
    assert retriever_action("x", "Paris") == "<information>\nx\n</information>\n<final_answer>Paris</final_answer>"


def test_history_ranges_pick_evidence_sessions_or_fall_back(tiny_dataset):
    h = tiny_dataset.histories["h1"]
    ranges, info = history_ranges(h, [tiny_dataset.question("q_sport")], "evidence-session")
    assert ranges == [range(5, 10)] and info["sessions"] == [1] and not info["fallback"]
    ranges, info = history_ranges(h, [tiny_dataset.question("q_noev")], "evidence-session")
    assert ranges == [range(5, 10)] and info["fallback"]  # end_index 10: the last session before it
    ranges, info = history_ranges(h, [tiny_dataset.question("q_sport")], "full-history")
    assert ranges == [range(0, 5), range(5, 10), range(10, 15)] and info["num_messages"] == 15


def test_board_transitions_match_the_env(tiny_dataset):
    """Driving the board by hand gives the rewards, memory and answers the env reports."""
    config = EnvConfig(judge=JUDGE, episode="full-history", chunk_tokens=40)
    scorer = EpisodeScorer(tiny_dataset, config)
    ep = Episode.start(tiny_dataset, [tiny_dataset.question("q_sport")], config)
    assert len(ep.spans) > 1 and not ep.done

    env = raw_env(tiny_dataset, judge=JUDGE, episode="full-history", chunk_tokens=40)
    want = run_episode(env, OraclePolicy(tiny_dataset), options={"question_id": "q_sport"})
    for step in want["steps"]:
        assert not ep.done
        move = ep.act(step["role"], step["action"], {"non_text": False}, scorer)
        assert move.local == step["local_reward"]
        assert move.parts == step["local_parts"]
    assert ep.done and ep.global_reward == want["global_reward"] == 1.0
    assert ep.fine_memory == want["memory"]["fine"] and ep.coarse == want["memory"]["coarse"]
    assert ep.local_rewards() == want["local"]


def test_trajectory_states_each_roles_local_reward_once(tiny_dataset):
    env = raw_env(tiny_dataset, judge=JUDGE, episode="full-history", chunk_tokens=40, queries_per_episode=2)
    t = run_episode(env, CopyAllPolicy(answer="b"), options={"question_id": "q_sport"})
    by_role: dict[str, list] = {}
    for s in t["steps"]:
        by_role.setdefault(s["role"], []).append(s["local_reward"])
    assert len(by_role["extractor"]) > 1  # several chunks: only the last step carries eq. 9
    assert t["local"]["extractor"] == by_role["extractor"][-1]
    assert t["local"]["profiler"] == by_role["profiler"][0]
    rets = by_role["retriever"]
    assert len(rets) == 2 and t["local"]["retriever"] == pytest.approx(sum(rets) / 2)


def test_undefined_and_non_text_local_rewards(tiny_dataset):
    env = raw_env(tiny_dataset, judge=JUDGE)
    t = run_episode(env, OraclePolicy(tiny_dataset), options={"question_id": "q_noev"})
    assert t["local"]["extractor"] is None and t["local"]["retriever"] is None
    assert t["local"]["profiler"] is not None

    env.reset(options={"question_id": "q_sport"})
    for agent in env.agent_iter():
        if env.terminations[agent]:
            env.step(None)
            continue
        env.step(12345 if agent == "retriever_0" else OraclePolicy(tiny_dataset)(agent, env.observe(agent), env))
    local = env.trajectory()["local"]
    assert local["retriever"] == 0.0 and local["extractor"] >= 0.9  # a non-text answer never earns a reward
