"""The cached SAM2 engine against sam2's own SAM2AutomaticMaskGenerator.

A randomly initialised SAM2.1 hiera-tiny (seeded) at a 64-pixel input keeps
every run to about a second on a CPU. The hypernetwork output is scaled up so
the random mask logits spread beyond the stability offset, which gives the
candidates different stability scores, areas and predicted IoUs to filter on.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

from napari_cytomask.models.sam2_engine import (
    LabelParams,
    Sam2Engine,
    Sam2Params,
    _decode,
    batch_rle_counts,
    changed_params,
    compress_masks,
)
from napari_cytomask.models.sam2_models import build_sam2_model
from napari_cytomask.rle import rle_counts, rle_to_mask

SIZE = 64
LOW = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "points_per_side": 6}


def small_model():
    model = build_sam2_model("configs/sam2.1/sam2.1_hiera_t.yaml", image_size=SIZE, seed=0)
    with torch.no_grad():
        for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(30.0)
    return model


def blobs(height=48, width=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    img = np.full((height, width, 3), 30, np.uint8)
    for _ in range(8):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(5, 15)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(60, 255, 3)
    return img


def stock(model, image, params: Sam2Params):
    gen = SAM2AutomaticMaskGenerator(model, **params.generator_kwargs())
    size = model.image_size
    # sam2's predictor hard-codes the feature sizes of a 1024 input.
    gen.predictor._bb_feat_sizes = [(size // 4,) * 2, (size // 8,) * 2, (size // 16,) * 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gen.generate(image)


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"])
        assert a["area"] == b["area"]
        assert a["bbox"] == b["bbox"]
        assert a["point_coords"] == b["point_coords"]
        assert a["crop_box"] == b["crop_box"]
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], abs=1e-6)
        assert a["stability_score"] == pytest.approx(b["stability_score"], abs=1e-6)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny tensors: OpenMP threads only wait on each other, badly so on shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def image():
    return blobs()


@pytest.fixture(scope="module")
def engine(model):
    return Sam2Engine(model)


def quiet(func, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args)


@pytest.mark.parametrize(
    "kwargs",
    [
        LOW,
        {**LOW, "box_nms_thresh": 1.0},
        {
            "points_per_side": 6,
            "pred_iou_thresh": 0.5,
            "stability_score_thresh": 0.6,
            "box_nms_thresh": 1.0,
        },
        {**LOW, "min_mask_region_area": 20, "box_nms_thresh": 1.0},
        {**LOW, "use_m2m": True, "box_nms_thresh": 1.0},
        {
            **LOW,
            "multimask_output": False,
            "box_nms_thresh": 1.0,
            "output_mode": "uncompressed_rle",
        },
        {**LOW, "crop_n_layers": 1, "box_nms_thresh": 0.9, "crop_n_points_downscale_factor": 2},
        {**LOW, "box_nms_thresh": 1.0, "output_mode": "coco_rle"},
    ],
    ids=["low", "no-nms", "thresholds", "min-region", "m2m", "single-rle", "crops", "coco-rle"],
)
def test_engine_equals_the_stock_generator(model, image, engine, kwargs):
    params = Sam2Params(**kwargs)
    theirs = stock(model, image, params)
    ours = quiet(engine.generate, image, params)
    if params.output_mode == "uncompressed_rle":
        ours = [
            {
                **m,
                "segmentation": rle_to_mask(
                    np.array(m["segmentation"]["counts"]), m["segmentation"]["size"]
                ),
            }
            for m in ours
        ]
        theirs = [
            {
                **m,
                "segmentation": rle_to_mask(
                    np.array(m["segmentation"]["counts"]), m["segmentation"]["size"]
                ),
            }
            for m in theirs
        ]
    assert len(theirs) > 0
    assert_same(ours, theirs)


def test_filters_reuse_candidates_and_decoder_changes_reuse_features(model, image):
    calls = []
    forward = model.image_encoder.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    engine = Sam2Engine(model)
    first = Sam2Params(**LOW, box_nms_thresh=1.0)
    quiet(engine.generate, image, first)
    all_candidates = quiet(engine.generate, image, first)
    assert len(all_candidates) == 6 * 6 * 3
    ious = np.array([m["predicted_iou"] for m in all_candidates])
    stab = np.array([m["stability_score"] for m in all_candidates])
    model.image_encoder.forward = counting
    try:
        refiltered = Sam2Params(
            points_per_side=6,
            pred_iou_thresh=float(np.median(ious)),
            stability_score_thresh=float(np.median(stab)),
            box_nms_thresh=0.95,
        )
        assert changed_params(first, refiltered) == "filter"
        ours = quiet(engine.generate, image, refiltered)
        assert calls == [] and engine.runs == {"encoder": 1, "decoder": 1, "points": 36}
        redecoded = Sam2Params(
            points_per_side=5,
            pred_iou_thresh=0.0,
            stability_score_thresh=0.0,
            stability_score_offset=0.5,
            box_nms_thresh=1.0,
        )
        assert changed_params(refiltered, redecoded) == "decoder"
        ours_decoded = quiet(engine.generate, image, redecoded)
        assert calls == [] and engine.runs == {"encoder": 1, "decoder": 2, "points": 36 + 25}
    finally:
        model.image_encoder.forward = forward
    assert 0 < len(ours) < len(all_candidates)
    assert_same(ours, stock(model, image, refiltered))
    assert_same(ours_decoded, stock(model, image, redecoded))


def test_rle_counts_match_sam2():
    from sam2.utils.amg import mask_to_rle_pytorch

    rng = np.random.default_rng(1)
    masks = torch.as_tensor(rng.random((5, 7, 9)) > 0.5)
    masks[0] = True
    masks[1] = False
    ours = batch_rle_counts(masks)
    theirs = mask_to_rle_pytorch(masks)
    assert [c.tolist() for c in ours] == [r["counts"] for r in theirs]
    for counts, mask in zip(ours, masks, strict=True):
        assert rle_counts(mask.numpy()).tolist() == counts.tolist()  # the numpy encoder
        assert np.array_equal(rle_to_mask(counts, (7, 9)), mask.numpy())
    compact = torch.zeros(3, 40, 50, dtype=bool)
    compact[1, 5:20, 10:30] = True
    both = torch.cat(
        [masks.new_zeros(0, 40, 50), compact, torch.as_tensor(rng.random((2, 40, 50)) > 0.5)]
    )
    items = compress_masks(both)
    assert [item.dtype for item in items] == [np.int32] * 3 + [np.uint8] * 2  # smaller wins
    for item, mask in zip(items, both, strict=True):
        assert np.array_equal(_decode(item, (40, 50)), mask.numpy())


def test_segment_gives_labels_with_features(engine):
    gray = blobs()[..., 1].astype(np.uint16) * 200
    stack = np.stack([gray, gray[::-1]])
    result = quiet(
        engine.segment,
        stack,
        Sam2Params(**LOW, box_nms_thresh=1.0),
        LabelParams(max_area_fraction=1.0, order="score"),
    )
    assert result.labels.shape == stack.shape
    ids = np.unique(result.labels[result.labels > 0])
    assert np.array_equal(np.sort(result.features["index"]), ids)
    assert set(result.features["position"]) <= {0, 1}
    for key in ("predicted_iou", "stability_score", "area", "mask_area"):
        assert len(result.features[key]) == len(ids)
    areas = np.bincount(result.labels.ravel())[result.features["index"]]
    assert np.array_equal(areas, result.features["area"])


def out_of_memory_when(engine, monkeypatch, fails) -> list[int]:
    """Make ``engine``'s decoder batches raise CUDA out-of-memory where ``fails(sizes)``
    (the sizes of every batch so far, this one last); returns those sizes."""
    decode = engine._decode_batch
    sizes = []

    def decode_or_fail(feats, points, *args):
        sizes.append(len(points))
        if fails(sizes):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return decode(feats, points, *args)

    monkeypatch.setattr(engine, "_decode_batch", decode_or_fail)
    return sizes


def test_out_of_memory_halves_the_batch_and_keeps_the_masks(model, image, monkeypatch):
    engine = Sam2Engine(model)
    sizes = out_of_memory_when(engine, monkeypatch, lambda sizes: sizes[-1] > 16)
    params = Sam2Params(**LOW, box_nms_thresh=1.0)
    ours = quiet(engine.generate, image, params)
    # 64 planned: the 36 points fail, then the first batch of 32, then batches of 16 fit.
    assert sizes[:4] == [36, 32, 16, 16] and engine.fitted_batch == {None: 16}
    assert_same(ours, quiet(Sam2Engine(model).generate, image, params))


def test_a_batch_set_by_hand_that_ran_out_of_memory_is_halved_once(model, image, monkeypatch):
    """A Points per batch set by hand started every crop, tile and slider move at that
    size again: each ran out of memory, then halved. A CUDA library's allocation failure
    (a nearly full GPU) is memory running out too."""
    engine = Sam2Engine(model)
    decode, sizes = engine._decode_batch, []

    def decode_or_fail(feats, points, *args):
        sizes.append(len(points))
        if len(points) > 16:
            failing("CUBLAS_STATUS_ALLOC_FAILED")()
        return decode(feats, points, *args)

    monkeypatch.setattr(engine, "_decode_batch", decode_or_fail)
    params = Sam2Params(**{**LOW, "points_per_side": 6}, points_per_batch=32)
    quiet(engine.generate, image, params)
    assert sizes == [32, 16, 16, 4] and engine.fitted_batch == {32: 16}
    sizes.clear()
    quiet(engine.generate, np.ascontiguousarray(image[::-1]), params)  # another image
    assert sizes == [16, 16, 4]  # started at the size that fitted
    monkeypatch.setattr(engine, "_decode_batch", failing("CUBLAS_STATUS_EXECUTION_FAILED"))
    with pytest.raises(RuntimeError, match="EXECUTION_FAILED"):  # not memory: said as it is
        quiet(engine.generate, np.ascontiguousarray(image[:, ::-1]), params)
    assert engine.fitted_batch == {32: 16}


def failing(status: str):
    """A decoder that fails as CUDA's libraries say ``status``."""

    def decode(*args):
        raise RuntimeError(f"CUDA error: {status} when calling `cublasCreate(handle)`")

    return decode


def test_decoder_progress_never_goes_back_after_running_out_of_memory(
    model, image, monkeypatch, collect
):
    engine = Sam2Engine(model)
    # The first batch of 64 fails, and the second of 32.
    calls = out_of_memory_when(engine, monkeypatch, lambda sizes: len(sizes) in (1, 3))
    params = Sam2Params(**{**LOW, "points_per_side": 9})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events, _ = collect(engine.generate_iter(image, params))
    # 81 points in 64 + 17; then 32 + 32 + 17, of which the second batch fails: the 32
    # points decoded in a batch of 32 are decoded again in batches of 16.
    assert calls[:4] == [64, 32, 32, 16] and engine.fitted_batch == {None: 16}
    done = [d for stage, d, total in events if stage == "decoder"]
    assert done == sorted(done) and done[-1] == 81 and 32 in done


def test_equivalence_reads_masks_through_partial_windows(model, image, monkeypatch):
    """The equivalence tests above exercise the windowed path, not only whole frames."""
    from napari_cytomask.models import sam2_engine

    seen = []
    windows = sam2_engine._windows

    def spy(low, floor, out_hw):
        out = windows(low, floor, out_hw)
        seen.append((out[:, 1] - out[:, 0]) * (out[:, 3] - out[:, 2]) / (out_hw[0] * out_hw[1]))
        return out

    monkeypatch.setattr(sam2_engine, "_windows", spy)
    # The random logits spread over about ±7: a higher threshold leaves background to skip.
    params = Sam2Params(**LOW, box_nms_thresh=1.0, mask_threshold=6.0)
    assert_same(quiet(Sam2Engine(model).generate, image, params), stock(model, image, params))
    fractions = np.concatenate(seen)
    assert len(fractions) == 6 * 6 * 3 and (fractions < 1).mean() > 0.3


@pytest.mark.parametrize("batch", [3, 8])
def test_points_per_side_change_decodes_only_new_points(model, image, batch):
    """A grid of 3n points per side holds the grid of n: only the new points are decoded."""
    engine = Sam2Engine(model)
    coarse = Sam2Params(**{**LOW, "points_per_side": 3}, points_per_batch=batch, box_nms_thresh=1.0)
    fine = replace(coarse, points_per_side=9)
    assert_same(quiet(engine.generate, image, coarse), stock(model, image, coarse))
    before = engine.runs["points"]
    ours = quiet(engine.generate, image, fine)
    assert engine.runs["encoder"] == 1
    assert engine.runs["points"] - before < 9 * 9
    assert_same(ours, stock(model, image, fine))
    # Back to the coarse grid: every point is known, nothing is decoded.
    assert_same(quiet(Sam2Engine.generate, engine, image, coarse), stock(model, image, coarse))


def test_decoder_progress_counts_points_batch_by_batch(model, image, collect):
    """The dock's bar moves with every decoder batch, in points of the whole grid."""
    engine = Sam2Engine(model)
    coarse = Sam2Params(**{**LOW, "points_per_side": 3}, points_per_batch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events, _ = collect(engine.generate_iter(image, coarse))
        assert events == [
            ("encoder", 0, 9),
            ("decoder", 0, 9),
            ("decoder", 4, 9),
            ("decoder", 8, 9),
            ("decoder", 9, 9),
            ("decoder", 9, 9),  # the crop is done
        ]
        # The grid of 9 holds the grid of 3: its points count as done from the start, but
        # the one sam2 decoded in a batch of 1 is decoded again in a batch of 4.
        events, _ = collect(engine.generate_iter(image, replace(coarse, points_per_side=9)))
    decoded = [done for stage, done, total in events if stage == "decoder"]
    assert all(total == 81 for _, _, total in events)
    assert decoded[0] == 8 and decoded == sorted(decoded) and decoded[-1] == 81
    assert len(decoded) > 10
    # A filter moved decodes nothing, and says nothing is decoded.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events, _ = collect(engine.generate_iter(image, replace(coarse, pred_iou_thresh=0.5)))
    assert events == []


def test_progress_keeps_one_scale_and_goes_only_forward(model, image, collect):
    """The encoder counted crops and the decoder points: with a crop layer of fewer points
    per crop, the dock's bar went from 50 % back to 20 %, its maximum from 32 to 5."""
    params = Sam2Params(
        **{**LOW, "points_per_side": 4},
        crop_n_layers=1,
        crop_n_points_downscale_factor=2,
        points_per_batch=8,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events, _ = collect(Sam2Engine(model).generate_iter(image, params))
    assert [stage for stage, *_ in events].count("encoder") == 5  # the image and 4 crops
    assert {total for *_, total in events} == {16 + 4 * 4}
    done = [done for _, done, _ in events]
    assert done == sorted(done) and done[-1] == 32


def test_engine_equals_the_stock_generator_on_real_images(model, shared_data):
    import tifffile

    from napari_cytomask.models.sam2_engine import to_uint8_rgb

    for name, kwargs in [
        ("set1", {**LOW, "box_nms_thresh": 1.0}),
        ("set7", {**LOW, "points_per_side": 5, "stability_score_offset": 0.5}),
        ("set12", {**LOW, "mask_threshold": 1.0, "use_m2m": True, "box_nms_thresh": 0.9}),
    ]:
        raw = tifffile.imread(shared_data / "usiigaci-phc" / name / "raw.tif")
        image = to_uint8_rgb(raw[300:380, 400:500])
        params = Sam2Params(**kwargs)
        theirs = stock(model, image, params)
        assert len(theirs) > 0
        assert_same(quiet(Sam2Engine(model).generate, image, params), theirs)


def test_a_run_stopped_midway_leaves_its_decoded_points_to_the_next(model, image):
    """A slider moved (or Cancel) halfway through the decoder threw its points away: the
    next run decoded the whole grid again, minutes on a CPU."""
    engine = Sam2Engine(model)
    params = Sam2Params(**{**LOW, "points_per_side": 4}, points_per_batch=4, box_nms_thresh=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = engine.generate_iter(image, params)
        for stage, done, _ in run:
            if stage == "decoder" and done == 8:  # two batches of four decoded
                break
        run.close()  # as a thread worker stops a generator
        # The points kept count against the cache's size, not as nothing.
        assert sum(engine.prompts._sizes.values()) > 0
        before = engine.runs["points"]
        ours = quiet(engine.generate, image, replace(params, pred_iou_thresh=0.01))
    assert engine.runs["points"] - before == 16 - 8
    assert_same(ours, stock(model, image, replace(params, pred_iou_thresh=0.01)))


def test_iou_threshold_compares_in_the_decoders_dtype():
    """Under bf16 autocast sam2 compares bf16 scores with the threshold rounded to bf16
    (0.8 becomes 0.80078125): a score of exactly that is dropped, as sam2 drops it."""
    from napari_cytomask.models.sam2_engine import _Candidates, _filter

    iou = torch.tensor([0.80078125, 0.8515625], dtype=torch.bfloat16)
    binary = torch.zeros(2, 20, 20, dtype=torch.bool)
    binary[0, 1:5, 1:5] = binary[1, 10:14, 10:14] = True
    candidates = _Candidates(
        iou_preds=iou,
        stability=torch.ones(2),
        boxes=torch.tensor([[1, 1, 4, 4], [10, 10, 13, 13]]),
        near_edge=torch.zeros(2, dtype=torch.bool),
        points=torch.zeros(2, 2),
        masks=compress_masks(binary),
        areas=np.array([16, 16]),
    )
    params = Sam2Params(pred_iou_thresh=0.8, stability_score_thresh=0.0)
    kept = _filter([([0, 0, 20, 20], candidates)], (20, 20), params)
    assert (iou > 0.8).tolist() == [False, True]  # sam2's own expression
    assert kept.iou_preds.tolist() == [0.8515625]


def test_engine_equals_the_stock_generator_under_bf16_autocast(model, image):
    """The GPU path's precision, on the CPU: with a threshold just below a bf16 score,
    sam2 rounds the threshold to that score and drops the mask; the engine must too."""
    params = Sam2Params(**{**LOW, "box_nms_thresh": 1.0})
    engine = Sam2Engine(model)
    engine.dtype = torch.bfloat16
    first = quiet(engine.generate, image, params)
    scores = sorted({m["predicted_iou"] for m in first})
    score = scores[len(scores) // 2]
    below = float(np.nextafter(np.float32(score), np.float32(0)))
    params = replace(params, pred_iou_thresh=below)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = stock(model, image, params)
    assert len(theirs) > 0 and score not in {m["predicted_iou"] for m in theirs}
    assert_same(quiet(engine.generate, image, params), theirs)


def test_a_gpus_automatic_batch_is_chosen_once_per_crop_size(model, monkeypatch):
    """Decoded points are reused only at the batch size that made them, so the batch must
    not follow free memory as the feature cache fills the GPU."""
    engine = Sam2Engine(model)
    engine.device = torch.device("cuda", 0)
    free = {"bytes": 8 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _: (free["bytes"], 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda _: 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda _: 0)
    # 9 GiB usable: half of it over 3 masks x 4 float32 copies of 1024² = 96 points -> 64.
    assert engine._auto_batch((1024, 1024), True) == 64
    free["bytes"] = 2**28
    assert engine._auto_batch((1024, 1024), True) == 64
    # A new crop size is measured: 1.25 GiB usable over 3 x 4 x 512² x 4 bytes -> 53 -> 32.
    assert engine._auto_batch((512, 512), True) == 32


@pytest.mark.parametrize(
    ("points", "layers", "factor", "said"),
    [(7, 2, 4, "With 7 points per side, 2 crop layer(s) and 4 times fewer points in each "
      "deeper layer, the smallest crops get no point (7 / 16 < 1). Give at least 16 points "
      "per side, fewer crop layers, or a smaller factor of fewer points in crops."),
     (2, 1, 4, "the smallest crops get no point (2 / 4 < 1)"),
     (0, 0, 1, "Points per side (0) and the factor of fewer points in crops (1) must be at "
      "least 1"),
     (8, 1, 0, "must be at least 1, and crop layers (1) 0 or more")],
)  # fmt: skip
def test_crop_layers_without_prompt_points_are_refused_in_words(points, layers, factor, said):
    """sam2 failed with "division by zero" (found by benchmarks/fuzz_dock.py)."""
    with pytest.raises(ValueError, match=re.escape(said)):
        Sam2Params(
            points_per_side=points, crop_n_layers=layers, crop_n_points_downscale_factor=factor
        )
    # The deepest layer with one point per side is sam2's own grid.
    params = Sam2Params(points_per_side=16, crop_n_layers=2, crop_n_points_downscale_factor=4)
    assert [len(g) for g in params.grids()] == [256, 16, 1]


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (3, 3)])
def test_crop_layers_on_an_image_a_few_pixels_across_skip_the_crops_that_hold_no_pixel(
    engine, shape
):
    """Their crops of 0 pixels failed in sam2's resize ("Input and output sizes should be
    greater than 0"; found by benchmarks/fuzz_dock.py on a one-pixel layer)."""
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    params = Sam2Params(points_per_side=4, crop_n_layers=2)
    result = quiet(engine.segment, image, params, LabelParams(tile_size=256, tile_overlap=0))
    assert result.labels.shape == shape


def test_the_model_s_gpu_is_made_current_while_sam2_runs(model, monkeypatch):
    """On a second GPU (cuda:1, a batch worker's), sam2's own CUDA kernels ran on the
    current GPU of the thread, the first, with the second's data."""
    import contextlib
    import warnings

    engine = Sam2Engine(model)
    made_current = []
    monkeypatch.setattr(
        torch.cuda, "device", lambda device: contextlib.nullcontext(made_current.append(device))
    )
    with engine._on_device():  # the CPU: no GPU to choose
        pass
    engine.device = torch.device("cuda", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autocast on a machine without CUDA says so
        with engine._on_device():
            pass
    assert made_current == [torch.device("cuda", 1)]
