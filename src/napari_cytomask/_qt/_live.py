"""One way to run a step's work: a core generator in a napari thread worker.

Every step of the dock runs its long work the same way: a Qt-free generator
that yields progress and returns a result goes to :class:`Runner`, which
starts a napari thread worker, shows progress in the step's
:class:`StepControls`, cancels between yields, hands the newest result to the
widget and reports a failure once (status line and one notification).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from urllib.parse import unquote

from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.compat import isalive
from qtpy.QtCore import QEvent, QLocale, QObject, QSize, Qt, QTimer, Signal
from qtpy.QtGui import QDoubleValidator, QKeySequence, QValidator
from qtpy.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QShortcut,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..progress import (
    Pace,
    Progress,
    counted,
    drain,
    host_out_of_memory,
    one_line,
    out_of_memory,
    progress_text,
)
from ..roles import source_of
from ._layers import changed_during_run, closed_during_run, role_changed_during_run

#: Set ``CYTOMASK_NO_THREADS=1`` to run work in the calling thread (handy in a debugger).
NO_THREADS = os.environ.get("CYTOMASK_NO_THREADS", "") not in ("", "0")


def failed(what: str, err: BaseException, memory_advice: str, host_advice: str) -> str:
    """``"<what> failed: <why>"``, with what to change when memory ran out: a GPU's
    (``memory_advice``) or the computer's (``host_advice``: the CPU is no way out then)."""
    text = f"{what} failed: {one_line(err)}"
    if not out_of_memory(err):
        return text
    return f"{text}. {host_advice if host_out_of_memory(err) else memory_advice}"


#: Seconds of a stage measured before its time left is said.
_PACE_AFTER = 2.0


#: Where a channel's role is set, said so that it holds in the Segment cytoplasm dock
#: (its step 1) and in a dock of its own (the Layers menu).
CHANNEL_ROLES = "Channel roles (step 1 of Segment cytoplasm, or Layers > Data)"


class NothingToRun(ValueError):
    """A step's input is missing: its status line says what to add, as no failure."""


def no_image_to_segment(viewer, pick: str) -> str:
    """Why there is no image to segment, and what to do (``pick``: where one is chosen);
    a file that holds only a mask (label ids), opened as Labels, is named."""
    layers = list(viewer.layers)
    masks = [layer.name for layer in layers if isinstance(layer, Labels)]
    if masks and not any(isinstance(layer, Image) for layer in layers):
        return (
            f"No image to segment: '{masks[0]}' holds label ids (a mask), opened as Labels. "
            f"Open the image it belongs to; if it is the image, make it one in {CHANNEL_ROLES}."
        )
    return f"No image to segment: open an image or tile scan, or pick one under {pick}."


#: Where cells are segmented, said likewise.
SEGMENT_STEP = "Segment cytoplasm (its step 2, or Layers > Segment)"


class StepControls(QWidget):
    """A step's run button, Cancel, progress bar and status line, always kept together.

    Parameters
    ----------
    run_text, run_tooltip
        The run button's text and tooltip.
    cancel
        Whether the step can be cancelled (a Cancel button).
    """

    #: Sent with True when the step starts and False when it stops.
    running_changed = Signal(bool)

    def __init__(self, run_text: str, run_tooltip: str, cancel: bool = True):
        super().__init__()
        self.run_button = QPushButton(run_text)
        self.run_button.setToolTip(f"{run_tooltip} (Ctrl+Enter)")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this step; what it has not finished is dropped (Esc).")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setVisible(cancel)
        self.progress = QProgressBar()
        self.progress.setToolTip("Progress of the running step.")
        self.progress.setValue(0)
        self.status = _StatusLabel()
        self.status.setToolTip("What the step did last, or what to do next.")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._pace = Pace(after=_PACE_AFTER)
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.run_button, 1)
        self.buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(self.buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status.area)

    def add_button(self, button: QPushButton) -> None:
        """Put another action of the step beside the run button."""
        self.buttons.addWidget(button)

    def set_running(self, running: bool) -> None:
        """Swap the run button for Cancel, the keyboard focus with them: a disabled button
        that held the focus would pass it on out of the step (to napari's button that hides
        the dock, or to Reset), where Esc no longer cancels and Space presses that button."""
        leaving, coming = (
            (self.run_button, self.cancel_button)
            if running
            else (self.cancel_button, self.run_button)
        )
        coming.setEnabled(True)
        # The window's focus widget, which holds the focus again once the window is active
        # (while another window is, no widget of this one "has" it).
        if self.window().focusWidget() in (leaving, self):
            (coming if coming.isVisibleTo(self) else self).setFocus()
        leaving.setEnabled(False)
        self.progress.setFormat("%p%")  # a stage a run named on the bar is over
        self._pace = Pace(after=_PACE_AFTER)
        self.running_changed.emit(running)

    def show_progress(self, event) -> None:
        """Show a core progress report: :class:`~napari_cytomask.progress.Progress`,
        ``(stage, done, total)`` or ``(done, total)``."""
        detail = ""
        if isinstance(event, Progress):
            stage, done, total, detail = event.stage, event.done, event.total, event.detail
        elif len(event) == 3:
            stage, done, total = event
        else:
            stage, (done, total) = None, event
        self.progress.setRange(0, max(int(total), 1))
        self.progress.setValue(int(done))
        # The time left from the pace of what is counted: a stack of positions can take
        # hours. Stages that count one thing (SAM2's encoder and decoder, taking turns on
        # each crop) are timed together, not afresh at each turn.
        left = self._pace.left(done, total, (counted(stage), total))
        self.status.setText(progress_text(stage, done, total, left, detail))


class _StatusLabel(QLabel):
    """A step's status line, wrapped, in an area as high as its text (a line at least) up
    to :data:`STATUS_LINES` lines, which then scrolls: on a laptop's screen a long message
    (the metrics' frames left out, an error and what to do) pushed the step's results out
    of sight. Its :attr:`area` goes into the layout."""

    def __init__(self):
        super().__init__("")
        self.setWordWrap(True)
        # A long layer name is one word that cannot wrap: it must not widen the dock past
        # the screen (the label takes the width it is given).
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # As high as its text at the area's width, as the area is: not a wrapped label's
        # least height, a few pixels more, which scrolled a two-line status.
        self.setMinimumSize(1, 1)
        self.area = _StatusArea(self)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self.area.updateGeometry()


class _StatusArea(QScrollArea):
    def __init__(self, label: QLabel):
        super().__init__()
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes on from the step's buttons
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setWidget(label)
        self._label = label

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        line = self._label.fontMetrics().lineSpacing()
        # Half a line more: a line cut across says that the text goes on.
        most = round((STATUS_LINES + 0.5) * line)
        # At the width beside a scroll bar, shown or not: at the whole width, a text that
        # fitted there took a scroll bar when the bar narrowed it to one line more.
        bar = self.verticalScrollBar().sizeHint().width()
        text = self._label.heightForWidth(max(self.width() - 2 * self.frameWidth() - bar, 1))
        # A line when empty, as a label: a first message does not move the step's buttons.
        return QSize(0, min(max(text, line), most) + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return self.sizeHint()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():  # its text wraps anew
            self.updateGeometry()


#: The lines a step's status shows before it scrolls.
STATUS_LINES = 4


def step_page(
    widget: QWidget, content: QWidget, controls: StepControls, *, scroll: bool = True
) -> None:
    """Lay out a step: its settings scroll, its controls stay in view below them, and its
    fields are named after their labels (:func:`name_fields`).

    Parameters
    ----------
    widget
        The step widget to lay out.
    content
        The settings (forms, groups); they scroll when the dock is short.
    controls
        The step's run button, progress and status, never scrolled away.
    scroll
        False for content that scrolls its settings itself (tabs of scrolled settings):
        in a second scroll area, it kept its least height, and napari put the rest of
        the dock below it, empty.
    """
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(2, 2, 2, 2)
    layout.addWidget(scrolled(content) if scroll else content, 1)
    layout.addWidget(controls)
    name_fields(content)


def name_fields(root: QWidget) -> None:
    """Give each field of ``root``'s forms its row's label as its name, for screen readers:
    the label becomes the field's buddy, and every part of it that takes the focus (the
    slider and the value box of a labelled slider) is named after it, with the field's
    tooltip where it has none."""
    for form in root.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            label = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            if label is None or field is None or field.widget() is None:
                continue
            if not isinstance(label.widget(), QLabel):
                continue
            label.widget().setBuddy(field.widget())
            _name_after(field.widget(), label.widget().text())


def _name_after(widget: QWidget, name: str) -> None:
    """Name ``widget`` and its parts that take the focus ``name`` where they have none; a
    button beside the field is named with its own text too ("Model: Open…"): named after
    the row alone, it was said to be the row's field."""
    for part in [widget, *widget.findChildren(QWidget)]:
        if part.focusPolicy() != Qt.FocusPolicy.NoFocus and not part.accessibleName():
            text = part.text().replace("&", "") if isinstance(part, QAbstractButton) else ""
            part.setAccessibleName(f"{name}: {text}" if text else name)
            if not part.toolTip():
                part.setToolTip(widget.toolTip())


#: The least height of a step's settings (about a row and a half): Qt's own least height of
#: a scroll area is about three rows, and with four of the plugin's docks open, their least
#: heights added up to more than an 800-px screen, so the window grew past its bottom.
SETTINGS_MIN_HEIGHT = 36


#: The least width (logical px, the same at any display scaling) napari keeps beside a
#: plugin's dock: its layer controls (320 px for a Labels layer), its canvas with the sliders
#: below it (244 px) and the splitters, in napari 0.9. At 1280 × 800 with 150 % scaling
#: (853 px wide), a dock that asked for its settings' 437 px pushed the window's right edge,
#: with the step's Cancel, off the screen.
NAPARI_WIDTH = 615
#: The least width a dock's settings ask for, however narrow the screen.
NARROWEST = 200


def within_the_screen(widget: QWidget, width: int) -> int:
    """``width``, or what the screen ``widget`` is on leaves beside napari's own parts
    (:data:`NAPARI_WIDTH`) where that is less (but :data:`NARROWEST` at least)."""
    screen = widget.screen() or QApplication.primaryScreen()
    return min(width, max(NARROWEST, screen.availableGeometry().width() - NAPARI_WIDTH))


class _SettingsArea(QScrollArea):
    """A scroll area as wide as its settings where the screen has room for them:
    napari opens a plugin's dock about 300 px wide at 1280 × 800, where the right edge of a
    step's settings (the value beside a slider, the resample box) was cut off, with no way
    to scroll to it. On a screen too narrow for them, they scroll sideways."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        bar = self.verticalScrollBar().sizeHint().width()
        width = content.minimumSizeHint().width() + bar + 2 * self.frameWidth()
        return QSize(max(hint.width(), within_the_screen(self, width)), hint.height())

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # settings shown or hidden: the least width changed
        return super().eventFilter(watched, event)


def scrolled(content: QWidget) -> QScrollArea:
    """``content`` in a scroll area: settings that may not fit a short (or, on a narrow
    screen, a narrow) dock."""
    scroll = _SettingsArea()
    # Tab goes through its settings, never stopping on the area itself, which shows no
    # focus (a stop that seemed to lose it).
    scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    scroll.setMinimumHeight(SETTINGS_MIN_HEIGHT)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(content)
    content.installEventFilter(scroll)
    return scroll


#: The locale of every number the step widgets show: a decimal point in every locale, as
#: the tables, presets, the command line and the README write numbers. A typed comma is
#: taken as the point (:class:`DecimalSpinBox`, :class:`PointValidator`).
NUMBER_LOCALE = QLocale.c()


def _with_point(text: str) -> str:
    """A typed decimal comma ("0,85", as in German) is the decimal point it means."""
    return text.replace(",", ".")


class DecimalSpinBox(QDoubleSpinBox):
    """A spin box that shows a decimal point and takes a typed comma as one."""

    def validate(self, text, pos):
        return super().validate(_with_point(text), pos)

    def valueFromText(self, text: str) -> float:
        return super().valueFromText(_with_point(text))


class WholeSpinBox(QSpinBox):
    """A spin box of whole numbers where a typed comma ("12,5") leaves the value as it was:
    in the C locale Qt drops a comma as a thousands separator, which made it 125."""

    def validate(self, text, pos):
        if "," in text:  # never acceptable, so Enter brings back the last value
            return QValidator.State.Intermediate, text, pos
        return super().validate(text, pos)

    def fixup(self, text):
        return text if "," in text else super().fixup(text)


class PointValidator(QDoubleValidator):
    """A number validator in :data:`NUMBER_LOCALE` that takes a typed comma as the
    decimal point (for superqt's slider labels, which read their text with float())."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setLocale(NUMBER_LOCALE)

    def validate(self, text, pos):
        return super().validate(_with_point(text), pos)


def number_box(low, high, value, tip, step=1, decimals=None, special=None) -> QWidget:
    """A spin box of whole numbers (:class:`WholeSpinBox`), or of ``decimals`` decimals
    (:class:`DecimalSpinBox`), with its range, step, value, tooltip and the text of its
    lowest value (``special``)."""
    box = DecimalSpinBox() if decimals is not None else WholeSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    if special:
        box.setSpecialValueText(special)
    return box


#: Height (px) a main window keeps beside its docks: menu bar, status bar, dock titles.
_WINDOW_FRAME = 80
#: Height (px) a stacked dock needs beyond its least one to show its settings or results.
_USABLE = 250


class FitsTheScreen:
    """Mixin of the plugin's docks: a dock opened where the plugin's docks stacked in its
    area would not each get :data:`_USABLE` px beyond their least height on the screen
    joins the last of them as a tab (napari's own docks are left alone); where they fit,
    they stack and share the height.

    napari stacks docks in an area. With four of the plugin's docks at 1280 × 800 each got
    its least height: the metrics table 0 px, the export list half a row, and no splitter
    could give one more room. Tabbed, each shows whole.
    """

    _placed = False
    _docked = False  # in a napari dock: taken out of it, the dock was closed
    _title = ""  # the title of the napari dock it is in

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self._placed:
            self._placed = True
            QTimer.singleShot(0, self._fit_the_screen)  # once napari has placed the dock

    def event(self, event) -> bool:
        """Start no more runs in this dock (its steps' neither) once napari closes it: napari
        keeps a closed dock's widget, taken out of the dock, whose metrics and previews
        went on computing at every edit of the layers they followed. A run under way that
        has a Cancel button (training, segmenting, an export) is cancelled as that button
        does, and a notification says so: it ran on unseen, with no way to stop it, and a
        dock opened again could start a second run beside it. A live preview stops unsaid; a
        run without a Cancel button (the metrics') ends."""
        if event.type() == QEvent.Type.ParentChange:
            docked = isinstance(self.parentWidget(), QDockWidget)
            if docked:
                self._title = self.parentWidget().windowTitle()
            elif self._docked:
                self._cancel_runs()
            if docked or self._docked:
                for runner in self.findChildren(Runner):
                    runner.close(not docked)
            self._docked = docked
        return super().event(event)

    def _cancel_runs(self) -> None:
        """Press the Cancel button of each run under way, and say what became of it (a
        live preview, which nobody asked for by a click, stops unsaid)."""
        for runner in self.findChildren(Runner):
            controls = runner.controls
            if runner.worker is None or controls is None or controls.cancel_button.isHidden():
                continue
            if runner.live:
                runner.cancel()
                continue
            controls.cancel_button.click()
            said = controls.status.text()
            kept = "" if said == _CANCELLED else f" {said}"  # what it kept, where it did
            # What happened first: a notification shows its first words only.
            show_info(f"Run cancelled: '{self._title}' was closed while it ran.{kept}")

    def _fit_the_screen(self) -> None:
        if not isalive(self):
            return
        dock = self.parentWidget()
        window = dock.parentWidget() if isinstance(dock, QDockWidget) else None
        if window is None or dock.widget() is not self or not isinstance(window, QMainWindow):
            return  # a part of another dock, a floating or a plain window
        # napari's title bar asks for its whole title ("Segment cytoplasm
        # (napari-cytomask)": 263 px at 150 %), more than the least width of the dock's
        # settings on a narrow screen; the title is cut there instead, and the least width
        # Qt set on the dock from it is let go (the dock's content gives it again).
        title = dock.titleBarWidget()
        for label in title.findChildren(QLabel) if title is not None else ():
            label.setMinimumWidth(1)
        dock.setMinimumWidth(0)
        area = window.dockWidgetArea(dock)
        others = [
            other
            for other in window.findChildren(QDockWidget)
            if other is not dock
            and isinstance(other.widget(), FitsTheScreen)
            and other.isVisible()
            and not other.isFloating()
            and window.dockWidgetArea(other) == area
        ]
        screen = window.screen() or QApplication.primaryScreen()
        room = screen.availableGeometry().height() - _WINDOW_FRAME
        wanted, counted = 0, set()
        for stacked in [*others, dock]:  # docks already tabbed together take one height
            if stacked not in counted:
                group = [stacked, *window.tabifiedDockWidgets(stacked)]
                counted.update(group)
                wanted += max(d.minimumSizeHint().height() for d in group) + _USABLE
        if (
            others
            and wanted > room
            and area
            in (Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea)
        ):
            window.tabifyDockWidget(others[-1], dock)
            dock.show()
            dock.raise_()
        elif others:
            # napari gives the newest dock the room and squeezes the others to their least.
            stacked = [*others, dock]
            window.resizeDocks(
                stacked, [room // len(stacked)] * len(stacked), Qt.Orientation.Vertical
            )


class StepWidget(FitsTheScreen):
    """What every step widget offers about its run: ``status``, ``progress`` and the running
    ``worker``, read off its :class:`StepControls` (``self.controls``) and
    :class:`Runner` (``self.runner``). Its numbers use :data:`NUMBER_LOCALE`."""

    controls: StepControls
    runner: Runner

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setLocale(NUMBER_LOCALE)

    def bind_keys(self) -> None:
        """Ctrl+Enter presses the run button on show, Esc its Cancel (while it runs), while
        the focus is in this widget: a dock of its own. A widget that holds it (the Segment
        cytoplasm dock) takes the keys over (:func:`take_keys`). A step without Cancel
        (the metrics) leaves Esc to napari."""
        cancels = not self.controls.cancel_button.isHidden()
        take_keys(self, self._press_run, self._press_cancel if cancels else None)

    def shown_controls(self) -> StepControls:
        """The run and Cancel buttons on show (the U-Net step's: those of its open tab)."""
        return self.controls

    def _press_run(self) -> None:
        button = self.shown_controls().run_button
        if button.isEnabled():  # running, it is greyed out: the key does nothing either
            button.click()

    def _press_cancel(self) -> None:
        button = self.shown_controls().cancel_button
        if button.isEnabled() and not button.isHidden():  # hidden: the step has none
            button.click()

    def say_when_made_closed(self, viewer, made: Signal) -> None:
        """Once the layer that ``made`` (a signal of this step) gave last is closed in
        ``viewer``, and no run is on, the status says so instead of naming cells that are
        gone, and the progress bar no longer shows their run done; the next layer opened
        (the next file of a long day) clears that."""
        self._made = None  # the layer's unique id (a plugin may see it through a proxy)
        self._closed_said = None  # the status that said so, while it stands
        made.connect(self._remember_made)
        # Methods, not lambdas: the viewer's events hold methods weakly.
        viewer.layers.events.removed.connect(self._made_closed)
        viewer.layers.events.inserted.connect(self._next_layer)

    def _remember_made(self, layer) -> None:
        self._made = layer.unique_id

    def _made_closed(self, event) -> None:
        # A run replacing its earlier result is busy: its own status follows.
        closed = event.value
        if closed.unique_id == self._made and isalive(self) and not self.runner.busy:
            self._made = None
            self._closed_said = f"'{closed.name}' was closed: segment again to make its cells."
            self.status.setText(self._closed_said)
            self.progress.setValue(0)

    def _next_layer(self, _event=None) -> None:
        if isalive(self) and self._closed_said and self.status.text() == self._closed_said:
            self.status.setText("")
        self._closed_said = None

    @property
    def status(self) -> QLabel:
        """The step's status line."""
        return self.controls.status

    @property
    def progress(self) -> QProgressBar:
        """The step's progress bar."""
        return self.controls.progress

    @property
    def worker(self):
        """The running worker (``None`` when idle)."""
        return self.runner.worker


#: What a step's status says once its run is cancelled, unless the step says more.
_CANCELLED = "Cancelled."


class Runner(QObject):
    """Run a core generator in a napari thread worker; only the newest run counts.

    :meth:`run_now` starts at once, :meth:`request` after a quiet period (for
    live previews: every request restarts the timer). Starting a run, or
    :meth:`cancel`, asks the running worker to quit (generators stop at their
    next ``yield``) and drops its result at once, so Cancel never waits for the
    computation. Errors are reported once: in the status line and as one napari
    notification; a live run (a request) that fails as the one before it only
    updates the status line, so a slider dragged across a bad value does not
    repeat the same notification.

    Parameters
    ----------
    on_result
        Called in the GUI thread with the return value of the newest run.
    controls
        The step's controls: progress, status, run/Cancel state.
    on_progress
        Called with every yielded value instead of the default progress display.
    describe_error
        Turns an exception into the sentence the user reads (what to do).
    on_failure
        Called in the GUI thread after a failure is reported (e.g. to clear stale results).
    on_finished
        Called in the GUI thread once a run has ended, with its result delivered, its
        failure reported or its input closed (not after :meth:`cancel`).
    delay_ms
        Quiet period of :meth:`request`.
    parent
        Qt parent that owns the runner.
    """

    def __init__(
        self,
        on_result: Callable[[object], None],
        controls: StepControls | None = None,
        *,
        on_progress: Callable[[object], None] | None = None,
        describe_error: Callable[[Exception], str] = str,
        on_failure: Callable[[], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        delay_ms: int = 250,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._on_result = on_result
        self._controls = controls
        self._on_progress = on_progress or (controls.show_progress if controls else None)
        self._describe = describe_error
        self._on_failure = on_failure
        self._on_finished = on_finished
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._start)
        self._pending: tuple[Callable, tuple, dict, bool, bool] | None = None
        self._worker = None
        self._generation = 0
        self._last_error: str | None = None
        self._input = None  # the layer the waiting or running work reads
        self._step = "segment"  # what that work does to it
        self._followed = None  # the layer whose pixels the run follows (see watch)
        self._layers = None  # the layer list watched for its removal
        # Name, file and kind of the input whose removal stopped the last run (not the
        # layer: its pixels are let go).
        self._removed_input: tuple | None = None
        self.closed = False  # the dock that holds the step is closed: see close
        self._live = False  # the run under way follows an edit (see live)

    def close(self, closed: bool = True) -> None:
        """Run nothing more while ``closed`` (its dock closed): a waiting request is
        dropped, a running one finishes."""
        self.closed = closed
        if closed:
            self._timer.stop()
            self._pending = None

    @property
    def busy(self) -> bool:
        """Whether a request waits or runs."""
        return self._timer.isActive() or self._worker is not None

    @property
    def worker(self):
        """The running worker (``None`` when idle)."""
        return self._worker

    @property
    def live(self) -> bool:
        """Whether the run under way follows an edit (:meth:`request`), not a click."""
        return self._live

    @property
    def controls(self) -> StepControls | None:
        """The step's controls."""
        return self._controls

    def watch(self, viewer, layer, step: str = "segment") -> None:
        """Stop the next run, and say why, if ``layer`` (what it reads) is closed before
        it ends, or its pixels change (replaced, painted): its result could go nowhere,
        or would be of pixels no longer shown, and a run can take minutes. ``step`` is
        what the run does (see :func:`closed_during_run`)."""
        self._input, self._step = layer, step
        self._follow(layer)
        if self._layers is not viewer.layers:
            if self._layers is not None:
                self._layers.events.removed.disconnect(self._removed)
                self._layers.events.inserted.disconnect(self._inserted)
            self._layers = viewer.layers
            self._layers.events.removed.connect(self._removed)
            self._layers.events.inserted.connect(self._inserted)

    def _follow(self, layer) -> None:
        """Follow the pixels of ``layer`` (``None``: of none) for :meth:`_changed`."""
        for followed, connect in ((self._followed, False), (layer, True)):
            if followed is None:
                continue
            emitters = [followed.events.data]
            if isinstance(followed, Labels):
                emitters += [followed.events.paint, followed.events.labels_update]
            for emitter in emitters:
                (emitter.connect if connect else emitter.disconnect)(self._changed)
        self._followed = layer

    def _changed(self, event=None) -> None:
        """The input's pixels changed before its result came: the cells of the pixels the
        run read, laid over those shown, were said to be a result of them (a flipped image
        kept its old cells; a split missed what was painted meanwhile). Only a run started
        by a click is stopped: a live preview, running or waiting to start, is left to its
        step (one waiting reads the new pixels)."""
        layer = self._input
        if not isalive(self) or layer is None or self._worker is None or self._live:
            return
        self.cancel(said=changed_during_run(layer, self._step))
        if self._on_finished is not None:  # the run has ended, with nothing to deliver
            self._on_finished()

    def _removed(self, event) -> None:
        layer = self._input
        if not isalive(self) or layer is None or not self.busy:
            return
        if getattr(event.value, "unique_id", event.value) == getattr(layer, "unique_id", layer):
            self.cancel(said=closed_during_run(layer, self._step))
            self._removed_input = _kind_of(layer)
            if self._on_finished is not None:  # the run has ended, with nothing to deliver
                self._on_finished()

    def _inserted(self, event) -> None:
        """Say so where the input just removed comes back as its channel of another kind:
        a role changed in the Channel roles replaces the layer (an image made a mask
        becomes a Labels layer), which is no closed layer to open again."""
        removed, self._removed_input = self._removed_input, None
        if removed is None or not isalive(self) or self._controls is None:
            return
        name, source, labels = _kind_of(event.value)
        if (name, source, not labels) == removed:
            self._controls.status.setText(role_changed_during_run(event.value, self._step))

    def request(self, func: Callable, *args, notify: bool = True, **kwargs) -> None:
        """Schedule ``func(*args, **kwargs)``; a later request replaces this one. Without
        ``notify`` a failure is said in the status line only (a run nobody asked for).
        Nothing runs once the runner is :attr:`closed`."""
        if self.closed:
            return
        self._pending = (func, args, kwargs, True, notify)
        self._timer.start()

    def run_now(self, func: Callable, *args, notify: bool = True, **kwargs) -> None:
        """Start ``func`` at once, without the quiet period; ``notify`` as :meth:`request`."""
        if self.closed:
            return
        self._pending = (func, args, kwargs, False, notify)
        self._timer.stop()
        self._start()

    def cancel(self, said: str | None = None):
        """Drop the waiting request and stop the running one; its result is discarded.

        The status line then says ``said``, or "Cancelled." if a run was stopped. It says
        so before the step shows as stopped: those told of that (``running_changed``) may
        add to it.

        Returns the worker told to stop (None if none ran): it stops at its next report,
        which it still sends, for a step whose work leaves files behind to learn of them.
        """
        self._timer.stop()
        self._pending = None
        self._input = None
        self._follow(None)
        self._generation += 1
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.quit()
            said = said or _CANCELLED
            if self._controls is not None:
                self._controls.progress.setRange(0, 1)  # no longer busy
                self._controls.progress.setValue(0)
        if said and self._controls is not None:
            self._controls.status.setText(said)
        self._set_running(False)
        return worker

    def fail(self, err: Exception, live: bool = False, notify: bool = True) -> None:
        """Report a failure: status line and one notification; a missing input
        (:class:`NothingToRun`) is said in the status line alone, as it is.

        Parameters
        ----------
        err
            What went wrong.
        live
            Whether it follows an edit rather than a click: then the same failure
            as the last one is not notified again.
        notify
            Whether to notify at all (else the status line alone says it).
        """
        if isinstance(err, NothingToRun):
            if self._controls is not None:
                self._controls.status.setText(str(err))
            return
        message = self._describe(err)
        if self._controls is not None:
            self._controls.status.setText(message)
        if notify and not (live and message == self._last_error):
            show_error(message)
        self._last_error = message
        if self._on_failure is not None:
            self._on_failure()

    def refuse(self, err: Exception, live: bool = True, notify: bool = True) -> None:
        """Report settings refused in the GUI thread (see :meth:`fail`), after dropping the
        request waiting or running: it was made with the settings before, and its result
        would land over the message, for settings no longer shown."""
        self.cancel()
        self.fail(err, live, notify)

    def _set_running(self, running: bool) -> None:
        if self._controls is not None:
            self._controls.set_running(running)

    def _start(self) -> None:
        if self._pending is None:
            return
        func, args, kwargs, live, notify = self._pending
        self._pending, self._live = None, live
        if self._worker is not None:
            self._worker.quit()
        self._generation += 1
        generation = self._generation
        if NO_THREADS:
            try:
                result = drain(func(*args, **kwargs))
            except Exception as err:  # noqa: BLE001 - reported to the user
                self.fail(err, live, notify)
            else:
                self._deliver(generation, result)
            self._finished(generation)
            return
        # _ignore_errors: errors reach `fail` only. Without it napari re-raises them in
        # the GUI thread too: a second notification, and an aborted process in scripts
        # that never call napari.run().
        work = _guarded(func, args, kwargs)
        worker = create_worker(_relayed, work, _start_thread=False, _ignore_errors=True)
        # A stopped run lets go of what it holds (a network and its optimiser on the GPU,
        # crop workers, temporary files): napari keeps every worker it made, and a worker
        # stopped at a report keeps its generator, paused there, until napari closes.
        worker.finished.connect(lambda: _close(work))
        if self._on_progress is not None and hasattr(worker, "yielded"):
            worker.yielded.connect(lambda event: self._progress(generation, event))
        worker.returned.connect(lambda result: self._deliver(generation, result))
        worker.errored.connect(lambda err: self._fail(generation, err, live, notify))
        worker.finished.connect(lambda: self._finished(generation))
        self._worker = worker
        self._set_running(True)
        if self._controls is not None:
            self._controls.progress.setRange(0, 0)  # busy until the first report
        worker.start()

    def _current(self, generation: int) -> bool:
        # A worker may finish after its widget is gone (a closed viewer): then its
        # results go nowhere. (Asked of Qt, not learnt from a ``destroyed`` slot: a
        # Python slot run while the garbage collector deletes Qt objects can crash.)
        return isalive(self) and generation == self._generation

    def _progress(self, generation: int, event) -> None:
        if self._current(generation):
            self._on_progress(event)

    def _deliver(self, generation: int, result) -> None:
        if self._current(generation):
            self._follow(None)  # a step may write its result into its input
            self._last_error = None
            if self._controls is not None:
                bar = self._controls.progress
                bar.setRange(0, max(bar.maximum(), 1))
                bar.setValue(bar.maximum())
            self._on_result(result)

    def _fail(self, generation: int, err: Exception, live: bool, notify: bool) -> None:
        if isinstance(err, _Failed):
            err = err.__cause__
        if self._current(generation):
            if self._controls is not None:
                self._controls.progress.setRange(0, 1)
                self._controls.progress.setValue(0)
            self.fail(err, live, notify)

    def _finished(self, generation: int) -> None:
        if self._current(generation):
            self._worker = None
            self._input = None  # not kept alive by a run that is over
            self._follow(None)
            self._set_running(False)
            if self._on_finished is not None:
                self._on_finished()


def _kind_of(layer) -> tuple:
    """A layer's name, file and whether it is a Labels layer."""
    return layer.name, source_of(layer), isinstance(layer, Labels)


class _Failed(Exception):
    """Carries an error out of a worker.

    superqt takes a ``RuntimeError`` raised by a generator (torch raises many) for
    a deleted worker: it drops the error and never says the worker finished.
    """


def _close(work) -> None:
    """Close a run's generator once its worker stopped. Its clean-up failing has nothing
    left to tell: the run ended, and what it did was said (closing runs in napari's thread,
    where an error would end a script that never started napari's event loop)."""
    with contextlib.suppress(Exception):
        work.close()


def _relayed(work):
    """A generator function for napari's worker, running the generator ``work``: the
    caller keeps ``work`` to close it once the worker stops."""
    return (yield from work)


def _guarded(func: Callable, args: tuple, kwargs: dict):
    """Run ``func`` (a progress generator or a plain function) as a generator whose
    every error arrives wrapped in :class:`_Failed`."""
    try:
        work = func(*args, **kwargs)
        if hasattr(work, "__next__"):
            return (yield from work)
        return work
    except Exception as err:
        raise _Failed() from err


def typed_path(text: str) -> str:
    """A path as typed or pasted into a field, as a shell would take it: without the spaces
    around it or the quotes a file manager's "copy as path" adds, a ``file://`` (or
    ``file:/``) address as its path, "~" expanded; "" for an empty field. A path that is
    there as it stands keeps its spaces: "Exp 7 " was taken for the folder "Exp 7", and an
    export beside the data went into another folder."""
    if text.strip() and os.path.exists(os.path.expanduser(text)):
        return os.path.expanduser(text)
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
        if text.strip() and os.path.exists(os.path.expanduser(text)):  # quoted: 'Exp 7 '
            return os.path.expanduser(text)
        text = text.strip()
    if text.lower().startswith("file:/"):
        # The path after the host (none, or "localhost"; "file:/data" names none), its
        # %-escapes decoded; a "#" or "?" typed in it is part of the path, not of an address.
        # Another host's is a network share: //host/share.
        path = unquote(text[len("file:") :])
        if path.startswith("///"):
            path = path[2:]
        elif path.startswith("//"):
            host, _, rest = path[2:].partition("/")
            path = "/" + rest if host.lower() == "localhost" else f"//{host}/{rest}"
        text = path[1:] if re.match(r"/[A-Za-z]:", path) else path  # /C:/data: C:/data
    return os.path.expanduser(text) if text else ""


def ask_yes_no(parent: QWidget, title: str, question: str, details: str) -> bool:
    """Ask before something is replaced or forgotten (No is the default); True for Yes."""
    box = QMessageBox(
        QMessageBox.Icon.Question,
        title,
        question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        parent,
    )
    box.setInformativeText(details)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def save_dialog(parent: QWidget, title: str, suggested: str, kind: str, suffix: str) -> QFileDialog:
    """A dialog that asks where to save a file of ``kind`` (``"Presets"``) ending in
    ``.suffix`` (``"json"``). A name typed without that ending gets it before the dialog
    asks whether to replace a file (Qt's own save dialog adds none on Linux: a preset
    saved as "phase" had no ending, and was listed under no filter)."""
    dialog = QFileDialog(parent, title, suggested, f"{kind} (*.{suffix})")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix(suffix)
    return dialog


def ask_save_path(parent: QWidget, title: str, suggested: str, kind: str, suffix: str) -> str:
    """The file chosen in a :func:`save_dialog`; empty when it is cancelled."""
    dialog = save_dialog(parent, title, suggested, kind, suffix)
    return dialog.selectedFiles()[0] if dialog.exec() else ""


#: The keys that run (the main keyboard's and the keypad's Enter) and cancel a step.
RUN_KEYS, CANCEL_KEY = ("Ctrl+Return", "Ctrl+Enter"), "Escape"
#: The property that marks a step's shortcut as taken over by the widget that holds it.
_TAKEN_OVER = "cytomask_taken_over"


def take_keys(widget: QWidget, run: Callable[[], None], cancel: Callable[[], None] | None) -> None:
    """Bind :data:`RUN_KEYS` to ``run`` and :data:`CANCEL_KEY` to ``cancel`` (unless None)
    while the focus is in ``widget``, and turn off those of the steps inside it (two
    shortcuts for one key would both be ignored). Only there: Esc in napari's canvas
    (ending a shape, say) must not cancel a long run. Esc is taken only while one of the
    widget's steps runs: idle, it is left to napari and to the field with the focus."""
    for shortcut in widget.findChildren(QShortcut):
        shortcut.setEnabled(False)
        shortcut.setProperty(_TAKEN_OVER, True)

    def bind(key: str, slot: Callable[[], None]) -> QShortcut:
        shortcut = QShortcut(QKeySequence(key), widget, activated=slot)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        return shortcut

    for key in RUN_KEYS:
        bind(key, run)
    if cancel is None:
        return
    escape = bind(CANCEL_KEY, cancel)
    steps = widget.findChildren(StepControls)

    def follow(_running: bool = False) -> None:
        if isalive(escape) and not escape.property(_TAKEN_OVER):
            escape.setEnabled(any(isalive(c) and c.cancel_button.isEnabled() for c in steps))

    for controls in steps:
        controls.running_changed.connect(follow)
    follow()
