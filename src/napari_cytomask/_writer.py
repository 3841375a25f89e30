"""npe2 writer contribution: a thin adapter over :mod:`napari_cytomask.io.writers`."""

from __future__ import annotations

from typing import Any

from .io.writers import write_labels


class LabelsNotSaved(Exception):
    """Why a Labels layer could not be saved.

    Not a ``ValueError``: napari takes one from a writer for "this writer does not take
    this file" and shows that instead of the reason.
    """


def write_labels_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer; the extension picks TIFF, OME-TIFF, PNG or NumPy. A multiscale
    layer is saved at full resolution. An existing file is replaced (napari's save dialog
    has asked), once the new one is complete."""
    try:
        written = write_labels(
            path,
            data[0] if meta.get("multiscale") else data,
            scale=meta.get("scale"),
            units=meta.get("units"),
            axis_labels=meta.get("axis_labels"),
            overwrite=True,
        )
    except ValueError as err:
        raise LabelsNotSaved(str(err)) from err
    return [str(written)]
