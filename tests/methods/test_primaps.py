"""primaps: principal mask proposals, the EM that fits prototypes to them, and the method.

The mask and EM tests use hand-made unit feature grids whose right answer is known; the method
tests use a tiny random ViT (width 32, 2 blocks), as test_dino_kmeans does. The figures on the
real DINOv2-S/14 are in benchmarks/README.md.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from _helpers import write_raster
from _tiny_vit import cluster_options, hungarian_miou, textured_miou, textured_scene
from rasterio.transform import from_origin

from lcmap import api
from lcmap.errors import InvalidOptionError
from lcmap.methods._primaps import EmSchedule, fit_prototypes, principal_masks
from lcmap.methods.loading import load_model
from lcmap.methods.primaps import PrimapsSegmenter
from lcmap.workflows.specs import MethodSpec, RunSpec, TilingSpec

pytestmark = pytest.mark.usefixtures("one_thread", "vit_cache")

D = 16


def unit(i: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), D).float()


def grid(
    regions: np.ndarray, vectors: dict[int, torch.Tensor], noise: float, gen: torch.Generator
) -> torch.Tensor:
    """(D, h, w) unit features: ``vectors[region]`` at each patch, plus noise."""
    f = torch.stack([vectors[int(r)] for r in regions.flatten()]).T.reshape(D, *regions.shape)
    return F.normalize(f + noise * torch.randn(f.shape, generator=gen), dim=0)


def test_masks_follow_the_regions_the_features_separate_and_skip_invalid_patches() -> None:
    regions = np.zeros((16, 16), np.int64)
    regions[:, 6:] = 1
    regions[10:, 6:] = 2
    f = grid(regions, {0: unit(0), 1: unit(1), 2: unit(2)}, 0.05, torch.Generator().manual_seed(0))
    valid = torch.ones(16, 16, dtype=torch.bool)
    valid[:2] = False
    masks = principal_masks(f, threshold=0.4, valid=valid).numpy()
    assert (masks[:2] == 0).all()
    inside = valid.numpy()
    # One mask per region: every region's patches share one id, no id spans two regions.
    for r in range(3):
        ids = np.unique(masks[inside & (regions == r)])
        assert len(ids) == 1 and ids[0] > 0
    assert len(np.unique(masks[inside])) == 3


def test_em_makes_labels_agree_within_masks_from_a_start_that_splits_a_region() -> None:
    # Region A is a patch-level mix of two directions 50 degrees apart (a texture); region B
    # is a third, orthogonal direction. The start puts one prototype on a1 and the other
    # between a2 and b, so A is split between the two classes; A's masks hold a1 and a2
    # together, and the EM moves the prototypes until A is one class and B the other.
    gen = torch.Generator().manual_seed(0)
    a1 = unit(0)
    a2 = F.normalize(unit(0) * 0.64 + unit(1) * 0.77, dim=0)
    b = unit(2)
    feats, masks, truths = [], [], []
    for i in range(24):
        regions = np.zeros((16, 16), np.int64)
        regions[:, 3 + (i % 8) :] = 2
        texture = (torch.rand(16, 16, generator=gen) < 0.6).numpy()
        regions[(regions == 0) & ~texture] = 1
        f = grid(regions, {0: a1, 1: a2, 2: b}, 0.02, gen)
        feats.append(f)
        masks.append(principal_masks(f, threshold=0.4))
        truths.append((regions == 2).astype(np.int64))
    feats_t = torch.stack(feats)
    start = torch.stack([a1, F.normalize(a2 + b, dim=0)])
    truth = np.stack(truths)

    def labels(prototypes: torch.Tensor) -> np.ndarray:
        return torch.einsum("ndhw,kd->nkhw", feats_t, prototypes).argmax(1).numpy()

    assert hungarian_miou(truth, labels(start), 2) < 0.7
    em = EmSchedule(steps=400)
    fitted = fit_prototypes(feats_t, torch.stack(masks), start, schedule=em, generator=gen)
    assert hungarian_miou(truth, labels(fitted), 2) >= 0.95
    assert torch.allclose(fitted.norm(dim=1), torch.ones(2), atol=1e-5)


def options(weights: Path, **extra: Any) -> dict[str, Any]:
    return cluster_options(weights, em_steps=100, em_batch=8, **extra)


def test_recovers_textured_regions(tiny_weights: Path) -> None:
    assert textured_miou(PrimapsSegmenter.build(4, **options(tiny_weights))) >= 0.9


def test_bands_next_to_the_features_are_refused(tiny_weights: Path) -> None:
    with pytest.raises(InvalidOptionError, match="spectral_weight must be 0"):
        PrimapsSegmenter.build(3, **options(tiny_weights, spectral_weight=1.0))


def test_model_file_reloads_as_primaps_with_the_same_map_at_every_tile_size(
    make_scene: Any, tiny_weights: Path, tmp_path: Path
) -> None:
    scene = make_scene(width=150, height=118, bands=3)
    model = tmp_path / "m.lcmap"
    fitted = tmp_path / "fit.tif"
    api.segment(
        scene,
        fitted,
        save_model=model,
        method=MethodSpec("primaps", classes=4, options=options(tiny_weights)),
        run=RunSpec(device="cpu"),
    )
    method, _ = load_model(model)
    assert isinstance(method, PrimapsSegmenter)
    assert method.config()["em_steps"] == 100
    maps = []
    for tile in (32, 64, 256):
        out = tmp_path / f"{tile}.tif"
        api.segment(
            scene, out, model=model, run=RunSpec(device="cpu"), tiling=TilingSpec(tile=tile)
        )
        with rasterio.open(out) as src:
            maps.append(src.read(1))
    with rasterio.open(fitted) as src:
        first = src.read(1)
    for other in maps:
        assert (other == first).mean() >= 0.999


def test_coarse_pixels_get_a_one_line_warning_that_vit_patches_lose_thin_features(
    tiny_weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    img, _ = textured_scene(96)
    pixels = (img * 255).astype(np.uint8)
    for res, warned in ((30.0, True), (0.5, False)):
        scene = write_raster(
            tmp_path / f"s{res}.tif", pixels, "EPSG:32618", from_origin(500000, 4000000, res, res)
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lcmap.workflows"):
            api.segment(
                scene,
                tmp_path / f"m{res}.tif",
                method=MethodSpec("primaps", classes=3, options=options(tiny_weights)),
                run=RunSpec(device="cpu"),
            )
        found = [r.getMessage() for r in caplog.records if "of ground" in r.getMessage()]
        assert bool(found) == warned
        if warned:
            assert "8 px patches, 240 m of ground at 30 m pixels" in found[0]
