"""Fuzz the OME-Zarr reader with damaged copies of stores made from the real sample.

Three stores are made from the plugin's sample scan (real Usiigaci phase contrast and its
hand-drawn mask, cut to 4 positions of 256 x 256 pixels, chunks of 128 x 128): the mask
as ``cytomask`` writes a label store, and phase and mask as one image of two channels in
Zarr v2 (NGFF 0.4) and in Zarr v3 (NGFF 0.5). Each case is a copy with one fault, as a
copy cut short, a disk error or a hand edit leaves it:

- a metadata file (``.zattrs``, ``.zgroup``, ``.zarray``, ``zarr.json``) cut at half,
  emptied, or made ``{}``;
- the array's metadata: a size made huge, negative or 0, a chunk size of 0, another data
  type or none that exists, a fill value that is no number;
- the image's metadata: a dataset that is not there, an axis dropped, scales that are no
  numbers, no ``multiscales``, more channel names than channels;
- a chunk file cut short, emptied, zeroed, a byte flipped, or swapped with another chunk.

A missing chunk file is no fault: Zarr reads it as the fill value, as its stores leave out
chunks that hold nothing but it.

Each case is opened as ``benchmarks/fuzz_tiffs.py`` opens its files, and counted the same
way: in its own process, with a time limit and an address-space limit, by the napari
reader (every layer computed) and by the command line's file reader.

Run ``python benchmarks/fuzz_zarr.py``; it prints one line per problem and the counts.
Exit status 1 when any count other than "refused"/"read" is above zero.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fuzz_tiffs import Case, report, run_cases

#: What a fault does to a store (True when it changed it).
Fault = Callable[[Path], bool]


def _sample() -> tuple[np.ndarray, np.ndarray]:
    """Phase contrast and mask of the plugin's sample scan: 4 positions, 256 x 256."""
    from napari_cytomask._sample_data import sample_scan_path
    from napari_cytomask.io.files import open_scan

    scan = open_scan(sample_scan_path())
    phase, mask = (np.asarray(c.data[:, 300:556, 300:556]) for c in scan.channels)
    return phase, mask


def _image_store(path: Path, phase: np.ndarray, mask: np.ndarray, zarr_format: int) -> None:
    """Phase and mask as one NGFF image (P, C, Y, X) of the given Zarr format."""
    import zarr

    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    pixels = np.stack([phase, mask], axis=1)
    array = root.create_array("0", shape=pixels.shape, chunks=(1, 1, 128, 128), dtype=pixels.dtype)
    array[:] = pixels
    axes = [{"name": "p"}, {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]  # fmt: skip
    scale = [{"type": "scale", "scale": [1.0, 1.0, 0.87, 0.87]}]
    image = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    omero = {"channels": [{"label": "Phase contrast"}, {"label": "Mask (hand-drawn)"}]}
    if zarr_format == 2:
        root.attrs.update({"multiscales": [{"version": "0.4", **image}], "omero": omero})
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [image], "omero": omero}


def make_stores(folder: Path) -> list[Path]:
    """The intact stores the cases are copies of."""
    from napari_cytomask.io.omezarr import create_labels

    phase, mask = _sample()
    labels = folder / "labels.ome.zarr"
    create_labels(labels, mask.shape, chunks=128, name="cells", scale=(1.0, 0.87, 0.87),
                  units=("pixel", "µm", "µm"), axis_labels=("P", "Y", "X"))[:] = mask  # fmt: skip
    stores = [labels]
    for zarr_format in (2, 3):
        stores.append(folder / f"image-v{zarr_format}.ome.zarr")
        _image_store(stores[-1], phase, mask, zarr_format)
    return stores


# -- faults ---------------------------------------------------------------------


def _metadata_files(store: Path) -> list[Path]:
    names = (".zattrs", ".zgroup", ".zarray", "zarr.json")
    return sorted(p for p in store.rglob("*") if p.name in names)


def _chunk_files(store: Path) -> list[Path]:
    metadata = set(_metadata_files(store))
    return sorted(p for p in store.rglob("*") if p.is_file() and p not in metadata)


def _edit_json(path: Path, edit: Callable[[dict], None]) -> bool:
    text = path.read_text()
    before, after = json.loads(text), json.loads(text)
    edit(after)
    path.write_text(json.dumps(after))
    return after != before


def _array_meta(store: Path) -> Path:
    """The metadata file of the image's array (``0``)."""
    return next(p for p in (store / "0" / ".zarray", store / "0" / "zarr.json") if p.exists())


def _group_attrs(meta: dict) -> dict:
    """The NGFF attributes in a group's metadata (v2 ``.zattrs``, v3 ``zarr.json``)."""
    attrs = meta.get("attributes", meta)
    return attrs.get("ome", attrs)


def _group_meta(store: Path) -> Path:
    return next(p for p in (store / ".zattrs", store / "zarr.json") if p.exists())


def _array_fault(edit: Callable[[dict, str, bool], None]) -> Fault:
    """A fault of the array's metadata; ``edit`` gets the metadata, the key of its data
    type, and whether they are Zarr v3's."""

    def apply(store: Path) -> bool:
        path = _array_meta(store)
        v3 = path.name == "zarr.json"
        return _edit_json(path, lambda m: edit(m, "data_type" if v3 else "dtype", v3))

    return apply


def _chunks(meta: dict, v3: bool) -> list:
    return meta["chunk_grid"]["configuration"]["chunk_shape"] if v3 else meta["chunks"]


def _set(target: list, index: int, value) -> None:
    target[index] = value


def _image_fault(edit: Callable[[dict], None]) -> Fault:
    return lambda store: _edit_json(_group_meta(store), lambda m: edit(_group_attrs(m)))


def _chunk_fault(change: Callable[[bytes, bytes], bytes]) -> Fault:
    """A change to the first chunk file's bytes (given another chunk's bytes too)."""

    def apply(store: Path) -> bool:
        first, *others = _chunk_files(store)
        before = first.read_bytes()
        after = change(before, others[-1].read_bytes() if others else b"")
        first.write_bytes(after)
        return after != before

    return apply


def _flip(data: bytes) -> bytes:
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def faults(store: Path) -> list[tuple[str, Fault, bool]]:
    """(name, fault, whether it may change pixels) of every case made from ``store``."""
    cases: list[tuple[str, Fault, bool]] = []
    for meta in _metadata_files(store):
        where = meta.relative_to(store).as_posix()
        for what, change in (("cut at half", lambda t: t[: len(t) // 2]),
                             ("emptied", lambda t: ""), ("made {}", lambda t: "{}")):  # fmt: skip

            def apply(s: Path, where=where, change=change) -> bool:
                path = s / where
                before = path.read_text()
                path.write_text(change(before))
                return path.read_text() != before

            cases.append((f"{where} {what}", apply, False))
    huge = 10**9
    cases += [
        ("size made huge", _array_fault(lambda m, d, v3: _set(m["shape"], -2, huge)), False),
        ("size negative", _array_fault(lambda m, d, v3: _set(m["shape"], -1, -5)), False),
        ("size 0", _array_fault(lambda m, d, v3: _set(m["shape"], 0, 0)), False),
        ("chunk size 0", _array_fault(lambda m, d, v3: _set(_chunks(m, v3), -1, 0)), False),
        ("another data type",
         _array_fault(lambda m, d, v3: m.update({d: "float64" if v3 else "<f8"})), True),
        ("no such data type", _array_fault(lambda m, d, v3: m.update({d: "nonsense"})), False),
        ("fill value no number", _array_fault(lambda m, d, v3: m.update(fill_value="x")), False),
        ("dataset not there",
         _image_fault(lambda a: _set(a["multiscales"][0]["datasets"], 0, {"path": "9"})), False),
        ("an axis dropped", _image_fault(lambda a: a["multiscales"][0]["axes"].pop()), False),
        ("scales no numbers", _image_fault(lambda a: _set(
            a["multiscales"][0]["datasets"][0]["coordinateTransformations"], 0,
            {"type": "scale", "scale": ["a"] * len(a["multiscales"][0]["axes"])})), False),
        ("no multiscales", _image_fault(lambda a: a.update(multiscales=[])), False),
        ("more channel names than channels", _image_fault(
            lambda a: a.update(omero={"channels": [{"label": f"c{i}"} for i in range(5)]})),
         False),
        ("chunk cut short", _chunk_fault(lambda b, other: b[:10]), True),
        ("chunk emptied", _chunk_fault(lambda b, other: b""), True),
        ("chunk zeroed", _chunk_fault(lambda b, other: bytes(len(b))), True),
        ("chunk byte flipped", _chunk_fault(lambda b, other: _flip(b)), True),
        ("chunk swapped with another", _chunk_fault(lambda b, other: other), True),
    ]  # fmt: skip
    return cases


def make_cases(folder: Path) -> list[Case]:
    """Write the stores and their damaged copies into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for store in make_stores(folder):
        for name, fault, pixels in faults(store):
            slug = "".join(c if c.isalnum() else "_" for c in name)
            copy = folder / f"{store.name.split('.')[0]}__{slug}.ome.zarr"
            shutil.copytree(store, copy)
            try:
                changed = fault(copy)
            except (KeyError, IndexError, StopIteration):  # not in this kind of store
                changed = False
            if not changed:
                shutil.rmtree(copy)
                continue
            cases.append(Case(f"{store.name}: {name}", copy, store, pixels))
    return cases


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="write the damaged stores here and keep them")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        counts = run_cases(make_cases(args.keep or Path(tmp)))
    return report(counts, time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(_main())
