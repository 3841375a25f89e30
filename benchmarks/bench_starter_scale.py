"""How the starter model does on the same cells at other pixel sizes, with and without
resampling them to its own.

The starter model learnt Usiigaci phase contrast at 0.87 µm per pixel
(``models.catalog.STARTER_PIXEL_SIZE_UM``). This resamples a 512 x 512 field of two
test images (never seen in training) by 0.5 to 2 (the ground truth with nearest
neighbours), and segments each with the starter model's tuned settings (no TTA) twice:
as the image is (the baseline, ``--no-resample``), and as the dock and ``cytomask
segment`` do by default for an image whose pixel size is known, resampled to the
model's pixel size for the network (``models.catalog.model_zoom``), the cells kept at the
image's pixels. Both are scored against the resampled ground truth. The model card's
figures come from here.

Usage (about 3 minutes on 2 CPU cores)::

    python benchmarks/bench_starter_scale.py
"""

from __future__ import annotations

import time

import numpy as np
import tifffile
from skimage.io import imread
from skimage.transform import rescale

from _common import DATA, cpu_model, starter_on_cpu
from napari_cytomask.metrics import evaluate
from napari_cytomask.metrics.core import DEFAULT_THRESHOLDS
from napari_cytomask.models.catalog import STARTER_PIXEL_SIZE_UM
from napari_cytomask.models.inference import segment
from napari_cytomask.pipeline import UNetStep

#: Test images of the starter model's split.
IMAGES = ("set11", "set12")
SCALES = (0.5, 0.68, 0.75, 1.0, 1.34, 1.5, 2.0)
AT_50 = DEFAULT_THRESHOLDS.index(0.5)


def main() -> None:
    predictor, threads = starter_on_cpu(__doc__)
    print(f"starter model on {cpu_model()}, {threads} threads, no TTA")
    print(f"{'image':8s} {'scale':>6s} {'µm/px':>6s} | as it is: {'F1@0.5':>7s} {'mSA':>6s} "
          f"{'s':>5s} | resampled (default): {'F1@0.5':>7s} {'mSA':>6s} {'s':>5s}")  # fmt: skip
    for name in IMAGES:
        image = tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif")[:512, :512]
        truth = imread(DATA / "usiigaci-phc" / name / "instances_ids.png")[:512, :512]
        for scale in SCALES:
            seen = rescale(image.astype(np.float32), scale, order=1, preserve_range=True)
            cells = rescale(truth, scale, order=0, preserve_range=True, anti_aliasing=False)
            cells = cells.astype(np.int32)
            size = STARTER_PIXEL_SIZE_UM / scale
            row = f"{name:8s} {scale:6.2f} {size:6.3f}"
            for resample in (False, True):
                kwargs = UNetStep(tta=False, resample=resample).segment_kwargs(
                    predictor, (size, size)
                )
                start = time.perf_counter()
                found = segment(predictor, seen, **kwargs).labels
                seconds = time.perf_counter() - start
                score = evaluate(cells, found)
                label = "resampled (default):" if resample else "as it is:"
                row += (f" | {label} {score.matches.f1[AT_50]:7.3f} "
                        f"{score.mean_segmentation_accuracy:6.3f} {seconds:5.1f}")  # fmt: skip
            print(row, flush=True)


if __name__ == "__main__":
    main()
