"""Corrupt files made from the shared real TIFFs: refused with the file named, never read
silently wrong, never allocating what a corrupt header promises, never blocking."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cytomask._reader import get_reader
from napari_cytomask.io.files import ImageReadError, find_inputs, read_image
from napari_cytomask.io.tiff import FileChanged, TiffReadError, read_tiff, read_tiff_stack


def _computed(path) -> list[np.ndarray]:
    """Every layer of a file, read to the last pixel (as napari does when showing it)."""
    return [np.asarray(d[0] if isinstance(d, list) else d) for d, _, _ in read_tiff(path)]


def _refused(path, match: str = "") -> str:
    """The reader and the command line's reader both refuse ``path``, naming it."""
    with pytest.raises(TiffReadError) as reader_error:
        _computed(path)
    with pytest.raises(ValueError) as cli_error:  # TiffReadError or ImageReadError
        read_image(path)
    for error in (reader_error.value, cli_error.value):
        assert str(path) in str(error), error
        assert match.lower() in str(error).lower(), error
    return str(reader_error.value)


@functools.cache
def _harness():
    """The fuzz harness (benchmarks/fuzz_tiffs.py): its TIFF layout and editing helpers."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_tiffs.py"
    spec = importlib.util.spec_from_file_location("fuzz_tiffs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _set_tag(path, code: int, value: int, page: int = 0) -> None:
    """Change one value in a classic TIFF's first IFD; a SHORT too small becomes a LONG."""
    order, _, pages = _harness()._layout(path)
    offset, dtype, _ = pages[page][2][code]
    data = bytearray(path.read_bytes())
    if int(dtype) == 3 and value > 0xFFFF:
        struct.pack_into(order + "H", data, offset - 6, 4)  # the entry's type field
        dtype = 4
    struct.pack_into(order + {3: "H", 4: "I", 16: "Q"}[int(dtype)], data, offset, value)
    path.write_bytes(bytes(data))


@pytest.fixture
def raw_tif(shared_data, tmp_path) -> Path:
    """A copy of a real 1022 x 1024 uint16 phase-contrast image (2 MB, 256 strips)."""
    path = tmp_path / "raw.tif"
    path.write_bytes((shared_data / "usiigaci-phc" / "set1" / "raw.tif").read_bytes())
    return path


# -- 3: broken page chains and inconsistent metadata --------------------------


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("page", [0, 1, 13])
def test_a_looping_page_chain_is_refused_or_read_whole(raw_tif, tmp_path, compression, page):
    """15 planes whose chain of pages loops back to the first: tifffile logs a circular
    reference and pads missing planes with zeros. The reader refuses the file with
    tifffile's complaint, or (uncompressed ImageJ data lie in one block) reads every plane."""
    crop = tifffile.imread(raw_tif)[:128, :128]
    stack = np.stack([np.roll(crop, 9 * i, axis=1) for i in range(15)]).reshape(5, 3, 128, 128)
    path = tmp_path / "hyperstack.tif"
    kwargs = {"imagej": True, "metadata": {"axes": "ZCYX"}, "compression": compression}
    tifffile.imwrite(path, stack, **kwargs)
    np.testing.assert_array_equal(np.stack(_computed(path), axis=1), stack)  # intact
    harness = _harness()
    layout = harness._layout(path)
    data = bytearray(path.read_bytes())
    assert harness._set_next_page(data, layout, page, layout[2][0][0])
    path.write_bytes(bytes(data))
    try:
        got = np.stack(_computed(path), axis=1)
    except TiffReadError:
        _refused(path, "circular reference")
    else:
        assert compression is None  # compressed planes cannot be found without the chain
        np.testing.assert_array_equal(got, stack)
        np.testing.assert_array_equal(read_image(path), stack)


@pytest.mark.parametrize(("key", "value"), [("SizeZ", "9"), ("SizeC", "1"), ("SizeT", "4")])
def test_ome_metadata_that_disagrees_with_the_pages_is_refused(shared_data, tmp_path, key, value):
    """A 3-channel, 5-slice OME-TIFF whose XML promises other sizes: tifffile pads missing
    planes with zeros or drops planes; the reader refuses the file instead."""
    source = shared_data / "tiff-formats/ome-tiff-samples/singles/multi-channel-z-series.ome.tif"
    data = source.read_bytes()
    old = f'{key}="'.encode()
    at = data.index(old) + len(old)
    changed = data[:at] + value.encode() + data[at + 1 :]
    assert len(changed) == len(data) and changed != data
    path = tmp_path / "scan.ome.tif"
    path.write_bytes(changed)
    # Said to be metadata that disagrees, not only a "truncated" file whose data "are zeroed".
    message = _refused(path, "its OME metadata and its planes disagree (OME series ")
    assert "Missing data are zeroed" not in message
    assert message.endswith("the OME-XML describes other sizes than the file holds, or the "
                            "file is truncated or corrupt; open the original file or export "
                            "it again")  # fmt: skip


def test_imagej_metadata_counting_no_channels_open_the_planes_as_one_stack(shared_data, tmp_path):
    """ImageJ metadata saying ``channels=0`` (written by a script, say): tifffile sets them
    aside and reads every page, but the reader refused the file as truncated or corrupt.
    Its pixels are whole: they open as one stack, with a warning that says how to fix it."""
    path = tmp_path / "scan.tif"
    path.write_bytes(
        (shared_data / "tiff-formats/imagej-composites/IXMtest_A02_s9.tif").read_bytes()
    )
    with tifffile.TiffFile(path) as tif:
        description = tif.pages[0].description
        planes = tif.asarray()
    assert "channels=3" in description and planes.shape[0] == 3
    tifffile.tiffcomment(path, description.replace("channels=3", "channels=0"))
    with pytest.warns(UserWarning, match=r"ImageJ metadata count 0 channels.*Image > Properties"):
        layers = read_tiff(path)
    assert [layer_type for _, _, layer_type in layers] == ["image"]
    np.testing.assert_array_equal(np.asarray(layers[0][0]), planes)


@pytest.mark.parametrize(
    ("axis", "largest", "planes"),
    [(0, 2**20, "20,971,540"), (2, 2**23, "16,777,218")],
    ids=["channel", "time"],
)
def test_a_micro_manager_index_counting_millions_of_planes_is_refused(
    shared_data, tmp_path, axis, largest, planes
):
    """One corrupt entry of a Micro-Manager stack's index map made tifffile list every
    plane it counts before reading one (found by changing bytes of a real file): counts
    that fit in memory filled it, and the system stopped the process. The file holds 2
    positions of 10 time points."""
    source = shared_data / "tiff-formats/ome-tiff-samples/singles"
    path = tmp_path / "181003_multi_pos_time_course_1_MMStack.ome.tif"
    data = bytearray((source / path.name).read_bytes())
    index_at = struct.unpack_from("<I", data, 12)[0]  # the header's offset of the index map
    assert struct.unpack_from("<II", data, index_at) == (3453623, 20)  # its tag, 20 entries
    struct.pack_into("<I", data, index_at + 8 + 4 * axis, largest)  # entry: C Z T R offset
    path.write_bytes(bytes(data))
    _refused(path, f"its Micro-Manager metadata count {planes} planes, more than any file holds")


@pytest.mark.parametrize("cut", [1, 16, 200])
def test_an_ome_tiff_missing_its_end_is_refused(shared_data, tmp_path, cut):
    """tifffile writes the OME-XML last: cut off, it is only logged, and the file read as
    one plain stack mixed 3 channels and 7 time points into one layer of 21 planes."""
    source = shared_data / "tiff-formats/ome-tiff-samples/singles/multi-channel-time-series.ome.tif"
    path = tmp_path / "scan.ome.tif"
    path.write_bytes(source.read_bytes()[:-cut])
    said = _refused(path, "truncated or corrupt")
    # What to do, as for a file of 0 bytes ("not saved or copied completely").
    assert said.endswith(
        "; copy it again from where it was saved, or save it again from the original"
    )


@pytest.mark.parametrize("offset", [0, 4])
def test_pixels_said_to_start_inside_the_header_are_refused(shared_data, tmp_path, offset):
    """A corrupt strip offset on a middle page showed the file's header as pixels."""
    source = shared_data / "tiff-formats/ome-tiff-samples/singles/multi-channel-z-series.ome.tif"
    path = tmp_path / "scan.ome.tif"
    path.write_bytes(source.read_bytes())
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[7].tags["StripOffsets"]
        order, first = tif.byteorder, tag.valueoffset if tag.count > 1 else tag.offset + 8
    struct.pack_into(order + "I", data, first, offset)
    path.write_bytes(data)
    assert "inside the file's header" in _refused(path, "corrupt")


def test_a_private_tag_past_the_end_leaves_the_image_readable(tmp_path):
    """Only a description past the end means a file cut short; a broken private tag does
    not stop tifffile, nor the reader."""
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    path = tmp_path / "private.tif"
    tifffile.imwrite(path, image, extratags=[(65000, "s", 0, "x" * 100, True)])
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        entry = tif.pages[0].tags[65000].offset  # code, type, count, then the value's offset
        order = tif.byteorder
    struct.pack_into(order + "I", data, entry + 8, len(data) + 1000)
    path.write_bytes(data)
    np.testing.assert_array_equal(_computed(path)[0], image)


# -- 5: sizes from a corrupt header -------------------------------------------


@pytest.mark.parametrize("size", [65535, 200000])
def test_a_huge_declared_size_is_refused_before_any_allocation(raw_tif, size):
    import resource

    _set_tag(raw_tif, 256, size)
    _set_tag(raw_tif, 257, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    message = _refused(raw_tif, "corrupt")
    assert time.perf_counter() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB
    assert "MemoryError" not in message


def test_a_tiled_file_declaring_4e9_pixels_a_side_is_refused(raw_tif, tmp_path):
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, tifffile.imread(raw_tif), tile=(256, 256))
    _set_tag(path, 256, 4_000_000_000)
    _set_tag(path, 257, 4_000_000_000)
    start = time.perf_counter()
    _refused(path, "header is corrupt")
    assert time.perf_counter() - start < 5


# -- 7: files that are not regular files --------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_named_tif_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.tif"
    os.mkfifo(fifo)
    outcome = {}

    def attempt():
        outcome["reader"] = get_reader(str(fifo))
        try:
            find_inputs([fifo])
        except ValueError as err:
            outcome["find_inputs"] = str(err)
        for name, read in (("read_tiff", read_tiff), ("read_image", read_image)):
            try:
                read(fifo)
            except (TiffReadError, ImageReadError) as err:
                outcome[name] = str(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "opening a FIFO blocked"
    assert outcome["reader"] is None
    assert outcome["find_inputs"] == f"{fifo} is not a regular file."
    assert "not a regular file" in outcome["read_tiff"] and str(fifo) in outcome["read_tiff"]
    assert "not a regular file" in outcome["read_image"] and str(fifo) in outcome["read_image"]


# -- 8, 12: corrupt compressed data and headers, named ------------------------


@pytest.mark.parametrize("compression", ["zlib", "lzw"])
def test_corrupt_compressed_strips_name_the_file(raw_tif, tmp_path, compression):
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, tifffile.imread(raw_tif), compression=compression, rowsperstrip=64)
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[3], tif.pages[0].databytecounts[3]
    data = bytearray(path.read_bytes())
    data[offset : offset + count // 2] = bytes(count // 2)
    path.write_bytes(bytes(data))
    message = _refused(path, "pixel data cannot be decoded")
    assert "the file is corrupt" in message


@pytest.mark.parametrize(
    ("code", "value"), [(258, 0), (258, 1), (258, 7), (278, 0), (259, 99), (256, 1), (257, 0)]
)
def test_corrupt_header_values_give_a_sentence_with_the_file_name(raw_tif, code, value):
    _set_tag(raw_tif, code, value)
    message = _refused(raw_tif)
    # A sentence first; a library's own words ("rowsperstrip=0 < 1") only in brackets.
    assert re.match(
        rf"Cannot read TIFF file {re.escape(str(raw_tif))}: (its header is corrupt|its structure "
        r"is corrupt \(.*\); open the original|it uses a compression or layout this reader "
        r"cannot decode|it holds an empty image)",
        message,
    ), message


# -- 9: empty images ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 0), (0, 64), (64, 0)])
def test_empty_images_are_refused(tmp_path, shape):
    path = tmp_path / "empty.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint16))
    _refused(path, "empty")


def test_complex_numbers_are_refused_as_such(tmp_path):
    path = tmp_path / "fourier.tif"
    tifffile.imwrite(path, np.ones((8, 8), np.complex64))
    assert "corrupt" not in _refused(path, "complex numbers")


def test_a_tiff_this_user_may_not_read_says_so(raw_tif, tmp_path, monkeypatch):
    """Taken by the reader (napari would otherwise say no reader fits) and explained. Root,
    who runs the tests in CI, may read any file, so the permission is denied here."""
    path = tmp_path / "locked.tif"
    path.write_bytes(Path(raw_tif).read_bytes())
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode)
    )
    reader = get_reader(str(path))
    assert reader is not None
    with pytest.raises(TiffReadError, match="no permission to read it"):
        reader(str(path))


# -- files written over after they were opened --------------------------------


def _written_over(path: Path, data: bytes) -> None:
    """``path`` written over in place (the same file, as ``cp`` writes it), later than it was
    opened: its modification time moves on by a second, as a coarse file-system clock may
    not show within a test."""
    opened = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(opened + 10**9, opened + 10**9))


@pytest.mark.parametrize("change", ["another field", "compressed", "moved"])
def test_a_tiff_changed_after_it_was_opened_is_refused_not_read(
    shared_data, raw_tif, tmp_path, change
):
    """A scan written over while open in napari with another field of the same size was
    segmented from pixels other than those on screen, without a word; the same image saved
    again compressed was called corrupt. Its pixels are read when shown or segmented."""
    data, size = read_tiff(raw_tif)[0][0], raw_tif.stat().st_size
    if change == "another field":
        _written_over(raw_tif, (shared_data / "usiigaci-phc" / "set2" / "raw.tif").read_bytes())
        why = r"written at [-\d]+ [:\d]+"
    elif change == "compressed":
        tifffile.imwrite(tmp_path / "zlib.tif", tifffile.imread(raw_tif), compression="zlib")
        _written_over(raw_tif, (tmp_path / "zlib.tif").read_bytes())
        why = rf"written at [-\d]+ [:\d]+; \d+ bytes, {size} when opened"
    else:
        raw_tif.rename(tmp_path / "elsewhere.tif")
        why = "it is no longer there: deleted, moved or renamed"
    with pytest.raises(FileChanged) as error:
        np.asarray(data)
    assert re.fullmatch(
        rf"{re.escape(str(raw_tif))} changed on disk after it was opened \({why}\); open it again",
        str(error.value),
    ), error.value
    assert isinstance(error.value, TiffReadError)  # shown as the docks show read errors


def test_a_tiff_written_over_while_its_pixels_are_read_is_not_called_corrupt(
    raw_tif, tmp_path, monkeypatch
):
    """Saved again compressed between the check and the read: the strips the opened file had
    fail to decode, which is the file's change, not a corrupt file."""
    from napari_cytomask.io import tiff

    tifffile.imwrite(tmp_path / "zlib.tif", tifffile.imread(raw_tif), compression="zlib")
    data = read_tiff(raw_tif)[0][0]
    decoding = tiff._decoding

    @contextlib.contextmanager
    def written_over_meanwhile(path):
        _written_over(raw_tif, (tmp_path / "zlib.tif").read_bytes())
        with decoding(path):
            yield

    monkeypatch.setattr(tiff, "_decoding", written_over_meanwhile)
    with pytest.raises(FileChanged, match="changed on disk after it was opened"):
        np.asarray(data)


def test_a_stacked_file_changed_after_the_stack_was_opened_is_refused(tmp_path):
    """*Open Files as Stack* reads each file's plane when it is shown: a file written over
    meanwhile gave its new pixels in the place of those checked."""
    rng = np.random.default_rng(1)
    files = [tmp_path / f"t{i}.tif" for i in range(3)]
    for path in files:
        tifffile.imwrite(path, rng.integers(100, 4000, (32, 32), dtype=np.uint16))
    ((data, _, _),) = read_tiff_stack(files)
    tifffile.imwrite(tmp_path / "other.tif", rng.integers(100, 4000, (32, 32), dtype=np.uint16))
    _written_over(files[2], (tmp_path / "other.tif").read_bytes())
    np.testing.assert_array_equal(np.asarray(data[1]), tifffile.imread(files[1]))
    with pytest.raises(FileChanged, match=rf"^{re.escape(str(files[2]))} changed on disk"):
        np.asarray(data[2])


# -- the fuzz harness ---------------------------------------------------------


@pytest.mark.slow
def test_fuzz_subset_has_no_hang_loss_traceback_or_big_allocation(shared_data, tmp_path):
    """The benchmark's quick subset: each corrupt file in its own limited process."""
    fuzz = _harness()
    problems = []
    counts = fuzz.fuzz(shared_data, tmp_path, quick=True, echo=problems.append)
    assert counts["cases"] >= 10 and counts["refused"] >= 8, counts
    assert problems == []
    for key in ("hangs", "silent losses", "raw tracebacks", "big allocations"):
        assert counts[key] == 0, counts


def test_memory_running_out_while_pixels_are_read_is_not_called_a_corrupt_file(raw_tif):
    """A healthy 6132 × 6144 TIFF read with too little memory left was said to have "a
    header that declares an image too large for memory, so the header is corrupt": the
    user was told their raw data was damaged. It is a MemoryError naming the file, which
    the command line and the docks say as memory running out, with what helps."""
    from napari_cytomask.io.tiff import _decoding
    from napari_cytomask.progress import host_out_of_memory, one_line

    with pytest.raises(MemoryError) as caught, _decoding(str(raw_tif)):
        raise MemoryError
    assert host_out_of_memory(caught.value)
    assert one_line(caught.value) == f"out of memory (reading the pixels of {raw_tif})"
    assert "corrupt" not in str(caught.value)
    # Opening, where a corrupt header's sizes may be what did not fit, says both.
    from napari_cytomask.io.tiff import _problem

    assert _problem(MemoryError()).startswith(
        "it did not fit in the memory left; close other programs and open it again. If it "
        "still does not, its header is corrupt"
    )
    # Other images read whole (PNG, NumPy) likewise: it was "does not fit in memory" alone.
    from napari_cytomask.io.files import _decoding as decoding_image

    with pytest.raises(MemoryError) as caught, decoding_image("cells.png"):
        raise MemoryError
    assert one_line(caught.value) == "out of memory (reading cells.png)"


def test_a_damaged_file_read_in_another_thread_does_not_fail_a_healthy_one(tmp_path):
    """tifffile logs a broken strip to one logger for every file: read in napari's threads
    beside a damaged file, a healthy one was refused as "truncated or corrupt"."""
    import logging

    from napari_cytomask.io.tiff import _decoding

    complaint = "<TiffPage 3> failed to read 4096 bytes, got 0"
    reading, logged = threading.Event(), threading.Event()

    def damaged_beside() -> None:
        reading.wait(5)
        logging.getLogger("tifffile").warning(complaint)
        logged.set()

    beside = threading.Thread(target=damaged_beside)
    beside.start()
    try:
        with _decoding(str(tmp_path / "healthy.tif")):  # its pixels decoded meanwhile
            reading.set()
            assert logged.wait(5)
    finally:
        beside.join()
    # In the thread reading, the same words are the file's own fault.
    with (
        pytest.raises(TiffReadError, match="healthy.tif"),
        _decoding(str(tmp_path / "healthy.tif")),
    ):
        logging.getLogger("tifffile").warning(complaint)
