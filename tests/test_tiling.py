"""The one tiling the U-Net and SAM2 share."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cytomask.tiling import fitted_tile, tile_boxes, tile_spans, tile_starts


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


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [(320, 128, 48), (1000, 256, 64), (105, 23, 20), (301, 128, 33)]
)
def test_each_core_border_is_the_middle_of_the_overlap_rounded_down(size, tile, overlap):
    """Without it, the cores could be cut a pixel off the middle of the overlaps."""
    spans = tile_spans(size, tile, overlap)
    assert len(spans) > 2
    for (_, stop, _, cut), (start, _, following, _) in zip(spans[:-1], spans[1:], strict=True):
        assert cut == following == (stop + start) // 2


def test_core_borders_of_a_known_tiling():
    """Without it, the cores could be cut a pixel off the middle of the overlaps."""
    # Tiles 0:128, 64:192, 128:256, 192:320 overlap by 64; the cuts fall at 96, 160, 224.
    assert tile_spans(320, 128, 48) == [
        (0, 128, 0, 96),
        (64, 192, 96, 160),
        (128, 256, 160, 224),
        (192, 320, 224, 320),
    ]
    # Odd overlaps (0:10 and 7:17, 3 px) are cut at the lower middle: 8 = (10 + 7) // 2.
    assert tile_spans(17, 10, 3) == [(0, 10, 0, 8), (7, 17, 8, 17)]


@pytest.mark.parametrize(
    ("length", "fitted", "tiles"),
    [(100, 112, 1), (600, 608, 1), (641, 512, 2), (1022, 544, 2), (2048, 560, 4), (1392, 512, 3)],
)
def test_a_tile_grows_by_up_to_a_quarter_where_fewer_pixels_then_cover_the_image(
    length, fitted, tiles
):
    """Tiles of 512 overlapping by at least 64 saw a 1022-pixel side three times over
    (1536 pixels), a 1022 x 1024 field in 9 tiles where 4 of 544 do (half the time)."""
    assert len(tile_starts(1022, 512, 64)) == 3
    tile = fitted_tile(length, 512, 64, 16, 640)
    assert tile == fitted and len(tile_starts(length, tile, 64)) == tiles
    seen = len(tile_starts(length, tile, 64)) * tile
    for other in range(512, 641, 16):  # no other size from 512 to 640 sees fewer pixels
        assert seen <= len(tile_starts(length, other, 64)) * other
    # Not allowed to grow, the tile stays as it is (or the image's size, when smaller).
    assert fitted_tile(length, 512, 64, 16, 512) == min(512, fitted if length <= 512 else 512)
