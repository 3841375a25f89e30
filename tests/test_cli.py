"""The ``cytomask`` command: train and segment on a tiny run, exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_cytomask.cli import main
from napari_cytomask.models.checkpoint import DIR_ENV, read_description
from napari_cytomask.synthetic import make_tilescan

TINY = ["--encoder", "tu-resnet10t", "--encoder-depth", "3", "--encoder-weights", "none"]
QUICK = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "64"]


@pytest.fixture(autouse=True)
def one_thread(tmp_path, monkeypatch):
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

    # A 2-position scan with the input in channel 1 and a mask in channel 2.
    stack = np.stack([scan.fluorescence[:2], scan.brightfield[:2], scan.labels[:2]], axis=1)
    scan_path = tmp_path / "scan.tif"
    tifffile.imwrite(scan_path, stack, imagej=True, metadata={"axes": "TCYX"})
    out_dir = tmp_path / "out"
    code = main(
        [
            "segment",
            str(scan_path),
            "-m",
            str(model),
            "--channel",
            "1",
            "-o",
            str(out_dir),
            "--device",
            "cpu",
            "--tile-size",
            "64",
            "--overlap",
            "16",
            "--save-probabilities",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    labels = tifffile.imread(out_dir / "scan_unet_cells.tif")
    assert labels.shape == (2, 96, 96)
    probs = np.load(out_dir / "scan_unet_probabilities.npy")
    assert probs.shape == (3, 2, 96, 96)
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-4)
    code = main(
        [
            "segment",
            str(data / "set0" / "raw.tif"),
            "-m",
            str(model),
            "-o",
            str(out_dir),
            "--tta",
            "--threads",
            "1",
        ]
    )
    assert code == 0 and (out_dir / "raw_unet_cells.tif").is_file()

    # Existing results are not overwritten without --overwrite.
    code = main(["segment", str(scan_path), "-m", str(model), "-o", str(out_dir), "--channel", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1

    # A model name is looked up in the model folder.
    (tmp_path / "models").mkdir()
    model.rename(tmp_path / "models" / "tiny.safetensors")
    code = main(["segment", str(data / "set1" / "raw.tif"), "-m", "tiny", "-q", "--threads", "1"])
    assert code == 0 and (data / "set1" / "raw_unet_cells.tif").is_file()


def test_user_errors_exit_1_with_one_line(tmp_path, folders, capsys):
    data, _ = folders
    pt = tmp_path / "sam2.pt"
    torch.save({"model": {}}, pt)
    cases = [
        (["segment", str(data / "set0" / "raw.tif"), "-m", str(pt)], "PyTorch pickle"),
        (["segment", str(data / "set0" / "raw.tif"), "-m", "nothing"], "no checkpoint 'nothing'"),
        (["train", *TINY], "say where the training data are"),
        (["train", "--images", str(tmp_path / "none*.tif"), "--masks", "x*"], "matches no file"),
        (["train", "--tilescan", str(pt)], "needs --input-channel"),
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
