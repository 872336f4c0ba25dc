"""Contrastive learning pieces: the NT-Xent loss and augmented views of a window.

Views (Ghandali et al., "Positive and negative pair generation"): a random resized crop (10-100% of
the window's area down to ``min_scale``; aspect 3/4-4/3) resized back to the window's size; one
of the 8 symmetries of the square (aerial and satellite scenes have no up); a Gaussian blur
(half the views, sigma 0.1-2 px, as SimCLR); brightness and contrast (x * c + b per view);
simulated illumination (a smooth multiplicative ramp across the view, 0.8-1.2 end to end: a sun
angle or haze gradient); random erasing of one rectangle (2-20% of the view, as torchvision's
RandomErasing). The geometric part is kept as a sampling grid (window coordinates of each view
pixel).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: The augmentations, as the model file records them.
AUGMENTATIONS = {
    "random_resized_crop": {"scale": "min_scale..1", "ratio": [0.75, 1.3333]},
    "dihedral": "one of the 8 symmetries of the square",
    "gaussian_blur": {"p": 0.5, "sigma": [0.1, 2.0]},
    "brightness_contrast": {"brightness": 0.2, "contrast": [0.8, 1.2]},
    "illumination_ramp": [0.8, 1.2],
    "random_erasing": {"p": 0.5, "area": [0.02, 0.2]},
}


def augmentations() -> dict[str, object]:
    """The augmentations of :func:`make_views`, as the model file records them."""
    return dict(AUGMENTATIONS)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy over N positive pairs.

    For each of the 2N projections, the positive is its pair and the negatives are the other
    2N - 2 (never itself): ``l(i, j) = -log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t))`` with
    cosine similarities ``s``, averaged over all 2N anchors.

    Args:
        z1, z2: (N, D) projections of the two views; row i of each is a positive pair.
        temperature: t > 0.
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    sims = z @ z.T / temperature
    sims.fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sims, target)


def _dihedral_grid(grid: Tensor, k: int, flip: bool) -> Tensor:
    """The sampling grid of a view rotated by ``k`` quarter turns (as ``torch.rot90`` on the
    image axes) and then flipped left-right, as a grid: (S, S, 2) -> (S, S, 2)."""
    g = torch.rot90(grid, k, dims=(0, 1))
    return torch.flip(g, dims=(1,)) if flip else g


def random_view_grid(size: int, min_scale: float, gen: torch.Generator) -> Tensor:
    """(S, S, 2) sampling grid (x, y in [-1, 1] of the window) of one random resized crop,
    rotated and flipped: ``grid_sample(window, grid)`` is the view."""
    area = float(torch.empty(1).uniform_(min_scale, 1.0, generator=gen))
    ratio = math.exp(
        float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen))
    )
    w = min(1.0, math.sqrt(area * ratio))
    h = min(1.0, math.sqrt(area / ratio))
    x0 = float(torch.rand(1, generator=gen)) * (1 - w)
    y0 = float(torch.rand(1, generator=gen)) * (1 - h)
    # Pixel centres of the view in window coordinates, align_corners=False convention.
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    xs = (x0 + t * w) * 2 - 1
    ys = (y0 + t * h) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.randint(0, 2, (1,), generator=gen))
    return _dihedral_grid(grid, k, flip)


def photometric(view: Tensor, gen: torch.Generator) -> Tensor:
    """Blur, brightness/contrast, illumination ramp and erasing of one (C, S, S) view."""
    s = view.shape[-1]
    if float(torch.rand(1, generator=gen)) < 0.5:
        sigma = float(torch.empty(1).uniform_(0.1, 2.0, generator=gen))
        radius = max(1, math.ceil(2 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum()).to(view.device)
        v = view[:, None]
        pad = min(radius, s - 1)
        v = F.pad(v, (pad, pad, pad, pad), mode="reflect")
        if pad < radius:
            kernel = kernel[radius - pad : radius + pad + 1]
            kernel = kernel / kernel.sum()
        v = F.conv2d(v, kernel.view(1, 1, 1, -1))
        v = F.conv2d(v, kernel.view(1, 1, -1, 1))
        view = v[:, 0]
    contrast = float(torch.empty(1).uniform_(0.8, 1.2, generator=gen))
    brightness = float(torch.empty(1).uniform_(-0.2, 0.2, generator=gen))
    mean = view.mean(dim=(1, 2), keepdim=True)
    view = (view - mean) * contrast + mean + brightness
    a, b = (float(torch.empty(1).uniform_(0.8, 1.2, generator=gen)) for _ in range(2))
    angle = float(torch.rand(1, generator=gen)) * 2 * math.pi
    t = torch.linspace(0, 1, s, device=view.device)
    along = math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    view = view * (a + (b - a) * along)[None]
    if float(torch.rand(1, generator=gen)) < 0.5:
        area = float(torch.empty(1).uniform_(0.02, 0.2, generator=gen)) * s * s
        eh = max(1, min(s, round(math.sqrt(area))))
        r = int(torch.randint(0, s - eh + 1, (1,), generator=gen))
        q = int(torch.randint(0, s - eh + 1, (1,), generator=gen))
        view = view.clone()
        view[:, r : r + eh, q : q + eh] = 0.0
    return view


def make_views(
    windows: Tensor,
    min_scale: float,
    gen: torch.Generator,
    augment: bool = True,
) -> tuple[Tensor, Tensor]:
    """Two augmented views of each window and their sampling grids.

    Args:
        windows: (N, C, S, S) normalised windows.
        min_scale: the smallest crop, as a fraction of the window's area (Ghandali et al.: 0.2).
        gen: the CPU generator every random choice draws from (reproducible by seed).
        augment: apply the photometric augmentations (the geometric ones always).

    Returns:
        (2, N, C, S, S) views and (2, N, S, S, 2) grids (window coordinates in [-1, 1] of
        each view pixel).
    """
    n, _, s, _ = windows.shape
    grids = torch.stack(
        [torch.stack([random_view_grid(s, min_scale, gen) for _ in range(n)]) for _ in range(2)]
    ).to(windows.device)
    views = torch.stack(
        [F.grid_sample(windows, grids[v], mode="bilinear", align_corners=False) for v in range(2)]
    )
    if augment:
        views = torch.stack(
            [torch.stack([photometric(views[v, i], gen) for i in range(n)]) for v in range(2)]
        )
    return views, grids


def sample_at(features: Tensor, coords: Tensor) -> Tensor:
    """(N, D, h, w) feature maps sampled at (N, P, 2) view coordinates -> (N, P, D): what
    those coordinates mean (:func:`~lcmap.methods._sliding.hann_pixels`).
    Training and the probe read hypercolumns at them through
    :meth:`~lcmap.nets.encoder_unet.EncoderUNet.hypercolumn_at`, tested against this."""
    out = F.grid_sample(features, coords[:, :, None, :], mode="bilinear", align_corners=False)
    return out[..., 0].permute(0, 2, 1)
