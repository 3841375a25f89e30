"""Debounced, cancellable background runs for widgets that update while the user edits."""

from __future__ import annotations

import os
from collections.abc import Callable

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, QTimer

from ..progress import drain

#: Set ``CYTOMASK_NO_THREADS=1`` to run work in the calling thread (handy in a debugger).
NO_THREADS = os.environ.get("CYTOMASK_NO_THREADS", "") not in ("", "0")


class LiveRunner(QObject):
    """Run the newest request in a thread worker after a quiet period.

    Every :meth:`request` restarts the debounce timer; when it fires, a running
    worker is asked to quit (generator functions stop at their next ``yield``)
    and the newest request starts. Results of superseded runs are dropped, so
    the widget only ever shows the result of the latest parameters.

    Parameters
    ----------
    on_result
        Called in the GUI thread with the return value of the newest run.
    delay_ms
        Quiet period before a request runs.
    on_error
        Called with the exception of a failed run; by default a napari
        notification tells the user.
    parent
        Qt parent that owns the runner.
    """

    def __init__(
        self,
        on_result: Callable[[object], None],
        delay_ms: int = 250,
        on_error: Callable[[Exception], None] | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._on_result = on_result
        self._on_error = on_error or (lambda err: show_error(str(err)))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._start)
        self._pending: tuple[Callable, tuple, dict] | None = None
        self._worker = None
        self._generation = 0

    @property
    def busy(self) -> bool:
        """Whether a request waits or runs."""
        return self._timer.isActive() or self._worker is not None

    def request(self, func: Callable, *args, **kwargs) -> None:
        """Schedule ``func(*args, **kwargs)``; a later request replaces this one."""
        self._pending = (func, args, kwargs)
        self._timer.start()

    def run_now(self, func: Callable, *args, **kwargs) -> None:
        """Start ``func`` at once, without the quiet period."""
        self._pending = (func, args, kwargs)
        self._timer.stop()
        self._start()

    def cancel(self) -> None:
        """Drop the waiting request and stop the running one."""
        self._timer.stop()
        self._pending = None
        self._generation += 1
        if self._worker is not None:
            self._worker.quit()
            self._worker = None

    def _start(self) -> None:
        if self._pending is None:
            return
        func, args, kwargs = self._pending
        self._pending = None
        if self._worker is not None:
            self._worker.quit()
        self._generation += 1
        generation = self._generation
        if NO_THREADS:
            try:
                result = drain(func(*args, **kwargs))
            except Exception as err:  # noqa: BLE001 - reported to the user
                self._on_error(err)
            else:
                self._on_result(result)
            return
        # Errors go to on_error only; without _ignore_errors superqt re-raises them as well.
        worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        worker.returned.connect(lambda result: self._deliver(generation, result))
        worker.errored.connect(lambda err: self._fail(generation, err))
        worker.finished.connect(lambda: self._finished(worker))
        self._worker = worker
        worker.start()

    def _deliver(self, generation: int, result) -> None:
        if generation == self._generation:
            self._on_result(result)

    def _fail(self, generation: int, err: Exception) -> None:
        if generation == self._generation:
            self._on_error(err)

    def _finished(self, worker) -> None:
        if self._worker is worker:
            self._worker = None
