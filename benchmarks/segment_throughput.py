"""Throughput and peak memory of ``lcmap segment --method kmeans`` against the raw I/O limit.

Builds big RGBN scenes by repeating a real NAIP scene (written window by window), then, for
each size, runs in separate processes (so peak RSS is per run):

* ``io_copy``: a plain rasterio block-by-block read of all 4 bands + a single-band uint8
  write (tiled 512, DEFLATE) of the same scene: the I/O limit;
* ``lcmap``: ``lcmap segment SCENE -o OUT --method kmeans -k 6`` (fit + map + COG).

Figures are ratios against the baseline measured in the same run.

Usage:
    python benchmarks/segment_throughput.py --sizes 4000 8000 16000 --workdir /tmp/lcmap-bench
    python benchmarks/segment_throughput.py --profile 8000   # where lcmap's time goes
    python benchmarks/segment_throughput.py --sizes 8000 --lcmap /tmp/before  # another commit
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT / ".." / "shared" / "data" / "naip" / "naip_m_4709963_se_14_1_20200831.tif"
if not NAIP.exists():
    NAIP = ROOT / "sample_data" / "naip_2020_rgbn.tif"

IO_COPY = """
import sys, rasterio, numpy as np
src_path, dst_path = sys.argv[1], sys.argv[2]
with rasterio.open(src_path) as src:
    profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="uint8",
                   crs=src.crs, transform=src.transform, tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate", predictor=2)
    with rasterio.open(dst_path, "w", **profile) as dst:
        for _, window in src.block_windows(1):
            data = src.read(window=window)
            dst.write((data[0] > 128).astype("uint8"), 1, window=window)
"""


def make_scene(path: Path, size: int) -> None:
    """Tile the NAIP scene (mirrored alternately, so edges match) over size x size pixels."""
    with rasterio.open(NAIP) as src:
        tile = src.read()
        profile = dict(src.profile)
    th, tw = tile.shape[1:]
    profile.update(
        width=size,
        height=size,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        predictor=2,
        photometric="MINISBLACK",
        BIGTIFF="YES",
    )
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 512):
            h = min(512, size - row)
            rows = np.arange(row, row + h) % (2 * th)
            rows = np.where(rows < th, rows, 2 * th - 1 - rows)
            cols = np.arange(size) % (2 * tw)
            cols = np.where(cols < tw, cols, 2 * tw - 1 - cols)
            dst.write(tile[:, rows][:, :, cols], window=Window(0, row, size, h))


#: ``python -c`` body running lcmap's CLI from the checkout given as its first argument. An
#: editable install's import hook comes before PYTHONPATH, so it is dropped first.
FROM_CHECKOUT = """
import runpy, sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
runpy.run_module("lcmap", run_name="__main__")
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, peak RSS in MB) of that process alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def profile(scene: Path, out: Path, top: int = 20) -> None:
    """Run the same segmentation in this process under cProfile; print the top functions."""
    import cProfile
    import pstats

    from lcmap import api

    start = time.perf_counter()
    with cProfile.Profile() as prof:
        api.segment(
            scene, api.OutputSpec(out, overwrite=True), method=api.MethodSpec("kmeans", classes=6)
        )
    print(f"total {time.perf_counter() - start:.1f} s")
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 8000, 16000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lcmap-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--lcmap",
        type=Path,
        metavar="CHECKOUT",
        help="run lcmap from this checkout (a 'git worktree' of another "
        "commit), for before/after figures",
    )
    parser.add_argument(
        "--profile", type=int, metavar="SIZE", help="profile lcmap on a SIZE x SIZE scene instead"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        scene = args.workdir / f"naip_{args.profile}.tif"
        if not scene.exists():
            make_scene(scene, args.profile)
        profile(scene, args.workdir / f"map_{args.profile}.tif")
        return
    lcmap = [sys.executable, "-m", "lcmap"]
    if args.lcmap:
        lcmap = [sys.executable, "-c", FROM_CHECKOUT, str(args.lcmap.resolve())]
    rows = []
    for size in args.sizes:
        scene = args.workdir / f"naip_{size}.tif"
        if not scene.exists():
            make_scene(scene, size)
        mpx = size * size / 1e6
        io_s, io_rss = timed(
            [sys.executable, "-c", IO_COPY, str(scene), str(args.workdir / "copy.tif")]
        )
        out = args.workdir / f"map_{size}.tif"
        lc_s, lc_rss = timed(
            [
                *lcmap,
                "segment",
                str(scene),
                "-o",
                str(out),
                "-m",
                "kmeans",
                "-k",
                "6",
                "--overwrite",
                "-q",
            ]
        )
        rows.append(
            {
                "size": size,
                "megapixels": mpx,
                "io_copy_mpx_s": mpx / io_s,
                "io_copy_rss_mb": io_rss,
                "lcmap_mpx_s": mpx / lc_s,
                "lcmap_rss_mb": lc_rss,
                "throughput_ratio": io_s / lc_s,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| size | Mpx | I/O copy Mpx/s | lcmap kmeans Mpx/s | ratio | I/O RSS MB | lcmap RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['megapixels']:.0f} | {r['io_copy_mpx_s']:.1f} | "
            f"{r['lcmap_mpx_s']:.1f} | {r['throughput_ratio']:.2f} | {r['io_copy_rss_mb']:.0f} | "
            f"{r['lcmap_rss_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
