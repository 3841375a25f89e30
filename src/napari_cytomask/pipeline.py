"""One segmentation pipeline for the dock, the ``cytomask`` command and batch workers.

A :class:`Preset` says how cells are made: the method (U-Net, SAM2, or SAM2
guided by the U-Net's cells), its model and parameters, and an optional
watershed split of touching cells. The napari dock saves its current settings
as a preset file; ``cytomask segment --preset FILE`` runs the same pipeline on
folders of scans. A :class:`Segmenter` loads the preset's models once (per
process, or per dask worker) and segments images with them.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .io.atomic import json_ready, write_json
from .io.layers import listed_frames
from .models.catalog import STARTER, positive_pair, resolve_unet
from .progress import Progress

#: Segmentation methods: the key presets and ``cytomask segment --method`` use -> the
#: name the dock shows.
METHODS = {
    "unet": "U-Net",
    "sam2": "SAM2",
    "sam2_guided": "SAM2 guided by the U-Net",  # short enough for the dock to show whole
}
PRESET_FORMAT = "napari-cytomask-preset"
PRESET_VERSION = 1


class PresetError(ValueError):
    """A preset file or value that cannot be used; the message says what to fix."""


@dataclass
class UNetStep:
    """U-Net settings: the checkpoint, tiling and how probabilities become cells.

    ``model`` is a checkpoint file, the name of one in the model folder, or
    ``"starter"`` (the default) for the starter model shipped in the package.
    ``tta`` (flip test-time augmentation) is on by default: it costs four
    forward passes, and the starter model scored higher with it on its
    validation images, where its thresholds were chosen (see its model card).
    ``resample`` (on by default) resamples an image whose pixel size is known to
    the model's, where that is known (the starter model's is, and a model's trained on
    images that record theirs): see :func:`~.models.catalog.zoom_to`.
    """

    model: str = STARTER
    tile_size: int | None = None
    overlap: int = 64
    batch_size: int = 0
    tta: bool = True
    resample: bool = True
    interior_threshold: float | None = None
    foreground_threshold: float | None = None
    min_size: int | None = None

    def segment_kwargs(self, predictor, pixel_size_um: tuple[float, float] | None = None) -> dict:
        """Keyword arguments of ``iter_segment`` for ``predictor`` (a ``UNetPredictor``)
        on an image of ``pixel_size_um`` (Y, X) pixels, when known.

        Post-processing settings left at ``None`` take the values the checkpoint
        recommends (tuned on its validation images, or a fine-tuned model's start's),
        else the defaults. The cells are found over the image's own pixels, resampled for
        the network or not, so their watershed measures distances over the shape of those
        (``spacing``).
        """
        from .models.catalog import zoom_to
        from .models.inference import postprocess_arguments

        step = self.with_settings(predictor.settings)
        settings = {k: getattr(step, k) for k in predictor.settings}
        return {
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "batch_size": self.batch_size,
            "tta": self.tta,
            "zoom": zoom_to(pixel_size_um, predictor.pixel_size_um) if self.resample else None,
            "spacing": pixel_size_um,
            **postprocess_arguments(predictor.config.targets, **settings),
        }

    def tiling(self, predictor) -> dict:
        """The tile and batch sizes ``predictor`` runs with: the step's 0 and None mean
        "automatic", and a record says what they came to (tiles fitted to each image
        from ``tile_size`` to ``largest_tile``)."""
        from .models.inference import batch_for, largest_tile, tile_for

        tile = tile_for(predictor.config, self.tile_size)
        return {
            "tile_size": tile,
            "largest_tile": largest_tile(tile, self.tile_size),
            "batch_size": batch_for(predictor.device, self.batch_size),
        }

    def with_settings(self, recommended: dict) -> UNetStep:
        """This step with the post-processing settings it leaves open (``None``) taken
        from ``recommended`` (e.g. a checkpoint's tuned settings)."""
        return replace(self, **{k: v for k, v in recommended.items() if getattr(self, k) is None})


@dataclass
class Sam2Step:
    """SAM2 settings: the model (Hugging Face id or checkpoint with its config) and thresholds."""

    model: str = "facebook/sam2.1-hiera-tiny"
    config: str | None = None
    params: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)

    def sam2_params(self):
        """The :class:`~.models.sam2_engine.Sam2Params` of this step."""
        from .models.sam2_engine import Sam2Params

        values = dict(self.params)
        if values.get("point_grids") is not None:
            values["point_grids"] = tuple(np.asarray(g) for g in values["point_grids"])
        return Sam2Params(**values)

    def label_params(self):
        """The :class:`~.models.sam2_engine.LabelParams` of this step."""
        from .models.sam2_engine import LabelParams

        values = dict(self.labels)
        if "percentiles" in values:
            values["percentiles"] = tuple(values["percentiles"])
        return LabelParams(**values)


@dataclass
class Preset:
    """How cells are segmented, as saved by the dock and read by ``cytomask segment``.

    Attributes
    ----------
    method
        ``"unet"``, ``"sam2"`` or ``"sam2_guided"`` (SAM2 keeps the masks that lie
        on the U-Net's cells).
    unet, sam2
        Settings of the steps the method uses.
    split
        Optional watershed split of touching cells afterwards:
        ``{"params": {...}, "cleanup": {...}}`` for
        :func:`napari_cytomask.postprocess.iter_watershed` with method ``"split"``.
    channels
        Channel indices of multi-channel scans to segment (``None``: the channel
        the reader marks as input).
    """

    method: str = "unet"
    unet: UNetStep | None = None
    sam2: Sam2Step | None = None
    split: dict | None = None
    channels: list[int] | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise PresetError(f"unknown method {self.method!r}; use one of {', '.join(METHODS)}.")
        if self.method in ("unet", "sam2_guided") and self.unet is None:
            self.unet = UNetStep()
        if self.method in ("sam2", "sam2_guided") and self.sam2 is None:
            self.sam2 = Sam2Step()
        # Built in Python, the settings are checked as a preset file's are: a threshold of
        # "0.5" failed minutes into a scan, in numpy's words, and channels=1 was saved into
        # a file that loading then refused.
        _check_types(Preset, {"channels": self.channels}, "", _PYTHON_KINDS)
        if self.channels is not None and any(c < 0 for c in self.channels):
            raise PresetError(f"'channels' are numbered from 0, not {list(self.channels)}.")
        for key, step in (("unet", UNetStep), ("sam2", Sam2Step)):
            value = getattr(self, key)
            if value is not None and not isinstance(value, step):
                raise PresetError(
                    f"'{key}' should be a {step.__name__}, not {value!r} (Preset.from_dict "
                    "reads settings given as a dict)."
                )
            if value is not None:
                _check_types(step, asdict(value), f"{key}: ", _PYTHON_KINDS)
        if self.unet is not None:
            _check_ranges(asdict(self.unet), "unet")
        if self.sam2 is not None:
            from .models.sam2_engine import LabelParams, Sam2Params

            for where, values, params in (
                ("params", self.sam2.params, Sam2Params),
                ("labels", self.sam2.labels, LabelParams),
            ):
                _check_names(values, [f.name for f in fields(params)], f"'sam2: {where}'")
                _check_types(params, values, f"sam2: {where}: ", _PYTHON_KINDS)
            _check_ranges(self.sam2.params, "sam2: params")
            _check_ranges(self.sam2.labels, "sam2: labels")
            try:
                self.sam2.sam2_params()
                self.sam2.label_params()
            except (TypeError, ValueError) as err:
                raise PresetError(f"invalid SAM2 settings: {err}") from err
        if self.split is not None:
            _check_split(self.split)

    def check(self, steps: Sequence[str] = ("unet", "sam2")) -> None:
        """Check that the models of ``steps`` exist and fit, without loading their weights
        (a SAM2 checkpoint's are compared by their names and shapes).

        Raises
        ------
        PresetError, napari_cytomask.models.checkpoint.CheckpointError
            With a message that says what to fix.
        """
        from .models.checkpoint import config_of, read_description
        from .models.inference import check_overlap
        from .models.sam2_models import (
            HF_MODELS,
            check_sam2_checkpoint,
            check_sam2_config,
            check_sam2_file,
            identify_sam2_checkpoint,
        )

        if self.unet is not None and "unet" in steps:
            config = config_of(read_description(resolve_unet(self.unet.model)))
            try:
                check_overlap(config, self.unet.tile_size, self.unet.overlap)
            except ValueError as err:
                raise PresetError(str(err)) from None
        if self.sam2 is not None and "sam2" in steps and self.sam2.model not in HF_MODELS:
            checkpoint = Path(self.sam2.model).expanduser()
            if not checkpoint.is_file():
                raise PresetError(
                    f"SAM2 model {self.sam2.model!r} is neither a known Hugging Face id "
                    f"({', '.join(HF_MODELS)}) nor a checkpoint file."
                )
            # What the file is first: a U-Net checkpoint or a text file needs no configuration.
            check_sam2_file(checkpoint, "give it with -m, for --method unet or sam2_guided")
            if not self.sam2.config:
                # Nor does part of a model, or another network's: told as the dock tells it.
                fits = identify_sam2_checkpoint(checkpoint)
                raise PresetError(
                    f"the SAM2 checkpoint {self.sam2.model} needs its configuration: the "
                    f"Hugging Face id of the model it was made from (its weights fit {fits}): "
                    "--sam2-config on the command line, sam2.config in a preset."
                )
            check_sam2_config(self.sam2.config)
            # Weights that do not load stop the run here, once, not in each input's task.
            check_sam2_checkpoint(checkpoint, self.sam2.config)

    def with_model_settings(self) -> Preset:
        """This preset with the U-Net post-processing settings it leaves open (``None``)
        filled in from the checkpoint, so a provenance record says what was used."""
        from .models.checkpoint import read_description
        from .models.inference import recommended_settings

        if self.unet is None:
            return self
        settings = recommended_settings(read_description(resolve_unet(self.unet.model)))
        return replace(self, unet=self.unet.with_settings(settings))

    def to_dict(self) -> dict:
        """A JSON-ready description (the preset file's content)."""
        data = {"format": PRESET_FORMAT, "version": PRESET_VERSION}
        data.update(json_ready(asdict(self)))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Preset:
        """A preset from :meth:`to_dict`'s output; explains what is wrong with bad input."""
        if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
            raise PresetError(
                "not a napari-cytomask preset (its 'format' is not "
                f"{PRESET_FORMAT!r}); save one from the Segment cytoplasm dock."
            )
        version = data.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise PresetError(f"the preset's version is {version!r}, not a whole number.")
        if version > PRESET_VERSION:
            raise PresetError(
                f"the preset has version {data['version']}, newer than this napari-cytomask "
                f"reads ({PRESET_VERSION}); update napari-cytomask."
            )
        values = {k: v for k, v in data.items() if k not in ("format", "version")}
        _check_names(values, [f.name for f in fields(cls)], "preset")
        _check_types(cls, values, "")
        try:
            for key, step in (("unet", UNetStep), ("sam2", Sam2Step)):
                if values.get(key) is not None:
                    if not isinstance(values[key], dict):
                        raise PresetError(f"'{key}' should hold settings, not {values[key]!r}.")
                    _check_names(values[key], [f.name for f in fields(step)], f"'{key}'")
                    _check_types(step, values[key], f"{key}: ")
                    values[key] = step(**values[key])
        except TypeError as err:
            raise PresetError(f"invalid preset: {err}") from err
        return cls(**values)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the preset as JSON (atomically).

        Raises
        ------
        FileExistsError
            When a file is there and ``overwrite`` is false.
        """
        return write_json(path, self.to_dict(), overwrite=overwrite, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Preset:
        """Read a preset file written by :meth:`save`, or the settings that made a result,
        to make it again: the record ``cytomask segment`` wrote beside its labels, or the
        provenance an export wrote (:func:`recorded_preset`)."""
        path = Path(path)
        if path.is_dir() or not path.exists():
            why = "it is a folder" if path.is_dir() else "it does not exist"
            raise PresetError(f"{path} could not be read: {why}; give a preset file (.json).")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise PresetError(
                f"{path} is not a JSON preset file: it is no text (an image, or another "
                "binary file?); give a preset saved from the Segment cytoplasm dock."
            ) from err
        except json.JSONDecodeError as err:
            raise PresetError(
                f"{path} is not a JSON preset file (line {err.lineno}, column {err.colno}: "
                f"{err.msg[:1].lower()}{err.msg[1:]}); give a preset saved from the Segment "
                "cytoplasm dock (Save preset…)."
            ) from err
        try:
            return cls.from_dict(recorded_preset(data) or data)
        except PresetError as err:
            raise PresetError(f"{path}: {err}") from err


def recorded_preset(record) -> dict | None:
    """The preset (as :meth:`Preset.to_dict` gives it) that made a result, from the record
    ``cytomask segment`` wrote beside it or an export's provenance of it (:func:`_made_by`);
    None for other JSON (one that names no napari-cytomask version). What a run measured or
    where it ran (the pixel size, the device) is left out: the image and the machine say
    it again.

    Raises
    ------
    PresetError
        For a record of labels no step made, or made as no preset can make them again.
    """
    versions = record.get("versions") if isinstance(record, dict) else None
    if not isinstance(versions, dict) or "napari-cytomask" not in versions:
        return None
    preset = record.get("preset")  # cytomask segment's record
    if not isinstance(preset, dict):
        channel = record.get("channel_index")
        # The channel it segmented, unless the preset that made it says (a run's does).
        preset = {"channels": [channel] if isinstance(channel, int) else None, **_made_by(record)}
    return _steps_only(preset)


def _steps_only(preset: dict) -> dict:
    """``preset`` with the entries of its steps that are no step's settings left out (what
    a run measured or where it ran, which a record keeps beside them)."""
    steps = {"unet": UNetStep, "sam2": Sam2Step}
    for key, step in steps.items():
        if isinstance(preset.get(key), dict):
            names = {f.name for f in fields(step)}
            preset = {**preset, key: {k: v for k, v in preset[key].items() if k in names}}
    return preset


def _made_by(made: dict) -> dict:
    """The preset that made the cells ``made`` describes (an export's provenance, or what a
    result was made from): its ``parameters`` where they are one (a ``cytomask segment``
    result exported), else made of its method, parameters and model (the dock's results);
    a split's is that of the cells it split, with the split; SAM2 kept over the U-Net's
    cells, guided SAM2.

    Raises
    ------
    PresetError
        Where no preset makes them so: labels no step made, SAM2 kept over another
        foreground than the U-Net's cells.
    """
    frames = made.get("previewed_frames")
    if not made.get("parameters") and isinstance(frames, dict) and frames:
        # Only some frames made (one position segmented, a frame previewed): their settings,
        # not the defaults, which made 39 cells of a position for the run's 49, unsaid.
        return _made_alike(made, frames)
    method, parameters = made.get("method"), made.get("parameters")
    if isinstance(parameters, dict) and parameters.get("format") == PRESET_FORMAT:
        return parameters
    if method in ("unet", "sam2", "watershed_split") and not parameters:
        # Frames made one at a time kept their settings apart from a record written before
        # they were: the defaults would run, and were said to be a mask's.
        raise PresetError(
            f"it records cells made by {method} without their settings (frames made one at "
            "a time, recorded by an earlier version), which no preset makes again: segment "
            "them again, and give that result's record."
        )
    if not isinstance(parameters, dict) or method not in ("unet", "sam2", "watershed_split"):
        raise PresetError(
            f"it records cells made by {method or 'no step of napari-cytomask'} (a mask, or "
            "labels painted by hand, have no settings), which no preset makes again."
        )
    if method == "watershed_split":
        split = {key: parameters.get(key) for key in ("params", "cleanup")}
        return {**_made_by(made.get("made_from") or {}), "split": split}
    model = made.get("model") if isinstance(made.get("model"), dict) else {}
    if method == "unet":
        steps = {"unet": {**parameters, "model": model.get("name")}}
    else:
        sam2 = {"model": model.get("name"), "config": model.get("config"),
                "params": parameters.get("params"), "labels": parameters.get("labels")}  # fmt: skip
        steps = {"sam2": sam2}
        foreground = parameters.get("foreground")
        if foreground is not None:
            guide = _made_by(foreground) if isinstance(foreground, dict) else {}
            if guide.get("method") != "unet" or guide.get("split"):
                raise PresetError(
                    "its SAM2 masks were kept over a foreground other than the U-Net's cells "
                    "(Guided), which no preset gives."
                )
            method, steps = "sam2_guided", {**steps, "unet": guide["unet"]}
    return {"format": PRESET_FORMAT, "version": PRESET_VERSION, "method": method, **steps,
            "split": None}  # fmt: skip


def _made_alike(made: dict, frames: dict) -> dict:
    """The preset (:func:`_made_by`) that made each of the frames of ``made`` made one at a
    time (its ``previewed_frames``), the same for all: what each run measured (the
    network's confidence in each frame, its tiles) is no setting.

    Raises
    ------
    PresetError
        When they were made in different ways, which no one preset makes again.
    """
    made = {key: value for key, value in made.items() if key != "previewed_frames"}
    presets = [
        _steps_only(
            _made_by({**made, **{k: frame.get(k) for k in ("method", "parameters", "model")}})
        )
        for frame in frames.values()
    ]
    if len({json.dumps(preset, sort_keys=True, default=str) for preset in presets}) > 1:
        raise PresetError(
            f"its frames ({listed_frames(frames)}) were made one at a time with different "
            "settings, which no one preset makes again: segment them all in one run (all "
            "positions), and give that result's record or its preset."
        )
    return presets[0]


#: Python types of the preset fields' annotations (``int | None`` …) that JSON can give.
_JSON_KINDS = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict,
               "list[int]": list, "None": type(None)}  # fmt: skip
#: What a script may give for each: NumPy's numbers, a path for a file's name.
_PYTHON_KINDS = {**_JSON_KINDS, "int": numbers.Integral, "float": numbers.Real,
                 "str": (str, os.PathLike), "bool": (bool, np.bool_),
                 "list[int]": (list, tuple)}  # fmt: skip


#: Ranges (low, high; ``None``: no bound) of the preset numbers, as the dock's controls and
#: the command line's options allow them, by where they are in the preset.
_RANGES = {
    "unet": {"tile_size": (1, None), "overlap": (0, None), "batch_size": (0, None),
             "interior_threshold": (0, 1), "foreground_threshold": (0, 1),
             "min_size": (0, None)},
    "sam2: params": {"points_per_side": (1, None), "points_per_batch": (1, None),
                     "pred_iou_thresh": (0, 1), "stability_score_thresh": (0, 1),
                     "box_nms_thresh": (0, 1), "crop_nms_thresh": (0, 1),
                     "crop_n_layers": (0, None), "min_mask_region_area": (0, None)},
    "sam2: labels": {"min_area": (0, None), "max_area": (0, None),
                     "max_area_fraction": (0, 1), "min_foreground_fraction": (0, 1),
                     "foreground_threshold": (0, 1), "tile_size": (1, None),
                     "tile_overlap": (0, None)},
}  # fmt: skip


def _check_ranges(values: dict, where: str) -> None:
    """Raise :class:`PresetError` for a number outside its :data:`_RANGES` (or not finite):
    a hand-edited preset must not run with settings the dock could not give."""
    for name, (low, high) in _RANGES[where].items():
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue  # None (the default) or a type that _check_types refuses
        if not (math.isfinite(value) and value >= low and (high is None or value <= high)):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise PresetError(f"{where}: '{name}' is {value}; it must be {bounds}.")


def _check_split(split: dict) -> None:
    """Raise :class:`PresetError` unless ``split`` holds settings that split labels
    (:func:`~.postprocess.runner.check_settings`), so a bad entry is named when the preset
    is read, not at every file."""
    from .postprocess.runner import check_settings

    if set(split) - {"params", "cleanup"}:
        raise PresetError(
            f"the split settings hold {sorted(split)}; only 'params' and 'cleanup' are known."
        )
    for key in ("params", "cleanup"):
        if not isinstance(split.get(key) or {}, dict):
            raise PresetError(f"split: '{key}' should hold settings, not {split[key]!r}.")
    try:
        check_settings(
            "split", split.get("params"), split.get("cleanup"), ("split: params", "split: cleanup")
        )
    except ValueError as err:
        raise PresetError(str(err)) from err


def _check_names(values: dict, known, where: str) -> None:
    """Raise :class:`PresetError` for entries of ``values`` not among ``known`` names, all
    listed: "got an unexpected keyword argument 'tile_siz'" was Python's word for it."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise PresetError(f"unknown {where} entries {unknown}; known are {sorted(known)}.")


def _check_types(cls, values: dict, where: str, known: dict = _JSON_KINDS) -> None:
    """Raise :class:`PresetError` for a value of another type than its field's (the types
    ``known`` for each annotation: a JSON file's, or a script's), so that a hand-edited
    preset is refused with the entry named, not at every file it is used on."""
    for f in fields(cls):
        # Annotations are text here, types in modules without postponed annotations.
        kinds = [k.strip() for k in getattr(f.type, "__name__", str(f.type)).split("|")]
        if f.name not in values or not all(k in known for k in kinds):
            continue
        value = values[f.name]
        fits = any(
            isinstance(value, known[k]) and (k == "bool" or not isinstance(value, bool))
            for k in kinds
        )
        if fits and isinstance(value, (list, tuple)):
            fits = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        if not fits:
            raise PresetError(f"{where}'{f.name}' should be {' or '.join(kinds)}, not {value!r}.")


@dataclass(frozen=True)
class Segmented:
    """What :meth:`Segmenter.iter_run` made of one image or stack.

    Attributes
    ----------
    labels
        Instance labels (the ``labels_out`` array when one was given).
    confidence
        The U-Net's :func:`~napari_cytomask.models.inference.confidence` in it; None
        without a U-Net step or without cells.
    zoom
        The ``(y, x)`` factors the U-Net saw the image resampled by; None when it saw
        the image's own pixels.
    min_size
        The U-Net step's minimum cell size, in the model's pixels; None without one.
    """

    labels: np.ndarray
    confidence: float | None
    zoom: tuple[float, float] | None = None
    min_size: int | None = None


class Segmenter:
    """Runs a :class:`Preset`, loading its models once.

    Parameters
    ----------
    preset
        What to run.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    sam2_builder
        Builds SAM2 models from ``(source, device, config)``; by default Hugging
        Face ids are downloaded and local checkpoints loaded (tests pass a builder
        of small random models).
    """

    def __init__(self, preset: Preset, device: str = "auto", sam2_builder: Callable | None = None):
        from .models.sam2_models import Sam2ModelCache

        self.preset = preset
        self.device = device
        self._sam2_models = Sam2ModelCache(sam2_builder)
        self._predictor = None
        self._engine = None

    @property
    def predictor(self):
        """The U-Net (loaded on first use)."""
        from .models.inference import UNetPredictor

        if self._predictor is None:
            path = resolve_unet(self.preset.unet.model)
            self._predictor = UNetPredictor.from_checkpoint(path, self.device)
        return self._predictor

    @property
    def engine(self):
        """The SAM2 engine (built on first use)."""
        from .models.sam2_engine import Sam2Engine

        if self._engine is None:
            step = self.preset.sam2
            model = self._sam2_models.get(step.model, self.device, step.config)
            self._engine = Sam2Engine(model, model_key=f"{step.model}|{step.config}")
        return self._engine

    @property
    def n_inputs(self) -> int:
        """How many input channels the preset's models take."""
        return self.predictor.config.in_channels if self.preset.unet is not None else 1

    def describe(self) -> dict:
        """The preset plus what was loaded (for provenance files)."""
        from .io.layers import model_record
        from .models.device import get_device

        device = get_device(self.device)
        info: dict = {"preset": self.preset.to_dict(), "device": str(device)}
        if self.preset.method != "sam2":
            step = self.preset.unet
            info["unet_checkpoint"] = str(resolve_unet(step.model))
            info["model"] = model_record(step.model, info["unet_checkpoint"])
            info["tiling"] = step.tiling(self.predictor)
        else:
            sam2 = self.preset.sam2
            local = sam2.model if Path(sam2.model).is_file() else None
            info["model"] = model_record(sam2.model, local, config=sam2.config)
        return info

    def iter_segment(self, channels: Sequence, **kwargs) -> Generator[Progress, None, np.ndarray]:
        """Instance labels of an image or stack, yielding :class:`Progress`; the arguments
        are those of :meth:`iter_run`."""
        run = yield from self.iter_run(channels, **kwargs)
        return run.labels

    def iter_run(
        self,
        channels: Sequence,
        *,
        labels_out=None,
        scratch: Path | None = None,
        chunk_size: int = 2048,
        pixel_size_um: tuple[float, float] | None = None,
    ) -> Generator[Progress, None, Segmented]:
        """Instance labels of an image or stack, with how sure the U-Net was of them,
        yielding :class:`Progress`.

        Parameters
        ----------
        channels
            One ``(*frames, Y, X)`` array per input channel (numpy, dask, zarr), in a
            list; a single array is one channel. A colour picture (``(*frames, Y, X, 3)``)
            given to a U-Net of one channel is segmented on its grey version, as the dock
            and ``cytomask segment`` do.
        labels_out
            Preallocated integer output (e.g. a zarr array on disk) for images
            larger than memory; by default a numpy array is returned.
        scratch
            Folder for the U-Net's probabilities of a large image, and its cells where
            the preset splits them into ``labels_out``; without it they are kept in memory.
        chunk_size
            Frames larger than this go through the watershed in windows of this size.
        pixel_size_um
            The image's (Y, X) pixel size in µm, or one number for square pixels, when
            known: the U-Net step resamples it to the model's (see :class:`UNetStep`), and
            the watershed of every step (the U-Net's foreground map, SAM2's and the
            preset's split) measures distances over its shape.

        Raises
        ------
        ValueError
            When ``pixel_size_um`` is not one or two positive numbers.
        """
        pixel_size_um = positive_pair(pixel_size_um, "pixel_size_um", "a pixel size in µm")
        if hasattr(channels, "shape"):  # an array's rows are no channels
            channels = [channels]
        method = self.preset.method
        labels, confidence, zoom, min_size = None, None, None, None
        if method in ("unet", "sam2_guided"):
            out = None
            if method == "unet":
                # A split reads the U-Net's cells as it writes its own: into another store.
                out = labels_out if self.preset.split is None else _like(labels_out, scratch)
            kwargs = self.preset.unet.segment_kwargs(self.predictor, pixel_size_um)
            zoom, min_size = kwargs["zoom"], kwargs["cleanup"].get("min_area")
            labels, confidence = yield from self._unet(channels, out, scratch, chunk_size, kwargs)
        if method in ("sam2", "sam2_guided"):
            foreground = None if labels is None else np.asarray(labels) > 0
            labels = yield from self._sam2(channels[0], foreground, pixel_size_um)
        if self.preset.split is not None:
            from .postprocess.runner import iter_watershed

            gen = iter_watershed(
                "split",
                labels,
                params=self.preset.split.get("params"),
                cleanup=self.preset.split.get("cleanup"),
                chunk_size=chunk_size,
                out=labels_out,
                spacing=pixel_size_um,
            )
            labels = yield from _as_progress("split", gen)
        if labels_out is not None and labels is not labels_out:
            labels_out[...] = labels
            labels = labels_out
        return Segmented(labels, confidence, zoom, min_size)

    def _unet(self, channels, labels_out, scratch, chunk_size, kwargs):
        import zarr

        from .models.checkpoint import check_input_channels
        from .models.inference import iter_segment, model_inputs

        step = self.preset.unet
        predictor = self.predictor
        check_input_channels(predictor.description, len(channels), step.model)
        channels = model_inputs(channels, predictor.config.in_channels)  # a colour picture: grey
        probs_out = None
        if scratch is not None:
            shape = (len(predictor.classes), *channels[0].shape)
            chunks = (1,) * (len(shape) - 2) + (256, 4096)
            probs_out = zarr.create_array(
                Path(scratch) / "probabilities.zarr", shape=shape, chunks=chunks,
                dtype="float32", fill_value=0, overwrite=True,
            )  # fmt: skip
        result = yield from iter_segment(
            predictor,
            channels,
            **kwargs,
            probabilities_out=probs_out,
            labels_out=labels_out,
            chunk_size=chunk_size,
        )
        return result.labels, result.confidence

    def _sam2(self, image, foreground, pixel_size_um):
        step = self.preset.sam2
        gen = self.engine.segment_iter(
            np.asarray(image),
            step.sam2_params(),
            step.label_params(),
            foreground=foreground,
            spacing=pixel_size_um,
        )
        result = yield from _as_progress("sam2", gen)
        return result.labels


def _like(labels_out, scratch):
    """An empty store like ``labels_out`` (a zarr array) in ``scratch``, for labels of an
    image larger than memory; None (in memory) without either."""
    if labels_out is None or scratch is None:
        return None
    import zarr

    return zarr.create_array(
        Path(scratch) / "cells.zarr", shape=labels_out.shape,
        chunks=getattr(labels_out, "chunks", "auto"), dtype=labels_out.dtype, fill_value=0,
        overwrite=True,  # a scratch folder used for an image before
    )  # fmt: skip


def _as_progress(stage: str, gen):
    """Re-yield a generator's ``(done, total)`` or ``(stage, done, total)`` as :class:`Progress`."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Progress):
            yield event
        else:
            *named, done, total = event
            yield Progress(named[0] if named else stage, int(done), int(total))
