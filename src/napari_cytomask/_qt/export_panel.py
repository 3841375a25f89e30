"""Export panel: every selected Labels layer to label files, tables, COCO JSON and provenance."""

from __future__ import annotations

from pathlib import Path

import napari
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..io.export import export_labels, from_layer

_FORMAT_TEXT = {"tiff": "TIFF", "ome-tiff": "OME-TIFF", "png": "PNG (2D)", "npy": "NumPy"}
#: Feature columns used as the COCO score when a layer has one, best first.
_SCORE_COLUMNS = ("predicted_iou", "score", "probability")


class ExportPanel(QWidget):
    """Pick Labels layers and formats, choose a folder, export in a worker."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer_list = QListWidget()
        self.layer_list.setToolTip("Labels layers to export; all are ticked by default.")
        self.formats = {key: QCheckBox(text) for key, text in _FORMAT_TEXT.items()}
        self.formats["tiff"].setChecked(True)
        self.objects_csv = QCheckBox("per-object CSV and cell counts")
        self.objects_csv.setChecked(True)
        self.objects_csv.setToolTip(
            "Area, centroid, bounding box, eccentricity, mean intensity of every image "
            "channel of the same shape, and the object's scores; cells per tile."
        )
        self.coco_json = QCheckBox("COCO RLE JSON (with scores)")
        self.folder = QLineEdit(str(Path.home()))
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Labels layers"))
        layout.addWidget(self.layer_list)
        row = QHBoxLayout()
        for box in self.formats.values():
            row.addWidget(box)
        layout.addLayout(row)
        layout.addWidget(self.objects_csv)
        layout.addWidget(self.coco_json)
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Folder"))
        folder_row.addWidget(self.folder)
        folder_row.addWidget(browse)
        layout.addLayout(folder_row)
        layout.addWidget(self.export_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        """List the viewer's Labels layers, keeping the ticks of layers still there."""
        ticked = {
            self.layer_list.item(i).text(): self.layer_list.item(i).checkState()
            for i in range(self.layer_list.count())
        }
        self.layer_list.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Labels):
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(ticked.get(layer.name, Qt.CheckState.Checked))
                self.layer_list.addItem(item)

    def selected_layers(self) -> list[Labels]:
        """The ticked Labels layers."""
        names = [
            self.layer_list.item(i).text()
            for i in range(self.layer_list.count())
            if self.layer_list.item(i).checkState() == Qt.CheckState.Checked
        ]
        return [self.viewer.layers[name] for name in names if name in self.viewer.layers]

    def export(self, overwrite: bool = False):
        """Export the ticked layers in a worker; returns the worker."""
        layers = self.selected_layers()
        formats = [key for key, box in self.formats.items() if box.isChecked()]
        if not layers:
            show_error("Tick at least one Labels layer to export.")
            return None
        if not formats and not self.objects_csv.isChecked() and not self.coco_json.isChecked():
            show_error("Tick at least one format to export.")
            return None
        images = [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        exports = [from_layer(layer, images) for layer in layers]
        score_columns = {
            column for export in exports for column in export.features if column in _SCORE_COLUMNS
        }
        score = next((c for c in _SCORE_COLUMNS if c in score_columns), None)
        folder = Path(self.folder.text()).expanduser()
        worker = create_worker(
            export_labels,
            exports,
            folder,
            formats=formats,
            objects_csv=self.objects_csv.isChecked(),
            coco_json=self.coco_json.isChecked(),
            score_column=score,
            overwrite=overwrite,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.export_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # busy: writing is one step per file
        self.status.setText(f"Exporting {len(layers)} layer(s) to {folder}…")
        worker.start()
        return worker

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _done(self, written: list[Path]) -> None:
        where = f" to {written[0].parent}" if written else ""
        self.status.setText(f"Wrote {len(written)} files{where}.")
        show_info(f"Exported {len(written)} files.")

    def _failed(self, err: Exception) -> None:
        if isinstance(err, FileExistsError) and _confirm_overwrite(self, str(err)):
            self.export(overwrite=True)
            return
        self.status.setText(str(err))
        show_error(f"Export failed: {err}")

    def _finished(self) -> None:
        self.export_button.setEnabled(True)
        self.progress.setVisible(False)


def _confirm_overwrite(parent: QWidget, message: str) -> bool:
    answer = QMessageBox.question(
        parent,
        "Replace files?",
        f"{message}\n\nReplace them?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes
