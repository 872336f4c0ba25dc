"""``lcmap segment``: map a scene to a land-cover GeoTIFF."""

from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli._app import (
    Overwrite,
    Quiet,
    Verbose,
    app,
    echo,
    parse_bands,
    parse_key_values,
    progress_bar,
    reported_errors,
    setup_logging,
)
from lcmap.cli._options import (
    Backbone,
    Bands,
    BatchSize,
    Classes,
    Crf,
    Device,
    FeatureLayer,
    Halo,
    Params,
    Seed,
    Tile,
    Weights,
    method_options,
)


@app.command("segment")
def segment(
    scene: Annotated[
        str,
        typer.Argument(help="Input raster: a file, a GDAL virtual path (/vsizip/...) or a URL."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output label GeoTIFF (COG).", dir_okay=False)
    ],
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            "-m",
            help="Segmentation method; see 'lcmap methods' \\[default: dino_kmeans when its "
            "ViT weights are on this machine, else kmeans].",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Apply a saved model (.lcmap) instead of fitting one."),
    ] = None,
    save_model: Annotated[
        Path | None,
        typer.Option("--save-model", help="Save the model fitted on this scene.", dir_okay=False),
    ] = None,
    classes: Classes = None,
    bands: Bands = None,
    tile: Tile = None,
    halo: Halo = None,
    batch_size: BatchSize = None,
    device: Device = "auto",
    seed: Seed = 0,
    backbone: Backbone = None,
    weights: Weights = None,
    feature_layer: FeatureLayer = None,
    crf: Crf = None,
    param: Params = None,
    co: Annotated[
        list[str] | None,
        typer.Option("--co", help="GDAL COG creation option KEY=VALUE (repeatable)."),
    ] = None,
    overwrite: Overwrite = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Segment SCENE into a land-cover map on the same grid.

    Without --model the method is fitted on windows drawn across the scene, then the scene is
    mapped tile by tile. The output is a Cloud-Optimised GeoTIFF with the input's CRS,
    transform and size, uint8 labels from 0 (255 = nodata), a colour table, class names and
    provenance tags, plus a .lcmap.json sidecar.

    Examples:

        $ lcmap segment scene.tif -o landcover.tif

        $ lcmap segment scene.tif -o landcover.tif -k 6 --bands 4,3,2 --save-model scene.lcmap

        $ lcmap segment other.tif -o other_map.tif --model scene.lcmap

        $ lcmap segment scene.tif -o map.tif --method dino_kmeans --weights dinov2_s14.safetensors

        $ lcmap segment scene.tif -o map.tif --method stego --weights dino_deitsmall8_pretrain.pth
    """
    setup_logging(verbose, quiet)
    with reported_errors():
        from lcmap import api

        options = method_options(backbone, weights, feature_layer, crf, param)
        with progress_bar("segment") as update:
            result = api.segment(
                scene,
                output,
                method=method,
                model=model,
                save_model=save_model,
                classes=classes,
                bands=parse_bands(bands),
                tile=tile,
                halo=halo,
                batch_size=batch_size,
                device=device,
                seed=seed,
                overwrite=overwrite,
                creation_options=parse_key_values(co, "--co"),
                progress=update,
                options=options,
            )
    if result.method_choice:
        echo(f"method: {result.method_choice}")
    mpx = result.width * result.height / 1e6
    fitted = f"fitted in {result.fit_seconds:.1f} s, " if result.fit_seconds >= 0.05 else ""
    echo(
        f"Wrote {result.output} ({result.width}x{result.height}, {result.classes_used} of "
        f"{result.num_classes} classes used): {fitted}mapped in {result.seconds:.1f} s "
        f"({mpx / max(result.seconds, 1e-9):.3g} Mpx/s on {result.device})."
    )
