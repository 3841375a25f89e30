"""The ``cytomask`` command: the plugin's pipelines without a GUI.

Subcommands:

- ``cytomask train``: train a U-Net on image/mask files or tile-scan channels;
- ``cytomask tune``: choose a trained U-Net's post-processing thresholds on labelled images;
- ``cytomask segment``: segment folders of images or tile scans with a U-Net, SAM2 or
  both, on a dask.distributed cluster, resumably;
- ``cytomask evaluate``: metrics of predictions against ground truth, to CSV;
- ``cytomask export``: label images to other formats, COCO JSON and per-object tables.

Exit status: 0 on success, 1 for a problem with the inputs (a one-line
message on stderr says what to do), 2 for a wrong command line, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from . import own_version
from .io.layers import PIXEL_SIZE_RANGE_UM
from .io.writers import CHUNKED_ABOVE, FILE_FORMATS, SEGMENT_FORMATS, format_named
from .pipeline import METHODS
from .progress import (
    Pace,
    counted,
    drain,
    duration,
    host_out_of_memory,
    one_line,
    out_of_memory,
    progress_text,
)

EXIT_OK, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 130  # argparse exits with 2 itself
EXIT_TERMINATED = 128 + signal.SIGTERM  # a job scheduler's time limit, or kill


class UserError(Exception):
    """A problem with the user's inputs; its message is shown on one line."""


def _whole(text: str) -> int:
    """A whole number, else a usage error that says so (argparse named the function)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _format(text: str) -> str:
    """A key of the label formats; their suffixes (``tif``, ``ome.tif``) are accepted too.
    Anything else is left to the option's choices, which list what that command writes."""
    try:
        return format_named(text)
    except ValueError:
        return text


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def _number(text: str, low: float, high: float, *, open_low: bool = False) -> float:
    """A finite float in ``[low, high]`` (``(low, high]`` with ``open_low``), else a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number with a decimal point (0.5), not {text!r}"
        ) from None
    if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
        if math.isinf(high):  # "(0, inf]" took "inf" in and refused it
            within = f"above {low:g}" if open_low else f"of {low:g} or more"
        else:
            within = f"in {'(' if open_low else '['}{low:g}, {high:g}]"
        raise argparse.ArgumentTypeError(f"must be a finite number {within} (got {text})")
    return value


def _probability(text: str) -> float:
    return _number(text, 0.0, 1.0)


def _fraction(text: str) -> float:
    return _number(text, 0.0, 1.0, open_low=True)


def _positive_float(text: str) -> float:
    return _number(text, 0.0, math.inf, open_low=True)


def _pixel_size(text: str) -> float:
    """A pixel size in µm that a file's calibration may hold (:data:`PIXEL_SIZE_RANGE_UM`),
    as the dock's box takes."""
    return _number(text, *PIXEL_SIZE_RANGE_UM)


def _non_negative_float(text: str) -> float:
    return _number(text, 0.0, math.inf)


def _percentile(text: str) -> float:
    return _number(text, 0.0, 100.0)


def _user_path(text: str) -> Path:
    """A path with ``~`` as the home folder: the shell leaves ``--output=~/x``, a quoted
    ``'~/x'`` and a script's ``~`` alone, and they made a folder called ``~``."""
    return Path(os.path.expanduser(text))


class _Channels(argparse.Action):
    """``--channel N [N ...]`` that ends at the first value that is not a channel number,
    so ``--channel 0 1 scan.tif`` leaves ``scan.tif`` to the inputs."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        numbers = []
        for value in values:
            if not value.isdigit():
                break
            numbers.append(int(value))
        if not numbers:
            raise argparse.ArgumentError(
                self, f"expected channel numbers (0, 1, ...), got {values[0]!r}"
            )
        setattr(namespace, self.dest, numbers)
        namespace.inputs_after_channels = [
            *namespace.inputs_after_channels,
            *values[len(numbers) :],
        ]


class _HelpFormatter(argparse.HelpFormatter):
    """Shows a default only where there is one and the help text does not already say it,
    as it is typed: ``0.8,0.1,0.1`` or ``0.5 0.75 0.9``, not Python's ``(0.8, 0.1, 0.1)``
    (and a default of 0 is one: it was taken for "off", as ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, argparse.SUPPRESS) or default is False or "default" in text:
            return text
        if isinstance(default, list | tuple):
            separator = " " if action.nargs is not None else ","  # several words, or one
            default = separator.join(f"{value:g}" if isinstance(value, float) else str(value)
                                     for value in default)  # fmt: skip
        return f"{text} (default: {str(default).replace('%', '%%')})"  # argparse's % format


class _Given(argparse.Action):
    """Store an option's value and note that it was given on the command line: a
    resumed run takes the options not given from the run it resumes."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


# Network options, which a run from another model's weights (--from, --resume) takes from it.
_NETWORK_OPTIONS = (
    "architecture", "encoder", "encoder_depth", "targets", "encoder_weights", "percentiles",
)  # fmt: skip


def _fraction_triple(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts) or parts[0] <= 0:
        raise argparse.ArgumentTypeError(
            "expected three numbers of 0 or more (train,validation,test, e.g. 0.8,0.1,0.1) "
            f"with a training share above 0, got {text!r}"
        )
    return parts


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="where the network runs: auto (CUDA, then Apple MPS, then CPU), cpu, cuda, "
        "cuda:N or mps (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=_non_negative_int,
        default=0,
        help="CPU threads used by PyTorch; 0: PyTorch's default, except in cytomask segment's "
        "local cluster, whose workers share the cores (a cluster given with --scheduler starts "
        "its workers with one thread each: give --threads there) (default: %(default)s)",
    )


def _add_labelled_data(parser: argparse.ArgumentParser, title: str) -> None:
    """Options naming images with instance labels: file patterns or tile-scan channels."""
    data = parser.add_argument_group(title)
    data.add_argument(
        "--images",
        metavar="PATTERN",
        help="glob pattern of the input images, e.g. 'data/set*/raw.tif' (quote it)",
    )
    data.add_argument(
        "--masks",
        metavar="PATTERN",
        help="glob pattern of the instance-label images, with the same wildcards as --images, "
        "e.g. 'data/set*/instances_ids.png'",
    )
    data.add_argument(
        "--tilescan",
        nargs="+",
        metavar="FILE",
        help="TIFF tile scans holding both the input and the mask channel; every tile is used",
    )
    data.add_argument(
        "--input-channel",
        type=_non_negative_int,
        nargs="+",
        metavar="N",
        help="channel index(es) of the tile scans to segment, numbered from 0",
    )
    data.add_argument(
        "--mask-channel",
        type=_non_negative_int,
        metavar="N",
        help="channel index holding the instance labels",
    )
    data.add_argument(
        "--pixel-size", type=_pixel_size, metavar="MICRONS",
        help="the images' pixel size in µm, in place of what their files record (for files "
        "that lost it or hold a wrong one); images are resampled to the pixel size of the "
        "model they go through, as cytomask segment does",
    )  # fmt: skip


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a U-Net on images with instance labels",
        description="Train a U-Net (segmentation-models-pytorch) on images with instance "
        "labels. Give either --images and --masks (glob patterns with the same wildcards), or "
        "--tilescan files with --input-channel and --mask-channel. The images are split by "
        "image into training, validation and test sets (seeded); the checkpoint with the best "
        "validation mean-average F1 is written.",
        formatter_class=_HelpFormatter,
    )
    _add_labelled_data(p, "training data")
    model = p.add_argument_group("network (a new one; --from and --resume keep their model's)")
    model.add_argument(
        "--architecture",
        action=_Given,
        default="unet",
        help="network architecture: unet, unetplusplus, fpn or linknet",
    )
    model.add_argument(
        "--encoder",
        action=_Given,
        default="resnet34",
        help="encoder name from segmentation-models-pytorch, e.g. resnet18, resnet34, "
        "efficientnet-b3, or a timm encoder 'tu-NAME'",
    )
    model.add_argument(
        "--encoder-depth",
        action=_Given,
        type=_whole,
        choices=(3, 4, 5),
        default=5,
        help="number of encoder stages (3 to 5)",
    )
    model.add_argument(
        "--targets",
        action=_Given,
        choices=("interior_boundary", "foreground"),
        default="interior_boundary",
        help="what the network predicts: background/interior/boundary (touching cells are "
        "separated) or foreground only (cells split by distance-transform watershed)",
    )
    model.add_argument(
        "--encoder-weights",
        action=_Given,
        choices=("imagenet", "none"),
        default="imagenet",
        help="start from ImageNet encoder weights when they can be downloaded or are cached "
        "(random initialisation otherwise, with a notice), or from random weights",
    )
    model.add_argument(
        "--percentiles",
        action=_Given,
        type=_percentile,
        nargs=2,
        default=(1.0, 99.8),
        metavar=("LOW", "HIGH"),
        help="intensity percentiles mapped to 0 and 1, per image and channel",
    )
    start = model.add_mutually_exclusive_group()
    start.add_argument(
        "--from",
        dest="init_from",
        metavar="MODEL",
        help="fine-tune: start from this model's weights ('starter' for the starter model, a "
        "checkpoint file, or the name of one in the model folder) instead of random or "
        "ImageNet weights; the network options above are then taken from that model",
    )
    start.add_argument(
        "--resume",
        type=_user_path,
        metavar="CHECKPOINT",
        help="continue training this checkpoint up to --epochs in all; with the training "
        "state written beside it (CHECKPOINT minus .safetensors plus .training-state.pt), "
        "exactly where it stopped. Give the same --images and --masks again; training "
        "options not given are the run's own, but for --time-limit, --workers, --device and "
        "--threads",
    )
    run = p.add_argument_group("training")
    run.add_argument(
        "--epochs",
        action=_Given,
        type=_positive_int,
        default=50,
        help="maximum number of epochs, counting those done before a --resume",
    )
    run.add_argument(
        "--steps-per-epoch",
        action=_Given,
        type=_positive_int,
        default=100,
        help="optimiser steps per epoch",
    )
    run.add_argument(
        "--batch-size", action=_Given, type=_positive_int, default=8, help="crops per step"
    )
    run.add_argument(
        "--crop-size",
        action=_Given,
        type=_positive_int,
        default=256,
        help="training crop size in pixels (a multiple of 2**encoder-depth)",
    )
    run.add_argument(
        "--learning-rate",
        action=_Given,
        type=_positive_float,
        default=1e-3,
        help="AdamW learning rate",
    )
    run.add_argument(
        "--patience",
        action=_Given,
        type=_positive_int,
        default=12,
        help="stop after this many epochs without a better validation score",
    )
    run.add_argument(
        "--boundary-width",
        action=_Given,
        type=_positive_int,
        default=2,
        help="boundary class width in pixels",
    )
    run.add_argument(
        "--split",
        action=_Given,
        type=_fraction_triple,
        default=(0.8, 0.1, 0.1),
        metavar="TRAIN,VAL,TEST",
        help="fractions of the images for training, validation and test",
    )
    run.add_argument(
        "--seed",
        action=_Given,
        type=_non_negative_int,
        default=0,
        help="seed of the split, crops and weights",
    )
    run.add_argument(
        "--split-from",
        metavar="MODEL",
        help="keep the training, validation and test images of this model ('starter', a "
        "checkpoint file or name) instead of --split; images are matched by folder and file "
        "name, so the data may have moved",
    )
    run.add_argument(
        "--time-limit",
        type=_non_negative_float,
        default=0,
        metavar="MINUTES",
        help="stop once this many minutes have passed, the epoch under way ending there "
        "(0: no limit); a resumed run's counts from its own start",
    )
    run.add_argument(
        "--workers",
        type=_non_negative_int,
        help="processes that make the training crops ahead of the network; default: up to "
        "8 on a CUDA GPU, none on a CPU",
    )
    run.add_argument(
        "--resample", action=argparse.BooleanOptionalAction, default=None,
        help="with --from or --resume, resample images whose pixel size is known to the one "
        "the model learnt cells at (the starter model's 0.87 µm), as segmenting with it "
        "will; off, it learns the images' own (default: on; a resumed run's own)",
    )  # fmt: skip
    run.add_argument(
        "--tune", action=argparse.BooleanOptionalAction, default=None,
        help="choose the post-processing thresholds on the validation images after training; "
        "off, a new network's stay 0.5 and 0.5 with no minimum cell size, and a network "
        "fine-tuned with --from keeps those of the model it started from (default: on; a "
        "resumed run's own)",
    )  # fmt: skip
    _add_device(run)
    p.add_argument(
        "-o",
        "--output",
        # A separator at its end is kept: "runs/new/" is a folder to make, not a file.
        type=os.path.expanduser,
        help="checkpoint file to write (.safetensors), or a folder (one that exists, or "
        "named with / at its end) to write a new one in; "
        "default: the --resume checkpoint, "
        "else a new file in the model folder ($CYTOMASK_UNET_DIR or the user cache folder), "
        "listed by the napari widget",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output checkpoint"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result")


def _tune_parser(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="choose a trained U-Net's post-processing thresholds on labelled images",
        description="Choose the interior threshold, foreground threshold and minimum cell size "
        "that give the best mean-average F1 on labelled images, and record them in the "
        "checkpoint: 'cytomask segment', the napari widget and presets use them unless told "
        "otherwise. Training does this on its validation images; use this command for a "
        "checkpoint trained without it, or to tune on other images. Give images the network "
        "was not trained on: when the given images include the checkpoint's validation "
        "images, only those are used.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "model",
        type=_user_path,
        help="the checkpoint (.safetensors) to tune: rewritten, unless -o names another file; "
        "'starter', the model inside the package, needs -o",
    )
    _add_labelled_data(p, "labelled images")
    p.add_argument(
        "-o",
        "--output",
        type=_user_path,
        help="write the tuned checkpoint to this file (.safetensors) and keep MODEL as it is",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output checkpoint"
    )
    p.add_argument("--batch-size", type=_positive_int, default=4, help="tiles per forward pass")
    p.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=True,
        help="predict with flip test-time augmentation, as segmenting does by default; use "
        "--no-tta for a model that will segment without it",
    )  # fmt: skip
    _add_device(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the checkpoint")


def _segment_parser(sub) -> None:
    p = sub.add_parser(
        "segment",
        help="segment images or tile scans with a U-Net, SAM2, or SAM2 guided by a U-Net",
        description="Segment cells in image files, folders of images or glob patterns. Each "
        "input is a task on a dask.distributed cluster (a local cluster of worker processes, or "
        "an existing one with --scheduler). Every input gets a label image "
        "'<input>_<method>_cells.tif' and a provenance file '<input>_<method>_cells.json', both "
        "written atomically (with -o, in the inputs' folders relative to their common folder, "
        "so 'data/set*/raw.tif' gives OUT/set1/..., OUT/set2/...); the provenance file marks "
        "a finished input, so a re-run skips "
        "finished inputs and an interrupted run loses no finished work. Frames larger than "
        "--chunked-above are processed chunk-wise into OME-Zarr. Settings come from a preset "
        "saved in the napari dock (--preset) and/or from the options below, which override it.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="image files, folders of images, or quoted "
        "glob patterns such as 'scans/*.tif'",
    )  # fmt: skip
    p.set_defaults(inputs_after_channels=[])
    p.add_argument(
        "--preset",
        type=_user_path,
        help="preset file saved from the Segment cytoplasm dock, or "
        "the record or export provenance (.json) of a result, to make it again with its settings",
    )
    p.add_argument(
        "--method",
        choices=tuple(METHODS),
        help="; ".join(f"{key}: {title}" for key, title in METHODS.items())
        + ". Default: the preset's, else unet",
    )
    p.add_argument(
        "--channel",
        action=_Channels,
        nargs="+",
        metavar="N",
        help="channel index(es) to segment in multi-channel TIFF scans, numbered from 0; "
        "default: the channel the reader marks as input (or the only one)",
    )
    unet = p.add_argument_group("U-Net (methods unet and sam2_guided)")
    unet.add_argument(
        "-m",
        "--model",
        help="checkpoint file, the name of a checkpoint in the model folder, or 'starter' "
        "(default: the starter model shipped with the plugin)",
    )
    unet.add_argument(
        "--tile-size",
        type=_positive_int,
        help="tile size in pixels (default: the model's, enlarged by up to a quarter where "
        "fewer tiles then cover the image; the network's pixels when the image is resampled "
        "for it); under 256, fewer cells are found",
    )
    unet.add_argument(
        "--overlap",
        type=_non_negative_int,
        help="minimum overlap of neighbouring tiles in pixels (default 64), the network's "
        "pixels when the image is resampled for it",
    )
    unet.add_argument(
        "--batch-size",
        type=_positive_int,
        help="tiles per forward pass (default: 8 on a GPU, 1 on CPU)",
    )
    unet.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=None,
        help="average over flips (test-time augmentation, 4x the forward passes; default: the "
        "preset's, else on); --no-tta is faster",
    )  # fmt: skip
    unet.add_argument(
        "--resample", action=argparse.BooleanOptionalAction, default=None,
        help="resample images whose pixel size is known to the model's, where that is known "
        "(the starter model's 0.87 µm), so cells are as large as it learnt them (default: "
        "the preset's, else on); the labels keep the image's pixels",
    )  # fmt: skip
    unet.add_argument(
        "--pixel-size", type=_pixel_size, metavar="MICRONS",
        help="the images' pixel size in µm, in place of what their files record (for files "
        "that lost it or hold a wrong one)",
    )  # fmt: skip
    unet.add_argument(
        "--interior-threshold", type=_probability,
        help="interior probability that seeds a cell (default: the model's tuned one, else 0.5)",
    )  # fmt: skip
    unet.add_argument(
        "--foreground-threshold", type=_probability,
        help="probability above which a pixel is a cell (default: the model's tuned one, "
        "else 0.5)",
    )  # fmt: skip
    unet.add_argument(
        "--min-size", type=_non_negative_int,
        help="remove cells with fewer pixels (default: the model's tuned one, else 0), counted "
        "at the model's pixel size when the image is resampled for it",
    )  # fmt: skip
    sam2 = p.add_argument_group("SAM2 (methods sam2 and sam2_guided)")
    sam2.add_argument(
        "--sam2-model",
        help="Hugging Face id (e.g. facebook/sam2.1-hiera-tiny) or a local .pt checkpoint",
    )
    sam2.add_argument(
        "--sam2-config", help="configuration (or Hugging Face id) of a local SAM2 checkpoint"
    )
    sam2.add_argument("--points-per-side", type=_positive_int, help="prompt grid size (32)")
    sam2.add_argument("--pred-iou-thresh", type=_probability, help="predicted-IoU threshold (0.8)")
    sam2.add_argument(
        "--stability-score-thresh", type=_probability, help="stability score threshold (0.95)"
    )
    sam2.add_argument("--min-area", type=_non_negative_int, help="drop masks with fewer pixels (0)")
    sam2.add_argument(
        "--max-area-fraction",
        type=_fraction,
        help="drop masks larger than this fraction of the image as background (0.5)",
    )
    out = p.add_argument_group("outputs")
    out.add_argument(
        "-o",
        "--output-dir",
        type=_user_path,
        help="folder for the results (default: beside each input)",
    )
    out.add_argument(
        "--format", type=_format, choices=SEGMENT_FORMATS, default="tiff",
        help="label format of images processed in memory (chunk-wise ones are OME-Zarr); "
        "file endings such as tif or ome.tif name the formats too",
    )  # fmt: skip
    out.add_argument(
        "--chunked-above",
        type=_positive_float,
        default=CHUNKED_ABOVE / 1e6,
        metavar="MEGAPIXELS",
        help="frames with more megapixels are processed chunk-wise into OME-Zarr",
    )
    out.add_argument(
        "--chunk-size", type=_positive_int, default=2048,
        help="watershed window and OME-Zarr chunk size of chunk-wise processing, in pixels",
    )  # fmt: skip
    out.add_argument(
        "--overwrite", action="store_true", help="redo finished inputs and replace their results"
    )
    cluster = p.add_argument_group("dask cluster")
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of an existing dask.distributed scheduler (tcp://host:8786); "
        "'synchronous' runs everything in this process (for debugging)",
    )
    cluster.add_argument(
        "--workers",
        type=_non_negative_int,
        default=0,
        help="worker processes of the local cluster; 0: one per GPU, else one per 4 CPU cores",
    )
    _add_device(cluster)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the written files")


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare predicted labels with ground truth and write the metrics to CSV",
        description="Compare prediction/ground-truth pairs of label images: pixel metrics, "
        "object metrics (precision, recall, F1, panoptic quality…) at IoU thresholds, "
        "mean-average F1 and COCO AP (from counts summed over the frames and pairs), and "
        "mSA (mean segmentation accuracy over IoU 0.50:0.05:0.95, per image, averaged, as "
        "micro-sam reports it). A ground truth with no cell beside others with "
        "some (an image, or a frame of a stack, not labelled yet) is left out of the "
        "figures, said on stderr. Pairs are matched by what the wildcards of the two "
        "patterns capture, e.g. --pred 'out/*_unet_cells.tif' --gt 'scans/*.tif' "
        "--mask-channel 3. The CSV has one row per pair, frame, threshold and metric, plus "
        "'all' rows pooling every pair; rows of level left_out count what was left out "
        "(frames, pairs, and n_pred, the cells predicted there).",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--pred", required=True, metavar="PATTERN", help="predicted label files")
    p.add_argument(
        "--gt",
        required=True,
        metavar="PATTERN",
        help="ground-truth label files, or tile scans holding a mask channel (--mask-channel)",
    )
    p.add_argument(
        "--mask-channel",
        type=_non_negative_int,
        metavar="N",
        help="mask channel of the --gt scans that holds the labels (files of one channel are "
        "read as they are); by default a scan's only mask channel",
    )
    p.add_argument(
        "--stack",
        choices=("auto", "frames", "volume"),
        default="auto",
        help="how a ground truth of more than two axes is compared: frame by frame (each "
        "position and time point), or as one volume; auto: as the metrics dock does, frame "
        "by frame, with the planes of an axis its file names Z as one volume in each frame "
        "(plane by plane for a prediction that the plugin segmented, as cytomask segment "
        "or an export of its result records: it segments each plane on its own)",
    )
    p.add_argument(
        "--thresholds",
        type=_fraction,
        nargs="+",
        default=[0.5, 0.75, 0.9],
        metavar="IOU",
        help="IoU thresholds of the object metrics",
    )
    p.add_argument("-o", "--output", type=_user_path, required=True, help="CSV file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the written file")


def _export_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="convert label images to other formats, COCO JSON and per-object tables",
        description="Export label images (e.g. results of 'cytomask segment') to TIFF, "
        "OME-TIFF, PNG (a stack one file per frame) or NumPy, with a per-object CSV (area, "
        "centroid, bounding box, eccentricity, mean intensity of every channel of the source "
        "scan), cell counts, "
        "COCO RLE JSON and a provenance JSON. A provenance file of 'cytomask segment' or of an "
        "earlier export next to a label file names its source scan, whose channels are "
        "measured, and what made the labels.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("labels", nargs="+", metavar="LABELS", help="label files, folders or patterns")
    p.add_argument(
        "-o", "--output-dir", type=_user_path, required=True, help="folder for the exports"
    )
    p.add_argument(
        "--format", nargs="+", type=_format, choices=FILE_FORMATS, default=["tiff"],
        dest="formats", help="label formats to write",
    )  # fmt: skip
    p.add_argument(
        "--mask-channel", type=_non_negative_int, metavar="N",
        help="channel of scans with several mask channels that holds the labels; by default "
        "a scan's only mask channel",
    )  # fmt: skip
    p.add_argument("--coco", action="store_true", help="also write COCO RLE JSON")
    p.add_argument(
        "--no-tables", action="store_true", help="skip the per-object CSV and the cell counts"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the written files")


class _Parser(argparse.ArgumentParser):
    """Says so when the shell expanded an unquoted wildcard into several file names, or a
    file is named like an option."""

    _words: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        extra = message.removeprefix("unrecognized arguments: ")
        files = [word for word in extra.split() if os.path.exists(word)] if extra != message else []
        if message.endswith("expected one argument"):  # "--pred -cells.tif"
            files = [word for word in self._words if word.startswith("-") and os.path.exists(word)]
        if files and all(word.startswith("-") for word in files):
            message += f" (a file named like an option: write it as ./{files[0]})"
        elif files:
            message += (
                " (the shell expanded a wildcard into these file names: put the pattern in "
                "quotes, e.g. --images 'data/set*/raw.tif')"
            )
        super().error(message)


class _Version(argparse.Action):
    """Print the version of the code that runs (:func:`~napari_cytomask.own_version`) on
    one line, as argparse's own action would not: it wraps a long one at the terminal's
    width."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {own_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cytomask``."""
    parser = _Parser(
        prog="cytomask",
        description="Cell (cytoplasm) masks from microscopy images without a GUI. "
        "Run 'cytomask COMMAND --help' for the options of a command.",
    )
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="show the version that runs and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _train_parser(sub)
    _tune_parser(sub)
    _segment_parser(sub)
    _evaluate_parser(sub)
    _export_parser(sub)
    return parser


def _say(quiet: bool):
    """A ``print`` for progress messages that ``--quiet`` silences."""
    return (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))


def _set_threads(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _starts_grey(args) -> bool:
    """Whether the network a run goes on from (``--from``, ``--resume``; the model
    ``tune`` tunes) takes one channel, which a colour picture gives it as its grey
    version; False for random weights, or a file that cannot be read (said later)."""
    from .models.catalog import resolve_unet
    from .models.checkpoint import read_description

    start = next(
        (
            getattr(args, key)
            for key in ("resume", "init_from", "model")
            if getattr(args, key, None)
        ),
        None,
    )
    try:
        return start is not None and int(read_description(resolve_unet(start))["in_channels"]) == 1
    except (ValueError, OSError, KeyError, TypeError):
        return False


def _labelled_samples(args):
    """The images with instance labels named by :func:`_add_labelled_data`'s options, and
    a record of where they came from (absolute: a model records it, and a name relative to
    the folder the command ran in means nothing where the model is used)."""
    from .models.training import samples_from_folders, samples_from_tilescans

    if args.tilescan:
        if args.images or args.masks:
            raise UserError("give either --images/--masks or --tilescan, not both.")
        if args.input_channel is None or args.mask_channel is None:
            raise UserError("--tilescan needs --input-channel and --mask-channel.")
        samples = samples_from_tilescans(args.tilescan, args.input_channel, args.mask_channel)
        sources = args.tilescan
    elif args.images and args.masks:
        samples = samples_from_folders(args.images, args.masks, grey=_starts_grey(args))
        sources = [args.images, args.masks]
    else:
        raise UserError(
            "say where the labelled images are: --images and --masks, or --tilescan with "
            "--input-channel and --mask-channel."
        )
    if args.pixel_size:
        pixel = (args.pixel_size, args.pixel_size)
        samples = [dataclasses.replace(s, pixel_size_um=pixel) for s in samples]
    return samples, [os.path.abspath(os.path.expanduser(p)) for p in sources]


def _recorded_split(checkpoint: str, samples) -> dict[str, list[str]] | None:
    """The split of ``checkpoint`` (a model as ``--from`` takes it) for ``samples``; None
    for a lone image, which the new run cuts as the recorded run did."""
    from .models.catalog import resolve_unet
    from .models.checkpoint import read_description
    from .models.training import cut_as_recorded, match_split

    training = read_description(resolve_unet(checkpoint)).get("training") or {}
    recorded = training.get("split")
    if not recorded:
        raise UserError(f"{checkpoint} records no split of training images.")
    if training.get("held_back"):
        cut = cut_as_recorded(training, samples)
        if cut is samples:
            raise UserError(
                f"--split-from {checkpoint}: it trained on one image with its last quarter held "
                "back to validate on; give that image alone, and it is cut the same way."
            )
        return None  # the new run cuts the lone image as the recorded one did
    try:
        return match_split(recorded, [s.name for s in samples])
    except ValueError as err:
        raise UserError(f"--split-from {checkpoint}: {err}") from err


def _train(args) -> int:
    from .io.atomic import WriteError
    from .models.checkpoint import read_description
    from .models.training import (
        TrainingSettings,
        iter_train,
        kept_start_note,
        resumed_settings,
        saved_epoch_note,
        state_note,
        time_limit_note,
    )
    from .models.unet import UNetConfig

    if args.resume:
        _not_the_starter(args.resume, "--resume")
    _set_threads(args.threads)
    samples, sources = _labelled_samples(args)
    if args.split_from and args.resume:
        raise UserError("--resume keeps the split of the run it resumes; leave out --split-from.")
    if args.split_from and "split" in getattr(args, "given", ()):
        raise UserError(
            f"--split-from keeps the split of {args.split_from}; leave out --split, or "
            "--split-from to split the images anew."
        )
    split = _recorded_split(args.split_from, samples) if args.split_from else None
    if args.init_from:
        from .models.catalog import resolve_unet

        read_description(resolve_unet(args.init_from))  # not a model: said before any note
    ignored = [n for n in _NETWORK_OPTIONS if n in getattr(args, "given", ())]
    if ignored and (args.resume or args.init_from):
        options = ", ".join("--" + n.replace("_", "-") for n in ignored)
        print(
            f"cytomask: note: {options} ignored: the network is that of "
            f"{args.resume or args.init_from}.",
            file=sys.stderr,
        )
    config = None  # with --from and --resume, the network is that of the model
    if not (args.resume or args.init_from):
        if args.crop_size % 2**args.encoder_depth:
            raise UserError(
                f"--crop-size {args.crop_size} must be a multiple of {2**args.encoder_depth} "
                f"for an encoder of depth {args.encoder_depth} (--encoder-depth)."
            )
        config = UNetConfig(
            architecture=args.architecture,
            encoder=args.encoder,
            encoder_depth=args.encoder_depth,
            targets=args.targets,
            percentiles=tuple(args.percentiles),
            tile_size=args.crop_size,
        )
    settings = TrainingSettings(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        boundary_width=args.boundary_width,
        fractions=args.split,
        seed=args.seed,
        encoder_weights=None if args.encoder_weights == "none" else args.encoder_weights,
        device=args.device,
        time_limit=args.time_limit * 60 or None,
        workers=args.workers,
        tune=args.tune is not False,
        resample=args.resample is not False,
    )
    if args.resume:
        # The options not given are the run's own, so that --resume MODEL alone finishes it.
        switches = [name for name in ("resample", "tune") if getattr(args, name) is not None]
        given = {*getattr(args, "given", ()), *switches}
        settings = resumed_settings(read_description(args.resume), settings, given)
    gen = iter_train(
        samples,
        args.output,
        config,
        settings,
        resume=args.resume,
        init_from=args.init_from,
        sources=sources,
        split=split,
        overwrite=args.overwrite,
    )
    say = _say(args.quiet)
    # The best network so far (a resumed run's from the start); whether an epoch has ended.
    saved, trained = (Path(args.resume) if args.resume else None), False
    beaten = False  # whether an epoch scored above the model a fine-tuning run started from
    choosing = False  # whether training has ended and its thresholds are being chosen
    started, pace = time.monotonic(), Pace()
    # When the epoch under way's first step ended, and which it was; when the run's did.
    first_step = limit_from = None
    losses: list[float] = []  # the epoch under way's: a step line is printed every 10th step
    try:
        while True:
            try:
                progress = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            if progress.phase == "notice":
                print(f"cytomask: note: {progress.message}", file=sys.stderr)
            elif progress.phase == "split":
                say(_split_text(progress.split))
                pace.left(progress.epoch, progress.epochs)  # epochs are timed from here
            elif progress.phase == "epoch":
                saved = progress.checkpoint or saved
                beaten = beaten or bool(progress.improved)
                val = progress.validation
                text = (
                    f"val mean-average F1 {val['mean_average_f1']:.3f}, F1@0.5 {val['f1_50']:.3f}"
                    if val
                    else "no validation images"
                )
                mark = " (best, saved)" if progress.improved else ""
                left = pace.left(progress.epoch, progress.epochs)
                left = "" if left is None else f", about {_clock(left)} left"
                what = f"epoch {progress.epoch}/{progress.epochs}"
                if args.time_limit and progress.epochs < settings.epochs:
                    what += f" (of {settings.epochs}: about {progress.epochs} fit the time limit)"
                # As the history records it: of all the steps of an epoch a time limit cut
                # short and a resumed run finished, not of those run here.
                if math.isfinite(progress.loss):
                    text = f"loss {progress.loss:.4f}, {text}"
                losses = []
                if progress.step == 0:  # fine-tuning's epoch 0
                    what, mark = "the starting model", " (kept unless an epoch scores higher)"
                    pace = Pace()  # its thresholds and scores are no epoch's time
                    pace.left(progress.epoch, progress.epochs)
                else:
                    trained = True
                say(f"{what}: {text}{mark} "
                    f"[{_clock(time.monotonic() - started)} elapsed{left}]")  # fmt: skip
            elif progress.phase == "train":
                losses.append(progress.loss)
                now = time.monotonic()
                # Steps are timed from the end of the epoch's first: step 1, or, of an epoch
                # a time limit cut short and a resumed run finishes, the one after its last.
                if len(losses) == 1:
                    first_step = (now, progress.step)
                    limit_from = limit_from or now  # the time limit counts from about here
                elif progress.step % 10 == 0:
                    # Measured, so that a long first epoch (13 minutes of a CPU's) does not
                    # pass in silence; a time limit may end it sooner.
                    per_step = (now - first_step[0]) / (progress.step - first_step[1])
                    left = per_step * (progress.steps - progress.step)
                    if args.time_limit:
                        left = min(left, max(limit_from + args.time_limit * 60 - now, 0))
                    say(f"  step {progress.step}/{progress.steps} loss {progress.loss:.4f} "
                        f"[about {_clock(left)} left in this epoch]")  # fmt: skip
            elif progress.phase == "validate":
                say(f"  validation image {progress.step}/{progress.steps}")
            elif progress.phase == "tune":
                choosing = trained or args.init_from is None
                if progress.step == 1:
                    say(
                        "choosing the post-processing thresholds on the validation images"
                        if choosing
                        # Before the first epoch of a fine-tuning run: the starting model's,
                        # so that its epochs are scored fairly.
                        else "choosing the starting model's post-processing thresholds on "
                        "the validation images (each epoch is scored with them)"
                    )
    except KeyboardInterrupt:
        if choosing:
            print(f"cytomask train: {_thresholds_interrupted(saved)}", file=sys.stderr)
        else:
            print(f"cytomask train: interrupted. {_kept(saved, beaten, args)}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        raise UserError(f"{_memory_text(err, 'train')} {_kept(saved, beaten, args)}.") from err
    except WriteError as err:  # a full disk: the file it names is as it was, not the others
        kept = "No network was saved" if saved is None else _kept(saved, beaten, args)
        raise UserError(f"{err} {kept}.") from err
    for note in (time_limit_note(result), saved_epoch_note(result.description)):
        if note:
            say(note[0].lower() + note[1:])
    if "postprocess" in result.description:
        _say_tuned(say, result.description["postprocess"], result.description)
    if note := kept_start_note(result.description):
        print(f"cytomask: note: {note}", file=sys.stderr)
    if note := state_note(result.checkpoint, "--resume"):
        say(note)
    print(result.checkpoint)
    return EXIT_OK


def _thresholds_interrupted(saved: Path) -> str:
    """What a training run interrupted as it chose its thresholds, its epochs over, left in
    ``saved``: it said to continue from the last finished epoch, as if training had been."""
    from .models.checkpoint import read_description
    from .models.training import kept_start_note, kept_thresholds

    description = read_description(saved)
    text = (
        "interrupted as the post-processing thresholds were being chosen; training itself "
        f"had finished. The model is saved in {saved} with {kept_thresholds(description)}, "
        f"not chosen for it. Choose them later with cytomask tune {shell_quoted(saved)}, "
        "given this run's --images and --masks (or --tilescan)."
    )
    return " ".join(n for n in (text, kept_start_note(description)) if n)


def _kept(saved: Path | None, beaten: bool, args) -> str:
    """What a training run that stopped early leaves (``beaten``: an epoch scored above
    the model a fine-tuning run started from), and how to go on with it."""
    if saved is None:
        return "No epoch had finished; nothing was saved"
    best = (
        f"No epoch had scored above the starting model, which is kept in {saved} with the "
        "run's state"
        if args.init_from and not beaten
        else f"The best network so far is in {saved}"
    )
    best += "; continue from the last finished epoch with"
    if args.resume and Path(saved).resolve() == Path(args.resume).resolve():
        return f"{best} the same command"
    if args.init_from:  # --resume goes on from the run's own weights: no --from beside it
        how = "in place of --from"
    elif args.resume:  # the run went on into another file
        how = f"in place of --resume {args.resume}"
    else:
        how = "added"
    return f"{best} the same command and --resume {saved} {how}"


#: What to change, by command, when a GPU's memory ran out ...
_MEMORY_ADVICE = {
    "segment": "give a smaller --batch-size, then a smaller --tile-size (256 or more: smaller "
    "tiles see too little around a cell and find fewer cells), or run on the CPU (--device cpu)",
    "train": "give a smaller --batch-size or --crop-size, or train on the CPU (--device cpu)",
    "tune": "give a smaller --batch-size, or run on the CPU (--device cpu)",
}
#: ... and when the computer's did (:func:`~.progress.host_out_of_memory`): the CPU is
#: no way out then, and a whole frame's probabilities, not the tiles, may be what did not fit.
_HOST_MEMORY_ADVICE = {
    "segment": "close other programs or give a smaller --batch-size; for frames of many "
    "megapixels, a smaller --chunked-above (say 16: frames of more are then segmented chunk "
    "by chunk)",
    "train": "give a smaller --batch-size or --crop-size, or close other programs",
    "tune": "give a smaller --batch-size, or close other programs",
}


def _memory_text(err: BaseException, command: str) -> str:
    advice = (_HOST_MEMORY_ADVICE if host_out_of_memory(err) else _MEMORY_ADVICE).get(
        command, "close other programs, or give smaller images"
    )
    return f"{one_line(err)}; {advice}."


def _split_text(split: dict[str, list[str]]) -> str:
    """How many and which images train, validate and are held back for testing."""
    sizes = {k: len(split.get(k) or []) for k in ("train", "validation", "test")}
    names = "; ".join(f"{k}: {', '.join(v)}" for k, v in split.items() if v)
    # Held back, never read: the run does not score them, cytomask evaluate does.
    test = (
        f", holding back {sizes['test']} for testing (never trained or tuned on: score "
        "the model on them with cytomask segment and cytomask evaluate)"
        if sizes["test"]
        else ""
    )
    return (
        f"training on {sizes['train']} image(s), validating on {sizes['validation']}{test} "
        f"({names})"
    )


def _clock(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _say_tuned(say, tuned: dict, description: dict | None = None) -> None:
    """The tuned settings as progress, and a note, even when quiet, on a model of little use
    (``description``: the model's)."""
    from .models.training import tuned_note

    say(_tuned_text(tuned))
    if note := tuned_note(tuned, description):
        print(f"cytomask: note: {note}", file=sys.stderr)


def _tuned_text(tuned: dict) -> str:
    """One line about tuned post-processing settings and what they changed."""
    scores = tuned["scores"]
    # From the thresholds the model had (a fine-tuning run's: the starting model's) where
    # it had its own; the defaults otherwise.
    before, after = scores.get("own", scores["default"]), scores["tuned"]
    start = "the thresholds it started with" if "own" in scores else "the default thresholds"
    # Scored as segmenting will segment: a training run's epochs are scored without flips,
    # and their F1 and tuning's differed with no word why (0.000 and 0.667 on one image).
    flips = " with flips (as segmenting does by default; the epochs' scores are without)"
    return (
        f"post-processing tuned on {len(tuned['tuned_on'])} image(s): interior threshold "
        f"{tuned['interior_threshold']:g}, foreground threshold {tuned['foreground_threshold']:g}, "
        f"minimum cell size {tuned['min_size']} px; there{flips * bool(tuned.get('tta'))}, "
        f"from {start} to "
        f"these, mean-average F1 {before['mean_average_f1']:.3f} -> "
        f"{after['mean_average_f1']:.3f}, F1@0.5 {before['f1_50']:.3f} -> {after['f1_50']:.3f}"
    )


def _not_the_starter(path: Path, command: str, also: str = "") -> None:
    """Refuse to rewrite the packaged starter model (which ``--from`` and ``--model``
    take by name), saying what does what was meant (and ``also``, another way)."""
    from .models.catalog import STARTER

    if str(path) == STARTER and not path.exists():
        raise UserError(
            f"{command} rewrites a checkpoint file, and 'starter' is the model inside the "
            "package; to adapt it to your images, train from it (cytomask train --from "
            f"starter), which also chooses its thresholds on your validation images{also}."
        )


def _tune(args) -> int:
    from .io.atomic import check_output, make_folder, same_file, write_atomically
    from .models.catalog import resolve_unet
    from .models.checkpoint import checkpoint_file, read_description

    output = checkpoint_file(args.output) if args.output else None
    if output is not None and same_file(str(output), str(resolve_unet(args.model))):
        output = None  # the model itself: rewritten, as without -o
    if output is None:
        _not_the_starter(args.model, "tune", "; to tune a copy, give -o NEW.safetensors")
    elif os.path.lexists(output) and not args.overwrite:
        raise UserError(
            f"{output} already exists and was left as it is; choose another -o file, or pass "
            "--overwrite to replace it."
        )
    else:
        check_output(output, overwrite=True)  # a folder in the way, a disk it cannot write
    _set_threads(args.threads)
    samples, _ = _labelled_samples(args)
    say = _say(args.quiet)
    if output is None:
        tuned = _tuned_checkpoint(args.model, samples, args, say)
        output = resolve_unet(args.model)  # a name's file in the model folder
    else:
        # A copy is tuned, and moved in once tuned: the model given (the starter model, inside
        # the package) stays as it is, and a run that fails or is stopped leaves no untuned
        # copy under the new name, nor replaces a file with one.
        with tempfile.TemporaryDirectory(
            dir=make_folder(output.parent), prefix=".cytomask-tune-"
        ) as folder:
            copy = Path(folder) / output.name
            shutil.copyfile(resolve_unet(args.model), copy)
            tuned = _tuned_checkpoint(copy, samples, args, say)
            write_atomically(output, lambda tmp: os.replace(copy, tmp), overwrite=args.overwrite)
    used = len(tuned["tuned_on"])
    given = {s.name for s in samples}
    parts = [name for name in tuned["tuned_on"] if name not in given]
    if parts:  # a lone image the checkpoint trained on in part
        say(f"only the part it held back from training was used: {', '.join(parts)}")
    elif used < len(samples):
        say(f"only the checkpoint's {used} validation image(s) among the {len(samples)} given "
            "were used: the others are its training or test images")  # fmt: skip
    _say_tuned(say, tuned, read_description(output))
    print(output)
    return EXIT_OK


def _tuned_checkpoint(model, samples, args, say) -> dict:
    """Tune the checkpoint ``model`` in place on ``samples`` as ``args`` ask, saying how far
    it is; return the tuned settings."""
    from .models.training import iter_tune_checkpoint

    gen = iter_tune_checkpoint(
        model, samples, device=args.device, batch_size=args.batch_size, tta=args.tta
    )
    try:
        while True:
            done, _ = next(gen)
            if done == 1:
                say("predicting the labelled images, then scoring threshold settings")
    except StopIteration as stop:
        return stop.value


def _preset(args):
    """The preset file's settings with the command line's options on top, and the file's
    own (None without one)."""
    from dataclasses import replace

    from .pipeline import Preset, PresetError, Sam2Step, UNetStep

    preset = Preset.load(args.preset) if args.preset else None
    method = args.method or (preset.method if preset else "unet")
    unet = preset.unet if preset else None
    if args.model:
        unet = replace(unet, model=args.model) if unet else UNetStep(model=args.model)
    if unet and Path(unet.model).is_file():
        # A file is named by its absolute path: workers may run elsewhere, and the
        # provenance says exactly which file it was.
        unet = replace(unet, model=str(Path(unet.model).resolve()))
    unet_options = {
        "tile_size": args.tile_size, "overlap": args.overlap, "batch_size": args.batch_size,
        "tta": args.tta, "resample": args.resample, "interior_threshold": args.interior_threshold,
        "foreground_threshold": args.foreground_threshold, "min_size": args.min_size,
    }  # fmt: skip
    unet_options = {k: v for k, v in unet_options.items() if v is not None}
    if method in ("unet", "sam2_guided"):
        unet = replace(unet or UNetStep(), **unet_options)
    sam2 = preset.sam2 if preset else None
    if method in ("sam2", "sam2_guided"):
        sam2 = sam2 or Sam2Step()
        if args.sam2_model:
            sam2 = replace(sam2, model=args.sam2_model, config=args.sam2_config)
        elif args.sam2_config:
            sam2 = replace(sam2, config=args.sam2_config)
        if Path(sam2.model).is_file():
            sam2 = replace(sam2, model=str(Path(sam2.model).resolve()))
        params = {
            "points_per_side": args.points_per_side, "pred_iou_thresh": args.pred_iou_thresh,
            "stability_score_thresh": args.stability_score_thresh,
        }  # fmt: skip
        labels = {"min_area": args.min_area, "max_area_fraction": args.max_area_fraction}
        sam2 = replace(
            sam2,
            params={**sam2.params, **{k: v for k, v in params.items() if v is not None}},
            labels={**sam2.labels, **{k: v for k, v in labels.items() if v is not None}},
        )
    try:
        combined = Preset(
            method=method,
            unet=unet if method != "sam2" else None,
            sam2=sam2 if method != "unet" else None,
            split=preset.split if preset else None,
            channels=args.channel or (preset.channels if preset else None),
        )
    except PresetError as err:
        raise UserError(str(err)) from err
    return combined, preset


def _segment(args) -> int:
    from . import batch
    from .io.atomic import locked_folders, same_file
    from .io.files import file_pixel_size, find_inputs, input_roots
    from .models.catalog import learnt_pixel_size, resolve_unet
    from .models.checkpoint import CheckpointError, read_description
    from .models.sam2_models import HF_MODELS, check_downloadable
    from .pipeline import PresetError

    preset, in_file = _preset(args)
    for step, given in (("unet", args.model), ("sam2", args.sam2_model)):
        try:
            preset.check((step,))
        except (PresetError, CheckpointError) as err:
            if not given and getattr(in_file, step, None) is not None:  # the file's model
                raise UserError(f"{args.preset}: {err}") from err
            raise
    preset = preset.with_model_settings()
    if preset.unet is not None:
        _note_if_unfinished(preset.unet.model)
        if args.preset and not args.model:
            _note_another_model(args.preset, preset.unet.model)
        model = preset.unet.model
        if args.resample and learnt_pixel_size(read_description(resolve_unet(model))) is None:
            print("cytomask: note: --resample: this model records no pixel size (its training "
                  "images did not all record the same one, or it was trained before models kept "
                  "it), so it segments images at their own pixels.", file=sys.stderr)  # fmt: skip
    if args.scheduler in (None, "synchronous"):  # workers on this machine: check its devices
        from .models.device import get_device

        get_device(args.device)
    links: dict[Path, Path] = {}
    sources = find_inputs(args.inputs, exclude=batch.OUTPUT_ENDINGS, same=links)
    for path, kept in links.items():
        print(f"cytomask: note: {path} and {kept} are one file (a link and its target): "
              f"segmented once, as {kept.name}.", file=sys.stderr)  # fmt: skip
    # Each input opened once here, before the run: what the reader says of it is said once.
    masks = batch.masks_only(sources)
    if preset.channels is None:
        for path, why in masks.items():
            print(f"cytomask: note: {path} {why}: skipped; --channel 0 segments it anyway.",
                  file=sys.stderr)  # fmt: skip
        sources = [source for source in sources if source not in masks]
        if not sources:
            raise UserError("every input holds label ids only (masks) or shows nothing: "
                            "nothing to segment.")  # fmt: skip
    if preset.sam2 is not None and preset.sam2.model in HF_MODELS:
        # Offline, with nothing downloaded: said once here, not by every input's task.
        check_downloadable(preset.sam2.model)
    pixel, if_none = args.pixel_size, None
    typed, source = _typed_pixel_size(args.preset) if args.preset and pixel is None else (None, "")
    unknown = [path for path in sources if file_pixel_size(path) is None] if typed else []
    if typed is not None and all(same_file(path, source) for path in sources):
        pixel = typed  # its image again, whose file's size was wrong
        print(f"cytomask: note: pixels of {typed:g} µm, as the run {args.preset} records was "
              "given them (--pixel-size gives others).", file=sys.stderr)  # fmt: skip
    elif unknown:
        # Likely lost as that run's image had lost it: the size it was given, said.
        if_none, every = typed, len(unknown) == len(sources)
        which = "these images" if every else f"{len(unknown)} of the {len(sources)} images"
        others = "" if every else "; the others keep their files' own"
        print(f"cytomask: note: {which} record no pixel size: they are given pixels of "
              f"{typed:g} µm, as the run {args.preset} records was given them for {source} "
              f"(--pixel-size gives them another){others}.", file=sys.stderr)  # fmt: skip
    elif typed is not None:
        print(f"cytomask: note: the run {args.preset} records was given pixels of {typed:g} "
              f"µm for {source}; these images keep their files' own (--pixel-size {typed:g} "
              "gives them that size).", file=sys.stderr)  # fmt: skip
    options = batch.Options(
        fmt=args.format,
        chunked_above=int(args.chunked_above * 1e6),
        chunk_size=args.chunk_size,
        overwrite=args.overwrite,
        pixel_size_um=pixel,
        pixel_size_if_none_um=if_none,
    )
    roots = input_roots(args.inputs)
    folders = batch.output_folders(sources, args.output_dir, roots)
    with locked_folders(folders, "'cytomask segment'"):
        return _segment_locked(args, preset, sources, options, roots)


def _note_another_model(preset: str, model: str) -> None:
    """Say when the U-Net ``model`` a run with ``--preset`` of a result's record (or
    provenance) uses is not the file that made the result: the starter model of another
    napari-cytomask, a checkpoint trained again under its name. Its cells differed (74
    against 75), and nothing said so."""
    from .io.layers import file_sha256
    from .models.catalog import resolve_unet

    try:
        made = json.loads(Path(preset).read_text(encoding="utf-8"))
        version = made["versions"]["napari-cytomask"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    recorded = None
    while isinstance(made, dict) and recorded is None:  # a split's: the U-Net run it split
        used = made.get("model")
        if isinstance(used, dict) and used.get("name") == model:
            recorded = used.get("sha256")
        made = made.get("made_from")
    if not isinstance(recorded, str):
        return
    path = resolve_unet(model)
    if file_sha256(path) == recorded:
        return
    named = f"'{model}'" if Path(model) == Path(path) else f"'{model}' ({path})"
    print(f"cytomask: note: the model {named} is not the file the run {preset} "
          f"records (SHA-256 {recorded[:12]}…; that run was napari-cytomask {version}, this "
          f"is {own_version()}): its cells may differ. Give --model the file that made them "
          "to make them again.", file=sys.stderr)  # fmt: skip


def _typed_pixel_size(preset: str) -> tuple[float | None, str]:
    """The pixel size given to the run whose record is ``preset`` (``--pixel-size``), or
    to the U-Net run an export's provenance ``preset`` describes (typed in the dock; both
    record it so), and the image it was given for (its file's being wrong), which a run
    again with ``--preset`` of the record would not know; ``(None, "")`` for a preset
    file, or a run given none."""
    try:
        record = json.loads(Path(preset).read_text(encoding="utf-8"))
        typed, source = record["options"]["pixel_size_um"], record["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""
    number = isinstance(typed, (int, float)) and not isinstance(typed, bool)
    low, high = PIXEL_SIZE_RANGE_UM  # a record of an older run's 80 µm: not given again
    if not (number and low <= typed <= high and isinstance(source, str)):
        return None, ""
    return float(typed), source


#: Seconds between two progress lines of one input of ``cytomask segment``, or of an export.
_PROGRESS_EVERY = 15.0


def _segment_locked(args, preset, sources, options, roots) -> int:
    from . import batch

    todo, done, refused = batch.plan(sources, preset, args.output_dir, options, roots)
    say = _say(args.quiet)
    if done:
        say(f"{len(done)} of {len(sources)} input(s) already segmented with these settings; "
            "skipped (--overwrite redoes them)")  # fmt: skip
    if len(refused) == 1 and not todo:
        raise UserError(next(iter(refused.values())))
    for why in refused.values():  # said first; the others are segmented
        print(f"cytomask segment: error: {why}", file=sys.stderr, flush=True)
    if not todo and refused:
        raise UserError(f"none of the {len(refused)} inputs left to do could be segmented "
                        "(see above).")  # fmt: skip
    if not todo:
        return EXIT_OK

    timing: dict = {}  # input -> [its Pace, when its last progress line was said]
    inputs = Pace()  # the inputs' own: a batch of hundreds said how far, not how long
    finished: set = set()  # a late event from a worker says nothing about these
    # A cluster's progress comes in the client's thread, its results in this one.
    lock = threading.Lock()

    def progress(job, event):
        now = time.monotonic()
        with lock:
            if job.source in finished:
                return
            pace, said = timing.setdefault(job.source, [Pace(), now])
            left = pace.left(event.done, event.total, (counted(event.stage), event.total), now)
            if now - said >= _PROGRESS_EVERY:
                timing[job.source][1] = now
                text = progress_text(event.stage, event.done, event.total, left, event.detail)
                say(f"  {job.source}: {text}")

    def report(i, n, job, summary, error):
        with lock:
            finished.add(job.source)
        left = inputs.left(i, n)  # from the pace since the first input ended
        ahead = f"; about {duration(left)} left for the other {n - i}" if left else ""
        if error is not None:
            text = _memory_text(error, "segment") if out_of_memory(error) else one_line(error)
            print(f"[{i}/{n}] {job.source}: error: {text}", file=sys.stderr, flush=True)
            return
        used, of = summary["channels_used"], summary["channels"]
        channels = f" (channel {', '.join(map(str, used))} of {of})" if of > len(used) else ""
        if summary["segmented_on"]:  # a colour picture, for a model of one channel
            channels = f" ({summary['segmented_on']})"
        if channels and summary["channel_guessed"]:
            taken = {
                "first": "the first was taken",
                "pixels": "this one's pixels look like it, the others' like fluorescence",
            }[summary["channel_guessed"]]
            channels = (
                f"{channels[:-1]}: none is named like transmitted light, so {taken}; "
                "--channel N picks another)"
            )
        cells = summary["cells"]
        say(f"[{i}/{n}] {job.source}{channels}: {cells} cell{'s' * (cells != 1)} in "
            f"{summary['seconds']:.1f} s{ahead}")  # fmt: skip
        notes = [summary["note"]] if summary["note"] else []
        if summary["nothing_to_find"]:  # no setting would find cells there
            notes.append(f"No cells found: {summary['nothing_to_find']}.")
        elif not summary["cells"]:
            notes.append(_no_cells_advice(preset, summary["channels"], summary["note"]))
        if notes:
            print(f"cytomask: note: {job.source}: {' '.join(notes)}", file=sys.stderr, flush=True)
        print(summary["output"], flush=True)
        listed.add(job)

    where = {None: "a local dask cluster", "synchronous": "this process"}
    say(f"segmenting {len(todo)} input(s) in "
        f"{where.get(args.scheduler, args.scheduler)}")  # fmt: skip
    listed: set = set()  # the jobs whose results were listed
    stamps = batch.record_stamps(todo)
    try:
        outcome = batch.run(
            todo, preset, options, device=args.device, scheduler=args.scheduler,
            workers=args.workers, threads=args.threads, on_result=report, on_progress=progress,
        )  # fmt: skip
    except KeyboardInterrupt as err:
        raise _Interrupted(_segment_interrupted(args, todo, stamps, listed)) from err
    failed = outcome.failed
    if outcome.untried:  # each input left would fail on the same disk
        raise UserError(
            f"stopped at the error above, which every input left would meet too: "
            f"{outcome.untried} not tried; the {len(outcome.finished)} done are kept. Once it "
            "is mended, run the same command again: finished inputs are skipped."
        )
    if not failed and not refused:
        return EXIT_OK
    faults, inputs = len(failed) + len(refused), len(todo) + len(refused)
    what = "failed or were refused" if refused else "failed"
    if inputs == 1:
        raise UserError("the input failed (see above); fix it and run the same command again.")
    if faults == inputs:  # "4 of 4 inputs failed; the others are done"
        raise UserError(
            f"all {inputs} inputs {what} (see above); fix them and run the same command again."
        )
    raise UserError(
        f"{faults} of {inputs} inputs {what} (see above); the others are done. Fix them and "
        "run the same command again: finished inputs are skipped."
    )


def _segment_interrupted(args, todo, stamps, listed: set) -> str:
    """What a ``segment`` run stopped by Ctrl+C (or SIGTERM) kept, once its cluster closed:
    results finished just before the stop, or by workers as they stopped, are on disk
    without having been listed, and are listed here first."""
    from . import batch

    finished = batch.finished_since(todo, stamps)
    for job, output in finished.items():
        if job not in listed:
            print(output, flush=True)
    kept = _SEGMENT_OVERWRITE_INTERRUPTED if args.overwrite else _KEPT_WHEN_INTERRUPTED["segment"]
    return (
        f" It had finished {len(finished)} of the {len(todo)} inputs to do (their results "
        f"are listed above).{kept}"
    )


def shell_quoted(path: str | os.PathLike) -> str:
    """``path`` as the system's shell takes it: Windows' cmd and PowerShell want double
    quotes (single ones stay in the name there); Unix shells single ones."""
    if sys.platform == "win32":
        return subprocess.list2cmdline([str(path)])
    return shlex.quote(str(path))


def _no_cells_advice(preset, channels: int, noted: str) -> str:
    """What to try when a run found no cells in an image of ``channels`` channels, after
    what it ``noted`` (which may have said to fine-tune already)."""
    from .models.catalog import STARTER

    if preset.sam2 is not None:  # SAM2, guided by the U-Net or not: its masks were dropped
        params, labels = preset.sam2.sam2_params(), preset.sam2.label_params()
        tried = (
            ("--pred-iou-thresh", params.pred_iou_thresh),
            ("--stability-score-thresh", params.stability_score_thresh),
            ("--min-area", labels.min_area),
        )
        lower = [option for option, value in tried if value > 0]
        # Those at 0 already: lowered, they keep nothing more ("lower them" was said).
        advice = f"lower {', '.join(lower)}, or " if lower else ""
        advice += "raise --max-area-fraction (masks of more of the image are dropped)."
        if preset.unet is not None:
            advice += (
                " Guided by the U-Net, masks mostly outside its cells are dropped too: does "
                "the U-Net find the cells (--method unet)?"
            )
    elif "fine-tune" in noted:
        # The note says the image is unlike the model's: lower thresholds found 1 nucleus
        # of 125 in a fluorescence image, where fine-tuning found them.
        channel = " Is it the channel to segment (--channel N)?" if channels > 1 else ""
        return f"No cells found.{channel}"
    else:
        advice = "lower --interior-threshold, --foreground-threshold or --min-size."
    if channels > 1:
        advice = f"is it the channel to segment (--channel N)? If it is, {advice}"
    if preset.unet is not None and "fine-tune" not in noted:
        model = shell_quoted(preset.unet.model or STARTER)
        advice += (
            " For images unlike the model's (the starter model knows phase contrast only), "
            f"fine-tune it on a few labelled images (cytomask train --from {model}), or try "
            "--method sam2, which needs no training."
        )
    return f"No cells found: {advice}"


@dataclasses.dataclass(frozen=True)
class _Compared:
    """One pair ``cytomask evaluate`` compared: its ground truth's file, the comparison,
    whether the ground truth holds cells in the frames compared and anywhere, and the
    frames left out for want of ground truth with the cells predicted in each
    (:func:`~napari_cytomask.metrics.core.leave_out_frames`)."""

    gt_path: str
    result: object
    has_cells: bool
    labelled: bool
    unlabelled: object
    uncounted: object


def _labels_channel(path, mask_channel: int | None, shape: tuple[int, ...]) -> dict:
    """Which channel of the file ``path`` labels of ``shape`` read from it are
    (:func:`~napari_cytomask.io.files.read_labels` with ``mask_channel``), as the metrics
    dock's provenance names the channel of a layer the reader opened: its
    ``channel_index`` and ``channel_name``. The file's only channel, or the mask channel
    read among several (the one given, else the only mask: read_labels refused the
    others); both None for a file read whole, or of a kind the reader does not open (a
    PNG). Named from one opening of the file, which reads a scan's metadata and guesses
    its channels' roles anew each time."""
    from .io.files import is_ome_zarr, open_scan
    from .io.tiff import is_tiff

    channel = None
    if is_tiff(path) or is_ome_zarr(Path(path)):
        with open_scan(path) as scan:
            if len(scan.channels) == 1 and not scan.rgb:
                channel = scan.channels[0]
            elif _one_of_its_channels(scan, shape):
                masks = scan.by_role("mask")
                index = masks[0].index if mask_channel is None else mask_channel
                channel = next(c for c in scan.channels if c.index == index)
    return {
        "channel_index": None if channel is None else channel.index,
        "channel_name": None if channel is None else channel.name,
    }


def _evaluate(args) -> int:
    from .io.atomic import check_output, check_replaces_text, locked_folders
    from .io.files import match_files
    from .metrics.export import check_provenance_beside

    given = {"--pred": args.pred, "--gt": args.gt}
    files = [name for name, path in given.items() if os.path.isfile(os.path.expanduser(path))]
    other = "--gt" if files == ["--pred"] else "--pred"
    if len(files) == 1 and glob.has_magic(given[other]):
        # A file captures nothing the pattern's wildcards could pair it by.
        raise UserError(
            f"{files[0]} names one file and {other} a pattern: give {other} one file too, to "
            "compare one prediction with its ground truth, or give both a pattern with the "
            "same wildcards, which pairs each prediction with its own ground truth (e.g. "
            "--pred 'results/*_unet_cells.tif' --gt 'scans/*.tif')."
        )
    pairs = match_files(
        args.pred,
        args.gt,
        names=("prediction", "ground truth"),
        # Left out, said: a few images of a batch labelled by hand, or one still segmented.
        unpaired=lambda said: print(f"cytomask: note: {said}", file=sys.stderr),
    )
    # Before measuring: a CSV that could not be written, or would replace an input.
    inputs = [p for pair in pairs for p in pair]
    try:
        check_output(args.output, overwrite=args.overwrite, inputs=inputs, text="a CSV table")
    except FileExistsError as err:
        if args.overwrite or not os.path.isfile(args.output):
            raise
        check_replaces_text(args.output, "a CSV table")  # --overwrite replaces text only
        raise UserError(
            f"{args.output} already exists and was left as it is; choose another name, or "
            "pass --overwrite to replace it."
        ) from err
    check_provenance_beside(args.output)
    # Its folder held (written into, as segment and export hold theirs) while the pairs are
    # measured: one the checks above let pass (/proc, to root) failed only at the end.
    with locked_folders([args.output.parent], "'cytomask evaluate'"):
        return _evaluate_locked(args, pairs)


def _evaluate_locked(args, pairs) -> int:
    import numpy as np

    from .io.export import reopened_result, result_record
    from .io.files import read_labels, read_whole_hint, recorded_positions, with_channel_named
    from .io.layers import (
        compared_frame_axes,
        frame_key,
        frame_positions,
        made_frames,
        named_frames,
        pixel_size_um,
    )
    from .labels import LabelsError, paired
    from .metrics import evaluate, leave_out_frames, stacked_side, uncounted_note
    from .metrics.export import NAMED_COLUMNS, left_out_rows, provenance, results_rows, write_rows
    from .models.catalog import pixel_sizes

    say = _say(args.quiet)
    rows, results, failed, compared = [], [], 0, []
    at = min(range(len(args.thresholds)), key=lambda i: abs(args.thresholds[i] - 0.5))
    for pred_path, gt_path in pairs:
        # A pair that cannot be compared fails alone, named: the others are still measured.
        try:
            pred, pred_geometry = read_labels(
                pred_path,
                advice="--pred takes label files; export the scan's mask with cytomask export "
                "--mask-channel N first",
            )
            gt, geometry = read_labels(
                gt_path, among_masks=args.mask_channel, advice="--mask-channel N"
            )
            truth_channel = _labels_channel(gt_path, args.mask_channel, gt.shape)
            sizes = [
                pixel_size_um(g.get("scale"), g.get("units")) for g in (pred_geometry, geometry)
            ]
            if None not in sizes and not np.allclose(*sizes, rtol=1e-3):
                print(f"cytomask: note: {pred_path} records pixels of {pixel_sizes(sizes[0])} "
                      f"and {gt_path} of {pixel_sizes(sizes[1])}: they are compared pixel by "
                      "pixel, so their cells may not line up (is one calibrated wrongly, or "
                      "resampled?).", file=sys.stderr)  # fmt: skip
            # A result exported with only some of its frames made: the others are no cells.
            reopened = with_channel_named(reopened_result(pred_path, pred))
            # A result's channel is that of the scan it was made from, which its record says
            # (by its name too, as the dock's layer of it: cytomask segment's by its index).
            pred_channel = {} if reopened else _labels_channel(pred_path, None, pred.shape)
            made = made_frames(pred.shape, reopened.get("frames_made"))
            # Made by a step (hand-drawn labels exported have no method), plane by plane.
            planes_apart = bool(reopened.get("method") or result_record(pred_path))
            stack = compared_frame_axes(
                gt.ndim,
                geometry.get("axis_labels"),
                planes_apart,
                {"frames": True, "volume": False}.get(args.stack),
            )
            try:
                gt, pred, stack = paired(gt, pred, stack, "ground truth", "prediction")
            except LabelsError as err:
                hint = read_whole_hint(gt_path, args.mask_channel)
                stacked = stacked_side(gt.shape, pred.shape)
                if stacked:  # a ground truth of one frame of a time-lapse, say
                    path = gt_path if stacked == "ground truth" else pred_path
                    hint += (
                        f" To compare one frame, write the frames of {path} to files of their "
                        f"own with cytomask export {shell_quoted(path)} --format png -o FOLDER, "
                        f"and give that frame's file as --{'gt' if path == gt_path else 'pred'}."
                    )
                raise LabelsError(f"{err}{hint}") from err
            as_gt, as_pred = "compared as ground-truth labels", "compared as predicted labels"
            gt = _checked_labels(gt_path, gt, as_gt)
            pred = _checked_labels(pred_path, pred, as_pred)
            if made is not None:
                made = made.reshape(pred.shape[:-2])
            gt, pred = gt.copy(), pred.copy()  # not the files' own arrays
            labelled = bool(gt.any())  # before the frames never made are emptied
            _, left, uncounted = leave_out_frames(gt, pred, stack, made)
            # Binary masks in the frames compared: one left out may hold another id.
            gt = _compared_labels(gt_path, gt, as_gt, stack)
            pred = _compared_labels(pred_path, pred, as_pred, stack)
            axes = geometry.get("axis_labels")  # which name the frames left out
            if made is not None and not made.all():
                kept = [frame_key(place) for place in np.argwhere(made)]
                print(f"cytomask: note: {pred_path} was made in {named_frames(kept, axes)} "
                      "only (as the provenance of its export says), "
                      "so the others are left out of the comparison.",
                      file=sys.stderr)  # fmt: skip
            if left is not None:
                keys = [frame_key(place) for place in np.argwhere(left)]
                print(f"cytomask: note: {gt_path} has no cell in {named_frames(keys, axes)}, "
                      f"so {'they are' if len(keys) > 1 else 'it is'} "
                      f"left out of the comparison (label {'their' if len(keys) > 1 else 'its'} "
                      "cells to score them)"
                      f"{uncounted_note(uncounted)}.",
                      file=sys.stderr)  # fmt: skip
            result = evaluate(gt, pred, args.thresholds, stack=stack)
        except (ValueError, OSError) as err:
            failed += 1
            print(f"{pred_path} against {gt_path}: error: {err}", file=sys.stderr, flush=True)
            continue
        results.append(_Compared(gt_path, result, bool(gt.any()), labelled, left, uncounted))
        # The wells of a plate, as the scan or the result's OME-TIFF names them (each by
        # its own axes: a mask stack saved from Fiji names none).
        positions, pred_axes = None, pred_geometry.get("axis_labels")
        for path, named, shape in ((gt_path, axes, gt.shape), (pred_path, pred_axes, pred.shape)):
            names = recorded_positions(path, named, shape).names
            positions = positions or frame_positions(result.frame_shape, named, names)
        rows += [
            (pred_path, gt_path, *row)
            for row in results_rows(result, positions, left, uncounted, axes)
        ]
        # Each file in full with its channel, under the keys of the dock's provenance, and
        # what made the prediction where its record says (a result of the plugin): its
        # source and channel are then those of the scan it was made from, as the dock and
        # an export name them, and the file compared is its labels_file, as an export's.
        made = {key: value for key, value in reopened.items() if key not in ("role", "translate")}
        files = [os.path.abspath(path) for path in (pred_path, gt_path)]
        prediction = {"source": made.pop("source", None) or files[0], **pred_channel, **made}
        if prediction["source"] != files[0]:
            prediction["labels_file"] = files[0]
        compared.append(
            {"prediction": prediction, "ground_truth": {"source": files[1], **truth_channel}}
        )
        # Scores of 0 where one side has no objects say why, as the metrics dock does.
        empty = result.matches.no_objects_note()
        say(f"{pred_path}: F1@{args.thresholds[at]:g} {result.matches.f1[at]:.3f}, "
            f"mean-average F1 {result.mean_average_f1:.3f}, "
            f"mSA {result.mean_segmentation_accuracy:.3f}, "
            f"pixel IoU {result.pixels.iou:.3f}{f'. Note: {empty}.' if empty else ''}")  # fmt: skip
    if not results:
        raise UserError(f"none of the {len(pairs)} pair(s) could be compared (see above)")
    # A ground truth without a cell, beside others with some, is no verdict on the
    # prediction (an image not labelled yet), as such frames of a stack are not: its own
    # row says what it found, the total leaves it out.
    pooled = [pair for pair in results if pair.has_cells]
    left_out = [pair for pair in results if not pair.has_cells] if pooled else []
    pooled = pooled or results
    for pair in left_out:
        # Its cells may lie in frames the prediction was never made in.
        why, advice = (
            ("no cell in the frames the prediction was made in", "") if pair.labelled
            else ("no cell", " (label its cells to score it)")
        )  # fmt: skip
        print(f"cytomask: note: {pair.gt_path} has {why}, so its pair is left out of the figures "
              f"of all pairs{advice}.", file=sys.stderr)  # fmt: skip
    total = sum((pair.result for pair in pooled[1:]), pooled[0].result)
    # The total's own rows only: each pair's rows are listed above; then what it leaves
    # out (frames and pairs without ground truth), as each pair's rows say of its frames.
    rows += [("all", "all", *row) for row in results_rows(total) if row[0] == "all"]
    frames = sum(int(np.count_nonzero(p.unlabelled)) for p in pooled if p.unlabelled is not None)
    cells = sum(int(np.sum(pair.uncounted)) for pair in pooled) + sum(
        pair.result.matches.n_pred for pair in left_out
    )
    if frames or left_out:
        counts = {"frames": frames, "pairs": len(left_out), "n_pred": cells}
        rows += [("all", "all", *row) for row in left_out_rows("all", "", **counts)]
    say(f"all {len(pooled)} pair(s): F1@{args.thresholds[at]:g} {total.matches.f1[at]:.3f}, "
        f"mean-average F1 {total.mean_average_f1:.3f}, "
        f"mSA {total.mean_segmentation_accuracy:.3f} (per image, averaged), "
        f"pixel IoU {total.pixels.iou:.3f}")  # fmt: skip
    settings = {
        key: getattr(args, key) for key in ("pred", "gt", "mask_channel", "stack", "thresholds")
    }
    record = provenance(args.output, compared, settings)
    print(write_rows(args.output, NAMED_COLUMNS, rows, overwrite=args.overwrite, record=record))
    if failed:
        raise UserError(
            f"{failed} of {len(pairs)} pair(s) could not be compared (see above); the CSV "
            f"holds the other {len(results)}."
        )
    return EXIT_OK


def _export(args) -> int:
    from .io.atomic import folder_writer
    from .io.export import exporting, segment_record
    from .io.files import find_inputs

    items = find_inputs(args.labels)
    for folder in sorted({path.parent for path in map(Path, items)}):
        writer = folder_writer(folder)
        if writer:
            print(
                f"cytomask: note: {writer} is still writing into {folder}: results it has "
                "not finished are not exported, and the ones it redoes are exported as they "
                "were before.",
                file=sys.stderr,
            )
    records = {path: segment_record(path) for path in items}
    # A folder of 'cytomask segment' results may hold the images they were made from.
    sources = {os.path.realpath(r["source"]) for r in records.values() if r.get("source")}
    skipped = [path for path in items if os.path.realpath(path) in sources]
    if skipped:
        print(
            f"cytomask: note: {len(skipped)} image(s) that results were made from are not "
            f"labels and were left out, e.g. {skipped[0]}",
            file=sys.stderr,
        )
        items = [path for path in items if path not in skipped]
    exports, failed = [], []
    for path in items:
        # A file that cannot be exported fails alone, named, as segment's inputs do: it
        # stopped the whole export.
        try:
            exports.append(_file_export(path, records[path], args, exports))
        except (ValueError, OSError) as err:
            if len(items) == 1:
                raise
            failed.append(path)
            print(f"{path}: error: {err}", file=sys.stderr, flush=True)
    # None of the files named is replaced, even left out, nor a scan a result was made from:
    # other/well1.tif, a result of data/well1.tif, is exported into data/ as well1.tif.
    if not exports:
        raise UserError(f"none of the {len(items)} file(s) could be exported (see above); "
                        "nothing was written.")  # fmt: skip
    inputs = [*items, *skipped, *(export.source for export in exports if export.source)]
    pace, said = Pace(), [time.monotonic()]

    def progress(event) -> None:
        # On stderr: stdout lists the files written, for scripts to read.
        now = time.monotonic()
        left = pace.left(event.done, event.total, event.stage, now)
        if not args.quiet and now - said[0] >= _PROGRESS_EVERY:
            said[0] = now
            print(progress_text(event.stage, event.done, event.total, left), file=sys.stderr,
                  flush=True)  # fmt: skip

    unwritten: list[Path] = []

    # As the dock does: a file that cannot be written (ids a PNG cannot hold) is left out,
    # named, and the others are written, where it stopped the whole export.
    def left_out(export, err: ValueError) -> None:
        failed.append(export.labels_file)
        print(f"{export.labels_file}: error: {one_line(err)}", file=sys.stderr, flush=True)

    def file_left_out(export, path: Path, err: ValueError) -> None:
        unwritten.append(path)
        print(f"{export.labels_file}: error: {path} left out, its other files written: "
              f"{one_line(err)}", file=sys.stderr, flush=True)  # fmt: skip

    work = exporting(
        exports, args.output_dir, formats=args.formats, objects_csv=not args.no_tables,
        coco_json=args.coco, overwrite=args.overwrite, inputs=inputs, left_out=left_out,
        file_left_out=file_left_out,
    )  # fmt: skip
    written = drain(work, progress)
    try:
        for path in written:
            print(path)
    except KeyboardInterrupt as err:
        raise _Interrupted(f" The export had finished: its {len(written)} files are in "
                           f"{written[0].parent}.") from err  # fmt: skip
    said = [f"{len(failed)} of {len(items)} file(s) could not be exported"] if failed else []
    if unwritten:
        said.append(f"{len(unwritten)} label file(s) could not be written in the format asked")
    if said:
        others = "other files are" if unwritten else "others are"
        raise UserError(f"{' and '.join(said)} (see above); the {others}.")
    return EXIT_OK


def _file_export(path, info: dict, args, exports: list):
    """The :class:`~.io.export.LabelsExport` of the label file ``path`` that ``cytomask
    export`` writes: described by its ``cytomask segment`` record ``info`` (or {}), or by
    the provenance of an earlier export, or, a mask channel of a scan, measured in the
    scan's images; named apart from ``exports`` made before it."""
    from .io.export import (
        LabelsExport,
        describes,
        exported_fields,
        located_source,
        provenance_beside,
        recorded_axes,
        recorded_fields,
        reopened_result,
    )
    from .io.files import read_labels
    from .io.tiff import file_stem

    labels, axes = read_labels(path, among_masks=args.mask_channel, advice="--mask-channel N")
    if not describes(info, labels):
        # Changed since the run wrote them (corrected by hand, saved over with napari): not
        # its cells. A provenance File > Save wrote beside them says what they are, or
        # reopened_result says why they are labels of their own.
        info = {}
    # An earlier export's result: described as its export described it.
    exported = {} if info else located_source(reopened_result(path, labels), path)
    if exported and not axes:  # a NumPy file holds none: its export recorded them
        axes = recorded_axes(path, labels.ndim)
    if not info and not exported:  # not a result: said when its ids may be no labels
        labels = _checked_labels(path, labels, "exported as labels")
    if info:
        described = {
            **recorded_fields(info),
            **_from_source(info, path, labels.shape, f"{file_stem(path)}.json"),
        }
    elif exported:
        described = {
            **exported_fields(exported),
            **_from_source(exported, path, labels.shape, provenance_beside(path).name),
        }
    elif _one_of_its_channels(path, labels.shape):
        # A scan's mask channel: its cells measured in the scan's images, as the dock does.
        described = _from_source({"source": str(path)}, path, labels.shape, path.name)
    else:
        described = {}
    described = {"source": str(path), **described}
    name = _layer_name(file_stem(path), described["source"], exports)
    return LabelsExport(name=name, labels=labels, **axes, **described, labels_file=str(path))


def _one_of_its_channels(scan, shape: tuple[int, ...]) -> bool:
    """Whether labels of ``shape`` read from ``scan`` (its path, or the scan
    :func:`~napari_cytomask.io.files.open_scan` opened) are one of its several channels (a
    mask beside images), not the whole file (channels that name no role, read whole)."""
    import numpy as np

    from .io.files import open_scan
    from .io.layers import Scan

    if not isinstance(scan, Scan):
        with open_scan(scan) as opened:
            return _one_of_its_channels(opened, shape)
    return len(scan.channels) > 1 and np.shape(scan.channels[0].base) == tuple(shape)


def _note_if_unfinished(model: str) -> None:
    """Say so when a model is the best network so far of a training run that was stopped."""
    from .models.catalog import resolve_unet
    from .models.checkpoint import read_description, unfinished

    path = resolve_unet(model)
    if unfinished(read_description(path)):
        print(
            f"cytomask: note: {path.name} is the best network so far of a training run that "
            "was stopped, before its thresholds were chosen; finish it with cytomask train "
            f"--resume {path} (and the run's images).",
            file=sys.stderr,
        )


def _label_note(path, text: str, what: str) -> None:
    """Say ``text`` of the labels read from ``path``, to be ``what`` (compared, exported)."""
    print(f"cytomask: note: {path} {text}; {what}.", file=sys.stderr)


def _checked_labels(path, labels, what: str):
    """Label ids read from ``path`` as they are to be ``what`` (compared, exported), with a
    note when they may be an image of light, whose pixels vary as a camera's do (or that
    has no pixel at 0 and does not look like the ids of cells covering the whole field, as
    a confluent field's do). Ids saved as floats (1.0, 2.0) become integers.

    Raises
    ------
    LabelsError
        When they cannot be label ids (fractional or negative values): said before any
        note, which would guess at the reason.
    """
    import numpy as np

    from .io.layers import FLAT_SHARE, flat_share, grid_sample, ids_in_regions
    from .labels import as_labels

    if not labels.size:
        return labels
    labels = as_labels(labels, str(path))
    plane = next((p for p in labels.reshape(-1, *labels.shape[-2:]) if p.any()), None)
    if plane is None:  # no cell at all: nothing to say of them
        return labels
    sample = grid_sample(plane)
    if not np.any(labels == 0):
        if not ids_in_regions(sample):  # not a confluent field's cells
            _label_note(
                path,
                "has no background (no pixel is 0), so it may be an image rather than labels",
                what,
            )
        return labels
    # Pixels with a neighbour of their value: cells of a few pixels, a pixel apart, differ
    # from many of their neighbours, but leave no pixel alone, as a camera's noise does.
    share = flat_share(sample)
    if share is not None and share <= FLAT_SHARE:
        _label_note(
            path,
            "looks like an image of light rather than label ids (neighbouring pixels mostly "
            "differ, as a camera's do)",
            what,
        )
    return labels


def _compared_labels(path, labels, what: str, frames: int):
    """Checked labels (:func:`_checked_labels`) with a binary mask (one value for every
    cell) taken by its separate regions as the cells, in each frame of its ``frames``
    leading axes, and said, as an export takes one
    (:func:`~napari_cytomask.io.export.export_labels`)."""
    from .labels import regions_as_cells

    labels, said = regions_as_cells(labels, frames)
    if said:
        _label_note(path, said, what)
    return labels


def _layer_name(stem: str, source: str | None, earlier: list) -> str:
    """The name of a label file's layer, as napari names it: its ``stem``, for the export
    to name its files as the dock names a layer's, whatever else is exported with it (two
    of one stem from two scans, ``a/raw_unet_cells.tif`` and ``b/raw_unet_cells.tif``, are
    told apart by their scans, ``b raw_unet_cells``); one of the stem and scan of an
    ``earlier`` export (``mask.tif`` and ``mask.png`` of one result) numbered, as a result
    made beside another is (``mask [2]``)."""
    from .io.atomic import same_file

    name, k = stem, 1
    while any(e.name == name and same_file(e.source, source) for e in earlier):
        k += 1
        name = f"{stem} [{k}]"
    return name


def _from_source(info: dict, path: Path, shape: tuple[int, ...], record: str) -> dict:
    """What the scan a segment run read gives an export (its record ``info``, the file
    ``record`` beside the labels) of the labels at ``path``, of ``shape``: the image
    channels by layer name, to measure inside each cell, and the ``channel_name`` of the
    one channel the run segmented. Empty without the scan.

    Raises
    ------
    ValueError
        When the scan's channels are not of the labels' shape (labels cropped, or another
        scan in its place), naming the labels: one file among many stops the export.
    """
    import numpy as np

    from .io.files import is_image, open_scan
    from .io.layers import measured_as

    source = info.get("source")
    # A scan that is gone was warned about when its record was read; an OME-Zarr image is
    # a folder, not a file, and is measured as a TIFF is.
    if not source or not is_image(Path(source)):
        return {}
    with open_scan(source) as scan:
        channels = [] if scan.rgb else scan.by_role("input", "image")
        intensities = {}
        for channel in channels:
            image = np.asarray(channel.base)
            # An OME-Zarr image keeps its axes of length 1 (T and Z of one plane), which a
            # TIFF of its labels loses when read: the same pixels, so measured as they are.
            if [n for n in image.shape if n != 1] != [n for n in shape if n != 1]:
                raise ValueError(
                    f"{path} has shape {shape}, but channel {channel.name!r} of {source}, the "
                    f"scan it was made from, has {image.shape}: its cells cannot be measured "
                    f"there. Segment the scan again, or move the record {record} "
                    "beside the labels aside to export them without the scan's intensities."
                )
            intensities[measured_as(channel.name, channel.named_after_file)] = image.reshape(shape)
        found: dict = {"intensities": intensities}
        used = info.get("channels_used") or []
        if len(used) == 1:
            named = (c.name for c in scan.channels if c.index == used[0])
            found["channel_name"] = next(named, None)
    return found


def _error_text(err: BaseException, args) -> str:
    """An error as the command of ``args`` says it (:func:`~.progress.one_line`); a path too
    long for the file system (a deep folder's results beside it, say) or a folder that cannot
    be written into (a read-only disk of scans) also says where else ``segment`` can put its
    results, when no -o was given."""
    beside = args.command == "segment" and args.output_dir is None
    elsewhere = "(-o puts the results in another)" if beside else ""
    text = one_line(err, elsewhere)
    if elsewhere and text.endswith("choose another folder."):
        text = f"{text[:-1]} {elsewhere}."
    return text


def _show_note(message, category, filename, lineno, file=None, line=None) -> None:
    """The plugin's own warnings (say, images a file's reader left out) as one-line notes;
    other packages' as Python shows them."""
    if issubclass(category, UserWarning) and f"{os.sep}napari_cytomask{os.sep}" in filename:
        print(f"cytomask: note: {message}", file=sys.stderr)
        return
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Run ``cytomask`` with ``argv`` (default: the process arguments); return the exit status.

    Parameters
    ----------
    argv
        Command-line arguments without the program name.

    Returns
    -------
    int
        0 on success, 1 for a problem with the inputs, 2 for a wrong command line, 130
        when interrupted (Ctrl+C), 143 when terminated (SIGTERM, as a job scheduler's time
        limit sends): both stop as Ctrl+C does, keeping what is finished.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "segment":
            args.inputs = [*args.inputs, *args.inputs_after_channels]
            if not args.inputs:
                parser.error("segment: the following arguments are required: INPUT")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    handlers = {
        "train": _train,
        "tune": _tune,
        "segment": _segment,
        "evaluate": _evaluate,
        "export": _export,
    }
    terminated = []
    try:
        with warnings.catch_warnings(), _terminated_as_interrupted(terminated):
            warnings.showwarning = _show_note
            code = handlers[args.command](args)
        return EXIT_TERMINATED if terminated else code
    # The plugin's own errors (checkpoint, labels, TIFF, preset, batch) are ValueErrors;
    # a diverging training run is a FloatingPointError.
    except (UserError, ValueError, OSError, FloatingPointError) as err:
        print(f"cytomask {args.command}: error: {_error_text(err, args)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USER_ERROR
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        print(f"cytomask {args.command}: error: {_memory_text(err, args.command)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USER_ERROR
    except KeyboardInterrupt as err:
        kept = _KEPT_WHEN_INTERRUPTED.get(args.command, "")
        if args.command == "segment" and args.overwrite:
            kept = _SEGMENT_OVERWRITE_INTERRUPTED
        if isinstance(err, _Interrupted):
            kept = err.kept
        if replaced := getattr(err, "replaced", None):  # stopped while its files moved in
            hold = "holds" if len(replaced) == 1 else "hold"
            kept = (f" It had replaced {', '.join(replaced)}, which {hold} the new export; the "
                    "other files it wrote were removed. Run it again with --overwrite to write "
                    "it whole.")  # fmt: skip
        print(f"cytomask {args.command}: interrupted.{kept}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


class _Interrupted(KeyboardInterrupt):
    """Ctrl+C (or SIGTERM) once the command's work was done, with what it ``kept``, as
    the message goes on: an export stopped while it listed its files had written them."""

    def __init__(self, kept: str):
        super().__init__()
        self.kept = kept


#: What a command stopped by Ctrl+C leaves, by command (training says it itself).
_KEPT_WHEN_INTERRUPTED = {
    "segment": " Finished results are kept; run the same command again to go on.",
    # All files are written before any is moved in (export_labels).
    "export": " Nothing was written; the files already in the output folder are as they were.",
}


#: What ``segment --overwrite`` stopped by Ctrl+C leaves: run again as it was, it would
#: redo the inputs it had finished too (--overwrite redoes every input).
_SEGMENT_OVERWRITE_INTERRUPTED = (
    " Finished results are kept. Run the same command again to go on: with --overwrite it "
    "segments the inputs it finished again too; without it, it skips them, and names and "
    "leaves out the inputs whose results are still of other settings."
)


@contextlib.contextmanager
def _terminated_as_interrupted(terminated: list):
    """SIGTERM stops the command as Ctrl+C does (KeyboardInterrupt), noted in
    ``terminated``: it ended without a word, leaving its folders locked (in the main
    thread only, where Python takes signals)."""

    def stop(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
