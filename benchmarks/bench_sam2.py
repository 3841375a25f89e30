"""The cached SAM2 engine against sam2's own generator: first runs, grid changes, filter changes.

Measured in one run on one real phase-contrast image (usiigaci-phc set1,
1022×1024 uint16, 1st–99th percentile to uint8), same model, same parameters:

1. a profile of both: seconds and share of the encoder, the mask decoder, the
   upsampling of the mask logits, stability scores, boxes, run-length encoding,
   NMS and the output records (the engine computes stability, boxes, areas and
   compressed masks in one windowed pass, shown as one line; on a CPU it
   upsamples each point's masks just before that pass), and of painting
   masks into a label image;
2. first run at 16 and at 32 points per side: ``Sam2Engine.generate`` (nothing
   cached) against ``SAM2AutomaticMaskGenerator.generate``, with a check that
   both return the same masks, boxes, scores and order;
3. a 16 → 32 ``points_per_side`` change: the engine decodes the new grid on the
   cached image features, against a stock run at 32;
4. a post-filter change (``pred_iou_thresh``, ``box_nms_thresh``) → label image.

The weights are random (seeded) unless ``--weights hub``: timings hardly
depend on the weights, the number and shape of the masks do (random masks are
image-sized noise, so NMS keeps few of them; a separate check with NMS off
compares every mask above the IoU filter).

Usage::

    python benchmarks/bench_sam2.py                       # CPU, random SAM2.1 hiera-tiny
    python benchmarks/bench_sam2.py --device cuda --model facebook/sam2.1-hiera-large
    python benchmarks/bench_sam2.py --device cuda --fp32   # exactness on a GPU: no autocast
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from _common import DATA, cpu_model
from napari_cytomask.models import sam2_engine
from napari_cytomask.models.device import autocast_dtype, get_device
from napari_cytomask.models.sam2_engine import (
    LabelParams,
    Sam2Engine,
    Sam2Params,
    masks_to_labels,
    to_uint8_rgb,
)
from napari_cytomask.models.sam2_models import Sam2ModelCache, build_sam2_model, config_for
from napari_cytomask.rle import rle_counts

IMAGE = "usiigaci-phc/set1/raw.tif"
# Random weights predict IoUs near 0.5 and unstable masks: the stock defaults (0.8, 0.95)
# would keep nothing.
BASE = Sam2Params(pred_iou_thresh=0.45, stability_score_thresh=0.0)


def machine(device: torch.device, fp32: bool) -> str:
    if device.type == "cuda":
        dtype = None if fp32 else autocast_dtype(device)
        return f"{torch.cuda.get_device_name(device)}, autocast {dtype}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"load average {load} at start"
    )


def load_image(path: Path) -> np.ndarray:
    import tifffile

    raw = tifffile.imread(path)
    return raw.reshape(raw.shape[-2:]) if raw.ndim > 2 else raw


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(func, device, *args, **kwargs):
    sync(device)
    start = time.perf_counter()
    out = func(*args, **kwargs)
    sync(device)
    return time.perf_counter() - start, out


@contextlib.contextmanager
def profiled(targets, device: torch.device):
    """Seconds spent in each ``(object, attribute, stage)`` callable while the block runs."""
    seconds: collections.Counter = collections.Counter()
    saved = []
    for obj, attr, stage in targets:
        func = getattr(obj, attr)

        def wrapper(*args, _func=func, _stage=stage, **kwargs):
            sync(device)
            start = time.perf_counter()
            try:
                return _func(*args, **kwargs)
            finally:
                sync(device)
                seconds[_stage] += time.perf_counter() - start

        saved.append((obj, attr, func, attr in vars(obj)))
        setattr(obj, attr, wrapper)
    try:
        yield seconds
    finally:
        for obj, attr, func, own in reversed(saved):
            if own:
                setattr(obj, attr, func)
            else:
                delattr(obj, attr)  # the class's method shows through again


def show_profile(label: str, total: float, seconds: collections.Counter) -> None:
    print(f"  profile, {label}: {total:.2f} s")
    for stage, s in [*seconds.most_common(), ("other", total - sum(seconds.values()))]:
        print(f"    {stage:<44s} {s:8.2f} s {100 * s / total:5.1f} %")


def autocast(device: torch.device, fp32: bool):
    dtype = None if fp32 else autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def new_engine(args, model) -> Sam2Engine:
    return Sam2Engine(model, model_key=args.model, autocast=not args.fp32)


def run_stock(model, rgb, params: Sam2Params, device: torch.device, fp32: bool):
    """sam2's generator, profiled, under the engine's autocast (bf16 on recent GPUs)."""
    import sam2.automatic_mask_generator as amg

    gen = amg.SAM2AutomaticMaskGenerator(model, **params.generator_kwargs())
    targets = [
        (gen.predictor, "set_image", "encoder"),
        (model.sam_mask_decoder, "forward", "decoder"),
        (gen.predictor._transforms, "postprocess_masks", "upsampling (+ hole filling)"),
        (amg, "calculate_stability_score", "stability"),
        (amg, "batched_mask_to_box", "boxes"),
        (amg, "mask_to_rle_pytorch", "RLE"),
        (amg, "batched_nms", "NMS"),
        (amg, "rle_to_mask", "output records (RLE to mask)"),
    ]
    with profiled(targets, device) as seconds, autocast(device, fp32):
        total, masks = timed(gen.generate, device, rgb)
    return total, seconds, masks


def run_engine(engine: Sam2Engine, rgb, params: Sam2Params, device: torch.device):
    targets = [
        (engine.predictor, "set_image", "encoder"),
        (engine.model.sam_mask_decoder, "forward", "decoder"),
        (sam2_engine, "decode", "decoder"),  # the engine's decoder call on a CPU
        (engine.predictor._transforms, "postprocess_masks", "upsampling (+ hole filling)"),
        # Per mask on a CPU (each read inside its window), whole frames on a GPU.
        (sam2_engine, "_window_stats", "stability, boxes, areas, compression"),
        (sam2_engine, "_frame_stats", "stability, boxes, areas, compression"),
        (sam2_engine, "_filter", "filters and NMS"),
        (sam2_engine, "_records", "output records"),
    ]
    with profiled(targets, device) as seconds:
        total, masks = timed(engine.generate, device, rgb, params)
    return total, seconds, masks


def same_masks(ours: list[dict], theirs: list[dict]) -> str:
    """``"True"`` when two lists of records are identical, else how close they are.

    Identical means the same masks, boxes, areas, points, crop boxes and scores in
    the same order; bf16 on a GPU with other batch sizes may give close masks instead.
    """
    from sam2.utils.amg import rle_to_mask

    def equal(a, b):
        return a == b or (np.isnan(a) and np.isnan(b))

    def binary(seg):
        return rle_to_mask(seg) if isinstance(seg, dict) else seg

    pairs = list(zip(ours, theirs, strict=False))
    same = [
        np.array_equal(a["segmentation"], b["segmentation"])
        and all(a[k] == b[k] for k in ("area", "bbox", "point_coords", "crop_box"))
        and equal(a["predicted_iou"], b["predicted_iou"])
        and equal(a["stability_score"], b["stability_score"])
        for a, b in pairs
    ]
    if len(ours) == len(theirs) and all(same):
        return "True"
    text = f"False ({len(ours)} vs {len(theirs)} masks, {sum(same)} identical in place"
    if pairs:
        ious = []
        for a, b in pairs:
            x, y = binary(a["segmentation"]), binary(b["segmentation"])
            ious.append((x & y).sum() / max((x | y).sum(), 1))
        diff = max(abs(a["predicted_iou"] - b["predicted_iou"]) for a, b in pairs)
        text += (
            f"; mask IoU of the pairs: median {np.median(ious):.4f}, min {min(ious):.4f}; "
            f"largest predicted-IoU difference {diff:.2e}"
        )
    return text + ")"


def get_model(model_id: str, device: torch.device, weights: str):
    if weights == "hub":
        return Sam2ModelCache().get(model_id, device)
    return build_sam2_model(config_for(model_id), device=device, seed=0)


def bench_painting(n_cells: int = 300, repeats: int = 5) -> None:
    """Cost of painting compact, overlapping cell-sized masks into a 1024² label image.

    Random weights give image-sized masks that NMS reduces to a few, so the
    runs above paint almost nothing; this measures what painting adds for a
    real cell image (``Sam2Engine.segment`` runs the same painter).
    """
    rng = np.random.default_rng(0)
    yy, xx = np.ogrid[:1024, :1024]
    masks = []
    for _ in range(n_cells):
        cy, cx, r = rng.integers(20, 1004, 2).tolist() + [int(rng.integers(8, 25))]
        binary = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        counts = rle_counts(binary).tolist()
        masks.append(
            {
                "segmentation": {"size": [1024, 1024], "counts": counts},
                "predicted_iou": float(rng.random()),
                "stability_score": 0.9,
            }
        )
    times = [timed(masks_to_labels, torch.device("cpu"), masks)[0] for _ in range(repeats)]
    print(
        f"painting {n_cells} overlapping cell masks into a 1024² label image: median "
        f"{statistics.median(times) * 1000:.1f} ms"
    )


def first_runs_and_grid_change(args, model, device, rgb) -> dict:
    """Stock and engine at each grid size, then the engine's change between the first two."""
    figures = {}
    for n in args.points_per_side:
        params = replace(args.base, points_per_side=n)
        t_stock, p_stock, theirs = run_stock(model, rgb, params, device, args.fp32)
        engine = new_engine(args, model)
        t_engine, p_engine, ours = run_engine(engine, rgb, params, device)
        same = same_masks(ours, theirs)
        print(f"\npoints_per_side {n} ({n * n} points, {n * n * 3} candidates), first run:")
        show_profile("stock generate", t_stock, p_stock)
        show_profile("engine generate", t_engine, p_engine)
        # Exact masks need sam2's encoder and decoder runs: they bound any speed-up.
        bound = t_stock / (p_stock["encoder"] + p_stock["decoder"])
        print(
            f"  stock {t_stock:.2f} s, engine {t_engine:.2f} s -> {t_stock / t_engine:.2f}x "
            f"(stock / its own encoder + decoder: {bound:.2f}x); {len(ours)} masks, identical "
            f"to stock: {same}"
        )
        figures[n] = (t_stock, engine, same)
    if len(args.points_per_side) < 2:
        return {"engine": engine, "params": params}
    small, large = args.points_per_side[:2]
    engine = figures[small][1]
    params = replace(args.base, points_per_side=large)
    encoder_runs, points = engine.runs["encoder"], engine.runs["points"]
    t_change, p_change, ours = run_engine(engine, rgb, params, device)
    assert engine.runs["encoder"] == encoder_runs, "a decoder change must not re-run the encoder"
    t_stock, first = figures[large][:2]
    same = same_masks(ours, first.generate(rgb, params))
    print(f"\npoints_per_side {small} -> {large} on the cached image features:")
    show_profile("engine generate", t_change, p_change)
    print(
        f"  engine {t_change:.2f} s ({engine.runs['points'] - points} points decoded) against "
        f"stock at {large}: {t_stock:.2f} s -> {t_stock / t_change:.2f}x; identical to the "
        f"engine's first run at {large}: {same}"
    )
    return {"engine": engine, "params": params}


def check_every_mask(args, model, device, rgb) -> None:
    """Engine and stock with NMS off, so that every candidate above the IoU filter is compared."""
    params = replace(
        args.base,
        points_per_side=args.check_points,
        box_nms_thresh=1.0,
        output_mode="uncompressed_rle",
    )
    t_stock, _, theirs = run_stock(model, rgb, params, device, args.fp32)
    t_engine, _, ours = run_engine(new_engine(args, model), rgb, params, device)
    print(
        f"\nequality with NMS off, points_per_side {args.check_points}: {len(ours)} masks, "
        f"identical to stock: {same_masks(ours, theirs)} (stock {t_stock:.2f} s, engine "
        f"{t_engine:.2f} s, run-length output)"
    )


def filter_changes(args, device, image, engine: Sam2Engine, params: Sam2Params) -> None:
    labels = LabelParams(max_area_fraction=1.0)
    engine.segment(image, params, labels)  # labels of the current settings
    latencies = []
    for i in range(1, args.repeats + 1):
        p = replace(params, pred_iou_thresh=0.45 + 0.01 * i, box_nms_thresh=0.7 + 0.02 * i)
        t, result = timed(engine.segment, device, image, p, labels)
        latencies.append(t)
    print(
        f"\nengine, post-filter change -> label image: median "
        f"{statistics.median(latencies) * 1000:.1f} ms over {len(latencies)} changes "
        f"(min {min(latencies) * 1000:.1f}, max {max(latencies) * 1000:.1f}), last: "
        f"{len(result.features['index'])} objects"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="facebook/sam2.1-hiera-tiny", help="Hugging Face id")
    parser.add_argument("--weights", choices=("random", "hub"), default="random")
    parser.add_argument(
        "--points-per-side",
        type=int,
        nargs="+",
        default=[16, 32],
        help="first runs at each; the first two also give the grid change",
    )
    parser.add_argument("--repeats", type=int, default=5, help="post-filter changes")
    parser.add_argument(
        "--fp32",
        action="store_true",
        help="no autocast, and sam2's batch of 64 points: exact on a GPU too",
    )
    parser.add_argument(
        "--check-points", type=int, default=8, help="points per side of the NMS-off check"
    )
    parser.add_argument("--image", type=Path, default=DATA / IMAGE)
    args = parser.parse_args(argv)
    args.base = replace(BASE, points_per_batch=64) if args.fp32 else BASE
    device = get_device(args.device)
    image = load_image(args.image)
    rgb = to_uint8_rgb(image)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"machine: {machine(device, args.fp32)}")
    print(
        f"model: {args.model} ({args.weights} weights), image {args.image.name} "
        f"{image.shape[0]}x{image.shape[1]} {image.dtype}"
    )
    with torch.no_grad():
        model = get_model(args.model, device, args.weights)
        bench_painting()
        check_every_mask(args, model, device, rgb)
        changed = first_runs_and_grid_change(args, model, device, rgb)
        filter_changes(args, device, image, changed["engine"], changed["params"])


if __name__ == "__main__":
    main()
