"""The Python API the CLI calls: segment, train, describe.

Functions take paths, open and close files themselves, and import the torch engine only when
called, so ``import lcmap.api`` stays light.

Example:
    >>> from lcmap import api
    >>> api.segment("scene.tif", "map.tif", classes=6)  # doctest: +SKIP
"""

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcmap import __version__
from lcmap.errors import (
    InvalidModelError,
    InvalidOptionError,
    InvalidSceneError,
    LcmapError,
)
from lcmap.io.scene import (
    MAPPING_GDAL_CACHE_MB,
    Normalisation,
    ReadSpec,
    band_facts,
    bounded_gdal_cache,
    check_georeference,
    check_input_file,
    is_virtual,
    open_scene,
    resolve_bands,
    scene_path,
    scene_statistics,
    warn_if_no_nodata,
)
from lcmap.io.stack import check_layout as check_stack_layout
from lcmap.io.stack import layout as stack_layout
from lcmap.io.stack import stacked
from lcmap.io.staging import check_distinct, check_output
from lcmap.io.vector import tagged_class_names
from lcmap.io.writer import (
    check_creation_options,
    check_map_output,
    default_colours,
    sidecar_path,
)
from lcmap.models import ModelHeader, file_sha256, warn_if_unlike
from lcmap.scale import PartsRun, check_scale_flags, open_client
from lcmap.tiling import TilePlan, plan_tiles
from lcmap.types import ProgressFn, start_phase

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from lcmap.methods.base import Segmenter

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


def _header(
    method: "Segmenter", bands: list[int], norm: Normalisation, facts: list[dict[str, Any]]
) -> ModelHeader:
    k = method.num_classes
    return ModelHeader(
        method=method.info.name,
        config=method.config(),
        num_classes=k,
        in_channels=len(bands),
        bands=bands,
        norm_low=list(norm.low),
        norm_high=list(norm.high),
        class_names=list(method.class_names or [f"class {i}" for i in range(k)]),
        colours=[list(c) for c in (method.colours or default_colours(k))],
        extra={**method.header(), **({"network": net} if (net := method.network()) else {})},
        band_facts=facts,
    )


def _fit(
    method: "Segmenter",
    scenes: Sequence[str | Path],
    spec: ReadSpec,
    labels: Sequence[str | Path] | None,
    seed: int,
    device: Any,
    progress: ProgressFn | None,
) -> None:
    from lcmap.sampling import open_sampler

    with open_sampler(scenes, spec, labels, seed) as sampler:
        _fit_with(method, sampler, seed, device, progress)


def _fit_pairs(
    method: "Segmenter",
    scenes: Sequence[str | Path],
    partners: Sequence[str | Path],
    spec: ReadSpec,
    seed: int,
    device: Any,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    """Fit on windows of scenes and their partners; what the model records of the partners."""
    from lcmap.methods import method_options
    from lcmap.sampling import open_pair_sampler

    if "pair_channels" not in {o.name for o in method_options(method.info.name)}:
        raise InvalidOptionError(f"method '{method.info.name}' does not learn from pairs.")
    with open_pair_sampler(scenes, partners, spec, seed) as sampler:
        _fit_with(method, sampler, seed, device, progress)
        other = sampler.partner_spec
        return {"partners": [Path(str(p)).name for p in partners], "bands": list(other.bands),
                "norm_low": list(other.norm.low), "norm_high": list(other.norm.high)}  # fmt: skip


def _fit_with(
    method: "Segmenter", sampler: Any, seed: int, device: Any, progress: ProgressFn | None
) -> None:
    from lcmap.engine import seed_everything

    seed_everything(seed)
    method.to(device)
    try:
        method.fit(sampler, progress)
    except ValueError as exc:
        if isinstance(exc, LcmapError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidSceneError(f"Cannot fit '{method.info.name}': {first}") from exc


def _build(name: str, classes: int | None, options: dict[str, Any] | None) -> "Segmenter":
    from lcmap.methods import get_method

    try:
        return get_method(name, num_classes=classes, **(options or {}))
    except TypeError as exc:
        raise LcmapError(f"Method '{name}' does not take these options: {exc}.") from exc
    except ValueError as exc:
        if isinstance(exc, LcmapError):
            raise
        raise LcmapError(f"Bad option for method '{name}': {exc}") from exc


#: Largest --halo: a read window of 2 * 4096 px around a tile is already 256 MB per band.
MAX_HALO = 4096


def check_run_numbers(
    *,
    tile: int | None = None,
    halo: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
) -> None:
    """Refuse tile, halo, batch and seed values that would fail or exhaust memory later.

    Raises:
        InvalidOptionError: naming the value and its range.
    """
    ranges = {
        "tile": (tile, 1, 2**31 - 1),  # larger than the scene: the tile shrinks to it
        "halo": (halo, 0, MAX_HALO),
        "batch_size": (batch_size, 1, 4096),
        "seed": (seed, 0, 2**32 - 1),
    }
    for name, (value, low, high) in ranges.items():
        if value is not None and not low <= value <= high:
            raise InvalidOptionError(f"{name}={value} is out of range; use {low} to {high}.")


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


def default_method(options: dict[str, Any] | None = None) -> tuple[str, str]:
    """The method ``lcmap segment`` uses when none is given, and why, in a few words.

    ``primaps`` (the best unsupervised method measured, ``benchmarks/README.md``) when its
    backbone's weights are on this machine or given with
    ``weights``; otherwise ``kmeans``, which needs none. Nothing is downloaded to decide.
    """
    from lcmap.methods.configs import DINO_KMEANS_BACKBONE
    from lcmap.nets.vit import cache_candidates, cache_dir, full_name, local_weights

    options = options or {}
    backbone = str(options.get("backbone") or DINO_KMEANS_BACKBONE)
    if options.get("weights"):
        return "primaps", f"backbone weights given: {options['weights']}"
    found = local_weights(backbone)
    if found is not None:
        return "primaps", f"{full_name(backbone)} weights found in {found.parent}"
    name = full_name(backbone)
    return "kmeans", (
        f"no {name} weights on this machine; for primaps put {cache_candidates(name)[-1]} in "
        f"{cache_dir()} or pass weights=PATH ('lcmap weights list' shows what is looked for)"
    )


def _segmenter_for(
    src: "DatasetReader",
    scene: str | Path,
    *,
    method: str,
    model: str | Path | None,
    classes: int | None,
    bands: list[int] | None,
    options: dict[str, Any] | None,
    seed: int,
    device: Any,
    progress: ProgressFn | None,
) -> tuple["Segmenter", ModelHeader, ReadSpec]:
    """The method that maps ``src``, its header and what it reads: the saved ``model``, or
    ``method`` fitted on the scene (with the scene's own normalisation)."""
    from lcmap.models import load_model

    if model is not None:
        seg, header = load_model(model, options)
        if classes is not None and classes != header.num_classes:
            raise LcmapError(
                f"{model} maps {header.num_classes} classes, not {classes}; drop classes= "
                "or train a new model with that many."
            )
        chosen = _model_bands(src, header, bands, seed)
        return seg, header, ReadSpec(tuple(chosen), header.read_spec().norm)
    chosen = resolve_bands(src, bands)
    seg = _build(method, classes, options)
    norm = scene_statistics([src], chosen, seed)
    if seg.info.needs_fit:
        start_phase(progress, f"fit {seg.info.name}")
        _fit(seg, [scene], ReadSpec(tuple(chosen), norm), None, seed, device, progress)
    header = _header(seg, chosen, norm, band_facts(src, chosen))
    return seg, header, ReadSpec(tuple(chosen), norm)


def _provenance(
    scene: str | Path,
    output: Path,
    seg: "Segmenter",
    header: ModelHeader,
    spec: ReadSpec,
    plan: TilePlan,
    seed: int,
    device: str,
) -> dict[str, Any]:
    """What the map's tags and sidecar record of how it was made (no model file yet)."""
    return {
        "lcmap_version": __version__,
        "scene": _relative(scene, output),
        "method": header.method,
        "config": header.config,
        "num_classes": seg.num_classes,
        "bands": list(spec.bands),
        "normalisation": {"low": list(spec.norm.low), "high": list(spec.norm.high)},
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


def _tile_halo(seg: "Segmenter", halo: int | None) -> int:
    """The halo to plan with: the method's, or ``halo`` when given.

    The halo is rounded up to the method's tile multiple (a pooling grid or window stride
    the tiles must share with the scene); a windowed method needs at least its own halo, or
    the windows over a core pixel would depend on the tile. A ``halo`` raised for either
    reason is logged as a warning.
    """
    if halo is None:
        return seg.halo
    multiple = seg.tile_multiple
    needed = -(-halo // multiple) * multiple
    if seg.window is not None:
        needed = max(needed, seg.window.halo)
    if needed != halo:
        windows = seg.window
        why = f" and its {windows.size} px windows need {windows.halo} px" if windows else ""
        log.warning(
            "halo %d px raised to %d px: this method's tiles share a %d px grid with the scene%s.",
            halo, needed, multiple, why,
        )  # fmt: skip
    return needed


def _model_bands(
    src: "DatasetReader", header: ModelHeader, bands: list[int] | None, seed: int
) -> list[int]:
    """The bands a saved model reads from ``src``; warns when they look like other bands.

    Raises:
        InvalidOptionError: ``bands`` differ from the model's (its classes were fitted on
            those bands; another order or sensor would silently mean other classes).
        InvalidModelError: the scene lacks one of the model's bands.
    """
    name, wanted = Path(src.name).name, ",".join(map(str, header.bands))
    if bands is not None and list(bands) != list(header.bands):
        raise InvalidOptionError(
            f"The '{header.method}' model reads bands {wanted} and its classes mean something "
            "only on those; bands cannot be chosen again with a model. Drop them, or give a "
            f"scene whose bands {wanted} are the model's (gdal_translate -b ... makes one)."
        )
    if max(header.bands) > src.count:
        raise InvalidModelError(
            f"{name} has {src.count} band{'s' if src.count > 1 else ''} but the "
            f"'{header.method}' model reads bands {wanted}; apply it to scenes with the band "
            "layout it was trained on."
        )
    warn_if_unlike(src, header, seed)
    return list(header.bands)


def segment(
    scene: str | Path,
    output: str | Path,
    *,
    method: str | None = None,
    model: str | Path | None = None,
    save_model: str | Path | None = None,
    classes: int | None = None,
    bands: list[int] | None = None,
    tile: int | None = None,
    halo: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    creation_options: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    part_rows: int | None = None,
    client: Any = None,
    stack: Sequence[str | Path] | None = None,
) -> SegmentResult:
    """Map ``scene`` to a land-cover label GeoTIFF on the same grid.

    Without ``model``, the method is fitted on windows drawn across this scene first (and
    saved to ``save_model`` if given); with ``model``, the saved method, bands and
    normalisation are applied as they are, so labels mean what they meant in the model.

    Args:
        scene: input raster (any GDAL format, any number of bands).
        output: label GeoTIFF to write (a COG; uint8, 255 = nodata; uint16 above 255 classes).
        method: registry name of the method (ignored with ``model``); None =
            :func:`default_method` (``primaps`` when its weights are here, else ``kmeans``).
        model: a model file from :func:`train` or ``save_model``.
        save_model: where to save the fitted model.
        classes: number of classes K (method default when None).
        bands: 1-based band indexes (all bands, or the model's, when None).
        tile: tile core size in pixels.
        halo: context pixels per side (the method's receptive field when None).
        batch_size: tiles per batch (None: 4 on the CPU, from free memory on CUDA).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: fixes sampling and initialisation.
        overwrite: replace existing outputs.
        creation_options: GDAL COG creation options overriding the defaults.
        progress: ``(done, total)`` callback.
        options: method options passed to its builder (e.g. ``{"smooth": 2}``); with
            ``model``, only the options that change how a trained model predicts (the
            method's ``apply_options``, e.g. ``{"crf": True}`` for stego).
        workers: map in parts on a new local Dask cluster of this many worker processes.
        scheduler: map in parts on the Dask cluster at this address.
        resume: map in parts (here unless ``workers``/``scheduler``) kept beside the output,
            reusing those a killed run of the same command finished (:mod:`lcmap.scale`).
        part_rows: tile rows a part (about 16 Mpx a part when None).
        client: a Dask client already open (many-scene runs share one).
        stack: co-registered rasters whose bands follow the scene's, reprojected onto its
            grid window by window (:mod:`lcmap.io.stack`); a model trained with a stack must
            be given the same stack.

    Returns:
        A summary of the map written.

    Raises:
        LcmapError: bad input, unknown method, existing output...; nothing is written then.

    Example:
        >>> segment("scene.tif", "landcover.tif", classes=6, seed=1)  # doctest: +SKIP
    """
    # Every check of the arguments and outputs comes first, before torch is imported.
    scene, output = scene_path(scene), Path(output)
    creation_options = check_creation_options(creation_options)
    stack = [scene_path(p) for p in stack or []]
    _check_segment_outputs(scene, output, model, save_model, overwrite, stack)
    check_run_numbers(tile=tile, halo=halo, batch_size=batch_size, seed=seed)
    check_scale_flags(workers, scheduler)
    if part_rows is not None and part_rows < 1:
        raise InvalidOptionError(f"part_rows={part_rows}: give at least 1 tile row.")
    method, choice = _choose_method(method, model, options)
    parts = None
    if workers or scheduler or resume or client is not None:
        request = {"scene": _identity(scene), "method": None if model else method,
                   "classes": classes, "bands": bands, "options": options or {}, "seed": seed,
                   "model": file_sha256(model) if model is not None else None}  # fmt: skip
        if stack:
            request["stack"] = [_identity(p) for p in stack]
        parts = PartsRun(output, request, resume)

    from lcmap.engine import choose_device
    from lcmap.io.writer import publish

    dev = choose_device(device)
    with contextlib.ExitStack() as opened:
        if parts is not None:
            opened.push(_abandon_parts(parts))
        opened.enter_context(bounded_gdal_cache(GDAL_CACHE_MB))
        # With a stack, everything reads the VRT of the scene's and the stack's bands.
        read = opened.enter_context(stacked(scene, stack)) if stack else scene
        src = opened.enter_context(open_scene(read))
        check_georeference(src)
        warn_if_no_nodata(src)
        fit_start = time.perf_counter()
        given: dict[str, Any] = {"model": model, "classes": classes, "bands": bands,
                                 "options": options}  # fmt: skip
        cached = parts.cached_model() if parts is not None else None
        if cached is not None:  # a killed run of this command fitted it already
            given = {"model": cached, "classes": None, "bands": None, "options": None}
        seg, header, spec = _segmenter_for(
            src, read, method=method, seed=seed, device=dev, progress=progress, **given
        )
        _warn_coarse_patches(seg, src)
        if stack and given["model"] is None:
            header.extra["stack"] = stack_layout(stack)
        model_path, staged = _stage_model(opened, seg, header, model, save_model)
        fit_seconds = time.perf_counter() - fit_start
        job = _MapJob(read, src, seg, header, spec, batch_size, progress)
        plan = plan_tiles(src.width, src.height, tile or DEFAULT_TILE, _tile_halo(seg, halo),
                          seg.tile_multiple)  # fmt: skip
        provenance = _provenance(scene, output, seg, header, spec, plan, seed, str(dev))
        if stack:
            provenance["stack"] = [_relative(p, output) for p in stack]
        if model_path is not None:
            provenance["model"] = _relative(model_path, output)
            provenance["model_sha256"] = file_sha256(staged or model_path)
        start = time.perf_counter()
        cluster = _PartsCluster(workers, scheduler, part_rows, client, device)
        counts = _map_and_write(
            job, plan, output, provenance, creation_options, overwrite, dev, parts, cluster
        )
        if staged is not None:
            publish(staged, save_model)  # type: ignore[arg-type]
        if parts is not None:
            parts.clean()
    return SegmentResult(
        output=output,
        sidecar=sidecar_path(output),
        model=model_path,
        num_classes=seg.num_classes,
        class_pixels=[int(n) for n in counts[:-1]],
        nodata_pixels=int(counts[-1]),
        width=plan.width,
        height=plan.height,
        seconds=time.perf_counter() - start,
        fit_seconds=fit_seconds,
        device=str(dev),
        provenance=provenance,
        method_choice=f"{method} ({choice})" if choice else "",
        parts_reused=parts.reused if parts is not None else 0,
        parts_computed=parts.computed if parts is not None else 0,
    )


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


#: Ground side of one ViT patch above which a ViT method's map is said to be coarse: between
#: the patch size measured good (7 m at 0.5 m) and those that looked worse than k-means
#: (``benchmarks/pictures.py``).
COARSE_PATCH_M = 20.0


def _warn_coarse_patches(seg: "Segmenter", src: "DatasetReader") -> None:
    """Say in one line when a ViT method sees the scene in patches of much ground."""
    vit = getattr(seg, "vit", None)
    crs = src.crs
    if vit is None or crs is None or not crs.is_projected:
        return
    units = (crs.linear_units or "").lower()
    if units not in ("metre", "meter", "m"):
        return
    ground = float(vit.patch_size) * max(abs(src.res[0]), abs(src.res[1]))
    if ground > COARSE_PATCH_M:
        log.warning(
            "%s sees this scene in %d px patches, %.0f m of ground at %.3g m pixels: thin "
            "features (rivers, roads) will be lost; the kmeans method keeps them.",
            seg.info.name,
            vit.patch_size,
            ground,
            max(abs(src.res[0]), abs(src.res[1])),
        )


def _choose_method(
    method: str | None, model: str | Path | None, options: dict[str, Any] | None
) -> tuple[str, str]:
    """The method to fit (the model's own when ``model``) and why it was chosen ("" when
    given); see :func:`default_method`."""
    if method is not None:
        return method, ""
    if model is not None:
        return "kmeans", ""
    method, choice = default_method(options)
    if choice:
        log.info("method: %s (%s)", method, choice)
    return method, choice


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


@dataclass
class _PartsCluster:
    """Where parts are computed: a new local cluster, a scheduler, or a client given."""

    workers: int | None
    scheduler: str | None
    part_rows: int | None
    client: Any
    device: str  # as asked for (``auto``...): each worker chooses its own


def _map_and_write(
    job: _MapJob,
    plan: TilePlan,
    output: Path,
    provenance: dict[str, Any],
    creation_options: dict[str, str],
    overwrite: bool,
    device: Any,
    parts: PartsRun | None,
    cluster: _PartsCluster,
) -> Any:
    """Map the scene's tiles (streamed to the COG, or in parts assembled into it) and commit
    the COG; returns the pixel count per class and of nodata."""
    from lcmap.engine import map_scene
    from lcmap.io.writer import LabelWriter
    from lcmap.stitch import NODATA, label_dtype

    src, progress, name = job.src, job.progress, Path(job.scene).name
    log.info(
        "mapping %s: %dx%d px, %d tiles of %d px (halo %d) on %s",
        name, src.width, src.height, len(plan.tiles), plan.tile, plan.halo, device,
    )  # fmt: skip
    part_files = None
    if parts is not None:
        parts.prepare()
        # A cluster of its own is closed before the COG is assembled from the parts.
        own = open_client(cluster.workers, cluster.scheduler)
        with contextlib.nullcontext(cluster.client) if cluster.client else own as dask_client:
            start_phase(progress, f"map {name} in parts")
            part_files, counts = parts.run(
                scene=job.scene, seg=job.seg, header=job.header, spec=job.spec, plan=plan,
                crs=src.crs, transform=src.transform, batch_size=job.batch_size,
                device=cluster.device, client=dask_client, tile_rows=cluster.part_rows,
                progress=progress,
            )  # fmt: skip
    dtype = label_dtype(job.seg.num_classes)
    with LabelWriter(
        output,
        width=src.width,
        height=src.height,
        crs=src.crs,
        transform=src.transform,
        dtype=dtype,
        nodata=NODATA[dtype],
        class_names=job.header.class_names,
        colours=[tuple(c) for c in job.header.colours],  # type: ignore[misc]
        tags=src.tags(),  # the scene's own (AREA_OR_POINT, SYNTHETIC_GEOREF...) carry over
        creation_options=creation_options,
        overwrite=overwrite,
        sidecar=provenance,
        parts=part_files,
    ) as writer:
        if parts is None:
            start_phase(progress, f"map {name}")
            counts = map_scene(
                job.scene, job.seg, plan, job.spec, writer,
                batch_size=job.batch_size, device=device, progress=progress,
            )  # fmt: skip
        start_phase(progress, "write COG")
        if progress is not None:
            progress(0, 1)
        writer.commit()
        if progress is not None:
            progress(1, 1)
    return counts


def train(
    scenes: Sequence[str | Path],
    output: str | Path,
    *,
    method: str,
    classes: int | None = None,
    bands: list[int] | None = None,
    labels: Sequence[str | Path] | None = None,
    partners: Sequence[str | Path] | None = None,
    stack: Sequence[str | Path] | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    options: dict[str, Any] | None = None,
) -> ModelHeader:
    """Fit a method on windows drawn across ``scenes`` and save it as a model file.

    The normalisation is estimated over all scenes and stored in the model, so every scene
    mapped with it is stretched the same way and its labels keep their meaning.

    Args:
        scenes: one or more rasters with the same band layout.
        output: the model file to write (``.lcmap``).
        method: registry name.
        classes: number of classes K.
        bands: 1-based band indexes (all when None).
        labels: optional label rasters aligned with ``scenes`` (255 = unlabelled).
        partners: per scene, the same ground seen by another sensor or on another date, read
            on the scene's grid through a warped view (any CRS and pixel size): positive
            pairs for methods that learn from pairs (``simclr``).
        stack: co-registered rasters whose bands follow the (one) scene's, reprojected onto
            its grid (:mod:`lcmap.io.stack`); the model records their layout.
        seed: fixes sampling and initialisation.
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: replace an existing model file.
        progress: ``(done, total)`` callback.
        options: method options passed to its builder.

    Returns:
        The saved model's header.

    Example:
        >>> train(["a.tif", "b.tif"], "stego.lcmap", method="stego", classes=8)  # doctest: +SKIP
    """
    if not scenes:
        raise LcmapError("No scene given; pass at least one raster to train on.")
    if stack and len(scenes) != 1:
        raise LcmapError(f"a stack goes with one scene; {len(scenes)} were given.")
    inputs = [*scenes, *(labels or []), *(partners or []), *(stack or [])]
    output = check_output(output, overwrite, inputs=inputs)
    check_run_numbers(seed=seed)

    from lcmap.engine import choose_device
    from lcmap.models import save_model

    dev = choose_device(device)
    with contextlib.ExitStack() as opened:
        if stack:  # the scene's bands and the stack's, read through one VRT
            scenes = [opened.enter_context(stacked(scene_path(scenes[0]), list(stack)))]
        srcs = [opened.enter_context(open_scene(p)) for p in scenes]
        counts = {s.count for s in srcs}
        chosen = [resolve_bands(s, bands) for s in srcs]
        if bands is None and len(counts) > 1:
            raise InvalidSceneError(
                f"The scenes have different band counts ({sorted(counts)}); "
                "pass bands=... to pick the same bands from each."
            )
        for s in srcs:
            warn_if_no_nodata(s)
        norm = scene_statistics(srcs, chosen[0], seed)
        facts = band_facts(srcs[0], chosen[0])
        seg = _build(method, classes, options)
        spec = ReadSpec(tuple(chosen[0]), norm)
        if partners is None:
            _fit(seg, scenes, spec, labels, seed, dev, progress)
            header = _header(seg, chosen[0], norm, facts)
        else:
            pairs = _fit_pairs(seg, scenes, partners, spec, seed, dev, progress)
            header = _header(seg, chosen[0], norm, facts)
            header.extra["pairs"] = pairs
        if stack:
            header.extra["stack"] = stack_layout(stack)
    save_model(output, seg, header)
    log.info("saved %s model to %s", method, output)
    return header


def describe(path: str | Path) -> dict[str, Any]:
    """Describe a scene, a label map or a model file as a JSON-friendly dict.

    Example:
        >>> describe("landcover.tif")["kind"]  # doctest: +SKIP
        'label map'
    """
    from lcmap.models import NotAModelError, read_header

    path = scene_path(path)
    if isinstance(path, Path):
        check_input_file(path, "Input")
        # A .lcmap file is a model whatever is wrong with it: its own error, not GDAL's.
        try:
            header = read_header(path)
        except NotAModelError:
            if path.suffix == ".lcmap":
                raise
        else:
            return {"kind": "model", "path": str(path), "sha256": file_sha256(path),
                    **asdict(header)}  # fmt: skip
    with open_scene(path) as src:
        tags = src.tags()
        info: dict[str, Any] = {
            "kind": "label map" if "LCMAP_METHOD" in tags else "scene",
            "path": str(path),
            "driver": src.driver,
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": list(src.dtypes),
            "nodata": src.nodata,
            "crs": src.crs.to_string() if src.crs else None,
            "transform": list(src.transform)[:6],
            "bounds": list(src.bounds),
            "res": list(src.res),
            "block_shapes": [list(b) for b in src.block_shapes],
            "overviews": src.overviews(1),
            "compression": src.compression.value if src.compression else None,
            "descriptions": list(src.descriptions),
        }
        if info["kind"] == "label map":
            names = tagged_class_names(path) or {}
            info["class_names"] = [names[i] for i in sorted(names)]
            with contextlib.suppress(ValueError, RecursionError):  # a damaged tag is left out
                info["provenance"] = json.loads(tags.get("LCMAP_PROVENANCE", "{}"))
        return info
