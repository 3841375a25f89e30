"""The README's Python examples, run as a user copies them, on a real scan."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import tifffile
from skimage.io import imread, imsave
from skimage.transform import resize

from napari_cytomask.metrics import evaluate

README = Path(__file__).resolve().parents[1] / "README.md"
PYPROJECT = README.with_name("pyproject.toml")


def _python_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From Python") : text.index("## Without a GUI")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_python_examples_find_the_cells_of_a_scan_at_twice_the_models_magnification(
    shared_data, tmp_path, monkeypatch
):
    """Copied as written, the example segmented a 0.435 µm scan at its own pixels: the
    starter model (0.87 µm) found 11 cells of 18, none of them right (F1@0.5 0)."""
    folder = shared_data / "usiigaci-phc" / "set11"
    phase = imread(folder / "raw.tif")[:200, :200]
    truth = imread(folder / "instances_ids.png")[:200, :200]
    # Twice the magnification: each pixel becomes four, half the size.
    big_phase = resize(phase, (400, 400), order=1, preserve_range=True).astype(phase.dtype)
    big_truth = np.kron(truth, np.ones((2, 2), truth.dtype))
    tifffile.imwrite(
        tmp_path / "scan.ome.tif",
        np.stack([big_phase, big_truth.astype(phase.dtype)]),
        metadata={"axes": "CYX", "Channel": {"Name": ["Phase", "mask"]},
                  "PhysicalSizeX": 0.435, "PhysicalSizeY": 0.435},
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    first, alone = _python_examples()
    names: dict = {}
    exec(compile(first, "README (From Python)", "exec"), names)
    exec(compile(alone, "README (the U-Net alone)", "exec"), names)
    written = tifffile.imread(tmp_path / "cells.ome.tif")
    for labels in (written, names["cells"]):
        f1 = evaluate(big_truth, labels, [0.5]).matches.f1[0]
        assert f1 > 0.7, f1


def test_the_python_examples_segment_a_colour_picture(shared_data, tmp_path, monkeypatch):
    """A PNG picture opens as its three colours, none marked as the input, and the example
    failed with "IndexError: list index out of range" where `cytomask segment` and the dock
    segment its grey version."""
    folder = shared_data / "usiigaci-phc" / "set12"
    phase = imread(folder / "raw.tif")[:256, :256].astype(np.float64)
    truth = imread(folder / "instances_ids.png")[:256, :256]
    grey = np.round(255 * (phase - phase.min()) / np.ptp(phase)).astype(np.uint8)
    imsave(tmp_path / "picture.png", np.stack([grey] * 3, axis=-1), check_contrast=False)
    monkeypatch.chdir(tmp_path)
    first, _ = _python_examples()
    code = first.replace('open_scan("scan.ome.tif")', 'open_scan("picture.png")')
    exec(compile(code.replace("print(describe_tiff(", "(("), "README", "exec"), {})
    assert evaluate(truth, tifffile.imread(tmp_path / "cells.ome.tif"), [0.5]).matches.f1[0] > 0.7


def test_the_readme_builds_a_wheel_with_the_model_and_the_sample_and_installs_its_qt_extra(
    tmp_path,
):
    """The README said to `pip install napari-cytomask[qt]`, which is on no package index
    ("No matching distribution found"). It says how to build the wheel, which must hold
    the starter model and the sample, and install it with its Qt extra."""
    import subprocess
    import sys
    import zipfile

    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    text = README.read_text(encoding="utf-8")
    commands = r"^(rm -rf dist && \.venv/bin/python -m pip wheel .*|pip install .*)$"
    build, install = re.findall(commands, text, flags=re.M)
    # dist/ emptied first: with an older wheel left there, the install's $(ls …) named two.
    wheel_folder = tmp_path / "dist"
    build = build.split("#")[0].split("&&")[1].split()[1:]  # this Python, a folder of its own
    build[build.index("dist")] = str(wheel_folder)
    subprocess.run([sys.executable, *build], cwd=README.parent, check=True,
                   capture_output=True)  # fmt: skip
    (wheel,) = wheel_folder.glob("napari_cytomask-*.whl")
    assert re.search(r"dist/napari_cytomask-\*\.whl", install)
    files = set(zipfile.ZipFile(wheel).namelist())
    resources = "napari_cytomask/resources/"
    for name in ("cytomask-starter-phc.safetensors", "STARTER_MODEL.md",
                 "usiigaci-sample.ome.tif", "USIIGACI-LICENSE.txt"):  # fmt: skip
        assert resources + name in files, name
    assert "napari_cytomask/napari.yaml" in files
    (extra,) = re.findall(r"\.whl\)\[(\w+)\]", install)
    assert "napari[pyqt6]" in project["optional-dependencies"][extra]  # a Qt binding
