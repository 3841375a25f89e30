"""The "Segment cytoplasm" dock: one place that leads from a tile scan to exported masks.

It holds the plugin's step widgets (channel roles, U-Net and SAM2 segmentation,
watershed, metrics, export) as pages of a tool box, remembers their settings
between sessions, and gives every step the same keyboard shortcuts: Ctrl+Enter
runs the open step, Escape cancels it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import napari
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSettings, QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QShortcut,
    QSlider,
    QSpinBox,
    QToolBox,
    QVBoxLayout,
    QWidget,
)

from ..io.layers import METADATA_KEY
from ..pipeline import Preset, Sam2Step
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
        self.save_preset_button = QPushButton("Save preset for the command line…")
        self.save_preset_button.setToolTip(
            "Save the method, models and parameters (and the watershed split, when the "
            "'Separate touching cells' step splits labels) as a JSON preset for "
            "'cytomask segment --preset FILE'."
        )
        self.save_preset_button.clicked.connect(self._save_preset_dialog)
        segment_layout.addWidget(self.save_preset_button)

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
        # Restored values are not the user's changes: no live preview on opening.
        self.watershed.stop_preview()
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

    def preset(self) -> Preset:
        """The dock's current settings as a preset for ``cytomask segment``.

        Raises
        ------
        ValueError
            When the chosen method lacks a model (e.g. no U-Net checkpoint).
        """
        method = {METHODS[0]: "unet", METHODS[1]: "sam2", METHODS[2]: "sam2_guided"}[
            self.method.currentText()
        ]
        unet = self.unet.step() if method != "sam2" else None
        sam2 = None
        if method != "unet":
            model, config = self.sam2.model_source()
            params = asdict(self.sam2.params())
            params.pop("point_grids")
            labels = asdict(self.sam2.label_params())
            sam2 = Sam2Step(model=model, config=config, params=params, labels=labels)
        split = None
        if self.watershed.method == "split":
            split = {"params": self.watershed.params(), "cleanup": self.watershed.cleanup()}
        layer = self.unet.input.layer() if method != "sam2" else self.sam2.input_layer()
        index = layer.metadata.get(METADATA_KEY, {}).get("channel_index") if layer else None
        return Preset(method, unet, sam2, split, None if index is None else [int(index)])

    def save_preset(self, path: str | Path) -> Path:
        """Write :meth:`preset` to ``path`` (replacing an older preset there)."""
        return self.preset().save(path, overwrite=True)

    def _save_preset_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save preset", "cytomask-preset.json", "Presets (*.json)"
        )
        if not path:
            return
        try:
            saved = self.save_preset(path)
        except (ValueError, OSError) as err:
            show_error(f"The preset was not saved: {err}")
            return
        show_info(f"Saved {saved.name}. Run: cytomask segment --preset {saved} SCANS…")

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
