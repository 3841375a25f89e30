"""A matplotlib canvas for the docks' plots."""

from __future__ import annotations

import warnings

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class PlotCanvas(FigureCanvasQTAgg):
    """A figure that fits its widget and never warns about its layout.

    matplotlib warns "Tight layout not applied" whenever the widget is briefly
    too small (a dock being resized); napari shows every warning as a
    notification, so the warning is silenced here and the figure simply waits
    for the next, larger draw. A hidden plot (a tab not shown) is drawn when it
    is shown: drawing costs the GUI thread tens of milliseconds.
    """

    def __init__(self):
        super().__init__(Figure(figsize=(4, 2.6), tight_layout=True))
        self.setMinimumHeight(160)
        self._stale = False
        self.setToolTip("The plot follows the numbers of its step.")

    def draw_idle(self) -> None:
        self._stale = not self.isVisible()
        if not self._stale:
            super().draw_idle()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.draw_idle()

    def draw(self) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tight layout not applied")
            super().draw()
