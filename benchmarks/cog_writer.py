"""The COG writing stage alone: MODE overviews streamed from the rows vs built by GDAL's COG driver.

A blocky label map like lcmap's (classes in 25-px blocks, 6 classes, a little salt) of SIZE x
SIZE pixels is written through :class:`lcmap.io.writer.LabelWriter` in 512-row bands, then
committed to a COG; "GDAL" is the same writer with the streaming turned off (the COG driver
makes the overviews at commit, as before issue 17's change). Times: the row writes (where the
streamed overviews are made, on the engine's writer thread in a real run) and the commit.

Example:
    python benchmarks/cog_writer.py --size 16000 --repeats 2
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin

from lcmap.io import writer as lcmap_writer
from lcmap.io.overviews import overview_sizes


def blocky_map(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 6, (-(-size // 25), -(-size // 25))).astype(np.uint8)
    labels = np.repeat(np.repeat(coarse, 25, 0), 25, 1)[:size, :size].copy()
    salt = rng.random(labels.shape) < 0.02
    labels[salt] = rng.integers(0, 6, int(salt.sum())).astype(np.uint8)
    return labels


def write(labels: np.ndarray, out: Path, streamed: bool) -> tuple[float, float]:
    """Seconds to write the rows and to commit the COG. Without ``streamed`` the overview
    count is given as a creation option, which leaves the overviews to the COG driver (the
    same levels: the driver's own count)."""
    h, w = labels.shape
    levels = len(overview_sizes(w, h, 512))  # none for a map of one block
    options = {} if streamed or not levels else {"OVERVIEW_COUNT": str(levels)}
    t0 = time.perf_counter()
    names, grey = [f"c{i}" for i in range(6)], [(40 * i, 40 * i, 40 * i) for i in range(6)]
    with lcmap_writer.LabelWriter(
        out,
        grid=lcmap_writer.MapGrid(w, h, CRS.from_epsg(32614), from_origin(500000, 4000000, 1, 1)),
        dtype=np.dtype("uint8"),
        class_names=names,
        colours=grey,
        creation_options=options,
        overwrite=True,
    ) as dst:
        for row in range(0, h, 512):
            dst.write_rows(row, labels[row : row + 512])
        t1 = time.perf_counter()
        dst.commit()
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    labels = blocky_map(args.size)
    mpx = labels.size / 1e6
    print("| overviews | rows s | commit s | total s | Mpx/s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for streamed in (False, True):
                rows, commit = write(labels, Path(tmp) / "map.tif", streamed)
                name = "streamed (lcmap)" if streamed else "GDAL at commit"
                print(
                    f"| {name} | {rows:.2f} | {commit:.2f} | {rows + commit:.2f} | "
                    f"{mpx / (rows + commit):.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
