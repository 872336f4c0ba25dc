"""``lcmap.io.scene``: paths GDAL opens, mirrored reads, read specs, band facts."""

from pathlib import Path

import numpy as np
import rasterio
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


def test_band_mismatches_group_one_contradiction_over_bands_and_ignore_vague_facts() -> None:
    model = [{"description": "red", "colorinterp": "red", "dtype": "uint8"}] * 2
    scene = [{"description": "", "colorinterp": "undefined", "dtype": "uint16"}] * 2
    assert band_mismatches(model, scene) == ["dtype 'uint16' (model: 'uint8') on bands 1,2"]
    assert band_mismatches(model, model) == []
