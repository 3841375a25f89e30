"""A matplotlib canvas for the docks' plots, in napari's theme."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.compat import isalive

#: Line colours, each 4.5:1 or more against napari's dark or light background (the
#: matplotlib defaults gave 3.2:1 for blue on dark, 2.1:1 for orange on light).
_SERIES = {"dark": ("#6cb4ff", "#ffa64d", "#7ddc7d"), "light": ("#1f5fa8", "#a84300", "#236b23")}
#: Text that says the plot is empty, as legible.
_MUTED = {"dark": "#9aa0a6", "light": "#5f6368"}


def _theme_colours(name: str) -> tuple[str, str, str]:
    """napari's theme ``name``: its background and text colours, and whether it is dark or
    light."""
    from napari.utils.theme import get_system_theme, get_theme

    theme = get_theme(get_system_theme() if name == "system" else name)  # 7 ms: kept
    red, green, blue = theme.background.as_rgb_tuple()[:3]
    kind = "dark" if 0.299 * red + 0.587 * green + 0.114 * blue < 128 else "light"
    return theme.background.as_hex(), theme.text.as_hex(), kind


class PlotCanvas(FigureCanvasQTAgg):
    """A figure that fits its widget, never warns about its layout, and takes napari's
    theme: its background and text, and line colours legible on it (:attr:`series`).

    matplotlib warns "Tight layout not applied" whenever the widget is briefly
    too small (a dock being resized); napari shows every warning as a
    notification, so the warning is silenced here and the figure simply waits
    for the next, larger draw. A hidden plot (a tab not shown) is plotted and drawn
    when it is shown (:meth:`replot`): each costs the GUI thread tens of milliseconds.

    Parameters
    ----------
    redraw
        Draws the plot again (with :meth:`style`): called when napari's theme changes.
    viewer
        The viewer whose theme the plot takes: napari's key for another theme changes the
        viewer's, not the settings', and a plot that followed the settings stayed dark in
        a light window. Without one, napari's settings.
    """

    def __init__(self, redraw: Callable[[], None], viewer=None):
        from napari.settings import get_settings

        super().__init__(Figure(figsize=(4, 2.6), tight_layout=True))
        self.setMinimumHeight(160)
        self._stale = False
        self._restyle = False  # the theme changed while the plot was out of sight
        self._replot = False  # its numbers changed while it was out of sight
        self._redraw = redraw
        self._viewer = viewer
        self._take_theme()
        self.setToolTip("The plot follows the numbers of its step.")
        # The window sets the viewer's theme when the settings' changes.
        events = viewer.events if viewer is not None else get_settings().appearance.events
        events.theme.connect(self._theme_changed)

    def _theme_changed(self, *_) -> None:
        # A plot out of sight (a tab not shown, a closed dock) is redrawn when shown.
        self._restyle = True
        if isalive(self) and self.isVisible():
            self._restyle = False
            self._restyled()

    def _take_theme(self) -> None:
        from napari.settings import get_settings

        viewer = self._viewer
        name = viewer.theme if viewer is not None else get_settings().appearance.theme
        self._background, self.text, kind = _theme_colours(name)
        #: Three line colours, and that of a note on an empty plot, for the theme.
        self.series, self.muted = _SERIES[kind], _MUTED[kind]

    def _restyled(self) -> None:
        self._take_theme()
        self._redraw()

    def replot(self) -> None:
        """Plot the numbers again (``redraw``) now if the plot is on show, else when it is
        shown: plotted out of sight, each edit compared by the metrics cost the GUI
        thread up to 50 ms, while a person painted."""
        if isalive(self) and self.isVisible():
            self._replot = False
            self._redraw()
        else:
            self._replot = True

    def style(self) -> None:
        """Give the figure and its axes, ticks and legends the theme's colours."""
        background, text = self._background, self.text
        self.figure.set_facecolor(background)
        for axes in self.figure.axes:
            axes.set_facecolor(background)
            axes.tick_params(colors=text, which="both")
            for spine in axes.spines.values():
                spine.set_color(text)
            legend = axes.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(background)
                for label in legend.get_texts():
                    label.set_color(text)

    def draw_idle(self) -> None:
        self._stale = not self.isVisible()
        if not self._stale:
            super().draw_idle()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._restyle or self._replot:
            self._restyle = self._replot = False
            self._restyled()
        elif self._stale:
            self.draw_idle()

    def draw(self) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tight layout not applied")
            super().draw()
