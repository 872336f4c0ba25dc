"""Helpers shared by the tests (importable as ``_helpers``; pytest puts tests/ on the path)."""

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

from lcmap.methods import register_method
from lcmap.methods.base import MethodInfo, Segmenter, Window

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
DATA = SHARED / "data"

# Four spectrally distinct "land covers" (RGBN reflectance-like values).
SPECTRA = np.array(
    [[30, 60, 40, 20], [60, 120, 50, 200], [180, 170, 160, 190], [90, 80, 70, 60]], dtype=np.float32
)


def quadrant_truth(height: int, width: int) -> np.ndarray:
    """Class ids 0..3 in four quadrants split at 40% / 60% of the size."""
    truth = np.zeros((height, width), dtype=np.uint8)
    truth[: int(height * 0.4), int(width * 0.6) :] = 1
    truth[int(height * 0.4) :, : int(width * 0.6)] = 2
    truth[int(height * 0.4) :, int(width * 0.6) :] = 3
    return truth


class ToySegmenter(Segmenter):
    """One-hot scores from the first band's value bins: a pixel-wise method with no fitting.

    ``windowed=True`` variants see only 16 px windows at stride 8 (the sliding-window path of
    ViTs); ``fail_after`` makes predict raise after that many batches (interrupted runs).
    """

    info = MethodInfo(name="toy", summary="test method", needs_fit=False)

    def __init__(self, num_classes: int = 4, windowed: bool = False, fail_after: int = -1) -> None:
        super().__init__()
        self._k = num_classes
        self.windowed = windowed
        self.fail_after = fail_after
        self.calls = 0

    @property
    def num_classes(self) -> int:
        return self._k

    @property
    def in_channels(self) -> int | None:
        return None

    @property
    def halo(self) -> int:
        return self.window.halo if self.window else 0

    @property
    def window(self) -> Window | None:
        return Window(16, 8) if self.windowed else None

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.windowed:
            assert batch.shape[-2:] == (16, 16), "a windowed method sees only its window"
        if self.calls == self.fail_after:
            raise RuntimeError("simulated failure")
        ids = (batch[:, 0] * (self._k - 1e-3)).long().clamp(0, self._k - 1)
        return torch.nn.functional.one_hot(ids, self._k).permute(0, 3, 1, 2).float()

    def config(self) -> dict[str, Any]:
        return {"num_classes": self._k, "windowed": self.windowed}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"k": torch.tensor([float(self._k)])}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._k = int(state["k"][0])


@register_method("toy")
def _toy(num_classes: int = 4, **kwargs: Any) -> ToySegmenter:
    return ToySegmenter(num_classes, **kwargs)


def read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Band 1 and the profile of a raster."""
    with rasterio.open(path) as src:
        return src.read(1), dict(src.profile)


def change_rates(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[float, float]:
    """Rate of label changes between neighbours across the given boundaries, and elsewhere.

    ``cols`` are columns ``c`` whose pair ``(c - 1, c)`` straddles a boundary (and ``rows``
    likewise for vertical pairs). Returns ``(rate on the boundaries, rate off them)``: a seam
    shows as a first rate well above the second.
    """
    horizontal = labels[:, 1:] != labels[:, :-1]  # pair (c - 1, c) is column c - 1
    vertical = labels[1:] != labels[:-1]
    on_c = np.zeros(horizontal.shape[1], bool)
    on_c[cols[(cols >= 1) & (cols < labels.shape[1])] - 1] = True
    on_r = np.zeros(vertical.shape[0], bool)
    on_r[rows[(rows >= 1) & (rows < labels.shape[0])] - 1] = True
    on = np.concatenate([horizontal[:, on_c].ravel(), vertical[on_r].ravel()])
    off = np.concatenate([horizontal[:, ~on_c].ravel(), vertical[~on_r].ravel()])
    return float(on.mean()), float(off.mean())


def write_raster(
    path: Path, data: np.ndarray, crs: str, transform: Any, nodata: Any = None
) -> Path:
    """Write a (C, H, W) array as a GeoTIFF with this CRS, transform and nodata."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[-1],
        "height": data.shape[-2],
        "count": data.shape[0],
        "dtype": data.dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path
