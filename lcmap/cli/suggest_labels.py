"""``lcmap suggest-labels``: choose patches to annotate from a model's clusters."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, reported_errors
from lcmap.cli._progress import progress_bar
from lcmap.workflows.specs import RunSpec

Output = Annotated[
    Path,
    typer.Option(
        "--output", "-o", help="Polygons to write (.gpkg, .fgb, .geojson).", dir_okay=False
    ),
]
Model = Annotated[
    Path, typer.Option("--model", help="A model that provides an encoder (cas, stego).")
]
PatchSize = Annotated[int, typer.Option("--patch-size", help="Patch side in pixels.", min=16)]
Tuned = Annotated[
    Path | None,
    typer.Option(
        "--tuned", help="A fine-tuned model: extra patches go to its most uncertain clusters."
    ),
]
Clusters = Annotated[
    str,
    typer.Option(
        "--clusters",
        help="model: the model's own clusters (Ghosh et al.); budget: as many clusters as "
        "patches, drawn from the patches' embeddings (TypiClust); or a number.",
    ),
]
Pick = Annotated[
    Literal["nearest", "diverse"],
    typer.Option(
        "--pick",
        help="diverse: one typical patch per sub-cluster of each cluster's share (TypiClust "
        "within clusters); nearest: each cluster's patches closest to its centroid "
        "(Ghosh et al.).",
    ),
]


@command("suggest-labels", run=True)
def suggest_labels(
    scenes: Annotated[list[Path], typer.Argument(help="Scenes to choose patches from.")],
    budget: Annotated[int, typer.Option("--budget", "-n", help="Patches to suggest.", min=1)],
    output: Output,
    model: Model,
    patch_size: PatchSize = 128,
    tuned: Tuned = None,
    clusters: Clusters = "model",
    pick: Pick = "diverse",
    batch_size: opt.BatchSize = None,
    stack: opt.Stack = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
) -> None:
    """Suggest BUDGET patches to label: typical patches of every cluster of MODEL.

    The budget is spread evenly over the clusters; extra patches go to the clusters whose
    predicted majority classes (with --tuned) are most mixed, else to the largest clusters.
    Within a cluster, --pick diverse (default) takes one typical patch from each of as many
    sub-clusters of it as its share; --pick nearest the patches closest to its centroid
    (Ghosh et al.). The clusters are the model's own (Ghosh et al.) or, with --clusters budget, as
    many clusters of the patches' embeddings as patches, one typical patch each (TypiClust:
    closer to the scenes' own class shares, so rare classes get fewer patches). The
    footprints (scene, cluster, rank, order) are ready to annotate in QGIS; 'lcmap finetune
    --patch-file' reads them back.

    Examples:

        $ lcmap suggest-labels a.tif b.tif --model cas.lcmap --budget 20 -o to_label.gpkg

        $ lcmap suggest-labels a.tif --model cas.lcmap --budget 25 --tuned tuned.lcmap -o more.gpkg

        $ lcmap suggest-labels a.tif --model enc.lcmap --budget 20 --clusters budget -o typ.gpkg

        $ lcmap suggest-labels a.tif --model enc.lcmap --budget 20 --pick nearest -o near.gpkg
    """

    from lcmap.workflows.patch_choice import parse_clusters

    try:
        chosen = parse_clusters(clusters)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with reported_errors():
        from lcmap.workflows.specs import OutputSpec, PatchSpec
        from lcmap.workflows.suggest import suggest_labels as suggest

        with progress_bar("embed patches") as update:
            frame = suggest(
                scenes,
                model,
                OutputSpec(output, overwrite),
                patches=PatchSpec(count=budget, size=patch_size),
                tuned=tuned,
                stack=stack or (),
                clusters=chosen,
                pick=pick,
                run=replace(run, batch_size=batch_size, progress=update),
            )
    found = frame["cluster"].nunique() if len(frame) else 0
    echo(f"Wrote {len(frame)} patch footprints over {found} clusters to {output}.")
