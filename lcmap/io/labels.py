"""Training labels on a scene's grid: label rasters, or polygons rasterised window by window.

Labels are class ids 0..254 with 255 = unlabelled (DESIGN.md). A label *raster* must be on the
scene's grid (same size; same transform when both are georeferenced); its nodata reads as 255.
Label *polygons* (GPKG, GeoJSON, FlatGeobuf, Shapefile, GeoParquet) carry the class in a column,
either integer ids or class names; they are reprojected to the scene's CRS and burnt in with
``rasterio.features.rasterize`` by the pixel-centre rule, one window at a time, so a large scene
never needs a full label array. Pixel-aligned polygons therefore give exactly the pixels of the
raster they were drawn from.

This module knows rasterio, geopandas and numpy; never torch.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from lcmap.errors import InputNotFoundError, InvalidSceneError
from lcmap.types import UNLABELLED

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

#: File suffixes read as polygons rather than rasters.
VECTOR_SUFFIXES = frozenset({".gpkg", ".geojson", ".json", ".fgb", ".shp", ".parquet"})
#: Column names tried, in order, when no class column is given.
CLASS_COLUMNS = ("class", "class_id", "classid", "label", "class_name", "classname", "landcover")


class LabelSource(Protocol):
    """Labels readable by window on one scene's grid."""

    @property
    def name(self) -> str:
        """File name, for messages."""

    def read(self, window: Window) -> NDArray[np.uint8]:
        """(h, w) class ids over ``window``; 255 where unlabelled or outside the scene."""

    def may_have_labels(self, window: Window) -> bool:
        """False when ``window`` surely holds no label (a cheap pre-check)."""


def is_vector(path: str | Path) -> bool:
    """Whether ``path`` is read as polygons (by its suffix)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def _clip_to_scene(window: Window, width: int, height: int) -> tuple[Window, int, int] | None:
    """The part of ``window`` inside the scene and its offset in the window (None if none)."""
    col0, row0 = int(window.col_off), int(window.row_off)
    c0, r0 = max(col0, 0), max(row0, 0)
    c1 = min(col0 + int(window.width), width)
    r1 = min(row0 + int(window.height), height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0), r0 - row0, c0 - col0


class RasterLabels:
    """Labels from a single-band raster on the scene's grid (nodata = unlabelled).

    Args:
        labels: the open label raster.
        scene: the open scene the labels belong to.

    Raises:
        InvalidSceneError: the raster is not on the scene's grid.
    """

    def __init__(self, labels: DatasetReader, scene: DatasetReader) -> None:
        self.src = labels
        lname, sname = Path(labels.name).name, Path(scene.name).name
        if (labels.width, labels.height) != (scene.width, scene.height):
            raise InvalidSceneError(
                f"Labels {lname} are {labels.width}x{labels.height} pixels but scene {sname} "
                f"is {scene.width}x{scene.height}; labels must be on the scene's grid (resample "
                "them with 'gdalwarp -te ... -ts ...' or give polygons)."
            )
        georef = not labels.transform.is_identity and not scene.transform.is_identity
        if georef and not labels.transform.almost_equals(scene.transform, precision=1e-6):
            raise InvalidSceneError(
                f"Labels {lname} are not aligned with scene {sname} (transforms differ: "
                f"{tuple(labels.transform)[:6]} vs {tuple(scene.transform)[:6]}); "
                "labels must be on the scene's grid."
            )
        self.width, self.height = scene.width, scene.height

    @property
    def name(self) -> str:
        """File name."""
        return Path(self.src.name).name

    def read(self, window: Window) -> NDArray[np.uint8]:
        """Class ids over ``window`` (255 outside the raster and where it has no data)."""
        out = np.full((int(window.height), int(window.width)), UNLABELLED, dtype=np.uint8)
        clipped = _clip_to_scene(window, self.width, self.height)
        if clipped is None:
            return out
        inner, r, c = clipped
        data = self.src.read(1, window=inner)
        mask = self.src.read_masks(1, window=inner) == 0
        if np.issubdtype(data.dtype, np.floating):
            mask |= ~np.isfinite(data)
            data = np.nan_to_num(data, nan=UNLABELLED)
        bad = (data < 0) | (data > UNLABELLED)
        if bad.any():
            raise InvalidSceneError(
                f"Labels {self.name} hold value {data[bad].flat[0]}; expected class ids 0..254 "
                "and 255 for unlabelled."
            )
        block = data.astype(np.uint8)
        block[mask] = UNLABELLED
        out[r : r + int(inner.height), c : c + int(inner.width)] = block
        return out

    def may_have_labels(self, window: Window) -> bool:
        """Any window inside the scene may hold labels."""
        return _clip_to_scene(window, self.width, self.height) is not None


class VectorLabels:
    """Labels from polygons with integer class ids, burnt into the scene's grid per window.

    Args:
        frame: polygons in the scene's CRS with an integer ``class_id`` column (0..254).
        scene: the open scene that gives the grid.
        name: file name, for messages.
    """

    def __init__(self, frame: "gpd.GeoDataFrame", scene: DatasetReader, name: str) -> None:
        self.frame = frame[~frame.geometry.is_empty & frame.geometry.notna()].reset_index(drop=True)
        self.transform = scene.transform
        self.width, self.height = scene.width, scene.height
        self._name = name
        self.sindex = self.frame.sindex

    @property
    def name(self) -> str:
        """File name."""
        return self._name

    def _bounds(self, window: Window) -> tuple[float, float, float, float]:
        return rasterio.windows.bounds(window, self.transform)  # type: ignore[no-any-return]

    def _hits(self, window: Window) -> NDArray[np.intp]:
        from shapely.geometry import box

        hits: NDArray[np.intp] = self.sindex.query(box(*self._bounds(window)))
        return hits

    def may_have_labels(self, window: Window) -> bool:
        """Whether a polygon's bounding box meets ``window`` (inside the scene)."""
        if _clip_to_scene(window, self.width, self.height) is None:
            return False
        return len(self._hits(window)) > 0

    def read(self, window: Window) -> NDArray[np.uint8]:
        """Class ids over ``window`` by the pixel-centre rule (255 elsewhere)."""
        from rasterio.features import rasterize

        shape = (int(window.height), int(window.width))
        clipped = _clip_to_scene(window, self.width, self.height)
        hits = self._hits(window) if clipped is not None else np.zeros(0, dtype=np.intp)
        if len(hits) == 0:
            return np.full(shape, UNLABELLED, dtype=np.uint8)
        rows = self.frame.iloc[np.sort(hits)]
        shapes = zip(rows.geometry, rows["class_id"].astype(int), strict=True)
        out: NDArray[np.uint8] = rasterize(
            shapes,
            out_shape=shape,
            transform=rasterio.windows.transform(window, self.transform),
            fill=UNLABELLED,
            dtype="uint8",
            all_touched=False,
        )
        if clipped is not None:  # pixels outside the scene stay unlabelled
            inner, r, c = clipped
            outside = np.ones(shape, dtype=bool)
            outside[r : r + int(inner.height), c : c + int(inner.width)] = False
            out[outside] = UNLABELLED
        return out


def read_polygons(path: str | Path) -> "gpd.GeoDataFrame":
    """Read a polygon file with geopandas (pyogrio).

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidSceneError: it cannot be read as vector data or holds no features.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"Labels {path} not found; check the path.")
    try:
        frame = gpd.read_parquet(path) if path.suffix.lower() == ".parquet" else gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InvalidSceneError(
            f"{path} cannot be read as polygons ({str(exc).splitlines()[0]}); expected a GPKG, "
            "GeoJSON, FlatGeobuf, Shapefile or GeoParquet file."
        ) from exc
    if frame.empty:
        raise InvalidSceneError(f"{path} holds no features; draw some label polygons first.")
    return frame


def class_column(frame: "gpd.GeoDataFrame", column: str | None, path: str | Path) -> str:
    """The column holding the classes: ``column`` if given, else a usual name, else the only one.

    Raises:
        InvalidSceneError: no such column, or no way to tell which one.
    """
    columns = [str(c) for c in frame.columns if c != frame.geometry.name]
    if column is not None:
        if column not in columns:
            raise InvalidSceneError(
                f"{Path(path).name} has no column '{column}'; it has: {', '.join(columns)}."
            )
        return column
    lowered = {str(c).lower(): str(c) for c in columns}
    for name in CLASS_COLUMNS:
        if name in lowered:
            return lowered[name]
    if len(columns) == 1:
        return str(columns[0])
    raise InvalidSceneError(
        f"{Path(path).name} has columns {', '.join(columns) or '(none)'}; say which holds the "
        "class (class_column=)."
    )


def _is_integral(values: Any) -> bool:
    import pandas as pd

    if pd.api.types.is_integer_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        return bool(np.all(np.equal(np.mod(finite, 1), 0)))
    return False


def polygon_class_names(path: str | Path, column: str | None = None) -> list[str] | None:
    """The distinct class *names* in a polygon file, sorted; None when the classes are ids."""
    frame = read_polygons(path)
    values = frame[class_column(frame, column, path)].dropna()
    if _is_integral(values):
        return None
    return sorted({str(v) for v in values})


def open_labels(
    path: str | Path,
    scene: DatasetReader,
    *,
    column: str | None = None,
    class_ids: Mapping[str, int] | None = None,
) -> tuple[LabelSource, DatasetReader | None]:
    """Open labels for ``scene``: a raster on its grid, or polygons burnt into it.

    Args:
        path: label raster, or polygon file (by suffix: see :data:`VECTOR_SUFFIXES`).
        scene: the open scene.
        column: the polygons' class column (see :func:`class_column`).
        class_ids: class name -> id, for polygons whose classes are names.

    Returns:
        The label source, and the label raster to close (None for polygons).

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidSceneError: unreadable, off the scene's grid, an unknown class name, or an id
            outside 0..254.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"Labels {path} not found; check the path.")
    if not is_vector(path):
        try:
            src = rasterio.open(path)
        except RasterioIOError as exc:
            raise InvalidSceneError(
                f"{path} is neither a raster GDAL can read nor a polygon file "
                f"({', '.join(sorted(VECTOR_SUFFIXES))})."
            ) from exc
        try:
            return RasterLabels(src, scene), src
        except BaseException:
            src.close()
            raise
    frame = read_polygons(path)
    col = class_column(frame, column, path)
    frame = frame[frame[col].notna()].copy()
    values = frame[col]
    if _is_integral(values):
        ids = values.astype(np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= UNLABELLED):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise InvalidSceneError(
                f"{path.name} column '{col}' holds id {bad}; expected class ids 0..254."
            )
        frame["class_id"] = ids
    else:
        mapping = dict(class_ids or {})
        unknown = sorted({str(v) for v in values} - set(mapping))
        if unknown:
            raise InvalidSceneError(
                f"{path.name} has class '{unknown[0]}' which is not among the class names "
                f"({', '.join(mapping) or 'none'}); add it to the class names (class_names=)."
            )
        frame["class_id"] = [mapping[str(v)] for v in values]
    if frame.crs is not None and scene.crs is not None and frame.crs != scene.crs:
        frame = frame.to_crs(scene.crs)
    elif frame.crs is None and scene.crs is not None:
        log.warning("%s has no CRS; assuming the scene's (%s)", path.name, scene.crs)
    return VectorLabels(frame, scene, path.name), None


@dataclass(frozen=True)
class LabelledWindow:
    """A candidate training window and how many labelled pixels it holds.

    Attributes:
        window: the window on the scene's grid (may extend past the scene's edge).
        labelled: number of labelled pixels in it.
        max_class: largest class id in it.
    """

    window: Window
    labelled: int
    max_class: int


def labelled_windows(
    source: LabelSource,
    width: int,
    height: int,
    size: int,
    min_labelled: int = 1,
    windows: Sequence[Window] | None = None,
) -> list[LabelledWindow]:
    """Windows holding at least ``min_labelled`` labelled pixels.

    Args:
        source: the labels.
        width: scene width in pixels.
        height: scene height in pixels.
        size: window side in pixels (for the default grid).
        min_labelled: fewest labelled pixels a window must hold.
        windows: windows to check; default a grid of ``size`` x ``size`` windows from the
            top-left corner (the last row and column may extend past the scene).

    Returns:
        The windows, in the order checked.
    """
    if windows is None:
        windows = [
            Window(c, r, size, size) for r in range(0, height, size) for c in range(0, width, size)
        ]
    found = []
    for window in windows:
        if not source.may_have_labels(window):
            continue
        labels = source.read(window)
        mask = labels != UNLABELLED
        count = int(mask.sum())
        if count >= min_labelled:
            found.append(LabelledWindow(window, count, int(labels[mask].max())))
    return found


def footprint_windows(
    path: str | Path, scene: DatasetReader, scene_name: str | None = None
) -> list[tuple[int, Window]]:
    """Windows of patch footprints (``lcmap suggest-labels`` output) on ``scene``'s grid.

    When the file has a ``scene`` column, only rows naming ``scene_name`` are used; otherwise
    every footprint that meets the scene's bounds.

    Returns:
        ``(order, window)`` pairs: ``order`` is the file's ``order`` column (the suggestion
        order across all scenes) or else the row number, so footprints of several scenes can be
        merged back into one ranking.

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidSceneError: it cannot be read.
    """
    from shapely.geometry import box

    frame = read_polygons(path).reset_index(drop=True)
    orders = (
        frame["order"].astype(int).tolist() if "order" in frame.columns else list(range(len(frame)))
    )
    if frame.crs is not None and scene.crs is not None and frame.crs != scene.crs:
        frame = frame.to_crs(scene.crs)
    names = frame["scene"].astype(str).tolist() if "scene" in frame.columns else None
    scene_box = box(*scene.bounds)
    windows = []
    for i, geom in enumerate(frame.geometry):
        if names is not None and scene_name is not None and names[i] != scene_name:
            continue
        if geom is None or geom.is_empty or not geom.intersects(scene_box):
            continue
        win = rasterio.windows.from_bounds(*geom.bounds, transform=scene.transform)
        # Round to the nearest pixel: footprints we wrote lie exactly on pixel edges.
        window = Window(round(win.col_off), round(win.row_off), round(win.width), round(win.height))
        windows.append((orders[i], window))
    return sorted(windows, key=lambda item: item[0])


__all__ = [
    "UNLABELLED",
    "LabelSource",
    "LabelledWindow",
    "RasterLabels",
    "VectorLabels",
    "class_column",
    "footprint_windows",
    "is_vector",
    "labelled_windows",
    "open_labels",
    "polygon_class_names",
    "read_polygons",
]
