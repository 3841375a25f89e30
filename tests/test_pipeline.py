"""Presets and the Segmenter: the same results as the step functions the widgets call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import zarr
from skimage.io import imread

from napari_cytomask.metrics import evaluate
from napari_cytomask.models.checkpoint import CheckpointError
from napari_cytomask.models.inference import UNetPredictor, segment
from napari_cytomask.models.sam2_engine import LabelParams, Sam2Engine, Sam2Params, Sam2Result
from napari_cytomask.pipeline import Preset, PresetError, Sam2Step, Segmenter, UNetStep
from napari_cytomask.postprocess import run_watershed
from napari_cytomask.progress import Progress, drain
from napari_cytomask.synthetic import make_tilescan

SAM2_PARAMS = {"points_per_side": 6, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
               "box_nms_thresh": 1.0}  # fmt: skip
SAM2_LABELS = {"max_area_fraction": 1.0, "min_foreground_fraction": 0.3, "order": "score"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def unet_file(unet_checkpoint):
    return unet_checkpoint(tile_size=64, seed=1)


@pytest.fixture(scope="module")
def sam2_file(small_sam2, tmp_path_factory):
    """Writes a checkpoint of SAM2.1 tiny's weights, or of those ``kept``, each of one stored
    number (small files): ``(name, kept) -> path``."""
    weights = {k: v.new_zeros(1).expand(v.shape) for k, v in small_sam2.state_dict().items()}
    folder = tmp_path_factory.mktemp("sam2")

    def write(name: str, kept=lambda key: True):
        torch.save({"model": {k: v for k, v in weights.items() if kept(k)}}, folder / name)
        return folder / name

    return write


@pytest.fixture(scope="module")
def scan():
    return make_tilescan(n_tiles=2, shape=(96, 96), cell_radius=10, seed=3)


def test_preset_round_trip_through_a_file(tmp_path):
    preset = Preset(
        method="sam2_guided",
        unet=UNetStep(model="m.safetensors", overlap=16, tta=True, min_size=5),
        sam2=Sam2Step(params=dict(SAM2_PARAMS), labels={"percentiles": (2.0, 98.0)}),
        split={"params": {"h": 2.0}, "cleanup": {"min_area": 10}},
        channels=[1],
    )
    path = preset.save(tmp_path / "p.json")
    data = json.loads(path.read_text())
    assert data["format"] == "napari-cytomask-preset" and data["method"] == "sam2_guided"
    loaded = Preset.load(path)
    assert loaded == Preset.from_dict(preset.to_dict())
    assert loaded.sam2.label_params().percentiles == (2.0, 98.0)
    assert loaded.sam2.sam2_params() == Sam2Params(**SAM2_PARAMS)
    with pytest.raises(FileExistsError):
        preset.save(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"method": "unet"}, "not a napari-cytomask preset"),
        ({"format": "napari-cytomask-preset", "version": 99}, "newer than"),
        ({"format": "napari-cytomask-preset", "colour": "red"}, "unknown preset entries"),
        ({"format": "napari-cytomask-preset", "method": "magic"}, "unknown method"),
        (
            {"format": "napari-cytomask-preset", "method": "sam2",
             "sam2": {"params": {"points_per_side": None}}},
            "invalid SAM2 settings",
        ),
        (
            {"format": "napari-cytomask-preset", "method": "unet",
             "unet": {"model": "m", "speed": 3}},
            # Python's words were said: "got an unexpected keyword argument 'speed'".
            r"unknown 'unet' entries \['speed'\]; known are \['batch_size', ",
        ),
        # Hand-edited values of the wrong type are refused with the entry named.
        ({"format": "napari-cytomask-preset", "version": "2"}, "not a whole number"),
        ({"format": "napari-cytomask-preset", "unet": {"model": 5}},
         r"unet: 'model' should be str, not 5"),
        ({"format": "napari-cytomask-preset", "unet": {"tile_size": "abc"}},
         r"'tile_size' should be int or None, not 'abc'"),
        ({"format": "napari-cytomask-preset", "unet": {"tta": 1}}, r"'tta' should be bool"),
        ({"format": "napari-cytomask-preset", "channels": 0}, r"'channels' should be list\[int\]"),
        ({"format": "napari-cytomask-preset", "channels": [0, "1"]}, "'channels' should be"),
        ({"format": "napari-cytomask-preset", "unet": [1]}, "'unet' should hold settings"),
        # Numbers the dock and the command line would not take: refused on reading, not run.
        ({"format": "napari-cytomask-preset", "unet": {"interior_threshold": 5.0}},
         r"unet: 'interior_threshold' is 5.0; it must be from 0 to 1\."),
        ({"format": "napari-cytomask-preset", "unet": {"foreground_threshold": float("nan")}},
         "'foreground_threshold' is nan"),
        ({"format": "napari-cytomask-preset", "unet": {"min_size": -10}},
         "'min_size' is -10; it must be 0 or more"),
        ({"format": "napari-cytomask-preset", "unet": {"batch_size": -3}}, "'batch_size' is -3"),
        ({"format": "napari-cytomask-preset", "unet": {"tile_size": 0}}, "'tile_size' is 0"),
        ({"format": "napari-cytomask-preset", "method": "sam2",
          "sam2": {"params": {"pred_iou_thresh": "high"}}},
         r"sam2: params: 'pred_iou_thresh' should be float, not 'high'"),
        ({"format": "napari-cytomask-preset", "method": "sam2",
          "sam2": {"params": {"points_per_side": 0}}}, "'points_per_side' is 0"),
        ({"format": "napari-cytomask-preset", "method": "sam2",
          "sam2": {"labels": {"max_area_fraction": 2}}}, "'max_area_fraction' is 2"),
        ({"format": "napari-cytomask-preset", "split": {"cleanup": "x"}},
         "split: 'cleanup' should hold settings, not 'x'"),
        ({"format": "napari-cytomask-preset", "split": {"params": {"colour": 1}}},
         r"unknown 'split: params' entries \['colour'\]; known are \['compactness', "),
        ({"format": "napari-cytomask-preset", "split": {"cleanup": {"fil": True}}},
         r"unknown 'split: cleanup' entries \['fil'\]; known are \['closing_radius', "),
        ({"format": "napari-cytomask-preset", "method": "sam2",
          "sam2": {"params": {"points": 8}}},
         r"unknown 'sam2: params' entries \['points'\]; known are \['box_nms_thresh', "),
        ({"format": "napari-cytomask-preset", "method": "sam2",
          "sam2": {"labels": {"area": 8}}}, r"unknown 'sam2: labels' entries \['area'\]"),
        ({"format": "napari-cytomask-preset", "split": {"extra": {}}}, "only 'params' and"),
    ],
)  # fmt: skip
def test_bad_presets_say_what_is_wrong(data, message):
    with pytest.raises(PresetError, match=message):
        Preset.from_dict(data)


def test_settings_built_in_python_are_checked_as_a_files_are(unet_file):
    """A threshold of "0.5" built a preset that failed after seconds to minutes of
    predicting, in numpy's words ("ufunc 'greater' did not contain a loop"); settings given
    as a dict failed with "asdict() should be called on dataclass instances"."""
    for preset, message in (
        (lambda: Preset(unet=UNetStep(interior_threshold="0.5")),
         r"^unet: 'interior_threshold' should be float or None, not '0.5'\.$"),
        (lambda: Preset(unet={"tta": False}),
         r"^'unet' should be a UNetStep, not \{'tta': False\} \(Preset.from_dict reads "),
        (lambda: Preset(method="sam2", sam2=Sam2Step(params={"points_per_side": "32"})),
         "sam2: params: 'points_per_side' should be int or None, not '32'"),
        (lambda: Preset(channels=1), r"^'channels' should be list\[int\] or None, not 1\.$"),
        (lambda: Preset(channels=[-1]), r"^'channels' are numbered from 0, not \[-1\]\.$"),
        # NumPy numbers outside their range, saved into a file that loading refused.
        (lambda: Preset(unet=UNetStep(interior_threshold=np.float32(2))),
         "unet: 'interior_threshold' is 2.0; it must be from 0 to 1"),
        (lambda: Preset(method="sam2", sam2=Sam2Step(params={"pred_iou_thresh": np.float32(1.5)})),
         "sam2: params: 'pred_iou_thresh' is 1.5; it must be from 0 to 1"),
    ):  # fmt: skip
        with pytest.raises(PresetError, match=message):
            preset()
    # What a script gives: a path, NumPy's numbers.
    step = UNetStep(model=unet_file, tile_size=np.int64(128), interior_threshold=np.float32(0.4))
    preset = Preset(unet=step)
    assert Preset.from_dict(json.loads(json.dumps(preset.to_dict()))).unet.model == str(unet_file)
    sam2 = Sam2Step(params={"pred_iou_thresh": np.float32(0.8), "points_per_side": np.int64(8)})
    assert Preset(method="sam2", sam2=sam2, channels=(0,)).sam2.sam2_params().points_per_side == 8


def test_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b"\x00\x01 not json")
    # "Expecting value: line 1 column 1 (char 0)", Python's words.
    message = r"not a JSON preset file \(line 1, column 1: expecting value\); give a preset "
    with pytest.raises(PresetError, match=message):
        Preset.load(path)
    # An image given as the preset: "'utf-8' codec can't decode byte 0xf0" was said.
    path.write_bytes(b"II*\x00\xf0\x9f\xff")
    with pytest.raises(PresetError, match=r"not a JSON preset file: it is no text \(an image"):
        Preset.load(path)
    with pytest.raises(PresetError, match="could not be read: it is a folder"):
        Preset.load(tmp_path)
    with pytest.raises(PresetError, match="could not be read: it does not exist"):
        Preset.load(tmp_path / "missing.json")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX pipes")
def test_a_preset_can_come_through_a_pipe(tmp_path):
    """``--preset <(jq … p.json)`` hands over a pipe, not a regular file."""
    import threading

    pipe = tmp_path / "preset-pipe"
    os.mkfifo(pipe)
    text = json.dumps(Preset(method="unet").to_dict())
    writer = threading.Thread(target=pipe.write_text, args=(text,), daemon=True)
    writer.start()
    assert Preset.load(pipe).method == "unet"
    writer.join()


def test_check_finds_missing_models_before_any_work(tmp_path, unet_file, sam2_file, monkeypatch):
    monkeypatch.setenv("CYTOMASK_UNET_DIR", str(tmp_path))
    Preset(unet=UNetStep(model=str(unet_file), overlap=16)).check()
    # The model's tiles (64 px) cannot overlap by the default 64 px.
    with pytest.raises(PresetError, match="the tiles are 64 px"):
        Preset(unet=UNetStep(model=str(unet_file))).check()
    with pytest.raises(CheckpointError, match="no checkpoint 'gone'.*'starter'"):
        Preset(unet=UNetStep(model="gone")).check()
    (tmp_path / "img2d-fine-tuned-20261201-100023.safetensors").write_bytes(unet_file.read_bytes())
    with pytest.raises(CheckpointError, match=r"\(there: img2d-fine-tuned-20261201-100023\)"):
        Preset(unet=UNetStep(model="img2d-fine-tuned")).check()  # the models there are named
    (tmp_path / "moved.safetensors").symlink_to(tmp_path / "gone.safetensors")
    with pytest.raises(CheckpointError, match=r"\(there: img2d-fine-tuned-20261201-100023\)"):
        Preset(unet=UNetStep(model="moved")).check()  # a link to nothing is offered no more
    with pytest.raises(PresetError, match="neither a known Hugging Face id"):
        Preset(method="sam2", sam2=Sam2Step(model=str(tmp_path / "x.pt"))).check()
    with pytest.raises(PresetError, match="needs its configuration.*sam2.1-hiera-tiny.*--sam2"):
        Preset(method="sam2", sam2=Sam2Step(model=str(sam2_file("x.pt")))).check()


def test_check_refuses_an_unknown_sam2_configuration(sam2_file):
    """A preset's sam2.config 'tiny' failed in every input's task with Hydra's words
    ("Cannot find primary config 'tiny'")."""
    model = str(sam2_file("x.pt"))
    for config in ("facebook/sam2.1-hiera-tiny", "configs/sam2.1/sam2.1_hiera_t.yaml"):
        Preset(method="sam2", sam2=Sam2Step(model=model, config=config)).check()
    with pytest.raises(CheckpointError, match=r"^'tiny' is no SAM2 configuration: give the "):
        Preset(method="sam2", sam2=Sam2Step(model=model, config="tiny")).check()


@pytest.mark.parametrize("config", [None, "facebook/sam2.1-hiera-tiny"])
def test_check_refuses_sam2_weights_that_do_not_load_before_any_input(sam2_file, config):
    """cytomask segment with the image encoder's weights alone and their configuration said
    in every input's task that the file was part of a model, then "all 2 inputs failed … fix
    them"; without a configuration, it was asked for, where the dock tells what the file is.
    Both are said once, before the inputs, as the dock says them; so are a whole model's
    weights given with another model's configuration."""
    encoder = sam2_file("encoder.pt", lambda key: key.startswith("image_encoder."))
    with pytest.raises(CheckpointError) as caught:
        Preset(method="sam2", sam2=Sam2Step(model=str(encoder), config=config)).check()
    assert str(caught.value) == (
        "encoder.pt is part of a SAM2 model (no prompt encoder or mask decoder): pick a whole "
        "checkpoint (sam2.1_hiera_tiny.pt)."
    )
    whole = Sam2Step(model=str(sam2_file("whole.pt")), config="facebook/sam2-hiera-tiny")
    with pytest.raises(CheckpointError, match=r"^whole.pt does not match the configuration "):
        Preset(method="sam2", sam2=whole).check()


@pytest.mark.parametrize("config", [None, "facebook/sam2.1-hiera-tiny"])
def test_check_says_what_a_file_given_as_sam2_weights_is_before_asking_its_configuration(
    tmp_path, unet_file, config
):
    """A U-Net checkpoint or a text file given to SAM2 was said to need its configuration,
    and with one was refused for what it is only when the first image was segmented."""

    def check(model) -> str:
        with pytest.raises(CheckpointError) as caught:
            Preset(method="sam2", sam2=Sam2Step(model=str(model), config=config)).check()
        return str(caught.value)

    # The dock's advice (the U-Net's Model) is the command line's -m here.
    assert check(unet_file) == (
        f"{unet_file.name} is a U-Net checkpoint of napari-cytomask, not SAM2 weights: give it "
        "with -m, for --method unet or sam2_guided."
    )
    (tmp_path / "notes.safetensors").write_text("not a checkpoint")
    assert check(tmp_path / "notes.safetensors").startswith(
        "notes.safetensors could not be read as a PyTorch file of weights"
    )
    (tmp_path / "empty.pt").touch()
    assert check(tmp_path / "empty.pt").startswith("empty.pt is empty (0 bytes)")


def test_unet_method_equals_the_widget_call_and_yields_progress(unet_file, scan, collect):
    step = UNetStep(model=str(unet_file), overlap=16, interior_threshold=0.4, min_size=3)
    segmenter = Segmenter(Preset(unet=step), "cpu")
    gen = segmenter.iter_segment([scan.brightfield])
    events, labels = collect(gen)
    assert events and all(isinstance(e, Progress) for e in events)
    assert {e.stage for e in events} == {"predict", "instances"}
    predictor = UNetPredictor.from_checkpoint(unet_file, "cpu")
    expected = segment(
        predictor,
        scan.brightfield,
        overlap=16,
        postprocess={"interior_threshold": 0.4, "foreground_threshold": 0.5},
        cleanup={"min_area": 3},
    ).labels
    np.testing.assert_array_equal(labels, expected)
    assert segmenter.predictor is segmenter.predictor  # loaded once
    # One array, not in a list: its rows were taken for channels ("128 were given").
    np.testing.assert_array_equal(drain(segmenter.iter_segment(scan.brightfield)), labels)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), (0.5, 0.0), (1, 2, 3), "big"])
def test_a_pixel_size_that_is_no_size_is_refused(bad):
    """0, negative and NaN sizes left the image unresampled, unsaid; a plain number failed
    with "'float' object is not iterable"."""
    segmenter = Segmenter(Preset(unet=UNetStep(tta=False)), "cpu")
    image = np.zeros((64, 64), np.float32)
    with pytest.raises(ValueError, match="pixel_size_um must be a pixel size in µm"):
        drain(segmenter.iter_run([image], pixel_size_um=bad))


def test_one_number_is_a_square_pixel_size():
    segmenter = Segmenter(Preset(unet=UNetStep(tta=False)), "cpu")
    image = np.random.default_rng(0).random((64, 64), np.float32)
    square = drain(segmenter.iter_run([image], pixel_size_um=0.435))
    pair = drain(segmenter.iter_run([image], pixel_size_um=(0.435, 0.435)))
    assert square.zoom == pair.zoom == (0.5, 0.5)
    np.testing.assert_array_equal(square.labels, pair.labels)


def test_chunked_output_equals_in_memory(
    shared_data, unet_file, oracle_unet, class_map_image, tmp_path, same_partition
):
    truth = imread(shared_data / "usiigaci-phc" / "set2" / "instances_ids.png")
    image = class_map_image(truth)
    segmenter = Segmenter(Preset(unet=UNetStep(model=str(unet_file), overlap=32)), "cpu")
    whole = drain(segmenter.iter_segment([image]))
    assert evaluate(truth, whole, [0.5]).matches.f1[0] > 0.8  # the oracle sees the cells
    out = zarr.create_array(tmp_path / "l.zarr", shape=image.shape, chunks=(128, 128), dtype="u4")
    gen = segmenter.iter_segment([image], labels_out=out, scratch=tmp_path, chunk_size=128)
    stages = [p.stage for p in iter(lambda: next(gen, None), None)]
    assert stages.count("instances") == 8 * 8  # 1022 x 1024 in 128-pixel windows
    assert (tmp_path / "probabilities.zarr").is_dir()
    assert same_partition(whole, np.asarray(out))


def test_a_split_of_a_scan_larger_than_memory_writes_into_its_store(
    shared_data, unet_file, oracle_unet, class_map_image, tmp_path, monkeypatch, same_partition
):
    """A preset's split of the U-Net's cells, written to the labels' store, built the whole
    label image in memory first (out=None: 475 MiB peak for an 8192² store, against 294
    with a store), where the store is for scans larger than memory."""
    from napari_cytomask.postprocess import runner

    truth = imread(shared_data / "usiigaci-phc" / "set2" / "instances_ids.png")[:512, :512]
    image = class_map_image(truth)
    split = {"params": {}, "cleanup": {}}
    segmenter = Segmenter(Preset(unet=UNetStep(model=str(unet_file)), split=split), "cpu")
    whole = drain(segmenter.iter_segment([image]))
    outputs = []

    def watershed(method, *inputs, out=None, **kwargs):
        if inputs[0].shape == image.shape:  # not the settings' check on a small image
            outputs.append((method, out))
        return (yield from iter_watershed(method, *inputs, out=out, **kwargs))

    iter_watershed = runner.iter_watershed
    monkeypatch.setattr(runner, "iter_watershed", watershed)
    out = zarr.create_array(tmp_path / "l.zarr", shape=image.shape, chunks=(128, 128), dtype="u4")
    drain(segmenter.iter_segment([image], labels_out=out, scratch=tmp_path, chunk_size=128))
    assert outputs == [("split", out)]
    assert (tmp_path / "cells.zarr").is_dir()  # the U-Net's cells, which the split reads
    assert same_partition(whole, np.asarray(out))
    # The scratch folder of an image before is used again (it failed: ContainsArrayError).
    again = zarr.create_array(tmp_path / "m.zarr", shape=image.shape, chunks=(128, 128), dtype="u4")
    drain(segmenter.iter_segment([image], labels_out=again, scratch=tmp_path, chunk_size=128))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(out))


def test_a_colour_picture_is_segmented_on_its_grey_version(
    unet_file, scan, tmp_path, same_partition
):
    """As the dock and `cytomask segment` do: the Segmenter refused a colour picture, which
    they segmented on its red alone. Lazy pictures stay lazy; large ones keep their
    probabilities on disk, without the colour axis."""
    import dask.array as da

    light = scan.brightfield / scan.brightfield.max()
    picture = np.round(np.stack([light * 0.06, light * 0.6, light], -1) * 255).astype(np.uint8)
    grey = picture.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    step = UNetStep(model=str(unet_file), overlap=32, tta=False)
    segmenter = Segmenter(Preset(unet=step), "cpu")
    expected = drain(segmenter.iter_segment([grey]))
    assert expected.any()
    np.testing.assert_array_equal(drain(segmenter.iter_segment(picture)), expected)
    lazy = da.from_array(picture, chunks=(1, 48, 48, 3))
    out = zarr.create_array(tmp_path / "l.zarr", shape=grey.shape, chunks=(1, 48, 48), dtype="u4")
    drain(segmenter.iter_segment([lazy], labels_out=out, scratch=tmp_path, chunk_size=48))
    assert same_partition(np.asarray(out), expected)


def test_sam2_and_guided_methods_equal_the_engine(unet_file, scan, small_sam2):
    image = scan.brightfield[0]
    sam2 = Sam2Step(model="random", params=SAM2_PARAMS, labels=SAM2_LABELS)

    def builder(source, device, config):
        assert source == "random"
        return small_sam2

    engine = Sam2Engine(small_sam2)
    plain = Segmenter(Preset(method="sam2", sam2=sam2), "cpu", sam2_builder=builder)
    labels = drain(plain.iter_segment([image]))
    expected = engine.segment(image, Sam2Params(**SAM2_PARAMS), LabelParams(**SAM2_LABELS))
    np.testing.assert_array_equal(labels, expected.labels)
    assert labels.max() > 1

    step = UNetStep(model=str(unet_file), overlap=16)
    guided = Segmenter(
        Preset(method="sam2_guided", unet=step, sam2=sam2), "cpu", sam2_builder=builder
    )
    labels = drain(guided.iter_segment([image]))
    cells = drain(Segmenter(Preset(unet=step), "cpu").iter_segment([image]))
    expected = engine.segment(
        image, Sam2Params(**SAM2_PARAMS), LabelParams(**SAM2_LABELS), foreground=cells > 0
    )
    np.testing.assert_array_equal(labels, expected.labels)
    assert labels.max() > 0
    # Where the U-Net finds no cells, SAM2's masks are background.
    strict = UNetStep(model=str(unet_file), overlap=16, foreground_threshold=0.99)
    guided = Segmenter(
        Preset(method="sam2_guided", unet=strict, sam2=sam2), "cpu", sam2_builder=builder
    )
    assert drain(guided.iter_segment([image])).max() == 0


def test_split_step_runs_the_watershed_split(unet_file, scan):
    split = {"params": {"h": 1.0}, "cleanup": {"min_area": 4}}
    step = UNetStep(model=str(unet_file), overlap=16)
    image = [scan.brightfield]
    labels = drain(Segmenter(Preset(unet=step, split=split), "cpu").iter_segment(image))
    cells = drain(Segmenter(Preset(unet=step), "cpu").iter_segment(image))
    expected = run_watershed("split", cells, params=split["params"], cleanup=split["cleanup"])
    np.testing.assert_array_equal(labels, expected)


def test_the_split_step_seeds_cells_over_the_shape_of_the_pixels(unet_file, monkeypatch):
    """With pixels of 0.87 x 0.435 µm, the split counted distances in rows and columns:
    two round cells touching along Y stayed one cell."""
    yy, xx = np.mgrid[:96, :160]
    yy, xx = (yy - 48) * 0.87, (xx - 80) * 0.435
    merged = ((np.abs(yy) - 6) ** 2 + xx**2 < 10**2).astype(np.uint8)  # centres 12 µm apart

    def unet(self, channels, labels_out, scratch, chunk_size, kwargs):
        return merged, None  # the U-Net's cells: the two as one
        yield

    monkeypatch.setattr(Segmenter, "_unet", unet)
    preset = Preset(unet=UNetStep(model=str(unet_file)), split={"params": {}, "cleanup": {}})
    segmenter = Segmenter(preset, "cpu")
    labels = drain(segmenter.iter_segment([merged], pixel_size_um=(0.87, 0.435)))
    assert labels.max() == 2 and labels[48 - 12, 80] != labels[48 + 12, 80]
    assert drain(segmenter.iter_segment([merged])).max() == 1  # over square pixels: one


def _touching_along_y() -> np.ndarray:
    """Two round cells of 10 µm radius, their centres 12 µm apart along Y, over pixels of
    0.87 x 0.435 µm: one object (True in both)."""
    yy, xx = np.mgrid[:96, :160]
    yy, xx = (yy - 48) * 0.87, (xx - 80) * 0.435
    return (np.abs(yy) - 6) ** 2 + xx**2 < 10**2


def test_a_foreground_models_cells_are_seeded_over_the_shape_of_the_pixels(foreground_unet):
    """A U-Net trained on foreground maps found one cell in two round cells touching along
    Y over 0.87 x 0.435 µm pixels: its watershed counted rows and columns. The network sees
    the image resampled to the square pixels it learnt, but the cells are found over the
    image's own."""
    image = _touching_along_y().astype(np.float32)
    segmenter = Segmenter(Preset(unet=UNetStep(tta=False)), "cpu")
    run = drain(segmenter.iter_run([image], pixel_size_um=(0.87, 0.435)))
    assert run.zoom == (1.0, 0.5)
    assert run.labels.max() == 2 and run.labels[48 - 12, 80] != run.labels[48 + 12, 80]
    # Square pixels of any size count as pixels, as they did: the two stay one.
    as_is = drain(segmenter.iter_segment([image]))
    assert as_is.max() == 1
    np.testing.assert_array_equal(drain(segmenter.iter_segment([image], pixel_size_um=0.87)),
                                  as_is)  # fmt: skip


def test_sam2s_split_is_given_the_shape_of_the_pixels():
    """SAM2's split of merged masks counted rows and columns whatever the pixel size."""
    given = []

    class Engine:
        def segment_iter(self, image, params, label_params, *, foreground, spacing):
            given.append(spacing)
            return Sam2Result(np.zeros(image.shape, np.uint8), {}, 0, 0)
            yield

    image = _touching_along_y().astype(np.uint8)
    segmenter = Segmenter(Preset(method="sam2", sam2=Sam2Step(labels={"split": True})), "cpu")
    segmenter._engine = Engine()
    drain(segmenter.iter_segment([image], pixel_size_um=(0.87, 0.435)))
    drain(segmenter.iter_segment([image]))
    assert given == [(0.87, 0.435), None]


def test_a_preset_is_read_as_utf8_whatever_the_locale(tmp_path):
    """Under a locale that is not UTF-8, a preset holding "ü" (a model in "Modelle für
    HeLa") was refused as not JSON."""
    path = tmp_path / "preset.json"
    preset = Preset(unet=UNetStep(model=str(tmp_path / "Modelle für HeLa" / "m.safetensors")))
    text = json.dumps(preset.to_dict(), ensure_ascii=False)  # as an editor saves it
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    code = (
        "import sys; from napari_cytomask.pipeline import Preset; "
        "print(ascii(Preset.load(sys.argv[1]).unet.model))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip() == ascii(str(tmp_path / "Modelle für HeLa" / "m.safetensors"))


def test_a_preset_saved_into_a_new_folder_makes_it(tmp_path):
    saved = Preset(method="unet").save(tmp_path / "presets" / "new" / "phase.json")
    assert Preset.load(saved).method == "unet"


def test_a_results_provenance_is_the_preset_that_made_it_or_says_why_not():
    """`--preset` of an export's provenance: the split of a reopened `cytomask segment`
    result lost the run's tile size and thresholds, a guided SAM2 result came back
    unguided, and another program's JSON of a "method" was taken for one of ours."""
    from napari_cytomask.pipeline import recorded_preset

    ours = {"versions": {"napari-cytomask": "0.1"}}
    cli = {**Preset(unet=UNetStep(tile_size=512, interior_threshold=0.7, min_size=40)).to_dict(),
           "channels": None}  # fmt: skip
    unet = {"method": "unet", "parameters": cli, "model": {"name": "starter"}}
    split = {**ours, "method": "watershed_split", "parameters": {"params": {}, "cleanup": {}},
             "made_from": {"layer": "raw U-Net cells", **unet}, "channel_index": 1}  # fmt: skip
    made = Preset.from_dict(recorded_preset(split))
    assert made.unet == UNetStep(tile_size=512, interior_threshold=0.7, min_size=40)
    assert made.split == {"params": {}, "cleanup": {}}
    assert made.channels is None  # as the run chose its channel
    measured = {"tile_size": 512, "interior_threshold": 0.7, "device": "cpu"}
    dock_unet = {"method": "unet", "model": {"name": "starter"}, "parameters": measured}
    guided = {**ours, "method": "sam2", "model": {"name": "facebook/sam2.1-hiera-tiny"},
              "parameters": {"params": {}, "labels": {}, "foreground": dock_unet}}  # fmt: skip
    of_channel = recorded_preset({**ours, **dock_unet, "channel_index": 2})
    assert Preset.from_dict(of_channel).channels == [2]
    made = Preset.from_dict(recorded_preset(guided))
    assert made.method == "sam2_guided"
    assert made.unet == UNetStep(tile_size=512, interior_threshold=0.7)
    painted = {"layer": "my foreground", "method": None}
    with pytest.raises(PresetError, match="no step of napari-cytomask"):
        recorded_preset({**guided, "parameters": {**guided["parameters"], "foreground": painted}})
    with pytest.raises(PresetError, match="made by no step of napari-cytomask"):
        recorded_preset({**ours, "method": None, "parameters": {}})
    # Another program's JSON: no record of ours.
    assert recorded_preset({"method": "unet", "parameters": {"tile_size": 256}}) is None


def test_the_record_of_frames_made_one_at_a_time_gives_their_settings_or_says_why_not():
    """A position segmented alone with its own thresholds (0.5 / 100) recorded them for
    that frame only: `--preset` of its record ran the defaults (39 cells of the run's 49),
    unsaid, and of its split's record was refused as made by no step."""
    from napari_cytomask.pipeline import recorded_preset

    ours = {"versions": {"napari-cytomask": "0.1"}}
    own = {"interior_threshold": 0.5, "foreground_threshold": 0.5, "min_size": 100}
    frame = {"method": "unet", "parameters": own, "model": {"name": "starter"}}
    cells = {**ours, "method": "unet", "parameters": {}, "model": {"name": "starter"},
             "previewed_frames": {"1": frame}, "frames_made": ["1"]}  # fmt: skip
    assert Preset.from_dict(recorded_preset(cells)).unet == UNetStep(**own)
    origin = {"layer": "Phase U-Net cells", "method": "unet", "parameters": None,
              "previewed_frames": {"1": frame}}  # fmt: skip
    split = {**ours, "method": "watershed_split", "parameters": {"params": {}, "cleanup": {}},
             "made_from": origin}  # fmt: skip
    made = Preset.from_dict(recorded_preset(split))
    assert made.unet == UNetStep(**own) and made.split == {"params": {}, "cleanup": {}}
    # A split recorded before its cells' frames were: no defaults run in their place.
    earlier = {**split, "made_from": {**origin, "previewed_frames": None}}
    with pytest.raises(PresetError, match="made by unet without their settings"):
        recorded_preset(earlier)
    # Positions segmented one at a time alike: what each run measured is no setting.
    measured = {**frame, "parameters": {**own, "tiling": {"tile_size": 640}},
                "model": {"name": "starter", "confidence": 0.71}}  # fmt: skip
    alike = {**cells, "previewed_frames": {"0": measured, "1": frame}}
    assert Preset.from_dict(recorded_preset(alike)).unet == UNetStep(**own)
    # Frames made in different ways: no one preset makes them.
    other = {**frame, "parameters": {**own, "min_size": 300}}
    mixed = {**cells, "previewed_frames": {"0": other, "1": frame}}
    with pytest.raises(PresetError, match=r"its frames \(0, 1\) were made one at a time with "):
        recorded_preset(mixed)


def test_a_result_made_from_a_frame_made_alone_records_its_settings():
    from napari.layers import Image, Labels

    from napari_cytomask.io.layers import frame_record, origin, result_metadata

    phase = Image(np.zeros((2, 8, 8), np.float32), name="Phase")
    record = result_metadata(phase, method="unet", parameters={"min_size": 100})["cytomask"]
    cells = Labels(np.zeros((2, 8, 8), np.uint32), name="Phase U-Net cells",
                   metadata={"cytomask": frame_record(None, record, (1,))})  # fmt: skip
    assert origin(cells)["previewed_frames"]["1"]["parameters"] == {"min_size": 100}


def test_a_preset_saved_over_a_file_says_how_to_replace_it(tmp_path):
    """From Python, saving over a preset said to choose another name or delete the file,
    never the argument that replaces it."""
    path = Preset().save(tmp_path / "preset.json")
    with pytest.raises(
        FileExistsError, match=r"or allow overwriting \(overwrite=True from Python; "
    ):
        Preset(method="sam2").save(path)
    assert Preset.load(path).method == "unet"
    Preset(method="sam2").save(path, overwrite=True)
    assert Preset.load(path).method == "sam2"
