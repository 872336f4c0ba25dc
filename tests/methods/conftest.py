"""Fixtures of the ViT method tests (stego, dino_kmeans, primaps)."""

from pathlib import Path

import pytest
from _tiny_vit import tiny_vit
from safetensors.torch import save_file


@pytest.fixture
def vit_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache and no hub: nothing but the files a test gives is found."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("LCMAP_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINO ViT-S/8 (width 32, 2 blocks) saved as safetensors."""
    path = tmp_path_factory.mktemp("weights") / "tiny_dino_s8.safetensors"
    save_file(tiny_vit().state_dict(), str(path))
    return path
