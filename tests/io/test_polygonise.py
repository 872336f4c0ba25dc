"""``lcmap.io.polygonise``: one polygon per 4-connected region, whatever the window size."""

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from lcmap.io.polygonise import polygonise, square_windows


@pytest.fixture
def labels() -> np.ndarray:
    """Blocky random labels (regions of many shapes and sizes) with a nodata hole."""
    rng = np.random.default_rng(3)
    data = np.kron(rng.integers(0, 4, (12, 10)), np.ones((7, 9), dtype=np.int64)).astype("uint8")
    data[20:40, 30:50] = 255
    return data


def _polygons(data: np.ndarray, window_size: int, sieve_size: int = 0) -> list[tuple[int, bytes]]:
    """(class, geometry) per polygon, as WKB after dropping the vertices a seam leaves on a
    straight edge (the same polygon, whichever window cut it)."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": "uint8",
        "nodata": 255,
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 4000000, 1, 1),
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data, 1)
        with mem.open() as src:
            cls, geoms, _ = polygonise(src, window_size, sieve_size, None, None)
    clean = shapely.normalize(shapely.simplify(geoms, 0))  # collinear vertices only
    return sorted((int(c), g.wkb) for c, g in zip(cls, clean, strict=True))


def test_square_windows_cover_the_raster_once() -> None:
    hits = np.zeros((70, 95), dtype=int)
    for w in square_windows(95, 70, 32):
        hits[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (hits == 1).all()


def test_the_polygons_do_not_depend_on_the_window_size(labels) -> None:
    whole = _polygons(labels, 4096)
    for size in (16, 25, 64):
        assert _polygons(labels, size) == whole


def test_each_region_is_one_polygon_of_its_pixels_and_nodata_is_none(labels) -> None:
    from scipy import ndimage

    polygons = _polygons(labels, 16)
    for value in range(4):
        _, regions = ndimage.label(labels == value)  # 4-connectivity
        mine = [shapely.from_wkb(g) for c, g in polygons if c == value]
        assert all(g.is_valid for g in mine)
        assert len(mine) == regions
        assert sum(g.area for g in mine) == (labels == value).sum()
    assert all(c != 255 for c, _ in polygons)


def test_sieving_does_not_depend_on_the_window_size(labels) -> None:
    """Exact while a window's margin holds the sieve (the margin is min(sieve, window))."""
    whole = _polygons(labels, 4096, sieve_size=40)
    assert whole != _polygons(labels, 4096)  # the sieve did merge regions
    assert _polygons(labels, 45, sieve_size=40) == whole


def test_an_unreadable_window_is_said_as_a_corrupt_file(tmp_path) -> None:
    from lcmap.errors import InvalidSceneError
    from lcmap.io.polygonise import read_labels

    path = tmp_path / "cut.tif"
    profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 1, "dtype": "uint8"}
    profile |= {"crs": "EPSG:32633", "transform": from_origin(0, 256, 1, 1)}
    with rasterio.open(path, "w", **profile, compress="deflate", tiled=True) as dst:
        dst.write(np.random.default_rng(0).integers(0, 9, (256, 256), dtype="uint8"), 1)
    path.write_bytes(path.read_bytes()[:-2000])  # the last tiles are cut off
    with rasterio.open(path) as src, pytest.raises(InvalidSceneError, match="corrupt"):
        for w in square_windows(256, 256, 64):
            read_labels(src, w)
