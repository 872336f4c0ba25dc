"""``lcmap classes``: name and merge the classes of maps and of the model that made them."""

from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, reported_errors
from lcmap.cli._progress import progress_bar


def _ids(text: str, flag: str) -> list[int]:
    try:
        ids = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        ids = []
    if not ids or min(ids) < 0:
        raise typer.BadParameter(f"'{text}' is not class ids such as 1,2.", param_hint=flag)
    return ids


def parse_names(named: list[str] | None, merged: list[str] | None) -> dict[int, str]:
    """``--name 0=water`` and ``--merge 1,2=built-up`` as old id -> name."""
    names: dict[int, str] = {}
    for flag, items in (("--name", named or []), ("--merge", merged or [])):
        for item in items:
            ids, sep, name = item.partition("=")
            if not sep or not name.strip():
                raise typer.BadParameter(f"'{item}' is not IDS=NAME.", param_hint=flag)
            for i in _ids(ids, flag):
                if names.get(i, name.strip()) != name.strip():
                    raise typer.BadParameter(
                        f"class {i} is given two names ({names[i]}, {name.strip()}).",
                        param_hint=flag,
                    )
                names[i] = name.strip()
    return names


Maps = Annotated[list[Path], typer.Argument(help="Label maps made by one model (lcmap segment).")]
Output = Annotated[
    str,
    typer.Option(
        "--output", "-o", help="The new map (.tif), or with several maps a folder (OUT/)."
    ),
]
Name = Annotated[
    list[str] | None,
    typer.Option("--name", metavar="ID=NAME", help="Name a class (repeatable)."),
]
Merge = Annotated[
    list[str] | None,
    typer.Option(
        "--merge",
        metavar="IDS=NAME",
        help="Merge classes into one named class, e.g. 1,2=built-up (repeatable); classes "
        "given one name are merged too.",
    ),
]
Colour = Annotated[
    list[str] | None,
    typer.Option(
        "--colour",
        metavar="NAME=#RRGGBB",
        help="A class's colour, by its new name or its old id (repeatable) \\[default: a "
        "familiar colour for common land-cover names].",
    ),
]
Model = Annotated[
    Path | None,
    typer.Option("--model", help="The model that made the maps, to rewrite with them."),
]
SaveModel = Annotated[
    Path | None,
    typer.Option(
        "--save-model",
        help="Write --model again with the new classes: 'lcmap segment --model' then maps "
        "them directly.",
        dir_okay=False,
    ),
]
FromLabels = Annotated[
    Path | None,
    typer.Option(
        "--from-labels",
        help="Name each cluster by the class most of its labelled pixels carry: points or "
        "polygons (any CRS) or a label raster on the map's grid; --name still wins.",
    ),
]
ClassColumn = Annotated[
    str | None, typer.Option("--class-column", help="The labels' class column.")
]
MinShare = Annotated[
    float,
    typer.Option(
        "--min-share",
        help="With --from-labels, name a cluster only when its best class holds at least "
        "this share of its labelled pixels.",
        min=0.0,
        max=1.0,
    ),
]


@command("classes")
def classes(
    maps: Maps,
    output: Output,
    name: Name = None,
    merge: Merge = None,
    colour: Colour = None,
    model: Model = None,
    save_model: SaveModel = None,
    from_labels: FromLabels = None,
    class_column: ClassColumn = None,
    min_share: MinShare = 0.0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Name and merge the classes of label maps (and of their model), without mapping again.

    Classes are renumbered from 0 in the order of their first old id, with their names and
    colours in the colour table, the category names and the attribute table (what QGIS shows).
    Classes not named keep their name. Nothing is edited in place.

    Examples:

        $ lcmap classes map.tif -o named.tif --name 0=water --name 3=trees --merge 1,2=built-up

        $ lcmap classes map.tif -o named.tif --name 0=water --colour water=#1f78b4

        $ lcmap classes map.tif -o named.tif --merge 1,2=built --model m.lcmap --save-model n.lcmap

        $ lcmap classes maps/*.tif -o named/ --name 0=water --merge 1,2,5=built-up

        $ lcmap classes map.tif -o named.tif --from-labels clicks.gpkg --class-column cls
    """
    names = parse_names(name, merge)
    with reported_errors():
        from lcmap.workflows.classes import name_classes, names_from_labels, parse_colour

        learnt = None
        if from_labels is not None:
            learnt = names_from_labels(maps, from_labels, class_column, min_share)
            names = {**learnt.names, **names}

        colours = {}
        for item in colour or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise typer.BadParameter(f"'{item}' is not NAME=#RRGGBB.", param_hint="--colour")
            colours[key.strip()] = parse_colour(value)
        with progress_bar("classes") as update:
            result = name_classes(
                maps,
                output,
                names,
                colours=colours,
                model=model,
                save_model=save_model,
                overwrite=overwrite,
                progress=update,
            )
    plan = result.plan
    if learnt is not None:
        for cluster, share in sorted(learnt.shares.items()):
            echo(f"cluster {cluster}: {learnt.names[cluster]} ({share:.0%} of its labelled pixels)")
        kept = [i for i in range(len(plan.relabel)) if i not in names]
        if kept:
            echo(
                f"clusters {', '.join(map(str, kept))}: no labels, or no class holding "
                f"{min_share:.0%} of them; they keep their names."
            )
    echo(f"{len(plan.relabel)} classes -> {len(plan.names)}: {', '.join(plan.names)}")
    for out in result.maps:
        echo(f"Wrote {out}")
    if result.mosaic is not None:
        echo(f"Wrote {result.mosaic} over the maps")
    if result.model is not None:
        echo(f"Wrote {result.model}: 'lcmap segment --model {result.model}' maps these classes.")
