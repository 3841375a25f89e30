"""Every GPU figure the project claims, in one command (under 9 minutes on an H100/H200).

1. SAM2: the cached engine against sam2's own generator (random-weight
   SAM2.1 hiera-large), first runs at 16 and 32 points per side and a 16 → 32
   change, with a profile of both (``bench_sam2.py``; goal: first run at least
   3x faster than stock), then the same in fp32 with sam2's batches, where the
   masks must be identical (bf16 may give close ones instead);
2. U-Net: tiled inference on an 8192² image against the network's raw batched
   forward passes over as many tiles (``bench_unet_speed.py --forward``; goal:
   at least 80 % of the raw throughput), and against a naive tile loop;
3. U-Net training: optimiser steps per second on real Usiigaci images
   (``iter_train``, batch 16 of 256² crops, resnet34 U-Net, bf16 autocast), with
   the crops made in the training process and by the default crop workers;
4. the dock's stall benchmark (``bench_responsiveness.py``): napari's timer
   lateness while each step of the dock computes on the GPU. It needs napari, a
   Qt binding and an X server (Xvfb); where they are missing the suite says so
   and goes on.

Each figure runs in its own process with a time budget, its output is shown as
it comes, and a summary at the end lists what ran, its key lines and the time.
``--only sam2 unet`` (keys: sam2, sam2-fp32, unet, training, stall) runs some of them,
e.g. beside a training run in a short GPU lease.
Without a CUDA device the suite refuses to run (``--smoke`` runs tiny versions
of every figure on any device, to check the suite itself).

On a GPU machine without a package index (Python 3.12 and PyTorch already
there, as on a lent H100/H200), ``bash scripts/gpu_bundle.sh`` run beforehand on
a machine set up with ``scripts/setup.sh`` collects what the suite needs: wheels
of the packages such a machine lacks (sam2 and its configuration libraries,
segmentation-models-pytorch, dask, zarr) in ``.whl/`` and six real images in
``.gpu/data/``; its header lists what it expects to find installed. Carry both
folders, then::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site CYTOMASK_TEST_DATA=.gpu/data python3 benchmarks/gpu_suite.py

Figure 4 also needs napari and a Qt binding, which do not fit beside them; without
them the suite says so and goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import DATA

HERE = Path(__file__).resolve().parent


#: The figures' keys, in the order they run (``--only``).
FIGURES = ("sam2", "sam2-fp32", "unet", "training", "stall")


def figure_commands(args) -> list[tuple[str, str, list[str], int, tuple[str, ...]]]:
    """``(key, name, command, budget in seconds, prefixes of the summary lines)`` of every
    figure, or of those ``args.only`` names by key.

    The budgets add up to under 9 minutes; a run that outlasts its own is stopped.
    ``--only`` picks some by key (:data:`FIGURES`).
    """
    py, device = sys.executable, args.device
    if args.smoke:
        sam2 = ["--points-per-side", "2", "4", "--check-points", "2", "--repeats", "2"]
        sam2_fp32 = ["--points-per-side", "2", "--check-points", "2", "--repeats", "1"]
        unet = ["--size", "1024", "--tile-size", "256", "--overlap", "32"]
        stall = ["--quick", "--skip", "sam2"]
    else:
        sam2 = ["--model", "facebook/sam2.1-hiera-large"]
        sam2_fp32 = ["--points-per-side", "16", "--check-points", "8", "--repeats", "1"]
        unet = []
        stall = ["--repeats", "1", "--sam2-size", "1022", "--sam2-model-size", "1024"]
        stall += ["--points-per-side", "32"]
    figures = [
        (
            "sam2",
            "SAM2 engine vs stock",
            [py, str(HERE / "bench_sam2.py"), "--device", device, *sam2],
            150,
            ("machine", "  stock", "  engine", "equality"),
        ),
        (
            "sam2-fp32",
            "SAM2 exactness in fp32",
            [py, str(HERE / "bench_sam2.py"), "--device", device, "--fp32", *sam2_fp32],
            60,
            ("machine", "  stock", "  engine", "equality"),
        ),
        (
            "unet",
            "U-Net tiled inference",
            [py, str(HERE / "bench_unet_speed.py"), "--device", device, "--forward", *unet],
            80,
            ("machine", "  pipeline"),
        ),
        (
            "training",
            "U-Net training",
            [py, __file__, "--training", "--device", device, *(["--smoke"] * args.smoke)],
            100,
            ("training",),
        ),
        (
            "stall",
            "dock stall benchmark",
            [py, str(HERE / "bench_responsiveness.py"), "--device", device, *stall],
            110,
            ("machine", "longest", "  segment", "  split", "  metrics", "  export"),
        ),
    ]
    return [f for f in figures if not args.only or f[0] in args.only]


def child_env() -> dict:
    """The environment of a figure's process, which runs in ``benchmarks/``: the data
    folder and ``PYTHONPATH`` as absolute paths, and this checkout's ``src`` on the path,
    so the documented command works from the repository root without an install."""
    paths = [str(HERE.parent / "src")]
    paths += [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "CYTOMASK_TEST_DATA": str(DATA.resolve()),
        "PYTHONPATH": os.pathsep.join(paths),
    }


def run_figure(name: str, command: list[str], budget: int, keys: tuple[str, ...]) -> dict:
    """Run one figure's command, echoing its output; keep the lines that start with ``keys``."""
    print(f"\n=== {name}: {' '.join(Path(c).name if '/' in c else c for c in command)}", flush=True)
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=HERE, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    ) as proc:  # fmt: skip
        # A figure that hangs or works without printing is stopped all the same, with the
        # processes it started (crop workers), which would hold its output open.
        timer = threading.Timer(budget, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip())
            code = proc.wait()
        finally:
            timer.cancel()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    if time.perf_counter() - start >= budget:
        status = f"stopped after its {budget} s budget"
    else:
        status = "ok" if code == 0 else f"failed (exit {code})"
    missing = next((x for x in lines if "ModuleNotFoundError" in x), None)
    if missing and status.startswith("failed"):
        status = f"not run: {missing.split(':', 1)[1].strip()}"
    kept = [x for x in lines if x.startswith(keys) and "Traceback" not in x]
    return {"name": name, "status": status, "seconds": time.perf_counter() - start, "lines": kept}


def training_figure(args) -> None:
    """Optimiser steps per second of the project's training loop on real images, with the
    crops made in the training process and by the default crop workers."""
    import torch

    from napari_cytomask.models.training import (
        TrainingSettings,
        default_workers,
        iter_train,
        samples_from_folders,
    )
    from napari_cytomask.models.unet import UNetConfig

    folder = DATA / "usiigaci-phc"
    samples = samples_from_folders(
        str(folder / "set*/raw.tif"), str(folder / "set*/instances_ids.png")
    )
    if not samples:
        raise SystemExit(f"No Usiigaci images in {folder}; set CYTOMASK_TEST_DATA.")
    batch = 2 if args.smoke else 16
    config = UNetConfig(encoder="resnet18" if args.smoke else "resnet34", encoder_depth=5)
    auto = default_workers(torch.device(args.device))
    # The smoke run takes one worker where the default has none, to check that path too.
    runs = ((0, 6, 2), (max(auto, 1), 6, 2)) if args.smoke else ((0, 30, 5), (auto, 120, 20))
    for workers, steps, warmup in runs:
        settings = TrainingSettings(
            epochs=1,
            steps_per_epoch=steps,
            batch_size=batch,
            crop_size=128 if args.smoke else 256,
            encoder_weights=None,
            device=args.device,
            workers=workers,
            tune=False,
        )
        done = []  # when each step's report came (its loss is on the host, so the step is done)
        with tempfile.TemporaryDirectory() as scratch:
            for event in iter_train(samples, Path(scratch) / "unet.safetensors", config, settings):
                if event.phase == "train":
                    done.append(time.perf_counter())
                    if event.step == steps:
                        break
        rate = (steps - warmup) / (done[-1] - done[warmup - 1])
        made = f"by {workers} worker{'s' * (workers > 1)}" if workers else "in the training process"
        print(
            f"training: {rate:.2f} steps/s ({rate * batch:.1f} crops/s), crops made {made}"
            f"{' (the default)' if workers == auto else ''}, over steps {warmup + 1}-{steps} of a "
            f"{config.encoder} U-Net, batch {batch} of {settings.crop_size}² crops, "
            f"{len(samples)} images, device {args.device}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny runs of every figure, on any device"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=FIGURES,
        metavar="FIGURE",
        help=f"run only these figures ({', '.join(FIGURES)}), e.g. to fit a short GPU lease",
    )
    parser.add_argument("--training", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.training:
        training_figure(args)
        return 0
    import torch

    if args.smoke and not torch.cuda.is_available():
        args.device = "cpu"
    if not args.smoke and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        print(
            "gpu_suite: no CUDA device here, so there is no GPU figure to measure. Run it on a "
            "machine with an NVIDIA GPU (see this script's docstring), or pass --smoke to check "
            "the suite itself on this machine.",
            file=sys.stderr,
        )
        return 2
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"GPU suite on {name}, torch {torch.__version__}, data {DATA}")
    start = time.perf_counter()
    scale = 6 if args.smoke else 1  # a busy CPU runs even the tiny versions slowly
    results = [
        run_figure(name, command, budget * scale, keys)
        for _, name, command, budget, keys in figure_commands(args)
    ]
    print(f"\n=== summary ({time.perf_counter() - start:.0f} s in all)")
    for r in results:
        print(f"{r['name']}: {r['status']} in {r['seconds']:.0f} s")
        for line in r["lines"]:
            print(f"    {line.strip()}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
