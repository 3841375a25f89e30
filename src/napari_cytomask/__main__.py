"""``python -m napari_cytomask``: napari with the plugin's docks and the synthetic tile scan."""

from __future__ import annotations

# torch (with torchvision) must be loaded before napari creates an OpenGL context:
# loading it afterwards crashes under software OpenGL (Mesa llvmpipe).
import torch  # noqa: F401
import torchvision  # noqa: F401


def main() -> None:
    """Open napari with the sample tile scan and every dock of the plugin."""
    import napari

    viewer = napari.Viewer(title="napari-cytomask")
    viewer.open_sample("napari-cytomask", "tilescan")
    for widget in ("Channel roles", "Separate touching cells", "Segmentation metrics"):
        viewer.window.add_plugin_dock_widget("napari-cytomask", widget)
    napari.run()


if __name__ == "__main__":
    main()
