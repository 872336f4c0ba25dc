"""Where raster I/O meets torch: the device, and the tiled mapping loop.

Reader threads read and normalise tile windows ahead of the device (one on the CPU, up to four
on a GPU, ``$LCMAP_READ_THREADS`` to choose); the main thread runs batches through the method
and hands labels to the stitcher; a writer thread writes the stitcher's finished rows (GDAL
compresses them without holding Python's lock) while the next batch is scored. Nothing here
holds more than a few bands of rows and two batches of tiles.

On CUDA: tiles are stacked into pinned host memory and copied without blocking, the method
runs under bf16 autocast, and without a batch size one is chosen from the device's free memory
(:func:`probe_batch_size`). ``-v`` logs the share of the mapping loop the model kept the device
busy (CUDA events around each batch; on the CPU, the main thread's time in the model).
"""

import contextlib
import logging
import math
import os
import queue
import threading
import time
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

#: Tiles a batch on the CPU when none is given.
CPU_BATCH = 4
#: Largest batch chosen from the device's memory. A large GPU's memory alone would choose batches
#: so large that a scene of a few hundred tiles makes a handful of them, and reading the next
#: one no longer overlaps the model's work (slower, measured by ``benchmarks/gpu_suite.sh``).
MAX_AUTO_BATCH = 32
#: Share of the device's free memory a chosen batch may take (the rest: allocator slack).
DEVICE_MEMORY_SHARE = 0.7
#: Host memory the tiles read ahead may hold (two batches), which also bounds the batch size.
PREFETCH_BYTES = 1 << 30


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
    """Reader thread: read and normalise every tile in order (its own dataset handle)."""
    try:
        with open_scene(path) as src:
            for tile in tiles:
                if stop.is_set():
                    return
                out.put((tile, *spec.read(src, tile.read)))
    except BaseException as exc:  # handed to the main thread, which re-raises it
        out.put(exc)


class _Prefetch:
    """Tiles read and normalised on ``threads`` threads, handed out in order.

    Tile ``i`` is read by thread ``i % threads`` into that thread's queue, so taking the queues
    in turn gives the tiles in order with no reordering buffer; at most ``depth`` tiles are
    read ahead in all. A reader's error is raised where its tile would have been.
    """

    def __init__(
        self, path: str | Path, tiles: Sequence[Tile], spec: ReadSpec, threads: int, depth: int
    ) -> None:
        n = max(1, min(threads, len(tiles)))
        self.total = len(tiles)
        self._stop = threading.Event()
        self._queues: list[queue.Queue[Any]] = [
            queue.Queue(maxsize=max(1, depth // n)) for _ in range(n)
        ]
        self._threads = [
            threading.Thread(
                target=_read_tiles, args=(path, tiles[i::n], spec, q, self._stop), daemon=True
            )
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> Iterator[tuple[Tile, NDArray[np.float32], NDArray[np.bool_]]]:
        for i in range(self.total):
            item = self._queues[i % len(self._queues)].get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the readers (unblocking any waiting on a full queue) and join them."""
        self._stop.set()
        for thread, q in zip(self._threads, self._queues, strict=True):
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    q.get(timeout=0.1)
            thread.join()


def batch_size_for(free: int, fixed: int, per_window: int, tile_bytes: int, tiles: int) -> int:
    """The batch size a device with ``free`` bytes takes: the most windows whose memory
    (``fixed + n * per_window``) fits :data:`DEVICE_MEMORY_SHARE` of it and whose read-ahead
    (two batches of ``tile_bytes`` host tiles) fits :data:`PREFETCH_BYTES`; at least 1, at
    most :data:`MAX_AUTO_BATCH` and the number of ``tiles``."""
    by_device = (int(free * DEVICE_MEMORY_SHARE) - fixed) // max(1, per_window)
    by_host = PREFETCH_BYTES // max(1, 2 * tile_bytes)
    return int(max(1, min(by_device, by_host, MAX_AUTO_BATCH, tiles)))


def _autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def probe_batch_size(
    method: Segmenter, shape: tuple[int, ...], device: torch.device, tiles: int
) -> int:
    """A batch size for ``method`` on CUDA ``device``, for tiles of ``shape`` (C, H, W).

    The method's peak memory is measured on one and on two zero tiles (its memory per window
    and its fixed part), then :func:`batch_size_for` fits that to the memory free now.
    """
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    peaks = []
    for n in (1, 2):
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        x = torch.zeros((n, *shape), device=device)
        with torch.inference_mode(), _autocast(device):
            method.predict_tile_labels(x)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        del x
    per_window = max(1, peaks[1] - peaks[0])
    size = batch_size_for(
        free, max(0, peaks[0] - per_window), per_window, 4 * math.prod(shape), tiles
    )
    log.info(
        "batch size %d: %.0f MiB free on %s, %.0f MiB per tile of %s",
        size,
        free / 2**20,
        device,
        per_window / 2**20,
        "x".join(map(str, shape)),
    )
    return size


class _BusyClock:
    """Seconds the model kept the device busy: CUDA events around each batch's work on the
    GPU (copy in, forward, argmax); on the CPU the main thread's time in the model."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds = 0.0
        self._events: list[tuple[Any, Any]] = []

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if self.cuda:
            self.busy()  # fold the batches done so far (complete: their labels came back)
            begin, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))  # type: ignore[no-untyped-call]
            begin.record()
            yield
            end.record()
            self._events.append((begin, end))
        else:
            start = time.perf_counter()
            yield
            self.seconds += time.perf_counter() - start

    def busy(self) -> float:
        """Busy seconds so far (waits for the device's recorded batches)."""
        for begin, end in self._events:
            end.synchronize()
            self.seconds += begin.elapsed_time(end) / 1000.0
        self._events.clear()
        return self.seconds


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

    def put_rows(self, rows: Iterator[tuple[int, NDArray[np.unsignedinteger]]]) -> None:
        """:meth:`put` every finished ``(row, labels)`` band of ``rows``."""
        for row, labels in rows:
            self.put(row, labels)

    def close(self) -> None:
        """Wait for every row to be written; raise the writer's error if there was one."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


class _BatchRunner:
    """Predicts a batch of tiles on the device (the argmax there too: only labels come back)
    and hands the rows they finish to the writer thread."""

    def __init__(
        self,
        method: Segmenter,
        device: torch.device,
        stitcher: Stitcher,
        sink: "_WriterThread",
        clock: "_BusyClock",
    ) -> None:
        self.method, self.device, self.clock = method, device, clock
        self.stitcher, self.sink = stitcher, sink
        self.label_dtype = torch.uint8 if stitcher.dtype == np.uint8 else torch.int32
        self.pinned: torch.Tensor | None = None  # CUDA: the host batch, reused (page-locked)

    def _to_device(self, arrays: list[NDArray[np.float32]]) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(arrays))
        pinned = self.pinned
        if pinned is None or pinned.shape[0] < len(arrays) or pinned.shape[1:] != arrays[0].shape:
            pinned = self.pinned = torch.empty((len(arrays), *arrays[0].shape), pin_memory=True)
        host = pinned[: len(arrays)]
        np.stack(arrays, out=host.numpy())
        # Safe to refill next batch: the labels' copy back in __call__ waits for this one.
        return host.to(self.device, non_blocking=True)

    def __call__(self, batch: list[tuple[Tile, NDArray[np.float32], NDArray[np.bool_]]]) -> None:
        with self.clock.batch():
            x = self._to_device([b[1] for b in batch])
            with torch.inference_mode(), _autocast(self.device):
                labels_dev = self.method.predict_tile_labels(x).to(self.label_dtype)
        labels = labels_dev.cpu().numpy()
        for i, (tile, _, valid) in enumerate(batch):
            self.sink.put_rows(self.stitcher.add_labels(tile, labels[i], valid))


def map_scene(
    path: str | Path,
    method: Segmenter,
    plan: TilePlan,
    spec: ReadSpec,
    writer: RowWriter,
    *,
    batch_size: int | None,
    device: torch.device,
    progress: ProgressFn | None = None,
    tile_rows: range | None = None,
    read_threads: int | None = None,
) -> NDArray[np.int64]:
    """Predict every tile of ``plan``, stitch, and stream finished rows into ``writer``.

    Args:
        batch_size: tiles per batch; None = :data:`CPU_BATCH` on the CPU, and on CUDA what
            :func:`probe_batch_size` measures.
        tile_rows: only these tile rows (one part of the scene, :mod:`lcmap.scale`); their
            tiles are the same as in a whole-scene run, so is their part of the map.
        read_threads: threads reading tiles ahead (None: ``$LCMAP_READ_THREADS``, else 1 on
            the CPU and up to 4 on CUDA).

    Returns:
        Pixel count per class (index K counts nodata).
    """
    method.to(device)
    stitcher = Stitcher(plan, method.num_classes, tile_rows)
    tiles: Sequence[Tile] = plan.tiles
    if tile_rows is not None:
        tiles = plan.tiles[tile_rows.start * plan.cols : tile_rows.stop * plan.cols]
    method.prepare_mapping(len(tiles) * plan.read_size**2)
    cuda = device.type == "cuda"
    if read_threads is None:
        read_threads = int(os.environ.get("LCMAP_READ_THREADS", "0")) or (
            min(4, os.cpu_count() or 1) if cuda else 1
        )
    clock = _BusyClock(device)
    sink = _WriterThread(writer, method.num_classes, stitcher.nodata)
    run = _BatchRunner(method, device, stitcher, sink, clock)
    reads: _Prefetch | None = None
    try:
        size = batch_size or CPU_BATCH
        if batch_size is None and cuda and tiles:
            with open_scene(path) as src:  # the first tile's shape, to measure the method on
                shape = spec.read(src, tiles[0].read)[0].shape
            size = probe_batch_size(method, shape, device, len(tiles))
        # Two batches ahead: enough to hide read latency, small enough to bound memory.
        reads = _Prefetch(path, tiles, spec, read_threads, depth=max(2, 2 * size))
        start, done = time.perf_counter(), 0
        batch: list[tuple[Tile, NDArray[np.float32], NDArray[np.bool_]]] = []
        for item in reads:
            batch.append(item)
            if len(batch) == size or done + len(batch) == len(tiles):
                run(batch)
                done += len(batch)
                batch = []
                if progress is not None:
                    progress(done, len(tiles))
        sink.put_rows(stitcher.finish())
        sink.close()
        wall = time.perf_counter() - start
        log.info(
            "model busy %.0f%% of the %.1f s mapping loop on %s (%d tiles, batches of %d, "
            "readers: %d)",
            100 * clock.busy() / max(wall, 1e-9),
            wall,
            device,
            len(tiles),
            size,
            read_threads,
        )
    finally:
        if reads is not None:
            reads.close()
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
    "batch_size_for",
    "choose_device",
    "map_scene",
    "probe_batch_size",
    "scores_for_array",
    "seed_everything",
]
