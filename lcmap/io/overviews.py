"""MODE overviews of a label map, built from its rows as they stream out of the stitcher.

GDAL's COG driver would otherwise build the overviews after the map is written: a second pass
over the whole map (most of the commit's time: ``benchmarks/cog_writer.py``). Here each
level is made from the level below, two rows at a time, while the map is being written, into
its own staging file; :class:`~lcmap.io.writer.LabelWriter` then hands them to the COG driver
as the source's overviews (a VRT with explicit ``<Overview>`` elements and
``OVERVIEWS=FORCE_USE_EXISTING``), so the conversion only compresses and lays out.

The levels are the ones the COG driver makes itself (``OVERVIEWS=AUTO``): factors 2, 4, 8...
while the larger side divided by the factor exceeds the block size, each level
``ceil(size / factor)`` pixels. A coarse pixel takes the most frequent class of its 2 x 2
pixels one level down, nodata left out (nodata only when all four are); on a tie, the first in
reading order (top-left, top-right, bottom-left, bottom-right).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray


def overview_sizes(width: int, height: int, blocksize: int) -> list[tuple[int, int]]:
    """(width, height) of each overview level the COG driver makes with ``OVERVIEWS=AUTO``."""
    sizes = []
    factor = 1
    while max(width, height) // factor > blocksize:
        factor *= 2
        sizes.append((-(-width // factor), -(-height // factor)))
    return sizes


def mode_2x2(labels: NDArray[Any], nodata: int) -> NDArray[Any]:
    """The most frequent value of each 2 x 2 block of ``labels`` (see the module docstring).

    Odd sides are padded with nodata, so the last row or column of blocks takes the mode of
    the pixels it has.
    """
    h, w = labels.shape
    if h % 2 or w % 2:
        labels = np.pad(labels, ((0, h % 2), (0, w % 2)), constant_values=nodata)
    v = (labels[0::2, 0::2], labels[0::2, 1::2], labels[1::2, 0::2], labels[1::2, 1::2])
    same = {(i, j): (v[i] == v[j]).view(np.uint8) for i in range(4) for j in range(i + 1, 4)}

    def count(i: int) -> NDArray[np.uint8]:
        """How many of the block's pixels share pixel i's value; 0 for a nodata pixel (a
        class is never equal to nodata, so nodata pixels only ever match each other)."""
        a, b, c = (same[min(i, j), max(i, j)] for j in range(4) if j != i)
        n: NDArray[np.uint8] = a + b
        n += c
        n += 1
        n *= (v[i] != nodata).view(np.uint8)
        return n

    out = v[0].copy()
    best = count(0)
    for i in range(1, 4):
        n = count(i)
        np.copyto(out, v[i], where=n > best)
        np.maximum(best, n, out=best)
    return out


class _Level:
    """One overview level: its staging file and the odd row waiting for its pair."""

    def __init__(self, path: Path, width: int, height: int, profile: dict[str, Any]) -> None:
        self.path, self.width, self.height = path, width, height
        self.dst = rasterio.open(path, "w", width=width, height=height, **profile)
        self.rows_written = 0
        self.rows_in = 0  # rows received from the level below
        self.carry: NDArray[Any] | None = None


class ModePyramid:
    """Build every overview level from the map's rows, in row order (see the module docstring).

    Args:
        path_of: the staging file of level ``i`` (1 = the finest).
        width: the map's width.
        height: the map's height.
        blocksize: the COG's block size.
        profile: the staging files' rasterio profile (driver, dtype, nodata, tiling...).
        nodata: the map's nodata value.
    """

    def __init__(
        self,
        path_of: Callable[[int], Path],
        width: int,
        height: int,
        blocksize: int,
        profile: dict[str, Any],
        nodata: int,
    ) -> None:
        self.nodata = nodata
        self.height = height
        self.next_row = 0
        self.broken = False
        self.levels: list[_Level] = []
        try:
            for i, (w, h) in enumerate(overview_sizes(width, height, blocksize), start=1):
                self.levels.append(_Level(path_of(i), w, h, profile))
        except BaseException:
            self.close()
            raise

    def add(self, row: int, labels: NDArray[Any]) -> None:
        """Take the map's rows ``row .. row + len(labels)``; rows out of order end the pyramid
        (:attr:`complete` turns False and the COG driver builds the overviews instead)."""
        if self.broken:
            return
        if row != self.next_row:
            self.broken = True
            return
        self.next_row += labels.shape[0]
        self._feed(0, labels, self.height)

    def _feed(self, i: int, rows: NDArray[Any], rows_below: int) -> None:
        level = self.levels[i]
        level.rows_in += rows.shape[0]
        if level.carry is not None:
            rows = np.concatenate([level.carry, rows])
            level.carry = None
        if rows.shape[0] % 2 and level.rows_in < rows_below:
            level.carry, rows = rows[-1:].copy(), rows[:-1]
        if rows.shape[0] == 0:
            return
        out = mode_2x2(rows, self.nodata)
        window = ((level.rows_written, level.rows_written + out.shape[0]), (0, level.width))
        level.dst.write(out, 1, window=window)
        level.rows_written += out.shape[0]
        if i + 1 < len(self.levels):
            self._feed(i + 1, out, level.height)

    @property
    def complete(self) -> bool:
        """Whether every level holds all its rows."""
        return not self.broken and all(lv.rows_written == lv.height for lv in self.levels)

    def close(self) -> None:
        """Close the staging files (they stay on disk for the COG copy)."""
        for level in self.levels:
            level.dst.close()

    def paths(self) -> list[Path]:
        """The levels' staging files, finest first."""
        return [level.path for level in self.levels]


__all__ = ["ModePyramid", "mode_2x2", "overview_sizes"]
