"""``lcmap train-single-scene``: train the single-scene deep-clustering model on one scene."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, parse_bands, reported_errors
from lcmap.cli._progress import progress_bar
from lcmap.methods.configs import SingleSceneConfig
from lcmap.workflows.specs import RunSpec


def _help(text: str, field: str) -> str:
    """Help with the default from the method's own options (torch-free), never copied."""
    return f"{text} \\[default: {getattr(SingleSceneConfig(), field)}]."


Output = Annotated[
    Path, typer.Option("--output", "-o", help="Model file to write (.lcmap).", dir_okay=False)
]
Classes = Annotated[
    int | None,
    typer.Option("--classes", "-k", help=_help("Clusters K", "num_classes"), min=2),
]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", help=_help("Patches per batch", "batch_size"), min=1),
]
Segment = Annotated[
    Path | None,
    typer.Option("--segment", help="Also map the scene to this label GeoTIFF.", dir_okay=False),
]


@command("train-single-scene", run=True)
def train_single_scene(
    scene: Annotated[str, typer.Argument(help="The unlabelled scene to train on and map.")],
    output: Output,
    classes: Classes = None,
    batch_size: BatchSize = None,
    segment: Segment = None,
    bands: opt.Bands = None,
    param: opt.Params = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
) -> None:
    """Train the single-scene segmenter (Saha et al.) on SCENE and save it to a model file.

    A small CNN (5 convolutions, channel attention, 1x1 to K clusters) is trained from scratch
    on patches of the scene itself: each pixel's pseudo-label is the argmax of its K outputs,
    and the loss is cross-entropy to it plus a contrastive term against shuffled patches. No
    labels and no pretrained weights. With --segment the scene is mapped too; 'lcmap segment
    OTHER.tif --model MODEL' applies the model to a similar scene. The network's options
    (epochs, iterations, crop_size, features, lr...: 'lcmap methods single_scene --options')
    go through -p KEY=VALUE.

    Examples:

        $ lcmap train-single-scene scene.tif -k 8 -o single.lcmap --segment landcover.tif

        $ lcmap train-single-scene s.tif -o s.lcmap -p epochs=1 -p iterations=20 -p crop_size=128

        $ lcmap segment other.tif -o other_map.tif --model single.lcmap
    """
    with reported_errors():
        from lcmap import api
        from lcmap.io.staging import check_distinct, check_output
        from lcmap.io.writer import check_map_output, sidecar_path

        # Fail before training, not after it, when the outputs cannot be written.
        check_output(output, overwrite, inputs=[scene])
        if segment is not None:
            check_map_output(segment, overwrite, inputs=[scene])
            check_distinct(output, segment, sidecar_path(segment))
        options = opt.method_options(param, batch_size=batch_size)
        band_list = parse_bands(bands)
        with progress_bar("train single_scene") as update:
            header = api.train(
                [scene],
                api.OutputSpec(output, overwrite),
                method=api.MethodSpec("single_scene", classes, band_list, options),
                run=replace(run, progress=update),
            )
        used = header.extra.get("clusters_used")
        echo(
            f"Saved single_scene model ({header.num_classes} clusters"
            f"{f', {used} in use' if used is not None else ''}) to {output}."
        )
        if segment is not None:
            with progress_bar("segment") as update:
                result = api.segment(
                    scene,
                    api.OutputSpec(segment, overwrite),
                    model=output,
                    run=replace(run, progress=update),
                )
            echo(
                f"Wrote {result.output} ({result.width}x{result.height}, {result.classes_used} "
                f"of {result.num_classes} classes used) in {result.seconds:.1f} s."
            )
