"""One place that resolves and validates the compute device for every model."""

from __future__ import annotations

import re

import torch

AUTO = "auto"


def available_devices() -> list[str]:
    """Return the device choices for a dropdown, best first after ``"auto"``.

    Returns
    -------
    list of str
        ``"auto"``, then every CUDA device (``"cuda:0"`` …), ``"mps"`` when
        Apple's backend is usable, and ``"cpu"``.
    """
    choices = [AUTO]
    if torch.cuda.is_available():
        choices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        choices.append("mps")
    choices.append("cpu")
    return choices


def get_device(name: str | torch.device = AUTO) -> torch.device:
    """Resolve ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"`` to a usable device.

    Parameters
    ----------
    name
        The requested device. ``"auto"`` picks CUDA, then MPS, then the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the name is not a device, or the device is not usable on this machine;
        the message lists the devices that are.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(
            f"{name!r} is not a device name; choose one of {', '.join(available_devices())}."
        ) from err
    usable = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index is None or device.index < torch.cuda.device_count()),
        "mps": _mps_available(),
    }.get(device.type, False)
    if not usable:
        raise ValueError(
            f"Device {name!r} is not available on this machine; choose one of "
            f'{", ".join(available_devices())} ("auto" picks the fastest).'
        )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision that autocast should use on ``device``, or ``None`` for full precision.

    bf16 on CUDA devices that support it (Ampere and newer), fp16 on older ones with
    tensor cores (Volta, Turing's RTX cards and T4), and full precision elsewhere: on CPU
    and MPS, where autocast gains little, and on GPUs without tensor cores (Pascal,
    Turing's GTX 16, MX and T400-T2000), where fp16 gains no speed and GTX 16 cards' fp16
    convolutions overflow to NaN: empty probability maps, and a training run that
    "diverges".
    """
    if device.type != "cuda":
        return None
    with torch.cuda.device(device):
        # Without the flag, torch also says yes where bf16 is only emulated (slowly).
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return torch.bfloat16
        return torch.float16 if _has_tensor_cores(device) else None


def _has_tensor_cores(device: torch.device) -> bool:
    """Whether a GPU older than Ampere has tensor cores: every Volta (7.0, 7.2); of Turing
    (7.5), the RTX cards and the T4, not the GTX 16, MX, T400-T2000 (TU116, TU117)."""
    capability = torch.cuda.get_device_capability(device)
    if capability in ((7, 0), (7, 2)):
        return True
    name = torch.cuda.get_device_name(device)
    return capability == (7, 5) and ("RTX" in name or re.search(r"\bT4\b", name) is not None)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
