"""``lcmap evaluate``: score a label map against truth, or segment and score an index of scenes."""

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from lcmap.cli._app import (
    Overwrite,
    Quiet,
    Verbose,
    app,
    echo,
    parse_bands,
    progress_bar,
    reported_errors,
    setup_logging,
)
from lcmap.cli._options import (
    Backbone,
    Bands,
    Classes,
    Crf,
    FeatureLayer,
    Halo,
    MapBatchSize,
    Params,
    Tile,
    Weights,
    method_options,
)

if TYPE_CHECKING:
    from rich.table import Table

    from lcmap.eval import EvaluationResult, IndexResult
    from lcmap.eval.metrics import Metrics

Match = Literal["hungarian", "majority", "none"]


@app.command("evaluate")
def evaluate(
    pred: Annotated[
        Path | None,
        typer.Argument(help="Label map to score (e.g. from 'lcmap segment').", show_default=False),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Argument(help="Truth classes on the same grid (band 1).", show_default=False),
    ] = None,
    match: Annotated[
        Match,
        typer.Option(
            "--match",
            help="Cluster-to-class matching: hungarian (one to one; leftover clusters count as "
            "wrong), majority (each cluster to its most frequent class) or none (labels are "
            "classes).",
        ),
    ] = "hungarian",
    ignore: Annotated[
        list[int] | None,
        typer.Option(
            "--ignore",
            metavar="VALUE",
            help="Truth value that is not a class (repeatable) \\[default: 255].",
        ),
    ] = None,
    class_names: Annotated[
        str | None,
        typer.Option("--class-names", help="Truth class names in id order, e.g. water,tree,road."),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the full report as JSON (- for stdout).", dir_okay=False
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Save the confusion matrix as a picture (.png, .pdf or .svg).",
            dir_okay=False,
        ),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="CSV set,name,scene,truth,classes: segment each scene, score it, pool.",
            dir_okay=False,
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method", "-m", help="With --index: segmentation method \\[default: kmeans]."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="With --index: apply this saved model to every scene."),
    ] = None,
    classes: Classes = None,
    bands: Bands = None,
    tile: Tile = None,
    halo: Halo = None,
    batch_size: MapBatchSize = None,
    device: Annotated[
        str | None, typer.Option("--device", help="With --index: auto, cpu, cuda or cuda:N.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="With --index: fixes sampling and initialisation.")
    ] = None,
    backbone: Backbone = None,
    weights: Weights = None,
    feature_layer: FeatureLayer = None,
    crf: Crf = None,
    param: Params = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir", help="With --index: keep the maps in this folder.", file_okay=False
        ),
    ] = None,
    overwrite: Overwrite = False,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Score a label map PRED against TRUTH: accuracy, per-class IoU and F1, mIoU.

    Clusters are matched to truth classes first (--match). Pixels where PRED is nodata, or
    TRUTH is nodata or an --ignore value, are left out. mIoU and mean F1 average over the
    classes present in the truth. The table goes to stdout, messages to stderr.

    With --index, every scene of the CSV is segmented on its own (fitted on that scene, or
    with --model), scored against its truth, and pooled: each scene's clusters are matched on
    that scene, then the per-scene class confusion matrices are summed. -k defaults to the
    number of truth classes.

    Examples:

        $ lcmap evaluate landcover.tif truth.tif --class-names water,tree,field,built

        $ lcmap evaluate landcover.tif truth.tif --match majority --ignore 0 --json report.json

        $ lcmap evaluate --index dubai_dev/index.csv --method kmeans -k 5 --plot confusion.png
    """
    setup_logging(verbose, quiet)
    index_only = {
        "--method": method,
        "--model": model,
        "-k/--classes": classes,
        "--bands": bands,
        "--tile": tile,
        "--halo": halo,
        "--batch-size": batch_size,
        "--device": device,
        "--seed": seed,
        "--backbone": backbone,
        "--weights": weights,
        "--feature-layer": feature_layer,
        "--crf": crf,
        "--param": param,
        "--workdir": workdir,
    }
    if index is None:
        if pred is None or truth is None:
            raise typer.BadParameter(
                "give PRED and TRUTH (a label map and its truth raster), or --index FILE.",
                param_hint="PRED TRUTH",
            )
        given = [name for name, value in index_only.items() if value not in (None, [])]
        if given:
            raise typer.BadParameter(
                "these options only apply with --index (segmenting scenes); PRED is already a map.",
                param_hint=", ".join(given),
            )
    else:
        if pred is not None or truth is not None:
            raise typer.BadParameter(
                "give either PRED TRUTH or --index FILE, not both.", param_hint="--index"
            )
        if class_names:
            raise typer.BadParameter(
                "an index names its classes in its classes column; --class-names is for "
                "PRED TRUTH.",
                param_hint="--class-names",
            )
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    if names is not None and not all(names):
        raise typer.BadParameter(f"'{class_names}' has an empty name.", param_hint="--class-names")
    ignore_values = tuple(ignore) if ignore else (255,)

    with reported_errors():
        from lcmap.eval import check_plot_name, plot_confusion, to_json, write_json
        from lcmap.eval import evaluate as evaluate_map
        from lcmap.io.staging import check_distinct, check_output
        from lcmap.workflows.evaluate_index import evaluate_index

        # Fail on an unwritable output before minutes of work, not after: every output passes
        # the one guard (never an input, a device, a FIFO or an existing file unasked).
        to_stdout = json_path is not None and str(json_path) == "-"
        inputs = [p for p in (pred, truth, index) if p is not None]
        for out in (None if to_stdout else json_path, plot):
            if out is not None:
                check_output(out, overwrite, inputs=inputs)
        check_distinct(None if to_stdout else json_path, plot)
        if plot is not None:
            check_plot_name(plot)

        result: EvaluationResult | IndexResult
        if index is not None:
            options: dict[str, Any] = {
                "model": model,
                "bands": parse_bands(bands),
                "tile": tile,
                "halo": halo,
                "batch_size": batch_size,
                "device": device,
                "options": method_options(backbone, weights, feature_layer, crf, param) or None,
            }
            options = {k: v for k, v in options.items() if v is not None}
            with progress_bar("segment + evaluate") as update:
                result = evaluate_index(
                    index,
                    method=method or "kmeans",
                    classes=classes,
                    match=match,
                    ignore=ignore_values,
                    seed=seed if seed is not None else 0,
                    segment_options=options,
                    workdir=workdir,
                    progress=update,
                )
        else:
            assert pred is not None and truth is not None  # checked above
            with progress_bar("evaluate") as update:
                result = evaluate_map(
                    pred,
                    truth,
                    match=match,
                    ignore=ignore_values,
                    class_names=names,
                    progress=update,
                )
        _print_result(result, stderr=to_stdout)
        if to_stdout:
            sys.stdout.write(to_json(result))
        elif json_path is not None:
            write_json(result, json_path, overwrite=overwrite)
            echo(f"Wrote {json_path}")
        if plot is not None:
            title = f"{match}: accuracy {_fmt(result.accuracy)}, mIoU {_fmt(result.miou)}" + (
                " (pooled)" if index is not None else ""
            )
            plot_confusion(
                result.confusion, result.class_names, plot, title=title, overwrite=overwrite
            )
            echo(f"Wrote {plot}")


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def _class_table(
    title: str,
    class_ids: list[int],
    names: list[str],
    metrics: "Metrics",
    mapping: dict[int, int | None] | None,
) -> "Table":
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("class")
    if mapping is not None:
        table.add_column("clusters")
    for header in ("truth px", "IoU", "F1", "precision", "recall"):
        table.add_column(header, justify="right")
    for i, (cid, name) in enumerate(zip(class_ids, names, strict=True)):
        label = name if name == str(cid) else f"{cid} {name}"
        cells = [label]
        if mapping is not None:
            cells.append(",".join(str(k) for k, v in sorted(mapping.items()) if v == cid) or "-")
        cells += [
            f"{int(metrics.support[i]):,}",
            _fmt(metrics.iou[i]),
            _fmt(metrics.f1[i]),
            _fmt(metrics.precision[i]),
            _fmt(metrics.recall[i]),
        ]
        table.add_row(*cells)
    return table


def _summary(metrics: "Metrics") -> str:
    return (
        f"accuracy {_fmt(metrics.accuracy)}   mIoU {_fmt(metrics.miou)}   "
        f"mean F1 {_fmt(metrics.mean_f1)}   ({metrics.pixels:,} px)"
    )


def _print_result(result: "EvaluationResult | IndexResult", stderr: bool = False) -> None:
    """Print the result tables on stdout (they are the command's output)."""
    from rich.console import Console
    from rich.table import Table

    from lcmap.eval import EvaluationResult

    console = Console(highlight=False, stderr=stderr)  # stdout holds the JSON with --json -
    if isinstance(result, EvaluationResult):
        console.print(
            _class_table(
                f"{result.prediction} vs {result.truth} ({result.match} matching)",
                result.class_ids,
                result.class_names,
                result.metrics,
                result.mapping,
            )
        )
        unmatched = sorted(k for k, v in result.mapping.items() if v is None)
        if unmatched:
            wrong = int(result.confusion[:, -1].sum())
            console.print(
                f"unmatched clusters {', '.join(map(str, unmatched))}: {wrong:,} px counted wrong"
            )
        console.print(_summary(result.metrics))
        return

    scenes = Table(
        title=f"{result.index}: {result.method}, {result.match} matching per scene",
        title_justify="left",
    )
    scenes.add_column("set")
    scenes.add_column("scene")
    for header in ("px", "accuracy", "mIoU", "mean F1", "s"):
        scenes.add_column(header, justify="right")
    for s in result.scenes:
        m = s.result.metrics
        scenes.add_row(
            s.set,
            s.name,
            f"{m.pixels:,}",
            _fmt(m.accuracy),
            _fmt(m.miou),
            _fmt(m.mean_f1),
            f"{s.seconds:.1f}",
        )
    console.print(scenes)
    console.print(
        _class_table(
            "pooled (per-scene matching, summed confusion)",
            result.class_ids,
            result.class_names,
            result.metrics,
            None,
        )
    )
    console.print(
        f"pooled over {len(result.scenes)} scenes: {_summary(result.metrics)} "
        f"in {result.seconds:.1f} s"
    )
