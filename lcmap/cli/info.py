"""``lcmap info`` (describe a scene, a map or a model) and ``lcmap methods`` (list methods)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli._app import Quiet, Verbose, app, reported_errors, setup_logging


@app.command("info")
def info(
    path: Annotated[str, typer.Argument(help="A scene, a label map or a model file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Describe a raster (size, bands, CRS, nodata, tiling) or an lcmap model file.

    Examples:

        $ lcmap info scene.tif

        $ lcmap info stego.lcmap --json | jq .num_classes
    """
    setup_logging(verbose, quiet)
    with reported_errors():
        from lcmap import api

        facts = api.describe(path)
    if as_json:
        typer.echo(json.dumps(facts, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{Path(path).name} ({facts['kind']})", show_header=False)
    for key, value in facts.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        table.add_row(key, text if len(text) < 400 else text[:397] + "...")
    Console().print(table)


@app.command("methods")
def methods(
    pattern: Annotated[str, typer.Argument(help="fnmatch filter, e.g. 'st*'.")] = "*",
) -> None:
    """List the segmentation methods (built-in and plug-ins).

    Examples:

        $ lcmap methods
    """
    from rich.console import Console
    from rich.table import Table

    from lcmap.methods import list_methods, method_info

    table = Table("method", "summary")
    for name in list_methods(pattern):
        try:
            summary = method_info(name).summary
        except Exception as exc:  # a broken plug-in must not hide the others
            summary = f"[red]unavailable: {exc}[/red]"
        table.add_row(name, summary)
    Console().print(table)
