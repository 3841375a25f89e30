"""Object metrics agree with stardist.matching on real labels and on hard random cases."""

from __future__ import annotations

import numpy as np
import pytest
from stardist.matching import matching, matching_dataset

from napari_cytomask.metrics import DEFAULT_THRESHOLDS, MAF1_THRESHOLDS, MatchStats, evaluate

from .conftest import PERTURBATIONS, REAL_LABELS

# Edge values too: exactly 0.5 and exactly 1.0 are thresholds people use.
THRESHOLDS = [*DEFAULT_THRESHOLDS, 0.01, 0.333, 0.5, 1.0]
FIELDS = [name for name in MatchStats.FIELDS if name != "thresh"]


def assert_agrees(stats: MatchStats, reference, context: str) -> None:
    for i, ref in enumerate(reference):
        row = stats.row(i)
        assert row["thresh"] == pytest.approx(ref.thresh)
        for name in FIELDS:
            assert row[name] == pytest.approx(float(getattr(ref, name)), abs=1e-6), (
                f"{context}: {name} at IoU {ref.thresh}: ours {row[name]}, "
                f"stardist {getattr(ref, name)}"
            )


@pytest.mark.parametrize("kind", sorted(PERTURBATIONS))
@pytest.mark.parametrize("name", REAL_LABELS)
def test_real_labels_agree_with_stardist(real_labels, perturb, name, kind):
    gt = real_labels[name]
    pred = perturb(gt, kind)
    ours = evaluate(gt, pred, THRESHOLDS).matches
    assert_agrees(ours, matching(gt, pred, thresh=THRESHOLDS), f"{name} {kind}")
    # The perturbation really hurts (the test can fail), and identity is perfect.
    assert ours.panoptic_quality.min() < 1.0
    assert np.all(evaluate(gt, gt, THRESHOLDS).matches.panoptic_quality == 1.0)


def test_swapping_roles_agrees_with_stardist(real_labels, perturb):
    gt = real_labels["usiigaci-phc/set1/instances_ids.png"]
    pred = perturb(gt, "mixed", seed=3)
    assert_agrees(
        evaluate(pred, gt, THRESHOLDS).matches, matching(pred, gt, thresh=THRESHOLDS), "swapped"
    )


def _overlapping_rectangles(rng: np.random.Generator, n: int, shape=(48, 48)) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    for i in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 6, 2)
        h, w = rng.integers(4, 16, 2)
        labels[y : y + h, x : x + w] = i
    return labels


def test_conflicting_candidates_need_the_optimal_assignment():
    # Ground truth 1 overlaps prediction 1 (IoU 1/2) and prediction 2 (IoU 1/3);
    # ground truth 2 overlaps only prediction 1 (IoU 1/5). At IoU 0.2, taking
    # the best partner first matches one pair; the optimal matching finds two.
    gt = np.zeros((2, 12), np.uint8)
    gt[:, 0:6] = 1
    gt[:, 6:12] = 2
    pred = np.zeros_like(gt)
    pred[:, 2:8] = 1
    pred[:, 0:2] = 2
    thresholds = [0.1, 0.2, 0.3, 0.5]
    ours = evaluate(gt, pred, thresholds).matches
    assert_agrees(ours, matching(gt, pred, thresh=thresholds), "hand case")
    assert ours.tp.tolist() == [2, 2, 1, 1]
    # At 0.3 one pair matches either way; stardist's tie-breaker (sum of the IoUs of
    # all assigned pairs, 1/3 + 1/5 > 1/2) picks ground truth 1 with prediction 2.
    assert ours.mean_matched_score.tolist() == pytest.approx(
        [(1 / 3 + 1 / 5) / 2] * 2 + [1 / 3, 1 / 2]
    )


@pytest.mark.parametrize("seed", range(24))
def test_random_crowded_overlaps_agree_with_stardist(seed):
    # Dense random rectangles over each other: many objects with several
    # candidates at low thresholds, so the assignment path is exercised.
    rng = np.random.default_rng(seed)
    gt = _overlapping_rectangles(rng, 25)
    pred = _overlapping_rectangles(rng, 25)
    if seed % 2:
        pred = np.where(rng.random(gt.shape) < 0.8, gt, pred)
    thresholds = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7]
    assert_agrees(
        evaluate(gt, pred, thresholds).matches,
        matching(gt, pred, thresh=thresholds),
        f"seed {seed}",
    )


def test_3d_agrees_with_stardist(perturb):
    rng = np.random.default_rng(7)
    gt = np.stack([_overlapping_rectangles(rng, 12, (40, 40)) for _ in range(6)])
    gt = np.repeat(gt, 2, axis=0)  # objects span several planes
    pred = np.roll(gt, 1, axis=0)
    pred[:, 5:9, 5:9] = 200
    assert gt.ndim == 3
    assert_agrees(
        evaluate(gt, pred, THRESHOLDS).matches, matching(gt, pred, thresh=THRESHOLDS), "3d"
    )


def test_stack_aggregate_agrees_with_matching_dataset(real_labels, perturb):
    gts = [
        real_labels["nuclei-dsb/tests_mask2d.tif"],
        real_labels["nuclei-dsb/mask2d.tif"][:256, :256],
    ]
    preds = [perturb(gts[0], "mixed"), perturb(gts[1], "split", seed=1)]
    result = evaluate(np.stack(gts), np.stack(preds), THRESHOLDS, stack=True)
    reference = matching_dataset(gts, preds, thresh=THRESHOLDS, show_progress=False)
    assert_agrees(result.matches, reference, "stack aggregate")
    assert len(result.frames) == 2
    for frame, gt, pred in zip(result.frames, gts, preds, strict=True):
        assert_agrees(frame.matches, matching(gt, pred, thresh=THRESHOLDS), "stack frame")
    # The aggregate sums counts, it does not average ratios.
    assert (
        result.matches.tp.tolist()
        == (result.frames[0].matches.tp + result.frames[1].matches.tp).tolist()
    )
    assert result.pixels.tp == result.frames[0].pixels.tp + result.frames[1].pixels.tp
    assert len(result.true_objects) == len(np.unique(gts[0])) - 1 + len(np.unique(gts[1])) - 1
    assert set(result.pred_objects.frame.tolist()) == {0, 1}


@pytest.mark.parametrize(
    "gt_empty, pred_empty", [(True, True), (True, False), (False, True)], ids=["both", "gt", "pred"]
)
def test_empty_images_agree_with_stardist(real_labels, gt_empty, pred_empty):
    labels = real_labels["nuclei-dsb/tests_mask2d.tif"]
    gt = np.zeros_like(labels) if gt_empty else labels
    pred = np.zeros_like(labels) if pred_empty else labels
    with np.errstate(all="raise"):
        result = evaluate(gt, pred, THRESHOLDS)
    assert_agrees(result.matches, matching(gt, pred, thresh=THRESHOLDS), "empty")
    summary = result.summary()
    assert all(np.isfinite(v) for v in summary.values())
    # No true positive, so every ratio is 0 (stardist's convention, also for empty/empty).
    assert all(v == 0 for v in summary.values())
    assert result.mean_average_f1 == 0.0


def test_msa_is_the_per_image_mean_of_stardist_accuracy(real_labels, perturb):
    """mSA is a per-image mean without empty frames; else an empty tile drags it down unseen."""
    # mSA (micro-sam, Archit & Pape): per image, the mean over IoU 0.50:0.05:0.95 of
    # stardist's "accuracy" TP / (TP + FP + FN); over images, the mean of those.
    gts = [
        real_labels["nuclei-dsb/tests_mask2d.tif"],
        real_labels["nuclei-dsb/mask2d.tif"][:256, :256],
    ]
    # Both predictions are partly right (mSA > 0), so leaving an empty frame
    # in the mean would change it ("mixed" would score 0 and hide that).
    preds = [perturb(gts[0], "merged"), perturb(gts[1], "split", seed=1)]
    per_image = [
        np.mean([r.accuracy for r in matching(gt, pred, thresh=list(MAF1_THRESHOLDS))])
        for gt, pred in zip(gts, preds, strict=True)
    ]
    assert min(per_image) > 0.1
    single = [evaluate(gt, pred) for gt, pred in zip(gts, preds, strict=True)]
    for result, expected in zip(single, per_image, strict=True):
        assert result.mean_segmentation_accuracy == pytest.approx(expected, abs=1e-9)
        assert result.summary()["mean_segmentation_accuracy"] == pytest.approx(expected, abs=1e-9)
    # Per image, then averaged: not the pooled counts of the whole set.
    expected = float(np.mean(per_image))
    stacked = evaluate(np.stack(gts), np.stack(preds), stack=True)
    assert stacked.mean_segmentation_accuracy == pytest.approx(expected, abs=1e-9)
    assert (single[0] + single[1]).mean_segmentation_accuracy == pytest.approx(expected, abs=1e-9)
    pooled = np.mean(stacked.maf1_matches.accuracy)
    assert abs(pooled - expected) > 1e-3
    # A frame with no object in either image does not count (the docstring's rule):
    # the mean is that of the other frame alone, not halved by a 0 for the empty one.
    empty = np.zeros_like(gts[0])
    with_empty = evaluate(np.stack([gts[0], empty]), np.stack([preds[0], empty]), stack=True)
    assert with_empty.frames[1].maf1_matches.n_true == with_empty.frames[1].maf1_matches.n_pred == 0
    assert with_empty.mean_segmentation_accuracy == pytest.approx(per_image[0], abs=1e-9)
    # Only a frame with no object at all is left out: an empty prediction counts as 0.
    missed = evaluate(np.stack([gts[0], gts[0]]), np.stack([preds[0], empty]), stack=True)
    assert missed.mean_segmentation_accuracy == pytest.approx(per_image[0] / 2, abs=1e-9)
