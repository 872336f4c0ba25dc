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
    BatchSize,
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
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs.", min=1)] = None,
    batch_size: BatchSize = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    crop_size: Annotated[
        int | None, typer.Option("--crop-size", help="Training crop/patch size in pixels.", min=8)
    ] = None,
    iterations: Annotated[
        int | None, typer.Option("--iterations", help="Iterations per batch or step count.", min=1)
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
    'lcmap segment OTHER.tif --model MODEL' labels other scenes consistently.

    Examples:

        $ lcmap train a.tif b.tif -m stego -k 8 -o stego.lcmap --weights dino_vits8.pth

        $ lcmap train scene.tif -m kmeans -k 6 -o kmeans.lcmap -p smooth=2

        $ lcmap train t1.tif t2.tif -m cas -k 10 -o cas.lcmap --epochs 20
    """
    setup_logging(verbose, quiet)
    with reported_errors():
        from lcmap import api

        options = method_options(
            param,
            weights,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            crop_size=crop_size,
            iterations=iterations,
        )
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
