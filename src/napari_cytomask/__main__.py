"""``python -m napari_cytomask``: napari with the Segment cytoplasm dock and a sample scan."""

from __future__ import annotations

# torch (with torchvision) must be loaded before napari creates an OpenGL context:
# loading it afterwards crashes under software OpenGL (Mesa llvmpipe).
import torch  # noqa: F401
import torchvision  # noqa: F401


def main() -> None:
    """Open napari with the sample tile scan and the dock that leads through every step."""
    import napari

    viewer = napari.Viewer(title="napari-cytomask")
    viewer.open_sample("napari-cytomask", "tilescan")
    viewer.window.add_plugin_dock_widget("napari-cytomask", "Segment cytoplasm")
    napari.run()


if __name__ == "__main__":
    main()
