"""Atomic file writing shared by every writer and export of the plugin."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import glob
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# What follows ".NAME." in a temporary's name: an optional "HOST-PID.", the
# 8 random characters of the tempfile module, then the suffix.
_LEFTOVER = re.compile(r"(?:([A-Za-z0-9]+)-(\d+)\.)?[a-z0-9_]{8}\.(?:part|old)")


class WriteError(OSError):
    """A file could not be written; the message says why and what to do."""

    def __str__(self) -> str:
        # The message already says why; OSError would put "[Errno 28]" before it.
        return self.strerror or super().__str__()


class FolderBusy(WriteError):
    """Another process of the plugin is writing into the folder."""


#: Name of the lock file that a writer holds in an output folder while it writes there.
LOCK_NAME = ".cytomask.lock"


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The file that stands where ``folder`` or one of its parents should be, if any."""
    folder = Path(folder)
    return next((p for p in (folder, *folder.parents) if p.is_file()), None)


def one_of(path: str | os.PathLike, files: Sequence[str | os.PathLike]) -> bool:
    """Whether ``path`` is one of ``files`` (through links and relative names)."""
    return os.path.realpath(path) in {os.path.realpath(f) for f in files}


def same_file(a: str | None, b: str | None) -> bool:
    """Whether two files named (``None``: none) are one, however their paths are spelt."""
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)


def ignores_case(folder: str | os.PathLike) -> bool:
    """Whether the disk of ``folder`` (of its nearest folder that exists, when it is to be
    made) takes names that differ in case alone as one, as Windows' and macOS's do; found
    by a file made and removed there. False where none can be made (nothing will be)."""
    here = Path(os.path.abspath(folder))
    while not here.is_dir() and here != here.parent:
        here = here.parent
    try:
        with tempfile.NamedTemporaryFile(prefix="cytomask-case-", dir=here) as probe:
            name = Path(probe.name)
            return (name.parent / name.name.upper()).exists()
    except OSError:
        return False


def check_output(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Sequence[str] = (),
    text: str | None = None,
) -> Path:
    """Check, before long work, that :func:`write_atomically` can write ``path``.

    ``text``, for a text file (``"a CSV table"``): what is written, so that ``overwrite``
    replaces only text (:func:`check_replaces_text`).

    Raises
    ------
    ValueError
        When ``path`` is one of ``inputs`` (writing would replace a file being read).
    FileExistsError
        When a file is there and ``overwrite`` is false, or a file that is not text is
        there and ``text`` is given.
    WriteError
        When a folder of that name, or a file where its folder should be, is in the way, or
        its folder (or the one it would be made in) cannot be written into.
    """
    path = Path(path)
    if one_of(path, inputs):
        raise ValueError(f"{path} is one of the input files; choose another output file.")
    if path.is_dir():
        raise WriteError(errno.EISDIR, f"{path} is a folder; give a file name to write.")
    in_the_way = file_in_the_way(path.parent)
    if in_the_way is not None:
        raise WriteError(
            errno.ENOTDIR, f"cannot save {path}: {in_the_way} is a file, not a folder."
        )
    if os.path.lexists(path) and not overwrite:
        raise _exists(path)
    if text is not None:
        check_replaces_text(path, text)
    check_folder_writable(path.parent)
    return path


def check_folder_writable(folder: str | os.PathLike) -> None:
    """Raise a :class:`WriteError` saying why when nothing can be written into ``folder``
    (or, when it is not there yet, the folder it would be made in)."""
    folder = Path(folder)
    there = next(p for p in (folder, *folder.parents) if p.exists())
    refused = not_writable(there)
    if refused is not None:
        raise _cannot_write_into(there, refused)


def not_writable(folder: str | os.PathLike) -> OSError | None:
    """Why nothing can be written into ``folder``, as the error writing would give (a disk
    mounted read-only, said as "no permission" before), or None when it can be."""
    if os.access(folder, os.W_OK):
        return None
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        read_only = False
    code = errno.EROFS if read_only else errno.EACCES
    return OSError(code, os.strerror(code))


def check_replaces_text(path: str | os.PathLike, what: str) -> None:
    """Refuse to replace a file that is not text with ``what`` (``"a CSV table"``).

    ``--overwrite`` is given to replace an earlier table; a mistyped name (the scan beside
    it, ``-o scan.ome.tif``) would otherwise lose an image to a table.

    Raises
    ------
    FileExistsError
        When ``path`` is a file that holds binary data: a NUL byte in its first 8 KiB, as
        TIFF, PNG, JPEG, NumPy, ZIP and safetensors files have in their first bytes, and
        no text in an 8-bit encoding or UTF-8 has.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_TEXT_SNIFF)
    except OSError:  # no file, or none to read: nothing is lost
        return
    if b"\0" in head:
        raise FileExistsError(
            f"{path} holds binary data (an image, a model or the like), not text, so it was "
            f"left as it is: overwriting replaces only an earlier text file with {what}. "
            "Choose another name."
        )


#: Bytes of a file read to tell text from binary data.
_TEXT_SNIFF = 8192


def json_ready(value):
    """``value`` as what strict JSON holds: a missing number (NaN, infinite) is ``null``
    (Python would write a bare NaN, which JavaScript and most other readers refuse), NumPy
    values and arrays, tuples, paths and other objects are numbers, lists or text."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())  # a 0-d array is one number
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def write_json(
    path: str | os.PathLike, content: dict, *, overwrite: bool = False, indent: int = 1
) -> Path:
    """Write ``content`` as strict JSON (:func:`json_ready`), atomically: in UTF-8, so the
    names a person reads in it stay readable ("Größe", not "Gr\\u00f6\\u00dfe"), but for
    a file name of bytes that are no UTF-8, whose escapes alone keep it."""
    content = json_ready(content)
    text = json.dumps(content, indent=indent, allow_nan=False, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(content, indent=indent, allow_nan=False)

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_atomically(path, write, overwrite=overwrite)


#: The moves into place that :func:`moved_in_together` holds back, where one is open.
_HELD: contextvars.ContextVar[list[tuple[Path, Path, bool]] | None] = contextvars.ContextVar(
    "held moves", default=None
)


class Together:
    """What :func:`moved_in_together` yields: ``moved``, the files moved in and not put
    back, and :meth:`holding`, the blocks whose writes it holds back."""

    def __init__(self):
        self.held: list[tuple[Path, Path, bool]] = []
        self.moved: list[Path] = []

    @contextlib.contextmanager
    def holding(self):
        """Hold back the moves of the files :func:`write_atomically` writes in this block.
        A block without a yield in it: a generator suspended in one left its thread holding
        back every other write, and one closed from another thread (a cancelled worker's,
        closed in napari's) could not end it."""
        token = _HELD.set(self.held)
        try:
            yield
        finally:
            _HELD.reset(token)


@contextlib.contextmanager
def moved_in_together():
    """Hold back the moves into place of the files :func:`write_atomically` writes in the
    :meth:`Together.holding` blocks of this one until every one is written; then move them
    all in (renames, which need no space), or, on an error, none, removing their temporary
    files.

    For files that describe each other (labels, their tables and provenance): a disk that
    fills up at the third would otherwise leave the new labels beside the old tables, and
    the old provenance passing them off as the earlier export. A move that fails (a file
    open in another program, a link to a file on another disk) or is interrupted puts
    back the files moved in before it: those replaced from a second name kept for them
    (a hard link) until every move is done, new ones removed. Yields a :class:`Together`,
    whose ``moved`` lists the files moved in and not put back: all once the block ends,
    and after a failed move those that could not be (replaced on a file system without
    hard links), for the caller to say.
    """
    together = Together()
    held, moved = together.held, together.moved
    try:
        yield together
    except BaseException:
        for tmp, _, _ in held:
            tmp.unlink(missing_ok=True)
        raise
    # Each file moved in: whether one was there before, and that one's second name.
    aside: dict[Path, tuple[bool, Path | None]] = {}
    try:
        for tmp, path, overwrite in held:
            existed = os.path.lexists(path)
            earlier = _kept_aside(path) if overwrite and existed else None
            try:
                _move_in(tmp, path, overwrite)
            except BaseException:
                if earlier is not None:
                    earlier.unlink(missing_ok=True)
                raise
            aside[path] = (existed, earlier)
            moved.append(path)
    except BaseException:
        for path in reversed(moved.copy()):
            existed, earlier = aside[path]
            if existed and earlier is None:
                continue  # replaced, with no second name to put back: said by the caller
            with contextlib.suppress(OSError):
                if earlier is not None:
                    os.replace(earlier, path)
                else:
                    path.unlink()
                moved.remove(path)
        raise
    finally:
        for tmp, _, _ in held:
            tmp.unlink(missing_ok=True)
        for _, earlier in aside.values():
            if earlier is not None:
                earlier.unlink(missing_ok=True)


def _kept_aside(path: Path) -> Path | None:
    """A second name for the file at ``path`` (a hard link, hidden beside it and named as
    :func:`remove_leftovers` removes it), for it to be put back once replaced; None for a
    folder, or on a file system without hard links (FAT, some network shares)."""
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    aside = path.with_name(f"{_prefix(path.name)}{secrets.token_hex(4)}.old")
    try:
        os.link(path, aside)
    except OSError:
        return None
    return aside


def _move_in(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the written temporary file ``tmp`` to ``path``, replacing a file there only
    with ``overwrite`` (checked at this moment); a failure said as :func:`write_atomically`
    says one."""
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    except FileExistsError:
        raise
    except OSError as err:
        raise WriteError(err.errno, _explain(err, path)) from err


def write_atomically(
    path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Write a file through a temporary file beside it, then move it into place.

    A failed write (full disk, no permission, an interruption) leaves neither a
    partial file nor a damaged older one, and an existing file is only replaced
    when ``overwrite`` is true (checked again at the moment of moving in). A missing
    folder is made. Inside :func:`moved_in_together`, the move waits for the block's end.

    Parameters
    ----------
    path
        The file to create.
    write
        Writes the content to the temporary path it is given.
    overwrite
        Replace an existing file (through a link to one: the file it points to).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is false.
    WriteError
        If the disk is full, read-only or not writable; nothing is left behind.
    """
    path = Path(path)
    if os.path.lexists(path) and not overwrite:
        raise _exists(path)
    path = _linked(path)
    directory = make_folder(path.parent)  # a new folder, as segment and export make
    remove_leftovers(path)
    fd, tmp_name = _temporary(directory, path.name)
    tmp = Path(tmp_name)
    held = _HELD.get()
    kept = False  # held back, to be moved in with the others of its block
    try:
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file private; give it the permissions of a plain new file.
        os.chmod(tmp, 0o666 & ~_umask())
        if held is not None:
            held.append((tmp, path, overwrite))
            kept = True
        else:
            _move_in(tmp, path, overwrite)
    except WriteError:
        raise
    except OSError as err:
        if isinstance(err, FileExistsError):
            raise
        code = err.errno if err.errno is not None else _system_error(err, directory)
        # numpy reports a full disk without the system's number ("4186112 requested and
        # 143232 written"): said as the full disk it is.
        said = err if code == err.errno else OSError(code, os.strerror(code))
        raise WriteError(code, _explain(said, path)) from err
    except Exception as err:
        # Errors about the content itself are never the disk's.
        code = None if isinstance(err, (ValueError, TypeError)) else _system_error(err, directory)
        if code is None:
            raise
        raise WriteError(code, _explain(OSError(code, os.strerror(code)), path)) from err
    finally:
        if not kept:
            tmp.unlink(missing_ok=True)
    return path


def _linked(path: Path) -> Path:
    """What a write of ``path`` replaces: through a link, the file or folder it points to.

    Replaced, a link would become a file of its own and what it points to would keep the
    old content: the target is replaced, as a shell's ">" does."""
    return Path(os.path.realpath(path)) if os.path.islink(path) and os.path.exists(path) else path


#: Free bytes under which a disk counts as full.
_FULL_BELOW = 1 << 20
#: How safetensors (and other Rust writers) quote the system's error: "I/O error: File too
#: large (os error 27)".
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _system_error(err: Exception, directory: Path) -> int | None:
    """The system's error number behind a writer's error of its own, or None.

    Writers that are not Python's own file objects report a failed write in errors of their
    own: safetensors quotes the system's error ("I/O error: … (os error 27)"), torch.save
    says "iostream error" when the disk is full.
    """
    text = str(err)
    quoted = _OS_ERROR.search(text)
    if quoted:
        return int(quoted.group(1))
    if os.strerror(errno.ENOSPC) in text or _full(directory):
        return errno.ENOSPC
    return errno.EIO if "I/O error" in text else None


def _full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < _FULL_BELOW
    except OSError:
        return False


def write_directory_atomically(
    path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Fill a folder (e.g. an OME-Zarr store) under a temporary name, then move it into place.

    Like :func:`write_atomically`: a failed or interrupted write leaves no
    folder under the final name, and an existing one is replaced only with
    ``overwrite`` (it is moved aside first and deleted once the new one is in place).
    """
    path = Path(path)
    if os.path.lexists(path) and not overwrite:
        raise _exists(path)
    if os.path.islink(path) and os.path.isfile(path):
        raise WriteError(
            errno.ENOTDIR,
            f"{path} is a link to the file {os.path.realpath(path)}, where a folder would be "
            "written; the file was left as it is. Choose another name.",
        )
    path = _linked(path)
    directory = make_folder(path.parent)  # a new folder, as segment and export make
    remove_leftovers(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_prefix(path.name), suffix=".part", dir=directory))
    except OSError as err:
        raise WriteError(err.errno, _explain(err, path)) from err
    old = None
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.lexists(path):  # a folder, or a link to nothing, which a file write replaces
            old = Path(tempfile.mkdtemp(prefix=_prefix(path.name), suffix=".old", dir=directory))
            os.replace(path, old / path.name)
        os.rename(tmp, path)
    except BaseException as err:  # an interruption between the two renames too
        if old is not None and not os.path.lexists(path):
            with contextlib.suppress(OSError):
                os.replace(old / path.name, path)
            if not os.path.lexists(path):
                failed = isinstance(err, OSError)
                raise WriteError(
                    err.errno if failed else errno.EINTR,
                    f"Could not save {path}: {reason(err) if failed else 'interrupted'}"
                    f", and the earlier {path.name} could not be put back: it is in "
                    f"{old / path.name}. Move it back to {path} before saving there again.",
                ) from err
        if isinstance(err, OSError):
            raise WriteError(err.errno, _explain(err, path)) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        # The earlier folder goes once the new one or itself is back in place, not before.
        if old is not None and os.path.lexists(path):
            shutil.rmtree(old, ignore_errors=True)
    return path


def remove_leftovers(path: str | os.PathLike, *, all_owners: bool = False) -> list[Path]:
    """Delete what interrupted atomic writes of ``path`` left beside it; return what went.

    Every temporary name records the host and process that made it, so a later
    write removes the leftovers of processes of this host that are gone (a
    killed run's hidden ``.NAME.*.part`` files) and never a temporary another
    running process is still filling.

    Parameters
    ----------
    path
        The file or folder that was being written.
    all_owners
        Also remove temporaries of running processes and other hosts; only
        when the caller knows nothing else writes there (it holds a lock).
    """
    path = Path(path)
    removed = []
    stem = _stem(path.name)
    for leftover in path.parent.glob(f".{glob.escape(stem)}.*"):
        owner = _LEFTOVER.fullmatch(leftover.name[len(stem) + 2 :])
        if owner is None:  # another file's temporary, e.g. of NAME.json for NAME
            continue
        if not all_owners and _owner_alive(owner.group(1), owner.group(2)):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _prefix(name: str) -> str:
    """Temporary-name prefix: ``.NAME.HOST-PID.`` (the random part and suffix follow)."""
    return f".{_stem(name)}.{_host()}-{os.getpid()}."


#: The longest NAME in a temporary's name, in bytes: with the host, the process, the
#: random part and the suffix it stays within the 255 bytes a file name may have.
_MAX_STEM = 160


#: The most bytes a file name may have: 255 on ext4, APFS and NTFS (in UTF-16 units there,
#: never more than UTF-8 bytes).
NAME_BYTES = 255


def too_long(name: str) -> str | None:
    """Why no file can be named ``name`` and how much shorter to make it, as the end of a
    sentence about the name ("would have 256 bytes, …"); None when it fits."""
    size = len(os.fsencode(name))
    over = size - NAME_BYTES
    if over <= 0:
        return None
    return (
        f"would have {size} bytes, {over} more than the {NAME_BYTES} a file name may have; "
        f"choose a name at least {over} byte{'s' * (over > 1)} shorter"
    )


def too_long_text(path: str | os.PathLike | bytes, elsewhere: str = "") -> str:
    """What to say of ``path`` when the file system called it too long (ENAMETOOLONG): the
    part of it over :data:`NAME_BYTES`, or the whole path; ``elsewhere`` names another place
    for the files ("(-o puts the results in another)"). Both limits are in bytes: a
    letter such as é takes two."""
    path = Path(os.fsdecode(path))
    for name in path.parts:
        why = too_long(name)
        if why:
            return f"the name {name} {why}."
    where = f" {elsewhere}" if elsewhere else ""
    return (
        f"the path {path} ({len(os.fsencode(path))} bytes) is too long for this file "
        f"system; choose a shorter folder{where} or file name."
    )


def fit_name(name: str, room: int) -> str:
    """``name`` within ``room`` bytes of UTF-8: a longer one cut, with a hash of the whole,
    so that long names that differ only at their end stay different."""
    encoded = name.encode()
    if len(encoded) <= room:
        return name
    head = encoded[: room - 9].decode(errors="ignore")
    return f"{head}~{hashlib.sha1(encoded).hexdigest()[:8]}"


def _stem(name: str) -> str:
    """``name`` as temporary names hold it (see :func:`fit_name`)."""
    return fit_name(name, _MAX_STEM)


def _owner_alive(host: str | None, pid: str | None) -> bool:
    """Whether the process that made a temporary may still be writing it.

    Temporaries without an owner (older versions) and those of dead processes
    of this host are abandoned; processes of other hosts cannot be checked.
    """
    if host is None:
        return False
    if host != _host():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _umask() -> int:
    """The process's umask: read from Linux's /proc, else by setting it and back, which
    gives a file another thread makes in between 022 (a shared folder's 002 lost)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _temporary(directory: Path, name: str) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=_prefix(name), suffix=".part", dir=directory)
    except OSError as err:
        raise WriteError(err.errno, _explain(err, directory / name)) from err


def _exists(path: Path) -> FileExistsError:
    # Every public writer here takes ``overwrite``, and so does each function that passes
    # one on (write_labels, Preset.save, the exports); the commands call it --overwrite.
    return FileExistsError(
        f"{path} {_what_exists(path)} and was left as it is. Choose another name, delete "
        "it first, or allow overwriting (overwrite=True from Python; --overwrite on the "
        "command line)."
    )


def _what_exists(path: Path) -> str:
    """What is in the way at ``path``: a file or folder, or a link whose target is gone."""
    return "already exists" if path.exists() else "is a link to a missing file"


def _link_exclusive(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` appeared meanwhile (a hard link fails then)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(
            f"{path} appeared while saving and was left as it is; choose another name."
        ) from None
    except OSError:
        # File systems without hard links (FAT, some network shares): check, then rename.
        if path.exists():
            raise FileExistsError(f"{path} already exists and was left as it is.") from None
        os.replace(tmp, path)


def make_folder(folder: str | os.PathLike) -> Path:
    """Make ``folder`` and its parents if needed.

    Raises
    ------
    WriteError
        When it cannot be made (a read-only disk, no permission, a file in the way).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(
            err.errno,
            f"Could not make the folder {folder}: {reason(err)}. Nothing was written; "
            "choose another folder.",
        ) from err
    return folder


@contextlib.contextmanager
def locked_folders(folders: Sequence[str | os.PathLike], holder: str):
    """Hold an exclusive lock on each folder, made if missing, while writing there.

    Two writers in one folder (two ``cytomask segment`` runs, or an export into a
    folder a run is filling) would each take the other's outputs for their own or
    replace them; the second is refused instead. The lock goes with the process,
    so a killed writer leaves no stale lock, and the lock file is removed at the end.

    Parameters
    ----------
    folders
        The output folders.
    holder
        What holds the lock, as the refusal names it (``'cytomask segment'``).

    Raises
    ------
    FolderBusy
        When another writer holds one of the folders.
    WriteError
        When a folder cannot be made or written into.
    """
    made: set[Path] = set()  # the folders made here, and the folders above them made too
    try:
        with contextlib.ExitStack() as stack:
            for folder in sorted({Path(folder) for folder in folders}):
                made.update(p for p in (folder, *folder.parents) if not p.exists())
                make_folder(folder)
                stack.enter_context(_folder_lock(folder / LOCK_NAME, holder))
            yield
    finally:
        # Those left empty (nothing was written there: refused, or never reached before
        # Ctrl+C) are removed, the deepest first; a folder that holds anything stays.
        for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def _folder_lock(path: Path, holder: str):
    try:
        fh = open(path, "a+")
    except OSError as err:
        raise _cannot_write_into(path.parent, err) from err
    with fh:
        try:
            _lock(fh)
            # The holder before us may have removed the file after we opened it.
            if not path.exists() or not os.path.samestat(os.fstat(fh.fileno()), os.stat(path)):
                raise BlockingIOError
        except OSError:
            try:
                fh.seek(0)
                other = fh.read().strip() or "another process"
            except OSError:  # Windows: the holder's lock keeps others from reading
                other = "another process"
            raise FolderBusy(
                errno.EBUSY,
                f"{other} is writing into {path.parent}; wait for it to finish or choose "
                "another output folder.",
            ) from None
        fh.seek(0)
        fh.truncate()
        who = f"{holder} (pid {os.getpid()} on {socket.gethostname()})"
        try:  # unbuffered: a failed write leaves nothing for closing the file to retry
            os.write(fh.fileno(), who.encode())
        except OSError as err:  # a disk without a byte left
            fh.close()  # Windows removes no open file
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise _cannot_write_into(path.parent, err) from err
        try:
            yield
        finally:
            # Still locked, so nobody else uses it (Windows cannot remove an open file).
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _cannot_write_into(folder: Path, err: OSError) -> WriteError:
    return WriteError(
        err.errno,
        f"Could not write into {folder}: {reason(err)}. Nothing was written; choose another "
        "folder.",
    )


def folder_writer(folder: str | os.PathLike) -> str | None:
    """Who holds ``folder``'s lock (:func:`locked_folders`) now, or None."""
    path = Path(folder) / LOCK_NAME
    try:
        fh = open(path)
    except OSError:
        return None  # no lock file: nobody writes there
    with fh:
        try:
            _lock(fh)
        except OSError:
            try:
                return fh.read().strip() or "another process"
            except OSError:
                return "another process"
    return None  # free: the lock went with the file's closing


def _lock(fh) -> None:
    """Take a non-blocking exclusive lock on an open file; ``OSError`` when it is held."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def reason(err: OSError) -> str:
    """Why an operating-system call failed, in words ("the disk is full")."""
    folder = os.path.dirname(err.filename) if isinstance(err.filename, str) else ""
    if err.errno == errno.ENOENT and folder and os.path.isdir(folder):
        # The folder is there, yet a new name in it "does not exist": a folder of the system's
        # own (/proc), where the kernel refuses new files so.
        return f"{folder} takes no new files (the system keeps that folder)"
    return {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the disk is read-only",
        errno.EACCES: "there is no permission to write there",
        errno.EPERM: "there is no permission to write there",
        errno.ENOENT: "the folder does not exist",
        errno.EISDIR: "a folder of that name is in the way",
        errno.ENOTDIR: "a file is in the way of its folder",
        errno.EEXIST: "a file of that name is in the way",
        errno.ENAMETOOLONG: "the file name is too long",
        errno.EFBIG: "the file would be larger than the disk or a file-size limit allows",
    }.get(err.errno, _system_words(err))


def _system_words(err: OSError) -> str:
    """The system's words for ``err``: for a :class:`WriteError`, whose text is a whole
    message, those of its number."""
    if isinstance(err, WriteError) and err.errno is not None:
        return os.strerror(err.errno)
    return err.strerror or str(err)


def _explain(err: OSError, path: Path) -> str:
    why = reason(err)
    advice = {
        errno.ENOSPC: "free some space or save to another folder",
        errno.EDQUOT: "free some space or save to another folder",
        errno.ENAMETOOLONG: "choose a shorter name",
        errno.EFBIG: "save to another disk or raise the file-size limit",
    }.get(err.errno, "save to another folder")
    return (
        f"Could not save {path}: {why}. Nothing was written and existing files are "
        f"unchanged; {advice}."
    )
