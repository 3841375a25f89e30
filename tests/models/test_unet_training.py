"""U-Net training: data sources, split, targets, crops, loss going down on real images, resume."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_cytomask.io.files import match_files, read_image
from napari_cytomask.models import training
from napari_cytomask.models.checkpoint import load_checkpoint, read_description
from napari_cytomask.models.training import (
    CropSampler,
    TrainingResult,
    TrainingSettings,
    _batches,
    default_workers,
    epochs_trained,
    iter_train,
    kept_start_note,
    make_targets,
    match_split,
    samples_from_arrays,
    samples_from_folders,
    samples_from_tilescans,
    split_by_image,
    state_path,
    train,
)
from napari_cytomask.models.unet import UNetConfig
from napari_cytomask.progress import drain
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
    # Of a few images, none is held back for testing (one of three was, never used,
    # leaving one to train on); one validates.
    for n, sizes in ((2, [1, 1, 0]), (3, [2, 1, 0]), (5, [4, 1, 0]), (6, [4, 1, 1])):
        small = split_by_image([f"img{i}" for i in range(n)], (0.8, 0.1, 0.1))
        assert [len(small[k]) for k in ("train", "validation", "test")] == sizes, n


def test_a_recorded_split_is_matched_by_folder_and_file_name():
    recorded = split_by_image([f"/data/set{i}/raw.tif" for i in range(10)])
    moved = [f"gpu/copy/set{i}/raw.png" for i in range(10)]
    split = match_split(recorded, moved)
    for part, names in recorded.items():
        assert [n.split("/")[-2] for n in split[part]] == [n.split("/")[-2] for n in names]
    # Without some images: training and validation images are left out, test images
    # (never read in training) stay in the record under their recorded names.
    kept = [
        n for n in moved if n.split("/")[-2] not in {x.split("/")[-2] for x in recorded["test"]}
    ]
    kept = kept[1:]
    fewer = match_split(recorded, kept)
    assert fewer["test"] == recorded["test"]
    assert sorted(fewer["train"] + fewer["validation"]) == sorted(kept)
    # Names with several dots, frames of a stack, and a split recorded on Windows.
    dotted = {"train": ["C:\\data\\a\\2024.01.05_x.ome.tif", "/d/a/scan.tif[0]"],
              "validation": ["/d/a/scan.tif[1]"], "test": []}  # fmt: skip
    names = ["e/a/2024.01.05_x.png", "e/a/scan.ome.tiff[0]", "e/a/scan.ome.tiff[1]"]
    assert match_split(dotted, names) == {
        "train": names[:2], "validation": names[2:], "test": []
    }  # fmt: skip
    with pytest.raises(ValueError, match="same folder and file name"):
        match_split(recorded, ["a/set1/raw.tif", "b/set1/raw.tif"])
    twice = "recorded split names 'b/set1/raw.tif' both in 'train' and in 'test'"
    with pytest.raises(ValueError, match=twice):
        match_split({"train": ["a/set1/raw.tif"], "test": ["b/set1/raw.tif"]}, moved[:1])
    with pytest.raises(ValueError, match="in no part of the recorded split"):
        match_split(recorded, ["x/set99/raw.tif"])


def test_folder_patterns_pair_images_with_masks(shared_data, monkeypatch):
    images, masks = usiigaci(shared_data, (1, 2, 3))
    pairs = match_files(images, masks)
    assert [p[0].split("/")[-2] for p in pairs] == ["set1", "set2", "set3"]
    assert all(p[0].split("/")[-2] == p[1].split("/")[-2] for p in pairs)
    with pytest.raises(ValueError, match="matches no file"):
        match_files(images, masks.replace("instances_ids", "nothing"))
    # An image pattern that also takes in the masks would train on masks as images.
    folder = images.rsplit("/", 1)[0]
    with pytest.raises(ValueError, match=r"3 file\(s\) match both the image pattern"):
        match_files(f"{folder}/*", masks)
    with pytest.raises(ValueError, match="match both"):
        match_files(masks, masks)
    # The same files named another way (relative to the working folder) are the same files.
    monkeypatch.chdir(shared_data / "usiigaci-phc")
    with pytest.raises(ValueError, match="match both"):
        match_files(masks, "set[123]/instances_ids.png")


def test_names_written_by_a_mac_pair_with_the_same_names_written_elsewhere(tmp_path):
    """A Mac writes "ö" as "o" and its accent (Unicode NFD), most others as one letter
    (NFC): `cytomask evaluate` found no ground truth for a prediction of the same name."""
    import unicodedata

    for form, end in (("NFD", "_unet_cells.png"), ("NFC", "_gt.png")):
        name = unicodedata.normalize(form, "Zelllinie_Größe") + end
        (tmp_path / name).write_bytes(b"")
    ((pred, truth),) = match_files(f"{tmp_path}/*_unet_cells.png", f"{tmp_path}/*_gt.png")
    assert pred.endswith("_unet_cells.png") and truth.endswith("_gt.png")
    # Both forms of one name in one folder (Linux keeps them apart): neither is dropped.
    (tmp_path / (unicodedata.normalize("NFC", "Zelllinie_Größe") + "_unet_cells.png")).touch()
    with pytest.raises(ValueError, match="named alike, their accents written in two forms"):
        match_files(f"{tmp_path}/*_unet_cells.png", f"{tmp_path}/*_gt.png")


def test_results_of_ome_tiffs_pair_with_them(tmp_path):
    """`evaluate --pred 'out/*_unet_cells.tif' --gt 'in/*.tif'` stopped at an OME-TIFF:
    "*.tif" captured "g.ome", its result's "*" captured "g"."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    # W.OME.TIF: its results drop ".OME" too ("W_unet_cells.tif").
    for name in ("a.tif", "g.ome.tif", "W.OME.tif"):
        (tmp_path / "in" / name).write_bytes(b"")
    for name in ("a_unet_cells.tif", "g_unet_cells.tif", "W_unet_cells.tif"):
        (tmp_path / "out" / name).write_bytes(b"")
    expected = [
        ("W_unet_cells.tif", "W.OME.tif"),
        ("a_unet_cells.tif", "a.tif"),
        ("g_unet_cells.tif", "g.ome.tif"),
    ]
    pairs = match_files(f"{tmp_path}/out/*_unet_cells.tif", f"{tmp_path}/in/*.tif")
    assert [(Path(p).name, Path(t).name) for p, t in pairs] == expected
    # And the other way round: training on corrected results of OME-TIFF scans.
    pairs = match_files(f"{tmp_path}/in/*.tif", f"{tmp_path}/out/*_unet_cells.tif")
    assert [(Path(p).name, Path(t).name) for t, p in pairs] == expected


def test_tilescan_channels_give_one_sample_per_tile(tmp_path, monkeypatch):
    scan = make_tilescan(n_tiles=3, shape=(96, 96), seed=2)
    data = np.stack([scan.fluorescence, scan.brightfield, scan.labels], axis=1)  # (P, C, Y, X)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    monkeypatch.chdir(tmp_path)
    samples = samples_from_tilescans(["scan.tif"], 1, 2)
    # Named by absolute path, so a split names each tile the same from any folder.
    assert [s.name for s in samples] == [f"{path}[{i}]" for i in range(3)]
    np.testing.assert_array_equal(samples[2].channels[0], scan.brightfield[2])
    np.testing.assert_array_equal(samples[2].labels, scan.labels[2])
    with pytest.raises(ValueError, match="no channel 7"):
        samples_from_tilescans([path], 7, 2)
    with pytest.raises(ValueError, match="channel 2 is both an input channel and the mask"):
        samples_from_tilescans([path], [1, 2], 2)
    with pytest.raises(ValueError, match=r"the input channels \[1, 1\] name a channel twice"):
        samples_from_tilescans([path], [1, 1], 2)
    # An image channel given as the mask: its intensities were 8,552 "cells", unsaid.
    with pytest.raises(ValueError, match=r"Channel 0 \(.*\) of .*scan.tif does not look like "):
        samples_from_tilescans([path], 1, 0)


def test_images_given_as_masks_are_refused(shared_data, tmp_path):
    """Patterns the other way round trained on phase images as labels, without a word;
    binary masks, bool or with Fiji's watershed lines, and a field one cell fills, are
    masks (a first check refused them)."""
    from skimage.segmentation import find_boundaries

    images, masks = usiigaci(shared_data, (1, 2))
    with pytest.raises(ValueError, match="raw.tif does not look like labels .* the other way"):
        samples_from_folders(masks, images)
    cells = read_image(shared_data / "usiigaci-phc" / "set1" / "instances_ids.png")
    lined = np.where((cells > 0) & ~find_boundaries(cells, mode="inner"), 255, 0)
    one = np.zeros_like(cells)
    one[5:-5, 5:-5] = 7
    for name, mask in (("bool", cells > 0), ("lined", lined.astype(np.uint8)), ("one", one)):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "raw.tif", tifffile.imread(images.replace("[12]", "1")))
        tifffile.imwrite(tmp_path / name / "gt.tif", mask)
    samples = samples_from_folders(str(tmp_path / "*" / "raw.tif"), str(tmp_path / "*" / "gt.tif"))
    assert len(samples) == 3
    # Arrays from a script, the other way round: trained on 17,149 "cells", unsaid.
    phase = read_image(images.replace("[12]", "1"))
    with pytest.raises(ValueError, match=r"^mask of phase does not look like labels .* Were "):
        samples_from_arrays(cells, phase, "phase")
    assert len(samples_from_arrays(phase, cells, "phase")) == 1
    # One scan given as a path, not a list: read as its letters ("/ is not a regular file").
    scan = tmp_path / "scan.tif"
    tifffile.imwrite(scan, np.stack([phase, cells.astype(phase.dtype)]), imagej=True,
                     metadata={"axes": "CYX"})  # fmt: skip
    assert len(samples_from_tilescans(str(scan), 0, 1)) == 1


def test_a_split_given_from_a_script_is_checked_before_training(tmp_path, tiny_unet):
    """A split without "test" failed with KeyError: 'test' after its first epoch, nothing
    saved; an image both trained and validated on was taken without a word."""
    samples, _ = _synthetic_samples(n_tiles=3)
    names = [s.name for s in samples]
    out = tmp_path / "m.safetensors"
    for split, message in (
        ({"train": names[:2], "validation": names[1:]},
         rf"the split names '{re.escape(names[1])}' both in 'train' and in 'validation'"),
        ({"train": names[:2], "valid": names[2:]}, "a split is a dict of 'train', 'validation'"),
        ({"train": names[0], "validation": names[1:]}, r"its 'train' is 'syn\[0\]'"),
    ):  # fmt: skip
        gen = iter_train(samples, out, UNetConfig(**tiny_unet), _small_settings(), split=split)
        with pytest.raises(ValueError, match=message):
            next(gen)
    result = train(samples, out, UNetConfig(**tiny_unet), _small_settings(tune=False),
                   split={"train": names[:2], "validation": names[2:]})  # fmt: skip
    assert result.description["training"]["split"]["test"] == []


def test_images_whose_masks_hold_no_cell_are_left_out_and_named(tmp_path, tiny_unet):
    """An unlabelled validation image scored every epoch 0, none beating the start, and
    the run was put down to training; an unlabelled training image taught its cells as
    background; neither was said."""
    samples, _ = _synthetic_samples(n_tiles=4)
    samples = [
        replace(s, labels=np.zeros_like(s.labels)) if i in (1, 3) else s
        for i, s in enumerate(samples)
    ]
    names = [s.name for s in samples]
    split = {"train": names[:2], "validation": names[2:], "test": []}
    trained, validated, note = training._training_sets(split, {s.name: s for s in samples})
    assert [s.name for s in trained] == [names[0]] and [s.name for s in validated] == [names[2]]
    assert note == (
        f"2 image(s) whose masks hold no cell ({names[1]}, {names[3]}) are left out: label "
        "their cells to train or validate on them."
    )
    gen = iter_train(samples, tmp_path / "m.safetensors", UNetConfig(**tiny_unet),
                     _small_settings(tune=False), split=split)  # fmt: skip
    reports = list(gen)
    assert note in [p.message for p in reports if p.phase == "notice"]
    # The split said is of the images used (it named the unlabelled ones with them).
    (said,) = [p.split for p in reports if p.phase == "split"]
    assert said == {"train": [names[0]], "validation": [names[2]], "test": []}


@pytest.mark.parametrize(
    ("setting", "said"),
    [({"epochs": 1.5}, r"^epochs must be a whole number \(got 1.5\)\.$"),
     ({"steps_per_epoch": "5"}, r"^steps_per_epoch must be a whole number \(got '5'\)\.$"),
     ({"learning_rate": -1e-3}, r"^learning_rate must be above 0 \(got -0.001\)\.$"),
     ({"lr_factor": 2}, r"^lr_factor must be between 0 and 1 \(got 2\)\.$"),
     ({"cell_bias": 2}, r"^cell_bias must be from 0 to 1 \(got 2\)\.$"),
     ({"dice_weight": -1}, r"^dice_weight must be at least 0 \(got -1\)\.$"),
     ({"patience": 0}, r"^patience must be at least 1 \(got 0\)\.$"),
     ({"learning_rate": float("nan")}, r"^learning_rate must be a number \(got nan\)\.$")],
)  # fmt: skip
def test_training_settings_from_a_script_are_refused_before_training(setting, said):
    """Refused in Python's or torch's words ("Factor should be < 1.0"), or taken: a Dice
    weight of -1 made the loss negative, a patience of 0 stopped after the first epoch."""
    samples, _ = _synthetic_samples(n_tiles=1)
    with pytest.raises(ValueError, match=said):
        next(iter_train(samples, None, None, replace(_small_settings(), **setting)))


def test_two_images_of_one_name_are_named_with_what_to_do():
    """Two samples_from_arrays calls without a name were refused as "training samples need
    unique names.", naming neither the name nor name=."""
    scan = make_tilescan(n_tiles=2, shape=(96, 96), seed=4)
    samples = [*samples_from_arrays(scan.brightfield[0], scan.labels[0]),
               *samples_from_arrays(scan.brightfield[1], scan.labels[1])]  # fmt: skip
    with pytest.raises(ValueError, match=r"two are named 'image'.*name=\.\.\.\)\)\.$"):
        next(iter_train(samples, None, None, _small_settings()))


def test_an_output_in_the_home_folder_written_as_a_tilde_is_there(tmp_path, tiny_unet, monkeypatch):
    """train(…, "~/m.safetensors") made a folder named ~ in the current folder, where the
    model is then read from the home folder and not found."""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir(), here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    samples, _ = _synthetic_samples(n_tiles=1)
    config = UNetConfig(**tiny_unet)
    result = train(samples, "~/m.safetensors", config, _small_settings(tune=False))
    assert result.checkpoint == home / "m.safetensors" and list(here.iterdir()) == []


def test_masks_whose_only_cells_went_to_validation_are_explained(tmp_path, tiny_unet):
    scan = make_tilescan(n_tiles=3, shape=(96, 96), seed=2)
    labels = scan.labels.copy()
    samples = samples_from_arrays(scan.brightfield, labels, "scan")
    split = split_by_image([s.name for s in samples], (0.8, 0.1, 0.1), 0)
    (val,) = split["validation"]
    for s in samples:
        if s.name != val:
            s.labels[...] = 0
    with pytest.raises(ValueError, match=r"the image\(s\) with cells \(scan\[\d\]\) were drawn"):
        train(samples, tmp_path / "m.safetensors", UNetConfig(**tiny_unet), _small_settings(
            fractions=(0.8, 0.1, 0.1)))  # fmt: skip


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


def test_an_image_smaller_than_the_crop_is_mirrored_with_its_cells(tiny_unet):
    """The image was mirrored to fill the crop, its cells padded as background: the
    network was taught that the mirrored cells it saw were none."""
    labels = np.zeros((1, 48, 40), np.uint16)
    labels[0, 30:48, 5:20] = 1  # on the bottom edge
    labels[0, 10:25, 22:38] = 2
    image = np.where(labels > 0, 200.0, 100.0) + np.arange(40) / 40  # a ramp, to see mirroring
    samples = samples_from_arrays(image, labels, "s")
    settings = TrainingSettings(crop_size=64)
    sampler = CropSampler(samples, UNetConfig(**tiny_unet), settings, np.random.default_rng(0))
    crop, cells = sampler._region(0, 64)
    assert crop.shape == (1, 64, 64) and cells.shape == (64, 64)
    mirrored = np.pad(labels[0], ((0, 16), (0, 24)), mode="reflect")
    assert cells[48:].any() and cells[:, 40:].any()  # the mirrored cells are cells
    np.testing.assert_array_equal(cells, mirrored)
    np.testing.assert_array_equal(crop[0] > crop[0].mean(), mirrored > 0)  # where they show


def test_crop_workers_make_the_same_batches_whatever_their_number(tiny_unet):
    scan = make_tilescan(n_tiles=2, shape=(128, 128), seed=0)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "s")
    sampler = CropSampler(
        samples, UNetConfig(**tiny_unet), TrainingSettings(crop_size=64), np.random.default_rng(0)
    )

    def first(workers, count=5, seed=7, start=0):
        batches = _batches(sampler, 3, workers, seed, start)
        out = [next(batches) for _ in range(count)]
        batches.close()
        return out

    one, two = first(1), first(2)
    for (x1, y1), (x2, y2) in zip(one, two, strict=True):
        assert x1.shape == (3, 1, 64, 64) and x1.dtype == torch.float32 and y1.dtype == torch.int64
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(one[0][0], one[1][0])  # each batch has its own crops
    assert torch.equal(first(2, count=1, start=3)[0][0], one[3][0])  # where a resume goes on
    assert not torch.equal(first(1, count=1, seed=8)[0][0], one[0][0])
    assert (torch.cat([y for _, y in one]) > 0).float().mean() > 0.3  # biased towards cells
    in_process = first(0, count=2)
    assert in_process[0][0].shape == (3, 1, 64, 64) and not torch.equal(in_process[0][0], one[0][0])


def _dying_worker(seed, n):
    os._exit(3)


def test_a_crop_worker_that_dies_is_named_in_one_line(monkeypatch, tiny_unet):
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=0)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "s")
    sampler = CropSampler(
        samples, UNetConfig(**tiny_unet), TrainingSettings(crop_size=64), np.random.default_rng(0)
    )
    monkeypatch.setattr(training, "_worker_arrays", _dying_worker)
    batches = _batches(sampler, 2, 1, 0)
    with pytest.raises(ChildProcessError, match="fewer crop workers"):
        next(batches)


def test_crop_workers_are_used_on_a_gpu_only_by_default(monkeypatch, tmp_path, tiny_unet):
    assert default_workers(torch.device("cpu")) == 0
    assert 0 <= default_workers(torch.device("cuda")) <= 8
    with pytest.raises(ValueError, match="workers must be 0 or more"):
        TrainingSettings(workers=-1).validate()
    # Where processes cannot be forked (Windows) there are none by default, and asking
    # for some says what to do.
    monkeypatch.setattr(training, "_can_fork", lambda: False)
    assert default_workers(torch.device("cuda")) == 0
    samples, _ = _synthetic_samples()
    with pytest.raises(ValueError, match="--workers 0"):
        train(
            samples, tmp_path / "w.safetensors", UNetConfig(**tiny_unet), _small_settings(workers=1)
        )


def test_crop_workers_run_from_a_script_without_a_main_guard(tmp_path, tiny_unet):
    """Workers are forked, so they never run the main script again: a plain script that
    trains at its top level works."""
    script = tmp_path / "train_here.py"
    script.write_text(
        "from napari_cytomask.models.training import TrainingSettings, samples_from_arrays, train\n"
        "from napari_cytomask.models.unet import UNetConfig\n"
        "from napari_cytomask.synthetic import make_tilescan\n"
        "scan = make_tilescan(n_tiles=2, shape=(96, 96), seed=4)\n"
        "samples = samples_from_arrays(scan.brightfield, scan.labels, 'syn')\n"
        f"config = UNetConfig(**{tiny_unet!r})\n"
        "settings = TrainingSettings(epochs=1, steps_per_epoch=2, batch_size=2, crop_size=64,\n"
        "    encoder_weights=None, device='cpu', fractions=(1, 0, 0), workers=1)\n"
        "result = train(samples, 'model.safetensors', config, settings)\n"
        "print('steps', result.description['training']['steps_done'])\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "steps 2" in run.stdout


def test_training_with_crop_workers(tmp_path, tiny_unet):
    samples, _ = _synthetic_samples()
    result = train(
        samples, tmp_path / "w.safetensors", UNetConfig(**tiny_unet), _small_settings(workers=2)
    )
    training = result.description["training"]
    assert training["steps_done"] == 2 and training["settings"]["workers"] == 2
    assert all(np.isfinite(h["loss"]) for h in training["history"])


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


def _synthetic_samples(n_tiles=2):
    scan = make_tilescan(n_tiles=n_tiles, shape=(96, 96), seed=4)
    return samples_from_arrays(scan.brightfield, scan.labels, "syn"), scan


def _small_settings(**kwargs) -> TrainingSettings:
    return TrainingSettings(
        steps_per_epoch=2,
        batch_size=2,
        crop_size=64,
        encoder_weights=None,
        device="cpu",
        **{"epochs": 1, "fractions": (1, 0, 0), **kwargs},
    )


def test_a_lone_image_holds_back_its_last_quarter_to_validate_and_tune_on(tmp_path, tiny_unet):
    """With one labelled image a split by image leaves nothing to validate on (the
    thresholds would stay at their defaults); its last quarter is held back instead."""
    scan = make_tilescan(n_tiles=1, shape=(96, 160), seed=4)
    (sample,) = samples_from_arrays(scan.brightfield, scan.labels, "img")
    parts = training.hold_back_part(sample)
    assert [p.name for p in parts] == ["img (columns 0-119)", "img (columns 120-159)"]
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts], 1), sample.labels)
    np.testing.assert_array_equal(parts[1].channels, sample.channels[:, :, 120:])
    assert training.hold_back_part(replace(sample, labels=sample.labels[:, :96])) is None  # 24 px
    # Labelled in one area only: a part without cells would score 0 at every epoch.
    left_only = replace(sample, labels=np.where(np.arange(160) < 100, sample.labels, 0))
    assert left_only.labels[:, :100].any() and training.hold_back_part(left_only) is None

    settings = _small_settings(fractions=(0.8, 0.1, 0.1), epochs=2)
    first = train([sample], tmp_path / "a.safetensors", UNetConfig(**tiny_unet), settings)
    record = first.description["training"]
    assert record["held_back"] is True
    assert record["split"] == {
        "train": ["img (columns 0-119)"], "validation": ["img (columns 120-159)"], "test": []
    }  # fmt: skip
    assert "mean_average_f1" in first.description["scores"]["validation"]
    assert first.description["postprocess"]["tuned_on"] == ["img (columns 120-159)"]
    # A resumed run cuts the image the same way, and keeps its split.
    state = torch.load(state_path(first.checkpoint), weights_only=True)
    torch.save({**state, "epoch": 1, "history": state["history"][:1]}, state_path(first.checkpoint))
    again = train([sample], None, None, settings, resume=first.checkpoint)
    assert again.description["training"]["split"] == record["split"]
    # --split-from it: the new run cuts the lone image the same way itself.
    from napari_cytomask.cli import UserError, _recorded_split

    assert _recorded_split(str(first.checkpoint), [sample]) is None
    with pytest.raises(UserError, match="give that image alone"):
        _recorded_split(str(first.checkpoint), [sample, replace(sample, name="other")])
    with pytest.raises(UserError, match="give that image alone"):  # another lone image
        _recorded_split(str(first.checkpoint), [replace(sample, name="other")])
    # Tuned again later (cytomask tune on the same image): on the held-back part only;
    # a copy in another format elsewhere is the same image, another image is not cut.
    tuned = drain(training.iter_tune_checkpoint(first.checkpoint, [sample], device="cpu"))
    assert tuned["tuned_on"] == ["img (columns 120-159)"]
    record = first.description["training"]
    copy = replace(sample, name="img.png")
    assert [p.name for p in training.cut_as_recorded(record, [copy])][1] == (
        "img.png (columns 120-159)"
    )
    other = replace(sample, name="other")
    assert training.cut_as_recorded(record, [other]) == [other]
    # Training on all of it, by choice (--split 1,0,0), holds nothing back.
    whole = train([sample], tmp_path / "b.safetensors", UNetConfig(**tiny_unet),
                  _small_settings())  # fmt: skip
    assert whole.description["training"]["split"]["train"] == ["img"]
    assert whole.description["training"]["held_back"] is False
    # Such a run, resumed with a validation share, goes on with its own split.
    resumed = train([sample], None, None, replace(settings, epochs=2), resume=whole.checkpoint)
    assert resumed.description["training"]["split"]["train"] == ["img"]


def test_samples_hold_their_own_copy_of_the_mask():
    """The samples of a napari mask layer shared its memory: painting on it while a run
    trained changed that run's crops and validation targets."""
    scan = make_tilescan(n_tiles=2, shape=(64, 64), seed=4)
    labels = scan.labels.copy()
    samples = samples_from_arrays(scan.brightfield, labels, "syn")
    labels[:, :8, :8] = 999  # painted while training
    for sample, original in zip(samples, scan.labels, strict=True):
        np.testing.assert_array_equal(sample.labels, original)


def test_resume_continues_the_epoch_count(tmp_path, tiny_unet):
    samples, scan = _synthetic_samples()
    settings = _small_settings()
    first = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), settings)
    # The epochs asked for count the run's own: one done, one asked for, nothing to do.
    with pytest.raises(ValueError, match="has trained 1 epochs, and 1 were asked for in all"):
        train(samples, tmp_path / "b.safetensors", None, settings, resume=first.checkpoint)
    assert not (tmp_path / "b.safetensors").exists()
    two = replace(settings, epochs=2)
    # A run that stopped early goes on only with more patience than it ran out of.
    state = torch.load(state_path(first.checkpoint), weights_only=True)
    # What the dock reads before it says how long a resumed run takes.
    assert epochs_trained(first.checkpoint, first.description, patience=3) == (1, False)
    torch.save({**state, "since_best": 3}, state_path(first.checkpoint))
    assert epochs_trained(first.checkpoint, first.description, patience=3) == (1, True)
    with pytest.raises(ValueError, match="stopped early after epoch 1: its score had not"):
        train(samples, tmp_path / "b.safetensors", None, replace(two, patience=3),
              resume=first.checkpoint)  # fmt: skip
    torch.save(state, state_path(first.checkpoint))
    second = train(samples, tmp_path / "b.safetensors", None, two, resume=first.checkpoint)
    training = second.description["training"]
    assert training["epochs_done"] == 2 and training["steps_done"] == 4
    assert training["resumed_from"] == str(first.checkpoint)
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    with pytest.raises(ValueError, match="expects 1 input channel"):
        two = samples_from_arrays([scan.brightfield, scan.brightfield], scan.labels, "two")
        train(two, tmp_path / "c.safetensors", None, replace(settings, epochs=2),
              resume=first.checkpoint)  # fmt: skip


def test_training_and_loading_leave_the_global_random_state_alone(tmp_path, tiny_unet):
    """Training seeded PyTorch's global generator (initial seed 1234 became 0) and loading a
    checkpoint drew random weights from it: other random code in napari changed with it."""
    from napari_cytomask.models.inference import UNetPredictor

    samples, _ = _synthetic_samples()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    result = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), _small_settings())
    UNetPredictor.from_checkpoint(result.checkpoint, "cpu")
    assert torch.initial_seed() == 1234 and torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_training_puts_back_the_random_state_of_every_gpu_it_seeds(monkeypatch, kind):
    """Training seeds the CPU's and every GPU's random generators (torch.manual_seed) and
    put back the CPU's alone, then the CUDA GPUs' but not an Apple GPU's (mps). (No GPU
    here: a stand-in for one GPU's generator.)"""
    from napari_cytomask.models.training import _own_random_state

    gpu = [torch.tensor([42], dtype=torch.uint8)]  # its states, the last the current one

    def seed_gpu(seed):
        gpu.append(torch.tensor([seed], dtype=torch.uint8))

    if kind == "cuda":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "manual_seed_all", seed_gpu)
    else:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
        monkeypatch.setattr(torch.mps, "manual_seed", seed_gpu)
    module = getattr(torch, kind)
    monkeypatch.setattr(module, "get_rng_state", lambda device: gpu[-1])
    monkeypatch.setattr(module, "set_rng_state", lambda state, device: gpu.append(state))

    @_own_random_state
    def seeded():  # as iter_train, which it wraps, seeds them
        torch.manual_seed(0)
        yield torch.rand(1)

    cpu = torch.get_rng_state()
    drain(seeded())
    assert torch.equal(torch.get_rng_state(), cpu)
    assert [int(state) for state in gpu] == [42, 0, 42]  # seeded, then put back


def test_fine_tuning_starts_from_the_given_weights_with_a_fresh_run(tmp_path, tiny_unet):
    samples, scan = _synthetic_samples()
    settings = _small_settings()
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    fresh = train(samples, tmp_path / "fresh.safetensors", UNetConfig(**tiny_unet),
                  _small_settings(seed=1))  # fmt: skip
    # A network given alongside is ignored: fine-tuning keeps the base model's network.
    other = UNetConfig(**{**tiny_unet, "decoder_channels": (64, 32, 16)})
    tuned = train(samples, tmp_path / "tuned.safetensors", other, settings,
                  init_from=base.checkpoint)  # fmt: skip
    training = tuned.description["training"]
    assert training["initialised_from"] == str(base.checkpoint)
    assert training["epochs_done"] == 1 and training["resumed_from"] is None
    assert training["pretrained_encoder"] is None
    assert tuned.description["decoder_channels"] == list(tiny_unet["decoder_channels"])
    # Two AdamW steps at lr 1e-3 move each weight by about 2e-3 from where it started;
    # two independent initialisations lie far further apart.
    weights = {
        name: load_checkpoint(result.checkpoint)[0].state_dict()
        for name, result in (("base", base), ("fresh", fresh), ("tuned", tuned))
    }
    conv = next(k for k, v in weights["base"].items() if k.endswith("weight") and v.ndim == 4)
    moved = (weights["tuned"][conv] - weights["base"][conv]).abs().max()
    apart = (weights["fresh"][conv] - weights["base"][conv]).abs().max()
    assert moved < 0.1 * apart
    with pytest.raises(ValueError, match="not both"):
        train(samples, None, None, settings, resume=base.checkpoint, init_from=base.checkpoint)
    with pytest.raises(ValueError, match="expects 1 input channel"):
        two = samples_from_arrays([scan.brightfield, scan.brightfield], scan.labels, "two")
        train(two, tmp_path / "c.safetensors", None, settings, init_from=base.checkpoint)


def test_a_fine_tuned_model_records_where_its_weights_came_from(tmp_path, tiny_unet, monkeypatch):
    """A fine-tuned model's header kept the model it started from, and the run it resumed,
    by names relative to the folder the run was started in, and the option's default
    ``encoder_weights: imagenet`` though its weights were that model's."""
    samples, _ = _synthetic_samples()
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet),
                 _small_settings())  # fmt: skip
    assert base.description["training"]["settings"]["encoder_weights"] is None
    monkeypatch.chdir(tmp_path)
    imagenet = replace(_small_settings(), encoder_weights="imagenet")
    tuned = train(samples, "tuned.safetensors", None, imagenet, init_from="base.safetensors")
    record = tuned.description["training"]
    assert record["initialised_from"] == str(base.checkpoint)
    assert record["settings"]["encoder_weights"] == str(base.checkpoint)
    # Resumed, by a relative name and with the option's default: the same start.
    more = replace(imagenet, epochs=2)
    record = train(samples, None, None, more, resume="tuned.safetensors").description["training"]
    assert record["resumed_from"] == str(tmp_path / "tuned.safetensors")
    assert record["settings"]["encoder_weights"] == str(base.checkpoint)
    # A new network resumed keeps its own start: random weights.
    record = train(samples, None, None, more, resume="base.safetensors").description["training"]
    assert record["settings"]["encoder_weights"] is None


def test_fine_tuning_validates_at_thresholds_tuned_for_its_starting_weights(
    tmp_path, tiny_unet, monkeypatch
):
    """The default thresholds score a trained model far below tuned ones, so fine-tuning
    first tunes them on its own validation images (without TTA, as validation runs),
    chooses its checkpoint by the scores at those settings, and so does its resumption."""
    from napari_cytomask.models import training

    samples, _ = _synthetic_samples()
    settings = _small_settings(fractions=(0.5, 0.5, 0))
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    evaluated, tuned = [], []
    evaluate, tune = training.iter_evaluate, training.iter_tune_postprocess

    def evaluate_spy(predictor, samples, **kwargs):
        evaluated.append(kwargs["settings"])
        return evaluate(predictor, samples, **kwargs)

    def tune_spy(predictor, samples, **kwargs):
        result = yield from tune(predictor, samples, **kwargs)
        tuned.append((kwargs.get("tta", True), result))
        return result

    monkeypatch.setattr(training, "iter_evaluate", evaluate_spy)
    monkeypatch.setattr(training, "iter_tune_postprocess", tune_spy)
    plain = train(samples, tmp_path / "plain.safetensors", UNetConfig(**tiny_unet), settings)
    # From random weights: validation at the defaults, tuning only at the end, with TTA.
    assert evaluated == [None] and [tta for tta, _ in tuned] == [True]
    assert plain.description["training"]["validation_settings"] is None
    evaluated.clear(), tuned.clear()
    fine = train(samples, tmp_path / "fine.safetensors", None, settings, init_from=base.checkpoint)
    assert [tta for tta, _ in tuned] == [False, True]
    first = tuned[0][1]
    expected = {k: first[k] for k in ("interior_threshold", "foreground_threshold", "min_size")}
    assert evaluated == [expected, expected]  # the starting model (epoch 0), then epoch 1
    assert fine.description["training"]["validation_settings"] == expected
    evaluated.clear(), tuned.clear()
    train(
        samples,
        tmp_path / "more.safetensors",
        None,
        replace(settings, epochs=2),
        resume=fine.checkpoint,
    )
    assert evaluated == [expected] and [tta for tta, _ in tuned] == [True]


def test_a_fine_tuning_run_stopped_as_it_chose_the_thresholds_points_to_what_it_saved(
    tmp_path, tiny_unet, validation_scores
):
    """No epoch beat the starting model, so the run kept it (with the training state),
    then chose its thresholds. Stopped then, it said nothing of the file: the dock and
    the command line said nothing was saved and offered no resume. Each epoch's report
    names it, from the first on (a run stopped after an epoch lost its epochs)."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(fractions=(2, 1, 0), tune=False)
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    validation_scores([0.5, 0.4, 0.3])
    out = tmp_path / "fine.safetensors"
    gen = iter_train(samples, out, None, replace(settings, epochs=2, tune=True),
                     init_from=base.checkpoint)  # fmt: skip
    reports = []
    for progress in gen:
        reports.append(progress)
        if progress.phase == "tune" and progress.epoch == 2:  # the last step
            gen.close()
            break
    epochs = [p for p in reports if p.phase == "epoch"]
    assert [(p.epoch, p.checkpoint, p.improved) for p in epochs] == [
        (0, None, False), (1, out, False), (2, out, False)
    ]  # fmt: skip
    assert read_description(out)["training"]["finished"] is False
    assert torch.load(state_path(out), weights_only=True)["epoch"] == 2
    # Resumed, it only chooses the thresholds, and keeps the starting weights.
    finished = train(samples, None, None, replace(settings, epochs=2, tune=True), resume=out)
    assert finished.description["training"]["finished"] is True
    assert finished.description["training"]["best_epoch"] == 0
    start, kept = (load_checkpoint(p)[0].state_dict() for p in (base.checkpoint, out))
    assert all(torch.equal(start[k], kept[k]) for k in start)


def test_fine_tuning_without_tuning_keeps_the_starting_models_thresholds(
    tmp_path, tiny_unet, validation_scores, monkeypatch
):
    """Fine-tuned with --no-tune, a model kept its start's weights but not its thresholds:
    the starter model so fine-tuned segmented at 0.5 / 0.5 / 0 for its own 0.5 / 0.95 /
    570 (F1@0.5 0.729 for 0.911), its epochs were scored at those, and the run said its
    thresholds were "chosen on these images"."""
    from napari_cytomask.models.checkpoint import save_checkpoint
    from napari_cytomask.models.inference import (
        DEFAULT_SETTINGS,
        UNetPredictor,
        recommended_settings,
    )

    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(fractions=(2, 1, 0), tune=False)
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    # A new network not tuned keeps the defaults, as before.
    plain_settings = UNetPredictor.from_checkpoint(base.checkpoint, "cpu").settings
    assert plain_settings == {"interior_threshold": 0.5, "foreground_threshold": 0.5, "min_size": 0}
    own = {"interior_threshold": 0.7, "foreground_threshold": 0.9, "min_size": 30}
    described = {**read_description(base.checkpoint), "postprocess": own}
    save_checkpoint(base.checkpoint, load_checkpoint(base.checkpoint)[0], described)
    used = []
    evaluate = training.iter_evaluate

    def iter_evaluate(*args, settings=None, **kwargs):
        used.append(settings)
        return (yield from evaluate(*args, settings=settings, **kwargs))

    monkeypatch.setattr(training, "iter_evaluate", iter_evaluate)
    validation_scores([0.5, 0.4])  # epoch 0, the starting model, stays the best
    fine = train(samples, tmp_path / "fine.safetensors", None, settings, init_from=base.checkpoint)
    assert "postprocess" not in fine.description
    assert used == [own, own]
    assert UNetPredictor.from_checkpoint(fine.checkpoint, "cpu").settings == own
    assert kept_start_note(fine.description).startswith(
        "No epoch scored above the starting model on the validation images, so the model "
        "saved is the starting one, with thresholds its own."
    )
    # One fine-tuned so before, whose epochs were scored at the defaults, keeps them, as
    # its scores were measured at them.
    before = {**fine.description}
    before["training"] = {**before["training"], "validation_settings": None}
    assert recommended_settings(before) == DEFAULT_SETTINGS
    # With no image left to validate on, it keeps its start's too, and says so.
    alone = replace(settings, fractions=(1, 0, 0), tune=True)
    gen = iter_train(
        samples, tmp_path / "alone.safetensors", None, alone, init_from=base.checkpoint
    )
    notices = [p.message for p in gen if p.phase == "notice"]
    assert any("stay those of the model it started from" in n for n in notices)
    assert UNetPredictor.from_checkpoint(tmp_path / "alone.safetensors", "cpu").settings == own


def test_a_starting_model_that_cannot_be_saved_leaves_no_training_state(
    tmp_path, tiny_unet, monkeypatch, validation_scores
):
    """The state was written before the model, so a full disk left a state of megabytes
    beside no model."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(fractions=(2, 1, 0), tune=False)
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    validation_scores([0.5, 0.4])

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training, "save_checkpoint", full_disk)
    out = tmp_path / "fine.safetensors"
    with pytest.raises(OSError, match="No space left"):
        train(samples, out, None, settings, init_from=base.checkpoint)
    assert not out.exists() and not state_path(out).exists()


def test_the_learning_rate_counts_epochs_below_the_starting_model_as_no_improvement(
    tmp_path, tiny_unet, validation_scores
):
    """The schedule never heard the starting model's score, so the first epoch below it
    counted as an improvement and the rate fell an epoch late."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(fractions=(2, 1, 0), tune=False)
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    validation_scores([0.5, 0.4, 0.3, 0.2])
    rates = {}
    drain(
        iter_train(samples, tmp_path / "fine.safetensors", None,
                   replace(settings, epochs=3, lr_patience=1, lr_factor=0.5),
                   init_from=base.checkpoint),
        lambda p: rates.update({p.epoch: p.learning_rate}) if p.phase == "epoch" else None,
    )  # fmt: skip
    rate = settings.learning_rate
    # Two epochs without improving on the start (patience 1): the rate halves after the second.
    assert rates == {0: rate, 1: rate, 2: rate / 2, 3: rate / 2}


def test_a_resumed_run_follows_the_schedule_and_weight_decay_it_is_given(tmp_path, tiny_unet):
    """Resuming brought back the schedule's factor and patience and the weight decay the run
    started with, while the checkpoint recorded the new ones."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(fractions=(2, 1, 0), tune=False, lr_patience=4, lr_factor=0.5)
    first = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), settings)
    other = replace(settings, epochs=2, lr_patience=0, lr_factor=0.1, weight_decay=0.5)
    second = train(samples, None, None, other, resume=first.checkpoint)
    state = torch.load(state_path(second.checkpoint), weights_only=True)
    assert (state["scheduler"]["factor"], state["scheduler"]["patience"]) == (0.1, 0)
    assert {g["weight_decay"] for g in state["optimiser"]["param_groups"]} == {0.5}
    recorded = second.description["training"]["settings"]
    assert (recorded["lr_factor"], recorded["lr_patience"], recorded["weight_decay"]) == (
        0.1, 0, 0.5,
    )  # fmt: skip


def test_a_resumed_fine_tuning_run_starts_its_thresholds_from_the_starting_models(
    tmp_path, tiny_unet, monkeypatch
):
    """Choosing thresholds starts from the starting model's own; a fine-tuning run stopped
    as it chose them, and resumed, started from the defaults instead (its checkpoint has
    no thresholds yet), and could end with others than the run never stopped."""
    from napari_cytomask.models.checkpoint import save_checkpoint

    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(fractions=(2, 1, 0), tune=False)
    base = train(samples, tmp_path / "base.safetensors", UNetConfig(**tiny_unet), settings)
    model, description = load_checkpoint(base.checkpoint)
    own = {"interior_threshold": 0.63, "foreground_threshold": 0.41, "min_size": 7}
    save_checkpoint(base.checkpoint, model, {**description, "postprocess": own})
    starts, tune = [], training.iter_tune_postprocess

    def spy(*args, **kwargs):
        starts.append(kwargs.get("start"))
        return (yield from tune(*args, **kwargs))

    monkeypatch.setattr(training, "iter_tune_postprocess", spy)
    out = tmp_path / "fine.safetensors"
    fine = replace(settings, tune=True)
    gen = iter_train(samples, out, None, fine, init_from=base.checkpoint)
    for progress in gen:
        if progress.phase == "tune" and progress.epoch == 1:  # choosing its thresholds
            gen.close()
            break
    train(samples, None, None, fine, resume=out)
    assert starts == [own, own, own]  # before the first epoch, after the last, resumed


@pytest.mark.parametrize("workers", [0, 1], ids=["crops in-process", "crop workers"])
def test_a_cancelled_run_resumes_exactly_where_it_stopped(tmp_path, tiny_unet, workers):
    """Cancelled in epoch 3 and resumed, training ends with the same weights, optimiser
    moments, learning rate and losses as a run that was never interrupted."""
    samples, _ = _synthetic_samples(n_tiles=3)
    # A validation image and no learning-rate patience: the schedule and the
    # early-stopping count change every epoch, so a resume that lost them differs.
    settings = _small_settings(
        epochs=4, fractions=(2, 1, 0), lr_patience=0, patience=5, workers=workers
    )
    config = UNetConfig(**tiny_unet)
    whole = train(samples, tmp_path / "whole.safetensors", config, settings)

    gen = iter_train(samples, tmp_path / "cut.safetensors", config, settings)
    for progress in gen:
        if progress.phase == "train" and progress.epoch == 3:
            gen.close()  # what the widget's Cancel does
            break
    # The checkpoint holds the best epoch's weights, the state the last epoch's.
    assert read_description(tmp_path / "cut.safetensors")["training"]["best_epoch"] == 1
    # The same settings finish the run: 4 epochs in all.
    resumed = train(
        samples,
        tmp_path / "resumed.safetensors",
        None,
        settings,
        resume=tmp_path / "cut.safetensors",
    )

    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    assert resumed.description["training"]["epochs_done"] == 4
    a = torch.load(state_path(whole.checkpoint), weights_only=True)
    b = torch.load(state_path(resumed.checkpoint), weights_only=True)
    assert a["epoch"] == b["epoch"] == 4 and a["steps"] == b["steps"] == 8
    assert a["optimiser"]["param_groups"][0]["lr"] < settings.learning_rate  # it was reduced
    assert a["optimiser"]["param_groups"][0]["lr"] == b["optimiser"]["param_groups"][0]["lr"]
    assert a["since_best"] == b["since_best"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for i, moments in a["optimiser"]["state"].items():
        assert torch.equal(moments["exp_avg_sq"], b["optimiser"]["state"][i]["exp_avg_sq"])


def test_an_epoch_cut_short_by_the_time_limit_is_finished_by_resume(tmp_path, tiny_unet):
    """Resumed after a time limit cut an epoch short, a run counted that epoch done and
    skipped the rest of it. It goes on from the step the limit stopped it at, to the same
    weights and losses as a run never cut, and its history says which epoch was resumed."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = replace(
        _small_settings(epochs=2, fractions=(2, 1, 0), lr_patience=0, tune=False),
        steps_per_epoch=3,
    )
    config = UNetConfig(**tiny_unet)
    whole = train(samples, tmp_path / "whole.safetensors", config, settings)
    # A limit of 0 s passes at the first step.
    cut = train(samples, tmp_path / "cut.safetensors", config, replace(settings, time_limit=0))
    assert [(h["epoch"], h.get("steps_in_epoch")) for h in cut.history] == [(1, 1)]
    assert epochs_trained(cut.checkpoint, cut.description, patience=5) == (0, False)
    steps = []
    resumed = drain(
        iter_train(samples, None, None, settings, resume=cut.checkpoint),
        lambda p: steps.append((p.epoch, p.step)) if p.phase == "train" else None,
    )
    assert steps == [(1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    history = resumed.history
    assert [(h["epoch"], h["steps"], h.get("steps_in_epoch"), h.get("resumed_at_step"))
            for h in history] == [(1, 1, 1, None), (1, 3, None, 2), (2, 6, None, None)]  # fmt: skip
    # The resumed epoch's loss is that of all its steps.
    assert [h["loss"] for h in history[1:]] == pytest.approx([h["loss"] for h in whole.history])
    a = torch.load(state_path(whole.checkpoint), weights_only=True)
    b = torch.load(state_path(resumed.checkpoint), weights_only=True)
    assert a["steps"] == b["steps"] == 6
    assert a["optimiser"]["param_groups"][0]["lr"] == b["optimiser"]["param_groups"][0]["lr"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


def test_an_epoch_cut_short_is_finished_by_resume_without_the_training_state(
    tmp_path, tiny_unet, monkeypatch
):
    """Without its training state, a resumed run took its model's record of the epochs done
    and counted the epoch the time limit cut short as done: the rest of it was never
    trained, and a run of one epoch could not be resumed at all. The record says how many
    steps it had, so the rest is trained, from the model's weights. Where the part before
    the cut stays the best, nothing told it from the whole epoch (both "epoch 1"), and the
    finished epoch's loss was reported of the resumed steps alone."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = replace(_small_settings(fractions=(2, 1, 0), tune=False), steps_per_epoch=3)
    config = UNetConfig(**tiny_unet)
    # The part of the epoch before the cut scores above the whole of it.
    scores = iter([0.5, 0.1])
    monkeypatch.setattr(
        training, "scores_of", lambda _: {"mean_average_f1": next(scores), "f1_50": 0}
    )
    cut = train(samples, tmp_path / "cut.safetensors", config, replace(settings, time_limit=0))
    state_path(cut.checkpoint).unlink()
    assert epochs_trained(cut.checkpoint, cut.description, patience=5) == (0, False)
    steps, losses = [], []
    resumed = drain(
        iter_train(samples, None, None, settings, resume=cut.checkpoint),
        lambda p: steps.append((p.epoch, p.step)) if p.phase == "train"
        else losses.append(p.loss) if p.phase == "epoch" else None,
    )  # fmt: skip
    assert steps == [(1, 2), (1, 3)]
    assert [(h["epoch"], h["steps"], h.get("steps_in_epoch"), h.get("resumed_at_step"))
            for h in resumed.history] == [(1, 1, 1, None), (1, 3, None, 2)]  # fmt: skip
    record = resumed.description["training"]
    assert record["epochs_done"] == 1
    # The epoch's end reports its loss as recorded: of its 3 steps, not of the 2 resumed.
    assert losses == [resumed.history[-1]["loss"]]
    assert (record["best_epoch"], record["best_steps_in_epoch"]) == (1, 1)
    assert training.saved_epoch_note(resumed.description) == (
        "The model saved is that of epoch 1 up to step 1 of 3, where the time limit cut it "
        "short: the best on the validation images (mean-average F1 0.500)."
    )
    # A whole epoch, kept by its training loss; a fine-tuning run's starting model, said by
    # kept_start_note.
    assert training.saved_epoch_note({"training": {"best_epoch": 3}}) == (
        "The model saved is that of epoch 3: the one with the lowest training loss."
    )
    assert training.saved_epoch_note({"training": {"best_epoch": 0}}) == ""


@pytest.mark.parametrize("patience", [5, 1], ids=["all epochs done", "stopped early"])
def test_a_run_stopped_as_it_chose_its_thresholds_is_finished_by_resume(
    tmp_path, tiny_unet, patience
):
    """Killed after its last epoch, as it chose its thresholds (minutes on real images),
    a run could not be finished: --resume said its epochs were all done, though the note
    on its model said to finish it with --resume."""
    samples, _ = _synthetic_samples(n_tiles=3)
    settings = _small_settings(epochs=3, fractions=(2, 1, 0), patience=patience,
                               lr_patience=0)  # fmt: skip
    config = UNetConfig(**tiny_unet)
    whole = train(samples, tmp_path / "whole.safetensors", config, settings)
    gen = iter_train(samples, tmp_path / "cut.safetensors", config, settings)
    for progress in gen:
        if progress.phase == "tune":
            gen.close()
            break
    cut = read_description(tmp_path / "cut.safetensors")
    assert cut["training"]["finished"] is False and "postprocess" not in cut
    epochs = []
    resumed = drain(
        iter_train(samples, None, None, settings, resume=tmp_path / "cut.safetensors"),
        lambda p: epochs.append(p.epoch) if p.phase == "train" else None,
    )
    assert epochs == []  # no epoch trained again
    done = resumed.description["training"]
    assert (
        done["finished"] is True
        and done["epochs_done"] == whole.description["training"]["epochs_done"]
    )
    assert done["stopped_early"] == whole.stopped_early == (patience == 1)
    assert resumed.description["postprocess"] == whole.description["postprocess"]
    assert read_description(tmp_path / "cut.safetensors")["training"]["finished"] is True


@pytest.mark.parametrize("gpu", [torch.device("cuda", 1), torch.device("mps")], ids=str)
def test_a_run_on_a_gpu_keeps_that_gpus_random_state(monkeypatch, gpu):
    """A resumed GPU run restarted the GPU's random draws (efficientnet's drop-connect):
    only numpy's and the CPU's states were kept, and once CUDA's was, an Apple GPU's (mps)
    still was not. (No GPU here: the GPU's state is a stand-in; the CPU's and numpy's are
    real.)"""
    from napari_cytomask.models.training import _random_state, _restore_random_state

    kept, restored = torch.tensor([7, 8, 9], dtype=torch.uint8), []
    module = getattr(torch, gpu.type)
    monkeypatch.setattr(module, "get_rng_state", lambda device=gpu: kept)
    monkeypatch.setattr(module, "set_rng_state",
                        lambda state, device=gpu: restored.append((state, device)))  # fmt: skip
    rng = np.random.default_rng(3)
    state = _random_state(rng, gpu)
    expected = (rng.random(), torch.rand(2))
    _restore_random_state(state, rng, gpu)
    assert restored == [(kept, gpu)]
    assert (rng.random(), *torch.rand(2)) == (expected[0], *expected[1])
    # On the CPU, and from a state saved before the GPU's was kept: the GPU's is left.
    key = f"{gpu.type}_rng"
    assert _random_state(rng, torch.device("cpu"))[key] is None
    del state[key]
    _restore_random_state(state, rng, gpu)
    assert len(restored) == 1


def test_resume_without_its_training_state_says_the_optimiser_restarts(tmp_path, tiny_unet):
    samples, _ = _synthetic_samples()
    settings = _small_settings()
    first = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), settings)
    other = train(samples, tmp_path / "o.safetensors", UNetConfig(**tiny_unet), settings)

    def notices():
        gen = iter_train(
            samples, tmp_path / "b.safetensors", None, replace(settings, epochs=2, tune=False),
            resume=first.checkpoint,
            overwrite=True,  # each attempt writes b again
        )  # fmt: skip
        return [p.message for p in gen if p.phase == "notice"]

    own_state = torch.load(state_path(first.checkpoint), weights_only=True)
    state_path(other.checkpoint).replace(state_path(first.checkpoint))
    assert notices() == [
        f"the training state {state_path(first.checkpoint)} belongs to another training run; "
        "training continues from its weights with a new optimiser and learning rate."
    ]
    damaged = (
        f"the training state {state_path(first.checkpoint)} is damaged or is not a training "
        "state; training continues from its weights with a new optimiser and learning rate."
    )
    state_path(first.checkpoint).write_bytes(b"not a training state")
    assert notices() == [damaged]
    # A state with weights the network does not have: one saved when networks still
    # carried the encoder stages they never run.
    unused = {**own_state, "model": {**own_state["model"], "encoder.layer4.0.weight": 0}}
    torch.save(unused, state_path(first.checkpoint))
    assert notices() == [
        f"the training state {state_path(first.checkpoint)} holds other weights than the "
        "network; training continues from its weights with a new optimiser and learning rate."
    ]
    del own_state["optimiser"]  # a state saved by other software, or cut short
    torch.save(own_state, state_path(first.checkpoint))
    assert notices() == [damaged]
    state_path(first.checkpoint).unlink()
    assert notices() == [
        "a.safetensors has no training state beside it (a.training-state.pt); training "
        "continues from its weights with a new optimiser and learning rate."
    ]
    assert read_description(tmp_path / "b.safetensors")["training"]["epochs_done"] == 2


def test_a_name_with_no_room_for_the_training_state_stops_before_the_first_epoch(
    tmp_path, tiny_unet
):
    """A checkpoint name that fits, but not with .training-state.pt after its stem, trained
    its first epoch, wrote its checkpoint, then stopped, saying nothing was written."""
    from napari_cytomask.io.atomic import WriteError

    samples, _ = _synthetic_samples()
    stem = "é" * 100 + "m" * 37  # the training state's name: 255 bytes
    fits = train(samples, tmp_path / f"{stem}.safetensors", UNetConfig(**tiny_unet),
                 _small_settings())  # fmt: skip
    assert state_path(fits.checkpoint).is_file()
    longer = tmp_path / "longer" / f"{stem}m.safetensors"
    with pytest.raises(WriteError) as stopped:
        drain(iter_train(samples, longer, UNetConfig(**tiny_unet), _small_settings()))
    assert str(stopped.value) == (
        f"cannot save {longer}: named after it with .training-state.pt, the training state "
        "saved beside it would have 256 bytes, 1 more than the 255 a file name may have; "
        "choose a name at least 1 byte shorter."
    )
    assert not longer.parent.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_file_stops_training_before_the_first_step(tiny_unet):
    """/proc passed the check of the output folder, which asked the system whether it could
    be written to (yes, to root): the run trained its first epoch and failed to save it."""
    from napari_cytomask.io.atomic import WriteError

    samples, _ = _synthetic_samples()
    gen = iter_train(samples, "/proc/model.safetensors", UNetConfig(**tiny_unet),
                     _small_settings())  # fmt: skip
    with pytest.raises(WriteError) as stopped:
        next(gen)  # before the first step is reported
    assert str(stopped.value) == (
        "cannot save to /proc: /proc takes no new files (the system keeps that folder); choose "
        "another output file."
    )


def test_a_diverging_run_stops_with_a_clear_message(tmp_path, tiny_unet, monkeypatch):
    from napari_cytomask.models import training

    samples, _ = _synthetic_samples()

    def nan_loss(logits, *args):
        return logits.sum() * float("nan")

    monkeypatch.setattr(training, "segmentation_loss", nan_loss)
    out = tmp_path / "nan.safetensors"
    with pytest.raises(FloatingPointError, match="training diverged. Lower the learning rate"):
        train(samples, out, UNetConfig(**tiny_unet), _small_settings())
    with pytest.raises(FloatingPointError, match="train again; nothing was saved.$"):
        train(samples, out, UNetConfig(**tiny_unet), _small_settings())
    assert not out.exists() and not state_path(out).exists()


def test_a_run_saved_without_a_gradient_scaler_resumes_with_one(tmp_path, tiny_unet, monkeypatch):
    """A CPU or bf16 run saves an empty scaler state; resuming where fp16 turns the
    scaler on (an older GPU) must not fail on it."""
    from napari_cytomask.models import training

    samples, _ = _synthetic_samples()
    settings = _small_settings()
    first = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), settings)
    monkeypatch.setattr(training, "autocast_dtype", lambda device: torch.float16)
    second = train(
        samples, tmp_path / "b.safetensors", None, replace(settings, epochs=2),
        resume=first.checkpoint,
    )  # fmt: skip
    assert second.description["training"]["epochs_done"] == 2


def test_a_new_default_checkpoint_never_takes_an_existing_name(tmp_path, monkeypatch):
    """Names carry the time to the second; a file (or training state) of that name from
    another run is kept and the new one is numbered."""
    from napari_cytomask.models.checkpoint import DIR_ENV

    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setattr(training.time, "strftime", lambda _: "20261130-120000")
    config = UNetConfig()
    first = training.default_output(config)
    first.write_bytes(b"precious")
    second = training.default_output(config)
    assert second != first and second.name.endswith("-120000-2.safetensors")
    training.state_path(second).write_bytes(b"state of a run in progress")
    assert training.default_output(config).name.endswith("-120000-3.safetensors")
    # Named after what it learnt from, so a list of models says which is which.
    named = training.default_output(config, data=["/data/img2d.tif"], fine_tuned=True)
    assert named.name == "img2d-fine-tuned-20261130-120000.safetensors"
    frames = ["BF[0]", "BF[1]", "/data/set2/raw.ome.tif", "/data/set3/raw.ome.tif", "a/b: c"]
    named = training.default_output(config, data=frames)
    assert named.name == "BF+2-resnet34-20261130-120000.safetensors"
    named = training.default_output(config, data=["sample 1.5x", ".hidden.tif"])
    assert named.name == "sample 1.5x+1-resnet34-20261130-120000.safetensors"
    assert not training.default_output(config, data=[" .hidden"]).name.startswith(".")
    # Files of one name in folders of their own: named after the folder holding them all
    # (Usiigaci's set*/raw.tif made "raw-fine-tuned").
    sets = [f"/data/usiigaci-phc/set{i}/raw.tif" for i in range(1, 4)]
    named = training.default_output(config, data=sets, fine_tuned=True)
    assert named.name == "usiigaci-phc-fine-tuned-20261130-120000.safetensors"


def test_pixels_that_are_not_numbers_do_not_stop_training(tmp_path, tiny_unet):
    scan = make_tilescan(n_tiles=2, shape=(96, 96), seed=4)
    images = scan.brightfield.astype(np.float32)
    images[0, 10:30, 10:30] = np.nan  # a dropped region
    images[1, 50, :] = np.inf  # a saturated row
    images[1, 60, :] = -np.inf
    samples = samples_from_arrays(images, scan.labels, "syn")
    result = train(samples, tmp_path / "m.safetensors", UNetConfig(**tiny_unet), _small_settings())
    losses = [h["loss"] for h in result.description["training"]["history"]]
    assert losses and all(np.isfinite(losses))


@pytest.mark.parametrize(
    ("fill", "what"),
    [(np.nan, "no finite pixel (all NaN or infinite)"), (7.0, "one value everywhere (7)")],
)
def test_an_image_with_nothing_to_learn_from_is_refused(tmp_path, tiny_unet, fill, what):
    """An all-NaN image with a real mask trained and saved a model without a word."""
    scan = make_tilescan(n_tiles=2, shape=(64, 64), seed=4)
    images = scan.brightfield.astype(np.float32)
    images[1] = fill
    samples = samples_from_arrays(images, scan.labels, "syn")
    with pytest.raises(ValueError, match=re.escape(f"image syn[1] has {what}: there is nothing")):
        train(samples, tmp_path / "m.safetensors", UNetConfig(**tiny_unet), _small_settings())
    assert not (tmp_path / "m.safetensors").exists()


def test_mismatched_files_are_named_in_the_messages(tmp_path, tiny_unet):
    scan = make_tilescan(n_tiles=2, shape=(64, 64), seed=4)
    for i in range(2):
        (tmp_path / f"set{i}").mkdir()
        tifffile.imwrite(tmp_path / f"set{i}" / "raw.tif", scan.brightfield[i])
        tifffile.imwrite(tmp_path / f"set{i}" / "mask.tif", scan.labels[i])
    tifffile.imwrite(tmp_path / "set1" / "mask.tif", scan.labels[1][:32])
    with pytest.raises(ValueError, match=r"mask \S*set1/mask.tif has shape \(32, 64\)"):
        samples_from_folders(str(tmp_path / "set*" / "raw.tif"), str(tmp_path / "set*/mask.tif"))
    gray = samples_from_arrays(scan.brightfield[0], scan.labels[0], "gray.tif")
    rgb = np.repeat(scan.brightfield[1][..., None], 3, axis=-1)
    colour = samples_from_arrays(rgb, scan.labels[1], "rgb.png", channel_axis=-1)
    with pytest.raises(ValueError, match="channels: gray.tif has 1, rgb.png has 3"):
        train(gray + colour, tmp_path / "m.safetensors", UNetConfig(**tiny_unet), _small_settings())


def test_a_model_learns_the_pixel_size_its_images_record(tmp_path, tiny_unet, shared_data):
    """Only the starter model resampled images to its pixel size: a model trained on 10x
    images saw 20x cells at twice the size it learnt, with nothing said."""
    from napari_cytomask.models.catalog import model_pixel_size, model_zoom
    from napari_cytomask.models.checkpoint import CheckpointError
    from napari_cytomask.models.inference import UNetPredictor
    from napari_cytomask.pipeline import UNetStep

    # Files record it (an ImageJ resolution here); the Usiigaci TIFFs record none.
    images, masks = usiigaci(shared_data, (1, 2))
    assert {s.pixel_size_um for s in samples_from_folders(images, masks)} == {None}
    scan = make_tilescan(n_tiles=2, shape=(96, 96), seed=2)
    for i in range(2):
        tifffile.imwrite(tmp_path / f"im{i}.tif", scan.brightfield[i], imagej=True,
                         resolution=(2.0, 2.0), metadata={"unit": "um"})  # fmt: skip
        tifffile.imwrite(tmp_path / f"im{i}_mask.tif", scan.labels[i])
    found = samples_from_folders(str(tmp_path / "im?.tif"), str(tmp_path / "im?_mask.tif"))
    assert [s.pixel_size_um for s in found] == [pytest.approx((0.5, 0.5))] * 2
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.stack([scan.brightfield, scan.labels], axis=1), imagej=True,
                     resolution=(2.0, 2.0), metadata={"axes": "TCYX", "unit": "um"})  # fmt: skip
    assert samples_from_tilescans([path], 0, 1)[0].pixel_size_um == pytest.approx((0.5, 0.5))
    # Trained on images of one pixel size, a model resamples others to it.
    samples = samples_from_arrays(scan.brightfield, scan.labels, "s", pixel_size_um=(0.5, 0.5))
    result = train(samples, tmp_path / "a.safetensors", UNetConfig(**tiny_unet), _small_settings())
    assert read_description(result.checkpoint)["training"]["pixel_size_um"] == [0.5, 0.5]
    predictor = UNetPredictor.from_checkpoint(result.checkpoint, "cpu")
    kwargs = UNetStep(model=str(result.checkpoint)).segment_kwargs(predictor, (0.25, 0.25))
    assert kwargs["zoom"] == (0.5, 0.5)
    assert (
        UNetStep(model=str(result.checkpoint), resample=False).segment_kwargs(
            predictor, (0.25, 0.25)
        )["zoom"]
        is None
    )
    # Images of other pixel sizes, or without one, teach it none.
    for sizes in ([(0.5, 0.5), (1.0, 1.0)], [(0.5, 0.5), None]):
        mixed = [training.TrainingSample(s.name, s.channels, s.labels, size)
                 for s, size in zip(samples, sizes, strict=True)]  # fmt: skip
        assert training.common_pixel_size(mixed) is None
    assert training.common_pixel_size(
        [
            replace(samples[0], pixel_size_um=(0.5, 0.5)),
            replace(samples[1], pixel_size_um=(0.52, 0.5)),
        ]
    ) == pytest.approx((0.51, 0.5))
    assert model_pixel_size("mine", {"training": {"pixel_size_um": None}}) is None
    assert model_zoom("mine", (0.25, 0.25), {}) is None
    # Without its description, read from its file: a model's own file was taken for one
    # that records no pixel size, and its images were not resampled (0 cells for 38).
    assert model_zoom(result.checkpoint, 0.25) == (0.5, 0.5)  # one number: square pixels
    with pytest.raises(CheckpointError):
        model_zoom(tmp_path / "missing.safetensors", 0.25)
    with pytest.raises(ValueError, match=r"pixel_size_um must be a pixel size in µm.*got 0"):
        model_zoom("starter", 0)


def test_fine_tuning_sees_images_at_the_pixel_size_its_model_learnt(tmp_path, tiny_unet):
    """Fine-tuning a model on images of another magnification taught it theirs: the
    starter model fine-tuned on 20x images then resampled every image to 20x, and learnt
    cells twice the size it knew."""
    scan = make_tilescan(n_tiles=2, shape=(128, 128), cell_radius=24, seed=4)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "syn")
    learnt = [replace(s, pixel_size_um=(0.5, 0.5)) for s in samples]
    base = train(learnt, tmp_path / "base", UNetConfig(**tiny_unet), _small_settings())
    finer = [replace(s, pixel_size_um=(0.25, 0.25)) for s in samples]

    def fine_tune(name, **kwargs):
        notices = []
        result = drain(
            iter_train(finer, tmp_path / name, None, _small_settings(tune=False, **kwargs),
                       init_from=base.checkpoint),
            lambda p: notices.append(p.message) if p.phase == "notice" else None,
        )  # fmt: skip
        return read_description(result.checkpoint)["training"], notices

    record, notices = fine_tune("fine")
    assert record["pixel_size_um"] == [0.5, 0.5]
    assert record["data"]["train"]["pixels"] == 2 * 64 * 64  # 128² halved
    assert notices == [
        "the image(s) with 0.25 µm pixels were resampled to the 0.5 µm pixels the "
        "network learnt cells at, as segmenting resamples images for it."
    ]
    # Off, the model learns the images' own pixel size, as a new one does.
    record, notices = fine_tune("own", resample=False)
    assert record["pixel_size_um"] == [0.25, 0.25] and notices == []
    assert record["data"]["train"]["pixels"] == 2 * 128 * 128
    # An image that lost its pixel size among them is taken to be at the model's: the model
    # keeps the pixel size it was fine-tuned at, and segmenting resamples to it.
    finer = [replace(finer[0], pixel_size_um=None), finer[1]]
    record, notices = fine_tune("one lost")
    assert record["pixel_size_um"] == [0.5, 0.5]
    assert notices[0].startswith("1 of 2 image(s) with 0.25 µm pixels were resampled")
    # Cells that would be too small at the model's pixel size keep the images' pixels:
    # other, smaller cells (nuclei or bacteria at 100x) must not lose their outlines.
    finer = [replace(s, pixel_size_um=(0.1, 0.1)) for s in samples]
    record, notices = fine_tune("small")
    assert record["pixel_size_um"] == [0.1, 0.1]
    assert record["data"]["train"]["pixels"] == 2 * 128 * 128
    assert re.fullmatch(
        r"the cells would be \d+ px \(median\) at the 0.5 µm pixels the network learnt cells "
        r"at, too few to outline, so the images keep their own pixels and the model learns "
        r"theirs.",
        notices[0],
    )


def test_samples_are_resampled_to_a_pixel_size_as_segmenting_resamples_images():
    labels = np.zeros((8, 8), int)
    labels[:4, :4], labels[5:, 2:] = 7, 3
    sample = training.TrainingSample("s", np.arange(64, dtype=np.uint16).reshape(1, 8, 8), labels)
    assert training.at_pixel_size(sample, (0.87, 0.87)) is sample  # no pixel size of its own
    coarse = training.at_pixel_size(replace(sample, pixel_size_um=(0.25, 0.5)), (0.5, 0.5))
    assert coarse.pixel_size_um == (0.5, 0.5) and coarse.channels.shape == (1, 4, 8)
    assert coarse.channels.dtype == np.float32
    # Labels are taken from the nearest pixel: no new ids, none averaged.
    np.testing.assert_array_equal(coarse.labels, sample.labels[1::2])
    same = replace(sample, pixel_size_um=(0.52, 0.5))
    assert training.at_pixel_size(same, (0.5, 0.5)) is same  # within 10%: as it is
    resampled, note = training.samples_at_pixel_size([sample, coarse, same], (1.0, 1.0))
    assert resampled[0] is sample and resampled[1].channels.shape == (1, 2, 4)
    assert note.startswith(
        "2 of 3 image(s) with 0.5 µm, 0.52 × 0.5 µm pixels were resampled to the 1 µm pixels"
    )
    # One too far off to resample (hela at 0.0515 µm for a 0.87 µm model) was kept as it
    # was without a word, and the model learnt its pixel size.
    far = replace(sample, pixel_size_um=(0.0515, 0.0515))
    resampled, note = training.samples_at_pixel_size([far, coarse], (0.87, 0.87))
    assert resampled[0] is far
    assert note.endswith(
        " 1 of 2 image(s) with 0.0515 µm pixels are too far from the 0.87 µm pixels the "
        "network learnt cells at to be resampled and keep their own (is that pixel size right?)."
    )


def test_a_bracket_escaped_as_glob_escapes_it_pairs_files_without_a_warning(tmp_path):
    """The hint for a folder named with brackets ("write [ as [[]") gave a raw Python
    FutureWarning ("Possible nested set") on the way to the right pairs."""
    folder = tmp_path / "exp[1]"
    folder.mkdir()
    for name in ("i1.tif", "m1.tif", "i2.tif", "m2.tif"):
        tifffile.imwrite(folder / name, np.zeros((8, 8), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs = match_files(f"{tmp_path}/exp[[]1]/i?.tif", f"{tmp_path}/exp[[]1]/m?.tif")
    assert [(Path(i).name, Path(m).name) for i, m in pairs] == [
        ("i1.tif", "m1.tif"), ("i2.tif", "m2.tif")]  # fmt: skip


def test_a_foreground_map_is_scored_over_the_shape_of_its_pixels():
    """Tuning and the test scores found a foreground model's cells counting rows and
    columns, where segmenting counts over the pixels' shape: two round cells touching
    along Y over 0.87 x 0.435 µm pixels were scored as one."""
    from napari_cytomask.models.training import TrainingSample, _evaluate_probabilities

    yy, xx = np.mgrid[:96, :160]
    yy, xx = (yy - 48) * 0.87, (xx - 80) * 0.435
    cells = (np.abs(yy) - 6) ** 2 + xx**2 < 10**2
    truth = (cells & (yy < 0)) * 1 + (cells & (yy >= 0)) * 2
    probabilities = np.stack([~cells, cells]).astype(np.float32)  # background, foreground
    settings = {"interior_threshold": 0.5, "foreground_threshold": 0.5, "min_size": 10}
    scores = {
        size: _evaluate_probabilities(
            TrainingSample("two", cells[None].astype(np.float32), truth, size),
            probabilities, "foreground", settings,
        ).maf1_matches.n_pred
        for size in ((0.87, 0.435), None)
    }  # fmt: skip
    assert scores == {(0.87, 0.435): 2, None: 1}


def test_a_time_limit_ends_the_epoch_under_way(tmp_path, tiny_unet):
    """The limit was looked at after each epoch only: `--time-limit 4` ran 13 minutes on a
    CPU whose one epoch took that long. The epoch under way now ends at the step the limit
    passes, and is kept as any epoch."""
    samples, _ = _synthetic_samples()
    settings = replace(_small_settings(epochs=5, time_limit=0.001), steps_per_epoch=1000)
    result = train(samples, tmp_path / "limited.safetensors", UNetConfig(**tiny_unet), settings)
    record = result.description["training"]
    assert record["epochs_done"] == 1 and record["steps_done"] == 1  # of 1000
    assert result.checkpoint.exists()
    assert training.time_limit_note(result).endswith(") in epoch 1 of 5, at step 1 of 1000.")
    # Of the epoch that note names, the model saved does not say the cut again (it said
    # "epoch 1 up to step 1 of 1000, where the time limit cut it short" after it).
    assert training.saved_epoch_note(result.description).startswith(
        "The model saved is that of epoch 1 up to that step: "
    )
    # Said in minutes as given: a limit of 1.5 min was said "2 min".
    record = {"epochs_done": 1, "settings": {"epochs": 2, "time_limit": 90}, "history": []}
    assert training.time_limit_note(TrainingResult(Path("m"), {"training": record})) == (
        "It stopped at the time limit (1.5 min) after 1 of 2 epochs."
    )
    # Reached in its last epoch, the limit is said too: that epoch was cut short, and not
    # "after 1 of 1 epochs", which read as all of them trained.
    settings = replace(settings, epochs=1)
    result = train(samples, tmp_path / "last.safetensors", UNetConfig(**tiny_unet), settings)
    assert training.time_limit_note(result).endswith(") in epoch 1 of 1, at step 1 of 1000.")
