"""Training and segmenting with the U-Net docks in a real viewer (tiny settings)."""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from unittest.mock import patch

import numpy as np
import pytest
import tifffile
import torch
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QWidget

from napari_cytomask._qt._live import StepControls
from napari_cytomask._qt.unet_widgets import (
    START_CHECKPOINT,
    START_RANDOM,
    START_STARTER,
    TRAINING_DEFAULTS,
    UNetSegmentWidget,
    UNetTrainWidget,
)
from napari_cytomask.io.export import from_layer
from napari_cytomask.io.layers import layer_info, pixel_size_um, probability_of
from napari_cytomask.models.catalog import (
    STARTER,
    STARTER_CONFIDENCE_NO_TTA,
    resolve_unet,
    unet_models,
)
from napari_cytomask.models.checkpoint import (
    DIR_ENV,
    list_checkpoints,
    read_description,
    save_checkpoint,
)
from napari_cytomask.models.inference import UNetPredictor, recommended_settings
from napari_cytomask.models.training import state_path
from napari_cytomask.progress import duration
from napari_cytomask.synthetic import make_tilescan

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "models"
    torch.set_num_threads(before)


def _tiny_training(widget: UNetTrainWidget) -> None:
    widget.start_from.setCurrentText(START_RANDOM)
    widget.encoder.setCurrentText("tu-resnet10t")
    widget.encoder_depth.setValue(3)
    widget.pretrained.setChecked(False)
    widget.epochs.setValue(1)
    widget.steps.setValue(3)
    widget.batch_size.setValue(2)
    widget.crop_size.setValue(64)
    widget.device.setCurrentText("cpu")


def _tiny_run(viewer, output, epochs: int) -> UNetTrainWidget:
    """A Train tab on labelled layers in ``viewer``, set for a tiny run of ``epochs``
    into ``output``."""
    _labelled_layers(viewer)
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.epochs.setValue(epochs)
    trainer.output.setText(str(output))
    return trainer


def _fine_tune(trainer: UNetTrainWidget, checkpoint, qtbot) -> None:
    """A tiny training run from ``checkpoint``'s weights, to its end."""
    _tiny_training(trainer)
    trainer.start_from.setCurrentText(START_CHECKPOINT)
    trainer.init_path.setText(str(checkpoint))
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()


def _labelled_layers(viewer, name: str = "img", **geometry):
    """A small synthetic image and its mask as layers (``geometry``: their scale, units)."""
    scan = make_tilescan(n_tiles=1, shape=(128, 96), seed=1)
    viewer.add_image(scan.brightfield[0], name=name, **geometry)
    viewer.add_labels(scan.labels[0], name="mask", **geometry)
    return scan


def _recording(checkpoint, **training):
    """``checkpoint`` with ``training`` as its description's training record."""
    from napari_cytomask.models.checkpoint import load_checkpoint

    model, description = load_checkpoint(checkpoint)
    description["training"] = training
    save_checkpoint(checkpoint, model, description)
    return checkpoint


def test_train_then_segment_in_a_viewer(make_napari_viewer, qtbot, model_folder, monkeypatch):
    from napari_cytomask.models import training

    # Three steps make no model that finds most cells, which would not be selected.
    monkeypatch.setattr(training, "USABLE_F1", 0.0)
    viewer = make_napari_viewer(show=True)
    scan = make_tilescan(n_tiles=3, shape=(96, 96), cell_radius=10, seed=3)
    viewer.add_image(scan.fluorescence, name="GFP")
    viewer.add_image(
        scan.brightfield, name="BF", metadata={"cytomask": {"role": "input", "source": "s"}},
        scale=(1, 0.65, 0.65), units=("pixel", "µm", "µm"),
    )  # fmt: skip
    viewer.add_labels(scan.labels, name="cells (ground truth)")

    segmenter = UNetSegmentWidget(viewer)
    viewer.window.add_dock_widget(segmenter)
    trainer = segmenter.trainer  # training is part of the segmentation step
    segmenter.train_button.click()
    assert segmenter.tabs.currentWidget() is trainer
    assert trainer.image_layer.currentText() == "BF"  # the input channel by default
    assert trainer.mask_layer.currentText() == "cells (ground truth)"
    _tiny_training(trainer)
    trainer.train()
    # Which images validate; none is held back for testing, which the dock never scores
    # (one of three was, leaving one to train on).
    assert re.match(r"Training on 2 image\(s\), validating on 1 \(BF\[\d\]\): about ",
                    trainer.status.text()), trainer.status.text()  # fmt: skip
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()
    assert trainer.result.description["training"]["split"]["test"] == []
    assert len(trainer.losses) == 3 and len(trainer.scores) == 1
    saved = list_checkpoints()
    assert saved == [trainer.result.checkpoint] and saved[0].parent == model_folder
    split = trainer.result.description["training"]["split"]
    assert sorted(sum(split.values(), [])) == ["BF[0]", "BF[1]", "BF[2]"]
    tuned = trainer.result.description["postprocess"]
    assert tuned["tuned_on"] == split["validation"]
    # The layer's pixel size goes with the model: images at others are resampled to it.
    assert trainer.result.description["training"]["pixel_size_um"] == (0.65, 0.65)
    assert "with the thresholds chosen on the validation images" in trainer.status.text()
    # The split said as the run started is said again: its steps' status covered it.
    assert f"Trained on 2 image(s), validated on 1 ({split['validation'][0]})." in (
        trainer.status.text()
    )

    # The new model is selected, ready to segment, with what its training said.
    assert segmenter.tabs.currentIndex() == 0
    segmenter.tabs.setCurrentWidget(trainer)
    trainer.tabs.setCurrentWidget(trainer.canvas)  # the plot, drawn once shown
    assert len(trainer.loss_axes.lines) == 1 and len(trainer.score_axes.lines) == 1
    segmenter.tabs.setCurrentIndex(0)
    # Its gist: the whole summary squeezed the Segment tab's settings out of sight.
    assert segmenter.status.text().endswith(f"press Segment cytoplasm. {trainer.headline}")
    assert trainer.headline == (
        trainer.summary[: trainer.summary.index(" with the thresholds")]
        + ". The Train a model tab says more."
    )
    assert segmenter.input.currentText() == "BF"
    assert segmenter.checkpoint.path() == saved[0]
    assert segmenter.min_size.value() == tuned["min_size"]
    segmenter.device.setCurrentText("cpu")
    segmenter.overlap.setValue(32)
    segmenter.show_maps.setChecked(True)
    segmenter.segment()
    qtbot.waitUntil(lambda: segmenter.worker is None, timeout=60_000)
    cells = viewer.layers["BF U-Net cells"]
    assert isinstance(cells, Labels) and cells.data.shape == scan.brightfield.shape
    # What "from the model" and "auto" came to is recorded (tile_size was None).
    parameters = layer_info(cells)["parameters"]
    assert parameters["tile_size"] is None and parameters["batch_size"] == 0
    model_tile = UNetPredictor.from_checkpoint(saved[0], "cpu").config.tile_size
    assert parameters["tiling"] == {
        "tile_size": model_tile,
        "largest_tile": model_tile * 5 // 4,  # fitted to the image
        "batch_size": 1,
    }
    interior = viewer.layers["BF U-Net interior"]
    assert isinstance(interior, Image) and interior.data.shape == scan.brightfield.shape
    # Each map says which it is, for the split step to pair them.
    maps = [viewer.layers[f"BF U-Net {name}"] for name in ("interior", "boundary")]
    assert [probability_of(layer) for layer in maps] == ["interior", "boundary"]
    assert probability_of(cells) is None
    assert np.all((interior.data >= 0) & (interior.data <= 1))
    assert segmenter.progress.value() == segmenter.progress.maximum()

    # Running again updates the same layers instead of piling up new ones.
    n_layers = len(viewer.layers)
    segmenter.segment()
    qtbot.waitUntil(lambda: segmenter.worker is None, timeout=60_000)
    assert len(viewer.layers) == n_layers


def test_training_on_one_image_says_what_it_held_back(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    _labelled_layers(viewer)
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    offered = []
    trainer.trained.connect(offered.append)
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()
    assert len(trainer.scores) == 1  # a validation score to plot
    text = trainer.status.text()
    # Its scores with the thresholds it segments with, and those its epochs were compared
    # at (a fine-tuned model said 0.129 for the 0.498 it scored with its own).
    description = trainer.result.description
    tuned = description["postprocess"]
    chosen = tuned["scores"]["tuned"]
    compared = description["scores"]["validation"]["mean_average_f1"]
    assert tuned["scores"]["default"]["mean_average_f1"] == compared
    assert (
        f"Validation mean-average F1 {chosen['mean_average_f1']:.3f}, F1@0.5 "
        f"{chosen['f1_50']:.2f} with the thresholds chosen on the validation images: interior "
        f"{tuned['interior_threshold']:g}, foreground {tuned['foreground_threshold']:g}, "
        f"minimum cell size {tuned['min_size']} px (its epochs were compared at the default "
        f"thresholds, where it scored {compared:.3f})."
    ) in text
    assert "With one image, its rows 96-127 were held back from training to validate on." in text
    # A few steps on one image: the user is told the model is not ready yet.
    assert chosen["f1_50"] < 0.5
    assert "This model is not ready yet: on the validation images it finds" in text
    assert trainer.summary in text and trainer.summary.startswith("Validation mean-average")
    # The model list gives the same score.
    segmenter = UNetSegmentWidget(viewer)
    segmenter.checkpoint.set_model(trainer.result.checkpoint)
    combo = segmenter.checkpoint.combo
    tip = combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
    assert f", validation F1@0.5 {chosen['f1_50']:.2f}); it finds few of its validation" in tip
    # Not ready, it is marked so in the list: it looked like every other model there.
    assert combo.currentText().endswith(" (not ready)")
    # Nor is it made the model to segment with, which a fine-tuned model that found none
    # of the validation images' cells was (and remembered for the next session).
    assert offered == []
    assert trainer.summary.endswith(
        "It is not selected for segmenting: to use it anyway, pick it in the Segment tab (its "
        "model list, or Open… for a file outside the model folder)."
    )


def test_a_training_state_the_disk_had_no_room_for_is_said_at_the_end(
    make_napari_viewer_proxy, qtbot, monkeypatch
):
    """Said after an epoch, the note that the training state could not be saved was written
    over by the next step's progress and left out of the run's summary: the dock's user
    never saw it."""
    import errno

    from napari_cytomask.io.atomic import WriteError
    from napari_cytomask.models import training

    def no_room(checkpoint, state):
        raise WriteError(errno.ENOSPC, "Could not save the state: the disk is full.")

    monkeypatch.setattr(training, "_write_state", no_room)
    viewer = make_napari_viewer_proxy()
    _labelled_layers(viewer)
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()
    said = "The training state could not be saved beside"
    assert said in trainer.summary and said in trainer.status.text()
    assert trainer.summary.count(said) == 1


def test_frames_without_a_cell_are_left_out_of_training_and_said(
    make_napari_viewer_proxy, qtbot, model_folder
):
    """Cells painted in one position of a tile scan: the others, unlabelled, were trained as
    background and validated against (validation mean-average F1 0.000, no word)."""
    viewer = make_napari_viewer_proxy()
    scan = make_tilescan(n_tiles=4, shape=(96, 96), cell_radius=10, seed=3)
    viewer.add_image(scan.brightfield, name="BF")
    painted = np.zeros_like(scan.labels)
    painted[[1, 2]] = scan.labels[[1, 2]]
    viewer.add_labels(painted, name="my cells")
    trainer = UNetTrainWidget(viewer)
    trainer.image_layer.setCurrentText("BF")
    trainer.mask_layer.setCurrentText("my cells")
    _tiny_training(trainer)
    trainer.train()
    left_out = (
        "2 of the 4 frames of 'my cells' hold no cell and are left out (frames 0, 3): "
        "unlabelled, their cells would be learnt as background."
    )
    assert left_out in trainer.status.text()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()
    split = trainer.result.description["training"]["split"]
    assert sorted(sum(split.values(), [])) == ["BF[1]", "BF[2]"]
    assert left_out[:1].upper() + left_out[1:] in trainer.summary


def _said_as_training_starts(trainer, monkeypatch, note: str) -> None:
    """Start training (its run left out): ``note`` ends the status line, and is kept to be
    said again with the result."""
    monkeypatch.setattr(trainer.runner, "run_now", lambda *args, **kwargs: None)
    trainer.train()
    assert trainer.status.text().endswith(f" {note}")
    assert trainer._notes == [note]


def test_a_mask_that_does_not_line_up_with_its_image_is_noted_before_training(
    make_napari_viewer_proxy, monkeypatch
):
    """A mask moved 50 µm off its image, or at twice its pixel size, was trained on without
    a word, though the metrics dock notes such a pair; one of another shape was refused in
    the metrics' words ("compare labels of the same image")."""
    viewer = make_napari_viewer_proxy()
    scan = _labelled_layers(viewer, scale=(0.87, 0.87), units="µm")
    trainer = UNetTrainWidget(viewer)
    assert trainer._samples()[2] == []
    viewer.layers["mask"].translate = (0, 50)
    moved = (
        "Note: 'img' and 'mask' do not line up in the viewer (their translation differs), "
        "yet are paired pixel by pixel to train on."
    )
    assert trainer._samples()[2] == [moved]
    _said_as_training_starts(trainer, monkeypatch, moved)
    viewer.add_labels(scan.labels[0], name="coarse", scale=(1.74, 1.74), units="µm")
    trainer.mask_layer.setCurrentText("coarse")
    assert trainer._samples()[2] == [
        moved.replace("mask", "coarse").replace("translation", "scale")
    ]
    viewer.add_labels(scan.labels[0][:64], name="cropped", scale=(0.87, 0.87), units="µm")
    trainer.mask_layer.setCurrentText("cropped")
    refused = r"has shape \(64, 96\); train on a mask of the same image \(same channel"
    with pytest.raises(ValueError, match=refused):
        trainer._samples()


def test_a_mask_of_another_field_left_open_is_noted_before_training(
    make_napari_viewer_proxy, monkeypatch, tmp_path
):
    """A long day: set1's mask left open, set2's image opened, and the Train tab paired
    them without a word (the metrics note such a pair): the network would learn set2's
    pixels with set1's cells. A mask beside its image is no note."""
    from napari.layers._source import layer_source

    scan = make_tilescan(n_tiles=1, shape=(128, 96), seed=1)
    viewer = make_napari_viewer_proxy()
    for name in ("set1", "set2"):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "raw.tif", scan.brightfield[0])
    with layer_source(path=str(tmp_path / "set1" / "instances_ids.png")):
        viewer.add_labels(scan.labels[0], name="instances_ids")
    viewer.open(tmp_path / "set2" / "raw.tif", plugin="napari-cytomask")
    trainer = UNetTrainWidget(viewer)
    assert (trainer.image_layer.currentText(), trainer.mask_layer.currentText()) == (
        "raw",
        "instances_ids",
    )
    other = (
        "Note: 'instances_ids' comes from set1/instances_ids.png and 'raw' from set2/raw.tif: "
        "unless set1/instances_ids.png holds the cells of that same field, the network "
        "learns another field's cells; cancel and pick a mask of set2/raw.tif."
    )
    warned = []
    monkeypatch.setattr("napari_cytomask._qt.unet_widgets.show_warning", warned.append)
    assert trainer._samples()[2] == [other]
    _said_as_training_starts(trainer, monkeypatch, other)
    assert warned == [other, other]  # a notification too: the run's progress takes the line
    with layer_source(path=str(tmp_path / "set2" / "instances_ids.png")):
        viewer.add_labels(scan.labels[0], name="its own")
    trainer.mask_layer.setCurrentText("its own")
    assert trainer._samples()[2] == []


def test_a_binary_mask_layer_is_trained_on_by_its_regions_and_said(
    make_napari_viewer_proxy, qtbot, model_folder
):
    """A thresholded mask (0/1) was trained and validated on as one cell per image, so
    every network scored mean-average F1 0.000; the training tab said nothing of it."""
    from skimage.measure import label

    viewer = make_napari_viewer_proxy()
    scan = _labelled_layers(viewer)
    viewer.layers["mask"].data = (scan.labels[0] > 0).astype(np.uint8)
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    regions = label(scan.labels[0] > 0, connectivity=1).max()
    note = (
        f"Mask 'mask' holds one value (1) for every cell, a binary mask: its {regions} "
        "separate regions are taken as the cells (cells that touch stay one)."
    )
    assert regions > 1
    trainer.train()
    assert note in trainer.status.text()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()
    assert trainer.summary.endswith(note)


def test_fine_tuning_on_layers_of_another_pixel_size_says_they_were_resampled(
    make_napari_viewer_proxy, qtbot, model_folder, unet_checkpoint
):
    """Training's notes (images resampled to the model's pixel size) flashed by in the
    status line and were gone once the first step was reported."""
    base = _recording(unet_checkpoint(), pixel_size_um=[0.5, 0.5])
    viewer = make_napari_viewer_proxy()
    _labelled_layers(viewer, scale=(1, 1), units="µm")
    trainer = UNetTrainWidget(viewer)
    _fine_tune(trainer, base, qtbot)
    assert trainer.summary.endswith(
        " The image(s) with 1 µm pixels were resampled to the 0.5 µm pixels the network "
        "learnt cells at, as segmenting resamples images for it."
    )
    assert trainer.summary in trainer.status.text()
    assert read_description(trainer.result.checkpoint)["training"]["pixel_size_um"] == [0.5, 0.5]


def test_colour_pictures_in_folders_fine_tune_a_model_of_one_channel_in_grey(
    make_napari_viewer_proxy, tmp_path
):
    """Layers of colour pictures were given to the starter model in grey, but folders of
    them were refused ("expects 1 input channel(s) but 3 were given")."""
    from skimage import io as skio

    viewer = make_napari_viewer_proxy()
    trainer = UNetTrainWidget(viewer)
    trainer.source.setCurrentText("Folders")
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=0)
    grey = (scan.brightfield[0] / scan.brightfield[0].max() * 255).astype(np.uint8)
    skio.imsave(tmp_path / "img0.png", np.stack([grey, grey // 2, grey], axis=-1))
    tifffile.imwrite(tmp_path / "mask0.tif", scan.labels[0])
    trainer.image_pattern.setText(str(tmp_path / "img*.png"))
    trainer.mask_pattern.setText(str(tmp_path / "mask*.tif"))
    trainer.start_from.setCurrentText(START_STARTER)
    samples, _, notes = trainer._samples()
    assert samples[0].channels.shape == (1, 96, 96)
    assert notes == [
        "The 1 colour picture(s) are learnt from in grey, as segmenting gives them to the "
        "model training starts from, which takes one channel."
    ]
    trainer.start_from.setCurrentText(START_RANDOM)  # a network of their three colours
    assert trainer._samples()[0][0].channels.shape == (3, 96, 96)


def test_relative_patterns_are_recorded_as_the_folders_they_were_matched_in(
    make_napari_viewer_proxy, tmp_path, monkeypatch
):
    """Typed relative to the folder napari was started in, the patterns were recorded in
    the model as typed ("data/img*.tif"), which names nothing where the model is used
    later; cytomask train records them absolute."""
    monkeypatch.chdir(tmp_path)
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=0)
    (tmp_path / "data").mkdir()
    tifffile.imwrite(tmp_path / "data" / "img0.tif", scan.brightfield[0])
    tifffile.imwrite(tmp_path / "data" / "mask0.tif", scan.labels[0])
    trainer = UNetTrainWidget(make_napari_viewer_proxy())
    trainer.source.setCurrentText("Folders")
    trainer.image_pattern.setText("data/img*.tif")
    trainer.mask_pattern.setText("data/mask*.tif")
    _, sources, _ = trainer._samples()
    data = os.path.join(os.getcwd(), "data")
    assert sources == [os.path.join(data, "img*.tif"), os.path.join(data, "mask*.tif")]


def test_a_pixel_size_given_for_a_layer_reaches_fine_tuning(
    make_napari_viewer_proxy, qtbot, model_folder, unet_checkpoint, tmp_path
):
    """The training tab had no pixel size: a layer that lost its own was taken to be at the
    model's, so fine-tuning learnt its cells at the wrong size, though step 2 had been told
    the right one; nor could resampling be turned off there."""
    base = _recording(unet_checkpoint(), pixel_size_um=[0.5, 0.5])
    viewer = make_napari_viewer_proxy()
    scan = _labelled_layers(viewer, "lost")  # its pixel size lost
    segmenter = UNetSegmentWidget(viewer)
    trainer = segmenter.trainer
    assert trainer.pixels.box.text() == "not in image"
    # The size typed in step 2 for this layer holds for training on it.
    segmenter.pixel_size.setValue(1.0)
    assert trainer.pixels.box.value() == 1.0
    _fine_tune(trainer, base, qtbot)
    assert trainer.summary.endswith(
        " The image(s) with 1 µm pixels were resampled to the 0.5 µm pixels the network "
        "learnt cells at, as segmenting resamples images for it."
    )
    assert read_description(trainer.result.checkpoint)["training"]["pixel_size_um"] == [0.5, 0.5]
    # Unticked, the model learns the images' own pixels, and records them.
    assert trainer.pixels.resample.isEnabled()
    trainer.pixels.resample.setChecked(False)
    trainer.output.setText(str(tmp_path / "own-pixels.safetensors"))
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert "resampled" not in trainer.summary
    recorded = read_description(trainer.result.checkpoint)["training"]["pixel_size_um"]
    assert recorded == [1.0, 1.0]
    # Random weights learn the images' pixels whatever the switch says.
    trainer.start_from.setCurrentText(START_RANDOM)
    assert not trainer.pixels.resample.isEnabled()
    # Files: the box gives the size of every image, in place of what the files record.
    trainer.source.setCurrentText("Folders")
    assert trainer.pixels.box.text() == "from the files"
    for i, (image, labels) in enumerate(zip(scan.brightfield, scan.labels, strict=True)):
        tifffile.imwrite(tmp_path / f"img{i}.tif", image, imagej=True,
                         resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "um"})  # fmt: skip
        tifffile.imwrite(tmp_path / f"mask{i}.tif", labels)
    trainer.image_pattern.setText(str(tmp_path / "img*.tif"))
    trainer.mask_pattern.setText(str(tmp_path / "mask*.tif"))
    assert [s.pixel_size_um for s in trainer._samples()[0]] == [pytest.approx((0.3, 0.3))]
    trainer.pixels.box.setValue(0.6)
    assert [s.pixel_size_um for s in trainer._samples()[0]] == [(0.6, 0.6)]
    # The layers are not the files': a layer opened or closed leaves the box to them.
    viewer.add_image(scan.brightfield[0], name="another")
    viewer.layers.move(len(viewer.layers) - 1, 0)  # "lost" is offered second now
    viewer.layers.remove("mask")
    assert trainer.image_layer.currentText() == "lost"
    assert trainer.pixels.box.value() == 0.6
    # Each keeps its own: the layer's size, and the files'.
    trainer.source.setCurrentText("Layers")
    trainer.image_layer.setCurrentText("lost")
    assert trainer.pixels.box.value() == 1.0
    trainer.source.setCurrentText("Folders")
    assert trainer.pixels.box.value() == 0.6
    # A scale that is no pixel size (set again as it was, or in pixels) keeps the typed one.
    viewer.layers["lost"].scale = viewer.layers["lost"].scale
    viewer.layers["lost"].scale = (2, 2)
    assert segmenter.pixel_size.value() == 1.0


def test_a_scan_without_an_input_is_segmented_on_the_channel_the_command_line_takes(
    make_napari_viewer_proxy, shared_data
):
    """Three fluorescence channels, none taken for transmitted light: a dock opened after
    the scan chose its last channel, one opened before it the first, and `cytomask
    segment` the first."""
    from napari_cytomask.io.files import open_scan, pick_channels

    path = shared_data / "tiff-formats" / "imagej-composites" / "IXMtest_A02_s9.tif"
    scan = open_scan(path)
    first = scan.channels[pick_channels(scan, None, 1)[0]].name
    before = make_napari_viewer_proxy()
    early = UNetSegmentWidget(before)
    before.open(path, plugin="napari-cytomask")
    after = make_napari_viewer_proxy()
    after.open(path, plugin="napari-cytomask")
    after.layers.move(0, 3)  # the first channel dragged to the top of the layer list
    late = UNetSegmentWidget(after)
    assert [layer.name for layer in after.layers][-1] == first
    for widget in (early, late):
        assert widget.input.currentText() == first == "IXMtest_A02_s9_c1"
        assert widget.trainer.image_layer.currentText() == first


def _resuming(viewer, checkpoint) -> tuple[UNetTrainWidget, list]:
    """A Train tab on labelled layers with ``checkpoint`` under Resume from, and the
    settings each run it starts is given (the run itself does not start)."""
    _labelled_layers(viewer)
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    started = []
    trainer.runner.run_now = lambda *args, **kwargs: started.append(args[4])
    trainer.resume.setText(str(checkpoint))
    return trainer, started


def test_a_resumed_run_keeps_its_resampling(make_napari_viewer_proxy, unet_checkpoint):
    """Cancelled, then resumed with 'resample' unticked, a fine-tuning run learnt its
    first epoch at the model's pixel size and the others at the images' own, and recorded
    the latter."""
    base = _recording(unet_checkpoint(), settings={"resample": True})
    trainer, started = _resuming(make_napari_viewer_proxy(), base)
    trainer.pixels.resample.setChecked(False)
    trainer.train()
    assert started[-1].resample is True and trainer.pixels.resample.isChecked()
    assert trainer.status.text().endswith(
        "The run it resumes resamples its images, and so does the rest of it ('resample')."
    )
    # Not resumed: as the switch says.
    trainer.resume.clear()
    trainer.pixels.resample.setChecked(False)
    trainer.train()
    assert started[-1].resample is False


def test_a_resumed_run_goes_on_with_its_own_settings(make_napari_viewer_proxy, unet_checkpoint):
    """Resumed in the dock, a run took the boxes' steps, crops and learning rate, and the
    defaults' boundary width (its targets), patience and schedule, instead of its own."""
    own = {"epochs": 4, "steps_per_epoch": 7, "batch_size": 3, "crop_size": 96,
           "learning_rate": 3e-4, "boundary_width": 3, "patience": 5, "lr_patience": 1,
           "lr_factor": 0.2, "seed": 9, "resample": True}  # fmt: skip
    base = _recording(unet_checkpoint(), settings=own, epochs_done=2)
    trainer, started = _resuming(make_napari_viewer_proxy(), base)
    trainer.resume.editingFinished.emit()  # as when the user leaves the field
    shown = (trainer.epochs, trainer.steps, trainer.batch_size, trainer.crop_size,
             trainer.learning_rate)  # fmt: skip
    assert [box.value() for box in shown] == [4, 7, 3, 96, 3e-4]
    # The estimate counts the epochs left: it said 4 × 7 steps of a run 2 epochs in.
    assert re.fullmatch(
        r"About .+ on the CPU: .+ training \(2 × 7 steps left\), and .+ validating each "
        r"epoch and choosing the thresholds\.",
        trainer.estimate.text(),
    ), trainer.estimate.text()
    trainer.batch_size.setValue(2)  # the user's own change goes on,
    trainer.resume.editingFinished.emit()  # Return pressed in the field again or not
    trainer.train()
    settings = started[-1]
    assert (settings.epochs, settings.steps_per_epoch, settings.batch_size) == (4, 7, 2)
    assert (settings.crop_size, settings.learning_rate) == (96, 3e-4)
    assert (settings.boundary_width, settings.patience, settings.seed) == (3, 5, 9)
    assert (settings.lr_patience, settings.lr_factor) == (1, 0.2)
    # The time said is that of the 2 epochs left, not of all 4, and the validation's own
    # figure: "about 2 min, of which 2 min for the training steps, the rest validating".
    assert trainer.status.text().startswith("Training on 1 image(s): about ")
    assert f": {duration(trainer.estimated_seconds(2))} training (2 × 7 steps left), and " \
        in trainer.status.text()  # fmt: skip
    assert " validating each epoch and choosing the thresholds. The best network so far " \
        in trainer.status.text()  # fmt: skip
    assert trainer.estimated_seconds(2) == pytest.approx(trainer.estimated_seconds() / 2)
    # Its images as its own split has them: it said "Training on 4 image(s)" of a run
    # that trains on 3 and validates on 1.
    split = {"train": ["a.tif", "b.tif", "c.tif"], "validation": ["d.tif"]}
    _recording(base, settings=own, epochs_done=2, split=split)
    trainer.train()
    assert trainer.status.text().startswith("Training on 3 image(s), validating on 1 (d.tif): ")


def test_a_resumed_run_plots_the_epochs_it_goes_on_from(make_napari_viewer, qtbot, tmp_path):
    """Resumed, the plot began at the run's new steps: the loss and score of the epochs
    before were gone."""
    viewer = make_napari_viewer(show=True)
    _labelled_layers(viewer)
    trainer = UNetTrainWidget(viewer)
    viewer.window.add_dock_widget(trainer)
    trainer.tabs.setCurrentWidget(trainer.canvas)
    _tiny_training(trainer)
    trainer.output.setText(str(tmp_path / "run.safetensors"))
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    (first,) = trainer.result.history
    assert first["steps"] == 3
    trainer.resume.setText(str(trainer.result.checkpoint))
    trainer.epochs.setValue(2)
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()
    # Epoch 1 as its mean loss at its last step, then epoch 2's steps 4 to 6.
    assert trainer.losses[0] == (3, first["loss"])
    assert [step for step, _ in trainer.losses[1:]] == [4, 5, 6]
    second = trainer.result.history[-1]["validation"]["mean_average_f1"]
    assert trainer.scores == [(3, first["validation"]["mean_average_f1"]), (6, second)]
    assert len(trainer.loss_axes.lines[0].get_xdata()) == 4


def test_cancelled_as_it_chooses_thresholds_a_run_that_kept_its_start_offers_it(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path, validation_scores
):
    """No epoch beat the starting model, which the run then saved before choosing its
    thresholds; cancelled then, the dock said nothing was saved and offered no resume."""
    import threading

    from napari_cytomask.models import training

    viewer = make_napari_viewer_proxy()
    _labelled_layers(viewer)
    base = tmp_path / "base.safetensors"
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.output.setText(str(base))
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)

    validation_scores([0.5, 0.4])  # the start, then epoch 1
    choosing, go_on, tune = threading.Event(), threading.Event(), training.iter_tune_postprocess

    def held_tune(*args, **kwargs):
        if kwargs.get("tta", True):  # the last step: held until cancelled
            choosing.set()
            yield 0, 10
            go_on.wait(30)
        return (yield from tune(*args, **kwargs))

    monkeypatch.setattr(training, "iter_tune_postprocess", held_tune)
    output = tmp_path / "fine.safetensors"
    trainer.output.setText(str(output))
    trainer.start_from.setCurrentText(START_CHECKPOINT)
    trainer.init_path.setText(str(base))
    trainer.train()
    qtbot.waitUntil(choosing.is_set, timeout=90_000)
    # The dock has heard of the last step (the starting model is kept from the first
    # epoch's report on, before the thresholds are chosen).
    qtbot.waitUntil(
        lambda: trainer._phase == "tune" and trainer._checkpoint is not None, timeout=10_000
    )
    trainer.controls.cancel_button.click()
    go_on.set()
    # Its epochs had all ended (it said "continue from the last finished epoch"), and it
    # keeps the starting model's thresholds (it named none).
    start = recommended_settings(read_description(base))
    assert trainer.status.text() == (
        "Cancelled while choosing the thresholds, after the last epoch; the best network is "
        f"in {output}. It keeps the thresholds of the model it started from (interior "
        f"{start['interior_threshold']:g}, foreground {start['foreground_threshold']:g}, "
        f"minimum cell size {start['min_size']} px), not chosen for it. Press Train to choose "
        "its thresholds (no more epochs are trained)."
    )
    assert trainer.resume.text() == str(output) and state_path(output).is_file()
    # Train then says so: it quoted a time for training steps it does not run (the file
    # holds the starting model, of epoch 0, and its training state the epoch trained).
    monkeypatch.setattr(training, "iter_tune_postprocess", tune)
    trainer.train()
    assert trainer.status.text().startswith(
        "Training on 1 image(s), validating on 1 (img (rows 96-127)): 1 epoch trained "
        "already, so its thresholds are chosen on the validation images, then "
        "fine.safetensors is saved with them."
    ), trainer.status.text()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None, trainer.status.text()


def test_closing_the_dock_cancels_its_training_and_says_so(make_napari_viewer, qtbot, tmp_path):
    """A dock closed mid-training trained on unseen to the end, with no way to stop it,
    and a dock opened again could start a second run beside it. A live preview, started
    by no click, stops unsaid."""
    import threading

    from napari_cytomask._qt._live import FitsTheScreen, Runner

    viewer = make_napari_viewer(show=True)
    output = tmp_path / "closed.safetensors"
    trainer = _tiny_run(viewer, output, epochs=50)
    dock = viewer.window.add_dock_widget(trainer, name="Train a U-Net")
    trainer.train()
    qtbot.waitUntil(lambda: trainer._checkpoint is not None, timeout=60_000)
    worker = trainer.worker
    with patch("napari_cytomask._qt._live.show_info") as told:
        viewer.window.remove_dock_widget(dock)
    assert not trainer.runner.busy
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)
    told.assert_called_once_with(
        "Run cancelled: 'Train a U-Net' was closed while it ran. Cancelled; the best network "
        f"so far is in {output}. Press Train to continue from the last finished epoch."
    )
    assert trainer.resume.text() == str(output)

    class Preview(FitsTheScreen, QWidget):
        def __init__(self):
            super().__init__()
            self.controls = StepControls("Preview", "Preview")
            self.runner = Runner(lambda _: None, self.controls, parent=self)

    held = threading.Event()

    def waiting():
        yield 0, 1
        held.wait(30)

    preview = Preview()
    dock = viewer.window.add_dock_widget(preview, name="Preview")
    preview.runner.request(waiting)
    qtbot.waitUntil(lambda: preview.runner.worker is not None, timeout=10_000)
    with patch("napari_cytomask._qt._live.show_info") as told:
        viewer.window.remove_dock_widget(dock)
    held.set()
    assert not preview.runner.busy and not told.called


def test_cells_mostly_near_the_minimum_size_say_smaller_ones_were_dropped():
    """A minimum size tuned on larger nuclei (165 px) kept 16 of 65 smaller ones, without
    a word: the status says so when most cells found are near that size."""
    from napari_cytomask._qt.unet_widgets import _size_note

    labels = np.zeros((64, 64), np.uint16)
    labels[:12, :15], labels[20:32, :15], labels[40:52, :15] = 1, 2, 3  # 180 px each
    assert "smaller cells were probably left out" in _size_note(labels, 165)
    assert "(165 px)" in _size_note(labels, 165)
    # Tuned on such cells, the minimum is at most half their size: no note then.
    assert _size_note(labels, 90) == "" and _size_note(labels, 0) == ""


def test_choosing_the_thresholds_is_timed_as_it_runs(make_napari_viewer_proxy):
    """Choosing a fine-tuning run's thresholds took 39 s before its first step, and 25 s
    after its last, with a count only; the estimate before the run said "plus validation"."""
    from types import SimpleNamespace

    from napari_cytomask.progress import Pace

    trainer = UNetTrainWidget(make_napari_viewer_proxy())
    assert "plus validating each epoch and choosing the thresholds" in trainer.estimate.text()
    trainer._pace, trainer._fine_tuning = Pace(), True  # as Train starts a fine-tuning run
    for step in (1, 2):
        trainer._on_progress(SimpleNamespace(phase="tune", step=step, steps=51))
        time.sleep(0.2)
    trainer._on_progress(SimpleNamespace(phase="tune", step=3, steps=51))
    assert re.fullmatch(
        "Before the first epoch: choosing the starting model's thresholds on the validation "
        r"images, to score each epoch with them: 3 of 51; about \d+ s left",
        trainer.status.text(),
    ), trainer.status.text()


def test_a_run_cancelled_while_its_first_epoch_is_saved_says_where_it_is(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path
):
    """Cancelled after the first epoch's validation, a run said "nothing was saved", but
    went on to save the epoch in the background: the model list then offered it as
    unfinished while Resume from stayed empty."""
    import threading

    from napari_cytomask.models import training

    saving, go_on = threading.Event(), threading.Event()
    save = training.save_checkpoint

    def slow_save(*args, **kwargs):
        saving.set()
        go_on.wait(30)
        return save(*args, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", slow_save)
    output = tmp_path / "first.safetensors"
    trainer = _tiny_run(make_napari_viewer_proxy(), output, epochs=3)
    trainer.train()
    qtbot.waitUntil(saving.is_set, timeout=60_000)
    trainer.controls.cancel_button.click()
    assert trainer.status.text() == "Cancelled before the first epoch ended; nothing was saved."
    go_on.set()
    qtbot.waitUntil(lambda: trainer.resume.text() == str(output), timeout=30_000)
    assert output.is_file() and state_path(output).is_file()
    assert trainer.status.text() == (
        f"Cancelled as the first epoch was being saved: {output}. Press Train to continue "
        "from the last finished epoch."
    )


def test_fine_tuning_shows_the_starting_models_score_as_epoch_0(
    make_napari_viewer_proxy, monkeypatch, tmp_path
):
    """Fine-tuning scores the model it starts from before the first epoch and keeps it
    until an epoch beats it; an epoch that does not is not saved, but the starting model
    is kept with the run's state, and offered to resume from (a cancelled run said
    "nothing was saved", and its epochs were lost)."""
    from dataclasses import replace

    from napari_cytomask._qt._live import Runner
    from napari_cytomask.models.training import TrainingProgress

    trainer = UNetTrainWidget(make_napari_viewer_proxy())
    trainer._fine_tuning = True  # as Train starts a fine-tuning run
    split = {"train": ["a"], "validation": ["b"], "test": []}
    trainer._on_progress(
        TrainingProgress(0, 2, 0, 2, 0, math.nan, 1e-3, phase="split", split=split)
    )
    trainer._on_progress(TrainingProgress(0, 2, 0, 1, 0, math.nan, 1e-3, phase="validate"))
    assert trainer.status.text() == (
        "Before the first epoch, the starting model: validating image 0 of 1"
    )
    start = TrainingProgress(0, 2, 0, 2, 0, math.nan, 1e-3, {"mean_average_f1": 0.454})
    trainer._on_progress(replace(start, phase="epoch"))
    assert trainer.status.text() == (
        "Before the first epoch, the starting model: validation mean-average F1 0.454; it "
        "stays the model unless an epoch scores higher."
    )
    assert trainer.scores == [(0, 0.454)]  # plotted at step 0
    trainer._on_progress(TrainingProgress(1, 2, 1, 2, 1, 0.5, 1e-3))
    kept = tmp_path / "kept.safetensors"
    worse = TrainingProgress(1, 2, 2, 2, 2, math.nan, 1e-3, {"mean_average_f1": 0.3},
                             checkpoint=kept)  # fmt: skip
    trainer._on_progress(replace(worse, phase="epoch"))
    assert trainer.status.text() == "Epoch 1: validation mean-average F1 0.300"
    monkeypatch.setattr(Runner, "busy", property(lambda runner: True))  # a run under way
    trainer.cancel()
    assert trainer.resume.text() == str(kept)
    assert trainer.status.text() == (
        "Cancelled; no epoch scored above the starting model, which is kept with the run's "
        f"state in {kept}. Press Train to continue from the last finished epoch."
    )
    monkeypatch.setattr(Runner, "busy", property(lambda runner: False))
    trainer.resume.setText("")
    trainer._saved_after_cancel(replace(worse, phase="epoch"))  # saved as it was cancelled
    assert trainer.resume.text() == str(kept)
    assert trainer.status.text().startswith(
        f"Cancelled as the starting model was being saved: {kept}."
    )


def test_the_summary_names_the_thresholds_the_epochs_were_compared_at(
    make_napari_viewer_proxy, tmp_path
):
    """A fine-tuning run compares its epochs at the starting model's thresholds, unless
    none could be chosen for it: then at the defaults, which the summary said were the
    starting model's."""
    from napari_cytomask.models.training import TrainingResult

    trainer = UNetTrainWidget(make_napari_viewer_proxy())
    scores = {"mean_average_f1": 0.6, "f1_50": 0.9}
    tuned = {"interior_threshold": 0.5, "foreground_threshold": 0.6, "min_size": 100,
             "scores": {"tuned": scores, "default": {"mean_average_f1": 0.4}}}  # fmt: skip
    for start, at in (({"min_size": 90}, "the starting model's"), (None, "the default")):
        training = {"initialised_from": "starter", "validation_settings": start}
        description = {"scores": {"validation": {"mean_average_f1": 0.4}},
                       "postprocess": tuned, "training": training}  # fmt: skip
        trainer._on_result(TrainingResult(tmp_path / "m.safetensors", description))
        assert f"(its epochs were compared at {at} thresholds, where it scored 0.400)." in (
            trainer.summary
        )


def test_cancel_and_errors(make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path):
    viewer = make_napari_viewer_proxy()
    errors = []
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", errors.append)
    monkeypatch.setattr("napari_cytomask._qt.unet_widgets.unet_models", lambda **_: [])
    segmenter = UNetSegmentWidget(viewer)
    # Without any model the step says where to get one.
    assert "No U-Net model yet" in segmenter.status.text()
    segmenter.segment()
    # Nothing to segment yet is said in the status line, not as an error.
    assert "open an image" in segmenter.status.text() and not errors
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    segmenter.segment()
    assert "Train a model" in errors[-1] and errors[-1] == segmenter.status.text()

    trainer = UNetTrainWidget(viewer)
    trainer.train()
    assert "mask (Labels) layer" in trainer.status.text() and len(errors) == 1
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=1)
    viewer.add_labels(scan.labels[0], name="mask")
    viewer.layers["img"].data = scan.brightfield[0].astype(np.float32)
    _tiny_training(trainer)
    trainer.epochs.setValue(50)
    trainer.output.setText(str(tmp_path / "cancelled.safetensors"))
    n_errors = len(errors)
    before = trainer.estimate.text()
    trainer.train()
    assert len(errors) == n_errors
    qtbot.waitUntil(lambda: len(trainer.losses) >= 4, timeout=60_000)  # into epoch 2
    # Progress every step, with the time left; the estimate beside it says it came first.
    assert trainer.progress.value() == len(trainer.losses) and "left" in trainer.status.text()
    assert trainer.estimate.text() == (
        f"Estimated before this run: a{before[1:]} The status line below gives the time left "
        "as measured."
    )
    started = time.monotonic()
    trainer.controls.cancel_button.click()
    assert time.monotonic() - started < 1.0
    # Back to an estimate, of what Train does next: the epochs the cancelled run has left.
    done = read_description(tmp_path / "cancelled.safetensors")["training"]["epochs_done"]
    assert trainer.estimate.text().startswith("About ")
    assert f"({50 - done} × 3 steps left)" in trainer.estimate.text()
    assert trainer.worker is None and trainer.controls.run_button.isEnabled()
    assert trainer.result is None and "Cancelled" in trainer.status.text()
    cut = len(trainer.losses)
    qtbot.wait(500)
    assert len(trainer.losses) == cut  # a cancelled run reports nothing more
    # Cancelling offers to continue: Train again resumes from the last finished epoch.
    assert trainer.resume.text() == str(tmp_path / "cancelled.safetensors")
    # The model lists show the cancelled run's network as unfinished.
    segmenter.checkpoint.set_model(tmp_path / "cancelled.safetensors")
    assert segmenter.checkpoint.combo.currentText() == "cancelled (unfinished)"
    # A narrow dock cuts the name: the tooltip gives it, with its file, in full.
    assert segmenter.checkpoint.combo.toolTip().startswith(
        f"cancelled (unfinished): {tmp_path / 'cancelled.safetensors'} ("
    )
    epochs_done = torch.load(state_path(trainer.resume.text()), weights_only=True)["epoch"]
    assert epochs_done >= 1
    trainer.epochs.setValue(epochs_done + 1)  # the run's epochs in all
    trainer.output.clear()  # the resumed checkpoint is written, not a new file
    trainer.train()  # resumed, and cancelled before its first epoch ends: the network stays
    trainer.controls.cancel_button.click()
    kept = tmp_path / "cancelled.safetensors"
    assert trainer.status.text().startswith(f"Cancelled; the best network so far is in {kept}.")
    assert trainer.resume.text() == str(kept) and kept.is_file()
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=60_000)
    assert trainer.result is not None, trainer.status.text()
    assert trainer.estimate.text().startswith("About ")  # a finished run ends it too
    assert trainer.result.checkpoint == tmp_path / "cancelled.safetensors"
    assert trainer.result.description["training"]["epochs_done"] == epochs_done + 1
    assert trainer.result.description["training"]["finished"] is True
    # The epochs it goes on from first (their mean losses), then its steps, counted on.
    assert [step for step, _ in trainer.losses[:epochs_done]] == [
        3 * (epoch + 1) for epoch in range(epochs_done)
    ]
    assert trainer.losses[epochs_done][0] == epochs_done * 3 + 1
    assert trainer.progress.value() == trainer.progress.maximum() == 3
    # The run is finished: the next Train starts a new one instead of resuming it.
    assert trainer.resume.text() == ""
    # One image leaves none for validation: no score to show, and the thresholds say why.
    assert trainer.status.text() == (
        f"Saved {tmp_path / 'cancelled.safetensors'}. No image was left for validation: the "
        "thresholds stay at their defaults; train on more images to have them chosen. The "
        "model saved is that of "
        f"epoch {trainer.result.description['training']['best_epoch']}: the one with the "
        "lowest training loss. cancelled.training-state.pt "
        f"({state_path(kept).stat().st_size / 1e6:.0f} MB) beside it lets Resume from train it "
        "further; delete it when you will not."
    )

    with pytest.raises(ValueError, match="no checkpoint"):
        segmenter.checkpoint.set_model(tmp_path / "missing.safetensors")


def test_a_run_that_fails_after_an_epoch_offers_to_go_on_from_it(
    make_napari_viewer_proxy, qtbot, monkeypatch, tmp_path
):
    """Out of GPU memory in epoch 2, the saved epoch 1 went unsaid and Resume from stayed
    empty: Train again started over and replaced it. A failure offers it as Cancel does."""
    from napari_cytomask.models import training

    viewer = make_napari_viewer_proxy()
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", lambda message: None)
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=1)
    viewer.add_image(scan.brightfield[0].astype(np.float32), name="img")
    viewer.add_labels(scan.labels[0], name="mask")
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.epochs.setValue(3)
    out = tmp_path / "m.safetensors"
    trainer.output.setText(str(out))
    loss, calls = training.segmentation_loss, []

    def out_of_memory(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:  # the first step of epoch 2
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return loss(*args, **kwargs)

    monkeypatch.setattr(training, "segmentation_loss", out_of_memory)
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=60_000)
    assert trainer.result is None and out.is_file()
    status = trainer.status.text()
    assert status.startswith("U-Net training failed: CUDA out of memory.")
    assert "Lower Crops per step or Crop size (under More)" in status
    assert status.endswith(
        f" The best network so far is in {out}. Press Train to continue from the last "
        "finished epoch."
    )
    assert trainer.resume.text() == str(out)
    # A setting refused before any run starts says only what is wrong with it.
    viewer.layers.remove("mask")
    trainer.train()
    assert "mask (Labels) layer" in trainer.status.text()
    assert "best network so far" not in trainer.status.text()


def test_training_defaults_follow_the_device_and_fine_tune_a_checkpoint(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    viewer = make_napari_viewer_proxy()
    trainer = UNetTrainWidget(viewer)
    trainer.device.setCurrentText("cpu")
    cpu = TRAINING_DEFAULTS["cpu"]
    assert (trainer.encoder.currentText(), trainer.epochs.value(), trainer.steps.value(),
            trainer.batch_size.value()) == (cpu["encoder"], cpu["epochs"], cpu["steps"],
                                            cpu["batch_size"])  # fmt: skip
    # The estimate is shown before training starts and follows the settings.
    assert trainer.estimate.text().startswith("About ")
    seconds = trainer.estimated_seconds()
    assert 20 < seconds < 30 * 60  # a minute or minutes on a CPU, not days
    trainer.epochs.setValue(2 * trainer.epochs.value())
    assert trainer.estimated_seconds() == pytest.approx(2 * seconds)

    # Fine-tuning the starter model is the first choice when the package has it.
    starts = [trainer.start_from.itemText(i) for i in range(trainer.start_from.count())]
    has_starter = any(entry.key == STARTER for entry in unet_models())
    assert (START_STARTER in starts) == has_starter
    if has_starter:
        assert trainer.start_from.currentText() == START_STARTER
        assert trainer.init_from() == STARTER and not trainer._network.isEnabled()

    scan = make_tilescan(n_tiles=2, shape=(96, 96), seed=1)
    viewer.add_image(scan.brightfield, name="BF", metadata={"cytomask": {"role": "input"}})
    viewer.add_labels(scan.labels, name="mask")
    start = unet_checkpoint(64)
    _fine_tune(trainer, start, qtbot)
    assert trainer.result.description["training"]["initialised_from"] == str(start)


def test_picking_a_model_shows_its_tuned_thresholds(
    make_napari_viewer_proxy, unet_checkpoint, tmp_path
):
    tuned = unet_checkpoint(tile_size=64, seed=2)
    model = UNetPredictor.from_checkpoint(tuned, "cpu").model
    description = read_description(tuned)
    # Tuning chooses thresholds to 0.001 (0.955), which the dock keeps as they are.
    recorded = {"interior_threshold": 0.475, "foreground_threshold": 0.998, "min_size": 42}
    save_checkpoint(tuned, model, {**description, "postprocess": recorded})
    plain = save_checkpoint(tmp_path / "plain.safetensors", model, description)

    viewer = make_napari_viewer_proxy()
    segmenter = UNetSegmentWidget(viewer)
    viewer.window.add_dock_widget(segmenter)
    segmenter.checkpoint.set_model(tuned)
    shown = (
        segmenter.interior_threshold.value(),
        segmenter.foreground_threshold.value(),
        segmenter.min_size.value(),
    )
    assert shown == pytest.approx((0.475, 0.998, 42))
    step = segmenter.step()
    assert (step.interior_threshold, step.foreground_threshold, step.min_size) == (0.475, 0.998, 42)
    segmenter.checkpoint.set_model(plain)  # no recorded settings: the defaults
    assert segmenter.interior_threshold.value() == pytest.approx(0.5)
    assert segmenter.min_size.value() == 0


def _segment_64px(viewer, qtbot, unet_checkpoint, overlap: int) -> str:
    """Segment a 64 × 64 image on the CPU with a model of 64-px tiles; the status after."""
    viewer.add_image(np.random.default_rng(0).random((64, 64), np.float32), name="img")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.checkpoint.set_model(unet_checkpoint(tile_size=64))
    segmenter.device.setCurrentText("cpu")
    segmenter.overlap.setValue(overlap)
    segmenter.segment()
    qtbot.waitUntil(lambda: segmenter.worker is None, timeout=30_000)
    return segmenter.status.text()


def test_an_image_made_a_mask_while_segmented_is_not_said_to_be_closed(
    make_napari_viewer_proxy,
):
    """A channel's role changed in Channel roles during its run replaces its layer (an
    image made a mask becomes Labels): the run stopped and said the image "was closed
    ... Open it again", though it was still there."""
    from napari_cytomask.io.layers import METADATA_KEY
    from napari_cytomask.roles import set_role

    viewer = make_napari_viewer_proxy()
    record = {"role": "input", "source": "/data/well.tif", "channel_index": 0}
    viewer.add_image(np.zeros((64, 64), np.uint8), name="ch", metadata={METADATA_KEY: record})
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    assert segmenter.runner.busy
    set_role(viewer.layers, viewer.layers["ch"], "mask")
    assert not segmenter.runner.busy and segmenter.controls.run_button.isEnabled()
    assert segmenter.status.text() == (
        "'ch' was made a mask (a Labels layer) while it was being segmented, so its cells "
        "were not added. Run the step again to segment the input it shows now."
    )


def test_a_new_segmentation_leaves_no_stroke_of_the_cells_before_it_to_redo(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    """Cells segmented again are written into the same layer; napari kept its undo and
    redo history, and Redo painted a stroke undone on the cells before into the new ones."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((64, 64), np.float32), name="img")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.checkpoint.set_model(unet_checkpoint(tile_size=64))
    segmenter.device.setCurrentText("cpu")
    segmenter.overlap.setValue(16)
    segmenter.foreground_threshold.setValue(0.0)  # some cells, whatever the random model says
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    cells = viewer.layers["img U-Net cells"]
    cells.brush_size = 10
    cells.paint((32, 32), 999)
    cells.undo()
    cells.visible = False  # hidden to look at the image: the new cells are shown
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    assert viewer.layers["img U-Net cells"].unique_id == cells.unique_id
    assert cells.visible
    cells.redo()
    assert not (np.asarray(cells.data) == 999).any()


def test_new_cells_hide_the_ground_truth_they_lie_over(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    """A ground truth opened beside the image stayed visible under the cells found, so two
    label layers mixed their colours (the sample opens its mask hidden). Only the new
    layer hides it, once: a mask shown again stays shown when the step runs again, and
    another scan's mask and the user's own labels are left as they are."""
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()

    def channel(role, source, index):
        return {METADATA_KEY: {"role": role, "source": source, "channel_index": index}}

    image = np.random.default_rng(0).random((64, 64), np.float32)
    viewer.add_image(image, name="phase", metadata=channel("input", "/data/well.tif", 0))
    ids = np.zeros((64, 64), np.uint16)
    ids[10:30, 10:30] = 1
    truth = viewer.add_labels(ids, name="truth", metadata=channel("mask", "/data/well.tif", 1))
    viewer.add_image(image, name="b", metadata=channel("input", "/data/b.tif", 0))
    other = viewer.add_labels(ids, name="other", metadata=channel("mask", "/data/b.tif", 1))
    own = viewer.add_labels(ids, name="painted")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.input.set_layer(viewer.layers["phase"])
    segmenter.checkpoint.set_model(unet_checkpoint(tile_size=64))
    segmenter.device.setCurrentText("cpu")
    segmenter.overlap.setValue(16)
    segmenter.tta.setChecked(False)
    with patch("napari_cytomask._qt._layers.show_info") as told:
        segmenter.segment()
        qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    assert viewer.layers["phase U-Net cells"].visible
    assert [truth.visible, other.visible, own.visible] == [False, True, True]
    told.assert_called_once_with(
        "'truth' (the ground truth) is hidden so that the cells found in 'phase U-Net "
        "cells' can be seen; click its eye in the layer list to show it again."
    )
    truth.visible = True
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    assert truth.visible


def test_a_result_without_cells_leaves_the_ground_truth_in_view(make_napari_viewer_proxy):
    """A first run that found nothing (SAM2 with strict filters) hid the ground truth as
    well, leaving an empty overlay to look at."""
    from napari_cytomask._qt._layers import add_result, labels_layer
    from napari_cytomask.io.layers import METADATA_KEY

    viewer = make_napari_viewer_proxy()
    ids = np.zeros((64, 64), np.uint16)
    ids[10:30, 10:30] = 1
    record = {"role": "mask", "source": "/data/well.tif", "channel_index": 1}
    truth = viewer.add_labels(ids, name="truth", metadata={METADATA_KEY: record})
    result = {METADATA_KEY: {"role": "result", "source": "/data/well.tif", "method": "sam2"}}
    with patch("napari_cytomask._qt._layers.show_info") as told:
        add_result(viewer, labels_layer(np.zeros_like(ids), "none found", {}, result))
    assert truth.visible and not told.called
    with patch("napari_cytomask._qt._layers.show_info") as told:
        add_result(viewer, labels_layer(ids, "found", {}, result))
    assert not truth.visible and told.called


def test_the_standalone_dock_says_when_the_cells_it_made_are_closed(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    """Only the Segment cytoplasm dock said so: the U-Net dock of its own went on naming
    cells in a layer that was gone."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((64, 64), np.float32), name="img")
    other = viewer.add_labels(np.zeros((64, 64), np.uint8), name="other")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.checkpoint.set_model(unet_checkpoint(tile_size=64))
    segmenter.device.setCurrentText("cpu")
    segmenter.overlap.setValue(16)
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    said = segmenter.status.text()
    assert "img U-Net cells" in said
    viewer.layers.remove(other)
    assert segmenter.status.text() == said  # not the cells it made
    segmenter.segment()  # the same layer, made again
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    viewer.layers.remove("img U-Net cells")
    assert segmenter.status.text() == (
        "'img U-Net cells' was closed: segment again to make its cells."
    )


def test_running_out_of_memory_says_which_settings_to_lower(
    make_napari_viewer_proxy, qtbot, unet_checkpoint, monkeypatch
):
    """A GPU's memory: smaller tiles or batches, or the CPU. The computer's (a MemoryError,
    or PyTorch's CPU allocator, whose error said nothing of memory to the dock, which showed
    its raw text): the CPU is no way out, and a whole frame's probabilities may be what did
    not fit, which the command line segments chunk by chunk."""
    from napari_cytomask.models import inference

    errors = iter([
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                     "can't allocate memory: you tried to allocate 1677721600 bytes. Error "
                     "code 12 (Cannot allocate memory)"),
        MemoryError(),
    ])  # fmt: skip

    def no_memory(*args, **kwargs):
        raise next(errors)

    monkeypatch.setattr(inference, "predict_tiles", no_memory)
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", lambda message: None)
    viewer = make_napari_viewer_proxy()
    status = _segment_64px(viewer, qtbot, unet_checkpoint, overlap=16)
    assert status == (
        "U-Net segmentation failed: CUDA out of memory. Tried to allocate 2.00 GiB. Lower Tile "
        "size or Tiles per batch (under Tiles), or choose the CPU as Device."
    )
    host = (
        "Close other programs or lower Tiles per batch (under Tiles). An image of many "
        "megapixels can be segmented chunk by chunk on the command line: cytomask segment "
        "--chunked-above 16 (frames of more than 16 megapixels)."
    )
    status = _segment_64px(viewer, qtbot, unet_checkpoint, overlap=16)
    said = "U-Net segmentation failed: out of memory (could not allocate 1.6 GiB)."
    assert status == f"{said} {host}"
    status = _segment_64px(viewer, qtbot, unet_checkpoint, overlap=16)
    assert status == f"U-Net segmentation failed: out of memory. {host}"


def test_an_overlap_as_large_as_the_models_tiles_names_both_settings(
    make_napari_viewer_proxy, qtbot, unet_checkpoint, monkeypatch
):
    """A model trained on 64-px crops failed at the default overlap with "overlap must be in
    [0, tile size) = [0, 64)", which names no setting of the dock."""
    monkeypatch.setattr("napari_cytomask._qt._live.show_error", lambda message: None)
    status = _segment_64px(make_napari_viewer_proxy(), qtbot, unet_checkpoint, overlap=64)
    assert status == (
        "U-Net segmentation failed: a tile overlap of 64 px needs tiles larger than that; the "
        "tiles are 64 px (the model's, in multiples of 8). Give a smaller tile overlap or a "
        "larger tile size."
    )


def test_an_overlap_that_does_not_fit_the_tiles_is_said_as_it_is_set(
    make_napari_viewer_proxy, unet_checkpoint
):
    """It was said only when a run failed."""
    segmenter = UNetSegmentWidget(make_napari_viewer_proxy())
    segmenter.checkpoint.set_model(unet_checkpoint(tile_size=64))
    segmenter.overlap.setValue(32)
    assert segmenter.tile_note.isHidden()
    segmenter.overlap.setValue(64)
    assert not segmenter.tile_note.isHidden()
    assert segmenter.tile_note.text() == (
        "A tile overlap of 64 px needs tiles larger than that; the tiles are 64 px (the "
        "model's, in multiples of 8). Give a smaller tile overlap or a larger tile size."
    )
    segmenter.tile_size.setValue(128)  # larger tiles than the model's make room for it
    assert segmenter.tile_note.isHidden()
    segmenter.tile_size.setValue(0)  # "from the model" again
    assert not segmenter.tile_note.isHidden()
    segmenter.checkpoint.set_model(unet_checkpoint(tile_size=256))  # another model's tiles
    assert segmenter.tile_note.isHidden()


def test_an_image_whose_pixels_change_while_segmented_gets_no_cells(
    make_napari_viewer_proxy, qtbot
):
    """Its pixels replaced (flipped, cropped) during the run, the cells of the old pixels
    were laid over the new ones as their result."""
    viewer = make_napari_viewer_proxy()
    layer = viewer.add_image(np.zeros((64, 64), np.float32), name="phase")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.input.setCurrentText("phase")
    segmenter.tta.setChecked(False)
    segmenter.segment()
    assert segmenter.runner.busy
    layer.data = np.ones((32, 32), np.float32)
    assert not segmenter.runner.busy and segmenter.controls.run_button.isEnabled()
    assert segmenter.status.text() == (
        "'phase' changed while it was being segmented, so its cells were not added (made "
        "from its pixels before). Run the step again to segment the pixels it shows now."
    )
    qtbot.wait(1000)
    assert [layer.name for layer in viewer.layers] == ["phase"]
    # Run again, its cells come, and a change after they came stops nothing.
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    assert len(viewer.layers) == 2, segmenter.status.text()
    said = segmenter.status.text()
    layer.data = np.zeros((32, 32), np.float32)
    assert segmenter.status.text() == said


def test_an_image_closed_while_segmented_gets_no_cells(make_napari_viewer_proxy, qtbot):
    """... and the run stops at once: it went on for minutes, with Segment greyed out,
    then filled the progress bar for a result it dropped."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((64, 64), np.float32), name="closed")
    viewer.add_image(np.zeros((64, 64), np.float32), name="kept")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.input.setCurrentText("closed")
    segmenter.tta.setChecked(False)
    segmenter.segment()
    assert segmenter.runner.busy
    viewer.layers.remove("closed")  # before the worker's result reaches the GUI thread
    assert not segmenter.runner.busy and segmenter.controls.run_button.isEnabled()
    assert segmenter.status.text().startswith("'closed' was closed while it was being segmented")
    assert segmenter.progress.value() == 0
    qtbot.wait(2000)  # what the stopped worker still yields changes nothing
    assert (
        segmenter.status.text().startswith("'closed' was closed")
        and segmenter.progress.value() == 0
    )
    assert [layer.name for layer in viewer.layers] == ["kept"]


def test_a_foreground_models_cells_are_found_over_the_shape_of_the_pixels(
    make_napari_viewer_proxy, qtbot, foreground_unet
):
    """Over pixels of 0.87 x 0.435 µm, a U-Net trained on foreground maps found one cell in
    two round cells touching along Y: its watershed counted rows and columns."""
    yy, xx = np.mgrid[:96, :160]
    yy, xx = (yy - 48) * 0.87, (xx - 80) * 0.435
    image = ((np.abs(yy) - 6) ** 2 + xx**2 < 10**2).astype(np.float32)
    viewer = make_napari_viewer_proxy()
    viewer.add_image(image, name="cells", scale=(0.87, 0.435), units="µm")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.min_size.setValue(0)  # the starter's, shown for the model picked, is larger
    segmenter.foreground_threshold.setValue(0.5)
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    cells = np.asarray(viewer.layers["cells U-Net cells"].data)
    assert cells.max() == 2 and cells[48 - 12, 80] != cells[48 + 12, 80]


def test_cells_the_starter_is_unsure_of_are_pointed_out_and_exported_with_it(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """Texture of a DIC image came out as cells, said as a plain count."""
    from napari_cytomask.io.export import from_layer

    viewer = make_napari_viewer_proxy()
    viewer.add_image(tifffile.imread(shared_data / "nuclei-dsb" / "dic_img.tif"), name="dic")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: "dic U-Net cells" in viewer.layers, timeout=60_000)
    cells = viewer.layers["dic U-Net cells"]
    confidence = layer_info(cells)["model"]["confidence"]
    # Without TTA, its floor (a run's confidences are higher without).
    assert cells.data.max() > 0 and confidence < STARTER_CONFIDENCE_NO_TTA
    assert segmenter.status.text().endswith(
        f"The starter model is unsure of this image (confidence {confidence:.2f}, "
        f"{STARTER_CONFIDENCE_NO_TTA} or more on phase contrast), and the image records no pixel "
        "size: if its pixels are not about 0.87 µm, give it (Pixel size in step 2, "
        "--pixel-size on the command line) to have the image resampled to the model's. If it "
        "is not phase contrast like the model's training images, fine-tune it on a few "
        "labelled images of yours, or try SAM2, which needs no training (SAM2 in step 2, "
        "--method sam2 on the command line)."
    )
    assert from_layer(cells).model["confidence"] == confidence  # in the export's provenance


def test_no_cells_in_images_unlike_the_model_says_each_thing_to_try_once(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """Fluorescent nuclei, no cells: the advice said to fine-tune twice, and asked whether
    the image was the channel to segment of a file of one channel."""
    viewer = make_napari_viewer_proxy()
    nuclei = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")
    viewer.add_image(nuclei, name="nuclei")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    status = segmenter.status.text()
    assert status.startswith("No cells found in 'nuclei'. The starter model is unsure"), status
    # Not lower thresholds, after a note that the image is unlike the model's: they found
    # 1 nucleus of 125.
    assert status.count("fine-tune") == 1 and "ower the thresholds" not in status
    assert "channel to segment" not in status and "try SAM2" in status
    # Another channel of its file open: which one to segment is worth asking.
    scan = {"cytomask": {"source": "/data/scan.tif", "role": "input"}}
    viewer.layers["nuclei"].metadata = scan
    viewer.add_image(nuclei[::-1].copy(), name="other channel", metadata=scan)
    segmenter.input.setCurrentText("nuclei")
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    status = segmenter.status.text()
    assert "Is it the channel to segment (see " in status and status.count("fine-tune") == 1
    assert status.endswith("?") and "ower the thresholds" not in status


def test_no_cells_says_what_to_try(make_napari_viewer_proxy, qtbot):
    """An image without cells for the model gets a status that names the input and what
    to do next, not a bare count of 0."""
    viewer = make_napari_viewer_proxy()
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    viewer.add_image(ramp, name="blank")
    segmenter = UNetSegmentWidget(viewer)
    assert segmenter.checkpoint.key() == STARTER
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: "blank U-Net cells" in viewer.layers, timeout=60_000)
    assert not viewer.layers["blank U-Net cells"].data.any()
    status = segmenter.status.text()
    assert status.startswith("No cells found in 'blank'.") and "Train a model" in status
    # The starter's tuned minimum size drops every cell of an image at a coarse pixel size.
    assert f"minimum cell size ({segmenter.min_size.value()} px)" in status
    assert segmenter.min_size.value() > 0
    # The advice names the size the run used, not one set while it ran.
    tuned = segmenter.min_size.value()
    segmenter.min_size.setValue(12345)
    segmenter.segment()
    segmenter.min_size.setValue(0)
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    assert "minimum cell size (12345 px)" in segmenter.status.text()
    segmenter.min_size.setValue(tuned)
    # What the run noticed explains the result: a pixel size too far off to resample.
    viewer.layers["blank"].scale, viewer.layers["blank"].units = (0.0515, 0.0515), "µm"
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    assert segmenter.status.text().startswith(
        "No cells found in 'blank'. The image's pixels are 0.0515 µm, far from the starter "
        "model's 0.87 µm, so it was not resampled"
    )
    assert "Train a model" in segmenter.status.text()
    # Images that cannot hold a cell at all say why instead.
    nan = np.full((64, 64), np.nan, np.float32)
    for name, data, reason in (
        ("flat", np.zeros((64, 64), np.float32), "every pixel of the image has the same "
                                                  "value (0): it shows nothing."),
        ("tiny", ramp[:5, :5], "the image (5×5 px) is smaller than the minimum cell size"),
        ("nan", nan, "no pixel of the image is a number (all NaN or infinite)."),
    ):  # fmt: skip
        viewer.add_image(data, name=name)
        segmenter.input.setCurrentText(name)
        segmenter.segment()
        qtbot.waitUntil(lambda n=name: f"{n} U-Net cells" in viewer.layers, timeout=60_000)
        assert segmenter.status.text().startswith(f"No cells found in '{name}': {reason}")


def test_a_blank_image_from_a_file_says_it_shows_nothing(make_napari_viewer_proxy, qtbot, tmp_path):
    """A closed shutter's frame opened from a TIFF (read lazily) or an RGB one was told to
    lower the thresholds or fine-tune the model; the same pixels in memory were said to
    show nothing."""
    tifffile.imwrite(tmp_path / "shut.tif", np.full((64, 64), 1234, np.uint16))
    tifffile.imwrite(tmp_path / "black.tif", np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    viewer = make_napari_viewer_proxy()
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    for name, value in (("shut", 1234), ("black", 0)):
        (layer,) = viewer.open(tmp_path / f"{name}.tif", plugin="napari-cytomask")
        assert not isinstance(layer.data, np.ndarray)
        segmenter.input.set_layer(layer)
        segmenter.segment()
        qtbot.waitUntil(lambda n=name: f"{n} U-Net cells" in viewer.layers, timeout=60_000)
        assert segmenter.status.text().startswith(
            f"No cells found in '{name}': every pixel of the image has the same value "
            f"({value}): it shows nothing."
        ), segmenter.status.text()


def test_the_time_left_counts_training_steps_only(make_napari_viewer_proxy, monkeypatch):
    """Choosing a fine-tuned model's thresholds before the first step took 60 s here: the
    time left comes from the steps' own pace (1 s each), not from those 60 s."""
    from napari_cytomask import progress
    from napari_cytomask.models.training import TrainingProgress

    widget = UNetTrainWidget(make_napari_viewer_proxy())
    # Before training, the plot names its axes and says what it will show (it was blank).
    assert widget.loss_axes.get_xlabel() == "step"
    assert [t.get_text() for t in widget.loss_axes.texts] == ["Drawn while a model trains."]
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    widget.progress.setMaximum(20)

    def step(n):
        now[0] = 59.0 + n
        widget._on_progress(TrainingProgress(1, 2, n, 10, n, 0.5, 1e-3, phase="train"))
        return widget.status.text()

    assert step(1).endswith("loss 0.500; timing the steps…")
    assert step(2).endswith("about 18 s left.")
    assert step(3).endswith("about 17 s left.")
    now[0] = 80.0  # the last step of the last epoch: no timing left to do
    widget._on_progress(TrainingProgress(2, 2, 10, 10, 20, 0.5, 1e-3, phase="train"))
    assert widget.status.text().endswith("loss 0.500; last step.")


def test_the_bar_and_time_left_follow_validation_and_choosing_thresholds(
    make_napari_viewer_proxy, monkeypatch
):
    """The bar counted training steps only: full after the last, it stood so through
    validation and choosing the thresholds (half of a short run), while the status had
    said "about 7 s left"."""
    from napari_cytomask import progress
    from napari_cytomask.models.training import TrainingProgress

    widget = UNetTrainWidget(make_napari_viewer_proxy())
    bar = widget.progress
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    split = {"train": ["a"], "validation": ["b"], "test": []}
    widget._on_progress(TrainingProgress(1, 1, 0, 3, 0, math.nan, 1e-3, phase="split", split=split))
    for step in (1, 2, 3):
        now[0] = float(step)
        widget._on_progress(TrainingProgress(1, 1, step, 3, step, 0.5, 1e-3, phase="train"))
        if step == 2:
            assert widget.status.text().endswith(
                "about 1 s left, then validation and threshold tuning."
            ), widget.status.text()
    assert widget.status.text().endswith("last step, then validation and threshold tuning.")
    assert bar.text() == "Training: 100%"
    widget._on_progress(TrainingProgress(1, 1, 0, 2, 3, math.nan, 1e-3, phase="validate"))
    assert (bar.value(), bar.maximum(), bar.text()) == (0, 2, "Validating: 0%")
    widget._first_epoch = 1
    widget._on_progress(TrainingProgress(1, 1, 10, 40, 3, math.nan, 1e-3, phase="tune"))
    assert (bar.value(), bar.maximum(), bar.text()) == (10, 40, "Choosing thresholds: 25%")
    widget.controls.set_running(False)  # the run ended: the bar no longer names a stage
    assert bar.text() == "25%"


def test_the_time_left_after_a_validated_epoch_counts_validation(
    make_napari_viewer_proxy, monkeypatch
):
    """The time left is timed by the clock, so after the first validation it includes the
    validations to come; it went on saying "then validation and threshold tuning"."""
    from napari_cytomask import progress
    from napari_cytomask.models.training import TrainingProgress

    widget = UNetTrainWidget(make_napari_viewer_proxy())
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    split = {"train": ["a"], "validation": ["b"], "test": []}
    widget._on_progress(TrainingProgress(1, 3, 0, 2, 0, math.nan, 1e-3, phase="split", split=split))

    def step(epoch, n, at):
        now[0] = at
        widget._on_progress(TrainingProgress(epoch, 3, n, 2, 2 * (epoch - 1) + n, 0.5, 1e-3))
        return widget.status.text()

    step(1, 1, 0.0)
    assert step(1, 2, 1.0).endswith("about 4 s left, then validation and threshold tuning.")
    scores = {"mean_average_f1": 0.3}
    epoch = TrainingProgress(1, 3, 2, 2, 2, math.nan, 1e-3, scores, True, phase="epoch")
    widget._on_progress(epoch)
    # 3 s of validation after step 2: 5 s for the 2 steps since the first, 3 to go.
    assert step(2, 1, 5.0).endswith(
        "about 8 s left, validation included; then choosing the thresholds."
    ), widget.status.text()


def test_the_time_left_of_choosing_thresholds_counts_the_settings_only(
    make_napari_viewer_proxy, monkeypatch
):
    """Choosing thresholds first predicts the validation images (10 s each here), then
    scores settings (0.1 s each): timed from the first image, 57 min were said for 10 s."""
    from napari_cytomask import progress
    from napari_cytomask.models.training import TrainingProgress

    widget = UNetTrainWidget(make_napari_viewer_proxy())
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    split = {"train": ["a", "b"], "validation": ["c", "d"], "test": []}
    widget._on_progress(TrainingProgress(0, 1, 0, 3, 0, math.nan, 1e-3, phase="split", split=split))

    def tune(step, at):
        now[0] = at
        widget._on_progress(TrainingProgress(0, 1, step, 70, 0, math.nan, 1e-3, phase="tune"))
        return widget.status.text()

    assert tune(0, 0.0).endswith("predicting image 1 of 2")
    assert tune(1, 10.0).endswith("predicting image 2 of 2")
    assert tune(2, 20.0).endswith(": 2 of 70")
    assert tune(12, 21.0).endswith(": 12 of 70; about 6 s left")


def test_a_trained_model_is_selected_though_the_one_selected_before_is_gone(
    make_napari_viewer_proxy, unet_checkpoint
):
    segmenter = UNetSegmentWidget(make_napari_viewer_proxy())
    old, new = unet_checkpoint(64, seed=1), unet_checkpoint(64, seed=2)
    segmenter.checkpoint.set_model(old)
    old.unlink()
    segmenter._use_trained(new)
    assert segmenter.checkpoint.path() == new
    assert segmenter.tabs.currentIndex() == 0
    assert segmenter.status.text() == f"Model {new.stem} is ready: press Segment cytoplasm."


def test_a_model_trained_during_a_segmentation_is_selected_once_it_ends(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    """A training run that ended while the U-Net segmented swapped the model and thresholds
    under the run, which went on with the old model, and said "press Segment cytoplasm"
    with the button greyed."""
    viewer, segmenter, old, new = _trained_while_segmenting(
        make_napari_viewer_proxy, unet_checkpoint
    )
    assert segmenter.checkpoint.path() == old
    assert "ready" not in segmenter.status.text()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=30_000)
    assert segmenter.checkpoint.path() == new
    made_with = layer_info(viewer.layers["img U-Net cells"])["model"]["path"]
    assert made_with == str(old)
    status = segmenter.status.text()
    assert "'img U-Net cells'" in status or "No cells found" in status
    assert status.endswith(_TRAINED_MEANWHILE.format(new.stem))


def _trained_while_segmenting(make_viewer, unet_checkpoint):
    """A viewer and U-Net step segmenting an image with the model ``old`` when the model
    ``new`` is trained: ``(viewer, segmenter, old, new)``."""
    viewer = make_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64), np.float32), name="img")
    segmenter = UNetSegmentWidget(viewer)
    old, new = unet_checkpoint(64, seed=1), unet_checkpoint(64, seed=2)
    segmenter.checkpoint.set_model(old)
    segmenter.device.setCurrentText("cpu")
    segmenter.overlap.setValue(16)
    segmenter.segment()
    assert segmenter.runner.busy
    segmenter._use_trained(new)
    return viewer, segmenter, old, new


_TRAINED_MEANWHILE = (
    "Model {} was trained meanwhile and is now selected: press Segment cytoplasm to segment "
    "with it."
)


def test_a_model_trained_during_a_segmentation_whose_input_is_closed_is_said_selected(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    """Closing the input stopped the run and said so; that said nothing of the model
    trained meanwhile, selected all the same."""
    viewer, segmenter, _, new = _trained_while_segmenting(make_napari_viewer_proxy, unet_checkpoint)
    viewer.layers.remove("img")
    assert not segmenter.runner.busy
    assert segmenter.checkpoint.path() == new
    status = segmenter.status.text()
    assert status.startswith("'img' was closed")
    assert status.endswith(_TRAINED_MEANWHILE.format(new.stem))


def test_a_model_trained_elsewhere_is_listed_when_the_list_opens(
    make_napari_viewer_proxy, qtbot, unet_checkpoint, model_folder
):
    """A model trained in the separate Train a U-Net dock never appeared in an open
    Segment dock's list; opening the list lists it, and leaves typed thresholds alone."""
    segmenter = UNetSegmentWidget(make_napari_viewer_proxy())
    qtbot.addWidget(segmenter)
    combo = segmenter.checkpoint.combo
    segmenter.foreground_threshold.setValue(0.8)  # typed for the selected model
    model_folder.mkdir()
    shutil.copy(unet_checkpoint(64, seed=1), model_folder / "trained elsewhere.safetensors")
    assert combo.findText("trained elsewhere") == -1
    combo.showPopup()
    combo.hidePopup()
    assert combo.findText("trained elsewhere") >= 0
    assert segmenter.foreground_threshold.value() == pytest.approx(0.8)
    # Trained again into the selected file (Resume from, or Replace), it shows the
    # thresholds its tuning chose, not the ones typed for it before.
    mine = model_folder / "trained elsewhere.safetensors"
    segmenter.checkpoint.set_model(mine)
    segmenter.foreground_threshold.setValue(0.321)
    model = UNetPredictor.from_checkpoint(mine, "cpu").model
    tuned = {"interior_threshold": 0.6, "foreground_threshold": 0.7, "min_size": 5}
    save_checkpoint(mine, model, {**read_description(mine), "postprocess": tuned})
    segmenter._use_trained(mine)
    assert segmenter.foreground_threshold.value() == pytest.approx(0.7)
    # Trained again in the separate Train a U-Net dock: opening the list shows them too.
    tuned = {**tuned, "foreground_threshold": 0.65}
    save_checkpoint(mine, model, {**read_description(mine), "postprocess": tuned})
    os.utime(mine, ns=(time.time_ns(), time.time_ns() + 10**9))  # a later time of change
    combo.showPopup()
    combo.hidePopup()
    assert segmenter.foreground_threshold.value() == pytest.approx(0.65)
    # Its file deleted, opening the list says so, and lists the models there are now.
    shutil.copy(mine, model_folder / "newer.safetensors")
    mine.unlink()
    combo.showPopup()
    combo.hidePopup()
    assert segmenter.status.text().startswith("Model 'trained elsewhere' was deleted after")
    assert combo.findText("newer") >= 0 and combo.findText("trained elsewhere") == -1


def test_a_listed_model_deleted_or_damaged_before_it_is_picked_is_said(
    make_napari_viewer_proxy, unet_checkpoint, model_folder
):
    """Picking it raised a traceback in napari, and the thresholds stayed the last model's."""
    model_folder.mkdir()
    gone, damaged = model_folder / "gone.safetensors", model_folder / "damaged.safetensors"
    shutil.copy(unet_checkpoint(64, seed=1), gone)
    shutil.copy(unet_checkpoint(64, seed=2), damaged)
    segmenter = UNetSegmentWidget(make_napari_viewer_proxy())
    combo = segmenter.checkpoint.combo
    gone.unlink()
    combo.setCurrentIndex(combo.findText(gone.stem))
    assert segmenter.status.text() == (
        f"Model '{gone.stem}' was deleted after it was listed; the list shows the models "
        f"there are now: '{combo.currentText()}' is selected."
    )
    assert combo.findText(gone.stem) == -1 and segmenter.checkpoint.path() is not None
    damaged.write_bytes(b"not a checkpoint")
    combo.setCurrentIndex(combo.findText(damaged.stem))
    assert segmenter.status.text().startswith(f"Model '{damaged.stem}' can no longer be read (")
    assert combo.findText(damaged.stem) == -1


def test_models_that_differ_at_the_end_of_their_names_look_different_closed(qtbot):
    """Fine-tuned models all showed as "Phase contrast-fine-tuned-" in the closed list of
    a 1280-pixel-wide window: the date and time that tell them apart were cut off."""
    from napari_cytomask._qt.unet_widgets import _ListedOnOpening

    shown = []
    for stamp in ("20261204-000817", "20261204-001112"):
        combo = _ListedOnOpening(lambda: None)
        qtbot.addWidget(combo)
        combo.addItem(f"Phase contrast-fine-tuned-{stamp}")
        combo.setFixedWidth(combo.fontMetrics().horizontalAdvance("Phase contrast-fine-tu"))
        shown.append(combo.grab().toImage())
    assert shown[0] != shown[1]


def test_files_in_the_model_folder_that_cannot_be_used_are_listed_greyed_with_why(
    make_napari_viewer_proxy, unet_checkpoint, model_folder
):
    """A model that vanished from the list without a word left the user guessing."""
    model_folder.mkdir()
    good = model_folder / "good.safetensors"
    shutil.copy(unet_checkpoint(64, seed=1), good)
    (model_folder / "cut short.safetensors").write_bytes(good.read_bytes()[:300])
    # One that cannot be read (reads with an I/O error) stopped the dock from opening.
    (model_folder / "unreadable.safetensors").symlink_to("/proc/self/mem")
    combo = UNetSegmentWidget(make_napari_viewer_proxy()).checkpoint.combo
    unreadable = combo.findText("unreadable (not usable)")
    assert "cannot be read" in combo.itemData(unreadable, Qt.ItemDataRole.ToolTipRole)
    index = combo.findText("cut short (not usable)")
    assert index == combo.count() - 2
    assert not combo.model().item(index).isEnabled()
    assert "is truncated or corrupt" in combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert combo.currentText() != "cut short (not usable)"
    assert combo.findText("good") >= 0


def test_the_threshold_passes_say_whether_they_come_first_or_last(make_napari_viewer_proxy):
    """Fine-tuning opened with "Choosing the post-processing thresholds…: 51 of 51", which
    read as the end of a run that had not begun."""
    from dataclasses import replace

    from napari_cytomask.models.training import TrainingProgress

    trainer = UNetTrainWidget(make_napari_viewer_proxy())
    tune = TrainingProgress(0, 5, 51, 51, 0, float("nan"), 1e-3, phase="tune")
    # A resumed run with only its thresholds left (no epoch to train) said it was before
    # the first epoch, choosing the starting model's thresholds.
    trainer._on_progress(replace(tune, epoch=5, step=3))
    assert trainer.status.text() == (
        "Last step: choosing the post-processing thresholds on the validation images: 3 of 51"
    )
    trainer._fine_tuning = True  # as Train starts a fine-tuning run
    trainer._on_progress(tune)
    assert trainer.status.text() == (
        "Before the first epoch: choosing the starting model's thresholds on the validation "
        "images, to score each epoch with them: 51 of 51"
    )
    trainer._on_progress(replace(tune, epoch=1, step=20, steps=20, loss=0.5, phase="train"))
    trainer._on_progress(replace(tune, epoch=5, step=3, steps=51))
    assert trainer.status.text() == (
        "Last step: choosing the post-processing thresholds on the validation images: 3 of 51"
    )


def test_choosing_where_to_start_drops_the_run_offered_to_resume(make_napari_viewer_proxy):
    trainer = UNetTrainWidget(make_napari_viewer_proxy())
    trainer.resume.setText("/models/cancelled.safetensors")  # as after Cancel
    trainer.start_from.activated.emit(0)  # the user picks a start
    assert trainer.resume.text() == ""


def test_resuming_the_starter_model_says_to_start_from_it(make_napari_viewer_proxy, tmp_path):
    """'starter' typed under Resume from failed with "starter does not exist; pick an
    existing checkpoint file", though the starter model is in the model list."""
    trainer = _tiny_trainer_on_a_scan(make_napari_viewer_proxy())
    trainer.resume.setText("starter")
    trainer.train()
    assert trainer.worker is None
    assert "'starter' is the model inside the package" in trainer.status.text()
    assert f"Start from: {START_STARTER}" in trainer.status.text()
    # A file that is not there is named as what Resume from holds: it said "… does not
    # exist; pick an existing checkpoint file", naming no control.
    trainer.resume.setText(str(tmp_path / "gone.safetensors"))
    trainer.train()
    assert trainer.worker is None
    assert trainer.status.text().endswith(
        f"Resume from: {tmp_path / 'gone.safetensors'} does not exist; pick the model file "
        "(.safetensors) of the run to continue, or clear Resume from to start a new run."
    ), trainer.status.text()


def test_a_crop_size_the_network_cannot_take_is_named_as_such(make_napari_viewer_proxy, qtbot):
    """A crop size of 747 typed into Crop size failed with "tile size 747 must be a
    positive multiple of 16", naming a setting the training tab does not have."""
    trainer = _tiny_trainer_on_a_scan(make_napari_viewer_proxy())
    trainer.crop_size.setValue(747)
    trainer.train()
    qtbot.waitUntil(lambda: not trainer.runner.busy, timeout=60_000)
    assert "crop size 747 must be a multiple of" in trainer.status.text()
    assert "tile size" not in trainer.status.text()


def _tiny_trainer_on_a_scan(viewer) -> UNetTrainWidget:
    """A Train tab set to train a tiny U-Net on a small synthetic scan and its cells."""
    scan = make_tilescan(n_tiles=2, shape=(96, 96), cell_radius=10, seed=3)
    viewer.add_image(scan.brightfield, name="BF")
    viewer.add_labels(scan.labels, name="cells")
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    return trainer


def test_saving_over_a_model_file_asks_first(
    make_napari_viewer_proxy, qtbot, tmp_path, monkeypatch
):
    """A name already taken under More > Save as failed with advice for the command line
    ("allow overwriting (cytomask train --overwrite)"), which the dock has no way to do."""
    from napari_cytomask._qt import unet_widgets

    trainer = _tiny_trainer_on_a_scan(make_napari_viewer_proxy())
    existing = tmp_path / "mine.safetensors"
    existing.write_bytes(b"an earlier model")
    monkeypatch.setenv("HOME", str(tmp_path))
    trainer.output.setText("~/mine")  # the ending is added, ~ is the home folder
    questions = []
    answers = iter([False, True])
    monkeypatch.setattr(unet_widgets, "ask_yes_no",
                        lambda parent, title, question, details: questions.append(question)
                        or next(answers))  # fmt: skip
    trainer.train()
    assert trainer.worker is None and existing.read_bytes() == b"an earlier model"
    assert questions == [f"mine.safetensors is already in {tmp_path}. Replace it with this "
                         "run's model?"]  # fmt: skip
    assert "Nothing was trained: mine.safetensors is as it was" in trainer.status.text()
    trainer.train()
    qtbot.waitUntil(lambda: trainer.worker is None, timeout=90_000)
    assert trainer.result is not None and trainer.result.checkpoint == existing
    assert existing.read_bytes() != b"an earlier model"


def test_a_save_as_name_too_long_for_the_system_is_said_not_raised(
    make_napari_viewer_proxy, tmp_path
):
    """Looking up a 300-character name raised "[Errno 36] File name too long" out of the
    Train button into Qt (found by benchmarks/fuzz_dock.py)."""
    trainer = _tiny_trainer_on_a_scan(make_napari_viewer_proxy())
    trainer.output.setText(str(tmp_path / ("x" * 300)))
    trainer.train()
    assert trainer.worker is None
    assert trainer.status.text().startswith("U-Net training failed: the name xxx")
    assert "a file name may have" in trainer.status.text()
    assert list(tmp_path.iterdir()) == []


def test_keys_press_the_buttons_of_the_open_tab(make_napari_viewer_proxy, qtbot):
    """In its own dock (Layers > Segment), Ctrl+Enter and Esc did nothing, though the
    buttons named them; with two tabs, they press those of the tab on show."""
    from qtpy.QtWidgets import QShortcut

    segmenter = UNetSegmentWidget(make_napari_viewer_proxy())
    qtbot.addWidget(segmenter)
    keys = {s.key().toString(): s for s in segmenter.findChildren(QShortcut) if s.isEnabled()}
    assert set(keys) == {"Ctrl+Return", "Ctrl+Enter"}  # idle, Esc is left to the fields
    assert {s.parent() for s in keys.values()} == {segmenter}  # the trainer's are off
    # Either tab running, Esc is the dock's (and presses the Cancel of the tab on show).
    for controls in (segmenter.controls, segmenter.trainer.controls):
        controls.set_running(True)
        escape = [s for s in segmenter.findChildren(QShortcut) if s.isEnabled()]
        assert {s.key().toString() for s in escape} == {"Ctrl+Return", "Ctrl+Enter", "Esc"}
        assert {s.parent() for s in escape} == {segmenter}
        controls.set_running(False)
    pressed = []
    for name, controls in (("segment", segmenter.controls), ("train", segmenter.trainer.controls)):
        controls.run_button.clicked.connect(lambda *_, name=name: pressed.append(name))
    segmenter.controls.run_button.setEnabled(False)  # as while it runs: nothing happens
    keys["Ctrl+Return"].activated.emit()
    segmenter.controls.run_button.setEnabled(True)
    segmenter.runner.fail = lambda err: None  # no layer to segment: the press is what counts
    keys["Ctrl+Return"].activated.emit()
    segmenter.tabs.setCurrentIndex(1)
    segmenter.trainer.runner.fail = lambda err: None
    keys["Ctrl+Enter"].activated.emit()
    assert pressed == ["segment", "train"]


def test_an_input_chosen_in_the_channel_roles_dock_is_what_is_segmented(
    make_napari_viewer_proxy, qtbot
):
    """Made the input in the Channel roles dock (Layers > Data), GFP stayed unchosen in the
    U-Net's own dock, which went on to segment Brightfield: only the main dock's step 1
    told its own pickers."""
    from napari_cytomask._qt.channel_roles import ChannelRolesWidget

    viewer = make_napari_viewer_proxy()
    roles = ChannelRolesWidget(viewer)
    segmenter = UNetSegmentWidget(viewer)
    for widget in (roles, segmenter):
        qtbot.addWidget(widget)
    viewer.open_sample("napari-cytomask", "tilescan")
    assert segmenter.input.currentText() == "Brightfield"
    qtbot.waitUntil(lambda: roles.table.rowCount() == 3)
    row = next(r for r in range(3) if roles.table.cellWidget(r, 0).toolTip() == "GFP")
    picker = roles.table.cellWidget(row, 2)
    picker.setCurrentIndex(picker.findData("input"))
    assert segmenter.input.currentText() == "GFP"
    assert segmenter.trainer.image_layer.currentText() == "GFP"
    # Another metadata edit is no new role: a layer picked by hand stays picked.
    segmenter.input.setCurrentText("Brightfield")
    gfp = viewer.layers["GFP"]
    gfp.metadata = {**gfp.metadata, "note": "imaged on Tuesday"}
    assert segmenter.input.currentText() == "Brightfield"
    # The metrics' outlines of unmatched cells are no masks to train on.
    from napari_cytomask.io.layers import result_metadata

    truth = viewer.layers["Mask (ground truth)"]
    meta = result_metadata(truth, method="false_positives")
    viewer.add_labels(truth.data.copy(), name="false positives (x vs y)", metadata=meta)
    offered = [layer.name for layer in segmenter.trainer.mask_layer.layers()]
    assert offered == ["Mask (ground truth)"]


def test_cells_corrected_from_the_console_are_kept_by_the_next_run(
    make_napari_viewer_proxy, qtbot, monkeypatch, shared_data
):
    """A correction written into the data (napari's console, a script, another plugin)
    rather than painted was overwritten by the next run, with no undo, and exported as
    not edited by hand."""
    from napari_cytomask._qt import _layers
    from napari_cytomask.io.export import from_layer

    said = []
    monkeypatch.setattr(_layers, "show_info", said.append)
    viewer = make_napari_viewer_proxy()
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:160, :160]
    viewer.add_image(raw, name="BF")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)

    def run(name: str) -> Labels:
        segmenter.segment()
        qtbot.waitUntil(lambda: name in viewer.layers and not segmenter.runner.busy, timeout=60_000)
        return viewer.layers[name]

    cells = run("BF U-Net cells")
    assert from_layer(cells).edited is False
    run("BF U-Net cells")  # an untouched result is updated in place
    assert [layer.name for layer in viewer.layers] == ["BF", "BF U-Net cells"]
    cells.data[:10, :10] = 999  # a cell drawn in place, as from the console
    cells.refresh()
    corrected = cells.data.copy()
    assert from_layer(cells).edited is True
    new = run("BF U-Net cells [2]")
    np.testing.assert_array_equal(cells.data, corrected)
    assert not (new.data == 999).any() and from_layer(new).edited is False
    assert said == ["'BF U-Net cells' holds your edits, so it is kept; the new result is in "
                    "'BF U-Net cells [2]'."]  # fmt: skip
    assert new.data.any()  # cells to clear
    new.data = np.zeros_like(new.data)  # a whole new array, as from a script
    run("BF U-Net cells [3]")
    assert not new.data.any()


def test_an_image_at_another_pixel_size_is_resampled_for_the_starter(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """The layer's pixel size reaches the network: at 0.435 µm the starter model missed
    most cells, then told the user to resample the image in Fiji; it is resampled for the
    network now, and the cells keep the layer's pixels."""
    from skimage.io import imread
    from skimage.transform import rescale

    from napari_cytomask.metrics import evaluate

    viewer = make_napari_viewer_proxy()
    folder = shared_data / "usiigaci-phc" / "set11"
    phase = tifffile.imread(folder / "raw.tif")[:256, :256]
    truth = rescale(imread(folder / "instances_ids.png")[:256, :256], 2, order=0,
                    preserve_range=True, anti_aliasing=False).astype(np.int32)  # fmt: skip
    larger = rescale(phase, 2, order=1, preserve_range=True).astype(np.float32)
    viewer.add_image(larger, name="x2", scale=(0.435, 0.435), units=("µm", "µm"))
    viewer.add_image(larger, name="lost")  # the same image, its pixel size lost
    segmenter = UNetSegmentWidget(viewer)
    assert segmenter.resample.isChecked() and segmenter.pixel_size.value() == 0
    segmenter.tta.setChecked(False)

    def run(name: str) -> np.ndarray:
        segmenter.input.setCurrentText(name)
        segmenter.segment()
        qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
        return np.asarray(viewer.layers[f"{name} U-Net cells"].data)

    # The box at its lowest shows what the input records, and that is what is used.
    segmenter.input.setCurrentText("lost")
    assert segmenter.pixel_size.text() == "not in image"
    segmenter.input.setCurrentText("x2")
    assert segmenter.pixel_size.text() == "0.435 (image)"
    # A stray arrow key steps from the image's size, not from 0 (0.05 µm).
    segmenter.pixel_size.stepBy(1)
    assert segmenter.pixel_size.value() == pytest.approx(0.485)
    segmenter.pixel_size.setValue(0)
    cells = run("x2")
    assert cells.shape == larger.shape and evaluate(truth, cells).matches.f1[0] > 0.85
    assert segmenter.status.text().endswith(
        "The image's 0.435 µm pixels were resampled to the model's 0.87 µm for the "
        "network; the cells keep the image's pixels, and the minimum cell size (570 px at the "
        "model's pixel size) is 2280 of them."
    )
    parameters = layer_info(viewer.layers["x2 U-Net cells"])["parameters"]
    assert parameters["zoom"] == (0.5, 0.5) and parameters["resample"] is True
    assert parameters["min_size"] == 570 and parameters["min_size_image_px"] == 2280
    # Unticked: the image as it is, and the note says what was missed.
    segmenter.resample.setChecked(False)
    assert evaluate(truth, run("x2")).matches.f1[0] < 0.5
    assert (
        "The image's pixels are 0.435 µm, the starter model's images' 0.87 µm: cells are "
        "2.0 times larger in pixels than it knows" in segmenter.status.text()
    )
    # A layer that lost its pixel size is resampled when the user gives it.
    segmenter.resample.setChecked(True)
    assert evaluate(truth, run("lost")).matches.f1[0] < 0.5
    segmenter.pixel_size.setValue(0.435)
    # A size typed for one input is not forced on another that records its own, and is
    # kept for its own (it was forgotten once another input had been chosen).
    segmenter.input.setCurrentText("x2")
    assert segmenter.pixel_size.text() == "0.435 (image)"
    segmenter.input.setCurrentText("lost")
    assert segmenter.pixel_size.value() == 0.435
    np.testing.assert_array_equal(run("lost"), cells)
    assert "were resampled" in segmenter.status.text()
    # Once used, it is the image's size: the layer, its cells of the run before (updated
    # in place) and their export have it; the cells kept the file's wrong or lost one.
    for name in ("lost", "lost U-Net cells"):
        layer = viewer.layers[name]
        assert pixel_size_um(layer.scale, layer.units) == (0.435, 0.435), name
    assert segmenter.pixel_size.text() == "0.435 (image)"
    assert from_layer(viewer.layers["lost U-Net cells"]).scale[-2:] == (0.435, 0.435)
    # A scale given to the chosen input later (layer properties, a script) is shown and
    # used, in place of a size typed for it; one given to a layer no longer chosen is not
    # followed.
    viewer.layers["x2"].scale = (0.87, 0.87)
    viewer.layers["lost"].scale = (0.435, 0.435)
    viewer.layers["lost"].units = ("µm", "µm")
    assert segmenter.pixel_size.text() == "0.435 (image)"
    viewer.layers["lost"].units = ("pixel", "pixel")
    assert segmenter.pixel_size.text() == "not in image"


def test_a_pixel_size_typed_is_given_to_the_files_layers_as_the_run_starts(
    make_napari_viewer_proxy, qtbot
):
    """The size typed for a file's channel is the file's: what lies over the image moves
    with it, or it would no longer overlay it (its channels; results at a coarser level,
    keeping their coarser pixels; results of results; a ground truth in a file of its own);
    another scan's layers keep theirs. The view shows the whole image again."""
    from napari.layers._source import layer_source

    viewer = make_napari_viewer_proxy()
    image = np.random.default_rng(0).random((200, 200), np.float32)
    blank = np.zeros((200, 200), np.uint8)
    with layer_source(path="/data/a.tif"):
        phase = viewer.add_image(image, name="phase")
        mask = viewer.add_labels(blank, name="mask")
        coarse = viewer.add_labels(
            blank[::2, ::2], name="coarse", scale=(2, 2), translate=(0.5, 0.5)
        )
    with layer_source(path="/data/a_truth.png"):
        truth = viewer.add_labels(blank, name="truth")
    ids = np.zeros((200, 200), np.uint16)
    ids[20:60, 20:60], ids[100:150, 90:160] = 1, 2
    with layer_source(path="/data/a_ids.png"):  # label ids napari opened as an image
        ids_image = viewer.add_image(ids, name="ids")
    split = viewer.add_labels(blank, name="split")  # a result of a result, of no file
    segmenter = UNetSegmentWidget(viewer)
    segmenter.input.setCurrentText("phase")

    def segment_at(size: float) -> None:
        segmenter.pixel_size.setValue(size)
        segmenter.segment()
        segmenter.cancel()
        qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)

    segment_at(0.5)
    for layer in (phase, mask, truth, split, ids_image):
        assert pixel_size_um(layer.scale, layer.units) == (0.5, 0.5), layer.name
    assert pixel_size_um(coarse.scale, coarse.units) == (1.0, 1.0)
    np.testing.assert_allclose(coarse.translate, (0.25, 0.25))
    centre = viewer.layers.extent.world[:, -2:].mean(axis=0)
    assert centre[0] < 60  # the image is 100 µm wide now, not 200
    np.testing.assert_allclose(viewer.camera.center[-2:], centre, atol=1)
    assert segmenter.pixel_size.text() == "0.5 (image)"
    # Another scan lying over it keeps its own.
    with layer_source(path="/data/b.tif"):
        other = viewer.add_image(image, name="other", scale=(0.5, 0.5))
    with layer_source(path="/data/set9/instances_ids.png"):  # another field's ground truth
        far = viewer.add_labels(blank, name="far", scale=(0.5, 0.5))
    segment_at(0.25)
    assert pixel_size_um(phase.scale, phase.units) == (0.25, 0.25)
    for layer in (other, far):
        assert tuple(layer.scale) == (0.5, 0.5), layer.name
        assert pixel_size_um(layer.scale, layer.units) is None


def test_the_status_says_while_it_runs_that_the_image_is_enlarged_for_the_model(
    make_napari_viewer_proxy, qtbot, monkeypatch
):
    """A 3.5 µm-pixel image took 23 times as long as at its own size for the starter model
    (0.87 µm), with nothing said until it ended: the progress line says so from the first
    tile, with the time left."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.random.default_rng(0).random((96, 96), np.float32), name="coarse",
                     scale=(2.0, 2.0), units=("µm", "µm"))  # fmt: skip
    lines = []
    shown = StepControls.show_progress

    def show_progress(controls, event):
        shown(controls, event)
        lines.append(controls.status.text())

    monkeypatch.setattr(StepControls, "show_progress", show_progress)
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: "coarse U-Net cells" in viewer.layers, timeout=60_000)
    assert lines[0].startswith(
        "Predicting tiles (the image enlarged to 5× its pixels for the model's pixel size: "
        "5 times as long): 0 of "
    )
    assert not any("enlarged" in line for line in lines if line.startswith("Separating"))


def test_the_cost_of_enlarging_is_said_before_segmenting(make_napari_viewer_proxy):
    """A Micro-Manager file recording 5.23 µm pixels was enlarged to 36 times its pixels
    for the starter model with nothing said until Segment was pressed: the dock says it
    under the pixel size as soon as the image is chosen, and follows what changes it."""
    viewer = make_napari_viewer_proxy()
    coarse = viewer.add_image(np.zeros((8, 8), np.float32), name="coarse",
                              scale=(5.23, 5.23), units=("µm", "µm"))  # fmt: skip
    viewer.add_image(np.zeros((8, 8), np.float32), name="lost")
    segmenter = UNetSegmentWidget(viewer)
    note = segmenter.scale_note
    segmenter.input.setCurrentText("coarse")
    assert not note.isHidden()
    assert note.text() == (
        "The image's 5.23 µm pixels will be resampled to the model's 0.87 µm: 36× the "
        "pixels, so segmenting takes 36 times as long. If the image's pixels are not "
        "5.23 µm, type their size above."
    )
    segmenter.pixel_size.setValue(0.9)  # the true size, typed
    assert note.isHidden() and not note.text()
    segmenter.pixel_size.setValue(segmenter.pixel_size.minimum())
    assert "36× the pixels" in note.text()
    segmenter.resample.setChecked(False)  # segmented as it is: nothing enlarged
    assert note.isHidden()
    segmenter.resample.setChecked(True)
    coarse.scale = (1.74, 1.74)  # a size given to the layer later: 4× the pixels
    assert "resampled to the model's 0.87 µm: 4× the pixels" in note.text()
    segmenter.input.setCurrentText("lost")  # no pixel size: nothing to say
    assert note.isHidden()


def test_a_pixel_size_finer_than_a_microscopes_is_refused_as_it_is_typed(
    make_napari_viewer_proxy, monkeypatch
):
    """The box took 0.0005 µm, which labels were saved with and the reader then dropped
    (it takes 0.001 to 50 µm, as a file's calibration)."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((8, 8), np.float32), name="lost")
    segmenter = UNetSegmentWidget(viewer)
    started = []
    monkeypatch.setattr(segmenter.runner, "run_now", lambda *a, **k: started.append(a))
    segmenter.input.setCurrentText("lost")
    segmenter.pixel_size.setValue(0.0005)
    said = (
        "A pixel size of 0.0005 µm is finer than a microscope gives (from 0.001 µm): type it "
        "in µm, or 0 for the image's own."
    )
    assert segmenter.scale_note.text() == said and not segmenter.scale_note.isHidden()
    segmenter.segment()
    assert segmenter.status.text().endswith(said) and started == []
    assert viewer.layers["lost"].scale.tolist() == [1.0, 1.0]


def test_the_pixel_size_box_tooltip_gives_the_recorded_size_whole(make_napari_viewer_proxy):
    """ "0.435 × 0.87 (image)" did not fit the box in a dock of napari's least width."""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((8, 8), np.float32), name="flat", scale=(0.435, 0.87),
                     units=("µm", "µm"))  # fmt: skip
    viewer.add_image(np.zeros((8, 8), np.float32), name="lost")
    segmenter = UNetSegmentWidget(viewer)
    box = segmenter.pixel_size
    segmenter.input.setCurrentText("flat")
    assert box.text() == "0.435 × 0.87 (image)"
    assert box.toolTip().endswith(" The image has pixels of 0.435 × 0.87 µm (Y × X).")
    segmenter.input.setCurrentText("lost")
    assert box.text() == "not in image" and "The image records" not in box.toolTip()


def test_frames_of_a_stack_that_show_nothing_are_named(
    make_napari_viewer_proxy, qtbot, shared_data, tmp_path
):
    """A black frame (closed shutter) among three was counted with the others: '49 cells
    in all 3 frames', nothing said of the frame with none. The stack is opened from a file,
    as most are: read lazily."""
    viewer = make_napari_viewer_proxy()
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:160, :160]
    stack = np.stack([phase, np.zeros_like(phase), phase]).astype(np.float32)
    stack[1, :8] = np.nan  # no number, and zeros: still nothing to see
    tifffile.imwrite(tmp_path / "movie.tif", stack, imagej=True, metadata={"axes": "TYX"})
    viewer.open(tmp_path / "movie.tif", plugin="napari-cytomask")
    assert not isinstance(viewer.layers["movie"].data, np.ndarray)
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: "movie U-Net cells" in viewer.layers, timeout=60_000)
    assert not viewer.layers["movie U-Net cells"].data[1].any()
    assert (
        "in all 3 frames. Frame 1 shows nothing (one value or no number, as with a closed "
        "shutter), so no cells were found there." in segmenter.status.text()
    )


def test_a_colour_picture_is_segmented_on_its_grey_version_with_its_notes(
    make_napari_viewer_proxy, qtbot, shared_data, tmp_path
):
    """An RGB layer was segmented on its red alone, without a word (a bluish picture lost
    a third of its cells), and nothing was said of its saturated pixels. Opened from a
    file, as most are: read lazily."""
    from napari_cytomask.pipeline import Preset, Segmenter, UNetStep
    from napari_cytomask.progress import drain

    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[160:352, 160:352]
    low, high = np.percentile(raw, (0.5, 99.5))
    light = np.clip((raw.astype(np.float32) - low) / (high - low), 0, 1)
    picture = np.round(np.stack([light * 0.06, light * 0.6, light], -1) * 255).astype(np.uint8)
    picture[:64, :64] = 255  # 11% of the pixels: too much light there
    tifffile.imwrite(tmp_path / "colour.tif", picture, photometric="rgb")
    viewer = make_napari_viewer_proxy()
    (layer,) = viewer.open(tmp_path / "colour.tif", plugin="napari-cytomask")
    assert layer.rgb and not isinstance(layer.data, np.ndarray)
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: "colour U-Net cells" in viewer.layers, timeout=60_000)
    cells = viewer.layers["colour U-Net cells"]
    grey = picture.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    expected = drain(Segmenter(Preset(unet=UNetStep(tta=False)), "cpu").iter_segment([grey]))
    np.testing.assert_array_equal(cells.data, expected)
    status = segmenter.status.text()
    assert "The model takes one channel: it segmented the grey version of the colour " in status
    assert "11% of the image's pixels are at its brightest value: it looks saturated" in status
    parameters = layer_info(cells)["parameters"]
    assert parameters["segmented_on"] == "grey version of the colour picture"


def test_the_keyboard_focus_follows_the_run_button_to_cancel_and_back(qtbot):
    """Started from the keyboard, a step's disabled run button passed the focus out of the
    step (to napari's button that hides the dock): Esc no longer cancelled, and the next
    Space hid the dock while the step ran on."""
    from qtpy.QtWidgets import QPushButton, QVBoxLayout

    from napari_cytomask._qt._live import take_keys

    window = QWidget()
    controls = StepControls("Segment cytoplasm", "Segment.")
    hide = QPushButton("Hide this panel")  # what napari puts after a dock's content
    layout = QVBoxLayout(window)
    layout.addWidget(controls)
    layout.addWidget(hide)
    cancelled = []
    controls.cancel_button.clicked.connect(lambda: cancelled.append("button"))
    take_keys(window, lambda: None, lambda: cancelled.append("Esc"))
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    controls.run_button.setFocus()
    qtbot.waitUntil(controls.run_button.hasFocus)

    controls.set_running(True)
    assert controls.cancel_button.hasFocus()
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_Escape)
    assert cancelled == ["Esc"]
    controls.set_running(False)
    assert controls.run_button.hasFocus()
    assert not hide.hasFocus()
    # A run that ends while another window is active gives the focus back all the same.
    other = QWidget()
    qtbot.addWidget(other)
    controls.set_running(True)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    controls.set_running(False)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    assert controls.run_button.hasFocus()


def test_a_mask_opened_alone_is_named_when_there_is_no_image(make_napari_viewer_proxy):
    """Only a mask file open: the dock said 'open an image or tile scan first', though a
    file was open, which the command line names as holding label ids."""
    from napari_cytomask._qt.sam2_widget import Sam2Widget

    viewer = make_napari_viewer_proxy()
    segmenter, sam2 = UNetSegmentWidget(viewer), Sam2Widget(viewer)
    segmenter.segment()
    assert "open an image or tile scan, or pick one under Input image" in segmenter.status.text()
    labels = np.zeros((32, 32), np.uint16)
    labels[4:12, 4:12] = 1
    viewer.add_labels(labels, name="G_mask_only")
    segmenter.segment()
    sam2.segment()
    for status in (segmenter.status.text(), sam2.status.text()):
        assert "No image to segment: 'G_mask_only' holds label ids (a mask)" in status
        assert "make it one in Channel roles" in status


#: What a run of the starter model with its defaults records that its result's status reads.
_RUN = {"min_size": 570, "pixel_size_um": None, "resample": True}


def test_cells_of_a_channel_not_marked_as_the_input_say_so(make_napari_viewer_proxy):
    """A fluorescence scan's first channel, taken because none looked like transmitted
    light, was segmented without a word once cells were found."""
    from napari.layers import Labels
    from napari.layers._source import layer_source

    from napari_cytomask.io.layers import METADATA_KEY, result_metadata

    viewer = make_napari_viewer_proxy()
    ids = np.zeros((32, 32), np.uint16)
    ids[4:12, 4:12] = 1
    widget = UNetSegmentWidget(viewer)
    for role, said in (("image", True), ("input", False)):
        record = {METADATA_KEY: {"role": role, "source": "s.tif"}}
        layer = viewer.add_image(ids * 100, name=f"{role} c1", metadata=record)
        metadata = result_metadata(layer, method="unet", parameters=_RUN)
        cells = Labels(ids, name=f"{role} c1 U-Net cells", metadata=metadata)
        widget._on_result((layer, [], cells, "", (), None))
        text = widget.status.text()
        assert text.startswith("1 cell")
        assert (
            f"'{role} c1' is not marked as the channel to segment (no channel of its file "
            "looked like transmitted light): if another is, pick it under Input image." in text
        ) is said
    # Opened by napari's own reader: one image has nothing else to pick; a file's planes
    # shown as one stack may be channels (an ImageJ phase and mask became 2 positions).
    for name, data in (("one", ids * 100), ("planes", np.stack([ids * 100, ids]))):
        with layer_source(path=f"/data/{name}.tif"):
            layer = viewer.add_image(data, name=name)
        metadata = result_metadata(layer, method="unet", parameters=_RUN)
        cells = Labels(np.zeros_like(data) + (data > 0), name=f"{name} cells", metadata=metadata)
        widget._on_result((layer, [], cells, "", (), None))
        text = widget.status.text()
        assert "not marked" not in text
        assert ("open it with File > Open with Plugin > Cytomask" in text) is (name == "planes")


def test_the_frames_choice_is_named_after_what_the_input_s_frames_are(make_napari_viewer_proxy):
    """A time-lapse's frames were offered as 'all positions' and 'current position'."""
    from napari_cytomask._qt._layers import ALL_POSITIONS, CURRENT_POSITION
    from napari_cytomask._qt._settings import set_value, value_of

    viewer = make_napari_viewer_proxy()
    stacks = {
        "movie": (("T", "y", "x"), "time points", "time point"),
        "tiles": (("P", "y", "x"), "positions", "position"),
        "volume": (("Z", "y", "x"), "planes", "plane"),
        "scan": (("P", "T", "y", "x"), "frames", "frame"),
        "pages": (None, "frames", "frame"),
    }
    for name, (axes, _, _) in stacks.items():
        lead = len(axes) - 2 if axes else 1
        viewer.add_image(np.zeros((2,) * lead + (32, 32)), name=name, axis_labels=axes)
    segmenter = UNetSegmentWidget(viewer)
    choice = segmenter.positions
    set_value(choice, CURRENT_POSITION)
    changed = []
    choice.currentTextChanged.connect(changed.append)  # what marks a setting edited
    for name, (_, several, one) in stacks.items():
        segmenter.input.set_layer(viewer.layers[name])
        assert choice.accessibleName() == several.capitalize()
        assert [choice.itemText(i) for i in range(choice.count())] == [
            f"all {several}",
            f"current {one}",
        ]
        assert choice.label.text() == several.capitalize()
        # The choice and what is remembered of it stay the same whatever the words.
        assert choice.key() == CURRENT_POSITION and value_of(choice) == CURRENT_POSITION
    assert changed == []  # new words are no new choice
    set_value(choice, ALL_POSITIONS)
    assert choice.currentText() == "all frames" and choice.isEnabled()
    # A single image has no frames to choose among: it offered "all positions" all the same.
    segmenter.input.set_layer(viewer.add_image(np.zeros((32, 32)), name="one"))
    assert not choice.isEnabled()
    segmenter.input.set_layer(viewer.layers["movie"])
    assert choice.isEnabled()


def test_a_stack_s_confidence_is_the_command_line_s(make_napari_viewer_proxy, qtbot, shared_data):
    """The same labels of a stack recorded another confidence from the dock (0.809, the
    mean of its frames') than from `cytomask segment` (0.823, of all their cells): a stack
    near the "unsure" line was warned about in one and not the other. A frame of many
    cells and one of a few tell the two apart."""
    from napari_cytomask.pipeline import Preset, Segmenter, UNetStep
    from napari_cytomask.progress import drain

    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")
    stack = np.stack([raw[:192, :192], raw[:192, -96:].repeat(2, axis=1)])
    viewer = make_napari_viewer_proxy()
    viewer.add_image(stack, name="movie", axis_labels=("T", "y", "x"))
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: "movie U-Net cells" in viewer.layers, timeout=60_000)
    cells = viewer.layers["movie U-Net cells"]
    command_line = drain(Segmenter(Preset(unet=UNetStep(tta=False)), "cpu").iter_run([stack]))
    np.testing.assert_array_equal(cells.data > 0, command_line.labels > 0)
    assert layer_info(cells)["model"]["confidence"] == command_line.confidence


def test_the_position_on_show_is_segmented_alone_into_the_stack(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """A 2-position, 10-frame time-lapse enlarged for the model was to take 23 minutes,
    with no way to look at one frame first (SAM2 had one)."""
    from napari_cytomask._qt._layers import ALL_POSITIONS, CURRENT_POSITION
    from napari_cytomask._qt._settings import set_value
    from napari_cytomask.io.export import from_layer

    viewer = make_napari_viewer_proxy()
    phases = [
        tifffile.imread(shared_data / "usiigaci-phc" / name / "raw.tif")[:160, :160]
        for name in ("set11", "set12", "set1")
    ]
    viewer.add_image(np.stack(phases), name="movie", axis_labels=("T", "y", "x"))
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    set_value(segmenter.positions, CURRENT_POSITION)

    def run():
        segmenter.segment()
        qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
        return viewer.layers["movie U-Net cells"]

    viewer.dims.set_current_step(0, 1)
    cells = run()
    assert cells.data.shape == (3, 160, 160)
    assert cells.data[1].any() and not cells.data[0].any() and not cells.data[2].any()
    record = layer_info(cells)
    assert record["frames_made"] == ["1"] and record["parameters"] is None
    assert record["previewed_frames"]["1"]["parameters"]["positions"] == CURRENT_POSITION
    n = int(cells.data[1].max())
    assert segmenter.status.text().startswith(
        f"{n} cell{'s' * (n != 1)} in time point 1 of 'movie U-Net cells' ('all time points' "
        "segments them all; made so far: time point 1)."
    )
    first = cells.data[1].copy()
    viewer.dims.set_current_step(0, 2)
    assert run().unique_id == cells.unique_id  # the same layer, updated
    np.testing.assert_array_equal(cells.data[1], first)
    assert cells.data[2].any(), segmenter.status.text()
    # Numbered on from the frame made before it, as a run of every frame numbers them.
    assert cells.data[2][cells.data[2] > 0].min() == first.max() + 1
    n = len(np.unique(cells.data[2])) - 1  # counted, not its largest id
    assert segmenter.status.text().startswith(f"{n} cell{'s' * (n != 1)} in time point 2 of")
    assert layer_info(cells)["frames_made"] == ["1", "2"]
    assert from_layer(cells).edited is False  # the frames are the step's, not the user's
    # Every position, then one again with other settings: kept apart in the record.
    set_value(segmenter.positions, ALL_POSITIONS)
    run()
    record = layer_info(cells)
    assert record.get("frames_made") is None and "previewed_frames" not in record
    # The same cells as the frame alone (numbered on from frame 0's).
    np.testing.assert_array_equal(cells.data[1] > 0, first > 0)
    assert len(np.unique(cells.data[1])) == len(np.unique(first))
    others = cells.data[[0, 2]].copy()
    set_value(segmenter.positions, CURRENT_POSITION)
    segmenter.min_size.setValue(segmenter.min_size.value() + 500)
    viewer.dims.set_current_step(0, 1)
    run()
    np.testing.assert_array_equal(cells.data[[0, 2]], others)
    # Its new cells take no id of the other frames' (they were numbered from 1 again).
    assert cells.data[1][cells.data[1] > 0].min() == others.max() + 1
    record = layer_info(cells)
    assert record.get("frames_made") is None and record["parameters"]["positions"] == (
        "all positions"
    )
    assert list(record["previewed_frames"]) == ["1"]
    assert "(the other frames keep their earlier cells)" in segmenter.status.text()
    assert from_layer(cells).edited is False
    cells.data[2, :5, :5] = 999  # a frame not written by the last run, corrected by hand
    cells.refresh()
    assert from_layer(cells).edited is True
    # Another position segmented alone goes into the same layer: its corrections are in
    # other frames, which keep them (it went into a layer of its own, one per position).
    viewer.dims.set_current_step(0, 0)
    assert run().unique_id == cells.unique_id and "movie U-Net cells [2]" not in viewer.layers
    assert (cells.data[2, :5, :5] == 999).all() and from_layer(cells).edited is True
    # They stay the user's for the runs after it: the corrected frame is not written over.
    viewer.dims.set_current_step(0, 1)
    assert run().unique_id == cells.unique_id
    viewer.dims.set_current_step(0, 2)
    run()
    assert layer_info(viewer.layers["movie U-Net cells [2]"])["frames_made"] == ["2"]
    assert (cells.data[2, :5, :5] == 999).all()


def test_a_ground_truth_png_opened_as_an_image_is_not_the_default_input(
    make_napari_viewer_proxy, shared_data
):
    """raw.tif and instances_ids.png opened together by napari's reader: the U-Net took
    the ground truth, the newest image, for the image to segment."""
    viewer = make_napari_viewer_proxy()
    folder = shared_data / "usiigaci-phc" / "set6"
    viewer.open([str(folder / "raw.tif"), str(folder / "instances_ids.png")], plugin="napari")
    segmenter = UNetSegmentWidget(viewer)
    assert [layer.name for layer in viewer.layers] == ["raw", "instances_ids"]
    assert segmenter.input.currentText() == "raw"


def test_a_colour_picture_is_fine_tuned_on_in_grey(make_napari_viewer_proxy):
    """Fine-tuning the starter model (one channel) on a colour picture failed with "...
    expects 1 input channel(s) but 3 were given" and the package's path, though
    segmenting takes such a picture's grey version."""
    from napari_cytomask.labels import grey_version

    viewer = make_napari_viewer_proxy()
    scan = make_tilescan(n_tiles=1, shape=(128, 96), seed=1)
    grey = scan.brightfield[0].astype(np.float32)
    colours = np.stack([grey, grey * 0.5, grey * 0.25], axis=-1).astype(np.uint16)
    viewer.add_image(colours, name="colour", rgb=True)
    viewer.add_labels(scan.labels[0], name="mask")
    trainer = UNetTrainWidget(viewer)
    trainer.start_from.setCurrentText(START_STARTER)
    (sample,), _, notes = trainer._samples()
    assert sample.channels.shape == (1, 128, 96)
    np.testing.assert_allclose(sample.channels[0], grey_version(colours), rtol=1e-6)
    assert notes == [
        "'colour' is a colour picture and the model training starts from takes one channel: "
        "it learns from the grey version of the colour picture, which it segments too."
    ]
    # From random weights, the network takes its three colours.
    trainer.start_from.setCurrentText(START_RANDOM)
    (sample,), _, notes = trainer._samples()
    assert sample.channels.shape == (3, 128, 96) and notes == []


def test_training_in_the_dock_can_be_given_a_time_limit(make_napari_viewer_proxy, tmp_path):
    """`cytomask train --time-limit` had no counterpart in the dock: a biologist who could
    spare ten minutes had to work out epochs and steps from the estimate."""
    from napari_cytomask.models.training import TrainingResult, saved_epoch_note

    viewer = make_napari_viewer_proxy()
    _labelled_layers(viewer)
    trainer = UNetTrainWidget(viewer)
    assert trainer.time_limit.value() == 0 and trainer.time_limit.text() == "no limit"
    trainer.epochs.setValue(50)
    trainer.steps.setValue(100)
    trainer.time_limit.setValue(10)
    estimate = trainer.estimate.text()
    assert re.fullmatch(
        r"About \d+ min on the CPU: 10 min training to the time limit \(50 × 100 steps would "
        r"take about .+\), and .+ validating the epoch under way and choosing the thresholds\.",
        estimate,
    ), estimate
    assert "time_limit" in trainer.settings_controls()
    started = []
    trainer.runner.run_now = lambda *args, **kwargs: started.append(args)
    trainer.train()
    # The run's start says the time as the box did: it said the time of all 5000 steps.
    assert f": a{estimate[1:]} The best network so far is saved" in trainer.status.text()
    (args,) = started
    (settings,) = [a for a in args if type(a).__name__ == "TrainingSettings"]
    assert settings.time_limit == 600
    # Its summary says where it stopped, and which epoch's network it saved: that of an
    # epoch the limit cut short, as `cytomask train` says it (the dock did not).
    training = {
        "epochs_done": 3,
        "best_epoch": 3,
        "best_steps_in_epoch": 40,
        "history": [{"epoch": 3, "steps_in_epoch": 40}],
        "settings": {"epochs": 50, "steps_per_epoch": 100, "time_limit": 600},
    }
    scores = {"validation": {"mean_average_f1": 0.5}}
    result = TrainingResult(tmp_path / "m.safetensors", {"training": training, "scores": scores})
    trainer._on_result(result)
    # Once (it said the cut twice), and not "after 3 of 50 epochs" of a third cut short.
    assert (
        "It stopped at the time limit (10 min) in epoch 3 of 50, at step 40 of 100. The model "
        "saved is that of epoch 3 up to that step: the best on the validation images "
        "(mean-average F1 0.500)."
    ) in trainer.summary
    assert saved_epoch_note(result.description) in trainer.status.text()


def test_the_estimate_counts_validating_and_choosing_the_thresholds(make_napari_viewer_proxy):
    """A run of 5 steps was said to take "about 1 s, plus validating each epoch and
    choosing the thresholds", and took 101 s: those were left out of the figure, and they
    take most of a short run's time. (Only the layers' shapes count: empty ones.)"""
    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((2, 512, 512), np.uint8), name="img")
    viewer.add_labels(np.zeros((2, 512, 512), np.uint8), name="two frames")
    viewer.add_labels(np.zeros((20, 512, 512), np.uint8), name="twenty frames")
    trainer = UNetTrainWidget(viewer)
    trainer.device.setCurrentText("cpu")
    trainer.start_from.setCurrentText(START_RANDOM)
    trainer.epochs.setValue(1)
    trainer.steps.setValue(5)
    trainer.batch_size.setValue(1)
    trainer.crop_size.setValue(64)
    training, frame = trainer.estimated_seconds(), 512 * 512 / 1e6
    assert training < 1
    said = []
    for mask, validated in (("two frames", 1), ("twenty frames", 2)):  # frames validated
        trainer.mask_layer.setCurrentText(mask)
        figure = re.match(r"About (\d+) (s|min) ", trainer.estimate.text())
        assert figure and int(figure[1]) * (60 if figure[2] == "min" else 1) > 10 * training
        total = training + trainer._validation_seconds(validated * frame, 1)
        assert trainer.estimate.text() == (
            f"About {duration(total)} on the CPU: 1 s training (1 × 5 steps), and "
            f"{duration(total - training)} validating each epoch and choosing the thresholds."
        )
        said.append(trainer.estimate.text())
    assert said[0] != said[1]
    # A fine-tuning run chooses and scores its starting model's thresholds first (a
    # resumed one did that already).
    before, from_random = trainer.estimate.text(), trainer._validation_seconds(0.5, 1)
    trainer.start_from.setCurrentText(START_STARTER)
    assert trainer._validation_seconds(0.5, 1) > from_random
    assert trainer._validation_seconds(0.5, 1, epochs_done=1) == pytest.approx(from_random)
    assert trainer.estimate.text() != before
    # A run typed into Resume from has scored its start already: the figure says so at once.
    before = trainer.estimate.text()
    trainer.resume.setText("earlier.safetensors")
    assert trainer.estimate.text() != before
    assert "(1 × 5 steps)" in trainer.estimate.text()  # a file not there: all its epochs
    trainer.resume.clear()
    assert trainer.estimate.text() == before
    # Images in folders are read as training starts: a figure per megapixel of them.
    trainer.source.setCurrentText("Folders")
    assert trainer.estimate.text() == (
        "About 1 s on the CPU training (1 × 5 steps), plus validating each epoch and choosing "
        f"the thresholds: about {duration(trainer._validation_seconds(1, 1))} a megapixel of "
        "validation images."
    )


def test_a_run_with_no_image_to_validate_on_says_so_before_it_starts(
    make_napari_viewer_proxy, qtbot, unet_checkpoint
):
    """Of a lone image too small to hold a part back, the estimate counted validating each
    epoch, and a fine-tuning run's start said "until one scores above the starting model,
    that model is kept": its epochs are kept by their training loss, and nothing scored."""
    viewer = make_napari_viewer_proxy()
    scan = make_tilescan(n_tiles=1, shape=(120, 120), seed=1)  # a quarter: 30 rows, too few
    viewer.add_image(scan.brightfield[0], name="small")
    mask = viewer.add_labels(scan.labels[0], name="small mask")
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.start_from.setCurrentText(START_CHECKPOINT)
    trainer.init_path.setText(str(unet_checkpoint()))
    said = (
        f"bout {duration(trainer.estimated_seconds())} on the CPU training (1 × 3 steps), "
        "with no image left to validate on: the epoch with the lowest training loss is kept."
    )
    assert trainer.estimate.text() == f"A{said}"
    trainer.runner.run_now = lambda *args, **kwargs: None
    trainer.train()
    assert trainer.status.text() == (
        f"Training on 1 image(s): a{said} The best network so far is saved at the end of each "
        "epoch: cancelled before the first ends, nothing is kept."
    )
    # Large enough, with cells in its last quarter too, it holds that part back; with cells
    # in one part only (painted so), it cannot.
    labels = np.zeros((128, 96), np.int32)
    labels[10:30, 10:30], labels[100:120, 10:30] = 1, 2
    mask.data = labels  # said once the painting pauses
    qtbot.waitUntil(
        lambda: " validating each epoch and choosing the thresholds." in trainer.estimate.text()
    )
    mask.data = np.where(labels == 2, 0, labels)
    qtbot.waitUntil(
        lambda: trainer.estimate.text().endswith(
            "with no image left to validate on: the epoch with the lowest training loss is kept."
        )
    )


def test_a_models_result_is_trained_on_only_where_it_was_corrected(
    make_napari_viewer_proxy, qtbot, model_folder
):
    """Fine-tuning on a U-Net result corrected at one position of four trained on the
    model's own uncorrected cells of the other three, and validated on the one corrected:
    a score of the model against its own output. Only corrected frames are trained on; a
    result nobody corrected is refused; a split of a hand-drawn mask is no model's."""
    from napari_cytomask._qt._layers import labels_layer
    from napari_cytomask.io.layers import result_metadata

    viewer = make_napari_viewer_proxy()
    scans = [make_tilescan(n_tiles=1, shape=(128, 96), seed=s) for s in range(4)]
    image = viewer.add_image(np.stack([s.brightfield[0] for s in scans]), name="img")
    cells = np.stack([s.labels[0] for s in scans])
    record = result_metadata(image, method="unet", model={"name": "starter"})
    found = viewer.add_layer(labels_layer(cells.copy(), "img U-Net cells", {}, record))
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.mask_layer.setCurrentText("img U-Net cells")
    trainer.train()  # refused in the status line, as a missing input is, not a failure
    assert trainer.worker is None
    refused = "'img U-Net cells' holds the cells a model found, uncorrected: trained on"
    assert trainer.status.text().startswith(refused)
    found.data[2, :8, :8] = 77  # corrected by hand at position 2
    found.refresh()
    samples, _, notes = trainer._samples()
    assert [s.name for s in samples] == ["img[2]"]
    assert "Only the 1 of the 4 frames of 'img U-Net cells' corrected by hand are trained on " \
        "(frame 2): the others hold the model's own cells." in notes  # fmt: skip
    # A position whose cells were all erased by hand is corrected too, but holds none: it
    # is named by its number in the stack, not among the corrected frames (it was "0").
    found.data[1] = 0
    found.refresh()
    samples, _, notes = trainer._samples()
    assert [s.name for s in samples] == ["img[2]"]
    assert "1 of the 2 frames of 'img U-Net cells' hold no cell and are left out " \
        "(frames 1): unlabelled, their cells would be learnt as background." in notes  # fmt: skip
    # A split of a hand-drawn mask holds no model's cells: every frame is trained on.
    drawn = viewer.add_labels(cells.copy(), name="drawn")
    split = result_metadata(drawn, method="watershed_split")
    viewer.add_layer(labels_layer(cells.copy(), "drawn split", {}, split))
    trainer.mask_layer.setCurrentText("drawn split")
    assert len(trainer._samples()[0]) == 4


def test_a_frame_written_alone_keeps_the_undo_of_the_other_frames_edits(
    make_napari_viewer_proxy,
):
    """A step that wrote one position into a corrected stack kept the corrections of its
    other positions but forgot how to undo them: Ctrl+Z then changed nothing. Only the
    history reaching the frame written, and what lies before it, is forgotten."""
    from napari_cytomask._qt._layers import forget_edits

    viewer = make_napari_viewer_proxy()
    layer = viewer.add_labels(np.zeros((3, 32, 32), np.uint16), name="cells")
    layer.brush_size = 4
    layer.paint((0, 8, 8), 5)  # corrected at position 0, then at position 2
    layer.paint((2, 20, 20), 7)
    layer.fill((2, 2, 2), 9)  # the background of position 2 filled
    forget_edits(layer, (1,))  # position 1 written alone: every edit stays undoable
    assert len(layer._undo_history) == 3
    forget_edits(layer, (0,))  # position 0: its edit goes, those made after it stay
    assert len(layer._undo_history) == 2
    layer.undo()
    layer.undo()
    assert not layer.data[2].any() and layer.data[0, 8, 8] == 5
    assert len(layer._redo_history) == 2
    forget_edits(layer, (2,))  # what would be redone reaches position 2
    assert len(layer._redo_history) == 0
    layer.paint((1, 8, 8), 3)
    forget_edits(layer)  # the whole stack written: nothing to undo
    assert len(layer._undo_history) == 0


@pytest.mark.parametrize("edited", [0, 3])
def test_a_stack_cancelled_keeps_the_frames_it_had_segmented(
    make_napari_viewer_proxy, qtbot, shared_data, monkeypatch, edited
):
    """Cancelling a run over every frame of a stack (or closing the dock) threw away the
    frames it had finished and said "Cancelled.": 20 minutes of a time-lapse, gone. Frames
    are segmented one by one, the same cells as the whole stack at once, and a cancelled
    run keeps those done, as frames made alone, and says which. All go beside cells
    corrected by hand, as a whole run's do: corrected in a frame not done yet, they took
    the frames done before it, and the next went beside them."""
    from napari_cytomask._qt import unet_widgets
    from napari_cytomask._qt._layers import ALL_POSITIONS
    from napari_cytomask._qt._settings import set_value
    from napari_cytomask.models.inference import segment

    viewer = make_napari_viewer_proxy()
    phases = [
        tifffile.imread(shared_data / "usiigaci-phc" / name / "raw.tif")[:160, :160]
        for name in ("set11", "set12", "set1", "set2")
    ]
    stack = np.stack(phases)
    viewer.add_image(stack, name="movie", axis_labels=("T", "y", "x"))
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    set_value(segmenter.positions, ALL_POSITIONS)
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    cells = viewer.layers["movie U-Net cells"]
    # Once done, the dock holds neither the stack's layer nor its frames' cells: closed,
    # a scan stayed in memory until the next run.
    assert segmenter._under_way is None
    step = segmenter.step()
    predictor = segmenter._predictors.get(resolve_unet(step.model), "cpu")
    whole = segment(predictor, [stack], **step.segment_kwargs(predictor, None))
    np.testing.assert_array_equal(cells.data, whole.labels)
    cells.data[edited, :4, :4] = 99  # corrected by hand: the frames go elsewhere
    cells.refresh()
    corrected = cells.data.copy()

    slow = unet_widgets.iter_segment

    def slowly(*args, **kwargs):  # each frame takes a while, as a large one does
        work = slow(*args, **kwargs)
        try:
            while True:
                report = next(work)
                time.sleep(0.2)
                yield report
        except StopIteration as stop:
            return stop.value

    monkeypatch.setattr(unet_widgets, "iter_segment", slowly)
    segmenter.segment()
    segmenter.cancel()  # before any frame: "Cancelled." said nothing of the cells on show
    assert segmenter.status.text() == (
        "Cancelled: 'movie U-Net cells' keeps the cells of the run before."
    )
    segmenter.segment()
    finished = segmenter._under_way.finished
    qtbot.waitUntil(lambda: len(finished) >= 2, timeout=60_000)
    layers_made, make = [], unet_widgets.labels_layer

    def counted(*args):
        layers_made.append(make(*args))
        return layers_made[-1]

    monkeypatch.setattr(unet_widgets, "labels_layer", counted)
    segmenter.cancel()
    assert segmenter._under_way is None
    # The frames kept are written at once: a layer of the whole stack made and written
    # frame by frame held napari for seconds.
    assert len(layers_made) == 1
    # All in the one layer the first frame went to, beside the corrected one.
    np.testing.assert_array_equal(cells.data, corrected)
    kept = viewer.layers["movie U-Net cells [2]"]
    made = [frame for frame in range(4) if kept.data[frame].any()]
    assert made == list(range(len(made))) and 2 <= len(made) < 4
    assert layer_info(kept)["frames_made"] == [str(frame) for frame in made]
    np.testing.assert_array_equal(
        kept.data[made] > 0, whole.labels[made] > 0
    )  # the cells of the frames done
    assert segmenter.status.text().startswith(
        f"Cancelled after {len(made)} of 4 frames: time points {', '.join(map(str, made))} "
        "kept in "
        "'movie U-Net cells [2]'"
    )


def test_a_run_cancelled_over_an_earlier_runs_cells_says_which_frames_are_still_those(
    make_napari_viewer_proxy, qtbot, shared_data, monkeypatch
):
    """Cancelled after one frame, a second run over the cells of a first kept that frame
    in their layer, beside the first run's other frames (of other settings, maybe), and the
    status named only the frame kept: the layer was taken for one run's cells."""
    from napari_cytomask._qt import unet_widgets
    from napari_cytomask._qt._layers import ALL_POSITIONS
    from napari_cytomask._qt._settings import set_value

    viewer = make_napari_viewer_proxy()
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:96, :96]
    viewer.add_image(np.stack([phase] * 3), name="movie", axis_labels=("T", "y", "x"))
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    set_value(segmenter.positions, ALL_POSITIONS)
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    slow = unet_widgets.iter_segment

    def slowly(*args, **kwargs):  # each frame takes a while, as a large one does
        result = yield from slow(*args, **kwargs)
        time.sleep(1.0)
        return result

    monkeypatch.setattr(unet_widgets, "iter_segment", slowly)
    segmenter.segment()
    segmenter.cancel()  # before any frame: "Cancelled." said nothing of the cells on show
    assert segmenter.status.text() == (
        "Cancelled: 'movie U-Net cells' keeps the cells of the run before."
    )
    segmenter.segment()
    finished = segmenter._under_way.finished
    qtbot.waitUntil(lambda: len(finished) >= 1, timeout=60_000)
    segmenter.cancel()
    assert [layer.name for layer in viewer.layers] == ["movie", "movie U-Net cells"]
    assert segmenter.status.text().startswith(
        "Cancelled after 1 of 3 frames: time point 0 kept in 'movie U-Net cells'. Time "
        "points 1, 2 still hold the cells of an earlier run. "
    )


def test_a_z_stack_is_said_to_be_segmented_plane_by_plane(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """A Z stack's cells were counted over its planes without a word: one cell seen in
    five planes was five cells, each of its own id."""
    viewer = make_napari_viewer_proxy()
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:160, :160]
    viewer.add_image(np.stack([phase, phase]), name="volume", axis_labels=("Z", "y", "x"))
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    assert ", in all 2 frames, found plane by plane (a cell that spans several planes is " \
        "counted in each)." in segmenter.status.text()  # fmt: skip


def test_a_stack_of_many_cells_keeps_every_id_apart_frame_by_frame(monkeypatch):
    """Frames segmented one by one are numbered on from the frames before them; a frame's
    ids came in the least type that held them (8 bits under 256 cells) and the added
    numbers wrapped around: a stack of 371 cells came back with 255, ids repeated across
    frames, and a cell at 256 was lost to the background."""
    from napari_cytomask._qt import unet_widgets
    from napari_cytomask.models.inference import Segmentation
    from napari_cytomask.progress import drain

    cells = np.zeros((40, 40), np.uint8)
    cells.flat[: 200 * 8 : 8] = np.arange(1, 201)  # 200 one-pixel cells a frame

    def segmented(predictor, channels, **kwargs):
        yield from ()
        return Segmentation(np.zeros((3, 40, 40), np.float32), ("background", "interior",
                            "boundary"), cells.copy(), 0.8)  # fmt: skip

    monkeypatch.setattr(unet_widgets, "iter_segment", segmented)
    finished = []
    stack = np.zeros((3, 40, 40), np.float32)
    result = drain(unet_widgets._frame_by_frame(None, [stack], (3,), {}, finished, False))
    assert [len(np.unique(frame)) - 1 for frame in result.labels] == [200, 200, 200]
    assert len(np.unique(result.labels)) - 1 == 600 and result.labels.max() == 600
    assert [frame for frame, _ in finished] == [(0,), (1,), (2,)]


@pytest.mark.parametrize("maps", [False, True])
def test_a_stack_keeps_its_probabilities_for_the_maps_alone(monkeypatch, maps):
    """A run over a stack held every frame's probabilities until it ended (12 bytes a
    pixel: 0.8 GB more for 40 megapixels) though only the maps, when asked for, show
    them. Its confidence, read on a sample of each frame, is the whole stack's."""
    from napari_cytomask._qt import unet_widgets
    from napari_cytomask.models.inference import Segmentation, confidence
    from napari_cytomask.progress import drain

    classes = ("background", "interior", "boundary")
    rng = np.random.default_rng(0)
    maps_of = rng.dirichlet((2, 1, 1), size=(2, 3, 64, 48)).astype(np.float32)
    maps_of = np.moveaxis(maps_of, -1, 0)  # (classes, 2, 3, Y, X)
    frames = iter(np.ndindex(2, 3))

    def segmented(predictor, channels, **kwargs):
        yield from ()
        at = next(frames)
        return Segmentation(maps_of[(slice(None), *at)], classes, np.ones((64, 48), np.uint8))

    monkeypatch.setattr(unet_widgets, "iter_segment", segmented)
    stack = np.zeros((2, 3, 64, 48), np.float32)
    result = drain(unet_widgets._frame_by_frame(None, [stack], (2, 3), {}, [], maps))
    assert result.confidence == confidence(maps_of, classes)
    if maps:
        np.testing.assert_array_equal(result.probabilities, maps_of)
    else:
        assert result.probabilities is None


def test_a_count_of_one_cell_reads_in_the_singular():
    """ "1 cells in 'movie U-Net cells'", and the frames it holds by their kind."""
    from napari.layers import Labels

    from napari_cytomask._qt._layers import cells_in

    record = {"cytomask": {"role": "result", "frames_made": ["1"]}}
    data = np.zeros((3, 8, 8), np.uint8)
    data[1, 2:5, 2:5] = 1
    layer = Labels(data, name="cells", metadata=record, axis_labels=("T", "y", "x"))
    assert cells_in(layer, 1) == (
        "1 cell in 'cells', in time point 1 of 3 only (the others were never made)"
    )
    assert cells_in(layer, np.uint8(2)).startswith("2 cells in 'cells'")  # a count from numpy


def test_cells_of_an_image_given_a_pixel_size_during_the_run_lie_over_it_as_it_is_now(
    make_napari_viewer_proxy, qtbot, shared_data, monkeypatch
):
    """A pixel size given to the input while it was segmented was lost on its cells, which
    kept the size it had when the run began (areas exported in the wrong µm²), unsaid."""
    import threading

    from napari_cytomask._qt import unet_widgets

    viewer = make_napari_viewer_proxy()
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:128, :128]
    image = viewer.add_image(phase, name="phase", scale=(0.87, 0.87), units="µm")
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    started, go_on = threading.Event(), threading.Event()
    segment = unet_widgets.iter_segment

    def held(*args, **kwargs):
        started.set()  # the run has read the image's pixel size and placement
        go_on.wait(30)
        return (yield from segment(*args, **kwargs))

    monkeypatch.setattr(unet_widgets, "iter_segment", held)
    segmenter.segment()
    assert started.wait(30)
    image.scale = (0.5, 0.5)
    image.translate = (10, 20)
    go_on.set()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    cells = viewer.layers["phase U-Net cells"]
    assert tuple(cells.scale) == (0.5, 0.5) and tuple(cells.translate) == (10, 20)
    assert layer_info(cells)["parameters"]["pixel_size_um"] == (0.87, 0.87)
    assert segmenter.status.text().endswith(
        " 'phase' was given another pixel size during the run (0.87 µm to 0.5 µm): its cells "
        "were found at the size before. Segment it again for cells found at the new size."
    ), segmenter.status.text()
    # Segmented again at its new size, nothing is said of it.
    segmenter.segment()
    qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    assert "during the run" not in segmenter.status.text()
    assert layer_info(cells)["parameters"]["pixel_size_um"] == (0.5, 0.5)


def test_probability_maps_of_a_frame_segmented_alone_stay_probabilities(
    make_napari_viewer_proxy, qtbot, shared_data
):
    """A frame segmented alone into a stack's maps was numbered on as cells are: its
    probabilities became 1 to 2, and the watershed took the whole frame for foreground."""
    from napari_cytomask._qt._layers import ALL_POSITIONS, CURRENT_POSITION
    from napari_cytomask._qt._settings import set_value

    viewer = make_napari_viewer_proxy()
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:96, :96]
    viewer.add_image(np.stack([phase, phase[::-1]]), name="movie", axis_labels=("T", "y", "x"))
    segmenter = UNetSegmentWidget(viewer)
    segmenter.tta.setChecked(False)
    segmenter.show_maps.setChecked(True)
    for positions in (ALL_POSITIONS, CURRENT_POSITION):
        set_value(segmenter.positions, positions)
        viewer.dims.set_current_step(0, 1)
        segmenter.segment()
        qtbot.waitUntil(lambda: not segmenter.runner.busy, timeout=60_000)
    maps = [layer for layer in viewer.layers if layer_info(layer).get("probability")]
    assert len(maps) == 2
    for layer in maps:
        assert 0 <= layer.data.min() and layer.data.max() <= 1, layer.name


def test_the_estimate_counts_a_resumed_runs_epochs_as_resuming_does_reading_it_once(
    make_napari_viewer_proxy, monkeypatch, tmp_path
):
    """The estimate read the Resume from file's header at every setting changed (each
    spin-box step, each letter typed), and counted an epoch the time limit had cut short
    as done, where resuming trains the rest of it; and a run whose steps alone fitted the
    time limit was said to take its steps and validations, beyond the limit it stops at."""
    from napari_cytomask._qt import unet_widgets

    viewer = make_napari_viewer_proxy()
    viewer.add_image(np.zeros((256, 256), np.uint8), name="img")
    viewer.add_labels(np.zeros((256, 256), np.uint8), name="mask")
    trainer = UNetTrainWidget(viewer)
    _tiny_training(trainer)
    trainer.epochs.setValue(5)
    model = tmp_path / "cut.safetensors"
    model.write_bytes(b"")
    # Epoch 3 cut at step 2 of 3: two epochs done, three left.
    history = [{"epoch": e, "steps_in_epoch": 3} for e in (1, 2)] + [
        {"epoch": 3, "steps_in_epoch": 2}
    ]
    read = []

    def description(path):
        read.append(path)
        return {"training": {"epochs_done": 3, "history": history}}

    monkeypatch.setattr(unet_widgets, "read_description", description)
    trainer.resume.setText(str(model))
    for epochs in (6, 7, 5):
        trainer.epochs.setValue(epochs)
    assert "(3 × 3 steps left)" in trainer.estimate.text()
    assert len(read) == 1
    # The limit counts the validations too: steps of under a minute, validations beyond it.
    trainer.resume.clear()
    trainer.epochs.setValue(1)
    steps = trainer.estimated_seconds()
    trainer.time_limit.setValue(1)
    frame_megapixels = 256 * 256 / 1e6
    monkeypatch.setattr(trainer, "_validation_megapixels", lambda: 100 * frame_megapixels)
    trainer._update_estimate()
    assert steps < 60 < steps + trainer._validation_seconds(100 * frame_megapixels, 1)
    assert "training to the time limit" in trainer.estimate.text()
