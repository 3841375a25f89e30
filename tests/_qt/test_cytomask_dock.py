import numpy as np
import pytest
from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QShortcut

from napari_cytomask._qt.cytomask_dock import CytomaskDock

pytestmark = pytest.mark.gui


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "dock.ini"), QSettings.Format.IniFormat)


def test_dock_leads_through_the_steps_and_remembers_settings(
    make_napari_viewer_proxy, qtbot, settings
):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    titles = [dock.steps.itemText(i) for i in range(dock.steps.count())]
    assert titles == [
        "1. Input channels",
        "2. Segment cytoplasm",
        "3. Separate touching cells",
        "4. Check against the ground truth",
        "5. Export",
    ]
    assert dock.steps.currentIndex() == 1

    dock.method.setCurrentText("SAM2")
    assert dock.sam2.isVisibleTo(dock) and not dock.unet.isVisibleTo(dock)
    dock.method.setCurrentText("U-Net")
    assert dock.unet.isVisibleTo(dock) and not dock.sam2.isVisibleTo(dock)

    # Ctrl+Enter runs the open step: the watershed over every tile of the GFP channel.
    dock.steps.setCurrentIndex(2)
    dock.watershed.live.setChecked(False)
    dock.watershed.input.setCurrentText("GFP")
    shortcuts = {s.key().toString(): s for s in dock.findChildren(QShortcut)}
    assert set(shortcuts) == {"Ctrl+Return", "Esc"}
    shortcuts["Ctrl+Return"].activated.emit()  # Xvfb windows are never active: emit directly
    qtbot.waitUntil(lambda: "GFP instances" in viewer.layers, timeout=30_000)
    output = viewer.layers["GFP instances"]
    qtbot.waitUntil(lambda: all(output.data[t].max() > 20 for t in range(3)), timeout=60_000)

    # Settings persist into a new dock (a new session).
    dock.watershed.h.setValue(7.5)
    dock.method.setCurrentText("SAM2")
    dock.save_settings()
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    qtbot.addWidget(again)
    assert again.watershed.h.value() == pytest.approx(7.5)
    assert again.method.currentText() == "SAM2"
    assert again.watershed.input.currentText() in {layer.name for layer in viewer.layers}


def test_guided_mode_runs_sam2_on_the_unet_foreground(make_napari_viewer_proxy, qtbot, settings):
    import torch

    from napari_cytomask.models.sam2_models import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model("configs/sam2.1/sam2.1_hiera_t.yaml", image_size=64, seed=0)
        viewer = make_napari_viewer_proxy()
        yy, xx = np.mgrid[:48, :64]
        cells = ((yy - 24) ** 2 + (xx - 20) ** 2 < 100).astype(np.uint16)
        viewer.add_image(cells * 2000 + 300, name="phase", metadata={"cytomask": {"role": "input"}})
        dock = CytomaskDock(viewer, sam2_model_builder=lambda *args: model, settings=settings)
        viewer.window.add_dock_widget(dock)
        dock.sam2.device.setCurrentText("cpu")
        dock.sam2.set_values(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
        dock.method.setCurrentText("SAM2 guided by the U-Net foreground")
        unet_cells = viewer.add_labels(cells, name="phase U-Net cells")
        dock.unet.segmented.emit(unet_cells)
        assert dock.sam2.foreground.currentText() == "phase U-Net cells"
        qtbot.waitUntil(lambda: "phase SAM2 masks" in viewer.layers, timeout=60_000)
    finally:
        torch.set_num_threads(threads)
