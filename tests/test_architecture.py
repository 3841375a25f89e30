"""The core must stay usable without Qt: only napari_cytomask._qt may import it."""

import pkgutil
import subprocess
import sys

import napari_cytomask

QT_MODULES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari.qt", "napari._qt")


def test_core_modules_import_no_qt():
    core = [
        info.name
        for info in pkgutil.walk_packages(napari_cytomask.__path__, "napari_cytomask.")
        if "._qt" not in info.name
    ]
    assert "napari_cytomask.io.writers" in core and "napari_cytomask.roles" in core
    assert "napari_cytomask.__main__" in core  # Qt only once napari starts, from _qt
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        f"print([m for m in {QT_MODULES!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
