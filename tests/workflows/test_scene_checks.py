"""``lcmap.workflows.scene_checks``: a scene against the method that maps it, before any work."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from lcmap.errors import InvalidSceneError
from lcmap.workflows.scene_checks import check_row_memory, tile_halo, warn_coarse_patches


def _vit_method(patch: int = 14) -> SimpleNamespace:
    return SimpleNamespace(vit=SimpleNamespace(patch_size=patch), info=SimpleNamespace(name="vit"))


@pytest.mark.parametrize(
    ("crs", "res", "warned"),
    [
        ("EPSG:32633", 0.5, False),  # 7 m patches: what the ViT methods were measured good at
        ("EPSG:32633", 2.0, False),  # 28 m patches: the ViT still maps better at 2 m
        ("EPSG:32633", 10.0, True),  # 140 m patches: kmeans maps as well
        ("EPSG:4326", 0.0001, True),  # about 11 m pixels, said in degrees
    ],
)
def test_a_vit_on_coarse_pixels_is_said_in_one_line(caplog, crs, res, warned) -> None:
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8"}
    profile |= {"crs": crs, "transform": from_origin(0.0 if res < 1 else 500_000.0, 10.0, res, res)}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.zeros((1, 8, 8), "uint8"))
        with (
            mem.open() as src,
            caplog.at_level(logging.WARNING, logger="lcmap.workflows.scene_checks"),
        ):
            warn_coarse_patches(_vit_method(), src)  # type: ignore[arg-type]
            warn_coarse_patches(SimpleNamespace(), src)  # type: ignore[arg-type]  # no ViT
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == (1 if warned else 0)
    assert not warned or "thin features" in lines[0]


def test_a_halo_is_raised_to_the_tile_grid_and_the_windows_needs(caplog) -> None:
    method = SimpleNamespace(halo=16, tile_multiple=16, window=SimpleNamespace(size=224, halo=56))
    assert tile_halo(method, None) == 16  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="lcmap.workflows.scene_checks"):
        assert tile_halo(method, 10) == 56  # type: ignore[arg-type]
    assert "raised to 56" in caplog.text


def test_a_scene_too_wide_for_memory_is_refused_before_any_work() -> None:
    wide = SimpleNamespace(width=10**9, count=4, name="wide.tif")
    with pytest.raises(InvalidSceneError, match="narrower pieces"):
        check_row_memory(wide, 512)  # type: ignore[arg-type]
    check_row_memory(SimpleNamespace(width=1000, count=4, name="s.tif"), 512)  # type: ignore[arg-type]
