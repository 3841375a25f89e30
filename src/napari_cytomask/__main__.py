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
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title="napari-cytomask")
    viewer.window.add_plugin_dock_widget("napari-cytomask", "Segment cytoplasm")
    for layer in viewer.open_sample("napari-cytomask", "phase_contrast"):
        # The hand-drawn cells stay hidden until asked for: the first cells a user sees
        # are the model's.
        if layer.metadata["cytomask"]["role"] == "mask":
            layer.visible = False
        else:
            viewer.layers.selection.active = layer
    # Fit the image once the window is laid out, beside the dock: fitted before, it
    # would fill the canvas as wide as the window and hide the image's sides.
    QTimer.singleShot(0, viewer.reset_view)
    napari.run()


if __name__ == "__main__":
    main()
