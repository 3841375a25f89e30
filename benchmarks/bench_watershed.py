"""Watershed post-processing: fidelity on real labels, speed, and memory on a huge image.

Run from the project root:  python benchmarks/bench_watershed.py [--skip-huge]

1. Fidelity: the 40 usiigaci-phc ground truths are turned into interior/boundary
   maps and binary masks, the watershed turns them back into cells, and
   stardist.matching scores them against the originals (F1 at IoU 0.5 and the
   mean-average F1 over IoU 0.50:0.05:0.95).
2. Speed: a 2048 x 2048 image with more than 1,000 real cells (ground truths of
   16 sets at half resolution, tiled), against a plain scikit-image pipeline
   (distance transform + peak_local_max + watershed on the whole image).
3. Memory: a 16,384 x 16,384 image stored as zarr on disk, processed chunk-wise in
   a subprocess into a zarr output; its peak RSS is compared with the data size.
4. The default clean-up: F1@0.5 of ground-truth interior/boundary maps for minimum
   areas from 0 to 128 px, on sets 1-20 (where the default was chosen), on the
   held-out sets 21-40, and on the nuclei-dsb masks (small nuclei a default must keep).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
from scipy import ndimage as ndi
from skimage import io
from skimage.feature import peak_local_max
from skimage.segmentation import watershed
from stardist.matching import matching

from _common import DATA, best_of, cpu_model, peak_rss_mib
from napari_cytomask.postprocess import instances_to_interior_boundary, run_watershed

SETS = DATA / "usiigaci-phc"
THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)
CLEANUP = {"min_area": 64}


def truth(n: int) -> np.ndarray:
    return io.imread(SETS / f"set{n}" / "instances_ids.png")


def as_maps(labels):
    classes = instances_to_interior_boundary(labels)
    return (classes == 1).astype(np.float32), (classes == 2).astype(np.float32)


def scores(gt, pred):
    stats = matching(gt, pred, thresh=list(THRESHOLDS))
    f1 = [s.f1 for s in stats]
    return f1[0], float(np.mean(f1))


def fidelity() -> None:
    print("== 1. fidelity on the 40 usiigaci-phc ground truths (stardist.matching) ==")
    rows = {"interior/boundary maps": [], "binary masks": []}
    for n in range(1, 41):
        gt = truth(n)
        rows["interior/boundary maps"].append(
            scores(gt, run_watershed("interior_boundary", *as_maps(gt), cleanup=CLEANUP))
        )
        rows["binary masks"].append(
            scores(gt, run_watershed("foreground", gt > 0, cleanup=CLEANUP))
        )
    for name, values in rows.items():
        values = np.array(values)
        print(
            f"{name:24s} F1@0.5 mean {values[:, 0].mean():.4f} (min {values[:, 0].min():.4f})"
            f"   mean-average F1 0.50:0.95 {values[:, 1].mean():.4f}"
        )


def tiled_2048():
    counts = sorted(range(1, 41), key=lambda n: -int(truth(n).max()))[:16]
    tiles, offset = [], 0
    for n in counts:
        half = truth(n)[::2, ::2].astype(np.int32)  # nearest-neighbour: real shapes, smaller
        tiles.append(np.where(half > 0, half + offset, 0))
        offset += int(half.max())
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, 16, 4)]
    image = np.vstack(rows)
    return np.pad(image, ((0, 2048 - image.shape[0]), (0, 2048 - image.shape[1])))


def baseline(mask, min_distance):
    distance = ndi.distance_transform_edt(mask)
    coords = peak_local_max(distance, min_distance=min_distance, labels=ndi.label(mask)[0])
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    return watershed(-distance, markers, mask=mask)


def speed() -> None:
    print("\n== 2. 2048 x 2048 image, real cells (16 sets at half resolution, tiled) ==")
    gt = tiled_2048()
    n_cells = len(np.unique(gt)) - 1
    interior, boundary = as_maps(gt)
    mask = gt > 0
    cleanup = {"min_area": 16}
    t_base, base = best_of(lambda: baseline(mask, 10))
    t_ib, ib = best_of(
        lambda: run_watershed("interior_boundary", interior, boundary, cleanup=cleanup)
    )
    t_fg, fg = best_of(lambda: run_watershed("foreground", mask, cleanup=cleanup))
    t_pk, pk = best_of(
        lambda: run_watershed("foreground", mask, params={"markers": "peaks", "min_distance": 10},
                              cleanup=cleanup)
    )  # fmt: skip
    print(f"shape {gt.shape}, {n_cells} cells; best of 3 runs")
    print(f"baseline skimage EDT+peak_local_max+watershed: {t_base:.3f} s, "
          f"F1@0.5 {matching(gt, base, thresh=0.5).f1:.3f}")  # fmt: skip
    for name, t, labels in (
        ("interior/boundary maps", t_ib, ib),
        ("binary mask, h-maxima", t_fg, fg),
        ("binary mask, peaks", t_pk, pk),
    ):
        print(f"{name:24s}: {t:.3f} s ({t_base / t:.2f}x the baseline's speed), "
              f"F1@0.5 {matching(gt, labels, thresh=0.5).f1:.3f}")  # fmt: skip
    print(f"interior/boundary under 1 s: {'yes' if t_ib < 1 else 'NO'}")


HUGE_CHILD = """
import resource, sys, time, zarr
from napari_cytomask.postprocess import iter_watershed
root = sys.argv[1]
interior = zarr.open_array(root + "/interior.zarr", mode="r")
boundary = zarr.open_array(root + "/boundary.zarr", mode="r")
out = zarr.create_array(root + "/labels.zarr", shape=interior.shape, chunks=(1024, 1024),
                        dtype="uint32", fill_value=0)
start = time.perf_counter()
gen = iter_watershed("interior_boundary", interior, boundary, cleanup={"min_area": 64},
                     chunk_size=2048, overlap=272, out=out)
while True:
    try:
        next(gen)
    except StopIteration:
        break
elapsed = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(elapsed, rss, int(out[-1024:, -1024:].max()))
"""


def huge(size: int = 16384) -> None:
    import zarr

    print(f"\n== 3. {size} x {size} image from zarr on disk, chunk-wise ==")
    with tempfile.TemporaryDirectory() as root:
        spec = {"shape": (size, size), "chunks": (1024, 1024), "dtype": "float32"}
        interior = zarr.create_array(f"{root}/interior.zarr", fill_value=0, **spec)
        boundary = zarr.create_array(f"{root}/boundary.zarr", fill_value=0, **spec)
        cells = 0
        maps = {}
        for k, (r, c) in enumerate(np.ndindex(size // 1024, size // 1024)):
            n = k % 40 + 1
            if n not in maps:
                tile = np.zeros((1024, 1024), np.int32)
                tile[2:-2, 2:-2] = truth(n)[:1020, :1020]  # a background margin between tiles
                maps[n] = (as_maps(tile), len(np.unique(tile)) - 1)
            (i, b), count = maps[n]
            interior[r * 1024 : (r + 1) * 1024, c * 1024 : (c + 1) * 1024] = i
            boundary[r * 1024 : (r + 1) * 1024, c * 1024 : (c + 1) * 1024] = b
            cells += count
        proc = subprocess.run([sys.executable, "-c", HUGE_CHILD, root], capture_output=True,
                              text=True, check=True)  # fmt: skip
        elapsed, rss, last_id = proc.stdout.split()
        rss = int(rss)
        data = 2 * size * size * 4
        output = size * size * 4
        print(f"about {cells} cells in the input; last tile's largest id {last_id}")
        print(f"time {float(elapsed):.1f} s ({size * size / float(elapsed) / 1e6:.1f} Mpixel/s)")
        print(
            f"peak RSS {rss / 2**20:.0f} MiB; input maps {data / 2**30:.1f} GiB + output "
            f"{output / 2**30:.1f} GiB: RSS is {rss / (data + output):.3f} of the data size"
        )


def default_cleanup() -> None:
    import tifffile

    from napari_cytomask.postprocess import DEFAULT_CLEANUP

    print(f"\n== 4. minimum area of the default clean-up (now {DEFAULT_CLEANUP}) ==")
    areas = (0, 4, 8, 16, 32, 64, 128)
    nuclei = [tifffile.imread(DATA / "nuclei-dsb" / f) for f in ("mask2d.tif", "tests_mask2d.tif")]
    f1 = {a: [] for a in areas}
    for gt in [truth(n) for n in range(1, 41)] + nuclei:
        for a in areas:
            labels = run_watershed("interior_boundary", *as_maps(gt), cleanup={"min_area": a})
            f1[a].append(scores(gt, labels)[0])
    print("min_area  F1@0.5 sets 1-20  held-out 21-40  nuclei-dsb (2 images, min)")
    for a in areas:
        v = np.array(f1[a])
        print(f"{a:8d}  {v[:20].mean():15.4f}  {v[20:40].mean():14.4f}  {v[40:].min():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-huge", action="store_true", help="skip the 16k image")
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    fidelity()
    speed()
    if not args.skip_huge:
        huge()
    default_cleanup()
    peak = peak_rss_mib()
    print(f"\nbenchmark process peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
