"""Fine-tuning the starter model on its own kind of images: does an epoch beat it?

The sample's four phase-contrast fields (the starter model's test images, which it never
saw) are split as the training dock splits them (seed 0: three to train on, one to
validate), and the starter model is fine-tuned with the dock's CPU
defaults (5 epochs of 20 steps, 2 crops of 256² per step) at several learning rates.
For each, the starting model's validation mean-average F1 (epoch 0, at the thresholds
tuned for it) is printed beside every epoch's, with the epoch the run kept.

Usage (about a minute per learning rate on 2 cores)::

    python benchmarks/bench_finetune_start.py --learning-rates 0.001 0.0003 0.0001
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import cpu_model
from napari_cytomask._sample_data import make_sample_phase_contrast
from napari_cytomask.models.catalog import STARTER, STARTER_PIXEL_SIZE_UM
from napari_cytomask.models.training import (
    DOCK_SPLIT,
    TrainingSettings,
    iter_train,
    samples_from_arrays,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-4, 1e-4])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, threads {args.threads}")
    (phase, _, _), (mask, _, _) = make_sample_phase_contrast()
    pixel = (STARTER_PIXEL_SIZE_UM, STARTER_PIXEL_SIZE_UM)
    samples = samples_from_arrays(phase, mask, "sample", pixel_size_um=pixel)
    with tempfile.TemporaryDirectory() as tmp:
        for rate in args.learning_rates:
            settings = TrainingSettings(
                epochs=5, steps_per_epoch=20, batch_size=2, crop_size=256,
                learning_rate=rate, device="cpu", workers=0, fractions=DOCK_SPLIT,
            )  # fmt: skip
            started = time.monotonic()
            output = Path(tmp) / f"{rate:g}.safetensors"
            run = iter_train(samples, output, None, settings, init_from=STARTER)
            start = None
            while True:
                try:
                    progress = next(run)
                except StopIteration as stop:
                    training = stop.value.description["training"]
                    break
                if progress.phase == "epoch" and progress.step == 0:  # epoch 0
                    start = progress.validation["mean_average_f1"]
            epochs = [round(e["validation"]["mean_average_f1"], 3) for e in training["history"]]
            print(
                f"learning rate {rate:g}: {time.monotonic() - started:.0f} s; validation "
                f"({training['split']['validation'][0]}) mean-average F1: the starting model "
                f"{start:.3f}, epochs 1-5 {epochs}; kept epoch {training['best_epoch']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
