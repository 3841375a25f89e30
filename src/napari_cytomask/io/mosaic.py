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
    with another id beside the edge. Tiles that only touch are not joined: two cells on
    either side of a seam may be two cells.

    The shifts hold for all the mosaic's planes (a tile's cell keeps its id through a
    stack). The cells seen twice are found frame by frame (the ``frames`` leading axes;
    a volume's planes after them together): a tile segmented frame by frame numbers
    the cells of one frame in another order than those of the next, and one cell of
    a frame is no cell of the next. Both are found the first time the mosaic is read,
    once: they need each tile's largest id over all its planes, for which every pixel
    of the channel is read, and the pixels of the overlaps. Nothing is read when the
    mosaic is opened; the first read takes about half as long again as reading every
    plane would (a few seconds for a 10,000 x 10,000 mask of 400 tiles).

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
        """The shifted ids of cells seen in two overlapping tiles in one ``frame``, each
        with the id of the cell it is in the earliest tile that sees it."""
        parent: dict[int, int] = {}

        def root(cell: int) -> int:
            while parent.get(cell, cell) != cell:
                cell = parent[cell]
            return cell

        height, width = self.tile_shape
        for early, late in tile_pairs(self.offsets, self.tile_shape, 1):
            (r0, c0), (r1, c1) = self.offsets[early], self.offsets[late]
            top, bottom = max(r0, r1), min(r0, r1) + height
            left, right = max(c0, c1), min(c0, c1) + width
            if top >= bottom or left >= right:
                continue
            shared: Counter = Counter()
            for a, b in zip(
                self._planes(
                    early, slice(top - r0, bottom - r0), slice(left - c0, right - c0), frame
                ),
                self._planes(
                    late, slice(top - r1, bottom - r1), slice(left - c1, right - c1), frame
                ),
                strict=True,
            ):
                both = (a != 0) & (b != 0)
                pairs, counts = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
                for (a_id, b_id), count in zip(pairs.T.tolist(), counts.tolist(), strict=True):
                    shared[a_id, b_id] += count
            best_of_early: dict[int, tuple[int, int]] = {}
            best_of_late: dict[int, tuple[int, int]] = {}
            for (a, b), count in shared.items():
                if count > best_of_early.get(a, (0, 0))[0]:
                    best_of_early[a] = count, b
                if count > best_of_late.get(b, (0, 0))[0]:
                    best_of_late[b] = count, a
            for a, (_, b) in best_of_early.items():
                if best_of_late[b][1] == a:
                    first, second = root(a + shifts[early]), root(b + shifts[late])
                    parent[max(first, second)] = min(first, second)
        return {cell: root(cell) for cell in parent if root(cell) != cell}


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
