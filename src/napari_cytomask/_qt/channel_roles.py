"""A small dock to correct which channel of an opened scan is the input and which are masks."""

from __future__ import annotations

import napari
from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..io.layers import ROLES
from ..io.tiff import file_stem
from ..roles import (
    channel_layers,
    holds_ids,
    looks_like_ids,
    role_of,
    scans_without_input,
    set_role,
    source_of,
)
from ._layers import RoleWatcher
from ._live import CHANNEL_ROLES, FitsTheScreen, within_the_screen

_ROLE_TEXT = {"input": "input (segment this)", "image": "image", "mask": "mask (labels)"}


#: Least width of the channel and file names in the table, in pixels.
NAME_WIDTH = 110


class _ElidedLabel(QLabel):
    """A label that shows as much of its text as fits, with "…" in the middle."""

    def __init__(self, text: str):
        super().__init__(text)
        self._full = text
        self.setMinimumWidth(1)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        metrics = self.fontMetrics()
        room = self.contentsRect().width()  # inside the margins and the style's padding
        self.setText(metrics.elidedText(self._full, Qt.TextElideMode.ElideMiddle, room))


class ChannelRolesWidget(FitsTheScreen, QWidget):
    """One row per opened channel with a role picker; changing it converts the layer in place
    (the steps' layer pickers follow a new input wherever its role was set)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.table = QTableWidget(0, 3)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.table.setHorizontalHeaderLabels(["channel", "file", "role"])
        header = self.table.horizontalHeader()
        # The role column is sized to its pickers in refresh(): Qt sizes a column to its
        # items and header only, which cut "input (segment this)" short. Names share the
        # rest, shortened in the middle, so a long one never pushes the role out of view.
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        # On a screen too narrow for the table, a name keeps its first and last letters
        # ("Pha…ast"), not "…", and the table scrolls sideways to the role.
        header.setMinimumSectionSize(self.fontMetrics().horizontalAdvance("Pha…ast") + 8)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.verticalHeader().setVisible(False)
        self.table.setToolTip("Every channel of the opened scans and the role it plays.")
        hint = QLabel(
            "The reader guesses each channel's role. If it guessed wrong, pick the right one: "
            "masks become Labels layers, the input is what the segmentation widgets use."
        )
        hint.setWordWrap(True)
        # Lasting, unlike the notification: which scans have no channel to segment yet.
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        # Scans open before this widget: told about by the reader's guesses already.
        self._seen = {source_of(layer) for layer in channel_layers(self.viewer.layers)}
        # One rebuild for a burst of layer events: a scan of 160 channels rebuilt the
        # table 160 times (208 s to open 40 files of 4 channels, against 41 s without it).
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.renamed):
            event.connect(self._schedule_refresh)
        events.inserted.connect(self._adopt_ids)
        for layer in list(self.viewer.layers):  # opened before the dock, in either order
            if holds_ids(layer):
                QTimer.singleShot(0, lambda layer=layer: self._make_mask(layer))
        # A role set by another Channel roles widget or a script shows here too; only a
        # new role rebuilds the table (results change their metadata at every run).
        self._role_watcher = RoleWatcher(self.viewer, self._schedule_refresh)
        self.refresh()

    def _schedule_refresh(self, event=None) -> None:
        # Rebuilding replaces (and deletes) the combo boxes; never do that inside their signals.
        self._refresh_timer.start()

    def refresh(self) -> None:
        """Rebuild the table from the viewer's channel layers."""
        layers = channel_layers(self.viewer.layers)
        self._say_when_no_input(layers)
        self.table.setRowCount(len(layers))
        for row, layer in enumerate(layers):
            name = _ElidedLabel(layer.name)
            name.setToolTip(layer.name)
            source = source_of(layer) or ""
            self.table.setCellWidget(row, 0, name)
            # Without the suffix, which every row shares; a long name keeps its start and
            # end ("181003_mu…_MMStack").
            file_label = _ElidedLabel(file_stem(source) if source else "")
            file_label.setToolTip(source)
            self.table.setCellWidget(row, 1, file_label)
            picker = QComboBox()
            for role in ROLES:
                picker.addItem(_ROLE_TEXT[role], role)
            picker.setCurrentIndex(ROLES.index(role_of(layer)))
            picker.setToolTip(f"Role of {layer.name!r}")
            # The row's layer, replaced by the one that holds the channel after each change:
            # a second change before the table is rebuilt goes to the replacement.
            held = [layer]
            picker.currentIndexChanged.connect(
                lambda _, held=held, picker=picker: self._change(held, picker)
            )
            self.table.setCellWidget(row, 2, picker)
        widths = [self.table.horizontalHeader().sectionSizeHint(2)]
        for row in range(self.table.rowCount()):
            picker = self.table.cellWidget(row, 2)
            picker.ensurePolished()
            widths.append(picker.sizeHint().width())
        self.table.setColumnWidth(2, max(widths) + 8)
        # The names keep room to be read beside the role: a dock of its own opened so
        # narrow that they read "Ph…st" and "us…le". A narrow screen's table scrolls.
        self.table.setMinimumWidth(within_the_screen(self, max(widths) + 8 + 2 * NAME_WIDTH + 4))

    def _say_when_no_input(self, layers) -> None:
        """Say which scans have no input to segment: images, but none the reader took for
        transmitted light. Below the table while it lasts, and once per scan opened after
        this widget as a notification."""
        missing = scans_without_input(layers)
        names = ", ".join(file_stem(source) for source in missing)
        self.status.setText(
            f"No input chosen in {names}: pick the channel to segment as 'input (segment "
            "this)'; until then segmenting takes the image its Segment step shows as "
            "Input image."
            if missing
            else ""
        )
        for source in {source_of(layer) for layer in layers} - self._seen:
            self._seen.add(source)
            if source in missing:
                show_info(
                    f"No channel of {file_stem(source)} looks like transmitted light, so none "
                    "is marked as the input to segment, and segmenting takes the image its "
                    "Segment step shows as Input image: if "
                    f"another is the one to segment, make it the input in {CHANNEL_ROLES}."
                )

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # Widgets made before napari's style sheet reached the dock keep the sizes they
        # had without it (a combo box keeps its first size hint): make them again.
        self._schedule_refresh()

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        # napari's style sheet reaches the dock after it is shown: the pickers made on show
        # measured without it (138 px for 177), and the dock widened by 17 px at the first
        # rebuild after it (a result added, during a run).
        if event.type() == QEvent.Type.StyleChange:
            self._schedule_refresh()

    def _adopt_ids(self, event) -> None:
        """Show label ids that another reader opened as an image (napari's own, for a PNG
        of cell ids) as a mask: an opaque image of ids would hide the cells under it."""
        layer = event.value
        if holds_ids(layer):
            # After napari has finished inserting it: replacing it now would upset the list.
            QTimer.singleShot(0, lambda: self._make_mask(layer))

    def _make_mask(self, layer) -> None:
        if layer not in self.viewer.layers or not holds_ids(layer):
            return  # closed, or made a channel by another widget meanwhile
        try:
            set_role(self.viewer.layers, layer, "mask")
        except ValueError as err:  # negative ids: it stays an image
            show_error(str(err))
            return
        show_info(
            f"'{layer.name}' holds cell ids, so it is shown as a mask (a Labels layer). "
            f"If it is an image, set its role back in {CHANNEL_ROLES}."
        )

    def _change(self, held: list, picker: QComboBox) -> None:
        """Give the row's layer (``held[0]``) the role picked; a layer closed before the
        table was rebuilt is left alone (set_role said "<layer> is not in list")."""
        if held[0] in self.viewer.layers:
            role, layer = picker.currentData(), held[0]
            image = isinstance(layer, Image) and not layer.rgb  # a colour one is refused
            unlike = role == "mask" and image and not looks_like_ids(layer)
            try:
                held[0] = set_role(self.viewer.layers, layer, role)
            except ValueError as err:
                show_error(str(err))
            else:
                if unlike:  # the metrics now take it for the ground truth
                    show_info(
                        f"'{layer.name}' does not look like cell ids: its pixels vary as an "
                        "image's do. It is a mask now, which the metrics take as the ground "
                        "truth; if it is an image, set its role back."
                    )
        self._schedule_refresh()
