"""Milliseconds per tile of the engine's reader thread, stage by stage (issue 17).

For ``--tiles`` tile windows of ``lcmap segment``'s plan (512 px, halo 1) on one scene, read on
one thread as the reader does: GDAL's read of the bands as float32, the validity mask, and the
normalisation done as a new array (``Normalisation.apply``) and in place (``in_place=True``,
what the reader does since it owns the array it just read). Checks both give the same bits.

Example (the scene is one ``segment_throughput.py`` made):
    python benchmarks/segment_throughput.py --sizes 16000
    python benchmarks/reader_stages.py /tmp/lcmap-bench/naip_16000.tif
"""

import argparse
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from lcmap.io.scene import (
    MAPPING_GDAL_CACHE_MB,
    bounded_gdal_cache,
    open_scene,
    scene_statistics,
)
from lcmap.tiling import plan_tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("--tiles", type=int, default=256)
    args = parser.parse_args()
    seconds = dict.fromkeys(["read", "mask", "normalise (new array)", "normalise (in place)"], 0.0)
    with bounded_gdal_cache(MAPPING_GDAL_CACHE_MB), open_scene(args.scene) as src:
        bands = list(range(1, src.count + 1))
        norm = scene_statistics([src], bands)
        plan = plan_tiles(src.width, src.height, 512, 1)
        tiles = plan.tiles[: args.tiles]
        for tile in tiles:
            window = tile.read.intersection(Window(0, 0, src.width, src.height))
            t0 = time.perf_counter()
            data = src.read(bands, window=window, out_dtype="float32")
            t1 = time.perf_counter()
            valid = (src.read_masks(bands, window=window) > 0).any(axis=0)
            t2 = time.perf_counter()
            copied = norm.apply(data, valid)
            t3 = time.perf_counter()
            in_place = norm.apply(data, valid, in_place=True)
            t4 = time.perf_counter()
            if not np.array_equal(copied.view(np.uint32), in_place.view(np.uint32)):
                raise SystemExit("the in-place normalisation gave other bits")
            for key, dt in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                seconds[key] += dt
    print(f"{args.scene.name}: {len(tiles)} tiles of {plan.read_size} px, {len(bands)} bands")
    print("| stage | ms per tile |\n|---|---|")
    for key, total in seconds.items():
        print(f"| {key} | {1000 * total / len(tiles):.2f} |")


if __name__ == "__main__":
    main()
