"""How one channel of a scan becomes a napari layer, and what every layer the plugin makes records.

The reader, the sample data and the channel-roles widget all build layers here,
so a channel looks and behaves the same wherever it comes from. Results of the
segmentation steps record their origin here too (:func:`result_metadata`), and
everyone reads a layer's record through :func:`layer_info`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..labels import min_label_dtype

Role = Literal["input", "image", "mask"]
ROLES: tuple[Role, ...] = ("input", "image", "mask")
#: Key under which every layer made by the plugin keeps its provenance in ``layer.metadata``.
METADATA_KEY = "cytomask"

_MASK_NAME = re.compile(r"mask|label|cellpose|segment|\bseg\b|instance|\bids?\b", re.I)
#: How Cellpose names the label files it saves ("a_cp_masks.tif", "a_masks.tif").
_CELLPOSE_FILE = re.compile(r"_masks$", re.I)
# "Trans" ("TL-Trans", "transmitted_light", "TransLamp"), but not of "transfected" or
# "Transferrin"; the phase rings of an objective ("Ph1", "Ph2-20x") name phase contrast.
_TRANSMITTED_NAME = re.compile(
    r"bright\s*field|\bbf\b|phase|\bph\b|\bphc\b|\bph\s*[1-3]\b|\bdic\b"
    r"|trans(?!fect|fer)|\btl\b|\bgray\b|\bgrey\b",
    re.I,
)
_NAMED_COLOURS = (
    (re.compile(r"dapi|hoechst|\bblue\b|405|bfp", re.I), "blue"),
    (re.compile(r"gfp|fitc|alexa\s*488|\b488\b|\bgreen\b|venus|yfp", re.I), "green"),
    (re.compile(r"cherry|rfp|tritc|dsred|\b561\b|\b555\b|\b594\b|\bred\b|cy3", re.I), "magenta"),
    (re.compile(r"cy5|\b640\b|\b647\b|far\s*red", re.I), "red"),
)


def looks_transmitted(name: str) -> bool:
    """Whether a channel's name is one of transmitted light (brightfield, phase, DIC)."""
    return bool(_TRANSMITTED_NAME.search(name))


def looks_fluorescent(name: str) -> bool:
    """Whether a channel's name is one of a stain or fluorescent protein (DAPI, GFP, 488…)."""
    return any(pattern.search(name) for pattern, _ in _NAMED_COLOURS)


_CYCLE = ("green", "magenta", "cyan", "yellow", "red", "blue")


#: Seconds per time unit, in the spellings of OME, ImageJ and napari (lower case).
SECONDS = {
    "ns": 1e-9, "nanosecond": 1e-9, "µs": 1e-6, "us": 1e-6, "microsecond": 1e-6,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "s": 1.0, "sec": 1.0, "second": 1.0,
    "seconds": 1.0, "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0,
    "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip


def normalise_unit(unit) -> str:
    """A unit as :data:`SECONDS` and :data:`MICROMETRES` spell it: lower case, the Greek μ
    as the micro sign, ImageJ's escapes decoded ("\\u00B5m" is µm)."""
    unit = str(unit)
    if "\\u" in unit:
        unit = unit.encode("ascii", "backslashreplace").decode("unicode_escape")
    return unit.strip().replace("\u03bc", "µ").lower()


def frame_axes(axis_labels) -> int:
    """How many leading axes of an image hold separate images, compared one by one:
    positions, time points, or axes no file named (the plugin segments frame by frame, so
    the ids of one frame are no cells of the next). A Z axis and those after it make one
    volume with Y and X."""
    leading = [str(a).upper() for a in axis_labels][:-2]
    return leading.index("Z") if "Z" in leading else len(leading)


def compared_frame_axes(
    ndim: int, axis_labels, planes_apart: bool, by_frame: bool | None = None
) -> int:
    """How many leading axes of a ground truth of ``ndim`` axes (named ``axis_labels``,
    or None) the metrics compare frame by frame, in the metrics dock and in ``cytomask
    evaluate``. ``by_frame``: False compares one volume, True frame by frame, None as the
    files say (frame by frame when they hold frames). ``planes_apart``: the prediction's
    cells were made plane by plane (the plugin's steps segment each 2-D plane on its own,
    Z planes too), so every axis before Y and X is a frame; otherwise a Z axis and those
    after it make one volume with Y and X."""
    if ndim < 3 or by_frame is False:
        return 0
    if planes_apart:
        return ndim - 2
    named = frame_axes(axis_labels or ("",) * ndim)
    return max(1, named) if by_frame else named


def time_step(axis_labels, scale, units) -> tuple[int, float] | None:
    """The axis labelled ``T`` and the seconds between its steps, when its unit is a time
    (a flipped layer's negative scale counts as positive); None otherwise."""
    labels = [str(a).upper() for a in axis_labels or ()]
    if scale is None or units is None or "T" not in labels or len(labels) != len(scale):
        return None
    axis = labels.index("T")
    factor = SECONDS.get(normalise_unit(units[axis]))
    return (axis, abs(float(scale[axis])) * factor) if factor else None


#: Micrometres per length unit, in the spellings of OME, ImageJ and TIFF (lower case).
MICROMETRES = {
    "pm": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "inch": 25400.0,
    # OME's default unit for stage positions; microscopes write micrometres.
    "reference frame": 1.0,
}


#: Symbols of the length units a file can hold, by their size in micrometres.
_LENGTH_SYMBOLS = {1e-3: "nm", 1.0: "µm", 1e3: "mm", 1e4: "cm", 1e6: "m"}


def in_micrometres(unit) -> float | None:
    """Micrometres per ``unit``, a length as napari or a file names it ("micrometre",
    "micron", "um", "μm", "nm"…); None for a unit that is no length (pixels, seconds)."""
    return None if unit is None else MICROMETRES.get(normalise_unit(unit))


def _yx_um(values, units) -> tuple[float, float] | None:
    """The last two of per-axis lengths ``values`` in ``units``, in micrometres; None when
    their units are no length (pixels) or not given."""
    if values is None or units is None or len(values) < 2 or len(units) < 2:
        return None
    factors = [in_micrometres(unit) for unit in units[-2:]]
    if None in factors:
        return None
    y, x = (float(value) * factor for value, factor in zip(values[-2:], factors, strict=True))
    return y, x


#: Pixel sizes, in micrometres, that a microscope gives, from super-resolution
#: (nanometres) to low-magnification overviews (tens of micrometres): what a file's
#: calibration is taken from (resolution tags outside this are no calibration: image
#: editors, screens and cameras write 72, 96, 150 or 300 pixels per inch, 353, 265, 169
#: and 85 µm, by default), and what one may give an image (the dock's Pixel size box,
#: ``--pixel-size``): 1e7 was taken, and its labels could not be saved; 80 was written
#: into a result that the reader then opened without it.
PIXEL_SIZE_RANGE_UM = (0.001, 50.0)


def pixel_size_um(scale, units) -> tuple[float, float] | None:
    """The (Y, X) pixel size in micrometres of an image whose last two axes have ``scale``
    in ``units``; None when they are no length (pixels) or not given."""
    size = _yx_um(scale, units)
    # A flipped layer's scale is negative; a pixel's size is not.
    return None if size is None else (abs(size[0]), abs(size[1]))


def offset_um(translate, units) -> tuple[float, float]:
    """The (Y, X) offset in micrometres of an image whose last two axes are moved by
    ``translate`` in ``units`` (a napari layer's: where its first pixel's centre lies, a
    tile's stage position); (0, 0) when not given or not a length."""
    return _yx_um(translate, units) or (0.0, 0.0)


def with_pixel_size(scale, units, size_um: float) -> tuple[tuple, tuple]:
    """``scale`` and ``units`` with the Y and X pixels ``size_um`` µm: a size the user
    gives for an image that lost its own, or holds a wrong one, is its size from then on
    (its results and their exports too, not only the model's resampling). Other axes keep
    theirs; without units, they count in pixels."""
    scale = (*tuple(scale)[:-2], float(size_um), float(size_um))
    lead = len(scale) - 2
    kept = ("pixel",) * lead if units is None else tuple(str(u) for u in units)[:lead]
    return scale, (*kept, "µm", "µm")


def length_symbol(unit) -> str | None:
    """The symbol files use ("µm", "nm", "mm", "cm", "m") of a length unit, or None."""
    return _LENGTH_SYMBOLS.get(in_micrometres(unit))


#: Pixels sampled per channel for contrast limits and roles: a grid of
#: ``SAMPLE_GRID`` x ``SAMPLE_GRID`` patches of ``SAMPLE_PATCH`` x ``SAMPLE_PATCH``.
SAMPLE_GRID = 4
SAMPLE_PATCH = 64


@dataclass
class Channel:
    """One channel of a scan, before it becomes a layer.

    Attributes
    ----------
    name
        Layer name (from the file's metadata, else the file's name for a single
        channel and ``C1`` … ``Cn`` for several).
    data
        Array with the channel axis removed (numpy, dask, zarr), or a list of
        arrays, largest first, for a multiscale (pyramidal) channel.
    role
        ``"input"`` (the transmitted-light image to segment), ``"image"``
        (another intensity channel) or ``"mask"`` (integer ids: a Labels layer).
    index
        Position of the channel in the file.
    color
        Colormap name from the file's metadata, if it gives one.
    contrast_limits
        Display range for image channels.
    extra
        More metadata for the layer.
    named_after_file
        Whether ``name`` is the file's name rather than the channel's own.
    """

    name: str
    data: Any
    role: Role = "image"
    index: int = 0
    color: str | None = None
    contrast_limits: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)
    named_after_file: bool = False

    @property
    def described_as(self) -> str:
        """What the channel's name says about its content: nothing when it is the
        file's name ("label-free.tif" is no mask), so its pixels alone decide, unless the
        file is named as Cellpose names its masks ("a_cp_masks.tif")."""
        if self.named_after_file and not named_as_masks(self.name):
            return ""
        return self.name

    @property
    def base(self):
        """The full-resolution array."""
        return self.data[0] if isinstance(self.data, list) else self.data


def named_as_masks(stem: str) -> bool:
    """Whether a file's name without its ending (``stem``) is one Cellpose gives the masks
    it saves ("a_cp_masks")."""
    return bool(_CELLPOSE_FILE.search(stem))


#: The intensity column of a file's single unnamed channel (``mean_intensity``), which
#: would otherwise take the file's name: the tables of ``A01.tif`` and ``A02.tif`` would
#: measure the same channel in columns of different names and not stack into one.
FILE_CHANNEL_COLUMN = "intensity"


def measured_as(name: str, named_after_file: bool) -> str:
    """The name a channel's intensities are exported under (``mean_<name>``): its own,
    or :data:`FILE_CHANNEL_COLUMN` for a channel named after its file."""
    return FILE_CHANNEL_COLUMN if named_after_file else name


def patch_starts(n: int, patch: int) -> list[int]:
    """First index of ``SAMPLE_GRID`` patches spread evenly over ``n`` pixels."""
    return [
        int(np.clip(round((k + 0.5) * n / SAMPLE_GRID - patch / 2), 0, max(0, n - patch)))
        for k in range(SAMPLE_GRID)
    ]


def grid_sample(plane: np.ndarray) -> np.ndarray:
    """A grid of ``SAMPLE_GRID`` x ``SAMPLE_GRID`` patches of a plane whose first two axes
    are Y and X (colour samples may follow), stacked along the rows."""
    height, width = plane.shape[:2]
    if height <= SAMPLE_GRID * SAMPLE_PATCH and width <= SAMPLE_GRID * SAMPLE_PATCH:
        return plane
    rows, cols = patch_starts(height, SAMPLE_PATCH), patch_starts(width, SAMPLE_PATCH)
    return np.concatenate(
        [plane[r : r + SAMPLE_PATCH, c : c + SAMPLE_PATCH] for r in rows for c in cols]
    )


def plane_sample(
    read: Callable[[slice, slice], np.ndarray],
    height: int,
    width: int,
    chunks: tuple[int, int] | None = None,
) -> np.ndarray:
    """:func:`grid_sample` of a plane on disk, read as few pixels as its chunks allow.

    ``read(rows, cols)`` reads a block of the plane; ``chunks`` is the (Y, X) size of its
    chunks (tiles, strips), None where reads cost what they hold. A plane of one or two
    chunks a side is read once, whole, rather than once per patch; otherwise the patches
    move to the start of their chunks, so that each reads as few chunks as it can.

    Patches all of one value other than 0 are no sample of a plane that holds more: a
    mask of one cell over most of the field shows none of its background in them, and
    opened as an image. A plane of up to :data:`WHOLE_PLANE_BYTES` is then read whole.
    (Patches all 0 are taken for labels already, and another plane of a stack is tried.)
    """
    sample = _patches(read, height, width, chunks)
    if (
        sample.size
        and sample.min() == sample.max() != 0
        and sample.shape[:2] != (height, width)
        and height * width * sample[:1, :1].nbytes <= WHOLE_PLANE_BYTES
    ):
        return read(slice(0, height), slice(0, width))
    return sample


#: Most bytes of a plane read whole for its sample (:func:`plane_sample`): a camera's
#: frame (2048 x 2048 pixels of 16 bits is 8 MiB), not a slide's.
WHOLE_PLANE_BYTES = 16 << 20


def _patches(
    read: Callable[[slice, slice], np.ndarray],
    height: int,
    width: int,
    chunks: tuple[int, int] | None,
) -> np.ndarray:
    """The patches of :func:`plane_sample`, read as few pixels as the chunks allow."""
    everything = slice(0, height), slice(0, width)
    patch = SAMPLE_PATCH
    if height <= SAMPLE_GRID * patch and width <= SAMPLE_GRID * patch:
        return read(*everything)
    rows, cols = patch_starts(height, patch), patch_starts(width, patch)
    if chunks is not None:
        chunk_y, chunk_x = chunks
        if 2 * chunk_y >= height and 2 * chunk_x >= width:
            return grid_sample(read(*everything))
        rows = [r // chunk_y * chunk_y if chunk_y >= patch else r for r in rows]
        cols = [c // chunk_x * chunk_x if chunk_x >= patch else c for c in cols]
    return np.concatenate(
        [
            read(slice(r, min(height, r + patch)), slice(c, min(width, c + patch)))
            for r in rows
            for c in cols
        ]
    )


#: Where a stack is sampled for roles and contrast, as a fraction of each axis other than
#: the channels and the plane: the middle first, then others if it is all 0.
SAMPLE_AT = (0.5, 0.0, 0.25, 0.75, 1.0)


def stack_sample(sample_at: Callable[[float], np.ndarray], stacked: bool) -> np.ndarray:
    """Pixels of one channel of a stack for contrast limits and role guessing.

    ``sample_at(at)`` samples the plane at fraction ``at`` of each axis other than the
    plane's (:func:`plane_sample`); ``stacked`` says whether the channel has more than one
    plane. The middle plane's; when it is all 0 (a time point without cells) or label ids
    without background (a confluent field), the first of other planes that is neither, so
    a label stack is still known.
    """
    if not stacked:
        return sample_at(SAMPLE_AT[0])
    confluent = None  # the first plane of label ids without background
    for at in SAMPLE_AT:
        sample = sample_at(at)
        if sample.any():
            if not ids_without_background(sample):
                return sample
            confluent = sample if confluent is None else confluent
    return sample if confluent is None else confluent


#: Share of neighbouring pixels that are equal above which pixels look like label ids, one
#: value over each cell; a camera's pixels mostly differ (5% are equal in a fluorescence
#: image of nuclei, whose background is noise). Also the share of pixels with a neighbour
#: of their value (:func:`flat_share`) above which they do.
FLAT_SHARE = 0.9

#: Regions per label id, at most, in a sample of label ids (:func:`ids_in_regions`): a
#: cell is one region of its id, or a few where a sampled patch cuts it (1.0 to 1.5 in
#: label files of nuclei, cells and a volume). The grey levels of a drawing or of a
#: gradient come back in many places (10 per value in OME's sample files); a camera's too.
REGIONS_PER_ID = 2


def looks_like_mask(name: str, sample: np.ndarray | None) -> bool:
    """Guess whether a channel holds label ids rather than intensities.

    A name such as *mask*, *labels* or *cellpose* decides; otherwise a small
    sample of the pixels must be integers with background 0 and flat regions
    (neighbouring pixels mostly equal), which no camera image has, or all 0. A channel
    named after a stain (*DAPI*, *GFP*) must be flat within its objects too: a sparse
    stain's background of 0 makes most neighbours equal, its cells do not. Ids of cells
    that touch or are small, with little background or none, are ids too
    (:func:`ids_in_regions`), unless the channel is named after a kind of light.
    """
    if _MASK_NAME.search(name):
        return True
    if sample is not None and np.asarray(sample).dtype == bool:  # a 1-bit mask (MATLAB's)
        sample = np.asarray(sample, np.uint8)
    if sample is None or sample.size < 16 or not np.issubdtype(sample.dtype, np.integer):
        return False
    sample = np.asarray(sample)
    named_after_light = looks_transmitted(name) or looks_fluorescent(name)
    if not named_after_light and ids_in_regions(sample):
        return True
    if sample.min() != 0:
        return False
    if sample.max() == 0:
        # Labels of a run that found no cell (a camera's frames are never all 0): opened
        # as an input image they would be offered to segment.
        return True
    pairs = _neighbours(sample)
    if pairs is None:
        return False
    left, right = pairs
    equal = left == right
    if looks_fluorescent(name):
        # A stain's channel, however sparse ("DAPI", 96 % at 0): neighbours within objects.
        inside = (left != 0) & (right != 0)
        if not inside.any() or np.mean(equal[inside]) <= FLAT_SHARE:
            return False
    return bool(np.mean(equal) > FLAT_SHARE and np.mean(sample == 0) > 0.05)


def _neighbours(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pairs of neighbouring pixels along the rows of a sample (along its columns when it
    is one pixel wide); None for a single pixel."""
    if sample.shape[-1] < 2:
        sample = np.moveaxis(sample, -2, -1) if sample.ndim > 1 else sample
    if sample.shape[-1] < 2:
        return None
    return sample[..., :-1], sample[..., 1:]


def equal_neighbours(sample: np.ndarray) -> float | None:
    """The share of neighbouring pixels of a sample that are equal (see
    :data:`FLAT_SHARE`); None for a single pixel."""
    pairs = _neighbours(np.asarray(sample))
    return None if pairs is None else float(np.mean(pairs[0] == pairs[1]))


def flat_share(sample: np.ndarray) -> float | None:
    """The share of the pixels of a sample (its last two axes a plane) with a neighbour of
    their own value, above, below, left or right: all of them in label ids, however small
    the cells and thin the background between them; few in a camera's image, whose noise
    sets each pixel apart (under 2% of a phase-contrast field, 60% of an 8-bit one). None for a
    single pixel."""
    sample = np.atleast_2d(np.asarray(sample))
    if sample.size < 2:
        return None
    flat = np.zeros(sample.shape, bool)
    along_rows = sample[..., 1:] == sample[..., :-1]
    flat[..., 1:] |= along_rows
    flat[..., :-1] |= along_rows
    along_columns = sample[..., 1:, :] == sample[..., :-1, :]
    flat[..., 1:, :] |= along_columns
    flat[..., :-1, :] |= along_columns
    return float(np.mean(flat))


def ids_in_regions(sample: np.ndarray) -> bool:
    """Whether integer pixels look like label ids whatever their background: a confluent
    field's, with little of it or none, or small cells a pixel apart, where few neighbours
    along a row are equal. Several values besides 0, none negative, nearly every pixel
    with a neighbour of its value (:func:`flat_share`) and each value over one region, a
    cell (:data:`REGIONS_PER_ID`): not a drawing's or a gradient's grey levels, found in
    many places. A plane of one value is left alone (a blank image, or a field of one
    cell)."""
    if not (flat_share(sample) or 0) > FLAT_SHARE:
        return False
    ids = np.unique(sample)
    if ids[0] < 0 or np.count_nonzero(ids) < 2:
        return False
    from skimage.measure import label  # only for flat pixels: a camera's never get here

    regions = label(sample.reshape(-1, sample.shape[-1]), background=0, connectivity=1).max()
    return bool(regions <= REGIONS_PER_ID * np.count_nonzero(ids))


def ids_without_background(sample: np.ndarray | None) -> bool:
    """Whether pixels look like label ids that cover the whole field (integers, neighbours
    mostly equal, several values, none 0): a confluent field's labels."""
    if sample is None or sample.size < 16 or not np.issubdtype(sample.dtype, np.integer):
        return False
    sample = np.asarray(sample)
    share = equal_neighbours(sample)
    if share is None or not 0 < sample.min() < sample.max():
        return False
    return share > FLAT_SHARE


def _ids_sample(data) -> np.ndarray:
    """A sample of the first plane of ``data`` (``(*frames, Y, X)``) to tell ids from light
    by: a grid of patches, or the whole plane where the patches missed the few cells there
    are; whole decimals (1.0, 2.0) as integers, as a mask takes them."""
    plane = data[(0,) * (data.ndim - 2)] if data.ndim > 2 else data
    sample = np.asarray(grid_sample(plane))
    if sample.min() == sample.max():
        sample = np.asarray(plane)
    if sample.dtype.kind == "f" and np.isfinite(sample).all() and (sample % 1 == 0).all():
        sample = sample.astype(np.int64)
    return sample


def plane_looks_like_ids(name: str, data) -> bool:
    """Whether the first plane of ``data`` looks like label ids by a sample of its pixels
    (:func:`looks_like_mask`; ``name`` is the channel's or file's)."""
    return looks_like_mask(name, _ids_sample(data))


def varies_as_light(data) -> bool:
    """Whether the whole-number pixels of the first plane of ``data`` mostly differ from
    their neighbours, as a camera's do (:func:`flat_share` at most :data:`FLAT_SHARE`), where
    ids, binary masks (watershed lines too) and a field one cell fills are flat; fractional
    pixels are no ids either way (False)."""
    sample = _ids_sample(data)
    share = None if sample.dtype.kind == "f" else flat_share(sample)
    return share is not None and share <= FLAT_SHARE


def check_looks_like_ids(data, what: str, advice: str) -> None:
    """Refuse ``data`` read from a file as labels (``what``: how to call it) whose pixels
    :func:`varies_as_light`: a phase image given as a mask was trained on as 8,552 cells
    without a word. ``advice`` says what to check. Fractional pixels are left to
    :func:`~napari_cytomask.labels.as_labels`, which says so."""
    if varies_as_light(data):
        raise ValueError(
            f"{what} does not look like labels (one whole-number id per cell, 0 for the "
            f"background): its pixels vary as an image's do. {advice}"
        )


def looks_like_masks(names: Sequence[str], samples: Sequence[np.ndarray | None]) -> list[bool]:
    """:func:`looks_like_mask` for each channel of one file; where one of them is a mask,
    a channel of label ids without background is one too: the frame of a confluent field
    in a stack of labels has no pixel at 0, and on its own may look like no mask (cells
    larger than the sampled patches come back in pieces)."""
    kinds = [looks_like_mask(n, s) for n, s in zip(names, samples, strict=True)]
    if any(kinds):
        kinds = [
            kind
            or (not looks_transmitted(n) and not looks_fluorescent(n) and ids_without_background(s))
            for kind, n, s in zip(kinds, names, samples, strict=True)
        ]
    return kinds


#: Recorded (True) on the input channel the reader told by its pixels (:func:`lit_from_behind`)
#: rather than its name, for those who segment it to say so.
INPUT_BY_PIXELS = "input_by_pixels"

#: Where the median of an image's sample lies between its 1st and 99.8th percentiles, at
#: least for transmitted light and at most for fluorescence: the grey background of phase
#: contrast and DIC puts it at 0.25-0.41 (the Usiigaci images, the DSB's DIC image), the dark
#: one of stains below 0.09 (the DSB's nuclei, BBBC022's three stains).
LIT_BACKGROUND = 0.2
DARK_BACKGROUND = 0.1


def sample_levels(sample: np.ndarray | None) -> tuple[float, float, float] | None:
    """The 1st, 50th and 99.8th percentiles of ``sample`` (None for no sample, or a flat
    one), which :func:`lit_beside_dark` compares: read once per image, as it is compared
    with every other image of its file."""
    if sample is None or np.asarray(sample).size == 0:
        return None
    pixels = np.asarray(sample).ravel()
    # As many pixels as a grid sample holds, of a whole plane given instead (a PNG).
    pixels = pixels[:: max(1, pixels.size // (SAMPLE_GRID * SAMPLE_PATCH) ** 2)]
    low, median, high = (float(v) for v in np.percentile(pixels.astype(np.float64), (1, 50, 99.8)))
    return None if high <= low else (low, median, high)


def lit_beside_dark(lit, dark) -> bool:
    """Whether an image of :func:`sample_levels` ``lit`` looks like transmitted light's and
    one of ``dark`` like a stain's: where the median lies in its range, at least
    :data:`LIT_BACKGROUND` and below :data:`DARK_BACKGROUND`, the stain's background darker
    than the lit image's darkest pixels (its 1st percentile): a phase image and a bright GFP
    one share grey levels, but not a background; the frames of one stain's time-lapse, its
    cells filling the field, keep their background's level."""
    if lit is None or dark is None:
        return False
    (lit_low, lit_median, lit_high), (dark_low, dark_median, dark_high) = lit, dark
    return (
        (lit_median - lit_low) / (lit_high - lit_low) >= LIT_BACKGROUND
        and (dark_median - dark_low) / (dark_high - dark_low) < DARK_BACKGROUND
        and dark_median < lit_low
    )


def lit_from_behind(images: Sequence[Channel], samples: Sequence[np.ndarray | None]):
    """The one channel of ``images`` whose pixels look transmitted light's beside every
    other's fluorescence (:func:`lit_beside_dark`), where it is not named after a stain; None
    where the pixels do not tell (two grey, or one unsure)."""
    levels = [sample_levels(sample) for sample in samples]
    for i, channel in enumerate(images):
        others = [other for j, other in enumerate(levels) if j != i]
        if all(lit_beside_dark(levels[i], other) for other in others):
            return None if looks_fluorescent(channel.described_as) else channel
    return None


def guess_roles(channels: list[Channel], samples: list[np.ndarray | None]) -> None:
    """Assign a role to every channel in place.

    Masks are found by :func:`looks_like_masks`. The input channel is the first
    one named like transmitted light (brightfield, phase, DIC); without such a
    name, a file with a single non-mask channel uses that one, and one of several the one
    whose pixels alone look like transmitted light's (:func:`lit_from_behind`): a
    [GFP, phase] file saved without channel names segmented its GFP.
    """
    kinds = looks_like_masks([c.described_as for c in channels], samples)
    for channel, mask in zip(channels, kinds, strict=True):
        channel.role = "mask" if mask else "image"
    images = [(c, s) for c, s in zip(channels, samples, strict=True) if c.role == "image"]
    named = [c for c, _ in images if looks_transmitted(c.described_as)]
    if named:
        named[0].role = "input"
    elif len(images) == 1:
        images[0][0].role = "input"
    elif images and (lit := lit_from_behind(*zip(*images, strict=True))) is not None:
        lit.role = "input"
        lit.extra[INPUT_BY_PIXELS] = True


#: Recorded (True) on an image channel the reader opened whose sampled pixels are integers
#: with a neighbour of their value (:func:`flat_share`), as label ids' are and no camera's:
#: ids no guess took for labels (one cell over the whole field) may be pointed to, without
#: reading the lazy channel again.
FLAT_PIXELS = "flat_pixels"


def can_be_labels(dtype, *, rgb: bool = False) -> bool:
    """Whether pixels of ``dtype`` can be a Labels layer: napari's Labels need integer
    ids, one value per pixel, which a colour image or a float one (named *mask*) is not; a
    1-bit mask's (MATLAB's, scikit-image's of bool) are opened as ids 0 and 1."""
    return not rgb and (np.issubdtype(dtype, np.integer) or np.dtype(dtype) == bool)


def roles_and_contrast(
    channels: list[Channel], samples: list[np.ndarray], dtype, *, rgb: bool = False, path=""
) -> None:
    """:func:`guess_roles`, then the display range of every channel that is no mask, from
    its sample. Channels whose pixels cannot be labels (:func:`can_be_labels`) are images,
    and where they hold whole numbers, ids saved as decimals (as Fiji may save a mask), the
    file at ``path`` is said to hold them; those that can, and are flat, are marked
    (:data:`FLAT_PIXELS`)."""
    guess_roles(channels, samples)
    decimal_ids = []
    for channel, sample in zip(channels, samples, strict=True):
        if channel.role == "mask" and not can_be_labels(dtype, rgb=rgb):
            channel.role = "image"
            values = finite_values(sample) if sample is not None else np.zeros(0)
            if not rgb and values.size == np.size(sample) and not (values % 1).any():
                decimal_ids.append(channel)
        if channel.role != "mask":
            channel.contrast_limits = contrast_from_sample(sample, dtype)
            if can_be_labels(dtype, rgb=rgb) and (flat_share(sample) or 0) > FLAT_SHARE:
                channel.extra[FLAT_PIXELS] = True
    if decimal_ids:
        listed = ", ".join(f"{c.index} ({c.name})" for c in decimal_ids)
        given = decimal_ids[0].index if len(decimal_ids) == 1 else "N"
        warnings.warn(
            f"{path}: channel(s) {listed} look like label ids but are stored as {dtype} "
            "(decimal) numbers, which napari's label layers do not take, so they open as "
            "images. To use their cells, set their role to mask in the Segment cytoplasm "
            "dock's Channels step; cytomask evaluate and export take them with "
            f"--mask-channel {given}.",
            UserWarning,
            stacklevel=2,
        )


def colormap_for(channel: Channel, position: int) -> str:
    """Colormap of an image channel: the file's colour, gray for transmitted light, else by dye."""
    if channel.color:
        return channel.color
    if channel.role == "input" or looks_transmitted(channel.name):
        return "gray"
    for pattern, colour in _NAMED_COLOURS:
        if pattern.search(channel.name):
            return colour
    return _CYCLE[position % len(_CYCLE)]


def contrast_from_sample(sample: np.ndarray | None, dtype: np.dtype) -> tuple[float, float] | None:
    """Display range from the 0.1 and 99.9 percentiles of a pixel sample.

    Falls back to the dtype's range when the sample is flat or missing, so a
    layer never opens with an empty range. NaN and infinite pixels (a stitched mosaic's
    border) are left out.
    """
    if sample is not None:
        sample = finite_values(sample)
    if sample is not None and sample.size:
        if sample.dtype.kind == "b":  # bilevel (1-bit) images; percentiles take no booleans
            sample = sample.view(np.uint8)
        low, high = np.percentile(sample, (0.1, 99.9))
        if high > low:
            return float(low), float(high)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if np.dtype(dtype).kind == "b":
        return 0.0, 1.0
    return None


def finite_values(pixels) -> np.ndarray:
    """The pixels that are numbers, flat: NaN and infinite ones (a stitched mosaic's
    border) left out."""
    pixels = np.asarray(pixels)
    return pixels[np.isfinite(pixels)] if pixels.dtype.kind == "f" else pixels.ravel()


def single_value(values: np.ndarray) -> float | None:
    """The one value of pixels that show nothing (a closed shutter, a black tile), NaN
    when none of them is a number; None when they vary. ``values`` are
    :func:`finite_values`."""
    if values.size == 0:
        return math.nan
    low = values.min()
    return float(low) if low == values.max() else None


def nothing_to_find(data, min_size: int) -> str | None:
    """Why an image can hold no cell at all (smaller than the minimum cell size of
    ``min_size`` pixels, one value, no number), or None: said in place of advice on the
    thresholds or the model, which no setting would make find cells there. ``data`` is
    the image's pixels, its last two axes a frame (lazy ones, dask or zarr, are read)."""
    height, width = data.shape[-2:]
    if height * width < min_size:
        return (
            f"the image ({height}×{width} px) is smaller than the minimum cell size ({min_size} px)"
        )
    value = single_value(finite_values(data))
    if value is None:
        return None
    if math.isnan(value):
        return "no pixel of the image is a number (all NaN or infinite)"
    return f"every pixel of the image has the same value ({value:g}): it shows nothing"


#: Share of an image's pixels at its brightest value from which it looks saturated: with
#: the brightest 20% of a phase-contrast field clipped, the starter model's F1@0.5 away
#: from the clipped band fell from 0.97 to 0.39; with 5% clipped it stayed at 0.88.
SATURATED_SHARE = 0.1

#: Pixels a frame needs for its share at the brightest value to say it is saturated, or
#: its grey levels to say they are few: in a smaller one a few pixels hold a large share by
#: chance (one of 2 x 2 pixels is 25%), and a small test pattern may be black and white.
SATURATED_MIN_PIXELS = 32 * 32

#: Grey levels a frame's pixels from its 1st percentile up need for cells to be
#: seen (:func:`grey_levels`): a Usiigaci field with only 4 (100 to 103 of a
#: 16-bit camera) lost half its cells to the starter model (F1@0.5 0.47 against 0.93),
#: with 6 to 13 it scored 0.91 to 0.94; the images of the test data hold 23 or more.
FEW_LEVELS = 16


def frame_key(index) -> str:
    """A frame of a stack as records and messages name it: its place on each axis before
    Y and X ("1,2": position 1, time point 2)."""
    return ",".join(str(int(i)) for i in index)


def frame_place(key: str) -> tuple[int, ...]:
    """The place of the frame :func:`frame_key` names."""
    return tuple(int(i) for i in key.split(","))


def made_frames(shape, keys) -> np.ndarray | None:
    """Which frames of an image of ``shape`` a result made, from its record's
    ``frames_made`` (:func:`frame_key` of each, on the leading axes they name): a boolean
    array over ``shape[:-2]``; None when the record names none (every frame was made)."""
    if keys is None:
        return None
    made = np.zeros(tuple(shape[:-2]), bool)
    for key in keys:
        place = frame_place(key)
        if len(place) <= made.ndim and all(
            0 <= i < n for i, n in zip(place, made.shape, strict=False)
        ):
            made[place] = True
    return made


def frames_made_of(layer) -> list[str] | None:
    """The frames of a result made one at a time that hold its cells (:func:`frame_key` of
    each): those its record says a step made (``frames_made``), and those the user painted
    cells into since, which are theirs (counted, exported and compared like the others); a
    frame no step made holds none but painted ones. None when every frame was made. Data
    not in memory (a lazy layer) is not read: its record says."""
    made = layer_info(layer).get("frames_made")
    data = layer.data
    if made is None or not isinstance(data, np.ndarray) or data.ndim < 3:
        return made
    # Only the frames no step made are looked at: they hold nothing unless painted.
    painted = [
        key
        for place in np.ndindex(data.shape[:-2])
        if (key := frame_key(place)) not in made and data[place].any()
    ]
    return sorted({*made, *painted}, key=frame_place)


def frame_record(earlier: dict | None, record: dict, index: tuple) -> dict:
    """The record of a result layer once one of its frames (``index``) was made alone, by
    ``record``'s method and settings (a preview, one position segmented): the stack's own
    record stays that of its last run of every frame (``earlier``, the layer's record;
    no settings before such a run), the frame's method, settings and model are kept apart
    under ``previewed_frames``, and ``frames_made`` lists the frames made while no run
    made them all."""
    frame = {"method": record["method"], "parameters": record["parameters"]}
    if record.get("model") is not None:
        frame["model"] = record["model"]
    record = dict(earlier) if earlier is not None else {**record, "parameters": None}
    frames = dict(record.get("previewed_frames") or {})
    frames[frame_key(index)] = frame
    record["previewed_frames"] = frames
    if record["parameters"] is None:  # the other frames were never made
        record["frames_made"] = sorted(frames, key=frame_place)
    return record


def listed_frames(keys) -> str:
    """Frames named by :func:`frame_key` in a sentence: apart by semicolons when they are
    of several axes ("0,1; 1,2" is two frames, "0,1, 1,2" read as four)."""
    keys = list(keys)
    return ("; " if any("," in key for key in keys) else ", ").join(keys)


#: What the frames of a stack are called along an axis, one and several, by its label.
FRAME_NOUNS = {
    "P": ("position", "positions"),
    "T": ("time point", "time points"),
    "Z": ("plane", "planes"),
}


def _frame_nouns(axis_labels, axes: int) -> list[tuple[str, str]] | None:
    """What a frame is called along each of the first ``axes`` axes of ``axis_labels``
    (Y and X last), one and several; None unless each has a name in :data:`FRAME_NOUNS`."""
    labels = [str(label).upper() for label in list(axis_labels or ())[:-2]][:axes]
    if len(labels) < axes or not all(label in FRAME_NOUNS for label in labels):
        return None
    return [FRAME_NOUNS[label] for label in labels]


def frame_heading(axis_labels, axes: int) -> str:
    """The heading of a column of frames (:func:`frame_key` of each) along the first
    ``axes`` axes of ``axis_labels``: "Time point", "Position, time point" or "Frame"."""
    nouns = _frame_nouns(axis_labels, axes)
    return ", ".join(one for one, _ in nouns).capitalize() if nouns else "Frame"


def short_frame(key: str, axis_labels=None) -> str | None:
    """Frame ``key`` (:func:`frame_key`) of several axes by their letters, for a narrow
    column headed by :func:`frame_heading`: "P0 T1"; None where ``axis_labels`` give no
    nouns to its axes, or it lies along one."""
    place = frame_place(key)
    if len(place) < 2 or _frame_nouns(axis_labels, len(place)) is None:
        return None
    labels = [str(label).upper() for label in list(axis_labels)[: len(place)]]
    return " ".join(f"{label}{i}" for label, i in zip(labels, place, strict=True))


def frame_positions(frame_shape, axis_labels, names) -> list[str] | None:
    """The name of the position each frame lies at, of frames over ``frame_shape`` in C
    order (an :class:`~napari_cytomask.metrics.core.Evaluation`'s), where ``axis_labels``
    (Y and X last) put a ``P`` axis among them and ``names`` name its positions (a plate's
    wells): tables gave frame numbers alone, which napari's position slider shows too."""
    frame_shape = tuple(frame_shape)
    labels = [str(label).upper() for label in list(axis_labels or ())[: len(frame_shape)]]
    if not names or len(labels) != len(frame_shape) or "P" not in labels:
        return None
    axis = labels.index("P")
    if frame_shape[axis] != len(names):
        return None
    return [str(names[place[axis]]) for place in np.ndindex(*frame_shape)]


def named_frames(keys, axis_labels=None) -> str:
    """Frames named by :func:`frame_key` with their nouns, for messages: "time point 3",
    "planes 1, 2", "position 0, time point 9" or "frames (position, time point) 0,1; 1,2"
    where ``axis_labels`` (a layer's, Y and X last) name each axis the keys run along;
    else "frame 1" or "frames 0,1; 1,2" ("0,9" alone left a user to guess what 9 was).
    "no frame" for none."""
    keys = list(keys)
    if not keys:
        return "no frame"
    axes = len(frame_place(keys[0]))
    nouns = _frame_nouns(axis_labels, axes)
    if nouns is None:
        return f"frame{'s' * (len(keys) > 1)} {listed_frames(keys)}"
    if axes == 1:
        return f"{nouns[0][len(keys) > 1]} {listed_frames(keys)}"
    if len(keys) == 1:
        place = frame_place(keys[0])
        return ", ".join(f"{one} {i}" for (one, _), i in zip(nouns, place, strict=True))
    return f"frames ({', '.join(one for one, _ in nouns)}) {listed_frames(keys)}"


def named_frame(index, axis_labels=None) -> str:
    """Frame ``index`` of a stack (its place before Y and X) in a message, as
    :func:`named_frames` names it."""
    return named_frames([frame_key(index)], axis_labels)


def frame_notes(data) -> str:
    """What an image's count of cells would hide, said after it: frames of a stack that
    show nothing (a black frame among three gave '49 cells in all 3 frames'), and pixels
    at the brightest value, saturated, where no cell can be seen, or too few grey levels
    to show them (:data:`FEW_LEVELS`: a very dim image), in frames large enough to tell
    (:data:`SATURATED_MIN_PIXELS`). ``data`` is numpy, dask or zarr, its last two axes a
    frame; each frame is read once. A wholly blank image is said otherwise
    (:func:`nothing_to_find`)."""
    frames = list(np.ndindex(data.shape[:-2]))
    large = data.shape[-2] * data.shape[-1] >= SATURATED_MIN_PIXELS
    blank, few, at_top, counted = [], {}, 0, 0
    for index in frames:
        values = finite_values(data[index])
        if single_value(values) is not None:
            blank.append(frame_key(index))
            continue
        at_top += int(np.count_nonzero(values == values.max()))
        counted += values.size
        levels = grey_levels(values) if large else FEW_LEVELS
        if levels < FEW_LEVELS:
            few[frame_key(index)] = levels
    notes = []
    if blank and len(blank) < len(frames):
        many = len(blank) > 1
        notes.append(
            f"Frame{'s' if many else ''} {_first_ten(blank)} show{'' if many else 's'} nothing "
            "(one value or no number, as with a closed shutter), so no cells were found there."
        )
    if large and counted and at_top / counted >= SATURATED_SHARE:
        notes.append(
            f"{at_top / counted:.0%} of the image's pixels are at its brightest value: it looks "
            "saturated, and cells there cannot be seen. Take the images with less light, a "
            "shorter exposure or a lower gain."
        )
    if few:
        where = (
            "the image's pixels"
            if len(few) == len(frames) - len(blank)
            else f"the pixels of frame{'s' * (len(few) > 1)} {_first_ten(list(few))}"
        )
        count = f"only {max(few.values())}" if len(few) == 1 else f"at most {max(few.values())}"
        notes.append(
            f"Most of {where} take {count} grey levels: too few to show the cells, and some "
            "are missed (a very dim image, or one whose levels were lost in a conversion). "
            "Take the images with more light, a longer exposure or a higher gain."
        )
    return " ".join(notes)


def _first_ten(keys: list[str]) -> str:
    """The first ten frames of ``keys`` (:func:`listed_frames`), and how many more."""
    return listed_frames(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")


def grey_levels(values: np.ndarray) -> int:
    """How many values the pixels from a frame's 1st percentile up to its brightest take,
    counted on at most 65536 of them, evenly spaced; ``values`` are its
    :func:`finite_values`. The brightest percent is counted: in a sparse field (4 nuclei on
    0.1% of an 8-bit frame, up to 255) the cells are there, over a background of 5 levels."""
    sample = values[:: max(1, values.size // 65536)]
    if sample.dtype.kind == "b":  # bilevel (1-bit) images; percentiles take no booleans
        sample = sample.view(np.uint8)
    return int(np.unique(sample[sample >= np.percentile(sample, 1)]).size)


def to_layer_data(
    channels: list[Channel],
    *,
    axis_labels: tuple[str, ...],
    scale: tuple[float, ...] | None = None,
    units: tuple[str, ...] | None = None,
    translate: tuple[float, ...] | None = None,
    source: str | None = None,
    extra_metadata: dict | None = None,
) -> list[tuple]:
    """napari layer data tuples, one per channel: images as Image, masks as Labels.

    Every layer carries ``metadata["cytomask"]`` with its source file, channel
    index, name, role and axes, which later widgets use to find the input and
    mask channels of a scan.
    """
    layers = []
    image_position = 0
    for channel in channels:
        meta = {
            "source": source,
            "channel_index": channel.index,
            "channel_name": channel.name,
            "named_after_file": channel.named_after_file,
            "role": channel.role,
            "axes": "".join(axis_labels),
            **(extra_metadata or {}),
            **channel.extra,
        }
        kwargs: dict[str, Any] = {
            "name": channel.name,
            "axis_labels": axis_labels,
            "metadata": {METADATA_KEY: meta},
        }
        if isinstance(channel.data, list) and len(channel.data) > 1:
            kwargs["multiscale"] = True
        data = channel.data
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if scale is not None:
            kwargs["scale"] = scale
        if units is not None:
            kwargs["units"] = units
        if translate is not None:
            kwargs["translate"] = translate
        if channel.role == "mask":
            if channel.base.dtype == bool:  # a 1-bit mask: napari's Labels take no bool
                data = (
                    [d.astype(np.uint8) for d in data]
                    if isinstance(data, list)
                    else (data.astype(np.uint8))
                )
            layers.append((data, kwargs, "labels"))
            continue
        kwargs["colormap"] = colormap_for(channel, image_position)
        kwargs["blending"] = "translucent_no_depth" if image_position == 0 else "additive"
        if channel.contrast_limits is not None:
            kwargs["contrast_limits"] = channel.contrast_limits
        image_position += 1
        layers.append((data, kwargs, "image"))
    # Masks last, so that napari draws them over the images: a mask channel saved first
    # lay under the opaque first image, its cells out of sight.
    return sorted(layers, key=lambda layer: layer[2] == "labels")


@dataclass
class Scan:
    """An opened file: its channels and how they sit in space.

    What :func:`napari_cytomask.io.files.open_scan` gives for any file the plugin
    reads; the napari reader, the mosaic, the command line, training and
    evaluation all start from it.

    Attributes
    ----------
    path
        The file.
    channels
        One :class:`Channel` per channel, roles guessed (lazy data for TIFF files).
    axes
        Axis labels of each channel's array (``P`` stage position, ``T``, ``Z``, ``Y``, ``X`` …).
    scale
        Physical size per axis (1 where the file gives none).
    units
        Unit per axis (``"µm"`` or ``"pixel"``), ``None`` when the file gives no size.
    translate
        Where the first pixel lies, per axis in ``units`` (an OME-Zarr image's
        translation); ``None`` when the file places it nowhere.
    metadata
        What else the file says (kind, pixel sizes, stage positions, series …),
        kept in every layer's metadata.
    rgb
        True for an 8-bit colour image, which opens as one RGB layer.
    colours
        True when the channels are the red, green and blue (and alpha) of one colour
        picture that opens as channels: a 16-bit or decimal TIFF, a PNG or JPEG.
    closing
        Closes the file its lazy channels read, or None (read whole). Used as a context
        manager, a scan is closed at its end: a file left open cannot be replaced on
        Windows (a mask saved over its own file).
    """

    path: str
    channels: list[Channel]
    axes: tuple[str, ...]
    scale: tuple[float, ...]
    units: tuple[str, ...] | None = None
    translate: tuple[float, ...] | None = None
    metadata: dict = field(default_factory=dict)
    rgb: bool = False
    colours: bool = False
    closing: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Close the file; its lazy channels cannot be read after."""
        if self.closing is not None:
            self.closing()

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def layer_data(self) -> list[tuple]:
        """napari layer data tuples, one per channel (see :func:`to_layer_data`)."""
        layers = to_layer_data(
            self.channels,
            axis_labels=self.axes,
            scale=self.scale,
            units=self.units,
            translate=self.translate,
            source=self.path,
            extra_metadata=self.metadata,
        )
        if self.rgb:
            for _, kwargs, _ in layers:
                kwargs["rgb"] = True
                kwargs.pop("colormap", None)
        return layers

    @property
    def colour_picture(self) -> bool:
        """Whether the scan is one colour picture (:attr:`rgb` or :attr:`colours`)."""
        return self.rgb or self.colours

    def by_role(self, *roles: Role) -> list[Channel]:
        """The channels with one of ``roles``, in file order."""
        return [c for c in self.channels if c.role in roles]

    @property
    def pixel_size_um(self) -> tuple[float, float] | None:
        """The (Y, X) pixel size in µm the file records; None when it records none."""
        return pixel_size_um(self.scale, self.units)


#: Role of a layer a step of the plugin computed: a result, never a channel of a scan.
RESULT_ROLE = "result"


def layer_info(layer) -> dict:
    """What the plugin recorded on a layer (``metadata["cytomask"]``); empty for other layers.

    Channels opened by the reader hold ``source``, ``channel_index``,
    ``channel_name``, ``role`` and ``axes``; results hold the fields of
    :func:`result_metadata`. Works on anything with a ``metadata`` mapping.
    """
    return dict((getattr(layer, "metadata", None) or {}).get(METADATA_KEY) or {})


def probability_of(layer) -> str | None:
    """The class whose probabilities a model's map layer holds (``"interior"``,
    ``"boundary"``, ``"foreground"``), or None for any other layer."""
    return layer_info(layer).get("probability")


def is_result(layer) -> bool:
    """Whether a step of the plugin computed this layer (it is not a channel of a scan)."""
    return layer_info(layer).get("role") == RESULT_ROLE


def previewed_only(layer) -> bool:
    """Whether ``layer`` holds only the watershed step's previews of frames of a stack
    (cells split, or found in a map), never applied to them all: no result of every
    frame, to check or export as one."""
    record = layer_info(layer) if is_result(layer) else {}
    method = str(record.get("method") or "")
    return method.startswith("watershed_") and record.get("parameters") is None


def made_by_model(layer) -> bool:
    """Whether a result's cells were found by a model (the U-Net, SAM2), by its own step or
    by the one that made its input (a split of the U-Net's cells), rather than drawn by
    hand (a split of a hand-drawn mask is not)."""
    record = layer_info(layer) if is_result(layer) else None
    while record:
        if record.get("model") is not None:
            return True
        record = record.get("made_from")
    return False


def record_written(layer, frame: tuple | None = None) -> None:
    """Remember what a step has just written into its result layer: any change made after
    it (napari's brush, fill or eraser, ``layer.data[...] = ...`` from the console or
    another plugin, a new ``layer.data``) is then the user's (:func:`edited_by_hand`).

    ``frame`` is the index of the one frame a step wrote (a preview): only that frame is
    fingerprinted again, so a preview costs its frame, not the stack. The layer gets a
    record of its own: a copy of the layer (napari's Duplicate Layer shares the record)
    keeps what was written into it."""
    info = layer_info(layer)
    data = layer.data
    written = info.get("written")
    if frame is not None and written and written["kind"] == _kind(data):
        frames = list(written["frames"])
        at = int(np.ravel_multi_index(frame, data.shape[:-2])) if frame else 0
        frames[at] = _digest(data[frame])
    elif frame is not None and info.get("edits_elsewhere"):
        # Its ids widened for the frame (write_frames): the user's edits of its other
        # frames can no longer be told by their fingerprints, and stay theirs.
        frames = _frame_digests(data)
        info["edited_by_hand"] = True
    else:
        frames = _frame_digests(data)
        # Edits made before this run are gone with it.
        info.pop("edited_by_hand", None)
        info.pop("edits_elsewhere", None)
    info["written"] = {"kind": _kind(data), "frames": frames}
    if not info.get("edits_elsewhere"):  # else the user's edits of other frames stay
        info.pop("touched", None)
    layer.metadata = {**layer.metadata, METADATA_KEY: info}


def as_written(data) -> dict:
    """The record of ``data`` as written (:func:`record_written`), for a result read back
    from a file: edits made after it are the user's."""
    return {"kind": _kind(data), "frames": _frame_digests(data)}


def edited_by_hand(layer) -> bool:
    """Whether a result's data changed since a step last wrote it (:func:`record_written`):
    every frame is compared (about 1 s per GB). A layer with no such record (not made by
    a step) counts as unedited. A result opened from an export was edited if its export
    says so (its ``edited_by_hand``) or it changed since it was read."""
    return edited_frames(layer) != []


def edited_frames(layer) -> list[int] | None:
    """The frames of a result (flat indices over its leading axes) whose data changed since
    a step last wrote it (:func:`edited_by_hand`); None where that cannot be told frame by
    frame: its array is of another type or shape, or its export says it was edited."""
    info = layer_info(layer)
    written = info.get("written")
    if written is None:
        return []
    data = layer.data
    if written["kind"] != _kind(data) or info.get("edited_by_hand"):
        return None
    pairs = zip(written["frames"], _frame_digests(data), strict=True)
    return [i for i, (then, now) in enumerate(pairs) if then != now]


def _kind(data) -> str | None:
    """An array's type and shape; ``None`` for data that is not an array in memory, which
    no step writes (so it differs from any step's)."""
    return f"{data.dtype.str}{data.shape}" if isinstance(data, np.ndarray) else None


def _frame_digests(data) -> list[str]:
    """A fingerprint of each 2-D frame of an array in memory (none for other data)."""
    if not isinstance(data, np.ndarray):
        return []
    return [_digest(data[index]) for index in np.ndindex(data.shape[:-2])]


def labels_digest(labels) -> str:
    """A fingerprint of label ids, whatever integer type holds them (a layer's int32 ids
    and the uint8 its TIFF stores give one): an export's provenance keeps it, so that the
    files of an earlier export of the same labels stay its own."""
    labels = np.asarray(labels)
    return _digest(labels.astype(min_label_dtype(int(labels.max(initial=0))), copy=False))


def _digest(frame: np.ndarray) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(np.ascontiguousarray(frame).view(np.uint8))
    return digest.hexdigest()


#: Methods of the metrics' highlight layers: they show a comparison's unmatched cells,
#: and are neither compared again nor exported unless a user picks them.
HIGHLIGHT_METHODS = ("false_positives", "false_negatives")


def is_highlight(layer) -> bool:
    """Whether a layer shows the unmatched cells of a comparison (made by the metrics)."""
    return is_result(layer) and layer_info(layer).get("method") in HIGHLIGHT_METHODS


def result_metadata(
    made_from,
    *,
    method: str,
    parameters: dict | None = None,
    model: dict | None = None,
) -> dict:
    """Layer metadata of a result: where it came from and what made it.

    Every layer a step of the plugin makes carries this under
    ``metadata["cytomask"]``; export provenance, the channel-role table and the
    metrics defaults read it back through :func:`layer_info`.

    Parameters
    ----------
    made_from
        The layer the result was computed from. Its scan file and channel carry
        over, so a result of a result still names the scan; a layer the plugin
        did not open gives the file napari opened it from, if any.
    method
        What computed it, e.g. ``"unet"``, ``"sam2"``, ``"watershed_split"``.
    parameters
        The settings it ran with (JSON-ready values).
    model
        The model, from :func:`model_record`; ``None`` for methods without one.

    Returns
    -------
    dict
        ``{"cytomask": {...}}`` with ``role`` (``"result"``), ``source``,
        ``channel_index``, ``channel_name``, ``method``, ``parameters``,
        ``model``, ``made_from`` (the input layer's name and, for a result, its
        own method, parameters, model and ``made_from``) and ``versions``.
    """
    from .export import package_versions  # export reads layers: imported when needed

    info = layer_info(made_from)
    source = info.get("source") or getattr(getattr(made_from, "source", None), "path", None)
    record = {
        "role": RESULT_ROLE,
        "source": source,
        "channel_index": info.get("channel_index"),
        "channel_name": info.get("channel_name"),
        "method": method,
        "parameters": parameters or {},
        "model": model,
        "made_from": origin(made_from),
        "versions": package_versions(),
    }
    # A copy: the record shares nothing with the caller's, the input's or another result's.
    return {METADATA_KEY: copy.deepcopy(record)}


def origin(layer) -> dict:
    """A layer as an input of a result: its name and, for a result, how it was made
    (its ``method``, ``parameters``, ``model``, ``made_from`` and the settings of frames
    made one at a time, ``previewed_frames``) and whether it had been edited by hand since
    (:func:`edited_by_hand`): cells painted into a U-Net result before they were split are
    the user's, not the U-Net's."""
    info = layer_info(layer)
    steps = ("method", "parameters", "model", "made_from", "previewed_frames")
    made = {"layer": getattr(layer, "name", None), **{k: info[k] for k in steps if k in info}}
    if is_result(layer):
        made["edited_by_hand"] = edited_by_hand(layer)
    return made


def model_record(name: str, path: str | os.PathLike | None = None, **extra) -> dict:
    """A model as a result records it: its name, file and the file's SHA-256.

    Parameters
    ----------
    name
        What selects the model (``"starter"``, a Hugging Face id, a file).
    path
        Its checkpoint file; ``None`` when there is none on disk (then ``sha256``
        is ``None``).
    **extra
        More fields, e.g. a SAM2 checkpoint's ``config``.
    """
    sha256 = file_sha256(path) if path is not None and Path(path).is_file() else None
    location = None if path is None else str(path)
    return {"name": str(name), "path": location, "sha256": sha256, **extra}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read once per process while the file is unchanged.

    Checkpoints are hundreds of MB: a download's check and every result that
    names the model share one reading.
    """
    file = Path(path).resolve()
    stat = file.stat()
    return _file_sha256(str(file), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # Size and modification time in the key: a changed file is read again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
