"""Stitch tile predictions into finished rows of labels, over a rolling band of rows.

Crop-centre stitching (DESIGN.md contract 2): each tile decides its core pixels with
``argmax`` over its scores. With a halo at least the method's receptive field the map equals
whole-scene inference, whatever the tile size. That holds for windowed methods (ViTs, UNets)
too: they blend their fixed windows inside the tile on a grid anchored to the scene
(:meth:`~lcmap.methods.base.Segmenter.predict_tiles`), and their halo holds every window that
covers a core pixel. The engine takes the argmax on the device and hands labels to
:meth:`Stitcher.add_labels`, K times less to copy back than scores.

Tiles must arrive in the plan's row-major order. Only the rows still open are held: memory is
one band of tile rows, whatever the scene's height (contract 4).
"""

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from lcmap.tiling import Tile, TilePlan

#: Label written where the input has no data, by output dtype.
NODATA = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def label_dtype(num_classes: int) -> np.dtype[np.unsignedinteger]:
    """uint8 up to 255 classes (255 = nodata), uint16 above (65535 = nodata)."""
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)


class Stitcher:
    """Turn per-tile labels (or scores) into finished label rows.

    Args:
        plan: the tile plan the predictions follow.
        num_classes: K, the number of classes.
        tile_rows: the tile rows to stitch (a part of the scene, see :mod:`lcmap.scale`);
            all of them when None.

    Example:
        >>> for tile, labels, valid in predictions:            # doctest: +SKIP
        ...     for row, band in stitcher.add_labels(tile, labels, valid):
        ...         writer.write_rows(row, band)
        >>> for row, band in stitcher.finish(): ...             # doctest: +SKIP
    """

    def __init__(self, plan: TilePlan, num_classes: int, tile_rows: range | None = None) -> None:
        self.plan = plan
        self.num_classes = num_classes
        self.dtype = label_dtype(num_classes)
        self.nodata = NODATA[self.dtype]
        rows = tile_rows if tile_rows is not None else range(plan.rows)
        self._tile_row = rows.start  # the tile row being filled
        self._emitted = rows.start * plan.tile  # scene rows already handed out
        self._end = min(rows.stop * plan.tile, plan.height)  # scene rows to hand out
        # Labels and validity of the current band of tile cores.
        self._labels = np.zeros((plan.tile, plan.width), dtype=self.dtype)
        self._valid = np.zeros((plan.tile, plan.width), dtype=bool)

    def add(
        self, tile: Tile, scores: NDArray[np.float32], valid: NDArray[np.bool_]
    ) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Add one tile's (K, R, R) scores and its read window's (R, R) validity.

        Yields:
            ``(first_row, labels)`` bands of finished rows, (rows, width) each.
        """
        yield from self.add_labels(tile, scores.argmax(axis=0), valid)

    def add_labels(
        self, tile: Tile, labels: NDArray[np.integer], valid: NDArray[np.bool_]
    ) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Add one tile's (R, R) labels (the argmax of its scores) and validity.

        Yields:
            ``(first_row, labels)`` bands of finished rows, as :meth:`add` does.
        """
        i, _ = tile.index
        if i < self._tile_row:
            raise ValueError("tiles must arrive in row-major order")
        while i > self._tile_row:
            yield from self._close_tile_row()
        r0, c0 = tile.core_offset
        ch, cw = int(tile.core.height), int(tile.core.width)
        core = (slice(r0, r0 + ch), slice(c0, c0 + cw))
        cols = slice(int(tile.core.col_off), int(tile.core.col_off) + cw)
        self._valid[:ch, cols] = valid[core]
        self._labels[:ch, cols] = labels[core]

    def finish(self) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Yield the rows still held once every tile has been added."""
        while self._emitted < self._end:
            yield from self._close_tile_row()

    def _close_tile_row(self) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        plan = self.plan
        row0 = self._tile_row * plan.tile
        self._tile_row += 1
        rows = min(plan.tile, plan.height - row0)
        labels = self._labels[:rows].copy()
        labels[~self._valid[:rows]] = self.nodata
        self._valid[:] = False
        self._emitted = row0 + rows
        yield row0, labels
