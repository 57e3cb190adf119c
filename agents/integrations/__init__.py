"""Adapters that need the reference learner's code (the truncation rule of :mod:`agents.llm`,
the credit strategies of :mod:`agents.credit`): :mod:`agents.integrations.trl` (TRL
``GRPOTrainer``) and :mod:`agents.integrations.verl` (a verl recipe). They live above
``comam_env`` (``comam_env`` imports nothing from ``agents``; tests/test_layering.py). The
adapters that need only the env are in :mod:`comam_env.integrations`.
"""
