"""Fine-tuning the starter model on images of another magnification, with and without
resampling them to the pixel size it learnt.

The starter model learnt Usiigaci phase contrast at 0.87 µm per pixel. Here a user
has the same kind of cells imaged at 0.435 µm (a 20x objective): five Usiigaci
images of the starter model's training and validation split, enlarged twice (the
masks with nearest neighbours), written as OME-TIFF files that record 0.435 µm.
Both runs call the project's own ``cytomask train --from starter`` in-process with
the same settings, seed and number of steps (the same crops of 256², so the same work
per step; a time budget would favour whichever run the machine's other load slowed
less): one as it does by default, resampling the
images to the model's 0.87 µm (the model keeps that pixel size, and segmenting
resamples to it), the other with ``--no-resample`` (the baseline: the model learns
0.435 µm, as every fine-tuning did before). The starter model itself is scored too.
All are scored as segmenting scores them by default (resampled to each model's pixel
size, its tuned thresholds, no TTA) on the four test images (never trained on),
enlarged the same way.

Usage (about 25 minutes on 2 CPU cores, most of it tuning and scoring the baseline at
four times the pixels)::

    python benchmarks/bench_finetune_pixel_size.py --steps 60 --threads 2
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.io import imread
from skimage.transform import rescale

from _common import DATA, cpu_model, train_in_process
from napari_cytomask.models.catalog import STARTER, STARTER_PIXEL_SIZE_UM, resolve_unet
from napari_cytomask.models.checkpoint import read_description
from napari_cytomask.models.inference import UNetPredictor
from napari_cytomask.models.training import evaluate_model, samples_from_folders, scores_of

#: Training and validation images of the starter model's split, and its test images.
TRAIN = ("set1", "set3", "set4", "set5", "set13")
TEST = ("set11", "set12", "set30", "set40")
SCALE = 2


def write_enlarged(names, folder: Path) -> str:
    """``names`` enlarged ``SCALE`` times as ``folder/NAME/{raw.ome.tif,mask.tif}`` with
    their pixel size recorded; the image pattern."""
    size = STARTER_PIXEL_SIZE_UM / SCALE
    for name in names:
        source = DATA / "usiigaci-phc" / name
        image = tifffile.imread(source / "raw.tif")
        mask = imread(source / "instances_ids.png")
        (folder / name).mkdir(parents=True)
        larger = rescale(image, SCALE, order=1, preserve_range=True).astype(image.dtype)
        sizes = {"PhysicalSizeX": size, "PhysicalSizeY": size}
        tifffile.imwrite(folder / name / "raw.ome.tif", larger, metadata={"axes": "YX", **sizes})
        cells = np.repeat(np.repeat(mask.astype(np.int32), SCALE, 0), SCALE, 1)
        tifffile.imwrite(folder / name / "mask.tif", cells)
    return str(folder / "set*" / "raw.ome.tif")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = parser.parse_args(argv)

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, threads {args.threads}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = write_enlarged(TRAIN, folder / "train")
        tests = write_enlarged(TEST, folder / "test")
        test = samples_from_folders(tests, tests.replace("raw.ome.tif", "mask.tif"))
        print(f"test images at {test[0].pixel_size_um[0]:g} µm: {', '.join(TEST)}")
        common = [
            "train", "--from", STARTER,
            "--images", images,
            "--masks", images.replace("raw.ome.tif", "mask.tif"),
            "--split", "0.8,0.2,0",
            "--epochs", str(-(-args.steps // 10)),
            "--steps-per-epoch", "10",
            "--batch-size", "4",
            "--crop-size", "256",
            "--learning-rate", "0.0005",
            "--seed", "0",
            "--device", "cpu",
            "--threads", str(args.threads),
            "--patience", "1000",
            "--quiet",
        ]  # fmt: skip
        runs = {"resampled to 0.87 µm (default)": [], "--no-resample (baseline)": ["--no-resample"]}
        models = {"starter model, not fine-tuned": resolve_unet(STARTER)}
        for name, extra in runs.items():
            output = folder / f"{len(models)}.safetensors"
            seconds = train_in_process(name, [*common, *extra, "--output", str(output)])
            if seconds is None:
                return 1
            training = read_description(output)["training"]
            print(
                f"  {seconds / 60:.1f} min with tuning, "
                f"{training['epochs_done']} epochs, {training['steps_done']} steps; the model "
                f"learnt {training['pixel_size_um']} µm pixels"
            )
            models[name] = output
        for name, path in models.items():
            predictor = UNetPredictor.from_checkpoint(path, "cpu")
            started = time.perf_counter()
            scores = scores_of(evaluate_model(predictor, test, batch_size=4))
            print(
                f"{name}: F1@0.5 {scores['f1_50']:.3f} | mean-average F1 "
                f"{scores['mean_average_f1']:.3f} | mSA {scores['mean_segmentation_accuracy']:.3f}"
                f" | {scores['n_true']} true, {scores['n_pred']} predicted | "
                f"{time.perf_counter() - started:.0f} s to segment and score",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
