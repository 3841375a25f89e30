"""napari-cytomask: cell (cytoplasm) masks from brightfield tile scans in napari."""

import functools
import os
import re
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
    here = Path(__file__).resolve()  # src/napari_cytomask/__init__.py
    checkout = here.parents[2]
    # A checkout of this project, not a user's repository the package was copied into at
    # its top (pip --target libs): its commit was given as the version that ran.
    if here.parents[1].name != "src" or not _this_project(checkout):
        return __version__
    # This checkout's git, not one GIT_DIR names, nor a repository the package was copied
    # into (pip --target): its top must be the checkout.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True, text=True, timeout=10, check=True, env=env,
        ).stdout.strip()  # fmt: skip

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != checkout:
            return __version__
        commit = git("describe", "--always", "--dirty", "--abbrev=12")
    except (OSError, subprocess.SubprocessError):  # no git: the version is all there is
        return __version__
    # The commit first: the version the install recorded is easy to take for the one that ran.
    return f"git {commit} (installed as {__version__})"  # "-dirty": changes not committed


def _this_project(checkout: Path) -> bool:
    """Whether ``checkout`` is a git checkout of napari-cytomask: its pyproject.toml names it."""
    try:
        project = (checkout / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    named = re.search(r'^name\s*=\s*"napari-cytomask"\s*$', project, re.MULTILINE)
    return named is not None and (checkout / ".git").exists()
