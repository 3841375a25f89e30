"""Write an :class:`~napari_cytomask.metrics.core.Evaluation` as a CSV table."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
from pathlib import Path

import numpy as np

from ..io.atomic import check_replaces_text, moved_in_together, write_atomically, write_json
from ..io.export import package_versions, provenance_beside
from ..io.layers import named_frames
from .core import Evaluation

#: Columns of :func:`results_rows` and of the CSV file.
COLUMNS = ("frame", "position_name", "level", "iou_threshold", "metric", "value")
#: Columns of a CSV file that names what it compared.
NAMED_COLUMNS = ("prediction", "ground_truth", *COLUMNS)

_OBJECT_METRICS = (
    "tp",
    "fp",
    "fn",
    "n_true",
    "n_pred",
    "precision",
    "recall",
    "accuracy",
    "f1",
    "panoptic_quality",
    "mean_matched_score",
    "mean_true_score",
)
_PIXEL_METRICS = ("tp", "fp", "fn", "tn", "precision", "recall", "f1", "f2", "iou")
#: What the provenance beside a metrics table says it describes (``table``).
PROVENANCE_TABLE = "segmentation metrics"


def _rows_of(evaluation: Evaluation, frame: str, position: str) -> list[tuple]:
    rows = []
    stats = evaluation.matches
    for i in range(len(stats.thresholds)):
        row = stats.row(i)
        rows += [
            (frame, position, "object", row["thresh"], name, row[name]) for name in _OBJECT_METRICS
        ]
    pixels = evaluation.pixels
    rows += [(frame, position, "pixel", "", name, getattr(pixels, name)) for name in _PIXEL_METRICS]
    summary = evaluation.summary().items()
    rows += [(frame, position, "summary", "", name, value) for name, value in summary]
    return rows


def left_out_rows(frame: str, position: str, **counts) -> list[tuple]:
    """Rows (:data:`COLUMNS`) of what was left out of the figures, level ``left_out``:
    ``counts`` by name (``frames``, ``pairs``, ``n_pred``: the cells predicted there)."""
    return [(frame, position, "left_out", "", name, int(value)) for name, value in counts.items()]


def frame_cell(evaluation: Evaluation, index: int, axis_labels=None) -> str:
    """Frame ``index`` of ``evaluation`` as the ``frame`` column names it: its number, or,
    on several frame axes, their nouns and places ("position 0, time point 1", else "frame
    0,1" where ``axis_labels`` name no such axes): a bare "0,1" was read as the number 0.1
    by spreadsheets that write decimals with a comma (German or French Excel, LibreOffice)."""
    key = evaluation.frame_name(index)
    return named_frames([key], axis_labels) if len(evaluation.frame_shape) > 1 else key


def results_rows(
    evaluation: Evaluation,
    positions: list[str] | None = None,
    unlabelled: np.ndarray | None = None,
    uncounted: np.ndarray | None = None,
    axis_labels=None,
) -> list[tuple]:
    """The results as long-format rows ``(frame, position_name, level, iou_threshold,
    metric, value)``.

    ``frame`` is ``"all"`` for the image (or the aggregate of a stack) and each
    frame's :func:`frame_cell`, its axes named by ``axis_labels`` (those of the labels
    compared, Y and X last);
    ``position_name`` the name of the position the frame lies at, from ``positions``
    (one per frame, :func:`~napari_cytomask.io.layers.frame_positions`: a plate's well),
    else empty; ``level`` is ``object`` (one row per metric and IoU threshold),
    ``pixel`` or ``summary`` (mean-average F1 and COCO AP, AP50, AP75 and the pixel
    ratios), which have no threshold.

    Frames with no object in either image are not written, as mSA leaves them out: those
    left out of the comparison (never made, or without ground truth) were written as
    scores of 0, which a spreadsheet averaged with the others. Each frame left out for
    want of ground truth (``unlabelled``, with the cells predicted in each frame,
    ``uncounted``: :func:`~napari_cytomask.metrics.core.leave_out_frames`) has a row of
    level ``left_out`` with the cells predicted there (``n_pred``), and the image's rows
    say how many frames and cells the figures leave out so: the file said nothing of 57
    cells no figure counted, where stardist's pooled matching counts them as false
    positives.
    """
    rows = _rows_of(evaluation, "all", "")
    left = np.zeros(len(evaluation.frames), bool) if unlabelled is None else np.ravel(unlabelled)
    cells = np.zeros(left.shape, int) if uncounted is None else np.ravel(uncounted)
    if left.any():
        rows += left_out_rows("all", "", frames=left.sum(), n_pred=cells.sum())
    for i, frame in enumerate(evaluation.frames):
        position = positions[i] if positions else ""
        name = frame_cell(evaluation, i, axis_labels)
        if left[i]:
            rows += left_out_rows(name, position, n_pred=cells[i])
        elif frame.matches.n_true or frame.matches.n_pred:
            rows += _rows_of(frame, name, position)
    return rows


def provenance(path: str | os.PathLike, pairs: list[dict], settings: dict) -> dict:
    """What a metrics table at ``path`` measured, for the file :func:`write_rows` writes
    beside it, as an export of labels writes theirs: the ``pairs`` compared (of each, its
    ``prediction`` and ``ground_truth``: the layer or file and, where the plugin made it,
    its method, settings and model), the ``settings`` of the comparison, the versions that
    ran and when. A table found a month later said nothing of what it measured."""
    return {
        "outputs": [Path(path).name],
        "table": PROVENANCE_TABLE,
        "pairs": pairs,
        "settings": settings,
        "versions": package_versions(),
        "python": platform.python_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_csv(
    evaluation: Evaluation,
    path: str | os.PathLike,
    *,
    names: tuple[str, str] | None = None,
    positions: list[str] | None = None,
    unlabelled: np.ndarray | None = None,
    uncounted: np.ndarray | None = None,
    axis_labels=None,
    record: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`results_rows` to a CSV file, atomically.

    Parameters
    ----------
    evaluation
        Result of :func:`~napari_cytomask.metrics.evaluate`.
    path
        Destination file.
    names
        What was compared, ``(prediction, ground truth)``: written in columns
        ``prediction`` and ``ground_truth`` before :data:`COLUMNS` on every row, as
        ``cytomask evaluate`` writes its files' names, so that a table read later, or
        several put together, says what each figure is of.
    positions
        The name of the position of each frame (:func:`results_rows`), or None.
    unlabelled, uncounted
        The frames left out for want of ground truth, and the cells predicted in each
        (:func:`results_rows`), or None.
    axis_labels
        The axis names of the labels compared, which name the frames (:func:`frame_cell`).
    record
        Its :func:`provenance`, written beside it (:func:`write_rows`), or None.
    overwrite
        Replace an existing file; without it an existing file is an error.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        If ``evaluation`` is no :class:`~napari_cytomask.metrics.core.Evaluation` (the
        file given first).
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    napari_cytomask.io.atomic.WriteError
        If the disk is full, read-only or not writable; nothing is left behind.
    """
    if not isinstance(evaluation, Evaluation):  # its attributes were missed, in Python's words
        raise TypeError(
            "write_csv takes the result of evaluate() first, then the file to write; got "
            f"{type(evaluation).__name__} {str(evaluation)!r} first."
        )
    rows = results_rows(evaluation, positions, unlabelled, uncounted, axis_labels)
    header = COLUMNS if names is None else NAMED_COLUMNS
    rows = rows if names is None else [(*names, *row) for row in rows]
    return write_rows(path, header, rows, overwrite=overwrite, record=record)


def write_rows(
    path: str | os.PathLike,
    header: tuple,
    rows: list[tuple],
    *,
    overwrite: bool = False,
    record: dict | None = None,
) -> Path:
    """Write ``header`` and ``rows`` to a UTF-8 CSV file, atomically, as :func:`write_csv`
    does (``cytomask evaluate`` puts the file names of each pair before :data:`COLUMNS`),
    and ``record`` (:func:`provenance`), where given, beside it in
    ``<name>_provenance.json``, as an export of labels names its own: both or neither.
    The CSV stays a plain table that spreadsheets open. ``overwrite`` replaces only a text
    file (:func:`~napari_cytomask.io.atomic.check_replaces_text`) and only the provenance
    of a metrics table (:func:`check_provenance_beside`)."""
    if overwrite:
        check_replaces_text(path, "a CSV table")
    if record is not None:
        check_provenance_beside(path)

    def write(tmp: Path) -> None:
        # A file name of bytes that are no UTF-8 is written escaped, as the JSON writes it.
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    if record is None:
        return write_atomically(path, write, overwrite=overwrite)
    with moved_in_together() as together, together.holding():
        written = write_atomically(path, write, overwrite=overwrite)
        # Over a metrics table's alone (checked above): one whose table was removed.
        write_json(provenance_beside(Path(path)), record, overwrite=True)
    return written


def check_provenance_beside(path: str | os.PathLike) -> None:
    """Refuse to write a metrics table's provenance over one of other files: a table named
    after labels exported beside it ("cells.csv" by "cells.tif") would replace theirs,
    which keeps them the result of their scan.

    Raises
    ------
    FileExistsError
        When ``<name>_provenance.json`` beside ``path`` is there and describes no metrics
        table.
    """
    beside = provenance_beside(Path(path))
    if not os.path.lexists(beside):
        return
    try:
        ours = json.loads(beside.read_text(encoding="utf-8")).get("table") == PROVENANCE_TABLE
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise FileExistsError(
            f"{beside} is there and describes other files (an export of labels of that "
            f"name, say), so {Path(path).name} would replace it with the metrics' own; "
            "choose another name for the CSV."
        )
