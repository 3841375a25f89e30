"""U-Net checkpoints: safetensors weights with a JSON description in one file.

The description (architecture, encoder, input channels and their
normalisation, targets, tile size, training data, split and scores) is stored
in the safetensors header's metadata under ``"napari-cytomask"``. One file
cannot lose its description, and the header can be read without loading the
weights, so the widget lists models quickly and a wrong file is explained
before anything is built.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import sys
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import write_atomically
from .unet import (
    ARCHITECTURES,
    TARGETS,
    UNetConfig,
    build_model,
    is_number,
    is_whole,
    unused_weight_prefixes,
)

#: Value of the ``format`` field of every description.
FORMAT = "napari-cytomask-unet"
#: Current description version; loading accepts this one and older ones.
FORMAT_VERSION = 1
#: Key of the description in the safetensors header: part of the file format, so it keeps
#: the package name; layers record theirs under :data:`napari_cytomask.io.layers.METADATA_KEY`.
HEADER_KEY = "napari-cytomask"
#: Description key of the weights' SHA-256 (see :func:`weights_checksum`).
CHECKSUM_KEY = "weights_sha256"
#: File name suffix of checkpoints.
SUFFIX = ".safetensors"
#: Environment variable that overrides the checkpoint folder.
DIR_ENV = "CYTOMASK_UNET_DIR"

# safetensors refuses headers above 100 MB; anything larger is not a checkpoint.
_MAX_HEADER = 100_000_000
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class CheckpointError(ValueError):
    """A file that cannot be used as a U-Net or SAM2 checkpoint, with what to do about it."""


def mismatched_weights(expected: dict, given: dict) -> str | None:
    """How the weights ``given`` differ from the ``expected`` state dict of a network
    ("3 missing, 0 unexpected and 1 differently shaped weights, e.g. ..."), or None. A
    weight that is no tensor, or integers or complex numbers where the network has real
    ones (torch would cast them without a word), is named as such."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    common = expected.keys() & given.keys()
    odd = sorted(k for k in common if not _same_kind(expected[k], given[k]))
    shaped = sorted(
        k for k in common
        if k not in odd and tuple(expected[k].shape) != tuple(given[k].shape)
    )  # fmt: skip
    if not (missing or unexpected or shaped or odd):
        return None
    example = (missing or unexpected or shaped or odd)[0]
    others = f", and {len(odd)} of another kind (no tensor of real numbers)" if odd else ""
    return (
        f"{len(missing)} missing, {len(unexpected)} unexpected and {len(shaped)} differently "
        f"shaped weights{others}, e.g. {example}"
    )


def _same_kind(expected: torch.Tensor, given) -> bool:
    """Whether ``given`` is a tensor of numbers that load into ``expected`` as they are:
    real numbers of any precision for real ones, integers for integers."""
    return (
        isinstance(given, torch.Tensor)
        and not given.is_complex()
        and given.is_floating_point() == expected.is_floating_point()
    )


def cache_dir() -> Path:
    """The folder where trained U-Net checkpoints are kept and listed.

    ``$CYTOMASK_UNET_DIR`` when set; otherwise the user cache folder:
    ``$XDG_CACHE_HOME/napari-cytomask/unet`` (``~/.cache/...`` by default) on
    Linux, ``~/Library/Caches/napari-cytomask/unet`` on macOS and
    ``%LOCALAPPDATA%\\napari-cytomask\\Cache\\unet`` on Windows.
    """
    override = os.environ.get(DIR_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "napari-cytomask" / "Cache" / "unet"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "napari-cytomask" / "unet"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-cytomask" / "unet"


def list_checkpoints(
    folder: str | os.PathLike | None = None, unusable: list | None = None
) -> list[Path]:
    """Checkpoint files in ``folder`` (default :func:`cache_dir`), newest first.

    Files that :func:`read_description` refuses are left out; with ``unusable``, each is
    appended to it as ``(path, why)``, in name order.
    """
    folder = Path(folder) if folder is not None else cache_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            read_description(path)
        except CheckpointError as err:
            if unusable is not None:
                unusable.append((path, str(err)))
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def describe(config: UNetConfig, **extra) -> dict:
    """A checkpoint description for ``config`` plus extra top-level fields.

    Parameters
    ----------
    config
        The network.
    **extra
        E.g. ``channel_names``, ``boundary_width``, ``training`` (data summary,
        split, settings) and ``scores`` (validation metrics).
    """
    from .. import own_version

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "plugin_version": own_version(),
        **config.to_dict(),
        "classes": list(config.classes),
        **extra,
    }


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The file a checkpoint given ``path`` is written to: ``.safetensors`` added when it
    has another ending, and written so when typed in capitals (``model.SAFETENSORS``), as
    the model folder lists it."""
    path = Path(path)
    if path.suffix.lower() == SUFFIX:
        return path.with_suffix(SUFFIX)
    return path.with_name(path.name + SUFFIX)


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module | dict[str, torch.Tensor], description: dict
) -> Path:
    """Write weights and description to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    path
        Target file; ``.safetensors`` is appended when missing.
    model
        The network, or its weights (a state dict).
    description
        From :func:`describe`; it must be JSON-serialisable.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from safetensors.torch import save_file

    path = checkpoint_file(path)
    weights = model.state_dict() if isinstance(model, nn.Module) else model
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items()}
    description = {**description, CHECKSUM_KEY: weights_checksum(tensors)}
    metadata = {HEADER_KEY: json.dumps(description, sort_keys=True)}
    return write_atomically(
        path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata), overwrite=True
    )


def weights_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes, in name order.

    Stored in the description by :func:`save_checkpoint` and checked by
    :func:`load_checkpoint`: damaged weights that still parse (a block of the
    file overwritten) are refused instead of segmenting nonsense.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _not_a_checkpoint(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a napari-cytomask U-Net checkpoint: {why}. Pick a .safetensors file "
        "written by 'Train a U-Net' or 'cytomask train'."
    )


def _read_header(path: Path) -> dict:
    """The safetensors header of ``path``, with clear errors for other and broken files, and
    for one that cannot be read (no permission, a failing drive or share)."""
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pick a checkpoint file.")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; pick an existing checkpoint file.")
    try:
        return _header_of(path)
    except OSError as err:
        raise CheckpointError(
            f"{path} cannot be read ({err.strerror or err}); check that you may read it and "
            "that its drive or share is there, or pick another model."
        ) from err


def _header_of(path: Path) -> dict:
    """:func:`_read_header` of a file that is there."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if head.startswith(_ZIP_MAGIC) or head[:2] in _PICKLE_MAGIC:
            raise _not_a_checkpoint(
                path,
                "it is a PyTorch pickle (.pt/.pth, e.g. a SAM2 model); segment with a SAM2 "
                "model by choosing SAM2 as the method (cytomask segment --method sam2 "
                "--sam2-model FILE)",
            )
        if len(head) < 8:
            raise CheckpointError(
                f"{path} is truncated or corrupt ({size} bytes, too short for a header); "
                "copy or train it again."
            )
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER:
            raise _not_a_checkpoint(path, "it has no safetensors header")
        if 8 + n > size:
            raise CheckpointError(
                f"{path} is truncated or corrupt (its header needs {8 + n} bytes, the file "
                f"has {size}); copy or train it again."
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _not_a_checkpoint(path, "it has no safetensors header") from err
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
        raise _not_a_checkpoint(path, "it has no safetensors header")
    ends = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets)
        ):
            raise CheckpointError(
                f"{path} is corrupt (its header gives no place for the weights {key!r}); "
                "copy or train it again."
            )
        ends.append(offsets[1])
    if 8 + n + max(ends, default=0) > size:
        raise CheckpointError(
            f"{path} is truncated or corrupt (its weights need {8 + n + max(ends)} bytes, the "
            f"file has {size}); copy or train it again."
        )
    return header


def unfinished(description: dict) -> bool:
    """Whether a checkpoint is the best network so far of a training run that was stopped
    before its end (its thresholds never chosen). Models of older versions do not say."""
    return (description.get("training") or {}).get("finished") is False


#: F1 at IoU 0.5 on the validation images, with the chosen thresholds, below which a
#: model is said to be of little use yet: it misses most cells, or finds mostly wrong ones.
USABLE_F1 = 0.5


def chosen_scores(description: dict) -> dict:
    """A model's validation scores with the thresholds it segments with: those its choice
    of thresholds measured (``postprocess.scores.tuned``), else those its epochs were
    compared at (``scores.validation``: the default thresholds, or those of the model a
    fine-tuning run started from, which can be far lower: mean-average F1 0.129 against
    0.498 with its own). The numbers only; {} when it records none."""
    tuned = ((description.get("postprocess") or {}).get("scores") or {}).get("tuned")
    scores = tuned or (description.get("scores") or {}).get("validation") or {}
    return {key: value for key, value in scores.items() if is_number(value)}


def read_description(path: str | os.PathLike) -> dict:
    """The JSON description of a checkpoint, checked, without loading the weights.

    Raises
    ------
    CheckpointError
        When the file is missing, truncated, not a safetensors file, a
        safetensors file of another program, of a newer format version, or
        describes an architecture or target this version does not know.
    """
    path = Path(path)
    header = _read_header(path)
    text = (header.get("__metadata__") or {}).get(HEADER_KEY)
    if text is None:
        raise _not_a_checkpoint(path, "its safetensors header has no napari-cytomask description")
    try:
        desc = json.loads(text)
    except (TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} has a corrupt description ({err}); train it again.") from err
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise _not_a_checkpoint(path, f"its description is not of format {FORMAT!r}")
    version = desc.get("format_version")
    if not is_whole(version) or version < 1:
        raise CheckpointError(
            f"{path} has a corrupt description (its format version is {version!r}, not a "
            "whole number from 1); train it again."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, newer than this plugin reads "
            f"({FORMAT_VERSION}); update napari-cytomask."
        )
    if not isinstance(desc.get("architecture"), str) or desc["architecture"] not in ARCHITECTURES:
        raise CheckpointError(
            f"{path} holds an unknown architecture {desc.get('architecture')!r}; this version "
            f"of napari-cytomask knows {sorted(ARCHITECTURES)}. Update the plugin or pick "
            "another model."
        )
    if not isinstance(desc.get("targets"), str) or desc["targets"] not in TARGETS:
        raise CheckpointError(
            f"{path} predicts unknown targets {desc.get('targets')!r}; this version knows "
            f"{sorted(TARGETS)}. Update the plugin or pick another model."
        )
    config_of(desc, path)
    _check_contents(desc, path)
    return desc


def _check_contents(desc: dict, path: Path) -> None:
    """Raise :class:`CheckpointError` unless what the dock reads of a description is there
    and of its kind: the encoder, tables that are tables, scores and thresholds that are
    numbers (a file that broke this stopped the dock from opening)."""
    from .inference import DEFAULT_SETTINGS

    if not isinstance(desc.get("encoder"), str):
        raise CheckpointError(
            f"{path} has a corrupt description (it names no encoder); train it again."
        )

    def part(table, key):
        return table.get(key) if isinstance(table, dict) else None

    tables = {"training": desc.get("training"), "scores": desc.get("scores")}
    tables["validation scores"] = part(tables["scores"], "validation")
    tables["postprocess"] = desc.get("postprocess")
    tables["threshold scores"] = part(tables["postprocess"], "scores")
    tables["chosen thresholds' scores"] = part(tables["threshold scores"], "tuned")
    for what, table in tables.items():
        if table is not None and not isinstance(table, dict):
            raise CheckpointError(
                f"{path} has a corrupt description (its {what} are not a table); train it again."
            )
    # The numbers the dock shows (chosen_scores) and segments with.
    for numbers in (
        {**(tables["validation scores"] or {}), **(tables["postprocess"] or {})},
        tables["chosen thresholds' scores"] or {},
    ):
        for key in ("f1_50", "mean_average_f1", *DEFAULT_SETTINGS):
            value = numbers.get(key)
            if value is not None and not is_number(value):
                raise CheckpointError(
                    f"{path} has a corrupt description (its {key} is {value!r}, not a "
                    "number); train it again."
                )
    settings = tables["postprocess"] or {}
    for key in ("interior_threshold", "foreground_threshold"):
        value = settings.get(key, 0)
        if not (is_number(value) and 0 <= value <= 1):  # NaN is not either
            raise CheckpointError(
                f"{path} has a corrupt description (its {key} is {value!r}, not a number from "
                "0 to 1); choose its thresholds again (cytomask tune) or train it again."
            )
    size = settings.get("min_size")
    if size is not None and (not is_whole(size) or size < 0):
        raise CheckpointError(
            f"{path} has a corrupt description (its min_size is {size!r}, not a whole number "
            "of pixels from 0); choose its thresholds again (cytomask tune) or train it again."
        )
    # What segmenting resamples images to (catalog.learnt_pixel_size).
    learnt = (tables["training"] or {}).get("pixel_size_um")
    if learnt is not None and not (
        isinstance(learnt, list)
        and len(learnt) == 2
        and all(is_number(v) and 0 < v < math.inf for v in learnt)
    ):
        raise CheckpointError(
            f"{path} has a corrupt description (the pixel size it learnt cells at is "
            f"{learnt!r}, not two sizes in µm); train it again."
        )


def config_of(description: dict, path: str | os.PathLike = "") -> UNetConfig:
    """The network configuration of a checkpoint description (of the file ``path``)."""
    try:
        return UNetConfig.from_dict(description)
    except (TypeError, ValueError) as err:
        where = f"{path} describes" if path else "the checkpoint describes"
        raise CheckpointError(f"{where} an invalid network: {err}") from err


def check_input_channels(description: dict, n_channels: int, path: str | os.PathLike = "") -> None:
    """Raise :class:`CheckpointError` unless the model takes ``n_channels`` inputs."""
    expected = int(description["in_channels"])
    if expected != n_channels:
        names = description.get("channel_names") or []
        hint = f" ({', '.join(map(str, names))})" if names else ""
        where = f"{path} " if path else "The model "
        raise CheckpointError(
            f"{where}expects {expected} input channel(s){hint} but {n_channels} were given; "
            f"pick {expected} image layer(s)/channel(s) or a model trained on {n_channels}."
        )


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    in_channels: int | None = None,
) -> tuple[nn.Module, dict]:
    """Load a checkpoint: the network in evaluation mode on ``device``, and its description.

    Parameters
    ----------
    path
        A ``.safetensors`` file written by :func:`save_checkpoint`.
    device
        Where to put the network.
    in_channels
        When given, the number of channels the caller will feed; a mismatch
        raises a clear error.

    Returns
    -------
    model : torch.nn.Module
    description : dict

    Raises
    ------
    CheckpointError
        See :func:`read_description`; also for weights that do not fit the
        described network.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    desc = read_description(path)
    if in_channels is not None:
        check_input_channels(desc, in_channels, path)
    config = config_of(desc)
    with torch.random.fork_rng(devices=[]):  # random weights, replaced by the file's
        try:
            model, _ = build_model(config, encoder_weights=None)
        except (TypeError, ValueError) as err:  # sizes no network has, an unknown encoder
            raise CheckpointError(
                f"{path} describes a network that cannot be built ({err}); its description "
                "is corrupt: copy or train it again."
            ) from err
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({err}); copy or train it again."
        ) from err
    expected = desc.get(CHECKSUM_KEY)
    # Checkpoints written before checksums were recorded have none and load as before.
    if expected is not None and weights_checksum(state) != expected:
        raise CheckpointError(
            f"the weights in {path} do not match the checksum in its description: the file "
            "is damaged. Copy it again from where it came from, or train it again."
        )
    # Stages the network never runs, kept in files written before build_model left them out.
    unused = unused_weight_prefixes(config)
    state = {k: v for k, v in state.items() if not k.startswith(unused)}
    mismatch = mismatched_weights(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(
            f"the weights in {path} do not fit the network its description gives ({mismatch}); "
            "the file is corrupt: train it again."
        )
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return model, desc
