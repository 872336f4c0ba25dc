"""``lcmap.io.scene``: paths GDAL opens, mirrored reads, read specs, band facts."""

from pathlib import Path

import numpy as np
import rasterio
from _helpers import write_raster
from rasterio.windows import Window

from lcmap.io.scene import (
    Normalisation,
    ReadSpec,
    band_mismatches,
    is_virtual,
    read_window,
    scene_path,
)


def test_virtual_paths_stay_strings_and_local_paths_become_paths() -> None:
    assert is_virtual("/vsizip/a.zip/b.tif") and is_virtual("https://x/y.tif")
    assert scene_path("https://x/y.tif") == "https://x/y.tif"
    assert scene_path("a/b.tif") == Path("a/b.tif") and not is_virtual("a/b.tif")


def test_reads_past_the_edge_mirror_the_scene(make_scene) -> None:
    with rasterio.open(make_scene()) as src:
        inside, _ = read_window(src, Window(0, 0, 8, 8), [1])
        outside, valid = read_window(src, Window(-8, 0, 16, 8), [1])
    np.testing.assert_array_equal(outside[:, :, 8:], inside)
    np.testing.assert_array_equal(outside[:, :, :8], inside[:, :, ::-1])
    assert valid.all()


def test_a_read_spec_reads_its_bands_normalised(make_scene) -> None:
    spec = ReadSpec((2, 1), Normalisation((0.0, 0.0), (255.0, 255.0)))
    with rasterio.open(make_scene()) as src:
        data, valid = spec.read(src, Window(0, 0, 16, 16))
        raw = src.read([2, 1], window=Window(0, 0, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(data, raw / 255.0, rtol=1e-6)
    assert valid.shape == (16, 16)


def test_normalising_in_place_gives_the_same_bits_and_leaves_other_arrays_alone() -> None:
    norm = Normalisation((10.0, 3.5), (200.0, 90.25))
    raw = np.random.default_rng(0).integers(0, 256, (2, 9, 7)).astype(np.uint8)
    valid = np.ones((9, 7), bool)
    valid[2, 3] = False
    copied = norm.apply(raw, valid)
    floats = raw.astype(np.float32)
    in_place = norm.apply(floats, valid, in_place=True)
    assert in_place is floats  # stretched where it was
    assert np.array_equal(in_place.view(np.uint32), copied.view(np.uint32))
    assert (copied[:, 2, 3] == 0).all() and copied.min() == 0 and copied.max() == 1
    before = raw.copy()
    norm.apply(raw, valid, in_place=True)  # not float32: a new array, the input untouched
    assert np.array_equal(raw, before)


def test_band_mismatches_group_one_contradiction_over_bands_and_ignore_vague_facts() -> None:
    model = [{"description": "red", "colorinterp": "red", "dtype": "uint8"}] * 2
    scene = [{"description": "", "colorinterp": "undefined", "dtype": "uint16"}] * 2
    assert band_mismatches(model, scene) == ["dtype 'uint16' (model: 'uint8') on bands 1,2"]
    assert band_mismatches(model, model) == []


def test_a_partner_in_another_crs_lands_on_the_right_pixels(tmp_path) -> None:
    from rasterio.transform import from_origin
    from rasterio.warp import transform as reproject_points

    from lcmap.io.scene import open_on_grid

    # A: UTM 33N, 10 m; B: geographic, ~5 m, with a bright 4 x 4 block at a known place.
    a = write_raster(
        tmp_path / "a.tif",
        np.zeros((1, 200, 200), np.uint16),
        "EPSG:32633",
        from_origin(500000, 5000000, 10, 10),
    )
    (lon0, lon1), (lat0, lat1) = reproject_points(
        "EPSG:32633", "EPSG:4326", [499500, 502500], [5000500, 4997500]
    )
    step = 0.00005
    b = np.full((2, int((lat0 - lat1) / step), int((lon1 - lon0) / step)), 10, np.uint16)
    row, col = b.shape[1] // 2, b.shape[2] // 3
    b[:, row : row + 4, col : col + 4] = 1000
    b_path = write_raster(tmp_path / "b.tif", b, "EPSG:4326", from_origin(lon0, lat0, step, step))
    # Where the block's centre is on A's grid, by the transforms alone.
    (x,), (y,) = reproject_points(
        "EPSG:4326", "EPSG:32633", [lon0 + (col + 2) * step], [lat0 - (row + 2) * step]
    )
    expect_row, expect_col = (5000000 - y) / 10, (x - 500000) / 10
    with rasterio.open(a) as ref, open_on_grid(b_path, ref) as view:
        assert (view.crs, view.width, view.height) == (ref.crs, 200, 200)
        data, valid = read_window(view, Window(0, 0, 200, 200), [1, 2])
    assert valid.all()
    bright = np.argwhere(data[0] > 300)
    assert len(bright) > 0
    r, c = bright.mean(axis=0) + 0.5  # pixel centres
    assert abs(r - expect_row) < 1.0 and abs(c - expect_col) < 1.0
    assert np.array_equal(data[0], data[1])


def test_a_partner_smaller_than_the_scene_is_nodata_outside(tmp_path) -> None:
    from rasterio.transform import from_origin

    from lcmap.io.scene import open_on_grid

    a = write_raster(
        tmp_path / "a.tif",
        np.ones((1, 100, 100), np.uint16),
        "EPSG:32633",
        from_origin(500000, 5000000, 10, 10),
    )
    b = write_raster(
        tmp_path / "b.tif",
        np.full((1, 50, 50), 7.0, np.float32),
        "EPSG:32633",
        from_origin(500000, 5000000, 10, 10),
    )
    with rasterio.open(a) as ref, open_on_grid(b, ref) as view:
        data, valid = read_window(view, Window(0, 0, 100, 100), [1])
    assert valid[:50, :50].all() and not valid[50:, :].any() and not valid[:, 50:].any()
    assert np.allclose(data[0, :50, :50], 7.0)
