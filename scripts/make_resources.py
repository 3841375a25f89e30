"""Make the files shipped in ``src/napari_cytomask/resources/`` from the shared data.

``sample``
    The real sample scan: the Usiigaci phase-contrast images of the test split
    (the images the starter model never saw in training or validation) with
    their hand-drawn masks, one OME-TIFF position per image, two channels
    (phase contrast, mask), deflate-compressed, with the images' pixel size.
``starter CHECKPOINT``
    The starter model: a checkpoint written by ``cytomask train``, stored in
    half precision (the weights are used in single precision after loading).

Usage (from the repository root, ``../shared`` beside it)::

    .venv/bin/python scripts/make_resources.py sample
    .venv/bin/python scripts/make_resources.py starter benchmarks/_data/starter-unet.safetensors

The model card (``resources/STARTER_MODEL.md``) is written by hand from the
output of ``benchmarks/bench_unet_quality.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import tifffile
from skimage.io import imread

from napari_cytomask.models.catalog import STARTER_PIXEL_SIZE_UM

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "src" / "napari_cytomask" / "resources"
DATA = Path(os.environ.get("CYTOMASK_TEST_DATA", ROOT.parent / "shared" / "data"))
#: The test split of ``cytomask train`` (seed 0) on the 40 Usiigaci image sets,
#: as recorded in the starter model's checkpoint.
TEST_SETS = ("set11", "set12", "set30", "set40")
SAMPLE_NAME = "usiigaci-sample.ome.tif"
CHANNELS = ["Phase contrast", "Mask (hand-drawn)"]


def make_sample(output: Path) -> Path:
    """Write the sample scan to ``output`` and return it."""
    if output.exists():
        output.unlink()
    with tifffile.TiffWriter(output, ome=True) as tw:
        for name in TEST_SETS:
            folder = DATA / "usiigaci-phc" / name
            phase = tifffile.imread(folder / "raw.tif")
            mask = imread(folder / "instances_ids.png")
            if phase.dtype != np.uint16 or phase.shape != mask.shape:
                raise ValueError(f"{folder} does not hold the expected uint16 image and mask.")
            tw.write(
                np.stack([phase, mask.astype(np.uint16)]),
                compression="zlib",
                compressionargs={"level": 9},
                predictor=True,
                photometric="minisblack",
                metadata={
                    "axes": "CYX",
                    "Name": f"Usiigaci {name}",
                    "Channel": {"Name": CHANNELS},
                    # The shared files record none: 10x, 1.5x zoom, 2x2-binned 6.5 µm pixels.
                    "PhysicalSizeX": STARTER_PIXEL_SIZE_UM,
                    "PhysicalSizeY": STARTER_PIXEL_SIZE_UM,
                },
            )
    return output


def make_starter(checkpoint: Path, output: Path) -> Path:
    """Store ``checkpoint``'s network in half precision at ``output`` and return it."""
    from napari_cytomask.models.checkpoint import load_checkpoint, save_checkpoint

    model, description = load_checkpoint(checkpoint)
    if output.exists():
        output.unlink()
    return save_checkpoint(output, model.half(), description)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("sample", help="the real sample scan")
    starter = sub.add_parser("starter", help="the starter model")
    starter.add_argument("checkpoint", type=Path, help="a checkpoint written by cytomask train")
    args = parser.parse_args(argv)
    if args.what == "sample":
        written = make_sample(RESOURCES / SAMPLE_NAME)
    else:
        from napari_cytomask.models.catalog import starter_path

        written = make_starter(args.checkpoint, starter_path())
    print(f"{written} ({written.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
