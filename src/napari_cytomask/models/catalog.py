"""The U-Net models a user can pick: the starter model shipped in the package, then
their own checkpoints, each with a name a person can read.

The starter model is a U-Net trained by ``cytomask train`` on phase-contrast
images of the Usiigaci data set (its model card, ``resources/STARTER_MODEL.md``,
says how and how well). It is the default of every entry point that takes a
U-Net: the dock's model list shows it first, ``cytomask segment`` uses it when
no ``--model`` is given, and ``cytomask train --from starter`` fine-tunes it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

# Torch is imported by the functions that need it, so a model name can be
# looked at (e.g. in a preset) without loading PyTorch.

#: The name that stands for the starter model wherever a model is given.
STARTER = "starter"
#: How the starter model is shown to a person.
STARTER_TITLE = "Starter: phase contrast"
_STARTER_FILE = "cytomask-starter-phc.safetensors"


@dataclass(frozen=True)
class ModelEntry:
    """One U-Net a user can pick.

    Attributes
    ----------
    key
        What to pass as a model: :data:`STARTER` or the checkpoint's path.
    title
        The name shown in lists.
    path
        The checkpoint file.
    """

    key: str
    title: str
    path: Path


def starter_path() -> Path:
    """The starter model's checkpoint file inside the installed package."""
    return Path(str(resources.files("napari_cytomask") / "resources" / _STARTER_FILE))


def unet_models(
    folder: str | os.PathLike | None = None, unusable: list | None = None
) -> list[ModelEntry]:
    """The starter model, then the checkpoints in ``folder`` (default: the model folder),
    newest first; the files there that are not usable checkpoints go to ``unusable`` (see
    :func:`~.checkpoint.list_checkpoints`)."""
    from .checkpoint import list_checkpoints

    entries = []
    starter = starter_path()
    if starter.is_file():
        entries.append(ModelEntry(STARTER, STARTER_TITLE, starter))
    for path in list_checkpoints(folder, unusable):
        entries.append(ModelEntry(str(path), path.stem, path))
    return entries


def resolve_unet(model: str | os.PathLike | None) -> Path:
    """The checkpoint file of ``model``.

    Parameters
    ----------
    model
        ``None`` or :data:`STARTER` for the starter model, a ``.safetensors``
        file, or the name of a checkpoint in the model folder (with or without
        its suffix).

    Raises
    ------
    CheckpointError
        When nothing by that name exists.
    """
    from .checkpoint import SUFFIX, CheckpointError, cache_dir

    if model is None or str(model) == STARTER:
        path = starter_path()
        if not path.is_file():
            raise CheckpointError(
                f"the starter model is missing from this installation ({path}); reinstall "
                "napari-cytomask or give a checkpoint file."
            )
        return path
    path = Path(model).expanduser()
    # os.path.isfile, not Path.is_file: a name too long for the file system (a settings
    # file edited by hand) raised OSError there, and the dock did not open.
    if os.path.isfile(path):
        return path
    name = str(model)
    for candidate in (cache_dir() / name, cache_dir() / f"{name}{SUFFIX}"):
        if os.path.isfile(candidate):
            return candidate
    # Not a link to a file that is gone: it would be offered, then refused.
    there = sorted(path.stem for path in cache_dir().glob(f"*{SUFFIX}") if path.is_file())
    listed = f" (there: {', '.join(there[:5])}{', …' * (len(there) > 5)})" if there else ""
    raise CheckpointError(
        f"no checkpoint {name!r}: give a .safetensors file, the name of one in "
        f"{cache_dir()}{listed}, or {STARTER!r} for the starter model."
    )


#: The starter model's :func:`~napari_cytomask.models.inference.confidence`, with flip
#: TTA, below which an image is unlike the phase contrast it knows: 0.768 to 0.851 on the
#: 40 Usiigaci images; 0.604 to 0.717 on 20 of them shrunk or enlarged 2 times without a
#: pixel size (cells of another size than it learnt: a third of them found), 0.64 on the
#: DIC image of the shared nuclei data (``benchmarks/bench_confidence.py``).
STARTER_CONFIDENCE = 0.74
#: The same without TTA, whose confidences are higher: 0.773 to 0.855 on the 40 images,
#: 0.652 to 0.757 on the 20 of another size (0.72 let all pass), 0.69 on the DIC image.
STARTER_CONFIDENCE_NO_TTA = 0.765


#: The pixel size (µm) of the starter model's training images: Usiigaci's 10x objective,
#: 1.5x zoom and a 2x2-binned Flash4.0 camera (13 µm / 15); the sample scan records it.
STARTER_PIXEL_SIZE_UM = 0.87
#: How much larger (in pixels) cells may look than in the starter model's images seen as
#: they are (not resampled by :func:`model_zoom`) before it misses many of them, from
#: smaller to larger: on two Usiigaci test fields resampled
#: (``benchmarks/bench_starter_scale.py``), F1@0.5 was 0.86-0.90 at 1x, 0.75-0.96 at
#: 0.68x, 0.83-0.86 at 1.34x (0.65 µm pixels: a 6.5 µm camera at 10x), but 0.31-0.32 at
#: 0.5x, 0.62-0.71 at 1.5x and 0 at 2x.
STARTER_SCALE_RANGE = (0.6, 1.4)


#: Pixel sizes within this factor of the model's are used as they are: resampling
#: 0.866 µm pixels to 0.87 µm would only blur them.
RESAMPLE_TOLERANCE = 1.1
#: The factors an image is resampled by, from shrinking to enlarging: for the starter
#: model from 0.054 µm pixels (a 100x objective on a 6.5 µm camera gives 0.065) to 7 µm.
#: Beyond them a file's pixel size is more likely wrong than a microscope's, and the image
#: is left as it is, with :func:`unlike_starter_images`' note.
RESAMPLE_RANGE = (1 / 16, 8.0)
#: Resampling that gives the network this many times an image's pixels, or more, is said
#: while it runs (:func:`enlargement_note`): the time grows with it.
ENLARGEMENT_NOTED = 4.0


def is_starter(model: str | os.PathLike | None) -> bool:
    """Whether ``model`` (a name, a file, or None for the default) is the starter model:
    its file however its path is written (relative, with ``..``, a link)."""
    if model is None or str(model) == STARTER:
        return True
    try:
        return os.path.samefile(Path(model).expanduser(), starter_path())
    except OSError:  # not there (or the starter's file missing): not it
        return Path(model) == starter_path()


def positive_pair(value, name: str, what: str) -> tuple[float, float] | None:
    """A (Y, X) pair given as None, one number or (Y, X) (a pixel size, a zoom), as
    floats; 0, below 0 or not a number is refused with a message that names the argument
    (``name``) and says ``what`` it is: a pixel size of 0 would leave an image unresampled,
    unsaid, and a zoom of 0 failed deep inside as a division by zero."""
    if value is None:
        return None
    try:
        pair = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        pair = np.full(3, np.nan)  # refused below
    if pair.ndim == 0:
        pair = np.repeat(pair, 2)
    if pair.shape != (2,) or not np.all(np.isfinite(pair) & (pair > 0)):
        raise ValueError(f"{name} must be {what}, one positive number or (Y, X); got {value!r}.")
    return float(pair[0]), float(pair[1])


def same_pixel_size(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (Y, X) pixel sizes are within :data:`RESAMPLE_TOLERANCE` of each other."""
    ratios = (x / y for x, y in zip(a, b, strict=True))
    return all(1 / RESAMPLE_TOLERANCE <= r <= RESAMPLE_TOLERANCE for r in ratios)


def model_pixel_size(
    model: str | os.PathLike | None, description: dict | None = None
) -> tuple[float, float] | None:
    """The (Y, X) pixel size in µm a model learnt cells at: the starter model's
    (:data:`STARTER_PIXEL_SIZE_UM`), or that of the checkpoint ``description``
    (:func:`learnt_pixel_size`); None when not known."""
    if is_starter(model):
        return (STARTER_PIXEL_SIZE_UM, STARTER_PIXEL_SIZE_UM)
    return learnt_pixel_size(description)


def learnt_pixel_size(description: dict | None) -> tuple[float, float] | None:
    """The (Y, X) pixel size in µm that the checkpoint ``description`` learnt cells at:
    what training recorded (images that all record about the same pixel size), or the
    starter model's for its weights wherever they lie (a copy of its file records none,
    as it was trained before pixel sizes were recorded); None when not known."""
    from .checkpoint import CHECKSUM_KEY

    checksum = (description or {}).get(CHECKSUM_KEY)
    if checksum is not None and checksum == _starter_checksum():
        return (STARTER_PIXEL_SIZE_UM, STARTER_PIXEL_SIZE_UM)
    recorded = ((description or {}).get("training") or {}).get("pixel_size_um")
    return (float(recorded[0]), float(recorded[1])) if recorded else None


@functools.cache
def _starter_checksum() -> str | None:
    """The starter model's weights checksum; None where the package lacks its file."""
    from .checkpoint import CHECKSUM_KEY, read_description

    path = starter_path()
    return read_description(path).get(CHECKSUM_KEY) if path.is_file() else None


def model_zoom(
    model: str | os.PathLike | None,
    pixel_size_um: tuple[float, float] | None,
    description: dict | None = None,
) -> tuple[float, float] | None:
    """:func:`zoom_to` the pixel size of ``model`` (:func:`model_pixel_size`, from its
    ``description``, read from its file where not given), for ``pixel_size_um`` (one
    number or (Y, X) µm). A model's own file without its description was taken for one
    that records no pixel size, and its images were not resampled (0 cells for 38).

    On two test fields resampled to twice the starter model's magnification, its F1 at
    IoU 0.5 was 0 as they were and 0.96 and 0.86 with this resampling
    (``benchmarks/bench_starter_scale.py``).
    """
    if description is None and not is_starter(model):
        from .checkpoint import read_description

        description = read_description(resolve_unet(model))  # a name not found: refused
    pixel_size_um = positive_pair(pixel_size_um, "pixel_size_um", "a pixel size in µm")
    return zoom_to(pixel_size_um, model_pixel_size(model, description))


def zoom_to(
    pixel_size_um: tuple[float, float] | None, learnt: tuple[float, float] | None
) -> tuple[float, float] | None:
    """The ``(y, x)`` factors that resample an image with ``pixel_size_um`` pixels to a
    model's ``learnt`` pixel size, so that cells are as large in pixels as those it learnt
    from: 0.5 halves an image of 0.435 µm pixels for the starter model (0.87 µm). None
    when either pixel size is not known, they are within :data:`RESAMPLE_TOLERANCE` of
    each other, or the image's is implausibly far off (:data:`RESAMPLE_RANGE`)."""
    if not pixel_size_um or learnt is None or same_pixel_size(pixel_size_um, learnt):
        return None
    zoom = tuple(size / own for size, own in zip(pixel_size_um, learnt, strict=True))
    if not all(RESAMPLE_RANGE[0] <= z <= RESAMPLE_RANGE[1] for z in zoom):
        return None
    return zoom


def enlargement_note(zoom: tuple[float, float] | None) -> str:
    """Why predicting takes longer than the image's size suggests, when :func:`zoom_to`
    enlarges it to :data:`ENLARGEMENT_NOTED` times its pixels or more; else empty."""
    factor = math.prod(zoom) if zoom else 1.0
    if factor < ENLARGEMENT_NOTED:
        return ""
    return (
        f"the image enlarged to {factor:.0f}× its pixels for the model's pixel size: "
        f"{factor:.0f} times as long"
    )


def enlargement_ahead(
    pixel_size_um: tuple[float, float] | None, learnt: tuple[float, float] | None
) -> str:
    """What resampling an image of ``pixel_size_um`` pixels to a model's ``learnt`` ones
    will cost, said before segmenting when :func:`enlargement_note` would say it while
    segmenting; else empty. A file can record a wrong pixel size, and what costs 36
    times the time must not come as a surprise."""
    zoom = zoom_to(pixel_size_um, learnt)
    if not enlargement_note(zoom):
        return ""
    factor = math.prod(zoom)
    return (
        f"The image's {pixel_sizes(pixel_size_um)} pixels will be resampled to the "
        f"model's {pixel_sizes(learnt)}: {factor:.0f}× the pixels, so segmenting takes "
        f"{factor:.0f} times as long. If the image's pixels are not "
        f"{pixel_sizes(pixel_size_um)}, type their size above."
    )


def pixel_sizes(pixel_size_um: tuple[float, float], unit: str = " µm") -> str:
    """The (Y, X) pixel size as "0.435 µm", or "0.645 × 0.65 µm" when they read apart."""
    y, x = (f"{size:.3g}" for size in pixel_size_um)
    return f"{x}{unit}" if y == x else f"{y} × {x}{unit}"


def image_area(area: int, zoom: tuple[float, float] | None) -> int:
    """An area in the network's pixels as the image's pixels count it, for ``zoom``."""
    return area if not zoom else round(area / (zoom[0] * zoom[1]))


def resampled_note(
    pixel_size_um: tuple[float, float], zoom: tuple[float, float], min_size: int | None
) -> str:
    """What segmenting with :func:`model_zoom`'s resampling says it did, and what the
    minimum cell size (``min_size``, in the model's pixels) came to in the image's."""
    learnt = tuple(size / z for size, z in zip(pixel_size_um, zoom, strict=True))
    sizes = ""
    if min_size:
        sizes = (f", and the minimum cell size ({min_size} px at the model's pixel size) is "
                 f"{image_area(min_size, zoom)} of them")  # fmt: skip
    return (
        f"The image's {pixel_sizes(pixel_size_um)} pixels were resampled to the model's "
        f"{pixel_sizes(learnt)} for the network; the cells keep the image's pixels{sizes}."
    )


#: What to do with images unlike the starter model's: lower thresholds found 1 nucleus of
#: 125 in a fluorescence image; fine-tuned on one, it found them (F1@0.5 0.72).
_OTHER_IMAGES = (
    "fine-tune it on a few labelled images of yours, or try SAM2, which needs no training "
    "(SAM2 in step 2, --method sam2 on the command line)."
)


def unlike_starter_images(
    model: str | os.PathLike | None,
    confidence: float | None,
    pixel_size_um: tuple[float, float] | None = None,
    resampled: bool = False,
    tta: bool = True,
) -> str:
    """A sentence when the starter model was used on an image unlike its training images:
    cells of another size in pixels (``pixel_size_um``, the image's (Y, X) pixel size, when
    known, against :data:`STARTER_PIXEL_SIZE_UM`; not when the image was ``resampled`` to
    it), where it misses most of them; or cells it was unsure of
    (:data:`STARTER_CONFIDENCE`, :data:`STARTER_CONFIDENCE_NO_TTA` for a run without
    ``tta``), likely not phase contrast or, for an image whose pixel size is not known, at
    another one. Empty otherwise, and for every other model."""
    if not is_starter(model):
        return ""
    if pixel_size_um and not resampled:
        # Along the axis that is furthest off (pixels may differ in Y and X).
        larger = max((STARTER_PIXEL_SIZE_UM / size for size in pixel_size_um),
                     key=lambda r: abs(math.log(r)))  # fmt: skip
        if not STARTER_SCALE_RANGE[0] <= larger <= STARTER_SCALE_RANGE[1]:
            sizes = pixel_sizes(pixel_size_um)
            if not RESAMPLE_RANGE[0] <= 1 / larger <= RESAMPLE_RANGE[1]:
                return (
                    f"The image's pixels are {sizes}, far from the starter model's "
                    f"{STARTER_PIXEL_SIZE_UM} µm, so it was not resampled: if that size is "
                    f"right, resample the image to about {STARTER_PIXEL_SIZE_UM} µm per pixel "
                    "(Fiji: Image > Scale); if not, give its true pixel size (Pixel size "
                    "in step 2, --pixel-size on the command line)."
                )
            how = f"{larger:.1f} times larger" if larger > 1 else f"{1 / larger:.1f} times smaller"
            return (
                f"The image's pixels are {sizes}, the starter model's images' "
                f"{STARTER_PIXEL_SIZE_UM} µm: cells are {how} in pixels than it knows, and it "
                "misses many of them. Let it resample the image to its pixel size (the "
                "default: 'resample' beside Pixel size in step 2, no --no-resample on the "
                "command line), or fine-tune it on a few labelled images at this pixel size."
            )
    floor = STARTER_CONFIDENCE if tta else STARTER_CONFIDENCE_NO_TTA
    if confidence is None or confidence >= floor:
        return ""
    unsure = (
        f"The starter model is unsure of this image (confidence {confidence:.2f}, "
        f"{floor} or more on phase contrast)"
    )
    if not pixel_size_um:
        # The cheaper cause first: phase contrast at twice its pixel size, unknown, scored
        # F1@0.5 0.00, and 0.84 once the size was given.
        return (
            f"{unsure}, and the image records no pixel size: if its pixels are not about "
            f"{STARTER_PIXEL_SIZE_UM} µm, give it (Pixel size in step 2, --pixel-size on the "
            "command line) to have the image resampled to the model's. If it is not phase "
            f"contrast like the model's training images, {_OTHER_IMAGES}"
        )
    return (
        f"{unsure}: the image may not be phase contrast like its training images, so check "
        f"them; if it is not, {_OTHER_IMAGES}"
    )
