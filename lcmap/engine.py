"""Where raster I/O meets torch: the device, and the tiled mapping loop.

A reader thread reads and normalises tile windows ahead of the device; the main thread runs
batches through the method (bf16 autocast on CUDA) and hands labels to the stitcher; a writer
thread writes the stitcher's finished rows (GDAL compresses them without holding Python's
lock) while the next batch is scored. Nothing here holds more than a few bands of rows.
"""

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from lcmap.errors import LcmapError
from lcmap.io.scene import ReadSpec, open_scene
from lcmap.methods.base import ProgressFn, Segmenter
from lcmap.stitch import Stitcher
from lcmap.tiling import Tile, TilePlan

log = logging.getLogger(__name__)

_SAMPLE_TRIES = 20


def choose_device(device: str = "auto") -> torch.device:
    """Resolve ``auto`` (or ``$LCMAP_DEVICE``) to CUDA when available, else the CPU.

    Also applies ``$LCMAP_NUM_THREADS`` (torch CPU threads) when set.

    Raises:
        LcmapError: CUDA was asked for but is not available.
    """
    threads = os.environ.get("LCMAP_NUM_THREADS")
    if threads:
        # Torch's intra-op threads; one is often faster on a busy shared machine.
        torch.set_num_threads(max(1, int(threads)))
    name = os.environ.get("LCMAP_DEVICE", "auto") if device == "auto" else device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise LcmapError(f"Unknown device '{name}'; use auto, cpu, cuda or cuda:N.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LcmapError(f"device={name} was asked for but no CUDA device is available; use cpu.")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise LcmapError(f"Unknown device '{name}'; use auto, cpu or cuda.") from exc


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generators (methods should still use their own)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _read_tiles(
    path: str | Path,
    tiles: Sequence[Tile],
    spec: ReadSpec,
    out: "queue.Queue[Any]",
    stop: threading.Event,
) -> None:
    """Reader thread: read and normalise every tile in order; ``None`` marks the end."""
    try:
        with open_scene(path) as src:
            for tile in tiles:
                if stop.is_set():
                    return
                out.put((tile, *spec.read(src, tile.read)))
        out.put(None)
    except BaseException as exc:  # handed to the main thread, which re-raises it
        out.put(exc)


class RowWriter(Protocol):
    """Where finished rows go: a :class:`~lcmap.io.writer.LabelWriter` or a part file."""

    def write_rows(self, row: int, labels: NDArray[np.unsignedinteger]) -> None: ...


class _WriterThread:
    """Writes finished rows on a thread of its own, at most ``depth`` bands behind; counts the
    pixels per class. An error in the writer is raised again in the main thread at the next
    :meth:`put` or at :meth:`close`."""

    def __init__(self, writer: RowWriter, num_classes: int, nodata: int, depth: int = 4) -> None:
        self.writer, self.num_classes, self.nodata = writer, num_classes, nodata
        self.counts = np.zeros(num_classes + 1, dtype=np.int64)
        self._q: queue.Queue[tuple[int, NDArray[np.unsignedinteger]] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            if self._error is not None:
                continue  # drain without writing after a failure
            try:
                row, labels = item
                self.writer.write_rows(row, labels)
                found = np.bincount(labels.ravel(), minlength=self.nodata + 1)
                self.counts[: self.num_classes] += found[: self.num_classes]
                self.counts[-1] += found[self.nodata]
            except BaseException as exc:  # raised again in the main thread
                self._error = exc

    def put(self, row: int, labels: NDArray[np.unsignedinteger]) -> None:
        if self._error is not None:
            raise self._error
        self._q.put((row, labels))

    def close(self) -> None:
        """Wait for every row to be written; raise the writer's error if there was one."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


def map_scene(
    path: str | Path,
    method: Segmenter,
    plan: TilePlan,
    spec: ReadSpec,
    writer: RowWriter,
    *,
    batch_size: int,
    device: torch.device,
    progress: ProgressFn | None = None,
    tile_rows: range | None = None,
) -> NDArray[np.int64]:
    """Predict every tile of ``plan``, stitch, and stream finished rows into ``writer``.

    Args:
        tile_rows: only these tile rows (one part of the scene, :mod:`lcmap.scale`); their
            tiles are the same as in a whole-scene run, so is their part of the map.

    Returns:
        Pixel count per class (index K counts nodata).
    """
    method.to(device)
    stitcher = Stitcher(plan, method.num_classes, tile_rows)
    tiles: Sequence[Tile] = plan.tiles
    if tile_rows is not None:
        tiles = plan.tiles[tile_rows.start * plan.cols : tile_rows.stop * plan.cols]
    # A few batches ahead: enough to hide read latency, small enough to bound memory.
    tiles_q: queue.Queue[Any] = queue.Queue(maxsize=max(2, 2 * batch_size))
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_tiles, args=(path, tiles, spec, tiles_q, stop), daemon=True
    )
    autocast: Any = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )

    label_torch_dtype = torch.uint8 if stitcher.dtype == np.uint8 else torch.int32

    sink = _WriterThread(writer, method.num_classes, stitcher.nodata)

    def emit(rows: Iterator[tuple[int, NDArray[np.unsignedinteger]]]) -> None:
        for row, labels in rows:
            sink.put(row, labels)

    def run(batch: list[tuple[Tile, NDArray[np.float32], NDArray[np.bool_]]]) -> None:
        x = torch.from_numpy(np.stack([b[1] for b in batch])).to(device, non_blocking=True)
        with torch.inference_mode(), autocast:
            # The argmax runs on the device, only labels come back.
            labels = method.predict_tile_labels(x).to(label_torch_dtype).cpu().numpy()
        for i, (tile, _, valid) in enumerate(batch):
            emit(stitcher.add_labels(tile, labels[i], valid))

    reader.start()
    done, total = 0, len(tiles)
    try:
        batch: list[tuple[Tile, NDArray[np.float32], NDArray[np.bool_]]] = []
        while True:
            item = tiles_q.get()
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                batch.append(item)
            if batch and (item is None or len(batch) == batch_size):
                run(batch)
                done += len(batch)
                batch = []
                if progress is not None:
                    progress(done, total)
            if item is None:
                break
        emit(stitcher.finish())
        sink.close()
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                tiles_q.get(timeout=0.1)
        reader.join()
        with contextlib.suppress(Exception):  # already raised, or the error in flight
            sink.close()
    return sink.counts


def scores_for_array(
    method: Segmenter, image: NDArray[np.float32], device: torch.device | None = None
) -> NDArray[np.float32]:
    """Whole-array inference: (C, H, W) normalised bands -> (K, H, W) scores (tests, notebooks)."""
    dev = device or method.device
    method.to(dev)
    with torch.inference_mode():
        out = method.predict_tiles(torch.from_numpy(image)[None].to(dev))
    scores: NDArray[np.float32] = out[0].float().cpu().numpy()
    return scores


__all__ = [
    "choose_device",
    "map_scene",
    "scores_for_array",
    "seed_everything",
]
