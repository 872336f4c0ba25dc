"""Many scenes, one meaning: one model fitted across all of them, one map per scene, a mosaic.

``lcmap segment A.tif B.tif ... -o OUTDIR/`` fits the method once on windows drawn across
every scene (or takes ``--model``), saves it as ``OUTDIR/model.lcmap`` and applies it to each
scene, so label 3 means the same in every map. A scene that fails is reported by name and
the others still finish. When the maps share a CRS, ``OUTDIR/mosaic.vrt`` shows them as one.
"""

import glob
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import rasterio

from lcmap.errors import (
    InputNotFoundError,
    InvalidOptionError,
    InvalidSceneError,
    LcmapError,
    OutputPathError,
)
from lcmap.io.cog_options import check_creation_options
from lcmap.io.mosaic import MOSAIC, check_mosaic_outputs, write_mosaic
from lcmap.io.scene import open_scene, scene_path
from lcmap.io.staging import check_local, check_output, output_folder
from lcmap.io.writer import check_map_output
from lcmap.scale.cluster import open_client
from lcmap.types import start_phase
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec, ScaleSpec, TilingSpec

if TYPE_CHECKING:
    from lcmap.workflows.segment import SegmentResult

log = logging.getLogger(__name__)

MODEL = "model.lcmap"


@dataclass
class ScenesResult:
    """What :func:`segment_many` produced.

    Attributes:
        maps: one result per scene mapped.
        failed: ``(scene, reason)`` for each scene that failed.
        model: the model every map was made with.
        mosaic: the VRT over the maps, when they share a CRS.
        method_choice: which method was fitted and why, when none was given
            (:func:`lcmap.workflows.fitting.default_method`); "" otherwise.
    """

    maps: list["SegmentResult"] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    model: Path | None = None
    mosaic: Path | None = None
    method_choice: str = ""


def expand_scenes(given: Sequence[str]) -> list[str]:
    """The scenes named by ``given``: paths, ``@list.txt`` files of paths (one a line, ``#``
    comments; ``@-`` reads the list from stdin, relative paths from the working folder), and
    quoted globs (``'tiles/*.tif'``, for lists too long for a shell).

    Raises:
        InputNotFoundError: a list file is missing, or a glob matches nothing.
    """
    scenes: list[str] = []
    for item in given:
        if item == "@-":  # the list on stdin (find ... | lcmap segment @- -o maps/)
            text, base = sys.stdin.read(), Path(".")
        elif item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise InputNotFoundError(f"Scene list {listing} not found.")
            text, base = listing.read_text(encoding="utf-8-sig"), listing.parent
        if item.startswith("@"):
            lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
            scenes += [
                str(base / line) if not Path(line).is_absolute() else line for line in lines if line
            ]
        elif glob.has_magic(item) and not Path(item).exists():
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise InputNotFoundError(f"No scene matches {item}.")
            scenes += found
        else:
            scenes.append(item)
    if not scenes:
        raise InputNotFoundError("No scene given.")
    return scenes


def map_names(scenes: Sequence[str], outdir: Path) -> list[Path]:
    """``OUTDIR/<scene stem>.tif`` for each scene.

    Raises:
        InvalidOptionError: two scenes would give the same map name.
    """
    outputs = [outdir / f"{Path(s).stem}.tif" for s in scenes]
    seen: dict[Path, str] = {}
    for scene, out in zip(scenes, outputs, strict=True):
        if out in seen:
            raise InvalidOptionError(
                f"{seen[out]} and {scene} would both be mapped to {out}; rename one, or map "
                "them in separate runs."
            )
        seen[out] = scene
    return outputs


def _fit_shared(readable: list[str], model_out: Path, fitted: MethodSpec, run: RunSpec) -> str:
    """Fit one model across the readable scenes and save it to ``model_out``; which method
    was chosen and why when none was given ("" otherwise)."""
    from lcmap.workflows.fitting import choose_method
    from lcmap.workflows.train import train

    # One model for every scene: the first scene decides an automatic choice.
    name, choice = choose_method(fitted.name, None, fitted.option_dict, readable[0])
    start_phase(run.progress, f"fit {name} on {len(readable)} scenes")
    train(
        readable, OutputSpec(model_out, overwrite=True), method=replace(fitted, name=name), run=run
    )
    return f"{name} ({choice})" if choice else ""


def _map_one(
    scene: str,
    out: OutputSpec,
    mapping: tuple[MethodSpec, TilingSpec, ScaleSpec, RunSpec],
    result: "ScenesResult",
) -> None:
    """Map ``scene`` with the shared model into ``out`` as ``mapping`` says (method options,
    tiling, scale, run), adding the map to ``result``, or its failure: the other scenes still
    finish."""
    from lcmap.workflows.segment import segment

    fitted, tiling, scale, run = mapping
    assert result.model is not None
    try:
        check_map_output(out.path, out.overwrite, inputs=[scene, result.model])
        mapped = segment(
            scene, out, method=fitted, model=result.model, tiling=tiling, scale=scale, run=run
        )
        result.maps.append(mapped)
    except Exception as exc:  # reported by name; the other scenes still finish
        log.warning("%s failed (%s); going on with the other scenes", scene, exc)
        result.failed.append((scene, str(exc).splitlines()[0] if str(exc) else repr(exc)))


def segment_many(
    scenes: Sequence[str],
    outdir: "OutputSpec | str | Path",
    *,
    method: "MethodSpec | str | None" = None,
    model: str | Path | None = None,
    save_model: str | Path | None = None,
    tiling: TilingSpec = TilingSpec(),
    scale: ScaleSpec = ScaleSpec(),
    run: RunSpec = RunSpec(),
) -> ScenesResult:
    """Map every scene with one model into ``outdir`` (see the module doc).

    Args:
        scenes: the rasters (same band layout).
        outdir: folder of the maps (made when missing; its parent must exist), whether to
            replace existing maps and model, and the maps' creation options.
        method: the method fitted across the scenes (ignored with ``model``; None = the
            default), with K, bands and its options.
        model: a saved model to apply instead of fitting.
        save_model: where the fitted model goes (``OUTDIR/model.lcmap`` when None).
        tiling: tile size and halo of every map.
        scale: map each scene in parts on Dask; ``resume`` also keeps the finished maps made
            with the same model.
        run: device, seed, batch size, progress callback (one phase per scene).

    Returns:
        The maps, the failures, the model and the mosaic.

    Raises:
        LcmapError: bad arguments or outputs (before any work), or the fit failed.
    """
    out, fitted = OutputSpec.of(outdir), MethodSpec.of(method)
    overwrite, resume = out.overwrite, scale.resume
    outdir = _check_folder(out.path)
    with output_folder(outdir):
        check_creation_options(dict(out.creation_options))  # before the fit, not per map
        outputs = map_names(scenes, outdir)
        check_mosaic_outputs(outdir, overwrite or resume, inputs=scenes)
        if not resume:  # every map's name is checked before the fit: a clash loses no work
            for scene, output in zip(scenes, outputs, strict=True):
                check_map_output(output, overwrite, inputs=[scene])
        model_out = Path(save_model) if save_model is not None else outdir / MODEL
        result = ScenesResult(model=Path(model) if model is not None else model_out)
        readable = _readable(scenes, result.failed)
    if model is None:
        check_output(model_out, overwrite or resume, inputs=scenes)
        result.method_choice = _fit_shared(readable, model_out, fitted, run)
        fitted = MethodSpec()  # classes, bands and options are all in the model now
    assert result.model is not None
    from lcmap.models import file_sha256

    sha = file_sha256(result.model)
    with open_client(scale.workers, scale.scheduler) as client:
        mapping = (
            fitted,
            tiling,
            ScaleSpec(resume=resume, part_rows=scale.part_rows, client=client),
            run,
        )
        for scene, output in zip(scenes, outputs, strict=True):
            if scene not in readable:
                continue
            if resume and _made_with(output, sha):
                log.info("%s: done by an earlier run, kept", output)
                continue
            _map_one(scene, replace(out, path=output), mapping, result)
    made = [o for o in outputs if o.is_file()]
    result.mosaic = write_mosaic(made, outdir / MOSAIC) if made else None
    return result


def _check_folder(outdir: Path) -> Path:
    """The output folder of several maps: a local folder, or a name for one in a folder."""
    check_local(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputPathError(f"{outdir} is not a folder; with several scenes -o names a folder.")
    if not outdir.parent.is_dir():
        raise OutputPathError(f"Output folder {outdir.parent} does not exist; create it first.")
    return outdir


def _readable(scenes: Sequence[str], failed: list[tuple[str, str]]) -> list[str]:
    """The scenes that open; an unreadable one fails alone (added to ``failed``), before the
    fit. Raises when none opens."""
    readable = []
    for scene in scenes:
        try:
            with open_scene(scene_path(scene)):
                readable.append(scene)
        except LcmapError as exc:
            log.warning("%s skipped: %s", scene, exc)
            failed.append((scene, str(exc)))
    if not readable:
        reasons = "; ".join(r for _, r in failed)
        raise InvalidSceneError(f"No scene could be read: {reasons}")
    return readable


def _made_with(output: Path, sha: str) -> bool:
    """Whether ``output`` is a finished map made with the model of sha256 ``sha``."""
    try:
        with rasterio.open(output) as src:
            return bool(src.tags().get("LCMAP_MODEL_SHA256") == sha)
    except rasterio.errors.RasterioIOError:
        return False
