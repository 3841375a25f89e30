"""Layer pickers and layer making shared by the step widgets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from napari.layers import Labels, Layer
from qtpy.QtWidgets import QComboBox

from ..io.layers import METADATA_KEY
from ..labels import min_label_dtype
from ..roles import role_of


def base_data(layer):
    """A layer's full-resolution data."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def geometry_of(layer) -> dict:
    """Scale, translation, units and axis names of a layer's spatial axes, for its outputs."""
    keys = ("scale", "translate", "units", "axis_labels")
    geometry = {key: tuple(getattr(layer, key)) for key in keys}
    if getattr(layer, "rgb", False):
        geometry = {key: value[:-1] for key, value in geometry.items()}
    return geometry


def made_by_plugin(layer) -> bool:
    """Whether a step of the dock made this layer (a segmentation, not an input or a mask)."""
    return "method" in layer.metadata.get(METADATA_KEY, {})


def result_metadata(**record) -> dict:
    """Layer metadata of a step's result: what made it, and no channel role (a result is
    not a channel of a scan, so the channel-role table and the mask defaults skip it)."""
    return {METADATA_KEY: {"role": None, **record}}


def compact_labels(data) -> np.ndarray:
    """Labels in the smallest unsigned type that holds every id.

    napari colours 8- and 16-bit labels on the GPU, while wider ones are mapped
    pixel by pixel in the GUI thread (hundreds of ms for a 1024² image).
    """
    data = np.asarray(data)
    return data.astype(min_label_dtype(int(data.max(initial=0))), copy=False)


def labels_layer(data, name: str, geometry: dict, record: dict) -> Labels:
    """A Labels layer for a step's result, made where the result is computed.

    ``record`` says what made it (see :func:`result_metadata`); the data are
    made compact (:func:`compact_labels`).
    """
    data = compact_labels(data)
    return Labels(
        data,
        name=name,
        metadata=result_metadata(**record),
        **{k: v[-data.ndim :] for k, v in geometry.items()},
    )


class LayerPicker(QComboBox):
    """The viewer's layers of some types, kept in step with the layer list.

    A layer choice is never a remembered setting: it follows the open layers.
    Its default is the first layer of the preferred role, else the newest one.

    Parameters
    ----------
    viewer
        The viewer.
    types
        Layer types offered.
    prefer_role
        Default to a layer of this role (``"input"``, ``"mask"``).
    tooltip
        What the chosen layer is used for.
    accept
        Optional extra test a layer must pass to be offered.
    """

    def __init__(
        self,
        viewer,
        types,
        prefer_role: str | None = None,
        tooltip: str = "",
        accept: Callable[[Layer], bool] | None = None,
    ):
        super().__init__()
        self._viewer = viewer
        self._types = types
        self._prefer_role = prefer_role
        self._accept = accept or (lambda layer: True)
        self.setToolTip(tooltip)
        self.setMinimumContentsLength(10)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self.refresh)
        self.refresh()

    def layers(self) -> list[Layer]:
        """The layers offered."""
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, self._types) and self._accept(layer)
        ]

    def refresh(self, event=None) -> None:
        """List the layers again, keeping the choice when its layer is still there."""
        current = self.currentText()
        names = [layer.name for layer in self.layers()]
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        self.blockSignals(False)
        if current in names:
            self.setCurrentText(current)
        elif names:
            preferred = [ly.name for ly in self.layers() if role_of(ly) == self._prefer_role]
            self.setCurrentText(preferred[0] if preferred else names[-1])
        if self.currentText() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def set_types(self, types) -> None:
        """Offer layers of other types (e.g. when a step's mode changes)."""
        self._types = types
        self.refresh()

    def layer(self) -> Layer | None:
        """The chosen layer, or ``None``."""
        name = self.currentText()
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def set_layer(self, layer) -> None:
        """Choose ``layer`` (e.g. the previous step's output)."""
        self.refresh()
        self.setCurrentText(layer.name)
