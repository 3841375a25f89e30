"""One way to open a file: one reader, one suffix list, the same channels everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import yaml

import napari_cytomask
from napari_cytomask.io.files import (
    IMAGE_SUFFIXES,
    find_inputs,
    input_roots,
    open_scan,
    read_channels,
    read_image,
)
from napari_cytomask.io.tiff import TIFF_SUFFIXES, read_tiff

MMSTACK = "tiff-formats/ome-tiff-samples/singles/181003_multi_pos_time_course_1_MMStack.ome.tif"

MANIFEST = Path(napari_cytomask.__file__).with_name("napari.yaml")


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def _three_channels(path: Path) -> np.ndarray:
    """A CYX file with named channels, written as OME-TIFF whatever its suffix."""
    data = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
    # Written under a plain name: tifffile would write an NDPI-style file for ".ndpi".
    plain = path.with_name("plain.ome.tif")
    metadata = {"axes": "CYX", "Channel": {"Name": ["DAPI", "FITC", "Cy3"]}}
    tifffile.imwrite(plain, data, ome=True, metadata=metadata)
    plain.rename(path)
    return data


def test_one_reader_whose_patterns_are_the_suffix_list():
    contributions = _manifest()["contributions"]
    (reader,) = contributions["readers"]
    expected = [f"*{s}" for s in TIFF_SUFFIXES] + [f"*{s.upper()}" for s in TIFF_SUFFIXES]
    assert reader["filename_patterns"] == [*expected, "*.zarr"]
    # Stitching is a menu action of its own, not a second reader for the same files.
    menu = [item["command"] for item in contributions["menus"]["napari/file/io_utilities"]]
    assert "napari-cytomask.open_mosaic" in menu
    assert set(TIFF_SUFFIXES) <= set(IMAGE_SUFFIXES)


_READ_IN_A_FRESH_PROCESS = """
import json, sys
import npe2
npe2.PluginManager.instance().discover()
layers = npe2.read([sys.argv[1]], stack=False, plugin_name="napari-cytomask")
print(json.dumps([[list(d.shape), kw["name"], kw["axis_labels"], kind] for d, kw, kind in layers]))
"""


def test_the_same_file_opens_the_same_way_in_every_process(shared_data):
    # npe2 chose between overlapping readers in set order, which the hash seed
    # changes from one process to the next.
    seen = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _READ_IN_A_FRESH_PROCESS, str(shared_data / MMSTACK)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=300,
        )
        seen.add(out.stdout.strip().splitlines()[-1])
    assert len(seen) == 1
    ((shape, name, axes, kind),) = json.loads(seen.pop())
    assert shape == [2, 10, 256, 256]
    assert axes == ["P", "T", "Y", "X"]
    assert kind == "image"


def test_folder_scans_find_every_suffix_napari_opens(tmp_path):
    # tifffile reads any ".ndpi" file as Hamamatsu's 64-bit-offset variant, which
    # it cannot write: that suffix is only listed here, the others are read too.
    readable = [s for s in TIFF_SUFFIXES if s != ".ndpi"]
    data = None
    for suffix in readable:
        data = _three_channels(tmp_path / f"scan{suffix}")
    (tmp_path / "slide.ndpi").write_bytes(b"II*\0")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.tif").write_bytes(b"")
    listed = find_inputs([tmp_path])
    assert sorted(p.name for p in listed) == sorted(["slide.ndpi", *(f"scan{s}" for s in readable)])
    found = [p for p in listed if p.suffix != ".ndpi"]
    for path in found:
        # The command line gets the channels napari's reader gives, by the file's bytes.
        channels = read_channels(path, None, 3)
        layers = read_tiff(path)
        assert [kw["name"] for _, kw, _ in layers] == ["DAPI", "FITC", "Cy3"]
        assert len(channels) == 3
        for c, (layer, _, _) in enumerate(layers):
            np.testing.assert_array_equal(np.asarray(channels[c]), np.asarray(layer))
            np.testing.assert_array_equal(np.asarray(channels[c]), data[c])
        np.testing.assert_array_equal(read_image(path), data)


def test_open_scan_gives_channels_roles_and_scale_for_tiff_and_other_files(shared_data):
    scan = open_scan(shared_data / MMSTACK)
    assert scan.axes == ("P", "T", "Y", "X")
    assert scan.units == ("pixel", "s", "µm", "µm")  # time points 5,000 ms apart
    assert [c.name for c in scan.channels] == [kw["name"] for _, kw, _ in scan.layer_data()]
    png = open_scan(shared_data / "usiigaci-phc/set1/instances_ids.png")
    ((mask),) = png.channels
    assert mask.role == "mask"
    assert mask.name == "instances_ids"
    assert png.axes == ("Y", "X")
    raw = open_scan(shared_data / "usiigaci-phc/set1/raw.tif")
    assert [c.role for c in raw.channels] == ["input"]


def test_labels_of_one_position_keep_the_scans_pixel_size(shared_data, tmp_path):
    """Labels of one position of a tile scan were written without its pixel size: the
    geometry was given only to labels of all its axes."""
    from napari_cytomask.io.files import geometry_of
    from napari_cytomask.io.writers import write_labels

    scan = open_scan(shared_data / MMSTACK)  # P, T, Y, X
    labels = np.zeros(scan.channels[0].base.shape[-2:], np.uint16)
    labels[:8, :8] = 1
    # One plane; one position's time points, or one time point's positions: which axes
    # are left is not known, so the other axis is neither named after the scan's T nor
    # given its 5 s step.
    for part in (labels, labels[None]):
        geometry = geometry_of(scan, part.ndim)
        written = write_labels(tmp_path / f"part{part.ndim}.tif", part, **geometry)
        assert open_scan(written).pixel_size_um == pytest.approx(scan.pixel_size_um)
    assert geometry["scale"] == (1.0, *scan.scale[-2:]) and "axis_labels" not in geometry
    assert geometry["units"][0] == "pixel"
    assert geometry_of(scan, 4)["axis_labels"] == scan.axes  # all its axes: named as its
    assert geometry_of(scan, 5) == {}  # more axes than the scan has: not its geometry


def test_a_folder_segmented_again_skips_the_results_of_every_format(tmp_path):
    from napari_cytomask.batch import OUTPUT_ENDINGS
    from napari_cytomask.io.writers import FORMATS

    _three_channels(tmp_path / "scan.tif")
    for fmt in FORMATS.values():
        for suffix in fmt.suffixes:
            (tmp_path / f"scan_unet_cells{suffix}").write_bytes(b"II*\0")
    (tmp_path / "scan_unet_cells.json").write_text("{}")
    (tmp_path / "scan_sam2_guided_cells.tif").write_bytes(b"II*\0")
    _three_channels(tmp_path / "hela_cells.tif")  # an image of one's own, not a result
    found = find_inputs([tmp_path], exclude=OUTPUT_ENDINGS)
    assert [p.name for p in found] == ["hela_cells.tif", "scan.tif"]


def test_a_folder_gives_its_zarr_stores_as_images(tmp_path):
    """`cytomask segment FOLDER` and `export FOLDER` said "holds no image file" for a
    folder of OME-Zarr images or of chunk-wise results, which are folders themselves."""
    from napari_cytomask.batch import OUTPUT_ENDINGS

    # notes.zarr: a Zarr folder that is no OME-Zarr image, left alone as before.
    for store in ("img.ome.zarr", "img_unet_cells.ome.zarr", ".hidden.zarr", "sub", "notes.zarr"):
        (tmp_path / store).mkdir()
    _three_channels(tmp_path / "scan.tif")
    found = find_inputs([tmp_path], exclude=OUTPUT_ENDINGS)
    assert [p.name for p in found] == ["img.ome.zarr", "scan.tif"]
    results = find_inputs([tmp_path / "img_unet_cells.ome.zarr", tmp_path])
    assert [p.name for p in results] == ["img_unet_cells.ome.zarr", "img.ome.zarr", "scan.tif"]
    # A pattern leaves the plain .zarr folder alone too (it failed the run), and a store
    # named in capitals is one.
    (tmp_path / "Well2.OME.ZARR").mkdir()
    found = find_inputs([f"{tmp_path}/*"], exclude=OUTPUT_ENDINGS)
    assert [p.name for p in found] == ["Well2.OME.ZARR", "img.ome.zarr", "scan.tif"]
    found = find_inputs([tmp_path], exclude=OUTPUT_ENDINGS)
    assert [p.name for p in found] == ["Well2.OME.ZARR", "img.ome.zarr", "scan.tif"]
    # Named on its own, a plain .zarr folder is taken (and its reading says what it is).
    assert find_inputs([tmp_path / "notes.zarr"]) == [tmp_path / "notes.zarr"]
    # An image store named without ".ome" is one by its metadata, in a pattern or folder.
    from napari_cytomask.io.omezarr import create_labels

    create_labels(tmp_path / "well1.zarr", (16, 16))[2:6, 2:6] = 1
    found = find_inputs([f"{tmp_path}/*.zarr"])
    assert [p.name for p in found] == ["img.ome.zarr", "img_unet_cells.ome.zarr", "well1.zarr"]
    assert "well1.zarr" in [p.name for p in find_inputs([tmp_path])]
    # A Zarr v3 store with no image at its root, whose consolidated metadata holds its
    # images' (a SpatialData store), is no image: it failed the run.
    import zarr

    root = zarr.open_group(tmp_path / "sdata.zarr", mode="w", zarr_format=3)
    root.create_group("images/cells").attrs["ome"] = {"multiscales": [{"datasets": []}]}
    zarr.consolidate_metadata(tmp_path / "sdata.zarr")
    assert '"multiscales"' in (tmp_path / "sdata.zarr" / "zarr.json").read_text()
    assert "sdata.zarr" not in [p.name for p in find_inputs([f"{tmp_path}/*.zarr"])]


def test_a_colour_tiff_gives_its_colours_as_channels_as_a_png_does(tmp_path):
    """Not one channel of shape (Y, X, 3), which a one-channel model took for 96 frames."""
    rgb = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "colour.tif", rgb, photometric="rgb")
    iio.imwrite(tmp_path / "colour.png", rgb)
    for name in ("colour.tif", "colour.png"):
        channels = read_channels(tmp_path / name, None, 3)
        assert len(channels) == 3
        for c in range(3):
            np.testing.assert_array_equal(np.asarray(channels[c]), rgb[..., c])
        (green,) = read_channels(tmp_path / name, [1], 1)
        np.testing.assert_array_equal(np.asarray(green), rgb[..., 1])


def test_a_file_named_like_a_tiff_is_read_as_what_it_is(shared_data, tmp_path):
    """A PNG of cell ids renamed .tif is read as the PNG it is; a file that is no image
    says what it starts with, not tifffile's 'not a TIFF file: header=…'."""
    from napari_cytomask.io.files import ImageReadError

    png = shared_data / "usiigaci-phc" / "set5" / "instances_ids.png"
    renamed = tmp_path / "instances_ids.tif"
    renamed.write_bytes(png.read_bytes())
    np.testing.assert_array_equal(read_image(renamed), iio.imread(png))
    text = tmp_path / "notes.tif"
    text.write_text("hello world, not an image")
    with pytest.raises(
        ImageReadError,
        match=(
            r"notes.tif: it is named like a TIFF file but is not one \(it starts with "
            r"b'hello wo'\)\. Check that it is an image file"
        ),
    ):
        read_image(text)
    # napari's reader too: it said only "Reader 'napari-cytomask' ... refused the file".
    from napari_cytomask._reader import get_reader

    ((data, _, kind),) = get_reader(str(renamed))(str(renamed))
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), iio.imread(png))
    with pytest.raises(ImageReadError, match=r"notes.tif: it is named like a TIFF file"):
        get_reader(str(text))(str(text))


@pytest.mark.parametrize("name", ["notes.txt", "notes"])
def test_a_file_of_no_image_format_says_what_it_starts_with(tmp_path, name):
    """It said imageio's "Could not find a backend to open … with iomode `r`" (or, without
    a suffix, "unpack_from requires a buffer of at least 4 bytes"). An image of a format
    named otherwise (a GIF) is still read."""
    from napari_cytomask.io.files import ImageReadError

    path = tmp_path / name
    path.write_text("hello world")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(caught.value) == (
        f"Cannot read {path}: it is no image file that napari-cytomask reads (it starts with "
        "b'hello wo'). Give a TIFF, PNG, JPEG, BMP or NumPy (.npy) image."
    )
    gif = tmp_path / "cells.gif"
    iio.imwrite(gif, np.full((8, 8), 7, np.uint8))
    assert read_image(gif).max() == 7


@pytest.mark.parametrize(
    ("array", "said"),
    [(np.arange(5), r"holds one axis \(5\), and an image has at least 2 \(Y and X\)"),
     (np.array(3), r"holds no axis \(one value\)"),
     (np.array([["a", "b"]]), r"its values are of type <U1, not numbers of light or cell ids"),
     (np.zeros((4, 4), complex), "its values are of type complex128")],
    ids=["one axis", "one value", "text", "complex"],
)  # fmt: skip
def test_a_numpy_file_that_holds_no_image_says_so(tmp_path, array, said):
    """cytomask segment said "tuple index out of range" for a NumPy file of one axis or of
    text, and segmented complex numbers as if they were light."""
    from napari_cytomask.io.files import ImageReadError

    path = tmp_path / "values.npy"
    np.save(path, array)
    for read in (read_image, open_scan):
        with pytest.raises(ImageReadError, match=f"Cannot read {path} as an image: .*{said}"):
            read(path)
    np.save(path, np.zeros((4, 4), bool))  # a mask of True and False is an image
    assert read_image(path).shape == (4, 4)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="a Linux /proc file")
def test_a_file_that_says_it_has_no_byte_but_has_some_is_not_called_empty():
    """/proc files report 0 bytes: it was said to be "empty (0 bytes): it was not saved or
    copied completely"."""
    from napari_cytomask.io.files import ImageReadError
    from napari_cytomask.io.tiff import TiffReadError, open_tiff

    with pytest.raises(ImageReadError, match=r"no image file .* \(it starts with b'Name:"):
        read_image("/proc/self/status")
    with pytest.raises(TiffReadError) as caught:
        open_tiff("/proc/self/status")
    assert "empty" not in str(caught.value)


@pytest.mark.parametrize("name", ["zero.tif", "zero.ome.tiff", "zero.png", "zero.npy"])
def test_an_empty_file_is_said_to_be_empty(tmp_path, name):
    """A file of 0 bytes named like a TIFF was said to be "named like a TIFF file but is not
    one (it starts with b'')"; named otherwise, the decoder's own error."""
    from napari_cytomask.io.files import ImageReadError
    from napari_cytomask.io.tiff import TiffReadError, open_tiff

    path = tmp_path / name
    path.touch()
    expected = f"Cannot read {path}: it is empty (0 bytes): it was not saved or copied completely."
    for read in (read_image, open_scan):
        with pytest.raises(ImageReadError) as caught:
            read(path)
        assert str(caught.value) == expected
    with pytest.raises(TiffReadError, match=r"it is empty \(0 bytes\)"):
        open_tiff(path)


def test_a_stack_of_many_files_holds_none_open_and_takes_the_first_files_roles(tmp_path):
    """1,100 files stacked kept 1,109 files open (past macOS's 256, Linux's 1,024); a time
    point that looked like a mask to the role guess was refused as another kind of file."""
    from napari_cytomask.io.tiff import read_tiff_stack

    rng = np.random.default_rng(0)
    files = []
    for i in range(12):
        plane = rng.integers(100, 4000, (32, 32), dtype=np.uint16)
        if i == 3:  # flat blobs on zeros: the role guess calls this one a mask
            plane = np.zeros((32, 32), np.uint16)
            plane[4:12, 4:12], plane[20:28, 18:26] = 1, 2
        files.append(tmp_path / f"t{i:02d}.tif")
        tifffile.imwrite(files[-1], plane)
    assert read_tiff(files[3])[0][2] == "labels" and read_tiff(files[0])[0][2] == "image"
    before = len(os.listdir("/proc/self/fd"))
    ((data, kwargs, kind),) = read_tiff_stack(files)
    assert len(os.listdir("/proc/self/fd")) <= before + 1  # the first file only
    assert kind == "image" and data.shape == (12, 32, 32) and kwargs["name"] == "t00 to t11"
    np.testing.assert_array_equal(np.asarray(data[3]), tifffile.imread(files[3]))
    np.testing.assert_array_equal(np.asarray(data[11]), tifffile.imread(files[11]))


def test_a_stack_of_files_whose_mask_comes_first_keeps_each_channel_its_own(tmp_path):
    """Layers come images first and masks over them; a stack of files whose mask channel
    comes first took the second file's planes by layer order: its phase in the mask layer
    and its mask in the phase layer."""
    from napari_cytomask.io.tiff import read_tiff_stack

    rng = np.random.default_rng(1)
    files, phases, masks = [], [], []
    for i in range(2):
        phase = rng.integers(100, 4000, (32, 32), dtype=np.uint16)
        mask = np.zeros((32, 32), np.uint16)
        mask[4 + i : 12, 4:12], mask[20:28, 18:26] = 1, 2
        files.append(tmp_path / f"t{i}.tif")
        tifffile.imwrite(files[-1], np.stack([mask, phase]), imagej=True,
                         metadata={"axes": "CYX", "Labels": ["mask", "phase"]})  # fmt: skip
        phases.append(phase)
        masks.append(mask)
    layers = read_tiff_stack(files)
    assert [(kw["name"], kind) for _, kw, kind in layers] == [
        ("phase", "image"),
        ("mask", "labels"),
    ]
    (phase, _, _), (mask, _, _) = layers
    np.testing.assert_array_equal(np.asarray(phase), np.stack(phases))
    np.testing.assert_array_equal(np.asarray(mask), np.stack(masks))


def test_a_folder_of_subfolders_says_how_to_reach_their_images(tmp_path):
    """``cytomask export results/`` after ``segment -o results/`` (one subfolder per
    input's folder) said only that results held no image."""
    (tmp_path / "results" / "set1").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds no image file; check the path or pattern\.$"):
        find_inputs([tmp_path / "results"])  # subfolders without images: nothing to add
    (tmp_path / "results" / "set1" / "notes.txt").write_text("no image")
    iio.imwrite(tmp_path / "results" / "set1" / "mask.png", np.eye(8, dtype=np.uint8))
    pattern = os.path.join(tmp_path / "results", "**", "*")  # their images of every kind
    with pytest.raises(ValueError, match=re.escape(f"subfolders are not searched: give a "
                                                   f"pattern such as '{pattern}'")):  # fmt: skip
        find_inputs([tmp_path / "results"])
    assert [p.name for p in find_inputs([pattern])] == ["mask.png"]


def test_a_pattern_takes_the_images_and_stores_a_folder_would(tmp_path):
    """``cytomask segment 'tree/**/*'`` (a folder's subfolders are not searched) took the
    chunk files of an OME-Zarr store for images, which would all write 0.0_unet_cells.json
    and refused the run, and failed every run on README.txt and positions.csv."""
    import zarr

    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "b").mkdir()
    tifffile.imwrite(tree / "a" / "scan.tif", np.ones((8, 8), np.uint16))
    iio.imwrite(tree / "b" / "cells.png", np.eye(8, dtype=np.uint8))
    (tree / "README.txt").write_text("notes")
    (tree / "a" / "positions.csv").write_text("x,y\n0,0\n")
    store = tree / "b" / "set10.ome.zarr"
    zarr.open_group(store, mode="w", zarr_format=2).create_array(
        "0", data=np.ones((8, 16), np.uint16), chunks=(8, 8)
    )
    iio.imwrite(store / "preview.png", np.eye(8, dtype=np.uint8))  # part of the store
    assert (store / "0" / "0.0").is_file() and (store / "0" / "0.1").is_file()
    images = [tree / "a" / "scan.tif", tree / "b" / "cells.png", store]
    assert find_inputs([f"{tree}/**/*"]) == images
    assert find_inputs([f"{tree}/**/*.png"]) == [tree / "b" / "cells.png"]
    # Named on its own, a file is taken whatever its ending: reading it says what it is.
    assert find_inputs([tree / "README.txt"]) == [tree / "README.txt"]
    # A pattern that matches no image says what it matched, not that it found nothing.
    message = f"{tree}/*.txt matches no image file or OME-Zarr store, only other paths such "
    with pytest.raises(ValueError, match=re.escape(f"{message}as {tree / 'README.txt'}:")):
        find_inputs([f"{tree}/*.txt"])
    with pytest.raises(ValueError, match=r"OME-Zarr stores \(not what is inside them\)"):
        find_inputs([f"{store}/*"])


def test_paired_patterns_take_the_inputs_segment_would(tmp_path):
    """train, tune and evaluate took every file a pattern matched: a folder's notes beside
    its scans ('raw.txt') had no partner and stopped the run."""
    from napari_cytomask.io.files import match_files

    folder = tmp_path / "set1"
    folder.mkdir()
    for name in ("raw.tif", "mask.tif"):
        tifffile.imwrite(folder / name, np.ones((8, 8), np.uint16))
    (folder / "raw.txt").write_text("acquired on day 1")
    pairs = match_files(f"{tmp_path}/set*/raw*", f"{tmp_path}/set*/mask*")
    assert pairs == [(str(folder / "raw.tif"), str(folder / "mask.tif"))]
    with pytest.raises(ValueError, match=r"the image pattern '.*raw\*.txt' matches no image"):
        match_files(f"{tmp_path}/set*/raw*.txt", f"{tmp_path}/set*/mask*")


def test_a_pattern_through_a_folder_named_with_brackets_takes_that_folder(tmp_path):
    """'Plate [1]/*.tif' took the folder 'Plate 1' (the brackets a pattern of "1") and
    left 'Plate [1]', which is there, out without a word; so under a folder a wildcard
    matches. Its files pair with those of a folder of a plain name."""
    from napari_cytomask.io.files import match_files

    for folder in ("Exp1/Plate 1", "Exp1/Plate [1]", "Masks"):
        (tmp_path / folder).mkdir(parents=True)
        tifffile.imwrite(tmp_path / folder / "well.tif", np.zeros((8, 8), np.uint8))
    bracketed = tmp_path / "Exp1" / "Plate [1]" / "well.tif"
    assert find_inputs([f"{tmp_path}/Exp*/Plate [1]/*.tif"]) == [bracketed]
    pattern, masks = f"{tmp_path}/Exp1/Plate [1]/*.tif", f"{tmp_path}/Masks/*.tif"
    assert find_inputs([pattern]) == [bracketed]
    assert match_files(pattern, masks) == [(str(bracketed), str(tmp_path / "Masks" / "well.tif"))]
    assert match_files(masks, pattern) == [(str(tmp_path / "Masks" / "well.tif"), str(bracketed))]
    assert input_roots([f"{tmp_path}/Exp1/Plate [1]/*.tif"]) == [tmp_path / "Exp1" / "Plate [1]"]


def test_the_reader_takes_ome_zarr_stores_and_leaves_other_folders_to_napari(tmp_path):
    """npe2 offers a reader that takes folders every folder: only an OME-Zarr image's
    store (or a folder of TIFFs) is taken, so napari's own reader keeps folders of other
    files and plain Zarr arrays."""
    import zarr

    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.omezarr import create_labels

    create_labels(tmp_path / "cells.ome.zarr", (32, 32))[4:12, 4:12] = 3
    zarr.open_array(tmp_path / "plain.zarr", mode="w", shape=(8, 8), dtype="u1")
    (tmp_path / "pngs").mkdir()
    reader = get_reader(str(tmp_path / "cells.ome.zarr"))
    ((data, kwargs, kind),) = reader(str(tmp_path / "cells.ome.zarr"))
    assert (kwargs["name"], kind, int(np.asarray(data).max())) == ("cells", "labels", 3)
    for other in ("plain.zarr", "pngs"):
        assert get_reader(str(tmp_path / other)) is None
    assert get_reader([str(tmp_path / "cells.ome.zarr")] * 2) is None


def test_a_folder_that_cannot_be_read_is_left_to_napari(tmp_path, monkeypatch):
    """A reader must not raise when asked whether it takes a path: a folder without read
    permission raised PermissionError out of get_reader (napari then shows a traceback
    instead of its own "cannot be read")."""
    from napari_cytomask import _reader

    (tmp_path / "locked").mkdir()
    listdir = os.listdir

    def refused(path):
        if os.path.basename(str(path)) == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return listdir(path)

    monkeypatch.setattr(_reader.os, "listdir", refused)
    assert _reader.get_reader(str(tmp_path / "locked")) is None


def test_a_folder_of_tiffs_opens_as_a_stack_as_napari_opens_a_folder(tmp_path, monkeypatch):
    """napari's dialog for a folder offered this reader first, and a folder of TIFFs was
    then refused ("Reader 'napari-cytomask' ... refused the file"): it opens as one stack,
    a plane per file in the order of their names, as napari's own reader opens a folder.
    Other files beside them are left out; one TIFF opens as that file."""
    from napari_cytomask._reader import get_reader

    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 4000, (16, 16), np.uint16) for _ in range(3)]
    folder = tmp_path / "day1"
    folder.mkdir()
    for name, plane in zip(("t2.tif", "t0.tif", "t1.tif"), (planes[2], planes[0], planes[1]),
                           strict=True):  # fmt: skip
        tifffile.imwrite(folder / name, plane)
    (folder / "notes.csv").write_text("a,b\n")
    (folder / "notes.tif").write_text("not an image")  # a TIFF's name only
    listed, listdir = [], os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or listdir(path))
    ((data, kwargs, kind),) = get_reader(str(folder))(str(folder))
    assert listed == [str(folder)]  # once, as the reader was chosen: not again to read it
    monkeypatch.undo()
    assert kind == "image" and data.shape == (3, 16, 16)
    np.testing.assert_array_equal(np.asarray(data), np.stack(planes))
    single = tmp_path / "one"
    single.mkdir()
    tifffile.imwrite(single / "raw.tif", planes[0])
    ((data, kwargs, kind),) = get_reader(str(single))(str(single))
    np.testing.assert_array_equal(np.asarray(data), planes[0])
    assert kwargs["name"] == "raw"


def test_a_folder_of_images_beside_their_masks_opens_each_file(tmp_path, shared_data):
    """A folder as Cellpose leaves it (an image beside its "_cp_masks" file, both 16-bit)
    opened as one image stack: the masks shown, and segmented, as a phase plane. As files
    to stack, they are refused."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.tiff import NotOneStack

    usiigaci = shared_data / "usiigaci-phc" / "set1"
    phase = tifffile.imread(usiigaci / "raw.tif")[:128, :128]
    ids = iio.imread(usiigaci / "instances_ids.png")[:128, :128].astype(np.uint16)
    folder = tmp_path / "cellpose"
    folder.mkdir()
    tifffile.imwrite(folder / "set1.tif", phase)
    tifffile.imwrite(folder / "set1_cp_masks.tif", ids)
    layers = get_reader(str(folder))(str(folder))
    assert [(kwargs["name"], kind) for _, kwargs, kind in layers] == [
        ("set1", "image"), ("set1_cp_masks", "labels")
    ]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(layers[1][0]), ids)
    paths = sorted(str(p) for p in folder.iterdir())
    with pytest.raises(
        NotOneStack,
        match=r"set1_cp_masks.tif is named as masks \(…_masks\), "
        r"unlike set1.tif: an image and its masks are not",
    ):
        get_reader(paths)(paths)


def test_an_ome_zarr_image_without_pixels_is_refused_naming_it(tmp_path):
    """Found by changing a store's metadata: an image of 0 channels stopped the reader with
    Python's "not enough values to unpack"."""
    import zarr

    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.files import ImageReadError

    path = tmp_path / "scan.ome.zarr"
    store = zarr.open_group(path, mode="w", zarr_format=2)
    store.create_array("0", shape=(2, 0, 16, 16), dtype="u2")
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]  # fmt: skip
    store.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    with pytest.raises(ImageReadError, match=r"scan.ome.zarr holds no pixels: image is 2 x 0 x"):
        get_reader(str(path))(str(path))


def test_a_file_opened_by_a_relative_path_is_named_by_its_whole_path(tmp_path, monkeypatch):
    """napari passes a path as typed (``napari a/raw.tif``): the layers recorded
    ``a/raw.tif`` as their source, and so did their results and every provenance written
    from them, which the next day, from another folder, named a scan that was not there."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.layers import METADATA_KEY

    (tmp_path / "a").mkdir()
    _three_channels(tmp_path / "a" / "raw.tif")
    monkeypatch.chdir(tmp_path)
    layers = get_reader("a/raw.tif")("a/raw.tif")
    sources = {kwargs["metadata"][METADATA_KEY]["source"] for _, kwargs, _ in layers}
    assert sources == {str(tmp_path / "a" / "raw.tif")}
    # A stack of files is named after its first and last, in their folder.
    stack = ["a/raw.tif", "a/raw.tif"]
    for _, kwargs, _ in get_reader(stack)(stack):
        assert kwargs["metadata"][METADATA_KEY]["source"].startswith(str(tmp_path / "a"))


def test_input_roots_are_where_patterns_start_matching(tmp_path, monkeypatch):
    """The folder of each input named, from which cytomask segment lays out its results:
    a pattern's results stay in place as it matches more files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.tif").write_bytes(b"")
    roots = input_roots(
        [
            "data/set*/raw.tif",
            "*.tif",  # a wildcard first: the working folder
            "~/x/*.tif",
            "/abs/**/raw.tif",
            "run[[]1]/*.tif",  # an escaped bracket is part of the folder's name
            "run[[]1]/scan[[]2].tif",  # a file's name, every bracket escaped
            "data",  # a folder
            "data/a.tif",  # a file
        ]
    )
    assert roots == [
        tmp_path / "data",
        tmp_path,
        tmp_path / "home" / "x",
        Path("/abs"),
        tmp_path / "run[1]",
        tmp_path / "run[1]",
        tmp_path / "data",
        tmp_path / "data",
    ]


def test_the_reader_opens_an_ome_zarr_images_label_images_as_labels(tmp_path):
    """An OME-Zarr image with its cells' masks in its 'labels' group (as ome-zarr-py and
    napari-ome-zarr write them) opened as the image alone: the masks are Labels layers,
    over the image, at its pixel size."""
    import zarr

    from napari_cytomask._reader import get_reader

    path = tmp_path / "scan.ome.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=2)
    image = np.random.default_rng(1).integers(200, 3000, (32, 32), dtype=np.uint16)
    root.create_array("0", data=image)
    axes = [{"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]  # fmt: skip
    scale = [{"type": "scale", "scale": [0.87, 0.87]}]
    multiscales = [{"version": "0.4", "axes": axes,
                    "datasets": [{"path": "0", "coordinateTransformations": scale}]}]  # fmt: skip
    root.attrs["multiscales"] = multiscales
    root.create_group("labels").attrs["labels"] = ["cells"]
    cells = zarr.open_group(path / "labels" / "cells", mode="w", zarr_format=2)
    cells.create_array("0", shape=(32, 32), dtype="u4")[4:12, 4:12] = 3
    cells.attrs.update({"multiscales": multiscales, "image-label": {"version": "0.4"}})
    layers = get_reader(str(path))(str(path))
    assert [(kwargs["name"], kind) for _, kwargs, kind in layers] == [
        ("scan", "image"), ("cells", "labels")
    ]  # fmt: skip
    (_, _, _), (ids, kwargs, _) = layers
    assert int(np.asarray(ids).max()) == 3 and tuple(kwargs["scale"]) == (0.87, 0.87)


def test_a_files_masks_open_in_memory_up_to_a_budget_for_all(tmp_path, monkeypatch):
    """Masks open in memory (painted and saved over their file, lazy ones were refused as
    changed on disk), up to a budget counted over all of a file's masks."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io import files

    ids = np.zeros((64, 64), np.uint16)
    ids[8:20, 8:20], ids[30:50, 30:50] = 1, 2
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.stack([ids, ids]), imagej=True,
                     metadata={"axes": "CYX", "Labels": ["cells mask", "nuclei mask"]})  # fmt: skip
    monkeypatch.setattr(files, "MASKS_IN_MEMORY", ids.nbytes)  # room for one of the two
    layers = get_reader(str(path))(str(path))
    kinds = [type(data).__name__ for data, _, kind in layers if kind == "labels"]
    assert kinds == ["ndarray", "Array"]
    np.testing.assert_array_equal(np.asarray(layers[-1][0]), ids)
