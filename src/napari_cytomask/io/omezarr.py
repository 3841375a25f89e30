"""OME-Zarr (NGFF) images: label images larger than memory written chunk by chunk, and
images read with their axes, pixel size and channel names."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .layers import SECONDS, in_micrometres, length_symbol, normalise_unit, time_step

SUFFIX = ".ome.zarr"
#: Most chunks of an image read: every read here goes through dask, whose task graph
#: holds one task per chunk (62 million took more than 4 GiB to make). 4 million chunks
#: of 256 x 256 pixels of 16 bits are 512 GiB.
MAX_CHUNKS = 2**22

#: NGFF's names (those of UDUNITS-2) of the length units, by the symbols files use.
_LENGTH_UNITS = {
    "nm": "nanometer",
    "µm": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}
_TYPES = {"y": "space", "x": "space", "z": "space", "t": "time", "c": "channel"}


def create_labels(
    path: str | os.PathLike,
    shape: Sequence[int],
    *,
    chunks: int = 2048,
    name: str | None = None,
    scale: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    axis_labels: Sequence[str] | None = None,
    translate: Sequence[float] | None = None,
    dtype=np.uint32,
):
    """An empty OME-Zarr image with one full-resolution label array; returns that array.

    Parameters
    ----------
    path
        The store folder to create.
    shape
        ``(*leading, Y, X)``.
    chunks
        Chunk size along Y and X; leading axes get chunks of 1.
    name
        The image's name (default: the store's, without its suffix). A store filled under
        a temporary name, to be moved into place, takes the name of the one it becomes.
    scale, units, axis_labels
        Per-axis pixel size, unit names and axis names, as
        :func:`~napari_cytomask.io.writers.write_labels` takes them (default: pixels, and
        ``p``/``t``… for leading axes, then ``y``, ``x``).
    translate
        Per-axis offset in ``units`` (a napari layer's translate, where the labels lie
        beside their image): NGFF's translation after the scale, which :func:`open_image`
        reads back.
    dtype
        Integer dtype of the ids.
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    if axis_labels is not None:
        names = [str(a).lower() for a in axis_labels]
    else:
        names = [*"ptzc"[: len(shape) - 2], "y", "x"]
    for what, values in (("axis names", names), ("scale", scale), ("units", units),
                         ("offsets", translate)):  # fmt: skip
        if values is not None and len(values) != len(shape):
            raise ValueError(f"{len(values)} {what} for an image with {len(shape)} axes.")
    axes, sizes, offsets = _axes(names, scale, units, translate)
    transforms = [{"type": "scale", "scale": sizes}]
    if any(offsets):
        transforms.append({"type": "translation", "translation": offsets})
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": name if name is not None else Path(path).name.removesuffix(SUFFIX),
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": transforms}],
        }
    ]
    group.attrs["image-label"] = {"version": "0.4"}
    chunk_shape = (1,) * (len(shape) - 2) + tuple(min(chunks, s) for s in shape[-2:])
    return group.create_array(
        "0",
        shape=shape,
        chunks=chunk_shape,
        dtype=dtype,
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )


def _axes(
    names: list[str], scale, units, translate=None
) -> tuple[list[dict], list[float], list[float]]:
    """NGFF axes, their scale and their offsets (``translate``): lengths in the unit given,
    the time between time points in seconds (as the TIFF writers keep them), other axes
    without a unit. A flipped layer's negative scale is positive here, since a pixel size
    has no direction."""
    sizes = [1.0] * len(names) if scale is None else [abs(float(s)) for s in scale]
    offsets = [0.0] * len(names) if translate is None else [float(t) for t in translate]
    step = time_step(names, sizes, units)
    axes = []
    for i, name in enumerate(names):
        axis = {"name": name, **({"type": _TYPES[name]} if name in _TYPES else {})}
        if step is not None and step[0] == i:
            # The offset is in the scale's unit, which becomes seconds.
            offsets[i] *= SECONDS[normalise_unit(units[i])]
            sizes[i], axis["unit"] = step[1], "second"
        elif units is not None and axis.get("type") == "space":
            unit = _LENGTH_UNITS.get(length_symbol(units[i]))
            if unit is not None:  # pixels have no unit
                axis["unit"] = unit
        axes.append(axis)
    return axes, sizes, offsets


class ZarrImage(NamedTuple):
    """An OME-Zarr image as :func:`open_image` finds it.

    Attributes
    ----------
    array
        The full-resolution array (a zarr array: pixels stay on disk until read).
    axes
        Its axis names as the reader names a TIFF's: ``T`` (any time axis), ``C`` (the
        channel axis), ``Z``, ``Y``, ``X``, other names upper-cased (``P``).
    scale
        Size per axis: lengths in µm, time in seconds, others as the file gives them.
    units
        ``"µm"``, ``"s"`` or ``"pixel"`` per axis; None when no axis has a unit of length
        or time.
    channel_names
        The ``omero`` label of each index of the channel axis, None where it gives none.
    label_images
        ``(name, path)`` of each label image NGFF keeps beside the image, in its
        ``labels`` group (masks of its cells, say), the path within the store: an
        OME-Zarr image of its own, read by :func:`open_image` given that folder.
    levels
        Its resolution levels after the full one (the pyramid NGFF stores), smaller and
        smaller in Y and X, the other axes as the full one's; empty when it has none, or
        they do not shrink so.
    translate
        Where its first pixel lies, per axis in the units of ``scale`` (NGFF's
        translation, a napari layer's translate); None when the metadata move it nowhere.
    """

    array: Any
    axes: tuple[str, ...]
    scale: tuple[float, ...]
    units: tuple[str, ...] | None
    channel_names: tuple[str | None, ...]
    label_images: tuple[tuple[str, str], ...] = ()
    levels: tuple = ()
    translate: tuple[float, ...] | None = None


def open_image(path: str | os.PathLike) -> ZarrImage:
    """The full-resolution image of an OME-Zarr store, with what its metadata says of it.

    Reads NGFF 0.1 to 0.5 (Zarr v2 and v3) images. Of a bioformats2raw store (one image
    per series of the file it converted, in folders ``0``, ``1``…) it reads the first and
    warns when there are others: they are not stacked as positions of one scan, since
    they may be of other sizes (a slide's label and overview images).

    Raises
    ------
    ImageReadError
        When the store holds no image, or its image's metadata does not fit its array.
    """
    import zarr

    from .files import ImageReadError

    try:
        group = zarr.open_group(str(path), mode="r")
    except FileNotFoundError as err:  # zarr's GroupNotFoundError: no .zgroup or zarr.json
        raise ImageReadError(
            f"{path} holds no Zarr group (its .zgroup or zarr.json file is missing): it is "
            "no OME-Zarr image, or it was copied incompletely: copy it again."
        ) from err
    attrs = _ome_attributes(group)
    if "bioformats2raw.layout" in attrs:
        paths = _series_paths(group)
        if not paths:
            raise ImageReadError(f"{path} is a bioformats2raw store without any image in it.")
        if len(paths) > 1:
            warnings.warn(
                f"{path} holds {len(paths)} images (series); only the first ({paths[0]}) is "
                "read. To read another, convert it on its own (bioformats2raw --series N).",
                UserWarning,
                stacklevel=2,
            )
        group = group[paths[0]]
        attrs = _ome_attributes(group)
    if not attrs.get("multiscales"):
        raise ImageReadError(
            f"{path} is no OME-Zarr image: its metadata has no 'multiscales'. Give the "
            "folder of one image (a plate or other collection keeps its images in subfolders)."
        )
    # No datasets, or one whose array is not there: a store cut short or hand-edited.
    missing = (
        f"{path}: its metadata names no image that is in it (missing: {{}}); the store is "
        "damaged or incomplete: write it again."
    )
    try:
        image = attrs["multiscales"][0]
        dataset = image["datasets"][0]
        where = str(dataset["path"])
    except (KeyError, IndexError, TypeError) as err:
        raise ImageReadError(missing.format(err)) from err
    try:
        array = group[where]
    except KeyError as err:
        raise ImageReadError(missing.format(err)) from err
    except (ValueError, TypeError) as err:  # its own metadata: a negative size, no data type
        detail = " ".join(str(err).split())
        raise ImageReadError(
            f"{path}: the metadata of its image are damaged ({detail}); write or copy the "
            "store again."
        ) from err
    # NGFF 0.1 and 0.2 name no axes, as theirs are always t, c, z, y, x; 0.3 names them
    # with strings.
    axes = image.get("axes") or list("tczyx"[-array.ndim :])
    axes = [a if isinstance(a, dict) else {"name": a} for a in axes]
    # The image's own transformations apply after those of its full-resolution level.
    transforms = [*(dataset.get("coordinateTransformations") or ()),
                  *(image.get("coordinateTransformations") or ())]  # fmt: skip
    scales = [t["scale"] for t in transforms if t.get("type") == "scale" and "scale" in t]
    translations = [
        t["translation"] for t in transforms
        if t.get("type") == "translation" and "translation" in t
    ]  # fmt: skip
    if len(axes) != array.ndim or any(len(s) != array.ndim for s in (*scales, *translations)):
        raise ImageReadError(
            f"{path}: its metadata does not fit its image of {array.ndim} axes "
            f"({' x '.join(map(str, array.shape))}); the store is damaged: write it again."
        )
    if min(array.chunks) < 1:
        raise ImageReadError(
            f"{path}: its chunks of {' x '.join(map(str, array.chunks))} pixels hold no "
            "pixel; its metadata are damaged: write or copy the store again."
        )
    chunks = np.prod(np.ceil(np.divide(array.shape, array.chunks)), dtype=float)
    if chunks > MAX_CHUNKS:
        raise ImageReadError(
            f"{path}: its image of {' x '.join(map(str, array.shape))} pixels in chunks of "
            f"{' x '.join(map(str, array.chunks))} would be {chunks:,.0f} chunks, more than "
            f"the {MAX_CHUNKS:,} napari-cytomask reads; its metadata are damaged, or the "
            "store must be written again with larger chunks."
        )
    if 0 in array.shape:
        raise ImageReadError(
            f"{path} holds no pixels: image is {' x '.join(map(str, array.shape))}; the "
            "store is damaged or incomplete: write it again."
        )
    # Applied in their order: a translation is in the units of the scales before it, and
    # a scale after it (the image's, after its level's) scales it too. A pixel's size has
    # no direction (a flipped image's scale is negative).
    sizes, offsets = np.ones(array.ndim), np.zeros(array.ndim)
    for transform in transforms:
        if transform.get("type") == "scale" and "scale" in transform:
            factor = np.abs(np.asarray(transform["scale"], dtype=float))
            sizes, offsets = sizes * factor, offsets * factor
        elif transform.get("type") == "translation" and "translation" in transform:
            offsets = offsets + np.asarray(transform["translation"], dtype=float)
    names, scale, units, translate = [], [], [], []
    for axis, size, offset in zip(axes, sizes, offsets, strict=True):
        kind = axis.get("type")
        names.append(
            "T" if kind == "time" else "C" if kind == "channel" else str(axis["name"]).upper()
        )
        unit = axis.get("unit")
        micrometres = in_micrometres(unit)
        seconds = None if unit is None else SECONDS.get(normalise_unit(unit))
        if micrometres is not None:
            factor, units_of = micrometres, "µm"
        elif seconds is not None:
            factor, units_of = seconds, "s"
        else:  # no unit, or one of no length or time: as the file gives it
            factor, units_of = 1.0, "pixel"
        scale.append(float(size) * factor)
        translate.append(float(offset) * factor)
        units.append(units_of)
    n_channels = array.shape[names.index("C")] if "C" in names else 1
    labels = [c.get("label") for c in (attrs.get("omero") or {}).get("channels") or ()]
    if len(labels) != n_channels:
        labels = [None] * n_channels
    return ZarrImage(
        array=array,
        axes=tuple(names),
        scale=tuple(scale),
        units=tuple(units) if set(units) != {"pixel"} else None,
        channel_names=tuple(str(label).strip() or None if label else None for label in labels),
        label_images=tuple(
            (name, f"{group.path}/labels/{name}".lstrip("/")) for name in _label_names(group)
        ),
        levels=_levels(group, image["datasets"][1:], array),
        translate=tuple(translate) if any(translate) else None,
    )


def _levels(group, datasets, full) -> tuple:
    """The arrays of an image's lower resolution levels, each smaller in Y and X than the
    one before and as the full one on every other axis; none when a level is missing,
    damaged or not so (a pyramid napari could not show), as the full one is all it
    needs."""
    levels, above = [], full
    for dataset in datasets:
        try:
            array = group[str(dataset["path"])]
        except (KeyError, TypeError, ValueError):
            return ()
        plane, before = array.shape[-2:], above.shape[-2:]
        shrinks = all(0 < n <= m for n, m in zip(plane, before, strict=True)) and plane != before
        if array.shape[:-2] != full.shape[:-2] or not shrinks or min(array.chunks) < 1:
            return ()
        levels.append(array)
        above = array
    return tuple(levels)


def _ome_attributes(group) -> dict:
    """A group's OME attributes: those of NGFF 0.5 are kept under ``ome``."""
    attrs = group.attrs.asdict()
    return attrs.get("ome", attrs)


def _label_names(group) -> list[str]:
    """The label images an NGFF image keeps in its ``labels`` group, as that group lists
    them (none when there is none, or it lists nothing)."""
    if "labels" not in group:
        return []
    try:
        listed = _ome_attributes(group["labels"]).get("labels")
    except (AttributeError, TypeError):  # an array named "labels", not a group
        return []
    return [str(name) for name in listed] if isinstance(listed, list) else []


def _series_paths(group) -> list[str]:
    """The folders of a bioformats2raw store's images: those its ``OME`` group lists, else
    ``0``, ``1``… as far as they go."""
    listed = _ome_attributes(group["OME"]).get("series") if "OME" in group else None
    if listed:
        return [str(p) for p in listed]
    paths = []
    while str(len(paths)) in group:
        paths.append(str(len(paths)))
    return paths
