"""``lcmap.methods._frozen_vit``: the frozen ViT the ViT methods read, cut after its feature
block, given the scene's bands, and its features in fp32 whatever precision it ran in."""

from pathlib import Path

import pytest
import torch
from _tiny_vit import DINO, TINY

from lcmap.errors import InvalidOptionError, InvalidSceneError
from lcmap.methods._frozen_vit import FrozenViT
from lcmap.methods.base import Window


def _vit(weights: Path, feature_layer: int | None = None, crop: int = 100) -> FrozenViT:
    return FrozenViT("stego", DINO, str(weights), None, feature_layer, dict(TINY), crop)


def test_the_vit_is_cut_after_its_feature_block(tiny_weights: Path) -> None:
    vit = _vit(tiny_weights, feature_layer=-2)  # the second-to-last of 2 blocks
    assert vit.feature_layer == 1 and len(vit.net.blocks) == 1
    assert not any(p.requires_grad for p in vit.net.parameters())
    assert vit.crop_size == 96 and vit.window(None) == Window(96, 48)  # a patch multiple
    with pytest.raises(InvalidOptionError, match="out of range"):
        _vit(tiny_weights, feature_layer=3)
    with pytest.raises(InvalidOptionError, match="divisor of crop_size"):
        vit.window(40)


def test_features_have_one_fp32_vector_per_patch_for_any_band_count(tiny_weights: Path) -> None:
    vit = _vit(tiny_weights)
    vit.set_in_channels(5)
    feats = vit.features(torch.rand(2, 5, 32, 48))
    assert feats.shape == (2, vit.dim, 4, 6) and feats.dtype == torch.float32
    assert vit.mean.numel() == 5 and vit.std.numel() == 5
    with pytest.raises(InvalidSceneError, match="expects 5"):
        vit.set_in_channels(3)


def test_the_header_names_the_weights_by_digest(tiny_weights: Path) -> None:
    facts = _vit(tiny_weights).header()
    assert facts["weights_source"] == "explicit" and len(facts["weights_sha256"]) == 64
    assert facts["patch_size"] == 8 and facts["feature_layer"] == 2
