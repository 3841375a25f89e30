"""U-Net inference over overlapping tiles blended with a smooth window, without seams.

Each frame (every leading axis of the input is a frame: tiles of a scan, time
points) is normalised by percentiles, cut into overlapping tiles, predicted in
batches (with autocast on CUDA and optional flip test-time augmentation), and
blended: every tile's class probabilities are weighted by a window that is 1 in
its middle and falls smoothly towards its edges, where a network sees least
context, and the weighted sum is divided by the summed weights. Tiles
are processed one row of tiles at a time and finished rows are written out, so
memory holds one band of tiles, not the frame: a dask or zarr scan larger than
memory streams through, and the probabilities can go to a memmap or zarr array.

An image whose pixels differ in size from the model's training images can be
resampled to them (``zoom``): each tile is cut at the image's pixels, resized to
the network's, and its probabilities resized back, so the probabilities and cells
keep the image's own pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..labels import as_planes
from ..postprocess import iter_watershed
from ..postprocess.runner import DEFAULT_CLEANUP, check_settings
from ..progress import Progress, drain, relay
from ..tiling import fitted_tile, padded_size, tile_starts
from .catalog import (
    enlargement_note,
    image_area,
    learnt_pixel_size,
    positive_pair,
    resolve_unet,
)
from .checkpoint import check_input_channels, config_of, load_checkpoint
from .device import autocast_dtype, get_device
from .unet import UNetConfig, model_device, normalise, percentile_range

#: Default post-processing of each target: parameters of the watershed functions.
DEFAULT_POSTPROCESS = {
    "interior_boundary": {
        "interior_threshold": 0.5,
        "foreground_threshold": 0.5,
        "min_marker_size": 10,
    },
    "foreground": {"threshold": 0.5, "markers": "h_maxima", "h": 2.0},
}

#: The post-processing settings a user sees (widget, command line, presets),
#: with the values used when the checkpoint recommends none.
DEFAULT_SETTINGS = {"interior_threshold": 0.5, "foreground_threshold": 0.5, "min_size": 0}


def segmenting_settings(description: dict) -> dict | None:
    """The post-processing settings a checkpoint description records: those tuned on
    validation images after training (its ``"postprocess"``), else, for a fine-tuned model
    not tuned, those its epochs were scored at (its training's ``"validation_settings"``:
    its starting model's, where the starter model so fine-tuned segmented at 0.5 / 0.5 / 0
    for its 0.5 / 0.95 / 570, F1@0.5 0.729 for 0.911; the defaults, None, for a model
    fine-tuned so before, as its scores were measured); None when it records none."""
    training = description.get("training") or {}
    scored = training.get("initialised_from") and training.get("validation_settings")
    return description.get("postprocess") or scored or None


def recommended_settings(description: dict) -> dict:
    """Post-processing settings of a checkpoint description: :func:`segmenting_settings`,
    else :data:`DEFAULT_SETTINGS`."""
    recorded = segmenting_settings(description) or {}
    return {k: recorded.get(k, v) for k, v in DEFAULT_SETTINGS.items()}


def postprocess_arguments(
    targets: str, interior_threshold: float, foreground_threshold: float, min_size: int
) -> dict:
    """``postprocess`` and ``cleanup`` arguments of :func:`iter_segment` for user settings.

    Parameters
    ----------
    targets
        The network's targets; a foreground-only network has no interior threshold.
    interior_threshold, foreground_threshold, min_size
        See :data:`DEFAULT_SETTINGS`; ``min_size`` removes smaller cells.
    """
    if targets == "foreground":
        post = {"threshold": foreground_threshold}
    else:
        post = {
            "interior_threshold": interior_threshold,
            "foreground_threshold": foreground_threshold,
        }
    return {"postprocess": post, "cleanup": {"min_area": int(min_size)}}


@dataclass
class Segmentation:
    """The result of :func:`iter_segment`.

    Attributes
    ----------
    probabilities
        ``(K, *frames, Y, X)`` float32 probability of each class (numpy, memmap or zarr);
        None where they were not kept (the dock's stack, its maps not asked for).
    classes
        Class names, in the order of ``probabilities``.
    labels
        ``(*frames, Y, X)`` instance labels, ids unique across frames.
    confidence
        :func:`confidence` of the probabilities: lower on images unlike the model's own.
    """

    probabilities: np.ndarray | None
    classes: tuple[str, ...]
    labels: np.ndarray | None
    confidence: float | None = None


class UNetPredictor:
    """A loaded network with its description, ready to predict.

    Parameters
    ----------
    model
        The network (evaluation mode).
    config
        Its configuration.
    description
        The checkpoint description (or ``{}`` for a network not yet saved).
    """

    def __init__(self, model: nn.Module, config: UNetConfig, description: dict | None = None):
        self.model = model.eval()
        self.config = config
        self.description = description or {}

    @classmethod
    def from_checkpoint(cls, model: str | os.PathLike | None, device="auto") -> UNetPredictor:
        """Load a checkpoint onto a device (``"auto"``, ``"cpu"``, ``"cuda:0"``, ...).

        ``model`` is a file, a name in the model folder, or ``None``/``"starter"`` for the
        starter model, as everywhere else (:func:`~.catalog.resolve_unet`).
        """
        model, desc = load_checkpoint(resolve_unet(model), get_device(device))
        return cls(model, config_of(desc), desc)

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return model_device(self.model)

    @property
    def classes(self) -> tuple[str, ...]:
        """Output class names."""
        return self.config.classes

    @property
    def settings(self) -> dict:
        """Post-processing settings its checkpoint recommends (:func:`recommended_settings`)."""
        return recommended_settings(self.description)

    @property
    def pixel_size_um(self) -> tuple[float, float] | None:
        """The (Y, X) pixel size in µm it learnt cells at, when known
        (:func:`~.catalog.learnt_pixel_size`)."""
        return learnt_pixel_size(self.description)


class PredictorCache:
    """Loaded networks keyed by file, modification time and device, so a click never reloads.

    Parameters
    ----------
    size
        How many networks to keep.
    """

    def __init__(self, size: int = 2):
        self.size = size
        self._items: dict[tuple, UNetPredictor] = {}

    def get(self, path: str | os.PathLike, device="auto") -> UNetPredictor:
        """The predictor of ``path`` on ``device``, loading it when needed."""
        path = Path(path).resolve()
        dev = get_device(device)
        key = (str(path), path.stat().st_mtime_ns, str(dev))
        if key not in self._items:
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = UNetPredictor.from_checkpoint(path, dev)
        return self._items[key]


def blend_window(length: int, ramp: int) -> np.ndarray:
    """1D weights: 1 in the middle, a smooth ramp ``sin(pi t / 2) ** 8`` over ``ramp`` pixels.

    The steep ramp gives the outer part of every overlap almost entirely to the
    neighbouring tile, whose centre it is: predictions near a tile's edge suffer
    from the convolutions' zero padding. The weights never reach 0, so pixels
    covered by a single tile (at image borders) keep their prediction after
    normalisation.
    """
    w = np.ones(length, np.float32)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        t = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
        edge = np.sin(np.pi * t / 2) ** 8
        w[:ramp] = edge
        w[length - ramp :] = edge[::-1]
    return np.maximum(w, 1e-4)


def tile_for(config: UNetConfig, tile_size: int | None = None) -> int:
    """The tile edge a prediction uses: ``tile_size`` (default the model's) rounded up to
    a multiple of what the encoder downsamples by."""
    return padded_size(tile_size or config.tile_size, config.size_multiple)


def largest_tile(tile: int, tile_size: int | None) -> int:
    """The largest tile edge a prediction with tiles of ``tile`` (:func:`tile_for`) fits to
    an image (:func:`~napari_cytomask.tiling.fitted_tile`): the model's tile may grow by a
    quarter where that covers the image with fewer pixels; a ``tile_size`` given is kept
    (it may have been chosen to fit in memory)."""
    return tile if tile_size else tile * 5 // 4


def check_overlap(config: UNetConfig, tile_size: int | None, overlap: int) -> int:
    """The tile edge (:func:`tile_for`), or a ValueError that says what to change when
    ``overlap`` does not fit in it (a model trained on small crops has small tiles)."""
    tile = tile_for(config, tile_size)
    if not 0 <= overlap < tile:
        given = f"tile size {tile_size}" if tile_size else "model"
        raise ValueError(
            f"a tile overlap of {overlap} px needs tiles larger than that; the tiles are "
            f"{tile} px (the {given}'s, in multiples of {config.size_multiple}). Give a "
            "smaller tile overlap or a larger tile size."
        )
    return tile


def batch_for(device: torch.device, batch_size: int = 0) -> int:
    """Tiles per forward pass: ``batch_size``, or for 0, 8 on a GPU and 1 on the CPU,
    where batching gains no speed but multiplies the memory of activations."""
    if batch_size > 0:
        return batch_size
    return 8 if device.type != "cpu" else 1


def _read_tile(frame, y: int, x: int, th: int, tw: int) -> tuple[np.ndarray, tuple, tuple]:
    """Read a tile from every channel of a frame: the block, and where the image is in it
    (rows and columns). An image smaller than a tile is padded by reflection on both
    sides (alike when the padding is even), so that cells at one edge are found as at the
    other; padded at its end only, they changed with the way the image faced."""
    arrays = [np.asarray(ch[y : y + th, x : x + tw], dtype=np.float32) for ch in frame]
    block = np.stack(arrays)
    h, w = block.shape[-2:]
    top, left = (th - h) // 2, (tw - w) // 2
    if (h, w) != (th, tw):
        mode = "reflect" if h > 1 and w > 1 else "edge"
        block = np.pad(block, ((0, 0), (top, th - h - top), (left, tw - w - left)), mode=mode)
    return block, slice(top, top + h), slice(left, left + w)


@torch.inference_mode()
def predict_tiles(
    predictor: UNetPredictor, batch: np.ndarray, *, tta: bool = False, on_device: bool = False
):
    """Class probabilities of a batch of normalised tiles ``(B, C, Y, X)`` -> ``(B, K, Y, X)``.

    Parameters
    ----------
    predictor
        The network.
    batch
        float32 tiles, sizes a multiple of the network's downsampling.
    tta
        Average the predictions of the tile and its horizontal, vertical and
        double flips.
    on_device
        Return a tensor on the network's device (for further work there) instead
        of a numpy array.
    """
    device = predictor.device
    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    dtype = autocast_dtype(device)
    flips = [(), (-1,), (-2,), (-2, -1)] if tta else [()]
    total = None
    for dims in flips:
        xin = torch.flip(x, dims) if dims else x
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = predictor.model(xin)
        probs = torch.softmax(logits.float(), dim=1)
        if dims:
            probs = torch.flip(probs, dims)
        total = probs if total is None else total + probs
    total = total / len(flips)
    return total if on_device else total.cpu().numpy()


def model_inputs(image, in_channels: int) -> list:
    """One array per channel of a model of ``in_channels``, each ``(*frames, Y, X)``: a
    list or tuple of arrays is one per channel, anything else (an array, nested lists, a
    PIL image) one channel. A colour picture given to a model of one channel is its
    :func:`~napari_cytomask.labels.grey_version`, as in the dock and ``cytomask segment``.
    """
    if isinstance(image, (list, tuple)) and all(hasattr(ch, "shape") for ch in image):
        images = list(image)
    else:
        images = [image]
    grey = len(images) == in_channels == 1
    channels = [as_planes(ch, grey=grey) for ch in images]
    shapes = {tuple(ch.shape) for ch in channels}
    if len(shapes) != 1:
        raise ValueError(
            f"all input channels must have the same shape, got {sorted(shapes)}; pick layers "
            "of the same scan."
        )
    shape = shapes.pop()
    if len(shape) < 2 or 0 in shape:
        raise ValueError(f"the input has shape {shape}; pick a 2D image or a stack of them.")
    if len(channels) != in_channels:
        check_input_channels({"in_channels": in_channels}, len(channels))
    return channels


def iter_predict(
    predictor: UNetPredictor,
    image,
    *,
    tile_size: int | None = None,
    overlap: int = 64,
    batch_size: int = 0,
    tta: bool = False,
    zoom: tuple[float, float] | None = None,
    out=None,
) -> Generator[Progress, None, np.ndarray]:
    """Class probabilities of an image or stack, yielding progress after each batch of tiles.

    Parameters
    ----------
    predictor
        The network.
    image
        ``(*frames, Y, X)`` array (numpy, dask, zarr, memmap), or a list of
        such arrays, one per input channel; for a model of one channel, a colour
        picture (``(*frames, Y, X, 3)``) too, segmented on its grey version
        (:func:`model_inputs`).
    tile_size
        Tile size (rounded up to the network's size multiple); default: the
        checkpoint's tile size.
    overlap
        Minimum overlap of neighbouring tiles in pixels; the blending ramp is
        this wide, so make it larger than the region where tile borders hurt
        (about 32 to 128 pixels).
    batch_size
        Tiles per forward pass; 0 picks one for the device (:func:`batch_for`).
    tta
        Flip test-time augmentation (4 passes per tile).
    zoom
        ``(y, x)`` factors by which the network sees the image resized (0.5: at half
        its pixels, see :func:`~.catalog.model_zoom`); ``tile_size`` and ``overlap``
        are then in the network's pixels. The probabilities keep the image's shape.
    out
        Preallocated ``(K, *frames, Y, X)`` float32 output (numpy, memmap, zarr);
        by default a numpy array.

    Returns
    -------
    numpy.ndarray or the given ``out``
    """
    config = predictor.config
    channels = model_inputs(image, config.in_channels)
    shape = tuple(channels[0].shape)
    frames_shape, (height, width) = shape[:-2], shape[-2:]
    n_frames = int(np.prod(frames_shape, dtype=np.int64))
    multiple = config.size_multiple
    tile = check_overlap(config, tile_size, overlap)
    largest = largest_tile(tile, tile_size)
    zoom = positive_pair(zoom, "zoom", "the factor the image is resampled by for the network")
    zy, zx = zoom or (1.0, 1.0)
    # The network's tile, and the part of the image it sees (the same without zoom).
    th = fitted_tile(math.ceil(height * zy), tile, overlap, multiple, largest)
    tw = fitted_tile(math.ceil(width * zx), tile, overlap, multiple, largest)
    ih, iw = round(th / zy), round(tw / zx)
    oy, ox = round(overlap / zy), round(overlap / zx)
    ys, xs = tile_starts(height, ih, oy), tile_starts(width, iw, ox)
    # Ramps as wide as the smallest actual overlap keep the blend smooth everywhere.
    window = np.outer(
        blend_window(ih, oy if len(ys) > 1 else 0), blend_window(iw, ox if len(xs) > 1 else 0)
    )
    n_classes = len(config.classes)
    if out is None:
        out = np.zeros((n_classes, *shape), np.float32)
    elif tuple(out.shape) != (n_classes, *shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(n_classes, *shape)}.")
    low, high = config.percentiles
    device = predictor.device
    batch_size = batch_for(device, batch_size)
    batches_per_row = math.ceil(len(xs) / batch_size)
    total = n_frames * len(ys) * batches_per_row
    done = 0
    detail = enlargement_note(zoom)
    # Tiles are blended where the network runs: on a GPU, the blending and the band of
    # tile rows stay there, and each row's probabilities cross to the host once.
    window = torch.from_numpy(window).to(device)
    yield Progress("predict", 0, total, detail)
    for f in range(n_frames):
        index = np.unravel_index(f, frames_shape) if frames_shape else ()
        raw = [ch[index] if index else ch for ch in channels]
        ranges = [percentile_range(ch, low, high) for ch in raw]
        band = torch.zeros((n_classes, ih, width), dtype=torch.float32, device=device)
        weight = torch.zeros((ih, width), dtype=torch.float32, device=device)
        for r, y in enumerate(ys):
            for b in range(0, len(xs), batch_size):
                row_xs = xs[b : b + batch_size]
                tiles, inside = [], []
                for x in row_xs:
                    block, rows, cols = _read_tile(raw, y, x, ih, iw)
                    for c, (lo, hi) in enumerate(ranges):
                        block[c] = normalise(block[c], lo, hi)
                    tiles.append(block)
                    inside.append((rows, cols))
                batch = resized_planes(np.stack(tiles), (th, tw))
                probs = resized_planes(
                    predict_tiles(predictor, batch, tta=tta, on_device=True), (ih, iw)
                )
                for x, p, (rows, cols) in zip(row_xs, probs, inside, strict=True):
                    h, w = rows.stop - rows.start, cols.stop - cols.start
                    win = window[:h, :w]
                    band[:, :h, x : x + w] += p[:, rows, cols] * win
                    weight[:h, x : x + w] += win
                done += 1
                yield Progress("predict", done, total, detail)
            # Rows above the next tile row get no more contributions: write them out.
            stop = ys[r + 1] if r + 1 < len(ys) else height
            n = stop - y
            out[(slice(None), *index, slice(y, stop))] = (band[:, :n] / weight[:n]).cpu().numpy()
            band = torch.roll(band, -n, dims=1)
            weight = torch.roll(weight, -n, dims=0)
            band[:, ih - n :] = 0
            weight[ih - n :] = 0
    return out


def resized_planes(batch, size: tuple[int, int]):
    """``(B, C, Y, X)`` float32 (numpy, or a tensor on any device) resized to ``size``
    (bilinear, anti-aliased when it shrinks), of the same kind; the same array when it has
    that size. Probabilities stay probabilities:
    each output pixel is a weighted mean of input pixels."""
    if tuple(batch.shape[-2:]) == tuple(size):
        return batch
    tensor = isinstance(batch, torch.Tensor)
    resized = torch.nn.functional.interpolate(
        batch if tensor else torch.from_numpy(np.ascontiguousarray(batch)),
        size=size,
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return resized if tensor else resized.numpy()


def predict(predictor: UNetPredictor, image, **kwargs) -> np.ndarray:
    """Run :func:`iter_predict` to the end and return the probabilities."""
    return drain(iter_predict(predictor, image, **kwargs))


class _ClassPlane:
    """Class ``k`` of a ``(K, ...)`` probability array, read only where it is indexed.

    Indexing a zarr array reads at once, so ``probabilities[k]`` of an image
    larger than memory would load the whole plane; the watershed reads this
    plane one window at a time instead.
    """

    def __init__(self, probabilities, k: int):
        self._probabilities, self._k = probabilities, k
        self.shape = tuple(probabilities.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = probabilities.dtype

    def __getitem__(self, key):
        return self._probabilities[(self._k, *(key if isinstance(key, tuple) else (key,)))]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._probabilities[self._k], dtype=dtype)


def _plane(probabilities, k: int):
    """Class ``k`` of the probabilities: a view of a numpy array, else a lazy plane."""
    if isinstance(probabilities, np.ndarray):
        return probabilities[k]
    return _ClassPlane(probabilities, k)


def probabilities_to_instances(
    probabilities,
    targets: str,
    *,
    params: dict | None = None,
    cleanup: dict | None = None,
    chunk_size: int | None = 2048,
    overlap: int = 256,
    out=None,
    spacing: tuple[float, float] | None = None,
    zoom: tuple[float, float] | None = None,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Instance labels from class probabilities, yielding ``(done, total)`` (a generator).

    Parameters
    ----------
    probabilities
        ``(K, *frames, Y, X)`` from :func:`iter_predict`.
    targets
        ``"interior_boundary"`` or ``"foreground"``.
    params
        Watershed parameters (see :data:`DEFAULT_POSTPROCESS`).
    cleanup
        Clean-up parameters of :func:`napari_cytomask.postprocess.clean_labels`.
    chunk_size, overlap
        Frames larger than ``chunk_size`` are split into windows (see
        :func:`napari_cytomask.postprocess.iter_watershed`).
    out
        Preallocated integer output of the frame shape.
    spacing
        The (Y, X) size of the probabilities' pixels, in any unit, when known: a
        foreground map's cells are seeded by their distance to the background, measured
        over the pixels' shape (see :func:`napari_cytomask.postprocess.iter_watershed`).
        The interior/boundary maps seed their own cells and need none.
    zoom
        The ``(y, x)`` factors the image was resampled by for the network
        (:func:`~.catalog.zoom_to`), whose probabilities are at the image's pixels again:
        the sizes counted in the network's pixels (areas such as the minimum cell size,
        the clean-up's default one and the least seed; distances such as a foreground
        map's ``h`` and radii) are counted in the image's, and the windows overlap by
        as many of the network's pixels, so that cells 8 times as wide as the network's
        (a 60x objective) are not cut where two windows meet.
    """
    params = {**DEFAULT_POSTPROCESS[targets], **(params or {})}
    zoom = positive_pair(zoom, "zoom", "the factor the image was resampled by for the network")
    if zoom:
        params, cleanup, overlap = _at_image_pixels(params, cleanup, overlap, zoom)
    if targets == "interior_boundary":
        inputs = (_plane(probabilities, 1), _plane(probabilities, 2))
        method = "interior_boundary"
    else:
        inputs = (_plane(probabilities, 1),)
        method = "foreground"
    shape = tuple(inputs[0].shape)
    if chunk_size is not None and max(shape[-2:]) <= chunk_size + 2 * overlap:
        chunk_size = None
    return (
        yield from iter_watershed(
            method,
            *inputs,
            params=params,
            cleanup=cleanup,
            chunk_size=chunk_size,
            overlap=overlap,
            out=out,
            spacing=spacing,
        )
    )


#: The watershed's and clean-up's settings that are areas and distances in pixels.
_AREAS = ("min_marker_size", "min_area", "max_area")
_DISTANCES = ("h", "min_distance", "marker_erosion", "marker_dilation", "opening_radius",
              "closing_radius")  # fmt: skip


def _at_image_pixels(
    params: dict, cleanup: dict | None, overlap: int, zoom: tuple[float, float]
) -> tuple[dict, dict, int]:
    """:func:`probabilities_to_instances`' sizes in the network's pixels counted in an
    image's, which the network saw resampled by ``zoom``: areas (the clean-up's default
    least area too) by both factors; distances (``h`` in the image's shorter pixel sides,
    see ``spacing``; radii) by the smaller; the windows' overlap by the smaller where it
    enlarges it (an overlap is not cut)."""
    finest = min(zoom)

    def scaled(settings: dict) -> dict:
        for key in set(settings) & {*_AREAS, *_DISTANCES}:
            value = settings[key]
            if value is None:  # no largest area
                continue
            if key in _AREAS:
                settings[key] = image_area(value, zoom)
            elif key == "h":  # a depth of distance: any positive number
                settings[key] = value / finest
            elif value >= 1:  # whole pixels, one at least (a radius of 0.5 erased every cell)
                settings[key] = max(1, round(value / finest))
        return settings

    cleanup = scaled({**DEFAULT_CLEANUP, **(cleanup or {})})
    return scaled(dict(params)), cleanup, max(overlap, math.ceil(overlap / finest))


def iter_segment(
    predictor: UNetPredictor,
    image,
    *,
    tile_size: int | None = None,
    overlap: int = 64,
    batch_size: int = 0,
    tta: bool = False,
    zoom: tuple[float, float] | None = None,
    postprocess: dict | None = None,
    cleanup: dict | None = None,
    probabilities_out=None,
    labels_out=None,
    chunk_size: int | None = 2048,
    instances: bool = True,
    spacing: tuple[float, float] | None = None,
) -> Generator[Progress, None, Segmentation]:
    """Probabilities and instance labels of an image or stack ("Segment cytoplasm").

    A generator yielding :class:`Progress`; its return value is a
    :class:`Segmentation`. Parameters are those of :func:`iter_predict` and of
    :func:`probabilities_to_instances` (``postprocess`` are the watershed
    parameters, ``chunk_size`` its window size); ``instances=False`` stops after
    the probabilities. ``postprocess`` and ``cleanup`` left out take the settings the
    checkpoint records (:func:`segmenting_settings`, :attr:`UNetPredictor.settings`), as the dock
    and ``cytomask segment`` do, when it has them (the starter model does). ``tta`` is off
    unless asked for (four times faster), where the dock and ``cytomask segment`` turn it
    on: the starter model's thresholds were chosen with it, and its cells differ a little
    without it. With ``zoom`` the cells are found at the image's pixels, so the sizes in
    the network's pixels are scaled to them (:func:`probabilities_to_instances`), and the
    watershed measures distances over the shape of those pixels, ``spacing`` ((Y, X) in
    any unit, where known), though the network saw them resampled to square ones.
    """
    if segmenting_settings(predictor.description):
        tuned = postprocess_arguments(predictor.config.targets, **predictor.settings)
        postprocess = tuned["postprocess"] if postprocess is None else postprocess
        cleanup = tuned["cleanup"] if cleanup is None else cleanup
    if instances:  # said before the minutes of predicting, not after
        check_settings(predictor.config.targets, postprocess, cleanup, ("postprocess", "cleanup"))
    probs = yield from iter_predict(
        predictor,
        image,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        zoom=zoom,
        out=probabilities_out,
    )
    labels = None
    if instances:
        labels = yield from relay(
            probabilities_to_instances(
                probs,
                predictor.config.targets,
                params=postprocess,
                cleanup=cleanup,
                chunk_size=chunk_size,
                out=labels_out,
                spacing=spacing,
                zoom=zoom,
            ),
            lambda done, total: Progress("instances", done, total),
        )
    return Segmentation(probs, predictor.classes, labels, confidence(probs, predictor.classes))


def confidence(probabilities, classes: Sequence[str]) -> float | None:
    """How sure the network is of the cells it found: the mean probability of the most
    likely class over the pixels it calls a cell (background below 0.5), read on every
    4th row and column (:func:`confidence_sample`); None without such pixels.

    On images like its training images a network is surer than on others: the starter
    model scores 0.77 to 0.85 on Usiigaci phase contrast and 0.64 on DIC
    (:data:`~napari_cytomask.models.catalog.STARTER_CONFIDENCE`).
    """
    return sampled_confidence(confidence_sample(probabilities), classes)


def confidence_sample(probabilities) -> np.ndarray:
    """The pixels of ``probabilities`` (``(K, *frames, Y, X)``) that :func:`confidence`
    reads: every 4th row and column, sparser in frames above 64 megapixels, so the sample
    stays small. Frame by frame, the frames' samples stacked are the stack's."""
    height, width = probabilities.shape[-2:]
    step = max(4, math.ceil(math.sqrt(height * width / 4e6)))
    every = slice(None, None, step)
    return np.asarray(
        probabilities[(slice(None),) * (probabilities.ndim - 2) + (every, every)], np.float32
    )


def sampled_confidence(sample: np.ndarray, classes: Sequence[str]) -> float | None:
    """:func:`confidence` of the pixels :func:`confidence_sample` took."""
    cells = sample[list(classes).index("background")] < 0.5
    if not cells.any():
        return None
    return float(sample.max(axis=0)[cells].mean())


def segment(predictor: UNetPredictor, image, **kwargs) -> Segmentation:
    """Run :func:`iter_segment` to the end and return the :class:`Segmentation`."""
    return drain(iter_segment(predictor, image, **kwargs))
