"""``lcmap.viewer.tiles``: ground areas, and scenes with and without overviews."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.transform import from_origin

from lcmap.viewer.tiles import pixel_area_m2


def test_pixel_area_of_a_geographic_map(tmp_path: Path) -> None:
    path = tmp_path / "geo.tif"
    # 0.001 degree pixels at the equator: about 111.2 m a side.
    transform = from_origin(10, 0.05, 0.001, 0.001)
    with rasterio.open(
        path, "w", driver="GTiff", width=100, height=100, count=1, dtype="uint8",
        crs="EPSG:4326", transform=transform,
    ) as dst:  # fmt: skip
        dst.write(np.zeros((1, 100, 100), np.uint8))
    with rasterio.open(path) as src:
        assert pixel_area_m2(src) == pytest.approx(111.19**2, rel=1e-3)


def test_a_scene_without_overviews_is_shown_near_its_own_pixels_only(
    files: dict[str, Path], tmp_path: Path
) -> None:
    import morecantile
    from rasterio.enums import Resampling

    from lcmap.viewer.tiles import SceneView

    bare = SceneView(files["scene"])
    assert bare.slow and bare.minzoom > 0
    # The tile over the scene's centre one zoom wider than a bare scene is shown at.
    with rasterio.open(files["scene"]) as src:
        w, s, e, n = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    z = bare.minzoom - 1
    over = morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (s + n) / 2, z)
    assert bare.tile(z, over.x, over.y) is None  # never a whole-file read per tile
    copy = tmp_path / "scene.tif"
    copy.write_bytes(files["scene"].read_bytes())
    with rasterio.open(copy, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.average)
    with_overviews = SceneView(copy)
    assert not with_overviews.slow and with_overviews.minzoom == 0
    png = with_overviews.tile(z, over.x, over.y)  # with overviews: drawn at that zoom
    assert png is not None and png.startswith(b"\x89PNG")


def test_the_viewer_shows_a_sentinel2_stack_in_true_colour(tmp_path: Path) -> None:
    from lcmap.viewer.tiles import SceneView
    from tests.io.test_preview import sentinel2_stack

    assert SceneView(sentinel2_stack(tmp_path / "s2.tif")).bands == (4, 3, 2)
    assert SceneView(sentinel2_stack(tmp_path / "b.tif"), (1, 2, 3)).bands == (1, 2, 3)
