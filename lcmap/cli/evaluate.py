"""``lcmap evaluate`` (score a label map against truth) and ``lcmap evaluate-index`` (segment
and score every scene of an index, then pool)."""

import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from lcmap.cli import _options as opt
from lcmap.cli._app import command, echo, parse_bands, reported_errors
from lcmap.cli._progress import progress_bar
from lcmap.workflows.specs import RunSpec

if TYPE_CHECKING:
    from rich.table import Table

    from lcmap.eval import EvaluationResult, IndexResult
    from lcmap.eval.metrics import Metrics

Match = Literal["hungarian", "majority", "none", "names"]


_MATCH_HELP = (
    "Cluster-to-class matching: hungarian (one to one; leftover clusters count as wrong), "
    "majority (each cluster to its most frequent class), none (labels are classes) or names "
    "(a map named with 'lcmap classes': each class to the truth class of that name)."
)
MatchOption = Annotated[Match, typer.Option("--match", help=_MATCH_HELP)]
Ignore = Annotated[
    list[int] | None,
    typer.Option(
        "--ignore",
        metavar="VALUE",
        help="Truth value that is not a class (repeatable) \\[default: 255].",
    ),
]
JsonPath = Annotated[
    Path | None,
    typer.Option("--json", help="Write the full report as JSON (- for stdout).", dir_okay=False),
]
PlotPath = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Save the confusion matrix as a picture (.png, .pdf or .svg).",
        dir_okay=False,
    ),
]


ClassNames = Annotated[
    str | None,
    typer.Option(
        "--class-names",
        help="Truth class names in id order, e.g. water,tree,road \\[default: the truth's "
        "own, else the ids].",
    ),
]


@command("evaluate")
def evaluate(
    pred: Annotated[Path, typer.Argument(help="Label map to score (e.g. from 'lcmap segment').")],
    truth: Annotated[Path, typer.Argument(help="Truth classes on the same grid (band 1).")],
    match: MatchOption = "hungarian",
    ignore: Ignore = None,
    class_names: ClassNames = None,
    json_path: JsonPath = None,
    plot: PlotPath = None,
    overwrite: opt.Overwrite = False,
) -> None:
    """Score a label map PRED against TRUTH: accuracy, per-class IoU and F1, mIoU.

    Clusters are matched to truth classes first (--match). Pixels where PRED is nodata, or
    TRUTH is nodata or an --ignore value, are left out. mIoU and mean F1 average over the
    classes present in the truth. The table goes to stdout, messages to stderr.

    Examples:

        $ lcmap evaluate landcover.tif truth.tif --class-names water,tree,field,built

        $ lcmap evaluate landcover.tif truth.tif --match majority --ignore 0 --json report.json

        $ lcmap evaluate named.tif truth.tif --match names --ignore 0 --class-names -,forest,water

        $ lcmap evaluate landcover.tif truth.tif --json - | jq .miou
    """
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    if names is not None and not all(names):
        raise typer.BadParameter(f"'{class_names}' has an empty name.", param_hint="--class-names")
    with reported_errors():
        from lcmap.eval import evaluate as evaluate_map

        to_stdout = _check_reports(json_path, plot, overwrite, [pred, truth])
        with progress_bar("evaluate") as update:
            result = evaluate_map(
                pred,
                truth,
                match=match,
                ignore=tuple(ignore or (255,)),
                class_names=names,
                progress=update,
            )
        _report(result, json_path, plot, overwrite, to_stdout, match)


Index = Annotated[
    Path,
    typer.Argument(
        help="CSV set,name,scene,truth,classes: segment each scene, score it, pool.",
        dir_okay=False,
    ),
]
Method = Annotated[
    str, typer.Option("--method", "-m", help="Segmentation method fitted on each scene.")
]
Model = Annotated[
    Path | None,
    typer.Option("--model", help="Apply this saved model to every scene instead."),
]
Workdir = Annotated[
    Path | None,
    typer.Option("--workdir", help="Keep the maps in this folder.", file_okay=False),
]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Only the rows of this set (the index's set column; repeatable)."),
]


@command("evaluate-index", run=True)
def evaluate_index(
    index: Index,
    sets: Sets = None,
    method: Method = "kmeans",
    model: Model = None,
    classes: opt.Classes = None,
    bands: opt.Bands = None,
    param: opt.Params = None,
    workdir: Workdir = None,
    match: MatchOption = "hungarian",
    ignore: Ignore = None,
    json_path: JsonPath = None,
    plot: PlotPath = None,
    overwrite: opt.Overwrite = False,
    *,
    run: RunSpec,
) -> None:
    """Segment every scene of an index and score it against its truth, then pool.

    Each scene is segmented on its own (the method fitted on that scene, or --model), scored
    against its truth, and pooled: each scene's clusters are matched on that scene, then the
    per-scene class confusion matrices are summed. -k defaults to the number of truth classes;
    a method's own options go through -p (e.g. -p weights=dinov2.safetensors).

    Examples:

        $ lcmap evaluate-index dubai_dev/index.csv -m kmeans -k 5 --plot confusion.png

        $ lcmap evaluate-index dubai_dev/index.csv --model landcover.lcmap --json pooled.json

        $ lcmap evaluate-index mr_dev/index.csv --set gid5 -m kmeans
    """
    with reported_errors():
        from lcmap.workflows.evaluate_index import evaluate_index as evaluate_set
        from lcmap.workflows.specs import MethodSpec

        to_stdout = _check_reports(json_path, plot, overwrite, [index])
        fitted = MethodSpec(method, classes, parse_bands(bands), opt.method_options(param))
        with progress_bar("segment + evaluate") as update:
            result = evaluate_set(
                index,
                method=fitted,
                model=model,
                match=match,
                ignore=tuple(ignore or (255,)),
                run=replace(run, progress=update),
                workdir=workdir,
                sets=sets,
            )
        _report(result, json_path, plot, overwrite, to_stdout, match)


def _check_reports(
    json_path: Path | None, plot: Path | None, overwrite: bool, inputs: list[Path]
) -> bool:
    """Check the report files before minutes of work, not after; whether the JSON goes to
    stdout (``--json -``)."""
    from lcmap.eval import check_plot_name
    from lcmap.io.staging import check_distinct, check_output

    to_stdout = json_path is not None and str(json_path) == "-"
    for out in (None if to_stdout else json_path, plot):
        if out is not None:
            check_output(out, overwrite, inputs=inputs)
    check_distinct(None if to_stdout else json_path, plot)
    if plot is not None:
        check_plot_name(plot)
    return to_stdout


def _report(
    result: "EvaluationResult | IndexResult",
    json_path: Path | None,
    plot: Path | None,
    overwrite: bool,
    to_stdout: bool,
    match: str,
) -> None:
    """The tables, then the JSON and the confusion picture when asked for."""
    from lcmap.eval import IndexResult, plot_confusion, to_json, write_json

    _print_result(result, stderr=to_stdout)
    if to_stdout:
        sys.stdout.write(to_json(result))
    elif json_path is not None:
        write_json(result, json_path, overwrite=overwrite)
        echo(f"Wrote {json_path}")
    if plot is not None:
        pooled = " (pooled)" if isinstance(result, IndexResult) else ""
        title = f"{match}: accuracy {_fmt(result.accuracy)}, mIoU {_fmt(result.miou)}{pooled}"
        plot_confusion(result.confusion, result.class_names, plot, title=title, overwrite=overwrite)
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
