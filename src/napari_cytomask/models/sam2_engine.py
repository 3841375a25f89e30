"""SAM2 automatic masks whose parameters can be tuned live.

:class:`Sam2Engine` gives the same masks as sam2's ``SAM2AutomaticMaskGenerator``
for the same model and parameters, but splits the work by cost:

* the image encoder runs once per image (or tile) and crop box; its features
  are cached under a hash of the image bytes, the tile and the crop box;
* the mask decoder runs once per prompt point and set of decoder parameters
  (:data:`DECODER_PARAMS`) on the cached features, in sam2's batches, and
  *every* candidate mask is kept with its predicted IoU, stability score, box
  and compressed mask, before any filtering; a ``points_per_side`` change
  decodes only the points the engine has not seen (a grid of ``3n`` points per
  side holds every point of the grid of ``n``);
* what sam2 computes over every full-resolution mask (stability counts, box,
  area, run lengths) is read, on the CPU, only inside the window that the
  candidate's low-resolution logits can reach: bilinear upsampling is local,
  and outside that window no pixel can pass a threshold. On the CPU each
  candidate is also upsampled on its own, just before it is read, so its
  frame is still in the cache (sam2 upsamples a whole batch first: 192 frames
  of a 1024² image are 800 MB). On a GPU whole frames are processed at once on
  the device and only counts and packed masks travel;
* the post-filters (:data:`FILTER_PARAMS`) then only select from the cached
  candidates, in the stock generator's order: predicted IoU and stability
  thresholds and the crop-edge filter, box NMS per crop, NMS across crops.

``stability_score_offset`` and ``mask_threshold`` change the stability score and
the binarised masks, which need the full-resolution mask logits. Keeping those
for thousands of candidates would take gigabytes (3 072 candidates of a
1024² image are 12 GiB as float32), so these two re-run the decoder on the
cached features instead; the encoder still runs once. The decoder computes
exactly what sam2's does, in sam2's batches; on a CPU it runs as
:func:`.sam2_decoder.decode`, which does the image-sized work a few prompts at
a time and the work common to all prompts once (about 2.7 times faster than
sam2's call, bit for bit the same). It is still what a first run mostly costs
on a CPU.

``min_mask_region_area`` behaves as in sam2 1.1: the generator hands it to its
predictor, which fills holes and removes sprinkles in the low-resolution logits
with sam2's compiled extension (``sam2._C``) and skips that step, with a
warning, where the extension is missing. It is therefore a decoder parameter;
sam2's ``generate`` never calls ``postprocess_small_regions``.

For cell images, :meth:`Sam2Engine.segment_iter` adds what a label image needs:
percentile normalisation of grayscale microscopy images, tiles for images larger
than the model input, stacks of positions, removal of background masks,
overlap resolution and per-object features.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torchvision.ops.boxes import batched_nms, box_area

from ..labels import min_label_dtype
from ..progress import drain, out_of_memory
from ..rle import rle_counts, rle_string, rle_to_mask
from ..tiling import tile_boxes
from .device import autocast_dtype
from .sam2_decoder import CPU_CHUNK, decode
from .unet import normalise, percentile_range

#: Parameters that only re-filter cached candidates.
FILTER_PARAMS = ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh")
#: Parameters that re-run the mask decoder on cached image features.
DECODER_PARAMS = (
    "points_per_side",
    "point_grids",
    "crop_n_points_downscale_factor",
    "multimask_output",
    "use_m2m",
    "stability_score_offset",
    "mask_threshold",
    "min_mask_region_area",
)
#: Parameters that change the crops, so the encoder runs for crops it has not seen.
ENCODER_PARAMS = ("crop_n_layers", "crop_overlap_ratio")

#: Progress events ``(stage, done, total)``, all counted in prompt points of every crop (of
#: an image or tile) together, never going back: "encoder" before an encoder run on a crop,
#: at the points of the crops before it; "decoder" when a crop's decoding starts, after
#: every decoder batch and after every finished crop. (Crops counted for the encoder put
#: the bar back where crops hold fewer points than others, and changed its scale.)
Progress = tuple[str, int, int]
#: Default percentiles that map grayscale intensities to 0 and 255.
PERCENTILES = (1.0, 99.0)


def crop_points_problem(points_per_side: int, crop_n_layers: int, factor: int) -> str | None:
    """What is wrong with a grid of prompt points for crop layers, in words; None when
    every layer gets points.

    sam2 divides by the points per side of each layer, ``points_per_side / factor **
    layer`` rounded down: 7 points per side, 2 crop layers and a factor of 4 failed with
    "division by zero".
    """
    n, layers = points_per_side, crop_n_layers
    if n < 1 or layers < 0 or factor < 1:
        return (
            f"Points per side ({n}) and the factor of fewer points in crops ({factor}) must "
            f"be at least 1, and crop layers ({layers}) 0 or more."
        )
    if int(n / factor**layers) < 1:
        return (
            f"With {n} points per side, {layers} crop layer(s) and {factor} times fewer points "
            f"in each deeper layer, the smallest crops get no point ({n} / {factor**layers} < "
            f"1). Give at least {factor**layers} points per side, fewer crop layers, or a "
            "smaller factor of fewer points in crops."
        )
    return None


@dataclass(frozen=True)
class Sam2Params:
    """Every parameter of sam2's ``SAM2AutomaticMaskGenerator``, with its defaults.

    ``points_per_batch=None`` adapts the batch to the free GPU memory (64 on the
    CPU, as sam2) and halves it after a CUDA out-of-memory error. The decoder
    sees the points in batches as sam2 makes them: with sam2's batch size (64
    on the CPU) the logits are sam2's to the last bit. See the generator's
    documentation for the meaning of every other parameter.
    """

    points_per_side: int | None = 32
    points_per_batch: int | None = None
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: tuple[np.ndarray, ...] | None = field(default=None, compare=False)
    min_mask_region_area: int = 0
    output_mode: Literal["binary_mask", "uncompressed_rle", "coco_rle"] = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self):
        if (self.points_per_side is None) == (self.point_grids is None):
            raise ValueError("Give exactly one of points_per_side and point_grids.")
        if self.output_mode not in ("binary_mask", "uncompressed_rle", "coco_rle"):
            raise ValueError(
                f"Unknown output_mode {self.output_mode!r}; use 'binary_mask', "
                "'uncompressed_rle' or 'coco_rle'."
            )
        if self.points_per_side is not None and (
            problem := crop_points_problem(
                self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor
            )
        ):
            raise ValueError(problem)

    def generator_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SAM2AutomaticMaskGenerator`` with the same settings."""
        kwargs = asdict(self)
        kwargs["point_grids"] = None if self.point_grids is None else list(self.point_grids)
        kwargs["points_per_batch"] = self.points_per_batch or 64
        return kwargs

    def grids(self) -> list[np.ndarray]:
        """The point grid of every crop layer, as the generator builds them."""
        from sam2.utils.amg import build_all_layer_point_grids

        if self.point_grids is not None:
            return [np.asarray(grid) for grid in self.point_grids]
        return build_all_layer_point_grids(
            self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor
        )

    def prompt_key(self) -> tuple:
        """What the candidates of one prompt point depend on, besides the point."""
        return (
            self.multimask_output,
            self.use_m2m,
            float(self.stability_score_offset),
            float(self.mask_threshold),
            int(self.min_mask_region_area),
        )

    def decoder_key(self) -> tuple:
        """What the decoder output depends on, for the candidate cache."""
        grids = tuple(
            hashlib.blake2b(np.ascontiguousarray(g).tobytes()).hexdigest() for g in self.grids()
        )
        return (grids, *self.prompt_key())


@dataclass(frozen=True)
class LabelParams:
    """How masks become a label image of cells.

    Parameters
    ----------
    min_area, max_area
        Masks with fewer / more pixels are dropped (``None``: no maximum).
    max_area_fraction
        Masks covering more than this fraction of the image (or tile) they came
        from are background and dropped.
    min_foreground_fraction
        With a foreground map, masks with a smaller fraction of their pixels in
        the foreground are background and dropped.
    foreground_threshold
        Foreground maps with fractional values (probabilities) are foreground above it.
    order
        Who wins where masks overlap: ``"area"`` gives the pixel to the smallest
        mask (cells stay whole inside larger masks), ``"score"`` to the mask with
        the highest predicted IoU (ties: stability score).
    split
        Split merged cells with :func:`napari_cytomask.postprocess.watershed.split_labels`.
    split_kwargs
        Keyword arguments of ``split_labels`` (``h``, ``min_distance``…).
    tile_size, tile_overlap
        Images larger than ``tile_size`` pixels along an axis are processed in
        overlapping tiles at native resolution.
    percentiles
        Grayscale and non-uint8 images are mapped from these intensity
        percentiles (of each position) to 0–255.
    """

    min_area: int = 0
    max_area: int | None = None
    max_area_fraction: float = 0.5
    min_foreground_fraction: float = 0.5
    foreground_threshold: float = 0.5
    order: Literal["area", "score"] = "area"
    split: bool = False
    split_kwargs: dict = field(default_factory=dict, compare=False)
    tile_size: int = 1024
    tile_overlap: int = 256
    percentiles: tuple[float, float] = PERCENTILES


@dataclass
class Sam2Result:
    """Labels of a (stack of) image(s) with one features row per object.

    Attributes
    ----------
    labels
        Label image, same leading shape as the input (ids unique over a stack).
    features
        Columns ``index`` (label id), ``predicted_iou``, ``stability_score``,
        ``area`` (painted pixels), ``mask_area`` (pixels of SAM's mask) and, for
        stacks, ``position``; ready for a napari Labels layer's ``features``.
    n_candidates
        Candidate masks the decoder produced.
    n_masks
        Masks left after filtering, before painting.
    """

    labels: np.ndarray
    features: dict[str, np.ndarray]
    n_candidates: int
    n_masks: int


# ---------------------------------------------------------------------------
# run-length encoding


def batch_rle_counts(masks: torch.Tensor) -> list[np.ndarray]:
    """:func:`~napari_cytomask.rle.rle_counts` of a batch of masks, on their device.

    The counts are sam2's ``mask_to_rle_pytorch`` counts. Vectorised over the
    masks, so thousands of noisy masks take milliseconds, and only the run
    boundaries travel from a GPU to the host, not the masks.
    """
    b, h, w = masks.shape
    if b == 0:
        return []
    flat = masks.permute(0, 2, 1).flatten(1)
    change = (flat[:, 1:] ^ flat[:, :-1]).nonzero()
    rows = change[:, 0].cpu().numpy()
    cols = change[:, 1].cpu().numpy() + 1
    first = flat[:, 0].cpu().numpy()
    bounds = np.searchsorted(rows, np.arange(b + 1))
    out = []
    for i in range(b):
        edges = np.concatenate(([0], cols[bounds[i] : bounds[i + 1]], [h * w]))
        counts = np.diff(edges)
        out.append(np.concatenate(([0], counts)) if first[i] else counts)
    return out


def _packbits(binary: torch.Tensor) -> torch.Tensor:
    """Row-major bits of binary masks packed into bytes on their device, as ``np.packbits``."""
    flat = binary.flatten(1)
    pad = -flat.shape[1] % 8
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=flat.device)
    return (flat.view(len(flat), -1, 8).to(torch.uint8) * weights).sum(-1, dtype=torch.uint8)


def compress_masks(binary: torch.Tensor) -> list[np.ndarray]:
    """Compress binary masks, each to whichever is smaller: run lengths or packed bits.

    Compact masks (cells) take a few hundred bytes as column-major run lengths
    (``int32``, see :func:`batch_rle_counts`); noisy ones never take more than
    one bit per pixel (``uint8``, row-major, packed on the masks' device so only
    the packed bytes travel to the host).
    """
    b, h, w = binary.shape
    if b == 0:
        return []
    flat = binary.permute(0, 2, 1).flatten(1)
    runs = (flat[:, 1:] ^ flat[:, :-1]).sum(1).cpu().numpy() + 2
    as_rle = runs * 4 < (h * w + 7) // 8
    out: list = [None] * b
    rle_idx = np.flatnonzero(as_rle)
    rle_masks = binary[torch.as_tensor(rle_idx)]
    for i, counts in zip(rle_idx, batch_rle_counts(rle_masks), strict=True):
        out[i] = counts.astype(np.int32)
    bit_idx = np.flatnonzero(~as_rle)
    if bit_idx.size:
        packed = _packbits(binary[torch.as_tensor(bit_idx, device=binary.device)]).cpu().numpy()
        for i, row in zip(bit_idx, packed, strict=True):
            out[i] = row.copy()  # a view would keep the whole batch's array alive
    return out


def _reach(first: np.ndarray, last: np.ndarray, n_in: int, n_out: int) -> tuple:
    """Output pixels that read inputs ``first..last`` in bilinear upsampling (no corner alignment).

    Output pixel ``y`` reads inputs ``floor(s)`` and ``floor(s) + 1`` at
    ``s = (y + 0.5) * n_in / n_out - 0.5``; two pixels of slack on each side
    absorb rounding, so the range never misses a pixel.
    """
    scale = n_out / n_in
    start = np.ceil((first - 0.5) * scale - 0.5).astype(np.int64) - 2
    stop = np.floor((last + 1.5) * scale - 0.5).astype(np.int64) + 3
    return np.clip(start, 0, n_out), np.clip(stop, 0, n_out)


def _windows(low: torch.Tensor, floor: float, out_hw: tuple[int, int]) -> np.ndarray:
    """Per mask, the ``(y0, y1, x0, x1)`` window outside which upsampled logits stay ``<= floor``.

    Bilinear upsampling mixes four neighbours with weights in [0, 1], so an
    output pixel can exceed ``floor`` only where a low-resolution neighbour
    does; the margin covers the rounding of that mix.
    """
    above = low > floor - 1e-4 * (1.0 + abs(floor))
    rows, cols = above.any(-1).cpu().numpy(), above.any(-2).cpu().numpy()
    h, w = rows.shape[1], cols.shape[1]
    y0, y1 = _reach(rows.argmax(1), h - 1 - rows[:, ::-1].argmax(1), h, out_hw[0])
    x0, x1 = _reach(cols.argmax(1), w - 1 - cols[:, ::-1].argmax(1), w, out_hw[1])
    out = np.stack([y0, y1, x0, x1], 1)
    out[~rows.any(1)] = 0
    return out


def _window_stats(frame: np.ndarray, window, threshold: float, offset: float):
    """Stability counts, box, area and compressed mask of one mask, reading only its window.

    Returns what sam2 computes over the whole frame: the pixel counts above
    ``threshold + offset`` and above ``threshold - offset`` (the stability
    score's intersection and union), the xyxy box and area of the mask above
    ``threshold``, and the mask compressed as :func:`compress_masks` does.
    """
    height, width = frame.shape
    y0, y1, x0, x1 = window
    part = frame[y0:y1, x0:x1]
    hi = np.count_nonzero(part > threshold + offset)
    lo = np.count_nonzero(part > threshold - offset)
    binary = part > threshold
    rows = np.flatnonzero(binary.any(1))
    if rows.size == 0:
        return hi, lo, (0, 0, 0, 0), 0, np.array([height * width], np.int32)
    cols = np.flatnonzero(binary.any(0))
    (r0, r1), (c0, c1) = rows[[0, -1]], cols[[0, -1]]
    box = (x0 + c0, y0 + r0, x0 + c1, y0 + r1)
    binary = binary[r0 : r1 + 1, c0 : c1 + 1]
    area = np.count_nonzero(binary)
    # Column-major runs: at most the vertical changes plus a start and an end per column.
    runs = np.count_nonzero(binary[1:] != binary[:-1]) + 2 * binary.shape[1] + 2
    if runs * 4 < (height * width + 7) // 8:
        counts = rle_counts(binary, (y0 + r0, x0 + c0), (height, width))
        return hi, lo, box, area, counts.astype(np.int32)
    full = np.zeros((height, width), bool)
    full[y0 + r0 : y0 + r1 + 1, x0 + c0 : x0 + c1 + 1] = binary
    return hi, lo, box, area, np.packbits(full)


def _fg_indices(item: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Column-major flat indices of the set pixels of a compressed mask."""
    if item.dtype == np.uint8:
        return np.flatnonzero(_decode(item, hw).T)
    counts = item.astype(np.int64)
    ends = np.cumsum(counts)
    starts = (ends - counts)[1::2]
    lengths = counts[1::2]
    if lengths.size == 0:
        return np.zeros(0, np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))


# ---------------------------------------------------------------------------
# caches


class _LRU:
    """A dict that forgets the least recently used entries beyond ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._sizes: dict = {}

    def get(self, key):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key, value, nbytes: int) -> None:
        self._items[key] = value
        self._sizes[key] = nbytes
        self._items.move_to_end(key)
        while sum(self._sizes.values()) > self.max_bytes and len(self._items) > 1:
            old, _ = self._items.popitem(last=False)
            del self._sizes[old]

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Candidates:
    """Every candidate mask of one crop, in the generator's order, before any filter."""

    # (N,) in the decoder's dtype (bf16 under autocast), which sam2's threshold compares in
    iou_preds: torch.Tensor
    stability: torch.Tensor  # float32 (N,)
    boxes: torch.Tensor  # int64 (N, 4), xyxy in the crop frame
    near_edge: torch.Tensor  # bool (N,): box touches an inner crop edge
    points: torch.Tensor  # float32 (N, 2), crop frame
    masks: list[np.ndarray]  # compressed (compress_masks), crop frame
    areas: np.ndarray  # int64 (N,)

    @property
    def nbytes(self) -> int:
        return _masks_nbytes(self.masks)


class _PointCandidates(NamedTuple):
    """The candidates of one prompt point, and the size of the decoder batch that made them."""

    batch: int
    iou_preds: torch.Tensor
    stability: torch.Tensor
    boxes: torch.Tensor
    masks: list[np.ndarray]
    areas: np.ndarray


def _store_nbytes(store: dict) -> int:
    """Bytes of the compressed masks of a crop's decoded points."""
    return sum(_masks_nbytes(r.masks) for r in store.values())


def _masks_nbytes(masks: list[np.ndarray]) -> int:
    """Memory of compressed masks with their per-candidate bookkeeping."""
    return sum(m.nbytes for m in masks) + 128 * len(masks)


@dataclass
class _Masks:
    """Final masks of one image (or tile): the generator's output, compressed."""

    masks: list[np.ndarray]  # compressed, in the frame of their crop box
    boxes: np.ndarray  # float32 (N, 4) xyxy, image frame
    iou_preds: np.ndarray
    stability: np.ndarray
    points: np.ndarray
    crop_boxes: np.ndarray
    areas: np.ndarray
    shape: tuple[int, int]

    @staticmethod
    def empty(shape) -> _Masks:
        z = np.zeros((0, 4), np.float32)
        e = np.zeros(0, np.float32)
        return _Masks([], z, e, e, np.zeros((0, 2), np.float32), z, np.zeros(0, np.int64), shape)


def _image_hash(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.blake2b(memoryview(array).cast("B"), digest_size=16)
    digest.update(f"{array.shape}{array.dtype}".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# images


def foreground_mismatch(foreground_shape: tuple, image_shape: tuple) -> ValueError:
    """The error for a foreground map that is not a map of the image (its shape differs)."""
    return ValueError(
        f"The foreground map has shape {tuple(foreground_shape)} but the image "
        f"{tuple(image_shape)}; pick a foreground layer of the same image."
    )


def to_uint8_rgb(image: np.ndarray, percentiles=PERCENTILES) -> np.ndarray:
    """An image as SAM2 expects it: ``(H, W, 3)`` uint8.

    uint8 colour images are used as they are; other images (grayscale of any type,
    uint16 or float colour) are mapped linearly from the ``percentiles`` of their
    intensities (default 1st and 99th, as Cellpose) to 0–255 and clipped, so a few
    bright pixels do not darken the whole image, and a grayscale image gives SAM2 the
    same picture whether it was saved with 8 or 16 bits (an 8-bit phase image that used
    values 17 to 44 only was given to SAM2 nearly black and flat), then repeated into
    three channels.

    Parameters
    ----------
    image
        ``(H, W)`` grayscale or ``(H, W, 3|4)`` colour (alpha is dropped).
    percentiles
        Low and high percentile.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3]
    elif image.ndim != 2:
        raise ValueError(
            f"Expected a 2D grayscale or an (H, W, 3) colour image, got shape {image.shape}."
        )
    if image.dtype != np.uint8 or image.ndim == 2:
        # As the U-Net's input: pixels that are not finite (no data at a stitched scan's
        # edges, saturated floats) are left out of the percentiles and drawn black, and a
        # colour image's channels share one range.
        # One 2D plane for the sample: a colour image's planes stacked, so that a sampling
        # stride never falls on one colour only.
        planes = image if image.ndim == 2 else np.moveaxis(image, -1, 0).reshape(-1, image.shape[1])
        low, high = percentile_range(planes, *percentiles)
        image = np.clip(normalise(image, low, high) * 255, 0, 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image)


# ---------------------------------------------------------------------------
# decoder batches and candidate statistics


def _batch_sizes(n: int, batch: int) -> np.ndarray:
    """Size of the decoder batch that each of ``n`` points falls in, in sam2's batching."""
    full = n // batch * batch
    return np.where(np.arange(n) < full, batch, n - full)


def _point_batches(needed: np.ndarray, batch: int) -> list[np.ndarray]:
    """Indices of the points to decode, grouped into decoder batches.

    Needed points of sam2's full batches are decoded ``batch`` at a time (the
    last group padded by repeating its last point, so every group has sam2's
    batch size); a needed point of sam2's shorter last batch is decoded with
    that whole batch, as sam2 does. On a first run these are sam2's batches.
    """
    n = len(needed)
    full = n // batch * batch
    idx = np.flatnonzero(needed[:full])
    groups = [
        np.pad(idx[s : s + batch], (0, max(0, s + batch - len(idx))), mode="edge")
        for s in range(0, len(idx), batch)
    ]
    if needed[full:].any():
        groups.append(np.arange(full, n))
    return groups


def _predict(p, points, labels, multimask_output: bool, mask_input=None):
    """``SAM2ImagePredictor._predict`` for point prompts, returning logits.

    On a GPU sam2's own call runs unchanged and returns full-resolution mask
    logits. On a CPU the mask decoder runs as :func:`.sam2_decoder.decode`
    (the same arithmetic, image-sized steps a few prompts at a time) and the
    low-resolution logits are returned as they are, for
    :func:`_candidate_stats` to upsample one point at a time.
    """
    if p.device.type != "cpu":
        return p._predict(
            points, labels, mask_input=mask_input, multimask_output=multimask_output,
            return_logits=True,
        )  # fmt: skip
    model = p.model
    sparse, dense = model.sam_prompt_encoder(points=(points, labels), boxes=None, masks=mask_input)
    low_res, iou_preds = decode(
        model.sam_mask_decoder,
        p._features["image_embed"][-1].unsqueeze(0),
        model.sam_prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        multimask_output=multimask_output,
        high_res_features=[f[-1].unsqueeze(0) for f in p._features["high_res_feats"]],
        chunk=CPU_CHUNK,
    )
    return low_res, iou_preds, torch.clamp(low_res, -32.0, 32.0)


def _frame_stats(masks: torch.Tensor, threshold: float, offset: float):
    """Stability scores, boxes, areas and compressed masks over whole frames, on the masks' device.

    Vectorised over the batch with sam2's own functions: on a GPU only the
    counts and the packed masks travel to the host.
    """
    from sam2.utils.amg import batched_mask_to_box, calculate_stability_score

    stability = calculate_stability_score(masks, threshold, offset)
    binary = masks > threshold
    areas = binary.sum((1, 2)).cpu().numpy()
    return stability, batched_mask_to_box(binary), areas, compress_masks(binary)


def _candidate_stats(
    masks: torch.Tensor, low_res: torch.Tensor, params: Sam2Params, out_hw, upsample
):
    """Stability scores, boxes, areas and compressed masks of a batch of candidates.

    ``masks`` are ``(points, masks per point, h, w)``: on a GPU sam2's
    upsampled logits, processed as whole frames at once (:func:`_frame_stats`);
    on a CPU the low-resolution logits. There ``upsample`` (sam2's
    ``postprocess_masks`` to ``out_hw``) brings one point's masks at a time to
    full resolution, so that each frame is still in the cache when its
    statistics are read, and each frame is read only inside the window that
    its low-resolution logits (``low_res``, one per candidate) can reach, which
    is exact (see :func:`_windows`). One point's masks are upsampled together,
    as one slice of sam2's batch: PyTorch picks its interpolation routine by
    the number of channels (and threads), and the routines differ in the last
    bits.
    """
    threshold, offset = params.mask_threshold, params.stability_score_offset
    if masks.device.type != "cpu":
        return _frame_stats(masks.flatten(0, 1), threshold, offset)
    height, width = out_hw
    floor = threshold - abs(offset)
    if params.min_mask_region_area > 0 or abs(floor) >= 31.0:
        # Hole filling changes the logits after the low-resolution ones are returned, and
        # those are clamped to ±32: only whole frames are safe then.
        windows = np.tile([0, height, 0, width], (len(low_res), 1))
    else:
        windows = _windows(low_res, floor, (height, width))
    frames = (frame for b in range(len(masks)) for frame in upsample(masks[b : b + 1])[0])
    stats = [
        _window_stats(frame.numpy(), window, threshold, offset)
        for frame, window in zip(frames, windows, strict=True)
    ]
    above_plus, above_minus, boxes, areas, compressed = (
        zip(*stats, strict=True) if stats else ((),) * 5
    )
    # sam2 divides int32 counts: the same float32 quotient, 0/0 included (NaN).
    stability = torch.as_tensor(np.array(above_plus, np.int32)) / torch.as_tensor(
        np.array(above_minus, np.int32)
    )
    boxes = torch.as_tensor(np.array(boxes, np.int64).reshape(-1, 4))
    return stability, boxes, np.array(areas, np.int64), list(compressed)


# ---------------------------------------------------------------------------
# the engine


class Sam2Engine:
    """SAM2 automatic masks with cached encoder features and cached candidates.

    Parameters
    ----------
    model
        A SAM2 model (``SAM2Base``), e.g. from
        :meth:`napari_cytomask.models.sam2_models.Sam2ModelCache.get`.
    model_key
        Names the model in cache keys (default: the object's identity).
    cache_bytes
        Memory for cached encoder features and for cached candidates (each).
    autocast
        Run in bf16/fp16 on GPUs that support it (:func:`autocast_dtype`).
    """

    def __init__(
        self,
        model,
        *,
        model_key: str | None = None,
        cache_bytes: int = 2 << 30,
        autocast: bool = True,
    ):
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.model = model
        self.model_key = model_key or f"{type(model).__name__}@{id(model):x}"
        self.predictor = SAM2ImagePredictor(model)
        size = model.image_size
        # sam2 hard-codes the feature sizes of a 1024 input; derive them from the model.
        self.predictor._bb_feat_sizes = [
            (size // 4, size // 4),
            (size // 8, size // 8),
            (size // 16, size // 16),
        ]
        self.device = model.device
        self.dtype = autocast_dtype(self.device) if autocast else None
        self.features = _LRU(cache_bytes)
        self.candidates = _LRU(cache_bytes)
        # The candidates of every decoded point, so a new grid decodes only its new points.
        self.prompts = _LRU(cache_bytes)
        self._normalized = _LRU(512 << 20)
        #: The batch that fitted in memory, by the one asked for (None: chosen from the free
        #: GPU memory), once the decoder ran out of memory: later crops and runs start there.
        self.fitted_batch: dict[int | None, int] = {}
        self._auto_batches: dict[tuple, int] = {}  # (crop size, multimask) -> points per batch
        # The predictor holds one image's features at a time; a superseded run may still
        # be finishing a batch in another thread while the newest one starts.
        self._lock = threading.Lock()
        #: How often the encoder and the decoder ran (per crop), and how many prompt points
        #: the decoder saw, e.g. to show what a change cost.
        self.runs = {"encoder": 0, "decoder": 0, "points": 0}

    # -- public API ---------------------------------------------------------

    def generate_iter(
        self, image: np.ndarray, params: Sam2Params | None = None
    ) -> Generator[Progress, None, list[dict]]:
        """Masks of one ``(H, W, 3)`` uint8 image as ``SAM2AutomaticMaskGenerator.generate``.

        Yields
        ------
        tuple
            ``("encoder", points, all points)`` and ``("decoder", points, all points)``
            progress (:data:`Progress`).

        Returns
        -------
        list of dict
            Records with ``segmentation``, ``area``, ``bbox``, ``predicted_iou``,
            ``point_coords``, ``stability_score`` and ``crop_box``, in the stock
            generator's order and format.
        """
        params = params or Sam2Params()
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"Expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}.")
        # Keyed as the single tile of segment_iter, so both share cached features.
        views = [(f"{_image_hash(image)}{(0, 0, *image.shape[:2])}", image)]
        (masks,), _ = yield from self._masks_of_views(views, params)
        return _records(masks, params.output_mode)

    def generate(self, image: np.ndarray, params: Sam2Params | None = None) -> list[dict]:
        """:meth:`generate_iter` without progress."""
        return drain(self.generate_iter(image, params))

    def segment_iter(
        self,
        image: np.ndarray,
        params: Sam2Params | None = None,
        label_params: LabelParams | None = None,
        *,
        rgb: bool | None = None,
        foreground: np.ndarray | None = None,
        spacing: tuple[float, float] | None = None,
    ) -> Generator[Progress, None, Sam2Result]:
        """Label image of cells from an image, a large image or a stack of positions.

        Parameters
        ----------
        image
            ``(H, W)``, ``(H, W, 3)`` or a stack ``(..., H, W[, 3])``; every
            leading axis is a position (tile of a scan) segmented on its own.
        params
            SAM2 generator parameters.
        label_params
            Tiling, background removal, overlap resolution and splitting.
        rgb
            Whether the last axis holds colour channels (default: when it has
            length 3 or 4 and the image is uint8).
        foreground
            Optional foreground map (booleans or probabilities) of the same
            shape as the image without colour axis, e.g. from the U-Net; masks
            mostly outside it are dropped.
        spacing
            The (Y, X) size of the image's pixels, in any unit, when known: the split of
            merged cells (``label_params.split``) measures distances over their shape
            (see :func:`~napari_cytomask.postprocess.watershed.split_labels`).

        Yields
        ------
        tuple
            ``(stage, i, n)`` progress events.

        Returns
        -------
        Sam2Result
        """
        params = params or Sam2Params()
        lp = label_params or LabelParams()
        image = np.asarray(image)
        if rgb is None:
            rgb = image.ndim >= 3 and image.shape[-1] in (3, 4) and image.dtype == np.uint8
        spatial = image.shape[:-1] if rgb else image.shape
        if len(spatial) < 2 or min(spatial[-2:]) == 0:
            raise ValueError(f"Cannot segment an image of shape {image.shape}; pick a 2D image.")
        lead = spatial[:-2]
        height, width = spatial[-2:]
        positions = image.reshape((-1, *image.shape[len(lead) :]))
        fg_stack = None
        if foreground is not None:
            foreground = np.asarray(foreground)
            if foreground.shape != spatial:
                raise foreground_mismatch(foreground.shape, spatial)
            fg_stack = foreground.reshape((-1, height, width))
        tiles = tile_boxes((height, width), lp.tile_size, lp.tile_overlap)
        views, owners = [], []
        for p, plane in enumerate(positions):
            key, norm = self._normalize(plane, lp.percentiles)
            for window, core in tiles:
                y0, x0, y1, x1 = window
                views.append((f"{key}{window}", norm[y0:y1, x0:x1]))
                owners.append((p, window, core))
        per_view, n_candidates = yield from self._masks_of_views(views, params)
        labels = np.zeros((len(positions), height, width), np.uint32)
        columns: dict[str, list] = {
            k: []
            for k in ("index", "position", "predicted_iou", "stability_score", "area", "mask_area")
        }
        next_id, n_masks = 1, 0
        for p in range(len(positions)):
            chosen = [
                (masks, owner)
                for masks, owner in zip(per_view, owners, strict=True)
                if owner[0] == p
            ]
            merged = _merge_tiles(chosen, (height, width), params.box_nms_thresh)
            fg = None
            if fg_stack is not None:
                fg = _binary_foreground(fg_stack[p], lp.foreground_threshold)
            merged = _drop_background(merged, lp, fg)
            n_masks += len(merged["masks"])
            plane, feats = _paint(merged, (height, width), lp.order)
            if lp.split and plane.any():
                plane, feats = _split(plane, feats, lp.split_kwargs, spacing)
            plane, feats = _drop_small_pieces(plane, feats, lp.min_area)
            ids = feats["index"]
            if len(ids):
                plane[plane > 0] += next_id - 1
                feats["index"] = ids + next_id - 1
                next_id += len(ids)
            labels[p] = plane
            for k in columns:
                columns[k].append(np.full(len(ids), p) if k == "position" else feats[k])
        features = {k: np.concatenate(v) for k, v in columns.items()}
        if not lead:
            del features["position"]
        labels = labels.reshape(spatial).astype(min_label_dtype(max(next_id - 1, 1)))
        return Sam2Result(labels, features, n_candidates, n_masks)

    def segment(self, image, params=None, label_params=None, **kwargs) -> Sam2Result:
        """:meth:`segment_iter` without progress."""
        return drain(self.segment_iter(image, params, label_params, **kwargs))

    def clear(self) -> None:
        """Forget cached features and candidates."""
        self.features.clear()
        self.candidates.clear()
        self.prompts.clear()
        self._normalized.clear()

    # -- the three stages ---------------------------------------------------

    def _normalize(self, plane: np.ndarray, percentiles) -> tuple[str, np.ndarray]:
        key = (_image_hash(plane), tuple(percentiles))
        hit = self._normalized.get(key)
        if hit is None:
            norm = to_uint8_rgb(plane, percentiles)
            hit = (_image_hash(norm), norm)
            self._normalized.put(key, hit, norm.nbytes)
        return hit

    def _masks_of_views(self, views, params: Sam2Params):
        """Stock-identical masks of every view (image or tile): encoder, decoder, filters."""
        from sam2.utils.amg import generate_crop_boxes

        grids = params.grids()
        jobs = []
        for v, (key, img) in enumerate(views):
            boxes, layers = generate_crop_boxes(
                img.shape[:2], params.crop_n_layers, params.crop_overlap_ratio
            )
            # The crops of deep layers on an image a few pixels across hold no pixel (sam2
            # failed on them, "Input and output sizes should be greater than 0"); the
            # image's other crops cover every pixel.
            jobs += [
                (v, key, img, box, layer)
                for box, layer in zip(boxes, layers, strict=True)
                if box[2] > box[0] and box[3] > box[1]
            ]
        n_points = sum(len(grids[layer]) for *_, layer in jobs)
        done = 0  # points of the crops before this one
        crop_candidates: list[list] = [[] for _ in views]
        n_candidates = 0
        for v, key, img, box, layer in jobs:
            dkey = (self.model_key, key, tuple(box), params.decoder_key())
            cands = self.candidates.get(dkey)
            if cands is None:
                feats = yield from self._encode(key, img, box, done, n_points)
                pkey = (self.model_key, key, tuple(box), params.prompt_key())
                cands = yield from self._decode(
                    pkey, feats, img.shape[:2], box, grids[layer], params, (done, n_points)
                )
                self.candidates.put(dkey, cands, cands.nbytes)
                yield ("decoder", done + len(grids[layer]), n_points)
            # Candidates kept from before (a filter moved) report nothing: "Decoding masks"
            # flashed at every slider move that decoded none.
            done += len(grids[layer])
            n_candidates += len(cands.masks)
            crop_candidates[v].append((box, cands))
        out = [
            _filter(crops, img.shape[:2], params)
            for crops, (_, img) in zip(crop_candidates, views, strict=True)
        ]
        return out, n_candidates

    @contextlib.contextmanager
    def _on_device(self):
        """Autocast as the device takes it, with the model's GPU the current one: sam2's own
        CUDA kernels (its connected components) run on the current GPU, which is chosen per
        thread, and a worker's thread that never chose one is on the first."""
        if self.device.type == "cuda":
            current = torch.cuda.device(self.device)
        else:
            current = contextlib.nullcontext()
        if self.dtype is None:
            precision = torch.autocast(self.device.type, enabled=False)
        else:
            precision = torch.autocast(self.device.type, dtype=self.dtype)
        with current, precision:
            yield

    def _encode(self, key: str, img: np.ndarray, box, done: int, total: int):
        fkey = (self.model_key, key, tuple(box))
        feats = self.features.get(fkey)
        if feats is None:
            yield ("encoder", done, total)
            x0, y0, x1, y1 = box
            with self._lock, torch.no_grad(), self._on_device():
                self.predictor.set_image(img[y0:y1, x0:x1, :])
                feats = (self.predictor._features, self.predictor._orig_hw)
                self.predictor.reset_predictor()
            self.runs["encoder"] += 1
            nbytes = sum(
                t.numel() * t.element_size()
                for t in [feats[0]["image_embed"], *feats[0]["high_res_feats"]]
            )
            self.features.put(fkey, feats, nbytes)
        return feats

    def _auto_batch(self, crop_hw, multimask: bool) -> int:
        if self.device.type != "cuda":
            return 64
        # Chosen once per crop size: a point decoded before counts only when its batch had
        # the size used now, and free memory shrinks as the feature cache grows.
        key = (tuple(crop_hw), multimask)
        if key not in self._auto_batches:
            dev = self.device
            free, _ = torch.cuda.mem_get_info(dev)
            # What PyTorch holds in reserve is free to it too.
            free += torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
            # Upscaled logits, their thresholded copies and the stability temporaries per point.
            per_point = (3 if multimask else 1) * crop_hw[0] * crop_hw[1] * 4 * 4
            n = int(free * 0.5 // per_point)
            self._auto_batches[key] = int(2 ** max(3, min(10, int(math.log2(max(n, 1))))))
        return self._auto_batches[key]

    def _decode(self, pkey, feats, im_hw, crop_box, grid: np.ndarray, params: Sam2Params, count):
        """Every candidate of one crop, as sam2's ``_process_crop`` makes them, unfiltered.

        ``count`` is ``(points before this crop, points of all crops)``: each decoder
        batch reports the points of this crop known so far on that scale.

        The decoder sees the points in sam2's batches; a point decoded before
        (an earlier grid: a grid of ``3k`` points per side holds every point of
        the grid of ``k``) is reused when its batch had the size sam2 would give
        it now, and new points in full batches are decoded together.
        """
        from sam2.utils.amg import is_box_near_crop_edge

        x0, y0, x1, y1 = crop_box
        crop_hw = (y1 - y0, x1 - x0)
        orig_h, orig_w = im_hw
        points = torch.as_tensor(grid * np.array(crop_hw)[None, ::-1], dtype=torch.float32)
        keys = [row.tobytes() for row in points.numpy()]
        with self._lock:  # another run (a slider moved) may share the store
            store = self.prompts.get(pkey)
            if store is None:
                # Kept from the start: a run stopped (cancelled, or replaced by one for a
                # slider moved meanwhile) leaves its decoded points to the next one.
                store = {}
                self.prompts.put(pkey, store, 0)
        asked = params.points_per_batch
        batch = self.fitted_batch.get(asked) or asked
        batch = batch or self._auto_batch(crop_hw, params.multimask_output)
        decoded = False
        shown = 0  # points reported as known; a smaller batch after running out of memory
        # makes points of the larger one unknown again, but the bar does not go back
        while True:
            sizes = _batch_sizes(len(keys), batch)
            # A point is known when sam2 would decode it in a batch of the size that made it.
            known = [k in store and store[k].batch == s for k, s in zip(keys, sizes, strict=True)]
            needed = ~np.array(known, bool)
            groups = _point_batches(needed, batch)
            if not groups:
                break
            known_now = len(keys) - int(needed.sum())
            shown = max(shown, known_now)
            yield ("decoder", count[0] + shown, count[1])  # the encoder is done
            try:
                for group in groups:
                    with self._lock, torch.no_grad(), self._on_device():
                        rows = self._decode_batch(feats, points[group], crop_box, params, batch)
                        per_point = len(rows[0]) // len(group)
                        for j, k in enumerate(group.tolist()):
                            part = slice(j * per_point, (j + 1) * per_point)
                            store[keys[k]] = _PointCandidates(len(group), *(r[part] for r in rows))
                        # Counted as it grows: a run stopped here leaves it in the cache.
                        self.prompts.put(pkey, store, _store_nbytes(store))
                    self.runs["points"] += len(np.unique(group))
                    decoded = True
                    known_now += int(needed[np.unique(group)].sum())
                    shown = max(shown, known_now)
                    yield ("decoder", count[0] + shown, count[1])
            except RuntimeError as err:  # torch's out-of-memory errors are RuntimeErrors
                if not out_of_memory(err) or len(group) == 1 or batch == 1:
                    raise
                # Halve the planned batch (not the failed one, which may be a short last
                # batch) and plan again.
                batch //= 2
                self.fitted_batch[asked] = batch
            else:
                continue
            # Outside the handler, whose traceback held the failed batch's tensors.
            torch.cuda.empty_cache()
        self.runs["decoder"] += decoded
        rows = [store[k] for k in keys]
        if rows:
            iou = torch.cat([r.iou_preds for r in rows])
            stab = torch.cat([r.stability for r in rows])
            boxes = torch.cat([r.boxes for r in rows])
            areas = np.concatenate([r.areas for r in rows])
            pts = points.repeat_interleave(len(iou) // len(points), dim=0)
        else:
            iou, stab = torch.zeros(0), torch.zeros(0)
            pts, boxes = torch.zeros(0, 2), torch.zeros(0, 4, dtype=torch.int64)
            areas = np.zeros(0, np.int64)
        masks = [m for r in rows for m in r.masks]
        near = is_box_near_crop_edge(boxes, list(crop_box), [0, 0, orig_w, orig_h])
        return _Candidates(iou, stab, boxes, near, pts, masks, areas)

    def _decode_batch(self, feats, points: torch.Tensor, crop_box, params: Sam2Params, batch: int):
        """Decoder, optional mask-to-mask refinement, stability, boxes and masks of a batch.

        Returns predicted IoUs, stability scores, boxes, compressed masks and
        areas of the batch's candidates, point by point.
        """
        from sam2.utils.amg import batch_iterator

        x0, y0, x1, y1 = crop_box
        im_size = (y1 - y0, x1 - x0)

        p = self.predictor
        p._features, p._orig_hw = feats
        p._is_image_set, p._is_batch = True, False
        p._transforms.max_hole_area = params.min_mask_region_area
        p._transforms.max_sprinkle_area = params.min_mask_region_area
        pts = points.to(p.device)
        in_points = p._transforms.transform_coords(pts, normalize=True, orig_hw=im_size)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        # Per point: its masks (3 with multimask output) and their scores.
        masks, iou_preds, low_res = _predict(
            p, in_points[:, None, :], in_labels[:, None], params.multimask_output
        )
        if params.use_m2m:
            low_res = low_res.flatten(0, 1)
            pts = pts.repeat_interleave(len(low_res) // len(pts), dim=0)
            in_points = p._transforms.transform_coords(pts, normalize=True, orig_hw=im_size)
            labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
            refined = [
                _predict(p, cur_points[:, None, :], cur_labels[:, None], False, cur_low[:, None, :])
                for cur_points, cur_labels, cur_low in batch_iterator(
                    batch, in_points, labels, low_res
                )
            ]
            # One refined mask per candidate.
            masks, iou_preds, low_res = (torch.cat([r[k] for r in refined]) for k in range(3))
        hw = p._orig_hw[-1]
        stability, boxes, areas, compressed = _candidate_stats(
            masks,
            low_res.flatten(0, 1),
            params,
            hw,
            lambda m: p._transforms.postprocess_masks(m, hw),
        )
        p.reset_predictor()
        return (
            iou_preds.flatten().cpu(),
            stability.float().cpu(),
            boxes.cpu().to(torch.int64),
            compressed,
            areas,
        )


# ---------------------------------------------------------------------------
# post-filters, in the stock generator's order


def _filter(crops: Sequence[tuple[list, _Candidates]], im_hw, params: Sam2Params) -> _Masks:
    from sam2.utils.amg import uncrop_boxes_xyxy, uncrop_points

    kept_boxes, kept = [], []
    for box, c in crops:
        keep = ~c.near_edge
        if params.pred_iou_thresh > 0.0:
            keep &= c.iou_preds > params.pred_iou_thresh
        if params.stability_score_thresh > 0.0:
            keep &= c.stability >= params.stability_score_thresh
        idx = keep.nonzero().flatten()
        nms = batched_nms(
            c.boxes[idx].float(),
            c.iou_preds[idx].float(),
            torch.zeros(len(idx)),
            iou_threshold=params.box_nms_thresh,
        )
        idx = idx[nms]
        kept.append((box, c, idx))
        kept_boxes.append(uncrop_boxes_xyxy(c.boxes[idx], box))
    boxes = torch.cat(kept_boxes) if kept_boxes else torch.zeros(0, 4)
    crop_boxes = torch.tensor(
        [box for box, _, idx in kept for _ in range(len(idx))], dtype=torch.int64
    ).reshape(-1, 4)
    order = torch.arange(len(boxes))
    if len(crops) > 1:
        # Prefer masks from smaller crops, as sam2 does.
        scores = 1 / box_area(crop_boxes)
        order = batched_nms(
            boxes.float(), scores, torch.zeros(len(boxes)), iou_threshold=params.crop_nms_thresh
        )
    items, ious, stabs, points, areas = [], [], [], [], []
    for box, c, idx in kept:
        items += [c.masks[j] for j in idx.tolist()]
        ious.append(c.iou_preds[idx])
        stabs.append(c.stability[idx])
        points.append(uncrop_points(c.points[idx], box))
        areas.append(c.areas[idx.numpy()])
    if not items:
        return _Masks.empty(im_hw)
    sel = order.numpy()
    return _Masks(
        masks=[items[j] for j in sel],
        boxes=boxes[order].float().numpy(),
        iou_preds=torch.cat(ious)[order].float().numpy(),
        stability=torch.cat(stabs)[order].float().numpy(),
        points=torch.cat(points)[order].float().numpy(),
        crop_boxes=crop_boxes[order].float().numpy(),
        areas=np.concatenate(areas)[sel],
        shape=tuple(im_hw),
    )


def _records(masks: _Masks, output_mode: str) -> list[dict]:
    from sam2.utils.amg import box_xyxy_to_xywh

    out = []
    h, w = masks.shape
    for i, item in enumerate(masks.masks):
        x0, y0, x1, y1 = masks.crop_boxes[i].astype(int)
        crop_hw = (y1 - y0, x1 - x0)
        if output_mode == "binary_mask":
            seg = np.zeros((h, w), bool)
            seg[y0:y1, x0:x1] = _decode(item, crop_hw)
        else:
            if item.dtype == np.int32 and crop_hw == (h, w):
                counts = item  # already the run lengths of the whole image
            else:
                counts = rle_counts(_decode(item, crop_hw), (y0, x0), (h, w))
            compressed = output_mode == "coco_rle"  # the string sam2 gets from pycocotools
            seg = {"size": [h, w], "counts": rle_string(counts) if compressed else counts.tolist()}
        out.append(
            {
                "segmentation": seg,
                "area": int(masks.areas[i]),
                "bbox": box_xyxy_to_xywh(masks.boxes[i]).tolist(),
                "predicted_iou": masks.iou_preds[i].item(),
                "point_coords": [masks.points[i].tolist()],
                "stability_score": masks.stability[i].item(),
                "crop_box": box_xyxy_to_xywh(masks.crop_boxes[i]).tolist(),
            }
        )
    return out


def _decode(item: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Binary mask of shape ``hw`` from a compressed mask."""
    if item.dtype == np.uint8:
        return np.unpackbits(item, count=hw[0] * hw[1]).astype(bool).reshape(hw)
    return rle_to_mask(item, hw)


# ---------------------------------------------------------------------------
# from masks to labels


def _merge_tiles(tiles, shape, nms_thresh: float) -> dict:
    """Masks of the tiles of one image without duplicates at tile borders.

    A tile keeps a mask when the mask's box centre lies in the tile's core;
    masks cut by an inner tile edge are dropped unless the tile owns them (an
    object larger than the overlap is then kept from the tile that holds its
    centre). NMS over the boxes across tiles removes the duplicates left when
    two tiles see the same cell with slightly different boxes.
    """
    cols = {
        k: [] for k in ("masks", "offsets", "crop_hw", "boxes", "iou", "stab", "area", "view_area")
    }
    for masks, (_, window, core) in tiles:
        if not masks.masks:
            continue
        y0, x0, _, _ = window
        cy0, cx0, cy1, cx1 = core
        b = masks.boxes
        centre_x, centre_y = (b[:, 0] + b[:, 2]) / 2 + x0, (b[:, 1] + b[:, 3]) / 2 + y0
        own = (centre_x >= cx0) & (centre_x < cx1) & (centre_y >= cy0) & (centre_y < cy1)
        for j in np.flatnonzero(own):
            bx0, by0, bx1, by1 = masks.crop_boxes[j].astype(int)
            cols["masks"].append(masks.masks[j])
            cols["offsets"].append((y0 + by0, x0 + bx0))
            cols["crop_hw"].append((by1 - by0, bx1 - bx0))
            cols["boxes"].append(b[j] + np.array([x0, y0, x0, y0], np.float32))
            cols["iou"].append(masks.iou_preds[j])
            cols["stab"].append(masks.stability[j])
            cols["area"].append(masks.areas[j])
            cols["view_area"].append(masks.shape[0] * masks.shape[1])
    if len(tiles) > 1 and cols["masks"]:
        keep = batched_nms(
            torch.as_tensor(np.array(cols["boxes"])),
            torch.as_tensor(np.array(cols["iou"], np.float32)),
            torch.zeros(len(cols["masks"])),
            iou_threshold=nms_thresh,
        )
        keep = np.sort(keep.numpy())
        cols = {k: [v[j] for j in keep] for k, v in cols.items()}
    cols["shape"] = tuple(shape)
    return cols


def _global_indices(merged: dict, j: int) -> np.ndarray:
    """Column-major indices in the full image of the pixels of mask ``j``."""
    h_c = merged["crop_hw"][j][0]
    height = merged["shape"][0]
    k = _fg_indices(merged["masks"][j], merged["crop_hw"][j])
    y0, x0 = merged["offsets"][j]
    if h_c == height and (y0, x0) == (0, 0):
        return k
    return k + (k // h_c) * (height - h_c) + x0 * height + y0


def _binary_foreground(fg: np.ndarray, threshold: float) -> np.ndarray:
    fg = np.asarray(fg)
    return fg if fg.dtype == bool else fg > threshold


def _drop_background(merged: dict, lp: LabelParams, fg: np.ndarray | None) -> dict:
    n = len(merged["masks"])
    keep = []
    fg_f = None if fg is None else fg.T.ravel()
    for j in range(n):
        area = merged["area"][j]
        if area < lp.min_area or (lp.max_area is not None and area > lp.max_area):
            continue
        if area > lp.max_area_fraction * merged["view_area"][j]:
            continue
        if fg_f is not None and area > 0:
            idx = _global_indices(merged, j)
            if fg_f[idx].mean() < lp.min_foreground_fraction:
                continue
        keep.append(j)
    return {k: (v if k == "shape" else [v[j] for j in keep]) for k, v in merged.items()}


def _paint(merged: dict, shape, order: str) -> tuple[np.ndarray, dict]:
    """Label image of the masks; where they overlap, ``order`` decides who wins."""
    height, width = shape
    n = len(merged["masks"])
    iou = np.asarray(merged["iou"], np.float32).reshape(n)
    stab = np.asarray(merged["stab"], np.float32).reshape(n)
    area = np.asarray(merged["area"], np.int64).reshape(n)
    if order == "area":
        paint_order = np.argsort(-area, kind="stable")  # largest first: smaller ones overwrite
    elif order == "score":
        paint_order = np.lexsort((stab, iou))  # lowest score first: the best overwrite
    else:
        raise ValueError(f"Unknown overlap order {order!r}; use 'area' or 'score'.")
    canvas = np.zeros(height * width, np.uint32)  # column-major, as the run lengths
    for j in paint_order:
        idx = _global_indices(merged, j)
        canvas[idx] = j + 1
    painted = np.bincount(canvas, minlength=n + 1)[1:]
    present = np.flatnonzero(painted > 0)
    lut = np.zeros(n + 1, np.uint32)
    lut[present + 1] = np.arange(1, len(present) + 1, dtype=np.uint32)
    labels = np.ascontiguousarray(lut[canvas].reshape(width, height).T)
    feats = {
        "index": np.arange(1, len(present) + 1, dtype=np.int64),
        "predicted_iou": iou[present],
        "stability_score": stab[present],
        "area": painted[present].astype(np.int64),
        "mask_area": area[present],
    }
    return labels, feats


def _drop_small_pieces(plane: np.ndarray, feats: dict, min_area: int) -> tuple[np.ndarray, dict]:
    """Remove the pieces of painted masks that are smaller than ``min_area``: where smaller
    masks painted over a larger one, what is left of it can be slivers, and no object may
    keep fewer pixels than the minimum the user asked for. Larger pieces keep their mask's
    id (as sam2's own ``min_mask_region_area`` keeps a mask's large islands)."""
    if min_area <= 1 or not plane.any():
        return plane, feats
    from skimage.measure import label

    pieces = label(plane, connectivity=2)
    size = np.bincount(pieces.ravel())
    out = np.where(size[pieces] >= min_area, plane, 0)
    area = np.bincount(out.ravel(), minlength=len(feats["index"]) + 1)[1:]
    kept = np.flatnonzero(area > 0)
    lut = np.zeros(len(area) + 1, np.uint32)
    lut[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.uint32)
    new = {k: v[kept] for k, v in feats.items()}
    new["index"] = np.arange(1, len(kept) + 1, dtype=np.int64)
    new["area"] = area[kept].astype(np.int64)
    return lut[out], new


def _split(
    plane: np.ndarray, feats: dict, split_kwargs: dict, spacing: tuple[float, float] | None = None
) -> tuple[np.ndarray, dict]:
    """Split merged cells over pixels of ``spacing`` (None: square); every fragment
    inherits its parent's scores."""
    from ..postprocess.watershed import split_labels

    if spacing is not None:
        split_kwargs = {**split_kwargs, "spacing": spacing}
    split = split_labels(plane, **split_kwargs)
    fg = split > 0
    pairs = np.unique(np.stack([split[fg], plane[fg]]).astype(np.int64), axis=1)
    new_ids, parents = pairs
    lut = np.zeros(int(split.max()) + 1, np.uint32)
    lut[new_ids] = np.arange(1, len(new_ids) + 1, dtype=np.uint32)
    out = lut[split]
    row = np.searchsorted(feats["index"], parents)
    new = {k: v[row] for k, v in feats.items()}
    new["index"] = np.arange(1, len(new_ids) + 1, dtype=np.int64)
    new["area"] = np.bincount(out.ravel(), minlength=len(new_ids) + 1)[1:].astype(np.int64)
    return out, new


def masks_to_labels(
    masks: Sequence[dict],
    order: Literal["area", "score"] = "area",
    shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, dict]:
    """Paint mask records (as ``generate`` returns them) into one label image.

    Parameters
    ----------
    masks
        Records with ``segmentation`` (binary mask or uncompressed RLE),
        ``predicted_iou`` and ``stability_score``.
    order
        Where masks overlap, ``"area"`` gives pixels to the smallest mask,
        ``"score"`` to the highest predicted IoU (ties: stability score).
    shape
        Image shape, needed only when ``masks`` is empty.

    Returns
    -------
    labels : numpy.ndarray
        Ids ``1..N`` in the order of ``masks`` among the masks that kept pixels.
    features : dict
        ``index``, ``predicted_iou``, ``stability_score``, ``area`` (painted) and
        ``mask_area`` per label.
    """
    rles = []
    for m in masks:
        seg = m["segmentation"]
        if isinstance(seg, dict):
            if isinstance(seg["counts"], str | bytes):
                raise ValueError("Compressed COCO RLE is not supported; use 'uncompressed_rle'.")
            rles.append((np.asarray(seg["counts"], np.int64), tuple(seg["size"])))
        else:
            seg = np.asarray(seg, bool)
            rles.append((rle_counts(seg), seg.shape))
    if rles:
        shape = rles[0][1]
    elif shape is None:
        raise ValueError("No masks: pass the image shape to get an empty label image.")
    merged = {
        "masks": [r for r, _ in rles],
        "offsets": [(0, 0)] * len(rles),
        "crop_hw": [hw for _, hw in rles],
        "iou": [m["predicted_iou"] for m in masks],
        "stab": [m["stability_score"] for m in masks],
        "area": [int(r[1::2].sum()) for r, _ in rles],
        "shape": tuple(shape),
    }
    labels, feats = _paint(merged, tuple(shape), order)
    return labels.astype(min_label_dtype(max(len(feats["index"]), 1))), feats


def changed_params(old: Sam2Params | None, new: Sam2Params) -> str:
    """The costliest stage a parameter change needs.

    Returns
    -------
    str
        ``"encoder"``, ``"decoder"`` or ``"filter"``.
    """
    if old is None:
        return "encoder"
    diff = {
        f.name
        for f in fields(Sam2Params)
        if f.name != "point_grids" and getattr(old, f.name) != getattr(new, f.name)
    }
    if diff & set(ENCODER_PARAMS):
        return "encoder"
    if diff & set(DECODER_PARAMS) or old.decoder_key() != new.decoder_key():
        return "decoder"
    return "filter"


__all__ = [
    "DECODER_PARAMS",
    "ENCODER_PARAMS",
    "FILTER_PARAMS",
    "LabelParams",
    "Sam2Engine",
    "Sam2Params",
    "Sam2Result",
    "batch_rle_counts",
    "changed_params",
    "compress_masks",
    "drain",
    "masks_to_labels",
    "to_uint8_rgb",
]
