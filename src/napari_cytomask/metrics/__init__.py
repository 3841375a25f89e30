"""Pixel and instance segmentation metrics (Qt-free)."""

from .core import (
    COCO_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    MAF1_THRESHOLDS,
    CocoParts,
    Evaluation,
    MatchStats,
    ObjectTable,
    PixelStats,
    evaluate,
    leave_out_frames,
    stacked_side,
    uncounted_note,
    unlabelled_frames,
    unmatched_objects,
)
from .export import results_rows, write_csv

__all__ = [
    "COCO_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "MAF1_THRESHOLDS",
    "CocoParts",
    "Evaluation",
    "MatchStats",
    "ObjectTable",
    "PixelStats",
    "evaluate",
    "leave_out_frames",
    "stacked_side",
    "uncounted_note",
    "results_rows",
    "unlabelled_frames",
    "unmatched_objects",
    "write_csv",
]
