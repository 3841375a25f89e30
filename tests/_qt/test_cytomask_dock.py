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
    dock.watershed.live.setChecked(True)
    dock.watershed.stop_preview()
    dock.method.setCurrentText("SAM2")
    dock.save_settings()
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    qtbot.addWidget(again)
    assert again.watershed.h.value() == pytest.approx(7.5)
    # Restoring the values is not a change by the user: nothing starts on opening.
    assert again.watershed.live.isChecked() and not again.watershed._runner.busy
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


def test_saved_preset_drives_the_command_line(
    make_napari_viewer_proxy, settings, tmp_path, tiny_unet, capsys
):
    import json

    import tifffile
    import torch

    from napari_cytomask.cli import main
    from napari_cytomask.models.checkpoint import describe, save_checkpoint
    from napari_cytomask.models.unet import UNetConfig, build_model
    from napari_cytomask.pipeline import Preset

    config = UNetConfig(**tiny_unet, tile_size=64)
    model = save_checkpoint(tmp_path / "m.safetensors", build_model(config)[0], describe(config))
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock)  # closed with the viewer
    dock.watershed.live.setChecked(False)
    dock.method.setCurrentText("SAM2 guided by the U-Net foreground")
    with pytest.raises(ValueError, match="No U-Net model is selected"):
        dock.preset()
    dock.unet.checkpoint.set_path(model)
    dock.unet.overlap.setValue(16)
    dock.unet.interior_threshold.setValue(0.35)
    dock.sam2.set_values(points_per_side=12, pred_iou_thresh=0.55)
    dock.watershed.mode.setCurrentIndex(dock.watershed.mode.findData("split"))
    path = dock.save_preset(tmp_path / "preset.json")

    preset = Preset.load(path)
    brightfield = viewer.layers["Brightfield"].metadata["cytomask"]["channel_index"]
    assert preset.method == "sam2_guided" and preset.channels == [brightfield]
    assert preset.unet.model == str(model) and preset.unet.overlap == 16
    assert preset.unet.interior_threshold == pytest.approx(0.35)
    assert preset.sam2.params["points_per_side"] == 12
    assert preset.sam2.params["pred_iou_thresh"] == pytest.approx(0.55)
    assert preset.sam2.model == "facebook/sam2.1-hiera-tiny" and preset.sam2.config is None
    assert preset.split["params"] == dock.watershed.params()

    # The command line runs the preset's U-Net settings (SAM2 weights need a download).
    scan = tmp_path / "scan.tif"
    channels = sorted(viewer.layers, key=lambda ly: ly.metadata["cytomask"]["channel_index"])
    tifffile.imwrite(scan, np.stack([np.asarray(ly.data) for ly in channels], axis=1),
                     imagej=True, metadata={"axes": "TCYX"})  # fmt: skip
    threads = torch.get_num_threads()
    try:
        code = main(["segment", str(scan), "--preset", str(path), "--method", "unet",
                     "--scheduler", "synchronous", "--threads", "1"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "scan_unet_cells.json").read_text())
    assert record["preset"]["unet"] == json.loads(path.read_text())["unet"]
    assert record["preset"]["split"] == json.loads(path.read_text())["split"]
