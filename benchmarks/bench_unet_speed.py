"""U-Net inference speed and peak memory: the tiled pipeline against a naive tile loop.

Pipeline: :func:`napari_cytomask.models.inference.iter_predict` (batched tiles,
autocast on CUDA, smooth blending, one band of tiles in memory, input read
lazily from a memmap on disk, probabilities written to a ``.npy`` memmap).
Baseline: the naive loop most scripts use: one tile at a time, no batching,
no autocast, the whole image and output in memory. With ``--forward`` (always
on CUDA), also the network's raw batched forward passes over as many tiles,
the ceiling of the pipeline's throughput.

Each measurement runs in a fresh subprocess so that its peak resident memory
(``resource.getrusage``) and, on CUDA, ``torch.cuda.max_memory_allocated`` are
its own. Megapixels per second count input pixels.

Usage::

    python benchmarks/bench_unet_speed.py                 # CPU: both on 8192^2 (about 10 min)
    python benchmarks/bench_unet_speed.py --device cuda   # GPU: both on 8192^2
    python benchmarks/bench_unet_speed.py --crop 2048     # quick look on a crop
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

from _common import cpu_model, peak_rss_mib


def make_image(path: Path, size: int) -> None:
    """A phase-contrast-like uint16 image on disk (cells do not matter for speed)."""
    rng = np.random.default_rng(0)
    image = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(size, size))
    for y in range(0, size, 1024):
        block = rng.normal(2000, 300, (min(1024, size - y), size))
        image[y : y + 1024] = np.clip(block, 0, 65535).astype(np.uint16)
    image.flush()


def child(args) -> dict:
    """One measurement (runs in its own process)."""
    import torch

    from napari_cytomask.models.device import get_device
    from napari_cytomask.models.inference import UNetPredictor, iter_predict
    from napari_cytomask.models.unet import UNetConfig, build_model, normalise, percentile_range

    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    torch.manual_seed(0)
    config = UNetConfig(
        encoder=args.encoder, encoder_depth=args.encoder_depth, tile_size=args.tile_size
    )
    model, _ = build_model(config)
    model.to(device).eval()
    image = np.load(args.image, mmap_mode="r")
    if args.crop:
        image = image[: args.crop, : args.crop]
    h, w = image.shape
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    if args.mode == "pipeline":
        out = np.lib.format.open_memmap(  # probabilities larger than memory, on disk
            Path(args.scratch) / "probs.npy", "w+", np.float32, (3, *image.shape)
        )
        gen = iter_predict(
            UNetPredictor(model, config),
            image,
            overlap=args.overlap,
            batch_size=args.batch_size,
            out=out,
        )
        for _ in gen:
            pass
        out.flush()
    elif args.mode == "forward":
        # The network alone on as many tiles as the pipeline predicts, batched the same
        # way, already on the device: the ceiling of the pipeline's throughput.
        from napari_cytomask.models.device import autocast_dtype
        from napari_cytomask.models.inference import largest_tile
        from napari_cytomask.tiling import fitted_tile, tile_starts

        # The tiles the pipeline fits to the image (the model's tile, grown to cover it
        # with fewer pixels).
        t, multiple = args.tile_size, config.size_multiple
        th, tw = (fitted_tile(n, t, args.overlap, multiple, largest_tile(t, None)) for n in (h, w))
        n_tiles = len(tile_starts(h, th, args.overlap)) * len(tile_starts(w, tw, args.overlap))
        batch = args.batch_size or (8 if device.type != "cpu" else 1)
        x = torch.randn(batch, 1, th, tw, device=device)
        dtype = autocast_dtype(device)
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
        ):
            for _ in range(-(-n_tiles // batch)):
                model(x)
    else:
        full = np.asarray(image, dtype=np.float32)
        full = normalise(full, *percentile_range(full, *config.percentiles))
        acc = np.zeros((3, h, w), np.float32)
        count = np.zeros((h, w), np.float32)
        t, step = args.tile_size, args.tile_size - args.overlap
        with torch.inference_mode():
            for y in sorted({*range(0, max(h - t, 0) + 1, step), max(h - t, 0)}):
                for x in sorted({*range(0, max(w - t, 0) + 1, step), max(w - t, 0)}):
                    tile = torch.from_numpy(np.ascontiguousarray(full[y : y + t, x : x + t]))
                    logits = model(tile[None, None].to(device))
                    p = torch.softmax(logits, 1)[0].cpu().numpy()
                    acc[:, y : y + t, x : x + t] += p
                    count[y : y + t, x : x + t] += 1
        acc /= count
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    result = {
        "mode": args.mode,
        "pixels": h * w,
        "seconds": seconds,
        "mpix_per_s": h * w / 1e6 / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def run(mode: str, image: Path, crop: int, args, scratch: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--image",
        str(image),
        "--crop",
        str(crop),
        "--device",
        args.device,
        "--encoder",
        args.encoder,
        "--encoder-depth",
        str(args.encoder_depth),
        "--tile-size",
        str(args.tile_size),
        "--overlap",
        str(args.overlap),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--scratch",
        scratch,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(label: str, r: dict) -> None:
    gpu = f", CUDA peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
    print(
        f"  {label:<38} {r['pixels'] / 1e6:7.1f} MP in {r['seconds']:7.1f} s = "
        f"{r['mpix_per_s']:6.3f} MP/s, peak RSS {r['peak_rss_mib']:6.0f} MiB{gpu}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=8192, help="side of the large image")
    parser.add_argument(
        "--crop", type=int, default=0, help="run on a crop of this side (0: the whole image)"
    )
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--encoder-depth", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=0, help="0: 8 on GPU, 1 on CPU")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    parser.add_argument(
        "--forward",
        action="store_true",
        help="also time the network's raw batched forward passes (always on CUDA)",
    )
    parser.add_argument("--child", choices=("pipeline", "naive", "forward"), help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        print(json.dumps(child(args)))
        return 0

    import torch

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}")
    print(
        f"network: U-Net {args.encoder} depth {args.encoder_depth}, 1 input channel, 3 classes, "
        f"tile {args.tile_size}, overlap {args.overlap}, batch {args.batch_size}, "
        f"device {args.device}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "image.npy"
        make_image(image, args.size)
        side = args.crop or args.size
        print(f"{side}x{side} image, each method in a fresh process of this run:")
        results = {}
        forward = args.forward or args.device.startswith("cuda")
        for mode in ("naive", "pipeline", *(("forward",) if forward else ())):
            results[mode] = r = run(mode, image, args.crop, args, scratch)
            show(f"{mode} ({side}^2)", r)
        pipeline, naive = results["pipeline"], results["naive"]
        print(
            f"  pipeline / naive loop (baseline): speed "
            f"{pipeline['mpix_per_s'] / naive['mpix_per_s']:.2f}x, peak RSS "
            f"{pipeline['peak_rss_mib'] / naive['peak_rss_mib']:.2f}x; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        if forward:
            share = pipeline["mpix_per_s"] / results["forward"]["mpix_per_s"]
            print(f"  pipeline / raw batched forward: {share:.2f} (goal on a GPU: >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
