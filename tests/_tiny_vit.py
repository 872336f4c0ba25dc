"""Tiny random timm ViTs and a textured synthetic scene, shared by the ViT method tests."""

from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from scipy.optimize import linear_sum_assignment

from lcmap.workflows.specs import MethodSpec, RunSpec

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
DINO = "vit_small_patch8_224.dino"


def tiny_vit(name: str = DINO, **extra: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    args = dict(TINY, **extra)
    return timm.create_model(
        name.split(".")[0], pretrained=False, num_classes=0, dynamic_img_size=True, **args
    )


def textured_scene(size: int = 96, bands: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Four quadrants with distinct colours and stripe textures; truth 0..3."""
    rng = np.random.default_rng(0)
    half = size // 2
    img = np.zeros((bands, size, size), np.float32)
    truth = np.zeros((size, size), np.int64)
    yy, xx = np.mgrid[:half, :half]
    colours = [(0.8, 0.2, 0.2), (0.2, 0.7, 0.3), (0.2, 0.3, 0.8), (0.7, 0.7, 0.2)]
    for q, (r, c) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        texture = 0.15 * np.sin((xx if q % 2 else yy) * (0.5 + 0.4 * q))
        for b in range(bands):
            noise = 0.03 * rng.standard_normal((half, half))
            img[b, r : r + half, c : c + half] = colours[q][b % 3] + texture + noise
        truth[r : r + half, c : c + half] = q
    return np.clip(img, 0, 1), truth


def cluster_options(weights: Path, **extra: Any) -> dict[str, Any]:
    """Options of a tiny ``dino_kmeans`` / ``primaps`` on the tiny ViT saved at ``weights``."""
    return {
        "backbone": DINO,
        "weights": str(weights),
        "backbone_args": TINY,
        "crop_size": 32,
        "crops": 24,
        "pixels_per_crop": 200,
        **extra,
    }


def textured_miou(method: Any, k: int = 4) -> float:
    """Fit ``method`` on :func:`textured_scene` and score its map of it (Hungarian mIoU)."""
    from lcmap.sampling import ArraySampler

    img, truth = textured_scene()
    method.fit(ArraySampler([img], seed=0))
    with torch.inference_mode():
        labels = method.predict_tile_labels(torch.from_numpy(img)[None])[0].numpy()
    return hungarian_miou(truth, labels, k)


def hungarian_miou(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    conf = np.zeros((k, k))
    np.add.at(conf, (truth.ravel(), pred.ravel()), 1)
    rows, cols = linear_sum_assignment(-conf)
    ious = [
        conf[i, j] / (conf[i].sum() + conf[:, j].sum() - conf[i, j])
        for i, j in zip(rows, cols, strict=True)
    ]
    return float(np.mean(ious))


NAIP_SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "naip_2020_rgbn.tif"


def tiny_stego_on_naip(root: Path, weights: Path, crops: int, epochs: int) -> tuple[Path, Path]:
    """A 320 x 320 px crop of the real NAIP sample (bands 1-3) in ``root`` and a tiny stego
    model (5 classes, 32 px windows at stride 16) trained on it with the ``weights`` ViT."""
    import rasterio
    from rasterio.windows import Window

    from lcmap import api

    crop = root / "crop.tif"
    with rasterio.open(NAIP_SAMPLE) as src:
        win = Window(300, 200, 320, 320)
        profile = {
            "driver": "GTiff",
            "width": 320,
            "height": 320,
            "count": 3,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.window_transform(win),
        }
        data = src.read([1, 2, 3], window=win)
    with rasterio.open(crop, "w", **profile) as dst:
        dst.write(data)
    model = root / "tiny.lcmap"
    options = {
        "backbone": DINO,
        "weights": str(weights),
        "backbone_args": TINY,
        "crop_size": 32,
        "crops": crops,
        "epochs": epochs,
    }
    api.train(
        [crop],
        model,
        method=MethodSpec("stego", classes=5, options=options),
        run=RunSpec(device="cpu"),
    )
    return crop, model
