"""npe2 sample-data contribution: the synthetic tile scan as the reader would open it."""

from __future__ import annotations

from .io.layers import Channel, contrast_from_sample, to_layer_data
from .synthetic import make_tilescan


def make_sample_tilescan() -> list[tuple]:
    """Three tiles of touching cells: a GFP channel, brightfield, and the ground-truth mask."""
    scan = make_tilescan()
    channels = [
        Channel("GFP", scan.fluorescence, role="image", index=0),
        Channel("Brightfield", scan.brightfield, role="input", index=1),
        Channel("Mask (ground truth)", scan.labels, role="mask", index=2),
    ]
    for channel in channels:
        if channel.role != "mask":
            channel.contrast_limits = contrast_from_sample(channel.data[0], channel.data.dtype)
    size = scan.pixel_size_um
    return to_layer_data(
        channels,
        axis_labels=("P", "Y", "X"),
        scale=(1.0, size, size),
        units=("pixel", "µm", "µm"),
        source="synthetic tile scan (napari-cytomask sample)",
    )
