import json

import numpy as np

from napari_cytomask.io.omezarr import create_labels, open_labels


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
    assert np.asarray(open_labels(store)).max() == 7
