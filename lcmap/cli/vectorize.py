"""``lcmap vectorize``: turn a label raster into polygons (GeoPackage, FlatGeobuf, ...)."""

from pathlib import Path
from typing import Annotated

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, parse_numbers, reported_errors
from lcmap.cli._progress import progress_bar

Labels = Annotated[
    Path, typer.Argument(help="Single-band integer label raster (e.g. from lcmap segment).")
]
Output = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        help="Vector file: .gpkg, .fgb, .parquet (GeoParquet) or .geojson (EPSG:4326).",
        dir_okay=False,
    ),
]
MinArea = Annotated[
    float,
    typer.Option(
        "--min-area",
        help="Smallest region kept, in map units² (m² for a metric CRS, square degrees for "
        "EPSG:4326): smaller regions are merged into their largest neighbour first, then "
        "leftovers are dropped.",
        min=0,
    ),
]
Simplify = Annotated[
    float,
    typer.Option(
        "--simplify",
        help="Simplification tolerance in map units (degrees for EPSG:4326); "
        "topology-preserving (neighbours keep their shared edges). 0 keeps the exact pixel "
        "outlines.",
        min=0,
    ),
]
ClassIds = Annotated[
    str | None, typer.Option("--class-ids", help="Only these class ids, e.g. 1,3.")
]
Legend = Annotated[
    Path | None,
    typer.Option(
        "--legend",
        help='Class names: JSON {"0": "water", ...} or CSV id,name. Without it, names '
        "come from the raster's CLASS_NAMES tag (lcmap segment writes one).",
        dir_okay=False,
    ),
]
WindowSize = Annotated[
    int,
    typer.Option(
        "--window-size",
        help="Pixels per side of the windows read; memory grows with its square.",
        min=16,
    ),
]


@command("vectorize")
def vectorize(
    labels: Labels,
    output: Output,
    min_area: MinArea = 0,
    simplify: Simplify = 0,
    class_ids: ClassIds = None,
    legend: Legend = None,
    window_size: WindowSize = 2048,
    overwrite: opt.Overwrite = False,
) -> None:
    """Polygonise LABELS: one polygon per connected region of a class, nodata left out.

    The raster is read window by window and polygons cut at window edges are dissolved, so
    large rasters vectorise in bounded memory. Geometries are valid and in the raster's CRS;
    GeoJSON output is reprojected to EPSG:4326 (WGS 84 longitude/latitude), as RFC 7946
    requires. Attributes: class (label value), class_name, area and perimeter (in the raster's
    CRS units, also for GeoJSON).

    Examples:

        $ lcmap vectorize landcover.tif -o landcover.fgb

        $ lcmap vectorize landcover.tif -o water.geojson --class-ids 4 --legend legend.csv

        $ lcmap vectorize landcover.tif -o landcover.gpkg --min-area 50 --simplify 1
    """
    wanted = parse_numbers(class_ids, "class ids", "1,3", start=0)
    with reported_errors():
        from lcmap.io.vector import vectorize as run

        with progress_bar("vectorize") as update:
            result = run(
                labels,
                output,
                min_area=min_area,
                simplify=simplify,
                classes=wanted,
                legend=legend,
                overwrite=overwrite,
                window_size=window_size,
                progress=update,
            )
    dropped = f", {result.dropped} below --min-area dropped" if result.dropped else ""
    echo(
        f"Wrote {result.polygons} polygons of {len(result.polygons_per_class)} classes "
        f"to {result.output}{dropped}."
    )
