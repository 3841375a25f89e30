"""Does napari stay responsive while the U-Net and SAM2 docks compute in thread workers?

In a real napari viewer a ``QTimer`` fires every 10 ms; each tick records how
late it came (interval minus 10 ms): a late tick is a frozen GUI. While it runs:

1. U-Net: :class:`~napari_cytomask._qt.unet_widgets.UNetSegmentWidget` segments
   a synthetic brightfield image (default 1024², ``--unet-size``) with a
   random-weight U-Net checkpoint saved in a temporary folder;
2. SAM2: :class:`~napari_cytomask._qt.sam2_widget.Sam2Widget` segments a small
   image (default 512²) with a random-weight SAM2.1 hiera-tiny; the engine's
   caches are cleared before every run, so each run encodes and decodes anew.

Each run is started as the Segment button does, in a napari thread worker. The
widget's work generator is timed inside the worker; the baseline is the same
generator, with the same arguments, drained directly in the main thread (no
worker, no event loop). Baseline and worker runs alternate, after one warm-up
run. Reported per workload: the longest and the 99th-percentile timer lateness
while the worker computes (goal: under 100 ms) and over the whole run including
showing the result, and the median compute time in the worker against the
baseline as a ratio (goal: at most 1.10). The load average is printed because
other processes on the machine change every figure.

napari needs OpenGL: run under a display or Xvfb (``QT_QPA_PLATFORM=offscreen``
has no OpenGL). Without ``DISPLAY`` the script starts Xvfb itself through
``pyvirtualdisplay`` (installed with pytest-xvfb).

Usage::

    xvfb-run -a .venv/bin/python benchmarks/bench_responsiveness.py          # CPU defaults
    xvfb-run -a .venv/bin/python benchmarks/bench_responsiveness.py --quick  # about a minute
    xvfb-run -a .venv/bin/python benchmarks/bench_responsiveness.py --device cuda \\
        --unet-size 4096 --sam2-size 1024 --sam2-model-size 1024 --points-per-side 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

# torch and torchvision before napari and Qt (imported in main): importing torch's
# compiler stack after an OpenGL context exists crashes the process under Mesa.
import torch
import torchvision  # noqa: F401

from _common import cpu_model

TICK_MS = 10
GOAL_LATENESS_MS = 100.0
GOAL_RATIO = 1.10


def ensure_display() -> object | None:
    """Start Xvfb when there is no display (napari needs OpenGL, so no offscreen platform)."""
    if os.environ.get("QT_QPA_PLATFORM", "") == "offscreen":
        sys.exit("QT_QPA_PLATFORM=offscreen has no OpenGL for napari; run under xvfb-run -a.")
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY"):
        return None
    try:
        from pyvirtualdisplay import Display
    except ImportError:
        sys.exit("No display: run under `xvfb-run -a`, or install pyvirtualdisplay.")
    display = Display(visible=False, size=(1600, 1000), color_depth=24)
    display.start()
    return display


class Ticks:
    """A ``QTimer`` that records when each of its ticks arrives."""

    def __init__(self, interval_ms: int = TICK_MS):
        from qtpy.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000
        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))

    def start(self) -> None:
        self.times.append(time.perf_counter())
        self.timer.start()

    def lateness(self, start: float, end: float) -> np.ndarray:
        """Lateness (s) of every tick interval that overlaps ``[start, end]``."""
        t = np.asarray(self.times)
        gaps = np.diff(t) - self.interval
        overlaps = (t[1:] > start) & (t[:-1] < end)
        return np.maximum(gaps[overlaps], 0.0)


def run_loop_until(condition: Callable[[], bool], timeout: float) -> None:
    """Run the Qt event loop until ``condition()`` holds."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout
    poll = QTimer()
    poll.setInterval(20)

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise TimeoutError(f"the run did not finish within {timeout:.0f} s")


class Timed:
    """Replaces a widget's work generator by a timed one that records its span and arguments.

    The replacement is a generator function too, so ``create_worker`` still makes a
    generator worker of it (progress, quit between yields) as it does for the original.
    """

    def __init__(self, widget):
        self.original = widget._run
        self.spans: list[tuple[float, float]] = []
        self.args: tuple = ()

        def run(*args):
            self.args = args
            start = time.perf_counter()
            result = yield from self.original(*args)
            self.spans.append((start, time.perf_counter()))
            return result

        widget._run = run

    def direct(self) -> float:
        """The same work with the same arguments, drained here: no worker, no event loop."""
        from napari_cytomask.progress import drain

        start = time.perf_counter()
        drain(self.original(*self.args))
        return time.perf_counter() - start


def measure(name, timed: Timed, ticks: Ticks, start_run, is_done, prepare, args) -> dict:
    """Warm up, then alternate baseline and worker runs; returns the figures."""
    load_before = os.getloadavg()

    def settle() -> None:
        # Let the ticks held back by a direct run (or setup) arrive before the next
        # worker run, so that stall is not counted against the worker.
        until = time.perf_counter() + 0.2
        run_loop_until(lambda: time.perf_counter() > until, args.timeout)

    def worker_run() -> tuple[float, float, tuple[float, float]]:
        prepare()
        settle()
        n_spans = len(timed.spans)
        clicked = time.perf_counter()
        start_run()
        run_loop_until(lambda: is_done() and len(timed.spans) > n_spans, args.timeout)
        shown = time.perf_counter()
        run_loop_until(lambda: time.perf_counter() > shown + 0.1, args.timeout)  # late ticks
        return clicked, shown, timed.spans[-1]

    worker_run()  # warm-up: model loading, first allocations, first layer
    worker_times, direct_times, compute_late, whole_late, clicks = [], [], [], [], []
    for r in range(args.repeats):
        order = ("direct", "worker") if r % 2 == 0 else ("worker", "direct")
        for kind in order:
            if kind == "direct":
                prepare()
                direct_times.append(timed.direct())
                continue
            clicked, shown, (start, end) = worker_run()
            worker_times.append(end - start)
            clicks.append(shown - clicked)
            compute_late.append(ticks.lateness(start, end))
            whole_late.append(ticks.lateness(clicked, shown + 0.1))
    compute = np.concatenate(compute_late) * 1000
    whole = np.concatenate(whole_late) * 1000
    worker_s, direct_s = statistics.median(worker_times), statistics.median(direct_times)
    return {
        "name": name,
        "worker_s": worker_s,
        "direct_s": direct_s,
        "ratio": worker_s / direct_s,
        "click_to_shown_s": statistics.median(clicks),
        "compute_max_ms": float(compute.max(initial=0.0)),
        "compute_p99_ms": float(np.percentile(compute, 99)) if compute.size else 0.0,
        "compute_median_ms": float(np.median(compute)) if compute.size else 0.0,
        "whole_max_ms": float(whole.max(initial=0.0)),
        "whole_p99_ms": float(np.percentile(whole, 99)) if whole.size else 0.0,
        "ticks": int(compute.size),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "worker_all": worker_times,
        "direct_all": direct_times,
    }


def unet_workload(viewer, ticks, args, scratch: Path, device: str) -> dict:
    from napari_cytomask._qt.unet_widgets import UNetSegmentWidget
    from napari_cytomask.models.checkpoint import describe, save_checkpoint
    from napari_cytomask.models.unet import UNetConfig, build_model
    from napari_cytomask.synthetic import make_tilescan

    config = UNetConfig(
        encoder=args.encoder, encoder_depth=args.encoder_depth, tile_size=args.tile_size
    )
    torch.manual_seed(0)
    model, _ = build_model(config, None)
    checkpoint = save_checkpoint(scratch / "random-unet.safetensors", model, describe(config))
    image = make_tilescan(n_tiles=1, shape=(args.unet_size,) * 2, seed=0).brightfield[0]
    layer = viewer.add_image(image, name="unet input")
    widget = UNetSegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    widget.checkpoint.set_path(checkpoint)
    widget.input.setCurrentText(layer.name)
    _choose(widget.device, device)
    widget.overlap.setValue(args.overlap)
    timed = Timed(widget)
    result = measure(
        f"U-Net {args.encoder} depth {args.encoder_depth}, {args.unet_size}² image",
        timed, ticks, widget.segment, lambda: widget.worker is None, lambda: None, args,
    )  # fmt: skip
    result["detail"] = (
        f"tile {args.tile_size}, overlap {args.overlap}, "
        f"{int(viewer.layers['unet input U-Net cells'].data.max())} cells"
    )
    return result


def sam2_workload(viewer, ticks, args, device: str) -> dict:
    from napari_cytomask._qt.sam2_widget import Sam2Widget
    from napari_cytomask.models.sam2_models import build_model, config_for
    from napari_cytomask.synthetic import make_tilescan

    model_id = "facebook/sam2.1-hiera-tiny"
    model = build_model(
        config_for(model_id), device=device, image_size=args.sam2_model_size, seed=0
    )
    with torch.no_grad():
        # Random logits are flat: their masks cover the image and NMS keeps one. Spread
        # them (as tests/_qt/test_sam2_widget.py does) for many masks, as real images give.
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(30.0)
    image = make_tilescan(n_tiles=1, shape=(args.sam2_size,) * 2, seed=1).brightfield[0]
    layer = viewer.add_image(image, name="sam2 input")
    widget = Sam2Widget(viewer, model_builder=lambda source, dev, config: model)
    viewer.window.add_dock_widget(widget, name="SAM2")
    widget.layer.setCurrentText(layer.name)
    _choose(widget.device, device)
    # Random weights predict IoUs near 0.5, unstable and overlapping masks: keep every
    # mask, so the painting and the labels layer carry a load like a real image's.
    widget.set_values(
        points_per_side=args.points_per_side, pred_iou_thresh=0.0, stability_score_thresh=0.0,
        box_nms_thresh=1.0, max_area_fraction=1.0,
    )  # fmt: skip
    timed = Timed(widget)

    def clear_caches() -> None:
        for engine in widget._engines.values():
            engine.clear()

    result = measure(
        f"SAM2.1 hiera-tiny (random, input {args.sam2_model_size}²), {args.sam2_size}² image",
        timed, ticks, widget.segment, lambda: widget._worker is None, clear_caches, args,
    )  # fmt: skip
    result["detail"] = (
        f"points per side {args.points_per_side}, "
        f"{int(viewer.layers['sam2 input SAM2 masks'].data.max())} objects"
    )
    return result


def _choose(combo, text: str) -> None:
    combo.setCurrentText(text)
    if combo.currentText() != text:
        items = [combo.itemText(i) for i in range(combo.count())]
        raise SystemExit(f"device {text!r} is not offered; choose one of {items}.")


def show(r: dict) -> None:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"{r['name']} ({r['detail']}):")
    print(
        f"  compute in worker  median {r['worker_s']:7.2f} s  "
        f"(runs: {', '.join(f'{t:.2f}' for t in r['worker_all'])})"
    )
    print(
        f"  direct (baseline)  median {r['direct_s']:7.2f} s  "
        f"(runs: {', '.join(f'{t:.2f}' for t in r['direct_all'])})"
    )
    print(
        f"  ratio worker / direct: {r['ratio']:.3f}x  (goal <= {GOAL_RATIO:.2f}: "
        f"{verdict(r['ratio'] <= GOAL_RATIO)})"
    )
    print(
        f"  timer lateness while computing: max {r['compute_max_ms']:6.1f} ms, "
        f"p99 {r['compute_p99_ms']:6.1f} ms, median {r['compute_median_ms']:5.1f} ms over "
        f"{r['ticks']} ticks  (goal < "
        f"{GOAL_LATENESS_MS:.0f} ms: {verdict(r['compute_max_ms'] < GOAL_LATENESS_MS)})"
    )
    print(
        f"  timer lateness click to result shown: max {r['whole_max_ms']:6.1f} ms, "
        f"p99 {r['whole_p99_ms']:6.1f} ms; click to result shown median "
        f"{r['click_to_shown_s']:.2f} s"
    )
    print(
        "  load average (1, 5, 15 min) before "
        + " ".join(f"{x:.2f}" for x in r["load_before"])
        + ", after "
        + " ".join(f"{x:.2f}" for x in r["load_after"])
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--unet-size", type=int, default=1024, help="side of the U-Net image")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--encoder-depth", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--sam2-size", type=int, default=512, help="side of the SAM2 image")
    parser.add_argument(
        "--sam2-model-size", type=int, default=0,
        help="SAM2 input size (0: 1024 on a GPU as the real models, 512 on CPU)",
    )  # fmt: skip
    parser.add_argument("--points-per-side", type=int, default=8)
    parser.add_argument(
        "--repeats", type=int, default=None, help="worker and direct runs each (3; 1 with --quick)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run at most")
    parser.add_argument("--skip", choices=("unet", "sam2"), action="append", default=[])
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: U-Net 512², SAM2 256² at input 256, one repeat",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.unet_size, args.sam2_size, args.sam2_model_size = 512, 256, 256
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.threads:
        torch.set_num_threads(args.threads)

    from napari_cytomask.models.device import get_device

    resolved = get_device(args.device)
    device = args.device if args.device == "auto" else str(resolved)
    if device == "cuda":
        device = "cuda:0"
    if not args.sam2_model_size:
        args.sam2_model_size = 1024 if resolved.type == "cuda" else 512
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    display = ensure_display()
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="bench_responsiveness")
    gpu = torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else None
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical cores"
        + (f", GPU {gpu}" if gpu else "")
        + f", torch {torch.__version__} ({torch.get_num_threads()} CPU threads), "
        f"napari {napari.__version__}, Qt platform {QApplication.platformName() or '?'}"
    )
    print(
        f"device {args.device} -> {resolved}; timer every {TICK_MS} ms; "
        f"{args.repeats} worker and {args.repeats} direct run(s) per workload after a warm-up"
    )
    ticks = Ticks()
    ticks.start()
    try:
        shown = time.perf_counter()
        run_loop_until(lambda: time.perf_counter() > shown + 1.0, 10)  # first draws
        idle_start = time.perf_counter()
        run_loop_until(lambda: time.perf_counter() > idle_start + 2.0, 10)
        idle = ticks.lateness(idle_start, time.perf_counter()) * 1000
        print(
            f"idle viewer, 2 s: timer lateness max {idle.max(initial=0):.1f} ms, "
            f"p99 {np.percentile(idle, 99):.1f} ms"
        )
        with tempfile.TemporaryDirectory() as scratch:
            if "unet" not in args.skip:
                show(unet_workload(viewer, ticks, args, Path(scratch), device))
            if "sam2" not in args.skip:
                show(sam2_workload(viewer, ticks, args, device))
    finally:
        ticks.timer.stop()
        viewer.close()
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
