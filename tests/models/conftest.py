import pytest
import torch


@pytest.fixture(scope="session")
def tiny_unet() -> dict:
    """UNetConfig arguments of a small, fast U-Net.

    Its encoder has no squeeze-excitation: that global pooling would make every output
    pixel depend on the whole tile, which no tiling can reproduce exactly.
    """
    return {"encoder": "tu-resnet10t", "encoder_depth": 3, "decoder_channels": (32, 16, 8)}


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: faster than two for tiny models on a shared machine, and reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
