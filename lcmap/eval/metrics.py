"""Confusion counts between a label map and a truth raster, cluster matching and metrics.

The counting is streamed: two aligned rasters are read window by window and only the
(cluster, class) pair counts are kept, so memory does not grow with the scene. Matching turns
cluster ids into truth classes (``hungarian`` one to one, ``majority`` many to one, ``none`` for
maps whose labels already are classes, ``names`` for named maps: :func:`match_names`); the
metrics are computed from the matched class confusion matrix.

Conventions: cluster and class ids are the raster values (labels start at 0); the *counts*
matrix has one row per cluster present and one column per truth class present; the *class
confusion* matrix has one row per truth class (true) and one column per truth class plus a last
``unmatched`` column (predicted), so ``confusion[t, c]`` counts pixels of class ``t`` mapped to
class ``c``.
"""

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window

from lcmap.errors import InvalidSceneError
from lcmap.io.scene import check_input_file

log = logging.getLogger(__name__)

MatchName = Literal["hungarian", "majority", "none", "names"]
MATCH_METHODS: tuple[MatchName, ...] = ("hungarian", "majority", "none", "names")

CountMatrix = NDArray[np.int64]

# Label values lcmap writes as nodata when a map declares none (uint8 / uint16 maps).
_DEFAULT_LABEL_NODATA = {"uint8": 255, "uint16": 65535}
# Above this many (cluster, class) cells a window is counted with np.unique instead of bincount.
_BINCOUNT_MAX_CELLS = 1 << 20


# --------------------------------------------------------------------------- counting


class ConfusionCounter:
    """Accumulates (cluster, class) pixel counts over any number of windows.

    Example:
        >>> counter = ConfusionCounter()
        >>> counter.add(np.array([0, 0, 1]), np.array([2, 2, 2]))
        >>> counter.matrix()
        (array([0, 1]), array([2]), array([[2],
               [1]]))
    """

    def __init__(self) -> None:
        """Start with no pixels counted."""
        self._pairs: dict[tuple[int, int], int] = {}

    @property
    def total(self) -> int:
        """Number of pixels counted so far."""
        return sum(self._pairs.values())

    def add(self, pred: NDArray[np.integer[Any]], truth: NDArray[np.integer[Any]]) -> None:
        """Count the pixel pairs of two equally shaped arrays of non-negative labels."""
        pred = np.asarray(pred).ravel()
        truth = np.asarray(truth).ravel()
        if pred.shape != truth.shape:
            raise ValueError(f"pred has {pred.size} pixels but truth has {truth.size}.")
        if pred.size == 0:
            return
        p = pred.astype(np.int64, copy=False)
        t = truth.astype(np.int64, copy=False)
        p_max, t_max = int(p.max()), int(t.max())
        if (p_max + 1) * (t_max + 1) <= _BINCOUNT_MAX_CELLS:
            flat = np.bincount(p * (t_max + 1) + t, minlength=(p_max + 1) * (t_max + 1))
            cells = np.flatnonzero(flat)
            p_ids, t_ids, counts = cells // (t_max + 1), cells % (t_max + 1), flat[cells]
        else:  # large label ids (uint16 maps): sort instead of a huge dense histogram
            codes, counts = np.unique((p << 32) | t, return_counts=True)
            p_ids, t_ids = codes >> 32, codes & 0xFFFFFFFF
        for key, count in zip(
            zip(p_ids.tolist(), t_ids.tolist(), strict=True), counts.tolist(), strict=True
        ):
            self._pairs[key] = self._pairs.get(key, 0) + count

    def matrix(self) -> tuple[NDArray[np.int64], NDArray[np.int64], CountMatrix]:
        """Return ``(cluster_ids, class_ids, counts)`` for the clusters and classes seen."""
        clusters = np.array(sorted({p for p, _ in self._pairs}), dtype=np.int64)
        classes = np.array(sorted({t for _, t in self._pairs}), dtype=np.int64)
        counts = np.zeros((clusters.size, classes.size), dtype=np.int64)
        row = {int(c): i for i, c in enumerate(clusters)}
        col = {int(c): i for i, c in enumerate(classes)}
        for (p, t), n in self._pairs.items():
            counts[row[p], col[t]] += n
        return clusters, classes, counts


@dataclass(frozen=True)
class RasterCounts:
    """Pair counts of a prediction against a truth raster.

    Attributes:
        cluster_ids: Prediction labels present on valid pixels, ascending.
        class_ids: Truth labels present on valid pixels, ascending.
        counts: ``(len(cluster_ids), len(class_ids))`` pixel counts.
        pixels: Pixels counted (valid in both rasters).
        pred_nodata_pixels: Valid truth pixels left out because the prediction is nodata there.
    """

    cluster_ids: NDArray[np.int64]
    class_ids: NDArray[np.int64]
    counts: CountMatrix
    pixels: int
    pred_nodata_pixels: int


def _open_labels(path: Path, role: str) -> rasterio.io.DatasetReader:
    path = Path(path)
    check_input_file(path, f"{role} raster")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InvalidSceneError(
            f"{role} '{path}' is not a readable raster ({exc}); expected a single-band label "
            "GeoTIFF."
        ) from None
    if not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
        src.close()
        raise InvalidSceneError(
            f"{role} '{path}' holds {src.dtypes[0]} values; expected integer labels "
            "(e.g. uint8 as written by `lcmap segment`)."
        )
    if src.count > 1:
        src.close()
        raise InvalidSceneError(
            f"{role} '{path}' has {src.count} bands; expected a single-band label raster "
            "(pick one with gdal_translate -b N)."
        )
    return src


def _check_same_grid(pred: rasterio.io.DatasetReader, truth: rasterio.io.DatasetReader) -> None:
    problems = []
    if (pred.width, pred.height) != (truth.width, truth.height):
        problems.append(f"size {pred.width}x{pred.height} vs {truth.width}x{truth.height} pixels")
    if not pred.transform.almost_equals(truth.transform, precision=1e-6):
        problems.append(f"transform {tuple(pred.transform)[:6]} vs {tuple(truth.transform)[:6]}")
    if pred.crs is not None and truth.crs is not None and pred.crs != truth.crs:
        problems.append(f"CRS {pred.crs} vs {truth.crs}")
    if problems:
        raise InvalidSceneError(
            f"prediction '{pred.name}' and truth '{truth.name}' are not on one grid "
            f"({'; '.join(problems)}); expected the same width, height, transform and CRS. "
            f"Resample the prediction onto the truth grid, e.g. `gdalwarp -r near -t_srs "
            f"<truth CRS> -te <truth bounds> -ts {truth.width} {truth.height} "
            f"{Path(pred.name).name} aligned.tif`."
        )


def _valid_mask(
    src: rasterio.io.DatasetReader, window: Window, values: NDArray[Any], extra: Iterable[int]
) -> NDArray[np.bool_]:
    flags = src.mask_flag_enums[0]
    valid: NDArray[np.bool_]
    # Nodata or no mask at all: derive validity from the values, saving a second read.
    if flags == [MaskFlags.all_valid]:
        valid = np.ones(values.shape, dtype=bool)
    elif flags == [MaskFlags.nodata]:
        valid = values != src.nodata
    else:  # internal mask or alpha band
        valid = src.read_masks(1, window=window) != 0
    excluded = [int(v) for v in extra]
    if excluded:
        valid &= ~np.isin(values, excluded)
    return valid


def _read(
    src: rasterio.io.DatasetReader, window: Window, excluded: Iterable[int], role: str
) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Values and validity of band 1 over ``window``; a decoding failure is one clear error."""
    try:
        values = src.read(1, window=window)
        return values, _valid_mask(src, window, values, excluded)
    except RasterioError as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise InvalidSceneError(
            f"The {role} {Path(src.name).name} cannot be read at rows {int(window.row_off)}-"
            f"{int(window.row_off + window.height)} ({str(cause).splitlines()[0]}); the file "
            "is truncated or corrupt: re-create or re-download it."
        ) from exc


def _windows(width: int, height: int, size: int) -> list[Window]:
    return [
        Window(col, row, min(size, width - col), min(size, height - row))
        for row in range(0, height, size)
        for col in range(0, width, size)
    ]


def count_rasters(
    pred_path: str | Path,
    truth_path: str | Path,
    *,
    ignore: Iterable[int] = (255,),
    window_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> RasterCounts:
    """Count (cluster, class) pixel pairs of two aligned label rasters, window by window.

    Pixels are left out where the prediction is nodata (its declared nodata or mask; without
    one, lcmap's 255 for uint8 and 65535 for uint16) and where the truth is nodata or one of
    the ``ignore`` values.

    Args:
        pred_path: Label map (band 1), e.g. the output of ``lcmap segment``.
        truth_path: Truth classes (band 1) on the same grid.
        ignore: Truth values that are not classes (unlabelled pixels).
        window_size: Side of the square windows read at a time, in pixels.
        progress: Called with ``(windows done, windows total)``.

    Returns:
        The counts and the number of pixels used.

    Raises:
        InputNotFoundError: A file is missing.
        InvalidSceneError: A file is not an integer raster, the grids differ, or a label is
            negative.
    """
    if window_size < 1:
        raise ValueError(f"window_size is {window_size}; expected a positive number of pixels.")
    ignore = [int(v) for v in ignore]
    with (
        _open_labels(Path(pred_path), "prediction") as pred,
        _open_labels(Path(truth_path), "truth") as truth,
    ):
        _check_same_grid(pred, truth)
        pred_nodata = (
            []
            if pred.nodata is not None
            else [v for k, v in _DEFAULT_LABEL_NODATA.items() if pred.dtypes[0] == k]
        )
        counter = ConfusionCounter()
        lost = 0
        windows = _windows(truth.width, truth.height, window_size)
        for i, window in enumerate(windows, start=1):
            t, t_valid = _read(truth, window, ignore, "truth")
            p, p_valid = _read(pred, window, pred_nodata, "prediction")
            both = t_valid & p_valid
            lost += int(t_valid.sum() - both.sum())
            p_sel, t_sel = p[both], t[both]
            for role, values, name in (
                ("prediction", p_sel, pred.name),
                ("truth", t_sel, truth.name),
            ):
                if values.size and values.min() < 0:
                    hint = (
                        " pass it with ignore="
                        if role == "truth"
                        else " declare it as the map's nodata"
                    )
                    raise InvalidSceneError(
                        f"{role} '{name}' has the negative label {int(values.min())}; expected "
                        f"labels >= 0; if it marks missing data,{hint}."
                    )
            counter.add(p_sel, t_sel)
            if progress is not None:
                progress(i, len(windows))
    clusters, classes, counts = counter.matrix()
    return RasterCounts(clusters, classes, counts, int(counts.sum()), lost)


# --------------------------------------------------------------------------- matching


def match_clusters(
    cluster_ids: Sequence[int] | NDArray[np.int64],
    class_ids: Sequence[int] | NDArray[np.int64],
    counts: CountMatrix,
    method: MatchName = "hungarian",
) -> dict[int, int | None]:
    """Map each cluster to a truth class (or to None: its pixels count as wrong).

    Args:
        cluster_ids: Row labels of ``counts``.
        class_ids: Column labels of ``counts`` (the truth classes present).
        counts: Pixel counts, clusters x classes.
        method: ``hungarian``: one to one, maximising the matched pixels
            (``scipy.optimize.linear_sum_assignment``); with more clusters than classes the
            clusters left over map to None. ``majority``: each cluster to its most frequent
            class (many to one; ties go to the lowest class id). ``none``: a cluster maps to
            the class with the same id, or None if the truth has no such class.

    Returns:
        ``{cluster_id: class_id or None}`` for every cluster.
    """
    clusters = [int(c) for c in cluster_ids]
    classes = [int(c) for c in class_ids]
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (len(clusters), len(classes)):
        raise ValueError(
            f"counts has shape {counts.shape}; expected ({len(clusters)}, {len(classes)})."
        )
    mapping: dict[int, int | None] = dict.fromkeys(clusters)
    if method == "names":
        raise ValueError("matching by names needs the names: use match_names.")
    if method == "none":
        present = set(classes)
        return {c: (c if c in present else None) for c in clusters}
    if not clusters or not classes:
        return mapping
    if method == "majority":
        best = counts.argmax(axis=1)
        for i, c in enumerate(clusters):
            if counts[i, best[i]] > 0:
                mapping[c] = classes[int(best[i])]
        return mapping
    if method == "hungarian":
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(counts, maximize=True)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            mapping[clusters[r]] = classes[c]
        return mapping
    raise ValueError(f"Unknown match method '{method}'; expected one of {MATCH_METHODS}.")


def match_names(
    cluster_ids: Sequence[int] | NDArray[np.int64],
    cluster_names: Mapping[int, str],
    class_names: Mapping[int, str],
) -> dict[int, int | None]:
    """Map each label of a named map to the truth class of the same name (compared by
    :func:`lcmap.io.legend.name_key`), or to None (its pixels count as wrong): a map whose
    classes were named (``lcmap classes``) scored against truth numbered another way.

    Example:
        >>> match_names([0, 1, 2], {0: "Water", 1: "trees", 2: "cloud"}, {3: "trees", 5: "water"})
        {0: 5, 1: 3, 2: None}
    """
    from lcmap.io.legend import name_key

    by_name = {name_key(n): c for c, n in sorted(class_names.items(), reverse=True)}
    return {int(c): by_name.get(name_key(cluster_names.get(int(c), ""))) for c in cluster_ids}


def class_confusion(
    cluster_ids: Sequence[int] | NDArray[np.int64],
    class_ids: Sequence[int] | NDArray[np.int64],
    counts: CountMatrix,
    mapping: Mapping[int, int | None],
    classes: Sequence[int],
) -> CountMatrix:
    """Fold cluster counts into a truth x predicted-class matrix through ``mapping``.

    Args:
        cluster_ids: Row labels of ``counts``.
        class_ids: Column labels of ``counts``; each must be in ``classes``.
        counts: Pixel counts, clusters x truth classes.
        mapping: Cluster -> class id or None (see :func:`match_clusters`).
        classes: The class ids of the evaluation, in report order.

    Returns:
        ``(len(classes), len(classes) + 1)`` counts: rows truth, columns predicted class and a
        last column for pixels of unmatched clusters.
    """
    index = {int(c): i for i, c in enumerate(classes)}
    unknown = sorted({int(c) for c in class_ids} - set(index))
    if unknown:
        raise ValueError(f"truth labels {unknown} are not among the classes {list(classes)}.")
    n = len(classes)
    out = np.zeros((n, n + 1), dtype=np.int64)
    cols = [index[int(c)] for c in class_ids]
    for i, cluster in enumerate(cluster_ids):
        target = mapping.get(int(cluster))
        j = index.get(target, n) if target is not None else n
        np.add.at(out, (cols, j), counts[i])
    return out


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """Scores of a class confusion matrix.

    Per-class arrays follow the class order; a class absent from the truth has NaN IoU, F1 and
    recall (and NaN precision when nothing was predicted as it) and is left out of the means.

    Attributes:
        accuracy: Correct pixels / pixels counted (unmatched clusters count as wrong).
        miou: Mean IoU over the classes present in the truth.
        mean_f1: Mean F1 over the classes present in the truth.
        iou: Per-class intersection over union.
        f1: Per-class F1 score.
        precision: Per-class precision (correct / predicted as the class).
        recall: Per-class recall (correct / truth pixels of the class).
        support: Per-class truth pixels.
        predicted: Per-class pixels predicted as the class.
        pixels: Pixels counted.
    """

    accuracy: float
    miou: float
    mean_f1: float
    iou: NDArray[np.float64]
    f1: NDArray[np.float64]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    support: NDArray[np.int64]
    predicted: NDArray[np.int64]
    pixels: int


def _ratio(num: NDArray[np.int64], den: NDArray[np.int64]) -> NDArray[np.float64]:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def compute_metrics(confusion: CountMatrix) -> Metrics:
    """Accuracy, per-class IoU/F1/precision/recall, mIoU and mean F1 from a class confusion.

    Args:
        confusion: ``(n, n + 1)`` counts as returned by :func:`class_confusion` (a square
            ``(n, n)`` matrix is accepted too).

    Returns:
        The metrics; NaN where a ratio has no pixels.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    n = confusion.shape[0]
    if confusion.shape[1] not in (n, n + 1):
        raise ValueError(f"confusion has shape {confusion.shape}; expected ({n}, {n + 1}).")
    tp = np.diagonal(confusion[:, :n]).astype(np.int64)
    support = confusion.sum(axis=1)
    predicted = confusion[:, :n].sum(axis=0)
    pixels = int(confusion.sum())
    present = support > 0
    iou = _ratio(tp, support + predicted - tp)
    f1 = _ratio(2 * tp, support + predicted)
    iou[~present] = np.nan
    f1[~present] = np.nan
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)

    def mean(values: NDArray[np.float64]) -> float:
        return float(values[present].mean()) if present.any() else math.nan

    return Metrics(
        accuracy=float(tp.sum() / pixels) if pixels else math.nan,
        miou=mean(iou),
        mean_f1=mean(f1),
        iou=iou,
        f1=f1,
        precision=precision,
        recall=recall,
        support=support,
        predicted=predicted,
        pixels=pixels,
    )
