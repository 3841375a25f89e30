"""Does the split step help after the U-Net? Measured on the sample scan's four images.

The dock hands the U-Net's cells to step 3 (*Separate touching cells*), whose
split mode cuts objects along distance-transform ridges (h-maxima markers). The
U-Net's own interior/boundary watershed has already parted touching cells, so
this compares, against the hand-drawn masks of the starter model's test images
(set11, 12, 30, 40), F1 at IoU 0.5 of:

- the starter model's cells (segmented with the defaults) alone, and after the
  split step at several ``h``
  (the default is the split step's own);
- touching hand-drawn cells merged into one object (connected components of the
  foreground), alone and after the same splits: the case the step is for.

Usage::

    python benchmarks/bench_split_after_unet.py
"""

from __future__ import annotations

import argparse
import inspect
import sys

import imageio.v3 as iio
import numpy as np
import tifffile
from skimage.measure import label

from _common import DATA, cpu_model
from napari_cytomask.metrics import evaluate
from napari_cytomask.models.catalog import starter_path
from napari_cytomask.models.inference import UNetPredictor, segment
from napari_cytomask.pipeline import UNetStep
from napari_cytomask.postprocess.watershed import split_labels

TEST_SETS = ("set11", "set12", "set30", "set40")
H_VALUES = (5.0, 10.0, 20.0, 40.0)


def f1_50(pairs) -> tuple[float, int]:
    """F1 at IoU 0.5 over all images, and the number of predicted objects."""
    total = None
    for truth, pred in pairs:
        result = evaluate(truth, pred, [0.5])
        total = result if total is None else total + result
    return float(total.matches.f1[0]), int(total.matches.n_pred)


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    default_h = inspect.signature(split_labels).parameters["h"].default
    print(f"machine: {cpu_model()}")
    predictor = UNetPredictor.from_checkpoint(starter_path(), "cpu")
    # As the dock and the command line segment by default (TTA, tuned thresholds).
    settings = UNetStep().segment_kwargs(predictor)
    unet, merged = [], []
    for name in TEST_SETS:
        image = tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif")
        truth = iio.imread(DATA / "usiigaci-phc" / name / "instances_ids.png")
        unet.append((truth, segment(predictor, image, **settings).labels))
        merged.append((truth, label(truth > 0, connectivity=1)))
    n_true = sum(len(np.unique(t)) - 1 for t, _ in unet)
    print(f"images: {', '.join(TEST_SETS)} ({n_true} hand-drawn cells)")
    for what, pairs in (("starter U-Net cells", unet), ("merged hand-drawn cells", merged)):
        score, count = f1_50(pairs)
        print(f"{what}: F1@0.5 {score:.3f} ({count} objects) without splitting")
        for h in H_VALUES:
            split = [(t, split_labels(p, h=h)) for t, p in pairs]
            score_h, count_h = f1_50(split)
            mark = " (the split step's default)" if h == default_h else ""
            print(f"  split, h {h:g}{mark}: F1@0.5 {score_h:.3f} ({count_h} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
