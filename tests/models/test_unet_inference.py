"""Tiled U-Net inference: no seams, streaming, stacks, progress and cancelling."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from napari_cytomask.metrics import evaluate
from napari_cytomask.models.inference import (
    PredictorCache,
    UNetPredictor,
    blend_window,
    image_area,
    iter_segment,
    predict,
    segment,
)
from napari_cytomask.models.training import TrainingSettings, samples_from_arrays, train
from napari_cytomask.models.unet import UNetConfig
from napari_cytomask.synthetic import make_tilescan
from napari_cytomask.tiling import tile_starts


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_unet):
    """A tiny network trained briefly on synthetic cells, so its outputs have real structure."""
    torch.set_num_threads(1)
    scan = make_tilescan(n_tiles=2, shape=(160, 160), cell_radius=12, seed=1)
    samples = samples_from_arrays(scan.brightfield, scan.labels, "synthetic")
    settings = TrainingSettings(
        epochs=1,
        steps_per_epoch=40,
        batch_size=4,
        crop_size=96,
        learning_rate=3e-3,
        encoder_weights=None,
        device="cpu",
        fractions=(1, 0, 0),
    )
    path = tmp_path_factory.mktemp("unet") / "tiny.safetensors"
    result = train(samples, path, UNetConfig(**tiny_unet, tile_size=128), settings)
    return UNetPredictor.from_checkpoint(result.checkpoint, "cpu")


@pytest.fixture(scope="module")
def image():
    return make_tilescan(n_tiles=1, shape=(320, 320), cell_radius=12, seed=5).brightfield[0]


def test_tiles_cover_the_image_with_the_requested_overlap():
    starts = tile_starts(320, 128, 48)
    assert starts[0] == 0 and starts[-1] == 320 - 128
    assert min(np.diff(starts)) > 0 and 128 - max(np.diff(starts)) >= 48
    assert tile_starts(100, 128, 48) == [0]
    w = blend_window(128, 48)
    assert w.min() > 0 and w[64] == 1 and np.allclose(w[:48], w[::-1][:48])
    assert np.all(np.diff(w[:48]) >= 0) and w[0] < 0.01


def test_tiled_prediction_has_no_seams(trained, image):
    whole = segment(trained, image, tile_size=320)
    tiled = segment(trained, image, tile_size=128, overlap=64, batch_size=5)
    naive = segment(trained, image, tile_size=128, overlap=0, batch_size=5)
    assert len(tile_starts(320, 128, 64)) ** 2 == 16  # really tiled
    diff = np.abs(whole.probabilities - tiled.probabilities)
    naive_diff = np.abs(whole.probabilities - naive.probabilities)
    assert diff.mean() < 2e-4 and diff.max() < 0.02
    # Abutting tiles without blending do show seams: the test can tell them apart.
    assert naive_diff.max() > 0.2 and naive_diff.mean() > 20 * diff.mean()
    n_cells = int(whole.labels.max())
    assert n_cells > 40
    assert int(tiled.labels.max()) == n_cells
    matched = evaluate(whole.labels, tiled.labels, thresholds=(0.9,))
    assert matched.matches.tp[0] == n_cells  # every cell the same, up to a few pixels
    assert np.mean((whole.labels > 0) != (tiled.labels > 0)) < 1e-4


def test_the_models_tiles_are_fitted_to_the_image_and_a_tile_size_given_is_kept(
    trained, image, monkeypatch
):
    """With the model's tiles of 128 and an overlap of 48, a 300 x 300 image took 16
    tiles of 128 (4 per side, 512 pixels seen per side); 3 tiles of 136 per side cover
    it (408 pixels). A tile size given stays as it is."""
    from napari_cytomask.models import inference

    sizes = []
    forward = inference.predict_tiles
    monkeypatch.setattr(
        inference,
        "predict_tiles",
        lambda p, batch, **kw: sizes.append(batch.shape[-2:]) or forward(p, batch, **kw),
    )
    monkeypatch.setattr(trained.config, "tile_size", 128)
    fitted = segment(trained, image[:300, :300], overlap=48)
    assert sizes == [(136, 136)] * 9
    sizes.clear()
    given = segment(trained, image[:300, :300], tile_size=128, overlap=48)
    assert sizes == [(128, 128)] * 16
    # Nearly the same cells either way: the tiles are blended as before.
    matched = evaluate(given.labels, fitted.labels, thresholds=(0.8,))
    assert matched.matches.f1[0] > 0.95 and int(given.labels.max()) > 40


def test_stack_lazy_input_and_memmap_output(trained, image, tmp_path):
    stack = np.stack([image, image[::-1]])
    lazy = da.from_array(stack, chunks=(1, 100, 100))
    out = np.lib.format.open_memmap(tmp_path / "p.npy", "w+", np.float32, (3, *stack.shape))
    probs = predict(trained, lazy, tile_size=128, overlap=32, batch_size=4, out=out)
    assert probs is out and probs.shape == (3, 2, 320, 320)
    direct = predict(trained, image, tile_size=128, overlap=32, batch_size=4)
    np.testing.assert_allclose(np.asarray(probs[:, 0]), direct, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-4)


def test_progress_tta_and_cancel(trained, image):
    gen = iter_segment(
        trained, image[:200, :200], tile_size=128, overlap=32, batch_size=1, tta=True
    )
    first = [next(gen) for _ in range(3)]
    assert [p.done for p in first] == [0, 1, 2] and first[0].total == 4
    gen.close()  # a worker's quit() stops the generator between tiles
    result = segment(trained, image[:200, :200], tile_size=128, overlap=32, tta=True)
    assert result.labels.shape == (200, 200) and result.classes[1] == "interior"
    # The flipped predictions are flipped back before they are averaged: TTA only
    # smooths the plain prediction, it does not mirror parts of it.
    plain = segment(trained, image[:200, :200], tile_size=128, overlap=32)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1, atol=1e-4)
    diff = np.abs(result.probabilities - plain.probabilities)
    assert diff.mean() < 0.08, diff.mean()  # measured: 0.035; not flipped back: 0.23


def test_tta_flips_predictions_back_before_averaging(unet_checkpoint):
    """Without it, TTA could average predictions of flipped tiles without flipping them
    back, mirroring half of what the network sees."""
    from napari_cytomask.models.inference import predict_tiles

    predictor = UNetPredictor.from_checkpoint(unet_checkpoint(tile_size=64, seed=3), "cpu")
    rng = np.random.default_rng(0)
    tiles = rng.random((2, 1, 64, 64)).astype(np.float32)
    tiles[:, :, :, :20] += 2  # bright on the left: not symmetric under any flip
    tta = predict_tiles(predictor, tiles, tta=True)
    assert tta.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(tta.sum(axis=1), 1, atol=1e-5)
    # Averaging over all four flips, each undone, commutes with flipping the input.
    for dims in ((-1,), (-2,), (-2, -1)):
        mirrored = predict_tiles(predictor, np.flip(tiles, dims).copy(), tta=True)
        np.testing.assert_allclose(mirrored, np.flip(tta, dims), atol=2e-5)


def test_batch_size_defaults_to_8_on_a_gpu_and_1_on_the_cpu():
    """Without it, the CPU and GPU defaults could be swapped (8 tiles per pass on the CPU
    multiplies memory for no speed)."""
    from napari_cytomask.models.inference import batch_for

    assert batch_for(torch.device("cpu")) == 1
    assert batch_for(torch.device("cuda")) == 8
    assert batch_for(torch.device("cuda", 0)) == 8
    assert batch_for(torch.device("cpu"), 3) == 3
    assert batch_for(torch.device("cuda"), 3) == 3


def test_small_images_and_cache(trained, tmp_path):
    tiny = np.random.default_rng(0).random((37, 50)).astype(np.float32)
    probs = predict(trained, tiny)
    assert probs.shape == (3, 37, 50) and np.isfinite(probs).all()
    with pytest.raises(ValueError, match="expects 1 input channel"):
        predict(trained, [tiny, tiny])


def test_predictor_cache_reuses_loaded_models(trained, tmp_path):
    from napari_cytomask.models.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "m.safetensors", trained.model, trained.description)
    cache = PredictorCache()
    assert cache.get(path, "cpu") is cache.get(path, "cpu")


class _Stored:
    """An array on disk as zarr presents it: every index reads a copy. Records the largest read."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.largest = 0

    def __getitem__(self, key):
        part = np.array(self.array[key])
        self.largest = max(self.largest, part.size)
        return part


def test_stored_probabilities_are_read_one_window_at_a_time(shared_data):
    """A large image's probabilities live in a store; the watershed must not load a whole
    class plane (at 20,000² that is 1.5 GiB per class)."""
    from skimage import io

    from napari_cytomask.models.inference import probabilities_to_instances
    from napari_cytomask.postprocess import instances_to_interior_boundary
    from napari_cytomask.progress import drain

    truth = io.imread(shared_data / "usiigaci-phc" / "set3" / "instances_ids.png")
    classes = instances_to_interior_boundary(truth)
    probs = np.stack([(classes == k).astype(np.float32) for k in range(3)])
    stored = _Stored(probs)
    kwargs = {"chunk_size": 256, "overlap": 64}
    labels = drain(probabilities_to_instances(stored, "interior_boundary", **kwargs))
    assert stored.largest <= (256 + 2 * 64) ** 2  # one window of one class
    in_memory = drain(probabilities_to_instances(probs, "interior_boundary", **kwargs))
    np.testing.assert_array_equal(labels, in_memory)
    assert labels.max() > 50


def test_pixels_that_are_not_numbers_leave_the_rest_of_the_image_alone(trained, image):
    clean = segment(trained, image.astype(np.float32), tile_size=128, overlap=32)
    spoilt = image.astype(np.float32)
    spoilt[:40, :40] = np.nan
    spoilt[300, :] = np.inf
    spoilt[310, :] = -np.inf
    result = segment(trained, spoilt, tile_size=128, overlap=32)
    assert np.isfinite(result.probabilities).all()
    # Away from the spoilt pixels the probabilities are the clean image's, up to the small
    # shift of the percentile range that leaving the spoilt pixels out brings.
    away = np.s_[:, 100:280, 100:280]
    assert np.abs(result.probabilities[away] - clean.probabilities[away]).mean() < 0.005
    assert int(result.labels.max()) > 0.8 * int(clean.labels.max())


def test_predictor_cache_keeps_the_two_latest_models(unet_checkpoint):
    """Without it, the cache could keep every model it loads, or evict the wrong one."""
    first, second, third = (unet_checkpoint(tile_size=64, seed=s) for s in (11, 12, 13))
    cache = PredictorCache()
    a = cache.get(first, "cpu")
    b = cache.get(second, "cpu")
    assert cache.get(first, "cpu") is a and cache.get(second, "cpu") is b
    c = cache.get(third, "cpu")  # a third model evicts the one loaded first
    assert cache.get(third, "cpu") is c and cache.get(second, "cpu") is b
    again = cache.get(first, "cpu")
    assert again is not a and again is not b and again is not c
    assert cache.get(third, "cpu") is c  # the second was loaded before the third: it went
    assert cache.get(second, "cpu") is not b


def test_images_that_are_not_arrays_and_colour_pictures(trained, image):
    """From Python, a list or a PIL image stopped with "'list' object has no attribute
    'shape'", and an RGB picture was segmented as a stack of 3-pixel-wide images; then it
    was refused, though the dock and `cytomask segment` segment one (now on its grey
    version, as they do)."""
    from PIL import Image

    from napari_cytomask.postprocess import run_watershed

    predictor = trained
    grey = np.random.default_rng(1).integers(0, 255, (40, 48)).astype(np.uint8)
    expected = segment(predictor, grey).labels
    for same in (grey.tolist(), Image.fromarray(grey)):
        np.testing.assert_array_equal(segment(predictor, same).labels, expected)
    cells = (grey > 128).astype(np.uint8)
    np.testing.assert_array_equal(
        run_watershed("split", cells.tolist()), run_watershed("split", cells)
    )
    # A bluish picture: its grey version (luminance), not its red alone, in memory or lazy.
    bright = (image - image.min()) / np.ptp(image) * 255
    colour = np.stack([bright * 0.06, bright * 0.6, bright], axis=-1).astype(np.uint8)
    luminance = colour.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    expected = predict(predictor, luminance)
    assert not np.allclose(predict(predictor, colour[..., 0]), expected, atol=1e-3)
    for picture in (colour, da.from_array(colour, chunks=(100, 100, 3))):
        np.testing.assert_allclose(predict(predictor, picture), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(40, 48, 3\): a colour \(RGB\) picture.*mean"):
        segment(predictor, [np.stack([grey] * 3, axis=-1)] * 2)  # two, as two channels
    with pytest.raises(ValueError, match="colour"):
        run_watershed("split", np.stack([cells] * 3, axis=-1))


def test_an_image_smaller_than_a_tile_is_padded_on_both_sides_alike(trained):
    """Only its bottom and right edges were padded: cells at the edges of a small image
    changed with the way it faced (flipped, up to 0.87 in probability on a real image)."""
    multiple = trained.config.size_multiple
    height, width = 3 * multiple - 4, 4 * multiple - 6  # padded by 4 and 6: even
    image = np.random.default_rng(3).random((height, width)).astype(np.float32)
    probs = predict(trained, image, tta=True)
    for axis in (0, 1):
        flipped = predict(trained, np.ascontiguousarray(np.flip(image, axis)), tta=True)
        np.testing.assert_allclose(np.flip(flipped, axis + 1), probs, atol=1e-5)


def test_an_image_at_another_pixel_size_is_resampled_for_the_network(trained, image):
    """The network sees an image at twice its training magnification at its own pixel
    size (zoom 0.5); the probabilities and cells keep the image's pixels."""
    from skimage.transform import rescale

    larger = rescale(image, 2, order=1, preserve_range=True).astype(np.float32)
    kwargs = {"tile_size": 128, "overlap": 32, "batch_size": 4}
    own = segment(trained, image, **kwargs)
    seen = []
    hook = trained.model.register_forward_pre_hook(
        lambda _, x: seen.extend(x[0].shape[-2:] for _ in x[0])
    )
    try:
        zoomed = segment(trained, larger, zoom=(0.5, 0.5), **kwargs)
    finally:
        hook.remove()
    # Network tiles of 128 px, each 256 px of the image, as many as for the image at 1x.
    assert set(seen) == {(128, 128)}
    assert len(seen) == len(tile_starts(320, 128, 32)) ** 2
    assert zoomed.probabilities.shape == (3, 640, 640) and zoomed.labels.shape == (640, 640)
    np.testing.assert_allclose(zoomed.probabilities.sum(axis=0), 1, atol=1e-4)
    # What the network sees at its own pixel size, twice as large.
    upsampled = rescale(own.probabilities, (1, 2, 2), order=1)
    assert np.abs(upsampled - zoomed.probabilities).mean() < 0.05  # measured: 0.03
    truth = make_tilescan(n_tiles=1, shape=(320, 320), cell_radius=12, seed=5).labels[0]
    truth = rescale(truth, 2, order=0, preserve_range=True, anti_aliasing=False).astype(int)
    assert evaluate(truth, zoomed.labels).matches.f1[0] > 0.85  # measured: 0.94
    # Without resampling, the cells are twice the size the network learnt: it finds none.
    as_is = segment(trained, larger, **kwargs)
    assert evaluate(truth, as_is.labels).matches.f1[0] < 0.3  # measured: 0
    # No zoom and a zoom of 1 are the same prediction.
    np.testing.assert_array_equal(predict(trained, image, zoom=(1.0, 1.0), **kwargs),
                                  own.probabilities)  # fmt: skip


def test_progress_says_when_an_image_is_enlarged_for_the_network(trained, image):
    """An image of 3.5 µm pixels, resampled for a model of 0.87 µm pixels, took 23 times as
    long as at its own size, and nothing said why before it ended."""
    from napari_cytomask.models.inference import iter_predict
    from napari_cytomask.progress import drain, progress_text

    def details(zoom):
        events = []
        drain(iter_predict(trained, image[:64, :64], tile_size=64, overlap=16, zoom=zoom),
              events.append)  # fmt: skip
        return {event.detail for event in events}

    assert details(None) == details((1.9, 1.9)) == {""}  # 3.6 times the pixels: not said
    (detail,) = details((2.0, 2.5))
    assert detail == (
        "the image enlarged to 5× its pixels for the model's pixel size: 5 times as long"
    )
    assert progress_text("predict", 3, 40, 90, detail) == (
        f"Predicting tiles ({detail}): 3 of 40; about 2 min left"
    )


def test_a_zoom_is_one_number_or_a_pair_of_positive_ones(trained, image):
    """A script's zoom of 0.5 failed with "cannot unpack non-iterable float object", and
    one of 0 with a division by zero."""
    crop = image[:64, :64]
    np.testing.assert_array_equal(
        segment(trained, crop, zoom=0.5).labels, segment(trained, crop, zoom=(0.5, 0.5)).labels
    )
    for zoom in (0, (0.5, -1), "half"):
        with pytest.raises(ValueError, match="zoom must be the factor the image is resampled"):
            segment(trained, crop, zoom=zoom)


def test_the_minimum_cell_size_is_in_the_networks_pixels(trained, image):
    from skimage.transform import rescale

    assert image_area(100, (0.5, 0.5)) == 400 and image_area(100, None) == 100
    larger = rescale(image, 2, order=1, preserve_range=True).astype(np.float32)
    kwargs = {"tile_size": 128, "zoom": (0.5, 0.5)}
    every = np.bincount(segment(trained, larger, **kwargs).labels.ravel())[1:]
    kept = np.bincount(segment(trained, larger, **kwargs, cleanup={"min_area": 300}).labels.ravel())
    # 300 network pixels are 1200 of the image's: exactly the cells under that are dropped.
    assert every.min() < 1200 and kept[1:].min() >= 1200
    assert np.array_equal(np.sort(kept[1:]), np.sort(every[every >= 1200]))


def _disks(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centres, 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = i
    return labels


def test_windows_overlap_by_the_networks_pixels_at_a_high_magnification(same_partition):
    """At a 60x objective (0.109 µm pixels: the starter model's cells 8 times as wide), a
    stitched scan's cells were cut in two where two watershed windows met, whose overlap was
    counted in the image's pixels (17 cells found for 15 on a 4096² field)."""
    from scipy import ndimage as ndi

    from napari_cytomask.models.inference import probabilities_to_instances
    from napari_cytomask.progress import drain

    cells = _disks((240, 360), [(60, 60), (60, 180), (60, 300), (180, 120), (180, 240)], 56)
    inner = ndi.binary_erosion(cells > 0, iterations=6) & (cells > 0)
    probs = np.stack([cells == 0, inner, (cells > 0) & ~inner]).astype(np.float32)

    def found(**kwargs):
        gen = probabilities_to_instances(probs, "interior_boundary", **kwargs)
        return drain(gen)

    whole = found(chunk_size=None)
    assert whole.max() == 5
    windows = {"chunk_size": 64, "overlap": 16}  # 16 of the network's pixels: 128 here
    assert found(**windows).max() > 5  # the overlap as the image's pixels: cells cut
    assert same_partition(found(**windows, zoom=(0.125, 0.125)), whole)


def test_the_default_least_cell_is_in_the_networks_pixels():
    """Without a clean-up given, the default least area (16 px) stayed 16 of the image's
    pixels at 4 times the magnification, where a given one was scaled to 256."""
    from napari_cytomask.models.inference import probabilities_to_instances
    from napari_cytomask.progress import drain

    cells = _disks((64, 64), [(20, 20), (45, 45)], 3)  # 25 px each: 1.6 of the network's
    cells[cells == 2] = 0
    cells[40:60, 40:60] = 2  # 400 px: 25 of the network's
    probs = np.stack([cells == 0, cells > 0]).astype(np.float32)

    def kept(cleanup):
        gen = probabilities_to_instances(probs, "foreground", cleanup=cleanup, zoom=(0.25, 0.25))
        return int(drain(gen).max())

    assert kept(None) == kept({"fill": True}) == kept({"min_area": 16}) == 1
    # Radii and distances stay whole pixels, one at least, and h any depth: an opening of
    # 1.0 at half the magnification became 0.5 and erased every cell; h=1 at a third, 0.
    for params, cleanup, zoom in (
        ({}, {"opening_radius": 1.0}, (2.0, 2.0)),
        ({"h": 1}, None, (3.0, 3.0)),
        ({"markers": "peaks", "min_distance": 1}, None, (3.0, 3.0)),
    ):
        gen = probabilities_to_instances(probs, "foreground", params=params, cleanup=cleanup,
                                         zoom=zoom)  # fmt: skip
        assert drain(gen).max() == 2


def test_a_foreground_maps_seeds_are_as_deep_in_the_networks_pixels():
    """A foreground network's seeds (h-maxima of the distance to the background, h in
    pixels) are counted in the network's pixels: the same cells at 2, 4 and 8 times the
    magnification were split into 19, 22 and 26 cells for 13."""
    from scipy import ndimage as ndi
    from skimage.transform import rescale

    from napari_cytomask.models.inference import probabilities_to_instances
    from napari_cytomask.progress import drain

    field = ndi.gaussian_filter(np.random.default_rng(0).random((96, 96)), 4)
    cells = (field > np.percentile(field, 55)).astype(np.float32)

    def count(k, zoom):
        larger = rescale(cells, k, order=0)
        gen = probabilities_to_instances(
            np.stack([1 - larger, larger]), "foreground", chunk_size=None, zoom=zoom
        )
        return int(drain(gen).max())

    native = count(1, None)
    assert native > 5
    assert count(4, None) > native + 5  # h of 2 of the image's pixels
    # The same cells at each magnification (one more than at the network's own pixels, whose
    # outlines are coarser).
    enlarged = [count(k, (1 / k, 1 / k)) for k in (2, 4, 8)]
    assert len(set(enlarged)) == 1 and abs(enlarged[0] - native) <= 1


def test_post_processing_settings_are_checked_before_predicting(trained, image, monkeypatch):
    """A script's unknown entry was refused in Python's words after the image was predicted
    ("interior_boundary_to_instances() got an unexpected keyword argument"), and a threshold
    of 2 or a minimum size of -5 was taken without a word."""
    from napari_cytomask.models import inference

    def predicted(*args, **kwargs):
        raise AssertionError("predicted before the settings were checked")
        yield

    monkeypatch.setattr(inference, "iter_predict", predicted)
    for kwargs, message in (
        ({"postprocess": {"bogus": 1}},
         r"^unknown 'postprocess' entries \['bogus'\]; known are \['compactness', "),
        ({"postprocess": {"interior_threshold": 2}},
         r"^postprocess: 'interior_threshold' is 2; it must be from 0 to 1\.$"),
        ({"cleanup": {"min_area": -5}}, r"^cleanup: 'min_area' is -5; it must be 0 or more\.$"),
        ({"cleanup": {"min_aera": 5}}, r"^unknown 'cleanup' entries \['min_aera'\]"),
        # Said as what they are: a text "is '0.5'; it must be from 0 to 1", a text size in
        # Python's words; a negative seed size taken.
        ({"postprocess": {"interior_threshold": "0.5"}},
         r"^postprocess: 'interior_threshold' is '0.5', not a number\.$"),
        ({"cleanup": {"min_area": "5"}}, r"^cleanup: 'min_area' is '5', not a number\.$"),
        ({"postprocess": {"min_marker_size": -3}},
         r"^postprocess: 'min_marker_size' is -3; it must be 0 or more\.$"),
        # A radius of 1.5 was refused in NumPy's words ("slice indices must be integers").
        ({"cleanup": {"closing_radius": 1.5}},
         r"^cleanup: 'closing_radius' is 1\.5; it must be a whole number\.$"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            segment(trained, image[:64, :64], **kwargs)
    # Areas are counted, any number works; radii and distances take whole numbers, written
    # 2.0 too (a preset edited by hand).
    monkeypatch.undo()
    fine = {"min_area": 10.5, "opening_radius": np.int64(1), "closing_radius": 2.0}
    assert segment(trained, image[:64, :64], cleanup=fine).labels.shape == (64, 64)
