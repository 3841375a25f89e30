"""U-Net inference speed and peak memory: the tiled pipeline against a naive tile loop.

Pipeline: :func:`napari_cytomask.models.inference.iter_predict` (batched tiles,
autocast on CUDA, smooth blending, one band of tiles in memory, input read
lazily from a memmap on disk, probabilities written to a ``.npy`` memmap).
Baseline: the naive loop most scripts use: one tile at a time, no batching,
no autocast, the whole image and output in memory.

Each measurement runs in a fresh subprocess so that its peak resident memory
(``resource.getrusage``) and, on CUDA, ``torch.cuda.max_memory_allocated`` are
its own. Megapixels per second count input pixels.

Usage::

    python benchmarks/bench_unet_speed.py                 # CPU: 8192^2 pipeline + 2048^2 both
    python benchmarks/bench_unet_speed.py --device cuda   # GPU: both on 8192^2
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
    from napari_cytomask.models.inference import UNetPredictor, iter_predict, memmap_probabilities
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
        out = memmap_probabilities(Path(args.scratch) / "probs.npy", 3, image.shape)
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
        "--crop", type=int, default=2048, help="side of the crop on which both run (CPU)"
    )
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--encoder-depth", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=0, help="0: 8 on GPU, 1 on CPU")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    parser.add_argument("--skip-large", action="store_true", help="only the crop")
    parser.add_argument("--child", choices=("pipeline", "naive"), help=argparse.SUPPRESS)
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
        gpu = args.device.startswith("cuda")
        results = {}
        if not gpu:
            print(f"{args.crop}x{args.crop} crop, both methods:")
            for mode in ("naive", "pipeline"):
                results[(mode, args.crop)] = r = run(mode, image, args.crop, args, scratch)
                show(f"{mode} ({args.crop}^2)", r)
            ratio = (
                results[("pipeline", args.crop)]["mpix_per_s"]
                / results[("naive", args.crop)]["mpix_per_s"]
            )
            print(f"  speed ratio pipeline / naive on the crop: {ratio:.2f}x")
        if not args.skip_large:
            print(f"{args.size}x{args.size} image:")
            modes = ("naive", "pipeline") if gpu else ("pipeline",)
            for mode in modes:
                results[(mode, 0)] = r = run(mode, image, 0, args, scratch)
                show(f"{mode} ({args.size}^2)", r)
            if gpu:
                ratio = results[("pipeline", 0)]["mpix_per_s"] / results[("naive", 0)]["mpix_per_s"]
                print(f"  speed ratio pipeline / naive: {ratio:.2f}x")
            else:
                print("  (the naive loop is not run at this size on CPU: too slow on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
