"""Long work in the core is a generator that yields progress and returns its result.

The GUI runs such generators in thread workers (progress bars, cancel between
yields); scripts, the command line and tests drain them with :func:`drain`, and
:class:`Pace` says how long such work has left. When it fails, :func:`one_line`
gives the error as reports show it.
"""

from __future__ import annotations

import errno
import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Progress of a segmentation.

    Attributes
    ----------
    stage
        What runs: ``"predict"`` (tiles through the U-Net), ``"instances"``
        (watershed), ``"encoder"``/``"decoder"`` (SAM2), ``"split"``…
    done, total
        Steps done and the number of steps of this stage.
    detail
        What makes this stage take longer than it looks (an image enlarged for the
        network), said beside the stage; empty for most.
    """

    stage: str
    done: int
    total: int
    detail: str = ""


def drain(work, report=None):
    """Run a progress generator to the end and return its return value.

    Anything that is not a generator is returned as it is, so callers can drain
    the result of a function that may or may not report progress. ``report``,
    when given, is called with each report the generator yields.
    """
    if not hasattr(work, "__next__"):
        return work
    try:
        while True:
            event = next(work)
            if report is not None:
                report(event)
    except StopIteration as stop:
        return stop.value


#: What each stage of :class:`Progress` does, as progress reports say it.
STAGE_TEXT = {
    "predict": "Predicting tiles",
    "instances": "Separating cells",
    "encoder": "Encoding the image",
    "decoder": "Decoding masks",
    "split": "Splitting cells",
    "read": "Reading the layers",
    "measure": "Measuring the cells",
    "write": "Writing the files",
}


#: What the steps of a stage are, where its text does not say it: SAM2's stages count the
#: prompt points of every crop together, one scale from the first encoding to the last
#: decoder batch (see ``sam2_engine.Progress``).
STAGE_UNITS = {"encoder": "prompt points", "decoder": "prompt points"}


def counted(stage: str | None) -> str | None:
    """What the steps of ``stage`` are: stages of one unit are one count, over which
    :class:`Pace` goes on timing (SAM2's encoder and decoder take turns on each crop)."""
    return STAGE_UNITS.get(stage, stage)


def progress_text(
    stage: str | None, done: int, total: int, left: float | None = None, detail: str = ""
) -> str:
    """``"Predicting tiles: 12 of 40; about 2 min left"``, with a :class:`Progress`'s
    ``detail`` in brackets after the stage and what is counted where the stage's text does
    not say it (``"Decoding masks: 16 of 32 prompt points"``)."""
    what = STAGE_TEXT.get(stage, str(stage).capitalize() if stage else "Working")
    what = f"{what} ({detail})" if detail else what
    unit = STAGE_UNITS.get(stage)
    text = f"{what}: {done} of {total}" + (f" {unit}" if unit else "")
    return text if left is None else f"{text}; about {duration(left)} left"


def relay(work, report):
    """Yield ``report(done, total)`` for each ``(done, total)`` that ``work`` yields.

    A generator that passes on the progress of a sub-generator in the caller's
    own report type and returns the sub-generator's return value.
    """
    while True:
        try:
            done, total = next(work)
        except StopIteration as stop:
            return stop.value
        yield report(done, total)


#: What PyTorch's CPU allocator says (a RuntimeError) when the computer's memory ran out,
#: on Linux and macOS, and on Windows.
_HOST_ALLOCATOR = re.compile(
    r"(?:can't allocate memory|not enough memory): you tried to allocate (\d+) bytes"
)


#: What CUDA's libraries say when a GPU's memory ran out as they set up their work
#: (``CUBLAS_STATUS_ALLOC_FAILED``, ``CUDNN_STATUS_ALLOC_FAILED``, ``CUFFT_ALLOC_FAILED``):
#: torch raises them as RuntimeErrors without the words "out of memory".
_GPU_LIBRARY_ALLOCATOR = re.compile(r"\bCU[A-Z]+_(?:STATUS_)?ALLOC_FAILED\b")


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says that memory ran out: the computer's or a GPU's."""
    text = str(err)
    return (
        host_out_of_memory(err)
        or "out of memory" in text.lower()
        or _GPU_LIBRARY_ALLOCATOR.search(text) is not None
    )


def host_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says that the computer's memory ran out (not a GPU's): a
    MemoryError, or PyTorch's CPU allocator failing: moving to the CPU does not help."""
    return isinstance(err, MemoryError) or _HOST_ALLOCATOR.search(str(err)) is not None


def one_line(err: BaseException, elsewhere: str = "") -> str:
    """An error's message on one line (its type when it has none); a name or path too long
    for the file system in words, with what to do, instead of its errno (``elsewhere``
    names another place for the files, see :func:`~.io.atomic.too_long_text`)."""
    if isinstance(err, OSError) and err.errno == errno.ENAMETOOLONG and err.filename:
        from .io.atomic import too_long_text

        return too_long_text(err.filename, elsewhere)
    text = " ".join(str(err).split())
    if isinstance(err, MemoryError):
        return f"out of memory ({text})" if text else "out of memory"
    if found := _HOST_ALLOCATOR.search(text):  # "[enforce fail at alloc_cpu.cpp:127] …"
        from .io.files import bytes_text

        return f"out of memory (could not allocate {bytes_text(int(found[1]))})"
    return text or type(err).__name__


class Pace:
    """The time left of counted work, from its own pace since it was first reported.

    Parameters
    ----------
    after
        Seconds to time before saying anything: the first steps are often slower.
    """

    def __init__(self, after: float = 0.0):
        self.after = after
        self._start: tuple | None = None  # (what, time, done) when the timing began

    def left(self, done: int, total: int, what=None, now: float | None = None) -> float | None:
        """Seconds left with ``done`` of ``total`` steps done, or None until it can tell.

        A report of other work (``what`` differs) or a count that went back starts
        the timing again.
        """
        now = time.monotonic() if now is None else now
        if self._start is None or self._start[0] != what or done < self._start[2]:
            self._start = (what, now, done)
        _, started, first = self._start
        if first < done < total and now - started >= self.after:
            return (now - started) / (done - first) * (total - done)
        return None


def duration(seconds: float) -> str:
    """A time span as a person says it: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
