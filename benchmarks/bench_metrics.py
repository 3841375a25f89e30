"""Time the full metric set against ``stardist.matching.matching`` on 2048 x 2048 labels.

A Voronoi layout of touching cells (like confluent cytoplasm masks) is the
ground truth; the prediction shifts it, erodes some cells, merges and splits
neighbours, drops cells and adds false ones. Both sides compute every IoU
threshold 0.10:0.05:0.95 on the same pair; ours also computes the pixel
metrics, the per-object tables, the mean-average F1 and COCO AP.

Run: ``python benchmarks/bench_metrics.py [--size 2048] [--objects 2500]``
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from stardist.matching import matching

from _common import best_of, cpu_model
from napari_cytomask.metrics import DEFAULT_THRESHOLDS, MatchStats, evaluate


def voronoi_labels(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Touching cells: each pixel takes the id of its nearest seed, borders 1 px wide."""
    seeds = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[:size, :size]
    _, nearest = cKDTree(seeds).query(np.c_[yy.ravel(), xx.ravel()])
    labels = (nearest + 1).reshape(size, size).astype(np.uint32)
    border = ndi.grey_dilation(labels, size=3) != ndi.grey_erosion(labels, size=3)
    labels[border] = 0
    return labels


def perturb(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction: shifted, partly eroded, some merged, split, dropped, added."""
    pred = np.roll(gt, (2, 1), axis=(0, 1))
    ids = np.unique(pred)[1:]
    eroded = np.where(ndi.grey_erosion(pred, size=5) == pred, pred, 0)
    erode = np.isin(pred, rng.choice(ids, len(ids) // 3, replace=False))
    pred = np.where(erode, eroded, pred)
    # Merge: give a cell the id of the cell just right of it.
    right = np.roll(pred, -12, axis=1)
    for i in rng.choice(ids, len(ids) // 20, replace=False):
        mask = pred == i
        partner = np.bincount(right[mask]).argmax() if mask.any() else 0
        if partner:
            pred[pred == partner] = i
    # Split: cut cells in two halves along their mean row.
    top = pred.max()
    for k, i in enumerate(rng.choice(ids, len(ids) // 20, replace=False)):
        rows, cols = np.nonzero(pred == i)
        if len(rows):
            lower = rows > rows.mean()
            pred[rows[lower], cols[lower]] = top + 1 + k
    pred[np.isin(pred, rng.choice(ids, len(ids) // 20, replace=False))] = 0
    # False objects: discs in random places.
    yy, xx = np.mgrid[: gt.shape[0], : gt.shape[1]]
    top = pred.max()
    for k, (y, x) in enumerate(rng.uniform(0, gt.shape[0], (len(ids) // 20, 2))):
        window = (slice(max(int(y) - 8, 0), int(y) + 9), slice(max(int(x) - 8, 0), int(x) + 9))
        disc = (yy[window] - y) ** 2 + (xx[window] - x) ** 2 < 49
        pred[window][disc] = top + 1 + k
    return pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--objects", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    gt = voronoi_labels(args.size, args.objects, rng)
    pred = perturb(gt, rng)
    thresholds = list(DEFAULT_THRESHOLDS)
    n_true, n_pred = len(np.unique(gt)) - 1, len(np.unique(pred)) - 1

    # Warm-up: stardist compiles its overlap kernel with numba on the first call.
    reference = matching(gt, pred, thresh=thresholds)
    ours = evaluate(gt, pred, thresholds)
    worst = max(
        abs(float(getattr(ref, name)) - ours.matches.row(i)[name])
        for i, ref in enumerate(reference)
        for name in MatchStats.FIELDS
    )

    t_ours, _ = best_of(lambda: evaluate(gt, pred, thresholds), args.repeats)
    t_ref, _ = best_of(lambda: matching(gt, pred, thresh=thresholds), max(1, args.repeats // 2))

    print(f"machine: {cpu_model()} ({platform.python_version()}, numpy {np.__version__})")
    print(f"labels: {args.size}x{args.size}, {n_true} ground-truth and {n_pred} predicted objects")
    print(f"thresholds: {len(thresholds)} ({thresholds[0]:.2f}..{thresholds[-1]:.2f})")
    print(
        f"napari_cytomask.metrics.evaluate (full set): {t_ours * 1e3:8.1f} ms (best of "
        f"{args.repeats})"
    )
    print(f"stardist.matching.matching (same thresholds): {t_ref * 1e3:8.1f} ms")
    print(f"speed-up: {t_ref / t_ours:.1f}x; largest difference in any stardist field: {worst:.2e}")
    print(
        f"F1@0.5 = {ours.matches.f1[thresholds.index(0.5)]:.4f}, "
        f"mAF1 = {ours.mean_average_f1:.4f}, COCO AP = {ours.coco_ap:.4f}"
    )


if __name__ == "__main__":
    main()
