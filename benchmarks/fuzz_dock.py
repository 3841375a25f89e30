"""Random actions on the plugin's docks in a real viewer, as a person could take them.

Each run (one per seed, in its own process) opens napari at 1280 x 800 with crops of the
packaged real sample and the synthetic tile scan, docks *Segment cytoplasm* (U-Net: the
starter model; SAM2: a small random-weight model, as the tests use), or with
``--docks standalone`` the plugin's other docks (*Channel roles*, *Segmentation metrics*,
*Separate touching cells*, *SAM2 automatic masks*, *Segment cytoplasm (U-Net)*, *Train a
U-Net*, *Export labels*) as tabs of one dock, and takes random
actions: switch steps and tabs, click any enabled button, pick drop-down entries, type
into fields, move sliders and spin boxes to their ends or between, open, close, rename,
hide and paint layers, move through positions, and wait a little or a while. File dialogs
and questions answer at random (real files, a file that is not a TIFF, a missing model, a
read-only folder, Cancel). Whatever it writes stays in the run's folder, its home and working
directory (a read-only folder is read-only to users other than root).

Outcomes, counted by distinct message:

- raw error: an exception that reached Qt's event loop (a traceback), or an error
  notification in Python's own terms ("is not in list", "object has no attribute", …);
- message: an error notification of the plugin's own, listed for a person to read;
- crash: the process died (its last actions are printed).

The canvas is not drawn: under Xvfb, Mesa's software OpenGL crashed in glDrawArrays after
tens to hundreds of random actions of napari alone, without this plugin's dock.

Run under a display, e.g. ``xvfb-run -a -s "-screen 0 1280x800x24" python
benchmarks/fuzz_dock.py --seeds 1 2 3 --actions 1500``. Exit status 1 when a raw error or
a crash was found.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

# torch and torchvision before napari and Qt (imported in the child): importing torch's
# compiler stack after an OpenGL context exists crashes the process under Mesa.
import torch  # noqa: F401
import torchvision  # noqa: F401

from _common import DATA, PYTHON_TERMS, cpu_model

WINDOW = (1280, 800)


def run_child(seed: int, n_actions: int, folder: Path, docks: str) -> None:
    """Take ``n_actions`` random actions on ``docks`` (``"cytomask"`` or ``"standalone"``);
    write what was seen to ``folder/result.json``."""
    import napari
    from napari.utils.notifications import notification_manager
    from qtpy.QtCore import QSettings, Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import (
        QAbstractButton,
        QAbstractSlider,
        QAbstractSpinBox,
        QApplication,
        QComboBox,
        QDialog,
        QFileDialog,
        QLineEdit,
        QMessageBox,
        QTabWidget,
        QVBoxLayout,
        QWidget,
    )

    from napari_cytomask._qt import cytomask_dock, metrics_dock
    from napari_cytomask._qt.channel_roles import ChannelRolesWidget
    from napari_cytomask._qt.cytomask_dock import CytomaskDock
    from napari_cytomask._qt.export_panel import ExportPanel
    from napari_cytomask._qt.metrics_dock import MetricsDock
    from napari_cytomask._qt.sam2_widget import Sam2Widget
    from napari_cytomask._qt.unet_widgets import UNetSegmentWidget, UNetTrainWidget
    from napari_cytomask._qt.watershed_widget import WatershedWidget
    from napari_cytomask._sample_data import make_sample_phase_contrast, make_sample_tilescan
    from napari_cytomask.models.checkpoint import DIR_ENV
    from napari_cytomask.models.sam2_models import build_sam2_model

    rng, pixels = random.Random(seed), np.random.default_rng(seed)
    os.environ[DIR_ENV] = str(folder / "models")
    read_only = folder / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    not_tiff = folder / "notes.tif"
    not_tiff.write_bytes(b"not a tiff\n" * 10)
    sample = DATA / "usiigaci-phc" / "set11"
    files = [str(sample / "raw.tif"), str(sample / "instances_ids.png"), str(not_tiff),
             str(folder / "missing.safetensors"), ""]  # fmt: skip
    folders = [str(folder), str(read_only), ""]
    # Typed into any field, an export folder or an output included: relative ones land in
    # this run's folder (its working directory and home), never among the shared data.
    texts = ["", "abc", str(folder / "missing"), str(folder), str(read_only), "x" * 300,
             "starter", str(folder / "set*" / "raw.tif"), "*.tif", "-1", "1e9"]  # fmt: skip

    # Dialogs and questions answer at random, as a person might.
    QFileDialog.getOpenFileName = staticmethod(lambda *a, **k: (rng.choice(files), ""))
    QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: rng.choice(folders))
    QFileDialog.exec = lambda self: 0
    QDialog.exec = lambda self: rng.choice([0, 1])
    QMessageBox.exec = lambda self: rng.choice(
        [QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No]
    )
    # Questions (ask_yes_no) answer through QMessageBox.exec; where a step asks for a file
    # to save to (a preset, a metrics CSV), it gets one of these.
    for module in (cytomask_dock, metrics_dock):
        module.ask_save_path = lambda parent, title, suggested, kind, suffix: rng.choice(
            [str(folder / f"saved.{suffix}"), str(read_only / f"saved.{suffix}"), ""]
        )

    errors: list[tuple[str, str]] = []  # (kind, text) since the last action
    sys.excepthook = lambda *exc: errors.append(("raw", "".join(traceback.format_exception(*exc))))

    def notified(note) -> None:
        if note.severity.name == "ERROR":
            message = str(note.message)
            raw = getattr(note, "exception", None) is not None or any(
                term in message for term in PYTHON_TERMS
            )
            errors.append(("raw" if raw else "message", message))

    notification_manager.notification_ready.connect(notified)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*WINDOW)
    viewer.window._qt_viewer.canvas.native.setVisible(False)  # see the module's docstring
    real = [(np.asarray(d)[..., :256, :256], m, k) for d, m, k in make_sample_phase_contrast()]
    synthetic = make_sample_tilescan()

    def add(layers) -> None:
        for data, meta, kind in layers:
            getattr(viewer, f"add_{kind}")(data, **meta)

    def add_odd_layer() -> str:
        kind = rng.randrange(8)
        if kind == 0:
            viewer.add_image(pixels.random((64, 64)).astype(np.float32), name="noise")
        elif kind == 1:
            viewer.add_labels(pixels.integers(0, 5, (256, 256), dtype=np.int32), name="ids")
        elif kind == 2:
            viewer.add_labels(np.zeros((4, 256, 256), np.uint8), name="empty labels")
        elif kind == 3:
            viewer.add_image(np.zeros((1, 1), np.uint16), name="one pixel")
        elif kind == 4:
            viewer.add_image(pixels.integers(0, 255, (64, 64, 3), dtype=np.uint8), name="rgb")
        elif kind == 5:
            add(real)
        elif kind == 6:
            add(synthetic)
        else:
            viewer.add_labels(pixels.integers(0, 3, (4, 100, 120), dtype=np.uint16), name="odd")
        return f"open layer(s), now {len(viewer.layers)}"

    add(real)
    sam2 = build_sam2_model("configs/sam2.1/sam2.1_hiera_t.yaml", image_size=64, seed=0)
    if docks == "cytomask":
        settings = QSettings(str(folder / "dock.ini"), QSettings.Format.IniFormat)
        dock = CytomaskDock(viewer, sam2_model_builder=lambda *a: sam2, settings=settings)
        viewer.window.add_dock_widget(dock, name="Segment cytoplasm")
    else:  # one tab each, switched at random as the dock's steps are
        tabs = QTabWidget()
        tabs.setUsesScrollButtons(False)  # all tabs in reach, not two scroll arrows
        for title, widget in (
            ("Roles", ChannelRolesWidget(viewer)),
            ("Metrics", MetricsDock(viewer)),
            ("Watershed", WatershedWidget(viewer)),
            ("SAM2", Sam2Widget(viewer, model_builder=lambda *a: sam2)),
            ("U-Net", UNetSegmentWidget(viewer)),
            ("Train", UNetTrainWidget(viewer)),
            ("Export", ExportPanel(viewer)),
        ):
            tabs.addTab(widget, title)
        dock = QWidget()  # holds the tabs, so they are among the controls used
        QVBoxLayout(dock).addWidget(tabs)
        viewer.window.add_dock_widget(dock, name="Cytomask docks")

    def wait(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.01)

    def on_layers() -> str:
        layers = list(viewer.layers)
        k = rng.random()
        if k < 0.3 or not layers:
            return add_odd_layer()
        layer = rng.choice(layers)
        if k < 0.55:
            viewer.layers.remove(layer)
            return f"close {layer.name!r}"
        if k < 0.7:
            layer.visible = not layer.visible
            return f"toggle {layer.name!r}"
        if k < 0.85 and hasattr(layer, "paint") and np.ndim(layer.data) >= 2:
            data = np.array(layer.data)
            data[(..., slice(0, 20), slice(0, 20))] = rng.randrange(1, 50)
            layer.data = data
            return f"paint {layer.name!r}"
        layer.name = f"{layer.name} renamed"
        return f"rename {layer.name!r}"

    def on_control() -> str:
        kinds = (QAbstractButton, QAbstractSpinBox, QAbstractSlider, QComboBox, QLineEdit,
                 QTabWidget)  # fmt: skip
        shown = [w for w in dock.findChildren(kinds) if w.isVisible() and w.isEnabled()]
        if not shown:
            return "nothing to use"
        w = rng.choice(shown)
        name = w.accessibleName() or type(w).__name__
        if isinstance(w, QTabWidget):
            w.setCurrentIndex(rng.randrange(w.count()))
            return f"tab {w.tabText(w.currentIndex())!r}"
        if isinstance(w, QAbstractButton):
            w.click()
            return f"click {w.text() or name!r}"
        if isinstance(w, QComboBox):
            if w.count():
                w.setCurrentIndex(rng.randrange(w.count()))
            return f"pick {name!r}: {w.currentText()!r}"
        if isinstance(w, QLineEdit):  # typed, so a spin box's validator sees each key
            text = rng.choice(texts)
            w.selectAll()
            QTest.keyClicks(w, text)
            QTest.keyClick(w, Qt.Key.Key_Return)
            return f"type into {name!r}: {text[:40]!r}"
        low, high = w.minimum(), w.maximum()
        value = rng.choice([low, high, low + (high - low) * rng.random()])
        w.setValue(int(round(value)) if isinstance(w.value(), int) else value)
        return f"set {name!r} to {w.value()}"

    def act() -> str:
        k = rng.random()
        if k < 0.12:
            return on_layers()
        if k < 0.16 and viewer.dims.ndim > 2:
            viewer.dims.set_current_step(0, rng.randrange(viewer.dims.nsteps[0]))
            return f"position {viewer.dims.current_step[0]}"
        if k < 0.22:
            seconds = rng.choice([0.05, 0.3, 1.0, 3.0])
            wait(seconds)
            return f"wait {seconds} s"
        return on_control()

    seen: dict[str, dict] = {}
    recent: list[str] = []
    start = time.monotonic()
    with open(folder / "actions.txt", "w") as actions:
        for n in range(n_actions):
            errors.clear()
            try:
                recent.append(act())
            except Exception:  # noqa: BLE001 - an error of the action itself, as Qt would see it
                recent.append("(the action raised)")
                errors.append(("raw", traceback.format_exc()))
            actions.write(f"{n} {recent[-1]}\n")
            actions.flush()
            QApplication.processEvents()
            for kind, text in errors:
                lines = text.strip().splitlines()
                key = f"{kind}: {lines[-1][:200]}"
                entry = seen.setdefault(key, {"count": 0, "text": text[-3000:],
                                              "last_actions": recent[-12:]})  # fmt: skip
                entry["count"] += 1
    wait(5)  # runs still going report their end
    read_only.chmod(0o755)
    result = {"actions": n_actions, "seconds": time.monotonic() - start, "seen": seen}
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    os._exit(0)  # napari's exit handlers wait on workers that may still run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--actions", type=int, default=1500, help="actions per seed")
    parser.add_argument("--time-limit", type=float, default=1200, help="seconds per seed")
    parser.add_argument(
        "--docks",
        choices=("cytomask", "standalone"),
        default="cytomask",
        help="Segment cytoplasm, or the plugin's other docks as tabs of one",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.seeds[0], args.actions, args.child, args.docks)
        return 0
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; window {WINDOW[0]} x {WINDOW[1]}; "
        f"docks: {args.docks}"
    )
    raw, messages, crashes = {}, {}, []
    total_actions, total_s = 0, 0.0
    for seed in args.seeds:
        folder = Path(tempfile.mkdtemp(prefix=f"fuzz-dock-{seed}-"))
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(folder),
                   "--seeds", str(seed), "--actions", str(args.actions),
                   "--docks", args.docks]  # fmt: skip
        started = time.monotonic()
        # Its home and working directory: exports and models go to the run's folder.
        env = {**os.environ, "HOME": str(folder)}
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env,
                                  timeout=args.time_limit)  # fmt: skip
            returncode, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as err:
            returncode, output = "time limit", str(err.stdout or "") + str(err.stderr or "")
        log = folder / "actions.txt"
        taken = log.read_text().splitlines() if log.exists() else []
        total_s += time.monotonic() - started
        result_file = folder / "result.json"
        if returncode != 0 or not result_file.exists():
            total_actions += len(taken)
            crashes.append((seed, returncode, taken[-12:], output.strip().splitlines()[-20:]))
            print(f"seed {seed}: ended early ({returncode}) after {len(taken)} actions")
            continue
        result = json.loads(result_file.read_text())
        total_actions += result["actions"]
        for key, entry in result["seen"].items():
            into = raw if key.startswith("raw: ") else messages
            into.setdefault(key, {**entry, "count": 0, "seed": seed})["count"] += entry["count"]
        print(f"seed {seed}: {result['actions']} actions in {result['seconds']:.0f} s")
    for key, entry in raw.items():
        print(f"\nRAW ERROR ({entry['count']}x, seed {entry['seed']}): {key}\n{entry['text']}")
        print("last actions:\n  " + "\n  ".join(entry["last_actions"]))
    for seed, code, taken, output in crashes:
        print(f"\nCRASH (seed {seed}, {code}); last actions:\n  " + "\n  ".join(taken))
        print("  output: " + "\n  ".join(output))
    print("\nthe plugin's own error messages seen:")
    for key, entry in sorted(messages.items(), key=lambda item: -item[1]["count"]):
        print(f"  {entry['count']:4d}x {key.removeprefix('message: ')[:160]}")
    print(
        f"\n{total_actions} actions in {total_s:.0f} s over {len(args.seeds)} seeds: "
        f"{len(raw)} raw errors, {len(crashes)} crashes or time limits, "
        f"{len(messages)} distinct messages of the plugin's own"
    )
    return 1 if raw or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
