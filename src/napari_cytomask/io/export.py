"""Exporting segmentation results: label files, per-object tables, COCO RLE and provenance.

Everything here takes plain arrays and mappings, so the napari export panel and
the command line write the same files. Every file goes through
:func:`~napari_cytomask.io.atomic.write_atomically`.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import json
import math
import os
import platform
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.segmentation import relabel_sequential

from ..labels import as_labels, compact_ids, regions_as_cells
from ..progress import Progress, drain, one_line
from ..rle import coco_rle
from .atomic import (
    NAME_BYTES,
    Together,
    WriteError,
    check_folder_writable,
    file_in_the_way,
    fit_name,
    json_ready,
    locked_folders,
    moved_in_together,
    one_of,
    reason,
    same_file,
    too_long,
    write_atomically,
    write_json,
)
from .files import ScanPositions, file_pixel_size, recorded_positions
from .layers import (
    frame_axes,
    frame_place,
    frames_made_of,
    labels_digest,
    made_frames,
    offset_um,
    pixel_size_um,
    time_step,
)
from .writers import FILE_FORMATS, FORMATS, label_writer, rounded_in_fiji

#: The packages whose versions a result records, from the dock as from the command line.
_VERSIONED = (
    "napari-cytomask",
    "napari",
    "numpy",
    "scikit-image",
    "tifffile",
    "zarr",
    "torch",
    "segmentation-models-pytorch",
    "sam2",
    "dask",
    "distributed",
)


class ExportInterrupted(KeyboardInterrupt):
    """Ctrl+C while an export moved its files in: ``replaced`` (names) hold the new export
    already; the other files it wrote were removed, the others of the folder are as they
    were (an export is otherwise written whole or not at all)."""

    def __init__(self, replaced: Sequence[str]) -> None:
        self.replaced = list(replaced)
        super().__init__(f"interrupted after replacing {', '.join(self.replaced)}")

    def __reduce__(self):
        return type(self), (self.replaced,)


class ExportExists(FileExistsError):
    """Files an export would write are there already; nothing was written.

    Attributes
    ----------
    paths
        The files already there.
    layers
        The names of the layers (exports) whose files they are, in the order exported.
    """

    def __init__(self, paths: Sequence[Path], layers: Sequence[str] = ()) -> None:
        self.paths = list(paths)
        self.layers = list(layers)
        super().__init__(
            f"{len(self.paths)} output file(s) already exist, e.g. {self.paths[0]}; nothing "
            "was written. Choose another folder, or allow overwriting (cytomask export "
            "--overwrite; overwrite=True from Python)."
        )

    def __reduce__(self):
        return type(self), (self.paths, self.layers)


@dataclass
class LabelsExport:
    """One label image to export, with what describes it.

    Attributes
    ----------
    name
        The layer's name: that of the output files too, unless ``file_name``.
    labels
        Integer label image, 2D or a stack with a leading tile/time axis (numpy, or lazy
        until :meth:`loaded`).
    scale, units, axis_labels
        Per-axis pixel size, unit names and axis names.
    translate
        Per-axis offset in ``units`` (the layer's translate): where the labels lie beside
        their scan (a tile's stage position, the half pixel a result of a coarser level
        is moved by).
    features
        Per-object columns, e.g. ``{"label": ids, "predicted_iou": ...}``; the
        ``label`` column says which id each row belongs to.
    intensities
        Images to measure inside each object, by channel name (same shape as
        ``labels``).
    parameters
        The settings the labels were made with, for the provenance file.
    source
        The input file.
    method
        What made the labels (``"unet"``, ``"sam2"``, ``"watershed_split"`` …).
    model
        The model that made them: ``name``, ``path`` and ``sha256`` (see
        :func:`~napari_cytomask.io.layers.model_record`).
    channel_index, channel_name
        The channel of ``source`` that was segmented.
    made_from
        The layer the labels were computed from and, when it was itself a result,
        how that was made (see :func:`~napari_cytomask.io.layers.result_metadata`).
    versions
        Package versions when the labels were made; by default those of the export.
    file_name
        Base name of the output files when not ``name``: :func:`from_layer` gives the
        layer's name without the " [1]" napari adds to a name already taken, which follows
        the order files were opened in (see :func:`export_labels`).
    edited
        Whether a user painted into the labels after a step made them (``None``: not
        known, for labels no step made).
    previewed_frames
        Frames of a stack last made alone (by a preview, or SAM2 on one position) with
        other settings than ``parameters``, the settings of the stack's last run: those
        settings, by frame index.
    frames_made
        The frames (indices along the axes before Y and X, as "1,2") that hold results
        when only some were made, one at a time; ``None`` when the whole stack was.
    position_names
        The name of each index of a ``P`` axis ("A1 site 3"), as the scan records them:
        the tables' ``position_name`` column and the OME-TIFF's image names;
        :func:`export_labels` reads them from ``source`` where it can, these are kept
        for labels whose scan is not there any more (as their record names them).
    turned
        Whether the layer is rotated, sheared or given an affine transform in the viewer:
        its files and the tables' positions in µm keep its own rows and columns (the
        export says so).
    labels_file
        The file the labels were read from (``cytomask export`` of label files); ``None``
        for a layer's.
    renumbered
        Whether the export numbered the cells 1, 2, 3… (:func:`_renumbered`): the ids of
        its files and tables are not the layer's.
    """

    name: str
    labels: np.ndarray
    scale: Sequence[float] | None = None
    units: Sequence[str] | None = None
    axis_labels: Sequence[str] | None = None
    translate: Sequence[float] | None = None
    features: Mapping[str, Sequence] = field(default_factory=dict)
    intensities: Mapping[str, np.ndarray] = field(default_factory=dict)
    parameters: Mapping[str, object] = field(default_factory=dict)
    source: str | None = None
    method: str | None = None
    model: Mapping[str, object] | None = None
    channel_index: int | None = None
    channel_name: str | None = None
    edited: bool | None = None
    previewed_frames: Mapping[str, object] = field(default_factory=dict)
    frames_made: Sequence[str] | None = None
    made_from: Mapping[str, object] | None = None
    versions: Mapping[str, str | None] | None = None
    file_name: str | None = None
    position_names: Sequence[str] | None = None
    turned: bool = False
    labels_file: str | None = None
    renumbered: bool = False

    def loaded(self) -> LabelsExport:
        """This export with its labels and images in memory: :func:`from_layer` leaves a
        lazy layer's data on disk, to be read where the export runs (a worker, not napari's
        GUI thread)."""
        return replace(
            self,
            labels=np.asarray(self.labels),
            intensities={name: np.asarray(image) for name, image in self.intensities.items()},
        )


def segment_record(labels: str | os.PathLike) -> dict:
    """The provenance record that ``cytomask segment`` wrote beside a label file, or {},
    its ``source`` found again if moved (:func:`located_source`).

    Raises
    ------
    ValueError
        When the record cannot be read or is not one of ``cytomask segment``.
    """
    from .tiff import file_stem

    labels = Path(labels)
    record = labels.with_name(f"{file_stem(labels)}.json")
    if not record.is_file():
        return {}
    info, problem = _read_record(record)
    if info is None:
        raise ValueError(f"{record} is not a readable provenance file ({problem}); move it aside.")
    if problem is not None:
        raise ValueError(
            f"{record} is not a provenance file of 'cytomask segment' ({problem}); move it "
            f"aside to export {labels.name} without it."
        )
    earlier = info.get("earlier")
    # A run stopped before its labels replaced these (Ctrl+C, a killed worker): they are
    # still the earlier run's, as its record, kept in the new one, describes them. Labels
    # of the new run, moved in as it was killed, are not: a TIFF's fingerprint differs
    # (:func:`describes`), and a store is the one the new record names.
    if (
        info.get("finished") is False
        and isinstance(earlier, dict)
        and earlier.get("output") == labels.name
        and record_problem(earlier) is None
        and not _the_store(info, labels)
    ):
        info = earlier
    return located_source(info, labels)


def _the_store(info: dict, labels: Path) -> bool:
    """Whether ``labels`` is the OME-Zarr store the unfinished record ``info`` was made
    for (the folder keeps its inode when it is renamed into place)."""
    try:
        return info.get("store_inode") == os.stat(labels).st_ino
    except OSError:
        return False


def _read_record(record: Path) -> tuple[object, str | None]:
    """What the JSON file ``record`` holds (None when it cannot be read) and what makes it no
    ``cytomask segment`` record (:func:`record_problem`; why it cannot be read), or None."""
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        return None, str(err)
    return info, record_problem(info)


#: The kinds of the entries of a ``cytomask segment`` record that are read back, each of
#: which may be missing or null (a record edited by hand); ``float`` takes whole numbers
#: too, ``(list, kind)`` is a list of that kind.
_RECORD_KINDS = {
    "source": str, "source_from_record": str, "output": str, "segmented_on": str,
    "preset": dict, "model": dict, "options": dict, "versions": dict,
    "replaces": (list, str), "shape": (list, float), "channels_used": (list, float),
    "pixel_size_um": (list, float), "unet_zoom": (list, float), "unet_confidence": float,
    "unet_min_size_image_px": float, "source_bytes": int, "source_modified": float,
    "finished": bool, "position_names": (list, str), "earlier": dict, "store_inode": int,
}  # fmt: skip

#: The same of an export's provenance (:func:`provenance`).
_PROVENANCE_KINDS = {
    "outputs": (list, str), "layer": str, "source": str, "channel_index": int,
    "channel_name": str, "method": str, "parameters": dict, "previewed_frames": dict,
    "frames_made": (list, str), "edited_by_hand": bool, "model": dict, "made_from": dict,
    "shape": (list, float), "scale": (list, float), "units": (list, str),
    "axis_labels": (list, str), "translate": (list, float), "versions": dict,
    "labels_sha1": str, "position_names": (list, str), "labels_file": str, "options": dict,
    "renumbered": bool,
}  # fmt: skip


def _is_kind(value, kind) -> bool:
    """Whether ``value`` is of ``kind`` (:data:`_RECORD_KINDS`) as JSON gives it: true and
    false are no numbers."""
    if isinstance(kind, tuple):
        return isinstance(value, list) and all(_is_kind(item, kind[1]) for item in value)
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def _entries_problem(info, kinds: dict) -> str | None:
    """The first entry of ``info`` of another kind than ``kinds`` gives it, named; None
    when there is none."""
    if not isinstance(info, dict):
        return "it holds no table of entries"
    for key, kind in kinds.items():
        if info.get(key) is not None and not _is_kind(info[key], kind):
            return f"its {key!r} is {info[key]!r}"
    return None


def record_problem(info) -> str | None:
    """What makes ``info`` no ``cytomask segment`` record to read back, or None: the first
    entry of another kind than a run writes (a record damaged or edited by hand), named."""
    problem = _entries_problem(info, _RECORD_KINDS)
    if problem is not None:
        return problem
    for key in ("unet", "sam2", "split"):
        step = (info.get("preset") or {}).get(key)
        if step is not None and not isinstance(step, dict):
            return f"its preset's {key!r} is {step!r}"
    return None


def recorded_relative(info: dict, folder: Path) -> Path | None:
    """The scan a record in ``folder`` names relative to itself (``source_from_record``),
    as results moved together with their scans still name it; None when it names none."""
    relative = info.get("source_from_record")
    return Path(os.path.normpath(folder / relative)) if isinstance(relative, str) else None


def located_source(info: dict, labels: Path) -> dict:
    """A record of the labels at ``labels`` with its ``source`` found again when the
    results and their scan were moved together (say, to a shared drive): beside the record
    as it was then, or beside the labels. A scan found nowhere is warned about: the cells
    cannot be measured in it."""
    from .files import is_image

    source = info.get("source")
    # An OME-Zarr image is a folder, there as a TIFF file is.
    if not source or is_image(Path(source)):
        return info
    moved = recorded_relative(info, labels.parent)
    others = []
    for found in [*([moved] if moved else []), labels.parent / Path(source).name]:
        if is_image(found) and _is_the_scan(info, found):
            return {**info, "source": str(found)}
        if is_image(found):
            others.append(found)
    # Another scan of that name where it was looked for (another field of one camera, of
    # its size): its intensities, and napari's placing the cells on it, were of that field.
    elsewhere = (
        f" ({others[0]} lies where it was looked for, but is another file: its size or "
        f"its first and last bytes differ from those of the scan segmented)"
        if others
        else " (nor beside the labels)"
    )
    warnings.warn(
        f"{source}, the scan {labels.name} was made from, is not there any more{elsewhere}: "
        "its cells are exported without the intensities measured in them. Put the scan "
        "back, or beside the labels, to have them.",
        stacklevel=2,
    )
    return info


def _is_the_scan(info: dict, found: Path) -> bool:
    """Whether ``found`` is the scan a ``cytomask segment`` record describes, where the
    record keeps what tells (its size and :func:`~napari_cytomask.io.files.sample_digest`:
    records of earlier versions keep neither, and files are then taken by their name)."""
    from .files import sample_digest

    if not found.is_file():
        return True  # an OME-Zarr store: found by its name
    size, sample = info.get("source_bytes"), info.get("source_sample_sha1")
    if isinstance(size, int) and found.stat().st_size != size:
        return False
    return not isinstance(sample, str) or sample_digest(found) == sample


def recorded_fields(info: dict) -> dict:
    """The :class:`LabelsExport` fields a ``cytomask segment`` record (:func:`segment_record`)
    gives: its scan, method, settings (with the pixel size, enlargement and least cell area
    in the image's pixels that the U-Net ran at, and the pixel size it was given in place of
    the file's, ``pixel_size_given_um``), model (with the confidence the run
    measured, as a layer of the dock records it), the channel it segmented and the
    versions it ran."""
    preset = info.get("preset") or {}
    if isinstance(preset.get("unet"), dict):
        # What the U-Net step measured of this image, as a layer of the dock records it in
        # its settings: following the preset alone, a typed pixel size would be lost.
        measured = {
            "pixel_size_um": info.get("pixel_size_um"),
            "zoom": info.get("unet_zoom"),
            "min_size_image_px": info.get("unet_min_size_image_px"),
        }
        # The size the run was given in place of the file's (--pixel-size), which an export
        # records as given; records of earlier versions keep no options.
        if isinstance(info.get("options"), dict):
            measured["pixel_size_given_um"] = info["options"].get("pixel_size_um")
        preset = {**preset, "unet": {**preset["unet"], **measured}}
    model = info.get("model")
    if model is not None and info.get("unet_confidence") is not None:
        model = {**model, "confidence": info["unet_confidence"]}
    used = info.get("channels_used") or []
    return {
        "parameters": preset,
        "source": info.get("source"),
        "method": preset.get("method"),
        "model": model,
        "channel_index": used[0] if len(used) == 1 else None,
        "versions": info.get("versions"),
        "position_names": info.get("position_names"),
    }


def result_record(labels: str | os.PathLike, *, warn: bool = False) -> dict:
    """The ``cytomask segment`` record of a label file (opened in napari, or compared), or
    {}: another program's JSON of the same name (a labelme file, say) is no record of its
    labels, nor is one that cannot be read. ``warn`` says so of a record that cannot be
    read (cut short, say) or names these labels but is damaged: they open as labels of
    their own, not as the result of their scan, and the user is told why."""
    from .tiff import file_stem

    labels = Path(labels)
    try:
        record = segment_record(labels)
    except ValueError:
        record_file = labels.with_name(f"{file_stem(labels)}.json")
        info, problem = _read_record(record_file)
        # Another program's JSON of the same stem names no output; one cut short, nothing.
        if warn and (
            info is None or (isinstance(info, dict) and info.get("output") == labels.name)
        ):
            _opened_without(record_file, problem, f"of the run that made {labels.name}")
        return {}
    ours = record.get("output") == labels.name and isinstance(record.get("preset"), dict)
    return record if ours else {}


#: What an export's provenance says of its layer that the layer recorded, by the name
#: the layer's record (:func:`~napari_cytomask.io.layers.layer_info`) gives it.
_EXPORTED_FIELDS = ("source", "channel_index", "channel_name", "method", "parameters",
                    "previewed_frames", "frames_made", "edited_by_hand", "model", "made_from",
                    "versions", "position_names")  # fmt: skip


def reopened_result(labels: str | os.PathLike, data) -> dict:
    """The layer record of an exported result opened again: what the export's provenance
    beside the file (``<name>_provenance.json``) says of the layer it was exported from,
    its scan, settings, model and the frames made, and its ``translate`` (where it lay
    beside its scan, which a TIFF cannot hold; None if not recorded); that of labels
    ``cytomask segment`` wrote, from its record (:func:`_segmented_result`); or {} for
    other files.

    A label file of a result reopened the next day is then the result of its scan, not a
    mask of a file of its own: the metrics compare the frames that were made and pick the
    scan's ground truth, and an export again keeps what made it. Only a file the provenance
    lists, of the shape and ids it records (``data``, the file's labels: one written over
    since by another program is another's, which is said), is taken. Its ``source`` is as
    recorded: :func:`located_source` finds a scan moved since, for those who measure or
    show it."""
    from .layers import RESULT_ROLE

    labels = Path(labels)
    beside = provenance_beside(labels)
    record = _earlier_record(beside, warn=True)
    shape = np.shape(data)
    if labels.name not in _listed_outputs(record) or record.get("shape") != list(shape):
        return _segmented_result(labels, data)
    if not describes(record, data):
        warnings.warn(
            f"Labels opened without their record: {labels.name} was changed after its "
            f"export (its ids are not those {beside.name} records), so the scan and "
            "settings of that export are left out; it opens as labels of its own.",
            stacklevel=2,
        )
        return {}
    try:  # frames of this shape (a hand-edited record may name others)
        made = made_frames(shape, record.get("frames_made"))
    except (TypeError, ValueError):
        return {}
    if made is not None and not made.any():
        return {}
    fields = {key: record.get(key) for key in _EXPORTED_FIELDS}
    return {**fields, "translate": _recorded_translate(record, len(shape)), "role": RESULT_ROLE}


def _segmented_result(labels: Path, data) -> dict:
    """The layer record of labels ``cytomask segment`` wrote (:func:`result_record`), opened
    again: the result of its scan, as the dock's would be, when the run finished and wrote
    these labels (``data``, the file's: their shape and, where the record keeps it, their
    fingerprint); else {}. Labels changed since by another program (corrected in Fiji, say)
    are said to be labels of their own."""
    from .layers import RESULT_ROLE
    from .tiff import file_stem

    record = result_record(labels, warn=True)
    if record.get("finished") is not True or record.get("shape") != list(np.shape(data)):
        return {}
    if not describes(record, data):
        warnings.warn(
            f"Labels opened without their record: {labels.name} was changed after cytomask "
            f"segment wrote it (its ids are not those {file_stem(labels)}.json records), so the "
            "scan and settings of that run are left out; it opens as labels of its own.",
            stacklevel=3,
        )
        return {}
    # The channel's name is the scan's to say, once it is found (:func:`located_source`).
    fields = {**recorded_fields(record), "channel_name": None, "translate": None}
    return {**fields, "role": RESULT_ROLE}


def describes(record: dict, labels) -> bool:
    """Whether a ``cytomask segment`` record or an export's provenance describes ``labels``
    as they are now: the fingerprint it keeps is theirs (:func:`_holds_these`), or it keeps
    none (labels too large to fingerprint, an OME-Zarr store's, or an earlier version's)."""
    return record.get("labels_sha1") is None or _holds_these(record, labels_digest(labels))


def has_record(labels: str | os.PathLike) -> bool:
    """Whether a record beside the label file ``labels`` names it: that of the ``cytomask
    segment`` run or the export that wrote it (which may not describe it, changed since)."""
    labels = Path(labels)
    listed = _listed_outputs(_earlier_record(provenance_beside(labels)))
    return labels.name in listed or bool(result_record(labels))


def recorded_axes(labels: str | os.PathLike, ndim: int) -> dict:
    """The axis names, pixel sizes and units the provenance beside an exported file records
    for it (``scale``, ``units``, ``axis_labels``, those of ``ndim`` entries; finite
    positive sizes), as :class:`LabelsExport` takes them: for a file that holds none (a
    NumPy or PNG file), exported again with its pixel size and positions. {} for a file
    the provenance does not list."""
    labels = Path(labels)
    record = _earlier_record(provenance_beside(labels))
    if labels.name not in _listed_outputs(record):
        return {}
    axes = {key: record.get(key) for key in ("scale", "units", "axis_labels")}
    if not all(s > 0 and math.isfinite(s) for s in axes["scale"] or [math.nan]):
        axes["scale"] = None
    return {key: tuple(value) for key, value in axes.items() if value and len(value) == ndim}


def _recorded_translate(record: dict, ndim: int) -> list[float] | None:
    """The translate a provenance records for labels of ``ndim`` axes; None when it records
    none (an earlier version's) or not one finite number per axis (a hand-edited one)."""
    translate = record.get("translate")
    if not isinstance(translate, list) or len(translate) != ndim:
        return None
    numbers = [v for v in translate if isinstance(v, int | float) and not isinstance(v, bool)]
    return numbers if len(numbers) == ndim and all(map(math.isfinite, numbers)) else None


def provenance_beside(labels: Path) -> Path:
    """The provenance file an export writes beside a label file it names after its stem."""
    from .tiff import file_stem

    return labels.with_name(f"{file_stem(labels)}_provenance.json")


def check_provenance_name(labels: Path) -> None:
    """Raise unless the provenance :func:`save_provenance` writes beside ``labels`` can be
    named: ``_provenance.json`` in place of the suffix makes a longer name than the labels',
    and a name near the limit would leave the labels saved without it. Checked before the
    labels are written, so that then nothing is.

    Raises
    ------
    ValueError
        Saying by how many bytes the name is too long.
    """
    why = too_long(provenance_beside(labels).name)
    if why:
        raise ValueError(
            f"The name {labels.name} is too long for the provenance file saved beside it, "
            "which keeps it the result of its scan: named after its stem with "
            f"_provenance.json, that file's name {why}. Nothing was written."
        )


def save_provenance(export: LabelsExport, labels: Path) -> Path | None:
    """Write the provenance of a result saved on its own (napari's *Save Layers*) beside
    its file, as an export does, so that the file opens again as the result it is
    (:func:`reopened_result`).

    A provenance of other files of that name is theirs: it is kept, but no longer lists
    the file just saved over one of them, which it does not describe any more; any other
    file of that name is left alone. None then: no provenance was written. Its name is
    checked before the labels are written (:func:`check_provenance_name`)."""
    beside = provenance_beside(labels)
    earlier = _earlier_record(beside) if beside.exists() else {}
    listed = _listed_outputs(earlier) if beside.exists() else [labels.name]
    others = [name for name in listed if name != labels.name]
    digest = labels_digest(export.labels)
    if listed == [labels.name] or (others and _holds_these(earlier, digest)):
        # Its own provenance, or that of the same labels in other formats (saved as .tif,
        # then as .ome.tif): the file joins them.
        kept = [labels.parent / name for name in others if (labels.parent / name).exists()]
        return write_json(beside, provenance(export, [*kept, labels], digest), overwrite=True)
    if labels.name in listed:
        write_json(beside, {**earlier, "outputs": others}, overwrite=True)
    return None


def exported_fields(record: dict) -> dict:
    """The :class:`LabelsExport` fields of a reopened result's record
    (:func:`reopened_result`), to export it again as its first export described it."""
    # What an earlier version's export did not record is left to the defaults.
    fields = {key: value for key, value in record.items() if value is not None}
    fields.pop("role", None)
    if "edited_by_hand" in fields:
        fields["edited"] = fields.pop("edited_by_hand")
    return fields


def _unnumbered(name: str, source: str | None = None) -> str:
    """A layer name without the " [1]" napari adds to a name already taken, wherever it
    is: a result is named after its image ("raw [1] U-Net cells"). A " [2]" that ends the
    name of the file it comes from, ``source`` ("HeLa [2].tif"), is the file's, and stays,
    whatever napari made of it at the start of the name (opened twice, "HeLa [3]": napari
    counts on from a name's last number): the cells of "HeLa [2].tif" were written as
    "HeLa U-Net cells", the name "HeLa.tif"'s would have."""
    from .tiff import file_stem

    own = re.fullmatch(r"(.*) \[\d+\]", file_stem(source) if source else "")
    numbered = own and re.match(re.escape(own[1]) + r" \[\d+\]", name)
    if numbered:
        return own[0] + _unnumbered(name[numbered.end() :])
    return re.sub(r" \[\d+\]", "", name)


def from_layer(layer, image_layers: Sequence = ()) -> LabelsExport:
    """Describe a napari Labels layer for export, measuring image layers of its shape.

    Works on anything shaped like a napari layer (``name``, ``data``, ``scale``,
    ``units``, ``axis_labels``, ``features``, ``metadata``, and ``translate`` where it is
    moved), so it needs no viewer.
    What the layer records (:func:`~napari_cytomask.io.layers.layer_info`: source
    file and channel, method, parameters, model, versions) goes into the
    provenance file as it is; labels opened from a result of ``cytomask segment``
    are described by its record (:func:`segment_record`).

    Every image of the labels' shape is measured, but for the channels of another scan
    named as the channels of the labels' own scan, when that is among ``image_layers``
    (another well's intensities would be read as its own by channel name). An image of
    another file is measured under its name and its file's, "GFP (B2.tif)": a table read
    by channel name does not take it for the cells' own, whether or not their scan is open.
    Images are measured under their names without napari's numbering unless two would
    share a column, and the files are named so (:attr:`LabelsExport.file_name`): the
    second field opened is "raw [1]", and its table would have other columns than the
    first's. A file's single channel, named after the file, is measured as ``intensity``
    (:func:`~napari_cytomask.io.layers.measured_as`): well A01's and well A02's tables
    have the same columns.
    """
    from ..roles import source_of
    from .layers import edited_by_hand, is_result, layer_info, measured_as

    meta = layer_info(layer)
    opened = None if is_result(layer) else source_of(layer)
    record = result_record(opened) if opened and os.path.isfile(opened) else {}
    if record and isinstance(layer.data, np.ndarray) and not describes(record, layer.data):
        record = {}  # changed since the run wrote them (in napari, or before it opened them)
    if record:
        meta = {**meta, **recorded_fields(record), "channel_name": None}
    own = [image for image in image_layers if same_file(source_of(image), meta.get("source"))]

    # Not another scan's channels of the same names ("GFP [1]" beside its own "GFP"): a
    # table read by channel name would take another well's intensities for its own.
    def unnumbered(image) -> str:
        return _unnumbered(image.name, source_of(image))

    names = Counter(unnumbered(image) for image in own)

    def column(image, name: str) -> str:
        """An image's column: another file's is named after that file too."""
        file = source_of(image)
        return f"{name} ({Path(file).name})" if file and meta.get("source") is not None else name

    others = [i for i in image_layers if i not in own and unnumbered(i) not in names]
    plain_others = Counter(column(image, unnumbered(image)) for image in others)
    measured = {}  # by the name the table gives them
    for image in image_layers:
        # Numbered only when two images would be one column otherwise.
        if image in own:
            plain = unnumbered(image)
            after_file = bool(layer_info(image).get("named_after_file"))
            measured[measured_as(plain, after_file) if names[plain] == 1 else image.name] = image
        elif image in others:
            plain = column(image, unnumbered(image))
            measured[plain if plain_others[plain] == 1 else column(image, image.name)] = image
    if record:  # the segmented channel's name, as the scan's layer has it
        meta["channel_name"] = next(
            (
                layer_info(image).get("channel_name")
                for image in own
                if layer_info(image).get("channel_index") == meta["channel_index"]
            ),
            None,
        )
    features = getattr(layer, "features", None)
    columns = (
        {}
        if features is None or len(features) == 0
        else {str(name): np.asarray(features[name]) for name in features.columns}
    )
    if "index" in columns and "label" not in columns:
        columns["label"] = columns.pop("index")
    # A pyramid exports its full resolution, at the layer's own scale.
    labels = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    shape = np.shape(labels)
    return LabelsExport(
        name=layer.name,
        # A copy of labels in memory: painting while the export runs changes nothing. Lazy
        # data is read where the export runs (LabelsExport.loaded), not here on napari's GUI
        # thread: a stroke painted into a Zarr layer meanwhile may reach the export or not.
        labels=np.array(labels) if isinstance(labels, np.ndarray) else labels,
        scale=tuple(layer.scale),
        units=tuple(str(u) for u in layer.units),
        axis_labels=tuple(layer.axis_labels),
        translate=tuple(float(t) for t in getattr(layer, "translate", ())) or None,
        turned=_turned(layer),
        features=columns,
        intensities=_intensities(measured, shape),
        parameters=meta.get("parameters") or {},
        source=meta.get("source"),
        method=meta.get("method"),
        model=meta.get("model"),
        channel_index=meta.get("channel_index"),
        channel_name=meta.get("channel_name"),
        made_from=meta.get("made_from"),
        versions=meta.get("versions"),
        # Known for results only: what a step wrote is recorded on the layers it makes.
        edited=edited_by_hand(layer) if is_result(layer) else None,
        previewed_frames=meta.get("previewed_frames") or {},
        frames_made=frames_made_of(layer),
        file_name=_unnumbered(layer.name, meta.get("source") or opened),
        position_names=meta.get("position_names"),
    )


#: The object table's columns of each object's size, position and shape.
_SHAPE_COLUMNS = ("label", "area", "centroid_y", "centroid_x", "bbox_min_y", "bbox_min_x",
                  "bbox_max_y", "bbox_max_x", "eccentricity")  # fmt: skip


def _regions(frame: np.ndarray):
    """Yield ``(id, region)`` for the objects of a 2D frame, ``region`` from
    ``regionprops``; sparse ids up to 2**64 - 1 are measured renumbered (regionprops makes
    a table with an entry per id)."""
    dense, ids = compact_ids(frame)
    for region in regionprops(dense):
        yield (int(region.label) if ids is None else int(ids[region.label])), region


#: Pixels summed at once (about 4 million): a whole-slide mosaic is measured strip by
#: strip, with memory for a strip's coordinates rather than for several copies of the mosaic.
_STRIP_PIXELS = 1 << 22


def _measured_objects(
    frame: np.ndarray,
    pixel: tuple[float, float] | None,
    origin: tuple[float, float],
    planes: Mapping[str, np.ndarray],
) -> dict[str, list]:
    """The measured columns of :func:`object_rows` for the objects of a 2D frame, each a
    list with an entry per object in the order of their ids; centroids in µm (with pixels
    of ``pixel`` µm) from ``origin``, where the frame's first pixel lies.

    Every object is measured at once from sums over its pixels (``np.bincount``):
    ``regionprops`` one object at a time took minutes for tens of thousands of cells. The
    values are those of ``regionprops``, eccentricity included (from the second central
    moments, with pixels of ``pixel`` µm when the size is known).
    """
    dense, ids = compact_ids(frame)
    boxes = ndi.find_objects(dense)
    found = [i for i, box in enumerate(boxes, 1) if box is not None]
    # The sums count the objects 1..n: ids that are sparse (but no larger than the image)
    # would give tables as large as the image, one per sum and strip.
    number = np.zeros(len(boxes) + 1, np.intp)
    number[found] = np.arange(1, len(found) + 1)
    bbox = np.zeros((len(found) + 1, 4), np.int64)  # row 0: the background, never summed
    bbox[1:] = np.reshape(
        [(y.start, x.start, y.stop, x.stop) for y, x in filter(None, boxes)], (-1, 4)
    )
    top, left = bbox[:, 0], bbox[:, 1]
    count = np.zeros(len(found) + 1, np.int64)
    sums = np.zeros((5 + len(planes), len(found) + 1))
    numbers = np.zeros((len(planes), len(found) + 1))  # each cell's pixels that are numbers
    width = frame.shape[1]
    step = max(_STRIP_PIXELS // width, 1)
    for start in range(0, frame.shape[0], step):
        strip = dense[start : start + step].ravel()
        inside = np.flatnonzero(strip)
        cells = number[strip[inside]]
        y, x = np.divmod(inside, width)
        # From the corner of the object's box: small whole numbers, whose sums (and sums
        # of squares) are exact, where the image's coordinates would lose the moments of
        # a small cell far from the origin to rounding.
        y += start - top[cells]
        x -= left[cells]
        values = [y, x, y * y, x * x, y * x]
        count += np.bincount(cells, minlength=len(count))
        for total, weights in zip(sums, values, strict=False):
            total += np.bincount(cells, weights, minlength=len(count))
        # Intensities over the pixels that are numbers, as Fiji's Measure leaves NaN out:
        # one NaN or infinite pixel left the mean of a cell of thousands empty.
        for row, plane in enumerate(planes.values(), 5):
            weights = plane[start : start + step].ravel()[inside]
            usable = np.isfinite(weights)
            numbers[row - 5] += np.bincount(cells, usable, minlength=len(count))
            sums[row] += np.bincount(cells, np.where(usable, weights, 0), minlength=len(count))
    n = count[1:]
    sum_y, sum_x, sum_yy, sum_xx, sum_yx = sums[:5, 1:]
    # In the image's coordinates: whole sums (exact), then divided, as a mean of the pixels'.
    centroid_y, centroid_x = (sum_y + n * top[1:]) / n, (sum_x + n * left[1:]) / n
    # Shape in µm where the pixel size is known: pixels of 0.87 x 0.435 µm made cells
    # look wider than they are. Columns named in pixels are measured in pixels.
    size_y, size_x = pixel or (1.0, 1.0)
    mu_yy = (sum_yy - sum_y * sum_y / n) * size_y * size_y
    mu_xx = (sum_xx - sum_x * sum_x / n) * size_x * size_x
    mu_yx = (sum_yx - sum_y * sum_x / n) * size_y * size_x
    # The inertia tensor's eigenvalues, l1 >= l2 (clipped at 0, as regionprops clips them);
    # sqrt(1 - l2 / l1) written with l1 - l2 = 2 * root: a nearly round cell's keeps its digits.
    half, root = (mu_yy + mu_xx) / 2, np.hypot((mu_yy - mu_xx) / 2, mu_yx)
    l1 = half + root
    spread = np.minimum(2 * root, l1)  # l1 - l2
    eccentricity = np.sqrt(np.divide(spread, l1, out=np.zeros_like(l1), where=l1 > 0))
    labels = found if ids is None else ids[found].tolist()
    shape = [n, centroid_y, centroid_x, *bbox[1:].T, eccentricity]
    columns = dict(zip(_SHAPE_COLUMNS, [labels, *(v.tolist() for v in shape)], strict=True))
    if pixel is not None:
        columns["area_um2"] = (n * (size_y * size_x)).tolist()
        columns["centroid_y_um"] = (origin[0] + centroid_y * size_y).tolist()
        columns["centroid_x_um"] = (origin[1] + centroid_x * size_x).tolist()
    means = np.divide(sums[5:, 1:], numbers[:, 1:], out=np.full_like(numbers[:, 1:], np.nan),
                      where=numbers[:, 1:] > 0)  # fmt: skip
    for name, mean in zip(planes, means, strict=True):
        # A cell without a pixel that is a number has an empty field, as in the features.
        columns[f"mean_{name}"] = [json_ready(value) for value in mean.tolist()]
    return columns


class _Frames:
    """The columns that say which plane of a stack a row is, and their values.

    ``frame`` (the planes counted through), a column per axis before Y and X, named
    after the axis (``p``, ``t``, ``z``) or numbered (``axis_0``), ``position_name`` when
    the scan names the positions of a ``P`` axis (:attr:`LabelsExport.position_names`),
    and ``time_s`` when a ``T`` axis has a time unit. A single axis without a name gets
    ``frame`` only; a 2D image gets none.
    """

    def __init__(self, export: LabelsExport):
        self.shape = tuple(np.shape(export.labels))
        lead = len(self.shape) - 2
        given = [str(a) for a in export.axis_labels or []]
        names = [a.lower() for a in given[:lead]] if len(given) == len(self.shape) else []
        if len(names) != lead:
            names = [""] * max(lead, 0)
        taken = {"source_file", "frame", "label", "cells", "time_s", *_SHAPE_COLUMNS}
        self.axes = [
            name if name.isalpha() and name not in taken and names.count(name) == 1 else f"axis_{i}"
            for i, name in enumerate(names)
        ]
        if self.axes == ["axis_0"]:
            self.axes = []  # one axis, no name: the frame number says it all
        # (axis, seconds per step)
        self.time = time_step(export.axis_labels, export.scale, export.units) if lead > 0 else None
        # (axis, name of each position)
        self.names = None
        upper = [a.upper() for a in given[:lead]] if len(given) == len(self.shape) else []
        names = export.position_names
        if names and "P" in upper and len(names) == self.shape[upper.index("P")]:
            self.names = (upper.index("P"), list(names))
        self.columns = [
            "frame",
            *self.axes,
            *(["position_name"] if self.names else []),
            *(["time_s"] if self.time else []),
        ] if lead > 0 else []  # fmt: skip

    def values(self, frame: int) -> dict[str, object]:
        """The columns' values for plane ``frame``."""
        if not self.columns:
            return {}
        position = [int(i) for i in np.unravel_index(frame, self.shape[:-2])]
        row: dict[str, object] = {"frame": frame}
        if self.axes:
            row.update(zip(self.axes, position, strict=True))
        if self.names:
            row["position_name"] = self.names[1][position[self.names[0]]]
        if self.time:
            row["time_s"] = position[self.time[0]] * self.time[1]
        return row


def object_columns(export: LabelsExport) -> list[str]:
    """The columns :func:`object_rows` gives ``export``'s objects (the header of a table
    without objects)."""
    columns = ["source_file", *_Frames(export).columns, *_SHAPE_COLUMNS]
    if pixel_size_um(export.scale, export.units) is not None:
        columns += ["area_um2", "centroid_y_um", "centroid_x_um"]
    columns += [f"mean_{name}" for name in export.intensities]
    return columns + [k for k in export.features if k not in columns]


def object_rows(export: LabelsExport) -> list[dict[str, object]]:
    """One row per object and frame: size, position, shape, intensities and scores.

    Columns: ``source_file``, the file the labels were made from (empty for labels of none),
    so that the tables of many images stack into one; which plane of a stack (see
    :class:`_Frames`), ``label``, ``area``
    (pixels), ``centroid_y``/``centroid_x`` (from pixel centres, as napari and
    scikit-image count: Fiji's and QuPath's are 0.5 px more), ``bbox_*`` (the max one past
    the last pixel), ``eccentricity`` (of the cell in µm when the scale is physical, else
    in pixels); ``area_um2`` and
    ``centroid_*_um`` when the scale is physical, the centroids where napari shows them
    (from the layer's offset, its :attr:`~LabelsExport.translate`, as a tile's cells
    are beside the next tile's);
    ``mean_<channel>`` for every intensity image (``mean_intensity`` for a file's single
    channel named after the file; of the pixels that are numbers, empty where none is),
    and every feature column but those
    of these names: a feature such as SAM2's ``area`` describes the object as it was
    found, the measured columns the object as it is exported (after painting).
    """
    labels = as_labels(export.labels, f"layer {export.name!r}")
    frames = labels if labels.ndim > 2 else labels[None]
    intensities = {
        name: (np.asarray(image) if labels.ndim > 2 else np.asarray(image)[None])
        for name, image in export.intensities.items()
    }
    for name, image in intensities.items():
        if image.shape != frames.shape:
            raise ValueError(
                f"Channel {name!r} has shape {np.shape(export.intensities[name])} but the labels "
                f"{labels.shape}; measure channels of the same image."
            )
    feature_rows = _features_by_label(export.features)
    pixel = pixel_size_um(export.scale, export.units)
    origin = offset_um(export.translate, export.units)
    stack = _Frames(export)
    rows = []
    for frame_index, frame in enumerate(frames.reshape(-1, *frames.shape[-2:])):
        planes = {name: image.reshape(-1, *image.shape[-2:])[frame_index]
                  for name, image in intensities.items()}  # fmt: skip
        measured = _measured_objects(frame, pixel, origin, planes)
        where = {"source_file": export.source or "", **stack.values(frame_index)}
        for values in zip(*measured.values(), strict=True):
            row = {**where, **dict(zip(measured, values, strict=True))}
            features = feature_rows.get(row["label"], {})
            row.update((k, v) for k, v in features.items() if k not in row)
            rows.append(row)
    return rows


def cell_counts(export: LabelsExport) -> list[dict[str, object]]:
    """Number of objects per plane (tile, time point, Z plane): one row each, and no row
    of totals, so that a column's sum is the total (and each column holds one type), each
    naming the file the labels were made from, ``source_file``, as :func:`object_rows` does.
    Planes of frames never made (:attr:`LabelsExport.frames_made`) count none: empty."""
    labels = as_labels(export.labels, f"layer {export.name!r}")
    frames = labels.reshape(-1, *labels.shape[-2:])
    stack = _Frames(export)
    made = made_frames(labels.shape, export.frames_made)
    rows = []
    for i, frame in enumerate(frames):
        cells = int(np.count_nonzero(np.unique(frame)))
        if made is not None and not made.flat[i]:
            cells = None
        rows.append({"source_file": export.source or "", **stack.values(i), "cells": cells})
    return rows


def coco_annotations(export: LabelsExport, score_column: str | None = None) -> dict[str, object]:
    """The objects as a COCO dataset: one image per frame, one annotation per object.

    An image's ``file_name`` is the file the labels were made from (the layer's name
    without one), with ``[frame]`` for each frame of a stack, which also says where the
    frame is (:class:`_Frames`). Each annotation holds the compressed RLE
    ``segmentation``, ``bbox`` (x, y, width, height), ``area`` and a ``score`` (from
    ``score_column`` of the features, else 1.0) plus every other feature of the object
    whose name is not one of these (a feature's ``area`` is the object's when it was found).
    Frames never made (:attr:`LabelsExport.frames_made`) are no images of it: listed with
    no annotation, their cells counted as missed by a COCO evaluation.
    """
    labels = as_labels(export.labels, f"layer {export.name!r}")
    frames = labels.reshape(-1, *labels.shape[-2:])
    feature_rows = _features_by_label(export.features)
    stack = _Frames(export)
    made = made_frames(labels.shape, export.frames_made)
    name = Path(export.source).name if export.source else export.name
    images, annotations = [], []
    for frame_index, frame in enumerate(frames):
        if made is not None and not made.flat[frame_index]:
            continue
        image_id = frame_index + 1
        images.append(
            {
                "id": image_id,
                "height": frame.shape[0],
                "width": frame.shape[1],
                "file_name": f"{name}[{frame_index}]" if stack.columns else name,
                **stack.values(frame_index),
            }
        )
        for label, region in _regions(frame):
            min_r, min_c, max_r, max_c = region.bbox
            features = feature_rows.get(label, {})
            score = features.get(score_column, 1.0) if score_column else 1.0
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "label": label,
                # From the object's bounding box: no full-size mask per object.
                "segmentation": coco_rle(region.image, (min_r, min_c), frame.shape),
                "bbox": [min_c, min_r, max_c - min_c, max_r - min_r],
                "area": int(region.area),
                "iscrowd": 0,
                # A missing score is the least sure, 0: COCO tools sort by it (null breaks
                # COCOeval); the feature itself stays missing (null).
                "score": 0.0 if score is None else float(score),
            }
            # Features after, never in place of, these: COCO tools read "area" and "bbox".
            annotation.update((k, v) for k, v in features.items() if k not in annotation)
            annotations.append(annotation)
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]}


def package_versions(packages: Sequence[str] = _VERSIONED) -> dict[str, str | None]:
    """Installed versions of the packages that make results (``None`` when missing);
    napari-cytomask's is that of the code that runs (:func:`~napari_cytomask.own_version`)."""
    return dict(_installed(tuple(packages)))


@lru_cache(maxsize=8)
def _installed(packages: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    # A lookup scans the installed packages; they do not change while the process runs.
    found = []
    for package in packages:
        if package == "napari-cytomask":
            from .. import own_version

            found.append((package, own_version()))
            continue
        try:
            found.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            found.append((package, None))
    return tuple(found)


def _holds_these(record: dict, digest: str) -> bool:
    """Whether an earlier export's provenance ``record`` describes labels of ``digest``
    (:func:`~napari_cytomask.io.layers.labels_digest`): its files hold the same ids."""
    return record.get("labels_sha1") == digest


def provenance(
    export: LabelsExport, outputs: Sequence[Path], digest: str | None = None
) -> dict[str, object]:
    """What made the outputs: input file and channel, method, parameters, model, versions,
    time and machine; ``digest``: the labels' fingerprint, where it is known already."""
    return {
        "outputs": [p.name for p in outputs],
        "layer": export.name,
        "labels_file": export.labels_file,
        "source": export.source,
        "channel_index": export.channel_index,
        "channel_name": export.channel_name,
        "method": export.method,
        "parameters": dict(export.parameters),
        # As `cytomask segment` records its --pixel-size: --preset of this file gives it again.
        "options": {"pixel_size_um": _given_pixel_size(export)},
        "previewed_frames": dict(export.previewed_frames),
        "frames_made": None if export.frames_made is None else list(export.frames_made),
        "edited_by_hand": export.edited,
        # The files' ids are not the layer's: its cell 16777300 may be their cell 12.
        "renumbered": export.renumbered,
        "model": dict(export.model) if export.model is not None else None,
        "made_from": export.made_from,
        "shape": list(np.shape(export.labels)),
        "labels_sha1": digest or labels_digest(export.labels),
        "scale": [float(s) for s in export.scale] if export.scale is not None else None,
        "units": [str(u) for u in export.units] if export.units is not None else None,
        "axis_labels": [str(a) for a in export.axis_labels] if export.axis_labels else None,
        "translate": [float(t) for t in export.translate] if export.translate else None,
        # The positions' names (wells): kept for an export of these files without the scan.
        "position_names": list(export.position_names) if export.position_names else None,
        "versions": dict(export.versions) if export.versions else package_versions(),
        "python": platform.python_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _given_pixel_size(export: LabelsExport) -> float | None:
    """The pixel size in µm the U-Net step that made ``export``'s labels was given where
    their scan records none or another, as ``cytomask segment`` records its
    ``--pixel-size``: as the run of ``cytomask segment`` that made them records it (its
    U-Net settings' ``pixel_size_given_um``: :func:`recorded_fields`); else the size a
    layer's U-Net run took where the scan records another (typed under Pixel size in the
    dock, which gives it to the image's layer, whose scale later runs take). None where it
    took the scan's own, or where that cannot be told (no U-Net step, pixels not square,
    the scan not there)."""
    made, settings = {"parameters": export.parameters, "made_from": export.made_from}, None
    while isinstance(made, dict) and settings is None:  # a split's: the U-Net run it split
        settings = made.get("parameters")
        if isinstance(settings, dict) and isinstance(settings.get("unet"), dict):
            settings = settings["unet"]  # a run of `cytomask segment`: its preset
        if not isinstance(settings, dict) or "pixel_size_um" not in settings:
            settings = None
        made = made.get("made_from")
    if settings is None:
        return None
    if "pixel_size_given_um" in settings:  # the run's own word
        given = settings["pixel_size_given_um"]
        return float(given) if _is_kind(given, float) else None
    used = settings["pixel_size_um"]
    square = isinstance(used, list | tuple) and len(used) == 2 and used[0] == used[1]
    if not (square and _is_kind(used[0], float) and export.source):
        return None
    if not os.path.exists(export.source):
        return None  # moved since: whether it records that size is not known
    own = file_pixel_size(export.source)
    return None if own is not None and np.allclose(own, used) else float(used[0])


def export_labels(
    exports: Sequence[LabelsExport], folder: str | os.PathLike, **options
) -> list[Path]:
    """Write label layers and their tables into a folder, plus one provenance file each.

    For a layer named ``cells`` this writes ``cells.tif`` (and the other
    ``formats``), ``cells_objects.csv``, ``cells_counts.csv``, ``cells_coco.json``
    and ``cells_provenance.json`` (named after :attr:`LabelsExport.file_name` where it is
    given). Two exports of one name from two files are named after them too, by what
    tells the files apart (``set1 raw U-Net cells``, ``set2 raw U-Net cells``).

    Labels that no step made and that hold one value for every cell (a binary mask, as a
    threshold gives) are exported with their separate regions as the cells, in each frame
    (:func:`~napari_cytomask.labels.regions_as_cells`), as evaluating takes them.

    Parameters
    ----------
    exports
        The label images to write.
    folder
        Output folder, created if missing.
    formats
        Keys of :data:`~napari_cytomask.io.writers.FILE_FORMATS`.
    objects_csv
        Write the per-object table and the cell counts.
    coco_json
        Write the objects as COCO RLE annotations.
    score_column
        Feature used as the COCO ``score`` (e.g. ``predicted_iou``).
    renumber
        Write the cells numbered 1, 2, 3… (:func:`_renumbered`), in the label files and the
        tables alike, where their ids are larger than Fiji, QuPath or OMERO hold (stitched
        or merged labels); the layers keep their own. Off by default.
    overwrite
        Replace existing files; off by default, and then an existing output stops
        the export before anything is written.
    inputs
        Files the labels were read from: the export never replaces one of them,
        even with ``overwrite``.
    note
        Called with what the user should know of the export (a binary mask taken by its
        regions, files of an earlier one it left); by default that is a
        :class:`UserWarning`.
    file_note
        Called with what Fiji, QuPath and OMERO make of the label files (ids they round, or
        do not open: :func:`~napari_cytomask.io.writers.rounded_in_fiji`), as File > Save
        says it of a file; by default ``note``.
    left_out
        Called with each export that cannot be written (ids too large for a format, labels
        that are no labels) and the error, which then leaves it out and writes the others;
        by default the first such error stops the export. One left out last of all is
        raised: nothing was written.
    file_left_out
        Called, with ``left_out`` given, with each label file its format cannot hold (a PNG
        of ids over 65535) beside files of its export that are written: the export, the
        file and the error. By default ``note`` says which files of an export were left out.

    Returns
    -------
    list of Path
        Every file written.

    Raises
    ------
    ExportExists
        When outputs are there and ``overwrite`` is false; nothing was written.
    FolderBusy
        When another export or ``cytomask segment`` run is writing into the folder.
    """
    return drain(exporting(exports, folder, **options))


def exporting(
    exports: Sequence[LabelsExport],
    folder: str | os.PathLike,
    *,
    formats: Sequence[str] = ("tiff",),
    objects_csv: bool = True,
    coco_json: bool = False,
    score_column: str | None = None,
    renumber: bool = False,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
    note: Callable[[str], None] | None = None,
    file_note: Callable[[str], None] | None = None,
    left_out: Callable[[LabelsExport, ValueError], None] | None = None,
    file_left_out: Callable[[LabelsExport, Path, ValueError], None] | None = None,
):
    """:func:`export_labels` (which takes the same options) as a progress generator, for
    the dock and the command line: it yields :class:`~napari_cytomask.progress.Progress`
    of its stages, ``"read"`` and ``"measure"`` (by layer) and ``"write"`` (by file), and
    returns the files written. Closed at a report (Cancel), it has written nothing: its
    files move in after the last report, ``write`` of all of them, all together."""
    if note is None:
        # Said at export_labels' caller: past the two generators' frames, drain's and its own.
        note = partial(warnings.warn, category=UserWarning, stacklevel=5)
    formats = _known(formats)
    folder = Path(folder).expanduser()  # a script's "~/out": not a folder named ~ here
    in_the_way = file_in_the_way(folder)
    if in_the_way is not None:
        # Not a FileExistsError: that one means outputs are there (an answer to ask about).
        raise NotADirectoryError(
            f"cannot export to {folder}: {in_the_way} is a file, not a folder; choose a folder."
        )
    with locked_folders([folder], "an export"):
        return (yield from _export_into(exports, folder, formats, objects_csv, coco_json,
                                        score_column, renumber, overwrite, inputs, note,
                                        file_note or note, left_out,
                                        file_left_out))  # fmt: skip


def check_export(
    exports: Sequence[LabelsExport],
    folder: str | os.PathLike,
    *,
    formats: Sequence[str] = ("tiff",),
    objects_csv: bool = True,
    coco_json: bool = False,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
) -> None:
    """Raise what :func:`export_labels` would raise before writing (:class:`ExportExists`,
    or :class:`ValueError` for clashing names), without reading a lazy layer's pixels: so
    whether to replace files can be asked before a large scan is read."""
    folder = Path(folder).expanduser()
    _plans(exports, folder, _known(formats), objects_csv, coco_json, overwrite, inputs)


def _known(formats: Sequence[str] | str) -> list[str]:
    formats = [formats] if isinstance(formats, str) else formats  # "tiff", not t, i, f, f
    unknown = set(formats) - set(FILE_FORMATS)
    if unknown:
        raise ValueError(f"Unknown format(s) {sorted(unknown)}; choose from {list(FILE_FORMATS)}.")
    return list(dict.fromkeys(formats))


def _plans(exports, folder, formats, objects_csv, coco_json, overwrite, inputs):
    """Each export with the files it writes, once every check that needs no pixels passed."""

    def plan(export, base):
        return _planned(export, base, folder, formats, objects_csv, coco_json)

    names = _file_names(exports, plan, _exports_in(folder))
    plans = [
        (export, _free(export, base, plan)) for export, base in zip(exports, names, strict=True)
    ]
    own = [(export, path) for export, plan in plans for path in plan.files if one_of(path, inputs)]
    if own:
        export, path = own[0]
        raise ValueError(
            f"the export of '{export.name}' would replace {path}, a file that images or labels "
            "are read from; nothing was written. Choose another output folder."
        )
    # Every check before the first file is written: no partial export.
    owner: dict[Path, int] = {}
    for i, (export, plan) in enumerate(plans):
        for path in plan.files:
            other = owner.setdefault(path, i)
            if other != i:
                raise ValueError(
                    f"'{exports[other].name}' and '{export.name}' would both be saved as "
                    f"{path.name}; nothing was written. Rename one of them."
                )
    # Before asking whether to replace files that could not be replaced anyway.
    check_folder_writable(folder)
    if not overwrite:
        # By export, not by name: two files' results may share one (raw_unet_cells).
        existing = [
            (export.name, there)
            for export, plan in plans
            if (there := [path for path in plan.files if path.exists()])
        ]
        if existing:
            paths = [path for _, there in existing for path in there]
            raise ExportExists(paths, list(dict.fromkeys(name for name, _ in existing)))
    return plans


#: The columns of a colour picture's colours, as its last axis holds them (alpha is left out).
COLOURS = ("red", "green", "blue")


def _intensities(images: Mapping[str, object], shape: tuple) -> dict:
    """Each image layer (by its column's name) at its resolution level of the labels'
    ``shape`` (labels of a coarse level); a colour picture's colours apart, as
    ``"<name> red"`` …: its cells had no intensity columns, unsaid."""
    measured = {}
    for name, image in images.items():
        rgb = getattr(image, "rgb", False)
        for level in image.data if getattr(image, "multiscale", False) else [image.data]:
            if rgb and np.shape(level)[:-1] == shape:
                measured.update({f"{name} {c}": level[..., i] for i, c in enumerate(COLOURS)})
            elif not rgb and np.shape(level) == shape:
                measured[name] = level
    return measured


def _turned(layer) -> bool:
    """Whether a layer is rotated, sheared or given an affine transform: what an export's
    files and positions in µm do not keep (a cell of a layer turned 30° lay 15 µm from
    where its table put it)."""
    rotate, shear = getattr(layer, "rotate", None), getattr(layer, "shear", None)
    affine = getattr(getattr(layer, "affine", None), "affine_matrix", None)
    linear = None if affine is None else np.asarray(affine)[:-1, :-1]  # not its shift
    return any(
        matrix is not None and not np.allclose(matrix, np.eye(len(matrix)))
        for matrix in (rotate, linear)
    ) or (shear is not None and not np.allclose(shear, 0))


def scan_positions(export) -> ScanPositions:
    """The stage positions and names of the positions of the scan the labels were made
    from (:func:`~napari_cytomask.io.files.recorded_positions`), where the labels have a
    ``P`` axis of as many positions (exports keep them: without, labels of a
    multi-position scan could not be placed beside its tiles, nor told by well)."""
    return recorded_positions(export.source, export.axis_labels, np.shape(export.labels))


def _export_into(
    exports, folder, formats, objects_csv, coco_json, score_column, renumber, overwrite, inputs,
    note, file_note, left_out, file_left_out,
):  # fmt: skip
    plans = _plans(exports, folder, formats, objects_csv, coco_json, overwrite, inputs)
    # Three stages, timed apart: a layer read or measured takes seconds, a file written less.
    layers = len(plans)
    left = []

    def or_left_out(export, work):
        """``work()``, or None when it fails for ``export`` alone and ``left_out`` takes it:
        one layer a format cannot hold keeps none of the others from being exported."""
        try:
            return work()
        except ValueError as err:
            if left_out is None or len(left) + 1 == layers:
                raise
            left.append(export)
            left_out(export, err)
            return None

    def writers(export, plan, where):
        """The label files of ``export`` and their writers, and ``plan`` without those a
        format cannot hold, which ``left_out`` leaves out, said: its TIFF was not written
        for its ids a PNG could not hold. None of them written raises the first error."""
        made, refused = [], []
        for path, place in plan.images:
            try:
                made.append((path, label_writer(
                    path, export.labels[place], scale=_after(export.scale, place),
                    units=_after(export.units, place),
                    axis_labels=_after(export.axis_labels, place),
                    translate=_after(export.translate, place),
                    positions=None if place else where.stage,
                    position_names=None if place else export.position_names, note=file_note,
                    fiji_note=False,  # said below of its files together
                )))  # fmt: skip
            except ValueError as err:
                if left_out is None or not plan.images[1:]:
                    raise
                refused.append((path, err))
        if refused and not made:
            raise refused[0][1]
        if refused and file_left_out is not None:
            for path, err in refused:
                file_left_out(export, path, err)
        elif refused:
            names = ", ".join(path.name for path, _ in refused[:3])
            more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
            note(
                f"'{export.name}': {names}{more} left out, its other files written: "
                f"{one_line(refused[0][1])}"
            )
        # 8 or 16 bits hold no id Fiji rounds: such labels are not read again for the top.
        wide = np.dtype(export.labels.dtype).itemsize >= 4
        top = int(np.max(export.labels)) if wide else 0  # a dask array's max takes no initial
        if rounded := rounded_in_fiji(top, [p for p, _ in made], renumbered=export.renumbered):
            file_note(rounded)
        written = {path for path, _ in made}
        kept = [(path, place) for path, place in plan.images if path in written]
        return plan._replace(images=kept), made

    yield Progress("read", 0, layers)
    loaded = []
    for export, plan in plans:
        cells = or_left_out(export, lambda export=export: _cells_of(export.loaded()))
        if cells is None:
            continue
        export, said = cells  # lazy layers are read here
        if said:
            note(said)
        if renumber:
            export = or_left_out(export, partial(_renumbered, export))
            if export is None:
                continue
        if export.turned:
            note(
                f"'{export.name}' is rotated or sheared in the viewer: its files, and its "
                "cells' positions in µm, keep its own rows and columns (from its offset), "
                "not the turn the viewer shows."
            )
        yx = [abs(size) for size in (export.scale or (1, 1))[-2:]]
        if pixel_size_um(export.scale, export.units) is None and yx != [1, 1]:
            # Its scale is kept in the provenance only: no file or table holds it as a size.
            note(
                f"'{export.name}' is scaled {yx[0]:g} × {yx[1]:g} in no unit of length (its "
                "units are pixels), so its files and tables count in pixels. For sizes in "
                "µm, give its image a pixel size (Pixel size in step 2) and segment again."
            )
        where = scan_positions(export)  # read once of the scan, for the OME-TIFF and tables
        if where.names is not None:  # else as recorded: the scan may not be there any more
            export = replace(export, position_names=where.names)
        planned = or_left_out(export, partial(writers, export, plan, where))
        if planned is not None:
            loaded.append((export, *planned))
        yield Progress("read", len(loaded) + len(left), layers)
    # The tables too (measuring can fail: labels that are no labels, too little memory).
    measured = []
    for i, (export, plan, images) in enumerate(loaded):
        yield Progress("measure", i, len(loaded))
        made = partial(_measured, export, objects_csv, coco_json, score_column, overwrite)
        tables = or_left_out(export, made)
        if tables is not None:
            measured.append((export, plan, images, tables))
    yield Progress("measure", len(loaded), len(loaded))
    exports = [export for export, _, _, _ in measured]
    plans = [(export, plan) for export, plan, _, _ in measured]
    images = [images for _, _, images, _ in measured]
    tables = [tables for _, _, _, tables in measured]
    files = sum(len(plan.files) for _, plan in plans)
    replacing = {path for _, plan in plans for path in plan.files if path.exists()}
    earlier = {
        plan.provenance: _earlier_record(plan.provenance)
        for _, plan in plans
        if plan.provenance in replacing
    }
    digests = [labels_digest(export.labels) for export in exports]  # each read once
    # Files of an earlier export of the same labels in other formats stay listed: the new
    # provenance describes them too (a layer exported as TIFF, then as PNG).
    kept = {
        plan.provenance: _left_by(plan, earlier[plan.provenance], folder)
        for (_, plan), digest in zip(plans, digests, strict=True)
        if plan.provenance in earlier and _holds_these(earlier[plan.provenance], digest)
    }
    written: list[Path] = []
    together = Together()
    try:
        # All written before any is moved in: a full disk or an interruption leaves the
        # files of an earlier export as they were, not some replaced.
        with moved_in_together() as together:

            def held(write, *args, **kwargs):
                with together.holding():
                    written.append(write(*args, **kwargs))
                return Progress("write", len(written), files)

            for (export, plan), writers, made, digest in zip(
                plans, images, tables, digests, strict=True
            ):
                first = len(written)
                for path, writer in writers:
                    yield held(write_atomically, path, writer, overwrite=overwrite)
                for path, write in zip(plan.tables, made, strict=True):
                    yield held(write, path)
                outputs = [*written[first:], *kept.get(plan.provenance, [])]
                record = provenance(export, outputs, digest)
                # The last report: before the moves.
                yield held(write_json, plan.provenance, record, overwrite=overwrite)
    except BaseException as err:
        # A move in that failed put back those moved in before it where it could: what is
        # left are files replaced on a file system without hard links (said), and new ones
        # it could not remove (removed again). Through a link, a file is moved in where the
        # link points.
        moved = together.moved
        before = {os.path.realpath(path) for path in replacing}
        replaced = [path.name for path in moved if os.path.realpath(path) in before]
        for path in moved:
            if os.path.realpath(path) not in before:
                path.unlink(missing_ok=True)
        if replaced and isinstance(err, KeyboardInterrupt):
            raise ExportInterrupted(replaced) from err
        if replaced and isinstance(err, OSError):
            holds = "which now holds" if len(replaced) == 1 else "which now hold"
            raise WriteError(
                err.errno,
                f"Could not finish the export into {folder}: {reason(err)}. It had already "
                f"replaced {', '.join(replaced)}, {holds} the new export; the other "
                "files it wrote were removed, and the earlier provenance does not describe "
                "the replaced ones. Export again once it can be written in full.",
            ) from err
        raise
    if overwrite and (left := _left_from_before(plans, earlier, kept, folder)):
        note(left)
    return written


def _renumbered(export: LabelsExport) -> LabelsExport:
    """``export`` with its cells numbered 1, 2, 3… in the order of their ids, and its
    features' ids with them: through a stack, so that a cell keeps one id in every frame (a
    track's, a cell seen by two tiles) and in every file and table of the export. The
    layer's own labels are left as they are."""
    labels = as_labels(export.labels, f"layer {export.name!r}")
    numbered, new_ids, _ = relabel_sequential(labels)
    features = dict(export.features)
    if "label" in features:  # a feature of an id the labels no longer hold goes to 0, unread
        ids = dict(zip(new_ids.in_values.tolist(), new_ids.out_values.tolist(), strict=True))
        features["label"] = [ids.get(int(label), 0) for label in features["label"]]
    return replace(export, labels=numbered, features=features, renumbered=True)


def _cells_of(export: LabelsExport) -> tuple[LabelsExport, str]:
    """``export`` with a binary mask's separate regions as its cells, and what to say of
    that ("" for other labels, and for those a step made, kept as it made them)."""
    if export.method is not None:
        return export, ""
    labels = as_labels(export.labels, f"layer {export.name!r}")
    frames = frame_axes(export.axis_labels or ("",) * labels.ndim)
    labels, said = regions_as_cells(labels, frames)
    if not said:
        return export, ""
    return replace(export, labels=labels), f"'{export.name}' {said}."


def _earlier_record(provenance_file: Path, *, warn: bool = False) -> dict:
    """An earlier export's provenance: empty when there is none, it cannot be read, or an
    entry is of another kind than an export writes (damaged or edited by hand), which
    ``warn`` says."""
    try:
        record = json.loads(provenance_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:  # none can be there: the labels' name is long
            return {}
        record, problem = {}, f"it cannot be read: {err}"
    except ValueError as err:
        record, problem = {}, f"it cannot be read: {err}"
    else:
        problem = _entries_problem(record, _PROVENANCE_KINDS)
    if problem is None:
        for key in record.get("previewed_frames") or {}:
            try:
                frame_place(key)
            except ValueError:
                problem = f"its 'previewed_frames' names {key!r}, no frame"
                break
    if problem is not None:
        if warn:
            _opened_without(provenance_file, problem, "it records")
        return {}
    return record


def _opened_without(record_file: Path, problem: str, whose: str) -> None:
    """Warn that labels open as labels of their own, not as the result of their scan, as
    their record ``record_file`` is damaged (``problem``): the scan and settings ``whose``
    names are left out."""
    warnings.warn(  # words first: napari's notification shows one line
        f"Labels opened without their record: {record_file.name} is damaged ({problem}), so "
        f"the scan and settings {whose} are left out (in {record_file.parent}).",
        stacklevel=4,
    )


def _listed_outputs(record: dict) -> list[str]:
    """The files an export's provenance record lists."""
    outputs = record.get("outputs")
    if not isinstance(outputs, list):
        return []
    # Plain names in the folder only: the file may have been edited or come from elsewhere.
    return [name for name in outputs if isinstance(name, str) and Path(name).name == name]


def _left_by(plan, record: dict, folder: Path) -> list[Path]:
    """The files an earlier export's provenance ``record`` lists that the export of
    ``plan`` does not replace, as it writes fewer formats, and that are still there."""
    return [
        folder / name
        for name in _listed_outputs(record)
        if folder / name not in plan.files and (folder / name).exists()
    ]


def _left_from_before(plans, earlier: dict[Path, dict], kept: dict, folder: Path) -> str:
    """What to say of files an earlier export of the same layers wrote (as its provenance,
    ``earlier``, lists them) that this one did not replace and whose labels it does not
    hold (those ``kept`` stay listed); ``""`` when there are none."""
    left = [
        path
        for _, plan in plans
        if plan.provenance in earlier and plan.provenance not in kept
        for path in _left_by(plan, earlier[plan.provenance], folder)
    ]
    if not left:
        return ""
    names = ", ".join(path.name for path in left)
    one = len(left) == 1
    return (
        f"{names} in {folder} {'is' if one else 'are'} from an earlier export of other "
        f"labels and {'was' if one else 'were'} left as {'it is' if one else 'they are'}; the "
        f"new provenance does not list {'it' if one else 'them'}."
    )


def _measured(export, objects_csv, coco_json, score_column, overwrite) -> list[Callable]:
    """Writers of ``export``'s tables, each taking its path, in the order :func:`_planned`
    gives the paths; the tables are measured now."""
    writers = []
    if objects_csv:
        rows, columns = object_rows(export), object_columns(export)
        writers.append(partial(_write_csv, rows=rows, overwrite=overwrite, columns=columns))
        writers.append(partial(_write_csv, rows=cell_counts(export), overwrite=overwrite))
    if coco_json:
        coco = coco_annotations(export, score_column)
        writers.append(partial(write_json, content=coco, overwrite=overwrite))
    return writers


class _Plan(NamedTuple):
    """The files an export of one layer writes: its label files (each with the frame it
    holds, ``()`` for the whole image), its tables and its provenance, in that order."""

    images: list[tuple[Path, tuple[int, ...]]]
    tables: list[Path]
    provenance: Path

    @property
    def files(self) -> list[Path]:
        return [path for path, _ in self.images] + self.tables + [self.provenance]


def corrected_in(paths: Sequence[Path]) -> list[str]:
    """The layers whose cells, corrected by hand, the provenance files among ``paths`` (an
    earlier export's files) say they were exported from: replaced, those corrections are
    gone unless the layer is still open."""
    records = [_earlier_record(p) for p in paths if p.name.endswith("_provenance.json")]
    return [str(r.get("layer", "?")) for r in records if r.get("edited_by_hand") is True]


def _provenance_at(provenance: Path) -> dict | None:
    """The record of the export a provenance file describes; None when there is no file."""
    return _earlier_record(provenance) if provenance.exists() else None


def _layer_key(name: object, source: object) -> tuple[str, str | None] | None:
    """Which layer an export is of: its name and its file, however the path is spelt (None
    for no file); None for a provenance that names no layer (a hand-edited one)."""
    if not isinstance(name, str) or not (source is None or isinstance(source, str)):
        return None
    return name, None if source is None else os.path.realpath(source)


def _earlier_of(export: LabelsExport, record: dict | None) -> bool | None:
    """Whether the export in a folder that ``record`` (:func:`_provenance_at`) describes is
    an earlier export of ``export``'s layer (its name and file); None when there is none."""
    if record is None:
        return None
    key = _layer_key(record.get("layer"), record.get("source"))
    return key is not None and key == _layer_key(export.name, export.source)


def _exports_in(folder: Path) -> dict[tuple[str, str | None], list[Path]]:
    """The provenance files of the exports in ``folder``, by the layer each is of
    (:func:`_layer_key`), each read once."""
    found: dict[tuple[str, str | None], list[Path]] = {}
    for path in sorted(folder.glob("*_provenance.json")):
        record = _earlier_record(path)
        key = _layer_key(record.get("layer"), record.get("source"))
        if key is not None:
            found.setdefault(key, []).append(path)
    return found


def _earlier_name(export: LabelsExport, base: str, plan: Callable, earlier: dict) -> str | None:
    """The name of an earlier export of ``export``'s layer in the folder (``earlier``, the
    exports there: :func:`_exports_in`): ``base`` when one is under it (``plan(export,
    base)`` says where that goes), else the first; None when there is none."""
    found = earlier.get(_layer_key(export.name, export.source), [])
    if plan(export, base).provenance in found:
        return base
    return found[0].name.removesuffix("_provenance.json") if found else None


def _file_names(exports: Sequence[LabelsExport], plan: Callable, earlier: dict) -> list[str]:
    """The name each export's files are given: that of its layer's earlier export in the
    folder (``earlier``: :func:`_exports_in`), whatever it was exported with then and now
    (exported alone as ``raw U-Net cells``, beside another field as ``set1 raw U-Net
    cells``, a field's files were written a second time under the other name); else its
    :attr:`~LabelsExport.file_name`, and where two would share one (``raw U-Net cells`` of
    ``set1/raw.tif`` and of ``set2/raw.tif``), with what tells their source files apart in
    front (``set2 raw U-Net cells``); two of one file, or of none, keep their layers' names
    (``raw U-Net cells [2]``, the result made beside one painted into). ``plan(export,
    name)`` says where an export's files go under a name."""
    names = [export.file_name or export.name for export in exports]
    kept = [
        _earlier_name(export, name, plan, earlier)
        for export, name in zip(exports, names, strict=True)
    ]
    for name in {name for name in names if names.count(name) > 1}:
        group = [i for i, taken in enumerate(names) if taken == name]
        tags = _told_apart([exports[i].source for i in group])
        for i, tag in zip(group, tags, strict=True):
            names[i] = exports[i].name if tag is None else " ".join(filter(None, (tag, name)))
    return [name if keep is None else keep for name, keep in zip(names, kept, strict=True)]


def _free(export: LabelsExport, base: str, plan: Callable) -> _Plan:
    """Where ``export`` goes under the name ``base`` (``plan(export, base)``), unless
    another layer's export is there: another file's (``set1 raw U-Net cells`` beside
    set2's ``raw U-Net cells``), or another result's of the same file, is never offered for
    replacing; the export is named after what tells the files apart, or its layer, or
    numbered."""
    planned = plan(export, base)
    record = _provenance_at(planned.provenance)
    if _earlier_of(export, record) is not False:
        return planned  # none there, or this layer's own: asked before it is replaced
    earlier = record.get("source")
    if isinstance(earlier, str) and export.source and not same_file(earlier, export.source):
        first = f"{_told_apart([earlier, export.source])[1]} {base}"
    else:  # another result of the file, such as a rerun beside one painted into
        first = export.name
    names = [first, *(f"{first} [{k}]" for k in range(2, 1000))]
    for name in names:
        planned = plan(export, name)
        if _earlier_of(export, _provenance_at(planned.provenance)) is not False:
            return planned
    return planned  # a thousand others' exports: asked before the last is replaced


def _told_apart(sources: Sequence[str | None]) -> list[str | None]:
    """What tells each file of ``sources`` from the others: the folders below the root
    and the stem where the files differ, nearest first, as many as it takes (``set2`` for
    ``set2/raw.tif`` beside ``set1/raw.tif``), the file's whole name where only its suffix
    does (``raw.png``), at least its stem; ``""`` for no file; ``None`` for a file listed
    twice however it is spelt, or no file listed twice. A path written on Windows is
    taken apart at its backslashes wherever it is read (a provenance file from there)."""
    from .tiff import file_stem

    keys: list[str | None] = []  # each source as its file was first spelt
    for source in sources:
        keys.append(next((key for key in keys if same_file(key, source)), source))
    files = [file for file in dict.fromkeys(keys) if file is not None]
    pieces = {file: re.split(r"[\\/]+", file) for file in files}
    parts = [[*pieces[file][:-1], file_stem(pieces[file][-1])] for file in files]
    tags: list[list[str]] = [[] for _ in files]
    for level in range(1, max(map(len, parts), default=0) + 1):
        if len({tuple(tag) for tag in tags}) == len(tags):
            break
        here = [path[-level] if level <= len(path) else "" for path in parts]
        if len(set(here)) > 1:  # a level every file shares tells none apart
            for tag, part in zip(tags, here, strict=True):
                tag.insert(0, part)
    found = [" ".join(filter(None, tag)) or path[-1] for tag, path in zip(tags, parts, strict=True)]
    told = {}
    for file, tag, path in zip(files, found, parts, strict=True):
        if found.count(tag) > 1:  # one folder and stem (raw.tif, raw.png): its whole name
            tag = pieces[file][-1] if tag == path[-1] else f"{tag} {pieces[file][-1]}"
        told[file] = tag
    return [None if keys.count(key) > 1 else told.get(key, "") for key in keys]


def _planned(export, base, folder, formats, objects_csv, coco_json) -> _Plan:
    """Where ``export`` goes, its files named after ``base``. A stack in a format of one 2D
    image per file (PNG) is written frame by frame (``cells_P0.png``, ``cells_P1.png`` …),
    the frames it made only."""
    shape = np.shape(export.labels)
    # A single image saved with an axis of one ((1, Y, X)) is one PNG, named as a 2-D one.
    by_frame = "png" in formats and int(np.prod(shape[:-2])) > 1
    frames = []
    if by_frame:
        made = made_frames(shape, export.frames_made)
        frames = [place for place in np.ndindex(shape[:-2]) if made is None or made[place]]
    names = {place: _frame_name(export.axis_labels, shape, place) for place in frames}
    tables = ["_objects.csv", "_counts.csv"] * objects_csv + ["_coco.json"] * coco_json
    endings = [FORMATS[fmt].suffix for fmt in formats]
    endings += [f"_{name}.png" for name in list(names.values())[-1:]] + tables
    endings.append("_provenance.json")
    room = NAME_BYTES - max(len(ending.encode()) for ending in endings)
    stem = safe_file_name(base, room)
    images = []
    for fmt in formats:
        if fmt == "png" and by_frame:
            images += [(folder / f"{stem}_{names[place]}.png", place) for place in frames]
        elif fmt == "png":  # the image, whatever axes of one it has
            images.append((folder / f"{stem}.png", (0,) * (len(shape) - 2)))
        else:
            images.append((folder / f"{stem}{FORMATS[fmt].suffix}", ()))
    return _Plan(
        images, [folder / f"{stem}{end}" for end in tables], folder / f"{stem}_provenance.json"
    )


def _frame_name(axis_labels, shape, place) -> str:
    """A frame in file names: each axis's letter and index, zero-padded so that the files
    sort in order (``P03_T1``); the index alone on an axis without a one-letter name."""
    labels = list(axis_labels or ())[-len(shape) :] if axis_labels else [""] * len(shape)
    parts = []
    for label, index, size in zip(labels, place, shape, strict=False):
        letter = label if len(label) == 1 and label.isalpha() else ""
        parts.append(f"{letter}{index:0{len(str(size - 1))}d}")
    return "_".join(parts)


def _after(values, place):
    """The entries of per-axis ``values`` (pixel size, units, names) of the axes after the
    frame axes of ``place``: those of a frame of the stack."""
    return None if values is None else list(values)[len(place) :]


#: Names Windows keeps for devices, whatever follows a dot: ``CON.tif`` cannot be a file.
_DEVICE_NAMES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)),
}


#: Characters no file name may hold on Windows (and ``/`` nowhere).
_NOT_IN_FILE_NAMES = frozenset('<>:"/\\|?*')


def safe_file_name(name: str, room: int = NAME_BYTES) -> str:
    """A file-name-safe version of a layer name, on Linux, macOS and Windows alike: every
    character kept (any script, µ, emoji, as ``cytomask segment`` keeps them in its files)
    but those Windows refuses (``<>:"/\\|?*``) and control ones, which become ``_``; no
    leading dot (a hidden file) nor trailing dot or space; no Windows device name; within
    ``room`` bytes (see :func:`~.atomic.fit_name`)."""
    kept = "".join(
        "_" if c in _NOT_IN_FILE_NAMES or unicodedata.category(c) in ("Cc", "Cs") else c
        for c in name
    )
    cleaned = kept.lstrip().rstrip(". ")
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned.split(".")[0].strip().lower() in _DEVICE_NAMES:
        cleaned = "_" + cleaned
    return fit_name(cleaned or "labels", room)


def _features_by_label(features: Mapping[str, Sequence]) -> dict[int, dict[str, object]]:
    if not features or "label" not in features:
        return {}
    columns = {k: list(v) for k, v in features.items() if k != "label"}
    return {
        int(label): {k: json_ready(v[i]) for k, v in columns.items()}
        for i, label in enumerate(features["label"])
    }


#: Significant digits of the numbers in the tables: far beyond what a cell is measured to,
#: and short of the last digits of a float's sum (``5134.8096000000005`` µm²).
CSV_DIGITS = 10


def _write_csv(path: Path, rows: list[dict[str, object]], overwrite: bool, columns=()) -> Path:
    columns = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))

    def write(tmp: Path) -> None:
        # A file name of bytes that are no UTF-8 is written escaped, as the JSON writes it.
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({
                    key: float(f"{value:.{CSV_DIGITS}g}") if isinstance(value, float) else value
                    for key, value in row.items()
                })  # fmt: skip

    return write_atomically(path, write, overwrite=overwrite)
