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
