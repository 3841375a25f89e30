"""Stitching the tiles of a scan into one mosaic by their stage positions.

Tiles are placed at ``(position - min position) / pixel size`` without blending:
where tiles overlap, the later tile is drawn over the earlier ones. The mosaic is
lazy: a plane (or a block of it) is stitched only when something reads it, and
only the parts of the tiles that fall into that block are read. A mosaic of label
ids (a mask channel) gives each tile's cells ids of their own, see
:class:`LabelMosaicArray`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import dask.array as da
import numpy as np

from ..labels import LabelsError, min_label_dtype

#: Reads part of one tile: ``(tile, leading key, rows, columns) -> array`` whose
#: shape is the leading key's shape followed by ``(rows, columns)``.
TileReader = Callable[[int, tuple[slice, ...], slice, slice], np.ndarray]

#: Rows and columns of one mosaic block computed at once.
BLOCK = 2048

#: The ids of cells seen by two tiles (sorted) and the ids they take.
Merges = tuple[np.ndarray, np.ndarray]

#: Most pixels between two tiles whose facing edges count as one seam (stage positions
#: rounded to whole pixels leave gaps of a pixel or two between tiles that met).
SEAM_GAP = 2

#: Least share of the seam that either of two cells facing each other across it touches,
#: along which they must face each other to be one cell cut by the seam.
SEAM_SHARE = 0.5

#: No cells seen twice.
NO_MERGES: Merges = (np.empty(0, np.uint64), np.empty(0, np.uint64))


def tile_offsets(
    positions: Sequence[tuple[float, float]], pixel_size: tuple[float, float]
) -> np.ndarray:
    """Pixel offsets of tiles in the mosaic from their stage positions.

    Parameters
    ----------
    positions
        Stage position ``(y, x)`` of each tile's first pixel, in the unit of
        ``pixel_size``.
    pixel_size
        Physical ``(y, x)`` size of one pixel.

    Returns
    -------
    numpy.ndarray
        ``(n_tiles, 2)`` integer array of ``(row, column)`` offsets, the
        smallest being 0.
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    size = np.asarray(pixel_size, dtype=float)
    return np.rint((pos - pos.min(axis=0)) / size).astype(np.int64)


def tile_groups(offsets: np.ndarray, tile_shape: tuple[int, int]) -> int:
    """How many groups of nearby tiles the offsets make: one for a mosaic, in whatever
    shape (a grid, a strip, an L, gaps of up to half a tile between tiles); more for
    separate fields.

    Parameters
    ----------
    offsets
        ``(n_tiles, 2)`` pixel offsets from :func:`tile_offsets`.
    tile_shape
        ``(rows, columns)`` of one tile.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    # Neighbours start at most one and a half tiles apart along both axes.
    pairs = tile_pairs(offsets, tile_shape, 1.5)
    n = len(offsets)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return int(connected_components(graph, directed=False)[0])


def tile_pairs(offsets: np.ndarray, tile_shape: tuple[int, int], reach: float) -> np.ndarray:
    """The pairs of tiles that start at most ``reach`` tiles apart along both axes.

    Returns
    -------
    numpy.ndarray
        ``(n_pairs, 2)`` tile indices, the smaller first in each pair.
    """
    from scipy.spatial import cKDTree

    scaled = np.asarray(offsets, float) / np.asarray(tile_shape, float)
    return cKDTree(scaled).query_pairs(reach, p=np.inf, output_type="ndarray")


class MosaicArray:
    """Array-like view of tiles pasted into one plane, stitched on indexing.

    Parameters
    ----------
    read_tile
        Reads a region of one tile, see :data:`TileReader`.
    offsets
        ``(n_tiles, 2)`` pixel offsets from :func:`tile_offsets`.
    lead_shape
        Shape of the axes before the plane (time, z, …), shared by all tiles.
    tile_shape
        ``(rows, columns)`` of one tile.
    dtype
        Data type of the tiles.
    """

    def __init__(
        self,
        read_tile: TileReader,
        offsets: np.ndarray,
        lead_shape: tuple[int, ...],
        tile_shape: tuple[int, int],
        dtype: np.dtype,
    ) -> None:
        self._read_tile = read_tile
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        self.tile_shape = tuple(int(n) for n in tile_shape)
        height = int(self.offsets[:, 0].max()) + self.tile_shape[0]
        width = int(self.offsets[:, 1].max()) + self.tile_shape[1]
        self.shape = (*(int(n) for n in lead_shape), height, width)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        # Read contiguous ranges, then apply integer indices and steps to the result.
        ranges, post = [], []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step == 1:
                    ranges.append(slice(start, max(start, stop)))
                    post.append(slice(None))
                else:
                    ranges.append(slice(0, n))
                    post.append(k)
            else:
                i = int(k) + n if int(k) < 0 else int(k)
                if not 0 <= i < n:
                    raise IndexError(f"index {k} out of range for axis of size {n}")
                ranges.append(slice(i, i + 1))
                post.append(0)
        out = self._stitch(tuple(ranges[:-2]), ranges[-2], ranges[-1])
        return out[tuple(post)]

    def _stitch(self, lead: tuple[slice, ...], rows: slice, cols: slice) -> np.ndarray:
        lead_shape = tuple(s.stop - s.start for s in lead)
        out = np.zeros((*lead_shape, rows.stop - rows.start, cols.stop - cols.start), self.dtype)
        tile_h, tile_w = self.tile_shape
        for tile, (r0, c0) in enumerate(self.offsets):
            top, bottom = max(rows.start, r0), min(rows.stop, r0 + tile_h)
            left, right = max(cols.start, c0), min(cols.stop, c0 + tile_w)
            if top >= bottom or left >= right:
                continue
            part = self._read_tile(
                tile, lead, slice(top - r0, bottom - r0), slice(left - c0, right - c0)
            )
            out[
                ..., top - rows.start : bottom - rows.start, left - cols.start : right - cols.start
            ] = self._pixels(tile, lead, part)
        return out

    def _pixels(self, tile: int, lead: tuple[slice, ...], part: np.ndarray) -> np.ndarray:
        """What a tile's pixels (``part``, read at the leading ``lead``) become in the
        mosaic: themselves."""
        return part


class LabelMosaicArray(MosaicArray):
    """:class:`MosaicArray` of label ids, in which every tile's cells have ids of their own.

    Tiles segmented one by one number their cells each from 1: pasted as they are, the
    cells of several tiles would share ids and count as one. Each tile's ids are shifted
    past the largest ids of the tiles before it, so the first tile keeps its own. Where
    tiles overlap, the later tile is drawn over the earlier one and cuts the earlier
    one's cells at its edge; a cell of the later tile and the cell of the earlier tile
    that share the most of its overlap pixels, each the other's best match, are one cell
    seen twice and take the earlier one's id, rather than leaving a piece of the cell
    with another id beside the edge. Tiles that meet without overlapping (or with a
    gap of up to :data:`SEAM_GAP` pixels) each hold a part of the cells on their seam:
    a cell of one and a cell of the other that face each other across the seam, each
    the other's best match, along at least :data:`SEAM_SHARE` of the seam that either
    of them touches, are one cell cut by the seam and take the earlier one's id. A
    cell whose tip touches the seam beside a cell of the other tile stays a cell of
    its own.

    The shifts hold for all the mosaic's planes (a tile's cell keeps its id through a
    stack). The cells seen twice or cut are found frame by frame (the ``frames`` leading
    axes; a volume's planes after them together): a tile segmented frame by frame numbers
    the cells of one frame in another order than those of the next, and one cell of
    a frame is no cell of the next. Both are found the first time the mosaic is read,
    once: they need each tile's largest id over all its planes, for which every pixel
    of the channel is read, and the pixels of the overlaps and seams. Nothing is read
    when the mosaic is opened; the first read takes about twice as long as a later one
    (7 s against 3.5 s for a 10,000 x 10,000 mask of 400 tiles meeting without overlap,
    on 2 CPU cores; ``benchmarks/bench_mosaic_seams.py``).

    Ids are unsigned and wide enough for the largest id of each tile, whatever the
    tiles hold: at most ``n_tiles`` times the largest value of the tiles' data type
    (``uint32`` for 16-bit tiles, ``uint64`` for 32-bit ones). Tiles of 64-bit ids
    whose largest ids add up to more than 64 bits cannot be read as one mosaic
    (:class:`~napari_cytomask.labels.LabelsError`).

    Parameters
    ----------
    read_tile, offsets, lead_shape, tile_shape, dtype
        See :class:`MosaicArray`.
    frames
        How many leading axes hold frames segmented apart (see
        :func:`~napari_cytomask.io.layers.frame_axes`); all of them by default.
    """

    def __init__(
        self,
        read_tile: TileReader,
        offsets: np.ndarray,
        lead_shape: tuple[int, ...],
        tile_shape: tuple[int, int],
        dtype: np.dtype,
        frames: int | None = None,
    ) -> None:
        super().__init__(read_tile, offsets, lead_shape, tile_shape, dtype)
        widest = len(self.offsets) * int(np.iinfo(self.dtype).max)
        self.dtype = min_label_dtype(min(widest, int(np.iinfo(np.uint64).max)))
        self.frames = len(lead_shape) if frames is None else frames
        self._lock = threading.Lock()
        self._ids: tuple[list[int], dict[tuple[int, ...], Merges]] | None = None

    def _pixels(self, tile: int, lead: tuple[slice, ...], part: np.ndarray) -> np.ndarray:
        shifts, merges = self._tile_ids()
        ids = np.where(part != 0, part.astype(self.dtype) + self.dtype.type(shifts[tile]), 0)
        first = tuple(s.start for s in lead[: self.frames])
        for index in np.ndindex(*ids.shape[: self.frames]):
            frame_at = tuple(f + i for f, i in zip(first, index, strict=True))
            merged, into = merges.get(frame_at, NO_MERGES)
            if merged.size:
                frame = ids[index]
                at = np.searchsorted(merged, frame).clip(max=merged.size - 1)
                found = merged[at] == frame
                frame[found] = into[at[found]]
        return ids

    def _tile_ids(self) -> tuple[list[int], dict[tuple[int, ...], Merges]]:
        """How much each tile's ids are shifted; and, for each frame in which some cells
        are seen by two tiles, the ids of those cells (sorted) with the ids they take."""
        with self._lock:
            if self._ids is None:
                largest = [self._largest_id(tile) for tile in range(len(self.offsets))]
                if sum(largest) > np.iinfo(self.dtype).max:
                    raise LabelsError(
                        f"the mask's tiles hold ids up to {max(largest)}: shifted to be "
                        f"told apart, they would need ids up to {sum(largest)}, more than "
                        "64 bits hold; renumber each tile's cells from 1 first."
                    )
                shifts = [sum(largest[:tile]) for tile in range(len(largest))]
                merges = {}
                for frame in np.ndindex(*self.shape[: self.frames]):
                    if same := self._same_cells(shifts, frame):
                        merged = np.array(sorted(same), self.dtype)
                        into = np.array([same[int(i)] for i in merged], self.dtype)
                        merges[frame] = merged, into
                self._ids = shifts, merges
            return self._ids

    def _planes(
        self, tile: int, rows: slice, cols: slice, frame: tuple[int, ...] = ()
    ) -> Iterator[np.ndarray]:
        """A region of a tile in every plane (of one ``frame``: its leading indices), one
        plane at a time."""
        for index in np.ndindex(*self.shape[len(frame) : -2]):
            key = tuple(slice(i, i + 1) for i in (*frame, *index))
            yield self._read_tile(tile, key, rows, cols)

    def _largest_id(self, tile: int) -> int:
        height, width = self.tile_shape
        planes = self._planes(tile, slice(0, height), slice(0, width))
        return max(int(plane.max(initial=0)) for plane in planes)

    def _same_cells(self, shifts: list[int], frame: tuple[int, ...]) -> dict[int, int]:
        """The shifted ids of cells seen in two tiles in one ``frame`` (where the tiles
        overlap, or cut by the seam where they meet), each with the id of the cell it is
        in the earliest tile that sees it."""
        parent: dict[int, int] = {}

        def root(cell: int) -> int:
            while parent.get(cell, cell) != cell:
                cell = parent[cell]
            return cell

        height, width = self.tile_shape
        reach = 1 + SEAM_GAP / min(height, width)
        for early, late in tile_pairs(self.offsets, self.tile_shape, reach):
            (r0, c0), (r1, c1) = self.offsets[early], self.offsets[late]
            top, bottom = max(r0, r1), min(r0, r1) + height
            left, right = max(c0, c1), min(c0, c1) + width
            if top < bottom and left < right:
                found = self._overlap_cells(early, late, (top, bottom, left, right), frame)
            elif top < bottom and left - right <= SEAM_GAP:
                found = self._seam_cells(early, late, (top, bottom), 1, frame)
            elif left < right and top - bottom <= SEAM_GAP:
                found = self._seam_cells(early, late, (left, right), 0, frame)
            else:
                continue
            for a, b in found:
                first, second = root(a + shifts[early]), root(b + shifts[late])
                parent[max(first, second)] = min(first, second)
        return {cell: root(cell) for cell in parent if root(cell) != cell}

    def _overlap_cells(
        self, early: int, late: int, box: tuple[int, int, int, int], frame: tuple[int, ...]
    ) -> list[tuple[int, int]]:
        """The cells of two tiles that are one cell seen twice where the tiles overlap
        (``box``: top, bottom, left, right in the mosaic): each pair of cells sharing the
        most pixels there of both, as ``(id in early, id in late)``."""
        top, bottom, left, right = box
        (r0, c0), (r1, c1) = self.offsets[early], self.offsets[late]
        pairs = zip(
            self._planes(early, slice(top - r0, bottom - r0), slice(left - c0, right - c0), frame),
            self._planes(late, slice(top - r1, bottom - r1), slice(left - c1, right - c1), frame),
            strict=True,
        )
        return _mutual_best(_shared_pixels(pairs))

    def _seam_cells(
        self, early: int, late: int, span: tuple[int, int], axis: int, frame: tuple[int, ...]
    ) -> list[tuple[int, int]]:
        """The cells of two tiles that meet at a seam (across ``axis``, 1 for a seam
        between columns, over the mosaic's rows or columns ``span``) and are one cell
        cut by it: each pair of cells facing each other along the most pixels of the
        seam, along at least :data:`SEAM_SHARE` of the seam that either of them touches,
        as ``(id in early, id in late)``."""
        lines = []
        for tile, other in ((early, late), (late, early)):
            origin, there = self.offsets[tile], self.offsets[other]
            along = slice(span[0] - origin[1 - axis], span[1] - origin[1 - axis])
            # The tile's last row or column faces a tile after it, its first one before it.
            edge = self.tile_shape[axis] - 1 if there[axis] > origin[axis] else 0
            key = (along, slice(edge, edge + 1)) if axis else (slice(edge, edge + 1), along)
            lines.append(self._planes(tile, *key, frame))
        facing = _shared_pixels(zip(*lines, strict=True), background=True)
        touching_early, touching_late = Counter(), Counter()
        for (a, b), count in facing.items():
            touching_early[a] += count
            touching_late[b] += count
        shared = Counter({(a, b): n for (a, b), n in facing.items() if a and b})
        return [
            (a, b)
            for a, b in _mutual_best(shared)
            if shared[a, b] >= SEAM_SHARE * max(touching_early[a], touching_late[b])
        ]


def _shared_pixels(
    pairs: Iterator[tuple[np.ndarray, np.ndarray]], background: bool = False
) -> Counter:
    """How many pixels each pair of ids shares in two tiles' planes (pixels of one
    against the pixels they face in the other); with ``background``, also a cell's
    pixels against no cell (id 0), else only cells against cells."""
    shared: Counter = Counter()
    for a, b in pairs:
        both = (a != 0) | (b != 0) if background else (a != 0) & (b != 0)
        ids, counts = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
        for (a_id, b_id), count in zip(ids.T.tolist(), counts.tolist(), strict=True):
            shared[a_id, b_id] += count
    return shared


def _mutual_best(shared: Counter) -> list[tuple[int, int]]:
    """The pairs ``(a, b)`` of ``shared`` in which each is the other's best match."""
    best_of_a: dict[int, tuple[int, int]] = {}
    best_of_b: dict[int, tuple[int, int]] = {}
    for (a, b), count in shared.items():
        if count > best_of_a.get(a, (0, 0))[0]:
            best_of_a[a] = count, b
        if count > best_of_b.get(b, (0, 0))[0]:
            best_of_b[b] = count, a
    return [(a, b) for a, (_, b) in best_of_a.items() if best_of_b[b][1] == a]


def stitch(
    read_tile: TileReader,
    offsets: np.ndarray,
    lead_shape: tuple[int, ...],
    tile_shape: tuple[int, int],
    dtype: np.dtype,
    *,
    block: int = BLOCK,
    lead_chunks: tuple[int, ...] | None = None,
    labels: bool = False,
    frames: int | None = None,
) -> da.Array:
    """Lazy mosaic of tiles as a dask array, one chunk per plane block.

    Parameters
    ----------
    read_tile, offsets, lead_shape, tile_shape, dtype
        See :class:`MosaicArray`.
    labels
        Whether the tiles hold label ids, each tile numbering its own cells
        (:class:`LabelMosaicArray`).
    frames
        Of label ids: how many leading axes hold frames segmented apart, see
        :class:`LabelMosaicArray`.
    block
        Largest number of rows and columns in one chunk.
    lead_chunks
        Chunk sizes of the leading axes; 1 (one plane per chunk) by default.

    Returns
    -------
    dask.array.Array
        Shape ``lead_shape + (mosaic rows, mosaic columns)``; reading a chunk
        reads only the parts of the tiles that cover it.
    """
    if labels:
        mosaic = LabelMosaicArray(read_tile, offsets, lead_shape, tile_shape, dtype, frames)
    else:
        mosaic = MosaicArray(read_tile, offsets, lead_shape, tile_shape, dtype)
    lead = tuple(lead_chunks) if lead_chunks is not None else (1,) * len(lead_shape)
    chunks = (*lead, min(block, mosaic.shape[-2]), min(block, mosaic.shape[-1]))
    return da.from_array(
        mosaic, chunks=chunks, asarray=False, meta=np.empty((0,) * mosaic.ndim, mosaic.dtype)
    )
