"""``cytomask segment`` at scale: throughput with 1 and 2 dask workers, memory on a huge image.

Throughput: a folder of ``--images`` phase-contrast images of ``--size``² (real
usiigaci images tiled), segmented by ``cytomask segment`` on a local
dask.distributed cluster with 1 worker (all cores) and with 2 workers (cores
split between them). Baseline: the 1-worker run.

Memory: one ``--huge``² image (a tiled TIFF on disk, 20,000² = 800 MB of
uint16) processed chunk-wise into OME-Zarr, in one process
(``--scheduler synchronous``) so that its peak resident memory is the whole
cost; the same for a ``--small``² image with the same chunk size shows that
the peak follows the chunk size, not the image size. Baseline: the image itself
(a whole-image pipeline holds it, its float32 probabilities and its labels).

Both use a small random-weight U-Net: the figures are about the batch machinery
(reading, scheduling, chunking, writing), not about the network's quality.

Usage::

    python benchmarks/bench_batch.py                        # 50 x 2048^2, 20,000^2
    python benchmarks/bench_batch.py --images 8 --huge 6000 # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from _common import DATA, cpu_model


def make_model(path: Path) -> None:
    import torch

    from napari_cytomask.models.checkpoint import describe, save_checkpoint
    from napari_cytomask.models.unet import UNetConfig, build_model

    config = UNetConfig(
        encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(32, 16, 8), tile_size=512
    )
    torch.manual_seed(0)
    model, _ = build_model(config)
    save_checkpoint(path, model, describe(config))


def phase_tile(size: int) -> np.ndarray:
    """A ``size``² uint16 image made of real phase-contrast images side by side."""
    sets = sorted((DATA / "usiigaci-phc").glob("set*/raw.tif"))
    if not sets:
        sys.exit(
            f"no usiigaci images in {DATA / 'usiigaci-phc'}; put the shared data beside the "
            "repository or set CYTOMASK_TEST_DATA"
        )
    tiles = [tifffile.imread(p) for p in sets[:4]]
    h, w = tiles[0].shape
    reps = -(-size // min(h, w))
    rows = [np.hstack([tiles[(r + c) % len(tiles)][:h, :w] for c in range(reps)])
            for r in range(reps)]  # fmt: skip
    return np.vstack(rows)[:size, :size].astype(np.uint16)


def write_huge(path: Path, size: int) -> None:
    """A tiled TIFF of ``size``² written tile by tile (never whole in memory)."""
    block = phase_tile(1024)

    def tiles():
        for y in range(0, size, 512):
            for x in range(0, size, 512):
                yield block[y % 1024 : y % 1024 + 512, x % 1024 : x % 1024 + 512]

    tifffile.imwrite(path, tiles(), shape=(size, size), dtype=np.uint16, tile=(512, 512))


PEAK = """
import json, resource, sys
from napari_cytomask.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def segment(args: list[str]) -> tuple[float, float]:
    """Run ``cytomask segment`` in a fresh process: wall seconds, and that process's peak RSS.

    The peak counts the calling process only (with ``--scheduler synchronous``, all
    the work); dask worker processes are not included.
    """
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PEAK, "segment", *args], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines or json.loads(lines[-1])["code"]:
        sys.exit(f"cytomask segment failed:\n{out.stderr}")
    return seconds, json.loads(lines[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--huge", type=int, default=20000)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip", choices=("throughput", "memory"), action="append", default=[])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {cpu_model()}, {cores} cores; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        tmp = Path(tmp)
        model = tmp / "tiny.safetensors"
        make_model(model)
        common = ["-m", str(model), "--device", args.device, "--overlap", "64"]
        if "throughput" not in args.skip:
            folder = tmp / "images"
            folder.mkdir()
            image = phase_tile(args.size)
            for i in range(args.images):
                tifffile.imwrite(folder / f"img{i:03d}.tif", image)
            print(f"\nthroughput: {args.images} images of {args.size}^2 "
                  f"({args.images * args.size**2 / 1e6:.0f} MP)")  # fmt: skip
            rates = {}
            for workers in (1, 2):
                threads = max(1, cores // workers)
                run = ["-o", str(tmp / f"out{workers}"), "--workers", str(workers),
                       "--threads", str(threads), "-q"]  # fmt: skip
                seconds, _ = segment([str(folder), *common, *run])
                rates[workers] = args.images / seconds
                print(f"  {workers} worker(s) x {threads} thread(s): {seconds:.1f} s wall "
                      f"(cluster start included), {rates[workers]:.3f} images/s, "
                      f"{rates[workers] * args.size**2 / 1e6:.2f} MP/s; "
                      f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
            print(f"  2 workers vs 1 worker (baseline): {rates[2] / rates[1]:.2f}x")
        if "memory" not in args.skip:
            print(f"\npeak memory, chunk-wise into OME-Zarr, chunk {args.chunk_size}:")
            peaks = {}
            for size in (args.small, args.huge):
                path = tmp / f"huge{size}.tif"
                write_huge(path, size)
                seconds, peak = segment([str(path), *common, "-o", str(tmp / f"z{size}"),
                                         "--scheduler", "synchronous", "--format", "ome.zarr",
                                         "--chunk-size", str(args.chunk_size), "-q"])  # fmt: skip
                peaks[size] = peak
                whole = size * size * (2 + 3 * 4 + 4) / 2**20
                print(f"  {size}^2: peak RSS {peak:.0f} MiB in {seconds:.0f} s "
                      f"({size * size / 1e6 / seconds:.2f} MP/s); image 2 bytes/px "
                      f"{size * size * 2 / 2**20:.0f} MiB, whole-image pipeline needs "
                      f">= {whole:.0f} MiB (input + float32 probabilities + labels); "
                      f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
                path.unlink()
            ratio = (args.huge / args.small) ** 2
            print(
                f"  {args.huge}^2 has {ratio:.0f}x the pixels of {args.small}^2; "
                f"peak memory ratio {peaks[args.huge] / peaks[args.small]:.2f}x"
            )


if __name__ == "__main__":
    main()
