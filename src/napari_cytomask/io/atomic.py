"""Atomic file writing shared by every writer and export of the plugin."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


class WriteError(OSError):
    """A file could not be written; the message says why and what to do."""


def write_atomically(
    path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Write a file through a temporary file beside it, then move it into place.

    A failed write (full disk, no permission, an interruption) leaves neither a
    partial file nor a damaged older one, and an existing file is only replaced
    when ``overwrite`` is true (checked again at the moment of moving in).

    Parameters
    ----------
    path
        The file to create.
    write
        Writes the content to the temporary path it is given.
    overwrite
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is false.
    WriteError
        If the disk is full, read-only or not writable; nothing is left behind.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists and was left as it is. Choose another name, or delete "
            "the old file first."
        )
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = _temporary(directory, path.name)
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file private; give it the permissions of a plain new file.
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    except OSError as err:
        if isinstance(err, FileExistsError):
            raise
        raise WriteError(err.errno, _explain(err, path)) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_directory_atomically(
    path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Fill a folder (e.g. an OME-Zarr store) under a temporary name, then move it into place.

    Like :func:`write_atomically`: a failed or interrupted write leaves no
    folder under the final name, and an existing one is replaced only with
    ``overwrite`` (it is moved aside first and deleted once the new one is in place).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists and was left as it is. Choose another name, or delete it first."
        )
    directory = path.parent if str(path.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=directory))
    except OSError as err:
        raise WriteError(err.errno, _explain(err, path)) from err
    old = None
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=directory))
            os.replace(path, old / path.name)
        os.rename(tmp, path)
    except OSError as err:
        if old is not None and not path.exists():
            os.replace(old / path.name, path)
        raise WriteError(err.errno, _explain(err, path)) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete what interrupted atomic writes of ``path`` left beside it; return what went.

    Only call this when no other process is writing ``path``.
    """
    path = Path(path)
    removed = []
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if leftover.name.endswith((".part", ".old")):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary(directory: Path, name: str) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    except OSError as err:
        raise WriteError(err.errno, _explain(err, directory / name)) from err


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


def _explain(err: OSError, path: Path) -> str:
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the disk is read-only",
        errno.EACCES: "there is no permission to write there",
        errno.EPERM: "there is no permission to write there",
        errno.ENOENT: "the folder does not exist",
    }.get(err.errno, err.strerror or str(err))
    return (
        f"Could not save {path}: {reason}. Nothing was written and existing files are "
        "unchanged; save to another folder or free some space."
    )
