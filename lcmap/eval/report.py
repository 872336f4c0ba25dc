"""Evaluation results as data: dataclasses, their JSON form and a confusion-matrix plot.

Rendering tables is the CLI's job; this module stays free of rich. matplotlib is imported only
when a plot is drawn, through its object API and the Agg canvas, so it never touches pyplot's
global backend.
"""

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

import lcmap
from lcmap.errors import OutputPathError
from lcmap.eval.metrics import CountMatrix, MatchName, Metrics
from lcmap.io.staging import check_output, publish, temp_path

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"


class _Scores:
    """Shortcuts to the headline figures of ``self.metrics``."""

    metrics: Metrics

    @property
    def accuracy(self) -> float:
        """Pixel accuracy after matching (pooled for an index)."""
        return self.metrics.accuracy

    @property
    def miou(self) -> float:
        """Mean IoU over the classes present in the truth."""
        return self.metrics.miou

    @property
    def mean_f1(self) -> float:
        """Mean F1 over the classes present in the truth."""
        return self.metrics.mean_f1


@dataclass(frozen=True)
class EvaluationResult(_Scores):
    """A label map scored against a truth raster.

    Attributes:
        prediction: Path of the label map.
        truth: Path of the truth raster.
        match: How clusters were matched to classes.
        ignore: Truth values left out.
        class_ids: Truth class ids, in report order.
        class_names: One name per class id.
        cluster_ids: Prediction labels present on the evaluated pixels.
        counts: ``(len(cluster_ids), len(class_ids))`` raw pixel counts, cluster x class.
        mapping: Cluster -> matched class id, or None for a cluster counted as wrong.
        confusion: ``(n, n + 1)`` truth x predicted-class counts after matching; the last
            column holds the pixels of unmatched clusters.
        metrics: Scores of ``confusion``.
        pred_nodata_pixels: Valid truth pixels left out because the map is nodata there.
    """

    prediction: str
    truth: str
    match: MatchName
    ignore: list[int]
    class_ids: list[int]
    class_names: list[str]
    cluster_ids: list[int]
    counts: CountMatrix
    mapping: dict[int, int | None]
    confusion: CountMatrix
    metrics: Metrics
    pred_nodata_pixels: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (NaN becomes None)."""
        return {
            "prediction": self.prediction,
            "truth": self.truth,
            "match": self.match,
            "ignore": list(self.ignore),
            **_summary(self.metrics),
            "pred_nodata_pixels": self.pred_nodata_pixels,
            "classes": _class_rows(self.class_ids, self.class_names, self.metrics, self.mapping),
            "mapping": {str(k): v for k, v in sorted(self.mapping.items())},
            "confusion": _confusion_dict(self.confusion, self.class_ids),
            "cluster_counts": {
                "rows": "cluster",
                "columns": "truth class",
                "cluster_ids": list(self.cluster_ids),
                "class_ids": list(self.class_ids),
                "matrix": np.asarray(self.counts).tolist(),
            },
        }


@dataclass(frozen=True)
class SceneEvaluation:
    """One row of an index evaluation.

    Attributes:
        set: The ``set`` column of the index.
        name: The ``name`` column of the index.
        scene: Path of the scene that was segmented.
        result: The segmented map scored against the scene's truth.
        seconds: Wall time spent segmenting and scoring this scene.
    """

    set: str
    name: str
    scene: str
    result: EvaluationResult
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "set": self.set,
            "name": self.name,
            "scene": self.scene,
            "seconds": round(self.seconds, 3),
            **self.result.to_dict(),
        }


@dataclass(frozen=True)
class IndexResult(_Scores):
    """Per-scene and pooled scores of every scene listed in an index.

    The pooled confusion is the sum of the per-scene confusion matrices *after* each scene's
    clusters were matched to classes on that scene (see
    :func:`lcmap.workflows.evaluate_index.evaluate_index`).

    Attributes:
        index: Path of the index CSV.
        method: Segmentation method used.
        segment_options: Options passed to :func:`lcmap.api.segment`.
        match: How clusters were matched to classes on each scene.
        class_ids: Truth class ids, in report order.
        class_names: One name per class id.
        scenes: Per-scene results, in index order.
        confusion: Pooled ``(n, n + 1)`` truth x predicted-class counts.
        metrics: Scores of the pooled confusion.
        seconds: Total wall time.
    """

    index: str
    method: str
    segment_options: dict[str, Any]
    match: MatchName
    class_ids: list[int]
    class_names: list[str]
    scenes: list[SceneEvaluation]
    confusion: CountMatrix
    metrics: Metrics
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (NaN becomes None)."""
        return {
            "index": self.index,
            "method": self.method,
            "segment_options": _jsonable(self.segment_options),
            "match": self.match,
            "pooling": "sum of per-scene confusion matrices after per-scene matching",
            "seconds": round(self.seconds, 3),
            "pooled": {
                **_summary(self.metrics),
                "classes": _class_rows(self.class_ids, self.class_names, self.metrics, None),
                "confusion": _confusion_dict(self.confusion, self.class_ids),
            },
            "scenes": [s.to_dict() for s in self.scenes],
        }


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def _summary(metrics: Metrics) -> dict[str, Any]:
    return {
        "pixels": metrics.pixels,
        "accuracy": _clean(metrics.accuracy),
        "miou": _clean(metrics.miou),
        "mean_f1": _clean(metrics.mean_f1),
    }


def _class_rows(
    class_ids: Sequence[int],
    names: Sequence[str],
    metrics: Metrics,
    mapping: dict[int, int | None] | None,
) -> list[dict[str, Any]]:
    rows = []
    for i, (cid, name) in enumerate(zip(class_ids, names, strict=True)):
        row: dict[str, Any] = {
            "id": cid,
            "name": name,
            "support": int(metrics.support[i]),
            "predicted": int(metrics.predicted[i]),
            "iou": _clean(metrics.iou[i]),
            "f1": _clean(metrics.f1[i]),
            "precision": _clean(metrics.precision[i]),
            "recall": _clean(metrics.recall[i]),
        }
        if mapping is not None:
            row["clusters"] = sorted(k for k, v in mapping.items() if v == cid)
        rows.append(row)
    return rows


def _confusion_dict(confusion: CountMatrix, class_ids: Sequence[int]) -> dict[str, Any]:
    return {
        "rows": "truth class",
        "columns": "predicted class, then unmatched",
        "class_ids": list(class_ids),
        "matrix": np.asarray(confusion).tolist(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --------------------------------------------------------------------------- writing


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object], *, overwrite: bool) -> Path:
    """Write through a temporary file beside ``path``, then rename (complete or absent)."""
    path = check_output(path, overwrite)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        tmp = temp_path(path, ".part")
    except OSError as exc:
        raise OutputPathError(
            f"cannot write in '{parent}' ({exc.strerror}); choose a writable folder."
        ) from None
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(
    result: EvaluationResult | IndexResult, path: str | Path, *, overwrite: bool = False
) -> Path:
    """Write ``result.to_dict()`` (plus the lcmap version) as indented JSON.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        OutputPathError: The folder of ``path`` does not exist or is not writable.
    """
    text = to_json(result)
    return _write_atomically(Path(path), lambda fh: fh.write(text.encode()), overwrite=overwrite)


def to_json(result: EvaluationResult | IndexResult) -> str:
    """``result.to_dict()`` (plus the lcmap version) as indented JSON text."""
    data = {"lcmap_version": lcmap.__version__, **result.to_dict()}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


#: Picture formats of :func:`plot_confusion`, by file suffix.
PLOT_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def check_plot_name(path: str | Path) -> str:
    """The picture format ``path``'s suffix asks for.

    Raises:
        OutputPathError: a suffix of no format in :data:`PLOT_FORMATS`.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise OutputPathError(
            f"Plot {Path(path).name}: the name must end {', '.join(PLOT_FORMATS)} (the format "
            "follows the suffix)."
        )
    return PLOT_FORMATS[suffix]


def plot_confusion(
    confusion: CountMatrix,
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Save a row-normalised confusion matrix (truth rows, predicted columns) as a picture
    (PNG, PDF or SVG, by the suffix of ``path``).

    Cells show the share of each truth class's pixels; a last ``unmatched`` column appears
    when some pixels belong to clusters matched to no class.

    Args:
        confusion: ``(n, n)`` or ``(n, n + 1)`` counts (see ``EvaluationResult.confusion``).
        class_names: ``n`` class names.
        path: Output file (``.png``, ``.pdf`` or ``.svg``).
        title: Figure title (e.g. the headline scores).
        overwrite: Replace ``path`` if it exists.

    Returns:
        ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        OutputPathError: The folder of ``path`` does not exist or is not writable.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(confusion, dtype=np.float64)
    n = counts.shape[0]
    if counts.shape[1] == n + 1 and counts[:, n].sum() == 0:
        counts = counts[:, :n]
    columns = [*class_names, UNMATCHED][: counts.shape[1]]
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    side = 2.0 + 0.7 * max(n, 2)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of truth pixels")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted (after matching)")
    ax.set_ylabel("truth")
    if title:
        ax.set_title(title)
    if n <= 30:  # numbers stop being legible beyond that
        for (r, c), value in np.ndenumerate(share):
            if counts[r, c] > 0:
                ax.text(
                    c,
                    r,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if value > 0.5 else "black",
                )
    kind = check_plot_name(path)
    return _write_atomically(
        Path(path), lambda fh: fig.savefig(fh, format=kind, dpi=120), overwrite=overwrite
    )
