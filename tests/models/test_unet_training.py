"""U-Net training: data sources, split, targets, crops, loss going down on real images, resume."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_cytomask.io.files import match_files
from napari_cytomask.models.checkpoint import read_description
from napari_cytomask.models.training import (
    CropSampler,
    TrainingSettings,
    iter_train,
    make_targets,
    samples_from_arrays,
    samples_from_folders,
    samples_from_tilescans,
    split_by_image,
    train,
)
from napari_cytomask.models.unet import UNetConfig
from napari_cytomask.synthetic import make_tilescan


def usiigaci(shared_data, sets):
    root = shared_data / "usiigaci-phc"
    pattern = "set[" + "".join(str(s) for s in sets) + "]"
    return str(root / pattern / "raw.tif"), str(root / pattern / "instances_ids.png")


def test_split_is_deterministic_by_image_and_complete():
    names = [f"img{i}" for i in range(40)]
    split = split_by_image(names, (0.8, 0.1, 0.1), seed=3)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [32, 4, 4]
    assert sorted(sum(split.values(), [])) == sorted(names)
    assert split == split_by_image(list(reversed(names)), (0.8, 0.1, 0.1), seed=3)
    assert split != split_by_image(names, (0.8, 0.1, 0.1), seed=4)
    small = split_by_image(["a", "b", "c"], (0.8, 0.1, 0.1))
    assert [len(small[k]) for k in ("train", "validation", "test")] == [1, 1, 1]


def test_folder_patterns_pair_images_with_masks(shared_data):
    images, masks = usiigaci(shared_data, (1, 2, 3))
    pairs = match_files(images, masks)
    assert [p[0].split("/")[-2] for p in pairs] == ["set1", "set2", "set3"]
    assert all(p[0].split("/")[-2] == p[1].split("/")[-2] for p in pairs)
    with pytest.raises(ValueError, match="matches no file"):
        match_files(images, masks.replace("instances_ids", "nothing"))


def test_tilescan_channels_give_one_sample_per_tile(tmp_path):
    scan = make_tilescan(n_tiles=3, shape=(96, 96), seed=2)
    data = np.stack([scan.fluorescence, scan.brightfield, scan.labels], axis=1)  # (P, C, Y, X)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    samples = samples_from_tilescans([path], 1, 2)
    assert len(samples) == 3
    np.testing.assert_array_equal(samples[2].channels[0], scan.brightfield[2])
    np.testing.assert_array_equal(samples[2].labels, scan.labels[2])
    with pytest.raises(ValueError, match="no channel 7"):
        samples_from_tilescans([path], 7, 2)


def test_targets_and_augmented_crops(tiny_unet):
    labels = np.zeros((40, 40), np.uint16)
    labels[5:20, 5:20] = 1
    labels[5:20, 20:35] = 2  # touching cell
    target = make_targets(labels, "interior_boundary", 2)
    assert set(np.unique(target)) == {0, 1, 2}
    assert (target[5:20, 18:22] == 2).all()  # touching cells are separated by boundary
    assert (make_targets(labels, "foreground", 2) == (labels > 0)).all()
    scan = make_tilescan(n_tiles=1, shape=(160, 160), seed=0)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "s")
    settings = TrainingSettings(crop_size=64, boundary_width=2)
    sampler = CropSampler(samples, UNetConfig(**tiny_unet), settings, np.random.default_rng(0))
    x, y = sampler.batch(16)
    assert x.shape == (16, 1, 64, 64) and y.shape == (16, 64, 64) and x.dtype == torch.float32
    assert (y > 0).float().mean() > 0.3  # crops are biased towards cells
    freq = sampler.class_frequencies()
    assert freq.sum() == pytest.approx(1) and freq[2] < freq[1]


def test_training_loss_goes_down_on_real_images(shared_data, tmp_path, tiny_unet):
    samples = samples_from_folders(*usiigaci(shared_data, (1, 2, 3, 4)))
    # Small crops of a few real images keep the run short; validation on one crop.
    for s in samples:
        s.channels, s.labels = s.channels[:, :384, :384], s.labels[:384, :384]
    settings = TrainingSettings(
        epochs=2,
        steps_per_epoch=15,
        batch_size=4,
        crop_size=96,
        learning_rate=3e-3,
        encoder_weights=None,
        device="cpu",
        fractions=(3, 1, 0),
        seed=1,
    )
    steps, epochs = [], []
    gen = iter_train(
        samples, tmp_path / "m.safetensors", UNetConfig(**tiny_unet), settings, sources=["usiigaci"]
    )
    for progress in gen:
        if progress.phase == "train":
            steps.append(progress.loss)
        elif progress.phase == "epoch":
            epochs.append(progress)
    assert len(steps) == 30 and len(epochs) == 2
    assert np.mean(steps[-5:]) < 0.9 * np.mean(steps[:5])
    assert epochs[0].improved and epochs[0].validation["n_true"] > 10
    desc = read_description(tmp_path / "m.safetensors")
    training = desc["training"]
    assert len(training["split"]["train"]) == 3 and len(training["split"]["validation"]) == 1
    assert training["data"]["train"]["cells"] > 20 and len(training["history"]) == 2
    assert training["class_weights"][2] > training["class_weights"][1]
    assert "mean_average_f1" in desc["scores"]["validation"]


def test_resume_continues_the_epoch_count(tmp_path, tiny_unet):
    scan = make_tilescan(n_tiles=2, shape=(96, 96), seed=4)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "syn")
    settings = TrainingSettings(
        epochs=1,
        steps_per_epoch=2,
        batch_size=2,
        crop_size=64,
        encoder_weights=None,
        device="cpu",
        fractions=(1, 0, 0),
    )
    first = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), settings)
    second = train(samples, tmp_path / "b.safetensors", None, settings, resume=first.checkpoint)
    training = second.description["training"]
    assert training["epochs_done"] == 2 and training["steps_done"] == 4
    assert training["resumed_from"] == str(first.checkpoint)
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    with pytest.raises(ValueError, match="expects 1 input channel"):
        two = samples_from_arrays([scan.brightfield, scan.brightfield], scan.labels, "two")
        train(two, tmp_path / "c.safetensors", None, settings, resume=first.checkpoint)
