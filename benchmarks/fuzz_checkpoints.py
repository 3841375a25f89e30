"""Fuzz the U-Net checkpoint reader with damaged copies of the starter model's file.

Each case is a copy of ``cytomask-starter-phc.safetensors`` with one fault, as a copy cut
short, a disk error or a hand edit of its description leaves it:

- the file cut at half or inside its header, its header length made huge, every byte 0;
- a tensor's data type or shape changed in the header, a tensor left out, the description
  left out or made invalid JSON;
- a byte of the weights flipped, or the first 2,000 bytes of weights set to NaN;
- each top-level entry of the description set to ``null`` and to ``"x"``;
- numbers of the network made impossible (tile size 0, 17, -64 or 10⁹; 0 or 3 input
  channels; an unknown or other encoder; depth 0 or 9; percentiles reversed, empty, not
  numbers or outside 0 to 100; decoder widths of the wrong count or 0; format version -1;
  another checksum);
- the tuned post-processing made impossible (thresholds -1, 2 or NaN; cell sizes -5, 10¹²
  or 0.5) and the pixel size it learnt cells at made no size (text, 0, negative) or
  extreme.

Each case is listed as the dock lists the model folder (``list_checkpoints``), then used
by ``cytomask segment`` on a 256 x 256 field of the sample scan (in this process, as
``benchmarks/fuzz_cli.py`` runs commands). Outcomes:

- refused: listed as unusable with a reason, or ``cytomask`` exits 1 with a message that
  names the file and holds none of Python's own words;
- segmented: the copy works (a fault that changes nothing used, such as the plugin
  version);
- raw error: a traceback, another exit status, Python's own words in a message, or a
  copy listed as usable that ``cytomask`` then refuses without naming it.

Run ``python benchmarks/fuzz_checkpoints.py``; it prints each case's outcome and the
counts. Exit status 1 when a raw error was found.
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from _common import PYTHON_TERMS, cpu_model
from fuzz_cli import run
from napari_cytomask._sample_data import sample_scan_path
from napari_cytomask.io.files import open_scan
from napari_cytomask.models.catalog import starter_path
from napari_cytomask.models.checkpoint import HEADER_KEY, list_checkpoints

#: Seconds a ``cytomask segment`` of a case may take.
SECONDS = 120


def _pack(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def make_cases() -> dict[str, bytes]:
    """Each case's name and the bytes of its file."""
    raw = starter_path().read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    tensors = [k for k in header if k != "__metadata__"]

    def edited(edit: Callable[[dict], None], weights: bytes = body) -> bytes:
        copy = json.loads(json.dumps(header))
        edit(copy)
        return _pack(copy, weights)

    def described(edit: Callable[[dict], None]) -> bytes:
        def apply(copy: dict) -> None:
            desc = json.loads(copy["__metadata__"][HEADER_KEY])
            edit(desc)
            copy["__metadata__"][HEADER_KEY] = json.dumps(desc)

        return edited(apply)

    flipped = bytearray(body)
    flipped[len(body) // 3] ^= 0xFF
    nan = bytearray(body)
    nan[:2000] = b"\xff" * 2000
    cases = {
        "cut at half": raw[: len(raw) // 2],
        "cut in its header": raw[: 8 + n // 2],
        "header length huge": struct.pack("<Q", 2**62) + raw[8:],
        "all bytes 0": bytes(len(raw)),
        "a tensor's data type": edited(lambda h: h[tensors[0]].update(dtype="F32")),
        "a tensor's shape": edited(lambda h: h[tensors[0]].update(shape=[1, 2, 3])),
        "a tensor left out": edited(lambda h: h.pop(tensors[3])),
        "no description": edited(lambda h: h["__metadata__"].pop(HEADER_KEY)),
        "description not JSON": edited(lambda h: h["__metadata__"].update({HEADER_KEY: "{"})),
        "a byte of the weights flipped": edited(lambda h: None, bytes(flipped)),
        "weights NaN": edited(lambda h: None, bytes(nan)),
    }
    description = json.loads(header["__metadata__"][HEADER_KEY])
    entries = [(key, value) for key in description for value in (None, "x")]
    entries += [("tile_size", 0), ("tile_size", 17), ("tile_size", -64), ("tile_size", 10**9),
                ("in_channels", 0), ("in_channels", 3), ("encoder", "nonexistent"),
                ("encoder", "resnet50"), ("encoder_depth", 0), ("encoder_depth", 9),
                ("percentiles", [99.8, 1]), ("percentiles", []), ("percentiles", ["a", "b"]),
                ("percentiles", [-5, 300]), ("decoder_channels", [1]),
                ("decoder_channels", [0, 0, 0, 0]), ("format_version", -1),
                ("weights_sha256", "0" * 64)]  # fmt: skip
    for key, value in entries:
        cases[f"{key} {json.dumps(value)}"] = described(lambda d, k=key, v=value: d.update({k: v}))
    settings = [("interior_threshold", -1), ("interior_threshold", 2),
                ("foreground_threshold", float("nan")), ("min_size", -5), ("min_size", 10**12),
                ("min_size", 0.5)]  # fmt: skip
    for key, value in settings:
        cases[f"postprocess {key} {value}"] = described(
            lambda d, k=key, v=value: d["postprocess"].update({k: v})
        )
    for value in ("bad", [0, 0], [-1, 1], [1e9, 1e9], [1e-9, 1e-9]):
        cases[f"pixel size learnt {json.dumps(value)}"] = described(
            lambda d, v=value: d["training"].update(pixel_size_um=v)
        )
    return cases


def _raw(text: str) -> bool:
    return any(term in text for term in PYTHON_TERMS)


def outcome(path: Path, image: Path, out: Path) -> tuple[str, str]:
    """How ``path`` fares listed and used: ``(outcome, message)``."""
    unusable: list = []
    listed = path in list_checkpoints(path.parent, unusable)
    if not listed:
        (why,) = [text for p, text in unusable if p == path]
        return ("raw error" if _raw(why) or str(path) not in why else "refused"), why
    status, printed = run(["segment", str(image), "-o", str(out), "--model", str(path)], SECONDS)
    lines = [line for line in printed.splitlines() if "error" in line or "cells" in line]
    said = " / ".join(lines)[-400:]
    if status == 0:
        return "segmented", said
    if status != 1 or _raw(printed) or str(path) not in printed:
        return "raw error", f"exit {status}: {printed[-600:]}"
    return "refused", said


def main() -> int:
    print(f"damaged copies of the starter model, on {cpu_model()}")
    counts: Counter = Counter()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        scan = open_scan(sample_scan_path())
        image = folder / "field.tif"
        tifffile.imwrite(image, np.asarray(scan.channels[0].data[0, 300:556, 300:556]))
        for n, (name, data) in enumerate(make_cases().items()):
            models = folder / f"case{n}"
            models.mkdir()
            path = models / "model.safetensors"
            path.write_bytes(data)
            result, said = outcome(path, image, folder / f"out{n}")
            counts[result] += 1
            print(f"{result:9s} {name}: {said.replace(str(models), '…')}", flush=True)
    print(
        f"\n{sum(counts.values())} cases in {time.perf_counter() - start:.0f} s: "
        + ", ".join(f"{counts[k]} {k}" for k in ("refused", "segmented", "raw error"))
    )
    return 1 if counts["raw error"] else 0


if __name__ == "__main__":
    sys.exit(main())
