"""Stitch tile predictions into finished rows of labels, over a rolling band of rows.

Two ways, chosen by the method (DESIGN.md contract 2):

* **crop-centre** (methods with a finite receptive field): each tile decides its core pixels
  with ``argmax`` over its scores; with a halo at least the receptive field the map equals
  whole-scene inference, whatever the tile size. The engine takes that argmax on the device
  (:meth:`~lcmap.methods.base.Segmenter.predict_labels`) and hands labels to
  :meth:`Stitcher.add_labels`, K times less to copy back than scores.
* **blend** (``global_context`` methods such as ViTs): scores of overlapping read windows are
  summed with smooth :func:`~lcmap.tiling.blend_weights`, then ``argmax`` per pixel.

Tiles must arrive in the plan's row-major order. Only the rows still open are held: memory is
one band of rows, whatever the scene's height (contract 4).
"""

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from lcmap.tiling import Tile, TilePlan, blend_weights

#: Label written where the input has no data, by output dtype.
NODATA = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def label_dtype(num_classes: int) -> np.dtype[np.unsignedinteger]:
    """uint8 up to 255 classes (255 = nodata), uint16 above (65535 = nodata)."""
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)


class Stitcher:
    """Turn per-tile scores into finished label rows.

    Args:
        plan: the tile plan the scores follow.
        num_classes: K, the number of score channels.
        blend: blend overlapping scores (True) or crop tile cores (False).

    Example:
        >>> for tile, scores, valid in predictions:            # doctest: +SKIP
        ...     for row, labels in stitcher.add(tile, scores, valid):
        ...         writer.write_rows(row, labels)
        >>> for row, labels in stitcher.finish(): ...           # doctest: +SKIP
    """

    def __init__(self, plan: TilePlan, num_classes: int, blend: bool) -> None:
        self.plan = plan
        self.num_classes = num_classes
        self.blend = blend
        self.dtype = label_dtype(num_classes)
        self.nodata = NODATA[self.dtype]
        self._tile_row = 0  # the tile row being filled
        self._emitted = 0  # scene rows already handed out
        w, tile, halo, read = plan.width, plan.tile, plan.halo, plan.read_size
        if blend:
            self._weights = blend_weights(read, halo)
            # The weighted sum of scores (argmax needs no division by the summed weights,
            # the same for every class). It spans one read window's rows and every read
            # window's columns: row 0 is scene row `_acc_row0`, column 0 is scene column -halo.
            width = (plan.cols - 1) * tile + read
            self._acc_row0 = -halo
            self._acc = np.zeros((num_classes, read, width), dtype=np.float32)
            self._valid = np.zeros((read, width), dtype=bool)
        else:
            # Labels and validity of the current band of tile cores.
            self._labels = np.zeros((tile, w), dtype=self.dtype)
            self._valid = np.zeros((tile, w), dtype=bool)

    def add(
        self, tile: Tile, scores: NDArray[np.float32], valid: NDArray[np.bool_]
    ) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Add one tile's (K, R, R) scores and its read window's (R, R) validity.

        Yields:
            ``(first_row, labels)`` bands of finished rows, (rows, width) each.
        """
        yield from self._advance_to(tile)
        r0, c0 = tile.core_offset
        ch, cw = int(tile.core.height), int(tile.core.width)
        core_valid = valid[r0 : r0 + ch, c0 : c0 + cw]
        if self.blend:
            col = int(tile.read.col_off) + self.plan.halo
            read = self.plan.read_size
            self._acc[:, :, col : col + read] += scores * self._weights
            self._valid[r0 : r0 + ch, col + c0 : col + c0 + cw] = core_valid
        else:
            self._put_core(tile, scores[:, r0 : r0 + ch, c0 : c0 + cw].argmax(axis=0), core_valid)

    def add_labels(
        self, tile: Tile, labels: NDArray[np.integer], valid: NDArray[np.bool_]
    ) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Crop-centre only: add one tile's (R, R) labels (the argmax of its scores).

        Yields:
            ``(first_row, labels)`` bands of finished rows, as :meth:`add` does.
        """
        if self.blend:
            raise ValueError("blended stitching needs scores, not labels")
        yield from self._advance_to(tile)
        r0, c0 = tile.core_offset
        ch, cw = int(tile.core.height), int(tile.core.width)
        core = (slice(r0, r0 + ch), slice(c0, c0 + cw))
        self._put_core(tile, labels[core], valid[core])

    def _advance_to(self, tile: Tile) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Close the tile rows above ``tile``'s, yielding their finished rows."""
        i, _ = tile.index
        if i < self._tile_row:
            raise ValueError("tiles must arrive in row-major order")
        while i > self._tile_row:
            yield from self._close_tile_row()

    def _put_core(self, tile: Tile, labels: NDArray[np.integer], valid: NDArray[np.bool_]) -> None:
        """Store a tile core's labels and validity in the current band of tile rows."""
        ch, cw = labels.shape
        cols = slice(int(tile.core.col_off), int(tile.core.col_off) + cw)
        self._valid[:ch, cols] = valid
        self._labels[:ch, cols] = labels

    def finish(self) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        """Yield the rows still held once every tile has been added."""
        while self._emitted < self.plan.height:
            yield from self._close_tile_row()

    def _close_tile_row(self) -> Iterator[tuple[int, NDArray[np.unsignedinteger]]]:
        plan = self.plan
        i = self._tile_row
        self._tile_row += 1
        last = self._tile_row >= plan.rows
        if not self.blend:
            row0 = i * plan.tile
            rows = min(plan.tile, plan.height - row0)
            labels = self._labels[:rows].copy()
            labels[~self._valid[:rows]] = self.nodata
            self._valid[:] = False
            self._emitted = row0 + rows
            yield row0, labels
            return
        # Rows above the next tile row's read windows receive no more scores: they are final.
        end = plan.height if last else min(plan.height, (i + 1) * plan.tile - plan.halo)
        if end > self._emitted:
            a, b = self._emitted - self._acc_row0, end - self._acc_row0
            cols = slice(plan.halo, plan.halo + plan.width)
            labels = self._acc[:, a:b, cols].argmax(axis=0).astype(self.dtype)
            labels[~self._valid[a:b, cols]] = self.nodata
            yield self._emitted, labels
            self._emitted = end
        self._shift_accumulators()

    def _shift_accumulators(self) -> None:
        """Move the accumulators down one tile row, keeping the rows next read windows share."""
        tile = self.plan.tile
        keep = max(self.plan.read_size - tile, 0)
        # Rows are axis 1 of the scores and axis 0 of the validity.
        for view in (self._acc.transpose(1, 0, 2), self._valid):
            view[:keep] = view[tile : tile + keep].copy()
            view[keep:] = 0
        self._acc_row0 += tile
