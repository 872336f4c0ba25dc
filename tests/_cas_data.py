"""Synthetic data and a tiny CAS model shared by the CAS, fine-tuning and suggest-labels tests."""

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from lcmap import api
from lcmap.workflows.specs import MethodSpec, RunSpec

#: Three well separated colours (water-ish, sand-ish, vegetation-ish), uint8 RGB.
SPECTRA = np.array([[40, 80, 160], [170, 150, 60], [90, 200, 90]], dtype=np.float32)
CLASS_NAMES = ["water", "land", "vegetation"]
ORIGIN = (500000.0, 4000000.0)
PIXEL = 2.0

#: A CAS small enough to fit in a second or two on a CPU.
TINY_CAS = {
    "width": 4,
    "depth": 2,
    "embed_dim": 8,
    "patch_size": 32,
    "batch_size": 8,
    "ae_steps": 15,
    "dec_steps": 15,
    "pool_size": 32,
    "kmeans_patches": 32,
    "update_interval": 5,
}


def three_class_truth(height: int, width: int, seed: int) -> np.ndarray:
    """Blobs of classes 0, 1, 2 in equal shares (smoothed noise cut at its terciles)."""
    noise = gaussian_filter(np.random.default_rng(seed).normal(size=(height, width)), 6)
    return np.digitize(noise, np.quantile(noise, [1 / 3, 2 / 3])).astype(np.uint8)


def write_three_class_scene(
    scene: Path, labels: Path, height: int = 128, width: int = 160, seed: int = 0
) -> np.ndarray:
    """Write an RGB scene (nodata 0) and its label raster (nodata 255); return the truth."""
    truth = three_class_truth(height, width, seed)
    rng = np.random.default_rng(seed + 100)
    image = SPECTRA[truth].transpose(2, 0, 1) + rng.normal(0, 8, (3, height, width))
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "nodata": 0,
        "crs": "EPSG:32618",
        "transform": from_origin(*ORIGIN, PIXEL, PIXEL),
    }
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.clip(image, 1, 255).astype(np.uint8))
    profile.update(count=1, nodata=255)
    with rasterio.open(labels, "w", **profile) as dst:
        dst.write(truth[None])
    return truth


def train_tiny_cas(scene: Path, output: Path, classes: int = 3) -> Path:
    """Train the tiny CAS on ``scene`` through the public API."""
    api.train(
        [scene],
        output,
        method=MethodSpec("cas", classes=classes, options=TINY_CAS),
        run=RunSpec(device="cpu"),
    )
    return output


def miou(pred: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean IoU over the classes present in the truth."""
    ious = []
    for c in range(k):
        t, p = truth == c, pred == c
        if t.any():
            ious.append((t & p).sum() / (t | p).sum())
    return float(np.mean(ious))


def three_class_image(seed: int = 0, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A (3, size, size) float image of three noisy spectra on :func:`three_class_truth`, and
    the truth."""
    truth = three_class_truth(size, size, seed)
    spectra = np.array([[0.2, 0.3, 0.8], [0.8, 0.7, 0.2], [0.4, 0.9, 0.4]], dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, 0.03, (3, size, size)).astype(np.float32)
    return np.clip(spectra[truth].transpose(2, 0, 1) + noise, 0, 1), truth


#: A simclr pre-training of a few steps on small windows, for tests.
SIMCLR_FAST = {
    "encoder": "resnet18-unet",
    "crop_size": 64,
    "windows": 24,
    "batch_size": 8,
    "steps": 3,
    "probe_windows": 8,
    "seed": 0,
}
