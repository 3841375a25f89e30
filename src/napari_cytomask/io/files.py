"""Finding, pairing and reading the image files that the command line and training use."""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..labels import grey_version
from .layers import (
    Channel,
    Scan,
    can_be_labels,
    guess_roles,
    plane_sample,
    roles_and_contrast,
    stack_sample,
)
from .tiff import (
    EMPTY_FILE,
    TIFF_SUFFIXES,
    TiffReadError,
    describe_tiff,
    file_stem,
    is_empty_file,
    is_regular_file,
    is_tiff,
    open_tiff,
    read_tiff_array,
)

#: Suffixes of the images a folder given on the command line is searched for: every
#: TIFF the napari reader opens, then the formats scikit-image and NumPy read.
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg", ".bmp", ".npy")
#: The suffix of a file the project reads images from, before a frame index
#: (``scan.tif[2]``): what a file's name says of its image is the rest.
IMAGE_SUFFIX = re.compile(
    r"(\.ome)?(" + "|".join(map(re.escape, IMAGE_SUFFIXES)) + r")(?=\[\d+\]$|$)", re.I
)


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file and says why."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A whole image in memory: the one way the command line and training read a file.

    TIFF files go through the napari reader's checks (truncation, broken page
    chains, corrupt headers and strips), OME-Zarr stores at full resolution
    (:func:`~napari_cytomask.io.omezarr.open_image`), other formats through
    scikit-image.

    Parameters
    ----------
    path
        An image or label file (TIFF, PNG, JPEG, BMP, NumPy ``.npy``) or an OME-Zarr store.

    Returns
    -------
    numpy.ndarray
        TIFF files in tifffile's axis order of their first series, after a position
        axis when their series are positions of one scan; OME-Zarr stores in the order
        of their axes.

    Raises
    ------
    ImageReadError
        When the file is missing, not a regular file, or cannot be decoded, or holds no
        image (a NumPy file of one axis, or of text); the message names the file.
    """
    image = _read_whole(path)
    if image.dtype.kind not in "biuf":  # a NumPy file or Zarr store of text, or complex
        raise ImageReadError(
            f"Cannot read {path} as an image: its values are of type {image.dtype}, not "
            "numbers of light or cell ids. Give an image of integers or real numbers."
        )
    if image.ndim < 2:
        raise ImageReadError(
            f"Cannot read {path} as an image: it holds "
            f"{'one axis' if image.ndim else 'no axis'} "
            f"({' x '.join(map(str, image.shape)) or 'one value'}), and an image has at "
            "least 2 (Y and X)."
        )
    return image


def _read_whole(path: str | os.PathLike) -> np.ndarray:
    """:func:`read_image` before the pixels are checked."""
    text = str(path)
    with _decoding(path):
        if not os.path.exists(path):
            raise ImageReadError(f"{text} does not exist; check the path.")
        if _is_zarr(path):
            from .omezarr import open_image

            array = open_image(path).array
            too_large = beyond_memory(array.shape, array.dtype)
            if too_large:  # a store is read lazily elsewhere: cytomask segment reads chunks
                raise ImageReadError(
                    f"Cannot read {text} whole: it is {too_large}. If it is not damaged, "
                    "segment it with cytomask segment, which reads large images chunk by chunk."
                )
            return np.asarray(_Decoded(array, path)[...])
        if not is_regular_file(path):
            # Opening a pipe would wait for a writer forever.
            raise ImageReadError(f"{text} is not a regular file (a folder, pipe or device).")
        if is_empty_file(path):
            raise ImageReadError(f"Cannot read {text}: {EMPTY_FILE}.")
        if is_tiff(path):
            return read_tiff_array(path)
        if text.lower().endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if text.lower().endswith(TIFF_SUFFIXES):
            return _misnamed(path)
        from skimage.io import imread

        try:
            return imread(path)
        except Exception as err:
            if text.lower().endswith(IMAGE_SUFFIXES):
                raise  # a damaged PNG, say: the decoder's words, with the file named
            # Named as no format read here (it may have been one imageio reads, a GIF): its
            # error speaks of imageio's backends, not of the file.
            raise ImageReadError(
                _not_an_image(
                    path,
                    "is no image file that napari-cytomask reads",
                    "Give a TIFF, PNG, JPEG, BMP or NumPy (.npy) image.",
                )
            ) from err


def physical_memory() -> int | None:
    """This computer's memory in bytes; None where the system does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


#: The most bytes of masks opened in memory at once, not read lazily: see room_for_masks.
MASKS_IN_MEMORY = 512 << 20


def room_for_masks() -> int:
    """How many bytes of a file's masks (or of a channel made a mask) open in memory:
    :data:`MASKS_IN_MEMORY`, and an eighth of the computer's memory at most. A lazy mask
    painted into and saved over its file read the file it had replaced, refused (changed
    on disk) at every later stroke, frame shown and save."""
    return min(MASKS_IN_MEMORY, (physical_memory() or MASKS_IN_MEMORY * 8) // 8)


def in_memory(data) -> np.ndarray:
    """A lazy array read into memory once, chunk by chunk into its place (``np.asarray``
    held its chunks and the whole array at once: twice its size)."""
    if isinstance(data, np.ndarray):
        return data
    import dask.array as da

    out = np.empty(data.shape, data.dtype)
    da.store(da.asarray(data), out, lock=False)
    return out


def bytes_text(size: float) -> str:
    """A number of bytes as "16 KiB", "1.6 GiB", "24 GiB", "3 EiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024:
            return f"{size:.2g} {unit}" if unit != "bytes" and size < 10 else f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:,.0f} EiB"


def beyond_memory(shape, dtype) -> str | None:
    """What pixels of ``shape`` and ``dtype`` need when it is more bytes than the computer
    has ("A x B pixels (N GiB), more than this computer's memory (M GiB)"), else None."""
    memory = physical_memory()
    size = float(np.prod(shape, dtype=float)) * np.dtype(dtype).itemsize
    if memory is None or size <= memory:
        return None
    return (
        f"{' x '.join(map(str, shape))} pixels ({bytes_text(size)}), more than this "
        f"computer's memory ({bytes_text(memory)})"
    )


def _is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a Zarr store (``.zarr``, any case), read as an OME-Zarr image."""
    return str(path).rstrip("/").lower().endswith(".zarr")


@contextmanager
def _decoding(path):
    """Errors of reading ``path`` as :class:`ImageReadError` naming it: a decoder's own
    errors name neither the file nor what to do."""
    text = str(path)
    try:
        yield
    except (ImageReadError, TiffReadError):
        raise
    except json.JSONDecodeError as err:  # an OME-Zarr store's metadata, cut short or edited
        raise ImageReadError(
            f"Cannot read {text}: its metadata are no valid JSON ({err.msg}, line {err.lineno} "
            f"column {err.colno}); it is damaged: write or copy it again."
        ) from err
    except MemoryError as err:  # said as memory running out, with what helps
        raise MemoryError(f"reading {text}") from err
    except Exception as err:  # noqa: BLE001 - every decoder's error gets the file's name
        detail = " ".join(str(err).split()) or type(err).__name__
        raise ImageReadError(
            f"Cannot read {text}: {detail}. Check that it is an image file and not damaged."
        ) from err


#: The first bytes of the formats a file named like a TIFF may really be in.
_SIGNATURES = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpg", b"BM": "bmp"}


def _head(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def _not_an_image(
    path, what: str, advice: str = "Check that it is an image file and not damaged."
) -> str:
    """Why ``path`` cannot be read: it ``what``, what its first bytes are, then ``advice``."""
    return f"Cannot read {path}: it {what} (it starts with {_head(path)!r}). {advice}"


def _misnamed(path) -> np.ndarray:
    """A file named like a TIFF that is not one: read as what it is (a PNG renamed .tif),
    or refused with what its first bytes are."""
    head = _head(path)
    kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
    if kind is None:
        raise ImageReadError(_not_an_image(path, "is named like a TIFF file but is not one"))
    import imageio.v3 as iio

    return np.asarray(iio.imread(path, extension=f".{kind}"))


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex whose groups capture what each wildcard (``*``, ``?``, ``[...]``) matched."""
    parts = []
    pieces = re.split(r"(\*\*|\*|\?|\[[^\]]+\])", os.path.normpath(os.path.expanduser(pattern)))
    for piece in pieces:
        if piece in ("[[]", "[*]", "[?]"):
            # A wildcard written as itself ("Plate [[]1]"): part of a name, no capture, or
            # a folder of brackets on one side only paired nothing.
            parts.append(re.escape(piece[1]))
        elif piece.startswith("[") and piece.endswith("]") and len(piece) > 2:
            body = piece[1:-1]
            body = "^" + body[1:] if body.startswith("!") else body
            # Literal inside a regex set: a backslash, and what would start a nested set or
            # a set operation ("[[]" is glob's way to match a "[").
            body = "".join("\\" + c if c in "\\[&~|" else c for c in body)
            parts.append(f"([{body}])")
        elif piece == "**":
            parts.append("(.*)")
        elif piece == "*":
            parts.append(r"([^/\\]*)")
        elif piece == "?":
            parts.append(r"([^/\\])")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


def match_files(
    image_pattern: str,
    mask_pattern: str,
    names: tuple[str, str] = ("image", "mask"),
    unpaired: Callable[[str], None] | None = None,
) -> list[tuple[str, str]]:
    """Pairs of files matched by what their patterns' wildcards capture.

    ``data/set*/raw.tif`` and ``data/set*/instances_ids.png`` pair
    ``data/set7/raw.tif`` with ``data/set7/instances_ids.png``.

    Parameters
    ----------
    image_pattern, mask_pattern
        Glob patterns (``*``, ``?``, ``[...]``, ``**``) with the same wildcards.
    names
        What the two kinds of file are called in error messages.
    unpaired
        Given, files of either kind without a partner are left out, and it is called with
        a sentence saying so (a few images of a batch labelled by hand, or a batch still
        being segmented); else a file of the first kind without one is refused.

    Raises
    ------
    ValueError
        When a pattern matches nothing, a file of the first kind has no partner (without
        ``unpaired``; with it, when no file has one), or a file matches both patterns.
    """
    image, mask = (os.path.expanduser(p) for p in (image_pattern, mask_pattern))
    if os.path.isfile(image) and os.path.isfile(mask):
        if os.path.realpath(image) != os.path.realpath(mask):
            # Two files named like patterns ("scan[1].tif") are a pair as they are.
            return [(image, mask)]
    found = []
    given_patterns = (image_pattern, mask_pattern)
    for which, given, pattern in zip(names, given_patterns, (image, mask), strict=True):
        # Names compared as one form of Unicode: a Mac writes "ö" as "o" and its accent
        # (NFD), most others as one letter (NFC), and the names looked the same.
        regex = _pattern_regex(unicodedata.normalize("NFC", _named_folders(pattern)))
        # The inputs a pattern of segment takes: not a folder's notes, nor a store's chunks.
        matches, inputs = _pattern_inputs(pattern, ())
        files = [str(path) for path in inputs]
        if matches and not files:
            raise ValueError(f"the {which} pattern {given!r} {_only_other_paths(matches[0])}")
        if not files:
            raise ValueError(
                f"the {which} pattern {given!r} matches no file; check the path{_brackets(given)}."
            )
        keyed = {}
        for path in files:
            m = regex.match(unicodedata.normalize("NFC", os.path.normpath(path)))
            key = m.groups() if m else (path,)
            if key in keyed:  # their names alike but for the form of their accents
                raise ValueError(
                    f"{keyed[key]} and {path} are named alike, their accents written in two "
                    "forms of Unicode (a Mac's and most others'): rename one."
                )
            keyed[key] = path
        found.append(keyed)
    first, second = found
    # By the files themselves: a relative and an absolute pattern, ~ or a link name one file
    # twice.
    masks = {os.path.realpath(p) for p in second.values()}
    both = sorted(p for p in first.values() if os.path.realpath(p) in masks)
    if both:
        raise ValueError(
            f"{len(both)} file(s) match both the {names[0]} pattern {image_pattern!r} and the "
            f"{names[1]} pattern {mask_pattern!r}, e.g. {both[0]}; make each pattern match "
            f"its own files only (a file name rather than *.tif)."
        )
    # "*.tif" captures "scan.ome" of an OME-TIFF, whose results are named "scan_…" (as
    # file_stem names them): a capture that ends so also pairs without its ".ome", on
    # either side.
    lookup = dict(second)
    for key, path in second.items():
        lookup.setdefault(_without_ome(key), path)
    pairs = {k: lookup.get(k) or lookup.get(_without_ome(k)) for k in first}
    missing = [first[k] for k, partner in pairs.items() if partner is None]
    if missing and (unpaired is None or len(missing) == len(pairs)):
        raise ValueError(
            f"{len(missing)} {names[0]}(s) have no {names[1]} matching {mask_pattern!r}, e.g. "
            f"{missing[0]}; use the same wildcards in both patterns."
        )
    if unpaired is not None:
        partnered = {os.path.realpath(p) for p in pairs.values() if p is not None}
        alone = [p for p in second.values() if os.path.realpath(p) not in partnered]
        for (these, other, pattern), files in (
            ((names[0], names[1], mask_pattern), missing),
            ((names[1], names[0], image_pattern), sorted(alone)),
        ):
            if files:
                unpaired(
                    f"{len(files)} {these}(s) have no {other} matching {pattern!r} and are "
                    f"left out, e.g. {files[0]}."
                )
    return [(first[k], pairs[k]) for k in sorted(first) if pairs[k] is not None]


def _without_ome(key: tuple) -> tuple:
    """A pattern's captures with ".ome" (any case, as results' names drop it) dropped
    from the end of the last."""
    if not key or not key[-1].lower().endswith(".ome"):
        return key
    return (*key[:-1], key[-1][: -len(".ome")])


def find_inputs(
    items, exclude: tuple[str, ...] = (), same: dict[Path, Path] | None = None
) -> list[Path]:
    """The image files named by files, folders (their images and OME-Zarr stores, not
    recursive) or glob patterns (the images and OME-Zarr stores they match, not what is
    inside a store).

    A file named on its own is taken whatever its ending: reading it says whether it is an
    image. A folder or pattern takes only the files whose ending says they are images, so
    ``tree/**/*`` leaves notes, tables and a store's chunk files alone.

    Parameters
    ----------
    items
        Paths or patterns as given on the command line.
    exclude
        File-name endings to leave out of folders and patterns (earlier results).
    same
        Filled, when given, with each path left out as another name (a link) of a file
        taken already, mapped to the name it is taken by.

    Returns
    -------
    list of Path
        Absolute paths, each file once; links are kept, not followed.

    Raises
    ------
    ValueError
        When an item names nothing.
    """
    found: dict[Path, Path] = {}
    for item in items:
        text = os.path.expanduser(str(item))
        # A file named like a pattern ("scan[1].tif") is that file.
        if glob.has_magic(text) and not os.path.exists(text):
            matches, paths = _pattern_inputs(text, exclude)
            taken = set(paths)
            others = [p for p in matches if p not in taken and not p.name.endswith(exclude)]
            if not paths and others:
                raise ValueError(f"{text} {_only_other_paths(others[0])}")
        elif Path(text).is_dir() and not is_image(Path(text)):
            # Its image files and its OME-Zarr stores (folders that are one image each).
            paths = sorted(
                p for p in Path(text).iterdir()
                if _is_input(p) and not p.name.endswith(exclude) and not p.name.startswith(".")
            )  # fmt: skip
        else:
            paths = [Path(text)]
            if not is_image(paths[0]):
                what = "is not a regular file" if os.path.exists(text) else "does not exist"
                raise ValueError(f"{text} {what}.")
        if not paths:
            raise ValueError(
                f"{text} holds no image file; check the path or pattern{_brackets(text)}"
                f"{_subfolders(text, exclude)}."
            )
        # Each file once, by the name it was given: a link's results go beside the link,
        # named after it, not into the folder it points to (shared, perhaps read-only).
        for path in paths:
            named = Path(os.path.abspath(path))
            kept = found.setdefault(path.resolve(), named)
            if same is not None and kept != named:
                same[named] = kept
    return list(found.values())


#: A wildcard character written as a pattern of itself (``[[]``, ``[*]``, ``[?]``).
_ESCAPED = re.compile(r"\[([*?[])\]")


def input_roots(items) -> list[Path]:
    """The folder each of ``items`` (as :func:`find_inputs` takes them) names its files
    in: a pattern's folder before its first wildcard, a folder itself, a file's folder.
    Absolute, links kept. Results laid out under them stay where they are when a pattern
    matches more files later (``data/set*/raw.tif`` of one set, then of two)."""
    roots = []
    for item in items:
        text = os.path.expanduser(str(item))
        if glob.has_magic(text) and not os.path.exists(text):
            # A bracket written as "[[]" (as a name with brackets is matched) is no wildcard.
            parts = Path(_named_folders(text)).parts
            # Every wildcard escaped ("scan[[]1].tif"): one file's name, in its folder.
            magic = [i for i, part in enumerate(parts) if glob.has_magic(_ESCAPED.sub("", part))]
            fixed = magic[0] if magic else len(parts) - 1
            folder = Path(*(_ESCAPED.sub(r"\1", part) for part in parts[:fixed]))  # "." if 0
            roots.append(Path(os.path.abspath(folder)))
        elif Path(text).is_dir() and not is_image(Path(text)):
            roots.append(Path(os.path.abspath(text)))
        else:
            roots.append(Path(os.path.abspath(text)).parent)
    return roots


def _named_folders(pattern: str) -> str:
    """``pattern`` with its folders that are there by the name it gives them, brackets and
    all ("Plate [1]", under any folder the pattern's folders before it match), written as
    that name: as a pattern, "Plate [1]/*.tif" took the folder "Plate 1" and left "Plate
    [1]" out without a word."""
    parts = re.split(r"[\\/]", pattern) if os.altsep else pattern.split(os.sep)
    done: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            # The folders it lies in: none for a relative pattern's first, the root's.
            head = os.sep.join(done) if any(done) else os.sep * bool(done)
            parents = glob.glob(head, recursive=True) if glob.has_magic(head) else [head]
            if any(os.path.isdir(os.path.join(parent, part)) for parent in parents):
                part = glob.escape(part)
        done.append(part)
    return os.sep.join([*done, parts[-1]])


def _brackets(pattern: str) -> str:
    """What to do when square brackets in a pattern were meant as part of a name."""
    if "[" not in pattern:
        return ""
    return " (square brackets make a pattern: write [[] for each [ that is part of a name)"


def _subfolders(text: str, exclude: tuple[str, ...]) -> str:
    """What to give for the images in a folder's subfolders, which are not searched: a
    pattern that takes them all, whatever their ending, and their OME-Zarr stores."""
    folder = Path(text)
    if not folder.is_dir():
        return ""
    pattern = os.path.join(text, "**", "*")
    if not _pattern_inputs(pattern, exclude)[1]:
        return ""
    return f" (its subfolders are not searched: give a pattern such as '{pattern}')"


def _pattern_inputs(pattern: str, exclude: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """What a glob pattern matches, sorted, and the inputs among them: those a folder would
    give (:func:`_is_input`), not inside an OME-Zarr store (what a store holds is part of
    its image), nor ending in ``exclude``; its folders there by their names are those
    folders (:func:`_named_folders`)."""
    matches = [Path(p) for p in sorted(glob.glob(_named_folders(pattern), recursive=True))]
    # Each folder's metadata read once, not once for every chunk file a store holds.
    store = functools.cache(is_ome_zarr)
    inputs = [
        p for p in matches
        if _is_input(p) and not p.name.endswith(exclude)
        and not any(store(folder) for folder in p.parents)
    ]  # fmt: skip
    return matches, inputs


def _only_other_paths(example: Path) -> str:
    """What to say of a pattern that matched paths, none of them an input (``example``)."""
    return (
        f"matches no image file or OME-Zarr store, only other paths such as {example}: a "
        f"pattern takes files ending in {', '.join(IMAGE_SUFFIXES)} and OME-Zarr stores (not "
        "what is inside them); name a file on its own to have it read whatever its ending."
    )


def _is_input(path: Path) -> bool:
    """What a folder or pattern gives as an input: a file whose ending is an image's, or
    an OME-Zarr store (a plain .zarr folder beside the scans may hold anything; named on
    its own, it is read)."""
    return path.suffix.lower() in IMAGE_SUFFIXES if path.is_file() else is_ome_zarr(path)


def is_image(path: Path) -> bool:
    """A file, or a Zarr store (a folder that is one image)."""
    return path.is_file() or (path.is_dir() and _is_zarr(path))


def is_ome_zarr(path: Path) -> bool:
    """An OME-Zarr store: named so ("cells.ome.zarr", any case), or a ".zarr" folder whose
    group metadata (Zarr v2 ``.zattrs``, v3 ``zarr.json``) describes an image."""
    name = path.name.lower()
    # The name first: it spares a look at the disk for every folder above a pattern's match.
    if not name.endswith(".zarr") or not path.is_dir():
        return False
    if name.endswith(".ome.zarr"):
        return True
    # The root group's own attributes: Zarr v3's consolidated metadata holds its children's
    # too (a SpatialData store, no image at its root, has images below).
    for metadata, attributes in ((".zattrs", ()), ("zarr.json", ("attributes",))):
        try:
            record = json.loads((path / metadata).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in attributes:
            record = record.get(key) if isinstance(record, dict) else None
        # An image, or a bioformats2raw store of images (the first is read).
        if isinstance(record, dict) and any(
            key in record or key in (record.get("ome") or {})
            for key in ("multiscales", "bioformats2raw.layout")
        ):
            return True
    return False


def open_scan(path: str | os.PathLike, *, mosaic: bool = False) -> Scan:
    """The channels of any file the plugin reads: the one way a file is opened.

    TIFF files (decided by their first bytes, whatever their suffix) go through
    the napari reader (:func:`~napari_cytomask.io.tiff.open_tiff`): names,
    colours, roles, pixel sizes, positions and pyramid levels from their
    metadata, pixels read lazily. OME-Zarr images at full resolution, with the
    axes, pixel size and time step their metadata give
    (:func:`~napari_cytomask.io.omezarr.open_image`), one channel per index of
    their channel axis, pixels read lazily too. Other images (PNG, JPEG, BMP,
    NumPy) are read whole: one channel named after the file, or one per colour of
    an RGB(A) image.

    Parameters
    ----------
    path
        The file.
    mosaic
        Stitch a TIFF tile scan's positions into one mosaic per channel.

    Returns
    -------
    Scan

    Raises
    ------
    TiffReadError, ImageReadError
        When the file cannot be read; the message names it.
    """
    if is_tiff(path):
        return open_tiff(path, mosaic=mosaic)
    if _is_zarr(path) and os.path.exists(path):  # a missing one: read_image says so
        with _decoding(path):
            return _open_zarr(path)
    image = read_image(path)
    name = file_stem(path)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        planes = [image[..., c] for c in range(3)]
        channels = [
            Channel(name=f"{name} {colour}", data=plane, index=i, color=colour)
            for i, (colour, plane) in enumerate(zip(("red", "green", "blue"), planes, strict=True))
        ]
        colours = True
    else:
        planes = [image]
        channels = [Channel(name=name, data=image, named_after_file=True)]
        colours = False
    guess_roles(channels, planes)
    ndim = planes[0].ndim
    axes = tuple("TZYX"[-ndim:]) if ndim <= 4 else (*(f"D{i}" for i in range(ndim - 4)), *"TZYX")
    return Scan(
        path=str(path), channels=channels, axes=axes, scale=(1.0,) * len(axes), colours=colours
    )


def _open_zarr(path: str | os.PathLike) -> Scan:
    """An OME-Zarr image as a scan, its channels named as a TIFF's are: by the metadata,
    else after the file when it has one channel, else ``C1``…``Cn``. Its pixels stay on
    disk (dask arrays) until read, as a TIFF's do: roles and contrast come from a sample
    of each channel (:func:`~napari_cytomask.io.layers.stack_sample`)."""
    import dask.array as da

    from .omezarr import open_image

    image = open_image(path)
    axes, scale = list(image.axes), list(image.scale)
    units = None if image.units is None else list(image.units)
    translate = None if image.translate is None else list(image.translate)
    at = axes.index("C") if "C" in axes else None
    if at is not None:
        for kept in (axes, scale, units, translate):
            if kept is not None:
                del kept[at]
    checked = _Decoded(image.array, path)
    # name=False: not named by a hash of the array, which would read it.
    pixels = da.from_array(checked, chunks=image.array.chunks, name=False)
    # Its pyramid, whose levels napari shows as the view needs them.
    levels = [pixels] + [
        da.from_array(_Decoded(level, path), chunks=level.chunks, name=False)
        for level in image.levels
    ]
    n_channels = len(image.channel_names)
    keys = [() if at is None else (slice(None),) * at + (i,) for i in range(n_channels)]
    names = image.channel_names
    after_file = n_channels == 1 and names[0] is None
    channels = [
        Channel(
            name=file_stem(path) if after_file else name or f"C{i + 1}",
            data=[level[key] for level in levels] if len(levels) > 1 else pixels[key],
            index=i,
            named_after_file=after_file,
        )
        for i, (name, key) in enumerate(zip(names, keys, strict=True))
    ]
    samples = [_zarr_sample(checked, at, i) for i in range(n_channels)]
    roles_and_contrast(channels, samples, image.array.dtype, path=str(path))
    channels += _label_channels(path, image, tuple(pixels[keys[0]].shape), n_channels)
    return Scan(
        path=str(path),
        channels=channels,
        axes=tuple(axes),
        scale=tuple(scale),
        units=None if units is None else tuple(units),
        translate=None if translate is None else tuple(translate),
    )


def _label_channels(path, image, shape: tuple[int, ...], first: int) -> list[Channel]:
    """The label images an OME-Zarr image keeps beside it (in its ``labels`` group, as
    NGFF does: masks of its cells), as mask channels numbered on from its own channels
    (``first``), named as the store names them (a channel axis of one channel, which some
    writers give them, left out). One that does not cover the image pixel for pixel
    (another size: a lower resolution, or other axes), holds no ids, or cannot be read is
    left out with a warning that says why; the image opens all the same."""
    import dask.array as da

    from .omezarr import open_image

    channels, left_out = [], []
    for name, where in image.label_images:
        try:
            labels = open_image(Path(path, where))
        except ImageReadError as err:
            left_out.append(f"{name}: {err}")
            continue
        data = da.from_array(_Decoded(labels.array, path), chunks=labels.array.chunks, name=False)
        c_axis = labels.axes.index("C") if "C" in labels.axes else None
        if c_axis is not None and data.shape[c_axis] == 1:
            data, c_axis = da.squeeze(data, axis=c_axis), None
        if c_axis is not None or data.shape != shape:
            size = " x ".join(map(str, labels.array.shape))
            left_out.append(
                f"{name}: its {size} pixels do not cover the image's "
                f"{' x '.join(map(str, shape))} one for one"
            )
        elif not can_be_labels(labels.array.dtype):
            left_out.append(f"{name}: its pixels are {labels.array.dtype}, not integer ids")
        else:
            channels.append(Channel(name=name, data=data, role="mask", index=first + len(channels)))
    if left_out:
        warnings.warn(
            f"{path}: {len(left_out)} of its label images did not open "
            f"({'; '.join(left_out)}); the image opened without "
            f"{'it' if len(left_out) == 1 else 'them'}.",
            UserWarning,
            stacklevel=3,
        )
    return channels


class _Decoded:
    """A Zarr array whose reads that fail name the store: a chunk cut short or overwritten
    said only its codec's words ("error during blosc decompression: -1"), in napari when
    it was first shown."""

    def __init__(self, array, path: str | os.PathLike):
        self.array, self.path = array, path
        self.shape, self.dtype, self.ndim, self.chunks = (
            array.shape, array.dtype, array.ndim, array.chunks
        )  # fmt: skip

    def __getitem__(self, key):
        try:
            return self.array[key]
        except MemoryError:
            raise
        except Exception as err:
            raise ImageReadError(
                f"Cannot read {self.path}: some of its pixels do not decode (a chunk file cut "
                "short, overwritten, or of another data type); the store is damaged: write or "
                "copy it again."
            ) from err


def _zarr_sample(array, c_axis: int | None, c: int) -> np.ndarray:
    """The pixels of channel ``c`` of a stack (its channel axis ``c_axis``, its plane the
    last two axes) that decide the channel's role and contrast
    (:func:`~napari_cytomask.io.layers.stack_sample`), read from the chunks they lie in."""
    leading = array.shape[:-2]
    height, width = array.shape[-2:]

    def sample_at(at: float) -> np.ndarray:
        plane = [c if i == c_axis else min(n - 1, int(n * at)) for i, n in enumerate(leading)]
        return plane_sample(lambda rows, cols: array[(*plane, rows, cols)], height, width,
                            tuple(array.chunks[-2:]))  # fmt: skip

    return stack_sample(sample_at, any(n > 1 for i, n in enumerate(leading) if i != c_axis))


def file_pixel_size(path: str | os.PathLike) -> tuple[float, float] | None:
    """The (Y, X) pixel size in µm a file records, or None (none, or not readable)."""
    try:
        with open_scan(path) as scan:
            return scan.pixel_size_um
    except (ValueError, OSError):
        return None


def read_labels(
    path,
    channel: int | None = None,
    *,
    among_masks: int | None = None,
    advice: str = "give its channel",
) -> tuple[np.ndarray, dict]:
    """Label ids read from ``path`` (the ``channel`` given, else a TIFF's only channel or
    the only mask channel of a scan whose channels it names, as the reader and the dock
    find it) in memory, with what the file says of their axes (:func:`geometry_of`), in
    the same order.

    ``among_masks`` is the channel to take from a file of several channels (one of
    them, other files are read as without it); it must be one of its mask channels.

    Raises
    ------
    ValueError
        When no channel is given and a scan whose channels the file names holds several
        masks (the message ends with ``advice`` on how to choose one) or none, or
        ``among_masks`` is not one of a file's mask channels.

    A TIFF's channel is read in the order of the axes the reader names, not the order the
    file stores them in (Z before T, say), so its names fit it; an OME-Zarr store's keeps
    its axes and pixel size too. A file that holds several channels, none chosen and not
    one mask among them, is read whole (:func:`read_image`), its axes unnamed, as are those
    of other files (NumPy, PNG), unless the file names its channels: then they are images
    (ValueError).
    """
    if channel is not None or is_tiff(path) or _is_zarr(path):
        with open_scan(path) as scan:
            masks = scan.by_role("mask")
            if channel is None and not masks and _is_zarr(path):
                _check_labels_opened(path)
            # A scan whose channels the file names, one its mask (a tile scan's ground truth);
            # unnamed pages told apart by a guess may be the frames of one label stack.
            named = _names_channels(scan)
            listed = ", ".join(f"{c.index} ({c.name})" for c in masks) or "none"
            if channel is None and among_masks is not None and len(scan.channels) > 1:
                if among_masks not in [c.index for c in masks]:
                    raise ValueError(
                        f"{path}: channel {among_masks} is not one of its mask channels ({listed})."
                    )
                channel = among_masks
            if channel is None and len(scan.channels) > 1 and len(masks) > 1 and named:
                raise ValueError(
                    f"{path} holds {len(masks)} mask channels, {listed}: say which one holds "
                    f"the labels ({advice})."
                )
            if channel is None and len(scan.channels) > 1 and len(masks) == 1 and named:
                channel = masks[0].index
            if channel is None and len(scan.channels) > 1 and not masks and named:
                # Read whole, its channels were exported as time points of "cells" (exit 0).
                names = ", ".join(f"{c.index} ({c.name})" for c in scan.channels)
                raise ValueError(
                    f"{path} holds {len(scan.channels)} image channels, {names}, and no channel "
                    "of label ids: it holds no labels to read."
                )
            if channel is not None or (len(scan.channels) == 1 and not scan.rgb):
                chosen = [scan.channels[0].index] if channel is None else [channel]
                labels = np.asarray(read_channels(scan, chosen, 1)[0])
                return labels, geometry_of(scan, labels.ndim)
    labels = read_image(path)
    if labels.ndim == 3 and labels.shape[-1] in (3, 4) and labels.dtype == np.uint8:
        # A palette's indices are ids, its colours a table; a grey picture saved as colour
        # holds its ids thrice.
        indices = _palette_indices(path)
        if indices is not None:
            return indices, {}
        if (labels[..., :3] == labels[..., :1]).all():
            return labels[..., 0].copy(), {}
        # Exported as 256 "frames" of 300 x 3 pixels, three "cells" in each (exit 0).
        raise ValueError(
            f"{path} is a colour picture (red, green and blue), not label ids: a viewer's "
            "colours of the cells are no ids. Save the labels themselves (one whole-number "
            "id per cell, 0 for the background), as a grey TIFF or PNG."
        )
    return labels, {}


def _palette_indices(path) -> np.ndarray | None:
    """The indices of a palette picture (a PNG or GIF of colours by index), which a reader
    of colours gives as red, green and blue; None for other files."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return np.asarray(picture) if picture.mode == "P" else None
    except (OSError, UnidentifiedImageError):
        return None


def _check_labels_opened(path) -> None:
    """Refuse an OME-Zarr store whose label images all failed to open as its ground truth:
    its image's pixels, read in their place, were scored as cells (F1 0.000)."""
    from .omezarr import open_image

    names = [name for name, _ in open_image(path).label_images]
    if names:
        raise ValueError(
            f"{path}: none of its label images ({', '.join(names)}) could be read as the "
            "labels of its image (the note above says why), and its image is no labels."
        )


def _names_channels(scan: Scan) -> bool:
    """Whether a scan's file names its channels, or declares a channel axis (an ImageJ
    hyperstack's or an OME-TIFF's, unnamed) of images and masks: not "C1", "C2" … as the
    reader calls the unnamed pages it tells apart by their pixels, which may be the frames
    of one stack, as may a declared axis of masks alone (tifffile calls a stack of 3 label
    images saved with its defaults channels)."""
    declared = (
        "C" in scan.metadata.get("original_axes", "")
        and len({c.role == "mask" for c in scan.channels}) > 1
    )
    return declared or any(re.fullmatch(r"C\d+", c.name) is None for c in scan.channels)


def read_whole_hint(path, channel: int | None) -> str:
    """What to add where labels :func:`read_labels` read whole from ``path`` (no
    ``channel`` given) did not fit: that the file names none of its channels, and which
    of them looks like a mask, to give as ``--mask-channel``; else empty."""
    if channel is not None or not (is_tiff(path) or _is_zarr(path)):
        return ""
    try:
        with open_scan(path) as scan:
            masks, named, n = scan.by_role("mask"), _names_channels(scan), len(scan.channels)
    except (OSError, ValueError):
        return ""
    if n < 2 or not masks or named:
        return ""
    listed = " or ".join(str(c.index) for c in masks)
    return (
        f" {path} names none of its {n} channels, so it was read whole; "
        f"if channel {listed} (which looks like a mask) holds the labels, give it with "
        f"--mask-channel {masks[0].index}."
    )


def geometry_of(scan: Scan, ndim: int) -> dict:
    """A scan's axis names, pixel sizes and units, and where it lies (its translate, when
    the file places it), as keyword arguments of
    :func:`~napari_cytomask.io.writers.write_labels`, for labels of ``ndim`` axes made from
    it. Labels of fewer axes (one position of a stack, one plane) keep its pixel size and
    its place in Y and X; which of its other axes they kept is not known (a P, T, Y, X
    scan's first time points are P, Y, X), so those are left unnamed, one step apart.
    Empty when its axes are others (a colour image's, or labels of more axes than it
    has)."""
    n, offset = len(scan.axes), scan.translate
    if ndim == n:
        units = None if scan.units is None else tuple(scan.units)
        placed = {} if offset is None else {"translate": tuple(offset)}
        return {"scale": tuple(scan.scale), "units": units, "axis_labels": scan.axes, **placed}
    if not (2 <= ndim < n and tuple(scan.axes[-2:]) == ("Y", "X")):
        return {}
    lead = ndim - 2
    units = None if scan.units is None else ("pixel",) * lead + tuple(scan.units[-2:])
    placed = {} if offset is None else {"translate": (0.0,) * lead + tuple(offset[-2:])}
    return {"scale": (1.0,) * lead + tuple(scan.scale[-2:]), "units": units, **placed}


def channel_named(source: str | os.PathLike | None, index: int | None) -> str | None:
    """The name of channel ``index`` of the scan at ``source``, as the layer of that channel
    has it; None when the scan is not there or cannot be read, or names no such channel."""
    if source is None or index is None or not is_image(Path(source)):
        return None
    try:
        with open_scan(source) as scan:
            channels = scan.channels
    except (OSError, ValueError):
        return None
    return next((c.name for c in channels if c.index == index), None)


def with_channel_named(record: dict) -> dict:
    """The ``record`` of a result opened again with the name of its scan's channel where
    it gives the channel's index alone (a ``cytomask segment`` record), as the channel's
    layer is named: the metrics dock and ``cytomask evaluate`` record the same name so."""
    if not record or record.get("channel_name") is not None:
        return record
    source, index = record.get("source"), record.get("channel_index")
    return {**record, "channel_name": channel_named(source, index)}


class ScanPositions(NamedTuple):
    """Where each position of a scan lies, ``stage`` (``(y, x)`` in µm), and what it is
    called, ``names`` ("A1 site 3"), as its file records them; each None where it records
    none. An export keeps both: the OME-TIFF's positions and image names, the tables'
    ``position_name`` column."""

    stage: list[tuple[float, float]] | None = None
    names: list[str] | None = None


def positions_for(
    stage, names, axes: Sequence[str] | None, shape: tuple[int, ...]
) -> ScanPositions:
    """The ``stage`` positions and ``names`` a scan records of its positions, for labels
    of ``shape`` and ``axes`` made from it: of the labels' ``P`` axis, where it holds as
    many positions (labels of one position, or of a stitched mosaic, have none)."""
    axes = [str(axis).upper() for axis in axes or ()]
    if "P" not in axes or len(axes) != len(shape):
        return ScanPositions()
    n = shape[axes.index("P")]
    stage = [(float(y), float(x)) for y, x in stage] if stage and len(stage) == n else None
    return ScanPositions(stage, list(names) if names and len(names) == n else None)


def recorded_positions(source, axes: Sequence[str] | None, shape: tuple[int, ...]) -> ScanPositions:
    """The positions the TIFF at ``source`` records (:func:`positions_for`), for labels of
    ``shape`` and ``axes`` made from it or written with its positions (an OME-TIFF export
    names its images by well); none where there is no such file, or it cannot be read
    (moved or damaged since: the labels are still of use)."""
    if "P" not in [str(axis).upper() for axis in axes or ()]:
        return ScanPositions()
    if not source or not os.path.isfile(source) or not is_tiff(source):
        return ScanPositions()
    try:
        scan = describe_tiff(source)  # the header alone: no pixel is read
    except (OSError, ValueError):
        return ScanPositions()
    return positions_for(scan.positions, scan.position_names, axes, shape)


def scan_positions_of(scan: Scan, shape: tuple[int, ...]) -> ScanPositions:
    """The positions of ``scan`` (:func:`positions_for`) for labels of ``shape`` made from
    it, which have its axes."""
    axes = scan.axes if len(shape) == len(scan.axes) else None
    meta = scan.metadata
    return positions_for(meta.get("stage_positions_um"), meta.get("position_names"), axes, shape)


def pick_channels(scan: Scan, channels: list[int] | None, n_channels: int) -> list[int]:
    """The channel indices :func:`read_channels` reads: ``channels``, or when ``None`` the
    input channel the reader marks, then further image channels, up to ``n_channels``. Of
    a colour image, its first colours; all three for a model of one channel, which sees
    their grey version (:func:`reads_grey`)."""
    if channels is not None:
        return list(channels)
    if scan.colour_picture:
        return list(range(3 if n_channels == 1 else min(n_channels, 3)))
    usable = scan.by_role("input") + scan.by_role("image")
    return [c.index for c in (usable or scan.channels)[:n_channels]]


def _stacked(planes: dict, n: int):
    """The first ``n`` of ``planes`` (by index; lazy ones stay lazy) on a last axis."""
    first = [planes[i] for i in range(n)]
    if all(isinstance(p, np.ndarray) for p in first):
        return np.stack(first, axis=-1)
    import dask.array as da

    return da.stack([da.asarray(p) for p in first], axis=-1)


def reads_grey(scan: Scan, channels: list[int], n_channels: int) -> bool:
    """Whether :func:`read_channels` reads ``channels`` of ``scan`` for a model of
    ``n_channels`` as the :func:`~napari_cytomask.labels.grey_version` of a colour image:
    its three colours, for a model of one channel."""
    return scan.colour_picture and n_channels == 1 and sorted(channels) == [0, 1, 2]


def read_channels(
    path: str | os.PathLike | Scan, channels: list[int] | None, n_channels: int
) -> list:
    """The full-resolution channel arrays (lazy for TIFF scans) of one input file.

    Parameters
    ----------
    path
        Any file :func:`open_scan` reads, or a scan it opened.
    channels
        Channel indices, numbered from 0; ``None``: the channel the reader marks
        as input, then further image channels in order, up to ``n_channels``
        (:func:`pick_channels`). The three colours of a colour image for a model of
        one channel are read as one, their grey version (:func:`reads_grey`).
    n_channels
        How many channels the model takes.

    Raises
    ------
    ValueError
        When the file has no such channel.
    """
    # A missing or irregular file: read_image says so.
    scan = path if isinstance(path, Scan) else open_scan(path)
    if scan.rgb:
        # A colour TIFF's channels are its colours, as those of other colour images.
        colours = scan.channels[0].base
        by_index = {i: colours[..., i] for i in range(3)}
    else:
        by_index = {c.index: c.base for c in scan.channels}
    names = {} if scan.rgb else {c.index: c.name for c in scan.channels}
    channels = pick_channels(scan, channels, n_channels)
    if reads_grey(scan, channels, n_channels):
        return [grey_version(scan.channels[0].base if scan.rgb else _stacked(by_index, 3))]
    missing = [c for c in channels if c not in by_index]
    if missing:
        raise ValueError(
            f"{scan.path} has no channel {missing[0]}; its channels are "
            + ", ".join(f"{i} ({names[i]})" if i in names else str(i) for i in sorted(by_index))
            + " (numbered from 0)."
        )
    return [by_index[c] for c in channels]


#: Bytes read from each end of a file for :func:`sample_digest`.
SAMPLE_BYTES = 256 * 1024


def sample_digest(path: str | os.PathLike) -> str | None:
    """A fingerprint of a file's first and last :data:`SAMPLE_BYTES` (and its size): which
    tells a scan from another of the same size (two fields of one camera), read in a few
    milliseconds whatever the file's size; None for a folder (an OME-Zarr store) or a
    file that cannot be read."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.sha1(str(size).encode(), usedforsecurity=False)
            digest.update(handle.read(SAMPLE_BYTES))
            if size > 2 * SAMPLE_BYTES:
                handle.seek(size - SAMPLE_BYTES)
            digest.update(handle.read(SAMPLE_BYTES))
    except OSError:
        return None
    return digest.hexdigest()
