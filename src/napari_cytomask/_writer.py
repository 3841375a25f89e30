"""npe2 writer contribution: a thin adapter over :mod:`napari_cytomask.io.writers`."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .io.atomic import reason, same_file
from .io.files import ScanPositions
from .io.layers import is_result, layer_info
from .io.writers import write_labels
from .progress import one_line


class LabelsNotSaved(Exception):
    """Why a Labels layer could not be saved.

    Not a ``ValueError``: napari takes one from a writer for "this writer does not take
    this file" and shows that instead of the reason.
    """


def write_labels_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer; the extension picks TIFF, OME-TIFF, PNG or NumPy. A multiscale
    layer is saved at full resolution. An existing file is replaced (napari's save dialog
    has asked), once the new one is complete.

    A result of the plugin gets its provenance beside it, as the export writes it
    (:func:`~napari_cytomask.io.export.save_provenance`): opened again, it is the result
    of its scan, with the frames that were made, where it lay beside the scan (an OME-TIFF
    also holds that as its position), not a mask of a file of its own. A name
    that leaves no room for the provenance's is refused before anything is written. A
    name without an ending (napari's dialog fills in the layer's name) is saved as TIFF,
    as napari's own writer saves it."""
    if not Path(path).suffix:
        path = f"{path}.tif"
    labels = data[0] if meta.get("multiscale") else data
    layer = SimpleNamespace(**{**meta, "data": labels, "multiscale": False})
    result = is_result(layer)
    lost = _replaces_its_scan(path, layer)
    if lost:
        raise LabelsNotSaved(f"{lost} Choose another name; nothing was written.")
    export, where = None, ScanPositions()
    try:
        if result:
            from .io.export import check_provenance_name, from_layer, scan_positions

            check_provenance_name(Path(path))
            export = from_layer(layer)
            where = scan_positions(export)
        written = write_labels(
            path,
            labels,
            scale=meta.get("scale"),
            units=meta.get("units"),
            axis_labels=meta.get("axis_labels"),
            translate=meta.get("translate"),
            positions=where.stage,
            position_names=where.names,
            overwrite=True,
            note=said_in_napari,
        )
    except ValueError as err:
        raise LabelsNotSaved(str(err)) from err
    if export is None:
        return [str(written)]
    from .io.export import provenance_beside, save_provenance

    try:
        record = save_provenance(export, written)
    except OSError as err:  # a disk full after the labels: they were written, say so
        raise LabelsNotSaved(
            f"{written.name} was saved, but its provenance {provenance_beside(written).name} "
            f"could not be ({reason(err)}): it opens as labels of its own, without "
            "the scan and settings that made them. Save again once that is mended."
        ) from err
    return [str(written)] + ([str(record)] if record else [])


def said_in_napari(note: str) -> None:
    """A note on a file saved (ids Fiji would round, or not open) shown in napari's window,
    by File > Save and the Export dock alike: the Save dialog keeps a writer's warnings only
    to explain a save that failed, so a warning of one that succeeded was never seen, and
    the dock's status cut it off below its few lines. Without a window that shows napari's
    notifications (a script), a warning."""
    from napari.utils.notifications import notification_manager, show_warning

    if notification_manager.notification_ready.callbacks:
        show_warning(note)
    else:
        warnings.warn(note, UserWarning, stacklevel=3)


def _replaces_its_scan(path: str, layer) -> str | None:
    """Why saving ``layer`` at ``path`` would replace the scan it belongs to (napari's
    dialog asks only whether to replace a file): the scan a result was computed from, or
    a scan of which the layer is one channel of several. None where it would not."""
    if not same_file(layer_info(layer).get("source"), path):
        return None
    name = Path(path).name
    if is_result(layer):
        return (
            f"{name} is the scan these cells were computed from: saving them there would "
            "replace its images with the labels."
        )
    from .io.files import open_scan  # about 1 s to import

    if not Path(path).exists():
        return None  # moved or deleted since it was opened: nothing there to replace
    try:
        with open_scan(path) as scan:
            others = len(scan.channels) - 1
    except Exception as err:  # noqa: BLE001 - said: it may hold other channels
        return (
            f"{name} is the file this mask was opened from, and it cannot be read now to "
            f"check that it holds no other channel of its scan ({one_line(err)})."
        )
    if others < 1:
        return None  # the mask's own file: File > Save replaces it, as asked
    return (
        f"{name} holds this mask and {others} other channel{'s' * (others > 1)} of its scan: "
        "saving the layer there would replace them all with its labels."
    )
