"""Dock widget: separate touching cells by watershed, with a live preview."""

from __future__ import annotations

import math
import re

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)
from skimage.filters import threshold_otsu

from ..io.layers import (
    METADATA_KEY,
    RESULT_ROLE,
    contrast_from_sample,
    edited_by_hand,
    finite_values,
    frame_axes,
    frame_key,
    frame_record,
    frames_made_of,
    is_highlight,
    is_result,
    layer_info,
    looks_fluorescent,
    looks_transmitted,
    made_frames,
    named_frame,
    named_frames,
    origin,
    pixel_size_um,
    plane_sample,
    probability_of,
    record_written,
    result_metadata,
    single_value,
)
from ..labels import binary_mask_regions, largest_elsewhere, numbered_above
from ..postprocess import (
    DEFAULT_CLEANUP,
    MARKER_METHODS,
    iter_watershed,
    pixel_shape,
    split_counts,
)
from ..roles import is_channel, role_of, source_of
from ._layers import (
    LayerPicker,
    cells_in,
    closed_during_run,
    compact_labels,
    forget_edits,
    frame_on_show,
    labels_layer,
    lay_over,
    resolution_level,
    result_slot,
    write_frames,
)
from ._live import (
    SEGMENT_STEP,
    NothingToRun,
    Runner,
    StepControls,
    StepWidget,
    number_box,
    step_page,
)

MODES = {
    "foreground": "Foreground or probability map",  # short enough to show whole
    "interior_boundary": "Interior + boundary maps",
    "split": "Split existing labels",
}


def _spin(value, lo, hi, tip, step=1, decimals=None):
    return number_box(lo, hi, value, tip, step, decimals)


#: What the step says while it has no input: nothing segmented yet, or none left.
_NO_INPUT = (
    f"Nothing to read yet: segment the cells in {SEGMENT_STEP} first, or pick the input (a "
    "probability map, or labels to split)."
)

#: What each seeding method reads as in the drop-down.
_MARKER_TEXT = {"h_maxima": "height (h)", "peaks": "distance apart"}

#: The setting each seeding method reads (the other one's row is hidden).
_MARKER_ROW = {"h_maxima": "h", "peaks": "min_distance"}

#: The settings measured along the distance to the background, by their rows' names; the
#: unit follows the input (:func:`_distance_unit`).
_DISTANCE_ROWS = {
    "min_distance": "Minimum seed distance",
    "marker_erosion": "Shrink seeds by",
    "marker_dilation": "Grow seeds by",
}

#: What the distance settings count where pixels are not square.
_SHORTER_SIDE = (
    " Where the input's pixels are not square (its Y and X scale differ), distances are "
    "measured across their shape and counted in pixels of their shorter side."
)


class WatershedWidget(StepWidget, QWidget):
    """Turn a probability map, interior/boundary maps or labels into separated cells.

    The result goes to one Labels layer that is updated in place: ``"<input> split"``
    for cells split apart, ``"<input> instances"`` for cells found in an image. With
    *Live preview* on, every parameter change re-runs the current frame in the
    background; *Apply* processes the whole stack with a progress bar and can be
    cancelled.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are offered as inputs.
    """

    #: Emitted with the output Labels layer once it holds the split of every frame: after
    #: an Apply, or the preview of a single image (a stack's preview makes one frame).
    applied = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._previewing = False  # set by the first preview; see _follow
        self._applying_now = False  # whether the runner's work is an Apply, not a preview
        self._pending = None  # a new input handed over during an Apply, for after it
        self._preview_waits = False  # a preview asked for during an Apply, for after it
        self._applied = False  # whether the last Apply delivered its result
        self._apply_said = None  # what that Apply said, kept before the preview after it
        self._user_picked = False  # an input chosen by hand stays when new cells come
        self._measured = None  # the input whose pixel size the distance rows name
        #: The input layer (unique id) of each split: a split's record names its input by
        #: name, which a new layer takes when the user renames the old.
        self._split_of: dict = {}

        self.mode = QComboBox()
        for key, text in MODES.items():
            self.mode.addItem(text, key)
        self.mode.setToolTip("What the input is: it decides which layers and parameters are used.")
        self.input = LayerPicker(
            napari_viewer,
            Image,
            tooltip="Foreground probability or mask (Image), or labels to split (Labels); "
            "by default the newest result.",
            # Not its own output: splitting what it just split would chase itself; nor the
            # metrics' outlines of missed cells, which are no segmentation.
            accept=lambda layer: (
                not str(layer_info(layer).get("method", "")).startswith("watershed")
                and not is_highlight(layer)
            ),
            # Not a scan's channel, unless picked: its ground truth, split, would be scored
            # against itself as if it were a result, and the brightness of its image of
            # light taken for a probability map made hundreds of "cells" of halos. Nor a
            # boundary map, the newest of the U-Net's maps: its outlines became "cells".
            fallback=lambda layer: not is_channel(layer) and probability_of(layer) != "boundary",
        )
        self.boundary = LayerPicker(
            napari_viewer, Image, tooltip="Boundary probability map (same shape as the interior)."
        )
        self.boundary_label = QLabel("Boundary map")

        inputs = QFormLayout()
        inputs.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        inputs.addRow("Input is", self.mode)
        self.input_label = QLabel("Input")
        inputs.addRow(self.input_label, self.input)
        inputs.addRow(self.boundary_label, self.boundary)

        self.threshold = _spin(
            0.5, 0, 1,
            "Value above which a pixel is cell: a probability for probability maps; for an "
            "intensity image it starts at the Otsu threshold of the displayed frame.",
            0.05, 2,
        )  # fmt: skip
        self.markers = QComboBox()
        for key in MARKER_METHODS:
            self.markers.addItem(_MARKER_TEXT[key], key)
        self.markers.setToolTip(
            "Where cells are seeded, on the distance from the background (a cell's centre "
            "lies farthest from it): by height, centres that stand out at least h above "
            "the saddle between them (h_maxima in a preset); by distance apart, centres at "
            "least the minimum seed distance apart (peaks)."
        )
        self.h = _spin(
            5.0, 0.1, 100, "Raise to split less (in pixels of distance)." + _SHORTER_SIDE, 0.5, 1
        )
        self.min_distance = _spin(
            7, 1, 500, "Smallest distance between peaks: about a cell radius." + _SHORTER_SIDE
        )
        self.marker_erosion = _spin(
            0, 0, 50, "Shrink every seed by this radius (drops tiny ones)." + _SHORTER_SIDE
        )
        self.marker_dilation = _spin(0, 0, 50, "Grow every seed by this radius." + _SHORTER_SIDE)
        self.compactness = _spin(
            0.0, 0, 10, "0: classic watershed; larger: more regular cells.", 0.001, 4
        )
        self.interior_threshold = _spin(
            0.5, 0, 1, "Interior probability that seeds a cell.", 0.05, 2
        )
        self.min_marker_size = _spin(10, 0, 100000, "Seeds with fewer pixels are ignored.")
        self.min_fragment = _spin(
            0, 0, 1000000, "Merge split pieces below this size into their longest neighbour."
        )
        params = QFormLayout()
        params.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self._rows = {}
        for name, label, widget in (
            ("threshold", "Threshold", self.threshold),
            ("markers", "Seed cells by", self.markers),
            ("h", "Minimum peak height (h)", self.h),
            ("min_distance", f"{_DISTANCE_ROWS['min_distance']} (px)", self.min_distance),
            ("marker_erosion", f"{_DISTANCE_ROWS['marker_erosion']} (px)", self.marker_erosion),
            ("marker_dilation", f"{_DISTANCE_ROWS['marker_dilation']} (px)", self.marker_dilation),
            ("interior_threshold", "Interior threshold", self.interior_threshold),
            ("min_marker_size", "Minimum seed size (px)", self.min_marker_size),
            ("min_fragment", "Merge pieces smaller than (px)", self.min_fragment),
            ("compactness", "Compactness", self.compactness),
        ):
            self._rows[name] = (QLabel(label), widget)
            self._rows[name][0].setToolTip(widget.toolTip())
            params.addRow(*self._rows[name])
        param_box = QGroupBox("Watershed")
        param_box.setLayout(params)

        self.fill = QCheckBox("Fill holes")
        self.fill.setChecked(bool(DEFAULT_CLEANUP["fill"]))
        self.fill.setToolTip("Fill background enclosed by one cell.")
        self.opening = _spin(0, 0, 50, "Per-cell opening radius: removes spurs and thin bridges.")
        self.closing = _spin(0, 0, 50, "Per-cell closing radius: smooths notches.")
        self.min_area = _spin(
            int(DEFAULT_CLEANUP["min_area"]), 0, 10**9, "Remove cells with fewer pixels."
        )
        self.max_area = _spin(0, 0, 10**9, "Remove cells with more pixels (0: no limit).")
        self.max_area.setSpecialValueText("no limit")
        self.exclude_border = QCheckBox("Remove cells touching the border")
        self.exclude_border.setToolTip("Cells cut by the image edge are dropped.")
        clean = QFormLayout()
        clean.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        clean.addRow(self.fill)
        clean.addRow("Opening radius (px)", self.opening)
        clean.addRow("Closing radius (px)", self.closing)
        clean.addRow("Minimum area (px)", self.min_area)
        clean.addRow("Maximum area (px)", self.max_area)
        clean.addRow(self.exclude_border)
        clean_box = QGroupBox("Clean-up")
        clean_box.setLayout(clean)

        self.live = QCheckBox("Live preview (current frame)")
        self.live.setChecked(True)
        self.live.setToolTip("Re-run in the background whenever a parameter changes.")
        self.controls = StepControls(
            "Apply to all frames",
            "Process the whole image or stack into the result layer ('… split' for cells, "
            "'… instances' for an image).",
        )
        self.controls.run_button.clicked.connect(self.apply)
        self.controls.cancel_button.clicked.connect(self.cancel)
        self.runner = Runner(
            self._show, self.controls, on_finished=self._take_pending, delay_ms=250, parent=self
        )

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(inputs)
        layout.addWidget(param_box)
        layout.addWidget(clean_box)
        layout.addWidget(self.live)
        layout.addStretch()
        step_page(self, content, self.controls)

        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.mode.currentIndexChanged.connect(self._changed)
        self.input.currentIndexChanged.connect(self._input_changed)
        self.input.activated.connect(self._picked)
        # Ticked by the user, the preview starts at once (not at the next change).
        self.live.clicked.connect(lambda checked: checked and self._changed())
        # A map picked by the user is a new parameter; one the layer list changed (a layer
        # converted or closed elsewhere) only keeps a started preview up to date.
        self.boundary.activated.connect(self._changed)
        self.boundary.currentIndexChanged.connect(self._follow)
        self.markers.currentIndexChanged.connect(self._show_rows)
        self.markers.currentIndexChanged.connect(self._changed)
        for box in (
            self.threshold, self.h, self.min_distance, self.marker_erosion,
            self.marker_dilation, self.compactness, self.interior_threshold,
            self.min_marker_size, self.min_fragment, self.opening, self.closing,
            self.min_area, self.max_area,
        ):  # fmt: skip
            box.valueChanged.connect(self._changed)
        for check in (self.fill, self.exclude_border, self.live):
            check.toggled.connect(self._changed)
        self.viewer.dims.events.current_step.connect(self._follow)
        self._mode_changed()
        self._name_the_buttons()
        self._name_the_units()
        self.bind_keys()
        # Opened after segmenting, or open while cells are segmented, the dock splits the
        # newest cells: its first mode took the phase image as a foreground map, whose
        # brightness gave 1,528 "cells" for 209.
        cells = [layer for layer in self.viewer.layers if _segmented(layer)]
        if cells:
            self.use_input(cells[-1])
        elif self.input.layer() is None:
            self.status.setText(_NO_INPUT)
        self.viewer.layers.events.inserted.connect(self._layer_added)

    def _layer_added(self, event) -> None:
        # Not over an input the user picked, nor while a run reads it, nor once closed.
        runner = self.runner
        if _segmented(event.value) and not (self._user_picked or runner.busy or runner.closed):
            self.use_input(event.value)

    @property
    def apply_button(self):
        return self.controls.run_button

    @property
    def cancel_button(self):
        return self.controls.cancel_button

    def settings_controls(self) -> dict[str, QWidget]:
        """Remembered controls by parameter name (the mode first: it decides the rest)."""
        return {
            "mode": self.mode,
            "markers": self.markers,
            "h": self.h,
            "min_distance": self.min_distance,
            "marker_erosion": self.marker_erosion,
            "marker_dilation": self.marker_dilation,
            "compactness": self.compactness,
            "interior_threshold": self.interior_threshold,
            "min_marker_size": self.min_marker_size,
            "min_fragment_size": self.min_fragment,
            "fill": self.fill,
            "opening_radius": self.opening,
            "closing_radius": self.closing,
            "min_area": self.min_area,
            "max_area": self.max_area,
            "exclude_border": self.exclude_border,
            "live": self.live,
        }

    def use_input(self, layer) -> None:
        """Start from ``layer`` (the previous step's output): split labels, or a map.

        Like opening the dock, this starts no preview: the user has not asked for one.
        A running Apply finishes on its own input first.
        """
        if self.applying():
            self._pending = layer
            show_info(f"'{layer.name}' becomes the split step's input when its Apply ends.")
            return
        if isinstance(layer, Labels):
            self.mode.setCurrentIndex(self.mode.findData("split"))
        self.input.set_layer(layer)
        self.stop_preview()  # after: the mode and input changes above may have asked for one
        self._say_input(layer)

    def new_cells(self, cells) -> str:
        """Start from cells a segmenting step has just written (:meth:`use_input`), and
        return what became of the splits of the cells that layer held before (segmented
        again in place, or a layer of its name made anew), said here too: lying over the
        new cells, they hid them, and export wrote them as their split. Those left as this
        step made them, under the name it gave them, go; one the user painted into or
        renamed stays theirs; a split of another file's cells of that name is not one."""
        named = re.compile(re.escape(self._output_name(cells)) + r"( \[\d+\])?")
        stale = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels)
            and layer is not cells
            and is_result(layer)
            and layer_info(layer).get("method") == "watershed_split"
            and (layer_info(layer).get("made_from") or {}).get("layer") == cells.name
            and source_of(layer) == source_of(cells)
            and not self._split_of_another(layer, cells)
        ]
        kept = [
            layer for layer in stale if not named.fullmatch(layer.name) or edited_by_hand(layer)
        ]
        for layer in stale:
            if layer not in kept:
                self.viewer.layers.remove(layer)
        if stale:  # the split's Apply hid them; new, they are to be seen
            cells.visible = True
        self.use_input(cells)
        said = []
        if len(kept) < len(stale):
            gone = [f"'{layer.name}'" for layer in stale if layer not in kept]
            said.append(
                f"{' and '.join(gone)}, the split of the cells '{cells.name}' held before, "
                f"{'was' if len(gone) == 1 else 'were'} removed: Apply in Split splits these."
            )
        if kept:
            names = " and ".join(f"'{layer.name}'" for layer in kept)
            said.append(
                f"{names}, a split of the cells '{cells.name}' held before, is yours (painted "
                "into or renamed) and kept; Apply in Split puts the split of these in a layer "
                "of its own."
            )
        said = " ".join(said)
        if said and self._pending is not cells:
            self.status.setText(f"{self.status.text()} {said}")
        return said

    def _input_edited(self, event) -> None:
        """Say that cells were changed by hand since their split was made of them."""
        cells = event.source
        splits = [
            layer
            for layer in self.viewer.layers
            if self._split_of.get(layer.unique_id) == cells.unique_id != layer.unique_id
        ]
        if splits and not self.runner.busy:
            self.status.setText(
                f"'{cells.name}' was changed by hand since '{splits[-1].name}' was made of it: "
                "the split does not hold the changes (Check scores it, Export writes it). "
                "Apply splits the changed cells."
            )

    def _split_of_another(self, split, cells) -> bool:
        """Whether ``split`` was made from a layer still open other than ``cells``: the
        cells it split were renamed, and ``cells`` took their old name."""
        made = self._split_of.get(split.unique_id)
        return made not in (None, cells.unique_id) and any(
            layer.unique_id == made for layer in self.viewer.layers
        )

    def _say_input(self, layer) -> None:
        if layer_info(layer).get("method") == "unet":
            # Its interior/boundary watershed already parted touching cells; splitting
            # again by distance cuts long cells in two (benchmarks/bench_split_after_unet.py).
            self.status.setText(
                f"Input: '{layer.name}'. The U-Net already separated touching cells; "
                "splitting them again cuts long cells in two. Skip this step unless "
                "cells are still merged."
            )
            return
        self.status.setText(f"Input: '{layer.name}'. Change a setting to preview, or Apply.")

    def _picked(self, *_) -> None:
        """The user picked an input: say which, unless a preview follows it anyway."""
        self._user_picked = True  # new cells no longer replace it
        layer = self.input.layer()
        if layer is not None and not self._previewing and not self.runner.busy:
            self._say_input(layer)

    # ---- inputs -------------------------------------------------------------------------

    @property
    def method(self) -> str:
        """The selected method key (``"foreground"``, ``"interior_boundary"``, ``"split"``)."""
        return self.mode.currentData()

    def _input_changed(self, *_) -> None:
        before = self._measured  # the input until now (its pixel size was named)
        if self.input.layer() is not before:
            # Not for the same input renamed: the threshold the user set stays, and so
            # does the boundary map picked.
            self._pair_boundary()
            self._suggest_threshold()
        self._name_the_buttons()
        self._name_the_units()
        if before is not None and before not in self.viewer.layers:
            # Nobody picked the layer that takes its place: a preview of it would add a
            # result unasked (and one added while napari removes layers crashed it).
            self.stop_preview()
            self._say_closed(before)
        elif self.input.layer() is not before:
            # Only another input: the list is rebuilt for any layer added, renamed or
            # closed, and a result the user deleted came back with the next preview.
            self._follow()

    def _say_closed(self, closed) -> None:
        """The input ``closed`` was closed: say what the step reads now, if anything."""
        self._user_picked = False  # the layer picked is gone: new cells are the input
        layer = self.input.layer()
        if layer is None:
            self.status.setText(
                f"'{closed.name}' was closed, so there is nothing to split: segment the "
                f"cells again in {SEGMENT_STEP}, or pick the input."
            )
        else:
            self.status.setText(f"'{closed.name}' was closed; the input is now '{layer.name}'.")

    def _name_the_units(self, *_) -> None:
        """The distance rows name what they count: pixels, or for an input whose pixels
        are not square, pixels of their shorter side; again when its pixel size changes
        (typed in step 1)."""
        layer = self.input.layer()
        if layer is not self._measured:
            if self._measured is not None:
                self._measured.events.scale.disconnect(self._name_the_units)
            if layer is not None:
                layer.events.scale.connect(self._name_the_units)
            self._measured = layer
        unit = _distance_unit(layer)
        for name, text in _DISTANCE_ROWS.items():
            label, widget = self._rows[name]
            label.setText(f"{text} ({unit})")
            for part in (widget, *widget.findChildren(QWidget)):
                if part.accessibleName():  # named after the row for screen readers
                    part.setAccessibleName(label.text())

    def _name_the_buttons(self) -> None:
        """Frames are named only for an input that has them."""
        layer = self.input.layer()
        frames = layer is not None and layer.ndim - bool(getattr(layer, "rgb", False)) > 2
        self.apply_button.setText("Apply to all frames" if frames else "Apply")
        self.live.setText("Live preview (current frame)" if frames else "Live preview")

    def _show_rows(self, *_) -> None:
        """Show the settings the method and its way of seeding read, and no other."""
        method = self.method
        visible = {
            "foreground": {"threshold", "markers", "h", "min_distance", "marker_erosion",
                           "marker_dilation", "compactness"},
            "interior_boundary": {"interior_threshold", "threshold", "min_marker_size",
                                  "compactness"},
            "split": {"markers", "h", "min_distance", "marker_erosion", "marker_dilation",
                      "compactness", "min_fragment"},
        }[method]  # fmt: skip
        if "markers" in visible:
            seeding = self.markers.currentData()
            visible -= {row for key, row in _MARKER_ROW.items() if key != seeding}
        for name, (label, widget) in self._rows.items():
            label.setVisible(name in visible)
            widget.setVisible(name in visible)

    def _mode_changed(self) -> None:
        method = self.method
        self._show_rows()
        self.input_label.setText({"foreground": "Foreground map", "interior_boundary":
                                  "Interior map", "split": "Labels to split"}[method])  # fmt: skip
        self.boundary.setVisible(method == "interior_boundary")
        self.boundary_label.setVisible(method == "interior_boundary")
        self.input.set_types(Labels if method == "split" else Image)
        if (
            method == "interior_boundary"
            and not self._user_picked  # a map of the user's own stays
            and probability_of(self.input.layer()) != "interior"
        ):
            interiors = [ly for ly in self.input.layers() if probability_of(ly) == "interior"]
            if interiors:  # the newest U-Net interior map, not the newest image
                self.input.set_layer(interiors[-1])
        self._pair_boundary()
        self._suggest_threshold()

    def _pair_boundary(self) -> None:
        """With interior and boundary maps, choose the boundary map made with a U-Net
        interior map chosen (else the newest one): by default it was the phase image, whose
        brightness was refused as probabilities. With maps of the user's own, another layer
        than the interior."""
        interior = self.input.layer()
        if self.method != "interior_boundary" or interior is None:
            return
        if probability_of(interior) == "interior":
            made = {k: layer_info(interior).get(k) for k in ("made_from", "parameters")}
            maps = [ly for ly in self.boundary.layers() if probability_of(ly) == "boundary"]
            paired = [ly for ly in maps if {k: layer_info(ly).get(k) for k in made} == made]
            if paired or maps:
                self.boundary.set_layer((paired or maps)[-1])
                return
        others = [ly for ly in self.boundary.layers() if ly is not interior]
        if self.boundary.layer() in (None, interior) and others:
            self.boundary.set_layer(others[-1])

    def _suggest_threshold(self) -> None:
        """Probability maps (:func:`_probabilities`) start at 0.5; images of light at the
        Otsu threshold of the frame on show, from its pixels that are numbers (a stitched
        mosaic's NaN border left out); of a large frame, from a sample (:func:`_frame_values`).

        A frame on show of one value (a closed shutter) or of none takes the suggestion of
        the first frame of its stack that holds more: 0.5 on a black frame made every other
        frame of a 16-bit stack one cell, and the box kept the layer before's range and
        value (0.5 of a probability map for a 16-bit stack). An image of one value
        throughout, with no cells to find, gets the range of its type of numbers (for
        decimal numbers, one around the value), and the value.
        """
        layer = self.input.layer()
        if layer is None or isinstance(layer, Labels) or layer.multiscale or layer.rgb:
            return
        shown = frame_on_show(self.viewer, layer, layer.data.shape)
        values = _frame_values(layer.data, shown)
        single = single_value(values)
        if single is not None:
            what = "no number" if math.isnan(single) else f"only {single:g}"
            other = _frame_with_values(layer.data, shown)
            if other is not None:
                index, values = other
                single = None
                self.status.setText(
                    f"The frame of '{layer.name}' on show holds {what}: the threshold is "
                    f"suggested from {named_frame(index, layer.axis_labels)}, the first that holds "
                    "more."
                )
            else:
                flat = (
                    f"No frame of '{layer.name}' holds more than one value (the one on show "
                    f"holds {what})"
                    if shown
                    else f"'{layer.name}' holds {what}"
                )
                self.status.setText(
                    f"{flat}: there are no cells to find; pick the image that shows them."
                )
        dtype = np.dtype(layer.data.dtype)
        # No number at all tells nothing: such a frame is taken as a probability map.
        low, high = (0.0, 1.0) if values.size == 0 else (float(values.min()), float(values.max()))
        self.threshold.blockSignals(True)
        if values.size == 0 or _probabilities(layer, dtype.kind == "f" and low >= 0 and high <= 1):
            self.threshold.setDecimals(2)
            self.threshold.setRange(0, 1)
            self.threshold.setSingleStep(0.05)
            self.threshold.setValue(0.5)
            if self.method == "interior_boundary" and probability_of(layer) == "interior":
                self._suggest_models_thresholds(layer)
        else:
            if single is not None:
                # The reader's fallback for a flat image: the range of its numbers' type.
                low, high = contrast_from_sample(None, dtype) or (
                    single - max(abs(single), 1.0),
                    single + max(abs(single), 1.0),
                )
            # The decimals of a step of about 1 % of the range, none for whole numbers:
            # "42399.00" of a 16-bit image did not fit its box.
            span = high - low
            whole = dtype.kind in "iub"
            decimals = 0 if whole else min(8, max(0, 2 - math.floor(math.log10(span))))
            self.threshold.setDecimals(decimals)
            self.threshold.setRange(low, high)
            self.threshold.setSingleStep(max(round(span / 100, decimals), 10.0**-decimals))
            # On 256 bins of float64: Otsu bins whole numbers one per value (29.8 GiB for
            # an int32 image spanning ±2e9), and a float32 span of 1e-5 has too few steps.
            self.threshold.setValue(
                single if single is not None else float(threshold_otsu(values.astype(np.float64)))
            )
        self.threshold.blockSignals(False)

    def _suggest_models_thresholds(self, interior) -> None:
        """A U-Net's interior map starts at the thresholds its model segmented with, so
        that the split starts near its cells: at 0.5 for both, the sample's first field
        gave 83 "cells" where the model gave 73; at the model's, 79 (its minimum cell size,
        a clean-up setting here, makes the rest). Those of the frame on show where it was
        made alone (one position segmented): the stack's record holds none then."""
        info = layer_info(interior)
        shown = frame_key(frame_on_show(self.viewer, interior, interior.data.shape))
        frame = (info.get("previewed_frames") or {}).get(shown) or {}
        made = frame.get("parameters") or info.get("parameters") or {}
        for box, name in ((self.threshold, "foreground_threshold"),
                          (self.interior_threshold, "interior_threshold")):  # fmt: skip
            if isinstance(made.get(name), (int, float)):
                box.blockSignals(True)
                box.setValue(made[name])
                box.blockSignals(False)

    def _output_name(self, source) -> str:
        # Labels are cells split apart; an image (foreground, probabilities) gives cells.
        return f"{source.name} {'split' if isinstance(source, Labels) else 'instances'}"

    # ---- parameters ---------------------------------------------------------------------

    def params(self) -> dict:
        """Keyword arguments of the selected method's core function."""
        markers = {
            "markers": self.markers.currentData(),
            "h": self.h.value(),
            "min_distance": self.min_distance.value(),
            "marker_erosion": self.marker_erosion.value(),
            "marker_dilation": self.marker_dilation.value(),
            "compactness": self.compactness.value(),
        }
        if self.method == "foreground":
            return {"threshold": self.threshold.value(), **markers}
        if self.method == "interior_boundary":
            return {
                "interior_threshold": self.interior_threshold.value(),
                "foreground_threshold": self.threshold.value(),
                "min_marker_size": self.min_marker_size.value(),
                "compactness": self.compactness.value(),
            }
        return {**markers, "min_fragment_size": self.min_fragment.value()}

    def cleanup(self) -> dict:
        """Keyword arguments of :func:`~napari_cytomask.postprocess.clean_labels`, or a
        ValueError in the words of the dock when the areas leave no cell."""
        low, high = self.min_area.value(), self.max_area.value() or None
        if high is not None and high < low:
            raise ValueError(
                f"Maximum area ({high} px) is below Minimum area ({low} px): no cell could "
                "stay. Raise Maximum area, or set it to 0 (no limit)."
            )
        return {
            "fill": self.fill.isChecked(),
            "opening_radius": self.opening.value(),
            "closing_radius": self.closing.value(),
            "min_area": low,
            "max_area": high,
            "exclude_border": self.exclude_border.isChecked(),
        }

    def _inputs(self):
        """The input layer, its data arrays and the record of the result, or raise a
        ValueError that says what to do."""
        layer = self.input.layer()
        if layer is None:
            raise NothingToRun(_NO_INPUT)
        if layer.multiscale:
            # Previews and the output layer are whole frames in memory: a slide-sized
            # pyramid would not fit. Segmentation results are single-resolution.
            raise ValueError(f"{layer.name} is multiscale; pick a single-resolution layer.")
        if getattr(layer, "rgb", False):
            raise ValueError(f"{layer.name} is an RGB image; pick a single-channel map.")
        arrays = [layer.data]
        parameters = {"params": self.params(), "cleanup": self.cleanup()}
        if self.method == "interior_boundary":
            boundary = self.boundary.layer()
            if boundary is None or boundary is layer:
                raise ValueError("Pick the boundary map: an Image layer other than the interior.")
            for kind, chosen in (("interior", layer), ("boundary", boundary)):
                if is_channel(chosen) and not _named_probabilities(chosen):
                    maps = [ly.name for ly in self.viewer.layers if probability_of(ly) == kind]
                    pick = (
                        f" ('{maps[-1]}')"
                        if maps
                        else f": tick 'Also add the probability maps as layers' in "
                        f"{SEGMENT_STEP} and segment again"
                    )
                    raise ValueError(
                        f"{kind.capitalize()} map: '{chosen.name}' is an image of light, not "
                        f"a probability map. Pick the U-Net's {kind} map{pick}. {_SAVED_MAP}"
                    )
            if boundary.multiscale:
                raise ValueError(f"{boundary.name} is multiscale; pick a single-resolution map.")
            arrays.append(boundary.data)
            if tuple(arrays[1].shape) != tuple(arrays[0].shape):
                raise ValueError(
                    f"interior map {layer.name} has shape {tuple(arrays[0].shape)} but boundary "
                    f"map {boundary.name} has shape {tuple(arrays[1].shape)}; pick maps of "
                    "the same image."
                )
            parameters["boundary"] = origin(boundary)
        metadata = result_metadata(layer, method=f"watershed_{self.method}", parameters=parameters)
        made = frames_made_of(layer)
        if made is not None:  # cells of some frames only: the others were never made
            metadata[METADATA_KEY]["frames_made"] = list(made)
        return layer, arrays, metadata

    # ---- running ------------------------------------------------------------------------

    def _changed(self, *args) -> None:
        """A parameter changed: preview with it when live, but not a scan's image of light,
        whose brightness does not tell cells from background in transmitted light."""
        if not self.live.isChecked():
            return
        layer = self.input.layer()
        if isinstance(layer, Image) and is_channel(layer) and not _named_probabilities(layer):
            # With a boundary map, Apply refuses it too (_inputs).
            apply = (
                ""
                if self.method == "interior_boundary"
                else ", or Apply to threshold its brightness"
            )
            self.status.setText(
                f"'{layer.name}' was opened as an image of light, not a probability map: it "
                f"is not previewed live. Segment it in {SEGMENT_STEP} and split its cells "
                f"here{apply}. {_SAVED_MAP}"
            )
            return
        self.preview()

    def _follow(self, *args) -> None:
        """The input or the displayed frame changed: keep a started preview up to date.

        Opening the dock, or a new layer, starts nothing until the user changes a
        parameter or asks for a preview.
        """
        if self._previewing:
            self._changed()

    def stop_preview(self) -> None:
        """Drop a scheduled or running preview (not an Apply); the next one waits for the
        user."""
        if not self.applying():
            self.runner.cancel()
        self._previewing, self._apply_said = False, None

    def preview(self) -> None:
        """Re-run the displayed frame (debounced, in a worker) and show it; asked for while
        Apply runs, once Apply has ended (a preview's worker would take the place of
        Apply's, which would stop unsaid, its other frames never made)."""
        if self.applying():
            self._preview_waits = True
            return
        self._previewing = True
        try:
            layer, arrays, metadata = self._inputs()
        except ValueError as err:
            # A preview follows every edit: say it in the status line, never in a toast.
            self.runner.refuse(err, notify=False)
            return
        index = frame_on_show(self.viewer, layer, layer.data.shape)
        made = frames_made_of(layer)
        if made is not None and not made_frames(layer.data.shape, made)[index]:
            # Its step never made this frame: a split of its empty frame would mark the
            # frame made, and the metrics and cell counts would take it for a frame of no
            # cells. The preview of the frame shown before must not land either.
            self.runner.cancel()
            labels = layer.axis_labels
            held = f"cells of {named_frames(made, labels)} only" if made else "no frame's cells"
            self.status.setText(
                f"{named_frame(index, labels).capitalize()} of '{layer.name}' was never "
                "segmented (it holds "
                f"{held}), so there is nothing to split here: show a frame it holds, or "
                f"segment this one in {SEGMENT_STEP}."
            )
            return
        self.status.setText("Updating preview…")
        self._applying_now = False
        self.runner.watch(self.viewer, layer, step="split")
        # A preview follows every edit: a failure is said in the status line, not a toast.
        self.runner.request(*self._job(layer, arrays, index, metadata), notify=False)

    def applying(self) -> bool:
        """Whether Apply (every frame) runs, not a preview."""
        return self.runner.busy and self._applying_now

    def _show(self, result) -> None:
        """Put a preview frame, or a whole applied result, into the output layer."""
        labels, source, index, metadata, cells, note = result
        # The input itself, not its name: renamed, it still gets its result; closed, none.
        if source not in self.viewer.layers:
            self.status.setText(closed_during_run(source, "split"))
            return
        output = self._output_layer(source, metadata, index)
        if index is None:
            output.data = labels
        else:
            write_frames(output, [(index, labels)])
        forget_edits(output, index)
        record_written(output, index)
        if index is not None:
            said, self._apply_said = self._apply_said, None
            if said is None:
                self.status.setText(f"Preview: {cells} cells in the displayed frame.{note}")
            else:
                self.status.setText(
                    f"{said} Preview with the settings changed meanwhile: {cells} cells in the "
                    f"displayed frame.{note}"
                )
        else:
            self._applied = True
            if not output.visible:  # hidden by the user before: its cells said, not shown
                output.visible = True  # (napari redraws it, which counts as a change)
            hidden = ""
            if isinstance(source, Labels) and source.visible:
                # Both shown, the cells' colours mixed with their split's over them.
                source.visible = False
                hidden = f" '{source.name}' is hidden under it (its eye in the layer list)."
            self.status.setText(
                f"Done: {cells_in(output, cells)}."
                + _unlike_cells(source, metadata)
                + note
                + hidden
            )
            if self._pending is not None:
                return  # the newer result, handed over when this run ends, stays checked
        if not index:  # an Apply, or a single image's preview: the whole result
            self.applied.emit(output)

    def apply(self) -> None:
        """Process every frame into the output layer, with progress and cancel."""
        try:
            layer, arrays, metadata = self._inputs()
        except ValueError as err:
            self.runner.fail(err)
            return
        if isinstance(layer, Labels) and isinstance(arrays[0], np.ndarray):
            # The cells as they are now: painted into while the frames are split one by
            # one, frames not yet split took the new strokes and those split did not.
            arrays[0] = arrays[0].copy()
        self.status.setText("Processing…")
        self._applying_now, self._applied, self._apply_said = True, False, None
        self.runner.watch(self.viewer, layer, step="split")
        self.runner.run_now(*self._job(layer, arrays, None, metadata))

    def _job(self, layer, arrays, index, metadata) -> tuple:
        """A watershed job with the settings ``metadata`` records: one frame (``index``) or
        all (``None``)."""
        settings = metadata[METADATA_KEY]["parameters"]
        params, cleanup = settings["params"], settings["cleanup"]
        # A preview's new pieces take ids that the result's other frames do not hold.
        name = self._output_name(layer)
        out = self.viewer.layers[name].data if index and name in self.viewer.layers else None
        fits = isinstance(out, np.ndarray) and out.shape == np.shape(arrays[0])
        return (
            _watershed_job,
            self.method,
            arrays,
            params,
            cleanup,
            layer,
            layer.name,
            index,
            metadata,
            np.ndim(arrays[0]) - 2 - frame_axes(layer.axis_labels),
            pixel_shape(layer.scale[-2:]),
            out if fits else None,
        )

    def cancel(self) -> None:
        """Stop a running Apply or preview now (the frame under way is dropped), and the
        preview asked for while Apply ran: the user stopped the work."""
        self.runner.cancel()
        self._preview_waits, self._apply_said = False, None
        self._take_pending()

    def _take_pending(self) -> None:
        """Once an Apply has ended (done, failed or cancelled): take the input handed over
        during it, saying so after what the Apply said; or, where it delivered its result,
        run the preview asked for during it (a setting changed while it ran, whose result
        it does not show), after what it said. An Apply stopped (its input changed or
        closed) says so: a preview then added a layer of one frame over its words."""
        layer, self._pending = self._pending, None
        waits, self._preview_waits = self._preview_waits, False
        if layer is not None and layer in self.viewer.layers:
            ended = self.status.text()
            self.use_input(layer)
            self.status.setText(f"{ended} {self.status.text()}")
        elif waits and self._applied and not self.runner.busy:
            self._apply_said = self.status.text()
            self._changed()
            if not self.runner.busy:  # no preview asked for after all
                self._apply_said = None

    def _output_layer(self, source, metadata: dict, index: tuple | None) -> Labels:
        """The result layer (:meth:`_output_name`), created empty if needed and laid over
        the input at full resolution as the input lies now, recording ``metadata``: the
        settings of the whole result (Apply, or the preview of a single image), or those of
        one previewed frame of a stack (``index``), kept apart from the settings of the
        other frames."""
        data, geometry = resolution_level(source)
        shape = tuple(data.shape)
        name, layer = result_slot(
            self.viewer, self._output_name(source), Labels, shape, source_of(source), index
        )
        record = dict(metadata[METADATA_KEY])
        if index:
            # The stack's record stays that of its last Apply; the frame's is kept apart.
            record = frame_record(None if layer is None else layer_info(layer), record, index)
        metadata = {METADATA_KEY: record}
        if layer is None:
            # Not add_result, which hides masks: what this step splits is labels already (a
            # U-Net result, or a mask itself), the very layers a person is looking at.
            layer = self.viewer.add_layer(
                labels_layer(np.zeros(shape, np.uint16), name, geometry, metadata)
            )
        else:
            lay_over(layer, geometry)
            layer.metadata = {**layer.metadata, **metadata}
        self._split_of[layer.unique_id] = source.unique_id
        if isinstance(source, Labels) and index is None:
            # Corrected by hand after its split was applied: the split, scored and ticked
            # for export, does not hold the corrections, which nothing said.
            for emitter in (source.events.paint, source.events.labels_update):
                emitter.connect(self._input_edited)  # once: napari ignores it again
        return layer


def _distance_unit(layer) -> str:
    """What the distance settings count for ``layer`` (or None): "px", or where its pixels
    are not square, pixels of their shorter side ("px of 0.435 µm", or "px along x" for a
    layer whose scale is in no length: "X px" read as a count named X)."""
    spacing = None if layer is None else pixel_shape(layer.scale[-2:])
    if spacing is None:
        return "px"
    size = pixel_size_um(layer.scale, layer.units)
    if size is not None:
        return f"px of {min(size):.3g} µm"
    return f"px along {'y' if spacing[0] < spacing[1] else 'x'}"


def _frame_values(data, index: tuple) -> np.ndarray:
    """The pixels that are numbers of frame ``index`` of ``data`` that a threshold is
    suggested from: a sample of a large frame
    (:func:`~napari_cytomask.io.layers.plane_sample`), read from the chunks it lies in, so
    that a lazy mosaic of any size is read and thresholded as fast as a small image. A
    sample of one value is checked on the whole frame: a blank frame (a closed shutter)
    is told from one whose few cells the sample missed."""
    height, width = data.shape[-2:]
    chunks = getattr(data, "chunksize", None)  # a dask array's; reads of others cost their size
    sample = plane_sample(
        lambda rows, cols: np.asarray(data[(*index, rows, cols)]),
        height,
        width,
        None if chunks is None else tuple(chunks[-2:]),
    )
    if sample.size < height * width and single_value(finite_values(sample)) is not None:
        sample = data[index]
    return finite_values(sample)


def _frame_with_values(data, shown: tuple) -> tuple[tuple, np.ndarray] | None:
    """The first frame of the stack ``data`` other than ``shown`` that holds more than one
    value, and its pixels that are numbers (:func:`_frame_values`); None when none does.
    Frames are read one at a time, until one does."""
    for index in np.ndindex(data.shape[:-2]):
        if index != shown:
            values = _frame_values(data, index)
            if single_value(values) is None:
                return index, values
    return None


def _segmented(layer) -> bool:
    """Whether ``layer`` holds cells a model segmented (the U-Net's or SAM2's)."""
    return isinstance(layer, Labels) and layer_info(layer).get("method") in ("unet", "sam2")


#: How a probability map opened from a file is taken for one.
_SAVED_MAP = (
    "A probability map saved to a file is taken for one when its name says so "
    "('cells_probability.tif')."
)
#: What the name of a probability map saved to a file says ("set1_foreground_probability").
_PROBABILITY_NAME = re.compile(r"prob|foreground", re.I)


def _named_probabilities(layer) -> bool:
    """Whether ``layer``'s name says it holds probabilities."""
    return bool(_PROBABILITY_NAME.search(layer.name))


def _probabilities(layer, from_0_to_1: bool) -> bool:
    """Whether ``layer`` holds probabilities, not light: a model's map (a result of the
    plugin); a layer made in the viewer, or a channel opened from a file whose name says
    it is a map (:func:`_named_probabilities`), when its numbers run ``from_0_to_1``.
    Any other channel opened from a file is an image of light whatever its numbers: phase
    contrast saved as decimals from 0 to 1 was thresholded at 0.5 as a map, and its 192
    "cells" reported without a word; the reader takes either for the scan's input."""
    role = role_of(layer)
    if role == RESULT_ROLE:
        return True
    return from_0_to_1 and (role is None or _named_probabilities(layer))


def _unlike_cells(source, metadata) -> str:
    """What to say after thresholding the brightness of a transmitted-light image, which
    does not tell cells from background (1528 "cells" on the sample's 209)."""
    parameters = metadata[METADATA_KEY]["parameters"]
    if metadata[METADATA_KEY]["method"] != "watershed_foreground":
        return ""
    if _probabilities(source, parameters["params"]["threshold"] <= 1):
        return ""
    if looks_fluorescent(source.name):  # a stain's brightness does ("Transferrin 488")
        return ""
    advice = "Segment it with the U-Net or SAM2 (Segment cytoplasm) and split their cells here."
    if looks_transmitted(source.name):
        return (
            f" '{source.name}' is a transmitted-light image: its brightness does not tell "
            f"cells from background, so these are not its cells. {advice}"
        )
    if role_of(source) == "input":  # a file's own name ("raw") says nothing of its light
        return (
            f" If '{source.name}' is a transmitted-light image (brightfield, phase contrast, "
            f"DIC), these are not its cells: its brightness does not tell cells from "
            f"background. {advice}"
        )
    return ""


def _cells_through_planes(labels, volume: int, name: str) -> str:
    """What to say after splitting cells drawn through Z planes (one id in several planes):
    each plane is split on its own, so every plane's part of a cell has an id of its own
    (25 cells in 4 planes became 100, which the metrics then match to none). ``volume``:
    how many axes before Y and X make one volume with them (Z)."""
    if volume < 1:
        return ""
    for place in np.ndindex(labels.shape[: labels.ndim - 2 - volume]):
        frame = np.asarray(labels[place])  # one volume at a time: the stack may be lazy
        planes = frame.reshape(-1, *frame.shape[-2:])
        per_plane = sum(np.count_nonzero(np.unique(plane)) for plane in planes)
        if per_plane > np.count_nonzero(np.unique(frame)):
            return (
                f" Note: '{name}' holds cells through several Z planes, and the split "
                "works on each plane on its own (2D): every plane's part of a cell has an id "
                "of its own, so counts and 3-D comparisons do not hold."
            )
    return ""


def _split_note(cut: int, pieces: int, removed: int, binary: bool = False) -> str:
    """What to say of the ids of a split that cut ``cut`` cells into ``pieces`` and whose
    clean-up ``removed`` cells: ids link cells to the tables and tracks made from them.
    A ``binary`` mask's cells are its separate regions, whose one id links nothing."""
    if binary:
        split = "none was split" if not cut else f"{cut} {'was' if cut == 1 else 'were'} split"
        return (
            " The input is a binary mask (one value for every cell): its separate regions are "
            f"taken as the cells, and {split}{f' into {pieces}' * bool(cut)}."
        )
    if not cut:
        return f" No cell was split: every cell {'left ' * bool(removed)}keeps its id."
    return (
        f" {cut} {'cell was' if cut == 1 else 'cells were'} split into {pieces}: one piece "
        "of each keeps its id, the others have new ids, and the cells left whole keep theirs."
    )


def _removed_cells(cells, split, cleanup: dict) -> dict[str, int]:
    """How many cells of ``cells`` the split (``split``) kept nothing of, counted frame by
    frame, by what its clean-up (``cleanup``, which acts on every cell, cut or not) removed
    them for: "small" (under its minimum area), "large" (over its maximum), "border"
    (touching the image's edge) or "other" (none of the pieces the split or the opening
    made of them kept). Arrays may be lazy: a frame is read at a time."""
    removed = dict.fromkeys(("small", "large", "border", "other"), 0)
    for place in np.ndindex(tuple(np.shape(cells))[:-2]):
        before, after = np.asarray(cells[place]), np.asarray(split[place])
        ids, areas = np.unique(before, return_counts=True)
        # A cell with a piece left keeps its id, on that piece or on the first of them.
        new = (after > 0) & np.isin(after, ids, invert=True)
        left = np.concatenate([np.unique(after), np.unique(before[new])])
        gone = (ids != 0) & np.isin(ids, left, invert=True)
        ids, areas = ids[gone], areas[gone]
        small = areas < cleanup["min_area"]
        large = ~small & (areas > (cleanup["max_area"] or np.inf))
        edge = np.concatenate([before[0], before[-1], before[:, 0], before[:, -1]])
        border = ~small & ~large & cleanup["exclude_border"] & np.isin(ids, edge)
        for key, which in (("small", small), ("large", large), ("border", border)):
            removed[key] += int(which.sum())
        removed["other"] += int((~small & ~large & ~border).sum())
    return removed


def _removed_note(removed: dict[str, int], cleanup: dict) -> str:
    """What to say of the cells a split's clean-up removed (:func:`_removed_cells`), with
    the setting that removed them as the dock names it."""
    why = {
        "small": f" smaller than Minimum area ({cleanup['min_area']} px)",
        "large": f" larger than Maximum area ({cleanup['max_area']} px)",
        "border": " touching the border (Remove cells touching the border)",
        "other": "",
    }
    text = ""
    for key, n in removed.items():
        if not n:
            continue
        one = n == 1
        other = "other " if key == "other" and text else ""
        text += f" {n} {other}{'cell' if one else 'cells'}{why[key]} {'was' if one else 'were'}"
        text += (
            f" removed: the clean-up left no piece of {'it' if one else 'them'}."
            if key == "other"
            else " removed."
        )
    return text


def _any_cells(labels) -> bool:
    """Whether labels (numpy, dask or zarr) hold a cell, read a frame at a time until one
    does."""
    if labels.ndim <= 2:
        return bool(np.asarray(labels).any())
    return any(np.asarray(labels[i]).any() for i in np.ndindex(labels.shape[:-2]))


def _no_cells(where: str, source, index) -> str:
    """Why there is nothing to split in ``where`` (every pixel 0), and what would give
    cells: a result of segmenting found none (an image smaller than the least cell), where
    the advice was to segment what had just been segmented, as a red error."""
    frame = "show a frame with cells, " if index else ""
    if is_result(source):
        other = "; show a frame with cells" if index else ""
        return (
            f"{where} has no cells to split: segmenting found none there, or they were "
            f"erased{other}."
        )
    return (
        f"{where} has no cells to split (every pixel is 0): {frame}segment it in "
        f"{SEGMENT_STEP} first, or paint cells into it."
    )


def _watershed_job(
    method, arrays, params, cleanup, source, name, index, metadata, volume, spacing, taken=None
):
    """Worker body: the frame at ``index`` (a preview), or every frame (``index`` None).

    The ``source`` layer (carried: its data is never read here, its axis labels name a
    frame in messages) and ``metadata``, the record of the
    settings this run used, come back with the labels, their count of cells, and a note on
    the cells a split cut and on cells split plane by plane (``volume``: the input's axes
    that make one volume with Y and X). ``spacing``: the shape of the input's pixels
    (:func:`~napari_cytomask.postprocess.watershed.pixel_shape`). ``taken``: the result a
    preview writes its frame into, whose other frames' ids its new pieces must not take.
    """
    largest = None
    # The ids of the result's other frames, previewed or applied, which a frame's new
    # cells do not take.
    elsewhere = largest_elsewhere(taken, index) if taken is not None and index else 0
    if index is not None:
        if method == "split" and isinstance(arrays[0], np.ndarray):
            # A frame's new pieces take ids above the whole stack's, as Apply gives them,
            # not those of other frames' cells. A lazy stack is not read whole per preview.
            largest = max(int(arrays[0].max(initial=0)), elsewhere)
        arrays = [np.asarray(arr[index]) for arr in arrays]
        if method == "split" and not arrays[0].any():
            # Said before a result layer is added for it, which Apply would then refuse.
            where = f"'{name}'"
            if index:
                where = f"{named_frame(index, source.axis_labels).capitalize()} of {where}"
            raise NothingToRun(_no_cells(where, source, index))
    elif method == "split" and not _any_cells(arrays[0]):
        # Checked here, on Apply only, not before every preview: it may read the whole stack.
        raise NothingToRun(_no_cells(f"'{name}'", source, index))
    big = index is None and max(arrays[0].shape[-2:]) > 4096
    labels = yield from iter_watershed(
        method,
        *arrays,
        params=params,
        cleanup=cleanup,
        chunk_size=2048 if big else None,
        spacing=spacing,
        largest_id=largest,
    )
    if method != "split":
        cells = int(labels.max(initial=0))
        labels = numbered_above(labels, elsewhere)
        return compact_labels(labels), source, index, metadata, cells, ""
    # Read here, off the GUI thread, like the check.
    # A binary mask's cells are its separate regions, as the metrics and the export take
    # them (one in memory: a lazy one is read a frame at a time, and counted by its id).
    before = arrays[0]
    found = binary_mask_regions(before, before.ndim - 2) if isinstance(before, np.ndarray) else None
    if found is not None:
        before = found[0]
    cells, cut, pieces = split_counts(before, labels)
    removed = _removed_cells(before, labels, cleanup)
    note = _split_note(cut, pieces, sum(removed.values()), binary=found is not None)
    note += _removed_note(removed, cleanup)
    if index is None:
        note += _cells_through_planes(arrays[0], volume, name)
    return compact_labels(labels), source, index, metadata, cells, note
