"""Dock widget: separate touching cells by watershed, with a live preview."""

from __future__ import annotations

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from skimage.filters import threshold_otsu

from ..postprocess import MARKER_METHODS, iter_watershed
from ._live import LiveRunner

MODES = {
    "foreground": "Foreground map (probability or mask)",
    "interior_boundary": "Interior + boundary maps",
    "split": "Split existing labels",
}


def _spin(value, lo, hi, tip, step=1, decimals=None):
    box = QDoubleSpinBox() if decimals is not None else QSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class WatershedWidget(QWidget):
    """Turn a probability map, interior/boundary maps or labels into separated cells.

    The result goes to one Labels layer named ``"<input> instances"`` that is
    updated in place. With *Live preview* on, every parameter change re-runs the
    current frame in the background; *Apply* processes the whole stack with a
    progress bar and can be cancelled.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are offered as inputs.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._worker = None
        self._previewing = False  # set by the first preview; see _follow
        self._runner = LiveRunner(
            self._show_preview, delay_ms=250, on_error=self._fail, parent=self
        )

        self.mode = QComboBox()
        for key, text in MODES.items():
            self.mode.addItem(text, key)
        self.mode.setToolTip("What the input is: it decides which layers and parameters are used.")
        self.input = QComboBox()
        self.input.setToolTip("Foreground probability/mask (Image), or labels to split (Labels).")
        self.boundary = QComboBox()
        self.boundary.setToolTip("Boundary probability map (same shape as the interior map).")
        self.boundary_label = QLabel("boundary")

        inputs = QFormLayout()
        inputs.addRow("mode", self.mode)
        self.input_label = QLabel("input")
        inputs.addRow(self.input_label, self.input)
        inputs.addRow(self.boundary_label, self.boundary)

        self.threshold = _spin(
            0.5, 0, 1,
            "Value above which a pixel is cell: a probability for probability maps; for an "
            "intensity image it starts at the Otsu threshold of the displayed frame.",
            0.05, 2,
        )  # fmt: skip
        self.markers = QComboBox()
        self.markers.addItems(MARKER_METHODS)
        self.markers.setToolTip(
            "h_maxima: maxima of the distance transform at least h above their saddle; "
            "peaks: local maxima at least the minimum distance apart."
        )
        self.h = _spin(5.0, 0.1, 100, "Raise to split less (in pixels of distance).", 0.5, 1)
        self.min_distance = _spin(
            7, 1, 500, "Smallest distance between peaks: about a cell radius."
        )
        self.marker_erosion = _spin(0, 0, 50, "Erode markers by this radius (drops tiny ones).")
        self.marker_dilation = _spin(0, 0, 50, "Grow markers by this radius.")
        self.compactness = _spin(
            0.0, 0, 10, "0: classic watershed; larger: more regular cells.", 0.001, 4
        )
        self.interior_threshold = _spin(
            0.5, 0, 1, "Interior probability that seeds a cell.", 0.05, 2
        )
        self.min_marker_size = _spin(10, 0, 100000, "Seeds with fewer pixels are ignored.")
        self.min_fragment = _spin(
            0, 0, 1000000, "Merge split pieces below this size into their longest neighbour."
        )
        params = QFormLayout()
        self._rows = {}
        for name, label, widget in (
            ("threshold", "threshold", self.threshold),
            ("markers", "markers", self.markers),
            ("h", "h", self.h),
            ("min_distance", "min distance", self.min_distance),
            ("marker_erosion", "marker erosion", self.marker_erosion),
            ("marker_dilation", "marker dilation", self.marker_dilation),
            ("interior_threshold", "interior threshold", self.interior_threshold),
            ("min_marker_size", "min marker size", self.min_marker_size),
            ("min_fragment", "merge fragments <", self.min_fragment),
            ("compactness", "compactness", self.compactness),
        ):
            self._rows[name] = (QLabel(label), widget)
            params.addRow(*self._rows[name])
        param_box = QGroupBox("Watershed")
        param_box.setLayout(params)

        self.fill = QCheckBox("fill holes")
        self.fill.setChecked(True)
        self.fill.setToolTip("Fill background enclosed by one cell.")
        self.opening = _spin(0, 0, 50, "Per-cell opening radius: removes spurs and thin bridges.")
        self.closing = _spin(0, 0, 50, "Per-cell closing radius: smooths notches.")
        self.min_area = _spin(30, 0, 10**9, "Remove cells with fewer pixels.")
        self.max_area = _spin(0, 0, 10**9, "Remove cells with more pixels (0: no limit).")
        self.exclude_border = QCheckBox("remove cells touching the border")
        self.exclude_border.setToolTip("Cells cut by the image edge are dropped.")
        clean = QFormLayout()
        clean.addRow(self.fill)
        clean.addRow("opening radius", self.opening)
        clean.addRow("closing radius", self.closing)
        clean.addRow("min area", self.min_area)
        clean.addRow("max area", self.max_area)
        clean.addRow(self.exclude_border)
        clean_box = QGroupBox("Clean-up")
        clean_box.setLayout(clean)

        self.live = QCheckBox("Live preview (current frame)")
        self.live.setChecked(True)
        self.live.setToolTip("Re-run in the background whenever a parameter changes.")
        self.apply_button = QPushButton("Apply to all frames")
        self.apply_button.setToolTip("Process the whole image or stack into the output layer.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(inputs)
        layout.addWidget(param_box)
        layout.addWidget(clean_box)
        layout.addWidget(self.live)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()

        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.mode.currentIndexChanged.connect(self._changed)
        self.apply_button.clicked.connect(self.apply)
        self.cancel_button.clicked.connect(self.cancel)
        self.input.currentIndexChanged.connect(self._suggest_threshold)
        for combo in (self.input, self.boundary, self.markers):
            combo.currentIndexChanged.connect(self._changed)
        for box in (
            self.threshold, self.h, self.min_distance, self.marker_erosion,
            self.marker_dilation, self.compactness, self.interior_threshold,
            self.min_marker_size, self.min_fragment, self.opening, self.closing,
            self.min_area, self.max_area,
        ):  # fmt: skip
            box.valueChanged.connect(self._changed)
        for check in (self.fill, self.exclude_border, self.live):
            check.toggled.connect(self._changed)
        layers = self.viewer.layers.events
        layers.inserted.connect(self._refresh_layers)
        layers.removed.connect(self._refresh_layers)
        layers.reordered.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(self._follow)
        self._refresh_layers()
        self._mode_changed()

    # ---- inputs -------------------------------------------------------------------------

    @property
    def method(self) -> str:
        """The selected method key (``"foreground"``, ``"interior_boundary"``, ``"split"``)."""
        return self.mode.currentData()

    def _candidates(self, kind):
        return [layer.name for layer in self.viewer.layers if isinstance(layer, kind)]

    def _fill_combo(self, combo: QComboBox, names: list[str]) -> None:
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if current in names:
            combo.setCurrentText(current)
        combo.blockSignals(False)

    def _refresh_layers(self, event=None) -> None:
        outputs = {self._output_name(name) for name in self._candidates((Image, Labels))}
        if self.method == "split":
            names = [n for n in self._candidates(Labels) if n not in outputs]
        else:
            names = self._candidates(Image)
        before = self.input.currentText()
        self._fill_combo(self.input, names)
        self._fill_combo(self.boundary, self._candidates(Image))
        if self.method == "interior_boundary" and self.boundary.count() > 1:
            if self.boundary.currentText() == self.input.currentText():
                self.boundary.setCurrentIndex(1 if self.input.currentIndex() == 0 else 0)
        if self.input.currentText() != before:
            self._suggest_threshold()
            self._follow()

    def _mode_changed(self) -> None:
        method = self.method
        visible = {
            "foreground": {"threshold", "markers", "h", "min_distance", "marker_erosion",
                           "marker_dilation", "compactness"},
            "interior_boundary": {"interior_threshold", "threshold", "min_marker_size",
                                  "compactness"},
            "split": {"markers", "h", "min_distance", "marker_erosion", "marker_dilation",
                      "compactness", "min_fragment"},
        }[method]  # fmt: skip
        for name, (label, widget) in self._rows.items():
            label.setVisible(name in visible)
            widget.setVisible(name in visible)
        self.input_label.setText({"foreground": "foreground", "interior_boundary": "interior",
                                  "split": "labels"}[method])  # fmt: skip
        self.boundary.setVisible(method == "interior_boundary")
        self.boundary_label.setVisible(method == "interior_boundary")
        self._refresh_layers()
        self._suggest_threshold()

    def _suggest_threshold(self) -> None:
        """Probability maps start at 0.5; intensity images at the Otsu threshold of a frame."""
        layer = self._layer(self.input)
        if layer is None or isinstance(layer, Labels) or layer.multiscale or layer.rgb:
            return
        frame = np.asarray(layer.data[self._frame_index(len(layer.data.shape))])
        low, high = float(frame.min()), float(frame.max())
        self.threshold.blockSignals(True)
        if low >= 0 and high <= 1:
            self.threshold.setRange(0, 1)
            self.threshold.setValue(0.5)
        else:
            self.threshold.setRange(low, high)
            self.threshold.setValue(float(threshold_otsu(frame)) if high > low else low)
        self.threshold.blockSignals(False)

    def _layer(self, combo: QComboBox):
        name = combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _output_name(self, input_name: str) -> str:
        return f"{input_name} instances"

    # ---- parameters ---------------------------------------------------------------------

    def params(self) -> dict:
        """Keyword arguments of the selected method's core function."""
        markers = {
            "markers": self.markers.currentText(),
            "h": self.h.value(),
            "min_distance": self.min_distance.value(),
            "marker_erosion": self.marker_erosion.value(),
            "marker_dilation": self.marker_dilation.value(),
            "compactness": self.compactness.value(),
        }
        if self.method == "foreground":
            return {"threshold": self.threshold.value(), **markers}
        if self.method == "interior_boundary":
            return {
                "interior_threshold": self.interior_threshold.value(),
                "foreground_threshold": self.threshold.value(),
                "min_marker_size": self.min_marker_size.value(),
                "compactness": self.compactness.value(),
            }
        return {**markers, "min_fragment_size": self.min_fragment.value()}

    def cleanup(self) -> dict:
        """Keyword arguments of :func:`~napari_cytomask.postprocess.clean_labels`."""
        return {
            "fill": self.fill.isChecked(),
            "opening_radius": self.opening.value(),
            "closing_radius": self.closing.value(),
            "min_area": self.min_area.value(),
            "max_area": self.max_area.value() or None,
            "exclude_border": self.exclude_border.isChecked(),
        }

    def _inputs(self):
        """The input layer and its data arrays, or raise a ValueError that says what to do."""
        layer = self._layer(self.input)
        if layer is None:
            kind = "a Labels" if self.method == "split" else "an Image"
            raise ValueError(f"Add or pick {kind} layer as input first.")
        if layer.multiscale:
            raise ValueError(f"{layer.name} is multiscale; pick a single-resolution layer.")
        if getattr(layer, "rgb", False):
            raise ValueError(f"{layer.name} is an RGB image; pick a single-channel map.")
        arrays = [layer.data]
        if self.method == "interior_boundary":
            boundary = self._layer(self.boundary)
            if boundary is None or boundary is layer:
                raise ValueError("Pick the boundary map: an Image layer other than the interior.")
            if tuple(boundary.data.shape) != tuple(layer.data.shape):
                raise ValueError(
                    f"interior map {layer.name} has shape {tuple(layer.data.shape)} but boundary "
                    f"map {boundary.name} has shape {tuple(boundary.data.shape)}; pick maps of "
                    "the same image."
                )
            arrays.append(boundary.data)
        return layer, arrays

    def _frame_index(self, ndim: int) -> tuple[int, ...]:
        """Index of the displayed frame along the leading axes of an ``ndim`` array."""
        lead = ndim - 2
        step = self.viewer.dims.current_step
        return tuple(int(i) for i in step[len(step) - ndim : len(step) - ndim + lead])

    # ---- running ------------------------------------------------------------------------

    def _changed(self, *args) -> None:
        """A parameter changed: preview with it when live."""
        if self.live.isChecked() and self._worker is None:
            self.preview()

    def _follow(self, *args) -> None:
        """The input or the displayed frame changed: keep a started preview up to date.

        Opening the dock, or a new layer, starts nothing until the user changes a
        parameter or asks for a preview.
        """
        if self._previewing:
            self._changed()

    def stop_preview(self) -> None:
        """Drop a scheduled or running preview; the next one waits for the user."""
        self._runner.cancel()
        self._previewing = False

    def preview(self) -> None:
        """Re-run the displayed frame (debounced, in a worker) and show it."""
        self._previewing = True
        try:
            layer, arrays = self._inputs()
        except ValueError as err:
            self._report(err, notify=False)
            return
        index = self._frame_index(len(layer.data.shape))
        frames = [np.asarray(arr[index]) for arr in arrays]
        self.status.setText("Updating preview…")
        self._runner.request(
            _preview_job, self.method, frames, self.params(), self.cleanup(), layer.name, index
        )

    def _show_preview(self, result) -> None:
        labels, name, index = result
        if name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        output = self._output_layer(layer)
        if output.data.dtype.itemsize < labels.dtype.itemsize:
            output.data = output.data.astype(labels.dtype)
        output.data[index] = labels
        output.refresh()
        self.status.setText(f"Preview: {int(labels.max())} cells in the displayed frame.")

    def apply(self) -> None:
        """Process every frame into the output layer, with progress and cancel."""
        try:
            layer, arrays = self._inputs()
        except ValueError as err:
            self._report(err)
            return
        self._runner.cancel()
        self.cancel()
        big = max(arrays[0].shape[-2:]) > 4096
        worker = create_worker(
            iter_watershed,
            self.method,
            *arrays,
            params=self.params(),
            cleanup=self.cleanup(),
            chunk_size=2048 if big else None,
            _start_thread=False,
            _connect={"errored": self._fail},
        )
        worker.yielded.connect(self._progress)
        worker.returned.connect(lambda labels, name=layer.name: self._applied(name, labels))
        worker.finished.connect(self._finished)
        self._worker = worker
        self.apply_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Processing…")
        worker.start()

    def cancel(self) -> None:
        """Stop a running Apply between frames or chunks."""
        if self._worker is not None:
            self._worker.quit()
            self.status.setText("Cancelled.")

    def _progress(self, step) -> None:
        done, total = step
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _applied(self, name: str, labels) -> None:
        if name not in self.viewer.layers:
            return
        output = self._output_layer(self.viewer.layers[name])
        if (
            output.data.shape == labels.shape
            and output.data.dtype.itemsize >= labels.dtype.itemsize
        ):
            output.data[...] = labels
            output.refresh()
        else:
            output.data = labels
        self.status.setText(f"Done: {int(labels.max())} cells.")

    def _finished(self) -> None:
        self._worker = None
        self.apply_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _output_layer(self, source) -> Labels:
        """The ``"<input> instances"`` layer, created empty with the input's geometry if needed."""
        name = self._output_name(source.name)
        shape = tuple(source.data.shape)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if isinstance(layer, Labels) and tuple(layer.data.shape) == shape:
                return layer
            self.viewer.layers.remove(layer)
        layer = Labels(
            np.zeros(shape, np.uint32),
            name=name,
            scale=source.scale,
            translate=source.translate,
            units=source.units,
            axis_labels=source.axis_labels,
            metadata={"cytomask": {"source": source.name, "method": self.method}},
        )
        return self.viewer.add_layer(layer)

    def _fail(self, err: Exception) -> None:
        self._report(err)

    def _report(self, err: Exception, notify: bool = True) -> None:
        self.status.setText(f"Error: {err}")
        if notify:
            show_error(str(err))


def _preview_job(method, frames, params, cleanup, name, index):
    """Worker body of the live preview: one frame, cancellable between steps."""
    labels = yield from iter_watershed(method, *frames, params=params, cleanup=cleanup)
    return labels, name, index
