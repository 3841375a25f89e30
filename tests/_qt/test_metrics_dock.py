"""The metrics dock in a real viewer: live updates, highlights, errors and CSV export."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
import tifffile
from napari.layers import Labels
from qtpy.QtCore import QSignalBlocker, Qt

from napari_cytomask._qt import metrics_dock
from napari_cytomask._qt.metrics_dock import MetricsDock

pytestmark = pytest.mark.gui


def _text(model, row: int, column: int) -> str:
    return model.data(model.index(row, column))


def _heading(model, row: int) -> str:
    return model.headerData(row, Qt.Orientation.Vertical)


def _cell(dock: MetricsDock, label: str, column: int = 0) -> str:
    for table in (dock.table, dock.summary_table):
        for row in range(table.rowCount()):
            if table.verticalHeaderItem(row).text() == label:
                item = table.item(row, column)
                return "" if item is None else item.text()
    raise KeyError(label)


@pytest.fixture
def labels(shared_data):
    return tifffile.imread(shared_data / "nuclei-dsb" / "tests_mask2d.tif")


@pytest.fixture
def dock_in_viewer(make_napari_viewer_proxy, qtbot, labels):
    viewer = make_napari_viewer_proxy()
    dock = _compared(viewer, qtbot, labels.copy(), labels.copy())
    yield viewer, dock
    dock.runner.cancel()


def _compared(viewer, qtbot, prediction, truth, axis: str | None = None) -> MetricsDock:
    """A metrics dock in ``viewer`` comparing ``prediction`` with ``truth`` (stacks along
    ``axis``), its first comparison made."""
    axes = {} if axis is None else {"axis_labels": (axis, "y", "x")}
    viewer.add_labels(prediction, name="prediction", **axes)
    viewer.add_labels(truth, name="ground truth", **axes)
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=20_000)
    return dock


def test_table_follows_edits_and_saves_csv(dock_in_viewer, qtbot, labels, tmp_path):
    viewer, dock = dock_in_viewer
    assert dock.prediction_layer.name == "prediction"
    assert dock.ground_truth_layer.name == "ground truth"
    n = len(np.unique(labels)) - 1
    assert _cell(dock, "F1") == "1.000"
    assert _cell(dock, "True positives") == str(n)

    # Drop a third of the predicted objects: the table must follow.
    pred = viewer.layers["prediction"]
    ids = np.unique(labels)[1:]
    pred.data = np.where(np.isin(labels, ids[: n // 3]), 0, labels)
    qtbot.waitUntil(lambda: _cell(dock, "False negatives") == str(n // 3), timeout=10_000)
    assert _cell(dock, "True positives") == str(n - n // 3)
    assert float(_cell(dock, "Recall")) == pytest.approx((n - n // 3) / n, abs=1e-3)
    assert float(_cell(dock, "Pixel recall")) < 1.0
    # mSA beside mean-average F1, as the metrics core computes it.
    msa = dock.evaluation.summary()["mean_segmentation_accuracy"]
    assert _cell(dock, "mSA, mean segmentation accuracy") == f"{msa:.3f}"
    assert 0 < msa < float(_cell(dock, "Mean-average F1"))
    # COCO AP ranks label images' cells by id (they have no confidence): its rows say so.
    table = dock.summary_table
    tips = {table.verticalHeaderItem(r).text(): table.verticalHeaderItem(r).toolTip()
            for r in range(table.rowCount())}  # fmt: skip
    for row in ("COCO AP (IoU 0.50:0.95)", "COCO AP50", "COCO AP75"):
        assert "changes when the same cells are numbered otherwise" in tips[row]

    # A brush-like partial edit (data_setitem emits labels_update) is seen too.
    before = dock.evaluation
    pred.data_setitem(np.nonzero(labels == ids[-1]), 0)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert _cell(dock, "False negatives") == str(n // 3 + 1)
    # napari's undo puts the pixels back and says so only with `set_data`.
    pred.brush_size = 40
    before = dock.evaluation
    pred.paint(np.argwhere(labels == ids[-2])[0], 0)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    edited = _cell(dock, "False negatives")
    before = dock.evaluation
    pred.undo()
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert _cell(dock, "False negatives") == str(n // 3 + 1) != edited

    path = tmp_path / "metrics.csv"
    path.write_text("old")  # the file dialog already asked before replacing
    dock.save_csv(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    recall = [r for r in rows if r["metric"] == "recall" and r["level"] == "object"]
    assert len(recall) == 18
    # Every row names the layers it compares, as cytomask evaluate names its files.
    assert {(r["prediction"], r["ground_truth"]) for r in rows} == {("prediction", "ground truth")}
    assert float(recall[0]["value"]) == pytest.approx((n - n // 3 - 1) / n)
    # Nothing else is left there but its provenance.
    assert sorted(tmp_path.iterdir()) == [path, tmp_path / "metrics_provenance.json"]


def test_highlights_and_input_errors(dock_in_viewer, qtbot, labels):
    viewer, dock = dock_in_viewer
    ids = np.unique(labels)[1:]
    viewer.layers["prediction"].data = np.where(labels == ids[0], 0, labels)
    dock.highlight_check.setChecked(True)
    name = "false negatives (prediction vs ground truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)
    qtbot.waitUntil(lambda: set(np.unique(viewer.layers[name].data)) == {0, ids[0]}, timeout=10_000)
    assert not viewer.layers["false positives (prediction vs ground truth)"].data.any()
    # Outlined in one colour each, so they stand out over the cells.
    for kind, colour in (("negatives", (1, 1, 0, 1)), ("positives", (1, 0, 1, 1))):
        layer = viewer.layers[f"false {kind} (prediction vs ground truth)"]
        assert layer.contour == 3 and layer.opacity == 1.0
        np.testing.assert_allclose(layer.colormap.map(ids[0]), colour)
    # At the IoU they are matched at: the table's columns are at 0.5, 0.75 and 0.9.
    assert dock.status.text().endswith(
        "; outlined at IoU 0.50: 0 false positives in magenta, 1 false negative in yellow."
    )
    dock.threshold_spin.setValue(0.8)
    qtbot.waitUntil(lambda: "outlined at IoU 0.80: " in dock.status.text(), timeout=10_000)
    # An edit that leaves them as they are does not set them again: every pixel, scale,
    # offset, rotation, shear and affine set anew redrew the outlines in the GUI thread (a
    # second per brush stroke on a 1022 x 1024 image).
    outlined = viewer.layers[name]
    redrawn = []
    for event in ("data", "scale", "translate", "rotate", "shear", "affine", "units"):
        getattr(outlined.events, event).connect(lambda e, event=event: redrawn.append(event))
    before = dock.evaluation
    viewer.layers["prediction"].data = np.array(viewer.layers["prediction"].data)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    qtbot.wait(200)
    assert redrawn == []
    # Highlight layers are not offered for comparison.
    names = [dock.prediction_combo.itemText(i) for i in range(dock.prediction_combo.count())]
    assert names == ["prediction", "ground truth"]
    dock.highlight_check.setChecked(False)
    assert name not in viewer.layers

    # Layers of different shapes, then a layer without objects.
    viewer.layers["prediction"].data = labels[:100]
    qtbot.waitUntil(lambda: "shape" in dock.status.text(), timeout=10_000)
    assert "Cannot compute the metrics" in dock.status.text()
    assert "(100, 256)" in dock.status.text()

    viewer.layers["prediction"].data = labels
    qtbot.waitUntil(lambda: "objects" in dock.status.text(), timeout=10_000)
    viewer.add_labels(np.zeros_like(labels), name="empty")
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("empty"))
    qtbot.waitUntil(lambda: "prediction has no objects" in dock.status.text(), timeout=10_000)
    assert _cell(dock, "F1") == "0.000"
    assert _cell(dock, "Mean matched IoU") == "–"  # nothing matched: no IoU to average


def test_a_layer_picked_by_the_dock_that_cannot_be_compared_is_not_notified(
    make_napari_viewer_proxy, qtbot, labels, monkeypatch
):
    """A new layer with negative ids, which the dock takes as the prediction by itself,
    raised an error notification that nobody asked for; the status line says it."""
    notified = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", notified.append)
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(labels, name="ground truth")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    viewer.add_labels(-labels.astype(np.int32), name="signed")
    assert dock.prediction_layer.name == "signed"
    qtbot.waitUntil(lambda: "negative" in dock.status.text(), timeout=10_000)
    assert notified == []
    dock.controls.run_button.click()  # asked for: notified
    qtbot.waitUntil(lambda: notified != [], timeout=10_000)
    assert "negative" in notified[0]
    # Outlines shown, as when the box is remembered from the last session and restored
    # with the dock: that raised a notification too, for a pair found wrong here or in
    # the worker (negative ids).
    notified.clear()
    viewer.add_labels(labels[:64, :64].copy(), name="smaller")
    for name, said in (("smaller", "has shape"), ("signed", "negative")):
        dock.highlight_check.setChecked(False)
        dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText(name))
        qtbot.waitUntil(lambda said=said: said in dock.status.text(), timeout=10_000)
        dock.status.setText("")
        dock.highlight_check.setChecked(True)
        qtbot.waitUntil(lambda said=said: said in dock.status.text(), timeout=10_000)
        assert notified == [], name


@pytest.mark.gui
def test_defaults_pick_the_mask_channel_as_truth_and_the_newest_layer_as_prediction(
    make_napari_viewer_proxy, qtbot
):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.ground_truth_combo.currentText() == "Mask (ground truth)"
    viewer.add_labels(viewer.layers["Mask (ground truth)"].data.copy(), name="segmentation")
    qtbot.waitUntil(lambda: dock.prediction_combo.currentText() == "segmentation")
    assert dock.ground_truth_combo.currentText() == "Mask (ground truth)"
    # The sample's first axis holds tiles (P): compared tile by tile, every cell matches.
    assert dock.stack_check.isChecked()
    qtbot.waitUntil(lambda: bool(dock.evaluation and dock.evaluation.frames), timeout=30_000)
    assert dock.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)
    # The outlines say where they are: on the tile on show there may be none to see.
    segmentation = viewer.layers["segmentation"]
    data = segmentation.data.copy()
    data[2][data[2] == np.unique(data[2])[1]] = 0  # a cell of tile 2 missed
    dock.highlight_check.setChecked(True)
    segmentation.data = data
    qtbot.waitUntil(lambda: "(on position 2)" in dock.status.text(), timeout=30_000)
    assert "0 false positives in magenta, 1 false negative in yellow (on position 2)." in (
        dock.status.text()
    )


def test_a_new_result_is_checked_against_a_ground_truth_of_its_shape(
    make_napari_viewer_proxy, qtbot, labels
):
    """Two images with their masks open (img2d and tests_img2d): the result of the smaller
    one was checked against the larger one's mask, kept from before, and only failed."""
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    small = labels[:128, :128]
    mask = {"cytomask": {"role": "mask", "source": "/data/mask2d.tif"}}
    viewer.add_labels(labels.copy(), name="mask2d", metadata=mask)
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    viewer.add_labels(small.copy(), name="tests_mask2d", metadata={"cytomask": {
        "role": "mask", "source": "/data/tests_mask2d.tif"}})  # fmt: skip
    image = viewer.add_image(small.astype(np.float32), name="tests_img2d")
    assert dock.ground_truth_combo.currentText() == "mask2d"
    cells = viewer.add_labels(
        small.copy(), name="tests_img2d U-Net cells", metadata=result_metadata(image, method="unet")
    )
    dock.set_prediction(cells)
    assert dock.prediction_combo.currentText() == "tests_img2d U-Net cells"
    assert dock.ground_truth_combo.currentText() == "tests_mask2d"
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)
    # A ground truth of the result's shape, picked by the user, stays.
    viewer.add_labels(small.copy(), name="my truth")
    dock.ground_truth_combo.setCurrentText("my truth")
    dock.set_prediction(cells)
    assert dock.ground_truth_combo.currentText() == "my truth"


def test_a_result_made_at_a_coarser_level_is_compared_with_that_level_of_the_mask(
    make_napari_viewer_proxy, qtbot, labels
):
    """SAM2 run at level 1/2 of a pyramidal scan whose mask channel is a pyramid too: the
    result was refused as not of "the same image" as the mask, which has a level of its
    size."""
    from napari_cytomask._qt._layers import resolution_level
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    levels = [labels, labels[::2, ::2], labels[::4, ::4]]
    geometry = {"scale": (0.65, 0.65), "translate": (100.0, -40.0), "units": "µm"}
    scan = {"cytomask": {"role": "mask", "source": "/data/scan.ome.tif"}}
    viewer.add_labels(levels, multiscale=True, name="Mask", metadata=scan, **geometry)
    scan = {"cytomask": {"role": "input", "source": "/data/scan.ome.tif"}}
    phase = viewer.add_image(
        [level.astype(np.float32) for level in levels], multiscale=True, name="Phase",
        metadata=scan, **geometry,
    )  # fmt: skip
    other = {"cytomask": {"role": "mask", "source": "/data/other.ome.tif"}}
    viewer.add_labels(levels, multiscale=True, name="other Mask", metadata=other, **geometry)
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.ground_truth_combo.setCurrentText("other Mask")
    missed = np.unique(levels[1])[1]
    cells = viewer.add_labels(
        np.where(levels[1] == missed, 0, levels[1]),
        name="Phase SAM2 masks",
        metadata=result_metadata(phase, method="sam2", parameters={"level": 1}),
        **resolution_level(phase, 1)[1],
    )
    dock.set_prediction(cells)
    assert dock.ground_truth_combo.currentText() == "Mask"  # its own scan's, at that level
    dock.highlight_check.setChecked(True)
    negatives = "false negatives (Phase SAM2 masks vs Mask)"
    qtbot.waitUntil(lambda: negatives in viewer.layers, timeout=10_000)
    assert dock.evaluation.matches.fn[0] == 1 and dock.evaluation.matches.fp[0] == 0
    assert dock.status.text().endswith(
        "1 false negative in yellow. Compared with 'Mask' at its resolution level 1/2 "
        "(128 × 128 px), the one 'Phase SAM2 masks' was made at."
    )
    # The missed cell is outlined where it lies, over the result.
    outline = viewer.layers[negatives]
    assert set(np.unique(outline.data)) == {0, missed} and outline.data.shape == (128, 128)
    np.testing.assert_allclose(outline.scale, cells.scale)
    np.testing.assert_allclose(outline.translate, cells.translate)
    # A ground truth without a level of its size: the result is said to be a coarser one.
    viewer.add_labels(labels.copy(), name="painted", **geometry)
    viewer.add_labels(levels[::2], multiscale=True, name="Mask 1/4", **geometry)
    for truth, which in (("painted", ""), ("Mask 1/4", ", which has no level of its size")):
        dock.ground_truth_combo.setCurrentText(truth)
        qtbot.waitUntil(lambda t=truth: f"'{t}'" in dock.status.text(), timeout=10_000)
        assert dock.status.text() == (
            "Cannot compute the metrics: prediction 'Phase SAM2 masks' (128 × 128 px) was made "
            f"at a coarser resolution level than ground truth '{truth}' (256 × 256 px){which}: "
            "segment at full resolution to compare them."
        )


def test_labels_of_a_copy_at_larger_pixels_are_said_to_be_so(
    make_napari_viewer_proxy, qtbot, labels
):
    """A result of a copy of the image at half its resolution was said to be made "at a
    coarser resolution level" and to be segmented again "at full resolution", which it
    was: the pixel sizes are named instead."""
    viewer = make_napari_viewer_proxy()
    um = {"units": ("µm", "µm")}
    viewer.add_labels(labels[::2, ::2].copy(), name="half", scale=(1.74, 1.74), **um)
    viewer.add_labels(labels.copy(), name="truth", scale=(0.87, 0.87), **um)
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    dock.prediction_combo.setCurrentText("half")
    dock.ground_truth_combo.setCurrentText("truth")
    qtbot.waitUntil(lambda: "larger pixels" in dock.status.text(), timeout=10_000)
    assert dock.status.text() == (
        "Cannot compute the metrics: prediction 'half' (128 × 128 px of 1.74 µm) covers the "
        "field of ground truth 'truth' (256 × 256 px of 0.87 µm) with larger pixels, and they "
        "are compared pixel by pixel: compare labels of one pixel size (segment the ground "
        "truth's own image, or resample one of them to the other's)."
    )


def test_a_crop_of_a_coarser_levels_shape_is_not_said_to_be_made_at_it(
    make_napari_viewer_proxy, qtbot, labels
):
    """A full-resolution crop of the size of a pyramid's level 1 was compared with that
    level, "the one it was made at", of its shape only; a result laid over the level (its
    pixels twice as large) still is."""
    viewer = make_napari_viewer_proxy()
    viewer.add_labels([labels, labels[::2, ::2]], multiscale=True, name="gt pyramid")
    crop = viewer.add_labels(labels[:128, :128].copy(), name="crop")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.set_prediction(crop)
    dock.ground_truth_combo.setCurrentText("gt pyramid")
    qtbot.waitUntil(lambda: "Cannot compute" in dock.status.text(), timeout=10_000)
    assert dock.status.text().startswith(
        "Cannot compute the metrics: ground truth 'gt pyramid' has shape (256, 256) but "
        "prediction 'crop' has shape (128, 128)"
    )
    coarse = viewer.add_labels(
        labels[::2, ::2].copy(), name="coarse", scale=(2, 2), translate=(0.5, 0.5)
    )
    dock.set_prediction(coarse)
    dock.ground_truth_combo.setCurrentText("gt pyramid")
    _wait_for_a_perfect_score(dock, qtbot)
    assert dock.status.text().endswith(
        "Compared with 'gt pyramid' at its resolution level 1/2 (128 × 128 px), the one "
        "'coarse' was made at."
    )


def _wait_for_a_perfect_score(dock, qtbot) -> None:
    """Wait until the dock's pair scores mean-average F1 1 (a result checked against its
    own truth)."""
    qtbot.waitUntil(
        lambda: (
            dock.evaluation is not None
            and dock.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)
        ),
        timeout=10_000,
    )


def test_a_result_is_checked_against_the_mask_of_its_own_scan(
    make_napari_viewer_proxy, qtbot, labels
):
    """Three scans of one size open: the cells of the second were checked against the first
    one's mask (F1 0), which came first in the layer list and had the same shape."""
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    for scan, data in (("b", labels[::-1].copy()), ("c", labels.copy())):
        record = {"cytomask": {"role": "mask", "source": f"/data/{scan}.tif"}}
        viewer.add_labels(data, name=f"mask {scan}", metadata=record)
    record = {"cytomask": {"role": "input", "source": "/data/c.tif"}}
    phase = viewer.add_image(labels.astype(np.float32), name="phase c", metadata=record)
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    cells = viewer.add_labels(
        labels.copy(), name="phase c U-Net cells", metadata=result_metadata(phase, method="unet")
    )
    dock.set_prediction(cells)
    assert dock.ground_truth_combo.currentText() == "mask c"
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)
    # A dock opened afterwards pairs them too.
    later = MetricsDock(viewer)
    qtbot.addWidget(later)
    assert later.prediction_combo.currentText() == "phase c U-Net cells"
    assert later.ground_truth_combo.currentText() == "mask c"
    # A result of the other scan chosen by hand takes that scan's mask along.
    record = {"cytomask": {"role": "input", "source": "/data/b.tif"}}
    phase_b = viewer.add_image(labels.astype(np.float32), name="phase b", metadata=record)
    viewer.add_labels(
        labels[::-1].copy(), name="phase b U-Net cells",
        metadata=result_metadata(phase_b, method="unet"),
    )  # fmt: skip
    dock.prediction_combo.setCurrentText("phase b U-Net cells")
    assert dock.ground_truth_combo.currentText() == "mask b"
    _wait_for_a_perfect_score(dock, qtbot)


def test_a_ground_truth_picked_for_a_scan_stays_for_its_later_results(
    make_napari_viewer_proxy, qtbot, labels
):
    """A scan with a Cellpose mask channel and a corrected mask opened from its own file:
    picked by hand, the corrected one was swapped back for the scan's channel when the
    next result came or a result was picked, and every score was against Cellpose."""
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    scan = {"cytomask": {"role": "mask", "source": "/data/scan.ome.tif"}}
    viewer.add_labels(labels[::-1].copy(), name="cellpose mask", metadata=scan)
    record = {"cytomask": {"role": "input", "source": "/data/scan.ome.tif"}}
    phase = viewer.add_image(labels.astype(np.float32), name="phase", metadata=record)
    own = {"cytomask": {"role": "mask", "source": "/data/corrected_gt.tif"}}
    viewer.add_labels(labels.copy(), name="corrected_gt", metadata=own)
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)

    def segmented(name):
        cells = viewer.add_labels(
            labels.copy(), name=name, metadata=result_metadata(phase, method="unet")
        )
        dock.set_prediction(cells)

    segmented("cells 1")
    assert dock.ground_truth_combo.currentText() == "cellpose mask"  # the scan's own
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("corrected_gt"))
    dock.ground_truth_combo.activated.emit(dock.ground_truth_combo.currentIndex())  # by hand
    segmented("cells 2")
    assert dock.ground_truth_combo.currentText() == "corrected_gt"
    dock.prediction_combo.setCurrentText("cells 1")
    assert dock.ground_truth_combo.currentText() == "corrected_gt"
    _wait_for_a_perfect_score(dock, qtbot)


def _open_scans(viewer, *paths) -> None:
    """Write a scan of channels 'phase' and 'mask' at each path, the first with 2 x 2 square
    cells, the next with 3 x 3, and open them with the plugin's reader, which names the
    second scan's layers 'phase [1]' and 'mask [1]'."""
    for n, path in enumerate(paths, 2):
        mask = np.zeros((48, 48), np.uint16)
        side = 48 // n
        for cell in range(n * n):
            y, x = divmod(cell, n)
            mask[y * side + 2 : (y + 1) * side - 2, x * side + 2 : (x + 1) * side - 2] = cell + 1
        phase = np.where(mask > 0, 300, 1000).astype(np.uint16)
        path.parent.mkdir(exist_ok=True)
        tifffile.imwrite(path, np.stack([phase, mask]), imagej=True,
                         metadata={"axes": "CYX", "Labels": ["phase", "mask"]})  # fmt: skip
        viewer.open(path, plugin="napari-cytomask")


def _segment(viewer, channel: str, name: str = "U-Net cells"):
    """A result of ``channel`` as a step makes it, holding the cells of its scan's mask."""
    from napari_cytomask.io.layers import result_metadata

    cells = viewer.layers[channel.replace("phase", "mask")].data.copy()
    metadata = result_metadata(viewer.layers[channel], method="unet")
    return viewer.add_labels(cells, name=f"{channel} {name}", metadata=metadata)


def _pair(dock) -> tuple[str, str]:
    return dock.prediction_combo.currentText(), dock.ground_truth_combo.currentText()


def test_a_prediction_the_dock_falls_back_on_takes_its_own_scans_mask(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """Two scans segmented, the second's cells checked against its mask, then closed: the
    first scan's cells took their place, still against the second scan's mask (F1 0.048)."""
    viewer = make_napari_viewer_proxy()
    _open_scans(viewer, tmp_path / "set1.tif", tmp_path / "set2.tif")
    _segment(viewer, "phase")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.set_prediction(_segment(viewer, "phase [1]"))
    assert _pair(dock) == ("phase [1] U-Net cells", "mask [1]")
    viewer.layers.remove("phase [1] U-Net cells")
    assert _pair(dock) == ("phase U-Net cells", "mask")
    _wait_for_a_perfect_score(dock, qtbot)


def test_layers_of_different_files_are_noted(make_napari_viewer_proxy, qtbot, tmp_path):
    """Masks of two scans, or any pair picked from two files, were scored without a word,
    though the score compares another scan's cells. Nor is a scan's mask taken for the
    prediction by itself: before anything was segmented, two scans' masks were compared,
    and one scan opened twice scored its mask against itself (F1 1.000)."""
    viewer = make_napari_viewer_proxy()
    _open_scans(viewer, tmp_path / "set1.tif", tmp_path / "set2.tif")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert _pair(dock) == ("", "mask") and dock.evaluation is None
    assert dock.status.text().startswith("Pick a prediction to compare with 'mask'.")
    dock.prediction_combo.setCurrentText("mask [1]")  # picked by hand
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.status.text().endswith(
        " objects. Note: 'mask [1]' comes from set2.tif and 'mask' from set1.tif: unless "
        "set1.tif holds the same field, the score compares another scan's cells; pick a "
        "ground truth of set2.tif."
    )
    # A result checked against its own scan's mask has no note; picked from the other scan
    # by hand, the mask has.
    dock.set_prediction(_segment(viewer, "phase"))
    assert _pair(dock) == ("phase U-Net cells", "mask")
    _wait_for_a_perfect_score(dock, qtbot)
    assert "Note" not in dock.status.text()
    dock.ground_truth_combo.setCurrentText("mask [1]")
    qtbot.waitUntil(lambda: "comes from" in dock.status.text(), timeout=10_000)
    assert "Note: 'phase U-Net cells' comes from set1.tif and 'mask [1]' from set2.tif" in (
        dock.status.text()
    )


def test_each_image_is_checked_against_the_ground_truth_file_beside_it(
    make_napari_viewer_proxy, qtbot, tmp_path, labels
):
    """Usiigaci's layout, set1/raw.tif with set1/instances_ids.png and set2 alike: set2's
    cells were scored against set1's ground truth (mSA 0.0008) without a word."""
    from napari.layers._source import layer_source

    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    rng = np.random.default_rng(0)
    truths = {"set1": labels, "set2": labels[::-1].copy()}
    for name, truth in truths.items():
        (tmp_path / name).mkdir()
        phase = rng.normal(1000, 100, truth.shape) - 300 * (truth > 0)
        tifffile.imwrite(tmp_path / name / "raw.tif", phase.astype(np.uint16))
        viewer.open(tmp_path / name / "raw.tif", plugin="napari-cytomask")
        with layer_source(path=str(tmp_path / name / "instances_ids.png")):
            viewer.add_labels(truth, name=f"instances_ids {name}")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    for name, image in (("set1", "raw"), ("set2", "raw [1]")):
        metadata = result_metadata(viewer.layers[image], method="unet")
        dock.set_prediction(
            viewer.add_labels(truths[name], name=f"{name} cells", metadata=metadata)
        )
        assert _pair(dock) == (f"{name} cells", f"instances_ids {name}")
        _wait_for_a_perfect_score(dock, qtbot)
        assert "Note" not in dock.status.text()
    # Picked from the other folder by hand: said to be another field's.
    dock.ground_truth_combo.setCurrentText("instances_ids set1")
    qtbot.waitUntil(lambda: "comes from" in dock.status.text(), timeout=10_000)
    assert (
        "'set2 cells' comes from set2/raw.tif and 'instances_ids set1' from "
        "set1/instances_ids.png" in dock.status.text()
    )


def test_a_ground_truth_opened_after_its_cells_takes_the_place_of_another_fields(
    make_napari_viewer_proxy, qtbot, tmp_path, labels, monkeypatch
):
    """A long day: set1's mask left open, set2 segmented, then set2's own mask opened. The
    check stayed on set1's mask (F1 0.016), its note asking for the one now open. One
    picked by hand for set2's cells stays, as ever."""
    from napari.layers._source import layer_source

    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    rng = np.random.default_rng(0)
    truths = {"set1": labels[::-1].copy(), "set2": labels}
    for name, truth in truths.items():
        (tmp_path / name).mkdir()
        phase = rng.normal(1000, 100, truth.shape) - 300 * (truth > 0)
        tifffile.imwrite(tmp_path / name / "raw.tif", phase.astype(np.uint16))
    with layer_source(path=str(tmp_path / "set1" / "instances_ids.png")):
        viewer.add_labels(truths["set1"], name="instances_ids")
    viewer.open(tmp_path / "set2" / "raw.tif", plugin="napari-cytomask")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    metadata = result_metadata(viewer.layers["raw"], method="unet")
    dock.set_prediction(viewer.add_labels(truths["set2"], name="raw cells", metadata=metadata))
    qtbot.waitUntil(lambda: "comes from" in dock.status.text(), timeout=10_000)
    with layer_source(path=str(tmp_path / "set2" / "instances_ids.png")):
        viewer.add_labels(truths["set2"], name="instances_ids [1]")
    assert _pair(dock) == ("raw cells", "instances_ids [1]")
    _wait_for_a_perfect_score(dock, qtbot)
    assert "Note" not in dock.status.text()
    # Its saved metrics say which field's they are: named with its folder, each layer with
    # its file in the rows (every field's were 'metrics raw cells vs instances_ids').
    asked = []
    monkeypatch.setattr(
        metrics_dock, "ask_save_path",
        lambda parent, title, name, *args: asked.append(name) or str(tmp_path / name),
    )  # fmt: skip
    dock.save_csv()
    assert asked == ["metrics set2 raw cells vs instances_ids [1].csv"]
    with open(tmp_path / asked[0], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(row["prediction"], row["ground_truth"]) for row in rows} == {
        (f"raw cells ({tmp_path / 'set2' / 'raw.tif'})",
         f"instances_ids [1] ({tmp_path / 'set2' / 'instances_ids.png'})"),
    }  # fmt: skip
    # Picked by hand: another mask opened later leaves it.
    combo = dock.ground_truth_combo
    combo.setCurrentText("instances_ids")
    combo.activated.emit(combo.currentIndex())  # as a click on the list does
    with layer_source(path=str(tmp_path / "set2" / "instances_ids_2.png")):
        viewer.add_labels(truths["set2"], name="instances_ids_2")
    assert _pair(dock) == ("raw cells", "instances_ids")


def test_of_the_ground_truth_files_beside_an_image_its_namesake_is_taken(
    make_napari_viewer_proxy, tmp_path, labels
):
    """gt_set30.tif, opened first, was taken for D_plain_set11.tif's ground truth where
    gt_set11.tif lay beside it too: 42 cells against 72, without a word."""
    from napari.layers._source import layer_source

    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    phase = np.random.default_rng(0).normal(1000, 100, labels.shape) - 300 * (labels > 0)
    tifffile.imwrite(tmp_path / "D_plain_set11.tif", phase.astype(np.uint16))
    viewer.open(tmp_path / "D_plain_set11.tif", plugin="napari-cytomask")
    for name in ("gt_set30", "gt_set11"):
        with layer_source(path=str(tmp_path / f"{name}.tif")):
            viewer.add_labels(labels.copy(), name=name)
    dock = MetricsDock(viewer)
    metadata = result_metadata(viewer.layers["D_plain_set11"], method="unet")
    dock.set_prediction(viewer.add_labels(labels.copy(), name="cells", metadata=metadata))
    assert _pair(dock) == ("cells", "gt_set11")
    # A tie in the longest run shared goes to the name most alike; dots are no suffix.
    from napari_cytomask._qt.metrics_dock import _name_likeness

    assert _name_likeness("gt_set1.tif", "D_plain_set1.tif") > _name_likeness(
        "gt_set11.tif", "D_plain_set1.tif"
    )
    assert _name_likeness("a.2024.05.01_gt.png", "a.2024.05.01.ome.tif")[0] == len("a.2024.05.01")


def test_files_of_one_name_are_told_apart_by_their_paths_and_a_truth_file_is_no_scan():
    """Two scans named alike in two folders would be named the same in the note. A ground
    truth kept in a file of its own (instances_ids.png beside raw.tif) is not another
    scan's mask: noting it told the user to pick a ground truth the image's file lacks."""
    from napari_cytomask.io.layers import METADATA_KEY
    from napari_cytomask.roles import other_files

    def layer(source, kind=Labels, role="mask"):
        return kind(
            np.zeros((4, 4), np.uint8), metadata={METADATA_KEY: {"source": source, "role": role}}
        )

    scans = ["/a/set1.tif", "/b/set2.tif", "/b/scan.tif"]
    assert other_files(layer("/a/set1.tif"), layer("/b/set2.tif"), scans) == (
        "a/set1.tif",
        "b/set2.tif",
    )
    assert other_files(layer("/a/scan.tif"), layer("/b/scan.tif"), scans) == (
        "a/scan.tif",
        "b/scan.tif",
    )
    assert other_files(layer("/a/x/scan.tif"), layer("/b/x/scan.tif"), ["/b/x/scan.tif"]) == (
        "/a/x/scan.tif",
        "/b/x/scan.tif",
    )
    assert other_files(layer("/a/scan.tif"), layer("/a/scan.tif"), scans) is None
    assert other_files(layer("/a/scan.tif"), layer(None), scans) is None
    assert other_files(layer("/a/raw.tif"), layer("/a/instances_ids.png"), ["/a/raw.tif"]) is None
    # A file of its own in another folder is another field's ground truth.
    assert other_files(layer("/a/raw.tif"), layer("/c/instances_ids.png"), scans) == (
        "a/raw.tif",
        "c/instances_ids.png",
    )


def test_an_open_dock_follows_a_new_result_unless_a_prediction_was_picked(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """Open beside a first scan's cells, the dock kept them when the second scan was
    segmented, though it had chosen them itself and says it checks the newest result."""
    viewer = make_napari_viewer_proxy()
    _open_scans(viewer, tmp_path / "set1.tif", tmp_path / "set2.tif")
    _segment(viewer, "phase")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert _pair(dock) == ("phase U-Net cells", "mask")
    _segment(viewer, "phase [1]")
    assert _pair(dock) == ("phase [1] U-Net cells", "mask [1]")
    _wait_for_a_perfect_score(dock, qtbot)
    # A prediction picked by hand stays, with its own scan's mask.
    index = dock.prediction_combo.findText("phase U-Net cells")
    dock.prediction_combo.setCurrentIndex(index)
    dock.prediction_combo.activated.emit(index)
    _segment(viewer, "phase [1]", "SAM2 cells")
    assert _pair(dock) == ("phase U-Net cells", "mask")
    # Also when a step hands its result over (the Segment cytoplasm dock does).
    dock.set_prediction(viewer.layers["phase [1] SAM2 cells"])
    assert _pair(dock) == ("phase U-Net cells", "mask")


def test_an_open_dock_follows_a_run_written_into_an_earlier_result(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """A scan segmented again into its earlier result (same name) while the dock showed
    another scan's cells: no layer was added, and the dock kept the other cells."""
    from napari_cytomask.io.layers import record_written

    viewer = make_napari_viewer_proxy()
    _open_scans(viewer, tmp_path / "set1.tif", tmp_path / "set2.tif")
    first = _segment(viewer, "phase")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    second = _segment(viewer, "phase [1]")
    assert _pair(dock) == ("phase [1] U-Net cells", "mask [1]")

    def run_again(layer, cells) -> None:
        layer.data = cells  # as the steps write a run into the layer of its name
        record_written(layer)

    # New cells (the first cell missed), checked against their own scan's mask.
    run_again(first, np.where(first.data == 1, 0, first.data))
    assert _pair(dock) == ("phase U-Net cells", "mask")
    qtbot.waitUntil(lambda: _cell(dock, "False negatives") == "1", timeout=10_000)
    # The same cells again are a run too; another metadata change is none.
    run_again(second, second.data.copy())
    assert _pair(dock) == ("phase [1] U-Net cells", "mask [1]")
    first.metadata = {**first.metadata, "note": "checked"}
    assert _pair(dock) == ("phase [1] U-Net cells", "mask [1]")
    # A prediction picked by hand stays.
    index = dock.prediction_combo.findText("phase U-Net cells")
    dock.prediction_combo.setCurrentIndex(index)
    dock.prediction_combo.activated.emit(index)
    run_again(second, second.data.copy())
    assert _pair(dock) == ("phase U-Net cells", "mask")


def test_cells_of_a_scan_without_ground_truth_do_not_break_the_pair(
    make_napari_viewer_proxy, qtbot, tmp_path, labels
):
    """Cells checked against a ground truth kept in a file of its own, then a second image
    segmented: the dock took its cells and scored them against the first image's truth."""
    from napari.layers._source import layer_source

    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    rng = np.random.default_rng(0)
    for name in ("A", "B"):
        phase = rng.normal(1000, 100, labels.shape) - 300 * (labels > 0)
        tifffile.imwrite(tmp_path / f"{name}.tif", phase.astype(np.uint16))
        viewer.open(tmp_path / f"{name}.tif", plugin="napari-cytomask")
    with layer_source(path=str(tmp_path / "A_truth.tif")):
        viewer.add_labels(labels.copy(), name="A_truth")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    for name in ("A", "B"):
        metadata = result_metadata(viewer.layers[name], method="unet")
        viewer.add_labels(labels.copy(), name=f"{name} cells", metadata=metadata)
        if name == "A":
            assert _pair(dock) == ("A cells", "A_truth")
    assert _pair(dock) == ("A cells", "A_truth")
    _wait_for_a_perfect_score(dock, qtbot)
    assert "Note" not in dock.status.text()


def test_a_result_alone_is_not_checked_against_itself(make_napari_viewer_proxy, qtbot, labels):
    """With only the dock's own result there is no ground truth: the dock says what to add
    instead of scoring the layer against itself, and refuses the same layer twice."""
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    image = viewer.add_image(labels.astype(np.float32), name="phase")
    viewer.add_labels(labels.copy(), name="cells", metadata=result_metadata(image, method="unet"))
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.prediction_combo.currentText() == "cells"
    assert dock.ground_truth_layer is None
    assert "Nothing to check 'cells' against" in dock.status.text()
    assert dock.evaluation is None

    viewer.add_labels(labels.copy(), name="annotation")
    assert dock.ground_truth_combo.currentText() == "annotation"
    assert dock.prediction_combo.currentText() == "cells"
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)

    dock.evaluation = None
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("cells"))
    assert "'cells' is both the prediction and the ground truth" in dock.status.text()
    qtbot.wait(300)
    assert dock.evaluation is None


def test_label_ids_opened_as_an_image_are_pointed_to(make_napari_viewer_proxy, qtbot, tmp_path):
    """napari opens a PNG of cell ids (Usiigaci's instances_ids.png) as an Image, which the
    dock cannot compare: the status names it and says how to make it a mask. It is a
    channel of its file, so its role can be corrected; once a mask, it is compared."""
    import imageio.v3 as iio
    from napari.layers import Labels

    from napari_cytomask.roles import role_of, set_role, source_of

    ids = np.zeros((64, 64), np.uint16)
    ids[5:20, 5:20], ids[30:50, 25:60] = 1, 2
    path = tmp_path / "instances_ids.png"
    iio.imwrite(path, ids)
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    raw = np.random.default_rng(0).integers(1, 900, (64, 64), np.uint16)
    image = viewer.add_image(raw, name="raw")
    viewer.add_labels(ids.copy(), name="cells", metadata=result_metadata(image, method="unet"))
    viewer.open(path, plugin="napari")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.ground_truth_layer is None
    assert dock.status.text().endswith(
        "'instances_ids' is open as an image: if it holds cell ids, make it a mask in Channel "
        "roles (step 1 of Segment cytoplasm, or Layers > Data), and it is offered here."
    )  # and not 'raw', an image of light
    opened = viewer.layers["instances_ids"]
    assert role_of(opened) == "image" and source_of(opened) == str(path)
    mask = set_role(viewer.layers, opened, "mask")
    assert isinstance(mask, Labels) and role_of(mask) == "mask"
    assert viewer.layers.index(mask) == 2 and source_of(mask) == str(path)
    np.testing.assert_array_equal(mask.data, ids)
    qtbot.waitUntil(lambda: dock.ground_truth_combo.currentText() == "instances_ids")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)


def test_a_failed_comparison_leaves_no_numbers_to_save(dock_in_viewer, qtbot, labels, tmp_path):
    """Once the pair cannot be compared, the table, plot and Save CSV… no longer show the
    previous pair's numbers; a saved file is named after, and reported with, its pair."""
    viewer, dock = dock_in_viewer
    assert _cell(dock, "F1") == "1.000" and dock.save_button.isEnabled()
    viewer.add_labels(labels[:100].copy(), name="crop")
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("crop"))
    qtbot.waitUntil(lambda: "shape" in dock.status.text(), timeout=10_000)
    assert dock.evaluation is None and not dock.save_button.isEnabled()
    assert _cell(dock, "F1") == "" and _cell(dock, "Mean-average F1") == ""
    assert not dock.axes.lines
    # An empty plot is not emptied again (a new result cleared it three times, 40 ms each).
    drawn = []
    dock.canvas.draw_idle = lambda: drawn.append(1)
    dock._clear_results()
    assert drawn == []
    dock.save_csv(tmp_path / "stale.csv")
    assert not (tmp_path / "stale.csv").exists()
    assert dock.status.text() == "Nothing to save yet: choose two Labels layers."

    # The ground truth closed: nothing left to show either.
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("prediction"))
    qtbot.waitUntil(lambda: dock.save_button.isEnabled(), timeout=10_000)
    viewer.layers.remove("ground truth")
    viewer.layers.remove("crop")
    assert dock.evaluation is None and _cell(dock, "F1") == ""

    viewer.add_labels(labels.copy(), name="ground truth")
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("ground truth"))
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("prediction"))
    qtbot.waitUntil(lambda: dock.save_button.isEnabled(), timeout=10_000)
    dock.save_csv(tmp_path / "m.csv")
    assert dock.status.text() == (
        f"Saved the metrics of 'prediction' against 'ground truth' to {tmp_path / 'm.csv'}."
    )
    # A failed save keeps the numbers, so it can be tried elsewhere.
    (tmp_path / "notes").write_text("a file where the folder should be")
    dock.save_csv(tmp_path / "notes" / "m.csv")
    assert dock.status.text().startswith("Could not save the metrics:")
    assert dock.save_button.isEnabled() and _cell(dock, "F1") == "1.000"


def test_frames_only_for_stacks(make_napari_viewer_proxy, qtbot, labels):
    """After a time stack, a 2-D pair is one image again: rows are not frames."""
    viewer = make_napari_viewer_proxy()
    shifted = np.roll(labels, 3, axis=1)
    movie = viewer.add_labels(np.stack([labels] * 2), name="movie mask", axis_labels="tyx")
    viewer.add_labels(np.stack([shifted] * 2), name="movie cells", axis_labels="tyx")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.ground_truth_layer is movie or dock.ground_truth_combo.currentText() == "movie mask"
    assert dock.stack_check.isChecked() and dock.stack_check.isEnabled()
    qtbot.waitUntil(lambda: bool(dock.evaluation and dock.evaluation.frames), timeout=10_000)
    viewer.layers.remove("movie mask")
    viewer.layers.remove("movie cells")
    viewer.add_labels(labels.copy(), name="mask")
    viewer.add_labels(shifted, name="cells")
    assert not dock.stack_check.isChecked() and not dock.stack_check.isEnabled()
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert not dock.evaluation.frames
    assert dock.evaluation.matches.n_true == len(np.unique(labels)) - 1
    # A Z stack is one volume (as `cytomask evaluate` compares it); a stack whose axes no
    # file named is frames, as the plugin segments it.
    for axes, frames in (("zyx", False), (None, True)):
        for layer in list(viewer.layers):
            viewer.layers.remove(layer)
        viewer.add_labels(np.stack([labels] * 2), name="stack mask", axis_labels=axes)
        viewer.add_labels(np.stack([shifted] * 2), name="stack cells", axis_labels=axes)
        assert dock.stack_check.isChecked() == frames


def test_frames_that_hold_planes_are_said_to_be_compared_as_volumes(
    make_napari_viewer_proxy, qtbot, labels
):
    """A T × Z stack compared frame by frame compares each time point as a volume: cells
    segmented plane by plane never match cells drawn in 3-D, and nothing said so."""
    viewer = make_napari_viewer_proxy()
    volume = np.stack([labels[:64, :64]] * 2)
    viewer.add_labels(np.stack([volume] * 3), name="tz mask", axis_labels="tzyx")
    viewer.add_labels(np.stack([volume] * 3), name="tz cells", axis_labels="tzyx")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    said = "in 3 frames (counts summed over frames; mSA averaged); each frame compared as one "
    assert f"{said}volume of 2 " in dock.status.text()
    dock.stack_check.setChecked(False)
    qtbot.waitUntil(lambda: "the whole stack compared as one volume of 6 planes" in (
        dock.status.text()), timeout=10_000)  # fmt: skip


def test_a_result_of_a_z_stack_is_compared_plane_by_plane(make_napari_viewer_proxy, qtbot, labels):
    """The U-Net's cells of a Z stack (segmented plane by plane, numbered on from plane to
    plane) were compared with the mask as one volume: F1 0.19 where each plane scores 0.97,
    and nothing said why."""
    from napari_cytomask.io.layers import RESULT_ROLE

    viewer = make_napari_viewer_proxy()
    crop = labels[:64, :64]
    truth = np.stack([crop] * 3)  # a cell keeps its id through the planes
    n = int(crop.max())
    planes = np.stack([np.where(crop > 0, crop + z * n, 0) for z in range(3)])
    viewer.add_labels(truth, name="mask", axis_labels="zyx")
    record = {"role": RESULT_ROLE, "method": "unet"}
    viewer.add_labels(planes, name="cells", axis_labels="zyx", metadata={"cytomask": record})
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.prediction_layer.name == "cells" and dock.stack_check.isChecked()
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.evaluation.matches.f1[0] == 1.0 and len(dock.evaluation.frames) == 3
    assert "volume" not in dock.status.text()
    # Hand-drawn labels exported and opened again (a result of no method) stay a volume.
    record = {"role": RESULT_ROLE, "method": None}
    drawn = viewer.add_labels(truth, name="drawn", axis_labels="zyx", metadata={"cytomask": record})
    dock.prediction_combo.setCurrentText(drawn.name)
    assert not dock.stack_check.isChecked()


def test_positions_by_time_points_are_compared_plane_by_plane(
    make_napari_viewer_proxy, qtbot, labels
):
    """Only the first axis was split: each position's time points were one volume, and a
    cell keeping its id over time one object. The outlined frames are named by position
    and time point."""
    viewer = make_napari_viewer_proxy()
    crop = labels[:64, :64]
    truth = np.stack([np.stack([crop] * 3)] * 2)  # ids kept over time
    guess = truth.copy()
    guess[1, 2] = 0  # every cell missed at position 1, time point 2, and one at 0, 1
    guess[0, 1][guess[0, 1] == guess[0, 1].max()] = 0
    viewer.add_labels(truth, name="pt mask", axis_labels="ptyx")
    viewer.add_labels(guess, name="pt cells", axis_labels="ptyx")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.highlight_check.setChecked(True)
    qtbot.waitUntil(lambda: "outlined" in dock.status.text(), timeout=10_000)
    n = len(np.unique(crop)) - 1
    assert dock.evaluation.matches.n_true == 6 * n
    assert dock.evaluation.matches.fn[0] == n + 1
    text = dock.status.text()
    assert "in 6 frames" in text and "volume" not in text
    assert (
        f"{n + 1} false negatives in" in text
        and "(on frames (position, time point) 0,1; 1,2)" in text
    )


def test_highlights_follow_the_pair_and_are_never_compared(make_napari_viewer_proxy, qtbot, labels):
    """Highlight layers lie over the pair they describe, even when the pair moves, and a
    dock opened later (the first one closed) does not take them for a prediction."""
    viewer = make_napari_viewer_proxy()
    ids = np.unique(labels)[1:]
    viewer.add_labels(labels.copy(), name="ground truth")
    viewer.add_labels(np.where(labels == ids[0], 0, labels), name="cells")
    first = MetricsDock(viewer)
    qtbot.addWidget(first)
    first.highlight_check.setChecked(True)
    name = "false negatives (cells vs ground truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)

    viewer.add_labels(labels.copy(), name="moved truth", scale=(0.5, 0.5), translate=(30, 40))
    viewer.add_labels(
        np.where(labels == ids[1], 0, labels),
        name="moved cells",
        scale=(0.5, 0.5),
        translate=(30, 40),
    )
    first.ground_truth_combo.setCurrentIndex(first.ground_truth_combo.findText("moved truth"))
    first.prediction_combo.setCurrentIndex(first.prediction_combo.findText("moved cells"))
    moved = "false negatives (moved cells vs moved truth)"
    qtbot.waitUntil(lambda: moved in viewer.layers, timeout=10_000)
    assert tuple(viewer.layers[moved].scale) == (0.5, 0.5)
    assert tuple(viewer.layers[moved].translate) == (30, 40)
    # Over the layers added since, and hidden while no comparison stands.
    assert [layer.name for layer in viewer.layers][-2:] == [
        "false positives (moved cells vs moved truth)",
        moved,
    ]
    viewer.add_labels(labels[:50].copy(), name="crop")
    first.prediction_combo.setCurrentIndex(first.prediction_combo.findText("crop"))
    qtbot.waitUntil(lambda: "shape" in first.status.text(), timeout=10_000)
    assert not viewer.layers[moved].visible
    first.prediction_combo.setCurrentIndex(first.prediction_combo.findText("moved cells"))
    qtbot.waitUntil(lambda: viewer.layers[moved].visible, timeout=10_000)
    assert [layer.name for layer in viewer.layers][-1] == moved
    # What the user does to them stays: hidden and moved down, an edit brings neither back.
    positives = viewer.layers["false positives (moved cells vs moved truth)"]
    positives.visible = False
    viewer.layers.move(viewer.layers.index(positives), 0)
    before = first.evaluation
    viewer.layers["moved cells"].data_setitem((np.array([0]), np.array([0])), 9)
    qtbot.waitUntil(
        lambda: first.evaluation is not None and first.evaluation is not before, timeout=10_000
    )
    assert not positives.visible and viewer.layers.index(positives) == 0

    second = MetricsDock(viewer)
    qtbot.addWidget(second)
    offered = [second.prediction_combo.itemText(i) for i in range(second.prediction_combo.count())]
    assert offered == ["ground truth", "cells", "moved truth", "moved cells", "crop"]
    assert second.prediction_combo.currentText() == "crop"
    first.runner.cancel()


def test_layers_that_do_not_line_up_are_noted(make_napari_viewer_proxy, qtbot, labels):
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(labels.copy(), name="ground truth")
    viewer.add_labels(labels.copy(), name="cells", translate=(300, 300))
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.status.text().endswith(
        " objects. Note: 'cells' and 'ground truth' do not line up in the viewer (their "
        "translation differs), yet are compared pixel by pixel."
    )
    # With nothing matched as well, the notes follow one another as sentences.
    viewer.add_labels(np.zeros_like(labels), name="empty", translate=(300, 300))
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("empty"))
    qtbot.waitUntil(lambda: "prediction has no objects" in dock.status.text(), timeout=10_000)
    assert dock.status.text().endswith(
        "predicted objects. Note: the prediction has no objects, so ratios without a true "
        "positive are 0. Note: 'empty' and 'ground truth' do not line up in the viewer (their "
        "translation differs), yet are compared pixel by pixel."
    )
    # Turned or sheared in the viewer: noted too (only scale and translate were compared).
    viewer.add_labels(labels.copy(), name="turned", rotate=90, shear=[0.2])
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("turned"))
    qtbot.waitUntil(lambda: "'turned'" in dock.status.text(), timeout=10_000)
    assert dock.status.text().endswith("(their rotation and shear differ), yet are compared "
                                       "pixel by pixel.")  # fmt: skip


def test_a_comparison_of_the_pair_before_is_not_shown_as_the_next(
    dock_in_viewer, qtbot, labels, monkeypatch
):
    """A comparison still running when a pair of other layers and shapes was picked came in
    before the new one started, and was shown as the new pair's: with outlines on, "cannot
    reshape array of size 65536 into shape (100, 120)"."""
    viewer, dock = dock_in_viewer
    small = labels[:100, :120]
    viewer.add_labels(small.copy(), name="small prediction")
    viewer.add_labels(small.copy(), name="small truth")
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("prediction"))
    qtbot.waitUntil(lambda: not dock.runner.busy and dock.evaluation is not None)
    release = threading.Event()
    compute = metrics_dock.compute_metrics

    def held(*args, **kwargs):
        release.wait(10)
        return compute(*args, **kwargs)

    monkeypatch.setattr(metrics_dock, "compute_metrics", held)
    dock.highlight_check.setChecked(True)  # compares the first pair, held
    assert dock.runner.busy
    with QSignalBlocker(dock.prediction_combo):  # both sides change: one new pair
        dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("small prediction"))
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("small truth"))
    release.set()
    name = "false positives (small prediction vs small truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)
    assert viewer.layers[name].data.shape == small.shape
    assert "false positives (prediction vs ground truth)" not in viewer.layers
    n_cells = len(np.unique(small)) - 1
    assert dock.status.text().startswith(f"{n_cells} ground-truth and {n_cells} predicted")


def test_a_closed_dock_computes_no_more(make_napari_viewer, qtbot, labels, monkeypatch):
    """napari keeps a closed dock's widget: three closed metrics docks each computed the
    metrics again at every edit of the prediction."""
    from napari_cytomask._qt import metrics_dock

    computed = []

    def counting(*args, **kwargs):
        computed.append(1)
        return compute(*args, **kwargs)

    compute = metrics_dock.compute_metrics
    monkeypatch.setattr(metrics_dock, "compute_metrics", counting)
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(labels, name="ground truth", metadata={"cytomask": {"role": "mask"}})
    prediction = viewer.add_labels(labels.copy(), name="prediction")
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="metrics")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)

    def edit() -> None:
        data = prediction.data.copy()
        data[:4, :4] = data.max() + 1
        prediction.data = data

    viewer.window.remove_dock_widget(dock)
    computed.clear()
    edit()
    qtbot.wait(600)  # past the quiet period of a live run
    assert computed == []
    # Docked again, it follows the edits again.
    viewer.window.add_dock_widget(dock, name="metrics again")
    edit()
    qtbot.waitUntil(lambda: computed != [], timeout=10_000)


def test_a_result_made_one_frame_at_a_time_is_compared_in_those_frames(
    make_napari_viewer_proxy, qtbot, labels
):
    """A split previewed on one position of four became the prediction, and its three
    never-made positions were scored as cells missed: F1@0.5 0.39 for a perfect split."""
    viewer = make_napari_viewer_proxy()
    truth = np.stack([labels] * 3)
    preview = np.zeros_like(truth)
    preview[1] = labels
    viewer.add_labels(truth, name="ground truth", axis_labels=("P", "y", "x"))
    record = {"role": "result", "method": "watershed_split", "parameters": None,
              "frames_made": ["1"]}  # fmt: skip
    viewer.add_labels(preview, name="cells split", metadata={"cytomask": record})
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.prediction_layer.name == "cells split"
    n = len(np.unique(labels)) - 1
    assert _cell(dock, "F1") == "1.000" and _cell(dock, "True positives") == str(n)
    assert dock.status.text().startswith(
        f"{n} ground-truth and {n} predicted objects in 1 of 3 frames."
    )
    assert dock.status.text().endswith(
        "Compared in position 1 only: the other frames of 'cells split' were never made (a "
        "preview, or one position segmented alone, makes the frame on show only). Segment "
        "them all (all positions, time points or planes) to make them; a split's Apply "
        "splits the frames its input holds."
    )
    # Once every frame is made (an Apply), the whole stack is compared again.
    layer = viewer.layers["cells split"]
    layer.metadata = {"cytomask": {**record, "frames_made": None}}
    layer.data = truth.copy()
    qtbot.waitUntil(lambda: _cell(dock, "True positives") == str(3 * n), timeout=10_000)
    assert "Compared in" not in dock.status.text()


def test_frames_where_the_ground_truth_has_no_cell_are_left_out(
    make_napari_viewer_proxy, qtbot, labels, tmp_path
):
    """Cells painted at one position of a four-position result are the ground truth there
    only: every cell of the other three was scored a false positive (precision 0.26 for
    a perfect result), and nothing said so."""
    viewer = make_napari_viewer_proxy()
    prediction = np.stack([labels] * 4)
    painted = np.zeros_like(prediction)
    painted[1] = labels
    viewer.add_labels(prediction, name="U-Net cells", axis_labels=("P", "y", "x"))
    truth = viewer.add_labels(painted, name="painted", axis_labels=("P", "y", "x"))
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("painted"))
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("U-Net cells"))
    n = len(np.unique(labels)) - 1
    qtbot.waitUntil(lambda: "painted" in dock.status.text(), timeout=10_000)
    assert _cell(dock, "Precision") == "1.000" and _cell(dock, "True positives") == str(n)
    text = dock.status.text()
    assert text.startswith(f"{n} ground-truth and {n} predicted objects in 1 of 4 frames.")
    assert text.endswith(
        "Left out: positions 0, 2, 3, where 'painted' has no cell (paint the cells there to "
        f"score them); the {3 * n} cells predicted there are not counted as false positives."
    )
    # Its CSV says so too (it wrote nothing of them).
    dock.save_csv(tmp_path / "m.csv")
    with open(tmp_path / "m.csv", newline="", encoding="utf-8") as handle:
        left = [row[2:] for row in csv.reader(handle) if row[4] == "left_out"]
    frames = [[str(i), "", "left_out", "", "n_pred", str(n)] for i in (0, 2, 3)]
    assert left == [["all", "", "left_out", "", "frames", "3"],
                    ["all", "", "left_out", "", "n_pred", str(3 * n)], *frames]  # fmt: skip
    # Cells painted at a second position are scored there too.
    data = truth.data.copy()
    data[3] = labels
    truth.data = data
    qtbot.waitUntil(lambda: _cell(dock, "True positives") == str(2 * n), timeout=10_000)
    assert "Left out: positions 0, 2, where" in dock.status.text()


def test_a_mask_binary_in_the_frames_compared_is_compared_by_its_regions():
    """One id over three cells in the frame compared, another in a frame left out: judged
    whole, it was scored as one cell (F1 0), unsaid."""
    import warnings

    from napari_cytomask._qt.metrics_dock import compute_metrics

    truth, painted = np.zeros((2, 64, 64), np.uint16), np.zeros((2, 64, 64), np.uint16)
    for i, (y, x) in enumerate([(5, 5), (5, 40), (40, 20)]):
        truth[0, y : y + 15, x : x + 15], painted[0, y : y + 15, x : x + 15] = i + 1, 1
    painted[1, 20:30, 20:30] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compared = compute_metrics(truth, painted, 1, 0.5, highlight=False)
    assert compared.binary == {"prediction": 1} and compared.uncounted.tolist() == [0, 1]
    assert compared.evaluation.matches.f1[0] == 1


def test_a_binary_mask_is_compared_by_its_separate_regions(make_napari_viewer_proxy, qtbot, labels):
    """Cells painted all with label 1 (no new label picked) were one 'cell' of many parts:
    a perfect outline scored one match at most, and nothing said why."""
    from skimage.measure import label

    viewer = make_napari_viewer_proxy()
    viewer.add_labels(labels.copy(), name="ground truth", metadata={"cytomask": {"role": "mask"}})
    viewer.add_labels((labels > 0).astype(np.uint8), name="painted with 1")
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    assert dock.prediction_layer.name == "painted with 1"
    regions = label(labels > 0, connectivity=1).max()
    assert regions > 10
    assert dock.evaluation.matches.n_pred == regions
    assert int(_cell(dock, "True positives")) > regions // 2
    assert (
        "'painted with 1' holds one id (1) for every cell, a binary mask: its separate regions "
        "are taken as the cells (cells that touch stay one; paint each cell with a new label "
        "to tell them apart)." in dock.status.text()
    )


def test_a_renamed_side_is_named_anew_in_the_status_outlines_and_csv(
    dock_in_viewer, qtbot, tmp_path
):
    """A prediction renamed after its comparison ("U-Net v2 (retrained)") was still called
    by its old name in the status, the outline layers and the saved CSV's name."""
    viewer, dock = dock_in_viewer
    dock.highlight_check.setChecked(True)
    qtbot.waitUntil(lambda: "false positives (prediction vs ground truth)" in
                    [layer.name for layer in viewer.layers], timeout=10_000)  # fmt: skip
    viewer.layers["prediction"].name = "U-Net v2"
    qtbot.waitUntil(lambda: dock._pair[0] == "U-Net v2", timeout=10_000)
    qtbot.waitUntil(lambda: "false positives (U-Net v2 vs ground truth)" in
                    [layer.name for layer in viewer.layers], timeout=10_000)  # fmt: skip
    dock.save_csv(tmp_path / "m.csv")
    assert dock.status.text().startswith("Saved the metrics of 'U-Net v2' against 'ground truth'")


def test_a_field_of_one_cell_the_plugin_opened_as_an_image_is_pointed_to(
    make_napari_viewer_proxy, qtbot, shared_data, tmp_path
):
    """A label file of one cell over the whole field opens as an image (it could be a blank
    one), and the dock said only "Add two Labels layers", as the hint skipped every layer
    the plugin's own reader opened. Its pixels are flat, as no camera's are: it is named;
    a camera's image the plugin opened is not."""
    tifffile.imwrite(tmp_path / "one_cell.tif", np.ones((256, 256), np.uint8))
    viewer = make_napari_viewer_proxy()
    viewer.open(shared_data / "nuclei-dsb" / "img2d.tif", plugin="napari-cytomask")
    viewer.open(tmp_path / "one_cell.tif", plugin="napari-cytomask")
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Image"]
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.status.text() == (
        "Add two Labels layers: a prediction and a ground truth. 'one_cell' is open as an "
        "image: if it holds cell ids, make it a mask in Channel roles (step 1 of Segment "
        "cytoplasm, or Layers > Data), and it is offered here."
    )
    viewer.layers.remove("one_cell")
    assert dock.status.text() == "Add two Labels layers: a prediction and a ground truth."


def test_selected_table_cells_copy_with_their_names(dock_in_viewer, qtbot, labels):
    """Ctrl+C on the tables copied one cell at most: the numbers could leave only as a CSV."""
    from qtpy.QtWidgets import QApplication

    _, dock = dock_in_viewer
    n = len(np.unique(labels)) - 1
    dock.views.setCurrentWidget(dock.table)
    dock.table.selectAll()
    qtbot.keyClick(dock.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0] == "\tIoU 0.50\tIoU 0.75\tIoU 0.90"
    assert f"True positives\t{n}\t{n}\t{n}" in lines
    assert "F1\t1.000\t1.000\t1.000" in lines
    assert len(lines) == 1 + dock.table.rowCount()
    # The Cells tab's rows too, named by their cell.
    dock.views.setCurrentWidget(dock.cells_table)
    dock.cells_table.selectRow(1)
    qtbot.keyClick(dock.cells_table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QApplication.clipboard().text().splitlines()
    cell = dock.cells.rows[1]
    assert lines == ["\tArea (px)\tIoU\tStatus", f"{cell.name}\t{cell.area}\t1.000\t{cell.status}"]


def test_what_is_missing_is_said_when_the_dock_opens(make_napari_viewer_proxy, qtbot, tmp_path):
    """Opened before any Labels layer, the dock showed blank boxes and no word; with a labels
    layer from elsewhere and the truth's PNG opened as an image, it took the labels for the
    ground truth and did not point to the PNG."""
    import imageio.v3 as iio

    viewer = make_napari_viewer_proxy()
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    assert dock.status.text() == "Add two Labels layers: a prediction and a ground truth."
    ids = np.zeros((64, 64), np.uint16)
    ids[5:20, 5:20], ids[30:50, 25:60] = 1, 2
    path = tmp_path / "truth_p2.png"
    iio.imwrite(path, ids)
    viewer.open(path, plugin="napari")
    assert dock.status.text().endswith(
        "'truth_p2' is open as an image: if it holds cell ids, make it a mask in Channel roles "
        "(step 1 of Segment cytoplasm, or Layers > Data), and it is offered here."
    )
    viewer.add_labels(ids.copy(), name="pred 2D")
    assert dock.status.text().startswith("Pick a prediction to compare with 'pred 2D'.")
    assert "'truth_p2' is open as an image" in dock.status.text()


def test_a_binary_volume_is_compared_by_its_3d_regions():
    """Compared as one volume, a binary mask's blobs through 5 slices were 10 'cells'."""
    from napari_cytomask._qt.metrics_dock import compute_metrics

    volume = np.zeros((5, 32, 32), np.uint16)
    volume[:, 2:12, 2:12], volume[:, 15:30, 15:30] = 1, 2
    binary = (volume > 0).astype(np.uint8)
    as_volume = compute_metrics(binary, volume, 0, 0.5, False)
    assert as_volume.binary == {"ground truth": 1}
    assert as_volume.evaluation.matches.n_true == 2
    assert as_volume.evaluation.summary()["mean_average_f1"] == pytest.approx(1.0)
    by_frame = compute_metrics(binary, volume, 1, 0.5, False)  # frames: 2 cells in each
    assert by_frame.evaluation.matches.n_true == 10


def test_frames_made_are_named_in_the_plural_when_several():
    """Two positions segmented alone read "Compared in positions 1, 2 only"; frames of an
    axis of no known kind, "frames 1, 2"."""
    from napari.layers import Labels

    from napari_cytomask._qt.metrics_dock import _made_frames

    record = {"cytomask": {"role": "result", "frames_made": ["1", "2"]}}
    layer = Labels(np.zeros((4, 8, 8), np.uint8), name="cells", metadata=record)
    made, said = _made_frames((4, 8, 8), [layer], ("P", "Y", "X"))
    assert made.tolist() == [False, True, True, False]
    assert said.startswith("Compared in positions 1, 2 only: the other frames of 'cells' ")
    _, said = _made_frames((4, 8, 8), [layer], layer.axis_labels)
    assert said.startswith("Compared in frames 1, 2 only: the other frames of 'cells' ")


def test_a_truth_saved_as_a_stack_of_one_is_compared_with_its_image(dock_in_viewer, qtbot, labels):
    """A single plane saved with an axis of length 1 (ImageJ, tifffile) is the same image:
    it is compared, outlined on each layer's own axes, and not called misplaced."""
    viewer, dock = dock_in_viewer
    ids = np.unique(labels)[1:]
    viewer.layers.remove("ground truth")
    viewer.add_labels(labels[None].copy(), name="ground truth", scale=(5, 1, 1))
    viewer.layers["prediction"].data = np.where(labels == ids[0], 0, labels)
    for combo, name in (
        (dock.prediction_combo, "prediction"),
        (dock.ground_truth_combo, "ground truth"),
    ):
        combo.setCurrentIndex(combo.findText(name))
    dock.highlight_check.setChecked(True)
    qtbot.waitUntil(lambda: "1 false negative" in dock.status.text(), timeout=10_000)
    assert f"{len(ids)} ground-truth and {len(ids) - 1} predicted objects" in dock.status.text()
    assert "differ" not in dock.status.text()
    misses = viewer.layers["false negatives (prediction vs ground truth)"].data
    assert misses.shape == (1, *labels.shape) and set(np.unique(misses)) == {0, ids[0]}
    assert viewer.layers["false positives (prediction vs ground truth)"].data.shape == labels.shape
    # Two planes are no single image: still refused, saying how to compare one of them.
    viewer.layers["ground truth"].data = np.stack([labels, labels])
    qtbot.waitUntil(lambda: "is one frame" in dock.status.text(), timeout=10_000)
    assert "'ground truth' 2 frames of its size: export 'ground truth' as PNG" in (
        dock.status.text()
    )


def test_a_result_exported_and_opened_again_is_the_result_of_its_scan(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """Cells of one position of four, exported and opened the next day, were a mask of a
    file of their own: scored against the scan's hand-drawn mask in all four positions
    (F1@0.5 0.42 for cells that matched it), with a note that they came from another file,
    and exported again without their model or settings. They open as the scan's result."""
    from napari_cytomask.io.export import LabelsExport, export_labels, from_layer
    from napari_cytomask.io.layers import edited_by_hand, is_result, layer_info

    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "phase_contrast")
    image, truth = viewer.layers
    made = np.zeros(truth.data.shape, np.uint16)
    made[1] = np.asarray(truth.data[1])
    info = layer_info(image)
    export = LabelsExport(
        name="Phase contrast U-Net cells", labels=made, scale=tuple(truth.scale),
        units=tuple(str(u) for u in truth.units), axis_labels=tuple(truth.axis_labels),
        source=info["source"], channel_index=info["channel_index"],
        channel_name=info["channel_name"], method="unet", parameters={"tta": False},
        model={"name": "starter"}, frames_made=["1"], edited=True,
    )  # fmt: skip
    export_labels([export], tmp_path, formats=["tiff"], objects_csv=False)

    viewer.open(tmp_path / "Phase contrast U-Net cells.tif", plugin="napari-cytomask")
    reopened = viewer.layers["Phase contrast U-Net cells"]
    assert is_result(reopened) and edited_by_hand(reopened)
    # Exported again: what made it, and its scan's own image measured by its own name.
    again = from_layer(reopened, [image])
    assert (again.method, again.model, again.edited) == ("unet", {"name": "starter"}, True)
    assert again.frames_made == ["1"] and set(again.intensities) == {"Phase contrast"}
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=20_000)
    assert (dock.prediction_layer, dock.ground_truth_layer) == (reopened, truth)
    assert _cell(dock, "F1") == "1.000"
    assert " in 1 of 4 frames." in dock.status.text()
    assert "comes from" not in dock.status.text()
    # Segmenting the scan again, all of it or one position, keeps it: its hand edits were
    # made in another session, and were overwritten without a word.
    from napari.layers import Labels

    from napari_cytomask._qt._layers import result_slot

    for frame in (None, (1,), (2,)):
        slot = result_slot(viewer, reopened.name, Labels, made.shape, info["source"], frame)
        assert slot == ("Phase contrast U-Net cells [2]", None)


def test_the_cells_tab_lists_the_misses_first_and_goes_to_them(dock_in_viewer, qtbot, labels):
    """The dock said how many cells were missed or false, not which: the Cells tab lists
    every true cell and every false one, the worst first, and a double-click centres the
    view on one and picks its id to paint with."""
    viewer, dock = dock_in_viewer
    ids = np.unique(labels)[1:]
    missed = int(ids[3])
    prediction = np.where(labels == missed, 0, labels)
    free = np.argwhere(labels[:40, :40] == 0)
    assert len(free) > 100  # a corner without cells for a false one
    false = np.zeros_like(labels, bool)
    false[tuple(free[:60].T)] = True
    prediction[false] = 200
    before = dock.evaluation
    viewer.layers["prediction"].data = prediction
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    cells = dock.cells
    assert cells.rowCount() == 0  # filled when the tab is shown
    dock.views.setCurrentWidget(dock.cells_table)
    table = dock.cells_table
    assert cells.rowCount() == len(ids) + 1
    heads = {_heading(cells, r): r for r in range(2)}
    assert set(heads) == {f"true {missed}", "predicted 200"}
    status = _text(cells, heads[f"true {missed}"], 2)
    assert status == "missed" and _text(cells, heads["predicted 200"], 2) == "false positive"
    assert _text(cells, 2, 2).startswith("found: predicted ")
    assert float(_text(cells, 2, 1)) == pytest.approx(1.0)
    # Going to the missed cell: centred on it, its id picked in the ground truth.
    table.selectRow(heads[f"true {missed}"])
    dock.go_to_cell(heads[f"true {missed}"])
    rows, cols = np.nonzero(labels == missed)
    centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
    assert viewer.scene.camera.center[-2:] == pytest.approx(centre, abs=1)
    # The prediction is selected to paint the missed cell in, with a new label.
    predicted = viewer.layers["prediction"]
    assert viewer.layers.selection.active.name == "prediction"
    assert predicted.selected_label == 201
    assert f"Showing true {missed} of 'ground truth'" in dock.status.text()
    assert "'prediction' is selected with a new label (201) to paint it in." in dock.status.text()
    assert "Tick 'Show false positives and false negatives as layers'" in dock.status.text()
    # An edit compares again: the row picked stays picked, where it now is.
    before = dock.evaluation
    predicted.data = np.where(labels == ids[0], 0, prediction)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert _heading(cells, table.currentIndex().row()) == f"true {missed}"


def test_the_cells_tab_goes_to_the_frame_of_a_cell(make_napari_viewer_proxy, qtbot, labels):
    """In a stack, going to a cell shows its frame, and says which it is."""
    viewer = make_napari_viewer_proxy()
    truth = np.stack([labels, labels, labels])
    prediction = truth.copy()
    gone = int(np.unique(labels)[5])
    prediction[2][prediction[2] == gone] = 0
    dock = _compared(viewer, qtbot, prediction, truth, "T")
    dock.views.setCurrentWidget(dock.cells_table)
    cells = dock.cells
    assert _heading(cells, 0) == f"true {gone}"
    assert [_text(cells, 0, c) for c in (0, 3)] == ["2", "missed"]
    assert cells.headerData(0, Qt.Orientation.Horizontal) == "Time point"
    compared = dock.evaluation
    dock.go_to_cell(0)
    assert viewer.dims.current_step[0] == 2
    # Another frame on show is no edit: nothing is computed again, and the status stays.
    qtbot.wait(800)
    assert dock.evaluation is compared and "at time point 2:" in dock.status.text()
    # An edit undone there is.
    layer = viewer.layers["prediction"]
    layer.paint((2, *np.argwhere(labels == gone)[0]), gone)
    qtbot.waitUntil(lambda: dock.evaluation is not compared, timeout=10_000)
    painted = dock.evaluation
    layer.undo()
    qtbot.waitUntil(lambda: dock.evaluation is not painted, timeout=10_000)
    assert dock.evaluation.matches.fn[0] == 1
    # Undone while hidden (napari then says nothing), and shown at another frame.
    layer.paint((2, *np.argwhere(labels == gone)[0]), gone)
    qtbot.waitUntil(lambda: dock.evaluation.matches.fn[0] == 0, timeout=10_000)
    layer.visible = False
    layer.undo()
    viewer.dims.set_point(0, 0)
    layer.visible = True
    qtbot.waitUntil(lambda: dock.evaluation.matches.fn[0] == 1, timeout=10_000)
    dock.runner.cancel()


@pytest.mark.parametrize("truth_in", ["scan", "file"])
def test_the_dock_and_cytomask_evaluate_record_the_same_files_and_channels(
    make_napari_viewer_proxy, qtbot, labels, tmp_path, truth_in
):
    """The dock's provenance named the ground truth's channel in its file, cytomask
    evaluate's only the --mask-channel typed (None where it found the mask itself): the
    records of one comparison could not be told to be of the same channel. Evaluate's
    named the prediction by its file alone, and each file under another key ("file")
    than the dock's ("source")."""
    import json

    from napari_cytomask.cli import main

    masks = labels.astype(np.uint16)
    scan = tmp_path / "scan.tif"
    phase = np.random.default_rng(0).integers(0, 4000, labels.shape, dtype=np.uint16)
    names = ["Phase", "cells", "nuclei mask"]
    tifffile.imwrite(scan, np.stack([phase, masks, masks]), imagej=True,
                     metadata={"axes": "CYX", "Labels": names})  # fmt: skip
    tifffile.imwrite(tmp_path / "truth.tif", masks)
    tifffile.imwrite(tmp_path / "pred.tif", np.where(masks == masks.max(), 0, masks))
    truth, layer, typed = {"scan": (scan, "nuclei mask", ["--mask-channel", "2"]),
                           "file": (tmp_path / "truth.tif", "truth", [])}[truth_in]  # fmt: skip
    viewer = make_napari_viewer_proxy()
    viewer.open(truth, plugin="napari-cytomask")
    viewer.open(tmp_path / "pred.tif", plugin="napari-cytomask")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.ground_truth_combo.setCurrentText(layer)
    dock.prediction_combo.setCurrentText("pred")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    dock.save_csv(tmp_path / "dock.csv")
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(truth), *typed]
    assert main([*argv, "-q", "-o", str(tmp_path / "cli.csv")]) == 0
    (dock_pair,), (cli_pair,) = (
        json.loads((tmp_path / f"{name}_provenance.json").read_text(encoding="utf-8"))["pairs"]
        for name in ("dock", "cli")
    )
    channel = {"scan": (2, "nuclei mask"), "file": (0, "truth")}[truth_in]
    named = {
        "ground_truth": (str(truth), *channel),
        "prediction": (str(tmp_path / "pred.tif"), 0, "pred"),
    }
    keys = ("source", "channel_index", "channel_name")
    for pair in (dock_pair, cli_pair):
        assert {side: tuple(pair[side][key] for key in keys) for side in named} == named
        assert "labels_file" not in pair["prediction"]  # the file compared is its source
    dock.runner.cancel()


def test_a_result_opened_from_its_file_is_recorded_by_that_file_as_evaluate_does(
    make_napari_viewer_proxy, qtbot, labels, tmp_path
):
    """A result exported and opened again is named by the scan it was made from: two
    results of one scan (before and after correcting it, or of two models), compared in
    the dock, could not be told apart in its record, where cytomask evaluate names the
    file compared (``labels_file``)."""
    import json

    from napari_cytomask.cli import main
    from napari_cytomask.io.export import LabelsExport, export_labels

    masks = labels.astype(np.uint16)
    tifffile.imwrite(tmp_path / "truth.tif", masks)
    scan = str(tmp_path / "scan.tif")
    tifffile.imwrite(scan, np.random.default_rng(0).integers(0, 4000, masks.shape, np.uint16))
    found = np.where(masks == masks.max(), 0, masks)
    made = LabelsExport(name="cells", labels=found, method="unet", source=scan,
                        channel_index=0, channel_name="Phase")  # fmt: skip
    export_labels([made], tmp_path / "out", formats=["tiff"], objects_csv=False)
    result = str(tmp_path / "out" / "cells.tif")
    viewer = make_napari_viewer_proxy()
    viewer.open(tmp_path / "truth.tif", plugin="napari-cytomask")
    viewer.open(result, plugin="napari-cytomask")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.ground_truth_combo.setCurrentText("truth")
    dock.prediction_combo.setCurrentText(viewer.layers[-1].name)
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    dock.save_csv(tmp_path / "dock.csv")
    argv = ["evaluate", "--pred", result, "--gt", str(tmp_path / "truth.tif")]
    assert main([*argv, "-q", "-o", str(tmp_path / "cli.csv")]) == 0
    keys = ("source", "channel_index", "channel_name", "labels_file")
    for name in ("dock", "cli"):
        record = json.loads((tmp_path / f"{name}_provenance.json").read_text(encoding="utf-8"))
        (pair,) = record["pairs"]
        assert tuple(pair["prediction"].get(key) for key in keys) == (scan, 0, "Phase", result)
    dock.runner.cancel()


def test_the_cells_tab_names_frames_of_several_axes_as_the_csv_does(
    make_napari_viewer_proxy, qtbot, labels
):
    """A frame of positions by time points was "0,1" in the Cells tab, a number (0.1) to a
    spreadsheet of decimal commas, where the CSV says "position 0, time point 1": that,
    in a column too narrow for it, was cut to "position 0, …". It reads "P0 T1" under
    "Position, time point", and its tooltip as the CSV."""
    viewer = make_napari_viewer_proxy()
    crop = labels[:64, :64]
    truth = np.stack([np.stack([crop] * 2)] * 2)
    prediction = truth.copy()
    gone = int(np.unique(crop)[1])
    prediction[0, 1][prediction[0, 1] == gone] = 0
    viewer.add_labels(prediction, name="prediction", axis_labels="ptyx")
    viewer.add_labels(truth, name="ground truth", axis_labels="ptyx")
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    dock.views.setCurrentWidget(dock.cells_table)
    cells = dock.cells
    assert _heading(cells, 0) == f"true {gone}"
    assert [_text(cells, 0, c) for c in (0, 3)] == ["P0 T1", "missed"]
    assert cells.headerData(0, Qt.Orientation.Horizontal) == "Position, time point"
    tip = cells.data(cells.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert tip == "position 0, time point 1"
    dock.runner.cancel()


def test_a_brush_stroke_is_compared_once_it_pauses(dock_in_viewer, qtbot, labels, monkeypatch):
    """Each dab of a stroke asked for a comparison at once, checking and pairing the
    layers (3 to 17 ms of a 1022 x 1024 stack each): as long as the dab itself, so that
    painting lagged while the metrics were open."""
    from napari_cytomask._qt import metrics_dock

    viewer, dock = dock_in_viewer
    pred = viewer.layers["prediction"]
    paired, pair = [], metrics_dock.paired
    monkeypatch.setattr(metrics_dock, "paired", lambda *args: paired.append(1) or pair(*args))
    before = dock.evaluation
    pred.brush_size = 5
    for i in range(10):  # one stroke's dabs, as napari paints them
        pred.paint((40 + 2 * i, 40 + i), 99)
    assert paired == []
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert paired == [1]
    assert _cell(dock, "False positives") == "1"


def test_the_plot_is_drawn_when_it_is_shown(make_napari_viewer, qtbot, labels):
    """Each comparison plotted into the hidden plot tab (up to 50 ms of the GUI thread at
    each edit painted); it is plotted once shown, with the numbers on show."""
    viewer = make_napari_viewer(show=True)
    dock = _compared(viewer, qtbot, labels.copy(), labels.copy())
    assert dock.views.currentWidget() is not dock.canvas and not dock.axes.lines
    before = dock.evaluation
    pred = viewer.layers["prediction"]
    pred.data = np.where(pred.data == np.unique(labels)[1], 0, pred.data)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert not dock.axes.lines
    dock.views.setCurrentWidget(dock.canvas)
    # Precision, recall and F1 over every threshold; precision and recall stay visible
    # where F1 lies on them: lines of their own style.
    assert len(dock.axes.lines) == 3
    assert len({line.get_linestyle() for line in dock.axes.lines}) == 3
    assert len(dock.axes.lines[0].get_xdata()) == 18
    f1 = list(dock.axes.lines[0].get_ydata())
    assert f1 == list(dock.evaluation.matches.f1) and min(f1) < 1


def test_a_stroke_redraws_only_the_outlines_it_changed(dock_in_viewer, qtbot, labels):
    """Each comparison set the highlight layers' data anew, redrawing every outline of the
    frame in the GUI thread (50 to 70 ms a 1022 x 1024 frame) as each stroke's result
    landed: the pixels that changed are written in place and only their region redrawn,
    with no undo step on the highlight layer."""
    viewer, dock = dock_in_viewer
    dock.highlight_check.setChecked(True)
    name = "false positives (prediction vs ground truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)
    outlined = viewer.layers[name]
    events = []
    outlined.events.data.connect(lambda e: events.append("data"))
    outlined.events.labels_update.connect(lambda e: events.append("labels_update"))
    pred = viewer.layers["prediction"]
    free = np.argwhere(labels == 0)[len(np.argwhere(labels == 0)) // 2]
    before = dock.evaluation
    pred.brush_size = 3
    pred.paint(free, 999)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert _cell(dock, "False positives") == "1"
    assert np.array_equal(outlined.data, np.where(pred.data == 999, 999, 0))
    assert events == ["labels_update"]
    assert not outlined._undo_history
    # A new result, most of its pixels changed, is set whole: one redraw.
    before = dock.evaluation
    pred.data = np.roll(labels, 40, axis=1)  # no cell where it was
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert _cell(dock, "True positives") == "0"
    assert events[-1] == "data"
    assert np.array_equal(outlined.data, pred.data)


def test_the_cells_tab_makes_text_only_for_the_rows_in_view(
    make_napari_viewer, qtbot, labels, monkeypatch
):
    """The Cells tab made an item of text for every cell of a stack at each edit compared
    while it was on show (0.14 s for 5,000 cells, which was all it listed): only the rows
    in view are made into text, and every cell is listed."""
    from napari_cytomask._qt import metrics_dock

    viewer = make_napari_viewer(show=True)
    truth = np.stack([labels] * 60)
    dock = _compared(viewer, qtbot, truth, truth.copy(), "T")
    made = []
    text = metrics_dock.CellsModel.text
    monkeypatch.setattr(metrics_dock.CellsModel, "text", lambda *a: made.append(1) or text(*a))
    dock.views.setCurrentWidget(dock.cells_table)
    qtbot.wait(100)
    n = 60 * (len(np.unique(labels)) - 1)
    assert dock.cells.rowCount() == n > 1000
    assert 0 < len(made) < 0.1 * n
    dock.runner.cancel()


def test_outlines_shown_leave_the_layer_to_correct_selected(dock_in_viewer, qtbot):
    """Ticking the outlines selected the layer napari added last, the false negatives:
    the strokes that followed went into the outlines, and the next comparison wrote
    over them."""
    viewer, dock = dock_in_viewer
    viewer.layers.selection.active = viewer.layers["prediction"]
    dock.highlight_check.setChecked(True)
    name = "false negatives (prediction vs ground truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)
    assert viewer.layers.selection.active.name == "prediction"
    assert [layer.name for layer in viewer.layers.selection] == ["prediction"]


@pytest.mark.parametrize("closed", ["prediction", "ground truth"])
def test_outlines_go_with_a_side_of_their_pair(dock_in_viewer, qtbot, labels, closed):
    """The outlines of a pair stayed, hidden, once its image, mask and cells were closed:
    a slider over an empty canvas, and napari's "Inconsistent units" six times at the next
    file. The next comparison outlines again."""
    viewer, dock = dock_in_viewer
    dock.highlight_check.setChecked(True)
    names = {"false positives (prediction vs ground truth)",
             "false negatives (prediction vs ground truth)"}  # fmt: skip
    qtbot.waitUntil(lambda: names <= {layer.name for layer in viewer.layers}, timeout=10_000)
    viewer.layers.remove(closed)
    qtbot.waitUntil(lambda: not names & {layer.name for layer in viewer.layers}, timeout=5_000)
    assert [layer.name for layer in viewer.layers] == [
        name for name in ("prediction", "ground truth") if name != closed
    ]
    viewer.add_labels(labels.copy(), name=closed)
    dock.prediction_combo.setCurrentText("prediction")
    dock.ground_truth_combo.setCurrentText("ground truth")
    qtbot.waitUntil(lambda: names <= {layer.name for layer in viewer.layers}, timeout=10_000)


def test_the_cell_picked_stays_picked_at_its_own_frame(make_napari_viewer_proxy, qtbot, labels):
    """Hand-drawn masks number each frame's cells from 1: after an edit the Cells tab
    picked the cell of the same number at another frame, and Enter went there."""
    viewer = make_napari_viewer_proxy()
    truth = np.stack([labels, labels, labels])
    prediction = truth.copy()
    ids = np.unique(labels)[1:]
    prediction[:, labels == ids[3]] = 0  # missed at every frame
    dock = _compared(viewer, qtbot, prediction, truth, "P")
    dock.views.setCurrentWidget(dock.cells_table)
    rows = dock.cells.rows
    at = next(r for r, row in enumerate(rows) if row.id == ids[3] and row.frame == 2)
    dock.cells_table.selectRow(at)
    before = dock.evaluation
    layer = viewer.layers["prediction"]
    layer.data_setitem(np.nonzero(np.stack([labels == ids[5], 0 * labels, 0 * labels])), 0)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    picked = dock.cells.rows[dock.cells_table.currentIndex().row()]
    assert (picked.id, picked.frame) == (ids[3], 2)
    dock.runner.cancel()


def test_only_the_planes_an_edit_changed_are_compared_for_the_outlines(
    make_napari_viewer_proxy, qtbot, labels, monkeypatch
):
    """Each comparison's outlines were compared with the layers' whole stacks in the GUI
    thread (0.1 to 0.2 s at each edit of 40 positions): the worker tells which planes
    changed."""
    from napari_cytomask._qt import metrics_dock

    viewer = make_napari_viewer_proxy()
    truth = np.stack([labels] * 6)
    viewer.add_labels(truth.copy(), name="prediction", axis_labels=("P", "y", "x"))
    viewer.add_labels(truth, name="ground truth", axis_labels=("P", "y", "x"))
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    dock.highlight_check.setChecked(True)
    name = "false negatives (prediction vs ground truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)
    redrawn, redraw = [], metrics_dock._redraw_changes
    monkeypatch.setattr(
        metrics_dock, "_redraw_changes", lambda *a: redrawn.append(a[2]) or redraw(*a)
    )
    gone = int(np.unique(labels)[4])
    before = dock.evaluation
    rows, cols = np.nonzero(labels == gone)
    viewer.layers["prediction"].data_setitem((np.full(len(rows), 3), rows, cols), 0)
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    assert redrawn == [[], [3]]  # the false positives, then the false negatives
    missed = viewer.layers[name].data
    assert np.array_equal(missed[3], np.where(labels == gone, gone, 0)) and not missed[:3].any()
    dock.runner.cancel()


def test_the_cells_tab_sorts_by_the_heading_clicked(make_napari_viewer, qtbot, labels):
    """A click on a heading selected every row, so that Ctrl+C copied them all; the
    smallest cells (debris, say) could not be listed first."""
    from qtpy.QtCore import QPoint

    viewer = make_napari_viewer(show=True)
    prediction = labels.copy()
    prediction[labels == np.unique(labels)[3]] = 0
    dock = _compared(viewer, qtbot, prediction, labels)
    dock.views.setCurrentWidget(dock.cells_table)
    assert dock.cells.rows[0].status == "missed"  # the worst first
    header = dock.cells_table.horizontalHeader()
    area = 0  # "Area (px)": no frame column for one image
    assert dock.cells.headerData(area, Qt.Orientation.Horizontal) == "Area (px)"
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(area) + 5, 5))  # fmt: skip
    areas = [row.area for row in dock.cells.rows]
    assert areas == sorted(areas) and not dock.cells_table.selectionModel().hasSelection()
    # Going to the first row goes to the smallest cell; an edit keeps the order.
    dock.go_to_cell(0)
    assert f"({min(areas)} px)" in dock.status.text()
    before = dock.evaluation
    viewer.layers["prediction"].data = labels.copy()
    qtbot.waitUntil(lambda: dock.evaluation is not before, timeout=10_000)
    areas = [row.area for row in dock.cells.rows]
    assert areas == sorted(areas) and len(areas) == len(np.unique(labels)) - 1


@pytest.mark.parametrize("named_by", ["truth", "result"])
def test_the_frames_of_a_plate_are_named_by_their_wells(
    make_napari_viewer_proxy, qtbot, tmp_path, named_by
):
    """The Cells tab, the status and the CSV gave a plate's frames by number alone (as
    napari's slider does): the names the scan gives its positions go beside them, as the
    reader found them (the hand-drawn mask's layer) or from a result's scan."""
    from napari_cytomask._sample_data import sample_scan_path
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    viewer.open(sample_scan_path(), plugin="napari-cytomask")
    phase, truth = viewer.layers
    prediction = np.asarray(truth.data).copy()
    gone = int(np.unique(prediction[2])[5])
    prediction[2][prediction[2] == gone] = 0
    metadata = {}
    if named_by == "result":  # a mask of no scan and no axis names, and a result of the scan
        truth = viewer.add_labels(np.asarray(truth.data), name="drawn")
        metadata = result_metadata(phase, method="unet")
    viewer.add_labels(prediction, name="prediction", axis_labels="pyx", metadata=metadata)
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    dock.ground_truth_combo.setCurrentText(truth.name)
    dock.prediction_combo.setCurrentText("prediction")
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=30_000)
    dock.views.setCurrentWidget(dock.cells_table)
    assert [_text(dock.cells, 0, c) for c in (0, 3)] == ["2 (Usiigaci set30)", "missed"]
    # Cut short, whole in its tooltip: the status beside it keeps its room.
    assert dock.cells_table.columnWidth(0) <= metrics_dock.POSITION_WIDTH
    dock.go_to_cell(0)
    frame = "position" if named_by == "truth" else "frame"  # as the ground truth's axes say
    assert f"at {frame} 2 (Usiigaci set30):" in dock.status.text()
    path = tmp_path / "metrics.csv"
    dock.save_csv(path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    wells = {(r["frame"], r["position_name"]) for r in rows}
    assert wells == {("all", ""), ("0", "Usiigaci set11"), ("1", "Usiigaci set12"),
                     ("2", "Usiigaci set30"), ("3", "Usiigaci set40")}  # fmt: skip
    dock.runner.cancel()


def test_the_cells_tab_goes_to_the_cells_of_binary_masks(make_napari_viewer_proxy, qtbot, labels):
    """Binary masks (one value for every cell, 0/255 from a threshold in Fiji) are compared
    by their regions, but the Cells tab looked for a region's number in the mask's pixels:
    every cell was "no longer in" the layer, or the wrong one was shown, and a missed cell
    picked a new label of 256 for an 8-bit mask, which raised."""
    from skimage.measure import label

    viewer = make_napari_viewer_proxy()
    truth = (labels > 0).astype(np.uint8)
    regions = label(truth, connectivity=1)
    gone = 7
    prediction = np.where((regions > 0) & (regions != gone), 255, 0).astype(np.uint8)
    assert not truth[:12, 8:20].any()  # a place without cells for a false one
    prediction[2:10, 10:18] = 255
    dock = _compared(viewer, qtbot, prediction, truth)
    dock.views.setCurrentWidget(dock.cells_table)
    rows = dock.cells.rows
    missed = next(r for r, cell in enumerate(rows) if cell.side == "true" and not cell.matched)
    assert rows[missed].id == gone
    dock.go_to_cell(missed)
    ys, xs = np.nonzero(regions == gone)
    centre = ((ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2)
    assert viewer.scene.camera.center[-2:] == pytest.approx(centre, abs=1)
    status = dock.status.text()
    assert status.startswith(f"Showing true {gone} of 'ground truth'")
    assert "'prediction' is a binary mask: its value (255) is selected to paint with" in status
    assert viewer.layers["prediction"].selected_label == 255
    # A false one: its region in the prediction, not the pixels of the mask's value.
    false = next(r for r, cell in enumerate(rows) if cell.side == "predicted")
    assert label(prediction > 0, connectivity=1)[5, 13] == rows[false].id
    dock.go_to_cell(false)
    assert viewer.scene.camera.center[-2:] == pytest.approx((5.5, 13.5), abs=1)
    assert dock.status.text().startswith(f"Showing predicted {rows[false].id} of 'prediction'")


@pytest.mark.parametrize(
    ("ids", "new"),
    [([0, 1, 2, 255], 3), (list(range(256)), None), ([0, 3, 9], 10), ([0, 70_000], 70_001)],
)
def test_a_missed_cell_is_painted_with_a_label_the_layer_can_hold(ids, new):
    """One above the largest id, else the smallest free one: an 8-bit layer whose
    largest id is 255 was given 256."""
    from napari_cytomask._qt.metrics_dock import _unused_label

    data = np.array(ids, np.uint8 if max(ids) < 256 else np.uint32)
    assert _unused_label(data) == new


def test_outlines_record_the_iou_they_were_matched_at(dock_in_viewer, qtbot, labels):
    """A comparison that ends after "Match at IoU" was changed (the new one waits for the
    typing to stop) recorded the box's new value on outlines matched at the old one."""
    from napari_cytomask._qt.metrics_dock import compute_metrics

    viewer, dock = dock_in_viewer
    prediction = np.where(labels == np.unique(labels)[1], 0, labels)
    viewer.layers["prediction"].data = prediction
    dock.highlight_check.setChecked(True)
    name = "false negatives (prediction vs ground truth)"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=10_000)
    qtbot.waitUntil(lambda: not dock.runner.busy, timeout=10_000)
    dock.runner.cancel()
    matched_at_half = compute_metrics(labels, prediction, 0, 0.5, True)
    dock.threshold_spin.blockSignals(True)  # typed, its comparison not yet started
    dock.threshold_spin.setValue(0.7)
    dock.threshold_spin.blockSignals(False)
    dock._show(matched_at_half)
    record = viewer.layers[name].metadata["cytomask"]["parameters"]
    assert record["match_threshold"] == 0.5


def test_a_ground_truth_closed_and_opened_again_does_not_swap_the_pair(
    make_napari_viewer_proxy, qtbot, labels
):
    """The ground truth closed, to be opened again corrected: the prediction picked by hand
    became the ground truth, and the truth opened again the prediction (recall and
    precision swapped)."""
    viewer = make_napari_viewer_proxy()
    truth = labels.copy()
    viewer.add_labels(truth, name="gt")
    viewer.add_labels(np.where(truth % 3 == 0, 0, truth), name="pred")  # a third missed
    dock = MetricsDock(viewer)
    qtbot.addWidget(dock)
    dock.prediction_combo.setCurrentText("pred")
    dock.ground_truth_combo.setCurrentText("gt")
    viewer.layers.remove("gt")
    assert dock.prediction_combo.currentText() == "pred"
    assert dock.ground_truth_layer is None
    viewer.add_labels(truth, name="gt")
    assert (dock.prediction_combo.currentText(), dock.ground_truth_combo.currentText()) == (
        "pred",
        "gt",
    )
    qtbot.waitUntil(lambda: dock.evaluation is not None, timeout=10_000)
    summary = dock.evaluation.summary()  # the prediction lies inside the truth
    assert summary["pixel_precision"] == 1.0 and summary["pixel_recall"] < 0.9


def test_a_pair_refused_after_a_result_says_how_to_pick_one_frame_and_empties_the_bar(
    make_napari_viewer_proxy, qtbot, labels
):
    """A ground truth of one frame against three frames was refused as another image's,
    with nothing said of how to compare that frame, under a progress bar still at 100%."""
    viewer = make_napari_viewer_proxy()
    dock = _compared(viewer, qtbot, np.stack([labels] * 3), np.stack([labels] * 3), "T")
    bar = dock.controls.progress
    assert bar.value() == bar.maximum() == 1
    viewer.add_labels(labels.copy(), name="one frame")
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("prediction"))
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("one frame"))
    qtbot.waitUntil(lambda: "is one frame" in dock.status.text(), timeout=10_000)
    assert dock.status.text() == (
        "Cannot compute the metrics: 'one frame' is one frame and 'prediction' 3 frames of "
        "its size: export 'prediction' as PNG with Export labels (a file per frame), open "
        "the frame's file and pick it as the prediction."
    )
    assert bar.value() == 0 and dock.evaluation is None


def test_many_frames_left_out_are_counted_and_the_csv_says_what_it_measured(
    make_napari_viewer_proxy, qtbot, labels, tmp_path
):
    """Each frame left out was listed ("frames (position, time point) 0,1; 0,2; …"), which
    scrolled the status and hid what it said of them; the CSV wrote those frames as "0,1",
    a number to a spreadsheet of decimal commas, and named nothing of how the cells were
    made, by which version or when."""
    import json

    from napari_cytomask import own_version
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    axes = ("P", "T", "y", "x")
    painted = np.stack([labels] * 8).reshape(2, 4, *labels.shape)
    painted[0, 1:] = painted[1, :2] = 0  # five frames without ground truth
    truth = viewer.add_labels(painted, name="painted", axis_labels=axes)
    made = result_metadata(truth, method="unet", parameters={"seed_threshold": 0.6},
                           model={"name": "starter"})  # fmt: skip
    viewer.add_labels(np.stack([labels] * 8).reshape(painted.shape), name="U-Net cells",
                      axis_labels=axes, metadata=made)  # fmt: skip
    dock = MetricsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Segmentation metrics")
    dock.ground_truth_combo.setCurrentIndex(dock.ground_truth_combo.findText("painted"))
    dock.prediction_combo.setCurrentIndex(dock.prediction_combo.findText("U-Net cells"))
    qtbot.waitUntil(lambda: "Left out" in dock.status.text(), timeout=10_000)
    n = len(np.unique(labels)) - 1
    assert dock.status.text().endswith(
        "Left out: 5 frames, where 'painted' has no cell (paint the cells there to score "
        f"them); the {5 * n} cells predicted there are not counted as false positives."
    )
    dock.save_csv(tmp_path / "m.csv")
    with open(tmp_path / "m.csv", newline="", encoding="utf-8") as handle:
        frames = {row["frame"] for row in csv.DictReader(handle)}
    assert "position 0, time point 1" in frames and "0,1" not in frames
    record = json.loads((tmp_path / "m_provenance.json").read_text(encoding="utf-8"))
    (pair,) = record["pairs"]
    assert pair["prediction"]["layer"] == "U-Net cells"
    assert pair["prediction"]["method"] == "unet"
    assert pair["prediction"]["parameters"] == {"seed_threshold": 0.6}
    assert pair["prediction"]["model"] == {"name": "starter"}
    assert pair["ground_truth"]["layer"] == "painted"
    assert record["settings"]["match_threshold"] == 0.5
    assert record["settings"]["frame_axes"] == ["P", "T"]
    assert record["versions"]["napari-cytomask"] == own_version() and record["created"]
