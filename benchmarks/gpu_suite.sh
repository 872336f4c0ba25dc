#!/usr/bin/env bash
# The GPU suite (issue 17): install lcmap on a bare machine from the package registry, run the
# GPU tests and the method tests on the device, then the throughput benchmarks, in one go.
#
#   bash benchmarks/gpu_suite.sh                 # on a GPU machine (about 10 minutes)
#   bash benchmarks/gpu_suite.sh --device cpu    # the same steps on the CPU, small sizes
#
# Results: $OUT (default /tmp/lcmap-gpu-suite): one JSON per benchmark and suite.log.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
if [ "${1:-}" = "--device" ]; then device=$2; fi
out=${OUT:-/tmp/lcmap-gpu-suite}
mkdir -p "$out"
exec > >(tee "$out/suite.log") 2>&1

step() { echo; echo "== $* ($(date +%T))"; }

step install
python3 -m venv "$out/venv"
. "$out/venv/bin/activate"
pip install -q -e ".[dev]"
python -m lcmap --version

if [ "$device" = cpu ]; then
  size=2048; stego_size=512; iterations=5; steps=10; batch=4
else
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true
  size=8192; stego_size=4096; iterations=20; steps=100; batch=32
  step "pytest -m gpu"
  python -m pytest -q -p no:cacheprovider -m gpu
fi

step "method tests on $device"
LCMAP_TEST_DEVICE=$device python -m pytest -q -p no:cacheprovider tests/methods -x

step "stego segment vs bare backbone (ViT-S/8, ViT-S/14)"
HF_HUB_OFFLINE=1 python benchmarks/stego_throughput.py --size "$stego_size" \
  --batch-size "$batch" --device "$device" --json "$out/stego_throughput.json"

if [ "$device" != cpu ]; then
  step "stego ViT-S/14 segment with the batch size chosen from free memory"
  HF_HUB_OFFLINE=1 python benchmarks/stego_throughput.py --size "$stego_size" \
    --backbones vit_small_patch14_dinov2 --batch-size auto --device "$device" \
    --json "$out/stego_throughput_auto.json"
fi

step "kmeans on $device vs cpu; single_scene and cas training"
HF_HUB_OFFLINE=1 python benchmarks/device_throughput.py --device "$device" --size "$size" \
  --iterations "$iterations" --steps "$steps" --workdir "$out/work" \
  --json "$out/device_throughput.json"

step done
