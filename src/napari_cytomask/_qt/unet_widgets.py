"""napari docks to segment with a trained U-Net and to train (or fine-tune) one.

Both run the Qt-free generators of :mod:`napari_cytomask.models` through the
one step runner of :mod:`._live` (thread worker, progress, Cancel, one error
notification).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import napari
import numpy as np
from napari.layers import Image, Labels, Layer
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.compat import isalive
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..io.layers import (
    METADATA_KEY,
    PIXEL_SIZE_RANGE_UM,
    edited_frames,
    frame_key,
    frame_notes,
    frame_record,
    frames_made_of,
    is_highlight,
    layer_info,
    made_by_model,
    model_record,
    named_frame,
    named_frames,
    nothing_to_find,
    pixel_size_um,
    record_written,
    result_metadata,
)
from ..labels import GREY_VERSION, grey_version, largest_elsewhere, numbered_above
from ..models.catalog import (
    STARTER,
    STARTER_PIXEL_SIZE_UM,
    enlargement_ahead,
    image_area,
    learnt_pixel_size,
    pixel_sizes,
    resampled_note,
    resolve_unet,
    unet_models,
    unlike_starter_images,
)
from ..models.checkpoint import (
    USABLE_F1,
    cache_dir,
    chosen_scores,
    config_of,
    read_description,
    unfinished,
)
from ..models.device import available_devices, get_device
from ..models.inference import (
    PredictorCache,
    Segmentation,
    check_overlap,
    confidence_sample,
    iter_segment,
    recommended_settings,
    sampled_confidence,
)
from ..models.unet import UNetConfig
from ..pipeline import UNetStep
from ..progress import Pace, duration
from ..roles import other_files, role_of, scan_files, source_of
from ._layers import (
    ALL_POSITIONS,
    CURRENT_POSITION,
    FramesChoice,
    LayerPicker,
    add_result,
    calibrate,
    cells_in,
    closed_during_run,
    forget_edits,
    frame_on_show,
    labels_layer,
    lay_over,
    misplaced_note,
    pixel_events,
    resolution_level,
    result_slot,
    write_frames,
)
from ._live import (
    CHANNEL_ROLES,
    SETTINGS_MIN_HEIGHT,
    DecimalSpinBox,
    NothingToRun,
    Runner,
    StepControls,
    StepWidget,
    ask_yes_no,
    failed,
    no_image_to_segment,
    number_box,
    scrolled,
    step_page,
    typed_path,
)
from ._plot import PlotCanvas
from ._settings import set_value

ENCODERS = ("resnet18", "resnet34", "resnet50", "efficientnet-b0", "efficientnet-b3")
#: Training settings that fit the device: minutes on a CPU, the full recipe on a GPU.
TRAINING_DEFAULTS = {
    "cpu": {"encoder": "resnet18", "encoder_depth": 4, "epochs": 5, "steps": 20,
            "batch_size": 2, "crop_size": 256},
    "gpu": {"encoder": "resnet34", "encoder_depth": 5, "epochs": 50, "steps": 100,
            "batch_size": 8, "crop_size": 256},
}  # fmt: skip
#: Seconds per training step per million crop pixels (batch × crop²), for the estimate
#: shown before training: 3 measured with resnet18 (depth 4) on a 2-core Intel Xeon with
#: nothing else running (0.38 s a step of 2 crops of 256²); with other work beside it the
#: same machine took up to 8 times as long (24 on a busy 2-core AMD EPYC), which the
#: status measures once training runs. The GPU figure is assumed, not measured.
_SECONDS_PER_MEGAPIXEL = {"cpu": 3.0, "gpu": 0.05}
#: Seconds per megapixel of validation images, for the same estimate: a pass of the
#: network over them, and scoring the cells it finds at one setting of the thresholds,
#: or at each of the about 70 that choosing them tries (on the CPU, whatever the device).
#: Measured with the starter model on a Usiigaci image (1 megapixel) on the machine
#: above, nothing else running: a pass 1.2 s, a validation 1.3 s, choosing the thresholds
#: 12 s with its four flipped passes. The GPU's network figure is assumed. Left out, a
#: 5-step run was said to take 1 s, and took 101 s (on that machine under load).
_NETWORK_SECONDS_PER_MEGAPIXEL = {"cpu": 1.2, "gpu": 0.2}
_SCORING_SECONDS_PER_MEGAPIXEL = 0.15
_TUNING_SECONDS_PER_MEGAPIXEL = 7.5
#: The network's passes over the validation images as the thresholds are chosen after
#: the last epoch: the four flips of test-time augmentation, as segmenting predicts.
_TUNING_PASSES = 4
#: What the training status calls the network a fine-tuning run starts from (its epoch 0).
_STARTING_MODEL = "Before the first epoch, the starting model"
START_RANDOM, START_STARTER, START_CHECKPOINT = (
    "random weights (ImageNet encoder)",
    "the starter model (fine-tune)",
    "a checkpoint (fine-tune)…",
)


def _form() -> QFormLayout:
    form = QFormLayout()
    # Narrow docks put a long label above its field instead of cutting it.
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return form


class _PixelSizeBox(DecimalSpinBox):
    """The input's pixel size: at its lowest it shows the size the input records
    (``recorded``, X), and an arrow key or the wheel steps from that size, not from 0.

    Without step buttons, which are of little use for a size read off the microscope: in
    a dock of napari's default width they left room for "8 (image)" of "1.08 (image)".
    """

    recorded: float | None = None

    def __init__(self, tip: str):
        super().__init__()
        self.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.setDecimals(4)
        self.setRange(0, PIXEL_SIZE_RANGE_UM[1])  # 0: none typed
        self.setSingleStep(0.05)
        self._tip = tip
        self.setToolTip(tip)

    def show_recorded(
        self, pixel: tuple[float, float] | None, absent: str = "not in image"
    ) -> None:
        """Show what the input records (``pixel``, (Y, X) µm; else ``absent``) at the box's
        lowest, and take it when there is one; the text is shown from its start if it does
        not fit, and whole in the tooltip ("0.435 × 0.87 (image)" is cut in a narrow dock)."""
        self.setSpecialValueText(
            absent if pixel is None else f"{pixel_sizes(pixel, unit='')} (image)"
        )
        recorded = ""
        if pixel is not None:
            sizes = pixel_sizes(pixel)
            recorded = f" The image has pixels of {sizes}{' (Y × X)' * ('×' in sizes)}."
        self.setToolTip(f"{self._tip}{recorded}")
        self.recorded = None if pixel is None else pixel[1]
        if pixel is not None:
            self.setValue(self.minimum())
        self.lineEdit().setCursorPosition(0)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        if self.value() == self.minimum() and self.recorded:
            self.setValue(self.recorded)
        super().stepBy(steps)


class _PixelSizeRow(QWidget):
    """A :class:`_PixelSizeBox` and its *resample* switch, for the image layer it follows
    (:meth:`follow`; the one chosen in ``picker`` when given) or for image files. It shows
    what the layer records, and follows a pixel size given to the layer later (layer
    properties, a script); :attr:`changed` says that the size or the switch may differ.

    A size typed for a layer is kept for that layer, by every row: one typed while
    segmenting an image that lost its own holds for training on it too, and for the
    layer chosen again after another.
    """

    #: The sizes typed for layers, shared by every row; a layer's later scale replaces it.
    _typed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _rows: weakref.WeakSet = weakref.WeakSet()
    #: Emitted when the layer followed, the size typed or the *resample* switch changed.
    changed = Signal()

    def __init__(self, tip: str, resample_tip: str, picker: LayerPicker | None = None):
        super().__init__()
        self.box = _PixelSizeBox(tip)
        self.resample = QCheckBox("resample")
        self.resample.setToolTip(resample_tip)
        self.resample.setChecked(UNetStep.resample)
        self.resample.setAccessibleName("Resample for the model")  # not the row's name
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.box, 1)
        row.addWidget(self.resample)
        self._layer = None  # the layer shown, whose scale is followed
        self._showing = False
        self._for_files = 0.0  # the size typed for image files (no layer)
        self.box.valueChanged.connect(self._typed_for_layer)
        self.box.valueChanged.connect(self.changed)
        self.resample.toggled.connect(self.changed)
        self._rows.add(self)
        if picker is not None:
            picker.currentIndexChanged.connect(lambda *_: self.follow(picker.layer()))
            self.follow(picker.layer())

    def follow(self, layer, absent: str = "not in image") -> None:
        """Show the pixel size of ``layer`` (None: image files, ``absent`` at the lowest):
        the one typed for it, else the one it records."""
        if not isalive(self):
            return
        if layer is not self._layer:
            for event in _scale_events(self._layer):
                event.disconnect(self._scale_changed)
            for event in _scale_events(layer):
                event.connect(self._scale_changed)
            self._layer = layer
        self._showing = True
        try:
            recorded = None if layer is None else _recorded_pixel_size(layer)
            self.box.show_recorded(recorded, absent)
            typed = self._for_files if layer is None else self._typed.get(layer, 0.0)
            self.box.setValue(max(typed, self.box.minimum()))
        finally:
            self._showing = False
        self.box.lineEdit().setCursorPosition(0)
        self.changed.emit()

    def _scale_changed(self, *_) -> None:
        if _recorded_pixel_size(self._layer) is not None:
            self._typed.pop(self._layer, None)  # a pixel size given now is the layer's word
        self.follow(self._layer)

    def _typed_for_layer(self, value: float) -> None:
        if self._showing:
            return
        if self._layer is None:
            self._for_files = value
        elif value > self.box.minimum():
            self._typed[self._layer] = value
        else:
            self._typed.pop(self._layer, None)
        for row in list(self._rows):
            if row is not self and row._layer is self._layer is not None:
                row.follow(self._layer)

    def pixel_size(self, layer=None) -> tuple[float, float] | None:
        """The (Y, X) pixel size in µm to use for ``layer``: the one typed, else the one
        it records (None: not known). Raises ValueError for a size typed finer than a
        microscope gives (:data:`PIXEL_SIZE_RANGE_UM`), which the reader would drop."""
        typed = self.box.value()
        if 0 < typed < PIXEL_SIZE_RANGE_UM[0]:  # labels saved with it opened without it
            raise ValueError(
                f"A pixel size of {typed:g} µm is finer than a microscope gives (from "
                f"{PIXEL_SIZE_RANGE_UM[0]:g} µm): type it in µm, or 0 for the image's own."
            )
        if typed:
            return (typed, typed)
        return None if layer is None else _recorded_pixel_size(layer)


def _stamp(key: str) -> int | None:
    """When a model's file last changed; None when it is gone."""
    try:
        return resolve_unet(key).stat().st_mtime_ns
    except (ValueError, OSError):
        return None


class _ListedOnOpening(QComboBox):
    """A drop-down that lists its entries again as it opens (``relist``).

    Closed, a name too long for it is cut in the middle: models fine-tuned from one
    another differ in the date and time at their end, which a cut at the end hid.
    """

    def __init__(self, relist: Callable[[], None]):
        super().__init__()
        self._relist = relist

    def showPopup(self) -> None:
        self._relist()
        super().showPopup()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox,
            option,
            QStyle.SubControl.SC_ComboBoxEditField,
            self,
        )
        option.currentText = self.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideMiddle, field.width()
        )
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class _ModelPicker(QWidget):
    """The U-Net models a user can pick (starter model first), plus any other file.

    As a remembered setting its value is the model's key, so a file opened from
    anywhere comes back in the next session too. The list is made again as it opens:
    a model trained in another dock, or copied into the model folder, is in it.
    """

    #: Emitted with the key of the newly selected model.
    valueChanged = Signal(str)

    def __init__(self):
        super().__init__()
        self.combo = _ListedOnOpening(self._relist_on_opening)
        self.combo.setMinimumContentsLength(12)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        browse = QPushButton("Open…")
        browse.setToolTip("Use a U-Net checkpoint file (.safetensors) from anywhere.")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(browse)
        self.stamp: int | None = None  # the selected model file's time of change
        self.combo.currentIndexChanged.connect(self._selected)
        self.combo.currentIndexChanged.connect(self._tip)
        self.refresh()

    def _selected(self, _index=None) -> None:
        key = self.value()
        self.stamp = _stamp(key) if key else None
        self.valueChanged.emit(key)

    def _tip(self, *_) -> None:
        """Name the selected model in full in the tooltip: a narrow dock cuts it."""
        about = (
            "The U-Net that segments: the starter model shipped with the plugin, then your "
            f"own models (in {cache_dir()}), newest first."
        )
        index = self.combo.currentIndex()
        if index >= 0:
            details = self.combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
            about = f"{self.combo.currentText()}: {details}\n\n{about}"
        self.combo.setToolTip(about)

    def _relist_on_opening(self) -> None:
        """List the models again as the list opens, keeping the thresholds typed for the
        selected model, unless its file changed since it was selected: trained again
        elsewhere (its new thresholds are shown), or deleted (which is said)."""
        key = self.key()
        if key is not None and _stamp(key) != self.stamp:
            self.combo.currentIndexChanged.emit(self.combo.currentIndex())
        self.refresh(said_again=False)

    def refresh(self, said_again: bool = True) -> None:
        """List the models again, keeping the selection; ``said_again``: say the selection
        (``valueChanged``) even when it is the same model, whose file may have been
        rewritten (trained again), so that its recorded thresholds are shown."""
        current = self.key()
        self.combo.blockSignals(True)
        self.combo.clear()
        unusable: list[tuple[Path, str]] = []
        for entry in unet_models(unusable=unusable):
            try:
                self._add(entry.key, entry.title, entry.path)
            except ValueError as err:  # the starter model of a damaged installation
                unusable.append((entry.path, str(err)))
        # Files in the model folder that cannot be used are shown, greyed out, with why:
        # a model that vanished from the list would leave the user guessing.
        for path, why in unusable:
            self.combo.addItem(f"{path.stem} (not usable)")
            index = self.combo.count() - 1
            self.combo.setItemData(index, why, Qt.ItemDataRole.ToolTipRole)
            self.combo.model().item(index).setEnabled(False)
        self.combo.blockSignals(False)
        if current is not None:
            self.combo.blockSignals(True)
            with contextlib.suppress(ValueError):  # a file deleted meanwhile: not listed
                self.set_model(current)
            self.combo.blockSignals(False)
        if said_again or current is None or self.key() != current:
            self.combo.currentIndexChanged.emit(self.combo.currentIndex())

    def _add(self, key: str, title: str, path: Path) -> None:
        try:
            desc = read_description(path)
        except ValueError as err:
            raise ValueError(f"{path.name} is not a usable U-Net checkpoint: {err}") from err
        # With the thresholds it segments with, not those its epochs were compared at.
        val = chosen_scores(desc)
        score = f", validation F1@0.5 {val['f1_50']:.2f}" if "f1_50" in val else ""
        details = f"{path} ({desc['encoder']}{score})"
        if unfinished(desc):
            title = f"{title} (unfinished)"
            details += (
                "; the best network so far of a training run that was stopped, before its "
                "thresholds were chosen: finish it with Train a model > Resume from"
            )
        elif val.get("f1_50", USABLE_F1) < USABLE_F1:  # looked like every other model
            title = f"{title} (not ready)"
            details += (
                "; it finds few of its validation images' cells: train it for longer or on "
                "more labelled images"
            )
        self.combo.addItem(title, key)
        self.combo.setItemData(self.combo.count() - 1, details, Qt.ItemDataRole.ToolTipRole)
        self._tip()  # adding the first item selected it before its details were set

    def set_model(self, key) -> None:
        """Select a model by key (``"starter"`` or a file), adding a file not listed yet.

        Raises
        ------
        ValueError
            When the file is not a usable checkpoint.
        """
        key = str(key)
        index = self.combo.findData(key)
        if index < 0:
            path = resolve_unet(key)
            self._add(key, path.stem, path)
            index = self.combo.findData(key)
        self.combo.setCurrentIndex(index)

    def value(self) -> str:
        """The selected model's key (empty without models)."""
        return self.key() or ""

    def setValue(self, key: str) -> None:
        """Select a remembered model (:meth:`set_model`): one whose file is gone or cannot
        be used raises ValueError and leaves the selection as it is, so that restoring the
        settings says which model is shown instead of it."""
        self.set_model(key)

    def key(self) -> str | None:
        """The selected model: ``"starter"`` or a checkpoint path; ``None`` without models."""
        data = self.combo.currentData()
        return str(data) if data else None

    def path(self) -> Path | None:
        """The selected model's checkpoint file."""
        key = self.key()
        return resolve_unet(key) if key else None

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a U-Net checkpoint", str(cache_dir()), "Checkpoints (*.safetensors)"
        )
        if path:
            try:
                self.set_model(path)
            except ValueError as err:
                show_error(str(err))


def _cells_name(layer) -> str:
    """The name of the layer the U-Net's cells of ``layer`` go to."""
    return f"{layer.name} U-Net cells"


class UNetSegmentWidget(StepWidget, QWidget):
    """Segment cytoplasm with a U-Net (probabilities and cells), or train one first.

    Two tabs: *Segment* and *Train a model*; a user without a model is sent to
    the second, whose new model is then selected in the first.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are segmented.
    """

    #: Emitted with the cells Labels layer when a run has finished.
    segmented = Signal(object)
    #: Settings the selected model recommends, remembered only when typed for its file
    #: (see :meth:`typed_model_settings`).
    MODEL_SETTINGS = ("interior_threshold", "foreground_threshold", "min_size")

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._predictors = PredictorCache()
        #: The run under way, with the frames of a stack it has segmented, for
        #: :meth:`cancel` to keep.
        self._under_way: _Run | None = None
        self.checkpoint = _ModelPicker()
        self.train_button = QPushButton("Train a model…")
        self.train_button.setToolTip(
            "Train a U-Net on your own images (the scan's mask channel or label layers), or "
            "fine-tune the starter model on them."
        )
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setToolTip("Where the U-Net runs; auto picks a GPU when there is one.")
        self.input = LayerPicker(
            napari_viewer, Image, prefer_role="input", tooltip="The image to segment."
        )
        self.positions = FramesChoice(
            self.input,
            (ALL_POSITIONS, CURRENT_POSITION),
            "For tile scans, time-lapses and Z stacks: segment every position (time point, "
            "plane), or only the one on show (a quick look at the cells; the others are left "
            "empty until segmented).",
        )
        self.tile_size = number_box(
            0,
            4096,
            0,
            "Tile edge in pixels; 'from the model' uses the size it was trained for, "
            "enlarged by up to a quarter where fewer tiles then cover the image (a "
            "1022 x 1024 image: 4 tiles instead of 9). Tiles under 256 px see too little "
            "around a cell and find fewer cells.",
            32,
            special="from the model",
        )
        self.overlap = number_box(
            0,
            1024,
            64,
            "Pixels shared by neighbouring tiles; blended smoothly so tiles leave no seams.",
            8,
        )
        self.batch_size = number_box(
            0, 256, 0, "Tiles per forward pass; auto: 8 on a GPU, 1 on the CPU.", special="auto"
        )
        self.show_maps = QCheckBox("Also add the probability maps as layers")
        self.show_maps.setToolTip(
            "Hidden Image layers with the interior and boundary probabilities, e.g. for the "
            "watershed step's 'Interior + boundary maps'. Each new layer costs the viewer time."
        )
        self.tta = QCheckBox("Flip test-time augmentation (4× slower)")
        self.tta.setToolTip(
            "Average the predictions of flipped copies: more accurate cells (the thresholds "
            "of the starter model were chosen with it), four times the computing. Untick for speed."
        )
        self.tta.setChecked(UNetStep.tta)
        self.pixels = _PixelSizeRow(
            "The input's pixel size in µm. At its lowest, the box shows the size the image "
            "has (its layer's scale: the file's, or one typed here for an earlier run, "
            "which gave it to the layers), which is then used; give one for files that lost "
            "it, or hold a wrong one.",
            "Resample the image to the model's pixel size for the network, when both are "
            f"known (the starter model's is {STARTER_PIXEL_SIZE_UM} µm; a model trained here "
            "knows its images' when they record one), so cells are as large in pixels as "
            "those it learnt from. The cells keep the image's pixels; the minimum cell size "
            "stays in the model's.",
            self.input,
        )
        self.pixel_size, self.resample = self.pixels.box, self.pixels.resample
        # What the pixel size will cost, said before a run (hidden when it costs nothing).
        self.scale_note = QLabel()
        self.scale_note.setWordWrap(True)
        self.scale_note.hide()
        self.tile_note = QLabel()  # an overlap that does not fit, said as it is set
        self.tile_note.setWordWrap(True)
        self.tile_note.hide()
        self._config: UNetConfig | None = None  # the selected model's network
        self._learnt: tuple[float, float] | None = None  # the selected model's pixel size
        #: The MODEL_SETTINGS the selected model recommends, as the boxes show them.
        self._recommended: dict | None = None
        self.pixels.changed.connect(self._show_scale_note)
        self.interior_threshold = number_box(
            0.001,
            0.999,
            0.5,
            "Interior probability above which a pixel seeds a cell: higher gives smaller "
            "seeds, so touching cells are split more often (and more cells found).",
            0.05,
            decimals=3,  # as tuning chooses them (0.955)
        )
        self.foreground_threshold = number_box(
            0.001,
            0.999,
            0.5,
            "Interior + boundary probability above which a pixel belongs to a cell.",
            0.05,
            decimals=3,  # as tuning chooses them (0.955)
        )
        self.min_size = number_box(
            0,
            100000,
            0,
            "Cells with fewer pixels are dropped, counted at the model's pixel size when the "
            "image is resampled for it: 570 px there are 2280 of an image at twice its "
            "magnification.",
            10,
        )
        self.controls = StepControls(
            "Segment cytoplasm", "Segment the input image with the chosen model."
        )
        self.controls.run_button.clicked.connect(self.segment)
        self.controls.cancel_button.clicked.connect(self.cancel)
        self.runner = Runner(
            self._on_result,
            self.controls,
            describe_error=lambda err: failed(
                "U-Net segmentation",
                err,
                "Lower Tile size or Tiles per batch (under Tiles), or choose the CPU as Device.",
                # A whole frame's probabilities may be what did not fit, not the tiles.
                "Close other programs or lower Tiles per batch (under Tiles). An image of "
                "many megapixels can be segmented chunk by chunk on the command line: "
                "cytomask segment --chunked-above 16 (frames of more than 16 megapixels).",
            ),
            on_finished=self._run_over,
            parent=self,
        )
        self.say_when_made_closed(self.viewer, self.segmented)
        # The fields kept for the result (which layer, what to call it).
        self._job: dict = {}

        content = QWidget()
        form = _form()
        form.addRow("Model", self.checkpoint)
        form.addRow(self.train_button)
        form.addRow("Input image", self.input)
        form.addRow(self.positions.label, self.positions)
        form.addRow("Pixel size (µm)", self.pixels)
        form.addRow(self.scale_note)
        form.addRow("Device", self.device)
        post = QGroupBox("Cells from probabilities")
        post_form = _form()
        post_form.addRow("Interior threshold", self.interior_threshold)
        post_form.addRow("Foreground threshold", self.foreground_threshold)
        post_form.addRow("Minimum cell size (px)", self.min_size)
        post.setLayout(post_form)
        tiles = QGroupBox("Tiles")
        tile_form = _form()
        tile_form.addRow("Tile size", self.tile_size)
        tile_form.addRow("Tile overlap", self.overlap)
        tile_form.addRow(self.tile_note)
        tile_form.addRow("Tiles per batch", self.batch_size)
        tile_form.addRow(self.tta)
        tile_form.addRow(self.show_maps)
        tiles.setLayout(tile_form)
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addWidget(post)
        column.addWidget(tiles)
        column.addStretch()
        segment_tab = QWidget()
        step_page(segment_tab, content, self.controls)

        self.trainer = UNetTrainWidget(napari_viewer)
        self.trainer.trained.connect(self._use_trained)
        self._trained: Path | None = None  # trained during a segmentation: see _use_trained
        self.controls.running_changed.connect(self._use_trained_after_run)
        self.tabs = QTabWidget()
        self.tabs.addTab(segment_tab, "Segment")
        self.tabs.addTab(self.trainer, "Train a model")
        self.tabs.setTabToolTip(0, "Segment with a model.")
        self.tabs.setTabToolTip(1, "Train or fine-tune a model on your labelled images.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.train_button.clicked.connect(lambda: self.tabs.setCurrentIndex(1))
        self.checkpoint.combo.currentIndexChanged.connect(self._use_model_settings)
        self.tile_size.valueChanged.connect(self._check_tiles)
        self.overlap.valueChanged.connect(self._check_tiles)
        self._use_model_settings()
        self.bind_keys()  # the training tab's too: see shown_controls

    def shown_controls(self) -> StepControls:
        return self.trainer.controls if self.tabs.currentWidget() is self.trainer else self.controls

    def settings_controls(self) -> dict[str, QWidget]:
        """Remembered controls by parameter name (the model first: it sets thresholds)."""
        return {
            "model": self.checkpoint,
            "device": self.device,
            "positions": self.positions,
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "batch_size": self.batch_size,
            "tta": self.tta,
            "resample": self.resample,
            "show_maps": self.show_maps,
            "interior_threshold": self.interior_threshold,
            "foreground_threshold": self.foreground_threshold,
            "min_size": self.min_size,
        }

    def _show_scale_note(self) -> None:
        """Say what resampling the input for the selected model will cost, before a run."""
        layer = self.input.layer()
        try:
            pixel = None if layer is None else self.pixels.pixel_size(layer)
            note = enlargement_ahead(pixel, self._learnt) if self.resample.isChecked() else ""
        except ValueError as err:  # a size typed too fine: said as it is typed
            note = str(err)
        self.scale_note.setText(note)
        self.scale_note.setVisible(bool(note))

    def _check_tiles(self, *_) -> None:
        """Say at once when the tile overlap does not fit in the selected model's tiles."""
        problem = ""
        if self._config is not None:
            try:
                check_overlap(self._config, self.tile_size.value() or None, self.overlap.value())
            except ValueError as err:
                problem = str(err)
        self.tile_note.setText(problem[:1].upper() + problem[1:])
        self.tile_note.setVisible(bool(problem))

    def _use_model_settings(self) -> None:
        """Show the post-processing settings the selected model recommends."""
        self._learnt = self._recommended = self._config = None
        self._show_scale_note()
        self._check_tiles()
        if self.checkpoint.key() is None:
            self.status.setText(
                "No U-Net model yet: press 'Train a model…' to train one on this scan's mask "
                "channel (minutes on a CPU), or open a .safetensors file."
            )
            return
        name, key = self.checkpoint.combo.currentText(), self.checkpoint.key()
        try:
            description = read_description(self.checkpoint.path())
        except ValueError as err:
            # Deleted or damaged since the list was made: list the models there are now.
            what = f"can no longer be read ({err})" if Path(key).is_file() else "was deleted"
            self.checkpoint.refresh()
            self.status.setText(
                f"Model '{name}' {what} after it was listed; the list shows the models there "
                f"are now: '{self.checkpoint.combo.currentText()}' is selected."
            )
            return
        self._learnt = learnt_pixel_size(description)
        self._show_scale_note()
        self._config = config_of(description)
        self._check_tiles()
        settings = recommended_settings(description)
        self.interior_threshold.setValue(settings["interior_threshold"])
        self.foreground_threshold.setValue(settings["foreground_threshold"])
        self.min_size.setValue(int(settings["min_size"]))
        self._recommended = self._model_settings()
        if self.status.text().startswith("No U-Net model yet"):
            self.status.setText("")

    def _model_settings(self) -> dict:
        """The MODEL_SETTINGS shown, by name."""
        return {name: getattr(self, name).value() for name in self.MODEL_SETTINGS}

    def typed_model_settings(self) -> dict | None:
        """The MODEL_SETTINGS typed for the selected model, with its key and the state of
        its file (``"model"``, ``"file"``); ``None`` when they are those the model records."""
        shown = self._model_settings()
        if self._recommended is None or shown == self._recommended:
            return None
        return {"model": self.checkpoint.key(), "file": self.checkpoint.stamp, **shown}

    def use_typed_model_settings(self, typed: dict) -> None:
        """Show MODEL_SETTINGS typed before (as :meth:`typed_model_settings` gave them) when
        they were typed for the selected model's file as it is now. A file changed since
        (tuned, trained again or replaced) keeps the thresholds it records, which is said.

        Raises
        ------
        ValueError
            When ``typed`` does not hold them as numbers.
        """
        if not isinstance(typed, dict) or not set(self.MODEL_SETTINGS) <= typed.keys():
            raise ValueError(f"{typed!r} does not hold {', '.join(self.MODEL_SETTINGS)}")
        if typed.get("model") != self.checkpoint.key():
            return
        if typed.get("file") != self.checkpoint.stamp:
            self.status.setText(
                f"Model '{self.checkpoint.combo.currentText()}' changed since its thresholds "
                "were set here (tuned or trained again): it shows the thresholds it records "
                "now."
            )
            return
        for name in self.MODEL_SETTINGS:
            set_value(getattr(self, name), typed[name])

    def _use_trained(self, checkpoint: Path) -> None:
        """A model trained here becomes the selected one, ready to segment. While a
        segmentation runs, once it has ended: it swapped the model and thresholds under
        the run, which went on with the old ones, and said "press Segment cytoplasm" with
        the button greyed."""
        if self.runner.busy:
            self._trained = checkpoint
            return
        self._select_trained(
            checkpoint, f"Model {checkpoint.stem} is ready: press Segment cytoplasm."
        )

    def _use_trained_after_run(self, running: bool) -> None:
        """Select the model trained during the segmentation that has just ended, after
        what that run said."""
        if running or self._trained is None:
            return
        checkpoint, self._trained = self._trained, None
        self._select_trained(
            checkpoint,
            f"{self.status.text()} Model {checkpoint.stem} was trained meanwhile and is now "
            "selected: press Segment cytoplasm to segment with it.",
        )

    def _select_trained(self, checkpoint: Path, said: str) -> None:
        self.checkpoint.refresh()
        self.checkpoint.set_model(checkpoint)
        self.tabs.setCurrentIndex(0)
        self.status.setText(" ".join(filter(None, (said, self.trainer.headline))))

    def _channels(self, layer, n: int, index: tuple = ()) -> list:
        """The ``n`` full-resolution input arrays of the frame at ``index`` (every frame:
        ``()``): the layer, then other image channels of the same scan. A colour layer
        gives its colours; to a model of one channel, its grey version (not its red alone,
        which lost a bluish picture's cells)."""
        data = resolution_level(layer)[0][index]
        if layer.rgb:
            if n == 1:
                return [grey_version(data)]
            return [data[..., c] for c in range(min(n, data.shape[-1]))]
        channels = [data]
        if n > 1:
            source = source_of(layer)
            others = [
                ly
                for ly in self.viewer.layers
                if ly is not layer
                and isinstance(ly, Image)
                and source is not None
                and source_of(ly) == source
                and role_of(ly) in ("input", "image")
            ]
            channels += [resolution_level(ly)[0][index] for ly in others[: n - 1]]
        return channels

    def step(self) -> UNetStep:
        """The model and settings the widget shows.

        Raises
        ------
        ValueError
            When no model is selected.
        """
        key = self.checkpoint.key()
        if key is None:
            raise ValueError(
                "No U-Net model is selected: train one with 'Train a model…' or open a "
                ".safetensors file."
            )
        return UNetStep(
            model=key,
            tile_size=self.tile_size.value() or None,
            overlap=self.overlap.value(),
            batch_size=self.batch_size.value(),
            tta=self.tta.isChecked(),
            resample=self.resample.isChecked(),
            interior_threshold=self.interior_threshold.value(),
            foreground_threshold=self.foreground_threshold.value(),
            min_size=self.min_size.value(),
        )

    def segment(self) -> None:
        """Start segmenting the input layer in a worker thread."""
        layer = self.input.layer()
        try:
            if layer is None:
                raise NothingToRun(no_image_to_segment(self.viewer, "Input image"))
            step = self.step()
            pixel = self.pixels.pixel_size(layer)
        except ValueError as err:
            self.runner.fail(err)
            return
        typed = self.pixel_size.value()
        if typed > self.pixel_size.minimum():
            changed = calibrate(self.viewer, layer, typed)
            if changed:
                self.viewer.reset_view()  # the image changed size: all of it in view again
                names = ", ".join(f"'{other.name}'" for other in changed)
                show_info(
                    f"{names} now {'has' if len(changed) == 1 else 'have'} pixels of {typed:g} µm, "
                    "the size typed under Pixel size: the scale bar, the cells and their "
                    "exported areas use it."
                )
        index = ()
        if self.positions.key() == CURRENT_POSITION:
            shape = resolution_level(layer)[0].shape
            index = frame_on_show(self.viewer, layer, shape[:-1] if layer.rgb else shape)
        where = f" ({named_frame(index, layer.axis_labels)})" if index else ""
        self.status.setText(f"Segmenting {layer.name}{where}…")
        self.runner.watch(self.viewer, layer)
        run = _Run(layer, step, self.device.currentText(), pixel, [])
        self._under_way = run
        self.runner.run_now(
            self._run,
            step,
            run.device,
            layer,
            self.show_maps.isChecked(),
            run.pixel,
            index,
            run.finished,
        )

    def _run_over(self) -> None:
        """A run that ended holds its input layer and its frames' cells no longer: closed
        since, a scan's pixels stayed in memory until the next run."""
        self._under_way = None

    def cancel(self) -> None:
        """Stop segmenting; the running batch of tiles finishes in the background. The
        frames of a stack it had segmented are kept, as if each had been segmented alone,
        and the status names them: a run of hours stopped near its end kept nothing."""
        busy, run = self.runner.busy, self._under_way
        self.runner.cancel()
        self._run_over()
        done = list(run.finished) if run is not None else []  # one added after is not kept
        if busy and not done and run is not None:
            # "Cancelled." alone left the person wondering whether the cells on show went.
            earlier = _cells_name(run.layer)
            if earlier in self.viewer.layers:
                self.status.setText(f"Cancelled: '{earlier}' keeps the cells of the run before.")
        if not busy or not done or run.layer not in self.viewer.layers:
            return
        layer, step = run.layer, run.step
        predictor = self._predictors.get(resolve_unet(step.model), run.device)
        data, geometry = resolution_level(layer)
        shape = data.shape[:-1] if layer.rgb else data.shape
        parameters = self._parameters(step, predictor, run.pixel, layer, ALL_POSITIONS)
        model = model_record(step.model, resolve_unet(step.model))
        metadata = result_metadata(layer, method="unet", parameters=parameters, model=model)
        # Where the whole run would have gone, chosen once for all its frames: frame by
        # frame, the first went into cells holding the user's edits in another frame and
        # the next, at an edited frame, beside them.
        name, cells = result_slot(
            self.viewer, _cells_name(layer), Labels, shape, source_of(layer), None, None
        )
        # The finished frames in one stack, written at once: a layer of the whole stack
        # made and written frame by frame held napari for seconds (6 s for 36 frames).
        stack = np.zeros(shape, np.result_type(*(labels.dtype for _, labels in done)))
        for frame, labels in done:
            stack[frame] = labels
        new = labels_layer(stack, name, geometry, metadata)
        cells = self._show(new, [frame for frame, _ in done], into=cells)
        made = [frame_key(frame) for frame, _ in done]
        total = int(np.prod(shape[:-2]))
        # Written into the cells of an earlier run: its other frames are still that run's
        # (of other settings, maybe), in one layer with these.
        before = frames_made_of(cells)
        if before is None:
            before = [frame_key(place) for place in np.ndindex(tuple(shape[:-2]))]
        earlier = [key for key in before if key not in made]
        still = _sentences(
            [
                f"{named_frames(earlier, layer.axis_labels)} still "
                f"{'holds' if len(earlier) == 1 else 'hold'} the cells of an earlier run."
            ]
            if earlier
            else []
        )
        self.status.setText(
            f"Cancelled after {len(made)} of {total} frames: "
            f"{named_frames(made, layer.axis_labels)} kept in "
            f"'{cells.name}'.{still} '{self.positions.text_of(CURRENT_POSITION)}' segments "
            "the others one by one, or run it again for all."
        )

    def _run(
        self,
        step: UNetStep,
        device,
        layer,
        maps: bool = False,
        pixel=None,
        index=(),
        finished: list | None = None,
    ):
        """Segment ``layer`` (its frame at ``index`` alone, when given) in a worker; the
        result layers have the layer's full shape, a frame alone in an empty stack. A
        stack's frames are segmented one by one, each put in ``finished`` as ``(frame,
        cells)`` once done, for a cancelled run to keep (:meth:`cancel`)."""
        path = resolve_unet(step.model)
        predictor = self._predictors.get(path, device)
        n_inputs = predictor.config.in_channels
        channels = self._channels(layer, n_inputs, index)
        data, geometry = resolution_level(layer)
        shape = data.shape[:-1] if layer.rgb else data.shape
        kwargs = step.segment_kwargs(predictor, pixel)
        if not index and int(np.prod(shape[:-2])) > 1:
            frame_axes = shape[:-2]
            result = yield from _frame_by_frame(
                predictor, channels, frame_axes, kwargs, finished, maps
            )
        else:
            result = yield from iter_segment(predictor, channels, **kwargs)
        # Layers are made here, off the GUI thread; adding them is all that is left to it.
        positions = CURRENT_POSITION if index else ALL_POSITIONS
        parameters = self._parameters(step, predictor, pixel, layer, positions)
        grey = layer.rgb and n_inputs == 1
        # How sure the network was of its cells in this image goes with it into exports.
        model = {**model_record(step.model, path), "confidence": result.confidence}
        metadata = result_metadata(layer, method="unet", parameters=parameters, model=model)
        probabilities = [
            Image(
                _in_frame(np.asarray(result.probabilities[k]), shape, index),
                name=f"{layer.name} U-Net {name}",
                colormap="magma",
                blending="additive",
                contrast_limits=(0, 1),
                visible=False,
                # Which map it is: the split step pairs an interior with its boundary.
                metadata={
                    METADATA_KEY: {**copy.deepcopy(metadata[METADATA_KEY]), "probability": name}
                },  # fmt: skip
                **geometry,
            )
            for k, name in enumerate(result.classes)
            if maps and name != "background"
        ]
        labels = _in_frame(result.labels, shape, index)
        cells = labels_layer(labels, _cells_name(layer), geometry, metadata)
        zoom = kwargs["zoom"]
        resampled = resampled_note(pixel, zoom, parameters["min_size"]) if zoom else ""
        unlike = unlike_starter_images(
            step.model, result.confidence, pixel, bool(zoom), tta=step.tta
        )
        seen, empty = "", None
        if not getattr(layer, "multiscale", False):  # a pyramid's frames are too large to read
            # What the frame segmented shows (lazy pixels are read again for it).
            seen = frame_notes(channels[0])
            if not result.labels.any():
                empty = nothing_to_find(channels[0], parameters["min_size"])
        unlike = "" if empty else unlike  # no cell could be there: how sure says nothing
        small = _size_note(result.labels, parameters["min_size_image_px"])
        colours = f"The model takes one channel: it segmented the {GREY_VERSION}." if grey else ""
        notes = "".join(f" {note}" for note in (colours, seen, resampled, small, unlike) if note)
        return layer, probabilities, cells, notes, index, empty

    @staticmethod
    def _parameters(step: UNetStep, predictor, pixel, layer, positions: str) -> dict:
        """The settings of a run as a preset's U-Net step, with any thresholds the model
        filled in, and what it ran on: the device, as `cytomask segment` records it
        ("cpu", "cuda:0"), not the choice ("auto")."""
        kwargs = step.segment_kwargs(predictor, pixel)
        parameters = {
            **asdict(step.with_settings(predictor.settings)),
            "device": str(predictor.device),
            "tiling": step.tiling(predictor),
            "pixel_size_um": pixel,
            "zoom": kwargs["zoom"],
            "min_size_image_px": image_area(kwargs["cleanup"]["min_area"], kwargs["zoom"]),
            "positions": positions,
        }
        if layer.rgb and predictor.config.in_channels == 1:
            parameters["segmented_on"] = GREY_VERSION
        parameters.pop("model")
        return parameters

    def _on_result(self, result) -> None:
        layer, probabilities, cells, note, index, reason = result
        if layer not in self.viewer.layers:
            self.status.setText(closed_during_run(layer))
            return
        parameters = layer_info(cells)["parameters"]  # this run's
        min_size = parameters["min_size"]
        # Over the input as it lies now: given another pixel size or moved during the run.
        note += _resized_during_run(layer, parameters)
        placed = resolution_level(layer)[1]
        for new in (*probabilities, cells):
            lay_over(new, placed)
        # Numbered 1..n (through the stack's frames): a frame written alone is numbered on
        # from the other frames of the layer it goes into.
        n = int(cells.data[index].max(initial=0))
        frames = [index] if index else None
        for new in probabilities:
            self._show(new, frames)
        cells = self._show(cells, frames)
        if n and index:
            made = frames_made_of(cells)
            others = (
                "the other frames keep their earlier cells"
                if made is None
                # The list last: frames of several axes part at "; ".
                else f"'{self.positions.text_of(ALL_POSITIONS)}' segments them all; made so "
                f"far: {named_frames(made, layer.axis_labels)}"
            )
            self.status.setText(
                f"{n} cell{'' if n == 1 else 's'} in {named_frame(index, layer.axis_labels)} of "
                f"'{cells.name}' ({others}).{note}"
            )
        elif n:
            self.status.setText(f"{cells_in(cells, n)}.{note}{_unmarked_input(layer)}")
        else:
            source = f"'{layer_info(cells)['made_from']['layer']}'"
            if index:
                source += f" ({named_frame(index, layer.axis_labels)})"
            # At a coarser pixel size than the model's images, every cell can be smaller
            # than the minimum size tuned for them.
            smaller = f" or the minimum cell size ({min_size} px)" if min_size else ""
            # Which channel, for a file of several open; fine-tuning, unless said already.
            # Not after a note that the image is unlike the model's: lower thresholds found
            # 1 nucleus of 125 in a fluorescence image, where fine-tuning found them.
            lower = "" if "fine-tune" in note else f"lower the thresholds{smaller}"
            if self._other_channels(layer):
                channel = f"Is it the channel to segment (see {CHANNEL_ROLES})?"
                lower = f"{channel} If it is, {lower}" if lower else channel
            if "fine-tune" not in note:
                lower += (
                    ", or, for images unlike the model's (the starter model knows phase "
                    "contrast only), fine-tune it on a few labelled images (Train a model), "
                    "or try SAM2, which needs no training"
                )
            if lower:
                lower = f" {lower[0].upper()}{lower[1:]}{'' if lower.endswith('?') else '.'}"
            self.status.setText(
                f"No cells found in {source}: {reason}."
                if reason
                # What the run noticed (a wrong-looking pixel size, an image unlike the
                # model's) comes first: that is when it explains the result.
                else f"No cells found in {source}.{note}{lower}"
            )
        self.segmented.emit(cells)

    def _other_channels(self, layer) -> bool:
        """Whether images of other channels of ``layer``'s file are open."""
        source = source_of(layer)
        return source is not None and any(
            isinstance(other, Image) and other is not layer and source_of(other) == source
            for other in self.viewer.layers
        )

    def _show(self, new, frames: list[tuple] | None = None, into=None):
        """Add ``new``, or put its data into the layer of that name from an earlier run
        (with ``new``'s record, which holds what was written); of a run of some frames
        alone (``frames``: one position, a preview, the finished frames of a cancelled
        run), those frames alone, their settings kept apart from the stack's. ``into``:
        the layer the run's other frames went to, which takes these where it may."""
        new.name, old = result_slot(
            self.viewer,
            new.name,
            type(new),
            new.data.shape,
            source_of(new),
            # Several frames go where a whole run would: not into edits anywhere.
            frames[0] if frames and len(frames) == 1 else None,
            into,
        )
        if frames:
            record = None if old is None else layer_info(old)
            for frame in frames:
                record = frame_record(record, layer_info(new), frame)
            new.metadata = {**new.metadata, METADATA_KEY: record}
        if old is None:
            return add_result(self.viewer, new)

        def numbered(frame: tuple) -> tuple[tuple, np.ndarray]:
            data = new.data[frame]
            if isinstance(old, Labels):  # above the other frames' cells, as a whole run
                data = numbered_above(data, largest_elsewhere(old.data, frame))
            return frame, data

        if frames:
            write_frames(old, map(numbered, frames))  # each numbered once those before are in
            for frame in frames:
                forget_edits(old, frame)
        else:
            old.data = new.data
            forget_edits(old)
        lay_over(old, resolution_level(new)[1])  # ``new`` lies over the input as it lies now
        old.metadata = {**old.metadata, **new.metadata}
        if isinstance(old, Labels):  # the frames written now; the others are as recorded
            for frame in frames or ():
                record_written(old, frame)
        if isinstance(old, Labels) and not old.visible:  # hidden by the user: "73 cells in"
            old.visible = True  # on show (napari redraws it, which counts as a change)
        return old


def _resized_during_run(layer, parameters: dict) -> str:
    """What to say when ``layer`` was given another pixel size during a run that resampled
    it to the model's from the size it had (``parameters``, the run's): its cells were
    found at the old size. (A size typed during the run is the next run's.)"""
    before, now = parameters["pixel_size_um"], _recorded_pixel_size(layer)
    if (
        not parameters["resample"]
        or before == now
        or (before is not None and now is not None and np.allclose(before, now))
    ):
        return ""
    sizes = [pixel_sizes(size) if size else "none" for size in (before, now)]
    return (
        f" '{layer.name}' was given another pixel size during the run ({sizes[0]} to "
        f"{sizes[1]}): its cells were found at the size before. Segment it again for cells "
        "found at the new size."
    )


def _unmarked_input(layer) -> str:
    """What to say of cells found in ``layer`` when nothing marked it as the channel to
    segment: a channel the plugin's reader did not take for transmitted light, or a file's
    planes that another reader showed as one stack (channels segmented as positions);
    nothing for an image alone (a PNG that napari opened itself)."""
    if role_of(layer) != "image":
        return ""
    if layer_info(layer):
        return (
            f" '{layer.name}' is not marked as the channel to segment (no channel of its "
            "file looked like transmitted light): if another is, pick it under Input image."
        )
    if layer.ndim - (1 if layer.rgb else 0) > 2:
        return (
            f" '{layer.name}' was opened by another reader, which shows all the planes of "
            "its file as one stack, each segmented alone: if some are channels (a mask), "
            "open it with File > Open with Plugin > Cytomask, which splits them."
        )
    return ""


def _in_frame(array: np.ndarray, shape: tuple, index: tuple) -> np.ndarray:
    """``array``, the result of the frame at ``index``, in an empty stack of ``shape``;
    itself for a run of every frame (no ``index``)."""
    if not index:
        return array
    stack = np.zeros(shape, array.dtype)
    stack[index] = array
    return stack


class UNetTrainWidget(StepWidget, QWidget):
    """Train a U-Net on napari layers or folders, from scratch or from a model, with a
    time estimate before it starts and a live loss plot.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers can be used as training data.
    """

    #: Emitted with the checkpoint file when training has finished with a model that finds
    #: cells on the validation images (or without validation images to tell).
    trained = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None
        self.summary = ""  # what the last run chose: its score, held-back part, thresholds
        self.headline = ""  # its gist
        self.losses: list[tuple[int, float]] = []
        self.scores: list[tuple[int, float]] = []
        self._checkpoint: Path | None = None
        self._first_epoch: int | None = None
        self._phase: str | None = None  # of the run's last report
        self._fine_tuning = False  # whether the run scores its starting model first
        self._resumed_from = ""  # the file whose run's settings the boxes were given
        self._notes: list[str] = []  # the run's notices, said again at its end
        self._validation_images = 0  # of the run's split: tuning predicts them first
        self._validated = False  # whether a training epoch has been validated (and timed)
        self._beaten = False  # whether an epoch scored above the model a run started from
        # Timed from the first training step: what came before it (reading the images,
        # choosing thresholds for a fine-tuned model) says nothing of the steps' pace.
        self._pace = Pace()
        self._drawn = 0.0
        self._kind: str | None = None  # the device kind the defaults were set for
        self._mask = None  # the mask layer whose painting the estimate follows
        self._estimate_later = QTimer(self, singleShot=True, interval=200)
        self._estimate_later.timeout.connect(self._estimate_painted)
        # The Resume from file (path, modification time) whose trained epochs are known.
        self._resumed: tuple[tuple | None, int] = (None, 0)

        self.source = QComboBox()
        self.source.addItems(["Layers", "Folders"])
        self.source.setToolTip("Train on open layers (e.g. this scan) or on image files.")
        self.image_layer = LayerPicker(
            napari_viewer, Image, prefer_role="input", tooltip="The images to learn from."
        )
        self.mask_layer = LayerPicker(
            napari_viewer,
            Labels,
            prefer_role="mask",
            tooltip="Instance labels of the same images: the scan's mask channel or a layer "
            "you painted (0 is background, one id per cell).",
            accept=lambda layer: not is_highlight(layer),  # the metrics' outlines: no cells
        )
        self.pixels = _PixelSizeRow(
            "The images' pixel size in µm. At its lowest, the box shows the size the image "
            "has (its layer's scale, or each file's), which is then used; give one for "
            "images that lost it, or hold a wrong one.",
            "Fine-tuning: resample the images to the pixel size the model learnt cells at "
            f"(the starter model's is {STARTER_PIXEL_SIZE_UM} µm), where both are known, as "
            "segmenting resamples images for it; the new model keeps that pixel size. "
            "Unticked, it learns the cells at the images' own pixels.",
        )
        self.image_layer.currentIndexChanged.connect(self._follow_images)
        self.image_pattern = QLineEdit()
        self.image_pattern.setPlaceholderText("e.g. /data/set*/raw.tif")
        self.image_pattern.setToolTip("A glob pattern of the image files.")
        self.mask_pattern = QLineEdit()
        self.mask_pattern.setPlaceholderText("e.g. /data/set*/instances_ids.png")
        self.mask_pattern.setToolTip(
            "A glob pattern of their label files, with the same wildcards: an image and "
            "its labels are paired by what the wildcards match (cells/*/raw.tif with "
            "cells/*/mask.png)."
        )
        self.start_from = QComboBox()
        self.start_from.setToolTip(
            "Random weights learn from scratch; fine-tuning a model on a few of your images "
            "gives a usable model much sooner."
        )
        self.init_path = QLineEdit()
        self.init_path.setPlaceholderText("a .safetensors checkpoint")
        self.init_path.setToolTip("The checkpoint to fine-tune.")
        init_browse = QPushButton("Open…")
        init_browse.setToolTip("Choose the checkpoint to fine-tune.")
        init_browse.clicked.connect(self._browse_init)
        self.encoder = QComboBox()
        self.encoder.setEditable(True)
        self.encoder.addItems(ENCODERS)
        self.encoder.setToolTip("The encoder network; resnet18 is fastest, larger ones learn more.")
        self.encoder_depth = number_box(
            3, 5, 5, "Down-sampling stages: fewer is faster and sees less context."
        )
        self.targets = QComboBox()
        self.targets.addItem("interiors and borders", "interior_boundary")
        self.targets.addItem("cell or background", "foreground")
        self.targets.setToolTip(
            "What the network learns: cell interiors and borders, so touching cells come "
            "apart (interior_boundary on the command line), or cell or not (foreground)."
        )
        self.pretrained = QCheckBox("Encoder from ImageNet weights")
        self.pretrained.setChecked(True)
        self.pretrained.setToolTip(
            "Start the encoder from ImageNet weights, when they are downloaded or cached: "
            "pretrained encoders learn faster."
        )
        self.epochs = number_box(
            1, 10000, 5, "Passes of training; the best one on the validation images is kept."
        )
        self.steps = number_box(1, 100000, 20, "Optimiser steps per epoch.")
        self.time_limit = number_box(
            0, 100000, 0,
            "Stop once this many minutes have passed (the epoch under way ends there and is "
            "validated), keeping the best epoch so far and choosing its thresholds (no "
            "limit: Epochs decide).",
            special="no limit",
        )  # fmt: skip
        self.batch_size = number_box(1, 256, 2, "Random crops per step.")
        self.crop_size = number_box(32, 2048, 256, "Crop edge in pixels.", 32)
        self.learning_rate = number_box(1e-5, 1.0, 1e-3, "AdamW learning rate.", 1e-4, decimals=5)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setToolTip("Where training runs; the defaults above follow it.")
        self.output = QLineEdit()
        self.output.setPlaceholderText(f"a new file in {cache_dir()}")
        self.output.setToolTip("Where the model is saved; empty: a new file in the model folder.")
        self.resume = QLineEdit()
        self.resume.setPlaceholderText("optional: a checkpoint to continue")
        self.resume.setToolTip(
            "Continue an earlier run exactly where it stopped, up to Epochs in all."
        )
        self.estimate = QLabel()
        self.estimate.setWordWrap(True)
        self.estimate.setToolTip(
            "Measured on a 2-core CPU with nothing else running (a busy one takes up to 8 "
            "times as long); the GPU's figure is a guess. Once training runs, the status "
            "gives the time left at the pace measured."
        )
        self.controls = StepControls("Train", "Train a U-Net with these settings.")
        self.controls.run_button.clicked.connect(self.train)
        self.controls.cancel_button.clicked.connect(self.cancel)
        self.runner = Runner(
            self._on_result,
            self.controls,
            on_progress=self._on_progress,
            describe_error=lambda err: failed(
                "U-Net training",
                err,
                "Lower Crops per step or Crop size (under More), or choose the CPU as Device.",
                "Lower Crops per step or Crop size (under More), or close other programs.",
            ),
            on_failure=self._kept_after_failure,
            on_finished=self._update_estimate,
            parent=self,
        )
        self.canvas = PlotCanvas(redraw=self._plot, viewer=self.viewer)
        self.loss_axes = self.canvas.figure.add_subplot(111)
        self.score_axes = self.loss_axes.twinx()
        self.losses, self.scores = [], []
        self._plot()  # named axes and what they will show, not two blank frames

        settings = QWidget()
        form = _form()
        form.addRow("Data from", self.source)
        self._layer_rows = [("Images", self.image_layer), ("Masks", self.mask_layer)]
        self._folder_rows = [
            ("Images (glob)", self.image_pattern),
            ("Masks (glob)", self.mask_pattern),
        ]
        for label, widget in self._layer_rows + self._folder_rows:
            form.addRow(label, widget)
        form.addRow("Pixel size (µm)", self.pixels)
        self._form = form
        form.addRow("Start from", self.start_from)
        init_row = QHBoxLayout()
        init_row.addWidget(self.init_path, 1)
        init_row.addWidget(init_browse)
        self._init_row = QWidget()
        self._init_row.setLayout(init_row)
        form.addRow("Checkpoint", self._init_row)
        form.addRow("Epochs", self.epochs)
        form.addRow("Steps per epoch", self.steps)
        form.addRow("Crops per step", self.batch_size)
        form.addRow("Time limit (min)", self.time_limit)
        form.addRow("Device", self.device)
        form.addRow(self.estimate)
        network = QGroupBox("Network (for random weights)")
        net_form = _form()
        net_form.addRow("Encoder", self.encoder)
        net_form.addRow("Encoder depth", self.encoder_depth)
        net_form.addRow("Targets", self.targets)
        net_form.addRow(self.pretrained)
        network.setLayout(net_form)
        self._network = network
        more = QGroupBox("More")
        more_form = _form()
        more_form.addRow("Crop size (px)", self.crop_size)
        more_form.addRow("Learning rate", self.learning_rate)
        more_form.addRow("Save as", self.output)
        more_form.addRow("Resume from", self.resume)
        more.setLayout(more_form)
        column = QVBoxLayout(settings)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addWidget(network)
        column.addWidget(more)
        column.addStretch()
        # The plot has a tab of its own, so it is legible however short the dock is.
        self.tabs = QTabWidget()
        self.tabs.addTab(scrolled(settings), "Settings")
        self.tabs.addTab(self.canvas, "Loss plot")
        self.tabs.setTabToolTip(1, "Training loss per step and validation score per epoch.")
        # As short as a step's scrolled settings may be (the plot's own least height would
        # push a window holding the Segment cytoplasm dock past an 800-px screen).
        self.tabs.setMinimumHeight(SETTINGS_MIN_HEIGHT)
        step_page(self, self.tabs, self.controls, scroll=False)

        self.source.currentTextChanged.connect(self._show_source)
        self.start_from.currentTextChanged.connect(self._start_changed)
        # What the estimate's validation takes: the images, and a starting model to score.
        self.mask_layer.currentIndexChanged.connect(self._follow_mask)
        self._follow_mask()  # the layer picked already
        for changed in (
            self.source.currentTextChanged,
            self.start_from.currentTextChanged,
            # A resumed run trains the epochs left, and does not score its start again.
            self.resume.textChanged,
        ):
            changed.connect(self._update_estimate)
        # A start chosen by the user is a new run: the cancelled run offered in Resume from
        # would otherwise be continued instead, whatever Start from says.
        self.start_from.activated.connect(lambda _: self.resume.clear())
        self.resume.editingFinished.connect(self._use_resumed_settings)
        self.device.currentTextChanged.connect(self._device_defaults)
        for box in (self.epochs, self.steps, self.batch_size, self.crop_size, self.time_limit):
            box.valueChanged.connect(self._update_estimate)
        self._fill_start_choices()
        self._show_source(self.source.currentText())
        self._device_defaults()
        self.bind_keys()

    def settings_controls(self) -> dict[str, QWidget]:
        """Remembered controls by parameter name (device first: it sets the defaults). Not
        whether to train on layers or folders: a remembered 'Folders' trained on another
        session's files while the user's own layers were open."""
        return {
            "device": self.device,
            "image_pattern": self.image_pattern,
            "mask_pattern": self.mask_pattern,
            "start_from": self.start_from,
            "init_from": self.init_path,
            "resample": self.pixels.resample,
            "encoder": self.encoder,
            "encoder_depth": self.encoder_depth,
            "targets": self.targets,
            "pretrained": self.pretrained,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps,
            "batch_size": self.batch_size,
            "crop_size": self.crop_size,
            "learning_rate": self.learning_rate,
            "time_limit": self.time_limit,
        }

    def _fill_start_choices(self) -> None:
        # Fine-tuning the starter model first: within the short CPU defaults (about 100
        # steps) it is far ahead of random weights, which catch up only after minutes
        # of training (benchmarks/bench_finetune.py).
        if any(entry.key == STARTER for entry in unet_models()):
            self.start_from.addItem(START_STARTER)
        self.start_from.addItem(START_RANDOM)
        self.start_from.addItem(START_CHECKPOINT)
        self._start_changed()

    def _start_changed(self, *_) -> None:
        choice = self.start_from.currentText()
        self._init_row.setVisible(choice == START_CHECKPOINT)
        self._form.labelForField(self._init_row).setVisible(choice == START_CHECKPOINT)
        self._network.setEnabled(choice == START_RANDOM)
        # Random weights learn the images' own pixels, and the model records them.
        self.pixels.resample.setEnabled(choice != START_RANDOM)

    def _device_kind(self) -> str:
        try:
            return "cpu" if get_device(self.device.currentText()).type == "cpu" else "gpu"
        except (ValueError, RuntimeError):
            return "cpu"

    def _device_defaults(self, *_) -> None:
        """Settings that finish in minutes on a CPU, the full recipe on a GPU; only a
        change between CPU and GPU replaces what the user set."""
        kind = self._device_kind()
        if kind == self._kind:
            self._update_estimate()
            return
        self._kind = kind
        defaults = TRAINING_DEFAULTS[kind]
        self.encoder.setCurrentText(defaults["encoder"])
        self.encoder_depth.setValue(defaults["encoder_depth"])
        self.epochs.setValue(defaults["epochs"])
        self.steps.setValue(defaults["steps"])
        self.batch_size.setValue(defaults["batch_size"])
        self.crop_size.setValue(defaults["crop_size"])
        self._update_estimate()

    def estimated_seconds(self, epochs_done: int = 0) -> float:
        """Rough time of the training steps of the shown settings on the chosen device, of
        the epochs left after ``epochs_done`` (those a resumed run had trained); validating
        them is :meth:`_validation_seconds`."""
        megapixels = self.batch_size.value() * self.crop_size.value() ** 2 / 1e6
        epochs = max(self.epochs.value() - epochs_done, 0)
        return (
            epochs * self.steps.value() * megapixels * _SECONDS_PER_MEGAPIXEL[self._device_kind()]
        )

    def _validation_seconds(self, megapixels: float, epochs: int, epochs_done: int = 0) -> float:
        """Rough time of validating ``epochs`` epochs on validation images of ``megapixels``
        and choosing the thresholds after the last; a new fine-tuning run first chooses its
        starting model's (without the flips) and scores it."""
        network = _NETWORK_SECONDS_PER_MEGAPIXEL[self._device_kind()]
        validating = network + _SCORING_SECONDS_PER_MEGAPIXEL
        seconds = epochs * validating + _TUNING_PASSES * network + _TUNING_SECONDS_PER_MEGAPIXEL
        fine_tuning = self.start_from.currentText() != START_RANDOM
        if fine_tuning and not epochs_done and not typed_path(self.resume.text()):
            seconds += network + _TUNING_SECONDS_PER_MEGAPIXEL + validating
        return megapixels * seconds

    def _validation_megapixels(self) -> float | None:
        """Megapixels of the validation images the chosen mask layer gives (each of its
        frames an image); None with folders, read only as training starts."""
        from ..models.training import TrainingSample

        mask = self.mask_layer.layer() if self.source.currentText() == "Layers" else None
        if mask is None:
            return None
        labels = resolution_level(mask)[0]
        *frames, height, width = labels.shape
        lone = None
        # Whether a lone image has a part to hold back is seen in its cells; a mask read
        # lazily (a mosaic) is not read for a figure: that large, it has one.
        if math.prod(frames) == 1 and isinstance(labels, np.ndarray):
            plane = labels.reshape(height, width)
            lone = TrainingSample(mask.name, plane[None], plane)
        return _validated_megapixels([height * width] * math.prod(frames), lone)

    def _follow_mask(self, *_) -> None:
        """Follow the cells painted in the chosen mask layer: of a lone image, they decide
        whether a part is held back to validate on."""
        if not isalive(self):  # painted after the dock was closed
            return
        layer = self.mask_layer.layer()
        if layer is not self._mask:
            for emitter in pixel_events(self._mask) if self._mask is not None else ():
                emitter.disconnect(self._follow_mask)
            for emitter in pixel_events(layer) if layer is not None else ():
                emitter.connect(self._follow_mask)
            self._mask = layer
            self._update_estimate()
        else:  # painted: once the stroke pauses, not at each of its dabs
            self._estimate_later.start()

    def _estimate_painted(self) -> None:
        """The estimate again once painting the mask pauses; not over the figure a run
        under way shows as it was said before it ("Estimated before this run")."""
        if isalive(self) and not self.runner.busy:
            self._update_estimate()

    def _resumed_epochs(self) -> int:
        """The epochs the run under Resume from has trained, as resuming counts them
        (:func:`~napari_cytomask.models.training.epochs_trained`: an epoch the time limit
        cut short is not done); 0 where its file cannot be read. Read once per file and
        change of it, not at each setting changed or letter typed."""
        from ..models.training import epochs_trained

        path = typed_path(self.resume.text())
        try:
            key = (path, os.stat(path).st_mtime_ns) if path else None
        except OSError:
            key = None
        if key is None:
            return 0
        if self._resumed[0] != key:
            try:
                done = epochs_trained(path, read_description(path), 0)[0]
            except (OSError, ValueError, TypeError, KeyError):
                done = 0
            self._resumed = (key, done)
        return self._resumed[1]

    def _estimate_words(self, megapixels: float | None, epochs_done: int = 0) -> str:
        """The time of the shown settings on the chosen device, as the box says it before
        a run and the status as the run starts: the training steps of the epochs left after
        ``epochs_done``, or up to the time limit where it stops them sooner, then validating
        on images of ``megapixels`` (None: not read yet, a figure per megapixel of them; 0:
        no image to validate on)."""
        device = "the CPU" if self._device_kind() == "cpu" else "the GPU"
        left = max(self.epochs.value() - epochs_done, 0)
        seconds, limit = self.estimated_seconds(epochs_done), self.time_limit.value() * 60
        steps = f"{left} × {self.steps.value()} steps{' left' * bool(epochs_done)}"
        # The limit counts the validations: a run whose steps alone fit it may not.
        validated = self._validation_seconds(megapixels or 0, left, epochs_done)
        if 0 < limit < seconds + validated:
            # The limit counts the validations, but that of the epoch under way as it ends.
            trained, epochs, each = limit, 1, "the epoch under way"
            training = f"training to the time limit ({steps} would take about {duration(seconds)})"
        else:
            trained, epochs, each = seconds, left, "each epoch"
            training = f"training ({steps})"
        validating = f"validating {each} and choosing the thresholds"
        if megapixels is None:  # files not read yet: a figure to scale by their size
            per = duration(self._validation_seconds(1, epochs, epochs_done))
            return (
                f"about {duration(trained)} on {device} {training}, plus {validating}: "
                f"about {per} a megapixel of validation images"
            )
        if not megapixels:
            return (
                f"about {duration(trained)} on {device} {training}, with no image left to "
                "validate on: the epoch with the lowest training loss is kept"
            )
        # Each part's own figure: "about 2 min, of which 2 min for the training steps, the
        # rest validating" read as if validating took no time.
        rest = self._validation_seconds(megapixels, epochs, epochs_done)
        return (
            f"about {duration(trained + rest)} on {device}: {duration(trained)} {training}, "
            f"and {duration(rest)} {validating}"
        )

    def _update_estimate(self, *_) -> None:
        words = self._estimate_words(self._validation_megapixels(), self._resumed_epochs())
        self.estimate.setText(f"A{words[1:]}.")

    def _show_source(self, source: str) -> None:
        for rows, visible in (
            (self._layer_rows, source == "Layers"),
            (self._folder_rows, source == "Folders"),
        ):
            for _, widget in rows:
                widget.setVisible(visible)
                self._form.labelForField(widget).setVisible(visible)
        self._follow_images()

    def _follow_images(self, *_) -> None:
        """The pixel-size row shows the image layer's size, or with Folders the files'."""
        if self.source.currentText() == "Layers":
            self.pixels.follow(self.image_layer.layer())
        else:
            self.pixels.follow(None, absent="from the files")

    def _browse_init(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Fine-tune a checkpoint", str(cache_dir()), "Checkpoints (*.safetensors)"
        )
        if path:
            self.init_path.setText(path)

    def _samples(self):
        """The images to train on, what they came from, and what to say of them (a mask
        that does not line up with its image, frames left out, binary masks taken by their
        regions)."""
        from ..models.training import samples_from_arrays, samples_from_folders

        notes: list[str] = []
        if self.source.currentText() == "Folders":
            images, masks = (
                typed_path(self.image_pattern.text()),
                typed_path(self.mask_pattern.text()),
            )
            if not images or not masks:
                raise ValueError("Enter glob patterns for both the images and the masks.")
            grey = self._start_channels() == 1  # colour pictures in grey, as segmented
            samples = samples_from_folders(images, masks, note=notes.append, grey=grey)
            typed = self.pixels.pixel_size()
            if typed:
                samples = [replace(s, pixel_size_um=typed) for s in samples]
            # Recorded as cytomask train records them: a pattern relative to the folder
            # napari was started in, where it was matched, means nothing where the model
            # is used later.
            return samples, [os.path.abspath(p) for p in (images, masks)], notes
        image, mask = self.image_layer.layer(), self.mask_layer.layer()
        if image is None or mask is None:
            raise NothingToRun(
                "Pick an image layer and a mask (Labels) layer with instance labels, or "
                "train from folders."
            )
        pixels = resolution_level(image)[0]
        # A colour picture, for a model of one channel (the starter model): its grey
        # version, as segmenting takes it. Its three colours were refused.
        grey = image.rgb and self._start_channels() == 1
        if grey:
            pixels = grey_version(pixels)
            notes.append(
                f"'{image.name}' is a colour picture and the model training starts from takes "
                f"one channel: it learns from the {GREY_VERSION}, which it segments too."
            )
        samples = samples_from_arrays(
            pixels,
            np.asarray(resolution_level(mask)[0]),
            image.name,
            channel_axis=-1 if image.rgb and not grey else None,
            mask_name=f"mask '{mask.name}'",
            pixel_size_um=self.pixels.pixel_size(image),
            note=notes.append,
        )
        # A mask placed elsewhere in the viewer is another field's cells, or the same at
        # another size: paired pixel by pixel, they would teach the network wrong cells.
        misplaced = misplaced_note(image, mask, "are paired pixel by pixel to train on")
        if misplaced:
            notes.append(misplaced)
        # A mask left open from the field before, as the metrics say of their pair; shown
        # as a notification too, as the run's progress soon takes the status line.
        files = other_files(image, mask, scan_files(self.viewer.layers))
        if files:
            notes.append(
                f"Note: '{mask.name}' comes from {files[1]} and '{image.name}' from {files[0]}: "
                f"unless {files[1]} holds the cells of that same field, the network learns "
                f"another field's cells; cancel and pick a mask of {files[0]}."
            )
            show_warning(notes[-1])
        frames = _corrected_only(mask, len(samples), notes)
        # Frames of a stack painted in part: the ones without a cell are not labelled yet,
        # and trained on they would teach that their cells are background. Named by their
        # number in the stack, not among the frames corrected.
        empty = [i for i in frames if not samples[i].labels.any()]
        if empty and len(empty) < len(frames):
            notes.append(
                f"{len(empty)} of the {len(frames)} frames of '{mask.name}' hold no cell and "
                f"are left out (frames {', '.join(map(str, empty))}): unlabelled, their cells "
                "would be learnt as background."
            )
            frames = [i for i in frames if i not in empty]
        samples = [samples[i] for i in frames]
        return samples, [f"layer {image.name}", f"layer {mask.name}"], notes

    def _start_channels(self) -> int | None:
        """How many channels the model training starts from takes; None for random
        weights, or a start that cannot be read (training then says why)."""
        try:
            start = self.init_from()
            if start is None:
                return None
            return int(read_description(resolve_unet(start))["in_channels"])
        except (ValueError, OSError, KeyError, TypeError):
            return None

    def init_from(self) -> str | None:
        """What training starts from: ``None`` (random), ``"starter"`` or a checkpoint."""
        choice = self.start_from.currentText()
        if choice == START_STARTER:
            return STARTER
        if choice == START_CHECKPOINT:
            path = typed_path(self.init_path.text())
            if not path:
                raise ValueError("Choose the checkpoint to fine-tune (Open…).")
            return path
        return None

    def train(self) -> None:
        """Start training in a worker thread."""
        from ..models.training import (
            DOCK_SPLIT,
            TrainingSettings,
            epochs_trained,
            iter_train,
            resumed_settings,
        )

        if self.runner.busy:
            return
        try:
            samples, sources, notes = self._samples()
            config = UNetConfig(
                encoder=self.encoder.currentText().strip(),
                encoder_depth=self.encoder_depth.value(),
                targets=self.targets.currentData(),
            )  # its tile size follows the crop size (iter_train), which it checks
            settings = TrainingSettings(
                epochs=self.epochs.value(),
                steps_per_epoch=self.steps.value(),
                batch_size=self.batch_size.value(),
                crop_size=self.crop_size.value(),
                learning_rate=self.learning_rate.value(),
                encoder_weights="imagenet" if self.pretrained.isChecked() else None,
                device=self.device.currentText(),
                resample=self.pixels.resample.isChecked(),
                fractions=DOCK_SPLIT,
                time_limit=self.time_limit.value() * 60 or None,
            )
            settings.validate()
            resume = typed_path(self.resume.text()) or None
            if resume and not os.path.isfile(resume):
                if resume == STARTER and not os.path.exists(resume):
                    raise ValueError(
                        "Resume from goes on with a run that this dock or cytomask train "
                        "saved, and 'starter' is the model inside the package. To adapt it to "
                        f"your cells, clear Resume from and choose Start from: {START_STARTER}."
                    )
                what = "is a folder" if os.path.isdir(resume) else "does not exist"
                raise ValueError(
                    f"Resume from: {resume} {what}; pick the model file (.safetensors) of "
                    "the run to continue, or clear Resume from to start a new run."
                )
            init_from = None if resume else self.init_from()
        except ValueError as err:
            self.runner.fail(err)
            return
        resumed, done, stopped, description = "", 0, False, {}
        if resume:
            # The run goes on as it was started (its targets, schedule, patience, and pixel
            # size), with what the boxes show (see _use_resumed_settings).
            try:
                description = read_description(resume)
            except (OSError, ValueError):
                description = {}  # training says what the file is
            own = resumed_settings(description, settings, _SHOWN_SETTINGS)
            done, stopped = epochs_trained(resume, description, own.patience)
            if own.resample != settings.resample:
                self.pixels.resample.setChecked(own.resample)
                how = "resamples its images" if own.resample else "keeps its images' own pixels"
                resumed = f" The run it resumes {how}, and so does the rest of it ('resample')."
            settings = own
        output = typed_path(self.output.text()) or None
        try:
            overwrite = self._replacing(output, resume)
        except OSError as err:  # a name the system cannot even look up (too long)
            self.runner.fail(err)
            return
        if overwrite is None:
            return
        self.result = None
        self.losses, self.scores = [], []
        # A resumed run's network is on disk already: cancelled, it is kept.
        self._first_epoch, self._checkpoint = None, Path(resume) if resume else None
        self._phase = None
        self._fine_tuning = init_from is not None  # its starting model is scored first
        self._notes = notes
        self.canvas.replot()
        self.progress.setMaximum(settings.epochs * settings.steps_per_epoch)
        lone = samples[0] if len(samples) == 1 else None
        validated = _validated_megapixels([s.labels.size for s in samples], lone)
        kept = (
            f"cancelled, {Path(resume).name} keeps the best one so far" if resume
            else "cancelled before the first ends, nothing is kept"
            if init_from is None or not validated
            # The starting model is epoch 0 (scored on the validation images).
            else "until one scores above the starting model, that model is kept, and "
            "cancelled before the first ends, nothing is"
        )  # fmt: skip
        split = _split_said(samples, settings, description if resume else None)
        if settings.epochs > done and not stopped:
            self.status.setText(
                f"{split}: {self._estimate_words(validated, done)}. The best network so far is "
                f"saved at the end of each epoch: {kept}.{_sentences(notes)}{resumed}"
            )
        else:  # its epochs trained or stopped early (cancelled as it chose them): thresholds
            self.status.setText(
                f"{split}: {done} epoch{'s' * (done != 1)} trained already, so its thresholds "
                f"are chosen on the validation images, then {Path(output or resume).name} is "
                "saved with them."
                f"{_sentences(notes)}{resumed}"
            )
        self._pace, self._validated = Pace(), False
        self._beaten = False
        # The estimate was made before the run; the status line measures as it runs.
        self.estimate.setText(
            f"Estimated before this run: {self.estimate.text()[0].lower()}"
            f"{self.estimate.text()[1:]} The status line below gives the time left as measured."
        )
        self.runner.run_now(
            iter_train,
            samples,
            output,
            config,
            settings,
            resume=resume,
            init_from=init_from,
            sources=sources,
            overwrite=overwrite,
        )

    def _replacing(self, output: str | None, resume: str | None) -> bool | None:
        """Whether the run replaces the model file it saves to: asked when that file is
        there (and not the run it resumes); None when the answer is No."""
        from ..models.training import replaced_file

        target = replaced_file(output, resume)
        if target is None:
            return False
        question = f"{target.name} is already in {target.parent}. Replace it with this run's model?"
        details = "Its model is lost once the first epoch of this run has been saved."
        if ask_yes_no(self, "Replace the model?", question, details):
            return True
        self.status.setText(
            f"Nothing was trained: {target.name} is as it was. Choose another name under "
            "More > Save as, or train again and replace it."
        )
        return None

    def cancel(self) -> None:
        """Stop training now; the step under way finishes in the background, unused."""
        if not self.runner.busy:
            return
        worker = self.runner.cancel()
        self._update_estimate()
        if self._checkpoint is None:
            self.status.setText("Cancelled before the first epoch ended; nothing was saved.")
            if worker is not None:
                # The first epoch may be saving as it is cancelled: its report still comes.
                worker.yielded.connect(self._saved_after_cancel)
        elif self._phase == "tune" and not self._before_first_epoch():
            from ..models.training import kept_thresholds

            # Its epochs have all ended: going on chooses the thresholds, and trains none.
            kept = kept_thresholds(read_description(self._checkpoint))
            self._offer_to_resume(
                self._checkpoint,
                "Cancelled while choosing the thresholds, after the last epoch; the best "
                "network is in",
                f"It keeps {kept}, not chosen for it. Press Train to choose its thresholds "
                "(no more epochs are trained).",
            )
        elif self._fine_tuning and not self._beaten:  # its checkpoint: the starting model
            self._offer_to_resume(
                self._checkpoint,
                "Cancelled; no epoch scored above the starting model, which is kept with the "
                "run's state in",
            )
        else:
            self._offer_to_resume(self._checkpoint, "Cancelled; the best network so far is in")

    def _kept_after_failure(self) -> None:
        """After the error of a run that failed once an epoch was saved (out of GPU memory
        hours in), offer to go on from that epoch, as Cancel does; the error stays said."""
        if self.runner.busy and self._checkpoint is not None:
            said = f"{self.status.text()} The best network so far is in"
            self._offer_to_resume(self._checkpoint, said)

    def _use_resumed_settings(self) -> None:
        """Show the settings of the run named under Resume from in the boxes: it goes on
        with them, or with what is changed there (its other settings stay its own)."""
        from ..models.training import recorded_settings

        path = typed_path(self.resume.text())
        if path == self._resumed_from:  # Return pressed again: what was changed stays
            return
        self._resumed_from = path
        if not path or not os.path.isfile(path):
            return  # Train says what is wrong with it
        try:
            recorded = recorded_settings(read_description(path))
        except (OSError, ValueError):
            return
        boxes = (self.epochs, self.steps, self.batch_size, self.crop_size, self.learning_rate)
        for box, name in zip(boxes, _SHOWN_SETTINGS, strict=True):
            if name in recorded:
                box.setValue(recorded[name])
        if "resample" in recorded:
            self.pixels.resample.setChecked(recorded["resample"])

    def _offer_to_resume(
        self,
        checkpoint: Path,
        said: str,
        then: str = "Press Train to continue from the last finished epoch.",
    ) -> None:
        """Fill in Resume from: the training state beside the checkpoint resumes exactly
        (with the settings the boxes hold: the run's)."""
        self.resume.setText(str(checkpoint))
        self._resumed_from = str(checkpoint)
        self.status.setText(f"{said} {checkpoint}. {then}")

    def _saved_after_cancel(self, p) -> None:
        """A cancelled run's first epoch (or the starting model it kept), saved as it was
        cancelled: say where it is (unless a new run has started since)."""
        saved = getattr(p, "phase", "") == "epoch" and p.checkpoint is not None
        if isalive(self) and saved and not self.runner.busy:
            self._checkpoint = p.checkpoint
            what = "the first epoch was" if p.improved else "the starting model was"
            self._offer_to_resume(p.checkpoint, f"Cancelled as {what} being saved:")

    def _on_progress(self, p) -> None:
        self._phase = p.phase
        if p.phase == "split":
            self._validation_images = len(p.split.get("validation") or ())
            if p.history:  # a resumed run: its earlier epochs were left off the plot
                self._plot_history(p.history, p.steps)
            return
        if p.phase == "notice":
            from ..models.training import NO_VALIDATION_TO_TUNE  # loaded: the run uses it

            self.status.setText(p.message)
            # Said again at the run's end: the next step's progress writes over it (a
            # training state the disk had no room for, said after an epoch). The end says
            # in the dock's words that no image was left to choose the thresholds on.
            if p.message not in self._notes and p.message not in NO_VALIDATION_TO_TUNE.values():
                self._notes.append(p.message)
            return
        if p.phase == "train":
            if self._first_epoch is None:  # a resumed run goes on counting epochs
                self._first_epoch = p.epoch
            self.losses.append((p.global_step, p.loss))
            done = (p.epoch - self._first_epoch) * p.steps + p.step
            self._show_stage("Training", done, p.steps * (p.epochs - self._first_epoch + 1))
            seconds = self._pace.left(done, self.progress.maximum())
            # The pace is timed by the clock, so once an epoch has been validated it counts
            # the validations to come; choosing the thresholds after the last epoch is left
            # out (about five validations' time for a 1-megapixel image on 2 CPU cores).
            then = ""
            if self._validation_images:
                then = (
                    ", validation included; then choosing the thresholds"
                    if self._validated and seconds is not None
                    else ", then validation and threshold tuning"
                )
            if seconds is not None:
                left = f"about {duration(seconds)} left{then}."
            else:
                left = (
                    f"last step{then}." if done >= self.progress.maximum() else "timing the steps…"
                )
            self.status.setText(
                f"Epoch {p.epoch} of {p.epochs}, step {p.step} of {p.steps}: loss {p.loss:.3f}; "
                f"{left}"
            )
            # Redraw at most twice a second: drawing costs the GUI thread tens of ms.
            if time.monotonic() - self._drawn > 0.5 or p.step == p.steps:
                self.canvas.replot()
        elif p.phase == "validate":
            self._show_stage("Validating", p.step, p.steps)
            what = _STARTING_MODEL if self._before_first_epoch() else f"Epoch {p.epoch}"
            self.status.setText(f"{what}: validating image {p.step} of {p.steps}")
        elif p.phase == "tune":
            # Before the first epoch of a fine-tuning run: the starting model's thresholds,
            # so that its epochs are scored fairly. After the last: the model's own.
            what = (
                "Before the first epoch: choosing the starting model's thresholds on the "
                "validation images, to score each epoch with them"
                if self._before_first_epoch()
                else "Last step: choosing the post-processing thresholds on the validation images"
            )
            # Its first steps predict the validation images, seconds each; the rest score
            # settings on them, far faster: timed from the first, 57 min were said for 10 s.
            images = self._validation_images
            self._show_stage("Choosing thresholds", p.step, p.steps)
            if p.step < images:
                self.status.setText(f"{what}: predicting image {p.step + 1} of {images}")
                return
            seconds = self._pace.left(p.step, p.steps, ("tune", self._first_epoch))
            left = "" if seconds is None else f"; about {duration(seconds)} left"
            self.status.setText(f"{what}: {p.step} of {p.steps}{left}")
        elif p.phase == "epoch":
            self._checkpoint = p.checkpoint
            self._beaten = self._beaten or bool(p.improved)
            if p.validation:
                self.scores.append((p.global_step, p.validation["mean_average_f1"]))
                score = f"validation mean-average F1 {p.validation['mean_average_f1']:.3f}"
                if self._before_first_epoch():  # fine-tuning's epoch 0
                    self.status.setText(
                        f"{_STARTING_MODEL}: {score}; it stays the model unless an epoch "
                        "scores higher."
                    )
                else:
                    self._validated = True
                    saved = " (best so far, saved)" if p.improved else ""
                    self.status.setText(f"Epoch {p.epoch}: {score}{saved}")
            self.canvas.replot()

    def _before_first_epoch(self) -> bool:
        """Whether a report of validation or thresholds is of the model a fine-tuning run
        starts from (a resumed run that only has its thresholds left has no epoch either)."""
        return self._fine_tuning and self._first_epoch is None

    def _show_stage(self, stage: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` of the run's stage under way, named on the bar: the
        training steps' bar stood full through validation and choosing the thresholds."""
        self.progress.setFormat(f"{stage}: %p%")
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _plot_history(self, history: list[dict], steps_per_epoch: int) -> None:
        """Plot the epochs a resumed run goes on from: each one's mean training loss and
        validation score at the step it ended (recorded, else counted at this run's steps
        per epoch)."""
        for entry in history:
            step = entry.get("steps", entry["epoch"] * steps_per_epoch)
            if math.isfinite(entry.get("loss", math.nan)):
                self.losses.append((step, entry["loss"]))
            if (entry.get("validation") or {}).get("mean_average_f1") is not None:
                self.scores.append((step, entry["validation"]["mean_average_f1"]))
        self.canvas.replot()

    def _plot(self) -> None:
        self._drawn = time.monotonic()
        self.loss_axes.clear()
        self.score_axes.clear()
        loss, score, _ = self.canvas.series
        if self.losses:
            steps, losses = zip(*self.losses, strict=True)
            self.loss_axes.plot(steps, losses, color=loss, lw=1, label="training loss")
        if self.scores:
            steps, scores = zip(*self.scores, strict=True)
            self.score_axes.plot(steps, scores, "o-", color=score, label="val mean-avg F1")
        if not self.losses and not self.scores:
            middle = {"ha": "center", "va": "center", "transform": self.loss_axes.transAxes}
            self.loss_axes.text(
                0.5, 0.5, "Drawn while a model trains.", color=self.canvas.muted, **middle
            )
        self.score_axes.set_ylim(0, 1)
        self.loss_axes.set_xlabel("step", color=self.canvas.text)
        self.loss_axes.set_ylabel("training loss", color=loss)
        self.score_axes.set_ylabel("validation mean-average F1", color=score)
        self.score_axes.yaxis.set_label_position("right")
        self.canvas.style()
        self.canvas.draw_idle()

    def _on_result(self, result) -> None:
        from ..models.training import (
            kept_start_note,
            saved_epoch_note,
            state_note,
            time_limit_note,
            tuned_note,
        )

        self.result = result
        self.resume.clear()  # the run is finished: Train again starts a new one
        val = (result.description.get("scores") or {}).get("validation") or {}
        tuned = result.description.get("postprocess")
        if "mean_average_f1" not in val:
            fine_tuned = (result.description.get("training") or {}).get("initialised_from")
            kept = "those of the model it started from" if fine_tuned else "at their defaults"
            # Which epoch was kept, and why, the saved-epoch note below says.
            text = (
                f"No image was left for validation: the thresholds stay {kept}; train on "
                "more images to have them chosen."
            )
        else:
            # With the thresholds it segments with: its epochs were compared at others (a
            # fine-tuning run's starting model's), where a model scored 0.129 for 0.498.
            chosen = chosen_scores(result.description)
            text = f"Validation mean-average F1 {chosen['mean_average_f1']:.3f}" + (
                f", F1@0.5 {chosen['f1_50']:.2f}" if "f1_50" in chosen else ""
            )
        headline = text + "." if "mean_average_f1" in val else text
        training = result.description.get("training") or {}
        if tuned:
            measured = "scores" in tuned and "mean_average_f1" in val
            text += (
                f"{' with the' if measured else '. The'} thresholds chosen on the validation "
                f"images: interior {tuned['interior_threshold']:g}, foreground "
                f"{tuned['foreground_threshold']:g}, minimum cell size {tuned['min_size']} px"
            )
            if measured:
                # None: the defaults (a fine-tuning run whose start's could not be chosen too).
                own = training.get("validation_settings") is not None
                at = "the starting model's" if own else "the default"
                text += (
                    f" (its epochs were compared at {at} thresholds, where it scored "
                    f"{val['mean_average_f1']:.3f})"
                )
            text += "."
        elif "mean_average_f1" in val:
            text += "."
        if stopped := time_limit_note(result):
            text += f" {stopped}"
            headline += f" {stopped}"
        # As `cytomask train` says it: which epoch's network was kept, the part of one the
        # time limit cut short included.
        if saved := saved_epoch_note(result.description):
            text += f" {saved}"
        split = training.get("split") or {}
        if training.get("held_back"):
            (part,) = split["validation"]
            text += (
                f" With one image, its {part[part.rfind('(') + 1 : -1]} were held back from "
                "training to validate on."
            )
        elif split.get("validation"):  # said as the run started, then covered by its steps
            trained, validated = _split_words(split)
            text += f" Trained on {trained}, validated on {validated}."
        unready = tuned_note(tuned, result.description) if tuned else ""
        ready = not unready
        if unready:
            text += f" {unready}"
        if note := kept_start_note(result.description):
            text += f" {note}"
            headline += f" {note[: note.index('.') + 1]}"
        if not ready:  # segmenting with it would give worse cells than the model before
            text += (
                " It is not selected for segmenting: to use it anyway, pick it in the Segment "
                "tab (its model list, or Open… for a file outside the model folder)."
            )
        text += _sentences(self._notes)
        self.summary = text
        #: The summary's gist, said where the model is selected to segment with: the whole
        #: of it (thresholds, split, notes) squeezed that tab's settings out of sight.
        self.headline = f"{headline} The Train a model tab says more."
        state = state_note(result.checkpoint, "Resume from")
        # A file name starts the sentence as it is spelt.
        self.status.setText(f"Saved {result.checkpoint}. {text}" + (f" {state}." if state else ""))
        if ready:
            self.trained.emit(Path(result.checkpoint))


class _Run(NamedTuple):
    """A U-Net run of the segmenting tab: what it segments, how, and the frames of a stack
    it has segmented so far (``(frame, cells)``, added by its worker)."""

    layer: Layer
    step: UNetStep
    device: str
    pixel: tuple[float, float] | None
    finished: list


def _frame_by_frame(
    predictor, channels: list, frame_axes: tuple, kwargs: dict, finished: list, maps: bool
):
    """:func:`~napari_cytomask.models.inference.iter_segment` of a stack (its frames over
    ``frame_axes``), one frame after another, each put in ``finished`` as ``(frame,
    cells)`` once done; the progress counts the tiles of the whole stack. Returns the
    stack's Segmentation, ids unique across its frames as the whole stack's are, and its
    confidence that of the whole stack's probabilities, as ``cytomask segment`` measures
    it (the mean of the frames' weighed a frame of few cells as one of many). Its
    probabilities are kept for ``maps`` alone (None without): 12 bytes a pixel, a stack
    of 40 megapixels held 0.8 GB more until the run ended."""
    frames = list(np.ndindex(frame_axes))
    probabilities, samples, labels, top = None, [], [], 0
    for k, frame in enumerate(frames):
        work = iter_segment(predictor, [channel[frame] for channel in channels], **kwargs)
        try:
            while True:
                report = next(work)
                if report.stage == "predict":  # the cells of a frame take a moment more
                    yield replace(
                        report,
                        done=k * report.total + report.done,
                        total=len(frames) * report.total,
                    )
        except StopIteration as stop:
            part = stop.value
        cells = numbered_above(np.asarray(part.labels), top)  # on from the frames before
        top = int(cells.max(initial=top))
        finished.append((frame, cells))
        samples.append(confidence_sample(part.probabilities))
        if maps:
            if probabilities is None:  # the stack's, filled frame by frame
                shape = part.probabilities.shape
                probabilities = np.empty((shape[0], *frame_axes, *shape[1:]), np.float32)
            probabilities[(slice(None), *frame)] = part.probabilities
        labels.append(cells)
    stacked = np.stack(labels).reshape((*frame_axes, *labels[0].shape))
    sample = np.stack(samples, axis=1)  # (classes, frames, rows, columns)
    return Segmentation(
        probabilities, part.classes, stacked, sampled_confidence(sample, part.classes)
    )


def _corrected_only(mask, frames: int, notes: list[str]) -> list[int]:
    """The frames of ``mask`` (of ``frames``, by number) to train on, where a model found
    its cells: those corrected by hand. Its other frames are the model's own cells:
    trained on, they teach it its mistakes, and a frame corrected alone went to
    validation, where it only scored the model against its own output. A result nobody
    corrected is refused."""
    every = list(range(frames))
    if not made_by_model(mask):
        return every
    edits = edited_frames(mask)
    if edits == []:  # refused, as a missing input is: nothing failed
        raise NothingToRun(
            f"'{mask.name}' holds the cells a model found, uncorrected: trained on, they "
            "would teach the model its own mistakes. Correct them by hand first (napari's "
            "brush, eraser and fill: the frames you correct are the ones trained on), or "
            "pick a hand-drawn mask."
        )
    if edits is None:
        if frames > 1:
            notes.append(
                f"'{mask.name}' was corrected by hand in another session, in frames that "
                f"cannot be told now: all {frames} are trained on, and those left "
                "uncorrected teach the model its own cells."
            )
        return every
    if len(edits) < frames:
        notes.append(
            f"Only the {len(edits)} of the {frames} frames of '{mask.name}' corrected "
            f"by hand are trained on (frame{'s' if len(edits) > 1 else ''} "
            f"{', '.join(map(str, edits))}): the others hold the model's own cells."
        )
    return [i for i in every if i in edits]


def _validated_megapixels(sizes: list[int], lone=None) -> float:
    """Megapixels of the images of ``sizes`` (pixels) that the dock's split validates on:
    of a lone image, the part held back, none where that image (``lone``, its
    TrainingSample, when known) cannot spare one (see :func:`~.training.hold_back_part`)."""
    from ..models.training import DOCK_SPLIT, HELD_BACK, hold_back_part, split_by_image

    if len(sizes) == 1:
        held_back = lone is None or hold_back_part(lone) is not None
        return HELD_BACK * sizes[0] / 1e6 if held_back else 0.0
    # How many, by the split's rule; which ones goes by their names: at an average size.
    validated = split_by_image([str(i) for i in range(len(sizes))], DOCK_SPLIT)["validation"]
    return len(validated) * sum(sizes) / max(len(sizes), 1) / 1e6


def _split_said(samples, settings, resumed: dict | None) -> str:
    """The start of the status of a run: how many images it trains on, and which validate
    the epochs and choose the thresholds (a resumed run, ``resumed`` the description of
    its model, keeps its own split; of one image a part is held back, said at the end)."""
    from ..models.training import split_by_image

    if resumed is not None:
        split = (resumed.get("training") or {}).get("split") or {}
        if not (split.get("train") and split.get("validation")):
            return f"Training on {len(samples)} image(s)"
    elif len(samples) < 2:
        return f"Training on {len(samples)} image(s)"
    else:
        split = split_by_image([s.name for s in samples], settings.fractions, settings.seed)
    trained, validated = _split_words(split)
    return f"Training on {trained}, validating on {validated}"


def _split_words(split: dict[str, list[str]]) -> tuple[str, str]:
    """How a split's images are said: its training images as "N image(s)", its validation
    images as "M (their names)", named apart from the others (``set3/raw.tif``)."""
    from ..models.training import short_names

    everything = [name for names in split.values() for name in names]
    shown = short_names(split["validation"], everything)
    return f"{len(split['train'])} image(s)", f"{len(shown)} ({', '.join(shown)})"


#: The settings of a run that the Train tab shows (Epochs, Steps per epoch, Crops per step,
#: Crop size, Learning rate): a resumed run goes on with them as they stand there.
_SHOWN_SETTINGS = ("epochs", "steps_per_epoch", "batch_size", "crop_size", "learning_rate")


def _sentences(notes: list[str]) -> str:
    """Notes as sentences to follow a status text, each begun with a capital."""
    return "".join(f" {note[:1].upper()}{note[1:]}" for note in notes)


def _scale_events(layer) -> tuple:
    """The events of ``layer`` (or None) that change the pixel size it records."""
    return () if layer is None else (layer.events.scale, layer.events.units)


def _recorded_pixel_size(layer) -> tuple[float, float] | None:
    """The (Y, X) pixel size in µm a layer records at full resolution, or None."""
    geometry = resolution_level(layer)[1]
    return pixel_size_um(geometry.get("scale"), geometry.get("units"))


def _size_note(labels, min_size: int | None) -> str:
    """A note when the cells found are mostly near the minimum cell size: the smaller
    ones were then probably dropped (a size tuned on other images, such as larger nuclei).

    Tuning chooses a minimum size of at most half the cells' median area, so on images
    like the tuning ones the median cell is at least twice it; the note needs less.
    Computed in the worker: it reads every pixel of the labels.
    """
    if not min_size:
        return ""
    areas = np.bincount(np.asarray(labels).ravel())[1:]
    areas = areas[areas > 0]
    if not areas.size or np.median(areas) >= 1.5 * min_size:
        return ""
    return (
        f"Half of them are under 1.5 times the minimum cell size ({min_size} px), so "
        "smaller cells were probably left out: lower it if cells are missing."
    )


__all__ = ["UNetSegmentWidget", "UNetTrainWidget"]
