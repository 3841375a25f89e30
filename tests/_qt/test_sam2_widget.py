"""The SAM2 widget in a real viewer, with a small random model instead of downloaded weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cytomask._qt._layers import ALL_POSITIONS, CURRENT_POSITION
from napari_cytomask._qt._settings import set_value
from napari_cytomask._qt.sam2_widget import NO_FOREGROUND, Sam2Widget
from napari_cytomask.io.layers import edited_by_hand

pytestmark = pytest.mark.gui


def image():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :64]
    img = np.full((48, 64), 300, np.uint16)
    for _ in range(8):
        cy, cx, r = rng.integers(0, 48), rng.integers(0, 64), rng.integers(5, 15)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(600, 3000)
    return img


def test_segment_then_a_filter_slider_updates_the_labels(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask, monkeypatch
):
    from napari_cytomask._qt import sam2_widget

    looked_up = []
    record = sam2_widget._model_record
    monkeypatch.setattr(
        sam2_widget, "_model_record", lambda *args: looked_up.append(args) or record(*args)
    )
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((8, 8), np.uint8), name="other")
    layer = viewer.add_image(image(), name="phase", metadata={"cytomask": {"role": "input"}})
    built = []

    def builder(source, device, config):
        built.append((source, str(device), config))
        return small_model

    widget = Sam2Widget(viewer, model_builder=builder)
    viewer.window.add_dock_widget(widget)
    assert widget.layer.currentText() == "phase"  # the input channel is the default
    widget.set_values(points_per_side=6, order="score", **keep_every_mask)
    widget.device.setCurrentText("cpu")
    widget.segment()
    name = "phase SAM2 masks"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    labels = viewer.layers[name]
    first = np.array(labels.data)
    assert first.shape == layer.data.shape and first.max() > 0
    assert set(labels.features["index"]) == set(np.unique(first[first > 0]))
    assert {"predicted_iou", "stability_score", "area"} <= set(labels.features.columns)
    # Fewer than 256 cells, yet a user can paint a cell of id 300 by hand.
    assert labels.data.dtype == np.uint16
    labels.selected_label = 300
    assert labels.selected_label == 300

    ious = labels.features["predicted_iou"].to_numpy()
    widget.set_values(pred_iou_thresh=float(np.round(np.median(ious), 2)))
    qtbot.waitUntil(lambda: not np.array_equal(labels.data, first), timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert labels.features["predicted_iou"].min() > np.round(np.median(ious), 2) - 1e-6
    assert built == [("facebook/sam2.1-hiera-tiny", "cpu", None)]
    engine = widget._last_engine
    assert engine.runs["encoder"] == 1  # the slider only re-filtered
    assert len(looked_up) == 1  # the model's file is looked up once, not per slider move

    # A user's edit is never lost to the next slider move: the masks go to a new layer
    # (past a user's own layer of that name), and that is said once.
    from napari_cytomask._qt import _layers

    said = []
    monkeypatch.setattr(_layers, "show_info", said.append)
    viewer.add_labels(np.zeros_like(first), name=f"{name} [2]")
    labels.paint((4, 4), 300)
    edited = np.array(labels.data)
    assert edited_by_hand(labels) and (edited == 300).any()
    for threshold in (0.0, 0.01):
        widget.set_values(pred_iou_thresh=threshold)
        qtbot.waitUntil(lambda: f"{name} [3]" in viewer.layers, timeout=30000)
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    np.testing.assert_array_equal(viewer.layers[name].data, edited)
    assert not (viewer.layers[f"{name} [3]"].data == 300).any()
    assert not edited_by_hand(viewer.layers[f"{name} [3]"])
    assert said == [f"'{name}' holds your edits, so it is kept; the new result is in '{name} [3]'."]

    # The sliders go on in the layer they wrote last, the one on show: after the edit was
    # undone they went back to the first layer, under the out-of-date one, unseen; after
    # the result or the image was renamed, to a new layer.
    labels.undo()
    assert not edited_by_hand(labels)
    kept = np.array(labels.data)
    latest = viewer.layers[f"{name} [3]"]
    median = float(np.round(np.median(ious), 2))  # fewer masks than at 0 and 0.01
    for threshold, rename in ((median, None), (0.0, latest), (median, layer)):
        if rename is not None:
            rename.name = f"my {rename.name}"
        before = np.array(latest.data)
        widget.set_values(pred_iou_thresh=threshold)
        qtbot.waitUntil(lambda b=before: not np.array_equal(latest.data, b), timeout=30000)
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
        np.testing.assert_array_equal(labels.data, kept)
        assert len(viewer.layers) == 5  # no new layer
    assert [x.name for x in viewer.layers] == [
        "other", "my phase", name, f"{name} [2]", f"my {name} [3]"
    ]  # fmt: skip
    # Closed, it takes its positions (its labels) with it: they were kept by name.
    closed = latest.unique_id
    viewer.layers.remove(latest)
    widget.set_values(pred_iou_thresh=0.0)
    qtbot.waitUntil(lambda: "my phase SAM2 masks" in viewer.layers, timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert closed not in widget._positions


def test_a_slider_update_cancelled_says_the_masks_on_show_are_of_the_settings_before(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """Cancelled mid-update, the status said only "Cancelled." while the slider showed a
    setting the masks were not made with."""
    import time

    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    viewer.window.add_dock_widget(widget)
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    widget.segment()
    qtbot.waitUntil(lambda: "phase SAM2 masks" in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    run = widget._run
    widget._run = lambda job: time.sleep(2) or run(job)  # a slow decode
    widget.set_values(points_per_side=6)
    qtbot.waitUntil(lambda: widget.runner.busy, timeout=10000)
    widget.cancel()
    assert widget.status.text() == (
        "Cancelled: 'phase SAM2 masks' still shows the masks of the settings before; move a "
        "slider or press Segment to make them with those set now."
    )


def _segment_positions(viewer, widget, qtbot, name: str, positions) -> None:
    """Segment each of ``positions`` of a stack on its own (positions: current), in turn."""
    for position in positions:
        viewer.dims.set_current_step(0, position)
        widget.segment()
        qtbot.waitUntil(
            lambda p=position: name in viewer.layers and viewer.layers[name].data[p].any(),
            timeout=30000,
        )
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)


def test_current_position_of_a_stack_keeps_ids_unique(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    viewer = make_napari_viewer_proxy()
    stack = np.stack([image(), image()[::-1]])
    viewer.add_image(stack, name="scan", axis_labels=("P", "y", "x"))  # a tile scan's positions
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    assert widget.positions.key() == CURRENT_POSITION
    name = "scan SAM2 masks"
    _segment_positions(viewer, widget, qtbot, name, (1, 0))
    labels = viewer.layers[name]
    assert labels.data.shape == stack.shape
    first, second = (set(np.unique(labels.data[p])) - {0} for p in (0, 1))
    # The counts are the last position's, and the total is said apart.
    assert widget.status.text().startswith(
        f"{len(first)} objects in position 0 ({len(first | second)} in the positions done) from "
    )
    assert first and second and not first & second
    assert set(labels.features["index"]) == first | second
    assert set(labels.features["position"]) == {0, 1}


def test_positions_never_segmented_are_recorded_as_such(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """Position 1 segmented alone left position 0 empty, and its export counted 0 cells
    there: a position never looked at read as one without cells."""
    from napari_cytomask.io.export import cell_counts, from_layer
    from napari_cytomask.io.layers import layer_info

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([image(), image()[::-1], image()]), name="scan")
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    name = "scan SAM2 masks"
    _segment_positions(viewer, widget, qtbot, name, (1,))
    labels = viewer.layers[name]
    assert layer_info(labels)["frames_made"] == ["1"]
    counts = [row["cells"] for row in cell_counts(from_layer(labels))]
    assert counts[0] is None and counts[2] is None and counts[1] > 0
    # A slider moved while position 0 is on show re-filters frame 1, the one segmented: it
    # segmented position 0, unasked (minutes on a CPU).
    viewer.dims.set_current_step(0, 0)
    widget.set_values(pred_iou_thresh=0.01)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=30000)
    assert widget.status.text().startswith(f"{counts[1]} objects in frame 1 (")
    # Said: nothing on show changed, and the slider looked broken.
    assert widget.status.text().endswith(
        " Frame 0, on show, was never segmented: the sliders re-filtered frame 1; Segment "
        "finds frame 0's cells."
    )
    assert widget._last_engine.runs["encoder"] == 1
    assert layer_info(labels)["frames_made"] == ["1"] and not labels.data[0].any()
    _segment_positions(viewer, widget, qtbot, name, (2,))
    assert layer_info(labels)["frames_made"] == ["1", "2"]
    set_value(widget.positions, ALL_POSITIONS)
    widget.segment()
    qtbot.waitUntil(lambda: "frames_made" not in layer_info(labels), timeout=30000)
    assert None not in [row["cells"] for row in cell_counts(from_layer(labels))]
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    # Nor does a slider segment another image picked meanwhile (it segmented that image's
    # frame of the number last segmented, or failed past its last frame).
    viewer.add_image(np.stack([image()[::-1]] * 2), name="other")
    widget.layer.setCurrentText("other")
    widget.set_values(pred_iou_thresh=0.02)
    assert not widget.runner.busy and "other SAM2 masks" not in viewer.layers
    assert widget.status.text() == (
        "Segment 'other' first: the sliders re-filter the image segmented last."
    )


def test_masks_closed_while_the_sliders_update_them_are_not_brought_back(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """The layer of the masks closed just after a slider moved came back with the
    update: a person throwing the masks away saw them again."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="img")
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.segment()
    qtbot.waitUntil(lambda: "img SAM2 masks" in viewer.layers and not widget.runner.busy,
                    timeout=30000)  # fmt: skip
    widget.set_values(pred_iou_thresh=0.01)  # an update on its way
    viewer.layers.remove("img SAM2 masks")
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=30000)
    assert "img SAM2 masks" not in viewer.layers
    assert widget.status.text() == (
        "The layer of the masks of 'img' was closed as the sliders updated them, so the "
        "update is not shown; move a slider, or press Segment, to see them again."
    )
    widget.set_values(pred_iou_thresh=0.02)  # asked for since
    qtbot.waitUntil(lambda: "img SAM2 masks" in viewer.layers, timeout=30000)


def test_positions_done_with_other_settings_are_recorded_as_such(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """A slider moved at position 0 re-segmented that position only; position 1 kept its
    cells from the settings before, while the layer recorded the new settings alone (its
    provenance then said a minimum area its cells did not have)."""
    from napari_cytomask.io.export import from_layer
    from napari_cytomask.io.layers import layer_info

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([image(), image()[::-1]]), name="scan")
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    name = "scan SAM2 masks"
    _segment_positions(viewer, widget, qtbot, name, (1, 0))
    labels = viewer.layers[name]
    assert layer_info(labels)["previewed_frames"] == {}  # both found with these settings
    before = layer_info(labels)["parameters"]
    widget.set_values(min_area=5)
    qtbot.waitUntil(lambda: layer_info(labels)["parameters"] != before, timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    record = layer_info(labels)
    assert record["parameters"]["labels"]["min_area"] == 5
    assert record["previewed_frames"] == {"1": {"method": "sam2", "parameters": before}}
    assert widget.status.text().endswith(
        " Frame 1 keeps cells found with other settings; segment 'all frames' to find every "
        "frame's with these."
    )
    assert from_layer(labels).previewed_frames == record["previewed_frames"]


def test_positions_of_an_all_positions_run_stay_made_after_one_is_redone(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """After 'all positions', a slider moved at one position forgot the others: their
    cells stayed in the layer, but the metrics, the cell counts, the features and the
    provenance took them for positions never segmented."""
    from napari_cytomask.io.export import cell_counts, from_layer
    from napari_cytomask.io.layers import layer_info

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([image(), image()[::-1], image()]), name="scan")
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    set_value(widget.positions, ALL_POSITIONS)
    name = "scan SAM2 masks"
    widget.segment()
    qtbot.waitUntil(lambda: name in viewer.layers and not widget.runner.busy, timeout=30000)
    labels = viewer.layers[name]
    everywhere = layer_info(labels)["parameters"]
    kept = {p: set(np.unique(labels.data[p])) - {0} for p in (0, 2)}
    assert all(kept.values())
    set_value(widget.positions, CURRENT_POSITION)
    _segment_positions(viewer, widget, qtbot, name, (1,))
    widget.set_values(min_area=5)
    qtbot.waitUntil(lambda: layer_info(labels)["parameters"] != everywhere, timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    record = layer_info(labels)
    assert record["frames_made"] == ["0", "1", "2"]
    assert record["previewed_frames"] == {
        key: {"method": "sam2", "parameters": everywhere} for key in ("0", "2")
    }
    assert None not in [row["cells"] for row in cell_counts(from_layer(labels))]
    for position, ids in kept.items():
        assert set(np.unique(labels.data[position])) - {0} == ids
        rows = labels.features["position"] == position
        assert set(labels.features["index"][rows]) == ids
    assert "Frames 0, 2 keep cells found with other settings" in widget.status.text()


def test_each_result_layer_keeps_its_own_positions(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """One table of positions for the widget: a position of another image segmented in
    between cleared the first image's, and its redo took the other image's features."""
    from napari_cytomask.io.export import cell_counts, from_layer
    from napari_cytomask.io.layers import layer_info

    viewer = make_napari_viewer_proxy()
    first = viewer.add_image(np.stack([image(), image()[::-1], image()]), name="A")
    second = viewer.add_image(np.stack([image()[:, ::-1], image()]), name="B")
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    set_value(widget.positions, ALL_POSITIONS)
    widget.layer.setCurrentText("A")
    widget.segment()
    qtbot.waitUntil(
        lambda: "A SAM2 masks" in viewer.layers and not widget.runner.busy, timeout=30000
    )
    set_value(widget.positions, CURRENT_POSITION)
    widget.layer.setCurrentText("B")
    _segment_positions(viewer, widget, qtbot, "B SAM2 masks", (0,))
    widget.layer.setCurrentText("A")
    viewer.dims.set_current_step(0, 1)
    widget.segment()
    qtbot.waitUntil(
        lambda: "frames_made" in layer_info(viewer.layers["A SAM2 masks"]), timeout=30000
    )
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    labels = viewer.layers["A SAM2 masks"]
    assert layer_info(labels)["frames_made"] == ["0", "1", "2"]
    assert None not in [row["cells"] for row in cell_counts(from_layer(labels))]
    for position in range(3):
        ids = set(np.unique(labels.data[position])) - {0}
        rows = labels.features["position"] == position
        assert set(labels.features["index"][rows]) == ids
    index = labels.features["index"]  # one row per cell, none of B's
    assert len(index) == len(set(index)) and set(index) == set(np.unique(labels.data)) - {0}
    assert first in viewer.layers and second in viewer.layers


def test_a_frame_of_two_axes_redone_is_numbered_as_all_frames_are(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """Frame (1, 0) of a T x P stack, redone, was position 1 in the features beside frame
    (0, 1), numbered 1 by the run of all frames (which numbers them in order: 2)."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([np.stack([image(), image()[::-1]])] * 2), name="scan")
    widget = Sam2Widget(viewer, model_builder=lambda source, device, config: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    set_value(widget.positions, ALL_POSITIONS)
    widget.segment()
    qtbot.waitUntil(
        lambda: "scan SAM2 masks" in viewer.layers and not widget.runner.busy, timeout=30000
    )
    set_value(widget.positions, CURRENT_POSITION)
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 0)
    labels = viewer.layers["scan SAM2 masks"]
    before = labels.features.copy()
    widget.segment()
    qtbot.waitUntil(lambda: not labels.features.equals(before), timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    for flat, frame in enumerate(np.ndindex(2, 2)):
        rows = labels.features["position"] == flat
        assert set(labels.features["index"][rows]) == set(np.unique(labels.data[frame])) - {0}


def test_an_image_that_shows_nothing_is_said_beside_the_masks_found(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """SAM2 on an all-black image gave "36 objects from 108 masks" without a word that the
    image shows nothing; the U-Net says it, and a black frame of a stack."""
    viewer = make_napari_viewer_proxy()
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    viewer.add_image(np.zeros((48, 64), np.uint16), name="black")
    widget.segment()
    qtbot.waitUntil(lambda: "black SAM2 masks" in viewer.layers, timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert "Every pixel of the image has the same value (0): it shows nothing." in (
        widget.status.text()
    )
    viewer.add_image(np.stack([image(), np.zeros((48, 64), np.uint16)]), name="stack")
    widget.layer.setCurrentText("stack")
    set_value(widget.positions, ALL_POSITIONS)
    widget.segment()
    qtbot.waitUntil(lambda: "stack SAM2 masks" in viewer.layers, timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert "Frame 1 shows nothing (one value" in widget.status.text()


def test_no_masks_kept_asks_only_for_settings_that_can_still_move(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """With the IoU and stability at 0 and the maximum area at 1, a raised mask cut-off
    kept no mask, and the hint asked to lower the IoU and stability, raise the maximum."""
    from napari_cytomask.models.sam2_engine import Sam2Result

    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.set_values(pred_iou_thresh=1.0)
    widget.segment()
    qtbot.waitUntil(lambda: "No masks kept" in widget.status.text(), timeout=30000)
    assert widget.status.text().endswith("candidates: lower the minimum predicted IoU.")

    def hint(candidates=48, masks=0, foreground=False, **values):
        widget.set_values(**{**keep_every_mask, "min_area": 0, "mask_threshold": 0.0, **values})
        result = Sam2Result(np.zeros((8, 8), np.uint16), {}, candidates, masks)
        return widget._no_masks_hint(result, foreground)

    assert hint(mask_threshold=1.0) == (
        " No masks kept of 48 candidates: set the mask cut-off (More settings) back to 0."
    )
    assert hint(min_area=500, foreground=True) == (
        " No masks kept of 48 candidates: lower the minimum area or lower the minimum share "
        "on foreground (masks mostly outside the Foreground layer are dropped)."
    )
    assert hint(min_area=500, foreground=True, min_foreground_fraction=0.0) == (
        " No masks kept of 48 candidates: lower the minimum area."
    )
    assert "every filter open" in hint()
    assert "masks that passed the filters were smaller" in hint(masks=3, min_area=50)
    # Empty masks (a raised cut-off) pass a minimum area of 0: the cut-off is named.
    assert hint(masks=48, mask_threshold=2.0).endswith("(More settings) back to 0.")
    assert "raise Points per side" in hint(candidates=0)


def test_a_lazy_image_is_read_once_for_the_slider_moves(make_napari_viewer_proxy, small_model):
    """A pyramid's full resolution or a scan on disk is not read again on every slider
    move; an array in memory is used as it is, so edits to it show."""
    import dask.array as da

    widget = Sam2Widget(make_napari_viewer_proxy(), model_builder=lambda *args: small_model)
    lazy = da.from_array(image(), chunks=16)
    first = widget._plane(lazy, (), "image")
    assert isinstance(first, np.ndarray) and np.array_equal(first, image())
    assert widget._plane(lazy, (), "image") is first
    stack = da.stack([lazy, lazy])
    assert widget._plane(stack, (1,), "image") is not first  # another array: read again
    in_memory = image()
    assert widget._plane(in_memory, (), "image") is in_memory


def test_merged_masks_are_split_over_the_shape_of_the_pixels(
    make_napari_viewer_proxy, small_model, monkeypatch
):
    """Over pixels of 0.87 x 0.435 µm, the split of merged masks counted rows and columns;
    it is given the size of the pixels of the level segmented."""
    from napari_cytomask.models.sam2_engine import Sam2Engine, Sam2Result
    from napari_cytomask.progress import drain

    given = []

    def segment_iter(self, image, params, label_params, **kwargs):
        given.append(kwargs["spacing"])
        return Sam2Result(np.zeros(image.shape, np.uint8), {}, 0, 0)
        yield

    monkeypatch.setattr(Sam2Engine, "segment_iter", segment_iter)
    viewer = make_napari_viewer_proxy()
    full = image()
    viewer.add_image([full, full[::2, ::2]], name="pyramid", scale=(0.87, 0.435), units="µm")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    for level in (0, 1):
        widget.level.setCurrentIndex(level)
        drain(widget._run(widget._job()))
    assert given == [(0.87, 0.435), (1.74, 0.87)]


def test_an_image_closed_while_segmented_gets_no_masks(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="kept")
    viewer.add_image(image(), name="closed")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    widget.layer.setCurrentText("closed")
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    widget.segment()
    viewer.layers.remove("closed")  # before the worker's result reaches the GUI thread
    qtbot.waitUntil(lambda: "was closed" in widget.status.text(), timeout=60000)
    assert [layer.name for layer in viewer.layers] == ["kept"]


def test_a_renamed_foreground_stays_the_foreground(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """Renaming it reset the choice to "(none)": the next run went unfiltered, unsaid."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    viewer.add_labels((image() > 500).astype(np.uint8), name="cells")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    widget.layer.setCurrentText("phase")
    widget.foreground.setCurrentText("cells")
    viewer.layers["cells"].name = "U-Net cells, checked"
    assert widget.foreground.currentText() == "U-Net cells, checked"
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    widget.segment()
    qtbot.waitUntil(lambda: "phase SAM2 masks" in viewer.layers, timeout=60000)
    record = viewer.layers["phase SAM2 masks"].metadata["cytomask"]["parameters"]
    assert record["foreground"]["layer"] == "U-Net cells, checked"


def test_an_overlap_that_does_not_fit_the_tiles_is_said_as_it_is_set(
    make_napari_viewer_proxy, small_model
):
    """It was said only when a run on an image larger than a tile failed."""
    widget = Sam2Widget(make_napari_viewer_proxy(), model_builder=lambda *args: small_model)
    assert widget.tile_note.isHidden()
    widget.set_values(tile_size=256, tile_overlap=300)
    assert not widget.tile_note.isHidden()
    assert widget.tile_note.text() == (
        "The tile overlap (300) must be at least 0 and smaller than the tile size (256); "
        "lower the overlap or enlarge the tiles."
    )
    widget.set_values(tile_size=512)
    assert widget.tile_note.isHidden()


def test_crop_layers_without_prompt_points_are_said_as_they_are_set(
    make_napari_viewer_proxy, small_model
):
    """A run with them failed with "SAM2 failed: division by zero" (benchmarks/fuzz_dock.py)."""
    widget = Sam2Widget(make_napari_viewer_proxy(), model_builder=lambda *args: small_model)
    widget.set_values(points_per_side=7, crop_n_layers=2)
    assert widget.tile_note.isHidden()  # a factor of 1: every layer has 7 points per side
    widget.set_values(crop_n_points_downscale_factor=4)
    assert not widget.tile_note.isHidden()
    assert widget.tile_note.text().startswith(
        "With 7 points per side, 2 crop layer(s) and 4 times fewer points in each deeper layer"
    )
    with pytest.raises(ValueError, match="the smallest crops get no point"):
        widget.params()  # what a run would say
    widget.set_values(points_per_side=16)
    assert widget.tile_note.isHidden()
    # With an overlap that does not fit too, both are said.
    widget.set_values(points_per_side=7, tile_size=256, tile_overlap=300)
    assert widget.tile_note.text().startswith("The tile overlap (300) must be at least 0")
    assert "the smallest crops get no point" in widget.tile_note.text()


def test_settings_refused_while_a_live_update_waits_are_not_hidden_by_it(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """A slider moved just before another was set to settings a run refuses asked for a
    live update, which then landed over the refusal: masks, and "… objects", for settings
    no longer shown."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    widget.set_values(points_per_side=6, **keep_every_mask)
    widget.segment()
    qtbot.waitUntil(lambda: "phase SAM2 masks" in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    labels = viewer.layers["phase SAM2 masks"]
    first = np.array(labels.data)
    ious = labels.features["predicted_iou"].to_numpy()
    widget.set_values(pred_iou_thresh=float(np.round(np.median(ious), 2)))  # asks for an update
    assert widget.runner.busy
    widget.set_values(crop_n_layers=2, crop_n_points_downscale_factor=4)  # refused
    said = widget.status.text()
    assert "the smallest crops get no point (6 / 16 < 1)" in said
    qtbot.wait(1000)  # longer than the live update's quiet period
    assert not widget.runner.busy
    assert widget.status.text() == said
    np.testing.assert_array_equal(labels.data, first)


def test_colour_pictures_are_not_offered_as_foreground(make_napari_viewer_proxy, small_model):
    """An RGB layer was listed, and refused only when SAM2 ran."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    viewer.add_image(np.zeros((48, 64, 3), np.uint8), name="photo", rgb=True)
    viewer.add_labels((image() > 500).astype(np.uint8), name="cells")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    offered = [widget.foreground.itemText(i) for i in range(widget.foreground.count())]
    assert offered == [NO_FOREGROUND, "phase", "cells"]


def _segment_phase_within(widget, qtbot, foreground: str) -> None:
    """SAM2 on the layer 'phase' with ``foreground`` as its foreground, on the CPU, to
    its end."""
    widget.layer.setCurrentText("phase")
    widget.foreground.setCurrentText(foreground)
    widget.device.setCurrentText("cpu")
    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)


@pytest.mark.parametrize("foreground_shape", [(1, 1), (48, 64), (3, 48, 64)])
def test_a_foreground_of_another_stack_is_refused_at_the_position_shown(
    make_napari_viewer_proxy, qtbot, small_model, foreground_shape
):
    """Segmenting the position shown took the foreground at that position too: a map of a
    single frame gave "index 3 is out of bounds for axis 0 with size 1", or a row of its
    pixels, said to be a map "of shape (64,)"."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([image()] * 4), name="phase")
    viewer.add_labels(np.ones(foreground_shape, np.uint8), name="cells")
    viewer.dims.set_current_step(0, 3)
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    _segment_phase_within(widget, qtbot, "cells")
    assert widget.controls.status.text() == (
        f"SAM2 failed: The foreground map has shape {foreground_shape} but the image "
        "(4, 48, 64); pick a foreground layer of the same image."
    )
    assert "phase SAM2 masks" not in viewer.layers


def test_an_intensity_image_is_refused_as_the_foreground(
    make_napari_viewer_proxy, qtbot, small_model
):
    """The phase image chosen as the foreground was thresholded at 0.5: every pixel was
    foreground, it filtered nothing, and nothing said so."""
    from skimage.measure import label

    viewer = make_napari_viewer_proxy()
    noise = np.random.default_rng(1).integers(0, 60, (48, 64))  # a camera's
    phase = (image() + noise).astype(np.uint16)
    viewer.add_image(phase, name="phase")
    binary = viewer.add_image(np.where(phase > 500, 255, 0).astype(np.uint8), name="otsu")
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    _segment_phase_within(widget, qtbot, "phase")
    assert widget.controls.status.text().startswith(
        "SAM2 failed: 'phase' is an image, not a foreground map: its pixels go from "
    )
    assert "phase SAM2 masks" not in viewer.layers
    # Taken: a mask, a probability map (one resampled overshoots 1 by a rounding error) and
    # cell ids that napari's reader opened as an image (a PNG of ids).
    overshoot = (phase / phase.max()).astype(np.float32) * np.float32(1.0000002)
    ids = viewer.add_image(label(phase > 500).astype(np.uint8), name="ids")
    for layer in (binary, viewer.add_image(overshoot, name="probabilities"), ids):
        _segment_phase_within(widget, qtbot, layer.name)
        assert "phase SAM2 masks" in viewer.layers, widget.controls.status.text()
        viewer.layers.remove("phase SAM2 masks")


def test_the_tuned_sliders_are_in_view_and_the_rest_behind_more_settings(make_napari_viewer, qtbot):
    """Points per side, predicted IoU, stability and the area limits are what a person
    tunes: they are shown; duplicate, decoder, crop and tile settings open on request."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(image(), name="phase")
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(widget.isVisible)
    tuned = {"points_per_side", "pred_iou_thresh", "stability_score_thresh", "min_area",
             "max_area_fraction"}  # fmt: skip
    assert {name for name, s in widget.sliders.items() if s.isVisible()} == tuned
    assert not widget.checks["use_m2m"].isVisible()
    widget.more.click()
    share = widget.sliders["min_foreground_fraction"]
    assert all(s.isVisible() for s in widget.sliders.values() if s is not share)
    assert widget.checks["use_m2m"].isVisible()
    widget.more.click()
    assert not widget.sliders["box_nms_thresh"].isVisible()
    # With a foreground (guided by the U-Net), its own setting is tuned with them: it was
    # behind More settings, and a guided run that kept nothing did not name it.
    viewer.add_labels(np.ones((48, 64), np.uint8), name="U-Net cells")
    widget.foreground.setCurrentText("U-Net cells")
    assert {name for name, s in widget.sliders.items() if s.isVisible()} == tuned | {
        "min_foreground_fraction"
    }
    widget.foreground.setCurrentIndex(0)
    assert not share.isVisible()
    # A short page (guided by the U-Net, under its settings) shows its first rows; the
    # sliders are scrolled into view when the guided SAM2 run starts.
    widget.setFixedHeight(200)
    qtbot.waitUntil(lambda: widget._tune_box.visibleRegion().isEmpty())
    widget.show_tuning()
    qtbot.waitUntil(lambda: not widget._tune_box.visibleRegion().isEmpty())


def test_choosing_a_local_checkpoint_moves_no_field(make_napari_viewer, qtbot):
    """Its rows widened the label column ("Checkpoint file"): every field moved right, and
    the model's list, as wide as the longest id, wrapped below its label."""
    from napari_cytomask._qt import sam2_widget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(widget.isVisible)

    def places():
        qtbot.wait(50)
        return [
            (widget._top.labelForField(field).geometry().topLeft(), field.geometry().left())
            for field in (widget.model, widget.layer)
        ]

    before = places()
    widget.model.setCurrentText(sam2_widget.LOCAL)
    after = places()
    assert after[0] == before[0]  # the model's row
    assert after[1][1] == before[1][1]  # the image's list, further down


def test_a_local_checkpoint_gets_the_configuration_it_belongs_to(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path, sam2_weights_of
):
    """Offline, the message says to copy sam2.1_hiera_tiny.pt and open it as a local
    checkpoint: its configuration followed neither the model asked for nor the file."""
    from napari_cytomask._qt import sam2_widget

    viewer = make_napari_viewer_proxy()
    widget = Sam2Widget(viewer)
    qtbot.addWidget(widget)
    assert widget.config.currentText() == sam2_widget.DEFAULT_MODEL
    widget.model.setCurrentText("facebook/sam2.1-hiera-small")
    with pytest.raises(ValueError, match="press Open… beside Checkpoint file"):
        widget.model.setCurrentText(sam2_widget.LOCAL)
        widget.model_source()
    dialogs = []
    monkeypatch.setattr(
        sam2_widget.QFileDialog, "getOpenFileName", lambda *a: dialogs.append(a) or ("", "")
    )
    widget._model_chosen()  # as when a user picks it in the list
    assert dialogs and widget.config.currentText() == "facebook/sam2.1-hiera-small"
    large = sam2_weights_of("facebook/sam2-hiera-tiny", tmp_path / "sam2_hiera_large.pt")
    widget.use_checkpoint(large)  # its weights tell, not its name
    assert widget.model_source() == (large, "facebook/sam2-hiera-tiny")
    assert widget.status.text() == (
        "Checkpoint sam2_hiera_large.pt: weights of facebook/sam2-hiera-tiny (its Configuration)."
    )
    widget._model_chosen()  # Local picked again: the checkpoint keeps its configuration
    assert widget.model_source() == (large, "facebook/sam2-hiera-tiny")
    mine = sam2_weights_of("facebook/sam2.1-hiera-tiny", tmp_path / "finetuned.pt")
    widget.use_checkpoint(mine)
    assert widget.model_source() == (mine, "facebook/sam2.1-hiera-tiny")


def test_a_file_of_no_sam2_model_is_refused_as_it_is_picked(
    make_napari_viewer_proxy,
    qtbot,
    monkeypatch,
    tmp_path,
    unet_checkpoint,
    notifications,
    sam2_weights_of,
):
    """A U-Net's file, a checkpoint copied in part, weights of no SAM2 network or of part of
    one (no mask decoder) were taken as the local checkpoint, and refused only when Segment
    loaded them, the model chosen before gone."""
    from napari_cytomask._qt import sam2_widget

    said = notifications
    viewer = make_napari_viewer_proxy()
    widget = Sam2Widget(viewer)
    qtbot.addWidget(widget)
    good = sam2_weights_of("facebook/sam2.1-hiera-tiny", tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(Path(good).read_bytes()[:2000])
    other = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(3)}}, other)
    part = tmp_path / "no_decoder.pt"
    weights = torch.load(good)["model"]
    torch.save({"model": {k: v for k, v in weights.items() if "mask_decoder" not in k}}, part)
    picked = []
    monkeypatch.setattr(sam2_widget.QFileDialog, "getOpenFileName", lambda *a: (picked[-1], ""))
    for path, why in [
        (unet_checkpoint(), "It is a U-Net checkpoint of napari-cytomask, not SAM2 weights"),
        (cut, "It could not be read as a PyTorch file of weights (copied or downloaded in part"),
        (other, "It holds no weights of a SAM2 or SAM2.1 model"),
        (part, "It is part of facebook/sam2.1-hiera-tiny"),
    ]:
        picked.append(str(path))
        widget.model.setCurrentText("facebook/sam2.1-hiera-small")
        widget.model.setCurrentText(sam2_widget.LOCAL)
        widget._model_chosen()  # as when a user picks it in the list
        assert widget.model_source() == ("facebook/sam2.1-hiera-small", None)
        assert said[-1] == widget.status.text()
        # What was refused and what SAM2 keeps first, the file named once.
        assert said[-1].startswith(
            f"{path.name} is not used: SAM2 keeps facebook/sam2.1-hiera-small. {why}"
        )
        assert said[-1].count(path.name) == 1
    # A local checkpoint chosen before stays, too.
    picked.append(good)
    widget.model.setCurrentText(sam2_widget.LOCAL)
    widget._browse()
    picked.append(str(other))
    widget._browse()
    assert widget.model_source() == (good, "facebook/sam2.1-hiera-tiny")
    assert said[-1].startswith("other.pt is not used: SAM2 keeps good.pt. It holds no weights")


def test_a_refused_checkpoint_says_first_what_was_refused_in_view(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path, sam2_weights_of
):
    """At 1280 x 800, a refusal 450 characters long ended with what SAM2 kept, below the
    lines the status shows, and the notification showed "no_decoder.pt seems to hold
    weights of". The refusal, what is kept and why come first, and what to do (a whole
    checkpoint) is in view too, without scrolling: of part of a model that is told (no mask
    decoder) or not (the image encoder alone), with a Hugging Face id kept."""
    from qtpy.QtCore import QRect, Qt

    from napari_cytomask._qt import sam2_widget

    viewer = make_napari_viewer_proxy(show=True)
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.window._qt_window.resize(1280, 800)
    good = sam2_weights_of("facebook/sam2.1-hiera-tiny", tmp_path / "sam2.1_hiera_tiny.pt")
    weights = torch.load(good)["model"]
    picked = []
    monkeypatch.setattr(sam2_widget.QFileDialog, "getOpenFileName", lambda *a: (picked.pop(0), ""))
    area = widget.status.area

    def refused(name, kept, keeps):
        part = tmp_path / name
        torch.save({"model": {k: v for k, v in weights.items() if kept(k)}}, part)
        picked.append(str(part))
        widget._browse()
        said = widget.status.text()
        assert said.startswith(f"{name} is not used: SAM2 keeps {keeps}. It ") and (
            "part of" in said and said.endswith("pick a whole checkpoint (sam2.1_hiera_tiny.pt).")
        ), said
        # As high as the text allows (a few lines), once laid out anew.
        qtbot.waitUntil(lambda: area.height() == area.sizeHint().height(), timeout=5000)
        wrapped = widget.status.fontMetrics().boundingRect(
            QRect(0, 0, area.viewport().width(), 10_000), Qt.TextFlag.TextWordWrap, said
        )
        assert wrapped.height() <= area.viewport().height(), said

    def encoder(k):
        return k.startswith("image_encoder.")

    widget.model.setCurrentText(sam2_widget.LOCAL)
    refused("sam21_tiny_encoder_only.pt", encoder, "facebook/sam2.1-hiera-tiny")
    widget.model.setCurrentText(sam2_widget.LOCAL)
    picked.append(good)
    widget._browse()
    refused("no_decoder.pt", lambda k: "mask_decoder" not in k, "sam2.1_hiera_tiny.pt")
    refused("encoder.pt", encoder, "sam2.1_hiera_tiny.pt")


def test_a_unet_model_refused_says_where_it_goes_in_view(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path, unet_checkpoint
):
    """At 1280 x 800, the refusal of a U-Net's file ended below the lines the status shows:
    what to do with it (the U-Net's Model) was out of sight. All of it is in view, the
    starter model's long name included."""
    from qtpy.QtCore import QRect, Qt

    from napari_cytomask._qt import sam2_widget
    from napari_cytomask.models.catalog import starter_path

    viewer = make_napari_viewer_proxy(show=True)
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.window._qt_window.resize(1280, 800)
    renamed = tmp_path / "unet.pt"  # a U-Net's checkpoint given the name of a SAM2 file
    renamed.write_bytes(unet_checkpoint().read_bytes())
    picked = []
    monkeypatch.setattr(sam2_widget.QFileDialog, "getOpenFileName", lambda *a: (picked[-1], ""))
    area = widget.status.area
    for path in (starter_path(), renamed):
        picked.append(str(path))
        widget._browse()
        said = widget.status.text()
        assert said.startswith(
            f"{path.name} is not used: SAM2 keeps facebook/sam2.1-hiera-tiny. It is a U-Net "
            "checkpoint of napari-cytomask, not SAM2 weights"
        )
        assert said.endswith("not SAM2 weights: open it as the U-Net's Model.")
        # As high as the text allows (a few lines), once laid out anew.
        qtbot.waitUntil(lambda: area.height() == area.sizeHint().height(), timeout=5000)
        wrapped = widget.status.fontMetrics().boundingRect(
            QRect(0, 0, area.viewport().width(), 10_000), Qt.TextFlag.TextWordWrap, said
        )
        assert wrapped.height() <= area.viewport().height()


def test_another_model_chosen_takes_back_the_error_of_the_one_that_failed_to_load(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path
):
    """Offline, a Hugging Face id failed to download; choosing a local checkpoint, as the
    message advises, left the download error on screen until the next run. An error about
    the model chosen now stays, and so does what a running run says."""
    from napari_cytomask._qt import _live, sam2_widget
    from napari_cytomask.models import sam2_models
    from napari_cytomask.models.checkpoint import CheckpointError

    def offline(model_id):
        raise sam2_models.ModelNotDownloaded(f"{model_id} is not downloaded yet")

    def unreadable(config, *, checkpoint, device):
        raise CheckpointError(f"{checkpoint} holds no SAM2 weights")

    monkeypatch.setattr(sam2_models, "download_checkpoint", offline)
    monkeypatch.setattr(sam2_models, "build_sam2_model", unreadable)
    monkeypatch.setattr(_live, "show_error", lambda message: None)
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    widget = Sam2Widget(viewer)
    qtbot.addWidget(widget)
    widget.device.setCurrentText("cpu")
    copied = str(tmp_path / "sam2.1_hiera_tiny.pt")
    torch.save({"model": {}}, copied)  # a PyTorch file whose loading fails below
    widget.checkpoint.setText(copied)  # chosen in an earlier session

    widget.segment()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert "not downloaded yet" in widget.status.text()
    widget.model.setCurrentText(sam2_widget.LOCAL)
    assert widget.status.text() == ""

    widget.segment()
    widget.model.setCurrentText(sam2_widget.DEFAULT_MODEL)  # while it runs
    widget.model.setCurrentText(sam2_widget.LOCAL)
    assert widget.status.text().startswith("Loading the model")
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert "holds no SAM2 weights" in widget.status.text()
    widget.checkpoint.setText(f' "{copied}" ')  # the same file, pasted with quotes
    assert "holds no SAM2 weights" in widget.status.text()
    widget.config.setCurrentText("facebook/sam2.1-hiera-small")  # another model
    assert widget.status.text() == ""
    # Changed while the run loads the model: its error says it was of the one before.
    widget.segment()
    widget.model.setCurrentText(sam2_widget.DEFAULT_MODEL)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    assert "holds no SAM2 weights" in widget.status.text()
    assert widget.status.text().endswith(
        "That was the model chosen before; run again to use the one chosen now."
    )


def _segmented_phase(viewer, qtbot, small_model, keep_every_mask):
    """The viewer with "phase" segmented by the small model, and the widget that did it."""
    viewer.add_image(image(), name="phase", metadata={"cytomask": {"role": "input"}})
    widget = Sam2Widget(viewer, model_builder=lambda *args: small_model)
    widget.set_values(points_per_side=6, order="score", **keep_every_mask)
    widget.device.setCurrentText("cpu")
    widget.segment()
    qtbot.waitUntil(lambda: "phase SAM2 masks" in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    return viewer, widget


def test_a_live_update_leaves_no_stroke_of_the_masks_before_it_to_redo(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """A slider's update writes new masks into the same layer; napari kept its undo and
    redo history, and Redo painted a stroke undone on the masks before into the new ones."""
    viewer, widget = _segmented_phase(
        make_napari_viewer_proxy(), qtbot, small_model, keep_every_mask
    )
    labels = viewer.layers["phase SAM2 masks"]
    labels.brush_size = 10
    labels.paint((24, 32), 999)
    labels.undo()
    first = np.array(labels.data)
    ious = labels.features["predicted_iou"].to_numpy()
    widget.set_values(pred_iou_thresh=float(np.round(np.median(ious), 2)))
    qtbot.waitUntil(lambda: not np.array_equal(labels.data, first), timeout=30000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
    labels.redo()
    assert not (np.asarray(labels.data) == 999).any()


def test_the_standalone_dock_says_when_the_masks_it_made_are_closed(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    viewer, widget = _segmented_phase(
        make_napari_viewer_proxy(), qtbot, small_model, keep_every_mask
    )
    assert " objects from " in widget.status.text()
    viewer.layers.remove("phase SAM2 masks")
    assert widget.status.text() == "'phase SAM2 masks' was closed: segment again to make its cells."


def test_masks_of_an_image_moved_during_the_run_lie_over_it_as_it_is_now(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """The masks kept the pixel size and place their image had when the run began."""
    import threading

    viewer = make_napari_viewer_proxy()
    layer = viewer.add_image(image(), name="phase", scale=(0.87, 0.87), units="µm")
    started, go_on = threading.Event(), threading.Event()

    def builder(source, device, config):  # the run has read the image as it lay then
        started.set()
        go_on.wait(30)
        return small_model

    widget = Sam2Widget(viewer, model_builder=builder)
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    widget.segment()
    assert started.wait(30)
    layer.scale, layer.translate = (0.5, 0.5), (10, 20)
    go_on.set()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    masks = viewer.layers["phase SAM2 masks"]
    assert tuple(masks.scale) == (0.5, 0.5) and tuple(masks.translate) == (10, 20)


def test_a_model_tried_after_another_lets_the_one_before_go(
    make_napari_viewer_proxy, qtbot, small_model, keep_every_mask
):
    """Every model tried stayed loaded, each with up to 2 GiB of cached image features: on
    a GPU, trying tiny, small, base and large in turn ran out of memory, and the advice
    (a smaller batch, or the CPU) freed none of it."""
    import copy
    import gc
    import weakref

    from napari_cytomask.models.sam2_models import HF_MODELS

    viewer = make_napari_viewer_proxy()
    viewer.add_image(image(), name="phase")
    built = []

    def builder(source, device, config):
        model = copy.deepcopy(small_model)
        built.append((source, weakref.ref(model)))
        return model

    widget = Sam2Widget(viewer, model_builder=builder)
    widget.set_values(points_per_side=4, **keep_every_mask)
    widget.device.setCurrentText("cpu")
    first, second = list(HF_MODELS)[:2]
    for model_id in (first, second, second):
        widget.model.setCurrentText(model_id)
        widget.segment()
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
        assert "objects from" in widget.status.text(), widget.status.text()
    gc.collect()
    assert [source for source, _ in built] == [first, second]  # the same one is not reloaded
    assert built[0][1]() is None and built[1][1]() is not None


def test_the_time_left_goes_on_over_the_turns_of_encoder_and_decoder(
    qtbot, small_model, monkeypatch
):
    """The estimate of the time left started again at each switch between SAM2's encoding
    and decoding (a crop each), so it was gone at each switch and left the encoding out."""
    from itertools import pairwise
    from types import SimpleNamespace

    from napari_cytomask import progress
    from napari_cytomask._qt._live import StepControls
    from napari_cytomask.models.sam2_engine import Sam2Engine, Sam2Params

    clock = iter(range(1000))  # a report each second: a steady pace
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    controls = StepControls("Segment", "Segment the image")
    qtbot.addWidget(controls)
    controls.set_running(True)
    rgb = np.repeat((image() // 12).astype(np.uint8)[..., None], 3, axis=-1)
    work = Sam2Engine(small_model).generate_iter(
        rgb, Sam2Params(points_per_side=4, crop_n_layers=1)
    )
    said = []

    def show(event):
        controls.show_progress(event)
        said.append((event, controls.status.text()))

    progress.drain(work, show)
    # Each turn after the first: an encoding of the next crop, then its decoding.
    turns = [
        text
        for (before, _), ((stage, done, total), text) in pairwise(said)
        if stage != before[0] and 0 < done < total
    ]
    assert len(turns) >= 4, said
    assert all(text.endswith(" left") for text in turns), turns
    assert said[-1][1] == "Decoding masks: 80 of 80 prompt points"
