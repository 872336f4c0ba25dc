"""``lcmap.io.overviews``: MODE overviews streamed from the rows, laid out as the COG driver's."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from lcmap.io.overviews import mode_2x2, overview_sizes
from lcmap.io.writer import LabelWriter, MapGrid

NODATA = 255


def test_mode_takes_the_most_frequent_class_without_nodata() -> None:
    blocks = np.array(
        [
            [3, 1, 2, 2, 4, 5, NODATA, NODATA, NODATA, 7],
            [1, 1, 3, 3, 6, 7, NODATA, NODATA, NODATA, NODATA],
        ],
        np.uint8,
    )
    # 3 of one class; a 2-2 tie (the first in reading order wins); all different (the
    # first); all nodata; one class among nodata.
    assert mode_2x2(blocks, NODATA).tolist() == [[1, 2, 4, NODATA, 7]]


def test_mode_of_odd_sides_uses_the_pixels_there_are() -> None:
    labels = np.array([[0, 0, 4], [1, 0, 4], [2, 2, 5]], np.uint8)
    assert mode_2x2(labels, NODATA).tolist() == [[0, 4], [2, 5]]


@pytest.mark.parametrize("size", [(512, 512), (513, 300), (1025, 1025), (2049, 100), (3000, 1500)])
def test_levels_are_the_ones_the_cog_driver_makes(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    src, cog = tmp_path / "s.tif", tmp_path / "c.tif"
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32614",
        "transform": from_origin(500000, 4000000, 1, 1),
    }
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(np.zeros((1, height, width), np.uint8))
    rasterio.shutil.copy(src, cog, driver="COG", BLOCKSIZE=512, OVERVIEW_RESAMPLING="MODE")
    with rasterio.open(cog) as ds:
        gdal = [(ov.width, ov.height) for ov in _overview_shapes(ds)]
    assert overview_sizes(width, height, 512) == gdal


def _overview_shapes(ds: rasterio.io.DatasetReader) -> list[rasterio.windows.Window]:
    return [
        rasterio.windows.Window(0, 0, -(-ds.width // f), -(-ds.height // f))
        for f in ds.overviews(1)
    ]


def _write_map(
    path: Path, labels: np.ndarray, chunks: list[tuple[int, int]], **options: str
) -> None:
    height, width = labels.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with LabelWriter(
            path,
            grid=MapGrid(
                width, height, rasterio.crs.CRS.from_epsg(32614), from_origin(500000, 4000000, 1, 1)
            ),
            dtype=np.dtype("uint8"),
            class_names=[f"c{i}" for i in range(6)],
            colours=[(i, i, i) for i in range(6)],
            creation_options=options,
        ) as writer:
            for row, n in chunks:
                writer.write_rows(row, labels[row : row + n])
            writer.commit()


def _chunks(height: int, sizes: list[int]) -> list[tuple[int, int]]:
    out, row, i = [], 0, 0
    while row < height:
        n = min(sizes[i % len(sizes)], height - row)
        out.append((row, n))
        row, i = row + n, i + 1
    return out


def test_streamed_overviews_are_the_mode_pyramid_of_the_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # Blocky classes (as maps are) with nodata patches, odd sides, rows in odd-sized bands.
    coarse = rng.integers(0, 6, (53, 61)).astype(np.uint8)
    labels = np.kron(coarse, np.ones((25, 25), np.uint8))[:1301, :1517].copy()
    labels[rng.random(labels.shape) < 0.05] = rng.integers(0, 6)
    labels[100:400, 700:900] = NODATA
    out = tmp_path / "map.tif"
    _write_map(out, labels, _chunks(labels.shape[0], [37, 64, 1, 250]))
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert np.array_equal(ds.read(1), labels)
        assert ds.overviews(1) == [2, 4]
        level = labels
        for factor in ds.overviews(1):
            level = mode_2x2(level, NODATA)
            shape = (-(-ds.height // factor), -(-ds.width // factor))
            assert level.shape == shape
            assert np.array_equal(ds.read(1, out_shape=shape), level)
        assert ds.colormap(1)[5][:3] == (5, 5, 5)


def test_rows_out_of_order_or_other_overviews_leave_them_to_gdal(tmp_path: Path) -> None:
    labels = np.kron(np.arange(30).reshape(5, 6) % 6, np.ones((230, 230), np.int64))
    labels = labels.astype(np.uint8)
    backwards = [(row, 230) for row in range(920, -1, -230)]
    for name, chunks, options in [
        ("backwards.tif", backwards, {}),
        ("nearest.tif", _chunks(1150, [100]), {"OVERVIEW_RESAMPLING": "NEAREST"}),
    ]:
        out = tmp_path / name
        _write_map(out, labels, chunks, **options)
        with rasterio.open(out) as ds:
            assert np.array_equal(ds.read(1), labels)
            assert ds.overviews(1) == [2, 4] and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert not list(tmp_path.glob("*.ovr*")) and not list(tmp_path.glob("*.vrt"))
