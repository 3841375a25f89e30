"""Overlapping tiles that cover an image, for models that see one tile at a time.

The U-Net blends its tiles with a smooth window (:func:`tile_starts`); SAM2
keeps each object from the tile whose core holds it (:func:`tile_boxes`). Both
place their tiles the same way, so a tile size and an overlap mean the same in
either.
"""

from __future__ import annotations

import math


def overlap_problem(tile: int, overlap: int) -> str | None:
    """What is wrong with ``overlap`` for tiles of ``tile`` pixels, or None when it fits."""
    if 0 <= overlap < tile:
        return None
    return (
        f"The tile overlap ({overlap}) must be at least 0 and smaller than the tile size "
        f"({tile}); lower the overlap or enlarge the tiles."
    )


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start positions of tiles of length ``tile`` covering ``size`` with at least ``overlap``.

    The tiles are spread evenly, the first starts at 0 and the last ends at the
    image edge; a single tile covers images up to ``tile``.

    Raises
    ------
    ValueError
        When the image needs several tiles and ``overlap`` is not in ``[0, tile)``.
    """
    if size <= tile:
        return [0]
    problem = overlap_problem(tile, overlap)
    if problem:
        raise ValueError(problem)
    n = math.ceil((size - tile) / (tile - overlap)) + 1
    # i * (size - tile) / (n - 1) is a correctly rounded quotient of integers, so its
    # rounding (halves to even) is the same on every machine.
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def padded_size(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple`` (at least one)."""
    return max(multiple, math.ceil(size / multiple) * multiple)


def fitted_tile(length: int, tile: int, overlap: int, multiple: int, largest: int) -> int:
    """The tile length, from ``tile`` to ``largest`` in multiples of ``multiple``, whose
    tiles (:func:`tile_starts`) cover ``length`` pixels with the fewest pixels in all: one
    tile of ``length`` rounded up to ``multiple`` where that is at most ``largest``.

    Tiles of 512 with an overlap of 64 cover a 1022-pixel side three times over (starts
    0, 255 and 510): 1536 pixels seen for 1022. Tiles of 544 need two (1088), so a
    1022 x 1024 image takes 4 tiles instead of 9 and half the time; a side of 2048 takes
    4 tiles of 560 instead of 5 of 512. Ties go to the smaller tile (less memory).
    """
    largest = max(tile, largest)
    whole = padded_size(length, multiple)
    if whole <= largest:
        return whole
    sizes = range(tile, largest + 1, multiple)
    return min(sizes, key=lambda t: (len(tile_starts(length, t, overlap)) * t, t))


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tiles of :func:`tile_starts` along one axis, with the core each tile owns.

    Returns
    -------
    list of (start, stop, core_start, core_stop)
        The tile is ``start:stop``; the cores partition ``0:size``, with the
        borders in the middle of the overlaps.
    """
    starts = tile_starts(size, tile, overlap)
    stops = [min(start + tile, size) for start in starts]
    cuts = [0, *((stops[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)), size]
    return [
        (start, stop, cuts[i], cuts[i + 1])
        for i, (start, stop) in enumerate(zip(starts, stops, strict=True))
    ]


def tile_boxes(shape: tuple[int, int], tile: int, overlap: int) -> list[tuple]:
    """Overlapping tiles covering a 2D image, with the core region each tile owns.

    Returns
    -------
    list of (window, core)
        ``window`` and ``core`` are ``(y0, x0, y1, x1)``, rows first; the cores
        partition the image.
    """
    rows, cols = tile_spans(shape[0], tile, overlap), tile_spans(shape[1], tile, overlap)
    return [
        ((y0, x0, y1, x1), (cy0, cx0, cy1, cx1))
        for y0, y1, cy0, cy1 in rows
        for x0, x1, cx0, cx1 in cols
    ]
