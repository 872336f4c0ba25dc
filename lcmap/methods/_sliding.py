"""Score tiles of any size with a network that sees one fixed window: slide, then blend.

The windows start at the tile's top-left pixel and step by the stride; tiles planned with
``plan_tiles(..., multiple=stride)`` and a halo of ``size - stride`` start on a grid
anchored to the scene, so a core pixel's blended score is the same for any tile size
(see :mod:`lcmap.tiling`).
"""

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.tiling import padded_length, window_offsets, window_weights

if TYPE_CHECKING:
    from lcmap.methods.base import Window


def mirror_pad(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """Mirror (B, C, H, W) at the bottom and right by any amount (repeated reflections)."""
    while pad_h > 0 or pad_w > 0:
        h, w = x.shape[-2:]
        if min(h, w) < 2:
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        step_h, step_w = min(pad_h, h - 1), min(pad_w, w - 1)
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


@functools.lru_cache(maxsize=8)
def _weights(
    size: int, stride: int, height: int, width: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """One window's blending weights and their sum over a ``height`` x ``width`` tile: the
    same for every tile of a plan, so computed once (read only)."""
    weight = window_weights(size)
    total = np.zeros((height, width), dtype=np.float32)
    for r in window_offsets(height, size, stride):
        for c in window_offsets(width, size, stride):
            total[r : r + size, c : c + size] += weight
    return torch.from_numpy(weight).to(device), torch.from_numpy(total).to(device)


def sliding_scores(
    predict: Callable[[Tensor], Tensor], batch: Tensor, window: "Window", chunk: int
) -> Tensor:
    """Blend ``predict``'s scores of fixed windows over (B, C, H, W) tiles -> (B, K, H, W).

    Args:
        predict: scores (N, K, S, S) of (N, C, S, S) windows, S = ``window.size``.
        batch: tiles of any size.
        window: the window size and stride.
        chunk: windows per ``predict`` call (bounds device memory).

    Returns:
        float32 scores: the weighted mean of the window scores covering each pixel, weights
        from :func:`lcmap.tiling.window_weights`.
    """
    size, stride = window.size, window.stride
    b, _, h, w = batch.shape
    ph, pw = padded_length(h, size, stride), padded_length(w, size, stride)
    x = mirror_pad(batch, ph - h, pw - w)
    weight, total = _weights(size, stride, ph, pw, batch.device)
    places = [
        (i, r, c)
        for i in range(b)
        for r in window_offsets(ph, size, stride)
        for c in window_offsets(pw, size, stride)
    ]
    out: Tensor | None = None
    for start in range(0, len(places), chunk):
        part = places[start : start + chunk]
        scores = predict(torch.stack([x[i, :, r : r + size, c : c + size] for i, r, c in part]))
        if out is None:
            out = torch.zeros((b, scores.shape[1], ph, pw), device=batch.device)
        for (i, r, c), s in zip(part, scores.float(), strict=True):
            out[i, :, r : r + size, c : c + size] += s * weight
    assert out is not None
    return (out / total)[:, :, :h, :w]


@functools.lru_cache(maxsize=8)
def _flat_weights(size: int) -> Tensor:
    """:func:`lcmap.tiling.window_weights` of one window, flattened (read only)."""
    return torch.from_numpy(window_weights(size)).flatten()


def hann_pixels(valid: Tensor, count: int, gen: torch.Generator) -> tuple[Tensor, Tensor] | None:
    """``count`` pixels of one (S, S) window, drawn (with replacement) with the window's
    blending weight among its valid pixels, for fitting clusters on what the blended map is
    made of: a pixel's map comes mostly from the windows it lies near the centre of.

    Returns:
        The (count,) flat indices and their (count, 2) ``grid_sample`` coordinates (pixel
        centres, ``align_corners=False``: where bilinear upsampling to the window samples);
        None when the window has no valid pixel.
    """
    s = valid.shape[-1]
    probs = _flat_weights(s) * valid.flatten().float()
    if float(probs.sum()) == 0:
        return None
    pick = torch.multinomial(probs, count, replacement=True, generator=gen)
    rows, cols = (pick // s).float(), (pick % s).float()
    return pick, torch.stack([(cols + 0.5) / s * 2 - 1, (rows + 0.5) / s * 2 - 1], dim=-1)
