import errno
import os
import re
import warnings
from pathlib import Path

import imageio.v3 as iio
import npe2
import numpy as np
import pytest
import tifffile
from napari.layers import Labels

from napari_cytomask.io import atomic, writers
from napari_cytomask.io.atomic import WriteError
from napari_cytomask.io.tiff import read_tiff
from napari_cytomask.io.writers import (
    FILE_FORMATS,
    FORMATS,
    format_for,
    format_named,
    rounded_in_fiji,
    write_labels,
)
from napari_cytomask.labels import LabelsError


@pytest.fixture(scope="module")
def real_labels(shared_data) -> np.ndarray:
    return iio.imread(shared_data / "usiigaci-phc" / "set1" / "instances_ids.png")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", ["a.tif", "a.tiff", "a.ome.tif", "a.png", "a.npy"])
def test_round_trip_of_real_labels_is_identical(tmp_path, real_labels, name):
    assert real_labels.max() > 30  # real cells, not an empty image
    path = write_labels(tmp_path / name, real_labels)
    back = (
        np.load(path)
        if name.endswith(".npy")
        else (iio.imread(path) if name.endswith(".png") else tifffile.imread(path))
    )
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, real_labels)
    assert _files(tmp_path) == [name]  # no temporary file left


@pytest.mark.parametrize("name", ["big.tif", "big.ome.tif", "big.npy"])
def test_ids_beyond_16_bits_keep_every_id(tmp_path, name):
    labels = np.zeros((64, 64), np.int64)
    labels[:32] = 70_000
    labels[32:, :10] = 3
    path = write_labels(tmp_path / name, labels)
    back = np.load(path) if name.endswith(".npy") else tifffile.imread(path)
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, labels)


def test_dtype_is_the_smallest_that_holds_every_id(tmp_path):
    labels = np.zeros((8, 8), np.int64)
    labels[0, 0] = 300
    back = tifffile.imread(write_labels(tmp_path / "x.tif", labels))
    assert back.dtype == np.uint16 and back[0, 0] == 300


def test_imagej_tiff_keeps_pixel_size_and_stack_axes(tmp_path, real_labels):
    stack = np.stack([real_labels, np.roll(real_labels, 5, axis=1)])
    path = write_labels(
        tmp_path / "stack.tif",
        stack,
        scale=(1, 0.65, 0.65),
        units=("", "µm", "µm"),
        axis_labels=("P", "Y", "X"),
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TYX"
        assert tif.imagej_metadata["unit"] == "micron"
        x_resolution = tif.pages[0].tags["XResolution"].value
        assert x_resolution[0] / x_resolution[1] == pytest.approx(1 / 0.65, rel=1e-5)
        np.testing.assert_array_equal(tif.asarray(), stack)


def test_ome_tiff_has_physical_size_and_one_image_per_position(tmp_path, real_labels):
    stack = np.stack([real_labels, real_labels[::-1]])
    path = write_labels(
        tmp_path / "stack.ome.tif",
        stack,
        scale=(1, 0.5, 0.25),
        units=("", "micrometer", "µm"),
        axis_labels=("P", "Y", "X"),
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.series) == 2
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        pixels = ome[0]["Pixels"]
        assert pixels["PhysicalSizeX"] == pytest.approx(0.25)
        assert pixels["PhysicalSizeY"] == pytest.approx(0.5)
        assert pixels["PhysicalSizeXUnit"] == "µm"
        for i, series in enumerate(tif.series):
            np.testing.assert_array_equal(series.asarray(), stack[i])


def test_existing_file_is_never_overwritten(tmp_path, real_labels):
    target = tmp_path / "labels.tif"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="already exists"):
        write_labels(target, real_labels)
    assert target.read_bytes() == b"precious"
    assert _files(tmp_path) == ["labels.tif"]
    write_labels(target, real_labels, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(target), real_labels)


def test_full_disk_leaves_nothing_behind(tmp_path, real_labels, monkeypatch):
    target = tmp_path / "labels.tif"
    target_old = tmp_path / "old.tif"
    target_old.write_bytes(b"older result")

    def fill_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers.tifffile, "imwrite", fill_disk)
    with pytest.raises(WriteError, match="disk is full"):
        write_labels(target, real_labels)
    assert _files(tmp_path) == ["old.tif"]
    assert target_old.read_bytes() == b"older result"


def test_a_full_disk_is_said_also_when_a_writer_reports_it_in_its_own_words(tmp_path, monkeypatch):
    """torch.save and safetensors report a full disk as RuntimeError("basic_ios::clear:
    iostream error") or SafetensorError("I/O error"), not as OSError."""
    from collections import namedtuple

    def torch_save(path):
        Path(path).write_bytes(b"half a state")
        raise RuntimeError("basic_ios::clear: iostream error")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: usage(2 << 20, 2 << 20, 4096))
    with pytest.raises(WriteError) as caught:
        atomic.write_atomically(tmp_path / "model.training-state.pt", torch_save)
    assert str(caught.value).startswith(
        f"Could not save {tmp_path / 'model.training-state.pt'}: the disk is full. Nothing "
        "was written and existing files are unchanged; free some space or save to another"
    )
    assert caught.value.errno == errno.ENOSPC and _files(tmp_path) == []

    def refuse(path):
        raise ValueError("the labels hold negative ids")

    with pytest.raises(ValueError, match="negative ids"):  # the content's fault, not the disk's
        atomic.write_atomically(tmp_path / "cells.tif", refuse)
    # With room to spare the writer's own error is not mistaken for a full disk.
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: usage(1 << 40, 0, 1 << 40))
    with pytest.raises(RuntimeError, match="iostream error"):
        atomic.write_atomically(tmp_path / "model.training-state.pt", torch_save)
    assert _files(tmp_path) == []

    def save_file(path):  # safetensors removes its partial file and quotes the system
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(WriteError, match="the disk is full"):
        atomic.write_atomically(tmp_path / "model.safetensors", save_file)
    assert _files(tmp_path) == []

    def numpy_save(path):  # numpy's OSError carries no error number
        Path(path).write_bytes(b"half an array")
        raise OSError("4186112 requested and 143232 written")

    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: usage(2 << 20, 2 << 20, 4096))
    with pytest.raises(WriteError, match="cells.npy: the disk is full") as caught:
        atomic.write_atomically(tmp_path / "cells.npy", numpy_save)
    assert caught.value.errno == errno.ENOSPC and _files(tmp_path) == []


def test_any_system_error_a_writer_quotes_is_said_and_the_old_file_kept(tmp_path):
    """safetensors quotes every failed write of the system the same way: a file-size limit
    (EFBIG) or a quota went through as a traceback, not the one-line message of a full
    disk."""
    old = tmp_path / "model.safetensors"
    old.write_bytes(b"older weights")

    def save_file(path):
        Path(path).write_bytes(b"half the weights")
        raise Exception("Error while serializing: I/O error: File too large (os error 27)")

    with pytest.raises(WriteError) as caught:
        atomic.write_atomically(old, save_file, overwrite=True)
    assert str(caught.value) == (
        f"Could not save {old}: the file would be larger than the disk or a file-size limit "
        "allows. Nothing was written and existing files are unchanged; save to another disk "
        "or raise the file-size limit."
    )
    assert caught.value.errno == errno.EFBIG
    assert _files(tmp_path) == ["model.safetensors"] and old.read_bytes() == b"older weights"

    def unnumbered(path):
        raise Exception("Error while serializing: I/O error: failed to write whole buffer")

    with pytest.raises(WriteError, match=r"Input/output error\. Nothing was written") as caught:
        atomic.write_atomically(old, unnumbered, overwrite=True)
    assert caught.value.errno == errno.EIO and old.read_bytes() == b"older weights"


def test_read_only_folder_gives_a_clear_message(tmp_path, real_labels, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(WriteError, match="read-only.*Nothing was written"):
        write_labels(tmp_path / "labels.npy", real_labels)
    assert _files(tmp_path) == []


def test_png_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        write_labels(tmp_path / "a.png", np.ones((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="65535"):
        write_labels(tmp_path / "b.png", np.full((4, 4), 70_000))
    assert _files(tmp_path) == []


def test_float_images_are_refused_as_labels(tmp_path):
    with pytest.raises(LabelsError, match="fractional"):
        write_labels(tmp_path / "a.tif", np.random.default_rng(0).random((4, 4)))


def test_unknown_extension_names_the_choices():
    with pytest.raises(ValueError, match=r"\.ome\.tif") as caught:
        format_for("labels.jpg")
    assert ".ome.zarr" not in str(caught.value)  # written while segmenting only


@pytest.mark.parametrize("key", FORMATS)
def test_every_format_suffix_chooses_its_format(key):
    for suffix in FORMATS[key].suffixes:
        assert format_for(f"cells{suffix.upper()}") == key
        # The suffixes are the old command-line spellings of the formats.
        assert format_named(suffix) == format_named(suffix.lstrip(".")) == key
    assert format_named(key) == key


def test_write_labels_writes_every_file_format_and_refuses_stores(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for key in FILE_FORMATS:
        assert write_labels(tmp_path / f"cells{FORMATS[key].suffix}", labels).is_file()
    with pytest.raises(ValueError, match=r"OME-Zarr is written chunk by chunk.*\.ome\.tif"):
        write_labels(tmp_path / "cells.ome.zarr", labels)
    with pytest.raises(ValueError, match="unknown format 'jpeg'; use one of tiff, ome-tiff"):
        format_named("jpeg")


def test_napari_saves_labels_layers_through_the_plugin(tmp_path, real_labels):
    npe2.PluginManager.instance().discover()
    layer = Labels(real_labels, scale=(0.65, 0.65), units=("µm", "µm"), name="cells")
    written = layer.save(str(tmp_path / "cells.ome.tif"), plugin="napari-cytomask")
    assert written == [str(tmp_path / "cells.ome.tif")]
    np.testing.assert_array_equal(tifffile.imread(written[0]), real_labels)
    # napari's save dialog asks before replacing a file: the writer then replaces it.
    layer.data = real_labels[::-1].copy()
    assert layer.save(str(tmp_path / "cells.ome.tif"), plugin="napari-cytomask") == written
    np.testing.assert_array_equal(tifffile.imread(written[0]), real_labels[::-1])
    # napari takes a writer's ValueError for "not my file type" and drops its message:
    # what the file cannot hold reaches the user instead.
    stack = Labels(np.stack([real_labels, real_labels]), name="stack")
    with pytest.raises(Exception, match="PNG holds one 2D image but the labels have shape"):
        stack.save(str(tmp_path / "stack.png"), plugin="napari-cytomask")
    assert not (tmp_path / "stack.png").exists()


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path, real_labels):
    """Hidden temporaries of a dead process go on the next write to the same place; those
    of a running process, and other files' temporaries, stay."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = atomic._host()
    target = tmp_path / "cells.tif"
    killed = tmp_path / f".cells.tif.{host}-{int(dead.stdout)}.abcd1234.part"
    older = tmp_path / ".cells.tif.k2j4m9x1.part"  # written before owners were recorded
    running = tmp_path / f".cells.tif.{host}-{os.getppid()}.zzzz9999.part"
    other = tmp_path / f".cells.tif.json.{host}-{int(dead.stdout)}.abcd1234.part"
    for path in (killed, older, running, other):
        path.write_bytes(b"x" * 1000)
    write_labels(target, real_labels)
    assert not killed.exists() and not older.exists()
    assert running.exists() and other.exists()
    # A folder store written atomically cleans up the same way.
    store = tmp_path / "cells.ome.zarr"
    stale = tmp_path / f".cells.ome.zarr.{host}-{int(dead.stdout)}.qqqq1111.part"
    stale.mkdir()
    atomic.write_directory_atomically(store, lambda tmp: (tmp / "zarr.json").write_text("{}"))
    assert not stale.exists() and (store / "zarr.json").is_file()


@pytest.mark.parametrize("name", ["stack.ome.tif", "stack.tif"])
def test_4d_labels_with_naparis_default_axis_names_are_saved(tmp_path, real_labels, name):
    """napari names the axes of a 4D layer '-4' … '-1'; OME-TIFF needs distinct T, Z, C."""
    npe2.PluginManager.instance().discover()
    crop = real_labels[:64, :80]
    stack = np.array([[np.roll(crop, 3 * (i + j), 1) for j in range(3)] for i in range(2)])
    layer = Labels(stack)
    assert layer.axis_labels == ("-4", "-3", "-2", "-1")
    written = layer.save(str(tmp_path / name), plugin="napari-cytomask")
    np.testing.assert_array_equal(tifffile.imread(written[0]), stack)


def test_ids_beyond_32_bits(tmp_path):
    labels = np.zeros((16, 16), np.uint64)
    labels[:8] = 2**32 + 5
    labels[8:, :4] = 7
    # Written, for napari and Python, with a word that Fiji does not open it; the OME-TIFF's
    # refusal does not send the user to that TIFF for Fiji. Both name the plugin's way to
    # renumber the cells (they said "renumber the cells 1, 2, 3…", naming no way to).
    with pytest.warns(UserWarning, match="a.tif holds ids up to 4294967301, .* not Fiji") as said:
        written = write_labels(tmp_path / "a.tif", labels)
    assert said[0].filename == __file__
    assert str(said[0].message).endswith(
        "for those, export the labels with 'Renumber cells 1, 2, 3…' ticked (Export labels: "
        "step 5 of Segment cytoplasm, or File > IO Utilities)."
    )
    np.testing.assert_array_equal(tifffile.imread(written), labels)
    with pytest.raises(
        ValueError,
        match=r"a\.ome\.tif: OME-TIFF holds ids up to 4294967295 .*; export the labels with "
        r"'Renumber cells 1, 2, 3…' ticked \(Export labels: step 5 of Segment cytoplasm, or "
        r"File > IO Utilities\), or save them as \.npy or \.tif, which only napari and Python",
    ):
        write_labels(tmp_path / "a.ome.tif", labels)
    assert _files(tmp_path) == ["a.tif"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_labels(tmp_path / "b.tif", labels % np.uint64(2**32))  # 32 bits: unsaid


@pytest.mark.parametrize("name", ["flip.tif", "flip.ome.tif"])
def test_a_flipped_layers_negative_scale_is_saved_as_its_pixel_size(tmp_path, real_labels, name):
    npe2.PluginManager.instance().discover()
    layer = Labels(real_labels, scale=(-0.65, 0.5), units=("µm", "µm"))
    written = layer.save(str(tmp_path / name), plugin="napari-cytomask")
    with tifffile.TiffFile(written[0]) as tif:
        np.testing.assert_array_equal(tif.asarray(), real_labels)
        if tif.is_ome:
            assert 'PhysicalSizeY="0.65"' in tif.ome_metadata
        else:
            y_resolution = tif.pages[0].tags["YResolution"].value
            assert y_resolution[0] / y_resolution[1] == pytest.approx(1 / 0.65, rel=1e-5)


@pytest.mark.parametrize("name", ["spelt.tif", "spelt.ome.tif"])
@pytest.mark.parametrize("unit", ["micrometre", "μm", "cm"])
def test_every_name_of_a_length_keeps_the_pixel_size(tmp_path, real_labels, name, unit):
    """Units other than µm, um, micron, micrometer, nm and mm were saved as pixels."""
    size = 0.65e-4 if unit == "cm" else 0.65
    write_labels(tmp_path / name, real_labels, scale=(size, size), units=(unit, unit))
    ((_, kwargs, _),) = read_tiff(tmp_path / name)
    assert kwargs["scale"] == pytest.approx((0.65, 0.65)) and kwargs["units"] == ("µm", "µm")


@pytest.mark.parametrize(
    ("scale", "match"),
    [((0.0, 1.0), "pixel size of 0.0"), ((float("nan"), 1.0), "pixel size of nan"),
     ((1.0, 1.0, 1.0), "2 axes but scale has 3 entries")],
)  # fmt: skip
def test_impossible_scales_are_explained(tmp_path, real_labels, scale, match):
    for name in ("a.tif", "a.ome.tif"):
        with pytest.raises(ValueError, match=match):
            write_labels(tmp_path / name, real_labels, scale=scale, units=None)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(("name", "offset"), [("a.tif", 0), ("a.ome.tif", 0), ("a.tif", 70000)])
def test_the_frame_interval_is_kept(tmp_path, real_labels, name, offset):
    """... and a Z step in pixels is not saved as micrometres."""
    """ImageJ, OME-TIFF and plain TIFF (ids beyond 16 bits) all lost the time interval."""
    crop = real_labels[256:320, 256:320].astype(np.uint32)
    crop[crop > 0] += offset
    stack = np.stack([np.stack([crop, crop])] * 3)
    path = write_labels(
        tmp_path / name,
        stack,
        scale=(0.5, 2.0, 0.5, 0.5),
        units=("minute", "µm", "µm", "µm"),
        axis_labels=("T", "Z", "Y", "X"),
    )
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["axis_labels"] == ("T", "Z", "Y", "X")
    assert kwargs["scale"] == pytest.approx((30.0, 2.0, 0.5, 0.5))
    assert kwargs["units"] == ("s", "µm", "µm", "µm")
    units, axes = ("minute", "pixel", "µm", "µm"), ("T", "Z", "Y", "X")
    path = write_labels(tmp_path / f"px-{name}", stack, scale=(0.5, 2.0, 0.5, 0.5), units=units,
                        axis_labels=axes)  # fmt: skip
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"][1] == 1.0 and kwargs["units"][1] == "pixel"


@pytest.mark.parametrize("big_ids", [False, True])  # an ImageJ or a plain TIFF
def test_pixel_sizes_a_tiff_cannot_hold_are_explained_and_mixed_units_converted(
    tmp_path, real_labels, big_ids
):
    """Y in mm and X in µm: the Y size was saved 1,000 times off. A pixel size of 1e-30
    gave tifffile's own 'max_denominator should be at least 1'."""
    labels = real_labels.astype(np.uint32) + (real_labels > 0) * 70000 * big_ids
    path = write_labels(tmp_path / "mixed.tif", labels, scale=(0.0005, 0.5), units=("mm", "µm"))
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"] == pytest.approx((0.5, 0.5)) and kwargs["units"] == ("µm", "µm")
    for size in (1e-30, 1e30):
        with pytest.raises(
            ValueError, match=re.escape(f"a TIFF cannot store a pixel size of {size:g} × ")
        ):
            write_labels(tmp_path / "odd.tif", labels, scale=(size, size), units=("µm", "µm"))
    with pytest.raises(ValueError, match="Y and X pixel sizes are in s and µm"):
        write_labels(tmp_path / "odd.tif", labels, scale=(2, 0.5), units=("s", "µm"))
    assert not (tmp_path / "odd.tif").exists()
    with pytest.raises(ValueError, match=r"the labels have 1 axis\(es\), shape \(10,\)"):
        write_labels(tmp_path / "line.tif", np.arange(10, dtype=np.uint8))


def test_a_multiscale_layer_is_saved_at_full_resolution(tmp_path, real_labels):
    npe2.PluginManager.instance().discover()
    layer = Labels([real_labels, real_labels[::2, ::2], real_labels[::4, ::4]], name="pyramid")
    written = layer.save(str(tmp_path / "pyramid.tif"), plugin="napari-cytomask")
    np.testing.assert_array_equal(tifffile.imread(written[0]), real_labels)


def test_ids_beyond_16_bits_keep_their_pixel_size(tmp_path, real_labels):
    """Such labels go to a plain TIFF, whose resolution tags need their unit: without one
    they meant inches."""
    big = real_labels.astype(np.uint32) + (real_labels > 0) * 70000
    path = write_labels(tmp_path / "big.tif", big, scale=(0.5, 0.5), units=("µm", "µm"))
    ((data, kwargs, _),) = read_tiff(path)
    np.testing.assert_array_equal(np.asarray(data), big)
    assert kwargs["scale"] == pytest.approx((0.5, 0.5)) and kwargs["units"] == ("µm", "µm")


@pytest.mark.parametrize("units", [("pixel", "pixel"), None])
def test_a_scale_in_no_length_is_no_pixel_size_in_any_file(tmp_path, units):
    """A layer scaled 0.65 without a unit of length: ImageJ took 0.65 "pixel" per pixel
    (areas 0.42 per pixel) where the OME-TIFF and the tables record no size."""
    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6] = 1
    for name in ("a.tif", "a.ome.tif"):
        path = write_labels(tmp_path / name, labels, scale=(0.65, 0.65), units=units)
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            assert "unit" not in (tif.imagej_metadata or {})
            assert page.tags.get("XResolution") is None or page.tags["XResolution"].value == (1, 1)
            assert "PhysicalSize" not in (tif.ome_metadata or "")


@pytest.mark.parametrize("offset", [0, 70000])  # ImageJ cannot order P and T; nor hold 70000
def test_a_plain_tiff_keeps_positions_and_the_z_step(tmp_path, real_labels, offset):
    """Positions were written as tifffile's P (a phase) and read back as another axis, so
    an export then wrote them as Z planes; ids beyond 16 bits lost the Z step."""
    crop = real_labels[256:320, 256:320].astype(np.uint32)
    crop[crop > 0] += offset
    frames = [np.where(crop > 0, crop + t, 0) for t in range(3)]  # ids move, background stays
    stack = np.stack([np.stack([np.stack([frame, frame]) for frame in frames])] * 2)
    path = write_labels(
        tmp_path / "scan.tif",
        stack,
        scale=(1, 1, 2.5, 0.5, 0.5),
        units=("", "", "µm", "µm", "µm"),
        axis_labels=("P", "T", "Z", "Y", "X"),
    )
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "labels" and kwargs["axis_labels"] == ("P", "T", "Z", "Y", "X")
    assert kwargs["scale"][2:] == pytest.approx((2.5, 0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(data), stack)


@pytest.mark.parametrize(
    "axes", [("P", "Y", "X"), ("P", "Z", "Y", "X"), ("T", "Y", "X"), ("-3", "-2", "-1")]
)
def test_an_imagej_tiff_keeps_positions_apart_from_time_points(tmp_path, real_labels, axes):
    """ImageJ has no position axis, so tiles went on its T axis and came back as time
    points: the tables of a re-opened scan then had a 't' column for its tiles."""
    crop = real_labels[:32, :32]
    frames = (3, 2)[: len(axes) - 2]
    stack = np.stack([np.where(crop > 0, crop + i, 0) for i in range(np.prod(frames))])
    stack = stack.reshape(*frames, 32, 32)
    path = write_labels(tmp_path / "scan.tif", stack, axis_labels=axes)
    ((data, kwargs, _),) = read_tiff(path)
    # napari's unnamed axes stay a plain stack's frames (ImageJ's T), not positions.
    assert kwargs["axis_labels"] == (axes if axes[0] != "-3" else ("T", "Y", "X"))
    np.testing.assert_array_equal(np.asarray(data), stack)
    with tifffile.TiffFile(path) as tif:  # a person in Fiji sees it in Image > Show Info
        assert tif.is_imagej
        positions = (tif.imagej_metadata.get("Properties") or {}).get("frames")
        assert positions == ("positions" if "P" in axes else None)


def test_imagej_tiff_keeps_z_spacing_in_the_unit_of_x_and_any_axis_order(tmp_path, real_labels):
    crop = real_labels[:64, :64]
    stack = np.stack([np.stack([crop, crop + 1]), np.stack([crop + 2, crop + 3])])  # C, Z, Y, X
    path = write_labels(
        tmp_path / "cz.tif",
        stack,
        scale=(1, 300, 0.1, 0.1),
        units=("", "nm", "µm", "µm"),
        axis_labels=("C", "Z", "Y", "X"),
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "ZCYX"  # ImageJ's order
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.3)  # 300 nm in µm
        np.testing.assert_array_equal(tif.asarray(), stack.transpose(1, 0, 2, 3))


def test_a_long_file_name_is_written_and_cleaned_up_after(tmp_path, real_labels):
    """A name near the 255-byte limit fits; its temporaries carry a shortened name, and a
    killed writer's are still found."""
    import subprocess
    import sys

    target = tmp_path / ("ä" * 60 + "c" * 120 + ".tif")  # 250 bytes
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    killed = Path(
        atomic._prefix(target.name).replace(f"-{os.getpid()}.", f"-{int(dead.stdout)}.")
        + "abcd1234.part"
    )
    (tmp_path / killed).write_bytes(b"x")
    write_labels(target, real_labels)
    np.testing.assert_array_equal(tifffile.imread(target), real_labels)
    assert _files(tmp_path) == [target.name]
    # Past the limit: a shorter name helps, another folder would not.
    too_long = tmp_path / ("x" * 300 + ".tif")
    with pytest.raises(WriteError, match=r": the file name is too long\. Nothing was written "
                       r"and existing files are unchanged; choose a shorter name\.$"):  # fmt: skip
        write_labels(too_long, real_labels)
    negative = -np.eye(4, dtype=np.int8)
    with pytest.raises(LabelsError, match="^the label image to save has negative ids"):
        write_labels(tmp_path / "negative.tif", negative)
    assert _files(tmp_path) == [target.name]


def test_a_link_to_a_missing_file_is_named_as_such(tmp_path, real_labels):
    target = tmp_path / "cells.tif"
    target.symlink_to(tmp_path / "gone.tif")
    with pytest.raises(FileExistsError, match="is a link to a missing file and was left"):
        write_labels(target, real_labels)
    assert target.is_symlink() and not (tmp_path / "gone.tif").exists()


@pytest.mark.parametrize("top", [7, 70_000])  # an ImageJ TIFF (µm), a plain TIFF (cm)
def test_non_square_pixels_are_read_back_as_y_then_x(tmp_path, top):
    """Without this, a reader that swaps the X and Y resolution tags passes: all else is square."""
    labels = np.zeros((32, 48), np.uint32)
    labels[4:12, 6:30] = top
    path = write_labels(tmp_path / "wide.tif", labels, scale=(0.5, 0.125), units=("µm", "µm"))
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), labels)
    assert tuple(kwargs["scale"]) == pytest.approx((0.5, 0.125))


@pytest.mark.parametrize(
    ("options", "per_um"),
    [
        ({"imagej": True, "metadata": {"axes": "YX", "unit": "micron"}}, 1.0),
        ({"resolutionunit": "CENTIMETER"}, 1e4),
    ],
    ids=["imagej-micron", "plain-centimetre"],
)
def test_a_tiff_with_different_x_and_y_resolution_scales_y_then_x(tmp_path, options, per_um):
    """Without this, swapping XResolution and YResolution in the reader goes unnoticed."""
    image = np.random.default_rng(3).integers(100, 4000, (40, 64), dtype=np.uint16)
    path = tmp_path / "camera.tif"
    # Resolution tags are pixels per unit: X 0.2 µm, Y 0.6 µm.
    tifffile.imwrite(path, image, resolution=(per_um / 0.2, per_um / 0.6), **options)
    ((_, kwargs, _),) = read_tiff(path)
    assert tuple(kwargs["scale"]) == pytest.approx((0.6, 0.2))


def test_png_holds_ids_up_to_65535_and_refuses_65536(tmp_path):
    """Without this, PNG's limit can be off by one: 65536 would be cut to 16 bits or fail late."""
    labels = np.zeros((8, 8), np.int64)
    labels[2:5, 2:5] = 65535
    labels[6, 6] = 1
    back = iio.imread(write_labels(tmp_path / "edge.png", labels))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    labels[0, 0] = 65536
    with pytest.raises(
        ValueError, match=r"PNG holds ids up to 65535 but the labels go up to 65536"
    ):
        write_labels(tmp_path / "over.png", labels)
    assert _files(tmp_path) == ["edge.png"]


def test_ome_tiff_images_are_named_after_the_file(tmp_path, real_labels):
    """Every OME image was named P1, P2…, a single 2D image too: QuPath and OMERO list it by
    that name. Positions are counted from 0, as the PNG files, the CSV's ``p`` and napari's
    slider count them (they were named from P1)."""
    crop = real_labels[:32, :32]
    tifffile_names = []
    files = [("cells.ome.tif", crop, None), ("scan.ome.tiff", np.stack([crop, crop]), "PYX")]
    for name, data, axes in files:
        path = write_labels(tmp_path / name, data, axis_labels=axes and tuple(axes))
        with tifffile.TiffFile(path) as tif:
            tifffile_names.append([series.name for series in tif.series])
    assert tifffile_names == [["cells"], ["scan P0", "scan P1"]]


@pytest.mark.parametrize(
    "name, frames, offset",
    [("scan.tif", (2, 3), 0), ("scan.tif", (2, 4), 0), ("scan.tif", (3,), 70000),
     ("scan.tif", (3,), 0), ("scan.ome.tif", (2, 3), 0)],
)  # fmt: skip
def test_label_stacks_are_written_as_grey_pages(tmp_path, real_labels, name, frames, offset):
    """A plain TIFF with 3 or 4 time points before Y and X was written as colour (RGB or
    RGBA) pages: Fiji, PIL and CellProfiler read the time points as colour channels."""
    crop = real_labels[256:288, 256:288].astype(np.uint32)
    crop[crop > 0] += offset
    assert crop.max() > offset
    stack = np.stack([np.where(crop > 0, crop + i, 0) for i in range(np.prod(frames))])
    stack = stack.reshape(*frames, 32, 32)
    axes = ("P", "T", "Y", "X")[-stack.ndim :]
    path = write_labels(tmp_path / name, stack, axis_labels=axes)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == np.prod(frames)
        assert {(page.photometric, page.samplesperpixel) for page in tif.pages} == {
            (tifffile.PHOTOMETRIC.MINISBLACK, 1)
        }
    ((data, _, _),) = read_tiff(path)
    np.testing.assert_array_equal(np.asarray(data), stack)


@pytest.mark.parametrize("offset", [0, 70000])  # an ImageJ TIFF, a plain one
def test_a_pixel_size_reads_back_as_it_was_written(tmp_path, real_labels, offset):
    """0.87 µm read back from the resolution tags as 0.8700000000000001: areas in µm² then
    differed in their last digits from the scan's, and a join on them failed."""
    labels = real_labels[:32, :32].astype(np.uint32)
    labels[labels > 0] += offset
    path = write_labels(tmp_path / "cells.tif", labels, scale=(0.87, 0.645), units=("µm", "µm"))
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"] == (0.87, 0.645)


def test_labels_numbered_1_2_3_already_are_not_sent_to_be_renumbered():
    """The note of ids Fiji rounds sends the user to renumber the cells 1, 2, 3…; of labels
    an export renumbered so, that was no way out: they hold more cells than Fiji numbers
    exactly, and the note says so instead."""
    said = rounded_in_fiji(2**24 + 2, ["cells.tif", "cells.npy"], renumbered=True)
    assert said == (
        "cells.tif holds ids up to 16777218: napari and Python read it exactly, but Fiji and "
        "ImageJ open it as 32-bit decimals, which round ids above 16,777,216 (two cells of "
        "nearby ids can become one); numbered 1, 2, 3… already, it holds more cells than Fiji "
        "numbers exactly: open it in napari or Python."
    )
