import numpy as np
from scipy import ndimage as ndi

from napari_cytomask._sample_data import make_sample_tilescan
from napari_cytomask.synthetic import make_tilescan


def test_scan_is_deterministic_and_shaped_like_a_tile_scan():
    a, b = (
        make_tilescan(n_tiles=2, shape=(128, 160), seed=3),
        make_tilescan(n_tiles=2, shape=(128, 160), seed=3),
    )
    for name in ("brightfield", "fluorescence", "labels"):
        assert getattr(a, name).shape == (2, 128, 160)
        assert getattr(a, name).dtype == np.uint16
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.labels, make_tilescan(n_tiles=2, shape=(128, 160), seed=4).labels)


def test_cells_are_whole_numbered_and_some_touch():
    scan = make_tilescan(n_tiles=1)
    labels = scan.labels[0]
    ids = np.unique(labels)[1:]
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    assert len(ids) > 40
    for index, region in enumerate(ndi.find_objects(labels), start=1):
        assert ndi.label(labels[region] == index)[1] == 1  # every cell one piece
    horizontal = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
    assert horizontal.sum() > 50  # neighbouring cells share borders


def test_cells_are_darker_in_brightfield_and_bright_in_fluorescence():
    scan = make_tilescan(n_tiles=1)
    cells = scan.labels[0] > 0
    inner = ndi.binary_erosion(cells, iterations=3)
    outer = ~ndi.binary_dilation(cells, iterations=3)
    assert scan.brightfield[0][inner].mean() < scan.brightfield[0][outer].mean() - 200
    assert scan.fluorescence[0][inner].mean() > 3 * scan.fluorescence[0][outer].mean()


def test_sample_opens_like_a_read_scan():
    layers = make_sample_tilescan()
    assert [(kw["name"], kind) for _, kw, kind in layers] == [
        ("GFP", "image"),
        ("Brightfield", "image"),
        ("Mask (ground truth)", "labels"),
    ]
    roles = [kw["metadata"]["cytomask"]["role"] for _, kw, _ in layers]
    assert roles == ["image", "input", "mask"]
    for data, kw, _ in layers:
        assert data.shape[0] == 3 and kw["axis_labels"] == ("P", "Y", "X")
        assert kw["scale"] == (1.0, 0.65, 0.65)
    low, high = layers[1][1]["contrast_limits"]
    assert 0 < low < high < 65535
