"""Time and peak memory to open a multi-gigabyte tile scan: plugin reader vs reading it whole.

Writes (once) a tile scan, by default 8 stage positions x 4 channels of 8192 x 8192
uint16 (4.3 GB), tile by tile so it is never held in memory: an OME-TIFF with one
series per position and their stage positions, or with ``--format ome-zarr`` an
OME-Zarr image (P, C, Y, X) chunked by tile. Then, each in a fresh subprocess so peak
memory is per method:

1. the plugin's reader: time until the napari layer data tuples exist;
2. the baseline, the whole scan read into one array (tifffile reading every position,
   zarr reading the store's array).

Usage::

    python benchmarks/bench_open_tilescan.py [--format ome-zarr] [--dir benchmarks/_data]
        [--cleanup]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import cpu_model, peak_rss_mib

CHANNELS = ["Brightfield", "GFP", "mCherry", "Cellpose mask"]
PIXEL_UM = 0.65


def write_tilescan(path: Path, positions: int, size: int, tile: int) -> None:
    """Write the tile scan tile by tile; memory stays at a few tiles."""
    import tifffile

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 200, (tile, tile), dtype=np.uint16)
    columns = 4
    step = int(size * 0.9)  # 10 % overlap between neighbouring positions

    def tiles(position: int):
        for channel in range(len(CHANNELS)):
            for row in range(size // tile):
                for col in range(size // tile):
                    if channel == len(CHANNELS) - 1:
                        value = (row * (size // tile) + col) % 50 + 1
                        yield np.full((tile, tile), value, np.uint16)
                    else:
                        yield noise + np.uint16(1000 * (channel + 1) + 10 * position + row)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with tifffile.TiffWriter(partial, bigtiff=True, ome=True) as tif:
        for position in range(positions):
            y, x = divmod(position, columns)
            tif.write(
                tiles(position),
                shape=(len(CHANNELS), size, size),
                dtype=np.uint16,
                tile=(tile, tile),
                metadata={
                    "axes": "CYX",
                    "Name": f"Pos{position}",
                    "PhysicalSizeX": PIXEL_UM,
                    "PhysicalSizeY": PIXEL_UM,
                    "Channel": {"Name": CHANNELS},
                    "Plane": {
                        "PositionX": [x * step * PIXEL_UM] * len(CHANNELS),
                        "PositionY": [y * step * PIXEL_UM] * len(CHANNELS),
                        "PositionXUnit": ["µm"] * len(CHANNELS),
                        "PositionYUnit": ["µm"] * len(CHANNELS),
                    },
                },
            )
    partial.rename(path)


def write_omezarr(path: Path, positions: int, size: int, tile: int) -> None:
    """The same scan as one OME-Zarr image of axes P, C, Y, X, written chunk by chunk."""
    import zarr

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 200, (tile, tile), dtype=np.uint16)
    partial = path.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    root = zarr.open_group(partial, mode="w", zarr_format=2)
    shape = (positions, len(CHANNELS), size, size)
    array = root.create_array("0", shape=shape, chunks=(1, 1, tile, tile), dtype=np.uint16)
    axes = [{"name": "p"}, {"name": "c", "type": "channel"},
            *({"name": n, "type": "space", "unit": "micrometer"} for n in "yx")]  # fmt: skip
    scale = [{"type": "scale", "scale": [1.0, 1.0, PIXEL_UM, PIXEL_UM]}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes,
         "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]  # fmt: skip
    root.attrs["omero"] = {"channels": [{"label": name} for name in CHANNELS]}
    tiles = size // tile
    for position in range(positions):
        for channel in range(len(CHANNELS)):
            for row in range(tiles):
                for col in range(tiles):
                    if channel == len(CHANNELS) - 1:
                        block = np.full((tile, tile), (row * tiles + col) % 50 + 1, np.uint16)
                    else:
                        block = noise + np.uint16(1000 * (channel + 1) + 10 * position + row)
                    window = (
                        slice(row * tile, (row + 1) * tile),
                        slice(col * tile, (col + 1) * tile),
                    )
                    array[(position, channel, *window)] = block
    partial.rename(path)


def child(method: str, path: str) -> None:
    """Run one method in this process and print its figures as JSON."""
    start = time.perf_counter()
    if method == "plugin":
        from napari_cytomask._reader import get_reader

        imported = time.perf_counter()
        layers = get_reader(path)(path)
        summary = [f"{kwargs['name']}:{kind}{tuple(data.shape)}" for data, kwargs, kind in layers]
    elif method == "zarr":
        import zarr

        imported = time.perf_counter()
        out = np.asarray(zarr.open_group(path, mode="r")["0"])
        summary = [f"array{out.shape}"]
    else:
        import tifffile

        imported = time.perf_counter()
        with tifffile.TiffFile(path) as tif:
            series = tif.series
            out = np.empty((len(series), *series[0].shape), series[0].dtype)
            for index, one in enumerate(series):
                one.asarray(out=out[index])
        summary = [f"array{out.shape}"]
    done = time.perf_counter()
    peak_mb = peak_rss_mib()
    print(
        json.dumps(
            {
                "import_s": imported - start,
                "open_s": done - imported,
                "peak_mb": peak_mb,
                "result": summary,
            }
        )
    )


def measure(method: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", method, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("tiff", "ome-zarr"), default="tiff")
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / "_data")
    parser.add_argument("--positions", type=int, default=8)
    parser.add_argument("--size", type=int, default=8192, help="rows and columns per tile")
    parser.add_argument("--tile", type=int, default=512, help="TIFF tile size")
    parser.add_argument("--cleanup", action="store_true", help="delete the file afterwards")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    zarr_store = args.format == "ome-zarr"
    suffix = ".ome.zarr" if zarr_store else ".ome.tif"
    path = args.dir / f"tilescan_{args.positions}x{len(CHANNELS)}x{args.size}{suffix}"
    if not path.exists():
        print(f"writing {path} ...", flush=True)
        start = time.perf_counter()
        write = write_omezarr if zarr_store else write_tilescan
        write(path, args.positions, args.size, args.tile)
        print(f"  written in {time.perf_counter() - start:.1f} s", flush=True)
    baseline_name = "zarr (whole array)" if zarr_store else "tifffile (all series)"
    try:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        size_gb = sum(p.stat().st_size for p in files) / 1e9
        plugin = measure("plugin", path)
        baseline = measure("zarr" if zarr_store else "tifffile", path)
    finally:
        if args.cleanup:
            if zarr_store:
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    print(f"machine: {cpu_model()}, Python {platform.python_version()}")
    print(
        f"file: {path.name}, {size_gb:.2f} GB, {args.positions} positions x "
        f"{len(CHANNELS)} channels x {args.size}x{args.size} uint16, tiles {args.tile}"
    )
    print(f"plugin layers: {', '.join(plugin['result'])}")
    for label, figures in (("plugin reader", plugin), (baseline_name, baseline)):
        print(
            f"{label:>22}: open {figures['open_s']:8.3f} s  peak RSS {figures['peak_mb']:8.0f} MB"
            f"  (imports {figures['import_s']:.2f} s)"
        )
    print(
        f"ratio {baseline_name.split()[0]}/plugin: "
        f"time {baseline['open_s'] / plugin['open_s']:.0f}x, "
        f"peak memory {baseline['peak_mb'] / plugin['peak_mb']:.1f}x"
    )
    goal = plugin["open_s"] < 1.0 and plugin["peak_mb"] < 300
    print(f"goal (plugin < 1 s and < 300 MB): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
