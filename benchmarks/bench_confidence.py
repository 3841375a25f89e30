"""How sure the starter model is of its cells on images like and unlike its own.

The plugin warns when the starter model is unsure of the cells it found
(``models.catalog.STARTER_CONFIDENCE``): it has only seen phase contrast, and on
other images it can outline texture as cells. This prints the measure it uses
(``models.inference.confidence``) on Usiigaci phase contrast (the test and
validation images of its split, and two training images) and on the images of
other kinds in the shared data that give it cells (DIC; on fluorescence it finds
none, which the dock already explains), and on copies of two Usiigaci images at half
and twice their size (cells of another size than it learnt, where it finds few of them
unless the pixel size is given), with and without flip TTA, so the floors can be
checked against them.

Usage (about 4 minutes on 2 CPU cores)::

    python benchmarks/bench_confidence.py
"""

from __future__ import annotations

import numpy as np
import tifffile
from skimage.transform import rescale

from _common import DATA, cpu_model, starter_on_cpu
from napari_cytomask.models.catalog import STARTER_CONFIDENCE, STARTER_CONFIDENCE_NO_TTA
from napari_cytomask.models.inference import postprocess_arguments, segment

#: Usiigaci images: the starter's test split, its validation split, two training images.
PHASE = ("set11", "set12", "set30", "set40", "set13", "set2", "set31", "set34", "set5", "set20")


def images() -> dict[str, np.ndarray]:
    """The images, by a name that says what they are."""
    out = {
        f"phase contrast {name}": tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif")
        for name in PHASE
    }
    out["DIC (nuclei-dsb dic_img)"] = tifffile.imread(DATA / "nuclei-dsb" / "dic_img.tif")
    hela = tifffile.imread(DATA / "tiff-formats" / "imagej-composites" / "hela-cells.tif")
    out["fluorescence (hela-cells, green)"] = hela[..., 1]
    for name in ("set1", "set30"):
        raw = tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif").astype(np.float32)
        for factor in (0.5, 2):
            copy = rescale(raw, factor, anti_aliasing=factor < 1, preserve_range=True)
            out[f"phase contrast {name} at {factor:g}x its size"] = copy
    return out


def main() -> None:
    predictor, threads = starter_on_cpu(__doc__)
    print(f"starter model on {cpu_model()}, {threads} threads; warning below "
          f"{STARTER_CONFIDENCE} with TTA, {STARTER_CONFIDENCE_NO_TTA} without")  # fmt: skip
    print(f"{'image':36s} {'TTA':>6s} {'no TTA':>7s} {'cells':>6s}")
    for name, image in images().items():
        scores = []
        for tta in (True, False):
            settings = postprocess_arguments(predictor.config.targets, **predictor.settings)
            result = segment(predictor, image.astype(np.float32), tta=tta, **settings)
            scores.append(result.confidence)
        cells = int(result.labels.max())

        def shown(value):
            return "  none" if value is None else f"{value:6.3f}"

        print(f"{name:36s} {shown(scores[0])} {shown(scores[1]):>7s} {cells:6d}", flush=True)


if __name__ == "__main__":
    main()
