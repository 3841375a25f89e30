"""npe2 reader command: TIFF tile scans and OME-Zarr images as one layer per channel.

A thin adapter over :func:`napari_cytomask.io.files.open_scan`, so a file opens in
napari as the command line and training read it. It is the plugin's only reader,
so a file opens the same way in every process; stitching a tile scan is
a separate action (*File > IO Utilities > Open tile scan as mosaic…*,
:mod:`napari_cytomask._qt.open_mosaic`). :func:`get_reader` never raises: it
returns ``None`` for anything it cannot read so napari tries another reader. A
file accepted here but unreadable raises
:class:`~napari_cytomask.io.tiff.TiffReadError` (an OME-Zarr store
:class:`~napari_cytomask.io.files.ImageReadError`) from the returned reader, naming
the file and the problem, and napari shows it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .io.files import (
    ImageReadError,
    beyond_memory,
    in_memory,
    is_ome_zarr,
    open_scan,
    room_for_masks,
    with_channel_named,
)
from .io.layers import METADATA_KEY, Scan, as_written, can_be_labels, named_as_masks
from .io.tiff import LayerData, file_stem, is_tiff, named_like_tiff, read_tiff_stack

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]


def _paths(path: PathOrPaths) -> list[str]:
    if isinstance(path, str | os.PathLike):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


def _read(path: PathOrPaths) -> list[LayerData]:
    """A file's layers, or a list of TIFFs as one stack: npe2 gives a reader a list only
    for napari's *Open Files as Stack* (otherwise one path at a time). An exported result
    opens as the result of its scan (:func:`~napari_cytomask.io.export.reopened_result`),
    where it lay beside the scan when it was exported (its translate).

    Paths are made absolute: napari passes them as typed (``napari a/raw.tif``), and the
    layers, their results and every provenance written from them name their file, found
    again from any folder.

    A file's mask channels open in memory, up to
    :func:`~napari_cytomask.io.files.room_for_masks` bytes in all, as napari's own reader
    opens labels."""
    from .io.export import located_source  # about 1 s to import

    paths = [os.path.abspath(p) for p in _paths(path)]
    if len(paths) > 1:
        return read_tiff_stack(paths)
    scan = open_scan(paths[0])
    record = _exported(scan)
    layers = scan.layer_data()
    _check_planes_fit(layers, paths[0])
    room = room_for_masks()
    for i, (data, kwargs, kind) in enumerate(layers):
        if kind == "labels" and not isinstance(data, list) and data.nbytes <= room:
            layers[i], room = (in_memory(data), kwargs, kind), room - data.nbytes
    if record:
        ((data, kwargs, kind),) = layers
        # In memory, as a step's result is: painting into it is then seen as an edit.
        data = np.asarray(data)
        record = with_channel_named(located_source(record, Path(paths[0])))
        # Where it lay beside its scan (a plain TIFF cannot say): placed there again.
        translate = record.pop("translate")
        placed = {} if translate is None else {"translate": tuple(translate)}
        info = {**kwargs["metadata"][METADATA_KEY], **record, "written": as_written(data)}
        layers = [(data, {**kwargs, **placed, "metadata": {METADATA_KEY: info}}, kind)]
    return layers


def _tiffs_in(folder: str) -> list[str]:
    """The TIFF files directly in ``folder`` (named like TIFFs, and starting as one),
    sorted; none for a file. Its other files (tables, provenance, a PNG of labels beside
    its image, a file that only has a TIFF's name) are left out."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # not a folder, or one that cannot be read: opened as no TIFF folder
        return []
    paths = [os.path.join(folder, name) for name in names]
    return [path for path in paths if named_like_tiff(path) and is_tiff(path)]


def _folder_reader(files: list[str]) -> ReaderFunction:
    """The reader of a folder holding the TIFF ``files``: one stack, a plane per file, as
    napari's own reader opens a folder (and *Open Files as Stack*); one TIFF as that
    file. In napari's dialog for a folder this reader was chosen first, and a folder of
    TIFFs was refused. The files are those found when the reader was chosen: the folder
    is not listed, nor each file's start read, a second time.

    A folder of results (``cytomask segment``'s or an export's, their records beside
    them) opens each file as it opens alone: results of different scans were one stack,
    of no scan, taken for a ground truth. So does a folder of images beside their masks
    (named ``…_masks`` as Cellpose saves them), which was one image stack."""

    def read(_folder) -> list[LayerData]:
        from .io.export import has_record

        masks = {named_as_masks(file_stem(path)) for path in files}
        if len(files) > 1 and (len(masks) > 1 or any(has_record(path) for path in files)):
            return [layer for path in files for layer in _read(path)]
        return _read(files if len(files) > 1 else files[0])

    return read


def _check_planes_fit(layers: list[LayerData], path: str) -> None:
    """Refuse a file whose plane cannot fit in memory: napari reads a whole plane of a
    layer without a resolution pyramid to show it, and the system would end napari, and
    the work in it, on the first look. An OME-Zarr store whose metadata were changed
    (one of 64 x 64 pixels said to be 10⁹ x 10⁹) read so."""
    for data, kwargs, _ in layers:
        if isinstance(data, list):  # a pyramid: napari shows the level that fits the view
            continue
        plane = data.shape[-3:] if kwargs.get("rgb") else data.shape[-2:]
        too_large = beyond_memory(plane, data.dtype)
        if too_large:
            raise ImageReadError(
                f"Cannot open {path} in napari: a plane of it is {too_large}, and napari "
                "reads a whole plane to show it. If the file is not damaged, segment it with "
                "cytomask segment, which reads large images chunk by chunk."
            )


def _exported(scan: Scan) -> dict:
    """The record of the result an export wrote to ``scan``'s file
    (:func:`~napari_cytomask.io.export.reopened_result`), or {}. Its one channel is then
    labels, whatever its ids look like: a field a result covers whole has no background,
    and would open as an image."""
    from .io.export import reopened_result

    (channel, *others) = scan.channels
    # Exports write one full-resolution array of ids: a pyramid's levels are no export.
    levels = channel.data if isinstance(channel.data, list) else [channel.data]
    if others or len(levels) > 1 or not can_be_labels(channel.base.dtype, rgb=scan.rgb):
        return {}
    record = reopened_result(scan.path, channel.base)
    if record:
        channel.role = "mask"
    return record


def get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Reader for TIFF files and OME-Zarr images: one layer per channel, tiles on a
    position axis.

    Parameters
    ----------
    path
        A path or a list of paths.

    Returns
    -------
    callable or None
        A function returning napari layer data tuples, or ``None`` unless every
        path is a file starting with a TIFF signature or named like a TIFF (a TIFF this
        user may not read, or, alone, a picture of another kind renamed: its reader reads
        it or says why not), or the path is one OME-Zarr store or a folder holding TIFF
        files.
    """
    try:
        paths = _paths(path)
    except TypeError:
        return None
    # npe2 offers the reader every folder: an image's store is taken, and a folder of
    # TIFFs; napari's own reader keeps other folders (and plain Zarr arrays).
    if len(paths) == 1 and is_ome_zarr(Path(paths[0])):
        return _read
    if len(paths) == 1 and (files := _tiffs_in(os.path.abspath(paths[0]))):
        return _folder_reader(files)

    # A file named like a TIFF is taken whatever it holds: its reader reads a picture of
    # another kind renamed (a PNG), or says why it cannot be opened (no permission, no
    # image), where napari's "refused the file" said nothing. Files stacked are read as
    # TIFFs: only TIFFs are taken, and ones this user may not read (said so).
    def taken(path: str) -> bool:
        return named_like_tiff(path) and (len(paths) == 1 or not os.access(path, os.R_OK))

    if not paths or not all(is_tiff(p) or taken(p) for p in paths):
        return None
    return _read
