"""Fixtures for the viewer's tests (registered in tests/conftest.py): a scene and a named
map on a UTM grid, and a viewer server over them."""

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lcmap.viewer.server import Viewer, ViewerServer
from lcmap.workflows.classes import name_classes

SIZE = 200  # px; 10 m pixels: each half of the map is 100 x 200 px = 200 ha


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A scene and a named map on a UTM grid: west half water (0), east half trees (1)."""
    tmp = tmp_path_factory.mktemp("view")
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 5_000_000, 10, 10),
    }
    labels = np.zeros((SIZE, SIZE), np.uint8)
    labels[:, SIZE // 2 :] = 1
    raw = tmp / "raw.tif"
    with rasterio.open(raw, "w", count=1, dtype="uint8", nodata=255, **profile) as dst:
        dst.write(labels, 1)
    named = tmp / "map.tif"
    name_classes([raw], named, {0: "water", 1: "trees"})
    scene = tmp / "scene.tif"
    rng = np.random.default_rng(0)
    bands = rng.integers(0, 200, (3, SIZE, SIZE), dtype=np.uint8)
    bands[:, :10, :10] = (7, 8, 9)[0]
    with rasterio.open(scene, "w", count=3, dtype="uint8", **profile) as dst:
        dst.write(bands)
    return {"map": named, "scene": scene, "tmp": tmp}


@pytest.fixture
def server(files: dict[str, Path]) -> Iterator[ViewerServer]:
    viewer = Viewer(files["map"], [files["scene"]])
    served = ViewerServer(viewer)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()
