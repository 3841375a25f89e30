"""The TIFF reader on real files of many layouts (../shared/data/tiff-formats)."""

from __future__ import annotations

import shutil

import dask.array as da
import numpy as np
import pytest
import tifffile
from skimage.io import imread as skimage_imread

from napari_cytomask._reader import get_reader
from napari_cytomask.io.layers import looks_like_mask
from napari_cytomask.io.tiff import TiffReadError, describe_tiff, is_tiff, read_tiff

OME = "tiff-formats/ome-tiff-samples"
MMSTACK = f"{OME}/singles/181003_multi_pos_time_course_1_MMStack.ome.tif"
IXM = "tiff-formats/imagej-composites/IXMtest_A02_s9.tif"
HELA = "tiff-formats/imagej-composites/hela-cells.tif"
LABEL_VOLUME = "tiff-formats/allencell-misc/input_1_cellWholeIndex.tiff"

# file: (layer names, layer type, layer shape, axis labels, scale, dtype)
EXPECTED = {
    f"{OME}/singles/single-channel.ome.tif": (
        ["single-channel"], "image", (167, 439), ("Y", "X"), (1, 1), "int8"),
    f"{OME}/singles/multi-channel.ome.tif": (
        ["C1", "C2", "C3"], "image", (167, 439), ("Y", "X"), (1, 1), "int8"),
    f"{OME}/singles/z-series.ome.tif": (
        ["z-series"], "image", (5, 167, 439), ("Z", "Y", "X"), (1, 1, 1), "int8"),
    f"{OME}/singles/time-series.ome.tif": (
        ["time-series"], "image", (7, 167, 439), ("T", "Y", "X"), (1, 1, 1), "int8"),
    f"{OME}/singles/multi-channel-z-series.ome.tif": (
        ["C1", "C2", "C3"], "image", (5, 167, 439), ("Z", "Y", "X"), (1, 1, 1), "int8"),
    f"{OME}/singles/multi-channel-time-series.ome.tif": (
        ["C1", "C2", "C3"], "image", (7, 167, 439), ("T", "Y", "X"), (1, 1, 1), "int8"),
    f"{OME}/singles/4D-series.ome.tif": (
        ["4D-series"], "image", (7, 5, 167, 439), ("T", "Z", "Y", "X"), (1, 1, 1, 1), "int8"),
    f"{OME}/singles/170918_tn_neutrophil_migration_wave.ome.tif": (
        ["488 TIRF left"], "image", (1024, 1024), ("Y", "X"), (1, 1), "uint16"),
    MMSTACK: (
        ["Default"], "image", (2, 10, 256, 256), ("P", "T", "Y", "X"), (1, 5, 5.2304, 5.2304),
        "uint16"),
    # ImageJ metadata without a unit: the centimetres of the resolution tags, as ImageJ
    # reads them (the same acquisition's MMStack OME-TIFF says 5.2304 µm).
    f"{OME}/singles/181003_slices/P2_T7.tif": (
        ["P2_T7"], "image", (256, 256), ("Y", "X"), (5.2304, 5.2304), "uint16"),
    f"{OME}/nonometif.tif": (["nonometif"], "image", (5, 5), ("Y", "X"), (1, 1), "uint8"),
    IXM: (
        ["IXMtest_A02_s9_c1", "IXMtest_A02_s9_c2", "IXMtest_A02_s9_c3"], "image",  # no ".tif"
        (395, 695), ("Y", "X"), (1, 1), "uint16"),
    HELA: (
        ["C1", "C2", "C3"], "image", (512, 672), ("Y", "X"), (0.0514931, 0.0514931), "uint16"),
    "tiff-formats/allencell-misc/s_1_t_1_c_1_z_1.tiff": (
        ["s_1_t_1_c_1_z_1"], "image", (325, 475), ("Y", "X"), (1.0833344, 1.0833344), "uint16"),
    "tiff-formats/allencell-misc/s_1_t_1_c_1_z_1.ome.tiff": (
        ["Bright"], "image", (325, 475), ("Y", "X"), (1.0833333, 1.0833333), "uint16"),
    LABEL_VOLUME: (
        ["input_1_cellWholeIndex"], "labels", (76, 1024, 1024), ("I", "Y", "X"), (1, 1, 1),
        "uint16"),
}  # fmt: skip


def _reference(path) -> np.ndarray:
    """What tifffile.imread gives, channels first when the reader splits them."""
    return tifffile.imread(path)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layers_match_metadata(shared_data, name):
    names, layer_type, shape, axes, scale, dtype = EXPECTED[name]
    path = shared_data / name
    reader = get_reader(str(path))
    assert reader is not None
    layers = reader(str(path))
    assert [kwargs["name"] for _, kwargs, _ in layers] == names
    for data, kwargs, kind in layers:
        assert kind == layer_type
        assert data.shape == shape
        assert data.dtype == np.dtype(dtype)
        assert data.dtype.isnative
        assert kwargs["axis_labels"] == axes
        np.testing.assert_allclose(kwargs["scale"], scale, rtol=1e-6)
        meta = kwargs["metadata"]["cytomask"]
        assert meta["source"] == str(path)
        assert meta["axes"] == "".join(axes)
        if kind == "image":
            low, high = kwargs["contrast_limits"]
            assert low < high


@pytest.mark.parametrize(
    "name",
    [
        f"{OME}/singles/multi-channel-time-series.ome.tif",  # big-endian int8, TCYX
        f"{OME}/singles/multi-channel-z-series.ome.tif",  # CZYX
        IXM,  # big-endian uint16 ImageJ hyperstack, CYX
        HELA,  # one page, 3 samples per pixel
        MMSTACK,  # TRYX: position axis moved first
    ],
)
def test_pixels_equal_tifffile(shared_data, name):
    path = shared_data / name
    reference = tifffile.imread(path)
    desc = describe_tiff(path)
    layers = read_tiff(path)
    with tifffile.TiffFile(path) as tif:
        tiff_axes = tif.series[0].axes.replace("R", "P")
    if "S" in tiff_axes:
        reference = np.moveaxis(reference, tiff_axes.index("S"), 0)
        tiff_axes = "C" + tiff_axes.replace("S", "")
    order = [tiff_axes.index(a) for a in desc.axes]
    reference = reference.transpose(order)
    channel_axis = desc.axes.find("C")
    for index, (data, _, _) in enumerate(layers):
        expected = reference if channel_axis < 0 else np.take(reference, index, channel_axis)
        np.testing.assert_array_equal(np.asarray(data), expected)


def test_imagej_hyperstack_channels(shared_data):
    layers = read_tiff(shared_data / IXM)
    assert [kwargs["colormap"] for _, kwargs, _ in layers] == ["red", "green", "blue"]
    assert [kwargs["metadata"]["cytomask"]["role"] for _, kwargs, _ in layers] == ["image"] * 3


def test_samples_per_pixel_become_channels(shared_data):
    desc = describe_tiff(shared_data / HELA)
    assert desc.axes == "CYX"
    assert not desc.rgb
    layers = read_tiff(shared_data / HELA)
    # ImageJ composites without stored LUTs show red, green, blue.
    assert [kwargs["colormap"] for _, kwargs, _ in layers] == ["red", "green", "blue"]
    assert all(kwargs["units"] == ("µm", "µm") for _, kwargs, _ in layers)


def test_an_imagej_file_of_one_lut_opens_in_its_colour(shared_data, tmp_path):
    """tifffile gives a single LUT as one array, not a list of one: every ImageJ file of one
    LUT (Micro-Manager writes one in each MMStack file) was refused as corrupt, with
    Python's "truth value of an array ... is ambiguous"."""
    green = np.zeros((3, 256), np.uint8)
    green[1] = np.arange(256)
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:64, :96]
    tifffile.imwrite(tmp_path / "one.tif", phase, imagej=True, metadata={"LUTs": [green]})
    ((data, kwargs, kind),) = read_tiff(tmp_path / "one.tif")
    assert (kind, kwargs["colormap"]) == ("image", "green")
    np.testing.assert_array_equal(np.asarray(data), phase)
    # Micro-Manager's own file, its OME metadata replaced by another program's text: its
    # positions and time points open as the file's OME metadata give them.
    original = (
        shared_data / "tiff-formats" / "ome-tiff-samples" / "singles"
        / "181003_multi_pos_time_course_1_MMStack.ome.tif"
    )  # fmt: skip
    copy = tmp_path / "mm_MMStack.ome.tif"
    shutil.copy(original, copy)
    tifffile.tiffcomment(copy, "Processed")
    ((data, kwargs, _),) = read_tiff(copy)
    ((expected, as_saved, _),) = read_tiff(original)
    assert kwargs["axis_labels"] == as_saved["axis_labels"] == ("P", "T", "Y", "X")
    np.testing.assert_array_equal(np.asarray(data), np.asarray(expected))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_the_colours_of_a_deep_colour_picture_are_named_and_shown_as_theirs(tmp_path, dtype):
    """A 16-bit or decimal RGB TIFF from a colour camera (no ImageJ metadata) opened as
    'C1', 'C2', 'C3' in green, magenta and cyan: its red was shown green."""
    rng = np.random.default_rng(0)
    picture = (rng.random((64, 64, 3)) * (60000 if dtype == np.uint16 else 1)).astype(dtype)
    tifffile.imwrite(tmp_path / "warm.tif", picture, photometric="rgb")
    layers = read_tiff(tmp_path / "warm.tif")
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["warm red", "warm green", "warm blue"]
    assert [kwargs["colormap"] for _, kwargs, _ in layers] == ["red", "green", "blue"]
    for c, (data, _, kind) in enumerate(layers):
        assert kind == "image"
        np.testing.assert_array_equal(np.asarray(data), picture[..., c])


def test_samples_of_unlike_kinds_are_channels_not_colours(shared_data, tmp_path):
    """``tifffile.imwrite`` of [phase, fluorescence, mask] takes the 3 planes for the red,
    green and blue of a colour picture: they opened as "cells red", "cells green" and
    "cells blue" (the mask as "blue"). Label ids beside images, or images unlike each
    other, are channels."""
    import imageio.v3 as iio

    crop = slice(256, 352), slice(256, 384)  # 6 cells
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[crop]
    ids = iio.imread(shared_data / "usiigaci-phc" / "set1" / "instances_ids.png")[crop]
    nuclei = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")[:96, :128]
    for planes, kinds in (
        ([phase, nuclei, ids.astype(np.uint16)], ["image", "image", "labels"]),
        ([phase, nuclei, nuclei[::-1]], ["image"] * 3),
    ):
        tifffile.imwrite(tmp_path / "cells.tif", np.stack(planes))
        assert tifffile.TiffFile(tmp_path / "cells.tif").pages[0].photometric == 2  # RGB
        layers = sorted(read_tiff(tmp_path / "cells.tif"), key=lambda layer: layer[1]["name"])
        assert [kwargs["name"] for _, kwargs, _ in layers] == ["C1", "C2", "C3"]
        assert [kind for *_, kind in layers] == kinds
        for (data, _, _), plane in zip(layers, planes, strict=True):
            np.testing.assert_array_equal(np.asarray(data), plane)


def test_multiposition_micromanager(shared_data):
    desc = describe_tiff(shared_data / MMSTACK)
    assert desc.axes == "PTYX"
    assert desc.original_axes == "TRYX"
    assert desc.n_positions == 2
    assert desc.pixel_size == {"Y": 5.2304, "X": 5.2304}
    assert desc.frame_interval == 5.0  # TimeIncrement="5000.0" TimeIncrementUnit="ms"
    np.testing.assert_allclose(
        desc.positions, [(-33984.15, -57494.55), (-33984.16, -58698.95)], atol=1e-6
    )
    ((data, kwargs, _),) = read_tiff(shared_data / MMSTACK)
    assert isinstance(data, da.Array)
    assert kwargs["units"] == ("pixel", "s", "µm", "µm")
    assert kwargs["metadata"]["cytomask"]["stage_positions_um"] == [list(p) for p in desc.positions]
    # Its positions' names, as Micro-Manager 2 keeps them (its summary's "label"s): its OME
    # images are all named after the file.
    assert desc.position_names == ("Pos0", "Pos1")


def test_micromanager_mosaic(shared_data):
    path = str(shared_data / MMSTACK)
    ((data, kwargs, kind),) = read_tiff(path, mosaic=True)
    # Pos1 lies 1204.4 µm (230 pixels) left of Pos0, at the same height.
    assert kind == "image"
    assert data.shape == (10, 256, 256 + 230)
    assert kwargs["axis_labels"] == ("T", "Y", "X")
    assert kwargs["metadata"]["cytomask"]["tile_offsets"] == [[0, 230], [0, 0]]
    stack = tifffile.imread(path)  # TRYX
    plane = np.asarray(data[3])
    # Later tiles are drawn over earlier ones where they overlap.
    np.testing.assert_array_equal(plane[:, :256], stack[3, 1])
    np.testing.assert_array_equal(plane[:, 256:], stack[3, 0][:, 26:])


def test_single_files_match_multiposition_file(shared_data):
    stack = tifffile.imread(shared_data / MMSTACK)  # TRYX
    for p in (1, 2):
        for t in (0, 9):
            ((data, _, _),) = read_tiff(shared_data / f"{OME}/singles/181003_slices/P{p}_T{t}.tif")
            np.testing.assert_array_equal(np.asarray(data), stack[t, p - 1])


@pytest.mark.parametrize("folder", ["master", "companion"])
@pytest.mark.parametrize("plane", [1, 3])
def test_multifile_ome_gives_whole_stack(shared_data, folder, plane):
    root = shared_data / OME / "multiples" / folder
    ((data, kwargs, _),) = read_tiff(root / f"multifile-Z{plane}.ome.tiff")
    assert data.shape == (5, 24, 18)
    assert kwargs["axis_labels"] == ("Z", "Y", "X")
    for z in range(5):
        np.testing.assert_array_equal(
            np.asarray(data[z]),
            tifffile.imread(root / f"multifile-Z{z + 1}.ome.tiff", is_ome=False),
        )
    expected = "multifile.companion.ome" if folder == "companion" else "multifile-Z1.ome.tiff"
    if plane != 1 or folder == "companion":
        assert kwargs["metadata"]["cytomask"]["metadata_file"].endswith(expected)


def test_multifile_ome_with_a_file_missing_is_refused(shared_data, tmp_path):
    """tifffile fills the planes of a missing file with zeros: the file is named instead."""
    import shutil

    root = tmp_path / "master"
    shutil.copytree(shared_data / OME / "multiples" / "master", root)
    (root / "multifile-Z3.ome.tiff").unlink()
    with pytest.raises(
        TiffReadError,
        match=(
            "multifile-Z3.ome.tiff, a file of this multi-file OME-TIFF, is missing or cannot be "
            "read, so its planes would be blank; copy every file of the acquisition"
        ),
    ):
        read_tiff(root / "multifile-Z1.ome.tiff")


def test_imagej_metadata_counting_fewer_images_than_pages_is_refused(tmp_path):
    """Pages past the count ImageJ wrote would be dropped (napari) or folded into a new
    axis (a plain read): neither is the user's data."""
    path = tmp_path / "ij.tif"
    description = "ImageJ=1.53t\nimages=3\nchannels=3\nslices=1\nframes=1\nhyperstack=true\n"
    with tifffile.TiffWriter(path) as tif:
        for i in range(6):
            tif.write(
                np.full((64, 64), i, np.uint16),
                description=description if i == 0 else None,
                metadata=None,
            )
    with pytest.raises(
        TiffReadError,
        match=(
            r"its ImageJ metadata describe 3 images but it holds 6 pages \(it was changed "
            r"after ImageJ saved it\); open it in Fiji"
        ),
    ):
        read_tiff(path)
    # Written as Fiji and tifffile write them (the pixels in one block), then cut short.
    tifffile.imwrite(path, np.arange(3 * 64 * 64, dtype=np.uint16).reshape(3, 64, 64),
                     imagej=True, metadata={"axes": "TYX"})  # fmt: skip
    shorter = tifffile.TiffFile(path).pages[0].description.replace("images=3", "images=2")
    tifffile.tiffcomment(path, shorter.replace("frames=3", "frames=2"))
    with pytest.raises(TiffReadError, match="describe 2 images but it holds 3 pages"):
        read_tiff(path)


def test_label_volume_opens_as_labels(shared_data):
    path = shared_data / LABEL_VOLUME
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "labels"
    assert kwargs["metadata"]["cytomask"]["role"] == "mask"
    middle = np.asarray(data[38])
    assert looks_like_mask("C1", middle)
    # 30 cells and background, the ids intact.
    with tifffile.TiffFile(path) as tif:
        assert np.unique(tif.asarray(key=slice(0, 76, 4))).size == 31
    np.testing.assert_array_equal(middle, tifffile.imread(path, key=38))


def test_a_label_time_lapse_with_an_empty_middle_frame_opens_as_labels(shared_data, tmp_path):
    """Roles were guessed from the middle plane only: a time point without cells made
    the whole label stack an image."""
    cells = skimage_imread(shared_data / "usiigaci-phc/set1/instances_ids.png")[:256, :256]
    stack = np.stack([cells, np.zeros_like(cells), cells]).astype(np.uint16)
    path = tmp_path / "tracked.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TYX"})
    ((data, _, kind),) = read_tiff(path)
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), stack)


def test_labels_without_a_cell_open_as_labels(tmp_path):
    """A run that found no cell, exported and opened again, came back as a second input
    image next to the real one."""
    path = tmp_path / "img2d U-Net cells.tif"
    tifffile.imwrite(path, np.zeros((2, 64, 64), np.uint16), imagej=True, metadata={"axes": "TYX"})
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "labels" and kwargs["metadata"]["cytomask"]["role"] == "mask"
    assert not np.asarray(data).any()


def test_single_plane_without_metadata_is_input(shared_data):
    ((_, kwargs, kind),) = read_tiff(
        shared_data / f"{OME}/singles/170918_tn_neutrophil_migration_wave.ome.tif"
    )
    assert kind == "image"
    assert kwargs["metadata"]["cytomask"]["role"] == "input"
    assert kwargs["colormap"] == "gray"


def test_non_tiff_files_are_refused_saying_what_they_are(shared_data, tmp_path):
    """Files named like a TIFF are taken, so that napari shows why one cannot be read
    (its "refused the file" said nothing), and a picture renamed is read as what it is."""
    from napari_cytomask.io.files import ImageReadError

    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    png = tmp_path / "cells.tif"
    shutil.copy(shared_data / "usiigaci-phc/set1/instances_ids.png", png)
    empty = tmp_path / "empty.tiff"
    empty.write_bytes(b"")
    for path, said in ((text, "is named like a TIFF file but is not one"), (empty, "is empty")):
        assert not is_tiff(path)
        with pytest.raises(ImageReadError, match=f"{path.name}: it {said}"):
            get_reader(str(path))(str(path))
    assert [kind for *_, kind in get_reader(str(png))(str(png))] == ["labels"]
    # Files stacked are read as TIFFs: napari's own reader may take these.
    assert get_reader([str(png), str(png)]) is None
    assert get_reader([str(shared_data / IXM), str(text)]) is None
    (tmp_path / "notes.txt").write_text("not an image")  # not named like a TIFF: not ours
    for path in (tmp_path / "missing.tif", tmp_path, tmp_path / "notes.txt"):
        assert get_reader(str(path)) is None
    with pytest.raises(TiffReadError, match="notes.tif"):
        read_tiff(text)


@pytest.mark.parametrize(
    "name",
    [IXM, MMSTACK, LABEL_VOLUME, "usiigaci-phc/set1/raw.tif", f"{OME}/singles/4D-series.ome.tif"],
)
def test_truncated_file_raises_naming_it(shared_data, tmp_path, name):
    content = (shared_data / name).read_bytes()
    cut = tmp_path / f"cut-{(shared_data / name).name}"
    cut.write_bytes(content[: len(content) // 2])
    reader = get_reader(str(cut))
    assert reader is not None  # still a TIFF signature: the reader reports the problem
    with pytest.raises(TiffReadError) as error:
        reader(str(cut))
    assert str(cut) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_no_mosaic_without_positions(shared_data, tmp_path):
    """What a scan lacks to be stitched is named: a file of positions with a pixel size but
    no stage positions was said to have neither."""
    assert describe_tiff(shared_data / IXM).mosaic_problem == (
        "it holds a single position: there are no tiles to stitch"
    )
    with pytest.raises(TiffReadError, match="a single position"):
        read_tiff(shared_data / IXM, mosaic=True)
    for pixel_size, lacks in (({"PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65}, ""),
                              ({}, " and no pixel size")):  # fmt: skip
        path = tmp_path / f"positions{len(pixel_size)}.ome.tif"
        with tifffile.TiffWriter(path, ome=True) as tif:
            for _ in range(2):
                tif.write(np.zeros((2, 16, 16), np.uint16), photometric="minisblack",
                          metadata={"axes": "CYX", **pixel_size})  # fmt: skip
        assert describe_tiff(path).mosaic_problem == (
            f"it has no stage positions{lacks} to stitch its tiles by"
        )


def test_reader_accepts_a_list(shared_data):
    paths = [str(shared_data / IXM), str(shared_data / f"{OME}/nonometif.tif")]
    # npe2 gives a reader a list for napari's Open Files as Stack only: one file is read
    # as itself, files of 3 channels and of 1 cannot be one stack.
    assert len(get_reader(paths[:1])(paths[:1])) == 3
    with pytest.raises(TiffReadError, match="cannot be one stack"):
        get_reader(paths)(paths)


def test_files_with_their_channels_in_another_order_are_not_one_stack(tmp_path):
    """Files of the same sizes were stacked by channel position: a mask of one file went
    into the other's image layer. Channel names must agree, and a channel whose
    name holds the file's ("a" in "Mask") keeps its name. (Kinds are not compared: the
    first file's roles are taken for all.)"""
    image = np.random.default_rng(0).integers(100, 4000, (64, 64), dtype=np.uint16)
    mask = np.zeros((64, 64), np.uint16)
    mask[10:30, 10:30], mask[40:60, 35:60] = 1, 2
    paths = [str(tmp_path / "a.ome.tif"), str(tmp_path / "b.ome.tif"), str(tmp_path / "c.ome.tif")]
    for path, names, planes in zip(
        paths,
        (["BF", "Mask"], ["BF", "Mask"], ["Mask", "BF"]),
        ([image, mask], [image, mask], [mask, image]),
        strict=True,
    ):
        tifffile.imwrite(
            path, np.stack(planes), metadata={"axes": "CYX", "Channel": {"Name": names}}
        )
    layers = get_reader(paths[:2])(paths[:2])
    assert [(kwargs["name"], kind) for _, kwargs, kind in layers] == [
        ("BF", "image"),
        ("Mask", "labels"),
    ]
    np.testing.assert_array_equal(np.asarray(layers[1][0]), [mask, mask])
    # A file named after its channel ("DAPI.ome.tif" holding "DAPI") stacks with others.
    dapi = [str(tmp_path / "DAPI.ome.tif"), str(tmp_path / "DAPI_t2.ome.tif")]
    for path in dapi:
        tifffile.imwrite(path, image, metadata={"axes": "YX", "Channel": {"Name": "DAPI"}})
    ((_, kwargs, _),) = get_reader(dapi)(dapi)
    assert kwargs["name"] == "DAPI"
    with pytest.raises(TiffReadError) as error:
        get_reader(paths)(paths)
    # Said from its start: napari's notification shows only the beginning.
    assert str(error.value) == (
        "These files cannot be one stack: c.ome.tif holds 2 channel(s) (Mask, BF) of 64 x 64 "
        "uint16, while a.ome.tif holds 2 channel(s) (BF, Mask) of 64 x 64 uint16. Open the "
        "files one by one, or save them with the same channels."
    )


def test_files_of_another_pixel_size_are_not_one_stack(tmp_path):
    """Given the first file's pixel size, the cells of a 20x image stacked after a 10x one
    measured 4 times too small in µm², unsaid."""
    image = np.random.default_rng(0).integers(100, 4000, (64, 64), dtype=np.uint16)
    calibrated = [str(tmp_path / "10x.ome.tif"), str(tmp_path / "20x.ome.tif")]
    for path, size in zip(calibrated, (0.65, 0.325), strict=True):
        tifffile.imwrite(
            path, image, metadata={"axes": "YX", "PhysicalSizeX": size, "PhysicalSizeY": size}
        )
    with pytest.raises(TiffReadError) as error:
        get_reader(calibrated)(calibrated)
    assert str(error.value).startswith(
        "These files cannot be one stack: 20x.ome.tif records a pixel size of 0.325 µm, while "
        "10x.ome.tif records 0.65 µm: one stack has one pixel size."
    )
    tifffile.imwrite(calibrated[1], image, metadata={"axes": "YX"})  # none recorded
    with pytest.raises(TiffReadError, match="records a pixel size of none, while 10x"):
        get_reader(calibrated)(calibrated)
    tifffile.imwrite(calibrated[1], image, metadata={"axes": "YX", "PhysicalSizeX": 0.65,
                                                      "PhysicalSizeY": 0.65})  # fmt: skip
    ((data, kwargs, _),) = get_reader(calibrated)(calibrated)
    assert data.shape == (2, 64, 64) and kwargs["scale"][-2:] == (0.65, 0.65)
    # Z steps of their own: areas in µm² are the same (it was refused as "0.65 µm, while
    # ... 0.65 µm").
    for path, step in zip(calibrated, (1.0, 2.0), strict=True):
        tifffile.imwrite(path, np.stack([image] * 2), metadata={
            "axes": "ZYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeZ": step
        })  # fmt: skip
    ((data, _, _),) = get_reader(calibrated)(calibrated)
    assert data.shape == (2, 2, 64, 64)
