"""Policies and learners for comam-env.

Kept light on purpose: importing `agents` imports nothing heavy. Use the submodules:
`agents.base` (policy protocol, registry), `agents.llm` (`LLMPolicy`, transformers + peft),
`agents.tiny` (tiny random Llama for tests), `agents.models` (offline SmolLM2),
`agents.generation` (generation backends: transformers, vLLM).
"""
