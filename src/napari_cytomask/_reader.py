"""npe2 reader command: TIFF tile scans as one layer per channel.

A thin adapter over :mod:`napari_cytomask.io.tiff`. It is the plugin's only
reader, so a file opens the same way in every process; stitching a tile scan is
a separate action (*File > IO Utilities > Open tile scan as mosaic…*,
:mod:`napari_cytomask._qt.open_mosaic`). :func:`get_reader` never raises: it
returns ``None`` for anything it cannot read so napari tries another reader. A
TIFF accepted here but unreadable raises
:class:`~napari_cytomask.io.tiff.TiffReadError` from the returned reader, naming
the file and the problem, and napari shows it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .io.tiff import LayerData, is_tiff, is_unreadable_tiff, read_tiff, read_tiff_stack

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]


def _paths(path: PathOrPaths) -> list[str]:
    if isinstance(path, str | os.PathLike):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


def _read(path: PathOrPaths) -> list[LayerData]:
    """A file's layers, or a list of files as one stack: npe2 gives a reader a list only
    for napari's *Open Files as Stack* (otherwise one path at a time)."""
    paths = _paths(path)
    return read_tiff(paths[0]) if len(paths) == 1 else read_tiff_stack(paths)


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
        path is a file starting with a TIFF signature (or a TIFF this user may not read,
        whose reader says so).
    """
    try:
        paths = _paths(path)
    except TypeError:
        return None
    # An unreadable TIFF is taken, so that its reader says why it cannot be opened.
    if not paths or not all(is_tiff(p) or is_unreadable_tiff(p) for p in paths):
        return None
    return _read
