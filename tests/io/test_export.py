import csv
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pycocotools.mask as cocomask
import pytest
import tifffile
from skimage.measure import regionprops

from napari_cytomask.io.export import (
    ExportExists,
    LabelsExport,
    cell_counts,
    coco_annotations,
    export_labels,
    exported_fields,
    exporting,
    object_columns,
    object_rows,
    reopened_result,
    safe_file_name,
)
from napari_cytomask.io.tiff import read_tiff
from napari_cytomask.progress import drain
from napari_cytomask.rle import coco_rle


@pytest.fixture(scope="module")
def real(shared_data):
    labels = iio.imread(shared_data / "usiigaci-phc" / "set2" / "instances_ids.png")
    image = tifffile.imread(shared_data / "usiigaci-phc" / "set2" / "raw.tif")
    return labels, image


@pytest.mark.parametrize("seed", range(4))
def test_rle_equals_pycocotools(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((37, 23)) > 0.6
    mask[0, 0] = seed % 2  # starting on foreground and on background
    assert (
        coco_rle(mask)["counts"]
        == cocomask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
    )


def test_annotations_decode_to_the_real_cells(real):
    labels, _ = real
    ids = np.unique(labels)[1:]
    features = {"label": ids, "predicted_iou": np.linspace(0.5, 1, len(ids))}
    coco = coco_annotations(
        LabelsExport("cells", labels, features=features), score_column="predicted_iou"
    )
    assert len(coco["annotations"]) == len(ids) > 30
    for ann in coco["annotations"][::7]:
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"]}
        np.testing.assert_array_equal(cocomask.decode(rle).astype(bool), labels == ann["label"])
        assert ann["area"] == int((labels == ann["label"]).sum())
        expected = features["predicted_iou"][np.searchsorted(ids, ann["label"])]
        assert ann["score"] == pytest.approx(expected)
    x, y, w, h = coco["annotations"][0]["bbox"]
    region = regionprops((labels == coco["annotations"][0]["label"]).astype(np.uint8))[0]
    assert (y, x, y + h, x + w) == region.bbox
    # The image is named after the file the labels came from; a stack's frames say where.
    assert [image["file_name"] for image in coco["images"]] == ["cells"]  # no source
    stack = LabelsExport("cells", np.stack([labels] * 2), source="/data/scan.ome.tif",
                         axis_labels=("T", "Y", "X"))  # fmt: skip
    images = coco_annotations(stack)["images"]
    assert [(i["file_name"], i["frame"], i["t"]) for i in images] == [
        ("scan.ome.tif[0]", 0, 0), ("scan.ome.tif[1]", 1, 1)
    ]  # fmt: skip
    one = coco_annotations(LabelsExport("cells", labels, source="/data/raw.tif"))["images"][0]
    assert one["file_name"] == "raw.tif"


def test_object_table_measures_every_cell_and_channel(real):
    labels, image = real
    rows = object_rows(
        LabelsExport(
            "cells", labels, scale=(0.5, 0.5), units=("µm", "µm"), intensities={"phase": image}
        )
    )
    ids = np.unique(labels)[1:]
    assert [r["label"] for r in rows] == list(ids)
    first = rows[0]
    mask = labels == first["label"]
    assert first["area"] == mask.sum()
    assert first["area_um2"] == pytest.approx(mask.sum() * 0.25)
    assert first["mean_phase"] == pytest.approx(image[mask].mean())
    assert first["centroid_y"] == pytest.approx(np.argwhere(mask)[:, 0].mean())
    assert 0 <= first["eccentricity"] < 1


def test_shape_is_measured_in_micrometres_where_pixels_are_not_square(real):
    """Eccentricity was measured in pixels: the same cells stored with 0.87 x 0.435 µm
    pixels (each column twice) had another eccentricity than with square 0.87 µm ones.
    The columns named in pixels stay in pixels."""
    labels, _ = real
    square = object_rows(LabelsExport("x", labels, scale=(0.87, 0.87), units=("µm", "µm")))
    wide = np.repeat(labels, 2, axis=1)
    rows = object_rows(LabelsExport("x", wide, scale=(0.87, 0.435), units=("µm", "µm")))
    assert [r["label"] for r in rows] == [r["label"] for r in square]
    for row, same in zip(rows, square, strict=True):
        assert row["eccentricity"] == pytest.approx(same["eccentricity"], abs=0.005)
        assert row["area_um2"] == pytest.approx(same["area_um2"])
        assert row["centroid_y_um"] == pytest.approx(same["centroid_y_um"])
        mask = wide == row["label"]
        assert row["area"] == mask.sum() == 2 * same["area"]
        assert (row["centroid_y"], row["centroid_x"]) == pytest.approx(
            tuple(np.argwhere(mask).mean(axis=0))
        )
        assert (row["bbox_min_x"], row["bbox_max_x"]) == (2 * same["bbox_min_x"],
                                                           2 * same["bbox_max_x"])  # fmt: skip


@pytest.mark.parametrize("strip_rows", [None, 7])
def test_object_table_is_what_regionprops_measures_of_every_kind_of_cell(strip_rows, monkeypatch):
    """Each cell was measured by regionprops, one at a time; measured all at once, every
    column is still regionprops' (eccentricity with non-square pixels in µm too), for cells
    in pieces, with holes, of one pixel, lines, sparse ids up to 2**64 - 1 and NaN in an
    image (left out of the means, as Fiji leaves NaN out: one NaN pixel left a cell's mean
    empty); and so when a frame is summed in strips (of 7 rows here), as a mosaic is."""
    from napari_cytomask.io import export as module

    if strip_rows:
        monkeypatch.setattr(module, "_STRIP_PIXELS", strip_rows * 50)
    rng = np.random.default_rng(7)
    small = rng.integers(0, 30, (3, 40, 50)).astype(np.uint8)  # cells in pieces, with holes
    small[1] = 0
    small[1, 10:20, 10:20] = 30
    small[1, 13:17, 13:17] = 0  # a ring
    small[1, 2, 2] = 31  # one pixel
    small[1, 30, 5:45] = 32  # lines: across, down, diagonal
    small[1, 22:38, 47] = 33
    small[1, np.arange(22, 32), np.arange(20, 30)] = 34
    small[1, 34:37, 2:4] = 35
    small[2] *= rng.random((40, 50)) < 0.4  # scattered pixels on a background
    ids = np.zeros(36, np.uint64)
    ids[1:] = np.sort(rng.choice(2**20 - 1, 35, replace=False) + 1).astype(np.uint64) << 44
    ids[-1] = 2**64 - 1
    gfp = rng.normal(100, 20, small.shape)
    # Inside a cell of each frame; the one-pixel cell has no pixel that is a number.
    gfp[0, 5, 5], gfp[1, 15, 12], gfp[1, 2, 2] = np.nan, np.inf, np.nan
    dapi = rng.integers(0, 60000, small.shape).astype(np.uint16)
    for scale, units in (((1, 0.5, 0.25), ("pixel", "µm", "µm")), (None, None)):
        export = LabelsExport("x", ids[small], scale=scale, units=units,
                              intensities={"gfp": gfp, "dapi": dapi})  # fmt: skip
        spacing = None if scale is None else scale[1:]
        expected = []
        for f, frame in enumerate(small):
            for region in regionprops(frame, spacing=spacing):
                pixels = tuple(region.coords.T)
                row = {"frame": f, "label": int(ids[region.label]), "area": region.num_pixels,
                       "centroid_y": pixels[0].mean(), "centroid_x": pixels[1].mean(),
                       **dict(zip(["bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"],
                                  region.bbox, strict=True)),
                       "eccentricity": region.eccentricity}  # fmt: skip
                if scale is not None:
                    row["area_um2"] = region.area
                    row["centroid_y_um"], row["centroid_x_um"] = region.centroid
                for name, image in (("gfp", gfp), ("dapi", dapi)):
                    # Of the pixels that are numbers, as Fiji measures (none: empty).
                    values = image[f][pixels][np.isfinite(image[f][pixels])]
                    row[f"mean_{name}"] = values.mean() if values.size else np.nan
                expected.append(row)
        rows = object_rows(export)
        assert [list(row) for row in rows] == [object_columns(export)] * len(expected)
        assert object_columns(export)[:2] == ["source_file", "frame"]
        assert [(r["frame"], r["label"]) for r in rows] == [
            (r["frame"], r["label"]) for r in expected
        ]
        assert sum(r["mean_gfp"] is None for r in rows) == 1
        assert {r["eccentricity"] for r in rows} >= {0.0, 1.0}  # one pixel; a line
        assert {r.pop("source_file") for r in rows} == {""}  # labels of no file
        for row, want in zip(rows, expected, strict=True):
            row = {k: np.nan if v is None else v for k, v in row.items()}
            assert row == pytest.approx(want, rel=1e-9, abs=1e-9, nan_ok=True)


def test_tens_of_thousands_of_cells_are_measured_at_once():
    """regionprops per cell took 37 s for the table of 90,000 one-pixel cells."""
    import time

    labels = np.zeros((400, 400), np.uint32)
    labels[::2, ::2] = np.arange(1, 200 * 200 + 1).reshape(200, 200)
    started = time.perf_counter()
    rows = object_rows(LabelsExport("many", labels, scale=(0.5, 0.5), units=("µm", "µm")))
    assert time.perf_counter() - started < 8  # regionprops per cell: 15 s; now about 1 s
    assert len(rows) == 200 * 200 and rows[-1]["centroid_x_um"] == 199.0


def test_stacks_are_counted_per_tile():
    """Each row names the file its cells were made from: the tables of many images, whose
    names only the tables' file names told apart, stack into one."""
    labels = np.zeros((2, 8, 8), np.uint16)
    labels[0, :2, :2], labels[0, 5:, 5:], labels[1, 3:5, 3:5] = 1, 9, 4
    export = LabelsExport("x", labels, source="/data/set1/raw.tif")
    assert cell_counts(export) == [
        {"source_file": "/data/set1/raw.tif", "frame": 0, "cells": 2},
        {"source_file": "/data/set1/raw.tif", "frame": 1, "cells": 1},
    ]  # no row of totals: pandas' sum of "cells" had counted every cell twice
    rows = object_rows(export)
    assert [(r["source_file"], r["frame"], r["label"]) for r in rows] == [
        ("/data/set1/raw.tif", 0, 1), ("/data/set1/raw.tif", 0, 9), ("/data/set1/raw.tif", 1, 4)
    ]  # fmt: skip


def test_the_tables_name_a_file_of_any_name_and_keep_a_feature_called_source(tmp_path):
    """A file name of bytes that are no UTF-8 (Linux allows them) stopped the export
    (UnicodeEncodeError): it is written escaped. A feature of the layer named "source" is
    a column of its own beside the file's."""
    labels = np.zeros((8, 8), np.uint16)
    labels[:2, :2] = 3
    odd = os.fsdecode(b"/data/well\xff.tif")
    features = {"label": np.array([3]), "source": np.array(["manual"])}
    export = LabelsExport("x", labels, source=odd, features=features)
    export_labels([export], tmp_path, formats=["tiff"])
    for table in ("x_objects.csv", "x_counts.csv"):
        with open(tmp_path / table, newline="", encoding="utf-8") as handle:
            (row,) = list(csv.DictReader(handle))
        assert row["source_file"] == "/data/well\\udcff.tif"
    assert row["cells"] == "1" and object_rows(export)[0]["source"] == "manual"


def test_the_tables_of_a_stack_say_which_position_time_point_and_plane_each_row_is():
    """A P × T × Z stack's rows had a flat frame number only: 0 to 7, for a reader to
    unravel."""
    labels = np.zeros((2, 2, 2, 8, 8), np.uint16)
    labels[1, 0, 1, :2, :2] = 5
    labels[0, 1, 0, 3:5, 3:5] = 7
    export = LabelsExport("x", labels, axis_labels=("P", "T", "Z", "Y", "X"))
    rows = object_rows(export)
    assert [(r["frame"], r["p"], r["t"], r["z"], r["label"]) for r in rows] == [
        (2, 0, 1, 0, 7), (5, 1, 0, 1, 5)
    ]  # fmt: skip
    assert object_columns(export)[:5] == ["source_file", "frame", "p", "t", "z"]
    counts = cell_counts(export)
    assert counts[2] == {"source_file": "", "frame": 2, "p": 0, "t": 1, "z": 0, "cells": 1}
    assert len(counts) == 8 and sum(row["cells"] for row in counts) == 2
    # A time axis with a time unit says when; a physical pixel size gives centroids in µm.
    timed = LabelsExport("x", labels[0], scale=(30, 2, 0.5, 0.25), units=("s", "µm", "µm", "µm"),
                         axis_labels=("T", "Z", "Y", "X"))  # fmt: skip
    (row,) = [r for r in object_rows(timed) if r["label"] == 7]
    assert (row["frame"], row["t"], row["z"], row["time_s"]) == (2, 1, 0, 30.0)
    assert row["centroid_y_um"] == pytest.approx(row["centroid_y"] * 0.5)
    assert row["centroid_x_um"] == pytest.approx(row["centroid_x"] * 0.25)
    assert row["area_um2"] == pytest.approx(row["area"] * 0.125)
    assert set(object_columns(timed)) == set(row)
    assert cell_counts(timed)[2] == {
        "source_file": "", "frame": 2, "t": 1, "z": 0, "time_s": 30.0, "cells": 1
    }  # fmt: skip
    # A flipped layer (negative scale) measures the same.
    units, axes = ("s", "µm", "µm", "µm"), ("T", "Z", "Y", "X")
    flipped = LabelsExport("x", labels[0], scale=(-30, 2, -0.5, 0.25), units=units,
                           axis_labels=axes)  # fmt: skip
    (same,) = [r for r in object_rows(flipped) if r["label"] == 7]
    assert same == row
    # Any spelling or size of a length: micrometres were known as four names only.
    for y, x in (("micrometre", "μm"), ("nm", "nanometer")):
        factor = 1000 if y == "nm" else 1
        spelt = LabelsExport("x", labels[0], scale=(30, 2, 0.5 * factor, 0.25 * factor),
                             units=("s", "µm", y, x), axis_labels=axes)  # fmt: skip
        (same,) = [r for r in object_rows(spelt) if r["label"] == 7]
        assert same == pytest.approx(row)
    # napari's default axis names ("0", "1") are no letters: the columns are numbered.
    export = LabelsExport("x", labels[0], axis_labels=("0", "1", "2", "3"))
    assert object_columns(export)[1:4] == ["frame", "axis_0", "axis_1"]


def test_export_writes_everything_and_refuses_to_overwrite(tmp_path, real):
    labels, image = real
    export = LabelsExport(
        "cells: U-Net",
        labels,
        scale=(0.65, 0.65),
        units=("µm", "µm"),
        intensities={"phase": image},
        parameters={"method": "unet", "threshold": 0.5},
        source="/data/scan.tif",
    )
    written = export_labels([export], tmp_path, formats=["tiff", "png", "npy"], coco_json=True)
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "cells_ U-Net.tif",
            "cells_ U-Net.png",
            "cells_ U-Net.npy",
            "cells_ U-Net_objects.csv",
            "cells_ U-Net_counts.csv",
            "cells_ U-Net_coco.json",
            "cells_ U-Net_provenance.json",
        ]
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cells_ U-Net.tif"), labels)
    np.testing.assert_array_equal(iio.imread(tmp_path / "cells_ U-Net.png"), labels)
    with open(tmp_path / "cells_ U-Net_objects.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(np.unique(labels)) - 1
    prov = json.loads((tmp_path / "cells_ U-Net_provenance.json").read_text())
    assert prov["parameters"] == {"method": "unet", "threshold": 0.5}
    assert prov["source"] == "/data/scan.tif"
    assert prov["versions"]["napari-cytomask"]
    assert "cells_ U-Net.tif" in prov["outputs"]

    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="nothing was written"):
        export_labels([export], tmp_path, formats=["tiff"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _two_exports(seed):
    rng = np.random.default_rng(seed)
    stack = np.zeros((2, 40, 40), np.uint16)
    stack[:, 5:15, 5:15], stack[1, 20:30, 20:35] = 1, 2
    image = rng.integers(0, 4000, (40, 40), dtype=np.uint16)
    return [
        LabelsExport("stack cells", stack, axis_labels=("P", "y", "x"), method="unet"),
        LabelsExport("cells", stack[1], intensities={"phase": image}, method="sam2"),
    ]


def test_an_export_reports_each_step_and_stopped_at_any_of_them_writes_nothing(tmp_path):
    """The dock's Cancel closes the export at a report: whatever the step, the folder is
    left as it was (an earlier export of the same layers, replaced by an export stopped
    half-way, is all there, unchanged), and nothing of the stopped one stays behind."""
    exports = _two_exports(0)
    options = dict(formats=["tiff", "png"], coco_json=True, note=lambda said: None)
    first = list(exporting(exports, tmp_path, **options))
    # The layers read, then measured, then each of their files written (a frame a PNG):
    # 7 and 6, each stage counted from its start to its end.
    assert [(p.stage, p.done, p.total) for p in first] == [
        *(("read", i, 2) for i in range(3)),
        *(("measure", i, 2) for i in range(3)),
        *(("write", i, 13) for i in range(1, 14)),
    ]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(before) == 13
    again = [replace(export, labels=export.labels * 3) for export in exports]  # other ids
    for stop in range(1, 20):
        work = exporting(again, tmp_path, overwrite=True, **options)
        for _ in range(stop):
            next(work)
        work.close()
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, stop
    # Run to its end, it replaces them.
    written = drain(exporting(again, tmp_path, overwrite=True, **options))
    assert len(written) == 13
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cells.tif"), exports[1].labels * 3)


def test_an_export_run_in_one_thread_and_stopped_from_another_writes_nothing(tmp_path):
    """The dock runs the export in a worker's thread and closes it, cancelled, in napari's:
    its files were held back through a context variable set in the worker's thread, which
    the other could not reset ("Exception ignored" at every Cancel while files were
    written), and a generator paused in its block held back every other write of its
    thread."""
    import sys
    import threading

    from napari_cytomask.io.atomic import write_json

    work = exporting(_two_exports(1), tmp_path / "out", note=lambda said: None)
    reports: list = []

    def run() -> None:
        reports.extend(next(work) for _ in range(7))
        write_json(tmp_path / "elsewhere.json", {})  # not held back, written at once

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert reports[-1].stage == "write"  # paused between two files
    unraisable: list = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        work.close()
    finally:
        sys.unraisablehook = hook
    assert unraisable == [] and [p.name for p in tmp_path.iterdir()] == ["elsewhere.json"]


def test_names_too_long_for_a_file_are_cut_and_kept_apart(tmp_path):
    """A layer named with 300 characters stopped the export of every layer ("File name too
    long"); cut, two such names that differ only at their end stay two sets of files."""
    from napari_cytomask.io.atomic import NAME_BYTES

    labels = np.ones((4, 4), np.uint8)
    long = ["細" * 100 + "a", "細" * 100 + "b"]
    written = export_labels([LabelsExport(n, labels) for n in long], tmp_path, formats=["tiff"])
    assert len(written) == 8 and len({p.name for p in written}) == 8
    assert all(len(p.name.encode()) <= NAME_BYTES for p in written)
    # Each layer's files share one cut name, which its provenance records.
    layers = {}
    for path in written:
        if path.name.endswith("_provenance.json"):
            stem = path.name.removesuffix("_provenance.json")
            layers[json.loads(path.read_text())["layer"]] = stem
            assert (tmp_path / f"{stem}.tif").is_file()
    assert sorted(layers) == long


@pytest.mark.parametrize(
    ("name", "safe"),
    [("CON", "_CON"), ("aux.tif", "_aux.tif"), ("Lpt1 cells", "Lpt1 cells"),
     ("trailing dot.", "trailing dot"), ("..", "labels"), (".hidden", "_hidden"),
     ('a:b*c?"d<e>f|g', "a_b_c__d_e_f_g"), ("", "labels"), ("tab\tline\n", "tab_line_"),
     ("细胞 🦠 µm +1 #2 café", "细胞 🦠 µm +1 #2 café"), ("a\\b/c", "a_b_c")],
)  # fmt: skip
def test_layer_names_become_file_names_every_system_takes(name, safe):
    """``CON.tif`` cannot be made on Windows, ``trailing dot.`` became ``trailing dot..tif``,
    and a layer named ``..`` was exported as hidden files. Letters of any script and emoji,
    which every system takes, are kept: they became ``_``, unlike in ``cytomask segment``'s
    files, and two scans named apart by an emoji could not be exported together."""
    assert safe_file_name(name) == safe


def test_mismatched_channel_and_unknown_format_are_explained(tmp_path):
    labels = np.ones((4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"'gfp' has shape \(5, 5\) but.*same image"):
        object_rows(LabelsExport("x", labels, intensities={"gfp": np.ones((5, 5))}))
    # A colour channel was said to have shape (4, 3), its last two axes.
    with pytest.raises(ValueError, match=r"'rgb' has shape \(4, 4, 3\) but the labels \(4, 4\)"):
        object_rows(LabelsExport("x", labels, intensities={"rgb": np.ones((4, 4, 3))}))
    with pytest.raises(ValueError, match="Unknown format"):
        export_labels([LabelsExport("x", labels)], tmp_path, formats=["jpeg"])
    # One format as a string was read letter by letter: "Unknown format(s) ['f', 'i', 't']".
    written = export_labels([LabelsExport("x", labels)], tmp_path, formats="tiff")
    assert written[0].name == "x.tif"
    with pytest.raises(ExportExists, match=r"overwrite=True from Python"):
        export_labels([LabelsExport("x", labels)], tmp_path, formats="tiff")


def test_a_stack_goes_to_png_frame_by_frame_beside_its_whole_tiff(tmp_path):
    """PNG holds one 2D image: a stack is written one PNG per frame (named by axis and
    zero-padded index, the frames made only), and its TIFF is still written whole."""

    labels = (np.arange(11 * 2 * 8 * 8).reshape(11, 2, 8, 8) % 5).astype(np.uint16)
    stack = LabelsExport(
        name="stack", labels=labels, scale=(1, 60, 0.5, 0.5), axis_labels=("P", "T", "Y", "X")
    )
    written = export_labels([stack], tmp_path, formats=["tiff", "png"], objects_csv=False)
    pngs = sorted(path.name for path in written if path.suffix == ".png")
    assert len(pngs) == 22 and pngs[:3] == [
        "stack_P00_T0.png",
        "stack_P00_T1.png",
        "stack_P01_T0.png",
    ]
    np.testing.assert_array_equal(iio.imread(tmp_path / "stack_P10_T1.png"), labels[10, 1])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "stack.tif"), labels)
    record = json.loads((tmp_path / "stack_provenance.json").read_text())
    assert set(pngs) <= set(record["outputs"])
    # One position segmented alone: its PNG only; axes without a letter are numbered.
    alone = LabelsExport(name="alone", labels=labels[:, 0], frames_made=["3"])
    written = export_labels([alone], tmp_path, formats=["png"], objects_csv=False)
    assert [path.name for path in written] == ["alone_03.png", "alone_provenance.json"]
    # ... and its COCO image only: the others, listed without cells, counted as missed.
    coco = coco_annotations(alone)
    assert [image["id"] for image in coco["images"]] == [4]
    assert {a["image_id"] for a in coco["annotations"]} == {4}
    # One image saved with an axis of one is one PNG, named as an image (not 'one_Q0.png').
    one = LabelsExport(name="one", labels=labels[:1, :1], axis_labels=("Q", "Q", "Y", "X"))
    written = export_labels([one], tmp_path, formats=["png"], objects_csv=False)
    assert written[0].name == "one.png"
    np.testing.assert_array_equal(iio.imread(written[0]), labels[0, 0])


def test_frames_made_are_those_recorded_and_those_painted_into():
    """... and an empty stack, which has no frame, made reshaping fail."""
    from types import SimpleNamespace

    from napari_cytomask.io.layers import frames_made_of

    def layer(data, made):
        return SimpleNamespace(data=data, metadata={"cytomask": {"frames_made": made}})

    stack = np.zeros((2, 3, 8, 8), np.uint16)
    stack[1, 2, 4, 4] = 7  # painted where no step made the frame
    assert frames_made_of(layer(stack, ["0,1"])) == ["0,1", "1,2"]
    assert frames_made_of(layer(stack, None)) is None  # every frame made
    assert frames_made_of(layer(np.zeros((0, 8, 8), np.uint8), ["0"])) == ["0"]


def test_labels_that_png_cannot_hold_write_nothing(tmp_path):
    """... and the refusal names the layer's file among those exported at once."""
    big = LabelsExport(name="big", labels=np.full((2, 4, 4), 70000))
    small = LabelsExport(name="small", labels=np.ones((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"Cannot save big_0\.png: PNG holds ids up to 65535"):
        export_labels([small, big], tmp_path, formats=["npy", "png"])
    assert list(tmp_path.iterdir()) == []


def test_provenance_of_a_layer_is_what_the_layer_records(tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    from napari_cytomask.io.export import from_layer
    from napari_cytomask.io.layers import model_record, result_metadata

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    channel = SimpleNamespace(
        name="phase",
        metadata={"cytomask": {"source": "/data/scan.tif", "channel_index": 1,
                               "channel_name": "Phase", "role": "input"}},
    )  # fmt: skip
    model = model_record("mine", weights)
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[1, 2:5, 2:5] = 1
    # A pyramid exports its full resolution.
    layer = SimpleNamespace(
        name="cells", data=[labels, labels[:, ::2, ::2]], multiscale=True,
        scale=(1.0, 0.5, 0.5), units=("pixel", "µm", "µm"), axis_labels=("P", "Y", "X"),
        features=pd.DataFrame(),
        metadata=result_metadata(channel, method="unet", parameters={"tta": True}, model=model),
    )  # fmt: skip
    export = from_layer(layer)
    assert export.labels.shape == (2, 8, 8)
    export_labels([export], tmp_path / "out", objects_csv=False)
    prov = json.loads((tmp_path / "out" / "cells_provenance.json").read_text())
    recorded = layer.metadata["cytomask"]
    assert prov["source"] == "/data/scan.tif"
    assert (prov["channel_index"], prov["channel_name"]) == (1, "Phase")
    assert prov["method"] == "unet" and prov["parameters"] == {"tta": True}
    assert prov["model"] == model and prov["model"]["sha256"]
    assert prov["made_from"] == {"layer": "phase"}
    assert prov["versions"] == recorded["versions"]


def test_another_files_channels_are_named_after_their_file():
    """With the labels' scan closed and another of the same channel names opened, the
    other's 'phase' was measured as 'mean_phase': the cells' own phase, as the table and
    the provenance read; with it open, another file's 'GFP' read as the cells' own GFP.
    Another file's images say their file."""
    from napari.layers import Image, Labels

    from napari_cytomask.io.export import from_layer
    from napari_cytomask.io.layers import result_metadata

    def channel(path, name, value):
        record = {"source": path, "channel_index": 0, "channel_name": name, "role": "input"}
        return Image(np.full((8, 8), value, np.uint16), name=name, metadata={"cytomask": record})

    own, other = channel("/data/set1.tif", "phase", 10), channel("/data/set2.tif", "phase", 20)
    drawn = Image(np.full((8, 8), 30, np.uint16), name="drawn")
    cells = Labels(np.eye(8, dtype=np.uint8), name="cells",
                   metadata=result_metadata(own, method="unet"))  # fmt: skip
    measured = from_layer(cells, [other, drawn]).intensities
    assert set(measured) == {"phase (set2.tif)", "drawn"}  # an image of no file as it is
    assert measured["phase (set2.tif)"] is other.data
    # With the scan open, its channels are the cells' own, another scan's of those names
    # left out, and of other names said to be another file's.
    gfp = channel("/data/set2.tif", "GFP", 40)
    measured = from_layer(cells, [other, own, drawn, gfp]).intensities
    assert set(measured) == {"phase", "drawn", "GFP (set2.tif)"}
    assert measured["phase"] is own.data


def test_another_files_channels_lose_napari_s_number_unless_two_share_a_name():
    """An image of another file opened second was measured as "GFP [1] (set3.tif)": the
    column changed with the order files were opened in. Its number stays only where two
    images would share a column: two files of one name in two folders."""
    from napari.layers import Image, Labels

    from napari_cytomask.io.export import from_layer
    from napari_cytomask.io.layers import result_metadata

    def channel(path, name, value):
        record = {"source": path, "channel_index": 0, "channel_name": name, "role": "input"}
        return Image(np.full((8, 8), value, np.uint16), name=name, metadata={"cytomask": record})

    own = channel("/data/set1.tif", "phase", 10)
    cells = Labels(np.eye(8, dtype=np.uint8), name="cells",
                   metadata=result_metadata(own, method="unet"))  # fmt: skip
    stain = channel("/data/set3.tif", "GFP [1]", 40)
    assert set(from_layer(cells, [own, stain]).intensities) == {"phase", "GFP (set3.tif)"}
    day1, day2 = channel("/a/stain.tif", "GFP", 1), channel("/b/stain.tif", "GFP [1]", 2)
    measured = from_layer(cells, [own, day1, day2]).intensities
    assert measured["GFP (stain.tif)"] is day1.data
    assert measured["GFP [1] (stain.tif)"] is day2.data


def test_a_number_in_brackets_of_the_files_own_name_stays():
    """The cells of "HeLa [2].tif" were exported as "HeLa U-Net cells", the name those of
    "HeLa.tif" get, and measured as "mean_HeLa": only the " [1]" napari adds goes."""
    from napari.layers import Image, Labels

    from napari_cytomask.io.export import from_layer
    from napari_cytomask.io.layers import result_metadata

    def cells_of(name):
        record = {"source": "/x/HeLa [2].tif", "channel_index": 0, "channel_name": None,
                  "role": "input"}  # fmt: skip
        image = Image(np.ones((8, 8), np.uint16), name=name, metadata={"cytomask": record})
        made = result_metadata(image, method="unet")
        return from_layer(Labels(np.eye(8, dtype=np.uint8), name=f"{name} U-Net cells",
                                 metadata=made), [image])  # fmt: skip

    export = cells_of("HeLa [2]")
    assert export.file_name == "HeLa [2] U-Net cells"
    assert set(export.intensities) == {"HeLa [2]"}
    export = cells_of("HeLa [3]")  # the file opened twice: napari counts on from its [2]
    assert export.file_name == "HeLa [2] U-Net cells"
    assert set(export.intensities) == {"HeLa [2]"}


def test_an_export_that_cannot_finish_writes_nothing(tmp_path):
    """Every format's limits, and layers whose file names would clash, are found before
    the first file is written; a re-run after a fix is then not refused as existing."""
    huge = LabelsExport(name="huge", labels=np.full((4, 4), 2**33, np.uint64))
    with pytest.raises(ValueError, match="OME-TIFF holds ids up to"):
        export_labels([huge], tmp_path, formats=["tiff", "ome-tiff"])
    assert list(tmp_path.iterdir()) == []
    labels = np.arange(16).reshape(4, 4) % 3
    clash = [
        LabelsExport(name="cells/a", labels=labels),
        LabelsExport(name="cells:a", labels=labels),
    ]
    with pytest.raises(ValueError, match="'cells/a' and 'cells:a' would both be saved as"):
        export_labels(clash, tmp_path)
    assert list(tmp_path.iterdir()) == []
    renamed = [clash[0], LabelsExport(name="cells b", labels=labels)]
    assert len(export_labels(renamed, tmp_path)) == 8


def test_a_disk_that_fills_part_way_leaves_no_partial_export(tmp_path, monkeypatch):
    """The label file and the tables were written, then the COCO file found the disk full:
    nothing is moved in, so the message's "nothing was written" holds, a re-run is not
    refused as existing, and an earlier export replaced (overwrite) stays whole: its labels
    were replaced at once, leaving the new labels beside the old tables and provenance,
    which then passed the new labels off as the earlier export."""
    import errno

    from napari_cytomask.io import atomic
    from napari_cytomask.io import export as export_module
    from napari_cytomask.io.atomic import WriteError

    real_write = export_module.write_json

    def full_at_coco(path, content, overwrite):
        if path.name.endswith("_coco.json"):
            raise WriteError(errno.ENOSPC, f"Could not save {path}: the disk is full.")
        return real_write(path, content, overwrite=overwrite)

    monkeypatch.setattr(export_module, "write_json", full_at_coco)
    cells = LabelsExport(name="cells", labels=np.eye(8, dtype=np.uint8))
    with pytest.raises(WriteError, match="disk is full"):
        export_labels([cells], tmp_path, coco_json=True)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(export_module, "write_json", real_write)
    earlier = export_labels([replace(cells, labels=np.eye(8, dtype=np.uint8) * 2)], tmp_path)
    before = {path: path.read_bytes() for path in earlier}
    monkeypatch.setattr(export_module, "write_json", full_at_coco)
    with pytest.raises(WriteError, match="disk is full"):
        export_labels([cells], tmp_path, coco_json=True, overwrite=True)
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before

    # A move in that fails (a file open in another program) puts back the files moved in
    # before it: they held the new labels beside the earlier tables and provenance.
    monkeypatch.setattr(export_module, "write_json", real_write)
    real_move = _failing_at_provenance(monkeypatch)
    with pytest.raises(WriteError, match="Input/output error"):
        export_labels([cells], tmp_path, overwrite=True)
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before  # nor any aside
    # Where the file system has no hard links, the files it replaced are named.
    monkeypatch.setattr(atomic, "_kept_aside", lambda path: None)
    with pytest.raises(WriteError) as caught:
        export_labels([cells], tmp_path, overwrite=True)
    assert str(caught.value) == (
        f"Could not finish the export into {tmp_path}: Input/output error. It had already "
        "replaced cells.tif, cells_objects.csv, cells_counts.csv, which now hold the new "
        "export; the other files it wrote were removed, and the earlier provenance does not "
        "describe the replaced ones. Export again once it can be written in full."
    )
    assert not [path for path in tmp_path.iterdir() if path not in before]  # no temporaries
    monkeypatch.setattr(atomic, "_move_in", real_move)
    assert len(export_labels([cells], tmp_path, coco_json=True, overwrite=True)) == 5


def _failing_at_provenance(monkeypatch):
    """Make the move into place of an export's provenance fail (a file open in another
    program); returns the real move."""
    import errno

    from napari_cytomask.io import atomic
    from napari_cytomask.io.atomic import WriteError

    real_move = atomic._move_in

    def broken_at_provenance(tmp, path, overwrite):
        if path.name.endswith("_provenance.json"):
            raise WriteError(errno.EIO, f"Could not save {path}: Input/output error.")
        real_move(tmp, path, overwrite)

    monkeypatch.setattr(atomic, "_move_in", broken_at_provenance)
    return real_move


def test_a_failed_export_through_a_link_keeps_the_file_it_points_to(tmp_path, monkeypatch):
    """Undoing an export whose move failed deleted the file a link among its outputs
    pointed to (the user's archived labels), and said existing files were unchanged."""
    from napari_cytomask.io import atomic
    from napari_cytomask.io.atomic import WriteError

    cells = LabelsExport(name="cells", labels=np.eye(8, dtype=np.uint8))
    out, archive = tmp_path / "export", tmp_path / "archive"
    export_labels([cells], out)
    archive.mkdir()
    (out / "cells.tif").rename(archive / "cells.tif")
    (out / "cells.tif").symlink_to(archive / "cells.tif")
    kept = (archive / "cells.tif").read_bytes()
    _failing_at_provenance(monkeypatch)
    one_cell = replace(cells, labels=np.pad(np.ones((4, 4), np.uint8), 2))
    for links in (True, False):  # on a file system with hard links, and without
        if not links:
            monkeypatch.setattr(atomic, "_kept_aside", lambda path: None)
        with pytest.raises(WriteError):
            export_labels([one_cell], out, overwrite=True)
        # Put back where it could be; else replaced, never deleted.
        assert ((archive / "cells.tif").read_bytes() == kept) is links
        assert sorted(path.name for path in archive.iterdir()) == ["cells.tif"]


def test_replacing_an_export_in_fewer_formats_names_the_files_left_from_before(tmp_path):
    eight = np.diag(np.arange(1, 9, dtype=np.uint8))  # cells of their own ids
    cells = LabelsExport(name="cells", labels=eight)
    export_labels([cells], tmp_path, formats=["tiff", "png"], coco_json=True)
    # The same labels again in fewer formats: the earlier files hold them and stay listed,
    # so they open again as the result (they lost their record, and the metrics took them
    # for a ground truth).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_labels([cells], tmp_path, formats=["tiff"], overwrite=True)
    assert reopened_result(tmp_path / "cells.png", eight)["role"] == "result"
    listed = json.loads((tmp_path / "cells_provenance.json").read_text())["outputs"]
    assert {"cells.tif", "cells.png", "cells_coco.json"} <= set(listed)
    # Other labels: the earlier files are not theirs.
    with pytest.warns(UserWarning) as caught:
        written = export_labels([replace(cells, labels=eight * 2)], tmp_path, formats=["tiff"],
                                overwrite=True)  # fmt: skip
    assert str(caught[0].message) == (
        f"cells.png, cells_coco.json in {tmp_path} are from an earlier export of other labels "
        "and were left as they are; the new provenance does not list them."
    )
    assert (tmp_path / "cells.png").exists() and tmp_path / "cells.png" not in written
    assert reopened_result(tmp_path / "cells.png", eight) == {}
    # A file of a planned name that no export wrote (the mask the layer came from) is not
    # called a leftover.
    mask = LabelsExport(name="mask", labels=eight)
    tifffile.imwrite(tmp_path / "mask.tif", np.eye(8, dtype=np.uint8))
    export_labels([mask], tmp_path, formats=["png"])
    # Nor a name an edited provenance gives outside the folder.
    provenance = tmp_path / "mask_provenance.json"
    record = json.loads(provenance.read_text())
    provenance.write_text(json.dumps({**record, "outputs": ["../../etc/hostname", "mask.png"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_labels([mask], tmp_path, formats=["png"], overwrite=True)


def test_sparse_huge_ids_are_measured_and_a_failed_measurement_writes_nothing(
    tmp_path, monkeypatch
):
    small = np.zeros((30, 40), np.uint64)
    small[2:10, 3:12], small[15:25, 20:35] = 1, 2
    ids = np.array([0, 2**40 + 1, 2**64 - 1], np.uint64)
    huge = LabelsExport(name="huge", labels=ids[small], features={"label": [2**64 - 1],
                                                                    "score": [0.9]})  # fmt: skip
    rows = object_rows(huge)
    assert [(r["label"], r["area"]) for r in rows] == [(2**40 + 1, 72), (2**64 - 1, 150)]
    assert rows[1]["score"] == 0.9 and "score" not in rows[0]
    full = LabelsExport(name="full", labels=np.array([[2**63 + 1, 2**63 + 3]] * 2, np.uint64))
    assert [r["label"] for r in object_rows(full)] == [2**63 + 1, 2**63 + 3]  # no background
    coco = coco_annotations(huge, "score")
    assert [(a["label"], a["area"], a["score"]) for a in coco["annotations"]] == [
        (2**40 + 1, 72, 1.0), (2**64 - 1, 150, 0.9)]  # fmt: skip
    written = export_labels([huge], tmp_path / "ok", formats=["npy"], coco_json=True)
    assert len(written) == 5
    np.testing.assert_array_equal(np.load(tmp_path / "ok" / "huge.npy"), ids[small])

    # A measurement that fails (here: memory) leaves no label file without its tables.
    from napari_cytomask.io import export

    def no_memory(frame, **kwargs):
        raise MemoryError

    monkeypatch.setattr(export, "compact_ids", no_memory)
    good = LabelsExport(name="first", labels=small)
    with pytest.raises(MemoryError):
        export_labels([good, huge], tmp_path / "failed", formats=["tiff"])
    assert not (tmp_path / "failed").exists()  # not even the folder made for it


def test_an_export_is_a_snapshot_of_the_layer():
    """Painting into a layer while its export is written changes neither its label file
    nor its tables: they are made from the labels as they were when the export began."""
    from napari.layers import Labels

    from napari_cytomask.io.export import from_layer

    layer = Labels(np.eye(8, dtype=np.uint16), name="cells")
    export = from_layer(layer)
    layer.data[:] = 5
    np.testing.assert_array_equal(export.labels, np.eye(8, dtype=np.uint16))
    assert export.edited is None  # no step made it: whether it was painted is not known


def test_a_folder_that_cannot_be_made_is_said_plainly(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    from napari_cytomask.io.atomic import WriteError
    from napari_cytomask.io.export import LabelsExport, export_labels

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    folder = tmp_path / "new"
    with pytest.raises(WriteError) as caught:
        export_labels([LabelsExport("cells", np.eye(4, dtype=np.uint8))], folder)
    assert str(caught.value) == (
        f"Could not make the folder {folder}: the disk is read-only. Nothing was written; "
        "choose another folder."
    )


def test_a_read_only_folder_is_said_plainly_and_nothing_is_left(tmp_path, monkeypatch):
    """An existing folder that cannot be written into: the export says so in words
    (not "[Errno 30]"), and leaves nothing behind, not even its lock."""
    import errno

    from napari_cytomask.io import atomic

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    with pytest.raises(atomic.WriteError) as caught:
        export_labels([LabelsExport("cells", np.eye(4, dtype=np.uint8))], tmp_path)
    assert str(caught.value) == (
        f"Could not write into {tmp_path}: the disk is read-only. Nothing was written; "
        "choose another folder."
    )
    assert not list(tmp_path.iterdir())


def test_a_file_where_the_folder_should_be_is_said_plainly(tmp_path):
    from napari_cytomask.io.atomic import WriteError, make_folder

    (tmp_path / "afile").write_text("x")
    with pytest.raises(WriteError, match=r"afile: a file of that name is in the way\. "):
        make_folder(tmp_path / "afile")


def test_measured_columns_describe_the_cells_as_exported_not_as_found(tmp_path):
    """SAM2 stores each object's area as a feature; after painting, the table's and the
    COCO file's 'area' were still the area found, which COCOeval uses for its size ranges."""
    labels = np.zeros((20, 20), np.uint16)
    labels[2:12, 2:12] = 1  # 100 px, found with 140
    features = {"label": np.array([1]), "area": np.array([140]), "bbox": np.array(["x"]),
                "predicted_iou": np.array([0.9])}  # fmt: skip
    export = LabelsExport("cells", labels, features=features)
    (row,) = object_rows(export)
    assert (row["area"], row["bbox_min_y"], row["predicted_iou"]) == (100, 2, 0.9)
    (annotation,) = coco_annotations(export, "predicted_iou")["annotations"]
    assert annotation["area"] == 100 == cocomask.area(annotation["segmentation"])
    assert annotation["bbox"] == [2, 2, 10, 10] and annotation["score"] == 0.9


def test_json_files_hold_strict_json(tmp_path):
    """A missing score was written as a bare NaN, which JavaScript's JSON.parse and other
    strict readers refuse; a path among the parameters stopped the export."""
    labels = np.zeros((8, 8), np.uint8)
    labels[1:4, 1:4], labels[5:7, 5:7] = 1, 2
    features = {"label": np.array([1, 2]), "predicted_iou": np.array([0.8, np.nan])}
    parameters = {"model": tmp_path / "m.safetensors", "limit": np.inf, "gain": np.array(0.5)}
    export = LabelsExport("cells", labels, features=features, parameters=parameters)
    export_labels([export], tmp_path, coco_json=True, score_column="predicted_iou")

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    coco = json.loads((tmp_path / "cells_coco.json").read_text(), parse_constant=refuse)
    assert [a["predicted_iou"] for a in coco["annotations"]] == [0.8, None]
    assert [a["score"] for a in coco["annotations"]] == [0.8, 0.0]  # null broke COCOeval
    record = json.loads((tmp_path / "cells_provenance.json").read_text(), parse_constant=refuse)
    assert record["parameters"] == {
        "model": str(tmp_path / "m.safetensors"),
        "limit": None,
        "gain": 0.5,  # a 0-d array
    }


def test_a_missing_value_is_spelled_one_way_in_the_objects_table(tmp_path):
    """A cell with no pixel that is a number in a float channel got a literal "nan" in the
    objects table, while a missing feature got an empty field: other readers tell the two
    apart."""
    labels = np.zeros((8, 8), np.uint8)
    labels[1:4, 1:4], labels[5:7, 5:7] = 1, 2
    image = np.ones((8, 8), np.float32)
    image[5:7, 5:7] = np.nan
    features = {"label": np.array([1, 2]), "predicted_iou": np.array([np.nan, 0.8])}
    export = LabelsExport("cells", labels, features=features, intensities={"fl": image})
    export_labels([export], tmp_path)
    rows = list(csv.DictReader((tmp_path / "cells_objects.csv").open()))
    assert [(r["mean_fl"], r["predicted_iou"]) for r in rows] == [("1.0", ""), ("", "0.8")]


def test_the_tables_hold_no_digits_of_float_rounding(tmp_path):
    """A cell of 6784 pixels of 0.87 µm had an area of 5134.8096000000005 µm², and
    centroids came with 15 decimals (673.194606741573)."""
    labels = np.zeros((120, 120), np.uint16)
    labels[3:83, 3:88] = 1  # 6800 pixels
    labels[90:117, 5:30][np.tri(27, 25, dtype=bool)] = 2  # a centroid of many decimals
    export = LabelsExport("cells", labels, scale=(0.87, 0.87), units=("µm", "µm"))
    export_labels([export], tmp_path)
    rows = list(csv.DictReader((tmp_path / "cells_objects.csv").open()))
    assert rows[0]["area_um2"] == "5146.92"  # 6800 * 0.87 ** 2 = 5146.920000000001
    assert all(len(value) <= 12 for row in rows for value in row.values())
    # Still what was measured, to ten significant digits.
    table = object_rows(export)
    assert float(rows[1]["centroid_y_um"]) == pytest.approx(table[1]["centroid_y_um"], rel=1e-9)


def test_a_copy_of_a_result_keeps_what_was_written_into_it():
    """napari's Duplicate Layer shares the record of what a step wrote: rewriting the
    original marked the untouched copy as edited by hand in its provenance."""
    from types import SimpleNamespace

    from napari_cytomask.io.layers import edited_by_hand, record_written

    original = SimpleNamespace(data=np.zeros((2, 8, 8), np.uint16),
                               metadata={"cytomask": {"role": "result"}})  # fmt: skip
    record_written(original)
    copy = SimpleNamespace(data=original.data.copy(), metadata=dict(original.metadata))
    original.data = np.ones((2, 8, 8), np.uint16)
    record_written(original)
    assert not edited_by_hand(copy)
    copy.data[1, 0, 0] = 5
    assert edited_by_hand(copy) and not edited_by_hand(original)


def test_a_segment_records_measured_pixel_size_goes_into_the_exports_settings():
    """Exported by the command line, labels segmented at a typed pixel size of 1 µm had
    the preset only in their provenance: followed, it resampled from the file's 0.65 µm
    and gave 5 cells for 10. The dock's export recorded the size the run used."""
    from napari_cytomask.io.export import recorded_fields

    unet = {"model": "starter", "resample": True, "min_size": 570}
    record = {"preset": {"method": "unet", "unet": unet}, "pixel_size_um": [1.0, 1.0],
              "unet_zoom": [1.149, 1.149], "unet_min_size_image_px": 431}  # fmt: skip
    settings = recorded_fields(record)["parameters"]["unet"]
    assert settings == {**unet, "pixel_size_um": [1.0, 1.0], "zoom": [1.149, 1.149],
                        "min_size_image_px": 431}  # fmt: skip
    assert record["preset"]["unet"] == unet  # the record itself is left as it is
    sam2 = {"preset": {"method": "sam2", "sam2": {"points_per_side": 32}}}
    assert recorded_fields(sam2)["parameters"] == sam2["preset"]


def test_the_pixel_size_a_segment_run_was_given_goes_into_the_provenance(unet_checkpoint, tmp_path):
    """An export's provenance records the pixel size the U-Net run was given in place of
    its scan's (``options``), so that --preset of it gives it again. Labels of `cytomask
    segment --pixel-size 1.2` opened in napari and exported recorded none: their record
    nests the size in its preset, and the export looked for it beside the settings of the
    dock's runs. The run's record says it itself, also where the scan is not there any
    more; a run that took the file's own size records none."""
    from napari.layers import Labels

    from napari_cytomask._reader import get_reader
    from napari_cytomask.cli import main
    from napari_cytomask.io.export import from_layer
    from napari_cytomask.synthetic import make_tilescan

    model = unet_checkpoint(tile_size=128)
    phase = make_tilescan(n_tiles=1, shape=(64, 64), seed=2).brightfield[0]
    lost, sized = tmp_path / "lost.tif", tmp_path / "sized.tif"
    tifffile.imwrite(lost, phase)
    tifffile.imwrite(sized, phase, resolution=(1 / 1.2, 1 / 1.2), metadata={"unit": "um"},
                     imagej=True)  # fmt: skip
    for scan, given in ((lost, ["--pixel-size", "1.2"]), (sized, [])):
        argv = ["segment", str(scan), "-m", str(model), "-o", str(tmp_path / "runs"),
                "--scheduler", "synchronous", "--threads", "1", *given]  # fmt: skip
        assert main(argv) == 0
    lost.rename(tmp_path / "elsewhere.tif")  # its size is the record's to say
    for stem, typed in (("lost", 1.2), ("sized", None)):
        cells = tmp_path / "runs" / f"{stem}_unet_cells.tif"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the scan moved away, said
            ((data, kwargs, _),) = get_reader(str(cells))(str(cells))
        layer = Labels(data, **kwargs)
        export_labels([from_layer(layer)], tmp_path / stem, objects_csv=False)
        provenance = json.loads((tmp_path / stem / f"{layer.name}_provenance.json").read_text())
        assert provenance["options"] == {"pixel_size_um": typed}


def test_two_fields_of_one_layout_are_exported_under_their_own_names(tmp_path):
    """Two Usiigaci fields (set1/raw.tif, set2/raw.tif) exported together were named by
    napari's count of the layers opened before: 'raw U-Net cells' and 'raw [1] U-Net
    cells', and the second's table measured its own image as 'mean_raw [1]'. Each field's
    files now say their folder, and both tables name their own image 'mean_raw'."""
    import pandas as pd
    from napari.layers import Image, Labels

    from napari_cytomask.io.export import check_export, from_layer
    from napari_cytomask.io.layers import result_metadata

    def field(folder, name, value):
        record = {"source": str(tmp_path / folder / "raw.tif"), "role": "input"}
        raw = Image(np.full((8, 8), value, np.uint16), name=name, metadata={"cytomask": record})
        cells = Labels(np.eye(8, dtype=np.uint8), name=f"{name} U-Net cells",
                       metadata=result_metadata(raw, method="unet"))  # fmt: skip
        return raw, cells

    (raw1, cells1), (raw2, cells2) = field("set1", "raw", 10), field("set2", "raw [1]", 20)
    images = [raw1, raw2]
    out = tmp_path / "out"
    export_labels([from_layer(cells, images) for cells in (cells1, cells2)], out)
    assert sorted(p.name for p in out.glob("*.tif")) == [
        "set1 raw U-Net cells.tif", "set2 raw U-Net cells.tif"
    ]  # fmt: skip
    for folder, value in (("set1", 10), ("set2", 20)):
        objects = pd.read_csv(out / f"{folder} raw U-Net cells_objects.csv")
        assert [c for c in objects.columns if c.startswith("mean_")] == ["mean_raw"]
        assert (objects["mean_raw"] == value).all()
    prov = json.loads((out / "set2 raw U-Net cells_provenance.json").read_text())
    assert prov["source"] == str(tmp_path / "set2" / "raw.tif")
    assert prov["layer"] == "raw [1] U-Net cells"
    # Alone, the second field's cells keep the name the first's have, without the number.
    alone = tmp_path / "alone"
    written = export_labels([from_layer(cells2, images)], alone)
    assert written[0].name == "raw U-Net cells.tif"
    # The first field exported later into that folder is not asked to replace the
    # second's files: named after its own folder, both stay.
    check_export([from_layer(cells1, images)], alone)
    written = export_labels([from_layer(cells1, images)], alone)
    assert written[0].name == "set1 raw U-Net cells.tif"
    assert sorted(p.name for p in alone.glob("*.tif")) == [
        "raw U-Net cells.tif", "set1 raw U-Net cells.tif"
    ]  # fmt: skip
    assert (pd.read_csv(alone / "raw U-Net cells_objects.csv")["mean_raw"] == 20).all()
    # Its own earlier export is still one to replace.
    with pytest.raises(FileExistsError):
        check_export([from_layer(cells2, images)], alone)


@pytest.mark.parametrize(
    ("exports", "names"),
    [
        # Stems tell the files apart.
        ([("phase U-Net cells", "/d/well A1.tif"), ("phase U-Net cells", "/d/well B2.tif")],
         ["well A1 phase U-Net cells", "well B2 phase U-Net cells"]),
        # A result made beside one painted into, of the same file: the layers' names.
        ([("raw U-Net cells", "/d/set1/raw.tif"), ("raw U-Net cells [2]", "/d/set1/./raw.tif"),
          ("raw [1] U-Net cells", "/d/set2/raw.tif")],
         ["raw U-Net cells", "raw U-Net cells [2]", "set2 raw U-Net cells"]),
        # Only the folders that differ, and none for a layer of no file.
        ([("cells", "/a/x/raw.tif"), ("cells [1]", "/b/x/raw.tif"), ("cells [2]", None)],
         ["a cells", "b cells", "cells"]),
        ([("cells", "/d/raw.tif"), ("cells [1]", None)], ["raw cells", "cells"]),
        ([("Labels", None), ("Labels [1]", None)], ["Labels", "Labels [1]"]),
    ],
)  # fmt: skip
def test_exports_of_one_name_are_told_apart_by_their_files(tmp_path, exports, names):
    from napari.layers import Labels

    from napari_cytomask.io.export import check_export, from_layer

    labels = np.eye(4, dtype=np.uint8)
    made = [
        from_layer(Labels(labels, name=name, metadata={"cytomask": {"role": "result",
                                                                     "source": source}}))
        for name, source in exports
    ]  # fmt: skip
    written = export_labels(made, tmp_path, objects_csv=False)
    assert [p.name for p in written if p.suffix == ".tif"] == [f"{n}.tif" for n in names]
    # Never one layer's files in place of another's: asked before anything is replaced.
    with pytest.raises(FileExistsError):
        check_export(made, tmp_path, objects_csv=False)


def _alone(name, source, file_name=None):
    from napari_cytomask.io.export import LabelsExport

    return LabelsExport(name=name, labels=np.eye(4, dtype=np.uint8), source=source,
                        file_name=file_name)  # fmt: skip


def test_another_layers_export_in_the_folder_is_never_offered_for_replacing(tmp_path):
    """Each field exported alone into one folder: the fourth was named after the second
    ('set2 raw U-Net cells', told apart from the first only) and offered to replace it;
    a rerun beside a result painted into took that result's files' name."""
    from napari_cytomask.io.export import check_export

    out = tmp_path / "out"
    fields = [str(tmp_path / e / s / "raw.tif") for e in ("exp1", "exp2") for s in ("set1", "set2")]
    for source in fields:
        export = _alone("raw U-Net cells", source)
        check_export([export], out, objects_csv=False)  # nothing of its own there
        export_labels([export], out, objects_csv=False)
    provenance = [json.loads(p.read_text()) for p in out.glob("*_provenance.json")]
    assert sorted(record["source"] for record in provenance) == sorted(fields)
    # Exported again, each is its own earlier export, to be asked about.
    for source in fields:
        with pytest.raises(FileExistsError):
            check_export([_alone("raw U-Net cells", source)], out, objects_csv=False)
    rerun = _alone("raw U-Net cells [2]", fields[0], file_name="raw U-Net cells")
    written = export_labels([rerun], out, objects_csv=False)
    assert written[0].name == "raw U-Net cells [2].tif"


def test_a_field_exported_again_with_another_keeps_its_file_names(tmp_path):
    """set1 exported alone is 'raw U-Net cells'; exported again beside set2 it went to
    'set1 raw U-Net cells', its earlier files left beside the new ones unsaid."""
    set1, set2 = (
        _alone("raw U-Net cells", str(tmp_path / s / "raw.tif")) for s in ("set1", "set2")
    )
    export_labels([set1], tmp_path / "out", objects_csv=False)
    export_labels([set2], tmp_path / "out", objects_csv=False)
    written = export_labels([set1, set2], tmp_path / "out", objects_csv=False, overwrite=True)
    assert [p.name for p in written if p.suffix == ".tif"] == [
        "raw U-Net cells.tif", "set2 raw U-Net cells.tif"
    ]  # fmt: skip
    assert len(list((tmp_path / "out").glob("*.tif"))) == 2


def test_a_field_exported_alone_after_another_keeps_its_file_names(tmp_path):
    """set1 and set2 exported together are 'set1 raw U-Net cells' and 'set2 raw U-Net
    cells'; set1 exported again alone went to 'raw U-Net cells', unasked, its cells then in
    the folder's tables twice. It keeps its name, replaced only when allowed; a hand-edited
    provenance in the folder names no layer and is left alone."""
    from napari_cytomask.io.export import check_export

    out = tmp_path / "out"
    set1, set2 = (
        _alone("raw U-Net cells", str(tmp_path / s / "raw.tif")) for s in ("set1", "set2")
    )
    export_labels([set1, set2], out, objects_csv=False)
    (out / "notes_provenance.json").write_text('{"layer": ["cells"], "source": 1}')
    with pytest.raises(FileExistsError):
        check_export([set1], out, objects_csv=False)
    written = export_labels([set1], out, objects_csv=False, overwrite=True)
    assert [p.name for p in written] == ["set1 raw U-Net cells.tif",
                                         "set1 raw U-Net cells_provenance.json"]  # fmt: skip
    assert sorted(p.name for p in out.glob("*.tif")) == [
        "set1 raw U-Net cells.tif", "set2 raw U-Net cells.tif"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("sources", "told"),
    [
        (["/d/set1/raw.tif", "/d/set1/raw.png"], ["raw.tif", "raw.png"]),
        (["/d/a/raw.tif", "/d/a/raw.png", "/d/b/raw.tif"], ["a raw.tif", "a raw.png", "b"]),
        # A provenance written on Windows, read elsewhere.
        (["C:\\data\\set1\\raw.tif", "/d/set2/raw.tif"], ["set1", "set2"]),
    ],
)
def test_files_of_one_folder_and_stem_are_told_apart_by_their_whole_names(sources, told):
    from napari_cytomask.io.export import _told_apart

    assert _told_apart(sources) == told


def _exported_result(folder, source="/data/scan.tif", **fields):
    """A result of frame 1 of 2 exported as TIFF into ``folder``: its file."""
    from napari_cytomask.io.export import export_labels

    labels = np.zeros((2, 16, 16), np.uint16)
    labels[1, 2:8, 2:8] = 4
    export = LabelsExport("cells", labels, source=source, method="unet",
                          frames_made=["1"], edited=False, **fields)  # fmt: skip
    export_labels([export], folder, formats=["tiff"], objects_csv=False)
    return folder / "cells.tif"


def test_a_provenance_is_read_back_only_for_the_frames_and_file_it_describes(tmp_path):
    """A provenance naming frames the file does not have ('7', 'x', hand-edited) stopped
    evaluate and export with "invalid literal for int()", or left every cell out; one of
    an earlier version, without the fields added since, stopped export with a TypeError."""
    from napari_cytomask.io.export import exported_fields, provenance_beside, reopened_result

    cells = _exported_result(tmp_path)
    record = json.loads(provenance_beside(cells).read_text())
    labels = tifffile.imread(cells)
    assert reopened_result(cells, labels)["frames_made"] == ["1"]
    assert reopened_result(cells, np.zeros((3, 16, 16))) == {}  # written over since: another shape
    for frames in (["7", "x"], ["7"], 3):
        provenance_beside(cells).write_text(json.dumps({**record, "frames_made": frames}))
        assert reopened_result(cells, labels) == {}
    old = {k: v for k, v in record.items()
           if k not in ("previewed_frames", "frames_made", "edited_by_hand")}  # fmt: skip
    provenance_beside(cells).write_text(json.dumps({**old, "parameters": None}))
    fields = exported_fields(reopened_result(cells, labels))
    export = LabelsExport("cells", np.zeros((2, 16, 16), np.uint16), **fields)
    assert (export.parameters, export.frames_made, export.edited) == ({}, None, None)


@pytest.mark.parametrize(
    ("key", "value"),
    [("source", ["a.tif"]), ("units", 3), ("previewed_frames", {"x": {}}), ("made_from", 1.5)],
)
def test_a_damaged_provenance_leaves_the_labels_open_as_labels_of_their_own(tmp_path, key, value):
    """Found by changing its entries: napari could not open the labels at all ("expected
    str, bytes or os.PathLike object, not list"; "'int' object has no attribute 'split'")."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.export import provenance_beside
    from napari_cytomask.io.layers import METADATA_KEY

    cells = _exported_result(tmp_path)
    provenance = provenance_beside(cells)
    record = json.loads(provenance.read_text())
    provenance.write_text(json.dumps({**record, key: value}))
    with pytest.warns(
        UserWarning,
        match=rf"^Labels opened without their record: cells_provenance.json is damaged "
        rf"\(its {key!r} .*\), so the scan",
    ):
        ((data, kwargs, kind),) = get_reader(str(cells))(str(cells))
    assert kind == "labels" and data.shape == (2, 16, 16)
    assert kwargs["metadata"][METADATA_KEY].get("source") != record["source"]


def test_a_provenance_cut_short_is_said_when_its_labels_open(tmp_path):
    """A provenance that cannot be read (a copy that stopped half way) left its labels a
    mask of their own without a word: the metrics took the result for a ground truth."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.export import provenance_beside
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    cells = _exported_result(tmp_path)
    provenance = provenance_beside(cells)
    provenance.write_text(provenance.read_text()[:100])
    with pytest.warns(
        UserWarning,
        match=r"^Labels opened without their record: cells_provenance.json is damaged "
        r"\(it cannot be read: .*\), so the scan",
    ):
        ((data, kwargs, kind),) = get_reader(str(cells))(str(cells))
    assert kind == "labels" and kwargs["metadata"][METADATA_KEY].get("role") != RESULT_ROLE


def test_an_image_of_a_long_name_opens_without_a_word_of_a_record(tmp_path, recwarn):
    """An image named with 244 bytes (legal) warned that its record was damaged ("File
    name too long"): its provenance's name would be too long, so it has none."""
    from napari_cytomask._reader import get_reader

    image = tmp_path / f"{'HeLa_timecourse_' * 15}.tif"
    assert len(image.name.encode()) == 244
    tifffile.imwrite(image, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    ((data, _, kind),) = get_reader(str(image))(str(image))
    assert kind == "image" and data.shape == (64, 64)
    assert [str(w.message) for w in recwarn if "record" in str(w.message)] == []


def test_an_exported_result_opens_again_as_labels_whatever_its_pixels_look_like(tmp_path):
    """The plugin's own export of cells that touch (a confluent field, 8% background),
    or of one cell over the whole field, opened again as an Image: the metrics dock did
    not offer it. Its provenance says it holds ids."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.export import export_labels

    confluent = np.repeat(np.repeat(np.arange(1, 65, dtype=np.uint16).reshape(8, 8), 8, 0), 8, 1)
    confluent[:5] = 0
    for name, labels in (("confluent", confluent), ("one cell", np.ones((64, 64), np.uint8))):
        export = LabelsExport(name, labels, source="/data/scan.tif", method="unet")
        export_labels([export], tmp_path, formats=["tiff"], objects_csv=False)
        path = str(tmp_path / f"{name}.tif")
        ((data, kwargs, kind),) = get_reader(path)(path)
        assert kind == "labels" and "colormap" not in kwargs
        assert kwargs["metadata"]["cytomask"]["role"] == "result"
        assert kwargs["metadata"]["cytomask"]["source"] == "/data/scan.tif"
        np.testing.assert_array_equal(data, labels)


def test_a_result_saved_over_another_exports_file_leaves_that_export_not_claiming_it(tmp_path):
    """Saved with napari's Save Layers over one of another export's files, a result
    reopened as that other export's result (another scan, all frames made)."""
    from napari_cytomask.io.export import provenance_beside, reopened_result, save_provenance

    cells = _exported_result(tmp_path, source="/data/other.tif")
    (tmp_path / "cells.png").write_bytes(b"")  # listed too: the provenance stays theirs
    record = json.loads(provenance_beside(cells).read_text())
    listed = {**record, "outputs": ["cells.tif", "cells.png"]}
    provenance_beside(cells).write_text(json.dumps(listed))
    saved = LabelsExport("cells", np.zeros((2, 16, 16), np.uint16), source="/data/scan.tif")
    assert save_provenance(saved, cells) is None
    assert json.loads(provenance_beside(cells).read_text())["outputs"] == ["cells.png"]
    assert reopened_result(cells, saved.labels) == {}
    # Its own earlier provenance is replaced; a file of that name that is none is kept.
    alone = _exported_result(tmp_path / "alone")
    assert save_provenance(saved, alone) == provenance_beside(alone)
    assert reopened_result(alone, saved.labels)["source"] == "/data/scan.tif"
    provenance_beside(alone).write_text("notes")
    assert save_provenance(saved, alone) is None
    assert provenance_beside(alone).read_text() == "notes"


def test_a_result_saved_in_a_second_format_joins_its_first_files_record(tmp_path):
    """Saved with File > Save as .tif, then as .ome.tif, a result's second file got no
    provenance (the first one's was kept as another's), and it reopened as a plain mask."""
    from napari_cytomask.io.export import provenance_beside, reopened_result, save_provenance

    ids = np.zeros((2, 16, 16), np.uint16)
    ids[:, 2:8, 2:8] = 1
    saved = LabelsExport("cells", ids, source="/data/scan.tif", method="unet")
    tif, ome = tmp_path / "cells.tif", tmp_path / "cells.ome.tif"
    for path in (tif, ome):
        tifffile.imwrite(path, ids)
        assert save_provenance(saved, path) == provenance_beside(tif)
    for path in (tif, ome):
        assert reopened_result(path, ids)["source"] == "/data/scan.tif"
    # Other labels saved over one of them: the record keeps the other file only.
    assert save_provenance(replace(saved, labels=ids * 2), ome) is None
    assert reopened_result(ome, ids * 2) == {}
    assert reopened_result(tif, ids)["source"] == "/data/scan.tif"


def test_a_result_named_too_long_for_its_provenance_is_not_saved(tmp_path):
    """Saved with File > Save under a name near the 255-byte limit, a result's labels were
    written, then the save failed with "[Errno 36] File name too long" for a provenance
    file the user never named, and the file reopened as a plain mask. The name is refused
    first, saying by how much it is too long, and nothing is written."""
    from napari.layers import Labels

    from napari_cytomask._writer import LabelsNotSaved, write_labels_layer
    from napari_cytomask.io.export import provenance_beside, reopened_result

    cells = np.zeros((16, 16), np.uint16)
    cells[2:8, 2:8] = 1
    record = {"role": "result", "source": "/data/scan.tif", "method": "unet"}
    result = Labels(cells, name="cells", metadata={"cytomask": record})
    data, meta, _ = result.as_layer_data_tuple()
    stem = "HeLa " + "é" * 100 + "x" * 34  # "_provenance.json" after it: 255 bytes
    fits = tmp_path / f"{stem}.tif"
    assert write_labels_layer(str(fits), data, meta) == [str(fits), str(provenance_beside(fits))]
    assert reopened_result(fits, cells)["source"] == "/data/scan.tif"
    too_long = tmp_path / "long" / f"{stem}x.tif"
    too_long.parent.mkdir()
    with pytest.raises(LabelsNotSaved) as refused:
        write_labels_layer(str(too_long), data, meta)
    assert str(refused.value) == (
        f"The name {too_long.name} is too long for the provenance file saved beside it, which "
        "keeps it the result of its scan: named after its stem with _provenance.json, that "
        "file's name would have 256 bytes, 1 more than the 255 a file name may have; choose "
        "a name at least 1 byte shorter. Nothing was written."
    )
    assert list(too_long.parent.iterdir()) == []
    # A mask of one's own has no provenance: its name may take every byte.
    mask = Labels(cells, name="mask")
    data, meta, _ = mask.as_layer_data_tuple()
    assert write_labels_layer(str(too_long), data, meta) == [str(too_long)]


def test_file_save_that_writes_the_labels_but_not_their_provenance_says_so(tmp_path, monkeypatch):
    """On a disk with room for the labels alone, File > Save said "Could not save
    cells_provenance.json ... Nothing was written", though cells.tif had been written,
    without what makes it the result of its scan."""
    import errno

    from napari.layers import Labels

    from napari_cytomask._writer import LabelsNotSaved, write_labels_layer
    from napari_cytomask.io import export as export_module
    from napari_cytomask.io.atomic import WriteError

    def full(path, *args, **kwargs):
        raise WriteError(errno.ENOSPC, f"Could not save {path}: the disk is full. Nothing was "
                         "written and existing files are unchanged.")  # fmt: skip

    monkeypatch.setattr(export_module, "write_json", full)
    cells = np.zeros((16, 16), np.uint16)
    cells[2:8, 2:8] = 1
    record = {"role": "result", "source": "/data/scan.tif", "method": "unet"}
    data, meta, _ = Labels(cells, name="cells", metadata={"cytomask": record}).as_layer_data_tuple()
    with pytest.raises(LabelsNotSaved) as caught:
        write_labels_layer(str(tmp_path / "cells.tif"), data, meta)
    assert str(caught.value) == (
        "cells.tif was saved, but its provenance cells_provenance.json could not be (the disk "
        "is full): it opens as labels of its own, without the scan and settings that made "
        "them. Save again once that is mended."
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cells.tif"), cells)


def test_file_save_of_a_name_without_an_ending_saves_a_tiff(tmp_path):
    """napari's Save Selected Layers fills in the layer's name, with no ending: with this
    writer chosen, the save failed ("Cannot tell the format of 'phase U-Net cells'")
    where napari's own writer saves a TIFF."""
    from napari.layers import Labels

    from napari_cytomask._writer import write_labels_layer
    from napari_cytomask.io.export import provenance_beside, reopened_result

    cells = np.zeros((16, 16), np.uint16)
    cells[2:8, 2:8] = 1
    record = {"role": "result", "source": "/data/scan.tif", "method": "unet"}
    data, meta, _ = Labels(cells, name="cells", metadata={"cytomask": record}).as_layer_data_tuple()
    named = tmp_path / "phase U-Net cells"
    saved = tmp_path / "phase U-Net cells.tif"
    assert write_labels_layer(str(named), data, meta) == [str(saved), str(provenance_beside(saved))]
    np.testing.assert_array_equal(tifffile.imread(saved), cells)
    assert reopened_result(saved, cells)["source"] == "/data/scan.tif"


def test_file_save_never_replaces_the_scan_a_layer_belongs_to(tmp_path):
    """Saved with File > Save over the scan it was segmented from, a result replaced the
    7 MB phase-contrast scan with 56 KB of labels (napari's dialog asks only whether to
    replace a file); so did a mask channel saved over its scan, losing the others."""
    from napari.layers import Labels

    from napari_cytomask._reader import get_reader
    from napari_cytomask._writer import LabelsNotSaved, write_labels_layer

    scan = tmp_path / "scan.tif"
    phase = np.random.default_rng(0).integers(100, 4000, (16, 16), np.uint16)
    mask = np.zeros((16, 16), np.uint16)
    mask[2:8, 2:8] = 1
    tifffile.imwrite(scan, np.stack([phase, mask]), imagej=True,
                     metadata={"axes": "CYX", "Labels": ["phase", "mask"]})  # fmt: skip
    before = scan.read_bytes()
    (mask_data, mask_kwargs, kind), = [t for t in get_reader(str(scan))(str(scan))
                                       if t[2] == "labels"]  # fmt: skip
    channel = Labels(mask_data, **mask_kwargs)
    record = {"role": "result", "source": str(scan), "method": "unet"}
    result = Labels(mask, name="cells", metadata={"cytomask": record})
    for layer, said in [
        (channel, "scan.tif holds this mask and 1 other channel of its scan: saving the layer "
                  "there would replace them all with its labels."),
        (result, "scan.tif is the scan these cells were computed from: saving them there "
                 "would replace its images with the labels."),
    ]:  # fmt: skip
        data, meta, _ = layer.as_layer_data_tuple()
        with pytest.raises(LabelsNotSaved) as refused:
            write_labels_layer(str(scan), data, meta)
        assert str(refused.value) == f"{said} Choose another name; nothing was written."
        assert scan.read_bytes() == before
    # A mask's own file, opened and edited, is replaced as napari's dialog asked.
    own = tmp_path / "mask.tif"
    tifffile.imwrite(own, mask)
    ((data, kwargs, _),) = get_reader(str(own))(str(own))
    data, meta, _ = Labels(data + 1, **kwargs).as_layer_data_tuple()
    assert write_labels_layer(str(own), data, meta) == [str(own)]
    np.testing.assert_array_equal(tifffile.imread(own), mask + 1)
    # Damaged since it was opened, it might hold other channels: not replaced unchecked.
    own.write_bytes(own.read_bytes()[:200])
    with pytest.raises(
        LabelsNotSaved,
        match="mask.tif is the file this mask was opened from, "
        "and it cannot be read now to check that it holds no other channel",
    ):
        write_labels_layer(str(own), data, meta)
    own.unlink()  # deleted since: nothing there to lose
    assert write_labels_layer(str(own), data, meta) == [str(own)]


def _open_handles(path) -> list[str]:
    """This process's open files (and memory maps) of ``path`` (Linux)."""
    target = os.path.realpath(path)
    fds = [os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")]
    maps = [line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()]
    return [name for name in [*fds, *maps] if name == target]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc's open files")
def test_a_file_read_for_its_settings_is_closed_after(tmp_path):
    """Left open until Python's garbage collector came by, a mask read to check File >
    Save, for its pixel size or as labels could not be replaced on Windows."""
    import gc

    from napari.layers import Labels

    from napari_cytomask._reader import get_reader
    from napari_cytomask._writer import write_labels_layer
    from napari_cytomask.batch import masks_only
    from napari_cytomask.io.files import file_pixel_size, read_labels

    own = tmp_path / "mask.tif"
    mask = np.repeat(np.arange(8, dtype=np.uint16), 8 * 64).reshape(64, 64)
    tifffile.imwrite(own, mask)
    ((data, kwargs, _),) = get_reader(str(own))(str(own))
    data, meta, _ = Labels(np.asarray(data), **kwargs).as_layer_data_tuple()
    gc.collect()
    gc.disable()  # what the collector would close is not counted as closed
    try:
        assert file_pixel_size(own) is None and _open_handles(own) == []
        np.testing.assert_array_equal(read_labels(own)[0], mask)
        assert _open_handles(own) == []
        assert masks_only([own]) and _open_handles(own) == []
        assert write_labels_layer(str(own), data, meta) == [str(own)]
        assert _open_handles(own) == []
    finally:
        gc.enable()


def _placed_result(translate, shape=(16, 16)):
    """A result layer placed beside its scan: moved by ``translate`` µm."""
    from napari.layers import Labels

    cells = np.zeros(shape, np.uint16)
    cells[..., 2:8, 3:9] = 1
    record = {"role": "result", "source": "/data/scan.tif", "method": "sam2"}
    return Labels(cells, name="cells", scale=(0.65,) * len(shape), units=("µm",) * len(shape),
                  translate=translate, metadata={"cytomask": record})  # fmt: skip


def test_an_exported_result_is_placed_where_it_lay_beside_its_scan(tmp_path):
    """A tile's cells at its stage position (0, 166.4 µm), or a SAM2 result of a coarser
    level moved by half its pixel, were exported without their offset: reopened, they lay
    at the scan's corner, and the table's centroids in µm were off by as much. The offset
    is each OME plane's position, the provenance keeps it for TIFF, the reader places the
    layer there again, and the centroids in µm are where napari shows the cells."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.export import from_layer

    layer = _placed_result((1.305, 166.4))
    export_labels([from_layer(layer)], tmp_path, formats=["tiff", "ome-tiff"])
    with tifffile.TiffFile(tmp_path / "cells.ome.tif") as tif:
        plane = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["Plane"]
    assert (plane["PositionY"], plane["PositionX"]) == (1.305, 166.4)
    assert plane["PositionYUnit"] == plane["PositionXUnit"] == "µm"
    prov = json.loads((tmp_path / "cells_provenance.json").read_text())
    assert prov["translate"] == [1.305, 166.4]
    for name in ("cells.tif", "cells.ome.tif"):
        path = str(tmp_path / name)
        ((_, kwargs, kind),) = get_reader(path)(path)
        assert kind == "labels" and kwargs["translate"] == (1.305, 166.4)
        assert "translate" not in kwargs["metadata"]["cytomask"]
    with open(tmp_path / "cells_objects.csv", encoding="utf-8") as handle:
        (row,) = csv.DictReader(handle)
    world = layer.data_to_world((float(row["centroid_y"]), float(row["centroid_x"])))
    assert (float(row["centroid_y_um"]), float(row["centroid_x_um"])) == pytest.approx(world)


def test_a_result_saved_with_file_save_is_placed_where_it_lay(tmp_path):
    """napari's File > Save through the plugin's writer keeps the offset as the export
    does: in the OME-TIFF's planes and the provenance, from which the reader places it."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask._writer import write_labels_layer
    from napari_cytomask.io.tiff import describe_tiff

    data, meta, _ = _placed_result((0.0, 10.0, 20.0), (2, 16, 16)).as_layer_data_tuple()
    for name in ("tiff/cells.tif", "ome/cells.ome.tif"):  # each with its provenance
        path = tmp_path / name
        path.parent.mkdir()
        write_labels_layer(str(path), data, meta)
        ((_, kwargs, _),) = get_reader(str(path))(str(path))
        assert kwargs["translate"] == (0.0, 10.0, 20.0)
    with tifffile.TiffFile(tmp_path / "ome" / "cells.ome.tif") as tif:
        planes = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["Plane"]
    assert [(p["PositionY"], p["PositionX"]) for p in planes] == [(10.0, 20.0)] * 2
    # One position for the whole file, no tiles to stitch.
    assert describe_tiff(tmp_path / "ome" / "cells.ome.tif").positions is None


def test_one_tracked_cell_keeps_its_id_in_every_frame(tmp_path):
    """A time-lapse of one tracked cell, id 7 in each of 3 frames, was taken for a binary
    mask (one value, 3 regions over the stack) and exported as cells 1, 2 and 3 with a
    note saying so. One region in every frame is one cell: exported as it is."""
    labels = np.zeros((3, 32, 32), np.uint16)
    for t in range(3):
        labels[t, 5:12, 4 + 5 * t : 11 + 5 * t] = 7  # it moves a little
    notes = []
    export = LabelsExport("track", labels, axis_labels=("T", "Y", "X"))
    export_labels([export], tmp_path, note=notes.append)
    assert notes == []
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "track.tif"), labels)
    with open(tmp_path / "track_objects.csv", newline="") as f:
        assert [row["label"] for row in csv.DictReader(f)] == ["7", "7", "7"]


def test_an_exported_result_without_background_opens_as_labels_again(tmp_path):
    """A SAM2 result covering the whole field (every pixel in some mask, none at 0) was
    exported, then reopened as an image: neither labels nor the result of its scan, nor
    where it lay beside it. A label file its export lists opens as those labels."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.export import from_layer

    layer = _placed_result((1.305, 1.305))
    layer.data = np.where(layer.data == 0, 2, layer.data).astype(np.uint16)
    export_labels([from_layer(layer)], tmp_path, objects_csv=False)
    path = str(tmp_path / "cells.tif")
    ((data, kwargs, kind),) = get_reader(path)(path)
    assert kind == "labels" and kwargs["translate"] == (1.305, 1.305)
    assert kwargs["metadata"]["cytomask"]["role"] == "result"
    np.testing.assert_array_equal(data, layer.data)


def test_a_binary_mask_is_exported_by_its_separate_regions_and_said(tmp_path):
    """A 0/1 mask of 41 blobs, exported from the dock, was counted as one cell (one row of
    objects, a count of 1) without a word, where `cytomask export` counted its 41."""
    labels = np.zeros((2, 32, 32), np.uint8)
    labels[:, 2:10, 2:10] = 1  # in both frames: a cell in each, not one through both
    labels[0, 20:30, 20:30] = 1
    notes = []
    export_labels([LabelsExport("mask", labels * 255)], tmp_path, note=notes.append)
    assert notes == [
        "'mask' holds one value (255) for every cell, a binary mask: its 3 separate regions "
        "are taken as the cells (cells that touch stay one)."
    ]
    with open(tmp_path / "mask_counts.csv", newline="") as f:
        assert [row["cells"] for row in csv.DictReader(f)] == ["2", "1"]
    exported = tifffile.imread(tmp_path / "mask.tif")
    assert exported.max() == 3 and np.array_equal(exported > 0, labels > 0)
    # A volume's regions are 3-D: the cell through both planes is one.
    volume = LabelsExport("volume", labels, axis_labels=("Z", "Y", "X"))
    with pytest.warns(UserWarning, match="'volume' holds one value .1.* its 2 separate"):
        export_labels([volume], tmp_path)
    assert tifffile.imread(tmp_path / "volume.tif").max() == 2
    # Labels a step made are kept as it made them, and so are cell ids and one value in
    # every pixel (no mask), without a word.
    made = LabelsExport("made", labels, method="watershed_split")
    ids = LabelsExport("ids", labels * np.arange(1, 33, dtype=np.uint8)[:, None])
    full = LabelsExport("full", np.full((2, 8, 8), 7, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_labels([made, ids, full], tmp_path)
    for export in (made, ids, full):
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / f"{export.name}.tif"), export.labels
        )


def test_a_label_file_another_program_saved_over_an_export_is_no_longer_its_result(tmp_path):
    """Edited in another program and saved over the export (same name, same shape), a
    label file still opened as the export's U-Net result: its ids were not compared with
    those the provenance records, so the metrics and a new export called hand-drawn labels
    the model's."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.layers import METADATA_KEY

    cells = _exported_result(tmp_path)
    ((data, kwargs, _),) = get_reader(str(cells))(str(cells))
    assert kwargs["metadata"][METADATA_KEY]["method"] == "unet"
    # The same ids in another integer type are the same labels.
    tifffile.imwrite(cells, np.asarray(data).astype(np.uint16))
    ((_, kwargs, _),) = get_reader(str(cells))(str(cells))
    assert kwargs["metadata"][METADATA_KEY]["method"] == "unet"
    edited = np.asarray(data).copy()
    edited[0, 10:14, 10:14] = 5  # a cell drawn in a frame the U-Net left out
    tifffile.imwrite(cells, edited)
    with pytest.warns(
        UserWarning,
        match=r"^Labels opened without their record: cells.tif was changed after its export "
        r"\(its ids are not those cells_provenance.json records\)",
    ):
        ((data, kwargs, kind),) = get_reader(str(cells))(str(cells))
    assert kind == "labels"
    assert kwargs["metadata"][METADATA_KEY].get("method") is None
    np.testing.assert_array_equal(data, edited)


def test_an_ome_tiff_export_keeps_the_stage_positions_of_its_scan(shared_data, tmp_path):
    """Labels of a Micro-Manager scan of two stage positions were exported as an OME-TIFF
    of two images without their positions: nothing could place them beside the tiles.
    Each position's planes keep its stage position, as the microscope wrote it, in the
    dock's export and in napari's File > Save."""
    from napari_cytomask._writer import write_labels_layer
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE
    from napari_cytomask.io.tiff import describe_tiff

    scan = shared_data / "tiff-formats/ome-tiff-samples/singles"
    scan = scan / "181003_multi_pos_time_course_1_MMStack.ome.tif"
    where = describe_tiff(scan).positions
    assert len(where) == 2 and where[0] != where[1]
    labels = np.zeros((2, 3, 32, 32), np.uint16)
    labels[:, :, 4:12, 4:12] = 1
    geometry = {"scale": (1, 5, 5.2, 5.2), "units": ("pixel", "s", "µm", "µm"),
                "axis_labels": ("P", "T", "Y", "X")}  # fmt: skip
    export = LabelsExport("cells", labels, source=str(scan), **geometry)
    export_labels([export], tmp_path, formats=["ome-tiff"], objects_csv=False)
    (written,) = tmp_path.glob("*.ome.tif")
    np.testing.assert_allclose(describe_tiff(written).positions, where)
    # File > Save of the result layer.
    record = {"role": RESULT_ROLE, "source": str(scan), "method": "unet", "parameters": {}}
    meta = {**geometry, "name": "cells", "metadata": {METADATA_KEY: record}}
    saved = write_labels_layer(str(tmp_path / "saved.ome.tif"), labels, meta)
    np.testing.assert_allclose(describe_tiff(saved[0]).positions, where)


def test_an_export_names_each_position_as_its_scan_does(tmp_path):
    """The tables and the OME-TIFF of a scan's labels said P0, P1 … of positions the scan
    names ("Usiigaci set11", a well and site on a plate's scans): which row is which well
    was left to look up. The tables have a ``position_name`` column, the OME-TIFF's images
    the names, in the dock's export, the command line's and napari's File > Save."""
    from napari_cytomask._sample_data import sample_scan_path
    from napari_cytomask._writer import write_labels_layer
    from napari_cytomask.io.files import read_labels
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE
    from napari_cytomask.io.tiff import describe_tiff

    scan = sample_scan_path()
    names = describe_tiff(scan).position_names
    assert names == ("Usiigaci set11", "Usiigaci set12", "Usiigaci set30", "Usiigaci set40")
    labels = np.zeros((4, 32, 32), np.uint16)
    labels[:, 4:12, 4:12] = 1
    labels[2, 20:24, 20:24] = 2
    geometry = {"scale": (1.0, 0.87, 0.87), "units": ("pixel", "µm", "µm"), "axis_labels": "PYX"}
    export = LabelsExport("cells", labels, source=scan, **geometry)
    export_labels([export], tmp_path, formats=["ome-tiff"])
    with open(tmp_path / "cells_objects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["p"], r["position_name"], r["label"]) for r in rows] == [
        ("0", names[0], "1"), ("1", names[1], "1"), ("2", names[2], "1"), ("2", names[2], "2"),
        ("3", names[3], "1"),
    ]  # fmt: skip
    with open(tmp_path / "cells_counts.csv", newline="") as handle:
        counts = [(r["position_name"], r["cells"]) for r in csv.DictReader(handle)]
    assert counts == [(names[0], "1"), (names[1], "1"), (names[2], "2"), (names[3], "1")]
    assert describe_tiff(tmp_path / "cells.ome.tif").position_names == names
    # File > Save of the result layer.
    record = {"role": RESULT_ROLE, "source": scan, "method": "unet", "parameters": {}}
    meta = {**geometry, "name": "cells", "metadata": {METADATA_KEY: record}}
    saved = write_labels_layer(str(tmp_path / "saved.ome.tif"), labels, meta)[0]
    assert describe_tiff(saved).position_names == names
    # Exported again without the scan (results shared without the raw data): the names its
    # provenance records; read back from the OME-TIFF alone, the names as they were (the
    # file's name was put in front of them again at every export).
    again = tmp_path / "again"
    (tmp_path / "elsewhere").mkdir()
    for exported in ("cells.ome.tif", "cells_provenance.json"):
        (tmp_path / exported).rename(tmp_path / "elsewhere" / exported)
    record = json.loads((tmp_path / "elsewhere" / "cells_provenance.json").read_text())
    assert record["position_names"] == list(names)
    opened = tmp_path / "elsewhere" / "cells.ome.tif"
    reopened = reopened_result(opened, read_labels(opened)[0])
    gone = {**exported_fields(reopened), "source": str(tmp_path / "no scan.ome.tif")}
    export_labels([LabelsExport("cells", labels, **geometry, **gone)], again, formats=["ome-tiff"])
    with open(again / "cells_counts.csv", newline="") as handle:
        assert [r["position_name"] for r in csv.DictReader(handle)] == list(names)
    assert describe_tiff(again / "cells.ome.tif").position_names == names
    # Labels of one position, or of other scans, have none.
    one = LabelsExport("one", labels[0], source=scan)
    export_labels([one], tmp_path)
    with open(tmp_path / "one_objects.csv", newline="") as handle:
        assert "position_name" not in next(csv.DictReader(handle))


def test_files_already_there_are_listed_for_each_export_of_one_name(tmp_path):
    """`cytomask export set1/raw_unet_cells.tif set2/raw_unet_cells.tif` into a folder
    holding both earlier exports said 4 files were there, set2's: set1's, of the same
    layer name, were dropped from the list."""
    labels = np.eye(8, dtype=np.uint8)
    exports = [LabelsExport("raw_unet_cells", labels * k, source=f"/data/set{k}/raw.tif")
               for k in (1, 2)]  # fmt: skip
    written = export_labels(exports, tmp_path, objects_csv=False)
    with pytest.raises(ExportExists) as err:
        export_labels(exports, tmp_path, objects_csv=False)
    assert sorted(err.value.paths) == sorted(written) and len(written) == 4
    assert err.value.layers == ["raw_unet_cells"]


def test_single_channel_files_of_other_names_stack_into_one_table(tmp_path, shared_data):
    """A file's single channel is named after the file: the cells of well A01.tif were
    measured as 'mean_A01' and those of A02.tif as 'mean_A02', so a plate's tables, which
    name their file (``source_file``) to be stacked into one, did not line up column by
    column. Both now measure it as 'mean_intensity'; a channel the file names keeps its
    name."""
    import pandas as pd
    from napari.layers import Image, Labels

    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.export import from_layer
    from napari_cytomask.io.layers import result_metadata

    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:64, :64]
    cells = np.zeros((64, 64), np.uint16)
    cells[10:30, 10:30], cells[40:60, 5:25] = 1, 2
    tables = []
    for well in ("A01", "A02"):
        path = tmp_path / f"{well}.tif"
        tifffile.imwrite(path, raw)
        [(data, kwargs, _)] = get_reader(str(path))(str(path))
        image = Image(data, **kwargs)
        labels = Labels(cells, name=f"{well} U-Net cells",
                        metadata=result_metadata(image, method="unet"))  # fmt: skip
        export_labels([from_layer(labels, [image])], tmp_path / "out", formats=["tiff"])
        tables.append(pd.read_csv(tmp_path / "out" / f"{well} U-Net cells_objects.csv"))
    plate = pd.concat(tables)
    assert [c for c in plate.columns if c.startswith("mean_")] == ["mean_intensity"]
    assert plate["mean_intensity"].tolist() == [raw[cells == i].mean() for i in (1, 2)] * 2
    assert plate["source_file"].map(lambda f: os.path.basename(f)).tolist() == [
        "A01.tif", "A01.tif", "A02.tif", "A02.tif"
    ]  # fmt: skip

    # A channel the file names is measured under its name.
    named = tmp_path / "named.ome.tif"
    tifffile.imwrite(named, raw[None], metadata={"axes": "CYX", "Channel": {"Name": ["Phase"]}})
    [(data, kwargs, _)] = get_reader(str(named))(str(named))
    image = Image(data, **kwargs)
    labels = Labels(cells, name="Phase U-Net cells",
                    metadata=result_metadata(image, method="unet"))  # fmt: skip
    assert list(from_layer(labels, [image]).intensities) == ["Phase"]


@pytest.mark.parametrize(
    ("turn", "turned"),
    [({"rotate": 30}, True), ({"shear": [0.2]}, True), ({}, False),
     ({"affine": [[1, 0.3, 0], [0, 1, 0], [0, 0, 1]]}, True),
     ({"affine": [[1, 0, 5], [0, 1, 3], [0, 0, 1]]}, False)],  # moved, not turned
)  # fmt: skip
def test_an_export_of_a_turned_layer_says_its_files_keep_its_rows_and_columns(
    tmp_path, turn, turned
):
    """A layer rotated 30° in the viewer: its table put a cell 15 µm from where the viewer
    showed it, and its files reopened unrotated, unsaid."""
    from napari.layers import Labels

    from napari_cytomask.io.export import from_layer

    labels = np.zeros((16, 16), np.uint8)
    labels[4:9, 4:9] = 1
    layer = Labels(labels, name="cells", scale=(0.5, 0.5), units="µm", **turn)
    said = []
    export_labels([from_layer(layer)], tmp_path / "out", note=said.append)
    expected = "'cells' is rotated or sheared in the viewer: its files, and its cells' positions"
    assert [s for s in said if s.startswith(expected)] == (said if turned else [])
    assert len(said) == turned


def test_a_colour_pictures_colours_are_measured_apart():
    """A colour picture beside the cells gave them no intensity column, unsaid."""
    from napari.layers import Image, Labels

    from napari_cytomask.io.export import from_layer

    rng = np.random.default_rng(3)
    photo = Image(rng.integers(0, 255, (12, 12, 4), dtype=np.uint8), name="photo", rgb=True)
    cells = np.zeros((12, 12), np.uint8)
    cells[2:6, 2:7], cells[8:11, 1:11] = 1, 2
    export = from_layer(Labels(cells, name="cells"), [photo])
    assert list(export.intensities) == ["photo red", "photo green", "photo blue"]
    rows = object_rows(export)
    for row in rows:
        for i, colour in enumerate(("red", "green", "blue")):
            want = photo.data[..., i][cells == row["label"]].mean()
            assert row[f"mean_photo {colour}"] == pytest.approx(want)


def test_a_home_folder_written_as_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """A script's export to "~/out" made a folder named ~ in the current folder, where
    models are read from "~/…" as the home folder."""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir(), here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    labels = np.zeros((16, 16), np.uint8)
    labels[2:8, 2:8] = 1
    written = export_labels([LabelsExport("cells", labels)], "~/out", formats=["tiff"])
    assert {path.parent for path in written} == {home / "out"} and list(here.iterdir()) == []


def test_a_scale_in_no_length_is_said_and_no_file_or_table_holds_it(tmp_path):
    """Scaled 0.65 in pixels: the ImageJ TIFF, the OME-TIFF and the tables agree that it
    holds no pixel size, and the export says why its sizes are in pixels."""
    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6] = 1
    export = LabelsExport("cells", labels, scale=(0.65, 0.65), units=("pixel", "pixel"))
    notes = []
    drain(exporting([export], tmp_path, formats=["tiff", "ome-tiff"], note=notes.append))
    assert notes == [
        "'cells' is scaled 0.65 × 0.65 in no unit of length (its units are pixels), so its "
        "files and tables count in pixels. For sizes in µm, give its image a pixel size "
        "(Pixel size in step 2) and segment again."
    ]
    for name in ("cells.tif", "cells.ome.tif"):
        ((_, kwargs, _),) = read_tiff(tmp_path / name)
        assert kwargs["scale"] == (1.0, 1.0)
    with tifffile.TiffFile(tmp_path / "cells.tif") as tif:
        assert "unit" not in tif.imagej_metadata
    (row,) = csv.DictReader((tmp_path / "cells_objects.csv").open())
    assert row["area"] == "16" and "area_um2" not in row


def test_a_layer_that_cannot_be_exported_is_left_out_and_the_others_written(tmp_path):
    """Given ``left_out``, a layer of no labels at all is left out, said, and the others
    are written; of a layer PNG cannot hold (ids over 65535), its PNG alone (its TIFF was
    not written either); one left out last of all is raised."""
    cells = np.zeros((8, 8), np.uint32)
    cells[2:6, 2:6] = 1
    exports = [
        LabelsExport("stitched", cells * 70_000),
        LabelsExport("cells", cells),
        LabelsExport("map", cells * 0.5),
    ]
    left, notes = [], []

    def left_out(export, err):
        left.append((export.name, str(err)))

    written = drain(
        exporting(exports, tmp_path, formats=["tiff", "png"], left_out=left_out, note=notes.append)
    )
    assert [name for name, _ in left] == ["map"] and "fractional values" in left[0][1]
    (said,) = [text for text in notes if text.startswith("'stitched'")]
    assert said.startswith("'stitched': stitched.png left out, its other files written: ")
    assert "PNG holds ids up to 65535" in said
    assert sorted(p.name for p in written) == sorted(p.name for p in tmp_path.iterdir())
    assert {p.name for p in written if p.suffix in (".tif", ".png")} == {
        "cells.tif",
        "cells.png",
        "stitched.tif",
    }
    assert tifffile.imread(tmp_path / "stitched.tif").max() == 70_000
    with pytest.raises(ValueError, match="PNG holds ids up to 65535"):
        drain(exporting(exports[:1], tmp_path / "alone", formats=["png"], left_out=print))
    assert not (tmp_path / "alone").exists() or not any((tmp_path / "alone").iterdir())


def test_a_tiff_of_ids_fiji_rounds_is_written_exactly_and_said(tmp_path):
    """Fiji opens 32-bit ids as 32-bit decimals, exact up to 16,777,216: ids of stitched
    tiles above that became their neighbours' there, unsaid. The TIFFs keep them exactly;
    ids Fiji holds, and 64-bit ids (which it does not open, as the writer says), are not
    said to be rounded."""
    cells = np.zeros((8, 8), np.uint32)
    cells[1:3, 1:3], cells[4:7, 4:7] = 2**24 + 1, 2**24 + 2
    notes = []
    formats = ["tiff", "ome-tiff", "npy"]
    drain(exporting([LabelsExport("stitched", cells)], tmp_path, formats=formats,
                    note=notes.append))  # fmt: skip
    assert notes == [
        "stitched.tif and stitched.ome.tif hold ids up to 16777218: napari and Python read "
        "them exactly, but Fiji and ImageJ open them as 32-bit decimals, which round ids "
        "above 16,777,216 (two cells of nearby ids can become one); for Fiji, export the "
        "labels with 'Renumber cells 1, 2, 3…' ticked (Export labels: step 5 of Segment "
        "cytoplasm, or File > IO Utilities)."
    ]
    for name in ("stitched.tif", "stitched.ome.tif"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / name), cells)
    notes.clear()
    inside = cells > 0
    exact = LabelsExport("exact", np.where(inside, cells - 2, 0))  # up to 2**24
    wide = LabelsExport("wide", np.where(inside, cells.astype(np.uint64) + 2**32, 0))
    drain(exporting([exact, wide], tmp_path, formats=["tiff"], note=notes.append))
    assert len(notes) == 1 and "take 64 bits" in notes[0]


def test_an_export_renumbers_the_cells_1_2_3_through_the_stack(tmp_path):
    """Ids over 16,777,216 (stitched or merged labels) are rounded by Fiji: the note told
    the user to renumber the cells 1, 2, 3… with no way to do it. An export does it when
    asked, through the stack (a cell keeps one id in every frame), in every file and table
    alike, the features with the cells; its provenance says so. The labels exported from
    are left as they are, and, renumbered, they hold no id Fiji rounds."""
    cells = np.zeros((2, 8, 8), np.uint64)
    cells[0, 1:3, 1:3] = cells[1, 1:4, 1:4] = 2**40 + 5  # one cell, in both frames
    cells[1, 5:7, 5:7] = 2**24 + 3
    before = cells.copy()
    features = {"label": np.array([2**24 + 3, 2**40 + 5], np.uint64), "score": [0.25, 0.75]}
    export = LabelsExport("stitched", cells, axis_labels=("T", "Y", "X"), features=features)
    notes = []
    drain(exporting([export], tmp_path, formats=["tiff", "png"], coco_json=True,
                    score_column="score", renumber=True, note=notes.append))  # fmt: skip
    renumbered = np.select([cells == 2**24 + 3, cells == 2**40 + 5], [1, 2], 0)
    assert notes == []
    np.testing.assert_array_equal(cells, before)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "stitched.tif"), renumbered)
    for t in range(2):
        np.testing.assert_array_equal(iio.imread(tmp_path / f"stitched_T{t}.png"), renumbered[t])
    with open(tmp_path / "stitched_objects.csv", encoding="utf-8") as table:
        rows = [(row["t"], row["label"], row["score"]) for row in csv.DictReader(table)]
    assert rows == [("0", "2", "0.75"), ("1", "1", "0.25"), ("1", "2", "0.75")]
    coco = json.loads((tmp_path / "stitched_coco.json").read_text())
    assert [(a["image_id"], a["label"], a["score"]) for a in coco["annotations"]] == [
        (1, 2, 0.75), (2, 1, 0.25), (2, 2, 0.75)
    ]  # fmt: skip
    assert json.loads((tmp_path / "stitched_provenance.json").read_text())["renumbered"] is True
    drain(exporting([export], tmp_path / "as_they_are", note=notes.append))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "as_they_are" / "stitched.tif"), cells)
    provenance = json.loads((tmp_path / "as_they_are" / "stitched_provenance.json").read_text())
    assert provenance["renumbered"] is False


@pytest.mark.parametrize("name", ["cells.tif", "cells.ome.tif"])
def test_file_save_of_ids_fiji_rounds_says_so(tmp_path, monkeypatch, name):
    """The export said that Fiji rounds ids over 16,777,216 of a TIFF; napari's File > Save
    of the same labels through the plugin wrote them without a word. Saved from a script,
    with no napari window to show notifications, it says so as a warning, of a lazy layer
    too (in napari's window, see the plugin's GUI tests); ids Fiji holds exactly, and a PNG
    or NumPy file, are not said to be rounded."""
    import dask.array as da
    from napari.layers import Labels
    from napari.utils.events import EventEmitter
    from napari.utils.notifications import notification_manager

    from napari_cytomask._writer import write_labels_layer

    # No window: nothing receives napari's notifications (an earlier test's Qt app would).
    unheard = EventEmitter(source=notification_manager, type_name="notification_ready")
    monkeypatch.setattr(notification_manager, "notification_ready", unheard)

    cells = np.zeros((8, 8), np.uint32)
    cells[1:3, 1:3], cells[4:7, 4:7] = 2**24 + 1, 2**24 + 2
    data, meta, _ = Labels(cells, name="stitched").as_layer_data_tuple()
    said = (
        f"{name} holds ids up to 16777218: napari and Python read it exactly, but Fiji and "
        "ImageJ open it as 32-bit decimals, which round ids above 16,777,216 (two cells of "
        "nearby ids can become one); for Fiji, export the labels with 'Renumber cells 1, 2, "
        "3…' ticked (Export labels: step 5 of Segment cytoplasm, or File > IO Utilities)."
    )
    for labels in (data, da.from_array(data, chunks=4)):
        with pytest.warns(UserWarning) as caught:
            written = write_labels_layer(str(tmp_path / name), labels, meta)
        assert [str(w.message) for w in caught] == [said]
        np.testing.assert_array_equal(tifffile.imread(written[0]), cells)
    # A lazy layer's labels are read once: the largest id the writer finds serves the note.
    reads = []

    class Lazy:
        dtype, shape, ndim = cells.dtype, cells.shape, cells.ndim

        def __array__(self, dtype=None, copy=None):
            reads.append(1)
            return cells

    with pytest.warns(UserWarning, match="round ids above 16,777,216"):
        write_labels_layer(str(tmp_path / name), Lazy(), meta)
    assert len(reads) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_labels_layer(str(tmp_path / name), cells - 2 * (cells > 0), meta)  # up to 2**24
        write_labels_layer(str(tmp_path / "cells.npy"), data, meta)
