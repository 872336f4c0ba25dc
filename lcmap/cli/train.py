"""``lcmap train``: fit a method on one or more scenes and save a model file."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, parse_bands, reported_errors
from lcmap.cli._progress import progress_bar
from lcmap.workflows.specs import RunSpec

Scenes = Annotated[
    list[str], typer.Argument(help="Scenes to train on (same band layout; files or URLs).")
]
Output = Annotated[
    Path, typer.Option("--output", "-o", help="Model file to write (.lcmap).", dir_okay=False)
]
Method = Annotated[
    str, typer.Option("--method", "-m", help="Method to train; see 'lcmap methods'.")
]
Labels = Annotated[
    list[Path] | None,
    typer.Option(
        "--labels",
        help="Label raster aligned with each scene (repeatable; 255 = unlabelled). "
        "stego: fits a linear probe, so maps show these class ids instead of clusters.",
    ),
]


@command("train", run=True)
def train(
    scenes: Scenes,
    output: Output,
    method: Method,
    classes: opt.Classes = None,
    bands: opt.Bands = None,
    labels: Labels = None,
    weights: opt.Weights = None,
    param: opt.Params = None,
    stack: opt.Stack = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
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
    with reported_errors():
        from lcmap import api

        options = opt.method_options(param, weights)
        with progress_bar(f"train {method}") as update:
            header = api.train(
                scenes,
                api.OutputSpec(output, overwrite),
                method=api.MethodSpec(method, classes, parse_bands(bands), options),
                labels=labels,
                stack=stack or (),
                run=replace(run, progress=update),
            )
    echo(f"Saved {header.method} model with {header.num_classes} classes to {output}.")
