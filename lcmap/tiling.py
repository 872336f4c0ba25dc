"""Pure tiling geometry: tiles with a halo over a scene, and fixed network windows inside them.

Every pixel of the scene lies in exactly one tile *core*; the tile is *read* with ``halo``
pixels of context on each side (past the scene's edge too: the reader mirrors the scene).
All read windows of a plan have the same size, so tiles batch together. No file is needed:
``plan_tiles(width, height, ...)`` is testable on its own.

Methods whose network sees a fixed window (ViTs, UNets with a large receptive field) score a
tile by sliding that window over it at a fixed stride and blending the window scores with
:func:`window_weights`. When the tile size and the halo are multiples of the stride and the
halo is ``window - stride``, every window that covers a core pixel lies inside the tile's read
window and on one grid anchored to the scene, so the blended score of a core pixel is the same
whatever the tile size (:func:`window_offsets`).
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

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


class TileGrid(Sequence[Tile]):
    """The tiles of a plan in row-major order, made on demand: a plan of a million tiles
    costs no more memory than a plan of one (the scene's size never bounds memory)."""

    def __init__(self, width: int, height: int, tile: int, halo: int, read: int) -> None:
        self._width, self._height = width, height
        self._tile, self._halo, self._read = tile, halo, read
        self._cols = math.ceil(width / tile)
        self._count = self._cols * math.ceil(height / tile)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Tile: ...

    @overload
    def __getitem__(self, index: slice) -> list[Tile]: ...

    def __getitem__(self, index: int | slice) -> Tile | list[Tile]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"tile {index} of {self._count}")
        i, j = divmod(index, self._cols)
        row, col = i * self._tile, j * self._tile
        size = (min(self._tile, self._width - col), min(self._tile, self._height - row))
        core = Window(col, row, *size)
        read = Window(col - self._halo, row - self._halo, self._read, self._read)
        return Tile(core, read, (i, j))

    def __iter__(self) -> Iterator[Tile]:
        return (self[i] for i in range(self._count))


@dataclass(frozen=True)
class TilePlan:
    """Tiles in row-major order, with the sizes they were planned with."""

    width: int
    height: int
    tile: int
    halo: int
    read_size: int
    tiles: TileGrid

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

    The tile shrinks to the scene when the scene is smaller; it is then rounded up to a
    multiple of ``multiple`` (a windowed method's stride), so that tile cores start on that
    grid. The read size is ``tile + 2 * halo`` rounded up to ``multiple``; the extra pixels
    go to the right and bottom of each read window. Tiles are made as they are asked for.

    Args:
        width: scene width in pixels.
        height: scene height in pixels.
        tile: core size in pixels (> 0).
        halo: context on each side in pixels (>= 0).
        multiple: tiles and read windows are a multiple of this size.

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
    tile = math.ceil(tile / multiple) * multiple
    read = math.ceil((tile + 2 * halo) / multiple) * multiple
    return TilePlan(width, height, tile, halo, read, TileGrid(width, height, tile, halo, read))


def window_weights(size: int) -> NDArray[np.float32]:
    """(size, size) blending weights of one network window: a 2-D Hann window.

    ``sin^2`` of the pixel centre's position along each axis: largest in the middle, falling
    smoothly to nearly zero at the window's border, where its prediction has the least
    context; windows at half-window strides sum to a constant. Floored at 1e-3 so every pixel a
    window covers gets a defined score.
    """
    t = (np.arange(size) + 0.5) / size
    ramp = np.maximum(np.sin(np.pi * t) ** 2, 1e-3)
    return np.outer(ramp, ramp).astype(np.float32)


def window_offsets(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of fixed windows of ``size`` at ``stride`` over ``length`` pixels.

    Windows start at 0 and step by ``stride``; the last one ends at ``length``, which must be
    ``size`` plus a multiple of ``stride`` (pad the input first, see :func:`padded_length`).
    """
    if length < size or (length - size) % stride:
        raise ValueError(f"{length} px is not {size} px plus a multiple of {stride}")
    return list(range(0, length - size + 1, stride))


def padded_length(length: int, size: int, stride: int) -> int:
    """Smallest length >= ``length`` that fixed windows of ``size`` at ``stride`` tile exactly."""
    if length <= size:
        return size
    return size + math.ceil((length - size) / stride) * stride
