"""Cells cut by the seams of a tile scan whose tiles meet without overlapping.

A microscope told to scan without overlap images a cell on a tile border half in one
tile and half in the next; each tile segmented on its own (by Cellpose, say, or this
plugin) numbers its half as a cell of its own. Opened as a mosaic, the two halves
were two cells. The mosaic now joins two cells that face each other across a seam
along at least half of the seam either touches (``io.mosaic.SEAM_SHARE``).

Each Usiigaci image (1022 x 1024) is cut into 2 x 2 tiles of 511 x 512 that meet
without overlap, written as an OME-TIFF with stage positions, a phase channel and a
mask channel, each tile's cells numbered from 1, and opened as a mosaic through the
plugin's reader (``read_tiff(path, mosaic=True)``):

1. the hand-drawn masks cut into the tiles, on all 40 images: how many cells the seams
   cut, how many of those are whole again in the mosaic, and how many distinct cells
   were joined by mistake, for three settings: no joins at seams (before), the default
   share of 0.5, and any facing pair (share 0);
2. the starter model run on each tile with the dock's default settings, on the 4
   images of its test split: F1 at IoU 0.5, mSA and the cell count against the
   hand-drawn masks, without and with joins at seams, and the whole image segmented
   at once (no seams) beside them;
3. what finding the cells seen twice or cut costs: the first read of a mosaic of 20 x 20
   tiles of 500 x 500 meeting without overlap (crops of the hand-drawn masks), against
   a later read, which knows them.

Usage (about 2 minutes on 2 CPU cores)::

    python benchmarks/bench_mosaic_seams.py
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import tifffile
from skimage.io import imread
from skimage.segmentation import relabel_sequential

from _common import DATA, cpu_model, starter_on_cpu
from napari_cytomask.io import mosaic
from napari_cytomask.io.tiff import read_tiff
from napari_cytomask.metrics import evaluate
from napari_cytomask.metrics.core import DEFAULT_THRESHOLDS
from napari_cytomask.models.inference import segment
from napari_cytomask.pipeline import UNetStep

#: The starter model's test images (never seen in its training).
TEST_IMAGES = ("set11", "set12", "set30", "set40")
#: Share settings compared: no joins at seams (as before), the default, any facing pair.
SHARES = (("no joins at seams", math.inf), ("share 0.5 (default)", 0.5), ("share 0", 0.0))
PIXEL_UM = 0.87
AT_50 = DEFAULT_THRESHOLDS.index(0.5)


def tiles_of(image: np.ndarray) -> list[tuple[int, int, slice, slice]]:
    """2 x 2 tiles meeting without overlap: ``(row, column, rows, columns)``; the image
    is cropped to an even size."""
    h, w = (n // 2 for n in image.shape)
    return [(r, c, slice(r, r + h), slice(c, c + w)) for r in (0, h) for c in (0, w)]


def write_scan(path: Path, image: np.ndarray, masks: list[np.ndarray]) -> None:
    """One OME image per tile, phase and mask, at its stage position."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        for (r, c, rows, cols), mask in zip(tiles_of(image), masks, strict=True):
            tif.write(
                np.stack([image[rows, cols], mask.astype(np.uint16)]),
                metadata={
                    "axes": "CYX",
                    "PhysicalSizeX": PIXEL_UM,
                    "PhysicalSizeY": PIXEL_UM,
                    "Channel": {"Name": ["Phase", "Mask"]},
                    "Plane": {"PositionX": [c * PIXEL_UM] * 2, "PositionY": [r * PIXEL_UM] * 2},
                },
            )


def stitched_mask(path: Path, share: float) -> np.ndarray:
    mosaic.SEAM_SHARE = share
    _, (mask, _, kind) = read_tiff(path, mosaic=True)
    assert kind == "labels"
    return np.asarray(mask.compute())


def seam_counts(truth: np.ndarray, found: np.ndarray, image: np.ndarray) -> tuple[int, int, int]:
    """Cells of ``truth`` cut by a seam, those of them one id in ``found`` that holds no
    other cell, and ids of ``found`` that hold pixels of more than one cell of ``truth``."""
    tiles_holding = Counter()
    for _, _, rows, cols in tiles_of(image):
        tiles_holding.update(np.unique(truth[rows, cols]).tolist())
    cut = [cell for cell, n in tiles_holding.items() if cell and n > 1]
    both = (truth > 0) & (found > 0)
    pairs = np.unique(np.stack([truth[both], found[both]]), axis=1).T
    ids_of_cell: dict[int, set] = {}
    cells_of_id: dict[int, set] = {}
    for cell, label in pairs.tolist():
        ids_of_cell.setdefault(cell, set()).add(label)
        cells_of_id.setdefault(label, set()).add(cell)
    whole = sum(
        1
        for cell in cut
        if len(ids_of_cell.get(cell, ())) == 1
        and cells_of_id[next(iter(ids_of_cell[cell]))] == {cell}
    )
    joined_wrongly = sum(1 for cells in cells_of_id.values() if len(cells) > 1)
    return len(cut), whole, joined_wrongly


def hand_drawn(folder: Path) -> None:
    print("1. hand-drawn masks cut into 2 x 2 tiles meeting without overlap (40 images)")
    totals = {name: np.zeros(3, int) for name, _ in SHARES}
    sets = sorted((DATA / "usiigaci-phc").glob("set*"), key=lambda p: int(p.name[3:]))
    start = time.perf_counter()
    for n, sample in enumerate(sets):
        image = tifffile.imread(sample / "raw.tif")
        truth = imread(sample / "instances_ids.png").astype(np.int32)
        h, w = (2 * (s // 2) for s in image.shape)
        image, truth = image[:h, :w], truth[:h, :w]
        masks = [relabel_sequential(truth[rows, cols])[0] for _, _, rows, cols in tiles_of(image)]
        path = folder / f"hand-{n}.ome.tif"
        write_scan(path, image, masks)
        for name, share in SHARES:
            totals[name] += seam_counts(truth, stitched_mask(path, share), image)
    print(f"   {'setting':22s} {'cut':>5s} {'whole again':>12s} {'joined wrongly':>15s}")
    for name, (cut, whole, wrong) in totals.items():
        print(f"   {name:22s} {cut:5d} {whole:12d} {wrong:15d}")
    print(f"   ({time.perf_counter() - start:.0f} s)")


def starter_on_tiles(folder: Path) -> None:
    predictor, threads = starter_on_cpu(__doc__)
    kwargs = UNetStep().segment_kwargs(predictor, (PIXEL_UM, PIXEL_UM))
    print(
        f"2. the starter model on each tile (the dock's defaults, {threads} threads), "
        "the 4 test images"
    )
    rows = {name: [] for name in ("whole image (no seams)", *(n for n, _ in SHARES))}
    start = time.perf_counter()
    for name in TEST_IMAGES:
        image = tifffile.imread(DATA / "usiigaci-phc" / name / "raw.tif")
        truth = imread(DATA / "usiigaci-phc" / name / "instances_ids.png").astype(np.int32)
        h, w = (2 * (s // 2) for s in image.shape)
        image, truth = image[:h, :w], truth[:h, :w]
        masks = [segment(predictor, image[r, c], **kwargs).labels for _, _, r, c in tiles_of(image)]
        path = folder / f"{name}.ome.tif"
        write_scan(path, image, masks)
        rows["whole image (no seams)"].append((truth, segment(predictor, image, **kwargs).labels))
        for setting, share in SHARES:
            rows[setting].append((truth, stitched_mask(path, share)))
    print(f"   {'':24s} {'F1@0.5':>7s} {'mSA':>6s} {'cells':>6s} (hand-drawn: ", end="")
    print(f"{sum(len(np.unique(t)) - 1 for t, _ in rows['whole image (no seams)'])})")
    for setting, pairs in rows.items():
        scores = [evaluate(t, f) for t, f in pairs]
        total = scores[0]
        for s in scores[1:]:
            total = total + s
        msa = np.mean([s.mean_segmentation_accuracy for s in scores])
        cells = sum(len(np.unique(f)) - 1 for _, f in pairs)
        print(f"   {setting:24s} {total.matches.f1[AT_50]:7.3f} {msa:6.3f} {cells:6d}")
    print(f"   ({time.perf_counter() - start:.0f} s)")


def first_read(folder: Path, grid: int = 20, size: int = 500) -> None:
    print(f"3. reading a mosaic of {grid} x {grid} tiles of {size} x {size} without overlap")
    masks = [imread(p / "instances_ids.png") for p in sorted((DATA / "usiigaci-phc").glob("set*"))]
    rng = np.random.default_rng(0)
    path = folder / "grid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for n in range(grid * grid):
            (r, c), (y, x) = divmod(n, grid), rng.integers(0, 500, 2)
            mask = relabel_sequential(masks[n % len(masks)][y : y + size, x : x + size])[0]
            tif.write(
                np.stack([np.full_like(mask, 100), mask]).astype(np.uint16),
                tile=(256, 256),
                compression="zlib",
                metadata={
                    "axes": "CYX",
                    "PhysicalSizeX": PIXEL_UM,
                    "PhysicalSizeY": PIXEL_UM,
                    "Channel": {"Name": ["Phase", "Mask"]},
                    "Plane": {
                        "PositionX": [c * size * PIXEL_UM] * 2,
                        "PositionY": [r * size * PIXEL_UM] * 2,
                    },
                },
            )
    mosaic.SEAM_SHARE = 0.5
    _, (mask, _, _) = read_tiff(path, mosaic=True)
    for name in ("first read", "later read"):
        start = time.perf_counter()
        cells = len(np.unique(mask.compute())) - 1
        print(f"   {name}: {time.perf_counter() - start:.1f} s ({cells} cells)")


def main() -> None:
    print(f"cells cut by tile seams, on {cpu_model()}")
    with tempfile.TemporaryDirectory() as folder:
        hand_drawn(Path(folder))
        starter_on_tiles(Path(folder))
        first_read(Path(folder))


if __name__ == "__main__":
    main()
