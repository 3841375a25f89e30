"""From SAM2 masks to cell labels: overlaps, background, tiles, stacks and features.

A stand-in for the decoder returns, for every tile, the masks a perfect model
would give there (each disc clipped to the tile, plus one background mask per
tile), so these tests check the label stage exactly and need no network weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2.utils.amg import batched_mask_to_box

from napari_cytomask.models.sam2_engine import (
    _LRU,
    LabelParams,
    Sam2Engine,
    Sam2Params,
    _Masks,
    compress_masks,
    masks_to_labels,
    to_uint8_rgb,
)
from napari_cytomask.rle import rle_counts
from napari_cytomask.tiling import tile_boxes

SHAPE = (100, 150)
# (row, column, radius): the second and third discs cross tile borders.
DISCS = [(20, 20, 9), (50, 55, 10), (30, 100, 11), (80, 120, 8), (75, 30, 7)]


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def as_masks(binary: np.ndarray, ious) -> _Masks:
    t = torch.as_tensor(binary)
    n = len(binary)
    h, w = binary.shape[1:]
    return _Masks(
        masks=compress_masks(t),
        boxes=batched_mask_to_box(t).float().numpy().reshape(n, 4),
        iou_preds=np.asarray(ious, np.float32),
        stability=np.full(n, 0.9, np.float32),
        points=np.zeros((n, 2), np.float32),
        crop_boxes=np.tile(np.array([0, 0, w, h], np.float32), (n, 1)),
        areas=binary.reshape(n, -1).sum(1),
        shape=binary.shape[1:],
    )


class SceneEngine(Sam2Engine):
    """Gives every tile the discs of ``DISCS`` it sees, and a background mask."""

    def __init__(self, label_params: LabelParams, extra=()):
        self._normalized = _LRU(1 << 20)
        self.tiles = tile_boxes(SHAPE, label_params.tile_size, label_params.tile_overlap)
        self.extra = list(extra)

    def _masks_of_views(self, views, params):
        out = []
        for v in range(len(views)):
            y0, x0, y1, x1 = self.tiles[v % len(self.tiles)][0]
            binary = [disc(SHAPE, *d)[y0:y1, x0:x1] for d in DISCS + self.extra]
            binary = [b for b in binary if b.any()]
            binary.append(np.ones((y1 - y0, x1 - x0), bool))
            out.append(as_masks(np.stack(binary), np.linspace(0.9, 0.8, len(binary))))
        yield ("decoder", 1, 1)
        return out, sum(len(m.masks) for m in out)


def run(engine, lp, image=None, **kwargs):
    image = np.zeros(SHAPE, np.uint16) if image is None else image
    return engine.segment(image, Sam2Params(), lp, **kwargs)


def test_tiles_are_merged_without_duplicates_or_cut_cells():
    lp = LabelParams(tile_size=64, tile_overlap=24)
    engine = SceneEngine(lp)
    assert len(engine.tiles) == 2 * 4
    result = run(engine, lp)
    assert result.labels.shape == SHAPE
    assert len(result.features["index"]) == len(DISCS)  # background masks are gone
    for cy, cx, r in DISCS:
        ids = np.unique(result.labels[disc(SHAPE, cy, cx, r)])
        assert len(ids) == 1 and ids[0] > 0  # one whole object per disc
        assert (result.labels == ids[0]).sum() == disc(SHAPE, cy, cx, r).sum()
    expected = sorted(int(disc(SHAPE, *d).sum()) for d in DISCS)
    assert sorted(result.features["area"].tolist()) == expected


def test_foreground_map_and_area_limits_drop_masks():
    lp = LabelParams(tile_size=256)
    engine = SceneEngine(lp, extra=[(60, 90, 6)])
    foreground = np.zeros(SHAPE, np.float32)
    for d in DISCS:
        foreground[disc(SHAPE, *d)] = 0.9
    kept = run(engine, lp, foreground=foreground)
    assert len(kept.features["index"]) == len(DISCS)  # the disc on background is dropped
    assert len(run(engine, lp).features["index"]) == len(DISCS) + 1
    small = run(engine, LabelParams(tile_size=256, min_area=200))
    assert sorted(small.features["mask_area"].tolist()) == sorted(
        int(disc(SHAPE, *d).sum()) for d in DISCS + [(60, 90, 6)] if disc(SHAPE, *d).sum() >= 200
    )
    with pytest.raises(ValueError, match="same image"):
        run(engine, lp, foreground=foreground[:10])


class MasksEngine(SceneEngine):
    """Gives the whole image (one tile) the masks it was made with."""

    def __init__(self, masks):
        self._normalized = _LRU(1 << 20)
        self.masks = np.stack(masks)

    def _masks_of_views(self, views, params):
        yield ("decoder", 1, 1)
        return [as_masks(self.masks, np.full(len(self.masks), 0.9))], len(self.masks)


def test_no_piece_of_a_mask_painted_over_is_smaller_than_the_minimum_area():
    """Smaller masks painted over a larger one can leave slivers of it: pieces under the
    minimum area go, larger pieces keep their mask's id (a bar cut in two by a post)."""
    bar = np.zeros(SHAPE, bool)
    bar[40:60, 10:120] = True  # cut in two by the post: 20 x 60 px and 20 x 40 px
    post = np.zeros(SHAPE, bool)
    post[:, 70:80] = True
    crescent, moon = disc(SHAPE, 20, 40, 10), disc(SHAPE, 20, 42, 9)  # ~60 px of crescent
    lp = LabelParams(tile_size=256, min_area=100)
    result = run(MasksEngine([bar, post, crescent, moon]), lp)
    labels = result.labels
    assert result.features["index"].tolist() == [1, 2, 3]
    assert result.features["area"].tolist() == [20 * 100, post.sum(), moon.sum()]
    assert result.features["mask_area"].tolist() == [bar.sum(), post.sum(), moon.sum()]
    assert np.all(labels[40:60, 10:70] == 1) and np.all(labels[40:60, 80:120] == 1)
    assert np.all(labels[post] == 2) and np.all(labels[moon] == 3)
    assert not labels[crescent & ~moon].any()
    # Without a minimum, nothing is dropped: the crescent stays with its mask.
    kept = run(MasksEngine([bar, post, crescent, moon]), LabelParams(tile_size=256))
    assert np.all(kept.labels[crescent & ~moon] == 3)


def test_stacks_get_unique_ids_and_a_position_column():
    lp = LabelParams(tile_size=256)
    result = run(SceneEngine(lp), lp, image=np.zeros((2, *SHAPE), np.uint16))
    n = len(DISCS)
    assert result.labels.shape == (2, *SHAPE)
    assert result.features["position"].tolist() == [0] * n + [1] * n
    assert result.features["index"].tolist() == list(range(1, 2 * n + 1))
    assert set(np.unique(result.labels[1])) == {0, *range(n + 1, 2 * n + 1)}


def test_overlaps_are_resolved_by_area_or_score():
    big = disc(SHAPE, 50, 50, 20)
    small = disc(SHAPE, 50, 60, 8)
    inner = disc(SHAPE, 50, 61, 3)
    masks = [
        {"segmentation": big, "predicted_iou": 0.95, "stability_score": 0.9},
        {"segmentation": small, "predicted_iou": 0.85, "stability_score": 0.9},
        {"segmentation": inner, "predicted_iou": 0.5, "stability_score": 0.9},
    ]
    by_area, feats = masks_to_labels(masks, order="area")
    assert np.all(by_area[inner] == 3) and np.all(by_area[small & ~inner] == 2)
    assert np.all(by_area[big & ~small] == 1)
    sizes = [int((big & ~small).sum()), int((small & ~inner).sum()), int(inner.sum())]
    assert feats["area"].tolist() == sizes
    assert feats["mask_area"].tolist() == [int(big.sum()), int(small.sum()), int(inner.sum())]
    by_score, feats = masks_to_labels(masks, order="score")
    assert np.all(by_score[big] == 1) and set(np.unique(by_score)) == {0, 1}
    assert feats["predicted_iou"].tolist() == pytest.approx([0.95])
    rle = {"size": list(SHAPE), "counts": rle_counts(small).tolist()}
    from_rle, _ = masks_to_labels(
        [{"segmentation": rle, "predicted_iou": 1.0, "stability_score": 1.0}]
    )
    assert np.array_equal(from_rle > 0, small)


def test_split_gives_fragments_their_parent_scores():
    twins = disc(SHAPE, 50, 40, 14) | disc(SHAPE, 50, 64, 14)
    masks = [{"segmentation": twins, "predicted_iou": 0.7, "stability_score": 0.8}]
    lp = LabelParams(split=True, split_kwargs={"markers": "h_maxima", "h": 2.0})
    labels, feats = masks_to_labels(masks)
    assert len(feats["index"]) == 1
    from napari_cytomask.models.sam2_engine import _split

    split, feats = _split(labels, feats, lp.split_kwargs)
    assert len(feats["index"]) == 2
    assert feats["predicted_iou"].tolist() == pytest.approx([0.7, 0.7])
    assert feats["area"].sum() == twins.sum()


class OneMaskEngine(Sam2Engine):
    """Gives the image one mask: ``mask``."""

    def __init__(self, mask: np.ndarray):
        self._normalized = _LRU(1 << 20)
        self.mask = mask

    def _masks_of_views(self, views, params):
        yield ("decoder", 1, 1)
        return [as_masks(self.mask[None], [0.9])], 1


def test_the_split_measures_distances_over_the_shape_of_the_pixels():
    """Over 0.87 x 0.435 µm pixels, the split counted rows and columns: one mask of two
    round cells touching along Y stayed one cell."""
    yy, xx = np.mgrid[:96, :160]
    yy, xx = (yy - 48) * 0.87, (xx - 80) * 0.435
    twins = (np.abs(yy) - 6) ** 2 + xx**2 < 10**2  # centres 12 µm apart
    engine, lp, image = OneMaskEngine(twins), LabelParams(split=True), twins.astype(np.uint16)
    split = engine.segment(image, Sam2Params(), lp, spacing=(0.87, 0.435))
    assert split.labels.max() == 2 and split.labels[48 - 12, 80] != split.labels[48 + 12, 80]
    assert split.features["area"].sum() == twins.sum()
    # Square pixels of any size count as pixels, as they did: the two stay one.
    as_is = engine.segment(image, Sam2Params(), lp).labels
    assert as_is.max() == 1
    square = engine.segment(image, Sam2Params(), lp, spacing=(0.435, 0.435)).labels
    np.testing.assert_array_equal(square, as_is)


def test_grayscale_is_stretched_between_percentiles():
    rng = np.random.default_rng(0)
    image = rng.normal(1000, 50, (64, 64)).astype(np.uint16)
    image[0, 0] = 65535  # one hot pixel does not darken the image
    rgb = to_uint8_rgb(image)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], rgb[..., 2])
    lo, hi = np.percentile(image, (1, 99))
    inside = (image > lo) & (image < hi)
    assert 100 < rgb[..., 0][inside].mean() < 160
    assert np.array_equal(to_uint8_rgb(rgb), rgb)  # 8-bit colour: as it is


def test_an_8_bit_grayscale_image_is_stretched_as_a_16_bit_one():
    """An 8-bit phase image that used values 17 to 44 only went to SAM2 as it was:
    nearly black and flat, where the same image in 16 bits was stretched."""
    rng = np.random.default_rng(0)
    wide = rng.normal(30000, 6000, (64, 64)).clip(0, 65535).astype(np.uint16)
    narrow = (wide / 1000).astype(np.uint8)  # values about 12 to 48
    assert np.ptp(narrow) < 60
    a, b = to_uint8_rgb(wide)[..., 0], to_uint8_rgb(narrow)[..., 0]
    assert np.percentile(b, 99) - np.percentile(b, 1) > 200
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 10


@pytest.mark.parametrize("missing", [np.nan, np.inf, -np.inf])
def test_pixels_that_are_not_numbers_neither_blacken_the_image_nor_stop_it(missing):
    """NaN was left out; ±inf made every pixel black (an infinite percentile)."""
    image = np.random.default_rng(0).normal(1000, 50, (64, 64)).astype(np.float32)
    image[:4] = missing  # no data, as at a stitched scan's edges, or saturated
    rgb = to_uint8_rgb(image)
    assert np.array_equal(rgb[4:], to_uint8_rgb(image[4:]))
    assert rgb[4:].mean() > 50
    assert (rgb[:4] == 0).all()
    assert (to_uint8_rgb(np.full((8, 8), missing, np.float32)) == 0).all()


def test_a_large_colour_image_is_scaled_by_all_its_colours():
    """Sampled with its colours side by side, every third pixel was red: green and blue
    were stretched by red's range and came out white."""
    image = np.zeros((2400, 2400, 3), np.uint16)
    image[..., 0], image[..., 1], image[..., 2] = 100, 1000, 5000
    image += np.random.default_rng(0).integers(0, 50, image.shape, dtype=np.uint16)
    rgb = to_uint8_rgb(image)
    assert rgb[..., 0].mean() < 10 and 20 < rgb[..., 1].mean() < 100 and rgb[..., 2].mean() > 200
