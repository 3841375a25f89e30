import numpy as np
import pytest

from napari_cytomask.labels import LabelsError
from napari_cytomask.postprocess import (
    clean_labels,
    close_objects,
    fill_holes,
    filter_by_area,
    open_objects,
    relabel,
    remove_border_objects,
)


def test_fill_holes_fills_only_enclosed_background():
    labels = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 0, 0],
            [0, 1, 0, 1, 0, 2, 2],
            [0, 1, 1, 1, 0, 2, 0],
            [0, 0, 0, 0, 0, 2, 2],
        ],
        np.uint8,
    )
    expected = labels.copy()
    expected[2, 2] = 1  # enclosed by object 1; the notch of object 2 opens to the border
    out = fill_holes(labels)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


def test_fill_holes_leaves_gaps_between_two_objects():
    labels = np.array([[1, 1, 2, 2], [1, 0, 0, 2], [1, 1, 2, 2]], np.uint16)
    np.testing.assert_array_equal(fill_holes(labels), labels)


def test_opening_removes_thin_spur():
    labels = np.zeros((9, 12), np.uint8)
    labels[2:7, 1:6] = 3
    labels[4, 6:11] = 3  # one-pixel-wide spur
    out = open_objects(labels, 1)
    expected = np.zeros_like(labels)
    expected[2:7, 1:6] = 3
    # A radius-1 disk (cross) rounds the square's corners away and keeps the
    # spur's first pixel, which the dilation of the square reaches again.
    for r, c in ((2, 1), (2, 5), (6, 1), (6, 5)):
        expected[r, c] = 0
    expected[4, 6] = 3
    np.testing.assert_array_equal(out, expected)


def test_closing_bridges_gap_without_touching_other_objects():
    labels = np.zeros((7, 9), np.uint8)
    labels[1:6, 1:4] = 1
    labels[1:6, 5:8] = 1  # one-pixel gap at column 4
    labels[0, 4] = 2
    out = close_objects(labels, 1)
    expected = labels.copy()
    expected[2:5, 4] = 1
    np.testing.assert_array_equal(out, expected)
    assert out[0, 4] == 2


def test_filter_by_area_and_relabel():
    labels = np.zeros((6, 6), np.int32)
    labels[0, 0] = 5  # 1 pixel
    labels[2:4, 2:4] = 9  # 4 pixels
    labels[5, :] = 7  # 6 pixels
    out = filter_by_area(labels, min_area=2, max_area=5)
    expected = np.zeros_like(labels)
    expected[2:4, 2:4] = 9
    np.testing.assert_array_equal(out, expected)
    renumbered = relabel(labels)
    assert renumbered.dtype == np.uint8
    assert renumbered[0, 0] == 1 and renumbered[2, 2] == 3 and renumbered[5, 0] == 2
    with pytest.raises(ValueError, match="max_area"):
        filter_by_area(labels, min_area=5, max_area=2)


def test_relabel_uses_smallest_dtype():
    labels = np.zeros((20, 20), np.int64)
    labels.ravel()[:300] = np.arange(1, 301) * 1000
    out = relabel(labels)
    assert out.dtype == np.uint16 and out.max() == 300


def test_remove_border_objects():
    labels = np.array([[1, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0], [0, 3, 3, 3]], np.uint8)
    expected = np.zeros_like(labels)
    expected[1, 2] = 2
    np.testing.assert_array_equal(remove_border_objects(labels), expected)
    np.testing.assert_array_equal(
        remove_border_objects(labels, sides=("top",)), np.where(labels == 1, 0, labels)
    )


def test_clean_labels_pipeline():
    labels = np.zeros((8, 8), np.int32)
    labels[1:6, 1:6] = 40
    labels[3, 3] = 0  # hole
    labels[7, 7] = 12  # small, on the border
    out = clean_labels(labels, min_area=2, exclude_border=True)
    expected = np.zeros((8, 8), np.uint8)
    expected[1:6, 1:6] = 1
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


def test_clean_labels_rejects_float_and_stacks():
    with pytest.raises(LabelsError, match="fractional"):
        clean_labels(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="2D frame"):
        clean_labels(np.zeros((2, 4, 4), np.uint8))


def _cells_with_holes_spurs_and_fragments() -> np.ndarray:
    labels = np.zeros((60, 80), np.uint64)
    labels[5:25, 5:25] = 1
    labels[12:16, 12:16] = 0  # a hole
    labels[14, 25:35] = 1  # a spur
    labels[5:25, 26:46] = 2
    labels[10:30, 50:58] = 3  # two cells touching in a waist: split splits them
    labels[18:22, 58:62] = 3
    labels[10:30, 62:72] = 3
    labels[35:55, 10:30] = 4
    labels[35:37, 30:32] = 5  # a fragment on cell 4
    labels[40:50, 40:44] = 6
    labels[40:50, 46:50] = 6  # a notch to close
    labels[40:42, 44:46] = 6
    return labels


@pytest.mark.parametrize("top", [2**31 + 7, 2**62 + 9, 2**64 - 1])
def test_huge_ids_give_the_same_objects_as_small_ones(top):
    """Exported, stitched or hashed labels can carry ids up to 2**64 - 1: every step
    keeps them, instead of overflowing or making tables with an entry per id."""
    from napari_cytomask.postprocess import merge_small_fragments, split_labels

    small = _cells_with_holes_spurs_and_fragments()
    huge_ids = np.array([0, 5, top // 8, top // 4 + 3, top // 2, top - 1, top], np.uint64)
    huge = huge_ids[small]
    steps = {
        "fill holes": fill_holes,
        "open": lambda x: open_objects(x, 2),
        "close": lambda x: close_objects(x, 2),
        "filter": lambda x: filter_by_area(x, min_area=10, max_area=300),
        "merge": lambda x: merge_small_fragments(x, min_size=10),
    }
    for name, step in steps.items():
        expected = step(small)
        assert not np.array_equal(expected, small), name  # the step does something here
        got = step(huge)
        assert got.dtype == huge.dtype, name
        np.testing.assert_array_equal(got, huge_ids[expected], err_msg=name)
    # A frame without background: ids near 2**64 must not pass through floats.
    full = np.array([[top - 2, top - 2, top], [top - 2, top, top]], np.uint64)
    np.testing.assert_array_equal(fill_holes(full), full)
    np.testing.assert_array_equal(filter_by_area(full, min_area=3), full)
    # Split numbers its pieces anew, in the order of the ids split.
    pieces = split_labels(small, h=1, min_distance=3)
    assert pieces.max() > small.max()
    np.testing.assert_array_equal(split_labels(huge, h=1, min_distance=3), pieces)


def test_an_object_of_exactly_max_area_is_kept():
    """Without it, objects of exactly ``max_area`` pixels could be removed (``>=``)."""
    labels = np.zeros((6, 12), np.uint16)
    labels[1:3, 1:4] = 3  # 6 pixels
    labels[1:4, 6:9] = 8  # 9 pixels
    labels[5, 0:10] = 2  # 10 pixels
    out = filter_by_area(labels, max_area=9)
    expected = np.where(labels == 2, 0, labels)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(filter_by_area(labels, min_area=6, max_area=10), labels)
    np.testing.assert_array_equal(filter_by_area(labels, max_area=5), np.zeros_like(labels))
