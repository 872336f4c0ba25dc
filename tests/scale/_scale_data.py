"""The scenes and the map reader the scale-out tests share."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from _helpers import DATA

from lcmap import api
from lcmap.workflows.specs import MethodSpec, RunSpec, ScaleSpec, TilingSpec

RGB = DATA / "rasterio" / "RGB.byte.tif"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "naip_2020_rgbn.tif"
needs_rgb = pytest.mark.skipif(not RGB.exists(), reason="../shared/data/rasterio absent")


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def kmeans_map(out: Path, tile: int, scale: ScaleSpec | None = None) -> Any:
    """The 5-class kmeans map of the RGB test scene on the CPU, in ``tile`` px tiles."""
    return api.segment(
        RGB,
        out,
        method=MethodSpec("kmeans", classes=5),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=tile),
        scale=scale or ScaleSpec(),
    )
