"""``lcmap.io.ground``: a pixel's size on the ground, whatever the scene's CRS."""

import math

import numpy as np
import pytest
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from lcmap.io.ground import pixel_size_m


@pytest.mark.parametrize(
    ("crs", "res", "left", "top", "metres"),
    [
        # UTM near its central meridian (scale 0.9996), then 500 km off it (scale 1.0027)
        ("EPSG:32633", 10.0, 500_000.0, 5_000_000.0, 10.0 / 0.9996),
        ("EPSG:32633", 10.0, 0.0, 5_000_000.0, 10.0 / 1.0027),
        ("EPSG:2263", 3.0, 1_000_000.0, 200_000.0, 3.0 * 1200 / 3937),  # NY state plane, US ft
        # Degrees: at 60 N a degree of latitude (111,412 m) is the longer side; at the equator
        # a degree of longitude (111,320 m) is.
        ("EPSG:4326", 0.0001, 0.0, 60.00005, 0.0001 * 111_412.0),
        ("EPSG:4326", 0.0001, 0.0, 0.00005, 0.0001 * 111_320.0),
        # Web Mercator at 50 N: a 4.78 m pixel is 4.78 x cos(50) of ground on its sphere, x
        # the ellipsoid's east-west radius there over the sphere's (the zoom-15 tiles of
        # basemaps; SpaceNet 7's scenes).
        ("EPSG:3857", 4.78, 0.0, 6_446_275.8, 4.78 * math.cos(math.radians(50)) * 1.00197),
        ('LOCAL_CS["site grid",UNIT["metre",1]]', 2.0, 0.0, 0.0, None),  # nowhere on Earth
        (None, 1.0, 0.0, 0.0, None),
    ],
)
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_pixel_size_is_said_in_metres_on_the_ground_whatever_the_crs(
    crs, res, left, top, metres
) -> None:
    profile = {"driver": "GTiff", "width": 4, "height": 1, "count": 1, "dtype": "uint8"}
    if crs is not None:
        profile |= {"crs": crs, "transform": from_origin(left, top, res, res)}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.zeros((1, 1, 4), "uint8"))
        with mem.open() as src:
            found = pixel_size_m(src)
    assert found == pytest.approx(metres, rel=1e-3) if metres is not None else found is None
