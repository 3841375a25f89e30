import json

import numpy as np
import pytest
import zarr

from napari_cytomask.io.files import (
    ImageReadError,
    find_inputs,
    open_scan,
    read_image,
    read_labels,
)
from napari_cytomask.io.omezarr import create_labels, open_image


def test_labels_hold_their_name_axes_and_scale(tmp_path):
    """Lengths in NGFF's unit names, the time between time points in seconds as the TIFF
    writers keep it, positions and pixels without a unit, a flipped axis's size positive;
    the name is the one given, not the folder's (a temporary one while it is filled)."""
    store = tmp_path / ".cells.ome.zarr.host-1.abc.part"
    labels = create_labels(
        store,
        (2, 3, 8, 8),
        name="cells",
        scale=(1.0, 2.0, -65.0, 65.0),
        units=("pixel", "min", "nm", "nm"),
        axis_labels=("P", "T", "Y", "X"),
    )
    labels[1, 2, :4, :4] = 7
    (image,) = json.loads((store / ".zattrs").read_text())["multiscales"]
    assert image["name"] == "cells"
    assert image["axes"] == [
        {"name": "p"},
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]
    (dataset,) = image["datasets"]
    assert dataset["coordinateTransformations"] == [
        {"type": "scale", "scale": [1.0, 120.0, 65.0, 65.0]}
    ]
    assert np.asarray(open_image(store).array).max() == 7


def _image_store(path, data, axes, scale, *, zarr_format=2, **more):
    """An OME-Zarr image of one level: NGFF 0.4 in Zarr v2, or 0.5 (its metadata under
    ``ome``) in Zarr v3."""
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    root.create_array("0", data=data)
    transform = [{"type": "scale", "scale": list(scale)}]
    image = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transform}]}
    ome = {"multiscales": [{"version": "0.4", **image}], **more}
    if zarr_format == 2:
        root.attrs.update(ome)
    else:
        root.attrs["ome"] = {"version": "0.5", **ome}
    return root


def _axis(name, kind, unit=None):
    return {"name": name, "type": kind, **({"unit": unit} if unit else {})}


def test_labels_read_back_with_their_axes_and_pixel_size(tmp_path):
    """Labels that create_labels wrote with a pixel size read back with a scale of 1 and
    axes T, Z, Y, X of the array's size, whatever the metadata said."""
    store = tmp_path / "cells.ome.zarr"
    geometry = {"scale": (1.0, 1.5, 0.65, 0.65), "units": ("pixel", "min", "µm", "µm"),
                "axis_labels": ("P", "T", "Y", "X")}  # fmt: skip
    labels = create_labels(store, (2, 3, 32, 32), **geometry)
    labels[1, 2, 4:12, 4:12] = 5
    scan = open_scan(store)
    assert scan.axes == ("P", "T", "Y", "X")
    assert scan.scale == pytest.approx((1.0, 90.0, 0.65, 0.65))
    assert scan.units == ("pixel", "s", "µm", "µm") and scan.pixel_size_um == (0.65, 0.65)
    (channel,) = scan.channels
    assert channel.name == "cells" and channel.role == "mask"
    # As evaluate and export read them.
    ids, geometry = read_labels(store)
    assert ids.max() == 5 and geometry["axis_labels"] == ("P", "T", "Y", "X")
    assert geometry["scale"] == pytest.approx(scan.scale) and geometry["units"] == scan.units


@pytest.mark.parametrize(
    ("level", "image", "translate"),
    [([{"type": "scale", "scale": [1, 325, 325]},
       {"type": "translation", "translation": [0, 1000, 2000]}], [], (1.0, 2.0)),
     # The image's own transformations come after its level's: its scale scales the
     # level's translation too.
     ([{"type": "scale", "scale": [1, 162.5, 162.5]},
       {"type": "translation", "translation": [0, 500, 1000]}],
      [{"type": "scale", "scale": [1, 2, 2]},
       {"type": "translation", "translation": [0, 0, -3000]}], (1.0, -1.0))],
    ids=["level", "level-and-image"],
)  # fmt: skip
def test_a_translation_places_the_layers_where_the_metadata_say(tmp_path, level, image, translate):
    """NGFF's translation (where the first pixel lies, in the units of the scale) was not
    read: the layers of a store placed beside others opened at 0, 0."""
    from napari_cytomask._reader import get_reader

    store = tmp_path / "tile.ome.zarr"
    axes = [_axis("c", "channel"), _axis("y", "space", "nanometer"),
            _axis("x", "space", "nanometer")]  # fmt: skip
    pixels = np.random.default_rng(0).integers(100, 4000, (2, 16, 16), dtype=np.uint16)
    root = _image_store(store, pixels, axes, (1, 1, 1))
    multiscales = root.attrs["multiscales"]
    multiscales[0]["datasets"][0]["coordinateTransformations"] = level
    if image:
        multiscales[0]["coordinateTransformations"] = image
    root.attrs["multiscales"] = multiscales

    scan = open_scan(store)

    assert scan.scale == pytest.approx((0.325, 0.325)) and scan.units == ("µm", "µm")
    assert scan.translate == pytest.approx(translate)
    layers = get_reader(str(store))(str(store))
    assert [kwargs["translate"] for _, kwargs, _ in layers] == [pytest.approx(translate)] * 2


def test_labels_written_as_segment_writes_them_keep_their_place(tmp_path):
    """Labels of a store placed by a translation, written with its geometry (as ``cytomask
    segment`` writes its chunked result), open where the image lies: the time axis's
    offset in seconds, as its scale."""
    from napari_cytomask.io.files import geometry_of

    image = tmp_path / "scan.ome.zarr"
    create_labels(image, (2, 8, 8), scale=(1.5, 0.65, 0.65), units=("min", "µm", "µm"),
                  axis_labels=("T", "Y", "X"), translate=(3.0, 13.0, -6.5))  # fmt: skip
    (dataset,) = json.loads((image / ".zattrs").read_text())["multiscales"][0]["datasets"]
    assert dataset["coordinateTransformations"] == [
        {"type": "scale", "scale": [90.0, 0.65, 0.65]},
        {"type": "translation", "translation": [180.0, 13.0, -6.5]},
    ]
    scan = open_scan(image)
    assert scan.translate == pytest.approx((180.0, 13.0, -6.5))

    cells = tmp_path / "cells.ome.zarr"
    create_labels(cells, (2, 8, 8), **geometry_of(scan, 3))
    assert open_scan(cells).translate == pytest.approx(scan.translate)
    # Labels of one plane of it keep its place in Y and X.
    plane = tmp_path / "plane.ome.zarr"
    create_labels(plane, (8, 8), **geometry_of(scan, 2))
    assert open_scan(plane).translate == pytest.approx((13.0, -6.5))


@pytest.mark.parametrize("zarr_format", [2, 3], ids=["NGFF 0.4", "NGFF 0.5"])
def test_an_image_of_channels_opens_one_channel_per_index(zarr_format, tmp_path):
    """The channels of a t, c, y, x image were taken for Z planes of one channel, its
    axes for T, Z, Y, X and its pixels for 1 x 1."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(100, 4000, (3, 2, 48, 48), dtype=np.uint16)
    axes = [_axis("t", "time", "millisecond"), _axis("c", "channel"),
            _axis("y", "space", "nanometer"), _axis("x", "space", "nanometer")]  # fmt: skip
    omero = {"channels": [{"label": "GFP", "color": "00FF00"}, {"label": " Brightfield "}]}
    _image_store(tmp_path / "scan.ome.zarr", pixels, axes, (500.0, 1.0, 325.0, 325.0),
                 zarr_format=zarr_format, omero=omero)  # fmt: skip
    scan = open_scan(tmp_path / "scan.ome.zarr")
    assert scan.axes == ("T", "Y", "X")
    assert scan.scale == pytest.approx((0.5, 0.325, 0.325)) and scan.units == ("s", "µm", "µm")
    assert [(c.name, c.role, c.index) for c in scan.channels] == [
        ("GFP", "image", 0),
        ("Brightfield", "input", 1),
    ]
    np.testing.assert_array_equal(scan.channels[1].data, pixels[:, 1])
    # Without labels: numbered as a TIFF's channels are.
    _image_store(tmp_path / "plain.zarr", pixels, axes, (500.0, 1.0, 325.0, 325.0))
    assert [c.name for c in open_scan(tmp_path / "plain.zarr").channels] == ["C1", "C2"]


def test_a_store_opens_without_reading_its_pixels(tmp_path):
    """An OME-Zarr image was read whole when opened (in napari, and by every step of
    ``cytomask segment`` that opens its input): a store larger than memory could not be
    opened at all. Its channels now stay on disk, as a TIFF's do, and only a sample of
    each is read for its role and contrast."""
    import tracemalloc

    rng = np.random.default_rng(1)
    shape = (8, 2, 1024, 1024)  # P, C, Y, X: 32 MB
    root = zarr.open_group(tmp_path / "scan.ome.zarr", mode="w", zarr_format=2)
    array = root.create_array("0", shape=shape, chunks=(1, 1, 256, 256), dtype=np.uint16)
    phase = rng.integers(1000, 3000, shape[2:], dtype=np.uint16)
    mask = np.zeros(shape[2:], np.uint16)
    mask[100:300, 200:400], mask[600:900, 50:250] = 3, 9
    array[6, 0], array[6, 1] = phase, mask
    axes = [_axis("p", "position"), _axis("c", "channel"),
            _axis("y", "space", "micrometer"), _axis("x", "space", "micrometer")]  # fmt: skip
    transform = [{"type": "scale", "scale": [1.0, 1.0, 0.65, 0.65]}]
    dataset = {"path": "0", "coordinateTransformations": transform}
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [dataset]}]
    root.attrs["omero"] = {"channels": [{"label": "Phase"}, {"label": "cells"}]}

    tracemalloc.start()
    try:
        scan = open_scan(tmp_path / "scan.ome.zarr")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < array.nbytes / 8, (
        f"{peak / 1e6:.1f} MB read to open a {array.nbytes / 1e6:.0f} MB store"
    )
    assert [(c.name, c.role) for c in scan.channels] == [("Phase", "input"), ("cells", "mask")]
    # The sample found the position that holds pixels, past the empty middle one (4).
    low, high = scan.channels[0].contrast_limits
    assert 1000 <= low < high <= 3000
    assert not isinstance(scan.channels[0].data, np.ndarray)
    # Read when asked for, in the order of the scan's axes.
    np.testing.assert_array_equal(np.asarray(scan.channels[1].data[6]), mask)
    np.testing.assert_array_equal(np.asarray(scan.channels[0].data[:, 500, 7]), array[:, 0, 500, 7])


def test_a_bioformats2raw_store_opens_its_first_image(tmp_path):
    """A store bioformats2raw wrote (its images in subfolders 0, 1…) could not be read:
    now its first image opens, a note says how many there are, and a folder scan finds it."""
    store = tmp_path / "slide.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    root.create_group("OME").attrs["series"] = ["0", "1"]
    axes = [_axis("c", "channel"), _axis("y", "space", "micrometer"),
            _axis("x", "space", "micrometer")]  # fmt: skip
    first = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64)
    for path, pixels in (("0", first), ("1", first[:, :16, :16])):
        _image_store(store / path, pixels, axes, (1.0, 0.25, 0.25))
    with pytest.warns(UserWarning, match=r"holds 2 images \(series\); only the first \(0\)"):
        scan = open_scan(store)
    (channel,) = scan.channels
    assert channel.name == "slide" and channel.data.shape == (64, 64)
    assert scan.axes == ("Y", "X") and scan.pixel_size_um == (0.25, 0.25)
    assert find_inputs([tmp_path]) == [store]


def test_a_zarr_folder_of_no_image_says_so(tmp_path):
    """A Zarr folder without image metadata had its array "0" read as an image."""
    zarr.open_group(tmp_path / "notes.zarr", mode="w").create_array("0", shape=(4,), dtype="u1")
    with pytest.raises(ImageReadError, match="notes.zarr is no OME-Zarr image: its metadata"):
        open_scan(tmp_path / "notes.zarr")


@pytest.mark.parametrize(
    "multiscales",
    [[{}], [{"datasets": []}], [{"datasets": [{"path": "s0"}]}]],
    ids=["no datasets", "empty datasets", "array not there"],
)
def test_metadata_that_names_no_image_in_the_store_is_said_damaged(tmp_path, multiscales):
    """A store whose metadata named no dataset, or one not in it, gave "Cannot read
    x.zarr: 'datasets'" or "'s0'": a Python key for a reason."""
    group = zarr.open_group(tmp_path / "x.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=(4, 4), dtype="u1")
    group.attrs["multiscales"] = multiscales
    with pytest.raises(ImageReadError, match="names no image that is in it .* write it again"):
        open_scan(tmp_path / "x.zarr")


def _zarray_edited(store, **changes):
    path = store / "0" / ".zarray"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _first_chunk(store):
    return next(p for p in sorted((store / "0").rglob("*")) if p.is_file() and "." not in p.name)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda s: (s / ".zattrs").write_text("{"), r"its metadata are no valid JSON \(Expecting "
         r"property name enclosed in double quotes, line 1 column 2\); it is damaged"),
        (lambda s: (s / "0" / ".zarray").write_text("{"), r"the metadata of its image are "
         r"damaged \(Expecting property name"),
        (lambda s: (s / ".zgroup").unlink(), r"holds no Zarr group \(its .zgroup or zarr.json "
         r"file is missing\)"),
        (lambda s: _zarray_edited(s, shape=[2, -5, 64]), r"the metadata of its image are "
         r"damaged \(Expected all values to be non-negative"),
        (lambda s: _zarray_edited(s, dtype="<f8x"), "the metadata of its image are damaged"),
        (lambda s: _zarray_edited(s, fill_value="x"), r"the metadata of its image are "
         r"damaged \(Invalid type: x"),
        (lambda s: _zarray_edited(s, chunks=[1, 32, 0]), r"its chunks of 1 x 32 x 0 pixels "
         r"hold no pixel; its metadata are damaged"),
        (lambda s: _zarray_edited(s, dtype="<f8"), "some of its pixels do not decode"),
        (lambda s: _first_chunk(s).write_bytes(_first_chunk(s).read_bytes()[:10]),
         r"some of its pixels do not decode \(a chunk file cut short"),
    ],
    ids=["attributes not JSON", "array metadata not JSON", "no group", "negative size",
         "no data type", "fill value no number", "chunks of no pixel", "another data type",
         "chunk cut short"],
)  # fmt: skip
def test_a_damaged_store_says_so_when_it_is_opened(tmp_path, damage, said):
    """Found by changing stores as a copy cut short or an edit would (benchmarks/
    fuzz_zarr.py): zarr's, json's and blosc's words alone ("Expecting property name
    enclosed in double quotes", "No group found in store", "cannot reshape array of size
    512", "error during blosc decompression: -1", this last one in napari as the plane
    was first shown)."""
    from napari_cytomask._reader import get_reader

    store = tmp_path / "cells.ome.zarr"
    labels = create_labels(store, (2, 64, 64), chunks=32, name="cells")
    labels[:] = np.random.default_rng(0).integers(0, 5, (2, 64, 64))
    damage(store)
    with pytest.raises(ImageReadError, match=said):
        layers = open_scan(store).layer_data()
        for data, _, _ in layers:  # as napari shows them: every plane, once
            np.asarray(data)
    with pytest.raises(ImageReadError, match=said):
        for data, _, _ in get_reader(str(store))(str(store)):
            np.asarray(data)
    with pytest.raises(ImageReadError, match=said):  # the command line's whole read
        read_image(store)


def test_a_plane_larger_than_memory_is_refused_before_napari_reads_it(tmp_path, monkeypatch):
    """A store of 64 x 64 pixels whose metadata said 10⁹ x 10⁹ opened lazily, and napari,
    reading the first plane to show it, was ended by the system for lack of memory (with
    the work in it). The plugin's reader refuses such a plane, and the command line's
    whole read such an image; cytomask segment, which reads large images chunk by chunk,
    still opens the store."""
    from napari_cytomask import _reader
    from napari_cytomask.io import files

    store = tmp_path / "cells.ome.zarr"
    create_labels(store, (2, 64, 64), name="cells")[:] = 1
    _zarray_edited(store, shape=[2, 10**6, 10**6], chunks=[1, 2048, 2048])
    with pytest.raises(ImageReadError, match=(
        r"a plane of it is 1000000 x 1000000 pixels \(3.6 TiB\), more than this computer's "
        r"memory \(.* GiB\), and napari reads a whole plane to show it"
    )):  # fmt: skip
        _reader.get_reader(str(store))(str(store))
    with pytest.raises(ImageReadError, match=r"cells.ome.zarr whole: it is 2 x 1000000 x"):
        files.read_image(store)
    assert open_scan(store).channels[0].data.shape == (2, 10**6, 10**6)
    # The memory is the computer's: 16 KiB planes (64 x 64 x 4 bytes) fit in 16 KiB, not 8.
    good = tmp_path / "good.ome.zarr"
    create_labels(good, (2, 64, 64), chunks=32, name="cells")[:] = 1
    monkeypatch.setattr(files, "physical_memory", lambda: 16 * 1024)
    assert _reader.get_reader(str(good))(str(good))
    monkeypatch.setattr(files, "physical_memory", lambda: 8 * 1024)
    with pytest.raises(ImageReadError, match=(
        r"a plane of it is 64 x 64 pixels \(16 KiB\), more than this computer's memory "
        r"\(8 KiB\)"
    )):  # fmt: skip
        _reader.get_reader(str(good))(str(good))
    with pytest.raises(ImageReadError, match=r"2 x 64 x 64 pixels \(32 KiB\), more than"):
        files.read_image(good)


def test_an_image_of_more_chunks_than_dask_can_list_is_refused(tmp_path):
    """The same store said to be 10⁹ x 10⁹ in chunks of 32 x 32 (10¹⁵ chunks) took more
    than 4 GiB (then a MemoryError) to open, in dask's list of the chunks to read."""
    store = tmp_path / "cells.ome.zarr"
    create_labels(store, (2, 64, 64), chunks=32, name="cells")[:] = 1
    _zarray_edited(store, shape=[2, 10**9, 10**9])
    with pytest.raises(ImageReadError, match=(
        r"its image of 2 x 1000000000 x 1000000000 pixels in chunks of 1 x 32 x 32 would be "
        r"1,953,125,000,000,000 chunks, more than the 4,194,304 napari-cytomask reads; its "
        r"metadata are damaged"
    )):  # fmt: skip
        open_scan(store)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_label_images_beside_the_image_open_as_its_masks(zarr_format, tmp_path):
    """The masks of an OME-Zarr image, in its 'labels' group as NGFF keeps them, were left
    out: only the image opened. They are its mask channels, numbered on from its own
    channels; one that does not cover the image pixel for pixel (a lower resolution) is
    left out with a warning that says why, and the others open."""
    store = tmp_path / "bf.ome.zarr"
    axes = [_axis("c", "channel"), _axis("y", "space", "micrometer"),
            _axis("x", "space", "micrometer")]  # fmt: skip
    image = np.random.default_rng(0).integers(100, 4000, (2, 16, 16), dtype=np.uint16)
    root = _image_store(store, image, axes, (1, 0.65, 0.65), zarr_format=zarr_format,
                        omero={"channels": [{"label": "Phase"}, {"label": "GFP"}]})  # fmt: skip
    labels = root.create_group("labels")
    listed = ["cells", "nuclei", "coarse", "one channel"]
    if zarr_format == 2:
        labels.attrs["labels"] = listed
    else:
        labels.attrs["ome"] = {"version": "0.5", "labels": listed}
    cells = np.zeros((16, 16), np.uint32)
    cells[2:6, 2:6], cells[8:14, 9:15] = 3, 9
    for name, ids, scale in (("cells", cells, (0.65, 0.65)), ("nuclei", cells // 3, (0.65, 0.65)),
                             ("coarse", cells[::2, ::2], (1.3, 1.3))):  # fmt: skip
        _image_store(store / "labels" / name, ids, axes[1:], scale, zarr_format=zarr_format)
    # A channel axis of one channel, as some writers give labels.
    _image_store(store / "labels" / "one channel", cells[None] * 2, axes, (1, 0.65, 0.65),
                 zarr_format=zarr_format)  # fmt: skip
    with pytest.warns(UserWarning, match=r"1 of its label images did not open \(coarse: its "
                      r"8 x 8 pixels do not cover the image's 16 x 16 one for one\); the image "
                      r"opened without it"):  # fmt: skip
        scan = open_scan(store)
    assert [(c.name, c.role, c.index) for c in scan.channels] == [
        ("Phase", "input", 0), ("GFP", "image", 1), ("cells", "mask", 2), ("nuclei", "mask", 3),
        ("one channel", "mask", 4),
    ]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(scan.channels[4].data), cells * 2)
    np.testing.assert_array_equal(np.asarray(scan.channels[2].data), cells)
    assert scan.pixel_size_um == (0.65, 0.65)
    # The command line's ground truth: a mask channel chosen by its number.
    ids, _ = read_labels(store, among_masks=3)
    np.testing.assert_array_equal(ids, cells // 3)


def test_a_store_whose_label_images_did_not_open_is_no_ground_truth(tmp_path):
    """Its label images at half the image's size were left out, and `cytomask evaluate`
    then compared the phase contrast's pixels as the ground truth (F1 0.000, exit 0)."""
    store = tmp_path / "bf.ome.zarr"
    axes = [_axis("y", "space", "micrometer"), _axis("x", "space", "micrometer")]
    image = np.random.default_rng(0).integers(100, 4000, (16, 16), dtype=np.uint16)
    root = _image_store(store, image, axes, (0.65, 0.65))
    root.create_group("labels").attrs["labels"] = ["coarse"]
    _image_store(store / "labels" / "coarse", np.ones((8, 8), np.uint8), axes, (1.3, 1.3))
    with pytest.warns(UserWarning, match="1 of its label images did not open"):
        with pytest.raises(ValueError, match=r"none of its label images \(coarse\) could be "
                           r"read as the labels of its image"):  # fmt: skip
            read_labels(store)


def test_an_images_pyramid_opens_as_the_levels_of_its_channels(tmp_path):
    """A store of four resolution levels opened as its full one alone: napari read a whole
    plane of it to show any view (2.6 s for 4096 x 4096, a refusal for a slide). Its levels
    are the channel's pyramid, as a pyramidal TIFF's are; levels that do not shrink are
    left out, the full one kept."""
    from napari_cytomask._reader import get_reader

    store = tmp_path / "slide.ome.zarr"
    axes = [_axis("c", "channel"), _axis("y", "space", "micrometer"),
            _axis("x", "space", "micrometer")]  # fmt: skip
    full = np.random.default_rng(0).integers(100, 4000, (2, 64, 64), dtype=np.uint16)
    root = _image_store(store, full, axes, (1, 0.5, 0.5))
    root.create_array("1", data=full[:, ::2, ::2])
    root.create_array("2", data=full[:, ::4, ::4])
    multiscales = root.attrs["multiscales"]
    multiscales[0]["datasets"] += [
        {"path": str(k), "coordinateTransformations": [{"type": "scale",
                                                         "scale": [1, 0.5 * 2**k, 0.5 * 2**k]}]}
        for k in (1, 2)
    ]  # fmt: skip
    root.attrs["multiscales"] = multiscales
    scan = open_scan(store)
    assert [[level.shape for level in c.data] for c in scan.channels] == [
        [(64, 64), (32, 32), (16, 16)]
    ] * 2
    np.testing.assert_array_equal(np.asarray(scan.channels[1].data[1]), full[1, ::2, ::2])
    layers = get_reader(str(store))(str(store))
    assert all(kwargs.get("multiscale") for _, kwargs, _ in layers)
    # A level as large as the one before is no pyramid: the full level alone.
    multiscales[0]["datasets"][2]["path"] = "1"
    root.attrs["multiscales"] = multiscales
    assert open_scan(store).channels[0].data.shape == (64, 64)
