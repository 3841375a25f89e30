"""napari-cytomask: cell (cytoplasm) masks from brightfield tile scans in napari."""

import functools
import subprocess
from pathlib import Path

try:
    from ._version import version as __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "own_version"]


@functools.lru_cache(maxsize=1)
def own_version() -> str:
    """The version of the code that runs, as ``cytomask --version`` and every provenance
    say it: ``__version__``; run from a git checkout (an editable install), the commit that
    runs as ``git describe`` names it (``-dirty`` when changed since), then ``__version__``,
    which is that of the commit the install was made at: a provenance named code weeks
    older than the code that made its figures."""
    checkout = Path(__file__).resolve().parents[2]  # src/napari_cytomask/__init__.py
    if not (checkout / ".git").exists():
        return __version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(checkout), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):  # no git: the version is all there is
        return __version__
    # The commit first: the version the install recorded is easy to take for the one that ran.
    return f"git {commit} (installed as {__version__})"  # "-dirty": changes not committed
