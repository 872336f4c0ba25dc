"""Options shared by the commands (rio's ``options.py`` is the model) and the method options
they collect: a command module imports this as ``opt`` and declares ``bands: opt.Bands = None``."""

from pathlib import Path
from typing import Annotated, Any

import typer

from lcmap.cli._app import parse_key_values

Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists.")]

Classes = Annotated[
    int | None,
    typer.Option("--classes", "-k", help="Number of classes K \\[default: method's].", min=2),
]
Bands = Annotated[
    str | None,
    typer.Option("--bands", "-b", help="Bands to use, 1-based, e.g. 4,3,2 \\[default: all]."),
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Tiles or crops per batch.", min=1)
]
MapBatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        help="Tiles per batch \\[default: 4 on the CPU; on a GPU, what its free memory takes].",
        min=1,
    ),
]
Tile = Annotated[
    int | None, typer.Option("--tile", help="Tile size in pixels \\[default: 512].", min=1)
]
Halo = Annotated[
    int | None,
    typer.Option(
        "--halo",
        help="Context pixels on each side of a tile \\[default: the method's receptive field; "
        "the overlap blended for ViTs].",
        min=0,
    ),
]
Weights = Annotated[
    Path | None,
    typer.Option("--weights", help="Local backbone weights (.pth or .safetensors).", exists=True),
]
Stack = Annotated[
    list[str] | None,
    typer.Option(
        "--stack",
        help="A co-registered raster whose bands follow the scene's, reprojected onto its "
        "grid window by window (repeatable; e.g. Sentinel-1 under a Sentinel-2 scene).",
    ),
]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Any other method option KEY=VALUE (repeatable)."),
]


def _coerce(value: str) -> Any:
    """Turn a -p value into int, float or bool when it reads as one. "none" stays text: it is
    a choice of some options (``class_weighting=none``); the options' own checker reads it as
    None where an option may be None."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def method_options(
    params: list[str] | None, weights: Path | None = None, **more: Any
) -> dict[str, Any]:
    """Collect the method options that were given (unset ones stay out): ``-p KEY=VALUE``, the
    shared ``--weights``, and a command's own flags that are method options."""
    options: dict[str, Any] = {"weights": str(weights) if weights else None, **more}
    options = {k: v for k, v in options.items() if v is not None}
    options.update(
        {k.replace("-", "_"): _coerce(v) for k, v in parse_key_values(params, "-p").items()}
    )
    return options
