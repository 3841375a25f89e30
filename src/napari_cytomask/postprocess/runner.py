"""Run a watershed method with clean-up on 2D images, stacks and images larger than memory.

Stacks: every leading axis is a frame, processed on its own. By default ids are
unique across the whole stack (frame 2 continues where frame 1 stopped), so
every cell keeps its own colour in napari and per-object measurements over the
stack never mix two cells; ``stack_ids="per_frame"`` restarts at 1 in each frame.

A split keeps the ids of the labels it splits, which tables and tracks made from
them refer to: a cell left whole keeps its id, and so does one piece of a cell cut
in pieces; the other pieces get ids above the input's largest (of the whole stack,
or with ``stack_ids="per_frame"`` of their frame).

Large frames are processed in overlapping windows (``chunk_size`` core plus
``overlap`` on each side). Every object found in a window has an anchor, the
floor of its centroid; the object is kept only by the window whose core holds
its anchor, so each cell is written once, whole, from a window that saw all of
it. When ``overlap`` exceeds the largest object (for the foreground method: the
largest connected foreground region, because its distance transform depends on
the whole region), the result equals processing the whole frame at once up to
the numbering of ids, with no seams at window borders. Windows are read with
plain slicing, so numpy arrays, memmaps, dask and zarr arrays all work, and the
output can be a preallocated zarr array on disk.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Generator, Mapping
from typing import Literal

import numpy as np

from ..labels import LabelsError, as_labels, as_planes, check_same_shape, min_label_dtype
from ..progress import drain
from .cleanup import clean_labels, remove_border_objects
from .watershed import foreground_to_instances, interior_boundary_to_instances, split_labels

WatershedMethod = Literal["foreground", "interior_boundary", "split"]
#: Watershed method -> (2D function, names of its input maps).
WATERSHED_METHODS: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    "foreground": (foreground_to_instances, ("foreground",)),
    "interior_boundary": (interior_boundary_to_instances, ("interior map", "boundary map")),
    "split": (split_labels, ("labels to split",)),
}

#: The methods that seed cells by the distance to the background, which depends on the
#: shape of the pixels (their ``spacing``); the interior/boundary maps seed their own.
DISTANCE_METHODS = ("foreground", "split")

Progress = tuple[int, int]

#: Clean-up applied unless told otherwise: holes filled and objects below 16 pixels
#: removed. The watershed leaves 1-9 px fragments where the boundary band has no
#: interior (F1@0.5 of held-out usiigaci ground-truth maps 0.90 without, 0.99 with);
#: 16 px stays below the smallest real nuclei of the test data (21 px), which 32
#: already removes. Measured by ``benchmarks/bench_watershed.py``.
DEFAULT_CLEANUP: dict[str, object] = {"fill": True, "min_area": 16}


def _frame_labels(method, frames, params, cleanup, *, exclude_border, spacing, origin=(0, 0)):
    """The cleaned cells of a frame or window, and for a split the input's id of each
    piece (indexed by the piece's id; None for the other methods, whose ids are 1..n)."""
    func, _ = WATERSHED_METHODS[method]
    if method in DISTANCE_METHODS and spacing is not None:
        params = {**params, "spacing": spacing}
    labels = func(*frames, **params, origin=origin)
    owners = None
    if method == "split":
        # Read before the clean-up, while every piece lies within the one cell it came from.
        owners = np.zeros(int(labels.max(initial=0)) + 1, np.uint64)
        owners[labels.ravel()] = as_labels(frames[0], "labels to split").ravel()
        owners[0] = 0
    # A split's pieces keep their own ids, few and small, for _input_ids to number.
    relabel = owners is None
    labels = clean_labels(labels, **cleanup, exclude_border=exclude_border, relabel_ids=relabel)
    return labels, owners


def _input_ids(labels, owners, keep, next_id: int, limit: int) -> tuple[np.ndarray, int]:
    """The output id of each piece of a split (``labels``, with ``owners`` the input id of
    each piece): a cell left whole keeps its input id, and so does the first piece of a
    cell cut in pieces (its lowest piece id, which every window that sees the whole cell
    gives the same piece); the other pieces get ``next_id + 1`` on. ``keep``: per piece
    id, the pieces written (a window writes those anchored in its core); None: all.
    ``limit``: the largest id the output holds.

    Returns the table (uint64, 0 for pieces not written) and how many new ids it gave.
    """
    present = np.bincount(labels.ravel(), minlength=0 if keep is None else keep.size) > 0
    present[0] = False
    keep = present if keep is None else keep & present
    pieces = np.flatnonzero(present)
    owners = owners[: present.size]
    first = np.zeros(present.size, bool)
    first[pieces[np.unique(owners[pieces], return_index=True)[1]]] = True
    lut = np.where(first & keep, owners, 0).astype(np.uint64)
    new = keep & ~first
    count = int(new.sum())
    _check_room(next_id + count, limit)
    lut[new] = next_id + 1 + np.arange(count, dtype=np.uint64)
    return lut, count


def _chunk_windows(size: int, chunk: int, overlap: int):
    """(core, window) slice pairs along one axis: cores on a grid of ``chunk`` pixels.

    Not the model tiles of :mod:`napari_cytomask.tiling`: here the size given is
    that of the core each window owns (``cytomask segment --chunk-size``, also the
    OME-Zarr chunk size), and every window adds ``overlap`` of context on each side.
    """
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        yield slice(start, stop), slice(max(start - overlap, 0), min(stop + overlap, size))


def _check_inputs(method: str, inputs) -> tuple[int, ...]:
    if method not in WATERSHED_METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(WATERSHED_METHODS)}.")
    names = WATERSHED_METHODS[method][1]
    if len(inputs) != len(names):
        raise ValueError(
            f"method {method!r} takes {len(names)} input(s) ({', '.join(names)}), "
            f"got {len(inputs)}."
        )
    for arr, name in zip(inputs, names, strict=True):
        if len(arr.shape) < 2:
            raise ValueError(f"{name} has shape {arr.shape}; pass a 2D image or a stack of them.")
        if 0 in arr.shape:
            raise ValueError(f"{name} is empty (shape {arr.shape}); pick a layer that holds data.")
    for arr, name in zip(inputs[1:], names[1:], strict=True):
        check_same_shape(inputs[0], arr, names[0], name)
    return tuple(inputs[0].shape)


def iter_watershed(
    method: WatershedMethod,
    *inputs,
    params: Mapping[str, object] | None = None,
    cleanup: Mapping[str, object] | None = None,
    chunk_size: int | None = None,
    overlap: int = 256,
    out=None,
    stack_ids: Literal["unique", "per_frame"] = "unique",
    spacing: tuple[float, float] | None = None,
    largest_id: int | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """Instance labels of a 2D image or stack, yielding ``(done, total)`` after each frame or chunk.

    A generator: drive it with :func:`run_watershed`, or from a thread worker
    that shows progress and can stop between steps. Its return value is the label
    image.

    Parameters
    ----------
    method
        ``"foreground"`` (a probability map or mask), ``"interior_boundary"``
        (two maps) or ``"split"`` (an existing label image).
    *inputs
        The input maps, arrays of equal shape ``(..., Y, X)`` (numpy, memmap, dask, zarr).
    params
        Keyword arguments of the method's function
        (:func:`~.foreground_to_instances`, :func:`~.interior_boundary_to_instances`,
        :func:`~.split_labels`).
    cleanup
        Keyword arguments of :func:`~.clean_labels` (without ``relabel_ids``)
        that replace those of :data:`DEFAULT_CLEANUP` (holes filled, objects
        under 16 pixels removed); ``{"min_area": 0}`` keeps every fragment.
    chunk_size
        Process frames larger than this in windows of ``chunk_size`` pixels plus
        ``overlap``; ``None`` processes each frame whole.
    overlap
        Context around each window, in pixels; make it larger than the largest cell.
    out
        Preallocated output of the input's shape (numpy or zarr, unsigned or
        signed integers); by default a numpy array in the smallest unsigned dtype.
    stack_ids
        ``"unique"``: ids unique across the stack; ``"per_frame"``: 1..N in each frame.
        A split keeps its input's ids, and numbers new pieces above the largest of the
        stack (``"unique"``) or of their frame (``"per_frame"``).
    spacing
        The (Y, X) size of the pixels (an image's pixel size, in any unit), for the
        methods that seed cells by the distance to the background
        (:data:`DISTANCE_METHODS`): where they are not square, distances are measured
        over their shape, in pixels of their shorter side (see
        :func:`~.foreground_to_instances`). None: square pixels.
    largest_id
        For a split of labels that are part of a larger image (a frame of a stack): their
        largest id, which new pieces are numbered above, so that they take no id of a cell
        elsewhere in it. None: the input's own.

    Returns
    -------
    numpy.ndarray or the given ``out``
        The label image.
    """
    inputs = tuple(as_planes(arr, "the input") for arr in inputs)
    shape = _check_inputs(method, inputs)
    params = dict(params or {})
    cleanup = {**DEFAULT_CLEANUP, **(cleanup or {})}
    exclude_border = bool(cleanup.pop("exclude_border", False))
    cleanup.pop("relabel_ids", None)
    if stack_ids not in ("unique", "per_frame"):
        raise ValueError(f"stack_ids must be 'unique' or 'per_frame', not {stack_ids!r}.")
    if chunk_size is not None and chunk_size < 16:
        raise ValueError(f"chunk_size must be at least 16 pixels (got {chunk_size}).")
    if overlap < 0:
        raise ValueError(f"overlap must be 0 or more pixels (got {overlap}).")
    height, width = shape[-2:]
    chunked = chunk_size is not None and (height > chunk_size or width > chunk_size)
    tiles = None
    if chunked:
        rows = list(_chunk_windows(height, chunk_size, overlap))
        cols = list(_chunk_windows(width, chunk_size, overlap))
        tiles = [(r, c) for r in rows for c in cols]
    frames = list(np.ndindex(shape[:-2]))
    # A split's new pieces are numbered above the ids it keeps.
    tops = [_largest_id(inputs[0], f, tiles) for f in frames] if method == "split" else []
    if largest_id is not None:
        tops = [max(top, int(largest_id)) for top in tops]
    own = out is None
    if own:
        # Room for the ids a split keeps, however large, and a new one for every pixel.
        wide = bool(tops) and max(tops) + int(np.prod(shape)) > np.iinfo(np.uint32).max
        out = np.zeros(shape, np.uint64 if wide else np.uint32)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, but the input has shape {shape}.")
    limit = int(np.iinfo(out.dtype).max)

    total = len(frames) * (len(tiles) if chunked else 1)
    done = 0
    next_id = largest = max(tops, default=0)
    for i, frame in enumerate(frames):
        if stack_ids == "per_frame":
            next_id = tops[i] if tops else 0
        if not chunked:
            data = [np.asarray(arr[frame]) for arr in inputs]
            labels, owners = _frame_labels(
                method, data, params, cleanup, exclude_border=exclude_border, spacing=spacing
            )
            if owners is None:
                count = int(labels.max(initial=0))
                _check_room(next_id + count, limit)
                out[frame] = np.where(labels > 0, labels.astype(out.dtype) + next_id, 0)
            else:
                lut, count = _input_ids(labels, owners, None, next_id, limit)
                out[frame] = lut.astype(out.dtype)[labels]
            next_id += count
            largest = max(largest, next_id)
            done += 1
            yield done, total
            continue
        for (core_r, win_r), (core_c, win_c) in tiles:
            window = frame + (win_r, win_c)
            data = [np.asarray(arr[window]) for arr in inputs]
            labels, owners = _frame_labels(
                method,
                data,
                params,
                cleanup,
                exclude_border=False,
                spacing=spacing,
                origin=(win_r.start, win_c.start),
            )
            if exclude_border:
                # Removed before ids are given: the piece of a cut cell that keeps its id
                # is one that stays.
                sides = _image_sides(win_r, win_c, height, width)
                labels = remove_border_objects(labels, sides=sides)
            keep = _anchored(labels, core_r, core_c, win_r, win_c)
            if owners is None:
                count = int(keep.sum())
                _check_room(next_id + count, limit)
                lut = np.zeros(keep.size, out.dtype)
                lut[keep] = np.arange(next_id + 1, next_id + count + 1)
            else:
                lut, count = _input_ids(labels, owners, keep, next_id, limit)
                lut = lut.astype(out.dtype)
            new = lut[labels]
            region = np.array(out[window])
            free = (new > 0) & (region == 0)
            region[free] = new[free]
            out[window] = region
            next_id += count
            largest = max(largest, next_id)
            done += 1
            yield done, total
    if own:
        out = out.astype(min_label_dtype(largest), copy=False)
    return out


def _largest_id(cells, frame: tuple, tiles) -> int:
    """The largest id in a frame of ``cells``, read whole, or window by window (the cores
    of ``tiles``) where it is processed so."""
    if tiles is None:
        return int(np.asarray(cells[frame]).max(initial=0))
    return max(int(np.asarray(cells[frame + (r, c)]).max(initial=0)) for (r, _), (c, _) in tiles)


def split_counts(cells, split) -> tuple[int, int, int]:
    """What a split of ``cells`` (:func:`iter_watershed`) did, counted frame by frame: how
    many cells ``split`` holds, how many cells of ``cells`` it cut, and into how many
    pieces (each piece lies in one cell: the cell is found at the piece's first pixel).
    Arrays may be lazy: a frame is read at a time."""
    held = cut = pieces = 0
    for place in np.ndindex(tuple(np.shape(cells))[:-2]):
        before, after = np.asarray(cells[place]), np.asarray(split[place])
        found, first = np.unique(after, return_index=True)
        owners = before.ravel()[first]
        _, parts = np.unique(owners[(found > 0) & (owners > 0)], return_counts=True)
        held += np.count_nonzero(found)
        cut += np.count_nonzero(parts > 1)
        pieces += int(parts[parts > 1].sum())
    return held, cut, pieces


def _check_room(max_id: int, limit: int) -> None:
    if max_id > limit:
        raise LabelsError(
            f"the output needs ids up to {max_id}, more than its dtype holds ({limit}); "
            "pass an output with a larger integer dtype or use stack_ids='per_frame'."
        )


def _anchored(labels: np.ndarray, core_r: slice, core_c: slice, win_r: slice, win_c: slice):
    """Boolean per id: the object's anchor (floor of its centroid) lies in the core."""
    n = int(labels.max(initial=0))
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)
    h, w = labels.shape
    rows = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n + 1)
    cols = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n + 1)
    present = counts > 0
    safe = np.maximum(counts, 1)
    # Sums of integer coordinates are exact in float64, so the floor is the same
    # whichever window computes it: every object has exactly one owner.
    anchor_r = np.floor(rows / safe).astype(np.int64) + win_r.start
    anchor_c = np.floor(cols / safe).astype(np.int64) + win_c.start
    keep = (
        present
        & (anchor_r >= core_r.start)
        & (anchor_r < core_r.stop)
        & (anchor_c >= core_c.start)
        & (anchor_c < core_c.stop)
    )
    keep[0] = False
    return keep


def _image_sides(win_r: slice, win_c: slice, height: int, width: int) -> tuple[str, ...]:
    sides = []
    if win_r.start == 0:
        sides.append("top")
    if win_r.stop == height:
        sides.append("bottom")
    if win_c.start == 0:
        sides.append("left")
    if win_c.stop == width:
        sides.append("right")
    return tuple(sides)


def run_watershed(method: WatershedMethod, *inputs, **kwargs):
    """Run :func:`iter_watershed` to the end and return the label image.

    Parameters
    ----------
    method, *inputs, **kwargs
        As in :func:`iter_watershed`.

    Returns
    -------
    numpy.ndarray or the given ``out``
        The label image.
    """
    return drain(iter_watershed(method, *inputs, **kwargs))


def check_settings(
    method: WatershedMethod,
    params: Mapping[str, object] | None = None,
    cleanup: Mapping[str, object] | None = None,
    names: tuple[str, str] = ("params", "cleanup"),
) -> None:
    """Raise ValueError for settings of ``method`` (:func:`iter_watershed`'s ``params`` and
    ``cleanup``, called ``names`` in messages) that it would refuse or misread, before any
    work: names it does not know, all listed with the known ones; text or another kind
    where a number is meant; a threshold outside 0 to 1; a negative size, distance or
    weight; a radius or distance in pixels that is not a whole number; and values its
    functions refuse, tried on a small image. A script's unknown entry was refused in
    Python's words after minutes of predicting, and a threshold of 2 was taken."""
    func, _ = WATERSHED_METHODS[method]
    for name, given, function, own in (
        (names[0], params, func, {"origin", "spacing"}),  # where a frame lies: worked out
        (names[1], cleanup, clean_labels, set()),
    ):
        parameters = {
            p.name: p for p in inspect.signature(function).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in own
        }  # fmt: skip
        unknown = sorted(set(given or {}) - set(parameters))
        if unknown:
            raise ValueError(f"unknown '{name}' entries {unknown}; known are {sorted(parameters)}.")
        for key, value in (given or {}).items():
            kinds = {k.strip() for k in str(parameters[key].annotation).split("|")}
            if not kinds & {"int", "float"} or (value is None and "None" in kinds):
                continue
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise ValueError(f"{name}: '{key}' is {value!r}, not a number.")
            if key.endswith("threshold") and not 0 <= value <= 1:
                raise ValueError(f"{name}: '{key}' is {value!r}; it must be from 0 to 1.")
            if value < 0:  # sizes, distances and weights
                raise ValueError(f"{name}: '{key}' is {value!r}; it must be 0 or more.")
            counted = "area" in key or "size" in key  # pixels compared: any number works
            if "float" not in kinds and not counted and not float(value).is_integer():
                # Radii and distances: a disk of radius 1.5 is 4 pixels wide, off centre.
                raise ValueError(f"{name}: '{key}' is {value!r}; it must be a whole number.")
    cells = np.zeros((16, 16), np.uint8)
    cells[4:12, 4:12] = 1
    inputs = (
        [cells]
        if method == "split"
        else [cells.astype(np.float32)] * (2 if method == "interior_boundary" else 1)
    )
    try:
        run_watershed(method, *inputs, params=params, cleanup=cleanup)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid {method.replace('_', '/')} settings: {err}") from err
