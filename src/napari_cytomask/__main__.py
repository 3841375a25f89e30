"""``python -m napari_cytomask``: napari with the Segment cytoplasm dock on the real sample."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys


def no_display() -> str | None:
    """Why napari cannot open a window here (a Linux machine without a display), or None."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display was found (DISPLAY and WAYLAND_DISPLAY are not set)"


#: The Qt bindings napari draws with (those qtpy takes).
QT_BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6")


def has_qt_binding() -> bool:
    """Whether a Qt binding is installed: looked for, not imported (the package's core
    imports no Qt)."""
    for name in QT_BINDINGS:
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except ImportError:  # a broken installation of it
            continue
    return False


def main(argv: list[str] | None = None) -> int:
    """Open napari with the real phase-contrast sample and the dock that leads through every
    step; "Segment cytoplasm" runs the starter model on it."""
    parser = argparse.ArgumentParser(
        prog="python -m napari_cytomask",
        description="Open napari with the Segment cytoplasm dock on the real phase-contrast "
        "sample (Usiigaci cells); press Segment cytoplasm to segment it with the starter "
        "model. To segment files without napari, use 'cytomask segment IMAGES -o OUT'.",
    )
    parser.parse_args(argv)
    if not has_qt_binding():  # `pip install napari-cytomask` brings none
        print(
            "python -m napari_cytomask: napari needs a Qt binding (PyQt or PySide), and none "
            'is installed; install one with pip install "napari-cytomask[qt]", or segment '
            "without napari: cytomask segment IMAGES -o OUT.",
            file=sys.stderr,
        )
        return 1
    why = no_display()
    if why:
        print(
            f"python -m napari_cytomask: napari needs a display, and {why}. On a server, run "
            "it under a virtual display (xvfb-run -a python -m napari_cytomask), or segment "
            "without napari: cytomask segment IMAGES -o OUT.",
            file=sys.stderr,
        )
        return 1
    # torch (with torchvision) must be loaded before napari creates an OpenGL context:
    # loading it afterwards crashes under software OpenGL (Mesa llvmpipe).
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    # isort: split
    import napari

    from ._qt.cytomask_dock import open_on_sample

    open_on_sample(napari.Viewer(title="napari-cytomask"))
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
