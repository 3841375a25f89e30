"""Training a U-Net on pairs of images and instance labels.

Data come from arrays (napari layers), from folders of files matched by glob
patterns, or from the input and mask channels of tile scans. Images are split
by image into training, validation and test sets, deterministically from a
seed, and the split is recorded in the checkpoint. Training samples random
crops (mostly centred on cells), augmented by 90° rotations, flips, arbitrary
rotations and mild intensity changes; targets (background / interior /
boundary, or foreground) are made from the augmented instance labels, so
boundaries keep their width. The loss is class-weighted cross-entropy plus
Dice; the checkpoint kept is the one with the best validation mean-average F1
(IoU 0.50:0.95) of the instances it produces; fine-tuning scores the model it starts
from first (epoch 0) and keeps it unless an epoch scores higher. Training ends by choosing the
post-processing thresholds on the validation images
(:func:`iter_tune_postprocess`) and recording them in the checkpoint.

:func:`iter_train` is a generator that yields :class:`TrainingProgress` after
every step and epoch, so a widget can plot the loss and stop between steps.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import itertools
import math
import multiprocessing
import numbers
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ..io.atomic import (
    WriteError,
    check_folder_writable,
    file_in_the_way,
    reason,
    too_long,
    write_atomically,
)
from ..io.export import safe_file_name
from ..io.files import IMAGE_SUFFIX, file_pixel_size, match_files, read_image
from ..io.layers import check_looks_like_ids
from ..labels import as_labels, check_same_shape, grey_version, regions_as_cells
from ..metrics import Evaluation, evaluate
from ..postprocess import instances_to_interior_boundary
from ..progress import drain, relay
from .catalog import (
    is_starter,
    learnt_pixel_size,
    pixel_sizes,
    resolve_unet,
    same_pixel_size,
    zoom_to,
)
from .checkpoint import (
    DIR_ENV,
    SUFFIX,
    USABLE_F1,
    cache_dir,
    check_input_channels,
    checkpoint_file,
    chosen_scores,
    config_of,
    describe,
    load_checkpoint,
    save_checkpoint,
    unfinished,
)
from .device import autocast_dtype, get_device
from .inference import (
    DEFAULT_SETTINGS,
    UNetPredictor,
    iter_predict,
    postprocess_arguments,
    probabilities_to_instances,
    recommended_settings,
    resized_planes,
    segmenting_settings,
)
from .unet import UNetConfig, build_model, normalise_channels

SPLITS = ("train", "validation", "test")
#: File name ending of the training state kept beside a checkpoint (see :func:`state_path`).
STATE_SUFFIX = ".training-state.pt"
#: Smallest tile size recorded for inference in a trained checkpoint.
INFERENCE_TILE = 512


@dataclass
class TrainingSample:
    """One image with its instance labels.

    Attributes
    ----------
    name
        Unique name, used by the split (file path, layer name and tile).
    channels
        ``(C, Y, X)`` raw intensities, one plane per input channel.
    labels
        ``(Y, X)`` instance labels, 0 background.
    pixel_size_um
        The image's (Y, X) pixel size in µm, when it records one.
    """

    name: str
    channels: np.ndarray
    labels: np.ndarray
    pixel_size_um: tuple[float, float] | None = None


def common_pixel_size(samples: Sequence[TrainingSample]) -> tuple[float, float] | None:
    """The pixel size a model trained on ``samples`` learnt cells at: their median (Y, X)
    pixel size when every one records one and they agree within
    :data:`~.catalog.RESAMPLE_TOLERANCE`; else None (not known)."""
    sizes = [s.pixel_size_um for s in samples]
    if not sizes or None in sizes:
        return None
    median = tuple(float(v) for v in np.median(np.asarray(sizes, float), axis=0))
    return median if all(same_pixel_size(median, size) for size in sizes) else None


def at_pixel_size(sample: TrainingSample, learnt: tuple[float, float] | None) -> TrainingSample:
    """``sample`` resampled to a model's ``learnt`` (Y, X) pixel size, as segmenting
    resamples images for it (:func:`~.catalog.zoom_to`): the image bilinear and
    anti-aliased, the labels by nearest pixel. The sample itself when it records no pixel
    size, or one that needs no resampling."""
    zoom = zoom_to(sample.pixel_size_um, learnt)
    if zoom is None:
        return sample
    shape = sample.labels.shape
    size = tuple(max(1, round(n * z)) for n, z in zip(shape, zoom, strict=True))
    channels = resized_planes(sample.channels[None].astype(np.float32, copy=False), size)[0]
    # The label at the centre of each new pixel.
    rows, cols = (
        np.minimum(((np.arange(m) + 0.5) * n / m).astype(np.intp), n - 1)
        for n, m in zip(shape, size, strict=True)
    )
    return TrainingSample(sample.name, channels, sample.labels[np.ix_(rows, cols)], learnt)


def samples_at_pixel_size(
    samples: Sequence[TrainingSample], learnt: tuple[float, float] | None
) -> tuple[list[TrainingSample], str]:
    """:func:`at_pixel_size` of each sample, and a sentence saying which were resampled,
    and which were too far from ``learnt`` to be (empty when neither)."""
    resampled = [at_pixel_size(s, learnt) for s in samples]
    moved = [s for s, r in zip(samples, resampled, strict=True) if r is not s]
    # Recorded, not ``learnt``, and left as they are: beyond RESAMPLE_RANGE of it.
    far = [
        s for s, r in zip(samples, resampled, strict=True)
        if r is s and learnt and s.pixel_size_um and not same_pixel_size(s.pixel_size_um, learnt)
    ]  # fmt: skip
    learnt_at = f"the {pixel_sizes(learnt)} pixels the network learnt cells at" if learnt else ""
    notes = []
    for group, what in (
        (moved, f"were resampled to {learnt_at}, as segmenting resamples images for it"),
        (far, f"are too far from {learnt_at} to be resampled and keep their own (is that "
              "pixel size right?)"),
    ):  # fmt: skip
        if group:
            sizes = ", ".join(sorted({pixel_sizes(s.pixel_size_um) for s in group}))
            count = f"{len(group)} of {len(samples)}" if len(group) < len(samples) else "the"
            notes.append(f"{count} image(s) with {sizes} pixels {what}.")
    return resampled, " ".join(notes)


#: The median cell area (px) below which fine-tuning keeps its images' own pixels: cells
#: about 20 px across and smaller have too few pixels left to outline at the model's
#: pixel size (Usiigaci's cells, which the starter model learnt, have a median of 2,079 px).
MIN_RESAMPLED_CELL_AREA = 300


def _fine_tuning_samples(
    samples: Sequence[TrainingSample], learnt: tuple[float, float] | None
) -> tuple[list[TrainingSample], str]:
    """The samples a network that learnt cells at ``learnt`` pixels is fine-tuned on
    (:func:`samples_at_pixel_size`), and what was done; the samples as they are when their
    cells would be too small at that pixel size (:data:`MIN_RESAMPLED_CELL_AREA`): other,
    smaller cells (nuclei, bacteria at 100x) keep their detail, and the model learns the
    images' pixel size."""
    resampled, note = samples_at_pixel_size(samples, learnt)
    if not note:
        return resampled, ""
    areas = np.concatenate([_cell_areas(s.labels) for s in resampled])
    median = float(np.median(areas)) if areas.size else 0.0
    if not areas.size or median >= MIN_RESAMPLED_CELL_AREA:
        return resampled, note
    return list(samples), (
        f"the cells would be {median:.0f} px (median) at the {pixel_sizes(learnt)} pixels the "
        "network learnt cells at, too few to outline, so the images keep their own pixels "
        "and the model learns theirs."
    )


def learnt_on(
    samples: Sequence[TrainingSample], start: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """The pixel size a network trained on ``samples`` learns cells at: that of a network
    it starts from (``start``, when known) when the images that record a size are at it
    (resampled to it), those that record none taken to be at it too; else
    :func:`common_pixel_size`."""
    known = common_pixel_size([s for s in samples if s.pixel_size_um is not None])
    if start is not None and known is not None and same_pixel_size(known, start):
        return start
    return common_pixel_size(samples)


@dataclass
class TrainingSettings:
    """How to train.

    Attributes
    ----------
    epochs
        Maximum number of epochs of the run, counting those done before a resume.
    steps_per_epoch
        Optimiser steps per epoch (each on ``batch_size`` random crops).
    batch_size
        Crops per step.
    crop_size
        Crop size in pixels (a multiple of the network's size multiple).
    learning_rate, weight_decay
        AdamW settings.
    lr_patience, lr_factor
        ReduceLROnPlateau: epochs without improvement before the rate is multiplied by the factor.
    patience
        Early stopping: epochs without a better validation score before training stops.
    boundary_width
        Width of the boundary class in pixels.
    fractions
        Training, validation and test fractions of the images.
    seed
        Seed of the split, the crops and the network initialisation.
    cell_bias
        Probability that a crop is centred on a cell pixel rather than anywhere.
    rotate
        Use arbitrary rotations besides 90° rotations and flips.
    dice_weight
        Weight of the Dice term in the loss.
    encoder_weights
        ``"imagenet"`` to start from pretrained encoder weights when available, or ``None``.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    validation_overlap
        Tile overlap when predicting validation images.
    time_limit
        Stop once this many seconds have passed (``None``: no limit): the epoch under way
        ends at that step, and is validated and kept if it is the best, as any epoch; a
        resumed run trains the rest of it.
    workers
        Processes that make the training crops ahead of the network (``None``: up to
        8 on a CUDA device, where one process cannot keep the GPU busy, and none
        elsewhere, where the network already uses every core). With workers, the
        crops of each batch come from their own seed, so they do not depend on the
        number of workers, but differ from those made in-process.
    tune
        After training, choose the post-processing settings on the validation
        images (:func:`iter_tune_postprocess`) and record them in the checkpoint.
    resample
        Fine-tuning (``init_from``) or resuming a network that learnt cells at a known
        pixel size: resample the images that record another one to it
        (:func:`at_pixel_size`), as segmenting with the network will, unless their cells
        would then be too small to outline (:data:`MIN_RESAMPLED_CELL_AREA`). Off, the
        network learns the images' own pixel size (when they agree on one).
    """

    epochs: int = 50
    steps_per_epoch: int = 100
    batch_size: int = 8
    crop_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_patience: int = 4
    lr_factor: float = 0.5
    patience: int = 12
    boundary_width: int = 2
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    cell_bias: float = 0.9
    rotate: bool = True
    dice_weight: float = 1.0
    encoder_weights: str | None = "imagenet"
    device: str = "auto"
    validation_overlap: int = 64
    time_limit: float | None = None
    workers: int | None = None
    tune: bool = True
    resample: bool = True

    def validate(self) -> None:
        """Raise :class:`ValueError` for impossible settings, before training: a script's
        ``epochs=1.5`` or ``steps_per_epoch="5"`` was refused in Python's words, a negative
        learning rate in torch's, and ``dice_weight=-1`` made the loss negative, unsaid."""
        for f in fields(self):
            value, kinds = getattr(self, f.name), {k.strip() for k in str(f.type).split("|")}
            if value is None and "None" in kinds:
                continue
            whole = "int" in kinds
            if whole and not (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a whole number (got {value!r}).")
            number = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if "float" in kinds and not (number and math.isfinite(value)):
                raise ValueError(f"{f.name} must be a number (got {value!r}).")
        least = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 1, "crop_size": 1,
                 "boundary_width": 1, "patience": 1, "lr_patience": 0, "weight_decay": 0,
                 "dice_weight": 0, "validation_overlap": 0, "time_limit": 0}  # fmt: skip
        for name, low in least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} must be at least {low} (got {value}).")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be above 0 (got {self.learning_rate}).")
        if not 0 < self.lr_factor < 1:  # the rate is multiplied by it
            raise ValueError(f"lr_factor must be between 0 and 1 (got {self.lr_factor}).")
        if not 0 <= self.cell_bias <= 1:  # a probability
            raise ValueError(f"cell_bias must be from 0 to 1 (got {self.cell_bias}).")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or sum(self.fractions) <= 0:
            raise ValueError(
                f"fractions must be three non-negative numbers (train, validation, test); "
                f"got {self.fractions}."
            )
        if self.fractions[0] <= 0:
            raise ValueError("the training fraction must be positive.")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be 0 or more (got {self.workers}).")


@dataclass(frozen=True)
class TrainingProgress:
    """What :func:`iter_train` reports.

    Attributes
    ----------
    epoch, epochs
        Current epoch (1-based) and the last one expected: the maximum, or
        fewer when a time limit will stop training earlier (estimated from the
        epochs done).
    step, steps
        Step within the epoch (1-based) and steps per epoch.
    global_step
        Steps since the first training run (continues on resume).
    loss
        Loss of this step; in an ``"epoch"`` report, the epoch's mean as its history records
        it (of an epoch a time limit cut short and a resumed run finished: of all its steps).
    learning_rate
        Current learning rate.
    validation
        End-of-epoch validation scores (``mean_average_f1``, ``f1_50``,
        ``pixel_iou``, ...), else ``None``.
    improved
        Whether this epoch's checkpoint was saved as the new best.
    message
        A sentence for the user (e.g. pretrained weights unavailable), else ``None``.
    phase
        ``"train"`` (a step), ``"validate"`` (``step`` of ``steps`` validation
        images done), ``"epoch"`` (end of an epoch, with ``validation``),
        ``"tune"`` (``step`` of ``steps`` of choosing the post-processing settings:
        after the last epoch, and before the first when fine-tuning), ``"notice"``
        (a ``message``) or ``"split"`` (once, before the first step: the ``split``).
    checkpoint
        In an ``"epoch"`` report: the checkpoint file (the best network so far, with the
        training state beside it to resume from: of a fine-tuning run that no epoch
        improved on, the starting model); None until there is one.
    split
        In the ``"split"`` report: image names of ``"train"``, ``"validation"``
        and ``"test"``.
    history
        In the ``"split"`` report of a resumed run: the epochs it goes on from, as
        :attr:`TrainingResult.history` holds them.
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    global_step: int
    loss: float
    learning_rate: float
    validation: dict | None = None
    improved: bool = False
    message: str | None = None
    phase: str = "train"
    checkpoint: Path | None = None
    split: dict[str, list[str]] | None = None
    history: list[dict] | None = None


@dataclass
class TrainingResult:
    """Return value of :func:`iter_train`.

    Attributes
    ----------
    checkpoint
        The file holding the best network.
    description
        Its description.
    history
        One dict per epoch: ``epoch``, ``loss`` (mean), ``validation`` scores, ``steps``
        (done when it ended; not in runs of versions before it was recorded). An epoch the
        time limit cut short has ``steps_in_epoch`` (its steps done), and the rest of it,
        trained by a resumed run, a dict of its own with ``resumed_at_step``.
    stopped_early
        Whether early stopping ended training.
    """

    checkpoint: Path
    description: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


# ----------------------------------------------------------------------------- data


def _frames(array) -> list[np.ndarray]:
    """2D frames of a ``(*frames, Y, X)`` array."""
    arr = np.asarray(array)
    if arr.ndim < 2:
        raise ValueError(f"an image must be at least 2D (got shape {arr.shape}).")
    return list(arr.reshape(-1, *arr.shape[-2:]))


def samples_from_arrays(
    images,
    labels,
    name: str = "image",
    *,
    channel_axis: int | None = None,
    mask_name: str | None = None,
    pixel_size_um: tuple[float, float] | None = None,
    note: Callable[[str], None] | None = None,
    labels_advice: str = "Were the image and its labels given the other way round?",
) -> list[TrainingSample]:
    """Training samples from an image (or stack) and its instance labels, e.g. napari layers.

    A binary mask (one value, such as 1 or 255, for every cell) has its separate regions
    taken as the cells, in each frame, and says so through ``note``: scored as one cell
    per frame, it validated any network at F1 0 and made tuning's cell sizes fractions of
    the whole foreground.

    Parameters
    ----------
    images
        ``(*frames, Y, X)`` array, a list of such arrays (one per channel), or
        one array with a channel axis given by ``channel_axis``.
    labels
        ``(*frames, Y, X)`` instance labels; every frame becomes one sample.
    name
        Base name of the samples (frames get ``name[i]``).
    channel_axis
        Axis of ``images`` that holds the channels, if any.
    mask_name
        What to call the labels in messages (e.g. their file); default "mask of NAME".
    pixel_size_um
        The image's (Y, X) pixel size in µm, when known: recorded with the model.
    note
        Called with what the user should know of the labels (a binary mask taken by its
        regions); by default that is a :class:`UserWarning`.
    labels_advice
        What to check, said when the labels look like an image (their pixels vary as a
        camera's do), which is refused.

    Returns
    -------
    list of TrainingSample
    """
    if isinstance(images, (list, tuple)):
        channels = [np.asarray(ch) for ch in images]
    elif channel_axis is not None:
        channels = list(np.moveaxis(np.asarray(images), channel_axis, 0))
    else:
        channels = [np.asarray(images)]
    mask_name = mask_name or f"mask of {name}"
    lab = as_labels(labels, mask_name)
    # The image given as the labels (a phase image taken as 17,149 cells, unsaid).
    check_looks_like_ids(lab, mask_name, labels_advice)
    for ch in channels:
        check_same_shape(ch, lab, f"image {name}", mask_name, "train on a mask of the same image")
    per_channel = [_frames(ch) for ch in channels]
    lab, said = regions_as_cells(lab, lab.ndim - 2)  # every frame is an image of its own
    if said:
        if note is None:
            warnings.warn(f"{mask_name} {said}.", UserWarning, stacklevel=2)
        else:
            note(f"{mask_name} {said}.")
    lab_frames = _frames(lab)
    samples = []
    for i, frame_labels in enumerate(lab_frames):
        frame_name = name if len(lab_frames) == 1 else f"{name}[{i}]"
        stack = np.stack([frames[i] for frames in per_channel])
        # A copy, as the image is: a mask painted while a run trains on it (a napari
        # layer's) would change its crops and validation targets under it.
        samples.append(TrainingSample(frame_name, stack, frame_labels.copy(), pixel_size_um))
    return samples


def samples_from_folders(
    image_pattern: str,
    mask_pattern: str,
    note: Callable[[str], None] | None = None,
    *,
    grey: bool = False,
) -> list[TrainingSample]:
    """Training samples from image and mask files matched by glob patterns.

    Parameters
    ----------
    image_pattern, mask_pattern
        Glob patterns (``*``, ``?``, ``[...]``, ``**``) with the same wildcards, e.g.
        ``usiigaci-phc/set*/raw.tif`` and ``usiigaci-phc/set*/instances_ids.png``.
    note
        Called with what the user should know of a mask (see :func:`samples_from_arrays`),
        and of colour pictures read in grey; by default that is a :class:`UserWarning`.
    grey
        Read colour pictures (RGB, RGBA) as their grey version, as segmenting gives them
        to a model of one channel (the starter model): their colours were refused by it
        ("expects 1 input channel(s) but 3 were given"), with no way to pick one.

    Returns
    -------
    list of TrainingSample
        One per image (or per frame of a stack), named after the image file's absolute
        path.
    """
    samples, greyed = [], 0
    for image_path, mask_path in match_files(image_pattern, mask_pattern):
        # Named by absolute path: a split names the same image whichever folder the
        # command runs in.
        image_path = os.path.abspath(image_path)
        image = read_image(image_path)
        mask = read_image(mask_path)
        # RGB(A) files: the colour axis holds the channels.
        rgb = image.shape[:-1] == mask.shape and image.shape[-1] in (3, 4)
        if rgb and grey:
            image, rgb, greyed = grey_version(image), False, greyed + 1
        samples += samples_from_arrays(
            image, mask, image_path, channel_axis=-1 if rgb else None,
            mask_name=f"mask {mask_path}", pixel_size_um=file_pixel_size(image_path), note=note,
            labels_advice="Are the patterns of the images and of their masks the other way round?",
        )  # fmt: skip
    if greyed:
        said = (
            f"The {greyed} colour picture(s) are learnt from in grey, as segmenting gives "
            "them to the model training starts from, which takes one channel."
        )
        if note is None:
            warnings.warn(said, UserWarning, stacklevel=2)
        else:
            note(said)
    return samples


def samples_from_tilescans(
    paths: Sequence[str | os.PathLike],
    input_channels: int | Sequence[int],
    mask_channel: int,
    note: Callable[[str], None] | None = None,
) -> list[TrainingSample]:
    """Training samples from the input and mask channels of tile scans, one per tile.

    Parameters
    ----------
    paths
        Tile scans (read with :func:`napari_cytomask.io.files.read_channels`).
    input_channels
        Index (or indices) of the channel(s) to segment, as numbered in the file (0-based).
    mask_channel
        Index of the channel that holds instance labels.
    note
        Called with what the user should know of a mask (see :func:`samples_from_arrays`).

    Returns
    -------
    list of TrainingSample
    """
    from ..io.files import open_scan, read_channels

    wanted = [input_channels] if isinstance(input_channels, int) else list(input_channels)
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"the input channels {wanted} name a channel twice; give each once.")
    if mask_channel in wanted:
        raise ValueError(
            f"channel {mask_channel} is both an input channel and the mask channel; the mask "
            "channel is the one that holds the labels, one id per cell."
        )
    if isinstance(paths, (str, os.PathLike)):  # one scan, as a list of one: not its letters
        paths = [paths]
    samples = []
    for path in paths:
        with open_scan(path) as scan:
            *images, mask = read_channels(scan, [*wanted, mask_channel], len(wanted) + 1)
            images, mask = [np.asarray(image) for image in images], np.asarray(mask)
            masks = ", ".join(f"{c.index} ({c.name})" for c in scan.by_role("mask")) or "none"
            named = next((c.name for c in scan.channels if c.index == mask_channel), "")
        samples += samples_from_arrays(
            images, mask, os.path.abspath(path),
            mask_name=f"Channel {mask_channel} ({named}) of {path}",
            pixel_size_um=scan.pixel_size_um, note=note,
            labels_advice=(
                f"Give the channel of label ids as the mask channel (those of this scan: {masks})."
            ),
        )  # fmt: skip
    return samples


def split_by_image(
    names: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[str]]:
    """A deterministic split of image names into training, validation and test sets.

    The names are sorted, shuffled by ``seed`` and cut by ``fractions`` (rounded,
    with at least one validation image when there are two images or more and a
    validation fraction, and at least one training image). Test images are held back only
    where their fraction comes to one or more: of three labelled images, one was held
    back and never used, leaving one to train on.

    Returns
    -------
    dict
        ``{"train": [...], "validation": [...], "test": [...]}``, each sorted.
    """
    names = sorted(set(names))
    n = len(names)
    total = float(sum(fractions))
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * fractions[1] / total)
    n_test = round(n * fractions[2] / total)
    if fractions[1] > 0 and n >= 2:
        n_val = max(n_val, 1)
    while n - n_val - n_test < 1 and (n_val or n_test):
        if n_test >= n_val:
            n_test -= 1
        else:
            n_val -= 1
    shuffled = [names[i] for i in order]
    split = {
        "validation": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "train": shuffled[n_val + n_test :],
    }
    return {k: sorted(split[k]) for k in SPLITS}


#: How the training dock splits the images (training, validation, test): no test images,
#: which it would never score; with 80/10/10, one of three labelled images was held back
#: unused.
DOCK_SPLIT = (0.9, 0.1, 0.0)


#: The part of a lone training image held back to validate on: its last quarter along
#: its longer side (``benchmarks/bench_finetune.py`` validates on a quarter too).
HELD_BACK = 0.25
#: The fewest rows (or columns) a held-back part may have.
_HELD_BACK_MIN = 32


def hold_back_part(sample: TrainingSample) -> list[TrainingSample] | None:
    """A lone image cut into a part to train on and a part to validate on, or None
    when it is too small to spare one or a part would hold no labelled cell.

    With one image, a split by image leaves nothing to validate on: the checkpoint
    would be chosen by training loss and the post-processing thresholds never
    chosen. Its last :data:`HELD_BACK` along its longer side is held back instead.
    """
    height, width = sample.labels.shape
    axis = 0 if height >= width else 1
    n = sample.labels.shape[axis]
    cut = n - round(n * HELD_BACK)
    if n - cut < _HELD_BACK_MIN:
        return None
    what = "rows" if axis == 0 else "columns"

    def part(start: int, stop: int) -> TrainingSample:
        index = (slice(start, stop), slice(None))[:: 1 if axis == 0 else -1]
        name = f"{sample.name} ({what} {start}-{stop - 1})"
        return TrainingSample(
            name,
            sample.channels[(slice(None), *index)],
            sample.labels[index],
            sample.pixel_size_um,
        )

    parts = [part(0, cut), part(cut, n)]
    # An image labelled in one area only: a part without cells would score 0 every epoch.
    return parts if all(p.labels.any() for p in parts) else None


# ----------------------------------------------------------------------------- crops


#: The tail :func:`hold_back_part` gives the names of a lone image's parts.
_PART = re.compile(r" \((?:rows|columns) \d+-\d+\)$")


def _image_key(name: str) -> tuple[str, str]:
    """Folder name and file name without its image suffix (a frame index, and a part's
    rows or columns, are kept), of a sample name recorded on any system."""
    part = _PART.search(name)
    tail = part.group(0) if part else ""
    *_, folder, file = ["", *name[: len(name) - len(tail)].replace("\\", "/").split("/")]
    return folder, IMAGE_SUFFIX.sub("", file) + tail


def cut_as_recorded(record: dict, samples: list[TrainingSample]) -> list[TrainingSample]:
    """``samples`` with the lone image a run cut in two (``record``, its ``training``)
    cut the same way: the image itself, or a copy elsewhere or in another format."""
    validation = (record.get("split") or {}).get("validation") or []
    if not record.get("held_back") or len(samples) != 1 or len(validation) != 1:
        return samples
    image = _PART.sub("", validation[0])
    if _image_key(samples[0].name) != _image_key(image):
        return samples
    return hold_back_part(samples[0]) or samples


def match_split(recorded: dict[str, list[str]], names: Sequence[str]) -> dict[str, list[str]]:
    """A recorded split (a checkpoint's ``training.split``) for the same images elsewhere.

    Images are matched by the name of their folder and their file name without its
    image suffix (``.../set13/raw.tif`` is ``.../set13/raw.png`` in another place), so
    a split recorded on one machine can be kept for a copy of the data on another.
    Recorded training and validation images that are not among ``names`` are left
    out; recorded test images that are not among them stay in the test part under
    their recorded names (training never reads the test images), so a model trained
    on a copy without them still records the split it was tested on.

    Raises
    ------
    ValueError
        When an image of ``names`` is in no part of the recorded split, or two
        images (given, or recorded) have the same folder and file name.
    """
    part_of = _part_of(recorded, "the recorded split", _image_key)
    keys = [_image_key(n) for n in names]
    given = set(keys)
    if len(given) < len(keys):
        raise ValueError(
            "two images have the same folder and file name, so the split cannot be matched."
        )
    split: dict[str, list[str]] = {k: [] for k in SPLITS}
    for name, key in zip(names, keys, strict=True):
        if key not in part_of:
            raise ValueError(f"{name} is in no part of the recorded split ({'/'.join(key)}).")
        split[part_of[key]].append(name)
    split["test"] += [n for n in recorded.get("test", []) if _image_key(n) not in given]
    return {k: sorted(v) for k, v in split.items()}


def _part_of(split: dict[str, list[str]], what: str, key: Callable[[str], Hashable]) -> dict:
    """The part of ``split`` that holds each image, by ``key(name)``; refuses an image held
    in two parts (``what``: how to call the split), which would be scored on what it had
    learnt."""
    part_of: dict = {}
    for part, names in split.items():
        for name in names:
            if part_of.setdefault(key(name), part) != part:
                raise ValueError(
                    f"{what} names {name!r} both in '{part_of[key(name)]}' and in '{part}'; "
                    "give each image to one part."
                )
    return part_of


def _resumed_split(recorded: dict[str, list[str]], names: Sequence[str]) -> dict | None:
    """The recorded split for a resumed run's images, or None when they are not the images
    it trained and validated on (matched as :func:`match_split` does)."""
    try:
        split = match_split(recorded, names)
    except ValueError:
        return None
    same = all(len(split[k]) == len(recorded.get(k) or []) for k in ("train", "validation"))
    return split if same else None


def make_targets(labels: np.ndarray, targets: str, boundary_width: int) -> np.ndarray:
    """Class map of instance labels: 0/1/2 (background/interior/boundary) or 0/1 (foreground)."""
    if targets == "foreground":
        return (labels > 0).astype(np.uint8)
    return instances_to_interior_boundary(labels, boundary_width=boundary_width)


class CropSampler:
    """Random augmented training crops of normalised images and their targets.

    Parameters
    ----------
    samples
        Training samples.
    config
        The network (targets, percentiles).
    settings
        Crop size, boundary width, cell bias, rotation.
    rng
        Random generator.
    """

    def __init__(self, samples, config: UNetConfig, settings: TrainingSettings, rng):
        self.config = config
        self.settings = settings
        self.rng = rng
        self.images = [normalise_channels(s.channels, config.percentiles) for s in samples]
        self.labels = [s.labels for s in samples]
        self.cells = [np.flatnonzero(lab.ravel() > 0) for lab in self.labels]

    def class_frequencies(self) -> np.ndarray:
        """Fraction of pixels of each class over all training images."""
        counts = np.zeros(len(self.config.classes))
        for lab in self.labels:
            t = make_targets(lab, self.config.targets, self.settings.boundary_width)
            counts += np.bincount(t.ravel(), minlength=len(counts))[: len(counts)]
        return counts / max(counts.sum(), 1)

    def _region(self, i: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A ``size`` square of image ``i``, mostly on cells; an image smaller than that is
        mirrored to fill it, and its cells with it (cells padded as background taught the
        network to call the mirrored cells of the image background)."""
        image, labels = self.images[i], self.labels[i]
        h, w = labels.shape
        if self.cells[i].size and self.rng.random() < self.settings.cell_bias:
            cy, cx = divmod(int(self.rng.choice(self.cells[i])), w)
        else:
            cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        y0 = int(np.clip(cy - size // 2, 0, max(h - size, 0)))
        x0 = int(np.clip(cx - size // 2, 0, max(w - size, 0)))
        img = image[:, y0 : y0 + size, x0 : x0 + size]
        lab = labels[y0 : y0 + size, x0 : x0 + size]
        ph, pw = size - lab.shape[0], size - lab.shape[1]
        if ph or pw:
            mode = "reflect" if min(h, w) > 1 else "edge"
            img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode=mode)
            lab = np.pad(lab, ((0, ph), (0, pw)), mode=mode)
        return img, lab

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented crop: ``(C, S, S)`` float32 image and ``(S, S)`` class map."""
        s = self.settings.crop_size
        i = int(self.rng.integers(len(self.images)))
        h, w = self.labels[i].shape
        big = math.ceil(s * math.sqrt(2)) + 2
        if self.settings.rotate and min(h, w) >= big and self.rng.random() < 0.5:
            img, lab = self._region(i, big)
            angle = float(self.rng.uniform(0, 360))
            img = ndi.rotate(img, angle, axes=(1, 2), reshape=False, order=1, mode="reflect")
            lab = ndi.rotate(lab, angle, reshape=False, order=0, mode="constant")
            o = (big - s) // 2
            img, lab = img[:, o : o + s, o : o + s], lab[o : o + s, o : o + s]
        else:
            img, lab = self._region(i, s)
        k = int(self.rng.integers(4))
        img, lab = np.rot90(img, k, axes=(1, 2)), np.rot90(lab, k)
        if self.rng.random() < 0.5:
            img, lab = img[:, :, ::-1], lab[:, ::-1]
        # Mild intensity changes: contrast, brightness, gamma-like curve and noise.
        img = img * self.rng.uniform(0.85, 1.15) + self.rng.uniform(-0.1, 0.1)
        if self.rng.random() < 0.3:
            img = img + self.rng.normal(0, 0.02, img.shape)
        target = make_targets(
            np.ascontiguousarray(lab), self.config.targets, self.settings.boundary_width
        )
        return np.ascontiguousarray(img, dtype=np.float32), target

    def arrays(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` crops: float32 images ``(n, C, S, S)`` and uint8 class maps ``(n, S, S)``."""
        crops = [self.crop() for _ in range(n)]
        return np.stack([c[0] for c in crops]), np.stack([c[1] for c in crops])

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` crops as tensors ``(n, C, S, S)`` and ``(n, S, S)`` (int64)."""
        return _as_tensors(*self.arrays(n))


def _as_tensors(images: np.ndarray, classes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(images), torch.from_numpy(classes.astype(np.int64))


#: ``prctl`` option: the signal a process gets when its parent ends (Linux).
_PR_SET_PDEATHSIG = 1
#: The crop sampler of a worker process (see :func:`_batches`).
_worker_sampler: CropSampler | None = None


def _start_worker(sampler: CropSampler, parent: int) -> None:
    global _worker_sampler
    _worker_sampler = sampler
    # Ctrl+C is the training process's to handle; a worker ends with it, even when it is
    # killed (Linux), instead of living on with a copy of the images.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the training process ended before the line above
            os._exit(0)


def _worker_arrays(seed: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    _worker_sampler.rng = np.random.default_rng(seed)
    return _worker_sampler.arrays(n)


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers(device: torch.device) -> int:
    """Crop workers when :attr:`TrainingSettings.workers` is ``None``: on a CUDA device
    one per CPU core but one (the training loop's), at most 8; elsewhere, and where
    processes cannot be forked (Windows), none."""
    if device.type != "cuda" or not _can_fork():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(8, (cores or 1) - 1))


#: Tells the seeds of worker crop batches apart from other uses of the run's seed.
_CROP_STREAM = 0x63726F70


def _batches(
    sampler: CropSampler, n: int, workers: int, seed: int, start: int = 0
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    """Endless training batches of ``n`` crops: made in this process by ``sampler``
    (from its random generator), or, with ``workers``, made ahead by that many processes.

    Worker batch ``i`` (counted from ``start``, the steps already done) has its own
    seed, made of the run's ``seed`` and ``i``, and the batches come back in order:
    the crops depend neither on the number of workers nor on which finishes first,
    and a resumed run goes on with the batches an uninterrupted one would have had.
    The workers stop when the generator is closed or dropped.
    """
    if not workers:
        while True:
            yield sampler.batch(n)
    entropy = (_CROP_STREAM, seed % 2**63)
    # Forked, as PyTorch's data loaders are: the workers share the images with this
    # process and never run its main script again (a script that trains without an
    # ``if __name__ == "__main__":`` guard works), and they only run NumPy and SciPy,
    # never Qt or CUDA, which a forked copy of a process could not use safely.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(sampler, os.getpid()),
    )
    try:
        pending: deque = deque()
        for index in itertools.count(start):
            try:
                while len(pending) < 2 * workers:
                    seed = (*entropy, index + len(pending))
                    pending.append(pool.submit(_worker_arrays, seed, n))
                arrays = pending.popleft().result()
            except BrokenProcessPool as err:
                raise ChildProcessError(
                    "a process making training crops stopped (out of memory?); train again "
                    "with fewer crop workers (cytomask train --workers) or smaller crops."
                ) from err
            yield _as_tensors(*arrays)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def class_weights(frequencies: np.ndarray, max_weight: float = 10.0) -> np.ndarray:
    """Median-frequency class weights, capped: rare classes (the boundary) weigh more."""
    freq = np.maximum(np.asarray(frequencies, dtype=np.float64), 1e-6)
    weights = np.median(freq) / freq
    return np.clip(weights, 1.0 / max_weight, max_weight)


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, dice_weight: float = 1.0
) -> torch.Tensor:
    """Class-weighted cross-entropy plus soft Dice over the non-background classes.

    Parameters
    ----------
    logits
        ``(B, K, Y, X)`` network output.
    target
        ``(B, Y, X)`` class indices.
    weights
        ``(K,)`` cross-entropy class weights.
    dice_weight
        Weight of the Dice term.
    """
    logits = logits.float()
    ce = F.cross_entropy(logits, target, weight=weights)
    probs = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = 1 - ((2 * inter + 1) / (denom + 1)).mean()
    return ce + dice_weight * dice


# ----------------------------------------------------------------------------- evaluation


def f1_at(evaluation: Evaluation, threshold: float = 0.5) -> float:
    """Instance F1 at one IoU threshold of the mean-average-F1 thresholds."""
    thresholds = np.asarray(evaluation.maf1_matches.thresholds)
    index = int(np.argmin(np.abs(thresholds - threshold)))
    return float(evaluation.maf1_matches.f1[index])


def scores_of(evaluation: Evaluation) -> dict:
    """Headline scores of an evaluation: mean-average F1, mSA, F1 at 0.5 and 0.75, pixel
    metrics."""
    summary = evaluation.summary()
    return {
        "mean_average_f1": summary["mean_average_f1"],
        "mean_segmentation_accuracy": summary["mean_segmentation_accuracy"],
        "f1_50": f1_at(evaluation, 0.5),
        "f1_75": f1_at(evaluation, 0.75),
        "pixel_iou": summary["pixel_iou"],
        "pixel_f1": summary["pixel_f1"],
        "n_true": int(evaluation.maf1_matches.n_true),
        "n_pred": int(evaluation.maf1_matches.n_pred),
    }


def _evaluate_probabilities(
    sample: TrainingSample,
    probabilities: np.ndarray,
    targets: str,
    settings: dict,
    zoom: tuple[float, float] | None = None,
) -> Evaluation:
    """Cells of one image's probabilities with post-processing ``settings``, against its
    labels; with the ``zoom`` it was resampled by for the network, the sizes in the
    network's pixels counted in the image's, and the cells of a foreground map found over
    the shape of its pixels, as segmenting finds them."""
    args = postprocess_arguments(targets, **settings)
    labels = drain(
        probabilities_to_instances(
            probabilities,
            targets,
            params=args["postprocess"],
            cleanup=args["cleanup"],
            spacing=sample.pixel_size_um,
            zoom=zoom,
        )
    )
    return evaluate(sample.labels, labels)


def _predict_sample(predictor: UNetPredictor, sample: TrainingSample, **kwargs) -> np.ndarray:
    return drain(iter_predict(predictor, list(sample.channels), **kwargs))


def iter_evaluate(
    predictor: UNetPredictor,
    samples: Sequence[TrainingSample],
    *,
    overlap: int = 64,
    batch_size: int = 8,
    tta: bool = False,
    settings: dict | None = None,
) -> Generator[tuple[int, int], None, Evaluation | None]:
    """Segment samples and compare with their labels; yields ``(done, total)`` images.

    ``settings`` are post-processing settings (see
    :data:`~.inference.DEFAULT_SETTINGS`); default ``predictor.settings``. As segmenting
    does, an image whose pixel size differs from the one the network learnt cells at is
    resampled to it for the network (:func:`~.catalog.zoom_to`), and its cells are
    compared at its own pixels.

    Returns
    -------
    napari_cytomask.metrics.Evaluation or None
        Counts summed over the images (``None`` without samples).
    """
    settings = {**predictor.settings, **(settings or {})}
    total = None
    yield 0, len(samples)  # said before the first image, which takes seconds to minutes
    for i, sample in enumerate(samples):
        zoom = zoom_to(sample.pixel_size_um, predictor.pixel_size_um)
        probs = _predict_sample(
            predictor, sample, overlap=overlap, batch_size=batch_size, tta=tta, zoom=zoom
        )
        result = _evaluate_probabilities(sample, probs, predictor.config.targets, settings, zoom)
        total = result if total is None else total + result
        yield i + 1, len(samples)
    return total


def evaluate_model(predictor: UNetPredictor, samples, **kwargs) -> Evaluation | None:
    """Run :func:`iter_evaluate` to the end."""
    return drain(iter_evaluate(predictor, samples, **kwargs))


# ----------------------------------------------------------------------------- tuning

#: Thresholds :func:`iter_tune_postprocess` tries (interior and foreground). A
#: class-weighted loss makes the network over-confident in the rare classes, so
#: the best foreground threshold can lie far above 0.5; there a cell's outline moves by
#: a pixel between 0.95 and 0.98 (the starter model's validation mean-average F1: 0.536
#: at 0.95, 0.515 at 0.97, 0.437 at 0.98), hence the finer steps near 1.
TUNING_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)
#: Halvings of the step around each chosen threshold after the grid's rounds.
TUNING_REFINEMENTS = 2
#: Minimum cell sizes it tries, as fractions of the median area of the labelled cells.
TUNING_MIN_SIZES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def _cell_areas(labels) -> np.ndarray:
    """Pixel count of each cell; by id present, so ids up to 2**64 need no more memory."""
    ids, counts = np.unique(np.asarray(labels), return_counts=True)
    return counts[ids != 0]


def iter_tune_postprocess(
    predictor: UNetPredictor,
    samples: Sequence[TrainingSample],
    *,
    overlap: int = 64,
    batch_size: int = 8,
    rounds: int = 2,
    tta: bool = True,
    start: dict | None = None,
) -> Generator[tuple[int, int], None, dict | None]:
    """Choose the post-processing settings that give the best mean-average F1 on ``samples``.

    Like Cellpose and StarDist tune their thresholds after training, the
    interior threshold, the foreground threshold and the minimum cell size are
    chosen on labelled images the network was not trained on (the validation
    images). The probabilities are predicted once (and held in memory: 12
    bytes per pixel for three classes); then each setting in turn
    is set to the value of :data:`TUNING_THRESHOLDS` (or
    :data:`TUNING_MIN_SIZES`) that scores best with the others fixed, for
    ``rounds`` rounds; then each threshold tries the points halfway to its
    neighbours, :data:`TUNING_REFINEMENTS` times, halving the step each time (a cell's
    outline can move by a pixel between two grid values). A value replaces the current
    one only when it scores strictly better, so the defaults stay unless the images
    argue otherwise. ``start``, the model's own settings (:func:`recommended_settings`),
    is where the search starts instead, where it scores at least as well as the defaults.
    ``tta`` predicts with flip test-time augmentation, as segmenting does by
    default, so the thresholds suit the probabilities they will be used on. Images are
    first resampled to the pixel size the network learnt cells at (:func:`at_pixel_size`),
    so the minimum cell size is in its pixels, as segmenting takes it.

    Yields ``(done, total)``: images predicted, then settings tried.

    Returns
    -------
    dict or None
        The settings (keys of :data:`~.inference.DEFAULT_SETTINGS`) with
        ``"tta"`` (whether the probabilities were predicted with it), ``"tuned_on"``
        (image names) and ``"scores"`` (``"default"``, ``"own"`` with a ``start`` of
        other settings, and
        ``"tuned"`` :func:`scores_of` on these images); ``None`` without samples
        or without a labelled cell.
    """
    samples, _ = samples_at_pixel_size(samples, predictor.pixel_size_um)
    areas = np.concatenate([_cell_areas(s.labels) for s in samples] or [[]])
    if not areas.size:
        return None
    targets = predictor.config.targets
    median_area = float(np.median(areas))
    candidates = {
        "interior_threshold": TUNING_THRESHOLDS,
        "foreground_threshold": TUNING_THRESHOLDS,
        "min_size": sorted({int(round(f * median_area)) for f in TUNING_MIN_SIZES}),
    }
    if targets == "foreground":
        del candidates["interior_threshold"]
    thresholds = [name for name in candidates if name.endswith("_threshold")]
    total = (
        len(samples)
        + rounds * sum(len(v) for v in candidates.values())
        + 2 * TUNING_REFINEMENTS * len(thresholds)
    )
    probabilities = []
    yield 0, total  # said before the first image, which takes seconds to minutes
    for i, sample in enumerate(samples):
        probabilities.append(
            _predict_sample(predictor, sample, overlap=overlap, batch_size=batch_size, tta=tta)
        )
        yield i + 1, total
    done = len(samples)
    scored: dict[tuple, dict] = {}

    def score(settings: dict) -> dict:
        key = tuple(sorted(settings.items()))
        if key not in scored:
            evaluation = None
            for sample, probs in zip(samples, probabilities, strict=True):
                result = _evaluate_probabilities(sample, probs, targets, settings)
                evaluation = result if evaluation is None else evaluation + result
            scored[key] = scores_of(evaluation)
        return scored[key]

    def objective(scores: dict) -> float:
        value = scores["mean_average_f1"]
        return -math.inf if math.isnan(value) else value

    best = dict(DEFAULT_SETTINGS)
    default_scores = best_scores = score(best)
    before = {"default": default_scores}
    if start is not None:
        # The model's own stay unless the images argue otherwise, as the defaults do: on
        # a few labelled cells that it matched at no setting, the starter model fine-tuned
        # was left at the defaults, which find 76% of its cells where its own find 95%.
        own = {k: start[k] for k in DEFAULT_SETTINGS}
        own_scores = score(own)
        if own != best:
            # What the model scored before, where its own are not the defaults: said from
            # the defaults, tuning's gain read as 0.23 where it gained the model 0.01.
            before["own"] = own_scores
        if objective(own_scores) >= objective(default_scores):
            best, best_scores = own, own_scores

    def attempt(name: str, value) -> bool:
        nonlocal best, best_scores
        trial = {**best, name: value}
        scores = score(trial)
        if objective(scores) > objective(best_scores) + 1e-9:
            best, best_scores = trial, scores
            return True
        return False

    for _ in range(rounds):
        for name, values in candidates.items():
            for value in values:
                attempt(name, value)
                done += 1
                yield done, total
    for name in thresholds:
        # The neighbours of the chosen value: its grid neighbours, or 0 and 1 past the ends.
        grid = [0.0, *candidates[name], 1.0]
        lower = max((v for v in grid if v < best[name]), default=best[name])
        upper = min((v for v in grid if v > best[name]), default=best[name])
        for _ in range(TUNING_REFINEMENTS):
            centre = best[name]
            for neighbour in (lower, upper):
                # To 0.001, as the segmenting dock shows and uses them.
                attempt(name, round((centre + neighbour) / 2, 3))
                done += 1
                yield done, total
            if best[name] > centre:
                lower = centre
            elif best[name] < centre:
                upper = centre
            else:
                lower, upper = (centre + lower) / 2, (centre + upper) / 2
    return {
        **best,
        "tta": tta,
        "tuned_on": [s.name for s in samples],
        "scores": {**before, "tuned": best_scores},
    }


def tuned_note(tuned: dict, description: dict | None = None) -> str:
    """A sentence when a model, even with its chosen thresholds, finds few of the validation
    images' cells (tuning then keeps the few it gets right: a barely trained model's
    settings can leave a handful of cells); ``""`` otherwise. ``description``, the model's,
    tells whether it was fine-tuned already."""
    scores = tuned["scores"]["tuned"]
    if not scores["f1_50"] < USABLE_F1:
        return ""
    found, labelled = scores["n_pred"], scores["n_true"]
    # F1 is 2 TP / (found + labelled); said as a share of either, it read "gets 40 % of
    # them right" where the one labelled cell was found among four.
    matched = round(scores["f1_50"] * (found + labelled) / 2)
    split = ((description or {}).get("training") or {}).get("split") or {}
    where = (
        "the validation images"
        if split.get("validation") and split["validation"] == tuned.get("tuned_on")
        else "the images its thresholds were chosen on"
    )
    text = (
        f"This model is not ready yet: on {where} it finds {found} cell(s) where {labelled} "
        f"are labelled, and {matched} of them match a labelled cell (IoU 0.5; F1 "
        f"{scores['f1_50']:.2f})."
    )
    if scores["n_pred"] >= 2 * scores["n_true"]:
        # Seven cells of 45 labelled, and the starter model "found" 10 in the part held
        # back where 2 were: unlabelled cells count as background, in training and scores.
        text += (
            " If those images hold cells that are not labelled, label every cell in them: "
            "unlabelled cells are learnt, and scored, as background."
        )
    fine_tuned = ((description or {}).get("training") or {}).get("initialised_from")
    how = "" if fine_tuned else "; starting from the starter model gets there sooner"
    return f"{text} Train it for longer or on more labelled images{how}."


def time_limit_note(result: TrainingResult) -> str:
    """A sentence when a run's time limit stopped it before its epochs were done; ``""``
    otherwise (its epochs, or early stopping, ended it)."""
    training = result.description.get("training") or {}
    done, settings = training.get("epochs_done"), training.get("settings") or {}
    planned, limit = settings.get("epochs"), settings.get("time_limit")
    last = (training.get("history") or [{}])[-1]
    cut = last.get("steps_in_epoch") if isinstance(last, dict) else None
    if not (limit and done and planned and (done < planned or cut)) or result.stopped_early:
        return ""
    # Not "after 3 of 3 epochs" of a third cut short: it read as all of them trained.
    where = (
        f"in epoch {done} of {planned}, at step {cut} of {settings.get('steps_per_epoch')}"
        if cut
        else f"after {done} of {planned} epochs"
    )
    # In minutes, as the limit is given (--time-limit, the dock's box): 1.5 was "2 min".
    return f"It stopped at the time limit ({limit / 60:g} min) {where}."


def kept_thresholds(description: dict) -> str:
    """The thresholds a run stopped as it chose its own saved its model with (its
    ``description``), as the dock and ``cytomask train`` say them then: "the default
    thresholds (interior 0.5, foreground 0.5, minimum cell size 0 px)"."""
    own = recommended_settings(description)
    which = (
        "the thresholds of the model it started from"
        if segmenting_settings(description)
        else "the default thresholds"
    )
    return (
        f"{which} (interior {own['interior_threshold']:g}, foreground "
        f"{own['foreground_threshold']:g}, minimum cell size {own['min_size']} px)"
    )


def kept_start_note(description: dict) -> str:
    """A sentence when no epoch of a fine-tuning run scored above the model it started
    from on the validation images, so that model is the one the run saved; ``""``
    otherwise."""
    training = description.get("training") or {}
    kept_start = training.get("initialised_from") and training.get("epochs_done")
    if not kept_start or training.get("best_epoch") != 0:
        return ""
    thresholds = "chosen on these images" if description.get("postprocess") else "its own"
    text = (
        "No epoch scored above the starting model on the validation images, so the model "
        f"saved is the starting one, with thresholds {thresholds}."
    )
    # Else it is no model for these images yet.
    if chosen_scores(description).get("f1_50", 0) >= USABLE_F1:
        text += (
            " It may already suit images like these; to improve on it, label more images, "
            "or train for longer or with a lower learning rate."
        )
    return text


def saved_epoch_note(description: dict) -> str:
    """Which epoch's network a run saved (``description``), as a sentence for its end: the
    line that marked it may have scrolled away, and a resumed run's epochs may all score
    below it (the part of an epoch before a time limit cut it short, kept over the rest of
    that epoch). ``""`` where the run kept the model it started from (see
    :func:`kept_start_note`). Said after :func:`time_limit_note`, which names the step a run
    ended at: of that epoch, its cut is not said twice."""
    training = description.get("training") or {}
    epoch = training.get("best_epoch")
    if not epoch:
        return ""
    cut = training.get("best_steps_in_epoch")
    last = (training.get("history") or [{}])[-1]
    ended = isinstance(last, dict) and (last.get("epoch"), last.get("steps_in_epoch"))
    if cut and ended == (epoch, cut):
        epoch = f"{epoch} up to that step"
    elif cut:
        steps = (training.get("settings") or {}).get("steps_per_epoch")
        epoch = f"{epoch} up to step {cut} of {steps}, where the time limit cut it short"
    scores = (description.get("scores") or {}).get("validation") or {}
    best = (
        f"the best on the validation images (mean-average F1 {scores['mean_average_f1']:.3f})"
        if "mean_average_f1" in scores
        else "the one with the lowest training loss"
    )
    return f"The model saved is that of epoch {epoch}: {best}."


def tune_postprocess(predictor: UNetPredictor, samples, **kwargs) -> dict | None:
    """Run :func:`iter_tune_postprocess` to the end."""
    return drain(iter_tune_postprocess(predictor, samples, **kwargs))


def iter_tune_checkpoint(
    path: str | os.PathLike,
    samples: Sequence[TrainingSample],
    *,
    device="auto",
    batch_size: int = 4,
    tta: bool = True,
) -> Generator[tuple[int, int], None, dict]:
    """Tune a saved checkpoint's post-processing on labelled images and record it there.

    When ``samples`` include all the checkpoint's validation images, only those
    are used (the others may have trained it). The weights are unchanged; the
    file is rewritten atomically. Yields as :func:`iter_tune_postprocess`.

    Returns
    -------
    dict
        The tuned settings, as stored under ``"postprocess"`` in the description.

    Raises
    ------
    ValueError
        When the images hold no labelled cell or do not fit the network, or ``path`` is the
        starter model, which the package holds.
    napari_cytomask.io.atomic.WriteError
        When the checkpoint's folder cannot be written to: said before the minutes of
        tuning, which were lost.
    """
    if is_starter(path):
        raise ValueError(
            "tuning rewrites a checkpoint file, and 'starter' is the model inside the package; "
            "to adapt it to your images, train from it (init_from='starter', or cytomask "
            "train --from starter), which also chooses its thresholds on your validation images."
        )
    # A name in the model folder: the file it names is rewritten, not one of that name here.
    path = resolve_unet(path)
    check_folder_writable(path.parent)
    predictor = UNetPredictor.from_checkpoint(path, device)
    samples = list(samples)
    for sample in samples:
        check_input_channels(predictor.description, sample.channels.shape[0], path)
    record = predictor.description.get("training") or {}
    # Trained on a lone image's first part: its held-back part tunes it.
    samples = cut_as_recorded(record, samples)
    split = record.get("split") or {}
    validation = {_image_key(n) for n in split.get("validation") or []}
    # Matched as match_split does: a relative pattern, or a copy of the data elsewhere,
    # names the same images otherwise than training recorded them.
    if validation and validation <= {_image_key(s.name) for s in samples}:
        samples = [s for s in samples if _image_key(s.name) in validation]
    own = recommended_settings(predictor.description)
    tuned = yield from iter_tune_postprocess(
        predictor, samples, batch_size=batch_size, tta=tta, start=own
    )
    if tuned is None:
        raise ValueError("the labelled images hold no cell; give images with instance labels.")
    description = {**predictor.description, "postprocess": tuned}
    if unfinished(predictor.description):
        # A run stopped as it chose its thresholds has them now: segmenting with it said
        # to finish it with --resume still.
        description["training"] = record = {**record, "finished": True}
    if predictor.pixel_size_um is not None:
        # Written again, the weights get another checksum: a copy of the starter model,
        # known by it, keeps its pixel size by recording it.
        description["training"] = {**record, "pixel_size_um": predictor.pixel_size_um}
    save_checkpoint(path, predictor.model, description)
    return tuned


# ----------------------------------------------------------------------------- training


def default_output(
    config: UNetConfig,
    folder: str | os.PathLike | None = None,
    data: Sequence[str] = (),
    fine_tuned: bool = False,
) -> Path:
    """A new checkpoint path in ``folder`` (default :func:`cache_dir`) named after what
    it learnt from (``data``, the training images' names) and how, or after its network,
    and the time (with a number after it when a file of that name, or its training
    state, exists): ``img2d-fine-tuned-20261201-084054``, ``usiigaci-phc-resnet18-…``
    for ``usiigaci-phc/set*/raw.tif``."""
    folder = cache_dir() if folder is None else Path(folder)
    # A file's or a layer's name, without a frame index or an image suffix ("a.b" stays).
    files = list(dict.fromkeys(re.sub(r"\[\d+\]$", "", n) for n in data))
    names = [IMAGE_SUFFIX.sub("", Path(f).name) for f in files]
    if len(set(names)) < len(files):
        # Files of one name in folders of their own (set1/raw.tif, set2/raw.tif): named
        # after the folder that holds them all, not "raw".
        with contextlib.suppress(ValueError):  # names that are no paths of one kind
            common = Path(os.path.commonpath(files)).name
            names = [common] if common else names
    stems = list(dict.fromkeys(safe_file_name(name)[:40].lstrip(".") or "labels" for name in names))
    if stems:
        what = stems[0] + (f"+{len(stems) - 1}" if len(stems) > 1 else "")
        what += "-fine-tuned" if fine_tuned else f"-{config.encoder}"
    else:
        what = f"{config.architecture}-{config.encoder}-{config.targets}"
    stem = f"{what}-{time.strftime('%Y%m%d-%H%M%S')}"
    path = folder / f"{stem}{SUFFIX}"
    number = 1
    while path.exists() or state_path(path).exists():
        number += 1
        path = folder / f"{stem}-{number}{SUFFIX}"
    return path


def recorded_settings(description: dict) -> dict:
    """The :class:`TrainingSettings` (as a dict) the run whose checkpoint has
    ``description`` (:func:`~.checkpoint.read_description`) trained with; empty where it
    records none."""
    return (description.get("training") or {}).get("settings") or {}


#: The settings a resumed run keeps of its own unless others are given: what it learns
#: from and how, and whether its thresholds are chosen at the end. Where it runs, with how
#: many workers and for how long are the session's: a time limit counts from its start.
RUN_SETTINGS = (
    "epochs", "steps_per_epoch", "batch_size", "crop_size", "learning_rate", "weight_decay",
    "lr_patience", "lr_factor", "patience", "boundary_width", "seed", "cell_bias", "rotate",
    "dice_weight", "validation_overlap", "resample", "tune",
)  # fmt: skip


def resumed_settings(
    description: dict, settings: TrainingSettings, given: Iterable[str] = ()
) -> TrainingSettings:
    """``settings`` for resuming the run whose checkpoint has ``description``
    (:func:`~.checkpoint.read_description`): its own recorded values of
    :data:`RUN_SETTINGS` in place of those not ``given`` (names), so that a run goes on
    as it was started (its targets, schedule and patience), not with defaults."""
    recorded, given = recorded_settings(description), set(given)
    kept = {k: recorded[k] for k in RUN_SETTINGS if k in recorded and k not in given}
    return replace(settings, **kept)


def state_path(checkpoint: str | os.PathLike) -> Path:
    """The training state file of ``checkpoint``: beside it, with the same stem.

    It holds what a checkpoint does not: the weights after the last finished
    epoch (the checkpoint keeps the best ones), the optimiser's moments, the
    learning-rate schedule, the early-stopping count and the random
    generators, so a resumed run continues exactly where the first one stopped.
    """
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(SUFFIX) + STATE_SUFFIX)


def state_note(checkpoint: str | os.PathLike, resume_with: str) -> str:
    """What the training state saved beside ``checkpoint`` is for, naming its size (tens
    of MB, one for every run, which piled up unsaid): ``resume_with`` (the option or field)
    trains it further. Empty without one."""
    state = state_path(checkpoint)
    if not state.is_file():
        return ""
    return (
        f"{state.name} ({state.stat().st_size / 1e6:.0f} MB) beside it lets {resume_with} "
        "train it further; delete it when you will not"
    )


#: What a run with no image left for validation says of its thresholds, by whether it
#: fine-tuned a model (whose thresholds it keeps) or trained a new network.
NO_VALIDATION_TO_TUNE = {
    fine_tuned: "no image was left for validation, so the post-processing thresholds were "
    f"not chosen for this model and stay {kept}; choose them on labelled images of your "
    "own with cytomask tune MODEL --images ... --masks ..."
    for fine_tuned, kept in ((False, "at their defaults"),
                             (True, "those of the model it started from"))
}  # fmt: skip

_STATE_KEYS = {
    "run", "epoch", "steps", "history", "best_score", "since_best", "model", "optimiser",
    "scheduler", "scaler", "numpy_rng", "torch_rng",
}  # fmt: skip


def _state_not_saved(checkpoint: Path, err: OSError) -> str:
    """What a run whose training state could not be saved beside ``checkpoint`` does."""
    return (
        f"The training state could not be saved beside {checkpoint.name} ({reason(err)}). "
        "Training goes on, saving the best network without it: a run stopped from here on "
        "goes on from that network with a new optimiser and learning rate. Free some space "
        "to have it saved at the next epochs."
    )


def _write_state(checkpoint: Path, state: dict) -> None:
    """Save a training state beside ``checkpoint`` (see :func:`state_path`)."""
    write_atomically(state_path(checkpoint), lambda tmp: torch.save(state, tmp), overwrite=True)


def _load_state(
    checkpoint: Path, run: str | None, weights: Iterable[str]
) -> tuple[dict | None, str | None]:
    """The training state of ``checkpoint`` when it belongs to training run ``run`` and
    holds the network's ``weights`` (names).

    Returns the state, or ``None`` and a sentence saying why training restarts
    its optimiser instead.
    """
    state, why = _run_state(checkpoint, run)
    if state is not None and set(state["model"]) != set(weights):
        # Saved before build_model left out the encoder stages a network never runs.
        path = state_path(checkpoint)
        state, why = None, f"the training state {path} holds other weights than the network"
    if state is not None:
        return state, None
    return (
        None,
        f"{why}; training continues from its weights with a new optimiser and learning rate.",
    )


def _run_state(checkpoint: Path, run: str | None) -> tuple[dict | None, str | None]:
    """The training state of ``checkpoint`` when it belongs to training run ``run``; else
    ``None`` and what it is (the start of a sentence)."""
    path = state_path(checkpoint)
    if not path.exists():
        return None, f"{checkpoint.name} has no training state beside it ({path.name})"
    damaged = f"the training state {path} is damaged or is not a training state"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated or foreign file: any unpickling error
        return None, damaged
    if not isinstance(state, dict) or not _STATE_KEYS <= state.keys():
        return None, damaged
    if run is None or state["run"] != run:
        return None, f"the training state {path} belongs to another training run"
    return state, None


def epochs_trained(
    checkpoint: str | os.PathLike, description: dict, patience: int
) -> tuple[int, bool]:
    """The epochs the run saved in ``checkpoint`` (with ``description``) has trained, which
    a resumed run does not train again: to the last one it finished, by its training state,
    where it has one of its run, else to the epoch of the network the file holds (the best
    so far, or the starting model of a fine-tuning that none beat); and whether it had
    stopped early, its score unimproved for ``patience`` epochs."""
    training = description.get("training") or {}
    state, _ = _run_state(Path(checkpoint), training.get("run"))
    return _progress(state, description, patience)


def _progress(state: dict | None, description: dict, patience: int) -> tuple[int, bool]:
    """The epochs a saved run trained and whether it had stopped early: by its training
    ``state`` where it has one, else by its checkpoint's ``description``."""
    if state is None:
        training = description.get("training") or {}
        epoch, history = int(training.get("epochs_done", 0)), training.get("history") or []
        return epoch - bool(_steps_into(epoch, history)), False
    epoch = int(state["epoch"])
    return epoch - bool(_steps_into(epoch, state["history"])), state["since_best"] >= patience


def _steps_into(epoch: int, history: Sequence[dict]) -> int:
    """The steps a run's last ``epoch`` had done when the time limit cut it short, by its
    ``history`` (a training state's, or the one its checkpoint records), which a resumed
    run goes on from (that epoch is not done); 0 when it ended."""
    last = (history or [{}])[-1]
    return int(last.get("steps_in_epoch", 0)) if last.get("epoch") == epoch else 0


def short_names(names: Sequence[str], among: Sequence[str]) -> list[str]:
    """``names`` (absolute paths, or names like ``scan.tif[3]``) relative to the folder
    that holds all of ``among``: ``set7/raw.tif`` rather than ``raw.tif``."""
    try:
        folder = os.path.commonpath(among) if len(among) > 1 else os.path.dirname(among[0])
    except ValueError:  # names that are no paths, or mixed absolute and relative ones
        return list(names)
    return [os.path.relpath(name, folder) if folder else name for name in names]


def _summary(samples: Sequence[TrainingSample]) -> dict:
    return {
        "images": len(samples),
        "pixels": int(sum(s.labels.size for s in samples)),
        "cells": int(sum(len(np.unique(s.labels)) - 1 for s in samples)),
    }


def _random_state(rng: np.random.Generator, device: torch.device) -> dict:
    """What a resumed run needs to draw the same random numbers: the crops' (numpy),
    PyTorch's on the CPU and, training on a GPU (CUDA's, or an Apple GPU's), that GPU's
    (efficientnet's drop-connect draws there)."""
    return {
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "mps_rng": torch.mps.get_rng_state() if device.type == "mps" else None,
    }


def _restore_random_state(state: dict, rng: np.random.Generator, device: torch.device) -> None:
    """Restore :func:`_random_state`; a state saved on the CPU, or before the GPU's was
    kept, leaves the GPU's as the run's seed set it."""
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    if device.type == "mps" and state.get("mps_rng") is not None:
        torch.mps.set_rng_state(state["mps_rng"])


def _own_random_state(generator_function):
    """Run a generator function with PyTorch's random state restored once it is done: the
    CPU's and every GPU's (CUDA's, and an Apple GPU's), as training seeds them all
    (:func:`torch.manual_seed`), which must not change the random numbers of the rest of
    napari."""

    @functools.wraps(generator_function)
    def run(*args, **kwargs):
        # Every GPU, not only the one trained on: each was seeded, and training on the CPU
        # seeds them too, when CUDA starts.
        gpus = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
        with (
            torch.random.fork_rng(devices=gpus, device_type="cuda"),
            # A Mac has one Apple GPU at most, seeded with the others.
            torch.random.fork_rng(
                devices=["mps"], enabled=torch.backends.mps.is_available(), device_type="mps"
            ),
        ):
            return (yield from generator_function(*args, **kwargs))

    return run


def replaced_file(
    output: str | os.PathLike | None, resume: str | os.PathLike | None = None
) -> Path | None:
    """The model file a training run given ``output`` would replace: None when there is
    none (no name, a folder to put a new file in, a new name) or it is the checkpoint the
    run resumes."""
    if output is None or Path(output).is_dir():
        return None
    target = checkpoint_file(output)
    if not target.is_file() or (resume is not None and target.resolve() == Path(resume).resolve()):
        return None
    return target


@dataclass
class _Optimisation:
    """A network with what trains it: AdamW, the learning rate lowered on a plateau of
    the validation score, mixed precision where the device has it, the class-weighted
    loss."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    class_weights: torch.Tensor
    dice_weight: float

    @classmethod
    def of(
        cls,
        model: torch.nn.Module,
        class_weights: np.ndarray,
        settings: TrainingSettings,
        device: torch.device,
    ) -> _Optimisation:
        model.to(device)
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="max", factor=settings.lr_factor, patience=settings.lr_patience
        )
        amp_dtype = autocast_dtype(device)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
        return cls(model, optimiser, scheduler, scaler, amp_dtype, weights, settings.dice_weight)

    @property
    def learning_rate(self) -> float:
        return self.optimiser.param_groups[0]["lr"]

    def set_learning_rate(self, rate: float) -> None:
        for group in self.optimiser.param_groups:
            group["lr"] = rate

    def step(self, images: torch.Tensor, classes: torch.Tensor) -> float:
        """One optimiser step on a batch; its loss."""
        device = self.class_weights.device
        images = images.to(device, non_blocking=True)
        classes = classes.to(device, non_blocking=True)
        self.optimiser.zero_grad(set_to_none=True)
        amp = self.amp_dtype
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = self.model(images)
        loss = segmentation_loss(logits, classes, self.class_weights, self.dice_weight)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimiser)
        self.scaler.update()
        return float(loss.detach())

    def state_dict(self) -> dict:
        """The weights and the optimiser's, schedule's and scaler's states (of the
        training state, see :func:`state_path`)."""
        return {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def restore(self, state: dict, settings: TrainingSettings) -> None:
        """Go on from a training state's :meth:`state_dict`, with the weight decay and the
        schedule's factor and patience of ``settings``: the state's own are those the run
        was started with, and a resumed run records, so follows, the settings it is given."""
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty where the scaler was off (CPU, bf16)
            self.scaler.load_state_dict(state["scaler"])
        self.scheduler.factor = settings.lr_factor
        self.scheduler.patience = settings.lr_patience
        for group in self.optimiser.param_groups:
            group["weight_decay"] = settings.weight_decay


def _output_choice(
    output: str | os.PathLike | None, resume: str | os.PathLike | None, overwrite: bool
) -> tuple[Path | None, Path | None]:
    """``(checkpoint file, folder)`` for a training run's ``output``: the file it names
    (with its suffix), or a folder to make a new file in (like ``cp FILE FOLDER``): one
    that exists, or one named with a separator at its end (``runs/new/``, made; it was
    taken for a file ``runs/new.safetensors``), ``~`` its owner's home folder, as
    checkpoints are read. Refuses a file that the run would replace without
    ``overwrite``."""
    folder = output is not None and str(output).endswith(("/", os.sep))
    output = None if output is None else Path(output).expanduser()  # not a folder named ~
    if output is not None and (folder or output.is_dir()):
        return None, Path(output)
    if output is None:
        return None, None
    output = checkpoint_file(output)
    if output.is_dir():
        raise IsADirectoryError(f"{output} is a folder; choose a file name for the checkpoint.")
    if not overwrite and replaced_file(output, resume) is not None:
        raise FileExistsError(
            f"{output} already exists and was left as it is; choose another output file, "
            "or allow overwriting (cytomask train --overwrite; overwrite=True from Python) "
            "to replace it."
        )
    return output, None


def _check_images(samples: Sequence[TrainingSample]) -> None:
    """Refuse no images, and an image with nothing to learn from (one value, no number)."""
    if not samples:
        raise ValueError("no training images were given; pick images with instance labels.")
    for sample in samples:
        finite = sample.channels[np.isfinite(sample.channels)]
        if finite.size == 0 or finite.min() == finite.max():
            what = (
                "no finite pixel (all NaN or infinite)"
                if finite.size == 0
                else f"one value everywhere ({finite.flat[0]:g})"
            )
            raise ValueError(
                f"image {sample.name} has {what}: there is nothing in it to learn from; "
                "check that it was read as the right channel, or leave it out."
            )


def _in_channels(samples: Sequence[TrainingSample]) -> int:
    """The number of channels all ``samples`` have; they need unique names."""
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise ValueError(
            f"training samples need unique names, and two are named {twice!r}: the split and "
            "the scores name images by them (from a script, give each image its own name, "
            "samples_from_arrays(..., name=...))."
        )
    first_with: dict[int, str] = {}
    for s in samples:
        first_with.setdefault(s.channels.shape[0], s.name)
    if len(first_with) != 1:
        counts = ", ".join(f"{name} has {n}" for n, name in sorted(first_with.items()))
        raise ValueError(
            f"all images need the same number of channels: {counts} (a colour image has 3)."
        )
    (in_channels,) = first_with
    return in_channels


def _resumed(
    resume: str | os.PathLike, in_channels: int, settings: TrainingSettings
) -> tuple[torch.nn.Module, dict, dict | None, str | None, bool, bool]:
    """The checkpoint a run resumes: ``(network, description, training state, notice,
    stopped, finishing)``. ``state`` is None (``notice`` says why) when the run goes on
    from the weights with a new optimiser; ``stopped``: it had stopped early;
    ``finishing``: only its last step (choosing thresholds, saving) is left to do.
    Refuses one that has already trained the epochs asked for or stopped early."""
    model, previous = load_checkpoint(resume, "cpu", in_channels=in_channels)
    model.train()
    run = (previous.get("training") or {}).get("run")
    state, notice = _load_state(Path(resume), run, model.state_dict())
    done, stopped = _progress(state, previous, settings.patience)
    # Stopped (killed, say) after its last epoch, as it chose its thresholds or saved its
    # model: only that last step is left to do.
    finishing = bool(state) and unfinished(previous) and (settings.epochs <= done or stopped)
    if settings.epochs <= done and not finishing:
        raise ValueError(
            f"{Path(resume).name} has trained {done} epochs, and {settings.epochs} were "
            f"asked for in all; ask for more than {done} epochs to train it further."
        )
    if stopped and not finishing:
        raise ValueError(
            f"{Path(resume).name} stopped early after epoch {done}: its score had not "
            f"improved for {state['since_best']} epochs (patience {settings.patience}); "
            "give a larger patience to train it further."
        )
    return model, previous, state, notice, stopped, finishing


def _given_split(split) -> dict[str, list[str]]:
    """A split a caller gave, with each part of :data:`SPLITS` (those left out empty), or
    refused: one without "test" failed in Python's words after its first epoch, and an
    image both trained and validated on was scored on what it had learnt, unsaid."""
    form = "a split is a dict of 'train', 'validation' and 'test', each a list of image names"
    if not isinstance(split, dict) or set(split) - set(SPLITS):
        raise ValueError(f"{form}; got {split!r:.200}.")
    parts = {k: split.get(k) or [] for k in SPLITS}
    for key, names in parts.items():
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{form}; its '{key}' is {names!r:.200}.")
    _part_of(parts, "the split", str)
    return {k: list(v) for k, v in parts.items()}


def _training_sets(
    split: dict[str, list[str]], by_name: dict[str, TrainingSample]
) -> tuple[list[TrainingSample], list[TrainingSample], str]:
    """The training and validation samples ``split`` names, less those whose masks hold no
    cell (an image left unlabelled taught its cells as background, and one in validation
    scored every epoch 0, so that none could beat the start), and a sentence naming them;
    refuses a split that names images not given, or leaves no labelled training image."""
    # Test images are never read, so a split may name some that were not given.
    unknown = [n for k in ("train", "validation") for n in split.get(k, []) if n not in by_name]
    if unknown:
        raise ValueError(f"the split names images that were not given, e.g. {unknown[0]!r}.")
    train_set = [by_name[n] for n in split["train"]]
    val_set = [by_name[n] for n in split["validation"]]
    if not train_set:
        raise ValueError("the split leaves no training image; give more images.")
    if not any(s.labels.any() for s in train_set):
        labelled = [s.name for s in by_name.values() if s.labels.any()]
        if labelled:
            shown = short_names(labelled[:3], list(by_name))
            raise ValueError(
                f"the masks of the {len(train_set)} training image(s) hold no cell; the "
                f"image(s) with cells ({', '.join(shown)}) were drawn for validation or test. "
                "Label cells in more images (or, on the command line, train on all of them: "
                "--split 1,0,0)."
            )
        raise ValueError(
            "the training images' masks hold no cell (every pixel is 0): a network cannot "
            "learn cells from them; give masks with one id per cell."
        )
    empty = [s.name for s in (*train_set, *val_set) if not s.labels.any()]
    note = ""
    if empty:
        shown = ", ".join(short_names(empty[:3], list(by_name))) + ", …" * (len(empty) > 3)
        note = (
            f"{len(empty)} image(s) whose masks hold no cell ({shown}) are left out: label "
            "their cells to train or validate on them."
        )
    keep = [s for s in train_set if s.labels.any()], [s for s in val_set if s.labels.any()]
    return *keep, note


def _check_writable(output: Path) -> None:
    """Make ``output``'s folder, or refuse with the reason: a name that leaves no room for
    the training state's beside it, a folder that cannot be made or written to."""
    why = too_long(state_path(output).name)
    if why:
        raise WriteError(
            errno.ENAMETOOLONG,
            f"cannot save {output}: named after it with {STATE_SUFFIX}, the training state "
            f"saved beside it {why}.",
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        in_the_way = file_in_the_way(output.parent)
        said = f"{in_the_way} is a file, not a folder" if in_the_way else reason(err)
        model_folder = output.parent == cache_dir()
        advice = (
            f"choose an output file, or set {DIR_ENV} to a folder"
            if model_folder
            else "choose another output file"
        )
        raise WriteError(
            err.errno,
            f"cannot save in {output.parent}{' (the model folder)' * model_folder}: {said}; "
            f"{advice}.",
        ) from err
    # Tried, not asked: the system's access check says yes to root everywhere, in /proc
    # too, which takes no file, and such a run trained its first epoch before it failed.
    try:
        with tempfile.NamedTemporaryFile(prefix=".cytomask-", suffix=".part", dir=output.parent):
            pass
    except OSError as err:
        raise WriteError(
            err.errno, f"cannot save to {output.parent}: {reason(err)}; choose another output file."
        ) from err


@_own_random_state
def iter_train(
    samples: Sequence[TrainingSample],
    output: str | os.PathLike | None = None,
    config: UNetConfig | None = None,
    settings: TrainingSettings | None = None,
    *,
    resume: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    sources: Sequence[str] = (),
    split: dict[str, list[str]] | None = None,
    overwrite: bool = False,
) -> Generator[TrainingProgress, None, TrainingResult]:
    """Train a network, yielding :class:`TrainingProgress` after every step and every epoch.

    Parameters
    ----------
    samples
        Images with instance labels (see :func:`samples_from_arrays`,
        :func:`samples_from_folders`, :func:`samples_from_tilescans`).
    output
        Checkpoint file to write (``.safetensors`` is added when missing), or an existing
        folder to write a new file in; default ``resume`` when resuming, else a new file
        in :func:`cache_dir`.
    config
        The network; ignored when resuming (the checkpoint's network is used).
        ``in_channels`` is set from the samples.
    settings
        How to train.
    resume
        A checkpoint to continue from: its network, split and epoch count. With
        the training state beside it (:func:`state_path`), training continues
        exactly: the last epoch's weights, the optimiser, the learning rate,
        early stopping and the random crops. Without it, from the checkpoint's
        weights with a new optimiser (a ``"notice"`` says so). Either way, an epoch the
        time limit cut short is trained to its end first. The run goes on to
        ``settings.epochs`` epochs in all, with ``settings`` as given (its learning-rate
        schedule and weight decay too): :func:`resumed_settings` gives the run's own.
    init_from
        Fine-tune: start from the weights of this checkpoint (a file, the name of
        one in the model folder, or ``"starter"`` for the starter model) instead
        of random or ImageNet weights. Its network is used (``config`` is
        ignored); the epochs, optimiser and split start afresh, so a few
        labelled images of other cells give a usable model quickly.
    sources
        Where the samples came from (file patterns, layer names), recorded in the checkpoint.
    split
        An explicit split ``{"train": names, "validation": names, "test": names}``;
        default :func:`split_by_image` with ``settings.fractions`` and ``seed``.
    overwrite
        Replace an existing ``output`` file; without it only the ``resume``
        checkpoint itself may be written over.

    Returns
    -------
    TrainingResult
        The best checkpoint (by validation mean-average F1, or by training loss
        without validation images) and the history. Fine-tuning with validation
        images counts the starting weights as epoch 0: when no epoch scores above
        them, they are the checkpoint (see :func:`kept_start_note`).

    Raises
    ------
    ValueError
        For no samples, inconsistent channels, or impossible settings.
    CheckpointError
        When ``resume`` or ``init_from`` is not a usable checkpoint.
    FileExistsError
        When ``output`` exists, is not ``resume`` and ``overwrite`` is off.
    """
    if resume is not None and init_from is not None:
        raise ValueError(
            "give either a checkpoint to resume or one to start from (fine-tune), not both."
        )
    output, output_folder = _output_choice(output, resume, overwrite)
    settings = settings or TrainingSettings()
    settings.validate()
    split = None if split is None else _given_split(split)
    samples = list(samples)
    _check_images(samples)
    original, given = samples, [s.name for s in samples]
    held_back = None  # the split of a lone image cut in two (a resumed run keeps its own)
    if split is None and len(samples) == 1 and settings.fractions[1] > 0:
        parts = hold_back_part(samples[0])
        if parts is not None:
            samples = parts
            held_back = {"train": [parts[0].name], "validation": [parts[1].name], "test": []}
    names = [s.name for s in samples]
    in_channels = _in_channels(samples)

    device = get_device(settings.device)
    workers = default_workers(device) if settings.workers is None else settings.workers
    if workers and not _can_fork():
        raise ValueError(
            "crop workers need processes started by fork, which this system does not "
            "offer; train with 0 workers (cytomask train --workers 0)."
        )
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    previous: dict = {}
    notice = None
    state = None
    stopped = finishing = False
    val_settings = None  # post-processing of the validation scores (None: the defaults)
    if resume is not None:
        model, previous, state, notice, stopped, finishing = _resumed(resume, in_channels, settings)
        config = config_of(previous)
        val_settings = (previous.get("training") or {}).get("validation_settings")
        recorded = (previous.get("training") or {}).get("split")
        if split is None and recorded:
            split = _resumed_split(recorded, names)
            if split is None and held_back is not None:
                # A lone image trained on whole, before such images were cut in two.
                samples, names, held_back = original, given, None
                split = _resumed_split(recorded, names)
            if split is None:
                raise ValueError(
                    f"{Path(resume).name} trained and validated on other images than these; "
                    "a resumed run keeps its split, so give it the same images, or start a "
                    "new run from its weights (--from instead of --resume)."
                )
    elif init_from is not None:
        # Recorded so: a relative name means nothing where the model is used later.
        init_from = Path(os.path.abspath(resolve_unet(init_from)))
        model, base = load_checkpoint(init_from, "cpu", in_channels=in_channels)
        config = config_of(base)
        model.train()
    else:
        base = config or UNetConfig()
        config = UNetConfig.from_dict({**base.to_dict(), "in_channels": in_channels})
        model, notice = build_model(config, settings.encoder_weights)
    start = previous if resume is not None else base if init_from is not None else None
    # Its thresholds, where the validation images do not argue for others: a resumed
    # fine-tuning run's are those of the model it started from, which it recorded.
    own = (previous.get("training") or {}).get("start_settings")
    own = own or (recommended_settings(start) if start is not None else None)
    learnt = None  # the pixel size of the network the run starts from, when it goes on at it
    if start is not None and settings.resample:
        learnt = learnt_pixel_size(start)
        samples, resampled = _fine_tuning_samples(samples, learnt)
        notice = " ".join(n for n in (notice, resampled) if n) or None
    if settings.crop_size % config.size_multiple:
        raise ValueError(
            f"crop size {settings.crop_size} must be a multiple of {config.size_multiple} "
            f"for an encoder of depth {config.encoder_depth}."
        )
    # Inference tiles can be larger than training crops (the network is fully
    # convolutional); larger tiles waste less time on overlaps.
    config.tile_size = max(config.tile_size, settings.crop_size, INFERENCE_TILE)
    split = split or held_back or split_by_image(names, settings.fractions, settings.seed)
    by_name = {s.name: s for s in samples}
    train_set, val_set, left_out = _training_sets(split, by_name)

    sampler = CropSampler(train_set, config, settings, rng)
    freq = sampler.class_frequencies()
    weights = class_weights(freq)
    optimising = _Optimisation.of(model, weights, settings, device)

    if output is None and resume is not None and output_folder is None:
        output = Path(resume)
    elif output is None:
        output = default_output(config, output_folder, given, init_from is not None)
    # Before the first epoch, not after it.
    _check_writable(output)
    if resume is not None and output.resolve() != Path(resume).resolve():
        # The best network so far is there from the start, as the training state will be.
        write_atomically(output, lambda tmp: shutil.copyfile(resume, tmp), overwrite=True)
    prev_training = previous.get("training") or {}
    epoch0 = int(prev_training.get("epochs_done", 0))
    global_step = int(prev_training.get("steps_done", 0))
    history: list[dict] = list(prev_training.get("history", []))
    best = (previous.get("scores") or {}).get("validation", {}).get("mean_average_f1")
    best_score = float(best) if best is not None and val_set else -math.inf
    best_epoch = int(prev_training.get("best_epoch", epoch0))
    # Of a best epoch the time limit cut short, the steps it had: its network is theirs, and
    # the epoch's history has a second entry once a resumed run trains the rest of it.
    best_cut = prev_training.get("best_steps_in_epoch")
    best_scores = (previous.get("scores") or {}).get("validation")
    since_best = 0
    if state is not None:
        optimising.restore(state, settings)
        _restore_random_state(state, rng, device)
        epoch0, global_step, history = state["epoch"], state["steps"], state["history"]
        best_score, since_best = state["best_score"], state["since_best"]
        recorded = prev_training.get("settings") or {}
        if settings.learning_rate != recorded.get("learning_rate", settings.learning_rate):
            # A learning rate other than the run's own replaces the one the run reached.
            optimising.set_learning_rate(settings.learning_rate)
        # The random state goes on, so the crops follow the run's own seed.
        seed = recorded.get("seed", settings.seed)
        if settings.seed != seed:
            kept = f"the seed stays the run's own ({seed}): its random state goes on."
            notice = " ".join(n for n in (notice, kept) if n)
            settings = replace(settings, seed=seed)
    # An epoch the time limit cut short is finished from the step it stopped at, with the
    # training state or, without it, as the checkpoint records the run: it was counted
    # done, and resuming skipped the rest of it.
    steps_into = _steps_into(epoch0, history)
    epoch0 -= bool(steps_into)
    # A resumed run goes on as the same run: its state stays tied to the checkpoint, which
    # is written again only when the network improves.
    run = prev_training.get("run") or uuid.uuid4().hex
    settings_record = {k: v for k, v in asdict(settings).items() if k != "device"}
    settings_record["device"] = str(device)
    initialised_from = (
        str(init_from) if init_from is not None else prev_training.get("initialised_from")
    )
    # ImageNet's encoder weights, when a new network started from them.
    pretrained = settings.encoder_weights if notice is None and start is None else None
    # What the network started from, in place of the option (a model fine-tuned from a
    # checkpoint recorded its default, "imagenet"): that checkpoint, a resumed run's own
    # start, or ImageNet's weights when they were loaded.
    settings_record["encoder_weights"] = initialised_from or (
        recorded_settings(previous).get("encoder_weights") if resume is not None else pretrained
    )

    def description(epoch: int, scores: dict | None) -> dict:
        return describe(
            config,
            boundary_width=settings.boundary_width,
            training={
                "sources": list(sources) or list(prev_training.get("sources", [])),
                "split": split,
                "split_seed": settings.seed,
                # One image, cut in two: its last part validated (see hold_back_part).
                "held_back": held_back is not None and split == held_back,
                "data": {
                    k: _summary([by_name[n] for n in split[k] if n in by_name]) for k in SPLITS
                },
                # What segmenting resamples images to (models.catalog.zoom_to).
                "pixel_size_um": learnt_on(list(by_name.values()), learnt),
                "class_frequencies": [float(f) for f in freq],
                "class_weights": [float(w) for w in weights],
                "settings": settings_record,
                "validation_settings": val_settings,
                "start_settings": own,
                "run": run,
                "epochs_done": epoch,
                # Until the run ends (its thresholds chosen): a cancelled run's best so far.
                "finished": False,
                "steps_done": global_step,
                "best_epoch": best_epoch,
                "best_steps_in_epoch": best_cut,
                "history": history,
                "resumed_from": os.path.abspath(resume) if resume is not None else None,
                "initialised_from": initialised_from,
                "pretrained_encoder": pretrained,
            },
            scores={"validation": scores} if scores else {},
        )

    said = " ".join(n for n in (notice, left_out) if n)
    if said:
        yield TrainingProgress(
            epoch0,
            settings.epochs,
            0,
            settings.steps_per_epoch,
            global_step,
            math.nan,
            settings.learning_rate,
            message=said,
            phase="notice",
        )
    # The run's last epoch: a resumed run goes on to the number of epochs asked for in all
    # (none more for one that only has its last step left).
    last_epoch = epoch0 if finishing else settings.epochs
    stopped_early = finishing and stopped
    val_options = {"overlap": settings.validation_overlap, "batch_size": settings.batch_size}

    def report(phase: str, epoch: int):
        """Report ``(done, total)`` of work on the validation images (``phase``
        ``"validate"`` or ``"tune"``) after ``epoch`` as :class:`TrainingProgress`."""
        at_step, lr = global_step, optimising.learning_rate
        return lambda done, total: TrainingProgress(
            epoch, expected_last, done, total, at_step, math.nan, lr, phase=phase
        )

    def validate(epoch: int):
        """:func:`scores_of` the network on the validation images after ``epoch``, at
        the post-processing settings validation uses."""
        evaluation = yield from relay(
            iter_evaluate(
                UNetPredictor(model, config), val_set, **val_options, settings=val_settings
            ),
            report("validate", epoch),
        )
        return scores_of(evaluation)

    yield TrainingProgress(
        epoch0,
        last_epoch,
        0,
        settings.steps_per_epoch,
        global_step,
        math.nan,
        settings.learning_rate,
        phase="split",
        # The images used: those whose masks hold no cell are left out (the split keeps
        # them, for a run that goes on once they are labelled).
        split={
            **{k: list(v) for k, v in split.items()},
            "train": [s.name for s in train_set],
            "validation": [s.name for s in val_set],
        },
        history=list(history),
    )
    # The last epoch expected: a time limit stops training after the epoch in
    # which it passes, often long before last_epoch.
    expected_last = last_epoch
    if init_from is not None and settings.tune and val_set:
        # A trained model scores far lower at the default thresholds than at thresholds
        # tuned for it (the starter model's validation mean-average F1: 0.34 against 0.51,
        # both without TTA), so fine-tuning first tunes them for its starting weights on
        # its own validation images, and chooses its checkpoint and lowers its learning
        # rate by the scores at those settings (validation runs without TTA).
        tuned = yield from relay(
            iter_tune_postprocess(
                UNetPredictor(model, config), val_set, **val_options, tta=False, start=own
            ),
            report("tune", epoch0),
        )
        if tuned is not None:
            val_settings = {k: tuned[k] for k in DEFAULT_SETTINGS}
    if init_from is not None and val_settings is None:
        # Not tuned: its epochs are compared at the thresholds it keeps, its start's.
        val_settings = own
    kept = resume is not None  # whether ``output`` holds the best network so far
    state_lost = False  # whether a state could not be saved (said once)
    start_weights = None  # fine-tuning's epoch 0, when it is the best so far
    if init_from is not None and val_set:
        # The starting model is epoch 0, and it stays the model unless an epoch scores
        # higher on the validation images: a short run at a high learning rate scored
        # below it (the starter model fine-tuned for 18 steps on the sample: validation
        # mean-average F1 0.369, where the starter model itself scored 0.454).
        best_scores = yield from validate(epoch0)
        best_score = best_scores["mean_average_f1"]
        best_score = -math.inf if math.isnan(best_score) else best_score
        # The schedule counts epochs from this score too: an epoch below the starting
        # model is no improvement, for the learning rate as for the checkpoint.
        if math.isfinite(best_score):
            optimising.scheduler.step(best_score)
        # Held until the first epoch ends: a run cancelled before then leaves no copy of
        # the model it started from.
        start_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        yield TrainingProgress(
            epoch0, expected_last, 0, settings.steps_per_epoch, global_step, math.nan,
            optimising.learning_rate, best_scores, phase="epoch",
        )  # fmt: skip
    batches = _batches(sampler, settings.batch_size, workers, settings.seed, global_step)
    started = time.monotonic()

    def out_of_time() -> bool:
        limit = settings.time_limit
        return limit is not None and time.monotonic() - started > limit

    epoch = epoch0
    try:
        for epoch in range(epoch0 + 1, last_epoch + 1):
            model.train()
            # The epoch a time limit cut short goes on after its last step; the mean loss
            # of the steps it had done counts once for each of them.
            losses = [history[-1]["loss"]] * steps_into if steps_into else []
            resumed_at, steps_into = len(losses) + 1, 0
            for step in range(resumed_at, settings.steps_per_epoch + 1):
                losses.append(optimising.step(*next(batches)))
                global_step += 1
                yield TrainingProgress(
                    epoch,
                    expected_last,
                    step,
                    settings.steps_per_epoch,
                    global_step,
                    losses[-1],
                    optimising.learning_rate,
                )
                if out_of_time():
                    # Not at the epoch's end: a 4-minute limit ran 13 minutes on a CPU
                    # whose epochs took that long.
                    break
            mean_loss = float(np.mean(losses))
            if not math.isfinite(mean_loss):
                saved = (
                    f"the best network so far is kept in {output}" if kept else "nothing was saved"
                )
                raise FloatingPointError(
                    f"the training loss became {mean_loss} in epoch {epoch}: training diverged. "
                    f"Lower the learning rate and train again; {saved}."
                )
            model.eval()
            scores = None
            if val_set:
                scores = yield from validate(epoch)
                score = scores["mean_average_f1"]
            else:
                score = -mean_loss
            if math.isnan(score):  # validation images without any cell
                score = -math.inf
            # Cut short by the time limit, the epoch is finished by a resumed run: it counts
            # once for the schedule and early stopping, then.
            cut = len(losses) < settings.steps_per_epoch
            if not cut:
                optimising.scheduler.step(score)
            entry = {"epoch": epoch, "loss": mean_loss, "validation": scores, "steps": global_step}
            if resumed_at > 1:  # the rest of an epoch cut short in the run resumed
                entry["resumed_at_step"] = resumed_at
            if cut:
                entry["steps_in_epoch"] = len(losses)
            history.append(entry)
            # A new run always keeps its first epoch, so there is a checkpoint to return.
            improved = score > best_score or (not kept and start_weights is None)
            if improved:
                best_score, best_epoch, best_scores = score, epoch, scores
                best_cut = len(losses) if cut else None
                since_best = 0
                save_checkpoint(output, model, description(epoch, scores))
            else:
                since_best += not cut
                if start_weights is not None:
                    # No epoch above the model fine-tuning started from: it is the best so
                    # far, saved with the run's state, so that a run stopped from here on
                    # goes on with --resume (a cancelled one lost its epochs).
                    save_checkpoint(output, start_weights, description(epoch, best_scores))
            kept, start_weights = kept or improved or start_weights is not None, None
            state = {
                "run": run,
                "epoch": epoch,
                "steps": global_step,
                "history": history,
                "best_score": best_score,
                "since_best": since_best,
                **optimising.state_dict(),
                **_random_state(rng, device),
            }
            if kept:  # else held: there is no checkpoint yet for it to resume
                try:
                    _write_state(output, state)
                except OSError as err:  # a full disk: the network matters, the state less
                    with contextlib.suppress(OSError):  # an earlier epoch's: not the network's
                        state_path(output).unlink(missing_ok=True)
                    if not state_lost:
                        yield TrainingProgress(
                            epoch, epoch, 0, 0, global_step, math.nan, optimising.learning_rate,
                            message=_state_not_saved(output, err), phase="notice",
                        )  # fmt: skip
                    state_lost = True
            if settings.time_limit is not None:
                per_epoch = (time.monotonic() - started) / (epoch - epoch0)
                expected_last = min(last_epoch, epoch0 + int(settings.time_limit // per_epoch) + 1)
                expected_last = max(expected_last, epoch)
            yield TrainingProgress(
                epoch,
                expected_last,
                settings.steps_per_epoch,
                settings.steps_per_epoch,
                global_step,
                mean_loss,
                optimising.learning_rate,
                scores,
                improved,
                phase="epoch",
                checkpoint=output if kept else None,
            )
            if since_best >= settings.patience:
                stopped_early = True
                break
            if out_of_time():
                break
    finally:
        batches.close()  # the crop workers end with the epochs
    # The best weights with the whole run's record: epochs and steps done, history. When
    # no epoch beat the network a run resumed, they are its (copied there).
    best_model, _ = load_checkpoint(output, "cpu")
    best_description = description(epoch, best_scores)
    best_description["training"]["stopped_early"] = stopped_early
    best_description["training"]["finished"] = True
    if settings.tune and val_set:
        best_model.to(device)
        tuned = yield from relay(
            iter_tune_postprocess(
                UNetPredictor(best_model, config), val_set, **val_options, start=own
            ),
            report("tune", epoch),
        )
        if tuned is not None:
            best_description["postprocess"] = tuned
    elif settings.tune:
        yield TrainingProgress(
            epoch, epoch, 0, 0, global_step, math.nan, optimising.learning_rate,
            message=NO_VALIDATION_TO_TUNE[bool(prev_training.get("initialised_from") or init_from)],
            phase="notice",
        )  # fmt: skip
    save_checkpoint(output, best_model, best_description)
    return TrainingResult(output, best_description, history, stopped_early)


def train(samples, output=None, config=None, settings=None, **kwargs) -> TrainingResult:
    """Run :func:`iter_train` to the end and return its :class:`TrainingResult`."""
    return drain(iter_train(samples, output, config, settings, **kwargs))


__all__ = [
    "RUN_SETTINGS",
    "CropSampler",
    "TrainingProgress",
    "TrainingResult",
    "TrainingSample",
    "TrainingSettings",
    "class_weights",
    "cut_as_recorded",
    "evaluate_model",
    "hold_back_part",
    "iter_evaluate",
    "iter_train",
    "iter_tune_checkpoint",
    "iter_tune_postprocess",
    "kept_start_note",
    "kept_thresholds",
    "make_targets",
    "match_split",
    "recorded_settings",
    "replaced_file",
    "resumed_settings",
    "samples_from_arrays",
    "samples_from_folders",
    "samples_from_tilescans",
    "saved_epoch_note",
    "scores_of",
    "segmentation_loss",
    "split_by_image",
    "state_path",
    "train",
    "tune_postprocess",
    "tuned_note",
]
