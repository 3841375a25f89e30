import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from qtpy.QtCore import Qt

from napari_cytomask._qt import export_panel
from napari_cytomask._qt.export_panel import ExportPanel
from napari_cytomask.io.export import exporting

pytestmark = pytest.mark.gui


def test_export_panel_writes_selected_layers_and_reads_back(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    truth = viewer.layers["Mask (ground truth)"]
    ids = np.unique(truth.data)[1:]
    prediction = viewer.add_labels(
        truth.data.copy(),
        name="prediction",
        scale=truth.scale,
        units=truth.units,
        axis_labels=truth.axis_labels,
        features=pd.DataFrame({"label": ids, "predicted_iou": np.linspace(0.2, 0.9, len(ids))}),
    )
    panel = ExportPanel(viewer)
    viewer.window.add_dock_widget(panel)
    assert [panel.layer_list.item(i).text() for i in range(panel.layer_list.count())] == [
        "Mask (ground truth)",
        "prediction",
    ]
    # The scan's mask channel (the ground truth) starts unticked, a result ticked.
    states = [panel.layer_list.item(i).checkState() for i in range(2)]
    assert states == [export_panel.Qt.CheckState.Unchecked, export_panel.Qt.CheckState.Checked]
    panel.formats["ome-tiff"].setChecked(True)
    panel.coco_json.setChecked(True)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [
            "prediction.tif",
            "prediction.ome.tif",
            "prediction_objects.csv",
            "prediction_counts.csv",
            "prediction_coco.json",
            "prediction_provenance.json",
        ]
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "prediction.tif"), prediction.data)
    with tifffile.TiffFile(tmp_path / "prediction.ome.tif") as tif:
        assert len(tif.series) == 3  # one OME image per tile
        np.testing.assert_array_equal(tif.series[1].asarray(), prediction.data[1])
    coco = json.loads((tmp_path / "prediction_coco.json").read_text())
    assert len(coco["images"]) == 3
    assert {round(a["score"], 6) for a in coco["annotations"]} <= {
        round(float(s), 6) for s in prediction.features["predicted_iou"]
    }
    header = (tmp_path / "prediction_objects.csv").read_text().splitlines()[0]
    assert "mean_GFP" in header and "mean_Brightfield" in header and "predicted_iou" in header

    # A second export finds the files: the user is asked, and "no" keeps them.
    before = (tmp_path / "prediction.tif").read_bytes()
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: False)
    panel.export()
    qtbot.waitUntil(lambda: "Nothing was written" in panel.status.text(), timeout=30_000)
    assert (tmp_path / "prediction.tif").read_bytes() == before


def test_lazy_layers_are_read_in_the_worker_not_on_the_gui_thread(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """Clicking Export read every lazy labels and image layer of a scan in napari's GUI
    thread first: 2.2 s frozen for one 6-position 4096² scan."""
    import threading

    import dask
    import dask.array as da

    # Blocks read in the thread that asks for them (not in dask's pool): a read on napari's
    # GUI thread is told apart from the export worker's, whenever the worker starts.
    monkeypatch.setitem(dask.config.config, "scheduler", "synchronous")
    readers = []

    def planes(block, dtype):
        readers.append(threading.current_thread())
        return block.astype(dtype)

    ids = np.zeros((3, 64, 64), np.uint16)
    ids[:, 8:24, 8:24], ids[:, 30:50, 30:50] = 1, 2
    light = np.random.default_rng(0).integers(0, 1000, (3, 64, 64)).astype(np.uint16)
    viewer = make_napari_viewer_proxy()
    for data, name, add in ((light, "phase", viewer.add_image), (ids, "cells", viewer.add_labels)):
        lazy = da.from_array(data, chunks=(1, 64, 64)).map_blocks(planes, data.dtype)
        add(lazy, name=name)
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path))
    readers.clear()  # napari's own reads, to show the layers
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert readers and threading.main_thread() not in readers
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cells.tif"), ids)
    header = (tmp_path / "cells_objects.csv").read_text().splitlines()[0]
    assert "mean_phase" in header


def test_a_lazy_scan_is_read_once_and_only_after_the_replace_question(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """Exporting into a folder that held the files read the whole lazy scan before asking
    whether to replace them, for nothing on No and a second time on Yes."""
    import threading

    import dask
    import dask.array as da

    # Blocks read in the thread that asks for them: napari's drawing (the main thread) is
    # told apart from the export's worker.
    monkeypatch.setitem(dask.config.config, "scheduler", "synchronous")
    worker_reads = []

    def planes(block, dtype):
        if threading.current_thread() is not threading.main_thread():
            worker_reads.append(block.shape)
        return block.astype(dtype)

    ids = np.zeros((3, 64, 64), np.uint16)
    ids[:, 8:24, 8:24] = 1
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(da.from_array(ids, chunks=(1, 64, 64)).map_blocks(planes, ids.dtype),
                      name="cells")  # fmt: skip
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    once = len(worker_reads)
    assert once == 3  # each plane, once

    answers = iter([False, True])
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: next(answers))
    worker_reads.clear()
    panel.export()
    qtbot.waitUntil(lambda: "Nothing was written" in panel.status.text(), timeout=30_000)
    assert worker_reads == []
    panel.export()
    qtbot.waitUntil(lambda: "replacing" in panel.status.text(), timeout=30_000)
    assert len(worker_reads) == once


def _asked_no(panel, qtbot, monkeypatch) -> tuple[str, str, str]:
    """The title, question and detail of the one question an export asked, answered No."""
    asked = []
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: asked.append(a) or False)
    panel.export()
    qtbot.waitUntil(lambda: "Nothing was written" in panel.status.text(), timeout=30_000)
    ((_, *said),) = asked
    return tuple(said)


def test_the_replace_question_names_whose_files_are_there(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """A long day: set1's cells exported, set2's segmented, both ticked. The question
    listed set1's files only ("Some of the files … Replace them?"), and No wrote neither,
    set2's new cells included, without saying so."""
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.eye(16, dtype=np.uint8), name="set1 cells")
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    viewer.add_labels(np.eye(16, dtype=np.uint8) * 2, name="set2 cells")
    _, question, detail = _asked_no(panel, qtbot, monkeypatch)
    assert question == (
        "Files of 'set1 cells' are already in the folder. Replace them? The export writes all "
        "ticked layers or none: No writes none of them, not the other one either (untick "
        "'set1 cells' to write it alone)."
    )
    assert detail.startswith(f"Already in {tmp_path}: set1 cells.tif")
    assert not any(path.name.startswith("set2") for path in tmp_path.iterdir())


def test_replacing_files_of_cells_corrected_by_hand_is_asked_saying_so(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """Cells corrected by hand, exported, the layer renamed to keep it and new cells made
    under its old name: "Files of 'cells' are already in the folder. Replace them?", and
    Yes wrote the uncorrected cells over the corrected ones."""
    from napari_cytomask.io.layers import as_written

    viewer = make_napari_viewer_proxy()
    cells = np.zeros((32, 32), np.uint16)
    cells[4:12, 4:12] = 1
    record = {"role": "result", "method": "unet", "written": as_written(cells)}
    corrected = viewer.add_labels(cells.copy(), name="cells", metadata={"cytomask": record})
    corrected.data[20:28, 20:28] = 2  # a cell the network missed, painted in
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    corrected.name = "corrected cells"
    viewer.layers.remove(corrected)
    viewer.add_labels(cells.copy(), name="cells", metadata={"cytomask": dict(record)})
    _, question, _ = _asked_no(panel, qtbot, monkeypatch)
    assert question == (
        "Files of 'cells' are already in the folder. Replace them? They hold cells corrected "
        "by hand (of a layer then named 'cells'): replaced, the corrections are lost unless "
        "that layer is still open."
    )


def test_a_renamed_layer_stays_chosen_and_ticked(make_napari_viewer_proxy, qtbot, tmp_path):
    from napari.layers import Image

    from napari_cytomask._qt._layers import LayerPicker

    viewer = make_napari_viewer_proxy()
    image = viewer.add_image(np.zeros((16, 16), np.uint16), name="img2d")
    viewer.add_image(np.ones((16, 16), np.uint16), name="other")
    cells = viewer.add_labels(np.eye(16, dtype=np.uint8), name="mask2d instances")
    picker = LayerPicker(viewer, Image)
    picker.set_layer(image)
    panel = ExportPanel(viewer)
    changed = []
    picker.currentIndexChanged.connect(changed.append)

    image.name = "nuclei"
    cells.name = "my cells"

    # (the viewer proxy wraps layers, so they are compared by name)
    assert picker.currentText() == "nuclei" and picker.layer().name == "nuclei"
    assert changed  # the steps that show the chosen name hear of the new one
    assert panel.layer_list.item(0).text() == "my cells"
    assert [layer.name for layer in panel.selected_layers()] == ["my cells"]
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert any(p.name.startswith("my cells") for p in tmp_path.iterdir())


def test_an_empty_list_and_an_empty_result_are_said(make_napari_viewer_proxy, qtbot, tmp_path):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((16, 16), np.uint16), name="phase")
    panel = ExportPanel(viewer)
    assert panel.status.text() == (
        "No Labels layer to export yet: segment cells in Segment cytoplasm (its step 2, or "
        "Layers > Segment), or open a mask."
    )
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="phase cells")  # nothing found
    assert panel.status.text() == ""  # the layer is there to export now
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert panel.status.text() == (
        f"Wrote 4 files to {tmp_path}. 'phase cells' holds no cells, so its files hold none either."
    )


def test_the_metrics_highlights_start_unticked(make_napari_viewer_proxy, qtbot):
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    image = viewer.add_image(np.zeros((16, 16), np.uint16), name="phase")
    cells = viewer.add_labels(
        np.eye(16, dtype=np.uint8), name="cells", metadata=result_metadata(image, method="unet")
    )
    viewer.add_labels(
        np.eye(16, dtype=np.uint8), name="false positives (cells vs gt)",
        metadata=result_metadata(cells, method="false_positives"),
    )  # fmt: skip
    panel = ExportPanel(viewer)
    assert [layer.name for layer in panel.selected_layers()] == ["cells"]


def _panel_of_one_layer(make_viewer, monkeypatch):
    """An export panel of one Labels layer, "cells"; the errors it shows and the questions
    it asks (each answered yes)."""
    errors = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", errors.append)
    asked = []
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: asked.append(a) or True)
    viewer = make_viewer()
    viewer.add_labels(np.eye(16, dtype=np.uint8), name="cells")
    panel = ExportPanel(viewer)
    return panel, errors, asked


def test_a_folder_that_is_a_file_or_none_is_said_before_writing(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    panel, errors, asked = _panel_of_one_layer(make_napari_viewer_proxy, monkeypatch)
    (tmp_path / "notes").write_text("mine")
    panel.folder.setText(str(tmp_path / "notes"))
    panel.export()
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert f"{tmp_path / 'notes'} is a file, not a folder; choose a folder" in errors[-1]
    assert not asked and (tmp_path / "notes").read_text() == "mine"
    panel.folder.setText("  ")
    panel.export()
    assert errors[-1].endswith("Choose a folder to export to.")
    # A folder name longer than a file system allows: said in words, not "[Errno 36] …".
    panel.folder.setText(str(tmp_path / ("x" * 300)))
    panel.export()
    qtbot.waitUntil(lambda: "300 bytes" in errors[-1], timeout=30_000)
    assert errors[-1] == (
        f"Export failed: the name {'x' * 300} would have 300 bytes, 45 more than the 255 a "
        "file name may have; choose a name at least 45 bytes shorter."
    )


def test_a_read_only_folder_is_said_before_asking_to_replace_its_files(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """An export into a read-only folder holding an earlier export asked "Replace files?"
    first, then said the disk was read-only."""
    import os

    panel, errors, asked = _panel_of_one_layer(make_napari_viewer_proxy, monkeypatch)
    panel.folder.setText(str(tmp_path))
    (tmp_path / "cells.tif").write_bytes(b"an earlier export")
    access, statvfs = os.access, os.statvfs

    class Mounted:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "access", lambda p, mode, **kw: p != tmp_path and access(p, mode, **kw))
    monkeypatch.setattr(os, "statvfs", lambda p: Mounted if p == tmp_path else statvfs(p))
    panel.export()
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert errors[-1] == (
        f"Export failed: Could not write into {tmp_path}: the disk is read-only. Nothing was "
        "written; choose another folder."
    )
    assert not asked and (tmp_path / "cells.tif").read_bytes() == b"an earlier export"


def test_the_file_a_layer_was_opened_from_is_never_replaced(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """Exporting hand-drawn labels into their own folder replaced the file they came from,
    once the overwrite question was answered (File > Save is what saves over it)."""
    errors = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", errors.append)
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: True)
    labels = np.zeros((32, 32), np.uint16)
    labels[4:12, 4:12], labels[20:28, 18:30] = 1, 2
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, labels, description="drawn by hand")
    before = path.read_bytes()
    viewer = make_napari_viewer_proxy()
    viewer.open(str(path), plugin="napari-cytomask")
    assert viewer.layers["cells"].metadata["cytomask"]["source"] == str(path)
    panel = ExportPanel(viewer)
    panel.layer_list.item(0).setCheckState(Qt.CheckState.Checked)  # a mask: unticked at first
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert (
        f"the export of 'cells' would replace {path}, a file that images or labels are read from"
        in errors[-1]
    )
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("reader", ["napari-cytomask", "napari"])
def test_a_file_open_in_the_viewer_is_never_replaced(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch, scan_and_mask, reader
):
    """A mask gt/well1.tif (layer 'well1 [1]') exported into data/ is well1.tif: answered
    Yes, the overwrite question replaced the scan data/well1.tif open beside it."""
    errors = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", errors.append)
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: True)
    scan, mask = scan_and_mask("gt")
    before = scan.read_bytes()
    viewer = make_napari_viewer_proxy()
    viewer.open(str(scan), plugin=reader)  # napari's reader records no source of its own
    viewer.open(str(mask), plugin="napari-cytomask")
    panel = ExportPanel(viewer)
    assert panel.layer_list.item(0).text() == "well1 [1]"
    panel.layer_list.item(0).setCheckState(Qt.CheckState.Checked)  # a mask: unticked at first
    panel.folder.setText(str(tmp_path / "data"))
    panel.export()
    qtbot.waitUntil(lambda: bool(errors) or "Wrote" in panel.status.text(), timeout=30_000)
    assert scan.read_bytes() == before and sorted((tmp_path / "data").iterdir()) == [scan]
    assert (
        f"the export of 'well1 [1]' would replace {scan}, a file that images or labels are read "
        "from" in errors[-1]
    )


def test_files_already_there_are_listed_by_name():
    from pathlib import Path

    folder = Path("/data/out")
    paths = [folder / f"cells{i}.tif" for i in range(6)]
    assert export_panel._listed(paths[:2], folder) == (
        "Already in /data/out: cells0.tif, cells1.tif."
    )
    assert export_panel._listed(paths, folder) == (
        "Already in /data/out: cells0.tif, cells1.tif, cells2.tif, cells3.tif, and 2 more."
    )


def test_a_relative_folder_is_said_in_full(make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.diag(np.arange(1, 17, dtype=np.uint8)), name="cells")
    panel = ExportPanel(viewer)
    panel.folder.setText("exports")
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert panel.status.text() == f"Wrote 4 files to {tmp_path / 'exports'}."


@pytest.mark.parametrize(
    "typed",
    ["  {folder}  ", '"{folder}"', "'{folder}' ", "file://{folder}"],
    ids=["spaces", "double-quotes", "single-quotes", "file-url"],
)
def test_a_pasted_folder_is_taken_as_a_shell_would(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch, typed
):
    """Spaces around a pasted folder, the quotes of "copy as path" and a file:// address
    were kept: the files went into a folder of that odd name under napari's own folder."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "my exports"
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.diag(np.arange(1, 17, dtype=np.uint8)), name="cells")
    panel = ExportPanel(viewer)
    panel.folder.setText(typed.format(folder=folder))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert panel.status.text() == f"Wrote 4 files to {folder}."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my exports"]


def test_frames_never_made_are_said_and_left_uncounted(make_napari_viewer_proxy, qtbot, tmp_path):
    """A split layer made by previewing one frame was exported with 0 cells for every
    other frame, unsaid: a frame never split read as one without cells."""
    viewer = make_napari_viewer_proxy()
    stack = np.zeros((3, 16, 16), np.uint8)
    stack[1, 2:6, 2:6], stack[1, 8:12, 8:12] = 1, 2
    record = {"method": "watershed_split", "parameters": None, "frames_made": ["1"]}
    viewer.add_labels(stack, name="cells split", metadata={"cytomask": record})
    # Of several axes: "0,1" and "1,0" are two frames, listed apart.
    record = {**record, "frames_made": ["0,1", "1,0"]}
    positions_times = np.zeros((2, 2, 16, 16), np.uint8)
    positions_times[0, 1] = positions_times[1, 0] = stack[1]
    viewer.add_labels(positions_times, name="pt split", metadata={"cytomask": record})
    panel = ExportPanel(viewer)
    for i in range(2):
        panel.layer_list.item(i).setCheckState(Qt.CheckState.Checked)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert panel.status.text().endswith(
        " 'cells split' holds frame 1 only, made one at a time: its other frames were never "
        "made, so their cell counts are left empty. 'pt split' holds frames 0,1; 1,0 only, "
        "made one at a time: its other frames were never made, so their cell counts are "
        "left empty."
    )
    counts = pd.read_csv(tmp_path / "cells split_counts.csv")
    assert counts["cells"].isna().tolist() == [True, False, True]
    assert counts["cells"][1] == 2
    provenance = json.loads((tmp_path / "cells split_provenance.json").read_text())
    assert provenance["frames_made"] == ["1"]


def test_a_cell_painted_into_a_frame_never_made_is_counted_and_exported(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """A cell painted at a position the model never segmented was in the objects table,
    but its position's count was left empty, its PNG was not written and the provenance
    said the frame was never made."""
    from napari_cytomask.io.layers import record_written

    viewer = make_napari_viewer_proxy()
    stack = np.zeros((3, 16, 16), np.uint8)
    stack[2, 2:6, 2:6] = 1
    record = {"role": "result", "method": "unet", "parameters": None, "frames_made": ["2"]}
    cells = viewer.add_labels(stack, name="cells", metadata={"cytomask": record})
    record_written(cells)
    cells.paint((0, 10, 10), 7)
    panel = ExportPanel(viewer)
    panel.layer_list.item(0).setCheckState(Qt.CheckState.Checked)
    panel.formats["png"].setChecked(True)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert "holds frames 0, 2 only" in panel.status.text()
    counts = pd.read_csv(tmp_path / "cells_counts.csv")
    assert counts["cells"].isna().tolist() == [False, True, False]
    assert counts["cells"][0] == 1
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["cells_0.png", "cells_2.png"]
    provenance = json.loads((tmp_path / "cells_provenance.json").read_text())
    assert provenance["frames_made"] == ["0", "2"] and provenance["edited_by_hand"] is True


@pytest.mark.parametrize(
    "typed, path",
    [("file:///data/run #3/out?", "/data/run #3/out?"), ("file:///C:/data/x", "C:/data/x"),
     ("file://localhost/data/a%20b", "/data/a b"), ("  '/data/50%20'  ", "/data/50%20"),
     ("file:/data/a%20b", "/data/a b"), ("FILE:/C:/x", "C:/x"), ("", ""),
     ("file://server/share/a%20b.tif", "//server/share/a b.tif")],
)  # fmt: skip
def test_typed_paths_keep_every_character_of_the_path(typed, path):
    """A "#" or "?" in a file:// address cut the path there (an address's fragment), a
    file:/ address with no host part was taken as a relative path named "file:", and a
    network share's host was dropped (a local path)."""
    from napari_cytomask._qt._live import typed_path

    assert typed_path(typed) == path


def test_a_folder_whose_name_ends_in_a_space_is_that_folder(tmp_path):
    """The export's folder "Exp 7 " (beside the data) was taken for "Exp 7": the files went
    into another folder, made for them or another experiment's. Spaces pasted around a
    path that is not there are still left out."""
    from napari_cytomask._qt._live import typed_path

    folder = tmp_path / "Exp 7 "
    folder.mkdir()
    assert typed_path(str(folder)) == str(folder)
    assert typed_path(f"'{folder}'") == typed_path(f'"{folder}"') == str(folder)  # copied as path
    assert typed_path(f"  {tmp_path / 'Exp 7'}  ") == str(tmp_path / "Exp 7")


def test_a_result_slot_name_keeps_its_brackets_in_file_names(tmp_path):
    from napari_cytomask.io.export import LabelsExport, export_labels

    written = export_labels(
        [LabelsExport("raw U-Net cells [2]", np.eye(8, dtype=np.uint8))], tmp_path
    )
    assert written[0].name == "raw U-Net cells [2].tif"


def test_in_its_own_dock_ctrl_enter_exports_and_esc_is_left_to_napari(make_napari_viewer_proxy):
    """Esc is the dock's only while an export runs (Cancel): it took Esc all the same,
    from napari (ending a shape)."""
    from qtpy.QtWidgets import QShortcut

    panel = ExportPanel(make_napari_viewer_proxy())
    keys = {s.key().toString() for s in panel.findChildren(QShortcut) if s.isEnabled()}
    assert keys == {"Ctrl+Return", "Ctrl+Enter"}


def _export_held(panel, qtbot, monkeypatch, files):
    """Start ``panel``'s export (replacing files), held as it goes on after reporting
    ``files`` files written (its last report: its files then move in) until the returned
    event is set; returns once it is held there."""
    holding, gate = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        work = exporting(*args, **kwargs)
        while True:
            try:
                report = next(work)
            except StopIteration as stop:
                return stop.value
            yield report
            if report.stage == "write" and report.done == files:
                holding.set()
                gate.wait(30)

    monkeypatch.setattr(export_panel, "exporting", held)
    panel.export(overwrite=True)
    qtbot.waitUntil(holding.is_set, timeout=30_000)
    return gate


def test_cancel_stops_an_export_and_leaves_the_folder_as_it_was(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """A large export (a plate's positions, its tables) took minutes with no way to stop
    it. Cancel (and Esc) stops it at the end of its step: an earlier export it was
    replacing is there unchanged, nothing of the stopped one is left. Export waits until
    it has stopped (exported again at once, it found the folder taken by "an export")."""
    panel, errors, _ = _panel_of_one_layer(make_napari_viewer_proxy, monkeypatch)
    assert panel.controls.cancel_button.isVisibleTo(panel)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote 4 files" in panel.status.text(), timeout=30_000)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = np.diag(np.arange(16, 0, -1)).astype(np.uint8)  # other ids
    panel.viewer.layers["cells"].data = other
    gate = _export_held(panel, qtbot, monkeypatch, files=1)
    qtbot.waitUntil(lambda: panel.status.text() == "Writing the files: 1 of 4", timeout=5000)
    assert panel.controls.progress.value() == 1 and panel.controls.progress.maximum() == 4
    panel.controls.cancel_button.click()
    said = (
        f"Cancelled: nothing was written to {tmp_path}; the files in {tmp_path} are as they were."
    )
    assert panel.status.text() == (
        f"{said} Export again once it has stopped, at the end of the step under way."
    )
    assert not panel.runner.busy and not panel.export_button.isEnabled()
    gate.set()
    # Its written files are removed as it stops, and the folder's lock let go.
    qtbot.waitUntil(panel.export_button.isEnabled, timeout=30_000)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert panel.status.text() == said
    monkeypatch.setattr(export_panel, "exporting", exporting)
    panel.export(overwrite=True)
    qtbot.waitUntil(lambda: "Wrote 4 files" in panel.status.text(), timeout=30_000)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cells.tif"), other)
    assert errors == []


def test_an_export_cancelled_as_its_files_move_in_says_they_are_there(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """Its files move in after its last step, all together: Cancel pressed then does not
    stop it, and the dock (and the notification of a dock closed then) said nothing was
    written."""
    panel, errors, _ = _panel_of_one_layer(make_napari_viewer_proxy, monkeypatch)
    panel.folder.setText(str(tmp_path / "new"))
    gate = _export_held(panel, qtbot, monkeypatch, files=4)
    panel.controls.cancel_button.click()
    assert panel.status.text() == (
        f"Cancelled too late: its files were already moving into {tmp_path / 'new'}; it "
        "finishes, and they are there."
    )
    gate.set()
    qtbot.waitUntil(panel.export_button.isEnabled, timeout=30_000)
    assert panel.status.text().startswith(
        f"Cancelled too late: the export had finished. Wrote 4 files to {tmp_path / 'new'}"
    )
    assert len(list((tmp_path / "new").iterdir())) == 4 and errors == []
    # Cancelled once they are in, before napari has shown the end.
    monkeypatch.setattr(export_panel, "exporting", exporting)
    panel.export(overwrite=True)
    deadline = time.monotonic() + 30
    while panel._landing.outcome is None and time.monotonic() < deadline:
        time.sleep(0.01)  # napari's thread shows nothing
    panel.controls.cancel_button.click()
    assert panel.status.text().startswith("Cancelled too late: the export had finished. Wrote 4")


def test_an_export_cancelled_as_its_files_move_in_and_failing_then_says_so(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """A move that failed after Cancel (a full disk) was never said: its worker, cancelled,
    had its error dropped, and the dock went on saying that the files were there."""
    import errno

    from napari_cytomask.io import atomic

    panel, errors, _ = _panel_of_one_layer(make_napari_viewer_proxy, monkeypatch)
    panel.folder.setText(str(tmp_path))
    gate = _export_held(panel, qtbot, monkeypatch, files=4)
    panel.controls.cancel_button.click()
    assert panel.status.text().startswith("Cancelled too late: its files were already moving")

    def full(tmp, path, overwrite):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_move_in", full)
    gate.set()
    qtbot.waitUntil(panel.export_button.isEnabled, timeout=30_000)
    assert panel.status.text() == errors[0] == "Export failed: [Errno 28] No space left on device"
    assert list(tmp_path.iterdir()) == []


def _scan(path, seed):
    """A small two-channel scan (phase, GFP) of real-looking noise, as a TIFF."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 4000, (2, 64, 64), dtype=np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "CYX", "Labels": ["phase", "GFP"]})
    return data


def _objects_exported(viewer, qtbot, cells, name, source):
    """The objects table of a U-Net result of ``source``, exported beside it by the dock."""
    record = {"role": "result", "source": str(source), "method": "unet"}
    viewer.add_labels(cells, name=name, metadata={"cytomask": record})
    panel = ExportPanel(viewer)
    panel.folder.setText(str(source.parent / "out"))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    return pd.read_csv(source.parent / "out" / f"{name}_objects.csv")


def test_cells_are_measured_in_their_own_scan_only(make_napari_viewer_proxy, qtbot, tmp_path):
    """With two scans of one size open, a result of the second was measured in both, the
    first's intensities under the plain channel names: a script reading 'mean_GFP' read
    another well."""
    a, b = _scan(tmp_path / "well A1.tif", 1), _scan(tmp_path / "well B2.tif", 2)
    stain = np.random.default_rng(3).integers(0, 4000, (64, 64), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "B2 stain.tif", stain)  # the same field, another file
    viewer = make_napari_viewer_proxy()
    for name in ("well A1.tif", "well B2.tif", "B2 stain.tif"):
        viewer.open(tmp_path / name, plugin="napari-cytomask")
    cells = np.zeros((64, 64), np.uint8)
    cells[10:30, 10:30] = 1
    objects = _objects_exported(viewer, qtbot, cells, "B2 cells", tmp_path / "well B2.tif")
    measured = {c: objects[c][0] for c in objects.columns if c.startswith("mean_")}
    assert len([layer for layer in viewer.layers if layer.name != "B2 cells"]) == 5
    # B2's phase and GFP, not A1's as well; an image of another name is measured too,
    # named after its file.
    assert measured.pop("mean_B2 stain (B2 stain.tif)") == pytest.approx(stain[cells > 0].mean())
    assert len(measured) == 2
    for column, value in measured.items():
        channel = b[0] if "phase" in column else b[1]
        assert value == pytest.approx(channel[cells > 0].mean())
        assert value != pytest.approx(a[0 if "phase" in column else 1][cells > 0].mean())


def test_images_that_do_not_lie_under_the_cells_are_not_measured(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """An image of the labels' shape moved 500 µm away, or at another pixel size, was
    measured under the cells as if it lay beneath them, unsaid."""
    rng = np.random.default_rng(4)
    here, elsewhere, coarse, small = (
        rng.integers(0, 4000, (64, 64), dtype=np.uint16) for _ in range(4)
    )
    viewer = make_napari_viewer_proxy()
    # Placed as a result of a pyramid's coarse level is: by half its block.
    um = {"scale": (0.87, 0.87), "units": ("µm", "µm"), "translate": (0.2175, 0.2175)}
    viewer.add_image(here, name="here", **um)
    viewer.add_image(elsewhere, name="elsewhere", **{**um, "translate": (500, 500)})
    viewer.add_image(coarse, name="coarse", **{**um, "scale": (1.74, 1.74)})
    # A pyramid whose coarse level has the labels' shape, lying under them.
    full = np.kron(small, np.ones((2, 2), small.dtype))
    viewer.add_image([full, small], name="pyramid", scale=(0.435, 0.435), units=("µm", "µm"))
    cells = np.zeros((64, 64), np.uint8)
    cells[10:30, 10:30] = 1
    viewer.add_labels(cells, name="cells", **um)
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path / "out"))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    objects = pd.read_csv(tmp_path / "out" / "cells_objects.csv")
    assert [c for c in objects.columns if c.startswith("mean_")] == ["mean_here", "mean_pyramid"]
    assert objects["mean_pyramid"][0] == pytest.approx(small[cells > 0].mean())
    assert panel.status.text().endswith(
        "Note: 'elsewhere' and 'coarse' do not lie under 'cells' in the viewer (moved, turned "
        "or at another pixel size), so their intensities are not in its table."
    )


def test_cell_ids_napari_opened_as_an_image_are_not_measured(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """Two Usiigaci fields in their own layout (raw.tif beside instances_ids.png, which
    napari opens as an image): each table measured both fields' ground truths as
    intensities, 'mean_instances_ids (instances_ids.png)' and '… [1] …', another field's
    cell ids among them."""
    from skimage.io import imsave

    viewer = make_napari_viewer_proxy()
    ids = np.zeros((64, 64), np.uint16)
    ids[10:30, 10:30], ids[40:60, 35:55] = 1, 2
    for field in ("set1", "set2"):
        (tmp_path / field).mkdir()
        _scan(tmp_path / field / "raw.tif", len(field))
        imsave(tmp_path / field / "instances_ids.png", ids, check_contrast=False)
        viewer.open(tmp_path / field / "raw.tif", plugin="napari-cytomask")
        viewer.open(tmp_path / field / "instances_ids.png")
    assert [layer.name for layer in viewer.layers if "ids" in layer.name] == [
        "instances_ids", "instances_ids [1]"
    ]  # fmt: skip
    objects = _objects_exported(viewer, qtbot, ids, "cells", tmp_path / "set1" / "raw.tif")
    assert [c for c in objects.columns if c.startswith("mean_")] == ["mean_phase", "mean_GFP"]


def test_a_result_of_cytomask_segment_is_exported_as_the_command_line_exports_it(
    make_napari_viewer_proxy, qtbot, tmp_path, unet_checkpoint
):
    """Opened in napari, a result of 'cytomask segment' was exported as a mask of its own
    file: no method, model or settings, and COCO images named after the label file, not
    the scan its annotations describe."""
    from napari_cytomask.cli import main
    from napari_cytomask.io.layers import labels_digest

    _scan(tmp_path / "well B2.tif", 2)
    model = unet_checkpoint(tile_size=64)
    assert main(["segment", str(tmp_path / "well B2.tif"), "-m", str(model), "-o",
                 str(tmp_path / "seg"), "-q", "--scheduler", "synchronous", "--threads", "1",
                 "--channel", "0", "--overlap", "16"]) == 0  # fmt: skip
    result = tmp_path / "seg" / "well B2_unet_cells.tif"
    cells = np.zeros((64, 64), np.uint8)  # a random network's labels, made cells-like
    cells[5:20, 5:20], cells[30:50, 30:60] = 1, 2
    tifffile.imwrite(result, cells)
    record = tmp_path / "seg" / "well B2_unet_cells.json"  # as if the run had made them
    made = {**json.loads(record.read_text()), "labels_sha1": labels_digest(cells)}
    record.write_text(json.dumps(made))
    assert main(["export", str(result), "-o", str(tmp_path / "cli"), "--coco", "-q"]) == 0
    viewer = make_napari_viewer_proxy()
    viewer.open(tmp_path / "well B2.tif", plugin="napari-cytomask")
    viewer.open(result, plugin="napari-cytomask")
    panel = ExportPanel(viewer)
    for i in range(panel.layer_list.count()):
        panel.layer_list.item(i).setCheckState(Qt.CheckState.Checked)
    panel.coco_json.setChecked(True)
    panel.folder.setText(str(tmp_path / "dock"))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    (dock,) = (tmp_path / "dock").glob("*_provenance.json")
    ours, theirs = (json.loads(p.read_text()) for p in (dock, tmp_path / "cli" / dock.name))
    keys = ("source", "method", "model", "parameters", "channel_index", "channel_name")
    assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}
    assert ours["source"] == str(tmp_path / "well B2.tif") and ours["method"] == "unet"
    assert ours["channel_name"] == "phase" and ours["model"]["confidence"] is not None
    coco = [json.loads(p.read_text()) for p in (tmp_path / "dock").glob("*_coco.json")]
    assert [image["file_name"] for image in coco[0]["images"]] == ["well B2.tif"]
    objects = pd.read_csv(next((tmp_path / "dock").glob("*_objects.csv")))
    assert {"mean_phase", "mean_GFP"} <= set(objects.columns)


def test_another_programs_json_beside_labels_is_no_record(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """A labelme file named like the labels was taken for a segment record: the export
    lost the labels' source, or failed when the file was a list."""
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12], labels[16:28, 16:28] = 1, 2
    viewer = make_napari_viewer_proxy()
    for folder, other in (("x", {"version": "5.2.1", "shapes": []}), ("y", [{"id": 1}])):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "cells.tif", labels)
        (tmp_path / folder / "cells.json").write_text(json.dumps(other))
        viewer.open(tmp_path / folder / "cells.tif", plugin="napari-cytomask")
    panel = ExportPanel(viewer)
    for i in range(panel.layer_list.count()):
        panel.layer_list.item(i).setCheckState(Qt.CheckState.Checked)
    panel.folder.setText(str(tmp_path / "out"))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    sources = sorted(
        json.loads(p.read_text())["source"] for p in (tmp_path / "out").glob("*_provenance.json")
    )
    assert sources == [str(tmp_path / "x" / "cells.tif"), str(tmp_path / "y" / "cells.tif")]


def test_files_of_an_earlier_export_left_in_the_folder_are_said(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """Exported again with fewer formats, the cells' NumPy file of the earlier export stayed
    with the old cells; the command line said so, the dock did not."""
    ids = np.zeros((32, 32), np.uint16)
    ids[4:12, 4:12] = 1
    viewer = make_napari_viewer_proxy()
    cells = viewer.add_labels(ids, name="cells")
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path))
    panel.formats["npy"].setChecked(True)
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert (tmp_path / "cells.npy").exists()
    cells.data_setitem((np.array([20]), np.array([20])), 2)  # a new cell painted
    panel.formats["npy"].setChecked(False)
    monkeypatch.setattr(export_panel, "ask_yes_no", lambda *a: True)
    panel.export()
    qtbot.waitUntil(lambda: "replacing" in panel.status.text(), timeout=30_000)
    assert panel.status.text().endswith(
        f" Note: cells.npy in {tmp_path} is from an earlier export of other labels and was "
        "left as it is; the new provenance does not list it."
    )


def test_the_folder_starts_beside_the_data_until_one_is_chosen(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """The export went to the home folder, far from the scan it describes."""
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    viewer = make_napari_viewer_proxy()
    panel = ExportPanel(viewer)
    qtbot.addWidget(panel)
    assert panel.folder.text() == str(Path.home())  # nothing opened from a file yet

    def result_of(name: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "scan.tif").write_bytes(b"")
        record = {"role": RESULT_ROLE, "source": str(tmp_path / name / "scan.tif")}
        viewer.add_labels(np.eye(8, dtype=np.uint8), name=f"cells {name}",
                          metadata={METADATA_KEY: record})  # fmt: skip

    from napari_cytomask._sample_data import PACKAGE

    viewer.open_sample("napari-cytomask", "phase_contrast")  # a file in the package
    panel.layer_list.item(0).setCheckState(Qt.CheckState.Checked)  # its mask ticked too
    assert panel.folder.text() == str(Path.home())
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    assert PACKAGE.name == "napari_cytomask"
    saved = []
    panel.folder.textChanged.connect(saved.append)  # what the dock's settings remember
    result_of("a")
    assert panel.folder.text() == str(tmp_path / "a") and saved == []
    panel.folder.setText(str(tmp_path / "mine"))  # chosen: kept from then on
    result_of("b")
    viewer.layers.remove("cells a")
    assert panel.folder.text() == str(tmp_path / "mine")


def test_the_folder_starts_where_a_linked_scan_was_opened_from(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """For a scan opened through a link (me/well_A1.tif -> share/plate1/raw.tif), the dock
    suggested the folder the link points to; `cytomask segment` writes beside the link."""
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    (tmp_path / "share").mkdir()
    (tmp_path / "me").mkdir()
    (tmp_path / "share" / "raw.tif").write_bytes(b"")
    link = tmp_path / "me" / "well_A1.tif"
    link.symlink_to(tmp_path / "share" / "raw.tif")
    viewer = make_napari_viewer_proxy()
    panel = ExportPanel(viewer)
    qtbot.addWidget(panel)
    record = {"role": RESULT_ROLE, "source": str(link)}
    viewer.add_labels(np.eye(8, dtype=np.uint8), name="cells", metadata={METADATA_KEY: record})
    assert panel.folder.text() == str(tmp_path / "me")


def test_a_binary_mask_is_exported_by_its_separate_regions_and_said(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """A 0/1 mask of blobs (a threshold, as Fiji or ilastik save one) was exported from
    the dock as one cell: a count of 1, one row of objects, no word; `cytomask export`
    counted its blobs and said why."""
    from skimage.data import binary_blobs
    from skimage.measure import label

    mask = binary_blobs(128, 0.05, rng=1).astype(np.uint8)
    regions = label(mask, connectivity=1).max()
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(mask, name="thresholded")
    panel = ExportPanel(viewer)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert panel.status.text().endswith(
        f" Note: 'thresholded' holds one value (1) for every cell, a binary mask: its "
        f"{regions} separate regions are taken as the cells (cells that touch stay one)."
    )
    counts = pd.read_csv(tmp_path / "thresholded_counts.csv")
    assert regions > 1 and counts["cells"].tolist() == [regions]
    assert len(pd.read_csv(tmp_path / "thresholded_objects.csv")) == regions
    assert tifffile.imread(tmp_path / "thresholded.tif").max() == regions


def test_a_layer_png_cannot_hold_is_left_out_and_the_others_exported(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    viewer = make_napari_viewer_proxy()
    cells = np.zeros((20, 20), np.uint32)
    cells[2:8, 2:8], cells[10:18, 10:18] = 1, 2
    viewer.add_labels(cells, name="cells")
    viewer.add_labels(np.where(cells == 2, 70_000, cells), name="stitched cells")
    panel = ExportPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.formats["png"].setChecked(True)
    panel.folder.setText(str(tmp_path))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert "'stitched cells': stitched cells.png left out, its other files written" in (
        panel.status.text()
    )
    assert "PNG holds ids up to 65535" in panel.status.text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells.png", "cells.tif", "cells_counts.csv", "cells_objects.csv",
        "cells_provenance.json", "stitched cells.tif", "stitched cells_counts.csv",
        "stitched cells_objects.csv", "stitched cells_provenance.json",
    ]  # fmt: skip


def test_ids_fiji_rounds_are_shown_as_file_save_shows_them(
    make_napari_viewer_proxy, qtbot, notifications, tmp_path
):
    """The dock put the note that Fiji rounds ids over 16,777,216 in its status, where its
    advice was cut off below the lines the status shows, and napari showed nothing; File >
    Save shows the same note as a notification. The dock does too, its status left short.
    The way the note names, 'Renumber cells 1, 2, 3…', writes ids Fiji holds, and the
    layer keeps its own."""
    viewer = make_napari_viewer_proxy()
    cells = np.zeros((8, 8), np.uint32)
    cells[1:3, 1:3], cells[4:7, 4:7] = 2**24 + 1, 2**24 + 2
    layer = viewer.add_labels(cells.copy(), name="stitched")
    panel = ExportPanel(viewer)
    viewer.window.add_dock_widget(panel)
    panel.objects_csv.setChecked(False)
    panel.folder.setText(str(tmp_path / "as_they_are"))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    assert panel.status.text() == f"Wrote 2 files to {tmp_path / 'as_they_are'}."
    assert [n for n in notifications if "Fiji" in n] == [
        "stitched.tif holds ids up to 16777218: napari and Python read it exactly, but Fiji "
        "and ImageJ open it as 32-bit decimals, which round ids above 16,777,216 (two cells "
        "of nearby ids can become one); for Fiji, export the labels with 'Renumber cells 1, "
        "2, 3…' ticked (Export labels: step 5 of Segment cytoplasm, or File > IO Utilities)."
    ]
    notifications.clear()
    assert panel.renumber.text() == "Renumber cells 1, 2, 3…" and not panel.renumber.isChecked()
    panel.renumber.setChecked(True)
    panel.folder.setText(str(tmp_path / "for_fiji"))
    panel.export()
    qtbot.waitUntil(lambda: "Wrote" in panel.status.text(), timeout=30_000)
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "for_fiji" / "stitched.tif"),
        np.select([cells == 2**24 + 1, cells == 2**24 + 2], [1, 2], 0),
    )
    np.testing.assert_array_equal(layer.data, cells)
    assert not [n for n in notifications if "Fiji" in n]
