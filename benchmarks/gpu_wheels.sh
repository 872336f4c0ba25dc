#!/usr/bin/env bash
# Wheels for a GPU machine with no package registry (issue 17), for `gpu_suite.sh --wheels DIR`:
# the packages lcmap needs that the lent H200's python3 lacks (it already holds torch, timm,
# numpy, scipy, scikit-learn, typer, rich, pytest, ...), at the versions installed here, built
# for CPython 3.12 on x86-64 Linux. pyogrio is left out: with rasterio it would pass the 64 MiB
# a device call may carry, and the suite writes no vector file.
#
#   bash benchmarks/gpu_wheels.sh [DIR]     # default DIR: .whl (ignore it in .git/info/exclude)
set -euo pipefail
dir=${1:-.whl}
packages=(rasterio shapely geopandas pyproj affine cligj click-plugins dask distributed locket
  partd tblib tornado zict pytest-xdist execnet)
pins=$(python3 -c 'import sys, importlib.metadata as m
print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' "${packages[@]}")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" $pins
du -sh "$dir"
