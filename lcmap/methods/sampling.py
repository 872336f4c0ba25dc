"""A :class:`~lcmap.methods.base.WindowSampler` over in-memory arrays.

The engine's sampler reads windows from scene files; this one serves notebooks, tests and
small scenes already in memory. Both draw the same way: a seeded generator picks a scene in
proportion to its valid pixels, then a window position uniformly, skipping windows that are
mostly nodata.
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from lcmap.methods.base import SampleBatch

#: A window is skipped when less than this fraction of it holds data (up to _MAX_TRIES times).
MIN_VALID_FRACTION = 0.5
_MAX_TRIES = 20


def pad_reflect(array: NDArray[np.generic], size: int) -> NDArray[np.generic]:
    """Pad the last two axes of ``array`` by reflection up to at least ``size`` pixels."""
    h, w = array.shape[-2:]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if not (pad_h or pad_w):
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)]
    mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > 1 else "edge"
    padded: NDArray[np.generic] = np.pad(array, widths, mode=mode)
    return padded


class ArraySampler:
    """Draw random windows from arrays already in memory.

    Args:
        images: per scene, (C, H, W) float32 normalised bands (nodata filled with 0).
        valid: per scene, (H, W) bool masks; None = all valid.
        labels: per scene, (H, W) integer class ids (255 = unlabelled); None = no labels.
        seed: seeds the window positions.
    """

    def __init__(
        self,
        images: Sequence[NDArray[np.floating]],
        valid: Sequence[NDArray[np.bool_]] | None = None,
        labels: Sequence[NDArray[np.integer]] | None = None,
        seed: int = 0,
    ) -> None:
        if not images:
            raise ValueError("ArraySampler needs at least one image.")
        self.images = [np.asarray(im, dtype=np.float32) for im in images]
        self.valid = (
            [np.asarray(v, dtype=bool) for v in valid]
            if valid is not None
            else [np.ones(im.shape[1:], dtype=bool) for im in self.images]
        )
        self.labels = [np.asarray(lb) for lb in labels] if labels is not None else None
        self.rng = np.random.default_rng(seed)

    @property
    def in_channels(self) -> int:
        """Number of bands."""
        return int(self.images[0].shape[0])

    @property
    def valid_pixels(self) -> int:
        """Valid pixels over all arrays."""
        return int(sum(v.sum() for v in self.valid))

    def sample(self, count: int, size: int) -> SampleBatch:
        """Return ``count`` random ``size`` x ``size`` windows."""
        weights = np.array([max(1, int(v.sum())) for v in self.valid], dtype=np.float64)
        weights /= weights.sum()
        images, valids, labels = [], [], []
        for _ in range(count):
            i = int(self.rng.choice(len(self.images), p=weights))
            image = pad_reflect(self.images[i], size)
            valid = pad_reflect(self.valid[i], size)
            label = pad_reflect(self.labels[i], size) if self.labels is not None else None
            h, w = valid.shape
            for _ in range(_MAX_TRIES):
                r = int(self.rng.integers(0, h - size + 1))
                c = int(self.rng.integers(0, w - size + 1))
                if valid[r : r + size, c : c + size].mean() >= MIN_VALID_FRACTION:
                    break
            images.append(image[:, r : r + size, c : c + size])
            valids.append(valid[r : r + size, c : c + size])
            if label is not None:
                labels.append(label[r : r + size, c : c + size])
        return SampleBatch(
            image=torch.from_numpy(np.stack(images)),
            valid=torch.from_numpy(np.stack(valids)),
            labels=torch.from_numpy(np.stack(labels).astype(np.int64)) if labels else None,
        )
