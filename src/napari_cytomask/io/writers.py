"""Writing label images: TIFF (ImageJ), OME-TIFF, PNG and NumPy, atomically and never over a file.

Every writer stores the labels in the smallest unsigned integer type that holds
every id and writes through :func:`~napari_cytomask.io.atomic.write_atomically`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import tifffile

from ..labels import as_labels, min_label_dtype
from .atomic import write_atomically
from .layers import MICROMETRES, length_symbol, offset_um, time_step
from .omezarr import SUFFIX as OME_ZARR_SUFFIX
from .tiff import IMAGEJ_POSITIONS, file_stem


@dataclass(frozen=True)
class LabelFormat:
    """A file format for label images.

    Attributes
    ----------
    title
        The name people see (check boxes, messages).
    suffixes
        File endings that choose the format; the first is the one written.
    tip
        What the format is for, as a tooltip.
    chunked
        Written chunk by chunk into a store by batch segmentation of large
        images, not in one piece by :func:`write_labels`.
    """

    title: str
    suffixes: tuple[str, ...]
    tip: str
    chunked: bool = False

    @property
    def suffix(self) -> str:
        """The ending of files written in this format."""
        return self.suffixes[0]


#: Every label format by key: the keys are what the command line and the settings use.
FORMATS: dict[str, LabelFormat] = {
    "tiff": LabelFormat(
        "TIFF",
        (".tif", ".tiff"),
        "ImageJ TIFF with the pixel size: opens in Fiji and napari. Fiji sees the axes of "
        "a stack with ids up to 65535 and not both positions and time points; for others, "
        "choose OME-TIFF. Ids over 4294967295 open in napari and Python only.",
    ),
    "ome-tiff": LabelFormat(
        "OME-TIFF",
        (".ome.tif", ".ome.tiff"),
        "OME-TIFF with the pixel size and axes: opens in QuPath, OMERO and Bio-Formats.",
    ),
    "png": LabelFormat(
        "PNG",
        (".png",),
        "8- or 16-bit PNG of one 2D image, without pixel size: an export writes a stack one "
        "file per frame (cells_P0.png, cells_P1.png …).",
    ),
    "npy": LabelFormat("NumPy", (".npy",), "NumPy array file, for Python."),
    "ome-zarr": LabelFormat(
        "OME-Zarr",
        (OME_ZARR_SUFFIX,),
        "OME-Zarr store with the pixel size, written chunk by chunk, for images larger than "
        "memory.",
        chunked=True,
    ),
}
#: The formats :func:`write_labels` writes in one piece.
FILE_FORMATS = tuple(key for key, fmt in FORMATS.items() if not fmt.chunked)
#: The formats ``cytomask segment`` writes: any image fits them, where PNG (2D, ids up
#: to 65535) would be found wrong only after segmenting.
SEGMENT_FORMATS = ("tiff", "ome-tiff", "ome-zarr")
#: Frames with more pixels are segmented chunk-wise into OME-Zarr by ``cytomask segment``.
CHUNKED_ABOVE = 64_000_000
#: The largest id Fiji and Bio-Formats (QuPath, OMERO) open: they read no 64-bit integers,
#: and OME-TIFF holds none.
LARGEST_ID_OPENED = int(np.iinfo(np.uint32).max)
#: The largest id Fiji and ImageJ open exactly from a TIFF: they hold 32-bit ids as 32-bit
#: decimals (floats), whose whole numbers are exact up to 2**24 only.
FIJI_EXACT_IDS = 2**24
#: The export's option that writes the cells numbered 1, 2, 3… (its title in the Export
#: dock), within the ids Fiji, QuPath and OMERO hold.
RENUMBER = "Renumber cells 1, 2, 3…"
#: What the notes of ids those programs do not hold advise, wherever labels are saved (File >
#: Save, the export, ``cytomask segment``): the plugin's own way to renumber them.
EXPORT_RENUMBERED = (
    f"export the labels with '{RENUMBER}' ticked (Export labels: step 5 of Segment "
    "cytoplasm, or File > IO Utilities)"
)


def format_for(path: str | os.PathLike) -> str:
    """The key in :data:`FORMATS` of the format a file name asks for.

    The longest matching ending wins, so ``.ome.tif`` is OME-TIFF, not TIFF.

    Raises
    ------
    ValueError
        For a name that ends in none of the formats' suffixes.
    """
    name = Path(path).name.lower()
    suffixes = [(suffix, key) for key, fmt in FORMATS.items() for suffix in fmt.suffixes]
    matches = [(len(suffix), key) for suffix, key in suffixes if name.endswith(suffix)]
    if not matches:
        # The formats a file is saved in (OME-Zarr is written while segmenting only).
        named = [suffix for key in FILE_FORMATS for suffix in FORMATS[key].suffixes]
        raise ValueError(
            f"Cannot tell the format of {Path(path).name!r}; use one of {', '.join(named)}."
        )
    return max(matches)[1]


def rounded_in_fiji(
    top: int, paths: Sequence[str | os.PathLike], *, renumbered: bool = False
) -> str:
    """What to say of the TIFF files among ``paths``, of labels of ids up to ``top``, whose
    ids Fiji rounds (over :data:`FIJI_EXACT_IDS`); ``""`` when there are none. Ids over
    :data:`LARGEST_ID_OPENED`, which Fiji does not open at all, :func:`label_writer` says.
    ``renumbered``: the labels are numbered 1, 2, 3… already (:data:`RENUMBER`), so that
    renumbering them is no advice."""
    tiffs = [Path(path).name for path in paths if format_for(path) in ("tiff", "ome-tiff")]
    if not tiffs or not FIJI_EXACT_IDS < top <= LARGEST_ID_OPENED:
        return ""
    one = len(tiffs) == 1
    it = "it" if one else "them"
    advice = (
        f"numbered 1, 2, 3… already, {it} {'holds' if one else 'hold'} more cells than Fiji "
        f"numbers exactly: open {it} in napari or Python"
        if renumbered
        else f"for Fiji, {EXPORT_RENUMBERED}"
    )
    return (
        f"{' and '.join(tiffs)} {'holds' if one else 'hold'} ids up to {top}: napari and "
        f"Python read {it} exactly, but Fiji and ImageJ open {it} as 32-bit decimals, which "
        f"round ids above {FIJI_EXACT_IDS:,} (two cells of nearby ids can become one); "
        f"{advice}."
    )


def format_named(name: str) -> str:
    """The key in :data:`FORMATS` of a format named by its key or a suffix (``tif``, ``.ome.tif``).

    Suffixes are what ``cytomask segment --format`` took before the keys, so
    they keep working.

    Raises
    ------
    ValueError
        For a name that is neither; the message lists the keys.
    """
    text = name.strip().lower()
    if text in FORMATS:
        return text
    for key, fmt in FORMATS.items():
        if "." + text.lstrip(".") in fmt.suffixes:
            return key
    raise ValueError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}.")


def write_labels(
    path: str | os.PathLike,
    data,
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    axis_labels: Sequence[str] | None = None,
    translate: Sequence[float] | None = None,
    positions: Sequence[tuple[float, float]] | None = None,
    position_names: Sequence[str] | None = None,
    overwrite: bool = False,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write a label image; the format follows the file name.

    Parameters
    ----------
    path
        Target file: ``.tif``/``.tiff`` (ImageJ-compatible, zlib-compressed),
        ``.ome.tif``/``.ome.tiff`` (with physical pixel sizes; a ``P`` axis
        becomes one OME image per position), ``.png`` (2D, ids up to 65535) or ``.npy``.
    data
        Integer label image (numpy or dask); 2D or a stack.
    scale, units, axis_labels
        Per-axis pixel size, unit names and axis names (as napari layers have them).
    translate
        Per-axis offset of the image in ``units`` (a napari layer's translate): OME-TIFF
        keeps that of Y and X as each plane's position; the other formats cannot hold it.
    positions
        The stage position ``(y, x)`` in µm of each index of a ``P`` axis (those of the
        scan the labels were made from): OME-TIFF keeps them as the positions of each
        position's planes (moved by ``translate``, in µm), as a microscope writes them, so
        the labels can be placed where their tiles lie. Ignored without a ``P`` axis of
        as many positions.
    position_names
        The name of each index of a ``P`` axis, as the scan names its positions ("A1 site
        3"): OME-TIFF keeps them in its images' names (else "P0", "P1" …). Ignored without
        a ``P`` axis of as many positions.
    overwrite
        Replace an existing file. Off by default: an existing file is an error.
    note
        Called with what the user should know of the file (a TIFF of ids over
        :data:`LARGEST_ID_OPENED`, which Fiji does not open, or over
        :data:`FIJI_EXACT_IDS`, which it rounds: :func:`rounded_in_fiji`); by default a
        :class:`UserWarning`.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is false.
    napari_cytomask.io.atomic.WriteError
        If the disk is full, read-only or not writable; nothing is left behind.
    napari_cytomask.labels.LabelsError
        If ``data`` is not a label image.
    ValueError
        If ``scale``, ``units`` or ``translate`` do not have one entry per axis, a
        pixel size is 0 or not finite, the format cannot hold the labels (PNG: 2D and
        ids up to 65535; OME-TIFF: ids up to 2**32 - 1 and at most 5 axes), or the
        name is not one of :data:`FILE_FORMATS`.
    """
    path = Path(path)
    writer = label_writer(
        path,
        data,
        scale=scale,
        units=units,
        axis_labels=axis_labels,
        translate=translate,
        positions=positions,
        position_names=position_names,
        note=note,
    )
    write_atomically(path, writer, overwrite=overwrite)
    return path


def label_writer(
    path: str | os.PathLike,
    data,
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    axis_labels: Sequence[str] | None = None,
    translate: Sequence[float] | None = None,
    positions: Sequence[tuple[float, float]] | None = None,
    position_names: Sequence[str] | None = None,
    note: Callable[[str], None] | None = None,
    fiji_note: bool = True,
) -> Callable[[Path], None]:
    """What :func:`write_labels` writes, checked but not written yet: ``writer(tmp)`` writes
    the file to ``tmp``. Raises every error of :func:`write_labels` but the ones of the disk,
    so that several files can be checked before the first is written. ``fiji_note=False``
    leaves the note of ids Fiji rounds (:func:`rounded_in_fiji`) to the caller, who says it
    of several files at once."""
    path = Path(path)
    fmt = format_for(path)
    if FORMATS[fmt].chunked:
        raise ValueError(
            f"Cannot save {path.name}: {FORMATS[fmt].title} is written chunk by chunk while "
            f"segmenting; use one of {', '.join(FORMATS[key].suffix for key in FILE_FORMATS)}."
        )
    labels = as_labels(data, "the label image to save")
    if labels.ndim < 2:
        raise ValueError(
            f"Cannot save {path.name}: the labels have {labels.ndim} axis(es), shape "
            f"{labels.shape}; a label image has at least 2 (Y and X)."
        )
    top = int(labels.max(initial=0))
    labels = labels.astype(min_label_dtype(top), copy=False)
    if fmt == "tiff" and top > LARGEST_ID_OPENED:
        # Written all the same: Python and napari read it back whole.
        said = (
            f"{path.name} holds ids up to {top}, which take 64 bits: napari and Python open "
            "it, but not Fiji, QuPath or OMERO, which read no 64-bit ids; for those, "
            f"{EXPORT_RENUMBERED}."
        )
        (note or partial(warnings.warn, category=UserWarning, stacklevel=3))(said)
    # From the largest id found above: a lazy layer is not read again for it.
    if fiji_note and (rounded := rounded_in_fiji(top, [path])):
        (note or partial(warnings.warn, category=UserWarning, stacklevel=3))(rounded)
    scale, units = _checked_scale(path, labels.ndim, scale, units, translate)
    axes = _axes(labels.ndim, axis_labels)
    writer: Callable[[Path], None]
    if fmt == "png":
        writer = _png_writer(labels, path.name)
    elif fmt == "npy":
        writer = _npy_writer(labels)
    elif fmt == "ome-tiff":
        writer = _ome_writer(path, labels, axes, scale, units, translate, positions, position_names)
    else:
        writer = _imagej_writer(path, labels, axes, scale, units)
    return writer


def _checked_scale(path: Path, ndim: int, scale, units, translate):
    """Scale and units with one entry per axis (and ``translate``, when given); negative
    sizes (a flipped napari layer) as their absolute value, since a pixel size has no
    direction."""
    for name, values in (("scale", scale), ("units", units), ("translate", translate)):
        if values is not None and len(values) != ndim:
            raise ValueError(
                f"Cannot save {path.name}: the labels have {ndim} axes but {name} has "
                f"{len(values)} entries ({tuple(values)}); give one per axis."
            )
    if scale is None:
        return None, units
    sizes = tuple(abs(float(v)) for v in scale)
    bad = [v for v in sizes if not math.isfinite(v) or v == 0]
    if bad:
        raise ValueError(
            f"Cannot save {path.name}: the scale {tuple(scale)} has a pixel size of {bad[0]}, "
            "which no file can store; set the layer's scale to its pixel sizes (or 1)."
        )
    return sizes, units


def _axes(ndim: int, axis_labels: Sequence[str] | None) -> str:
    """One letter per axis: the layer's single-letter labels where it has them, else Q…, then YX."""
    labels = [str(a).upper() for a in axis_labels] if axis_labels else []
    if len(labels) != ndim or ndim < 2:
        labels = ["Q"] * (ndim - 2) + ["Y", "X"]
    letters = []
    for label in labels[:-2]:
        letter = label if len(label) == 1 and label in "TZCP" and label not in letters else "Q"
        letters.append(letter)
    return "".join(letters) + "YX"


def _pixel_size(axes: str, scale, units, axis: str) -> tuple[float, str] | None:
    if scale is None or axis not in axes:
        return None
    i = axes.index(axis)
    unit = length_symbol(units[i]) if units is not None else None
    size = float(scale[i])
    if unit is None and size == 1.0:
        return None
    return size, unit or "pixel"


def _frame_interval(axes: str, scale, units) -> float | None:
    """Seconds between time points (see :func:`~napari_cytomask.io.layers.time_step`)."""
    step = time_step(axes, scale, units)
    return step[1] if step else None


def _imagej_writer(path: Path, labels, axes: str, scale, units) -> Callable[[Path], None]:
    # ImageJ knows T, Z and C only, in that order, and 8/16-bit integers; positions go on
    # the T axis, with a property that says so (for the reader, and a person in Fiji).
    positions = "P" in axes  # not Q, an axis without a name (napari's "-3")
    imagej_axes = axes.replace("P", "T").replace("Q", "T") if labels.dtype.itemsize <= 2 else None
    if imagej_axes is not None and (len(set(imagej_axes)) != len(imagej_axes) or labels.ndim > 5):
        imagej_axes = None
    if imagej_axes is not None:
        order = sorted(range(labels.ndim - 2), key=lambda i: "TZC".index(imagej_axes[i]))
        labels = labels.transpose(*order, labels.ndim - 2, labels.ndim - 1)
        imagej_axes = "".join(imagej_axes[i] for i in order) + "YX"
    x = _pixel_size(axes, scale, units, "X")
    y = _pixel_size(axes, scale, units, "Y")
    z = _pixel_size(axes, scale, units, "Z")
    if x is not None and y is not None and x[1] != y[1]:
        if not {x[1], y[1]} <= MICROMETRES.keys():
            raise ValueError(
                f"Cannot save {path.name}: the Y and X pixel sizes are in "
                f"{units[axes.index('Y')] or 'pixels'} and {units[axes.index('X')] or 'pixels'}, "
                "but a TIFF holds one unit for both; give the layer one unit for Y and X."
            )
        y = (y[0] * MICROMETRES[y[1]] / MICROMETRES[x[1]], x[1])  # in the unit of X
    calibrated = x is not None and y is not None and {x[1], y[1]} <= MICROMETRES.keys()
    # A Z step in pixels, or in no length, is no spacing.
    z_um = (
        z[0] * MICROMETRES[z[1]] if calibrated and z is not None and z[1] in MICROMETRES else None
    )
    interval = _frame_interval(axes, scale, units)
    # A scale in no length (napari's "pixel", none given) is no pixel size, as the OME-TIFF
    # and the tables take it: ImageJ read 0.65 "pixel" per pixel, and measured areas of
    # 0.42 per pixel where the tables counted 1.
    if imagej_axes is not None:
        resolution = (1 / x[0], 1 / y[0]) if calibrated else None
    else:  # a plain TIFF's resolution tags are in pixels per centimetre
        resolution = (
            (1e4 / (x[0] * MICROMETRES[x[1]]), 1e4 / (y[0] * MICROMETRES[y[1]]))
            if calibrated
            else None
        )
    # Resolution tags are fractions of 32-bit integers.
    if resolution is not None and not all(1e-6 <= r <= 4e9 for r in resolution):
        raise ValueError(
            f"Cannot save {path.name}: a TIFF cannot store a pixel size of {y[0]:g} × "
            f"{x[0]:g} {x[1]}; set the layer's scale to its pixel size (in µm, say), or save "
            "as .ome.tif."
        )

    def write(tmp: Path) -> None:
        if imagej_axes is not None:
            metadata = {"axes": imagej_axes}
            if resolution is not None:
                metadata["unit"] = "micron" if x[1] == "µm" else x[1]
            if z_um is not None:  # ImageJ's spacing is in the unit of X and Y
                metadata["spacing"] = z_um / MICROMETRES[x[1]]
            if interval is not None:  # in seconds, ImageJ's default time unit
                metadata["finterval"] = interval
            if positions:
                metadata["Properties"] = dict([IMAGEJ_POSITIONS])
            tifffile.imwrite(
                tmp,
                labels,
                imagej=True,
                metadata=metadata,
                resolution=resolution,
                photometric="minisblack",
                compression="zlib",
            )
        else:
            # ids above 65535, or axes ImageJ cannot order: a plain TIFF. Its description
            # holds the axes (positions as tifffile's R, tiles or regions: its P is a
            # phase), the Z step and the time interval.
            metadata = {"axes": axes.replace("P", "R")}
            if z_um is not None:
                metadata["spacing_um"] = z_um
            if interval is not None:
                metadata["finterval_s"] = interval
            tifffile.imwrite(
                tmp,
                labels,
                metadata=metadata,
                resolution=resolution,
                resolutionunit="CENTIMETER" if calibrated else None,
                # Grey pages: tifffile would take an axis of 3 or 4 before Y for colour.
                photometric="minisblack",
                compression="zlib",
            )

    return write


def _plane_position(units, translate) -> dict:
    """The OME plane position (``PositionY``, ``PositionYUnit`` …) of an image whose Y and
    X axes are moved by ``translate``, as the reader takes stage positions: in the units
    of those axes. Empty when it is not moved, or its units are no lengths."""
    if translate is None or units is None or not any(translate[-2:]):
        return {}
    position = {}
    for axis, offset, unit in zip("YX", translate[-2:], units[-2:], strict=True):
        symbol = length_symbol(unit)
        if symbol is None:
            return {}
        position[f"Position{axis}"], position[f"Position{axis}Unit"] = float(offset), symbol
    return position


def _ome_writer(
    path: Path, labels: np.ndarray, axes: str, scale, units, translate, stage=None, named=None
) -> Callable[[Path], None]:
    top = int(labels.max(initial=0))
    if top > LARGEST_ID_OPENED:
        raise ValueError(
            f"Cannot save {path.name}: OME-TIFF holds ids up to {LARGEST_ID_OPENED} but the "
            f"labels go up to {top}; {EXPORT_RENUMBERED}, or save them as .npy or .tif, "
            "which only napari and Python open with ids this large."
        )
    metadata: dict = {}
    for axis, key in (("X", "PhysicalSizeX"), ("Y", "PhysicalSizeY"), ("Z", "PhysicalSizeZ")):
        size = _pixel_size(axes, scale, units, axis)
        if size is not None and size[1] != "pixel":
            metadata[key], metadata[key + "Unit"] = size
    interval = _frame_interval(axes, scale, units)
    if interval is not None:
        metadata["TimeIncrement"], metadata["TimeIncrementUnit"] = interval, "s"
    positions = axes.index("P") if "P" in axes else None
    stack_axes = axes.replace("P", "")[:-2]
    if len(stack_axes) > 3:
        raise ValueError(
            f"Cannot save {path.name}: OME-TIFF holds at most 3 axes besides Y and X (T, C, Z) "
            f"and the positions, but these labels have {len(stack_axes)}; save them as .tif "
            "or .npy."
        )
    # OME axes are T, C, Z, Y, X: axes without an OME name (napari's "-4", "-3" …)
    # take the names the others leave free.
    free = [a for a in "TZC" if a not in stack_axes]
    series_axes = "".join(a if a in "TCZ" else free.pop(0) for a in stack_axes) + "YX"
    stacks = [labels] if positions is None else list(np.moveaxis(labels, positions, 0))
    # The image's name in QuPath and OMERO: which position, as the scan names it (read
    # back as that position's name), else the file's and the position counted from 0, as
    # the PNG files, the CSV's `p` and napari's slider count them.
    stem = file_stem(path)
    names = [stem] if positions is None else [f"{stem} P{i}" for i in range(len(stacks))]
    if positions is not None and named is not None and len(named) == len(stacks):
        names = list(named)
    # Where the image lies (a tile's stage position, the half pixel a result of a coarser
    # level is moved by), on every plane; each position at its stage position, given.
    planes = int(np.prod(stacks[0].shape[:-2]))
    placed = [_plane_position(units, translate)] * len(stacks)
    if stage is not None and "P" in axes and len(stage) == len(stacks):
        offset = offset_um(translate, units)
        placed = [
            {"PositionY": float(y + offset[0]), "PositionYUnit": "µm",
             "PositionX": float(x + offset[1]), "PositionXUnit": "µm"}
            for y, x in stage
        ]  # fmt: skip
    planes_of = [
        {"Plane": {key: [value] * planes for key, value in where.items()}} if where else {}
        for where in placed
    ]

    def write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp, ome=True, bigtiff=labels.nbytes > 2**31) as tif:
            for name, stack, plane in zip(names, stacks, planes_of, strict=True):
                tif.write(
                    stack,
                    photometric="minisblack",
                    compression="zlib",
                    metadata={"axes": series_axes, "Name": name, **metadata, **plane},
                )

    return write


def _npy_writer(labels: np.ndarray) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        # Through a handle: given a name, np.save would append ".npy" to the temporary name.
        with open(tmp, "wb") as fh:
            np.save(fh, labels, allow_pickle=False)

    return write


def _check_png(labels, name: str) -> None:
    """Raise ``ValueError`` unless PNG can hold ``labels`` (2D, ids up to 65535), naming
    the file ``name`` (of the layer's name, among several exported)."""
    if np.ndim(labels) != 2:
        raise ValueError(
            f"Cannot save {name}: PNG holds one 2D image but the labels have shape "
            f"{np.shape(labels)}; save stacks as TIFF, OME-TIFF or NumPy."
        )
    top = int(np.max(labels, initial=0))
    if top > 65535:
        raise ValueError(
            f"Cannot save {name}: PNG holds ids up to 65535 but the labels go up to {top}; "
            "save them as TIFF, OME-TIFF or NumPy."
        )


def _png_writer(labels: np.ndarray, name: str) -> Callable[[Path], None]:
    _check_png(labels, name)

    def write(tmp: Path) -> None:
        import imageio.v3 as iio

        iio.imwrite(tmp, labels, extension=".png")

    return write
