"""Long work in the core is a generator that yields progress and returns its result.

The GUI runs such generators in thread workers (progress bars, cancel between
yields); scripts, the command line and tests drain them with :func:`drain`. When
such work fails, :func:`one_line` gives the error as reports show it.
"""

from __future__ import annotations

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
    """

    stage: str
    done: int
    total: int


def drain(work):
    """Run a progress generator to the end and return its return value.

    Anything that is not a generator is returned as it is, so callers can drain
    the result of a function that may or may not report progress.
    """
    if not hasattr(work, "__next__"):
        return work
    try:
        while True:
            next(work)
    except StopIteration as stop:
        return stop.value


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


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says that memory ran out: the computer's or a GPU's."""
    return isinstance(err, MemoryError) or "out of memory" in str(err).lower()


def one_line(err: BaseException) -> str:
    """An error's message on one line (its type when it has none)."""
    text = " ".join(str(err).split())
    if isinstance(err, MemoryError):
        return f"out of memory ({text})" if text else "out of memory"
    return text or type(err).__name__
