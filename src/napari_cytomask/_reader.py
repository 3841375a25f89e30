"""npe2 reader commands: TIFF tile scans as one layer per channel, or as a mosaic.

Thin adapters over :mod:`napari_cytomask.io.tiff`. The ``get_*`` functions never
raise: they return ``None`` for anything they cannot read so napari tries another
reader. A TIFF accepted here but unreadable raises
:class:`~napari_cytomask.io.tiff.TiffReadError` from the returned reader, naming
the file and the problem, and napari shows it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

from .io.tiff import LayerData, TiffReadError, describe_tiff, is_tiff, read_tiff

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]


def _paths(path: PathOrPaths) -> list[str]:
    if isinstance(path, str | os.PathLike):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


def _read(path: PathOrPaths, *, mosaic: bool) -> list[LayerData]:
    layers: list[LayerData] = []
    for one in _paths(path):
        layers.extend(read_tiff(one, mosaic=mosaic))
    return layers


def get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Reader for TIFF files: one layer per channel, tiles on a position axis.

    Parameters
    ----------
    path
        A path or a list of paths.

    Returns
    -------
    callable or None
        A function returning napari layer data tuples, or ``None`` unless every
        path is a file starting with a TIFF signature.
    """
    try:
        paths = _paths(path)
    except TypeError:
        return None
    if not paths or not all(is_tiff(p) for p in paths):
        return None
    return partial(_read, mosaic=False)


def get_mosaic_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Reader that stitches a tile scan into one mosaic per channel.

    Parameters
    ----------
    path
        A path or a list of paths.

    Returns
    -------
    callable or None
        A function returning one stitched layer per channel, or ``None`` unless
        every path is a TIFF whose metadata gives several stage positions and a
        pixel size.
    """
    if get_reader(path) is None:
        return None
    for one in _paths(path):
        try:
            if not describe_tiff(one).can_mosaic:
                return None
        except TiffReadError:
            return None
    return partial(_read, mosaic=True)
