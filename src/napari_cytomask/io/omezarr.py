"""Label images larger than memory as OME-Zarr (NGFF 0.4) stores, written chunk by chunk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .layers import length_symbol, time_step

SUFFIX = ".ome.zarr"

#: NGFF's names (those of UDUNITS-2) of the length units, by the symbols files use.
_LENGTH_UNITS = {
    "nm": "nanometer",
    "µm": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}
_TYPES = {"y": "space", "x": "space", "z": "space", "t": "time", "c": "channel"}


def create_labels(
    path: str | os.PathLike,
    shape: Sequence[int],
    *,
    chunks: int = 2048,
    name: str | None = None,
    scale: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    axis_labels: Sequence[str] | None = None,
    dtype=np.uint32,
):
    """An empty OME-Zarr image with one full-resolution label array; returns that array.

    Parameters
    ----------
    path
        The store folder to create.
    shape
        ``(*leading, Y, X)``.
    chunks
        Chunk size along Y and X; leading axes get chunks of 1.
    name
        The image's name (default: the store's, without its suffix). A store filled under
        a temporary name, to be moved into place, takes the name of the one it becomes.
    scale, units, axis_labels
        Per-axis pixel size, unit names and axis names, as
        :func:`~napari_cytomask.io.writers.write_labels` takes them (default: pixels, and
        ``p``/``t``… for leading axes, then ``y``, ``x``).
    dtype
        Integer dtype of the ids.
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    if axis_labels is not None:
        names = [str(a).lower() for a in axis_labels]
    else:
        names = [*"ptzc"[: len(shape) - 2], "y", "x"]
    for what, values in (("axis names", names), ("scale", scale), ("units", units)):
        if values is not None and len(values) != len(shape):
            raise ValueError(f"{len(values)} {what} for an image with {len(shape)} axes.")
    axes, sizes = _axes(names, scale, units)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": name if name is not None else Path(path).name.removesuffix(SUFFIX),
            "axes": axes,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": sizes}]}
            ],
        }
    ]
    group.attrs["image-label"] = {"version": "0.4"}
    chunk_shape = (1,) * (len(shape) - 2) + tuple(min(chunks, s) for s in shape[-2:])
    return group.create_array(
        "0",
        shape=shape,
        chunks=chunk_shape,
        dtype=dtype,
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )


def _axes(names: list[str], scale, units) -> tuple[list[dict], list[float]]:
    """NGFF axes and their scale: lengths in the unit given, the time between time points
    in seconds (as the TIFF writers keep them), other axes without a unit. A flipped
    layer's negative scale is positive here, since a pixel size has no direction."""
    sizes = [1.0] * len(names) if scale is None else [abs(float(s)) for s in scale]
    step = time_step(names, sizes, units)
    axes = []
    for i, name in enumerate(names):
        axis = {"name": name, **({"type": _TYPES[name]} if name in _TYPES else {})}
        if step is not None and step[0] == i:
            sizes[i], axis["unit"] = step[1], "second"
        elif units is not None and axis.get("type") == "space":
            unit = _LENGTH_UNITS.get(length_symbol(units[i]))
            if unit is not None:  # pixels have no unit
                axis["unit"] = unit
        axes.append(axis)
    return axes, sizes


def open_labels(path: str | os.PathLike):
    """The full-resolution array of an OME-Zarr label image written by :func:`create_labels`."""
    import zarr

    return zarr.open_group(str(path), mode="r")["0"]
