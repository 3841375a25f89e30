"""The TIFF reader through napari's own open path, in a real viewer."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from napari.layers import Image, Labels

pytestmark = pytest.mark.gui


def test_viewer_opens_hyperstack_with_mask_as_labels(
    make_napari_viewer_proxy, shared_data, tmp_path
):
    crop = (slice(300, 556), slice(300, 556))
    tiles = []
    for n in (1, 2):
        folder = shared_data / "usiigaci-phc" / f"set{n}"
        phase = tifffile.imread(folder / "raw.tif")[crop]
        ids = iio.imread(folder / "instances_ids.png")[crop].astype(np.uint16)
        fluo = (ids > 0).astype(np.uint16) * 2000 + np.uint16(100)
        tiles.append(np.stack([fluo, phase, ids]))
    path = tmp_path / "scan.tif"
    tifffile.imwrite(
        path,
        np.stack(tiles),
        imagej=True,
        resolution=(1 / 0.65, 1 / 0.65),
        metadata={"axes": "ZCYX", "unit": "um", "Labels": ["GFP", "Phase", "Cellpose mask"] * 2},
    )

    viewer = make_napari_viewer_proxy()
    viewer.open(str(path), plugin="napari-cytomask")

    assert [layer.name for layer in viewer.layers] == ["GFP", "Phase", "Cellpose mask"]
    assert [type(layer) for layer in viewer.layers] == [Image, Image, Labels]
    mask = viewer.layers["Cellpose mask"]
    np.testing.assert_array_equal(np.asarray(mask.data), np.stack([t[2] for t in tiles]))
    assert viewer.layers["Phase"].metadata["cytomask"]["role"] == "input"
    assert viewer.layers["Phase"].colormap.name == "gray"
    np.testing.assert_allclose(mask.scale, (1, 0.65, 0.65), rtol=1e-6)
    assert viewer.dims.axis_labels[0] == "Z"


def test_open_files_as_stack_makes_one_stack(make_napari_viewer_proxy, shared_data):
    """napari's *Open Files as Stack* on Micro-Manager's time points, one file each, opened
    them as ten layers; files of other channels or sizes are refused with both named."""
    folder = shared_data / "tiff-formats" / "ome-tiff-samples" / "singles" / "181003_slices"
    times = [folder / f"P1_T{t}.tif" for t in range(10)]
    viewer = make_napari_viewer_proxy()
    viewer.open(times, stack=True, plugin="napari-cytomask")
    (layer,) = viewer.layers
    assert layer.name == "P1_T0 to P1_T9" and layer.data.shape == (10, 256, 256)
    assert layer.axis_labels[0] == "file" and tuple(layer.scale)[0] == 1.0
    np.testing.assert_array_equal(np.asarray(layer.data[7]), tifffile.imread(times[7]))
    assert layer.metadata["cytomask"]["stacked_files"] == [str(path) for path in times]
    # Not the first file's source: that file opened on its own is another scan.
    assert layer.metadata["cytomask"]["source"] == str(folder / "P1_T0 to P1_T9 (10 files)")
    other = shared_data / "tiff-formats" / "imagej-composites" / "IXMtest_A02_s9.tif"
    with pytest.raises(Exception, match=r"These files cannot be one stack: IXMtest_A02_s9\.tif "
                       r"holds 3 channel\(s\) \(\S+_c1, \S+_c2, \S+_c3\) of 395 x 695 uint16, "
                       r"while P1_T0\.tif holds 1 channel\(s\) of 256 x 256 uint16"):  # fmt: skip
        viewer.open([times[0], other], stack=True, plugin="napari-cytomask")
    assert len(viewer.layers) == 1


def test_viewer_opens_an_ome_zarr_image_one_layer_per_channel(make_napari_viewer_proxy, tmp_path):
    """napari opened no OME-Zarr store with the plugin (the command line and training
    read them): napari's own reader shows its channels as one image, without the pixel
    size or the mask as labels."""
    import zarr

    rng = np.random.default_rng(0)
    phase = rng.integers(100, 4000, (2, 48, 48), dtype=np.uint16)
    mask = np.zeros((2, 48, 48), np.uint16)
    mask[:, 8:20, 8:20], mask[1, 30:40, 30:44] = 1, 2
    store = tmp_path / "scan.ome.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=2)
    root.create_array("0", data=np.stack([phase, mask], axis=1))
    axes = [{"name": "t", "type": "time", "unit": "second"}, {"name": "c", "type": "channel"},
            *({"name": a, "type": "space", "unit": "micrometer"} for a in "yx")]  # fmt: skip
    transform = [{"type": "scale", "scale": [30.0, 1.0, 0.65, 0.65]}]
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes,
         "datasets": [{"path": "0", "coordinateTransformations": transform}]}
    ]  # fmt: skip
    root.attrs["omero"] = {"channels": [{"label": "Phase"}, {"label": "Cellpose mask"}]}

    viewer = make_napari_viewer_proxy()
    viewer.open(store, plugin="napari-cytomask")
    assert [(layer.name, type(layer)) for layer in viewer.layers] == [
        ("Phase", Image),
        ("Cellpose mask", Labels),
    ]
    np.testing.assert_array_equal(np.asarray(viewer.layers["Cellpose mask"].data), mask)
    np.testing.assert_allclose(viewer.layers["Phase"].scale, (30, 0.65, 0.65))
    assert viewer.layers["Phase"].metadata["cytomask"]["role"] == "input"
    # napari's preferences offer the plugin as the reader of "*.zarr/" (every store).
    from napari.plugins import _npe2

    assert "napari-cytomask" in _npe2.get_readers("*.zarr/")


def test_a_mask_saved_over_its_own_file_is_still_painted_shown_and_saved(
    make_napari_viewer_proxy, shared_data, tmp_path
):
    """A mask channel opened lazily, painted and saved over its file (File > Save, after
    napari's "replace?"), then read the file it had replaced: every later stroke, frame
    shown and save was refused as "changed on disk after it was opened"."""
    ids = [
        iio.imread(shared_data / "usiigaci-phc" / f"set{n}" / "instances_ids.png")[:256, :256]
        for n in (1, 2, 3)
    ]
    path = tmp_path / "masks.tif"
    tifffile.imwrite(path, np.stack(ids).astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    viewer = make_napari_viewer_proxy()
    (layer,) = viewer.open(str(path), plugin="napari-cytomask")
    assert isinstance(layer, Labels)
    layer.paint((1, 100, 100), 999, refresh=True)
    viewer.layers.save(str(path), selected=True, plugin="napari-cytomask")
    assert (tifffile.imread(path)[1] == 999).any()
    layer.paint((0, 200, 200), 998, refresh=True)
    viewer.dims.set_current_step(0, 2)
    np.testing.assert_array_equal(np.asarray(layer.data[2]), ids[2])
    elsewhere = tmp_path / "corrected.tif"
    viewer.layers.save(str(elsewhere), selected=True, plugin="napari-cytomask")
    saved = tifffile.imread(elsewhere)
    assert (saved[1] == 999).any() and (saved[0] == 998).any()
    np.testing.assert_array_equal(saved[2], ids[2])
