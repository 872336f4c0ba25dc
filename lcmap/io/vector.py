"""Turn a label raster into a vector file of one polygon per region, in bounded memory.

The raster is polygonised window by window in pixel coordinates, and the polygons cut by a
window edge are dissolved back into one per region (:mod:`lcmap.io.polygonise`): memory holds
one window of pixels plus the polygons, never the whole raster. Then: pixel -> map
coordinates, ``min_area`` filter, coverage simplification (shared edges stay shared),
attributes, and a write to a temporary file that is renamed into place.
"""

import logging
import math
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from numpy.typing import NDArray
from rasterio.io import DatasetReader

from lcmap.errors import (
    InvalidOptionError,
    InvalidSceneError,
    NoGeoreferenceWarning,
    OutputPathError,
)
from lcmap.io.geometry import made_valid, simplified, to_map_units
from lcmap.io.ground import pixel_size_m
from lcmap.io.legend import raster_class_names, read_legend
from lcmap.io.polygonise import Progress, polygonise
from lcmap.io.scene import bounded_gdal_cache, open_scene
from lcmap.io.staging import check_output, out_of_room, publish, temp_dir

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

#: Output format (GDAL driver name, or "Parquet" for GeoParquet) by file extension.
FORMATS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".fgb": "FlatGeobuf",
    ".parquet": "Parquet",
    ".geojson": "GeoJSON",
}


#: CRS of GeoJSON output (RFC 7946 section 4).
GEOJSON_CRS = "EPSG:4326"

#: GDAL block cache while reading, in bytes. GDAL's default (5% of RAM) would let the cache grow
#: with the raster while it is open; windows are read once, row-major, so a small cache suffices.
GDAL_CACHE_MB = 32


@dataclass(frozen=True)
class VectorizeResult:
    """What :func:`vectorize` wrote.

    Attributes:
        output: the vector file.
        driver: its format (``GPKG``, ``FlatGeobuf``, ``Parquet``, ``GeoJSON``).
        polygons: number of polygons written.
        polygons_per_class: polygon count by class id.
        area_per_class: area by class id, in squared units of the raster's CRS.
        dropped: polygons left out because they were smaller than ``min_area``.
        windows: windows read.
        crs: CRS of the written file (WKT), None when the raster has none.
    """

    output: Path
    driver: str
    polygons: int
    polygons_per_class: dict[int, int] = field(default_factory=dict)
    area_per_class: dict[int, float] = field(default_factory=dict)
    dropped: int = 0
    windows: int = 0
    crs: str | None = None

    @classmethod
    def of(
        cls,
        output: Path,
        driver: str,
        frame: "gpd.GeoDataFrame",
        ids: NDArray[np.int64],
        dropped: int,
        windows: int,
        crs: str | None,
    ) -> "VectorizeResult":
        """What was written: ``frame`` (its ``area`` column), ``ids`` its class per polygon."""
        found, counts = np.unique(ids, return_counts=True)
        return cls(
            output,
            driver,
            polygons=len(frame),
            polygons_per_class={int(i): int(n) for i, n in zip(found, counts, strict=True)},
            area_per_class={int(i): float(frame["area"][ids == i].sum()) for i in found},
            dropped=dropped,
            windows=windows,
            crs=crs,
        )


def _check_numbers(min_area: float, simplify: float, window_size: int) -> None:
    if min_area < 0 or not math.isfinite(min_area):
        raise InvalidOptionError(f"min_area= must be a finite number >= 0, got {min_area}.")
    if simplify < 0 or not math.isfinite(simplify):
        raise InvalidOptionError(f"simplify= must be a finite number >= 0, got {simplify}.")
    if window_size < 16:
        raise InvalidOptionError(f"window_size must be at least 16 pixels, got {window_size}.")


def _check_crs(src: Any, name: str, driver: str) -> None:
    """GeoJSON needs a CRS; other formats take polygons without one, with a warning."""
    if driver == "GeoJSON" and src.crs is None:
        raise InvalidSceneError(
            f"{name} has no CRS, so it cannot be written as GeoJSON (RFC 7946 needs "
            "EPSG:4326); write .gpkg, .fgb or .parquet instead, or set a CRS with "
            "'rio edit-info --crs'."
        )
    if src.crs is None:
        warnings.warn(
            f"{name} has no CRS; the polygons will have none either.",
            NoGeoreferenceWarning,
            stacklevel=3,
        )


def _finished(
    cls: NDArray[Any],
    geoms: NDArray[Any],
    transform: Any,
    pixel_area: float,
    min_area: float,
    simplify: float,
) -> tuple[NDArray[Any], NDArray[Any], int]:
    """The polygons in map units, valid, simplified and filtered by ``min_area``; with the
    number dropped by the filter."""
    dropped = 0
    if min_area > 0:  # what the sieve could not merge (islands in nodata, capped margins)
        keep = shapely.area(geoms) * pixel_area >= min_area * (1 - 1e-9)
        dropped = int(np.count_nonzero(~keep))
        cls, geoms = cls[keep], geoms[keep]
    geoms = to_map_units(made_valid(geoms), transform, segmentize=simplify > 0)
    if simplify > 0 and len(geoms):
        geoms = simplified(geoms, simplify)
        nonempty = ~shapely.is_empty(geoms)
        cls, geoms = cls[nonempty], geoms[nonempty]
        if min_area > 0:  # simplifying shrinks polygons: the filter holds on what is written
            keep = shapely.area(geoms) >= min_area * (1 - 1e-9)
            dropped += int(np.count_nonzero(~keep))
            cls, geoms = cls[keep], geoms[keep]
    return cls, geoms, dropped


def vectorize(
    labels: str | Path,
    output: str | Path,
    *,
    min_area: float = 0,
    simplify: float = 0,
    classes: Sequence[int] | None = None,
    legend: str | Path | None = None,
    overwrite: bool = False,
    window_size: int = 2048,
    progress: Progress | None = None,
) -> VectorizeResult:
    """Polygonise a single-band label raster into one polygon per connected region.

    Regions are 4-connected groups of pixels with the same label; nodata pixels (nodata value or
    mask band) belong to no polygon. Each region is one polygon however many windows it spans.

    Args:
        labels: single-band integer label raster (e.g. the output of ``lcmap segment``).
        output: vector file; the format follows the extension: ``.gpkg`` (GeoPackage),
            ``.fgb`` (FlatGeobuf), ``.parquet`` (GeoParquet) or ``.geojson`` (reprojected to
            EPSG:4326 as RFC 7946 requires). Other formats keep the raster's CRS.
        min_area: in squared CRS units. Regions smaller than this are first sieved away
            (merged into their largest neighbour, window by window with a margin), then any
            polygon still smaller is dropped.
        simplify: tolerance in CRS units (roughly the square root of the largest triangle area
            removed); topology-preserving coverage simplification, so neighbours keep sharing
            their edges. 0 keeps the exact pixel outlines.
        classes: only polygonise these label values (after sieving); None for all.
        legend: class names: a JSON file ``{"0": "water", ...}`` or a CSV file ``id,name``.
            Without it, names come from the raster's ``CLASS_NAMES`` tag when lcmap wrote it.
        overwrite: replace ``output`` if it exists.
        window_size: side of the square windows read, in pixels (memory ~ its square).
        progress: called with ``(done, total)`` windows.

    Returns:
        What was written. The file has the attributes ``class`` (label value), ``class_name``
        (null when unknown), ``area`` and ``perimeter`` (in the raster's CRS units, also for
        GeoJSON, measured before reprojection).

    Raises:
        InputNotFoundError: ``labels`` or ``legend`` does not exist.
        InvalidSceneError: ``labels`` is not a readable single-band integer raster, the legend
            cannot be read, or GeoJSON is asked for a raster without a CRS.
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
        OutputPathError: unknown extension, or the folder is missing or not writable.

    Example:
        >>> vectorize("landcover.tif", "landcover.gpkg", min_area=50, simplify=1)  # doctest: +SKIP
        VectorizeResult(output=PosixPath('landcover.gpkg'), driver='GPKG', polygons=5120, ...)
    """
    _check_numbers(min_area, simplify, window_size)
    output = Path(output)
    driver = _driver_for(output)
    check_output(output, overwrite, inputs=[labels] + ([legend] if legend is not None else []))
    legend_names = read_legend(legend) if legend is not None else None
    wanted = None if classes is None else {int(c) for c in classes}

    with bounded_gdal_cache(GDAL_CACHE_MB), open_scene(labels) as src:
        _check_labels(src)
        name = Path(src.name).name
        _check_crs(src, name, driver)
        names = legend_names if legend_names is not None else raster_class_names(src)
        pixel_area = abs(src.transform.determinant)
        _check_sizes(src, min_area, simplify)
        sieve_size = _sieve_size(min_area, pixel_area)
        cls, geoms, windows = polygonise(src, window_size, sieve_size, wanted, progress)
        transform = src.transform
        crs = src.crs.to_wkt() if src.crs is not None else None

    cls, geoms, dropped = _finished(cls, geoms, transform, pixel_area, min_area, simplify)

    frame = _frame(cls, geoms, names, crs)
    _write(frame, output, driver)
    if progress is not None:
        progress(windows + 1, windows + 1)

    result = VectorizeResult.of(output, driver, frame, cls, dropped, windows, crs)
    _report(result, wanted)
    return result


def _report(result: "VectorizeResult", wanted: set[int] | None) -> None:
    """One log line for what was written; a warning for asked classes with no polygon."""
    log.info(
        "Wrote %d polygons (%d classes, %d below min_area dropped) to %s",
        result.polygons,
        len(result.polygons_per_class),
        result.dropped,
        result.output,
    )
    missing = sorted((wanted or set()) - set(result.polygons_per_class))
    if missing:
        log.warning(
            "no polygon of class %s in %s: the map has no such class there, or all of its "
            "regions are below min_area.",
            ", ".join(map(str, missing)),
            result.output,
        )


def _driver_for(output: Path) -> str:
    driver = FORMATS.get(output.suffix.lower())
    if driver is None:
        raise OutputPathError(
            f"Output {output} has extension '{output.suffix}'; expected one of "
            f"{', '.join(FORMATS)}."
        )
    return driver


def _check_labels(src: DatasetReader) -> None:
    name = Path(src.name).name
    if src.count != 1:
        raise InvalidSceneError(
            f"{name} has {src.count} bands; expected a single-band label raster (such as the "
            "output of 'lcmap segment'); extract the label band first (gdal_translate -b N)."
        )
    dtype = np.dtype(src.dtypes[0])
    if dtype.kind not in "iu":
        raise InvalidSceneError(
            f"{name} holds {dtype} values; expected integer class labels (uint8, uint16...); "
            "convert it first (gdal_translate -ot UInt16) or classify it with 'lcmap segment'."
        )


def _check_sizes(src: DatasetReader, min_area: float, simplify: float) -> None:
    """Refuse a ``min_area`` larger than the whole map, which would drop every region, and a
    ``simplify`` tolerance longer than the map, which would flatten every outline: values
    meant in metres for a map in degrees, or in pixels. The message names the map's units."""
    pixel_area = abs(src.transform.determinant)
    whole = pixel_area * src.width * src.height
    extent = max(src.width * abs(src.res[0]), src.height * abs(src.res[1]))
    if min_area <= whole and simplify <= extent:
        return
    unit = "degree" if src.crs is not None and src.crs.is_geographic else "unit"
    if src.crs is not None and src.crs.is_projected:
        unit = src.crs.linear_units or unit
    units = unit[:-4] + "feet" if unit.endswith("foot") else unit + "s"
    on_ground = pixel_size_m(src) if unit == "degree" else None
    if min_area > whole:
        metres = f" (about {on_ground**2:,.0f} m²)" if on_ground else ""
        raise InvalidOptionError(
            f"min_area={min_area:g} would drop every region: it is in square {units} (the "
            f"map's CRS), and the whole map is {whole:.3g}, one pixel {pixel_area:.3g} square "
            f"{units}{metres}."
        )
    metres = f" (about {on_ground:,.0f} m)" if on_ground else ""
    raise InvalidOptionError(
        f"simplify={simplify:g} would flatten every outline: it is in {units} (the map's CRS), "
        f"and the map is {extent:.3g} across, one pixel {max(src.res):.3g} {units}{metres}."
    )


def _sieve_size(min_area: float, pixel_area: float) -> int:
    """Smallest region, in pixels, that is at least ``min_area`` (1: nothing to sieve)."""
    if min_area <= 0 or pixel_area <= 0:
        return 1
    return max(1, math.ceil(min_area / pixel_area * (1 - 1e-9)))


def _frame(
    cls: NDArray[np.int64],
    geoms: NDArray[np.object_],
    names: dict[int, str] | None,
    crs: str | None,
) -> Any:
    import geopandas as gpd
    import pandas as pd

    class_names = [None if names is None else names.get(int(c)) for c in cls]
    return gpd.GeoDataFrame(
        {
            "class": pd.Series(cls, dtype="int32"),
            "class_name": pd.Series(class_names, dtype="object"),
            "area": pd.Series(shapely.area(geoms), dtype="float64"),
            "perimeter": pd.Series(shapely.length(geoms), dtype="float64"),
        },
        geometry=gpd.GeoSeries(geoms, crs=crs),
        crs=crs,
    )


def _write(frame: Any, output: Path, driver: str) -> None:
    """Write to a temporary file beside ``output``, then rename it into place."""
    import pyogrio

    # The temporary file has the target's own name, in a temporary folder beside it: drivers
    # that name the layer after the file (FlatGeobuf) then name it after the target.
    folder = temp_dir(output)
    temp = folder / output.name
    try:
        with warnings.catch_warnings():
            # vectorize() has already warned about a missing CRS, in lcmap's words.
            warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
            if driver == "Parquet":
                frame.to_parquet(temp, index=False)
            else:
                options: dict[str, Any] = {}
                if driver == "GeoJSON":
                    frame = frame.to_crs(GEOJSON_CRS)
                    options["layer_options"] = {"RFC7946": "YES"}
                if driver != "FlatGeobuf":
                    options["layer"] = output.stem
                if driver == "GPKG":  # 1.2 opens without a warning in older GDALs (QGIS 3.x)
                    options["dataset_options"] = {"VERSION": "1.2"}
                pyogrio.write_dataframe(
                    frame,
                    temp,
                    driver=driver,
                    geometry_type="Polygon" if frame.empty else None,
                    **options,
                )
        publish(temp, output)
    except Exception as exc:
        if out_of_room(exc, output.parent, [temp]):
            raise OutputPathError(
                f"Writing {output} failed: the disk holding it is full or a file-size limit "
                "(ulimit -f) was reached; nothing was written."
            ) from exc
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
