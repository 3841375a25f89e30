"""Helpers shared by the benchmark scripts: the machine's name, timing and peak memory."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

#: The shared real data (``$CYTOMASK_TEST_DATA``, else ``../shared/data`` beside the repository).
DATA = Path(
    os.environ.get("CYTOMASK_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


#: Words of Python's own error messages: an error message (a notification, a command's)
#: that holds one was not written for a person.
PYTHON_TERMS = ("Traceback", " at 0x", "is not in list", "object has no attribute",
                "unhashable type", "index out of range", "cannot reshape", "could not convert",
                "invalid literal", "NoneType", "unexpected keyword", "positional argument",
                "not subscriptable", "referenced before assignment", "KeyError", "out of bounds",
                "[Errno", "division by zero", "must be real number", "Error(",
                "invalid int value", "invalid float value", "backend to open",
                "unpack_from", "not supported between instances", "is not iterable",
                "values to unpack")  # fmt: skip


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_of(func: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    """The shortest of ``repeats`` timed calls, in seconds, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def starter_on_cpu(doc: str):
    """The starter model's predictor on the CPU, with ``--threads`` (default 2) PyTorch
    threads parsed from the command line of a benchmark described by ``doc``; and the
    thread count."""
    import argparse

    import torch

    from napari_cytomask.models.catalog import STARTER, resolve_unet
    from napari_cytomask.models.inference import PredictorCache

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    threads = parser.parse_args().threads
    torch.set_num_threads(threads)
    return PredictorCache().get(resolve_unet(STARTER), "cpu"), threads


def train_in_process(name: str, command: list[str]) -> float | None:
    """Run ``cytomask COMMAND`` (a training) in this process, saying which run it is; its
    seconds, or None when it failed."""
    import shlex

    from napari_cytomask import cli

    print(f"{name}: cytomask {shlex.join(command)}")
    started = time.perf_counter()
    if cli.main(command) != 0:
        return None
    return time.perf_counter() - started
