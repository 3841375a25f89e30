"""Loading SAM2 weights by Hugging Face id and from local files, with checkpoints made here."""

from __future__ import annotations

import pytest
import torch

from napari_cytomask.models import sam2_models
from napari_cytomask.models.checkpoint import CheckpointError, mismatched_weights
from napari_cytomask.models.sam2_models import (
    HF_MODELS,
    Sam2ModelCache,
    build_sam2_model,
    check_sam2_file,
    config_for,
    identify_sam2_checkpoint,
    load_sam2_weights,
)

TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


@pytest.fixture(scope="module")
def tiny():
    return build_sam2_model(TINY, seed=3)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": tiny.state_dict()}, path)
    return path


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_ids_map_to_sam2_configs():
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    assert HF_MODELS == HF_MODEL_ID_TO_FILENAMES
    assert config_for("facebook/sam2.1-hiera-large") == "configs/sam2.1/sam2.1_hiera_l.yaml"
    assert config_for("facebook/sam2-hiera-base-plus") == "configs/sam2/sam2_hiera_b+.yaml"
    with pytest.raises(ValueError, match="not a SAM2 model id"):
        config_for("facebook/sam-vit-huge")


def test_hf_id_and_local_file_load_the_weights(tiny, tiny_checkpoint, monkeypatch):
    asked = []

    def fake_download(repo_id, filename, local_files_only=False):
        asked.append((repo_id, filename))
        return str(tiny_checkpoint)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    cache = Sam2ModelCache()
    by_id = cache.get("facebook/sam2.1-hiera-tiny", "cpu")
    assert asked == [("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt")]
    assert same_weights(by_id, tiny)
    assert cache.get("facebook/sam2.1-hiera-tiny", "auto") is by_id  # "auto" is the CPU here
    assert len(asked) == 1 and len(cache) == 1

    by_path = cache.get(str(tiny_checkpoint), "cpu", config="facebook/sam2.1-hiera-tiny")
    assert by_path is not by_id and same_weights(by_path, tiny)
    with pytest.raises(CheckpointError, match="also choose its configuration"):
        cache.get(str(tiny_checkpoint), "cpu")


def test_checkpoint_of_another_model_says_which_model_it_is(tiny_checkpoint):
    with pytest.raises(
        CheckpointError,
        # The configuration chosen named by its model id, as the user chose it.
        match=r"the configuration facebook/sam2.1-hiera-small: it seems to be a checkpoint of "
        r"facebook/sam2.1-hiera-tiny",
    ):
        build_sam2_model("configs/sam2.1/sam2.1_hiera_s.yaml", checkpoint=tiny_checkpoint)


def test_a_folder_given_as_checkpoint_is_said_to_be_one(tmp_path):
    """A folder was said not to exist."""
    with pytest.raises(CheckpointError, match=f"{tmp_path} is a folder; pick the .pt file"):
        check_sam2_file(tmp_path)


def test_unreadable_or_foreign_files_are_refused(tiny, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pt could not be read as a PyTorch file"):
        load_sam2_weights(tiny, text)
    half = tmp_path / "half.pt"  # a checkpoint copied in part
    torch.save({"model": {"w": torch.zeros(1000)}}, half)
    half.write_bytes(half.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"half.pt could not be read .*downloaded in part"):
        load_sam2_weights(tiny, half)
    unsafe = tmp_path / "unsafe.pt"  # more than weights: torch refuses it for safety
    torch.save({"model": {"w": torch.zeros(1)}, "settings": object()}, unsafe)
    with pytest.raises(CheckpointError, match="holds more than weights") as caught:
        load_sam2_weights(tiny, unsafe)
    assert "weights_only" not in str(caught.value)
    foreign = tmp_path / "unet.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        load_sam2_weights(tiny, foreign)
    other = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="matches none of the SAM2"):
        load_sam2_weights(tiny, other, TINY)
    # Segment Anything's first networks, as published (bare) and as some save them: they
    # were said to hold "no 'model' entry", or to miss 471 weights.
    sam1 = {"image_encoder.patch_embed.proj.weight": torch.zeros(1),
            "image_encoder.blocks.0.norm1.weight": torch.zeros(1)}  # fmt: skip
    for i, content in enumerate((sam1, {"model": sam1})):
        torch.save(content, tmp_path / f"sam_vit_b_{i}.pth")
        with pytest.raises(CheckpointError, match=rf"^sam_vit_b_{i}.pth is a checkpoint of "
                           r"Segment Anything \(SAM 1, .*not of SAM2"):  # fmt: skip
            load_sam2_weights(tiny, tmp_path / f"sam_vit_b_{i}.pth", TINY)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sam2_weights(tiny, tmp_path / "missing.pt")
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"empty.pt is empty \(0 bytes\): it was not"):
        load_sam2_weights(tiny, empty)


@pytest.mark.parametrize(
    "odd",
    [2.5, torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.complex64)],
    ids=["number", "integers", "complex"],
)
def test_weights_that_are_no_real_numbers_are_refused(tiny, tmp_path, odd):
    """Found by changing a checkpoint's weights: a number stopped the loading with
    "'float' object has no attribute 'shape'"; integers or complex numbers of the right
    shape were cast by torch without a word (a network of other weights)."""
    state = dict(tiny.state_dict())
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = odd if not isinstance(odd, torch.Tensor) else odd.new_zeros(state[name].shape)
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, path)
    with pytest.raises(
        CheckpointError, match=rf"1 of another kind \(no tensor of real numbers\), e\.g\. {name}"
    ):
        load_sam2_weights(tiny, path, TINY)
    half = {k: v.half() if v.is_floating_point() else v for k, v in tiny.state_dict().items()}
    torch.save({"model": half}, path)  # half precision is real numbers: it loads
    load_sam2_weights(tiny, path, TINY)


def test_a_picked_checkpoint_needs_every_weight_of_the_model_it_fits(tiny, tmp_path):
    """A file with the weights that tell the model (the image encoder's first layer, its
    blocks) but not all the others was taken as it was picked, and refused only when
    Segment loaded it. Weights more are refused as Segment does (and sam2, whose loading
    is strict), and said to be another network's, not part of the model: a file with one
    weight more was said to be "saved from part of the model". Each file holds one number
    per weight: small."""
    whole = {k: v.new_zeros(1).expand(v.shape) for k, v in tiny.state_dict().items()}
    path = tmp_path / "mine.pt"
    torch.save({"model": whole}, path)
    assert identify_sam2_checkpoint(path) == "facebook/sam2.1-hiera-tiny"

    def without(prefix):
        return {k: v for k, v in whole.items() if not k.startswith(prefix)}

    for changed, part in [
        (without("sam_mask_decoder."), "no mask decoder"),
        (without("image_encoder.trunk.blocks.5.mlp."), "image encoder incomplete"),
        (without("memory_attention."), "memory modules incomplete"),  # named, nothing else lacks
    ]:
        torch.save({"model": changed}, path)
        with pytest.raises(CheckpointError) as caught:
            identify_sam2_checkpoint(path)
        assert str(caught.value) == (
            f"mine.pt is part of facebook/sam2.1-hiera-tiny ({part}: "
            f"{len(whole.keys() - changed.keys())} weights missing): pick a whole checkpoint "
            "(sam2.1_hiera_tiny.pt)."
        )
        assert mismatched_weights(tiny.state_dict(), changed)  # Segment's loading refuses it
    for changed, says in [
        ({**whole, "extra.weight": torch.zeros(1)}, "0 missing, 1 unexpected and 0 "
         "differently shaped weights, e.g. extra.weight"),
        ({**whole, "sam_mask_decoder.iou_token.weight": torch.zeros(2, 2)}, "0 missing, 0 "
         "unexpected and 1 differently shaped weights, e.g. sam_mask_decoder.iou_token.weight"),
        # Weights missing too: still no part of the published model.
        ({**without("sam_mask_decoder."), "extra.weight": torch.zeros(1)}, "131 missing, 1 "
         "unexpected and 0 differently shaped weights, e.g. sam_mask_decoder."),
    ]:  # fmt: skip
        torch.save({"model": changed}, path)
        with pytest.raises(CheckpointError) as caught:
            identify_sam2_checkpoint(path)
        said = str(caught.value)
        assert said.startswith(
            "mine.pt holds weights of another network or of a modified model; pick a published "
            "checkpoint, such as sam2.1_hiera_tiny.pt. (Compared with "
            f"facebook/sam2.1-hiera-tiny: {says}"
        )
        assert mismatched_weights(tiny.state_dict(), changed)  # Segment's loading refuses it
    # The names, shapes and kinds checked against are those of the network built.
    expected = sam2_models._expected_weights(TINY)
    assert {k: (v.shape, v.dtype) for k, v in expected.items()} == {
        k: (v.shape, v.dtype) for k, v in tiny.state_dict().items()
    }


def test_the_image_encoder_alone_is_said_to_be_part_of_a_model_of_either_version(tiny, tmp_path):
    """SAM2.1 is told from SAM2 by weights outside the image encoder: a file of the image
    encoder's weights alone was said to be part of facebook/sam2-hiera-tiny, and
    sam2_hiera_tiny.pt was advised, for weights of SAM2.1 (or SAM2) tiny; loaded with its
    configuration (cytomask segment), to be "a checkpoint of facebook/sam2-hiera-tiny", with
    the advice to choose that configuration."""
    whole = {k: v.new_zeros(1).expand(v.shape) for k, v in tiny.state_dict().items()}
    encoder = {k: v for k, v in whole.items() if k.startswith("image_encoder.")}
    path = tmp_path / "encoder.pt"
    torch.save({"model": encoder}, path)
    for check in (identify_sam2_checkpoint, lambda path: load_sam2_weights(tiny, path, TINY)):
        with pytest.raises(CheckpointError) as caught:
            check(path)
        assert str(caught.value) == (
            "encoder.pt is part of a SAM2 model (no prompt encoder or mask decoder): pick a "
            "whole checkpoint (sam2.1_hiera_tiny.pt)."
        )
    # With a weight of SAM2.1's own, it is told, and so is how many are missing.
    torch.save({"model": {**encoder, "no_obj_embed_spatial": whole["no_obj_embed_spatial"]}}, path)
    with pytest.raises(CheckpointError) as caught:
        identify_sam2_checkpoint(path)
    assert str(caught.value) == (
        "encoder.pt is part of facebook/sam2.1-hiera-tiny (no prompt encoder or mask decoder: "
        f"{len(whole) - len(encoder) - 1} weights missing): pick a whole checkpoint "
        "(sam2.1_hiera_tiny.pt)."
    )


def test_a_later_pick_reads_no_sam2_configuration_again(tiny, tmp_path, monkeypatch):
    """Each checkpoint picked composed up to eight sam2 configurations with Hydra (0.1 to
    0.25 s each) to tell its model: every pick held napari for about a second."""
    import hydra

    path = tmp_path / "mine.pt"
    weights = {k: v.new_zeros(1).expand(v.shape) for k, v in tiny.state_dict().items()}
    torch.save({"model": weights}, path)
    identify_sam2_checkpoint(path)

    def compose(*args, **kwargs):
        raise AssertionError("a configuration read again")

    monkeypatch.setattr(hydra, "compose", compose)
    assert identify_sam2_checkpoint(path) == "facebook/sam2.1-hiera-tiny"


def test_a_unet_checkpoint_given_for_sam2_says_where_it_goes(tiny, unet_checkpoint, tmp_path):
    """Not torch's lecture on weights_only unpickling, 600 characters long."""
    unet = unet_checkpoint(tile_size=64)
    with pytest.raises(CheckpointError) as caught:
        load_sam2_weights(tiny, unet)
    assert str(caught.value) == (
        f"{unet.name} is a U-Net checkpoint of napari-cytomask, not SAM2 weights: open it as "
        "the U-Net's Model."
    )
    renamed = tmp_path / "unet.pt"
    renamed.write_bytes(unet.read_bytes())
    with pytest.raises(CheckpointError, match="is a U-Net checkpoint of napari-cytomask"):
        load_sam2_weights(tiny, renamed)
    # Chosen in the dock without a configuration: what the file is, not "choose its
    # configuration" for a file no configuration makes SAM2 weights.
    with pytest.raises(CheckpointError, match="is a U-Net checkpoint of napari-cytomask"):
        Sam2ModelCache().get(str(unet), "cpu")


def test_hub_cache_layout_is_used_offline(tiny_checkpoint, tmp_path, monkeypatch):
    # The file huggingface_hub finds in its cache without network access.
    repo = tmp_path / "models--facebook--sam2.1-hiera-tiny"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (snapshot / "sam2.1_hiera_tiny.pt").write_bytes(tiny_checkpoint.read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    path = sam2_models.download_checkpoint("facebook/sam2.1-hiera-tiny")
    assert path.read_bytes() == tiny_checkpoint.read_bytes()


def _hub_cache(tmp_path, content: bytes, monkeypatch, *, blob_name: str | None = None):
    """huggingface_hub's cache layout: refs/main, a snapshot file linked to its blob."""
    import hashlib

    import huggingface_hub.constants as constants

    repo = tmp_path / "models--facebook--sam2.1-hiera-tiny"
    commit = "1" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    blob = repo / "blobs" / (blob_name or hashlib.sha256(content).hexdigest())
    blob.write_bytes(content)
    (repo / "snapshots" / commit / "sam2.1_hiera_tiny.pt").symlink_to(blob)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    return blob


def test_a_cached_model_is_checked_against_its_hub_sha256(tiny_checkpoint, tmp_path, monkeypatch):
    """The cached file is used without asking the Hub (it stays at the revision it was
    downloaded at), and a damaged file is refused."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a cached model must not contact the Hub")

    monkeypatch.setattr(socket, "create_connection", no_network)
    blob = _hub_cache(tmp_path, tiny_checkpoint.read_bytes(), monkeypatch)
    path = sam2_models.download_checkpoint("facebook/sam2.1-hiera-tiny")
    assert path.read_bytes() == tiny_checkpoint.read_bytes()
    data = bytearray(blob.read_bytes())
    data[5000:9096] = bytes(4096)
    blob.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the SHA-256.*damaged"):
        sam2_models.download_checkpoint("facebook/sam2.1-hiera-tiny")


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "no route to the Hub"])
def test_a_model_not_downloaded_fails_fast_offline_with_one_clear_message(
    tmp_path, monkeypatch, offline
):
    import socket
    import time

    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    if offline == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:
        # A machine whose connections hang (a firewall dropping packets, no DNS answer).
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

        def hang(*args, **kwargs):
            time.sleep(30)
            raise TimeoutError("timed out")  # as a real connection would end, long after

        monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    with pytest.raises(sam2_models.ModelNotDownloaded) as error:
        Sam2ModelCache().get("facebook/sam2.1-hiera-tiny", "cpu")
    assert time.perf_counter() - start < 2
    message = str(error.value)
    assert "facebook/sam2.1-hiera-tiny is not downloaded" in message
    assert "in napari, choose 'Local checkpoint…' as SAM2's Model and open the file; on " in (
        message
    )
    assert "command line, --sam2-model sam2.1_hiera_tiny.pt" in message
    # Where to download the file, and no widget name a user of the dock would not find.
    assert "/facebook/sam2.1-hiera-tiny/resolve/main/sam2.1_hiera_tiny.pt" in message
    assert "widget" not in message
    assert error.value.__suppress_context__  # one error, not a chain of the hub's


def test_a_model_for_another_gpu_is_built_with_that_gpu_current(monkeypatch):
    """sam2 puts tensors on the current GPU as it builds a model, and they do not move
    with it: a model for GPU 1 was built with GPU 0 current, which it then also used."""
    import contextlib

    events = []

    @contextlib.contextmanager
    def current(device):
        events.append(f"{device} current")
        yield
        events.append("back")

    def build(*args, **kwargs):
        events.append("built")
        return torch.nn.Identity()

    monkeypatch.setattr(sam2_models, "get_device", lambda device: torch.device(device))
    monkeypatch.setattr(torch.cuda, "device", current)
    monkeypatch.setattr("sam2.build_sam.build_sam2", build)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, device: self)
    build_sam2_model(TINY, device="cuda:1")
    assert events == ["cuda:1 current", "built", "back"]
    events.clear()
    build_sam2_model(TINY, device="cpu")
    assert events == ["built"]


def test_a_checkpoint_replaced_at_its_path_is_loaded_again(tmp_path):
    """A model downloaded to the name of another, or fine-tuned into its file, kept being
    used from memory: the results of the model before, without a word."""
    import os

    path = tmp_path / "mine.pt"
    first, second = (build_sam2_model(TINY, image_size=64, seed=seed) for seed in (1, 2))
    torch.save({"model": first.state_dict()}, path)
    loaded = []

    def builder(source, device, config):
        loaded.append(source)
        return build_sam2_model(TINY, checkpoint=source, image_size=64)

    cache = Sam2ModelCache(builder)
    assert same_weights(cache.get(str(path), "cpu", "facebook/sam2.1-hiera-tiny"), first)
    assert cache.holds(str(path), "cpu", "facebook/sam2.1-hiera-tiny")
    torch.save({"model": second.state_dict()}, path)
    # Replaced a second later, as a person does it: the same size, a later time.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not cache.holds(str(path), "cpu", "facebook/sam2.1-hiera-tiny")
    assert same_weights(cache.get(str(path), "cpu", "facebook/sam2.1-hiera-tiny"), second)
    assert loaded == [str(path), str(path)]
