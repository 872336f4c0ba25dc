"""``lcmap weights list``: the known ViT backbones and whether their weights are here."""

import json
from typing import Annotated

import typer

from lcmap.cli._app import Quiet, Verbose, app, reported_errors, setup_logging

weights_app = typer.Typer(help="Backbone weights: which are known, where they are looked for.")
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def list_weights(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """List each known backbone, the files looked for ($LCMAP_CACHE_DIR, then timm's hub
    cache), whether one is present and its sha256. Nothing is downloaded.

    Examples:

        $ lcmap weights list

        $ LCMAP_CACHE_DIR=/data/weights lcmap weights list --json | jq '.[] | select(.present)'
    """
    setup_logging(verbose, quiet)
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
        "Not found here: put one of the files in the cache, pass --weights PATH, or be "
        "online (timm's hub)."
    )
