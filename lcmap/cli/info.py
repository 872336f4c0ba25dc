"""``lcmap info`` (describe a scene, a map or a model) and ``lcmap methods`` (list methods)."""

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli._app import command, reported_errors


@command("info")
def info(
    path: Annotated[str, typer.Argument(help="A scene, a label map or a model file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Describe a raster (size, bands, CRS, nodata, tiling) or an lcmap model file.

    For a scene, also what lcmap goes by: its pixel size on the ground (the default method
    depends on it) and which bands are red, green and blue when the file says so.

    Examples:

        $ lcmap info scene.tif

        $ lcmap info stego.lcmap --json | jq .num_classes
    """
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


Options = Annotated[
    bool, typer.Option("--options", help="Also list each method's options (-p KEY=VALUE).")
]


@command("methods")
def methods(
    pattern: Annotated[str, typer.Argument(help="fnmatch filter, e.g. 'st*'.")] = "*",
    options: Options = False,
) -> None:
    """List the segmentation methods (built-in and plug-ins), and with --options what each takes.

    Examples:

        $ lcmap methods

        $ lcmap methods kmeans --options
    """
    from rich.console import Console
    from rich.table import Table

    from lcmap.methods import list_methods, method_info, method_options

    console = Console()
    table = Table(
        "method",
        "summary",
        caption="segment without -m (or -m auto): kmeans for pixels of 5 m or more or bands "
        "named without blue, else primaps when its ViT weights are on this machine, else kmeans",
    )
    names = list_methods(pattern)
    for name in names:
        try:
            summary = method_info(name).summary
        except Exception as exc:  # a broken plug-in must not hide the others
            summary = f"[red]unavailable: {exc}[/red]"
        table.add_row(name, summary)
    console.print(table)
    if not options:
        return
    for name in names:
        with contextlib.suppress(Exception):  # reported as unavailable above
            specs = method_options(name)
            opts = Table(
                "option", "type", "default", "help", title=f"{name} options (-p KEY=VALUE)"
            )
            for spec in specs:
                opts.add_row(spec.name, spec.type, repr(spec.default), spec.help)
            console.print(opts)
