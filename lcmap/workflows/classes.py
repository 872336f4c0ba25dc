"""The classes workflow (``lcmap classes``): name and merge the classes of maps and of the model
that made them, without mapping again.

An unsupervised map holds K cluster ids. Each id gets a name (``--name 0=water``); ids given the
same name become one class (``--merge 1,2=built-up`` is the same as naming both). The classes
are renumbered densely in the order of their first id, so that a map of named classes has no
gaps; colours follow the names (a familiar colour for common land-cover names, ``--colour`` to
choose). Maps are rewritten window by window through a lookup table, on their own grid, with
the names and colours where GIS tools look (colour table, category names, attribute table).
A model rewritten the same way keeps its tensors and records the lookup table, so that every
later ``lcmap segment --model`` maps the named, merged classes directly.
"""

import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window

from lcmap.errors import InvalidModelError, InvalidOptionError, InvalidSceneError
from lcmap.io.legend import named_colours, tagged_class_names
from lcmap.io.mosaic import MOSAIC, check_mosaic_outputs, write_mosaic
from lcmap.io.scene import check_input_file, open_scene
from lcmap.io.staging import check_distinct, check_output, output_folder, publish
from lcmap.io.writer import LabelWriter, MapGrid, check_map_output
from lcmap.models import ModelHeader, read_header, read_tensors, stage_model
from lcmap.stitch import NODATA, label_dtype
from lcmap.types import ProgressFn

log = logging.getLogger(__name__)

#: Rows of a map read and written at a time: memory stays flat whatever the map's size.
_ROWS = 512
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


@dataclass
class ClassPlan:
    """What becomes of each of K classes.

    Attributes:
        relabel: the new class of each old id (length K).
        names: the new classes' names, by new id.
        colours: the new classes' RGB colours, by new id.
    """

    relabel: list[int]
    names: list[str]
    colours: list[tuple[int, int, int]]

    def describe(self, old_names: Sequence[str]) -> str:
        """``water <- 0; built-up <- 1, 2`` for the log and the sidecar."""
        groups: dict[int, list[str]] = {}
        for old, new in enumerate(self.relabel):
            groups.setdefault(new, []).append(old_names[old])
        return "; ".join(f"{self.names[new]} <- {', '.join(groups[new])}" for new in groups)


@dataclass
class ClassesResult:
    """What :func:`name_classes` wrote."""

    plan: ClassPlan
    maps: list[Path] = field(default_factory=list)
    model: Path | None = None
    mosaic: Path | None = None  # over several maps written to a folder (lcmap.io.mosaic)


def parse_colour(text: str) -> tuple[int, int, int]:
    """``#1f78b4`` (or ``1f78b4``) as an RGB triple.

    Raises:
        InvalidOptionError: not six hexadecimal digits.
    """
    found = _HEX.fullmatch(text.strip())
    if found is None:
        raise InvalidOptionError(f"Colour {text!r} is not #RRGGBB (six hexadecimal digits).")
    value = int(found.group(1), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def plan_classes(
    old_names: Sequence[str],
    old_colours: Sequence[tuple[int, int, int]],
    names: Mapping[int, str],
    colours: Mapping[str, tuple[int, int, int]] | None = None,
) -> ClassPlan:
    """The new classes: ``names`` gives old ids a name (the same name twice merges them); the
    ids not named keep their name and colour.

    Args:
        old_names: the K classes' current names.
        old_colours: their current colours.
        names: old id -> new name.
        colours: new name (or old id, as text) -> colour, overriding the defaults.

    Raises:
        InvalidOptionError: an id outside 0..K-1, an empty name, or a colour for no class.
    """
    k = len(old_names)
    for old, name in names.items():
        if not 0 <= old < k:
            raise InvalidOptionError(
                f"Class {old} is not in the map: its classes are 0 to {k - 1}."
            )
        if not name.strip():
            raise InvalidOptionError(f"Class {old} is given an empty name.")
    final = [names.get(i, old_names[i]).strip() for i in range(k)]
    order = list(dict.fromkeys(final))  # each name once, in the order of its first id
    relabel = [order.index(name) for name in final]
    chosen = dict(colours or {})
    known = set(order) | {str(i) for i in range(k)}
    unknown = sorted(set(chosen) - known)
    if unknown:
        raise InvalidOptionError(
            f"A colour is given for {', '.join(unknown)}, which is no class of the result "
            f"({', '.join(order)})."
        )
    defaults = named_colours(order)
    new_colours: list[tuple[int, int, int]] = []
    for new, name in enumerate(order):
        first = relabel.index(new)
        kept = name == old_names[first] and first not in names  # untouched: its own colour
        colour = old_colours[first] if kept else defaults[new]
        for key in (str(first), name):
            colour = chosen.get(key, colour)
        new_colours.append((int(colour[0]), int(colour[1]), int(colour[2])))
    return ClassPlan(relabel, order, new_colours)


def map_classes(path: str | Path) -> tuple[list[str], list[tuple[int, int, int]], int]:
    """A label map's class names, colours and class count K (lcmap's tags and colour table;
    without them, ``class i`` for each id up to the largest found, read window by window).

    Raises:
        InvalidSceneError: not a single-band integer label raster.
    """
    with open_scene(path, "Map") as src:
        if src.count != 1 or np.dtype(src.dtypes[0]).kind not in "iu":
            raise InvalidSceneError(
                f"{path} is not a label map: {src.count} band(s) of {src.dtypes[0]}; expected "
                "one band of integer classes (as lcmap segment writes)."
            )
        tagged = tagged_class_names(path) or {}
        k = max(tagged) + 1 if tagged else _largest_label(src) + 1
        try:
            table = src.colormap(1)
        except ValueError:
            table = {}
    names = [tagged.get(i, f"class {i}") for i in range(k)]
    fallback = named_colours(names)
    colours = [
        (int(table[i][0]), int(table[i][1]), int(table[i][2])) if i in table else fallback[i]
        for i in range(k)
    ]
    return names, colours, k


def _largest_label(src: Any) -> int:
    largest = -1
    nodata = src.nodata
    for row in range(0, src.height, _ROWS):
        block = src.read(1, window=Window(0, row, src.width, min(_ROWS, src.height - row)))
        valid = block[block != nodata] if nodata is not None else block
        if valid.size:
            largest = max(largest, int(valid.max()))
    if largest < 0:
        raise InvalidSceneError(f"{src.name} has no labelled pixel.")
    return largest


@dataclass
class LabelledNames:
    """Names read off labels (:func:`names_from_labels`).

    Attributes:
        names: cluster id -> the name most of its labelled pixels carry.
        shares: cluster id -> that name's share of its labelled pixels.
        unlabelled: clusters with no labelled pixel (they keep their names).
        weak: clusters whose best name held less than the share asked for (kept too).
    """

    names: dict[int, str]
    shares: dict[int, float]
    unlabelled: list[int]
    weak: list[int]


def names_from_labels(
    maps: Sequence[str | Path],
    labels: str | Path,
    column: str | None = None,
    min_share: float = 0.0,
) -> LabelledNames:
    """Each cluster's name from labels: points or polygons (any CRS, a class column of names or
    ids) or a label raster on the map's grid; read window by window over every map.

    Raises:
        InvalidOptionError: ``min_share`` outside 0..1.
        InvalidSceneError: labels that cannot be read, or that label no pixel of the maps.
    """
    from lcmap.io.labels import is_vector, open_labels, polygon_class_names

    if not 0.0 <= min_share <= 1.0:
        raise InvalidOptionError(f"min_share={min_share}: give a share from 0 to 1.")
    for path in maps:
        check_input_file(path, "Map")
    label_names = polygon_class_names(labels, column) if is_vector(labels) else None
    # Label ids of a raster (or of id polygons) are named by the raster's own tag, if any.
    tagged = {} if is_vector(labels) else (tagged_class_names(labels) or {})
    ids = {name: i for i, name in enumerate(label_names)} if label_names else None
    counts: NDArray[np.int64] | None = None
    for path in maps:
        with rasterio.open(path) as src:
            source, opened = open_labels(labels, src, column=column, class_ids=ids)
            try:
                found = _count_pairs(src, source)
            finally:
                if opened is not None:
                    opened.close()
        counts = found if counts is None else _add(counts, found)
    assert counts is not None
    if not counts.any():
        raise InvalidSceneError(f"{Path(labels).name} labels no pixel of the maps given.")
    names, shares, unlabelled, weak = {}, {}, [], []
    for cluster, row in enumerate(counts):
        total = int(row.sum())
        if total == 0:
            unlabelled.append(cluster)
            continue
        best = int(row.argmax())
        share = float(row[best]) / total
        if share < min_share:
            weak.append(cluster)
            continue
        names[cluster] = label_names[best] if label_names else tagged.get(best, f"label {best}")
        shares[cluster] = share
    return LabelledNames(names, shares, unlabelled, weak)


def _count_pairs(src: Any, source: Any) -> NDArray[np.int64]:
    """(clusters, 256) counts of labelled pixels by cluster and label id, window by window."""
    nodata = src.nodata
    counts = np.zeros((0, 256), dtype=np.int64)
    for row in range(0, src.height, _ROWS):
        window = Window(0, row, src.width, min(_ROWS, src.height - row))
        if not source.may_have_labels(window):
            continue
        labels = source.read(window).astype(np.int64)
        clusters = src.read(1, window=window).astype(np.int64)
        keep = (labels != 255) & (clusters >= 0)
        if nodata is not None:
            keep &= clusters != nodata
        if not keep.any():
            continue
        pairs = clusters[keep] * 256 + labels[keep]
        rows = int(clusters[keep].max()) + 1
        found = np.bincount(pairs, minlength=rows * 256).reshape(rows, 256)
        counts = _add(counts, found)
    return counts


def _add(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    """Sum two count tables of possibly different numbers of rows."""
    out = np.zeros((max(len(a), len(b)), a.shape[1]), dtype=np.int64)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


def name_classes(
    maps: Sequence[str | Path],
    output: str | Path,
    names: Mapping[int, str],
    *,
    colours: Mapping[str, tuple[int, int, int]] | None = None,
    model: str | Path | None = None,
    save_model: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> ClassesResult:
    """Name and merge the classes of ``maps`` (and of ``model``), writing new ones.

    Args:
        maps: label maps with the same classes (made by one model).
        output: the new map, or with several maps a folder (``OUTDIR/<map name>``, and
            ``OUTDIR/mosaic.vrt`` over them with its QGIS style, as ``lcmap segment`` writes).
        names: old id -> name; ids given one name become one class.
        colours: name (or old id) -> RGB.
        model: the model that made the maps; with ``save_model``, rewritten to map the
            named classes directly.
        save_model: where the rewritten model goes.
        overwrite: replace existing outputs.
        progress: ``(done, total)`` over the rows of all maps.

    Returns:
        The plan and what was written.

    Raises:
        InvalidOptionError: bad ids, names or colours; ``save_model`` without ``model``.
        InvalidSceneError: maps that are not label maps, or disagree on their classes.
        InvalidModelError: a model whose classes are not the maps'.
        OutputExistsError, OutputPathError: an output that cannot be written (before any work).
    """
    if not maps:
        raise InvalidOptionError("No map given.")
    if save_model is not None and model is None:
        raise InvalidOptionError("save_model needs the model that made the maps (model=...).")
    paths = [Path(m) for m in maps]
    old_names, old_colours, k = map_classes(paths[0])
    for other in paths[1:]:
        if map_classes(other)[0] != old_names:
            raise InvalidSceneError(
                f"{other} has other classes than {paths[0]}; name the maps of one model together."
            )
    header = _model_header(model, k) if model is not None else None
    plan = plan_classes(old_names, old_colours, names, colours)
    folder = len(paths) > 1 or str(output).endswith(("/", "\\"))
    if folder and not Path(output).parent.is_dir():
        raise InvalidOptionError(
            f"Output folder {Path(output).parent} does not exist; create it first."
        )
    inputs = [*paths, *([model] if model is not None else [])]
    with output_folder(output) if folder else contextlib.nullcontext(Path(output)):
        outputs = _outputs(paths, Path(output), folder)
        for out in outputs:
            check_map_output(out, overwrite, inputs=inputs)
        if len(outputs) > 1:
            check_mosaic_outputs(Path(output), overwrite, inputs=inputs)
        if save_model is not None:
            check_output(save_model, overwrite, inputs=inputs)
        check_distinct(*outputs, save_model)
    log.info("classes: %s", plan.describe(old_names))
    result = ClassesResult(plan)
    total = sum(_rows(p) for p in paths)
    done = 0
    for source, out in zip(paths, outputs, strict=True):
        done = _rewrite(source, out, plan, old_names, overwrite, progress, done, total)
        result.maps.append(out)
    if len(outputs) > 1:
        result.mosaic = write_mosaic(outputs, Path(output) / MOSAIC)
    if header is not None and save_model is not None:
        assert model is not None
        _rewrite_model(Path(model), Path(save_model), header, plan, old_names)
        result.model = Path(save_model)
    return result


def _outputs(paths: list[Path], output: Path, folder: bool) -> list[Path]:
    """One output per map: the file itself, or in a ``folder`` ``OUTDIR/<name>``."""
    if not folder:
        return [output]
    names = [output / p.name for p in paths]
    if len(set(names)) != len(names):
        raise InvalidOptionError("Two maps have the same file name; name them in separate runs.")
    return names


def _rows(path: Path) -> int:
    with rasterio.open(path) as src:
        return int(src.height)


def _model_header(model: str | Path, k: int) -> ModelHeader:
    header = read_header(model)
    if header.num_classes != k:
        raise InvalidModelError(
            f"{model} maps {header.num_classes} classes but the map has {k}; give the model "
            "that made the map."
        )
    return header


def _rewrite(
    source: Path,
    out: Path,
    plan: ClassPlan,
    old_names: Sequence[str],
    overwrite: bool,
    progress: ProgressFn | None,
    done: int,
    total: int,
) -> int:
    """Write ``source``'s labels through the plan's lookup table to ``out``; rows done."""
    dtype = label_dtype(len(plan.names))
    with rasterio.open(source) as src:
        old_nodata = src.nodata
        tags = src.tags()
        table = np.asarray(plan.relabel, dtype=dtype)
        provenance: Any = {}
        with contextlib.suppress(ValueError, RecursionError):  # a damaged tag is left out
            provenance = json.loads(tags.get("LCMAP_PROVENANCE") or "{}")
        provenance = {
            **(provenance if isinstance(provenance, dict) else {}),
            "classes_from": source.name,
            "classes": plan.describe(old_names),
        }
        with LabelWriter(
            out,
            grid=MapGrid.of(src),
            dtype=dtype,
            class_names=plan.names,
            colours=plan.colours,
            tags=tags,
            overwrite=overwrite,
            sidecar=provenance,
        ) as dst:
            for row in range(0, src.height, _ROWS):
                height = min(_ROWS, src.height - row)
                block = src.read(1, window=Window(0, row, src.width, height))
                dst.write_rows(row, _apply(block, table, old_nodata, NODATA[dtype]))
                done += height
                if progress is not None:
                    progress(done, total)
            dst.commit()
    log.info("wrote %s", out)
    return done


def _apply(
    block: NDArray[Any], table: NDArray[Any], nodata: float | None, new_nodata: int
) -> NDArray[Any]:
    """The labels of ``block`` through ``table``; nodata and ids beyond it become nodata."""
    labels = block.astype(np.int64)
    valid = (labels >= 0) & (labels < len(table))
    if nodata is not None:
        valid &= block != nodata
    out = np.full(block.shape, new_nodata, dtype=table.dtype)
    out[valid] = table[labels[valid]]
    return out


class _Tensors:
    """A model's tensors as :func:`lcmap.models.stage_model` takes them."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


def _rewrite_model(
    model: Path, output: Path, header: ModelHeader, plan: ClassPlan, old_names: Sequence[str]
) -> None:
    """The same tensors under a header whose classes are the plan's: the lookup table, composed
    with one the model already had, maps its K predicted classes to the named ones."""
    earlier = header.extra.get("classes", {}).get("relabel")
    first = [int(v) for v in earlier] if earlier is not None else list(range(header.num_classes))
    relabel = [plan.relabel[c] for c in first]
    header.num_classes = len(plan.names)
    header.class_names = list(plan.names)
    header.colours = [list(c) for c in plan.colours]
    header.extra = {
        **header.extra,
        "classes": {"relabel": relabel, "named": plan.describe(old_names)},
    }
    with stage_model(output, _Tensors(read_tensors(model)), header) as tmp:
        publish(tmp, output)
    log.info("wrote %s", output)
