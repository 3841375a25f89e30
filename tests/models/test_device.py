import pytest
import torch

from napari_cytomask.models import device as device_module
from napari_cytomask.models.device import autocast_dtype, available_devices, get_device


def test_auto_picks_the_cpu_on_a_machine_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    assert get_device("auto") == torch.device("cpu")
    assert available_devices() == ["auto", "cpu"]
    assert autocast_dtype(torch.device("cpu")) is None


def test_unavailable_device_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    with pytest.raises(
        ValueError, match=r"not available on this machine; choose one of auto, cpu \("
    ):
        get_device("cuda")
    with pytest.raises(ValueError, match="not available"):
        get_device("mps")
    with pytest.raises(ValueError, match="not a device name"):
        get_device("gpu please")


def test_cuda_devices_are_listed_and_validated(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    assert available_devices() == ["auto", "cuda:0", "cuda:1", "cpu"]
    assert get_device("auto") == torch.device("cuda", 0)
    assert get_device("CUDA") == torch.device("cuda", 0)
    assert get_device(" cuda:1 ") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="not available"):
        get_device("cuda:2")


def test_cpu_is_always_usable():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("native", "capability", "name", "expected"),
    [
        (True, (8, 0), "NVIDIA A100-SXM4-80GB", torch.bfloat16),
        (False, (7, 0), "Tesla V100-SXM2-16GB", torch.float16),
        (False, (7, 5), "Tesla T4", torch.float16),
        # No tensor cores: fp16 gains nothing, and GTX 16 cards overflow to NaN in it.
        (False, (7, 5), "NVIDIA GeForce GTX 1660 SUPER", None),
        (False, (6, 1), "NVIDIA GeForce GTX 1080 Ti", None),
        (False, (7, 5), "NVIDIA GeForce RTX 2080 Ti", torch.float16),
        (False, (7, 5), "Quadro RTX 5000", torch.float16),
        (False, (7, 5), "NVIDIA T400 4GB", None),
        (False, (7, 5), "Quadro T1000", None),
        (False, (7, 5), "NVIDIA GeForce MX450", None),
    ],
)
def test_autocast_uses_reduced_precision_only_where_the_gpu_has_it(
    monkeypatch, native, capability, name, expected
):
    """torch says bf16 is supported where it is only emulated (V100, T4): fp16 there; and
    fp16 was used on every older GPU, those without tensor cores too."""
    import contextlib

    monkeypatch.setattr(torch.cuda, "device", lambda _: contextlib.nullcontext())

    def supported(including_emulation=True):
        return native or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _: name)
    assert autocast_dtype(torch.device("cuda", 0)) is expected
