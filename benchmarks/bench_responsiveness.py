"""Does napari stay responsive while every step of the Segment cytoplasm dock computes?

In a real napari viewer a ``QTimer`` fires every 10 ms; each tick records how
late it came (interval minus 10 ms): a late tick is a frozen GUI. The steps run
as their buttons run them, on a real phase-contrast image (Usiigaci set 11,
1022 x 1024, from ``--data``) with its hand-drawn mask as the ground truth:

1. U-Net: :class:`~napari_cytomask._qt.unet_widgets.UNetSegmentWidget` segments
   the image with the packaged starter model (a random-weight U-Net when the
   package has none, or ``--random-unet``);
2. SAM2: :class:`~napari_cytomask._qt.sam2_widget.Sam2Widget` segments a
   ``--sam2-size`` crop of it with a random-weight SAM2.1 hiera-tiny; the
   engine's caches are cleared before every run, so each run encodes and
   decodes anew;
3. split: the watershed step splits the U-Net's cells (Apply);
4. metrics: the metrics step compares the U-Net's cells with the mask;
5. export: the export step writes the cells (TIFF, tables, provenance);
6. cancel: the U-Net segments a stack of ``--stack-frames`` 512² frames (crops of
   the image) and is cancelled once ``--cancel-after`` frames are done, which the
   Cancel click keeps: into a new layer, then into the cells of the run before.

For the U-Net and SAM2, the widget's work generator is also timed inside the
worker against a baseline: the same generator, with the same arguments,
drained directly in the main thread (no worker, no event loop); baseline and
worker runs alternate after one warm-up run, and the median ratio is reported
(goal: at most 1.10). For every step: the longest and the 99th-percentile timer
lateness from the click until the result is shown (goal: under 100 ms), with a
last table of the longest stall per step. The load average is printed because
other processes on the machine change every figure.

napari needs OpenGL: run under a display or Xvfb (``QT_QPA_PLATFORM=offscreen``
has no OpenGL). Without ``DISPLAY`` the script starts Xvfb itself through
``pyvirtualdisplay`` (installed with pytest-xvfb).

Usage::

    xvfb-run -a .venv/bin/python benchmarks/bench_responsiveness.py          # CPU defaults
    xvfb-run -a .venv/bin/python benchmarks/bench_responsiveness.py --quick  # one repeat
    xvfb-run -a .venv/bin/python benchmarks/bench_responsiveness.py --device cuda \\
        --sam2-size 1022 --sam2-model-size 1024 --points-per-side 32
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

from _common import DATA, cpu_model

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


def real_image(args) -> tuple[np.ndarray, np.ndarray]:
    """The real phase-contrast image and its hand-drawn cells."""
    import tifffile
    from skimage import io as skio

    folder = Path(args.data) / "usiigaci-phc" / "set11"
    if not folder.is_dir():
        sys.exit(f"No real images at {folder}: give --data (the shared data folder).")
    return tifffile.imread(folder / "raw.tif"), skio.imread(folder / "instances_ids.png")


def unet_workload(viewer, ticks, args, scratch: Path, device: str) -> dict:
    from napari_cytomask._qt.unet_widgets import UNetSegmentWidget
    from napari_cytomask.models.catalog import STARTER, unet_models
    from napari_cytomask.models.checkpoint import describe, save_checkpoint
    from napari_cytomask.models.unet import UNetConfig, build_model

    if args.random_unet or not any(entry.key == STARTER for entry in unet_models()):
        config = UNetConfig(
            encoder=args.encoder, encoder_depth=args.encoder_depth, tile_size=args.tile_size
        )
        torch.manual_seed(0)
        model, _ = build_model(config, None)
        checkpoint = save_checkpoint(scratch / "random-unet.safetensors", model, describe(config))
        name = f"random U-Net {args.encoder} depth {args.encoder_depth}"
    else:
        checkpoint, name = STARTER, "starter U-Net"
    widget = UNetSegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    widget.checkpoint.set_model(checkpoint)
    widget.input.setCurrentText("phase")
    _choose(widget.device, device)
    widget.overlap.setValue(args.overlap)
    timed = Timed(widget)
    result = measure(
        f"U-Net: {name}, real {'x'.join(map(str, viewer.layers['phase'].data.shape))} image",
        timed, ticks, widget.segment, lambda: not widget.runner.busy, lambda: None, args,
    )  # fmt: skip
    result["detail"] = (
        f"overlap {args.overlap}, {int(viewer.layers['phase U-Net cells'].data.max())} cells"
    )
    result["step"] = "segment (U-Net)"
    return result


def sam2_workload(viewer, ticks, args, device: str) -> dict:
    from napari_cytomask._qt.sam2_widget import Sam2Widget
    from napari_cytomask.models.sam2_models import build_sam2_model, config_for

    model_id = "facebook/sam2.1-hiera-tiny"
    model = build_sam2_model(
        config_for(model_id), device=device, image_size=args.sam2_model_size, seed=0
    )
    with torch.no_grad():
        # Random logits are flat: their masks cover the image and NMS keeps one. Spread
        # them (as tests/_qt/test_sam2_widget.py does) for many masks, as real images give.
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(30.0)
    crop = viewer.layers["phase"].data[: args.sam2_size, : args.sam2_size]
    layer = viewer.add_image(crop, name="sam2 input")
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
        f"SAM2.1 hiera-tiny (random, input {args.sam2_model_size}²), real "
        f"{'x'.join(map(str, layer.data.shape))} crop",
        timed, ticks, widget.segment, lambda: not widget.runner.busy, clear_caches, args,
    )  # fmt: skip
    result["detail"] = (
        f"points per side {args.points_per_side}, "
        f"{int(viewer.layers['sam2 input SAM2 masks'].data.max())} objects"
    )
    result["step"] = "segment (SAM2)"
    return result


def step_workload(name, ticks, args, start_run, is_done, prepare=lambda: None) -> dict:
    """Timer lateness from the click until a step's result is shown, over warm-up + repeats."""
    load_before = os.getloadavg()
    late, clicks = [], []
    for run in range(args.repeats + 1):
        prepare()
        pause(0.2, args)  # ticks held back by the setup arrive before the click
        clicked = time.perf_counter()
        start_run()
        run_loop_until(is_done, args.timeout)
        shown = time.perf_counter()
        pause(0.1, args)  # late ticks
        if run:  # the first run is the warm-up
            late.append(ticks.lateness(clicked, shown + 0.1))
            clicks.append(shown - clicked)
    whole = np.concatenate(late) * 1000
    return {
        "name": name,
        "step": name,
        "whole_max_ms": float(whole.max(initial=0.0)),
        "whole_p99_ms": float(np.percentile(whole, 99)) if whole.size else 0.0,
        "click_to_shown_s": statistics.median(clicks),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def pause(seconds: float, args) -> None:
    """Run the event loop for ``seconds``."""
    until = time.perf_counter() + seconds
    run_loop_until(lambda: time.perf_counter() > until, args.timeout)


def later_steps(viewer, ticks, args, scratch: Path) -> list[dict]:
    """Split, metrics and export on the U-Net's cells, as the dock's steps run them."""
    from qtpy.QtCore import Qt

    from napari_cytomask._qt.export_panel import ExportPanel
    from napari_cytomask._qt.metrics_dock import MetricsDock
    from napari_cytomask._qt.watershed_widget import WatershedWidget

    cells = viewer.layers["phase U-Net cells"]
    split = WatershedWidget(viewer)
    viewer.window.add_dock_widget(split, name="Split")
    split.live.setChecked(False)
    split.use_input(cells)
    output = f"{cells.name} split"
    results = [
        step_workload(
            "split (watershed)", ticks, args, split.apply,
            lambda: not split.runner.busy and output in viewer.layers,
        )
    ]  # fmt: skip
    results[-1]["detail"] = f"{int(viewer.layers[output].data.max())} cells"

    metrics = MetricsDock(viewer)
    viewer.window.add_dock_widget(metrics, name="Metrics")
    metrics.set_prediction(cells)
    metrics.ground_truth_combo.setCurrentText("mask")

    def compare() -> None:
        metrics.evaluation = None
        metrics.schedule(now=True)

    results.append(
        step_workload(
            "metrics", ticks, args, compare,
            lambda: not metrics.runner.busy and metrics.evaluation is not None,
        )
    )  # fmt: skip
    f1 = metrics.evaluation.summary()["mean_average_f1"]
    results[-1]["detail"] = f"{cells.name} against the hand-drawn mask: mean-average F1 {f1:.3f}"

    export = ExportPanel(viewer)
    viewer.window.add_dock_widget(export, name="Export")
    for i in range(export.layer_list.count()):
        item = export.layer_list.item(i)
        item.setCheckState(
            Qt.CheckState.Checked if item.text() == cells.name else Qt.CheckState.Unchecked
        )
    folders = iter(range(1000))

    def new_folder() -> None:  # a new folder per run: no question about replacing files
        export.folder.setText(str(scratch / f"export-{next(folders)}"))

    results.append(
        step_workload(
            "export", ticks, args, export.export,
            lambda: not export.runner.busy and "Wrote" in export.status.text(), new_folder,
        )
    )  # fmt: skip
    results[-1]["detail"] = export.status.text()
    return results


def cancel_workloads(viewer, ticks, args, image: np.ndarray) -> list[dict]:
    """Cancel a U-Net run over a stack once some of its frames are done: the click keeps
    them (:meth:`~napari_cytomask._qt.unet_widgets.UNetSegmentWidget.cancel`), in napari's
    thread. First into a new layer (the last run's cells removed before each run), then
    into the cells of the run before."""
    from napari_cytomask._qt._layers import ALL_POSITIONS
    from napari_cytomask._qt._settings import set_value
    from napari_cytomask._qt.unet_widgets import UNetSegmentWidget

    crops = [image[y : y + 512, x : x + 512] for y in (0, 510) for x in (0, 512)]
    stack = np.stack([crops[k % len(crops)] for k in range(args.stack_frames)])
    viewer.add_image(stack, name="movie", axis_labels=("T", "y", "x"))
    widget = UNetSegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net stack")
    widget.input.setCurrentText("movie")
    widget.tta.setChecked(False)  # the frames' time is not measured, the click's is
    set_value(widget.positions, ALL_POSITIONS)
    results = []
    for into, keep in (("a new layer", False), ("the cells of the run before", True)):

        def started(keep=keep) -> None:
            if not keep and "movie U-Net cells" in viewer.layers:
                viewer.layers.remove("movie U-Net cells")
            widget.segment()
            finished = widget._under_way.finished
            run_loop_until(lambda: len(finished) >= args.cancel_after, args.timeout)

        results.append(
            step_workload(
                f"cancel into {into}", ticks, args, widget.cancel,
                lambda: not widget.runner.busy, started,
            )
        )  # fmt: skip
        results[-1]["detail"] = (
            f"{args.stack_frames} frames of 512², cancelled after {args.cancel_after} or "
            f"more: {widget.status.text().split(':')[0]}"
        )
    return results


def _choose(combo, text: str) -> None:
    combo.setCurrentText(text)
    if combo.currentText() != text:
        items = [combo.itemText(i) for i in range(combo.count())]
        raise SystemExit(f"device {text!r} is not offered; choose one of {items}.")


def show(r: dict) -> None:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"{r['name']} ({r['detail']}):")
    if "worker_s" not in r:
        print(
            f"  timer lateness click to result shown: max {r['whole_max_ms']:6.1f} ms, "
            f"p99 {r['whole_p99_ms']:6.1f} ms (goal < {GOAL_LATENESS_MS:.0f} ms: "
            f"{verdict(r['whole_max_ms'] < GOAL_LATENESS_MS)}); click to result shown median "
            f"{r['click_to_shown_s']:.2f} s"
        )
        return
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
    parser.add_argument("--stack-frames", type=int, default=24, help="frames of the cancel's stack")
    parser.add_argument(
        "--cancel-after", type=int, default=20, help="frames done when Cancel is clicked"
    )
    parser.add_argument("--skip", choices=("sam2",), action="append", default=[])
    parser.add_argument(
        "--data", default=str(DATA),
        help="the shared data folder with usiigaci-phc/",
    )  # fmt: skip
    parser.add_argument(
        "--random-unet", action="store_true", help="a random U-Net instead of the starter model"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: SAM2 256² at input 256, one repeat"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sam2_size, args.sam2_model_size = 256, 256
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
        image, mask = real_image(args)
        viewer.add_image(image, name="phase", metadata={"cytomask": {"role": "input"}})
        viewer.add_labels(mask, name="mask", metadata={"cytomask": {"role": "mask"}})
        results = []
        with tempfile.TemporaryDirectory() as scratch:
            results.append(unet_workload(viewer, ticks, args, Path(scratch), device))
            show(results[-1])
            for result in later_steps(viewer, ticks, args, Path(scratch)):
                results.append(result)
                show(result)
            for result in cancel_workloads(viewer, ticks, args, image):
                results.append(result)
                show(result)
            if "sam2" not in args.skip:
                results.append(sam2_workload(viewer, ticks, args, device))
                show(results[-1])
        print("longest GUI-thread stall per step, click to result shown:")
        width = max(len(r["step"]) for r in results)
        for r in results:
            ok = "ok" if r["whole_max_ms"] < GOAL_LATENESS_MS else "MISSED"
            print(f"  {r['step']:<{width}} {r['whole_max_ms']:7.1f} ms  ({ok})")
    finally:
        ticks.timer.stop()
        viewer.close()
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
