"""SAM2 models by Hugging Face id or local checkpoint, cached per (model, device).

Checkpoints are the ``.pt`` files Meta publishes (``{"model": state_dict}``).
A file that belongs to another model than the chosen configuration raises
:class:`~napari_cytomask.models.checkpoint.CheckpointError`, which names the
model the file seems to be for.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from .checkpoint import CheckpointError, mismatched_weights, read_description
from .device import get_device

#: Hugging Face id -> (sam2 configuration name, checkpoint file name), as sam2's ``build_sam.py``.
HF_MODELS: dict[str, tuple[str, str]] = {
    "facebook/sam2-hiera-tiny": ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt"),
    "facebook/sam2-hiera-small": ("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    "facebook/sam2-hiera-base-plus": (
        "configs/sam2/sam2_hiera_b+.yaml",
        "sam2_hiera_base_plus.pt",
    ),
    "facebook/sam2-hiera-large": ("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large.pt"),
    "facebook/sam2.1-hiera-tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "facebook/sam2.1-hiera-small": (
        "configs/sam2.1/sam2.1_hiera_s.yaml",
        "sam2.1_hiera_small.pt",
    ),
    "facebook/sam2.1-hiera-base-plus": (
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
    ),
    "facebook/sam2.1-hiera-large": (
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        "sam2.1_hiera_large.pt",
    ),
}
DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"

_EMBED_KEY = "image_encoder.trunk.patch_embed.proj.weight"
_BLOCK_PREFIX = "image_encoder.trunk.blocks."
_V21_KEY = "no_obj_embed_spatial"


def config_for(model_id: str) -> str:
    """The sam2 configuration name of a Hugging Face model id.

    Raises
    ------
    ValueError
        For ids that are not SAM2 or SAM2.1 models; the message lists the known ids.
    """
    try:
        return HF_MODELS[model_id][0]
    except KeyError:
        raise ValueError(
            f"{model_id!r} is not a SAM2 model id; choose one of {', '.join(sorted(HF_MODELS))} "
            "or a local checkpoint with its configuration."
        ) from None


class ModelNotDownloaded(OSError):
    """A Hugging Face model that is not in the local cache and cannot be downloaded now."""


#: The widget's choice for a ``.pt`` file, named in the advice of :class:`ModelNotDownloaded`.
LOCAL_CHOICE = "Local checkpoint…"
#: Seconds to wait for the Hugging Face Hub before calling the machine offline.
HUB_TIMEOUT_S = 1.5


def download_checkpoint(model_id: str) -> Path:
    """Return the local path of a model's checkpoint, downloading it on first use.

    The Hub is asked only when the file is not in ``huggingface_hub``'s cache
    (``HF_HUB_CACHE``): a model, once downloaded, stays at the revision it was
    downloaded at (no silent update), and works offline. Its content is checked
    against the SHA-256 the Hub gave for it (the name of the cached blob).

    Raises
    ------
    ModelNotDownloaded
        Within about :data:`HUB_TIMEOUT_S` seconds when the file is not cached
        and the Hub cannot be reached (or ``HF_HUB_OFFLINE`` is set), with what
        to do instead.
    CheckpointError
        When the file's content does not match its SHA-256.
    """
    from huggingface_hub import hf_hub_download

    path = check_downloadable(model_id)
    if path is None:
        path = Path(hf_hub_download(repo_id=model_id, filename=HF_MODELS[model_id][1]))
    _check_sha256(path, model_id)
    return path


def check_downloadable(model_id: str) -> Path | None:
    """The cached checkpoint of a Hugging Face id, or None when it is not cached but can
    be downloaded now (the Hub answers).

    Raises
    ------
    ModelNotDownloaded
        Within about :data:`HUB_TIMEOUT_S` seconds when it is neither, with what to do.
    """
    from huggingface_hub import constants

    config_for(model_id)
    filename = HF_MODELS[model_id][1]
    path = cached_checkpoint(model_id)
    if path is None and (constants.HF_HUB_OFFLINE or not _hub_reachable(constants.ENDPOINT)):
        raise ModelNotDownloaded(
            f"The SAM2 model {model_id} is not downloaded yet and the Hugging Face Hub "
            f"({constants.ENDPOINT}) cannot be reached to download it. On a computer with "
            f"internet access, download {constants.ENDPOINT}/{model_id}/resolve/main/"
            f"{filename} and copy it to this computer (any folder); then give it to SAM2: "
            f"in napari, choose '{LOCAL_CHOICE}' as SAM2's Model and open the file; on the "
            f"command line, --sam2-model {filename} --sam2-config {model_id}."
        ) from None
    return path


def check_sam2_config(config: str) -> None:
    """Check that ``config`` names a SAM2 configuration: a Hugging Face id of
    :data:`HF_MODELS`, or a configuration file of the sam2 package
    (``configs/sam2.1/sam2.1_hiera_t.yaml``).

    Raises
    ------
    CheckpointError
        Otherwise ("tiny" failed in each input with Hydra's words: "Cannot find primary
        config 'tiny'. Check that it's in your config search path.").
    """
    from importlib.resources import files

    if config in HF_MODELS:
        return
    package = files("sam2")
    if any(package.joinpath(name).is_file() for name in (config, f"{config}.yaml")):
        return
    raise CheckpointError(
        f"{config!r} is no SAM2 configuration: give the Hugging Face id of the model the "
        f"checkpoint was made from ({', '.join(HF_MODELS)}), or the name of a configuration "
        f"of the sam2 package (such as {HF_MODELS[DEFAULT_MODEL][0]})."
    )


def cached_checkpoint(model_id: str) -> Path | None:
    """The checkpoint of a Hugging Face id in ``huggingface_hub``'s cache, or ``None``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    filename = HF_MODELS[model_id][1]
    try:
        return Path(hf_hub_download(repo_id=model_id, filename=filename, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _hub_reachable(endpoint: str, timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout`` seconds.

    Run in a thread because name resolution itself can hang for many seconds
    on a machine without network, which huggingface_hub's retries multiply.
    """
    import socket
    import threading
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _check_sha256(path: Path, model_id: str) -> None:
    """Compare a cached file with the SHA-256 the Hub gave for it.

    huggingface_hub stores a large (LFS) file as a blob named after the Hub's
    SHA-256 of it, with the snapshot's file a link to the blob; a damaged or
    replaced blob no longer matches its name. Caches without links (some
    Windows setups) carry no hash to check.
    """
    import re

    from ..io.layers import file_sha256

    if not path.is_symlink():
        return
    blob = path.resolve()
    if not re.fullmatch(r"[0-9a-f]{64}", blob.name):
        return
    if file_sha256(blob) != blob.name:
        raise CheckpointError(
            f"The downloaded SAM2 model {model_id} ({blob}) does not match the SHA-256 the "
            "Hugging Face Hub gave for it: the file is damaged. Delete it and load the model "
            "again to download it anew."
        )


def build_sam2_model(
    config: str,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    image_size: int | None = None,
    seed: int | None = None,
):
    """Build a SAM2 model from a sam2 configuration, with weights from a checkpoint.

    Parameters
    ----------
    config
        A sam2 configuration name, e.g. ``"configs/sam2.1/sam2.1_hiera_t.yaml"``.
    checkpoint
        A ``.pt`` file holding ``{"model": state_dict}``; without one the weights
        stay randomly initialised (for tests and timings).
    device
        Where the model runs.
    image_size
        Model input size; smaller than the configuration's 1024 makes random
        test models fast. Checkpoints are trained at 1024.
    seed
        Seed of the random initialisation; the global random state is left as it was.

    Returns
    -------
    sam2.modeling.sam2_base.SAM2Base
        The model in eval mode on ``device``.

    Raises
    ------
    CheckpointError
        When the checkpoint does not match the configuration.
    """
    from sam2.build_sam import build_sam2

    overrides = [] if image_size is None else [f"++model.image_size={int(image_size)}"]
    device = get_device(device)
    # sam2 puts some tensors on the current GPU as it builds (not moved with the model):
    # on the chosen one, not GPU 0, when that is another.
    current = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), current:
        if seed is not None:
            torch.manual_seed(seed)
        model = build_sam2(config, None, device="cpu", hydra_overrides_extra=overrides)
    if checkpoint is not None:
        load_sam2_weights(model, checkpoint, config)
    return model.to(device).eval()


#: The first bytes of the files ``torch.load`` reads: a zip archive (what ``torch.save``
#: writes) or a pickle (its older format).
_TORCH_SIGNATURES = (b"PK\x03\x04", b"\x80")


def check_sam2_file(path: str | Path, unet_advice: str = "open it as the U-Net's Model") -> None:
    """Check that ``path`` may be a SAM2 checkpoint, from what it is and its first bytes.

    Reads no weights: asked before any work, and before its configuration is asked for.

    Parameters
    ----------
    path
        The file given as SAM2's weights.
    unet_advice
        Where a U-Net checkpoint goes instead, in the words of the caller (the dock's by
        default): the refusal says it after what the file is.

    Raises
    ------
    CheckpointError
        For a missing or empty file, a U-Net checkpoint of the plugin, or a file that is
        no PyTorch file at all (a text file, say).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"Checkpoint {path} is a folder; pick the .pt file in it.")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; pick an existing .pt file.")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path.name} is empty (0 bytes): it was not downloaded or copied completely; "
            "pick a SAM2 .pt file."
        )
    try:
        read_description(path)
    except CheckpointError:
        pass  # not one of the plugin's U-Net checkpoints
    else:
        raise CheckpointError(
            # Short: the dock says it after what SAM2 keeps, in the few lines its status shows.
            f"{path.name} is a U-Net checkpoint of napari-cytomask, not SAM2 weights: "
            f"{unet_advice}."
        )
    with open(path, "rb") as fh:
        if not fh.read(4).startswith(_TORCH_SIGNATURES):
            raise _unreadable(path)


def _unreadable(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path.name} could not be read as a PyTorch file of weights (copied or downloaded "
        "in part, or another kind of file); copy it again, or pick another SAM2 .pt file."
    )


def load_sam2_weights(model, checkpoint: str | Path, config: str = "") -> None:
    """Load the weights of a sam2 ``.pt`` checkpoint into ``model``.

    Raises
    ------
    CheckpointError
        Saying why not: a missing or unreadable file, no ``"model"`` entry, or
        weights of another model than ``config`` (naming the model they fit).
    """
    path = Path(checkpoint)
    state = _read_weights(path)
    _check_fits(path, state, model.state_dict(), config)
    model.load_state_dict(state)


def check_sam2_checkpoint(checkpoint: str | Path, config: str) -> None:
    """Check that a checkpoint's weights load into the network of ``config`` (a sam2
    configuration or a Hugging Face id), as :func:`load_sam2_weights` checks them, by their
    names and shapes only (the file memory-mapped, no model built): a file that cannot be
    loaded is said once, before any image is segmented with it.

    Raises
    ------
    CheckpointError
        As :func:`load_sam2_weights` would.
    """
    path, config = Path(checkpoint), _configuration(config)
    _check_fits(path, _read_weights(path, mmap=True), _expected_weights(config), config)


def _check_fits(path: Path, state: dict, expected: dict, config: str) -> None:
    """Refuse the weights ``state`` of a file where they are not the ``expected`` ones of
    the network of the sam2 configuration ``config``, saying which model they seem for."""
    mismatch = mismatched_weights(expected, state)
    if not mismatch:
        return
    partial = _part_of_a_model(path, state)
    if partial is not None:  # no configuration makes it whole
        raise partial
    guess = guess_model(state)
    which = (
        f"it seems to be a checkpoint of {guess}"
        if guess
        else "it matches none of the SAM2 and SAM2.1 models"
    )
    # Named as the user chose it: by the model id whose configuration it is.
    chosen = next((name for name, (yaml, _) in HF_MODELS.items() if yaml == config), config)
    raise CheckpointError(
        f"{path.name} does not match the configuration {chosen or 'of this model'}: {which} "
        f"({mismatch}). Choose the configuration (or model id) that the checkpoint was "
        "trained with."
    )


def identify_sam2_checkpoint(path: str | Path) -> str:
    """The Hugging Face id of the model whose network a checkpoint's weights fit, told by
    their names and shapes: the file is memory-mapped, so only its index is read, and the
    network's weights are compared without numbers (a file picked is checked at once, with
    what Segment's loading checks, not when Segment loads it).

    Raises
    ------
    CheckpointError
        For a file that holds no SAM2 model's weights, saying what it is, or not just the
        weights of the model it fits: some missing (part of it, the parts missing named,
        and SAM2 or SAM2.1 only where the part tells), or more or differently shaped ones
        (another network's, a modified model's).
    """
    path = Path(path)
    state = _read_weights(path, mmap=True)
    model = guess_model(state)
    if model is None:
        raise CheckpointError(
            f"{path.name} holds no weights of a SAM2 or SAM2.1 model (its network matches "
            "none of them); pick a SAM2 checkpoint, such as sam2.1_hiera_tiny.pt."
        )
    config, published = HF_MODELS[model]
    mismatch = mismatched_weights(_expected_weights(config), state)
    if not mismatch:
        return model
    partial = _part_of_a_model(path, state)
    if partial is not None:
        raise partial
    # What to do before the counts, which say more to whoever made the file.
    raise CheckpointError(
        f"{path.name} holds weights of another network or of a modified model; pick a "
        f"published checkpoint, such as {published}. (Compared with {model}: {mismatch}.)"
    )


def _part_of_a_model(path: Path, state: dict) -> CheckpointError | None:
    """The refusal of the weights ``state`` of a file when they are part of a SAM2 network
    (what they hold fits it, weights are missing), naming the parts missing; else None.

    SAM2.1 is told from SAM2 by weights of its own (no_obj_embed_spatial…): a part without
    them, the image encoder's say, fits either, and is not named as one of them.
    """
    encoder = _signature_of_state(state)
    if encoder is None:
        return None
    fits = [
        model
        for model, (config, _) in HF_MODELS.items()
        if _signature_of_config(config)[:2] == encoder[:2]
        and _holds_part(_expected_weights(config), state)
    ]
    if not fits:
        return None
    # Said of the one it lacks least of: SAM2.1 has three weights more than SAM2.
    expected = min((_expected_weights(HF_MODELS[fit][0]) for fit in fits), key=len)
    missing = len(expected.keys() - state.keys())
    if not missing:  # a whole model's
        return None
    lacks = _parts_missing(expected, state)
    if len(fits) > 1:
        which = "a SAM2 model"  # SAM2 or SAM2.1, not counted: SAM2.1 would lack three more
    else:
        which, lacks = fits[0], f"{lacks}: {missing} weights missing"
    # One file named, the newest it fits (HF_MODELS lists SAM2.1 after SAM2): the dock says
    # all of it, after what SAM2 keeps, in the four lines its status shows at 1280 x 800.
    return CheckpointError(
        f"{path.name} is part of {which} ({lacks}): pick a whole checkpoint "
        f"({HF_MODELS[fits[-1]][1]})."
    )


def _holds_part(expected: dict, state: dict) -> bool:
    """Whether the weights ``state`` are some of the ``expected`` ones, with their shapes."""
    return mismatched_weights({k: v for k, v in expected.items() if k in state}, state) is None


#: The parts of a SAM2 network a message names, by the first name of their weights; the
#: others (memory attention and encoder, object pointers…) are the memory it tracks
#: objects with in videos, loaded with the model all the same.
_PARTS = {
    "image_encoder": "image encoder",
    "sam_prompt_encoder": "prompt encoder",
    "sam_mask_decoder": "mask decoder",
}
_MEMORY = "memory modules"


def _parts_missing(expected: dict, state: dict) -> str:
    """The parts of a SAM2 network of which the weights ``state`` lack some of the
    ``expected`` ones: "no prompt encoder or mask decoder", "image encoder incomplete",
    "no memory modules"."""

    def parts(names) -> set[str]:
        return {_PARTS.get(name.split(".")[0], _MEMORY) for name in names}

    lacking, held = parts(expected.keys() - state.keys()), parts(state)
    if lacking - {_MEMORY}:  # the memory, for videos, is named where nothing else lacks:
        lacking.discard(_MEMORY)  # the dock's few lines go to the parts that segment images
    absent, incomplete = (
        [part for part in (*_PARTS.values(), _MEMORY) if part in which]
        for which in (lacking - held, lacking & held)
    )
    said = [f"no {_listed(absent, 'or')}"] if absent else []
    if incomplete:
        said.append(f"{_listed(incomplete, 'and')} incomplete")
    return "; ".join(said)


def _listed(words: list[str], conjunction: str) -> str:
    """Words as a sentence lists them: "a", "a or b", "a, b or c"."""
    return f" {conjunction} ".join(filter(None, (", ".join(words[:-1]), words[-1])))


@functools.cache
def _expected_weights(config: str) -> dict[str, torch.Tensor]:
    """The state dict of the network of a sam2 configuration, as names, shapes and kinds
    without numbers (on the "meta" device). The weights are not initialised (most of the
    seconds a build takes); composing the configuration and building still take about half
    a second, once per configuration."""
    from sam2.build_sam import build_sam2

    with _WeightsWithoutNumbers():
        return build_sam2(config, None, device="meta").state_dict()


class _WeightsWithoutNumbers(TorchFunctionMode):
    """Makes the weights of the layers, which ``torch.empty`` allocates, on the "meta"
    device, and skips the in-place operations on them (their initialisation, ``normal_``…):
    there are no numbers to set, and some of them, on meta tensors, import torch's symbolic
    shapes (sympy: seconds). Not ``with torch.device("meta")``: sam2 builds Hiera with the
    ``item()`` of a tensor, which a meta tensor has not. A mode holds in its thread only: a
    SAM2 run in a worker at the same time is untouched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty:
            kwargs["device"] = "meta"
        elif _in_place(func):
            meta = [
                value
                for value in (*args, *kwargs.values())
                if isinstance(value, torch.Tensor) and value.is_meta
            ]
            if meta:
                return meta[0]
        return func(*args, **kwargs)


def _in_place(func) -> bool:
    """Whether a torch function changes a tensor in place (``normal_``; not ``__get__``)."""
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


def _read_weights(path: Path, mmap: bool = False) -> dict:
    """The state dict of a sam2 checkpoint file (see :func:`load_sam2_weights`), its
    tensors memory-mapped with ``mmap`` where the file allows (not read until used)."""
    check_sam2_file(path)
    if mmap:
        with open(path, "rb") as fh:
            mmap = fh.read(4) == _TORCH_SIGNATURES[0]  # torch maps only its zip format
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        if "Unsupported global" in str(err):
            # Not torch's own text: it advises turning off the check that refuses such files.
            raise CheckpointError(
                f"{path.name} is not a SAM2 checkpoint: it holds more than weights, which "
                "are not loaded for safety; pick a SAM2 .pt file."
            ) from err
        raise _unreadable(path) from err
    state = content.get("model") if isinstance(content, dict) else None
    for weights in (content, state):
        if _sam1_weights(weights):
            raise CheckpointError(
                f"{path.name} is a checkpoint of Segment Anything (SAM 1, such as sam_vit_b "
                "or micro-sam's models), not of SAM2, whose networks differ; pick a SAM2 or "
                "SAM2.1 checkpoint (such as sam2.1_hiera_tiny.pt)."
            )
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path.name} holds no SAM2 weights (no 'model' entry); pick a checkpoint "
            "published with SAM2 or saved as {'model': state_dict}."
        )
    return state


def _sam1_weights(weights) -> bool:
    """Whether ``weights`` (a file's contents) are those of Segment Anything's first
    networks: a ViT image encoder of ``blocks`` and a ``patch_embed``, where SAM2's Hiera
    is a ``trunk``."""
    if not isinstance(weights, dict):
        return False
    return any(
        isinstance(key, str)
        and key.startswith(("image_encoder.blocks.", "image_encoder.patch_embed."))
        for key in weights
    )


def _signature_of_state(state: dict) -> tuple[int, int, bool] | None:
    if not isinstance(state.get(_EMBED_KEY), torch.Tensor):
        return None
    blocks = {
        key[len(_BLOCK_PREFIX) :].split(".")[0] for key in state if key.startswith(_BLOCK_PREFIX)
    }
    return int(state[_EMBED_KEY].shape[0]), len(blocks), _V21_KEY in state


@functools.cache
def _signature_of_config(config: str) -> tuple[int, int, bool]:
    """What tells the network of a sam2 configuration (see :func:`guess_model`), read once
    per configuration: composing one with Hydra takes about 0.1 s, and a picked checkpoint
    is compared with up to all eight."""
    from hydra import compose
    from sam2.modeling.backbones.hieradet import Hiera

    defaults = inspect.signature(Hiera).parameters
    model = compose(config_name=config).model
    trunk = model.image_encoder.trunk
    embed_dim = trunk.get("embed_dim", defaults["embed_dim"].default)
    stages = trunk.get("stages", defaults["stages"].default)
    return int(embed_dim), int(sum(stages)), bool(model.get(_V21_KEY, False))


def guess_model(state: dict) -> str | None:
    """The Hugging Face id of the model whose architecture a state dict fits, or ``None``."""
    signature = _signature_of_state(state)
    if signature is None:
        return None
    for model_id, (config, _) in HF_MODELS.items():
        if _signature_of_config(config) == signature:
            return model_id
    return None


class Sam2ModelCache:
    """The SAM2 model last loaded, for a (source, device), owned by a widget or a session:
    loading another lets the one before go, with the memory it held (a GPU's: trying
    models one after another kept them all, and the largest ran out of memory).

    Parameters
    ----------
    builder
        Builds a model from ``(source, device, config)``; by default Hugging Face
        ids are downloaded (or taken from the hub cache) and local checkpoints
        are loaded with their configuration. Tests pass a builder of small
        random models.
    """

    def __init__(self, builder: Callable[..., object] | None = None):
        self._builder = builder or _build_from_source
        self._last: tuple[tuple, object] | None = None  # (key, model)

    @staticmethod
    def key(source: str, device: str | torch.device = "auto", config: str | None = None) -> tuple:
        """What tells the models apart: the source and configuration, on the device
        ``device`` resolves to ("auto" and "cuda" are one), and a local checkpoint's size
        and modification time: a file replaced at the same path (another model downloaded
        to its name, or fine-tuned into it) is loaded again, not taken from memory."""
        return source, config or "", str(get_device(device)), _file_stamp(source)

    def holds(self, source: str, device: str | torch.device = "auto", config: str | None = None):
        """Whether :meth:`get` would give the model loaded last (not load another)."""
        return self._last is not None and self._last[0] == self.key(source, device, config)

    def get(self, source: str, device: str | torch.device = "auto", config: str | None = None):
        """The model for a Hugging Face id or a local checkpoint path on ``device``, built once.

        Parameters
        ----------
        source
            A Hugging Face id (see :data:`HF_MODELS`) or the path of a ``.pt`` file.
        device
            ``"auto"``, ``"cuda"``, ``"mps"``, ``"cpu"``…
        config
            The sam2 configuration of a local checkpoint (required for files), or
            the Hugging Face id of the model it was fine-tuned from.
        """
        if not self.holds(source, device, config):
            self._last = None  # before the new one is built: not both in memory
            model = self._builder(source, get_device(device), config)
            self._last = (self.key(source, device, config), model)
        return self._last[1]

    def __len__(self) -> int:
        return 0 if self._last is None else 1


def _file_stamp(source: str) -> tuple[int, int] | None:
    """A local checkpoint's size and modification time (one ``stat``: hashing hundreds of
    MB at every slider move would be too slow); None for a Hugging Face id, whose cached
    download stays at its revision, or a missing file (loading it says so)."""
    if source in HF_MODELS:
        return None
    try:
        stat = Path(source).stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _build_from_source(source: str, device: torch.device, config: str | None):
    if source in HF_MODELS:
        return build_sam2_model(
            config_for(source), checkpoint=download_checkpoint(source), device=device
        )
    check_sam2_file(source)  # what the file is says more than a missing configuration
    if config is None:
        raise CheckpointError(
            f"{Path(source).name} is a local checkpoint: also choose its configuration "
            f"(one of {sorted(cfg for cfg, _ in HF_MODELS.values())})."
        )
    return build_sam2_model(_configuration(config), checkpoint=source, device=device)


def _configuration(config: str) -> str:
    """The sam2 configuration of ``config``: a Hugging Face id's, or ``config`` itself."""
    return HF_MODELS[config][0] if config in HF_MODELS else config
