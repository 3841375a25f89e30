"""How fast the cached SAM2 engine answers slider changes, against sam2's own generator.

Measured in one run on one 1024² phase-contrast image (usiigaci-phc set1,
1022×1024 uint16, padded to 1024², 1st–99th percentile to uint8):

1. a post-filter change (``pred_iou_thresh``, ``box_nms_thresh``): time from
   the new parameters to an updated label image, against a fresh
   ``SAM2AutomaticMaskGenerator.generate`` with the new parameters;
2. a ``points_per_side`` change: the engine re-runs only the mask decoder on the
   cached image features, the stock generator runs everything again.

The weights are random (seeded) unless ``--weights hub``: timings do not depend
on the weights, the number of masks does (random masks are large and noisy).

Usage::

    python benchmarks/bench_sam2.py                       # CPU, random SAM2.1 hiera-tiny
    python benchmarks/bench_sam2.py --device cuda --model facebook/sam2.1-hiera-tiny \\
        --model facebook/sam2.1-hiera-large               # GPU: time and peak memory per image
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from _common import cpu_model
from napari_cytomask.models.device import autocast_dtype, get_device
from napari_cytomask.models.sam2_engine import (
    LabelParams,
    Sam2Engine,
    Sam2Params,
    masks_to_labels,
    to_uint8_rgb,
)
from napari_cytomask.models.sam2_models import Sam2ModelCache, build_model, config_for

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGE = "usiigaci-phc/set1/raw.tif"


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def load_image(path: Path) -> np.ndarray:
    import tifffile

    raw = tifffile.imread(path)
    raw = raw.reshape(raw.shape[-2:]) if raw.ndim > 2 else raw
    image = np.zeros((1024, 1024), raw.dtype)
    h, w = min(raw.shape[0], 1024), min(raw.shape[1], 1024)
    image[:h, :w] = raw[:h, :w]
    return image


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(func, device, *args, **kwargs):
    sync(device)
    start = time.perf_counter()
    out = func(*args, **kwargs)
    sync(device)
    return time.perf_counter() - start, out


def stock_generate(model, image: np.ndarray, params: Sam2Params, device: torch.device):
    """sam2's generator, under the same autocast as the engine (bf16 on recent GPUs)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(model, **params.generator_kwargs())
    dtype = autocast_dtype(device)
    ctx = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with ctx:
        return gen.generate(image)


def get_model(model_id: str, device: torch.device, weights: str):
    if weights == "hub":
        return Sam2ModelCache().get(model_id, device)
    return build_model(config_for(model_id), device=device, seed=0)


def bench_painting(n_cells: int = 300, repeats: int = 5) -> None:
    """Cost of painting compact, overlapping cell-sized masks into a 1024² label image.

    Random weights give image-sized masks that NMS reduces to one, so the engine
    run above paints almost nothing; this measures what painting adds for a
    real cell image (``masks_to_labels`` runs the same painter).
    """
    rng = np.random.default_rng(0)
    yy, xx = np.ogrid[:1024, :1024]
    masks = []
    for _ in range(n_cells):
        cy, cx, r = rng.integers(20, 1004, 2).tolist() + [int(rng.integers(8, 25))]
        rle = {"size": [1024, 1024], "counts": []}
        binary = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        flat = np.concatenate(([False], binary.T.ravel(), [False]))
        edges = np.flatnonzero(flat[1:] != flat[:-1])
        rle["counts"] = np.diff(np.concatenate(([0], edges, [binary.size]))).tolist()
        masks.append(
            {"segmentation": rle, "predicted_iou": float(rng.random()), "stability_score": 0.9}
        )
    times = [timed(masks_to_labels, torch.device("cpu"), masks)[0] for _ in range(repeats)]
    print(
        f"painting {n_cells} overlapping cell masks into a 1024² label image: median "
        f"{statistics.median(times) * 1000:.1f} ms"
    )


def bench_cpu(args, device: torch.device, image: np.ndarray) -> None:
    rgb = to_uint8_rgb(image)
    model = get_model(args.model[0], device, args.weights)
    engine = Sam2Engine(model, model_key=args.model[0])
    labels = LabelParams(max_area_fraction=1.0)
    # Random weights predict IoUs near 0.5 and unstable masks; the stock defaults
    # (0.8, 0.95) would keep nothing, so the filters start low.
    params = Sam2Params(
        points_per_side=args.points_per_side, pred_iou_thresh=0.45, stability_score_thresh=0.0
    )
    print(f"machine: {machine(device)}")
    print(
        f"model: {args.model[0]} ({args.weights} weights), image {IMAGE} padded to 1024², "
        f"points_per_side {params.points_per_side} "
        f"({params.points_per_side**2 * 3} candidates with multimask)"
    )

    bench_painting()
    t_first, result = timed(engine.segment, device, image, params, labels)
    print(
        f"engine, first run (encoder + decoder + filters + labels): {t_first:.2f} s, "
        f"{result.n_candidates} candidates, {result.n_masks} masks, "
        f"{len(result.features['index'])} objects"
    )

    filtered = [
        replace(params, pred_iou_thresh=0.45 + 0.01 * i, box_nms_thresh=0.7 + 0.02 * i)
        for i in range(1, args.repeats + 1)
    ]
    latencies = []
    for p in filtered:
        t, result = timed(engine.segment, device, image, p, labels)
        latencies.append(t)
    t_filter = statistics.median(latencies)
    print(
        f"engine, post-filter change -> label image: median {t_filter * 1000:.1f} ms "
        f"over {len(latencies)} changes (min {min(latencies) * 1000:.1f}, "
        f"max {max(latencies) * 1000:.1f}), last: {len(result.features['index'])} objects"
    )

    t_stock, masks = timed(stock_generate, device, model, rgb, filtered[-1], device)
    ours = engine.generate(rgb, filtered[-1])
    same = len(ours) == len(masks) and all(
        np.array_equal(a["segmentation"], b["segmentation"])
        for a, b in zip(ours, masks, strict=True)
    )
    print(
        f"stock generate with the new filters: {t_stock:.2f} s ({len(masks)} masks; "
        f"engine gives the same masks: {same})"
    )
    print(f"  -> post-filter change: {t_stock / t_filter:.0f}x faster than a stock re-run")

    moved = replace(filtered[-1], points_per_side=args.new_points_per_side)
    encoder_runs = engine.runs["encoder"]
    t_points, result = timed(engine.segment, device, image, moved, labels)
    assert engine.runs["encoder"] == encoder_runs, "a decoder change must not re-run the encoder"
    print(
        f"engine, points_per_side {params.points_per_side} -> {args.new_points_per_side} "
        f"(decoder only): {t_points:.2f} s, {result.n_candidates} candidates"
    )
    t_stock_points, masks = timed(stock_generate, device, model, rgb, moved, device)
    print(
        f"stock generate with points_per_side {args.new_points_per_side}: "
        f"{t_stock_points:.2f} s ({len(masks)} masks)"
    )
    print(f"  -> points_per_side change: {t_stock_points / t_points:.2f}x the stock speed")


def bench_gpu(args, device: torch.device, image: np.ndarray) -> None:
    rgb = to_uint8_rgb(image)
    print(f"machine: {machine(device)}, autocast {autocast_dtype(device)}")
    params = Sam2Params(points_per_side=args.points_per_side)
    for model_id in args.model:
        model = get_model(model_id, device, args.weights)
        stock_generate(model, rgb, params, device)  # warm-up: kernels, allocator
        torch.cuda.reset_peak_memory_stats(device)
        stock_times = [
            timed(stock_generate, device, model, rgb, params, device)[0]
            for _ in range(args.repeats)
        ]
        stock_peak = torch.cuda.max_memory_allocated(device) / 2**30
        engine = Sam2Engine(model, model_key=model_id)
        engine.generate(rgb, params)
        torch.cuda.reset_peak_memory_stats(device)
        fresh = []
        for _ in range(args.repeats):
            engine.clear()
            fresh.append(timed(engine.generate, device, rgb, params)[0])
        engine_peak = torch.cuda.max_memory_allocated(device) / 2**30
        filters = [
            timed(engine.segment, device, image, replace(params, pred_iou_thresh=0.5 + 0.01 * i))[0]
            for i in range(args.repeats)
        ]
        points = timed(engine.generate, device, rgb, replace(params, points_per_side=24))[0]
        s, e = statistics.median(stock_times), statistics.median(fresh)
        print(
            f"{model_id} ({args.weights} weights): stock {s:.3f} s/image, peak "
            f"{stock_peak:.2f} GiB; engine uncached {e:.3f} s/image ({s / e:.2f}x), peak "
            f"{engine_peak:.2f} GiB; post-filter change -> labels "
            f"{statistics.median(filters) * 1000:.1f} ms; points_per_side 32 -> 24 "
            f"(decoder only) {points:.3f} s"
        )
        del engine, model
        torch.cuda.empty_cache()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--model",
        action="append",
        help="Hugging Face id; repeat for several (default SAM2.1 hiera-tiny)",
    )
    parser.add_argument("--weights", choices=("random", "hub"), default="random")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--new-points-per-side", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image", type=Path, default=DATA / IMAGE)
    args = parser.parse_args(argv)
    args.model = args.model or ["facebook/sam2.1-hiera-tiny"]
    device = get_device(args.device)
    image = load_image(args.image)
    warnings.filterwarnings("ignore", category=UserWarning)
    with torch.no_grad():
        (bench_gpu if device.type == "cuda" else bench_cpu)(args, device, image)


if __name__ == "__main__":
    main()
