"""COCO run-length encoding of binary masks (numpy only).

The counts are COCO's uncompressed RLE, as pycocotools and sam2 write it: the
lengths of the alternating background and foreground runs of the mask read
column by column, starting with a background run (0 when the first pixel is
set). :func:`rle_string` turns them into COCO's compressed string.
"""

from __future__ import annotations

import numpy as np


def rle_counts(
    window: np.ndarray,
    origin: tuple[int, int] = (0, 0),
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Column-major run lengths of a mask that is empty outside ``window``.

    Parameters
    ----------
    window
        2D binary content of the mask from row ``origin[0]`` and column ``origin[1]``
        (e.g. its bounding box); only the window is read.
    origin
        Where the window's first pixel lies in the mask.
    shape
        The mask's ``(height, width)``; by default the window's, for a whole mask.

    Returns
    -------
    numpy.ndarray
        The run lengths (``int64``); they sum to ``height * width``.
    """
    window = np.asarray(window, bool)
    height, width = window.shape if shape is None else shape
    wh, ww = window.shape
    padded = np.zeros((ww, wh + 2), bool)  # a background pixel above and below each column
    padded[:, 1:-1] = window.T
    flat = padded.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    col, row = np.divmod(edges, wh + 2)
    edges = (col + origin[1]) * height + row - 1 + origin[0]
    starts, ends = edges[0::2], edges[1::2]
    # A run that ends at the bottom of one column and restarts at the top of the next is one run.
    joined = np.flatnonzero(ends[:-1] == starts[1:])
    starts, ends = np.delete(starts, joined + 1), np.delete(ends, joined)
    bounds = np.empty(2 * len(starts) + 2, np.int64)
    bounds[0], bounds[-1] = 0, height * width
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds)
    if len(counts) > 1 and counts[-1] == 0:  # the last run reaches the last pixel
        counts = counts[:-1]
    return counts


def rle_to_mask(counts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Binary mask of shape ``shape`` from column-major run lengths (see :func:`rle_counts`)."""
    h, w = shape
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def rle_string(counts) -> str:
    """pycocotools' compact string form of run lengths (5-bit groups, offset by 48)."""
    counts = [int(c) for c in counts]
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def coco_rle(
    window: np.ndarray,
    origin: tuple[int, int] = (0, 0),
    shape: tuple[int, int] | None = None,
) -> dict[str, object]:
    """COCO's compressed RLE of a binary mask, as pycocotools writes it.

    Parameters are those of :func:`rle_counts`: pass a whole mask, or an
    object's bounding-box content with its origin and the image shape.
    """
    window = np.asarray(window, bool)
    height, width = window.shape if shape is None else shape
    return {
        "size": [int(height), int(width)],
        "counts": rle_string(rle_counts(window, origin, (height, width))),
    }
