"""Pixel and instance metrics from one contingency table of (ground truth, prediction) ids.

The table of pixel counts per (ground-truth id, predicted id) pair is built once
with :func:`numpy.bincount`; every IoU, every matching threshold, the pixel
metrics, the per-object tables and COCO-style AP are read from it.

Conventions (the same as ``stardist.matching``):

- IoU values are stored as float32, as stardist does, and compared with
  ``float32(threshold)``, so threshold decisions agree with it bit for bit.
- Objects are matched one-to-one by an optimal assignment that first maximises
  the number of pairs with IoU >= threshold and then, as a tie-breaker, the sum
  of the IoUs of all assigned pairs.
- A ratio whose numerator count (true positives) is 0 is 0, also when both
  images are empty (then ``n_true == n_pred == 0`` says why). No metric is ever
  NaN and no division warning is raised.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from ..labels import LabelsError, as_labels, binary_mask_regions, check_same_shape

#: IoU thresholds of the results table: 0.10, 0.15, ..., 0.95.
DEFAULT_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.10, 0.951, 0.05), 2))
#: IoU thresholds averaged by the mean-average F1 of Caicedo et al. (2018).
MAF1_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.50, 0.951, 0.05), 2))
#: IoU thresholds of COCO AP, the exact float values pycocotools uses.
COCO_THRESHOLDS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
#: Recall points of COCO's 101-point interpolated precision.
COCO_RECALLS = np.linspace(0.0, 1.0, 101)

# Above this many (n_true + 1) * (n_pred + 1) cells the table is built sparse.
_DENSE_TABLE_LIMIT = 1 << 25
# Ids up to this value (or up to 4 x the pixel count) are relabelled with a lookup table.
_LUT_LIMIT = 1 << 24


def _ratio(num, den) -> np.ndarray:
    """``num / den``, and 0 where ``num`` is 0 (stardist's convention)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=(num > 0) & (den > 0))
    return out


@dataclass(frozen=True)
class MatchStats:
    """Object-level counts and scores at several IoU thresholds.

    Counts add up over frames (``a + b``), and every ratio is derived from the
    summed counts, as ``stardist.matching.matching_dataset(by_image=False)`` does.

    Attributes
    ----------
    thresholds
        IoU thresholds, shape (k,).
    tp, fp, fn
        Matched predictions, unmatched predictions, unmatched ground-truth objects.
    n_true, n_pred
        Number of ground-truth and predicted objects.
    sum_matched_score
        Sum of the IoUs of the matched pairs at each threshold.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_true: int
    n_pred: int
    sum_matched_score: np.ndarray

    #: Fields of :meth:`row`, in the order of ``stardist.matching.matching``.
    FIELDS = (
        "thresh",
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "accuracy",
        "f1",
        "n_true",
        "n_pred",
        "mean_true_score",
        "mean_matched_score",
        "panoptic_quality",
    )

    def __add__(self, other: MatchStats) -> MatchStats:
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("can only add match statistics computed at the same thresholds.")
        return MatchStats(
            self.thresholds,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.n_true + other.n_true,
            self.n_pred + other.n_pred,
            self.sum_matched_score + other.sum_matched_score,
        )

    @property
    def precision(self) -> np.ndarray:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def accuracy(self) -> np.ndarray:
        """TP / (TP + FP + FN), the "average precision" of the 2018 Data Science Bowl."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def f1(self) -> np.ndarray:
        """2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def mean_matched_score(self) -> np.ndarray:
        """Mean IoU of the matched pairs."""
        return _ratio(self.sum_matched_score, self.tp)

    @property
    def mean_true_score(self) -> np.ndarray:
        """Sum of matched IoUs divided by the number of ground-truth objects."""
        return _ratio(self.sum_matched_score, np.full(self.tp.shape, self.n_true))

    @property
    def panoptic_quality(self) -> np.ndarray:
        """Sum of matched IoUs / (TP + FP/2 + FN/2) (Kirillov et al. 2019, eq. 1)."""
        return _ratio(self.sum_matched_score, self.tp + self.fp / 2 + self.fn / 2)

    def no_objects_note(self) -> str:
        """Why every ratio is 0 when the ground truth or the prediction has no objects,
        to be said with the scores (a score of 0 alone reads as a poor segmentation);
        empty when both have some."""
        empty = [
            f"the {side} has no objects"
            for side, n in (("ground truth", self.n_true), ("prediction", self.n_pred))
            if n == 0
        ]
        if not empty:
            return ""
        return f"{' and '.join(empty)}, so ratios without a true positive are 0"

    def row(self, index: int) -> dict[str, float]:
        """The metrics at ``thresholds[index]``, named as in ``stardist.matching``."""
        values = {
            "thresh": float(self.thresholds[index]),
            "n_true": int(self.n_true),
            "n_pred": int(self.n_pred),
        }
        for name in ("tp", "fp", "fn"):
            values[name] = int(getattr(self, name)[index])
        for name in self.FIELDS:
            if name not in values:
                values[name] = float(getattr(self, name)[index])
        return {name: values[name] for name in self.FIELDS}


@dataclass(frozen=True)
class PixelStats:
    """Foreground (id > 0) agreement counted in pixels (voxels).

    Ratios follow the same rule as the object metrics: 0 when there is no
    true-positive pixel.
    """

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: PixelStats) -> PixelStats:
        return PixelStats(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return float(_ratio(self.tp, self.tp + self.fp))

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return float(_ratio(self.tp, self.tp + self.fn))

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN), i.e. the Dice coefficient."""
        return float(_ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn))

    dice = f1

    @property
    def f2(self) -> float:
        """5 TP / (5 TP + 4 FN + FP): the F-beta score with beta = 2 (recall weighs more)."""
        return float(_ratio(5 * self.tp, 5 * self.tp + 4 * self.fn + self.fp))

    @property
    def iou(self) -> float:
        """TP / (TP + FP + FN), the Jaccard index of the foregrounds."""
        return float(_ratio(self.tp, self.tp + self.fp + self.fn))


@dataclass(frozen=True)
class ObjectTable:
    """One row per object of one image (or of every frame of a stack).

    Attributes
    ----------
    frame
        Frame index of each object (0 for a single image).
    ids
        Object id in its own label image.
    area
        Size in pixels (voxels).
    best_iou, best_id
        Highest IoU with any object of the other image, and that object's id
        (0 and 0 when it overlaps none).
    matched_id, matched_iou
        Partner in the one-to-one matching at ``threshold`` (0 and 0.0 when unmatched).
    threshold
        IoU threshold of ``matched_id``.
    """

    frame: np.ndarray
    ids: np.ndarray
    area: np.ndarray
    best_iou: np.ndarray
    best_id: np.ndarray
    matched_id: np.ndarray
    matched_iou: np.ndarray
    threshold: float

    COLUMNS = ("frame", "ids", "area", "best_iou", "best_id", "matched_id", "matched_iou")

    def __len__(self) -> int:
        return len(self.ids)

    def __add__(self, other: ObjectTable) -> ObjectTable:
        return ObjectTable(
            *(np.concatenate([getattr(self, c), getattr(other, c)]) for c in self.COLUMNS),
            threshold=self.threshold,
        )

    @property
    def matched(self) -> np.ndarray:
        """Whether each object has a partner at ``threshold``."""
        return self.matched_id > 0


@dataclass(frozen=True)
class CocoParts:
    """What COCO-style AP needs from each image: detection scores, matches and the GT count."""

    scores: np.ndarray
    matched: np.ndarray  # (len(COCO_THRESHOLDS), n_detections) bool
    n_true: int

    def __add__(self, other: CocoParts) -> CocoParts:
        return CocoParts(
            np.concatenate([self.scores, other.scores]),
            np.concatenate([self.matched, other.matched], axis=1),
            self.n_true + other.n_true,
        )

    def precision_table(self) -> np.ndarray:
        """Interpolated precision, shape (len(COCO_THRESHOLDS), 101), as pycocotools computes it."""
        n_det = len(self.scores)
        table = np.zeros((len(COCO_THRESHOLDS), len(COCO_RECALLS)))
        if self.n_true == 0 or n_det == 0:
            return table
        # A stable sort: ties keep frame order, then ascending id order.
        order = np.argsort(-self.scores, kind="mergesort")
        tps = np.cumsum(self.matched[:, order], axis=1, dtype=np.float64)
        fps = np.cumsum(~self.matched[:, order], axis=1, dtype=np.float64)
        for k in range(len(COCO_THRESHOLDS)):
            recall = tps[k] / self.n_true
            precision = tps[k] / (tps[k] + fps[k] + np.spacing(1))
            precision = np.maximum.accumulate(precision[::-1])[::-1]
            where = np.searchsorted(recall, COCO_RECALLS, side="left")
            ok = where < n_det
            table[k, ok] = precision[where[ok]]
        return table


@dataclass(frozen=True)
class Evaluation:
    """Every metric of one comparison; for stacks, the aggregate with ``frames`` filled in.

    Aggregates over frames sum the counts (TP/FP/FN, pixels, matched IoUs) of
    all frames and derive the ratios from the sums; COCO AP pools the
    detections of all frames as pycocotools pools images.

    Attributes
    ----------
    matches
        Object metrics at ``matches.thresholds``.
    maf1_matches
        Object metrics at :data:`MAF1_THRESHOLDS`.
    pixels
        Foreground pixel metrics.
    true_objects, pred_objects
        Per-object tables of the ground truth and of the prediction.
    coco
        Inputs of COCO-style AP.
    frames
        Per-frame evaluations of a stack, or of the images whose evaluations
        were added up (``a + b``); empty for a single image.
    frame_shape
        The stack's frame axes (positions by time points, say), whose frames
        ``frames`` lists in C order; empty for a sum of images.
    """

    matches: MatchStats
    maf1_matches: MatchStats
    pixels: PixelStats
    true_objects: ObjectTable
    pred_objects: ObjectTable
    coco: CocoParts
    frames: tuple[Evaluation, ...] = field(default=())
    frame_shape: tuple[int, ...] = field(default=())

    def __add__(self, other: Evaluation) -> Evaluation:
        return Evaluation(
            self.matches + other.matches,
            self.maf1_matches + other.maf1_matches,
            self.pixels + other.pixels,
            self.true_objects + other.true_objects,
            self.pred_objects + other.pred_objects,
            self.coco + other.coco,
            (self.frames or (self,)) + (other.frames or (other,)),
        )

    def frame_name(self, index: int) -> str:
        """Frame ``index`` of :attr:`frames` as the tables name it: its number, or its
        place on each frame axis ("1,2": position 1, time point 2) for several axes."""
        if len(self.frame_shape) < 2:
            return str(index)
        return ",".join(str(int(i)) for i in np.unravel_index(index, self.frame_shape))

    @property
    def match_threshold(self) -> float:
        """IoU threshold of the per-object tables and of the FP/FN highlights."""
        return self.true_objects.threshold

    @property
    def mean_average_f1(self) -> float:
        """Mean F1 over IoU 0.50:0.05:0.95 (Caicedo et al. 2018)."""
        return float(np.mean(self.maf1_matches.f1))

    @property
    def mean_segmentation_accuracy(self) -> float:
        """mSA: mean over IoU 0.50:0.05:0.95 of TP / (TP + FP + FN), per image, then averaged.

        The summary that micro-sam and the segment-anything-for-microscopy
        papers report. For a stack (or a sum of images) it is the mean of the
        per-frame values; frames with no object in either image are left out.
        """
        if not self.frames:
            return float(np.mean(self.maf1_matches.accuracy))
        values = [
            frame.mean_segmentation_accuracy
            for frame in self.frames
            if frame.maf1_matches.n_true or frame.maf1_matches.n_pred
        ]
        return float(np.mean(values)) if values else 0.0

    @property
    def coco_ap(self) -> float:
        """COCO AP: precision averaged over 101 recall points and IoU 0.50:0.05:0.95."""
        return float(self.coco.precision_table().mean())

    @property
    def coco_ap50(self) -> float:
        """COCO AP at IoU 0.50."""
        return float(self.coco.precision_table()[0].mean())

    @property
    def coco_ap75(self) -> float:
        """COCO AP at IoU 0.75."""
        return float(self.coco.precision_table()[COCO_THRESHOLDS.index(0.75)].mean())

    def summary(self) -> dict[str, float]:
        """Headline numbers that do not depend on a threshold."""
        table = self.coco.precision_table()
        return {
            "mean_average_f1": self.mean_average_f1,
            "mean_segmentation_accuracy": self.mean_segmentation_accuracy,
            "coco_ap": float(table.mean()),
            "coco_ap50": float(table[0].mean()),
            "coco_ap75": float(table[COCO_THRESHOLDS.index(0.75)].mean()),
            "pixel_precision": self.pixels.precision,
            "pixel_recall": self.pixels.recall,
            "pixel_f1": self.pixels.f1,
            "pixel_f2": self.pixels.f2,
            "pixel_iou": self.pixels.iou,
        }


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class _Overlap:
    """The sparse contingency table of one image pair, ids relabelled to 0..n-1."""

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray
    rows: np.ndarray  # ground-truth index of each overlapping pair
    cols: np.ndarray  # prediction index of each overlapping pair
    inter: np.ndarray
    pixels: PixelStats

    @property
    def union(self) -> np.ndarray:
        return self.true_area[self.rows] + self.pred_area[self.cols] - self.inter

    @property
    def iou32(self) -> np.ndarray:
        # float64 division rounded to float32, exactly as stardist stores IoU.
        return (self.inter / self.union).astype(np.float32)


def _consecutive(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel ids to 1..n (0 stays 0); returns the relabelled array and the sorted ids."""
    top = int(flat.max())
    if top <= max(_LUT_LIMIT, 4 * flat.size):
        # Cheaper than np.unique: a presence count and a lookup table, no sort.
        values = flat if flat.dtype.itemsize < 8 else flat.astype(np.intp, copy=False)
        present = np.bincount(values, minlength=1)
        ids = np.flatnonzero(present[1:]) + 1
        index_dtype = np.int32 if len(ids) < 2**31 - 1 else np.int64
        lut = np.zeros(top + 1, dtype=index_dtype)
        lut[ids] = np.arange(1, len(ids) + 1, dtype=index_dtype)
        return lut[values], ids.astype(flat.dtype)
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] == 0:
        return inverse.reshape(flat.shape), ids[1:]
    return inverse.reshape(flat.shape) + 1, ids


def _overlap(gt: np.ndarray, pred: np.ndarray) -> _Overlap:
    gt_rel, true_ids = _consecutive(gt.ravel())
    pred_rel, pred_ids = _consecutive(pred.ravel())
    n_t, n_p = len(true_ids), len(pred_ids)
    width = n_p + 1
    key = gt_rel.astype(np.int64) * width + pred_rel
    if (n_t + 1) * width <= _DENSE_TABLE_LIMIT:
        table = np.bincount(key, minlength=(n_t + 1) * width).reshape(n_t + 1, width)
        rows, cols = np.nonzero(table[1:, 1:])
        inter = table[1 + rows, 1 + cols]
        true_area = table[1:].sum(axis=1)
        pred_area = table[:, 1:].sum(axis=0)
        tn = int(table[0, 0])
    else:
        keys, counts = np.unique(key, return_counts=True)
        r, c = np.divmod(keys, width)
        true_area = np.bincount(r, weights=counts, minlength=n_t + 1)[1:].astype(np.int64)
        pred_area = np.bincount(c, weights=counts, minlength=n_p + 1)[1:].astype(np.int64)
        both = (r > 0) & (c > 0)
        rows, cols, inter = r[both] - 1, c[both] - 1, counts[both]
        tn = int(counts[(r == 0) & (c == 0)].sum())
    tp = int(inter.sum())
    pixels = PixelStats(tp, int(pred_area.sum()) - tp, int(true_area.sum()) - tp, tn)
    return _Overlap(
        true_ids,
        pred_ids,
        true_area.astype(np.int64),
        pred_area.astype(np.int64),
        rows.astype(np.intp),
        cols.astype(np.intp),
        inter.astype(np.int64),
        pixels,
    )


# ------------------------------------------------------------------------ matching


class _Matcher:
    """Optimal one-to-one matching of one image pair at any IoU threshold."""

    def __init__(self, overlap: _Overlap):
        self.ov = overlap
        self.iou = overlap.iou32
        self.n_true = len(overlap.true_ids)
        self.n_pred = len(overlap.pred_ids)
        self._components: np.ndarray | None = None

    def components(self) -> np.ndarray:
        """Connected component of each overlapping pair in the graph of all overlaps."""
        if self._components is None:
            n = self.n_true + self.n_pred
            graph = coo_matrix(
                (np.ones(len(self.iou)), (self.ov.rows, self.n_true + self.ov.cols)), shape=(n, n)
            )
            _, labels = connected_components(graph, directed=False)
            self._components = labels[self.ov.rows]
        return self._components

    def match(self, threshold: float) -> np.ndarray:
        """Indices of the overlapping pairs matched with IoU >= ``threshold``."""
        strong = self.iou >= np.float32(threshold)
        chosen = np.flatnonzero(strong)
        rows, cols = self.ov.rows[chosen], self.ov.cols[chosen]
        row_conflict = np.bincount(rows, minlength=self.n_true) > 1
        col_conflict = np.bincount(cols, minlength=self.n_pred) > 1
        if not (row_conflict.any() or col_conflict.any()):
            # Every object has at most one candidate (always so above IoU 0.5):
            # the candidates are the matching, no assignment needed.
            return chosen
        comp = self.components()
        bad = np.zeros(comp.max() + 1, dtype=bool)
        bad[comp[chosen[row_conflict[rows]]]] = True
        bad[comp[chosen[col_conflict[cols]]]] = True
        in_bad = bad[comp]
        easy = chosen[~in_bad[chosen]]
        hard = np.flatnonzero(in_bad)
        picked = self._assign(hard, strong[hard])
        return np.sort(np.concatenate([easy, picked[strong[picked]]]))

    def _assign(self, edges: np.ndarray, strong: np.ndarray) -> np.ndarray:
        """Maximum-weight matching on ``edges``, weights as in stardist's assignment.

        stardist minimises ``-(iou >= t) - iou / (2 * min(n_true, n_pred))`` over the
        dense IoU matrix. Zero-IoU pairs cost nothing there, so only overlapping
        pairs matter, and the problem splits into the components handled here.
        To get a maximum-weight matching that may leave objects unmatched out of
        a solver for full matchings, the graph is doubled: a mirrored copy plus
        an edge from every object to its own copy (Karp's reduction).
        """
        rows_u, r = np.unique(self.ov.rows[edges], return_inverse=True)
        cols_u, c = np.unique(self.ov.cols[edges], return_inverse=True)
        a, b = len(rows_u), len(cols_u)
        n_matched = min(self.n_true, self.n_pred)
        weight = strong + self.iou[edges] / (2 * n_matched)
        # Shift all costs by 2 so that every edge has a positive weight (the
        # solver ignores zeros); every full matching has a + b edges, so the
        # shift does not change which one is optimal.
        cost = 2.0 - weight
        ones = np.full(a + b, 2.0)
        graph = coo_matrix(
            (
                np.concatenate([cost, cost, ones]),
                (
                    np.concatenate([r, a + c, np.arange(a), a + np.arange(b)]),
                    np.concatenate([c, b + r, b + np.arange(a), np.arange(b)]),
                ),
            ),
            shape=(a + b, a + b),
        ).tocsr()
        left, right = min_weight_full_bipartite_matching(graph)
        keep = (left < a) & (right < b)
        # Map each chosen (row, column) back to its edge through sorted keys.
        order = np.lexsort((c, r))
        where = np.searchsorted(r[order] * b + c[order], left[keep] * b + right[keep])
        return edges[order[where]]

    def stats(self, thresholds: Sequence[float]) -> MatchStats:
        cache: dict[float, np.ndarray] = {}
        tp, sums = [], []
        for t in thresholds:
            key = float(np.float32(t))
            if key not in cache:
                cache[key] = self.match(t)
            pairs = cache[key]
            tp.append(len(pairs))
            sums.append(float(self.iou[pairs].sum(dtype=np.float64)))
        tp = np.asarray(tp, dtype=np.int64)
        return MatchStats(
            np.asarray(thresholds, dtype=np.float64),
            tp,
            self.n_pred - tp,
            self.n_true - tp,
            self.n_true,
            self.n_pred,
            np.asarray(sums),
        )

    def object_tables(self, threshold: float, frame: int) -> tuple[ObjectTable, ObjectTable]:
        pairs = self.match(threshold)
        ov = self.ov
        tables = []
        for own, other, ids, other_ids, area, n in (
            (ov.rows, ov.cols, ov.true_ids, ov.pred_ids, ov.true_area, self.n_true),
            (ov.cols, ov.rows, ov.pred_ids, ov.true_ids, ov.pred_area, self.n_pred),
        ):
            best_iou = np.zeros(n)
            best_id = np.zeros(n, dtype=other_ids.dtype)
            if len(own):
                # After sorting by (object, IoU), the last pair of each object is its best.
                order = np.lexsort((self.iou, own))
                last = order[np.r_[own[order][1:] != own[order][:-1], True]]
                best_iou[own[last]] = self.iou[last]
                best_id[own[last]] = other_ids[other[last]]
            matched_id = np.zeros(n, dtype=other_ids.dtype)
            matched_iou = np.zeros(n)
            matched_id[own[pairs]] = other_ids[other[pairs]]
            matched_iou[own[pairs]] = self.iou[pairs]
            tables.append(
                ObjectTable(
                    np.full(n, frame, dtype=np.intp),
                    ids,
                    area,
                    best_iou,
                    best_id,
                    matched_id,
                    matched_iou,
                    float(threshold),
                )
            )
        return tables[0], tables[1]

    def coco(self, scores: np.ndarray) -> CocoParts:
        """Greedy matching by descending score at each COCO threshold, as pycocotools does."""
        ov = self.ov
        iou = ov.inter / ov.union  # pycocotools compares float64 IoUs
        matched = np.zeros((len(COCO_THRESHOLDS), self.n_pred), dtype=bool)
        for k, t in enumerate(COCO_THRESHOLDS):
            cand = np.flatnonzero(iou >= min(t, 1 - 1e-10))
            rows, cols = ov.rows[cand], ov.cols[cand]
            if np.bincount(rows, minlength=1).max(initial=0) <= 1 and (
                np.bincount(cols, minlength=1).max(initial=0) <= 1
            ):
                matched[k, cols] = True
                continue
            gt_taken = np.zeros(self.n_true, dtype=bool)
            # Candidates of each detection, ascending ground-truth order.
            order = np.lexsort((rows, cols))
            starts = np.searchsorted(cols[order], np.arange(self.n_pred + 1))
            for d in np.argsort(-scores, kind="mergesort"):
                best, best_iou = -1, min(t, 1 - 1e-10)
                for j in order[starts[d] : starts[d + 1]]:
                    # ">=" so that, among equal IoUs, the last ground truth wins.
                    if not gt_taken[rows[j]] and iou[cand[j]] >= best_iou:
                        best, best_iou = rows[j], iou[cand[j]]
                if best >= 0:
                    gt_taken[best] = True
                    matched[k, d] = True
        return CocoParts(scores, matched, self.n_true)


# ---------------------------------------------------------------------- public API


def _check_thresholds(thresholds) -> np.ndarray:
    values = np.asarray(thresholds, dtype=np.float64).ravel()
    if values.size == 0 or not np.all((values > 0) & (values <= 1)):
        raise ValueError(f"IoU thresholds must lie in (0, 1]; got {thresholds!r}.")
    return values


def _object_scores(scores, pred_ids: np.ndarray) -> np.ndarray:
    if scores is None:
        return np.ones(len(pred_ids))
    if isinstance(scores, Mapping):
        missing = [int(i) for i in pred_ids if int(i) not in scores]
        if missing:
            raise ValueError(f"no score for predicted object(s) {missing[:10]}.")
        values = np.array([float(scores[int(i)]) for i in pred_ids], dtype=np.float64)
    else:
        values = np.asarray(scores, dtype=np.float64).ravel()
    if values.shape != pred_ids.shape:
        raise ValueError(
            f"got {values.size} scores for {pred_ids.size} predicted objects; give one score "
            "per object in ascending id order, or a dict id -> score."
        )
    # A NaN sorts last, unsaid: an object scored NaN upstream would lower AP quietly.
    unscored = pred_ids[~np.isfinite(values)]
    if unscored.size:
        raise ValueError(
            f"the score of predicted object(s) {[int(i) for i in unscored[:10]]} is not a "
            "finite number (NaN or infinite)."
        )
    return values


def _evaluate_one(gt, pred, thresholds, match_threshold, scores, frame) -> Evaluation:
    matcher = _Matcher(_overlap(gt, pred))
    true_objects, pred_objects = matcher.object_tables(match_threshold, frame)
    return Evaluation(
        matches=matcher.stats(thresholds),
        maf1_matches=matcher.stats(MAF1_THRESHOLDS),
        pixels=matcher.ov.pixels,
        true_objects=true_objects,
        pred_objects=pred_objects,
        coco=matcher.coco(_object_scores(scores, matcher.ov.pred_ids)),
    )


def evaluate(
    ground_truth,
    prediction,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    match_threshold: float = 0.5,
    scores=None,
    stack: int = 0,
) -> Evaluation:
    """Compare a predicted label image with the ground truth.

    Parameters
    ----------
    ground_truth, prediction
        Label images of the same shape (2D, 3D, or a stack of either), any
        integer dtype; ids need not be consecutive; 0 is background.
    thresholds
        IoU thresholds of the object metrics (each in (0, 1]).
    match_threshold
        IoU threshold of the per-object tables (``matched_id``) and of
        :func:`unmatched_objects`.
    scores
        Confidence of each predicted object for COCO AP: a dict id -> score or
        an array with one score per object in ascending id order; for a stack,
        a sequence with one such entry per frame, in C order. Without scores all objects
        score the same, so ties are broken by ascending id (pycocotools keeps
        the order in which detections were given). Detections are never
        truncated (pycocotools' ``maxDets`` unlimited), areas are not filtered.
    stack
        How many leading axes hold independent frames (positions, time points;
        ``True``: the first), each frame an image of 2 axes or more. The result
        holds the aggregate, whose counts are summed over frames (TP/FP/FN,
        pixels, matched IoUs; ratios derived from the sums, like
        ``stardist.matching.matching_dataset(by_image=False)``), and the
        per-frame results in ``frames``, in C order over the frame axes.

    Returns
    -------
    Evaluation

    Raises
    ------
    napari_cytomask.labels.LabelsError
        For images of different shapes, fractional or negative values, or empty arrays.
    ValueError
        For thresholds outside (0, 1] or scores that do not fit the objects.
    """
    gt = as_labels(ground_truth, "ground truth")
    pred = as_labels(prediction, "prediction")
    check_same_shape(gt, pred, "ground truth", "prediction")
    thresholds = _check_thresholds(thresholds)
    match_threshold = float(_check_thresholds([match_threshold])[0])
    if int(stack) < 0:
        raise ValueError(f"stack is how many leading axes hold frames: 0 or more, not {stack}.")
    frame_shape = gt.shape[: int(stack)]
    if stack and gt.ndim - len(frame_shape) < 2:
        # Rows of one image are not frames: each frame must be an image itself.
        axes = "a frame axis" if len(frame_shape) == 1 else f"{len(frame_shape)} frame axes"
        raise LabelsError(f"a stack needs {axes} and 2-D or 3-D frames; got shape {gt.shape}.")
    for labels, what in ((gt, "ground truth"), (pred, "prediction")):
        _note_a_binary_mask(labels, what, int(stack))
    if not stack:
        return _evaluate_one(gt, pred, thresholds, match_threshold, scores, 0)
    gt, pred = _frames_of(gt, len(frame_shape)), _frames_of(pred, len(frame_shape))
    if scores is not None and len(scores) != len(gt):
        raise ValueError(f"got scores for {len(scores)} frames but the stack has {len(gt)}.")
    frames = tuple(
        _evaluate_one(
            gt[i], pred[i], thresholds, match_threshold, None if scores is None else scores[i], i
        )
        for i in range(len(gt))
    )
    total = frames[0]
    for part in frames[1:]:
        total = total + part
    return Evaluation(
        total.matches,
        total.maf1_matches,
        total.pixels,
        total.true_objects,
        total.pred_objects,
        total.coco,
        frames,
        frame_shape,
    )


def _note_a_binary_mask(labels: np.ndarray, what: str, frames: int) -> None:
    """Warn that ``labels`` of many separate regions, each of one value, are compared as one
    cell: the metrics dock and ``cytomask evaluate`` take such a binary mask's regions as its
    cells, and a script scored F1 0 where they scored 0.71, unsaid."""
    found = binary_mask_regions(labels, frames)
    if found is not None:
        warnings.warn(
            f"the {what} holds one value ({found[1]}) for every cell over "
            f"{found[0].max()} separate regions, a binary mask, and is compared as one "
            "cell; to compare its regions as cells, as the metrics dock and cytomask "
            "evaluate do, give napari_cytomask.labels.regions_as_cells(mask, stack)[0].",
            UserWarning,
            stacklevel=3,
        )


def _frames_of(labels: np.ndarray, frame_axes: int) -> np.ndarray:
    """``labels`` with its first ``frame_axes`` axes made one."""
    return labels.reshape(-1, *labels.shape[frame_axes:])


def stacked_side(ground_truth_shape, prediction_shape) -> str | None:
    """Which of a ground truth and a prediction, "ground truth" or "prediction", is a stack
    of frames of the other's shape (a ground truth drawn on one frame of a time-lapse
    segmented whole), which no comparison pairs with the other; None for other shapes."""
    gt, pred = tuple(ground_truth_shape), tuple(prediction_shape)
    for stack, frame, side in ((gt, pred, "ground truth"), (pred, gt, "prediction")):
        if len(stack) > len(frame) and stack[len(stack) - len(frame) :] == frame:
            return side
    return None


def unlabelled_frames(ground_truth: np.ndarray, stack: int, compared=True) -> np.ndarray | None:
    """The frames of a stack (over its ``stack`` leading axes), among those ``compared``,
    where ``ground_truth`` has no cell while other frames have some: cells drawn at one
    position of four are no verdict on the other three, so these are left out. None when
    there are none, or no frames."""
    if not stack:
        return None
    labelled = ground_truth.reshape(*ground_truth.shape[:stack], -1).any(axis=-1)
    left = compared & ~labelled
    return left if labelled.any() and left.any() else None


def leave_out_frames(
    ground_truth: np.ndarray, prediction: np.ndarray, stack: int, made: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Empty, in place, the frames of a stack (over its ``stack`` leading axes) that are
    no verdict: those a result never made (``made`` false, from
    :func:`~napari_cytomask.io.layers.made_frames`) in both images, and those where the
    ground truth has no cell while others have some (:func:`unlabelled_frames`) in the
    prediction. Emptied, they add no object, match or pixel to any score.

    Returns
    -------
    compared
        The frames compared, over the ``stack`` axes.
    unlabelled
        The frames left out for want of ground truth, or None.
    uncounted
        How many predicted cells each of those frames held (a control field's debris,
        say), which no score counts as false positives, over the ``stack`` axes (0 in the
        others): a binary mask's separate regions, as the comparison takes its cells
        (:func:`~napari_cytomask.labels.binary_mask_regions`).
    """
    compared = np.ones(ground_truth.shape[:stack], bool)
    if made is not None:
        ground_truth[~made] = 0
        prediction[~made] = 0
        compared &= made.reshape(*compared.shape, -1).any(axis=-1)
    unlabelled = unlabelled_frames(ground_truth, stack, compared)
    uncounted = np.zeros(compared.shape, np.int64)
    if unlabelled is not None:
        regions = binary_mask_regions(prediction, stack)  # one value for every cell
        cells = prediction if regions is None else regions[0]
        for place in map(tuple, np.argwhere(unlabelled)):
            uncounted[place] = np.count_nonzero(np.unique(cells[place]))
        prediction[unlabelled] = 0
        compared &= ~unlabelled
    return compared, unlabelled, uncounted


def uncounted_note(uncounted) -> str:
    """What a note on frames left out for want of ground truth says of the ``uncounted``
    cells predicted there (:func:`leave_out_frames`, frame by frame): a control field's 6
    cells of debris left the pooled F1 at 1.000, unsaid. "" without any."""
    uncounted = int(np.sum(uncounted))
    if not uncounted:
        return ""
    many = uncounted != 1
    return (
        f"; the {uncounted} cell{'s' * many} predicted there {'are' if many else 'is'} not "
        f"counted as {'false positives' if many else 'a false positive'}"
    )


def unmatched_objects(ground_truth, prediction, evaluation: Evaluation, *, stack: int = 0):
    """Label images of the false positives and the false negatives of ``evaluation``.

    Parameters
    ----------
    ground_truth, prediction
        The label images that ``evaluation`` was computed from.
    evaluation
        Result of :func:`evaluate` on them; its ``match_threshold`` decides.
    stack
        As in :func:`evaluate`.

    Returns
    -------
    false_positives, false_negatives : numpy.ndarray
        The unmatched predicted objects and the unmatched ground-truth objects,
        with their original ids; everything else is 0.
    """
    out = []
    for labels, table in (
        (as_labels(prediction, "prediction"), evaluation.pred_objects),
        (as_labels(ground_truth, "ground truth"), evaluation.true_objects),
    ):
        labels = np.ascontiguousarray(labels)
        result = np.zeros(labels.shape, labels.dtype)  # C order: its frames are views
        unmatched = ~table.matched
        images, targets = [labels], [result]
        if stack:  # views with the frame axes made one: filling them fills ``result``
            images, targets = _frames_of(labels, int(stack)), _frames_of(result, int(stack))
        for frame, (image, target) in enumerate(zip(images, targets, strict=True)):
            keep = np.isin(image, table.ids[unmatched & (table.frame == frame)])
            target[keep] = image[keep]
        out.append(result)
    return out[0], out[1]
