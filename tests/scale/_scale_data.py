"""The scenes and the map reader the scale-out tests share."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from _helpers import DATA

RGB = DATA / "rasterio" / "RGB.byte.tif"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "naip_2020_rgbn.tif"
needs_rgb = pytest.mark.skipif(not RGB.exists(), reason="../shared/data/rasterio absent")


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)
