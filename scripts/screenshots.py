"""Screenshots of the Segment cytoplasm dock on the sample scan, for the README.

Run under a display or Xvfb::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

It drives the real dock: the watershed splits the GFP channel's cells on every
tile, then the metrics page compares them with the ground-truth mask channel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch  # noqa: F401  (before napari's OpenGL context, see the README)
import torchvision  # noqa: F401

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_cytomask._qt.cytomask_dock import CytomaskDock

    viewer = napari.Viewer(title="napari-cytomask")
    viewer.window.resize(1500, 950)
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm", area="right")
    app = QApplication.instance()

    def wait(condition, seconds=60.0):
        import time

        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.05)
        if not condition():
            raise TimeoutError("the dock did not finish in time")

    OUT.mkdir(parents=True, exist_ok=True)
    dock.steps.setCurrentIndex(2)
    dock.watershed.input.setCurrentText("GFP")
    dock.watershed.apply()
    wait(
        lambda: (
            "GFP instances" in viewer.layers
            and viewer.layers["GFP instances"].data.max() > 0
            and dock.watershed._worker is None
        )
    )
    viewer.layers["GFP"].visible = False
    viewer.layers["Mask (ground truth)"].visible = False
    viewer.screenshot(str(OUT / "watershed.png"), canvas_only=False)

    dock.steps.setCurrentIndex(3)
    wait(lambda: dock.metrics.prediction_combo.currentText() == "GFP instances")
    dock.metrics.prediction_combo.setCurrentText("GFP instances")
    wait(lambda: "ground-truth" in dock.metrics.status.text(), seconds=60)
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(str(OUT / "metrics.png"), canvas_only=False)
    viewer.close()
    print("\n".join(str(p) for p in sorted(OUT.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
