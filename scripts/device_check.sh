#!/usr/bin/env bash
# The project's GPU checks as one prepared call, for a session that is lent the H200 (issues 11-13):
#   1. the SD-1.5-size timings of benchmarks/ (random weights, CUDA; each script side by side inside),
#   2. the micro benchmark's `--profile gpu` (AttentionHand suite) with what time is left.
# A lent task has 15 minutes of device time in all, so everything runs in one 10-minute call and no
# step may eat another's time: every step has its own `timeout`, and a step that fails or overruns is
# logged and skipped, never fatal.
#
# Here (CPU machine, PyPI and Debian reachable), once per session, before asking for the machine:
#   bash scripts/device_check.sh --fetch     # wheels the device image lacks -> .whl/, EGL debs -> .gl/
# Then the device tool's `run` with carry [".whl", ".gl"], timeout_s 600 and the command
#   bash scripts/device_check.sh
# Results come back as $OUT/device_results.tar.gz (benchmarks/results/*_gpu*, micro_gpu.*, the
# micro run's timings) and $OUT/device_check.log: unpack the tarball in the repository root, read the
# tables, commit them. The device image has Python 3.12 with torch, transformers, accelerate,
# safetensors, scipy, scikit-image, torchmetrics (device README, KINDS.md); the wheels add the rest.
#
# CPU rehearsal of the plumbing (tiny sizes, CPU, this machine's venv; minutes):
#   DEVICE_CHECK_DRY=1 bash scripts/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

# What the device image lacks, at this machine's versions (the venv scripts/setup.sh made).
WHEELS=(diffusers trimesh moderngl glcontext ftfy wcwidth fast-simplification importlib-metadata smplx)

if [ "${1:-}" = "--fetch" ]; then
  set -e
  VENV_PY="${VENV_PY:-.venv/bin/python}"
  pins=$("$VENV_PY" - "${WHEELS[@]}" <<'EOF'
import sys
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))
EOF
)
  mkdir -p .whl
  # shellcheck disable=SC2086
  "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
  echo "device_check: fetched $(ls .whl | wc -l) wheels ($(du -sh .whl | cut -f1)) and $(ls .gl | wc -l) debs"
  echo "device_check: pins $pins"
  exit 0
fi

DRY="${DEVICE_CHECK_DRY:-0}"
OUT="${OUT:-outputs/device_check}"
BUDGET_S="${BUDGET_S:-570}"      # the call's limit is 600 s; keep 30 s to pack the results
mkdir -p "$OUT"
LOG="$OUT/device_check.log"
exec > >(tee "$LOG") 2>&1
start=$SECONDS
left() { echo $((BUDGET_S - (SECONDS - start))); }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TQDM_MININTERVAL=10

if [ "$DRY" = 1 ]; then
  PY="${PYTHON:-.venv/bin/python}"
  DEV=cpu SD=tiny RES=64 PROFILE=(--profile gpu --override tiny --jobs 1) SUFFIX=_dryrun
  export OMP_NUM_THREADS=1
else
  PY="${PYTHON:-python3}"
  DEV=cuda SD=sd15-random RES=512 PROFILE=(--profile gpu) SUFFIX=_gpu
  if ls .gl/*.deb >/dev/null 2>&1; then  # the EGL loaders (device README): OpenGL through EGL on the GPU
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$vendor"
  fi
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || { echo "device_check: the wheels did not install"; exit 1; }
    export PYTHONPATH=/tmp/site
  fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
RESULTS=benchmarks/results
[ "$DRY" = 1 ] && RESULTS="$OUT/results"  # a rehearsal's tables never land beside the committed ones
mkdir -p "$RESULTS"

echo "== environment ($(date -u +%FT%TZ))"
"$PY" - <<'EOF' || echo "device_check: environment check failed (the steps below will say what)"
import platform, torch
import diffusers, transformers
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU",
      "| diffusers", diffusers.__version__, "| transformers", transformers.__version__)
from handsynth.render.context import create_context
ctx = create_context()
print("OpenGL:", ctx.info["GL_RENDERER"], ctx.info["GL_VERSION"])
EOF

step() {  # step NAME SECONDS COMMAND...: run with its own time limit; a failure is logged, not fatal
  local name=$1 limit=$2
  shift 2
  local have
  have=$(left)
  [ "$limit" -gt "$have" ] && limit=$have
  if [ "$limit" -lt 20 ]; then
    echo "== $name: skipped (${have} s left)"
    return 0
  fi
  echo "== $name (limit ${limit} s)"
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
}

# 1. SD-1.5-size timings (random weights), each script's own side-by-side table.
if [ "$DRY" = 1 ]; then
  step generate 120 "$PY" benchmarks/generate.py --config tiny --device cpu --size 64 --steps 2 --images 2 \
    --batch 1 --rounds 1 --threads 1 --out "$RESULTS/generate$SUFFIX"
else
  step generate 90 "$PY" benchmarks/generate.py --config sd15 --device cuda --dtype fp16 --size 512 --steps 20 \
    --images 16 --batch 4 --rounds 3 --out "$RESULTS/generate$SUFFIX"
fi
step tas_cost 75 "$PY" benchmarks/tas_cost.py --base "$SD" --resolution "$RES" --device "$DEV" --repeats 5 \
  --samples 2 --out "$RESULTS/tas_cost$SUFFIX"
step hsa_cost 45 "$PY" benchmarks/hsa_cost.py --base "$SD" --resolution "$RES" --device "$DEV" --repeats 10 \
  --out "$RESULTS/hsa_cost$SUFFIX.md"
step sesahand_cost 75 "$PY" benchmarks/sesahand_cost.py --base "$SD" --resolution "$RES" --device "$DEV" \
  --repeats 5 $([ "$DRY" = 1 ] || echo --head-dim 64) --out "$RESULTS/sesahand_cost$SUFFIX.md"
if [ "$DRY" = 1 ]; then
  step handbooster_sampling 120 "$PY" benchmarks/handbooster_sampling.py --device cpu --tiny-batches 1 \
    --paper-batches 1 --repeats 1 --check-steps 2 --out "$RESULTS/handbooster_sampling$SUFFIX"
else
  step handbooster_sampling 45 "$PY" benchmarks/handbooster_sampling.py --device cuda \
    --paper-batches 1,16,64 --out "$RESULTS/handbooster_sampling$SUFFIX"
fi

# 2. The micro benchmark's gpu profile with the rest of the time (it is resumable, but the machine is
# not kept: what it does not finish here is lost; its stage timings still come back).
WORK=outputs/micro/gpu
[ "$DRY" = 1 ] && WORK="$OUT/micro"
step micro "$(left)" "$PY" benchmarks/micro/run.py "${PROFILE[@]}" --work "$WORK" --results "$WORK/results"

# Pack what came out (the device returns at most 8 files from $OUT).
files=$(ls -d "$RESULTS"/*"$SUFFIX"* "$WORK/results" "$WORK/timings.json" 2>/dev/null)
# shellcheck disable=SC2086
tar czf "$OUT/device_results.tar.gz" $files 2>/dev/null
echo "== packed into $OUT/device_results.tar.gz:" $files
echo "== done after $((SECONDS - start)) s"
