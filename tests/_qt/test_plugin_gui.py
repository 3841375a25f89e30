import numpy as np
import pytest
import tifffile
from napari.layers import Image, Labels

from napari_cytomask._qt.channel_roles import ChannelRolesWidget

pytestmark = pytest.mark.gui


def test_sample_data_opens_in_a_real_viewer(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    assert [type(layer) for layer in viewer.layers] == [Image, Image, Labels]
    assert viewer.layers["Mask (ground truth)"].data.max() > 40
    assert viewer.dims.axis_labels[0] == "P"


def test_channel_roles_dock_converts_a_channel(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.table.rowCount() == 3
    picker = widget.table.cellWidget(2, 2)
    assert picker.currentData() == "mask"
    picker.setCurrentIndex(picker.findData("image"))
    qtbot.waitUntil(lambda: isinstance(viewer.layers[2], Image))
    qtbot.waitUntil(lambda: widget.table.cellWidget(2, 2).currentData() == "image")
    assert viewer.layers[2].name == "Mask (ground truth)"


def test_the_channel_roles_dock_alone_leaves_room_to_read_the_names(
    make_napari_viewer_proxy, qtbot
):
    """Opened as a dock of its own, the table was so narrow that the role pickers left
    the channel and file names "Ph…st" and "us…le"."""
    from napari_cytomask._qt.channel_roles import NAME_WIDTH

    viewer = make_napari_viewer_proxy(show=True)
    viewer.open_sample("napari-cytomask", "phase_contrast")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Channel roles")
    qtbot.waitUntil(lambda: widget.table.isVisible(), timeout=5000)
    for column in (0, 1):
        assert widget.table.columnWidth(column) >= NAME_WIDTH


def test_a_role_picked_before_the_table_is_rebuilt_goes_to_the_layer_that_holds_the_channel(
    make_napari_viewer_proxy, qtbot, notifications
):
    """A second pick on a row whose layer the first had replaced (before the table was
    rebuilt), or a pick on a row of a layer closed meanwhile, gave the error
    "<Labels layer 'Mask (ground truth)' at 0x…> is not in list"."""
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    mask_row, image_row = widget.table.cellWidget(2, 2), widget.table.cellWidget(1, 2)
    mask_row.setCurrentIndex(mask_row.findData("image"))
    assert isinstance(viewer.layers[2], Image)
    mask_row.setCurrentIndex(mask_row.findData("mask"))  # the same row, not rebuilt yet
    assert isinstance(viewer.layers[2], Labels)
    assert viewer.layers[2].name == "Mask (ground truth)"
    viewer.layers.remove(viewer.layers[1])
    image_row.setCurrentIndex(image_row.findData("mask"))  # its layer is closed
    qtbot.waitUntil(lambda: widget.table.rowCount() == 2)
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    assert not notifications


def test_an_image_of_light_made_a_mask_is_said_not_to_look_like_ids(
    make_napari_viewer_proxy, qtbot, notifications
):
    """Step 1 made a phase-contrast image a mask of tens of thousands of "ids" without a
    word, and the metrics took it for the ground truth at once."""
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    image_row = widget.table.cellWidget(0, 2)
    name = viewer.layers[0].name
    image_row.setCurrentIndex(image_row.findData("mask"))
    assert isinstance(viewer.layers[name], Labels)
    assert notifications == [
        f"'{name}' does not look like cell ids: its pixels vary as an image's do. It is a "
        "mask now, which the metrics take as the ground truth; if it is an image, set its "
        "role back."
    ]
    # The mask channel made an image and a mask again: no word, it holds ids.
    notifications.clear()
    qtbot.waitUntil(lambda: widget.table.cellWidget(2, 2) is not None)
    mask_row = widget.table.cellWidget(2, 2)
    mask_row.setCurrentIndex(mask_row.findData("image"))
    qtbot.waitUntil(lambda: widget.table.cellWidget(2, 2).currentData() == "image")
    mask_row = widget.table.cellWidget(2, 2)
    mask_row.setCurrentIndex(mask_row.findData("mask"))
    assert notifications == []


def test_ids_stored_as_decimals_made_a_mask_are_not_said_to_be_an_image(
    make_napari_viewer_proxy, qtbot, tmp_path, notifications
):
    """Whole decimals (1.0, 2.0), which a mask takes, were said to vary as an image's."""
    rng = np.random.default_rng(0)
    ids = np.zeros((64, 64), np.float32)
    ids[4:30, 4:30], ids[36:60, 30:62] = 1.0, 2.0
    phase = rng.normal(1000, 50, (64, 64)).astype(np.float32)
    path = tmp_path / "decimal.tif"
    tifffile.imwrite(path, np.stack([phase, ids]), imagej=True, metadata={"axes": "CYX"})
    viewer = make_napari_viewer_proxy()
    viewer.open(str(path), plugin="napari-cytomask")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    row = next(
        r for r in range(widget.table.rowCount()) if widget.table.cellWidget(r, 0).text() == "C2"
    )
    picker = widget.table.cellWidget(row, 2)
    assert picker.currentData() != "mask"  # decimals: the reader took it for an image
    picker.setCurrentIndex(picker.findData("mask"))
    assert isinstance(viewer.layers["C2"], Labels) and notifications == []


def test_a_burst_of_channels_rebuilds_the_roles_table_once(
    make_napari_viewer_proxy, qtbot, monkeypatch
):
    """Opening many scans at once rebuilt the table once per channel (160 rebuilds, each
    of every row, for 40 scans of 4 channels); the file column drops the shared suffix."""
    import numpy as np

    rebuilt = []
    refresh = ChannelRolesWidget.refresh
    monkeypatch.setattr(
        ChannelRolesWidget, "refresh", lambda self: rebuilt.append(1) or refresh(self)
    )
    viewer = make_napari_viewer_proxy()
    widget = ChannelRolesWidget(viewer)
    rebuilt.clear()
    for i in range(20):
        viewer.add_image(
            np.zeros((8, 8), np.uint16), name=f"scan_{i:03d} BF",
            metadata={"cytomask": {"role": "image", "source": f"/data/scan_{i:03d}.ome.tif"}},
        )  # fmt: skip
    qtbot.waitUntil(lambda: widget.table.rowCount() == 20)
    qtbot.wait(50)
    assert len(rebuilt) == 1
    assert widget.table.cellWidget(19, 1).toolTip() == "/data/scan_019.ome.tif"
    assert widget.table.cellWidget(19, 1)._full == "scan_019"


def test_label_ids_opened_before_the_dock_are_shown_as_a_mask_too(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """Opened before the dock, instances_ids.png stayed an image: no ground truth for the
    metrics, and its mean id measured as an intensity in the export."""
    folder = shared_data / "usiigaci-phc" / "set5"
    viewer = make_napari_viewer_proxy()
    viewer.open([str(folder / "raw.tif"), str(folder / "instances_ids.png")], plugin="napari")
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: isinstance(viewer.layers["instances_ids"], Labels))
    assert isinstance(viewer.layers["raw"], Image)


def test_label_ids_that_napari_opens_as_an_image_are_shown_as_a_mask(
    make_napari_viewer_proxy, qtbot, shared_data, tmp_path
):
    """napari opens Usiigaci's instances_ids.png as an opaque image over the phase
    contrast: the plugin shows it as a mask; a phase image of integers stays an image."""
    import imageio.v3 as iio
    import numpy as np

    folder = shared_data / "usiigaci-phc" / "set5"
    viewer = make_napari_viewer_proxy()
    widget = ChannelRolesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.open(folder / "raw.tif", plugin="napari")  # another reader: an image of light
    viewer.open(folder / "instances_ids.png", plugin="napari")
    qtbot.waitUntil(lambda: isinstance(viewer.layers["instances_ids"], Labels))
    mask = viewer.layers["instances_ids"]
    assert viewer.layers.index(mask) == 1
    np.testing.assert_array_equal(mask.data, iio.imread(folder / "instances_ids.png"))
    assert mask.metadata["cytomask"]["role"] == "mask"
    assert isinstance(viewer.layers["raw"], Image)
    # Opened under another name, by its pixels alone.
    copy = tmp_path / "set5.png"
    copy.write_bytes((folder / "instances_ids.png").read_bytes())
    viewer.open(copy, plugin="napari")
    qtbot.waitUntil(lambda: isinstance(viewer.layers["set5"], Labels))
    qtbot.waitUntil(lambda: widget.table.rowCount() == 3)
    assert isinstance(viewer.layers["raw"], Image)
    # A few small cells that the pixel sample's patches miss are still found.
    sparse = np.zeros((1024, 1024), np.uint16)
    for k, (y, x) in enumerate([(20, 500), (1000, 20), (500, 1000), (300, 300), (700, 200)]):
        sparse[y - 8 : y + 8, x - 8 : x + 8] = k + 1
    iio.imwrite(tmp_path / "few.png", sparse)
    viewer.open(tmp_path / "few.png", plugin="napari")
    qtbot.waitUntil(lambda: isinstance(viewer.layers["few"], Labels))
    # A stack of a mask and a phase image (a scan's channels), opened by napari's reader:
    # one plane holding ids does not make the others ids.
    import tifffile

    stack = tmp_path / "scan.tif"
    tifffile.imwrite(
        stack,
        np.stack([mask.data[300:556, 300:556], viewer.layers["raw"].data[300:556, 300:556]] * 2),
    )
    viewer.open(stack, plugin="napari")
    qtbot.wait(100)
    assert isinstance(viewer.layers["scan"], Image)


def test_the_save_dialog_names_what_the_plugins_writer_keeps(make_napari_viewer_proxy, tmp_path):
    """napari's Save dialog lists its own label writer first; the plugin's entry says
    what it keeps, and choosing it saves the pixel size."""
    import numpy as np
    import tifffile
    from napari.plugins import _npe2

    viewer = make_napari_viewer_proxy()
    layer = viewer.add_labels(np.arange(64, dtype=np.uint16).reshape(8, 8), scale=(0.5, 0.5))
    layer.units = ("µm", "µm")
    filters, writers = _npe2.file_extensions_string_for_layers([layer])
    entries = filters.split(";;")
    (ours,) = [i for i, e in enumerate(entries) if e.startswith("Cytomask")]
    assert entries[ours].startswith("Cytomask labels, keeping the pixel size in TIFF (*.tif")
    path = str(tmp_path / "cells.tif")
    assert viewer.layers.save(path, selected=True, _writer=writers[ours]) == [path]
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["unit"] == "micron"
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert numerator / denominator == pytest.approx(2.0)  # pixels per µm
    # The dialog has asked before replacing a file: the writer replaces it.
    layer.data = layer.data[::-1].copy()
    assert viewer.layers.save(path, selected=True, _writer=writers[ours]) == [path]
    np.testing.assert_array_equal(tifffile.imread(path), layer.data)


def test_the_save_dialog_shows_that_fiji_would_round_the_ids(
    make_napari_viewer_proxy, notifications, monkeypatch, tmp_path
):
    """File > Save Selected Layers of labels whose ids Fiji rounds (over 16,777,216) wrote
    them without a word: the plugin's writer warned, and napari's Save dialog keeps a
    writer's warnings only to explain a failed save. The note is a notification now."""
    import numpy as np
    import tifffile
    from napari.plugins import _npe2
    from qtpy.QtWidgets import QFileDialog

    viewer = make_napari_viewer_proxy()
    cells = np.zeros((8, 8), np.uint32)
    cells[1:3, 1:3], cells[4:7, 4:7] = 2**24 + 1, 2**24 + 2
    layer = viewer.add_labels(cells, name="stitched")
    filters, _ = _npe2.file_extensions_string_for_layers([layer])
    (ours,) = [e for e in filters.split(";;") if e.startswith("Cytomask")]
    path = tmp_path / "stitched.tif"
    # The person types the name and picks the plugin's entry in the dialog.
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ours))
    viewer.window._qt_viewer._save_layers_dialog(selected=True)
    np.testing.assert_array_equal(tifffile.imread(path), cells)
    assert [n for n in notifications if "Fiji" in n] == [
        "stitched.tif holds ids up to 16777218: napari and Python read it exactly, but Fiji "
        "and ImageJ open it as 32-bit decimals, which round ids above 16,777,216 (two cells "
        "of nearby ids can become one); for Fiji, export the labels with 'Renumber cells 1, "
        "2, 3…' ticked (Export labels: step 5 of Segment cytoplasm, or File > IO Utilities)."
    ]


def _png_of_light(path):
    import imageio.v3 as iio
    import numpy as np

    iio.imwrite(path, np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    return path


def test_a_scan_without_a_transmitted_light_channel_is_said_once(
    make_napari_viewer_proxy, qtbot, shared_data, monkeypatch, tmp_path
):
    """Three fluorescence channels and none the input: step 2 stayed on the scan before
    without a word, and Segment would have segmented that one."""
    from napari_cytomask._qt import channel_roles

    told = []
    monkeypatch.setattr(channel_roles, "show_info", told.append)
    viewer = make_napari_viewer_proxy()
    widget = ChannelRolesWidget(viewer)
    viewer.open_sample("napari-cytomask", "tilescan")  # it has a brightfield input
    scan = shared_data / "tiff-formats" / "imagej-composites" / "IXMtest_A02_s9.tif"
    viewer.open(scan, plugin="napari-cytomask")
    qtbot.waitUntil(lambda: widget.table.rowCount() == 6)
    assert told == [
        "No channel of IXMtest_A02_s9 looks like transmitted light, so none is marked as the "
        "input to segment, and segmenting takes the image its Segment step shows as Input "
        "image: if another is the one to segment, make it the input in Channel roles (step "
        "1 of Segment cytoplasm, or Layers > Data)."
    ]
    viewer.layers.move(0, 2)  # later refreshes say it no more
    # Nor for an image napari's own reader opened (it has no channels to choose from).
    viewer.open(_png_of_light(tmp_path / "phase_bf.png"), plugin="napari")
    qtbot.wait(100)
    assert "phase_bf" in viewer.layers and len(told) == 1
    # Scans open before the widget was made are not announced by it.
    later = ChannelRolesWidget(viewer)
    qtbot.wait(100)
    assert len(told) == 1
    # The notification goes; below the table the scan stays named until it has an input.
    for shown in (widget, later):
        assert shown.status.text() == (
            "No input chosen in IXMtest_A02_s9: pick the channel to segment as 'input "
            "(segment this)'; until then segmenting takes the image its Segment step shows "
            "as Input image."
        )
    picker = next(
        widget.table.cellWidget(row, 2)
        for row in range(widget.table.rowCount())
        if widget.table.cellWidget(row, 1).toolTip() == str(scan)
    )
    picker.setCurrentIndex(picker.findData("input"))
    qtbot.waitUntil(lambda: widget.status.text() == "")
    # The other widget follows the role picked in this one: its line went stale.
    qtbot.waitUntil(lambda: later.status.text() == "")
    rows = range(later.table.rowCount())
    assert [later.table.cellWidget(r, 2).currentData() for r in rows] == [
        widget.table.cellWidget(r, 2).currentData() for r in rows
    ]


def test_only_a_channels_new_role_rebuilds_the_roles_table(
    make_napari_viewer_proxy, qtbot, monkeypatch
):
    """Results change their metadata at every live preview: each rebuilt the whole table,
    which takes about a second for a scan of 160 channels."""
    import numpy as np

    from napari_cytomask.roles import set_role

    rebuilt = []
    refresh = ChannelRolesWidget.refresh
    monkeypatch.setattr(
        ChannelRolesWidget, "refresh", lambda self: rebuilt.append(1) or refresh(self)
    )
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    made = {"cytomask": {"role": "result", "method": "watershed_split"}}
    result = viewer.add_labels(np.zeros((8, 8), np.uint8), name="cells", metadata=made)
    widget = ChannelRolesWidget(viewer)
    qtbot.wait(50)
    rebuilt.clear()
    for i in range(5):
        result.metadata = {"cytomask": {**made["cytomask"], "run": i}}
    qtbot.wait(50)
    assert rebuilt == []
    set_role(viewer.layers, viewer.layers["GFP"], "input")  # from a script
    qtbot.waitUntil(lambda: len(rebuilt) == 1)
    rows = {widget.table.cellWidget(r, 0)._full: widget.table.cellWidget(r, 2).currentData()
            for r in range(widget.table.rowCount())}  # fmt: skip
    assert rows["GFP"] == "input" and rows["Brightfield"] == "image"


def test_four_of_the_plugins_docks_fit_an_800_px_screen(make_napari_viewer_proxy):
    """With the main dock, metrics, export and channel roles open, the window's least
    height was 877 px: its bottom went past a 1280 × 800 screen."""
    viewer = make_napari_viewer_proxy()
    window = viewer.window._qt_window
    for name in ("Segment cytoplasm", "Segmentation metrics", "Export labels", "Channel roles"):
        viewer.window.add_plugin_dock_widget("napari-cytomask", name)
    assert window.minimumSizeHint().height() <= 800


def test_docks_that_would_not_get_their_height_open_as_tabs(make_napari_viewer_proxy, qtbot):
    """Stacked at 1280 × 800, the four docks each got their least height: the metrics
    table 0 px, the export list half a row, and no splitter could give one more room."""
    viewer = make_napari_viewer_proxy(show=True)
    window = viewer.window._qt_window
    docks = {}
    for name in ("Segment cytoplasm", "Segmentation metrics", "Export labels", "Channel roles"):
        docks[name], _ = viewer.window.add_plugin_dock_widget("napari-cytomask", name)
        qtbot.wait(50)
    assert window.minimumSizeHint().height() <= 800
    shown = [d for d in docks.values() if not d.visibleRegion().isEmpty()]
    # The latest is on top, whole; the others are a click on their tab away.
    assert docks["Channel roles"] in shown and len(shown) < 4
    metrics = docks["Segmentation metrics"]
    if metrics not in shown:
        metrics.raise_()
    # Laid out when Qt gets round to it: on a busy machine later than 50 ms.
    table = metrics.widget().table
    qtbot.waitUntil(lambda: table.visibleRegion().boundingRect().height() > 100, timeout=5000)


def test_naparis_own_docks_are_not_tabbed_away(make_napari_viewer, qtbot):
    """Docked on the left, the main dock took napari's layer list behind a tab."""
    from napari_cytomask._qt.cytomask_dock import CytomaskDock

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    from qtpy.QtWidgets import QDockWidget

    viewer.window.add_dock_widget(CytomaskDock(viewer), area="left")
    qtbot.wait(300)
    docks = {dock.windowTitle(): dock for dock in window.findChildren(QDockWidget)}
    for own in ("layer list", "layer controls"):
        assert window.tabifiedDockWidgets(docks[own]) == []
        assert not docks[own].visibleRegion().isEmpty()


@pytest.mark.parametrize(
    "name",
    ["Segment cytoplasm (U-Net)", "Train a U-Net", "SAM2 automatic masks",
     "Segmentation metrics", "Export labels", "Segment cytoplasm"],
)  # fmt: skip
def test_a_dock_opened_alone_shows_its_settings_whole(make_napari_viewer, qtbot, name):
    """Opened from the Plugins menu at 1280 × 800, napari made the docks about 300 px wide:
    the value beside each SAM2 slider, the U-Net's resample box and the metrics' table
    were cut off on the right, with no scroll bar to reach them."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    viewer.open_sample("napari-cytomask", "tilescan")  # layers to choose from
    dock, widget = viewer.window.add_plugin_dock_widget("napari-cytomask", name)
    more = getattr(widget, "more", None)
    if more is not None:  # SAM2's further settings, the widest
        more.setChecked(True)
    qtbot.wait(100)
    # However narrow it is made (napari's width for a dock depends on those before it).
    viewer.window._qt_window.resizeDocks([dock], [0], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    areas = [a for a in widget.findChildren(QScrollArea) if a.isVisible() and a.widget()]
    assert areas
    for area in areas:
        need, room = area.widget().minimumSizeHint().width(), area.viewport().width()
        assert need <= room, (area.widget(), need, room)


def test_every_dock_of_its_own_gives_its_settings_the_docks_height(make_napari_viewer_proxy, qtbot):
    from qtpy.QtCore import QPoint

    from napari_cytomask._qt._live import StepControls

    """Train a U-Net kept its settings in a box of their least height, scrolling, with
    300 px of empty dock below them: napari fills a dock that asks for no height with a
    stretch."""
    viewer = make_napari_viewer_proxy(show=True)
    viewer.window._qt_window.resize(1280, 800)
    names = ("Segment cytoplasm", "Segment cytoplasm (U-Net)", "SAM2 automatic masks",
             "Separate touching cells", "Segmentation metrics", "Export labels",
             "Train a U-Net", "Channel roles")  # fmt: skip
    for name in names:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-cytomask", name)
        qtbot.wait(50)
        shown = [c for c in widget.findChildren(StepControls) if c.isVisible()]
        # The run button, progress and status sit at the foot of the dock (above a footer
        # at most), under settings that take the rest of its height.
        for controls in shown:
            foot = controls.mapTo(dock, QPoint(0, controls.height())).y()
            assert foot >= dock.height() - 60, (name, foot, dock.height())
        assert shown or name == "Channel roles"
        viewer.window.remove_dock_widget(dock)


def test_a_long_status_scrolls_instead_of_pushing_the_results_out_of_sight(
    make_napari_viewer_proxy, qtbot
):
    """At napari's default window size, the metrics' six-line message for a stack made in
    one position left its table of results 150 px: the Plot tab without its x-axis. A
    status takes its text's height up to four and a half lines, then scrolls."""
    from napari_cytomask._qt._live import STATUS_LINES, StepControls

    controls = StepControls("Run", "Run the step.")
    qtbot.addWidget(controls)
    controls.resize(400, 300)
    controls.show()
    line = controls.status.fontMetrics().lineSpacing()
    heights = {}
    for lines in (0, 1, 12):
        controls.status.setText(" ".join(["Compared in position 1 only."] * 4 * lines))
        qtbot.wait(50)
        heights[lines] = controls.status.area.height()
    frame = 2 * controls.status.area.frameWidth()
    assert heights[0] == line + frame <= heights[1] <= 3 * line + frame  # as its text
    assert heights[12] == round((STATUS_LINES + 0.5) * line) + frame
    assert controls.status.area.verticalScrollBar().maximum() > 0  # the rest scrolls into view
    assert controls.status.height() > 8 * line  # all of it is there, and selectable


def test_a_result_saved_with_the_plugins_writer_opens_again_as_the_result_of_its_scan(
    make_napari_viewer_proxy, tmp_path
):
    """A result of one position of two saved with File > Save Selected Layers reopened as
    a mask of a file of its own: scored in both positions, said to come from another file.
    The writer keeps its provenance beside it, as the export does."""
    import numpy as np
    from napari.plugins import _npe2

    from napari_cytomask.io.layers import (
        edited_by_hand,
        frame_record,
        is_result,
        layer_info,
        result_metadata,
    )

    viewer = make_napari_viewer_proxy()
    record = {"source": "/data/scan.tif", "channel_index": 0, "channel_name": "Phase",
              "role": "input"}  # fmt: skip
    image = viewer.add_image(np.ones((2, 16, 16), np.uint16), name="Phase",
                             metadata={"cytomask": record})  # fmt: skip
    cells = np.zeros((2, 16, 16), np.uint16)
    cells[1, 2:8, 2:8] = 1
    made = result_metadata(image, method="unet", parameters={"tta": False})["cytomask"]
    made = frame_record(None, made, (1,))
    layer = viewer.add_labels(cells, name="Phase U-Net cells", metadata={"cytomask": made})
    filters, writers = _npe2.file_extensions_string_for_layers([layer])
    (ours,) = [i for i, e in enumerate(filters.split(";;")) if e.startswith("Cytomask")]
    path = str(tmp_path / "saved cells.tif")
    viewer.layers.selection = {layer}
    saved = viewer.layers.save(path, selected=True, _writer=writers[ours])
    assert saved == [path, str(tmp_path / "saved cells_provenance.json")]

    viewer.open(path, plugin="napari-cytomask")
    reopened = viewer.layers["saved cells"]
    assert is_result(reopened)
    info = layer_info(reopened)
    assert (info["source"], info["frames_made"]) == ("/data/scan.tif", ["1"])
    assert info["edited_by_hand"] is False
    # Painted into after it was opened: the user's.
    reopened.data[0, :2, :2] = 3
    assert edited_by_hand(reopened)


def test_settings_refused_while_a_live_run_works_drop_that_run(qtbot):
    """A live run made with the settings before a refused edit landed over the refusal's
    message once it ended (seen in Separate touching cells and SAM2)."""
    import threading

    from napari_cytomask._qt._live import Runner, StepControls

    controls = StepControls("Run", "Run the step.")
    qtbot.addWidget(controls)
    results = []
    runner = Runner(results.append, controls, delay_ms=10)
    started, release = threading.Event(), threading.Event()

    def work():
        started.set()
        release.wait(10)
        yield 1, 1
        return "cells of the settings before"

    runner.request(work)
    qtbot.waitUntil(started.is_set, timeout=5000)
    runner.refuse(ValueError("Maximum area is below Minimum area."), notify=False)
    release.set()
    qtbot.wait(300)  # the worker's end reaches the GUI thread
    assert results == [] and not runner.busy
    assert controls.status.text() == "Maximum area is below Minimum area."
    assert not controls.cancel_button.isEnabled()  # nothing runs


def test_a_cancelled_run_lets_go_of_what_it_holds(make_napari_viewer_proxy, qtbot):
    """A run stopped at a report stayed paused there for as long as napari ran, holding
    its network and optimiser (on the GPU) and its crop workers: napari keeps every
    worker it made. It is now closed, as a run that ends is."""
    import threading
    import time

    from napari_cytomask._qt._live import Runner, StepControls

    make_napari_viewer_proxy()  # whose window keeps the workers made while it is open
    controls = StepControls("Run", "Run the step.")
    qtbot.addWidget(controls)
    runner = Runner(lambda _: None, controls, delay_ms=10)
    reported, let_go = threading.Event(), []

    def work():
        try:
            for step in range(1000):
                reported.set()
                yield step, 1000
                time.sleep(0.01)
        finally:
            let_go.append(threading.current_thread() is threading.main_thread())

    runner.run_now(work)
    qtbot.waitUntil(reported.is_set, timeout=5000)
    runner.cancel()
    qtbot.waitUntil(lambda: bool(let_go), timeout=5000)
    assert let_go == [True]  # closed in napari's thread, once the worker had stopped

    def cleaning_up_fails():
        try:
            yield from work()
        finally:
            raise OSError("the crop workers were gone already")

    reported.clear()
    runner.run_now(cleaning_up_fails)
    qtbot.waitUntil(reported.is_set, timeout=5000)
    runner.cancel()  # an error in Qt's callback would fail the test (pytest-qt)
    qtbot.waitUntil(lambda: len(let_go) == 2, timeout=5000)
    qtbot.wait(100)
    assert controls.status.text() == "Cancelled."
