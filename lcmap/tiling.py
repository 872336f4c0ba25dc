"""Pure tiling geometry: tiles with a halo over a scene, and smooth blending weights.

Every pixel of the scene lies in exactly one tile *core*; the tile is *read* with ``halo``
pixels of context on each side (past the scene's edge too: the reader mirrors the scene).
All read windows of a plan have the same size, so tiles batch together. No file is needed:
``plan_tiles(width, height, ...)`` is testable on its own.
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window


@dataclass(frozen=True)
class Tile:
    """One tile of a plan.

    Attributes:
        core: the pixels this tile decides (inside the scene; cores partition the scene).
        read: the window read and predicted: ``core`` plus the halo, same size for every tile.
        index: (tile row, tile column) in the plan.
    """

    core: Window
    read: Window
    index: tuple[int, int]

    @property
    def core_offset(self) -> tuple[int, int]:
        """(row, col) of the core's first pixel inside the read window."""
        return (
            int(self.core.row_off - self.read.row_off),
            int(self.core.col_off - self.read.col_off),
        )


@dataclass(frozen=True)
class TilePlan:
    """Tiles in row-major order, with the sizes they were planned with."""

    width: int
    height: int
    tile: int
    halo: int
    read_size: int
    tiles: list[Tile]

    @property
    def rows(self) -> int:
        """Number of tile rows."""
        return math.ceil(self.height / self.tile)

    @property
    def cols(self) -> int:
        """Number of tile columns."""
        return math.ceil(self.width / self.tile)


def plan_tiles(width: int, height: int, tile: int, halo: int, multiple: int = 1) -> TilePlan:
    """Cut a ``width`` x ``height`` scene into tiles of ``tile`` pixels with a ``halo``.

    The tile shrinks to the scene when the scene is smaller. The read size is
    ``tile + 2 * halo`` rounded up to ``multiple`` (a ViT's patch size); the extra pixels go
    to the right and bottom of each read window.

    Args:
        width: scene width in pixels.
        height: scene height in pixels.
        tile: core size in pixels (> 0).
        halo: context on each side in pixels (>= 0).
        multiple: read windows are a multiple of this size.

    Returns:
        The plan, tiles in row-major order.

    Example:
        >>> plan = plan_tiles(517, 389, 256, 8)
        >>> len(plan.tiles), plan.read_size
        (6, 272)
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"scene size must be positive, got {width}x{height}")
    if tile <= 0 or halo < 0 or multiple <= 0:
        raise ValueError(f"invalid tiling: tile={tile}, halo={halo}, multiple={multiple}")
    tile = min(tile, max(width, height))
    read = math.ceil((tile + 2 * halo) / multiple) * multiple
    tiles = []
    for i, row in enumerate(range(0, height, tile)):
        for j, col in enumerate(range(0, width, tile)):
            core = Window(col, row, min(tile, width - col), min(tile, height - row))
            tiles.append(Tile(core, Window(col - halo, row - halo, read, read), (i, j)))
    return TilePlan(width, height, tile, halo, read, tiles)


def blend_weights(size: int, halo: int) -> NDArray[np.float32]:
    """(size, size) weights for blending overlapping predictions of ``global_context`` methods.

    A separable ramp: 1 in the tile's middle, falling smoothly (raised cosine) to a small
    positive value over the ``2 * halo`` pixels at each edge, where neighbouring tiles overlap.
    Positive everywhere, so pixels at the scene's edge (seen by one tile only) are defined.
    """
    ramp = np.ones(size, dtype=np.float64)
    width = min(2 * halo, size // 2)
    if width > 0:
        t = (np.arange(width) + 0.5) / width
        edge = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[:width] = edge
        ramp[size - width :] = np.minimum(ramp[size - width :], edge[::-1])
    ramp = np.maximum(ramp, 1e-3)
    return np.outer(ramp, ramp).astype(np.float32)
