import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: faster than two for tiny models on a shared machine, and reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
