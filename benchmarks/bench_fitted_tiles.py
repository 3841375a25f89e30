"""Segmenting with tiles fitted to the image against tiles of the model's own size.

The starter model's tiles are 512 pixels and overlap by at least 64: a 1022 x 1024
image took 3 tiles per side (starts 0, 255 and 510), 9 in all, each side seen three times
over. Segmenting now lets the model's tile grow by up to a quarter where fewer tiles then
cover the image (``tiling.fitted_tile``): 2 tiles of 544 per side, 4 in all. This
segments the starter model's 4 test images (never seen in training) with the defaults
(the baseline: ``tile_size=512``, the model's tile as before), with and without flip TTA,
and prints per image the seconds, F1 at IoU 0.5 and mSA against the hand-drawn cells.

Usage (about 1.5 minutes on 2 CPU cores)::

    python benchmarks/bench_fitted_tiles.py [--threads 2]
"""

from __future__ import annotations

import time

import numpy as np
import tifffile
from skimage.io import imread

from _common import DATA, cpu_model, starter_on_cpu
from napari_cytomask.metrics import evaluate
from napari_cytomask.metrics.core import DEFAULT_THRESHOLDS
from napari_cytomask.models.inference import segment
from napari_cytomask.pipeline import UNetStep

TEST_IMAGES = ("set11", "set12", "set30", "set40")
AT_50 = DEFAULT_THRESHOLDS.index(0.5)


def main() -> None:
    predictor, threads = starter_on_cpu(__doc__)
    print(f"starter model on {cpu_model()}, {threads} threads; per image: s, F1@0.5 / mSA")
    images = [
        (
            tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif"),
            imread(DATA / "usiigaci-phc" / name / "instances_ids.png"),
        )
        for name in TEST_IMAGES
    ]
    segment(predictor, images[0][0][:256, :256])  # the first call's set-up is not timed
    for tta in (True, False):
        for label, tile in (("fitted (default)", None), ("model's 512", 512)):
            kwargs = UNetStep(tta=tta, tile_size=tile).segment_kwargs(predictor)
            seconds, cells, row = [], [], []
            for name, (image, truth) in zip(TEST_IMAGES, images, strict=True):
                start = time.perf_counter()
                found = segment(predictor, image, **kwargs).labels
                seconds.append(time.perf_counter() - start)
                score = evaluate(truth, found)
                cells.append(score.mean_segmentation_accuracy)
                row.append(f"{name} {seconds[-1]:.1f} s {score.matches.f1[AT_50]:.3f} / "
                           f"{cells[-1]:.3f}")  # fmt: skip
            print(
                f"{'TTA' if tta else 'no TTA':6s} {label:16s} mean {np.mean(seconds):.1f} s, "
                f"mSA {np.mean(cells):.3f} | " + " | ".join(row)
            )


if __name__ == "__main__":
    main()
