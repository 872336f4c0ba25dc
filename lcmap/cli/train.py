"""``lcmap train``: fit a method on one or more scenes and save a model file."""

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
    reported_errors,
    setup_logging,
)
from lcmap.cli._options import (
    Bands,
    Classes,
    Device,
    Params,
    Seed,
    Stack,
    Weights,
    method_options,
)
from lcmap.cli._progress import progress_bar


@app.command("train")
def train(
    scenes: Annotated[
        list[str], typer.Argument(help="Scenes to train on (same band layout; files or URLs).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model file to write (.lcmap).", dir_okay=False)
    ],
    method: Annotated[
        str, typer.Option("--method", "-m", help="Method to train; see 'lcmap methods'.")
    ],
    classes: Classes = None,
    bands: Bands = None,
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--labels",
            help="Label raster aligned with each scene (repeatable; 255 = unlabelled). "
            "stego: fits a linear probe, so maps show these class ids instead of clusters.",
        ),
    ] = None,
    weights: Weights = None,
    param: Params = None,
    stack: Stack = None,
    device: Device = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Train METHOD on windows drawn across SCENES and save it to a model file.

    The model file (safetensors + JSON header) keeps the bands and their normalisation, so
    'lcmap segment OTHER.tif --model MODEL' labels other scenes consistently. The method's
    own options (epochs, batch size, crop size...: each method has its own, listed by 'lcmap
    methods --options METHOD') go through -p KEY=VALUE.

    Examples:

        $ lcmap train a.tif b.tif -m stego -k 8 -o stego.lcmap --weights dino_vits8.pth

        $ lcmap train scene.tif -m kmeans -k 6 -o kmeans.lcmap -p smooth=2

        $ lcmap train t1.tif t2.tif -m cas -k 10 -o cas.lcmap -p ae_steps=2000
    """
    setup_logging(verbose, quiet)
    with reported_errors():
        from lcmap import api

        options = method_options(param, weights)
        with progress_bar(f"train {method}") as update:
            header = api.train(
                scenes,
                api.OutputSpec(output, overwrite),
                method=api.MethodSpec(method, classes, parse_bands(bands), options),
                labels=labels,
                stack=stack or (),
                run=api.RunSpec(device, seed, progress=update),
            )
    echo(f"Saved {header.method} model with {header.num_classes} classes to {output}.")
