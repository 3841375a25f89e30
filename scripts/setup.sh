#!/usr/bin/env bash
# Install napari-cytomask and everything a fresh Debian/Ubuntu machine lacks into ./.venv:
# the system libraries napari needs for OpenGL/Qt (and Xvfb for headless tests),
# uv, and the package with its Qt and test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0
  python3-venv
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

new_enough='import sys; sys.exit(sys.version_info < (3, 11))'  # zarr 3 needs 3.11
uv=$(command -v uv || echo "$PWD/.venv/bin/uv")
if [ ! -x "$uv" ]; then
  # A system Python (Debian 12, Ubuntu 23.04 and later) takes no package outside a
  # virtual environment: uv goes into the project's own, or where the system's Python
  # is older than 3.11 (Ubuntu 22.04, Debian 11), first into a temporary one, and uv
  # then makes the project's with a Python 3.11 or newer.
  if [ -x .venv/bin/python ] || python3 -c "$new_enough"; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet uv
  else
    boot=$(mktemp -d)
    python3 -m venv "$boot"
    "$boot/bin/python" -m pip install --quiet uv
    uv="$boot/bin/uv"
  fi
fi
# Seeded with pip, as a venv made by Python is: `python -m pip install tox` works in both.
[ -x .venv/bin/python ] || $uv venv --quiet --seed --python ">=3.11" .venv
.venv/bin/python -c "$new_enough" || {
  echo "$(pwd)/.venv has Python $(.venv/bin/python -V 2>&1 | cut -d' ' -f2); napari-cytomask needs 3.11 or newer: remove .venv and run this again." >&2
  exit 1
}
# uv stays in the environment for scripts/gpu_bundle.sh where it is on no PATH.
command -v uv >/dev/null 2>&1 || [ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet uv
uv=$(command -v uv || echo "$PWD/.venv/bin/uv")
[ -z "${boot:-}" ] || rm -rf "$boot"
# torch first: sam2 compiles against the installed torch (its optional CUDA
# extension is skipped; SAM2 runs without it). Bytecode is compiled at install:
# where PYTHONDONTWRITEBYTECODE is set, every new process (dask workers, CLI
# tests) would otherwise recompile torch's and timm's sources, seconds each time.
$uv pip install --quiet --compile-bytecode --python .venv/bin/python torch torchvision setuptools wheel
SAM2_BUILD_CUDA=0 $uv pip install --quiet --compile-bytecode --python .venv/bin/python \
  --no-build-isolation-package sam2 -e ".[qt,test]"
echo "napari-cytomask is installed in $(pwd)/.venv"
