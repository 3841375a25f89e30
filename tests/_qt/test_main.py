"""``python -m napari_cytomask``: what a new user sees first."""

import numpy as np
import pytest
from napari.layers import Image

import napari_cytomask.__main__ as entry

pytestmark = pytest.mark.gui


def test_the_sample_opens_whole_beside_the_dock_with_the_hand_drawn_cells_hidden(
    monkeypatch, qtbot
):
    import napari

    shown = []

    def run():  # instead of the event loop: let the window lay out, then look
        viewer = napari.current_viewer()
        viewer.window._qt_window.resize(1280, 800)
        qtbot.wait(300)
        shown.append(viewer)

    monkeypatch.setattr(napari, "run", run)
    entry.main()
    (viewer,) = shown
    try:
        assert "Segment cytoplasm (napari-cytomask)" in viewer.window.dock_widgets
        phase, mask = viewer.layers
        assert isinstance(phase, Image) and phase.visible and not mask.visible
        assert viewer.layers.selection.active is phase
        # The whole image is in the canvas, not cropped at its sides.
        canvas = viewer.window._qt_viewer.canvas.size
        top_left = (
            np.array(viewer.camera.center[-2:]) - np.array(canvas[::-1]) / 2 / viewer.camera.zoom
        )
        bottom_right = top_left + np.array(canvas[::-1]) / viewer.camera.zoom
        height, width = phase.data.shape[-2:]
        assert top_left[1] <= -0.5 and bottom_right[1] >= width - 0.5
        assert top_left[0] <= -0.5 and bottom_right[0] >= height - 0.5
    finally:
        viewer.close()
