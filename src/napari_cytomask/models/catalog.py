"""The U-Net models a user can pick: the starter model shipped in the package, then
their own checkpoints, each with a name a person can read.

The starter model is a U-Net trained by ``cytomask train`` on phase-contrast
images of the Usiigaci data set (its model card, ``resources/STARTER_MODEL.md``,
says how and how well). It is the default of every entry point that takes a
U-Net: the dock's model list shows it first, ``cytomask segment`` uses it when
no ``--model`` is given, and ``cytomask train --from starter`` fine-tunes it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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
    if path.is_file():
        return path
    name = str(model)
    for candidate in (cache_dir() / name, cache_dir() / f"{name}{SUFFIX}"):
        if candidate.is_file():
            return candidate
    there = sorted(path.stem for path in cache_dir().glob(f"*{SUFFIX}"))
    listed = f" (there: {', '.join(there[:5])}{', …' * (len(there) > 5)})" if there else ""
    raise CheckpointError(
        f"no checkpoint {name!r}: give a .safetensors file, the name of one in "
        f"{cache_dir()}{listed}, or {STARTER!r} for the starter model."
    )


#: The starter model's :func:`~napari_cytomask.models.inference.confidence` below which
#: an image is unlike the phase contrast it knows: 0.77 to 0.85 on 10 Usiigaci images
#: (test, validation and training, with and without flip TTA), 0.64 with TTA and 0.69
#: without on the DIC image of the shared nuclei data (``benchmarks/bench_confidence.py``).
STARTER_CONFIDENCE = 0.72


#: The pixel size (µm) of the starter model's training images: Usiigaci's 10x objective,
#: 1.5x zoom and a 2x2-binned Flash4.0 camera (their files record 0.8708 µm).
STARTER_PIXEL_SIZE_UM = 0.87
#: How much larger (in pixels) cells may look than in the starter model's images before
#: it misses many of them, from smaller to larger: on two Usiigaci test fields resampled
#: (``benchmarks/bench_starter_scale.py``), F1@0.5 was 0.86-0.90 at 1x, 0.75-0.96 at
#: 0.68x, 0.83-0.86 at 1.34x (0.65 µm pixels: a 6.5 µm camera at 10x), but 0.31-0.32 at
#: 0.5x, 0.62-0.71 at 1.5x and 0 at 2x.
STARTER_SCALE_RANGE = (0.6, 1.4)


def unlike_starter_images(
    model: str | os.PathLike | None,
    confidence: float | None,
    pixel_size_um: tuple[float, float] | None = None,
) -> str:
    """A sentence when the starter model was used on an image unlike its training images:
    cells of another size in pixels (``pixel_size_um``, the image's (Y, X) pixel size, when
    known, against :data:`STARTER_PIXEL_SIZE_UM`), where it misses most of them; or cells
    it was unsure of (:data:`STARTER_CONFIDENCE`), likely not phase contrast, so its cells
    may be made up. Empty otherwise, and for every other model."""
    if not (model is None or str(model) == STARTER or Path(model) == starter_path()):
        return ""
    if pixel_size_um:
        # Along the axis that is furthest off (pixels may differ in Y and X).
        larger = max((STARTER_PIXEL_SIZE_UM / size for size in pixel_size_um),
                     key=lambda r: abs(math.log(r)))  # fmt: skip
        if not STARTER_SCALE_RANGE[0] <= larger <= STARTER_SCALE_RANGE[1]:
            y, x = pixel_size_um
            sizes = f"{x:.3g} µm" if math.isclose(y, x, rel_tol=0.01) else f"{y:.3g} × {x:.3g} µm"
            how = f"{larger:.1f} times larger" if larger > 1 else f"{1 / larger:.1f} times smaller"
            return (
                f"The image's pixels are {sizes}, the starter model's images' "
                f"{STARTER_PIXEL_SIZE_UM} µm: cells are {how} in pixels than it knows, and it "
                "misses many of them. Resample the image to about "
                f"{STARTER_PIXEL_SIZE_UM} µm per pixel first (Fiji: Image > Scale), or "
                "fine-tune it on a few labelled images at this pixel size."
            )
    if confidence is None or confidence >= STARTER_CONFIDENCE:
        return ""
    return (
        f"The starter model is unsure of these cells (confidence {confidence:.2f}, "
        f"{STARTER_CONFIDENCE} or more on phase contrast): the image may not be phase "
        "contrast like its training images, so check them, or fine-tune it on a few "
        "labelled images of yours."
    )
