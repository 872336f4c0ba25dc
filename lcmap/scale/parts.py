"""Parts of one scene's map: bands of tile rows, computed anywhere, kept for a resumed run.

A part is a run of whole tile rows. Its tiles are exactly the tiles a whole-scene run maps
(same plan, same halo read from the scene), so its rows of the map are the same pixels
whichever process computes them, and the parts need no overlap: each tile already holds the
context its core needs (blending methods blend inside the tile's read window).

Each part is written to ``<folder>/part-NNNNN.tif`` and then ``part-NNNNN.json``, which records
the part's *key* (the model's sha256, its options, the plan, the bands and normalisation) and
its pixel counts. The JSON is written last, so a part whose JSON is there and matches is
complete: ``--resume`` reuses it, and computes the rest.
"""

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from lcmap.io.scene import MAPPING_GDAL_CACHE_MB, ReadSpec, bounded_gdal_cache
from lcmap.io.staging import publish, temp_path
from lcmap.io.writer import STAGING_PROFILE, MapGrid
from lcmap.tiling import TilePlan

if TYPE_CHECKING:
    from lcmap.methods.base import Segmenter

#: Pixels a part covers when the number of tile rows is not given: about 16 Mpx (tens of
#: seconds of CPU work for kmeans, a few MB of labels), so a 16000 x 16000 scene makes 16 parts.
PART_PIXELS = 16_000_000


@dataclass(frozen=True)
class Part:
    """One part: tile rows ``tile_rows`` of the plan, scene rows ``first_row`` onwards."""

    index: int
    tile_rows: range
    first_row: int
    rows: int

    @property
    def name(self) -> str:
        """File stem of the part: ``part-00012``."""
        return f"part-{self.index:05d}"


def plan_parts(plan: TilePlan, tile_rows: int | None = None) -> list[Part]:
    """Cut ``plan`` into parts of ``tile_rows`` tile rows (about :data:`PART_PIXELS` if None).

    The layout depends only on the plan and ``tile_rows``, never on the number of workers,
    so a run resumed on another cluster finds the same parts.
    """
    if tile_rows is None:
        tile_rows = max(1, round(PART_PIXELS / (plan.tile * plan.width)))
    if tile_rows < 1:
        raise ValueError(f"a part needs at least one tile row, got {tile_rows}")
    parts = []
    for index, start in enumerate(range(0, plan.rows, tile_rows)):
        rows = range(start, min(start + tile_rows, plan.rows))
        first = start * plan.tile
        parts.append(Part(index, rows, first, min(rows.stop * plan.tile, plan.height) - first))
    return parts


@dataclass(frozen=True)
class PartJob:
    """What a worker needs to compute any part of one scene: no pixels and no model (the
    model's bytes travel once per worker, see :func:`compute_part`)."""

    scene: str
    plan: TilePlan
    spec: ReadSpec
    folder: Path
    key: Mapping[str, Any]
    grid: MapGrid
    batch_size: int | None
    device: str


def part_files(folder: Path, part: Part) -> tuple[Path, Path]:
    """The part's label file and its JSON record."""
    return folder / f"{part.name}.tif", folder / f"{part.name}.json"


def finished_counts(folder: Path, part: Part, key: Mapping[str, Any]) -> list[int] | None:
    """The pixel counts of ``part`` when a finished part with this ``key`` is in ``folder``."""
    tif, record = part_files(folder, part)
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != json.loads(json.dumps(key, default=str)) or not tif.is_file():
        return None
    if data.get("rows") != [part.first_row, part.rows]:
        return None
    return [int(n) for n in data["counts"]]


class PartWriter:
    """Write one part's label rows to a temporary GeoTIFF; :meth:`commit` publishes it."""

    def __init__(self, job: PartJob, part: Part, dtype: np.dtype[Any], nodata: int) -> None:
        self.part = part
        self.target, _ = part_files(job.folder, part)
        self.tmp = temp_path(self.target, ".tif")
        window = Window(0, part.first_row, job.plan.width, part.rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self._dst = rasterio.open(
                self.tmp,
                "w",
                width=job.plan.width,
                height=part.rows,
                dtype=dtype.name,
                nodata=nodata,
                crs=job.grid.crs,
                transform=rasterio.windows.transform(window, job.grid.transform),
                **STAGING_PROFILE,
            )

    def write_rows(self, row: int, labels: NDArray[np.unsignedinteger]) -> None:
        """Write a band of labels starting at *scene* row ``row``."""
        window = Window(0, row - self.part.first_row, labels.shape[1], labels.shape[0])
        self._dst.write(labels, 1, window=window)

    def commit(self) -> None:
        """Close the file and rename it into place."""
        self._dst.close()
        publish(self.tmp, self.target)

    def close(self) -> None:
        """Drop an unfinished part."""
        self._dst.close()
        self.tmp.unlink(missing_ok=True)


#: Models loaded in this (worker) process, by sha256: each is read once, not once a task.
_MODELS: dict[str, "Segmenter"] = {}


def _model(model: tuple[str, bytes]) -> "Segmenter":
    from lcmap.methods.loading import load_model

    sha, data = model
    if sha not in _MODELS:
        _MODELS.clear()  # one model at a time is what a run needs
        tmp = temp_path(Path(os.environ.get("TMPDIR", "/tmp")) / f"lcmap-model-{sha[:12]}")
        try:
            tmp.write_bytes(data)
            _MODELS[sha], _ = load_model(tmp)
        finally:
            tmp.unlink(missing_ok=True)
    return _MODELS[sha]


def _worker_device(device: str) -> str:
    """``auto`` on a Dask worker with several GPUs: the worker's own GPU (its name mod count)."""
    if device != "auto":
        return device
    import torch

    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return device
    count = torch.cuda.device_count()
    if count > 1 and isinstance(name, int):
        return f"cuda:{name % count}"
    return device


def compute_part(job: PartJob, part: Part, model: tuple[str, bytes]) -> list[int]:
    """Map one part (on whatever process runs it) and publish its file and record.

    Args:
        job: the scene's job.
        part: the part.
        model: ``(sha256, bytes)`` of the model file.

    Returns:
        Pixel count per class, nodata last.
    """
    from lcmap.engine import choose_device, map_scene
    from lcmap.stitch import NODATA, label_dtype

    seg = _model(model)
    dtype = label_dtype(seg.num_classes)
    writer = PartWriter(job, part, dtype, NODATA[dtype])
    try:
        with bounded_gdal_cache(MAPPING_GDAL_CACHE_MB):
            counts = map_scene(
                job.scene,
                seg,
                job.plan,
                job.spec,
                writer,
                batch_size=job.batch_size,
                device=choose_device(_worker_device(job.device)),
                tile_rows=part.tile_rows,
            )
        writer.commit()
    except BaseException:
        writer.close()
        raise
    _, record = part_files(job.folder, part)
    tmp = temp_path(record, ".json")
    tmp.write_text(
        json.dumps(
            {"key": job.key, "rows": [part.first_row, part.rows], "counts": counts.tolist()},
            default=str,
        )
    )
    publish(tmp, record)
    return [int(n) for n in counts]
