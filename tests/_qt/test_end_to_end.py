"""End to end in a real viewer: the sample tile scan through every step of the dock.

Open the sample, segment it with a U-Net trained here in seconds, with a small
random SAM2, and with SAM2 guided by the U-Net; tune a SAM2 slider; split
touching cells; compare with the mask channel; export in every format and read
the files back. Each GUI result is checked against the Qt-free core run on the
same arrays, so a wrong wire between a widget and the core fails the test.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
from pycocotools import mask as coco_mask
from qtpy.QtCore import QSettings, Qt
from qtpy.QtWidgets import QShortcut
from skimage import io as skio

from napari_cytomask import _sample_data, synthetic
from napari_cytomask._qt._settings import set_value
from napari_cytomask._qt.cytomask_dock import CytomaskDock
from napari_cytomask._qt.sam2_widget import ALL_POSITIONS
from napari_cytomask.metrics import DEFAULT_THRESHOLDS, evaluate
from napari_cytomask.models.checkpoint import DIR_ENV
from napari_cytomask.models.inference import UNetPredictor, segment
from napari_cytomask.models.training import TrainingSettings, samples_from_arrays, train
from napari_cytomask.models.unet import UNetConfig
from napari_cytomask.pipeline import METHODS
from napari_cytomask.postprocess import iter_watershed
from napari_cytomask.progress import drain

pytestmark = [pytest.mark.gui, pytest.mark.slow]

INPUT, TRUTH = "Brightfield", "Mask (ground truth)"
UNET_CELLS = f"{INPUT} U-Net cells"
SAM2_MASKS = f"{INPUT} SAM2 masks"
SPLIT = f"{UNET_CELLS} split"
TILE = "tile 0 cells"
STEP_SEGMENT, STEP_SPLIT, STEP_METRICS, STEP_EXPORT = 1, 2, 3, 4
WAIT_MS = 60_000


@pytest.fixture
def small_sample(monkeypatch, tmp_path):
    """The plugin's sample with 128² tiles (same generator, same channels), one torch thread."""
    monkeypatch.setattr(
        _sample_data,
        "make_tilescan",
        functools.partial(synthetic.make_tilescan, shape=(128, 128), cell_radius=12.0),
    )
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits on the first
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def errors(monkeypatch):
    """Every error the widgets show the user, so a wait can stop at the first one."""
    shown: list[str] = []
    for module in ("_live", "cytomask_dock"):
        monkeypatch.setattr(f"napari_cytomask._qt.{module}.show_error", shown.append)
    return shown


def wait(qtbot, condition, errors: list[str], timeout: int = WAIT_MS) -> None:
    """Wait for ``condition`` while no error was shown; fail with the error otherwise."""
    qtbot.waitUntil(lambda: bool(errors) or bool(condition()), timeout=timeout)
    assert not errors, errors


def table_value(dock, row_label: str, column: int = 0) -> str:
    for table in (dock.metrics.table, dock.metrics.summary_table):
        for row in range(table.rowCount()):
            if table.verticalHeaderItem(row).text() == row_label:
                return table.item(row, column).text()
    raise KeyError(row_label)


def test_sample_through_every_step(
    make_napari_viewer_proxy, qtbot, tmp_path, small_sample, errors, small_sam2, keep_every_mask
):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    image, truth = viewer.layers[INPUT], viewer.layers[TRUTH]
    assert image.data.shape == truth.data.shape == (3, 128, 128)
    viewer.dims.set_current_step(0, 0)  # napari opens stacks at the middle tile

    # A tiny U-Net trained on the sample's input and mask channels.
    checkpoint = train(
        samples_from_arrays(image.data, truth.data, INPUT),
        tmp_path / "tiny-unet.safetensors",
        UNetConfig(encoder="resnet18", encoder_depth=3),
        TrainingSettings(
            epochs=1,
            steps_per_epoch=20,
            batch_size=4,
            crop_size=64,
            learning_rate=5e-3,
            encoder_weights=None,
            device="cpu",
            fractions=(1.0, 0.0, 0.0),
        ),
    ).checkpoint

    sam2_model = small_sam2
    dock = CytomaskDock(
        viewer,
        sam2_model_builder=lambda source, device, config: sam2_model,
        settings=QSettings(str(tmp_path / "dock.ini"), QSettings.Format.IniFormat),
    )
    dock.watershed.live.setChecked(False)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    assert dock.steps.currentIndex() == STEP_SEGMENT

    # (a) U-Net: the checkpoint chosen in the dock, Ctrl+Enter on the segment page.
    unet = dock.unet
    unet.checkpoint.set_model(checkpoint)
    assert unet.checkpoint.path() == checkpoint
    assert unet.input.currentText() == INPUT  # the channel marked as input
    unet.device.setCurrentText("cpu")
    unet.overlap.setValue(32)
    dock.method.setCurrentText(METHODS["unet"])
    shortcuts = {s.key().toString(): s for s in dock.findChildren(QShortcut) if s.isEnabled()}
    shortcuts["Ctrl+Return"].activated.emit()  # Xvfb windows are never active: emit directly
    wait(qtbot, lambda: not unet.runner.busy and UNET_CELLS in viewer.layers, errors)
    cells = viewer.layers[UNET_CELLS]
    expected = segment(
        UNetPredictor.from_checkpoint(checkpoint, "cpu"), [image.data], overlap=32,
        tta=unet.tta.isChecked(),
        postprocess={"interior_threshold": unet.interior_threshold.value(),
                     "foreground_threshold": unet.foreground_threshold.value()},
        cleanup={"min_area": unet.min_size.value()},
    )  # fmt: skip
    np.testing.assert_array_equal(cells.data, expected.labels)
    assert tuple(cells.axis_labels) == tuple(image.axis_labels)
    # Twenty steps are enough to find most cells of this simple scan.
    unet_score = evaluate(truth.data, cells.data, stack=True)
    assert unet_score.matches.f1[DEFAULT_THRESHOLDS.index(0.5)] > 0.5
    # Counted over the scan's tiles, and said so.
    frames = int(np.prod(cells.data.shape[:-2]))
    assert frames > 1
    assert f"{int(cells.data.max())} cells in '{cells.name}', in all {frames} frames" in (
        unet.status.text()
    )

    # (b) SAM2 on every tile, with a small random model.
    sam2 = dock.sam2
    dock.method.setCurrentText(METHODS["sam2"])
    assert sam2.isVisibleTo(dock) and not unet.isVisibleTo(dock)
    sam2.device.setCurrentText("cpu")
    set_value(sam2.positions, ALL_POSITIONS)
    sam2.set_values(points_per_side=6, order="score", **keep_every_mask)
    assert sam2.layer.currentText() == INPUT
    dock.run_current()
    wait(qtbot, lambda: not sam2.runner.busy and SAM2_MASKS in viewer.layers, errors)
    masks = viewer.layers[SAM2_MASKS]
    engine = sam2._last_engine
    plain = engine.segment(image.data, sam2.params(), sam2.label_params())
    np.testing.assert_array_equal(masks.data, plain.labels)
    assert masks.data.shape == image.data.shape
    for tile in range(3):
        assert masks.data[tile].any()
    assert set(masks.features["index"]) == set(np.unique(masks.data)) - {0}
    assert engine.runs["encoder"] == 3  # one image encoding per tile

    # A filter slider re-filters the cached candidates and updates the same layer.
    first = np.array(masks.data)
    ious = masks.features["predicted_iou"].to_numpy()
    threshold = float(np.round(np.median(ious), 2))
    sam2.set_values(pred_iou_thresh=threshold)
    wait(qtbot, lambda: not np.array_equal(masks.data, first), errors, timeout=30_000)
    wait(qtbot, lambda: not sam2.runner.busy, errors, timeout=30_000)
    assert 0 < len(masks.features) < len(ious)
    assert masks.features["predicted_iou"].min() > threshold - 1e-6
    tuned = engine.segment(image.data, sam2.params(), sam2.label_params())
    np.testing.assert_array_equal(masks.data, tuned.labels)
    assert engine.runs["encoder"] == 3  # the slider did not re-encode

    # (c) SAM2 guided by the U-Net foreground: the U-Net runs, then SAM2 on its cells.
    # Random masks are noisy and large, so the share of a mask on the U-Net's cells is
    # near the cells' coverage for most of them: raise the minimum foreground fraction
    # (a live slider) to where the U-Net decides which masks stay.
    foreground = viewer.layers[UNET_CELLS].data > 0

    def guided_with(fraction):
        labels = replace(sam2.label_params(), min_foreground_fraction=fraction)
        return engine.segment(image.data, sam2.params(), labels, foreground=foreground)

    kept = {f: guided_with(f).n_masks for f in np.round(np.arange(0.5, 0.95, 0.01), 2)}
    between = {f: n for f, n in kept.items() if 0 < n < tuned.n_masks}
    assert between, (tuned.n_masks, kept)
    fraction = min(between, key=lambda f: abs(between[f] - tuned.n_masks / 2))  # about half
    sam2.set_values(min_foreground_fraction=float(fraction))
    wait(qtbot, lambda: not sam2.runner.busy, errors, timeout=30_000)
    np.testing.assert_array_equal(masks.data, tuned.labels)  # no foreground chosen yet
    dock.method.setCurrentText(METHODS["sam2_guided"])
    assert sam2.isVisibleTo(dock) and unet.isVisibleTo(dock)
    dock.run_current()
    wait(qtbot, lambda: sam2.foreground.currentText() == UNET_CELLS, errors)
    wait(qtbot, lambda: not sam2.runner.busy and not unet.runner.busy, errors)
    np.testing.assert_array_equal(viewer.layers[UNET_CELLS].data > 0, foreground)
    masks = viewer.layers[SAM2_MASKS]
    guided = guided_with(fraction)
    np.testing.assert_array_equal(masks.data, guided.labels)
    assert 0 < guided.n_masks < tuned.n_masks  # the foreground removed background masks
    assert masks.data.any() and not np.array_equal(masks.data, tuned.labels)
    assert engine.runs["encoder"] == 3  # same image: the encodings are reused

    # Separate touching cells: split the U-Net cells on every tile.
    dock.steps.setCurrentIndex(STEP_SPLIT)
    watershed = dock.watershed
    watershed.mode.setCurrentIndex(watershed.mode.findData("split"))
    watershed.input.setCurrentText(UNET_CELLS)
    assert watershed.input.currentText() == UNET_CELLS
    dock.run_current()
    wait(qtbot, lambda: not watershed.runner.busy and "Done" in watershed.status.text(), errors)
    split = viewer.layers[SPLIT]
    expected_split = drain(
        iter_watershed("split", cells.data, params=watershed.params(), cleanup=watershed.cleanup())
    )
    np.testing.assert_array_equal(split.data, expected_split)
    assert split.data.shape == cells.data.shape and split.data.max() > 0
    assert watershed.progress.value() == 3  # one step per tile

    # Check against the ground truth: the table shows what the metrics core computes.
    dock.steps.setCurrentIndex(STEP_METRICS)
    metrics = dock.metrics
    assert metrics.ground_truth_combo.currentText() == TRUTH
    metrics.prediction_combo.setCurrentIndex(metrics.prediction_combo.findText(SPLIT))
    assert metrics.stack_check.isChecked()  # the P axis holds separate tiles
    wait(
        qtbot,
        lambda: (
            not metrics.runner.busy
            and metrics.evaluation is not None
            and metrics.prediction_layer.name == SPLIT
        ),
        errors,
    )
    reference = evaluate(truth.data, split.data, stack=True, match_threshold=0.5)
    stats = reference.matches
    for column, iou in enumerate((0.5, 0.75, 0.9)):
        k = DEFAULT_THRESHOLDS.index(iou)
        for row, value in (
            ("True positives", stats.tp[k]),
            ("False positives", stats.fp[k]),
            ("False negatives", stats.fn[k]),
        ):
            assert int(table_value(dock, row, column)) == int(value), (row, iou)
        for row, value in (
            ("Precision", stats.precision[k]), ("Recall", stats.recall[k]), ("F1", stats.f1[k]),
            ("Panoptic quality", stats.panoptic_quality[k]),
        ):  # fmt: skip
            assert float(table_value(dock, row, column)) == pytest.approx(value, abs=5e-4)
    summary = reference.summary()
    for row, key in (
        ("Mean-average F1", "mean_average_f1"),
        ("mSA, mean segmentation accuracy", "mean_segmentation_accuracy"),
        ("COCO AP (IoU 0.50:0.95)", "coco_ap"),
        ("Pixel F1 (Dice)", "pixel_f1"),
        ("Pixel IoU", "pixel_iou"),
    ):
        assert float(table_value(dock, row)) == pytest.approx(summary[key], abs=5e-4)
    n_truth = sum(len(np.unique(t)) - 1 for t in truth.data)
    assert stats.n_true == n_truth
    assert int(table_value(dock, "True positives")) > 0 and summary["pixel_f1"] > 0.8
    assert f"{n_truth} ground-truth" in metrics.status.text()

    # Export: the stacks in every stack format with tables and COCO JSON, then one
    # tile (2D) in every format, PNG included.
    viewer.add_labels(
        np.array(split.data[0]), name=TILE, scale=split.scale[1:], units=split.units[1:],
        axis_labels=split.axis_labels[1:],
    )  # fmt: skip
    dock.steps.setCurrentIndex(STEP_EXPORT)
    panel = dock.export
    listed = [panel.layer_list.item(i).text() for i in range(panel.layer_list.count())]
    stacks = [TRUTH, UNET_CELLS, SAM2_MASKS, SPLIT]
    assert listed == [*stacks, TILE]
    _tick(panel, stacks)
    for key, box in panel.formats.items():
        box.setChecked(key != "png")
    panel.objects_csv.setChecked(True)
    panel.coco_json.setChecked(True)
    panel.folder.setText(str(tmp_path / "stacks"))
    dock.run_current()
    wait(qtbot, lambda: panel.export_button.isEnabled() and "Wrote" in panel.status.text(), errors)
    for name in stacks:
        _check_export(tmp_path / "stacks", viewer.layers[name], ["tiff", "ome-tiff", "npy"])

    _tick(panel, [TILE])
    for box in panel.formats.values():
        box.setChecked(True)
    panel.folder.setText(str(tmp_path / "tile"))
    dock.run_current()
    wait(qtbot, lambda: panel.export_button.isEnabled() and "Wrote" in panel.status.text(), errors)
    _check_export(tmp_path / "tile", viewer.layers[TILE], ["tiff", "ome-tiff", "npy", "png"])
    assert sorted(p.name for p in (tmp_path / "tile").iterdir()) == sorted(
        f"{TILE}{suffix}"
        for suffix in (".tif", ".ome.tif", ".npy", ".png", "_objects.csv", "_counts.csv",
                       "_coco.json", "_provenance.json")
    )  # fmt: skip
    assert not errors, errors


def _tick(panel, names) -> None:
    for i in range(panel.layer_list.count()):
        item = panel.layer_list.item(i)
        item.setCheckState(
            Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked
        )


def _check_export(folder, layer, formats) -> None:
    """Every file written for ``layer`` reads back as the layer's data and objects."""
    data = np.asarray(layer.data)
    frames = data.reshape(-1, *data.shape[-2:])
    stem = folder / layer.name

    def same_labels(read) -> None:
        assert np.issubdtype(read.dtype, np.unsignedinteger), read.dtype
        np.testing.assert_array_equal(read, data)

    if "tiff" in formats:
        same_labels(tifffile.imread(f"{stem}.tif"))
    if "ome-tiff" in formats:
        with tifffile.TiffFile(f"{stem}.ome.tif") as tif:
            if str(layer.axis_labels[0]).upper() == "P" and data.ndim == 3:
                assert len(tif.series) == len(frames)  # one OME image per tile
                same_labels(np.stack([series.asarray() for series in tif.series]))
            else:
                assert len(tif.series) == 1
                same_labels(tif.series[0].asarray())
    if "npy" in formats:
        same_labels(np.load(f"{stem}.npy"))
    if "png" in formats:
        same_labels(skio.imread(f"{stem}.png"))

    # COCO RLE, decoded by pycocotools, paints the same label image back.
    coco = json.loads(folder.joinpath(f"{layer.name}_coco.json").read_text())
    assert [image["id"] for image in coco["images"]] == list(range(1, len(frames) + 1))
    painted = np.zeros_like(frames)
    scores = {}
    if len(layer.features) and "predicted_iou" in layer.features:
        scores = dict(zip(layer.features["index"], layer.features["predicted_iou"], strict=True))
    for annotation in coco["annotations"]:
        binary = coco_mask.decode(annotation["segmentation"]).astype(bool)
        plane = painted[annotation["image_id"] - 1]
        assert not plane[binary].any(), "objects overlap"
        plane[binary] = annotation["label"]
        assert annotation["area"] == int(binary.sum())
        x, y, w, h = annotation["bbox"]
        rows, cols = np.nonzero(binary)
        assert (x, y, w, h) == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
        if scores:
            assert annotation["score"] == pytest.approx(scores[annotation["label"]])
    np.testing.assert_array_equal(painted, frames)

    # The object table has one row per object and tile, the counts add up.
    ids_per_frame = [set(np.unique(frame)) - {0} for frame in frames]
    with open(f"{stem}_objects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    found = {(int(r.get("frame") or 0), int(r["label"])) for r in rows}
    assert len(rows) == len(found) == sum(len(ids) for ids in ids_per_frame)
    assert found == {(f, int(i)) for f, ids in enumerate(ids_per_frame) for i in ids}
    for r in rows:
        frame = frames[int(r.get("frame") or 0)]
        assert int(r["area"]) == int(np.count_nonzero(frame == int(r["label"])))
    with open(f"{stem}_counts.csv", newline="") as handle:
        counts = [(r.get("frame"), int(r["cells"])) for r in csv.DictReader(handle)]
    if data.ndim == 3:
        assert counts == [(str(f), len(ids)) for f, ids in enumerate(ids_per_frame)]
    else:
        assert counts == [(None, len(ids_per_frame[0]))]
    provenance = json.loads(folder.joinpath(f"{layer.name}_provenance.json").read_text())
    assert provenance["layer"] == layer.name and provenance["shape"] == list(data.shape)
