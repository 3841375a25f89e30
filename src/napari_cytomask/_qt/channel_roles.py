"""A small dock to correct which channel of an opened scan is the input and which are masks."""

from __future__ import annotations

from pathlib import Path

import napari
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QHeaderView, QLabel, QTableWidget, QVBoxLayout, QWidget

from ..io.layers import ROLES
from ..roles import channel_layers, role_of, set_role, source_of

_ROLE_TEXT = {"input": "input (segment this)", "image": "image", "mask": "mask (labels)"}


class ChannelRolesWidget(QWidget):
    """One row per opened channel with a role picker; changing it converts the layer in place."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["channel", "file", "role"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setToolTip("Every channel of the opened scans and the role it plays.")
        hint = QLabel(
            "The reader guesses each channel's role. If it guessed wrong, pick the right one: "
            "masks become Labels layers, the input is what the segmentation widgets use."
        )
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.table)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.renamed):
            event.connect(self._schedule_refresh)
        self.refresh()

    def _schedule_refresh(self, event=None) -> None:
        # Rebuilding replaces (and deletes) the combo boxes; never do that inside their signals.
        QTimer.singleShot(0, self.refresh)

    def refresh(self) -> None:
        """Rebuild the table from the viewer's channel layers."""
        layers = channel_layers(self.viewer.layers)
        self.table.setRowCount(len(layers))
        for row, layer in enumerate(layers):
            name = QLabel(layer.name)
            source = source_of(layer) or ""
            self.table.setCellWidget(row, 0, name)
            self.table.setCellWidget(row, 1, QLabel(Path(source).name or source))
            picker = QComboBox()
            for role in ROLES:
                picker.addItem(_ROLE_TEXT[role], role)
            picker.setCurrentIndex(ROLES.index(role_of(layer)))
            picker.setToolTip(f"Role of {layer.name!r}")
            picker.currentIndexChanged.connect(
                lambda _, layer=layer, picker=picker: self._change(layer, picker)
            )
            self.table.setCellWidget(row, 2, picker)

    def _change(self, layer, picker: QComboBox) -> None:
        try:
            set_role(self.viewer.layers, layer, picker.currentData())
        except ValueError as err:
            show_error(str(err))
        self._schedule_refresh()
