"""What the viewer shows, read through rio-tiler straight from the files: map and scene tiles in
Web Mercator, the legend with each class's area, and the values under a point.

Nothing is converted or loaded whole: tiles and the first legend come from the overviews (GDAL
picks the level that matches the zoom), and the exact pixel count per class is streamed block by
block in a background thread, so the viewer opens at once on a map of any size.
"""

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray

from lcmap.errors import InvalidSceneError
from lcmap.io.bands import display_bands
from lcmap.io.scene import check_readable, scene_statistics
from lcmap.workflows.classes import map_classes

#: Side of a tile, in pixels (the Web Mercator convention).
TILE = 256
#: Longest side of the overview read for the first legend.
OVERVIEW = 1024
#: Zooms out from its own pixels' at which a scene without overviews is still shown.
NO_OVERVIEW_ZOOMS = 3
#: Alpha of the classes that are not highlighted.
DIMMED = 40


def _open(path: Path) -> Any:
    from rio_tiler.errors import NoOverviewWarning
    from rio_tiler.io import Reader

    with warnings.catch_warnings():
        # A file without overviews is read all the same, only slower at small zooms.
        warnings.simplefilter("ignore", NoOverviewWarning)
        return Reader(str(path))


#: Open readers kept per file between requests (a GDAL dataset serves one thread at a time).
_KEPT = 8
_pool: dict[Path, list[Any]] = {}
_pool_lock = threading.Lock()


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[Any]:
    """A rio-tiler reader of ``path`` for this thread's use, from the pool or newly opened:
    opening a dataset for every tile cost as much as reading the tile."""
    with _pool_lock:
        free = _pool.setdefault(path, [])
        reader = free.pop() if free else None
    if reader is None:
        reader = _open(path)
    try:
        yield reader
    finally:
        with _pool_lock:
            if len(_pool[path]) < _KEPT:
                _pool[path].append(reader)
                reader = None
        if reader is not None:
            reader.close()


def pixel_area_m2(src: Any) -> float:
    """Ground area of one pixel in m²: from the transform and the CRS's linear unit, or for a
    geographic CRS at the centre latitude of the scene (spherical Earth)."""
    a, e = abs(float(src.transform.a)), abs(float(src.transform.e))
    if src.crs is None:
        return float("nan")
    if src.crs.is_geographic:
        lat = math.radians((src.bounds.bottom + src.bounds.top) / 2)
        metres_per_degree = 6_371_008.8 * math.pi / 180
        return a * e * metres_per_degree**2 * math.cos(lat)
    factor = float(src.crs.linear_units_factor[1])
    return a * e * factor * factor


@dataclass
class Legend:
    """Classes of a map and how much of it each covers.

    Attributes:
        names, colours: by class id.
        counts: pixels per class id (from an overview until :attr:`exact`).
        pixel_m2: ground area of a full-resolution pixel.
        exact: whether :attr:`counts` are the full-resolution counts.
    """

    names: list[str]
    colours: list[tuple[int, int, int]]
    counts: list[int]
    pixel_m2: float
    exact: bool = False

    def rows(self) -> list[dict[str, Any]]:
        """One dict per class: id, name, colour (#rrggbb), pixels, hectares, share (%)."""
        total = sum(self.counts) or 1
        return [
            {
                "id": i,
                "name": name,
                "colour": "#{:02x}{:02x}{:02x}".format(*self.colours[i]),
                "pixels": self.counts[i],
                "hectares": None
                if math.isnan(self.pixel_m2)
                else round(self.counts[i] * self.pixel_m2 / 1e4, 2),
                "share": round(100 * self.counts[i] / total, 2),
            }
            for i, name in enumerate(self.names)
        ]


def _count(labels: NDArray[Any], valid: NDArray[np.bool_], k: int) -> NDArray[np.int64]:
    values = labels[valid].astype(np.int64)
    return np.bincount(values[values < k], minlength=k)[:k]


@dataclass
class MapView:
    """A label map as the viewer serves it.

    Raises:
        InvalidSceneError: not a single-band integer label map, or not georeferenced.
    """

    path: Path
    legend: Legend = field(init=False)
    bounds: tuple[float, float, float, float] = field(init=False)
    maxzoom: int = field(init=False)

    def __post_init__(self) -> None:
        names, colours, k = map_classes(self.path)
        with _reader(self.path) as reader:
            src = reader.dataset
            if src.crs is None:
                raise InvalidSceneError(
                    f"{self.path} has no CRS: the viewer places maps on the globe. Give it one "
                    "with 'rio edit-info --crs'."
                )
            w, s, e, n = reader.get_geographic_bounds("EPSG:4326")
            self.bounds = (float(w), float(s), float(e), float(n))
            self.maxzoom = int(reader.maxzoom)  # the zoom of the map's own pixels
            preview = reader.preview(max_size=OVERVIEW, indexes=1, resampling_method="nearest")
            scale = (src.width * src.height) / max(1, preview.width * preview.height)
            counts = _count(preview.data[0], preview.mask > 0, k) * scale
            self.legend = Legend(
                names, colours, [int(c) for c in counts], pixel_area_m2(src), exact=False
            )
        self._lut = np.zeros((max(256, k), 4), dtype=np.uint8)
        for i, colour in enumerate(colours):
            self._lut[i] = (*colour, 255)

    def count_exactly(self) -> threading.Thread:
        """Start counting every pixel per class (block by block); the legend is exact when the
        thread ends."""

        def run() -> None:
            k = len(self.legend.names)
            total = np.zeros(k, dtype=np.int64)
            with rasterio.open(self.path) as src:
                for _, window in src.block_windows(1):
                    labels = src.read(1, window=window)
                    valid = src.read_masks(1, window=window) > 0
                    total += _count(labels, valid, k)
            self.legend.counts = [int(c) for c in total]
            self.legend.exact = True

        thread = threading.Thread(target=run, name="lcmap-view-count", daemon=True)
        thread.start()
        return thread

    def tile(self, z: int, x: int, y: int, highlight: int | None = None) -> bytes | None:
        """The PNG of tile (z, x, y) in the map's colours (None outside the map); with
        ``highlight``, the other classes faded."""
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.utils import render

        with _reader(self.path) as reader:
            try:
                image = reader.tile(
                    x, y, z, indexes=1, resampling_method="nearest", reproject_method="nearest"
                )
            except TileOutsideBounds:
                return None
        labels = image.data[0].astype(np.int64).clip(0, len(self._lut) - 1)
        rgba = self._lut[labels]
        alpha = np.where(image.mask > 0, rgba[..., 3], 0).astype(np.uint8)
        if highlight is not None:
            alpha = np.where(labels == highlight, alpha, np.minimum(alpha, DIMMED)).astype(np.uint8)
        return bytes(render(np.moveaxis(rgba[..., :3], -1, 0), mask=alpha, img_format="PNG"))

    def value_at(self, lon: float, lat: float) -> int | None:
        """The class at (lon, lat), None outside the map or on nodata."""
        return _point(self.path, lon, lat, None)[0] if _inside(self.bounds, lon, lat) else None


def _inside(bounds: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return bounds[0] <= lon <= bounds[2] and bounds[1] <= lat <= bounds[3]


def _point(path: Path, lon: float, lat: float, indexes: Sequence[int] | None) -> list[Any]:
    from rio_tiler.errors import PointOutsideBounds

    n = len(indexes) if indexes else 1
    with _reader(path) as reader:
        try:
            point = reader.point(lon, lat, indexes=indexes)
        except PointOutsideBounds:
            return [None] * n
    if not np.any(point.mask > 0):  # nodata there
        return [None] * n
    return [v.item() for v in point.data]


@dataclass
class SceneView:
    """A scene under the map, shown as true or false colour from three of its bands (or one as
    grey), each stretched between its 2nd and 98th percentiles as lcmap reads scenes (from
    windows sampled across it, so a scene without overviews opens as fast).

    A scene without overviews is shown only from :data:`NO_OVERVIEW_ZOOMS` zooms above its own
    pixels' (a wider view would read the whole file for each tile); :attr:`slow` says so.
    """

    path: Path
    bands: tuple[int, ...] | None = None
    count: int = field(init=False)
    stretch: list[tuple[float, float]] = field(init=False)
    minzoom: int = field(init=False)
    slow: bool = field(init=False)

    def __post_init__(self) -> None:
        check_readable(self.path)
        with _reader(self.path) as reader:
            src = reader.dataset
            self.count = src.count
            if self.bands is None:
                self.bands = display_bands(src)
            wrong = [b for b in self.bands if not 1 <= b <= self.count]
            if wrong:
                raise InvalidSceneError(
                    f"{self.path.name} has {self.count} band(s); there is no band {wrong[0]}."
                )
            norm = scene_statistics([src], list(self.bands))
            self.stretch = list(zip(norm.low, norm.high, strict=True))
            self.slow = not src.overviews(1)
            maxzoom = int(reader.maxzoom)
            self.minzoom = max(0, maxzoom - NO_OVERVIEW_ZOOMS) if self.slow else 0

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The PNG of tile (z, x, y), stretched to 0-255 (None outside the scene)."""
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.utils import render

        if z < self.minzoom:
            return None
        with _reader(self.path) as reader:
            try:
                image = reader.tile(x, y, z, indexes=self.bands)
            except TileOutsideBounds:
                return None
        data = image.data.astype(np.float64)
        out = np.stack(
            [
                np.clip((band - low) / (high - low) * 255, 0, 255)
                for band, (low, high) in zip(data, self.stretch, strict=True)
            ]
        ).astype(np.uint8)
        if len(out) == 1:
            out = np.repeat(out, 3, axis=0)
        alpha = np.where(image.mask > 0, 255, 0).astype(np.uint8)
        return bytes(render(out, mask=alpha, img_format="PNG"))

    def values_at(self, lon: float, lat: float) -> list[Any]:
        """Every band's value at (lon, lat) (None outside the scene or on nodata)."""
        return _point(self.path, lon, lat, list(range(1, self.count + 1)))
