"""Checks and conversions shared by everything that takes or writes label images, and
the images the models and the watershed work on."""

from __future__ import annotations

import numpy as np


class LabelsError(ValueError):
    """A label image that cannot be used, with a message that says what to do."""


def as_labels(data, what: str = "labels") -> np.ndarray:
    """Return ``data`` as an integer label array, or raise a clear error.

    Booleans become 0/1; floats are accepted only when every value is a
    non-negative whole number (e.g. labels that went through a float pipeline).

    Parameters
    ----------
    data
        Array-like label image (numpy, dask, zarr).
    what
        How to call the input in error messages, e.g. the layer name.

    Raises
    ------
    LabelsError
        For empty arrays, non-integer floats, NaN or infinite pixels, negative ids and
        non-numeric data.
    """
    arr = np.asarray(data)
    if arr.size == 0:
        raise LabelsError(f"{what} is empty (shape {arr.shape}): it holds no pixels.")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        values = arr if finite.all() else arr[finite]
        if not np.array_equal(values, np.round(values)):
            raise LabelsError(
                f"{what} holds fractional values ({arr.dtype}), so it is an image or a "
                "probability map, not labels (a whole-number id per cell); turn it into "
                "cells first (in napari, with the Segment cytoplasm dock's Split step)."
            )
        # Whole numbers elsewhere: ids with holes (a stitched mosaic's border), not an image.
        missing = arr.size - values.size
        if missing:
            many = missing > 1
            raise LabelsError(
                f"{what} holds {missing} NaN or infinite pixel{'s' * many} ({arr.dtype}), "
                f"which no label id is; set {'them' if many else 'it'} to 0 (background) or "
                f"to {'their' if many else 'its'} cell's id first."
            )
        if arr.min(initial=0) < 0:
            raise LabelsError(f"{what} has negative ids; label ids must be 0 (background) or more.")
        return arr.astype(min_label_dtype(int(arr.max(initial=0))))
    if not np.issubdtype(arr.dtype, np.integer):
        raise LabelsError(f"{what} has dtype {arr.dtype}, which cannot hold label ids.")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min(initial=0) < 0:
        raise LabelsError(f"{what} has negative ids; label ids must be 0 (background) or more.")
    return arr


#: Weights of the red, green and blue of a colour picture in its grey version (its
#: luminance, ITU-R BT.601, as a picture converted to grey by PIL or OpenCV has it).
LUMINANCE = (0.299, 0.587, 0.114)

#: What a colour picture is segmented on by a model of one channel, as messages and
#: records say it.
GREY_VERSION = "grey version of the colour picture"


def grey_version(colours):
    """The grey version (:data:`LUMINANCE`, float32) of a colour picture whose last axis
    holds its colours (RGB or RGBA; alpha is left out): what a model of one channel
    segments, not its red alone, which lost a bluish picture's cells. Lazy pixels (dask,
    zarr) stay lazy, computed as they are read (a tile at a time); others are computed
    now."""
    if not isinstance(colours, np.ndarray) and hasattr(colours, "chunks"):
        import dask.array as da

        colours = da.asarray(colours)
    else:
        colours = np.asarray(colours)
    return sum(
        colours[..., c].astype(np.float32) * np.float32(weight)
        for c, weight in enumerate(LUMINANCE)
    )


def as_planes(data, what: str = "the image", *, grey: bool = False):
    """``data`` as an array of one 2D plane or a stack of them (numpy, dask, zarr, torch
    are kept as they are; lists and PIL images become numpy arrays); a colour picture
    (a last axis of 3 or 4 values) as its :func:`grey_version` with ``grey``.

    Raises
    ------
    ValueError
        For a colour picture without ``grey``, which would otherwise be taken for a stack
        of images 3 or 4 pixels wide: too narrow for any cell, so a small picture is
        refused too.
    """
    arr = data if hasattr(data, "shape") and hasattr(data, "dtype") else np.asarray(data)
    shape = tuple(arr.shape)
    if len(shape) >= 3 and shape[-1] in (3, 4):
        if grey:
            return grey_version(arr)
        raise ValueError(
            f"{what} has shape {shape}: a colour (RGB) picture, not a grey image or a stack "
            "of them; pass one colour (image[..., 0]) or a grey version (image.mean(axis=-1))."
        )
    return arr


def binary_mask_regions(labels: np.ndarray, frames: int) -> tuple[np.ndarray, int] | None:
    """The separate regions of a binary mask (one value, such as 1 or 255, for every cell)
    as cells, numbered across the stack, each of its ``frames`` leading axes' frames apart
    (a volume's regions are 3-D); and the mask's value. None when ``labels`` hold other ids
    or none, no background (every pixel one value: no mask), or their one id is one region
    in every frame (one cell, such as a tracked cell that keeps its id from frame to
    frame)."""
    from skimage.measure import label

    labels = np.asarray(labels)
    cells = labels[labels != 0]
    if not cells.size or cells.size == labels.size or cells.min() != cells.max():
        return None
    regions = np.zeros(labels.shape, np.int32)
    each = regions.reshape(-1, *labels.shape[frames:])
    count = most = 0
    for frame, mask in zip(each, labels.reshape(each.shape), strict=True):
        found, n = label(mask != 0, connectivity=1, return_num=True)
        frame[...] = np.where(found > 0, found + count, 0)
        count += n
        most = max(most, n)
    return (regions, cells.max().item()) if most > 1 else None


def regions_as_cells(labels: np.ndarray, frames: int) -> tuple[np.ndarray, str]:
    """``labels`` with a binary mask's separate regions as its cells
    (:func:`binary_mask_regions`), and what to say of that after the mask's name: "holds
    one value (255) for every cell, a binary mask: …". Other labels are returned as they
    are, with ""."""
    found = binary_mask_regions(labels, frames)
    if found is None:
        return labels, ""
    regions, value = found
    return regions, (
        f"holds one value ({value}) for every cell, a binary mask: its {regions.max()} "
        "separate regions are taken as the cells (cells that touch stay one)"
    )


def check_same_shape(
    a: np.ndarray,
    b: np.ndarray,
    a_name: str,
    b_name: str,
    advice: str = "compare labels of the same image",
) -> None:
    """Raise :class:`LabelsError` unless two label images have the same shape; the message
    ends with ``advice`` (what to pair instead)."""
    if a.shape != b.shape:
        raise LabelsError(
            f"{a_name} has shape {a.shape} but {b_name} has shape {b.shape}; "
            f"{advice} (same channel, tile and size)."
        )


def paired(ground_truth, prediction, stack: int, gt_name: str, pred_name: str):
    """A ground truth and a prediction of one shape, and how many of its leading axes
    hold frames (``stack``, counted on the ground truth as given).

    An image saved as a stack of one (``(1, Y, X)``, as ImageJ and tifffile write a single
    plane with an axis) is the same image as ``(Y, X)``: the leading axes of length 1 that
    only one of the two has are dropped. Any other difference raises
    :class:`LabelsError`, naming both shapes.
    """
    gt, pred = ground_truth, prediction
    while len(np.shape(gt)) > len(np.shape(pred)) and np.shape(gt)[0] == 1:
        gt, stack = gt[0], max(0, stack - 1)
    while len(np.shape(pred)) > len(np.shape(gt)) and np.shape(pred)[0] == 1:
        pred = pred[0]
    if np.shape(gt) != np.shape(pred):
        check_same_shape(ground_truth, prediction, gt_name, pred_name)
    return gt, pred, stack


def compact_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Renumber sparse ids 1..n, so that tables indexed by id stay small.

    Ids are usually at most the number of pixels; exported, stitched or hashed
    labels can hold ids up to 2**63, for which a table with one entry per id (a
    ``bincount``, ``find_objects``, or a pair code ``a * (max + 1) + b``) would not
    fit in memory or would overflow.

    Returns
    -------
    tuple
        The renumbered labels (ids in the order of the original ones, 0 kept as 0)
        and the original id of each new one (index 0: background) for
        :func:`restore_ids`; or ``labels`` itself and ``None`` when its largest id
        is no larger than its number of pixels.
    """
    if int(labels.max(initial=0)) <= labels.size:
        return labels, None
    ids = np.unique(labels)
    if ids[0] != 0:
        ids = np.concatenate([np.zeros(1, ids.dtype), ids])  # not [0]: uint64 + int = float
    dense = np.searchsorted(ids, labels).astype(min_label_dtype(ids.size - 1))
    return dense, ids


def restore_ids(labels: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
    """The original ids of labels renumbered by :func:`compact_ids`."""
    return labels if ids is None else ids[labels]


def min_label_dtype(max_id: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds every id up to ``max_id``."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_id <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise LabelsError(f"label id {max_id} does not fit in 64 bits.")


def largest_elsewhere(stack: np.ndarray, index: tuple) -> int:
    """The largest id of the frames of ``stack`` (``(*frames, Y, X)``) other than the frame
    at ``index``: 0 for a single image."""
    if not index:
        return 0
    tops = np.asarray(stack).reshape(-1, *stack.shape[-2:]).max(axis=(1, 2), initial=0)
    tops[np.ravel_multi_index(index, stack.shape[:-2])] = 0
    return int(tops.max(initial=0))


def numbered_above(plane: np.ndarray, top: int) -> np.ndarray:
    """``plane``'s ids moved above ``top``, in order and with their gaps, where any of them
    is not (0 stays 0): a frame made alone takes no id of the stack's other frames, which
    hold ids up to ``top``. Widened to a type that holds the new ids; ``plane`` itself when
    its ids are all above ``top`` already."""
    ids = plane[plane > 0]
    if not ids.size or int(ids.min()) > top:
        return plane
    shift = top + 1 - int(ids.min())
    moved = plane.astype(np.result_type(plane.dtype, min_label_dtype(int(ids.max()) + shift)))
    moved[moved > 0] += shift
    return moved
