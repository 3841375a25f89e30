"""Fuzz the TIFF reader with corrupted copies of the shared real TIFFs.

Every case is a real TIFF from ``$CYTOMASK_TEST_DATA`` (or a file written from
one) with one fault: truncated, a page chain that loops or points past the end,
a header value changed, inconsistent OME or ImageJ metadata, corrupt compressed
strips, a huge declared size, an empty image, a FIFO. Each case is opened in its
own process, with a time limit and an address-space limit, by the napari reader
(every layer computed) and by the command line's file reader. Outcomes:

- refused: an error naming the file and saying in words what is wrong with it
  (corrupt, truncated, empty, …);
- read: pixels came back; a *silent loss* when their layers, shapes or dtypes
  differ from the intact file's, an all-zero plane appears that the intact
  file does not have, or (for faults outside the pixel bytes) any pixel differs;
- raw traceback: any other exception, or an error that does not name the file or
  speaks only in a library's internal terms;
- hang: the time limit passed;
- big allocation: peak memory above 1 GiB over an idle process (or a
  ``MemoryError``) from a file under 10 MB.

Run ``python benchmarks/fuzz_tiffs.py`` (``--quick`` for the subset the tests
use); it prints one line per problem and the counts. Exit status 1 when any
count other than "refused"/"read" is above zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Real TIFFs the cases are made from, relative to the data folder.
SOURCES = (
    "usiigaci-phc/set1/raw.tif",
    "nuclei-dsb/tests_mask2d.tif",
    "tiff-formats/ome-tiff-samples/singles/multi-channel-z-series.ome.tif",
    "tiff-formats/ome-tiff-samples/singles/181003_multi_pos_time_course_1_MMStack.ome.tif",
    "tiff-formats/imagej-composites/IXMtest_A02_s9.tif",
)
TIME_LIMIT_S = 60
#: Address space of a case's process: large allocations fail instead of swapping.
MEMORY_LIMIT = 4 * 2**30
BIG_ALLOCATION = 2**30
#: What a refusal must say in words (besides the file name) to count as clear.
SENTENCES = ("corrupt", "truncated", "empty image", "no image data", "not a regular file",
             "cannot decode", "too large for memory", "damaged", "computer's memory",
             "no ome-zarr image")  # fmt: skip
SMALL_FILE = 10 * 2**20


@dataclass(frozen=True)
class Case:
    """One corrupted file.

    Attributes
    ----------
    name
        What was done to which source.
    path
        The corrupted file.
    original
        The intact file it was made from (``None`` when it has none, e.g. a FIFO).
    pixels_may_change
        The fault touched pixel bytes, so different pixels are no loss.
    """

    name: str
    path: Path
    original: Path | None
    pixels_may_change: bool = False


# -- making the cases ---------------------------------------------------------


def _derived_sources(data: Path, folder: Path) -> list[Path]:
    """Files written from the real data in layouts the shared files lack."""
    import tifffile

    raw = tifffile.imread(data / SOURCES[0])
    crop = raw[:256, :256]
    stack = np.stack([np.roll(crop, 7 * i, axis=1) for i in range(15)]).reshape(5, 3, 256, 256)
    made = {
        "hyperstack.tif": dict(data=stack, imagej=True, metadata={"axes": "ZCYX"}),
        "deflate.tif": dict(data=raw, compression="zlib", rowsperstrip=64),
        "lzw.tif": dict(data=raw, compression="lzw", rowsperstrip=64),
        "tiled.tif": dict(data=raw, tile=(256, 256)),
    }
    paths = []
    for name, kwargs in made.items():
        path = folder / name
        tifffile.imwrite(path, kwargs.pop("data"), **kwargs)
        paths.append(path)
    return paths


def _layout(path: Path):
    """Byte order, page offsets, tag positions and the next-page pointer of each page."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tiff = tif.tiff
        pages = []
        for index in range(len(tif.pages)):
            page = tif.pages.get(index, aspage=True)
            with open(path, "rb") as fh:
                fh.seek(page.offset)
                n_tags = struct.unpack(tiff.tagnoformat, fh.read(tiff.tagnosize))[0]
            pointer = page.offset + tiff.tagnosize + n_tags * tiff.tagsize
            tags = {tag.code: (tag.valueoffset, tag.dtype, tag.count) for tag in page.tags.values()}
            pages.append((page.offset, pointer, tags))
        return tiff.byteorder, tiff.offsetformat, pages


_TYPE_FORMATS = {3: "H", 4: "I", 16: "Q", 8: "h", 9: "i"}


def _set_tag(data: bytearray, layout, page: int, code: int, value: int) -> bool:
    byteorder, _, pages = layout
    if page >= len(pages) or code not in pages[page][2]:
        return False
    offset, dtype, _ = pages[page][2][code]
    fmt = _TYPE_FORMATS.get(int(dtype))
    if fmt is None:
        return False
    limit = 2 ** (8 * struct.calcsize(fmt)) - 1
    struct.pack_into(byteorder + fmt, data, offset, min(value, limit))
    return True


def _set_next_page(data: bytearray, layout, page: int, target: int) -> bool:
    byteorder, offsetformat, pages = layout
    if page >= len(pages):
        return False
    struct.pack_into(byteorder + offsetformat[-1], data, pages[page][1], target)
    return True


def _edit_description(data: bytearray, layout, pattern: str, replace) -> bool:
    """Rewrite the first page's description in place (same length, padded with spaces)."""
    _, _, pages = layout
    if 270 not in pages[0][2]:
        return False
    offset, _, count = pages[0][2][270]
    text = bytes(data[offset : offset + count]).decode("latin-1")
    new = re.sub(pattern, replace, text, count=1)
    if new == text or len(new) > len(text):
        return False
    data[offset : offset + count] = new.ljust(len(text)).encode("latin-1")
    return True


def _faults(source: Path, layout, size: int):
    """(name, edit, pixels_may_change) for one file; ``edit(bytearray)`` returns False to skip."""
    _, _, pages = layout
    n_pages = len(pages)
    faults = []
    for fraction in (0.1, 0.5, 0.9):
        faults.append((f"truncated at {fraction:.0%}", ("truncate", int(size * fraction)), False))
    faults.append(("truncated after the first page's tags", ("truncate", pages[0][1] + 8), False))
    first, last = pages[0][0], n_pages - 1
    links = {
        "last page links back to the first": (last, first),
        "first page links to itself": (0, first),
        "first page links past the end": (0, size + 1000),
        "first page links into pixel data": (0, size // 2 | 1),
    }
    if n_pages > 2:
        links["second page links back to the first"] = (1, first)
    for name, (page, target) in links.items():
        faults.append((name, lambda d, p=page, t=target: _set_next_page(d, layout, p, t), False))
    edits = {
        256: ("width", (0, 1, 4096, 65535, 200000, 4_000_000_000)),
        257: ("height", (0, 1, 4096, 65535, 200000, 4_000_000_000)),
        258: ("bits per sample", (0, 1, 7, 64)),
        277: ("samples per pixel", (0, 3, 100)),
        278: ("rows per strip", (0, 1, 2**31)),
        259: ("compression", (5, 8, 99)),
        322: ("tile width", (0, 4_000_000_000)),
        323: ("tile length", (0, 4_000_000_000)),
        273: ("first strip offset", (size + 10**6,)),
        279: ("first strip byte count", (0, 2**31)),
        324: ("first tile offset", (size + 10**6,)),
        325: ("first tile byte count", (0, 2**31)),
    }
    for code, (what, values) in edits.items():
        for value in values:
            edit = lambda d, c=code, v=value: _set_tag(d, layout, 0, c, v)  # noqa: E731
            faults.append((f"{what} {value}", edit, False))
    faults.append(("both sizes 65535", lambda d: _set_tag(d, layout, 0, 256, 65535)
                   and _set_tag(d, layout, 0, 257, 65535), False))  # fmt: skip
    faults.append(("both tile-scan sizes 4e9", lambda d: _set_tag(d, layout, 0, 256, 4_000_000_000)
                   and _set_tag(d, layout, 0, 257, 4_000_000_000), False))  # fmt: skip
    for key in ("SizeC", "SizeZ", "SizeT"):
        for value in ("1", "9"):
            faults.append((f"OME {key}={value}", lambda d, k=key, v=value: _edit_description(
                d, layout, rf'{k}="\d+"', f'{k}="{v}"'), False))  # fmt: skip
    faults.append(("OME positions dropped", lambda d: _edit_description(
        d, layout, r'<Image ID="Image:1"', '<Imagx ID="Image:1"'), False))  # fmt: skip
    for key, value in (("images", "99"), ("channels", "5"), ("slices", "9"), ("frames", "7")):
        faults.append((f"ImageJ {key}={value}", lambda d, k=key, v=value: _edit_description(
            d, layout, rf"{k}=\d+", f"{k}={v}"), False))  # fmt: skip
    if "_MMStack" in source.name:
        # One entry of the index map that lists every plane: tifffile makes a list as long
        # as the index it gives, before it reads one plane.
        for axis, what in ((0, "channel"), (2, "time point")):
            faults.append((f"Micro-Manager index {what} 2885681152", lambda d, a=axis: (
                _set_mm_index(d, layout, a, 2_885_681_152)), False))  # fmt: skip
    faults.append(("pixel bytes flipped", ("flip", 0.6), True))
    return faults


def _set_mm_index(data: bytearray, layout, axis: int, value: int) -> bool:
    """Set ``axis`` (channel, slice, frame, position) of the first entry of a Micro-Manager
    file's index map (its offset is in the file's header; entries hold 5 numbers)."""
    order = layout[0]
    (index_at,) = struct.unpack_from(order + "I", data, 12)
    if struct.unpack_from(order + "I", data, index_at)[0] != 3453623:  # the index map's tag
        return False
    struct.pack_into(order + "I", data, index_at + 8 + 4 * axis, value)
    return True


def _apply(data: bytearray, edit, layout) -> bytearray | None:
    if callable(edit):
        return data if edit(data) else None
    kind, arg = edit
    if kind == "truncate":
        return data[:arg]
    # flip: invert 256 bytes inside the first page's first strip or tile
    _, _, pages = layout
    tags = pages[0][2]
    offsets_tag = 273 if 273 in tags else 324
    if offsets_tag not in tags:
        return None
    import tifffile

    return _flip_first_segment(data, arg, tifffile, offsets_tag)


def _flip_first_segment(data: bytearray, where: float, tifffile, _tag) -> bytearray:
    import io

    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        page = tif.pages.first
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    start = offset + int(count * where) - min(128, count // 4)
    stop = min(start + 256, offset + count)
    data[start:stop] = bytes(b ^ 0xA5 for b in data[start:stop])
    return data


def make_cases(data: Path, folder: Path, *, quick: bool = False) -> list[Case]:
    """Write the corrupted files into ``folder``; ``quick``: a small subset for tests."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [data / s for s in SOURCES] + _derived_sources(data, folder)
    quick_names = {
        "raw.tif": ("both sizes 65535", "height 200000", "truncated at 50%"),
        "hyperstack.tif": ("second page links back to the first",),
        "multi-channel-z-series.ome.tif": ("OME SizeZ=9", "OME SizeC=1"),
        "deflate.tif": ("pixel bytes flipped",),
        "tiled.tif": ("both tile-scan sizes 4e9",),
        "tests_mask2d.tif": ("width 0",),
    }
    cases = []
    for source in sources:
        raw = source.read_bytes()
        layout = _layout(source)
        for name, edit, pixels in _faults(source, layout, len(raw)):
            if quick and name not in quick_names.get(source.name, ()):
                continue
            changed = _apply(bytearray(raw), edit, layout)
            if changed is None or bytes(changed) == raw:
                continue
            slug = re.sub(r"\W+", "_", name).strip("_")
            path = folder / f"{source.stem.split('.')[0]}__{slug}{''.join(source.suffixes)}"
            path.write_bytes(bytes(changed))
            cases.append(Case(f"{source.name}: {name}", path, source, pixels))
    fifo = folder / "fifo.tif"
    if hasattr(os, "mkfifo") and not fifo.exists():
        os.mkfifo(fifo)
    if fifo.exists():
        cases.append(Case("a FIFO named .tif", fifo, None))
    return cases


# -- running one case ---------------------------------------------------------


def _summary(arrays) -> list[dict]:
    out = []
    for a in arrays:
        a = np.asarray(a)
        planes = a.reshape(-1, *a.shape[-2:]) if a.ndim >= 2 else a.reshape(1, 1, -1)
        out.append({
            "shape": list(a.shape), "dtype": str(a.dtype),
            "sha1": hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest(),
            "zero_planes": int(sum(not p.any() for p in planes)),
        })  # fmt: skip
    return out


def _attempt(path: str, read) -> dict:
    from napari_cytomask.io.tiff import TiffReadError

    try:
        return {"outcome": "read", "layers": _summary(read(path))}
    except BaseException as exc:  # noqa: BLE001 - every failure is classified
        chain, e = [], exc
        while e is not None:
            chain.append(type(e).__name__)
            e = e.__cause__ or e.__context__
        text = str(exc).lower()
        named = isinstance(exc, (TiffReadError, ValueError)) and path.lower() in text
        clear = any(word in text for word in SENTENCES)
        return {
            "outcome": "refused" if named and clear else "raw",
            "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            "memory_error": "MemoryError" in chain,
        }


def _child(path: str) -> dict:
    """Open one file with the napari reader and with the command line's reader (an OME-Zarr
    store, for benchmarks/fuzz_zarr.py, through the plugin's whole napari reader)."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.files import read_image
    from napari_cytomask.io.tiff import read_tiff

    def reader(p):
        layers = get_reader(p)(p) if p.rstrip("/").endswith(".zarr") else read_tiff(p)
        return [d[0] if isinstance(d, list) else d for d, _, _ in layers]

    return {
        "reader": _attempt(path, reader),
        "read_image": _attempt(path, lambda p: [read_image(p)]),
    }


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_one(path: Path | None, timeout: float = TIME_LIMIT_S) -> dict:
    """Open ``path`` in a fresh process with the limits; ``None`` measures an idle process."""
    args = [sys.executable, __file__, "--child", str(path) if path else ""]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL,
                                preexec_fn=_limit_memory)  # fmt: skip
        start = time.monotonic()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                return {"hang": True, "seconds": timeout, "peak": usage.ru_maxrss * 1024}
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace").strip().splitlines()
    result = {"hang": False, "seconds": time.monotonic() - start, "peak": usage.ru_maxrss * 1024}
    try:
        result.update(json.loads(text[-1]))
    except (IndexError, json.JSONDecodeError):
        result["crash"] = f"process ended with status {proc.returncode}"
    return result


def _loss(got: dict, intact: dict, pixels_may_change: bool) -> str | None:
    a, b = got["layers"], intact["layers"]
    if len(a) != len(b):
        return f"{len(a)} layer(s) instead of {len(b)}"
    for x, y in zip(a, b, strict=True):
        if (x["shape"], x["dtype"]) != (y["shape"], y["dtype"]):
            return f"shape {x['shape']} {x['dtype']} instead of {y['shape']} {y['dtype']}"
        if x["zero_planes"] > y["zero_planes"]:
            return f"{x['zero_planes'] - y['zero_planes']} plane(s) read as zeros"
        if not pixels_may_change and x["sha1"] != y["sha1"]:
            return "different pixels"
    return None


def classify(case: Case, result: dict, intact: dict | None, baseline: int) -> list[str]:
    """The problems of one case's result: hang, raw, loss, big allocation (empty when fine)."""
    problems = []
    if result["hang"]:
        return [f"hang: no answer within {result['seconds']:.0f} s"]
    if "crash" in result:
        return [f"raw: {result['crash']}"]
    size = case.path.stat().st_size if case.path.is_file() else 0
    for api in ("reader", "read_image"):
        got = result[api]
        if got["outcome"] == "raw":
            problems.append(f"raw ({api}): {got['error']}")
        elif got["outcome"] == "read" and intact is not None:
            loss = _loss(got, intact[api], case.pixels_may_change)
            if loss:
                problems.append(f"loss ({api}): {loss}")
        if size < SMALL_FILE and got.get("memory_error"):
            problems.append(f"big allocation ({api}): MemoryError")
    if size < SMALL_FILE and result["peak"] - baseline > BIG_ALLOCATION:
        problems.append(f"big allocation: {(result['peak'] - baseline) / 2**30:.1f} GiB")
    return problems


def fuzz(data: Path, folder: Path, *, quick: bool = False, echo=print) -> dict[str, int]:
    """Make the cases, run each, print the problems; return the counts."""
    return run_cases(make_cases(data, folder, quick=quick), echo)


def run_cases(cases: list[Case], echo=print) -> dict[str, int]:
    """Run each case, print its problems; return the counts."""
    baseline = run_one(None)["peak"]
    intact_results: dict[Path, dict] = {}
    counts = dict.fromkeys(("cases", "refused", "read", "hangs", "silent losses",
                            "raw tracebacks", "big allocations"), 0)  # fmt: skip
    counts["cases"] = len(cases)
    for case in cases:
        intact = None
        if case.original is not None:
            if case.original not in intact_results:
                intact_results[case.original] = run_one(case.original)
            intact = intact_results[case.original]
        result = run_one(case.path)
        problems = classify(case, result, intact, baseline)
        for problem in problems:
            echo(f"{case.name}: {problem}")
            key = problem.split(":")[0].split(" (")[0]
            key = {"hang": "hangs", "raw": "raw tracebacks", "loss": "silent losses",
                   "big allocation": "big allocations"}[key]  # fmt: skip
            counts[key] += 1
        if not result["hang"] and "crash" not in result:
            counts["read" if result["reader"]["outcome"] == "read" else "refused"] += 1
    return counts


def child_main(child: str) -> int:
    """A case's process (``--child PATH``; an empty PATH: an idle process)."""
    if child:
        print(json.dumps(_child(child)))
    else:
        import napari_cytomask._reader  # noqa: F401 - an idle process with the same imports
        import napari_cytomask.io.files  # noqa: F401
        import napari_cytomask.io.tiff  # noqa: F401

        print(json.dumps({}))
    return 0


def report(counts: dict[str, int], seconds: float) -> int:
    """Print the counts; the exit status: 1 when any count but refused and read is above 0."""
    print(f"{counts['cases']} cases in {seconds:.0f} s "
          f"({counts['refused']} refused with the file named, {counts['read']} read): "
          f"{counts['hangs']} hangs, {counts['silent losses']} silent losses, "
          f"{counts['raw tracebacks']} raw tracebacks, "
          f"{counts['big allocations']} allocations above 1 GiB "
          "from a file under 10 MB")  # fmt: skip
    bad = counts["hangs"] + counts["silent losses"] + counts["raw tracebacks"]
    return 1 if bad + counts["big allocations"] else 0


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small subset the tests run")
    parser.add_argument("--keep", type=Path, help="write the corrupted files here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child_main(args.child)
    from _common import DATA  # run as a script: the test suite imports this file alone

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        counts = fuzz(DATA, args.keep or Path(tmp), quick=args.quick)
    return report(counts, time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(_main())
