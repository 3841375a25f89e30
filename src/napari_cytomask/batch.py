"""Batch segmentation on dask.distributed: one task per scan, resumable, atomic outputs.

Every input file becomes a :class:`Job` with two outputs beside each other: the
label image and a provenance JSON. The provenance file is written last, so it
marks a finished job; a re-run skips the jobs finished for the same input, unchanged
since, and redoes the others. Both files are written atomically, so an interrupted
run (Ctrl+C, a killed worker, a power cut) leaves finished outputs intact and no
half-written file under an output name.

The jobs run on a ``dask.distributed`` cluster: a :class:`~distributed.LocalCluster`
of worker processes by default, or an existing cluster given by its scheduler
address. Each worker loads the preset's models once (:class:`SegmenterPlugin`)
and, on machines with several GPUs, uses its own GPU.

Images whose frames exceed ``chunked_above`` pixels (or with ``fmt="ome-zarr"``)
are processed chunk-wise: the U-Net's probabilities go to a scratch store on
disk and the watershed writes the labels window by window into an OME-Zarr
store, so memory stays bounded by the tile and chunk sizes.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import math
import os
import platform
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cache, partial
from pathlib import Path

import numpy as np
from distributed import WorkerPlugin

from ._sample_data import in_package
from .io.atomic import (
    NAME_BYTES,
    WriteError,
    fit_name,
    ignores_case,
    reason,
    remove_leftovers,
    same_file,
    write_atomically,
    write_directory_atomically,
    write_json,
)
from .io.export import package_versions, record_problem, recorded_relative
from .io.layers import (
    INPUT_BY_PIXELS,
    finite_values,
    frame_notes,
    labels_digest,
    nothing_to_find,
    single_value,
    with_pixel_size,
)
from .io.tiff import file_stem
from .io.writers import CHUNKED_ABOVE, FORMATS, SEGMENT_FORMATS, format_named
from .labels import GREY_VERSION, as_planes
from .models.catalog import image_area, resampled_note, unlike_starter_images
from .pipeline import METHODS, Preset, Segmenter
from .progress import Progress, drain, one_line

PLUGIN_NAME = "napari-cytomask-segmenter"
#: What the names of a job's outputs end in before their suffix: ``set1_unet_cells.tif``.
OUTPUT_MARK = "_cells"
#: Endings of every file a job writes (``_unet_cells.tif`` …), so that a folder segmented
#: again skips them, but not an image of one's own named ``hela_cells.tif``.
OUTPUT_ENDINGS = tuple(
    f"_{method}{OUTPUT_MARK}{suffix}"
    for method in METHODS
    for suffix in (*(s for fmt in FORMATS.values() for s in fmt.suffixes), ".json")
)


class BatchError(ValueError):
    """A batch that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Options:
    """How each job writes its outputs.

    Attributes
    ----------
    fmt
        Label format of images processed in memory: a key of
        :data:`~napari_cytomask.io.writers.FORMATS`; one of its suffixes (``"tif"``)
        becomes its key.
    chunked_above
        Frames with more pixels are processed chunk-wise into OME-Zarr.
    chunk_size
        Watershed window (and OME-Zarr chunk) size of chunk-wise processing.
    overwrite
        Redo finished jobs and replace their outputs.
    pixel_size_um
        The images' pixel size in µm, in place of what their files record (for files
        that lost it, or hold a wrong one); the U-Net step resamples to its model's.
    pixel_size_if_none_um
        The pixel size in µm of the images whose files record none, unless
        ``pixel_size_um`` is given (the one a preset's run was given).
    """

    fmt: str = "tiff"
    chunked_above: int = CHUNKED_ABOVE
    chunk_size: int = 2048
    overwrite: bool = False
    pixel_size_um: float | None = None
    pixel_size_if_none_um: float | None = None

    def __post_init__(self):
        try:
            fmt = format_named(self.fmt)
        except ValueError as err:
            raise BatchError(str(err)) from None
        if fmt not in SEGMENT_FORMATS:
            raise BatchError(f"segment writes {', '.join(SEGMENT_FORMATS)}, not {fmt}.")
        object.__setattr__(self, "fmt", fmt)  # frozen: set once, here

    def pixel_size_for(self, recorded: tuple[float, float] | None) -> float | None:
        """The pixel size in µm given to an image whose file records ``recorded`` (None:
        none), in place of that; None: its own."""
        return self.pixel_size_um or (self.pixel_size_if_none_um if recorded is None else None)


@dataclass(frozen=True)
class Job:
    """One input file and its outputs."""

    source: Path
    labels: Path
    record: Path

    def chunked_labels(self) -> Path:
        """Where the labels go when the image is processed chunk-wise."""
        stem = self.record.name.removesuffix(".json")
        return self.record.with_name(stem + FORMATS["ome-zarr"].suffix)

    def output(self, options: Options, shape: Sequence[int]) -> Path:
        """Where the labels of an image of ``shape`` go: chunk-wise into an OME-Zarr store
        in that format or when its frames are larger than ``options.chunked_above``, else
        into a file of ``options.fmt``."""
        chunked = FORMATS[options.fmt].chunked or shape[-2] * shape[-1] > options.chunked_above
        return self.chunked_labels() if chunked else self.labels

    def finished(self, made: dict | None = None) -> bool:
        """Whether an earlier run finished this job: its provenance exists (``made``, when
        already read; empty when there is none), and so do the labels it names, in this
        format or another.

        Not any labels beside it: a run that changed the format and was stopped before
        its new labels were in place left the old ones beside a record of the new.
        """
        if made is None:
            made = _parsed(self.record.read_bytes()) if self.record.is_file() else {}
        if not made:
            return False
        named = _recorded_labels(self.record, made)
        # A record written before its labels were in place says so until they are: the
        # labels beside it may be those of an earlier run, of other settings.
        return bool(named) and named[0].exists() and made.get("finished") is not False


def record_stamps(jobs: Sequence[Job]) -> list[tuple | None]:
    """Each job's record as it stands (its file's identity, time and size; None without
    one), for :func:`finished_since` to tell the jobs a run finished from those an earlier
    run had finished (which ``overwrite`` runs again)."""
    stamps = []
    for job in jobs:
        try:
            stat = job.record.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return stamps


def finished_since(jobs: Sequence[Job], stamps: Sequence[tuple | None]) -> dict[Job, Path]:
    """The ``jobs`` finished since their records were stamped (:func:`record_stamps`), with
    the labels each record names: a run stopped by Ctrl+C knows of those it gathered only,
    while a cluster's workers finish the files in hand as it closes."""
    finished = {}
    for job, stamp in zip(jobs, stamps, strict=True):
        made = _parsed(job.record.read_bytes()) if job.record.is_file() else {}
        if job.finished(made) and record_stamps([job])[0] != stamp:
            finished[job] = job.record.with_name(made["output"])
    return finished


def masks_only(sources: Sequence[Path]) -> dict[Path, str]:
    """The inputs whose every channel the reader takes for label ids, with why they hold
    nothing to segment: a mask beside its image (such as Usiigaci's ``instances_ids.png``),
    or an image of one value (a black frame, a closed shutter), which reads as an empty
    mask. A file that cannot be opened is left to its job, which says why."""
    from .io.files import open_scan

    masks = {}
    for source in sources:
        try:
            with open_scan(source) as scan:
                if scan.rgb or scan.by_role("input") or scan.by_role("image"):
                    continue
                values = [_blank_value(channel.data) for channel in scan.channels]
        except (ValueError, OSError):
            continue
        if len(set(values)) == 1 and values[0] is not None:
            masks[source] = f"shows nothing (every pixel is {values[0]:g})"
        else:
            masks[source] = "holds label ids only (a mask)"
    return masks


def _blank_value(data) -> float | None:
    """The one value of an image that shows nothing, else None. A sparse grid of pixels
    is read first, so a mask (a whole-slide one too) is told apart without reading it all."""
    step = max(1, math.ceil(math.sqrt(data.shape[-2] * data.shape[-1] / 1e6)))
    if single_value(finite_values(data[..., ::step, ::step])) is None:
        return None
    return single_value(finite_values(data))


def plan(
    sources: Sequence[Path],
    preset: Preset,
    output_dir: Path | None,
    options: Options,
    roots: Sequence[Path] = (),
) -> tuple[list[Job], list[Job], dict[Path, str]]:
    """Jobs to run, jobs already finished by an earlier run with the same preset, and the
    inputs refused, with why: a finished output made with another preset or from its
    input before it changed (unless ``overwrite``), or an output folder that holds another
    input's results under an output's name (even with ``overwrite``: they are not this
    input's to replace). The others are run: one input changed since stopped a whole
    batch, new inputs too. ``roots`` as :func:`output_folders` takes them.

    Raises
    ------
    BatchError
        When two inputs would write the same output.
    """
    suffix = FORMATS[options.fmt].suffix
    mark = f"_{preset.method}{OUTPUT_MARK}"
    # A long file name is cut to leave room for the mark and the longest suffix.
    endings = (suffix, ".json", FORMATS["ome-zarr"].suffix)  # the labels, record, chunked labels
    room = NAME_BYTES - len(mark) - max(len(ending.encode()) for ending in endings)
    todo, done, seen, refused = [], [], {}, {}
    folders = output_folders(sources, output_dir, roots)
    one_case = cache(ignores_case)  # Pos0.tif's results are pos0.tif's there
    for source, folder in zip(sources, folders, strict=True):
        stem = f"{fit_name(file_stem(source), room)}{mark}"
        job = Job(source, folder / f"{stem}{suffix}", folder / f"{stem}.json")
        key = str(job.record).casefold() if one_case(folder) else str(job.record)
        if key in seen:
            case = "" if seen[key][1] == job.record else " on this disk, which ignores case"
            raise BatchError(
                f"{seen[key][0]} and {source} would both write {job.record.name}{case}; "
                "rename one or segment them into different folders."
            )
        seen[key] = (source, job.record)
        made, damage = _checked(job.record.read_bytes() if job.record.is_file() else None)
        if damage is not None and not options.overwrite:
            refused[source] = (
                f"{job.record} is damaged ({damage}), so it cannot say how the labels beside "
                f"it were made; pass --overwrite to segment {source.name} again, or move it "
                "aside."
            )
            continue
        other = made.get("source")
        if isinstance(other, str) and not _made_from(job.record, made, source):
            # Two runs into one folder, of files of one name in different folders
            # (day1/Pos0.tif, then day2/Pos0.tif): the second would pass the first's
            # results off as its own, or replace them.
            refused[source] = (
                f"{job.record} holds the results of {other}, not of {source} (a file of the "
                f"same name); segment {source.name} into another --output-dir, or rename it "
                "(--overwrite never replaces another input's results)."
            )
            continue
        if options.overwrite and job.finished(made) and _edited_since(job, made):
            output = job.record.with_name(made["output"])
            # Corrected by hand (in Fiji, napari): the user's work, not a run's to redo.
            refused[source] = (
                f"{output} was changed after cytomask segment wrote it (corrected by hand?), "
                f"so --overwrite leaves it as it is; move it aside to segment {source.name} "
                "again, or choose another --output-dir."
            )
            continue
        if not options.overwrite and job.finished(made):
            output = job.record.with_name(made["output"])
            # --overwrite redoes every input: one to redo is moved aside.
            aside = (
                f"move {output.name} and {job.record.name} aside (--overwrite redoes every input)"
            )
            if _changed_input(made, source):
                refused[source] = (
                    f"{source} changed after {job.record} was made from it (its size or "
                    f"modification time differ); to segment it again, {aside}, or choose "
                    "another --output-dir."
                )
                continue
            changed = _changed_settings(made, preset, options, job.source)
            if changed:
                refused[source] = (
                    f"{job.record} was made with other settings ({', '.join(changed)}); to "
                    f"redo it, {aside}, or choose another --output-dir."
                )
                continue
            # Labels in another format than asked for: this run's only if it would make
            # them too (an OME-Zarr store, for an image it would process chunk-wise). A record
            # without the image's shape (edited by hand) leaves it to the format asked for.
            shape = made.get("shape") or (0, 0)
            wanted = job.output(options, shape) if output != job.labels else output
            if output.exists() and output != wanted:
                # Its record would describe the new file and no longer the one it made.
                refused[source] = (
                    f"{job.record} describes {output.name}, made in another format; pass "
                    f"--overwrite to make {wanted.name} instead ({output.name} is then "
                    "deleted, and the record describes the new file), or choose another "
                    "--output-dir."
                )
                continue
            done.append(job)
            continue
        stray = next((p for p in (job.labels, job.chunked_labels()) if p.exists()), None)
        if not options.overwrite and stray is not None and not job.record.exists():
            # No record of ours: a file the user put there (a hand-corrected mask, say).
            refused[source] = (
                f"{stray} is there already, and no run of cytomask segment made it (it has "
                f"no {job.record.name}); move it, pass --overwrite to replace it, or choose "
                "another --output-dir."
            )
            continue
        todo.append(job)
    return todo, done, refused


def output_folders(
    sources: Sequence[Path], output_dir: Path | None, roots: Sequence[Path] = ()
) -> list[Path]:
    """Where each input's results go.

    Beside the input without ``output_dir``; with it, under ``output_dir`` in
    the input's folder relative to the inputs' common folder, so
    ``data/set1/raw.tif`` and ``data/set2/raw.tif`` go to ``OUT/set1/`` and
    ``OUT/set2/`` instead of colliding. ``roots`` (:func:`~.io.files.input_roots` of
    what named the inputs) count in the common folder: ``data/set*/raw.tif`` matching
    set1 alone wrote to ``OUT/``, and matching set1 and set2 a day later wrote set1 again
    to ``OUT/set1/``.

    Raises
    ------
    BatchError
        Without ``output_dir``, for an input in the installed package (the sample scan):
        its results would be written into the package.
    """
    if output_dir is None:
        for source in sources:
            if in_package(source.parent):
                raise BatchError(
                    f"{source} lies in the napari-cytomask package, which is no place for its "
                    "results; pass -o/--output-dir to write them elsewhere."
                )
        return [source.parent for source in sources]
    # As given, links kept: a linked scan's results go beside the link.
    parents = [Path(os.path.abspath(source)).parent for source in sources]
    folders = [*parents, *map(os.path.abspath, roots)]
    try:
        base = Path(os.path.commonpath(folders)) if parents else Path()
    except ValueError:  # Windows: "Paths don't have the same drive"
        drives = sorted({Path(folder).drive for folder in folders})
        raise BatchError(
            f"the inputs lie on different drives ({', '.join(drives)}), so their folders "
            "cannot be laid out under one output folder: segment each drive's inputs in a "
            "run of its own."
        ) from None
    # Absolute: workers of a distributed scheduler may run in another folder.
    return [Path(output_dir).resolve() / parent.relative_to(base) for parent in parents]


def process(
    job: Job,
    segmenter: Segmenter,
    options: Options,
    report: Callable[[Progress], None] | None = None,
) -> dict:
    """Segment one file and write its labels and provenance; return a summary.

    Leftovers of an interrupted earlier attempt at this job are removed first
    (the run holds the folder, see :func:`locked_folders`). ``report`` is called
    with the segmentation's progress.
    """
    start = time.perf_counter()
    for path in (job.labels, job.chunked_labels(), job.record):
        remove_leftovers(path, all_owners=True)
    job.labels.parent.mkdir(parents=True, exist_ok=True)
    from .io.files import open_scan, sample_digest

    # Before it is read: a file changed while it is segmented counts as changed next time.
    # Its fingerprint tells it from another scan of its size where the results are moved.
    state = {**_file_state(job.source), "source_sample_sha1": sample_digest(job.source)}
    with warnings.catch_warnings():
        # What the reader says of the file was said as the run looked at its inputs
        # (masks_only): said again here, each note came twice, from a worker process as
        # Python's raw warning.
        warnings.simplefilter("ignore", UserWarning)
        scan = open_scan(job.source)
    with scan:  # closed after: Windows replaces no open file
        return _segment_scan(job, scan, state, segmenter, options, report, start)


def _segment_scan(
    job: Job,
    scan,
    state: dict,
    segmenter: Segmenter,
    options: Options,
    report: Callable[[Progress], None] | None,
    start: float,
) -> dict:
    """:func:`process` of the opened ``scan`` of ``job``, whose file's ``state`` was taken
    before it was read, at ``start``."""
    from .io.files import geometry_of, pick_channels, read_channels, reads_grey, scan_positions_of

    size = options.pixel_size_for(scan.pixel_size_um)
    if size:  # the image's size, in the labels written too
        scale, units = with_pixel_size(scan.scale, scan.units, size)
        scan = replace(scan, scale=scale, units=units)
    used = pick_channels(scan, segmenter.preset.channels, segmenter.n_inputs)
    channels = read_channels(scan, used, segmenter.n_inputs)
    segmented_on = GREY_VERSION if reads_grey(scan, used, segmenter.n_inputs) else None
    try:
        as_planes(channels[0])
    except ValueError:
        # Its own message tells a Python caller how to slice the array; the file's owner
        # needs to hear what the file holds and how to save it instead.
        raise BatchError(_values_on_last_axis(job.source, channels[0])) from None
    shape = tuple(channels[0].shape)
    pixel = scan.pixel_size_um
    # Its record is written before the labels are in place, and again once they are: a run
    # stopped in between leaves a record of unfinished labels, redone by the next run, not
    # labels without a record, which it would take for the user's own file and refuse to
    # replace.
    earlier = job.record.read_bytes() if job.record.is_file() else None
    # The finished run's record goes on in the new one until its labels are replaced: a run
    # killed before they are (Ctrl+C stops a cluster's workers so) leaves them described.
    standing = _parsed(earlier)
    # Of a run stopped so before: the finished one it kept.
    if standing.get("finished") is False:
        standing = standing.get("earlier") if isinstance(standing.get("earlier"), dict) else {}
    standing = standing or None
    output = job.output(options, shape)
    chunked = output == job.chunked_labels()
    # Made again in another format: the old labels would outlive their record. Those of a
    # run stopped before it removed them are named in its record.
    replaced = [
        p for p in _recorded_labels(job.record, _parsed(earlier)) if p != output and p.exists()
    ]
    # No channel chosen, and none named like transmitted light: the first was taken, or the
    # one whose pixels look like transmitted light's.
    guessed = None
    if segmenter.preset.channels is None and not scan.colour_picture:
        inputs = scan.by_role("input")
        if not inputs:
            guessed = "first"
        elif inputs[0].extra.get(INPUT_BY_PIXELS):
            guessed = "pixels"

    # Each tile's stage position and name, kept as an export keeps them.
    where = scan_positions_of(scan, shape)

    def keep_record(run, n_cells: int, finished: bool, store: Path | None = None) -> None:
        record = {
            "finished": finished,
            "earlier": None if finished else standing,
            # Which store is this run's, until it is marked finished: one moved in as the
            # run was killed is not the earlier run's (it keeps no fingerprint, as a TIFF does).
            "store_inode": os.stat(store).st_ino if store is not None else None,
            "source": str(job.source),
            # Found again when the results and the scan are moved together (a shared drive).
            "source_from_record": _relative(job.source, job.record.parent),
            **state,
            "channels_used": used,
            "channel_guessed": guessed,
            "segmented_on": segmented_on,
            "output": output.name,
            "replaces": [p.name for p in replaced],
            "shape": list(shape),
            "position_names": where.names,
            "cells": n_cells,
            # Labels changed since (corrected in Fiji) are no longer this run's result.
            "labels_sha1": digest,
            "seconds": round(time.perf_counter() - start, 3),
            "unet_confidence": run.confidence,
            "pixel_size_um": pixel,
            "unet_zoom": run.zoom,
            "unet_min_size_image_px": run.min_size and image_area(run.min_size, run.zoom),
            **segmenter.describe(),
            "options": asdict(options),
            "versions": package_versions(),
            "python": platform.python_version(),
            "host": platform.node(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_json(job.record, record, overwrite=True, indent=2)

    digest = None  # of labels in memory: a chunked run's are too large to read again
    # What the labels' file says of them (ids Fiji rounds): with this input's notes, not a
    # worker's raw warning.
    written: list[str] = []
    if chunked:
        from .io.omezarr import create_labels

        run = n_cells = None

        def fill(folder: Path) -> None:
            nonlocal run, n_cells
            # Filled under a temporary name: the image is named after the store it becomes,
            # and keeps the pixel size the TIFF labels keep.
            labels = create_labels(
                folder,
                shape,
                chunks=options.chunk_size,
                name=file_stem(output),
                **geometry_of(scan, len(shape)),
            )
            # The probabilities, and the U-Net's cells a split reads: gone before the store
            # is moved in.
            scratch = folder / "scratch"
            scratch.mkdir()
            gen = segmenter.iter_run(
                channels,
                labels_out=labels,
                scratch=scratch,
                chunk_size=options.chunk_size,
                pixel_size_um=pixel,
            )
            run = drain(gen, report)
            shutil.rmtree(scratch)
            n_cells = _cell_count(labels)
            keep_record(run, n_cells, finished=False, store=folder)  # renamed, the same folder

        with _record_kept_on_failure(job.record, earlier):
            write_directory_atomically(output, fill, overwrite=True)
    else:
        from .io.writers import write_labels

        # Read once: overlapping tiles would otherwise decode the file's blocks again and again.
        channels = [np.asarray(c) for c in channels]
        run = drain(segmenter.iter_run(channels, pixel_size_um=pixel), report)
        n_cells, digest = _cell_count(run.labels), labels_digest(run.labels)
        with _record_kept_on_failure(job.record, earlier):
            keep_record(run, n_cells, finished=False)
            geometry = geometry_of(scan, run.labels.ndim)
            write_labels(output, run.labels, overwrite=True, positions=where.stage,
                         position_names=where.names, note=written.append, **geometry)  # fmt: skip
    try:
        keep_record(run, n_cells, finished=True)
    except WriteError as err:
        # Said as "nothing was written", of the record alone: the labels were.
        raise WriteError(
            err.errno,
            f"{output} was written, but its record {job.record.name}, which marks it "
            f"finished, could not be: {reason(err)}. Run the same command again once that "
            f"is mended: it segments {job.source.name} again.",
        ) from err
    seconds = time.perf_counter() - start
    for old in replaced:
        shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    unet = segmenter.preset.unet
    unlike = resampled = ""
    if unet:
        resampled = resampled_note(pixel, run.zoom, run.min_size) if run.zoom else ""
        unlike = unlike_starter_images(
            unet.model, run.confidence, pixel, bool(run.zoom), tta=unet.tta
        )
    # Not in a chunked run: its frames are too large to read again whole.
    seen = "" if chunked else frame_notes(channels[0])
    # The labels of another format an earlier run made, deleted: a table may name them.
    gone = ", ".join(old.name for old in replaced)
    gone = f"{gone} (made before, in another format) deleted." if gone else ""
    # Why no cell could be found, when none was: in every channel the model took. Then
    # how sure the model was of cells says nothing (a 2 x 2 image's "unsure" note).
    empty = None
    if not (chunked or n_cells):
        reasons = [nothing_to_find(channel, run.min_size or 0) for channel in channels]
        empty = reasons[0] if all(reasons) else None
    unlike = "" if empty else unlike
    note = " ".join(n for n in (seen, resampled, unlike, *written, gone) if n)
    return {"source": str(job.source), "output": str(output), "cells": n_cells,
            "seconds": seconds, "channels_used": used, "channel_guessed": guessed,
            "segmented_on": segmented_on,
            "channels": 3 if scan.rgb else len(scan.channels), "note": note,
            "nothing_to_find": empty}  # fmt: skip


def _values_on_last_axis(source: Path, data) -> str:
    """Why ``source``, saved with the several values of each pixel (colours, or masks) on
    its last axis, is not segmented, and how to save it instead: it reads as images a few
    pixels wide, which the segmentation refuses as a colour picture."""
    # As a picture: height x width pixels of ``values`` values each; as read, its images
    # are ``width`` pixels tall and ``values`` wide.
    *_, height, width, values = data.shape
    images = math.prod(data.shape[:-2])
    layout = " x ".join(map(str, data.shape))
    read_as = f"{images} images of {width} x {values} pixels, too narrow to segment"
    if data.dtype == bool:
        return (
            f"{source.name} holds true/false (binary) pixels laid out as {layout}, which "
            f"reads as {read_as}: most likely {values} masks of {height} x {width} pixels, "
            "saved with the masks on the last axis. True/false pixels are a mask, not a "
            "microscope image: segment the image the masks were made from, or save each "
            f"mask as its own {height} x {width} image to segment it."
        )
    return (
        f"{source.name} holds pixels laid out as {layout}, which reads as {read_as}: most "
        f"likely a colour picture of {height} x {width} pixels, saved without saying that "
        f"its last axis holds {values} colours. Save it again as an RGB TIFF (its colours "
        "are then channels, and --channel N picks one), or each colour as its own "
        f"{height} x {width} image."
    )


def _changed_settings(made: dict, preset: Preset, options: Options, source: Path) -> list[str]:
    """The settings (a preset's parts, the pixel size) in which ``preset`` and ``options``
    differ from those of the run that wrote the record ``made`` of ``source``; empty when
    they are the same.

    Channels are compared as the channels they come to: a preset saved from the dock names
    the channel it segmented, the reader's input, say, and one that leaves them to the
    reader asks for other channels when the reader would now take others (the colours of a
    PNG, once its red). So are a pixel size given and the one the file records.
    """
    from .io.files import file_pixel_size, open_scan, pick_channels

    earlier, now = dict(made.get("preset") or {}), preset.to_dict()
    used = made.get("channels_used")
    if isinstance(used, list):
        earlier["channels"] = used
        if now.get("channels") is None:
            # A colour picture's three colours were read as one, its grey version.
            n_inputs = 1 if made.get("segmented_on") else len(used)
            try:  # what the reader would take now
                with open_scan(source) as scan:
                    now["channels"] = pick_channels(scan, None, n_inputs)
            except (ValueError, OSError):
                pass  # not readable now: other settings, as before
    changed = _differences(earlier, now)
    given = made.get("options") or {}
    asked = (options.pixel_size_um, options.pixel_size_if_none_um)
    if (given.get("pixel_size_um"), given.get("pixel_size_if_none_um")) != asked:
        # The pixel size the images went through at: given, else the file's.
        own = None if options.pixel_size_um else file_pixel_size(source)
        size = options.pixel_size_for(own)
        pixel = (size, size) if size else own
        before = made.get("pixel_size_um")
        if pixel is None or before is None or not np.allclose(pixel, before):
            changed.append("pixel size")
    return changed


def _made_from(record: Path, made: dict, source: Path) -> bool:
    """Whether the provenance ``record`` (``made``, as :func:`_parsed` reads it) is of
    ``source``: it names it as its source, however the path is spelt, or names it relative
    to the record, as results moved together with their scans (to a shared drive, say)
    still do."""
    moved = recorded_relative(made, record.parent)
    return same_file(made.get("source"), str(source)) or (
        moved is not None and same_file(str(moved), str(source))
    )


def _edited_since(job: Job, made: dict) -> bool:
    """Whether the labels a finished run wrote (its record ``made``) changed since: their
    ids are not those the record fingerprints (records without one, an OME-Zarr store's,
    say they did not; labels that cannot be read are left to the run to replace)."""
    from .io.export import describes
    from .io.files import read_image

    if not isinstance(made.get("labels_sha1"), str):
        return False
    try:
        labels = read_image(job.record.with_name(made["output"]))
    except (OSError, ValueError):
        return False
    return not describes(made, labels)


def _file_state(source: Path) -> dict:
    """What a record keeps to tell whether ``source`` changed, read without its pixels: its
    size in bytes and when it was last modified; of an OME-Zarr store (a folder), the size
    of all its files and the latest time one of them was modified."""
    if source.is_dir():
        stats = [path.stat() for path in source.rglob("*") if path.is_file()]
    else:
        stats = [source.stat()]
    return {
        "source_bytes": sum(stat.st_size for stat in stats),
        "source_modified": max((stat.st_mtime for stat in stats), default=0.0),
    }


def _changed_input(made: dict, source: Path) -> bool:
    """Whether ``source`` changed after the run that wrote the record ``made`` segmented it
    (re-saved with a pixel size, cropped, replaced): its size differs, or, where it is
    still the file the record names, its modification time. Scans copied with their
    results (found by ``source_from_record``) are compared by size only: a plain copy
    (``cp -r``) gives every file the time it was copied.

    Records of versions that did not keep them count as of an unchanged input, so that
    their result folders are resumed as before rather than refused.
    """
    size, modified = made.get("source_bytes"), made.get("source_modified")
    if not isinstance(size, int) or not isinstance(modified, int | float):
        return False
    now = _file_state(source)
    if now["source_bytes"] != size:
        return True
    # Within 2 s: a copy that keeps the time keeps it to its file system's precision (a
    # FAT-formatted drive's is 2 s).
    in_place = same_file(made.get("source"), str(source))
    return in_place and abs(now["source_modified"] - modified) > 2


def _differences(before: dict, after: dict, within: str = "") -> list[str]:
    """The settings in which two presets (or their steps, and the steps' parameters)
    differ, named by where they sit ("unet overlap", "sam2 params pred iou thresh")."""
    changed = []
    for key in sorted(before.keys() | after.keys()):
        old, new, name = before.get(key), after.get(key), f"{within}{key}".replace("_", " ")
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _differences(old, new, f"{name} ")
        elif old != new:
            changed.append(name)
    return changed


@contextmanager
def _record_kept_on_failure(record: Path, earlier: bytes | None):
    """Put an input's earlier ``record`` (its content, None when there was none) back when
    its new labels fail to be written: they are as they were (written atomically), and so
    must their record be."""
    try:
        yield
    except Exception:
        if earlier is None:
            record.unlink(missing_ok=True)
        else:
            write_atomically(record, lambda tmp: tmp.write_bytes(earlier), overwrite=True)
        raise


def _relative(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder``; None when it has none (another drive)."""
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    except ValueError:
        return None


def _parsed(content: bytes | None) -> dict:
    """A provenance record's ``content`` read; {} when there is none, or it is damaged."""
    return _checked(content)[0]


def _checked(content: bytes | None) -> tuple[dict, str | None]:
    """A provenance record's ``content`` read, and what is wrong with it; ({}, why) when
    it is damaged (no JSON, or entries of another kind than a run writes)."""
    if content is None:
        return {}, None
    try:
        made = json.loads(content)
    except ValueError as err:
        return {}, f"it is no JSON: {err}"
    problem = record_problem(made)
    return ({}, problem) if problem is not None else (made, None)


def _recorded_labels(record: Path, made: dict) -> list[Path]:
    """The labels an earlier run's provenance ``record`` (``made``, as :func:`_parsed`
    reads it) names beside it: those it made, then those it replaces; none when it names
    none."""
    replaces = made.get("replaces", [])
    if "output" not in made or not isinstance(replaces, list):
        return []
    names = [made["output"], *replaces]
    ours = {record.stem + suffix for fmt in FORMATS.values() for suffix in fmt.suffixes}
    if not all(isinstance(n, str) and n in ours for n in names):
        return []  # only labels named as this record's, never another file (the scan)
    return [record.with_name(n) for n in names]


def _cell_count(labels) -> int:
    """How many cells (ids) a label array holds, a chunked one read chunk row by chunk
    row. Not its largest id: a split keeps its cells' ids, and the clean-up after it may
    remove some."""
    step = labels.chunks[-2] if hasattr(labels, "chunks") else labels.shape[-2]
    ids = np.zeros(0, labels.dtype)
    for y in range(0, labels.shape[-2], step):
        ids = np.union1d(ids, np.asarray(labels[..., y : y + step, :]))
    return int(np.count_nonzero(ids))


class SegmenterPlugin(WorkerPlugin):
    """A dask worker plugin holding one :class:`Segmenter` per worker process.

    The models load on the worker's first task and stay for the next ones. On a
    machine with several GPUs and ``device="auto"`` or ``"cuda"``, worker *i* of a local
    cluster uses GPU *i* modulo the number of GPUs; its GPU is the worker's current one
    (sam2 puts tensors on the current GPU as it builds a model).
    """

    name = PLUGIN_NAME

    def __init__(self, preset: dict, device: str = "auto", threads: int = 0):
        self.preset = preset
        self.device = device
        self.threads = threads
        self._segmenter = None

    def setup(self, worker) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        device = self.device
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device in ("auto", "cuda") and gpus > 1 and str(worker.name).isdigit():
            device = f"cuda:{int(worker.name) % gpus}"
        if gpus and device.startswith("cuda:"):
            torch.cuda.set_device(torch.device(device))
        self.device = device

    def teardown(self, worker) -> None:
        self._segmenter = None

    def segmenter(self) -> Segmenter:
        """The worker's segmenter (models load on first use)."""
        if self._segmenter is None:
            self._segmenter = Segmenter(Preset.from_dict(self.preset), self.device)
        return self._segmenter


#: Topic of the progress events a worker sends while it segments a file.
PROGRESS_TOPIC = "cytomask-segment-progress"
#: Seconds between two progress events of one task (a GPU can yield hundreds a second).
_EVENT_EVERY = 1.0


def _task(job: Job, options: Options) -> dict:
    import dask
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins[PLUGIN_NAME]
    sent = [-_EVENT_EVERY]

    def report(progress: Progress) -> None:
        now = time.monotonic()
        if now - sent[0] >= _EVENT_EVERY:
            sent[0] = now
            # Plain values: the event is serialised, and a failure would fail the file.
            message = {"source": str(job.source), "stage": str(progress.stage),
                       "done": int(progress.done), "total": int(progress.total),
                       "detail": str(progress.detail)}  # fmt: skip
            worker.log_event(PROGRESS_TOPIC, message)

    # Lazy inputs (dask arrays over TIFF files) are read inside this task, not
    # sent back to the cluster as tasks of their own.
    with dask.config.set(scheduler="synchronous"):
        return process(job, plugin.segmenter(), options, report)


def default_workers(device: str = "auto") -> int:
    """One worker per GPU of ``device`` ("auto" and "cuda": every GPU; "cuda:1" and a
    Mac's GPU: one), else one worker per four CPU cores (at least one)."""
    import torch

    from .models.device import get_device

    kind = get_device(device).type
    if kind == "cuda" and device in ("auto", "cuda"):
        return torch.cuda.device_count()
    return 1 if kind != "cpu" else max(1, (os.cpu_count() or 1) // 4)


@dataclass
class Outcome:
    """What a batch run did: finished summaries and failures by input file, and how many
    inputs it left ``untried`` when it stopped at an output disk full or read-only, which
    every input after would fail on too."""

    finished: list[dict]
    failed: dict[str, str]
    untried: int = 0


#: Write failures that every later input would meet too: the run stops at the first.
_DISK_STOPS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def run(
    jobs: Sequence[Job],
    preset: Preset,
    options: Options,
    *,
    device: str = "auto",
    scheduler: str | None = None,
    workers: int = 0,
    threads: int = 0,
    on_result: Callable[[int, int, Job, dict | None, Exception | None], None] | None = None,
    on_progress: Callable[[Job, Progress], None] | None = None,
) -> Outcome:
    """Run jobs on a dask.distributed cluster; one task per job.

    Parameters
    ----------
    jobs
        From :func:`plan`.
    preset, options
        What to run and how to write it.
    device
        Device of every worker's models.
    scheduler
        Address of an existing scheduler (``tcp://host:8786``); ``None`` starts a
        local cluster of ``workers`` processes that is closed at the end;
        ``"synchronous"`` runs the jobs one after the other in this process.
    workers
        Worker processes of the local cluster; 0: :func:`default_workers`.
    threads
        PyTorch threads per worker; 0: the machine's cores divided among workers
        (in this process: PyTorch's default).
    on_result
        Called as ``(done, total, job, summary, error)`` after each job (``error``: the
        exception it failed with, or None).
    on_progress
        Called as ``(job, progress)`` while a job runs; from a cluster's workers, at
        most once a second per job and in another thread.

    Returns
    -------
    Outcome
        A failed job (a bad file, a model error) does not stop the others.
    """
    if workers < 0:
        raise BatchError(f"the number of workers must be 0 (automatic) or more, not {workers}.")
    device = str(device).strip().lower()  # "CUDA:1" as get_device takes it
    if scheduler == "synchronous":
        import torch

        if threads:
            torch.set_num_threads(threads)
        segmenter = Segmenter(preset, device)
        reports = [on_progress and partial(on_progress, job) for job in jobs]
        results = (
            (job, partial(process, job, segmenter, options, report))
            for job, report in zip(jobs, reports, strict=True)
        )
        return _collect(results, len(jobs), on_result)

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        workers = workers or default_workers(device)
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        with _deaf_to_ctrl_c():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                # Any free port: the default 8787 warns when another cluster holds it.
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,  # failures are reported per file
            )
        client = Client(cluster)
    futures = []
    try:
        if on_progress is not None:
            by_source = {str(job.source): job for job in jobs}

            def relay(event) -> None:
                message = event[1]  # (time, message); the scheduler adds the worker's address
                job = by_source.get(message["source"])
                if job is not None:
                    stage, done, total = message["stage"], message["done"], message["total"]
                    on_progress(job, Progress(stage, done, total, message["detail"]))

            client.subscribe_topic(PROGRESS_TOPIC, relay)
        client.register_plugin(SegmenterPlugin(preset.to_dict(), device, threads))
        futures = [
            client.submit(_task, job, options, key=f"cytomask-segment-{i}", pure=False)
            for i, job in enumerate(jobs)
        ]
        by_key = {f.key: job for f, job in zip(futures, jobs, strict=True)}
        results = ((by_key[f.key], f.result) for f in as_completed(futures))
        return _collect(results, len(jobs), on_result)
    finally:
        if futures:
            client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _deaf_to_ctrl_c():
    """Processes started here ignore Ctrl+C (SIGINT, which a terminal sends to all of a
    command's processes): the command stops its cluster itself, and workers that took the
    signal printed their tracebacks before its message. Python ignores it in a process
    started with it ignored; in the main thread only, where Python takes signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _collect(results, total: int, on_result) -> Outcome:
    """Gather ``(job, get_summary)`` pairs as they come; a failure is recorded, not raised,
    and the others go on, unless the output disk is full or read-only (then the run stops:
    the jobs not gathered yet are left, to be cancelled)."""
    outcome = Outcome([], {})
    for done, (job, get_summary) in enumerate(results, start=1):
        try:
            summary, error = get_summary(), None
            outcome.finished.append(summary)
        except Exception as err:  # noqa: BLE001  (reported per file, the others go on)
            summary, error = None, err
            outcome.failed[str(job.source)] = one_line(err)
        if on_result is not None:
            on_result(done, total, job, summary, error)
        if isinstance(error, OSError) and error.errno in _DISK_STOPS and done < total:
            outcome.untried = total - done
            break
    return outcome
