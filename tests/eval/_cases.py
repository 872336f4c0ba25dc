"""Shared label rasters and the hand-computed case of the metrics and report tests."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

TRANSFORM = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0)


# Hand case: (cluster, class) -> pixels. Cluster 2 is a second "class 1" cluster: with four
# clusters and three classes Hungarian must leave one cluster over, and it picks cluster 2.
PAIRS = {(0, 0): 5, (0, 1): 1, (1, 1): 4, (2, 1): 3, (3, 2): 2}


COUNTS = np.array([[5, 1, 0], [0, 4, 0], [0, 3, 0], [0, 0, 2]])


# Truth x predicted class (+ unmatched column) under Hungarian: 0->0, 1->1, 3->2, 2 unmatched.
HUNGARIAN_CONFUSION = np.array([[5, 0, 0, 0], [1, 4, 0, 3], [0, 0, 2, 0]])


def write_labels(
    path: Path, data: np.ndarray, *, nodata: float | None = None, transform: Any = TRANSFORM
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs="EPSG:32618",
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture
def hand_case(tmp_path: Path) -> tuple[Path, Path]:
    """A 7 x 5 prediction/truth pair holding PAIRS plus left-out pixels, shuffled.

    Left out: 10 pixels with truth 255 (ignored), 5 with prediction 255 (nodata; truth 0),
    5 with truth 7 (ignored only when asked).
    """
    pairs = [pair for pair, n in PAIRS.items() for _ in range(n)]
    pairs += [(1, 255)] * 10 + [(255, 0)] * 5 + [(2, 7)] * 5
    order = np.random.default_rng(3).permutation(len(pairs))
    grid = np.array(pairs, dtype=np.uint8)[order].reshape(5, 7, 2)
    pred = write_labels(tmp_path / "pred.tif", grid[..., 0])
    truth = write_labels(tmp_path / "truth.tif", grid[..., 1])
    return pred, truth
