"""napari docks to segment with a trained U-Net and to train one.

Both run the Qt-free generators of :mod:`napari_cytomask.models` in a napari
thread worker: progress arrives through ``yielded``, Cancel calls
``worker.quit()`` (the generator stops at its next step) and errors reach the
user as napari notifications.
"""

from __future__ import annotations

import math
from pathlib import Path

import napari
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..models.checkpoint import cache_dir, list_checkpoints, read_description
from ..models.device import available_devices
from ..models.inference import PredictorCache, iter_segment, recommended_settings
from ..pipeline import UNetStep
from ..roles import role_of, source_of

ENCODERS = ("resnet18", "resnet34", "resnet50", "efficientnet-b0", "efficientnet-b3")


def _spin(low: int, high: int, value: int, step: int = 1, special: str | None = None) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


def _fspin(low: float, high: float, value: float, step: float, decimals: int = 2):
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    return box


def _base_data(layer):
    """A layer's full-resolution data."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


class _LayerPicker(QComboBox):
    """A combo box of the viewer's layers of some types, kept in sync with the layer list."""

    def __init__(self, viewer, types, prefer_role: str | None = None):
        super().__init__()
        self._viewer = viewer
        self._types = types
        self._prefer_role = prefer_role
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        self.refresh()

    def layers(self):
        return [layer for layer in self._viewer.layers if isinstance(layer, self._types)]

    def refresh(self, event=None) -> None:
        current = self.currentText()
        names = [layer.name for layer in self.layers()]
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        elif self._prefer_role is not None:
            preferred = [ly.name for ly in self.layers() if role_of(ly) == self._prefer_role]
            if preferred:
                self.setCurrentText(preferred[0])
        self.blockSignals(False)

    def layer(self):
        name = self.currentText()
        return self._viewer.layers[name] if name in self._viewer.layers else None


class _CheckpointPicker(QWidget):
    """Checkpoints of the model folder in a combo box, plus a file dialog for any other file."""

    def __init__(self):
        super().__init__()
        self.combo = QComboBox()
        self.combo.setToolTip("Trained U-Net checkpoints (.safetensors) in the model folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        refresh = QPushButton("↻")
        refresh.setToolTip("List the model folder again")
        refresh.setFixedWidth(32)
        refresh.clicked.connect(self.refresh)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(refresh)
        row.addWidget(browse)
        self.refresh()

    def refresh(self) -> None:
        current = self.path()
        self.combo.clear()
        for path in list_checkpoints():
            self._add(path)
        if current is not None:
            self.set_path(current)

    def _add(self, path: Path) -> None:
        try:
            desc = read_description(path)
        except ValueError as err:
            show_error(str(err))
            return
        val = (desc.get("scores") or {}).get("validation") or {}
        score = f", val F1@0.5 {val['f1_50']:.2f}" if "f1_50" in val else ""
        text = f"{path.stem} ({desc['encoder']}, {desc['in_channels']} ch{score})"
        self.combo.addItem(text, str(path))

    def set_path(self, path) -> None:
        """Select ``path``, adding it to the list when it is not there yet."""
        path = str(path)
        index = self.combo.findData(path)
        if index < 0:
            self._add(Path(path))
            index = self.combo.findData(path)
        if index >= 0:
            self.combo.setCurrentIndex(index)

    def path(self) -> Path | None:
        data = self.combo.currentData()
        return Path(data) if data else None

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a U-Net checkpoint", str(cache_dir()), "Checkpoints (*.safetensors)"
        )
        if path:
            self.set_path(path)


class _RunsWorker(QWidget):
    """A widget whose work runs in a napari thread worker (``self.worker``), with a run
    button, Cancel, a progress bar and a status line."""

    def _run_controls(self, text: str, run) -> QHBoxLayout:
        """Make the controls; returns the row of the run and Cancel buttons."""
        self.run_button = QPushButton(text)
        self.run_button.clicked.connect(run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        return row

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def cancel(self) -> None:
        """Stop the running work after its current step (a batch of tiles, a training step)."""
        if self.worker is not None:
            self.worker.quit()


class UNetSegmentWidget(_RunsWorker):
    """Segment cytoplasm with a trained U-Net: probabilities and instance labels.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are segmented.
    """

    #: Emitted with the cells Labels layer when a run has finished.
    segmented = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._predictors = PredictorCache()
        self.checkpoint = _CheckpointPicker()
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.input = _LayerPicker(napari_viewer, Image, prefer_role="input")
        self.tile_size = _spin(0, 4096, 0, 32, special="from model")
        self.overlap = _spin(0, 1024, 64, 8)
        self.batch_size = _spin(0, 256, 0, special="auto (8 on GPU, 1 on CPU)")
        self.tta = QCheckBox("flip test-time augmentation (4× slower)")
        self.interior_threshold = _fspin(0.01, 0.99, 0.5, 0.05)
        self.foreground_threshold = _fspin(0.01, 0.99, 0.5, 0.05)
        self.min_size = _spin(0, 100000, 0, 10)
        buttons = self._run_controls("Segment cytoplasm", self.segment)

        form = QFormLayout()
        form.addRow("Model", self.checkpoint)
        form.addRow("Device", self.device)
        form.addRow("Input image", self.input)
        form.addRow("Tile size", self.tile_size)
        form.addRow("Tile overlap", self.overlap)
        form.addRow("Tiles per batch", self.batch_size)
        form.addRow(self.tta)
        post = QGroupBox("Cells from probabilities")
        post_form = QFormLayout(post)
        post_form.addRow("Interior threshold", self.interior_threshold)
        post_form.addRow("Foreground threshold", self.foreground_threshold)
        post_form.addRow("Minimum cell size (px)", self.min_size)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(post)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()
        self.checkpoint.combo.currentIndexChanged.connect(self._use_model_settings)
        self._use_model_settings()

    def _use_model_settings(self) -> None:
        """Show the post-processing settings the selected checkpoint recommends."""
        path = self.checkpoint.path()
        if path is None:
            return
        try:
            description = read_description(path)
        except ValueError:
            return  # the picker has said what is wrong with the file
        settings = recommended_settings(description)
        self.interior_threshold.setValue(settings["interior_threshold"])
        self.foreground_threshold.setValue(settings["foreground_threshold"])
        self.min_size.setValue(int(settings["min_size"]))

    def _channels(self, layer, n: int) -> list:
        """The ``n`` input arrays: the layer, then other image channels of the same scan."""
        data = _base_data(layer)
        if layer.rgb:
            return [data[..., c] for c in range(min(n, data.shape[-1]))]
        channels = [data]
        if n > 1:
            source = source_of(layer)
            others = [
                ly
                for ly in self.viewer.layers
                if ly is not layer
                and isinstance(ly, Image)
                and source is not None
                and source_of(ly) == source
                and role_of(ly) in ("input", "image")
            ]
            channels += [_base_data(ly) for ly in others[: n - 1]]
        return channels

    def step(self) -> UNetStep:
        """The model and settings the widget shows.

        Raises
        ------
        ValueError
            When no model is selected.
        """
        path = self.checkpoint.path()
        if path is None:
            raise ValueError(
                "No U-Net model is selected: train one with 'Train a U-Net' or pick a "
                ".safetensors file with Browse…."
            )
        return UNetStep(
            model=str(path),
            tile_size=self.tile_size.value() or None,
            overlap=self.overlap.value(),
            batch_size=self.batch_size.value(),
            tta=self.tta.isChecked(),
            interior_threshold=self.interior_threshold.value(),
            foreground_threshold=self.foreground_threshold.value(),
            min_size=self.min_size.value(),
        )

    def segment(self) -> None:
        """Start segmenting the input layer in a worker thread."""
        layer = self.input.layer()
        if layer is None:
            show_error("No image to segment: open an image or tile scan first.")
            return
        try:
            step = self.step()
        except ValueError as err:
            show_error(str(err))
            return
        if self.worker is not None:
            return
        worker = create_worker(
            self._run, step, self.device.currentText(), layer, _start_thread=False
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda result: self._on_result(layer, result))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True)
        self.status.setText(f"Segmenting {layer.name}…")
        self.progress.setValue(0)
        worker.start()

    def _run(self, step: UNetStep, device, layer):
        predictor = self._predictors.get(step.model, device)
        channels = self._channels(layer, predictor.config.in_channels)
        kwargs = step.segment_kwargs(predictor)
        return (yield from iter_segment(predictor, channels, **kwargs))

    def _on_progress(self, progress) -> None:
        stage = "tiles" if progress.stage == "predict" else "cells"
        self.progress.setMaximum(max(progress.total, 1))
        self.progress.setValue(progress.done)
        self.status.setText(f"{stage}: {progress.done} of {progress.total}")

    def _on_result(self, layer, result) -> None:
        # Outputs keep the input's geometry so they line up with the scan.
        geometry = ("scale", "translate", "units", "axis_labels")
        kwargs = {key: tuple(getattr(layer, key)) for key in geometry}
        if layer.rgb:
            kwargs = {key: value[:-1] for key, value in kwargs.items()}
        for k, name in enumerate(result.classes):
            if name == "background":
                continue
            self._show(
                Image,
                f"{layer.name} U-Net {name}",
                np.asarray(result.probabilities[k]),
                colormap="magma",
                blending="additive",
                contrast_limits=(0, 1),
                visible=False,
                **kwargs,
            )
        cells = self._show(Labels, f"{layer.name} U-Net cells", result.labels, **kwargs)
        n = int(np.asarray(result.labels).max(initial=0))
        self.status.setText(f"{n} cells in '{cells.name}'.")
        self.segmented.emit(cells)

    def _show(self, kind, name, data, **kwargs):
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], kind):
            existing = self.viewer.layers[name]
            existing.data = data
            return existing
        add = self.viewer.add_labels if kind is Labels else self.viewer.add_image
        if kind is Labels:
            kwargs = {k: v for k, v in kwargs.items() if k in ("scale", "translate", "units",
                                                                "axis_labels")}  # fmt: skip
        return add(data, name=name, **kwargs)

    def _on_error(self, err) -> None:
        self.status.setText("Segmentation failed.")
        show_error(f"U-Net segmentation failed: {err}")

    def _on_finished(self) -> None:
        if self.worker is not None and self.worker.abort_requested:
            self.status.setText("Cancelled.")
        self.worker = None
        self._set_running(False)


class UNetTrainWidget(_RunsWorker):
    """Train a U-Net on napari layers or on folders of images, with a live loss plot.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers can be used as training data.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result = None
        self.losses: list[tuple[int, float]] = []
        self.scores: list[tuple[int, float]] = []

        self.source = QComboBox()
        self.source.addItems(["Layers", "Folders"])
        self.image_layer = _LayerPicker(napari_viewer, Image, prefer_role="input")
        self.mask_layer = _LayerPicker(napari_viewer, Labels, prefer_role="mask")
        self.image_pattern = QLineEdit()
        self.image_pattern.setPlaceholderText("e.g. /data/set*/raw.tif")
        self.mask_pattern = QLineEdit()
        self.mask_pattern.setPlaceholderText("e.g. /data/set*/instances_ids.png")
        self.encoder = QComboBox()
        self.encoder.setEditable(True)
        self.encoder.addItems(ENCODERS)
        self.encoder.setCurrentText("resnet34")
        self.encoder_depth = _spin(3, 5, 5)
        self.targets = QComboBox()
        self.targets.addItems(["interior_boundary", "foreground"])
        self.pretrained = QCheckBox("start from ImageNet encoder weights (when available)")
        self.pretrained.setChecked(True)
        self.epochs = _spin(1, 10000, 50)
        self.steps = _spin(1, 100000, 100)
        self.batch_size = _spin(1, 256, 8)
        self.crop_size = _spin(32, 2048, 256, 32)
        self.learning_rate = _fspin(1e-5, 1.0, 1e-3, 1e-4, decimals=5)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.output = QLineEdit()
        self.output.setPlaceholderText(f"new file in {cache_dir()}")
        self.resume = QLineEdit()
        self.resume.setPlaceholderText("optional: a checkpoint to continue")
        resume_browse = QPushButton("Browse…")
        resume_browse.clicked.connect(self._browse_resume)
        buttons = self._run_controls("Train", self.train)
        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.loss_axes = self.figure.add_subplot(111)
        self.score_axes = self.loss_axes.twinx()

        form = QFormLayout()
        form.addRow("Data from", self.source)
        self._layer_rows = [("Image layer", self.image_layer), ("Mask layer", self.mask_layer)]
        self._folder_rows = [
            ("Images (glob)", self.image_pattern),
            ("Masks (glob)", self.mask_pattern),
        ]
        for label, widget in self._layer_rows + self._folder_rows:
            form.addRow(label, widget)
        self._form = form
        form.addRow("Encoder", self.encoder)
        form.addRow("Encoder depth", self.encoder_depth)
        form.addRow("Targets", self.targets)
        form.addRow(self.pretrained)
        form.addRow("Epochs", self.epochs)
        form.addRow("Steps per epoch", self.steps)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Crop size", self.crop_size)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Device", self.device)
        form.addRow("Save as", self.output)
        resume_row = QHBoxLayout()
        resume_row.addWidget(self.resume, 1)
        resume_row.addWidget(resume_browse)
        form.addRow("Resume from", resume_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.canvas)
        self.source.currentTextChanged.connect(self._show_source)
        self._show_source(self.source.currentText())

    def _show_source(self, source: str) -> None:
        for rows, visible in (
            (self._layer_rows, source == "Layers"),
            (self._folder_rows, source == "Folders"),
        ):
            for _, widget in rows:
                widget.setVisible(visible)
                self._form.labelForField(widget).setVisible(visible)

    def _browse_resume(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Continue training a checkpoint", str(cache_dir()), "Checkpoints (*.safetensors)"
        )
        if path:
            self.resume.setText(path)

    def _samples(self):
        from ..models.training import samples_from_arrays, samples_from_folders

        if self.source.currentText() == "Folders":
            images, masks = self.image_pattern.text().strip(), self.mask_pattern.text().strip()
            if not images or not masks:
                raise ValueError("Enter glob patterns for both the images and the masks.")
            return samples_from_folders(images, masks), [images, masks]
        image, mask = self.image_layer.layer(), self.mask_layer.layer()
        if image is None or mask is None:
            raise ValueError(
                "Pick an image layer and a mask (Labels) layer with instance labels, or "
                "train from folders."
            )
        data = _base_data(image)
        samples = samples_from_arrays(
            data,
            np.asarray(_base_data(mask)),
            image.name,
            channel_axis=-1 if image.rgb else None,
        )
        return samples, [f"layer {image.name}", f"layer {mask.name}"]

    def train(self) -> None:
        """Start training in a worker thread."""
        from ..models.training import TrainingSettings, iter_train
        from ..models.unet import UNetConfig

        if self.worker is not None:
            return
        try:
            samples, sources = self._samples()
            config = UNetConfig(
                encoder=self.encoder.currentText().strip(),
                encoder_depth=self.encoder_depth.value(),
                targets=self.targets.currentText(),
                tile_size=self.crop_size.value(),
            )
            settings = TrainingSettings(
                epochs=self.epochs.value(),
                steps_per_epoch=self.steps.value(),
                batch_size=self.batch_size.value(),
                crop_size=self.crop_size.value(),
                learning_rate=self.learning_rate.value(),
                encoder_weights="imagenet" if self.pretrained.isChecked() else None,
                device=self.device.currentText(),
            )
            settings.validate()
        except ValueError as err:
            show_error(str(err))
            return
        output = self.output.text().strip() or None
        resume = self.resume.text().strip() or None
        worker = create_worker(
            iter_train,
            samples,
            output,
            config,
            settings,
            resume=resume,
            sources=sources,
            _start_thread=False,
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.result = None
        self.losses, self.scores = [], []
        self._first_epoch: int | None = None
        self._checkpoint: Path | None = None
        self._plot()
        self._set_running(True)
        self.progress.setMaximum(settings.epochs * settings.steps_per_epoch)
        self.progress.setValue(0)
        self.status.setText(f"Training on {len(samples)} image(s)…")
        worker.start()

    def _on_progress(self, p) -> None:
        if p.phase == "notice":
            show_info(p.message)
            return
        if p.phase == "train":
            if self._first_epoch is None:  # a resumed run goes on counting epochs
                self._first_epoch = p.epoch
            self.losses.append((p.global_step, p.loss))
            self.progress.setValue((p.epoch - self._first_epoch) * p.steps + p.step)
            self.status.setText(f"epoch {p.epoch}/{p.epochs}, step {p.step}: loss {p.loss:.4f}")
            if p.step % 5 == 0 or p.step == p.steps:
                self._plot()
        elif p.phase == "validate":
            self.status.setText(f"epoch {p.epoch}: validating image {p.step} of {p.steps}")
        elif p.phase == "tune":
            self.status.setText(
                f"Choosing the post-processing thresholds on the validation images: "
                f"{p.step} of {p.steps}"
            )
        elif p.phase == "epoch":
            self._checkpoint = p.checkpoint
            if p.validation:
                self.scores.append((p.global_step, p.validation["mean_average_f1"]))
                saved = " (best so far, saved)" if p.improved else ""
                self.status.setText(
                    f"epoch {p.epoch}: validation mean-average F1 "
                    f"{p.validation['mean_average_f1']:.3f}{saved}"
                )
            self._plot()

    def _plot(self) -> None:
        self.loss_axes.clear()
        self.score_axes.clear()
        if self.losses:
            steps, losses = zip(*self.losses, strict=True)
            self.loss_axes.plot(steps, losses, color="tab:blue", lw=1, label="training loss")
        if self.scores:
            steps, scores = zip(*self.scores, strict=True)
            self.score_axes.plot(steps, scores, "o-", color="tab:orange", label="val mean-avg F1")
            self.score_axes.set_ylim(0, 1)
        self.loss_axes.set_xlabel("step")
        self.loss_axes.set_ylabel("loss", color="tab:blue")
        self.score_axes.set_ylabel("val mAF1", color="tab:orange")
        self.score_axes.yaxis.set_label_position("right")
        self.canvas.draw_idle()

    def _on_result(self, result) -> None:
        self.result = result
        val = (result.description.get("scores") or {}).get("validation") or {}
        score = val.get("mean_average_f1", math.nan)
        tuned = result.description.get("postprocess")
        thresholds = (
            f" Thresholds chosen on the validation images: interior "
            f"{tuned['interior_threshold']:g}, foreground {tuned['foreground_threshold']:g}, "
            f"minimum cell size {tuned['min_size']} px."
            if tuned
            else ""
        )
        self.status.setText(
            f"Saved {result.checkpoint} (best validation mean-average F1 {score:.3f}); "
            f"use it in 'Segment cytoplasm (U-Net)'.{thresholds}"
        )

    def _on_error(self, err) -> None:
        self.status.setText("Training failed.")
        show_error(f"U-Net training failed: {err}")

    def _on_finished(self) -> None:
        if self.worker is not None and self.worker.abort_requested:
            if self._checkpoint is None:
                self.status.setText("Cancelled before the first epoch ended; nothing was saved.")
            else:
                # Offer to go on: the training state beside the checkpoint resumes exactly.
                self.resume.setText(str(self._checkpoint))
                self.status.setText(
                    f"Cancelled; the best network so far is in {self._checkpoint}. "
                    "Press Train to continue from the last finished epoch."
                )
        self.worker = None
        self._set_running(False)


__all__ = ["UNetSegmentWidget", "UNetTrainWidget"]
