"""Fine-tuning the starter model against training from random weights, same time budget.

The images are fluorescence nuclei (nuclei-dsb in the shared data), a different
kind of image from the phase-contrast cells the starter model learned, as a user
with a few labelled images of their own would have them: the four 256² quarters
of ``img2d.tif`` are split by ``cytomask train`` (seed 0) into two for training,
one for validation (checkpoint choice and thresholds) and one held back. Scored
on images neither run saw: the held-back quarter (same image, as a user's further
images would be), and ``tests_img2d.tif`` (another image of the data set, 65
nuclei). Both runs call the project's own ``cytomask train`` in-process with the
same network (the starter's: resnet18, depth 4), settings, seed and time budget;
one starts from the starter model (``--from starter``), the other from random
weights.

Usage (about 2 x the budget plus scoring)::

    python benchmarks/bench_finetune.py --minutes 10 --threads 2
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import tifffile

from _common import DATA, cpu_model, train_in_process
from napari_cytomask.models.catalog import resolve_unet
from napari_cytomask.models.checkpoint import read_description
from napari_cytomask.models.inference import UNetPredictor
from napari_cytomask.models.training import (
    evaluate_model,
    samples_from_arrays,
    samples_from_folders,
    scores_of,
)
from napari_cytomask.pipeline import UNetStep


def write_quarters(image: Path, mask: Path, folder: Path) -> None:
    """The four quarters of an image and its mask as ``folder/qN/{image,mask}.tif``."""
    pixels, labels = tifffile.imread(image), tifffile.imread(mask)
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    for i, (y, x) in enumerate(((0, 0), (0, w), (h, 0), (h, w))):
        part = folder / f"q{i}"
        part.mkdir(parents=True)
        tifffile.imwrite(part / "image.tif", pixels[y : y + h, x : x + w])
        tifffile.imwrite(part / "mask.tif", labels[y : y + h, x : x + w])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    nuclei = DATA / "nuclei-dsb"
    other_image = samples_from_arrays(
        tifffile.imread(nuclei / "tests_img2d.tif"),
        tifffile.imread(nuclei / "tests_mask2d.tif"),
        "tests_img2d",
    )
    starter = read_description(resolve_unet("starter"))
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, threads {args.threads}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_quarters(nuclei / "img2d.tif", nuclei / "mask2d.tif", folder / "data")
        common = [
            "train",
            "--images", str(folder / "data" / "q*" / "image.tif"),
            "--masks", str(folder / "data" / "q*" / "mask.tif"),
            "--split", "0.5,0.25,0.25",
            "--epochs", "1000",
            "--steps-per-epoch", "20",
            "--batch-size", str(args.batch_size),
            "--crop-size", "128",
            "--seed", str(args.seed),
            "--device", "cpu",
            "--threads", str(args.threads),
            "--time-limit", str(args.minutes),
            "--patience", "1000",
            "--quiet",
        ]  # fmt: skip
        runs = {
            "fine-tuned from the starter model": ["--from", "starter"],
            "random weights (baseline)": [
                "--encoder",
                starter["encoder"],
                "--encoder-depth",
                str(starter["encoder_depth"]),
                "--encoder-weights",
                "none",
            ],  # fmt: skip
        }
        results = {}
        for name, extra in runs.items():
            output = folder / f"{len(results)}.safetensors"
            seconds = train_in_process(name, [*common, *extra, "--output", str(output)])
            if seconds is None:
                return 1
            training = read_description(output)["training"]
            predictor = UNetPredictor.from_checkpoint(output, "cpu")
            (quarter,) = training["split"]["test"]
            held_back = samples_from_folders(quarter, quarter.replace("image.tif", "mask.tif"))
            print(
                f"  {seconds / 60:.1f} min with tuning, {training['epochs_done']} epochs, "
                f"{training['steps_done']} steps; thresholds "
                + ", ".join(f"{k} {v:g}" for k, v in predictor.settings.items())
            )
            results[name] = {}
            for label, images in (
                (f"held-back quarter {Path(quarter).parent.name}", held_back),
                ("tests_img2d (65 nuclei)", other_image),
            ):
                # As segmenting does by default (and as the thresholds were tuned).
                scores = scores_of(evaluate_model(predictor, images, tta=UNetStep.tta))
                results[name][label] = scores
                print(
                    f"  {label}: F1@0.5 {scores['f1_50']:.3f} | mean-average F1 "
                    f"{scores['mean_average_f1']:.3f} | mSA "
                    f"{scores['mean_segmentation_accuracy']:.3f} | pixel IoU "
                    f"{scores['pixel_iou']:.3f} | {scores['n_true']} true, "
                    f"{scores['n_pred']} predicted",
                    flush=True,
                )
    tuned, baseline = results.values()
    for image in tuned:
        for key, label in (("f1_50", "F1@0.5"), ("mean_segmentation_accuracy", "mSA")):
            a, b = tuned[image][key], baseline[image][key]
            print(
                f"{image}, {label}: fine-tuned {a:.3f} vs random weights {b:.3f} "
                f"(difference {a - b:+.3f}) after {args.minutes:g} min each"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
