"""Tile scans of the kind users have, built from the real phase-contrast images.

(a) ImageJ hyperstacks: tiles on a stack axis, 4 channels, phase in channel 2 and
a Cellpose-style mask in channel 4; (b) OME-TIFFs with one series per tile and
stage positions, stitched back into the original image.
"""

from __future__ import annotations

import gc

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from napari_cytomask._reader import get_reader
from napari_cytomask.io.tiff import MosaicUnavailable, TiffScan, describe_tiff, read_tiff

CROP = (slice(200, 584), slice(300, 684))
PIXEL_UM = 0.65
NAMES = ["GFP", "Phase", "mCherry", "Cellpose masks"]


def _phase_and_ids(shared_data, index: int, crop=CROP) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_data / "usiigaci-phc" / f"set{index}"
    raw = tifffile.imread(folder / "raw.tif")
    ids = iio.imread(folder / "instances_ids.png")
    return raw[crop], ids[crop].astype(np.uint16)


def _four_channels(raw: np.ndarray, ids: np.ndarray, seed: int) -> np.ndarray:
    """Fluorescence, phase, another fluorescence and the mask of one tile."""
    rng = np.random.default_rng(seed)
    cells = ndi.gaussian_filter((ids > 0).astype(float), 3)
    fluo = cells * 3000 + rng.normal(300, 30, ids.shape)
    other = ndi.gaussian_filter(raw.astype(float), 4) * 0.1 + rng.normal(100, 10, ids.shape)
    return np.stack([fluo, raw, other, ids]).clip(0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def hyperstack(shared_data, tmp_path_factory):
    """ImageJ hyperstacks ZCYX (3 tiles x 4 channels), with and without channel names."""
    tiles = [_phase_and_ids(shared_data, n) for n in (1, 2, 3)]
    data = np.stack([_four_channels(raw, ids, n) for n, (raw, ids) in enumerate(tiles)])
    folder = tmp_path_factory.mktemp("hyperstack")
    paths = {}
    for named in (True, False):
        metadata = {"axes": "ZCYX", "unit": "um"}
        if named:
            metadata["Labels"] = NAMES * 3
        paths[named] = folder / f"tiles-{'named' if named else 'plain'}.tif"
        tifffile.imwrite(
            paths[named],
            data,
            imagej=True,
            resolution=(1 / PIXEL_UM, 1 / PIXEL_UM),
            metadata=metadata,
        )
    return paths, data


@pytest.mark.parametrize("named", [True, False])
def test_hyperstack_channels_and_roles(hyperstack, named):
    paths, data = hyperstack
    path = str(paths[named])
    layers = get_reader(path)(path)
    assert [kind for _, _, kind in layers] == ["image", "image", "image", "labels"]
    expected_names = NAMES if named else ["C1", "C2", "C3", "C4"]
    assert [kwargs["name"] for _, kwargs, _ in layers] == expected_names
    roles = [kwargs["metadata"]["cytomask"]["role"] for _, kwargs, _ in layers]
    # Named "Phase", channel 2 is the image to segment; without names nothing says so.
    assert roles == (["image", "input", "image", "mask"] if named else ["image"] * 3 + ["mask"])
    for index, (layer, kwargs, _) in enumerate(layers):
        assert layer.shape == (3, 384, 384)
        assert kwargs["axis_labels"] == ("Z", "Y", "X")
        np.testing.assert_allclose(kwargs["scale"], (1, PIXEL_UM, PIXEL_UM), rtol=1e-6)
        assert kwargs["units"] == ("pixel", "µm", "µm")
        np.testing.assert_array_equal(np.asarray(layer), data[:, index])
    if named:
        assert layers[1][1]["colormap"] == "gray"
    mask = np.asarray(layers[3][0])
    assert mask.dtype == np.uint16
    assert set(np.unique(mask[0])) == set(np.unique(data[0, 3]))


def test_hyperstack_contrast_from_sample(hyperstack):
    paths, data = hyperstack
    layers = read_tiff(paths[True])
    low, high = layers[1][1]["contrast_limits"]
    phase = data[:, 1]
    assert phase.min() <= low < high <= phase.max()
    assert "contrast_limits" not in layers[3][1]


def test_contrast_leaves_out_pixels_that_are_no_number():
    """A stitched mosaic's infinite border printed numpy's 'invalid value encountered in
    subtract' at every file opened, and NaN ones gave no range of their own."""
    import warnings

    from napari_cytomask.io.layers import contrast_from_sample

    sample = np.array([np.inf, -np.inf, np.nan, *np.linspace(10, 20, 1001)], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = contrast_from_sample(sample, np.float32)
    assert 10 <= low < high <= 20


def _positions_ome(
    path,
    image: np.ndarray,
    ids: np.ndarray,
    *,
    thumbnail: bool,
    far: int = 0,
    own_ids: bool = False,
) -> list:
    """2 x 2 overlapping 600 x 600 tiles, one OME series each, with stage positions; the
    last one ``far`` pixels further away on the stage (in another well, say). With
    ``own_ids``, each tile numbers its cells from 1, as when tiles are segmented one by one."""
    origin_y, origin_x = 2000.0, -1500.0
    starts = [(r, c) for r in (0, 422) for c in (0, 424)]
    with tifffile.TiffWriter(path, ome=True) as tif:
        for n, (r, c) in enumerate(starts):
            cells = ids[r : r + 600, c : c + 600]
            if own_ids:
                cells = relabel_sequential(cells)[0]
            tile = np.stack([image[r : r + 600, c : c + 600], cells])
            tif.write(
                tile,
                tile=(256, 256),
                metadata={
                    "axes": "CYX",
                    "Name": f"tile {n}",
                    "PhysicalSizeX": PIXEL_UM,
                    "PhysicalSizeY": PIXEL_UM,
                    "Channel": {"Name": ["Phase", "Mask"]},
                    "Plane": {
                        "PositionX": [origin_x + (c + far * (n == 3)) * PIXEL_UM] * 2,
                        "PositionY": [origin_y + (r + far * (n == 3)) * PIXEL_UM] * 2,
                        "PositionXUnit": ["µm"] * 2,
                        "PositionYUnit": ["µm"] * 2,
                    },
                },
            )
        if thumbnail:
            tif.write(image[::16, ::16].astype(np.uint8), metadata={"axes": "YX"})
    return starts


@pytest.fixture(scope="module")
def positions_file(shared_data, tmp_path_factory):
    image, ids = _phase_and_ids(shared_data, 5, crop=(slice(None), slice(None)))
    path = tmp_path_factory.mktemp("ome") / "tilescan.ome.tif"
    starts = _positions_ome(path, image, ids, thumbnail=True)
    return path, image, ids, starts


def test_series_become_position_axis(positions_file):
    path, image, ids, starts = positions_file
    desc = describe_tiff(path)
    assert desc.series == (0, 1, 2, 3)  # the thumbnail is left out
    assert desc.axes == "PCYX"
    assert desc.shape == (4, 2, 600, 600)
    assert desc.channel_names == ("Phase", "Mask")
    np.testing.assert_allclose(desc.pixel_size["X"], PIXEL_UM)
    np.testing.assert_allclose(
        np.subtract(desc.positions, desc.positions[0]), np.multiply(starts, PIXEL_UM), atol=1e-9
    )
    (phase, phase_kw, phase_kind), (mask, mask_kw, mask_kind) = read_tiff(path)
    assert (phase_kind, mask_kind) == ("image", "labels")
    assert phase_kw["metadata"]["cytomask"]["role"] == "input"
    assert phase.shape == mask.shape == (4, 600, 600)
    assert phase_kw["axis_labels"] == ("P", "Y", "X")
    for n, (r, c) in enumerate(starts):
        np.testing.assert_array_equal(np.asarray(phase[n]), image[r : r + 600, c : c + 600])
        np.testing.assert_array_equal(np.asarray(mask[n]), ids[r : r + 600, c : c + 600])


@pytest.mark.parametrize(
    ("names", "read"),
    [
        (["A1 site 1", "B2 site 4"], ("A1 site 1", "B2 site 4")),
        (["tilescan", "tilescan"], None),  # the file's name on every image: no position's
        (["A1", None], None),  # one not named
        (["A1", "  "], None),
        (["A1", "A1", "B3"], None),  # two fields of one name: one well to a table
        (["cells P0", "cells P1"], None),  # positions the plugin's writer had no names for
    ],
)
def test_positions_are_read_with_their_names(tmp_path, names, read):
    """An OME-TIFF's positions were P0, P1 …, whatever the microscope named them: a well
    and site, which a plate's tables need. Its images' names are the positions' names."""
    path = tmp_path / "named.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for name in names:
            tif.write(np.zeros((16, 16), np.uint16), metadata={"axes": "YX", "Name": name})
    desc = describe_tiff(path)
    assert desc.n_positions == len(names) and desc.position_names == read
    ((_, kwargs, _),) = read_tiff(path)
    named = kwargs["metadata"]["cytomask"]["position_names"]
    assert named == (None if read is None else list(read))


def test_mosaic_equals_original(positions_file, same_partition):
    path, image, ids, _ = positions_file
    (phase, phase_kw, _), (mask, mask_kw, mask_kind) = read_tiff(str(path), mosaic=True)
    assert isinstance(phase, da.Array)
    assert phase.shape == mask.shape == image.shape
    assert phase_kw["axis_labels"] == ("Y", "X")
    assert phase_kw["metadata"]["cytomask"]["mosaic"] is True
    assert mask_kind == "labels"
    np.testing.assert_array_equal(phase.compute(), image)
    # The cells the tiles share where they overlap are one cell each, with the first
    # tile's id.
    stitched = mask.compute()
    assert same_partition(stitched, ids)
    np.testing.assert_array_equal(stitched[:600, :600], ids[:600, :600])
    # A block in the middle, where all four tiles overlap.
    np.testing.assert_array_equal(np.asarray(phase[400:620, 410:630]), image[400:620, 410:630])


def _tiles_at(path, masks, starts, phases=None) -> None:
    """One OME image per tile at its stage position (a pixel is 0.5 µm): a phase channel
    (``phases``, else 100 everywhere) and a mask channel, of one plane or of a time-lapse
    (T, Y, X)."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        for n, (mask, (r, c)) in enumerate(zip(masks, starts, strict=True)):
            phase = np.full_like(mask, 100) if phases is None else phases[n]
            planes = 2 * (len(mask) if mask.ndim == 3 else 1)
            tif.write(
                np.stack([phase, mask], axis=-3),
                metadata={
                    "axes": "TCYX" if mask.ndim == 3 else "CYX",
                    "PhysicalSizeX": 0.5,
                    "PhysicalSizeY": 0.5,
                    "Channel": {"Name": ["Phase", "Mask"]},
                    "Plane": {"PositionX": [c * 0.5] * planes, "PositionY": [r * 0.5] * planes},
                },
            )


def test_mosaic_of_tiles_each_numbering_its_cells(tmp_path, same_partition):
    """Tiles segmented one by one each number their cells 1, 2, 3: pasted as they were, a
    mosaic of 2 x 2 tiles held 3 cells instead of 12 (metrics, counts and export took
    the cells of four tiles for one). Each tile's cells now have ids of their own, in
    every frame the same; the image is stitched as it was."""
    tile = np.zeros((2, 40, 40), np.uint16)  # T, Y, X: the same cells in both frames
    tile[:, 5:15, 5:15], tile[:, 20:30, 5:15], tile[:, 10:30, 22:35] = 1, 2, 3
    starts = [(r, c) for r in (0, 40) for c in (0, 40)]
    rng = np.random.default_rng(0)
    phases = rng.integers(100, 4000, (4, 2, 40, 40), dtype=np.uint16)
    path = tmp_path / "own-ids.ome.tif"
    _tiles_at(path, [tile] * 4, starts, phases)
    (phase, _, _), (mask, _, mask_kind) = read_tiff(path, mosaic=True)
    assert mask_kind == "labels"
    stitched = mask.compute()
    assert stitched.shape == (2, 80, 80)
    assert len(np.unique(stitched)) == 1 + 12
    assert stitched.dtype == np.uint32  # four tiles of 16-bit ids
    np.testing.assert_array_equal(stitched[0], stitched[1])
    for n, (r, c) in enumerate(starts):
        assert same_partition(stitched[:, r : r + 40, c : c + 40], tile)
        np.testing.assert_array_equal(np.asarray(phase[:, r : r + 40, c : c + 40]), phases[n])
    np.testing.assert_array_equal(stitched[:, :40, :40], tile)  # the first tile's ids kept


def test_overlapping_tiles_each_numbering_its_cells(shared_data, tmp_path, same_partition):
    """Where tiles each numbering their cells from 1 overlap, the later one is drawn over
    the earlier and cuts its cells at its edge: the cell both tiles see is one cell, not a
    piece with one id beside a piece with another."""
    image, ids = _phase_and_ids(shared_data, 5, crop=(slice(None), slice(None)))
    path = tmp_path / "own-ids.ome.tif"
    _positions_ome(path, image, ids, thumbnail=False, own_ids=True)
    _, (mask, _, _) = read_tiff(path, mosaic=True)
    assert same_partition(mask.compute(), ids)


def test_overlapping_tiles_of_a_time_lapse_join_cells_frame_by_frame(tmp_path, same_partition):
    """Tiles of a time-lapse segmented frame by frame number the cells of each frame in
    their own order: the cells both tiles saw were matched over all frames at once, and
    one frame's match given to every frame, so that a cell of one frame took the id of
    another cell (two cells under one id, one cell under two). Each frame's cells seen
    twice are now matched in that frame."""
    truth = np.zeros((2, 40, 70), np.uint16)  # T, Y, X; the tiles overlap in 30:40
    truth[:, 2:8, 2:8], truth[:, 30:38, 55:65] = 3, 4  # each seen by one tile
    truth[0, 5:15, 25:40], truth[0, 20:30, 28:36] = 1, 2  # both seen by both tiles
    truth[1, 5:18, 25:40], truth[1, 20:32, 28:40] = 1, 2  # moved a little
    tiles = [relabel_sequential(truth[t, :, :40])[0] for t in range(2)]
    right = [relabel_sequential(truth[t, :, 30:])[0] for t in range(2)]
    right[1] = np.array([0, 2, 1, 3], np.uint16)[right[1]]  # cells 1 and 2 swap ids
    path = tmp_path / "time-lapse.ome.tif"
    _tiles_at(path, [np.stack(tiles), np.stack(right)], [(0, 0), (0, 30)])
    _, (mask, _, _) = read_tiff(path, mosaic=True)
    stitched = mask.compute()
    for frame, expected in zip(stitched, truth, strict=True):
        assert same_partition(frame, expected)
    np.testing.assert_array_equal(stitched[:, :, :30], np.stack(tiles)[:, :, :30])


def test_tiles_meeting_without_overlap_join_the_cells_their_seams_cut(
    shared_data, tmp_path, same_partition
):
    """A scan without overlap images a cell on a tile border half in each tile, and
    tiles segmented one by one number each half as a cell: the mosaic held the two
    halves as two cells (on the 40 Usiigaci images cut into 2 x 2 tiles, 417 cells; the
    starter model's F1 at IoU 0.5 fell from 0.926 to 0.875). The halves are one cell
    again; the cells the seams did not cut keep their ids."""
    image, ids = _phase_and_ids(shared_data, 13, crop=(slice(0, 1022), slice(0, 1024)))
    starts = [(r, c) for r in (0, 511) for c in (0, 512)]
    tiles = [relabel_sequential(ids[r : r + 511, c : c + 512])[0] for r, c in starts]
    path = tmp_path / "no-overlap.ome.tif"
    _tiles_at(path, tiles, starts)
    _, (mask, _, _) = read_tiff(path, mosaic=True)
    stitched = mask.compute()
    cut = [
        cell
        for cell in np.unique(ids)[1:]
        if sum(np.any(ids[r : r + 511, c : c + 512] == cell) for r, c in starts) > 1
    ]
    assert len(cut) == 18
    assert same_partition(stitched, ids)
    np.testing.assert_array_equal(stitched[:511, :512], tiles[0])


@pytest.mark.parametrize("gap", [0, 1, 2, 3])
@pytest.mark.parametrize("across", ["columns", "rows"])
def test_a_cell_is_joined_across_a_seam_where_both_halves_face_each_other(tmp_path, gap, across):
    """Two cells facing each other along most of the seam either touches are one cell
    cut by it, also across a gap of a pixel or two (stage positions rounded to whole
    pixels); a cell whose tip touches the seam beside a cell of the other tile is
    another cell, and so are cells three pixels apart."""
    first = np.zeros((40, 40), np.uint16)
    second = np.zeros((40, 40), np.uint16)
    first[5:15, 30:40], second[5:15, 0:12] = 1, 1  # one cell, cut by the seam
    first[22:35, 28:37], first[27:29, 37:40] = 2, 2  # a cell whose tip reaches the seam
    second[20:38, 0:10] = 2  # a larger cell that the tip touches
    starts = [(0, 0), (0, 40 + gap)]
    if across == "rows":
        first, second = first.T.copy(), second.T.copy()
        starts = [(c, r) for r, c in starts]
    path = tmp_path / "two-tiles.ome.tif"
    _tiles_at(path, [first, second], starts)
    _, (mask, _, _) = read_tiff(path, mosaic=True)
    stitched = mask.compute()
    ids = stitched[5, 30] if across == "columns" else stitched[30, 5]
    halves = stitched[5, 45 + gap] if across == "columns" else stitched[45 + gap, 5]
    assert (ids == halves) == (gap <= 2)
    assert len(np.unique(stitched)) == 1 + 4 - (gap <= 2)


def test_positions_far_apart_are_not_stitched(shared_data, tmp_path):
    """One field 20,000 px away would make a mosaic of 400 million pixels, nearly all
    empty: refused with what was found, and the fields still open one by one."""
    image, ids = _phase_and_ids(shared_data, 5, crop=(slice(None), slice(None)))
    path = tmp_path / "wells.ome.tif"
    _positions_ome(path, image, ids, thumbnail=False, far=20_000)
    with pytest.raises(
        MosaicUnavailable,
        match=(
            r"its 4 stage positions form 2 groups of tiles far apart: stitched, they would "
            r"make one 21022 x 21024 px plane, of which the tiles would fill 0%; they look "
            r"like separate fields"
        ),
    ):
        read_tiff(path, mosaic=True)
    (phase, _, _), _ = read_tiff(path)
    assert phase.shape == (4, 600, 600)
    # A tile a gap away (a row skipped) is a group apart, but the plane stays mostly full.
    _positions_ome(path, image, ids, thumbnail=False, far=600)
    (phase, _, _), _ = read_tiff(path, mosaic=True)
    assert phase.shape == (1622, 1624)


@pytest.mark.parametrize(
    ("starts", "groups"),
    [
        ([(0, 0), (0, 90), (90, 0), (90, 90)], 1),  # a grid with overlaps
        ([(k * 100, k * 100) for k in range(8)], 1),  # a diagonal strip
        ([(0, k * 100) for k in range(8)] + [(k * 100, 0) for k in range(1, 8)], 1),  # an L
        ([(0, 0), (0, 140), (0, 280)], 1),  # gaps under half a tile
        ([(0, 0), (0, 100), (5000, 5000)], 2),  # a field in another well
        ([(0, 0), (0, 300), (0, 600)], 3),
    ],
)
def test_tiles_group_by_nearness_whatever_the_mosaics_shape(starts, groups):
    from napari_cytomask.io.mosaic import tile_groups

    assert tile_groups(np.array(starts), (100, 100)) == groups


def test_data_outlive_the_scan(positions_file):
    path, image, _, starts = positions_file
    layers = read_tiff(path)
    gc.collect()
    r, c = starts[3]
    np.testing.assert_array_equal(np.asarray(layers[0][0][3]), image[r : r + 600, c : c + 600])


def test_opening_reads_only_samples(positions_file, tmp_path):
    """Opening reads metadata and small samples, not the tiles."""
    path = tmp_path / "compressed.ome.tif"
    _, image, ids, _ = positions_file
    big = np.tile(image, (2, 2))
    big_ids = np.tile(ids, (2, 2))
    with tifffile.TiffWriter(path, ome=True) as tif:
        for n in range(4):
            tif.write(
                np.stack([np.roll(big, 100 * n, axis=1), big_ids]),
                tile=(256, 256),
                compression="zlib",
                metadata={"axes": "CYX", "PhysicalSizeX": 1, "PhysicalSizeY": 1},
            )
    size = path.stat().st_size

    def read_bytes():
        with open("/proc/self/io") as io:
            return int(next(line for line in io if line.startswith("rchar")).split()[1])

    before = read_bytes()
    layers = read_tiff(path)
    read = read_bytes() - before
    assert len(layers) == 2
    assert read < 0.15 * size, (read, size)


def test_pyramid_opens_multiscale(tmp_path, shared_data):
    image, _ = _phase_and_ids(shared_data, 7, crop=(slice(0, 768), slice(0, 1024)))
    data = np.stack([image, image // 2])
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, subifds=2, tile=(256, 256), metadata={"axes": "CYX"})
        for factor in (2, 4):
            tif.write(data[:, ::factor, ::factor], subfiletype=1, tile=(256, 256))
    desc = describe_tiff(path)
    assert desc.levels == 3
    layers = read_tiff(path)
    assert len(layers) == 2
    for index, (levels, kwargs, _) in enumerate(layers):
        assert kwargs["multiscale"] is True
        assert [level.shape for level in levels] == [(768, 1024), (384, 512), (192, 256)]
        np.testing.assert_array_equal(np.asarray(levels[2]), data[index, ::4, ::4])


def test_rgb_stays_one_layer(tmp_path, shared_data):
    image, _ = _phase_and_ids(shared_data, 9)
    grey = (image / image.max() * 255).astype(np.uint8)
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    ((data, kwargs, kind),) = read_tiff(path)
    assert kind == "image"
    assert kwargs["rgb"] is True
    assert "colormap" not in kwargs
    assert data.shape == rgb.shape
    assert kwargs["axis_labels"] == ("Y", "X")
    np.testing.assert_array_equal(np.asarray(data), rgb)


def test_scan_context_manager_reads_regions(positions_file):
    path, image, _, starts = positions_file
    with TiffScan(path) as scan:
        r, c = starts[1]
        region = scan.read([1, 0, slice(10, 20), slice(30, 50)])
        np.testing.assert_array_equal(region, image[r + 10 : r + 20, c + 30 : c + 50])


def test_a_thumbnail_before_the_positions_does_not_hide_them(tmp_path):
    """The scan is the group of series with the largest images, wherever it is in the file."""
    rng = np.random.default_rng(0)
    positions = rng.integers(0, 4000, (2, 64, 64), dtype=np.uint16)
    path = tmp_path / "scan.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(np.zeros((8, 10), np.uint16))  # an overview thumbnail
        for position in positions:
            tif.write(position)
    ((data, kwargs, _),) = read_tiff(path)
    np.testing.assert_array_equal(np.asarray(data), positions)
    assert kwargs["axis_labels"][0] == "P"


@pytest.mark.parametrize("unlike", ["cropped", "more channels"])
def test_an_ome_position_unlike_the_others_is_named_as_left_out(shared_data, tmp_path, unlike):
    """A position cropped at a well's edge, or saved with one channel more, was left out of
    the scan unsaid, the next position numbered in its place (the first, of two channels
    where the second had three, with a note contradicting itself)."""
    image, ids = _phase_and_ids(shared_data, 5, crop=(slice(0, 96), slice(0, 128)))
    pair = np.stack([image, ids.astype(image.dtype)])
    odd = pair[:, :80] if unlike == "cropped" else np.concatenate([pair, pair[1:]])
    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for data in (pair, odd, pair):
            tif.write(data, metadata={"axes": "CYX"})
    with pytest.warns(UserWarning, match=r"its image\(s\) 1 \(Image1\) of another size, pixel "
                      r"type or channels than the 2 it opens \(2 x 96 x 128 uint16, CYX\) were "
                      "left out"):  # fmt: skip
        layers = read_tiff(path)
    assert [np.shape(data) for data, _, _ in layers] == [(2, 96, 128)] * 2
