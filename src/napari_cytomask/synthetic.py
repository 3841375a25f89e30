"""A deterministic synthetic brightfield tile scan, so every widget can be tried without a file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.segmentation import find_boundaries


@dataclass
class SyntheticScan:
    """A tile scan with known cells.

    Attributes
    ----------
    brightfield
        ``(tiles, y, x)`` uint16 transmitted-light image: dark cells with bright
        halos on an unevenly lit, noisy background.
    fluorescence
        ``(tiles, y, x)`` uint16 cytoplasmic stain, brighter in some cells than others.
    labels
        ``(tiles, y, x)`` uint16 ground-truth instance ids, unique within a tile.
    pixel_size_um
        Physical pixel size (µm).
    """

    brightfield: np.ndarray
    fluorescence: np.ndarray
    labels: np.ndarray
    pixel_size_um: float = 0.65


def make_tilescan(
    n_tiles: int = 3,
    shape: tuple[int, int] = (384, 384),
    cell_radius: float = 18.0,
    seed: int = 0,
) -> SyntheticScan:
    """Make a tile scan of touching, irregular cells with a known ground truth.

    Parameters
    ----------
    n_tiles
        Number of fields of view.
    shape
        Size of each tile in pixels.
    cell_radius
        Typical cell radius in pixels; cells are packed closer than twice this,
        so many of them touch.
    seed
        Seed of the random generator; the same seed gives the same scan.

    Returns
    -------
    SyntheticScan
    """
    rng = np.random.default_rng(seed)
    tiles = [_tile(rng, shape, cell_radius) for _ in range(n_tiles)]
    labels, brightfield, fluorescence = (np.stack(t) for t in zip(*tiles, strict=True))
    return SyntheticScan(brightfield=brightfield, fluorescence=fluorescence, labels=labels)


def _tile(rng, shape, radius):
    count = int(0.16 * np.prod(shape) / radius**2)
    centres = _scatter(rng, shape, min_distance=1.5 * radius, count=count)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    pixels = np.column_stack([yy.ravel(), xx.ravel()])
    distance, nearest = cKDTree(centres).query(pixels)
    # Each cell is its Voronoi region cut at an irregular, lobed radius: neighbours touch
    # along shared borders, isolated cells end in round-ish outlines.
    dy, dx = (pixels - centres[nearest]).T
    angle = np.arctan2(dy, dx)
    size = rng.uniform(0.8, 1.3, len(centres))[nearest]
    phase = rng.uniform(0, 2 * np.pi, len(centres))[nearest]
    lobes = rng.integers(2, 5, len(centres))[nearest]
    reach = radius * size * (1 + 0.2 * np.cos(lobes * angle + phase))
    inside = distance < reach
    labels = np.where(inside, nearest + 1, 0).reshape(shape)
    labels = _keep_largest_parts(labels)

    cells = labels > 0
    edges = find_boundaries(labels, mode="inner")
    illumination = (
        1
        + 0.15
        * np.sin(np.linspace(0, np.pi, shape[1]))[None, :]
        * np.linspace(0.8, 1.2, shape[0])[:, None]
    )
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), 2)
    brightfield = 2000.0 * illumination
    brightfield -= 350 * cells * (1 + 0.3 * texture)
    brightfield += 900 * ndi.gaussian_filter(edges.astype(float), 1.2)
    brightfield += rng.normal(0, 60, shape)

    brightness = np.concatenate([[0.0], rng.uniform(300, 1500, labels.max())])
    fluorescence = ndi.gaussian_filter(brightness[labels], 1.5) + 100 + rng.normal(0, 25, shape)

    def to_uint16(image):
        return np.clip(image, 0, 65535).astype(np.uint16)

    return labels.astype(np.uint16), to_uint16(brightfield), to_uint16(fluorescence)


def _scatter(rng, shape, min_distance, count):
    """Random centres at least ``min_distance`` apart (dart throwing)."""
    margin = min_distance / 3
    low, high = (margin, margin), (shape[0] - margin, shape[1] - margin)
    candidates = rng.uniform(low, high, (count * 30, 2))
    points = np.empty((count, 2))
    n = 0
    for candidate in candidates:
        if n == 0 or np.min(np.sum((points[:n] - candidate) ** 2, axis=1)) >= min_distance**2:
            points[n] = candidate
            n += 1
            if n == count:
                break
    return points[:n]


def _keep_largest_parts(labels: np.ndarray) -> np.ndarray:
    """Drop the small disconnected bits a lobed outline can leave, and number cells 1…n."""
    out = np.zeros_like(labels)
    next_id = 1
    for index, region in enumerate(ndi.find_objects(labels), start=1):
        if region is None:
            continue
        parts, n = ndi.label(labels[region] == index)
        if n == 0:
            continue
        largest = np.argmax(np.bincount(parts.ravel())[1:]) + 1
        out[region][parts == largest] = next_id
        next_id += 1
    return out
