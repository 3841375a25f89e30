"""``python -m napari_cytomask``: napari with the Segment cytoplasm dock on the real sample."""

from __future__ import annotations

# torch (with torchvision) must be loaded before napari creates an OpenGL context:
# loading it afterwards crashes under software OpenGL (Mesa llvmpipe).
import torch  # noqa: F401
import torchvision  # noqa: F401


def main() -> None:
    """Open napari with the real phase-contrast sample and the dock that leads through every
    step; "Segment cytoplasm" runs the starter model on it."""
    import napari

    from ._qt.cytomask_dock import open_on_sample

    open_on_sample(napari.Viewer(title="napari-cytomask"))
    napari.run()


if __name__ == "__main__":
    main()
