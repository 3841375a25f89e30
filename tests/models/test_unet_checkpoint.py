"""U-Net checkpoints: round trip, cache folder, and a clear error for every wrong file."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from napari_cytomask.models.checkpoint import (
    DIR_ENV,
    CheckpointError,
    cache_dir,
    check_input_channels,
    checkpoint_file,
    describe,
    list_checkpoints,
    load_checkpoint,
    read_description,
    save_checkpoint,
    weights_checksum,
)
from napari_cytomask.models.unet import UNetConfig, build_model

TINY = UNetConfig(
    encoder="tu-resnet10t",
    encoder_depth=3,
    decoder_channels=(16, 8, 8),
    in_channels=2,
    tile_size=64,
)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model, notice = build_model(TINY)
    assert notice is None
    desc = describe(TINY, channel_names=["BF", "GFP"], scores={"validation": {"f1_50": 0.5}})
    path = save_checkpoint(tmp_path / "tiny", model, desc)
    return path, model, desc


def test_round_trip_keeps_weights_and_description(saved):
    path, model, desc = saved
    assert path.suffix == ".safetensors"
    # Typed in capitals, the ending is not added again ("tiny.SAFETENSORS.safetensors").
    assert checkpoint_file(path.with_suffix(".SAFETENSORS")) == path
    loaded, loaded_desc = load_checkpoint(path, "cpu", in_channels=2)
    checksum = loaded_desc.pop("weights_sha256")
    assert checksum == weights_checksum(model.state_dict())
    assert loaded_desc == json.loads(json.dumps(desc))
    assert loaded_desc["format"] == "napari-cytomask-unet" and loaded_desc["format_version"] == 1
    assert loaded_desc["in_channels"] == 2 and loaded_desc["percentiles"] == [1.0, 99.8]
    assert loaded_desc["classes"] == ["background", "interior", "boundary"]
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    assert not loaded.training


def test_cache_folder_is_overridable_and_listed(saved, tmp_path, monkeypatch):
    path, _, _ = saved
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    (tmp_path / "other.safetensors").write_bytes(b"not a checkpoint")
    assert cache_dir() == tmp_path
    assert list_checkpoints() == [path]
    monkeypatch.delenv(DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "napari-cytomask" / "unet"


def test_wrong_number_of_input_channels(saved):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match=r"expects 2 input channel\(s\) \(BF, GFP\) but 1"):
        load_checkpoint(path, "cpu", in_channels=1)
    with pytest.raises(CheckpointError, match="pick 2 image layer"):
        check_input_channels(read_description(path), 3)


def _rewrite_description(path, **changes):
    """Rewrite the description in a checkpoint's header, bypassing its checks."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(path, "pt") as fh:
        desc = {**json.loads(fh.metadata()["napari-cytomask"]), **changes}
    save_file(load_file(path), path, metadata={"napari-cytomask": json.dumps(desc)})


def test_unknown_architecture_and_newer_format(saved):
    path, _, _ = saved
    _rewrite_description(path, architecture="transunet")
    with pytest.raises(CheckpointError, match=r"unknown architecture 'transunet'.*knows \["):
        load_checkpoint(path)
    _rewrite_description(path, architecture="unet", format_version=99)
    with pytest.raises(CheckpointError, match="version 99, newer.*update napari-cytomask"):
        read_description(path)


def test_truncated_file(saved):
    path, _, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*train it again"):
        load_checkpoint(path)
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_files_that_are_not_checkpoints(tmp_path):
    sam2 = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, sam2)
    with pytest.raises(CheckpointError, match=r"PyTorch pickle.*--method sam2 --sam2-model"):
        load_checkpoint(sam2)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, these are notes")
    with pytest.raises(CheckpointError, match="not a napari-cytomask U-Net checkpoint"):
        load_checkpoint(text)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, foreign, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="no napari-cytomask description"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    weird = tmp_path / "weird.safetensors"
    weird.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError, match="not a napari-cytomask"):
        read_description(weird)


def _write_raw(path, header: dict, data: bytes = b"\0" * 12) -> None:
    """A safetensors file with exactly this header, bypassing every check."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_odd_headers_and_descriptions_are_refused_and_listed_as_unusable(saved, tmp_path):
    """Whatever a file in the model folder holds, reading it raises CheckpointError (never
    another error, which stopped the dock from opening), and the listing says why."""
    path, _, desc = saved
    desc = {**json.loads(json.dumps(desc)), "weights_sha256": None}
    tensor = {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}

    def meta(**changes):
        return {"napari-cytomask": json.dumps({**desc, **changes})}

    folder = tmp_path / "models"
    folder.mkdir()
    cases = {
        "metadata text": {"__metadata__": "x", "w": tensor},
        "no offsets": {"__metadata__": meta(), "w": {**tensor, "data_offsets": []}},
        "text offsets": {"__metadata__": meta(), "w": {**tensor, "data_offsets": ["0", "12"]}},
        "number description": {"__metadata__": {"napari-cytomask": 123}, "w": tensor},
        "scores list": {"__metadata__": meta(scores=[1, 2]), "w": tensor},
        "validation list": {"__metadata__": meta(scores={"validation": [1]}), "w": tensor},
        "training text": {"__metadata__": meta(training="x"), "w": tensor},
        "channels text": {"__metadata__": meta(in_channels="three"), "w": tensor},
        # Values the model list and the dock's thresholds read.
        "no encoder": {"__metadata__": {"napari-cytomask": json.dumps(
            {k: v for k, v in desc.items() if k != "encoder"})}, "w": tensor},
        "score text": {"__metadata__": meta(scores={"validation": {"f1_50": "high"}}), "w": tensor},
        # The scores with the chosen thresholds, which the model list shows.
        "tuned list": {"__metadata__": meta(postprocess={"scores": ["x"]}), "w": tensor},
        "tuned text": {"__metadata__": meta(postprocess={"scores": {"tuned": {"f1_50": "x"}}}),
                       "w": tensor},
        "threshold text": {"__metadata__": meta(postprocess={"interior_threshold": "0.5"}),
                           "w": tensor},
        # Values that are looked up among the known ones.
        "architecture list": {"__metadata__": meta(architecture=["unet"]), "w": tensor},
        "targets table": {"__metadata__": meta(targets={}), "w": tensor},
    }  # fmt: skip
    for name, header in cases.items():
        _write_raw(folder / f"{name}.safetensors", header)
        with pytest.raises(CheckpointError, match=f"{name}.safetensors"):
            read_description(folder / f"{name}.safetensors")
    (folder / "a folder.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        read_description(folder / "a folder.safetensors")
    # A file that cannot be read (another user's, a failing drive or share): a link to
    # /proc/self/mem, whose first bytes read with an I/O error. It raised OSError.
    (folder / "unreadable.safetensors").symlink_to("/proc/self/mem")
    with pytest.raises(CheckpointError, match=r"unreadable.safetensors cannot be read \("):
        read_description(folder / "unreadable.safetensors")
    good = folder / path.name
    good.write_bytes(path.read_bytes())
    unusable: list = []
    assert list_checkpoints(folder, unusable) == [good]
    assert sorted(p.stem for p, _ in unusable) == sorted([*cases, "a folder", "unreadable"])
    why = dict((p.stem, text) for p, text in unusable)
    assert "invalid network" in why["channels text"]
    assert "validation scores are not a table" in why["validation list"]
    assert "threshold scores are not a table" in why["tuned list"]
    assert "its f1_50 is 'x', not a number" in why["tuned text"]


def test_weights_that_do_not_fit_the_description(saved):
    path, _, _ = saved
    _rewrite_description(path, encoder_depth=4, decoder_channels=[16, 8, 8, 8], tile_size=64)
    # What differs, not torch's "Error(s) in loading state_dict for Unet:" alone.
    with pytest.raises(
        CheckpointError, match=r"do not fit the network its description gives \(\d+ missing, "
        r"\d+ unexpected and \d+ differently shaped weights, e\.g\. (en|de)coder\."
    ):  # fmt: skip
        load_checkpoint(path)


@pytest.mark.parametrize(
    "changes",
    [{"encoder": "tu-resnet]0t"}, {"encoder": "x"}],
    ids=["timm name", "encoder"],
)
def test_a_network_that_cannot_be_built_is_refused(saved, changes):
    """Found by changing a checkpoint's description: timm's "Unknown model", torch's errors
    about sizes, or the training's advice to pick another encoder, none of which said that
    the file is at fault."""
    path, _, _ = saved
    _rewrite_description(path, **changes)
    with pytest.raises(CheckpointError, match="describes a network that cannot be built"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "changes, said",
    [
        ({"in_channels": 3.5}, "describes an invalid network: in_channels is 3.5, not a whole"),
        ({"encoder_depth": None}, "encoder_depth is None, not a whole number"),
        ({"decoder_channels": "x"}, "decoder_channels is 'x', not a list of whole numbers"),
        ({"percentiles": []}, r"percentiles are \[\], not two numbers \(low, high\)"),
        ({"format_version": "x"}, "its format version is 'x', not a whole number from 1"),
        (
            {"postprocess": {"interior_threshold": 2}},
            "its interior_threshold is 2, not a number from 0 to 1",
        ),
        (  # a hand-edited one stopped every model from being listed
            {"postprocess": {"foreground_threshold": None}},
            "its foreground_threshold is None, not a number from 0 to 1",
        ),
        ({"postprocess": {"min_size": 0.5}}, "its min_size is 0.5, not a whole number of pixels"),
        (
            {"training": {"pixel_size_um": [0, 0]}},
            r"the pixel size it learnt cells at is \[0, 0\], not two sizes in µm",
        ),
    ],
    ids=[
        "channels",
        "depth",
        "decoder",
        "percentiles",
        "version",
        "threshold",
        "unset",
        "size",
        "pixel",
    ],
)
def test_a_description_holding_values_of_other_kinds_is_refused_in_words(saved, changes, said):
    """Found by changing the starter model's description: values of another kind said
    Python's "'NoneType' object is not iterable", "invalid literal for int()", "not
    enough values to unpack" or "'<=' not supported between instances"; a format version
    that is no number was said to be newer than the plugin; thresholds outside 0 to 1 and
    a cell size of half a pixel were said as a preset's ("unet: 'min_size' should be int"),
    naming no file. Each is refused as the file's fault before the model list offers it."""
    path, _, _ = saved
    _rewrite_description(path, **changes)
    with pytest.raises(CheckpointError, match=said) as caught:
        read_description(path)
    assert str(path) in str(caught.value)
    unusable = []
    assert list_checkpoints(path.parent, unusable) == []
    assert [p for p, _ in unusable] == [path]


def test_pretrained_weights_fall_back_to_random_init_with_a_notice(monkeypatch):
    from napari_cytomask.models import unet

    monkeypatch.setattr(unet, "pretrained_weights_reachable", lambda *a, **k: False)
    model, notice = build_model(UNetConfig(encoder="resnet18", encoder_depth=3), "imagenet")
    assert "random weights" in notice and isinstance(model, torch.nn.Module)


def test_invalid_configurations_are_explained():
    with pytest.raises(ValueError, match="unknown architecture"):
        UNetConfig(architecture="segformer-xl")
    with pytest.raises(ValueError, match="multiple of 8"):
        UNetConfig(encoder_depth=3, tile_size=100)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_model(UNetConfig(encoder="resnet999", encoder_depth=3))
    with pytest.raises(ValueError, match="unknown encoder 'tu-resnet999': timm has no model"):
        build_model(UNetConfig(encoder="tu-resnet999", encoder_depth=3))


def test_damaged_weights_are_refused_by_their_checksum(saved):
    """4 KB of weights overwritten still parse as safetensors; the checksum catches them."""
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    start = 8 + n + (len(data) - 8 - n) // 2
    data[start : start + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    read_description(path)  # the header is intact
    with pytest.raises(CheckpointError, match="do not match the checksum.*damaged"):
        load_checkpoint(path)


def test_checkpoints_without_a_checksum_still_load(saved):
    """Files written before checksums were recorded load as before."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path, model, _ = saved
    with safe_open(path, "pt") as fh:
        desc = json.loads(fh.metadata()["napari-cytomask"])
    assert len(desc.pop("weights_sha256")) == 64
    save_file(load_file(path), path, metadata={"napari-cytomask": json.dumps(desc)})
    loaded, loaded_desc = load_checkpoint(path)
    assert "weights_sha256" not in loaded_desc
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_encoder_stages_a_network_never_runs_are_left_out_and_old_files_still_load(tmp_path):
    # segmentation-models-pytorch builds every ResNet stage whatever the depth: a depth-3
    # resnet18 would carry layer3 and layer4 (10.5 M weights) that it never runs.
    config = UNetConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 8))
    torch.manual_seed(0)
    model, _ = build_model(config, encoder_weights=None)
    names = model.state_dict().keys()
    assert not [k for k in names if k.startswith(("encoder.layer3.", "encoder.layer4."))]
    assert any(k.startswith("encoder.layer2.") for k in names)
    # A file written with the unused stages, as before, loads and predicts the same.
    import segmentation_models_pytorch as smp

    full = smp.Unet(
        "resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 8),
        in_channels=1, classes=3,
    )  # fmt: skip
    full.load_state_dict(model.state_dict(), strict=False)
    assert any(k.startswith("encoder.layer4.") for k in full.state_dict())
    old = save_checkpoint(tmp_path / "old", full, describe(config))
    loaded, _ = load_checkpoint(old)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), full.eval()(x))
    assert sum(p.numel() for p in loaded.parameters()) < 0.1 * sum(
        p.numel() for p in full.parameters()
    )
