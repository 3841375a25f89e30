"""The "Segment cytoplasm" dock: one place that leads from a tile scan to exported masks.

It holds the plugin's step widgets (channel roles, U-Net and SAM2 segmentation,
watershed, metrics, export) as pages of a tool box, remembers their settings
between sessions, and gives every step the same keyboard shortcuts: Ctrl+Enter
runs the open step, Escape cancels it.
"""

from __future__ import annotations

from collections.abc import Callable

import napari
from qtpy.QtCore import QSettings, QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QShortcut,
    QSlider,
    QSpinBox,
    QToolBox,
    QVBoxLayout,
    QWidget,
)

from .channel_roles import ChannelRolesWidget
from .export_panel import ExportPanel
from .metrics_dock import MetricsDock
from .sam2_widget import Sam2Widget
from .unet_widgets import UNetSegmentWidget
from .watershed_widget import WatershedWidget

METHODS = ("U-Net", "SAM2", "SAM2 guided by the U-Net foreground")
_SETTINGS = ("napari-cytomask", "segment-cytoplasm-dock")
#: Controls whose values are remembered; layer pickers are not (layers change per scan).
_REMEMBERED = (QCheckBox, QSpinBox, QDoubleSpinBox, QSlider, QLineEdit, QComboBox)


class CytomaskDock(QWidget):
    """Input channels → segment → separate touching cells → check → export, in one dock.

    Parameters
    ----------
    napari_viewer
        The viewer.
    sam2_model_builder
        Passed to :class:`~napari_cytomask._qt.sam2_widget.Sam2Widget` (tests give a
        small random model).
    settings
        Where settings persist; by default the user's Qt settings store.
    """

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        sam2_model_builder: Callable | None = None,
        settings: QSettings | None = None,
    ):
        super().__init__()
        self.viewer = napari_viewer
        self.settings = settings if settings is not None else QSettings(*_SETTINGS)
        self.roles = ChannelRolesWidget(napari_viewer)
        self.unet = UNetSegmentWidget(napari_viewer)
        self.sam2 = Sam2Widget(napari_viewer, model_builder=sam2_model_builder)
        self.watershed = WatershedWidget(napari_viewer)
        self.metrics = MetricsDock(napari_viewer)
        self.export = ExportPanel(napari_viewer)

        self.method = QComboBox()
        self.method.addItems(METHODS)
        self.method.setToolTip(
            "U-Net: a model trained on your cells. SAM2: automatic masks with live threshold "
            "sliders. Guided: SAM2 masks that lie mostly on the U-Net's foreground (run the "
            "U-Net first; its probability layer becomes SAM2's foreground map)."
        )
        self.method.currentIndexChanged.connect(self._method_changed)
        self.unet.segmented.connect(self._guide_sam2)
        segment_page = QWidget()
        segment_layout = QVBoxLayout(segment_page)
        segment_layout.addWidget(self.method)
        segment_layout.addWidget(self.unet)
        segment_layout.addWidget(self.sam2)

        self.steps = QToolBox()
        self._runs: list[tuple[Callable | None, Callable | None]] = []
        for title, page, run, cancel in (
            ("1. Input channels", self.roles, None, None),
            ("2. Segment cytoplasm", segment_page, self._segment, self._cancel_segment),
            ("3. Separate touching cells", self.watershed, self.watershed.apply,
             self.watershed.cancel),
            ("4. Check against the ground truth", self.metrics, None, None),
            ("5. Export", self.export, self.export.export, None),
        ):  # fmt: skip
            self.steps.addItem(page, title)
            self._runs.append((run, cancel))
        self.steps.setCurrentIndex(1)
        hint = QLabel("Ctrl+Enter runs the open step, Esc cancels it.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps)
        layout.addWidget(hint)

        for keys, slot in (("Ctrl+Return", self.run_current), ("Escape", self.cancel_current)):
            QShortcut(QKeySequence(keys), self, activated=slot)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(500)
        self._save_timer.timeout.connect(self.save_settings)
        self.restore_settings()
        self._method_changed()
        for control in self._controls().values():
            _changed_signal(control).connect(self._save_timer.start)

    def run_current(self) -> None:
        """Run the step whose page is open (Ctrl+Enter)."""
        run, _ = self._runs[self.steps.currentIndex()]
        if run is not None:
            run()

    def cancel_current(self) -> None:
        """Cancel the running work of the open step (Escape)."""
        _, cancel = self._runs[self.steps.currentIndex()]
        if cancel is not None:
            cancel()

    def save_settings(self) -> None:
        """Store every remembered control's value."""
        for key, control in self._controls().items():
            self.settings.setValue(key, _value(control))
        self.settings.sync()

    def restore_settings(self) -> None:
        """Put back the values stored by :meth:`save_settings`; unknown values are skipped."""
        for key, control in self._controls().items():
            stored = self.settings.value(key)
            if stored is not None:
                _set_value(control, stored)

    def _controls(self) -> dict[str, QWidget]:
        """Remembered controls by a key made of the step and the control's position in it."""
        controls = {"method": self.method}
        for name in ("unet", "sam2", "watershed", "metrics", "export"):
            widget = getattr(self, name)
            pickers = _layer_pickers(widget)
            kept = [
                c for c in widget.findChildren(QWidget)
                if isinstance(c, _REMEMBERED) and c not in pickers and not _inside_spinbox(c)
            ]  # fmt: skip
            for i, control in enumerate(kept):
                controls[f"{name}/{type(control).__name__}/{i}"] = control
        return controls

    def _method_changed(self) -> None:
        method = self.method.currentText()
        self.unet.setVisible(method != "SAM2")
        self.sam2.setVisible(method != "U-Net")

    def _segment(self) -> None:
        if self.method.currentText() == "SAM2":
            self.sam2.segment()
        else:
            self.unet.segment()  # guided: SAM2 runs with the U-Net foreground afterwards

    def _guide_sam2(self, cells) -> None:
        """Guided mode: SAM2 keeps masks that lie on the U-Net's cells, then runs."""
        if self.method.currentText() != METHODS[2]:
            return
        self.sam2.foreground.setCurrentText(cells.name)
        self.sam2.segment()

    def _cancel_segment(self) -> None:
        self.unet.cancel()
        self.sam2.cancel()


def _layer_pickers(widget: QWidget) -> set[QWidget]:
    """Combo boxes that list only the viewer's layers (their choices change with every scan)."""
    names = {layer.name for layer in widget.viewer.layers}
    return {
        combo for combo in widget.findChildren(QComboBox)
        if combo.count() and all(combo.itemText(i) in names for i in range(combo.count()))
    }  # fmt: skip


def _inside_spinbox(widget: QWidget) -> bool:
    # A spin box's line edit is a child control of its own; the spin box is remembered.
    return isinstance(widget, QLineEdit) and isinstance(widget.parent(), QAbstractSpinBox)


def _changed_signal(control: QWidget):
    if isinstance(control, QCheckBox):
        return control.toggled
    if isinstance(control, QComboBox):
        return control.currentIndexChanged
    if isinstance(control, QLineEdit):
        return control.editingFinished
    return control.valueChanged


def _value(control: QWidget):
    if isinstance(control, QCheckBox):
        return control.isChecked()
    if isinstance(control, QComboBox):
        return control.currentText()
    if isinstance(control, QLineEdit):
        return control.text()
    return control.value()


def _set_value(control: QWidget, stored) -> None:
    if isinstance(control, QCheckBox):
        control.setChecked(stored in (True, "true", "1", 1))
    elif isinstance(control, QComboBox):
        index = control.findText(str(stored))
        if index >= 0:
            control.setCurrentIndex(index)
    elif isinstance(control, QLineEdit):
        control.setText(str(stored))
    elif isinstance(control, QDoubleSpinBox):
        control.setValue(float(stored))
    else:
        control.setValue(int(float(stored)))
