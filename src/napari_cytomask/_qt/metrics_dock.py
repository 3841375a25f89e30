"""Dock widget: compare a predicted Labels layer with a ground-truth Labels layer, live."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from difflib import SequenceMatcher
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import napari
import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error
from qtpy.QtCore import QAbstractTableModel, Qt, QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHeaderView,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..io.atomic import NAME_BYTES
from ..io.export import safe_file_name
from ..io.files import IMAGE_SUFFIX, positions_for, recorded_positions
from ..io.layers import (
    HIGHLIGHT_METHODS,
    compared_frame_axes,
    frame_heading,
    frame_key,
    frame_positions,
    frames_made_of,
    is_highlight,
    is_result,
    layer_info,
    made_frames,
    named_frames,
    origin,
    pixel_size_um,
    previewed_only,
    result_metadata,
    short_frame,
)
from ..labels import LabelsError, as_labels, binary_mask_regions, paired
from ..metrics import (
    DEFAULT_THRESHOLDS,
    Evaluation,
    evaluate,
    leave_out_frames,
    stacked_side,
    uncounted_note,
    unmatched_objects,
    write_csv,
)
from ..metrics.export import frame_cell, provenance
from ..models.catalog import pixel_sizes
from ..roles import (
    is_channel,
    labels_file_of,
    lies_with,
    may_hold_ids,
    other_files,
    role_of,
    same_file,
    scan_files,
    source_of,
)
from ._layers import (
    forget_edits,
    lay_over,
    layer_by_id,
    level_names,
    misplaced_note,
    pixel_bounds,
    pixel_events,
    resolution_level,
)
from ._live import (
    CHANNEL_ROLES,
    DecimalSpinBox,
    Runner,
    StepControls,
    StepWidget,
    ask_save_path,
    step_page,
)
from ._plot import PlotCanvas

#: Colours of the highlight layers: false positives, false negatives.
HIGHLIGHT_COLOURS = {"fp": "magenta", "fn": "yellow"}

#: Most rows the Cells tab lists (the worst cells): their rows are made in the GUI thread.
MAX_CELL_ROWS = 20_000

#: The widest the Cells tab's column of frames is where the frames are named by their
#: wells (pixels): as wide as a frame's number alone left the status, in a 1280 x 800 window.
POSITION_WIDTH = 90

#: Largest share of a highlight layer's pixels redrawn where they changed, not whole.
PARTIAL_REDRAW = 0.02

#: Most frames the status names that were left out for want of ground truth: a plate's
#: many, listed, scrolled the status and hid what it said of them.
LISTED_FRAMES = 3

#: IoU thresholds shown as columns of the table.
HEADLINE_THRESHOLDS = (0.5, 0.75, 0.9)

# (row label, attribute, format, tooltip)
_OBJECT_ROWS = (
    ("True positives", "tp", "{:d}", "Predicted cells matched to a true cell."),
    ("False positives", "fp", "{:d}", "Predicted cells with no true cell to match."),
    ("False negatives", "fn", "{:d}", "True cells the prediction missed."),
    ("Precision", "precision", "{:.3f}", "TP / (TP + FP): how many predicted cells are real."),
    ("Recall", "recall", "{:.3f}", "TP / (TP + FN): how many true cells were found."),
    ("F1", "f1", "{:.3f}", "Harmonic mean of precision and recall."),
    ("Accuracy", "accuracy", "{:.3f}", "TP / (TP + FP + FN) at this IoU."),
    ("Panoptic quality", "panoptic_quality", "{:.3f}", "F1 × mean IoU of the matched cells."),
    ("Mean matched IoU", "mean_matched_score", "{:.3f}", "Mean IoU of the matched cells."),
)
#: The dock compares label images, which hold no confidence per object.
_UNSCORED = (
    "Without a confidence per object every cell ranks the same, taken in id order as "
    "pycocotools takes them: the figure changes when the same cells are numbered otherwise. "
    "Mean-average F1 and mSA do not."
)
# (row label, summary key, tooltip)
_SUMMARY_ROWS = (
    ("Mean-average F1", "mean_average_f1",
     "F1 averaged over IoU thresholds 0.50, 0.55 … 0.95 (Caicedo et al. 2018)."),
    ("mSA, mean segmentation accuracy", "mean_segmentation_accuracy",
     "mSA: TP / (TP + FP + FN) averaged over IoU 0.50:0.05:0.95, per image then averaged: the "
     "summary micro-sam and Cellpose papers report, to compare with published figures."),
    ("COCO AP (IoU 0.50:0.95)", "coco_ap", f"COCO average precision. {_UNSCORED}"),
    ("COCO AP50", "coco_ap50", f"COCO average precision at IoU 0.50. {_UNSCORED}"),
    ("COCO AP75", "coco_ap75", f"COCO average precision at IoU 0.75. {_UNSCORED}"),
    ("Pixel precision", "pixel_precision", "Share of predicted cell pixels that are cell."),
    ("Pixel recall", "pixel_recall", "Share of true cell pixels that were predicted."),
    ("Pixel F1 (Dice)", "pixel_f1", "Dice coefficient of cell versus background."),
    ("Pixel F2", "pixel_f2", "Like Dice, weighting recall twice as much as precision."),
    ("Pixel IoU", "pixel_iou", "Intersection over union of all cell pixels."),
)  # fmt: skip


class _Copying:
    """Of a table view: the selected cells copy (Ctrl+C) as tab-separated text with their
    row and column names, ready to paste into a spreadsheet."""

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            QApplication.clipboard().setText(self.selected_text())
            return
        super().keyPressEvent(event)

    def selected_text(self) -> str:
        """The selected cells, with their row and column names, one line per row."""
        model = self.model()
        cells = {(index.row(), index.column()) for index in self.selectedIndexes()}
        rows = sorted({row for row, _ in cells})
        columns = sorted({column for _, column in cells})
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        header = ["", *(str(model.headerData(c, horizontal)) for c in columns)]
        lines = ["\t".join(header)]
        for row in rows:
            values = [
                str(model.data(model.index(row, c)) or "") if (row, c) in cells else ""
                for c in columns
            ]
            lines.append("\t".join([str(model.headerData(row, vertical)), *values]))
        return "\n".join(lines) if rows else ""


class _Table(_Copying, QTableWidget):
    """A table of a few fixed rows, copied with their names."""


class CellsModel(QAbstractTableModel):
    """The Cells tab's rows (:class:`CellRow`), made into text only for the rows in view:
    a table of items for each of a stack's thousands of cells took the GUI thread 0.3 s
    to fill at every edit compared while the tab was on show."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[CellRow] = []
        self._listed: list[CellRow] = []  # as given: the worst first
        self._columns: list[str] = []
        self._frame_name: Callable[[int], str] | None = None
        self._frame_tip: Callable[[int], str] | None = None
        self._sort: tuple[int, Qt.SortOrder] = (-1, Qt.SortOrder.AscendingOrder)

    def show(self, rows: list[CellRow], columns: list[str], frame_name=None, frame_tip=None):
        """List ``rows`` under ``columns``, in the order of the column sorted by, if any;
        ``frame_name`` names a row's frame, for the first column, in a stack, and
        ``frame_tip`` in its tooltip, where given (at more length)."""
        self.beginResetModel()
        self._listed, self._columns, self._frame_name = rows, columns, frame_name
        self._frame_tip = frame_tip
        self.rows = self._ordered()
        self.endResetModel()

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` (its heading clicked), ties and -1 the worst first."""
        self.beginResetModel()
        self._sort = (column, order)
        self.rows = self._ordered()
        self.endResetModel()

    def _ordered(self) -> list[CellRow]:
        column, order = self._sort
        if not 0 <= column < len(self._columns):
            return self._listed
        column -= self._frame_name is not None
        key = {-1: attrgetter("frame"), 0: attrgetter("area"), 1: attrgetter("iou"),
               2: attrgetter("status")}[column]  # fmt: skip
        return sorted(self._listed, key=key, reverse=order == Qt.SortOrder.DescendingOrder)

    def rowCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._columns)

    def text(self, row: int, column: int) -> str:
        cell = self.rows[row]
        if self._frame_name is not None:
            if column == 0:
                return self._frame_name(cell.frame)
            column -= 1
        return (str(cell.area), f"{cell.iou:.3f}", cell.status)[column]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        if (
            role == Qt.ItemDataRole.ToolTipRole
            and index.column() == 0
            and self._frame_name is not None
            and self._frame_tip is not None
        ):
            return self._frame_tip(self.rows[index.row()].frame)
        # The tooltip too: the status may be cut short.
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self.text(index.row(), index.column())
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section] if 0 <= section < len(self._columns) else None
        return self.rows[section].name if 0 <= section < len(self.rows) else None


class _CellsView(_Copying, QTableView):
    """The Cells tab: a view of :class:`CellsModel`."""


def _table(rows: list[str], tips: list[str], columns: list[str]) -> QTableWidget:
    """A read-only table with labelled rows (their tooltips say what they mean)."""
    table = _Table(len(rows), len(columns))
    table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
    table.setHorizontalHeaderLabels(columns)
    table.setVerticalHeaderLabels(rows)
    for row, tip in enumerate(tips):
        table.verticalHeaderItem(row).setToolTip(tip)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    return table


class CellRow(NamedTuple):
    """One cell of the comparison, as the Cells tab lists it."""

    side: str  # "true" or "predicted"
    frame: int
    id: int
    area: int
    #: IoU with its partner when matched, else with the cell of the other side it
    #: overlaps most (0 when none).
    iou: float
    matched: bool
    #: Its partner when matched, else the cell it overlaps most (0 when none).
    other: int

    @property
    def name(self) -> str:
        return f"{self.side} {self.id}"

    @property
    def status(self) -> str:
        other = "predicted" if self.side == "true" else "true"
        if self.matched:
            return f"found: {other} {self.other}"
        what = "missed" if self.side == "true" else "false positive"
        return f"{what} (best: {other} {self.other})" if self.other else what


def cell_rows(evaluation: Evaluation) -> list[CellRow]:
    """Every true cell and every predicted cell without a partner at the match threshold,
    worst first: unmatched cells by the IoU of their largest overlap, then matched ones by
    their IoU. The cells to look at first are at the top."""
    rows = []
    for side, table, keep in (
        ("true", evaluation.true_objects, None),
        ("predicted", evaluation.pred_objects, ~evaluation.pred_objects.matched),
    ):
        matched = table.matched
        iou = np.where(matched, table.matched_iou, table.best_iou)
        other = np.where(matched, table.matched_id, table.best_id)
        for i in np.flatnonzero(keep) if keep is not None else range(len(table)):
            rows.append(CellRow(side, int(table.frame[i]), int(table.ids[i]), int(table.area[i]),
                                float(iou[i]), bool(matched[i]), int(other[i])))  # fmt: skip
    rows.sort(key=lambda row: (row.matched, row.iou))
    return rows


def _cell_key(row: CellRow) -> tuple[str, int, int]:
    """Which cell a row of the Cells tab is: its side, frame and id."""
    return row.side, row.frame, row.id


class Compared(NamedTuple):
    """What :func:`compute_metrics` found."""

    evaluation: Evaluation
    false_positives: np.ndarray | None
    false_negatives: np.ndarray | None
    #: Frames left out as the ground truth has no cell there (over the frame axes), or None.
    unlabelled: np.ndarray | None
    #: How many predicted cells each of those frames held (over the frame axes, 0 in the
    #: others), which no score counts.
    uncounted: np.ndarray
    #: Frames compared (over the frame axes): made by both layers, with ground truth.
    compared: np.ndarray
    #: "prediction" and "ground truth" where that layer is a binary mask, with its value.
    binary: dict[str, object]
    #: :func:`plane_digests` of the false positives and negatives, or None.
    digests: tuple | None = None


def compute_metrics(
    ground_truth, prediction, stack: int, threshold: float, highlight: bool, made=None
) -> Compared:
    """Evaluate in a worker thread.

    The layer data are copied first, so painting while this runs cannot change
    the arrays under the computation (the edit schedules a new run anyway). A binary
    mask (one id for every cell, as painting without a new label gives) has its separate
    regions taken as the cells. ``made`` (:func:`~napari_cytomask.io.layers.made_frames`)
    leaves the frames a result never made out: emptied in both images, they add no
    object, match or pixel to any score. So are the frames of a stack whose ground truth
    has no cell while others have some: cells painted at one position of four are no
    verdict on the other three.
    """
    arrays = {
        "ground truth": np.array(ground_truth, copy=True),
        "prediction": np.array(prediction, copy=True),
    }
    compared, unlabelled, uncounted = leave_out_frames(*arrays.values(), stack, made)
    binary = {}  # of the frames compared: a frame left out may hold another id
    for name, data in arrays.items():
        if (found := binary_mask_regions(data, stack)) is not None:
            arrays[name], binary[name] = found
    gt, pred = arrays["ground truth"], arrays["prediction"]
    result = evaluate(gt, pred, match_threshold=threshold, stack=stack)
    false_pos = false_neg = digests = None
    if highlight:
        false_pos, false_neg = unmatched_objects(gt, pred, result, stack=stack)
        digests = (plane_digests(false_pos), plane_digests(false_neg))
    return Compared(result, false_pos, false_neg, unlabelled, uncounted, compared, binary, digests)


def _unused_label(labels: np.ndarray) -> int | None:
    """A label ``labels`` does not use, to paint a new cell with: one above the largest,
    else the smallest free one where the largest is the most its type of numbers holds
    (255 cells of an 8-bit layer, or a 0/255 mask); None when every value is used."""
    top = int(labels.max(initial=0))
    most = np.iinfo(labels.dtype).max if labels.dtype.kind in "iu" else None
    if most is None or top < most:
        return top + 1
    free = np.setdiff1d(np.arange(1, min(most, 1 << 16) + 1), labels)
    return int(free[0]) if free.size else None


def plane_digests(array: np.ndarray) -> tuple[int, ...]:
    """A checksum of each 2D plane of ``array``: which planes of a stack's outlines a
    comparison changed, told in the worker, so that only those are compared in the GUI
    thread (a whole stack's took it 0.1 to 0.2 s at each edit of 40 positions)."""
    planes = np.ascontiguousarray(array).reshape(-1, *array.shape[-2:])
    return tuple(zlib.crc32(plane) for plane in planes)


class MetricsDock(StepWidget, QWidget):
    """Live segmentation metrics of a prediction against a ground truth.

    Parameters
    ----------
    napari_viewer
        The viewer whose Labels layers are compared.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.evaluation: Evaluation | None = None
        self._watched: list[Labels] = []
        self._highlights: dict[str, Labels] = {}
        #: Of each highlight layer, the array it was given and the :func:`plane_digests`
        #: of the outlines last written into it.
        self._outlined: dict[str, tuple[np.ndarray, tuple]] = {}
        self._hidden: set[str] = set()  # highlights the dock hid while no comparison stood
        self._outlined_pair: set = set()  # unique ids of the layers the highlights compare
        #: The names of the compared layers (for the status and the CSV's name), the
        #: ground truth's resolution level compared when not its full one, the note of how
        #: they are misplaced (:func:`~._layers.misplaced_note`) and the two files they come
        #: from when those differ (:func:`~napari_cytomask.roles.other_files`), for the status;
        #: then the files each comes from (None for a layer of none), for the CSV.
        self._pair: tuple = ("", "", "", "", None, (None, None))
        #: The ground truth's resolution level compared (:func:`_truth_level`).
        self._level = 0
        #: What the comparison asked for last describes: the two layers, the level, the
        #: frame axis and the shapes compared (a result of another is never shown).
        self._compared: tuple | None = None
        #: The frames compared when a layer never made some (else None), and what the
        #: status says of those left out.
        self._made: np.ndarray | None = None
        self._made_only = ""
        #: "prediction" and "ground truth" where that layer was compared as a binary
        #: mask, its separate regions as cells, with the mask's value (:class:`Compared`).
        self._binary: dict[str, object] = {}
        #: Their regions, numbered as compared: found at the first cell gone to.
        self._regions: dict[str, np.ndarray] = {}
        self._shape: tuple[int, ...] = ()  # of the layers compared
        self._axes: tuple[str, ...] = ()  # their axis labels, which name frames in messages
        #: What the positions of the layers compared are called (a plate's wells), as
        #: their scan names them, with the axes of the layer that says (None: none does);
        #: and the name of each frame's position.
        self._position_names: tuple[list[str], tuple] | None = None
        self._positions: list[str] | None = None
        #: The frames left out for want of ground truth, and the cells predicted in each
        #: (:func:`~napari_cytomask.metrics.core.leave_out_frames`), for the CSV.
        self._left_out: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        #: The ground truth the user picked for the results of each scan (by its source):
        #: kept for that scan's later results, as a default would not be.
        self._picked_truth: dict[str | None, int] = {}
        #: The prediction the user picked: kept when a step makes a new result, as a
        #: default would not be.
        self._picked_prediction: int | None = None
        #: What a step last wrote into each layer (its ``written`` record, by unique id): a
        #: new record is a run that wrote into a result already open (:meth:`_rewritten`).
        self._written: dict[int, dict | None] = {}
        #: Where the viewer's sliders stood at each compared layer's last refresh, by
        #: unique id (:meth:`_data_changed`).
        self._slices: dict[int, tuple[int, ...]] = {}

        self.prediction_combo = QComboBox()
        self.prediction_combo.setToolTip(
            "The segmentation to check; by default the newest one a step made, against its "
            "own scan's mask. One picked here stays when a step makes a new result."
        )
        self.ground_truth_combo = QComboBox()
        self.ground_truth_combo.setToolTip(
            "The reference: the scan's mask channel, or a layer named like ground truth / mask."
        )
        self.stack_check = QCheckBox("Compare frame by frame")
        self.stack_check.setToolTip(
            "Compare each position and time point on its own and sum the counts, instead of "
            "one volume. Ticked for every stack but a Z stack (an axis named Z) of labels "
            "drawn in 3-D, whose planes stay one volume in each frame; a result of this "
            "plugin is made plane by plane, and each of its planes is compared on its own."
        )
        self.threshold_spin = DecimalSpinBox()
        self.threshold_spin.setRange(0.05, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(0.5)
        self.threshold_spin.setToolTip(
            "IoU a predicted cell needs with a true cell to count as found, for the false "
            "positives and negatives outlined as layers (the CSV gives every IoU from 0.10 "
            "to 0.95)."
        )
        self.highlight_check = QCheckBox("Show false positives and false negatives as layers")
        self.highlight_check.setToolTip("Add two layers with the unmatched cells of each side.")

        # Per-threshold counts and whole-image summaries in two tables: one long
        # summary label would otherwise squeeze the three threshold columns.
        self.table = _table(
            [label for label, *_ in _OBJECT_ROWS],
            [tip for *_, tip in _OBJECT_ROWS],
            [f"IoU {t:.2f}" for t in HEADLINE_THRESHOLDS],
        )
        self.table.setToolTip(
            "Counts and scores at three IoU thresholds. Select cells and press Ctrl+C to copy "
            "them, with their names, for a spreadsheet."
        )
        self.summary_table = _table(
            [label for label, *_ in _SUMMARY_ROWS], [tip for *_, tip in _SUMMARY_ROWS], ["value"]
        )
        self.summary_table.setToolTip(
            "Summaries over IoU thresholds and over pixels. Select cells and press Ctrl+C to "
            "copy them, with their names, for a spreadsheet."
        )

        self.canvas = PlotCanvas(redraw=lambda: self._plot(self.evaluation), viewer=self.viewer)
        self.axes = self.canvas.figure.add_subplot()
        self._plot(None)
        # Table and plot share the page's room in tabs, so each gets all of it.
        self.views = QTabWidget()
        self.views.addTab(self.table, "At IoU")
        self.views.addTab(self.summary_table, "Summary")
        self.views.setTabToolTip(0, "Counts and scores at IoU 0.50, 0.75 and 0.90.")
        self.views.setTabToolTip(1, "Mean-average F1, mSA, COCO AP and pixel scores.")
        self.views.addTab(self.canvas, "Plot")
        self.views.setTabToolTip(2, "Precision, recall and F1 at every IoU threshold.")
        self.cells = CellsModel()
        self.cells_table = _CellsView()
        self.cells_table.setModel(self.cells)
        self.cells_table.setTabKeyNavigation(False)
        self.cells_table.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.cells_table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.cells_table.setWordWrap(False)
        # Columns as wide as the rows in view need, not the first thousand rows' text (0.1 s
        # of the GUI thread at each edit compared).
        self.cells_table.horizontalHeader().setResizeContentsPrecision(0)
        # A heading clicked sorts by its column (the smallest cells, say); the worst first
        # until then.
        self.cells_table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.cells_table.setSortingEnabled(True)
        self.cells_table.setToolTip(
            "Every true cell, and every predicted cell that matches none, the worst first. "
            "Double-click a row (or press Enter) to go to the cell. Click a heading to sort "
            "by it. Ctrl+C copies the selected rows for a spreadsheet."
        )
        self.cells_table.activated.connect(lambda index: self.go_to_cell(index.row()))
        self.views.addTab(self.cells_table, "Cells")
        self.views.setTabToolTip(3, "Each cell and how it was matched: go to the misses.")
        self.views.currentChanged.connect(lambda _: self._fill_cells())
        #: Whether the Cells tab lists the comparison on show (it is listed once shown).
        self._cells_listed = False
        self.views.setMinimumHeight(150)

        self.controls = StepControls(
            "Recompute", "Compute the metrics again now (they also follow every edit).", False
        )
        self.controls.run_button.clicked.connect(lambda: self.schedule(now=True))
        self.save_button = QPushButton("Save CSV…")
        self.save_button.setToolTip("Write every threshold's counts and scores to a CSV file.")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(lambda: self.save_csv())
        self.controls.add_button(self.save_button)
        self.runner = Runner(
            self._show,
            self.controls,
            describe_error=lambda err: f"Cannot compute the metrics: {err}",
            on_failure=self._clear_results,
            delay_ms=300,
            parent=self,
        )
        # The edits of a brush stroke, one per dab, are taken together: each asked for a
        # comparison (layers checked and paired, 3 to 17 ms), as long as the dab itself.
        self._edited = QTimer(self)
        self._edited.setSingleShot(True)
        self._edited.setInterval(50)
        self._edited.timeout.connect(self.schedule)

        content = QWidget()
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Prediction", self.prediction_combo)
        form.addRow("Ground truth", self.ground_truth_combo)
        form.addRow("Match at IoU", self.threshold_spin)
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addWidget(self.stack_check)
        column.addWidget(self.highlight_check)
        column.addWidget(self.views, 1)
        step_page(self, content, self.controls)

        self.prediction_combo.currentIndexChanged.connect(self._prediction_picked)
        self.prediction_combo.activated.connect(self._prediction_held)
        self.ground_truth_combo.currentIndexChanged.connect(self._selection_changed)
        self.ground_truth_combo.activated.connect(self._truth_picked)
        self.stack_check.toggled.connect(lambda _: self.schedule())
        self.threshold_spin.valueChanged.connect(lambda _: self.schedule())
        self.highlight_check.toggled.connect(self._highlight_toggled)

        layers = self.viewer.layers.events
        layers.inserted.connect(self._layer_inserted)
        for layer in self._candidates():
            self._watch_writes(layer)
        layers.removed.connect(self._layer_removed)
        for event in (layers.removed, layers.moved, layers.renamed):
            event.connect(self._refresh_layers)
        self._refresh_layers()
        self.bind_keys()

    def settings_controls(self) -> dict[str, QWidget]:
        """Remembered controls by parameter name."""
        return {"match_threshold": self.threshold_spin, "highlight": self.highlight_check}

    def set_prediction(self, layer: Labels) -> None:
        """Check ``layer`` (e.g. the previous step's output) against the ground truth: the
        one chosen, or, when that one has another shape, a ground truth of its shape. A
        prediction the user picked by hand stays, as the list's tooltip says."""
        self._refresh_layers()
        index = self.prediction_combo.findData(layer.unique_id)
        held = self._picked_prediction
        if index < 0 or (held not in (None, layer.unique_id) and self._find(held) is not None):
            return
        self._pair_truth(layer)
        self.prediction_combo.blockSignals(True)
        self.prediction_combo.setCurrentIndex(index)
        self.prediction_combo.blockSignals(False)
        self._selection_changed()

    def _pair_truth(self, layer: Labels) -> None:
        """Choose a ground truth for the prediction ``layer``: the one the user picked for
        its scan's results, else the one chosen unless ``layer`` was made at none of its
        resolution levels (:func:`_level_of`) or it is another scan's mask while ``layer``'s
        scan has its own."""
        gt = self.ground_truth_layer
        fitting = [
            c for c in self._candidates()
            if c.unique_id != layer.unique_id and _level_of(c, layer) is not None
        ]  # fmt: skip
        picked = self._picked_truth.get(source_of(layer))
        if picked is not None and any(c.unique_id == picked for c in fitting):
            truth = picked
        else:
            # Where these cells' image has a ground truth of its own, no other is theirs.
            scans = scan_files(self.viewer.layers)
            own = [c.unique_id for c in _own_truths(fitting, layer, scans)]
            keep = gt is not None and _level_of(gt, layer) is not None
            keep = keep and (not own or gt.unique_id == own[0])  # its own, named most alike
            truth = None if keep else _default_ground_truth(fitting, layer, scans)
        if truth is not None:
            self.ground_truth_combo.blockSignals(True)
            self.ground_truth_combo.setCurrentIndex(self.ground_truth_combo.findData(truth))
            self.ground_truth_combo.blockSignals(False)

    def _truth_picked(self, _index=None) -> None:
        """A ground truth chosen by hand stays the one for the shown prediction's scan."""
        gt, prediction = self.ground_truth_layer, self.prediction_layer
        if gt is not None and prediction is not None:
            self._picked_truth[source_of(prediction)] = gt.unique_id

    def _prediction_held(self, _index=None) -> None:
        """A prediction chosen by hand stays the one checked when a step makes a new result."""
        self._picked_prediction = self.prediction_combo.currentData()

    def _prediction_picked(self, _index=None) -> None:
        """A prediction chosen by hand takes the ground truth of its own scan along."""
        if self.prediction_layer is not None:
            self._pair_truth(self.prediction_layer)
        self._selection_changed()

    # ----------------------------------------------------------------- layers

    # Layers are told apart by `unique_id`: the combo boxes hold it as their item data,
    # and plugins may see the viewer through a proxy whose item lookups wrap layers anew.

    def _find(self, unique_id) -> Labels | None:
        return layer_by_id(self.viewer.layers, unique_id)

    @property
    def prediction_layer(self) -> Labels | None:
        """The selected prediction layer."""
        return self._find(self.prediction_combo.currentData())

    @property
    def ground_truth_layer(self) -> Labels | None:
        """The selected ground-truth layer."""
        return self._find(self.ground_truth_combo.currentData())

    def _candidates(self) -> list[Labels]:
        # Highlight layers, this dock's or an earlier one's, show a comparison: they are
        # not offered as one of its sides.
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and not is_highlight(layer)
        ]

    def _layer_inserted(self, event) -> None:
        """Check a new result a step made (:meth:`_follows`); any other new layer joins the
        lists, and a ground truth of the checked cells' own image, opened after them, takes
        the place of another image's left open (unless that one was picked by hand)."""
        layer = event.value
        if isinstance(layer, Labels) and not is_highlight(layer):
            self._watch_writes(layer)
        if self._follows(layer):
            self.set_prediction(layer)
            return
        self._refresh_layers()
        prediction, truth = self.prediction_layer, self.ground_truth_combo.currentData()
        if prediction is not None and isinstance(layer, Labels) and not is_result(layer):
            self._pair_truth(prediction)
            if self.ground_truth_combo.currentData() != truth:
                self._selection_changed()

    def _follows(self, layer) -> bool:
        """Whether to check ``layer``, cells a step has just made, with its own scan's ground
        truth: when there is one (or nothing is checked yet), as a pair the user set up is
        not traded for cells with no ground truth of their own. A split previewed in one
        frame of a stack is not checked until it is applied (the step hands it over)."""
        made = isinstance(layer, Labels) and is_result(layer) and not is_highlight(layer)
        made = made and not previewed_only(layer)
        gt = self.ground_truth_layer
        return made and bool(
            gt is None
            or lies_with(gt, layer, scans := scan_files(self.viewer.layers))
            or source_of(layer) in self._picked_truth
            or _own_truths(self._candidates(), layer, scans)
        )

    def _layer_removed(self, event) -> None:
        """The outlines of a pair one side of which was closed go with it: kept hidden, they
        held a slider over the closed stack's frames, and napari warned of their units with
        the next file's layers."""
        if event.value.unique_id in self._outlined_pair:
            self._outlined_pair = set()
            QTimer.singleShot(0, self._drop_highlights)  # not within napari's removal

    def _drop_highlights(self) -> None:
        for layer in self._highlights.values():
            if self._find(layer.unique_id) is not None:
                self.viewer.layers.remove(layer)
        self._highlights, self._outlined = {}, {}
        self._hidden.clear()

    def _watch_writes(self, layer: Labels) -> None:
        self._written[layer.unique_id] = layer_info(layer).get("written")
        layer.events.metadata.connect(self._rewritten)

    def _rewritten(self, event) -> None:
        """Check cells a step wrote into a result already open (a run again under its
        name, :func:`~._layers.result_slot`) as a new result is: no layer is added, so
        only its record says so. Every write records anew, even of the same cells
        (:func:`~napari_cytomask.io.layers.record_written`); other metadata changes carry
        the record over. A layer compared already stays on its side: its data events
        recompute."""
        layer = event.source
        written = layer_info(layer).get("written")
        if written is None or written is self._written.get(layer.unique_id):
            return
        self._written[layer.unique_id] = written
        shown = (self.prediction_combo.currentData(), self.ground_truth_combo.currentData())
        if layer.unique_id not in shown and self._follows(layer):
            self.set_prediction(layer)

    def _refresh_layers(self, event=None) -> None:
        candidates = self._candidates()
        uids = [layer.unique_id for layer in candidates]
        self._written = {uid: w for uid, w in self._written.items() if uid in uids}
        previous = (self.prediction_combo.currentData(), self.ground_truth_combo.currentData())
        pred, gt = previous
        if gt not in uids:
            # The mask of the scan the likely prediction was made from, when there is one.
            guess = self._find(pred) if pred in uids else None
            scans = scan_files(self.viewer.layers)
            guess = guess or self._find(_default_prediction(candidates, None, scans))
            # Never the prediction in place: its ground truth closed (to be opened again,
            # corrected), it became the ground truth, and the truth opened again was taken
            # as the prediction (recall and precision swapped).
            others = [layer for layer in candidates if layer.unique_id != pred]
            gt = _default_ground_truth(others, guess, scans)
        if pred not in uids or pred == gt:
            pred = _default_prediction(candidates, gt, scan_files(self.viewer.layers))
        for combo, chosen in ((self.prediction_combo, pred), (self.ground_truth_combo, gt)):
            combo.blockSignals(True)
            combo.clear()
            for layer in candidates:
                combo.addItem(layer.name, layer.unique_id)
            combo.setCurrentIndex(uids.index(chosen) if chosen is not None else -1)
            combo.blockSignals(False)
        if pred is not None and pred != previous[0]:
            # A prediction the dock chose takes its own scan's ground truth along, as one
            # picked by hand does: the ground truth of the layer it replaces may be another
            # scan's mask, which would score these cells against that scan's.
            self._pair_truth(self._find(pred))
            gt = self.ground_truth_combo.currentData()
        if (pred, gt) != previous:
            self._selection_changed()
        elif pred is None or gt is None:
            self.schedule(quiet=True)  # says what is missing, as soon as the dock opens
        elif self.runner.busy or self.evaluation is not None:
            # A side renamed: the status, outlines and CSV name the pair by its new names.
            names = tuple(getattr(self._find(uid), "name", None) for uid in (pred, gt))
            if names != self._pair[:2]:
                self.schedule(quiet=True)

    def _selection_changed(self, _index=None) -> None:
        for layer in self._watched:
            for emitter in (*pixel_events(layer), layer.events.visible):
                emitter.disconnect(self._data_changed)
        chosen = (self.prediction_layer, self.ground_truth_layer)
        self._watched = list({lay.unique_id: lay for lay in chosen if lay is not None}.values())
        for layer in self._watched:
            self._slices[layer.unique_id] = self.viewer.dims.current_step
            for emitter in (*pixel_events(layer), layer.events.visible):
                emitter.connect(self._data_changed)
        gt = self.ground_truth_layer
        frames = gt is not None and len(gt.data.shape) > 2
        self.stack_check.blockSignals(True)
        # Tiles and time points are separate images: compare them frame by frame. A 2-D
        # image has no frames, whatever the box said for the layers before.
        self.stack_check.setEnabled(frames)
        if gt is not None:
            self.stack_check.setChecked(self._frame_axes(None) > 0)
        self.stack_check.blockSignals(False)
        self._clear_results()
        # A pair that cannot be compared is said in the status line only: picking one side
        # before the other passes through such pairs, and the dock is in view.
        self.schedule(quiet=True)

    def _frame_axes(self, by_frame: bool | None) -> int:
        """How many leading axes of the ground truth are compared frame by frame (see
        :func:`compared_frame_axes`). The plugin's steps segment each 2-D plane of a stack
        on its own, Z planes too, so a result's ids link no two planes, and a Z stack
        compared as one volume scores them as cells cut in pieces (F1 0.19 for cells that
        score 0.97 plane by plane)."""
        pred, gt = self.prediction_layer, self.ground_truth_layer
        # A method: hand-drawn labels exported and opened again are results with none.
        planes_apart = pred is not None and is_result(pred) and bool(layer_info(pred).get("method"))
        return compared_frame_axes(gt.ndim, gt.axis_labels, planes_apart, by_frame)

    def _data_changed(self, event=None) -> None:
        """Compare again when a compared layer's pixels change. napari says so of a new
        slice too (its ``set_data`` follows every refresh of what is shown, as it follows
        an undo): a move of the frame slider recomputed every frame's metrics and put
        back the status the Cells tab had changed. A refresh at another place of the
        viewer's sliders than the layer's last one is a new slice, not new pixels. A
        hidden layer says nothing of an undo: it is compared again when shown."""
        layer = getattr(event, "source", None)
        if layer is not None and event.type == "visible" and not layer.visible:
            return
        if layer is not None and event.type == "set_data":
            step = self.viewer.dims.current_step
            shown_before = self._slices.get(layer.unique_id)
            self._slices[layer.unique_id] = step
            if shown_before != step:
                return
        self._edited.start()  # compared once the edits pause

    def _ids_hint(self) -> str:
        """A hint for label ids opened as an image (napari opens a PNG of ids as one; the
        plugin's reader a field of one cell)."""
        ids = [layer.name for layer in self.viewer.layers if may_hold_ids(layer)]
        if not ids:
            return ""
        return (
            f" '{ids[0]}' is open as an image: if it holds cell ids, make it a mask in "
            f"{CHANNEL_ROLES}, and it is offered here."
        )

    # ------------------------------------------------------------ computation

    def schedule(self, now: bool = False, quiet: bool = False) -> None:
        """Recompute after a quiet period (or at once with ``now``); ``quiet``: a pair that
        cannot be compared is said in the status line only, not notified."""
        self._edited.stop()  # this comparison takes the edits waiting for one
        pred, gt = self.prediction_layer, self.ground_truth_layer
        problem = None
        if pred is None and gt is None:
            problem = "Add two Labels layers: a prediction and a ground truth." + self._ids_hint()
        elif gt is None:
            problem = (
                f"Nothing to check '{pred.name}' against: open a ground-truth mask (a scan's "
                "mask channel, or a label image) or paint cells into a new Labels layer, then "
                "pick it as the ground truth." + self._ids_hint()
            )
        elif pred is None:
            problem = f"Pick a prediction to compare with '{gt.name}'." + self._ids_hint()
        elif pred.unique_id == gt.unique_id:
            problem = f"'{gt.name}' is both the prediction and the ground truth; pick another."
        if problem:
            self.runner.cancel()
            self._clear_results()
            self.status.setText(problem)
            return
        stack = self._frame_axes(True) if self.stack_check.isChecked() else 0
        try:
            # Cheap checks here, so the common mistakes are reported at once.
            level = _truth_level(gt, pred)
            gt_data, pred_data, stack = paired(
                resolution_level(gt, level)[0],
                resolution_level(pred)[0],
                stack,
                f"ground truth '{gt.name}'",
                f"prediction '{pred.name}'",
            )
            for data, layer in ((gt_data, gt), (pred_data, pred)):
                if data.size == 0:
                    as_labels(data, f"layer '{layer.name}'")
        except LabelsError as err:
            self.runner.refuse(_with_frame_advice(err, gt, pred), live=not now, notify=not quiet)
            return
        compared = (pred.unique_id, gt.unique_id, level, stack, gt_data.shape, pred_data.shape)
        if compared != self._compared:
            # A comparison still running is of other layers or shapes: its result, were it
            # to come in before this one starts, would be shown (and outlined) as this one.
            self.runner.cancel()
            self._compared = compared
            # Read once for these layers, not at each stroke painted (a TIFF's header).
            self._position_names = _position_names(np.shape(gt_data), (gt, pred))
        self._level = level
        self._pair = (
            pred.name,
            gt.name,
            level_names(gt)[level] if level else "",
            misplaced_note(pred, gt, "are compared pixel by pixel", levels=(0, level)),
            other_files(pred, gt, scan_files(self.viewer.layers)),
            (source_of(pred), source_of(gt)),
        )
        self._shape = tuple(np.shape(gt_data))
        self._axes = tuple(gt.axis_labels)
        self._made, self._made_only = _made_frames(self._shape, (pred, gt), self._axes)
        self.status.setText("Computing…")
        args = (
            gt_data,
            pred_data,
            stack,
            self.threshold_spin.value(),
            self.highlight_check.isChecked(),
            self._made,
        )
        if now:
            self.runner.run_now(compute_metrics, *args, notify=not quiet)
        else:
            self.runner.request(compute_metrics, *args, notify=not quiet)

    def _clear_results(self) -> None:
        """Empty the table and plot, and hide the highlight layers, so nothing outlives the
        comparison it came from (the next comparison shows them again)."""
        self.evaluation = None
        self.save_button.setEnabled(False)
        if not self.runner.busy:  # a bar full from the last result read as this pair's
            self.controls.progress.setRange(0, 1)
            self.controls.progress.setValue(0)
        self.table.clearContents()
        self.summary_table.clearContents()
        self.cells.show([], [])
        self._cells_listed = False
        if self.axes.lines:  # emptied once: a new result passes here up to three times,
            self.canvas.replot()  # and each clearing cost the GUI thread up to 40 ms
        for key, layer in self._highlights.items():
            if layer.visible:
                layer.visible = False
                self._hidden.add(key)

    def _show(self, result: Compared) -> None:
        evaluation, false_pos, false_neg, unlabelled, uncounted, compared, binary, digests = result
        self.evaluation, self._left_out = evaluation, (unlabelled, uncounted)
        self._binary, self._regions = binary, {}
        names, axes = self._position_names or (None, ())
        self._positions = frame_positions(evaluation.frame_shape, axes, names)
        self.save_button.setEnabled(True)
        self._fill_table(evaluation)
        self._cells_listed = False
        self._fill_cells()
        self.canvas.replot()  # of this evaluation
        highlighted = false_pos is not None and self.highlight_check.isChecked()
        if highlighted:
            self._update_highlights(false_pos, false_neg, digests)
        stats = evaluation.matches
        text = f"{stats.n_true} ground-truth and {stats.n_pred} predicted objects"
        if evaluation.frames:
            n_frames = len(evaluation.frames)
            if compared.all():
                # mSA, as the papers report it, is each frame's, then averaged.
                text += f" in {n_frames} frames (counts summed over frames; mSA averaged)"
            else:
                text += f" in {int(compared.sum())} of {n_frames} frames"
        # Axes left in a frame (Z, or time without the box ticked) make it one volume:
        # cells segmented plane by plane cannot match cells drawn in 3-D, nor the reverse.
        planes = int(np.prod(self._shape[len(evaluation.frame_shape) : -2]))
        if planes > 1:
            each = "each frame" if evaluation.frames else "the whole stack"
            text += f"; {each} compared as one volume of {planes} planes"
        if highlighted:
            text += _outlined(evaluation, self._axes)
        text += "."
        pred_name, gt_name, level, misplaced, files, _ = self._pair
        if level:
            text += (
                f" Compared with '{gt_name}' at its resolution level {level}, the one "
                f"'{pred_name}' was made at."
            )
        empty = stats.no_objects_note()
        if empty:
            text += f" Note: {empty}."
        if self._made_only:
            text += " " + self._made_only
        for role, value in binary.items():
            name = gt_name if role == "ground truth" else pred_name
            text += (
                f" '{name}' holds one id ({value}) for every cell, a binary mask: its separate "
                "regions are taken as the cells (cells that touch stay one; paint each cell "
                "with a new label to tell them apart)."
            )
        if unlabelled is not None:
            keys = [frame_key(place) for place in np.argwhere(unlabelled)]
            # Many are counted, as the frames compared are: the CSV saved lists each.
            many = len(keys) > LISTED_FRAMES
            which = f"{len(keys)} frames" if many else named_frames(keys, self._axes)
            text += (
                f" Left out: {which}, where '{gt_name}' has no cell (paint the cells there to "
                f"score them){uncounted_note(uncounted)}."
            )
        if misplaced:
            text += f" {misplaced}"
        if files:
            pred_file, gt_file = files
            text += (
                f" Note: '{pred_name}' comes from {pred_file} and '{gt_name}' from {gt_file}: "
                f"unless {gt_file} holds the same field, the score compares another scan's "
                f"cells; pick a ground truth of {pred_file}."
            )
        self.status.setText(text)

    # ---------------------------------------------------------------- display

    def _fill_table(self, evaluation: Evaluation) -> None:
        stats = evaluation.matches
        for col, t in enumerate(HEADLINE_THRESHOLDS):
            index = DEFAULT_THRESHOLDS.index(t)
            for row, (_, name, fmt, _) in enumerate(_OBJECT_ROWS):
                value = getattr(stats, name)[index]
                text = fmt.format(int(value) if fmt == "{:d}" else float(value))
                if name == "mean_matched_score" and stats.tp[index] == 0:
                    text = "–"  # no matched cell to average over: not an IoU of 0
                self.table.setItem(row, col, QTableWidgetItem(text))
        summary = evaluation.summary()
        for row, (_, name, _) in enumerate(_SUMMARY_ROWS):
            self.summary_table.setItem(row, 0, QTableWidgetItem(f"{summary[name]:.3f}"))

    def _fill_cells(self) -> None:
        """List the cells of the comparison on show, when the Cells tab is: a stack's
        thousands of rows are not remade at every edit while another tab is on show."""
        if self.views.currentWidget() is not self.cells_table or self._cells_listed:
            return
        if self.evaluation is None:
            return
        rows = cell_rows(self.evaluation)
        shown = rows[:MAX_CELL_ROWS]
        frames = bool(self.evaluation.frames)
        heading = frame_heading(self._axes, len(self.evaluation.frame_shape) or 1)
        columns = [heading] * frames + ["Area (px)", "IoU", "Status"]
        table = self.cells_table
        # The cell picked stays picked when an edit compares again: the same cell of the
        # same frame (hand-drawn masks number each position's cells from 1).
        current = table.currentIndex()
        picked = _cell_key(self.cells.rows[current.row()]) if current.isValid() else None
        self.cells.show(shown, columns, self._frame_named if frames else None, self._frame_said)
        header = table.horizontalHeader()
        for c in range(len(columns) - 1):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(columns) - 1, QHeaderView.ResizeMode.Stretch)
        if frames and self._positions:
            # A well's long name ("2 (Usiigaci set30)") is cut short, whole in its tooltip:
            # it took the status's room ("mis…").
            header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
            table.setColumnWidth(0, min(table.sizeHintForColumn(0), POSITION_WIDTH))
        at = next((r for r, row in enumerate(shown) if _cell_key(row) == picked), None)
        if at is not None:
            table.selectRow(at)
        self._cells_listed = True
        if len(rows) > len(shown):
            self.status.setText(
                f"The Cells tab lists the {len(shown):,} worst of {len(rows):,} cells."
            )

    def _frame_named(self, frame: int) -> str:
        """Frame ``frame`` of the comparison as the Cells tab names it: its number, or on
        several axes their letters under the column's nouns ("P0 T1" under "Position, time
        point": "position 0, time point 1" was cut to "position 0, …" there, and "0,1" was a
        number to a spreadsheet of decimal commas), and the name of its position where the
        scan names them ("2 (B03)"). Its tooltip says it as the CSV does (:meth:`_frame_said`)."""
        key = self.evaluation.frame_name(frame)
        name = short_frame(key, self._axes) or frame_cell(self.evaluation, frame, self._axes)
        return f"{name} ({self._positions[frame]})" if self._positions else name

    def _frame_said(self, frame: int) -> str:
        """Frame ``frame`` as the CSV names it (:func:`~napari_cytomask.metrics.export.
        frame_cell`), with its position's name where the scan names them."""
        name = frame_cell(self.evaluation, frame, self._axes)
        return f"{name} ({self._positions[frame]})" if self._positions else name

    def go_to_cell(self, row: int) -> None:
        """Centre the view on the cell of the Cells tab's ``row``, on its frame, and select
        the prediction to correct it in (:meth:`_to_correct`)."""
        if not 0 <= row < len(self.cells.rows):
            return
        cell = self.cells.rows[row]
        true = cell.side == "true"
        layer = self.ground_truth_layer if true else self.prediction_layer
        if layer is None:
            return
        level = self._level if true else 0
        data = layer.data[level] if layer.multiscale else layer.data
        frame_shape = self.evaluation.frame_shape
        place = (
            tuple(int(i) for i in np.unravel_index(cell.frame, frame_shape)) if frame_shape else ()
        )
        role = "ground truth" if true else "prediction"
        if role in self._binary:
            # A binary mask's cells are its regions, numbered as the comparison numbered
            # them: the mask holds one value for them all. Found once per comparison.
            if role not in self._regions:
                data = np.asarray(data)
                found = binary_mask_regions(data, len(frame_shape))
                self._regions[role] = data if found is None else found[0]
            data = self._regions[role]
        where = np.argwhere(np.asarray(data[place]) == cell.id)
        if not len(where):
            self.status.setText(
                f"{cell.name.capitalize()} is no longer in '{layer.name}': it was painted "
                "over since the comparison."
            )
            return
        # Of a coarser level, positions in the full resolution's pixels.
        factor = np.divide(layer.data[0].shape, data.shape)[len(place) :] if layer.multiscale else 1
        low, high = where.min(0) * factor, (where.max(0) + 1) * factor
        world = layer.data_to_world((*place, *((low + high) / 2 - 0.5)))
        size = (high - low) * np.abs(np.asarray(layer.scale)[len(place) :])
        # Its frame, and the middle of it in a frame of planes (a Z volume).
        for axis, value in enumerate(world[:-2]):
            self.viewer.dims.set_point(self.viewer.dims.ndim - len(world) + axis, value)
        camera = self.viewer.scene.camera
        shown = 3 if self.viewer.dims.ndisplay == 3 and len(world) > 2 else 2
        camera.center = tuple(world[-shown:])
        # The cell fills a quarter of the canvas's shorter side, or keeps a closer view.
        fit = min(self.viewer.canvas.size) / (4 * max(float(np.max(size[-2:])), 1e-9))
        camera.zoom = max(camera.zoom, fit)
        frame = [self.evaluation.frame_name(cell.frame)] if place else []
        at = f" at {named_frames(frame, self._axes)}" if frame else ""
        if frame and self._positions:
            at += f" ({self._positions[cell.frame]})"
        outline = ""
        if not cell.matched and not self.highlight_check.isChecked():
            outline = f" Tick '{self.highlight_check.text()}' to see it outlined."
        said = f"{cell.status}, IoU {cell.iou:.2f} ({cell.area} px)"
        self.status.setText(
            f"Showing {cell.name} of '{layer.name}'{at}: {said}; {self._to_correct(cell)}.{outline}"
        )

    def _to_correct(self, cell: CellRow) -> str:
        """Select the prediction to correct ``cell`` in, with the label to do it with: a
        true cell's a new one, to paint it in; a predicted cell's own, to paint over it or
        erase it. Says what was selected."""
        prediction = self.prediction_layer
        if prediction is None:
            return ""
        self.viewer.layers.selection.active = prediction
        if "prediction" in self._binary:
            # Its cells are regions of one value: painted with another, the mask would
            # hold two (and 256 is no value of an 8-bit mask of 0 and 255).
            prediction.selected_label = self._binary["prediction"]
            return (
                f"'{prediction.name}' is a binary mask: its value "
                f"({prediction.selected_label}) is selected to paint with"
            )
        if cell.side == "predicted":
            prediction.selected_label = cell.id
            return f"its id is the label of '{prediction.name}', selected to paint or erase it"
        if not isinstance(prediction.data, np.ndarray):  # not read whole for a new id
            return f"'{prediction.name}' is selected to paint it in"
        new = _unused_label(prediction.data)
        if new is None:
            return (
                f"'{prediction.name}' is selected, but its type of numbers "
                f"({prediction.data.dtype}) holds no label it does not use yet"
            )
        prediction.selected_label = new
        return f"'{prediction.name}' is selected with a new label ({new}) to paint it in"

    def _plot(self, evaluation: Evaluation | None) -> None:
        """Precision, recall and F1 over the IoU thresholds; empty without ``evaluation``."""
        self.axes.clear()
        if evaluation is not None:
            stats = evaluation.matches
            # F1 lies between precision and recall, on them when they are equal: each its
            # own line and marker, the widest first, so that none hides another.
            styles = {"f1": ("-", "o", 5), "precision": ("--", "s", 2), "recall": (":", "^", 2)}
            for (name, (line, marker, width)), colour in zip(
                styles.items(), self.canvas.series, strict=True
            ):
                self.axes.plot(stats.thresholds, getattr(stats, name), linestyle=line, lw=width,
                               marker=marker, markersize=3, label=name, alpha=0.9,
                               color=colour)  # fmt: skip
            self.axes.set_xlabel("IoU threshold", color=self.canvas.text)
            self.axes.set_ylim(0, 1.02)
            self.axes.grid(alpha=0.3, color=self.canvas.text)
            self.axes.legend(loc="lower left", fontsize="small")
        self.canvas.style()
        self.canvas.draw_idle()

    def _highlight_names(self) -> dict[str, str]:
        pair = f"({self.prediction_layer.name} vs {self.ground_truth_layer.name})"
        return {"fp": f"false positives {pair}", "fn": f"false negatives {pair}"}

    def _update_highlights(self, false_pos: np.ndarray, false_neg: np.ndarray, digests) -> None:
        names = self._highlight_names()
        self._outlined_pair = {self.prediction_layer.unique_id, self.ground_truth_layer.unique_id}
        source = {"fp": self.prediction_layer, "fn": self.ground_truth_layer}
        levels = {"fp": 0, "fn": self._level}  # the ground truth's level compared
        parameters = {
            # The comparison's own: the box may have changed while it ran.
            "match_threshold": self.evaluation.match_threshold,
            "prediction": self.prediction_layer.name,
            "ground_truth": self.ground_truth_layer.name,
        }
        for (key, data, digest), method in zip(
            (("fp", false_pos, digests[0]), ("fn", false_neg, digests[1])),
            HIGHLIGHT_METHODS,
            strict=True,
        ):
            # Its own shape: a stack of one has its axis.
            data = data.reshape(_shape(source[key], levels[key]))
            metadata = result_metadata(source[key], method=method, parameters=parameters)
            geometry = resolution_level(source[key], levels[key])[1]
            layer = self._highlights.get(key)
            if layer is not None and self._find(layer.unique_id) is not None:
                # The planes whose outlines changed, where the layer holds those written
                # last (napari's or a script's new data is compared whole).
                array, written = self._outlined.get(key, (None, ()))
                planes = None
                if array is layer.data and len(written) == len(digest):
                    planes = [
                        i for i, (a, b) in enumerate(zip(written, digest, strict=True)) if a != b
                    ]
                _redraw_changes(layer, data, planes)
                self._outlined[key] = (layer.data, digest)
                if layer.name != names[key]:
                    layer.name = names[key]
                layer.metadata = {**layer.metadata, **metadata}
                lay_over(layer, geometry)  # over the pair it now describes
                if tuple(layer.axis_labels) != geometry["axis_labels"]:
                    layer.axis_labels = geometry["axis_labels"]
                if key in self._hidden:  # hidden by the dock, not by the user
                    self._hidden.discard(key)
                    layer.visible = True
                    self._to_top(layer)  # over layers added since, such as a new result
                continue
            # One colour each, outlines only: the cells under them stay in view.
            colours = DirectLabelColormap(
                color_dict={None: HIGHLIGHT_COLOURS[key], 0: "transparent"}
            )
            layer = Labels(
                data, name=names[key], metadata=metadata, colormap=colours, opacity=1.0, **geometry
            )
            layer.contour = 3
            self._highlights[key] = layer  # updated in place by the next comparison
            # napari selects a layer it adds: the strokes that followed went into the
            # outlines, to be written over by the next comparison. The layer selected
            # stays so (the prediction, to correct).
            selection = self.viewer.layers.selection
            selected, active = set(selection), selection.active
            self.viewer.add_layer(layer)
            selection.clear()
            selection.update(selected)
            selection.active = active
            self._outlined[key] = (layer.data, digest)

    def _to_top(self, layer: Labels) -> None:
        uids = [other.unique_id for other in self.viewer.layers]
        index = uids.index(layer.unique_id)
        if index < len(uids) - 2:  # the two highlight layers share the top
            self.viewer.layers.move(index, len(uids))

    def _highlight_toggled(self, checked: bool) -> None:
        if checked:
            # Ticked here or restored with the dock's settings: a pair that cannot be
            # compared is said beside the box, not notified (restored, nobody asked).
            self.schedule(now=True, quiet=True)
            return
        for layer in self._highlights.values():
            if self._find(layer.unique_id) is not None:
                self.viewer.layers.remove(layer.name)
        self._highlights.clear()
        self._outlined.clear()

    # ----------------------------------------------------------------- export

    def save_csv(self, path: str | os.PathLike | None = None) -> None:
        """Write the current results to CSV; without ``path`` a file dialog asks."""
        if self.evaluation is None:
            self._save_failed("Nothing to save yet: choose two Labels layers.")
            return
        pred_name, gt_name, *_, sources = self._pair
        if path is None:
            # The dialog asks before replacing an existing file. Named with the folder of the
            # cells' file: every Usiigaci field's is 'metrics raw U-Net cells vs …' else.
            folder = os.path.basename(os.path.dirname(sources[0])) if sources[0] else ""
            named = " ".join(filter(None, ("metrics", folder, f"{pred_name} vs {gt_name}")))
            suggested = safe_file_name(named, NAME_BYTES - 4) + ".csv"
            path = ask_save_path(self, "Save metrics as CSV", suggested, "CSV files", "csv")
            if not path:
                return
        # The rows name each layer with its file: the names of two fields' layers are alike.
        names = tuple(
            name if source is None else f"{name} ({source})"
            for name, source in zip((pred_name, gt_name), sources, strict=True)
        )
        # What was compared and how, beside the table (the layers' records, the settings).
        pred, gt = (self._find(uid) for uid in self._compared[:2])
        # The axes compared: a stack of one is compared as its image, without its axis.
        compared_axes = self._axes[len(self._axes) - len(self._shape) :]
        frame_axes = list(compared_axes[: len(self.evaluation.frame_shape)])
        settings = {
            "match_threshold": self.evaluation.match_threshold,
            "frame_axes": frame_axes or None,
            "ground_truth_level": self._level,
        }
        pair = {"prediction": _compared_layer(pred), "ground_truth": _compared_layer(gt)}
        try:
            written = write_csv(
                self.evaluation,
                path,
                names=names,
                positions=self._positions,
                unlabelled=self._left_out[0],
                uncounted=self._left_out[1],
                axis_labels=self._axes,
                record=provenance(path, [pair], settings),
                overwrite=True,
            )
        except OSError as err:
            # The metrics stay: saving can be tried again, elsewhere.
            self._save_failed(f"Could not save the metrics: {err}")
            return
        self.status.setText(f"Saved the metrics of '{pred_name}' against '{gt_name}' to {written}.")

    def _save_failed(self, message: str) -> None:
        self.status.setText(message)
        show_error(message)


def _redraw_changes(layer: Labels, data: np.ndarray, planes: list[int] | None = None) -> None:
    """Give a highlight layer the outlines of a new comparison. Setting its data redraws
    every outline of the frame on show in the GUI thread (50 to 70 ms for a 1022 x 1024
    frame, napari stalled as each stroke's comparison landed; a second when unchanged
    outlines were set again at every stroke): the few pixels a stroke changed are written
    into the layer and only their region is redrawn, without an undo step of the
    layer's own. ``planes``, when known, are the only 2D planes that changed."""
    if layer.data.shape != data.shape or layer.data.dtype != data.dtype:
        layer.data = data
        return
    old, new = (np.reshape(a, (-1, *data.shape[-2:])) for a in (layer.data, data))
    indices, count = [], 0
    for plane in range(len(new)) if planes is None else planes:
        rows, cols = np.nonzero(old[plane] != new[plane])
        if len(rows):
            lead = np.unravel_index(plane, data.shape[:-2]) if data.ndim > 2 else ()
            indices.append((*(np.full(len(rows), i) for i in lead), rows, cols))
            count += len(rows)
    if count > PARTIAL_REDRAW * data.size:  # a new result: one redraw is quicker
        layer.data = data
    elif count:
        where = tuple(np.concatenate(axis) for axis in zip(*indices, strict=True))
        layer.data_setitem(where, data[where])
        forget_edits(layer)


def _made_frames(shape, layers, axes) -> tuple[np.ndarray | None, str]:
    """The frames of ``shape`` that every one of ``layers`` made (a split's preview makes
    the frame on show only), and a note naming them by ``axes`` (the axis labels); ``(None,
    "")`` when all were made."""
    made, unmade_in = None, []
    for layer in layers:
        own = made_frames(_shape(layer), frames_made_of(layer))
        if own is not None and not own.all():
            own = own.reshape(shape[:-2])  # a stack of one compared as its image
            made = own if made is None else made & own
            unmade_in.append(f"'{layer.name}'")
    if made is None:
        return None, ""
    kept = [frame_key(place) for place in zip(*np.nonzero(made), strict=True)]
    which = f"{named_frames(kept, axes)} only" if kept else "no frame"
    return made, (
        f"Compared in {which}: the other frames of {' and '.join(unmade_in)} were never "
        "made (a preview, or one position segmented alone, makes the frame on show only). "
        "Segment them all (all positions, time points or planes) to make them; a split's "
        "Apply splits the frames its input holds."
    )


def _compared_layer(layer) -> dict:
    """A layer compared, as the provenance of the metrics' CSV names it: its name, file and
    channel and, for a result, how it was made (:func:`~napari_cytomask.io.layers.origin`:
    method, settings, model) with the versions that made it, and the file of its labels
    where it was opened from one (as ``cytomask evaluate`` records them)."""
    info = layer_info(layer)
    return {
        **origin(layer),
        "source": source_of(layer),
        "channel_index": info.get("channel_index"),
        "channel_name": info.get("channel_name"),
        "versions": info.get("versions"),
        # A result saved and opened again: which of the scan's results was compared.
        **({"labels_file": file} if (file := labels_file_of(layer)) else {}),
    }


def _with_frame_advice(err: LabelsError, truth, prediction) -> LabelsError:
    """``err``, or what to do in its place where one of the layers is a stack of frames of
    the other's shape (:func:`~napari_cytomask.metrics.core.stacked_side`): a ground truth
    of one frame against a time-lapse's cells was refused as of another image, with no way
    to go on (and the advice, after the shapes, scrolled out of the status)."""
    stacked = stacked_side(_shape(truth), _shape(prediction))
    if stacked is None:
        return err
    stack, one = (truth, prediction) if stacked == "ground truth" else (prediction, truth)
    frames = int(np.prod(_shape(stack)[: stack.ndim - one.ndim]))
    return LabelsError(
        f"'{one.name}' is one frame and '{stack.name}' {frames} frames of its size: export "
        f"'{stack.name}' as PNG with Export labels (a file per frame), open the frame's file "
        f"and pick it as the {stacked}."
    )


_TRUTH_HINTS = ("gt", "ground", "truth", "reference", "annot", "mask")


def _looks_like_truth(layer) -> bool:
    return not is_result(layer) and (
        role_of(layer) == "mask" or any(h in layer.name.lower() for h in _TRUTH_HINTS)
    )


def _shape(layer, level: int = 0) -> tuple[int, ...]:
    """A layer's shape at full resolution, or at a pyramid's coarser ``level``."""
    return tuple(int(n) for n in layer.level_shapes[level])


def _level_of(layer, prediction) -> int | None:
    """The resolution level of ``layer`` that ``prediction`` was made at: 0, its full
    resolution, of the same shape; or one of a pyramid's coarser levels (where a step
    segments when asked) of its shape whose pixel size, as :func:`resolution_level` lays
    the level over ``layer``, the prediction has. None when it has none: a full-resolution
    crop of another image was said to be made at level 1, of its shape only."""
    shape = _shape(prediction)
    if _shape(layer) == shape:
        return 0
    pixel = np.asarray(prediction.scale, float)
    for level in range(1, len(layer.level_shapes)):
        level_pixel = np.asarray(resolution_level(layer, level)[1]["scale"])
        common = min(pixel.size, level_pixel.size)
        if _shape(layer, level) == shape and np.allclose(pixel[-common:], level_pixel[-common:]):
            return level
    return None


def _truth_level(truth, prediction) -> int:
    """The resolution level of the ground truth ``truth`` to compare ``prediction`` with:
    the one it was made at (:func:`_level_of`), else full resolution
    (:func:`~napari_cytomask.labels.paired` says how the shapes differ).

    Raises
    ------
    LabelsError
        For a prediction made at a coarser level than any ``truth`` has: of larger pixels
        over the same field.
    """
    level = _level_of(truth, prediction)
    if level is not None:
        return level
    # Made at a coarser level, it covers the same field with larger pixels.
    pixel, truth_pixel = (
        np.abs(np.asarray(layer.scale[-2:], float)) for layer in (prediction, truth)
    )
    larger = np.all((pixel > truth_pixel) | np.isclose(pixel, truth_pixel))
    larger = larger and not np.allclose(pixel, truth_pixel)
    field = pixel_bounds(prediction), pixel_bounds(truth)
    if larger and np.allclose(*field, atol=truth_pixel.min() / 2):
        size = "{} × {} px".format
        made_at = (layer_info(prediction).get("parameters") or {}).get("level")
        if truth.multiscale or made_at:  # a step segmented a pyramid's coarser level
            levels = ", which has no level of its size" if truth.multiscale else ""
            raise LabelsError(
                f"prediction '{prediction.name}' ({size(*_shape(prediction)[-2:])}) was made "
                f"at a coarser resolution level than ground truth '{truth.name}' "
                f"({size(*_shape(truth)[-2:])}){levels}: segment at full resolution to compare "
                "them."
            )
        # Of another file at larger pixels (a copy at half the resolution), not a level.
        of = [
            f" of {pixel_sizes(um)}" if (um := pixel_size_um(layer.scale, layer.units)) else ""
            for layer in (prediction, truth)
        ]
        raise LabelsError(
            f"prediction '{prediction.name}' ({size(*_shape(prediction)[-2:])}{of[0]}) covers "
            f"the field of ground truth '{truth.name}' ({size(*_shape(truth)[-2:])}{of[1]}) "
            "with larger pixels, and they are compared pixel by pixel: compare labels of one "
            "pixel size (segment the ground truth's own image, or resample one of them to "
            "the other's)."
        )
    return 0


def _own_truths(candidates, prediction, scans) -> list:
    """The ground truths among ``candidates`` of the image ``prediction`` was made from (or
    opened with), of its shape (at one of their resolution levels): its scan's mask
    channels, else label files of their own beside it
    (:func:`~napari_cytomask.roles.lies_with`)."""
    source = None if prediction is None else source_of(prediction)
    if source is None:
        return []
    fitting = [
        layer for layer in candidates
        if layer.unique_id != prediction.unique_id
        and _level_of(layer, prediction) is not None
    ]  # fmt: skip
    masks = [
        layer
        for layer in fitting
        if role_of(layer) == "mask" and same_file(source_of(layer), source)
    ]
    beside = [
        layer for layer in fitting
        if not is_result(layer) and source_of(layer) and not same_file(source_of(layer), source)
        and lies_with(layer, prediction, scans)
    ]  # fmt: skip
    # Of several in its folder, the one named most like the image: gt_set30.tif, opened
    # first, was taken for D_plain_set11.tif's, where gt_set11.tif was there.
    beside.sort(key=lambda layer: _name_likeness(source_of(layer), source), reverse=True)
    return masks or beside


def _name_likeness(path: str, other: str) -> tuple[int, float]:
    """How alike two files' names are (without their image suffixes, in any case): the
    longest run of characters they share ("gt_set11" and "D_plain_set11" share "_set11"),
    then how much of both it is ("gt_set1" before "gt_set11" for "D_plain_set1")."""
    a, b = (IMAGE_SUFFIX.sub("", Path(p).name).lower() for p in (path, other))
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return matcher.find_longest_match().size, matcher.ratio()


def _default_ground_truth(candidates, prediction=None, scans=()) -> int | None:
    """The mask channel of the scan ``prediction`` was made from, else a label file of its
    own beside that scan, else a mask channel opened from a scan, else a layer named like a
    reference, else the first layer no step of the dock made (a result is the ground truth
    only when picked)."""
    ranked = _own_truths(candidates, prediction, scans)
    ranked += [layer for layer in candidates if role_of(layer) == "mask"]
    ranked += [layer for layer in candidates if _looks_like_truth(layer)]
    ranked += [layer for layer in candidates if not is_result(layer)]
    return ranked[0].unique_id if ranked else None


def _default_prediction(candidates, truth, scans=()) -> int | None:
    """The newest layer a step made, else the newest layer that does not look like a
    reference, else any other layer but a scan's mask channel (of a file among ``scans``,
    which also holds images): opened before anything was segmented, a scan's hand-drawn
    mask was compared with another scan's, or with itself opened twice (F1 1.000)."""
    others = [layer for layer in reversed(candidates) if layer.unique_id != truth]
    ranked = [layer for layer in others if is_result(layer)]
    ranked += [layer for layer in others if not _looks_like_truth(layer)]
    ranked += [ly for ly in others if not (is_channel(ly) and source_of(ly) in scans)]
    return ranked[0].unique_id if ranked else None


def _position_names(shape: tuple[int, ...], layers) -> tuple[list[str], tuple] | None:
    """What the positions of ``layers`` (of ``shape``, the first that says) are called, with
    that layer's axes (a ground truth whose axes name no positions beside a result's that
    do): as the reader found them in a channel's scan, else as the file of a result's scan
    or of a reopened result records them; None where none does."""
    for layer in layers:
        axes = tuple(layer.axis_labels)
        names = positions_for(None, layer_info(layer).get("position_names"), axes, shape).names
        names = names or recorded_positions(source_of(layer), axes, shape).names
        if names:
            return names, axes
    return None


def _outlined(evaluation: Evaluation, axes) -> str:
    """What the outlines show: how many unmatched cells of each kind, at which IoU (the
    table's columns are at other IoUs: counts found in none of them looked wrong), and on
    which frames, named by ``axes`` (the axis labels; a frame on show without any looked as
    if the outlines did nothing)."""
    parts, frames = [], set()
    kinds = ((evaluation.pred_objects, "false positive", "fp"),
             (evaluation.true_objects, "false negative", "fn"))  # fmt: skip
    for table, what, key in kinds:
        unmatched = ~table.matched
        n = int(unmatched.sum())
        parts.append(f"{n} {what}{'' if n == 1 else 's'} in {HIGHLIGHT_COLOURS[key]}")
        frames.update(int(frame) for frame in table.frame[unmatched])
    text = f"; outlined at IoU {evaluation.match_threshold:.2f}: {', '.join(parts)}"
    if evaluation.frames and frames:
        keys = [evaluation.frame_name(frame) for frame in sorted(frames)]
        text += f" (on {named_frames(keys, axes)})"
    return text
