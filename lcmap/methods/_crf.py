"""A local mean-field approximation of the fully connected CRF (Krähenbühl & Koltun, 2011).

STEGO refines its maps with pydensecrf (appearance kernel ``w=4, sigma_xy=67, sigma_rgb=3`` on
0-255 RGB, smoothness kernel ``w=3, sigma_xy=1``, 10 iterations). pydensecrf is unmaintained and
does not build cleanly here, so this is a torch approximation: the pairwise kernels are
truncated to a square window of ``(2 * radius + 1)^2`` offsets spaced ``dilation`` pixels
apart, each kernel is normalised to sum to one per pixel (like pydensecrf's default symmetric
normalisation), and the Potts model is used. It runs on any device, in tiles, with memory
linear in the tile size.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _shifted(t: Tensor, dy: int, dx: int, pad: int) -> Tensor:
    """``t`` (already padded by ``pad``) shifted by (dy, dx), cropped back to the original."""
    h, w = t.shape[-2] - 2 * pad, t.shape[-1] - 2 * pad
    return t[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def dense_crf(
    image: Tensor,
    logits: Tensor,
    *,
    iterations: int = 5,
    radius: int = 3,
    dilation: int = 2,
    appearance_weight: float = 4.0,
    appearance_xy: float = 67.0,
    appearance_rgb: float = 0.1,
    smoothness_weight: float = 3.0,
    smoothness_xy: float = 1.0,
) -> Tensor:
    """Refine class scores with mean-field inference in a windowed dense CRF.

    Args:
        image: (B, 3, H, W) guidance image, roughly 0..1.
        logits: (B, K, H, W) unary log-potentials (higher = more likely).
        iterations: mean-field updates.
        radius: window radius in offsets.
        dilation: pixels between offsets (the window spans ``2 * radius * dilation + 1`` px).
        appearance_weight: weight of the bilateral (position + colour) kernel.
        appearance_xy: its spatial standard deviation in pixels.
        appearance_rgb: its colour standard deviation in image units (0..1).
        smoothness_weight: weight of the position-only kernel.
        smoothness_xy: its spatial standard deviation in pixels.

    Returns:
        (B, K, H, W) float32 marginal probabilities.
    """
    image = image.float()
    logits = logits.float()
    pad = radius * dilation
    offsets = [
        (dy * dilation, dx * dilation)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy, dx) != (0, 0)
    ]
    img_pad = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    # Kernel weights per offset, computed once: (B, 1, H, W) each. Memory: len(offsets) maps.
    app_w: list[Tensor] = []
    smooth_w: list[float] = []
    app_norm = torch.full_like(image[:, :1], 1e-8)
    for dy, dx in offsets:
        d2 = float(dy * dy + dx * dx)
        diff = _shifted(img_pad, dy, dx, pad) - image
        dist = diff.mul_(diff).sum(1, keepdim=True)
        weight = dist.mul_(-1 / (2 * appearance_rgb**2)).add_(-d2 / (2 * appearance_xy**2)).exp_()
        app_norm += weight
        app_w.append(weight)
        smooth_w.append(math.exp(-d2 / (2 * smoothness_xy**2)))
    smooth_norm = max(sum(smooth_w), 1e-8)
    q = logits.softmax(1)
    for _ in range(iterations):
        q_pad = F.pad(q, (pad, pad, pad, pad), mode="replicate")
        app_msg = torch.zeros_like(q)
        smooth_msg = torch.zeros_like(q)
        for (dy, dx), wa, ws in zip(offsets, app_w, smooth_w, strict=True):
            q_shift = _shifted(q_pad, dy, dx, pad)
            app_msg += wa * q_shift
            if ws > 1e-6:
                smooth_msg += ws * q_shift
        # Potts compatibility: agreeing neighbours raise a label's potential.
        pairwise = appearance_weight * app_msg / app_norm + smoothness_weight * (
            smooth_msg / smooth_norm
        )
        q = (logits + pairwise).softmax(1)
    return q
