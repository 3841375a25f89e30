"""Screenshots of the Segment cytoplasm dock on the real sample scan, for the README.

Run under a display or Xvfb::

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/screenshots.py

It drives the real dock in a 1280 x 800 napari window, one screenshot per step:
the sample's channels, the starter U-Net's cells (and the tab that trains a
model of one's own), the split step (which says the U-Net's cells are already
separated), the metrics against the sample's hand-drawn mask channel, and the
export. A
``--model`` checkpoint replaces the starter model (e.g. one still training).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch  # noqa: F401  (before napari's OpenGL context, see the README)
import torchvision  # noqa: F401

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
WINDOW = (1280, 800)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a U-Net checkpoint instead of the starter model")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNG files go")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QSettings
    from qtpy.QtWidgets import QApplication

    from napari_cytomask._qt.cytomask_dock import CytomaskDock

    app = QApplication.instance() or QApplication([])

    def wait(condition, seconds=900.0):
        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.05)
        if not condition():
            raise TimeoutError("the dock did not finish in time")

    def shoot(name: str) -> None:
        for _ in range(30):  # let the layout and the canvas settle
            app.processEvents()
            time.sleep(0.02)
        path = args.out / name
        viewer.screenshot(str(path), canvas_only=False)
        print(path)

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory()
    viewer = napari.Viewer(title="napari-cytomask")
    viewer.window._qt_window.resize(*WINDOW)
    viewer.open_sample("napari-cytomask", "phase_contrast")
    settings = QSettings(str(Path(scratch.name) / "dock.ini"), QSettings.Format.IniFormat)
    dock = CytomaskDock(viewer, settings=settings)  # default settings, not the user's
    # Titled as napari titles a plugin's dock (python -m napari_cytomask opens this one).
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm (napari-cytomask)", area="right")
    phase = dock.unet.input.layer()
    mask = next(layer for layer in viewer.layers if layer.metadata["cytomask"]["role"] == "mask")
    mask.visible = False
    for _ in range(10):  # laid out beside the dock first, as open_on_sample fits it
        app.processEvents()
    viewer.reset_view()

    dock.steps.setCurrentIndex(0)
    shoot("step1-channels.png")

    dock.steps.setCurrentIndex(1)
    if args.model:
        dock.unet.checkpoint.set_model(args.model)
    dock.unet.device.setCurrentText("auto")
    dock.run_current()
    cells_name = f"{phase.name} U-Net cells"
    wait(lambda: cells_name in viewer.layers and not dock.unet.runner.busy)
    shoot("step2-segment.png")
    dock.unet.tabs.setCurrentIndex(1)  # training a model of one's own, with its estimate
    shoot("step2-train.png")
    dock.unet.tabs.setCurrentIndex(0)

    # The U-Net's cells are already the split step's input, and already separated:
    # the step says so, and they go on to the metrics unsplit.
    dock.steps.setCurrentIndex(2)
    shoot("step3-split.png")

    dock.steps.setCurrentIndex(3)  # the U-Net's cells against the mask channel
    wait(lambda: dock.metrics.evaluation is not None and not dock.metrics.runner.busy)
    shoot("step4-check.png")

    dock.steps.setCurrentIndex(4)
    dock.export.folder.setText(str(Path(scratch.name) / "export"))
    dock.run_current()
    wait(lambda: "Wrote" in dock.export.status.text())
    shoot("step5-export.png")
    viewer.close()
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
