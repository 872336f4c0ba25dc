"""``lcmap finetune``: fine-tune a model that provides an encoder on a few labelled patches."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, reported_errors
from lcmap.cli._progress import progress_bar
from lcmap.workflows.specs import RunSpec


def _parse_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if not names or any(not n for n in names):
        raise typer.BadParameter(f"'{value}' is not a comma-separated list of class names.")
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"class names must be distinct; got '{value}'.")
    return names


Model = Annotated[
    Path, typer.Argument(help="A model that provides an encoder (cas, stego, simclr).")
]
Output = Annotated[
    Path, typer.Option("--output", "-o", help="Tuned model file to write.", dir_okay=False)
]
Scene = Annotated[
    list[Path], typer.Option("--scene", help="A labelled scene (repeatable, with --labels).")
]
Labels = Annotated[
    list[Path],
    typer.Option(
        "--labels",
        help="Labels of the scene before it: a raster on its grid (255 = unlabelled) or "
        "polygons (GPKG, GeoJSON, FGB) with a class column.",
    ),
]
ClassNames = Annotated[
    str | None,
    typer.Option("--class-names", help="Class names by id, e.g. water,trees,built."),
]
ClassColumn = Annotated[
    str | None, typer.Option("--class-column", help="The polygons' class column.")
]
Patches = Annotated[
    int | None,
    typer.Option("--patches", help="Train on N labelled patches only (few-shot).", min=1),
]
PatchFile = Annotated[
    Path | None,
    typer.Option(
        "--patch-file", help="Take the patches from a 'lcmap suggest-labels' GPKG, in order."
    ),
]
PatchSize = Annotated[int, typer.Option("--patch-size", help="Patch side in pixels.", min=16)]
Init = Annotated[
    str | None,
    typer.Option(
        "--init",
        help="Initial weights, one of those MODEL offers (a wrong name lists them) "
        "\\[default: MODEL's first].",
    ),
]


@command("finetune", run=True)
def finetune(
    model: Model,
    output: Output,
    scene: Scene,
    labels: Labels,
    class_names: ClassNames = None,
    class_column: ClassColumn = None,
    patches: Patches = None,
    patch_file: PatchFile = None,
    patch_size: PatchSize = 128,
    init: Init = None,
    batch_size: opt.BatchSize = None,
    stack: opt.Stack = None,
    param: opt.Params = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
) -> None:
    """Fine-tune MODEL's encoder on labelled patches and save a model with real class names.

    A cas MODEL's UNet gets its skip connections and a classification layer back and is
    trained with class-weighted cross-entropy (label 255 ignored); '--init autoencoder' and
    '--init random' give the paper's baselines. A stego MODEL keeps its frozen ViT and head
    and gets a linear probe on its codes. A simclr MODEL's frozen encoder gets a linear layer
    on its embedding, the bands, each pair's normalised difference and each band's local
    standard deviation (-p head=linear-indices: without the deviations; head=linear-bands: the
    bands alone beside the embedding; head=linear: the embedding alone; head=decoder: a UNet
    decoder; -p freeze_encoder=false: the encoder trained too). A wrong --init lists what
    MODEL offers. Map scenes with 'lcmap segment SCENE --model TUNED'.

    The tuned network's training options go through -p KEY=VALUE (steps, epochs, lr,
    crop_size, head, freeze_encoder...; 'lcmap methods --options cas_finetuned' and
    'encoder_finetuned' list them with their defaults); one it does not take is refused.

    Examples:

        $ lcmap finetune cas.lcmap --scene a.tif --labels t.tif -o t.lcmap --class-names water,built

        $ lcmap finetune cas.lcmap --scene a.tif --labels drawn.gpkg -o tuned.lcmap

        $ lcmap finetune cas.lcmap --scene a.tif --labels truth.tif --patches 20 -o tuned.lcmap

        $ lcmap finetune enc.lcmap --scene a.tif --labels t.tif -p head=decoder -o t.lcmap

        $ lcmap finetune cas.lcmap --scene a.tif --labels t.tif -p steps=600 -p lr=3e-4 -o t.lcmap

        $ lcmap finetune dino.lcmap --scene a.tif --labels t.tif -p tta=true -o tuned.lcmap

    """
    if len(scene) != len(labels):
        raise typer.BadParameter(
            f"{len(scene)} --scene but {len(labels)} --labels; give one --labels per --scene."
        )
    names = _parse_names(class_names)
    with reported_errors():
        from lcmap.workflows.finetune import finetune as tune
        from lcmap.workflows.specs import LabelSpec, OutputSpec, PatchSpec

        with progress_bar("fine-tune") as update:
            options = opt.method_options(param)
            header = tune(
                model,
                scene,
                LabelSpec(labels, class_column, names),
                OutputSpec(output, overwrite),
                patches=PatchSpec(patches, patch_file, patch_size),
                init=init,
                options=options or None,
                stack=stack or (),
                run=replace(run, batch_size=batch_size, progress=update),
            )
    echo(
        f"Saved fine-tuned model ({header.num_classes} classes: "
        f"{', '.join(header.class_names)}; {header.extra.get('patches')} patches) to {output}."
    )
