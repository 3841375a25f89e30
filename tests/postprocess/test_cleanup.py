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
