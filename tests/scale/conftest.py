"""Fixtures of the scale-out tests: a local Dask cluster, a tiny stego model."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _tiny_vit import tiny_stego_on_naip, tiny_vit
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A LocalCluster of 2 worker processes, shared by the module's tests."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def stego_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 320 x 320 crop of the real NAIP sample and a tiny stego model fitted on it."""
    root = tmp_path_factory.mktemp("stego")
    weights = root / "tiny.safetensors"
    save_file(tiny_vit().state_dict(), str(weights))
    return tiny_stego_on_naip(root, weights, 40, 2)
