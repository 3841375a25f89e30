"""Finding, pairing and reading the image files that the command line and training use."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np

#: Suffixes of the images a folder given on the command line is searched for.
IMAGE_SUFFIXES = (".tif", ".tiff", ".btf", ".png", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file and says why."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A whole image in memory: the one way the command line and training read a file.

    TIFF files go through the napari reader's checks (truncation, broken page
    chains, corrupt headers and strips), OME-Zarr stores through their labels
    array, other formats through scikit-image.

    Parameters
    ----------
    path
        An image or label file (TIFF, PNG, JPEG, BMP, NumPy ``.npy``) or an OME-Zarr store.

    Returns
    -------
    numpy.ndarray
        TIFF files in tifffile's axis order of their first series.

    Raises
    ------
    ImageReadError
        When the file is missing, not a regular file, or cannot be decoded; the
        message names the file.
    """
    from .tiff import TiffReadError, is_regular_file, read_tiff_array

    text = str(path)
    try:
        if text.rstrip("/").endswith(".zarr"):
            from .omezarr import open_labels

            return np.asarray(open_labels(path))
        if not os.path.exists(path):
            raise ImageReadError(f"{text} does not exist; check the path.")
        if not is_regular_file(path):
            # Opening a pipe would wait for a writer forever.
            raise ImageReadError(f"{text} is not a regular file (a folder, pipe or device).")
        if text.lower().endswith((".tif", ".tiff", ".btf")):
            return read_tiff_array(path)
        if text.lower().endswith(".npy"):
            return np.load(path, allow_pickle=False)
        from skimage.io import imread

        return imread(path)
    except (ImageReadError, TiffReadError):
        raise
    except MemoryError as err:
        raise ImageReadError(f"Cannot read {text}: it does not fit in memory.") from err
    except Exception as err:  # noqa: BLE001 - every decoder's error gets the file's name
        detail = " ".join(str(err).split()) or type(err).__name__
        raise ImageReadError(
            f"Cannot read {text}: {detail}. Check that it is an image file and not damaged."
        ) from err


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex whose groups capture what each wildcard (``*``, ``?``, ``[...]``) matched."""
    parts = []
    pieces = re.split(r"(\*\*|\*|\?|\[[^\]]+\])", os.path.normpath(os.path.expanduser(pattern)))
    for piece in pieces:
        if piece.startswith("[") and piece.endswith("]") and len(piece) > 2:
            body = piece[1:-1]
            body = "^" + body[1:] if body.startswith("!") else body
            parts.append(f"([{body.replace(chr(92), chr(92) * 2)}])")
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
    image_pattern: str, mask_pattern: str, names: tuple[str, str] = ("image", "mask")
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

    Raises
    ------
    ValueError
        When a pattern matches nothing, or a file of the first kind has no partner.
    """
    found = []
    for which, pattern in zip(names, (image_pattern, mask_pattern), strict=True):
        regex = _pattern_regex(pattern)
        files = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not files:
            raise ValueError(f"the {which} pattern {pattern!r} matches no file; check the path.")
        keyed = {}
        for path in files:
            m = regex.match(os.path.normpath(path))
            keyed[m.groups() if m else (path,)] = path
        found.append(keyed)
    first, second = found
    missing = [first[k] for k in first if k not in second]
    if missing:
        raise ValueError(
            f"{len(missing)} {names[0]}(s) have no {names[1]} matching {mask_pattern!r}, e.g. "
            f"{missing[0]}; use the same wildcards in both patterns."
        )
    return [(first[k], second[k]) for k in sorted(first)]


def find_inputs(items, exclude: tuple[str, ...] = ()) -> list[Path]:
    """The image files named by files, folders (their images, not recursive) or glob patterns.

    Parameters
    ----------
    items
        Paths or patterns as given on the command line.
    exclude
        File-name endings to leave out of folders and patterns (earlier results).

    Raises
    ------
    ValueError
        When an item names nothing.
    """
    found: dict[Path, None] = {}
    for item in items:
        text = os.path.expanduser(str(item))
        if glob.has_magic(text):
            paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            paths = [p for p in paths if _is_image(p) and not p.name.endswith(exclude)]
        elif Path(text).is_dir() and not _is_image(Path(text)):
            paths = sorted(
                p for p in Path(text).iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                and not p.name.endswith(exclude) and not p.name.startswith(".")
            )  # fmt: skip
        else:
            paths = [Path(text)]
            if not _is_image(paths[0]):
                what = "is not a regular file" if os.path.exists(text) else "does not exist"
                raise ValueError(f"{text} {what}.")
        if not paths:
            raise ValueError(f"{text} holds no image file; check the path or pattern.")
        found.update(dict.fromkeys(p.resolve() for p in paths))
    return list(found)


def _is_image(path: Path) -> bool:
    """A file, or a Zarr store (a folder that is one image)."""
    return path.is_file() or (path.is_dir() and path.name.endswith(".zarr"))


def read_channels(path: str | os.PathLike, channels: list[int] | None, n_channels: int) -> list:
    """The channel arrays (lazy for TIFF scans) of one input file.

    Parameters
    ----------
    path
        A TIFF scan (opened with the plugin's reader) or another image file.
    channels
        Channel indices, numbered from 0; ``None``: the channel the reader marks
        as input, then further image channels in order, up to ``n_channels``.
    n_channels
        How many channels the model takes.

    Raises
    ------
    ValueError
        When the file has no such channel.
    """
    from .layers import METADATA_KEY

    path = Path(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise ValueError(f"{path} {what}.")
    if path.suffix.lower() in (".tif", ".tiff", ".btf"):
        from .tiff import read_tiff

        roles, arrays = {}, {}
        for data, kwargs, _ in read_tiff(path):
            info = kwargs["metadata"][METADATA_KEY]
            roles[info["channel_index"]] = info["role"]
            # Pyramids: the full-resolution level.
            arrays[info["channel_index"]] = data[0] if isinstance(data, list) else data
        if channels is None:
            order = {"input": 0, "image": 1}
            usable = sorted(
                (i for i in roles if roles[i] in order), key=lambda i: (order[roles[i]], i)
            )
            channels = usable[:n_channels] or sorted(roles)[:n_channels]
        missing = [c for c in channels if c not in arrays]
        if missing:
            raise ValueError(
                f"{path} has no channel {missing[0]}; its channels are {sorted(arrays)} "
                "(numbered from 0)."
            )
        return [arrays[c] for c in channels]
    image = read_image(path)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        picked = channels or list(range(min(n_channels, image.shape[-1])))
        return [image[..., c] for c in picked]
    return [image]
