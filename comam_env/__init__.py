"""comam-env: multi-agent LLM memory systems (extractor → profiler → retriever) as an
RL benchmark, with the CoMAM learner (Mao et al., 2026, arXiv 2603.12631).

``comam_env.make(env_id, **kwargs)`` builds a PettingZoo AEC environment;
``comam_env.list_envs()`` lists the ids. Importing this package is light: it
imports neither torch nor transformers (only PettingZoo, to register the
``comam/<id>-v0`` ids in PettingZoo's registry); the environment itself, the
data loaders and any model are imported when first used.
"""

from comam_env.registry import list_envs, make

__version__ = "0.1.0"

__all__ = ["make", "list_envs", "__version__"]


def single_agent(env_id, role="retriever", others=None, **kwargs):
    """One role of ``env_id``'s selection view as a ``gymnasium.Env``; the other roles follow
    fixed policies (lazy re-export of :func:`comam_env.views.single_agent.single_agent`)."""
    from comam_env.views.single_agent import single_agent as _single_agent

    return _single_agent(env_id, role=role, others=others, **kwargs)


__all__.append("single_agent")


def score_answer(question, response):
    """The answer score of ``response`` to ``question`` (eq. 12; lazy re-export of
    :func:`comam_env.scoring.score_answer`): the one rule of the env, the harness and the
    leaderboard."""
    from comam_env.scoring import score_answer as _score_answer

    return _score_answer(question, response)


__all__.append("score_answer")
