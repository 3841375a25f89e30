"""Which channel the reader takes for the input when several could be."""

import warnings

import numpy as np
import pytest
import tifffile

from napari_cytomask.io.layers import INPUT_BY_PIXELS, Channel, guess_roles
from napari_cytomask.io.tiff import read_tiff


def _camera(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 4000, (64, 64), dtype=np.uint16)


@pytest.mark.parametrize(
    "names",
    [("GFP", "Brightfield", "DIC"), ("Phase", "mCherry", "Brightfield"), ("DIC", "Phase")],
)
def test_the_first_transmitted_light_channel_of_a_file_is_the_input(tmp_path, names):
    """Without this, the reader could take the last of several transmitted-light channels."""
    path = tmp_path / "scan.ome.tif"
    image = np.stack([_camera(i) for i in range(len(names))])
    tifffile.imwrite(path, image, ome=True, metadata={"axes": "CYX", "Channel": {"Name": names}})
    layers = read_tiff(path)
    assert [kwargs["name"] for _, kwargs, _ in layers] == list(names)
    roles = [kwargs["metadata"]["cytomask"]["role"] for _, kwargs, _ in layers]
    first = next(i for i, n in enumerate(names) if n in ("Brightfield", "DIC", "Phase"))
    assert roles == ["input" if i == first else "image" for i in range(len(names))]


def test_guess_roles_takes_the_first_transmitted_light_image_and_skips_masks():
    """Without this, the last transmitted-light channel, or a mask named like one, is the input."""
    ids = np.zeros((64, 64), np.uint16)
    ids[10:30, 10:30] = 1
    ids[40:60, 35:55] = 2
    channels = [
        Channel("Phase mask", ids, index=0),
        Channel("GFP", _camera(1), index=1),
        Channel("Brightfield", _camera(2), index=2),
        Channel("DIC", _camera(3), index=3),
    ]
    guess_roles(channels, [c.data for c in channels])
    assert [c.role for c in channels] == ["mask", "image", "input", "image"]


@pytest.mark.parametrize(
    "names, roles",
    [
        # "trans" inside a stain's name made it the input, ahead of the brightfield.
        (("GFP (transfected)", "Brightfield"), ["image", "input"]),
        (("Transferrin 488", "TL-Trans"), ["image", "input"]),
        (("GFP", "Transmitted light"), ["image", "input"]),
        (("GFP", "transmitted_light"), ["image", "input"]),
        (("TransLamp", "GFP"), ["input", "image"]),
        # The phase rings of an objective name phase contrast: no input was found.
        (("DAPI", "EGFP", "mCherry", "Ph2"), ["image", "image", "image", "input"]),
        (("Ph3-10x", "GFP"), ["input", "image"]),
    ],
)
def test_transmitted_light_is_told_from_stains_by_whole_words(names, roles):
    channels = [Channel(name, _camera(i), index=i) for i, name in enumerate(names)]
    guess_roles(channels, [c.data for c in channels])
    assert [c.role for c in channels] == roles


def test_a_sparse_stain_is_an_image_not_a_mask():
    """A background-subtracted DAPI channel (96 % of pixels 0, flat) opened as a mask, and
    the metrics then took it for the ground truth of the cells."""
    rng = np.random.default_rng(0)
    stain = np.zeros((64, 64), np.uint8)
    stain[10:14, 10:14] = rng.integers(120, 255, (4, 4))
    stain[40:43, 30:34] = rng.integers(120, 255, (3, 4))
    sparse_ids = (stain > 0).astype(np.uint8)  # the same pixels as ids: a mask
    ids = np.zeros((64, 64), np.uint16)  # ids named after their stain stay a mask
    ids[5:25, 5:25], ids[30:50, 30:55] = 1, 2
    channels = [Channel("DAPI", stain, index=0), Channel("C2", sparse_ids, index=1),
                Channel("Brightfield", _camera(2), index=2),
                Channel("DAPI stardist", ids, index=3)]  # fmt: skip
    guess_roles(channels, [c.data for c in channels])
    assert [c.role for c in channels] == ["image", "mask", "input", "mask"]


def test_label_ids_saved_as_decimals_open_as_an_image_and_say_how_to_use_them(tmp_path):
    """Fiji may save a mask as 32-bit decimals: napari's Labels take no floats, so the
    channel named "mask" opened as an image, without a word of why."""
    ids = np.zeros((64, 64), np.float32)
    ids[8:24, 8:24], ids[30:50, 30:60] = 1, 2
    path = tmp_path / "float_ids.tif"
    stack = np.stack([_camera(0).astype(np.float32), ids])
    tifffile.imwrite(
        path, stack, imagej=True, metadata={"axes": "CYX", "Labels": ["phase", "mask"]}
    )
    with pytest.warns(
        UserWarning,
        match=r"float_ids.tif: channel\(s\) 1 \(mask\) look like label "
        r"ids but are stored as float32 .* take them with --mask-channel 1\.",
    ):
        layers = read_tiff(path)
    assert [kind for _, _, kind in layers] == ["image", "image"]
    light = np.stack([_camera(0), _camera(1)]) / np.float32(7)  # decimals: no ids
    tifffile.imwrite(
        path, light, imagej=True, metadata={"axes": "CYX", "Labels": ["phase", "mask"]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_tiff(path)


def test_a_one_bit_mask_opens_as_labels(tmp_path):
    """A mask saved with one bit per pixel (MATLAB's imwrite of a logical image,
    scikit-image's of a bool one) opened as an image, and segment took it for one."""
    mask = np.zeros((64, 96), bool)
    mask[10:30, 10:40] = mask[40:60, 50:90] = True
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    ((data, kwargs, kind),) = read_tiff(tmp_path / "mask.tif")
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), mask.astype(np.uint8))


def test_a_mask_of_one_cell_over_most_of_the_field_opens_as_labels(shared_data, tmp_path):
    """A cell over 88% of the field filled every patch of pixels sampled, its background
    unseen: 0 and 1 (or its id, beside a small cell at the edge) opened as an image, alone
    or as the channel beside its phase image, and [phase, mask] pages without metadata as
    one stack of two planes. A plane of one value stays an image."""
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:512, :512]
    one = np.zeros((512, 512), np.uint16)
    one[16:-16, 16:-16] = 1
    ids = one * 7
    ids[:12, 100:140] = 3
    for mask in (one.astype(np.uint8), ids):
        tifffile.imwrite(tmp_path / "field.tif", mask)
        ((data, _, kind),) = read_tiff(tmp_path / "field.tif")
        assert kind == "labels"
        np.testing.assert_array_equal(np.asarray(data), mask)
    for mask in (one, ids):
        for options in ({"metadata": None}, {"imagej": True, "metadata": {"axes": "CYX"}}):
            tifffile.imwrite(tmp_path / "scan.tif", np.stack([phase, mask]), **options)
            image, labels = read_tiff(tmp_path / "scan.tif")
            assert (image[2], labels[2]) == ("image", "labels")
            np.testing.assert_array_equal(np.asarray(labels[0]), mask)
    tifffile.imwrite(tmp_path / "flat.tif", np.full((512, 512), 5, np.uint8))
    ((_, _, kind),) = read_tiff(tmp_path / "flat.tif")
    assert kind == "image"


def _roles(path) -> list[tuple[str, str]]:
    return [(k["name"], k["metadata"]["cytomask"]["role"]) for _, k, _ in read_tiff(path)]


def test_phase_beside_stains_without_names_is_the_input_by_its_pixels(shared_data, tmp_path):
    """[GFP, phase] saved without channel names took neither for the input, and segmenting
    took the first, the stain (a bright one made them one channel of two frames): the
    phase image's grey background, among the stains' dark ones, marks it now, in any
    order, and says it was told by pixels. Where the pixels do not tell (stains alone, two
    phase images), no channel is marked."""
    phase = tifffile.imread(shared_data / "usiigaci-phc" / "set11" / "raw.tif")[:256, :256]
    nuclei = tifffile.imread(shared_data / "nuclei-dsb" / "img2d.tif")[:256, :256]
    stain = nuclei.astype(np.uint16) * 40
    # A bright stain's brightest pixels reach the phase image's grey: the two were taken
    # for frames of one channel (a slider of 2 frames, the stain segmented as a frame).
    bright = (nuclei / nuclei.max() * 60000).astype(np.uint16)
    for order, expected in (
        ((stain, phase), ["image", "input"]),
        ((phase, stain), ["input", "image"]),
        ((bright, phase), ["image", "input"]),
        ((phase, bright), ["input", "image"]),
        ((stain, phase, stain[::-1]), ["image", "input", "image"]),
    ):
        tifffile.imwrite(tmp_path / "scan.tif", np.stack(order))
        assert _roles(tmp_path / "scan.tif") == [
            (f"C{i + 1}", role) for i, role in enumerate(expected)
        ]
    ((_, kwargs, _),) = [layer for layer in read_tiff(tmp_path / "scan.tif") if layer[1]
                         ["metadata"]["cytomask"]["role"] == "input"]  # fmt: skip
    assert kwargs["metadata"]["cytomask"][INPUT_BY_PIXELS] is True
    stains = shared_data / "tiff-formats" / "imagej-composites" / "IXMtest_A02_s9.tif"
    assert [role for _, role in _roles(stains)] == ["image"] * 3
    second = tifffile.imread(shared_data / "usiigaci-phc" / "set12" / "raw.tif")[:256, :256]
    channels = [Channel("C1", phase, index=0), Channel("C2", second, index=1)]
    guess_roles(channels, [phase, second])
    assert [c.role for c in channels] == ["image", "image"]
    # A name decides before pixels do: a stain's name is no input, whatever its pixels.
    channels = [Channel("GFP", phase, index=0), Channel("C2", stain, index=1)]
    guess_roles(channels, [phase, stain])
    assert [c.role for c in channels] == ["image", "image"]
