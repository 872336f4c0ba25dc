"""``lcmap segment``: map a scene to a land-cover GeoTIFF."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import (
    cli_message,
    command,
    echo,
    echo_error,
    parse_bands,
    parse_key_values,
    reported_errors,
)
from lcmap.cli._progress import progress_bar
from lcmap.workflows.specs import RunSpec

#: The help panel of the options that map a scene in parts on Dask.
SCALE_OUT = "Scale-out (Dask)"

Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Map in parts on a new local Dask cluster of N worker processes \\[default: this "
        "process, no parts].",
        min=1,
        rich_help_panel=SCALE_OUT,
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Map in parts on the Dask cluster at ADDRESS (tcp://...).",
        rich_help_panel=SCALE_OUT,
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Map in parts kept in OUTPUT.parts/ and reuse those a killed run of the same "
        "command finished (with several scenes: keep the maps already made).",
        rich_help_panel=SCALE_OUT,
    ),
]
PartRows = Annotated[
    int | None,
    typer.Option(
        "--part-rows",
        help="Tile rows per part \\[default: about 16 Mpx a part].",
        min=1,
        rich_help_panel=SCALE_OUT,
    ),
]


Scenes = Annotated[
    list[str],
    typer.Argument(
        help="Input rasters: files, GDAL virtual paths (/vsizip/...) or URLs; @list.txt "
        "reads paths from a file, a quoted glob ('tiles/*.tif') is expanded by lcmap.",
        show_default=False,
        metavar="SCENE",
    ),
]
Output = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        help="Output label GeoTIFF (COG); a folder (OUTDIR/) with several scenes.",
    ),
]
Method = Annotated[
    str | None,
    typer.Option(
        "--method",
        "-m",
        help="Segmentation method (see 'lcmap methods'), or auto \\[default: auto: kmeans "
        "for pixels of 5 m or more or bands named without blue; else primaps when its ViT "
        "weights are on this machine, else kmeans].",
    ),
]
Model = Annotated[
    Path | None,
    typer.Option("--model", help="Apply a saved model (.lcmap) instead of fitting one."),
]
SaveModel = Annotated[
    Path | None,
    typer.Option(
        "--save-model",
        help="Save the fitted model \\[default with several scenes: OUTDIR/model.lcmap].",
        dir_okay=False,
    ),
]
Co = Annotated[
    list[str] | None,
    typer.Option("--co", help="GDAL COG creation option KEY=VALUE (repeatable)."),
]
Preview = Annotated[
    Path | None,
    typer.Option(
        "--preview",
        help="Also write a PNG of the scene and the map side by side, with the legend.",
        dir_okay=False,
    ),
]


@command("segment", run=True)
def segment(
    scenes: Scenes,
    output: Output,
    method: Method = None,
    model: Model = None,
    save_model: SaveModel = None,
    classes: opt.Classes = None,
    bands: opt.Bands = None,
    tile: opt.Tile = None,
    halo: opt.Halo = None,
    batch_size: opt.MapBatchSize = None,
    weights: opt.Weights = None,
    param: opt.Params = None,
    stack: opt.Stack = None,
    co: Co = None,
    workers: Workers = None,
    scheduler: Scheduler = None,
    resume: Resume = False,
    part_rows: PartRows = None,
    preview: Preview = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
) -> None:
    """Segment SCENE into a land-cover map on the same grid.

    Without --model the method is fitted on windows drawn across the scene, then the scene is
    mapped tile by tile into a Cloud-Optimised GeoTIFF on the input's grid: uint8 labels from 0
    (255 = nodata), a colour table, class names, provenance tags, and a .lcmap.json sidecar.

    Without --method (or -m auto): kmeans for pixels of 5 m or more, or false colour (no band
    named blue); else primaps when its weights are here. One line says which and why.

    With several scenes, -o names a folder: one model fitted across them all (OUTDIR/model.lcmap)
    maps each to OUTDIR/SCENE_NAME.tif, so a label means the same in every map (OUTDIR/mosaic.vrt
    over them when they share a CRS); a scene that fails is reported, the others finish (exit 1).

    With --model, -p takes the options that change how a trained model maps (a wrong one lists
    them), such as tta=true: a fine-tuned encoder averaged over 8 flips and quarter turns.

    Examples:

        $ lcmap segment scene.tif -o landcover.tif --preview landcover.png

        $ lcmap segment scene.tif -o landcover.tif -k 6 --bands 4,3,2 --save-model scene.lcmap

        $ lcmap segment other.tif -o other_map.tif --model scene.lcmap

        $ lcmap segment 'mosaic/**/*.tif' -o maps/ --model scene.lcmap --workers 4 --resume

        $ lcmap segment s2.tif --stack s1.tif -o map.tif -k 8
    """
    with reported_errors():
        from lcmap import api
        from lcmap.workflows.scenes import expand_scenes

        paths = expand_scenes(scenes)
        many = _into_folder(paths, output)
        _check_one_scene(many, stack, preview, overwrite, paths[0], output)
        target = api.OutputSpec(Path(output), overwrite, parse_key_values(co, "--co") or {})
        options = opt.method_options(param, weights)
        common: dict[str, Any] = {
            "method": api.MethodSpec(method, classes, parse_bands(bands), options),
            "model": model,
            "save_model": save_model,
            "tiling": api.TilingSpec(tile, halo),
            "scale": api.ScaleSpec(workers, scheduler, resume, part_rows),
        }
        with progress_bar("segment") as update:
            run = replace(run, batch_size=batch_size, progress=update)
            if many:
                done = api.segment_many(paths, target, run=run, **common)
            else:
                result = api.segment(paths[0], target, stack=stack or (), run=run, **common)
        if preview is not None:
            _write_preview(output, preview, paths[0], parse_bands(bands), overwrite)
    if many:
        _report_many(done)
    else:
        _report(result, preview)


def _into_folder(paths: list[str], output: str) -> bool:
    """Whether the maps go into a folder: several scenes, or -o ending with / or naming a
    folder (a folder named like a map, o.tif/, is a mistake the output guard refuses)."""
    folder = Path(output).is_dir() and Path(output).suffix.lower() not in (".tif", ".tiff")
    return len(paths) > 1 or output.endswith(("/", "\\")) or folder


def _check_one_scene(
    many: bool,
    stack: list[str] | None,
    preview: Path | None,
    overwrite: bool,
    scene: str,
    output: str,
) -> None:
    """--stack and --preview go with one scene; the preview is checked as an output before any
    work (and written after the map)."""
    if many and (stack or preview is not None):
        raise typer.BadParameter(f"{'--stack' if stack else '--preview'} goes with one scene.")
    if preview is None:
        return
    from lcmap.io.preview import check_preview

    check_preview(preview, overwrite, inputs=[scene], others=[output])


def _write_preview(
    output: str, preview: Path, scene: str, bands: list[int] | None, overwrite: bool
) -> None:
    """The scene and the map side by side, with the legend. The scene is shown in true colour
    where the file says which bands those are (whatever -b chose to map), else in the first
    three bands of -b, else in bands 1-3."""
    from lcmap.io.bands import true_colour
    from lcmap.io.preview import write_preview
    from lcmap.io.scene import open_scene

    with open_scene(scene) as src:
        known = true_colour(src) is not None
    shown = bands[:3] if bands and not known else None
    write_preview(output, preview, scene=scene, bands=shown, overwrite=overwrite)


def _report(result: Any, preview: Path | None = None) -> None:
    if result.method_choice:
        echo(f"method: {cli_message(result.method_choice)}")
    mpx = result.width * result.height / 1e6
    fitted = f"fitted in {result.fit_seconds:.1f} s, " if result.fit_seconds >= 0.05 else ""
    reused = f", {result.parts_reused} parts reused" if result.parts_reused else ""
    echo(
        f"Wrote {result.output} ({result.width}x{result.height}, {result.classes_used} of "
        f"{result.num_classes} classes used): {fitted}mapped in {result.seconds:.1f} s "
        f"({mpx / max(result.seconds, 1e-9):.3g} Mpx/s on {result.device}{reused})."
    )
    if preview is not None:
        echo(f"Wrote {preview}")


def _report_many(done: Any) -> None:
    if done.method_choice:
        echo(f"method: {cli_message(done.method_choice)}")
    for result in done.maps:
        _report(result)
    if done.mosaic is not None:
        echo(f"Wrote {done.mosaic} over the maps; model: {done.model}")
    for scene, reason in done.failed:
        echo_error(f"{scene} failed: {reason}")
    if done.failed:
        echo_error(f"{len(done.failed)} of {len(done.failed) + len(done.maps)} scenes failed.")
        raise typer.Exit(1)
