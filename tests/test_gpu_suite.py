"""benchmarks/gpu_suite.py picks its figures without a GPU (the figures need one)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("gpu_suite")


def test_only_runs_the_figures_named_in_the_suites_order(suite):
    def keys(only):
        args = argparse.Namespace(device="cuda", smoke=False, only=only)
        return [figure[0] for figure in suite.figure_commands(args)]

    assert keys(None) == list(suite.FIGURES) == ["sam2", "sam2-fp32", "unet", "training", "stall"]
    assert keys(["unet", "sam2"]) == ["sam2", "unet"]
    every = suite.figure_commands(argparse.Namespace(device="cuda", smoke=False, only=None))
    assert all(Path(command[1]).is_file() for _, _, command, _, _ in every)


def test_an_unknown_figure_is_refused_with_the_names_there_are(suite, capsys):
    with pytest.raises(SystemExit) as stop:
        suite.main(["--only", "sam3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--only: invalid choice" in err and "sam3" in err and "sam2-fp32" in err
