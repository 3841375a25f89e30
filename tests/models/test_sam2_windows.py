"""Windowed candidate statistics against sam2's whole-frame computation.

The engine reads each upsampled mask only inside the window that its
low-resolution logits can reach; these tests compare that path with the
whole-frame one (sam2's own ``calculate_stability_score`` and
``batched_mask_to_box``, the path the engine takes on a GPU) on logits made
the way sam2 makes them, including values right at the thresholds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_cytomask.models.sam2_engine import (
    Sam2Params,
    _batch_sizes,
    _candidate_stats,
    _decode,
    _frame_stats,
    _point_batches,
    _windows,
    batch_rle_counts,
    compress_masks,
)
from napari_cytomask.rle import rle_counts


def low_res_logits(n=24, size=32, seed=0) -> torch.Tensor:
    """Compact blobs of positive logits on a negative background, some empty, some full."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(-4, size + 4, 2)
        r = rng.uniform(1, size / 2)
        out[i] = (r - np.hypot(yy - cy, xx - cx)) * rng.uniform(0.3, 4) + rng.normal(0, 0.3)
    out[0] = -5.0  # nothing reaches any threshold
    out[1] = 5.0  # everything does
    out[2] = np.where(np.arange(size) % 2, 1.0, -1.0)  # exactly at mask_threshold ± offset
    return torch.as_tensor(out)


def assert_same_stats(ours, theirs, hw):
    stab, boxes, areas, masks = ours
    ref_stab, ref_boxes, ref_areas, ref_masks = theirs
    np.testing.assert_array_equal(stab.numpy(), ref_stab.numpy())  # NaN where both are 0/0
    assert stab.dtype == ref_stab.dtype
    np.testing.assert_array_equal(boxes.numpy(), ref_boxes.numpy())
    np.testing.assert_array_equal(areas, ref_areas)
    for a, b in zip(masks, ref_masks, strict=True):
        assert np.array_equal(_decode(a, hw), _decode(b, hw))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hw", [(61, 64), (97, 50), (32, 32)])
@pytest.mark.parametrize(
    ("threshold", "offset"), [(0.0, 1.0), (0.0, 0.25), (0.5, 1.0), (-1.0, 2.0), (0.0, -1.0)]
)
def test_windowed_stats_equal_whole_frame_stats(hw, threshold, offset, threads):
    # As sam2's decoder returns them: 8 points' 3 masks, a slice of its 4 per point.
    low = low_res_logits()
    decoded = torch.cat([torch.zeros(8, 1, *low.shape[1:]), low.reshape(8, 3, *low.shape[1:])], 1)
    masks = decoded[:, 1:]
    batches = []

    def upsample(m):
        batches.append(tuple(m.shape[:2]))
        return F.interpolate(m, hw, mode="bilinear", align_corners=False)

    params = Sam2Params(mask_threshold=threshold, stability_score_offset=offset)
    windows = _windows(low, threshold - abs(offset), hw)
    assert (windows[:, 1] - windows[:, 0] < hw[0]).sum() > 5  # most windows are partial
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = _candidate_stats(masks, masks.flatten(0, 1), params, hw, upsample)
        # One point's masks at a time, so no batch of full-resolution frames is held.
        assert batches == [(1, 3)] * len(masks)
        # sam2 upsamples the whole batch at once. On one thread PyTorch interpolates
        # several channels with another routine than one, which differs in the last bits
        # for outputs above 128 pixels in height plus width: (97, 50) would fail if the
        # engine upsampled mask by mask.
        theirs = _frame_stats(upsample(masks).flatten(0, 1), threshold, offset)
    finally:
        torch.set_num_threads(saved)
    assert_same_stats(ours, theirs, hw)


@pytest.mark.parametrize("threads", [1, 2])
def test_one_points_masks_upsample_as_in_the_whole_batch(threads):
    """What the engine's per-point upsampling rests on, in the installed PyTorch:
    a point's masks upsampled as one slice of sam2's batch give the batch's
    values bit for bit. (Mask by mask they may not: on one thread PyTorch 2.15
    interpolates several channels with another routine than one.)
    """
    decoded = torch.randn(6, 4, 32, 32, generator=torch.Generator().manual_seed(0)) * 8
    masks = decoded[:, 1:]
    hw = (150, 257)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batch = F.interpolate(masks, hw, mode="bilinear", align_corners=False)
        per_point = [
            F.interpolate(masks[b : b + 1], hw, mode="bilinear", align_corners=False)
            for b in range(len(masks))
        ]
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(torch.cat(per_point), batch)


def test_candidate_stats_of_no_candidates():
    stab, boxes, areas, masks = _candidate_stats(
        torch.zeros(0, 3, 8, 8), torch.zeros(0, 8, 8), Sam2Params(), (30, 30), None
    )
    assert stab.shape == (0,) and boxes.shape == (0, 4) and areas.shape == (0,) and masks == []


def test_windows_never_miss_a_pixel_above_the_floor():
    low = low_res_logits(n=64, size=16, seed=3)
    for hw in [(64, 64), (61, 70), (16, 16), (17, 15), (200, 33)]:
        masks = F.interpolate(low[:, None], hw, mode="bilinear", align_corners=False)[:, 0]
        for floor in (-1.0, 0.0, 0.7):
            windows = _windows(low, floor, hw)
            outside = (masks > floor).clone()
            for i, (y0, y1, x0, x1) in enumerate(windows):
                outside[i, y0:y1, x0:x1] = False
            assert not outside.any()


def test_window_counts_equal_sam2_counts_when_runs_cross_columns():
    rng = np.random.default_rng(0)
    h, w = 9, 7
    cases = [np.zeros((h, w), bool), np.ones((h, w), bool)]
    full = np.zeros((h, w), bool)
    full[5:, 2] = full[:4, 3] = True  # a run from the bottom of a column into the next
    cases.append(full)
    corner = np.zeros((h, w), bool)
    corner[0, 0] = corner[-1, -1] = True  # first and last pixels
    cases.append(corner)
    cases += [rng.random((h, w)) > 0.5 for _ in range(20)]
    for mask in cases:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size:
            y0, x0 = rows[0], cols[0]
            window = mask[y0 : rows[-1] + 1, x0 : cols[-1] + 1]
        else:
            y0, x0, window = 0, 0, mask[:0, :0]
        ours = rle_counts(window, (y0, x0), (h, w))
        assert ours.tolist() == batch_rle_counts(torch.as_tensor(mask)[None])[0].tolist()


def test_packed_masks_round_trip():
    rng = np.random.default_rng(2)
    masks = torch.as_tensor(rng.random((3, 13, 11)) > 0.5)  # 143 pixels: not a multiple of 8
    items = compress_masks(masks)
    assert all(item.dtype == np.uint8 for item in items)
    for item, mask in zip(items, masks, strict=True):
        assert np.array_equal(item, np.packbits(mask.numpy()))
        assert np.array_equal(_decode(item, (13, 11)), mask.numpy())


def test_first_run_batches_are_sam2_batches_and_reruns_fill_full_batches():
    n, batch = 23, 8
    sizes = _batch_sizes(n, batch)
    assert sizes.tolist() == [8] * 16 + [7] * 7
    first = _point_batches(np.ones(n, bool), batch)
    assert [g.tolist() for g in first] == [
        list(range(0, 8)),
        list(range(8, 16)),
        list(range(16, 23)),
    ]
    needed = np.zeros(n, bool)
    needed[[1, 5, 9, 12, 13]] = True
    assert [g.tolist() for g in _point_batches(needed, batch)] == [[1, 5, 9, 12, 13, 13, 13, 13]]
    needed[20] = True  # a point of the short last batch brings the whole batch
    groups = _point_batches(needed, batch)
    assert groups[-1].tolist() == list(range(16, 23))
    assert _point_batches(np.zeros(n, bool), batch) == []
