#!/usr/bin/env bash
# Bundle what benchmarks/gpu_suite.py needs on a GPU machine that cannot reach a package
# index but already has Python 3.12 with PyTorch, torchvision, timm, safetensors,
# huggingface-hub, scikit-image, tifffile, NumPy, SciPy, PyYAML, click, fsspec, toolz,
# cloudpickle, portalocker and tqdm:
#   .whl/       wheels of the other packages the suite imports, at the versions in .venv
#               (sam2 without its optional CUDA extension, as scripts/setup.sh installs it)
#   .gpu/data/  six Usiigaci images (set1: SAM2; set11: the dock; all six: training);
#               (13 MB; the checkout and the wheels add 47 MB)
# On that machine, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site CYTOMASK_TEST_DATA=.gpu/data python3 benchmarks/gpu_suite.py
# Run scripts/setup.sh first. Both folders are ignored by git.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(realpath "${CYTOMASK_TEST_DATA:-$root/../shared/data}")
cd "$root"
py=.venv/bin/python

# Pure-Python packages (some publish only source archives: built here, tagged py3-none-any).
pure=(sam2 hydra-core omegaconf antlr4-python3-runtime iopath segmentation-models-pytorch
      dask partd locket importlib-metadata lazy-importer zarr donfig)
# Compiled packages: wheels for CPython 3.12 on x86-64 Linux.
compiled=(numcodecs google-crc32c)

version() {
  uv pip show --python "$py" "$1" 2>/dev/null | sed -n 's/^Version: //p' || true
}
pinned() {
  local name v
  for name in "$@"; do
    v=$(version "$name")
    [ -n "$v" ] || { echo "$name is not installed in .venv: run scripts/setup.sh" >&2; exit 1; }
    echo "$name==$v"
  done
}

"$py" -m pip --version >/dev/null 2>&1 || uv pip install --quiet --python "$py" pip
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

rm -rf .gpu/data && mkdir -p .gpu/data/usiigaci-phc
cp -r "$data"/usiigaci-phc/set{1,2,3,4,5,11} .gpu/data/usiigaci-phc/
cp "$data"/README.md .gpu/data/
du -sh .whl .gpu
