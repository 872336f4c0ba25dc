"""The segment workflow: one scene mapped by a method fitted on it, or by a saved model, in one
process or in parts (:mod:`lcmap.scale`), written as a COG with its sidecars."""

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcmap import __version__
from lcmap.io.cog_options import check_creation_options
from lcmap.io.scene import (
    MAPPING_GDAL_CACHE_MB,
    ReadSpec,
    bounded_gdal_cache,
    check_georeference,
    is_virtual,
    open_scene,
    scene_path,
    warn_if_no_nodata,
)
from lcmap.io.stack import check_layout as check_stack_layout
from lcmap.io.stack import layout as stack_layout
from lcmap.io.stack import stacked
from lcmap.io.staging import check_distinct, check_output
from lcmap.io.writer import check_map_output, sidecar_path
from lcmap.models import ModelHeader, file_sha256
from lcmap.scale import PartsRun, open_client
from lcmap.tiling import TilePlan, plan_tiles
from lcmap.types import ProgressFn, start_phase

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from lcmap.methods.base import Segmenter

from lcmap.workflows.fitting import choose_method, segmenter_for
from lcmap.workflows.scene_checks import check_row_memory, tile_halo, warn_coarse_patches
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec, ScaleSpec, TilingSpec

log = logging.getLogger(__name__)


#: Tile core size in pixels when none is given: a 512-px COG block, a few MB a tile.
DEFAULT_TILE = 512


#: GDAL block cache in MB while mapping.
GDAL_CACHE_MB = MAPPING_GDAL_CACHE_MB


@dataclass
class SegmentResult:
    """What :func:`segment` produced.

    Attributes:
        output: the label GeoTIFF.
        sidecar: the provenance JSON beside it.
        model: the model file saved or applied, if any.
        num_classes: K.
        class_pixels: pixel count per class id.
        nodata_pixels: pixels left as nodata.
        width: scene width.
        height: scene height.
        seconds: wall time of the mapping pass (fitting excluded).
        fit_seconds: wall time of fitting (0 with a model).
        device: the torch device used.
        method_choice: why the method was chosen when none was given (:func:`default_method`),
            else empty.
        parts_reused: parts a resumed run found finished (:mod:`lcmap.scale`).
        parts_computed: parts computed by this run (0 when mapped in one pass).
    """

    output: Path
    sidecar: Path
    model: Path | None
    num_classes: int
    class_pixels: list[int]
    nodata_pixels: int
    width: int
    height: int
    seconds: float
    fit_seconds: float
    device: str
    provenance: dict[str, Any] = field(default_factory=dict)
    method_choice: str = ""
    parts_reused: int = 0
    parts_computed: int = 0

    @property
    def classes_used(self) -> int:
        """Number of classes that label at least one pixel."""
        return sum(1 for n in self.class_pixels if n > 0)


def _relative(path: str | Path, output: Path) -> str:
    """``path`` as the output's provenance records it: relative to the output's folder when
    both are local files (a map and its scene moved together stay linked), else as given."""
    if isinstance(path, str) and is_virtual(path):
        return path
    try:
        return os.path.relpath(Path(path).resolve(), output.resolve().parent)
    except ValueError:  # another drive (Windows)
        return str(path)


def _identity(scene: str | Path) -> Any:
    """What tells a scene file from another for a resumed run: path, size, modification."""
    if isinstance(scene, str) and is_virtual(scene):
        return scene
    stat = Path(scene).stat()
    return [str(Path(scene).resolve()), stat.st_size, stat.st_mtime_ns]


def _provenance(
    scene: str | Path, output: Path, job: "_MapJob", plan: TilePlan, run: RunSpec, device: str
) -> dict[str, Any]:
    """What the map's tags and sidecar record of how it was made (no model file yet)."""
    seg, header, spec, seed = job.seg, job.header, job.spec, run.seed
    return {
        "lcmap_version": __version__,
        "scene": _relative(scene, output),
        "method": header.method,
        "config": header.config,
        "num_classes": len(header.class_names),  # after any naming and merging (relabel)
        "bands": list(spec.bands),
        "normalisation": {
            "low": list(spec.norm.low),
            "high": list(spec.norm.high),
            "clip": spec.norm.clip,
        },
        "tile": plan.tile,
        "halo": plan.halo,
        "stitch": "crop_centre",
        "window": asdict(seg.window) if seg.window else None,
        "seed": seed,
        "device": device,
        "model": None,
        "model_sha256": None,
        "class_names": header.class_names,
        "extra": header.extra,
    }


def segment(
    scene: str | Path,
    output: "OutputSpec | str | Path",
    *,
    method: "MethodSpec | str | None" = None,
    model: str | Path | None = None,
    save_model: str | Path | None = None,
    stack: Sequence[str | Path] = (),
    tiling: TilingSpec = TilingSpec(),
    scale: ScaleSpec = ScaleSpec(),
    run: RunSpec = RunSpec(),
) -> SegmentResult:
    """Map ``scene`` to a land-cover label GeoTIFF on the same grid.

    Without ``model``, the method is fitted on windows drawn across this scene first (and
    saved to ``save_model`` if given); with ``model``, the saved method, bands and
    normalisation are applied as they are, so labels mean what they meant in the model.

    Args:
        scene: input raster (any GDAL format, any number of bands).
        output: the label COG to write (uint8, 255 = nodata), or an :class:`OutputSpec`.
        method: a registry name, or a :class:`MethodSpec` with K, bands and options; None:
            :func:`default_method`. With ``model``, only the options that change how a
            trained model predicts (e.g. ``{"crf": True}`` for stego).
        model: a model file from :func:`train` or ``save_model``.
        save_model: where to save the fitted model.
        stack: co-registered rasters whose bands follow the scene's (:mod:`lcmap.io.stack`);
            a model trained with a stack needs the same stack.
        tiling: tile size and halo.
        scale: map in parts on Dask (:mod:`lcmap.scale`), or resume such a run.
        run: device, seed, tiles per batch, progress callback.

    Returns:
        A summary of the map written.
    Raises:
        LcmapError: bad input, unknown method, existing output...; nothing is written.

    Example:
        >>> segment("scene.tif", "landcover.tif", method=MethodSpec(classes=6))  # doctest: +SKIP
    """
    # Every check of the arguments and outputs comes first, before torch is imported.
    out, asked = OutputSpec.of(output), MethodSpec.of(method)
    scene, stack = scene_path(scene), [scene_path(p) for p in stack]
    out = replace(out, creation_options=check_creation_options(dict(out.creation_options)))
    _check_segment_outputs(scene, out.path, model, save_model, out.overwrite, stack)
    name, choice = choose_method(asked.name, model, asked.option_dict, scene)
    fitted = replace(asked, name=name)
    parts = _parts_run(scene, out.path, fitted, model, stack, run.seed, scale)

    from lcmap.engine import choose_device
    from lcmap.io.staging import publish

    dev = choose_device(run.device)
    with contextlib.ExitStack() as opened:
        if parts is not None:
            opened.push(_abandon_parts(parts))
        read, src = _open_for_mapping(opened, scene, stack, tiling)
        fit_start = time.perf_counter()
        seg, header, spec = _fit_or_load(src, read, fitted, model, parts, stack, run, dev)
        warn_coarse_patches(seg, src)
        model_path, staged = _stage_model(opened, seg, header, model, save_model)
        fit_seconds = time.perf_counter() - fit_start
        job = _MapJob(read, src, seg, header, spec, run.batch_size, run.progress)
        halo = tile_halo(seg, tiling.halo)
        plan = plan_tiles(
            src.width, src.height, tiling.tile or DEFAULT_TILE, halo, seg.tile_multiple
        )
        provenance = _provenance(scene, out.path, job, plan, run, str(dev))
        _record_inputs(provenance, out.path, stack, model_path, staged)
        start = time.perf_counter()
        counts = _map_and_write(job, plan, out, provenance, dev, parts, scale, run.device)
        if staged is not None:
            publish(staged, save_model)  # type: ignore[arg-type]
        if parts is not None:
            parts.clean()
    choice = f"{name} ({choice})" if choice else ""
    seconds = (time.perf_counter() - start, fit_seconds)
    return _result(
        out.path, model_path, header, counts, plan, provenance, parts, seconds, dev, choice
    )


def _result(
    output: Path,
    model_path: Path | None,
    header: ModelHeader,
    counts: Any,
    plan: TilePlan,
    provenance: dict[str, Any],
    parts: "PartsRun | None",
    seconds: tuple[float, float],
    dev: Any,
    method_choice: str,
) -> SegmentResult:
    """The summary of a map written: ``counts`` per class then nodata, ``seconds`` of mapping
    and of fitting."""
    k = len(header.class_names)
    return SegmentResult(
        output=output,
        sidecar=sidecar_path(output),
        model=model_path,
        num_classes=k,
        class_pixels=[int(n) for n in counts[:k]],
        nodata_pixels=int(counts[-1]),
        width=plan.width,
        height=plan.height,
        seconds=seconds[0],
        fit_seconds=seconds[1],
        device=str(dev),
        provenance=provenance,
        method_choice=method_choice,
        parts_reused=parts.reused if parts is not None else 0,
        parts_computed=parts.computed if parts is not None else 0,
    )


def _open_for_mapping(
    opened: contextlib.ExitStack, scene: str | Path, stack: list[str | Path], tiling: TilingSpec
) -> tuple[str | Path, "DatasetReader"]:
    """The path mapping reads (with a stack, the VRT of the scene's and the stack's bands) and
    the scene opened from it, checked for memory and georeferencing, inside ``opened``."""
    opened.enter_context(bounded_gdal_cache(GDAL_CACHE_MB))
    read = opened.enter_context(stacked(scene, stack)) if stack else scene
    src = opened.enter_context(open_scene(read))
    check_row_memory(src, tiling.tile or DEFAULT_TILE)
    check_georeference(src)
    if stack:  # the stack's VRT carries the scene's mask, declared or not: ask the scene
        with open_scene(scene) as own:
            warn_if_no_nodata(own)
    else:
        warn_if_no_nodata(src)
    return read, src


def _fit_or_load(
    src: "DatasetReader",
    read: str | Path,
    fitted: MethodSpec,
    model: str | Path | None,
    parts: "PartsRun | None",
    stack: list[str | Path],
    run: RunSpec,
    dev: Any,
) -> tuple["Segmenter", ModelHeader, ReadSpec]:
    """The segmenter, its header and read spec: the model a killed run of this command fitted
    already (``--resume``), ``model``, or ``fitted`` fitted on the scene now."""
    cached = parts.cached_model() if parts is not None else None
    if cached is not None:
        return segmenter_for(src, read, MethodSpec(fitted.name), cached, run, dev)
    seg, header, spec = segmenter_for(src, read, fitted, model, run, dev)
    if stack and model is None:
        header.extra["stack"] = stack_layout(stack)
    return seg, header, spec


def _record_inputs(
    provenance: dict[str, Any],
    output: Path,
    stack: list[str | Path],
    model_path: Path | None,
    staged: Path | None,
) -> None:
    """Add the stack and the model file (relative to the map, with its sha256) to
    ``provenance``."""
    if stack:
        provenance["stack"] = [_relative(p, output) for p in stack]
    if model_path is not None:
        provenance["model"] = _relative(model_path, output)
        provenance["model_sha256"] = file_sha256(staged or model_path)


def _parts_run(
    scene: str | Path,
    output: Path,
    fitted: MethodSpec,
    model: str | Path | None,
    stack: Sequence[str | Path],
    seed: int,
    scale: ScaleSpec,
) -> PartsRun | None:
    """The parts of a run mapped in parts, identified by what makes its map (a resumed run
    reuses parts only when all of it is the same); None when mapped in one pass."""
    if not scale.in_parts:
        return None
    request = {
        "scene": _identity(scene),
        "method": None if model else fitted.name,
        "classes": fitted.classes,
        "bands": fitted.band_list,
        "options": fitted.option_dict or {},
        "seed": seed,
        "model": file_sha256(model) if model is not None else None,
    }
    if stack:
        request["stack"] = [_identity(p) for p in stack]
    return PartsRun(output, request, scale.resume, scale.part_rows)


def _check_segment_outputs(
    scene: str | Path,
    output: Path,
    model: str | Path | None,
    save_model: str | Path | None,
    overwrite: bool,
    stack: Sequence[str | Path],
) -> None:
    """Refuse a map or model output that exists (without ``overwrite``), is an input, or
    names another output of the run; and a stack that the model was not trained with."""
    inputs = [scene, *stack] + ([Path(model)] if model is not None else [])
    if model is not None:
        from lcmap.models import read_header

        check_stack_layout(read_header(model).extra.get("stack"), stack)
    check_map_output(output, overwrite, inputs=inputs)
    if save_model is not None:
        check_output(save_model, overwrite, inputs=inputs)
        check_distinct(output, sidecar_path(output), save_model)


def _stage_model(
    stack: contextlib.ExitStack,
    seg: "Segmenter",
    header: ModelHeader,
    model: str | Path | None,
    save_model: str | Path | None,
) -> tuple[Path | None, Path | None]:
    """The model file the map records, and the staged copy of ``save_model``, which is
    published with the map, only when the whole run succeeded (like the map)."""
    from lcmap.models import stage_model

    if save_model is None:
        return (Path(model) if model is not None else None), None
    return Path(save_model), stack.enter_context(stage_model(save_model, seg, header))


@dataclass
class _MapJob:
    """What mapping one scene needs, whatever runs it (here, or in parts)."""

    scene: str | Path
    src: "DatasetReader"
    seg: "Segmenter"
    header: ModelHeader
    spec: ReadSpec
    batch_size: int | None  # None: the engine chooses (lcmap.engine.map_scene)
    progress: ProgressFn | None


def _abandon_parts(parts: PartsRun) -> Callable[..., bool]:
    """An exit callback: a failed or stopped run abandons its parts (kept only for --resume)."""

    def on_exit(kind: type[BaseException] | None, *_: Any) -> bool:
        if kind is not None:
            parts.abandon()
        return False

    return on_exit


def _map_and_write(
    job: _MapJob,
    plan: TilePlan,
    out: OutputSpec,
    provenance: dict[str, Any],
    device: Any,
    parts: PartsRun | None,
    scale: ScaleSpec,
    worker_device: str,
) -> Any:
    """Map the scene's tiles (streamed to the COG, or in parts assembled into it) and commit
    the COG; returns the pixel count per class and of nodata. ``device`` maps here;
    ``worker_device`` is the device as asked for (``auto``...): each Dask worker chooses its
    own."""
    from lcmap.engine import map_scene
    from lcmap.io.writer import LabelWriter, MapGrid
    from lcmap.stitch import label_dtype

    src, progress, name = job.src, job.progress, Path(job.scene).name
    log.info(
        "mapping %s: %dx%d px, %d tiles of %d px (halo %d) on %s",
        name,
        src.width,
        src.height,
        len(plan.tiles),
        plan.tile,
        plan.halo,
        device,
    )
    part_files = None
    if parts is not None:
        parts.prepare()
        # A cluster of its own is closed before the COG is assembled from the parts.
        own = open_client(scale.workers, scale.scheduler)
        with contextlib.nullcontext(scale.client) if scale.client else own as dask_client:
            start_phase(progress, f"map {name} in parts")
            part_files, counts = parts.run(
                scene=job.scene,
                seg=job.seg,
                header=job.header,
                spec=job.spec,
                plan=plan,
                grid=MapGrid.of(src),
                batch_size=job.batch_size,
                device=worker_device,
                client=dask_client,
                progress=progress,
            )
    with LabelWriter(
        out.path,
        grid=MapGrid.of(src),
        dtype=label_dtype(job.seg.num_classes),
        class_names=job.header.class_names,
        colours=[tuple(c) for c in job.header.colours],  # type: ignore[misc]
        tags=src.tags(),  # the scene's own (AREA_OR_POINT, SYNTHETIC_GEOREF...) carry over
        creation_options=out.creation_options,
        overwrite=out.overwrite,
        sidecar=provenance,
        parts=part_files,
    ) as writer:
        if parts is None:
            start_phase(progress, f"map {name}")
            counts = map_scene(
                job.scene,
                job.seg,
                plan,
                job.spec,
                writer,
                batch_size=job.batch_size,
                device=device,
                progress=progress,
            )
        start_phase(progress, "write COG")
        if progress is not None:
            progress(0, 1)
        writer.commit()
        if progress is not None:
            progress(1, 1)
    return counts
