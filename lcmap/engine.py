"""Where raster I/O meets torch: sampling windows for fitting, and the tiled mapping loop.

A reader thread reads and normalises tile windows ahead of the device; the main thread runs
batches through the method (bf16 autocast on CUDA) and hands labels to the stitcher, whose
finished rows go straight to the writer. Nothing here holds more than a band of rows.
"""

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from rasterio.windows import Window

from lcmap.errors import InvalidSceneError, LcmapError
from lcmap.io.scene import Normalisation, open_scene, read_window, sample_windows
from lcmap.io.writer import LabelWriter
from lcmap.methods.base import ProgressFn, SampleBatch, Segmenter
from lcmap.methods.sampling import MIN_VALID_FRACTION
from lcmap.stitch import Stitcher
from lcmap.tiling import Tile, TilePlan
from lcmap.types import UNLABELLED

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
        raise LcmapError(f"--device {name} was asked for but no CUDA device is available; use cpu.")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise LcmapError(f"Unknown device '{name}'; use auto, cpu or cuda.") from exc


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generators (methods should still use their own)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class SceneSampler:
    """A :class:`~lcmap.methods.base.WindowSampler` over open scenes (and optional labels).

    Args:
        scenes: open datasets with at least ``max(bands)`` bands.
        bands: 1-based band indexes to read.
        norm: the normalisation applied to every window.
        labels: optional single-band label datasets aligned with ``scenes`` (255 = unlabelled,
            as is their nodata).
        seed: seeds window positions.
    """

    def __init__(
        self,
        scenes: Sequence[DatasetReader],
        bands: list[int],
        norm: Normalisation,
        labels: Sequence[DatasetReader] | None = None,
        seed: int = 0,
    ) -> None:
        self.scenes = list(scenes)
        self.bands = bands
        self.norm = norm
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None:
            if len(self.labels) != len(self.scenes):
                raise InvalidSceneError(
                    f"{len(self.labels)} label rasters for {len(self.scenes)} scenes; "
                    "give one --labels per scene."
                )
            for scene, lab in zip(self.scenes, self.labels, strict=True):
                if (lab.width, lab.height) != (scene.width, scene.height):
                    raise InvalidSceneError(
                        f"Labels {Path(lab.name).name} are {lab.width}x{lab.height} but scene "
                        f"{Path(scene.name).name} is {scene.width}x{scene.height}; "
                        "labels must be on the scene's grid."
                    )
        self.rng = np.random.default_rng(seed)

    @property
    def in_channels(self) -> int:
        """Number of bands a window has."""
        return len(self.bands)

    @property
    def valid_pixels(self) -> int:
        """Pixels over all scenes (nodata is not counted out: that would need a full read)."""
        return int(sum(s.width * s.height for s in self.scenes))

    def sample(self, count: int, size: int) -> SampleBatch:
        """``count`` random ``size`` x ``size`` windows, mostly with data."""
        area = np.array([s.width * s.height for s in self.scenes], dtype=np.float64)
        images, valids, labels = [], [], []
        for _ in range(count):
            i = int(self.rng.choice(len(self.scenes), p=area / area.sum()))
            src = self.scenes[i]
            for _ in range(_SAMPLE_TRIES):
                (window,) = sample_windows(src, 1, size, self.rng)
                window = Window(window.col_off, window.row_off, size, size)
                data, valid = read_window(src, window, self.bands)
                if valid.mean() >= MIN_VALID_FRACTION:
                    break
            images.append(self.norm.apply(data, valid))
            valids.append(valid)
            if self.labels is not None:
                labels.append(self._read_labels(self.labels[i], window))
        return SampleBatch(
            image=torch.from_numpy(np.stack(images)),
            valid=torch.from_numpy(np.stack(valids)),
            labels=torch.from_numpy(np.stack(labels)) if labels else None,
        )

    @staticmethod
    def _read_labels(src: DatasetReader, window: Window) -> NDArray[np.int64]:
        """Labels over ``window``; 255 outside the raster and where it has no data."""
        out = np.full((int(window.height), int(window.width)), UNLABELLED, dtype=np.int64)
        inner = window.intersection(Window(0, 0, src.width, src.height))
        r, c = int(inner.row_off - window.row_off), int(inner.col_off - window.col_off)
        h, w = int(inner.height), int(inner.width)
        data = src.read(1, window=inner).astype(np.int64)
        data[src.read_masks(1, window=inner) == 0] = UNLABELLED
        out[r : r + h, c : c + w] = data
        return out


@contextlib.contextmanager
def open_sampler(
    scenes: Sequence[str | Path],
    bands: list[int],
    norm: Normalisation,
    labels: Sequence[str | Path] | None = None,
    seed: int = 0,
) -> Iterator[SceneSampler]:
    """Open scenes (and label rasters) and yield a :class:`SceneSampler` over them."""
    with contextlib.ExitStack() as stack:
        srcs = [stack.enter_context(open_scene(p)) for p in scenes]
        labs = [stack.enter_context(open_scene(p)) for p in labels] if labels else None
        yield SceneSampler(srcs, bands, norm, labs, seed)


def _read_tiles(
    path: str | Path,
    tiles: Sequence[Tile],
    bands: list[int],
    norm: Normalisation,
    out: "queue.Queue[Any]",
    stop: threading.Event,
) -> None:
    """Reader thread: read and normalise every tile in order; ``None`` marks the end."""
    try:
        with open_scene(path) as src:
            for tile in tiles:
                if stop.is_set():
                    return
                data, valid = read_window(src, tile.read, bands)
                out.put((tile, norm.apply(data, valid), valid))
        out.put(None)
    except BaseException as exc:  # handed to the main thread, which re-raises it
        out.put(exc)


def map_scene(
    path: str | Path,
    method: Segmenter,
    plan: TilePlan,
    bands: list[int],
    norm: Normalisation,
    writer: LabelWriter,
    *,
    batch_size: int,
    device: torch.device,
    progress: ProgressFn | None = None,
) -> NDArray[np.int64]:
    """Predict every tile of ``plan``, stitch, and stream finished rows into ``writer``.

    Returns:
        Pixel count per class (index K counts nodata).
    """
    method.to(device)
    stitcher = Stitcher(plan, method.num_classes)
    counts = np.zeros(method.num_classes + 1, dtype=np.int64)
    # A few batches ahead: enough to hide read latency, small enough to bound memory.
    tiles_q: queue.Queue[Any] = queue.Queue(maxsize=max(2, 2 * batch_size))
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_tiles, args=(path, plan.tiles, bands, norm, tiles_q, stop), daemon=True
    )
    autocast: Any = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )

    label_torch_dtype = torch.uint8 if stitcher.dtype == np.uint8 else torch.int32

    def emit(rows: Iterator[tuple[int, NDArray[np.unsignedinteger]]]) -> None:
        for row, labels in rows:
            writer.write_rows(row, labels)
            found = np.bincount(labels.ravel(), minlength=stitcher.nodata + 1)
            counts[: method.num_classes] += found[: method.num_classes]
            counts[-1] += found[stitcher.nodata]

    def run(batch: list[tuple[Tile, NDArray[np.float32], NDArray[np.bool_]]]) -> None:
        x = torch.from_numpy(np.stack([b[1] for b in batch])).to(device, non_blocking=True)
        with torch.inference_mode(), autocast:
            # The argmax runs on the device, only labels come back.
            labels = method.predict_tile_labels(x).to(label_torch_dtype).cpu().numpy()
        for i, (tile, _, valid) in enumerate(batch):
            emit(stitcher.add_labels(tile, labels[i], valid))

    reader.start()
    done, total = 0, len(plan.tiles)
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
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                tiles_q.get(timeout=0.1)
        reader.join()
    return counts


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
    "SceneSampler",
    "choose_device",
    "map_scene",
    "open_sampler",
    "scores_for_array",
    "seed_everything",
]
