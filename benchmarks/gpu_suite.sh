#!/usr/bin/env bash
# The GPU suite (issue 17): install lcmap on a bare machine, run the GPU tests and the method
# tests on the device, then the throughput and pre-training cost benchmarks, in one go.
#
#   bash benchmarks/gpu_suite.sh                       # on a GPU machine (about 6 minutes)
#   bash benchmarks/gpu_suite.sh --device cpu          # the same steps on the CPU, small sizes
#   bash benchmarks/gpu_suite.sh --wheels .whl         # a machine with no package registry:
#       torch, timm and the rest are already in its python3; the missing packages come as wheels
#       in .whl (rasterio, shapely, geopandas, pyproj, dask, ...: `bash benchmarks/gpu_wheels.sh`
#       fetches them where a registry is reachable), installed with --no-index
#
# Each step has its own time limit (STEP_LIMIT seconds, default 240), so one slow step cannot
# cost the others their figures, and the whole suite stops itself after SUITE_LIMIT seconds
# (default 420), whatever is left: the most valuable rows run first. On CUDA the suite fails at
# once when CUDA is missing or broken (a green run must mean the GPU ran). Installs, scenes and
# models go under $WORK (default /tmp/lcmap-gpu-work); $OUT (default /tmp/lcmap-gpu-suite) gets
# only the small results: one JSON per benchmark and suite.log.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
wheels=
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    *) echo "gpu_suite.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out=${OUT:-/tmp/lcmap-gpu-suite}
work=${WORK:-/tmp/lcmap-gpu-work}
limit=${STEP_LIMIT:-240}
deadline=$((SECONDS + ${SUITE_LIMIT:-420}))
mkdir -p "$out" "$work/tmp"
export TMPDIR="$work/tmp"  # the benchmarks' temporary scenes stay out of $OUT
exec > >(tee "$out/suite.log") 2>&1

step() { echo; echo "== $* ($(date +%T), $((deadline - SECONDS)) s left)"; }
failed=0
# run a step under its time limit and what is left of the suite's; a failure is logged and the
# suite goes on; with under 10 s left the step is skipped
run() {
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 10 ]; then echo "!! skipped (suite time limit): $*"; failed=1; return; fi
  timeout "$((left < limit ? left : limit))" "$@" || { echo "!! step failed (exit $?): $*"; failed=1; }
}

step install
if [ -n "$wheels" ]; then
  # no registry: the wheels and lcmap itself (for its entry points) go into a side folder
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$wheels"/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$work/site" .
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
  rm -rf "$work/site/lcmap"  # keep the metadata; import the checkout's lcmap
  export PYTHONPATH="$PWD:$PYTHONPATH"
  mkdir -p "$work/bin"  # a 'python' that is the image's python3, for timeout and subprocesses
  printf '#!/bin/sh\nexec python3 "$@"\n' > "$work/bin/python" && chmod +x "$work/bin/python"
  export PATH="$work/bin:$PATH"
else
  python3 -m venv "$work/venv"
  . "$work/venv/bin/activate"
  pip install -q -e ".[dev]"
fi
python -m lcmap --version
if [ "$device" != cpu ]; then
  if ! python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device';
print(torch.cuda.get_device_name(0), float(torch.ones(8, device='cuda').sum()))"; then
    echo "!! CUDA is missing or broken: nothing below would measure the GPU" >&2
    exit 3
  fi
fi
# spread the test modules over 8 worker processes (pytest-xdist comes with the wheels; the
# project's own setting, two workers, is for CI's two cores); without it, one process and
# none of the project's pytest options (its -n needs pytest-xdist)
if python -c "import xdist" 2>/dev/null; then parallel="-n 8"; else parallel="-o addopts=-ra"; fi

if [ "$device" = cpu ]; then
  size=2048; stego_size=512; iterations=5; steps=10; batch=4
  pretrain_steps=4; pretrain_batches=16; cpu_pretrain_steps=4
else
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true
  size=8192; stego_size=16384; iterations=20; steps=100; batch=32
  pretrain_steps=50; pretrain_batches=64,256; cpu_pretrain_steps=10
fi

step "stego segment vs bare backbone (ViT-S/8, ViT-S/14)"
HF_HUB_OFFLINE=1 run python benchmarks/stego_throughput.py --size "$stego_size" \
  --batch-size "$batch" --device "$device" --json "$out/stego_throughput.json"

if [ "$device" != cpu ]; then
  step "stego ViT-S/14 segment with the batch size chosen from free memory"
  HF_HUB_OFFLINE=1 run python benchmarks/stego_throughput.py --size "$stego_size" \
    --backbones vit_small_patch14_dinov2 --batch-size auto --device "$device" \
    --json "$out/stego_throughput_auto.json"
fi

step "kmeans on $device vs cpu; single_scene and cas training"
HF_HUB_OFFLINE=1 run python benchmarks/device_throughput.py --device "$device" --size "$size" \
  --iterations "$iterations" --steps "$steps" --workdir "$work/runs" \
  --json "$out/device_throughput.json"

if [ "$device" != cpu ]; then
  step "pytest -m gpu"
  run python -m pytest -q -p no:cacheprovider -p no:benchmark $parallel -m gpu
fi

step "pre-training cost: lcmap pretrain, resnet18-unet, 128-px windows, $pretrain_steps steps"
run python benchmarks/pretrain_cost.py --device "$device" --steps "$pretrain_steps" \
  --cpu-steps "$cpu_pretrain_steps" --batch-sizes "$pretrain_batches" --workdir "$work/runs" \
  --json "$out/pretrain_cost.json"

if [ "$device" != cpu ]; then
  # the other encoders at batch 64 on the device alone (their CPU steps would cost its minutes):
  # compared with resnet18-unet's batch-64 row above
  for encoder in swin-unet dinov2-vits14; do
    step "pre-training cost: $encoder, batch 64, $pretrain_steps steps"
    run python benchmarks/pretrain_cost.py --device "$device" --encoder "$encoder" \
      --steps "$pretrain_steps" --cpu-steps 0 --batch-sizes 64 --workdir "$work/runs" \
      --json "$out/pretrain_cost_$encoder.json"
  done
fi

step "method tests on $device"
LCMAP_TEST_DEVICE=$device run python -m pytest -q -p no:cacheprovider -p no:benchmark $parallel \
  -m "not slow and not network" tests/methods

step done
exit $failed
