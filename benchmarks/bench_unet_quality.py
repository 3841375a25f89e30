"""Train a U-Net on usiigaci phase-contrast images and score it on held-out test images.

The images are split by image (80/10/10, seeded, recorded in the checkpoint);
training runs the project's own training command (``cytomask train``,
called in-process); the checkpoint kept is the one with the best validation
mean-average F1, and this script reports on the test images it never saw:
mean-average F1 over IoU 0.50:0.95, F1 at IoU 0.5 and 0.75, and pixel IoU.

Usage (a short CPU run, about 20 minutes on 2 shared cores; one thread is
faster than two on a machine whose cores are busy with other work)::

    python benchmarks/bench_unet_quality.py --threads 1 --time-limit 14

The CPU run reported in the README (70 epochs of 60 steps, about 2 hours on 2
quiet cores)::

    python benchmarks/bench_unet_quality.py --threads 2 --steps-per-epoch 60 \
        --epochs 70 --time-limit 0 --output unet-quality.safetensors

Training can go on later from where it stopped (the training state beside the
checkpoint restores the optimiser and schedule): ``--resume`` continues the
``--output`` checkpoint up to ``--epochs`` epochs in all or for ``--time-limit`` more
minutes (the unit of ``cytomask train``), then scores it again on the same test
images; without it an existing ``--output`` is kept unless ``--overwrite`` is
given. ``--score-only`` scores the ``--output`` checkpoint without training.

Training ends by choosing the post-processing thresholds on the validation
images (``cytomask tune`` does the same for a checkpoint trained without it);
the test images are scored with the default thresholds and with the tuned ones.

``--split-from starter`` keeps the starter model's split for a copy of its images
elsewhere; ``scripts/gpu_bundle.sh training`` makes one for a GPU machine without a
package index, and its header gives the commands that train the starter model further
there and score the result here on the real test images.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from _common import DATA, cpu_model
from napari_cytomask import cli
from napari_cytomask.models.catalog import resolve_unet
from napari_cytomask.models.checkpoint import read_description
from napari_cytomask.models.inference import DEFAULT_SETTINGS, UNetPredictor
from napari_cytomask.models.training import (
    evaluate_model,
    match_split,
    samples_from_folders,
    scores_of,
)


def machine(device: str) -> str:
    """CPU model (and GPU name) of this machine."""
    text = f"{cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text


def goal_met(scores: dict) -> bool:
    """The starter model's goal on the test split (F1 at IoU 0.5 and mSA)."""
    return scores["f1_50"] >= 0.92 and scores["mean_segmentation_accuracy"] >= 0.55


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "usiigaci-phc")
    parser.add_argument(
        "--image-file", default="raw.tif", help="file name of the image in each set's folder"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--encoder-depth", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps-per-epoch", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=16,
        help="minutes of training, as in 'cytomask train' (0: no limit)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output checkpoint"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--output", type=Path, default=Path("bench_unet_quality.safetensors"))
    parser.add_argument(
        "--resume", action="store_true", help="continue training the --output checkpoint"
    )
    parser.add_argument(
        "--from",
        dest="init_from",
        help="start from this model's weights ('starter', a checkpoint file or name)",
    )
    parser.add_argument(
        "--split-from",
        help="train and score on the split of this model ('starter', a checkpoint file or "
        "name), its images matched by folder and file name, as 'cytomask train --split-from'",
    )
    parser.add_argument(
        "--score-only", action="store_true", help="score the --output checkpoint, no training"
    )
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="score with flip test-time augmentation, the default of segmenting (4x slower)",
    )
    args = parser.parse_args(argv)

    pattern = args.data / "set*"
    # The project's own training command, so this measures what users run.
    data = [
        "--images",
        str(pattern / args.image_file),
        "--masks",
        str(pattern / "instances_ids.png"),
    ]
    command = [
        "train",
        *data,
        "--encoder", args.encoder,
        "--encoder-depth", str(args.encoder_depth),
        "--epochs", str(args.epochs),
        "--steps-per-epoch", str(args.steps_per_epoch),
        "--batch-size", str(args.batch_size),
        "--crop-size", str(args.crop_size),
        "--learning-rate", str(args.learning_rate),
        "--patience", str(max(args.epochs, 1)),
        "--seed", str(args.seed),
        "--device", args.device,
        "--time-limit", str(args.time_limit),
        "--threads", str(args.threads),
        "--output", str(args.output),
        "--quiet",
        *(["--resume", str(args.output)] if args.resume else []),
        *(["--from", args.init_from] if args.init_from else []),
        *(["--split-from", args.split_from] if args.split_from else []),
        *(["--overwrite"] if args.overwrite else []),
    ]  # fmt: skip
    print(f"machine: {machine(args.device)}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"training command: {shlex.join(['cytomask', *command])}")
    t1 = time.perf_counter()
    if not args.score_only and cli.main(command) != 0:
        return 1
    train_s = time.perf_counter() - t1
    if "postprocess" not in read_description(args.output):
        print("the checkpoint has no tuned post-processing; choosing it with cytomask tune")
        tune = ["tune", str(args.output), *data, "--device", args.device,
                "--threads", str(args.threads), "--batch-size", str(args.batch_size),
                "--tta" if args.tta else "--no-tta"]  # fmt: skip
        if cli.main(tune) != 0:
            return 1
    description = read_description(args.output)
    training = description["training"]
    split = training["split"]
    print(
        f"split (seed {args.seed}): "
        + json.dumps({k: [Path(n).parent.name for n in v] for k, v in split.items()})
    )
    this_run = (
        "not trained in this run" if args.score_only else f"{train_s / 60:.1f} min in this run"
    )
    print(
        f"trained {training['epochs_done']} epochs, {training['steps_done']} steps in all "
        f"({this_run}); pretrained encoder: {training['pretrained_encoder']}"
    )
    for row in training["history"]:
        val = row["validation"] or {}
        print(
            f"  epoch {row['epoch']:3d}  loss {row['loss']:.4f}  "
            f"val maF1 {val.get('mean_average_f1', float('nan')):.3f}  "
            f"val F1@0.5 {val.get('f1_50', float('nan')):.3f}"
        )
    samples = samples_from_folders(
        str(pattern / args.image_file), str(pattern / "instances_ids.png")
    )
    predictor = UNetPredictor.from_checkpoint(args.output, args.device)
    # The test images of this checkpoint's split (or of --split-from's) among these images:
    # the checkpoint may have been trained on a copy of them elsewhere.
    source = read_description(resolve_unet(args.split_from)) if args.split_from else description
    by_name = {s.name: s for s in samples}
    local = match_split(source["training"]["split"], list(by_name))
    test = [by_name[n] for n in local["test"] if n in by_name]
    if not test:
        print(
            "none of the split's test images is here: score this checkpoint where they are, "
            "with --score-only."
        )
        print(f"checkpoint: {args.output}")
        return 0
    tuned = description["postprocess"]
    print(
        "post-processing tuned on the validation images: "
        + ", ".join(f"{k} {predictor.settings[k]:g}" for k in DEFAULT_SETTINGS)
        + " | validation mean-average F1 "
        + " -> ".join(f"{tuned['scores'][k]['mean_average_f1']:.3f}" for k in ("default", "tuned"))
    )
    for name, settings in (("default", DEFAULT_SETTINGS), ("tuned", predictor.settings)):
        t2 = time.perf_counter()
        evaluation = evaluate_model(
            predictor, test, batch_size=args.batch_size, tta=args.tta, settings=settings
        )
        scores = scores_of(evaluation)
        print(f"test images: {len(test)} ({time.perf_counter() - t2:.1f} s to segment and score)")
        print(
            f"TEST, {name} thresholds{', flip TTA' if args.tta else ''}: mean-average F1 "
            f"(IoU 0.50:0.95) {scores['mean_average_f1']:.3f} | mSA "
            f"{scores['mean_segmentation_accuracy']:.3f} | F1@0.5 {scores['f1_50']:.3f} | "
            f"F1@0.75 {scores['f1_75']:.3f} | pixel IoU {scores['pixel_iou']:.3f} | cells "
            f"{scores['n_true']} true, {scores['n_pred']} predicted | goal F1@0.5 >= 0.92 "
            f"and mSA >= 0.55: {'met' if goal_met(scores) else 'not met'}"
        )
    print(f"checkpoint: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
