"""The ``cytomask`` command: the plugin's pipelines without a GUI.

Subcommands:

- ``cytomask train``: train a U-Net on image/mask files or tile-scan channels;
- ``cytomask segment``: segment images or tile scans with a trained U-Net.

Exit status: 0 on success, 1 for a problem with the inputs (a one-line
message on stderr says what to do), 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A problem with the user's inputs; its message is shown on one line."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _fraction_triple(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1: {err}") from err
    if len(parts) != 3 or min(parts) < 0 or parts[0] <= 0:
        raise argparse.ArgumentTypeError(
            f"expected three non-negative numbers (train,validation,test), got {text!r}"
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
        type=int,
        default=0,
        help="CPU threads used by PyTorch; 0 keeps PyTorch's default (default: %(default)s)",
    )


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a U-Net on images with instance labels",
        description="Train a U-Net (segmentation-models-pytorch) on images with instance "
        "labels. Give either --images and --masks (glob patterns with the same wildcards), or "
        "--tilescan files with --input-channel and --mask-channel. The images are split by "
        "image into training, validation and test sets (seeded); the checkpoint with the best "
        "validation mean-average F1 is written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("training data")
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
        type=int,
        nargs="+",
        metavar="N",
        help="channel index(es) of the tile scans to segment, numbered from 0",
    )
    data.add_argument(
        "--mask-channel", type=int, metavar="N", help="channel index holding the instance labels"
    )
    model = p.add_argument_group("network")
    model.add_argument(
        "--architecture",
        default="unet",
        help="network architecture: unet, unetplusplus, fpn or linknet",
    )
    model.add_argument(
        "--encoder",
        default="resnet34",
        help="encoder name from segmentation-models-pytorch, e.g. resnet18, resnet34, "
        "efficientnet-b3, or a timm encoder 'tu-NAME'",
    )
    model.add_argument(
        "--encoder-depth", type=int, default=5, help="number of encoder stages (3 to 5)"
    )
    model.add_argument(
        "--targets",
        choices=("interior_boundary", "foreground"),
        default="interior_boundary",
        help="what the network predicts: background/interior/boundary (touching cells are "
        "separated) or foreground only (cells split by distance-transform watershed)",
    )
    model.add_argument(
        "--encoder-weights",
        choices=("imagenet", "none"),
        default="imagenet",
        help="start from ImageNet encoder weights when they can be downloaded or are cached "
        "(random initialisation otherwise, with a notice), or from random weights",
    )
    model.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        default=(1.0, 99.8),
        metavar=("LOW", "HIGH"),
        help="intensity percentiles mapped to 0 and 1, per image and channel",
    )
    model.add_argument(
        "--resume", type=Path, metavar="CHECKPOINT", help="continue training this checkpoint"
    )
    run = p.add_argument_group("training")
    run.add_argument("--epochs", type=_positive_int, default=50, help="maximum number of epochs")
    run.add_argument(
        "--steps-per-epoch", type=_positive_int, default=100, help="optimiser steps per epoch"
    )
    run.add_argument("--batch-size", type=_positive_int, default=8, help="crops per step")
    run.add_argument(
        "--crop-size",
        type=_positive_int,
        default=256,
        help="training crop size in pixels (a multiple of 2**encoder-depth)",
    )
    run.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW learning rate")
    run.add_argument(
        "--patience",
        type=_positive_int,
        default=12,
        help="stop after this many epochs without a better validation score",
    )
    run.add_argument(
        "--boundary-width", type=_positive_int, default=2, help="boundary class width in pixels"
    )
    run.add_argument(
        "--split",
        type=_fraction_triple,
        default=(0.8, 0.1, 0.1),
        metavar="TRAIN,VAL,TEST",
        help="fractions of the images for training, validation and test",
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the split, crops and weights")
    run.add_argument(
        "--time-limit",
        type=float,
        default=0,
        metavar="MINUTES",
        help="stop after the epoch in which this many minutes have passed (0: no limit)",
    )
    _add_device(run)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="checkpoint file to write (.safetensors); default: a new file in the model "
        "folder ($CYTOMASK_UNET_DIR or the user cache folder), listed by the napari widget",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result")


def _segment_parser(sub) -> None:
    p = sub.add_parser(
        "segment",
        help="segment images or tile scans with a trained U-Net",
        description="Segment images with a trained U-Net: overlapping tiles blended without "
        "seams, then a watershed turns the class probabilities into cells. Every tile or "
        "position of a scan (leading axes) is segmented. Writes one label image per input, "
        "named '<input>_unet_cells.tif', and optionally the probabilities.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE", help="images or tile scans")
    p.add_argument(
        "-m",
        "--model",
        required=True,
        help="checkpoint file, or the name of a checkpoint in the model folder",
    )
    p.add_argument(
        "--channel",
        type=int,
        nargs="+",
        metavar="N",
        help="channel index(es) to segment in multi-channel TIFF scans, numbered from 0; "
        "default: the channel the reader marks as input (or the only one)",
    )
    p.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="folder for the results (default: beside each input)",
    )
    p.add_argument(
        "--tile-size", type=int, default=0, help="tile size in pixels; 0 uses the checkpoint's"
    )
    p.add_argument(
        "--overlap", type=int, default=64, help="minimum overlap of neighbouring tiles in pixels"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="tiles per forward pass; 0 picks 8 on a GPU and 1 on the CPU",
    )
    p.add_argument(
        "--tta", action="store_true", help="average over flips (test-time augmentation, 4x slower)"
    )
    post = p.add_argument_group("post-processing")
    post.add_argument(
        "--interior-threshold",
        type=float,
        default=0.5,
        help="interior probability that seeds a cell (interior/boundary models)",
    )
    post.add_argument(
        "--foreground-threshold",
        type=float,
        default=0.5,
        help="probability above which a pixel belongs to a cell",
    )
    post.add_argument(
        "--min-size", type=int, default=0, help="remove cells with fewer pixels than this"
    )
    p.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the class probabilities as '<input>_unet_probabilities.npy' "
        "(float32, classes first)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    _add_device(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the written files")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cytomask``."""
    parser = argparse.ArgumentParser(
        prog="cytomask",
        description="Cell (cytoplasm) masks from microscopy images without a GUI. "
        "Run 'cytomask COMMAND --help' for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _train_parser(sub)
    _segment_parser(sub)
    return parser


def _set_threads(threads: int) -> None:
    import torch

    if threads < 0:
        raise UserError(f"--threads must be 0 or more (got {threads}).")
    if threads:
        torch.set_num_threads(threads)


def _train(args) -> int:
    from .models.training import (
        TrainingSettings,
        iter_train,
        samples_from_folders,
        samples_from_tilescans,
    )
    from .models.unet import UNetConfig

    _set_threads(args.threads)
    if args.tilescan:
        if args.images or args.masks:
            raise UserError("give either --images/--masks or --tilescan, not both.")
        if args.input_channel is None or args.mask_channel is None:
            raise UserError("--tilescan needs --input-channel and --mask-channel.")
        samples = samples_from_tilescans(args.tilescan, args.input_channel, args.mask_channel)
        sources = [str(p) for p in args.tilescan]
    elif args.images and args.masks:
        samples = samples_from_folders(args.images, args.masks)
        sources = [args.images, args.masks]
    else:
        raise UserError(
            "say where the training data are: --images and --masks, or --tilescan with "
            "--input-channel and --mask-channel."
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
    )
    gen = iter_train(samples, args.output, config, settings, resume=args.resume, sources=sources)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    say(f"training on {len(samples)} image(s)")
    while True:
        try:
            progress = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if progress.phase == "notice":
            print(f"cytomask: note: {progress.message}", file=sys.stderr)
        elif progress.phase == "epoch":
            val = progress.validation
            text = (
                f"val mean-average F1 {val['mean_average_f1']:.3f}, F1@0.5 {val['f1_50']:.3f}"
                if val
                else "no validation images"
            )
            mark = " (best, saved)" if progress.improved else ""
            say(f"epoch {progress.epoch}/{progress.epochs}: {text}{mark}")
        elif progress.phase == "train" and progress.step % 10 == 0:
            say(f"  step {progress.step}/{progress.steps} loss {progress.loss:.4f}")
    print(result.checkpoint)
    return EXIT_OK


def _resolve_model(model: str) -> Path:
    from .models.checkpoint import SUFFIX, cache_dir

    path = Path(model).expanduser()
    if path.is_file():
        return path
    for candidate in (cache_dir() / model, cache_dir() / f"{model}{SUFFIX}"):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"no checkpoint {model!r}: give a .safetensors file or the name of one in {cache_dir()}."
    )


def _read_input(path: Path, channels: list[int] | None, n_channels: int) -> list:
    """The channel arrays (lazy for TIFF scans) of one input file.

    Without ``channels``: the channel the reader marks as input (then further
    image channels, in order, for models with several inputs).
    """
    from .io.layers import METADATA_KEY

    if not path.is_file():
        raise UserError(f"{path} does not exist.")
    if path.suffix.lower() in (".tif", ".tiff", ".btf"):
        from .io.tiff import read_tiff

        meta = {}
        arrays = {}
        for data, kwargs, _ in read_tiff(path):
            info = kwargs["metadata"][METADATA_KEY]
            meta[info["channel_index"]] = info["role"]
            arrays[info["channel_index"]] = data
        if channels is None:
            order = {"input": 0, "image": 1}
            usable = sorted(
                (i for i in meta if meta[i] in order), key=lambda i: (order[meta[i]], i)
            )
            channels = usable[:n_channels] or sorted(meta)[:n_channels]
        missing = [c for c in channels if c not in arrays]
        if missing:
            raise UserError(
                f"{path} has no channel {missing[0]}; its channels are {sorted(arrays)} "
                "(numbered from 0)."
            )
        return [arrays[c] for c in channels]
    from skimage.io import imread

    image = imread(path)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        picked = channels or list(range(min(n_channels, image.shape[-1])))
        return [image[..., c] for c in picked]
    return [image]


def _segment(args) -> int:
    import numpy as np

    from .io.writers import write_labels
    from .models.checkpoint import check_input_channels
    from .models.inference import UNetPredictor, iter_segment, memmap_probabilities

    _set_threads(args.threads)
    model_path = _resolve_model(args.model)
    predictor = UNetPredictor.from_checkpoint(model_path, args.device)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    targets = predictor.config.targets
    if targets == "interior_boundary":
        post = {
            "interior_threshold": args.interior_threshold,
            "foreground_threshold": args.foreground_threshold,
        }
    else:
        post = {"threshold": args.foreground_threshold}
    for path in args.inputs:
        channels = _read_input(path, args.channel, predictor.config.in_channels)
        check_input_channels(predictor.description, len(channels), model_path)
        folder = args.output_dir or path.parent
        stem = path.name.split(".")[0]
        labels_path = folder / f"{stem}_unet_cells.tif"
        probs_path = folder / f"{stem}_unet_probabilities.npy"
        for target in [labels_path] + ([probs_path] if args.save_probabilities else []):
            if target.exists() and not args.overwrite:
                raise UserError(f"{target} exists; pass --overwrite to replace it.")
        # Probabilities stream straight into a .npy memmap: a scan larger than
        # memory never holds them all in RAM.
        probs_out = None
        if args.save_probabilities:
            shape = tuple(channels[0].shape)
            probs_out = memmap_probabilities(probs_path, len(predictor.classes), shape)
        gen = iter_segment(
            predictor,
            channels,
            probabilities_out=probs_out,
            tile_size=args.tile_size or None,
            overlap=args.overlap,
            batch_size=args.batch_size,
            tta=args.tta,
            postprocess=post,
            cleanup={"min_area": args.min_size},
        )
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                result = stop.value
                break
        write_labels(labels_path, result.labels, overwrite=args.overwrite)
        written = [labels_path]
        if probs_out is not None:
            probs_out.flush()
            written.append(probs_path)
        n_cells = int(np.asarray(result.labels).max(initial=0))
        say(f"{path}: {n_cells} cells")
        for target in written:
            print(target)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run ``cytomask`` with ``argv`` (default: the process arguments); return the exit status.

    Parameters
    ----------
    argv
        Command-line arguments without the program name.

    Returns
    -------
    int
        0 on success, 1 for a problem with the inputs, 2 for a wrong command line.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    from .io.tiff import TiffReadError
    from .labels import LabelsError
    from .models.checkpoint import CheckpointError

    handlers = {"train": _train, "segment": _segment}
    try:
        return handlers[args.command](args)
    except (
        UserError,
        CheckpointError,
        LabelsError,
        TiffReadError,
        ValueError,
        OSError,
    ) as err:
        message = " ".join(str(err).split())
        print(f"cytomask {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"cytomask {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
