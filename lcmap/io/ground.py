"""How much ground a pixel covers: a scene's pixel size in metres, whatever its CRS."""

import math

import rasterio.warp
from rasterio._err import CPLE_BaseError
from rasterio.errors import CRSError, RasterioError
from rasterio.io import DatasetReader

#: The WGS 84 ellipsoid: semi-major axis (m) and first eccentricity squared.
_WGS84 = (6_378_137.0, 6.694379990141e-3)


def pixel_size_m(src: DatasetReader) -> float | None:
    """The scene's pixel size on the ground in metres (the larger side), at its centre; None
    without georeferencing.

    A pixel's two sides at the scene's centre are taken to longitude and latitude and measured
    on the WGS 84 ellipsoid, so the answer is on the ground whatever the CRS: degrees at the
    scene's latitude, feet, and Web Mercator's stretched metres (a 4.8 m basemap pixel at
    50 N is about 3 m of ground) alike. A CRS that cannot be taken to longitude and latitude
    (a local engineering CRS) falls back to its linear unit.
    """
    if src.crs is None or src.transform.is_identity:
        return None
    col, row = src.width / 2, src.height / 2
    corners = [src.transform * (c, r) for c, r in ((col, row), (col + 1, row), (col, row + 1))]
    try:
        lons, lats = rasterio.warp.transform(
            src.crs, "EPSG:4326", [x for x, _ in corners], [y for _, y in corners]
        )
        size = max(_ground_m(lons[0], lats[0], lons[i], lats[i]) for i in (1, 2))
    except (CRSError, RasterioError, CPLE_BaseError):  # PROJ knows no way to longitudes
        size = math.nan
    if math.isfinite(size) and size > 0:
        return size
    try:
        factor = float(src.crs.linear_units_factor[1])
    except CRSError:  # a CRS GDAL gives no unit for: say nothing rather than guess
        return None
    return float(max(abs(src.res[0]), abs(src.res[1])) * factor)


def _ground_m(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Metres between two nearby points (a pixel apart) on the WGS 84 ellipsoid, from its radii
    of curvature at their mean latitude."""
    a, e2 = _WGS84
    phi = math.radians((lat0 + lat1) / 2)
    w = 1.0 - e2 * math.sin(phi) ** 2
    north = a * (1.0 - e2) / w**1.5 * math.radians(lat1 - lat0)
    dlon = (lon1 - lon0 + 180.0) % 360.0 - 180.0
    east = a / math.sqrt(w) * math.cos(phi) * math.radians(dlon)
    return float(math.hypot(east, north))
