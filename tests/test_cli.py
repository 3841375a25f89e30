"""The ``cytomask`` command: train and segment on a tiny run, exit codes and messages."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import napari_cytomask
from napari_cytomask.cli import EXIT_INTERRUPTED, build_parser, main
from napari_cytomask.io.files import read_labels
from napari_cytomask.io.layers import pixel_size_um
from napari_cytomask.io.writers import FILE_FORMATS, SEGMENT_FORMATS
from napari_cytomask.metrics import evaluate
from napari_cytomask.models.checkpoint import DIR_ENV, config_of, read_description
from napari_cytomask.models.training import state_path
from napari_cytomask.pipeline import METHODS
from napari_cytomask.progress import one_line
from napari_cytomask.synthetic import make_tilescan

TINY = ["--encoder", "tu-resnet10t", "--encoder-depth", "3", "--encoder-weights", "none"]
QUICK = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "64"]


@pytest.fixture(autouse=True)
def model_folder_and_threads(tmp_path, monkeypatch):
    """A model folder of the test's own; the threads the command line sets are put back."""
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "models"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def folders(tmp_path):
    """Three image/mask pairs in usiigaci's layout, plus a 2-tile scan."""
    scan = make_tilescan(n_tiles=3, shape=(96, 96), cell_radius=10, seed=6)
    for i in range(3):
        d = tmp_path / "data" / f"set{i}"
        d.mkdir(parents=True)
        tifffile.imwrite(d / "raw.tif", scan.brightfield[i])
        tifffile.imwrite(d / "mask.tif", scan.labels[i])
    return tmp_path / "data", scan


def test_help_in_a_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "napari_cytomask.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0
    for option in ("--images", "--masks", "--tilescan", "--encoder", "--resume", "--split"):
        assert option in out.stdout


def test_evaluate_help_says_what_it_scores_and_how_it_pools(capsys):
    """It printed mSA without a word of it, and pooled in two ways unsaid."""
    assert main(["evaluate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "mSA (mean segmentation accuracy over IoU 0.50:0.05:0.95, per image, averaged" in text
    assert "COCO AP (from counts summed over the frames and pairs)" in text
    assert "not labelled yet) is left out of the figures, said on stderr" in text
    assert "rows of level left_out count what was left out" in text


def test_train_then_segment(folders, tmp_path, capsys):
    data, scan = folders
    model = tmp_path / "tiny.safetensors"
    code = main(
        [
            "train",
            "--images",
            str(data / "set*" / "raw.tif"),
            "--masks",
            str(data / "set*" / "mask.tif"),
            *TINY,
            *QUICK,
            "--threads",
            "1",
            "-o",
            str(model),
            "--seed",
            "2",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.strip().splitlines()[-1] == str(model)
    desc = read_description(model)
    assert desc["encoder"] == "tu-resnet10t" and desc["training"]["split_seed"] == 2
    assert len(desc["training"]["split"]["validation"]) == 1
    # Thresholds were chosen on the validation image and are used unless given.
    assert desc["postprocess"]["tuned_on"] == desc["training"]["split"]["validation"]
    assert "post-processing tuned on 1 image(s)" in out.out
    # A few steps from random weights: a model of little use, which the user is told.
    assert desc["postprocess"]["scores"]["tuned"]["f1_50"] < 0.5
    assert "cytomask: note: This model is not ready yet" in out.err

    # A 2-position scan with the input in channel 1 and a mask in channel 2.
    stack = np.stack([scan.fluorescence[:2], scan.brightfield[:2], scan.labels[:2]], axis=1)
    scan_path = tmp_path / "scan.tif"
    tifffile.imwrite(scan_path, stack, imagej=True, metadata={"axes": "TCYX"})
    out_dir = tmp_path / "out"
    segment = ["segment", "--scheduler", "synchronous", "--threads", "1", "-o", str(out_dir)]
    argv = [*segment, str(scan_path), "-m", str(model), "--channel", "1", "--overlap", "16"]
    assert main(argv) == 0, capsys.readouterr().err
    labels = tifffile.imread(out_dir / "scan_unet_cells.tif")
    assert labels.shape == (2, 96, 96)
    record = json.loads((out_dir / "scan_unet_cells.json").read_text())
    assert record["source"] == str(scan_path.resolve()) and record["cells"] == labels.max()
    assert record["preset"]["unet"]["model"] == str(model.resolve())
    assert record["preset"]["channels"] == [1] and record["device"] == "cpu"
    assert record["preset"]["unet"]["tta"] is True  # on unless asked otherwise
    # The preset's automatic tiling (None, 0) is recorded as what it came to.
    assert record["preset"]["unet"]["tile_size"] is None
    tile = config_of(desc).tile_size  # fitted to each image, up to a quarter larger
    assert record["tiling"] == {"tile_size": tile, "largest_tile": tile * 5 // 4, "batch_size": 1}
    for key in ("interior_threshold", "foreground_threshold", "min_size"):
        assert record["preset"]["unet"][key] == desc["postprocess"][key]
    code = main([*segment, str(data / "set0" / "raw.tif"), "-m", str(model), "--no-tta"])
    assert code == 0 and (out_dir / "raw_unet_cells.tif").is_file()
    record = json.loads((out_dir / "raw_unet_cells.json").read_text())
    assert record["preset"]["unet"]["tta"] is False

    # A re-run skips finished inputs; other settings for them need --overwrite.
    before = (out_dir / "scan_unet_cells.tif").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 of 1 input(s) already segmented" in capsys.readouterr().out
    assert (out_dir / "scan_unet_cells.tif").stat().st_mtime_ns == before
    assert main([*argv, "--overlap", "8"]) == 1
    err = capsys.readouterr().err
    assert "made with other settings (unet overlap); to redo it, move scan_unet_cells.tif " in err
    assert len(err.splitlines()) == 1
    assert main([*argv, "--overlap", "8", "--overwrite"]) == 0
    # Corrected by hand since: --overwrite replaced the user's work, unsaid.
    corrected = tifffile.imread(out_dir / "scan_unet_cells.tif")
    corrected[corrected == corrected.max()] = 0
    tifffile.imwrite(out_dir / "scan_unet_cells.tif", corrected)
    capsys.readouterr()
    assert main([*argv, "--overlap", "8", "--overwrite"]) == 1
    assert capsys.readouterr().err == (
        f"cytomask segment: error: {out_dir / 'scan_unet_cells.tif'} was changed after "
        "cytomask segment wrote it (corrected by hand?), so --overwrite leaves it as it is; "
        "move it aside to segment scan.tif again, or choose another --output-dir.\n"
    )
    np.testing.assert_array_equal(tifffile.imread(out_dir / "scan_unet_cells.tif"), corrected)
    # Naming the channel a run took for the input (as a preset saved from the dock does)
    # asks for the same cells: it was refused as other settings.
    raw = [*segment, str(data / "set0" / "raw.tif"), "-m", str(model), "--no-tta"]
    capsys.readouterr()
    assert main([*raw, "--channel", "0"]) == 0, capsys.readouterr().err
    assert "1 of 1 input(s) already segmented" in capsys.readouterr().out
    # And the other way round: a run that named it, then one that leaves it to the reader.
    named = tmp_path / "named"
    assert main([*raw, "--channel", "0", "-o", str(named)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main([*raw, "-o", str(named)]) == 0, capsys.readouterr().err
    assert "1 of 1 input(s) already segmented" in capsys.readouterr().out
    assert (
        json.loads((out_dir / "scan_unet_cells.json").read_text())["preset"]["unet"]["overlap"] == 8
    )
    # A pixel size given that is the one the file records asks for the same cells too; one
    # that is not is said to be what changed.
    calibrated = tmp_path / "calibrated.ome.tif"
    tifffile.imwrite(calibrated, (scan.brightfield[0] * 1000).astype(np.uint16),
                     metadata={"PhysicalSizeX": 0.87, "PhysicalSizeY": 0.87})  # fmt: skip
    again = [*segment, str(calibrated), "-m", str(model), "--no-tta"]
    assert main(again) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main([*again, "--pixel-size", "0.87"]) == 0, capsys.readouterr().err
    assert "1 of 1 input(s) already segmented" in capsys.readouterr().out
    assert main([*again, "--pixel-size", "0.5"]) == 1
    assert "made with other settings (pixel size); to redo it, move" in capsys.readouterr().err
    # A size given is the image's: the labels are written with it, not with the file's.
    assert main([*again, "--pixel-size", "0.5", "--overwrite"]) == 0, capsys.readouterr().err
    written = read_labels(out_dir / "calibrated_unet_cells.tif")[1]
    assert pixel_size_um(written["scale"], written["units"]) == (0.5, 0.5)

    # A model name is looked up in the model folder; results go beside the input.
    (tmp_path / "models").mkdir()
    model.rename(tmp_path / "models" / "tiny.safetensors")
    code = main(["segment", str(data / "set1" / "raw.tif"), "-m", "tiny", "-q", "--threads", "1",
                 "--scheduler", "synchronous"])  # fmt: skip
    assert code == 0 and (data / "set1" / "raw_unet_cells.tif").is_file()


@pytest.mark.parametrize("channel", [[], ["--channel", "0"]])
def test_what_the_reader_says_of_an_input_is_said_once(
    folders, unet_checkpoint, tmp_path, capsys, channel
):
    """A pixel size the reader left out was said as the run looked at its inputs, then
    again by the job that segmented it (from a worker process, as Python's raw warning)."""
    data, _ = folders
    path = tmp_path / "nm.ome.tif"
    phase = tifffile.imread(data / "set1" / "raw.tif")
    tifffile.imwrite(
        path, phase, metadata={"axes": "YX", "PhysicalSizeX": 650, "PhysicalSizeY": 650}
    )
    argv = ["segment", str(path), "-o", str(tmp_path / "out"), "-m",
            str(unet_checkpoint(tile_size=96)), "--no-tta", "--scheduler", "synchronous",
            "--threads", "1", *channel]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("its OME metadata give pixels of 650 x 650 µm") == 1, err


def test_a_pattern_that_matches_more_images_later_keeps_their_results_in_place(
    folders, unet_checkpoint, tmp_path, capsys
):
    """Results went under the common folder of the files a pattern matched: of one set,
    straight into the output folder; when a second set was added, the same command
    segmented the first again into a subfolder, beside its old results."""
    data, _ = folders
    grown = tmp_path / "grown"
    model = unet_checkpoint(tile_size=96)
    out = tmp_path / "out"
    argv = ["segment", str(grown / "set*" / "raw.tif"), "-o", str(out), "-m", str(model),
            "--no-tta", "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
    for added in ("set0", "set1"):
        (grown / added).mkdir(parents=True)
        shutil.copy(data / added / "raw.tif", grown / added / "raw.tif")
        assert main(argv) == 0, capsys.readouterr().err
    assert "1 of 2 input(s) already segmented" in capsys.readouterr().out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_cells.*"))
    assert written == [f"{s}/raw_unet_cells.{e}" for s in ("set0", "set1") for e in ("json", "tif")]
    # Files named one by one still go under their common folder.
    named = tmp_path / "named"
    files = [str(grown / s / "raw.tif") for s in ("set0", "set1")]
    assert main([*argv[:1], *files, *argv[2:3], str(named), *argv[4:]]) == 0
    assert (named / "set1" / "raw_unet_cells.tif").is_file()


def test_tuning_says_its_gain_from_the_thresholds_the_model_had():
    """Tuning the starter model said mean-average F1 0.413 -> 0.644, from the default
    thresholds; with its own it scored 0.630, so tuning gained 0.01."""
    from napari_cytomask.cli import _tuned_text

    def scores(f1):
        return {"mean_average_f1": f1, "f1_50": f1}

    tuned = {
        "interior_threshold": 0.5,
        "foreground_threshold": 0.9,
        "min_size": 500,
        "tuned_on": ["a"],
        "scores": {"default": scores(0.413), "tuned": scores(0.644)},
    }
    assert "from the default thresholds to these, mean-average F1 0.413 -> 0.644" in (
        _tuned_text(tuned)
    )
    tuned["scores"]["own"] = scores(0.63)
    assert "from the thresholds it started with to these, mean-average F1 0.630 -> 0.644" in (
        _tuned_text(tuned)
    )


def test_tune_records_thresholds_in_the_checkpoint(folders, unet_checkpoint, tmp_path, capsys):
    data, _ = folders
    model = unet_checkpoint(tile_size=128, seed=5)
    images = [
        "--images",
        str(data / "set*" / "raw.tif"),
        "--masks",
        str(data / "set*" / "mask.tif"),
    ]
    code = main(["tune", str(model), *images, "--threads", "1", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.strip().splitlines()[-1] == str(model)
    tuned = read_description(model)["postprocess"]
    assert len(tuned["tuned_on"]) == 3  # no recorded validation split: all given images
    assert tuned["tta"] is True  # predicted as segmenting does by default
    assert f"minimum cell size {tuned['min_size']} px" in out.out

    # A later segment run records the tuned values; a re-tuned model means other settings.
    segment = ["segment", str(data / "set0" / "raw.tif"), "-m", str(model), "--scheduler",
               "synchronous", "--threads", "1", "-o", str(tmp_path / "out"), "-q"]  # fmt: skip
    assert main(segment) == 0
    record = json.loads((tmp_path / "out" / "raw_unet_cells.json").read_text())
    assert record["preset"]["unet"]["interior_threshold"] == tuned["interior_threshold"]

    empty = tmp_path / "empty"
    empty.mkdir()
    tifffile.imwrite(empty / "raw.tif", tifffile.imread(data / "set0" / "raw.tif"))
    tifffile.imwrite(empty / "mask.tif", np.zeros((96, 96), np.uint16))
    argv = ["tune", str(model), "--images", str(empty / "raw.tif"), "--masks"]
    assert main([*argv, str(empty / "mask.tif"), "--device", "cpu"]) == 1
    assert "hold no cell" in capsys.readouterr().err


def test_tuning_a_fine_tuned_model_does_not_say_to_start_from_the_starter(
    folders, unet_checkpoint, tmp_path, capsys
):
    """A fine-tuned model that found few cells was told "starting from the starter model
    gets there sooner", by cytomask train and tune alike."""
    from napari_cytomask.models.checkpoint import load_checkpoint, save_checkpoint

    data, _ = folders
    model = tmp_path / "fine.safetensors"
    network, description = load_checkpoint(unet_checkpoint(tile_size=128, seed=5))
    description["training"] = {"initialised_from": "starter"}
    save_checkpoint(model, network, description)
    images = [
        "--images",
        str(data / "set*" / "raw.tif"),
        "--masks",
        str(data / "set*" / "mask.tif"),
    ]
    assert main(["tune", str(model), *images, "--threads", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "cytomask: note: This model is not ready yet" in err
    assert "starting from the starter model" not in err


def test_tune_and_resume_find_the_split_under_other_paths(folders, tmp_path, monkeypatch, capsys):
    """A relative pattern names the images otherwise than training recorded them (as
    does a copy of the data elsewhere): tuning still uses only the validation image, and
    a resumed run keeps the split instead of drawing a new one, in the file it resumes."""
    data, _ = folders
    model = tmp_path / "tiny.safetensors"
    absolute = [
        "--images",
        str(data / "set*" / "raw.tif"),
        "--masks",
        str(data / "set*" / "mask.tif"),
    ]
    train = ["train", *TINY, *QUICK, "--threads", "1"]
    assert main([*train, *absolute, "--seed", "1", "-o", str(model)]) == 0  # not seed 0's split

    def sets(split):
        return {part: [Path(n).parent.name for n in names] for part, names in split.items()}

    recorded = sets(read_description(model)["training"]["split"])
    run = read_description(model)["training"]["run"]
    monkeypatch.chdir(data)
    relative = ["--images", "set*/raw.tif", "--masks", "set*/mask.tif"]
    capsys.readouterr()
    assert main(["tune", str(model), *relative, "--threads", "1", "--device", "cpu"]) == 0
    assert "only the checkpoint's 1 validation image(s) among the 3 given were used" in (
        capsys.readouterr().out
    )
    tuned_on = read_description(model)["postprocess"]["tuned_on"]
    assert [Path(n).parent.name for n in tuned_on] == recorded["validation"]

    assert main([*train, *relative, "--resume", str(model), "--epochs", "2"]) == 0
    description = read_description(model)
    assert description["training"]["epochs_done"] == 2
    assert sets(description["training"]["split"]) == recorded
    # Recorded whole: "set*/raw.tif" means nothing where the model is used later.
    assert description["training"]["sources"] == absolute[1::2]
    # Still the same run: the state stays tied to the checkpoint for the next resume.
    assert torch.load(state_path(model), weights_only=True)["run"] == run
    assert description["training"]["run"] == run

    # Resumed into another file, the best network so far is there even without a gain.
    other = tmp_path / "other.safetensors"
    assert main([*train, *relative, "--resume", str(model), "--epochs", "3", "-o", str(other)]) == 0
    assert read_description(other)["training"]["run"] == run
    assert torch.load(state_path(other), weights_only=True)["epoch"] == 3

    # Other images than the run's: refused, not a new split that trains on its test image.
    (data / "set3").mkdir()
    for name in ("raw.tif", "mask.tif"):
        (data / "set3" / name).write_bytes((data / "set0" / name).read_bytes())
    capsys.readouterr()
    assert main([*train, *relative, "--resume", str(model), "--epochs", "3"]) == 1
    assert "trained and validated on other images than these" in capsys.readouterr().err


def test_fine_tuning_says_what_each_threshold_pass_is_for(
    folders, unet_checkpoint, tmp_path, capsys
):
    """Two threshold passes, two scores for "before", and a 77 MB file left beside the
    model: each is said for what it is."""
    data, _ = folders
    model = tmp_path / "tuned.safetensors"
    argv = ["train", "--images", str(data / "set*" / "raw.tif"), "--masks",
            str(data / "set*" / "mask.tif"), "--from", str(unet_checkpoint(tile_size=128)),
            *QUICK, "--threads", "1", "-o", str(model)]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("epoch "))
    assert (
        "choosing the starting model's post-processing thresholds on the validation images "
        "(each epoch is scored with them)" in lines[:first]
    )
    assert "choosing the post-processing thresholds on the validation images" in lines[first:]
    # Tuning segments with flips, as segmenting does, and the epochs without: said, as
    # their scores differed unexplained.
    there = (
        "there with flips (as segmenting does by default; the epochs' scores are "
        "without), from the default thresholds to these, mean-average F1 "
    )
    assert any(there in line for line in lines)  # fmt: skip
    size = state_path(model).stat().st_size / 1e6
    assert (f"tuned.training-state.pt ({size:.0f} MB) beside it lets --resume train it "
            "further; delete it when you will not") in lines  # fmt: skip


def _signalled_training(data, model, signum, after: str):
    """``cytomask train`` into ``model`` (more epochs than a loaded machine could finish
    first), sent ``signum`` once it prints a line starting with ``after``: its exit
    status and error output."""
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    small = ["--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "64", "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_cytomask.cli", "train", *pairs, *TINY, *small,
         "--epochs", "100000", "-o", str(model)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    for line in proc.stdout:
        if line.startswith(after):
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_a_terminated_run_stops_as_an_interrupted_one_does(folders, tmp_path):
    """SIGTERM, as a job scheduler's time limit sends, ended a run without a word (a batch
    left its folders locked); it stops as Ctrl+C does, and says how to go on."""
    model = tmp_path / "cut.safetensors"
    code, err = _signalled_training(folders[0], model, signal.SIGTERM, "epoch 1/")
    assert code == 143, err
    assert f"interrupted. The best network so far is in {model}" in err
    assert state_path(model).is_file()


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_interrupted_segment_says_how_to_go_on(tmp_path, capsys, monkeypatch, overwrite):
    """Stopped with --overwrite, segment said to run the same command again to go on, which
    segmented the inputs it had finished again: hours, on a folder of hundreds of scans."""
    from napari_cytomask import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_segment", interrupted)
    argv = ["segment", str(tmp_path / "scan.tif"), *(["--overwrite"] if overwrite else [])]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith("cytomask segment: interrupted. Finished results are kept")
    said = "with --overwrite it segments the inputs it finished again too; without it, it skips"
    assert (said in err) == overwrite


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_interrupted_segment_lists_every_result_it_finished(
    unet_checkpoint, tmp_path, capsys, monkeypatch, overwrite
):
    """Stopped by Ctrl+C, segment listed fewer results than were on disk: those finished
    just before the stop, or by a cluster's workers as they stopped, were never gathered.
    Those an earlier run finished, which --overwrite was to redo, are not counted."""
    from napari_cytomask import batch

    scan = make_tilescan(n_tiles=3, shape=(64, 64), seed=3)
    for k, image in enumerate(scan.brightfield):
        tifffile.imwrite(tmp_path / f"phase{k}.tif", image)
    out = tmp_path / "out"
    argv = ["segment", str(tmp_path), "-m", str(unet_checkpoint(tile_size=128)), "-o", str(out),
            "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
    if overwrite:
        assert main(argv) == 0
        argv.append("--overwrite")
    real = batch.process

    def stopped_after_two(job, *args, **kwargs):
        summary = real(job, *args, **kwargs)
        if job.source.name == "phase1.tif":
            raise KeyboardInterrupt  # its results written, not reported yet
        return summary

    monkeypatch.setattr(batch, "process", stopped_after_two)
    capsys.readouterr()
    assert main(argv) == EXIT_INTERRUPTED
    said = capsys.readouterr()
    listed = [line for line in said.out.splitlines() if line.endswith("_cells.tif")]
    assert listed == [str(out / f"phase{k}_unet_cells.tif") for k in range(2)], said.out
    assert "interrupted. It had finished 2 of the 3 inputs to do (their results are listed " in (
        said.err
    )


def test_interrupted_training_goes_on_with_resume(folders, tmp_path, capsys):
    data, _ = folders
    model = tmp_path / "cut.safetensors"
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    small = ["--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "64", "--threads", "1"]
    train = ["train", *pairs, *TINY, *small, "-o", str(model)]
    code, err = _signalled_training(data, model, signal.SIGINT, "epoch 2/")
    assert code == 130, err
    assert (
        "continue from the last finished epoch with the same command and --resume "
        f"{model} added." in err
    )
    # A fine-tuning run takes --resume in place of --from, which argparse refuses beside it.
    from argparse import Namespace

    from napari_cytomask.cli import _kept

    assert _kept(model, True, Namespace(init_from="starter", resume=None)).endswith(
        f"--resume {model} in place of --from"
    )
    # Fine-tuning keeps the starting model until an epoch scores above it, with the
    # run's state from the first epoch on (a run interrupted then lost its epochs).
    assert _kept(model, False, Namespace(init_from="starter", resume=None)) == (
        f"No epoch had scored above the starting model, which is kept in {model} with the "
        "run's state; continue from the last finished epoch with the same command and "
        f"--resume {model} in place of --from"
    )
    assert _kept(None, False, Namespace(init_from="starter", resume=None)) == (
        "No epoch had finished; nothing was saved"
    )
    # A resumed run already names its file: "--resume X added" read oddly.
    resumed = Namespace(init_from=None, resume=str(model))
    assert _kept(model, True, resumed).endswith("epoch with the same command")
    other = tmp_path / "further.safetensors"
    assert _kept(other, True, resumed).endswith(f"--resume {other} in place of --resume {model}")
    done = torch.load(state_path(model), weights_only=True)["epoch"]
    assert 2 <= done < 100000
    # Its best network so far segments, with a note that the run did not finish.
    segment = ["segment", str(data / "set0" / "raw.tif"), "-m", str(model), "--scheduler",
               "synchronous", "-q"]  # fmt: skip
    assert main([*segment, "-o", str(tmp_path / "cut")]) == 0
    assert (
        "cytomask: note: cut.safetensors is the best network so far of a training run that "
        "was stopped, before its thresholds were chosen; finish it with cytomask train "
        f"--resume {model}" in capsys.readouterr().err
    )

    # --epochs counts the run's epochs in all.
    assert main([*train, "--epochs", str(done + 1), "--resume", str(model)]) == 0
    assert read_description(model)["training"]["epochs_done"] == done + 1
    capsys.readouterr()
    assert main([*segment, "-o", str(tmp_path / "finished")]) == 0
    assert "note" not in capsys.readouterr().err


def test_a_resumed_run_interrupted_before_an_epoch_ends_still_has_its_model(
    folders, tmp_path, capsys, monkeypatch
):
    """Interrupted before its first epoch ended, a resumed run said nothing was saved; the
    model it resumed is still the best network so far."""
    from napari_cytomask.models import training

    data, _ = folders
    model = tmp_path / "run.safetensors"
    train = ["train", "--images", str(data / "set*" / "raw.tif"), "--masks",
             str(data / "set*" / "mask.tif"), *TINY, *QUICK, "--threads", "1", "--no-tune",
             "-q", "-o", str(model)]  # fmt: skip
    assert main(train) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(training, "iter_train", interrupted)
    assert main([*train, "--epochs", "2", "--resume", str(model)]) == 130
    assert capsys.readouterr().err.endswith(
        f"\ncytomask train: interrupted. The best network so far is in {model}; continue from "
        "the last finished epoch with the same command.\n"
    )


def test_training_interrupted_as_it_chose_its_thresholds_says_so_and_how_to_choose_them(
    folders, tmp_path, capsys, monkeypatch
):
    """Ctrl+C as a run chose its thresholds said to continue from the last finished epoch,
    as if training had been interrupted: it had finished, and only its thresholds were
    left to choose."""
    from napari_cytomask.models import training

    data, _ = folders
    model = tmp_path / "run.safetensors"
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]

    def interrupted(*args, **kwargs):
        yield 0, 10  # said before the first validation image is predicted
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(training, "iter_tune_postprocess", interrupted)
        argv = ["train", *pairs, *TINY, *QUICK, "--threads", "1", "-q", "-o", str(model)]
        assert main(argv) == 130
    assert capsys.readouterr().err.endswith(
        "cytomask train: interrupted as the post-processing thresholds were being chosen; "
        f"training itself had finished. The model is saved in {model} with the default "
        "thresholds (interior 0.5, foreground 0.5, minimum cell size 0 px), not chosen for it. "
        f"Choose them later with cytomask tune {model}, given this run's --images and --masks "
        "(or --tilescan).\n"
    )
    # Chosen so, they finish the run: segmenting with it said to finish it with --resume.
    assert main(["tune", str(model), *pairs, "--threads", "1", "-q"]) == 0
    description = read_description(model)
    assert "postprocess" in description and description["training"]["finished"] is True


def test_fine_tuning_times_its_epochs_alone_and_names_the_starting_model_it_saved(
    folders, tmp_path, capsys, monkeypatch, unet_checkpoint
):
    """Timed from before the starting model's thresholds and scores (minutes on large
    images), the first epochs' time left counted them as epoch time. Interrupted as it chose
    the thresholds, a run that had saved its starting model said nothing was saved."""
    import time

    from napari_cytomask.models import training
    from napari_cytomask.models.training import TrainingProgress

    clock, kept = [0.0], tmp_path / "fine.safetensors"
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])

    def run(*args, **kwargs):
        def epoch(n, seconds):
            clock[0] += seconds
            scores = {"mean_average_f1": 0.5, "f1_50": 0.8}
            return TrainingProgress(n, 4, 0 if n == 0 else 2, 2, 2 * n, float("nan"), 1e-3,
                                    scores, phase="epoch",
                                    checkpoint=kept if n else None)  # fmt: skip

        yield TrainingProgress(0, 4, 0, 2, 0, float("nan"), 1e-3, phase="split",
                               split={"train": ["a"], "validation": ["b"], "test": []})  # fmt: skip
        yield epoch(0, 300)  # choosing the starting model's thresholds and scoring it
        yield epoch(1, 10)  # below it: the starting model is kept
        raise KeyboardInterrupt  # as the thresholds are chosen

    monkeypatch.setattr(training, "iter_train", run)
    argv = ["train", "--images", str(folders[0] / "set*" / "raw.tif"), "--masks",
            str(folders[0] / "set*" / "mask.tif"), "--from", str(unet_checkpoint()), *QUICK,
            "--threads", "1", "-o", str(kept)]  # fmt: skip
    assert main(argv) == 130
    out, err = capsys.readouterr()
    (line,) = [s for s in out.splitlines() if s.startswith("epoch 1/4")]
    assert line.endswith("[5:10 elapsed, about 0:30 left]")  # 3 epochs of 10 s
    assert err.endswith(
        f"interrupted. No epoch had scored above the starting model, which is kept in {kept} "
        "with the run's state; continue from the last finished epoch with the same command "
        f"and --resume {kept} in place of --from.\n"
    )


def test_a_run_stopped_by_its_time_limit_says_so(folders, tmp_path, capsys):
    """Stopped by --time-limit after 20 of 30 epochs, a run ended as if it had trained
    them all: nothing said the limit had stopped it."""
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    small = ["--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "64", "--threads", "1"]
    model = tmp_path / "limited.safetensors"
    argv = ["train", *pairs, *TINY, *small, "--epochs", "3", "--no-tune", "--time-limit",
            "0.001", "-o", str(model)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("it stopped at the time limit")]
    # In minutes, as given (1.5 was said "2 min"); its first epoch may be cut short too, at
    # its first step of 2.
    assert said[0] in (
        "it stopped at the time limit (0.001 min) after 1 of 3 epochs.",
        "it stopped at the time limit (0.001 min) in epoch 1 of 3, at step 1 of 2.",
    )


def test_an_epoch_cut_short_by_the_time_limit_is_finished_with_resume(
    folders, tmp_path, capsys, monkeypatch
):
    """Resumed, a run cut short by --time-limit in its last epoch said it had trained its
    epochs, and the rest of that epoch was never trained. Then the finished epoch's loss
    was printed of the resumed steps alone (the model records that of all), nothing said
    the model saved was the part of the epoch before the cut, and a run started with
    --no-tune had its thresholds chosen when resumed."""
    from napari_cytomask.models import training

    data, _ = folders
    model = tmp_path / "limited.safetensors"
    argv = ["train", "--images", str(data / "set*" / "raw.tif"), "--masks",
            str(data / "set*" / "mask.tif"), *TINY, "--epochs", "1", "--steps-per-epoch", "10",
            "--batch-size", "1", "--crop-size", "64", "--threads", "1",
            "-o", str(model)]  # fmt: skip
    with monkeypatch.context() as patched:
        # The part of the epoch before the cut scores above the whole of it.
        scores = iter([0.5, 0.1])
        patched.setattr(
            training, "scores_of", lambda _: {"mean_average_f1": next(scores), "f1_50": 0}
        )
        assert main([*argv, "--no-tune", "--time-limit", "0.0001"]) == 0  # cut at its first step
        capsys.readouterr()
        # Neither option again: --no-tune is the run's own, the time limit this session's.
        assert main([*argv, "--resume", str(model)]) == 0
    out = capsys.readouterr().out
    # Timed from its first step here, step 2.
    assert "  step 10/10 loss " in out
    description = read_description(model)
    last = description["training"]["history"][-1]
    assert (last["epoch"], last["steps"], last["resumed_at_step"]) == (1, 10, 2)
    assert f"epoch 1/1: loss {last['loss']:.4f}, val mean-average F1 0.100" in out
    assert (
        "the model saved is that of epoch 1 up to step 1 of 10, where the time limit cut it "
        "short: the best on the validation images (mean-average F1 0.500)." in out
    )
    assert "post-processing tuned" not in out and "postprocess" not in description
    # --tune chooses them after all.
    assert main([*argv, "--epochs", "2", "--tune", "-q", "--resume", str(model)]) == 0
    assert "postprocess" in read_description(model)


def test_training_says_the_time_left_in_the_epoch_under_way(folders, tmp_path, capsys, monkeypatch):
    """Only loss lines were printed through the first epoch: 13 minutes of a CPU's, with no
    word of how long it would take."""
    from napari_cytomask import cli

    data, _ = folders
    clock = iter(range(0, 10**6, 3))  # each look at the clock: 3 s later
    monkeypatch.setattr(cli.time, "monotonic", lambda: float(next(clock)))
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    small = ["--steps-per-epoch", "20", "--batch-size", "2", "--crop-size", "64", "--threads", "1"]
    argv = ["train", *pairs, *TINY, *small, "--epochs", "1", "--no-tune", "-o",
            str(tmp_path / "timed.safetensors")]  # fmt: skip
    assert main(argv) == 0
    steps = [line for line in capsys.readouterr().out.splitlines() if "  step " in line]
    # 3 s a step, timed from the end of the first: 10 of 20 steps left after step 10.
    assert steps[0].endswith("[about 0:30 left in this epoch]"), steps
    assert steps[1].endswith("[about 0:00 left in this epoch]"), steps


def test_resume_alone_finishes_the_run_with_its_own_settings(folders, tmp_path, capsys):
    data, _ = folders
    model = tmp_path / "run.safetensors"
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    run = ["--steps-per-epoch", "3", "--batch-size", "2", "--crop-size", "64", "--seed", "7"]
    common = ["train", *pairs, *TINY, "--threads", "1", "--no-tune", "-q"]
    assert main([*common, *run, "--epochs", "1", "-o", str(model)]) == 0
    # Asked for no more epochs than it has, the run says so before training.
    assert main([*common, "--resume", str(model)]) == 1
    err = capsys.readouterr().err
    assert "has trained 1 epochs, and 1 were asked for in all; ask for more than 1" in err
    # The options not given are the run's own (3 steps of 2 crops of 64², seed 7), not the
    # command line's defaults (100 steps of 8 crops of 256²).
    assert main([*common, "--epochs", "2", "--resume", str(model)]) == 0
    err = capsys.readouterr().err
    assert "no image was left for validation" not in err  # --no-tune
    # The network options given (TINY) are the run's own network's, and said to be unused.
    assert (
        "cytomask: note: --encoder, --encoder-depth, --encoder-weights ignored: the network "
        f"is that of {model}." in err
    )
    training = read_description(model)["training"]
    assert training["epochs_done"] == 2 and training["steps_done"] == 6
    kept = {k: training["settings"][k] for k in ("batch_size", "crop_size", "seed", "epochs")}
    assert kept == {"batch_size": 2, "crop_size": 64, "seed": 7, "epochs": 2}
    # A learning rate given replaces the run's; a seed cannot (the random state goes on).
    more = ["--epochs", "3", "--learning-rate", "0.0123", "--seed", "1", "--resume", str(model)]
    assert main([*common, *more]) == 0
    assert "cytomask: note: the seed stays the run's own (7)" in capsys.readouterr().err
    state = torch.load(state_path(model), weights_only=True)
    assert state["optimiser"]["param_groups"][0]["lr"] == pytest.approx(0.0123)
    recorded = read_description(model)["training"]["settings"]
    assert (recorded["learning_rate"], recorded["seed"]) == (0.0123, 7)


def test_user_errors_exit_1_with_one_line(tmp_path, folders, capsys):
    data, _ = folders
    pt = tmp_path / "sam2.pt"
    torch.save({"model": {}}, pt)
    cases = [
        (["segment", str(data / "set0" / "raw.tif"), "-m", str(pt)], "PyTorch pickle"),
        (["segment", str(data / "set0" / "raw.tif"), "-m", "nothing"], "no checkpoint 'nothing'"),
        (["train", *TINY], "say where the labelled images are"),
        (["train", "--images", str(tmp_path / "none*.tif"), "--masks", "x*"], "matches no file"),
        (["train", "--tilescan", str(pt)], "needs --input-channel"),
        (["segment", str(tmp_path / "gone.tif"), "-m", str(pt)], "PyTorch pickle"),
        (["segment", str(tmp_path), "--method", "sam2"], "holds no image file"),
        (["segment", str(data / "set0" / "raw.tif"), "--preset", str(pt)], "not a JSON preset"),
        (
            ["evaluate", "--pred", str(tmp_path / "x*.tif"), "--gt", "y*", "-o", "m.csv"],
            "prediction pattern",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["train", "--epochs", "0"]) == 2
    assert main(["segment"]) == 2
    assert main(["frobnicate"]) == 2
    assert "usage: cytomask" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "segment" in capsys.readouterr().out


def test_an_unquoted_wildcard_is_explained(folders, capsys):
    data, _ = folders
    expanded = [str(p) for p in sorted(data.glob("set*/raw.tif"))]  # what the shell passes
    argv = ["train", "--images", *expanded, "--masks", str(data / "set*" / "mask.tif")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {expanded[1]}" in err
    assert "the shell expanded a wildcard into these file names: put the pattern in quotes" in err
    assert main(["train", "--frobnicate"]) == 2
    assert "quotes" not in capsys.readouterr().err


def test_evaluate_reports_msa_per_image_averaged(tmp_path, capsys):
    scan = make_tilescan(n_tiles=2, shape=(96, 96), cell_radius=10, seed=6)
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    # A good prediction of one image, a poor one of the other (cells merged by dilation).
    guesses = [scan.labels[0], np.maximum.reduce([np.roll(scan.labels[1], s, 1) for s in (0, 4)])]
    for i, guess in enumerate(guesses):
        tifffile.imwrite(truth / f"t{i}.tif", scan.labels[i])
        tifffile.imwrite(pred / f"t{i}.tif", guess)
    csv_path = tmp_path / "m.csv"
    argv = ["evaluate", "--pred", str(pred / "t*.tif"), "--gt", str(truth / "t*.tif")]
    assert main([*argv, "-o", str(csv_path)]) == 0
    per_image = [evaluate(scan.labels[i], g).mean_segmentation_accuracy
                 for i, g in enumerate(guesses)]  # fmt: skip
    assert per_image[0] == 1.0 and per_image[1] < 0.9
    out = capsys.readouterr().out
    assert f"mSA {np.mean(per_image):.3f} (per image, averaged)" in out
    rows = csv.DictReader(csv_path.open())
    rows = [r for r in rows if r["metric"] == "mean_segmentation_accuracy"]
    assert [(r["prediction"], float(r["value"])) for r in rows] == [
        (str(pred / "t0.tif"), pytest.approx(per_image[0])),
        (str(pred / "t1.tif"), pytest.approx(per_image[1])),
        ("all", pytest.approx(np.mean(per_image))),
    ]


def test_export_of_a_scans_mask_channel_measures_its_cells_in_the_scans_images(tmp_path, capsys):
    """A scan's own mask channel (Cellpose's masks saved beside the phase, say) was exported
    by the command line without the intensity columns the dock's export gives it: only a
    scan named by a segment or export record was measured."""
    scan = make_tilescan(n_tiles=1, shape=(96, 96), cell_radius=10, seed=6)
    phase = (scan.brightfield[0] * 1000).astype(np.uint16)
    mask = scan.labels[0].astype(np.uint16)
    path = tmp_path / "well.tif"
    tifffile.imwrite(path, np.stack([phase, mask]), imagej=True,
                     metadata={"axes": "CYX", "Labels": ["Phase", "cells"]})  # fmt: skip
    assert main(["export", str(path), "-o", str(tmp_path / "out"), "-q"]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "well_objects.csv").open()))
    assert len(rows) == len(np.unique(mask)) - 1
    for row in rows:
        cell = mask == int(row["label"])
        assert float(row["mean_Phase"]) == pytest.approx(phase[cell].mean(), rel=1e-5)
    assert not any(key.startswith("mean_cells") for key in rows[0])
    # Channels left unnamed, as Fiji and tifffile save them, of a declared channel axis: the
    # mask channel the reader finds is exported (the whole file was, the phase image's
    # pixels as 19,584 "cells", the pixel size dropped, exit 0), measured in the other.
    hyperstack = tmp_path / "unnamed.tif"
    tifffile.imwrite(hyperstack, np.stack([[phase, mask]] * 2), imagej=True, resolution=(2, 2),
                     metadata={"axes": "TCYX", "unit": "um"})  # fmt: skip
    ome = tmp_path / "unnamed.ome.tif"
    tifffile.imwrite(ome, np.stack([phase, mask]), metadata={"axes": "CYX"})
    for path, frames in ((hyperstack, 2), (ome, 1)):
        out = tmp_path / f"out {frames}"
        assert main(["export", str(path), "-o", str(out), "-q"]) == 0
        exported = tifffile.imread(out / "unnamed.tif")
        np.testing.assert_array_equal(exported, np.squeeze([mask] * frames))
        rows = list(csv.DictReader((out / "unnamed_objects.csv").open()))
        assert len(rows) == frames * (len(np.unique(mask)) - 1)
        cell = mask == int(rows[0]["label"])
        assert float(rows[0]["mean_C1"]) == pytest.approx(phase[cell].mean(), rel=1e-5)
    with tifffile.TiffFile(tmp_path / "out 2" / "unnamed.tif") as tif:
        assert tif.series[0].axes == "TYX" and tif.pages[0].resolution == (2, 2)
    # A stack of label images saved with tifffile's defaults, which declare a channel axis
    # (of masks alone), is read whole, as frames: it was refused as of 3 mask channels.
    for name, options in (("frames.tif", {"imagej": True}), ("frames.ome.tif", {})):
        tifffile.imwrite(tmp_path / name, np.stack([mask] * 3), **options)
        out = tmp_path / f"out {name}"
        assert main(["export", str(tmp_path / name), "-o", str(out), "-q"]) == 0
        np.testing.assert_array_equal(tifffile.imread(next(out.glob("frames*.tif"))), [mask] * 3)
    # A colour picture of the cells (a viewer's colours saved as RGB) is no labels: it was
    # exported as 96 "frames" of 96 x 3 pixels, three "cells" in each, exit 0.
    import imageio.v3 as iio

    colours = np.random.default_rng(1).integers(1, 255, (mask.max() + 1, 3), dtype=np.uint8)
    colours[0] = 0
    for suffix in (".png", ".tif"):
        picture = tmp_path / f"colours{suffix}"
        iio.imwrite(picture, colours[mask])
        capsys.readouterr()
        assert main(["export", str(picture), "-o", str(tmp_path / "pictures"), "-q"]) != 0
        assert "is a colour picture (red, green and blue), not label ids" in (
            capsys.readouterr().err
        )
    # A palette picture's indices are its ids, and a grey picture saved as colour holds them
    # thrice: both are labels.
    from PIL import Image

    small = mask.astype(np.uint8)
    palette = Image.frombytes("P", small.shape[::-1], small.tobytes())
    palette.putpalette(colours.ravel().tolist() + [0] * (768 - colours.size))
    palette.save(tmp_path / "palette.png")
    iio.imwrite(tmp_path / "grey.png", np.stack([small] * 3, axis=-1))
    for name in ("palette", "grey"):
        np.testing.assert_array_equal(read_labels(tmp_path / f"{name}.png")[0], small)


def test_evaluate_finds_each_scans_mask_channel_without_being_told(tmp_path, capsys):
    """Scans whose masks lie in different channels could not be evaluated in one run: no
    one --mask-channel fits them all, and without it each whole scan was the ground truth."""
    scan = make_tilescan(n_tiles=2, shape=(96, 96), cell_radius=10, seed=6)
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    phase = [(scan.brightfield[i] * 1000).astype(np.uint16) for i in range(2)]
    masks = [scan.labels[i].astype(np.uint16) for i in range(2)]
    layouts = (([phase[0], masks[0]], ["Phase", "mask"]), ([masks[1], phase[1]], ["mask", "Phase"]))
    for i, (planes, names) in enumerate(layouts):
        tifffile.imwrite(truth / f"s{i}.tif", np.stack(planes), imagej=True,
                         metadata={"axes": "CYX", "Labels": names})  # fmt: skip
        tifffile.imwrite(pred / f"s{i}_unet_cells.tif", masks[i])
    csv_path = tmp_path / "m.csv"
    argv = ["evaluate", "--pred", str(pred / "s*_unet_cells.tif"), "--gt", str(truth / "s*.tif")]
    assert main([*argv, "-o", str(csv_path)]) == 0, capsys.readouterr().err
    rows = [r for r in csv.DictReader(csv_path.open()) if r["metric"] == "f1"]
    assert {r["prediction"] for r in rows} >= {str(pred / "s0_unet_cells.tif"), "all"}
    assert all(float(r["value"]) == 1.0 for r in rows)

    # A plain label stack whose later frames have no background stays whole: its pages,
    # unnamed, were told apart as a mask and two images.
    from skimage.segmentation import expand_labels

    from napari_cytomask.io.files import read_labels

    stack = np.stack([masks[0], *(expand_labels(masks[0], 60) for _ in range(2))])
    assert (stack[1:] > 0).all()
    tifffile.imwrite(tmp_path / "timelapse.tif", stack)
    labels, _ = read_labels(tmp_path / "timelapse.tif")
    np.testing.assert_array_equal(labels, stack)
    # Two named masks: which one is the ground truth is asked, not the whole scan taken.
    two = tmp_path / "two.tif"
    names = ["Phase", "cells", "nuclei mask"]
    tifffile.imwrite(two, np.stack([phase[0], masks[0], masks[0]]), imagej=True,
                     metadata={"axes": "CYX", "Labels": names})  # fmt: skip
    with pytest.raises(ValueError, match=r"2 mask channels, 1 \(cells\), 2 \(nuclei mask\): say"):
        read_labels(two)
    np.testing.assert_array_equal(read_labels(two, 2)[0], masks[0])
    # Each command asks with its own option: export takes --mask-channel too, and a scan
    # given as --pred is not told to use --mask-channel, which is the --gt's.
    capsys.readouterr()
    out = tmp_path / "exported"
    assert main(["export", str(two), "-o", str(out), "-q"]) != 0
    assert "say which one holds the labels (--mask-channel N)" in capsys.readouterr().err
    # Given, it chooses among a scan's masks, and other files are read as without it (a
    # plain result failed the whole export: "has no channel 2").
    plain = tmp_path / "plain_cells.tif"
    tifffile.imwrite(plain, masks[1])
    argv = ["export", str(two), str(plain), "-o", str(out), "-q", "--mask-channel", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(out / "two.tif"), masks[0])
    np.testing.assert_array_equal(tifffile.imread(out / "plain_cells.tif"), masks[1])
    # A channel that is no mask (the phase) is refused, its masks named.
    assert main(["export", str(two), "-o", str(out), "--mask-channel", "0", "--overwrite"]) != 0
    assert "channel 0 is not one of its mask channels (1 (cells), 2 (nuclei mask))" in (
        capsys.readouterr().err
    )
    # Channels without names (the reader's guess: C2 a mask) take it as well: it was
    # ignored there, and the phase went out as 17,000 "cells".
    unnamed = tmp_path / "unnamed.tif"
    tifffile.imwrite(unnamed, np.stack([phase[0], masks[0]]), imagej=True, metadata={"axes": "CYX"})
    argv = ["export", str(unnamed), "-o", str(out), "-q", "--mask-channel", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(out / "unnamed.tif"), masks[0])
    assert main([*argv[:-1], "0", "--overwrite"]) != 0
    assert "channel 0 is not one of its mask channels (1 (C2))" in capsys.readouterr().err
    # Evaluate takes the mask channel of a file that declares its channels, unnamed, as
    # the reader does; it reads pages of no declared axis whole (they may be one label
    # stack's frames), and where that does not fit, it says which channel to give (it said
    # only the two shapes).
    argv = ["evaluate", "--pred", str(pred / "s0_unet_cells.tif"), "--gt", str(unnamed)]
    assert main([*argv, "-o", str(tmp_path / "u.csv")]) == 0
    pages = tmp_path / "pages.tif"
    tifffile.imwrite(pages, np.stack([phase[0], masks[0]]))
    argv = ["evaluate", "--pred", str(pred / "s0_unet_cells.tif"), "--gt", str(pages)]
    assert main([*argv, "-o", str(tmp_path / "p.csv")]) != 0
    assert (
        f"{pages} names none of its 2 channels, so it was read whole; if channel 1 (which "
        "looks like a mask) holds the labels, give it with --mask-channel 1."
    ) in capsys.readouterr().err
    assert main([*argv, "--mask-channel", "1", "-o", str(tmp_path / "p.csv")]) == 0
    argv = ["evaluate", "--pred", str(two), "--gt", str(truth / "s0.tif"), "--mask-channel", "1"]
    assert main([*argv, "-o", str(tmp_path / "two.csv")]) != 0
    assert "(--pred takes label files; export the scan's mask" in capsys.readouterr().err
    # Evaluate's --mask-channel chooses among a scan's masks, as export's does: the phase
    # channel of a scan that names it was compared as 17,000 "cells", with a note only;
    # and a file of one channel beside the scans is read as without it ("no channel 2").
    mixed, results = tmp_path / "mixed", tmp_path / "results"
    mixed.mkdir()
    results.mkdir()
    two.rename(mixed / "a.tif")
    tifffile.imwrite(mixed / "b.tif", masks[1])
    tifffile.imwrite(results / "a_unet_cells.tif", masks[0])
    tifffile.imwrite(results / "b_unet_cells.tif", masks[1])
    argv = ["evaluate", "--pred", str(results / "*_unet_cells.tif"), "--gt", str(mixed / "*.tif")]
    assert main([*argv, "--mask-channel", "0", "-o", str(tmp_path / "phase.csv")]) != 0
    assert "channel 0 is not one of its mask channels (1 (cells), 2 (nuclei mask))" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--mask-channel", "2", "-o", str(tmp_path / "mixed.csv")]) == 0
    rows = [r for r in csv.DictReader((tmp_path / "mixed.csv").open()) if r["metric"] == "f1"]
    assert {r["prediction"] for r in rows} >= {str(results / "b_unet_cells.tif"), "all"}
    assert all(float(r["value"]) == 1.0 for r in rows)
    # Named channels, none of ids: they went out as three time points of "cells" (exit 0).
    images = tmp_path / "images.tif"
    tifffile.imwrite(images, np.stack([phase[0]] * 3), imagej=True,
                     metadata={"axes": "CYX", "Labels": ["DAPI", "GFP", "Phase"]})  # fmt: skip
    assert main(["export", str(images), "-o", str(tmp_path / "none"), "-q"]) == 1
    assert (
        f"{images} holds 3 image channels, 0 (DAPI), 1 (GFP), 2 (Phase), and no channel of "
        "label ids: it holds no labels to read."
    ) in capsys.readouterr().err
    assert not (tmp_path / "none" / "images.tif").exists()


def _evaluate_pairs(folder, pairs: dict) -> list[str]:
    """``cytomask evaluate`` of ``pairs`` ``{name: (prediction, ground truth)}`` written to
    ``folder``/pred and ``folder``/gt, into ``folder``/m.csv: its arguments."""
    for side in ("pred", "gt"):
        (folder / side).mkdir()
    for name, (pred, truth) in pairs.items():
        tifffile.imwrite(folder / "pred" / f"{name}.tif", pred)
        tifffile.imwrite(folder / "gt" / f"{name}.tif", truth)
    return ["evaluate", "--pred", str(folder / "pred" / "*.tif"),
            "--gt", str(folder / "gt" / "*.tif"), "-o", str(folder / "m.csv")]  # fmt: skip


def test_evaluate_of_one_file_against_a_pattern_says_what_to_give(tmp_path, capsys):
    """Many predictions against one ground-truth file (or the reverse) were told to "use
    the same wildcards in both patterns", though one side was no pattern."""
    cells = np.zeros((32, 32), np.uint16)
    cells[4:12, 4:12] = 1
    for k in range(2):
        tifffile.imwrite(tmp_path / f"s{k}_unet_cells.tif", cells)
        tifffile.imwrite(tmp_path / f"s{k}.tif", cells)
    pattern, one = str(tmp_path / "s*_unet_cells.tif"), str(tmp_path / "s0.tif")
    for pred, gt, file, other in (
        (pattern, one, "--gt", "--pred"),
        (one, pattern, "--pred", "--gt"),
    ):
        assert main(["evaluate", "--pred", pred, "--gt", gt, "-o", str(tmp_path / "m.csv")]) == 1
        assert capsys.readouterr().err == (
            f"cytomask evaluate: error: {file} names one file and {other} a pattern: give "
            f"{other} one file too, to compare one prediction with its ground truth, or give "
            "both a pattern with the same wildcards, which pairs each prediction with its own "
            "ground truth (e.g. --pred 'results/*_unet_cells.tif' --gt 'scans/*.tif').\n"
        )
    pair = ["--pred", str(tmp_path / "s1_unet_cells.tif"), "--gt", one]
    assert main(["evaluate", *pair, "-o", str(tmp_path / "m.csv")]) == 0


def test_evaluate_a_pair_that_cannot_be_compared_fails_alone(tmp_path, capsys):
    """One mismatched pair stopped the run with no CSV and without naming the files."""
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    argv = _evaluate_pairs(tmp_path, {"a": (labels, labels), "b": (labels[:20, :20], labels)})
    assert main(argv) == 1
    out = capsys.readouterr()
    bad = f"{tmp_path / 'pred' / 'b.tif'} against {tmp_path / 'gt' / 'b.tif'}: error: "
    assert bad in out.err and "has shape (32, 32) but prediction has shape (20, 20)" in out.err
    assert "1 of 2 pair(s) could not be compared (see above); the CSV holds the other 1." in (
        out.err
    )
    rows = list(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    assert {r["prediction"] for r in rows} == {str(tmp_path / "pred" / "a.tif"), "all"}
    f1 = [r["value"] for r in rows if r["metric"] == "f1" and r["prediction"] == "all"]
    assert float(f1[0]) == 1.0
    # No pair at all: no CSV.
    tifffile.imwrite(tmp_path / "pred" / "a.tif", labels[:20, :20])
    assert main([*argv[:-1], str(tmp_path / "n.csv")]) == 1
    assert "none of the 2 pair(s) could be compared" in capsys.readouterr().err
    assert not (tmp_path / "n.csv").exists()


def test_evaluate_scores_the_pairs_it_finds_and_names_the_files_left_alone(tmp_path, capsys):
    """A prediction without a ground truth (a batch segmented whole, a few images labelled
    by hand) stopped the run, telling to use the same wildcards, which both patterns did;
    ground truths without a prediction (a batch not finished) were left out unsaid."""
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    argv = _evaluate_pairs(tmp_path, {"a": (labels, labels), "b": (labels, labels)})
    tifffile.imwrite(tmp_path / "pred" / "c.tif", labels)
    tifffile.imwrite(tmp_path / "gt" / "d.tif", labels)
    tifffile.imwrite(tmp_path / "gt" / "e.tif", labels)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert (
        f"cytomask: note: 1 prediction(s) have no ground truth matching "
        f"'{tmp_path / 'gt' / '*.tif'}' and are left out, e.g. {tmp_path / 'pred' / 'c.tif'}."
    ) in err
    assert (
        f"cytomask: note: 2 ground truth(s) have no prediction matching "
        f"'{tmp_path / 'pred' / '*.tif'}' and are left out, e.g. {tmp_path / 'gt' / 'd.tif'}."
    ) in err
    rows = list(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    assert {r["prediction"] for r in rows} == {
        str(tmp_path / "pred" / "a.tif"), str(tmp_path / "pred" / "b.tif"), "all"
    }  # fmt: skip
    # No pair at all is refused, as before.
    argv = ["evaluate", "--pred", str(tmp_path / "pred" / "c.tif"), "--gt",
            str(tmp_path / "gt" / "x*.tif"), "-o", str(tmp_path / "n.csv")]  # fmt: skip
    assert main(argv) == 1


def test_evaluate_leaves_a_ground_truth_without_cells_out_of_the_total(tmp_path, capsys):
    """An image not labelled yet (its ground truth empty) was pooled into the figures of
    all pairs: mSA 0.63 fell to 0.42, with a note on its own row only."""
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    labels[16:28, 16:28] = 2
    empty = np.zeros_like(labels)
    argv = _evaluate_pairs(
        tmp_path, {"a": (labels, labels), "b": (labels, labels), "c": (labels, empty)}
    )
    assert main(argv) == 0
    out = capsys.readouterr()
    assert (
        f"cytomask: note: {tmp_path / 'gt' / 'c.tif'} has no cell, so its pair is left out of "
        "the figures of all pairs (label its cells to score it)."
    ) in out.err
    assert "all 2 pair(s): F1@0.5 1.000, mean-average F1 1.000, mSA 1.000" in out.out
    rows = list(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    # Its own row stays, scored as it is.
    assert {r["prediction"] for r in rows} == {
        *(str(tmp_path / "pred" / f"{n}.tif") for n in "abc"),
        "all",
    }
    # The figures of all pairs say what they leave out: that pair, and its 2 cells.
    left = {r["metric"]: r["value"] for r in rows if r["prediction"] == "all"
            and r["level"] == "left_out"}  # fmt: skip
    assert left == {"frames": "0", "pairs": "1", "n_pred": "2"}
    # Every ground truth empty: then they are what there is to score.
    for name in "ab":
        tifffile.imwrite(tmp_path / "gt" / f"{name}.tif", np.zeros_like(labels))
    assert main([*argv[:-1], str(tmp_path / "e.csv")]) == 0
    out = capsys.readouterr()
    assert "all 3 pair(s): F1@0.5 0.000" in out.out and "left out" not in out.err
    # Run again into the same table: the option that replaces it is named.
    assert main(argv) == 1
    assert (
        f"{tmp_path / 'm.csv'} already exists and was left as it is; choose another name, or "
        "pass --overwrite to replace it."
    ) in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    # A file of another kind in its place: --overwrite would not replace it either.
    tifffile.imwrite(tmp_path / "m.csv", labels)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "holds binary data" in err and "--overwrite" not in err
    # Its cells in frames the prediction was never made in: it has cells, but none there.
    stack = np.stack([empty, labels, labels])
    tifffile.imwrite(tmp_path / "gt" / "c.tif", stack)
    tifffile.imwrite(tmp_path / "pred" / "c.tif", np.stack([labels, empty, empty]))
    made = {"outputs": ["c.tif"], "shape": [3, 32, 32], "frames_made": ["0"], "method": "unet"}
    (tmp_path / "pred" / "c_provenance.json").write_text(json.dumps(made))
    for name in "ab":
        tifffile.imwrite(tmp_path / "gt" / f"{name}.tif", labels)
    assert main([*argv[:-1], str(tmp_path / "f.csv")]) == 0
    assert (
        f"{tmp_path / 'gt' / 'c.tif'} has no cell in the frames the prediction was made in, so "
        "its pair is left out of the figures of all pairs."
    ) in capsys.readouterr().err


def test_a_presets_model_that_cannot_be_used_names_the_preset(tmp_path, capsys):
    """A preset naming a model that is not there was refused without naming the preset."""
    from napari_cytomask.pipeline import Preset, Sam2Step, UNetStep

    preset = Preset(unet=UNetStep(model="nonexistent")).save(tmp_path / "p.json")
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.zeros((32, 32), np.uint8))
    argv = ["segment", str(image), "-o", str(tmp_path / "out"), "--preset", str(preset)]
    assert main(argv) == 1
    assert f"error: {preset}: no checkpoint 'nonexistent'" in capsys.readouterr().err
    # A model given on the command line is its own: the preset is not named then.
    assert main([*argv, "--model", "missing"]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint 'missing'" in err and str(preset) not in err
    # The preset's SAM2 model, beside a U-Net given on the command line: the preset's.
    sam2 = Sam2Step(model=str(tmp_path / "gone.pt"))
    Preset(method="sam2_guided", sam2=sam2).save(preset, overwrite=True)
    assert main([*argv, "--model", "starter"]) == 1
    assert f"error: {preset}: SAM2 model {str(tmp_path / 'gone.pt')!r} is neither" in (
        capsys.readouterr().err
    )


def test_export_of_a_file_that_cannot_be_read_fails_alone(tmp_path, capsys):
    """One unreadable file among those named stopped the whole export, and only its read
    error was said, not that nothing was exported. A result whose scan no longer fits it
    fails alone too."""
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    tifffile.imwrite(tmp_path / "a.tif", labels)
    (tmp_path / "b.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    out = tmp_path / "out"
    argv = ["export", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(out), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'b.tif'}: error: " in err
    assert "1 of 2 file(s) could not be exported (see above); the others are." in err
    np.testing.assert_array_equal(tifffile.imread(out / "a.tif"), labels)
    # None could be read: nothing is written, and that is said.
    (tmp_path / "a.tif").write_bytes(b"not a tiff")
    assert main([*argv[:4], str(tmp_path / "none"), "-q"]) == 1
    assert "none of the 2 file(s) could be exported (see above); nothing was written." in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "none").exists()


def test_export_leaves_out_a_file_its_format_cannot_hold_and_writes_the_others(tmp_path, capsys):
    """Asked for TIFF and PNG, labels of ids over 65535 (stitched tiles) stopped the whole
    export, where the dock leaves their PNG out, says so and writes the rest. The command
    does so too, naming each file left out, with exit status 1; an earlier export's PNG in
    the folder stays as it was."""
    import imageio.v3 as iio

    stitched = np.zeros((16, 16), np.uint32)
    stitched[2:6, 2:6] = 7
    cells = _two_cells()
    tifffile.imwrite(tmp_path / "stitched.tif", stitched)
    tifffile.imwrite(tmp_path / "cells.tif", cells)
    out = tmp_path / "out"
    argv = ["export", str(tmp_path / "stitched.tif"), str(tmp_path / "cells.tif"), "-o",
            str(out), "--format", "tiff", "png", "-q"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    earlier = (out / "stitched.png").read_bytes()
    stitched[2:6, 2:6] = 70_000
    tifffile.imwrite(tmp_path / "stitched.tif", stitched)
    assert main([*argv, "--overwrite"]) == 1
    written, err = capsys.readouterr()
    assert (
        f"{tmp_path / 'stitched.tif'}: error: {out / 'stitched.png'} left out, its other files "
        "written: Cannot save stitched.png: PNG holds ids up to 65535"
    ) in err
    assert err.rstrip().endswith(
        "error: 1 label file(s) could not be written in the format asked (see above); the "
        "other files are."
    )
    assert str(out / "stitched.png") not in written.split()
    assert str(out / "stitched.tif") in written.split()
    np.testing.assert_array_equal(tifffile.imread(out / "stitched.tif"), stitched)
    assert (out / "stitched.png").read_bytes() == earlier
    np.testing.assert_array_equal(iio.imread(out / "cells.png"), cells)
    # PNG alone: the file is left out whole, named, and the other exported.
    assert main([*argv[:4], str(tmp_path / "alone"), "--format", "png", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'stitched.tif'}: error: Cannot save stitched.png: PNG holds" in err
    assert "1 of 2 file(s) could not be exported (see above); the others are." in err
    assert sorted(p.name for p in (tmp_path / "alone").glob("*.png")) == ["cells.png"]


def test_train_never_replaces_an_existing_file(folders, tmp_path, capsys):
    data, _ = folders
    precious = tmp_path / "model.safetensors"
    precious.write_bytes(b"a model trained for a week")
    images, masks = str(data / "set*" / "raw.tif"), str(data / "set*" / "mask.tif")
    argv = ["train", "--images", images, "--masks", masks, *TINY, *QUICK, "--threads", "1",
            "-o", str(precious)]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{precious} already exists" in err and "--overwrite" in err
    assert precious.read_bytes() == b"a model trained for a week"
    assert main([*argv, "--overwrite", "--no-tune", "-q"]) == 0
    assert read_description(precious)["encoder"] == "tu-resnet10t"


@pytest.mark.parametrize(
    ("option", "value"),
    [("--tile-size", "0"), ("--batch-size", "0"), ("--foreground-threshold", "nan"),
     ("--interior-threshold", "1.5"), ("--min-size", "-5"), ("--overlap", "-1"),
     ("--workers", "-1"), ("--threads", "-2"), ("--points-per-side", "0"),
     ("--max-area-fraction", "0"), ("--chunked-above", "inf"), ("--channel", "x")],
)  # fmt: skip
def test_impossible_segment_options_are_usage_errors(option, value, capsys):
    assert main(["segment", "scan.tif", option, value]) == 2
    err = capsys.readouterr().err
    assert f"cytomask segment: error: argument {option}" in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [("--interior-threshold", "0,6", "must be a number with a decimal point (0.5), not '0,6'"),
     ("--tile-size", "big", "must be a whole number, not 'big'"),
     ("--overlap", "1.5", "must be a whole number, not '1.5'"),
     # Taken, segmented, and the labels then could not be saved.
     ("--pixel-size", "1e7", "must be a finite number in [0.001, 50] (got 1e7)"),
     # Written into the result, which the reader then opened without a pixel size.
     ("--pixel-size", "80", "must be a finite number in [0.001, 50] (got 80)"),
     ("--pixel-size", "1e-9", "must be a finite number in [0.001, 50] (got 1e-9)"),
     # "in (0, inf]" refused "inf".
     ("--chunked-above", "inf", "must be a finite number above 0 (got inf)")],
)  # fmt: skip
def test_options_that_are_no_number_say_what_a_number_looks_like(option, value, said, capsys):
    """argparse named the parsing function: "invalid _probability value: '0,6'"."""
    assert main(["segment", "scan.tif", option, value]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"cytomask segment: error: argument {option}: {said}"


@pytest.mark.parametrize(
    ("argv", "said"),
    [(["evaluate", "--pred", "a", "--gt", "b", "-o", "m", "--mask-channel", "x"],
      "argument --mask-channel: must be a whole number, not 'x'"),
     (["evaluate", "--pred", "a", "--gt", "b", "-o", "m", "--mask-channel", "-1"],
      "argument --mask-channel: must be 0 or more (got -1)"),
     (["export", "a", "-o", "b", "--mask-channel", "x"],
      "argument --mask-channel: must be a whole number, not 'x'"),
     (["train", "--seed", "x"], "argument --seed: must be a whole number, not 'x'"),
     (["train", "--seed", "-2"], "argument --seed: must be 0 or more (got -2)"),
     (["train", "--encoder-depth", "x"],
      "argument --encoder-depth: must be a whole number, not 'x'"),
     (["tune", "m", "--input-channel", "x"],
      "argument --input-channel: must be a whole number, not 'x'"),
     (["tune", "m", "--mask-channel", "-1"],
      "argument --mask-channel: must be 0 or more (got -1)")],
)  # fmt: skip
def test_channels_and_seeds_that_are_no_such_number_say_so_in_the_programs_words(
    argv, said, capsys
):
    """argparse's own words ("invalid int value: 'x'"), or a negative channel taken as
    counted from the end: found by benchmarks/fuzz_cli.py."""
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"cytomask {argv[0]}: error: {said}"


@pytest.mark.parametrize(
    ("argv", "option"),
    [(["train", "--learning-rate", "0"], "--learning-rate"),
     (["train", "--time-limit", "-1"], "--time-limit"),
     (["train", "--percentiles", "1", "101"], "--percentiles"),
     (["evaluate", "--pred", "a", "--gt", "b", "-o", "m", "--thresholds", "0"], "--thresholds")],
)  # fmt: skip
def test_impossible_options_of_other_commands_are_usage_errors(argv, option, capsys):
    assert main(argv) == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "key"),
    [*((key, key) for key in SEGMENT_FORMATS),
     ("tif", "tiff"), ("ome.tif", "ome-tiff"), ("ome.zarr", "ome-zarr"), (".OME.TIFF", "ome-tiff")],
)  # fmt: skip
def test_segment_takes_every_format_key_and_the_old_suffixes(name, key):
    assert build_parser().parse_args(["segment", "scan.tif", "--format", name]).format == key


def test_methods_and_export_formats_come_from_their_registries(capsys):
    parser = build_parser()
    for method in METHODS:
        assert parser.parse_args(["segment", "scan.tif", "--method", method]).method == method
    args = parser.parse_args(["export", "cells.tif", "-o", "out", "--format", *FILE_FORMATS, "tif"])
    assert args.formats == [*FILE_FORMATS, "tiff"]
    # export writes files only: a chunk-wise store is no choice there.
    assert main(["export", "cells.tif", "-o", "out", "--format", "ome-zarr"]) == 2
    assert "invalid choice: 'ome-zarr'" in capsys.readouterr().err
    # segment writes formats that hold any image: a PNG would fail only after the work.
    assert main(["segment", "scan.tif", "--format", "png"]) == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err
    # An unknown format is answered with what that command writes, not every format.
    assert main(["segment", "scan.tif", "--format", "jpeg"]) == 2
    assert "invalid choice: 'jpeg' (choose from 'tiff', 'ome-tiff', 'ome-zarr')" in (
        capsys.readouterr().err
    )
    assert main(["export", "cells.tif", "-o", "out", "--format", "bogus"]) == 2
    assert "invalid choice: 'bogus' (choose from 'tiff', 'ome-tiff', 'png', 'npy')" in (
        capsys.readouterr().err
    )


def test_channel_numbers_end_where_the_inputs_begin(tmp_path, capsys):
    missing = tmp_path / "scan.tif"
    assert main(["segment", "--channel", "0", "1", str(missing), "--scheduler", "synchronous"]) == 1
    assert f"{missing} does not exist" in capsys.readouterr().err
    assert main(["segment", "--channel", "0", "1"]) == 2
    assert "required: INPUT" in capsys.readouterr().err


def test_help_states_each_default_once(capsys):
    assert main(["segment", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default 64)" in text and "(default 64) (default" not in text
    assert "(default: 2048)" in text  # --chunk-size, which has a default the text does not say


def test_corrupt_label_files_are_named_by_every_command(folders, tmp_path, capsys):
    """evaluate, export and train read label files through one reader: a corrupt one
    gives a one-line error naming it, not a codec's traceback."""
    data, _ = folders
    for folder in data.glob("set*"):  # predictions that are labels, before one mask breaks
        (folder / "pred.tif").write_bytes((folder / "mask.tif").read_bytes())
    mask = data / "set1" / "mask.tif"
    tifffile.imwrite(mask, tifffile.imread(mask), compression="zlib", rowsperstrip=16)
    with tifffile.TiffFile(mask) as tif:
        offset, count = tif.pages[0].dataoffsets[2], tif.pages[0].databytecounts[2]
    broken = bytearray(mask.read_bytes())
    broken[offset : offset + count] = bytes(count)
    mask.write_bytes(bytes(broken))
    commands = [
        ["evaluate", "--pred", str(data / "set*" / "pred.tif"), "--gt",
         str(data / "set*" / "mask.tif"), "-o", str(tmp_path / "m.csv")],
        ["export", str(mask), "-o", str(tmp_path / "exported")],
        ["train", "--images", str(data / "set*" / "raw.tif"), "--masks",
         str(data / "set*" / "mask.tif"), *TINY, *QUICK],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        lines = err.splitlines()
        assert str(mask) in lines[0] and "cannot be decoded" in lines[0], err
        assert "Traceback" not in err
        # evaluate measures the other pairs and says so last.
        assert lines[1:] == (["cytomask evaluate: error: 1 of 3 pair(s) could not be compared "
                              "(see above); the CSV holds the other 2."]
                             if argv[0] == "evaluate" else [])  # fmt: skip


def test_images_held_back_for_testing_are_said_to_be_scored_apart():
    """The split said "testing on 1", but the run never scores its test images."""
    from napari_cytomask.cli import _split_text

    split = {"train": ["a.tif", "b.tif"], "validation": ["c.tif"], "test": ["d.tif"]}
    assert _split_text(split) == (
        "training on 2 image(s), validating on 1, holding back 1 for testing (never trained "
        "or tuned on: score the model on them with cytomask segment and cytomask evaluate) "
        "(train: a.tif, b.tif; validation: c.tif; test: d.tif)"
    )


def test_training_reports_its_split_time_and_validation(folders, tmp_path, capsys):
    """The split as used, elapsed time and time left per epoch, progress while validating,
    and the number of epochs a time limit leaves (not the maximum)."""
    data, _ = folders
    model = tmp_path / "tiny.safetensors"
    images, masks = str(data / "set*" / "raw.tif"), str(data / "set*" / "mask.tif")
    argv = ["train", "--images", images, "--masks", masks, *TINY, *QUICK, "--threads", "1",
            "--no-tune", "-o", str(model), "--epochs", "5", "--time-limit", "0.00001"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    split = read_description(model)["training"]["split"]
    # Of three images none is held back for testing, which left one to train on.
    assert [len(split[k]) for k in ("train", "validation", "test")] == [2, 1, 0]
    assert "training on 2 image(s), validating on 1 (train: " in out
    assert f"validation: {', '.join(split['validation'])}" in out
    assert "  validation image 1/1" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    # Its loss, the mean of its steps' (printed every 10th step, none here).
    assert len(epochs) == 1 and re.match(
        r"epoch 1/1 \(of 5: about 1 fit the time limit\): loss \d\.\d{4}, val ", epochs[0]
    )  # not 1/5 unsaid
    assert re.search(r"\[0:\d\d elapsed\]$", epochs[0])  # the last: nothing left to time


def test_train_keeps_the_split_of_another_model_for_moved_data(folders, tmp_path, capsys):
    """--split-from: the same images elsewhere (another folder, another file type) keep the
    parts they had; images the recorded split does not know are refused."""
    data, scan = folders
    first = tmp_path / "first.safetensors"
    options = [*TINY, *QUICK, "--no-tune", "--threads", "1"]

    def train(folder, image_file, *more):
        images, masks = str(folder / "set*" / image_file), str(folder / "set*" / "mask.tif")
        return main(["train", "--images", images, "--masks", masks, *options, *more])

    assert train(data, "raw.tif", "--split", "1,1,1", "-o", str(first)) == 0
    recorded = read_description(first)["training"]["split"]
    test_set = recorded["test"][0].split("/")[-2]
    moved = tmp_path / "moved"
    for i in range(3):
        if f"set{i}" == test_set:
            continue  # the test image is not needed to train
        (moved / f"set{i}").mkdir(parents=True)
        tifffile.imwrite(moved / f"set{i}" / "raw.tiff", scan.brightfield[i])
        tifffile.imwrite(moved / f"set{i}" / "mask.tif", scan.labels[i])
    second = tmp_path / "second.safetensors"
    assert train(moved, "raw.tiff", "--split-from", str(first), "-o", str(second)) == 0
    split = read_description(second)["training"]["split"]
    for part in ("train", "validation"):
        assert [n.split("/")[-2] for n in split[part]] == [n.split("/")[-2] for n in recorded[part]]
        assert all(n.startswith(str(moved)) for n in split[part])
    assert split["test"] == recorded["test"]  # not here, but still the model's test image
    capsys.readouterr()
    resume = ["--resume", str(second), "--split-from", str(first)]
    assert train(moved, "raw.tiff", *resume, "-o", str(second)) == 1
    assert "leave out --split-from" in capsys.readouterr().err
    # Fractions beside it were used where the recorded run held part of its image back,
    # training on all of it; one or the other.
    given = ["--split-from", str(first), "--split", "1,0,0", "-o", str(tmp_path / "y")]
    assert train(moved, "raw.tiff", *given) == 1
    assert f"--split-from keeps the split of {first}; leave out --split" in (
        capsys.readouterr().err
    )
    (moved / "set9").mkdir()
    tifffile.imwrite(moved / "set9" / "raw.tiff", scan.brightfield[0])
    tifffile.imwrite(moved / "set9" / "mask.tif", scan.labels[0])
    capsys.readouterr()
    assert train(moved, "raw.tiff", "--split-from", str(first), "-o", str(tmp_path / "x")) == 1
    err = capsys.readouterr().err
    assert "set9" in err and "in no part of the recorded split" in err


def test_export_of_results_that_share_a_file_name(folders, unet_checkpoint, tmp_path, capsys):
    """Results of several folders, all named raw_unet_cells.tif, are exported side by side
    under what tells their scans apart, each with the method and model that made it; a table
    without objects keeps its header; a damaged provenance file is named, not a traceback."""
    from napari_cytomask.io.layers import file_sha256

    data, _ = folders
    model = unet_checkpoint(tile_size=128)
    out, exported = tmp_path / "out", tmp_path / "exported"
    segment = ["segment", str(data / "set*" / "raw.tif"), "-m", str(model), "-o", str(out),
               "--scheduler", "synchronous", "--threads", "1", "-q"]  # fmt: skip
    assert main(segment) == 0
    results = str(out / "*" / "raw_unet_cells.tif")
    assert main(["export", results, "-o", str(exported), "--format", "tiff", "tif", "-q"]) == 0
    names = sorted(p.name for p in exported.glob("*.tif"))
    assert names == [f"set{i} raw_unet_cells.tif" for i in range(3)]
    for i in range(3):
        labels = tifffile.imread(out / f"set{i}" / "raw_unet_cells.tif")
        np.testing.assert_array_equal(tifffile.imread(exported / names[i]), labels)
        record = json.loads((exported / f"set{i} raw_unet_cells_provenance.json").read_text())
        assert record["method"] == "unet" and record["model"]["sha256"] == file_sha256(model)
        # The file the labels were read from, beside the scan they were made of.
        assert record["labels_file"] == str(out / f"set{i}" / "raw_unet_cells.tif")
        header = (exported / f"set{i} raw_unet_cells_objects.csv").read_text().splitlines()[0]
        assert header.startswith("source_file,label,area,centroid_y")
    # Evaluated, a segment result is named by its scan's channel as the plugin's reader
    # names its layer (the metrics dock records that name): evaluate recorded None, its
    # record giving the channel's index alone.
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.layers import METADATA_KEY

    result = out / "set0" / "raw_unet_cells.tif"
    ((_, kwargs, _),) = get_reader(str(result))(str(result))
    shown = kwargs["metadata"][METADATA_KEY]["channel_name"]
    assert shown == "raw"
    evaluate = ["evaluate", "--pred", str(result), "--gt", str(data / "set0" / "mask.tif")]
    assert main([*evaluate, "-q", "-o", str(tmp_path / "m.csv")]) == 0
    record = json.loads((tmp_path / "m_provenance.json").read_text(encoding="utf-8"))
    prediction = record["pairs"][0]["prediction"]
    assert (prediction["channel_index"], prediction["channel_name"]) == (0, shown)

    (out / "set0" / "raw_unet_cells.json").write_text("[1, 2]")
    capsys.readouterr()
    assert main(["export", results, "-o", str(tmp_path / "again")]) == 1
    err = capsys.readouterr().err
    assert "is not a provenance file of 'cytomask segment'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "again").exists()
    # A record whose entries are of other kinds (found by changing them): Python's
    # TypeError or KeyError came out of the command, with a traceback.
    record = json.loads((out / "set1" / "raw_unet_cells.json").read_text())
    for key, value in (("versions", [1]), ("channels_used", 0), ("channels_used", {"a": 1})):
        damaged = {**record, key: value}
        (out / "set0" / "raw_unet_cells.json").write_text(json.dumps(damaged))
        assert main(["export", results, "-o", str(tmp_path / "again")]) == 1
        assert f"is not a provenance file of 'cytomask segment' (its {key!r} is {value!r}); " in (
            capsys.readouterr().err
        )
        assert not (tmp_path / "again").exists()


def test_another_format_does_not_take_over_a_finished_results_record(
    folders, unet_checkpoint, capsys
):
    data, _ = folders
    model = unet_checkpoint(tile_size=128)
    segment = ["segment", str(data / "set0" / "raw.tif"), "-m", str(model), "--scheduler",
               "synchronous", "--threads", "1", "-q"]  # fmt: skip
    assert main(segment) == 0
    record = data / "set0" / "raw_unet_cells.json"
    before = record.read_text()
    capsys.readouterr()
    assert main([*segment, "--format", "ome-tiff"]) == 1
    assert "describes raw_unet_cells.tif, made in another format" in capsys.readouterr().err
    assert record.read_text() == before and not (data / "set0" / "raw_unet_cells.ome.tif").exists()
    assert main([*segment, "--format", "ome-tiff", "--overwrite"]) == 0
    # The labels it deletes are said to be: a table made of them lost its file unsaid.
    assert "raw_unet_cells.tif (made before, in another format) deleted." in (
        capsys.readouterr().err
    )
    assert json.loads(record.read_text())["output"] == "raw_unet_cells.ome.tif"
    # The result it replaces goes with its record: no stale TIFF for export to pick up.
    assert not (data / "set0" / "raw_unet_cells.tif").exists()
    assert (data / "set0" / "raw.tif").exists()
    # Asked again in the new format, it is finished.
    assert main([*segment, "--format", "ome-tiff"]) == 0


def test_training_that_cannot_work_stops_before_the_first_epoch(
    folders, tmp_path, monkeypatch, capsys
):
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    train = ["train", *pairs, *TINY, *QUICK, "--threads", "1"]
    # A folder this user may not write to (root writes anywhere, so the system is told to
    # refuse a file there).
    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = os.open

    def refused(path, *args, **kwargs):
        if os.path.dirname(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(os, "open", refused)
        assert main([*train, "-o", str(locked / "model.safetensors")]) == 1
    out = capsys.readouterr()
    said = f"cannot save to {locked}: there is no permission to write there; choose another"
    assert said in out.err and "epoch" not in out.out
    # Cells only in the mask of the image drawn for validation: named by its folder too.
    from napari_cytomask.models.training import split_by_image

    names = [str(p) for p in sorted(data.glob("set*/raw.tif"))]
    (val,) = split_by_image(names, (0.8, 0.1, 0.1), 0)["validation"]
    for mask in data.glob("set*/mask.tif"):
        if str(mask.parent / "raw.tif") != val:
            tifffile.imwrite(mask, np.zeros((96, 96), np.uint16))
    assert main([*train, "-o", str(tmp_path / "model.safetensors")]) == 1
    err = capsys.readouterr().err
    assert f"image(s) with cells ({Path(val).parent.name}/raw.tif) were drawn for validation" in err
    # Masks without a cell.
    for mask in data.glob("set*/mask.tif"):
        tifffile.imwrite(mask, np.zeros((96, 96), np.uint16))
    assert main([*train, "-o", str(tmp_path / "model.safetensors")]) == 1
    out = capsys.readouterr()
    assert "masks hold no cell" in out.err and "epoch" not in out.out


def test_segment_and_export_keep_the_pixel_size(unet_checkpoint, tmp_path):
    from napari_cytomask.io.tiff import read_tiff

    image = np.random.default_rng(0).integers(0, 4000, (128, 128), dtype=np.uint16)
    source = tmp_path / "cal.ome.tif"
    tifffile.imwrite(source, image, metadata={"axes": "YX", "PhysicalSizeX": 0.65,
                                              "PhysicalSizeY": 0.65})  # fmt: skip
    model = unet_checkpoint(tile_size=128)
    assert main(["segment", str(source), "-m", str(model), "--format", "ome-tiff", "-q",
                 "--scheduler", "synchronous", "--threads", "1"]) == 0  # fmt: skip
    result = tmp_path / "cal_unet_cells.ome.tif"
    exported = tmp_path / "exported"
    assert main(["export", str(result), "-o", str(exported), "--format", "tiff", "-q"]) == 0
    for path in (result, exported / "cal_unet_cells.tif"):
        ((_, kwargs, _),) = read_tiff(path)
        assert kwargs["scale"] == pytest.approx((0.65, 0.65)) and kwargs["units"] == ("µm", "µm")


@pytest.mark.parametrize("given", [None, 0.5], ids=["file's", "given"])
def test_ome_zarr_labels_keep_the_pixel_size_and_their_own_name(given, unet_checkpoint, tmp_path):
    """OME-Zarr labels of segment had a scale of 1 where its TIFF labels kept the image's
    pixel size, and were named after the temporary folder they were filled in; written
    with it, they were read back with a scale of 1."""
    from napari_cytomask.io.files import open_scan

    image = np.random.default_rng(0).integers(0, 4000, (128, 128), dtype=np.uint16)
    source = tmp_path / "cal.ome.tif"
    tifffile.imwrite(source, image, metadata={"axes": "YX", "PhysicalSizeX": 0.65,
                                              "PhysicalSizeY": 0.65})  # fmt: skip
    segment = ["segment", str(source), "-m", str(unet_checkpoint(tile_size=128)), "-q",
               "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
    if given is not None:
        segment += ["--pixel-size", str(given)]
    assert main([*segment, "-o", str(tmp_path / "tiff")]) == 0
    assert main([*segment, "-o", str(tmp_path / "zarr"), "--format", "ome-zarr"]) == 0
    tiff = open_scan(tmp_path / "tiff" / "cal_unet_cells.tif")
    size = given or 0.65
    assert tiff.scale == pytest.approx((size, size)) and tiff.units == ("µm", "µm")
    store = tmp_path / "zarr" / "cal_unet_cells.ome.zarr"
    (image_metadata,) = json.loads((store / ".zattrs").read_text())["multiscales"]
    assert image_metadata["name"] == "cal_unet_cells"
    assert image_metadata["axes"] == [
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    (dataset,) = image_metadata["datasets"]
    (transform,) = dataset["coordinateTransformations"]
    assert transform["type"] == "scale" and transform["scale"] == pytest.approx(tiff.scale)
    # And read back so (they read back with a scale of 1, without units).
    labels = open_scan(store)
    assert labels.scale == pytest.approx(tiff.scale) and labels.units == ("µm", "µm")


def test_segment_reads_an_ome_zarr_images_channels_and_pixel_size(unet_checkpoint, tmp_path):
    """An OME-Zarr image's channels were taken for Z planes of one image and its pixels for
    1 x 1 without a unit: the labels of segment kept no pixel size."""

    from napari_cytomask.io.files import open_scan

    pixels = np.random.default_rng(0).integers(0, 4000, (2, 128, 128), dtype=np.uint16)
    _ome_zarr_image(tmp_path / "img.ome.zarr", pixels, "cyx", pixel_size_nm=650.0)
    model = unet_checkpoint(tile_size=128)
    assert main(["segment", str(tmp_path / "img.ome.zarr"), "-m", str(model), "-q",
                 "--scheduler", "synchronous", "--threads", "1"]) == 0  # fmt: skip
    record = json.loads((tmp_path / "img_unet_cells.json").read_text())
    assert record["channels_used"] == [1] and record["shape"] == [128, 128]
    assert record["pixel_size_um"] == pytest.approx([0.65, 0.65])
    labels = open_scan(tmp_path / "img_unet_cells.tif")
    assert labels.scale == pytest.approx((0.65, 0.65)) and labels.units == ("µm", "µm")


def test_export_measures_the_cells_in_the_ome_zarr_image_they_were_made_from(
    unet_checkpoint, tmp_path, capsys
):
    """Labels of an OME-Zarr image (a folder, not a file) were exported without the
    intensities measured in them, and the image said to be gone, where a TIFF's had them;
    moved with their image, too."""

    pixels = np.random.default_rng(0).integers(0, 4000, (2, 96, 96), dtype=np.uint16)
    _ome_zarr_image(tmp_path / "scans" / "img.ome.zarr", pixels, "cyx")
    results = tmp_path / "scans" / "results"
    assert main(["segment", str(tmp_path / "scans" / "img.ome.zarr"), "-o", str(results),
                 "-m", str(unet_checkpoint(tile_size=96)), "-q", "--scheduler",
                 "synchronous", "--threads", "1"]) == 0  # fmt: skip
    moved = tmp_path / "shared drive"
    for folder in (results, moved / "results"):
        if folder.parent == moved:
            (tmp_path / "scans").rename(moved)
        capsys.readouterr()
        exported = tmp_path / "exported" / folder.parent.name
        assert main(["export", str(folder / "img_unet_cells.tif"), "-o", str(exported),
                     "-q"]) == 0  # fmt: skip
        header = (exported / "img_unet_cells_objects.csv").read_text().splitlines()[0]
        assert {"mean_GFP", "mean_Brightfield"} <= set(header.split(","))
        assert "is not there" not in capsys.readouterr().err


def _ome_zarr_image(path, pixels, axes: str, pixel_size_nm: float | None = None) -> None:
    """An OME-Zarr image (NGFF 0.4) of one level whose ``axes`` are named by letters
    ("tczyx"), with channels GFP and Brightfield, and a Y and X size in nm if given."""
    import zarr

    kinds = {"t": "time", "c": "channel"}
    described = [{"name": a, "type": kinds.get(a, "space")} for a in axes]
    scale = [1.0] * len(axes)
    if pixel_size_nm is not None:
        for axis in (-2, -1):
            described[axis]["unit"], scale[axis] = "nanometer", pixel_size_nm
    store = zarr.open_group(path, mode="w", zarr_format=2)
    store.create_array("0", data=pixels)
    transforms = [{"type": "scale", "scale": scale}]
    store.attrs["multiscales"] = [
        {"version": "0.4", "axes": described,
         "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    ]  # fmt: skip
    store.attrs["omero"] = {"channels": [{"label": "GFP"}, {"label": "Brightfield"}]}


def test_export_measures_an_ome_zarr_image_of_one_plane_with_its_axes_of_length_one(
    unet_checkpoint, tmp_path, capsys
):
    """Labels of a t, c, z, y, x image of one plane (as OME-Zarr images often are) could
    not be exported: the image's channels kept their axes of length 1, which the labels'
    TIFF loses ('has shape (1, 1, 96, 96) but the labels (96, 96)'), and among many label
    files the message named none. Labels of another shape than their scan's (cropped) are
    still refused, now by name, with nothing written."""
    pixels = np.random.default_rng(0).integers(0, 4000, (2, 96, 96), dtype=np.uint16)
    scans, results = tmp_path / "scans", tmp_path / "results"
    _ome_zarr_image(scans / "tczyx.ome.zarr", pixels[None, :, None], "tczyx")
    _ome_zarr_image(scans / "tcyx.ome.zarr", pixels[None], "tcyx")
    assert main(["segment", str(scans), "-o", str(results), "-m",
                 str(unet_checkpoint(tile_size=96)), "-q", "--scheduler", "synchronous",
                 "--threads", "1"]) == 0  # fmt: skip
    pattern = str(results / "**" / "*_unet_cells.tif")
    exported = tmp_path / "exported"
    assert main(["export", pattern, "-o", str(exported), "-q"]) == 0, capsys.readouterr().err
    for name in ("tczyx", "tcyx"):
        labels = tifffile.imread(exported / f"{name}_unet_cells.tif")
        with open(exported / f"{name}_unet_cells_objects.csv", newline="") as table:
            rows = list(csv.DictReader(table))
        assert rows, name
        for row in rows:
            cell = labels == int(row["label"])
            assert float(row["mean_GFP"]) == pytest.approx(pixels[0][cell].mean())
            assert float(row["mean_Brightfield"]) == pytest.approx(pixels[1][cell].mean())
    cropped = results / "tcyx_unet_cells.tif"
    tifffile.imwrite(cropped, tifffile.imread(cropped)[:64])
    # Its record's fingerprint tells it is no longer the run's: exported as labels of its own.
    assert main(["export", str(cropped), "-o", str(tmp_path / "own"), "-q"]) == 0
    assert not any("mean_" in key for key in (tmp_path / "own" / "tcyx_unet_cells_objects.csv")
                   .read_text().splitlines()[0].split(","))  # fmt: skip
    # A record of an earlier version keeps none: the shapes tell.
    record = results / "tcyx_unet_cells.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "labels_sha1": None}))
    assert main(["export", pattern, "-o", str(tmp_path / "again"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{cropped} has shape (64, 96), but channel 'GFP' of {scans / 'tcyx.ome.zarr'}" in err
    # It fails alone: the other result is exported.
    assert "1 of 2 file(s) could not be exported (see above); the others are." in err
    assert not any(tmp_path.glob("again/tcyx*"))
    assert (tmp_path / "again" / "tczyx_unet_cells.tif").is_file()


def test_relative_paths_become_absolute_for_workers_elsewhere(
    folders, unet_checkpoint, tmp_path, monkeypatch
):
    """A distributed scheduler's workers may run in another folder: a preset's model file
    and the output folder reach them as absolute paths."""
    from napari_cytomask.batch import output_folders
    from napari_cytomask.pipeline import Preset, UNetStep

    data, _ = folders
    model = unet_checkpoint(tile_size=128)
    (tmp_path / "tiny.safetensors").write_bytes(model.read_bytes())
    Preset(unet=UNetStep(model="tiny.safetensors")).save(tmp_path / "preset.json")
    monkeypatch.chdir(tmp_path)
    argv = ["segment", "data/set0/raw.tif", "--preset", "preset.json", "-o", "out", "-q",
            "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "raw_unet_cells.json").read_text())
    assert record["preset"]["unet"]["model"] == str(tmp_path / "tiny.safetensors")
    assert output_folders([Path("data/set0/raw.tif")], Path("out")) == [tmp_path / "out"]


def test_training_output_given_as_a_folder_or_under_a_file(folders, tmp_path, capsys):
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    train = ["train", *pairs, *TINY, *QUICK, "--threads", "1", "--no-tune", "-q"]
    # An existing folder takes a new checkpoint inside it, like cp FILE FOLDER.
    folder = tmp_path / "models here"
    folder.mkdir()
    assert main([*train, "-o", str(folder)]) == 0
    (made,) = folder.glob("*.safetensors")
    assert read_description(made)["encoder"] == "tu-resnet10t"
    assert not (tmp_path / "models here.safetensors").exists()
    capsys.readouterr()
    # A path under a file stops before the first epoch and names the file.
    (tmp_path / "notes.txt").write_text("mine")
    assert main([*train, "-o", str(tmp_path / "notes.txt" / "model.safetensors")]) == 1
    out = capsys.readouterr()
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in out.err
    assert "Errno" not in out.err and "epoch" not in out.out
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_disk_too_full_for_the_training_state_loses_neither_the_run_nor_the_network(
    folders, monkeypatch, capsys, tmp_path
):
    """A disk with room for the network but not its training state stopped the run at its
    first epoch, saying "nothing was written" where the network had been. Training goes on,
    saving the network, and says once that the state is not kept. A disk too full for the
    network itself stops the run, saying which epoch's network is kept."""
    import errno

    from napari_cytomask.io.atomic import WriteError
    from napari_cytomask.models import training

    def full(path):
        return WriteError(errno.ENOSPC, f"Could not save {path}: the disk is full. Nothing "
                          "was written and existing files are unchanged.")  # fmt: skip

    def no_room_for_state(checkpoint, state):
        raise full(state_path(checkpoint))

    monkeypatch.setattr(training, "_write_state", no_room_for_state)
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    out = tmp_path / "m.safetensors"
    argv = ["train", *pairs, *TINY, *QUICK, "--epochs", "3", "--threads", "1", "-q", "-o", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("could not be saved") == 1, err
    assert (
        "cytomask: note: The training state could not be saved beside m.safetensors (the disk "
        "is full). Training goes on, saving the best network without it"
    ) in err
    assert read_description(out)["training"]["finished"]
    assert read_description(out)["training"]["epochs_done"] == 3
    assert not state_path(out).exists()

    saving = training.save_checkpoint
    saves = []

    def second_save_fails(path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 2:
            raise full(path)
        return saving(path, *args, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", second_save_fails)
    other = tmp_path / "other.safetensors"
    assert main([*argv[:-1], str(other)]) == 1
    assert capsys.readouterr().err.endswith(
        f"existing files are unchanged. The best network so far is in {other}; continue from "
        f"the last finished epoch with the same command and --resume {other} added.\n"
    )
    assert read_description(other)["training"]["epochs_done"] == 1

    # No room for the first network: an epoch had finished, but no network was saved.
    def no_save(path, *args, **kwargs):
        raise full(path)

    monkeypatch.setattr(training, "save_checkpoint", no_save)
    third = tmp_path / "third.safetensors"
    assert main([*argv[:-1], str(third)]) == 1
    assert capsys.readouterr().err.endswith("unchanged. No network was saved.\n")
    assert not third.exists()


def test_a_diverging_training_run_is_one_line_not_a_traceback(folders, monkeypatch, capsys):
    from napari_cytomask.models import training

    monkeypatch.setattr(training, "segmentation_loss", lambda logits, *a: logits.sum() * np.nan)
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    assert main(["train", *pairs, *TINY, *QUICK, "--threads", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cytomask train: error: the training loss became nan in epoch 1")


def test_running_out_of_memory_says_what_to_change(folders, unet_checkpoint, monkeypatch, capsys):
    """A GPU's OutOfMemoryError is a RuntimeError and the computer's a bare MemoryError:
    both are one line that says which options to lower, not a traceback or a lone word."""
    from napari_cytomask.models import inference, training

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "segmentation_loss", no_memory)
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    assert main(["train", *pairs, *TINY, *QUICK, "--threads", "1", "-q"]) == 1
    assert capsys.readouterr().err == (
        "cytomask train: error: CUDA out of memory. Tried to allocate 2.00 GiB; give a smaller "
        "--batch-size or --crop-size, or train on the CPU (--device cpu). No epoch had "
        "finished; nothing was saved.\n"
    )

    def no_host_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(inference, "predict_tiles", no_host_memory)
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(data / "set0" / "raw.tif"), "-m", str(model), "-o",
            str(data.parent / "out"), "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    # The computer's memory: the CPU is no way out, and a whole frame may not fit.
    assert (
        f"{data / 'set0' / 'raw.tif'}: error: out of memory; close other programs or give a "
        "smaller --batch-size; for frames of many megapixels, a smaller --chunked-above (say "
        "16: frames of more are then segmented chunk by chunk).\n" in err
    )

    def no_torch_memory(*args, **kwargs):  # PyTorch's CPU allocator: no "out of memory"
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 1677721600 bytes. Error code 12 (Cannot allocate "
            "memory)"
        )

    # Windows's allocator says it otherwise.
    windows = "DefaultCPUAllocator: not enough memory: you tried to allocate 1677721600 bytes."
    assert one_line(RuntimeError(windows)) == "out of memory (could not allocate 1.6 GiB)"
    monkeypatch.setattr(training, "segmentation_loss", no_torch_memory)
    assert main(["train", *pairs, *TINY, *QUICK, "--threads", "1", "-q"]) == 1
    assert capsys.readouterr().err == (
        "cytomask train: error: out of memory (could not allocate 1.6 GiB); give a smaller "
        "--batch-size or --crop-size, or close other programs. No epoch had finished; nothing "
        "was saved.\n"
    )


def test_training_without_a_validation_image_says_the_thresholds_were_not_chosen(
    folders, tmp_path, capsys
):
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    model = tmp_path / "all.safetensors"
    argv = ["train", *pairs, *TINY, *QUICK, "--threads", "1", "--split", "1,0,0", "-o", str(model)]
    assert main(argv) == 0
    assert "cytomask: note: no image was left for validation" in capsys.readouterr().err
    assert "postprocess" not in read_description(model)


def test_tune_and_resume_do_not_take_the_packaged_starter_model(folders, tmp_path, capsys):
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    for argv in (["tune", "starter", *pairs], ["train", *pairs, "--resume", "starter"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "'starter' is the model inside the package" in err, err
        assert "cytomask train --from starter" in err
        assert ("to tune a copy, give -o NEW.safetensors" in err) == (argv[0] == "tune")


def test_tune_writes_a_tuned_copy_and_keeps_the_model_it_tunes(
    folders, unet_checkpoint, tmp_path, capsys
):
    """tune could only rewrite the model it tuned: the starter model could not be tuned at
    all, and a checkpoint of one's own could not be kept as it was."""
    from napari_cytomask.models.catalog import starter_path

    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif"),
             "--batch-size", "1", "--threads", "1", "-q"]  # fmt: skip
    own = unet_checkpoint(tile_size=128)
    kept = {path: path.read_bytes() for path in (starter_path(), own)}
    for model, name in (("starter", "tuned-starter"), (str(own), "tuned-own")):
        tuned = tmp_path / f"{name}.safetensors"
        assert main(["tune", model, *pairs, "-o", str(tuned.with_suffix(""))]) == 0
        assert capsys.readouterr().out.splitlines() == [str(tuned)]
        assert "postprocess" in read_description(tuned)
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert "postprocess" not in read_description(own)
    argv = ["tune", str(own), *pairs, "-o", str(tuned)]
    assert main(argv) == 1
    assert "already exists and was left as it is; choose another -o file, or pass --overwrite" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [
        "tuned-own.safetensors", "tuned-starter.safetensors"]  # fmt: skip
    assert not list(tmp_path.glob(".cytomask-tune-*"))  # the copy's folder is gone


def test_export_of_a_folder_leaves_out_the_images_results_were_made_from(
    folders, unet_checkpoint, tmp_path, capsys
):
    data, _ = folders
    model = unet_checkpoint(tile_size=128)
    segment = ["segment", str(data / "set0" / "raw.tif"), "-m", str(model), "--scheduler",
               "synchronous", "--threads", "1", "-q"]  # fmt: skip
    assert main(segment) == 0  # the result goes beside the image: set0 holds both
    capsys.readouterr()
    assert main(["export", str(data / "set0"), "-o", str(tmp_path / "exported"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "1 image(s) that results were made from are not labels and were left out" in err
    exported = sorted(p.name for p in (tmp_path / "exported").glob("*.tif"))
    assert exported == ["mask.tif", "raw_unet_cells.tif"]  # not raw.tif
    # An image given by name is exported, with a note that it has no background.
    assert main(["export", str(data / "set0" / "raw.tif"), "-o", str(tmp_path / "raw")]) == 0
    assert "raw.tif has no background (no pixel is 0), so it may be an image" in (
        capsys.readouterr().err
    )


def test_files_with_dots_in_their_names_are_exported_apart(tmp_path, capsys):
    for i in (1, 2):
        tifffile.imwrite(tmp_path / f"s.{i}.tif", np.eye(8, dtype=np.uint8) * i)
    assert main(["export", str(tmp_path / "s.*.tif"), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["s.1.tif", "s.2.tif"]


def test_an_export_never_replaces_its_own_input(tmp_path, capsys):
    labels = tmp_path / "cells.tif"
    tifffile.imwrite(labels, np.eye(8, dtype=np.uint8), description="hand-corrected")
    before = labels.read_bytes()
    assert main(["export", str(labels), "-o", str(tmp_path), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert (
        f"would replace {labels}, a file that images or labels are read from; nothing was written"
        in err
    )
    assert "Choose another output folder" in err and "--overwrite" not in err
    assert labels.read_bytes() == before and sorted(tmp_path.iterdir()) == [labels]


@pytest.mark.parametrize("scan_named", [True, False], ids=["scan-named", "result-only"])
def test_an_export_never_replaces_the_scan_a_result_was_made_from(
    tmp_path, capsys, scan_and_mask, scan_named
):
    """other/well1.tif, a result of data/well1.tif, exported into data/ with --overwrite was
    written over the scan, whether the scan was named (and left out) or not."""
    scan, result = scan_and_mask("other")
    record = {"source": str(scan), "output": "well1.tif", "preset": {"method": "unet"}}
    (tmp_path / "other" / "well1.json").write_text(json.dumps(record))
    before = scan.read_bytes()
    named = [str(scan)] if scan_named else []
    argv = ["export", *named, str(result), "-o", str(scan.parent)]
    assert main([*argv, "--overwrite"]) == 1
    assert (
        f"would replace {scan}, a file that images or labels are read from"
        in capsys.readouterr().err
    )
    assert scan.read_bytes() == before and sorted(scan.parent.iterdir()) == [scan]


def test_evaluate_checks_its_output_before_measuring(tmp_path, capsys):
    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    for name in ("p.tif", "g.tif"):
        tifffile.imwrite(tmp_path / name, labels)
    argv = ["evaluate", "--pred", str(tmp_path / "p.tif"), "--gt", str(tmp_path / "g.tif")]
    assert main([*argv, "-o", str(tmp_path / "g.tif"), "--overwrite"]) == 1
    out = capsys.readouterr()
    assert "g.tif is one of the input files; choose another output file" in out.err
    assert out.out == ""  # nothing measured
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "g.tif"), labels)
    (tmp_path / "folder").mkdir()
    assert main([*argv, "-o", str(tmp_path / "folder"), "--overwrite"]) == 1
    out = capsys.readouterr()
    assert "folder is a folder; give a file name to write" in out.err and out.out == ""
    # An image of light given as the ground truth is pointed out.
    light = np.random.default_rng(0).integers(100, 4000, labels.shape, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", light)
    assert main([*argv, "-o", str(tmp_path / "m.csv")]) == 0
    assert (
        "g.tif has no background (no pixel is 0), so it may be an image rather than "
        "labels; compared as ground-truth labels." in capsys.readouterr().err
    )
    # And one given as the prediction.
    tifffile.imwrite(tmp_path / "g.tif", labels)
    tifffile.imwrite(tmp_path / "p.tif", light)
    assert main([*argv, "-o", str(tmp_path / "m.csv"), "--overwrite"]) == 0
    assert (
        "p.tif has no background (no pixel is 0), so it may be an image rather than "
        "labels; compared as predicted labels." in capsys.readouterr().err
    )
    # The ids of cells that cover the whole field (a confluent one) have no 0 either.
    tifffile.imwrite(tmp_path / "p.tif", labels + 1)
    assert main([*argv, "-o", str(tmp_path / "m.csv"), "--overwrite"]) == 0
    assert "note" not in capsys.readouterr().err


def test_evaluate_overwrites_an_earlier_table_but_never_an_image(tmp_path, capsys):
    """``-o scan.tif --overwrite`` (a name mistyped for the table's) replaced the scan
    beside the labels with the metrics CSV: found by benchmarks/fuzz_cli.py."""
    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    for name in ("p.tif", "g.tif"):
        tifffile.imwrite(tmp_path / name, labels)
    scan = tmp_path / "scan.tif"
    tifffile.imwrite(scan, np.arange(256, dtype=np.uint16).reshape(16, 16))
    before = scan.read_bytes()
    argv = ["evaluate", "--pred", str(tmp_path / "p.tif"), "--gt", str(tmp_path / "g.tif")]
    assert main([*argv, "-o", str(scan), "--overwrite"]) == 1
    out = capsys.readouterr()
    assert f"{scan} holds binary data (an image, a model or the like), not text" in out.err
    assert out.out == "" and scan.read_bytes() == before  # nothing measured, nothing lost
    # An earlier table is replaced, as --overwrite says.
    table = tmp_path / "metrics.csv"
    table.write_text("prediction,ground_truth\nold,old\n", encoding="utf-8")
    assert main([*argv, "-o", str(table), "--overwrite", "-q"]) == 0
    assert "old,old" not in table.read_text(encoding="utf-8")


def test_evaluate_refuses_a_folder_it_cannot_write_into_before_measuring(
    tmp_path, capsys, monkeypatch
):
    """As segment, export and train do: evaluate measured every pair, then failed to save."""
    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    for name in ("p.tif", "g.tif"):
        tifffile.imwrite(tmp_path / name, labels)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: path != read_only and access(path, mode, **kw)
    )
    argv = ["evaluate", "--pred", str(tmp_path / "p.tif"), "--gt", str(tmp_path / "g.tif")]
    for output in (read_only / "m.csv", read_only / "new" / "m.csv"):
        assert main([*argv, "-o", str(output)]) == 1
        out = capsys.readouterr()
        assert out.err.endswith(
            f"Could not write into {read_only}: there is no permission to write there. "
            "Nothing was written; choose another folder.\n"
        )
        assert out.out == ""  # nothing measured
    assert list(read_only.iterdir()) == []
    # A disk mounted read-only is said as such, as segment and export say it.
    statvfs = os.statvfs

    class Mounted:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: Mounted if p == read_only else statvfs(p))
    assert main([*argv, "-o", str(read_only / "m.csv")]) == 1
    assert f"Could not write into {read_only}: the disk is read-only." in capsys.readouterr().err


def test_segment_beside_scans_it_cannot_write_beside_names_the_way_out(
    folders, unet_checkpoint, capsys
):
    """Without -o, results go beside the scans: where they cannot be written (a read-only
    store of scans; here, a folder where the lock file goes), segment said "choose another
    folder" without saying how."""
    from napari_cytomask.io.atomic import LOCK_NAME

    data, _ = folders
    (data / "set0" / LOCK_NAME).mkdir()  # what holds the folder while it is written cannot be
    argv = ["segment", str(data / "set0" / "raw.tif"), "-m", str(unet_checkpoint(tile_size=96)),
            "--scheduler", "synchronous", "--threads", "1", "-q"]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().err.endswith(
        f"Could not write into {data / 'set0'}: a folder of that name is in the way. Nothing "
        "was written; choose another folder (-o puts the results in another).\n"
    )
    # Given -o, it is that folder that is to be changed.
    assert main([*argv, "-o", str(data / "set0")]) == 1
    assert capsys.readouterr().err.endswith("Nothing was written; choose another folder.\n")


def test_frames_whose_ground_truth_has_no_cell_are_left_out(tmp_path, capsys):
    """A time-lapse labelled at one time point of three: the other two were scored as
    every predicted cell wrong, as the metrics dock no longer does."""
    truth = np.zeros((3, 32, 32), np.uint16)
    truth[1, 2:12, 2:12], truth[1, 15:30, 15:30] = 1, 2
    for name, labels in (("gt.tif", truth), ("pred.tif", np.stack([truth[1]] * 3))):
        tifffile.imwrite(tmp_path / name, labels, imagej=True, metadata={"axes": "TYX"})
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif")]
    assert main([*argv, "-o", str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr()
    assert "F1@0.5 1.000" in out.out
    assert (
        "gt.tif has no cell in time points 0, 2, so they are left out of the comparison (label "
        "their cells to score them); the 4 cells predicted there are not counted as false "
        "positives.\n" in out.err
    )
    # The file says so too: the frames, and the cells no figure counts.
    with open(tmp_path / "m.csv", newline="") as handle:
        rows = [row[2:] for row in csv.reader(handle) if row[4] == "left_out"]
    assert rows == [["all", "", "left_out", "", "frames", "2"],
                    ["all", "", "left_out", "", "n_pred", "4"],
                    ["0", "", "left_out", "", "n_pred", "2"],
                    ["2", "", "left_out", "", "n_pred", "2"],
                    ["all", "", "left_out", "", "frames", "2"],
                    ["all", "", "left_out", "", "pairs", "0"],
                    ["all", "", "left_out", "", "n_pred", "4"]]  # fmt: skip


def test_a_mask_painted_with_one_id_in_the_frames_compared_is_taken_by_its_regions(
    tmp_path, capsys
):
    """One id over three cells in the frame compared, another id in a frame left out: the
    mask was judged whole (two ids: no binary mask), then scored as one cell, F1 0, with a
    note to call a Python function."""
    truth, painted = np.zeros((2, 64, 64), np.uint16), np.zeros((2, 64, 64), np.uint16)
    for i, (y, x) in enumerate([(5, 5), (5, 40), (40, 20)]):
        truth[0, y : y + 15, x : x + 15], painted[0, y : y + 15, x : x + 15] = i + 1, 1
    painted[1, 20:30, 20:30] = 2
    for name, labels in (("gt.tif", truth), ("pred.tif", painted)):
        tifffile.imwrite(tmp_path / name, labels, imagej=True, metadata={"axes": "TYX"})
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif")]
    assert main([*argv, "-o", str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr()
    assert "F1@0.5 1.000" in out.out and "regions_as_cells" not in out.err
    assert "pred.tif holds one value (1) for every cell, a binary mask: its 3 separate" in out.err
    assert "the 1 cell predicted there is not counted as a false positive." in out.err


def test_evaluate_says_why_scores_are_0_when_a_side_has_no_objects(tmp_path, capsys):
    """An empty prediction against an empty ground truth printed F1 0.000 and mSA 0.000 as
    if the segmentation were poor; the metrics dock says why."""
    truth = np.zeros((32, 32), np.uint16)
    tifffile.imwrite(tmp_path / "empty.tif", truth)
    tifffile.imwrite(tmp_path / "none.tif", truth)
    truth[2:12, 2:12] = 1
    tifffile.imwrite(tmp_path / "gt.tif", truth)
    for gt, note in (
        ("none", "the ground truth has no objects and the prediction has no objects"),
        ("gt", "the prediction has no objects"),
    ):
        argv = ["evaluate", "--pred", str(tmp_path / "empty.tif"), "--gt",
                str(tmp_path / f"{gt}.tif"), "-o", str(tmp_path / f"{gt}.csv")]  # fmt: skip
        assert main(argv) == 0
        assert (
            f"pixel IoU 0.000. Note: {note}, so ratios without a true positive are 0.\n"
            in capsys.readouterr().out
        )
    # Objects on both sides: no note.
    tifffile.imwrite(tmp_path / "pred.tif", truth)
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "-o", str(tmp_path / "same.csv")]  # fmt: skip
    assert main(argv) == 0
    assert "Note" not in capsys.readouterr().out


def test_labels_are_called_an_image_of_light_only_when_their_neighbours_differ(tmp_path, capsys):
    """Label ids saved as floats (1.0, 2.0), and labels of a confluent field (3% background),
    were said to look like an image of light, 'neighbouring pixels mostly differ', though
    over 90% are equal; labels with a negative id too, before the error that said why; and
    cells of 5 x 5 px one pixel apart, whose neighbours along a row differ at every edge,
    though no pixel differs from all its neighbours as a camera's do."""
    labels = np.zeros((64, 64), np.int32)
    labels[5:20, 5:20], labels[30:50, 10:30], labels[40:60, 40:60] = 1, 2, 3
    confluent = np.repeat(np.arange(1, 5, dtype=np.uint16), 16)[None, :].repeat(64, axis=0)
    confluent[:2] = 0
    negative = labels.copy()
    negative[40:60, 40:60] = -1
    yy, xx = np.mgrid[0:300, 0:300]
    small = np.where((yy % 6 < 5) & (xx % 6 < 5), (yy // 6) * 50 + xx // 6 + 1, 0)
    files = {"floats": labels.astype(np.float32), "confluent": confluent, "negative": negative,
             "small": small.astype(np.uint16)}  # fmt: skip
    for name, data in files.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", data)
        tifffile.imwrite(tmp_path / f"{name}_gt.tif", data)
    for name in ("floats", "confluent", "small"):
        argv = ["evaluate", "--pred", str(tmp_path / f"{name}.tif"), "--gt",
                str(tmp_path / f"{name}_gt.tif"), "-o", str(tmp_path / f"{name}.csv")]  # fmt: skip
        assert main(argv) == 0
        said = capsys.readouterr()
        assert "F1@0.5 1.000" in said.out and "cytomask: note" not in said.err
        assert main(["export", str(tmp_path / f"{name}.tif"), "-o", str(tmp_path / name)]) == 0
        assert "cytomask: note" not in capsys.readouterr().err
    argv = ["evaluate", "--pred", str(tmp_path / "floats.tif"), "--gt",
            str(tmp_path / "negative.tif"), "-o", str(tmp_path / "negative.csv")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cytomask: note" not in err
    assert f"error: {tmp_path / 'negative.tif'} has negative ids; label ids must be 0" in err


def test_binary_masks_and_images_of_light_given_as_labels_are_pointed_out(
    shared_data, tmp_path, capsys
):
    """A thresholded mask (0/255, as Fiji saves one) scored a perfect prediction F1 0.5 and
    exported as one 'cell' of three blobs; an image of light exported as 233 'cells'. Both
    without a word."""
    gt = np.zeros((32, 32), np.uint16)
    gt[2:12, 2:12], gt[15:30, 15:30], gt[2:10, 20:30] = 1, 2, 3
    tifffile.imwrite(tmp_path / "gt.tif", gt)
    tifffile.imwrite(tmp_path / "binary.tif", ((gt > 0) * 255).astype(np.uint8))
    for pred, truth, which in (("gt", "binary", "ground-truth"), ("binary", "gt", "predicted")):
        argv = ["evaluate", "--pred", str(tmp_path / f"{pred}.tif"), "--gt"]
        out_csv = tmp_path / f"{pred}.csv"
        assert main([*argv, str(tmp_path / f"{truth}.tif"), "-o", str(out_csv)]) == 0
        out = capsys.readouterr()
        assert "F1@0.5 1.000, mean-average F1 1.000" in out.out
        assert (
            "binary.tif holds one value (255) for every cell, a binary mask: its 3 separate "
            f"regions are taken as the cells (cells that touch stay one); compared as {which} "
            "labels." in out.err
        )
    assert main(["export", str(tmp_path / "binary.tif"), "-o", str(tmp_path / "out")]) == 0
    assert "its 3 separate regions are taken as the cells" in capsys.readouterr().err
    exported = tifffile.imread(tmp_path / "out" / "binary.tif")
    assert exported.max() == 3 and np.array_equal(exported > 0, gt > 0)
    # Label ids are left as they are, and one cell is one cell.
    single = (gt == 2).astype(np.uint8)
    tifffile.imwrite(tmp_path / "single.tif", single)
    assert main(["export", str(tmp_path / "single.tif"), str(tmp_path / "gt.tif"), "-o",
                 str(tmp_path / "out2")]) == 0  # fmt: skip
    assert "cytomask: note" not in capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out2" / "single.tif"), single)
    # Labels with no cell (a frame where none was found) are compared as they are.
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros_like(gt))
    argv = ["evaluate", "--pred", str(tmp_path / "empty.tif"), "--gt", str(tmp_path / "gt.tif")]
    assert main([*argv, "-o", str(tmp_path / "empty.csv")]) == 0
    assert "F1@0.5 0.000" in capsys.readouterr().out
    # A binary volume's regions are 3-D: two blobs through 5 slices are 2 cells, not 10.
    volume = np.zeros((5, 32, 32), np.uint16)
    volume[:, 2:12, 2:12], volume[:, 15:30, 15:30] = 1, 2
    tifffile.imwrite(tmp_path / "v.tif", volume, imagej=True, metadata={"axes": "ZYX"})
    binary = ((volume > 0) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "vb.tif", binary, imagej=True, metadata={"axes": "ZYX"})
    argv = ["evaluate", "--pred", str(tmp_path / "v.tif"), "--gt", str(tmp_path / "vb.tif")]
    assert main([*argv, "-o", str(tmp_path / "v.csv")]) == 0
    out = capsys.readouterr()
    assert "its 2 separate regions are taken as the cells" in out.err
    assert "F1@0.5 1.000" in out.out
    # A fluorescence image given as labels.
    image = shared_data / "nuclei-dsb" / "img2d.tif"
    assert main(["export", str(image), "-o", str(tmp_path / "out3")]) == 0
    assert (
        "img2d.tif looks like an image of light rather than label ids (neighbouring pixels "
        "mostly differ, as a camera's do); exported as labels." in capsys.readouterr().err
    )


def test_training_on_binary_masks_takes_their_regions_as_the_cells_and_says_so(
    folders, tmp_path, capsys
):
    """Trained on 0/1 masks (a threshold, as Fiji saves one), a network was validated
    against one 'cell' per image: "val mean-average F1 0.000 (best, saved)" whatever it
    learnt, and tuning's cell sizes were fractions of the whole foreground; no word."""
    from skimage.measure import label

    data, scan = folders
    for i in range(3):
        tifffile.imwrite(data / f"set{i}" / "mask.tif", (scan.labels[i] > 0).astype(np.uint8))
    images, masks = str(data / "set*" / "raw.tif"), str(data / "set*" / "mask.tif")
    argv = ["train", "--images", images, "--masks", masks, *TINY, *QUICK, "--threads", "1",
            "--no-tune", "-q", "-o", str(tmp_path / "m.safetensors")]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    for i in range(3):
        regions = label(scan.labels[i] > 0, connectivity=1).max()
        assert (
            f"cytomask: note: mask {data / f'set{i}' / 'mask.tif'} holds one value (1) for "
            f"every cell, a binary mask: its {regions} separate regions are taken as the "
            "cells (cells that touch stay one).\n" in err
        )


def test_more_options_are_explained_in_their_own_words(tmp_path, folders, capsys):
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    assert main(["train", *pairs, "--split", "0,0,1"]) == 2
    assert "with a training share above 0, got '0,0,1'" in capsys.readouterr().err
    # Words and numbers that are none (benchmarks/fuzz_cli.py found Python's own words here).
    for split in ("a,b,c", "nan,0.1,0.1", "0.8,inf,0.1", "0.8,0.1"):
        assert main(["train", *pairs, "--split", split]) == 2
        err = capsys.readouterr().err
        assert (
            f"expected three numbers of 0 or more (train,validation,test, e.g. 0.8,0.1,0.1) "
            f"with a training share above 0, got {split!r}" in err
        ), err
        assert "could not convert" not in err
    assert main(["train", *pairs, *TINY, "--crop-size", "60"]) == 1
    assert "--crop-size 60 must be a multiple of 8 for an encoder of depth 3" in (
        capsys.readouterr().err
    )
    scan = tmp_path / "scan.tif"
    tifffile.imwrite(scan, np.zeros((3, 16, 16), np.uint16), imagej=True, metadata={"axes": "CYX"})
    from napari_cytomask.io.files import read_channels

    with pytest.raises(ValueError, match=r"^\S*scan.tif has no channel 7; its channels are 0 \("):
        read_channels(str(scan), [7], 1)


def test_segment_says_and_records_which_channel_of_a_scan_it_used(
    unet_checkpoint, tmp_path, capsys
):
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=2)
    data = np.stack([scan.fluorescence[0], scan.brightfield[0], scan.labels[0]])
    path = tmp_path / "three.tif"
    tifffile.imwrite(path, data.astype(np.uint16), imagej=True, metadata={"axes": "CYX"})
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(path), "-m", str(model), "--scheduler", "synchronous", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "three_unet_cells.json").read_text())
    assert record["channels_used"] == [0]
    # The file names no channel: what was taken is said to be a guess.
    assert (
        "three.tif (channel 0 of 3: none is named like transmitted light, so the first was "
        "taken; --channel N picks another): "
    ) in out
    assert record["channel_guessed"] == "first"
    assert main([*argv, "--channel", "1", "--overwrite"]) == 0
    assert json.loads((tmp_path / "three_unet_cells.json").read_text())["channels_used"] == [1]
    assert "three.tif (channel 1 of 3): " in capsys.readouterr().out
    # The export's provenance names the channel too.
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "three_unet_cells.tif"), "-o", str(out)]) == 0
    provenance = json.loads((out / "three_unet_cells_provenance.json").read_text())
    assert (provenance["channel_index"], provenance["channel_name"]) == (1, "C2")


def test_segment_takes_the_phase_beside_a_stain_by_its_pixels_and_says_so(
    unet_checkpoint, shared_data, tmp_path, capsys
):
    """A [GFP, phase] file without channel names had its stain segmented ("the first was
    taken"): the phase channel is taken, and the run says why."""
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:96, :96]
    stain = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")[:96, :96]
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, np.stack([stain.astype(np.uint16) * 40, phase]))
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(path), "-m", str(model), "--scheduler", "synchronous", "--threads", "1"]
    assert main(argv) == 0
    assert (
        "two.tif (channel 1 of 2: none is named like transmitted light, so this one's pixels "
        "look like it, the others' like fluorescence; --channel N picks another): "
    ) in capsys.readouterr().out
    record = json.loads((tmp_path / "two_unet_cells.json").read_text())
    assert (record["channels_used"], record["channel_guessed"]) == ([1], "pixels")


def _bluish_picture(shared_data) -> np.ndarray:
    """Phase-contrast cells as a colour camera with a daylight (blue) tint takes them."""
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[160:352, 160:352]
    low, high = np.percentile(raw, (0.5, 99.5))
    light = np.clip((raw.astype(np.float32) - low) / (high - low), 0, 1)
    return np.round(np.stack([light * 0.06, light * 0.6, light], -1) * 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("name", "depth"),
    [("colour.tif", np.uint8), ("colour.tif", np.uint16), ("colour.png", np.uint8)],
)
def test_segment_takes_a_colour_pictures_grey_version_and_says_so(
    shared_data, tmp_path, capsys, name, depth
):
    """The model of one channel was given the red alone, without a word: a bluish
    picture's faint red lost cells its grey version shows. So it was still of a 16-bit
    colour TIFF or a PNG, which open as their red, green and blue channels."""
    import imageio.v3 as iio

    from napari_cytomask.pipeline import Preset, Segmenter, UNetStep
    from napari_cytomask.progress import drain

    picture = _bluish_picture(shared_data).astype(depth) * (257 if depth == np.uint16 else 1)
    if name.endswith(".png"):
        iio.imwrite(tmp_path / name, picture)
    else:
        tifffile.imwrite(tmp_path / name, picture, photometric="rgb")
    argv = ["segment", str(tmp_path / name), "--no-tta", "--scheduler", "synchronous"]
    assert main(argv) == 0
    said = capsys.readouterr()
    assert f"{name} (grey version of the colour picture): " in said.out
    record = json.loads((tmp_path / "colour_unet_cells.json").read_text())
    assert record["channels_used"] == [0, 1, 2]
    assert record["segmented_on"] == "grey version of the colour picture"
    cells = tifffile.imread(tmp_path / "colour_unet_cells.tif")
    segmenter = Segmenter(Preset(unet=UNetStep(tta=False)), "cpu")
    grey = picture.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(cells, drain(segmenter.iter_segment([grey])))
    assert cells.max() > drain(segmenter.iter_segment([picture[..., 0]])).max()


def test_segment_says_what_to_try_when_it_finds_no_cells(unet_checkpoint, tmp_path, capsys):
    """'0 cells' and nothing else: the dock says what to try, the command line did not."""
    scan = make_tilescan(n_tiles=1, shape=(96, 96), seed=2)
    path = tmp_path / "phase.tif"
    tifffile.imwrite(path, scan.brightfield[0])
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(path), "-m", str(model), "--scheduler", "synchronous", "--threads",
            "1", "--foreground-threshold", "1"]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr()
    assert ": 0 cells in " in said.out
    # Fine-tuning the model used, not the starter model; one channel: no --channel.
    assert (
        f"cytomask: note: {path}: No cells found: lower --interior-threshold, "
        "--foreground-threshold or --min-size. For images unlike the model's (the starter "
        "model knows phase contrast only), fine-tune it on a few labelled images (cytomask "
        f"train --from {model}), or try --method sam2, which needs no training.\n"
    ) in said.err
    # Several channels: was it the one to segment?
    two = tmp_path / "two.tif"
    tifffile.imwrite(two, np.stack([scan.brightfield[0], scan.fluorescence[0]]).astype(np.uint16),
                     imagej=True, metadata={"axes": "CYX"})  # fmt: skip
    assert main([argv[0], str(two), *argv[2:]]) == 0
    assert (
        f"cytomask: note: {two}: No cells found: is it the channel to segment (--channel N)? "
        "If it is, lower --interior-threshold"
    ) in capsys.readouterr().err
    # Cells found: no advice.
    assert main([*argv[:-2], "--min-size", "0", "--overwrite"]) == 0
    said = capsys.readouterr()
    assert ": 0 cells in " not in said.out and "No cells found" not in said.err
    # Said once: the starter model, unsure of the image, has said to fine-tune it, and
    # lower thresholds are not said after it (they found 1 nucleus of 125).
    starter = [argv[0], str(path), *argv[4:], "--no-tta", "--overwrite"]
    assert main(starter) == 0
    err = capsys.readouterr().err
    assert "The starter model is unsure of this image" in err and "No cells found." in err
    assert err.count("fine-tune") == 1 and "lower" not in err


def test_segment_says_the_time_left_for_the_inputs_to_come(unet_checkpoint, tmp_path, capsys):
    """A batch of hundreds of images said how many were done, never how long the rest
    would take."""
    scan = make_tilescan(n_tiles=3, shape=(64, 64), seed=3)
    for k, image in enumerate(scan.brightfield):
        tifffile.imwrite(tmp_path / f"phase{k}.tif", image)
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(tmp_path), "-m", str(model), "--scheduler", "synchronous",
            "--threads", "1", "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 3, lines
    # Timed from the first input's end: the second tells the pace of the third.
    assert lines[0].endswith(" s") and lines[2].endswith(" s"), lines
    assert re.search(r"^\[2/3\] .*; about \d+ s left for the other 1$", lines[1]), lines


def test_segment_says_why_an_image_can_hold_no_cell(unet_checkpoint, tmp_path, capsys):
    """An image of no number, of one value or smaller than a cell was told to lower the
    thresholds or fine-tune the model (a 2 x 2 one that it looked saturated), where the
    U-Net dock says why no setting finds cells there."""
    images = {
        "nan": np.full((96, 96), np.nan, np.float32),
        "flat": np.full((96, 96), 700, np.uint16),
        "tiny": np.array([[1, 2], [3, 4]], np.uint16),
    }
    for name, pixels in images.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", pixels)
    # The starter model: a random one finds a cell in an image of one value.
    argv = ["segment", *(str(tmp_path / f"{name}.tif") for name in images), "--scheduler",
            "synchronous", "--threads", "1", "--no-tta"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    for name, reason in (
        ("nan", "no pixel of the image is a number (all NaN or infinite)"),
        ("flat", "every pixel of the image has the same value (700): it shows nothing"),
        ("tiny", "the image (2×2 px) is smaller than the minimum cell size (570 px)"),
    ):
        assert f"cytomask: note: {tmp_path / name}.tif: No cells found: {reason}.\n" in err
    assert "lower --" not in err and "saturated" not in err


def test_segment_skips_masks_beside_their_images(folders, unet_checkpoint, capsys):
    """A folder in Usiigaci's layout had its mask segmented as if it were an image."""
    data, _ = folders
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(data / "set0"), "-m", str(model), "--scheduler", "synchronous",
            "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    assert (
        f"cytomask: note: {data / 'set0' / 'mask.tif'} holds label ids only (a mask): "
        "skipped; --channel 0 segments it anyway." in capsys.readouterr().err
    )
    assert sorted(p.name for p in (data / "set0").glob("*_cells.json")) == ["raw_unet_cells.json"]
    assert main([*argv[:1], str(data / "set1" / "mask.tif"), *argv[2:]]) == 1
    assert "every input holds label ids only (masks)" in capsys.readouterr().err
    # A black image reads as an empty mask; it was called a mask.
    tifffile.imwrite(data / "set0" / "dark.tif", np.zeros((64, 64), np.uint16))
    assert main([*argv[:1], str(data / "set0" / "dark.tif"), *argv[2:]]) == 1
    err = capsys.readouterr().err
    assert (
        f"cytomask: note: {data / 'set0' / 'dark.tif'} shows nothing (every pixel is 0): "
        "skipped; --channel 0 segments it anyway." in err
    )
    assert "holds label ids only (a mask)" not in err
    # Asked for, it is segmented.
    assert main([*argv[:1], str(data / "set1" / "mask.tif"), *argv[2:], "--channel", "0"]) == 0
    assert (data / "set1" / "mask_unet_cells.json").is_file()


def test_segment_says_how_to_save_a_file_with_its_colours_or_masks_on_the_last_axis(
    unet_checkpoint, tmp_path, capsys
):
    """An array of 24 x 24 x 3 saved by tifffile reads as 24 images 3 pixels wide: segment
    answered with Python ('pass one colour (image[..., 0])'), and called true/false masks
    a colour picture."""
    masks, colour = tmp_path / "masks.tif", tmp_path / "colour.tif"
    tifffile.imwrite(masks, np.zeros((24, 24, 3), bool))
    picture = np.random.default_rng(0).integers(1, 255, (24, 24, 3), dtype=np.uint8)
    tifffile.imwrite(colour, picture, photometric="minisblack")
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(masks), str(colour), "-m", str(model), "--scheduler", "synchronous",
            "--threads", "1"]  # fmt: skip
    assert main(argv) == 1  # true/false pixels are a mask's: left out, said
    assert f"note: {masks} shows nothing (every pixel is 0): skipped" in capsys.readouterr().err
    assert main([*argv, "--channel", "0"]) == 1  # segmented all the same
    err = capsys.readouterr().err
    assert "image[" not in err and "axis=" not in err, err
    assert (
        f"{masks}: error: masks.tif holds true/false (binary) pixels laid out as 24 x 24 x 3, "
        "which reads as 24 images of 24 x 3 pixels, too narrow to segment: most likely 3 masks "
        "of 24 x 24 pixels, saved with the masks on the last axis. True/false pixels are a "
        "mask, not a microscope image: segment the image the masks were made from, or save "
        "each mask as its own 24 x 24 image to segment it.\n"
    ) in err
    assert (
        f"{colour}: error: colour.tif holds pixels laid out as 24 x 24 x 3, which reads as 24 "
        "images of 24 x 3 pixels, too narrow to segment: most likely a colour picture of 24 x "
        "24 pixels, saved without saying that its last axis holds 3 colours. Save it again as "
        "an RGB TIFF (its colours are then channels, and --channel N picks one), or each "
        "colour as its own 24 x 24 image.\n"
    ) in err
    assert not list(tmp_path.glob("*_unet_cells*"))


def test_segment_settings_that_cannot_work_stop_before_any_input(unet_checkpoint, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.uint16))
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(tmp_path / "a.tif"), "-m", str(model), "--scheduler", "synchronous"]
    for options, message in (
        (["--tile-size", "30"], "a tile overlap of 64 px needs tiles larger than that; the "
                                "tiles are 32 px (the tile size 30's, in multiples of 8)"),
        (["--overlap", "200"], "the tiles are 128 px (the model's"),
        (["--device", "gpu"], "'gpu' is not a device name; choose one of auto, cpu."),
    ):  # fmt: skip
        assert main([*argv, *options]) == 1, options
        err = capsys.readouterr().err
        assert message in err and "[1/1]" not in err, err
    assert not list(tmp_path.glob("a_unet_cells*"))


def test_segment_never_replaces_a_file_it_did_not_make(unet_checkpoint, tmp_path, capsys):
    """A hand-corrected mask saved under the result's name, without the run's record, is
    not replaced unless --overwrite says so."""
    scan = make_tilescan(n_tiles=1, shape=(64, 64), seed=3)
    image = tmp_path / "raw1.tif"
    tifffile.imwrite(image, scan.brightfield[0])
    corrected = tmp_path / "raw1_unet_cells.tif"
    tifffile.imwrite(corrected, scan.labels[0])
    before = corrected.read_bytes()
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(image), "-m", str(model), "--scheduler", "synchronous"]
    assert main(argv) == 1
    assert (
        f"{corrected} is there already, and no run of cytomask segment made it (it has no "
        "raw1_unet_cells.json); move it, pass --overwrite to replace it"
    ) in capsys.readouterr().err
    assert corrected.read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0
    assert corrected.read_bytes() != before


def test_version_says_the_installed_packages(capsys):
    """`cytomask --version` was refused: a command was required. It names the code that
    runs, as every provenance does: run from a git checkout (an editable install), the
    commit, where the version the install recorded was that of the commit it was installed
    at (a provenance named code 26 commits older than the code that made its figures)."""
    from napari_cytomask import __version__
    from napari_cytomask.io.export import package_versions

    assert main(["--version"]) == 0
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and __version__ in said
    assert package_versions()["napari-cytomask"] == said.removeprefix("cytomask ").strip()
    checkout = Path(napari_cytomask.__file__).resolve().parents[2]
    if (checkout / ".git").exists():  # the tests run from a checkout, not an installed wheel
        command = ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"]
        head = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
        assert said.startswith(f"cytomask git {head}")


def test_segment_writes_no_result_into_the_package_beside_its_sample(
    unet_checkpoint, tmp_path, capsys, monkeypatch
):
    """Without -o, the sample scan's results went into the installed package's folder."""
    from napari_cytomask._sample_data import sample_scan_path
    from napari_cytomask.batch import BatchError, output_folders

    sample = Path(sample_scan_path())
    with pytest.raises(BatchError, match="pass -o/--output-dir"):
        output_folders([sample], None)
    monkeypatch.chdir(sample.parent)  # named from its own folder
    with pytest.raises(BatchError):
        output_folders([Path(sample.name)], None)
    assert output_folders([sample], tmp_path) == [tmp_path]
    before = sorted(sample.parent.iterdir())
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(sample), "-m", str(model), "--scheduler", "synchronous", "-q"]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"cytomask segment: error: {sample} lies in the napari-cytomask package, which is no "
        "place for its results; pass -o/--output-dir to write them elsewhere.\n"
    )
    assert sorted(sample.parent.iterdir()) == before


def test_names_long_or_like_patterns_are_segmented_exported_and_evaluated(
    unet_checkpoint, tmp_path, capsys, monkeypatch
):
    """An input name of 240 bytes (legal) stopped the whole run: its outputs' names were
    too long for a file. ``scan[1].tif`` was taken as a pattern that matched nothing."""
    from napari_cytomask.io.atomic import NAME_BYTES

    scan = make_tilescan(n_tiles=1, shape=(64, 64), seed=3)
    long = tmp_path / ("細" * 80 + ".tif")
    bracketed = tmp_path / "scan[1].tif"
    for path in (long, bracketed):
        tifffile.imwrite(path, scan.brightfield[0])
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(long), str(bracketed), "-m", str(model), "--scheduler",
            "synchronous", "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(made) == 4 and "scan[1]_unet_cells.tif" in made
    assert all(len(name.encode()) <= NAME_BYTES for name in made)
    labels = next((tmp_path / "out").glob("細*_unet_cells.tif"))
    assert main(["export", str(labels), str(tmp_path / "out" / "scan[1]_unet_cells.tif"),
                 "-o", str(tmp_path / "export"), "-q"]) == 0  # fmt: skip
    truth = tmp_path / "truth[1].tif"
    tifffile.imwrite(truth, scan.labels[0])
    pred = str(tmp_path / "out" / "scan[1]_unet_cells.tif")
    # A file named like an option is said to be one.
    dashed = tmp_path / "-scan.tif"
    tifffile.imwrite(dashed, scan.brightfield[0])
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "-scan.tif", "-m", str(model)]) == 2
    assert "(a file named like an option: write it as ./-scan.tif)" in capsys.readouterr().err
    assert main(["evaluate", "--pred", "-scan.tif", "--gt", str(truth)]) == 2
    assert "expected one argument (a file named like an option: write it as ./-scan.tif)" in (
        capsys.readouterr().err
    )
    # A folder named with brackets is a pattern: the message says how to write it.
    (tmp_path / "plate[A1]").mkdir()
    assert main(["segment", str(tmp_path / "plate[A1]" / "*.tif")]) == 1
    assert "write [[] for each [ that is part of a name" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "scan[[]1].tif"), "-m", str(model), "-o",
                 str(tmp_path / "again"), "--scheduler", "synchronous"]) == 0  # fmt: skip
    csv_path = str(tmp_path / "m.csv")
    assert main(["evaluate", "--pred", pred, "--gt", str(truth), "-o", csv_path, "-q"]) == 0


def test_the_readers_warnings_are_one_line_notes(tmp_path, capsys):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.full((16, 16), 5, np.uint16), metadata=None)
        tif.write(np.eye(16, dtype=np.uint8), metadata=None)
    assert main(["export", str(path), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"cytomask: note: {path}: 1 page(s) of another pixel type, size or layout" in err
    assert "UserWarning" not in err


def test_evaluate_takes_an_image_saved_as_a_stack_of_one_as_that_image(tmp_path, capsys):
    """tifffile and ImageJ save one plane with an axis of length 1: either side of a pair
    can have it. Two planes against one image are still refused."""
    truth = np.asarray(make_tilescan(n_tiles=1, shape=(96, 96), cell_radius=10, seed=6).labels[0])
    tifffile.imwrite(tmp_path / "one.tif", truth)
    tifffile.imwrite(tmp_path / "stack1.tif", truth[None])
    tifffile.imwrite(tmp_path / "stack2.tif", np.stack([truth, truth]))
    for pred, gt in (("one", "stack1"), ("stack1", "one")):
        argv = ["evaluate", "--pred", str(tmp_path / f"{pred}.tif"), "--gt"]
        assert main([*argv, str(tmp_path / f"{gt}.tif"), "-o", str(tmp_path / f"{pred}.csv")]) == 0
        assert "F1@0.5 1.000" in capsys.readouterr().out
    argv = ["evaluate", "--pred", str(tmp_path / "one.tif"), "--gt", str(tmp_path / "stack2.tif")]
    assert main([*argv, "-o", str(tmp_path / "two.csv")]) == 1
    assert "has shape (2, 96, 96) but prediction has shape (96, 96)" in capsys.readouterr().err


def test_evaluate_says_when_the_pair_records_other_pixel_sizes(tmp_path, capsys):
    """Labels at 0.5 µm against a truth at 0.87 µm are compared pixel by pixel: the metrics
    dock said so, evaluate did not."""
    truth = np.asarray(make_tilescan(n_tiles=1, shape=(96, 96), cell_radius=10, seed=6).labels[0])
    for name, size in (("gt", 0.87), ("same", 0.87), ("other", 0.5)):
        tifffile.imwrite(tmp_path / f"{name}.ome.tif", truth,
                         metadata={"PhysicalSizeX": size, "PhysicalSizeY": size})  # fmt: skip
    gt = ["--gt", str(tmp_path / "gt.ome.tif")]
    for pred in ("same", "other"):
        argv = ["evaluate", "--pred", str(tmp_path / f"{pred}.ome.tif"), *gt]
        assert main([*argv, "-o", str(tmp_path / f"{pred}.csv")]) == 0
    err = capsys.readouterr().err
    assert err == (
        f"cytomask: note: {tmp_path / 'other.ome.tif'} records pixels of 0.5 µm and "
        f"{tmp_path / 'gt.ome.tif'} of 0.87 µm: they are compared pixel by pixel, so their "
        "cells may not line up (is one calibrated wrongly, or resampled?).\n"
    )


def test_evaluate_a_multi_frame_tiff_pair_frame_by_frame(tmp_path):
    """A 2-frame TIFF pair is scored per frame; without it frames pool into one 3-D volume."""
    scan = make_tilescan(n_tiles=2, shape=(96, 96), cell_radius=10, seed=6)
    truth = np.asarray(scan.labels[:2])
    # Frame 0 predicted exactly, frame 1 poorly (cells merged by dilation).
    guess = np.stack(
        [truth[0], np.maximum.reduce([np.roll(truth[1], s, 1) for s in (0, 4)])]
    ).astype(truth.dtype)
    tifffile.imwrite(tmp_path / "gt.tif", truth)
    tifffile.imwrite(tmp_path / "pred.tif", guess)
    csv_path = tmp_path / "m.csv"
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif")]
    assert main([*argv, "-q", "-o", str(csv_path)]) == 0
    per_frame = [evaluate(truth[i], guess[i]).mean_segmentation_accuracy for i in range(2)]
    assert per_frame[0] == 1.0 and per_frame[1] < 0.9
    rows = [
        r for r in csv.DictReader(csv_path.open()) if r["metric"] == "mean_segmentation_accuracy"
    ]
    values = {(r["prediction"], r["frame"]): float(r["value"]) for r in rows}
    pred_name = str(tmp_path / "pred.tif")
    assert values == {
        (pred_name, "all"): pytest.approx(np.mean(per_frame)),
        (pred_name, "0"): pytest.approx(per_frame[0]),
        (pred_name, "1"): pytest.approx(per_frame[1]),
        ("all", "all"): pytest.approx(np.mean(per_frame)),
    }


def test_evaluate_a_scan_of_positions_by_time_points_plane_by_plane(tmp_path):
    """Only the first axis was split: each position's time points were compared as one
    volume, where a cell keeping its id over time (as tracked masks have it) is one object.
    Each plane is a frame now, named by its position and time point."""
    from napari_cytomask.io.writers import write_labels

    scan = make_tilescan(n_tiles=6, shape=(64, 64), cell_radius=8, seed=2)
    truth = np.asarray(scan.labels[:6]).reshape(2, 3, 64, 64)
    truth[:, 1:] = truth[:, :1]  # the same cells, ids kept, at every time point
    guess = truth.copy()
    guess[1, 2] = np.roll(guess[1, 2], 5, axis=1)
    for name, data in (("gt", truth), ("pred", guess)):
        write_labels(tmp_path / f"{name}.ome.tif", data, axis_labels=("P", "T", "Y", "X"))
    csv_path = tmp_path / "m.csv"
    argv = ["evaluate", "--pred", str(tmp_path / "pred.ome.tif"), "--gt",
            str(tmp_path / "gt.ome.tif"), "-q", "-o", str(csv_path)]  # fmt: skip
    assert main(argv) == 0
    rows = [r for r in csv.DictReader(csv_path.open()) if r["prediction"] != "all"]
    accuracy = {r["frame"]: float(r["value"]) for r in rows
                if r["metric"] == "mean_segmentation_accuracy"}  # fmt: skip
    planes = {
        f"position {p}, time point {t}": evaluate(truth[p, t], guess[p, t])
        for p, t in np.ndindex(2, 3)
    }
    assert accuracy == pytest.approx(
        {"all": np.mean([e.mean_segmentation_accuracy for e in planes.values()])}
        | {frame: e.mean_segmentation_accuracy for frame, e in planes.items()}
    )
    n_true = {r["frame"]: float(r["value"]) for r in rows
              if r["metric"] == "n_true" and r["iou_threshold"] == "0.5"}  # fmt: skip
    assert n_true["all"] == sum(e.matches.n_true for e in planes.values())


def test_evaluate_writes_what_it_compared_beside_its_csv(tmp_path, capsys):
    """The CSV named two files and nothing else: not the settings, the version that
    measured, nor when. Its provenance goes beside it, as an export's does."""
    scan = make_tilescan(n_tiles=1, shape=(64, 64), seed=1)
    labels = np.asarray(scan.labels[0])
    tifffile.imwrite(tmp_path / "pred.tif", labels)
    tifffile.imwrite(tmp_path / "gt.tif", labels)
    csv_path = tmp_path / "m.csv"
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "--thresholds", "0.5", "-q", "-o", str(csv_path)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((tmp_path / "m_provenance.json").read_text(encoding="utf-8"))
    assert record["outputs"] == ["m.csv"]
    # Each file and its channel named as the metrics dock names a channel the reader opened:
    # the prediction was named by its file alone, under another key than the dock's.
    assert record["pairs"] == [
        {"prediction": {"source": str(tmp_path / "pred.tif"), "channel_index": 0,
                        "channel_name": "pred"},
         "ground_truth": {"source": str(tmp_path / "gt.tif"), "channel_index": 0,
                          "channel_name": "gt"}}
    ]  # fmt: skip
    assert record["settings"]["thresholds"] == [0.5] and record["settings"]["stack"] == "auto"
    assert record["versions"]["napari-cytomask"] == napari_cytomask.own_version()
    assert record["created"]
    # A scan's mask channel found without --mask-channel is named, where the settings say
    # None.
    phase = (np.asarray(scan.brightfield[0]) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", np.stack([phase, labels]), imagej=True,
                     metadata={"axes": "CYX", "Labels": ["Phase", "Cellpose"]})  # fmt: skip
    argv[4] = str(tmp_path / "scan.tif")
    assert main([*argv, "--overwrite"]) == 0
    record = json.loads((tmp_path / "m_provenance.json").read_text(encoding="utf-8"))
    truth = record["pairs"][0]["ground_truth"]
    assert (truth["channel_index"], truth["channel_name"]) == (1, "Cellpose")
    assert record["settings"]["mask_channel"] is None
    # A result of the plugin exported is named by the scan and channel it was made from, as
    # the dock names it reopened, the file compared beside them; labels drawn in no scan's
    # layer by their own file.
    from napari_cytomask.io.export import LabelsExport, export_labels

    made = LabelsExport(name="cells", labels=labels, method="unet", source=argv[4],
                        channel_index=0, channel_name="Phase")  # fmt: skip
    drawn = LabelsExport(name="drawn", labels=labels)
    export_labels([made, drawn], tmp_path / "out", formats=["tiff"], objects_csv=False)
    for name, named in (
        ("cells", (argv[4], 0, "Phase", str(tmp_path / "out" / "cells.tif"))),
        ("drawn", (str(tmp_path / "out" / "drawn.tif"), None, None, None)),
    ):
        argv[2] = str(tmp_path / "out" / f"{name}.tif")
        assert main([*argv, "--overwrite"]) == 0
        record = json.loads((tmp_path / "m_provenance.json").read_text(encoding="utf-8"))
        pred = record["pairs"][0]["prediction"]
        keys = ("source", "channel_index", "channel_name", "labels_file")
        assert tuple(pred.get(key) for key in keys) == named


def test_evaluate_opens_each_file_once_to_name_its_channel(tmp_path, monkeypatch):
    """To name the ground truth's channel, a scan's metadata were read twice more per pair
    besides reading its labels (each time its channels' roles guessed anew): once for its
    channels, once more to tell one of them from the whole file."""
    from napari_cytomask.io import files

    scan = make_tilescan(n_tiles=1, shape=(64, 64), seed=1)
    labels = np.asarray(scan.labels[0])
    phase = (np.asarray(scan.brightfield[0]) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", np.stack([phase, labels]), imagej=True,
                     metadata={"axes": "CYX", "Labels": ["Phase", "Cellpose"]})  # fmt: skip
    tifffile.imwrite(tmp_path / "pred.tif", labels)
    opened, open_scan = [], files.open_scan

    def counted(path, **kwargs):
        opened.append(Path(path).name)
        return open_scan(path, **kwargs)

    monkeypatch.setattr(files, "open_scan", counted)
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "scan.tif"),
            "-q", "-o", str(tmp_path / "m.csv")]  # fmt: skip
    assert main(argv) == 0
    # Each file once to read its labels (read_labels), once to name their channel.
    assert sorted(opened) == ["pred.tif", "pred.tif", "scan.tif", "scan.tif"]
    record = json.loads((tmp_path / "m_provenance.json").read_text(encoding="utf-8"))
    truth = record["pairs"][0]["ground_truth"]
    assert (truth["channel_index"], truth["channel_name"]) == (1, "Cellpose")


def test_evaluate_of_one_frame_against_a_stack_says_how_to_pick_the_frame(tmp_path, capsys):
    """A ground truth of one frame against a prediction of three was refused as labels of
    another image, with no way to compare that frame."""
    labels = np.asarray(make_tilescan(n_tiles=1, shape=(64, 64), seed=1).labels[0])
    tifffile.imwrite(tmp_path / "pred.tif", np.stack([labels] * 3))
    tifffile.imwrite(tmp_path / "gt.tif", labels)
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "-q", "-o", str(tmp_path / "m.csv")]  # fmt: skip
    assert main(argv) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert (
        f"To compare one frame, write the frames of {tmp_path / 'pred.tif'} to files of their "
        f"own with cytomask export {tmp_path / 'pred.tif'} --format png -o FOLDER, and give "
        "that frame's file as --pred." in said
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_evaluate_into_a_folder_it_cannot_write_fails_before_measuring(
    tmp_path, capsys, monkeypatch
):
    """-o /proc/x.csv measured every pair, then failed at the write: the folder's
    permissions let it pass (as they let any folder pass for root)."""
    from napari_cytomask.io import atomic

    monkeypatch.setattr(atomic, "not_writable", lambda folder: None)
    labels = np.asarray(make_tilescan(n_tiles=1, shape=(64, 64), seed=1).labels[0])
    tifffile.imwrite(tmp_path / "pred.tif", labels)
    tifffile.imwrite(tmp_path / "gt.tif", labels)
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "-o", "/proc/x.csv"]  # fmt: skip
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "F1@" not in out  # nothing measured
    assert "Could not write into /proc" in err


@pytest.mark.parametrize("named", ["gt", "pred"])
def test_evaluate_names_each_frame_by_its_well(tmp_path, named):
    """The CSV gave a plate's frames by number only ("1,2"): the scan's (or the result's
    OME-TIFF's) names of the positions go beside them, in a column of their own."""
    from napari_cytomask.io.writers import write_labels

    scan = make_tilescan(n_tiles=4, shape=(64, 64), cell_radius=8, seed=4)
    truth = np.asarray(scan.labels[:4]).reshape(2, 2, 64, 64)
    wells = ("B03 – 10x", "C05, ctrl")
    for name in ("gt", "pred"):
        names = wells if name == named else None
        write_labels(tmp_path / f"{name}.ome.tif", truth, axis_labels=("P", "T", "Y", "X"),
                     position_names=names)  # fmt: skip
    csv_path = tmp_path / "m.csv"
    argv = ["evaluate", "--pred", str(tmp_path / "pred.ome.tif"), "--gt",
            str(tmp_path / "gt.ome.tif"), "-q", "-o", str(csv_path)]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert list(rows[0])[:4] == ["prediction", "ground_truth", "frame", "position_name"]
    named_as = {(r["prediction"] == "all", r["frame"], r["position_name"]) for r in rows}
    assert named_as == {(False, "all", ""), (True, "all", ""),
                        (False, "position 0, time point 0", wells[0]),
                        (False, "position 0, time point 1", wells[0]),
                        (False, "position 1, time point 0", wells[1]),
                        (False, "position 1, time point 1", wells[1])}  # fmt: skip
    if named == "pred":  # a ground truth whose file names no axis (a stack saved from Fiji)
        write_labels(tmp_path / "pred.ome.tif", truth[:, 0], axis_labels=("P", "Y", "X"),
                     position_names=wells, overwrite=True)  # fmt: skip
        tifffile.imwrite(tmp_path / "gt.tif", truth[:, 0])
        argv[4] = str(tmp_path / "gt.tif")
        assert main([*argv, "--overwrite"]) == 0
        rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
        named_as = {(r["frame"], r["position_name"]) for r in rows if r["prediction"] != "all"}
        assert named_as == {("all", ""), ("0", wells[0]), ("1", wells[1])}


def test_export_keeps_every_position_of_an_ome_tiff(tmp_path):
    """Label files were read by their first series only: exporting (or evaluating) an
    OME-TIFF with one image per position, as the plugin writes a scan, kept position 0."""
    from napari_cytomask.io.writers import write_labels

    labels = np.asarray(make_tilescan(n_tiles=2, shape=(64, 64), cell_radius=8, seed=2).labels)
    write_labels(tmp_path / "scan.ome.tif", labels[:2], axis_labels=("P", "Y", "X"))
    assert main(["export", str(tmp_path / "scan.ome.tif"), "-o", str(tmp_path / "out"), "-q",
                 "--format", "npy"]) == 0  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "scan.npy"), labels[:2])


@pytest.mark.parametrize("beside", [True, False], ids=["beside-the-scans", "output-folder"])
def test_results_moved_with_their_scans_are_exported_as_before(
    unet_checkpoint, tmp_path, capsys, beside
):
    """Moved (to a shared drive, say), a folder of results lost its scans: export took the
    scans beside the results for labels, and measured no intensity in the cells, unsaid."""
    project = tmp_path / "project"
    (project / "scans").mkdir(parents=True)
    scan = np.random.default_rng(1).integers(0, 4000, (96, 96), dtype=np.uint16)
    tifffile.imwrite(project / "scans" / "scan é.tif", scan)
    results = project / ("scans" if beside else "results")
    segment = ["segment", str(project / "scans" / "scan é.tif"), "-m",
               str(unet_checkpoint(tile_size=96)), "-q", "--scheduler", "synchronous",
               "--threads", "1", *([] if beside else ["-o", str(results)])]  # fmt: skip
    assert main(segment) == 0
    moved = tmp_path / "shared drive"
    project.rename(moved)
    capsys.readouterr()
    exported = tmp_path / "exported"
    assert main(["export", str(moved / results.name), "-o", str(exported), "-q"]) == 0
    assert sorted(p.name for p in exported.glob("*.tif")) == ["scan é_unet_cells.tif"]
    header = (exported / "scan é_unet_cells_objects.csv").read_text().splitlines()[0]
    assert "mean_intensity" in header.split(",")
    provenance = json.loads((exported / "scan é_unet_cells_provenance.json").read_text())
    assert provenance["source"] == str(moved / "scans" / "scan é.tif")
    assert "is not there" not in capsys.readouterr().err
    # Another field of the camera in its place (of its size): its intensities were
    # measured in the cells, unsaid.
    other = np.random.default_rng(2).integers(0, 4000, (96, 96), dtype=np.uint16)
    tifffile.imwrite(moved / "scans" / "scan é.tif", other)
    assert main(["export", str(moved / results.name), "-o", str(tmp_path / "other"), "-q"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "is not there any more (" in err
        and (
            "lies where it was looked for, but is another file: its size or its first and last "
            "bytes differ from those of the scan segmented)"
        )
        in err
    )
    header = (tmp_path / "other" / "scan é_unet_cells_objects.csv").read_text().splitlines()[0]
    assert not [c for c in header.split(",") if c.startswith("mean_")]
    # A scan that is gone is said, and its cells exported without intensities.
    (moved / "scans" / "scan é.tif").unlink()
    assert main(["export", str(moved / results.name), "-o", str(tmp_path / "again"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "scan é.tif, the scan scan é_unet_cells.tif was made from, is not there" in err
    header = (tmp_path / "again" / "scan é_unet_cells_objects.csv").read_text().splitlines()[0]
    assert not [c for c in header.split(",") if c.startswith("mean_")]


def test_export_of_one_folders_labels_in_two_formats(tmp_path, capsys):
    """mask.tif and mask.png of one folder were refused with a message naming neither
    ("'/_tmp_…_mask' and '/_tmp_…_mask' would both be saved as …"): their folders cannot
    tell them apart, their names do (as the dock names two layers "mask" of these files)."""
    import imageio.v3 as iio

    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    tifffile.imwrite(tmp_path / "mask.tif", labels)
    iio.imwrite(tmp_path / "mask.png", labels * 2)
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "mask.tif"), str(tmp_path / "mask.png"), "-o",
                 str(out), "-q"]) == 0, capsys.readouterr().err  # fmt: skip
    np.testing.assert_array_equal(tifffile.imread(out / "mask.tif mask.tif"), labels)
    np.testing.assert_array_equal(tifffile.imread(out / "mask.png mask.tif"), labels * 2)


def _two_cells() -> np.ndarray:
    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    labels[10:14, 10:14] = 2
    return labels


def test_export_again_keeps_each_files_earlier_name(tmp_path, capsys):
    """a/mask.tif and b/mask.tif exported one at a time, then together into the same
    folder, were written again under new names (a_mask, b_mask beside mask and b mask), no
    question asked: the folder's tables counted every cell twice. Each keeps the name of
    its earlier export, as the dock names it, and replaces it only with --overwrite; so
    does each exported alone after both were exported together."""
    a, b, out = tmp_path / "a" / "mask.tif", tmp_path / "b" / "mask.tif", tmp_path / "out"
    for path in (a, b):
        path.parent.mkdir()
        tifffile.imwrite(path, _two_cells())
    assert main(["export", str(a), "-o", str(out), "-q"]) == 0
    assert main(["export", str(b), "-o", str(out), "-q"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    ends = (".tif", "_objects.csv", "_counts.csv", "_provenance.json")
    assert sorted(before) == sorted(f"{name}{end}" for name in ("mask", "b mask") for end in ends)
    capsys.readouterr()
    assert main(["export", str(a), str(b), "-o", str(out), "-q"]) == 1
    assert "already exist" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before

    assert main(["export", str(a), str(b), "-o", str(out), "-q", "--overwrite"]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(before)
    for name, source in (("mask", a), ("b mask", b)):
        assert json.loads((out / f"{name}_provenance.json").read_text())["source"] == str(source)
    tables = out.glob("*_objects.csv")
    assert sum(len(list(csv.DictReader(table.open()))) for table in tables) == 4

    # Exported together first, then alone: each keeps the name it was given with the other.
    together = tmp_path / "together"
    assert main(["export", str(a), str(b), "-o", str(together), "-q"]) == 0
    assert main(["export", str(a), "-o", str(together), "-q"]) == 1
    assert main(["export", str(b), "-o", str(together), "-q", "--overwrite"]) == 0
    assert sorted(p.name for p in together.glob("*.tif")) == ["a mask.tif", "b mask.tif"]


def test_export_of_two_exports_of_one_file(tmp_path):
    """Two exports of one label file, exported together, are told apart as the dock tells
    two layers of one name and file apart: numbered."""
    tifffile.imwrite(tmp_path / "mask.tif", _two_cells())
    for folder in ("e1", "e2"):
        assert main(["export", str(tmp_path / "mask.tif"), "-o", str(tmp_path / folder)]) == 0
    exported = [str(tmp_path / folder / "mask.tif") for folder in ("e1", "e2")]
    assert main(["export", *exported, "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["mask [2].tif", "mask.tif"]


def test_a_path_too_long_for_the_file_system_is_said_in_words(monkeypatch, capsys):
    """Results beside a scan deep in folders (a path over the system's 4096 bytes) failed
    with the raw "[Errno 36] File name too long" and no advice. A name over 255 bytes was
    said to be a path too long, counted in characters (a name of é has twice as many
    bytes), and train was told of -o "for the outputs of segment and export"."""
    import errno

    deep = "/data/" + "/".join(["d" * 200] * 21) + "/scan_unet_cells.json"
    name = "é" * 128 + ".safetensors"  # 128 characters, 268 bytes

    def too_long(path):
        def fail(args):
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)

        return fail

    monkeypatch.setattr("napari_cytomask.cli._segment", too_long(deep))
    assert main(["segment", "scan.tif"]) == 1
    assert capsys.readouterr().err == (
        f"cytomask segment: error: the path {deep} (4247 bytes) is too long for this file "
        "system; choose a shorter folder (-o puts the results in another) or file name.\n"
    )
    monkeypatch.setattr("napari_cytomask.cli._evaluate", too_long(deep))
    assert main(["evaluate", "--pred", "a.tif", "--gt", "b.tif", "-o", "m.csv"]) == 1
    assert capsys.readouterr().err == (
        f"cytomask evaluate: error: the path {deep} (4247 bytes) is too long for this file "
        "system; choose a shorter folder or file name.\n"
    )
    monkeypatch.setattr("napari_cytomask.cli._train", too_long(f"models/{name}"))
    assert main(["train", "--images", "a.tif", "--masks", "b.tif", "-o", name]) == 1
    assert capsys.readouterr().err == (
        f"cytomask train: error: the name {name} would have 268 bytes, 13 more than the 255 "
        "a file name may have; choose a name at least 13 bytes shorter.\n"
    )


def test_home_and_new_folders_in_output_paths(tmp_path, monkeypatch, capsys):
    """``--output=~/x`` (which the shell leaves alone) made a folder called ``~`` in the
    current one, and evaluate refused an output folder that did not exist yet."""
    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    tifffile.imwrite(tmp_path / "cells.tif", labels)
    tifffile.imwrite(tmp_path / "truth.tif", labels)
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    assert main(["export", str(tmp_path / "cells.tif"), "--output-dir=~/ex", "-q"]) == 0
    argv = ["evaluate", "--pred", str(tmp_path / "cells.tif"), "--gt", str(tmp_path / "truth.tif")]
    assert main([*argv, "--output=~/new folder/m.csv", "-q"]) == 0
    assert (home / "ex" / "cells.tif").is_file() and (home / "new folder" / "m.csv").is_file()
    assert list(here.iterdir()) == []


def test_a_linked_scans_results_go_beside_the_link(unet_checkpoint, tmp_path, capsys):
    """Results went beside the file the link points to (a shared, perhaps read-only store),
    named after it."""
    store, project = tmp_path / "store", tmp_path / "project"
    store.mkdir()
    project.mkdir()
    image = np.random.default_rng(0).integers(0, 4000, (128, 128), dtype=np.uint16)
    tifffile.imwrite(store / "scan_0001.tif", image)
    (project / "my scan.tif").symlink_to(store / "scan_0001.tif")
    model = unet_checkpoint(tile_size=128)
    argv = ["segment", str(project / "my scan.tif"), str(store / "scan_0001.tif"), "-m",
            str(model), "-q", "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in project.iterdir()) == [
        "my scan.tif", "my scan_unet_cells.json", "my scan_unet_cells.tif"]  # fmt: skip
    assert sorted(p.name for p in store.iterdir()) == ["scan_0001.tif"]  # the same file, once
    said = capsys.readouterr().err.replace("\n", " ")  # the second name said, not dropped
    assert (
        f"note: {store / 'scan_0001.tif'} and {project / 'my scan.tif'} are one file (a link "
        "and its target): segmented once, as my scan.tif." in said
    )


def test_evaluate_compares_a_z_stack_as_one_volume_as_the_dock_does(tmp_path, capsys):
    """The command line compared every 3-D image plane by plane, the metrics dock a Z stack
    as one volume: two cells over 3 planes, one missing from a plane, scored F1 0.91 there
    and 1.0 in the dock."""
    truth = np.zeros((3, 32, 32), np.uint16)
    truth[:, 2:12, 2:12], truth[:, 16:28, 16:28] = 1, 2
    pred = truth.copy()
    pred[2][pred[2] == 2] = 0
    for name, data in (("gt", truth), ("pred", pred)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, imagej=True, metadata={"axes": "ZYX"})
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "--thresholds", "0.5", "-o", str(tmp_path / "m.csv"), "--overwrite"]  # fmt: skip

    def f1(*options) -> float:
        assert main([*argv, *options]) == 0
        rows = csv.DictReader((tmp_path / "m.csv").open())
        return next(
            float(r["value"]) for r in rows if r["metric"] == "f1" and r["prediction"] == "all"
        )

    assert f1() == f1("--stack", "volume") == 1.0
    assert f1("--stack", "frames") == pytest.approx(10 / 11)  # 5 of 6 cells, plane by plane
    # A NumPy file names no axes: frame by frame, as the dock compares napari's layer of it.
    for name, data in (("gt", truth), ("pred", pred)):
        np.save(tmp_path / f"{name}.npy", data)
    argv = [a.replace(".tif", ".npy") for a in argv]
    assert f1() == pytest.approx(10 / 11)


def test_evaluate_splits_the_time_points_of_a_file_that_stores_z_first(tmp_path):
    """A file storing Z before T was read in its own axis order but split by the reader's
    axis names: its Z planes were compared as frames, each a volume over time."""
    truth = np.zeros((3, 2, 32, 32), np.uint16)  # Z, T: the cells keep their ids in Z
    for t in range(2):
        truth[:, t, 4:12, 4 + 8 * t : 12 + 8 * t], truth[:, t, 20:28, 20:28] = 1, 2
    pred = truth.copy()
    pred[:, 1][pred[:, 1] == 2] = 0  # the second cell missed at time point 1, in every plane
    for name, data in (("gt", truth), ("pred", pred)):
        tifffile.imwrite(tmp_path / f"{name}.ome.tif", data, ome=True, metadata={"axes": "ZTYX"})
    argv = ["evaluate", "--pred", str(tmp_path / "pred.ome.tif"), "--gt",
            str(tmp_path / "gt.ome.tif"), "--thresholds", "0.5", "-o", str(tmp_path / "m.csv"),
            "-q"]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    rows = [r for r in rows if r["level"] == "object" and r["prediction"] != "all"]
    n_true = {r["frame"]: float(r["value"]) for r in rows if r["metric"] == "n_true"}
    assert n_true == {"all": 4, "0": 2, "1": 2}  # 2 time points, 2 cells in each volume
    tp = {r["frame"]: float(r["value"]) for r in rows if r["metric"] == "tp"}
    assert tp == {"all": 3, "0": 2, "1": 1}


def test_export_keeps_the_axes_of_a_file_that_stores_z_first(tmp_path):
    """Labels stored Z before T were exported in the file's order under the reader's axis
    names: Z planes became time points and time points Z planes."""
    from napari_cytomask.io.tiff import read_tiff

    labels = np.zeros((3, 2, 16, 16), np.uint16)  # Z, T: each plane its own id
    for z, t in np.ndindex(3, 2):
        labels[z, t, 2:8, 2:8] = 1 + 2 * z + t
    tifffile.imwrite(tmp_path / "cells.ome.tif", labels, ome=True, metadata={"axes": "ZTYX"})
    assert main(["export", str(tmp_path / "cells.ome.tif"), "-o", str(tmp_path / "out"),
                 "-q"]) == 0  # fmt: skip
    ((data, kwargs, _),) = read_tiff(tmp_path / "out" / "cells.tif")
    assert kwargs["axis_labels"] == ("T", "Z", "Y", "X")
    np.testing.assert_array_equal(np.asarray(data), np.moveaxis(labels, 1, 0))


def test_training_takes_a_pixel_size_and_fine_tunes_at_its_models(folders, tmp_path, capsys):
    """Files that lost their pixel size trained a model that never resampled, and
    fine-tuning at another magnification taught a model that magnification."""
    data, _ = folders
    pairs = ["--images", str(data / "set*" / "raw.tif"), "--masks", str(data / "set*" / "mask.tif")]
    common = ["train", *pairs, *TINY, *QUICK, "--threads", "1", "--no-tune", "-q"]
    base = tmp_path / "base.safetensors"
    assert main([*common, "--pixel-size", "0.5", "-o", str(base)]) == 0
    assert read_description(base)["training"]["pixel_size_um"] == [0.5, 0.5]
    capsys.readouterr()
    coarser = [*common, "--pixel-size", "1", "--from", str(base)]
    assert main([*coarser, "-o", str(tmp_path / "fine.safetensors")]) == 0
    assert (
        "cytomask: note: the image(s) with 1 µm pixels were resampled to the 0.5 µm "
        "pixels the network learnt cells at" in capsys.readouterr().err
    )
    assert read_description(tmp_path / "fine.safetensors")["training"]["pixel_size_um"] == [
        0.5,
        0.5,
    ]
    own = tmp_path / "own.safetensors"
    assert main([*coarser, "--no-resample", "-o", str(own)]) == 0
    assert "resampled" not in capsys.readouterr().err
    assert read_description(own)["training"]["pixel_size_um"] == [1.0, 1.0]
    # Resumed, the run keeps learning at the images' own pixel size.
    resume = ["--pixel-size", "1", "--epochs", "2", "--resume", str(own)]
    assert main([*common, *resume]) == 0
    assert "resampled" not in capsys.readouterr().err
    assert read_description(own)["training"]["settings"]["resample"] is False
    tune = ["tune", str(base), *pairs, "--pixel-size", "1.0", "--batch-size", "1", "-q"]
    assert main(tune) == 0


def test_evaluate_compares_a_result_of_a_z_stack_plane_by_plane(tmp_path, capsys):
    """The cells of a Z stack, segmented plane by plane, were compared with the mask as one
    volume by default: every cell counted as missed."""
    from napari_cytomask.io.export import LabelsExport, export_labels

    truth = np.zeros((3, 32, 32), np.uint16)
    truth[:, 4:12, 4:12], truth[:, 18:28, 16:30] = 1, 2  # ids kept through the planes
    planes = np.where(truth > 0, truth + 2 * np.arange(3)[:, None, None], 0).astype(np.uint16)
    tifffile.imwrite(tmp_path / "mask.tif", truth, imagej=True, metadata={"axes": "ZYX"})
    export = LabelsExport(name="cells", labels=planes, axis_labels=("Z", "Y", "X"),
                          method="unet", source=str(tmp_path / "scan.tif"))  # fmt: skip
    export_labels([export], tmp_path, formats=["tiff"], objects_csv=False)
    pred, gt, table = (str(tmp_path / name) for name in ("cells.tif", "mask.tif", "m.csv"))
    command = ["evaluate", "--pred", pred, "--gt", gt, "-o", table, "--overwrite"]
    assert main(command) == 0
    assert "F1@0.5 1.000" in capsys.readouterr().out
    assert main([*command, "--stack", "volume"]) == 0  # as asked
    assert "F1@0.5 0.000" in capsys.readouterr().out
    # Labels drawn by hand and exported (no method) are a volume, as drawn.
    export_labels([LabelsExport(name="drawn", labels=planes, axis_labels=("Z", "Y", "X"))],
                  tmp_path, formats=["tiff"], objects_csv=False)  # fmt: skip
    command[2] = str(tmp_path / "drawn.tif")
    assert main(command) == 0
    assert "F1@0.5 0.000" in capsys.readouterr().out


def test_an_exported_numpy_file_is_exported_again_with_its_pixel_size_and_positions(
    tmp_path, capsys
):
    """A result exported as NumPy (which holds no axes) and exported again by cytomask
    export lost its 0.87 µm pixels and its position axis: no areas in µm², PNG files
    named _0 instead of _P0, no scale in the new provenance."""
    from napari_cytomask.io.export import LabelsExport, export_labels

    cells = np.zeros((2, 32, 32), np.uint16)
    cells[:, 4:12, 4:12] = 1
    export = LabelsExport(
        name="cells", labels=cells, axis_labels=("P", "Y", "X"), scale=(1.0, 0.87, 0.87),
        units=("pixel", "micrometer", "micrometer"), source=str(tmp_path / "scan.tif"),
        method="unet",
    )  # fmt: skip
    export_labels([export], tmp_path / "day1", formats=["npy"], objects_csv=False)
    again = tmp_path / "day2"
    assert main(["export", str(tmp_path / "day1" / "cells.npy"), "-o", str(again),
                 "--format", "png", "-q"]) == 0  # fmt: skip
    assert sorted(p.name for p in again.glob("*.png")) == ["cells_P0.png", "cells_P1.png"]
    record = json.loads((again / "cells_provenance.json").read_text())
    assert record["scale"] == [1.0, 0.87, 0.87] and record["axis_labels"] == ["P", "Y", "X"]
    rows = list(csv.DictReader((again / "cells_objects.csv").open()))
    assert float(rows[0]["area_um2"]) == pytest.approx(64 * 0.87**2) and rows[0]["p"] == "0"


def test_a_result_exported_with_some_frames_made_is_evaluated_and_exported_as_such(
    tmp_path, capsys
):
    """A stack segmented one position at a time in the dock and exported was scored by
    evaluate in every position (the others counted as cells missed), and exported again
    without its scan, model, settings or frames made: its export's provenance says them."""
    from napari_cytomask.io.export import LabelsExport, export_labels

    truth = np.zeros((3, 32, 32), np.uint16)
    truth[:, 4:12, 4:12], truth[:, 18:28, 16:30] = 1, 2
    phase = np.where(truth > 0, 3000, 500).astype(np.uint16)
    scan = tmp_path / "scan.tif"
    tifffile.imwrite(scan, np.stack([phase, truth], axis=1), imagej=True,
                     metadata={"axes": "TCYX", "Labels": ["Phase", "mask"] * 3})  # fmt: skip
    made = np.zeros_like(truth)
    made[1] = truth[1]
    export = LabelsExport(
        name="Phase U-Net cells", labels=made, axis_labels=("T", "Y", "X"), source=str(scan),
        channel_index=0, channel_name="Phase", method="unet", model={"name": "starter"},
        parameters={"tta": False}, frames_made=["1"], edited=True,
    )  # fmt: skip
    day1 = tmp_path / "day1"
    export_labels([export], day1, formats=["tiff"], objects_csv=False)
    exported = day1 / "Phase U-Net cells.tif"

    assert main(["evaluate", "--pred", str(exported), "--gt", str(scan),
                 "-o", str(tmp_path / "m.csv")]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert "was made in time point 1 only (as the provenance of its export says)" in err
    assert "F1@0.5 1.000" in out

    assert main(["export", str(exported), "-o", str(tmp_path / "day2"), "-q"]) == 0
    again = json.loads((tmp_path / "day2" / "Phase U-Net cells_provenance.json").read_text())
    assert (again["source"], again["method"], again["model"]) == (str(scan), "unet",
                                                                  {"name": "starter"})  # fmt: skip
    assert again["frames_made"] == ["1"] and again["edited_by_hand"] is True
    rows = list(csv.DictReader((tmp_path / "day2" / "Phase U-Net cells_objects.csv").open()))
    assert {row["frame"] for row in rows} == {"1"} and "mean_Phase" in rows[0]
    counts = (tmp_path / "day2" / "Phase U-Net cells_counts.csv").read_text().splitlines()
    # Frames never made hold no count.
    assert counts[1:] == [f"{scan},0,0,", f"{scan},1,1,2", f"{scan},2,2,"]
    # Scan moved: said, as for a result of segment; found again beside the labels.
    scan.rename(day1 / "scan.tif")
    assert main(["export", str(exported), "-o", str(tmp_path / "day3"), "-q"]) == 0
    rows = list(csv.DictReader((tmp_path / "day3" / "Phase U-Net cells_objects.csv").open()))
    assert "mean_Phase" in rows[0]
    (day1 / "scan.tif").unlink()
    assert main(["export", str(exported), "-o", str(tmp_path / "day4"), "-q"]) == 0
    assert "the scan Phase U-Net cells.tif was made from, is not there any more" in (
        capsys.readouterr().err
    )


def test_no_cells_advice_names_what_a_sam2_run_can_still_change():
    """A SAM2 run with its thresholds at 0 was told to lower them; a run guided by the
    U-Net was given the U-Net's advice, though SAM2 dropped its masks."""
    from napari_cytomask.cli import _no_cells_advice
    from napari_cytomask.pipeline import Preset, Sam2Step, UNetStep

    sam2 = Sam2Step(params={"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0})
    assert _no_cells_advice(Preset(method="sam2", sam2=sam2), 1, "") == (
        "No cells found: raise --max-area-fraction (masks of more of the image are dropped)."
    )
    guided = Preset(method="sam2_guided", unet=UNetStep(), sam2=Sam2Step())
    advice = _no_cells_advice(guided, 1, "fine-tune")
    assert advice.startswith(
        "No cells found: lower --pred-iou-thresh, --stability-score-thresh, or raise "
        "--max-area-fraction"
    )
    assert "does the U-Net find the cells (--method unet)?" in advice


def test_a_sam2_model_that_cannot_be_downloaded_is_said_once(folders, monkeypatch, capsys):
    """Offline, with nothing downloaded, every input's task failed with the same
    500-character message: a folder of 200 scans printed it 200 times."""
    from napari_cytomask.models import sam2_models

    data, _ = folders
    monkeypatch.setattr(sam2_models, "cached_checkpoint", lambda model_id: None)
    monkeypatch.setattr(sam2_models, "_hub_reachable", lambda endpoint: False)
    argv = ["segment", str(data / "set*" / "raw.tif"), "--method", "sam2", "--scheduler",
            "synchronous"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("is not downloaded yet") == 1 and len(err.strip().splitlines()) == 1, err


def test_an_export_stopped_by_ctrl_c_says_what_it_left(tmp_path, monkeypatch, capsys):
    """Ctrl+C during an export said "interrupted" alone: whether the folder's files could
    be trusted was left to guess. All are written before any is moved in: none are."""
    from napari_cytomask.io import export

    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.eye(8, dtype=np.uint8) * (name == "a"))
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "a.tif"), "-o", str(out), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, written = export.write_atomically, []

    def stopped_after_one(path, write, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(real(path, write, **kwargs))
        return written[-1]

    monkeypatch.setattr(export, "write_atomically", stopped_after_one)
    command = ["export", str(tmp_path / "*.tif"), "-o", str(out), "-q", "--overwrite"]
    assert main(command) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith(
        "cytomask export: interrupted. Nothing was written; the files already in the output "
        "folder are as they were.\n"
    )
    assert written and {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_export_stopped_while_its_files_move_in_puts_back_or_names_those_replaced(
    tmp_path, monkeypatch, capsys
):
    """Ctrl+C in the moment an export's files move in said "Nothing was written", though
    the first had replaced the earlier export's labels. Those moved in are put back; where
    the file system has no hard links to keep them by, they are named."""
    from napari_cytomask.io import atomic

    tifffile.imwrite(tmp_path / "a.tif", np.eye(8, dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "a.tif"), "-o", str(out), "-q"]) == 0
    before = {path: path.read_bytes() for path in out.iterdir()}
    tifffile.imwrite(tmp_path / "a.tif", np.pad(np.ones((4, 4), np.uint8), 2))  # other cells
    real, moved = atomic._move_in, []

    def stopped_after_one(tmp, path, overwrite):
        if moved:
            raise KeyboardInterrupt
        moved.append(path.name)
        real(tmp, path, overwrite)

    monkeypatch.setattr(atomic, "_move_in", stopped_after_one)
    command = ["export", str(tmp_path / "a.tif"), "-o", str(out), "-q", "--overwrite"]
    assert main(command) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith(
        "cytomask export: interrupted. Nothing was written; the files already in the output "
        "folder are as they were.\n"
    )
    assert {path: path.read_bytes() for path in out.iterdir()} == before
    moved.clear()
    monkeypatch.setattr(atomic, "_kept_aside", lambda path: None)
    assert main(command) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith(
        f"cytomask export: interrupted. It had replaced {moved[0]}, which holds the new export; "
        "the other files it wrote were removed. Run it again with --overwrite to write it "
        "whole.\n"
    )


@pytest.mark.parametrize("quiet", [False, True])
def test_a_long_export_says_how_far_it_is_on_stderr(tmp_path, monkeypatch, capsys, quiet):
    """An export of a plate's results said nothing until it ended, minutes later. Its
    progress goes to stderr, every 15 s (here at every step): stdout lists the files."""
    from napari_cytomask import cli

    monkeypatch.setattr(cli, "_PROGRESS_EVERY", 0.0)
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.eye(8, dtype=np.uint8) * 2)
    out = tmp_path / "out"
    command = ["export", str(tmp_path / "*.tif"), "-o", str(out), *(["-q"] if quiet else [])]
    assert main(command) == 0
    printed = capsys.readouterr()
    assert sorted(printed.out.splitlines()) == sorted(str(path) for path in out.iterdir())
    stages = ("Reading the layers: ", "Measuring the cells: ", "Writing the files: ")
    lines = [line.split(";")[0] for line in printed.err.splitlines() if line.startswith(stages)]
    # The label files read, then measured, then their 4 files each written.
    assert lines == ([] if quiet else [
        *(f"Reading the layers: {i} of 2" for i in range(3)),
        *(f"Measuring the cells: {i} of 2" for i in range(3)),
        *(f"Writing the files: {i} of 8" for i in range(1, 9)),
    ])  # fmt: skip


def test_an_export_stopped_as_it_lists_its_files_says_they_are_written(
    tmp_path, monkeypatch, capsys
):
    """Ctrl+C while the export printed its files' names said nothing was written."""
    tifffile.imwrite(tmp_path / "a.tif", np.eye(8, dtype=np.uint8))
    out = tmp_path / "out"
    real_print = print

    def stopped_at_the_second(*args, **kwargs):
        if kwargs.get("file") is None and stopped_at_the_second.listed:
            raise KeyboardInterrupt
        stopped_at_the_second.listed += kwargs.get("file") is None
        real_print(*args, **kwargs)

    stopped_at_the_second.listed = 0
    monkeypatch.setattr("builtins.print", stopped_at_the_second)
    assert main(["export", str(tmp_path / "a.tif"), "-o", str(out)]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith(
        f"cytomask export: interrupted. The export had finished: its 4 files are in {out}.\n"
    )
    assert len(list(out.iterdir())) == 4


@pytest.mark.parametrize("target", ["libs", "src"])
def test_the_version_of_a_copy_in_another_repository_is_its_own(tmp_path, target):
    """Installed with pip --target into a folder at the top of the user's own repository,
    the package gave the user's commit ("git a958d154e47c-dirty") as its version, in
    --version, every provenance and every checkpoint."""
    package = Path(napari_cytomask.__file__).parent
    project = tmp_path / "analysis"
    shutil.copytree(package, project / target / "napari_cytomask",
                    ignore=shutil.ignore_patterns("__pycache__", "resources"))  # fmt: skip
    (project / "pyproject.toml").write_text('[project]\nname = "analysis"\n')
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "."], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=a", "-c", "user.email=a@b",
                    "commit", "-q", "-m", "analysis"], check=True)  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    said = subprocess.run(
        [sys.executable, "-c", "import napari_cytomask as n; print(n.own_version())"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env={**env, "PYTHONPATH": str(project / target)},
    ).stdout.strip()  # fmt: skip
    assert said == napari_cytomask.__version__


def test_the_version_is_this_checkouts_whatever_git_is_told(monkeypatch, tmp_path):
    """GIT_DIR set for another repository gave that repository's commit as the one that
    ran."""
    checkout = Path(napari_cytomask.__file__).resolve().parents[2]
    if not (checkout / ".git").exists():  # an installed wheel names its version alone
        assert napari_cytomask.own_version() == napari_cytomask.__version__
        return
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    subprocess.run(["git", "-C", str(other), "-c", "user.name=a", "-c", "user.email=a@b",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)  # fmt: skip
    command = ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"]
    head = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    napari_cytomask.own_version.cache_clear()
    try:
        assert napari_cytomask.own_version().startswith(f"git {head}")
    finally:
        napari_cytomask.own_version.cache_clear()


def test_help_shows_defaults_as_they_are_typed(capsys):
    """Defaults read "(0.8, 0.1, 0.1)" and "['tiff']", Python's words, and a default of 0
    (the seed's) was not shown at all."""
    helps = {}
    for command in ("train", "evaluate", "export"):
        assert main([command, "--help"]) == 0
        helps[command] = " ".join(capsys.readouterr().out.split())
    assert "test (default: 0.8,0.1,0.1)" in helps["train"]
    assert "seed of the split, crops and weights (default: 0)" in helps["train"]
    assert "(default: 1 99.8)" in helps["train"]
    assert "(default: 0.5 0.75 0.9)" in helps["evaluate"]
    assert "label formats to write (default: tiff)" in helps["export"]
    assert not re.search(r"default: [\[(]|SUPPRESS", " ".join(helps.values()))


def test_colour_pictures_fine_tune_a_model_of_one_channel_in_grey(
    folders, tmp_path, capsys, unet_checkpoint
):
    """Brightfield cameras save colour pictures, which `cytomask segment` gives a model of
    one channel in grey, but fine-tuning it on them was refused ("expects 1 input
    channel(s) but 3 were given"), with no option to pick a channel."""
    from skimage import io as skio

    from napari_cytomask.labels import grey_version

    data, scan = folders
    colour = tmp_path / "colour"
    for i in range(3):
        (colour / f"set{i}").mkdir(parents=True)
        grey = (scan.brightfield[i] / scan.brightfield[i].max() * 255).astype(np.uint8)
        skio.imsave(colour / f"set{i}" / "raw.png", np.stack([grey, grey // 2, grey], axis=-1))
        tifffile.imwrite(colour / f"set{i}" / "mask.tif", scan.labels[i])
    model = tmp_path / "fine.safetensors"
    argv = ["train", "--images", str(colour / "set*" / "raw.png"), "--masks",
            str(colour / "set*" / "mask.tif"), "--from", str(unet_checkpoint()), *QUICK,
            "--threads", "1", "--no-tune", "-o", str(model)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert (
        "The 3 colour picture(s) are learnt from in grey, as segmenting gives them to the "
        "model training starts from, which takes one channel."
    ) in " ".join(err.split())
    assert read_description(model)["in_channels"] == 1
    # What it learnt from is what segmenting gives it.
    from napari_cytomask.models.training import samples_from_folders

    images, masks = str(colour / "set*" / "raw.png"), str(colour / "set*" / "mask.tif")
    (sample, *_) = samples_from_folders(images, masks, grey=True, note=print)
    picture = skio.imread(colour / "set0" / "raw.png")
    np.testing.assert_allclose(sample.channels[0], grey_version(picture))


def test_an_output_named_with_a_separator_at_its_end_is_a_folder_made_for_the_model(
    folders, tmp_path, capsys
):
    """`-o runs/new/` wrote runs/new.safetensors: a folder to put the model in was taken
    for a file's name."""
    data, _ = folders
    argv = ["train", "--images", str(data / "set*" / "raw.tif"), "--masks",
            str(data / "set*" / "mask.tif"), *TINY, *QUICK, "--threads", "1", "--no-tune",
            "-o", f"{tmp_path / 'runs' / 'new'}/"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    (model,) = (tmp_path / "runs" / "new").glob("*.safetensors")
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(model)
    assert not (tmp_path / "runs" / "new.safetensors").exists()


def test_preset_of_a_dock_export_gives_the_pixel_size_typed_in_the_dock(
    unet_checkpoint, tmp_path, capsys
):
    """`--preset` of a `cytomask segment` record gives the --pixel-size that run was given
    again, but that of the export dock's provenance did not give the pixel size typed in
    the dock (the file's lost, or wrong): the provenance recorded the size the U-Net used,
    not that it was typed, and the image was segmented at its file's own pixels. It records
    it as the run's record does; a size the U-Net read from the file is not given again."""
    from dataclasses import asdict

    from napari.layers import Image, Labels

    from napari_cytomask.io.export import export_labels, from_layer
    from napari_cytomask.io.layers import METADATA_KEY, model_record, result_metadata
    from napari_cytomask.pipeline import UNetStep

    model = unet_checkpoint(tile_size=128)
    phase = make_tilescan(n_tiles=1, shape=(64, 64), seed=2).brightfield[0]
    lost, sized = tmp_path / "lost.tif", tmp_path / "sized.tif"
    tifffile.imwrite(lost, phase)
    tifffile.imwrite(sized, phase, resolution=(1 / 1.2, 1 / 1.2), metadata={"unit": "um"},
                     imagej=True)  # fmt: skip
    cells = np.zeros((64, 64), np.uint16)
    cells[8:20, 8:20] = 1
    geometry = {"scale": (1.2, 1.2), "units": ("µm", "µm")}  # typed for lost.tif
    # The U-Net settings a run of the dock records on its cells.
    step = {**asdict(UNetStep(model=str(model), tta=False)), "pixel_size_um": (1.2, 1.2)}
    step.pop("model")
    for scan, typed in ((lost, 1.2), (sized, None)):
        image = Image(phase, name=scan.stem, metadata={METADATA_KEY: {
            "source": str(scan), "channel_index": 0, "role": "input"}}, **geometry)  # fmt: skip
        made = result_metadata(image, method="unet", parameters=step,
                               model=model_record(str(model), model))  # fmt: skip
        out = tmp_path / scan.stem
        export_labels([from_layer(Labels(cells, name="cells", metadata=made, **geometry))], out)
        provenance = out / "cells_provenance.json"
        capsys.readouterr()
        argv = ["segment", str(scan), "--preset", str(provenance), "-o", str(out / "again"),
                "--scheduler", "synchronous", "--threads", "1"]  # fmt: skip
        assert main(argv) == 0
        said = capsys.readouterr().err
        again = json.loads((out / "again" / f"{scan.stem}_unet_cells.json").read_text())
        assert again["options"]["pixel_size_um"] == typed
        assert again["pixel_size_um"] == [1.2, 1.2]
        if typed:
            assert (
                f"cytomask: note: pixels of 1.2 µm, as the run {provenance} records was given "
                "them (--pixel-size gives others).\n"
            ) in said
        else:
            assert "as the run" not in said
        # In the form of the run's record.
        assert json.loads(provenance.read_text())["options"] == {"pixel_size_um": typed}
