"""The one tiling the U-Net and SAM2 share."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cytomask.tiling import tile_boxes, tile_spans, tile_starts


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [(320, 128, 48), (1000, 256, 64), (105, 23, 20)]
)
def test_tiles_cover_with_the_overlap_and_cores_partition(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == size - tile
    assert min(np.diff(starts)) > 0 and tile - max(np.diff(starts)) >= overlap
    spans = tile_spans(size, tile, overlap)
    assert [start for start, *_ in spans] == starts
    cores = [(c0, c1) for *_, c0, c1 in spans]
    assert cores[0][0] == 0 and cores[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(cores[:-1], cores[1:], strict=True))
    assert all(start <= c0 < c1 <= stop for start, stop, c0, c1 in spans)


def test_boxes_are_the_tiles_of_both_axes():
    boxes = tile_boxes((100, 300), 128, 32)
    assert boxes[0] == ((0, 0, 100, 128), (0, 0, 100, boxes[0][1][3]))
    xs = tile_starts(300, 128, 32)
    assert [window[1] for window, _ in boxes] == xs  # one row of tiles: the image is 100 high
    covered = np.zeros((100, 300), int)
    for _, (y0, x0, y1, x1) in boxes:
        covered[y0:y1, x0:x1] += 1
    assert np.all(covered == 1)


def test_a_small_image_is_one_tile_and_a_bad_overlap_is_explained():
    assert tile_starts(100, 128, 500) == [0]
    assert tile_boxes((50, 60), 128, 32) == [((0, 0, 50, 60), (0, 0, 50, 60))]
    with pytest.raises(ValueError, match=r"overlap \(128\) must be at least 0 and smaller"):
        tile_starts(300, 128, 128)
