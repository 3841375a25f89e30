"""Dock widget for SAM2 automatic masks whose sliders update the labels live."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractSlider,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from ..io.layers import (
    METADATA_KEY,
    frame_key,
    frame_notes,
    layer_info,
    model_record,
    named_frame,
    named_frames,
    nothing_to_find,
    origin,
    pixel_size_um,
    record_written,
    result_metadata,
    varies_as_light,
)
from ..models.checkpoint import CheckpointError
from ..models.device import available_devices
from ..models.sam2_engine import (
    ENCODER_PARAMS,
    LabelParams,
    Sam2Engine,
    Sam2Params,
    Sam2Result,
    crop_points_problem,
    foreground_mismatch,
)
from ..models.sam2_models import (
    DEFAULT_MODEL,
    HF_MODELS,
    Sam2ModelCache,
    cached_checkpoint,
    identify_sam2_checkpoint,
)
from ..pipeline import Sam2Step
from ..roles import source_of
from ..tiling import overlap_problem
from ._layers import (
    ALL_POSITIONS,
    CURRENT_POSITION,
    FramesChoice,
    LayerPicker,
    add_result,
    closed_during_run,
    compact_labels,
    forget_edits,
    frame_nouns,
    frame_on_show,
    labels_layer,
    lay_over,
    layer_by_id,
    level_names,
    resolution_level,
    result_slot,
)
from ._live import (
    NothingToRun,
    PointValidator,
    Runner,
    StepControls,
    StepWidget,
    failed,
    no_image_to_segment,
    step_page,
    typed_path,
)

LOCAL = "Local checkpoint…"
NO_FOREGROUND = "(none)"

# name: (label, minimum, maximum, step, default, tooltip); integers when the step is 1.
_FILTERS = {
    "pred_iou_thresh": (
        "Minimum predicted IoU",
        0.0,
        1.0,
        0.01,
        0.8,
        "Drop masks whose predicted IoU (the model's own quality estimate) is "
        "not above this. Re-filters at once.",
    ),
    "stability_score_thresh": (
        "Minimum stability",
        0.0,
        1.0,
        0.01,
        0.95,
        "Drop masks that change much when the logit cut-off moves by "
        "the stability offset. Re-filters at once.",
    ),
    "box_nms_thresh": (
        "Duplicate overlap",
        0.0,
        1.0,
        0.01,
        0.7,
        "Box IoU above which the lower-scoring of two masks of one crop is "
        "dropped as a duplicate. Re-filters at once.",
    ),
    "crop_nms_thresh": (
        "Duplicate overlap between crops",
        0.0,
        1.0,
        0.01,
        0.7,
        "Box IoU above which duplicates between crops are dropped. Re-filters at once.",
    ),
}
_LABELS = {
    "min_area": (
        "Minimum area (px)",
        0,
        20000,
        1,
        0,
        "Drop masks with fewer pixels. Re-filters at once.",
    ),
    "max_area_fraction": (
        "Maximum area (share of image)",
        0.0,
        1.0,
        0.01,
        0.5,
        "Drop masks covering more than this fraction of the image "
        "(background). Re-filters at once.",
    ),
    "min_foreground_fraction": (
        "Minimum share on foreground",
        0.0,
        1.0,
        0.01,
        0.5,
        "With a foreground layer: drop masks with less of their area "
        "in the foreground. Re-filters at once.",
    ),
}
_DECODER = {
    "points_per_side": (
        "Points per side",
        2,
        64,
        1,
        32,
        "Grid of prompt points per image side. Re-runs the mask decoder only "
        "(the image encoding is kept).",
    ),
    "stability_score_offset": (
        "Stability offset",
        0.0,
        4.0,
        0.05,
        1.0,
        "Shift of the logit cut-off for the stability score. Re-runs the mask decoder only.",
    ),
    "mask_threshold": (
        "Mask cut-off (logit)",
        -4.0,
        4.0,
        0.05,
        0.0,
        "Logit cut-off that makes the masks binary. Re-runs the mask decoder only.",
    ),
    "min_mask_region_area": (
        "Fill holes and islands below (px)",
        0,
        1000,
        1,
        0,
        "Fill holes and remove islands smaller than this in the "
        "low-resolution masks (needs sam2's compiled extension). Re-runs "
        "the mask decoder only.",
    ),
    "crop_n_points_downscale_factor": (
        "Fewer points in crops (factor)",
        1,
        4,
        1,
        1,
        "Fewer points in the crops of deeper layers. Re-runs the mask decoder only.",
    ),
    "points_per_batch": (
        "Points per batch (0: auto)",
        0,
        1024,
        1,
        0,
        "Points decoded at once; 0 adapts to the GPU memory.",
    ),
}
#: The sliders shown first: the grid of prompt points and the filters a person tunes (the
#: share on the foreground where one is chosen: guided by the U-Net, its own setting).
_TUNED = (
    "points_per_side", "pred_iou_thresh", "stability_score_thresh", "min_area",
    "max_area_fraction", "min_foreground_fraction",
)  # fmt: skip
_CROPS = {
    "crop_n_layers": ("Crop layers", 0, 3, 1, 0,
                      "Also segment 4, 16… crops of the image (more small cells, slower). "
                      "Runs the image encoder for the new crops."),
    "crop_overlap_ratio": ("Crop overlap (share)", 0.0, 0.9, 0.01, 512 / 1500,
                           "Overlap of the crops. Runs the image encoder for the new crops."),
    "tile_size": ("Tile size (px)", 256, 4096, 1, 1024,
                  "Images larger than this are processed in overlapping tiles at native "
                  "resolution."),
    "tile_overlap": ("Tile overlap (px)", 0, 1024, 1, 256,
                     "Overlap of the tiles; larger than the biggest cell keeps cells whole at "
                     "tile borders."),
}  # fmt: skip


#: The sliders whose values must fit together: the tile overlap in the tiles, and prompt
#: points in every crop layer.
_GRID_SLIDERS = (
    "tile_size", "tile_overlap", "points_per_side", "crop_n_layers",
    "crop_n_points_downscale_factor",
)  # fmt: skip


def _slider(minimum, maximum, step, value, tooltip):
    """A slider with its value in an editable box beside it (integers when the step is 1)."""
    slider = (QLabeledSlider if isinstance(step, int) else QLabeledDoubleSlider)(
        Qt.Orientation.Horizontal
    )
    slider.setRange(minimum, maximum)
    slider.setSingleStep(step)
    if not isinstance(step, int):
        slider.setDecimals(2)
    slider.setValue(value)
    slider.setToolTip(tooltip)
    # Tab stops on the slider (arrow keys step it) and then on its value box (type a
    # number), not on the frame around them; the box took the focus only when clicked.
    handle = slider.findChild(QAbstractSlider)
    slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    slider.setFocusProxy(handle)
    box = slider.findChild(QLineEdit)
    box.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    # superqt reads the box with float(): its validator must give it a decimal point, not
    # the comma of the system's locale.
    box.setValidator(PointValidator(box))
    return slider


class _ModelNotLoaded(Exception):
    """Carries the error of loading a run's model out of the run, with the choice it was
    about (``(source, config)``, as :meth:`Sam2Widget.model_source` gives it)."""

    def __init__(self, choice: tuple[str, str | None]):
        super().__init__()
        self.choice = choice


def _describe_error(source: str | None, err: Exception) -> str:
    """What went wrong and what to do; a model that could not be fetched points to a file.
    ``source`` is the model that failed to load, None when the run failed otherwise."""
    text = failed(
        "SAM2",
        err,
        "Lower Tile size or Points per batch (under More settings), or choose the CPU as Device.",
        "Lower Points per batch (under More settings) or Points per side, or close other programs.",
    )
    # Download and cache errors are OSErrors (no connection, file not in the cache).
    if source in HF_MODELS and isinstance(err, OSError) and LOCAL not in text:
        text += (
            f" Without a network connection, choose '{LOCAL}' under Model and pick a .pt file "
            "downloaded on another computer."
        )
    return text


class Sam2Widget(StepWidget, QWidget):
    """Segment cells with SAM2 automatic masks and tune them live.

    Parameters
    ----------
    napari_viewer
        The viewer.
    model_builder
        Builds a model from ``(source, device, config)``; by default Hugging
        Face ids are downloaded once and local checkpoints loaded. Tests pass a
        builder of small random models.
    """

    #: Emitted with the masks Labels layer after every result (Segment or a slider).
    segmented = Signal(object)

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        model_builder: Callable[..., object] | None = None,
    ):
        super().__init__()
        self.viewer = napari_viewer
        self._models = Sam2ModelCache(model_builder)
        #: The engine of the model last used (the one its cache holds).
        self._last_engine: Sam2Engine | None = None
        self._records: dict[tuple, dict] = {}  # the model cache's key -> the model's record
        self._planes: dict[str, tuple] = {}  # slot -> (lazy array, index, plane read)
        self._engine_lock = threading.Lock()
        #: The image the last Segment ran on (its layer's unique id) and its frame (``()``:
        #: every frame): what the sliders re-filter. None before the first.
        self._asked: tuple[int, tuple] | None = None
        #: By image (its layer's unique id): the result layer its cells went to last (its
        #: unique id: the user may rename it).
        self._result_of: dict[int, int] = {}
        #: The model that failed to load last, ``(source, config)``, and the message said.
        self._load_error: tuple[tuple[str, str | None], str] | None = None
        #: By result layer (unique id): each position segmented into it, its result and
        #: settings.
        self._positions: dict[int, dict[tuple, tuple[Sam2Result, dict]]] = {}
        #: The notes on the image segmented last, by (its data's id, frame), and the notes.
        self._seen: tuple[tuple, str] | None = None

        self.model = QComboBox()
        self.model.addItems([*HF_MODELS, LOCAL])
        self.model.setCurrentText(DEFAULT_MODEL)
        self.model.setToolTip(
            "SAM2 model: a Hugging Face id (downloaded once, then cached) or a local .pt "
            f"checkpoint ('{LOCAL}': works offline)."
        )
        self.model.activated.connect(self._model_chosen)
        self.model.currentTextChanged.connect(self._show_local)
        self.model.currentTextChanged.connect(self._model_changed)
        self.checkpoint = QLineEdit()
        self.checkpoint.textChanged.connect(self._model_changed)
        self.checkpoint.setPlaceholderText("a SAM2 .pt checkpoint")
        self.checkpoint.setToolTip("The local SAM2 checkpoint file.")
        browse = QPushButton("Open…")
        browse.setToolTip("Choose a local SAM2 checkpoint (.pt).")
        browse.clicked.connect(self._browse)
        self._checkpoint_row = QWidget()
        row = QHBoxLayout(self._checkpoint_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.checkpoint, 1)
        row.addWidget(browse)
        self.config = QComboBox()
        self.config.addItems(list(HF_MODELS))
        self.config.setCurrentText(DEFAULT_MODEL)
        self._last_id = DEFAULT_MODEL  # the Hugging Face id chosen last
        self.config.setToolTip("The model a local checkpoint belongs to (its configuration).")
        self.config.currentTextChanged.connect(self._model_changed)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setToolTip("Where SAM2 runs; auto picks a GPU when there is one.")
        self.layer = LayerPicker(
            napari_viewer, Image, prefer_role="input", tooltip="The image to segment."
        )
        self.level = QComboBox()
        self.level.setToolTip(
            "For pyramidal images: the resolution SAM2 segments. Full resolution finds the "
            "smallest cells; a coarser level is faster. The masks overlay the image either way."
        )
        self.layer.currentIndexChanged.connect(self._refresh_levels)
        self.foreground = QComboBox()
        self.foreground.setToolTip(
            "Optional foreground: cells (a Labels layer, such as the U-Net's), a probability "
            "map from 0 to 1 or a mask of two values; masks mostly outside it are background "
            "and dropped."
        )
        self.positions = FramesChoice(
            self.layer,
            (CURRENT_POSITION, ALL_POSITIONS),
            "For tile scans, time-lapses and Z stacks: segment the position (time point, "
            "plane) on show, or all of them.",
        )
        self.order = QComboBox()
        self.order.addItems(["area", "score"])
        self.order.setToolTip(
            "Where masks overlap: 'area' gives pixels to the smaller mask, 'score' to the "
            "higher predicted IoU."
        )
        self.order.currentIndexChanged.connect(self._filters_changed)
        self.checks = {
            "multimask_output": QCheckBox("Three masks per point"),
            "use_m2m": QCheckBox("Refine masks (mask to mask)"),
            "split": QCheckBox("Split merged cells (watershed)"),
        }
        self.checks["multimask_output"].setChecked(True)
        self.checks["multimask_output"].setToolTip(
            "Three masks per prompt point (whole, part, subpart). Re-runs the mask decoder only."
        )
        self.checks["use_m2m"].setToolTip(
            "One more decoder pass with each mask as prompt. Re-runs the mask decoder only."
        )
        self.checks["split"].setToolTip(
            "Split masks that hold several cells with the watershed of the post-processing module."
        )
        for box in self.checks.values():
            box.toggled.connect(self._filters_changed)

        self.sliders: dict = {}
        content = QWidget()
        top = QFormLayout()
        top.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        top.addRow("Model", self.model)
        top.addRow("Checkpoint file", self._checkpoint_row)
        top.addRow("Configuration", self.config)
        top.addRow("Image", self.layer)
        top.addRow("Resolution level", self.level)
        top.addRow("Foreground", self.foreground)
        top.addRow(self.positions.label, self.positions)
        top.addRow("Device", self.device)
        self._top = top
        # The model ids are long: as wide as them, the combo boxes wrapped below their labels
        # when the label column widened.
        for combo in (self.model, self.config):
            combo.setMinimumContentsLength(10)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        # The sliders a person tunes in view; the others behind "More settings", so the
        # page fits a laptop screen.
        specs = {**_FILTERS, **_LABELS, **_DECODER, **_CROPS}
        groups = {
            "Tune (the labels follow)": {k: specs[k] for k in _TUNED},
            "Filters (instant)": {k: v for k, v in {**_FILTERS, **_LABELS}.items()
                                  if k not in _TUNED},
            "Decoder (re-runs the decoder)": {k: v for k, v in _DECODER.items()
                                              if k not in _TUNED},
            "Crops and tiles (re-run the encoder on Segment)": _CROPS,
        }  # fmt: skip
        # Said as the tiles are set, not only when a run refuses them.
        self.tile_note = QLabel()
        self.tile_note.setWordWrap(True)
        self.tile_note.hide()
        self.more = QToolButton()
        self.more.setText("More settings")
        self.more.setCheckable(True)
        self.more.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.more.setArrowType(Qt.ArrowType.RightArrow)
        self.more.setToolTip("Duplicate removal, decoder, crop and tile settings.")
        extra = QWidget()
        extra_column = QVBoxLayout(extra)
        extra_column.setContentsMargins(0, 0, 0, 0)
        for title, group in groups.items():
            box = QGroupBox(title)
            form = QFormLayout(box)
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            for name, (label, lo, hi, step, default, tip) in group.items():
                slider = _slider(lo, hi, step, default, tip)
                if name not in ENCODER_PARAMS and name not in ("tile_size", "tile_overlap"):
                    slider.valueChanged.connect(self._filters_changed)
                self.sliders[name] = slider
                form.addRow(label, slider)
                form.labelForField(slider).setToolTip(tip)
            if title.startswith("Decoder"):
                form.addRow(self.checks["multimask_output"])
                form.addRow(self.checks["use_m2m"])
            elif title.startswith("Crops"):
                form.addRow(self.tile_note)  # under the tile sliders, the group's last
                form.addRow("Overlaps go to", self.order)
                form.addRow(self.checks["split"])
            if title.startswith("Tune"):
                self._tune_box, self._tune_form = box, form
                column.addWidget(box)
                column.addWidget(self.more)
            else:
                extra_column.addWidget(box)
        column.addWidget(extra)
        extra.setVisible(False)

        def show_more(shown: bool) -> None:
            extra.setVisible(shown)
            self.more.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

        self.more.toggled.connect(show_more)
        for name in _GRID_SLIDERS:
            self.sliders[name].valueChanged.connect(self._check_tiles_and_crops)
        column.addStretch()

        self.controls = StepControls(
            "Segment cytoplasm",
            "Run SAM2 on the image; afterwards the sliders update the labels live.",
        )
        self.controls.run_button.clicked.connect(self.segment)
        self.controls.cancel_button.clicked.connect(self.cancel)
        self.runner = Runner(
            self._show,
            self.controls,
            describe_error=self._describe,
            delay_ms=150,
            parent=self,
        )
        self.say_when_made_closed(self.viewer, self.segmented)
        step_page(self, content, self.controls)

        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.renamed):
            event.connect(self._refresh_foreground)
        self.foreground.currentIndexChanged.connect(self._show_foreground_share)
        self._refresh_foreground()
        self._refresh_levels()
        self._show_local()
        self.bind_keys()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        # Every label of the top rows as wide as the widest, shown or not (measured once
        # shown, in napari's font): the rows shown on demand (a local checkpoint's, a
        # pyramid's resolution level) widened the label column and moved every field.
        labels = [
            self._top.itemAt(row, QFormLayout.ItemRole.LabelRole).widget()
            for row in range(self._top.rowCount())
        ]
        for label in labels:
            label.ensurePolished()
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:
            label.setMinimumWidth(width)

    @property
    def segment_button(self):
        return self.controls.run_button

    def settings_controls(self) -> dict[str, QWidget]:
        """Remembered controls by parameter name."""
        return {
            "model": self.model,
            "checkpoint": self.checkpoint,
            "config": self.config,
            "device": self.device,
            "positions": self.positions,
            "order": self.order,
            **self.checks,
            **self.sliders,
        }

    # -- choices ---------------------------------------------------------------

    def _check_tiles_and_crops(self, *_) -> None:
        """Say at once when the tile overlap does not fit in the tiles, or the crop layers
        get no prompt point."""
        value = {n: int(self.sliders[n].value()) for n in _GRID_SLIDERS}
        problems = [
            overlap_problem(value["tile_size"], value["tile_overlap"]),
            crop_points_problem(
                value["points_per_side"],
                value["crop_n_layers"],
                value["crop_n_points_downscale_factor"],
            ),
        ]
        said = " ".join(p for p in problems if p)
        self.tile_note.setText(said)
        self.tile_note.setVisible(bool(said))

    def _refresh_foreground(self, event=None) -> None:
        # The choice is kept by layer, not name: renamed, it stays the foreground.
        current = self.foreground.currentData()
        self.foreground.blockSignals(True)
        self.foreground.clear()
        self.foreground.addItem(NO_FOREGROUND)
        for layer in self.viewer.layers:
            # A colour picture is no foreground map (the run would refuse it).
            if isinstance(layer, Image) and layer.rgb:
                continue
            if isinstance(layer, Image | Labels) and layer_info(layer).get("method") != "sam2":
                self.foreground.addItem(layer.name, layer.unique_id)
        self.foreground.setCurrentIndex(max(self.foreground.findData(current), 0))
        self.foreground.blockSignals(False)
        self._show_foreground_share()

    def _show_foreground_share(self) -> None:
        """The minimum share on the foreground is shown with the sliders a person tunes
        while a foreground is chosen (it filters nothing without one)."""
        slider = self.sliders["min_foreground_fraction"]
        chosen = self.foreground.currentData() is not None
        slider.setVisible(chosen)
        self._tune_form.labelForField(slider).setVisible(chosen)

    def show_tuning(self) -> None:
        """Scroll the sliders a person tunes into view: under the U-Net's settings (guided
        by it), the page shows only its first rows."""
        area = self._tune_box.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:
            area.ensureWidgetVisible(self._tune_box, 0, 0)

    def _refresh_levels(self, *_) -> None:
        """Offer the chosen image's resolution levels; only pyramids have a choice."""
        layer = self.layer.layer()
        names = level_names(layer) if layer is not None else []
        if [self.level.itemText(i) for i in range(self.level.count())] != names:
            self.level.clear()
            self.level.addItems(names)  # full resolution first: the default
        self.level.setVisible(len(names) > 1)
        self._top.labelForField(self.level).setVisible(len(names) > 1)

    def _show_local(self, *_) -> None:
        local = self.model.currentText() == LOCAL
        if not local:
            self._last_id = self.model.currentText()
        for field in (self._checkpoint_row, self.config):
            field.setVisible(local)
            self._top.labelForField(field).setVisible(local)

    def _model_changed(self, *_) -> None:
        """Take back the message of a model that failed to load once another is chosen: after
        a failed download the dock still said so when a local checkpoint was chosen, as the
        message advises. A message about the model chosen now stays, and so does what a
        waiting or running run says."""
        if self.runner.busy or self._load_error is None:
            return
        choice, message = self._load_error
        if self._chosen() != choice and self.status.text() == message:
            self.status.setText("")

    def _chosen(self) -> tuple[str, str | None] | None:
        """The model chosen now, as :meth:`model_source` gives it; None for a local
        checkpoint whose file is not given yet (another model than any loaded)."""
        try:
            return self.model_source()
        except ValueError:
            return None

    def _model_chosen(self, _index=None) -> None:
        if self.model.currentText() != LOCAL or self.checkpoint.text():
            return  # a checkpoint chosen before keeps its configuration
        # The file of the model asked for before, copied from another computer.
        self.config.setCurrentText(self._last_id)
        self._browse()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM2 checkpoint", "", "PyTorch checkpoints (*.pt *.pth)"
        )
        if not path:
            return
        try:
            self.use_checkpoint(path)
        except CheckpointError as err:
            # Said as the file is picked, not at Segment; the model chosen before stays.
            if not self.checkpoint.text():
                self.model.setCurrentText(self._last_id)
            chosen = self.model_source()[0]
            if self.model.currentText() == LOCAL:
                chosen = Path(chosen).name
            # What was refused and what SAM2 keeps first, then why and what to do: on a
            # laptop the status shows three or four lines, a notification its first words.
            name = Path(path).name
            reason = str(err)
            if reason.startswith(f"{name} "):  # the file is named once
                reason = f"It {reason[len(name) + 1 :]}"
            message = f"{name} is not used: SAM2 keeps {chosen}. {reason}"
            self.status.setText(message)
            show_error(message)

    def use_checkpoint(self, path: str) -> None:
        """Segment with a local checkpoint, with the configuration its weights fit.

        Raises
        ------
        CheckpointError
            For a file that holds no SAM2 model's weights, or not all of them; the choice
            stays as it was.
        """
        model = identify_sam2_checkpoint(path)
        self.checkpoint.setText(path)
        self.config.setCurrentText(model)
        self.status.setText(
            f"Checkpoint {Path(path).name}: weights of {model} (its Configuration)."
        )

    def params(self) -> Sam2Params:
        """The generator parameters the widget shows."""
        values = {
            name: s.value()
            for name, s in self.sliders.items()
            if name in Sam2Params.__dataclass_fields__
        }
        values["points_per_batch"] = values["points_per_batch"] or None
        values["multimask_output"] = self.checks["multimask_output"].isChecked()
        values["use_m2m"] = self.checks["use_m2m"].isChecked()
        return Sam2Params(**values)

    def label_params(self) -> LabelParams:
        """Background removal, overlaps, splitting and tiling as the widget shows them."""
        values = {
            name: s.value()
            for name, s in self.sliders.items()
            if name in LabelParams.__dataclass_fields__
        }
        return LabelParams(
            **values, order=self.order.currentText(), split=self.checks["split"].isChecked()
        )

    def set_values(self, **values) -> None:
        """Set sliders and check boxes by parameter name (for scripts and tests)."""
        for name, value in values.items():
            if name in self.sliders:
                self.sliders[name].setValue(value)
            elif name in self.checks:
                self.checks[name].setChecked(bool(value))
            elif name == "order":
                self.order.setCurrentText(value)
            else:
                raise KeyError(f"No parameter {name!r} in the SAM2 widget.")

    # -- running ---------------------------------------------------------------

    def model_source(self) -> tuple[str, str | None]:
        """The chosen model (Hugging Face id or checkpoint path) and a checkpoint's config."""
        if self.model.currentText() != LOCAL:
            return self.model.currentText(), None
        checkpoint = typed_path(self.checkpoint.text())
        if not checkpoint:
            raise ValueError(
                "No checkpoint file chosen: press Open… beside Checkpoint file and pick a SAM2 "
                ".pt file."
            )
        return checkpoint, self.config.currentText()

    def input_layer(self) -> Image:
        layer = self.layer.layer()
        if layer is None:
            raise NothingToRun(no_image_to_segment(self.viewer, "Image"))
        return layer

    def _job(self):
        """Everything a run needs, read in the GUI thread."""
        layer = self.input_layer()
        rgb = bool(layer.rgb)
        lead = layer.ndim - 2
        level = max(self.level.currentIndex(), 0)
        data, geometry = resolution_level(layer, level)
        index: tuple = ()
        if lead and self.positions.key() == CURRENT_POSITION:
            index = frame_on_show(self.viewer, layer, data.shape[: lead + 2])
        foreground = fg_layer = None
        step = self.step()
        parameters = self._parameters(step, level)
        uid = self.foreground.currentData()
        if uid is not None:
            fg_layer = layer_by_id(self.viewer.layers, uid)
            if fg_layer is None:
                raise ValueError("The foreground layer was closed; pick another under Foreground.")
            # A pyramid's own level of the same size, rather than its full resolution.
            multiscale = getattr(fg_layer, "multiscale", False)
            fg_level = min(level, len(fg_layer.data) - 1) if multiscale else 0
            foreground = (resolution_level(fg_layer, fg_level)[0], isinstance(fg_layer, Labels))
            parameters["foreground"] = origin(fg_layer)
        source, config = step.model, step.config
        return dict(
            layer=layer,
            index=index,
            data=data,
            rgb=rgb,
            foreground=foreground,
            guide=fg_layer,  # hidden under a new result, as it lies under it
            # Merged masks are split over the shape of the level's pixels, where known.
            spacing=pixel_size_um(geometry["scale"], geometry["units"]),
            source=source,
            config=config,
            device=self.device.currentText(),
            params=self.params(),
            label_params=self.label_params(),
            parameters=parameters,
        )

    def step(self) -> Sam2Step:
        """The model and thresholds as a preset's SAM2 step.

        Raises
        ------
        ValueError
            When a local checkpoint is chosen but no file is given.
        """
        model, config = self.model_source()
        params = asdict(self.params())
        params.pop("point_grids")  # made from points_per_side when the step runs
        labels = asdict(self.label_params())
        return Sam2Step(model=model, config=config, params=params, labels=labels)

    def _parameters(self, step: Sam2Step, level: int) -> dict:
        """The settings a result records: as a preset's SAM2 step, plus where it ran."""
        return {
            "params": step.params,
            "labels": step.labels,
            "level": level,
            "positions": self.positions.key(),
            "device": self.device.currentText(),
            "foreground": None,
        }

    def _engine(self, source, device, config) -> tuple[Sam2Engine, dict]:
        """The engine of a loaded model, and the model's record for result layers (its
        file looked up and hashed once per model, not on every slider move)."""
        with self._engine_lock:
            if self._last_engine is None or not self._models.holds(source, device, config):
                # The model before goes, with the features its engine cached, before the
                # next is loaded: not both in memory.
                self._last_engine = None
                model = self._models.get(source, device, config)
                self._last_engine = Sam2Engine(model, model_key=f"{source}|{config}")
            engine = self._last_engine
            # By the cache's key: a checkpoint replaced at its path gets its own SHA-256.
            key = self._models.key(source, device, config)
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = _model_record(source, config)
            return engine, record

    def _run(self, job):
        # Slicing and thresholding happen here, in the worker, not in the GUI thread.
        index = job["index"]
        image = self._plane(job["data"], index, "image")
        foreground = None
        if job["foreground"] is not None:
            data, is_labels = job["foreground"]
            stack = np.shape(job["data"])[: len(index) + 2]  # without an RGB image's colours
            if index and (
                np.ndim(data) != len(stack) or np.shape(data)[: len(index)] != stack[: len(index)]
            ):
                # Taken at the image's position, it gave a row of pixels or an IndexError.
                raise foreground_mismatch(np.shape(data), stack)
            fg = self._plane(data, index, "foreground")
            fg = _sample_like(fg, image.shape[:-1] if job["rgb"] else image.shape)
            foreground = fg > 0 if is_labels else _foreground_map(fg, job["guide"].name)
        try:
            engine, model = self._engine(job["source"], job["device"], job["config"])
        except Exception as err:
            raise _ModelNotLoaded((job["source"], job["config"])) from err
        # The device it ran on, as `cytomask segment` records it ("cpu", "cuda:0"), not
        # the choice ("auto"): a GPU's figures can differ in their last digits.
        job["parameters"] = {**job["parameters"], "device": str(engine.device)}
        result = yield from engine.segment_iter(
            image,
            job["params"],
            job["label_params"],
            rgb=job["rgb"],
            foreground=foreground,
            spacing=job["spacing"],
        )
        metadata = result_metadata(
            job["layer"], method="sam2", parameters=job["parameters"], model=model
        )
        return job, result, dict(engine.runs), metadata, self._image_notes(job, image)

    def _image_notes(self, job, image: np.ndarray) -> str:
        """What the image segmented shows that its count of masks would hide (one value
        everywhere, saturated or very dim frames), as the U-Net says it: read once per
        image and frame, not at every slider move."""
        key = (id(job["data"]), job["index"])
        if self._seen is not None and self._seen[0] == key:
            return self._seen[1]
        grey = image.mean(axis=-1) if job["rgb"] else image
        blank = nothing_to_find(grey, 0)
        seen = f"{blank[0].upper()}{blank[1:]}." if blank else frame_notes(grey)
        notes = f" {seen}" if seen else ""
        self._seen = (key, notes)
        return notes

    def _plane(self, data, index: tuple, slot: str) -> np.ndarray:
        """The plane at ``index`` of an image or foreground. A lazy array (a pyramid's
        full resolution, a scan on disk) is read once per Segment click and reused by the
        slider moves after it; an array in memory is used as it is, edits included."""
        if isinstance(data, np.ndarray):
            return data[index] if index else data
        cached = self._planes.get(slot)
        if cached is not None and cached[0] is data and cached[1] == index:
            return cached[2]
        plane = np.asarray(data[index] if index else data)
        self._planes[slot] = (data, index, plane)
        return plane

    def segment(self) -> None:
        """Segment the chosen image in a worker; progress and Cancel while it runs."""
        try:
            job = self._job()
        except (ValueError, KeyError) as err:
            self.runner.fail(err)
            return
        self._planes = {}  # read the image afresh
        self._asked = (job["layer"].unique_id, job["index"])
        self.status.setText("Loading the model and encoding the image…")
        self.runner.watch(self.viewer, job["layer"])
        self.runner.run_now(self._run, job)

    def _describe(self, err: Exception) -> str:
        """The message of a failure; that of a model that failed to load is remembered with
        the model, for a new choice of model to take it back."""
        self._load_error = None
        if not isinstance(err, _ModelNotLoaded):
            return _describe_error(None, err)
        message = _describe_error(err.choice[0], err.__cause__)
        if self._chosen() != err.choice:  # changed while the run was loading it
            message += " That was the model chosen before; run again to use the one chosen now."
        self._load_error = (err.choice, message)
        return message

    def cancel(self) -> None:
        """Stop the running segmentation now (its result is dropped). Where it followed a
        slider, the status says that the result on show keeps the settings before."""
        shown = self._result_layer(self._asked[0]) if self._asked is not None else None
        said = None
        if self.runner.busy and shown is not None:
            said = (
                f"Cancelled: '{shown.name}' still shows the masks of the settings before; "
                "move a slider or press Segment to make them with those set now."
            )
        self.runner.cancel(said)

    def _result_layer(self, image):
        """The layer the last result of the image ``image`` (its layer's unique id) went
        to, if it is still in the viewer."""
        return layer_by_id(self.viewer.layers, self._result_of.get(image))

    def _filters_changed(self, *args) -> None:
        # Live updates only refine a segmentation the user asked for: of the image and
        # frame last segmented, or a frame of it segmented before. Another image, or a
        # frame never segmented, is no request to segment it (minutes on a CPU).
        if self._asked is None:
            return
        try:
            job = self._job()
        except (ValueError, KeyError) as err:
            self.runner.refuse(err)
            return
        image, index = self._asked
        if job["layer"].unique_id != image:
            self.status.setText(
                f"Segment '{job['layer'].name}' first: the sliders re-filter the image "
                "segmented last."
            )
            return
        # The layer the masks go to: closed before the update lands, it is not brought
        # back (a slider moved after it was closed makes a new one).
        into = self._result_layer(image)
        job["live"], job["into"] = True, None if into is None else into.unique_id
        if job["index"] and job["index"] not in self._positions.get(self._result_of.get(image), {}):
            # A frame on show never segmented: the sliders re-filter the one segmented last.
            job["index"], job["unsegmented"] = index, job["index"]
        self.runner.watch(self.viewer, job["layer"])
        self.runner.request(self._run, job)

    # -- results -----------------------------------------------------------------

    def _show(self, outcome) -> None:
        job, result, runs, metadata, seen = outcome
        layer = job["layer"]
        if layer not in self.viewer.layers:
            self.status.setText(closed_during_run(layer))
            return
        if (
            job.get("live")
            and job["into"] is not None
            and self._result_layer(layer.unique_id) is None
        ):
            self.status.setText(
                f"The layer of the masks of '{layer.name}' was closed as the sliders updated "
                "them, so the update is not shown; move a slider, or press Segment, to see "
                "them again."
            )
            return
        index = job["index"]
        spatial = job["data"].shape[:-1] if job["rgb"] else job["data"].shape
        name, out = result_slot(
            self.viewer,
            f"{layer.name} SAM2 masks",
            Labels,
            spatial,
            source_of(layer),
            last=self._result_layer(layer.unique_id),
        )
        # A new layer: no position of it is made yet.
        positions = {} if out is None else self._positions.get(out.unique_id, {})
        labels, features = _merge_position(
            positions, out, index, spatial, result, job["parameters"]
        )
        record = metadata[METADATA_KEY]
        # Positions done before with other settings keep their cells: the layer says so.
        others = {
            frame_key(done): {"method": "sam2", "parameters": parameters}
            for done, (_, parameters) in positions.items()
            if parameters != record["parameters"]
        }
        record["previewed_frames"] = others
        if index:  # the positions never segmented hold no cells: not found, but not looked for
            record["frames_made"] = [frame_key(done) for done in sorted(positions)]
        # Over the input as it lies now: given another pixel size or moved during the run.
        placed = resolution_level(layer, job["parameters"]["level"])[1]
        if out is None:
            made = labels_layer(labels, name, placed, metadata)
            out = add_result(self.viewer, made, guide=job["guide"])
        else:
            out.data = compact_labels(labels)
            forget_edits(out)
            lay_over(out, placed)
            out.metadata = {**out.metadata, **metadata}
            record_written(out)
        out.features = features
        # The positions of result layers closed since go (each holds its labels).
        shown = {other.unique_id for other in self.viewer.layers}
        self._positions = {uid: kept for uid, kept in self._positions.items() if uid in shown}
        self._positions[out.unique_id] = positions
        self._result_of[layer.unique_id] = out.unique_id
        n = len(result.features["index"])  # this run's: the counts after it are this run's too
        # No masks is an answer, not an error: the status line says what to change.
        hint = self._no_masks_hint(result, job["foreground"] is not None) if n == 0 else ""
        one, several = frame_nouns(layer)
        where = ""
        if index:
            where = (
                f" in {named_frame(index, layer.axis_labels)} ({len(features['index'])} in the "
                f"{several} done)"
            )
        if job.get("unsegmented"):
            shown = named_frame(job["unsegmented"], layer.axis_labels)
            hint += (
                f" {shown.capitalize()}, on show, was never segmented: the sliders re-filtered "
                f"{named_frame(index, layer.axis_labels)}; Segment finds {shown}'s cells."
            )
        if others:
            verb = "keep" if len(others) > 1 else "keeps"
            hint += (
                f" {named_frames(others, layer.axis_labels).capitalize()} {verb} cells found "
                f"with other settings; segment '{self.positions.text_of(ALL_POSITIONS)}' to "
                f"find every {one}'s with these."
            )
        self.status.setText(
            f"{n} object{'s' * (n != 1)}{where} from {result.n_masks} masks ({result.n_candidates} "
            f"candidates; encoder runs {runs['encoder']}, decoder runs {runs['decoder']})."
            f"{seen}{hint}"
        )
        self.segmented.emit(out)

    def _no_masks_hint(self, result: Sam2Result, foreground: bool) -> str:
        """What to change when no mask was kept: only settings that can still move (the
        hint asked for a lower IoU and stability already at 0)."""
        if result.n_candidates == 0:
            return " No masks kept: the decoder made none; raise Points per side."
        value = {name: slider.value() for name, slider in self.sliders.items()}
        if result.n_masks and value["min_area"] > self.sliders["min_area"].minimum():
            return (
                f" No masks kept: the {result.n_masks} masks that passed the filters were "
                "smaller than the minimum area where they overlap others; lower it."
            )
        changes = [
            advice
            for name, advice in (
                ("pred_iou_thresh", "lower the minimum predicted IoU"),
                ("stability_score_thresh", "lower the minimum stability"),
                ("min_area", "lower the minimum area"),
            )
            if value[name] > self.sliders[name].minimum()
        ]
        if value["max_area_fraction"] < self.sliders["max_area_fraction"].maximum():
            changes.append("raise the maximum area")
        default_cut = _DECODER["mask_threshold"][4]
        if value["mask_threshold"] != default_cut:
            changes.append(f"set the mask cut-off (More settings) back to {default_cut:g}")
        share = self.sliders["min_foreground_fraction"]
        if foreground and share.value() > share.minimum():
            changes.append(
                "lower the minimum share on foreground (masks mostly outside the Foreground "
                "layer are dropped)"
            )
        if not changes:
            return (
                f" No masks kept of {result.n_candidates} candidates, with every filter open: "
                "the model finds nothing it is sure of in this image."
            )
        listed = ", ".join(changes[:-1]) + (" or " if len(changes) > 1 else "") + changes[-1]
        return f" No masks kept of {result.n_candidates} candidates: {listed}."


def _merge_position(
    positions: dict, earlier, index: tuple, spatial: tuple, result: Sam2Result, parameters: dict
):
    """Full-stack labels and features of a result layer, and ``positions`` (its positions
    made, each with its result and settings) brought up to date, when one position of a
    stack (``index``) or all of them (``()``) were segmented with ``parameters`` into
    ``earlier`` (the result layer, if there is one)."""
    lead = len(spatial) - 2
    if not index:
        # Every position made with these settings: a later run of one position keeps the
        # others' cells, counts and features as theirs.
        positions.clear()
        for frame in np.ndindex(spatial[:lead]) if lead else ():
            rows = np.isin(result.features["index"], np.unique(result.labels[frame]))
            part = {k: v[rows] for k, v in result.features.items()}
            positions[frame] = (
                replace(result, labels=result.labels[frame], features=part),
                parameters,
            )
        return result.labels, result.features
    labels = np.array(earlier.data) if earlier is not None else np.zeros(spatial, np.uint32)
    positions[index] = (result, parameters)
    labels[index] = 0
    offset = int(labels.max())
    plane = result.labels.astype(np.result_type(labels.dtype, np.uint32))
    plane[plane > 0] += offset
    labels = labels.astype(plane.dtype)
    labels[index] = plane
    result.features = {**result.features, "index": result.features["index"] + offset}
    # Numbered as a run of all positions numbers them: frames in order over every axis.
    frame = int(np.ravel_multi_index(index, spatial[:lead]))
    result.features["position"] = np.full(result.features["index"].size, frame)
    tables = [r.features for r, _ in positions.values()]
    features = {k: np.concatenate([t.get(k, np.zeros(0)) for t in tables]) for k in result.features}
    return labels, features


#: How far a probability map resampled to the image's pixels may stray past 0 and 1.
_ROUNDING = 1e-3


def _foreground_map(plane: np.ndarray, name: str) -> np.ndarray:
    """The plane of an Image layer chosen as the foreground, when it is a map: probabilities
    from 0 to 1 (a resampled one may overshoot by a rounding error), a mask, or cell ids (a
    PNG of ids napari's reader opened as an image). An intensity image, thresholded at 0.5,
    made every pixel foreground and filtered nothing, unsaid."""
    plane = np.asarray(plane)
    values = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
    if plane.dtype == bool or values.size == 0:
        return plane
    if values.min() >= -_ROUNDING and values.max() <= 1 + _ROUNDING:
        return plane
    if plane.dtype.kind != "f" and not varies_as_light(plane):  # a mask or ids: cells > 0.5
        return plane
    top = values.max()
    raise ValueError(
        f"'{name}' is an image, not a foreground map: its pixels go from {values.min():g} "
        f"to {top:g}, and a map holds probabilities from 0 to 1 (the U-Net's probability "
        "maps) or cells (a Labels layer). Pick one of those as Foreground, or none."
    )


def _sample_like(foreground: np.ndarray, shape: tuple) -> np.ndarray:
    """A full-resolution foreground map sampled at the pixel centres of a coarser level."""
    if foreground.shape == tuple(shape) or foreground.ndim != len(shape):
        return foreground  # the engine explains a map of another image
    rows, cols = (
        ((np.arange(n) + 0.5) * foreground.shape[axis] / n).astype(int)
        for axis, n in ((-2, shape[-2]), (-1, shape[-1]))
    )
    return foreground[..., rows[:, None], cols]


def _model_record(source: str, config: str | None) -> dict:
    """The model of a run with its file's SHA-256 (a Hugging Face id: the cached download)."""
    path = cached_checkpoint(source) if source in HF_MODELS else Path(source)
    return model_record(source, path, config=config)


__all__ = ["Sam2Widget"]
