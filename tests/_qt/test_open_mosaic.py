"""*File > IO Utilities > Open tile scan as mosaic…*, run as a user runs it: from the menu."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cytomask._qt import open_mosaic as module

pytestmark = pytest.mark.gui

MMSTACK = "tiff-formats/ome-tiff-samples/singles/181003_multi_pos_time_course_1_MMStack.ome.tif"
IXM = "tiff-formats/imagej-composites/IXMtest_A02_s9.tif"
COMMAND = "napari-cytomask.open_mosaic"


def _run_menu_command(monkeypatch, path):
    """Run the command through napari's app model, the dialog answering ``path``."""
    from napari._app_model import get_app_model

    app = get_app_model()
    menu = [
        getattr(item, "command", None) for item in app.menus.get_menu("napari/file/io_utilities")
    ]
    assert COMMAND in [c.id for c in menu if c is not None]
    monkeypatch.setattr(module.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    return app.commands.execute_command(COMMAND).result()


def test_menu_opens_a_scan_as_a_mosaic(make_napari_viewer_proxy, shared_data, monkeypatch):
    viewer = make_napari_viewer_proxy()
    layers = _run_menu_command(monkeypatch, shared_data / MMSTACK)
    assert [layer.name for layer in viewer.layers] == [layer.name for layer in layers]
    (layer,) = viewer.layers
    # Pos1 lies 230 pixels left of Pos0: both tiles side by side, T kept.
    assert layer.data.shape == (10, 256, 256 + 230)
    assert layer.metadata["cytomask"]["mosaic"] is True
    stack = tifffile.imread(shared_data / MMSTACK)  # T, position, Y, X
    np.testing.assert_array_equal(np.asarray(layer.data[3])[:, :256], stack[3, 1])
    # The plain File > Open still gives the positions on a slider.
    viewer.open(str(shared_data / MMSTACK), plugin="napari-cytomask")
    assert viewer.layers[-1].data.shape == (2, 10, 256, 256)


def test_a_scan_without_positions_is_explained(make_napari_viewer_proxy, shared_data, monkeypatch):
    viewer = make_napari_viewer_proxy()
    shown = []
    monkeypatch.setattr(module, "show_error", shown.append)
    assert _run_menu_command(monkeypatch, shared_data / IXM) == []
    assert len(viewer.layers) == 0
    (message,) = shown
    # napari's menu item by its name (there is no "File > Open").
    assert "holds a single position" in message and "File > Open File(s)… instead" in message


def test_a_file_that_is_not_a_tiff_is_explained(make_napari_viewer_proxy, tmp_path, monkeypatch):
    viewer = make_napari_viewer_proxy()
    shown = []
    monkeypatch.setattr(module, "show_error", shown.append)
    path = tmp_path / "notes.tif"
    path.write_text("not an image")
    assert module.open_mosaic(viewer, path) == []
    (message,) = shown
    assert str(path) in message and "not damaged" in message


def test_cancelling_the_dialog_adds_nothing(make_napari_viewer_proxy, monkeypatch):
    viewer = make_napari_viewer_proxy()
    monkeypatch.setattr(module.QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    assert module.open_mosaic(viewer) == []
    assert len(viewer.layers) == 0


def test_a_mosaic_too_large_for_memory_is_refused(
    make_napari_viewer_proxy, shared_data, monkeypatch
):
    """The plain reader refuses planes larger than memory, the mosaic did not: napari reads
    each stitched plane whole, and a chain of 700 small tiles stitched to 29 GiB a channel."""
    from napari_cytomask.io import files

    viewer = make_napari_viewer_proxy()
    shown = []
    monkeypatch.setattr(module, "show_error", shown.append)
    # The MMStack's mosaic: 256 x 486 pixels of 16 bits, about 243 KiB a plane.
    monkeypatch.setattr(files, "physical_memory", lambda: 200 * 1024)
    assert _run_menu_command(monkeypatch, shared_data / MMSTACK) == []
    assert len(viewer.layers) == 0
    (message,) = shown
    assert message.endswith(
        "is too large to open as a mosaic: its stitched channels are 1 x 256 x 486 pixels "
        "(243 KiB), more than this computer's memory (200 KiB), and napari reads each whole "
        "to show it. Open it with File > Open File(s)… instead (its tiles are then on a "
        "position slider)."
    )
