"""How the starter model does on the same cells at other pixel sizes.

The starter model learnt Usiigaci phase contrast at 0.87 µm per pixel
(``models.catalog.STARTER_PIXEL_SIZE_UM``); the dock and ``cytomask segment`` point out
images whose cells look larger or smaller than ``STARTER_SCALE_RANGE`` allows. This
resamples a 512 x 512 field of two test images (never seen in training) by 0.5 to 2
(the ground truth with nearest neighbours), segments each with the starter
model's tuned settings (no TTA), and scores it against the resampled ground truth; then
segments each resampled image again after resampling it back to the model's pixel size,
which is what the note tells a user to do. The model card's figures come from here.

Usage (about 5 minutes on 2 CPU cores)::

    python benchmarks/bench_starter_scale.py
"""

from __future__ import annotations

import numpy as np
import tifffile
from skimage.io import imread
from skimage.transform import rescale, resize

from _common import DATA, cpu_model, starter_on_cpu
from napari_cytomask.metrics import evaluate
from napari_cytomask.metrics.core import DEFAULT_THRESHOLDS
from napari_cytomask.models.catalog import STARTER_PIXEL_SIZE_UM
from napari_cytomask.models.inference import segment

#: Test images of the starter model's split.
IMAGES = ("set11", "set12")
SCALES = (0.5, 0.68, 0.75, 1.0, 1.34, 1.5, 2.0)
AT_50 = DEFAULT_THRESHOLDS.index(0.5)


def main() -> None:
    predictor, threads = starter_on_cpu(__doc__)
    print(f"starter model on {cpu_model()}, {threads} threads, no TTA")
    print(f"{'image':8s} {'scale':>6s} {'µm/px':>6s} {'F1@0.5':>7s} {'mSA':>6s}"
          f" {'F1@0.5 resampled to the model':>30s}")  # fmt: skip
    for name in IMAGES:
        image = tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif")[:512, :512]
        truth = imread(DATA / "usiigaci-phc" / name / "instances_ids.png")[:512, :512]
        for scale in SCALES:
            seen = rescale(image.astype(np.float32), scale, order=1, preserve_range=True)
            cells = rescale(truth, scale, order=0, preserve_range=True, anti_aliasing=False)
            found = segment(predictor, seen).labels
            score = evaluate(cells.astype(np.int32), found)
            back = ""
            if scale != 1.0:
                # What the note asks for: the image at the model's pixel size, its cells
                # brought back to the image's pixels.
                at_model = rescale(seen, 1 / scale, order=1, preserve_range=True)
                labels = segment(predictor, at_model).labels
                labels = resize(labels, seen.shape, order=0, preserve_range=True,
                                anti_aliasing=False).astype(np.int32)  # fmt: skip
                back = f"{evaluate(cells.astype(np.int32), labels).matches.f1[AT_50]:.3f}"
            size = STARTER_PIXEL_SIZE_UM / scale
            print(f"{name:8s} {scale:6.2f} {size:6.3f} {score.matches.f1[AT_50]:7.3f} "
                  f"{score.mean_segmentation_accuracy:6.3f} {back:>30s}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
