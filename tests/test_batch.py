"""``cytomask segment`` on a real dask.distributed LocalCluster, on real phase-contrast images.

Also: an interrupted run that is resumed, a broken input among good ones,
chunk-wise OME-Zarr output, and ``evaluate``/``export`` on the results.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
import warnings

import numpy as np
import pytest
import tifffile
from skimage.io import imread

from napari_cytomask import batch, cli
from napari_cytomask.cli import main
from napari_cytomask.io.export import package_versions
from napari_cytomask.io.omezarr import open_image
from napari_cytomask.metrics import evaluate
from napari_cytomask.pipeline import Preset, Segmenter, UNetStep
from napari_cytomask.progress import drain

N_IMAGES = 6


@pytest.fixture(scope="module")
def unet_file(unet_checkpoint):
    return unet_checkpoint(tile_size=256, seed=4)


@pytest.fixture
def images(shared_data, tmp_path):
    """Real usiigaci phase-contrast images, one file per set."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(1, N_IMAGES + 1):
        shutil.copy(shared_data / "usiigaci-phc" / f"set{i}" / "raw.tif", folder / f"set{i}.tif")
    return folder


def _run(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "napari_cytomask.cli", "segment", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    )  # fmt: skip


def _finished(out):
    return sorted(p.name for p in out.glob("*_unet_cells.json"))


def test_interrupted_run_resumes_without_losing_or_redoing_work(images, unet_file, tmp_path):
    out = tmp_path / "out"
    args = [str(images), "-m", str(unet_file), "-o", str(out), "--workers", "2", "--threads", "1",
            "--device", "cpu", "--overlap", "32"]  # fmt: skip
    first = _run(args)
    deadline = time.monotonic() + 300
    while not _finished(out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "Finished results are kept" in err
    done = _finished(out)
    assert done  # at least one input finished before the interrupt
    assert len(done) < N_IMAGES  # and the interrupt stopped the run part-way
    kept = {}
    for name in done:
        record = json.loads((out / name).read_text())
        labels = tifffile.imread(out / record["output"])  # complete, readable
        assert labels.shape == (1022, 1024) and labels.max() == record["cells"]
        kept[name] = (out / record["output"]).stat().st_mtime_ns

    second = _run(args)
    stdout, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert f"{len(done)} of {N_IMAGES} input(s) already segmented" in stdout
    assert len(_finished(out)) == N_IMAGES
    for name, mtime in kept.items():  # finished work was not redone
        record = json.loads((out / name).read_text())
        assert (out / record["output"]).stat().st_mtime_ns == mtime
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "leftover partial files"

    # The cluster's results equal the same pipeline run in this process.
    segmenter = Segmenter(Preset(unet=UNetStep(model=str(unet_file), overlap=32)), "cpu")
    expected = drain(segmenter.iter_segment([tifffile.imread(images / "set3.tif")]))
    np.testing.assert_array_equal(tifffile.imread(out / "set3_unet_cells.tif"), expected)
    record = json.loads((out / "set3_unet_cells.json").read_text())
    assert record["source"] == str(images / "set3.tif")
    assert record["versions"]["distributed"] and record["options"]["fmt"] == "tiff"
    # The same packages as a result made in the dock records (napari was left out here).
    assert record["versions"].keys() == package_versions().keys()
    assert record["versions"]["napari"]


def test_a_broken_input_fails_alone(images, unet_file, tmp_path, capsys, monkeypatch):
    """... and the workers' progress within each image reaches the command line."""
    monkeypatch.setattr(cli, "_PROGRESS_EVERY", 0.0)  # every event the workers send is said
    (images / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    for extra in images.glob("set[3-9].tif"):
        extra.unlink()
    out = tmp_path / "out"
    code = main(["segment", str(images), "-m", str(unet_file), "-o", str(out), "--workers", "1",
                 "--threads", "1", "--device", "cpu"])  # fmt: skip
    said = capsys.readouterr()
    assert code == 1
    assert "broken.tif: error:" in said.err and "1 of 3 inputs failed" in said.err
    assert _finished(out) == ["set1_unet_cells.json", "set2_unet_cells.json"]
    for name in ("set1.tif", "set2.tif"):
        assert re.search(rf"^  {re.escape(str(images / name))}: Predicting tiles: \d+ of \d+",
                         said.out, re.MULTILINE), said.out  # fmt: skip
    # One input alone: there are no others to be done.
    code = main(["segment", str(images / "broken.tif"), "-m", str(unet_file), "-o", str(out),
                 "--scheduler", "synchronous", "--device", "cpu"])  # fmt: skip
    said = capsys.readouterr().err
    assert code == 1 and "the input failed (see above); fix it and run" in said
    assert "the others" not in said
    # Every input failed: nor then ("2 of 2 inputs failed; the others are done").
    (images / "broken2.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    code = main(["segment", str(images / "broken*.tif"), "-m", str(unet_file), "-o", str(out),
                 "--scheduler", "synchronous", "--device", "cpu"])  # fmt: skip
    said = capsys.readouterr().err
    assert code == 1 and "all 2 inputs failed (see above); fix them and run the same" in said
    assert "the others" not in said


def test_file_names_with_dots_keep_them_in_their_outputs(shared_data, unet_file, tmp_path, capsys):
    """'a.day1.tif' and 'a.day2.tif' were both to write 'a_unet_cells', and were refused;
    export then looks for the provenance of 'a.day1_unet_cells.tif' under the same name."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:128, :128]
    for day in (1, 2):
        tifffile.imwrite(data / f"a.day{day}.ome.tif", raw)
    code = main(["segment", str(data), "-m", str(unet_file), "-o", str(out), "--scheduler",
                 "synchronous", "--threads", "1", "--tile-size", "128",
                 "--overlap", "16"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert _finished(out) == ["a.day1_unet_cells.json", "a.day2_unet_cells.json"]
    exports = tmp_path / "exports"
    assert main(["export", str(out / "a.day1_unet_cells.tif"), "-o", str(exports)]) == 0
    provenance = json.loads((exports / "a.day1_unet_cells_provenance.json").read_text())
    assert provenance["source"] == str(data / "a.day1.ome.tif")


def test_chunked_ome_zarr_then_evaluate_and_export(
    shared_data, images, unet_file, oracle_unet, class_map_image, tmp_path
):
    truth = imread(shared_data / "usiigaci-phc" / "set1" / "instances_ids.png")
    tifffile.imwrite(images / "set1.tif", class_map_image(truth))
    out = tmp_path / "out"
    # An image drawn from labels looks like labels to the reader: --channel says it is the
    # image to segment.
    base = ["segment", str(images / "set1.tif"), "-m", str(unet_file), "--threads", "1",
            "--scheduler", "synchronous", "--overlap", "32", "--channel", "0"]  # fmt: skip
    assert main([*base, "-o", str(out / "whole")]) == 0
    assert main([*base, "-o", str(out / "chunked"), "--chunked-above", "0.25",
                 "--chunk-size", "256"]) == 0  # fmt: skip
    whole = tifffile.imread(out / "whole" / "set1_unet_cells.tif")
    store = out / "chunked" / "set1_unet_cells.ome.zarr"
    attrs = json.loads((store / ".zattrs").read_text())
    assert attrs["multiscales"][0]["axes"][-1] == {"name": "x", "type": "space"}
    assert open_image(store).array.chunks == (256, 256)
    chunked = np.asarray(open_image(store).array)
    # The same cells, numbered differently (every cell is smaller than the window overlap).
    pairs = set(zip(whole.ravel().tolist(), chunked.ravel().tolist(), strict=True))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}) > 50
    assert sorted(p.name for p in store.iterdir()) == [".zattrs", ".zgroup", "0"]
    # Opened in napari, the store is the result of its scan (too large to fingerprint, its
    # record keeps none: it opened as a mask of its own).
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    ((_, kwargs, kind),) = get_reader(str(store))(str(store))
    assert kind == "labels" and kwargs["metadata"][METADATA_KEY]["role"] == RESULT_ROLE
    assert kwargs["metadata"][METADATA_KEY]["source"] == str(images / "set1.tif")

    # evaluate: predictions against the hand-drawn labels, paired by wildcard.
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    shutil.copy(shared_data / "usiigaci-phc" / "set1" / "instances_ids.png", gt_dir / "set1.png")
    csv_path = tmp_path / "metrics.csv"
    code = main(["evaluate", "--pred", str(out / "chunked" / "set*_unet_cells.ome.zarr"),
                 "--gt", str(gt_dir / "set*.png"), "-o", str(csv_path), "-q"])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(csv_path.open()))
    expected = evaluate(truth, chunked, [0.5, 0.75, 0.9])
    assert expected.matches.f1[0] > 0.8
    f1 = [r for r in rows if r["metric"] == "f1" and r["iou_threshold"] == "0.5"]
    assert {r["prediction"] for r in f1} == {str(store), "all"}
    assert float(f1[0]["value"]) == pytest.approx(expected.matches.f1[0])

    # export: formats, tables with the intensities of the source scan, and provenance.
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")
    tifffile.imwrite(images / "set1.tif", raw)  # a phase image in place of the class map
    export_dir = tmp_path / "export"
    code = main(["export", str(store), "-o", str(export_dir), "--format", "png", "npy",
                 "--coco"])  # fmt: skip
    assert code == 0
    np.testing.assert_array_equal(np.load(export_dir / "set1_unet_cells.npy"), chunked)
    np.testing.assert_array_equal(imread(export_dir / "set1_unet_cells.png"), chunked)
    objects = list(csv.DictReader((export_dir / "set1_unet_cells_objects.csv").open()))
    assert len(objects) == len(np.unique(chunked)) - 1
    first = int(objects[0]["label"])
    assert float(objects[0]["mean_intensity"]) == pytest.approx(raw[chunked == first].mean())
    provenance = json.loads((export_dir / "set1_unet_cells_provenance.json").read_text())
    assert provenance["source"] == str(images / "set1.tif")
    coco = json.loads((export_dir / "set1_unet_cells_coco.json").read_text())
    assert len(coco["annotations"]) == len(objects)
    assert provenance["parameters"]["method"] == "unet"


def _segment_sets(data, unet_file, out, *options) -> list[str]:
    """``cytomask segment`` of :func:`_small_copies`' images into ``out``, in small tiles,
    in this process."""
    return ["segment", str(data / "set*" / "raw.tif"), "-m", str(unet_file), "-o", str(out),
            "--scheduler", "synchronous", "--threads", "1", "--tile-size", "128", "--overlap",
            "16", *options]  # fmt: skip


def _small_copies(shared_data, folder, n=2):
    """``folder/setN/raw.tif``: 256² crops of real images in usiigaci's own layout."""
    for i in range(1, n + 1):
        (folder / f"set{i}").mkdir(parents=True)
        raw = tifffile.imread(shared_data / "usiigaci-phc" / f"set{i}" / "raw.tif")
        tifffile.imwrite(folder / f"set{i}" / "raw.tif", raw[:256, :256])


def test_outputs_keep_the_inputs_folders(shared_data, unet_file, tmp_path, capsys, monkeypatch):
    """Every set's raw.tif gets its own folder under -o instead of colliding; the
    progress within each image is said, with the time left once it is timed."""
    monkeypatch.setattr(cli, "_PROGRESS_EVERY", 0.0)
    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data)
    code = main(_segment_sets(data, unet_file, out))
    assert code == 0
    said = capsys.readouterr().out
    raw = re.escape(str(data / "set2" / "raw.tif"))
    assert re.search(rf"^  {raw}: Predicting tiles: 0 of 9$", said, re.MULTILINE)  # 3 × 3 tiles
    assert re.search(rf"^  {raw}: Predicting tiles: 1 of 9; about \d+ s left$", said, re.MULTILINE)
    for i in (1, 2):
        record = json.loads((out / f"set{i}" / "raw_unet_cells.json").read_text())
        assert record["source"] == str(data / f"set{i}" / "raw.tif")
        assert tifffile.imread(out / f"set{i}" / "raw_unet_cells.tif").shape == (256, 256)


def test_the_progress_says_an_image_is_enlarged_for_the_model(shared_data, tmp_path, capsys,
                                                             monkeypatch):  # fmt: skip
    """An image of 2 µm pixels is enlarged to 5 times its pixels for the starter model's
    0.87 µm: the progress lines the workers send say so, and why it takes longer."""
    monkeypatch.setattr(cli, "_PROGRESS_EVERY", 0.0)
    data = tmp_path / "coarse.tif"
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:96, :96]
    tifffile.imwrite(data, raw, imagej=True, resolution=(0.5, 0.5), metadata={"unit": "um"})
    code = main(["segment", str(data), "-o", str(tmp_path / "out"), "--workers", "1",
                 "--threads", "1", "--device", "cpu", "--no-tta"])  # fmt: skip
    assert code == 0
    said = capsys.readouterr().out
    assert re.search(
        rf"^  {re.escape(str(data))}: Predicting tiles \(the image enlarged to 5× its pixels "
        r"for the model's pixel size: 5 times as long\): 0 of 1$",
        said,
        re.MULTILINE,
    ), said


def test_a_run_stopped_between_an_inputs_two_files_is_finished_by_the_next(
    shared_data, unet_file, tmp_path, capsys, monkeypatch
):
    """Killed after it wrote an input's labels but before their record, a run left a file
    the next run took for the user's own: it refused every input. Whichever of the two
    files is written first, the next run now finishes the input."""
    from napari_cytomask.io import writers

    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)
    command = _segment_sets(data, unet_file, out)
    written = []

    def stopping(write):
        def stop_at_the_second(*args, **kwargs):
            written.append(write.__name__)
            if len(written) == 2:
                raise SystemExit("killed")  # not an error the run could report
            return write(*args, **kwargs)

        return stop_at_the_second

    with monkeypatch.context() as killed:
        killed.setattr(batch, "write_json", stopping(batch.write_json))
        killed.setattr(writers, "write_labels", stopping(writers.write_labels))
        with pytest.raises(SystemExit):
            main(command)
    assert len(written) == 2
    assert main(command) == 0, capsys.readouterr().err
    record = json.loads((out / "set1" / "raw_unet_cells.json").read_text())
    labels = tifffile.imread(out / "set1" / "raw_unet_cells.tif")
    assert record["cells"] == labels.max() > 0


def _killed(*args, **kwargs):
    raise SystemExit("killed")  # not an error the run could report


def _filled_then_killed():
    """``write_directory_atomically`` killed once its folder is filled, before it is moved in."""
    move_in = batch.write_directory_atomically
    return lambda path, fill, **kwargs: move_in(
        path, lambda folder: (fill(folder), _killed()), **kwargs
    )


@pytest.mark.parametrize(
    "earlier, stop",
    [(False, "counting the cells"), (True, "moving the labels in")],
    ids=["first-run", "format-changed"],
)
def test_a_chunked_run_stopped_before_its_labels_are_in_place_is_finished_by_the_next(
    earlier, stop, shared_data, unet_file, tmp_path, capsys, monkeypatch
):
    """OME-Zarr labels were moved in before their record was written: a run killed while it
    counted their cells left labels the next run took for the user's own. Now the record
    comes first; and a record whose labels are missing is not finished even when labels
    of the format it replaced are still beside it."""
    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)
    command = _segment_sets(data, unet_file, out)
    if earlier:
        assert main(command) == 0
    command += ["--format", "ome-zarr"]

    with monkeypatch.context() as patch:
        if stop == "counting the cells":
            patch.setattr(batch, "_cell_count", _killed)
        else:
            patch.setattr(batch, "write_directory_atomically", _filled_then_killed())
        with pytest.raises(SystemExit):
            main([*command, "--overwrite"] if earlier else command)
    assert main(command) == 0, capsys.readouterr().err
    store = out / "set1" / "raw_unet_cells.ome.zarr"
    record = json.loads((out / "set1" / "raw_unet_cells.json").read_text())
    assert record["output"] == store.name
    assert record["cells"] == np.asarray(open_image(store).array).max() > 0
    assert not (out / "set1" / "raw_unet_cells.tif").exists()  # replaced by the store


def test_a_run_with_other_settings_stopped_before_its_labels_is_redone(
    shared_data, unet_file, tmp_path, capsys, monkeypatch
):
    """Redone with other settings and stopped while its labels were written, a run left the
    new settings' record beside the old labels: the next run with those settings took them
    for its own and skipped the input."""
    from napari_cytomask.io import writers

    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)
    command = _segment_sets(data, unet_file, out)
    assert main([*command, "--min-size", "0"]) == 0
    record, labels = out / "set1" / "raw_unet_cells.json", out / "set1" / "raw_unet_cells.tif"
    small = tifffile.imread(labels)

    with monkeypatch.context() as patch:
        patch.setattr(writers, "write_labels", _killed)
        with pytest.raises(SystemExit):
            main([*command, "--min-size", "400", "--overwrite"])
    np.testing.assert_array_equal(tifffile.imread(labels), small)  # as they were
    capsys.readouterr()
    assert main([*command, "--min-size", "400"]) == 0
    assert "skipped" not in capsys.readouterr().err
    made = json.loads(record.read_text())
    assert made["finished"] and made["preset"]["unet"]["min_size"] == 400
    assert made["cells"] == tifffile.imread(labels).max()


@pytest.mark.parametrize("moved_in", [False, True], ids=["before-the-move", "after-the-move"])
@pytest.mark.parametrize("fmt", ["tiff", "ome-zarr"])
def test_labels_a_killed_run_did_not_replace_keep_their_record(
    fmt, moved_in, shared_data, unet_file, tmp_path, monkeypatch
):
    """Ctrl+C during `segment --overwrite` (which stops a cluster's workers) left the input
    under way with the new run's record, unfinished, beside its earlier labels: an export,
    or napari, took them for labels of their own. The earlier run's record now describes
    them until they are replaced; labels of the new run moved in as it was killed are not
    described by it."""
    from napari_cytomask.io import writers
    from napari_cytomask.io.export import describes, segment_record

    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)
    command = _segment_sets(data, unet_file, out, "--format", fmt)
    assert main([*command, "--min-size", "0"]) == 0  # one cell; none of 70,000 pixels
    labels = (
        out / "set1" / ("raw_unet_cells.ome.zarr" if fmt == "ome-zarr" else "raw_unet_cells.tif")
    )

    def then_killed(write):
        return lambda *args, **kwargs: (write(*args, **kwargs), _killed())

    def stopped(min_size: str, moved_in: bool) -> None:
        """`--overwrite` killed before its labels are moved in, or just after."""
        with monkeypatch.context() as patch:
            if fmt == "tiff":
                killed = then_killed(writers.write_labels) if moved_in else _killed
                patch.setattr(writers, "write_labels", killed)
            elif moved_in:
                killed = then_killed(batch.write_directory_atomically)
                patch.setattr(batch, "write_directory_atomically", killed)
            else:
                patch.setattr(batch, "write_directory_atomically", _filled_then_killed())
            with pytest.raises(SystemExit):
                main([*command, "--min-size", min_size, "--overwrite"])

    stopped("70000", moved_in)
    record = json.loads((out / "set1" / "raw_unet_cells.json").read_text())
    assert record["finished"] is False and record["preset"]["unet"]["min_size"] == 70000
    found = segment_record(labels)
    ids = np.asarray(open_image(labels).array) if fmt == "ome-zarr" else tifffile.imread(labels)
    if not moved_in:  # the earlier run's labels, described by its record
        assert found["finished"] and found["preset"]["unet"]["min_size"] == 0
        assert describes(found, ids) and found["cells"] == len(np.unique(ids[ids > 0])) == 1
        # Stopped so again, it keeps the finished run's record, not the stopped one's.
        stopped("60000", moved_in=False)
        assert segment_record(labels)["preset"]["unet"]["min_size"] == 0
    elif fmt == "tiff":  # the new run's: the earlier record's fingerprint is not theirs
        assert found["preset"]["unet"]["min_size"] == 0 and not describes(found, ids)
    else:  # the new run's store, which its own record names
        assert found["finished"] is False and found["preset"]["unet"]["min_size"] == 70000


def test_a_record_names_only_its_own_labels(tmp_path):
    """A hand-edited record that named the scan among the labels it replaces had the next
    run delete the scan."""
    source = tmp_path / "crop.tif"
    tifffile.imwrite(source, np.zeros((8, 8), np.uint8))
    preset = Preset(unet=UNetStep(model=str(tmp_path / "model.safetensors")))
    (job,), _, _ = batch.plan([source], preset, None, batch.Options())
    tifffile.imwrite(job.labels, np.ones((8, 8), np.uint8))
    for replaces in (["crop.tif"], ["../crop.tif"], "crop_unet_cells.ome.tif"):
        job.record.write_text(json.dumps({"output": job.labels.name, "replaces": replaces}))
        assert batch._recorded_labels(job.record, batch._parsed(job.record.read_bytes())) == []
    job.record.write_text(json.dumps({"output": job.labels.name,
                                      "replaces": ["crop_unet_cells.ome.tif"]}))  # fmt: skip
    assert batch._recorded_labels(job.record, batch._parsed(job.record.read_bytes())) == [
        job.labels, tmp_path / "crop_unet_cells.ome.tif"]  # fmt: skip


def test_labels_that_cannot_be_written_leave_the_earlier_record(
    shared_data, unet_file, tmp_path, capsys, monkeypatch
):
    """Redone with --overwrite, an input whose labels cannot be written (a full disk) keeps
    its earlier labels and their record: the record is written first now, and put back."""
    from napari_cytomask.io import writers

    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)
    command = _segment_sets(data, unet_file, out)
    assert main(command) == 0
    record, labels = out / "set1" / "raw_unet_cells.json", out / "set1" / "raw_unet_cells.tif"
    before = (record.read_bytes(), labels.read_bytes())

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "write_labels", full_disk)
    assert main([*command, "--overwrite", "--tile-size", "256"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert (record.read_bytes(), labels.read_bytes()) == before


def test_a_full_disk_stops_the_run_at_the_first_input_it_fails(
    shared_data, unet_file, tmp_path, capsys, monkeypatch
):
    """Each input after the first that found the output disk full (or read-only) would fail
    the same way, after its segmentation: the run stops there and says how many it left."""
    from napari_cytomask.io import writers

    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=3)
    tried = []

    def full_disk(*args, **kwargs):
        tried.append(args)
        raise batch.WriteError(28, "Could not save it: the disk is full. Nothing was written")

    monkeypatch.setattr(writers, "write_labels", full_disk)
    command = _segment_sets(data, unet_file, out)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert len(tried) == 1
    assert "[1/3]" in err and "the disk is full" in err and "[2/3]" not in err
    assert "stopped at the error above, which every input left would meet too: 2 not tried; " \
        "the 0 done are kept." in err  # fmt: skip


def test_a_record_that_cannot_mark_written_labels_finished_says_they_were_written(
    shared_data, unet_file, tmp_path, capsys, monkeypatch
):
    """The disk full as the record was marked finished, after the labels were written:
    "Could not save raw_unet_cells.json: the disk is full. Nothing was written", of the
    record alone."""
    from napari_cytomask.io.atomic import write_json

    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)

    def full_when_finished(path, record, **kwargs):
        if record["finished"]:
            raise batch.WriteError(28, f"Could not save {path}: the disk is full. Nothing ...")
        write_json(path, record, **kwargs)

    monkeypatch.setattr(batch, "write_json", full_when_finished)
    command = _segment_sets(data, unet_file, out)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert (
        f"{out / 'set1' / 'raw_unet_cells.tif'} was written, but its record raw_unet_cells.json, "
        "which "
        "marks it finished, could not be: the disk is full. Run the same command again once "
        "that is mended: it segments raw.tif again."
    ) in err
    assert "Nothing" not in err
    assert not json.loads((out / "set1" / "raw_unet_cells.json").read_text())["finished"]


def test_a_second_writer_into_the_same_folder_is_refused(shared_data, unet_file, tmp_path, capsys):
    """A segment run, or an export, into a folder a segment run is filling is refused:
    each would take the other's outputs for its own, or replace them."""
    data, out = tmp_path / "data", tmp_path / "out"
    _small_copies(shared_data, data, n=1)
    labels = tmp_path / "cells.tif"
    tifffile.imwrite(labels, np.kron(np.arange(4, dtype=np.uint8).reshape(2, 2), np.ones((8, 8))))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from napari_cytomask.io.atomic import locked_folders\n"
         "with locked_folders([Path(sys.argv[1])], \"'cytomask segment'\"):\n"
         "    print('locked', flush=True)\n    time.sleep(120)\n", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    argv = ["segment", str(data / "set1" / "raw.tif"), "-m", str(unet_file), "-o", str(out),
            "--scheduler", "synchronous", "--threads", "1", "-q"]  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"'cytomask segment' (pid {holder.pid} on" in err
        assert "is writing into" in err and not list(out.glob("*_cells.*"))
        assert main(["export", str(labels), "-o", str(out), "-q"]) == 1
        err = capsys.readouterr().err
        assert f"cytomask export: error: 'cytomask segment' (pid {holder.pid} on" in err
        assert not list(out.glob("cells*"))
        # Reading from the folder the run fills goes on, with a note.
        inside = out / "earlier_cells.tif"
        inside.write_bytes(labels.read_bytes())
        assert main(["export", str(inside), "-o", str(tmp_path / "exp"), "-q"]) == 0
        err = capsys.readouterr().err
        assert f"cytomask: note: 'cytomask segment' (pid {holder.pid} on" in err
        assert "is still writing into" in err
        inside.unlink()
    finally:
        holder.kill()
        holder.wait()
    # A killed run leaves no lock behind, and a finished run or export removes its lock file.
    assert main(argv) == 0
    assert main(["export", str(labels), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "cells.tif", "cells_counts.csv", "cells_objects.csv", "cells_provenance.json",
        "raw_unet_cells.json", "raw_unet_cells.tif",
    ]  # fmt: skip


def test_no_dashboard_port_warning_and_no_negative_worker_count(images, unet_file, tmp_path):
    """A cluster beside another one (port 8787 taken) starts without a warning; -1
    workers is refused instead of waiting forever for none."""
    import socket
    import warnings

    from napari_cytomask import batch

    for extra in images.glob("set[2-9].tif"):
        extra.unlink()
    with pytest.raises(batch.BatchError, match="workers must be 0"):
        batch.run([], Preset(unet=UNetStep(model=str(unet_file))), batch.Options(), workers=-1)
    with socket.socket() as taken, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # another program already holds the port: just as good
        code = main(["segment", str(images), "-m", str(unet_file), "-o", str(tmp_path / "out"),
                     "--workers", "1", "--threads", "1", "--device", "cpu", "-q"])  # fmt: skip
    assert code == 0
    assert not [w for w in caught if "already in use" in str(w.message)]


def test_inputs_on_two_drives_are_refused_in_words(tmp_path, monkeypatch):
    """On Windows, inputs on C: and D: with -o stopped with Python's "Paths don't have the
    same drive" (os.path.commonpath's, simulated here)."""
    from napari_cytomask import batch

    def two_drives(paths):
        raise ValueError("Paths don't have the same drive")

    monkeypatch.setattr(batch.os.path, "commonpath", two_drives)
    sources = [tmp_path / "a" / "scan.tif", tmp_path / "b" / "scan.tif"]
    with pytest.raises(batch.BatchError, match="the inputs lie on different drives .*: "
                       "segment each drive's inputs in a run of its own"):  # fmt: skip
        batch.output_folders(sources, tmp_path / "out")


def test_inputs_named_alike_but_for_case_are_refused_on_a_disk_that_ignores_case(
    tmp_path, monkeypatch
):
    """Day1/Pos0.tif and day1/pos0.tif, copied from a Linux disk, into one output folder:
    on a disk of Windows or macOS their results are one file, the second written over the
    first."""
    from napari_cytomask import batch

    sources = [tmp_path / "Day1" / "Pos0.tif", tmp_path / "day1" / "pos0.tif"]
    for source in sources:
        source.parent.mkdir()
        tifffile.imwrite(source, np.zeros((8, 8), np.uint8))
    preset = Preset(unet=UNetStep(model=str(tmp_path / "model.safetensors")))
    out = tmp_path / "out"
    todo, _, _ = batch.plan(sources, preset, out, batch.Options())  # this disk: two
    assert [job.labels.name for job in todo] == ["Pos0_unet_cells.tif", "pos0_unet_cells.tif"]
    monkeypatch.setattr(batch, "ignores_case", lambda folder: True)
    with pytest.raises(
        batch.BatchError,
        match="Pos0.tif and .*pos0.tif would both write "
        "pos0_unet_cells.json on this disk, which ignores case; rename one",
    ):
        batch.plan(sources, preset, out, batch.Options())


def test_a_record_whose_labels_were_deleted_is_not_finished(tmp_path):
    """Without it, a provenance record alone could count as a finished job, so a re-run
    would skip an input whose labels are gone."""
    from napari_cytomask import batch

    source = tmp_path / "set1.tif"
    tifffile.imwrite(source, np.zeros((8, 8), np.uint8))
    preset = Preset(unet=UNetStep(model=str(tmp_path / "model.safetensors")))
    todo, done, _ = batch.plan([source], preset, None, batch.Options())
    assert [job.source for job in todo] == [source] and not done
    job = todo[0]
    assert not job.finished()  # neither output yet
    tifffile.imwrite(job.labels, np.ones((8, 8), np.uint8))
    assert not job.finished()  # labels without a record: an interrupted run
    job.record.write_text(json.dumps({"preset": preset.to_dict(), "output": job.labels.name}))
    assert job.finished()
    assert batch.plan([source], preset, None, batch.Options()) == ([], [job], {})
    job.labels.unlink()
    assert not job.finished()  # the record alone: the labels must be made again
    assert batch.plan([source], preset, None, batch.Options()) == ([job], [], {})
    # Labels in another format than the record names: a run that changed the format and
    # was stopped before its labels were in place.
    other = job.record.with_name(job.record.stem + ".ome.tif")
    tifffile.imwrite(other, np.ones((8, 8), np.uint8))
    assert not job.finished()
    # Labels in another format than this run's, named by their record, count.
    job.record.write_text(json.dumps({"preset": preset.to_dict(), "output": other.name}))
    assert job.finished()
    # A record that names a file elsewhere, or none, is not ours to trust.
    for output in (f"../{tmp_path.name}/{other.name}", "", None):
        job.record.write_text(json.dumps({"preset": preset.to_dict(), "output": output}))
        assert not job.finished()


@pytest.mark.parametrize(
    ("content", "why"),
    [("{", "it is no JSON: "), ('{"options": [1]}', "its 'options' is [1]"),
     ('{"preset": 3}', "its 'preset' is 3"), ('{"output": 5}', "its 'output' is 5")],
    ids=["no JSON", "options", "preset", "output"],
)  # fmt: skip
def test_a_damaged_record_is_not_taken_for_none(tmp_path, content, why):
    """A record of other kinds of entries (found by changing them) stopped a rerun with
    Python's TypeError or AttributeError; one that was no JSON was taken for no record, and
    the labels beside it were made again over those there, without --overwrite."""
    from napari_cytomask import batch

    source = tmp_path / "set1.tif"
    tifffile.imwrite(source, np.zeros((8, 8), np.uint8))
    preset = Preset(unet=UNetStep(model=str(tmp_path / "model.safetensors")))
    (job,), _, _ = batch.plan([source], preset, None, batch.Options())
    tifffile.imwrite(job.labels, np.ones((8, 8), np.uint8))
    job.record.write_text(content)
    _, _, refused = batch.plan([source], preset, None, batch.Options())
    assert refused[source].startswith(f"{job.record} is damaged ({why}")
    assert refused[source].endswith(
        "so it cannot say how the labels beside it were made; pass --overwrite to segment "
        "set1.tif again, or move it aside."
    )
    assert batch.plan([source], preset, None, batch.Options(overwrite=True)) == ([job], [], {})


def test_a_store_is_another_formats_labels_unless_the_run_would_make_one_too(tmp_path):
    """segment --format ome-tiff (or tiff) after --format ome-zarr wrote nothing and said
    the input was "already segmented with these settings; skipped", though no TIFF was
    there: any OME-Zarr store was taken for that of an image too large to process whole,
    which every format writes so. A change of format is refused as tiff to ome-tiff is."""
    source = tmp_path / "scan.tif"
    tifffile.imwrite(source, np.zeros((8, 8), np.uint8))
    preset = Preset(unet=UNetStep(model=str(tmp_path / "model.safetensors")))
    zarr = batch.Options(fmt="ome-zarr")
    (job,), _, _ = batch.plan([source], preset, None, zarr)
    job.labels.mkdir()  # the store
    made = {"preset": preset.to_dict(), "output": job.labels.name, "shape": [8, 8]}
    job.record.write_text(json.dumps(made))
    assert batch.plan([source], preset, None, zarr) == ([], [job], {})
    for fmt, suffix in (("ome-tiff", ".ome.tif"), ("tiff", ".tif")):
        _, _, refused = batch.plan([source], preset, None, batch.Options(fmt=fmt))
        assert refused[source] == (
            f"{job.record} describes scan_unet_cells.ome.zarr, made in another format; pass "
            f"--overwrite to make scan_unet_cells{suffix} instead (scan_unet_cells.ome.zarr is "
            "then deleted, and the record describes the new file), or choose another "
            "--output-dir."
        )
    # Frames larger than chunk-wise processing starts at: a TIFF run makes the store too.
    todo, done, _ = batch.plan([source], preset, None, batch.Options(chunked_above=63))
    assert not todo and [d.record for d in done] == [job.record]
    # A record edited by hand, without the image's shape: the format asked for decides.
    job.record.write_text(json.dumps({k: v for k, v in made.items() if k != "shape"}))
    assert batch.plan([source], preset, None, zarr) == ([], [job], {})
    assert (
        "made in another format"
        in batch.plan([source], preset, None, batch.Options(fmt="tiff"))[2][source]
    )


def _segment_into(out, unet_file):
    """``cytomask segment INPUT -o out [more]`` of a small image: ``run(INPUT, *more)``."""

    def run(source, *more):
        return main(["segment", str(source), "-m", str(unet_file), "-o", str(out), "--scheduler",
                     "synchronous", "--threads", "1", "--tile-size", "64", "--overlap", "16",
                     *more])  # fmt: skip

    return run


def test_a_rerun_never_takes_another_inputs_results_for_its_own(
    shared_data, unet_file, tmp_path, capsys
):
    """day1/Pos0.tif segmented into a folder, then day2/Pos0.tif (another image) into the
    same one, was skipped as already segmented with these settings, day1's cells standing
    as its results; with --overwrite they were replaced without a word."""
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")
    for day, crop in (("day1", raw[:64, :64]), ("day2", raw[64:128, :64])):
        (tmp_path / day).mkdir()
        tifffile.imwrite(tmp_path / day / "Pos0.tif", crop)
    out = tmp_path / "results"
    segment = _segment_into(out, unet_file)
    assert segment(tmp_path / "day1") == 0, capsys.readouterr().err
    record, labels = out / "Pos0_unet_cells.json", out / "Pos0_unet_cells.tif"
    before = record.read_bytes(), labels.read_bytes()
    capsys.readouterr()
    for overwrite in ([], ["--overwrite"]):
        assert segment(tmp_path / "day2", *overwrite) == 1
        err = capsys.readouterr().err
        assert (
            f"{record} holds the results of {tmp_path / 'day1' / 'Pos0.tif'}, not of "
            f"{tmp_path / 'day2' / 'Pos0.tif'} (a file of the same name); segment Pos0.tif "
            "into another --output-dir, or rename it" in err
        ), err
        assert (record.read_bytes(), labels.read_bytes()) == before
    # The same file by another path is the same input.
    (tmp_path / "link").symlink_to(tmp_path / "day1")
    assert segment(tmp_path / "link" / "Pos0.tif") == 0, capsys.readouterr().err
    assert "1 of 1 input(s) already segmented" in capsys.readouterr().out
    # So is a scan moved together with its results, copied keeping its time or not (cp -r
    # gives every file the time it was copied: here one long ago).
    for moved, copy in ((tmp_path / "shared", shutil.copy2), (tmp_path / "cp", shutil.copy)):
        shutil.copytree(tmp_path / "day1", moved / "day1", copy_function=copy)
        shutil.copytree(out, moved / "results", copy_function=copy)
        if copy is shutil.copy:
            os.utime(moved / "day1" / "Pos0.tif", (1e9, 1e9))
        assert _segment_into(moved / "results", unet_file)(moved / "day1") == 0
        assert "1 of 1 input(s) already segmented" in capsys.readouterr().out


def test_an_input_changed_after_it_was_segmented_is_not_skipped_as_done(
    shared_data, unet_file, tmp_path, capsys
):
    """An input saved again with a pixel size it did not record was skipped as already
    segmented with these settings: its results were of the image before."""
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")[:64, :64]
    source, out = tmp_path / "Pos0.tif", tmp_path / "results"
    tifffile.imwrite(source, raw)
    segment = _segment_into(out, unet_file)
    assert segment(source) == 0, capsys.readouterr().err
    record = out / "Pos0_unet_cells.json"
    made = json.loads(record.read_text())
    tifffile.imwrite(source, raw, imagej=True, resolution=(2, 2), metadata={"unit": "um"})
    capsys.readouterr()
    assert segment(source) == 1
    assert (
        f"{source} changed after {record} was made from it (its size or modification time "
        "differ); to segment it again, move Pos0_unet_cells.tif and Pos0_unet_cells.json "
        "aside (--overwrite redoes every input)" in capsys.readouterr().err
    )
    assert segment(source, "--overwrite") == 0, capsys.readouterr().err
    assert json.loads(record.read_text())["pixel_size_um"] == [0.5, 0.5]
    # A record of a version that kept neither counts as of the input unchanged: result
    # folders made before are resumed, not refused.
    for key in ("source_bytes", "source_modified"):
        del made[key]
    record.write_text(json.dumps(made))
    capsys.readouterr()
    assert segment(source) == 0, capsys.readouterr().err
    assert "1 of 1 input(s) already segmented" in capsys.readouterr().out


def test_one_input_changed_since_stops_no_other(shared_data, unet_file, tmp_path, capsys):
    """A batch run again after one input was saved anew (touched, or saved by Fiji) and
    another added stopped at the changed one: the new input was not segmented, and the
    way past it, --overwrite, redid every input."""
    raw = tifffile.imread(shared_data / "usiigaci-phc" / "set1" / "raw.tif")
    for name, crop in (("a", raw[:64, :64]), ("b", raw[64:128, :64])):
        (tmp_path / "in" / name).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "in" / name / "raw.tif", crop)
    out = tmp_path / "out"
    segment = _segment_into(out, unet_file)
    assert segment(tmp_path / "in" / "*" / "raw.tif") == 0, capsys.readouterr().err
    kept = (out / "b" / "raw_unet_cells.tif").read_bytes()
    (tmp_path / "in" / "c").mkdir()
    tifffile.imwrite(tmp_path / "in" / "c" / "raw.tif", raw[128:192, :64])
    changed = tmp_path / "in" / "a" / "raw.tif"
    os.utime(changed, (2e9, 2e9))
    capsys.readouterr()
    assert segment(tmp_path / "in" / "*" / "raw.tif") == 1
    err = capsys.readouterr().err
    assert (
        f"cytomask segment: error: {changed} changed after {out / 'a' / 'raw_unet_cells.json'} "
        "was made from it (its size or modification time differ); to segment it again, move "
        "raw_unet_cells.tif and raw_unet_cells.json aside (--overwrite redoes every input), or "
        "choose another --output-dir."
    ) in err
    assert err.rstrip().endswith(
        "1 of 2 inputs failed or were refused (see above); the others are done. Fix them and "
        "run the same command again: finished inputs are skipped."
    )
    assert (out / "c" / "raw_unet_cells.tif").is_file()  # the new input
    assert (out / "b" / "raw_unet_cells.tif").read_bytes() == kept  # done before: kept
    # Moved aside as said, it is segmented again, alone.
    for name in ("raw_unet_cells.tif", "raw_unet_cells.json"):
        (out / "a" / name).rename(tmp_path / name)
    assert segment(tmp_path / "in" / "*" / "raw.tif") == 0, capsys.readouterr().err
    assert "2 of 3 input(s) already segmented" in capsys.readouterr().out


def test_telling_a_mask_from_a_blank_image_reads_a_sample_only():
    """Every mask in an input folder was read whole to say why it is skipped: a whole-slide
    mask took its full size in memory before anything was segmented."""
    from napari_cytomask.batch import _blank_value

    class Lazy:  # a large file: a sparse grid may be read, the whole of it not
        shape = (6000, 6000)

        def __init__(self, pixels):
            self.pixels = pixels

        def __getitem__(self, key):
            return self.pixels[key]

        def __array__(self, *args, **kwargs):
            raise AssertionError("read whole")

    mask = np.zeros((6000, 6000), np.uint32)
    mask[::100, ::100] = 7
    assert _blank_value(Lazy(mask)) is None
    assert _blank_value(np.zeros((64, 64), np.uint16)) == 0
    assert _blank_value(np.full((64, 64), 3, np.uint16)) == 3


@pytest.mark.parametrize(
    ("device", "workers", "placed"),
    [
        ("auto", 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
        # "cuda" put all four workers on GPU 0, and "cuda:1" four workers on GPU 1.
        ("cuda", 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
        ("cuda:1", 1, ["cuda:1"]),
    ],
)
def test_workers_spread_over_the_gpus_they_are_given(monkeypatch, device, workers, placed):
    """On a machine with four GPUs, each worker on its own, made its current GPU (sam2
    builds tensors on the current one, which was GPU 0 for every worker)."""
    import torch

    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(str(d)))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert batch.default_workers(device) == workers
    devices = []
    for i in range(workers):
        plugin = batch.SegmenterPlugin({}, device)
        plugin.setup(types.SimpleNamespace(name=str(i)))
        devices.append(plugin.device)
    assert devices == placed and current == placed


def test_a_device_named_in_capitals_or_a_macs_gpu_gets_its_own_workers(monkeypatch):
    """'CUDA:1' passed the command line's check (which ignores case) but not the workers',
    which put a CPU's share of them (cores / 4) on GPU 1; 'auto' on a Mac as many on its
    one GPU."""
    import torch

    from napari_cytomask.models import device as devices

    started = {}

    class Cluster:
        def __init__(self, n_workers, **kwargs):
            started["workers"] = n_workers
            raise RuntimeError("no cluster here")

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr("distributed.LocalCluster", Cluster)
    with pytest.raises(RuntimeError, match="no cluster"):
        batch.run([], Preset(), batch.Options(), device=" CUDA:1 ")
    assert started["workers"] == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert batch.default_workers("auto") == 1 == batch.default_workers("mps")
    assert batch.default_workers("cpu") == 4


def test_a_refused_rerun_names_the_settings_that_changed_however_deep(tmp_path):
    """Presets that differ in a split's h or SAM2's IoU were refused as 'split params' and
    'sam2 params', without the setting."""
    from napari_cytomask.batch import Options, _changed_settings
    from napari_cytomask.pipeline import Preset

    def preset(overlap, h):
        saved = {**Preset().to_dict(), "split": {"params": {"h": h}}}
        return Preset.from_dict({**saved, "unet": {**saved["unet"], "overlap": overlap}})

    earlier, now = preset(64, 2.0), preset(32, 4.0)
    made = {"preset": earlier.to_dict(), "options": {"pixel_size_um": None}}
    changed = _changed_settings(made, now, Options(), tmp_path / "scan.tif")
    assert changed == ["split params h", "unet overlap"]
    assert _changed_settings(made, earlier, Options(), tmp_path / "scan.tif") == []


def test_cells_are_counted_by_their_ids_not_the_largest(tmp_path):
    """A split keeps its cells' ids and the clean-up after it may remove some: the record's
    count was the largest id, more cells than the labels hold."""
    import zarr

    labels = np.zeros((2, 40, 30), np.uint32)
    labels[0, :5, :5], labels[1, 20:30, :5], labels[1, 35:, 20:] = 3, 9, 2**30
    assert batch._cell_count(labels) == 3
    chunked = zarr.open_array(tmp_path / "l.zarr", mode="w", shape=labels.shape,
                              chunks=(1, 8, 30), dtype=labels.dtype)  # fmt: skip
    chunked[:] = labels
    assert batch._cell_count(chunked) == 3


def test_a_rerun_over_cells_of_a_colour_pictures_red_asks_to_redo_them(tmp_path):
    """A colour PNG's red alone was segmented by earlier versions; its grey version is now,
    but a rerun skipped the red's cells as made with the same settings: both left the
    channels to the reader."""
    import imageio.v3 as iio

    from napari_cytomask.batch import Options, _changed_settings
    from napari_cytomask.labels import GREY_VERSION
    from napari_cytomask.pipeline import Preset

    picture = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "colour.png", picture)
    preset = Preset().to_dict()
    of_red = {"preset": preset, "channels_used": [0], "options": {"pixel_size_um": None}}
    changed = _changed_settings(of_red, Preset(), Options(), tmp_path / "colour.png")
    assert changed == ["channels"]
    of_grey = {**of_red, "channels_used": [0, 1, 2], "segmented_on": GREY_VERSION}
    assert _changed_settings(of_grey, Preset(), Options(), tmp_path / "colour.png") == []


def _scan_of_two_positions(shared_data, path):
    """An OME-TIFF of two stage positions (96² crops of real images), 880 µm apart, named
    after their wells."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        for i, x in enumerate((1000.0, 1880.0), start=1):
            raw = tifffile.imread(shared_data / "usiigaci-phc" / f"set{i}" / "raw.tif")[:96, :96]
            tif.write(raw, metadata={
                "axes": "YX", "PhysicalSizeX": 0.87, "PhysicalSizeY": 0.87,
                "Name": f"Well A{i} site 1",
                "Plane": {"PositionX": [x], "PositionXUnit": ["µm"],
                          "PositionY": [500.0], "PositionYUnit": ["µm"]},
            })  # fmt: skip
    return path


def test_segmented_ome_tiff_keeps_each_positions_stage_position(shared_data, unet_file, tmp_path):
    """`cytomask segment --format ome-tiff` of a scan of two stage positions wrote its
    labels without their positions (`cytomask export` kept them): QuPath or Bio-Formats
    could not place the label tiles where the scan's tiles are."""
    from napari_cytomask.io.tiff import describe_tiff

    scan = _scan_of_two_positions(shared_data, tmp_path / "well.ome.tif")
    code = main(["segment", str(scan), "-m", str(unet_file), "-o", str(tmp_path / "out"),
                 "--format", "ome-tiff", "--scheduler", "synchronous", "--threads", "1",
                 "--no-tta"])  # fmt: skip
    assert code == 0
    labels = tmp_path / "out" / "well_unet_cells.ome.tif"
    with tifffile.TiffFile(labels) as tif:
        assert [series.shape for series in tif.series] == [(96, 96)] * 2
    np.testing.assert_allclose(describe_tiff(labels).positions, describe_tiff(scan).positions)
    np.testing.assert_allclose(describe_tiff(labels).positions, [(500, 1000), (500, 1880)])
    # And each position's name: QuPath and OMERO list the label tiles by well.
    assert describe_tiff(labels).position_names == ("Well A1 site 1", "Well A2 site 1")
    record = json.loads((tmp_path / "out" / "well_unet_cells.json").read_text())
    assert record["position_names"] == ["Well A1 site 1", "Well A2 site 1"]


def test_labels_cytomask_segment_wrote_open_in_napari_as_the_result_of_their_scan(
    shared_data, unet_file, tmp_path, capsys
):
    """Opened in napari to be checked, labels `cytomask segment` wrote came as a mask of a
    file of their own: taken for ground truth by the metrics and left unticked for export.
    They are the result of their scan, with the method, settings and model that made them,
    as an exported result opens, also when moved with their scan; labels changed since, or
    of a run that did not finish, are labels of their own."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.files import open_scan
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    data = tmp_path / "data"
    _small_copies(shared_data, data, n=1)
    out = tmp_path / "out"
    code = main(["segment", str(data / "set1" / "raw.tif"), "-m", str(unet_file), "-o", str(out),
                 "--scheduler", "synchronous", "--threads", "1", "--no-tta"])  # fmt: skip
    assert code == 0
    labels = out / "raw_unet_cells.tif"

    def opened():
        ((data_, kwargs, kind),) = get_reader(str(labels))(str(labels))
        return kind, kwargs["metadata"][METADATA_KEY]

    kind, record = opened()
    assert kind == "labels"
    assert record["role"] == RESULT_ROLE
    assert record["source"] == str(data / "set1" / "raw.tif")
    assert record["method"] == "unet"
    assert record["model"]["path"] == str(unet_file)
    assert record["parameters"]["unet"]["tta"] is False  # as it ran
    channel = open_scan(data / "set1" / "raw.tif").channels[0].name
    assert record["channel_name"] == channel
    # Moved with their scan (to a shared drive): the scan and its channel found again.
    moved = tmp_path / "moved"
    moved.mkdir()
    data, out = data.rename(moved / "data"), out.rename(moved / "out")
    labels = out / "raw_unet_cells.tif"
    kind, record = opened()
    assert record["source"] == str(data / "set1" / "raw.tif")
    assert record["channel_name"] == channel
    # Corrected in another program since: labels of their own, and said why.
    written = tifffile.imread(labels)
    cells = written.copy()
    cells[:8, :8] = cells.max() + 1
    tifffile.imwrite(labels, cells)
    with pytest.warns(UserWarning, match="raw_unet_cells.tif was changed after cytomask segment"):
        kind, record = opened()
    assert record.get("role") != RESULT_ROLE and "method" not in record
    # Nor does cytomask export give them the run's method, model and settings.
    capsys.readouterr()
    assert main(["export", str(labels), "-o", str(tmp_path / "exported"), "-q"]) == 0
    assert "raw_unet_cells.tif was changed after cytomask segment" in capsys.readouterr().err
    exported = json.loads((tmp_path / "exported" / "raw_unet_cells_provenance.json").read_text())
    assert exported["method"] is None and exported["model"] is None
    # A run that stopped before it marked its labels finished: not its result either.
    tifffile.imwrite(labels, written)
    assert opened()[1]["role"] == RESULT_ROLE
    provenance = out / "raw_unet_cells.json"
    info = json.loads(provenance.read_text())
    provenance.write_text(json.dumps({**info, "finished": False}))
    kind, record = opened()
    assert record.get("role") != RESULT_ROLE
    assert "method" not in record
    # A record cut short (a copy that stopped) or damaged: said, not dropped without a word.
    for damaged in (json.dumps(info)[:200], json.dumps({**info, "preset": 3})):
        provenance.write_text(damaged)
        with pytest.warns(UserWarning, match=r"^Labels opened without their record: "
                          r"raw_unet_cells.json is damaged \((.|\n)*the run that made "
                          r"raw_unet_cells.tif"):  # fmt: skip
            assert opened()[1].get("role") != RESULT_ROLE
    # Another program's JSON of that name (labelme's, say) is not the labels' record.
    provenance.write_text(json.dumps({"version": "5.2", "shapes": []}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert opened()[1].get("role") != RESULT_ROLE


def test_a_folder_of_results_opens_each_as_the_result_of_its_scan(shared_data, unet_file, tmp_path):
    """Opened in napari, the folder cytomask segment wrote its results into became one
    stack "a_unet_cells to b_unet_cells", of no scan, taken for a ground truth."""
    from napari_cytomask._reader import get_reader
    from napari_cytomask.io.layers import METADATA_KEY, RESULT_ROLE

    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for i, name in enumerate("ab", start=1):
        raw = tifffile.imread(shared_data / "usiigaci-phc" / f"set{i}" / "raw.tif")
        tifffile.imwrite(data / f"{name}.tif", raw[:96, :96])
    code = main(["segment", str(data), "-m", str(unet_file), "-o", str(out), "--scheduler",
                 "synchronous", "--threads", "1", "--no-tta"])  # fmt: skip
    assert code == 0
    layers = get_reader(str(out))(str(out))
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["a_unet_cells", "b_unet_cells"]
    for (labels, kwargs, kind), name in zip(layers, "ab", strict=True):
        assert kind == "labels" and labels.shape == (96, 96)
        record = kwargs["metadata"][METADATA_KEY]
        assert record["role"] == RESULT_ROLE and record["source"] == str(data / f"{name}.tif")
    # A folder of plain TIFFs is still one stack, as napari opens it.
    ((stack, _, _),) = get_reader(str(data))(str(data))
    assert stack.shape == (2, 96, 96)


def test_a_record_made_by_another_model_file_says_so_when_run_again(
    shared_data, unet_checkpoint, tmp_path, capsys
):
    """After an upgrade, `--preset` of an older run's record used the new starter model
    (its name is the same) and made other cells without a word: the model's file is
    checked against the SHA-256 the record holds."""
    data = tmp_path / "data"
    _small_copies(shared_data, data, n=1)
    model = tmp_path / "model.safetensors"
    shutil.copy(unet_checkpoint(tile_size=256, seed=4), model)
    image = str(data / "set1" / "raw.tif")
    common = ["--scheduler", "synchronous", "--threads", "1", "--no-tta", "-q"]
    assert main(["segment", image, "-m", str(model), "-o", str(tmp_path / "a"), *common]) == 0
    record = str(tmp_path / "a" / "raw_unet_cells.json")
    assert main(["segment", image, "--preset", record, "-o", str(tmp_path / "b"), *common]) == 0
    assert "is not the file" not in capsys.readouterr().err
    shutil.copy(unet_checkpoint(tile_size=256, seed=5), model)  # trained again, same name
    assert main(["segment", image, "--preset", record, "-o", str(tmp_path / "c"), *common]) == 0
    said = capsys.readouterr().err
    assert f"the model '{model}' is not the file the run {record} records" in said
    assert "Give --model the file that made them" in said


def test_a_results_record_or_export_is_the_preset_that_makes_it_again(
    shared_data, unet_file, tmp_path, capsys
):
    """A reviewer re-making a figure had to copy the settings a result's record holds into
    options by hand: `--preset` refused the record ("not a napari-cytomask preset"), and an
    export's provenance of it. Both give the same cells again, each settings its own."""
    data = tmp_path / "data"
    _small_copies(shared_data, data, n=1)
    image = str(data / "set1" / "raw.tif")
    common = ["--scheduler", "synchronous", "--threads", "1"]
    first = ["segment", image, "-m", str(unet_file), "-o", str(tmp_path / "a"), "--no-tta",
             "--min-size", "40", "--interior-threshold", "0.6", *common]  # fmt: skip
    assert main(first) == 0
    record = tmp_path / "a" / "raw_unet_cells.json"
    assert main(["export", str(tmp_path / "a" / "raw_unet_cells.tif"), "-o", str(tmp_path / "x"),
                 "-q"]) == 0  # fmt: skip
    for made_by, out in ((record, "b"), (tmp_path / "x" / "raw_unet_cells_provenance.json", "c")):
        again = ["segment", image, "--preset", str(made_by), "-o", str(tmp_path / out), *common]
        assert main(again) == 0
        redone = json.loads((tmp_path / out / "raw_unet_cells.json").read_text())
        assert redone["preset"] == json.loads(record.read_text())["preset"]
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / out / "raw_unet_cells.tif"),
            tifffile.imread(tmp_path / "a" / "raw_unet_cells.tif"),
        )
    # A pixel size given to the run (the file's was wrong) is given again, and said.
    # The starter model, which learnt cells of 0.87 µm pixels: the image is resampled.
    starter = ["segment", image, "--no-tta", *common]
    assert main([*starter, "-o", str(tmp_path / "d"), "--pixel-size", "1.2"]) == 0
    assert main([*starter, "-o", str(tmp_path / "f")]) == 0
    capsys.readouterr()
    assert not np.array_equal(*(tifffile.imread(tmp_path / out / "raw_unet_cells.tif")
                                for out in ("d", "f")))  # fmt: skip
    again = ["segment", image, "--preset", str(tmp_path / "d" / "raw_unet_cells.json"),
             "-o", str(tmp_path / "e"), *common]  # fmt: skip
    assert main(again) == 0
    assert "pixels of 1.2 µm, as the run" in capsys.readouterr().err
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "e" / "raw_unet_cells.tif"),
        tifffile.imread(tmp_path / "d" / "raw_unet_cells.tif"),
    )
    # A record of a size no longer taken (an older run's 80 µm): not given again, as the
    # reader would open the result without it.
    old = json.loads((tmp_path / "d" / "raw_unet_cells.json").read_text())
    old["options"]["pixel_size_um"] = 80
    (tmp_path / "old.json").write_text(json.dumps(old))
    again = ["segment", image, "--preset", str(tmp_path / "old.json"), "-o", str(tmp_path / "h")]
    assert main([*again, *common]) == 0
    assert "as the run" not in capsys.readouterr().err
    # Other images that record no pixel size are given it, said (they were segmented at
    # their own pixels, as though it had been lost on the way); those that record one keep it.
    other = data / "other"
    other.mkdir()
    shutil.copy(image, other / "raw.tif")
    tifffile.imwrite(other / "sized.tif", tifffile.imread(image), resolution=(1 / 0.87, 1 / 0.87),
                     metadata={"unit": "um"}, imagej=True)  # fmt: skip
    record = str(tmp_path / "d" / "raw_unet_cells.json")
    others = ["segment", str(other), "--preset", record, "-o", str(tmp_path / "g"), *common]
    assert main(others) == 0
    assert (
        f"note: 1 of the 2 images record no pixel size: they are given pixels of 1.2 µm, as the "
        f"run {record} records was given them for {image} (--pixel-size gives them another); "
        "the others keep their files' own.\n"
    ) in capsys.readouterr().err
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "g" / "raw_unet_cells.tif"),
        tifffile.imread(tmp_path / "d" / "raw_unet_cells.tif"),
    )
    made = json.loads((tmp_path / "g" / "sized_unet_cells.json").read_text())
    assert made["pixel_size_um"] == [0.87, 0.87]
    assert main(others) == 0  # run again: the same settings, so both are skipped
    assert "2 of 2 input(s) already segmented with these settings" in capsys.readouterr().out


def test_segment_says_when_fiji_would_round_its_labels_ids(
    unet_file, tmp_path, capsys, monkeypatch
):
    """The export said that Fiji rounds a TIFF's ids over 16,777,216, but `cytomask segment`
    wrote such TIFFs without a word. A run rarely numbers its cells so high: a stand-in
    for the segmentation numbers two cells past it, and the TIFF and OME-TIFF each say so
    with the input's notes; the OME-Zarr store, which Fiji does not open, does not."""
    from napari_cytomask.pipeline import Segmented

    def stitched(self, channels, **kwargs):
        yield from ()  # no progress to report
        labels = np.zeros(np.shape(channels[0]), np.uint32)
        labels[2:6, 2:6], labels[8:12, 8:12] = 2**24 + 1, 2**24 + 2
        if kwargs.get("labels_out") is not None:  # the chunked run's store
            kwargs["labels_out"][:] = labels
            labels = kwargs["labels_out"]
        return Segmented(labels, confidence=None)

    monkeypatch.setattr(Segmenter, "iter_run", stitched)
    image = tmp_path / "tile.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(1, 4000, (32, 32), np.uint16))
    common = ["segment", str(image), "-m", str(unet_file), "--scheduler", "synchronous",
              "--threads", "1", "--overwrite"]  # fmt: skip
    for fmt, name in (("tiff", "tile_unet_cells.tif"), ("ome-tiff", "tile_unet_cells.ome.tif")):
        assert main([*common, "--format", fmt]) == 0
        assert (
            f"cytomask: note: {image}: {name} holds ids up to 16777218: napari and Python read "
            "it exactly, but Fiji and ImageJ open it as 32-bit decimals, which round ids above "
            "16,777,216 (two cells of nearby ids can become one); for Fiji, export the labels "
            "with 'Renumber cells 1, 2, 3…' ticked (Export labels: step 5 of Segment "
            "cytoplasm, or File > IO Utilities)."
        ) in capsys.readouterr().err
        assert tifffile.imread(tmp_path / name).max() == 2**24 + 2
    assert main([*common, "--format", "ome-zarr"]) == 0
    assert "Fiji" not in capsys.readouterr().err
