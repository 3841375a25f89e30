"""Random command lines for ``cytomask``, as a person could type them, on real and broken files.

Each run (one per seed) makes a folder with small crops of the shared Usiigaci images and
their masks, the packaged sample scan, a small random-weight U-Net, and broken inputs (a
file that is not a TIFF, a text file, an empty and a truncated TIFF, a checkpoint of another kind, a
broken preset, a folder, a read-only folder, a missing file), then runs ``cytomask train``,
``tune``, ``segment``, ``evaluate`` and ``export`` in this process with random options:
mostly sensible values, a third of the time odd ones (negative, zero, huge, not a number,
the broken and misplaced paths above). A command that runs longer than ``--seconds`` is
interrupted as Ctrl+C would (a training of 10⁹ epochs).

Outcomes, counted by distinct message:

- raw error: an exception that escaped ``cytomask`` (a traceback), an exit status other
  than 0, 1, 2 and 130, or an error message in Python's own terms ("is not in list",
  "object has no attribute", …);
- message: an error message of the plugin's own, listed for a person to read;
- changed input: an input file whose bytes changed or that is gone (put back before the
  next command; a new file beside the inputs loses nothing), or a file of the shared data
  that was touched.

Run as ``python benchmarks/fuzz_cli.py --seeds 1 2 --commands 300``. Exit status 1 when a
raw error or a changed input was found.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import hashlib
import io
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import imageio.v3 as iio
import tifffile
import torch

from _common import DATA, PYTHON_TERMS, cpu_model
from napari_cytomask import cli
from napari_cytomask._sample_data import sample_scan_path
from napari_cytomask.models.checkpoint import DIR_ENV, describe, save_checkpoint
from napari_cytomask.models.unet import UNetConfig, build_model

#: Exit statuses of ``cytomask``: done, a problem with the inputs, a wrong command line,
#: interrupted.
EXPECTED_EXITS = (0, 1, 2, 130)


def make_inputs(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """The files a run's commands are given, by kind, made in ``folder``: sensible ones and
    odd ones."""
    data = folder / "data"
    for n in (1, 2, 3):  # small crops, in the shared folders' layout
        source, into = DATA / "usiigaci-phc" / f"set{n}", data / f"set{n}"
        into.mkdir(parents=True)
        tifffile.imwrite(into / "raw.tif", tifffile.imread(source / "raw.tif")[:128, :160])
        iio.imwrite(
            into / "instances_ids.png", iio.imread(source / "instances_ids.png")[:128, :160]
        )
    scan = folder / "scan.ome.tif"
    shutil.copy(sample_scan_path(), scan)
    broken = folder / "broken"
    broken.mkdir()
    (broken / "notes.tif").write_bytes(b"not a tiff\n" * 20)
    (broken / "notes.txt").write_text("no image either\n")
    (broken / "empty.tif").write_bytes(b"")
    whole = (data / "set1" / "raw.tif").read_bytes()
    (broken / "truncated.tif").write_bytes(whole[: len(whole) // 2])
    (broken / "preset.json").write_text('{"method": "unet", "unet": {"model": 3')
    (broken / "other.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    config = UNetConfig(encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(32, 16, 8),
                        tile_size=64)  # fmt: skip
    torch.manual_seed(0)
    model, _ = build_model(config)
    tiny = save_checkpoint(folder / "tiny.safetensors", model, describe(config))
    read_only = folder / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    images = [str(data / "set1" / "raw.tif"), str(data / "set*" / "raw.tif"), str(scan)]
    masks = [str(data / "set1" / "instances_ids.png"), str(data / "set*" / "instances_ids.png")]
    bad = [str(broken / "notes.tif"), str(broken / "notes.txt"), str(broken / "empty.tif"),
           str(broken / "truncated.tif"), str(folder / "missing.tif"), str(folder / "data"),
           "/proc/self/status", "", str(folder / "nothing*" / "*.tif")]  # fmt: skip
    # (sensible, odd) values of each kind, as NUMBERS.
    return {
        "image": (images, bad),
        "mask": (masks, [*bad, *images]),
        "model": ([str(tiny), "starter"], [str(broken / "other.safetensors"), str(scan),
                  str(folder / "missing.safetensors"), "no such model"]),
        "preset": ([], [str(broken / "preset.json"), str(scan), str(folder / "missing.json")]),
        "out": ([str(folder / "out"), str(folder / "out2")],
                [str(read_only), str(scan), "/proc", "x" * 300, str(data / "set1")]),
        "checkpoint_out": ([str(folder / "trained.safetensors")],
                           [str(read_only / "m.safetensors"), str(tiny), str(folder / "data"),
                            str(scan)]),
        "csv": ([str(folder / "metrics.csv")],
                [str(read_only / "m.csv"), str(scan), str(data / "set1" / "raw.tif")]),
    }  # fmt: skip


#: Values of each kind of option: sensible ones, then odd ones (given a third of the time).
NUMBERS = {
    "int": (["1", "3", "64", "128", "256"], ["0", "-1", "100000", "1e9", "abc", "nan"]),
    "small": (["0", "1", "2"], ["-1", "5", "x"]),
    "float": (["0.3", "0.5", "0.9", "1"], ["0", "-0.5", "1.5", "nan", "inf", "1e-9", "abc"]),
    "minutes": (["0.02", "0.05"], ["0", "-1", "nan"]),
}
#: Options that take several values.
SEVERAL = {"--channel", "--thresholds", "--input-channel", "--tilescan"}

#: Options of each command: name -> kind of value (None: a flag; a list: its choices).
OPTIONS = {
    "segment": {"--preset": "preset", "--method": ["unet", "sam2", "sam2_guided", "x"],
                "--channel": "small", "-m": "model", "--tile-size": "int", "--overlap": "int",
                "--batch-size": "int", "--tta": None, "--no-tta": None, "--resample": None,
                "--no-resample": None, "--pixel-size": "float",
                "--interior-threshold": "float", "--foreground-threshold": "float",
                "--min-size": "int", "--sam2-model": "model", "--points-per-side": "int",
                "--pred-iou-thresh": "float", "--stability-score-thresh": "float",
                "--min-area": "int", "--max-area-fraction": "float",
                "--format": ["tiff", "ome-tiff", "ome-zarr", "png"], "--chunked-above": "float",
                "--chunk-size": "int", "--overwrite": None, "--scheduler": ["synchronous"],
                "--device": ["cpu", "auto", "cuda", "mps", "x"], "--threads": "small",
                "-q": None},
    "evaluate": {"--mask-channel": "small", "--stack": ["auto", "frames", "volume"],
                 "--thresholds": "float", "--overwrite": None, "-q": None},
    "export": {"--format": ["tiff", "ome-tiff", "png", "npy"], "--mask-channel": "small",
               "--coco": None, "--no-tables": None, "--overwrite": None, "-q": None},
    "tune": {"--batch-size": "small", "--tta": None, "--no-tta": None,
             "--device": ["cpu", "cuda"], "--threads": "small", "--tilescan": "image",
             "--input-channel": "small", "--mask-channel": "small", "--pixel-size": "float",
             "-q": None},
    "train": {"--overwrite": None, "--tilescan": "image", "--input-channel": "small",
              "--mask-channel": "small", "--pixel-size": "float",
              "--encoder": ["tu-resnet10t", "resnet18", "nope"], "--encoder-depth": "small",
              "--targets": ["interior_boundary", "foreground"], "--from": "model",
              "--resume": "model", "--epochs": "int", "--steps-per-epoch": "small",
              "--batch-size": "small", "--crop-size": "int", "--learning-rate": "float",
              "--patience": "small", "--boundary-width": "small",
              "--split": ["8,1,1", "1,0,0", "0,0,1", "a,b,c"], "--seed": "small",
              "--split-from": "model", "--time-limit": "minutes", "--workers": "small",
              "--no-tune": None, "--threads": "small"},
}  # fmt: skip

#: What each command needs (its inputs and where its results go), each given most of the
#: time: ``"inputs"`` are positional.
NEEDED = {
    "segment": {"inputs": "image", "-o": "out"},
    "evaluate": {"--pred": "mask", "--gt": "mask", "-o": "csv"},
    "export": {"inputs": "mask", "-o": "out"},
    "tune": {"inputs": "model", "--images": "image", "--masks": "mask"},
    "train": {"--images": "image", "--masks": "mask", "-o": "checkpoint_out"},
}

#: Options every training is given first (a later random one may replace them): a tiny
#: network, so that a command takes seconds, not hours.
TRAIN_BASE = ["--encoder", "tu-resnet10t", "--encoder-depth", "3", "--crop-size", "64",
              "--steps-per-epoch", "2", "--epochs", "2", "--encoder-weights", "none",
              "--device", "cpu", "--threads", "1"]  # fmt: skip


def value(rng: random.Random, kind, inputs: dict[str, tuple[list[str], list[str]]]) -> str:
    """A value of ``kind``: mostly a sensible one, a third of the time an odd one."""
    if isinstance(kind, list):
        return rng.choice(kind)
    sensible, odd = NUMBERS[kind] if kind in NUMBERS else inputs[kind]
    return rng.choice(odd if not sensible or rng.random() < 1 / 3 else sensible)


def random_command(rng: random.Random, inputs: dict) -> list[str]:
    """A command line: a command, mostly what it needs, and random options."""
    command = rng.choice(list(OPTIONS))
    argv, positional = [command, *(TRAIN_BASE if command == "train" else [])], []
    for option, kind in NEEDED[command].items():
        if rng.random() < 0.9:
            if option == "inputs":  # tune takes one checkpoint, the others several files
                count = 1 if command == "tune" else rng.choice([1, 1, 2])
                positional = [value(rng, kind, inputs) for _ in range(count)]
            else:
                argv += [option, value(rng, kind, inputs)]
    for option in rng.sample(list(OPTIONS[command]), rng.randint(0, 5)):
        kind = OPTIONS[command][option]
        if kind is None:
            argv.append(option)
        else:
            several = rng.choice([1, 1, 2]) if option in SEVERAL else 1
            argv += [option, *(value(rng, kind, inputs) for _ in range(several))]
    if command == "segment" and rng.random() < 0.8 and "--scheduler" not in argv:
        argv += ["--scheduler", "synchronous"]  # in this process, so a slow run can be stopped
    # Positional inputs first: after an option of several values they would be its values.
    return [argv[0], *positional, *argv[1:]]


def copy(source: Path, target: Path) -> None:
    """``source`` (a file or folder) copied to ``target``, replacing what is there."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def digest(paths) -> dict[str, str]:
    """SHA-256 of each file under ``paths``."""
    out = {}
    for root in paths:
        for path in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run(argv: list[str], seconds: float) -> tuple[object, str]:
    """``cytomask argv`` in this process, interrupted after ``seconds``: its exit status (or
    the exception that escaped it) and what it printed."""
    printed = io.StringIO()
    done, fired = threading.Event(), threading.Event()

    def stop() -> None:
        if not done.wait(seconds):
            fired.set()
            _thread.interrupt_main()

    watcher = threading.Thread(target=stop, daemon=True)
    watcher.start()
    status: object = None
    try:
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                status = cli.main(argv)
        finally:
            done.set()
            watcher.join()
            if fired.is_set():
                time.sleep(0.1)  # an interruption that came as cytomask returned lands here
    except KeyboardInterrupt as err:
        if status is None:  # it escaped cytomask, which says "interrupted" in its own words
            status = err
            printed.write(traceback.format_exc())
        # else it came after cytomask returned: its status stands
    except BaseException as err:  # noqa: BLE001 - what escaped is the finding
        status = err
        printed.write(traceback.format_exc())
    return status, printed.getvalue()


def fuzz(seed: int, n_commands: int, seconds: float) -> dict:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-cli-{seed}-"))
    pristine = Path(tempfile.mkdtemp(prefix=f"fuzz-cli-{seed}-inputs-"))  # to put back
    home, cwd = os.environ.get("HOME"), os.getcwd()
    os.environ["HOME"] = str(folder)
    os.environ[DIR_ENV] = str(folder / "models")
    os.chdir(folder)
    try:
        inputs = make_inputs(folder)
        kept = [folder / "data", folder / "scan.ome.tif", folder / "broken"]
        before = digest(kept)
        for path in kept:
            copy(path, pristine / path.name)
        outside = {p: p.stat().st_mtime_ns for p in DATA.rglob("*") if p.is_file()}
        seen: dict[str, dict] = {}
        statuses: Counter = Counter()  # how each command ended
        start = time.monotonic()
        for n in range(n_commands):
            argv = random_command(rng, inputs)
            status, printed = run(argv, seconds)
            statuses[status if isinstance(status, int) else type(status).__name__] += 1
            line = f"cytomask {' '.join(argv)}"
            raw = not (isinstance(status, int) and status in EXPECTED_EXITS) or any(
                term in printed for term in PYTHON_TERMS
            )
            errors = [t for t in printed.splitlines() if ": error: " in t or "Traceback" in t]
            if raw:
                last = printed.strip().splitlines()[-1:] or [repr(status)]
                found = [f"raw: {last[0][:200]}"]
            else:
                found = [f"message: {errors[-1][:200]}"] if errors else []
            after = digest(kept)
            if after != before:  # put back, so that the next change is seen too
                # A new file beside the inputs (-o into their folder) loses nothing.
                changed = sorted(p for p in before if after.get(p) != before[p])
                if changed:
                    found.append(f"changed: {changed[:3]}")
                for path in kept:
                    copy(pristine / path.name, path)
            for key in found:
                entry = seen.setdefault(key, {"count": 0, "command": line,
                                              "text": printed[-3000:]})  # fmt: skip
                entry["count"] += 1
            if n % 25 == 24:
                print(f"  seed {seed}: {n + 1} commands, {time.monotonic() - start:.0f} s",
                      flush=True)  # fmt: skip
        touched = [str(p) for p, t in outside.items() if p.stat().st_mtime_ns != t]
        if touched:
            seen[f"changed: {touched[:3]}"] = {"count": len(touched), "command": "", "text": ""}
        return {"commands": n_commands, "seconds": time.monotonic() - start, "seen": seen,
                "statuses": statuses}  # fmt: skip
    finally:
        os.chdir(cwd)
        if home is not None:
            os.environ["HOME"] = home
        (folder / "read-only").chmod(0o755)
        shutil.rmtree(pristine, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--commands", type=int, default=300, help="commands per seed")
    parser.add_argument("--seconds", type=float, default=20, help="before a command is stopped")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores")
    raw, messages, changed, total, total_s = {}, {}, {}, 0, 0.0
    statuses: Counter = Counter()
    for seed in args.seeds:
        result = fuzz(seed, args.commands, args.seconds)
        total += result["commands"]
        total_s += result["seconds"]
        statuses += result["statuses"]
        for key, entry in result["seen"].items():
            kind, _, text = key.partition(": ")
            into = {"raw": raw, "message": messages, "changed": changed}[kind]
            into.setdefault(text, {**entry, "count": 0, "seed": seed})["count"] += entry["count"]
        print(f"seed {seed}: {result['commands']} commands in {result['seconds']:.0f} s")
    for text, entry in {**raw, **changed}.items():
        print(f"\nRAW ERROR OR CHANGED INPUT ({entry['count']}x, seed {entry['seed']}): {text}")
        print(f"  {entry['command']}\n{entry['text']}")
    print("\nthe plugin's own error messages seen:")
    for text, entry in sorted(messages.items(), key=lambda item: -item[1]["count"]):
        print(f"  {entry['count']:4d}x {text[:180]}")
    ended = {0: "done", 1: "refused the inputs", 2: "refused the command line",
             130: "stopped after --seconds"}  # fmt: skip
    print("\nhow the commands ended: " + ", ".join(
        f"{n} {ended.get(status, status)}" for status, n in sorted(statuses.items(), key=str)
    ))  # fmt: skip
    print(
        f"\n{total} commands in {total_s:.0f} s over {len(args.seeds)} seeds: {len(raw)} raw "
        f"errors, {len(changed)} changed inputs, {len(messages)} distinct messages of the "
        "plugin's own"
    )
    return 1 if raw or changed else 0


if __name__ == "__main__":
    sys.exit(main())
