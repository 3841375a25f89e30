"""The Segment cytoplasm dock in a real viewer: settings by name, layout, flow, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tifffile
from napari.layers import Labels
from qtpy.QtCore import QSettings, Qt
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QScrollBar,
    QShortcut,
    QTabBar,
    QTableWidget,
    QWidget,
)
from skimage import io as skio

from napari_cytomask._qt import cytomask_dock, export_panel
from napari_cytomask._qt._settings import GROUP, set_value, value_of
from napari_cytomask._qt.cytomask_dock import STEPS, CytomaskDock
from napari_cytomask._qt.watershed_widget import WatershedWidget
from napari_cytomask.models.catalog import STARTER
from napari_cytomask.models.checkpoint import DIR_ENV
from napari_cytomask.roles import channel_layers, role_of

pytestmark = pytest.mark.gui

WINDOW_SIZES = ((1280, 800), (1090, 630))  # the README's size, napari's default on a laptop


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "dock.ini"), QSettings.Format.IniFormat)


@pytest.fixture(autouse=True)
def model_folder(tmp_path, monkeypatch):
    """An empty model folder: tests never see the user's own checkpoints."""
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture
def real_scan(shared_data):
    """A real phase-contrast image and its hand-drawn cells (Usiigaci set 11)."""
    folder = shared_data / "usiigaci-phc" / "set11"
    return tifffile.imread(folder / "raw.tif"), skio.imread(folder / "instances_ids.png")


def add_real_scan(viewer, real_scan, name="set11"):
    """The real image and mask as the reader opens a scan's channels."""
    raw, mask = real_scan
    source = f"/data/{name}.tif"
    phase = viewer.add_image(
        raw, name=f"{name} phase", metadata={"cytomask": {"role": "input", "source": source}}
    )
    truth = viewer.add_labels(
        mask, name=f"{name} mask", metadata={"cytomask": {"role": "mask", "source": source}}
    )
    return phase, truth


def process_events(n: int = 20) -> None:
    for _ in range(n):
        QApplication.processEvents()


def _another_value(control, i: int):
    """A value other than the control's current one, different for every control."""
    if isinstance(control, QCheckBox):
        return not control.isChecked()
    if isinstance(control, QComboBox):
        return control.itemText((control.currentIndex() + 1) % control.count())
    if isinstance(control, QLineEdit):
        return f"/tmp/value-{i}"
    if isinstance(control.value(), str):  # the model picker: the one model it lists
        return control.value()
    low, high = control.minimum(), control.maximum()
    fraction = (0.13 + 0.071 * i) % 0.8 + 0.1
    value = low + (min(high, low + 1000) - low) * fraction
    return round(value) if isinstance(control.value(), int) else round(value, 2)


def test_settings_come_back_by_name_with_other_layers_and_reset(
    make_napari_viewer_proxy, qtbot, settings, real_scan, monkeypatch
):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock)
    controls = dock.settings.controls()
    defaults = {key: value_of(control) for key, control in controls.items()}
    assert defaults["unet/tta"] is True  # flip averaging is on unless the user turns it off
    assert {"watershed/min_area", "watershed/max_area", "watershed/marker_erosion",
            "sam2/pred_iou_thresh", "unet/interior_threshold", "train/epochs",
            "metrics/match_threshold", "export/folder", "dock/method"} <= set(controls)  # fmt: skip
    # Layer choices are not settings.
    layer_pickers = {dock.unet.input, dock.sam2.layer, dock.watershed.input,
                     dock.metrics.prediction_combo, dock.metrics.ground_truth_combo}  # fmt: skip
    assert not layer_pickers & set(controls.values())
    # Nor is training from layers or folders: a remembered 'Folders' trained on another
    # session's files while the user's own layers were open (the patterns are kept).
    assert "train/source" not in controls and "train/image_pattern" in controls

    # Every remembered control gets a value of its own (combos that are lists of
    # one item, such as an empty model list, keep theirs).
    for i, control in enumerate(controls.values()):
        set_value(control, _another_value(control, i))
    dock.save_settings()
    saved = {key: value_of(control) for key, control in controls.items()}
    changed = [key for key in controls if saved[key] != defaults[key]]
    assert len(changed) >= len(controls) - 3, set(controls) - set(changed)

    # A new session with other layers, in another order: every value in its own control.
    viewer.layers.clear()
    add_real_scan(viewer, real_scan)
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="painted")
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    viewer.window.add_dock_widget(again)
    restored = {key: value_of(control) for key, control in again.settings.controls().items()}
    assert restored == saved
    # Restoring the values is not a change by the user: nothing starts on opening.
    assert not again.watershed.runner.busy
    # The split step's input is an open layer, or none: a scan's channels are not taken.
    assert again.watershed.input.currentText() in {"", *(layer.name for layer in viewer.layers)}

    # Reset to defaults asks first, naming what it would forget; No keeps every value.
    asked = []
    monkeypatch.setattr(cytomask_dock, "ask_yes_no", lambda *a: asked.append(a) or False)
    again.reset_button.click()
    assert {key: value_of(c) for key, c in again.settings.controls().items()} == saved
    ((_, title, question, details),) = asked
    assert question.startswith(f"Put {len(changed)} setting(s) back to their defaults?")
    for name in ("Flip test-time augmentation", "Minimum cell size", "Minimum predicted IoU"):
        assert name in details  # as each is labelled (SAM2's sliders were "pred iou thresh")
    # Yes: every control shows its default and nothing stays stored.
    monkeypatch.setattr(cytomask_dock, "ask_yes_no", lambda *a: asked.append(a) or True)
    again.reset_button.click()
    assert {key: value_of(c) for key, c in again.settings.controls().items()} == defaults
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    assert store.allKeys() == []
    # With nothing to forget, nothing is asked.
    again.reset_button.click()
    assert len(asked) == 2


def test_edits_are_stored_by_parameter_name(
    make_napari_viewer_proxy, qtbot, settings, unet_checkpoint
):
    viewer = make_napari_viewer_proxy()
    dock = CytomaskDock(viewer, settings=settings)
    elsewhere = unet_checkpoint(64)  # a model opened from outside the model folder
    dock.unet.checkpoint.set_model(elsewhere)
    dock.watershed.min_area.setValue(55)
    dock.watershed.max_area.setValue(900)
    dock.sam2.set_values(pred_iou_thresh=0.61, stability_score_thresh=0.77)

    def stored(key):
        store = QSettings(settings.fileName(), settings.format())
        store.beginGroup(GROUP)
        return store.value(key)

    # Saved by themselves shortly after the last edit.
    qtbot.waitUntil(lambda: stored("sam2/stability_score_thresh") is not None, timeout=5_000)
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    assert int(store.value("watershed/min_area")) == 55
    assert int(store.value("watershed/max_area")) == 900
    assert float(store.value("sam2/pred_iou_thresh")) == pytest.approx(0.61)
    assert float(store.value("sam2/stability_score_thresh")) == pytest.approx(0.77)
    assert store.value("unet/model") == str(elsewhere)
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert again.unet.checkpoint.key() == str(elsewhere)


def test_unreadable_remembered_values_keep_their_defaults_and_are_said(
    make_napari_viewer, qtbot, settings, notifications
):
    """A settings file edited by hand, or written by another version or on another machine,
    must not stop the dock from opening: the values it cannot show keep their defaults,
    said once the dock is on screen (said before napari docks it, the note sat beyond the
    narrowed canvas)."""
    viewer = make_napari_viewer(show=True)
    defaults = CytomaskDock(viewer, settings=settings).settings.defaults
    edited = QSettings(settings.fileName(), settings.format())
    edited.beginGroup(GROUP)
    bad = {"unet/tile_size": "abc", "unet/overlap": "1e400", "train/epochs": [1, 2],
           "sam2/pred_iou_thresh": "nan", "watershed/min_area": "",
           # A choice renamed since (the guided method's old title), and a GPU not here:
           # the drop-downs kept their defaults without a word.
           "dock/method": "SAM2 guided by the U-Net foreground",
           "unet/device": "cuda:3",
           # Out of range (a hand-edited file, a range narrowed since): brought into it
           # without a word, 5000 points per side ran at the slider's 128.
           "unet/batch_size": "99999999999999999999999", "sam2/points_per_side": "5000",
           "metrics/match_threshold": "1.5",
           # A model name too long for a file name: the dock did not open (OSError).
           "unet/model": "m" * 300}  # fmt: skip
    for key, value in bad.items():
        edited.setValue(key, value)
    edited.endGroup()
    edited.sync()
    dock = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    controls = dock.settings.controls()
    assert {key: value_of(controls[key]) for key in bad} == {key: defaults[key] for key in bad}
    assert not [n for n in notifications if "could not be read" in n]
    viewer.window.add_dock_widget(dock)
    qtbot.waitUntil(lambda: any("could not be read" in n for n in notifications), timeout=5000)
    (said,) = [n for n in notifications if "could not be read" in n]
    assert settings.fileName() in said
    # Named as the dock shows them, where they are found, not by their keys.
    for named in ("2 Segment (U-Net) > Tile size ('abc')", "2 Segment > Method ('SAM2 guided",
                  "4 Check > Match at IoU ('1.5')", "2 Segment (U-Net) > Device ('cuda",
                  "2 Segment > Train a model > Epochs ([1, 2])", "3 Split > Minimum area (px) ('')",
                  "2 Segment (SAM2) > Points per side ('5000')",
                  "2 Segment (SAM2) > Minimum predicted IoU ('nan')",
                  "2 Segment (U-Net) > Tiles per batch ('99999999999999999999999')",
                  "2 Segment (U-Net) > Model ('mmmm"):  # fmt: skip
        assert named in said
    assert not [key for key in bad if key in said]
    # Dropped from the file: the next session opens without the warning.
    notifications.clear()
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    viewer.window.add_dock_widget(again, name="again")
    qtbot.wait(200)
    assert not [n for n in notifications if "could not be read" in n]


def test_a_settings_file_that_cannot_be_read_is_said_and_written_anew(
    make_napari_viewer_proxy, tmp_path, notifications
):
    """A damaged settings file (binary junk) opened the dock with its defaults without a
    word; the first change then warned that the settings could not be saved to a
    read-only folder, though the file was written with it."""
    # Not opened before in this process: Qt shares what it read of a file between stores.
    path = tmp_path / "damaged.ini"
    path.write_bytes(b"\x00\x01garbage[[[\n=\xff\xfe\n")
    viewer = make_napari_viewer_proxy()
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    dock = CytomaskDock(viewer, settings=settings)
    assert "could not be read in full (it is damaged, or not a settings" in dock._restore_note
    dock.unet.overlap.setValue(123)
    dock.save_settings()
    assert not [n for n in notifications if "could not be saved" in n]
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert again.unet.overlap.value() == 123 and again._restore_note is None


@pytest.mark.parametrize("method", ["unet", "sam2", "sam2_guided"])
def test_a_new_dock_shows_the_panels_of_the_remembered_method_only(
    make_napari_viewer_proxy, settings, method
):
    """A fresh dock showed SAM2's panel under the U-Net's, with a second run button."""
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    store.setValue("dock/method", method)
    store.endGroup()
    store.sync()
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    assert dock.method.currentData() == method
    assert dock.unet.isVisibleTo(dock) == (method != "sam2")
    assert dock.sam2.isVisibleTo(dock) == (method != "unet")


def test_numbers_take_a_decimal_point_in_a_decimal_comma_locale(
    make_napari_viewer_proxy, qtbot, settings, notifications
):
    """In German, typing into a SAM2 threshold box raised "could not convert string to
    float: '0,85'", and the U-Net's boxes wrote 0,50 beside SAM2's 0.80."""
    from qtpy.QtCore import QLocale
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QLineEdit

    before = QLocale()
    QLocale.setDefault(QLocale(QLocale.Language.German, QLocale.Country.Germany))
    try:
        dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    finally:
        QLocale.setDefault(before)
    qtbot.addWidget(dock)
    assert dock.unet.interior_threshold.text() == "0.500"
    # A typed comma is the decimal point it means, in SAM2's slider boxes and spin boxes.
    for typed, value in (("0.85", 0.85), ("0,75", 0.75)):
        box = dock.sam2.sliders["pred_iou_thresh"].findChild(QLineEdit)
        box.selectAll()
        QTest.keyClicks(box, typed)
        QTest.keyClick(box, Qt.Key.Key_Return)
        assert dock.sam2.sliders["pred_iou_thresh"].value() == pytest.approx(value)
    for spin in (dock.unet.interior_threshold, dock.metrics.threshold_spin):
        spin.lineEdit().selectAll()
        QTest.keyClicks(spin, "0,65")
        QTest.keyClick(spin, Qt.Key.Key_Return)
        assert spin.value() == pytest.approx(0.65) and spin.text().rstrip("0") == "0.65"
    # A whole number box stops at the comma: Qt took it for a thousands separator and
    # made a typed 12,5 into 125.
    spin = dock.unet.min_size
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin, "12,5")
    QTest.keyClick(spin, Qt.Key.Key_Return)
    assert spin.value() == 12
    assert not notifications


def test_two_docks_keep_each_others_changes(make_napari_viewer_proxy, settings):
    viewer = make_napari_viewer_proxy()
    first = CytomaskDock(viewer, settings=settings)
    second = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    first.unet.overlap.setValue(100)
    first.save_settings()
    second.unet.batch_size.setValue(7)
    second.save_settings()
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert (again.unet.overlap.value(), again.unet.batch_size.value()) == (100, 7)
    # The latest edit is stored: the second dock's 50 was not written again after the
    # first dock's 70, as it equalled what the second had saved before.
    second.unet.min_size.setValue(50)
    second.save_settings()
    first.unet.min_size.setValue(70)
    first.save_settings()
    second.unet.min_size.setValue(49)
    second.unet.min_size.setValue(50)
    second.save_settings()
    last = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert last.unet.min_size.value() == 50


def test_a_checkpoint_chosen_with_open_is_remembered(
    make_napari_viewer_proxy, qtbot, settings, tmp_path, sam2_weights_of
):
    """A file dialog fills the path in without the edit signal of typing: only a later
    change of another setting saved it, and the next session showed an empty path."""
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    chosen = sam2_weights_of("facebook/sam2.1-hiera-tiny", tmp_path / "my_sam2_finetuned.pt")
    dock.sam2.use_checkpoint(chosen)  # what Open… does with the dialog's answer
    dock.unet.trainer.init_path.setText(str(tmp_path / "mine.safetensors"))  # Start from: Open…
    store = QSettings(settings.fileName(), settings.format())

    def stored(key):
        store.sync()
        return store.value(f"{GROUP}/{key}")

    qtbot.waitUntil(lambda: stored("sam2/checkpoint") == chosen, timeout=5000)
    assert stored("train/init_from") == str(tmp_path / "mine.safetensors")


def test_settings_that_cannot_be_saved_are_said_once(
    make_napari_viewer_proxy, tmp_path, notifications
):
    blocked = tmp_path / "dock.ini"
    blocked.mkdir()  # a folder where the settings file should be: as a read-only disk
    store = QSettings(str(blocked), QSettings.Format.IniFormat)
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=store)
    for value in (100, 90):
        dock.unet.overlap.setValue(value)
        dock.save_settings()
    (said,) = [n for n in notifications if "could not be saved" in n]
    assert str(blocked) in said and "apply until napari closes" in said


@pytest.mark.parametrize("size", WINDOW_SIZES)
def test_every_step_shows_its_action_progress_and_status_without_scrolling(
    make_napari_viewer, qtbot, settings, real_scan, size
):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*size)
    _, truth = add_real_scan(viewer, real_scan)
    viewer.add_labels(truth.data.copy(), name="set11 cells")  # a prediction for the metrics
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    views = [(0, None, None)]
    views += [(1, "U-Net", dock.unet.controls), (1, "U-Net", dock.unet.trainer.controls)]
    views += [(1, "SAM2", dock.sam2.controls), (2, None, dock.watershed.controls)]
    views += [(3, None, dock.metrics.controls), (4, None, dock.export.controls)]
    for step, method, controls in views:
        dock.steps.setCurrentIndex(step)
        if method:
            dock.method.setCurrentText(method)
        if controls is dock.unet.trainer.controls:
            dock.unet.tabs.setCurrentIndex(1)
        if controls is None:
            continue
        controls.status.setText("A status message long enough to need two lines in a dock.")
        process_events()
        for widget in (controls.run_button, controls.progress, controls.status):
            seen = widget.visibleRegion().boundingRect()
            assert widget.isVisible(), (step, method, widget)
            assert (seen.width(), seen.height()) == (widget.width(), widget.height()), (
                STEPS[step][0],
                method,
                type(widget).__name__,
                seen,
                widget.size(),
            )
        # No field runs under a scroll bar: the settings fit the width they scroll in.
        for scroll in dock.findChildren(QScrollArea):
            if scroll.isVisible():
                assert scroll.widget().width() <= scroll.viewport().width(), (step, method)
                content = scroll.widget().minimumSizeHint().width()
                assert content <= scroll.viewport().width(), (step, method, content)
        assert dock.width() <= size[0] // 2
    # The metrics table shows its numbers whole.
    dock.steps.setCurrentIndex(3)
    process_events(50)
    qtbot.waitUntil(lambda: dock.metrics.summary_table.item(0, 0) is not None, timeout=30_000)
    for table in (dock.metrics.table, dock.metrics.summary_table):
        table.parentWidget().parentWidget().setCurrentWidget(table)  # its tab
        process_events()
        assert table.horizontalScrollBar().maximum() == 0  # no column hidden to the side
        for column in range(table.columnCount()):
            for text in (table.item(3, column).text(), table.horizontalHeaderItem(column).text()):
                width = table.fontMetrics().horizontalAdvance(text)
                assert width < table.columnWidth(column), (text, table.columnWidth(column))


def test_every_control_has_a_tooltip_and_labels_are_words(make_napari_viewer_proxy, settings):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    kinds = (QAbstractButton, QComboBox, QAbstractSpinBox, QAbstractSlider, QLineEdit,
             QListWidget, QTableWidget)  # fmt: skip
    # Scroll bars and a tab bar's scroll arrows are parts of Qt's own widgets.
    controls = [
        w
        for w in dock.findChildren(kinds)
        if not isinstance(w, QScrollBar) and not isinstance(w.parent(), QTabBar)
    ]
    assert len(controls) > 80

    def tip(widget):  # a control inside a composite (a labelled slider) shares its tooltip
        while widget is not None and widget is not dock:
            if widget.toolTip():
                return widget.toolTip()
            widget = widget.parent()
        return ""

    missing = [
        f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls if not tip(w)
    ]
    assert missing == []
    for label in dock.findChildren(QLabel):
        assert "_" not in label.text() and "thresh " not in label.text(), label.text()


def test_steps_hand_their_output_to_the_next_step(
    make_napari_viewer_proxy, qtbot, settings, real_scan, unet_checkpoint, notifications
):
    viewer = make_napari_viewer_proxy()
    _, truth = add_real_scan(viewer, real_scan, "set1")
    # A reference layer of another image, named like a ground truth (the reported mix-up).
    viewer.add_labels(np.zeros_like(truth.data), name="set41 ground truth")
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock)
    assert dock.unet.input.currentText() == "set1 phase"
    assert dock.metrics.ground_truth_combo.currentText() == "set1 mask"

    dock.unet.checkpoint.set_model(unet_checkpoint(256))
    dock.unet.device.setCurrentText("cpu")
    dock.unet.segment()
    qtbot.waitUntil(lambda: "set1 phase U-Net cells" in viewer.layers, timeout=120_000)
    qtbot.waitUntil(lambda: not dock.unet.runner.busy, timeout=10_000)
    cells = viewer.layers["set1 phase U-Net cells"]
    assert dock.watershed.method == "split"
    assert dock.watershed.input.currentText() == cells.name
    qtbot.wait(400)  # longer than the preview's quiet period: handing over starts nothing
    assert not dock.watershed.runner.busy and f"{cells.name} split" not in viewer.layers
    # U-Net cells are already apart: the step says so rather than invite a second split.
    assert "already separated" in dock.watershed.status.text()
    assert dock.metrics.prediction_combo.currentText() == cells.name
    assert dock.metrics.ground_truth_combo.currentText() == "set1 mask"

    dock.watershed.apply()
    output = f"{cells.name} split"
    qtbot.waitUntil(
        lambda: output in viewer.layers and not dock.watershed.runner.busy, timeout=60_000
    )
    assert dock.metrics.prediction_combo.currentText() == output
    assert dock.metrics.ground_truth_combo.currentText() == "set1 mask"
    # The one notification: the ground truth is hidden under the first cells found.
    assert notifications == [
        "'set1 mask' (the ground truth) is hidden so that the cells found in 'set1 phase "
        "U-Net cells' can be seen; click its eye in the layer list to show it again."
    ]


def test_a_failing_worker_gives_one_notification(
    make_napari_viewer_proxy, qtbot, settings, notifications, tmp_path
):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")

    def broken(*args):
        raise RuntimeError("the model file is damaged")

    dock = CytomaskDock(viewer, sam2_model_builder=broken, settings=settings)
    dock.method.setCurrentText("SAM2")
    dock.sam2.device.setCurrentText("cpu")
    dock.sam2.segment()
    qtbot.waitUntil(lambda: "damaged" in dock.sam2.status.text(), timeout=30_000)
    process_events(50)
    assert len(notifications) == 1 and "damaged" in notifications[0]
    assert dock.sam2.segment_button.isEnabled()


def test_a_run_stops_when_its_method_is_switched_away(make_napari_viewer_proxy, qtbot, settings):
    """SAM2 went on unseen after Method was switched to U-Net: its Cancel was hidden, Esc
    cancelled the U-Net page, and a U-Net run could start beside it."""
    import threading

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    loading = threading.Event()

    def slow(*args):
        loading.wait(30)
        raise RuntimeError("no model here")

    dock = CytomaskDock(viewer, sam2_model_builder=slow, settings=settings)
    dock.method.setCurrentText("SAM2")
    dock.sam2.device.setCurrentText("cpu")
    dock.sam2.segment()
    assert dock.sam2.runner.busy
    dock.method.setCurrentIndex(dock.method.findData("unet"))
    assert not dock.sam2.runner.busy
    assert dock.unet.status.text() == "The SAM2 run was cancelled: the method changed."
    loading.set()
    process_events(50)
    assert "no model" not in dock.sam2.status.text()  # its end is not reported


def test_nothing_to_run_says_what_to_add_without_an_error(
    make_napari_viewer_proxy, settings, notifications
):
    """In an empty viewer every run button gave a red "... failed: No image to segment"
    toast (Export's right after its own status said there was no Labels layer): a step
    with no input says in its status line what to add, and nothing else."""
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    said = {
        dock.unet.status: "No image to segment: open an image",
        dock.unet.trainer.status: "Pick an image layer and a mask",
        dock.sam2.status: "No image to segment: open an image",
        dock.watershed.status: "Nothing to read yet: segment the cells in",
        dock.export.status: "No Labels layer to export yet",
    }
    for run in (
        dock.unet.segment,
        dock.unet.trainer.train,
        dock.sam2.segment,
        dock.watershed.apply,
        dock.export.export,
    ):
        run()
    process_events(50)
    for status, start in said.items():
        assert status.text().startswith(start), status.text()
        assert "failed" not in status.text()
    assert notifications == []


def test_sam2_with_no_masks_says_so_in_the_status_line(
    make_napari_viewer_proxy, qtbot, settings, small_sam2, notifications, one_thread
):
    viewer = make_napari_viewer_proxy()
    yy, xx = np.mgrid[:48, :64]
    cells = ((yy - 24) ** 2 + (xx - 20) ** 2 < 100).astype(np.uint16)
    viewer.add_image(cells * 2000 + 300, name="phase", metadata={"cytomask": {"role": "input"}})
    dock = CytomaskDock(viewer, sam2_model_builder=lambda *a: small_sam2, settings=settings)
    dock.method.setCurrentText("SAM2")
    dock.sam2.device.setCurrentText("cpu")
    dock.sam2.set_values(points_per_side=4, pred_iou_thresh=1.0)
    dock.sam2.segment()
    qtbot.waitUntil(lambda: "No masks kept" in dock.sam2.status.text(), timeout=60_000)
    for value in (0.99, 0.98, 0.97):  # slider moves re-filter live: still no toast
        dock.sam2.set_values(pred_iou_thresh=value)
        qtbot.wait(400)
    qtbot.waitUntil(lambda: not dock.sam2.runner.busy, timeout=30_000)
    assert notifications == []


def test_offline_hugging_face_id_fails_fast_and_points_to_a_local_checkpoint(
    make_napari_viewer_proxy, qtbot, settings, notifications, tmp_path, monkeypatch
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    dock = CytomaskDock(viewer, settings=settings)
    dock.method.setCurrentText("SAM2")
    dock.sam2.model.setCurrentText("facebook/sam2.1-hiera-tiny")
    dock.sam2.device.setCurrentText("cpu")
    start = time.monotonic()
    dock.sam2.segment()
    qtbot.waitUntil(lambda: "failed" in dock.sam2.status.text(), timeout=60_000)
    elapsed = time.monotonic() - start
    process_events(50)
    assert len(notifications) == 1, notifications
    assert "Local checkpoint…" in notifications[0]
    assert "Local checkpoint…" in dock.sam2.status.text()
    assert elapsed < 2.0


def test_a_script_without_napari_run_survives_a_failing_worker(tmp_path):
    script = textwrap.dedent(
        """
        import torch, torchvision  # before the viewer's OpenGL context
        import numpy as np, napari
        from qtpy.QtCore import QSettings
        from qtpy.QtWidgets import QApplication
        from napari_cytomask._qt.cytomask_dock import CytomaskDock

        def broken(*args):
            raise RuntimeError("no such model")

        viewer = napari.Viewer(show=False)
        viewer.add_image(np.zeros((64, 64), np.float32), name="img")
        dock = CytomaskDock(viewer, sam2_model_builder=broken,
                            settings=QSettings("dock.ini", QSettings.Format.IniFormat))
        dock.sam2.device.setCurrentText("cpu")
        dock.sam2.segment()
        for _ in range(400):
            QApplication.processEvents()
            if "no such model" in dock.sam2.status.text():
                break
            QApplication.instance().thread().msleep(25)
        print("status:", dock.sam2.status.text())
        viewer.close()
        print("still running")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no such model" in done.stdout and "still running" in done.stdout


def test_export_into_a_folder_with_the_files_asks_once(
    make_napari_viewer_proxy, qtbot, settings, tmp_path, monkeypatch, notifications
):
    viewer = make_napari_viewer_proxy()
    viewer.add_labels(np.arange(64, dtype=np.uint8).reshape(8, 8) % 3, name="cells")
    dock = CytomaskDock(viewer, settings=settings)
    dock.export.folder.setText(str(tmp_path / "out"))
    dock.steps.setCurrentIndex(4)
    dock.run_current()
    qtbot.waitUntil(lambda: "Wrote" in dock.export.status.text(), timeout=30_000)
    written = (tmp_path / "out" / "cells.tif").stat().st_mtime_ns
    questions = []

    def answer(parent, message, reply):
        questions.append(message)
        return reply

    monkeypatch.setattr(export_panel, "ask_yes_no", lambda p, t, q, m: answer(p, m, False))
    dock.run_current()
    qtbot.waitUntil(lambda: "Nothing was written" in dock.export.status.text(), timeout=30_000)
    out = tmp_path / "out"
    # The files by name (the first four of those there), not a command-line option.
    assert questions == [
        f"Already in {out}: cells.tif, cells_objects.csv, cells_counts.csv, cells_provenance.json."
    ]
    assert dock.export.status.text() == (
        f"Nothing was written: the {len(list(out.iterdir()))} file(s) in {out} are as they "
        "were. Choose another folder, or export again and replace them."
    )
    assert (tmp_path / "out" / "cells.tif").stat().st_mtime_ns == written

    monkeypatch.setattr(export_panel, "ask_yes_no", lambda p, t, q, m: answer(p, m, True))
    dock.run_current()
    qtbot.waitUntil(lambda: "Wrote" in dock.export.status.text(), timeout=30_000)
    assert len(questions) == 2
    assert dock.export.status.text() == (
        f"Wrote 4 files to {out}, replacing those of the same names."
    )
    errors = [n for n in notifications if "fail" in n.lower()]
    assert errors == []


def test_shortcuts_run_and_cancel_the_open_step(make_napari_viewer_proxy, qtbot, settings):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock)
    assert [dock.steps.tabText(i) for i in range(dock.steps.count())] == [t for t, _ in STEPS]
    assert dock.steps.currentIndex() == 1
    dock.method.setCurrentText("SAM2")
    assert dock.sam2.isVisibleTo(dock) and not dock.unet.isVisibleTo(dock)
    dock.method.setCurrentText("U-Net")
    assert dock.unet.isVisibleTo(dock) and not dock.sam2.isVisibleTo(dock)

    dock.steps.setCurrentIndex(2)
    dock.watershed.live.setChecked(False)
    dock.watershed.mode.setCurrentIndex(dock.watershed.mode.findData("foreground"))
    dock.watershed.input.setCurrentText("GFP")
    shortcuts = {s.key().toString(): s for s in dock.findChildren(QShortcut) if s.parent() is dock}
    assert set(shortcuts) == {"Ctrl+Return", "Ctrl+Enter", "Esc"}
    enabled = {s for s in dock.findChildren(QShortcut) if s.isEnabled()}
    # The steps' own are off; idle, Esc is left to napari and to the field with the focus.
    assert enabled == {shortcuts["Ctrl+Return"], shortcuts["Ctrl+Enter"]}
    # Keys pressed elsewhere in napari (Esc ending a shape) are napari's.
    assert {s.context() for s in shortcuts.values()} == {
        Qt.ShortcutContext.WidgetWithChildrenShortcut
    }
    # A step in a dock of its own (Layers > Segment) has the keys too: they did nothing
    # there, though its buttons named them.
    alone = WatershedWidget(viewer)
    qtbot.addWidget(alone)
    assert alone.apply_button.toolTip().endswith("(Ctrl+Enter)")
    assert alone.controls.cancel_button.toolTip().endswith("dropped (Esc).")
    own = {s.key().toString(): s for s in alone.findChildren(QShortcut)}
    assert set(own) == {"Ctrl+Return", "Ctrl+Enter", "Esc"}
    assert not own["Esc"].isEnabled()
    alone.live.setChecked(False)
    alone.mode.setCurrentIndex(alone.mode.findData("foreground"))
    alone.input.setCurrentText("GFP")
    own["Ctrl+Enter"].activated.emit()
    assert alone.runner.busy and own["Esc"].isEnabled()
    own["Esc"].activated.emit()
    assert not alone.runner.busy and not own["Esc"].isEnabled()
    shortcuts["Ctrl+Return"].activated.emit()  # Xvfb windows are never active: emit directly
    assert dock.watershed.runner.busy
    assert shortcuts["Esc"].isEnabled()
    assert not any(s.isEnabled() for s in dock.watershed.findChildren(QShortcut))
    started = time.monotonic()
    shortcuts["Esc"].activated.emit()
    assert not dock.watershed.runner.busy and time.monotonic() - started < 1.0
    assert not shortcuts["Esc"].isEnabled()
    bar = dock.watershed.progress
    assert (bar.minimum(), bar.maximum(), bar.value()) == (0, 1, 0)  # not busy-looking
    assert dock.watershed.apply_button.isEnabled()
    shortcuts["Ctrl+Return"].activated.emit()
    worker = dock.watershed.worker
    shortcuts["Ctrl+Return"].activated.emit()  # running, its button greyed: nothing new
    assert dock.watershed.worker is worker
    qtbot.waitUntil(lambda: "GFP instances" in viewer.layers, timeout=30_000)
    output = viewer.layers["GFP instances"]
    assert isinstance(output, Labels)
    qtbot.waitUntil(lambda: all(output.data[t].max() > 20 for t in range(3)), timeout=60_000)


def test_escape_cancels_the_page_on_show_only(make_napari_viewer_proxy, settings, monkeypatch):
    """Esc on the Segment tab cancels segmenting, never a model training meanwhile."""
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    cancelled = []
    for name, widget in (("unet", dock.unet), ("train", dock.unet.trainer), ("sam2", dock.sam2)):
        monkeypatch.setattr(widget, "cancel", lambda name=name: cancelled.append(name))
    dock.steps.setCurrentIndex(1)
    for method, tab, expected in (
        ("unet", 0, ["unet"]),
        ("sam2_guided", 0, ["unet", "sam2"]),
        ("unet", 1, ["train"]),
        ("sam2", 0, ["sam2"]),
    ):
        dock.method.setCurrentIndex(dock.method.findData(method))
        dock.unet.tabs.setCurrentIndex(tab)
        cancelled.clear()
        dock.cancel_current()
        assert cancelled == expected, (method, tab)


def test_guided_mode_has_one_run_button(make_napari_viewer_proxy, settings):
    """Guided, SAM2's settings kept their own "Segment cytoplasm" button under the U-Net's:
    the lower one ran SAM2 alone, unguided."""
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    shown = {}
    for method in ("unet", "sam2_guided", "sam2"):
        dock.method.setCurrentIndex(dock.method.findData(method))
        shown[method] = [
            controls.run_button.text()
            for widget, controls in (
                (dock.unet, dock.unet.controls),
                (dock.sam2, dock.sam2.controls),
            )
            if widget.isVisibleTo(dock) and controls.run_button.isVisibleTo(dock)
        ]
    assert shown == {
        "unet": ["Segment cytoplasm"],
        "sam2_guided": ["Segment cytoplasm (U-Net, then SAM2)"],
        "sam2": ["Segment cytoplasm"],
    }


def test_guided_mode_gives_sam2s_sliders_the_larger_share(
    make_napari_viewer_proxy, qtbot, settings
):
    """Guided, the U-Net's and SAM2's pages shared the tab in equal halves, and SAM2's,
    whose sliders are tuned live, showed one or two of its rows at 1280 x 800 under no
    heading. SAM2 gets three fifths, under a heading, and a splitter gives it more."""
    viewer = make_napari_viewer_proxy(show=True)
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    viewer.window._qt_window.resize(1280, 800)
    dock.method.setCurrentIndex(dock.method.findData("unet"))
    qtbot.waitUntil(lambda: dock._pages.height() > 600, timeout=5000)
    assert not dock._sam2_heading.isVisibleTo(dock)
    dock.method.setCurrentIndex(dock.method.findData("sam2_guided"))

    def shares():
        unet, sam2 = dock._pages.sizes()
        return unet > 0 and sam2 == pytest.approx(1.5 * unet, rel=0.05)

    qtbot.waitUntil(shares, timeout=5000)
    assert dock._sam2_heading.isVisibleTo(dock)
    dock.method.setCurrentIndex(dock.method.findData("sam2"))
    qtbot.waitUntil(lambda: dock._pages.sizes()[0] == 0, timeout=5000)
    assert not dock._sam2_heading.isVisibleTo(dock)


def test_guided_mode_runs_sam2_on_the_unet_foreground(make_napari_viewer_proxy, qtbot, settings):
    import torch

    from napari_cytomask.io.layers import result_metadata
    from napari_cytomask.models.sam2_models import build_sam2_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_sam2_model("configs/sam2.1/sam2.1_hiera_t.yaml", image_size=64, seed=0)
        viewer = make_napari_viewer_proxy()
        yy, xx = np.mgrid[:48, :64]
        cells = ((yy - 24) ** 2 + (xx - 20) ** 2 < 100).astype(np.uint16)
        viewer.add_image(cells * 2000 + 300, name="phase", metadata={"cytomask": {"role": "input"}})
        dock = CytomaskDock(viewer, sam2_model_builder=lambda *args: model, settings=settings)
        viewer.window.add_dock_widget(dock)
        dock.sam2.device.setCurrentText("cpu")
        dock.sam2.set_values(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                             max_area_fraction=1.0, min_foreground_fraction=0.0)  # fmt: skip
        dock.method.setCurrentText("SAM2 guided by the U-Net")
        # A U-Net result is known by what it records, not by its name.
        decoy = viewer.add_labels(cells, name="decoy U-Net cells")
        dock.unet.segmented.emit(decoy)
        assert dock.sam2.foreground.currentText() == "(none)"
        unet_cells = viewer.add_labels(cells, name="phase U-Net cells")
        unet_cells.metadata = result_metadata(viewer.layers["phase"], method="unet")
        dock.unet.segmented.emit(unet_cells)
        assert dock.sam2.foreground.currentText() == "phase U-Net cells"
        qtbot.waitUntil(lambda: "phase SAM2 masks" in viewer.layers, timeout=60_000)
        # The U-Net's cells under the masks mixed their colours with them: hidden, and said.
        assert viewer.layers["phase SAM2 masks"].data.any()
        assert not unet_cells.visible and decoy.visible
    finally:
        torch.set_num_threads(threads)


def test_the_saved_preset_message_gives_a_command_that_pastes(
    make_napari_viewer_proxy, settings, tmp_path, monkeypatch, notifications
):
    import shlex

    from napari_cytomask._qt import cytomask_dock

    path = tmp_path / "my presets" / "phase contrast.json"
    path.parent.mkdir()
    monkeypatch.setattr(cytomask_dock, "ask_save_path", lambda *a, **k: str(path))
    CytomaskDock(make_napari_viewer_proxy(), settings=settings)._save_preset_dialog()
    (said,) = [n for n in notifications if n.startswith("Saved")]
    words = shlex.split(said.split("Run: ", 1)[1])
    assert words[:4] == ["cytomask", "segment", "--preset", str(path)] and path.is_file()
    # On Windows, in double quotes: cmd and PowerShell keep single ones in the name.
    from pathlib import PureWindowsPath

    from napari_cytomask import cli

    monkeypatch.setattr(cli.sys, "platform", "win32")
    windows = PureWindowsPath(r"C:\Users\me\my presets\phase contrast.json")
    assert cli.shell_quoted(windows) == f'"{windows}"'


def test_a_file_name_typed_without_its_ending_gets_it(qtbot, tmp_path):
    """Qt's save dialog adds no ending on Linux: a preset saved as "phase" was a file called
    "phase", which the dialog's own filter then hid."""
    from qtpy.QtWidgets import QFileDialog

    from napari_cytomask._qt._live import save_dialog

    dialog = save_dialog(None, "Save preset", str(tmp_path / "preset.json"), "Presets", "json")
    qtbot.addWidget(dialog)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
    dialog.selectFile(str(tmp_path / "phase"))
    assert dialog.selectedFiles() == [str(tmp_path / "phase.json")]
    dialog.selectFile(str(tmp_path / "phase.JSON"))  # an ending of its own is kept
    assert dialog.selectedFiles() == [str(tmp_path / "phase.JSON")]


def _split_in_step_3(dock, qtbot, labels) -> None:
    dock.watershed.use_input(labels)
    dock.watershed.apply()
    # Its worker ends after the result is shown: the next input waits for it until then.
    qtbot.waitUntil(
        lambda: "Done" in dock.watershed.status.text() and not dock.watershed.runner.busy,
        timeout=30_000,
    )


def test_a_split_applied_again_is_shown(make_napari_viewer_proxy, qtbot, settings):
    """A split hidden by the user and applied again said "Done: 73 cells", nothing on show."""
    viewer, dock, cells = _dock_with_cells(make_napari_viewer_proxy(), qtbot, settings)
    _split_in_step_3(dock, qtbot, cells)
    split = viewer.layers[f"{cells.name} split"]
    split.visible = False
    dock.watershed.status.setText("")
    _split_in_step_3(dock, qtbot, cells)
    assert viewer.layers[f"{cells.name} split"].unique_id == split.unique_id and split.visible


def test_cells_corrected_after_their_split_say_the_split_lacks_the_corrections(
    make_napari_viewer_proxy, qtbot, settings
):
    """Cells corrected by hand after Apply (shown again, a missed cell painted in): Check
    went on scoring the split and Export ticked it, and nothing said it was older."""
    viewer, dock, cells = _dock_with_cells(make_napari_viewer_proxy(), qtbot, settings)
    _split_in_step_3(dock, qtbot, cells)
    cells.visible = True
    cells.brush_size = 5
    cells.paint((0, 3, 3), int(np.asarray(cells.data).max()) + 1)
    assert dock.watershed.status.text() == (
        f"'{cells.name}' was changed by hand since '{cells.name} split' was made of it: the "
        "split does not hold the changes (Check scores it, Export writes it). Apply splits "
        "the changed cells."
    )


def test_a_preset_splits_only_cells_that_step_3_split(
    make_napari_viewer_proxy, qtbot, settings, tmp_path, monkeypatch, notifications
):
    """Segmenting handed the cells to step 3, which made a preset saved then split them:
    on the sample, the command line gave F1@0.5 0.826 for the dock's 0.926."""
    from napari_cytomask._qt import cytomask_dock

    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    qtbot.addWidget(dock)
    dock.watershed.live.setChecked(False)
    cells = viewer.layers["Mask (ground truth)"]
    dock.unet.segmented.emit(cells)  # as at the end of Segment cytoplasm
    assert dock.watershed.method == "split" and dock.preset().split is None
    other = viewer.add_labels(np.asarray(cells.data).copy(), name="other cells")
    _split_in_step_3(dock, qtbot, other)  # another layer's split is not the cells'
    assert dock.preset().split is None
    dock.watershed.min_area.setValue(20)
    _split_in_step_3(dock, qtbot, cells)
    applied = {"params": dock.watershed.params(), "cleanup": dock.watershed.cleanup()}
    assert dock.preset().split == applied
    # Settings shown since, not applied, are not what the cells were split with; another
    # method's shown settings no longer stop the preset from being saved.
    dock.watershed.min_area.setValue(400)
    dock.watershed.mode.setCurrentIndex(dock.watershed.mode.findData("interior_boundary"))
    assert dock.preset().split == applied
    path = tmp_path / "preset.json"
    monkeypatch.setattr(cytomask_dock, "ask_save_path", lambda *a, **k: str(path))
    dock._save_preset_dialog()
    assert any(
        n.startswith("Saved preset.json: it segments with U-Net, then splits touching cells as "
                     "step 3 did. Run:") for n in notifications)  # fmt: skip
    # A pixel size typed for an image that lost its own is named for the command line,
    # which would otherwise segment the same file at another pixel size.
    dock.unet.pixel_size.setValue(0.435)
    dock._save_preset_dialog()
    assert notifications[-1].endswith(f"--preset {path} --pixel-size 0.435 SCANS…")
    dock.unet.segmented.emit(cells)  # segmented again: not split yet
    assert dock.preset().split is None


def test_saved_preset_drives_the_command_line(
    make_napari_viewer_proxy, qtbot, settings, tmp_path, tiny_unet, capsys
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
    dock.method.setCurrentText("SAM2 guided by the U-Net")
    assert dock.preset().unet.model == STARTER  # the starter model is the default
    dock.unet.checkpoint.set_model(model)
    dock.unet.overlap.setValue(16)
    dock.unet.interior_threshold.setValue(0.35)
    dock.sam2.set_values(points_per_side=12, pred_iou_thresh=0.55)
    dock.unet.segmented.emit(viewer.layers["Mask (ground truth)"])  # as if segmented
    _split_in_step_3(dock, qtbot, viewer.layers["Mask (ground truth)"])
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


def test_a_plot_too_small_for_its_layout_raises_no_warning(qtbot):
    import warnings

    from napari_cytomask._qt._plot import PlotCanvas

    canvas = PlotCanvas(redraw=lambda: None)
    qtbot.addWidget(canvas)
    axes = canvas.figure.add_subplot()
    axes.plot([0, 1], [0, 1])
    axes.set_xlabel("IoU threshold")
    axes.set_ylabel("precision, recall, F1")
    canvas.figure.set_size_inches(0.4, 0.3)  # a dock being resized: no room for the labels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        canvas.draw()
    assert [str(w.message) for w in caught] == []


def test_the_plots_take_naparis_theme_and_follow_it(make_napari_viewer, qtbot, settings):
    """Both plots stayed white with black text in napari's dark theme, a glaring block in
    the dock, and the loss plot's orange score axis was 2.5:1 on white. A plot out of
    sight takes a new theme when it is shown. The viewer's theme alone changed (napari's
    key for it, or ``viewer.theme``) left the plots dark in a light window."""
    from matplotlib.colors import to_hex
    from napari.settings import get_settings

    from napari_cytomask._qt._plot import _SERIES

    appearance = get_settings().appearance
    before = appearance.theme
    viewer = make_napari_viewer(show=True)
    labels = (np.arange(64 * 64).reshape(64, 64) // 300 % 5).astype(np.uint8)
    viewer.add_labels(labels, name="mask", metadata={"cytomask": {"role": "mask"}})
    viewer.add_labels(labels.copy(), name="prediction")
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    qtbot.waitUntil(lambda: dock.metrics.evaluation is not None, timeout=10_000)

    def show(canvas) -> None:
        if canvas is dock.metrics.canvas:
            dock.steps.setCurrentIndex(3)
            dock.metrics.views.setCurrentWidget(canvas)
        else:
            dock.steps.setCurrentIndex(1)
            dock.unet.tabs.setCurrentWidget(dock.unet.trainer)
            dock.unet.trainer.tabs.setCurrentWidget(canvas)
        qtbot.waitUntil(canvas.isVisible)

    def styled(canvas, face: str, text: str) -> bool:
        axes = canvas.figure.axes
        ticks = [t for a in axes for t in a.get_yticklabels()]
        return (
            to_hex(canvas.figure.get_facecolor()) == face
            and all(to_hex(a.get_facecolor()) == face for a in axes)
            and bool(ticks) and all(to_hex(t.get_color()) == text for t in ticks)
        )  # fmt: skip

    plots = (dock.metrics.canvas, dock.unet.trainer.canvas)
    try:
        for theme, face, text in (("dark", "#23242b", "#f0f1f2"), ("light", "#ebe7e6", "#1e1e21")):
            show(plots[0])
            appearance.theme = theme
            assert styled(plots[0], face, text), theme  # on show: at once
            show(plots[1])
            assert styled(plots[1], face, text), theme  # out of sight: once shown
            lines = dock.metrics.axes.get_lines()
            assert [to_hex(line.get_color()) for line in lines] == list(_SERIES[theme])
            score_label = dock.unet.trainer.score_axes.yaxis.label
            assert to_hex(score_label.get_color()) == _SERIES[theme][1]
        appearance.theme = "dark"
        viewer.theme = "light"
        assert styled(plots[1], "#ebe7e6", "#1e1e21")  # on show
        show(plots[0])
        assert styled(plots[0], "#ebe7e6", "#1e1e21")  # out of sight: once shown
        assert appearance.theme == "dark"
    finally:
        appearance.theme = before


def test_a_failure_repeated_by_edits_is_notified_once_and_again_on_a_click(
    make_napari_viewer_proxy, qtbot, settings, notifications
):
    viewer = make_napari_viewer_proxy()
    labels = (np.arange(64 * 64).reshape(64, 64) // 300 % 5).astype(np.uint8)
    viewer.add_labels(labels, name="mask", metadata={"cytomask": {"role": "mask"}})
    prediction = viewer.add_labels(labels.copy(), name="prediction")
    dock = CytomaskDock(viewer, settings=settings)
    qtbot.waitUntil(lambda: dock.metrics.evaluation is not None, timeout=30_000)
    prediction.data = labels[:32]  # an edit that makes the layers incomparable
    qtbot.waitUntil(lambda: "shape" in dock.metrics.status.text(), timeout=10_000)
    prediction.data = labels[:32] * 1  # the same failure again, from another edit
    process_events(50)
    assert len(notifications) == 1 and "shape" in notifications[0]
    dock.metrics.controls.run_button.click()  # asked for explicitly: said again
    process_events(50)
    assert len(notifications) == 2
    # Pairs picked in the dock that cannot be compared (as when one side is picked before
    # the other) are said in the status line, not in pop-ups.
    viewer.add_labels(labels[:16].copy(), name="crop")
    metrics = dock.metrics
    metrics.prediction_combo.setCurrentIndex(metrics.prediction_combo.findText("crop"))
    qtbot.waitUntil(lambda: "(16, 64)" in metrics.status.text(), timeout=10_000)
    metrics.ground_truth_combo.setCurrentIndex(metrics.ground_truth_combo.findText("prediction"))
    qtbot.waitUntil(lambda: "has shape (32, 64)" in metrics.status.text(), timeout=10_000)
    process_events(50)
    assert len(notifications) == 2, notifications


def test_every_role_reads_in_full_when_its_step_is_opened(make_napari_viewer, qtbot, settings):
    """The dock reopens at the step used last; opened later, the channels step's role
    column fits napari's style (it read "input (segmen")."""
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    dock.steps.setCurrentIndex(2)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    qtbot.wait(100)
    dock.steps.setCurrentIndex(0)
    qtbot.wait(100)
    table = dock.roles.table
    for row in range(table.rowCount()):
        picker = table.cellWidget(row, 2)
        longest = max(picker.fontMetrics().horizontalAdvance(picker.itemText(i)) for i in range(3))
        assert table.columnWidth(2) >= longest + 30, row  # the text and the arrow
    # A channel with a long name shortens it, and its role stays in view.
    long_name = "181003_multi_pos_time_course_1_MMStack.ome channel Default"
    viewer.add_image(
        np.zeros((8, 8), np.uint16), name=long_name,
        metadata={"cytomask": {"role": "image", "source": "/data/181003.ome.tif"}},
    )  # fmt: skip
    qtbot.waitUntil(lambda: table.rowCount() == 4)
    qtbot.wait(100)
    assert table.horizontalScrollBar().maximum() == 0
    picker = table.cellWidget(3, 2)
    seen = picker.visibleRegion().boundingRect()
    assert (seen.width(), seen.height()) == (picker.width(), picker.height())
    name = table.cellWidget(3, 0)
    assert "…" in name.text() and name.toolTip() == long_name


def test_a_folder_chosen_for_export_is_remembered(
    make_napari_viewer_proxy, qtbot, settings, tmp_path, monkeypatch
):
    viewer = make_napari_viewer_proxy()
    dock = CytomaskDock(viewer, settings=settings)
    chosen = tmp_path / "exports"
    monkeypatch.setattr(
        "napari_cytomask._qt.export_panel.QFileDialog.getExistingDirectory",
        lambda *a: str(chosen),
    )
    dock.export.findChild(QPushButton, "choose_folder").click()  # the only edit
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    qtbot.waitUntil(lambda: store.value("export/folder") == str(chosen), timeout=5_000)
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert again.export.folder.text() == str(chosen)


def test_a_change_made_just_before_napari_closes_is_remembered(make_napari_viewer, settings):
    """A value changed less than half a second before napari closed was lost: the dock
    saved only once the edits paused."""
    viewer = make_napari_viewer(show=True)
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock)
    process_events()
    dock.unet.overlap.setValue(200)
    viewer.close()
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    assert int(store.value("unet/overlap")) == 200


def test_the_export_folder_suggested_beside_the_data_is_not_remembered(
    make_napari_viewer_proxy, settings, tmp_path
):
    """The folder the dock suggests beside a scan was stored with the next change of any
    other setting, and the next session exported another scan into that scan's folder."""
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    viewer = make_napari_viewer_proxy()
    dock = CytomaskDock(viewer, settings=settings)
    (tmp_path / "scanA").mkdir()
    (tmp_path / "scanA" / "scan.tif").write_bytes(b"")
    record = {"role": RESULT_ROLE, "source": str(tmp_path / "scanA" / "scan.tif")}
    viewer.add_labels(np.eye(8, dtype=np.uint8), name="cells", metadata={METADATA_KEY: record})
    assert dock.export.folder.text() == str(tmp_path / "scanA")
    dock.unet.overlap.setValue(80)  # any other setting
    dock.save_settings()
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    assert store.value("export/folder") is None
    assert int(store.value("unet/overlap")) == 80


def test_reset_waits_for_a_running_step_and_long_file_names_fit(
    make_napari_viewer_proxy, qtbot, settings, monkeypatch
):
    infos = []
    monkeypatch.setattr("napari_cytomask._qt.cytomask_dock.show_info", infos.append)
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    dock.watershed.min_area.setValue(55)
    monkeypatch.setattr(type(dock.unet.runner), "busy", property(lambda self: True))
    dock.reset_button.click()
    assert dock.watershed.min_area.value() == 55  # the run's settings stay on show
    assert infos == ["Reset to defaults after the running step ends, or cancel it (Esc)."]
    # A file name too long for its column keeps its start and end, and is whole in the tip.
    from napari_cytomask._qt.channel_roles import _ElidedLabel

    label = _ElidedLabel("181003_multi_pos_time_course_1_MMStack.ome.tif")
    qtbot.addWidget(label)
    label.show()
    label.resize(90, 20)
    qtbot.waitUntil(lambda: "…" in label.text())
    assert label.text().startswith("1810") and label.text().endswith("tif")
    assert "…" in label.text()
    assert label.fontMetrics().horizontalAdvance(label.text()) <= 90
    # A name that fits is whole: 8 px were taken off twice, and "Phase contrast" (96 px)
    # showed as "Phase…trast" in 102 px.
    fits = label.fontMetrics().horizontalAdvance(label._full)
    label.resize(fits + label.width() - label.contentsRect().width(), 20)
    qtbot.waitUntil(lambda: "…" not in label.text())
    assert label.text() == "181003_multi_pos_time_course_1_MMStack.ome.tif"


def test_on_a_narrow_screen_the_dock_leaves_napari_its_room_and_scrolls_sideways(
    make_napari_viewer, qtbot, settings, monkeypatch
):
    """At 1280 × 800 with 150 % scaling (853 px wide) the dock asked for 437 px (its channel
    table, its settings) and napari's title bar for its whole title: the window's right
    edge, with the step's Cancel, was off the screen."""
    from napari_cytomask._qt import _live

    room = 238
    screen = QApplication.primaryScreen().availableGeometry().width()
    monkeypatch.setattr(_live, "NAPARI_WIDTH", screen - room)  # as on a screen 853 px wide
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-cytomask", "phase_contrast")
    dock = CytomaskDock(viewer, settings=settings)
    title = "Segment cytoplasm, a title longer than the dock is wide (napari-cytomask)"
    napari_dock = viewer.window.add_dock_widget(dock, name=title)
    qtbot.wait(200)
    viewer.window._qt_window.resizeDocks([napari_dock], [0], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    assert napari_dock.width() <= room + 40  # the nested tabs' margins
    views = [(0, None, None), (1, "U-Net", dock.unet.controls), (1, "SAM2", dock.sam2.controls)]
    views += [(2, None, dock.watershed.controls), (3, None, dock.metrics.controls)]
    views += [(4, None, dock.export.controls)]
    for step, method, controls in views:
        dock.steps.setCurrentIndex(step)
        if method:
            dock.method.setCurrentText(method)
        qtbot.wait(50)
        buttons = [controls.run_button] if controls else []
        buttons += (
            [controls.cancel_button] if controls and controls.cancel_button.isVisible() else []
        )
        for button in buttons:  # the metrics' step has no Cancel
            seen = button.visibleRegion().boundingRect()
            assert (seen.width(), seen.height()) == (button.width(), button.height()), step
        # What does not fit scrolls into view.
        for area in dock.steps.currentWidget().findChildren(QScrollArea):
            if area.isVisible() and area.widget() is not None:
                hidden = area.widget().minimumSizeHint().width() - area.viewport().width()
                assert area.horizontalScrollBar().maximum() >= hidden, (step, method)
    dock.steps.setCurrentIndex(0)
    table = dock.roles.table
    hidden = table.horizontalHeader().length() - table.viewport().width()
    assert hidden > 0 and table.horizontalScrollBar().maximum() >= hidden
    assert min(table.columnWidth(0), table.columnWidth(1)) > table.fontMetrics().horizontalAdvance(
        "Pha…ast"
    )


def test_a_long_layer_name_in_a_status_does_not_widen_the_dock(make_napari_viewer, qtbot, settings):
    """A 60-character name is one word that cannot wrap: it widened the dock from 424 to
    618 px, off a 1024-px screen."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1024, 768)
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    qtbot.wait(100)
    before = dock.width()
    long = "A" * 60
    viewer.add_labels(np.zeros((64, 64), np.int32), name=f"{long} pred")
    viewer.add_labels(np.zeros((32, 32), np.int32), name=f"{long} truth")
    dock.steps.setCurrentIndex(3)
    dock.metrics.prediction_combo.setCurrentText(f"{long} pred")
    dock.metrics.ground_truth_combo.setCurrentText(f"{long} truth")
    qtbot.waitUntil(lambda: "has shape" in dock.metrics.status.text(), timeout=10_000)
    qtbot.wait(100)
    assert dock.width() <= before


def test_tables_let_tab_go_on_to_the_next_control(make_napari_viewer_proxy, settings):
    """Tab moved from cell to cell and never left step 1's and step 4's tables."""
    from qtpy.QtWidgets import QScrollArea, QTableWidget

    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    tables = dock.findChildren(QTableWidget)
    assert len(tables) >= 3 and not any(table.tabKeyNavigation() for table in tables)
    # Nor does it stop on the area that scrolls a step's settings, which shows no focus.
    areas = dock.findChildren(QScrollArea)
    assert len(areas) >= 4
    assert all(area.focusPolicy() == Qt.FocusPolicy.NoFocus for area in areas)


def test_every_setting_has_a_name_a_screen_reader_can_say(make_napari_viewer_proxy, settings):
    """Fields named only by a label beside them (not its buddy) were nameless, and the
    slider inside a SAM2 slider had neither a name nor a tooltip."""
    from qtpy.QtWidgets import QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit

    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    kinds = (QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit)
    fields = [w for kind in kinds for w in dock.findChildren(kind)]
    fields = [w for w in fields if w.focusPolicy() != Qt.FocusPolicy.NoFocus]
    nameless = [w for w in fields if not w.accessibleName() and not w.toolTip()]
    assert len(fields) > 40 and nameless == []
    slider = dock.sam2.sliders["pred_iou_thresh"].findChild(QAbstractSlider)
    assert slider.accessibleName() and slider.toolTip()
    # Tab stops on the slider and on its value box, which took the focus only when clicked,
    # and not on the frame around them; both are named.
    labelled = dock.sam2.sliders["pred_iou_thresh"]
    parts = [labelled, *labelled.findChildren(QWidget)]
    stops = [w for w in parts if w.focusPolicy() & Qt.FocusPolicy.TabFocus]
    assert len(stops) == 2 and stops[0] is slider and isinstance(stops[1], QLineEdit)
    assert all(w.accessibleName() == "Minimum predicted IoU" for w in stops)
    assert dock.watershed.min_marker_size.accessibleName() == "Minimum seed size (px)"
    # Two fields in one row: each has a name of its own.
    assert dock.unet.pixel_size.accessibleName() == "Pixel size (µm)"
    assert dock.unet.resample.accessibleName() == "Resample for the model"
    # A button beside a field is said as the button it is, not as the field.
    from qtpy.QtWidgets import QPushButton

    opens = [b for b in dock.findChildren(QPushButton) if b.text() == "Open…"]
    assert len(opens) >= 3 and "Model: Open…" in [b.accessibleName() for b in opens]
    assert all(b.accessibleName().endswith(": Open…") for b in opens)


def test_the_segmentation_steps_follow_the_input_channel(make_napari_viewer_proxy, settings):
    """A scan opened later, or a channel made the input in step 1, is what step 2 segments
    (it stayed on the first scan's channel, which step 1 no longer called the input)."""
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    pickers = (dock.unet.input, dock.unet.trainer.image_layer, dock.sam2.layer)
    first = dock.unet.input.currentText()
    assert role_of(viewer.layers[first]) == "input"
    viewer.add_image(
        np.zeros((32, 32), np.uint16), name="raw",
        metadata={"cytomask": {"role": "input", "source": "/data/set12/raw.tif"}},
    )  # fmt: skip
    assert [picker.currentText() for picker in pickers] == ["raw"] * 3
    table = dock.roles.table
    row = next(r for r in range(table.rowCount()) if table.cellWidget(r, 0).toolTip() == "GFP")
    table.cellWidget(row, 2).setCurrentIndex(table.cellWidget(row, 2).findData("input"))
    assert [picker.currentText() for picker in pickers] == ["GFP"] * 3


def test_a_closed_dock_stops_listening_to_the_viewer(make_napari_viewer, qtbot, settings):
    """napari deletes a closed dock; its handlers of the viewer's events went on running
    (on deleted widgets) on every later layer event, 17 more for each dock closed."""
    import gc

    from qtpy.QtCore import QEvent

    viewer = make_napari_viewer()
    viewer.open_sample("napari-cytomask", "tilescan")
    events = viewer.layers.events
    emitters = (
        events.inserted, events.removed, events.moved, events.renamed,
        viewer.dims.events.current_step,
    )  # fmt: skip
    before = [len(emitter.callbacks) for emitter in emitters]
    for _ in range(2):
        dock = CytomaskDock(viewer, settings=settings)
        widget = viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
        assert len(events.inserted.callbacks) > before[0]
        viewer.window.remove_dock_widget(widget)
        del dock, widget
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()
        # The events let go of a dead handler when they next fire.
        viewer.add_labels(np.zeros((8, 8), np.uint8), name="after")
        viewer.layers["after"].name = "renamed"
        viewer.layers.move(0, len(viewer.layers))
        viewer.layers.remove("renamed")
        viewer.dims.set_current_step(0, 1 - viewer.dims.current_step[0])
        assert [len(emitter.callbacks) for emitter in emitters] == before


def test_a_long_step_says_how_long_it_has_left(qtbot, monkeypatch):
    """A stack of 40 positions is 1,000 tiles (about 4 h on a CPU with TTA): the status
    says the time left from the stage's own pace, as training does, once it is measured."""
    from napari_cytomask import progress
    from napari_cytomask._qt import _live
    from napari_cytomask.progress import Progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    controls = _live.StepControls("Run", "")
    qtbot.addWidget(controls)
    controls.set_running(True)
    for now, done in ((100.0, 0), (101.0, 10)):
        clock[0] = now
        controls.show_progress(Progress("predict", done, 1000))
    assert controls.status.text() == "Predicting tiles: 10 of 1000"  # too soon to tell
    clock[0] = 104.0
    controls.show_progress(Progress("predict", 20, 1000))
    assert controls.status.text() == "Predicting tiles: 20 of 1000; about 3 min left"
    controls.show_progress(Progress("instances", 1, 40))  # a new stage is timed anew
    assert controls.status.text() == "Separating cells: 1 of 40"
    controls.set_running(True)  # and so is a new run
    clock[0] = 200.0
    controls.show_progress(Progress("predict", 30, 1000))
    assert controls.status.text() == "Predicting tiles: 30 of 1000"


def _thresholds(dock) -> tuple:
    unet = dock.unet
    return (
        round(unet.interior_threshold.value(), 3),
        round(unet.foreground_threshold.value(), 3),
        unet.min_size.value(),
    )


def _save_tiny_unet(path, tiny_unet, **postprocess):
    """Write a tiny U-Net checkpoint to ``path``, with the thresholds ``postprocess``
    records (as ``cytomask tune`` does); the file's time of change moves on."""
    from napari_cytomask.models.checkpoint import describe, save_checkpoint
    from napari_cytomask.models.unet import UNetConfig, build_model

    before = path.stat().st_mtime_ns if path.exists() else 0
    config = UNetConfig(**tiny_unet, tile_size=64)
    model, _ = build_model(config)
    extra = {"postprocess": postprocess} if postprocess else {}
    save_checkpoint(path, model, describe(config, **extra))
    os.utime(path, ns=(before + 10**9, before + 10**9))
    return path


def test_remembered_thresholds_of_a_model_that_is_gone_are_not_given_to_another(
    make_napari_viewer_proxy, settings, unet_checkpoint
):
    """The starter model ran with the thresholds remembered for a fine-tuned model deleted
    since (0.5, 0.5, 30 px, not its own 0.95 and 570 px), and outlined blobs on DIC."""
    viewer = make_napari_viewer_proxy()
    mine = unet_checkpoint(tile_size=64)
    dock = CytomaskDock(viewer, settings=settings)
    dock.unet.checkpoint.set_model(mine)
    dock.unet.interior_threshold.setValue(0.3)
    dock.unet.foreground_threshold.setValue(0.4)
    dock.unet.min_size.setValue(30)
    dock.save_settings()
    dock.close()
    dock = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert dock.unet.checkpoint.key() == str(mine)
    assert _thresholds(dock) == (0.3, 0.4, 30)
    dock.close()

    mine.unlink()
    dock = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert dock.unet.checkpoint.key() == STARTER
    assert _thresholds(dock) == (0.5, 0.95, 570)
    # Said, not replaced by the starter model without a word.
    assert f"2 Segment (U-Net) > Model ('{mine}')" in dock._restore_note


def test_thresholds_follow_the_checkpoint_unless_typed_for_that_file(
    make_napari_viewer_proxy, settings, tiny_unet, model_folder
):
    """A model without recorded thresholds showed 0.5, 0.5 and 0 px, which were stored as
    if chosen; after `cytomask tune` recorded 0.6, 0.95 and 618 px in its file, the next
    session showed 0.6, 0.5 and 0 px, and segmented and saved presets with them."""
    viewer = make_napari_viewer_proxy()
    model_folder.mkdir()
    mine = _save_tiny_unet(model_folder / "mine.safetensors", tiny_unet)

    def session():
        store = QSettings(settings.fileName(), settings.format())
        return CytomaskDock(viewer, settings=store)

    dock = session()
    dock.unet.checkpoint.refresh()
    dock.unet.checkpoint.set_model(str(mine))
    assert _thresholds(dock) == (0.5, 0.5, 0)  # the model's own: not a choice
    dock.save_settings()
    _save_tiny_unet(mine, tiny_unet, interior_threshold=0.95, foreground_threshold=0.6,
                    min_size=618)  # fmt: skip
    dock = session()
    assert dock.unet.checkpoint.key() == str(mine)
    assert _thresholds(dock) == (0.95, 0.6, 618)
    assert dock.preset().unet.interior_threshold == pytest.approx(0.95)
    assert dock.preset().unet.min_size == 618

    # Typed for this file, they come back while the file stays as it is.
    dock.unet.interior_threshold.setValue(0.7)
    dock.save_settings()
    dock = session()
    assert _thresholds(dock) == (0.7, 0.6, 618)
    # Tuned again (or replaced), the file shows its own, and the dock says why.
    _save_tiny_unet(mine, tiny_unet, interior_threshold=0.9, foreground_threshold=0.55,
                    min_size=500)  # fmt: skip
    dock = session()
    assert _thresholds(dock) == (0.9, 0.55, 500)
    assert "changed since its thresholds were set" in dock.unet.status.text()
    # Typed back to the model's own, nothing is left to remember.
    dock.unet.interior_threshold.setValue(0.8)
    dock.save_settings()
    dock.unet.interior_threshold.setValue(0.9)
    dock.save_settings()
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    assert store.value("unet/model_settings") is None


def test_thresholds_of_one_model_are_not_given_to_another_by_a_second_window(
    make_napari_viewer_proxy, settings, tiny_unet, model_folder
):
    """Two napari windows: one picked a tuned model, the other, still on the starter
    model, nudged its interior threshold; the next session showed the tuned model with
    the starter's threshold."""
    viewer = make_napari_viewer_proxy()
    model_folder.mkdir()
    tuned = {"interior_threshold": 0.95, "foreground_threshold": 0.6, "min_size": 300}
    mine = _save_tiny_unet(model_folder / "mine.safetensors", tiny_unet, **tuned)
    first = CytomaskDock(viewer, settings=settings)
    second = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    first.unet.checkpoint.refresh()
    first.unet.checkpoint.set_model(str(mine))
    first.save_settings()
    second.unet.interior_threshold.setValue(0.7)
    second.save_settings()
    again = CytomaskDock(viewer, settings=QSettings(settings.fileName(), settings.format()))
    assert again.unet.checkpoint.key() == str(mine)
    assert _thresholds(again) == (0.95, 0.6, 300)


def test_thresholds_stored_apart_from_their_model_file_are_not_shown(
    make_napari_viewer_proxy, settings
):
    """Thresholds an older version stored by name, without the model file they were set
    for, are not known to belong to the model shown: its own are shown, and they go."""
    settings.beginGroup(GROUP)
    for key, value in (("unet/model", STARTER), ("unet/interior_threshold", 0.3),
                       ("unet/foreground_threshold", 0.4), ("unet/min_size", 30)):  # fmt: skip
        settings.setValue(key, value)
    settings.endGroup()
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    assert _thresholds(dock) == (0.5, 0.95, 570)
    store = QSettings(settings.fileName(), settings.format())
    store.beginGroup(GROUP)
    assert store.allKeys() == ["unet/model"]


def test_step_2_runs_with_one_button_name_for_every_method(make_napari_viewer_proxy, settings):
    """SAM2's button said "Segment" where the U-Net's, and the README, say "Segment
    cytoplasm"."""
    dock = CytomaskDock(make_napari_viewer_proxy(), settings=settings)
    names = {dock.unet.controls.run_button.text(), dock.sam2.controls.run_button.text()}
    assert names == {"Segment cytoplasm"}


@pytest.mark.parametrize("size", WINDOW_SIZES)
def test_the_pixel_size_an_image_records_is_shown_whole(make_napari_viewer, settings, size):
    """At 1280 × 800 step 2 showed '1.08 (image)' as '8 (image)' and '0.0515 (image)' as
    '5 (image)': the box's step buttons left too little room."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*size)
    dock = CytomaskDock(viewer, settings=settings)
    wrapper = viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    dock.steps.setCurrentIndex(1)
    # As narrow as the dock goes (napari gave it 352 px at 1280 × 800).
    viewer.window._qt_window.resizeDocks([wrapper], [0], Qt.Orientation.Horizontal)
    box = dock.unet.pixel_size
    for scale in ((1.0833, 1.0833), (0.0515, 0.0515), (0.4348, 0.4348)):
        layer = viewer.add_image(np.zeros((64, 64), np.uint16), scale=scale, units="µm")
        dock.unet.input.set_layer(layer)
        process_events()
        text = box.text()
        assert text.endswith(" (image)") and text.startswith(f"{scale[1]:.3g}")
        room = box.lineEdit().contentsRect().width()
        assert box.lineEdit().fontMetrics().horizontalAdvance(text) < room, (text, room)


@pytest.mark.gui
def test_step_2_says_when_the_cells_it_made_are_closed(make_napari_viewer_proxy, settings):
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    dock = CytomaskDock(viewer, settings=settings)
    cells = viewer.add_labels(
        np.ones((8, 8), np.uint16), name="U-Net cells", metadata={METADATA_KEY: {"method": "unet"}}
    )
    dock.unet.status.setText("1 cells in 'U-Net cells'.")
    dock.unet.progress.setValue(100)
    dock.export.progress.setValue(100)
    dock.unet.segmented.emit(cells)
    viewer.layers.remove(cells)
    assert dock.unet.status.text() == "'U-Net cells' was closed: segment again to make its cells."
    assert dock.watershed.status.text().startswith("'U-Net cells' was closed")
    # Nor does its bar show their run done; the next file opened clears the line (a long
    # day: the nuclei opened after set1 read "'raw U-Net cells' was closed" at 100%).
    assert dock.unet.progress.value() == 0
    dock.steps.setCurrentIndex(4)
    assert dock.export.progress.value() == 0
    viewer.add_image(np.zeros((8, 8), np.uint16), name="next field")
    assert dock.unet.status.text() == ""


@pytest.mark.gui
def test_a_scan_opened_after_its_cells_goes_under_them(
    make_napari_viewer_proxy, settings, qtbot, tmp_path
):
    """Results reopened the next day, then their scan: napari put the scan's image on top,
    which hid the cells as if they had not opened. Another file's image stays on top."""
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    scan, other = tmp_path / "scan.tif", tmp_path / "other.tif"
    for path in (scan, other):
        tifffile.imwrite(path, np.full((16, 16), 100, np.uint16))
    viewer = make_napari_viewer_proxy()
    dock = CytomaskDock(viewer, settings=settings)
    qtbot.addWidget(dock)
    record = {"role": RESULT_ROLE, "source": str(scan), "method": "unet"}
    viewer.add_labels(np.ones((16, 16), np.uint8), name="cells", metadata={METADATA_KEY: record})
    viewer.open(scan, plugin="napari-cytomask")
    qtbot.waitUntil(lambda: [layer.name for layer in viewer.layers] == ["scan", "cells"])
    viewer.open(other, plugin="napari-cytomask")
    qtbot.wait(50)
    assert [layer.name for layer in viewer.layers] == ["scan", "cells", "other"]
    # Nor an image of that file lying elsewhere (a mosaic of the tiles the cells are of).
    viewer.add_image(np.zeros((32, 32), np.uint16), name="mosaic", metadata={METADATA_KEY: {
        "source": str(scan)}})  # fmt: skip
    qtbot.wait(50)
    assert [layer.name for layer in viewer.layers][-1] == "mosaic"


def _dock_with_cells(viewer, qtbot, settings, live: bool = False):
    """The dock over the synthetic scan, and cells as step 2 leaves them (the scan's ground
    truth, as a U-Net result): ``(viewer, dock, cells)``; step 3's live preview ``live``."""
    viewer.open_sample("napari-cytomask", "tilescan")
    dock = CytomaskDock(viewer, settings=settings)
    qtbot.addWidget(dock)
    dock.watershed.live.setChecked(live)
    cells = viewer.add_labels(
        np.asarray(viewer.layers["Mask (ground truth)"].data).copy(),
        name="cells",
        metadata={"cytomask": {"role": "result", "method": "unet"}},
    )
    return viewer, dock, cells


def _ticks(dock) -> dict[str, bool]:
    items = [dock.export.layer_list.item(i) for i in range(dock.export.layer_list.count())]
    return {item.text(): item.checkState() == Qt.CheckState.Checked for item in items}


def test_a_previewed_frame_of_a_stack_is_no_result_for_metrics_or_export(
    make_napari_viewer_proxy, qtbot, settings
):
    """Step 3's live preview of one position wrote it into "… split", which step 4 then
    scored alone (1 of 4 frames) and step 5 ticked, the other frames empty."""
    viewer, dock, cells = _dock_with_cells(make_napari_viewer_proxy(), qtbot, settings, live=True)
    assert cells.data.ndim == 3  # positions
    dock.unet.segmented.emit(cells)
    dock.watershed.min_area.setValue(dock.watershed.min_area.value() + 5)  # live preview
    qtbot.waitUntil(lambda: "Preview" in dock.watershed.status.text(), timeout=30_000)
    split = viewer.layers[f"{cells.name} split"]
    assert dock.metrics.prediction_combo.currentText() == cells.name
    mask = "Mask (ground truth)"
    assert _ticks(dock) == {mask: False, cells.name: True, split.name: False}
    dock.export.layer_list.item(0).setCheckState(Qt.CheckState.Checked)  # the user's tick
    dock.watershed.apply()
    qtbot.waitUntil(lambda: "Done" in dock.watershed.status.text(), timeout=30_000)
    assert dock.metrics.prediction_combo.currentText() == split.name
    assert _ticks(dock) == {mask: True, cells.name: True, split.name: True}
    # The cells under their split are hidden: both shown, their colours mixed.
    assert not cells.visible and split.visible
    assert dock.watershed.status.text().endswith(
        "'cells' is hidden under it (its eye in the layer list)."
    )
    dock.export.layer_list.item(2).setCheckState(Qt.CheckState.Unchecked)
    dock.watershed.min_area.setValue(dock.watershed.min_area.value() + 5)  # previewed again
    qtbot.waitUntil(lambda: "Preview" in dock.watershed.status.text(), timeout=30_000)
    dock.export.refresh()
    assert _ticks(dock) == {mask: True, cells.name: True, split.name: False}  # as ticked


def test_cells_segmented_again_take_the_split_of_the_earlier_ones_away(
    make_napari_viewer_proxy, qtbot, settings
):
    """Running step 2 again wrote new cells in place under the split of the earlier ones,
    which stayed on top of them, hiding them, and ticked for export as their split."""
    viewer, dock, cells = _dock_with_cells(make_napari_viewer_proxy(), qtbot, settings)
    other = viewer.add_labels(np.asarray(cells.data).copy(), name="other cells")
    for layer in (cells, other):
        dock.unet.segmented.emit(layer)
        _split_in_step_3(dock, qtbot, layer)
    dock.unet.segmented.emit(cells)  # segmented again, into the same layer
    assert "cells split" not in viewer.layers and "other cells split" in viewer.layers
    said = (
        "'cells split', the split of the cells 'cells' held before, was removed: Apply in "
        "Split splits these."
    )
    # Said in step 3, and in step 2, on show as the layer went; the new cells, which the
    # split's Apply hid, are shown (they were left hidden, nothing on show).
    assert dock.watershed.status.text().endswith(said) and dock.unet.status.text().endswith(said)
    assert cells.visible
    # Painted into, or renamed, it is the user's.
    _split_in_step_3(dock, qtbot, cells)
    split = viewer.layers["cells split"]
    split.data[(0, *np.argwhere(split.data[0])[0])] = 0  # a correction by hand
    split.refresh()
    dock.unet.segmented.emit(cells)
    yours = (
        "a split of the cells 'cells' held before, is yours (painted into or renamed) and "
        "kept; Apply in Split puts the split of these in a layer of its own."
    )
    assert split in viewer.layers and dock.watershed.status.text().endswith(
        f"'cells split', {yours}"
    )
    viewer.layers.remove(split)
    _split_in_step_3(dock, qtbot, cells)
    viewer.layers["cells split"].name = "cells split to keep"
    dock.unet.segmented.emit(cells)
    assert dock.watershed.status.text().endswith(f"'cells split to keep', {yours}")
    viewer.layers.remove("cells split to keep")
    # The cells renamed to keep them, and new cells under their old name: the split of
    # the renamed ones is theirs (it was taken away, never exported).
    _split_in_step_3(dock, qtbot, cells)
    cells.name = "corrected cells"
    again = viewer.add_labels(
        np.asarray(cells.data).copy(), name="cells", metadata=dict(cells.metadata)
    )
    dock.unet.segmented.emit(again)
    assert "cells split" in viewer.layers and "held before" not in dock.watershed.status.text()
    viewer.layers.remove(again)
    viewer.layers.remove("cells split")
    cells.name = "cells"
    # The cells of another file under that name: its split is no split of theirs.
    _split_in_step_3(dock, qtbot, cells)
    plate_b = viewer.add_labels(
        np.asarray(cells.data).copy(),
        metadata={"cytomask": {**cells.metadata["cytomask"], "source": "/data/b.tif"}},
    )
    viewer.layers.remove(cells)
    plate_b.name = "cells"
    dock.unet.segmented.emit(plate_b)
    assert "cells split" in viewer.layers and "held before" not in dock.watershed.status.text()


def test_cells_segmented_again_while_their_split_is_applied_stop_it_and_take_it_away(
    make_napari_viewer_proxy, qtbot, settings
):
    """Step 2 written into the cells while step 3's Apply split them: napari crashed (a
    notification shown as the split was taken away while the Apply's worker wound down)."""
    viewer, dock, cells = _dock_with_cells(make_napari_viewer_proxy(), qtbot, settings)
    dock.unet.segmented.emit(cells)
    _split_in_step_3(dock, qtbot, cells)
    dock.watershed.apply()
    assert dock.watershed.applying()
    cells.data = np.roll(np.asarray(cells.data), 30, axis=-1)  # step 2 writes new cells
    dock.unet.segmented.emit(cells)
    assert "cells split" not in viewer.layers
    qtbot.waitUntil(lambda: not dock.watershed.runner.busy, timeout=30_000)
    process_events(50)
    assert "cells split" not in viewer.layers  # the stopped Apply brings none back
    assert dock.watershed.input.layer().unique_id == cells.unique_id


def test_the_dock_keeps_its_width_when_its_channels_table_is_rebuilt(
    make_napari_viewer, qtbot, settings, real_scan
):
    """The Channels table's role pickers, made as the dock was shown, measured without
    napari's style sheet, which reaches the dock after (138 px for 177): the first rebuild
    (a result added, during a SAM2 run) widened the dock by 17 px, narrowing the canvas."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    add_real_scan(viewer, real_scan)
    dock = CytomaskDock(viewer, settings=settings)
    viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    process_events(20)
    width, least = dock.width(), dock.minimumSizeHint().width()
    dock.steps.setCurrentIndex(1)
    viewer.add_labels(np.zeros((64, 64), np.uint16), name="cells")
    process_events(20)
    dock.steps.setCurrentIndex(0)
    process_events(20)
    assert dock.roles.table.rowCount() == len(channel_layers(viewer.layers))
    assert (dock.width(), dock.minimumSizeHint().width()) == (width, least)
