"""Fixtures shared by the agents tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: on tiny tensors thread hand-offs cost more than they
    save, badly so on a loaded 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
