"""*File > IO Utilities > Open tile scan as mosaic…*: stitch a scan's tiles by stage position.

Opening a file goes through the plugin's one reader (one layer per channel, tiles
on a position slider). Stitching is a separate action a user chooses on purpose,
so the same file never opens one way in one process and another way in the next.
"""

from __future__ import annotations

import os

import napari
from napari.layers import Layer
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QFileDialog

from ..io.files import beyond_memory
from ..io.tiff import TIFF_SUFFIXES, MosaicUnavailable, TiffReadError, read_tiff

#: The file dialog's filter: every TIFF the plugin reads.
FILE_FILTER = "TIFF tile scans ({});;All files (*)".format(
    " ".join(f"*{suffix}" for suffix in TIFF_SUFFIXES)
)


def open_mosaic(viewer: napari.Viewer, path: str | os.PathLike | None = None) -> list[Layer]:
    """Open a TIFF tile scan as one stitched mosaic per channel.

    Tiles are placed by the stage positions and pixel size in the file's
    metadata. napari reads a whole stitched plane of each channel to show it (seconds for
    a scan of twenty 2048 x 2048 tiles, under a busy cursor); a scan whose planes would
    not fit in memory is refused.

    Parameters
    ----------
    viewer
        The viewer to add the layers to (napari passes it from the menu).
    path
        The file; ``None`` asks for it with a file dialog.

    Returns
    -------
    list of Layer
        The layers added; empty when the dialog was cancelled or the file
        cannot be stitched (the user is told why).
    """
    if path is None:
        # The active window (napari's) as the parent: plugins may not reach into napari's Qt.
        path, _ = QFileDialog.getOpenFileName(
            QApplication.activeWindow(), "Open tile scan as mosaic", "", FILE_FILTER
        )
        if not path:
            return []
    try:
        layer_data = read_tiff(path, mosaic=True)
    except MosaicUnavailable as err:
        show_error(
            f"{path} cannot be stitched: {err.problem}. "
            "Open it with File > Open File(s)… instead (a scan's tiles are then on a position "
            "slider)."
        )
        return []
    except TiffReadError as err:
        show_error(f"{err}. Check that the file is complete and not damaged.")
        return []
    # Every channel's plane, read whole by napari: a mosaic of 700 small tiles in a chain
    # was 29 GiB a channel, which napari would have read until the system ended it.
    first = layer_data[0][0]
    too_large = beyond_memory((len(layer_data), *first.shape[-2:]), first.dtype)
    if too_large:
        show_error(
            f"{path} is too large to open as a mosaic: its stitched channels are {too_large}, "
            "and napari reads each whole to show it. Open it with File > Open File(s)… "
            "instead (its tiles are then on a position slider)."
        )
        return []
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        layers = [viewer.add_layer(Layer.create(*one)) for one in layer_data]
    finally:
        QApplication.restoreOverrideCursor()
    show_info(f"Opened {os.path.basename(path)} as a mosaic of {len(layers)} channel(s).")
    return layers
