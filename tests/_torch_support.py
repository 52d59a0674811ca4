"""Shared by the training tests: import `one_torch_thread` into a test module to train on
one torch thread there."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Train on one thread: on a CPU shared with other jobs, two OpenMP threads that wait
    for each other run many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
