"""What telling a user's edits from a step's costs the GUI thread at each live preview.

Before a step writes into its earlier result layer, it checks that the user has not
changed that layer since (``result_slot``), and after writing it records what it wrote
(``record_written``). Both run in the GUI thread. This measures them on a stack of
``--frames`` frames of ``--size`` squared uint16 labels, for a preview that writes one
frame:

- baseline: the whole stack fingerprinted twice (a check, then a record), as every
  preview did before fingerprints were kept per frame;
- untouched: the layer was not changed since the last write (napari emitted no pixel
  event), so only the written frame is fingerprinted;
- touched: napari said its pixels changed (the user painted, or browsed frames), so every
  frame is compared once, then the written frame is fingerprinted.

Usage::

    .venv/bin/python benchmarks/bench_result_fingerprint.py
    .venv/bin/python benchmarks/bench_result_fingerprint.py --frames 20 --size 2048
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np

from _common import best_of, cpu_model
from napari_cytomask.io.layers import METADATA_KEY, _frame_digests, edited_by_hand, record_written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    data = rng.integers(0, 300, (args.frames, args.size, args.size), dtype=np.uint16)
    layer = SimpleNamespace(data=data, metadata={METADATA_KEY: {"role": "result"}})
    record_written(layer)
    frame = (args.frames // 2,)

    def baseline() -> None:
        _frame_digests(layer.data)
        _frame_digests(layer.data)

    def untouched() -> None:
        data[frame][:4, :4] += 1  # the preview's write
        record_written(layer, frame)

    def touched() -> None:
        assert not edited_by_hand(layer)
        data[frame][:4, :4] += 1
        record_written(layer, frame)

    print(f"machine: {cpu_model()}")
    mib = data.nbytes / 2**20
    print(f"stack: {args.frames} x {args.size} x {args.size} uint16 ({mib:.0f} MiB)")
    times = {name: best_of(run, args.repeats)[0] for name, run in
             (("baseline", baseline), ("untouched", untouched), ("touched", touched))}  # fmt: skip
    for name, seconds in times.items():
        ratio = times["baseline"] / seconds
        print(
            f"{name:10s} {seconds * 1000:9.1f} ms per preview  ({ratio:6.1f}x the baseline's speed)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
