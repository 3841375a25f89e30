#!/usr/bin/env bash
# Bundle what a GPU machine needs that cannot reach a package index but already has
# Python 3.12 with PyTorch, torchvision, timm, safetensors, huggingface-hub, scikit-image,
# tifffile, NumPy, SciPy, PyYAML, click, fsspec, toolz, cloudpickle, portalocker and tqdm.
#   .whl/         wheels of the other packages the project imports, at the versions in .venv
#                 (sam2 without its optional CUDA extension, as scripts/setup.sh installs it)
# and, for benchmarks/gpu_suite.py (`scripts/gpu_bundle.sh`, or `... suite`):
#   .gpu/data/    six Usiigaci images (set1: SAM2; set11: the dock; all six: training)
#                 (13 MB; the checkout and the wheels add 47 MB)
#   run there, from the repository root:
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#     PYTHONPATH=/tmp/site CYTOMASK_TEST_DATA=.gpu/data python3 benchmarks/gpu_suite.py
# or, to train the starter model on (`scripts/gpu_bundle.sh training`):
#   .gpu/train/   the starter model's 36 training and validation images with their masks,
#                 the phase contrast in 8 bits (its 1st and 99.8th percentiles at 40 and
#                 200, well inside the image noise), as PNG: the 16-bit originals do not fit
#                 the 64 MiB a device call carries (18 MB; the checkout and wheels add 32 MB)
#   run there, from the repository root (about 6 minutes for 4 of training), then bring the
#   half-precision model back in parts (a resnet34 of depth 4 from random weights: the
#   recipe that did best per GPU minute, see the starter model's card; fine-tuning the
#   starter itself this way overfitted):
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#     PYTHONPATH=/tmp/site:src CYTOMASK_TEST_DATA=.gpu/train python3 \
#       benchmarks/bench_unet_quality.py --image-file raw.png --device cuda \
#       --encoder resnet34 --encoder-depth 4 --learning-rate 0.002 \
#       --split-from starter --crop-size 512 --batch-size 16 \
#       --epochs 100 --steps-per-epoch 200 --time-limit 4 --output /tmp/gpu.safetensors
#     PYTHONPATH=/tmp/site:src python3 scripts/make_resources.py starter /tmp/gpu.safetensors
#     split -b 15M src/napari_cytomask/resources/cytomask-starter-phc.safetensors $OUT/part-
#   and here join them (cat part-* > gpu.safetensors) and score the model on the real test
#   images, which its split names though they stayed here:
#     bench_unet_quality.py --score-only --output gpu.safetensors
#   A later lease goes on from it: carry it and give --from gpu.safetensors in place of
#   --encoder and --encoder-depth (the optimiser starts afresh).
# Run scripts/setup.sh first. Both folders are ignored by git.
set -euo pipefail
mode=${1:-suite}
[[ $mode == suite || $mode == training ]] || { echo "usage: $0 [suite|training]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(realpath "${CYTOMASK_TEST_DATA:-$root/../shared/data}")
cd "$root"
py=.venv/bin/python
uv=$(command -v uv || echo "$root/.venv/bin/uv")  # as scripts/setup.sh installs it

# Pure-Python packages (some publish only source archives: built here, tagged py3-none-any).
pure=(sam2 hydra-core omegaconf antlr4-python3-runtime iopath segmentation-models-pytorch
      dask partd locket importlib-metadata lazy-importer zarr donfig)
# Compiled packages: wheels for CPython 3.12 on x86-64 Linux.
compiled=(numcodecs google-crc32c)

version() {
  "$uv" pip show --python "$py" "$1" 2>/dev/null | sed -n 's/^Version: //p' || true
}
pinned() {
  local name v
  for name in "$@"; do
    v=$(version "$name")
    [ -n "$v" ] || { echo "$name is not installed in .venv: run scripts/setup.sh" >&2; exit 1; }
    echo "$name==$v"
  done
}

"$py" -m pip --version >/dev/null 2>&1 || "$uv" pip install --quiet --python "$py" pip
rm -rf .whl && mkdir .whl
pins=$(pinned "${pure[@]}") || exit 1
mapfile -t pure_pins <<<"$pins"
pins=$(pinned "${compiled[@]}") || exit 1
mapfile -t compiled_pins <<<"$pins"
SAM2_BUILD_CUDA=0 "$py" -m pip wheel --quiet --no-deps --no-build-isolation -w .whl \
  "${pure_pins[@]}"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${compiled_pins[@]}"

case "$mode" in
  suite)
    rm -rf .gpu/data && mkdir -p .gpu/data/usiigaci-phc
    cp -r "$data"/usiigaci-phc/set{1,2,3,4,5,11} .gpu/data/usiigaci-phc/
    cp "$data"/README.md .gpu/data/
    du -sh .whl .gpu/data
    ;;
  training)
    rm -rf .gpu/train && mkdir -p .gpu/train
    "$py" - "$data/usiigaci-phc" .gpu/train/usiigaci-phc <<'PY'
import shutil
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_cytomask.models.catalog import resolve_unet
from napari_cytomask.models.checkpoint import read_description

source, target = Path(sys.argv[1]), Path(sys.argv[2])
split = read_description(resolve_unet("starter"))["training"]["split"]
for name in split["train"] + split["validation"]:
    folder = Path(name).parent.name
    image = tifffile.imread(source / folder / "raw.tif").astype(np.float64)
    low, high = np.percentile(image, (1, 99.8))
    eight = np.clip(np.rint((image - low) / (high - low) * 160 + 40), 0, 255).astype(np.uint8)
    (target / folder).mkdir(parents=True)
    Image.fromarray(eight).save(target / folder / "raw.png", optimize=True)
    shutil.copy(source / folder / "instances_ids.png", target / folder)
PY
    du -sh .whl .gpu/train
    ;;
esac
