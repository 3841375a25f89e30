"""npe2 writer contribution: a thin adapter over :mod:`napari_cytomask.io.writers`."""

from __future__ import annotations

from typing import Any

from .io.writers import write_labels


def write_labels_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer; the extension picks TIFF, OME-TIFF, PNG or NumPy. A multiscale
    layer is saved at full resolution."""
    written = write_labels(
        path,
        data[0] if meta.get("multiscale") else data,
        scale=meta.get("scale"),
        units=meta.get("units"),
        axis_labels=meta.get("axis_labels"),
    )
    return [str(written)]
