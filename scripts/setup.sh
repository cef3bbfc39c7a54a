#!/usr/bin/env bash
# Creates the virtual environment and installs handsynth into it, torch first.
# torch==2.13.0 (the exact build the project is tested with) is installed before the package so that
# pip never resolves a CUDA build; pyproject.toml only declares the lowest torch it supports.
#
#   bash scripts/setup.sh [VENV]            # what `make demo` needs: Mesa EGL + the package
#   bash scripts/setup.sh --browser-only    # Chromium + chromedriver, only for `make test` (study page test)
set -euo pipefail

install_debs() {  # install missing Debian packages as root, else print the command to run
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: $*"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "setup: missing system packages; run: sudo apt-get install -y $*" >&2
  fi
}

if [ "${1:-}" = "--browser-only" ]; then
  need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  install_debs "${need[@]+"${need[@]}"}"
  exit 0
fi

VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"

# System libraries: Mesa EGL (headless rendering).
need=()
ldconfig -p | grep -q 'libEGL.so.1' || need+=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)
install_debs "${need[@]+"${need[@]}"}"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[dev]"
echo "setup: done ($($VENV/bin/python -c 'import torch, diffusers, transformers; print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__)'))"
