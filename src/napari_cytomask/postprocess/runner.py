"""Run a watershed method with clean-up on 2D images, stacks and images larger than memory.

Stacks: every leading axis is a frame, processed on its own. By default ids are
unique across the whole stack (frame 2 continues where frame 1 stopped), so
every cell keeps its own colour in napari and per-object measurements over the
stack never mix two cells; ``stack_ids="per_frame"`` restarts at 1 in each frame.

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

from collections.abc import Callable, Generator, Mapping
from typing import Literal

import numpy as np

from ..labels import LabelsError, as_planes, check_same_shape, min_label_dtype
from ..progress import drain
from .cleanup import border_ids, clean_labels
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
    func, _ = WATERSHED_METHODS[method]
    if method in DISTANCE_METHODS and spacing is not None:
        params = {**params, "spacing": spacing}
    labels = func(*frames, **params, origin=origin)
    return clean_labels(labels, **cleanup, exclude_border=exclude_border, relabel_ids=True)


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
    spacing
        The (Y, X) size of the pixels (an image's pixel size, in any unit), for the
        methods that seed cells by the distance to the background
        (:data:`DISTANCE_METHODS`): where they are not square, distances are measured
        over their shape, in pixels of their shorter side (see
        :func:`~.foreground_to_instances`). None: square pixels.

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
    own = out is None
    if own:
        out = np.zeros(shape, np.uint32)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, but the input has shape {shape}.")
    limit = int(np.iinfo(out.dtype).max)

    height, width = shape[-2:]
    chunked = chunk_size is not None and (height > chunk_size or width > chunk_size)
    if chunked:
        rows = list(_chunk_windows(height, chunk_size, overlap))
        cols = list(_chunk_windows(width, chunk_size, overlap))
        tiles = [(r, c) for r in rows for c in cols]
    frames = list(np.ndindex(shape[:-2]))
    total = len(frames) * (len(tiles) if chunked else 1)
    done = 0
    next_id = 0
    for frame in frames:
        if stack_ids == "per_frame":
            next_id = 0
        if not chunked:
            data = [np.asarray(arr[frame]) for arr in inputs]
            labels = _frame_labels(
                method, data, params, cleanup, exclude_border=exclude_border, spacing=spacing
            )
            count = int(labels.max(initial=0))
            _check_room(next_id + count, limit)
            out[frame] = np.where(labels > 0, labels.astype(out.dtype) + next_id, 0)
            next_id += count
            done += 1
            yield done, total
            continue
        for (core_r, win_r), (core_c, win_c) in tiles:
            window = frame + (win_r, win_c)
            data = [np.asarray(arr[window]) for arr in inputs]
            labels = _frame_labels(
                method,
                data,
                params,
                cleanup,
                exclude_border=False,
                spacing=spacing,
                origin=(win_r.start, win_c.start),
            )
            keep = _anchored(labels, core_r, core_c, win_r, win_c)
            if exclude_border:
                sides = _image_sides(win_r, win_c, height, width)
                keep[border_ids(labels, sides)] = False
            count = int(keep.sum())
            _check_room(next_id + count, limit)
            lut = np.zeros(keep.size, out.dtype)
            lut[keep] = np.arange(next_id + 1, next_id + count + 1)
            new = lut[labels]
            region = np.array(out[window])
            free = (new > 0) & (region == 0)
            region[free] = new[free]
            out[window] = region
            next_id += count
            done += 1
            yield done, total
    if own:
        out = out.astype(min_label_dtype(next_id), copy=False)
    return out


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
