"""Label images larger than memory as OME-Zarr (NGFF 0.4) stores, written chunk by chunk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SUFFIX = ".ome.zarr"


def create_labels(
    path: str | os.PathLike,
    shape: Sequence[int],
    *,
    chunks: int = 2048,
    axes: Sequence[str] | None = None,
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
    axes
        Axis names (default ``p``/``t``… for leading axes, then ``y``, ``x``).
    dtype
        Integer dtype of the ids.
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    names = list(axes) if axes is not None else [*"ptzc"[: len(shape) - 2], "y", "x"]
    if len(names) != len(shape):
        raise ValueError(f"{len(names)} axis names for an image with {len(shape)} axes.")
    types = {"y": "space", "x": "space", "z": "space", "t": "time", "c": "channel"}
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": Path(path).name.removesuffix(SUFFIX),
            "axes": [
                {"name": n, **({"type": types[n]} if n in types else {})} for n in names
            ],
            "datasets": [
                {"path": "0", "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0] * len(shape)}
                ]}
            ],
        }
    ]  # fmt: skip
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


def open_labels(path: str | os.PathLike):
    """The full-resolution array of an OME-Zarr label image written by :func:`create_labels`."""
    import zarr

    return zarr.open_group(str(path), mode="r")["0"]
