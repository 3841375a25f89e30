"""COCO-style AP agrees with pycocotools on real labels, with and without tied scores."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from napari_cytomask.metrics import evaluate


def _annotations(labels: np.ndarray, image_id: int, scores=None) -> list[dict]:
    anns = []
    ids = np.unique(labels)
    for k, i in enumerate(ids[ids > 0]):
        rle = mask_utils.encode(np.asfortranarray((labels == i).astype(np.uint8)))
        ann = {"image_id": image_id, "category_id": 1, "segmentation": rle}
        if scores is None:
            ann.update(iscrowd=0, area=float(mask_utils.area(rle)))
        else:
            ann["score"] = float(scores[k])
        anns.append(ann)
    return anns


def pycocotools_ap(gts, preds, scores) -> tuple[float, float, float]:
    """AP, AP50, AP75 from pycocotools (area 'all', no detection limit in practice)."""
    images, gt_anns, dt_anns = [], [], []
    for image_id, (gt, pred, score) in enumerate(zip(gts, preds, scores, strict=True), start=1):
        images.append({"id": image_id, "height": gt.shape[0], "width": gt.shape[1]})
        gt_anns += _annotations(gt, image_id)
        dt_anns += _annotations(pred, image_id, score)
    for k, ann in enumerate(gt_anns, start=1):
        ann["id"] = k
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": [{"id": 1}]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_anns)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.params.maxDets = [1, 10, 100_000]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, 0, 0, -1]  # IoU x recall, area 'all', most dets
    return float(precision.mean()), float(precision[0].mean()), float(precision[5].mean())


@pytest.mark.parametrize("kind", ["merged", "split", "added"])
@pytest.mark.parametrize("score_kind", ["random", "ties", "equal"])
def test_ap_agrees_with_pycocotools(real_labels, perturb, kind, score_kind):
    gt = real_labels["nuclei-dsb/tests_mask2d.tif"]
    pred = perturb(gt, kind, seed=2)
    n_pred = len(np.unique(pred)) - 1
    rng = np.random.default_rng(5)
    scores = {
        "random": rng.random(n_pred),
        "ties": rng.integers(0, 3, n_pred) / 2,  # three score values, many ties
        "equal": np.ones(n_pred),
    }[score_kind]
    ours = evaluate(gt, pred, scores=None if score_kind == "equal" else scores)
    ap, ap50, ap75 = pycocotools_ap([gt], [pred], [scores])
    assert 0 < ap < 1
    assert ours.coco_ap == pytest.approx(ap, abs=1e-9)
    assert ours.coco_ap50 == pytest.approx(ap50, abs=1e-9)
    assert ours.coco_ap75 == pytest.approx(ap75, abs=1e-9)


def test_ap_of_a_stack_pools_frames_like_pycocotools(real_labels, perturb):
    gts = [
        real_labels["usiigaci-phc/set1/instances_ids.png"][:512, :512],
        real_labels["nuclei-dsb/mask2d.tif"],
    ]
    preds = [perturb(gts[0], "mixed", seed=1), perturb(gts[1], "shifted")]
    rng = np.random.default_rng(9)
    scores = [rng.integers(0, 4, len(np.unique(p)) - 1) / 3 for p in preds]
    # Scores as a dict id -> score for the second frame.
    as_dict = dict(zip(np.unique(preds[1])[1:].tolist(), scores[1], strict=True))
    ours = evaluate(np.stack(gts), np.stack(preds), scores=[scores[0], as_dict], stack=True)
    ap, ap50, ap75 = pycocotools_ap(gts, preds, scores)
    assert 0 < ap < 1
    assert (ours.coco_ap, ours.coco_ap50, ours.coco_ap75) == pytest.approx(
        (ap, ap50, ap75), abs=1e-9
    )


def test_ap_with_exactly_half_overlaps_uses_greedy_matching():
    # Two predictions each cover exactly half of a ground-truth object (IoU 0.5 each):
    # only the higher-scored one may match at IoU 0.5.
    gt = np.zeros((4, 8), np.uint8)
    gt[:, :4] = 1
    gt[:, 4:] = 2
    pred = np.zeros_like(gt)
    pred[:2, :4] = 1
    pred[2:, :4] = 2
    pred[:, 4:] = 3
    scores = np.array([0.2, 0.9, 0.5])
    ours = evaluate(gt, pred, scores=scores)
    ap, ap50, ap75 = pycocotools_ap([gt], [pred], [scores])
    assert (ours.coco_ap, ours.coco_ap50, ours.coco_ap75) == pytest.approx((ap, ap50, ap75))
    assert ours.coco.matched[0].tolist() == [False, True, True]


def test_scores_must_fit_the_objects(real_labels):
    gt = real_labels["nuclei-dsb/tests_mask2d.tif"]
    with pytest.raises(ValueError, match="one score per object"):
        evaluate(gt, gt, scores=[0.5, 0.7])
    with pytest.raises(ValueError, match="no score for predicted object"):
        evaluate(gt, gt, scores={1: 0.5})
    # A NaN score ranked its object last, unsaid: AP 0.5 where 1.0 was right.
    g = np.zeros((8, 8), int)
    g[:4, :4] = 1
    p = g.copy()
    p[4:, 4:] = 2
    with pytest.raises(ValueError, match=r"object\(s\) \[1\] is not a finite number"):
        evaluate(g, p, scores={1: float("nan"), 2: 0.5})
    with pytest.raises(ValueError, match=r"object\(s\) \[2\] is not a finite number"):
        evaluate(g, p, scores=[0.5, float("inf")])
    with pytest.raises(ValueError, match="0 or more, not -1"):
        evaluate(np.stack([g, g]), np.stack([p, p]), stack=-1)
