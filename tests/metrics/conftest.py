"""Real label images and deterministic perturbations of them."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi


def _erode(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.where(ndi.grey_erosion(labels, size=5) == labels, labels, 0)


def _shift(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.roll(labels, (4, -3), axis=(0, 1))


def _merge(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give a third of the objects the id of their most touching neighbour."""
    out = labels.copy()
    boxes = ndi.find_objects(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    for i in rng.choice(ids, len(ids) // 3, replace=False):
        # Look a few pixels around the object only: whole-image passes are slow.
        box = tuple(slice(max(s.start - 6, 0), s.stop + 6) for s in boxes[i - 1])
        crop = labels[box]
        ring = crop[ndi.binary_dilation(crop == i, iterations=5) & (crop != i) & (crop > 0)]
        if ring.size:
            out[out == np.bincount(ring).argmax()] = i
    return out


def _split(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut a third of the objects in two (sometimes unevenly) along a row."""
    out = labels.copy()
    ids = np.unique(labels)
    ids = ids[ids > 0]
    top = int(labels.max())
    for k, i in enumerate(rng.choice(ids, len(ids) // 3, replace=False)):
        rows, cols = np.nonzero(labels == i)
        cut = np.quantile(rows, rng.uniform(0.3, 0.7))
        out[rows[rows > cut], cols[rows > cut]] = top + 1 + k
    return out


def _drop(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return np.where(np.isin(labels, rng.choice(ids, len(ids) // 4, replace=False)), 0, labels)


def _add(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint false objects (squares) over random places, partly over real objects."""
    out = labels.copy()
    top = int(labels.max())
    for k in range(15):
        y, x = rng.integers(0, np.array(labels.shape) - 20)
        out[y : y + rng.integers(6, 20), x : x + rng.integers(6, 20)] = top + 1 + k
    return out


def _mixed(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _add(_drop(_split(_merge(_shift(labels, rng), rng), rng), rng), rng)


PERTURBATIONS = {
    "eroded": _erode,
    "shifted": _shift,
    "merged": _merge,
    "split": _split,
    "dropped": _drop,
    "added": _add,
    "mixed": _mixed,
}

REAL_LABELS = (
    "usiigaci-phc/set1/instances_ids.png",
    "usiigaci-phc/set7/instances_ids.png",
    "nuclei-dsb/mask2d.tif",
    "nuclei-dsb/tests_mask2d.tif",
)


def read_labels(path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else iio.imread(path)


@pytest.fixture(scope="session")
def real_labels(shared_data):
    """The real label images of :data:`REAL_LABELS`, by name."""
    return {name: read_labels(shared_data / name) for name in REAL_LABELS}


@pytest.fixture(scope="session")
def perturb():
    """``perturb(labels, kind, seed)``: a deterministic wrong prediction."""

    def apply(labels: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
        return PERTURBATIONS[kind](labels, np.random.default_rng(seed))

    return apply
