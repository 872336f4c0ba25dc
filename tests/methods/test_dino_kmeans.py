"""dino_kmeans: region recovery, maps independent of --tile, model files, flips.

Tiny random ViTs (width 32, 2 blocks) saved to tmp_path keep these fast; the figures on real
weights are in benchmarks/README.md (quality_unsupervised.py).
"""

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from _tiny_vit import cluster_options, textured_miou, textured_scene

from lcmap import api
from lcmap.errors import InvalidOptionError, InvalidSceneError
from lcmap.methods.dino_kmeans import DinoKMeansSegmenter
from lcmap.methods.loading import load_model
from lcmap.sampling import ArraySampler
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec, TilingSpec

pytestmark = pytest.mark.usefixtures("one_thread", "vit_cache")


options = cluster_options


def test_recovers_textured_regions(tiny_weights: Path) -> None:
    assert textured_miou(DinoKMeansSegmenter.build(4, **options(tiny_weights))) >= 0.9


def test_features_only_and_bands_only_weighting_both_fit(tiny_weights: Path) -> None:
    img, _ = textured_scene(64)
    for weight in (0.0, 3.0):
        method = DinoKMeansSegmenter.build(3, **options(tiny_weights, spectral_weight=weight))
        method.fit(ArraySampler([img], seed=0))
        assert method.centroids is not None
        assert tuple(method.centroids.shape) == (3, 32 + 3)


def test_stride_must_divide_the_window(tiny_weights: Path) -> None:
    with pytest.raises(InvalidOptionError, match="window_stride=12 must be a divisor"):
        DinoKMeansSegmenter.build(3, **options(tiny_weights, window_stride=12))


def test_tiles_with_other_band_counts_are_refused(tiny_weights: Path) -> None:
    img, _ = textured_scene(64)
    method = DinoKMeansSegmenter.build(3, **options(tiny_weights))
    method.fit(ArraySampler([img], seed=0))
    with pytest.raises(InvalidSceneError, match="expects 3; pass bands="):
        method.predict(torch.zeros(1, 4, 32, 32))


def map_at(scene: Path, model: Path, tile: int, out: Path) -> np.ndarray:
    api.segment(
        scene,
        OutputSpec(out, overwrite=True),
        model=model,
        tiling=TilingSpec(tile=tile),
        run=RunSpec(device="cpu"),
    )
    with rasterio.open(out) as src:
        labels: np.ndarray = src.read(1)
    return labels


def test_maps_do_not_depend_on_the_tile_size(
    make_scene: Any, tiny_weights: Path, tmp_path: Path
) -> None:
    scene = make_scene(width=150, height=118, bands=3)
    model = tmp_path / "m.lcmap"
    api.segment(
        scene,
        tmp_path / "fit.tif",
        save_model=model,
        method=MethodSpec("dino_kmeans", classes=4, options=options(tiny_weights)),
        run=RunSpec(device="cpu"),
    )
    maps = [map_at(scene, model, t, tmp_path / f"{t}.tif") for t in (32, 64, 256)]
    for other in maps[1:]:
        assert (other == maps[0]).mean() >= 0.999


def test_saved_model_reloads_with_the_same_map(
    make_scene: Any, tiny_weights: Path, tmp_path: Path
) -> None:
    scene = make_scene(width=96, height=80, bands=3)
    model = tmp_path / "m.lcmap"
    first = tmp_path / "first.tif"
    api.segment(
        scene,
        first,
        save_model=model,
        method=MethodSpec("dino_kmeans", classes=4, options=options(tiny_weights)),
        run=RunSpec(device="cpu"),
    )
    with rasterio.open(first) as src:
        fitted = src.read(1)
    again = map_at(scene, model, 64, tmp_path / "again.tif")
    assert (again == fitted).mean() >= 0.999
    method, _ = load_model(model)
    assert isinstance(method, DinoKMeansSegmenter)


def test_flips_make_the_scores_flip_equivariant(tiny_weights: Path) -> None:
    # Averaged over the flip group, the scores of a flipped window are the flipped scores;
    # one view alone is not (the ViT's position embeddings are not symmetric).
    img, _ = textured_scene(64)
    method = DinoKMeansSegmenter.build(4, **options(tiny_weights))
    method.fit(ArraySampler([img], seed=0))
    x = torch.from_numpy(img)[None, :, :32, :32].float()
    plain = (method.predict(x.flip(-1)) - method.predict(x).flip(-1)).abs().max()
    method.cfg = replace(method.cfg, flips=True)
    for dims in ((-1,), (-2,), (-2, -1)):
        flipped = (method.predict(x.flip(dims)) - method.predict(x).flip(dims)).abs().max()
        assert float(flipped) < 1e-4
    assert float(plain) > 1e-3
