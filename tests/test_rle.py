"""COCO run-length encoding: one encoder for the SAM2 engine and the COCO export."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as cocomask

from napari_cytomask.rle import coco_rle, rle_counts, rle_to_mask


@pytest.mark.parametrize("seed", range(4))
def test_a_window_encodes_as_its_whole_mask_and_as_pycocotools(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((37, 23), bool)
    mask[5:30, 3:20] = rng.random((25, 17)) > 0.4
    mask[0, 0] = mask[-1, -1] = seed % 2  # runs on the first and the last pixel
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    window, origin = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], (rows[0], cols[0])
    counts = rle_counts(mask)
    assert rle_counts(window, origin, mask.shape).tolist() == counts.tolist()
    assert counts.sum() == mask.size and np.array_equal(rle_to_mask(counts, mask.shape), mask)
    theirs = cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert coco_rle(window, origin, mask.shape) == {
        "size": list(mask.shape),
        "counts": theirs["counts"].decode(),
    }


def test_an_empty_mask_is_one_background_run():
    assert rle_counts(np.zeros((0, 0), bool), (0, 0), (4, 5)).tolist() == [20]
    assert rle_counts(np.zeros((4, 5), bool)).tolist() == [20]
