"""Training labels: rasters on the scene grid and polygons burnt into it agree pixel for pixel."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from _cas_data import CLASS_NAMES, write_three_class_scene
from rasterio.features import shapes
from rasterio.windows import Window
from shapely.geometry import box, shape

from lcmap.errors import InvalidSceneError
from lcmap.io.labels import (
    UNLABELLED,
    footprint_windows,
    labelled_windows,
    open_labels,
    polygon_class_names,
)


@pytest.fixture
def scene(tmp_path):
    truth = write_three_class_scene(tmp_path / "s.tif", tmp_path / "s_labels.tif", 70, 90)
    return tmp_path / "s.tif", tmp_path / "s_labels.tif", truth


def _polygonise(raster, path, crs=None):
    with rasterio.open(raster) as src:
        data = src.read(1)
        rows = [
            {"class": int(v), "landcover": CLASS_NAMES[int(v)], "geometry": shape(g)}
            for g, v in shapes(data, mask=data != 255, transform=src.transform)
        ]
        frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=src.crs)
    if crs is not None:
        frame = frame.to_crs(crs)
    frame.to_file(path)
    return path


def _read_all(source, width, height):
    return source.read(Window(-5, -3, width + 12, height + 9))


def test_raster_and_polygons_give_the_same_training_pixels(scene, tmp_path):
    path, labels, truth = scene
    gpkg = _polygonise(labels, tmp_path / "labels.gpkg")
    with rasterio.open(path) as src:
        raster, handle = open_labels(labels, src)
        ids, _ = open_labels(gpkg, src, column="class")
        names, _ = open_labels(
            gpkg, src, column="landcover", class_ids={n: i for i, n in enumerate(CLASS_NAMES)}
        )
        a = _read_all(raster, src.width, src.height)
        b = _read_all(ids, src.width, src.height)
        c = _read_all(names, src.width, src.height)
        handle.close()
    np.testing.assert_array_equal(a[3:-6, 5:-7], truth)
    assert (a[:3] == UNLABELLED).all() and (a[:, :5] == UNLABELLED).all()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_polygons_in_another_crs_are_reprojected(scene, tmp_path):
    path, labels, truth = scene
    gpkg = _polygonise(labels, tmp_path / "labels_4326.gpkg", crs="EPSG:4326")
    with rasterio.open(path) as src:
        source, _ = open_labels(gpkg, src, column="class")
        got = source.read(Window(0, 0, src.width, src.height))
    # Reprojection bends pixel edges slightly: nearly every pixel keeps its class.
    assert (got == truth).mean() > 0.97


def test_polygon_class_names_and_column_errors(scene, tmp_path):
    _, labels, _ = scene
    gpkg = _polygonise(labels, tmp_path / "labels.gpkg")
    assert polygon_class_names(gpkg, "landcover") == sorted(CLASS_NAMES)
    assert polygon_class_names(gpkg, "class") is None
    with pytest.raises(InvalidSceneError, match="no column 'kind'"):
        polygon_class_names(gpkg, "kind")


def test_unknown_class_name_is_a_clear_error(scene, tmp_path):
    path, labels, _ = scene
    gpkg = _polygonise(labels, tmp_path / "labels.gpkg")
    with rasterio.open(path) as src, pytest.raises(InvalidSceneError, match="not among"):
        open_labels(gpkg, src, column="landcover", class_ids={"water": 0})


def test_label_raster_off_the_scene_grid_is_refused(scene, tmp_path):
    path, _, truth = scene
    other = tmp_path / "small.tif"
    with rasterio.open(
        other,
        "w",
        driver="GTiff",
        width=10,
        height=10,
        count=1,
        dtype="uint8",
        crs="EPSG:32618",
        transform=rasterio.transform.from_origin(0, 10, 1, 1),
    ) as dst:
        dst.write(truth[None, :10, :10])
    with rasterio.open(path) as src, pytest.raises(InvalidSceneError, match="scene's grid"):
        open_labels(other, src)


def test_labelled_windows_and_footprints(scene, tmp_path):
    path, labels, _ = scene
    with rasterio.open(path) as src:
        source, handle = open_labels(labels, src)
        found = labelled_windows(source, src.width, src.height, 32)
        assert len(found) == 9  # ceil(90/32) * ceil(70/32), all labelled
        assert found[-1].labelled == (90 - 64) * (70 - 64)
        assert max(w.max_class for w in found) == 2
        handle.close()
        frame = gpd.GeoDataFrame(
            {"scene": ["s", "other"], "order": [1, 2]},
            geometry=[
                box(*rasterio.windows.bounds(Window(32, 0, 32, 32), src.transform)),
                box(*rasterio.windows.bounds(Window(0, 0, 32, 32), src.transform)),
            ],
            crs=src.crs,
        )
        frame.to_file(tmp_path / "fp.gpkg")
        assert footprint_windows(tmp_path / "fp.gpkg", src, "s") == [(1, Window(32, 0, 32, 32))]
