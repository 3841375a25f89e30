"""``python -m napari_cytomask``: what a new user sees first."""

import os
import subprocess
import sys

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
    assert entry.main([]) == 0
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
        # In the canvas's units: the sample's pixels are 0.87 µm.
        (height, width), (sy, sx) = phase.data.shape[-2:], phase.scale[-2:]
        assert top_left[1] <= -0.5 * sx and bottom_right[1] >= (width - 0.5) * sx
        assert top_left[0] <= -0.5 * sy and bottom_right[0] >= (height - 0.5) * sy
    finally:
        viewer.close()


def _run_main(*args, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "napari_cytomask", *args],
        capture_output=True, text=True, env={**environment, **env}, timeout=120,
    )  # fmt: skip


def test_help_says_what_it_opens_without_starting_napari():
    """It ignored --help and aborted in Qt without a display (exit 134)."""
    result = _run_main("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m napari_cytomask")
    assert "cytomask segment IMAGES -o OUT" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux names its display")
def test_without_a_display_it_says_how_to_run_instead_of_aborting():
    result = _run_main()
    assert result.returncode == 1
    assert "napari needs a display, and no display was found" in result.stderr
    assert "xvfb-run -a python -m napari_cytomask" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_qt_binding_it_says_to_install_the_qt_extra(tmp_path):
    """`pip install napari-cytomask` brings no Qt binding: it ended in qtpy's traceback."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoQt:  # as if no PyQt or PySide were installed\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('PyQt5', 'PyQt6', 'PySide2', 'PySide6'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoQt())\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    result = _run_main(PYTHONPATH=path, QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 1
    assert 'install one with pip install "napari-cytomask[qt]"' in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
