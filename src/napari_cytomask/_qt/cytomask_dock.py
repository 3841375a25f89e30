"""The "Segment cytoplasm" dock: one place that leads from a tile scan to exported masks.

It holds the plugin's step widgets (channel roles, U-Net and SAM2 segmentation,
watershed, metrics, export) as numbered tabs (tabs, unlike a tool box, leave a
short dock's height to the open step), hands each step's output
to the next step as its input, remembers the steps' settings by name between
sessions, and gives every step the same keyboard shortcuts: Ctrl+Enter runs
the open step, Escape cancels it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.compat import isalive
from qtpy.QtCore import QSettings, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..cli import shell_quoted
from ..io.atomic import same_file
from ..io.layers import is_highlight, is_result, layer_info
from ..pipeline import METHODS, Preset
from ..roles import role_of, source_of
from ._layers import pixel_bounds
from ._live import FitsTheScreen, ask_save_path, ask_yes_no, take_keys
from ._settings import StepSettings, changed_signal
from .channel_roles import ChannelRolesWidget
from .export_panel import ExportPanel
from .metrics_dock import MetricsDock
from .sam2_widget import Sam2Widget
from .unet_widgets import UNetSegmentWidget
from .watershed_widget import WatershedWidget

_SETTINGS = ("napari-cytomask", "segment-cytoplasm-dock")
#: (tab text, what the step does)
STEPS = (
    ("1 Channels", "1. Input channels: which channel is the input, which are masks."),
    ("2 Segment", "2. Segment cytoplasm with a U-Net or SAM2, or train a U-Net."),
    ("3 Split", "3. Separate touching cells (watershed)."),
    ("4 Check", "4. Check against the ground truth (metrics)."),
    ("5 Export", "5. Export label images, tables and provenance."),
)


class CytomaskDock(FitsTheScreen, QWidget):
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
        self.roles = ChannelRolesWidget(napari_viewer)
        self.unet = UNetSegmentWidget(napari_viewer)
        self.sam2 = Sam2Widget(napari_viewer, model_builder=sam2_model_builder)
        self.watershed = WatershedWidget(napari_viewer)
        self.metrics = MetricsDock(napari_viewer)
        self.export = ExportPanel(napari_viewer)

        self.method = QComboBox()
        for key, title in METHODS.items():
            self.method.addItem(title, key)
        self.method.setToolTip(
            "U-Net: a model trained on your cells. SAM2: automatic masks with live threshold "
            "sliders. Guided: SAM2 masks that lie mostly on the U-Net's foreground (run the "
            "U-Net first; its cells become SAM2's foreground map)."
        )
        self.method.currentIndexChanged.connect(self._method_changed)
        self.save_preset_button = QPushButton("Save preset…")
        self.save_preset_button.setToolTip(
            "Save the method, models and parameters (and the watershed split, when step 3 "
            "split the cells segmented last) as a JSON preset for "
            "'cytomask segment --preset FILE'."
        )
        self.save_preset_button.clicked.connect(self._save_preset_dialog)
        segment_page = QWidget()
        method_field = QHBoxLayout()
        method_field.addWidget(self.method, 1)
        method_field.addWidget(self.save_preset_button)
        method_label = QLabel("Method")
        method_label.setBuddy(self.method)
        self.method.setAccessibleName("Method")
        # Below its label in a dock too narrow for both (see NAPARI_WIDTH).
        method_row = QFormLayout()
        method_row.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        method_row.addRow(method_label, method_field)
        segment_layout = QVBoxLayout(segment_page)
        segment_layout.setContentsMargins(0, 0, 0, 0)
        segment_layout.addLayout(method_row)
        # Guided, both pages are on show, one over the other: split so that SAM2's sliders,
        # which are tuned live, get the larger share, and can be given more by dragging
        # (side by side, in equal halves, SAM2's showed one or two of its rows).
        self._sam2_heading = QLabel(
            "<b>SAM2</b> on the U-Net's cells: its sliders tune the masks live"
        )
        self._sam2_heading.setWordWrap(True)
        sam2_box = QWidget()
        sam2_column = QVBoxLayout(sam2_box)
        sam2_column.setContentsMargins(0, 4, 0, 0)
        sam2_column.addWidget(self._sam2_heading)
        sam2_column.addWidget(self.sam2, 1)
        self._pages = QSplitter(Qt.Orientation.Vertical)
        self._pages.setChildrenCollapsible(False)
        self._pages.addWidget(self.unet)
        self._pages.addWidget(sam2_box)
        self._pages.setStretchFactor(0, 2)
        self._pages.setStretchFactor(1, 3)
        segment_layout.addWidget(self._pages, 1)

        self.steps = QTabWidget()
        self.steps.setUsesScrollButtons(True)
        self._runs: list[tuple[Callable | None, Callable | None]] = []
        pages = (self.roles, segment_page, self.watershed, self.metrics, self.export)
        runs = (
            (None, None),
            (self._segment, self._cancel_segment),
            (self.watershed.apply, self.watershed.cancel),
            (lambda: self.metrics.schedule(now=True), None),
            (self.export.export, self.export.cancel),
        )
        for (title, tip), page, run in zip(STEPS, pages, runs, strict=True):
            self.steps.addTab(page, title)
            self.steps.setTabToolTip(self.steps.count() - 1, tip)
            self._runs.append(run)
        self.steps.setCurrentIndex(1)
        # The keys are the dock's: napari's canvas and layer list keep their own.
        hint = QLabel("In this dock, Ctrl+Enter runs the open step and Esc cancels it.")
        hint.setWordWrap(True)
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setToolTip(
            "Put every step's settings back to the plugin's defaults and forget the "
            "remembered ones (layer choices stay)."
        )
        self.reset_button.clicked.connect(self.reset_settings)
        footer = QHBoxLayout()
        footer.addWidget(hint, 1)
        footer.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.steps)
        layout.addLayout(footer)
        # Combo boxes as wide as their longest item would widen a narrow dock.
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(min(combo.minimumContentsLength() or 8, 8))
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

        take_keys(self, self.run_current, self.cancel_current)
        #: The name of the cells segmented last, and the settings step 3 split them with (a
        #: preset splits them so too; ``None``: not split).
        self._cells: str | None = None
        self._split: dict | None = None
        self._connect_flow()
        # A method, not a lambda: the viewer's events hold methods weakly.
        self.viewer.layers.events.inserted.connect(self._opened_after_its_cells)

        self.settings = StepSettings(
            settings if settings is not None else QSettings(*_SETTINGS),
            {
                "dock": self,
                "unet": self.unet,
                "train": self.unet.trainer,
                "sam2": self.sam2,
                "watershed": self.watershed,
                "metrics": self.metrics,
                "export": self.export,
            },
            {
                "dock": "2 Segment",
                "unet": "2 Segment (U-Net)",
                "train": "2 Segment > Train a model",
                "sam2": "2 Segment (SAM2)",
                "watershed": "3 Split",
                "metrics": "4 Check",
                "export": "5 Export",
            },
        )
        self._unsaved_said = False
        self._restore_note: str | None = None
        self.restore_settings()
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(500)
        self._save_timer.timeout.connect(self.save_settings)
        for control in self.settings.controls().values():
            # A lambda: the signals carry values that QTimer.start would take for intervals.
            changed_signal(control).connect(lambda *_: self._save_timer.start())

    def settings_controls(self) -> dict[str, QWidget]:
        """The dock's own remembered control: the method."""
        return {"method": self.method}

    def run_current(self) -> None:
        """Run the step whose page is open (Ctrl+Enter), unless it is running: as its
        greyed-out run button, the shortcut then does nothing."""
        step = self.steps.currentIndex()
        run, _ = self._runs[step]
        controls = self._controls_of(step)
        if run is not None and (controls is None or controls.run_button.isEnabled()):
            run()

    def cancel_current(self) -> None:
        """Cancel the running work of the open step (Escape)."""
        _, cancel = self._runs[self.steps.currentIndex()]
        if cancel is not None:
            cancel()

    def save_settings(self) -> None:
        """Store the settings changed since the last save, by name; say once when they
        cannot be stored."""
        if not self.settings.save() and not self._unsaved_said:
            self._unsaved_said = True
            show_warning(
                f"The dock's settings could not be saved to {self.settings.store.fileName()} "
                "(a read-only or missing folder?): they apply until napari closes. Make that "
                "file writable to have them remembered."
            )

    def restore_settings(self) -> None:
        """Show the stored settings; restoring is not an edit, so nothing starts. Stored
        values that cannot be shown keep their defaults, and are said."""
        unreadable = self.settings.restore()
        self.watershed.stop_preview()
        self._method_changed()
        if self.settings.damaged:
            self._restore_note = (
                f"The dock's settings file {self.settings.store.fileName()} could not be "
                "read in full (it is damaged, or not a settings file): the settings it could "
                "not read show their defaults, and the file is written anew with the settings "
                "you change."
            )
        elif unreadable:
            self._restore_note = (
                f"Remembered settings that could not be read, are out of range, or are no "
                f"longer offered, keep their defaults: "
                f"{', '.join(unreadable)} (from {self.settings.store.fileName()})."
            )
            if self.isVisible():
                self._say_restore_note()

    def showEvent(self, event) -> None:
        """Say what restoring the settings could not read once the dock is on screen: said
        while napari docks it, the note would sit where the canvas no longer reaches."""
        super().showEvent(event)
        if self._restore_note:
            QTimer.singleShot(0, self._say_restore_note)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Store the settings edited in the last moment before the dock goes (napari
        closing, or the dock closed): the pause the save waits for would never end."""
        super().hideEvent(event)
        if self._save_timer.isActive():
            self._save_timer.stop()
            self.save_settings()

    def _say_restore_note(self) -> None:
        note, self._restore_note = self._restore_note, None
        if note:
            show_warning(note)

    def reset_settings(self) -> None:
        """Show every default and forget the stored settings (not while a step runs with
        the settings shown: the panel would then disagree with the result)."""
        runners = (self.unet.runner, self.unet.trainer.runner, self.sam2.runner)
        if any(r.busy for r in runners) or self.watershed.applying():
            show_info("Reset to defaults after the running step ends, or cancel it (Esc).")
            return
        changed, controls = self.settings.changed(), self.settings.controls()
        if changed and not ask_yes_no(
            self,
            "Reset to defaults?",
            f"Put {len(changed)} setting(s) back to their defaults? The values you chose "
            "are forgotten.",
            "Changed: "
            + "; ".join(self._setting_name(key, controls[key]) for key in changed)
            + ".",
        ):
            return
        self.settings.reset()
        self.watershed.stop_preview()
        self._method_changed()

    def _setting_name(self, key: str, control: QWidget) -> str:
        """A remembered setting by the name a user reads: its row's label (the buddy that
        :func:`~._live.name_fields` gives it), or a box's own text."""
        label = next((lb for lb in self.findChildren(QLabel) if lb.buddy() is control), None)
        if label is not None:
            name = label.text()
        elif isinstance(control, QAbstractButton):
            name = control.text()
        else:
            name = key.split("/", 1)[1].replace("_", " ")
        return name.replace("&", "").rstrip(": ")

    def _connect_flow(self) -> None:
        """Each step's output becomes the next step's input."""
        self.unet.segmented.connect(self._segmented)
        self.sam2.segmented.connect(self._segmented)
        self.watershed.applied.connect(self.metrics.set_prediction)
        self.watershed.applied.connect(self._split_shown)
        # A split previewed, unticked, is ticked once applied (unless the user ticked it).
        self.watershed.applied.connect(lambda _output: self.export.refresh())

    def _opened_after_its_cells(self, event) -> None:
        """An image opened after cells of its file (a result reopened the next day, then its
        scan) goes under them: napari adds it on top, where it hid them, as if the result
        had not opened."""
        layer = event.value
        if isinstance(layer, Image) and not is_result(layer) and source_of(layer):
            uid = layer.unique_id
            QTimer.singleShot(0, lambda: self._under_its_cells(uid))  # once napari added it

    def _under_its_cells(self, uid) -> None:
        if not isalive(self):
            return
        layers = self.viewer.layers
        uids = [layer.unique_id for layer in layers]
        if uid not in uids:
            return
        at = uids.index(uid)
        image = layers[at]
        # Cells of that file lying where it does: a mosaic is no image of one tile's cells.
        below = [
            i for i, layer in enumerate(layers[:at])
            if isinstance(layer, Labels) and not is_highlight(layer)
            and same_file(source_of(layer) or "", source_of(image))
            and np.allclose(pixel_bounds(layer), pixel_bounds(image))
        ]  # fmt: skip
        if below:
            layers.move(at, below[0])

    def _split_shown(self, output) -> None:
        """Keep the settings step 3 split the cells segmented last with (those of an Apply,
        or of a single image's preview), not those shown since or of another layer's split."""
        record = layer_info(output)
        made_from = (record.get("made_from") or {}).get("layer")
        if (
            record.get("method") == "watershed_split"
            and record.get("parameters")
            and made_from is not None
            and made_from == self._cells
        ):
            self._split = copy.deepcopy(record["parameters"])

    def _segmented(self, cells) -> None:
        # Handed to step 3, the cells are not split yet: a preset saved now must not split.
        self._cells, self._split = cells.name, None
        self._guide_sam2(cells)
        said = self.watershed.new_cells(cells)
        if said:  # a layer went from the list as step 2 ended, while step 2 is on show
            step = self.unet if layer_info(cells).get("method") == "unet" else self.sam2
            step.status.setText(f"{step.status.text()} {said}")
        self.metrics.set_prediction(cells)

    def preset(self) -> Preset:
        """The dock's current settings as a preset for ``cytomask segment``.

        Raises
        ------
        ValueError
            When the chosen method lacks a model (e.g. no U-Net checkpoint).
        """
        method = self.method.currentData()
        unet = self.unet.step() if method != "sam2" else None
        sam2 = self.sam2.step() if method != "unet" else None
        split = copy.deepcopy(self._split)
        layer = self.unet.input.layer() if method != "sam2" else self.sam2.input_layer()
        index = layer_info(layer).get("channel_index")
        return Preset(method, unet, sam2, split, None if index is None else [int(index)])

    def save_preset(self, path: str | Path) -> Path:
        """Write :meth:`preset` to ``path`` (replacing an older preset there)."""
        return self.preset().save(path, overwrite=True)

    def _save_preset_dialog(self) -> None:
        path = ask_save_path(self, "Save preset", "cytomask-preset.json", "Presets", "json")
        if not path:
            return
        try:
            saved = self.save_preset(path)
        except (ValueError, OSError) as err:
            show_error(f"The preset was not saved: {err}")
            return
        split = ", then splits touching cells as step 3 did" if self._split else ""
        # A pixel size typed for an image that lost its own belongs to images, not presets.
        typed = self.unet.pixel_size.value() if self.method.currentData() != "sam2" else 0
        pixel = f" --pixel-size {typed:g}" if typed else ""
        show_info(
            f"Saved {saved.name}: it segments with {METHODS[self.method.currentData()]}"
            f"{split}. Run: cytomask segment --preset {shell_quoted(saved)}{pixel} SCANS…"
        )

    def _method_changed(self) -> None:
        method = self.method.currentData()
        guided = method == "sam2_guided"
        self.unet.setVisible(method != "sam2")
        self._pages.widget(1).setVisible(method != "unet")  # SAM2's page and its heading
        self._sam2_heading.setVisible(guided)
        if guided:  # two fifths for the U-Net's settings, the rest for SAM2's
            total = max(sum(self._pages.sizes()), 5)
            self._pages.setSizes([2 * total // 5, total - 2 * total // 5])
        # Guided, one button runs both (the U-Net, then SAM2 on its cells): a second one
        # under SAM2's settings would run SAM2 alone, unguided.
        self.sam2.controls.run_button.setVisible(not guided)
        self.unet.controls.run_button.setText(
            "Segment cytoplasm (U-Net, then SAM2)" if guided else "Segment cytoplasm"
        )
        # A run of the page just hidden would go on unseen, with no Cancel in view (Esc
        # cancels the page on show), beside one started on this page: it stops.
        hidden = {"sam2": (self.unet, "U-Net"), "unet": (self.sam2, "SAM2")}.get(method)
        if hidden is not None and hidden[0].runner.busy:
            hidden[0].cancel()
            shown = self.sam2 if hidden[0] is self.unet else self.unet
            shown.status.setText(f"The {hidden[1]} run was cancelled: the method changed.")

    def _controls_of(self, step: int):
        """The run and Cancel buttons on show in a step (step 2: those of the page open)."""
        if step == 1:
            if self.method.currentData() == "sam2":
                return self.sam2.controls
            return self.unet.shown_controls()
        return (None, None, self.watershed.controls, self.metrics.controls,
                self.export.controls)[step]  # fmt: skip

    def _training_open(self) -> bool:
        return self.method.currentData() != "sam2" and self.unet.tabs.currentIndex() == 1

    def _segment(self) -> None:
        if self.method.currentData() == "sam2":
            self.sam2.segment()
        elif self._training_open():
            self.unet.trainer.train()
        else:
            self.unet.segment()  # guided: SAM2 runs with the U-Net foreground afterwards

    def _guide_sam2(self, cells) -> None:
        """Guided mode: SAM2 keeps masks that lie on the U-Net's cells, then runs."""
        if self.method.currentData() != "sam2_guided" or layer_info(cells).get("method") != "unet":
            return
        self.sam2.foreground.setCurrentText(cells.name)
        self.sam2.segment()
        self.sam2.show_tuning()  # what a person tunes next, under the U-Net's settings

    def _cancel_segment(self) -> None:
        """Cancel the work of the page on show: training runs on while cells are segmented,
        and segmenting while a model trains."""
        if self._training_open():
            self.unet.trainer.cancel()
            return
        method = self.method.currentData()
        if method != "sam2":
            self.unet.cancel()
        if method != "unet":
            self.sam2.cancel()  # guided: SAM2 follows the U-Net


def open_on_sample(viewer: napari.viewer.Viewer) -> None:
    """The dock beside the real phase-contrast sample, as ``python -m napari_cytomask``
    shows them: the image whole, the phase contrast selected (its hand-drawn cells open
    hidden: the first cells a user sees are the model's)."""
    viewer.window.add_plugin_dock_widget("napari-cytomask", "Segment cytoplasm")
    for layer in viewer.open_sample("napari-cytomask", "phase_contrast"):
        if role_of(layer) != "mask":
            viewer.layers.selection.active = layer
    # Fit the image once the window is laid out, beside the dock: fitted before, it
    # would fill the canvas as wide as the window and hide the image's sides.
    QTimer.singleShot(0, viewer.reset_view)
