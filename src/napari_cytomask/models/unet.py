"""U-Net family networks (built by segmentation-models-pytorch) and their input normalisation.

The network is described by a :class:`UNetConfig`, which a checkpoint stores as
JSON, so the same network can be rebuilt from a file without any code. Input
images are normalised per channel by percentiles, which copes with the
saturated halos of phase-contrast and brightfield images.
"""

from __future__ import annotations

import math
import numbers
import socket
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

#: Architecture name -> segmentation-models-pytorch class name.
ARCHITECTURES = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "linknet": "Linknet",
}

#: Output targets -> names of the classes the network predicts (softmax over them).
TARGETS = {
    "interior_boundary": ("background", "interior", "boundary"),
    "foreground": ("background", "foreground"),
}

#: Default decoder widths of a depth-5 U-Net; shallower encoders take the last ones, so
#: the full-resolution stage stays narrow (it dominates the cost).
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)

# Hugging Face hosts the encoder weights; a quick reachability check avoids long retries.
_WEIGHTS_HOST = ("huggingface.co", 443)


@dataclass
class UNetConfig:
    """Everything needed to rebuild a network and prepare its input.

    Attributes
    ----------
    architecture
        One of :data:`ARCHITECTURES`.
    encoder
        A segmentation-models-pytorch encoder name (``resnet18``, ``resnet34``,
        ``efficientnet-b3``, ``tu-...`` timm encoders, ...).
    encoder_depth
        Number of encoder stages (3 to 5); shallower networks are faster.
    decoder_channels
        Decoder widths, one per stage; empty for the defaults.
    in_channels
        Number of input channels (image layers stacked in order).
    targets
        ``"interior_boundary"`` (3 classes) or ``"foreground"`` (2 classes).
    percentiles
        Low and high percentile mapped to 0 and 1, per image and channel.
    tile_size
        Tile (and training crop) size in pixels.
    """

    architecture: str = "unet"
    encoder: str = "resnet34"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = field(default_factory=tuple)
    in_channels: int = 1
    targets: str = "interior_boundary"
    percentiles: tuple[float, float] = (1.0, 99.8)
    tile_size: int = 256

    def __post_init__(self) -> None:
        for name in ("encoder_depth", "in_channels", "tile_size"):
            _check_whole(name, getattr(self, name))
        if not isinstance(self.decoder_channels, (list, tuple)):
            raise ValueError(
                f"decoder_channels is {self.decoder_channels!r}, not a list of whole numbers."
            )
        for width in self.decoder_channels:
            _check_whole("decoder_channels", width)
        if not (
            isinstance(self.percentiles, (list, tuple))
            and len(self.percentiles) == 2
            and all(is_number(p) for p in self.percentiles)
        ):
            raise ValueError(f"percentiles are {self.percentiles!r}, not two numbers (low, high).")
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        self.percentiles = tuple(float(p) for p in self.percentiles)
        self.validate()

    @property
    def classes(self) -> tuple[str, ...]:
        """Names of the output classes."""
        return TARGETS[self.targets]

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (the encoder's total downsampling)."""
        return 2**self.encoder_depth

    def decoder(self) -> tuple[int, ...]:
        """The decoder widths actually used."""
        return self.decoder_channels or DEFAULT_DECODER_CHANNELS[5 - self.encoder_depth :]

    def validate(self) -> None:
        """Raise :class:`ValueError` with a clear message for impossible settings."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; this version of napari-cytomask "
                f"knows {sorted(ARCHITECTURES)}. Update the plugin or pick another model."
            )
        if self.targets not in TARGETS:
            raise ValueError(f"unknown targets {self.targets!r}; use one of {sorted(TARGETS)}.")
        if not 3 <= self.encoder_depth <= 5:
            raise ValueError(f"encoder_depth must be 3, 4 or 5 (got {self.encoder_depth}).")
        if self.decoder_channels and len(self.decoder_channels) != self.encoder_depth:
            raise ValueError(
                f"give one decoder width per encoder stage ({self.encoder_depth}), "
                f"got {len(self.decoder_channels)}."
            )
        if self.in_channels < 1:
            raise ValueError(f"a model needs at least one input channel (got {self.in_channels}).")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(
                f"percentiles must satisfy 0 <= low < high <= 100 (got {low}, {high})."
            )
        if self.tile_size < self.size_multiple or self.tile_size % self.size_multiple:
            raise ValueError(
                f"tile size {self.tile_size} must be a positive multiple of {self.size_multiple} "
                f"for an encoder of depth {self.encoder_depth}."
            )

    def to_dict(self) -> dict:
        """JSON-ready description."""
        data = asdict(self)
        data["decoder_channels"] = list(self.decoder())
        data["percentiles"] = list(self.percentiles)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        """Rebuild from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def is_number(value) -> bool:
    """Whether ``value`` is a real number (not True or False), as a description read from
    a file must hold where it gives one (written by hand or damaged, it may hold anything)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_whole(value) -> bool:
    """Whether ``value`` is a whole number (not True or False), see :func:`is_number`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_whole(name: str, value) -> None:
    """Raise :class:`ValueError` unless ``value`` is a whole number (:func:`is_whole`)."""
    if not is_whole(value):
        raise ValueError(f"{name} is {value!r}, not a whole number.")


def build_model(
    config: UNetConfig, encoder_weights: str | None = None, *, timeout: float = 3.0
) -> tuple[nn.Module, str | None]:
    """Build the network of ``config``.

    Parameters
    ----------
    config
        The network description.
    encoder_weights
        ``"imagenet"`` to start from pretrained encoder weights when they are
        cached or can be downloaded, ``None`` for random initialisation.
    timeout
        Seconds to wait for the weights server before falling back to random
        initialisation.

    Returns
    -------
    model : torch.nn.Module
        The network, in training mode, on the CPU.
    notice : str or None
        A sentence for the user when pretrained weights were asked for but could
        not be used, else ``None``.
    """
    import segmentation_models_pytorch as smp

    cls = getattr(smp, ARCHITECTURES[config.architecture])
    kwargs = {
        "encoder_name": config.encoder,
        "encoder_depth": config.encoder_depth,
        "in_channels": config.in_channels,
        "classes": len(config.classes),
    }
    if config.architecture in ("unet", "unetplusplus"):
        kwargs["decoder_channels"] = config.decoder()
    notice = None
    weights = encoder_weights
    if weights is not None and not pretrained_weights_reachable(config.encoder, weights, timeout):
        notice = (
            f"Pretrained {weights} weights for encoder {config.encoder!r} are not cached and "
            "cannot be downloaded (no network), so the encoder starts from random weights; "
            "training takes longer."
        )
        weights = None
    if config.encoder.startswith("tu-"):
        import timm

        if not timm.is_model(config.encoder[3:]):  # timm's own error names no setting
            raise ValueError(
                f"unknown encoder {config.encoder!r}: timm has no model "
                f"{config.encoder[3:]!r}; 'tu-' is followed by a timm model name such as "
                "'resnet18' or 'resnet10t'."
            )
        if weights is not None:
            weights = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = cls(encoder_weights=weights, **kwargs)
    except KeyError as err:
        raise ValueError(
            f"unknown encoder {config.encoder!r}; use a segmentation-models-pytorch encoder "
            "name such as 'resnet18', 'resnet34' or 'efficientnet-b3'."
        ) from err
    except (OSError, RuntimeError) as err:
        if weights is None:
            raise
        notice = (
            f"Could not load pretrained weights for encoder {config.encoder!r} ({err}); "
            "the encoder starts from random weights."
        )
        model = cls(encoder_weights=None, **kwargs)
    for prefix in unused_weight_prefixes(config):
        setattr(model.encoder, prefix.split(".")[1], nn.Identity())
    return model, notice


def unused_weight_prefixes(config: UNetConfig) -> tuple[str, ...]:
    """Name prefixes of the encoder weights that a network of this depth never uses.

    segmentation-models-pytorch keeps every stage of a ResNet encoder whatever its
    depth, so a depth-4 resnet18 would carry its last stage (8.4 M weights, 70 % of the
    network) unused. :func:`build_model` leaves such stages out, and checkpoints written
    with them still load (:func:`~napari_cytomask.models.checkpoint.load_checkpoint`
    drops them).
    """
    from segmentation_models_pytorch.encoders import encoders
    from segmentation_models_pytorch.encoders.resnet import ResNetEncoder

    if encoders.get(config.encoder, {}).get("encoder") is not ResNetEncoder:
        return ()
    # Stage k (layer1 to layer4) runs from depth k + 1 on.
    return tuple(f"encoder.layer{k}." for k in range(max(config.encoder_depth, 1), 5))


def pretrained_weights_reachable(encoder: str, weights: str = "imagenet", timeout: float = 3.0):
    """Whether pretrained encoder weights are in the local cache or the server answers.

    Parameters
    ----------
    encoder
        Encoder name.
    weights
        Name of the pretrained weights (``"imagenet"``).
    timeout
        Seconds to wait for a connection to the weights server.

    Returns
    -------
    bool
    """
    if not encoder.startswith("tu-"):
        try:
            from huggingface_hub import hf_hub_download
            from segmentation_models_pytorch.encoders import encoders

            settings = encoders[encoder]["pretrained_settings"][weights]
            hf_hub_download(
                settings["repo_id"],
                filename="model.safetensors",
                revision=settings["revision"],
                local_files_only=True,
            )
            return True
        except KeyError:
            # Unknown encoder or weights: let the model builder report it.
            return True
        except Exception:  # noqa: BLE001 - not cached: try the network below
            pass
    try:
        with socket.create_connection(_WEIGHTS_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def percentile_range(
    image, low: float, high: float, *, max_samples: int = 1 << 22
) -> tuple[float, float]:
    """Intensities at the ``low`` and ``high`` percentiles of a 2D image.

    Large (possibly lazy) images are sampled on a regular grid of at most
    ``max_samples`` pixels, so a tile scan larger than memory is read sparsely.

    Parameters
    ----------
    image
        2D array-like (numpy, dask, zarr).
    low, high
        Percentiles in [0, 100].
    max_samples
        Largest number of pixels read.

    Returns
    -------
    tuple of float
    """
    height, width = image.shape[-2:]
    step = max(1, math.ceil(math.sqrt(height * width / max_samples)))
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, (low, high))
    return float(lo), float(hi)


def normalise(image, lo: float, hi: float) -> np.ndarray:
    """Map ``lo`` to 0 and ``hi`` to 1 (float32); a flat image becomes zeros.

    Pixels that are not finite (NaN, ±inf: dropped frames, saturated or masked
    pixels in float files) carry no intensity, so they become 0 like the dark end
    of the range instead of turning the network's output into NaN.
    """
    out = np.asarray(image, dtype=np.float32) - np.float32(lo)
    scale = hi - lo
    if scale > 0:
        out /= np.float32(scale)
    else:
        out[...] = 0
    out[~np.isfinite(out)] = 0
    return out


def normalise_channels(channels: Sequence, percentiles: Sequence[float]) -> np.ndarray:
    """Stack 2D channels into a ``(C, Y, X)`` float32 array normalised by percentiles."""
    low, high = percentiles
    return np.stack([normalise(ch, *percentile_range(ch, low, high)) for ch in channels])


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device
