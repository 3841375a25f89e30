"""Re-assigning the role of an opened channel (input image, other image, mask) in a viewer.

The reader guesses which channel is the transmitted-light input and which holds
masks; when the guess is wrong, :func:`set_role` turns the layer into the right
kind (Image or Labels) in place, keeping its name, position in the layer list,
scale and provenance. Qt-free: it works on a napari ``LayerList``.
"""

from __future__ import annotations

import os

import numpy as np
from napari.layers import Image, Labels, Layer

from .io.atomic import same_file
from .io.files import in_memory, room_for_masks
from .io.layers import (
    FLAT_PIXELS,
    METADATA_KEY,
    RESULT_ROLE,
    ROLES,
    Role,
    layer_info,
    plane_looks_like_ids,
)
from .labels import LabelsError, as_labels

#: What a channel given a role of another kind of layer keeps: its name, its look and where
#: it lies, turned and sheared too (and moved by its affine, which :func:`_convert` adds).
_SHARED_STATE = (
    "name",
    "scale",
    "translate",
    "rotate",
    "shear",
    "units",
    "axis_labels",
    "visible",
    "opacity",
)


def role_of(layer: Layer) -> str | None:
    """The role recorded on a layer: a channel role (``"input"``, ``"image"``, ``"mask"``),
    ``"result"`` for a layer a step computed, or ``None`` for layers made in the viewer.

    A Labels or single-channel Image layer that another reader opened from a file
    (napari's own, for a PNG of label ids) is a channel too, ``"mask"`` or ``"image"``
    by its kind, so that its role can be corrected like any other channel's.
    """
    info = layer_info(layer)
    other_reader = isinstance(layer, Labels) or (isinstance(layer, Image) and not layer.rgb)
    if not info and not (other_reader and _opened_from(layer)):
        return None
    return info.get("role", "mask" if isinstance(layer, Labels) else "image")


def source_of(layer: Layer) -> str | None:
    """The file (or sample) a layer was opened from, or its result was computed from."""
    return layer_info(layer).get("source") or _opened_from(layer)


def labels_file_of(layer: Layer) -> str | None:
    """The file a result's labels were opened from (saved and opened again), which its
    source, the scan it was computed from, does not name: the file of labels compared, as
    ``cytomask evaluate`` records it. None where the layer is its source's own."""
    opened = _opened_from(layer)
    if not opened or os.path.abspath(opened) == os.path.abspath(source_of(layer) or ""):
        return None
    return os.path.abspath(opened)


def files_of(layers) -> list[str]:
    """Every file ``layers`` came from: the one each records (the file its result was
    computed from) and the one napari opened it from, whichever reader it used."""
    return [
        file for layer in layers
        for file in (layer_info(layer).get("source"), _opened_from(layer)) if file
    ]  # fmt: skip


def scan_files(layers) -> list[str]:
    """The files of ``layers`` that hold images to segment (scans, photos): any Image
    layer opened from a file but one of label ids that napari opened as an image."""
    return [
        source_of(layer) for layer in layers
        if isinstance(layer, Image) and source_of(layer) and not holds_ids(layer)
    ]  # fmt: skip


def lies_with(other: Layer, layer: Layer, scans: list[str]) -> bool:
    """Whether ``other`` belongs with the image ``layer``: it is of the same file, labels
    or a result of no file, or a file of its own (no scan among ``scans``) beside
    ``layer``'s file, as a ground truth is kept: in its folder, named after it
    (``A.tif``, ``A_truth.png``) or with no other scan there (``set1/raw.tif``,
    ``set1/instances_ids.png``). Another scan's layers, and other folders' files, do not."""
    mine, its = source_of(layer), source_of(other)
    if its is None:
        return isinstance(other, Labels) or layer_info(other).get("role") == RESULT_ROLE
    if same_file(its, mine):
        return True
    if mine is None or any(same_file(its, scan) for scan in scans):
        return False
    folder = os.path.dirname(os.path.realpath(mine))
    if os.path.dirname(os.path.realpath(its)) != folder:
        return False
    stem = os.path.basename(mine).split(".")[0]
    others = {
        os.path.realpath(scan) for scan in scans
        if os.path.dirname(os.path.realpath(scan)) == folder
    } - {os.path.realpath(mine)}  # fmt: skip
    return os.path.basename(its).startswith(stem) or not others


def other_files(prediction: Layer, truth: Layer, scans: list[str]) -> tuple[str, str] | None:
    """The files ``prediction`` and ``truth`` come from, by name (by path where the names
    are the same), when the truth does not lie with the prediction's image
    (:func:`lies_with`: another scan's mask, or a file of its own in
    another folder); else None. A ground truth in a file of its own beside the image
    (``instances_ids.png`` beside ``raw.tif``) is how most are kept: no note."""
    files = (source_of(prediction), source_of(truth))
    if None in files or lies_with(truth, prediction, scans):
        return None
    # Named with their folders where those differ: every Usiigaci image is 'raw.tif'.
    folders = {os.path.dirname(file) for file in files}
    names = tuple(
        os.path.join(os.path.basename(os.path.dirname(f)), os.path.basename(f))
        if len(folders) > 1 else os.path.basename(f)
        for f in files
    )  # fmt: skip
    return files if names[0] == names[1] else names


def holds_ids(layer: Layer) -> bool:
    """Whether a 2-D Image layer that another reader opened from a file holds label ids,
    as its name or a sample of its pixels say (napari opens a PNG of cell ids as an
    image). A stack is left alone: its planes may be channels of different kinds. Only
    arrays in memory are looked at: lazy data are not read for a guess."""
    if not isinstance(layer, Image) or layer.rgb or layer_info(layer) or not _opened_from(layer):
        return False
    data = layer.data
    if not isinstance(data, np.ndarray) or not np.issubdtype(data.dtype, np.integer):
        return False
    if data.ndim != 2:
        return False
    return plane_looks_like_ids(layer.name, data)


def looks_like_ids(layer: Image) -> bool:
    """Whether an Image layer's first plane (of its smallest level: cheap for a pyramid)
    looks like label ids by a sample of its pixels, as the reader tells a mask channel."""
    data = layer.data[-1] if getattr(layer, "multiscale", False) else layer.data
    return plane_looks_like_ids(layer.name, data)


def may_hold_ids(layer: Layer) -> bool:
    """Whether an Image layer may hold label ids: one another reader opened, as
    :func:`holds_ids` guesses, or a channel the plugin's reader opened as an image whose
    pixels were flat when it sampled them (:data:`~napari_cytomask.io.layers.FLAT_PIXELS`):
    a field of one cell, or ids of cells the guess missed."""
    return holds_ids(layer) or (
        isinstance(layer, Image) and bool(layer_info(layer).get(FLAT_PIXELS))
    )


def _opened_from(layer: Layer) -> str | None:
    """The file napari opened a layer from, whichever reader it used."""
    return getattr(getattr(layer, "source", None), "path", None)


def is_channel(layer: Layer) -> bool:
    """Whether ``layer`` is a channel of an opened scan (an image of light, or a mask),
    never a result."""
    return role_of(layer) in ROLES


def channel_layers(layers) -> list[Layer]:
    """The layers of a layer list that are channels of an opened scan (never results)."""
    return [layer for layer in layers if is_channel(layer)]


def scans_without_input(layers) -> list[str]:
    """The scans (by file) the plugin's reader opened whose channels hold images but none
    it took for the input: nothing marks the channel to segment."""
    roles: dict[str, set] = {}
    for layer in channel_layers(layers):
        if layer_info(layer).get("channel_index") is not None:  # the plugin's reader's
            roles.setdefault(source_of(layer), set()).add(role_of(layer))
    return [source for source, kinds in roles.items() if "image" in kinds and "input" not in kinds]


def set_role(layers, layer: Layer, role: Role) -> Layer:
    """Give a channel layer a new role, converting it between Image and Labels as needed.

    Only one channel of a source can be the input: making a channel the input
    turns the previous input of the same file into an ordinary image channel.

    Parameters
    ----------
    layers
        The viewer's layer list, which holds ``layer``.
    layer
        A channel layer: opened by the plugin, or by another reader from a file.
    role
        ``"input"``, ``"image"`` or ``"mask"``.

    Returns
    -------
    Layer
        The layer that now holds the channel: ``layer`` itself, or its replacement.

    Raises
    ------
    ValueError
        For an unknown role, or a layer the plugin did not open.
    napari_cytomask.labels.LabelsError
        When a channel with fractional values, or a colour image, is made a mask.
    """
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of {ROLES}.")
    if role_of(layer) not in ROLES:
        raise ValueError(f"Layer {layer.name!r} was not opened from a file as a channel.")
    if role == "input":
        for other in channel_layers(layers):
            same_scan = source_of(other) == source_of(layer)
            if other is not layer and same_scan and role_of(other) == "input":
                _record(other, "image")
    wants_labels = role == "mask"
    if wants_labels and getattr(layer, "rgb", False):
        raise LabelsError(
            f"'{layer.name}' is a colour (RGB) image: its pixels hold three values, where a "
            "mask holds one id. Open the mask as a single-channel image, or split the colours "
            "first (right-click the layer > Split RGB) and make one of them the mask."
        )
    if wants_labels == isinstance(layer, Labels):
        _record(layer, role)
        return layer
    replacement = _convert(layer, wants_labels)
    _record(replacement, role, source_of(layer))
    index = layers.index(layer)
    layers.remove(layer)
    layers.insert(index, replacement)
    return replacement


def _record(layer: Layer, role: Role, source: str | None = None) -> None:
    """Record ``role`` on ``layer`` (and, for a layer another reader opened, its file,
    which a converted layer would not know)."""
    meta = layer_info(layer)
    meta["role"] = role
    if source and "source" not in meta:
        meta["source"] = source
    layer.metadata = {**layer.metadata, METADATA_KEY: meta}


def _convert(layer: Layer, to_labels: bool) -> Layer:
    state = {key: getattr(layer, key) for key in _SHARED_STATE}
    # Its matrix: the layer's transform itself would be shared with the new layer.
    state["affine"] = layer.affine.affine_matrix
    info = dict(layer_info(layer))
    data = layer.data
    multiscale = getattr(layer, "multiscale", False)
    if to_labels:
        what = f"channel {layer.name!r}"
        if np.issubdtype(np.dtype(layer.dtype), np.integer):
            # Check one plane of the smallest level for negative ids; in memory where it
            # fits, as the reader opens masks, else lazy.
            as_labels(np.asarray(_first_plane(data[-1] if multiscale else data)), what)
            if not multiscale and data.nbytes <= room_for_masks():
                data = in_memory(data)
        else:
            data = [as_labels(d, what) for d in data] if multiscale else as_labels(data, what)
            # The channel's own type (bool, float), given back if it becomes an image again.
            info = {**info, _IMAGE_DTYPE: np.dtype(layer.dtype).str}
        # Its look, given back too: a green GFP channel came back grey.
        info = {**info, _IMAGE_LOOK: {
            "colormap": layer.colormap.name,
            "contrast_limits": [float(v) for v in layer.contrast_limits],
            "gamma": float(layer.gamma),
            "blending": str(layer.blending),
        }}  # fmt: skip
        return Labels(data, multiscale=multiscale, **state, metadata=_with_info(layer, info))
    look = info.pop(_IMAGE_LOOK, None) or {"colormap": "gray"}
    own = info.pop(_IMAGE_DTYPE, None)
    if own is not None:
        data = (
            [_as_image(d, np.dtype(own)) for d in data]
            if multiscale
            else _as_image(data, np.dtype(own))
        )
    metadata = _with_info(layer, info)
    try:
        return Image(data, multiscale=multiscale, metadata=metadata, **look, **state)
    except (KeyError, ValueError, TypeError):  # a look this napari cannot give (a colormap
        # of another session, by name): the channel itself matters more
        return Image(data, multiscale=multiscale, colormap="gray", metadata=metadata, **state)


#: Where a channel made a mask keeps its own dtype, which labels could not hold.
_IMAGE_DTYPE = "image_dtype"
#: Where it keeps its look as an image (colormap, contrast limits, gamma, blending).
_IMAGE_LOOK = "image_look"


def _with_info(layer: Layer, info: dict) -> dict:
    """The metadata of ``layer`` with ``info`` as the plugin's record."""
    metadata = {key: value for key, value in layer.metadata.items() if key != METADATA_KEY}
    return {**metadata, METADATA_KEY: info} if info else metadata


def _as_image(labels, dtype: np.dtype):
    """Labels back in the image's own ``dtype``: a mask channel of booleans comes back as
    booleans, unless ids other than 0 and 1 were painted into it since."""
    if dtype.kind == "b" and np.asarray(labels).max(initial=0) > 1:
        return labels
    return np.asarray(labels).astype(dtype)


def _first_plane(array):
    """A 2D plane of ``array`` (the first along every leading axis), cheap for lazy data."""
    return array[(0,) * (array.ndim - 2)] if array.ndim > 2 else array
