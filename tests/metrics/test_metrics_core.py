"""Hand-computed cases, dtypes, ids, per-object tables, highlights and input errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_cytomask.labels import LabelsError
from napari_cytomask.metrics import core, evaluate, unmatched_objects

GT = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 2, 2],
        [0, 0, 2, 2],
    ]
)
PRED = np.array(
    [
        [5, 5, 5, 0],
        [5, 5, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 7, 7],
    ]
)
# Hand counts: foreground overlap 6 px, 1 px predicted only, 2 px missed, 7 px background.
# Objects: gt 1 / pred 5 share 4 of 5 px (IoU 0.8); gt 2 / pred 7 share 2 of 4 px (IoU 0.5).


def test_pixel_metrics_by_hand():
    pixels = evaluate(GT, PRED).pixels
    assert (pixels.tp, pixels.fp, pixels.fn, pixels.tn) == (6, 1, 2, 7)
    assert pixels.precision == pytest.approx(6 / 7)
    assert pixels.recall == pytest.approx(6 / 8)
    assert pixels.f1 == pixels.dice == pytest.approx(12 / 15)
    assert pixels.f2 == pytest.approx(30 / 39)
    assert pixels.iou == pytest.approx(6 / 9)


def test_instance_metrics_by_hand():
    stats = evaluate(GT, PRED, [0.5, 0.55, 0.9]).matches
    assert stats.tp.tolist() == [2, 1, 0]
    assert stats.fp.tolist() == [0, 1, 2]
    assert stats.fn.tolist() == [0, 1, 2]
    assert (stats.n_true, stats.n_pred) == (2, 2)
    assert stats.precision.tolist() == pytest.approx([1, 0.5, 0])
    assert stats.recall.tolist() == pytest.approx([1, 0.5, 0])
    assert stats.accuracy.tolist() == pytest.approx([1, 1 / 3, 0])
    assert stats.f1.tolist() == pytest.approx([1, 0.5, 0])
    assert stats.mean_matched_score.tolist() == pytest.approx([0.65, 0.8, 0])
    assert stats.mean_true_score.tolist() == pytest.approx([0.65, 0.4, 0])
    assert stats.panoptic_quality.tolist() == pytest.approx([0.65, 0.4, 0])


def test_summaries_by_hand():
    result = evaluate(GT, PRED)
    # F1 is 1 at IoU 0.50, 0.5 from 0.55 to 0.80, 0 above: (1 + 6 * 0.5) / 10.
    assert result.mean_average_f1 == pytest.approx(0.4)
    # Equal scores, ascending id order: pred 5 (IoU 0.8) then pred 7 (IoU 0.5).
    assert result.coco_ap50 == pytest.approx(1.0, abs=1e-12)
    assert result.coco_ap75 == pytest.approx(51 / 101, abs=1e-12)


def test_per_object_tables_by_hand():
    result = evaluate(GT, PRED, match_threshold=0.55)
    true, pred = result.true_objects, result.pred_objects
    assert result.match_threshold == 0.55
    assert true.ids.tolist() == [1, 2] and true.area.tolist() == [4, 4]
    assert true.best_iou.tolist() == pytest.approx([0.8, 0.5])
    assert true.best_id.tolist() == [5, 7]
    assert true.matched_id.tolist() == [5, 0]
    assert true.matched_iou.tolist() == pytest.approx([0.8, 0])
    assert pred.ids.tolist() == [5, 7] and pred.area.tolist() == [5, 2]
    assert pred.best_id.tolist() == [1, 2]
    assert pred.matched_id.tolist() == [1, 0]
    assert pred.matched.tolist() == [True, False]


def test_unmatched_objects_keep_their_ids():
    result = evaluate(GT, PRED, match_threshold=0.55)
    false_pos, false_neg = unmatched_objects(GT, PRED, result)
    assert np.array_equal(false_pos, np.where(PRED == 7, 7, 0))
    assert np.array_equal(false_neg, np.where(GT == 2, 2, 0))
    stack_gt, stack_pred = np.stack([GT, PRED]), np.stack([PRED, GT])
    stacked = evaluate(stack_gt, stack_pred, match_threshold=0.55, stack=True)
    false_pos, false_neg = unmatched_objects(stack_gt, stack_pred, stacked, stack=True)
    assert np.array_equal(false_pos[0], np.where(PRED == 7, 7, 0))
    assert np.array_equal(false_pos[1], np.where(GT == 2, 2, 0))
    assert np.array_equal(false_neg[1], np.where(PRED == 7, 7, 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64])
def test_any_integer_dtype_gives_the_same_result(real_labels, perturb, dtype):
    gt = real_labels["nuclei-dsb/mask2d.tif"]  # ids up to 183, not consecutive
    pred = perturb(gt, "split")
    reference = evaluate(gt, pred)
    gt_ids, pred_ids = np.unique(gt)[1:], np.unique(pred)[1:]
    # Squeeze ids into the dtype's range (uint8 holds at most 255 objects).
    small_gt = np.searchsorted(np.r_[0, gt_ids], gt).astype(dtype)
    small_pred = np.searchsorted(np.r_[0, pred_ids], pred).astype(dtype)
    result = evaluate(small_gt, small_pred)
    for name in ("tp", "fp", "fn", "sum_matched_score"):
        assert np.array_equal(getattr(result.matches, name), getattr(reference.matches, name))
    assert result.pixels == reference.pixels
    assert result.coco_ap == reference.coco_ap


def test_huge_and_sparse_ids(real_labels, perturb):
    gt = real_labels["usiigaci-phc/set7/instances_ids.png"]
    pred = perturb(gt, "mixed")
    reference = evaluate(gt, pred)
    # Ids far beyond any lookup table (uint64) and widely spaced (int32).
    huge = evaluate(
        np.where(gt > 0, gt.astype(np.uint64) * 2**40 + 3, 0),
        np.where(pred > 0, pred.astype(np.uint64) * 2**41 + 1, 0),
    )
    spaced = evaluate(np.where(gt > 0, gt.astype(np.int32) * 9973, 0), pred.astype(np.int32))
    for result in (huge, spaced):
        assert np.array_equal(result.matches.tp, reference.matches.tp)
        assert np.array_equal(result.matches.sum_matched_score, reference.matches.sum_matched_score)
        assert result.pixels == reference.pixels
    assert huge.true_objects.ids[:3].tolist() == [2**40 + 3, 2 * 2**40 + 3, 3 * 2**40 + 3]
    assert huge.true_objects.ids.dtype == np.uint64


def test_sparse_contingency_table_matches_dense(real_labels, perturb, monkeypatch):
    gt = real_labels["usiigaci-phc/set1/instances_ids.png"]
    pred = perturb(gt, "mixed")
    dense = evaluate(gt, pred)
    monkeypatch.setattr(core, "_DENSE_TABLE_LIMIT", 0)
    sparse = evaluate(gt, pred)
    assert np.array_equal(sparse.matches.tp, dense.matches.tp)
    assert np.array_equal(sparse.matches.sum_matched_score, dense.matches.sum_matched_score)
    assert sparse.pixels == dense.pixels
    assert np.array_equal(sparse.pred_objects.best_iou, dense.pred_objects.best_iou)


def test_whole_number_floats_and_booleans_are_labels():
    assert evaluate(GT.astype(np.float32), PRED).pixels.tp == 6
    assert evaluate(GT > 0, PRED > 0).matches.n_true == 1


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(
        LabelsError,
        match=r"ground truth has shape \(4, 4\) but prediction has "
        r"shape \(4, 3\)",
    ):
        evaluate(GT, PRED[:, :3])


def test_fractional_floats_are_a_clear_error():
    with pytest.raises(
        LabelsError,
        match=r"prediction holds fractional values .* not labels .*\(in napari, with the Segment",
    ):
        evaluate(GT, PRED * 0.5)


def test_nan_in_float_labels_is_said_as_such():
    """Ids saved as floats with a NaN hole were called fractional: an image or a
    probability map."""
    holed = PRED.astype(np.float32)
    holed[0, :2] = np.nan
    with pytest.raises(LabelsError, match=r"^prediction holds 2 NaN or infinite pixels \("):
        evaluate(GT, holed)
    holed[0, 1] = 0.5  # fractional as well: an image, NaN or not
    with pytest.raises(LabelsError, match="prediction holds fractional values"):
        evaluate(GT, holed)


def test_empty_and_negative_inputs_are_clear_errors():
    with pytest.raises(LabelsError, match="ground truth is empty"):
        evaluate(np.zeros((0, 4), int), np.zeros((0, 4), int))
    with pytest.raises(LabelsError, match="negative ids"):
        evaluate(GT, -PRED)


def test_thresholds_must_be_in_range():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        evaluate(GT, PRED, [0.0, 0.5])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        evaluate(GT, PRED, match_threshold=1.5)


def test_stack_scores_need_one_entry_per_frame():
    with pytest.raises(ValueError, match="scores for 1 frames but the stack has 2"):
        evaluate(np.stack([GT, GT]), np.stack([PRED, PRED]), scores=[[1, 1]], stack=True)


def test_a_stack_is_made_of_images_not_rows():
    assert GT.ndim == 2
    with pytest.raises(LabelsError, match="2-D or 3-D frames; got shape"):
        evaluate(GT, PRED, stack=True)


def test_core_does_not_import_qt():
    code = (
        "import sys, napari_cytomask.metrics; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', "
        "'PySide2', 'PySide6') or m.split('.')[0] == 'napari']; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unmatched_objects_of_a_stack_stay_in_their_frame():
    """An id unmatched in one frame must not be highlighted in another frame reusing it."""
    square = np.zeros((8, 8), np.uint16)
    square[1:4, 1:4] = 1
    elsewhere = np.zeros_like(square)
    elsewhere[5:8, 5:8] = 1
    # Frame 0: truth 1 and prediction 1 coincide; frame 1: they do not touch.
    gt = np.stack([square, square])
    pred = np.stack([square, elsewhere])
    result = evaluate(gt, pred, stack=True)
    assert result.true_objects.matched.tolist() == [True, False]
    assert result.pred_objects.matched.tolist() == [True, False]
    false_pos, false_neg = unmatched_objects(gt, pred, result, stack=True)
    assert not false_pos[0].any() and not false_neg[0].any()
    assert np.array_equal(false_pos[1], elsewhere)
    assert np.array_equal(false_neg[1], square)


def test_best_partner_is_the_one_with_the_highest_iou():
    """best_id/best_iou name the closest partner, not merely some overlapping one."""
    gt = np.zeros((2, 12), np.uint8)
    gt[:, 0:6] = 1
    gt[:, 6:12] = 2
    pred = np.zeros_like(gt)
    pred[:, 0:4] = 5
    pred[:, 4:12] = 7
    # Truth 1 overlaps pred 5 (IoU 8/12) and pred 7 (IoU 4/24);
    # pred 7 overlaps truth 1 (IoU 4/24) and truth 2 (IoU 12/16).
    result = evaluate(gt, pred)
    true, pred_table = result.true_objects, result.pred_objects
    assert true.ids.tolist() == [1, 2] and pred_table.ids.tolist() == [5, 7]
    assert true.best_id.tolist() == [5, 7]
    assert true.best_iou.tolist() == pytest.approx([8 / 12, 12 / 16])
    assert pred_table.best_id.tolist() == [1, 2]
    assert pred_table.best_iou.tolist() == pytest.approx([8 / 12, 12 / 16])


def test_iou_threshold_one_is_allowed_and_means_identical():
    """IoU 1.0 is a valid threshold (the range is (0, 1]): only identical objects match."""
    same = evaluate(GT, GT, [1.0], match_threshold=1.0)
    assert same.matches.tp.tolist() == [2]
    assert same.true_objects.matched.tolist() == [True, True]
    assert evaluate(GT, PRED, [0.5, 1.0]).matches.tp.tolist() == [2, 0]


def test_a_stack_of_positions_by_time_points_is_compared_plane_by_plane():
    """Only the first axis was split: each position's time points were compared as one
    volume, so a cell that keeps its id from one time point to the next (as tracked masks
    have it) was one object, and the counts were wrong."""
    rng = np.random.default_rng(3)
    gt = np.zeros((2, 3, 32, 32), np.uint16)
    for p, t in np.ndindex(2, 3):
        for cell in range(1, 4):  # the same ids at every time point, moving a little
            y, x = rng.integers(0, 24, 2)
            gt[p, t, y : y + 7, x : x + 7] = cell
    pred = gt.copy()
    pred[0, 1][pred[0, 1] == 2] = 0  # a cell missed at one time point
    pred[1, 2] = np.roll(pred[1, 2], 4, axis=1)  # poor outlines at another
    result = evaluate(gt, pred, stack=2)
    planes = [evaluate(gt[p, t], pred[p, t]) for p, t in np.ndindex(2, 3)]
    assert len(result.frames) == 6
    assert [(f.matches.tp[0], f.matches.fp[0], f.matches.fn[0]) for f in result.frames] == [
        (f.matches.tp[0], f.matches.fp[0], f.matches.fn[0]) for f in planes
    ]
    assert result.matches.n_true == sum(f.matches.n_true for f in planes)
    assert result.mean_segmentation_accuracy == pytest.approx(
        np.mean([f.mean_segmentation_accuracy for f in planes])
    )
    assert [result.frame_name(i) for i in range(6)] == ["0,0", "0,1", "0,2", "1,0", "1,1", "1,2"]
    false_pos, false_neg = unmatched_objects(gt, pred, result, stack=2)
    # In Fortran order (a MATLAB or Julia export) too: the frames are no views of it.
    fortran = unmatched_objects(np.asfortranarray(gt), np.asfortranarray(pred), result, stack=2)
    np.testing.assert_array_equal(fortran[0], false_pos)
    np.testing.assert_array_equal(fortran[1], false_neg)
    for p, t in np.ndindex(2, 3):
        fp, fn = unmatched_objects(gt[p, t], pred[p, t], planes[p * 3 + t])
        np.testing.assert_array_equal(false_pos[p, t], fp)
        np.testing.assert_array_equal(false_neg[p, t], fn)
    assert false_neg[0, 1].any() and not false_neg[0, 0].any()


def test_the_csv_leaves_out_the_frames_left_out_of_the_comparison():
    """A frame without ground truth is left out of the comparison (its prediction emptied),
    and the CSV wrote it as scores of 0 (F1 0, precision 0) among the real ones."""
    from skimage.measure import label

    from napari_cytomask.metrics.core import leave_out_frames
    from napari_cytomask.metrics.export import results_rows

    gt, pred = np.stack([GT, np.zeros_like(GT), GT]), np.stack([PRED, PRED, PRED])
    cells = len(np.unique(PRED[PRED > 0]))
    compared, _, uncounted = leave_out_frames(gt, pred, 1)
    assert compared.tolist() == [True, False, True]
    # A control field's debris no score counts: said (6 cells left F1 at 1.000, unsaid).
    assert cells > 0 and uncounted.tolist() == [0, cells, 0]
    # A binary mask's cells are its separate regions there too (they were counted as 1).
    binary = (np.stack([PRED, PRED]) > 0).astype(np.uint8)
    truth = np.stack([GT, np.zeros_like(GT)])
    regions = len(np.unique(label(PRED > 0, connectivity=1))) - 1
    assert regions > 1 and leave_out_frames(truth, binary, 1)[2].tolist() == [0, regions]
    rows = results_rows(evaluate(gt, pred, stack=True))
    f1 = {row[0]: row[5] for row in rows if row[4] == "f1" and row[2] == "object" and row[3] == 0.5}
    assert f1.keys() == {"all", "0", "2"} and f1["0"] == f1["2"] == f1["all"] > 0
    # The file says what its figures leave out: the frames without ground truth, with
    # the cells predicted there, which stardist's pooled matching counts as false
    # positives (the file said nothing of them); one where none was predicted too.
    nothing = np.zeros_like(GT)
    gt, pred = np.stack([GT, nothing, GT, nothing]), np.stack([PRED, PRED, PRED, nothing])
    _, unlabelled, uncounted = leave_out_frames(gt, pred, 1)
    rows = results_rows(evaluate(gt, pred, stack=True), None, unlabelled, uncounted)
    assert [row for row in rows if row[2] == "left_out"] == [
        ("all", "", "left_out", "", "frames", 2), ("all", "", "left_out", "", "n_pred", cells),
        ("1", "", "left_out", "", "n_pred", cells), ("3", "", "left_out", "", "n_pred", 0),
    ]  # fmt: skip


def test_a_binary_mask_compared_as_one_cell_is_said():
    """A 0/255 ground truth scored F1 0 as one cell from a script, where the metrics dock
    and `cytomask evaluate` take its regions as the cells (F1 0.71), and nothing said so."""
    import warnings

    from napari_cytomask.labels import regions_as_cells

    ids = np.zeros((2, 20, 20), np.uint16)
    ids[:, 2:8, 2:8], ids[:, 12:18, 12:18], ids[:, 2:8, 12:18] = 1, 2, 3
    mask = np.where(ids > 0, 255, 0).astype(np.uint8)
    with pytest.warns(
        UserWarning,
        match=r"ground truth holds one value \(255\) for every cell "
        r"over 3 separate regions, a binary mask, and is compared as one cell",
    ):
        assert evaluate(mask[0], ids[0], [0.5]).matches.f1[0] == 0  # fmt: skip
    with pytest.warns(UserWarning, match="prediction holds one value"):
        evaluate(ids, mask > 0, stack=1)
    # Its arguments are checked first: a stack of too many axes was said in skimage's words.
    with pytest.raises(LabelsError, match="a stack needs 2 frame axes and 2-D or 3-D frames"):
        evaluate(mask[0], ids[0], stack=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate(regions_as_cells(mask, 1)[0], ids, stack=1).matches.f1[0] == 1
        one = (ids[0] == 1).astype(np.uint8)  # one cell of id 1: labels, not a mask
        assert evaluate(one, one).matches.f1[0] == 1


def test_write_csv_given_its_arguments_the_other_way_round_says_so(tmp_path):
    """write_csv(path, evaluation), as write_labels(path, data) takes them, failed with
    "'PosixPath' object has no attribute 'matches'"."""
    from napari_cytomask.metrics.export import write_csv

    ids = np.zeros((8, 8), np.uint8)
    ids[2:6, 2:6] = 1
    said = r"write_csv takes the result of evaluate\(\) first, then the file to write; got "
    with pytest.raises(TypeError, match=said + r"PosixPath '.*scores.csv' first\."):
        write_csv(tmp_path / "scores.csv", evaluate(ids, ids))
    assert not (tmp_path / "scores.csv").exists()


def test_frames_of_several_axes_are_written_so_no_spreadsheet_reads_a_number(tmp_path):
    """A frame written "0,1" (position 0, time point 1) opened as the number 0.1 in a
    spreadsheet that writes decimals with a comma (German or French Excel, LibreOffice)."""
    from napari_cytomask.metrics.export import results_rows

    result = evaluate(np.stack([GT, GT, GT, GT]).reshape(2, 2, *GT.shape),
                      np.stack([PRED, PRED, GT, GT]).reshape(2, 2, *GT.shape), stack=2)  # fmt: skip
    named = [f"position {p}, time point {t}" for p in (0, 1) for t in (0, 1)]
    unnamed = [f"frame {p},{t}" for p in (0, 1) for t in (0, 1)]
    for axes, expected in ((("P", "T", "Y", "X"), named), (None, unnamed)):
        frames = list(dict.fromkeys(row[0] for row in results_rows(result, axis_labels=axes)))
        assert frames == ["all", *expected]
        for frame in frames:  # read with a decimal comma: no number
            with pytest.raises(ValueError):
                float(frame.replace(",", "."))
    # A stack of one axis keeps its frames' numbers.
    one = results_rows(evaluate(np.stack([GT, GT]), np.stack([PRED, GT]), stack=1))
    assert list(dict.fromkeys(row[0] for row in one)) == ["all", "0", "1"]


def test_the_csv_has_its_provenance_beside_it(tmp_path):
    """A metrics CSV said nothing of what it measured: which prediction and ground truth,
    made how, by which version, when. Its provenance goes beside it, as an export's does,
    and never over the provenance of labels exported under the same name."""
    import csv
    import json

    from napari_cytomask import own_version
    from napari_cytomask.metrics.export import provenance, write_csv

    result = evaluate(GT, PRED)
    pair = {"prediction": {"layer": "cells", "method": "unet"}, "ground_truth": {"layer": "gt"}}
    path = tmp_path / "scores.csv"
    record = provenance(path, [pair], {"match_threshold": 0.5})
    assert write_csv(result, path, record=record) == path
    with path.open(encoding="utf-8") as handle:  # the table as it was, first line its header
        assert next(csv.reader(handle))[0] == "frame"
    written = json.loads((tmp_path / "scores_provenance.json").read_text(encoding="utf-8"))
    assert written["outputs"] == ["scores.csv"] and written["pairs"] == [pair]
    assert written["settings"] == {"match_threshold": 0.5} and written["created"]
    assert written["versions"]["napari-cytomask"] == own_version()
    write_csv(result, path, record=record, overwrite=True)  # its own is replaced
    path.unlink()  # the table removed, its provenance left: a new table takes it
    write_csv(result, path, record=record)
    assert path.exists()
    # Labels exported as "cells" keep theirs: the table is not written.
    (tmp_path / "cells_provenance.json").write_text('{"layer": "cells"}', encoding="utf-8")
    with pytest.raises(FileExistsError, match="cells_provenance.json is there and describes"):
        write_csv(result, tmp_path / "cells.csv", record=record)
    assert not (tmp_path / "cells.csv").exists()
