"""Adapters to LLM-RL stacks: TRL, verifiers, OpenEnv, Ray and verl.

Each adapter is its own module and imports its library only when it is imported
(``pip install "comam-env[integrations]"``); ``import comam_env`` never imports any of them:

* :mod:`comam_env.integrations.trl` — ``GRPOTrainer`` on one role (dataset + reward function)
  and a ``rollout_func`` that plays whole episodes with one shared model under CoMAM credit;
* :mod:`comam_env.integrations.verifiers` — a verifiers multi-agent environment (the three roles
  as agents, per-agent rewards from the env's channels);
* :mod:`comam_env.integrations.openenv` — the env served per the OpenEnv spec
  (``comam-env serve``) and its typed client;
* :mod:`comam_env.integrations.verl` — a verl recipe (untested here: verl does not install beside
  our pins; see ``docs/multiagent.md``).

Every adapter plays episodes through :class:`comam_env.integrations.episodes.RoleEpisode`, which
uses only the env's public API (``make``, ``reset(options={"question_id": ...})``, ``step``,
``last``, ``trajectory()``), so they see exactly the rewards the env computes.

Like the CLI, the adapters are the place where ``comam_env`` reaches the reference learner's code
(the truncation rule of :mod:`agents.llm`, the credit strategies of :mod:`agents.credit`), always
lazily inside the adapter module, never from ``import comam_env``.
"""
