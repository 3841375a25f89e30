"""How one channel of a scan becomes a napari layer: role, colour, contrast, metadata.

The reader, the sample data and the channel-roles widget all build layers here,
so a channel looks and behaves the same wherever it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Role = Literal["input", "image", "mask"]
ROLES: tuple[Role, ...] = ("input", "image", "mask")
#: Key under which every layer made by the plugin keeps its provenance in ``layer.metadata``.
METADATA_KEY = "cytomask"

_MASK_NAME = re.compile(r"mask|label|cellpose|segment|\bseg\b|instance|\bids?\b", re.I)
_TRANSMITTED_NAME = re.compile(
    r"bright\s*field|\bbf\b|phase|\bph\b|\bphc\b|\bdic\b|trans|\btl\b|\bgray\b|\bgrey\b", re.I
)
_NAMED_COLOURS = (
    (re.compile(r"dapi|hoechst|\bblue\b|405|bfp", re.I), "blue"),
    (re.compile(r"gfp|fitc|alexa\s*488|\b488\b|\bgreen\b|venus|yfp", re.I), "green"),
    (re.compile(r"cherry|rfp|tritc|dsred|\b561\b|\b555\b|\b594\b|\bred\b|cy3", re.I), "magenta"),
    (re.compile(r"cy5|\b640\b|\b647\b|far\s*red", re.I), "red"),
)
_CYCLE = ("green", "magenta", "cyan", "yellow", "red", "blue")


@dataclass
class Channel:
    """One channel of a scan, before it becomes a layer.

    Attributes
    ----------
    name
        Layer name (from the file's metadata, else ``C1`` … ``Cn``).
    data
        Array with the channel axis removed (numpy, dask, zarr), or a list of
        arrays, largest first, for a multiscale (pyramidal) channel.
    role
        ``"input"`` (the transmitted-light image to segment), ``"image"``
        (another intensity channel) or ``"mask"`` (integer ids: a Labels layer).
    index
        Position of the channel in the file.
    color
        Colormap name from the file's metadata, if it gives one.
    contrast_limits
        Display range for image channels.
    """

    name: str
    data: Any
    role: Role = "image"
    index: int = 0
    color: str | None = None
    contrast_limits: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def base(self):
        """The full-resolution array."""
        return self.data[0] if isinstance(self.data, list) else self.data


def looks_like_mask(name: str, sample: np.ndarray | None) -> bool:
    """Guess whether a channel holds label ids rather than intensities.

    A name such as *mask*, *labels* or *cellpose* decides; otherwise a small
    sample of the pixels must be integers with background 0 and flat regions
    (neighbouring pixels mostly equal), which no camera image has.
    """
    if _MASK_NAME.search(name):
        return True
    if sample is None or sample.size < 16 or not np.issubdtype(sample.dtype, np.integer):
        return False
    sample = np.asarray(sample)
    if sample.min() != 0 or sample.max() == 0:
        return False
    flat = np.mean(sample[..., 1:] == sample[..., :-1])
    background = np.mean(sample == 0)
    return bool(flat > 0.9 and background > 0.05)


def guess_roles(channels: list[Channel], samples: list[np.ndarray | None]) -> None:
    """Assign a role to every channel in place.

    Masks are found by :func:`looks_like_mask`. The input channel is the first
    one named like transmitted light (brightfield, phase, DIC); without such a
    name, a file with a single non-mask channel uses that one.
    """
    for channel, sample in zip(channels, samples, strict=True):
        channel.role = "mask" if looks_like_mask(channel.name, sample) else "image"
    images = [c for c in channels if c.role == "image"]
    named = [c for c in images if _TRANSMITTED_NAME.search(c.name)]
    if named:
        named[0].role = "input"
    elif len(images) == 1:
        images[0].role = "input"


def colormap_for(channel: Channel, position: int) -> str:
    """Colormap of an image channel: the file's colour, gray for transmitted light, else by dye."""
    if channel.color:
        return channel.color
    if channel.role == "input" or _TRANSMITTED_NAME.search(channel.name):
        return "gray"
    for pattern, colour in _NAMED_COLOURS:
        if pattern.search(channel.name):
            return colour
    return _CYCLE[position % len(_CYCLE)]


def contrast_from_sample(sample: np.ndarray | None, dtype: np.dtype) -> tuple[float, float] | None:
    """Display range from the 0.1 and 99.9 percentiles of a pixel sample.

    Falls back to the dtype's range when the sample is flat or missing, so a
    layer never opens with an empty range.
    """
    if sample is not None and sample.size:
        if sample.dtype.kind == "b":  # bilevel (1-bit) images; percentiles take no booleans
            sample = sample.view(np.uint8)
        low, high = np.percentile(sample, (0.1, 99.9))
        if high > low:
            return float(low), float(high)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if np.dtype(dtype).kind == "b":
        return 0.0, 1.0
    return None


def to_layer_data(
    channels: list[Channel],
    *,
    axis_labels: tuple[str, ...],
    scale: tuple[float, ...] | None = None,
    units: tuple[str, ...] | None = None,
    translate: tuple[float, ...] | None = None,
    source: str | None = None,
    extra_metadata: dict | None = None,
) -> list[tuple]:
    """napari layer data tuples, one per channel: images as Image, masks as Labels.

    Every layer carries ``metadata["cytomask"]`` with its source file, channel
    index, name, role and axes, which later widgets use to find the input and
    mask channels of a scan.
    """
    layers = []
    image_position = 0
    for channel in channels:
        meta = {
            "source": source,
            "channel_index": channel.index,
            "channel_name": channel.name,
            "role": channel.role,
            "axes": "".join(axis_labels),
            **(extra_metadata or {}),
            **channel.extra,
        }
        kwargs: dict[str, Any] = {
            "name": channel.name,
            "axis_labels": axis_labels,
            "metadata": {METADATA_KEY: meta},
        }
        if isinstance(channel.data, list) and len(channel.data) > 1:
            kwargs["multiscale"] = True
        data = channel.data
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if scale is not None:
            kwargs["scale"] = scale
        if units is not None:
            kwargs["units"] = units
        if translate is not None:
            kwargs["translate"] = translate
        if channel.role == "mask":
            layers.append((data, kwargs, "labels"))
            continue
        kwargs["colormap"] = colormap_for(channel, image_position)
        kwargs["blending"] = "translucent_no_depth" if image_position == 0 else "additive"
        if channel.contrast_limits is not None:
            kwargs["contrast_limits"] = channel.contrast_limits
        image_position += 1
        layers.append((data, kwargs, "image"))
    return layers
