"""Layer pickers and layer making shared by the step widgets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels, Layer
from napari.utils.notifications import show_info
from napari.utils.transforms import Affine
from qtpy.QtWidgets import QComboBox, QLabel

from ..io.layers import (
    FRAME_NOUNS,
    METADATA_KEY,
    edited_frames,
    frame_key,
    frames_made_of,
    is_result,
    layer_info,
    made_frames,
    named_frames,
    pixel_size_um,
    record_written,
)
from ..labels import min_label_dtype
from ..roles import holds_ids, lies_with, role_of, same_file, scan_files, source_of


def resolution_level(layer, level: int = 0) -> tuple[Any, dict]:
    """One resolution level of a layer, and the geometry that lays it over level 0.

    napari sizes level *k* of a multiscale layer by its downsample factors
    (level 0's shape over level *k*'s, per axis). A pixel of level *k* stands for
    a block of ``factor`` level-0 pixels per axis, so its centre is the block's,
    ``(factor - 1) / 2`` level-0 pixels past the centre of the block's first
    pixel. A layer made from level *k* therefore overlays level 0 with
    ``scale = layer.scale * factor`` and
    ``translate = layer.translate + (factor - 1) / 2 * layer.scale``: its pixel
    edges, and so its world extent, are the image's, and it lies where napari
    draws level *k* of the image itself.

    Parameters
    ----------
    layer
        An Image or Labels layer, multiscale or not.
    level
        0 for full resolution, higher for coarser levels.

    Returns
    -------
    data
        The level's array (lazy arrays stay lazy; an RGB image keeps its colour axis).
    geometry
        ``scale``, ``translate``, ``rotate``, ``shear``, ``affine``, ``units`` and
        ``axis_labels`` of a layer of the level's shape (without a colour axis) that
        overlays the layer.

    Raises
    ------
    ValueError
        For a level the layer does not have.
    """
    multiscale = getattr(layer, "multiscale", False)
    levels = layer.data if multiscale else [layer.data]
    if not 0 <= level < len(levels):
        raise ValueError(
            f"{layer.name!r} has {len(levels)} resolution level(s); there is no level {level}."
        )
    scale = np.asarray(layer.scale, float)
    factors = np.ones_like(scale)
    if multiscale:
        factors = np.asarray(layer.downsample_factors[level], float)[: scale.size]
    # The half-block offset is in the layer's own pixel axes: turned and sheared as they are.
    rotate = np.asarray(layer.rotate, float)
    shear = np.eye(scale.size)
    shear[np.triu_indices(scale.size, 1)] = layer.shear
    translate = np.asarray(layer.translate, float) + rotate @ shear @ ((factors - 1) / 2 * scale)
    geometry = {
        "scale": tuple(float(s) for s in scale * factors),
        "translate": tuple(float(t) for t in translate),
        "rotate": rotate,
        "shear": np.asarray(layer.shear, float),
        "affine": np.asarray(layer.affine.affine_matrix, float),
        "units": tuple(layer.units),
        "axis_labels": tuple(layer.axis_labels),
    }
    return levels[level], geometry


def lay_over(layer, geometry: dict) -> None:
    """Lay ``layer`` as ``geometry`` (:func:`resolution_level`'s) says: an earlier result
    that a new run updates goes over its input as the input lies now, moved, turned or
    given a pixel size since."""
    here = resolution_level(layer)[1]
    for name in ("units", "scale", "translate", "rotate", "shear", "affine"):
        # Each change redraws the layer: a live preview's output stays as it lies unless
        # its input moved.
        if not np.array_equal(here[name], geometry[name]):
            setattr(layer, name, geometry[name])


#: How each part of a layer's placement in the viewer (:func:`resolution_level`'s geometry)
#: transforms its pixels, by the name a note gives it.
_PLACEMENT = {
    "scale": lambda placed: Affine(scale=placed["scale"]),
    "translation": lambda placed: Affine(translate=placed["translate"]),
    "rotation": lambda placed: Affine(rotate=placed["rotate"]),
    "shear": lambda placed: Affine(shear=placed["shear"]),
    "affine transform": lambda placed: Affine(affine_matrix=placed["affine"]),
}


def misplaced_note(first, second, paired: str, levels: tuple[int, int] = (0, 0)) -> str:
    """A note when two layers taken pixel by pixel (``paired``: "are compared pixel by
    pixel") do not line up in the viewer, naming what of their placement differs ("scale",
    "rotation", …) over the axes both have (an image saved as a stack of one has one more);
    "" when they line up. ``levels``: the resolution level of each that is taken, placed as
    :func:`resolution_level` lays it over its layer."""
    placed = [
        resolution_level(layer, level)[1]
        for layer, level in zip((first, second), levels, strict=True)
    ]
    common = min(len(geometry["scale"]) for geometry in placed)
    differ = [
        name
        for name, placement in _PLACEMENT.items()
        if not np.allclose(
            *(
                placement(geometry)
                .set_slice(range(len(geometry["scale"]) - common, len(geometry["scale"])))
                .affine_matrix
                for geometry in placed
            )
        )
    ]
    if not differ:
        return ""
    return (
        f"Note: '{first.name}' and '{second.name}' do not line up in the viewer (their "
        f"{' and '.join(differ)} differ{'s' * (len(differ) == 1)}), yet {paired}."
    )


def layer_by_id(layers, unique_id):
    """The layer of ``layers`` with ``unique_id`` (what combo boxes keep as item data, so a
    renamed layer stays chosen), or None when it was closed."""
    return next((layer for layer in layers if layer.unique_id == unique_id), None)


def level_names(layer) -> list[str]:
    """Names of a layer's resolution levels for a choice: ``full (1024 × 1024 px)``,
    ``1/2 (512 × 512 px)``…"""
    multiscale = getattr(layer, "multiscale", False)
    factors = layer.downsample_factors if multiscale else np.ones((1, layer.ndim))
    shapes = layer.level_shapes if multiscale else [layer.data.shape]
    names = []
    for k, (factor, shape) in enumerate(zip(factors, shapes, strict=True)):
        height, width = shape[layer.ndim - 2 : layer.ndim]
        size = f"({height} × {width} px)"
        names.append(f"full {size}" if k == 0 else f"1/{float(factor[-1]):g} {size}")
    return names


def compact_labels(data) -> np.ndarray:
    """Labels in the smallest unsigned type that holds every id, and at least 16 bits.

    napari colours 8- and 16-bit labels on the GPU, while wider ones are mapped
    pixel by pixel in the GUI thread (hundreds of ms for a 1024² image). Not
    8 bits: napari refuses to paint an id the type cannot hold, so a user adding
    cells to a result of 200 would be stopped at id 256.
    """
    data = np.asarray(data)
    dtype = min_label_dtype(max(int(data.max(initial=0)), np.iinfo(np.uint16).max))
    return data.astype(dtype, copy=False)


def write_frames(layer: Layer, frames: Iterable[tuple[tuple, np.ndarray]]) -> None:
    """Put each ``(index, frame)`` of ``frames`` into ``layer``'s data, in place, one after
    the other (an item of an iterator is made once those before it are written), and
    redraw once: a step that made some frames of a stack changes those frames only, and
    a redraw per frame of 20 held napari for 0.7 s. A labels type too narrow for a
    frame's ids is widened first, no more than they need."""
    for index, frame in frames:
        if isinstance(layer, Labels) and frame.size:
            widest = int(frame.max())
            if widest > np.iinfo(layer.data.dtype).max:
                layer.data = layer.data.astype(min_label_dtype(widest))
        layer.data[index] = frame
    layer.refresh()


def forget_edits(layer: Layer, frame: tuple | None = None) -> None:
    """Clear the undo and redo history of a Labels layer a step has just written a new
    result into: napari keeps it over new data, and Redo painted a stroke of the earlier
    result into the new cells (Undo, its pixels as they were then). The history is
    napari's own (no public call clears it), reached past the proxy napari gives plugins;
    a napari that keeps it elsewhere keeps it as it is.

    ``frame``, the one frame a step wrote alone: the edits of the other frames, which the
    layer keeps, stay undoable (they were all forgotten, and Ctrl+Z undid nothing). Only
    the history up to the newest edit that reaches into ``frame`` is forgotten, as the
    edits before it may lie under it."""
    if not isinstance(layer, Labels):
        return
    labels = getattr(layer, "__wrapped__", layer)
    for name in ("_undo_history", "_redo_history"):
        history = getattr(labels, name, None)
        if history is None:
            continue
        reaching = [i for i, item in enumerate(history) if frame is None or _reaches(item, frame)]
        kept = list(history)[reaching[-1] + 1 :] if reaching else list(history)
        history.clear()
        history.extend(kept)


def _reaches(item, frame: tuple) -> bool:
    """Whether an item of napari's Labels history changes pixels of ``frame`` (its index
    on the leading axes); an item of a form not known here is taken to."""
    for atom in item:
        key = getattr(atom, "slice_key", None)  # a brush stroke or fill's bounding box
        if key is not None:
            if all(_holds(part, at) for part, at in zip(key, frame, strict=False)):
                return True
        elif isinstance(atom, tuple) and len(atom) == 3 and len(atom[0]) >= len(frame):
            indices = atom[0]  # the indices of the pixels changed, per axis
            on = np.ones(np.shape(indices[0]), bool)
            for axis, at in enumerate(frame):
                on &= np.asarray(indices[axis]) == at
            if on.any():
                return True
        else:
            return True
    return False


def _holds(part, at: int) -> bool:
    """Whether an index along one axis (a slice of step 1, or a number) takes ``at``."""
    if isinstance(part, slice):
        return (part.start or 0) <= at and (part.stop is None or at < part.stop)
    return int(part) == at


#: What a segmenting step runs on in a stack: every frame, or the one on show (the keys
#: of :class:`FramesChoice`, kept in settings and records).
ALL_POSITIONS, CURRENT_POSITION = "all positions", "current position"


def frame_nouns(layer: Layer | None) -> tuple[str, str]:
    """What one frame of ``layer``'s stack is called, and several: positions, time points or
    planes where one labelled axis comes before Y and X; frames for other or several axes
    (positions of a time-lapse); positions where there is no stack (a tile scan's word)."""
    labels = {str(a).upper() for a in layer.axis_labels[:-2]} if layer is not None else set()
    if len(labels) == 1:
        return FRAME_NOUNS.get(labels.pop(), ("frame", "frames"))
    return ("frame", "frames") if labels else FRAME_NOUNS["P"]


class FramesChoice(QComboBox):
    """Segment every frame of a stack or the one on show, named after what the frames of
    ``picker``'s layer are ("all time points" for a time-lapse): :meth:`key` is
    :data:`ALL_POSITIONS` or :data:`CURRENT_POSITION`, whatever the words.
    :attr:`label` is the row's label, named so too ("Time points")."""

    def __init__(self, picker: LayerPicker, keys: tuple[str, str], tooltip: str):
        super().__init__()
        self._picker = picker
        self.label = QLabel()
        for key in keys:
            self.addItem(key, key)
        self.setToolTip(tooltip)
        picker.currentIndexChanged.connect(self._name)
        self._name()

    def key(self) -> str:
        """:data:`ALL_POSITIONS` or :data:`CURRENT_POSITION`."""
        return self.currentData()

    def text_of(self, key: str) -> str:
        """The words the choice ``key`` is shown with now."""
        return self.itemText(self.findData(key))

    def _name(self, *_) -> None:
        layer = self._picker.layer()
        one, several = frame_nouns(layer)
        # A single image has no frames to choose among: "all positions" read as if it had.
        self.setEnabled(layer is None or layer.ndim > 2)
        words = {ALL_POSITIONS: f"all {several}", CURRENT_POSITION: f"current {one}"}
        # New words are no new choice: remembered settings are saved when one is made.
        self.blockSignals(True)
        for index in range(self.count()):
            self.setItemText(index, words[self.itemData(index)])
        self.blockSignals(False)
        self.label.setText(several.capitalize())
        self.setAccessibleName(several.capitalize())  # what screen readers say of it


def frame_on_show(viewer, layer, shape) -> tuple[int, ...]:
    """Index of the frame of ``layer`` (of data ``shape``) the viewer shows, along its
    leading axes: the viewer's position in the layer's own pixels (its scale and translate
    may differ from other layers'), within the layer; ``()`` for a single image."""
    lead = len(shape) - 2
    if lead <= 0:
        return ()
    point = layer.world_to_data(viewer.dims.point)[:lead]
    return tuple(int(np.clip(round(p), 0, n - 1)) for p, n in zip(point, shape[:lead], strict=True))


def cells_in(layer, n: int) -> str:
    """``"17 cells in 'name'"``, saying so when they are counted over a stack's frames, and
    which frames hold them when the layer's record says only some were made (a split of a
    stack segmented one position at a time splits those only)."""
    shape = layer.data.shape
    frames = int(np.prod(shape[:-2]))
    made = made_frames(shape, frames_made_of(layer))
    if made is not None and not made.all():
        kept = [frame_key(place) for place in zip(*np.nonzero(made), strict=True)]
        return (
            f"{n} cell{'' if n == 1 else 's'} in '{layer.name}', in "
            f"{named_frames(kept, layer.axis_labels)} of "
            f"{frames} only (the others were never made)"
        )
    said = f"{n} cell{'' if n == 1 else 's'} in '{layer.name}'" + (
        f", in all {frames} frames" if frames > 1 else ""
    )
    if "Z" in [str(label).upper() for label in layer.axis_labels[:-2]]:
        # Plane by plane, as every step segments: a cell is as many cells as its planes.
        said += ", found plane by plane (a cell that spans several planes is counted in each)"
    return said


#: What a step does to its input and what it makes, as :func:`closed_during_run` says it.
_RUN_WORDS = {"segment": ("segmented", "its cells were"), "split": ("split", "its split was")}
#: What to do when the input closed was made in napari, by step.
_MADE_AGAIN = {
    "segment": "Make it again, then segment it.",
    "split": "Segment again, then split the new cells.",
}


def closed_during_run(layer, step: str = "segment") -> str:
    """The status of a run whose input layer was closed before its result came; ``step``
    is what the run did: ``"segment"`` or ``"split"``."""
    doing, made = _RUN_WORDS[step]
    if is_result(layer):  # made in napari: no file to open it from again
        again = _MADE_AGAIN[step]
    elif source_of(layer) is None:  # added by a script or the console
        again = f"Add it again to {step} it."
    else:
        again = f"Open it again to {step} it."
    return f"'{layer.name}' was closed while it was being {doing}, so {made} not added. {again}"


def changed_during_run(layer, step: str = "segment") -> str:
    """The status of a run whose input layer's pixels changed (replaced, painted) before
    its result came; ``step`` as :func:`closed_during_run`."""
    doing, made = _RUN_WORDS[step]
    return (
        f"'{layer.name}' changed while it was being {doing}, so {made} not added (made "
        f"from its pixels before). Run the step again to {step} the pixels it shows now."
    )


def role_changed_during_run(layer, step: str = "segment") -> str:
    """The status of a run whose input ``layer`` was replaced by its channel with another
    role (an image made a mask becomes a Labels layer, and back); ``step`` as
    :func:`closed_during_run`."""
    doing, made = _RUN_WORDS[step]
    kind = "a mask (a Labels layer)" if isinstance(layer, Labels) else "an image"
    return (
        f"'{layer.name}' was made {kind} while it was being {doing}, so {made} not added. "
        f"Run the step again to {step} the input it shows now."
    )


def result_slot(
    viewer,
    name: str,
    kind: type,
    shape,
    source: str | None,
    frame: tuple | None = None,
    last: Layer | None = None,
) -> tuple[str, Layer | None]:
    """Where a step puts its result called ``name``, made from the file ``source``
    (:func:`~napari_cytomask.roles.source_of` its input): the name to use, and the earlier
    result there to update in place (``None``: add a new layer under that name).

    A layer of that name that no step made (the user's own, such as hand-drawn
    labels, or another plugin's), a result the user has changed since
    (:func:`~napari_cytomask.io.layers.edited_by_hand`), or one made from another file
    (two scans whose channels have one name) is never replaced: the result takes the
    first free ``name [k]``, the same on every run. A step that writes one ``frame``
    alone (one position, a preview) writes it into a result whose edits all lie in its
    other frames, which keep them: segmenting a stack position by position, correcting
    each, made a layer per position. An earlier result of another kind or shape is
    removed.

    ``last``, the layer a live step (SAM2's sliders) wrote its previous result of this
    input into, takes the new one wherever it still may, whatever its name now: renamed
    by the user, or ``name [2]`` while ``name`` is free again (its edits undone), the
    sliders went on in another layer than the one on show.
    """
    if last is not None and last in viewer.layers and is_result(last):
        fits = isinstance(last, kind) and tuple(last.data.shape) == tuple(shape)
        why, elsewhere = _kept_because(last, source, frame) if fits else ("", False)
        if why is None:
            return last.name, _marked_elsewhere(last, elsewhere)
    base, k, kept, elsewhere = name, 1, None, False
    while name in viewer.layers:
        earlier = viewer.layers[name]
        if is_result(earlier):
            # A frame of another stack (another shape) is never written into it.
            fits = isinstance(earlier, kind) and tuple(earlier.data.shape) == tuple(shape)
            why, elsewhere = _kept_because(earlier, source, frame if fits else None)
            if why is None:
                break
            kept = kept or (name, why)
        k += 1
        name = f"{base} [{k}]"
    if name not in viewer.layers:
        if kept is not None:  # said once, when the result's new layer is made
            show_info(f"'{kept[0]}' {kept[1]}, so it is kept; the new result is in '{name}'.")
        return name, None
    earlier = viewer.layers[name]
    # isinstance, not type(): plugins may see layers through napari's proxy objects.
    if isinstance(earlier, kind) and tuple(earlier.data.shape) == tuple(shape):
        return name, _marked_elsewhere(earlier, elsewhere)
    viewer.layers.remove(earlier)
    return name, None


def _marked_elsewhere(result: Layer, elsewhere: bool) -> Layer:
    """``result``, marked where a frame is written into it while the user's edits lie in
    its other frames: they stay the user's once the frame is written (record_written)."""
    if elsewhere:
        info = {**layer_info(result), "edits_elsewhere": True}
        result.metadata = {**result.metadata, METADATA_KEY: info}
    return result


def _kept_because(
    result, source: str | None, frame: tuple | None = None
) -> tuple[str | None, bool]:
    """Why an earlier result may not take a new one made from ``source`` (in ``frame``
    alone, if given), if it may not; and whether it may because the user's edits all lie
    in other frames than ``frame``. Its frames are compared only after napari said its
    pixels changed: a live preview does not go over a whole stack in the GUI thread at
    every step.

    A result opened from a file (an export, a result of ``cytomask segment``) is the
    file's, edited or not: its edits from before were made in another session, where
    napari's events no longer say them, and it may be the only copy of them."""
    opened = result.source.path
    if opened:
        return f"was opened from {Path(opened).name}", False
    elsewhere = False
    if layer_info(result).get("touched"):
        edits = edited_frames(result)  # None: not frame by frame
        at = int(np.ravel_multi_index(frame, result.data.shape[:-2])) if frame else None
        if edits is None or (edits and (at is None or at in edits)):
            return "holds your edits", False
        elsewhere = bool(edits)
    other = source_of(result)
    if (other is None and source is None) or same_file(other, source):
        return None, elsewhere
    return f"holds the results of {Path(other).name if other else 'an image of no file'}", False


def calibrate(viewer, layer, size_um: float) -> list[Layer]:
    """Give ``layer`` pixels of ``size_um`` µm, and move every layer that lies over it with
    it: a size typed for an image that lost its own, or holds a wrong one, is the image's
    size from then on, in its results' scale bar and exported areas too. Returns the layers
    changed.

    The layers moved are those of its file (channels, results at any resolution level) and
    those covering it exactly that lie with it (:func:`~napari_cytomask.roles.lies_with`):
    results of results, labels of no file, a ground truth kept in a file of its own beside
    it (which napari may have opened as an image). Each keeps its place on the image: its scale
    and offset are multiplied by the same factor, so a result made at a coarser level keeps
    its coarser pixels. Another scan's layers are left as they are.
    """
    if pixel_size_um(layer.scale, layer.units) == (size_um, size_um):
        return []
    factor = size_um / np.abs(np.asarray(layer.scale, float)[-2:])
    source, scans, bounds = source_of(layer), scan_files(viewer.layers), pixel_bounds(layer)
    moved = [
        other for other in viewer.layers
        if other.unique_id == layer.unique_id
        or same_file(source_of(other), source)
        or (lies_with(other, layer, scans) and np.allclose(pixel_bounds(other), bounds))
    ]  # fmt: skip
    for other in moved:
        scale, translate = (np.array(v, float) for v in (other.scale, other.translate))
        scale[-2:] *= factor
        translate[-2:] *= factor
        units = (*(str(unit) for unit in other.units[:-2]), "µm", "µm")
        other.scale, other.translate, other.units = scale, translate, units
    return moved


def pixel_bounds(layer) -> np.ndarray:
    """Where a layer's outer pixel edges lie in Y and X, in the viewer."""
    extent = np.asarray(layer.extent.world, float)[:, -2:]
    half = np.abs(np.asarray(layer.scale, float)[-2:]) / 2
    return np.stack([extent[0] - half, extent[1] + half])


def labels_layer(data, name: str, geometry: dict, metadata: dict) -> Labels:
    """A Labels layer for a step's result, made where the result is computed.

    ``geometry`` comes from :func:`resolution_level`, ``metadata`` from
    :func:`~napari_cytomask.io.layers.result_metadata`; the data are made compact
    (:func:`compact_labels`) and recorded as the step's
    (:func:`~napari_cytomask.io.layers.record_written`): once a user changes them, no
    later run replaces the layer (:func:`result_slot`).
    """
    layer = Labels(compact_labels(data), name=name, metadata=metadata, **geometry)
    record_written(layer)
    for emitter in pixel_events(layer):
        emitter.connect(_touched)
    return layer


def add_result(viewer, layer: Labels, guide: Layer | None = None) -> Labels:
    """Add a step's new result layer to the viewer. The ground truth it lies over (a
    scan's mask channel, a label file kept beside the image) is hidden, as the sample
    opens its mask: two label layers over each other mix their colours, and the cells
    found cannot be judged; so is ``guide``, the labels the run kept its masks on (SAM2's
    foreground, the U-Net's cells). A notification names them and how to show them
    again. A result without cells hides nothing: there is nothing to see over them."""
    scans, bounds = scan_files(viewer.layers), pixel_bounds(layer)
    found = bool(np.asarray(layer.data[-1] if layer.multiscale else layer.data).any())
    truths = [
        other for other in viewer.layers
        if isinstance(other, Labels) and other.visible and role_of(other) == "mask"
        and lies_with(other, layer, scans) and np.allclose(pixel_bounds(other), bounds)
    ] if found else []  # fmt: skip
    guides = [
        guide for guide in [guide]
        if found and isinstance(guide, Labels) and guide in viewer.layers and guide.visible
        and guide not in truths
    ]  # fmt: skip
    viewer.add_layer(layer)
    for other in (*truths, *guides):
        other.visible = False
    said = [f"'{truth.name}' (the ground truth)" for truth in truths] + [
        f"'{guide.name}' (the cells it kept masks on)" for guide in guides
    ]
    if said:
        them = ("its", "it") if len(said) == 1 else ("their", "them")
        show_info(
            f"{' and '.join(said)} {'is' if len(said) == 1 else 'are'} hidden so that the "
            f"cells found in '{layer.name}' can be seen; click {them[0]} eye in the layer "
            f"list to show {them[1]} again."
        )
    return layer


def pixel_events(layer) -> tuple:
    """The events of a labels layer that follow a change of its pixels: ``data`` a new
    array, ``paint`` the end of a brush stroke, ``labels_update`` fills and partial edits,
    ``set_data`` undo, redo and a refresh after writing into its array."""
    events = layer.events
    return events.data, events.paint, events.labels_update, events.set_data


def _touched(event) -> None:
    # Only a flag: what changed is found by comparing with what was written (_kept_because).
    info = event.source.metadata.get(METADATA_KEY)
    if info is not None:
        info["touched"] = True


class RoleWatcher:
    """Call ``changed(layer)`` when a layer of the viewer gets another role. A role is
    recorded in the layer's metadata, by any widget or a script; other metadata changes
    (a result's, at every run) are no new role. napari holds the watcher's methods
    weakly: its owner keeps it.
    """

    def __init__(self, viewer, changed: Callable[[Layer], None]):
        self._changed = changed
        self._roles: dict[int, str | None] = {}
        viewer.layers.events.inserted.connect(self._inserted)
        for layer in viewer.layers:
            self._watch(layer)

    def _inserted(self, event) -> None:
        self._watch(event.value)

    def _watch(self, layer) -> None:
        self._roles[id(layer)] = role_of(layer)
        layer.events.metadata.connect(self._metadata_changed)

    def _metadata_changed(self, event) -> None:
        layer = event.source
        role = role_of(layer)
        if self._roles.get(id(layer)) != role:
            self._roles[id(layer)] = role
            self._changed(layer)


class LayerPicker(QComboBox):
    """The viewer's layers of some types, kept in step with the layer list.

    A layer choice is never a remembered setting: it follows the open layers.
    Its default is the first layer of the preferred role, else the newest one (for an
    input, the newest scan's first image channel); a layer of the preferred role opened
    later (a new scan's input channel) becomes the choice, as does a channel given that
    role, wherever it is given (:meth:`follow_role`).

    Parameters
    ----------
    viewer
        The viewer.
    types
        Layer types offered.
    prefer_role
        Default to a layer of this role (``"input"``, ``"mask"``).
    tooltip
        What the chosen layer is used for.
    accept
        Optional extra test a layer must pass to be offered.
    fallback
        Optional test a layer must pass to be chosen by the picker itself (by default, or
        when the chosen layer is closed); one that fails it is offered, for the user to
        pick. With none that passes, nothing is chosen.
    """

    def __init__(
        self,
        viewer,
        types,
        prefer_role: str | None = None,
        tooltip: str = "",
        accept: Callable[[Layer], bool] | None = None,
        fallback: Callable[[Layer], bool] | None = None,
    ):
        super().__init__()
        self._viewer = viewer
        self._types = types
        self._prefer_role = prefer_role
        self._accept = accept or (lambda layer: True)
        self._fallback = fallback or (lambda layer: True)
        self.setToolTip(tooltip)
        self.setMinimumContentsLength(10)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self._offered: list[Layer] = []
        # A role set anywhere (step 1, the Channel roles dock, a script) is a change of
        # metadata only, for an image made the input.
        self._role_watcher = RoleWatcher(viewer, self.follow_role)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.renamed):
            event.connect(self.refresh)
        # A method, not a lambda: the viewer's events hold methods weakly, so a closed
        # dock's pickers are let go instead of kept listening on deleted widgets.
        events.inserted.connect(self._inserted)
        self.refresh()

    def _inserted(self, event) -> None:
        self.follow_role(event.value)

    def follow_role(self, layer) -> None:
        """Choose ``layer`` if it is offered and has the preferred role (a channel opened,
        or given that role): the user means to work on it."""
        if self._prefer_role and role_of(layer) == self._prefer_role:
            if any(offered is layer for offered in self.layers()):
                self.set_layer(layer)

    def layers(self) -> list[Layer]:
        """The layers offered."""
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, self._types) and self._accept(layer)
        ]

    def refresh(self, event=None) -> None:
        """List the layers again, keeping the choice while its layer is there, renamed or not."""
        current = self.currentText()
        index = self.currentIndex()
        chosen = self._offered[index] if 0 <= index < len(self._offered) else None
        self._offered = self.layers()
        names = [layer.name for layer in self._offered]
        kept = next((i for i, layer in enumerate(self._offered) if layer is chosen), None)
        if kept is None:
            default = self._default()
            kept = -1 if default is None else self._offered.index(default)
        # Said once, and only when the choice or its name changed: a layer added beside
        # the chosen one is no new input (the watershed dock suggested its threshold
        # again, in place of the one the user had set).
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        self.setCurrentIndex(kept)
        self.blockSignals(False)
        if self.layer() is not chosen or self.currentText() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def _default(self) -> Layer | None:
        """The first offered layer of the preferred role, else the newest one; for an
        input, the newest scan's first image channel (by its index in the file), which
        ``cytomask segment`` takes from a file none of whose channels the reader took for
        transmitted light, and never label ids opened as an image while there are others.
        Only layers that pass ``fallback`` are taken; None when none does."""
        offered = [layer for layer in self._offered if self._fallback(layer)]
        if not offered:
            return None
        if self._prefer_role == "input":
            # Not a PNG of cell ids that napari opened as an image beside its raw image.
            offered = [ly for ly in offered if not holds_ids(ly)] or offered
        preferred = [ly for ly in offered if role_of(ly) == self._prefer_role]
        if preferred:
            return preferred[0]
        newest = offered[-1]
        source = source_of(newest)
        if self._prefer_role != "input" or source is None:
            return newest
        channels = [ly for ly in offered if source_of(ly) == source and role_of(ly) == "image"]
        if not channels:
            return newest
        # By the file's order, not the layer list's (which the user may have reordered).
        return min(channels, key=lambda ly: layer_info(ly).get("channel_index") or 0)

    def set_types(self, types) -> None:
        """Offer layers of other types (e.g. when a step's mode changes)."""
        self._types = types
        self.refresh()

    def layer(self) -> Layer | None:
        """The chosen layer, or ``None``."""
        index = self.currentIndex()
        if not 0 <= index < len(self._offered):
            return None
        layer = self._offered[index]
        return layer if layer in self._viewer.layers else None

    def set_layer(self, layer) -> None:
        """Choose ``layer`` (e.g. the previous step's output)."""
        self.refresh()
        self.setCurrentText(layer.name)
