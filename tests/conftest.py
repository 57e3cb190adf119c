"""Fixtures shared by test modules across packages: the tiny random LLM and one torch thread."""

import pytest


@pytest.fixture(scope="module")
def torch_single_thread():
    """One torch thread for a whole module (``pytest.mark.usefixtures``): the tiny model gains
    nothing from intra-op threads and a busy shared CPU makes them spin."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    """A tiny random Llama + byte-level BPE tokenizer folder (:func:`agents.tiny.build_tiny_llm`),
    built once per module."""
    from agents.tiny import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.mktemp("tiny") / "llm")
