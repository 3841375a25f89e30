"""npe2 sample-data contributions: a real phase-contrast scan and the synthetic tile scan."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .io.layers import Channel, contrast_from_sample, to_layer_data
from .io.tiff import read_tiff
from .synthetic import make_tilescan

#: The real sample scan shipped in the package.
SAMPLE_SCAN = "usiigaci-sample.ome.tif"

#: The installed package, which holds the sample scan: no folder to write results into.
PACKAGE = Path(__file__).resolve().parent


def in_package(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (links followed) is the installed package's folder or one in it."""
    folder = Path(folder).resolve()
    return folder == PACKAGE or PACKAGE in folder.parents


def sample_scan_path() -> str:
    """The real sample scan's file inside the installed package."""
    return str(resources.files("napari_cytomask") / "resources" / SAMPLE_SCAN)


def make_sample_phase_contrast() -> list[tuple]:
    """Four fields of real phase-contrast cells with their hand-drawn masks.

    Usiigaci images (Tsai et al. 2019, MIT licence) from the starter model's test
    split, opened by the plugin's own reader: a phase-contrast channel and a mask
    channel, the fields on a position axis ``P``. The mask opens hidden: shown, it looked
    like a segmentation already made, and the model's cells, drawn over it in the same
    colours, could not be told from it (the metrics step compares them).
    """
    layers = read_tiff(sample_scan_path())
    return [
        (data, {**kwargs, "visible": False} if kind == "labels" else kwargs, kind)
        for data, kwargs, kind in layers
    ]


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
