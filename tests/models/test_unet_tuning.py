"""Post-processing thresholds chosen on labelled images and recorded in the checkpoint."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from safetensors.torch import load_file

from napari_cytomask.models.checkpoint import read_description, save_checkpoint
from napari_cytomask.models.inference import DEFAULT_SETTINGS, UNetPredictor, segment
from napari_cytomask.models.training import (
    TrainingSettings,
    iter_tune_checkpoint,
    samples_from_arrays,
    train,
    tune_postprocess,
    tuned_note,
)
from napari_cytomask.models.unet import UNetConfig
from napari_cytomask.pipeline import Preset, UNetStep
from napari_cytomask.progress import drain
from napari_cytomask.synthetic import make_tilescan


def _three_cells() -> np.ndarray:
    labels = np.zeros((96, 96), np.int32)
    labels[20:40, 10:40] = 1
    labels[20:40, 40:70] = 2  # touches cell 1
    labels[60:80, 10:30] = 3
    return labels


def test_tuning_finds_thresholds_that_separate_cells_and_drop_specks(oracle_unet, class_map_image):
    labels = _three_cells()
    image = class_map_image(labels)
    # Across the boundary of cells 1 and 2 runs a neck of interior probability 0.6
    # (oracle input 194/255), so an interior threshold of 0.5 or 0.6 makes them one cell;
    # and a 3x3 speck of interior the labels do not have is a false cell.
    image[28:33, 36:44] = 194
    image[84:87, 84:87] = 255
    samples = samples_from_arrays(image, labels, "crafted")

    tuned = tune_postprocess(oracle_unet, samples)

    assert tuned["interior_threshold"] >= 0.7  # the neck no longer joins the seeds
    assert 9 < tuned["min_size"] <= 400  # the speck goes, the cells (400 px and more) stay
    assert tuned["tuned_on"] == ["crafted"]
    default, best = tuned["scores"]["default"], tuned["scores"]["tuned"]
    assert default["f1_50"] == pytest.approx(2 / 3)  # cells 1+2 merged, speck: 1 of 3 right
    assert best["f1_50"] == 1.0 and best["mean_average_f1"] == 1.0
    assert tuned_note(tuned) == ""  # a model that finds the cells needs no word
    settings = {k: tuned[k] for k in DEFAULT_SETTINGS}
    step = UNetStep(model="unused", overlap=16, **settings)
    labels_out = segment(oracle_unet, image, **step.segment_kwargs(oracle_unet)).labels
    assert labels_out.max() == 3


def test_tuning_finds_a_foreground_threshold_between_the_grid_values_near_1(
    oracle_unet, class_map_image
):
    from skimage.segmentation import expand_labels

    from napari_cytomask.models.inference import iter_predict

    # A halo around the cells that a class-weighted network is over-confident about:
    # foreground probability 0.984 in its outer pixel (oracle input 90/255), 0.9926 in
    # its inner one (95/255). A grid value of 0.99 drops the outer pixel; only a
    # threshold between the grid's values, above 0.9926, outlines the cells themselves.
    labels = _three_cells()
    image = class_map_image(labels)
    image[(expand_labels(labels, 2) > 0) & (labels == 0)] = 90
    image[(expand_labels(labels, 1) > 0) & (labels == 0)] = 95
    background = 1 - drain(iter_predict(oracle_unet, [image], overlap=16))[0]
    outer, inner = background[18, 30], background[19, 30]
    assert 0.98 < outer < 0.99 < inner < 0.995

    tuned = tune_postprocess(oracle_unet, samples_from_arrays(image, labels, "halo"))

    assert inner < tuned["foreground_threshold"] < 1
    assert tuned["scores"]["tuned"]["mean_average_f1"] == 1.0


def test_tuning_keeps_the_defaults_unless_something_scores_better(oracle_unet, class_map_image):
    labels = _three_cells()
    samples = samples_from_arrays(class_map_image(labels), labels, "clean")
    tuned = tune_postprocess(oracle_unet, samples)
    assert {k: tuned[k] for k in DEFAULT_SETTINGS} == DEFAULT_SETTINGS
    assert tuned["scores"]["default"] == tuned["scores"]["tuned"]
    # Images without a labelled cell cannot choose anything.
    empty = samples_from_arrays(class_map_image(labels), np.zeros_like(labels), "empty")
    assert tune_postprocess(oracle_unet, empty) is None


def test_tuning_starts_from_the_models_own_settings_unless_the_defaults_score_better(
    oracle_unet, class_map_image
):
    """Retuned on images it matched at no setting (a few cells labelled among many), a
    fine-tuned model lost its own thresholds for the defaults."""
    labels = _three_cells()
    samples = samples_from_arrays(class_map_image(labels), labels, "clean")
    own = {"interior_threshold": 0.6, "foreground_threshold": 0.9, "min_size": 50}
    # Scoring as well as the defaults (every setting finds the three cells): they stay.
    tuned = tune_postprocess(oracle_unet, samples, start=own)
    assert {k: tuned[k] for k in DEFAULT_SETTINGS} == own
    # What it scored before tuning is its own thresholds' score, not the defaults'.
    assert tuned["scores"]["own"] == tuned["scores"]["tuned"]
    # A labelled cell where the model finds none, and its cells unlabelled: no setting
    # scores, and its own stay (the defaults stayed).
    elsewhere = np.zeros_like(labels)
    elsewhere[82:94, 60:90] = 1
    unmatched = samples_from_arrays(class_map_image(labels), elsewhere, "partly")
    nothing = tune_postprocess(oracle_unet, unmatched, start={**own, "min_size": 500})
    assert nothing["scores"]["tuned"]["mean_average_f1"] == 0
    assert {k: nothing[k] for k in DEFAULT_SETTINGS} == {**own, "min_size": 500}
    # Scoring below the defaults (its minimum size drops every cell): as without it.
    worse = tune_postprocess(oracle_unet, samples, start={**own, "min_size": 5000})
    assert worse["scores"].pop("own")["n_pred"] == 0  # it found no cell before tuning
    assert worse == tune_postprocess(oracle_unet, samples)


def test_a_tuned_checkpoint_keeps_its_weights_and_is_used_by_default(unet_checkpoint, collect):
    path = unet_checkpoint(tile_size=128, seed=3)
    before = load_file(str(path))
    scan = make_tilescan(n_tiles=3, shape=(64, 64), cell_radius=9, seed=2)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "scan")
    description = read_description(path)
    # Of the given images, the checkpoint's validation images are the ones used.
    description["training"] = {"split": {"train": ["scan[0]"], "validation": ["scan[1]"]}}
    model = UNetPredictor.from_checkpoint(path, "cpu").model
    save_checkpoint(path, model, description)

    gen = iter_tune_checkpoint(path, samples, device="cpu", batch_size=2)
    events, tuned = collect(gen)
    assert events[-1][0] == events[-1][1] and all(d <= t for d, t in events)
    assert tuned["tuned_on"] == ["scan[1]"]
    saved = read_description(path)
    assert saved["postprocess"] == tuned and saved["training"] == description["training"]
    after = load_file(str(path))
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)

    # Recorded settings are the predictor's; explicit settings win over them.
    recorded = {**DEFAULT_SETTINGS, "interior_threshold": 0.65, "min_size": 12}
    save_checkpoint(path, model, {**saved, "postprocess": {**tuned, **recorded}})
    predictor = UNetPredictor.from_checkpoint(path, "cpu")
    assert predictor.settings == recorded
    kwargs = UNetStep(model=str(path)).segment_kwargs(predictor)
    assert kwargs["postprocess"]["interior_threshold"] == 0.65
    assert kwargs["cleanup"] == {"min_area": 12}
    kwargs = UNetStep(model=str(path), interior_threshold=0.4).segment_kwargs(predictor)
    assert kwargs["postprocess"]["interior_threshold"] == 0.4
    preset = Preset(unet=UNetStep(model=str(path), min_size=5)).with_model_settings()
    assert (preset.unet.interior_threshold, preset.unet.min_size) == (0.65, 5)

    with pytest.raises(ValueError, match="hold no cell"):
        empty = samples_from_arrays(scan.brightfield[:1], np.zeros_like(scan.labels[:1]), "e")
        drain(iter_tune_checkpoint(path, empty, device="cpu"))
    with pytest.raises(ValueError, match="expects 1 input channel"):
        two = samples_from_arrays([scan.brightfield, scan.brightfield], scan.labels, "two")
        drain(iter_tune_checkpoint(path, two, device="cpu"))


def test_tuning_rewrites_the_checkpoint_a_name_gives(unet_checkpoint, tmp_path, monkeypatch):
    """A model named as it lies in the model folder was tuned into a new file of that name
    in the current folder, and the model itself kept its thresholds; "starter" wrote
    ./starter.safetensors; a folder that cannot be written to was said after the tuning."""
    import errno
    import shutil

    from napari_cytomask.io import atomic
    from napari_cytomask.io.atomic import WriteError
    from napari_cytomask.models.checkpoint import DIR_ENV

    models, here = tmp_path / "models", tmp_path / "here"
    models.mkdir(), here.mkdir()
    shutil.copy(unet_checkpoint(tile_size=128, seed=3), models / "mine.safetensors")
    monkeypatch.setenv(DIR_ENV, str(models))
    monkeypatch.chdir(here)
    scan = make_tilescan(n_tiles=2, shape=(64, 64), cell_radius=9, seed=2)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "scan")
    tuned = drain(iter_tune_checkpoint("mine", samples, device="cpu", batch_size=2))
    assert read_description(models / "mine.safetensors")["postprocess"] == tuned
    assert list(here.iterdir()) == []
    from napari_cytomask.models import catalog

    # However its path is written: it would rewrite the package's own file (a copy stands
    # for it here, so that a fault rewrites no installed file).
    packaged = tmp_path / "package" / "resources" / "starter.safetensors"
    packaged.parent.mkdir(parents=True)
    shutil.copy(models / "mine.safetensors", packaged)
    monkeypatch.setattr(catalog, "starter_path", lambda: packaged)
    relative = os.path.relpath(packaged, here)
    for name in ("starter", relative, f"{packaged.parent}/../resources/{packaged.name}"):
        with pytest.raises(ValueError, match="'starter' is the model inside the package"):
            drain(iter_tune_checkpoint(name, samples, device="cpu"))
    monkeypatch.setattr(atomic, "not_writable", lambda folder: OSError(errno.EROFS, "read-only"))
    gen = iter_tune_checkpoint("mine", samples, device="cpu")
    with pytest.raises(WriteError, match=f"{models}"):
        next(gen)  # before the first image is predicted
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("tune", [True, False])
def test_training_tunes_on_its_validation_images(tmp_path, tiny_unet, tune):
    scan = make_tilescan(n_tiles=3, shape=(96, 96), cell_radius=10, seed=4)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "syn")
    settings = TrainingSettings(
        epochs=1, steps_per_epoch=2, batch_size=2, crop_size=64, encoder_weights=None,
        device="cpu", fractions=(2, 1, 0), tune=tune,
    )  # fmt: skip
    result = train(samples, tmp_path / "m.safetensors", UNetConfig(**tiny_unet), settings)
    saved = read_description(result.checkpoint)
    if tune:
        validation = saved["training"]["split"]["validation"]
        assert saved["postprocess"]["tuned_on"] == validation and len(validation) == 1
        scores = saved["postprocess"]["scores"]
        assert scores["tuned"]["mean_average_f1"] >= scores["default"]["mean_average_f1"]
        # Two steps from random weights: whatever thresholds tuning keeps, the user is told
        # the model is not ready, and what to do.
        tuned = scores["tuned"]
        assert tuned["f1_50"] < 0.5
        note = tuned_note(saved["postprocess"], saved)
        assert f"finds {tuned['n_pred']} cell(s) where {tuned['n_true']} are labelled" in note
        assert note.startswith("This model is not ready yet: on the validation images")
        assert "Train it for longer" in note
    else:
        assert "postprocess" not in saved
    assert saved.get("postprocess") == result.description.get("postprocess")


def test_tuning_predicts_as_segmenting_does_by_default(oracle_unet, class_map_image, monkeypatch):
    from napari_cytomask.models import training

    seen = []
    predict = training.iter_predict

    def spy(*args, **kwargs):
        seen.append(kwargs.get("tta"))
        return predict(*args, **kwargs)

    monkeypatch.setattr(training, "iter_predict", spy)
    labels = _three_cells()
    samples = samples_from_arrays(class_map_image(labels), labels, "clean")
    # Segmenting averages over flips unless told otherwise; tuning predicts the same way.
    assert UNetStep().tta is True
    assert tune_postprocess(oracle_unet, samples)["tta"] is True
    assert seen == [True]
    seen.clear()
    assert tune_postprocess(oracle_unet, samples, tta=False)["tta"] is False
    assert seen == [False]


def test_tuning_takes_labels_with_huge_ids(oracle_unet, class_map_image):
    # Stitched or exported labels can carry ids near 2**62: the cell sizes tried must
    # not need memory in proportion to the largest id.
    labels = _three_cells()
    image = class_map_image(labels)
    huge = np.where(labels > 0, labels.astype(np.uint64) + np.uint64(2**62), np.uint64(0))
    small = tune_postprocess(oracle_unet, samples_from_arrays(image, labels, "small"))
    large = tune_postprocess(oracle_unet, samples_from_arrays(image, huge, "huge"))
    assert {k: large[k] for k in DEFAULT_SETTINGS} == {k: small[k] for k in DEFAULT_SETTINGS}
    assert large["scores"]["tuned"] == small["scores"]["tuned"]


def test_scoring_and_tuning_say_they_started_before_the_first_image(
    oracle_unet, class_map_image, monkeypatch
):
    """After training's last epoch the status stood still for half a minute: choosing the
    thresholds said nothing until its first validation image was predicted."""
    from napari_cytomask.models import training

    labels = _three_cells()
    samples = samples_from_arrays(class_map_image(labels), labels, "clean")
    predicted = []
    predict = training._predict_sample
    monkeypatch.setattr(training, "_predict_sample",
                        lambda *a, **k: predicted.append(1) or predict(*a, **k))  # fmt: skip
    for gen in (training.iter_tune_postprocess(oracle_unet, samples),
                training.iter_evaluate(oracle_unet, samples)):  # fmt: skip
        done, total = next(gen)
        assert (done, predicted) == (0, []) and total >= 1
        drain(gen)
        predicted.clear()


def test_a_binary_mask_is_scored_by_its_separate_regions_and_said(oracle_unet, class_map_image):
    """A 0/1 mask (a threshold, as Fiji or ilastik save one) was scored as one cell per
    image: a network that found every cell validated at F1 0.000, and tuning's cell sizes
    were fractions of the whole foreground; without a word."""
    labels = _three_cells()
    labels[labels == 2] = 0  # three cells apart: their regions are the cells
    labels[60:80, 50:80] = 2
    image = class_map_image(labels)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        samples = samples_from_arrays(image, labels > 0, "thresholded")

    tuned = tune_postprocess(oracle_unet, samples)

    assert tuned["scores"]["default"]["f1_50"] == 1.0
    assert tuned["scores"]["default"]["mean_average_f1"] == 1.0
    assert tuned["min_size"] <= 300  # at most half the median cell, not of all three
    note = (
        "mask of thresholded holds one value (1) for every cell, a binary mask: its 3 "
        "separate regions are taken as the cells (cells that touch stay one)."
    )
    assert [str(w.message) for w in said if w.category is UserWarning] == [note]
    # Cell ids are kept as they are, without a word; the word goes where it is asked to.
    notes = []
    samples_from_arrays(image, labels, "ids", note=notes.append)
    samples_from_arrays(image, labels > 0, "thresholded", note=notes.append)
    assert notes == [note]


def test_the_not_ready_note_counts_the_cells_that_match():
    """One labelled cell, found among four, was said as "gets 40% of them right"; images
    given to 'cytomask tune' were called validation images."""
    tuned = {"tuned_on": ["a"], "scores": {"tuned": {"f1_50": 0.4, "n_pred": 4, "n_true": 1}}}
    trained = {"training": {"split": {"train": ["b"], "validation": ["a"]}}}
    note = tuned_note(tuned, trained)
    assert "on the validation images it finds 4 cell(s) where 1 are labelled, and 1 of them" in (
        note
    )
    assert "match a labelled cell (IoU 0.5; F1 0.40)" in note
    tuned["scores"]["tuned"] = {"f1_50": 2 * 3 / 40, "n_pred": 10, "n_true": 30}
    note = tuned_note(tuned, {"training": {"split": {"validation": ["c"]}}})
    assert "on the images its thresholds were chosen on it finds 10 cell(s)" in note
    assert "3 of them match" in note
