import dask.array as da
import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage import io

from napari_cytomask._qt._layers import frame_on_show
from napari_cytomask._qt.watershed_widget import WatershedWidget
from napari_cytomask.io.layers import SAMPLE_GRID, SAMPLE_PATCH
from napari_cytomask.postprocess import instances_to_interior_boundary
from napari_cytomask.roles import source_of


@pytest.fixture
def truth(shared_data):
    path = shared_data / "usiigaci-phc" / "set1" / "instances_ids.png"
    return io.imread(path)[:512, :512]


def _applying(viewer, qtbot, name: str, mode: str = "split") -> WatershedWidget:
    """The widget set to ``mode`` (by default, to split labels) on the layer ``name``, on
    Apply only (no live preview)."""
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData(mode))
    widget.input.setCurrentText(name)
    return widget


def _applying_to_twelve_frames(viewer, qtbot, truth, live: bool) -> WatershedWidget:
    """The widget splitting a stack of 12 frames "cells" (Apply under way), its Live
    preview ``live``."""
    viewer.add_labels(np.stack([truth] * 12), name="cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.live.setChecked(live)
    widget.apply()
    assert widget.applying()
    return widget


@pytest.mark.gui
def test_live_preview_and_parameter_change(make_napari_viewer_proxy, qtbot, truth):
    viewer = make_napari_viewer_proxy()
    prob = np.where(truth > 0, 0.9, 0.05).astype(np.float32)
    viewer.add_image(prob, name="foreground")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.input.currentText() == "foreground"
    # Opening the widget, or a new layer, starts no preview by itself.
    viewer.add_image(prob[::-1].copy(), name="foreground 2")
    qtbot.wait(400)  # longer than the preview's quiet period
    assert not widget.runner.busy and len(viewer.layers) == 2
    widget.preview()
    qtbot.waitUntil(lambda: "foreground instances" in viewer.layers, timeout=10000)
    output = viewer.layers["foreground instances"]
    qtbot.waitUntil(lambda: output.data.max() > 10, timeout=10000)
    first = int(np.unique(output.data).size)
    widget.h.setValue(20.0)  # fewer markers: fewer cells, same layer updated in place
    qtbot.waitUntil(lambda: np.unique(output.data).size < first, timeout=10000)
    assert [layer.name for layer in viewer.layers] == [
        "foreground",
        "foreground 2",
        "foreground instances",
    ]
    assert "Preview" in widget.status.text()
    # A 2-D image has no frames to apply to, nor a current one to preview.
    assert widget.apply_button.text() == "Apply" and widget.live.text() == "Live preview"
    # Splitting labels: its own output, known by what it records, is never offered.
    widget.stop_preview()
    viewer.add_labels(output.data.copy(), name="hand-drawn")
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    offered = [widget.input.itemText(i) for i in range(widget.input.count())]
    assert offered == ["hand-drawn"]


@pytest.mark.gui
def test_settings_that_leave_no_cell_are_not_hidden_by_the_preview_before_them(
    make_napari_viewer_proxy, qtbot, truth
):
    """Typing a Maximum area below the Minimum one said so, then the preview asked for a
    moment before (with the settings that held then) landed over it: "Preview: 63 cells"
    for settings no longer shown (seen on the real sample's mask)."""
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(truth, name="cells")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    widget.input.setCurrentText("cells")
    widget.live.setChecked(True)
    widget.min_area.setValue(410)  # a preview is asked for
    widget.max_area.setValue(19)  # and these settings leave no cell
    said = (
        "Maximum area (19 px) is below Minimum area (410 px): no cell could stay. Raise "
        "Maximum area, or set it to 0 (no limit)."
    )
    assert widget.status.text() == said
    qtbot.wait(1000)  # longer than the preview's quiet period
    assert not widget.runner.busy
    assert widget.status.text() == said and "cells split" not in viewer.layers


@pytest.mark.gui
def test_interior_boundary_apply_on_stack(make_napari_viewer_proxy, qtbot, truth):
    viewer = make_napari_viewer_proxy()
    classes = instances_to_interior_boundary(np.stack([truth, truth[::-1]]))
    viewer.add_image((classes == 1).astype(np.float32), name="interior")
    viewer.add_image((classes == 2).astype(np.float32), name="boundary")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData("interior_boundary"))
    widget.input.setCurrentText("interior")
    widget.boundary.setCurrentText("boundary")
    assert widget.apply_button.text() == "Apply to all frames"
    assert widget.live.text() == "Live preview (current frame)"
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
    output = viewer.layers["interior instances"]
    assert output.data.shape == (2, 512, 512)
    ids0, ids1 = set(np.unique(output.data[0])) - {0}, set(np.unique(output.data[1])) - {0}
    assert len(ids0) > 20 and not ids0 & ids1
    assert widget.progress.value() == 2


@pytest.mark.gui
def test_unusable_inputs_are_reported(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((64, 64)), name="interior")
    viewer.add_image(np.random.default_rng(1).random((32, 32)), name="boundary")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData("interior_boundary"))
    widget.input.setCurrentText("interior")
    widget.boundary.setCurrentText("boundary")
    widget.apply()
    assert "same image" in widget.status.text()
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    assert widget.input.count() == 0
    widget.apply()
    assert widget.status.text().startswith("Nothing to read yet: segment the cells")
    # Empty labels (a prediction that found nothing, a new layer not painted yet).
    viewer.add_labels(np.zeros((64, 64), np.uint16), name="nothing")
    widget.input.setCurrentText("nothing")
    # Checked on Apply, in the worker: arrays in memory and lazy stacks alike.
    lazy = da.zeros((3, 64, 64), dtype=np.uint16, chunks=(1, 64, 64))
    viewer.add_labels(lazy, name="lazy nothing")
    for name in ("nothing", "lazy nothing"):
        widget.input.setCurrentText(name)
        widget.apply()
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=10000)
        assert widget.status.text() == (
            f"'{name}' has no cells to split (every pixel is 0): segment it in Segment "
            "cytoplasm (its step 2, or Layers > Segment) first, or paint cells into it."
        )
        assert f"{name} split" not in viewer.layers
    # Labels with negative ids: the core refuses them with a sentence saying why.
    viewer.add_labels(np.full((64, 64), -3, np.int16), name="cells")
    widget.input.setCurrentText("cells")
    widget.apply()
    qtbot.waitUntil(lambda: "negative ids" in widget.status.text(), timeout=10000)
    # Areas that leave no cell are said in the dock's words, not the function's
    # ("max_area (19) is below min_area (410)", found by benchmarks/fuzz_dock.py).
    viewer.layers["cells"].data = np.ones((64, 64), np.uint16)
    widget.min_area.setValue(410)
    widget.max_area.setValue(19)
    widget.apply()
    assert widget.status.text() == (
        "Maximum area (19 px) is below Minimum area (410 px): no cell could stay. Raise "
        "Maximum area, or set it to 0 (no limit)."
    )
    assert "cells split" not in viewer.layers


@pytest.mark.gui
def test_intensity_image_starts_at_otsu_and_output_matches_input_geometry(
    make_napari_viewer_proxy, qtbot
):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    gfp = viewer.layers["GFP"]
    tile = viewer.dims.current_step[0]  # the preview shows the displayed tile
    truth = viewer.layers["Mask (ground truth)"].data[tile]
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.input.setCurrentText("GFP")
    # Otsu on the uint16 stain, not 0.5 (which would make every pixel foreground).
    assert 200 < widget.threshold.value() < float(gfp.data[tile].max())
    widget.preview()
    qtbot.waitUntil(lambda: "GFP instances" in viewer.layers, timeout=30000)
    output = viewer.layers["GFP instances"]
    qtbot.waitUntil(lambda: output.data[tile].max() > 0.5 * truth.max(), timeout=30000)
    assert tuple(output.scale) == tuple(gfp.scale)
    assert tuple(output.axis_labels) == tuple(gfp.axis_labels)
    assert tuple(output.units) == tuple(gfp.units)
    foreground_overlap = np.mean((output.data[tile] > 0) == (truth > 0))
    assert foreground_overlap > 0.9
    widget.apply()  # a stain's brightness finds its cells: nothing to warn of
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30000)
    assert "transmitted-light" not in widget.status.text()

    # The brightness of transmitted light does not: 1528 "cells" on the real sample's 209
    # were shown as done, and the metrics step took them up.
    widget.input.setCurrentText("Brightfield")
    widget.apply()
    qtbot.waitUntil(lambda: "Brightfield instances" in widget.status.text(), timeout=30000)
    assert "'Brightfield' is a transmitted-light image: its brightness does not tell cells " \
        "from background" in widget.status.text()  # fmt: skip
    # A file named after itself ('raw') says nothing of its light: its role does, so the
    # note is conditional; a stain's name ('Transferrin 488') silences it.
    light = viewer.layers["Brightfield"].data
    viewer.add_image(light, name="raw", metadata={"cytomask": {"role": "input"}})
    viewer.add_image(light, name="Transferrin 488", metadata={"cytomask": {"role": "input"}})
    for name, note in (("raw", "If 'raw' is a transmitted-light image (brightfield, phase "
                                "contrast, DIC), these are not its cells"),
                       ("Transferrin 488", None)):  # fmt: skip
        widget.input.setCurrentText(name)
        widget.apply()
        qtbot.waitUntil(
            lambda name=name: f"{name} instances" in widget.status.text(), timeout=30000
        )
        assert (
            (note in widget.status.text()) if note else ("transmitted" not in widget.status.text())
        )


@pytest.mark.gui
def test_an_image_of_light_saved_from_0_to_1_is_not_taken_for_probabilities(
    make_napari_viewer_proxy, qtbot, shared_data, tmp_path
):
    """Phase contrast saved as decimals from 0 to 1, opened as a scan's input, was taken
    for a probability map: thresholded at 0.5, its 192 "cells" were reported without the
    warning the same image saved as 16-bit gets. A model's map keeps 0.5."""
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:256, :256]
    low, high = np.percentile(raw, (0.5, 99.5))
    light = np.clip((raw - low) / (high - low), 0, 1).astype(np.float32)
    tifffile.imwrite(tmp_path / "phase.tif", light)
    viewer = make_napari_viewer_proxy()
    (layer,) = viewer.open(tmp_path / "phase.tif", plugin="napari-cytomask")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData("foreground"))
    widget.input.set_layer(layer)
    # Otsu's threshold of its light, in steps of 1 % of its range, not a map's 0.5.
    assert widget.threshold.value() == 0.57 and widget.threshold.singleStep() == 0.01
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30000)
    assert "'phase' is a transmitted-light image: its brightness does not tell cells from " \
        "background, so these are not its cells" in widget.status.text()  # fmt: skip
    viewer.add_image(light, name="map", metadata={"cytomask": {"role": "result"}})
    widget.input.setCurrentText("map")
    assert widget.threshold.value() == 0.5
    widget.apply()
    qtbot.waitUntil(lambda: "map instances" in widget.status.text(), timeout=30000)
    assert "not its cells" not in widget.status.text()


@pytest.mark.gui
def test_a_probability_map_saved_to_a_file_is_one(
    make_napari_viewer_proxy, qtbot, shared_data, tmp_path
):
    """A foreground probability map saved as decimals from 0 to 1 and opened with the
    plugin's reader was called an image of light: not previewed live, its threshold at
    Otsu's 0.47, while the same map made in the viewer previewed 69 cells from 0.5."""
    ids = io.imread(shared_data / "usiigaci-phc" / "set1" / "instances_ids.png")
    probabilities = ndi.gaussian_filter((ids > 0).astype(np.float32), 3)
    tifffile.imwrite(tmp_path / "set1_foreground_probability.tif", probabilities)
    viewer = make_napari_viewer_proxy()
    (layer,) = viewer.open(tmp_path / "set1_foreground_probability.tif", plugin="napari-cytomask")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.mode.setCurrentIndex(widget.mode.findData("foreground"))
    widget.input.set_layer(layer)
    assert widget.threshold.value() == 0.5
    widget.min_area.setValue(20)  # any edit previews
    qtbot.waitUntil(lambda: "Preview:" in widget.status.text(), timeout=30000)
    assert "set1_foreground_probability instances" in [ly.name for ly in viewer.layers]


@pytest.mark.gui
def test_the_suggested_threshold_has_the_decimals_its_image_needs(make_napari_viewer_proxy, qtbot):
    """A 16-bit Otsu value is a whole number ("42399.00" did not fit its box); a float
    image gets decimals by its range; a probability map its 0.05 steps back."""
    viewer = make_napari_viewer_proxy()
    rng = np.random.default_rng(0)
    bright = (rng.random((64, 64)) * 20000 + 30000).astype(np.uint16)
    viewer.add_image(bright, name="16-bit")
    viewer.add_image(bright / 40000.0, name="ratio")  # float, 0.75 to 1.25
    viewer.add_image(rng.random((64, 64)).astype(np.float32), name="probability")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.input.setCurrentText("16-bit")
    assert widget.threshold.decimals() == 0 and "." not in widget.threshold.text()
    assert widget.threshold.singleStep() == pytest.approx(
        (bright.max() - bright.min()) / 100, abs=1
    )
    assert 30000 < widget.threshold.value() < 50000
    widget.input.setCurrentText("ratio")
    assert widget.threshold.decimals() == 3 and widget.threshold.singleStep() == 0.005
    assert 0.75 < widget.threshold.value() < 1.25
    widget.input.setCurrentText("probability")
    assert widget.threshold.decimals() == 2 and widget.threshold.singleStep() == 0.05
    assert widget.threshold.value() == 0.5
    # Ranges at the edges: whole numbers spanning ±2e9 (Otsu asked for 29.8 GiB), and a
    # float32 span of 1e-5 (Otsu found too few steps; 4 decimals made it one value).
    wide = np.where(bright > 40000, 2_000_000_000, -2_000_000_000).astype(np.int32)
    viewer.add_image(wide, name="wide")
    widget.input.setCurrentText("wide")
    assert -2e9 < widget.threshold.value() < 2e9
    narrow = (1 + (bright > 40000) * 1e-5).astype(np.float32)
    viewer.add_image(narrow, name="narrow")
    widget.input.setCurrentText("narrow")
    assert narrow.min() <= widget.threshold.value() < narrow.max()
    assert widget.threshold.decimals() == 7


@pytest.mark.gui
def test_a_pyramid_is_refused_with_a_reason(make_napari_viewer_proxy, qtbot, truth):
    viewer = make_napari_viewer_proxy()
    prob = np.where(truth > 0, 0.9, 0.05).astype(np.float32)
    viewer.add_image([prob, prob[::2, ::2]], multiscale=True, name="pyramid")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.preview()
    assert "multiscale; pick a single-resolution layer" in widget.status.text()
    assert len(viewer.layers) == 1  # no slide-sized output layer was made


@pytest.mark.gui
def test_a_users_layer_with_the_results_name_is_kept(make_napari_viewer_proxy, qtbot, truth):
    """A result goes into its own earlier layer, never into a layer the user made that
    happens to bear its name (of another kind, another shape, or hand-drawn labels)."""
    viewer = make_napari_viewer_proxy()
    prob = np.where(truth > 0, 0.9, 0.05).astype(np.float32)
    viewer.add_image(prob, name="fg")
    notes = viewer.add_image(np.ones((8, 8), np.float32), name="fg instances")
    drawn = viewer.add_labels(np.full((512, 512), 7, np.uint16), name="fg instances [2]")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.input.setCurrentText("fg")
    for _ in range(2):  # the second run updates the first one's layer
        widget.apply()
        qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
        widget.status.setText("")
    assert [layer.name for layer in viewer.layers] == [
        "fg", "fg instances", "fg instances [2]", "fg instances [3]"]  # fmt: skip
    assert viewer.layers["fg instances [3]"].data.max() > 20
    assert np.array_equal(notes.data, np.ones((8, 8))) and (drawn.data == 7).all()


@pytest.mark.gui
def test_a_result_of_another_file_is_kept(
    make_napari_viewer_proxy, qtbot, truth, tmp_path, monkeypatch
):
    """Two scans whose channels bear one name: splitting the second's mask wrote into the
    first one's 'mask split', which then held the other file's cells under its record."""
    from napari_cytomask._qt import _layers

    viewer = make_napari_viewer_proxy()
    said = []
    monkeypatch.setattr(_layers, "show_info", said.append)
    for name, cells in (("a", truth), ("b", truth[::-1].copy())):
        tifffile.imwrite(
            tmp_path / f"{name}.tif", np.stack([(cells > 0) * 200, cells]).astype(np.uint16),
            imagej=True, metadata={"axes": "CYX", "Labels": ["phase", "mask"]},
        )  # fmt: skip
    viewer.open(tmp_path / "a.tif", plugin="napari-cytomask")
    widget = _applying(viewer, qtbot, "mask")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
    first = viewer.layers["mask split"]
    kept = first.data.copy()
    viewer.layers.remove("mask")
    viewer.open(tmp_path / "b.tif", plugin="napari-cytomask")
    widget.input.setCurrentText("mask")
    widget.status.setText("")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
    np.testing.assert_array_equal(first.data, kept)
    assert source_of(first).endswith("a.tif")
    assert source_of(viewer.layers["mask split [2]"]).endswith("b.tif")
    assert said == ["'mask split' holds the results of a.tif, so it is kept; the new result is "
                    "in 'mask split [2]'."]  # fmt: skip


def test_a_result_of_a_file_and_one_of_no_file_are_told_apart(make_napari_viewer_proxy):
    """A result of a.tif was overwritten by one of an image opened from no file of the
    same name (and the reverse); a.tif spelt another way was taken for another file."""
    from napari.layers import Labels

    from napari_cytomask._qt._layers import result_slot
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    viewer = make_napari_viewer_proxy()
    for name, source in (("of a", "/d/a.tif"), ("of none", None)):
        record = {"role": RESULT_ROLE, "source": source}
        viewer.add_labels(np.zeros((4, 4), np.uint8), name=name, metadata={METADATA_KEY: record})
    assert result_slot(viewer, "of a", Labels, (4, 4), None)[0] == "of a [2]"
    assert result_slot(viewer, "of none", Labels, (4, 4), "/d/a.tif")[0] == "of none [2]"
    for name, source in (("of a", "/d/./a.tif"), ("of none", None)):
        slot, earlier = result_slot(viewer, name, Labels, (4, 4), source)
        assert slot == name and earlier.unique_id == viewer.layers[name].unique_id


def test_a_frame_written_alone_keeps_the_users_edits_of_the_other_frames(
    make_napari_viewer_proxy,
):
    """Segmenting a stack position by position, correcting each, made a layer per position:
    a result edited anywhere took no new frame. Its other frames' edits stay the user's."""
    from napari.layers import Labels

    from napari_cytomask._qt._layers import labels_layer, result_slot, write_frames
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE, edited_by_hand, record_written

    viewer = make_napari_viewer_proxy()
    record = {METADATA_KEY: {"role": RESULT_ROLE, "source": None}}
    cells = viewer.add_layer(labels_layer(np.zeros((3, 8, 8), np.uint16), "cells", {}, record))
    cells.data[2, :2, :2] = 9  # corrected by hand
    cells.refresh()

    def slot(frame=None):
        return result_slot(viewer, "cells", Labels, (3, 8, 8), None, frame)

    assert slot()[0] == slot((2,))[0] == "cells [2]"  # the whole stack, or the frame edited
    assert slot((0,)) == ("cells", cells)
    cells.data[0, 4:, 4:] = 1  # the step writes its frame alone
    record_written(cells, (0,))
    assert edited_by_hand(cells)
    assert slot((1,)) == ("cells", cells) and slot((2,))[0] == "cells [2]"
    # A frame of another stack of that name (another shape) neither fails nor removes it.
    other = result_slot(viewer, "cells", Labels, (5, 8, 8), None, (4,))
    assert other == ("cells [2]", None) and "cells" in viewer.layers
    # Ids that widen its type for the frame leave its other frames' edits the user's.
    write_frames(cells, [((1,), np.full((8, 8), 70_000))])
    record_written(cells, (1,))
    assert cells.data.dtype == np.uint32 and edited_by_hand(cells)
    assert slot()[0] == "cells [2]"


def test_frames_written_together_are_redrawn_once(monkeypatch):
    """The frames a cancelled run kept were written and redrawn one by one: 20 redraws
    held napari for 0.7 s. Each frame of an iterator is made once those before it are
    written (a cancelled run numbers each above the others), the type widened for ids
    that need it, and the layer redrawn once."""
    from napari.layers import Labels

    from napari_cytomask._qt._layers import write_frames

    cells = Labels(np.zeros((3, 4, 4), np.uint16))
    redraws = []
    monkeypatch.setattr(cells, "refresh", lambda *args, **kwargs: redraws.append(1))
    seen = []

    def frame(k):
        seen.append(int(cells.data.max()))  # what was written before this frame is made
        return (k,), np.full((4, 4), 7 + k)

    write_frames(cells, map(frame, (0, 2)))
    assert seen == [0, 7] and len(redraws) == 1
    assert [int(cells.data[k].max()) for k in range(3)] == [7, 0, 9]
    write_frames(cells, [((1,), np.full((4, 4), 70_000))])
    assert cells.data.dtype == np.uint32
    assert [int(cells.data[k].max()) for k in range(3)] == [7, 70_000, 9]


@pytest.mark.gui
def test_a_layer_converted_elsewhere_starts_no_preview(make_napari_viewer_proxy, qtbot, truth):
    """Making a channel a mask in step 1 replaces its Image layer with a Labels layer; the
    split step, live but not previewing, must not start splitting it by itself."""
    from napari_cytomask.roles import set_role

    viewer = make_napari_viewer_proxy()
    viewer.add_image(truth.astype(np.float32), name="phase")
    ids = viewer.add_image(truth.copy(), name="ids")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.boundary.set_layer(ids)  # as when the image was opened after the input
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    widget.stop_preview()  # (the changes above are a user's: they previewed)
    assert widget.live.isChecked()
    ids.metadata = {"cytomask": {"role": "image", "source": "ids.png"}}
    set_role(viewer.layers, viewer.layers["ids"], "mask")
    qtbot.wait(500)
    assert not widget.runner.busy
    assert [layer.name for layer in viewer.layers] == ["phase", "ids"]


@pytest.mark.gui
def test_a_preview_waiting_to_start_is_not_stopped_by_a_stroke(
    make_napari_viewer_proxy, qtbot, truth
):
    """After an Apply, a preview requested by a setting and a stroke painted before it
    started: the preview, which would read the painted pixels, was dropped as "changed
    while it was being split"."""
    viewer = make_napari_viewer_proxy()
    cells = viewer.add_labels(truth[:256, :256].copy(), name="cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    # Its result is shown ("Done") before its worker's end is: on a busy machine, between
    # the two, the worker is still the runner's.
    qtbot.waitUntil(lambda: "Done" in widget.status.text() and not widget.runner.busy,
                    timeout=30_000)  # fmt: skip
    widget.live.setChecked(True)
    widget.min_fragment.setValue(widget.min_fragment.value() + 1)  # a preview, waiting
    assert widget.runner.busy and widget.runner.worker is None
    cells.paint((100, 100), 250)
    assert "changed while" not in widget.status.text()
    qtbot.waitUntil(lambda: widget.status.text().startswith("Preview"), timeout=30_000)


@pytest.mark.gui
def test_a_binary_masks_split_counts_its_regions(make_napari_viewer_proxy, qtbot, truth):
    """A mask of one value (255) said "1 cell was split into 32", and that one piece kept
    its id, where the metrics and the export take its separate regions as the cells."""
    from skimage.measure import label

    viewer = make_napari_viewer_proxy()
    mask = np.where(truth > 0, 255, 0).astype(np.uint8)
    viewer.add_labels(mask, name="mask")
    widget = _applying(viewer, qtbot, "mask")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    split = viewer.layers["mask split"].data
    regions = label(mask > 0, connectivity=1)
    parts = [
        len(np.unique(split[(regions == r) & (split > 0)])) for r in range(1, regions.max() + 1)
    ]
    cut = sum(p > 1 for p in parts)
    assert cut > 0
    assert (
        "The input is a binary mask (one value for every cell): its separate regions are "
        f"taken as the cells, and {cut} were split into {sum(p for p in parts if p > 1)}."
    ) in widget.status.text()
    assert "keeps its id" not in widget.status.text()


@pytest.mark.gui
def test_cells_painted_while_split_get_no_split(make_napari_viewer_proxy, qtbot, truth):
    """A split of the cells as they were before a stroke painted during it was added as
    theirs, the stroke missing from it."""
    viewer = make_napari_viewer_proxy()
    mask = viewer.add_labels(truth.copy(), name="cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    assert widget.runner.busy
    mask.paint((5, 5), 1)  # a stroke, as the brush makes
    assert widget.status.text() == (
        "'cells' changed while it was being split, so its split was not added (made from "
        "its pixels before). Run the step again to split the pixels it shows now."
    )
    qtbot.wait(500)
    assert "cells split" not in viewer.layers


@pytest.mark.gui
def test_an_input_renamed_or_closed_during_apply(make_napari_viewer_proxy, qtbot, truth):
    """The result follows the input layer itself: renamed, it gets its result; closed, the
    status says so (never a result on another layer that took its name)."""
    viewer = make_napari_viewer_proxy()
    mask = viewer.add_labels(truth.copy(), name="mask")
    widget = _applying(viewer, qtbot, "mask")
    widget.apply()
    mask.name = "edited"
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    assert "edited split" in viewer.layers
    widget.input.setCurrentText("edited")
    widget.apply()
    viewer.layers.remove("edited")
    viewer.add_labels(np.zeros((20, 20), np.int32), name="edited")  # another layer, same name
    qtbot.waitUntil(lambda: "was closed" in widget.status.text(), timeout=30_000)
    # A layer of no file (added here by a script) is not "opened" again.
    assert widget.status.text() == (
        "'edited' was closed while it was being split, so its split was not added. Add it "
        "again to split it."
    )
    assert viewer.layers["edited split"].data.shape == truth.shape  # the first result
    assert [layer.name for layer in viewer.layers] == ["edited split", "edited"]
    # Cells made in napari cannot be opened again either: they are made again.
    from napari_cytomask.io.layers import result_metadata

    image = viewer.add_image(truth.astype(np.float32), name="raw",
                             metadata={"cytomask": {"source": "/data/raw.tif"}})  # fmt: skip
    viewer.add_labels(truth.copy(), name="raw U-Net cells",
                      metadata=result_metadata(image, method="unet"))  # fmt: skip
    widget.input.setCurrentText("raw U-Net cells")
    widget.apply()
    viewer.layers.remove("raw U-Net cells")
    qtbot.waitUntil(lambda: "was closed" in widget.status.text(), timeout=30_000)
    assert widget.status.text().startswith(
        "'raw U-Net cells' was closed while it was being split, so its split was not added. "
        "Segment again, then split the new cells."
    )


@pytest.mark.gui
def test_frames_previewed_before_any_apply_are_the_frames_made(
    make_napari_viewer_proxy, qtbot, truth
):
    """A split layer made by previewing frames of a stack holds those frames only: the
    others were never split, and its record says which were."""
    from napari_cytomask.io.layers import layer_info

    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([truth, truth[::-1], truth[:, ::-1]]), name="cells")
    widget = _applying(viewer, qtbot, "cells")
    for frame in (2, 0):
        viewer.dims.set_current_step(0, frame)
        widget.preview()
        qtbot.waitUntil(lambda f=frame: "Preview" in widget.status.text()
                        and viewer.layers["cells split"].data[f].any(), timeout=30_000)  # fmt: skip
    output = viewer.layers["cells split"]
    assert layer_info(output)["frames_made"] == ["0", "2"]
    assert not output.data[1].any()
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    assert "frames_made" not in layer_info(output)
    # Cells of one position (U-Net, 'current position') split: the others stay unmade,
    # not counted as frames with no cell.
    viewer.add_labels(np.stack([truth * 0, truth, truth * 0]), name="one position",
                      metadata={"cytomask": {"method": "unet", "frames_made": ["1"]}})  # fmt: skip
    widget.input.setCurrentText("one position")
    widget.apply()
    qtbot.waitUntil(lambda: "one position split" in viewer.layers
                    and not widget.runner.busy, timeout=30_000)  # fmt: skip
    assert layer_info(viewer.layers["one position split"])["frames_made"] == ["1"]
    # Said so: not "in all 3 frames", which left Apply looking undone.
    n = np.count_nonzero(np.unique(viewer.layers["one position split"].data))
    assert widget.status.text().startswith(
        f"Done: {n} cells in 'one position split', in frame 1 of 3 only (the others were "
        "never made). "
    )


@pytest.mark.gui
def test_a_frame_its_input_never_made_is_not_previewed(make_napari_viewer_proxy, qtbot, truth):
    """Cells of one position split live, then another position shown: its cells were never
    segmented, so it is not split, nor recorded as made (the metrics then compared it, and
    the export counted no cells in it)."""
    from napari_cytomask.io.layers import layer_info

    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([truth * 0, truth * 0, truth]), name="one position",
                      metadata={"cytomask": {"method": "unet", "frames_made": ["2"]}})  # fmt: skip
    viewer.dims.set_current_step(0, 2)
    widget = _applying(viewer, qtbot, "one position")
    widget.live.click()  # ticked: it previews, and follows the frame on show
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    output = viewer.layers["one position split"]
    viewer.dims.set_current_step(0, 0)
    assert widget.status.text() == (
        "Frame 0 of 'one position' was never segmented (it holds cells of frame 2 only), so "
        "there is nothing to split here: show a frame it holds, or segment this one in "
        "Segment cytoplasm (its step 2, or Layers > Segment)."
    )
    qtbot.wait(400)  # longer than the preview's quiet period: nothing runs
    assert not widget.runner.busy
    assert layer_info(output)["frames_made"] == ["2"]
    assert list(layer_info(output)["previewed_frames"]) == ["2"]
    viewer.dims.set_current_step(0, 2)  # back on a frame it holds, the preview follows
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)


@pytest.mark.gui
def test_a_split_keeps_the_ids_of_its_cells_and_says_which_it_cut(make_napari_viewer_proxy, qtbot):
    """Ids link cells to the tables and tracks made from them: the split renumbered every
    cell, unsaid. Cells left whole keep their ids, and so does one piece of each cell cut;
    the other pieces are numbered above the stack's largest id, in a preview too."""
    from skimage.draw import disk

    cells = np.zeros((60, 100), np.uint8)
    for center in ((30, 11), (30, 31)):  # one cell of two overlapping discs
        cells[disk(center, 12)] = 200
    cells[disk((30, 80), 10)] = 7
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([cells, np.where(cells > 0, cells + 10, 0)]), name="cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.h.setValue(1.0)
    widget.preview()  # of frame 0
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    output = viewer.layers["cells split"]
    assert sorted(np.unique(output.data[0])) == [0, 7, 200, 211]
    cut = (
        "split into 2: one piece of each keeps its id, the others have new ids, and the cells "
        "left whole keep theirs."
    )
    assert widget.status.text() == f"Preview: 3 cells in the displayed frame. 1 cell was {cut}"
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    assert [sorted(np.unique(frame)) for frame in output.data] == [
        [0, 7, 200, 211],
        [0, 17, 210, 212],
    ]
    assert widget.status.text() == (
        "Done: 6 cells in 'cells split', in all 2 frames. 2 cells were "
        + cut.replace("into 2", "into 4")
        + " 'cells' is hidden under it (its eye in the layer list)."
    )
    # A preview of frame 1 after Apply gives its new piece Apply's id, not frame 0's 211.
    viewer.dims.set_current_step(0, 1)
    widget.preview()
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    assert sorted(np.unique(output.data[1])) == [0, 17, 210, 212]


@pytest.mark.gui
def test_a_preview_found_in_a_map_takes_no_id_of_the_other_frames(make_napari_viewer_proxy, qtbot):
    """A frame of a foreground map previewed after Apply numbered its cells from 1 again,
    the ids of the first frame's cells."""
    from skimage.draw import disk

    frame = np.zeros((60, 100), np.float32)
    for center in ((30, 20), (30, 70)):
        frame[disk(center, 10)] = 0.9
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.stack([frame, frame[:, ::-1], frame]), name="foreground")
    widget = _applying(viewer, qtbot, "foreground", mode="foreground")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    output = viewer.layers["foreground instances"]
    assert [sorted(np.unique(plane)) for plane in output.data] == [[0, 1, 2], [0, 3, 4], [0, 5, 6]]
    viewer.dims.set_current_step(0, 1)
    widget.preview()
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    assert widget.status.text() == "Preview: 2 cells in the displayed frame."
    assert sorted(np.unique(output.data[1])) == [0, 7, 8]


@pytest.mark.gui
def test_cells_the_split_s_clean_up_removes_are_counted_and_its_setting_named(
    make_napari_viewer_proxy, qtbot
):
    """Cells under the clean-up's Minimum area (16 px by default) were removed though the
    split did not cut them, and the status said every cell kept its id: so it did for all
    5,625 cells of 9 px of a field of small nuclei, none of them left."""
    from skimage.draw import disk

    cells = np.zeros((60, 100), np.uint16)
    cells[disk((30, 20), 10)] = 3
    cells[disk((30, 70), 10)] = 8
    cells[2:5, 40:44], cells[50:53, 40:44] = 20, 21  # 12 px each
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(cells, name="cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    assert sorted(np.unique(viewer.layers["cells split"].data)) == [0, 3, 8]
    assert widget.status.text() == (
        "Done: 2 cells in 'cells split'. No cell was split: every cell left keeps its id. "
        "2 cells smaller than Minimum area (16 px) were removed. 'cells' is hidden under it "
        "(its eye in the layer list)."
    )
    widget.min_area.setValue(10)
    widget.preview()
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    assert widget.status.text() == (
        "Preview: 4 cells in the displayed frame. No cell was split: every cell keeps its id."
    )


def test_the_cells_a_split_removes_are_told_apart_by_the_setting_that_removed_them():
    from napari_cytomask._qt.watershed_widget import _removed_cells, _removed_note

    cells = np.zeros((2, 60, 60), np.uint16)
    cells[:, 0:10, 20:30] = 1  # on the edge
    cells[:, 20:50, 20:50] = 2  # 900 px
    cells[:, 55:58, 2:5] = 3  # 9 px
    cells[0, 20:24, 2:8] = 4  # 24 px, cut in pieces the clean-up removed
    cells[0, 55:58, 40:44] = 5  # 12 px
    split = np.where(cells == 2, 2, 0)
    cleanup = {"min_area": 16, "max_area": 500, "exclude_border": True}
    removed = _removed_cells(cells, split, cleanup)
    assert removed == {"small": 3, "large": 0, "border": 2, "other": 1}
    assert _removed_note(removed, cleanup) == (
        " 3 cells smaller than Minimum area (16 px) were removed. 2 cells touching the border "
        "(Remove cells touching the border) were removed. 1 other cell was removed: the "
        "clean-up left no piece of it."
    )
    # Cell 2 gone too, over the maximum area; cell 4 with a piece left (a new id) stays.
    split = np.zeros_like(cells)
    split[0, 20:24, 2:5], split[0, 20:24, 5:8] = 4, 9
    removed = _removed_cells(cells, split, cleanup)
    assert removed == {"small": 3, "large": 2, "border": 2, "other": 0}
    assert _removed_note({**removed, "small": 0, "border": 0}, cleanup) == (
        " 2 cells larger than Maximum area (500 px) were removed."
    )
    assert _removed_note({"small": 0, "large": 0, "border": 0, "other": 1}, cleanup) == (
        " 1 cell was removed: the clean-up left no piece of it."
    )


@pytest.mark.gui
def test_a_preview_after_apply_is_recorded_for_its_frame_only(
    make_napari_viewer_proxy, qtbot, truth, tmp_path
):
    """Previewing one frame of an applied stack with other settings keeps the stack's
    settings, and records the frame's apart; both reach the export's provenance. The frame
    previewed is the one the viewer shows of this layer, whatever its scale."""
    import json

    from napari_cytomask.io.export import export_labels, from_layer

    viewer = make_napari_viewer_proxy()
    stack = np.stack([truth, truth[::-1], truth[:, ::-1]])
    cells = viewer.add_labels(stack, name="cells", scale=(3, 1, 1))
    viewer.add_image(np.zeros((9, 512, 512), np.float32), name="finer frames")  # 9 steps
    widget = _applying(viewer, qtbot, "cells")
    widget.min_area.setValue(20)
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    output = viewer.layers["cells split"]
    applied = output.metadata["cytomask"]["parameters"]
    assert applied["cleanup"]["min_area"] == 20
    viewer.dims.set_current_step(0, 4)  # world z = 4: frame 1 of 'cells' (z = 3, 4, 5)
    assert frame_on_show(viewer, cells, cells.data.shape) == (1,)
    before = np.array(output.data)
    widget.min_area.setValue(900)
    widget.preview()
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    assert not np.array_equal(output.data[1], before[1])
    np.testing.assert_array_equal(output.data[[0, 2]], before[[0, 2]])
    record = output.metadata["cytomask"]
    assert record["parameters"] == applied and record["method"] == "watershed_split"
    assert record["previewed_frames"]["1"]["parameters"]["cleanup"]["min_area"] == 900
    assert record["previewed_frames"]["1"]["method"] == "watershed_split"
    assert "frames_made" not in record  # every frame was split by the Apply
    export_labels([from_layer(output)], tmp_path)
    provenance = json.loads((tmp_path / "cells split_provenance.json").read_text())
    assert provenance["parameters"] == applied
    assert provenance["previewed_frames"]["1"]["parameters"]["cleanup"]["min_area"] == 900
    assert provenance["edited_by_hand"] is False
    # Apply again: one set of settings for every frame.
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    assert "previewed_frames" not in output.metadata["cytomask"]
    output.paint((1, 10, 10), 7)  # a user's correction is said in the provenance
    export_labels([from_layer(output)], tmp_path, overwrite=True)
    provenance = json.loads((tmp_path / "cells split_provenance.json").read_text())
    assert provenance["edited_by_hand"] is True


@pytest.mark.gui
def test_a_split_records_that_its_input_was_edited_by_hand(
    make_napari_viewer_proxy, qtbot, truth, tmp_path
):
    """Cells painted into a U-Net result, then split: the U-Net's provenance said it was
    edited by hand, the split's said nothing of it. What the split was made from says it
    too, as it was when the split ran."""
    import json

    from napari_cytomask._qt._layers import labels_layer
    from napari_cytomask.io.export import export_labels, from_layer
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    phase = viewer.add_image(truth.astype(np.float32), name="phase")
    metadata = result_metadata(phase, method="unet", parameters={"tta": False})
    cells = viewer.add_layer(labels_layer(truth, "phase U-Net cells", {}, metadata))
    widget = _applying(viewer, qtbot, "phase U-Net cells")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    output = viewer.layers["phase U-Net cells split"]
    assert output.metadata["cytomask"]["made_from"]["edited_by_hand"] is False
    cells.paint((20, 20), 9999)
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    assert output.metadata["cytomask"]["made_from"]["edited_by_hand"] is True
    export_labels([from_layer(cells), from_layer(output)], tmp_path)
    unet = json.loads((tmp_path / "phase U-Net cells_provenance.json").read_text())
    split = json.loads((tmp_path / "phase U-Net cells split_provenance.json").read_text())
    assert unet["edited_by_hand"] is True and split["edited_by_hand"] is False
    assert split["made_from"]["edited_by_hand"] is True
    assert split["made_from"]["method"] == "unet"


@pytest.mark.gui
def test_a_new_result_handed_over_during_apply_leaves_the_apply_running(
    make_napari_viewer_proxy, qtbot, truth
):
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([truth] * 12), name="cells")
    newer = viewer.add_labels(truth.copy(), name="newer cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    assert widget.applying()
    widget.use_input(newer)  # as the dock does when a segmentation ends
    assert widget.applying() and widget.input.currentText() == "cells"
    applied = []
    widget.applied.connect(applied.append)
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=60_000)
    assert viewer.layers["cells split"].data[-1].any()
    # Then, once the run has ended (just after its result is shown), the newer result is
    # the input, said so; the metrics keep checking it.
    qtbot.waitUntil(lambda: widget.input.currentText() == "newer cells", timeout=10_000)
    assert widget.status.text().startswith("Done: ") and "Input: 'newer cells'" in (
        widget.status.text()
    )
    assert "cells in 'cells split', in all 12 frames." in widget.status.text()
    assert applied == [] and not widget.runner.busy
    assert widget.progress.value() == widget.progress.maximum() > 0  # done, not cancelled


@pytest.mark.gui
def test_cells_painted_during_apply_reach_no_frame_of_its_result(
    make_napari_viewer_proxy, qtbot, truth, monkeypatch
):
    """Strokes painted while Apply ran reached the frames it had not split yet, and not
    those it had: the result depended on when the brush met the worker."""
    import threading

    from napari_cytomask._qt import watershed_widget

    go = threading.Event()
    split = watershed_widget.iter_watershed

    def gated(*args, **kwargs):
        go.wait(30)
        return (yield from split(*args, **kwargs))

    monkeypatch.setattr(watershed_widget, "iter_watershed", gated)
    viewer = make_napari_viewer_proxy()
    cells = viewer.add_labels(np.stack([truth] * 3), name="cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    new_id = int(truth.max()) + 1
    cells.data[2, :40, :40] = new_id  # painted as the split runs
    go.set()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=60_000)
    output = np.asarray(viewer.layers["cells split"].data)
    np.testing.assert_array_equal(output[2] > 0, output[0] > 0)  # as clicked, in every frame
    assert cells.data[2, 0, 0] == new_id  # the strokes stay in the cells painted


@pytest.mark.gui
def test_live_preview_ticked_during_apply_leaves_the_apply_running(
    make_napari_viewer_proxy, qtbot, truth
):
    """Ticked while Apply ran, Live preview started a preview whose worker took Apply's
    place: one frame of twelve was split, and nothing said Apply had stopped."""
    viewer = make_napari_viewer_proxy()
    widget = _applying_to_twelve_frames(viewer, qtbot, truth, live=False)
    widget.live.click()  # ticked
    assert widget.live.isChecked() and widget.applying()
    # The preview it asks for runs once Apply has ended.
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=60_000)
    output = viewer.layers["cells split"]
    assert all(frame.any() for frame in output.data)
    assert "frames_made" not in output.metadata["cytomask"]


@pytest.mark.gui
def test_a_setting_changed_during_apply_is_previewed_once_apply_has_ended(
    make_napari_viewer_proxy, qtbot, truth
):
    """A setting changed while Apply ran asked for a preview that was dropped, unsaid: the
    frame on show kept Apply's cells under the new setting, until another one moved."""
    viewer = make_napari_viewer_proxy()
    widget = _applying_to_twelve_frames(viewer, qtbot, truth, live=True)
    widget.min_area.setValue(3000)  # only the largest cells stay
    assert widget.applying()  # Apply goes on
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=60_000)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=30_000)
    # What Apply said stays, the preview after it.
    status = widget.status.text()
    assert status.startswith("Done: ") and " Preview with the settings changed meanwhile: " in (
        status
    )
    output = viewer.layers["cells split"]
    shown = viewer.dims.current_step[0]
    sizes = np.bincount(output.data[shown].ravel())[1:]
    assert 0 < np.count_nonzero(sizes) < len(np.unique(truth)) - 1
    assert sizes[sizes > 0].min() >= 3000
    # The other frames keep what Apply made of them.
    kept = np.bincount(output.data[(shown + 1) % 12].ravel())[1:]
    assert kept[kept > 0].min() < 3000


@pytest.mark.gui
@pytest.mark.parametrize("stop", ["paint", "close"])
def test_a_preview_asked_for_during_an_apply_that_stops_is_dropped(
    make_napari_viewer_proxy, qtbot, truth, stop
):
    """Apply stopped by a stroke into its input, or its input closed: the preview asked for
    during it replaced what that said, and added a split layer of one frame."""
    viewer = make_napari_viewer_proxy()
    widget = _applying_to_twelve_frames(viewer, qtbot, truth, live=True)
    cells = viewer.layers["cells"]
    widget.min_area.setValue(3000)
    if stop == "paint":
        cells.paint((0, 5, 5), 1)
    else:
        viewer.layers.remove(cells)
    said = widget.status.text()
    assert "while it was being split, so its split was not added" in said
    qtbot.wait(600)  # longer than a preview's quiet period
    assert widget.status.text() == said and "cells split" not in viewer.layers


@pytest.mark.gui
def test_a_preview_asked_for_during_apply_is_dropped_with_a_cancel(
    make_napari_viewer_proxy, qtbot, truth
):
    widget = _applying_to_twelve_frames(make_napari_viewer_proxy(), qtbot, truth, live=True)
    widget.min_area.setValue(3000)
    widget.cancel()
    assert not widget.runner.busy and widget.status.text() == "Cancelled."
    qtbot.wait(600)  # longer than a preview's quiet period
    assert not widget.runner.busy and widget.status.text() == "Cancelled."


@pytest.mark.gui
def test_an_input_handed_over_during_an_apply_whose_input_is_closed_is_taken(
    make_napari_viewer_proxy, qtbot, truth
):
    """Closing the input stops the Apply at once; the result handed over meanwhile then
    becomes the input, as when the Apply ends otherwise (it was left waiting)."""
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([truth] * 12), name="cells")
    newer = viewer.add_labels(truth.copy(), name="newer cells")
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    widget.use_input(newer)
    viewer.layers.remove("cells")
    assert not widget.runner.busy and widget.input.currentText() == "newer cells"
    assert widget.status.text().startswith(
        "'cells' was closed while it was being split, so its split was not added."
    )
    assert "Input: 'newer cells'" in widget.status.text()


@pytest.mark.gui
def test_seeding_reads_in_words_and_is_remembered_by_its_key(make_napari_viewer_proxy, qtbot):
    from napari_cytomask._qt._settings import set_value, value_of

    widget = WatershedWidget(make_napari_viewer_proxy())
    qtbot.addWidget(widget)
    items = [widget.markers.itemText(i) for i in range(widget.markers.count())]
    assert items == ["height (h)", "distance apart"]
    assert value_of(widget.markers) == "h_maxima" == widget.params()["markers"]
    # Each way of seeding shows the one setting it reads: the other did nothing.
    shown = {name for name, (_, box) in widget._rows.items() if not box.isHidden()}
    assert "h" in shown and "min_distance" not in shown
    set_value(widget.markers, "peaks")  # as stored now
    assert widget.params()["markers"] == "peaks"
    shown = {name for name, (_, box) in widget._rows.items() if not box.isHidden()}
    assert "min_distance" in shown and "h" not in shown
    set_value(widget.mode, "Interior + boundary maps")  # seeded by its interior map
    assert widget._rows["min_distance"][1].isHidden() and widget._rows["h"][1].isHidden()
    set_value(widget.mode, "Split existing labels")  # as an older session stored it
    assert widget.method == "split" and value_of(widget.mode) == "split"


@pytest.mark.gui
def test_opened_before_or_after_segmenting_it_splits_the_newest_cells(
    make_napari_viewer_proxy, qtbot, truth
):
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random(truth.shape), name="Phase contrast")
    viewer.add_labels(truth.copy(), name="hand-drawn")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.method == "foreground"  # nothing segmented: an image's own foreground
    for method in ("unet", "sam2"):
        viewer.add_labels(
            truth.copy(), name=f"{method} cells", metadata={METADATA_KEY: {"method": method}}
        )
        # Open while cells are segmented, it takes them too: it stayed on the phase image.
        assert widget.method == "split" and widget.input.layer().name == f"{method} cells"
    assert "unet cells split" not in viewer.layers  # no preview before the user asks
    # An input picked by hand stays when new cells come.
    widget.input.setCurrentText("hand-drawn")
    widget.input.activated.emit(widget.input.currentIndex())
    viewer.add_labels(truth.copy(), name="new cells", metadata={METADATA_KEY: {"method": "unet"}})
    assert widget.input.layer().name == "hand-drawn"
    viewer.layers.remove("new cells")
    viewer.layers.move(viewer.layers.index("hand-drawn"), len(viewer.layers))
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.method == "split" and widget.input.layer().name == "sam2 cells"
    assert widget.status.text().startswith("Input: 'sam2 cells'.")
    assert "sam2 cells split" not in viewer.layers  # no preview before the user asks


@pytest.mark.gui
def test_ticking_live_preview_previews_and_a_picked_input_is_named(
    make_napari_viewer_proxy, qtbot, truth
):
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(truth.copy(), name="cells")
    viewer.add_labels(truth[::-1].copy(), name="other cells")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    widget.use_input(viewer.layers["cells"])
    widget.live.setChecked(False)
    widget.input.setCurrentText("other cells")
    widget.input.activated.emit(widget.input.currentIndex())  # as a user's pick
    assert widget.status.text().startswith("Input: 'other cells'.")
    widget.live.click()  # ticked by the user
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    assert viewer.layers["other cells split"].data.any()


@pytest.mark.gui
def test_a_preview_fingerprints_its_frame_and_still_keeps_edits(
    make_napari_viewer_proxy, qtbot, truth, monkeypatch
):
    """A result's fingerprint (what a step wrote, to tell the user's edits from it) was
    taken of the whole stack twice at every preview, in the GUI thread: 0.29 s a slider step
    on a 100-frame stack. A preview now takes its frame's; an edit is still found."""
    from napari_cytomask.io import layers

    taken = []
    digest = layers._digest
    monkeypatch.setattr(layers, "_digest", lambda frame: taken.append(1) or digest(frame))
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([truth] * 12), name="cells")
    viewer.dims.set_current_step(0, 3)
    widget = _applying(viewer, qtbot, "cells")
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=30_000)
    # Said as its result lands, Apply's worker then ends: a preview asked for before that
    # is not run (it would take Apply's place), which a loaded machine showed.
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=30_000)
    output = viewer.layers["cells split"]
    for min_area in (300, 600):
        taken.clear()
        widget.min_area.setValue(min_area)
        widget.preview()
        qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
        widget.status.setText("")
        assert len(taken) == 1  # the previewed frame only
    output.data[7, :8, :8] = 99  # an edit of another frame, from the console
    output.refresh()
    edited = np.array(output.data[7])
    widget.min_area.setValue(20)
    widget.preview()
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=30_000)
    # The frame on show is previewed into it; the edit of the other frame stays.
    assert "cells split [2]" not in viewer.layers
    np.testing.assert_array_equal(output.data[7], edited)
    # The edited frame itself is previewed elsewhere: the edit is still found.
    viewer.dims.set_current_step(0, 7)
    widget.preview()
    qtbot.waitUntil(lambda: "cells split [2]" in viewer.layers, timeout=30_000)
    np.testing.assert_array_equal(output.data[7], edited)


@pytest.mark.gui
def test_a_threshold_is_suggested_from_the_numbers_of_the_frame_on_show(
    make_napari_viewer_proxy, qtbot, truth
):
    """A NaN in the frame on show made the threshold NaN (every frame then gave 0 cells);
    a black frame on show set 0.5 for a 16-bit stack, making each other frame one cell."""
    viewer = make_napari_viewer_proxy()
    image = np.where(truth > 0, 3000, 500).astype(np.float32)
    image[:, :40] = np.nan  # a stitched mosaic's border
    viewer.add_image(image, name="stitched")
    widget = _applying(viewer, qtbot, "stitched", "foreground")
    assert 500 <= widget.threshold.value() < 3000
    stack = np.stack([np.where(truth > 0, 3000, 500), np.zeros_like(truth)]).astype(np.uint16)
    viewer.add_image(stack, name="shutter closed")
    viewer.dims.set_current_step(0, 1)
    widget.input.setCurrentText("shutter closed")
    assert 500 <= widget.threshold.value() < 3000  # the frame with cells suggests it
    assert widget.status.text() == (
        "The frame of 'shutter closed' on show holds only 0: the threshold is suggested from "
        "frame 0, the first that holds more."
    )


class _CountedPlane:
    """A 4096 x 4096 image of bright squares on a dark background, made as it is read,
    counting the pixels read."""

    shape, dtype, ndim = (4096, 4096), np.dtype(np.uint16), 2

    def __init__(self):
        self.read = 0

    def __getitem__(self, key):
        rows, cols = (np.arange(n)[k] for n, k in zip(self.shape, key, strict=True))
        bright = (rows[:, None] // 40 % 2) & (cols[None, :] // 40 % 2)
        self.read += bright.size
        return np.where(bright, 3000, 500).astype(self.dtype)


@pytest.mark.gui
def test_the_threshold_of_a_large_lazy_image_is_suggested_from_a_sample(
    make_napari_viewer_proxy, qtbot
):
    """Opened beside a lazy 10k x 10k mosaic, the dock read its whole plane and thresholded
    it: the viewer froze for 15 s and took 1.8 GB more. A sample of a bounded size does."""
    viewer = make_napari_viewer_proxy()
    plane = _CountedPlane()
    lazy = da.from_array(plane, chunks=1024, asarray=False, meta=np.empty((0, 0), plane.dtype))
    viewer.add_image(lazy, name="mosaic")
    plane.read = 0  # what napari read to show it
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.input.currentText() == "mosaic"
    assert 500 <= widget.threshold.value() < 3000
    assert 0 < plane.read <= SAMPLE_GRID**2 * SAMPLE_PATCH**2


@pytest.mark.gui
def test_the_threshold_follows_a_layer_whose_frame_on_show_holds_one_value(
    make_napari_viewer_proxy, qtbot, truth
):
    """Picked while its frame on show was black, a 16-bit stack kept the range and value
    of the layer before (0 to 1, 0.5 of a probability map): each of its frames with cells
    became one cell. An image of one value throughout gets a range of its own too."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="p")
    stack = np.stack([np.zeros_like(truth), np.where(truth > 0, 3000, 500)]).astype(np.uint16)
    viewer.add_image(stack, name="shutter closed")
    viewer.dims.set_current_step(0, 0)  # the black frame
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData("foreground"))
    widget.input.setCurrentText("p")
    assert (widget.threshold.maximum(), widget.threshold.value()) == (1, 0.5)
    widget.input.setCurrentText("shutter closed")
    assert widget.threshold.maximum() == 3000 and 500 <= widget.threshold.value() < 3000
    assert widget.threshold.decimals() == 0
    assert "suggested from frame 1, the first that holds more" in widget.status.text()
    viewer.add_image(np.full((64, 64), 7, np.uint16), name="blank")
    viewer.add_image(np.full((64, 64), 1000, np.float32), name="flat")
    for name, expected in (("blank", (0, 65535, 7)), ("flat", (0, 2000, 1000))):
        widget.input.setCurrentText(name)  # the range of its type, or one around its value
        box = widget.threshold
        assert (box.minimum(), box.maximum(), box.value()) == expected
    assert widget.status.text() == (
        "'flat' holds only 1000: there are no cells to find; pick the image that shows them."
    )


@pytest.mark.gui
def test_cells_are_split_over_the_shape_of_the_inputs_pixels(make_napari_viewer_proxy, qtbot):
    """Over 0.87 x 0.435 µm pixels, two round cells touching along Y were one cell: the
    distances were counted in rows and columns. The distance rows say what they count."""
    viewer = make_napari_viewer_proxy()
    yy, xx = np.mgrid[:96, :160]
    yy, xx = (yy - 48) * 0.87, (xx - 80) * 0.435
    cells = (np.abs(yy) - 6) ** 2 + xx**2 < 10**2  # cells of 10 µm, centres 12 µm apart
    mask = viewer.add_image(
        cells.astype(np.float32), name="mask", scale=(0.87, 0.435), units=("µm", "µm")
    )
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData("foreground"))
    label = widget._rows["min_distance"][0]
    assert label.text() == "Minimum seed distance (px of 0.435 µm)"
    assert widget.min_distance.accessibleName() == label.text()
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
    found = viewer.layers["mask instances"].data
    assert found.max() == 2 and (found[:48] != found[48:].max()).all()  # above and below
    mask.scale = (0.435, 0.435)  # a pixel size typed in step 1 makes them square
    assert label.text() == "Minimum seed distance (px)"
    mask.units = ("pixel", "pixel")
    mask.scale = (2, 1)  # pixels twice as tall, in no length
    assert label.text() == "Minimum seed distance (px along x)"


@pytest.mark.gui
def test_splitting_cells_drawn_through_z_planes_says_they_are_split_plane_by_plane(
    make_napari_viewer_proxy, qtbot, truth
):
    """25 cells through 4 Z planes became 100 cells, said as "in all 4 frames", and the
    metrics then matched none of them to the cells they came from."""
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.stack([truth] * 3), name="volume", axis_labels=("Z", "y", "x"))
    viewer.add_labels(np.stack([truth] * 3), name="positions", axis_labels=("P", "y", "x"))
    planes = np.stack([truth, np.where(truth > 0, truth + truth.max(), 0)])
    viewer.add_labels(planes, name="plane by plane", axis_labels=("Z", "y", "x"))
    notes = {}
    for name in ("volume", "positions", "plane by plane"):
        widget = _applying(viewer, qtbot, name)
        widget.apply()
        qtbot.waitUntil(lambda w=widget: "Done" in w.status.text(), timeout=60_000)
        notes[name] = "holds cells through several Z planes" in widget.status.text()
    assert notes == {"volume": True, "positions": False, "plane by plane": False}


@pytest.mark.gui
def test_its_input_closed_it_says_so_and_never_takes_the_scans_mask(
    make_napari_viewer_proxy, qtbot, truth
):
    """The U-Net's cells closed, the step took the scan's hand-drawn mask as its input
    while its status still named the cells: split, the ground truth was then scored
    against itself as if it were a result."""
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    scan = {"source": "scan.tif"}
    viewer.add_labels(
        truth.copy(), name="Mask (hand-drawn)", metadata={METADATA_KEY: {**scan, "role": "mask"}}
    )
    cells = viewer.add_labels(
        truth.copy(), name="U-Net cells", metadata={METADATA_KEY: {"method": "unet"}}
    )
    # Nor the metrics' outlines of the cells missed, which came after the cells.
    missed = {"method": "false_negatives", "role": "result"}
    viewer.add_labels(truth.copy(), name="false negatives", metadata={METADATA_KEY: missed})
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.input.layer().name == "U-Net cells"
    viewer.layers.remove(cells)
    assert widget.input.layer() is None
    assert widget.input.findText("false negatives") < 0
    assert widget.status.text().startswith("'U-Net cells' was closed, so there is nothing")
    widget.apply()  # Ctrl+Enter
    assert [layer.name for layer in viewer.layers] == ["Mask (hand-drawn)", "false negatives"]
    # Picked by hand, the mask is split; closed, another result is named as the input.
    viewer.add_labels(truth.copy(), name="other cells")
    widget.input.setCurrentText("Mask (hand-drawn)")
    widget.input.activated.emit(widget.input.currentIndex())
    assert widget.input.layer().name == "Mask (hand-drawn)"
    viewer.layers.remove("Mask (hand-drawn)")
    assert widget.input.layer().name == "other cells"
    assert widget.status.text() == (
        "'Mask (hand-drawn)' was closed; the input is now 'other cells'."
    )


@pytest.mark.gui
def test_before_segmenting_the_scans_image_of_light_is_not_taken_for_a_map(
    make_napari_viewer_proxy, qtbot, truth
):
    """Opened before step 2, the step took the phase image as its foreground map with live
    preview on: any edit made hundreds of "cells" of its bright halos."""
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    scan = {"source": "scan.tif"}
    phase = np.where(truth > 0, 30000, 20000).astype(np.uint16)
    viewer.add_image(
        phase, name="Phase contrast", metadata={METADATA_KEY: {**scan, "role": "input"}}
    )
    viewer.add_labels(
        truth.copy(), name="Mask (hand-drawn)", metadata={METADATA_KEY: {**scan, "role": "mask"}}
    )
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.live.isChecked() and widget.input.layer() is None
    assert widget.status.text() == (
        "Nothing to read yet: segment the cells in Segment cytoplasm (its step 2, or Layers > "
        "Segment) first, or pick the input (a probability map, or labels to split)."
    )
    widget.min_area.setValue(20)  # any edit
    qtbot.wait(400)  # longer than the preview's quiet period
    assert widget.status.text().startswith("Nothing to read yet")
    # Picked by hand, the image of light is thresholded on Apply only, never live.
    widget.input.setCurrentText("Phase contrast")
    widget.input.activated.emit(widget.input.currentIndex())
    widget.min_area.setValue(30)
    widget.live.click()
    widget.live.click()  # ticked again
    qtbot.wait(400)
    assert not widget.runner.busy
    assert [layer.name for layer in viewer.layers] == ["Phase contrast", "Mask (hand-drawn)"]
    assert widget.status.text().startswith(
        "'Phase contrast' was opened as an image of light, not a probability map: it is not "
        "previewed live."
    )


@pytest.mark.gui
def test_the_u_nets_maps_are_taken_for_what_they_are(make_napari_viewer_proxy, qtbot, truth):
    """With the U-Net's maps as layers, 'Interior + boundary maps' took the boundary map as
    the interior and the phase image as the boundary (and refused its brightness as
    probabilities), and 'Foreground or probability map' took the boundary map, whose
    outlines it made into 100 "cells"."""
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    scan = {"source": "scan.tif"}
    viewer.add_image(
        np.where(truth > 0, 30000, 20000).astype(np.uint16),
        name="Phase contrast",
        metadata={METADATA_KEY: {**scan, "role": "input"}},
    )
    classes = instances_to_interior_boundary(truth)
    classes = [(classes == k).astype(np.float32) for k in range(3)]  # as probabilities
    thresholds = {"foreground_threshold": 0.9, "interior_threshold": 0.6}  # the model's
    for run, parameters in (("earlier", {"tta": False}), ("newer", thresholds)):
        made = {**scan, "role": "result", "method": "unet", "parameters": parameters,
                "made_from": {"layer": "Phase contrast"}}  # fmt: skip
        for k, name in ((1, "interior"), (2, "boundary")):
            metadata = {METADATA_KEY: {**made, "probability": name}}
            viewer.add_image(classes[k], name=f"{run} {name}", metadata=metadata)
        viewer.add_labels(truth.copy(), name=f"{run} cells", metadata={METADATA_KEY: made})
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    assert widget.method == "split" and widget.input.layer().name == "newer cells"
    widget.mode.setCurrentIndex(widget.mode.findData("foreground"))
    assert widget.input.layer().name == "newer interior"
    widget.mode.setCurrentIndex(widget.mode.findData("interior_boundary"))
    assert (widget.input.layer().name, widget.boundary.layer().name) == (
        "newer interior", "newer boundary",
    )  # fmt: skip
    # It starts at the thresholds the model segmented with, not at 0.5 and 0.5.
    assert (widget.threshold.value(), widget.interior_threshold.value()) == (0.9, 0.6)
    # The boundary map follows the interior map picked: the one made with it.
    widget.input.setCurrentText("earlier interior")
    assert widget.boundary.layer().name == "earlier boundary"
    # A map of the user's own (no record of what it is) leaves the boundary map as it was.
    viewer.add_image(classes[1], name="my interior")
    widget.input.setCurrentText("my interior")
    assert widget.boundary.layer().name == "earlier boundary"
    # An image of light picked as a map is named as such, with the map to pick.
    widget.input.setCurrentText("newer interior")
    widget.boundary.setCurrentText("Phase contrast")
    widget.apply()
    assert widget.status.text().endswith(
        "Boundary map: 'Phase contrast' is an image of light, not a probability map. Pick the "
        "U-Net's boundary map ('newer boundary'). A probability map saved to a file is taken "
        "for one when its name says so ('cells_probability.tif')."
    )
    # A map of the user's own, picked, stays when the mode changes.
    widget.mode.setCurrentIndex(widget.mode.findData("foreground"))
    widget.input.setCurrentText("my interior")
    widget.input.activated.emit(widget.input.currentIndex())
    widget.mode.setCurrentIndex(widget.mode.findData("interior_boundary"))
    assert widget.input.layer().name == "my interior"


@pytest.mark.gui
def test_redo_paints_no_stroke_of_an_earlier_result_into_a_new_one(
    make_napari_viewer_proxy, qtbot, truth
):
    """napari kept a Labels layer's undo and redo history over a new result written into
    it: a stroke painted and undone on the first split was painted into the second by
    Redo."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.where(truth > 0, 0.9, 0.05).astype(np.float32), name="foreground")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
    output = viewer.layers["foreground instances"]
    output.brush_size = 10
    output.paint((64, 64), 999)
    output.undo()
    first = output.data.copy()
    widget.status.setText("")
    widget.h.setValue(20.0)
    widget.apply()
    qtbot.waitUntil(lambda: "Done" in widget.status.text(), timeout=15000)
    assert viewer.layers["foreground instances"].unique_id == output.unique_id
    assert not np.array_equal(output.data, first)
    output.redo()
    assert not (output.data == 999).any()


@pytest.mark.gui
def test_closing_layers_during_a_live_preview_splits_nothing_unasked(
    make_napari_viewer_proxy, qtbot, truth
):
    """With the preview on, deleting the split brought it back with the next preview (the
    input list, rebuilt, 'changed'), and deleting the input previewed the layer that took
    its place, unasked; both deleted at once, napari crashed adding that result."""
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(truth[::-1].copy(), name="other cells")
    viewer.add_labels(truth.copy(), name="cells")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    widget.input.setCurrentText("cells")
    widget.h.setValue(4.0)  # previews
    qtbot.waitUntil(lambda: "Preview" in widget.status.text(), timeout=10000)
    viewer.layers.remove("cells split")
    qtbot.wait(600)  # longer than the preview's quiet period
    assert not widget.runner.busy and "cells split" not in viewer.layers
    viewer.layers.remove("cells")
    qtbot.wait(600)
    assert not widget.runner.busy
    assert [layer.name for layer in viewer.layers] == ["other cells"]
    assert widget.status.text() == "'cells' was closed; the input is now 'other cells'."
    # The user's next change previews the input now shown.
    widget.h.setValue(5.0)
    qtbot.waitUntil(lambda: "other cells split" in viewer.layers, timeout=10000)


@pytest.mark.gui
def test_a_result_that_found_no_cells_is_said_without_an_error(
    make_napari_viewer_proxy, qtbot, monkeypatch
):
    """Split applied to a result of segmenting that found no cells (an image smaller than
    the least cell) popped up a red error that said to segment it first: it had just been."""
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    errors = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", errors.append)
    viewer = make_napari_viewer_proxy()
    record = {"role": RESULT_ROLE, "source": None, "method": "unet"}
    viewer.add_labels(np.zeros((7, 7), np.uint32), name="tiny cells",
                      metadata={METADATA_KEY: record})  # fmt: skip
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    widget.input.setCurrentText("tiny cells")
    widget.apply()
    qtbot.waitUntil(lambda: "no cells" in widget.status.text(), timeout=10000)
    assert widget.status.text() == (
        "'tiny cells' has no cells to split: segmenting found none there, or they were erased."
    )
    assert errors == [] and [layer.name for layer in viewer.layers] == ["tiny cells"]


@pytest.mark.gui
def test_a_preview_of_no_cells_adds_no_result_and_says_why_in_the_status(
    make_napari_viewer_proxy, qtbot, monkeypatch, truth
):
    """An empty labels layer previewed as "0 cells" into a new empty result that Apply then
    refused; a preview's failure (negative ids) popped up a notification at every edit."""
    errors = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", errors.append)
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.zeros((64, 64), np.uint16), name="nothing")
    stack = np.stack([np.zeros_like(truth), truth])
    viewer.add_labels(stack, name="stack")
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.mode.setCurrentIndex(widget.mode.findData("split"))
    widget.input.setCurrentText("nothing")
    widget.h.setValue(4.0)
    qtbot.waitUntil(lambda: "no cells" in widget.status.text(), timeout=10000)
    assert widget.status.text() == (
        "'nothing' has no cells to split (every pixel is 0): segment it in Segment "
        "cytoplasm (its step 2, or Layers > Segment) first, or paint cells into it."
    )
    widget.input.setCurrentText("stack")  # its first frame, on show, is empty
    qtbot.waitUntil(lambda: "frame" in widget.status.text(), timeout=10000)
    assert widget.status.text().startswith(
        "Frame 0 of 'stack' has no cells to split (every pixel is 0): show a frame with cells,"
    )
    assert [layer.name for layer in viewer.layers] == ["nothing", "stack"]
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(lambda: "stack split" in viewer.layers, timeout=10000)
    viewer.add_labels(np.full((64, 64), -3, np.int16), name="negative")
    widget.input.setCurrentText("negative")
    qtbot.waitUntil(lambda: "negative ids" in widget.status.text(), timeout=10000)
    assert errors == []


@pytest.mark.gui
def test_a_threshold_set_stays_when_layers_are_added_or_the_input_renamed(
    make_napari_viewer_proxy, qtbot, truth
):
    """Any layer added (the preview's own result, a Points layer) put the threshold the
    user had set back to the suggested one, and Apply split at that: the list of layers
    was rebuilt and said its choice had changed when it had not."""
    viewer = make_napari_viewer_proxy()
    prob = ndi.gaussian_filter((truth > 0).astype(np.float32), 2)
    viewer.add_image(np.zeros((8, 8), np.float32), name="other map")
    viewer.add_image(prob, name="foreground")
    widget = _applying(viewer, qtbot, "foreground", "foreground")
    widget.input.activated.emit(widget.input.currentIndex())
    assert widget.input.currentIndex() > 0  # not the list's first: kept by index
    widget.threshold.setValue(0.2)
    viewer.add_points(name="marks")
    viewer.layers["foreground"].name = "foreground (renamed)"
    assert widget.threshold.value() == pytest.approx(0.2)
    widget.apply()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=20_000)
    made = viewer.layers["foreground (renamed) instances"]
    assert made.metadata["cytomask"]["parameters"]["params"]["threshold"] == pytest.approx(0.2)
    # Another input is suggested its own threshold again.
    widget.input.setCurrentText("other map")
    assert widget.threshold.value() == pytest.approx(0.5)


@pytest.mark.gui
def test_maps_of_one_position_segmented_start_at_that_runs_thresholds(
    make_napari_viewer_proxy, qtbot, truth
):
    """The U-Net run on the current position records its thresholds for that frame only
    (the stack's record holds none): splitting its maps started at 0.5, cells about 30 %
    larger than the model's."""
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    classes = instances_to_interior_boundary(truth)
    maps = {k: np.stack([(classes == k).astype(np.float32)] * 3) for k in (1, 2)}
    frame = {"method": "unet", "parameters": {"foreground_threshold": 0.95,
                                              "interior_threshold": 0.7}}  # fmt: skip
    made = {"source": "scan.tif", "role": "result", "method": "unet", "parameters": None,
            "previewed_frames": {"1": frame}, "frames_made": ["1"],
            "made_from": {"layer": "Phase contrast"}}  # fmt: skip
    for k, name in ((1, "interior"), (2, "boundary")):
        viewer.add_image(maps[k], name=name, axis_labels=("P", "y", "x"),
                         metadata={METADATA_KEY: {**made, "probability": name}})  # fmt: skip
    viewer.dims.set_point(0, 1)
    widget = WatershedWidget(viewer)
    qtbot.addWidget(widget)
    widget.live.setChecked(False)
    widget.mode.setCurrentIndex(widget.mode.findData("interior_boundary"))
    assert widget.input.layer().name == "interior"
    assert (widget.threshold.value(), widget.interior_threshold.value()) == (0.95, 0.7)
