"""Time the per-object table of an export against regionprops measuring one object at a time.

``object_rows`` measures every object of a frame at once from sums over its pixels; the
baseline, ``regionprops_per_object``, is how it measured before: regionprops' centroid,
box, eccentricity and area of each object in turn, and the mean of each image over its
pixels. Both measure the same columns of:

- ``--cells`` one-pixel cells (90,000: every other pixel of a 600 x 600 image), with
  0.87 µm pixels;
- the mask channel of the bundled sample (four positions of 1022 x 1024 pixels, opened
  with ``open_scan``), with its pixel size and its phase-contrast channel measured in
  each cell.

Run: ``python benchmarks/bench_export_tables.py [--cells 90000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from skimage.measure import regionprops

from _common import best_of, cpu_model
from napari_cytomask.io.export import LabelsExport, object_rows
from napari_cytomask.io.files import open_scan
from napari_cytomask.io.layers import pixel_size_um

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "napari_cytomask"
    / "resources"
    / "usiigaci-sample.ome.tif"
)


def regionprops_per_object(export: LabelsExport) -> list[dict[str, object]]:
    """The baseline: the same measured columns, from regionprops, one object at a time."""
    pixel = pixel_size_um(export.scale, export.units)
    labels = np.asarray(export.labels)
    frames = labels.reshape(-1, *labels.shape[-2:])
    planes = {name: np.reshape(image, frames.shape) for name, image in export.intensities.items()}
    rows = []
    for index, frame in enumerate(frames):
        for region in regionprops(frame, spacing=pixel):
            pixels = region.coords
            centroid_y, centroid_x = map(float, pixels.mean(axis=0))
            row = {"label": int(region.label), "area": int(region.num_pixels),
                   "centroid_y": centroid_y, "centroid_x": centroid_x,
                   **dict(zip(("bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"),
                              region.bbox, strict=True)),
                   "eccentricity": float(region.eccentricity)}  # fmt: skip
            if pixel is not None:
                row["area_um2"] = float(region.area)
                row["centroid_y_um"], row["centroid_x_um"] = map(float, region.centroid)
            for name, plane in planes.items():
                row[f"mean_{name}"] = float(plane[index][tuple(pixels.T)].mean())
            rows.append(row)
    return rows


def largest_difference(ours: list[dict], baseline: list[dict]) -> float:
    """The largest difference between the two tables in any column the baseline measures."""
    assert len(ours) == len(baseline), "the tables have different numbers of rows"
    return max(
        (abs(row[key] - value) for row, base in zip(ours, baseline, strict=True)
         for key, value in base.items()),
        default=0.0,
    )  # fmt: skip


def compare(name: str, export: LabelsExport, repeats: int) -> None:
    started = time.perf_counter()
    baseline = regionprops_per_object(export)
    t_base = time.perf_counter() - started
    t_ours, ours = best_of(lambda: object_rows(export), repeats)
    print(f"{name}: {len(ours)} objects")
    print(f"  object_rows:            {t_ours:8.3f} s (best of {repeats})")
    print(f"  regionprops_per_object: {t_base:8.3f} s")
    print(
        f"  speed-up: {t_base / t_ours:.0f}x; largest difference in any column: "
        f"{largest_difference(ours, baseline):.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=90_000, help="one-pixel cells")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs ({platform.platform()}, Python "
        f"{platform.python_version()}, numpy {np.__version__})"
    )
    side = int(np.ceil(np.sqrt(args.cells)))
    labels = np.zeros((2 * side, 2 * side), np.uint32)
    labels[::2, ::2].flat[: args.cells] = np.arange(1, args.cells + 1)
    many = LabelsExport("many", labels, scale=(0.87, 0.87), units=("µm", "µm"))
    compare(f"one-pixel cells in {2 * side} x {2 * side}", many, args.repeats)

    scan = open_scan(SAMPLE)
    (mask,) = scan.by_role("mask")
    (phase,) = scan.by_role("input")
    sample = LabelsExport("sample", np.asarray(mask.data), scale=scan.scale, units=scan.units,
                          axis_labels=scan.axes,
                          intensities={phase.name: np.asarray(phase.data)})  # fmt: skip
    compare(f"{SAMPLE.name}, {mask.name} ({' x '.join(map(str, mask.data.shape))})",
            sample, args.repeats)  # fmt: skip


if __name__ == "__main__":
    main()
