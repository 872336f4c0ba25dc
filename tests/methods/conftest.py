"""Fixtures of the ViT method tests (stego, dino_kmeans, primaps); ``vit_cache`` is in
``tests/conftest.py``."""

from pathlib import Path

import pytest
from _tiny_vit import tiny_vit
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINO ViT-S/8 (width 32, 2 blocks) saved as safetensors."""
    path = tmp_path_factory.mktemp("weights") / "tiny_dino_s8.safetensors"
    save_file(tiny_vit().state_dict(), str(path))
    return path
