"""Shared fixtures: synthetic scenes with a known pattern, a toy method, device selection."""

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from _helpers import SPECTRA, quadrant_truth
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

# The viewer's scene, map and server fixtures, for tests/viewer and tests/cli.
pytest_plugins = ["viewer._maps"]

# Tests never see the developer's weights cache: what `lcmap segment` picks by default, and
# what resolves, must not depend on the machine.
_CACHE = tempfile.mkdtemp(prefix="lcmap-test-cache-")
os.environ["LCMAP_CACHE_DIR"] = _CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the empty weights cache the session used."""
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_run() -> Iterator[None]:
    """Each test is a run of its own: no outputs noted by an earlier test's guard."""
    from lcmap.io import staging

    staging.begin_run()
    yield
    staging.begin_run()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip gpu tests when CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def vit_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache and no hub: nothing but the files a test gives is found."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("LCMAP_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for a module of small-tensor training tests.

    On a busy 2-core machine, OpenMP threads spinning for each other make two threads far
    slower than one on tensors this small. Use with ``pytestmark = usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def test_device() -> torch.device:
    """LCMAP_TEST_DEVICE=cuda moves ordinary tests to the GPU."""
    return torch.device(os.environ.get("LCMAP_TEST_DEVICE", "cpu"))


@pytest.fixture
def make_scene(tmp_path: Path) -> Callable[..., Path]:
    """Write a small tiled GeoTIFF whose quadrants have distinct spectra (plus mild noise).

    Returns a factory ``make_scene(name="scene.tif", width=517, height=389, bands=4,
    dtype="uint8", crs="EPSG:32618", nodata=None, nodata_box=False, seed=0)``.
    """

    def factory(
        name: str = "scene.tif",
        width: int = 517,
        height: int = 389,
        bands: int = 4,
        dtype: str = "uint8",
        crs: str | None = "EPSG:32618",
        nodata: float | None = None,
        nodata_box: bool = False,
        seed: int = 0,
        **profile: Any,
    ) -> Path:
        rng = np.random.default_rng(seed)
        truth = quadrant_truth(height, width)
        spectra = np.resize(SPECTRA, (4, bands)) if bands != 4 else SPECTRA
        data = spectra[truth].transpose(2, 0, 1) + rng.normal(0, 4, (bands, height, width))
        scale = 100 if dtype in ("uint16", "int16", "float32") else 1
        data = np.clip(data * scale, 1, np.iinfo(np.uint8).max * scale).astype(dtype)
        if nodata_box:
            data[:, 10:60, 20:90] = nodata
        path = tmp_path / name
        kwargs: dict[str, Any] = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": bands,
            "dtype": dtype,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "nodata": nodata,
            # Not RGBA: rasterio would otherwise flag a 4th uint8 band as alpha.
            "photometric": "MINISBLACK",
            **profile,
        }
        if crs is not None:
            kwargs.update(crs=crs, transform=from_origin(500000, 4000000, 2.0, 2.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, "w", **kwargs) as dst:
                dst.write(data)
        return path

    return factory
