#!/usr/bin/env bash
# Creates the virtual environment and installs handsynth into it, torch first.
# torch==2.13.0 must be installed before the package so that pip never resolves a CUDA build.
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"

# System libraries: Mesa EGL (headless rendering) and Chromium (browser test of the study kit).
need=()
ldconfig -p | grep -q 'libEGL.so.1' || need+=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages; run: sudo apt-get install -y ${need[*]}" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q "torch==2.13.0"
# open-clip-torch is used only for its BPE vocabulary file; its dependencies (torchvision, timm)
# would replace this machine's torch, so it is installed without them.
$PIP install -q --no-deps "open-clip-torch>=2.24"
$PIP install -q -e ".[dev]"
echo "setup: done ($($VENV/bin/python -c 'import torch, diffusers, transformers; print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__)'))"
