"""How unlike a model's training images other images are, by their intensities.

A model trained by ``cytomask train`` records what its training and validation images
look like (``models.unet.intensity_profile``); segmenting, the plugin says when an image
lies further than ``models.catalog.UNLIKE_TRAINING`` from the nearest of them
(``models.inference.unlikeness``). This prints that distance for images of the shared
data against two sets of training images: Usiigaci phase contrast (each image against
the other 39, as a model trained on them would see a new one) and the fluorescent
nuclei a model is fine-tuned on in ``bench_finetune.py`` (img2d and tests_img2d), so
the threshold can be checked against images of the same kind and of others; and, for
crops of 128 to 640 pixels of each Usiigaci image against the other 39, how far parts
of a field lie (the plugin judges frames of ``models.inference.JUDGED_PIXELS`` or more).
It also times the measure on a 1022 x 1024 image, which each U-Net run pays once per
frame looked at (four at most).

Usage (about 20 seconds on 2 CPU cores)::

    python benchmarks/bench_unlikeness.py
"""

from __future__ import annotations

import time

import numpy as np
import tifffile

from _common import DATA, cpu_model
from napari_cytomask.models.catalog import UNLIKE_TRAINING
from napari_cytomask.models.inference import JUDGED_PIXELS
from napari_cytomask.models.unet import UNetConfig, intensity_profile, profile_distance

PERCENTILES = UNetConfig().percentiles


def profile(image: np.ndarray) -> np.ndarray:
    return intensity_profile([image], PERCENTILES)


def nearest(image_profile, training) -> float:
    return min(profile_distance(image_profile, own) for own in training)


def others() -> dict[str, np.ndarray]:
    """Images of other kinds than the two training sets, and one of each kind."""
    nuclei = DATA / "nuclei-dsb"
    formats = DATA / "tiff-formats"
    hela = tifffile.imread(formats / "imagej-composites" / "hela-cells.tif")
    ixm = tifffile.imread(formats / "imagej-composites" / "IXMtest_A02_s9.tif")
    mm = formats / "ome-tiff-samples" / "singles" / "181003_slices"
    phase = tifffile.imread(DATA / "usiigaci-phc" / "set11" / "raw.tif").astype(np.float32)
    return {
        "fluorescent nuclei, another (dsb_test_image)": tifffile.imread(
            nuclei / "dsb_test_image.tif"
        ),
        "fluorescence (hela-cells, green)": hela[..., 1],
        "fluorescence (IXMtest_A02_s9, channel 1)": ixm[0],
        "fluorescence (Micro-Manager P1_T0)": tifffile.imread(mm / "P1_T0.tif"),
        "fluorescence (Micro-Manager P2_T5)": tifffile.imread(mm / "P2_T5.tif"),
        "DIC (dic_img)": tifffile.imread(nuclei / "dic_img.tif"),
        "phase contrast inverted (set11)": -phase,
        "phase contrast (set11, one of the 40)": phase,
    }


def main() -> None:
    print(f"{cpu_model()}; an image is said unlike above {UNLIKE_TRAINING}")
    phase = {
        f"set{i}": profile(tifffile.imread(DATA / "usiigaci-phc" / f"set{i}" / "raw.tif"))
        for i in range(1, 41)
    }
    own = [nearest(p, [q for other, q in phase.items() if other != name])
           for name, p in phase.items()]  # fmt: skip
    print(f"phase contrast, each of 40 against the other 39: median {np.median(own):.3f}, "
          f"largest {max(own):.3f}")  # fmt: skip
    rng = np.random.default_rng(0)
    for size in (128, 256, 384, 512, 640):
        parts = []
        for name in phase:
            image = tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif")
            others_of = [q for other, q in phase.items() if other != name]
            for _ in range(4):
                y, x = rng.integers(0, 1022 - size), rng.integers(0, 1024 - size)
                parts.append(nearest(profile(image[y : y + size, x : x + size]), others_of))
        judged = "judged" if size * size >= JUDGED_PIXELS else "not judged"
        said = sum(p > UNLIKE_TRAINING for p in parts)
        print(f"  160 crops of {size} x {size} ({judged}): median {np.median(parts):.3f}, "
              f"largest {max(parts):.3f}, {said} said unlike")  # fmt: skip
    nuclei = [profile(tifffile.imread(DATA / "nuclei-dsb" / f"{n}.tif"))
              for n in ("img2d", "tests_img2d")]  # fmt: skip
    print(f"the two nuclei images from each other: {profile_distance(*nuclei):.3f}")
    print(f"\n{'image':56s} {'to phase':>9s} {'to nuclei':>10s}")
    for name, image in others().items():
        p = profile(image)
        far = [nearest(p, list(phase.values())), nearest(p, nuclei)]
        said = ["unlike" if d > UNLIKE_TRAINING else "like" for d in far]
        print(f"{name:56s} {far[0]:6.3f} {said[0]:>6s} {far[1]:6.3f} {said[1]:>6s}")
    image = tifffile.imread(DATA / "usiigaci-phc" / "set11" / "raw.tif")
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        profile(image)
        runs.append(time.perf_counter() - start)
    print(f"\none 1022 x 1024 frame profiled in {1000 * min(runs):.0f} ms (best of 5)")


if __name__ == "__main__":
    main()
