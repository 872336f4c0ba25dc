"""Scale-out: one scene's map computed in parts (here or on Dask workers), resumable.

``lcmap segment SCENE -o MAP --workers N`` (or ``--scheduler ADDRESS``, or ``--resume``)
maps the scene in parts (:mod:`lcmap.scale.parts`) kept in ``MAP.parts/`` beside the output,
then GDAL assembles them into the COG through a VRT, and the folder is removed. A run killed
part-way leaves the folder; the same command with ``--resume`` reuses every part whose record
matches (same model bytes, plan, bands and normalisation) and computes the rest, and with
the model fitted by a killed run kept there too, it does not fit again.

Without those flags lcmap maps in this process, streaming rows, as before; both give the same
map (tests/scale/).
"""

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lcmap.errors import OutputPathError
from lcmap.io.scene import ReadSpec
from lcmap.io.staging import publish
from lcmap.scale.cluster import check_scale_flags, open_client, run_parts
from lcmap.scale.parts import Part, PartJob, finished_counts, part_files, plan_parts
from lcmap.tiling import TilePlan
from lcmap.types import ProgressFn

if TYPE_CHECKING:
    from lcmap.io.writer import MapGrid
    from lcmap.methods.base import Segmenter
    from lcmap.models import ModelHeader

log = logging.getLogger(__name__)

__all__ = ["PartsRun", "check_scale_flags", "open_client", "parts_folder"]

_RUN = "run.json"
_MODEL = "model.lcmap"


def parts_folder(output: str | Path) -> Path:
    """Where the parts of ``output`` are kept while it is computed: ``map.tif.parts/``."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


@dataclass
class PartsRun:
    """One map computed in parts.

    Args:
        output: the map being made.
        request: what identifies the run (scene, method, options, seed...): a resumed run
            reuses the folder only when this is the same.
        resume: reuse finished parts (else the folder is started afresh).
        tile_rows: tile rows a part (about 16 Mpx a part when None).
    """

    output: Path
    request: Mapping[str, Any]
    resume: bool
    tile_rows: int | None = None

    def __post_init__(self) -> None:
        self.folder = parts_folder(self.output)
        self.reused = 0
        self.computed = 0
        self.prepared = False  # the folder is this run's (made or taken over by prepare())
        self._request = json.loads(json.dumps(self.request, sort_keys=True, default=str))

    def cached_model(self) -> Path | None:
        """The model a killed run of this same request fitted, when resuming one."""
        model = self.folder / _MODEL
        if self.resume and self._matches() and model.is_file():
            return model
        return None

    def _matches(self) -> bool:
        try:
            return bool(json.loads((self.folder / _RUN).read_text()) == self._request)
        except (OSError, ValueError):
            return False

    def prepare(self) -> None:
        """Make the folder ready: kept when resuming the same request, else started afresh.

        Raises:
            OutputPathError: the folder's name is taken by something lcmap did not make.
        """
        folder = self.folder
        if folder.exists() and not (self.resume and self._matches()):
            if not folder.is_dir() or not ((folder / _RUN).is_file() or not any(folder.iterdir())):
                raise OutputPathError(
                    f"{folder} exists and was not made by lcmap; move it away (lcmap keeps a "
                    "map's parts there while computing it)."
                )
            if self.resume:
                log.warning(
                    "%s is from another run (other inputs or options): starting again.", folder
                )
            shutil.rmtree(folder)
        folder.mkdir(exist_ok=True)
        self.prepared = True
        (folder / _RUN).write_text(json.dumps(self._request, sort_keys=True) + "\n")

    def model_bytes(self, seg: "Segmenter", header: "ModelHeader") -> tuple[str, bytes]:
        """The model every part is computed with, kept in the folder: ``(sha256, bytes)``."""
        from lcmap.models import stage_model

        path = self.folder / _MODEL
        if self.cached_model() is None:
            with stage_model(path, seg, header) as tmp:
                publish(tmp, path)
        data = path.read_bytes()
        return hashlib.sha256(data).hexdigest(), data

    def run(
        self,
        *,
        scene: str | Path,
        seg: "Segmenter",
        header: "ModelHeader",
        spec: ReadSpec,
        plan: TilePlan,
        grid: "MapGrid",
        batch_size: int | None,
        device: str,
        client: Any,
        progress: ProgressFn | None,
    ) -> tuple[list[tuple[Path, int]], NDArray[np.int64]]:
        """Compute the parts still missing; returns every part's ``(file, first row)`` and
        the map's pixel counts per class (nodata last)."""
        from lcmap import __version__

        model = self.model_bytes(seg, header)
        key = {
            "sha": model[0],
            "plan": [plan.width, plan.height, plan.tile, plan.halo, plan.read_size],
            "bands": list(spec.bands),
            "norm": [list(spec.norm.low), list(spec.norm.high)],
            "lcmap": __version__,
        }
        parts = plan_parts(plan, self.tile_rows)
        job = PartJob(str(scene), plan, spec, self.folder, key, grid, batch_size, device)
        counts = np.zeros(seg.num_classes + 1, dtype=np.int64)
        todo: list[Part] = []
        for part in parts:
            found = finished_counts(self.folder, part, key) if self.resume else None
            if found is None:
                todo.append(part)
            else:
                counts += found
        self.reused, self.computed = len(parts) - len(todo), len(todo)
        if self.reused:
            log.info("resuming: %d of %d parts reused", self.reused, len(parts))
        if todo:
            counts += run_parts(client, job, todo, model, progress)
        return [(part_files(self.folder, p)[0], p.first_row) for p in parts], counts

    def clean(self) -> None:
        """Remove the folder once the map is published."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def abandon(self) -> None:
        """The run failed or was stopped: keep the parts for ``--resume`` (and say where), or
        remove them when the run did not ask to resume."""
        if not self.prepared:
            return
        if self.resume:
            log.warning(
                "finished parts kept in %s: the same command with --resume goes on.", self.folder
            )
        else:
            self.clean()
