"""write_atomically: the permissions of what it writes, and never replacing a file it
was not allowed to replace."""

import json
import os
import stat

import numpy as np
import pytest

from napari_cytomask.io import atomic
from napari_cytomask.io.writers import write_labels


@pytest.fixture
def umask_022():
    """A known umask, so that a private (0600) file cannot pass for a plain new one."""
    before = os.umask(0o022)
    yield 0o022
    os.umask(before)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_written_labels_file_has_the_permissions_of_a_plain_new_file(tmp_path, umask_022):
    """Without this, saved labels stay private (0600, as mkstemp makes them) unnoticed."""
    labels = np.zeros((16, 16), np.uint8)
    labels[4:8, 4:8] = 1
    path = write_labels(tmp_path / "cells.tif", labels)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask_022 == 0o644
    # The same when an existing file is replaced.
    path.chmod(0o600)
    write_labels(path, labels, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux reads it from /proc")
def test_a_shared_folders_umask_is_read_without_being_changed(tmp_path, monkeypatch):
    """Read by setting it to 022 and back, the umask was 022 for an instant, in which a file
    another thread made (napari's, a second export) lost a shared folder's group write."""
    before = os.umask(0o002)
    try:

        def changed(mask):
            raise AssertionError(f"the umask was set to {mask:o} while a file was written")

        monkeypatch.setattr(os, "umask", changed)
        path = write_labels(tmp_path / "cells.tif", np.ones((8, 8), np.uint8))
        monkeypatch.undo()
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(before)


def test_a_file_that_appears_while_writing_is_kept_and_the_write_refused(tmp_path):
    """Without this, a file another program saved at the target meanwhile is silently replaced."""
    target = tmp_path / "cells.tif"

    def write(tmp):
        tmp.write_bytes(b"ours")
        target.write_bytes(b"theirs")  # another program saves under the same name now

    with pytest.raises(FileExistsError, match="appeared while saving"):
        atomic.write_atomically(target, write)
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.tif"]  # no temporary left


def test_without_hard_links_a_file_that_appeared_is_still_kept(tmp_path, monkeypatch):
    """Without this, file systems without hard links (FAT) would replace a file that appeared."""
    target = tmp_path / "cells.tif"

    def no_links(src, dst, *args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)

    def write(tmp):
        tmp.write_bytes(b"ours")
        target.write_bytes(b"theirs")

    with pytest.raises(FileExistsError, match="already exists"):
        atomic.write_atomically(target, write)
    assert target.read_bytes() == b"theirs"
    # With nothing in the way, the same file system still gets the file.
    other = tmp_path / "other.tif"
    atomic.write_atomically(other, lambda tmp: tmp.write_bytes(b"ours"))
    assert other.read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.tif", "other.tif"]


def test_replacing_a_link_replaces_the_file_it_points_to(tmp_path):
    """Saved with overwrite onto a link, the link became a file of its own and the file it
    pointed to kept the old content, unsaid."""
    target, link = tmp_path / "shared" / "labels.tif", tmp_path / "link.tif"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link.symlink_to(target)
    written = atomic.write_atomically(link, lambda tmp: tmp.write_bytes(b"new"), overwrite=True)
    assert link.is_symlink() and target.read_bytes() == b"new" and written == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["labels.tif"]
    with pytest.raises(FileExistsError):
        atomic.write_atomically(link, lambda tmp: tmp.write_bytes(b"newer"))
    assert target.read_bytes() == b"new"


def test_replacing_a_link_to_a_folder_replaces_the_folder_it_points_to(tmp_path):
    """An OME-Zarr store saved with overwrite onto a link to one: the link became a folder of
    its own and the store it pointed to kept the old labels."""
    target, link = tmp_path / "shared" / "labels.ome.zarr", tmp_path / "link.ome.zarr"
    target.mkdir(parents=True)
    (target / "old").write_bytes(b"old")
    link.symlink_to(target, target_is_directory=True)

    def write(tmp):
        (tmp / "new").write_bytes(b"new")

    written = atomic.write_directory_atomically(link, write, overwrite=True)
    assert link.is_symlink() and written == target
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["labels.ome.zarr"]
    # A link to a file is no store to replace: the file it points to stays.
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    to_file = tmp_path / "cells.ome.zarr"
    to_file.symlink_to(notes)
    with pytest.raises(atomic.WriteError, match="is a link to the file"):
        atomic.write_directory_atomically(to_file, write, overwrite=True)
    assert notes.read_text() == "precious" and to_file.is_symlink()
    # A link to nothing is replaced, as a file write replaces it: it said "a file is in the
    # way"; without overwrite it stays.
    dangling = tmp_path / "gone.ome.zarr"
    dangling.symlink_to(tmp_path / "nowhere.ome.zarr", target_is_directory=True)
    with pytest.raises(FileExistsError):
        atomic.write_directory_atomically(dangling, write)
    assert dangling.is_symlink()
    written = atomic.write_directory_atomically(dangling, write, overwrite=True)
    assert written == dangling and dangling.is_dir() and not dangling.is_symlink()
    assert sorted(p.name for p in dangling.iterdir()) == ["new"]


def test_a_folder_that_takes_no_new_files_is_not_said_to_be_missing(tmp_path):
    """/proc refuses new files with "No such file or directory": the message named a folder
    that is there as missing."""
    refused = FileNotFoundError(2, "No such file or directory", str(tmp_path / "cells.tif"))
    assert atomic.reason(refused) == f"{tmp_path} takes no new files (the system keeps that folder)"
    gone = FileNotFoundError(2, "No such file or directory", str(tmp_path / "gone" / "cells.tif"))
    assert atomic.reason(gone) == "the folder does not exist"
    assert atomic.reason(FileNotFoundError(2, "No such file or directory")) == (
        "the folder does not exist"
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="a system with /proc")
@pytest.mark.parametrize("name", ["cells.tif", "new/cells.tif"])
def test_saving_into_proc_says_the_folder_takes_no_new_files(name):
    with pytest.raises(atomic.WriteError, match="/proc takes no new files"):
        write_labels(f"/proc/{name}", np.ones((4, 4), np.uint8))


def test_only_text_is_replaced_by_text(tmp_path):
    """A table written with overwrite replaces an earlier table, never an image or a model."""
    image = tmp_path / "scan.tif"
    write_labels(image, np.ones((4, 4), np.uint8))
    with pytest.raises(FileExistsError, match="holds binary data"):
        atomic.check_replaces_text(image, "a CSV table")
    with pytest.raises(FileExistsError, match="holds binary data"):
        atomic.check_output(image, overwrite=True, text="a CSV table")
    atomic.check_output(image, overwrite=True)  # a file of any kind, when not writing text
    table = tmp_path / "table.csv"
    table.write_text("prediction,value\nset1,0.9\n", encoding="utf-8")
    atomic.check_replaces_text(table, "a CSV table")
    latin = tmp_path / "excel.csv"  # a table saved in another encoding is text too
    latin.write_bytes("caf\xe9;1\n".encode("cp1252"))
    atomic.check_replaces_text(latin, "a CSV table")
    atomic.check_replaces_text(tmp_path / "new.csv", "a CSV table")  # nothing there


def test_files_moved_in_together_go_in_at_the_end_or_not_at_all(tmp_path):
    write_json, moved_in_together = atomic.write_json, atomic.moved_in_together
    (tmp_path / "a.txt").write_text("earlier")
    with pytest.raises(RuntimeError), moved_in_together() as together, together.holding():
        write_json(tmp_path / "a.txt", {"new": 1}, overwrite=True)
        write_json(tmp_path / "b.json", {"new": 2})
        raise RuntimeError("the disk filled up at the third file")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"a.txt": "earlier"}
    with moved_in_together() as together:
        with together.holding():
            write_json(tmp_path / "a.txt", {"new": 1}, overwrite=True)
        write_json(tmp_path / "c.json", {"not": "held"})  # outside its blocks: moved in now
        assert (tmp_path / "c.json").exists()
        with together.holding():
            write_json(tmp_path / "b.json", {"new": 2})
        assert (tmp_path / "a.txt").read_text() == "earlier"
        assert not (tmp_path / "b.json").exists()
    assert together.moved == [tmp_path / "a.txt", tmp_path / "b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.json"]
    assert (tmp_path / "a.txt").read_text() == '{\n "new": 1\n}'


def test_a_disk_without_a_byte_left_leaves_no_folder_and_says_so(tmp_path, monkeypatch):
    """With no byte left, writing who holds an output folder failed outside any handling:
    "[Errno 28] No space left on device" alone, and a new folder holding a stray lock file
    was left behind. It is said as the disk being full, and the folder made is removed."""
    import errno
    import types

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "os", types.SimpleNamespace(**{**vars(os), "write": no_space}))
    new, there = tmp_path / "new" / "out", tmp_path / "there"
    there.mkdir()
    for folder in (new, there):
        with pytest.raises(atomic.WriteError) as caught, atomic.locked_folders([folder], "test"):
            pass
        assert str(caught.value) == (
            f"Could not write into {folder}: the disk is full. Nothing was written; choose "
            "another folder."
        )
    assert not new.parent.exists()  # nor its parent, made for it too
    assert list(there.iterdir()) == []


def test_json_keeps_names_readable_and_names_of_no_utf8_whole(tmp_path):
    """Provenances and records wrote "Zelllinie_Gr\\u00f6\\u00dfe": a person could not read
    the file names in them. A name of bytes that are no UTF-8 is still written, escaped."""
    import json

    name = "Zelllinie_Größe – 10 µm.tif"
    path = atomic.write_json(tmp_path / "a.json", {"source": name})
    assert name in path.read_text(encoding="utf-8")
    odd = os.fsdecode(b"well\xff.tif")  # a name Linux allows, no UTF-8
    path = atomic.write_json(tmp_path / "b.json", {"source": odd, "other": name})
    assert json.loads(path.read_text(encoding="utf-8")) == {"source": odd, "other": name}


@pytest.mark.parametrize("interrupted", [False, True])
def test_folders_made_for_a_run_and_left_empty_are_removed(tmp_path, interrupted):
    """Stopped by Ctrl+C, `cytomask segment -o out` left an empty folder for every input
    it never reached (out/set2 … out/set4); those made for it and left empty go, and a
    folder that holds anything, or that was there before, stays."""
    before = tmp_path / "there before"
    before.mkdir()
    out = tmp_path / "out"
    written, empty, deep = out / "set1", out / "set2", tmp_path / "d" / "e"
    try:
        with atomic.locked_folders([written, empty, deep, before], "test"):
            (written / "cells.tif").write_bytes(b"cells")
            if interrupted:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        assert interrupted
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "out", "out/set1", "out/set1/cells.tif", "there before"
    ]  # fmt: skip


@pytest.mark.parametrize("stop", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_a_folder_replaced_is_never_lost_between_its_two_moves(tmp_path, monkeypatch, stop):
    """Ctrl+C between moving the earlier OME-Zarr store aside and moving the new one in
    deleted both; so did an error putting the earlier one back."""
    import os

    store = tmp_path / "cells.ome.zarr"
    store.mkdir()
    (store / "old").write_text("the earlier result")

    def stopped(*args):
        raise stop

    monkeypatch.setattr(os, "rename", stopped)
    with pytest.raises(type(stop)):
        atomic.write_directory_atomically(store, lambda tmp: (tmp / "new").write_text("new"),
                                          overwrite=True)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.ome.zarr"]
    assert (store / "old").read_text() == "the earlier result"
    # Not put back either: kept, and said where.
    replace = os.replace

    def put_back_fails(source, target):
        if source.parent.name.endswith(".old"):
            raise OSError(5, "Input/output error")
        replace(source, target)

    monkeypatch.setattr(os, "replace", put_back_fails)
    with pytest.raises(atomic.WriteError) as caught:
        atomic.write_directory_atomically(store, lambda tmp: (tmp / "new").write_text("new"),
                                          overwrite=True)  # fmt: skip
    (aside,) = tmp_path.glob(".cells.ome.zarr.*.old/cells.ome.zarr")
    assert (aside / "old").read_text() == "the earlier result"
    assert f"could not be put back: it is in {aside}. Move it back to {store}" in str(caught.value)


def test_a_disk_that_tells_case_apart_is_found_so_from_a_folder_not_made_yet(tmp_path):
    """Linux's disks tell Pos0 from pos0; the probe leaves nothing behind, and a folder to
    be made is judged by the one that holds it."""
    from napari_cytomask.io.atomic import ignores_case

    assert (tmp_path / "A").exists() is False and not (tmp_path / "a").exists()
    (tmp_path / "a").mkdir()
    assert not (tmp_path / "A").exists()  # the test's premise: this disk tells case apart
    assert ignores_case(tmp_path / "not" / "made") is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_file_in_the_way_names_the_argument_that_replaces_it(tmp_path):
    """From Python, a write over a file said to choose another name or delete the old file,
    never the ``overwrite`` argument every writer here takes."""
    path, store = tmp_path / "cells.json", tmp_path / "cells.ome.zarr"
    atomic.write_json(path, {"cells": 1})
    store.mkdir()
    refusals = [
        lambda: atomic.write_json(path, {"cells": 2}),
        lambda: atomic.write_atomically(path, lambda tmp: tmp.write_text("{}")),
        lambda: atomic.check_output(path),
        lambda: atomic.write_directory_atomically(store, lambda tmp: None),
    ]
    for refused in refusals:
        with pytest.raises(FileExistsError, match=r"overwrite=True from Python; --overwrite "):
            refused()
    assert json.loads(path.read_text()) == {"cells": 1} and not any(store.iterdir())
    atomic.write_json(path, {"cells": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"cells": 2}
