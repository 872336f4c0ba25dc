"""Scoring label maps against truth rasters: confusion, cluster matching, accuracy, IoU, F1.

Unsupervised maps carry cluster ids, not classes, so clusters are first matched to truth
classes (``hungarian``: one to one, clusters left over count as wrong; ``majority``: each cluster
to its most frequent class; ``none``: the labels already are the classes; ``names``: a named
map's classes to the truth classes of the same name), then scored.

Example:
    >>> from lcmap.eval import evaluate
    >>> result = evaluate("landcover.tif", "truth.tif", class_names=["water", "land"])
    >>> print(f"accuracy {result.accuracy:.3f}, mIoU {result.miou:.3f}")
"""

import csv
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcmap.errors import InputNotFoundError, InvalidSceneError
from lcmap.eval.metrics import (
    MATCH_METHODS,
    CountMatrix,
    MatchName,
    Metrics,
    RasterCounts,
    class_confusion,
    compute_metrics,
    count_rasters,
    match_clusters,
    match_names,
)
from lcmap.eval.report import (
    EvaluationResult,
    IndexResult,
    SceneEvaluation,
    check_plot_name,
    plot_confusion,
    to_json,
    write_json,
)
from lcmap.io.legend import tagged_class_names

log = logging.getLogger(__name__)

__all__ = [
    "MATCH_METHODS",
    "EvaluationResult",
    "IndexEntry",
    "IndexResult",
    "MatchName",
    "Metrics",
    "SceneEvaluation",
    "check_plot_name",
    "evaluate",
    "plot_confusion",
    "read_index",
    "to_json",
    "write_json",
]

INDEX_COLUMNS = ("set", "name", "scene", "truth", "classes")


def check_match(match: str) -> MatchName:
    for name in MATCH_METHODS:
        if match == name:
            return name
    raise ValueError(f"Unknown match '{match}'; expected one of {', '.join(MATCH_METHODS)}.")


def _named(
    num_classes: int | None, class_names: Sequence[str] | None
) -> tuple[int | None, list[str] | None]:
    """``num_classes`` and ``class_names`` checked against each other (K from the names)."""
    if class_names is None:
        return num_classes, None
    names = [str(n) for n in class_names]
    if num_classes is not None and num_classes != len(names):
        raise ValueError(
            f"num_classes is {num_classes} but {len(names)} class names were given; "
            "give one name per class."
        )
    return len(names), names


def _classes(
    truth: str | Path, present: list[int], num_classes: int | None, names: list[str] | None
) -> tuple[list[int], list[str]]:
    """The class ids of the evaluation (``0 .. num_classes - 1``, else those ``present`` in the
    truth) and their names (``names``, else the truth's own tags, else the ids)."""
    if num_classes is None:
        class_ids = present
    else:
        class_ids = list(range(num_classes))
        extra = sorted(set(present) - set(class_ids))
        if extra:
            raise InvalidSceneError(
                f"truth '{truth}' has labels {extra} but only {num_classes} classes "
                f"(ids 0-{num_classes - 1}) were given; name every class or pass "
                f"ignore={extra[0]}."
            )
    if names is not None:
        return class_ids, list(names)
    # the truth's own names (an lcmap map as truth, or a named raster), else the ids
    tagged = tagged_class_names(truth) or {}
    return class_ids, [tagged.get(c, str(c)) for c in class_ids]


def evaluate(
    pred: str | Path,
    truth: str | Path,
    *,
    match: MatchName = "hungarian",
    ignore: Iterable[int] = (255,),
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    window_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Score a label map against a truth raster on the same grid.

    The confusion counts are accumulated window by window (memory independent of the scene
    size). Pixels where the map is nodata, or the truth is nodata or an ``ignore`` value, are
    left out. Clusters are matched to classes with ``match`` (see
    :func:`lcmap.eval.metrics.match_clusters`); only the classes present in the truth take part
    in the matching and in mIoU / mean F1.

    Args:
        pred: Label map (band 1; e.g. from ``lcmap segment``), cluster ids from 0.
        truth: Truth raster (band 1), class ids from 0, on the same grid as ``pred``.
        match: ``hungarian``, ``majority``, ``none`` or ``names`` (``pred``'s class names, as
            ``lcmap classes`` writes them, to the truth classes of the same name).
        ignore: Truth values that are not classes.
        num_classes: Classes are ``0 .. num_classes - 1``. Default: ``len(class_names)`` if
            given, else the truth labels present.
        class_names: One name per class id, in id order. Default: the truth raster's
            ``CLASS_NAMES`` tag where it has one, else the ids.
        window_size: Side of the windows read at a time, in pixels.
        progress: Called with ``(windows done, windows total)``.

    Returns:
        Counts, matching, class confusion and metrics.

    Raises:
        InputNotFoundError: A file is missing.
        InvalidSceneError: Not integer rasters, different grids, negative labels, truth labels
            beyond the named classes, or no pixel left to evaluate; with ``names``, a map or
            truth without class names, or no name in common.
        ValueError: ``num_classes`` and ``class_names`` disagree, or ``match`` is unknown.
    """
    match = check_match(match)
    ignore = sorted({int(v) for v in ignore})
    num_classes, class_names = _named(num_classes, class_names)
    own = _names_to_match(pred, truth, class_names) if match == "names" else {}
    counts = count_rasters(pred, truth, ignore=ignore, window_size=window_size, progress=progress)
    if counts.pixels == 0:
        raise InvalidSceneError(
            f"no pixel to evaluate: '{pred}' and '{truth}' have no valid pixel in common "
            f"(ignored truth values {ignore}); check the nodata values and ignore=..."
        )
    present = [int(c) for c in counts.class_ids]
    class_ids, names = _classes(truth, present, num_classes, class_names)
    mapping = (
        _match_names(own, counts.cluster_ids, dict(zip(class_ids, names, strict=True)), pred)
        if match == "names"
        else match_clusters(counts.cluster_ids, counts.class_ids, counts.counts, match)
    )
    confusion, full = _confusions(counts, mapping, class_ids)
    if counts.pred_nodata_pixels:
        log.warning(
            "%d labelled truth pixels are nodata in '%s' and were left out.",
            counts.pred_nodata_pixels,
            pred,
        )
    return EvaluationResult(
        prediction=str(pred),
        truth=str(truth),
        match=match,
        ignore=ignore,
        class_ids=class_ids,
        class_names=names,
        cluster_ids=[int(c) for c in counts.cluster_ids],
        counts=full,
        mapping=mapping,
        confusion=confusion,
        metrics=compute_metrics(confusion),
        pred_nodata_pixels=counts.pred_nodata_pixels,
    )


def _confusions(
    counts: RasterCounts, mapping: dict[int, int | None], class_ids: list[int]
) -> tuple[CountMatrix, CountMatrix]:
    """The matched class confusion, and the raw (cluster, class) counts re-indexed onto every
    class of the evaluation, present in the truth or not."""
    clusters, present = counts.cluster_ids, [int(c) for c in counts.class_ids]
    confusion = class_confusion(clusters, present, counts.counts, mapping, class_ids)
    column = {c: j for j, c in enumerate(class_ids)}
    full = np.zeros((clusters.size, len(class_ids)), dtype=np.int64)
    full[:, [column[c] for c in present]] = counts.counts
    return confusion, full


def _names_to_match(
    pred: str | Path, truth: str | Path, class_names: list[str] | None
) -> dict[int, str]:
    """``match="names"``: ``pred``'s class names, checked before any pixel is read: a map
    without names, or a truth whose classes have none, is one clear error."""
    own = tagged_class_names(pred) or {}
    if all(n == f"class {c}" for c, n in own.items()):  # none, or lcmap's placeholders
        raise InvalidSceneError(
            f"'{pred}' has no class names to match by; name its classes with 'lcmap classes' "
            "first, or match by pixels (hungarian)."
        )
    if class_names is None and not tagged_class_names(truth):
        raise InvalidSceneError(
            f"the classes of '{truth}' have no names to match by; give them with class names "
            "(--class-names)."
        )
    return own


def _match_names(
    own: dict[int, str], clusters: Iterable[int], classes: dict[int, str], pred: str | Path
) -> dict[int, int | None]:
    """Each label to the truth class of its name; no name in common is an error."""
    mapping = match_names(list(clusters), own, classes)
    if all(v is None for v in mapping.values()):
        raise InvalidSceneError(
            f"no class name of '{pred}' ({', '.join(sorted(set(own.values())))}) is a truth "
            f"class ({', '.join(classes.values())})."
        )
    return mapping


@dataclass(frozen=True)
class IndexEntry:
    """One row of an index CSV (paths resolved against the CSV's folder)."""

    set: str
    name: str
    scene: Path
    truth: Path
    classes: list[str]


def read_index(index_csv: str | Path) -> list[IndexEntry]:
    """Read an index CSV with columns ``set,name,scene,truth,classes``.

    ``scene`` and ``truth`` are paths relative to the CSV's folder (or absolute); ``classes``
    lists the truth class names in id order, comma-separated (quote the field).

    Raises:
        InputNotFoundError: The index or a file it lists is missing.
        InvalidSceneError: Columns are missing or a row is incomplete.
    """
    path = Path(index_csv)
    if not path.is_file():
        raise InputNotFoundError(f"index '{path}' does not exist; check the path.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InvalidSceneError(
                    f"index '{path}' has columns {reader.fieldnames} but lacks {missing}; "
                    f"expected a header line '{','.join(INDEX_COLUMNS)}'."
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidSceneError(
            f"index '{path}' is not a UTF-8 CSV file ({exc}); expected a header line "
            f"'{','.join(INDEX_COLUMNS)}' and one row per scene."
        ) from exc
    if not rows:
        raise InvalidSceneError(f"index '{path}' lists no scene; expected one row per scene.")
    entries = []
    for line, row in enumerate(rows, start=2):
        empty = [c for c in INDEX_COLUMNS if not (row.get(c) or "").strip()]
        if empty:
            raise InvalidSceneError(
                f"index '{path}' line {line} has empty {empty}; fill every column."
            )
        entry = IndexEntry(
            set=row["set"].strip(),
            name=row["name"].strip(),
            scene=path.parent / row["scene"].strip(),
            truth=path.parent / row["truth"].strip(),
            classes=[c.strip() for c in row["classes"].split(",")],
        )
        for role, file in (("scene", entry.scene), ("truth", entry.truth)):
            if not file.exists():
                raise InputNotFoundError(
                    f"index '{path}' line {line} lists {role} '{file}', which does not exist; "
                    "paths are relative to the index's folder."
                )
        entries.append(entry)
    return entries
