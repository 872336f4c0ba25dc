"""Fixtures of the method tests: tiny ViT weights (stego, dino_kmeans, primaps) and a tiny
fitted CAS model; ``vit_cache`` is in ``tests/conftest.py``."""

from pathlib import Path

import pytest
import torch
from _cas_data import SIMCLR_FAST, TINY_CAS, three_class_image, write_three_class_scene
from _tiny_vit import tiny_vit
from safetensors.torch import save_file

from lcmap import api
from lcmap.methods.cas import CasSegmenter
from lcmap.sampling import ArraySampler
from lcmap.workflows.specs import MethodSpec, RunSpec


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINO ViT-S/8 (width 32, 2 blocks) saved as safetensors."""
    path = tmp_path_factory.mktemp("weights") / "tiny_dino_s8.safetensors"
    save_file(tiny_vit().state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def fitted_cas():
    """A tiny CAS model fitted on a synthetic three-class image, and the image."""
    torch.manual_seed(0)
    image, _ = three_class_image()
    cas = CasSegmenter.build(num_classes=3, **TINY_CAS)
    cas.fit(ArraySampler([image], seed=0))
    return cas, image


@pytest.fixture(scope="session")
def encoder_model(tmp_path_factory):
    """A simclr encoder pre-trained on a synthetic three-class scene, a second scene's truth,
    and the model header."""
    root = tmp_path_factory.mktemp("simclr")
    write_three_class_scene(root / "a.tif", root / "a_labels.tif", seed=0)
    truth_b = write_three_class_scene(root / "b.tif", root / "b_labels.tif", seed=1)
    options = dict(SIMCLR_FAST)
    header = api.train(
        [root / "a.tif"],
        root / "enc.lcmap",
        method=MethodSpec("simclr", classes=3, options=options),
        run=RunSpec(device="cpu"),
    )
    return root, truth_b, header
