"""A tiny hand-built dataset for the view tests (fast, deterministic, no generator needed).

Two histories of three sessions; user turns state preferences/facts among small
talk; every question has gold evidence (user turns) and four options; personas
have gold profiles so the default judge is the gold-profile judge.
"""

from __future__ import annotations

import pytest

from comam_env.data.schema import Dataset, History, Question

TOPICS = [
    ("hiking", "mountain trails", "I love hiking on steep mountain trails every weekend"),
    ("tea", "green tea", "I switched from coffee to green tea because of my sleep"),
    ("music", "jazz", "My favourite music is jazz, especially live saxophone sets"),
    ("pets", "a cat named Miso", "I adopted a grey cat named Miso last spring"),
    ("cooking", "vegan curries", "Lately I cook vegan curries with lots of chickpeas"),
    ("travel", "Japan", "Next year I am planning a long trip to Japan in April"),
]
SMALL_TALK = [
    ("user", "Hi there, how are you doing today?"),
    ("assistant", "I am doing well, thanks for asking! How can I help?"),
    ("user", "The weather has been a bit cloudy this week."),
    ("assistant", "Cloudy weeks can be cosy. Anything on your mind?"),
]


def _history(hid: str, topics: list[tuple[str, str, str]]) -> tuple[History, dict[str, int]]:
    roles: list[str] = []
    contents: list[str] = []
    starts: list[int] = []
    where: dict[str, int] = {}
    for s in range(3):
        starts.append(len(roles))
        for r, c in SMALL_TALK:
            roles.append(r)
            contents.append(f"{c} (session {s} of {hid})")
        for name, _, statement in topics[s * 2 : s * 2 + 2]:
            where[name] = len(roles)
            roles.append("user")
            contents.append(statement)
            roles.append("assistant")
            contents.append(f"Thanks for sharing that about {name}; I will remember it.")
    return History(hid, tuple(roles), tuple(contents), tuple(starts), persona=f"persona of {hid}"), where


def make_tiny_dataset() -> Dataset:
    histories = {}
    questions = []
    profiles = {}
    for h in range(2):
        hid = f"h{h}"
        topics = TOPICS[h:] + TOPICS[:h]
        hist, where = _history(hid, topics)
        histories[hid] = hist
        profiles[f"p{h}"] = tuple(t[2] for t in topics)
        for k, (name, gold, _) in enumerate(topics):
            others = [t[1] for t in topics if t[0] != name][:3]
            opts = [f"Something about {gold}"] + [f"Something about {o}" for o in others]
            rot = k % 4
            opts = opts[rot:] + opts[:rot]
            answer = "abcd"[(4 - rot) % 4]
            questions.append(
                Question(
                    question_id=f"{hid}-q{k}", history_id=hid, qtype="recall_user_shared_facts", raw_type="recall",
                    query=f"Can you suggest something related to my {name}?", options=tuple(opts), answer=answer,
                    evidence=(where[name],), end_index=len(hist), persona_id=f"p{h}", topic=name,
                )
            )
    return Dataset(name="tiny-views", histories=histories, questions=tuple(questions), profiles=profiles)


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return make_tiny_dataset()


class OverlapJudge:
    """Deterministic stand-in profile judge: fraction of gold statements whose content
    words mostly appear in the profile. Keeps these tests independent of the judges module."""

    name = "overlap"

    def score(self, profile, *, history, gold_profile):
        from types import SimpleNamespace

        from comam_env.text import content_tokens

        gold = list(gold_profile or ())
        words = content_tokens(profile)
        hit = sum(1 for g in gold if len(content_tokens(g) & words) >= 0.5 * max(1, len(content_tokens(g))))
        return SimpleNamespace(score=hit / len(gold) if gold else 0.0, parts={"hit": hit})


def make_view(dataset, cache_dir, K=8, **kw):
    """The selection view over the tiny dataset (all questions, small chunks)."""
    import comam_env

    env_kw = {"split": "all", "judge": OverlapJudge(), "chunk_tokens": 60}
    env_kw.update({k: kw.pop(k) for k in list(kw) if k in ("reward_mode", "episode", "chunk_tokens", "split")})
    view_kwargs = {"K": K, "cache_dir": str(cache_dir), "progress": False, **kw}
    return comam_env.make("synthetic-32k", dataset=dataset, view="selection", view_kwargs=view_kwargs, **env_kw)


@pytest.fixture()
def view_factory(tiny_dataset, tmp_path):
    return lambda **kw: make_view(tiny_dataset, tmp_path, **kw)


@pytest.fixture()
def text_env_factory(tiny_dataset):
    """The text env over the tiny dataset, configured like :func:`make_view`."""
    import comam_env

    return lambda **kw: comam_env.make(
        "synthetic-32k", dataset=tiny_dataset, split="all", judge=OverlapJudge(), chunk_tokens=60, **kw
    )
