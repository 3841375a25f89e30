import numpy as np
import pytest
from napari.components import ViewerModel
from napari.layers import Image, Labels

from napari_cytomask._sample_data import make_sample_tilescan
from napari_cytomask.labels import LabelsError
from napari_cytomask.roles import role_of, set_role


@pytest.fixture
def viewer():
    model = ViewerModel()
    for data, kwargs, kind in make_sample_tilescan():
        getattr(model, f"add_{kind}")(data, **kwargs)
    return model


def test_mask_channel_guessed_wrong_becomes_labels_in_place(viewer):
    gfp = viewer.layers["GFP"]
    mask = viewer.layers["Mask (ground truth)"]
    set_role(viewer.layers, mask, "image")
    as_image = viewer.layers["Mask (ground truth)"]
    assert isinstance(as_image, Image) and role_of(as_image) == "image"
    assert viewer.layers.index(as_image) == 2
    back = set_role(viewer.layers, as_image, "mask")
    assert isinstance(back, Labels) and viewer.layers[2] is back
    np.testing.assert_array_equal(back.data, mask.data)
    assert tuple(back.scale) == tuple(mask.scale)
    assert back.metadata["cytomask"]["source"] == mask.metadata["cytomask"]["source"]
    assert viewer.layers["GFP"] is gfp  # other channels untouched


def test_a_channel_given_another_role_keeps_where_it_lies(viewer):
    """A turned, sheared or affine-placed channel given a role of another kind of layer
    kept its scale and offset only: it no longer lay over its image."""
    mask = viewer.layers["Mask (ground truth)"]
    turn = np.deg2rad(30)
    placement = dict(
        rotate=[[1, 0, 0], [0, np.cos(turn), -np.sin(turn)], [0, np.sin(turn), np.cos(turn)]],
        shear=[0, 0, 0.2],
        affine=[[1, 0, 0, 0], [0, 1, 0, 5.0], [0, 0, 1, -3.0], [0, 0, 0, 1]],
        units=("pixel", "nm", "nm"),
    )
    for key, value in placement.items():
        setattr(mask, key, value)
    corners = [(1, 0, 0), (1, 0, 383), (1, 383, 0), (1, 383, 383)]
    where = [mask.data_to_world(corner) for corner in corners]
    for role in ("image", "mask"):
        layer = set_role(viewer.layers, viewer.layers["Mask (ground truth)"], role)
        np.testing.assert_allclose([layer.data_to_world(corner) for corner in corners], where)
        np.testing.assert_allclose(layer.rotate, placement["rotate"], atol=1e-12)
        np.testing.assert_allclose(layer.affine.affine_matrix, placement["affine"])
        assert tuple(str(unit) for unit in layer.units) == ("pixel", "nanometer", "nanometer")


def test_only_one_input_per_scan(viewer):
    set_role(viewer.layers, viewer.layers["GFP"], "input")
    assert role_of(viewer.layers["GFP"]) == "input"
    assert role_of(viewer.layers["Brightfield"]) == "image"


def test_fractional_channel_cannot_become_a_mask(viewer):
    gfp = viewer.layers["GFP"]
    gfp.data = gfp.data.astype(np.float32) / 7
    with pytest.raises(LabelsError, match="fractional"):
        set_role(viewer.layers, gfp, "mask")
    assert viewer.layers["GFP"] is gfp and role_of(gfp) == "image"


@pytest.mark.parametrize("dtype", [bool, np.float32])
def test_a_channel_made_a_mask_and_back_keeps_its_own_type(viewer, dtype):
    """A boolean channel made a mask came back from it as uint8 (and a float one as an
    integer type): its values and contrast were no longer the file's."""
    gfp = viewer.layers["GFP"]
    gfp.data = (gfp.data > gfp.data.mean()).astype(dtype)
    original = np.array(gfp.data)
    mask = set_role(viewer.layers, gfp, "mask")
    assert isinstance(mask, Labels)
    back = set_role(viewer.layers, mask, "image")
    assert back.data.dtype == np.dtype(dtype) and role_of(back) == "image"
    np.testing.assert_array_equal(back.data, original)
    assert "image_dtype" not in back.metadata["cytomask"]
    # Cells painted into the mask meanwhile (ids above 1) are kept, not cut to booleans.
    mask = set_role(viewer.layers, back, "mask")
    mask.data[0, :2, :2] = 5
    back = set_role(viewer.layers, mask, "image")
    assert back.data[0, 0, 0] == 5


def test_a_colour_channel_cannot_become_a_mask(viewer):
    """An RGB TIFF opened by the plugin, made a mask, failed in napari's own terms:
    "axis_labels=('Y', 'X') must have length ndim=3"."""
    record = {"cytomask": {"role": "image", "source": "photo.tif"}}
    photo = viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="photo", metadata=record)
    with pytest.raises(LabelsError, match="colour \\(RGB\\) image.*Split RGB"):
        set_role(viewer.layers, photo, "mask")
    assert viewer.layers["photo"] is photo and role_of(photo) == "image"


def test_layers_not_opened_by_the_plugin_are_refused(viewer):
    other = viewer.add_image(np.zeros((4, 4)), name="other")
    with pytest.raises(ValueError, match="not opened"):
        set_role(viewer.layers, other, "mask")
    with pytest.raises(ValueError, match="Unknown role"):
        set_role(viewer.layers, viewer.layers["GFP"], "nucleus")


def test_only_single_channel_images_of_other_readers_are_channels(viewer, tmp_path):
    """An RGB picture opened by napari's reader cannot be a mask, so it is not offered."""
    from napari.layers._source import layer_source

    with layer_source(path=str(tmp_path / "photo.png")):
        photo = Image(np.zeros((8, 8, 3), np.uint8), rgb=True)
        ids = Image(np.zeros((8, 8), np.uint8))
    assert role_of(photo) is None and role_of(ids) == "image"


def _add_scan(model, source):
    """Add a two-channel scan as the plugin's reader opens it: brightfield input, GFP image."""
    from napari_cytomask.io.layers import Channel, to_layer_data

    rng = np.random.default_rng(len(source))
    channels = [
        Channel("Brightfield", rng.integers(100, 4000, (16, 16), np.uint16), "input", 0),
        Channel("GFP", rng.integers(100, 4000, (16, 16), np.uint16), "image", 1),
    ]
    layers = []
    for data, kwargs, kind in to_layer_data(channels, axis_labels=("Y", "X"), source=source):
        kwargs["name"] = f"{kwargs['name']} {source}"
        layers.append(getattr(model, f"add_{kind}")(data, **kwargs))
    return layers


def test_choosing_the_input_of_one_scan_leaves_another_scans_input_alone():
    """Without this, making a channel the input would demote every other scan's input."""
    model = ViewerModel()
    bright_a, gfp_a = _add_scan(model, "a.tif")
    bright_b, gfp_b = _add_scan(model, "b.tif")
    set_role(model.layers, gfp_a, "input")
    assert [role_of(layer) for layer in (bright_a, gfp_a)] == ["image", "input"]
    assert [role_of(layer) for layer in (bright_b, gfp_b)] == ["input", "image"]


def test_a_channel_made_a_mask_and_back_keeps_its_look(viewer):
    """GFP opened green came back grey from being a mask, its contrast reset."""
    gfp = viewer.layers["GFP"]
    assert gfp.colormap.name == "green"
    gfp.contrast_limits = (10.0, 200.0)
    gfp.gamma = 0.8
    gfp.blending = "additive"
    mask = set_role(viewer.layers, gfp, "mask")
    back = set_role(viewer.layers, mask, "image")
    assert back.colormap.name == "green"
    assert tuple(back.contrast_limits) == (10.0, 200.0)
    assert (back.gamma, back.blending) == (pytest.approx(0.8), "additive")
    assert "image_look" not in back.metadata["cytomask"]
    # A mask channel the reader opened as labels becomes a grey image.
    truth = set_role(viewer.layers, viewer.layers["Mask (ground truth)"], "image")
    assert truth.colormap.name == "gray"


def test_a_lazy_channel_made_a_mask_opens_in_memory_where_it_fits(viewer, tmp_path):
    """A channel made a mask stayed lazy: painted and saved over its file, every later
    stroke was refused as changed on disk, as the reader's masks were before."""
    import tifffile

    from napari_cytomask._reader import get_reader

    ids = np.zeros((2, 32, 32), np.uint16)
    ids[:, 4:12, 4:12] = 7
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.stack([ids * 300 + 100, ids], axis=1), imagej=True,
                     metadata={"axes": "ZCYX", "Labels": ["GFP", "C2"] * 2})  # fmt: skip
    model = ViewerModel()
    for data, kwargs, kind in get_reader(str(path))(str(path)):
        getattr(model, f"add_{kind}")(data, **kwargs)
    gfp = model.layers["GFP"]
    assert not isinstance(gfp.data, np.ndarray)  # an image stays lazy
    made = set_role(model.layers, gfp, "mask")
    assert isinstance(made, Labels) and isinstance(made.data, np.ndarray)
    np.testing.assert_array_equal(made.data, ids * 300 + 100)
