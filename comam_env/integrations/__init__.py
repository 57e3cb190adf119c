"""Adapters that need only the env: verifiers and OpenEnv (the TRL and verl adapters, which use the
reference learner, are in :mod:`agents.integrations`; Ray rollouts in :mod:`agents.ray_rollout`).

Each adapter is its own module and imports its library only when it is imported
(``pip install "comam-env[integrations]"``); ``import comam_env`` never imports any of them:

* :mod:`comam_env.integrations.verifiers` — a verifiers 0.4 multi-agent environment (the three roles
  as agents, per-agent local rewards and the answer reward from the env's channels), run in process
  by its own harness: no uv, no subprocess, no network (the model endpoint is any OpenAI-compatible
  server, e.g. :mod:`agents.chat_server` on 127.0.0.1);
* :mod:`comam_env.integrations.openenv` — the env served per the OpenEnv spec
  (``comam-env serve``) and its typed client;

Every adapter plays episodes through :class:`comam_env.integrations.episodes.RoleEpisode`, which
uses only the env's public API (``make``, ``reset(options={"question_id": ...})``, ``step``,
``last``, ``trajectory()``), so they see exactly the rewards the env computes.

The adapters that need the reference learner's code (the truncation rule of :mod:`agents.llm`,
the credit strategies of :mod:`agents.credit`) live above ``comam_env``, in
:mod:`agents.integrations`: :mod:`agents.integrations.trl` (TRL ``GRPOTrainer``: one role trained
against fixed others, or whole episodes with one shared model under CoMAM credit) and
:mod:`agents.integrations.verl` (a verl recipe).
"""
