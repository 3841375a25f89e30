"""Stitching the tiles of a scan into one mosaic by their stage positions.

Tiles are placed at ``(position - min position) / pixel size`` without blending:
where tiles overlap, the later tile is drawn over the earlier ones. The mosaic is
lazy: a plane (or a block of it) is stitched only when something reads it, and
only the parts of the tiles that fall into that block are read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dask.array as da
import numpy as np

#: Reads part of one tile: ``(tile, leading key, rows, columns) -> array`` whose
#: shape is the leading key's shape followed by ``(rows, columns)``.
TileReader = Callable[[int, tuple[slice, ...], slice, slice], np.ndarray]

#: Rows and columns of one mosaic block computed at once.
BLOCK = 2048


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
    from scipy.spatial import cKDTree

    # In tile units: neighbours start at most one and a half tiles apart along both axes.
    scaled = np.asarray(offsets, float) / np.asarray(tile_shape, float)
    pairs = cKDTree(scaled).query_pairs(1.5, p=np.inf, output_type="ndarray")
    n = len(scaled)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return int(connected_components(graph, directed=False)[0])


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
            ] = part
        return out


def stitch(
    read_tile: TileReader,
    offsets: np.ndarray,
    lead_shape: tuple[int, ...],
    tile_shape: tuple[int, int],
    dtype: np.dtype,
    *,
    block: int = BLOCK,
    lead_chunks: tuple[int, ...] | None = None,
) -> da.Array:
    """Lazy mosaic of tiles as a dask array, one chunk per plane block.

    Parameters
    ----------
    read_tile, offsets, lead_shape, tile_shape, dtype
        See :class:`MosaicArray`.
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
    mosaic = MosaicArray(read_tile, offsets, lead_shape, tile_shape, dtype)
    lead = tuple(lead_chunks) if lead_chunks is not None else (1,) * len(lead_shape)
    chunks = (*lead, min(block, mosaic.shape[-2]), min(block, mosaic.shape[-1]))
    return da.from_array(
        mosaic, chunks=chunks, asarray=False, meta=np.empty((0,) * mosaic.ndim, mosaic.dtype)
    )
