"""Per-object clean-up of 2D label images: holes, morphology, size and border filters.

Every function takes a 2D integer label image (0 = background) and returns a new
array; objects never grow into other objects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.segmentation import relabel_sequential as _relabel_sequential

from ..labels import as_labels, compact_ids, min_label_dtype, restore_ids

#: Image sides, in the order used by ``sides`` arguments.
SIDES = ("top", "bottom", "left", "right")


def _check_2d(labels, what: str) -> np.ndarray:
    arr = as_labels(labels, what)
    if arr.ndim != 2:
        raise ValueError(
            f"{what} has {arr.ndim} dimensions; clean-up works on one 2D frame at a time "
            "(use run_watershed for stacks)."
        )
    return arr


def _objects(labels: np.ndarray, pad: int = 0):
    """Yield ``(id, slices)`` for every object, slices grown by ``pad`` within the image."""
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        if pad:
            box = tuple(
                slice(max(s.start - pad, 0), min(s.stop + pad, n))
                for s, n in zip(box, labels.shape, strict=True)
            )
        yield index, box


def fill_holes(labels) -> np.ndarray:
    """Fill holes inside objects: background regions enclosed by a single object.

    Background regions that touch the image border, or that touch more than one
    object, are not holes and stay background.

    Parameters
    ----------
    labels
        2D label image.

    Returns
    -------
    numpy.ndarray
        Label image of the same dtype.
    """
    labels, ids = compact_ids(_check_2d(labels, "labels"))
    background, n = ndi.label(labels == 0)
    if n == 0:
        return restore_ids(labels, ids).copy()
    # Every (background region, object) pair that touches through a pixel edge.
    pairs = []
    for region, obj in (
        (background[:, :-1], labels[:, 1:]),
        (background[:, 1:], labels[:, :-1]),
        (background[:-1, :], labels[1:, :]),
        (background[1:, :], labels[:-1, :]),
    ):
        touch = (region > 0) & (obj > 0)
        pairs.append(np.stack([region[touch], obj[touch]], axis=1))
    pairs = np.concatenate(pairs).astype(np.int64)
    # One integer per pair: a 1D unique is much faster than a unique over rows.
    base = int(labels.max()) + 1
    codes = np.unique(pairs[:, 0] * base + pairs[:, 1])
    regions, first, counts = np.unique(codes // base, return_index=True, return_counts=True)
    fill = np.zeros(n + 1, labels.dtype)
    single = counts == 1
    fill[regions[single]] = codes[first[single]] % base
    fill[border_ids(background)] = 0
    out = labels.copy()
    inside = fill[background]
    out[inside > 0] = inside[inside > 0]
    return restore_ids(out, ids)


def open_objects(labels, radius: int) -> np.ndarray:
    """Morphological opening of each object with a disk: removes spurs and thin bridges.

    Parameters
    ----------
    labels
        2D label image.
    radius
        Disk radius in pixels; 0 returns a copy.

    Returns
    -------
    numpy.ndarray
        Label image of the same dtype; pixels removed by the opening become background.
    """
    labels = _check_2d(labels, "labels")
    out = labels.copy()
    if radius <= 0:
        return out
    footprint = disk(radius)
    dense, _ = compact_ids(labels)
    for index, box in _objects(dense):
        mask = dense[box] == index
        opened = ndi.binary_opening(mask, footprint)
        out[box][mask & ~opened] = 0
    return out


def close_objects(labels, radius: int) -> np.ndarray:
    """Morphological closing of each object with a disk: smooths notches, bridges small gaps.

    Closed pixels are added only where there is background, never over another object.

    Parameters
    ----------
    labels
        2D label image.
    radius
        Disk radius in pixels; 0 returns a copy.

    Returns
    -------
    numpy.ndarray
        Label image of the same dtype.
    """
    labels, ids = compact_ids(_check_2d(labels, "labels"))
    out = labels.copy()
    radius = int(radius)  # 2.0 from a preset's JSON: whole, but no slice bound
    if radius > 0:
        footprint = disk(radius)
        for index, box in _objects(labels, pad=radius):
            mask = labels[box] == index
            # Pad so that dilation is not clipped by the crop and erosion does not eat edges.
            padded = np.pad(mask, radius)
            closed = ndi.binary_closing(padded, footprint)[radius:-radius, radius:-radius]
            crop = out[box]
            crop[closed & (crop == 0)] = index
    return restore_ids(out, ids)


def filter_by_area(labels, *, min_area: int = 0, max_area: int | None = None) -> np.ndarray:
    """Remove objects smaller than ``min_area`` or larger than ``max_area`` pixels.

    Parameters
    ----------
    labels
        2D (or N-D) label image.
    min_area
        Objects with fewer pixels are removed.
    max_area
        Objects with more pixels are removed; ``None`` keeps every large object.

    Returns
    -------
    numpy.ndarray
        Label image of the same dtype, ids unchanged.
    """
    labels = as_labels(labels, "labels")
    if min_area <= 0 and max_area is None:
        return labels.copy()
    if max_area is not None and max_area < min_area:
        raise ValueError(
            f"max_area ({max_area}) is below min_area ({min_area}); raise max_area or "
            "leave it empty to keep large objects."
        )
    dense, _ = compact_ids(labels)
    # intp: NumPy before 2.2 cannot count uint64 ids (labels saved as 64 bits).
    sizes = np.bincount(dense.ravel().astype(np.intp, copy=False))
    drop = sizes < min_area
    if max_area is not None:
        drop |= sizes > max_area
    drop[0] = False
    out = labels.copy()
    out[drop[dense]] = 0
    return out


def border_ids(labels: np.ndarray, sides=SIDES) -> np.ndarray:
    """Ids of the objects that touch the given sides of a 2D label image.

    Parameters
    ----------
    labels
        2D label image.
    sides
        Any of ``"top"``, ``"bottom"``, ``"left"``, ``"right"``.

    Returns
    -------
    numpy.ndarray
        Sorted unique non-zero ids.
    """
    edges = {
        "top": labels[0, :],
        "bottom": labels[-1, :],
        "left": labels[:, 0],
        "right": labels[:, -1],
    }
    unknown = set(sides) - set(edges)
    if unknown:
        raise ValueError(f"unknown sides {sorted(unknown)}; use any of {SIDES}.")
    values = np.concatenate([edges[side] for side in sides]) if sides else np.zeros(0, int)
    ids = np.unique(values)
    return ids[ids > 0]


def remove_border_objects(labels, *, sides=SIDES) -> np.ndarray:
    """Remove objects that touch the image border (cells cut by the field of view).

    Parameters
    ----------
    labels
        2D label image.
    sides
        Which sides count as border (all four by default).

    Returns
    -------
    numpy.ndarray
        Label image of the same dtype, ids unchanged.
    """
    labels = _check_2d(labels, "labels")
    out = labels.copy()
    out[np.isin(labels, border_ids(labels, sides))] = 0
    return out


def relabel(labels) -> np.ndarray:
    """Renumber ids to 1..N (in order of the old ids) in the smallest unsigned dtype.

    Parameters
    ----------
    labels
        Label image of any dimension.

    Returns
    -------
    numpy.ndarray
        Label image whose dtype is :func:`~napari_cytomask.labels.min_label_dtype` of N.
    """
    labels = as_labels(labels, "labels")
    out, _, _ = _relabel_sequential(labels)
    return out.astype(min_label_dtype(int(out.max(initial=0))), copy=False)


def clean_labels(
    labels,
    *,
    fill: bool = True,
    opening_radius: int = 0,
    closing_radius: int = 0,
    min_area: int = 0,
    max_area: int | None = None,
    exclude_border: bool = False,
    relabel_ids: bool = True,
) -> np.ndarray:
    """Clean a 2D label image: opening, closing, hole filling, size and border filters.

    The steps run in that order, so that an opening that cuts an object's spur
    does not leave a fragment, and size filters see the final shapes.

    Parameters
    ----------
    labels
        2D label image.
    fill
        Fill holes inside each object.
    opening_radius
        Disk radius of a per-object opening (0: none).
    closing_radius
        Disk radius of a per-object closing (0: none).
    min_area, max_area
        Remove objects outside this pixel-count range (``max_area=None``: no upper limit).
    exclude_border
        Remove objects that touch the image border.
    relabel_ids
        Renumber ids to 1..N in the smallest unsigned dtype.

    Returns
    -------
    numpy.ndarray
        The cleaned label image.
    """
    out = _check_2d(labels, "labels")
    if opening_radius > 0:
        out = open_objects(out, opening_radius)
    if closing_radius > 0:
        out = close_objects(out, closing_radius)
    if fill:
        out = fill_holes(out)
    out = filter_by_area(out, min_area=min_area, max_area=max_area)
    if exclude_border:
        out = remove_border_objects(out)
    return relabel(out) if relabel_ids else out
