"""Dock widget for SAM2 automatic masks whose sliders update the labels live."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..models.device import available_devices
from ..models.sam2_engine import (
    ENCODER_PARAMS,
    LabelParams,
    Sam2Engine,
    Sam2Params,
    Sam2Result,
)
from ..models.sam2_models import DEFAULT_MODEL, HF_MODELS, Sam2ModelCache
from ..progress import drain
from ..roles import role_of
from ._live import NO_THREADS, LiveRunner

LOCAL = "Local checkpoint…"
ALL_POSITIONS, CURRENT_POSITION = "all positions", "current position"
NO_FOREGROUND = "(none)"

# name: (minimum, maximum, step, default, tooltip); integers when the step is 1.
_FILTERS = {
    "pred_iou_thresh": (
        0.0,
        1.0,
        0.01,
        0.8,
        "Drop masks whose predicted IoU (the model's own "
        "quality estimate) is not above this. Re-filters at once.",
    ),
    "stability_score_thresh": (
        0.0,
        1.0,
        0.01,
        0.95,
        "Drop masks that change much when the "
        "logit cut-off moves by the stability offset. Re-filters at once.",
    ),
    "box_nms_thresh": (
        0.0,
        1.0,
        0.01,
        0.7,
        "Box IoU above which the lower-scoring of two "
        "masks of one crop is dropped as a duplicate. Re-filters at once.",
    ),
    "crop_nms_thresh": (
        0.0,
        1.0,
        0.01,
        0.7,
        "Box IoU above which duplicates between crops are dropped. Re-filters at once.",
    ),
}
_LABELS = {
    "min_area": (0, 20000, 1, 0, "Drop masks with fewer pixels. Re-filters at once."),
    "max_area_fraction": (
        0.0,
        1.0,
        0.01,
        0.5,
        "Drop masks covering more than this fraction of "
        "the image (background). Re-filters at once.",
    ),
    "min_foreground_fraction": (
        0.0,
        1.0,
        0.01,
        0.5,
        "With a foreground layer: drop masks with "
        "less of their area in the foreground. Re-filters at once.",
    ),
}
_DECODER = {
    "points_per_side": (
        2,
        64,
        1,
        32,
        "Grid of prompt points per image side. Re-runs the mask "
        "decoder only (the image encoding is kept).",
    ),
    "stability_score_offset": (
        0.0,
        4.0,
        0.05,
        1.0,
        "Shift of the logit cut-off for the stability score. Re-runs the mask decoder only.",
    ),
    "mask_threshold": (
        -4.0,
        4.0,
        0.05,
        0.0,
        "Logit cut-off that makes the masks binary. Re-runs the mask decoder only.",
    ),
    "min_mask_region_area": (
        0,
        1000,
        1,
        0,
        "Fill holes and remove islands smaller than this in "
        "the low-resolution masks (needs sam2's compiled extension). "
        "Re-runs the mask decoder only.",
    ),
    "crop_n_points_downscale_factor": (
        1,
        4,
        1,
        1,
        "Fewer points in the crops of deeper layers. Re-runs the mask decoder only.",
    ),
    "points_per_batch": (0, 1024, 1, 0, "Points decoded at once; 0 adapts to the GPU memory."),
}
_CROPS = {
    "crop_n_layers": (
        0,
        3,
        1,
        0,
        "Also segment 4, 16… crops of the image (more small cells, "
        "slower). Runs the image encoder for the new crops.",
    ),
    "crop_overlap_ratio": (
        0.0,
        0.9,
        0.01,
        512 / 1500,
        "Overlap of the crops. Runs the image encoder for the new crops.",
    ),
    "tile_size": (
        256,
        4096,
        1,
        1024,
        "Images larger than this are processed in overlapping tiles at native resolution.",
    ),
    "tile_overlap": (
        0,
        1024,
        1,
        256,
        "Overlap of the tiles; larger than the biggest cell keeps cells whole at tile borders.",
    ),
}


class _Slider(QWidget):
    """A slider for an int or float parameter, with its value shown beside it."""

    def __init__(self, minimum, maximum, step, value, tooltip, on_change):
        super().__init__()
        self._min, self._step = minimum, step
        self.is_int = isinstance(step, int)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, round((maximum - minimum) / step))
        self.label = QLabel()
        self.label.setMinimumWidth(48)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider)
        layout.addWidget(self.label)
        self.setToolTip(tooltip)
        self.slider.setToolTip(tooltip)
        self.setValue(value)
        self.slider.valueChanged.connect(lambda _: self._changed(on_change))

    def value(self):
        v = self._min + self.slider.value() * self._step
        return int(v) if self.is_int else round(v, 6)

    def setValue(self, value) -> None:
        self.slider.setValue(round((value - self._min) / self._step))
        self.label.setText(str(self.value()))

    def _changed(self, on_change) -> None:
        self.label.setText(str(self.value()))
        on_change()


class Sam2Widget(QWidget):
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

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        model_builder: Callable[..., object] | None = None,
    ):
        super().__init__()
        self.viewer = napari_viewer
        self._models = Sam2ModelCache(model_builder)
        self._engines: dict[int, Sam2Engine] = {}
        self._engine_lock = threading.Lock()
        self._checkpoint: str | None = None
        self._worker = None
        self._segmented = False
        self._position_results: dict[tuple, Sam2Result] = {}
        self._live = LiveRunner(self._show, delay_ms=150, on_error=self._error, parent=self)

        self.model = QComboBox()
        self.model.addItems([*HF_MODELS, LOCAL])
        self.model.setCurrentText(DEFAULT_MODEL)
        self.model.setToolTip(
            "SAM2 model: a Hugging Face id (downloaded once, then cached) "
            "or a local .pt checkpoint."
        )
        self.model.activated.connect(self._model_chosen)
        self.config = QComboBox()
        self.config.addItems(list(HF_MODELS))
        self.config.setToolTip("The model a local checkpoint belongs to (its configuration).")
        self.config.setVisible(False)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setToolTip("Where SAM2 runs; auto picks a GPU when there is one.")
        self.layer = QComboBox()
        self.layer.setToolTip("Image to segment; the channel marked as input by default.")
        self.foreground = QComboBox()
        self.foreground.setToolTip(
            "Optional foreground (U-Net output or a threshold): masks "
            "mostly outside it are background and dropped."
        )
        self.positions = QComboBox()
        self.positions.addItems([CURRENT_POSITION, ALL_POSITIONS])
        self.positions.setToolTip("For tile scans: segment the position shown or all of them.")
        self.order = QComboBox()
        self.order.addItems(["area", "score"])
        self.order.setToolTip(
            "Where masks overlap: 'area' gives pixels to the smaller mask, "
            "'score' to the higher predicted IoU."
        )
        self.order.currentIndexChanged.connect(self._filters_changed)
        self.checks = {
            "multimask_output": QCheckBox("three masks per point"),
            "use_m2m": QCheckBox("refine masks (mask to mask)"),
            "split": QCheckBox("split merged cells (watershed)"),
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

        self.sliders: dict[str, _Slider] = {}
        groups = QVBoxLayout()
        for title, specs in (
            ("Filters (instant)", {**_FILTERS, **_LABELS}),
            ("Decoder (re-runs the decoder)", _DECODER),
            ("Crops and tiles (re-run the encoder on Segment)", _CROPS),
        ):
            box = QGroupBox(title)
            form = QFormLayout(box)
            for name, (lo, hi, step, default, tip) in specs.items():
                live = name not in ENCODER_PARAMS and name not in ("tile_size", "tile_overlap")
                slider = _Slider(
                    lo, hi, step, default, tip, self._filters_changed if live else (lambda: None)
                )
                self.sliders[name] = slider
                form.addRow(name.replace("_", " "), slider)
            if specs is _DECODER:
                form.addRow(self.checks["multimask_output"])
                form.addRow(self.checks["use_m2m"])
            if specs is _CROPS:
                form.addRow("overlaps", self.order)
                form.addRow(self.checks["split"])
            groups.addWidget(box)

        self.segment_button = QPushButton("Segment")
        self.segment_button.setToolTip(
            "Run SAM2 on the image; afterwards the sliders update the labels live."
        )
        self.segment_button.clicked.connect(self.segment)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)

        top = QFormLayout()
        top.addRow("model", self.model)
        top.addRow("configuration", self.config)
        top.addRow("device", self.device)
        top.addRow("image", self.layer)
        top.addRow("foreground", self.foreground)
        top.addRow("positions", self.positions)
        buttons = QHBoxLayout()
        buttons.addWidget(self.segment_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(groups)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._refresh_layers)
        self._refresh_layers()

    # -- choices ---------------------------------------------------------------

    def _refresh_layers(self, event=None) -> None:
        current = self.layer.currentText()
        fg_current = self.foreground.currentText()
        images = [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        self.layer.clear()
        self.layer.addItems([layer.name for layer in images])
        names = [layer.name for layer in images]
        if current in names:
            self.layer.setCurrentText(current)
        else:
            inputs = [layer.name for layer in images if role_of(layer) == "input"]
            if inputs:
                self.layer.setCurrentText(inputs[0])
        self.foreground.clear()
        self.foreground.addItem(NO_FOREGROUND)
        self.foreground.addItems(
            [
                layer.name
                for layer in self.viewer.layers
                if isinstance(layer, Image | Labels) and not layer.name.endswith(" SAM2 masks")
            ]
        )
        self.foreground.setCurrentText(fg_current if fg_current else NO_FOREGROUND)

    def _model_chosen(self, _index=None) -> None:
        local = self.model.currentText() == LOCAL
        if local:
            path, _ = QFileDialog.getOpenFileName(
                self, "SAM2 checkpoint", "", "PyTorch checkpoints (*.pt *.pth)"
            )
            if path:
                self._checkpoint = path
                self.status.setText(f"Checkpoint {Path(path).name}: choose its configuration.")
            else:
                self.model.setCurrentText(DEFAULT_MODEL)
                local = False
        self.config.setVisible(local)

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
        if self._checkpoint is None:
            raise ValueError(
                "No checkpoint chosen: pick 'Local checkpoint…' and select a .pt file."
            )
        return self._checkpoint, self.config.currentText()

    def input_layer(self) -> Image:
        name = self.layer.currentText()
        if not name or name not in self.viewer.layers:
            raise ValueError("No image to segment: open an image or pick one in 'image'.")
        return self.viewer.layers[name]

    def _job(self):
        """Everything a run needs, read in the GUI thread."""
        layer = self.input_layer()
        rgb = bool(layer.rgb)
        lead = layer.ndim - 2
        data = layer.data[-1] if layer.multiscale else layer.data
        index: tuple = ()
        if lead and self.positions.currentText() == CURRENT_POSITION:
            point = layer.world_to_data(self.viewer.dims.point)
            index = tuple(int(np.clip(round(point[i]), 0, data.shape[i] - 1)) for i in range(lead))
        image = np.asarray(data[index] if index else data)
        foreground = None
        if self.foreground.currentText() != NO_FOREGROUND:
            fg_layer = self.viewer.layers[self.foreground.currentText()]
            fg = np.asarray(fg_layer.data[index] if index else fg_layer.data)
            foreground = fg > 0 if isinstance(fg_layer, Labels) else fg
        source, config = self.model_source()
        return dict(
            layer=layer,
            index=index,
            image=image,
            rgb=rgb,
            foreground=foreground,
            source=source,
            config=config,
            device=self.device.currentText(),
            params=self.params(),
            label_params=self.label_params(),
        )

    def _engine(self, source, device, config) -> Sam2Engine:
        with self._engine_lock:
            model = self._models.get(source, device, config)
            engine = self._engines.get(id(model))
            if engine is None:
                engine = self._engines[id(model)] = Sam2Engine(
                    model, model_key=f"{source}|{config}"
                )
            return engine

    def _run(self, job):
        engine = self._engine(job["source"], job["device"], job["config"])
        result = yield from engine.segment_iter(
            job["image"],
            job["params"],
            job["label_params"],
            rgb=job["rgb"],
            foreground=job["foreground"],
        )
        return job, result, dict(engine.runs)

    def segment(self) -> None:
        """Segment the chosen image in a worker; progress and Cancel while it runs."""
        try:
            job = self._job()
        except (ValueError, KeyError) as err:
            show_error(str(err))
            return
        self._live.cancel()
        self.cancel()
        if NO_THREADS:
            try:
                self._first_result(drain(self._run(job)))
            except Exception as err:  # noqa: BLE001 - reported to the user
                self._error(err)
            return
        worker = create_worker(self._run, job, _start_thread=False)
        worker.yielded.connect(self._progress)
        worker.returned.connect(self._first_result)
        worker.errored.connect(self._error)
        worker.finished.connect(lambda: self._finished(worker))
        self._worker = worker
        self.segment_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Loading the model and encoding the image…")
        worker.start()

    def cancel(self) -> None:
        """Stop the running segmentation at its next step."""
        if self._worker is not None:
            self._worker.quit()
            self.status.setText("Cancelled.")

    def _finished(self, worker) -> None:
        if self._worker is worker:
            self._worker = None
            self.segment_button.setEnabled(True)
            self.cancel_button.setEnabled(False)

    def _progress(self, event) -> None:
        stage, done, total = event
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"{stage}: {done}/{total}")

    def _first_result(self, outcome) -> None:
        self._segmented = True
        self._show(outcome)

    def _filters_changed(self, *args) -> None:
        # Live updates only refine a segmentation the user asked for.
        if not self._segmented or self._worker is not None:
            return
        try:
            job = self._job()
        except (ValueError, KeyError) as err:
            show_error(str(err))
            return
        self._live.request(self._run, job)

    def _error(self, err: Exception) -> None:
        show_error(
            f"SAM2 failed: {err} Check the model, device and image choices, then press "
            "Segment again."
        )

    # -- results -----------------------------------------------------------------

    def _show(self, outcome) -> None:
        job, result, runs = outcome
        layer = job["layer"]
        if layer not in self.viewer.layers:
            return
        name = f"{layer.name} SAM2 masks"
        index = job["index"]
        spatial = layer.data.shape[:-1] if layer.rgb else layer.data.shape
        if layer.multiscale:
            spatial = layer.data[-1].shape[:-1] if layer.rgb else layer.data[-1].shape
        labels, features = self._merge_position(name, index, spatial, result)
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == labels.shape:
            out = self.viewer.layers[name]
            out.data = labels
        else:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            out = self.viewer.add_labels(
                labels,
                name=name,
                scale=layer.scale[-labels.ndim :],
                translate=layer.translate[-labels.ndim :],
                units=layer.units[-labels.ndim :],
                axis_labels=layer.axis_labels[-labels.ndim :],
            )
        out.features = features
        n = len(features["index"])
        self.status.setText(
            f"{n} objects from {result.n_masks} masks "
            f"({result.n_candidates} candidates; encoder runs {runs['encoder']}, "
            f"decoder runs {runs['decoder']})."
        )
        if n == 0:
            show_info(
                "SAM2 kept no masks: lower the IoU and stability thresholds or raise the "
                "maximum area fraction."
            )

    def _merge_position(self, name, index, spatial, result: Sam2Result):
        """Full-stack labels and features when one position of a stack was segmented."""
        if not index:
            self._position_results.clear()
            return result.labels, result.features
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == spatial:
            labels = np.array(self.viewer.layers[name].data)
        else:
            labels = np.zeros(spatial, result.labels.dtype)
            self._position_results.clear()
        self._position_results[index] = result
        labels[index] = 0
        offset = int(labels.max())
        plane = result.labels.astype(np.result_type(labels.dtype, np.uint32))
        plane[plane > 0] += offset
        labels = labels.astype(plane.dtype)
        labels[index] = plane
        result.features = {**result.features, "index": result.features["index"] + offset}
        result.features["position"] = np.full(result.features["index"].size, index[0])
        tables = [r.features for r in self._position_results.values()]
        features = {
            k: np.concatenate([t.get(k, np.zeros(0)) for t in tables]) for k in result.features
        }
        return labels, features


__all__ = ["Sam2Widget"]
