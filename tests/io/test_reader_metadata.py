"""Metadata the TIFF reader takes from scanners' own layouts: channel names and colours,
pixel sizes, and the names of single-channel layers (files written here with tifffile)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from napari_cytomask._reader import get_reader
from napari_cytomask.io.tiff import (
    PIXEL_SIZE_RANGE_UM,
    TiffReadError,
    describe_tiff,
    read_tiff,
)

QPI_CHANNELS = [("DAPI", "0,0,255"), ("FITC", "0,255,0"), ("Cy3", "255,0,0")]


def _qpi_xml(image_type: str, name: str | None = None, color: str | None = None) -> str:
    """A PerkinElmer QPI ImageDescription as Vectra and Polaris scanners write it."""
    channel = f"<Name>{name}</Name><Color>{color}</Color>" if name else ""
    return (
        '<?xml version="1.0" encoding="utf-16"?>\r\n<PerkinElmer-QPI-ImageDescription>\r\n'
        "<DescriptionVersion>2</DescriptionVersion>"
        "<AcquisitionSoftware>PerkinElmer-QPI</AcquisitionSoftware>"
        f"<ImageType>{image_type}</ImageType><Identifier>4b2c</Identifier>"
        f"<SlideID>S1</SlideID>{channel}<Objective>20x</Objective>\r\n"
        "</PerkinElmer-QPI-ImageDescription>"
    )


def _write_qptiff(path, channels=QPI_CHANNELS, size=512):
    """Full-resolution pages (one per channel), a thumbnail, a reduced level, an overview."""
    planes = [np.full((size, size), 100 * (i + 1), np.uint16) for i in range(len(channels))]
    for i, plane in enumerate(planes):
        plane[i::7, :] += 1000  # each channel its own pattern, to check the page order
    qpi = {"software": "PerkinElmer-QPI", "metadata": None}
    with tifffile.TiffWriter(path) as tw:

        def channel_pages(image_type: str, step: int, **extra) -> None:
            for plane, (name, color) in zip(planes, channels, strict=True):
                tw.write(
                    plane[::step, ::step],
                    tile=(256, 256),
                    description=_qpi_xml(image_type, name, color),
                    resolution=(2e4 / step, 2e4 / step),
                    resolutionunit="CENTIMETER",
                    **extra,
                    **qpi,
                )

        def colour_page(image_type: str, shape: tuple[int, int]) -> None:
            rgb = np.zeros((*shape, 3), np.uint8)
            tw.write(rgb, photometric="rgb", description=_qpi_xml(image_type), **qpi)

        channel_pages("FullResolution", 1)
        colour_page("Thumbnail", (64, 64))
        channel_pages("ReducedResolution", 2, subfiletype=1)
        colour_page("Overview", (96, 48))
    return planes


def test_qptiff_channels_take_names_and_colours_from_their_pages(tmp_path):
    path = tmp_path / "vectra.qptiff"
    planes = _write_qptiff(path)
    with tifffile.TiffFile(path) as tif:  # tifffile reads it as a QPI file
        assert tif.is_qpi and tif.series[0].kind == "qpi"

    layers = get_reader(str(path))(str(path))

    assert [kwargs["name"] for _, kwargs, _ in layers] == ["DAPI", "FITC", "Cy3"]
    # The file's colours, not those guessed from the dye names (Cy3 would be magenta).
    assert [kwargs["colormap"] for _, kwargs, _ in layers] == ["blue", "green", "red"]
    for (data, kwargs, kind), plane in zip(layers, planes, strict=True):
        assert kind == "image" and kwargs["multiscale"]
        assert [level.shape for level in data] == [(512, 512), (256, 256)]
        np.testing.assert_array_equal(np.asarray(data[0]), plane)
        np.testing.assert_allclose(kwargs["scale"], (0.5, 0.5))  # 20000 pixels per cm
        assert kwargs["metadata"]["cytomask"]["tiff_kind"] == "qpi"


def test_qptiff_channel_without_a_usable_colour_falls_back_to_the_dye(tmp_path):
    path = tmp_path / "vectra.qptiff"
    _write_qptiff(path, [("DAPI", "0,0,0"), ("Opal 570", "not a colour")])

    desc = describe_tiff(path)

    assert desc.channel_names == ("DAPI", "Opal 570")
    assert desc.channel_colors == (None, None)
    layers = read_tiff(path)
    assert layers[0][1]["colormap"] == "blue"  # from the name DAPI


def _write_svs(path, description: str):
    """An Aperio layout: tiled baseline, thumbnail, a tiled reduced level, a label."""
    rgb = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path) as tw:
        tw.write(rgb, tile=(256, 256), photometric="rgb", description=description, metadata=None)
        tw.write(rgb[::8, ::8], photometric="rgb", description=description, metadata=None)
        tw.write(
            rgb[::2, ::2],
            tile=(256, 256),
            photometric="rgb",
            description=description,
            metadata=None,
        )
        tw.write(
            rgb[:64, :96],
            photometric="rgb",
            subfiletype=1,
            metadata=None,
            description="Aperio Image Library v10.0.50\r\nlabel 96x64",
        )
    return rgb


SVS_HEADER = "Aperio Image Library v10.0.50\r\n512x512 [0,100 512x512] (256x256) JPEG/RGB Q=70"


def test_svs_pixel_size_comes_from_mpp(tmp_path):
    path = tmp_path / "CMU-1.svs"
    rgb = _write_svs(path, f"{SVS_HEADER}|AppMag = 20|StripeWidth = 2040|MPP = 0.499|Date = x")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_svs and tif.series[0].kind == "svs"

    ((data, kwargs, _),) = read_tiff(path)

    assert kwargs["rgb"] and kwargs["name"] == "CMU-1"
    np.testing.assert_allclose(kwargs["scale"], (0.499, 0.499))
    assert kwargs["units"] == ("µm", "µm")
    assert kwargs["metadata"]["cytomask"]["pixel_size_um"] == {"Y": 0.499, "X": 0.499}
    np.testing.assert_array_equal(np.asarray(data[0]), rgb)
    assert [level.shape for level in data] == [(512, 512, 3), (256, 256, 3)]


@pytest.mark.parametrize("mpp", ["", "|MPP = 0", "|MPP = 254", "|MPP = n/a"])
def test_svs_without_a_plausible_mpp_stays_in_pixels(tmp_path, mpp):
    path = tmp_path / "slide.svs"
    _write_svs(path, f"{SVS_HEADER}|AppMag = 20{mpp}")

    assert describe_tiff(path).pixel_size == {}
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"] == (1.0, 1.0)


def _write_pyramid(path, resolution, unit, levels=4, level_resolution=None):
    """A tiled base image with its reduced levels in SubIFDs, each with resolution tags."""
    base = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            base, tile=(128, 128), subifds=levels - 1, resolution=resolution, resolutionunit=unit
        )
        for level in range(1, levels):
            factor = 2**level
            own = level_resolution or tuple(r / factor for r in resolution)
            tw.write(
                base[::factor, ::factor],
                tile=(64, 64),
                subfiletype=1,
                resolution=own,
                resolutionunit=unit,
            )
    return base


@pytest.mark.parametrize(
    ("resolution", "unit"),
    [
        ((72, 72), "INCH"),
        ((72 / 2.54, 72 / 2.54), "CENTIMETER"),  # 72 dpi in cm: 352.8 µm, once taken as real
    ],
    ids=["inch", "centimetre"],
)
def test_default_72_dpi_pyramid_stays_in_pixels_on_every_level(tmp_path, resolution, unit):
    path = tmp_path / "pyramid.tif"
    base = _write_pyramid(path, resolution, unit)

    ((data, kwargs, _),) = read_tiff(path)

    assert [level.shape for level in data] == [(512, 512), (256, 256), (128, 128), (64, 64)]
    np.testing.assert_array_equal(np.asarray(data[3]), base[::8, ::8])
    # napari scales every level from the base's scale and the level's shape.
    assert kwargs["multiscale"] and kwargs["scale"] == (1.0, 1.0)
    assert kwargs.get("units") in (None, ("pixel", "pixel"))
    assert kwargs["metadata"]["cytomask"]["pixel_size_um"] == {}


@pytest.mark.parametrize("dpi", [96, 600, 1200, 2400])
@pytest.mark.parametrize("unit", ["INCH", "CENTIMETER"])
def test_plain_file_at_an_editors_dpi_stays_in_pixels(tmp_path, dpi, unit):
    """600 dpi (a figure's export) read as 42.3 µm pixels: cells of 4.5 mm² in the export;
    so when an editor wrote it per centimetre (GIMP in metric units: 236.22)."""
    path = tmp_path / "screenshot.tif"
    per = dpi if unit == "INCH" else dpi / 2.54
    tifffile.imwrite(path, np.zeros((32, 48), np.uint8), resolution=(per, per), resolutionunit=unit)

    assert describe_tiff(path).pixel_size == {}
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"] == (1.0, 1.0)
    # A microscope's calibration in inches is kept: 2540 pixels per inch are 10 µm.
    tifffile.imwrite(
        path, np.zeros((32, 48), np.uint8), resolution=(2540, 2540), resolutionunit="INCH"
    )
    assert describe_tiff(path).pixel_size == {"X": 10.0, "Y": 10.0}


@pytest.mark.parametrize(
    ("pixels_per_unit", "unit"),
    [(25400 / 0.65, "INCH"), (1e4 / 0.65, "CENTIMETER"), (1e3 / 0.65, "MILLIMETER")],
    ids=["inch", "centimetre", "millimetre"],
)
def test_microscope_resolution_tags_give_the_pixel_size(tmp_path, pixels_per_unit, unit):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(
        path,
        np.zeros((32, 48), np.uint16),
        resolution=(pixels_per_unit, pixels_per_unit),
        resolutionunit=unit,
    )

    ((_, kwargs, _),) = read_tiff(path)

    # The tag is a fraction of 32-bit integers: older tifffile versions store 25400 / 0.65
    # pixels per inch to 6 digits.
    np.testing.assert_allclose(kwargs["scale"], (0.65, 0.65), rtol=1e-5)
    assert kwargs["units"] == ("µm", "µm")


def test_pyramid_scale_is_the_base_levels_whatever_the_levels_say(tmp_path):
    path = tmp_path / "pyramid.tif"
    # Reduced levels written with an image editor's 72 dpi, the base calibrated.
    _write_pyramid(path, (1e4 / 0.65, 1e4 / 0.65), "CENTIMETER", level_resolution=(72, 72))

    ((data, kwargs, _),) = read_tiff(path)

    assert len(data) == 4
    np.testing.assert_allclose(kwargs["scale"], (0.65, 0.65), rtol=1e-6)


def test_resolution_tags_whose_x_and_y_disagree_are_ignored(tmp_path):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(
        path,
        np.zeros((32, 48), np.uint16),
        resolution=(1e4 / 0.65, 1e4 / 6.5),
        resolutionunit="CENTIMETER",
    )

    assert describe_tiff(path).pixel_size == {}


@pytest.mark.parametrize("size", [PIXEL_SIZE_RANGE_UM[0] / 2, PIXEL_SIZE_RANGE_UM[1] * 2])
def test_resolution_tags_outside_the_range_are_ignored(tmp_path, size):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(
        path,
        np.zeros((32, 48), np.uint16),
        resolution=(1e4 / size, 1e4 / size),
        resolutionunit="CENTIMETER",
    )

    assert describe_tiff(path).pixel_size == {}


def _imagej_stack(path, resolution: float, unit: str, spacing: float):
    """A 3-plane ImageJ Z stack with square pixels of ``resolution`` per ``unit``."""
    tifffile.imwrite(
        path,
        np.zeros((3, 32, 48), np.uint16),
        imagej=True,
        resolution=(resolution, resolution),
        metadata={"axes": "ZYX", "unit": unit, "spacing": spacing},
    )
    return path


def test_imagej_file_in_inches_at_72_dpi_stays_in_pixels(tmp_path):
    path = _imagej_stack(tmp_path / "stack.tif", 72, "inch", 1.0)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["unit"] == "inch"

    ((_, kwargs, _),) = read_tiff(path)

    assert kwargs["axis_labels"] == ("Z", "Y", "X")
    assert kwargs["scale"] == (1.0, 1.0, 1.0)


def test_imagej_file_in_microns_keeps_its_size(tmp_path):
    path = _imagej_stack(tmp_path / "stack.tif", 1 / 0.65, "micron", 2.0)

    ((_, kwargs, _),) = read_tiff(path)

    np.testing.assert_allclose(kwargs["scale"], (2.0, 0.65, 0.65), rtol=1e-6)
    assert kwargs["units"] == ("µm", "µm", "µm")


@pytest.mark.parametrize(
    ("options", "said"),
    [({"imagej": True, "resolution": (1 / 650, 1 / 650), "metadata": {"unit": "micron"}},
      "its ImageJ metadata give pixels of 650 x 650 µm"),
     ({"resolution": (1e4 / 650, 1e4 / 650), "resolutionunit": "CENTIMETER"},
      "its resolution tags give pixels of 650 x 650 µm"),
     ({"resolution": (1 / 2e-4, 1 / 2e-4), "resolutionunit": "MICROMETER"},
      "its resolution tags give pixels of 0.0002 x 0.0002 µm"),
     # An image editor's or a camera's default is no calibration, and nothing to say.
     ({"resolution": (72, 72), "resolutionunit": "INCH"}, None),
     ({"resolution": (72 / 2.54, 72 / 2.54), "resolutionunit": "CENTIMETER"}, None),
     ({"imagej": True, "resolution": (72, 72), "metadata": {"unit": "inch"}}, None)],
    ids=["imagej-nm-as-um", "tags-cm", "tags-um", "72-dpi", "72-dpi-cm", "imagej-72-dpi"],
)  # fmt: skip
def test_resolution_of_no_microscope_is_said(tmp_path, options, said):
    """Pixels of 650 µm (nanometres written as micrometres) from ImageJ's calibration or
    the resolution tags opened the image in pixels, unsaid; OME metadata so wrong were
    said already, and these are said alike."""
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.zeros((32, 48), np.uint16), **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ((_, kwargs, _),) = read_tiff(path)

    assert kwargs["scale"] == (1.0, 1.0)
    told = [str(w.message) for w in caught if "no microscope's are" in str(w.message)]
    assert told == ([] if said is None else [
        f"{path}: {said}, which no microscope's are (from 0.001 to 50 µm, at most 4 times "
        "longer than wide; a size in nanometres written without its unit?), so it opens in "
        "pixels. Give its pixel size in the Segment cytoplasm dock for areas in µm² and a "
        "scale bar"
    ])  # fmt: skip


def _scn_xml(size: int) -> str:
    return (
        '<?xml version="1.0"?><scn xmlns="http://www.leica-microsystems.com/scn/2010/10/01">'
        '<collection name="slide" sizeX="25000000" sizeY="75000000"><image name="main">'
        f'<pixels sizeX="{size}" sizeY="{size}">'
        f'<dimension sizeX="{size}" sizeY="{size}" r="0" ifd="0"/>'
        f'<dimension sizeX="{size // 2}" sizeY="{size // 2}" r="1" ifd="1"/></pixels>'
        f'<view sizeX="{size * 500}" sizeY="{size * 500}" offsetX="0" offsetY="0" spacingZ="0"/>'
        "</image></collection></scn>"
    )


@pytest.mark.parametrize("kind", ["ndpi", "scn"])
def test_whole_slide_centimetre_tags_give_the_pixel_size(tmp_path, kind):
    # NDPI and SCN scanners write real pixel sizes as pixels per centimetre; a
    # file named .ndpi would be read with NDPI's 64-bit offsets, which tifffile
    # cannot write, so the NDPI layout is recognised here by its tags.
    path = tmp_path / ("slide.tif" if kind == "ndpi" else "slide.scn")
    rgb = np.zeros((512, 512, 3), np.uint8)
    size = {"ndpi": 0.2265, "scn": 0.5}[kind]
    extra = [
        (65420, "I", 1, 1, True),
        (271, "s", 0, "Hamamatsu", True),
        (65421, "f", 1, 40.0, True),
    ]
    with tifffile.TiffWriter(path, bigtiff=kind == "scn") as tw:
        for level in range(2):
            tw.write(
                rgb[:: 2**level, :: 2**level],
                tile=(128, 128),
                photometric="rgb",
                metadata=None,
                subfiletype=level and 1,
                description=_scn_xml(512) if kind == "scn" and not level else None,
                resolution=(1e4 / size / 2**level,) * 2,
                resolutionunit="CENTIMETER",
                extratags=extra if kind == "ndpi" else (),
            )

    desc = describe_tiff(path)

    assert desc.kind == kind and desc.levels == 2
    assert desc.pixel_size == pytest.approx({"Y": size, "X": size})


@pytest.mark.parametrize(
    "filename",
    ["scan.ome.tif", "scan.ome.tiff", "scan.tif", "scan.TIFF", "scan.btf", "scan.qptiff"],
)
def test_single_channel_without_a_name_is_named_after_the_file(tmp_path, filename):
    path = tmp_path / filename
    image = np.random.default_rng(1).integers(100, 4000, (2, 64, 64), dtype=np.uint16)
    if ".ome." in filename:
        tifffile.imwrite(path, image, ome=True, metadata={"axes": "ZYX"})
    else:
        tifffile.imwrite(path, image)

    layers = get_reader(str(path))(str(path))

    assert [kwargs["name"] for _, kwargs, _ in layers] == ["scan"]
    assert layers[0][1]["metadata"]["cytomask"]["channel_name"] == "scan"


def test_single_channel_keeps_its_name_from_the_metadata(tmp_path):
    path = tmp_path / "scan.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((64, 64), np.uint16),
        ome=True,
        metadata={"axes": "YX", "Channel": {"Name": "GFP"}},
    )

    assert describe_tiff(path).channel_names == ("GFP",)


def test_several_unnamed_channels_keep_numbered_names(tmp_path):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.zeros((3, 64, 64), np.uint16), imagej=True, metadata={"axes": "CYX"})

    layers = read_tiff(path)

    assert [kwargs["name"] for _, kwargs, _ in layers] == ["C1", "C2", "C3"]


def test_a_file_name_does_not_decide_the_role(tmp_path):
    # "label" in a file name says nothing of the channel: a camera image stays an image.
    path = tmp_path / "label-free phase.tif"
    image = np.random.default_rng(2).integers(100, 4000, (64, 64), dtype=np.uint16)
    tifffile.imwrite(path, image)

    ((_, kwargs, kind),) = read_tiff(path)

    assert kwargs["name"] == "label-free phase"
    assert kind == "image" and kwargs["metadata"]["cytomask"]["role"] == "input"


def test_a_single_unnamed_mask_is_still_found_by_its_pixels(tmp_path):
    path = tmp_path / "cells.tif"
    labels = np.zeros((64, 64), np.uint16)
    labels[8:24, 8:24], labels[30:50, 30:60] = 1, 2
    tifffile.imwrite(path, labels)

    ((_, kwargs, kind),) = read_tiff(path)

    assert kind == "labels" and kwargs["name"] == "cells"


@pytest.mark.parametrize(
    "sizes",
    [{"PhysicalSizeX": 0.5, "PhysicalSizeY": -1},
     # No microscope's, which other files' calibrations are refused for too: a scale bar
     # of 200 km, and labels that could not be saved; pixels 10 times longer than wide.
     {"PhysicalSizeX": 1e9, "PhysicalSizeY": 1e9},
     {"PhysicalSizeX": 0.087, "PhysicalSizeY": 0.87}],
)  # fmt: skip
def test_ome_pixel_size_given_wrong_is_no_calibration(tmp_path, sizes):
    """An image stretched along one axis would be worse than one in pixels. Sizes of no
    microscope, given in full, are said: the image opened in pixels, unsaid."""
    import warnings

    path = tmp_path / "x-only.ome.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16), metadata={"axes": "YX", **sizes})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"] == (1.0, 1.0)
    said = [str(w.message) for w in caught if "no microscope's are" in str(w.message)]
    if sizes["PhysicalSizeY"] > 0:
        x, y = sizes["PhysicalSizeX"], sizes["PhysicalSizeY"]
        assert said == [
            f"{path}: its OME metadata give pixels of {x:g} x {y:g} µm, which no microscope's "
            "are (from 0.001 to 50 µm, at most 4 times longer than wide; a size in nanometres "
            "written without its unit?), so it opens in pixels. Give its pixel size in the "
            "Segment cytoplasm dock for areas in µm² and a scale bar"
        ]
    else:
        assert said == []


@pytest.mark.parametrize(("given", "other"), [("X", "height"), ("Y", "width")])
def test_ome_pixels_of_one_side_given_are_square(tmp_path, given, other):
    """An OME-TIFF with PhysicalSizeX alone opened in pixels, unsaid; Bio-Formats (Fiji)
    takes such pixels as square, and so does the reader, saying so."""
    path = tmp_path / "x-only.ome.tif"
    tifffile.imwrite(
        path, np.zeros((16, 16), np.uint16), metadata={"axes": "YX", f"PhysicalSize{given}": 0.5}
    )
    with pytest.warns(UserWarning, match=rf"x-only.ome.tif: .* not its {other}, so its pixels "
                      r"are taken as square \(0.5 x 0.5 µm\)"):  # fmt: skip
        ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["scale"] == (0.5, 0.5) and kwargs["units"] == ("µm", "µm")


def test_jpeg_compressed_colour_opens_as_one_rgb_layer(tmp_path):
    """JPEG stores colour as YCbCr; tifffile decodes it to RGB, which is what to show."""
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = tmp_path / "photo.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", compression="jpeg")
    assert tifffile.TiffFile(path).pages[0].photometric == tifffile.PHOTOMETRIC.YCBCR
    ((data, kwargs, _),) = read_tiff(path)
    assert kwargs.get("rgb") is True
    pixel = np.asarray(data)[32, 32]
    assert pixel[0] > 150 and pixel[1] < 50 and pixel[2] < 50


@pytest.mark.parametrize("shape", [(64, 1), (1, 64)])
def test_a_one_pixel_wide_image_opens_without_warnings(tmp_path, shape):
    import warnings

    path = tmp_path / "line.tif"
    tifffile.imwrite(path, np.arange(64, dtype=np.uint16).reshape(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ((data, _, kind),) = read_tiff(path)
    assert kind == "image" and np.asarray(data).shape == shape


def test_pages_without_metadata_of_different_kinds_are_channels(shared_data, tmp_path):
    """A phase-contrast page and a page of cell ids, saved without any metadata: not two
    planes of one stack (which the middle page made a mask), but an input and a mask."""
    import imageio.v3 as iio

    folder = shared_data / "usiigaci-phc" / "set1"
    phase = tifffile.imread(folder / "raw.tif")[:300, :400]
    ids = iio.imread(folder / "instances_ids.png").astype(np.uint16)[:300, :400]
    for order in ((phase, ids), (ids, phase)):
        path = tmp_path / "stripped.tif"
        with tifffile.TiffWriter(path) as tif:
            for page in order:
                tif.write(page, metadata=None)
        layers = read_tiff(path)
        # The image first and the mask over it, whichever page came first: a mask saved
        # first lay under the opaque image, its cells out of sight.
        assert [kw["metadata"]["cytomask"]["role"] for _, kw, _ in layers] == ["input", "mask"]
        assert [kind for *_, kind in layers] == ["image", "labels"]
        for data, kwargs, _ in layers:
            page = order[kwargs["metadata"]["cytomask"]["channel_index"]]
            np.testing.assert_array_equal(np.asarray(data), page)
    # Pages of one kind stay planes of one stack, and an empty slice is of no kind.
    empty = np.zeros_like(ids)
    for options in ({}, {"metadata": None}):
        tifffile.imwrite(path, np.stack([empty, ids]), **options)
        ((data, kwargs, kind),) = read_tiff(path)
        assert kind == "labels" and data.shape == (2, 300, 400)
    with tifffile.TiffWriter(path) as tif:
        for page in (phase, phase[::-1]):
            tif.write(page, metadata=None)
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "image" and data.shape == (2, 300, 400)


def test_unlike_images_saved_without_metadata_are_channels(shared_data, tmp_path):
    """A fluorescence page and a phase-contrast page without metadata were opened, and
    segmented, as two time points of one stack; images alike (a time-lapse, a dimmer
    frame) stay planes of one stack."""
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:300, :400]
    nuclei = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")[:300, :400]
    path = tmp_path / "stripped.tif"
    for pages, channels in (
        ([nuclei, phase], True),
        ([phase, nuclei], True),
        ([phase, np.roll(phase, 5, axis=0)], False),
        ([phase, (phase * 0.7).astype(phase.dtype)], False),
    ):
        with tifffile.TiffWriter(path) as tif:
            for page in pages:
                tif.write(page, metadata=None)
        layers = read_tiff(path)
        if channels:
            assert [kw["name"] for _, kw, _ in layers] == ["C1", "C2"]
            for (data, _, kind), page in zip(layers, pages, strict=True):
                assert kind == "image"
                np.testing.assert_array_equal(np.asarray(data), page)
        else:
            ((data, _, _),) = layers
            assert data.shape == (2, 300, 400)


def test_images_of_two_kinds_in_turn_are_two_channels(shared_data, tmp_path):
    """[phase, fluorescence] at 3 time points saved as 6 planes (a Fiji stack that lost its
    hyperstack dimensions, or pages without metadata) opened as one 6-plane stack, the
    phase and the fluorescence as alternate slices; channels first in an array tifffile
    took for colour pictures (3 planes each), as "red", "green" and "blue". A time-lapse
    whose lamp drifts, frame by frame, stays one stack."""
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:120, :160]
    nuclei = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")[:120, :160]
    frames = [(np.roll(phase, 9 * t, 0), np.roll(nuclei, 9 * t, 1)) for t in range(3)]
    planes = np.stack([plane for frame in frames for plane in frame])
    phases, fluorescence = planes[0::2], planes[1::2]
    path = tmp_path / "lost.tif"
    for axis, options in (
        ("Z", {"imagej": True, "metadata": {"axes": "ZYX"}}),
        ("T", {"imagej": True, "metadata": {"axes": "TYX"}}),
        ("P", {"metadata": None}),
    ):
        tifffile.imwrite(path, planes, **options)
        layers = read_tiff(path)
        assert [kw["name"] for _, kw, _ in layers] == ["C1", "C2"]
        assert [kw["axis_labels"] for _, kw, _ in layers] == [(axis, "Y", "X")] * 2
        np.testing.assert_array_equal(np.asarray(layers[0][0]), phases)
        np.testing.assert_array_equal(np.asarray(layers[1][0]), fluorescence)
    tifffile.imwrite(path, np.stack([phases, fluorescence]))
    layers = read_tiff(path)
    assert [kw["name"] for _, kw, _ in layers] == ["C1", "C2"]
    np.testing.assert_array_equal(np.asarray(layers[0][0]), phases)
    np.testing.assert_array_equal(np.asarray(layers[1][0]), fluorescence)
    # Brighter by half of the first each frame: the first and the last are unlike.
    drifting = np.stack([(phase // 4 * (1 + t / 2)).astype(np.uint16) for t in range(6)])
    tifffile.imwrite(path, drifting, imagej=True, metadata={"axes": "TYX"})
    ((data, kwargs, _),) = read_tiff(path)
    assert kwargs["axis_labels"] == ("T", "Y", "X") and data.shape == (6, 120, 160)


def test_a_time_lapse_whose_lamp_drifts_stays_one_stack(shared_data, tmp_path):
    """Four frames of a Micro-Manager time-lapse, the last one brighter (medians 7618 to
    12408), opened as four channels: saved by ImageJ with its frames declared, and saved
    as plain pages. Six fields of phase and mask crops, one of them of low contrast, were
    regrouped as 2 positions of 6 channels."""
    import imageio.v3 as iio

    from napari_cytomask.io.tiff import TiffScan

    folder = shared_data / "tiff-formats/ome-tiff-samples/singles/181003_slices"
    movie = np.stack([tifffile.imread(folder / f"P1_T{t}.tif") for t in range(4)])
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    with TiffScan(path) as scan:
        assert scan.description.axes == "TYX"
    with tifffile.TiffWriter(path) as tif:
        for frame in movie:
            tif.write(frame, metadata=None)
    ((data, _, _),) = read_tiff(path)
    np.testing.assert_array_equal(np.asarray(data), movie)
    pages = []
    for name in ("set1", "set11", "set12", "set13", "set14", "set15"):
        phase = tifffile.imread(shared_data / "usiigaci-phc" / name / "raw.tif")[:100, :120]
        ids = iio.imread(shared_data / "usiigaci-phc" / name / "instances_ids.png")
        pages += [phase, ids.astype(np.uint16)[:100, :120]]
    with tifffile.TiffWriter(path) as tif:
        for page in pages:
            tif.write(page, metadata=None)
    with TiffScan(path) as scan:
        assert scan.description.shape == (6, 2, 100, 120)
        assert scan.read([slice(1, 1), 0, slice(None), slice(None)]).shape == (0, 100, 120)


def test_positions_of_channels_saved_without_metadata_open_as_positions(shared_data, tmp_path):
    """A tile scan saved again without its metadata: [phase, mask, phase, mask] (or each
    channel's positions in turn) is two positions of an input and a mask, not four channels
    whose second mask the first field's results would be scored against. Images unlike
    each other (phase and fluorescence) stay channels."""
    import imageio.v3 as iio

    from napari_cytomask.io.tiff import TiffScan

    def field(name):
        folder = shared_data / "usiigaci-phc" / name
        phase = tifffile.imread(folder / "raw.tif")[:300, :400]
        return phase, iio.imread(folder / "instances_ids.png").astype(np.uint16)[:300, :400]

    fields = [field(name) for name in ("set1", "set11", "set12")]
    path = tmp_path / "stripped.tif"
    for n, order in ((2, "pc"), (3, "pc"), (2, "cp")):
        phases, masks = [f[0] for f in fields[:n]], [f[1] for f in fields[:n]]
        pages = [page for f in fields[:n] for page in f] if order == "pc" else phases + masks
        for pages_apart in (False, True):  # one page's samples, or pages
            with tifffile.TiffWriter(path) as tif:
                for page in pages if pages_apart else [np.stack(pages)]:
                    tif.write(page, metadata=None)
            with TiffScan(path) as scan:
                assert scan.description.axes == "PCYX"
                assert scan.description.shape == (n, 2, 300, 400)
                last_mask = scan.read([n - 1, 1, slice(0, 5), 7])
                np.testing.assert_array_equal(last_mask, masks[-1][:5, 7])
            image, mask = read_tiff(path)
            assert image[2] == "image" and mask[2] == "labels"
            assert image[1]["metadata"]["cytomask"]["role"] == "input"
            # Not "stripped red" and "stripped green", the colours of 4 samples of a page.
            assert (image[1]["name"], mask[1]["name"]) == ("C1", "C2")
            assert image[1]["colormap"] == "gray"
            np.testing.assert_array_equal(np.asarray(image[0]), np.stack(phases))
            np.testing.assert_array_equal(np.asarray(mask[0]), np.stack(masks))
    # ImageJ saves images put in one stack as its Z slices, or as time points.
    for axes in ("ZYX", "TYX"):
        for n in (1, 2):
            pages = [page for f in fields[:n] for page in f]
            tifffile.imwrite(path, np.stack(pages), imagej=True, metadata={"axes": axes})
            image, mask = read_tiff(path)
            assert image[2] == "image" and mask[2] == "labels"
            np.testing.assert_array_equal(np.asarray(mask[0]), np.squeeze(pages[1::2]))
    # Phase contrast and fluorescence, each with its mask, are four channels.
    nuclei = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")[:300, :400]
    nuclei_ids = tifffile.imread(shared_data / "nuclei-dsb" / "mask2d.tif")[:300, :400]
    phase, ids = fields[0]
    tifffile.imwrite(path, np.stack([phase, ids, nuclei, nuclei_ids.astype(np.uint16)]))
    layers = read_tiff(path)
    assert [kind for *_, kind in layers] == ["image", "image", "labels", "labels"]
    assert [kw["metadata"]["cytomask"]["channel_index"] for _, kw, _ in layers] == [0, 2, 1, 3]
    assert layers[0][0].shape == (300, 400)


@pytest.mark.parametrize(("positions", "channels_first"), [(3, False), (10, False), (5, True)])
def test_a_tile_scan_saved_by_tifffile_without_axes_opens_as_positions(
    shared_data, tmp_path, positions, channels_first
):
    """``tifffile.imwrite(path, array)`` of (positions, [phase, mask], Y, X) names its axes
    "QQYX": it opened as one labels layer (phase shown as label colours) on sliders "Q" and
    "A", and ``cytomask segment`` skipped it as label ids only. Its planes say which axis
    holds the channels, as a 3-D stack's pages do; of a long scan, its first positions."""
    import imageio.v3 as iio

    folder = shared_data / "usiigaci-phc" / "set1"
    phase = tifffile.imread(folder / "raw.tif")[:120, :160]
    ids = iio.imread(folder / "instances_ids.png").astype(np.uint16)[:120, :160]
    # Each position its own field: the crop turned.
    phases = np.stack([np.rot90(phase, p % 4 * 2) for p in range(positions)])
    masks = np.stack([np.rot90(ids, p % 4 * 2) for p in range(positions)])
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, np.stack([phases, masks], 0 if channels_first else 1))
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "QQYX"
    # A guess, said: right for the files it was made for, it opened unsaid.
    said = (
        rf"tiles.tif: no metadata name its axes, so they were told by what its planes hold: "
        rf"{positions} positions of 2 channels\. If they are otherwise, give the file its axes"
    )
    with pytest.warns(UserWarning, match=said):
        image, mask = read_tiff(path)
    assert (image[2], mask[2]) == ("image", "labels")
    assert image[1]["axis_labels"] == mask[1]["axis_labels"] == ("P", "Y", "X")
    assert image[1]["metadata"]["cytomask"]["role"] == "input"
    np.testing.assert_array_equal(np.asarray(image[0]), phases)
    np.testing.assert_array_equal(np.asarray(mask[0]), masks)


@pytest.mark.parametrize(
    ("positions", "channels", "channels_first"), [(3, 2, True), (4, 2, True), (3, 3, False)]
)
def test_a_tile_scan_that_tifffile_took_for_colour_pictures_opens_as_positions(
    shared_data, tmp_path, positions, channels, channels_first
):
    """``tifffile.imwrite`` of ([phase, mask], 3 positions, Y, X) takes the 3 (or 4)
    positions for the red, green and blue of colour pictures ("QSYX"): it opened as red,
    green and blue labels layers on a slider "Q", each a phase and a mask; 3 positions of
    [phase, GFP, mask] as "red", "green" and "blue" on "Q"."""
    import imageio.v3 as iio

    folder = shared_data / "usiigaci-phc" / "set1"
    crop = slice(256, 352), slice(256, 384)  # 6 cells
    phase = tifffile.imread(folder / "raw.tif")[crop]
    ids = iio.imread(folder / "instances_ids.png").astype(np.uint16)[crop]
    # Fluorescent cells over a dark background, a camera's noise on both.
    noise = np.random.default_rng(0).normal(0, 20, ids.shape)
    gfp = (np.where(ids > 0, 3000, 100) + noise).astype(np.uint16)
    kinds = [phase, gfp, ids] if channels == 3 else [phase, ids]
    # Each position its own field: the crop turned.
    planes = [[np.rot90(kind, p % 4 * 2) for p in range(positions)] for kind in kinds]
    array = np.stack([np.stack(of_channel) for of_channel in planes])  # C, P, Y, X
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, array if channels_first else array.swapaxes(0, 1))
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "QSYX"
    layers = read_tiff(path)
    assert [kw["name"] for _, kw, _ in layers] == [f"C{c + 1}" for c in range(channels)]
    assert [kind for *_, kind in layers] == ["image"] * (channels - 1) + ["labels"]
    for (data, kwargs, _), expected in zip(layers, array, strict=True):
        assert kwargs["axis_labels"] == ("P", "Y", "X")
        np.testing.assert_array_equal(np.asarray(data), expected)


def test_tifffiles_p_axis_is_a_position_where_it_is_not_omes_phase(shared_data, tmp_path):
    """``metadata={"axes": "PCYX"}`` opened on a slider "F": tifffile calls P "phase" (OME's
    phase, which the reader renames), but a file whose axes its writer named means position,
    as Zeiss LSM files do."""
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:64, :80]
    mask = np.zeros_like(phase)
    mask[8:24, 8:30], mask[40:60, 10:50] = 1, 2
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, np.stack([[phase, mask]] * 3), metadata={"axes": "PCYX"})
    image, mask_layer = read_tiff(path)
    assert image[1]["axis_labels"] == mask_layer[1]["axis_labels"] == ("P", "Y", "X")
    assert describe_tiff(path).n_positions == 3


def test_a_labels_stack_saved_as_samples_opens_as_one_labels_layer(shared_data, tmp_path):
    """tifffile, and so napari's own labels writer, saves a stack of 2 to 4 planes as the
    samples of one page. Cell ids in every sample are one labels stack, not 4 mask channels;
    samples of different kinds stay an input and a mask."""
    import imageio.v3 as iio
    from napari.utils.io import imsave

    folder = shared_data / "usiigaci-phc" / "set1"
    phase = tifffile.imread(folder / "raw.tif")[:300, :400]
    ids = iio.imread(folder / "instances_ids.png").astype(np.uint16)[:300, :400]
    path = tmp_path / "saved by napari.tif"
    # 8-bit stacks of 3 or 4 planes, which tifffile stores as RGB, included (napari's
    # labels of fewer than 256 cells are 8-bit).
    for dtype, n in ((np.uint16, 4), (np.uint8, 3), (np.uint8, 4)):
        small = (ids % 200).astype(dtype)
        stack = np.stack([small, small[::-1], np.zeros_like(small), small[:, ::-1]][:n])
        imsave(str(path), stack)
        assert tifffile.TiffFile(path).series[0].axes == "SYX"
        ((data, kwargs, kind),) = read_tiff(path)
        assert kind == "labels" and kwargs["name"] == "saved by napari"
        np.testing.assert_array_equal(np.asarray(data), stack)
    imsave(str(path), np.stack([phase, ids]))
    layers = read_tiff(path)
    assert [kind for *_, kind in layers] == ["image", "labels"]
    np.testing.assert_array_equal(np.asarray(layers[1][0]), ids)
    # A colour picture stays one, even with a plane that looks like ids.
    light = (phase // 256).astype(np.uint8)
    imsave(str(path), np.stack([light, (ids % 200).astype(np.uint8), light[::-1]]))
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "image" and kwargs.get("rgb") is True and data.shape == (300, 400, 3)


def test_a_labels_stack_with_confluent_frames_opens_as_one_labels_layer(shared_data, tmp_path):
    """Frames of a labels stack where the cells cover the whole field (a confluent
    monolayer, or cells grown until they touch) have no pixel at 0; beside frames with
    background they are masks too: not images split off the stack, in a multi-page file
    or in the samples of one page, and not when the middle frame is the confluent one."""
    import imageio.v3 as iio
    from skimage.segmentation import expand_labels

    from napari_cytomask.io.layers import looks_like_masks

    folder = shared_data / "usiigaci-phc" / "set1"
    phase = tifffile.imread(folder / "raw.tif")[:300, :400]
    ids = iio.imread(folder / "instances_ids.png").astype(np.uint16)[:300, :400]
    confluent = expand_labels(ids, 400)
    assert confluent.min() > 0
    path = tmp_path / "labels.tif"
    for stack in ([ids, confluent, confluent[::-1]], [confluent, ids]):
        for options in ({}, {"metadata": None}, {"photometric": "minisblack"}):
            tifffile.imwrite(path, np.stack(stack), **options)
            ((data, kwargs, kind),) = read_tiff(path)
            assert kind == "labels" and kwargs["name"] == "labels"
            np.testing.assert_array_equal(np.asarray(data), np.stack(stack))
    # A confluent field alone is labels too; a camera image or a channel named after a
    # stain stay images.
    assert looks_like_masks([""], [confluent]) == [True]
    assert looks_like_masks(["", "", "GFP"], [ids, phase, confluent]) == [True, False, False]
    assert looks_like_masks(["C1", "C2"], [confluent, ids]) == [True, True]


def test_labels_of_cells_that_touch_or_are_small_open_as_labels(shared_data, tmp_path):
    """Label files opened as images: Cellpose-like cells that touch, 8% background (a
    single patch of the pixels sampled holds any), 10,000 cells of 5 x 5 px one pixel
    apart (27% of neighbours along a row differ), and a Cellpose mask of one cell over
    the whole field, named as Cellpose names its masks. Images of light, an 8-bit one
    of 16 grey levels, and OME's drawn samples of text over a gradient stay images."""
    from scipy.ndimage import distance_transform_edt

    from napari_cytomask.io.layers import grid_sample, looks_like_masks

    rng = np.random.default_rng(0)
    seeds = np.zeros((512, 512), np.uint16)
    seeds[rng.integers(0, 512, 400), rng.integers(0, 512, 400)] = np.arange(1, 401)
    _, (iy, ix) = distance_transform_edt(seeds == 0, return_indices=True)
    confluent = seeds[iy, ix]
    confluent[:40] = 0
    yy, xx = np.mgrid[0:600, 0:600]
    small = np.where((yy % 6 < 5) & (xx % 6 < 5), (yy // 6) * 100 + xx // 6 + 1, 0)
    one_cell = np.ones((256, 256), np.uint8)
    files = {"field": confluent, "cells": small.astype(np.uint16), "a_cp_masks": one_cell,
             "a": one_cell}  # fmt: skip
    for name, labels in files.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", labels)
        ((data, kwargs, kind),) = get_reader(str(tmp_path / f"{name}.tif"))(
            str(tmp_path / f"{name}.tif")
        )
        assert kind == ("image" if name == "a" else "labels"), name
        np.testing.assert_array_equal(np.asarray(data), labels)
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")
    grey_levels = (phase / phase.max() * 15).astype(np.uint8)
    ome = shared_data / "tiff-formats" / "ome-tiff-samples" / "singles"
    images = [phase, grey_levels, tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")]
    images += [tifffile.imread(ome / f"{name}.ome.tif") for name in ("single-channel", "z-series")]
    samples = [grid_sample(image[(image.ndim - 2) * (0,)]) for image in images]
    assert looks_like_masks([""] * len(samples), samples) == [False] * len(samples)


def test_the_pixel_sample_takes_patches_of_rows_and_columns_of_colour_planes_too():
    from napari_cytomask.io.layers import SAMPLE_GRID, SAMPLE_PATCH, grid_sample

    rgb = np.random.default_rng(0).integers(0, 255, (600, 700, 3), np.uint8)
    sample = grid_sample(rgb)
    assert sample.shape == (SAMPLE_GRID**2 * SAMPLE_PATCH, SAMPLE_PATCH, 3)
    np.testing.assert_array_equal(sample[:SAMPLE_PATCH], rgb[43:107, 56:120])


def test_pages_of_another_pixel_type_left_out_are_said(tmp_path):
    """tifffile makes pages of two pixel types, saved without metadata, two series; the
    scan keeps one, and says what it left out (a uint8 mask beside a uint16 image)."""
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.full((64, 64), 5, np.uint16), metadata=None)
        tif.write(np.eye(64, dtype=np.uint8), metadata=None)
    with pytest.warns(
        UserWarning,
        match=(
            r"mixed.tif: 1 page\(s\) of another pixel type, size or layout \(64 x 64 uint8; "
            r"the others are 64 x 64 uint16\) were left out, as the file has no metadata"
        ),
    ):
        ((data, _, _),) = read_tiff(path)
    assert data.shape == (64, 64)


@pytest.mark.parametrize(
    ("odd", "said"),
    [
        (np.full((64, 64), 0.5, np.float32), "64 x 64 float32"),
        (np.full((48, 64), 7, np.uint16), "48 x 64 uint16"),
        ("deflate", r"64 x 64 uint16 compressed \(\w*deflate\)"),
    ],
    ids=["pixel type", "size", "compression"],
)
def test_a_page_unlike_the_others_is_refused_or_left_out_not_read_as_garbage(tmp_path, odd, said):
    """tifffile compares the 2nd, 8th and last page of a file without metadata with the
    first and reads the others as laid out as the first: a float32 or compressed page in
    the middle of uint16 ones came out as stripes of garbage, without a word, and one of
    another size as "its structure is corrupt". Among the others it is refused, named
    (left out, the rest lost their order of channels and opened as one stack of labels);
    after them it is left out, and said."""
    planes = [np.full((64, 64), 100 + i, np.uint16) for i in range(9)]
    path = tmp_path / "odd.tif"

    def write(where: int) -> None:
        with tifffile.TiffWriter(path) as tif:
            for i, plane in enumerate(planes):
                if i != where:
                    tif.write(plane, metadata=None)
                elif isinstance(odd, str):
                    tif.write(plane, metadata=None, compression=odd)
                else:
                    tif.write(odd, metadata=None)

    write(4)
    with pytest.raises(
        TiffReadError,
        match=rf"its page 4 holds {said} pixels among pages of "
        r"64 x 64 uint16, and without metadata .* or save it as an OME-TIFF",
    ):
        read_tiff(path)
    write(8)
    left_out = rf"odd.tif: 1 page\(s\) of another .*\({said}; the others"
    with pytest.warns(UserWarning, match=left_out):
        layers = read_tiff(path)
    kept = np.concatenate([np.asarray(data).reshape(-1, 64, 64) for data, _, _ in layers])
    np.testing.assert_array_equal(kept, np.stack(planes[:8]))


def test_every_other_page_of_another_pixel_type_is_left_out_and_said(tmp_path):
    """A uint8 mask saved after each uint16 image, without metadata: the masks are left
    out, and said, the images kept in their order."""
    path = tmp_path / "pairs.tif"
    images = [np.full((32, 32), 100 + i, np.uint16) for i in range(3)]
    with tifffile.TiffWriter(path) as tif:
        for image in images:
            tif.write(image, metadata=None)
            tif.write(np.eye(32, dtype=np.uint8), metadata=None)
    with pytest.warns(UserWarning, match=r"3 page\(s\) of another .* \(32 x 32 uint8; the"):
        ((data, _, _),) = read_tiff(path)
    np.testing.assert_array_equal(np.asarray(data), np.stack(images))


def test_pages_the_ome_metadata_do_not_count_are_said(tmp_path):
    """An OME-XML changed to say one channel while the file holds two pages (an image and
    its mask): tifffile's series holds the first page only, and the mask was dropped
    without a word."""
    path = tmp_path / "lie.ome.tif"
    tifffile.imwrite(path, np.stack([np.full((64, 64), 5, np.uint16), np.eye(64, dtype=np.uint16)]),
                     ome=True, metadata={"axes": "CYX"})  # fmt: skip
    xml = tifffile.TiffFile(path).ome_metadata
    tifffile.tiffcomment(path, xml.replace('SizeC="2"', 'SizeC="1"').replace(
        'PlaneCount="2"', 'PlaneCount="1"'))  # fmt: skip
    with pytest.warns(
        UserWarning,
        match=(
            r"lie.ome.tif: it holds 2 pages but its metadata count 1, so 1 page\(s\) \(another "
            r"channel or plane, say\) were left out: the metadata are wrong, .* "
            r"tifffile.imread\(path, key=range\(2\)\)"
        ),
    ):
        ((data, _, _),) = read_tiff(path)
    assert data.shape == (64, 64)


@pytest.mark.parametrize(
    ("name", "metadata", "imagej", "seconds"),
    [
        ("ij.tif", {"axes": "TYX", "finterval": 30.0}, True, 30.0),
        ("ij-min.tif", {"axes": "TYX", "finterval": 2, "tunit": "min"}, True, 120.0),
        ("t.ome.tif", {"axes": "TYX", "TimeIncrement": 2, "TimeIncrementUnit": "min"}, False,
         120.0),
        ("t-bad.ome.tif", {"axes": "TYX", "TimeIncrement": 2, "TimeIncrementUnit": "furlong"},
         False, None),
        # tifffile reads tunit=1 as a number: no unit it knows, not a corrupt file.
        ("ij-number.tif", {"axes": "TYX", "finterval": 2, "tunit": 1}, True, None),
        ("ij-escaped.tif", {"axes": "TYX", "finterval": 500, "tunit": "\\u00B5s"}, True, 5e-4),
        ("ij-absurd.tif", {"axes": "TYX", "finterval": 1e300}, True, None),
    ],
)  # fmt: skip
def test_a_time_lapse_keeps_its_frame_interval(tmp_path, name, metadata, imagej, seconds):
    """ImageJ's finterval and OME's TimeIncrement were dropped: the T axis counted frames."""
    path = tmp_path / name
    tifffile.imwrite(path, np.zeros((3, 16, 16), np.uint16), imagej=imagej, metadata=metadata)
    ((_, kwargs, _),) = read_tiff(path)
    assert kwargs["axis_labels"][0] == "T"
    if seconds is None:  # a unit that is no time: no interval rather than a wrong one
        assert kwargs.get("scale", (1.0,))[0] == 1.0
    else:
        assert kwargs["scale"][0] == pytest.approx(seconds) and kwargs["units"][0] == "s"
        assert kwargs["metadata"]["cytomask"]["frame_interval_s"] == pytest.approx(seconds)


@pytest.mark.parametrize("damage", ["stripped", "cut short"])
def test_an_ome_tiff_that_lost_its_metadata_says_so(tmp_path, damage):
    """An OME-TIFF saved again by a program that drops the OME-XML, or with the XML cut
    short, opened as unnamed pages without a pixel size, with nothing to say why."""
    path = tmp_path / "scan.ome.tif"
    planes = np.stack([np.full((32, 32), 100 + i, np.uint16) for i in range(2)])
    tifffile.imwrite(path, planes, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.5})
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages.first.description
    kept = "" if damage == "stripped" else xml[: len(xml) // 2]
    with tifffile.TiffWriter(path, ome=False) as tif:  # the same pages, their XML replaced
        for plane in planes:
            tif.write(plane, metadata=None, description=kept or None)
    said = "no OME metadata" if damage == "stripped" else "OME metadata that cannot be read"
    with pytest.warns(UserWarning, match=rf"scan.ome.tif: it holds {said}.* without a pixel size"):
        read_tiff(path)
    tifffile.imwrite(path, planes, ome=True, metadata={"axes": "CYX"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_tiff(path)


def test_an_ome_tiff_cut_short_before_its_metadata_is_refused_as_cut_short_alone(tmp_path):
    """A file cut in half, its OME-XML past its end, was said to hold "no OME metadata (a
    program that saved it again may have dropped them)", and to open without a pixel size,
    before it was refused as cut short."""
    path = tmp_path / "scan.ome.tif"
    planes = np.random.default_rng(0).integers(0, 4000, (4, 64, 64), dtype=np.uint16)
    tifffile.imwrite(path, planes, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.5})
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.tags[270].valueoffset > path.stat().st_size // 2
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(TiffReadError, match="truncated or corrupt"):
            read_tiff(path)
    assert [str(w.message) for w in said if "OME metadata" in str(w.message)] == []


def test_positions_listing_their_channels_in_another_order_are_read_in_the_firsts(tmp_path):
    """Positions whose OME Images list Phase, Mask and then Mask, Phase were warned of, and
    the layers took the first's order: at position 1 the "Phase" layer showed the mask, and
    ``cytomask segment`` skipped the file as label ids only. Each position's planes are read
    in the first's order, by name, and the file opens right, without a word."""
    from napari_cytomask.io.tiff import TiffScan, read_tiff_array

    rng = np.random.default_rng(0)
    phases = rng.integers(100, 4000, (3, 32, 32), dtype=np.uint16)
    masks = np.zeros((3, 32, 32), np.uint16)
    for i in range(3):
        masks[i, 4 + i : 12 + i, 4:12], masks[i, 20:28, 16 + i : 30] = 1, 2
    path = tmp_path / "wells.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for i in range(3):
            names = ["Mask", "Phase"] if i == 1 else ["Phase", "Mask"]
            planes = [masks[i], phases[i]] if i == 1 else [phases[i], masks[i]]
            tif.write(np.stack(planes), photometric="minisblack",
                      metadata={"axes": "CYX", "Name": f"well{i}", "Channel": {"Name": names},
                                "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        phase, mask = read_tiff(path)
    assert (phase[1]["name"], phase[2], mask[1]["name"], mask[2]) == (
        "Phase", "image", "Mask", "labels"
    )  # fmt: skip
    assert phase[1]["metadata"]["cytomask"]["role"] == "input"
    np.testing.assert_array_equal(np.asarray(phase[0]), phases)
    np.testing.assert_array_equal(np.asarray(mask[0]), masks)
    with TiffScan(path) as scan:  # a region, as samples and mosaics read it
        np.testing.assert_array_equal(scan.read([1, slice(0, 2), 5, slice(None)]),
                                      np.stack([phases[1, 5], masks[1, 5]]))  # fmt: skip
    np.testing.assert_array_equal(read_tiff_array(path), np.stack([phases, masks], 1))


@pytest.mark.parametrize("unlike", ["channel names", "pixel size"])
def test_positions_unlike_the_first_are_warned_of(tmp_path, unlike):
    """Positions are stacked by their pixels' shape and type, and take the first's channel
    names and pixel size: a "Phase" layer showed a position's mask, and a position at
    1.3 µm was measured at 0.65 µm, unsaid."""
    rng = np.random.default_rng(0)
    phase = rng.integers(100, 4000, (32, 32), dtype=np.uint16)
    mask = np.zeros((32, 32), np.uint16)
    mask[4:12, 4:12] = 1
    path = tmp_path / "wells.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for i in range(3):
            odd = i == 1
            names = ["BF", "Mask"] if odd and unlike == "channel names" else ["Phase", "Mask"]
            size = 1.3 if odd and unlike == "pixel size" else 0.65
            tif.write(
                np.stack([phase, mask]),
                photometric="minisblack",
                metadata={"axes": "CYX", "Name": f"well{i}", "Channel": {"Name": names},
                          "PhysicalSizeX": size, "PhysicalSizeY": size,
                          "Plane": {"PositionX": [1000.0 * i] * 2, "PositionY": [0.0] * 2}},
            )  # fmt: skip
    said = (
        "lists its channels as BF, Mask, where the first lists Phase, Mask"
        if unlike == "channel names"
        else "records pixels of 1.3 µm, where the first records 0.65 µm"
    )
    with pytest.warns(UserWarning, match=rf"wells.ome.tif: position 1 \(well1\) {said}"):
        read_tiff(path)
    # Positions alike: no word.
    with tifffile.TiffWriter(path, ome=True) as tif:
        for i in range(2):
            tif.write(np.stack([phase, mask]), photometric="minisblack",
                      metadata={"axes": "CYX", "Name": f"well{i}",
                                "Channel": {"Name": ["Phase", "Mask"]}, "PhysicalSizeX": 0.65,
                                "PhysicalSizeY": 0.65})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_tiff(path)
