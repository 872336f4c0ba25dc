"""``lcmap pretrain``: learn an encoder's features from the user's own scenes by contrast."""

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
    progress_bar,
    reported_errors,
    setup_logging,
)
from lcmap.cli._options import Bands, BatchSize, Classes, Device, Params, Seed, method_options
from lcmap.methods.configs import ENCODER_NAMES, SimclrConfig

_DEFAULTS = SimclrConfig()


@app.command("pretrain")
def pretrain(
    scenes: Annotated[list[str], typer.Argument(help="Scenes to learn from (labels unused).")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Encoder model to write (.lcmap).", dir_okay=False),
    ],
    method: Annotated[
        str, typer.Option("--method", "-m", help="Pre-training method (simclr).")
    ] = "simclr",
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder", help=f"Contracting path: {', '.join(ENCODER_NAMES)}.", show_default=True
        ),
    ] = _DEFAULTS.encoder,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights", help="Local timm/torchvision checkpoint to start from.", exists=True
        ),
    ] = None,
    classes: Classes = None,
    bands: Bands = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature",
            help=f"NT-Xent temperature \\[default: {_DEFAULTS.temperature}].",
            min=0.0,
        ),
    ] = None,
    dense: Annotated[
        bool,
        typer.Option("--dense", help="Add pixel-level contrast (PixContrast, DenseCL's 0.5 mix)."),
    ] = False,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help=f"Passes over the windows \\[default: {_DEFAULTS.epochs}].", min=1
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Optimiser steps (overrides --epochs).", min=1)
    ] = None,
    windows: Annotated[
        int | None,
        typer.Option(
            "--windows",
            help=f"Windows drawn across SCENES \\[default: {_DEFAULTS.windows}].",
            min=2,
        ),
    ] = None,
    batch_size: BatchSize = None,
    optimizer: Annotated[
        str | None, typer.Option("--optimizer", help="sgd (seed 004) or adam (seed 003).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate \\[default: 1e-3].")
    ] = None,
    crop_size: Annotated[
        int | None,
        typer.Option(
            "--crop-size", help="Window side in pixels \\[default: 128; swin-unet 224].", min=32
        ),
    ] = None,
    param: Params = None,
    device: Device = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Pre-train an encoder on windows of SCENES by contrast and save it with a k-means probe.

    Two augmented views of each window (random resized crop, flips and rotations, blur,
    brightness/contrast, illumination, erasing) are pulled together and other windows pushed
    apart (SimCLR's NT-Xent; with --dense also pixel by pixel). The model maps without labels
    ('lcmap segment SCENE --model ENCODER') and is the start of few-shot fine-tuning
    ('lcmap finetune ENCODER --scene S --labels L').

    Examples:

        $ lcmap pretrain a.tif b.tif -o enc.lcmap --encoder resnet18-unet -k 6

        $ lcmap pretrain s2_*.tif -o swin.lcmap --encoder swin-unet --optimizer adam --dense

        $ lcmap finetune enc.lcmap --scene a.tif --labels truth.tif --patches 20 -o tuned.lcmap
    """
    setup_logging(verbose, quiet)
    with reported_errors():
        from lcmap import api

        options = method_options(
            None, weights, None, None, param, encoder=encoder, temperature=temperature,
            dense_weight=0.5 if dense else None, epochs=epochs, steps=steps, windows=windows,
            batch_size=batch_size, optimizer=optimizer, lr=lr, crop_size=crop_size,
        )  # fmt: skip
        with progress_bar(f"pretrain {method}") as update:
            header = api.train(scenes, output, method=method, classes=classes,
                               bands=parse_bands(bands), seed=seed, device=device,
                               overwrite=overwrite, progress=update, options=options)  # fmt: skip
    loss = header.extra.get("final_loss")
    echo(f"Saved {encoder} encoder (final loss {loss:.4f}, {header.num_classes} clusters) "
         f"to {output}.")  # fmt: skip
