"""Export panel: every selected Labels layer to label files, tables, COCO JSON and provenance."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import napari
import numpy as np
from napari.layers import Image, Labels
from qtpy.compat import isalive
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .._sample_data import in_package
from .._writer import said_in_napari
from ..io.export import ExportExists, check_export, corrected_in, exporting, from_layer
from ..io.layers import is_highlight, named_frames, previewed_only
from ..io.writers import FIJI_EXACT_IDS, FILE_FORMATS, FORMATS, LARGEST_ID_OPENED, RENUMBER
from ..progress import one_line
from ..roles import files_of, holds_ids, role_of, source_of
from ._layers import misplaced_note
from ._live import (
    SEGMENT_STEP,
    NothingToRun,
    Runner,
    StepControls,
    StepWidget,
    ask_yes_no,
    step_page,
    typed_path,
)

#: Feature columns used as the COCO score when a layer has one, best first.
_SCORE_COLUMNS = ("predicted_iou", "score", "probability")


class ExportPanel(StepWidget, QWidget):
    """Pick Labels layers and formats, choose a folder, export in a worker."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer_list = QListWidget()
        self.layer_list.setToolTip(
            "Labels layers to export. Results and your own layers start ticked; a scan's mask "
            "channel (the ground truth) and a split previewed but not applied do not."
        )
        self.formats = {key: QCheckBox(FORMATS[key].title) for key in FILE_FORMATS}
        for key, box in self.formats.items():
            box.setToolTip(FORMATS[key].tip)
        self.formats["tiff"].setChecked(True)
        self.objects_csv = QCheckBox("Per-object CSV and cell counts")
        self.objects_csv.setChecked(True)
        self.objects_csv.setToolTip(
            "Area, centroid, bounding box, eccentricity, mean intensity of every image "
            "channel of the same shape (not another scan's channels of its own scan's "
            "names; another file's named after it), and the object's scores; cells per tile."
        )
        self.coco_json = QCheckBox("COCO RLE JSON (with scores)")
        self.coco_json.setToolTip("Every object as a COCO run-length-encoded annotation.")
        self.renumber = QCheckBox(RENUMBER)
        self.renumber.setToolTip(
            "Number the cells 1, 2, 3… in the files and tables (in the order of their ids, "
            "through a stack: a cell keeps one id in every frame), for Fiji, which rounds ids "
            f"over {FIJI_EXACT_IDS:,}, and QuPath and OMERO, which open none over "
            f"{LARGEST_ID_OPENED:,}: stitched or merged labels may hold such ids. The layers "
            "keep their own ids; the provenance says the files' are renumbered."
        )
        self.folder = QLineEdit(str(Path.home()))
        self.folder.setToolTip(
            "The folder the files go to; created when missing. Until you choose one, the "
            "folder of the file the first ticked layer comes from."
        )
        #: The folder the dock last chose itself: followed until the user chooses another.
        self._suggested = self.folder.text()
        browse = QPushButton("Choose…")
        browse.setObjectName("choose_folder")
        browse.setToolTip("Choose the export folder.")
        browse.clicked.connect(self._browse)
        self.controls = StepControls("Export", "Write the ticked layers in the ticked formats.")
        self.controls.run_button.clicked.connect(lambda: self.export())
        self.controls.cancel_button.clicked.connect(self.cancel)
        self.runner = Runner(
            self._done,
            self.controls,
            describe_error=lambda err: f"Export failed: {one_line(err)}",
            parent=self,
        )
        self._pending: dict = {}
        self._unmeasured: list[str] = []  # notes of images that do not lie under the labels
        self._landing = _Landing(there=True)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Labels layers"))
        layout.addWidget(self.layer_list, 1)
        # Two per row: four in one were wider than the dock napari opens (NumPy cut off).
        grid = QGridLayout()
        for i, box in enumerate(self.formats.values()):
            grid.addWidget(box, i // 2, i % 2)
        layout.addLayout(grid)
        layout.addWidget(self.objects_csv)
        layout.addWidget(self.coco_json)
        layout.addWidget(self.renumber)
        folder_row = QHBoxLayout()
        folder_label = QLabel("Folder")
        folder_label.setBuddy(self.folder)
        self.folder.setAccessibleName("Folder")
        folder_row.addWidget(folder_label)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        layout.addLayout(folder_row)
        step_page(self, content, self.controls)
        self._listed: list[Labels] = []
        self._defaults: list[Qt.CheckState] = []  # each listed layer's tick when listed
        self.layer_list.itemChanged.connect(lambda _item: self._suggest_folder())
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.renamed):
            event.connect(self.refresh)
        self.refresh()
        self.bind_keys()

    @property
    def export_button(self):
        return self.controls.run_button

    def settings_controls(self) -> dict[str, QWidget]:
        """Remembered controls by parameter name."""
        return {
            **{f"format_{key}": box for key, box in self.formats.items()},
            "objects_csv": self.objects_csv,
            "coco_json": self.coco_json,
            "renumber": self.renumber,
            "folder": self.folder,
        }

    def refresh(self, event=None) -> None:
        """List the viewer's Labels layers, keeping the ticks of layers still there."""
        # Ticks follow the layer itself, so a renamed layer keeps its tick; one the user
        # left as it was follows what the layer has become (a preview, then applied).
        ticked = [
            (ly, self.layer_list.item(i).checkState(), was)
            for i, (ly, was) in enumerate(zip(self._listed, self._defaults, strict=True))
        ]
        self._listed = [layer for layer in self.viewer.layers if isinstance(layer, Labels)]
        self._defaults = [_default_tick(layer) for layer in self._listed]
        self.layer_list.clear()
        for layer, default in zip(self._listed, self._defaults, strict=True):
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            state = next((st for ly, st, was in ticked if ly is layer and st != was), default)
            item.setCheckState(state)
            self.layer_list.addItem(item)
        self._suggest_folder()
        if self.runner.busy:
            return
        if not self._listed:
            self.status.setText(_NOTHING_TO_EXPORT)
            self.progress.setValue(0)  # the export it finished is of layers closed since
        elif self.status.text() == _NOTHING_TO_EXPORT:
            self.status.setText("")

    def _suggest_folder(self) -> None:
        """Export beside the data: the folder of the file the first ticked layer comes from,
        while the folder is the one the dock chose (the home folder at first), not one the
        user typed, browsed to or had remembered."""
        if self.folder.text() != self._suggested:
            return
        files = [source_of(layer) for layer in self.selected_layers()]
        file = next((f for f in files if f and Path(f).is_file()), None)
        # The folder it was opened from, not the one a link to it points to: where
        # `cytomask segment` writes its results.
        folder = Path(os.path.abspath(file)).parent if file is not None else None
        # Not into the installed package, where the sample scan lies.
        if folder is not None and not in_package(folder):
            self._suggested = str(folder)
            # Not remembered as the user's choice: the next session follows its own data.
            self.folder.blockSignals(True)
            self.folder.setText(self._suggested)
            self.folder.blockSignals(False)

    def selected_layers(self) -> list[Labels]:
        """The ticked Labels layers."""
        return [
            layer
            for i, layer in enumerate(self._listed)
            if self.layer_list.item(i).checkState() == Qt.CheckState.Checked
            and layer in self.viewer.layers
        ]

    def export(self, overwrite: bool = False) -> None:
        """Export the ticked layers in a worker.

        When files of the export are already in the folder, nothing is written and
        one question asks whether to replace them.
        """
        layers = self.selected_layers()
        formats = [key for key, box in self.formats.items() if box.isChecked()]
        try:
            if not layers:
                raise NothingToRun(
                    "Tick at least one Labels layer to export."
                    if self._listed
                    else _NOTHING_TO_EXPORT
                )
            if not formats and not self.objects_csv.isChecked() and not self.coco_json.isChecked():
                raise ValueError("Tick at least one format to export.")
            typed = typed_path(self.folder.text())
            if not typed:
                raise ValueError("Choose a folder to export to.")
            # Not a ground truth of cell ids that napari opened as an image (Usiigaci's
            # instances_ids.png): its "intensity" is an id, and another field's mask.
            images = [
                layer
                for layer in self.viewer.layers
                if isinstance(layer, Image) and not holds_ids(layer)
            ]
            under = {layer: _lying_under(layer, images) for layer in layers}
            # A record unreadable raises ValueError.
            exports = [from_layer(layer, under[layer][0]) for layer in layers]
        except ValueError as err:
            self.runner.fail(err)
            return
        score_columns = {
            column for export in exports for column in export.features if column in _SCORE_COLUMNS
        }
        score = next((c for c in _SCORE_COLUMNS if c in score_columns), None)
        # Absolute, so the status says where the files went (not "to exports.").
        folder = Path(typed).absolute()
        self._pending = dict(
            exports=exports,
            folder=folder,
            formats=formats,
            objects_csv=self.objects_csv.isChecked(),
            coco_json=self.coco_json.isChecked(),
            score_column=score,
            renumber=self.renumber.isChecked(),
            # The files the layers came from are never replaced (File > Save does that), nor
            # those of any layer open: "well1 [1]" of gt/ is exported as well1.tif, which may
            # be the scan of data/ open beside it.
            inputs=[
                *(export.source for export in exports if export.source),
                *files_of(self.viewer.layers),
            ],
        )
        measured = self.objects_csv.isChecked()  # the notes are of its table
        self._unmeasured = [note for _, note in under.values() if note and measured]
        self.status.setText(f"Exporting {len(layers)} layer(s) to {folder}…")
        self._run(overwrite)

    def _run(self, overwrite: bool) -> None:
        # Whether the folder is there before: made for the export, it goes again if cancelled.
        self._landing = _Landing(there=os.path.isdir(self._pending["folder"]))
        self.runner.run_now(_export_job, overwrite=overwrite, landing=self._landing,
                            **self._pending)  # fmt: skip

    def cancel(self) -> None:
        """Stop the export at the end of the step under way: until its files move in, all
        together once every one is written, nothing is written. Export waits, greyed out,
        until it has stopped: it holds the folder until then."""
        if not self.runner.busy:
            return
        landing, folder = self._landing, self._pending["folder"]
        kept = f"; the files in {folder} are as they were" if landing.there else ""
        said = f"Cancelled: nothing was written to {folder}{kept}."
        worker = self.runner.cancel(said)
        if worker is not None:
            worker.finished.connect(lambda: self._stopped(landing, said))
            # Set before finishing, which is said after: seen running, it will be said.
            if worker.is_running:
                self.export_button.setEnabled(False)
                self.status.setText(f"{said} Export again once it has stopped, at the end "
                                    "of the step under way.")  # fmt: skip
        self._landed_anyway(landing)

    def _stopped(self, landing: _Landing, said: str) -> None:
        if isalive(self):
            if self.status.text().startswith(said):
                self.status.setText(said)
            self._landed_anyway(landing)
            self.export_button.setEnabled(not self.runner.busy)
            if landing.moving and landing.error is not None:  # said to be moving in
                self.runner.fail(landing.error)

    def _landed_anyway(self, landing: _Landing) -> None:
        """Say that the export cancelled was past stopping: its files moving in, or in."""
        if landing.outcome is not None:
            said = f"the export had finished. {self._written(landing.outcome)}"
        elif landing.moving:
            said = (
                f"its files were already moving into {self._pending['folder']}; it "
                "finishes, and they are there."
            )
        else:
            return
        if isalive(self):
            self.status.setText(f"Cancelled too late: {said}")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _done(self, outcome) -> None:
        exists = outcome[1]
        if exists is not None:
            folder = exists.paths[0].parent
            # Whose: with a layer exported before ticked beside a new one, its files alone
            # were listed, and No kept the new one's from being written too.
            whose = " and ".join(f"'{name}'" for name in exists.layers)
            question = f"Files of {whose} are already in the folder. Replace them?"
            corrected = corrected_in(exists.paths)
            if corrected:  # "Yes" wrote uncorrected cells over a renamed layer's corrections
                named = " and ".join(f"'{name}'" for name in dict.fromkeys(corrected))
                question += (
                    f" They hold cells corrected by hand (of a layer then named {named}): "
                    "replaced, the corrections are lost unless that layer is still open."
                )
            others = len(self._pending["exports"]) - len(exists.layers)
            if others > 0:
                other = "the other one" if others == 1 else f"the other {others}"
                question += (
                    f" The export writes all ticked layers or none: No writes none of them, "
                    f"not {other} either (untick {whose} to write "
                    f"{'it' if others == 1 else 'those'} alone)."
                )
            if ask_yes_no(self, "Replace files?", question, _listed(exists.paths, folder)):
                self.status.setText("Replacing the files…")
                self._run(overwrite=True)
            else:
                self.status.setText(
                    f"Nothing was written: the {len(exists.paths)} file(s) in {folder} are as "
                    "they were. Choose another folder, or export again and replace them."
                )
            return
        self.status.setText(self._written(outcome))

    def _written(self, outcome) -> str:
        """What an export that wrote its files says of them."""
        written, _, empty, replaced, notes = outcome
        text = f"Wrote {len(written)} files" + (f" to {written[0].parent}" if written else "")
        text += ", replacing those of the same names." if replaced else "."
        if empty:
            names = " and ".join(f"'{name}'" for name in empty)
            one = len(empty) == 1
            text += (
                f" {names} {'holds' if one else 'hold'} no cells, so "
                f"{'its' if one else 'their'} files hold none either."
            )
        for export in self._pending["exports"]:
            if export.frames_made is not None:
                made = named_frames(export.frames_made, export.axis_labels)
                text += (
                    f" '{export.name}' holds {made} only, made one at a time: its other frames "
                    "were never made, so their cell counts are left empty."
                )
        text += "".join(f" Note: {note}" for note in [*self._unmeasured, *notes])
        return text


_NOTHING_TO_EXPORT = (
    f"No Labels layer to export yet: segment cells in {SEGMENT_STEP}, or open a mask."
)


class _Landing:
    """What an export's worker tells of its files moving in, for a Cancel that comes as
    they do (a cancelled worker returns nothing, and its error is not reported): whether
    they move in, and the outcome once they are in, or the error of a move that failed.
    ``there``: whether the folder was there before the export."""

    def __init__(self, there: bool):
        self.there = there
        self.moving = False
        self.outcome = None
        self.error: Exception | None = None


def _default_tick(layer) -> Qt.CheckState:
    """Whether ``layer`` starts ticked: not a scan's mask channel (the ground truth), a
    highlight, or the split step's preview of a stack's frame never applied (its other
    frames empty)."""
    if role_of(layer) == "mask" or is_highlight(layer) or previewed_only(layer):
        return Qt.CheckState.Unchecked
    return Qt.CheckState.Checked


def _lying_under(labels, images) -> tuple[list, str]:
    """The image layers that lie under ``labels`` in the viewer, at the resolution level
    of the labels' shape (images of no level of that shape are not measured anyway), and
    a note naming those that do not: an image moved 500 µm away, or at another pixel size,
    was measured under the cells as if it lay beneath them."""
    shape = np.shape(labels.data[0] if labels.multiscale else labels.data)
    under, elsewhere = [], []
    for image in images:
        levels = image.data if image.multiscale else [image.data]
        level = next(
            (i for i, data in enumerate(levels)
             if np.shape(data)[: -1 if image.rgb else None] == shape),
            None,
        )  # fmt: skip
        if level is not None and misplaced_note(labels, image, "", (0, level)):
            elsewhere.append(f"'{image.name}'")
        else:
            under.append(image)
    if not elsewhere:
        return under, ""
    one = len(elsewhere) == 1
    return under, (
        f"{' and '.join(elsewhere)} {'does' if one else 'do'} not lie under '{labels.name}' in "
        f"the viewer (moved, turned or at another pixel size), so {'its' if one else 'their'} "
        "intensities are not in its table."
    )


def _export_job(
    exports, folder, *, overwrite, score_column, renumber, landing: _Landing, **options
):
    """Worker body, reporting progress: ``(files written, None, names of the layers
    without a cell, overwrite, notes)``, the notes what the export warned of (files of an
    earlier export it left, a layer it could not write and left out: the others are
    written, as a user who ticked several expects), also kept in ``landing``; or ``([],
    ExportExists, [], False, [])`` when files of the export exist (an answer to ask the
    user about, not a failure; asked before a lazy layer is read). What Fiji makes of the
    files written (ids it rounds) is shown as File > Save shows it, a notification, once
    they are in: in the status it was cut off below its few lines."""
    try:
        check_export(exports, folder, overwrite=overwrite, **options)
        exports = [export.loaded() for export in exports]  # lazy layers are read once, here
        notes: list[str] = []
        of_files: list[str] = []
        left: list[str] = []

        def left_out(export, err: ValueError) -> None:
            left.append(export.name)
            notes.insert(len(left) - 1, f"'{export.name}' was left out, none of its files "
                                        f"written: {one_line(err)}")  # fmt: skip

        # Closed with this job, as a cancelled worker closes it: in napari's thread.
        with contextlib.closing(
            exporting(exports, folder, overwrite=overwrite, score_column=score_column,
                      renumber=renumber, note=notes.append, file_note=of_files.append,
                      left_out=left_out, **options)
        ) as work:  # fmt: skip
            while True:
                try:
                    report = next(work)
                except StopIteration as stop:
                    written = stop.value
                    break
                yield report
                # Going on after the last report (not cancelled there): the files move in.
                landing.moving = report.stage == "write" and report.done == report.total
    except ExportExists as err:
        return [], err, [], False, []
    except Exception as err:
        landing.error = err  # for a Cancel that came as the files moved in
        raise
    empty = [e.name for e in exports if e.name not in left and not np.any(e.labels)]
    for note in of_files:
        said_in_napari(note)
    landing.outcome = written, None, empty, overwrite, notes
    return landing.outcome


def _listed(paths: list[Path], folder: Path, most: int = 4) -> str:
    """The files already in ``folder``, by name: the first few, then how many more."""
    names = [path.name for path in paths[:most]]
    more = f", and {len(paths) - most} more" if len(paths) > most else ""
    return f"Already in {folder}: {', '.join(names)}{more}."
