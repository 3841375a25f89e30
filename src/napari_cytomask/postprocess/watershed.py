"""Instance labels from network outputs or masks by marker-controlled watershed (2D).

Three ways in, matching what a segmentation model or a user provides:

- :func:`foreground_to_instances`: a foreground probability or a binary mask;
  markers come from the distance transform (h-maxima or local peaks).
- :func:`interior_boundary_to_instances`: the interior and boundary maps of a
  3-class model (background, interior, boundary); markers are the interiors.
- :func:`split_labels` / :func:`merge_small_fragments`: repair an existing label
  image (split objects holding several cells, absorb small fragments).

:func:`instances_to_interior_boundary` makes the 3-class training target from
instance labels. All functions here take one 2D frame; stacks, large images and
clean-up are handled by :func:`napari_cytomask.postprocess.run_watershed`.

Distances (the distance map, ``h``, ``min_distance``, the growing and shrinking of
seeds) count pixels. Over pixels that are not square (``spacing``, e.g. 0.87 µm tall
and 0.435 µm wide) they are measured across the pixels' shape and counted in pixels of
their shorter side, so a round cell is round to them, and square pixels of any size
give the cells they gave.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max
from skimage.measure import label as label_regions
from skimage.morphology import disk, h_maxima
from skimage.segmentation import expand_labels, watershed

from ..labels import LabelsError, as_labels, check_same_shape, compact_ids, restore_ids

MarkerMethod = Literal["h_maxima", "peaks"]
MARKER_METHODS: tuple[MarkerMethod, ...] = ("h_maxima", "peaks")

#: Class of the boundary pixels in the 3-class map made by
#: :func:`instances_to_interior_boundary` (background 0, interior 1).
BOUNDARY = 2

_EIGHT = np.ones((3, 3), bool)


def _check_frame(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim != 2:
        raise ValueError(
            f"{what} has {arr.ndim} dimensions ({arr.shape}); these functions take one 2D "
            "frame. Use run_watershed for stacks, or pick a single-channel 2D layer."
        )
    if arr.size == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape}); pick a layer that holds an image.")
    return arr


def foreground_mask(foreground, threshold: float = 0.5, what: str = "foreground") -> np.ndarray:
    """Boolean foreground: pixels above ``threshold``, or the pixels of a boolean mask.
    Pixels that are not numbers (NaN, infinite) are background, as in a probability map.

    Parameters
    ----------
    foreground
        2D probability map, intensity image, or boolean/integer mask. With the
        default threshold of 0.5 every id of a mask or label image (ids >= 1) is
        foreground.
    threshold
        Value above which a pixel is foreground: a probability, or an intensity
        (e.g. an Otsu threshold) for an intensity image.
    what
        Name of the input in error messages.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    arr = _check_frame(np.asarray(foreground), what)
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr > threshold
    if np.issubdtype(arr.dtype, np.floating):
        return (arr > threshold) & np.isfinite(arr)  # +inf was a cell, NaN not
    raise ValueError(f"{what} has dtype {arr.dtype}; pass a probability map or a mask.")


def _probability(data, what: str) -> np.ndarray:
    arr = _check_frame(np.asarray(data), what)
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} has dtype {arr.dtype}; pass a probability map in [0, 1].")
    arr = arr.astype(np.float32, copy=False)
    lo, hi = arr.min(), arr.max()
    if np.isnan(lo) or np.isnan(hi):
        # Pixels a model could not predict (NaN) count as background.
        arr = np.nan_to_num(arr, nan=0.0)
        lo, hi = arr.min(), arr.max()
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"{what} holds values from {lo:g} to {hi:g}; pass probabilities in [0, 1] "
            "(apply softmax to a model's logits, or divide an 8-bit map by 255)."
        )
    return arr


def _landscape(values: np.ndarray, origin: tuple[int, int], where: np.ndarray) -> np.ndarray:
    """``values`` plus a tiny tie-breaker that depends only on the global pixel position.

    The watershed floods equal values in an order that depends on the array it
    is given; with unique values the order, and so the result, is the same for a
    window of an image as for the whole image. Only pixels in ``where`` (those
    the watershed floods) get the tie-breaker.
    """
    rows, cols = np.nonzero(where)
    key = (rows.astype(np.uint64) + np.uint64(origin[0])) * np.uint64(1_000_003)
    key += cols.astype(np.uint64) + np.uint64(origin[1])
    key *= np.uint64(2_654_435_761)
    out = values.astype(np.float64)
    out[rows, cols] += (key & np.uint64(0xFFFFFFFF)).astype(np.float64) * (1e-6 * 2.0**-32)
    return out


def _label_unseeded(labels: np.ndarray, fg: np.ndarray) -> None:
    """Give every foreground component that no marker reached an id of its own (in place)."""
    rest = fg & (labels == 0)
    if rest.any():
        extra, _ = ndi.label(rest)
        start = int(labels.max(initial=0))
        labels[rest] = extra[rest] + start


def pixel_shape(spacing) -> tuple[float, float] | None:
    """A pixel's (Y, X) size in lengths of its shorter side, from its size ``spacing`` in
    any unit; None for square pixels, or none given, whose distances count pixels as
    they always did.

    The ratio is rounded to 6 decimals: sizes written as decimals (0.87 and 0.435)
    then make whole ratios (2, not 2.0000000000000004), and a radius of whole pixels
    reaches the pixels it should.
    """
    if spacing is None:
        return None
    sizes = np.abs(np.asarray(spacing, dtype=np.float64))
    if sizes.shape != (2,) or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise ValueError(
            f"spacing must be the (Y, X) size of a pixel, two positive numbers; got {spacing!r}."
        )
    if sizes[0] == sizes[1]:
        return None
    y, x = (round(float(size), 6) for size in sizes / sizes.min())
    return y, x


def _disk(radius: int, sampling: tuple[float, float] | None) -> np.ndarray:
    """The pixels within ``radius`` (in pixels of the shorter side) of the centre one:
    skimage's disk for square pixels, fewer rows than columns for pixels taller than wide."""
    if sampling is None:
        return disk(radius)
    rows, cols = (int(radius / size) for size in sampling)
    y, x = np.ogrid[-rows : rows + 1, -cols : cols + 1]
    return (y * sampling[0]) ** 2 + (x * sampling[1]) ** 2 <= radius**2


def _adjust_markers(
    markers: np.ndarray,
    fg: np.ndarray,
    erosion: int,
    dilation: int,
    sampling: tuple[float, float] | None,
) -> np.ndarray:
    if erosion > 0:
        kept = ndi.binary_erosion(markers > 0, _disk(erosion, sampling))
        markers = np.where(kept, markers, 0)
    if dilation > 0:
        # expand_labels never merges touching markers, unlike a plain dilation; but it
        # grows across background, so only the grown pixels joined to their own seed
        # within the foreground are kept (not a seed for another, nearby component).
        grown = np.where(fg, expand_labels(markers, dilation, spacing=sampling or 1), 0)
        pieces = label_regions(grown, background=0, connectivity=1)  # regions of one id each
        seeded = np.zeros(int(pieces.max()) + 1, bool)
        seeded[pieces[markers > 0]] = True
        seeded[0] = False
        markers = np.where(seeded[pieces], grown, 0)
    return markers


def distance_markers(
    distance: np.ndarray,
    mask: np.ndarray,
    *,
    method: MarkerMethod = "h_maxima",
    h: float = 5.0,
    min_distance: int = 7,
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """Label one marker per expected cell from a distance map.

    Parameters
    ----------
    distance
        Distance of each foreground pixel to the background.
    mask
        Foreground mask (markers are only placed inside it).
    method
        ``"h_maxima"``: maxima that rise at least ``h`` pixels above the saddle to
        any higher maximum (robust to ragged outlines); ``"peaks"``: local maxima
        at least ``min_distance`` pixels apart (faster, tuned by the cell radius).
    h
        Dynamic of the h-maxima, in pixels of distance.
    min_distance
        Smallest distance between two peaks, in pixels (of their shorter side, with
        ``spacing``), along either axis.
    spacing
        The (Y, X) size of a pixel, in any unit; None for square pixels. ``distance``
        is measured over pixels of this shape (as ``distance_transform_edt`` measures
        it with ``sampling``), in pixels of their shorter side.

    Returns
    -------
    numpy.ndarray
        int32 marker image, 0 where there is no marker.
    """
    if method == "h_maxima":
        if not h > 0:  # NaN too: h_maxima would never return
            raise ValueError(f"h must be positive (got {h}); the default is 5 pixels of distance.")
        peaks = h_maxima(distance, h).astype(bool) & mask
    elif method == "peaks":
        if min_distance < 1:
            raise ValueError(f"min_distance must be at least 1 (got {min_distance}).")
        coords = _peaks(distance, mask, int(min_distance), pixel_shape(spacing))
        peaks = np.zeros(mask.shape, bool)
        peaks[tuple(coords.T)] = True
    else:
        raise ValueError(f"unknown marker method {method!r}; use one of {MARKER_METHODS}.")
    markers, _ = ndi.label(peaks, structure=_EIGHT)
    return markers.astype(np.int32, copy=False)


def _peaks(
    distance: np.ndarray, mask: np.ndarray, min_distance: int, sampling: tuple[float, float] | None
) -> np.ndarray:
    """Coordinates of the local maxima of ``distance`` in ``mask``, no two nearer than
    ``min_distance`` along both axes (in pixels of the shorter side of ``sampling``).

    peak_local_max counts rows and columns: over pixels twice as tall as wide its box
    reached twice as far up and down as across, so cells were split across and merged
    along. Here its box has the pixels' shape, and the maxima it finds are spaced as it
    spaces them (the stronger kept), with the distance measured over that shape.
    """
    labels = mask.astype(np.uint8)
    if sampling is None:
        return peak_local_max(
            distance, min_distance=min_distance, labels=labels, exclude_border=False
        )
    rows, cols = (int(min_distance / size) for size in sampling)
    footprint = np.ones((2 * rows + 1, 2 * cols + 1), bool)
    # Left at 1, min_distance spaces nothing: every maximum of the box, strongest first.
    coords = peak_local_max(distance, footprint=footprint, labels=labels, exclude_border=False)
    where = coords * np.asarray(sampling)
    kept = np.ones(len(coords), bool)
    near = cKDTree(where).query_ball_point(where, r=min_distance, p=np.inf)
    for i, others in enumerate(near):
        if kept[i]:
            for j in others:
                if j > i and np.abs(where[j] - where[i]).max() < min_distance:
                    kept[j] = False
    return coords[kept]


def foreground_to_instances(
    foreground,
    *,
    threshold: float = 0.5,
    markers: MarkerMethod = "h_maxima",
    h: float = 5.0,
    min_distance: int = 7,
    marker_erosion: int = 0,
    marker_dilation: int = 0,
    compactness: float = 0.0,
    origin: tuple[int, int] = (0, 0),
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """Split a foreground probability map or binary mask into cells.

    Threshold, distance transform, markers from its maxima, then a watershed of
    the inverted distance restricted to the foreground. Foreground components
    that received no marker become one object each, so no cell is lost.

    Parameters
    ----------
    foreground
        2D probability map (float in [0, 1]) or mask (bool/integer, non-zero = cell).
    threshold
        Foreground threshold: a probability, or an intensity for intensity images
        (the default 0.5 keeps every id of a mask).
    markers
        ``"h_maxima"`` or ``"peaks"``, see :func:`distance_markers`.
    h
        Dynamic of the h-maxima in pixels: raise it to split less.
    min_distance
        Smallest distance between peaks (``markers="peaks"``): about a cell radius.
    marker_erosion, marker_dilation
        Disk radius by which markers are eroded (drops tiny markers) or grown.
    compactness
        Compact watershed parameter; 0 is the classic watershed, larger values
        give more regular (Voronoi-like) cells.
    origin
        Position of this frame's first pixel in a larger image. Ties between
        equal pixels are broken by global position, so a window of an image gives
        the same cells as the whole image (used by chunked processing).
    spacing
        The (Y, X) size of a pixel, in any unit (a layer's scale, µm); None for square
        pixels. Over pixels that are not square, distances are measured over their
        shape and ``h``, ``min_distance`` and the marker radii count pixels of their
        shorter side: counted in rows and columns, two round cells stacked along the
        longer side of 0.87 x 0.435 µm pixels were one cell.

    Returns
    -------
    numpy.ndarray
        int32 label image, ids 1..N.
    """
    fg = foreground_mask(foreground, threshold)
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    sampling = pixel_shape(spacing)
    distance = ndi.distance_transform_edt(fg, sampling=sampling).astype(np.float32)
    seeds = distance_markers(
        distance, fg, method=markers, h=h, min_distance=min_distance, spacing=sampling
    )
    seeds = _adjust_markers(seeds, fg, marker_erosion, marker_dilation, sampling)
    landscape = _landscape(-distance, origin, fg)
    labels = watershed(landscape, seeds, mask=fg, compactness=compactness).astype(np.int32)
    _label_unseeded(labels, fg)
    return labels


def interior_boundary_to_instances(
    interior,
    boundary,
    *,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_marker_size: int = 10,
    compactness: float = 0.0,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Cells from the interior and boundary probabilities of a 3-class model.

    Markers are the connected components of ``interior > interior_threshold``
    (components below ``min_marker_size`` pixels are dropped as noise); they
    grow by a watershed of the boundary probability over the foreground
    ``interior + boundary > foreground_threshold``. Foreground components without
    a marker become one object each.

    Parameters
    ----------
    interior, boundary
        2D probability maps in [0, 1] of the same shape.
    interior_threshold
        Probability above which a pixel seeds a cell.
    foreground_threshold
        Threshold on ``interior + boundary`` (i.e. ``1 - background``).
    min_marker_size
        Markers with fewer pixels are discarded (their pixels join a neighbour).
    compactness
        Compact watershed parameter (0: classic watershed).
    origin
        Position of this frame's first pixel in a larger image. Ties between
        equal pixels are broken by global position, so a window of an image gives
        the same cells as the whole image (used by chunked processing).

    Returns
    -------
    numpy.ndarray
        int32 label image, ids 1..N.
    """
    interior = _probability(interior, "interior map")
    boundary = _probability(boundary, "boundary map")
    check_same_shape(interior, boundary, "interior map", "boundary map")
    fg = (interior + boundary) > foreground_threshold
    seeds, n = ndi.label((interior > interior_threshold) & fg)
    if n and min_marker_size > 1:
        small = np.bincount(seeds.ravel()) < min_marker_size
        small[0] = False
        seeds[small[seeds]] = 0
    # Marker pixels whose 4-neighbours are all marker pixels take no part in the
    # flooding; leaving them out of the mask gives the same result, much faster.
    core = ndi.binary_erosion(seeds > 0)
    flooded = fg & ~core
    landscape = _landscape(boundary, origin, flooded)
    labels = watershed(landscape, seeds, mask=flooded, compactness=compactness)
    labels = labels.astype(np.int32)
    labels[core] = seeds[core]
    _label_unseeded(labels, fg)
    return labels


def split_labels(
    labels,
    *,
    markers: MarkerMethod = "h_maxima",
    h: float = 5.0,
    min_distance: int = 7,
    marker_erosion: int = 0,
    marker_dilation: int = 0,
    compactness: float = 0.0,
    min_fragment_size: int = 0,
    origin: tuple[int, int] = (0, 0),
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """Split objects that hold several cells, object by object.

    Each object is split like :func:`foreground_to_instances` splits a mask, but
    with its own distance transform, so neighbouring objects never exchange
    pixels. Objects with a single marker are kept as they are. The pieces of a
    split object below ``min_fragment_size`` pixels are merged into another
    piece of the same object (:func:`merge_small_fragments`); other objects,
    however small, are left alone.

    Parameters
    ----------
    labels
        2D label image.
    markers, h, min_distance, marker_erosion, marker_dilation, compactness, spacing
        As in :func:`foreground_to_instances`.
    min_fragment_size
        Pieces with fewer pixels are merged into the piece of the same object
        they share the longest border with (0: no merging).
    origin
        Position of this frame's first pixel in a larger image. Ties between
        equal pixels are broken by global position, so a window of an image gives
        the same cells as the whole image (used by chunked processing).

    Returns
    -------
    numpy.ndarray
        int32 label image (ids not sequential; clean-up relabels them).
    """
    labels = _check_frame(as_labels(labels, "labels to split"), "labels to split")
    labels, _ = compact_ids(labels)  # the pieces get new ids
    sampling = pixel_shape(spacing)
    boxes = ndi.find_objects(labels)
    # Peaks are kept min_distance apart across an object's pieces too: split whole.
    pieces_of = _pieces_apart(labels, boxes) if markers == "h_maxima" else {}
    out = np.zeros(labels.shape, np.int32)
    next_id = 1
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        seeded = []
        for image, value, crop in pieces_of.get(index, [(labels, index, box)]):
            # One pixel of background around the crop keeps the distance transform exact.
            crop = tuple(
                slice(max(s.start - 1, 0), min(s.stop + 1, n))
                for s, n in zip(crop, labels.shape, strict=True)
            )
            mask = image[crop] == value
            distance = ndi.distance_transform_edt(np.pad(mask, 1), sampling=sampling)
            distance = distance[1:-1, 1:-1].astype(np.float32)
            seeds = distance_markers(
                distance, mask, method=markers, h=h, min_distance=min_distance, spacing=sampling
            )
            seeds = _adjust_markers(seeds, mask, marker_erosion, marker_dilation, sampling)
            seeded.append((crop, mask, distance, seeds, int(seeds.max(initial=0))))
        if sum(n for *_, n in seeded) <= 1:  # one cell: all of the object keeps one id
            for crop, mask, *_ in seeded:
                out[crop][mask] = next_id
            next_id += 1
            continue
        for crop, mask, distance, seeds, n in seeded:
            parts = np.zeros(mask.shape, np.int32)
            if n:
                corner = (origin[0] + crop[0].start, origin[1] + crop[1].start)
                landscape = _landscape(-distance, corner, mask)
                parts = watershed(landscape, seeds, mask=mask, compactness=compactness)
                parts = parts.astype(np.int32)
            _label_unseeded(parts, mask)
            if n and min_fragment_size > 0:
                parts = merge_small_fragments(parts, min_size=min_fragment_size)
            out[crop][mask] = parts[mask] + (next_id - 1)
            next_id += int(parts.max())
    return out


def _pieces_apart(labels: np.ndarray, boxes: list) -> dict[int, list]:
    """The pieces of each object of a few pieces far apart, to split each in a crop of its
    own: ``{id: [(piece labels, piece id, box), ...]}``.

    One id in every tile of a mosaic whose ids count per tile made each crop the whole
    image, and a 3000² mosaic took minutes instead of seconds. Pieces touch no other
    piece of their object, even diagonally, and h-maxima lie within a piece, so each
    splits as within the object. An object of thousands of specks stays whole: a crop
    per speck would cost more than the image.
    """
    areas = np.bincount(labels.ravel())
    sparse = [i for i, b in enumerate(boxes, 1) if b and _box_area(b) > 4 * areas[i]]
    pieces_of: dict[int, list] = {}
    if not sparse:
        return pieces_of
    pieces = label_regions(np.where(np.isin(labels, sparse), labels, 0), connectivity=2)
    owner = np.zeros(int(pieces.max()) + 1, np.int64)
    owner[pieces.ravel()] = labels.ravel()
    counts = np.bincount(owner[1:], minlength=len(boxes) + 1)
    for piece, box in enumerate(ndi.find_objects(pieces), start=1):
        index = int(owner[piece])
        if box is not None and counts[index] * _CROP_COST < _box_area(boxes[index - 1]):
            pieces_of.setdefault(index, []).append((pieces, piece, box))
    return pieces_of


#: What a crop of its own costs, in pixels of a larger crop: a distance transform and
#: marker search take about 0.5 ms however small the crop, and 0.13 µs per pixel.
_CROP_COST = 4096


def _box_area(box: tuple[slice, ...]) -> int:
    return int(np.prod([s.stop - s.start for s in box]))


def _contacts(labels: np.ndarray) -> dict[int, dict[int, int]]:
    """Length of the shared border (4-connected pixel pairs) between touching objects."""
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.stack([a[touch], b[touch]], axis=1))
    pairs = np.concatenate(pairs).astype(np.int64)
    pairs.sort(axis=1)
    base = int(labels.max()) + 1
    codes, counts = np.unique(pairs[:, 0] * base + pairs[:, 1], return_counts=True)
    table: dict[int, dict[int, int]] = {}
    for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
        a, b = divmod(code, base)
        table.setdefault(a, {})[b] = count
        table.setdefault(b, {})[a] = count
    return table


def merge_small_fragments(labels, *, min_size: int) -> np.ndarray:
    """Merge objects below ``min_size`` pixels into the neighbour with the longest shared border.

    Fragments are handled from the smallest up, and a merged fragment's border
    counts for its new object, so chains of fragments end up in one cell.
    Fragments that touch no other object are kept (remove them with a minimum
    area in the clean-up). Ties go to the lower id.

    Parameters
    ----------
    labels
        2D label image.
    min_size
        Objects with fewer pixels are merged.

    Returns
    -------
    numpy.ndarray
        Label image of the same dtype; the surviving ids are unchanged.
    """
    labels = _check_frame(as_labels(labels, "labels"), "labels")
    if min_size <= 1 or labels.max(initial=0) == 0:
        return labels.copy()
    labels, ids = compact_ids(labels)
    # intp: NumPy before 2.2 cannot count uint64 ids (labels saved as 64 bits).
    sizes = np.bincount(labels.ravel().astype(np.intp, copy=False))
    small = [int(i) for i in np.argsort(sizes, kind="stable") if i > 0 and 0 < sizes[i] < min_size]
    if not small:
        return restore_ids(labels, ids).copy()
    contacts = _contacts(labels)
    target = np.arange(sizes.size)
    for frag in small:
        if sizes[frag] >= min_size or not contacts.get(frag):
            continue
        neighbours = contacts.pop(frag)
        into = max(neighbours, key=lambda n: (neighbours[n], -n))
        target[frag] = into
        sizes[into] += sizes[frag]
        for other, count in neighbours.items():
            contacts[other].pop(frag, None)
            if other != into:
                contacts[into][other] = contacts[into].get(other, 0) + count
                contacts[other][into] = contacts[other].get(into, 0) + count
    # Follow chains (a fragment merged into one that was merged later).
    while True:
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    return restore_ids(target[labels].astype(labels.dtype, copy=False), ids)


def instances_to_interior_boundary(labels, *, boundary_width: int = 1) -> np.ndarray:
    """The 3-class training target of instance labels: background, interior, boundary.

    Boundary pixels are the cell pixels within ``boundary_width`` pixels (city-block
    distance) of a pixel with another value: background or another cell. So
    touching cells are always separated by boundary, and the interiors alone
    give one marker per cell.

    Parameters
    ----------
    labels
        Label image (2D or a stack; each pixel looks at its in-plane neighbours only).
    boundary_width
        Thickness of the boundary in pixels (at least 1).

    Returns
    -------
    numpy.ndarray
        uint8 map: 0 background, 1 interior, 2 boundary.
    """
    labels = as_labels(labels, "instance labels")
    if labels.ndim < 2:
        raise LabelsError(
            f"instance labels must be 2D or a stack of 2D frames (got {labels.shape})."
        )
    if boundary_width < 1:
        raise ValueError(f"boundary_width must be at least 1 (got {boundary_width}).")
    # A structuring element that only connects pixels within one frame.
    cross = np.zeros((1,) * (labels.ndim - 2) + (3, 3), bool)
    cross[(0,) * (labels.ndim - 2) + (slice(None), 1)] = True
    cross[(0,) * (labels.ndim - 2) + (1, slice(None))] = True
    cells = labels > 0
    edge = _in_plane_edge(labels) & cells
    if boundary_width > 1:
        edge = ndi.binary_dilation(edge, cross, iterations=boundary_width - 1) & cells
    out = cells.astype(np.uint8)
    out[edge] = BOUNDARY
    return out


def _in_plane_edge(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value within the same frame."""
    edge = np.zeros(labels.shape, bool)
    for axis in (-1, -2):
        diff = np.diff(labels, axis=axis) != 0
        lead = [slice(None)] * labels.ndim
        trail = [slice(None)] * labels.ndim
        lead[axis] = slice(None, -1)
        trail[axis] = slice(1, None)
        edge[tuple(lead)] |= diff
        edge[tuple(trail)] |= diff
    return edge
