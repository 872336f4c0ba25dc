"""``lcmap pretrain``: learn an encoder's features from the user's own scenes by contrast."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, parse_bands, reported_errors
from lcmap.cli._progress import progress_bar
from lcmap.methods.configs import ENCODER_NAMES, SimclrConfig
from lcmap.workflows.specs import RunSpec

_DEFAULTS = SimclrConfig()


Output = Annotated[
    Path,
    typer.Option("--output", "-o", help="Encoder model to write (.lcmap).", dir_okay=False),
]
Scenes = Annotated[list[str] | None, typer.Argument(help="Scenes to learn from (labels unused).")]
Method = Annotated[str, typer.Option("--method", "-m", help="Pre-training method (simclr).")]
Encoder = Annotated[
    str,
    typer.Option(
        "--encoder", help=f"Contracting path: {', '.join(ENCODER_NAMES)}.", show_default=True
    ),
]
Weights = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Local timm/torchvision checkpoint to start from (dinov2-vits14: a DINOv2 "
        "ViT-S/14 .pth or timm .safetensors, e.g. from 'lcmap weights get').",
        exists=True,
    ),
]
Pair = Annotated[
    list[str] | None,
    typer.Option(
        "--pair",
        help="A.tif:B.tif, the same ground by two sensors or dates (repeatable; "
        "@FILE reads one A:B per line): B is read on A's grid; each encoder learns from "
        "the other's view.",
    ),
]


@command("pretrain", run=True)
def pretrain(
    output: Output,
    scenes: Scenes = None,
    method: Method = "simclr",
    encoder: Encoder = _DEFAULTS.encoder,
    weights: Weights = None,
    pair: Pair = None,
    classes: opt.Classes = None,
    bands: opt.Bands = None,
    param: opt.Params = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
) -> None:
    """Pre-train an encoder on windows of SCENES by contrast and save it with a k-means probe.

    Two augmented views of each window (random resized crop, flips and rotations, blur,
    brightness/contrast, illumination, erasing) are pulled together and other windows pushed
    apart (SimCLR's NT-Xent). The model maps without
    labels ('lcmap segment SCENE --model ENCODER') and is the start of few-shot fine-tuning
    ('lcmap finetune ENCODER --scene S --labels L'). With -p steps=0 the encoder is kept as
    --weights gives it (a DINOv2 ViT-S/14 with --encoder dinov2-vits14) and only the k-means
    probe is fitted.

    The training options (epochs or steps, windows, batch_size, lr, optimizer, temperature,
    crop_size...) go through -p KEY=VALUE; 'lcmap methods simclr --options' lists them with
    their defaults.

    Examples:

        $ lcmap pretrain a.tif b.tif -o enc.lcmap --encoder resnet18-unet -k 6 -p epochs=20

        $ lcmap pretrain s2.tif -o swin.lcmap --encoder swin-unet -p lr=3e-5 -p batch_size=32

        $ lcmap pretrain a.tif b.tif -o dino.lcmap --encoder dinov2-vits14 \\
            --weights dinov2_vits14.safetensors -p steps=0 -p vit_blocks=4

        $ lcmap pretrain --pair s2_a.tif:s1_a.tif --pair s2_b.tif:s1_b.tif -o s2s1.lcmap

        $ lcmap finetune enc.lcmap --scene a.tif --labels truth.tif --patches 20 -o tuned.lcmap
    """
    pairs = _parse_pairs(pair or [])
    if scenes and pairs:
        raise typer.BadParameter("give SCENES or --pair, not both.")
    if not scenes and not pairs:
        raise typer.BadParameter("give SCENES to learn from, or --pair A.tif:B.tif.")
    with reported_errors():
        from lcmap import api

        options = opt.method_options(param, weights, encoder=encoder)
        with progress_bar(f"pretrain {method}") as update:
            header = api.train(
                scenes or [a for a, _ in pairs],
                api.OutputSpec(output, overwrite),
                method=api.MethodSpec(method, classes, parse_bands(bands), options),
                partners=[b for _, b in pairs] or None,
                run=replace(run, progress=update),
            )
    loss = header.extra.get("final_loss")
    trained = "not pre-trained" if loss is None else f"final loss {loss:.4f}"
    echo(f"Saved {encoder} encoder ({trained}, {header.num_classes} clusters) to {output}.")


def _parse_pairs(values: list[str]) -> list[tuple[str, str]]:
    """``A:B`` values (and ``@FILE`` of one ``A:B`` per line, paths relative to the file)."""
    pairs = []
    for value in values:
        if value.startswith("@"):
            listing = Path(value[1:])
            if not listing.is_file():
                raise typer.BadParameter(f"pair list {listing} not found.")
            lines = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
            found = _parse_pairs(lines)
            pairs += [(str(listing.parent / a), str(listing.parent / b)) for a, b in found]
            continue
        parts = value.split(":")
        if len(parts) != 2 or not all(parts):
            raise typer.BadParameter(f"'{value}' is not A.tif:B.tif (two local paths).")
        pairs.append((parts[0], parts[1]))
    return pairs
