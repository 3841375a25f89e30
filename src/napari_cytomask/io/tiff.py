"""Reading TIFF scans as lazy napari layers, one layer per channel.

Built on tifffile. Axes, channel names, colours, pixel sizes and stage positions
come from OME-XML, ImageJ and Micro-Manager metadata, Vectra QPTIFF page XML, the
Aperio SVS description and TIFF resolution tags (only where they give a pixel size
a microscope can have); a single unnamed channel is named after its file. Several
series of the same shape (one OME Image per stage position) and tifffile's tile axes
become one position axis ``P``; with stage positions, the tiles can also be stitched
into one mosaic per channel. Pixels are read through tifffile's Zarr store and dask,
so opening a file reads only its metadata and a small crop of one plane per channel.

This module never imports Qt: the napari reader, the widgets and the command line
all call it.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import math
import os
import re
import stat
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr
from dask import delayed
from dask.base import tokenize

from .layers import (
    FRAME_NOUNS,
    METADATA_KEY,
    PIXEL_SIZE_RANGE_UM,
    SECONDS,
    Channel,
    Scan,
    frame_axes,
    in_micrometres,
    lit_beside_dark,
    looks_like_masks,
    named_as_masks,
    normalise_unit,
    plane_sample,
    roles_and_contrast,
    sample_levels,
    stack_sample,
)
from .mosaic import stitch, tile_groups, tile_offsets

#: A napari layer data tuple ``(data, kwargs, layer_type)``.
LayerData = tuple[Any, dict, str]

#: The first four bytes of classic and BigTIFF files, little- and big-endian.
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
#: Suffixes of the TIFF files the plugin opens (lower case; ``.ome.tif`` ends in ``.tif``):
#: plain and BigTIFF, Vectra QPTIFF, Aperio SVS, Hamamatsu NDPI and Leica SCN slides.
#: napari's reader patterns, folder scans and the command line all use this list;
#: whether a file really is a TIFF is decided by its first bytes (:func:`is_tiff`).
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf2", ".tf8", ".qptiff", ".svs", ".ndpi", ".scn")
#: Label of the stage position (tile) axis.
POSITION_AXIS = "P"
#: The ImageJ property that says a file's frames are stage positions (tiles), not time
#: points: ImageJ has no position axis, so they go on its T axis (Image > Show Info shows it).
IMAGEJ_POSITIONS = ("frames", "positions")
#: Unit of every physical size and stage position the reader reports.
UNIT = "µm"

# tifffile's tile and mosaic axes are stage positions; its "P" (phase) would
# collide with the position axis, so it becomes "F".
_AXIS_LABELS = {"R": POSITION_AXIS, "M": POSITION_AXIS, "P": "F"}
#: Series kinds whose "P" is a stage position, not OME's phase: Zeiss LSM's (tifffile's docs
#: say so), and tifffile's own files, whose axes their writer named (``axes="PCYX"``).
_P_IS_POSITION = ("lsm", "shaped")
#: The samples of a colour picture's pixel, by name, and the colormap each is shown in.
COLOUR_SAMPLES = (("red", "red"), ("green", "green"), ("blue", "blue"), ("alpha", "gray"))
_SPATIAL = ("Z", "Y", "X")
# Micrometres per TIFF ResolutionUnit: inch, centimetre, millimetre, micrometre. A file
# without the tag is in inches (the TIFF default); 1 (no unit) gives no size.
_RESUNIT_UM = {2: 25400.0, 3: 1e4, 4: 1e3, 5: 1.0}
#: Pixels per inch that editors, printers and scanners write (a figure exported at 600
#: dpi, a scan at 1200): inside that range (42.3 and 21.2 µm), and no calibration either.
_EDITOR_DPI = frozenset({100, 200, 240, 360, 400, 600, 720, 800, 1200, 1440, 2400, 2880, 4800})
#: Times between time points, in seconds, that a time-lapse has: from a fast camera's
#: nanoseconds to a year; a file saying otherwise gives no interval.
FRAME_INTERVAL_RANGE_S = (1e-9, 3.2e7)
#: Largest Z step, in micrometres, taken from a plain TIFF's description (1 cm).
_MAX_Z_STEP_UM = 1e4
#: Largest ratio between the X and Y pixel size taken from a file; a scan with
#: pixels more unequal than this has tags that were not written for it.
_MAX_PIXEL_ASPECT = 4.0
_COLOURS = {
    (True, False, False): "red",
    (False, True, False): "green",
    (False, False, True): "blue",
    (False, True, True): "cyan",
    (True, False, True): "magenta",
    (True, True, False): "yellow",
    (True, True, True): "gray",
}
# What tifffile logs, instead of raising, when a file's structure is broken: the
# chain of pages breaks off or loops back, strips are missing, or the metadata
# promise planes the file does not hold. tifffile then returns fewer planes or
# zero-filled ones, so each of these is an error here.
_CORRUPTION = re.compile(
    r"invalid page offset|invalid offset to first page|invalid next page|circular reference"
    r"|missing \d+ (?:pages|frames)|expected \d+ frames, got|corrupted (?:file|tag list)"
    r"|incorrect Strip\w+ count|expected \d+ segments|failed to read \d+ bytes"
    r"|invalid TiffData index|index out of range|series is missing files"
    r"|series failed to read|Missing data are zeroed"
    # The description (tag 270) past the end: an OME-TIFF cut off before its metadata.
    # Other tags past the end (a private one, say) leave the image readable.
    r"|TiffTag 270 @\d+> invalid value offset",
    re.I,
)
#: Largest ratio of decoded to stored bytes each compression can reach (zlib's
#: limit is 1032:1, PackBits' 64:1, LZW's about 2730:1 with 12-bit codes); a
#: header promising more is corrupt, and trusting it would allocate memory the
#: file cannot fill.
_MAX_RATIO = {1: 1, 5: 4096, 8: 1100, 32946: 1100, 32773: 130}
#: Most pages per series whose pixel data are checked to lie inside the file.
_PAGES_CHECKED = 64
#: Least share of its plane that a mosaic of separate groups of tiles must fill.
MIN_MOSAIC_COVER = 0.25
_IMAGEJ_COLOURS = ("red", "green", "blue", "gray", "cyan", "magenta", "yellow")
#: What is wrong with a file of 0 bytes, whatever it is named.
EMPTY_FILE = "it is empty (0 bytes): it was not saved or copied completely"
_BINARY_ONLY = re.compile(r"<(?:\w+:)?BinaryOnly\b[^>]*?\bMetadataFile=\"([^\"]+)\"")


class TiffReadError(ValueError):
    """A TIFF file that cannot be read; the message names the file and the problem.

    Parameters
    ----------
    path
        The file.
    problem
        What is wrong with it, as a sentence fragment.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"Cannot read TIFF file {self.path}: {problem}")

    def __reduce__(self):
        # Rebuilt from its parts when a worker process sends it back.
        return type(self), (self.path, self.problem)


class NotOneStack(TiffReadError):
    """Files that *Open Files as Stack* cannot put into one stack; the message starts with
    that, as napari's notification shows only its beginning."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(path, problem)
        self.args = (f"These files cannot be one stack: {Path(path).name} {problem}",)


class MosaicUnavailable(TiffReadError):
    """A mosaic was asked for a file whose tiles cannot be stitched into one plane: it has
    no stage positions and pixel size to stitch by, or its positions lie far apart."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(path, problem)


class FileChanged(TiffReadError):
    """A file written over, or moved away, after it was opened: its pixels are read when
    they are shown or segmented, and would no longer be those of the file that was opened
    (another field, or bytes that fail to decode). The message starts with the file."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(path, problem)
        self.args = (f"{self.path} changed on disk after it was opened ({problem}); open it again",)


@dataclass(frozen=True)
class TiffDescription:
    """What a TIFF scan holds, from its metadata alone.

    Attributes
    ----------
    path
        The file opened.
    kind
        tifffile's series kind (``"ome"``, ``"imagej"``, ``"mmstack"``, ``"shaped"``,
        ``"uniform"``, ``"generic"`` …).
    axes
        Axis labels in napari order: ``P`` (stage position) first, then other
        stack axes, ``T``, ``C``, ``Z``, ``Y``, ``X``, and ``S`` for RGB samples.
    shape
        Size of each axis in ``axes``.
    dtype
        Pixel data type (native byte order).
    channel_names
        One name per channel layer: from the metadata, else ``C1`` … ``Cn``, or the
        file's name (without ``.ome.tif`` and the like) for a single layer.
    pixel_size
        Physical size in micrometres of the axes that have one (``Z``, ``Y``, ``X``).
    frame_interval
        Seconds between time points (``T``), when the metadata says.
    positions
        Stage position ``(y, x)`` in micrometres of each position, or ``None``
        when the file has a single position or does not say where they are.
    position_names
        The name of each position (an OME Image's, a Micro-Manager position's label: "A1
        site 3"), or ``None`` when the file has a single position or names them not all,
        or all alike.
    series
        Indices of tifffile series stacked into the position axis (or the one used).
    original_axes
        tifffile's axes of one series.
    levels
        Number of pyramid levels (1 unless pyramidal).
    rgb
        True for 8-bit RGB(A) images, which open as one RGB layer.
    colours
        True for the colours of a 16-bit or decimal colour picture, which open as its
        red, green and blue (and alpha) channels.
    metadata_file
        The file the OME-XML came from, when it is not ``path`` (multi-file OME-TIFF).
    channel_colors
        Colormap name per channel from the metadata, ``None`` where it gives none.
    """

    path: str
    kind: str
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    channel_names: tuple[str, ...]
    pixel_size: dict[str, float]
    positions: tuple[tuple[float, float], ...] | None
    series: tuple[int, ...]
    original_axes: str
    levels: int
    rgb: bool
    colours: bool = False
    metadata_file: str | None = None
    channel_colors: tuple[str | None, ...] = field(default=(), repr=False)
    frame_interval: float | None = None
    position_names: tuple[str, ...] | None = None

    @property
    def layer_axes(self) -> tuple[str, ...]:
        """Axis labels of each layer: ``axes`` without the channel and sample axes."""
        return tuple(a for a in self.axes if a not in ("C", "S"))

    @property
    def n_positions(self) -> int:
        """Size of the position axis (1 without one)."""
        return self.shape[self.axes.index(POSITION_AXIS)] if POSITION_AXIS in self.axes else 1

    @property
    def mosaic_problem(self) -> str | None:
        """Why the tiles cannot be stitched (what of several positions, their stage
        positions and a pixel size it lacks), or None when they can."""
        if self.n_positions < 2:
            return "it holds a single position: there are no tiles to stitch"
        lacks = [
            what
            for what, missing in (
                ("stage positions", self.positions is None or len(self.positions) < 2),
                ("pixel size", "Y" not in self.pixel_size or "X" not in self.pixel_size),
            )
            if missing
        ]
        return f"it has no {' and no '.join(lacks)} to stitch its tiles by" if lacks else None


def is_tiff(path: str | os.PathLike) -> bool:
    """Whether a regular file starts with a TIFF or BigTIFF signature.

    Parameters
    ----------
    path
        Any path; directories, pipes, devices and unreadable files give False
        (without opening them: opening a FIFO would wait for a writer).

    Returns
    -------
    bool
    """
    if not is_regular_file(path):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in TIFF_MAGIC
    except OSError:
        return False


def named_like_tiff(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file named like a TIFF, whatever it holds (one this
    user may not read, which :func:`is_tiff` cannot tell from a file of another kind, or
    another kind of file renamed)."""
    return os.fspath(path).lower().endswith(TIFF_SUFFIXES) and is_regular_file(path)


def is_regular_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file (not a folder, pipe, socket or device).

    Checked with ``stat``, which never blocks, before a file is opened.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def is_empty_file(path: str | os.PathLike) -> bool:
    """Whether the regular file ``path`` holds no byte. A file the system makes as it is
    read (those of ``/proc``) says it has 0 bytes, yet has some: one byte is read to tell."""
    if os.path.getsize(path):
        return False
    with open(path, "rb") as file:
        return not file.read(1)


def describe_tiff(path: str | os.PathLike) -> TiffDescription:
    """Axes, shape, channel names, pixel sizes and positions of a TIFF scan.

    Reads metadata only, no pixels.

    Parameters
    ----------
    path
        A TIFF, OME-TIFF, ImageJ or Micro-Manager file.

    Returns
    -------
    TiffDescription

    Raises
    ------
    TiffReadError
        When the file cannot be parsed or is truncated.
    """
    with TiffScan(path) as scan:
        return scan.description


def read_tiff_array(path: str | os.PathLike) -> np.ndarray:
    """A TIFF's image in memory, after the reader's checks: its first series, or all its
    positions when its series are positions of one scan (as the reader opens them).

    Parameters
    ----------
    path
        A TIFF file, e.g. a label image.

    Returns
    -------
    numpy.ndarray
        In tifffile's axis order (as ``tifffile.imread``), after a position axis
        when there are several positions.

    Raises
    ------
    TiffReadError
        When the file is not a TIFF, is truncated or corrupt; the message names it.
    """
    with TiffScan(path) as scan:
        return scan.series_array()


def open_tiff(path: str | os.PathLike, *, mosaic: bool = False) -> Scan:
    """A TIFF scan's channels, lazily loaded, with their axes, scale and metadata.

    Parameters
    ----------
    path
        A TIFF, OME-TIFF, ImageJ, Micro-Manager, QPTIFF or whole-slide file.
    mosaic
        Stitch the stage positions into one mosaic per channel instead of
        keeping them as a position axis.

    Returns
    -------
    Scan
        Channels hold dask arrays (a list of them, largest first, for pyramidal
        files) that read the file on demand, so the file stays open while they
        are used.

    Raises
    ------
    TiffReadError
        When the file cannot be parsed, is truncated, or a mosaic is asked for
        a file without stage positions and pixel sizes.
    """
    scan = TiffScan(path)
    try:
        return scan.scan(mosaic=mosaic)
    except TiffReadError:
        scan.close()
        raise
    except Exception as exc:
        scan.close()
        raise TiffReadError(scan.path, _problem(exc)) from exc
    except BaseException:
        scan.close()
        raise


def read_tiff(path: str | os.PathLike, *, mosaic: bool = False) -> list[LayerData]:
    """napari layer data tuples for a TIFF scan, one per channel (see :func:`open_tiff`).

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)``: ``"image"`` layers with colormaps and
        contrast limits, ``"labels"`` for mask channels.
    """
    return open_tiff(path, mosaic=mosaic).layer_data()


def read_tiff_stack(paths: Sequence[str | os.PathLike]) -> list[LayerData]:
    """Several TIFFs as one stack (napari's *Open Files as Stack*): each channel's layer
    gets a first axis with one plane per file, read lazily.

    The first file gives the layers' names, roles and calibration. Every file is
    checked, then closed: a plane is read from its file when it is shown, so a stack
    of thousands of files holds no file open.

    Raises
    ------
    TiffReadError
        When a file is unreadable; :class:`NotOneStack` when it holds other channels,
        shapes or pixel types than the first, records another pixel size, or is named as
        masks where the first is not, or the other way round (the message names both).
    """
    files = [os.fspath(path) for path in paths]
    stems = [file_stem(path) for path in files]
    masks = [named_as_masks(stem) for stem in stems]
    if len(set(masks)) > 1:
        # Cellpose's folder, an image beside its masks, was one image stack: the masks
        # shown, and segmented, as a phase plane.
        other = files[masks.index(not masks[0])]
        named = "is not named as masks (…_masks)" if masks[0] else "is named as masks (…_masks)"
        raise NotOneStack(
            other,
            f"{named}, unlike {Path(files[0]).name}: an image and its masks are not one "
            "stack. Open the files one by one, or stack the images and their masks apart.",
        )
    scan = open_tiff(files[0])
    own_names = [None if c.named_after_file else c.name for c in scan.channels]
    others = [_file_layout(path) for path in files[1:]]
    layouts = [_layout([c.data for c in scan.channels], own_names)]
    layouts += [layout for layout, _, _ in others]
    if any(shape is None for shape, *_ in layouts[0]):
        raise NotOneStack(
            files[0], "is a pyramid (several resolutions); open the files one by one."
        )
    for path, channels in zip(files[1:], layouts[1:], strict=True):
        if channels != layouts[0]:
            raise NotOneStack(
                path,
                f"holds {_describe(channels)}, while {Path(files[0]).name} holds "
                f"{_describe(layouts[0])}. "
                "Open the files one by one, or save them with the same channels.",
            )
    pixel = dict(scan.metadata.get("pixel_size_um") or {})
    for path, (_, other, _) in zip(files[1:], others, strict=True):
        if not _same_pixels(other, pixel):
            # Given the first file's, a 20x image's cells measured 4 times too small in µm².
            raise NotOneStack(
                path,
                f"records a pixel size of {_pixel_words(other)}, while {Path(files[0]).name} "
                f"records {_pixel_words(pixel)}: one stack has one pixel size. Open the "
                "files one by one, or stack those taken at one magnification.",
            )
    # A source of its own (the first file may be open on its own too), named so that
    # the file column of step 1 reads "P1_T0 to P1_T9 (10 files)".
    source = os.path.join(
        os.path.dirname(files[0]), f"{stems[0]} to {stems[-1]} ({len(files)} files)"
    )
    stacked = []
    # Layers come images first, masks over them: each is its channel's by its index.
    place = {channel.index: i for i, channel in enumerate(scan.channels)}
    for data, kwargs, kind in scan.layer_data():
        i = place[kwargs["metadata"][METADATA_KEY]["channel_index"]]
        channel = scan.channels[i]
        kwargs = dict(kwargs)
        if channel.named_after_file:
            kwargs["name"] = f"{stems[0]} to {stems[-1]}"
        # The new axis counts files: one step each, no unit, starting at 0.
        for key, value in (("scale", 1.0), ("units", "pixel"), ("translate", 0.0),
                           ("axis_labels", "file")):  # fmt: skip
            if key in kwargs:
                kwargs[key] = (value, *kwargs[key])
        info = dict(kwargs["metadata"][METADATA_KEY], source=source, stacked_files=files)
        info["axes"] = "F" + info.get("axes", "")
        kwargs["metadata"] = {**kwargs["metadata"], METADATA_KEY: info}
        planes = [data] + [
            da.from_delayed(delayed(_read_channel)(path, opened, i), data.shape, dtype=data.dtype)
            for path, (_, _, opened) in zip(files[1:], others, strict=True)
        ]
        stacked.append((da.stack([da.asarray(plane) for plane in planes]), kwargs, kind))
    return stacked


def _frames_are_positions(tif: tifffile.TiffFile) -> bool:
    """Whether an ImageJ file's T axis holds stage positions, as the plugin's writer marks
    it (:data:`IMAGEJ_POSITIONS`)."""
    key, value = IMAGEJ_POSITIONS
    properties = (tif.imagej_metadata or {}).get("Properties") if tif.is_imagej else None
    return isinstance(properties, dict) and properties.get(key) == value


def _layout(arrays: list, names: list[str | None]) -> list[tuple]:
    """Each channel's shape (None for a pyramid, a list of levels), pixel type and own
    name (None when it is named after its file). Not its role: the first file's roles
    are taken for all, as a time point may look like a mask."""
    return [
        (
            None if isinstance(data, list) else data.shape,
            str((data[0] if isinstance(data, list) else data).dtype),
            name,
        )
        for data, name in zip(arrays, names, strict=True)
    ]


def _file_layout(path: str) -> tuple[list[tuple], dict[str, float], _FileState]:
    """:func:`_layout` of a file, from its metadata alone, its pixel size and the file's
    state then; the file is closed after."""
    with TiffScan(path) as tiff:
        layout = _layout(tiff.channel_arrays(), tiff.channel_names())
        return layout, dict(tiff.description.pixel_size), tiff._opened


def _read_channel(path: str, opened: _FileState, index: int) -> np.ndarray:
    """Channel ``index`` of a file, read whole, unless it changed since it was ``opened``;
    the file is closed after."""
    opened.check()
    with TiffScan(path) as tiff:
        return np.asarray(tiff.channel_arrays()[index])


def _same_pixels(one: dict[str, float], other: dict[str, float]) -> bool:
    """Whether two pixel sizes (by axis) are the same in Y and X: a Z step of its own
    leaves areas in µm² as they are."""
    for axis in ("Y", "X"):
        if (axis in one) != (axis in other):
            return False
        if axis in one and not math.isclose(one[axis], other[axis], rel_tol=1e-6):
            return False
    return True


def _pixel_words(pixel: dict[str, float]) -> str:
    """``"0.65 µm"``, ``"0.5 x 0.6 µm"`` (Y x X), or ``"none"``."""
    sizes = [pixel[a] for a in ("Y", "X") if a in pixel]
    if not sizes:
        return "none"
    return f"{sizes[0]:g} µm" if len(set(sizes)) == 1 else f"{sizes[0]:g} x {sizes[1]:g} µm"


def _describe(channels: list[tuple]) -> str:
    """``"2 channel(s) (BF, Mask) of 64 x 64 uint16"``."""
    sizes = {" x ".join(map(str, shape)) + f" {dtype}" if shape else "pyramid"
             for shape, dtype, _ in channels}  # fmt: skip
    names = [name for _, _, name in channels if name]
    named = f" ({', '.join(names)})" if names else ""
    return f"{len(channels)} channel(s){named} of {', '.join(sorted(sizes))}"


class TiffScan:
    """An open TIFF scan: its description, lazy channel arrays and layers.

    Parameters
    ----------
    path
        A TIFF, OME-TIFF, ImageJ or Micro-Manager file.

    Raises
    ------
    TiffReadError
        When the file cannot be parsed or is truncated.

    Notes
    -----
    The arrays made by :meth:`channels` and :meth:`scan` read from the
    open file; :meth:`close` only when they are no longer used.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._zarr: list[zarr.Array] | None = None
        self._direct: list[Any] | None = None
        with _TiffProblems() as problems:
            try:
                self._tif, metadata_file = _open(self.path)
            except TiffReadError:
                raise
            except Exception as exc:
                problems.check(self.path)  # what tifffile logged says more
                raise TiffReadError(self.path, _problem(exc)) from exc
            try:
                # What the pixels read later are checked against: they are this file's.
                self._opened = _FileState.of(self._tif.filehandle.path)
                self._init(metadata_file)
                problems.check(self.path)
                # Of a file that opens, not a refused one: a file cut short lost its
                # metadata too, which was said before it was refused as cut short.
                _warn_ome_lost(self.path, self._tif)
                _warn_uncounted(self.path, self._tif)
            except TiffReadError:
                self.close()
                # A file without readable pages says more as "truncated".
                problems.check(self.path)
                raise
            except Exception as exc:
                self.close()
                problems.check(self.path)
                raise TiffReadError(self.path, _problem(exc)) from exc

    def __enter__(self) -> TiffScan:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and the other files of a multi-file OME-TIFF); its memory maps
        close once the arrays made of them are dropped."""
        self._tif.close()
        self._direct = None

    def _init(self, metadata_file: str | None) -> None:
        tif = self._tif
        _check_planes_counted(self.path, tif)
        if not tif.series:
            raise TiffReadError(self.path, "it contains no image data")
        self._series_indices = _same_series(tif.series)
        self._series = [tif.series[i] for i in self._series_indices]
        first = self._series[0]
        _check_not_interleaved(self.path, tif.series, self._series_indices)
        _warn_left_out(self.path, tif.series, self._series_indices)
        _check_complete(self.path, self._series)

        self._stacked = len(self._series) > 1
        renamed = _AXIS_LABELS
        if first.kind in _P_IS_POSITION and not {"R", "M"} & set(first.axes):
            renamed = {**_AXIS_LABELS, "P": POSITION_AXIS}
        in_labels = _unique([renamed.get(a, a) for a in first.axes])
        if _frames_are_positions(tif):
            in_labels = [POSITION_AXIS if a == "T" else a for a in in_labels]
        in_shape = list(first.shape)
        if self._stacked:
            in_labels.insert(0, POSITION_AXIS)
            in_shape.insert(0, len(self._series))
        unnamed = None if self._stacked else _unnamed_axes(first)
        if unnamed is not None:
            # A tile scan of a few channels saved without axes: [phase, mask] at 3 positions
            # opened as one labels layer on sliders "Q" and "A".
            in_labels[:2] = unnamed
        keyframe = first.keyframe
        # ImageJ saves a stack made of single images as Z (or T) planes.
        planes = _plane_kinds(
            first, in_labels, ("I", "Q", "S", "Z", "T") if tif.is_imagej else ("I", "Q", "S")
        )
        # Positions of a few channels saved without metadata repeat one order of kinds.
        self._regroup = _regrouping(planes)
        if self._regroup is None and len(planes) > _KIND_PAGES:
            planes = []  # a longer stack is taken as planes of one kind
        kinds = {kind for kind, _ in planes if kind is not None}
        # Colour planes stored apart that all hold label ids are a labels stack that
        # tifffile (as napari's own writer) saved as 8-bit RGB, not a picture.
        planes_of_ids = kinds == {True} and keyframe.planarconfig == tifffile.PLANARCONFIG.SEPARATE
        colour_picture = (
            not planes_of_ids
            and "S" in in_labels
            and (
                keyframe.photometric == tifffile.PHOTOMETRIC.RGB
                # JPEG stores colour as YCbCr, which tifffile decodes to RGB.
                or (
                    keyframe.photometric == tifffile.PHOTOMETRIC.YCBCR
                    and keyframe.compression == tifffile.COMPRESSION.JPEG
                )
            )
            and in_shape[in_labels.index("S")] in (3, 4)
        )
        self._rgb = colour_picture and first.dtype == np.uint8
        # Label ids beside images, or images unlike each other (phase contrast and
        # fluorescence), are channels: not the planes of one stack, nor colours.
        unlike = kinds == {False} and not _alike([s for k, s in planes if k is not None])
        colour_channels = False  # the red, green and blue of a 16-bit or decimal picture
        if "S" in in_labels and not self._rgb and "C" not in in_labels:
            # Samples that are not 8-bit colour (ImageJ composites stored as one 16-bit
            # page with 3 samples) are channels; unless all hold label ids: a labels stack
            # saved by tifffile, as napari's own writer does, is one layer, not masks alone.
            in_labels[in_labels.index("S")] = "Q" if kinds == {True} else "C"
            colour_channels = colour_picture and kinds <= {False} and not unlike
        elif in_labels[0] != "S" and (
            len(kinds) > 1
            # Unnamed pages; not the frames or slices an ImageJ file declares.
            or (in_labels[0] in ("I", "Q") and unlike)
        ):
            # Pages without metadata that are not all of one kind (label ids and images
            # of light), or images unlike each other (phase contrast and fluorescence),
            # are channels, not the planes of one stack.
            in_labels[0] = "C"
        if self._regroup is not None:
            # Images alone, in turn, are channels of the frames (or slices) an ImageJ stack
            # declares, as Fiji's Stack to Hyperstack would make them; with masks among
            # them, of positions: fields put in one stack, each with its mask.
            images_only = kinds == {False} and in_labels[0] in ("Z", "T")
            in_labels = [in_labels[0] if images_only else POSITION_AXIS, "C", *in_labels[1:]]
            in_shape = [*self._regroup.shape, *in_shape[1:]]
            # The samples of a page were positions of channels, not red, green and blue:
            # [phase, mask, phase, mask] was named "red" (phase) and "green" (mask).
            colour_channels = False
        self._in_labels = in_labels
        labels = _napari_order(in_labels)
        self._perm = [in_labels.index(label) for label in labels]
        self._labels = labels
        shape = tuple(int(in_shape[i]) for i in self._perm)
        sizes = dict(zip(labels, shape, strict=True))
        n_channels = sizes.get("C", 1)
        if unnamed is not None or self._regroup is not None:
            _warn_axes_told(self.path, sizes)
        # Channel layers are (C, S) pairs: S only splits further when both exist.
        split_samples = "S" in sizes and not self._rgb
        self._channel_keys = [
            (c, s) for c in range(n_channels) for s in range(sizes["S"] if split_samples else 1)
        ]

        meta = _Metadata.collect(tif, self._series_indices, first, sizes)
        self._channel_orders = meta.channel_orders
        # A single layer the metadata leaves unnamed takes the file's name, so
        # that files opened together say which layer came from where.
        given = _metadata_names(meta.names, n_channels)
        self._named_after_file = len(self._channel_keys) == 1 and given == [None]
        if self._named_after_file:
            names = [file_stem(self.path)]
        else:
            names = [name or f"C{i + 1}" for i, name in enumerate(given)]
        colors = meta.colors if len(meta.colors) == n_channels else [None] * n_channels
        if colour_channels and given == [None] * n_channels and colors == [None] * n_channels:
            # Named and coloured as a PNG's colours are (open_scan): red was shown green.
            samples = COLOUR_SAMPLES[:n_channels]
            names = [f"{file_stem(self.path)} {sample}" for sample, _ in samples]
            colors = [colormap for _, colormap in samples]
        if split_samples:
            names = [f"{names[c]}-{s + 1}" for c, s in self._channel_keys]
            colors = [None] * len(self._channel_keys)

        self.description = TiffDescription(
            path=self.path,
            kind=str(first.kind),
            axes="".join(labels),
            shape=shape,
            dtype=np.dtype(first.dtype).newbyteorder("="),
            channel_names=tuple(names),
            pixel_size=meta.pixel_size,
            positions=meta.positions,
            position_names=meta.position_names,
            series=tuple(self._series_indices),
            original_axes=first.axes,
            levels=len(first.levels),
            rgb=self._rgb,
            colours=colour_channels,
            metadata_file=metadata_file,
            channel_colors=tuple(colors),
            frame_interval=meta.frame_interval if "T" in labels else None,
        )

    # -- pixels -------------------------------------------------------------

    def _zarr_arrays(self, level: int = 0) -> list[zarr.Array]:
        # Strips are often one row high: a chunk per strip would cost a Zarr
        # request per row, so striped pages are read whole (chunkmode 2).
        arrays = [
            zarr.open_array(
                s.aszarr(level=level, chunkmode=0 if s.levels[level].keyframe.is_tiled else 2),
                mode="r",
            )
            for s in self._series
        ]
        if self._regroup is not None:
            arrays = [_Regrouped(z, self._regroup) for z in arrays]
        if level == 0:
            self._zarr = arrays
        return arrays

    def _level_array(self, level: int) -> da.Array:
        """One pyramid level in napari axis order, channels included."""
        arrays = self._zarr if level == 0 and self._zarr else self._zarr_arrays(level)
        arrays = self._in_first_order(arrays)
        series_labels = self._in_labels[1:] if self._stacked else self._in_labels
        opened = self._opened
        parts = [
            da.from_array(
                _NamedErrors(z, self.path, opened),
                chunks=_dask_chunks(z.shape, z.chunks, series_labels),
                asarray=True,
                fancy=False,
                name="cytomask-tiff-"
                + tokenize(self.path, opened.mtime_ns, opened.size, index, level),
            )
            for index, z in zip(self._series_indices, arrays, strict=True)
        ]
        stacked = da.stack(parts, axis=0) if self._stacked else parts[0]
        return stacked.transpose(self._perm)

    def _direct_arrays(self) -> list[Any]:
        """Per series, a memory map when its pixels lie uncompressed in one block.

        A strip or tile is the smallest read through Zarr, and uncompressed
        files often store a whole plane as one strip; a memory map reads only
        the pixels asked for, which keeps samples and mosaic blocks cheap.
        """
        if self._direct is None:
            zarrs = self._zarr if self._zarr is not None else self._zarr_arrays(0)
            fh = self._tif.filehandle
            self._direct = []
            for series, z in zip(self._series, zarrs, strict=True):
                key = series.keyframe
                offset = series.dataoffset
                direct = (
                    offset is not None
                    and series.parent is self._tif
                    and fh.is_file
                    and key.is_memmappable
                    and key.bitspersample == series.dtype.itemsize * 8
                )
                if direct:
                    dtype = np.dtype(series.dtype).newbyteorder(self._tif.byteorder)
                    z = np.memmap(
                        fh.path,
                        dtype=dtype,
                        mode="r",
                        offset=offset,
                        shape=series.shape,
                    )
                    if self._regroup is not None:
                        z = _Regrouped(z, self._regroup)
                self._direct.append(z)
        return self._direct

    def series_array(self) -> np.ndarray:
        """The pixels of the scan's series in memory, in tifffile's axis order: of its one
        series, or of every position, stacked along a first axis.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        TiffReadError
            When the pixel data cannot be decoded.
        """
        with _decoding(self.path):
            if len(self._series) == 1:
                return self._series[0].asarray()
            arrays = self._in_first_order([series.asarray() for series in self._series])
            return np.stack([np.asarray(array[()]) for array in arrays])

    def _in_first_order(self, arrays: list) -> list:
        """Each series' array, one per position, with its channels in the first's order:
        a position that lists them as Mask, Phase showed its mask in the "Phase" layer."""
        if not any(self._channel_orders):
            return arrays
        series_labels = self._in_labels[1:] if self._stacked else self._in_labels
        axis = series_labels.index("C")
        return [
            array if order is None else _Reordered(array, axis, order)
            for array, order in zip(arrays, self._channel_orders, strict=True)
        ]

    def read(self, key: Sequence[int | slice]) -> np.ndarray:
        """Pixels of the full-resolution data at a key in :attr:`description` axes order.

        Parameters
        ----------
        key
            One integer or unit-step slice per axis of ``description.axes``; the
            position axis takes an integer when series were stacked into it.

        Returns
        -------
        numpy.ndarray
            The selected pixels in native byte order, axes in ``description.axes``
            order.
        """
        arrays = [
            _NamedErrors(a, self.path, self._opened)
            for a in self._in_first_order(self._direct_arrays())
        ]
        in_key: list[int | slice] = [slice(None)] * len(self._in_labels)
        for j, k in enumerate(key):
            in_key[self._perm[j]] = k
        if self._stacked:
            array, in_key = arrays[int(in_key[0])], in_key[1:]
        else:
            array = arrays[0]
        out = np.asarray(array[tuple(in_key)])
        out = out.astype(out.dtype.newbyteorder("="), copy=False)
        kept = [j for j, k in enumerate(key) if isinstance(k, slice)]
        in_order = sorted(kept, key=lambda j: self._perm[j])
        return out.transpose([in_order.index(j) for j in kept])

    def _sample(self, c: int, s: int) -> np.ndarray:
        """Pixels of one channel for contrast limits and role guessing
        (:func:`~napari_cytomask.io.layers.stack_sample`)."""
        planes = [
            n for label, n in zip(self._labels, self.description.shape, strict=True)
            if label not in ("C", "S", "Y", "X")
        ]  # fmt: skip
        return stack_sample(lambda at: self._plane_sample(c, s, at), any(n > 1 for n in planes))

    def _plane_sample(self, c: int, s: int, at: float) -> np.ndarray:
        """Pixels of one channel in the plane at fraction ``at`` of each other axis
        (:func:`~napari_cytomask.io.layers.plane_sample`).

        A grid of small patches spread over the plane: one central crop can fall
        entirely inside one cell of a label image and miss the background.
        Patches are stacked along the rows, so neighbouring pixels along the
        columns stay neighbours.
        """
        desc = self.description
        key: list[int | slice] = []
        for label, n in zip(self._labels, desc.shape, strict=True):
            if label == "C":
                key.append(c)
            elif label == "S":
                key.append(slice(None) if self._rgb else s)
            elif label in ("Y", "X"):
                key.append(slice(0, n))
            else:
                key.append(min(n - 1, int(n * at)))
        y, x = self._labels.index("Y"), self._labels.index("X")

        def read(rows: slice, cols: slice) -> np.ndarray:
            key[y], key[x] = rows, cols
            return self.read(key)

        chunks = None
        source = self._direct_arrays()[0]
        if isinstance(source, zarr.Array):
            series_labels = self._in_labels[1:] if self._stacked else self._in_labels
            chunks = (
                source.chunks[series_labels.index("Y")],
                source.chunks[series_labels.index("X")],
            )
        return plane_sample(read, desc.shape[y], desc.shape[x], chunks)

    # -- layers -------------------------------------------------------------

    def channels(self, *, mosaic: bool = False) -> list[Channel]:
        """One :class:`~napari_cytomask.io.layers.Channel` per channel, roles guessed.

        Parameters
        ----------
        mosaic
            Stitch the positions into one mosaic (the position axis is removed).

        Returns
        -------
        list of Channel
            Lazy dask data (a list of levels for pyramids, a single level for
            mosaics), with roles and contrast limits from a sample of their pixels
            (:func:`~napari_cytomask.io.layers.roles_and_contrast`).
        """
        desc = self.description
        if mosaic:
            self._check_mosaic()
        arrays = None if mosaic else self.channel_arrays()
        channels, samples = [], []
        for i, (c, s) in enumerate(self._channel_keys):
            data = self._mosaic(c, s) if mosaic else arrays[i]
            channels.append(
                Channel(
                    name=desc.channel_names[i],
                    data=data,
                    index=i,
                    color=desc.channel_colors[i] if desc.channel_colors else None,
                    named_after_file=self._named_after_file,
                )
            )
            samples.append(self._sample(c, s))
        roles_and_contrast(channels, samples, desc.dtype, rgb=desc.rgb, path=self.path)
        if mosaic:
            # Each tile numbers its cells from 1: stitched as labels, they keep ids of their own.
            for channel, (c, s) in zip(channels, self._channel_keys, strict=True):
                if channel.role == "mask":
                    channel.data = self._mosaic(c, s, mask=True)
        return channels

    def channel_arrays(self) -> list:
        """Each channel's lazy data (a list of levels for pyramids), no pixel read."""
        full = [self._level_array(level) for level in range(self.description.levels)]
        c_axis = self._labels.index("C") if "C" in self._labels else None
        s_axis = self._labels.index("S") if "S" in self._labels and not self._rgb else None
        arrays = []
        for c, s in self._channel_keys:
            levels = [_select(a, c_axis, c, s_axis, s) for a in full]
            arrays.append(levels if len(levels) > 1 else levels[0])
        return arrays

    def channel_names(self) -> list[str | None]:
        """Each channel's own name; None for a single channel named after its file."""
        names = self.description.channel_names
        return [None] * len(names) if self._named_after_file else list(names)

    def _check_mosaic(self) -> None:
        desc = self.description
        if desc.mosaic_problem:
            raise MosaicUnavailable(self.path, desc.mosaic_problem)
        tile = np.array([desc.shape[self._labels.index(a)] for a in "YX"])
        groups = tile_groups(self._tile_offsets, tuple(tile))
        span = self._tile_offsets.max(axis=0) + tile
        covered = len(self._tile_offsets) * tile.prod() / span.prod()
        if groups > 1 and covered < MIN_MOSAIC_COVER:
            # Fields in separate wells, say: stitched, they would make a plane mostly
            # empty and far larger than the data (one far tile can ask for gigabytes). A
            # grid with a row missing is two groups too, but fills most of its plane.
            raise MosaicUnavailable(
                self.path,
                f"its {len(self._tile_offsets)} stage positions form {groups} groups of "
                f"tiles far apart: stitched, they would make one {span[0]} x {span[1]} px "
                f"plane, of which the tiles would fill {covered:.0%}; they look like "
                "separate fields (such as wells), not one mosaic",
            )

    @cached_property
    def _tile_offsets(self) -> np.ndarray:
        """Each tile's offset in the mosaic, in pixels, from the stage positions."""
        desc = self.description
        return tile_offsets(desc.positions, (desc.pixel_size["Y"], desc.pixel_size["X"]))

    def _mosaic(self, c: int, s: int, *, mask: bool = False) -> da.Array:
        """One channel's tiles stitched (see :func:`~napari_cytomask.io.mosaic.stitch`);
        ``mask`` for a mask channel, whose tiles' ids are made distinct."""
        desc = self.description
        labels = self._labels
        lead = [
            j
            for j, label in enumerate(labels)
            if label not in (POSITION_AXIS, "C", "Y", "X") and not (label == "S" and not self._rgb)
        ]
        rgb_axis = labels.index("S") if self._rgb else None

        def read_tile(tile: int, lead_key: tuple[slice, ...], rows: slice, cols: slice):
            key: list[int | slice] = []
            lead_iter = iter(lead_key)
            for label in labels:
                if label == POSITION_AXIS:
                    key.append(tile)
                elif label == "C":
                    key.append(c)
                elif label == "S" and not self._rgb:
                    key.append(s)
                elif label == "Y":
                    key.append(rows)
                elif label == "X":
                    key.append(cols)
                else:
                    key.append(next(lead_iter))
            part = self.read(key)
            # The mosaic wants the plane last; RGB samples come back after it.
            return np.moveaxis(part, -1, -3) if rgb_axis is not None else part

        lead_shape = tuple(desc.shape[j] for j in lead)
        tile_shape = (desc.shape[labels.index("Y")], desc.shape[labels.index("X")])
        offsets = self._tile_offsets
        lead_chunks = tuple(desc.shape[j] if labels[j] == "S" else 1 for j in lead)
        mosaic = stitch(
            read_tile,
            offsets,
            lead_shape,
            tile_shape,
            desc.dtype,
            lead_chunks=lead_chunks,
            labels=mask,
            frames=frame_axes([*(labels[j] for j in lead), "Y", "X"]),
        )
        return da.moveaxis(mosaic, -3, -1) if rgb_axis is not None else mosaic

    def scan(self, *, mosaic: bool = False) -> Scan:
        """The file's channels with their axes, scale and metadata.

        Parameters
        ----------
        mosaic
            Stitch the positions into one mosaic per channel.

        Returns
        -------
        Scan
        """
        desc = self.description
        channels = self.channels(mosaic=mosaic)  # checks that a mosaic can be made
        axes = tuple(a for a in desc.layer_axes if not (mosaic and a == POSITION_AXIS))
        known = dict(desc.pixel_size)
        if desc.frame_interval is not None:
            known["T"] = desc.frame_interval
        scale = tuple(known.get(a, 1.0) for a in axes)
        units = None
        if any(a in known for a in axes):
            units = tuple(("s" if a == "T" else UNIT) if a in known else "pixel" for a in axes)
        extra: dict[str, Any] = {
            "series": list(desc.series),
            "original_axes": desc.original_axes,
            "tiff_kind": desc.kind,
            "pixel_size_um": dict(desc.pixel_size),
            "frame_interval_s": desc.frame_interval,
            "stage_positions_um": [list(p) for p in desc.positions] if desc.positions else None,
            "position_names": list(desc.position_names) if desc.position_names else None,
            "mosaic": mosaic,
        }
        if desc.metadata_file:
            extra["metadata_file"] = desc.metadata_file
        if mosaic:
            extra["tile_offsets"] = self._tile_offsets.tolist()
        return Scan(
            path=self.path,
            channels=channels,
            axes=axes,
            scale=scale,
            units=units,
            metadata=extra,
            rgb=desc.rgb,
            colours=desc.colours,
            closing=self.close,
        )


# -- opening and checking -----------------------------------------------------


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: What a file whose pixels fail to decode is told, with the codec's error in the braces.
_CORRUPT_PIXELS = (
    "its pixel data cannot be decoded ({}); the file is corrupt: open the original or export "
    "it again"
)


def _problem(
    exc: BaseException,
    corrupt: str = "its structure is corrupt ({}); open the original file or export it again",
) -> str:
    """What went wrong, in words a user can act on, with the original error in brackets.

    Anything but an operating-system error (no permission, a vanished disk)
    means bytes tifffile could not make sense of: tifffile and the codecs say
    so in their own terms ("division by zero", "incompatible keyframe"); then
    ``corrupt`` says so, with the error in its braces.
    """
    if isinstance(exc, MemoryError):
        return (
            "it did not fit in the memory left; close other programs and open it again. If it "
            "still does not, its header is corrupt, declaring an image larger than it is"
        )
    detail = _detail(exc)
    if isinstance(exc, OSError):
        return detail
    if isinstance(exc, NotImplementedError) or "not supported" in str(exc):
        return (
            f"it uses a compression or layout this reader cannot decode ({detail}); convert it "
            "to an uncompressed or zlib-compressed TIFF, e.g. with Fiji"
        )
    return corrupt.format(detail)


def _open(path: str) -> tuple[tifffile.TiffFile, str | None]:
    """Open a TIFF, following a multi-file OME-TIFF to the file with its OME-XML.

    Files of a multi-file OME-TIFF other than the master hold only
    ``<BinaryOnly MetadataFile=...>``: the metadata is in the master TIFF or a
    ``.companion.ome`` XML file next to them. tifffile reads every plane of the
    dataset from there; when that file is missing the plane opens on its own.
    """
    if not os.path.exists(path):
        raise TiffReadError(path, "it does not exist")
    if not is_regular_file(path):
        raise TiffReadError(path, "it is not a regular file (a folder, pipe or device)")
    if not os.access(path, os.R_OK):
        raise TiffReadError(
            path,
            "you have no permission to read it; ask its owner for read access, or copy it to "
            "a folder of yours",
        )
    if is_empty_file(path):
        raise TiffReadError(path, EMPTY_FILE)
    if not is_tiff(path):
        raise TiffReadError(path, "it does not start with a TIFF signature")
    tif = tifffile.TiffFile(path)
    if _uniform_in_name_only(tif):
        tif.close()
        # Its pages grouped by their layout (then refused: :func:`_check_not_interleaved`).
        tif = tifffile.TiffFile(path, is_uniform=False)
    if not tif.is_ome:
        return tif, None
    match = _BINARY_ONLY.search(tif.pages.first.description or "")
    if match is None:
        return tif, None
    target = Path(path).parent / match.group(1)
    if not target.is_file():
        return tif, None
    tif.close()
    if is_tiff(target):
        return tifffile.TiffFile(target), str(target)
    omexml = target.read_text(encoding="utf-8")
    return tifffile.TiffFile(path, omexml=omexml), str(target)


#: The metadata tifffile makes its series from before it takes a file for a uniform stack
#: (in its order, ``TiffFile.series``).
_SERIES_METADATA = (
    "shaped", "lsm", "mmstack", "ome", "imagej", "ndtiff", "fluoview", "stk", "sis", "svs",
    "scn", "qpi", "ndpi", "bif", "avs", "eer", "philips", "scanimage", "nih", "mdgel",
)  # fmt: skip


def _uniform_in_name_only(tif: tifffile.TiffFile) -> bool:
    """Whether tifffile takes a file without metadata for one stack of alike pages though
    some differ: it compares the 2nd, 8th and last page with the first, and reads every
    other page as if laid out as the first (a float32 or compressed page among uint16
    ones as garbage, one of another size as "incompatible keyframe"). Up to
    :data:`_PAGES_CHECKED` pages spread over the file are compared; each IFD is read, no
    pixels. A file of metadata tifffile reads its series from is not looked at: telling
    whether it is uniform reads its last page, and so the offsets of all its pages (a
    large ImageJ stack's tens of thousands)."""
    if any(getattr(tif, f"is_{kind}", False) for kind in _SERIES_METADATA):
        return False
    if not tif.is_uniform:
        return False
    pages = tif.pages
    n = len(pages)
    useframes = pages.useframes
    try:
        pages.useframes = False  # the pages' own layouts, not their first page's
        first = pages.first.hash
        spread = np.linspace(0, n - 1, min(n, _PAGES_CHECKED)).astype(int).tolist()
        return any(pages[i].aspage().hash != first for i in dict.fromkeys(spread))
    finally:
        pages.useframes = useframes


@dataclass(frozen=True)
class _FileState:
    """A file's size and modification time, as they were when it was opened."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> _FileState:
        """The state of ``path`` now."""
        now = os.stat(path)
        return cls(path, now.st_size, now.st_mtime_ns)

    def check(self) -> None:
        """Raise :class:`FileChanged` unless the file is still as it was.

        One ``stat``: reading a batch of pixels costs far more.
        """
        try:
            now = _FileState.of(self.path)
        except OSError as err:
            gone = "it is no longer there: deleted, moved or renamed"
            raise FileChanged(self.path, gone) from err
        if now == self:
            return
        when = datetime.datetime.fromtimestamp(now.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
        size = f"; {now.size} bytes, {self.size} when opened" if now.size != self.size else ""
        raise FileChanged(self.path, f"written at {when}{size}")


class _NamedErrors:
    """An array over a file's pixels whose read errors name the file, and that reads no
    pixel once the file changed on disk after it was opened.

    Pixels are decoded when napari shows them or a command reads them, long
    after the file was opened; a corrupt compressed strip then raises the
    codec's bare error (``DeflateError``, ``ImcdError``) without the file name.
    A file written over meanwhile (another field saved under its name) would give
    pixels other than those shown, or bytes that fail to decode where the opened
    file had its strips.
    """

    def __init__(self, array: Any, path: str, opened: _FileState) -> None:
        self.array = array
        self.path = path
        self.opened = opened
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        self.opened.check()
        try:
            with _decoding(self.path):
                return np.asarray(self.array[key])
        except TiffReadError:
            # Written over while it was read: that, rather than a corrupt file.
            self.opened.check()
            raise


@contextlib.contextmanager
def _decoding(path: str):
    """Errors and tifffile's complaints while pixels are decoded, as :class:`TiffReadError`."""
    with _TiffProblems() as problems:
        try:
            yield
        except TiffReadError:
            raise
        except MemoryError as exc:
            # Not a corrupt header, as when opening: a page declaring more pixels than its
            # bytes can hold is refused then, so these pixels did not fit in the memory left.
            raise MemoryError(f"reading the pixels of {path}") from exc
        except Exception as exc:
            raise TiffReadError(path, _problem(exc, corrupt=_CORRUPT_PIXELS)) from exc
        problems.check(path)


class _TiffProblems(logging.Handler):
    """Collects what tifffile logs about a broken page chain while a file opens.

    tifffile does not raise for a truncated file: it logs the bad page offset
    and returns the pages it could read (ImageJ and Micro-Manager series then
    lose planes or get zeros), so those messages are turned into errors. Only those
    logged in the thread reading are: another thread's are of another file.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []
        #: Whether tifffile set the ImageJ metadata aside (a count of 0 channels, slices
        #: or frames) and read the pages as a plain stack: the pixels are all there.
        self.imagej_ignored = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:  # a damaged file read beside, as napari's threads do
            return
        message = record.getMessage()
        if record.levelno < logging.ERROR and "ImageJ series metadata invalid" in message:
            # Logged as an error, the same words mean the pixels the metadata promise
            # lie past the end of the file: that stays a truncated file.
            self.imagej_ignored = True
        elif _CORRUPTION.search(message):
            self.messages.append(message)

    def __enter__(self) -> _TiffProblems:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc_info) -> None:
        logging.getLogger("tifffile").removeHandler(self)

    def check(self, path: str) -> None:
        """Raise :class:`TiffReadError` if tifffile reported a broken file; warn if it
        read an ImageJ file's pages without its metadata."""
        if not self.messages:
            if self.imagej_ignored:
                self.imagej_ignored = False  # said once per file
                warnings.warn(
                    f"{path}: its ImageJ metadata count 0 channels, slices or frames, so "
                    "which plane is which channel, Z slice or time point is not known; its "
                    "planes open as channels when they look unlike each other, else as one "
                    "stack. Open it in Fiji or ImageJ, set its dimensions (Image > Properties) "
                    "and save it again to open them as they are",
                    UserWarning,
                    stacklevel=2,
                )
            return
        missing = re.search(r"series failed to read '([^']+)'", self.messages[0])
        if missing:
            raise TiffReadError(
                path,
                f"{missing.group(1)}, a file of this multi-file OME-TIFF, is missing or "
                "cannot be read, so its planes would be blank; copy every file of the "
                "acquisition into one folder",
            )
        detail = re.sub(r"^<[^>]*>\s*", "", self.messages[0])
        if re.search(
            r"OME series (?:is missing \d+|expected \d+|contains invalid TiffData)", detail
        ):
            raise TiffReadError(
                path,
                f"its OME metadata and its planes disagree ({detail.split('. ')[0]}): the "
                "OME-XML describes other sizes than the file holds, or the file is truncated "
                "or corrupt; open the original file or export it again",
            )
        raise TiffReadError(
            path,
            f"the file is truncated or corrupt ({detail}); copy it again from where it was "
            "saved, or save it again from the original",
        )


def _same_series(series: Sequence[tifffile.TiffPageSeries]) -> list[int]:
    """Indices of the series stacked into a position axis.

    Series with the same shape, dtype, axes and levels are positions of one scan. Of
    such groups the scan is the one with the largest planes (then the most series, then
    the first): thumbnails, overviews, labels and macro images are smaller and left out,
    wherever they are in the file; a position of one channel more is not the scan (its
    planes were counted with the channels, and it alone was opened, not the others). A
    series that already has a tile axis is used alone.
    """

    def kind(s: tifffile.TiffPageSeries) -> tuple:
        return s.shape, s.dtype, s.axes, len(s.levels)

    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(series):
        groups.setdefault(kind(s), []).append(i)
    scan = max(groups.values(), key=lambda g: (math.prod(_size(series[g[0]])), len(g), -g[0]))
    if any(a in series[scan[0]].axes for a in "RM"):
        return scan[:1]
    return scan


def _size(s: tifffile.TiffPageSeries) -> tuple[int, int]:
    return s.keyframe.imagelength, s.keyframe.imagewidth


def _pages_layout(s: tifffile.TiffPageSeries) -> str:
    """A series' pages as a message names them: "256 x 256 uint16 compressed (deflate)"."""
    compression = s.keyframe.compression
    packed = f" compressed ({compression.name.lower()})" if compression != 1 else ""
    return f"{' x '.join(map(str, _size(s)))} {s.dtype}{packed}"


def _check_not_interleaved(
    path: str, series: Sequence[tifffile.TiffPageSeries], kept: list[int]
) -> None:
    """Refuse a file without metadata whose pages of another layout lie among those the
    scan keeps (a float32 phase page among uint16 ones): left out, the scan's pages no
    longer repeat the order of its channels, and the rest opened as one stack of them all,
    images and masks mixed, shown as labels. Every p-th page of another layout, all
    through the file, is one channel saved so (a uint8 mask after each uint16 image): left
    out, and said, the others keep their order."""
    scan = series[kept[0]]
    if scan.kind != "generic":
        return
    indices = [p.index for i in kept for p in series[i].pages if p is not None]
    low, high = min(indices), max(indices)
    others = sorted(
        (p.index, s)
        for i, s in enumerate(series)
        if i not in kept and not s.keyframe.is_reduced
        for p in s.pages
        if p is not None
    )
    inside = [(index, s) for index, s in others if low < index < high]
    steps = {b - a for (a, _), (b, _) in itertools.pairwise(others)}
    pages = len(scan.parent.pages)
    if len(steps) == 1 and pages == len(others) * steps.pop():
        return  # one channel of every position
    if inside:
        index, odd = inside[0]
        raise TiffReadError(
            path,
            f"its page {index} holds {_pages_layout(odd)} pixels among pages of "
            f"{_pages_layout(scan)}, and without metadata that say how its pages belong "
            "together they cannot be read as one stack; save every page with one pixel "
            "type, size and compression (in Fiji: Image > Type, then save), or save it as "
            "an OME-TIFF",
        )


def _warn_left_out(path: str, series: Sequence[tifffile.TiffPageSeries], kept: list[int]) -> None:
    """Warn of series the scan leaves out that are images, not thumbnails: pages of another
    pixel type saved without metadata (a uint8 mask beside uint16 images), and in a file
    without metadata also pages of another size (no reduced-resolution ones). An OME-TIFF's
    images of the scan's axes left out are named: a position cropped at a well's edge, or
    saved with another channel, was left out unsaid, the next numbered in its place (an
    overview or a thumbnail, of other axes, is left out unsaid)."""
    scan = series[kept[0]]
    if scan.kind == "ome":
        unlike = [
            f"{i} ({s.name})" if s.name else str(i)
            for i, s in enumerate(series)
            if i not in kept and not s.keyframe.is_reduced and s.axes == scan.axes
        ]
        if unlike:
            warnings.warn(
                f"{path}: its image(s) {', '.join(unlike)} of another size, pixel type or "
                f"channels than the {len(kept)} it opens ({' x '.join(map(str, scan.shape))} "
                f"{scan.dtype}, {scan.axes}) were left out: only images alike open as "
                "positions of one scan; such an image opens when saved in a file of its own",
                UserWarning,
                stacklevel=2,
            )
        return
    others = [
        s
        for i, s in enumerate(series)
        if i not in kept
        and (_size(s) == _size(scan) or (scan.kind == "generic" and not s.keyframe.is_reduced))
    ]
    if not others:
        return
    planes = sum(math.prod(s.shape) // math.prod(s.keyframe.shape) for s in others)
    kinds = ", ".join(sorted({_pages_layout(s) for s in others}))
    warnings.warn(
        f"{path}: {planes} page(s) of another pixel type, size or layout ({kinds}; the "
        f"others are {_pages_layout(scan)}) were left out, as the "
        "file has no metadata that joins them to the others; save all its pages with one "
        "pixel type and size (or as an OME-TIFF or ImageJ hyperstack) to open them together",
        UserWarning,
        stacklevel=2,
    )


def _warn_ome_lost(path: str, tif: tifffile.TiffFile) -> None:
    """Warn of an OME-TIFF whose OME metadata are gone (stripped by a program that saved it
    again) or cannot be read (damaged, cut short): its pages open without them, with no
    channel names, pixel size or positions, and nothing else would say why."""
    if tif.series[0].kind not in ("uniform", "generic"):
        return  # read with metadata (OME, ImageJ, …)
    description = (tif.pages.first.description or "").lstrip()
    if "<OME" in description[:4096]:
        why = "OME metadata that cannot be read (damaged or cut short)"
    elif Path(path).name.lower().endswith((".ome.tif", ".ome.tiff")):
        # Or past the end of a file cut short, whose description tifffile then drops.
        why = (
            "no OME metadata (a program that saved it again may have dropped them, or the "
            "file is cut short)"
        )
    else:
        return
    warnings.warn(
        f"{path}: it holds {why}, so its channel names, pixel size and positions are not "
        "known: its pages open unnamed (C1, C2 … where their pixels tell channels apart) "
        "and without a pixel size. Open the file its microscope saved, or give the pixel "
        "size in the Segment cytoplasm dock",
        UserWarning,
        stacklevel=2,
    )


def _warn_uncounted(path: str, tif: tifffile.TiffFile) -> None:
    """Warn of pages that no series holds: metadata that count fewer images than the file
    has (an OME-XML changed to say one channel of two) leave the others out of every series.

    Counts pages and reads no pixels; the levels of a pyramid count as pages of their series.
    """
    pages = len(tif.pages)
    counted = sum(len(level) for s in tif.series for level in s.levels)
    if pages > counted:
        warnings.warn(
            f"{path}: it holds {pages} pages but its metadata count {counted}, so "
            f"{pages - counted} page(s) (another channel or plane, say) were left out: the "
            "metadata are wrong, e.g. changed after it was saved. Save it again from the "
            "program that made it, or read all its pages (in Python: "
            f"tifffile.imread(path, key=range({pages}))) and save them with metadata that "
            "count them all",
            UserWarning,
            stacklevel=2,
        )


def _check_complete(path: str, series: Sequence[tifffile.TiffPageSeries]) -> None:
    """Raise if pixel data of a series lies beyond the end of its file.

    Truncated files would otherwise open fine and fail only when a plane is
    displayed; the first and last page of each series are enough to tell. Pixel data
    that starts inside the file's header (a corrupt offset) would show the header as
    pixels: up to :data:`_PAGES_CHECKED` pages spread over each series are checked.
    """
    for s in series:
        if np.issubdtype(s.dtype, np.complexfloating):
            raise TiffReadError(
                path,
                f"it holds complex numbers ({s.dtype}, e.g. a Fourier transform), which are "
                "not an image to show or segment; save their magnitude as a real image",
            )
        if 0 in s.shape:
            shape = " x ".join(map(str, s.shape))
            raise TiffReadError(path, f"it holds an empty image ({shape} pixels)")
        planes = math.prod(s.shape) // math.prod(s.keyframe.shape)
        # The file's pages, not the series': a series stored in one block lists one page.
        pages = len(s.parent.pages) if s.kind == "imagej" else 0
        if pages > max(planes, 1):
            # ImageJ's metadata count the images; pages past that count would be dropped.
            raise TiffReadError(
                path,
                f"its ImageJ metadata describe {planes} images but it holds {pages} pages "
                "(it was changed after ImageJ saved it); open it in Fiji or ImageJ, check "
                "its dimensions (Image > Properties) and save it again",
            )
        if s.dataoffset is not None:
            size = s.parent.filehandle.size
            end = s.dataoffset + s.nbytes
            if end > size:
                raise TiffReadError(
                    path, f"the file is truncated: pixel data ends at byte {end}, file has {size}"
                )
        n = len(s.pages)
        spread = np.linspace(0, n - 1, min(n, _PAGES_CHECKED)).astype(int).tolist()
        pages = [s.keyframe, *(s.pages[i] for i in dict.fromkeys([0, *spread, n - 1]))]
        for page in (p for p in pages if p is not None):
            size = page.parent.filehandle.size
            header = 16 if page.parent.is_bigtiff else 8
            used = [(o, n) for o, n in zip(page.dataoffsets, page.databytecounts, strict=True) if n]
            if used and max(o + n for o, n in used) > size:
                raise TiffReadError(
                    path,
                    f"the file is truncated: page {page.index} ends at byte "
                    f"{max(o + n for o, n in used)}, file has {size}",
                )
            if used and min(o for o, _ in used) < header:
                raise TiffReadError(
                    path,
                    f"the file is corrupt: the pixels of page {page.index} are said to start "
                    f"at byte {min(o for o, _ in used)}, inside the file's header",
                )
            _check_page_size(path, page)


def _check_page_size(path: str, page: tifffile.TiffPage) -> None:
    """Raise unless a page's declared size fits the data it stores.

    A corrupt width, height or strip size would otherwise make the reader
    allocate what the header promises (gigabytes from a file of megabytes)
    before any pixel is decoded.
    """
    key = page.keyframe  # a frame shares its layout with its key page
    if 0 in key.shape:
        raise TiffReadError(
            path, f"page {page.index} holds an empty image ({' x '.join(map(str, key.shape))})"
        )
    declared = " x ".join(map(str, key.shape))
    if key.bitspersample < 1:
        raise TiffReadError(path, f"its header is corrupt: page {page.index} has 0 bits per sample")
    if page.databytecounts and not all(page.databytecounts):
        # tifffile reads a strip or tile without bytes as zeros.
        raise TiffReadError(
            path, f"its header is corrupt: page {page.index} has strips or tiles without data"
        )
    stored = int(sum(page.databytecounts))
    if page.dataoffsets and len(page.dataoffsets) != math.prod(key.chunked):
        raise TiffReadError(
            path,
            f"its header is corrupt: page {page.index} declares {declared} pixels in "
            f"{math.prod(key.chunked)} strips or tiles but lists {len(page.dataoffsets)}",
        )
    if not stored:
        return
    if int(key.compression) == 1:
        # Uncompressed: the strips or tiles hold exactly the declared pixels
        # (rows padded to whole bytes, the last strip or edge tiles possibly full).
        low = math.ceil(math.prod(key.shape) * key.bitspersample / 8)
        high = len(page.dataoffsets) * _chunk_bytes(key)
        if not low <= stored <= high:
            raise TiffReadError(
                path,
                f"its header is corrupt: page {page.index} declares {declared} pixels of "
                f"{key.bitspersample} bits ({low} bytes) but stores {stored} bytes",
            )
        return
    ratio = _MAX_RATIO.get(int(key.compression))
    if ratio is None:
        return
    if key.nbytes > ratio * stored:
        raise TiffReadError(
            path,
            f"its header is corrupt: page {page.index} declares {declared} pixels "
            f"({key.nbytes / 2**20:.1f} MiB) but stores only {stored} bytes",
        )
    _check_first_segment(path, page, key)


def _check_first_segment(path: str, page, key: tifffile.TiffPage) -> None:
    """Decode a compressed page's first strip or tile and check its size against the header.

    tifffile cuts or pads a segment that decodes to more or fewer bytes than
    the header's width, rows and bits promise, so a corrupt width reads as
    plausible garbage; one segment tells. Segments above 64 MiB are left to
    the reading itself.
    """
    expected = _chunk_bytes(key)
    if not key.is_tiled and page.dataoffsets and len(page.dataoffsets) == 1:
        expected = expected * min(key.rowsperstrip, key.imagelength) // key.chunks[0]
    if expected > 64 * 2**20 or int(key.compression) not in tifffile.TIFF.DECOMPRESSORS:
        return
    fh = page.parent.filehandle
    fh.seek(page.dataoffsets[0])
    data = fh.read(page.databytecounts[0])
    try:
        decoded = len(tifffile.TIFF.DECOMPRESSORS[int(key.compression)](data))
    except Exception as exc:
        raise TiffReadError(path, _CORRUPT_PIXELS.format(_detail(exc))) from exc
    if decoded != expected:
        raise TiffReadError(
            path,
            f"its header is corrupt: the first strip or tile of page {page.index} decodes to "
            f"{decoded} bytes, but {key.shape} pixels of {key.bitspersample} bits need {expected}",
        )


def _chunk_bytes(page: tifffile.TiffPage) -> int:
    """Bytes of one whole strip or tile of an uncompressed page, rows padded to bytes."""
    chunk = page.chunks
    interleaved = page.planarconfig == 1 and page.samplesperpixel > 1
    row = chunk[-1] * chunk[-2] if interleaved else chunk[-1]
    rows = math.prod(chunk[:-2] if interleaved else chunk[:-1])
    return math.ceil(row * page.bitspersample / 8) * rows


# -- axes ---------------------------------------------------------------------


def _unique(labels: list[str]) -> list[str]:
    """Distinct one-letter axis labels: tifffile may repeat ``Q`` for unknown axes."""
    spare = iter(c for c in "QABDEGHJKLNOUVW" if c not in labels)
    out: list[str] = []
    for label in labels:
        out.append(next(spare) if label in out else label)
    return out


def _napari_order(labels: list[str]) -> list[str]:
    """Position first, other stack axes, time, channel, z, then the plane."""
    head = [POSITION_AXIS] if POSITION_AXIS in labels else []
    fixed = {POSITION_AXIS, "T", "C", "Z", "Y", "X", "S"}
    others = [a for a in labels if a not in fixed]
    tail = [a for a in ("T", "C", "Z", "Y", "X", "S") if a in labels]
    return head + others + tail


def _dask_chunks(
    shape: tuple[int, ...], chunks: tuple[int, ...], labels: Sequence[str]
) -> tuple[int, ...]:
    """Dask chunks: single planes, with thin strips or small tiles merged.

    Row strips one pixel high would otherwise make a task per row; about 1024
    rows and columns per chunk keep graphs small and reads cheap.
    """
    out = []
    for n, c, label in zip(shape, chunks, labels, strict=True):
        if label in ("Y", "X"):
            out.append(min(n, c * max(1, math.ceil(1024 / c))))
        elif label == "S":
            out.append(n)
        else:
            out.append(1)
    return tuple(out)


#: Most pages, and bytes, of a stack without metadata whose pages are compared: a few,
#: as channels saved without their metadata are (a longer stack is planes of one kind),
#: and more when they repeat one order of kinds, as the positions of such channels do.
_KIND_PAGES, _REGROUP_PAGES, _KIND_BYTES = 4, 12, 256 << 20


def _plane_kinds(
    series: tifffile.TiffPageSeries, labels: list[str], loose: tuple[str, ...]
) -> list[tuple[bool | None, np.ndarray]]:
    """Of a few planes along an axis that says nothing of what they hold, ``(A, Y, X)`` with
    ``A`` in ``loose`` (pages without metadata, the samples of one page), each one's kind
    and a sample of its pixels: True for label ids, False for images of light, None for a
    plane of one value (an empty slice of a label volume). Empty when the series is not
    such a small integer stack."""
    if labels[1:] != ["Y", "X"] or labels[0] not in loose:
        return []
    if not 2 <= series.shape[0] <= _REGROUP_PAGES or series.nbytes > _KIND_BYTES:
        return []
    if not np.issubdtype(series.dtype, np.integer):
        return []
    return _kinds_of(series.pages[0].asarray() if labels[0] == "S" else series.asarray())


def _kinds_of(planes: np.ndarray) -> list[tuple[bool | None, np.ndarray]]:
    """Each of a few planes' kind (True for label ids, False for images of light, None for a
    plane of one value) and a sample of its pixels, as :func:`_plane_kinds` gives them."""
    samples = [
        plane_sample(lambda rows, cols, plane=plane: plane[rows, cols], *plane.shape)
        for plane in planes
    ]
    varied = [i for i, sample in enumerate(samples) if sample.min() < sample.max()]
    found = looks_like_masks([""] * len(varied), [samples[i] for i in varied])
    kinds: list[bool | None] = [None] * len(samples)
    for i, kind in zip(varied, found, strict=True):
        kinds[i] = kind
    return list(zip(kinds, samples, strict=True))


@dataclass(frozen=True)
class _Grouping:
    """Planes of one stack as positions of channels: plane ``p * p_step + c * c_step``."""

    positions: int
    channels: int
    position_major: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.positions, self.channels

    def plane(self, p: int, c: int) -> int:
        if self.position_major:
            return p * self.channels + c
        return c * self.positions + p


def _regrouping(
    planes: list[tuple[bool | None, np.ndarray]], groupings: Sequence[_Grouping] | None = None
) -> _Grouping | None:
    """How planes saved without metadata are positions of channels, when they are: label ids
    and images in an order that repeats, ``[phase, mask, phase, mask]`` (each position's
    channels in turn) or ``[phase, phase, mask, mask]`` (each channel's positions in turn),
    and the images of each channel alike (a phase image and a GFP one are two channels).
    Images alone are channels where each channel's are alike and none is like any of
    another channel's (``[phase, GFP, phase, GFP]``): a time-lapse whose lamp drifts is
    one channel. The first of ``groupings`` that fits (those the shape of a stack allows),
    or of every way of dividing the planes into two channels or more; for images alone,
    in turn only, as ImageJ orders channels (each channel's planes in a row are the
    frames of a drifting lamp, or a Z stack going out of focus)."""
    n = len(planes)
    found = {kind for kind, _ in planes if kind is not None}
    images_only = found == {False}
    if len(found) < 2 and not images_only:
        return None
    if groupings is None:
        groupings = [
            _Grouping(n // channels, channels, position_major)
            for position_major in ((True,) if images_only else (True, False))
            for channels in range(2, n // 2 + 1)
            if not n % channels
        ]
    for grouping in groupings:
        per_channel = [
            [planes[grouping.plane(p, c)] for p in range(grouping.positions)]
            for c in range(grouping.channels)
        ]
        kinds_of = [{kind for kind, _ in ch if kind is not None} for ch in per_channel]
        if any(len(found) != 1 for found in kinds_of):
            continue
        images = [
            [sample for _, sample in ch]
            for ch, found in zip(per_channel, kinds_of, strict=True)
            if found == {False}
        ]
        if not all(map(_alike, images)):
            continue
        if images_only and any(
            _alike([a, b])
            for one, other in itertools.combinations(images, 2)
            for a in one
            for b in other
        ):
            continue
        return grouping
    return None


def _unnamed_axes(series: tifffile.TiffPageSeries) -> list[str] | None:
    """Which of the two axes of a 4-D array saved without axes (``tifffile.imwrite(path,
    array)`` names them ``QQYX``; ``QSYX`` where the second holds 3 or 4 planes, which
    tifffile takes for the red, green and blue of colour pictures) holds stage positions
    and which channels, when its planes tell it as the pages of a 3-D stack tell it
    (:func:`_regrouping`): ``["P", "C"]`` or ``["C", "P"]``; None for planes of one kind,
    or another series."""
    if series.axes not in ("QQYX", "QSYX") or not np.issubdtype(series.dtype, np.integer):
        return None
    outer, inner = series.shape[:2]
    if min(outer, inner) > _KIND_PAGES:
        return None  # a scan has a few channels
    # All of the shorter axis (the channels, if either axis holds them) and the first few
    # along the other: as many planes as those of a 3-D stack that are compared.
    most = _REGROUP_PAGES // min(outer, inner)
    outer, inner = (outer, min(inner, most)) if outer <= inner else (min(outer, most), inner)
    if outer * inner * math.prod(series.shape[2:]) * series.dtype.itemsize > _KIND_BYTES:
        return None
    with series.aszarr() as store:
        block = zarr.open_array(store, mode="r")[:outer, :inner]
    planes = _kinds_of(block.reshape(-1, *block.shape[2:]))
    # Read in the file's order, plane [a, b] is a position's channel, or a channel's position.
    fits = [_Grouping(outer, inner, True), _Grouping(inner, outer, False)]
    grouping = _regrouping(planes, fits)
    if grouping is None:
        return None
    return [POSITION_AXIS, "C"] if grouping.position_major else ["C", POSITION_AXIS]


def _warn_axes_told(path, sizes: dict[str, int]) -> None:
    """Say that a file's axes, which no metadata named, were told by what its planes hold
    (:func:`_regrouping`): a guess, right for the files it was made for, that opened
    unsaid."""
    frames = [
        f"{count} {FRAME_NOUNS.get(label, (f'{label} frame', f'{label} frames'))[count > 1]}"
        for label, count in sizes.items()
        if label not in ("C", "S", "Y", "X")
    ]
    warnings.warn(
        f"{path}: no metadata name its axes, so they were told by what its planes hold: "
        f"{' of '.join(frames) or 'one image'} of {sizes.get('C', 1)} channels. If they are "
        "otherwise, give the file its axes in Fiji (Image > Hyperstacks > Stack to "
        "Hyperstack) and save it",
        UserWarning,
        stacklevel=3,
    )


def _alike(samples: list[np.ndarray]) -> bool:
    """Whether images may be one channel at several positions or times: the ranges of
    their 1st to 99th percentiles overlap, as a time-lapse's do when the lamp or the focus
    drifts. A phase image's grey levels and a GFP image's dark background do not; nor do
    a bright GFP image's, whose brightest pixels reach the phase image's grey, as its
    background does not (:func:`~napari_cytomask.io.layers.lit_beside_dark`)."""
    ranges = [np.percentile(sample, [1, 99]) for sample in samples]
    return all(
        lo <= other_hi and other_lo <= hi for lo, hi in ranges for other_lo, other_hi in ranges
    ) and not any(
        lit_beside_dark(a, b) for a, b in itertools.permutations(map(sample_levels, samples), 2)
    )


class _Regrouped:
    """A stack of planes, ``(n, Y, X)``, read as ``(positions, channels, Y, X)``."""

    def __init__(self, array: Any, grouping: _Grouping) -> None:
        self.array = array
        self.grouping = grouping
        self.shape = (*grouping.shape, *array.shape[1:])
        self.dtype = array.dtype
        self.chunks = (1, 1, *getattr(array, "chunks", array.shape)[1:])

    def __getitem__(self, key: Any) -> np.ndarray:
        key = tuple(key) + (slice(None),) * (len(self.shape) - len(key))
        (p_key, c_key), rest = key[:2], key[2:]
        positions = _indices(p_key, self.grouping.positions)
        channels = _indices(c_key, self.grouping.channels)
        kept = [len(range(n)[k]) for k, n in zip(rest, self.shape[2:], strict=True)
                if isinstance(k, slice)]  # fmt: skip
        out = np.empty((len(positions), len(channels), *kept), self.dtype)
        for i, p in enumerate(positions):
            for j, c in enumerate(channels):
                out[i, j] = self.array[(self.grouping.plane(p, c), *rest)]
        return out[tuple(slice(None) if isinstance(k, slice) else 0 for k in (p_key, c_key))]


class _Reordered:
    """An array read with its channels (along ``axis``) in another ``order``: channel ``c``
    of the view is channel ``order[c]`` of ``array``."""

    def __init__(self, array: Any, axis: int, order: Sequence[int]) -> None:
        self.array = array
        self.axis = axis
        self.order = order
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.chunks = getattr(array, "chunks", array.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = tuple(key) + (slice(None),) * (len(self.shape) - len(key))
        channels = _indices(key[self.axis], self.shape[self.axis])
        if not channels:  # an empty selection: nothing to put in order
            return np.asarray(self.array[key])
        planes = [
            np.asarray(self.array[(*key[: self.axis], self.order[c], *key[self.axis + 1 :])])
            for c in channels
        ]
        if not isinstance(key[self.axis], slice):
            return planes[0]
        # The channel axis among those a slice keeps.
        return np.stack(planes, sum(isinstance(k, slice) for k in key[: self.axis]))


def _indices(key: int | slice, n: int) -> list[int]:
    """The indices of ``range(n)`` a key selects, one for an integer."""
    picked = range(n)[key]
    return list(picked) if isinstance(key, slice) else [picked]


def _select(array: da.Array, c_axis: int | None, c: int, s_axis: int | None, s: int) -> da.Array:
    """One channel of an array in napari axis order (channel and sample removed)."""
    key: list[int | slice] = [slice(None)] * array.ndim
    if c_axis is not None:
        key[c_axis] = c
    if s_axis is not None:
        key[s_axis] = s
    return array[tuple(key)]


# -- metadata -----------------------------------------------------------------


def _to_um(value: Any, unit: str | None) -> float | None:
    """A length in micrometres, or None when missing, invalid or in an unknown unit."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    factor = in_micrometres(unit or "µm")
    if factor is None or not math.isfinite(number):
        return None
    return number * factor


def _to_s(value: Any, unit: Any) -> float | None:
    """A time interval in seconds, or None when missing, in an unknown unit, or outside
    :data:`FRAME_INTERVAL_RANGE_S`."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    factor = SECONDS.get(normalise_unit(unit or "s"))
    if factor is None or not math.isfinite(number):
        return None
    low, high = FRAME_INTERVAL_RANGE_S
    return number * factor if low <= number * factor <= high else None


def _colour_from_rgb(r: int, g: int, b: int) -> str | None:
    """Nearest named colormap of an RGB colour; None for black."""
    top = max(r, g, b)
    if top <= 0:
        return None
    return _COLOURS[(r >= top / 2, g >= top / 2, b >= top / 2)]


def _ome_colour(value: str | None) -> str | None:
    """Colormap from an OME Channel Color (signed 32-bit RGBA); transparent means unset."""
    try:
        rgba = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    if rgba & 0xFF == 0:
        return None
    return _colour_from_rgb((rgba >> 24) & 0xFF, (rgba >> 16) & 0xFF, (rgba >> 8) & 0xFF)


def _metadata_names(names: Sequence[str | None], n: int) -> list[str | None]:
    """The metadata's channel names, stripped; None for each channel it leaves unnamed."""
    if len(names) != n:
        return [None] * n
    stripped = [str(name).strip() if name else "" for name in names]
    # MetaMorph names a channel after its file ("IXMtest_A02_s9_c1.tif"): not the suffix.
    return [file_stem(name) if name.lower().endswith(TIFF_SUFFIXES) else name or None
            for name in stripped]  # fmt: skip


def file_stem(path: str | os.PathLike) -> str:
    """A file's name for a layer: without its suffix, and ``.ome`` before it.

    ``scan.ome.tif`` gives ``scan``, ``cells.ome.zarr`` ``cells``, ``s.1.png`` ``s.1``.
    """
    name = Path(path).name
    suffix = next((s for s in TIFF_SUFFIXES if name.lower().endswith(s)), Path(name).suffix)
    stem = name[: -len(suffix)] if suffix else name
    stem = stem[: -len(".ome")] if stem.lower().endswith(".ome") else stem
    return stem or name


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


@dataclass
class _OmeImage:
    name: str | None
    names: list[str | None]
    colors: list[str | None]
    pixel_size: dict[str, float]
    position: tuple[float, float] | None
    frame_interval: float | None = None
    #: What is said of its pixel size as read (:func:`_ome_pixel_note`), or None.
    pixel_note: str | None = None


def _reordering(first: _OmeImage, image: _OmeImage) -> tuple[int, ...] | None:
    """Where ``image`` (a position) keeps each of ``first``'s channels, by name, when it
    lists the same channels in another order (Mask, Phase after Phase, Mask); else None."""
    names = first.names
    if image.names == names or not all(names) or len(set(names)) < len(names):
        return None
    if not all(image.names) or sorted(image.names) != sorted(names):
        return None
    return tuple(image.names.index(name) for name in names)


def _warn_unlike_first(
    path: str, images: list[_OmeImage], orders: Sequence[tuple[int, ...] | None]
) -> None:
    """Warn of positions (OME Images stacked on a position axis) whose channels the
    metadata list otherwise than the first's, and not as the same channels in another
    order (``orders``, which are read in the first's), or whose pixel size differs: the
    layers take the first's, so a "Phase" layer showed a position's mask, and its areas
    in µm² were those of another pixel size, unsaid."""
    first = images[0]
    for index, image in enumerate(images[1:], start=1):
        named = all(first.names) and all(image.names)
        if named and image.names != first.names and orders[index] is None:
            said = (
                f"lists its channels as {', '.join(image.names)}, where the first lists "
                f"{', '.join(first.names)}: the layers take the first's names and order, so "
                "there they show other channels"
            )
        elif not _same_pixels(image.pixel_size, first.pixel_size):
            said = (
                f"records pixels of {_pixel_words(image.pixel_size)}, where the first "
                f"records {_pixel_words(first.pixel_size)}: the layers take the first's, so "
                "its sizes in µm are wrong"
            )
        else:
            continue
        warnings.warn(
            f"{path}: position {index} ({image.name or 'unnamed'}) {said}. Open its "
            "positions as files of their own (Fiji: Bio-Formats, split series), or save "
            "them alike",
            UserWarning,
            stacklevel=2,
        )
        return


def _no_microscope_note(source: str, x: float, y: float) -> str:
    """What to say of pixels of ``x`` by ``y`` µm that ``source`` ("its OME metadata")
    gives, which no microscope's are (:func:`_plausible_xy`): the image opens in pixels,
    which was unsaid, and its areas in µm² and scale bar wait for a size given by hand."""
    low, high = PIXEL_SIZE_RANGE_UM
    return (
        f"{source} give pixels of {x:g} x {y:g} µm, which no microscope's are (from "
        f"{low:g} to {high:g} µm, at most {_MAX_PIXEL_ASPECT:g} times longer than wide; a "
        "size in nanometres written without its unit?), so it opens in pixels. Give its "
        "pixel size in the Segment cytoplasm dock for areas in µm² and a scale bar"
    )


def _ome_pixel_note(given: dict[str, float], one_side: str | None, kept: bool) -> str | None:
    """What to say of an OME Image's pixel size, of its sides ``given`` (in µm): taken as
    square where the metadata give ``one_side`` alone, or left out (``kept`` False) where
    they give no microscope's (650 µm, a size in nanometres written without its unit),
    which left the image in pixels, unsaid. Its areas in µm² rest on it."""
    if not kept and {"X", "Y"} <= given.keys():
        return _no_microscope_note("its OME metadata", given["X"], given["Y"])
    if not kept or one_side is None:
        return None
    side, other = ("width", "height") if one_side == "X" else ("height", "width")
    size = given[one_side]
    return (
        f"its OME metadata give the pixel {side} ({size:g} µm) but not its {other}, so its "
        f"pixels are taken as square ({size:g} x {size:g} µm), as Fiji (Bio-Formats) takes "
        "them. If they are not, give the pixel size in the Segment cytoplasm dock"
    )


def _parse_ome(xml: str | None) -> list[_OmeImage]:
    """Channels, pixel sizes and stage position of each OME Image."""
    if not xml:
        return []
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    images = []
    for image in _children(root, "Image"):
        pixels = next(iter(_children(image, "Pixels")), None)
        if pixels is None:
            continue
        pixel_size = {}
        for axis in _SPATIAL:
            size = _to_um(pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit"))
            if size is not None and size > 0:
                pixel_size[axis] = size
        # Pixels of one side given, the other not at all, are square, as Bio-Formats (Fiji)
        # takes them: writers that give PhysicalSizeX alone mean it for both. A side given
        # wrong (0, negative, in no unit) is no calibration.
        given = [axis for axis in ("X", "Y") if pixels.get(f"PhysicalSize{axis}") is not None]
        one_side = given[0] if len(given) == 1 and given[0] in pixel_size else None
        if one_side:
            pixel_size["X"] = pixel_size["Y"] = pixel_size[one_side]
        given = dict(pixel_size)
        kept = bool(_plausible_xy(pixel_size.get("X"), pixel_size.get("Y")))
        if not kept:
            # One of the two given wrong, or no microscope's (1e9 µm, 10 times longer than
            # wide): no calibration, as of every other source, rather than a scale bar of 200 km.
            pixel_size = {k: v for k, v in pixel_size.items() if k not in ("X", "Y")}
        channels = _children(pixels, "Channel")
        position = None
        for plane in _children(pixels, "Plane"):
            position = _xy(plane, "PositionX", "PositionY")
            if position is not None:
                break
        if position is None:
            for label in _children(image, "StageLabel"):
                position = _xy(label, "X", "Y")
        images.append(
            _OmeImage(
                name=image.get("Name"),
                names=[c.get("Name") for c in channels],
                colors=[_ome_colour(c.get("Color")) for c in channels],
                pixel_size=pixel_size,
                position=position,
                frame_interval=_to_s(pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit")),
                pixel_note=_ome_pixel_note(given, one_side, kept),
            )
        )
    return images


def _xy(element: ET.Element, x: str, y: str) -> tuple[float, float] | None:
    unit = "reference frame"
    px = _to_um(element.get(x), element.get(f"{x}Unit", unit))
    py = _to_um(element.get(y), element.get(f"{y}Unit", unit))
    return None if px is None or py is None else (py, px)


#: The planes a file's metadata may count. tifffile lists every plane a Micro-Manager
#: stack counts before it reads one, 8 bytes each: a count too large to allocate is refused
#: as too large for memory, but one that fits fills the memory (20.7 GB, when changed
#: bytes of a real stack were read), and the system stops napari, losing unsaved work.
#: 16 million planes of 64 x 64 pixels would be 128 GB of pixels.
MAX_PLANES = 2**24


def _check_planes_counted(path: str, tif: tifffile.TiffFile) -> None:
    """Refuse a Micro-Manager stack whose metadata count more than :data:`MAX_PLANES`
    planes, as tifffile counts them: the largest index of each axis in its index map, or
    its summary's count where that is larger, and the span of the index map."""
    if not tif.is_mmstack:
        return
    settings = tif.micromanager_metadata or {}
    index, summary = settings.get("IndexMap"), settings.get("Summary") or {}
    if index is None or not len(index):
        return  # tifffile reads no Micro-Manager series then
    axes = index[:, :4].astype(np.int64)
    counted = 1
    for axis, key in enumerate(("Channels", "Slices", "Frames", "Positions")):
        try:
            declared = int(summary.get(key, 1))
        except (TypeError, ValueError):
            declared = 1  # tifffile says what is wrong with it
        counted *= max(int(axes[:, axis].max()) + 1, declared)
    span = math.prod(int(n) for n in axes.max(axis=0) - axes.min(axis=0) + 1)
    if max(counted, span) > MAX_PLANES:
        raise TiffReadError(
            path,
            f"its Micro-Manager metadata count {max(counted, span):,} planes, more than any "
            "file holds, so they are corrupt; open the original file or export it again",
        )


def _mm_positions(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries, n: int):
    """Micro-Manager stage positions ``(y, x)`` in µm of the ``n`` positions."""
    summary = (tif.micromanager_metadata or {}).get("Summary") or {}
    positions = []
    for entry in summary.get("StagePositions") or []:
        xy = None
        stage = entry.get("DefaultXYStage") or entry.get("defaultXYStage")
        coords = entry.get("DeviceCoordinatesUm") or {}
        for name, value in coords.items():
            if (name == stage or "xy" in name.lower()) and len(value) >= 2:
                xy = (float(value[1]), float(value[0]))
        for sub in entry.get("subpositions") or []:
            name = sub.get("stageName", "")
            if name == stage or "xy" in name.lower():
                xy = (float(sub["y"]), float(sub["x"]))
        positions.append(xy)
    if len(positions) == n and all(p is not None for p in positions):
        return positions
    # Older files: the per-frame metadata of the first frame at each position.
    axes = series.axes
    if "R" not in axes:
        return None
    plane_shape = [n_ for a, n_ in zip(axes, series.shape, strict=True) if a not in "YXS"]
    plane_axes = [a for a in axes if a not in "YXS"]
    positions = []
    for r in range(n):
        index = [r if a == "R" else 0 for a in plane_axes]
        page = series.pages[int(np.ravel_multi_index(index, plane_shape))]
        if page is None:
            return None
        tags = tif.pages[page.index].tags
        frame = tags.valueof("MicroManagerMetadata") or {}
        if "XPositionUm" not in frame or "YPositionUm" not in frame:
            return None
        positions.append((float(frame["YPositionUm"]), float(frame["XPositionUm"])))
    return positions


@dataclass
class _Metadata:
    names: list[str | None]
    colors: list[str | None]
    pixel_size: dict[str, float]
    positions: tuple[tuple[float, float], ...] | None
    frame_interval: float | None = None
    position_names: tuple[str, ...] | None = None
    #: Per series stacked on the position axis, where it keeps each of the first one's
    #: channels when it lists them in another order (:func:`_reordering`), else None.
    channel_orders: tuple[tuple[int, ...] | None, ...] = ()

    @classmethod
    def collect(
        cls,
        tif: tifffile.TiffFile,
        indices: list[int],
        first: tifffile.TiffPageSeries,
        sizes: dict[str, int],
    ) -> _Metadata:
        """Channel names and colours, pixel sizes and positions.

        OME first, then Micro-Manager, ImageJ, the Aperio SVS description and plain
        TIFF resolution tags; channel names and colours of QPTIFF files from their
        per-page XML. Pixel sizes from resolution tags and slide descriptions pass
        :func:`_plausible_xy`.
        """
        n_channels = sizes.get("C", 1)
        n_positions = sizes.get(POSITION_AXIS, 1)
        names: list[str | None] = []
        colors: list[str | None] = []
        pixel_size: dict[str, float] = {}
        positions = None
        position_names: list = []
        interval = None
        orders: list[tuple[int, ...] | None] = [None] * len(indices)

        images = _parse_ome(tif.ome_metadata) if tif.is_ome else []
        # tifffile makes one series per OME Image; a Micro-Manager series'
        # position axis follows the Images too.
        by_series = len(images) == len(tif.series)
        if images:
            image = images[indices[0]] if by_series else images[0]
            names, colors, pixel_size = image.names, image.colors, dict(image.pixel_size)
            interval = image.frame_interval
            if image.pixel_note:
                warnings.warn(
                    f"{tif.filehandle.path}: {image.pixel_note}", UserWarning, stacklevel=2
                )
            if len(indices) > 1 and by_series:
                positions = [images[i].position for i in indices]
                position_names = [images[i].name for i in indices]
                stacked = [images[i] for i in indices]
                if len(names) == n_channels:
                    orders = [_reordering(image, other) for other in stacked]
                _warn_unlike_first(tif.filehandle.path, stacked, orders)
            elif n_positions > 1 and len(images) == n_positions:
                positions = [im.position for im in images]
                position_names = [im.name for im in images]

        mm = tif.micromanager_metadata if tif.is_micromanager else None
        if mm:
            summary = mm.get("Summary") or {}
            if len(names) != n_channels:
                names = list(summary.get("ChNames") or [])
            if "X" not in pixel_size:
                size = summary.get("PixelSize_um") or (
                    first.keyframe.tags.valueof("MicroManagerMetadata") or {}
                ).get("PixelSize_um")
                if size and float(size) > 0:
                    pixel_size.update(X=float(size), Y=float(size))
                step = summary.get("z-step_um")
                if step and float(step) > 0 and "Z" not in pixel_size:
                    pixel_size["Z"] = float(step)
            if n_positions > 1 and (positions is None or None in positions):
                positions = _mm_positions(tif, first, n_positions)
            if n_positions > 1 and not _named_apart(position_names, n_positions):
                position_names = _mm_position_names(summary)

        ij = tif.imagej_metadata if tif.is_imagej else None
        if ij:
            if len(names) != n_channels:
                names = _imagej_names(ij, n_channels)
            if len(colors) != n_channels:
                luts = ij.get("LUTs")
                # tifffile gives one LUT (Micro-Manager's, every MMStack file) as an array
                # of 3 x 256, several as a list of them.
                luts = [] if luts is None else [luts] if np.ndim(luts) == 2 else list(luts)
                colors = [_colour_from_rgb(*(int(v) for v in lut[:, -1])) for lut in luts]
                if not luts and ij.get("mode") in ("composite", "color") and n_channels > 1:
                    # ImageJ shows composites without stored LUTs in these colours.
                    colors = [_IMAGEJ_COLOURS[i % len(_IMAGEJ_COLOURS)] for i in range(n_channels)]
            if interval is None:
                interval = _to_s(ij.get("finterval"), ij.get("tunit"))
            factor = in_micrometres(ij.get("unit", ""))
            if not ij.get("unit"):
                # Without a unit of its own (Micro-Manager's single planes), ImageJ takes
                # the one of the resolution tags.
                factor = _RESUNIT_UM.get(int(first.keyframe.resolutionunit))
            if factor and "X" not in pixel_size:
                source = "its ImageJ metadata" if ij.get("unit") else "its resolution tags"
                plane = _resolution_um(first.keyframe, factor, source)
                pixel_size.update(plane)
                spacing = _to_um(ij.get("spacing"), "µm")
                # A unit whose X and Y sizes are implausible says nothing of Z either.
                if plane and spacing and spacing > 0:
                    pixel_size["Z"] = spacing * factor
        elif not pixel_size and not images:
            # Slide scanners' own metadata first, then the resolution tags (in
            # centimetres in QPTIFF, NDPI and SCN files).
            pixel_size.update(_svs_pixel_size(tif))
            if not pixel_size:
                factor = _RESUNIT_UM.get(int(first.keyframe.resolutionunit))
                if factor:
                    pixel_size.update(_resolution_um(first.keyframe, factor, "its resolution tags"))
            # The Z step and time interval this plugin's writer keeps beside the axes of a
            # plain TIFF.
            shaped = (tif.shaped_metadata or [{}])[0]
            spacing = shaped.get("spacing_um")
            spacing = None if isinstance(spacing, bool) else _to_um(spacing, "µm")
            if pixel_size and spacing and 0 < spacing <= _MAX_Z_STEP_UM:
                pixel_size["Z"] = spacing
            interval = _to_s(shaped.get("finterval_s"), "s")

        if len(names) != n_channels:
            qpi_names, qpi_colors = _qpi_channels(first, n_channels)
            if qpi_names:
                names, colors = qpi_names, qpi_colors

        if positions is not None:
            positions = [p for p in positions if p is not None]
            if len(positions) != n_positions or len(set(positions)) < 2:
                positions = None
        return cls(
            names=list(names),
            colors=list(colors),
            pixel_size={a: pixel_size[a] for a in _SPATIAL if a in pixel_size},
            positions=tuple(tuple(p) for p in positions) if positions else None,
            frame_interval=interval,
            position_names=(
                tuple(n.strip() for n in position_names)
                if _named_apart(position_names, n_positions)
                else None
            ),
            channel_orders=tuple(orders),
        )


def _named_apart(names: list, n: int) -> bool:
    """Whether ``names`` name ``n`` positions (more than one), each, and each its own
    (two fields of one name would be one well to a table grouped by it), other than as
    this plugin's writer numbers positions it has no names for ("cells P0", "cells P1" …,
    :func:`~napari_cytomask.io.writers.write_labels`)."""
    named = len(names) == n > 1 and all(isinstance(name, str) and name.strip() for name in names)
    if not named or len({name.strip() for name in names}) < n:
        return False
    return not all(re.fullmatch(rf"(.* )?P{i}", name.strip()) for i, name in enumerate(names))


def _mm_position_names(summary: dict) -> list:
    """The names of Micro-Manager's positions ("A1-Site_0"): its summary's position list,
    as version 2 (``label``) or 1.4 (``InitialPositionList``, ``Label``) keeps it."""
    for key in ("StagePositions", "InitialPositionList"):
        entries = summary.get(key)
        if isinstance(entries, list) and entries:
            return [
                next((e[k] for k in ("label", "Label") if k in e), None)
                if isinstance(e, dict) else None
                for e in entries
            ]  # fmt: skip
    return []


def _imagej_names(ij: dict, n_channels: int) -> list[str | None]:
    """Channel names from ImageJ slice labels, when each channel's planes share one."""
    labels = ij.get("Labels") or []
    if isinstance(labels, str):
        labels = [labels]
    if not labels or len(labels) % n_channels:
        return []
    # ImageJ orders planes channel fastest, then slice, then frame.
    names = []
    for c in range(n_channels):
        own = set(labels[c::n_channels])
        if len(own) != 1 and len(labels) != n_channels:
            return []
        names.append(labels[c])
    return names


def _resolution_um(page: tifffile.TiffPage, factor: float, source: str) -> dict[str, float]:
    """Pixel size from the X/Y resolution tags (pixels per unit), in micrometres.

    Parameters
    ----------
    page
        The full-resolution page whose XResolution and YResolution tags are read.
    factor
        Micrometres per unit of the tags.
    source
        What gave the unit ("its resolution tags", "its ImageJ metadata"), for the
        warning given when the sizes are no microscope's (:func:`_no_microscope_note`).

    Returns
    -------
    dict
        ``{"X": ..., "Y": ...}``, or empty when a tag is missing or the sizes are
        not those of a microscope (see :func:`_plausible_xy`).
    """
    if 282 not in page.tags or 283 not in page.tags:  # XResolution, YResolution
        return {}
    x_res, y_res = page.resolution
    if not (x_res > 0 and y_res > 0):
        return {}
    # A whole number of pixels per inch, in inches or in centimetres (GIMP's metric units:
    # 600 dpi is 236.22 pixels per centimetre, 42.3 µm), is an editor's, a screen's or a
    # camera's (72, 96, 300, 600 dpi): no calibration, and nothing to say of it.
    dpi = {res * _RESUNIT_UM[2] / factor for res in (x_res, y_res)}
    editors = factor in (_RESUNIT_UM[2], _RESUNIT_UM[3]) and all(
        abs(d - round(d)) < 0.01 and round(d) <= max(_EDITOR_DPI) for d in dpi
    )
    if editors and all(round(d) in _EDITOR_DPI for d in dpi):
        return {}
    # Fractions of 32-bit integers hold 10 digits at most: 100/87 reads back as 0.87, not
    # 0.8700000000000001, which areas in µm² and the provenance would carry on.
    x, y = (float(f"{factor / res:.12g}") for res in (x_res, y_res))
    plane = _plausible_xy(x, y)
    if not plane and not editors:
        # A microscope's calibration gone wrong (nanometres written as micrometres) left
        # the image in pixels, unsaid, where OME metadata so wrong are said.
        path = page.parent.filehandle.path
        warnings.warn(f"{path}: {_no_microscope_note(source, x, y)}", UserWarning, stacklevel=2)
    return plane


def _plausible_xy(x: Any, y: Any) -> dict[str, float]:
    """``{"X": x, "Y": y}`` in micrometres when both could come from a microscope, else empty.

    Both must lie in :data:`PIXEL_SIZE_RANGE_UM` and differ by at most
    ``_MAX_PIXEL_ASPECT`` times. The one rule for every pixel size a TIFF gives
    without saying it is a microscope's (resolution tags, ImageJ's unit,
    slide-scanner descriptions), so that a default of 72 or 96 pixels per inch
    leaves the layer in pixels instead of scaling it by hundreds of micrometres.
    """
    x, y = _to_um(x, "µm"), _to_um(y, "µm")
    if x is None or y is None:
        return {}
    low, high = PIXEL_SIZE_RANGE_UM
    if not (low <= x <= high and low <= y <= high):
        return {}
    if max(x, y) > _MAX_PIXEL_ASPECT * min(x, y):
        return {}
    return {"X": x, "Y": y}


def _svs_pixel_size(tif: tifffile.TiffFile) -> dict[str, float]:
    """Pixel size from an Aperio SVS description's ``MPP`` (micrometres per pixel).

    Aperio files rarely carry resolution tags; their ImageDescription reads
    ``Aperio Image Library v… |AppMag = 20|MPP = 0.499|…``.
    """
    if not tif.is_svs:
        return {}
    # The fields after the header are "key = value" pairs split by "|".
    fields = dict(
        (key.strip(), value.strip())
        for key, sep, value in (
            item.partition("=") for item in tif.pages.first.description.split("|")[1:]
        )
        if sep
    )
    mpp = fields.get("MPP")
    return _plausible_xy(mpp, mpp)


#: Root element of the XML in each page's ImageDescription of PerkinElmer (Akoya)
#: Vectra and Polaris QPTIFF files and inForm's component TIFFs.
_QPI_ROOT = "PerkinElmer-QPI-ImageDescription"


def _qpi_channels(
    series: tifffile.TiffPageSeries, n_channels: int
) -> tuple[list[str | None], list[str | None]]:
    """Channel names and colours from the PerkinElmer QPI XML of each full-resolution page.

    A QPTIFF stores one page per channel, each described by XML with the
    channel's ``<Name>`` (``DAPI``, ``Opal 520``) and ``<Color>`` (``R,G,B``).

    Parameters
    ----------
    series
        The full-resolution series, one page per channel.
    n_channels
        Number of channels the reader found.

    Returns
    -------
    tuple of list
        Names and colormap names, one per channel; both empty when the pages
        are not one QPI page per channel.
    """
    pages = series.pages
    first = pages[0] if len(pages) else None
    if len(pages) != n_channels or _QPI_ROOT not in (getattr(first, "description", "") or ""):
        return [], []
    names: list[str | None] = []
    colors: list[str | None] = []
    for page in pages:
        root = _qpi_xml(getattr(page, "description", "") or "")
        if root is None:
            return [], []
        names.append(_child_text(root, "Name"))
        colors.append(_rgb_colour(_child_text(root, "Color")))
    return names, colors


def _qpi_xml(description: str) -> ET.Element | None:
    """The root of a PerkinElmer QPI ImageDescription, None for any other text."""
    try:
        root = ET.fromstring(description)
    except ET.ParseError:
        return None
    return root if _local(root.tag) == _QPI_ROOT else None


def _child_text(element: ET.Element, name: str) -> str | None:
    """Stripped text of an element's first child called ``name``; None when absent or empty."""
    child = next(iter(_children(element, name)), None)
    text = (child.text or "").strip() if child is not None else ""
    return text or None


def _rgb_colour(value: str | None) -> str | None:
    """Colormap from an ``"R,G,B"`` colour (0 to 255 each); None when malformed or black."""
    parts = (value or "").replace(";", ",").split(",")
    try:
        rgb = [int(float(part)) for part in parts]
    except ValueError:
        return None
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        return None
    return _colour_from_rgb(*rgb)
